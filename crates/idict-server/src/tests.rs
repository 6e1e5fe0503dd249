//! What the server promises the computation about its own locks, checked
//! from inside (the counts are not visible through the wire).

use futures::StreamExt;
use idict_client::{Client, Target, WatchOptions};
use idict_core::IDict;
use idict_core::tuning::SAMPLES_PER_LOCK;

/// A late joiner's first state, GetHistory and a checkpoint copy a long
/// history a lock's worth at a time, never whole: the computation, which
/// needs that lock to record its samples, waits microseconds, not the time
/// it takes to copy 100,000 samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_histories_are_copied_a_slice_per_lock() {
    const SAMPLES: u64 = 100_000;
    let d = IDict::builder("long")
        .history_budget_bytes(4 * SAMPLES as usize * idict_core::SAMPLE_BYTES)
        .build();
    for i in 0..SAMPLES {
        d.lock().insert("x", i as f64);
        d.notify_update().expect("notify");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::ServeOptions::default()
        .runs_dir(dir.path())
        .announce(false)
        .serve(&d)
        .expect("serve");
    let target = Target::at(server.address(), Some(server.tokens().observer.clone()));
    let client = Client::connect_target(target, Default::default())
        .await
        .expect("connect");
    let mut watch = client
        .watch(WatchOptions {
            with_history: true,
            ..WatchOptions::default()
        })
        .await
        .expect("watch");
    let first = watch.next().await.expect("first").expect("no error");
    let sent: usize = first.samples.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(sent as u64, SAMPLES, "the first state has every sample");
    let history = client.history(&["x"], 0).await.expect("history");
    assert_eq!(history["x"].len() as u64, SAMPLES);
    d.checkpoint(dir.path().join("c")).expect("checkpoint");
    let series = d
        .inner
        .published
        .read()
        .history
        .get("x")
        .cloned()
        .expect("x");
    let most = series.lock().most_copied.get();
    assert!(
        most <= SAMPLES_PER_LOCK,
        "{most} samples were copied under one lock"
    );
}
