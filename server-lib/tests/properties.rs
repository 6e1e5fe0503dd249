//! Properties: values survive the wire exactly; IDict agrees with a simple
//! model under random sequences of operations; and under concurrent
//! control it never stalls and its versions only grow; watchers, early or
//! late, assemble exactly the published state and every sample.

mod common;

use common::next;
use idict::client::{Update, WatchOptions};
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
        d.add_callback(move |_, e| {
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
                        prop_assert_eq!(d.wait_timeout(Duration::from_secs(5)), idict::WaitOutcome::Go);
                        steps = steps.saturating_sub(u64::from(paused));
                    } else {
                        prop_assert_eq!(d.wait_timeout(Duration::from_millis(1)), idict::WaitOutcome::StillPaused);
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
        d.add_callback(move |_, e| {
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

#[derive(Debug, Clone)]
enum WireOp {
    Insert(u8, i64),
    Remove(u8),
    Clear,
    Notify,
    /// Let the server run a while (frames fall between notifies).
    Pause,
}

fn wire_op() -> impl Strategy<Value = WireOp> {
    prop_oneof![
        5 => (0u8..8, -1000i64..1000).prop_map(|(k, v)| WireOp::Insert(k, v)),
        2 => (0u8..8).prop_map(WireOp::Remove),
        1 => Just(WireOp::Clear),
        5 => Just(WireOp::Notify),
        1 => Just(WireOp::Pause),
    ]
}

/// What a watcher assembles from its updates: the state and each key's
/// sample versions.
#[derive(Default)]
struct Assembled {
    state: BTreeMap<String, Value>,
    samples: BTreeMap<String, Vec<u64>>,
}

impl Assembled {
    fn take(&mut self, u: &Update) {
        if u.reset {
            self.state.clear();
        }
        for (k, v) in &u.changed {
            self.state.insert(k.clone(), v.clone());
        }
        for k in &u.removed {
            self.state.remove(k);
        }
        for (k, s) in &u.samples {
            self.samples
                .entry(k.clone())
                .or_default()
                .extend(&s.versions);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn watchers_early_and_late_assemble_the_published_state_and_every_sample(
        ops in prop::collection::vec(wire_op(), 1..150),
        attach_at in 0usize..150,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (expected, history, watched) = rt.block_on(async {
            let d = IDict::new("wire-model");
            let run = common::serve(&d);
            let client = run.observer().await;
            let history = WatchOptions { with_history: true, ..WatchOptions::default() };
            let mut streams = vec![client.watch(history.clone()).await.unwrap()];
            for (i, op) in ops.iter().enumerate() {
                if i == attach_at {
                    streams.push(client.watch(history.clone()).await.unwrap());
                }
                match op {
                    WireOp::Insert(k, v) => {
                        d.lock().insert(format!("k{k}"), *v);
                    }
                    WireOp::Remove(k) => {
                        d.lock().remove(&format!("k{k}"));
                    }
                    WireOp::Clear => d.lock().clear(),
                    WireOp::Notify => {
                        d.notify_update().unwrap();
                    }
                    WireOp::Pause => tokio::time::sleep(Duration::from_micros(300)).await,
                }
            }
            d.notify_update_final().unwrap();
            let expected: BTreeMap<String, Value> =
                d.lock().iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            let mut history = BTreeMap::new();
            for k in 0..8 {
                let key = format!("k{k}");
                if let Some(h) = d.history(&key) {
                    history.insert(key, h.versions);
                }
            }
            let mut watched = Vec::new();
            for mut s in streams {
                let mut a = Assembled::default();
                loop {
                    let u = next(&mut s).await;
                    a.take(&u);
                    if u.last {
                        break;
                    }
                }
                watched.push(a);
            }
            (expected, history, watched)
        });
        for a in watched {
            prop_assert_eq!(&a.state, &expected);
            prop_assert_eq!(&a.samples, &history);
        }
    }
}
