//! Properties: values survive the wire exactly; IDict agrees with a simple
//! model under random sequences of operations; and under concurrent
//! control it never stalls and its versions only grow.

use idict::wire::{value_from_proto, value_to_proto};
use idict::{DType, IDict, NdArray, Value};
use proptest::prelude::*;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        Just(DType::F64),
        Just(DType::F32),
        Just(DType::I64),
        Just(DType::I32),
        Just(DType::U8),
        Just(DType::Bool),
    ]
}

fn array() -> impl Strategy<Value = Value> {
    (dtype(), prop::collection::vec(0usize..5, 0..4)).prop_flat_map(|(dt, shape)| {
        let n: usize = shape.iter().product::<usize>() * dt.size();
        prop::collection::vec(any::<u8>(), n).prop_map(move |data| {
            Value::Array(NdArray::from_bytes(dt, shape.clone(), data.into()).expect("consistent"))
        })
    })
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0)
        ]
        .prop_map(Value::Float),
        ".{0,12}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| Value::Bytes(b.into())),
        array(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn values_survive_the_wire_bit_for_bit(v in value()) {
        let wire = value_to_proto(&v).encode_to_vec();
        let back = value_from_proto(idict::proto::v1::Value::decode(wire.as_slice()).unwrap()).unwrap();
        // NaN != NaN, so compare encodings: the same bits either way.
        prop_assert_eq!(value_to_proto(&back).encode_to_vec(), wire);
    }
}

/// What a callback saw: version, changed keys, removed keys.
type Published = (u64, BTreeSet<String>, BTreeSet<String>);

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, i64),
    Remove(u8),
    Clear,
    Notify,
    Pause,
    Resume,
    Step(u8),
    Wait,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => (0u8..6).prop_map(Op::Remove),
        1 => Just(Op::Clear),
        3 => Just(Op::Notify),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        1 => (1u8..4).prop_map(Op::Step),
        2 => Just(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn idict_agrees_with_a_model(ops in prop::collection::vec(op(), 1..80)) {
        let d = IDict::new("model");
        let seen: Arc<Mutex<Vec<Published>>> = Arc::default();
        let s2 = seen.clone();
        d.add_callback(move |e| {
            s2.lock().unwrap().push((
                e.version(),
                e.changed().map(str::to_string).collect(),
                e.removed().map(str::to_string).collect(),
            ));
        });
        let mut model: BTreeMap<String, i64> = BTreeMap::new();
        let mut published: BTreeMap<String, i64> = BTreeMap::new();
        let mut samples: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let (mut paused, mut steps, mut version) = (false, 0u64, 0u64);
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    model.insert(format!("k{k}"), v);
                    d.lock().insert(format!("k{k}"), v);
                }
                Op::Remove(k) => {
                    let key = format!("k{k}");
                    prop_assert_eq!(d.lock().remove(&key).map(|x| x.as_i64()), model.remove(&key).map(Some));
                }
                Op::Clear => {
                    model.clear();
                    d.lock().clear();
                }
                Op::Notify => {
                    version += 1;
                    prop_assert_eq!(d.notify_update(), Ok(version));
                    let (v, changed, removed) = seen.lock().unwrap().last().cloned().unwrap();
                    prop_assert_eq!(v, version);
                    // Exactly the keys whose value differs, or that left.
                    let want_changed: BTreeSet<String> = model
                        .iter()
                        .filter(|(k, v)| published.get(*k) != Some(v))
                        .map(|(k, _)| k.clone())
                        .collect();
                    let want_removed: BTreeSet<String> = published
                        .keys()
                        .filter(|k| !model.contains_key(*k))
                        .cloned()
                        .collect();
                    // A key set to the same value again is reported changed too.
                    prop_assert!(want_changed.is_subset(&changed), "{:?} ⊄ {:?}", want_changed, changed);
                    prop_assert!(changed.iter().all(|k| model.contains_key(k)));
                    prop_assert_eq!(&removed, &want_removed);
                    for k in &changed {
                        samples.entry(k.clone()).or_default().push(version);
                    }
                    published = model.clone();
                }
                Op::Pause => {
                    paused = true;
                    steps = 0;
                    d.pause();
                }
                Op::Resume => {
                    paused = false;
                    steps = 0;
                    d.resume();
                }
                Op::Step(n) => {
                    paused = true;
                    steps += n as u64;
                    d.step(n as u64);
                }
                Op::Wait => {
                    // Only when the model says it passes: a held wait would block.
                    if !paused || steps > 0 {
                        prop_assert!(d.wait_timeout(Duration::from_secs(5)));
                        steps = steps.saturating_sub(u64::from(paused));
                    } else {
                        prop_assert!(!d.wait_timeout(Duration::from_millis(1)));
                    }
                }
            }
            prop_assert_eq!(d.status().steps_pending, if paused { steps } else { 0 });
        }
        for (k, versions) in samples {
            prop_assert_eq!(d.history(&k).unwrap().versions, versions, "one sample per notify that changed {}", k);
        }
    }
}

#[test]
fn under_concurrent_control_the_loop_never_stalls_and_versions_only_grow() {
    for round in 0..20u64 {
        let d = IDict::new("stress");
        let last = Arc::new(Mutex::new(0u64));
        let l2 = last.clone();
        d.add_callback(move |e| {
            let mut l = l2.lock().unwrap();
            assert!(e.version() > *l, "versions only grow");
            *l = e.version();
        });
        let worker = {
            let d = d.clone();
            std::thread::spawn(move || {
                let mut i = 0i64;
                while !d.terminated() {
                    d.wait();
                    d.lock().insert("i", i);
                    d.notify_update().unwrap();
                    i += 1;
                }
                d.notify_update_final().unwrap();
            })
        };
        let controllers: Vec<_> = (0..3)
            .map(|t| {
                let d = d.clone();
                std::thread::spawn(move || {
                    let mut x = round * 31 + t;
                    for _ in 0..300 {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        match (x >> 33) % 4 {
                            0 => d.pause(),
                            1 => d.resume(),
                            2 => d.step((x >> 40) % 5 + 1),
                            _ => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        for c in controllers {
            c.join().unwrap();
        }
        d.terminate();
        let start = Instant::now();
        worker.join().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "terminate woke the loop"
        );
        assert_eq!(d.version(), *last.lock().unwrap());
    }
}
