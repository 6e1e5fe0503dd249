//! Triggers over the wire, against a real server on 127.0.0.1:0 and the
//! real client: added, listed and removed by role; a firing that pauses
//! the run at the bad step and reaches every watcher; a NaN that history
//! thinning keeps for GetHistory and a late watcher.

mod common;

use common::{eventually, next, serve};
use futures::StreamExt;
use idict::client::{ClientError, WatchOptions};
use idict::{IDict, Level, RunState, TriggerActions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_are_added_listed_and_removed_by_a_controller_only() {
    let idict = IDict::new("rules");
    idict.lock().insert("residual", 1.0);
    idict.notify_update().unwrap();
    idict
        .trigger(
            "from the program",
            "residual < 0",
            TriggerActions::default(),
        )
        .unwrap();
    let run = serve(&idict);
    let observer = run.observer().await;
    let controller = run.controller().await;

    let refused = observer
        .add_trigger("nan", "isnan(residual)", &TriggerActions::pause())
        .await;
    assert!(
        matches!(refused, Err(ClientError::PermissionDenied(_))),
        "{refused:?}"
    );
    assert!(matches!(
        observer.remove_trigger("from the program").await,
        Err(ClientError::PermissionDenied(_))
    ));

    let bad = controller
        .add_trigger(
            "bad",
            "isnan(residual) && frobnicate(x)",
            &TriggerActions::pause(),
        )
        .await;
    match bad {
        Err(ClientError::InvalidArgument(m)) => {
            assert!(
                m.contains("at column 20") && m.contains("frobnicate"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }

    let added = controller
        .add_trigger(
            "nan",
            "isnan(residual) || energy > 2 * start(energy)",
            &TriggerActions::pause(),
        )
        .await
        .unwrap();
    assert_eq!(
        added.notes,
        ["the run has no key 'energy' yet: the trigger waits for it"]
    );
    let again = controller
        .add_trigger("nan", "residual > 1", &TriggerActions::default())
        .await;
    assert!(
        matches!(&again, Err(ClientError::Rpc { code, .. }) if *code == tonic::Code::AlreadyExists),
        "{again:?}"
    );

    // Both roles list them, in the order they were added.
    let listed = observer.info().await.unwrap().triggers;
    let names: Vec<(&str, bool)> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.from_program))
        .collect();
    assert_eq!(names, [("from the program", true), ("nan", false)]);
    assert!(listed[1].actions.pause);
    assert_eq!(listed[1].actions.level, Level::Warn);

    let left = controller.remove_trigger("nan").await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(matches!(
        controller.remove_trigger("nan").await,
        Err(ClientError::NotFound(_)) | Err(ClientError::Rpc { .. })
    ));
    assert_eq!(idict.triggers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_added_from_outside_holds_the_run_at_the_first_nan_and_every_watcher_sees_it() {
    let idict = IDict::new("blowup");
    let run = serve(&idict);
    let controller = run.controller().await;
    idict.writable("gain", 0.5);
    let steps_after_nan = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (idict, after, stop) = (idict.clone(), steps_after_nan.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut x = 1.0f64;
            let mut nan_published = false;
            while !stop.load(Ordering::Relaxed) && idict.wait() {
                if nan_published {
                    after.fetch_add(1, Ordering::Relaxed);
                }
                let g = idict
                    .lock()
                    .get("gain")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.5);
                // Stable while gain < 1; steered past it, it overflows to
                // inf, and inf - inf is NaN.
                x = x * g * 1e50 / 1e50;
                let residual = if x.is_infinite() { x - x } else { x };
                idict.lock().insert("residual", residual);
                idict.notify_update().unwrap();
                nan_published |= residual.is_nan();
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    eventually("the run to go", || idict.version() > 5).await;
    controller
        .add_trigger(
            "blowup",
            "isnan(residual)",
            &TriggerActions::pause().with_message(Level::Error, "residual is NaN"),
        )
        .await
        .unwrap();
    let mut watch = controller.watch(WatchOptions::default()).await.unwrap();
    next(&mut watch).await;
    controller.set("gain", 1e3).await.unwrap();

    // The watcher gets the firing, and the run holds.
    let firing = loop {
        let u = next(&mut watch).await;
        if let Some(m) = u.messages.iter().find(|m| m.trigger.is_some()) {
            break m.clone();
        }
    };
    assert_eq!(firing.level, Level::Error);
    assert!(firing.text.contains("residual is NaN"), "{}", firing.text);
    let t = firing.trigger.clone().unwrap();
    assert_eq!(t.name, "blowup");
    assert!(t.values[0].1.is_nan());
    eventually("the run to hold", || idict.status().held).await;
    let info = controller.info().await.unwrap();
    assert_eq!(info.status.state, RunState::Paused);
    assert_eq!(info.version, t.version, "held at the version that fired");
    let snap = controller.snapshot("").await.unwrap();
    assert!(snap.values["residual"].as_f64().is_some_and(f64::is_nan));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        steps_after_nan.load(Ordering::Relaxed),
        0,
        "no step after the NaN"
    );
    assert_eq!(info.triggers[0].fired, 1);
    assert_eq!(info.triggers[0].last_fired_version, t.version);
    // A watcher that comes later sees the firing in the log too.
    let mut late = run
        .observer()
        .await
        .watch(WatchOptions::default())
        .await
        .unwrap();
    let first = next(&mut late).await;
    // (By name and version: its NaN value equals nothing.)
    assert!(first.messages.iter().any(|m| {
        m.trigger
            .as_ref()
            .is_some_and(|f| f.name == t.name && f.version == t.version)
    }));

    stop.store(true, Ordering::Relaxed);
    controller.terminate().await.unwrap();
    looper.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nan_thinned_out_of_a_long_history_is_still_reported() {
    // Room for ~100 samples a key: 50,000 pushes are thinned 500 to 1.
    let idict = IDict::builder("long").history_budget_bytes(3200).build();
    let run = serve(&idict);
    for i in 1..=50_000u32 {
        let x = if i == 31_337 {
            f64::NAN
        } else {
            f64::from(i % 7)
        };
        idict.lock().insert("residual", x);
        idict.notify_update().unwrap();
    }
    let c = run.observer().await;
    let h = c.history(&["residual"], 0).await.unwrap();
    let s = &h["residual"];
    assert!(s.len() < 200, "thinned: {}", s.len());
    let i = s.versions.iter().position(|&v| v == 31_337);
    assert!(
        i.is_some_and(|i| s.values[i].is_nan()),
        "GetHistory keeps the NaN"
    );

    let mut late = c
        .watch(WatchOptions {
            with_history: true,
            ..WatchOptions::default()
        })
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(u) = late.next().await {
        let u = u.unwrap();
        for (k, series) in &u.samples {
            if k == "residual" {
                got.extend(series.iter());
            }
        }
        if got.iter().any(|x| x.version == 50_000) {
            break;
        }
    }
    assert!(
        got.iter().any(|x| x.version == 31_337 && x.value.is_nan()),
        "a late watcher gets the NaN"
    );
}

#[test]
fn a_nan_in_a_long_recorded_run_is_in_the_recording() {
    // A small history (thinned 500 to 1 by the end) and a recorder that
    // keeps up: the NaN is in the file, and a replay's history has it.
    let dir = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let live = IDict::builder("long").history_budget_bytes(3200).build();
    let server = idict::ServeOptions::default()
        .runs_dir(runs.path())
        .announce(false)
        .record(dir.path())
        .serve(&live)
        .unwrap();
    let path = server.recording().unwrap().to_path_buf();
    for i in 1..=50_000u32 {
        let x = if i == 31_337 {
            f64::NAN
        } else {
            f64::from(i % 7)
        };
        live.lock().insert("residual", x);
        live.notify_update().unwrap();
    }
    live.notify_update_final().unwrap();
    server.wait_then_close(Duration::from_secs(20));

    let replayer = idict::replay::Replayer::open(&path).unwrap();
    let replay = IDict::builder("long")
        .replay_of(path.display().to_string())
        .build();
    replayer
        .replay(&replay, &idict::replay::ReplayOptions::default())
        .unwrap();
    let s = replay.history("residual").unwrap();
    let i = s.versions.iter().position(|&v| v == 31_337);
    assert!(
        i.is_some_and(|i| s.values[i].is_nan()),
        "the recording keeps the NaN at v31337"
    );
}
