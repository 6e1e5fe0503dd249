//! Micro-benchmarks of the computation's side: `cargo bench -p idict --bench micro`.
//! `notify_update` with 10 changed scalars (the unit of DESIGN.md's figures),
//! the inserts that precede it, and one history sample.

use idict::IDict;
use idict::{BoundedSeries, Sample};

fn main() {
    divan::main();
}

const KEYS: [&str; 10] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];

/// Ten inserts under one lock, then `notify_update` (not served).
#[divan::bench]
fn insert_10_and_notify(b: divan::Bencher) {
    let d = IDict::new("micro");
    let mut i = 0.0;
    b.bench_local(|| {
        {
            let mut g = d.lock();
            for k in KEYS {
                g.insert(k, i);
            }
        }
        i += 1.0;
        d.notify_update().unwrap()
    });
}

/// `notify_update` alone, with 10 changed scalars (not served).
#[divan::bench]
fn notify_10_changed(b: divan::Bencher) {
    let d = IDict::new("micro");
    let mut i = 0.0;
    b.with_inputs(|| {
        let mut g = d.lock();
        for k in KEYS {
            g.insert(k, i);
        }
        i += 1.0;
    })
    .bench_local_values(|()| d.notify_update().unwrap());
}

/// One history sample into a full 1 MiB budget (thinning included).
#[divan::bench]
fn history_push(b: divan::Bencher) {
    let mut h = BoundedSeries::new(1 << 20);
    let mut v = 0u64;
    b.bench_local(|| {
        v += 1;
        h.push(Sample {
            version: v,
            time: v as f64,
            value: v as f64,
        });
    });
}

/// `wait()` while running with no writes queued: the fast path.
#[divan::bench]
fn wait_running(b: divan::Bencher) {
    let d = IDict::new("micro");
    b.bench_local(|| d.wait());
}
