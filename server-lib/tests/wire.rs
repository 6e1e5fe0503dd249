//! Everything that crosses the wire, against a real server on 127.0.0.1:0
//! and the real client.

mod common;

use common::{eventually, next, serve, until_last, value_of};
use futures::StreamExt;
use idict::client::{ClientError, WatchOptions};
use idict::{IDict, Level, RunState, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_first_then_deltas_with_only_changed_and_removed_keys() {
    let idict = IDict::new("deltas");
    {
        let mut d = idict.lock();
        d.insert("a", 1);
        d.insert("b", 2.5);
        d.insert("c", "text");
    }
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();

    let first = next(&mut w).await;
    assert!(first.reset, "the first message is the full state");
    assert_eq!(first.version, 1);
    let keys: Vec<_> = first.changed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);

    {
        let mut d = idict.lock();
        d.insert("b", 3.5);
        d.remove("c");
    }
    idict.notify_update().unwrap();
    let delta = next(&mut w).await;
    assert!(!delta.reset);
    assert_eq!(delta.version, 2);
    assert_eq!(delta.changed, vec![("b".to_string(), Value::Float(3.5))]);
    assert_eq!(delta.removed, vec!["c".to_string()]);
    let b = delta
        .samples
        .iter()
        .find(|(k, _)| k == "b")
        .expect("samples of b");
    assert_eq!(b.1.values, vec![3.5]);

    let snap = client.snapshot("").await.unwrap();
    assert_eq!(snap.version, 2);
    assert_eq!(snap.values.len(), 2);
    assert_eq!(client.snapshot("a").await.unwrap().values.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_gets_the_newest_state_coalesced_and_every_sample() {
    let idict = IDict::new("slow");
    let run = serve(&idict);
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let first = next(&mut w).await;
    assert!(first.reset);

    // 5,000 versions while the watcher does not read.
    for i in 1..=5000i64 {
        idict.lock().insert("x", i);
        idict.notify_update().unwrap();
    }
    let mut seen = Vec::new();
    let mut messages = 0;
    let mut last_value = None;
    while seen.len() < 5000 {
        let u = next(&mut w).await;
        messages += 1;
        // Nothing was lost, so nothing is reported thinned.
        assert!(u.thinned.is_empty(), "{:?}", u.thinned);
        for (k, s) in &u.samples {
            assert_eq!(k, "x");
            seen.extend(s.versions.iter().copied());
        }
        if let Some(v) = value_of(&u, "x") {
            last_value = Some(v.clone());
        }
    }
    assert_eq!(
        seen,
        (1..=5000).collect::<Vec<u64>>(),
        "every sample, in order, once"
    );
    assert_eq!(last_value, Some(Value::Int(5000)));
    assert!(
        messages < 5000,
        "updates were coalesced ({messages} messages)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_many_keys_arrives_whole_in_messages_of_bounded_size() {
    let idict = IDict::new("wide");
    let run = serve(&idict);
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    next(&mut w).await;
    // 300,000 samples while the watcher does not read.
    let (keys, versions) = (100, 3000u64);
    for v in 1..=versions {
        let mut d = idict.lock();
        for k in 0..keys {
            d.insert(format!("k{k:03}"), v as f64);
        }
        drop(d);
        idict.notify_update().unwrap();
    }
    idict.notify_update_final().unwrap();
    let mut seen: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut largest = 0;
    loop {
        let u = next(&mut w).await;
        largest = largest.max(u.samples.iter().map(|(_, s)| s.len()).sum::<usize>());
        for (k, s) in &u.samples {
            seen.entry(k.clone()).or_default().extend(&s.versions);
        }
        if u.last {
            break;
        }
    }
    assert_eq!(seen.len(), keys);
    for (k, v) in &seen {
        assert_eq!(
            v,
            &(1..=versions).collect::<Vec<u64>>(),
            "every sample of {k}, once"
        );
    }
    assert!(largest <= 2 * 65_536, "a message carried {largest} samples");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_the_version_step_advances_exactly_and_resume_continues() {
    let idict = IDict::new("stepper");
    let run = serve(&idict);
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let idict = idict.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !idict.terminated() && !stop.load(Ordering::Relaxed) {
                idict.wait();
                idict.lock().insert("i", i);
                idict.notify_update().unwrap();
                i += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let client = run.controller().await;
    eventually("the run to advance", || idict.version() > 5).await;

    let s = client.pause().await.unwrap();
    assert_eq!(s.state, RunState::Paused);
    eventually("the loop to be held", || idict.status().held).await;
    let held_at = idict.version();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(idict.version(), held_at, "paused: the version stops");
    let info = client.info().await.unwrap();
    assert_eq!(info.status.state, RunState::Paused);
    assert!(info.status.held);

    client.step(3).await.unwrap();
    eventually("three steps", || {
        idict.version() == held_at + 3 && idict.status().held
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        idict.version(),
        held_at + 3,
        "step(3) advances exactly three"
    );
    assert_eq!(client.info().await.unwrap().status.state, RunState::Paused);

    client.resume().await.unwrap();
    eventually("the run to go on", || idict.version() > held_at + 10).await;
    assert_eq!(client.info().await.unwrap().status.state, RunState::Running);
    stop.store(true, Ordering::Relaxed);
    looper.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_wakes_a_paused_run_and_watchers_get_the_final_update_then_the_end() {
    let idict = IDict::builder("term").start_paused(true).build();
    let run = serve(&idict);
    let looper = {
        let idict = idict.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !idict.terminated() {
                idict.wait();
                idict.lock().insert("i", i);
                idict.notify_update().unwrap();
                i += 1;
            }
            idict.lock().insert("done", true);
            idict.notify_update_final().unwrap()
        })
    };
    let client = run.controller().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let first = next(&mut w).await;
    assert_eq!(first.status.state, RunState::Paused);
    eventually("the loop to be held before step 0", || idict.status().held).await;
    assert_eq!(idict.version(), 0, "start_paused holds the first wait()");

    let s = client.terminate().await.unwrap();
    assert!(matches!(
        s.state,
        RunState::Terminating | RunState::Finished
    ));
    let final_version = looper.join().unwrap();
    let mut last = None;
    while let Some(u) = w.next().await {
        last = Some(u.unwrap());
    }
    let last = last.expect("a final update");
    assert!(last.last);
    assert_eq!(last.status.state, RunState::Finished);
    assert_eq!(last.version, final_version);
    assert_eq!(value_of(&last, "done"), Some(&Value::Bool(true)));
    // Finished: further updates are refused, the state stays readable.
    assert!(idict.notify_update().is_err());
    assert_eq!(
        client.snapshot("").await.unwrap().values["done"],
        Value::Bool(true)
    );
    // Terminate stays idempotent; pause is refused on a finished run.
    assert!(client.terminate().await.is_ok());
    assert!(matches!(
        client.pause().await,
        Err(ClientError::FailedPrecondition(_))
    ));
}

/// A view that polls the info (the inspector, each second) asks for the
/// writable keys only: its cost does not grow with the run's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_info_lists_every_key_or_only_the_writable_ones() {
    let idict = IDict::new("info-keys");
    idict.writable("dt", 0.01).range(0.0, 0.25);
    idict.writable("damping", 0.5);
    {
        let mut d = idict.lock();
        for i in 0..1000 {
            d.insert(format!("q{i:04}"), i as f64);
        }
    }
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let client = run.observer().await;
    let all = client.info().await.unwrap();
    assert_eq!(all.keys.len(), 1002);
    let brief = client.info_writable_keys().await.unwrap();
    let names: Vec<&str> = brief.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["damping", "dt"], "sorted, only the writable keys");
    assert!(brief.keys.iter().all(|k| k.writable.is_some()));
    let dt = brief.keys.iter().find(|k| k.name == "dt").unwrap();
    assert_eq!(dt.kind, idict::ValueKind::Float);
    assert_eq!(brief.version, all.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_writes_are_checked_then_applied_at_the_next_wait_with_their_origin() {
    let idict = IDict::new("steer");
    idict.writable("dt", 0.01).range(0.0, 0.25);
    idict.lock().insert("residual", 1.0);
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let client = run.controller().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let first = next(&mut w).await;
    assert_eq!(value_of(&first, "dt"), Some(&Value::Float(0.01)));

    let e = client.set("residual", 0.0).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::PermissionDenied(m) if m.contains("residual") && m.contains("dt")),
        "{e}"
    );
    let e = client.set("nope", 0.0).await.unwrap_err();
    assert!(matches!(e, ClientError::PermissionDenied(_)));
    let e = client.set("dt", "fast").await.unwrap_err();
    assert!(
        matches!(&e, ClientError::InvalidArgument(m) if m.contains("dt expects float")),
        "{e}"
    );
    let e = client.set("dt", 0.5).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::InvalidArgument(m) if m.contains("above the maximum 0.25")),
        "{e}"
    );
    let observer = run.observer().await;
    assert!(matches!(
        observer.set("dt", 0.1).await,
        Err(ClientError::PermissionDenied(_))
    ));

    let receipt = client.set("dt", 0.125).await.unwrap();
    // Not applied until the computation's safe point.
    assert_eq!(idict.lock().get("dt"), Some(&Value::Float(0.01)));
    idict.wait();
    assert_eq!(idict.lock().get("dt"), Some(&Value::Float(0.125)));
    let v = idict.notify_update().unwrap();
    let u = next(&mut w).await;
    assert_eq!(u.version, v);
    assert_eq!(value_of(&u, "dt"), Some(&Value::Float(0.125)));
    assert_eq!(u.applied.len(), 1);
    let a = &u.applied[0];
    assert_eq!(
        (a.write_id, a.key.as_str(), a.version),
        (receipt.write_id, "dt", v)
    );
    assert!(
        a.origin.contains("test-client") && a.origin.contains("127.0.0.1"),
        "{}",
        a.origin
    );

    // sync() applies too, in arrival order.
    client.set("dt", 0.2).await.unwrap();
    client.set("dt", 0.0).await.unwrap();
    let applied = idict.sync();
    assert_eq!(
        applied.iter().map(|a| a.value.clone()).collect::<Vec<_>>(),
        [Value::Float(0.2), Value::Float(0.0)]
    );
    assert_eq!(idict.lock().get("dt"), Some(&Value::Float(0.0)));

    let info = client.info().await.unwrap();
    let dt = info.keys.iter().find(|k| k.name == "dt").unwrap();
    let spec = dt.writable.as_ref().expect("dt is writable");
    assert_eq!((spec.min, spec.max), (Some(0.0), Some(0.25)));
    assert!(
        info.keys
            .iter()
            .find(|k| k.name == "residual")
            .unwrap()
            .writable
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_are_enforced() {
    let idict = IDict::new("auth");
    let run = serve(&idict);
    let none = run.client_with(None).await;
    assert!(matches!(
        none.info().await,
        Err(ClientError::Unauthenticated(_))
    ));
    let wrong = run.client_with(Some("not-the-token")).await;
    assert!(matches!(
        wrong.snapshot("").await,
        Err(ClientError::Unauthenticated(_))
    ));
    assert!(matches!(
        wrong.watch(WatchOptions::default()).await,
        Err(ClientError::Unauthenticated(_))
    ));
    let observer = run.observer().await;
    assert!(observer.info().await.is_ok());
    assert_eq!(
        observer.info().await.unwrap().role,
        Some(idict::Role::Observer)
    );
    assert!(matches!(
        observer.pause().await,
        Err(ClientError::PermissionDenied(_))
    ));
    assert!(matches!(
        observer.terminate().await,
        Err(ClientError::PermissionDenied(_))
    ));
    assert!(!idict.terminated());
    let controller = run.controller().await;
    assert_eq!(
        controller.info().await.unwrap().role,
        Some(idict::Role::Controller)
    );
    assert!(controller.pause().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_computation_is_seen_as_failed_with_its_message() {
    let idict = IDict::new("panics");
    let run = serve(&idict);
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    next(&mut w).await;
    let worker = {
        let idict = idict.clone();
        std::thread::spawn(move || {
            for i in 0..10 {
                idict.wait();
                idict.lock().insert("i", i);
                idict.notify_update().unwrap();
            }
            panic!("solver diverged at step 10");
        })
    };
    assert!(worker.join().is_err());
    let mut last = None;
    while let Some(u) = w.next().await {
        last = Some(u.unwrap());
    }
    let last = last.unwrap();
    assert!(last.last);
    assert_eq!(last.status.state, RunState::Failed);
    assert!(
        last.status.message.contains("solver diverged at step 10"),
        "{}",
        last.status.message
    );
    let info = client.info().await.unwrap();
    assert_eq!(info.status.state, RunState::Failed);
    assert_eq!(
        client.snapshot("").await.unwrap().values["i"],
        Value::Int(9),
        "state stays readable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_array_arrives_whole_and_bit_exact() {
    let idict = IDict::new("big");
    let n = 8 << 20; // 8 Mi f64 = 64 MiB
    let data: Vec<f64> = (0..n)
        .map(|i| (i as f64).sin() * 1e300 + i as f64)
        .collect();
    let expected = data.clone();
    idict.lock().insert("u", data);
    idict.notify_update().unwrap();
    let run = serve(&idict);
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let first = next(&mut w).await;
    let a = value_of(&first, "u")
        .and_then(Value::as_array)
        .expect("array u");
    assert_eq!(a.shape(), &[n]);
    assert_eq!(a.bytes().len(), 64 << 20);
    let got = a.to_f64_vec();
    assert!(
        got.iter()
            .zip(&expected)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_watchers_all_get_the_final_update() {
    let idict = IDict::new("many");
    let run = serve(&idict);
    let client = run.observer().await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = client.clone();
        let mut w = c.watch(WatchOptions::default()).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut last = None;
            while let Some(u) = w.next().await {
                last = Some(u.unwrap());
            }
            last.unwrap()
        }));
    }
    eventually("100 watchers", || run.server.watchers() == 100).await;
    let computation = {
        let idict = idict.clone();
        std::thread::spawn(move || {
            for i in 0..1000 {
                idict.lock().insert("i", i);
                idict.notify_update().unwrap();
            }
            idict.notify_update_final().unwrap()
        })
    };
    let final_version = computation.join().unwrap();
    for t in tasks {
        let last = t.await.unwrap();
        assert!(last.last);
        assert_eq!(last.version, final_version);
        assert_eq!(last.status.state, RunState::Finished);
    }
    eventually("all streams closed", || run.server.watchers() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_stream_leaves_the_server_and_the_run_unharmed() {
    let idict = IDict::new("killed");
    let run = serve(&idict);
    let address = run.server.address().to_string();
    let token = run.server.tokens().observer.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let computation = {
        let idict = idict.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                idict.lock().insert("u", vec![i as f64; 10_000]);
                idict.notify_update().unwrap();
                i += 1;
            }
        })
    };
    // A client on a runtime of its own, dropped mid-stream: its sockets are
    // torn down without a clean close.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let target = idict::client::Target {
                address,
                token: Some(token),
                run: None,
            };
            let c = idict::client::Client::connect_target(target, Default::default())
                .await
                .unwrap();
            let mut w = c.watch(WatchOptions::default()).await.unwrap();
            for _ in 0..5 {
                next(&mut w).await;
            }
        });
        drop(rt);
    })
    .join()
    .unwrap();
    eventually("the killed watcher to be gone", || {
        run.server.watchers() == 0
    })
    .await;
    let before = idict.version();
    eventually("the run to go on", || idict.version() > before + 100).await;
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    assert!(next(&mut w).await.reset);
    assert!(next(&mut w).await.version > before);
    stop.store(true, Ordering::Relaxed);
    computation.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_the_whole_thinned_history_of_a_million_updates() {
    let budget = 64 * 1024;
    let idict = IDict::builder("history")
        .history_budget_bytes(budget)
        .build();
    for i in 1..=1_000_000i64 {
        idict.lock().insert("loss", 1.0 / i as f64);
        idict.notify_update().unwrap();
    }
    let run = serve(&idict);
    let client = run.observer().await;
    let h = client.history(&["loss"], 0).await.unwrap();
    let s = &h["loss"];
    assert!(
        s.len() * idict::SAMPLE_BYTES <= budget,
        "{} samples",
        s.len()
    );
    assert!(s.len() > 1000);
    assert_eq!((s.versions[0], s.values[0]), (1, 1.0));
    assert_eq!(
        (*s.versions.last().unwrap(), *s.values.last().unwrap()),
        (1_000_000, 1e-6)
    );

    // The same curve comes atomically with the first state of a watch.
    let mut w = client
        .watch(WatchOptions {
            with_history: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let first = next(&mut w).await;
    let (_, ws) = first.samples.iter().find(|(k, _)| k == "loss").unwrap();
    assert_eq!(ws, s);

    assert!(matches!(
        client.history(&["nope"], 0).await,
        Err(ClientError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_watchers_and_late_joiners() {
    let idict = IDict::new("log");
    idict.message(Level::Info, "starting");
    let run = serve(&idict);
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let first = next(&mut w).await;
    assert_eq!(
        first
            .messages
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["starting"]
    );
    idict.message(Level::Warn, "residual grew");
    let u = next(&mut w).await;
    assert_eq!(u.messages.len(), 1);
    assert_eq!(
        (u.messages[0].level, u.messages[0].text.as_str()),
        (Level::Warn, "residual grew")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_from_a_version() {
    let idict = IDict::new("resume");
    for i in 0..10 {
        let mut d = idict.lock();
        d.insert("i", i);
        if i == 3 {
            d.insert("gone", 1);
        }
        if i == 7 {
            d.remove("gone");
        }
        drop(d);
        idict.notify_update().unwrap();
    }
    let run = serve(&idict);
    let client = run.observer().await;
    let mut w = client
        .watch(WatchOptions {
            since_version: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let u = next(&mut w).await;
    assert!(!u.reset);
    assert_eq!(u.version, 10);
    assert_eq!(u.changed, vec![("i".to_string(), Value::Int(9))]);
    assert_eq!(u.removed, vec!["gone".to_string()]);
    assert_eq!(u.samples[0].1.versions, vec![6, 7, 8, 9, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_found_by_run_file_and_the_run_file_is_removed_on_close() {
    let idict = IDict::new("findme");
    let run = serve(&idict);
    let path = run.server.run_file().unwrap().to_path_buf();
    let rf = idict::runfile::read_run_file(&path).unwrap();
    assert_eq!(rf.name, "findme");
    assert_eq!(rf.pid, std::process::id());
    let client = idict::client::Client::connect(path.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(client.info().await.unwrap().name, "findme");
    let found = idict::runfile::list_runs_in(run.runs_dir.path()).unwrap();
    assert_eq!(found.len(), 1);
    let common::Run {
        server, runs_dir, ..
    } = run;
    server.close();
    assert!(!path.exists());
    assert!(
        idict::runfile::list_runs_in(runs_dir.path())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_domain_sockets_work() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run.sock");
    let idict = IDict::new("uds");
    idict.lock().insert("x", 1);
    idict.notify_update().unwrap();
    let server = idict::ServeOptions::default()
        .bind(idict::Bind::Unix(sock.clone()))
        .write_run_file(false)
        .announce(false)
        .serve(&idict)
        .unwrap();
    assert!(server.address().starts_with("unix:"));
    let target = idict::client::Target {
        address: server.address().to_string(),
        token: Some(server.tokens().observer.clone()),
        run: None,
    };
    let c = idict::client::Client::connect_target(target, Default::default())
        .await
        .unwrap();
    assert_eq!(c.snapshot("").await.unwrap().values["x"], Value::Int(1));
    drop(server);
    assert!(!sock.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_served_and_guarded_by_the_token() {
    let idict = IDict::new("health");
    let run = serve(&idict);
    let channel = tonic::transport::Endpoint::from_shared(run.server.address().to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", run.server.tokens().observer)
            .parse()
            .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        },
    );
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: idict::proto::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_lists_the_inspector_service() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let idict = IDict::new("reflect");
    let run = serve(&idict);
    let channel = tonic::transport::Endpoint::from_shared(run.server.address().to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", run.server.tokens().observer)
            .parse()
            .unwrap();
    let mut refl =
        ServerReflectionClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        });
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a list of services");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"idict.v1.Inspector"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_far_behind_a_small_history_budget_still_gets_every_sample() {
    // 512 samples of budget, of which the newest 128 are always whole; the
    // watcher reads nothing while 3,000 versions are published, each with a
    // 64 KiB value, so its flow-control window fills and the server's cursor
    // for it falls far behind.
    let idict = IDict::builder("lagging")
        .history_budget_bytes(512 * idict::SAMPLE_BYTES)
        .build();
    let run = serve(&idict);
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    assert!(next(&mut w).await.reset);
    let blob = "b".repeat(64 * 1024);
    for i in 1..=3000i64 {
        let mut d = idict.lock();
        d.insert("x", i);
        d.insert("blob", blob.as_str());
        drop(d);
        idict.notify_update().unwrap();
    }
    idict.notify_update_final().unwrap();
    let mut seen = Vec::new();
    while let Some(u) = w.next().await {
        let u = u.unwrap();
        assert!(
            u.thinned.is_empty(),
            "nothing lost, nothing to report: {:?}",
            u.thinned
        );
        for (_, s) in &u.samples {
            seen.extend(s.versions.iter().copied());
        }
    }
    let missing: Vec<u64> = (1..=3000).filter(|v| !seen.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "{} samples lost to thinning, first {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(seen.len(), 3000, "each sample once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_first_state_arrives_in_chunks_joined_into_one_update() {
    let idict = IDict::new("chunky");
    {
        let mut d = idict.lock();
        for i in 0..200 {
            d.insert(format!("key{i:03}"), "x".repeat(1000));
        }
    }
    idict.notify_update().unwrap();
    let mut opts = idict::ServeOptions::default()
        .write_run_file(false)
        .announce(false);
    opts.snapshot_chunk_bytes = 16 * 1024;
    let server = opts.serve(&idict).unwrap();
    let token = server.tokens().observer.clone();
    // The raw stream shows the chunks...
    let mut raw = common::raw_inspector(server.address(), &token)
        .await
        .watch(idict::proto::v1::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let target = idict::client::Target::at(server.address(), Some(token));
    let client = idict::client::Client::connect_target(target, Default::default())
        .await
        .unwrap();
    let mut chunks = 0;
    loop {
        let m = raw.message().await.unwrap().unwrap();
        assert_eq!(m.reset, chunks == 0, "only the first chunk resets");
        chunks += 1;
        if !m.more {
            break;
        }
    }
    assert!(chunks >= 10, "{chunks} chunks");
    // ...and the client joins them into one full state.
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let first = next(&mut w).await;
    assert!(first.reset);
    assert_eq!(first.changed.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_async_serves_from_inside_a_runtime() {
    let idict = IDict::new("async");
    idict.lock().insert("x", 1.5);
    idict.notify_update().unwrap();
    let server = idict::ServeOptions::default()
        .write_run_file(false)
        .announce(false)
        .serve_async(&idict)
        .await
        .unwrap();
    assert!(matches!(
        idict::ServeOptions::default()
            .write_run_file(false)
            .announce(false)
            .serve(&idict),
        Err(idict::ServeError::AlreadyServed)
    ));
    let target =
        idict::client::Target::at(server.address(), Some(server.tokens().observer.clone()));
    let c = idict::client::Client::connect_target(target, Default::default())
        .await
        .unwrap();
    assert_eq!(c.snapshot("").await.unwrap().values["x"], Value::Float(1.5));
}

/// Every message of a raw Watch stream up to one whose `more` is false.
async fn raw_update(
    raw: &mut tonic::Streaming<idict::proto::v1::WatchUpdate>,
) -> Vec<idict::proto::v1::WatchUpdate> {
    let mut messages = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), raw.message())
            .await
            .expect("a message within 20 s")
            .expect("no error")
            .expect("the stream goes on");
        let more = m.more;
        messages.push(m);
        if !more {
            return messages;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_arrive_in_parts_and_no_message_is_much_larger_than_a_chunk() {
    use prost::Message;
    let array = |n: usize, x: f64| {
        idict::Value::Array(
            idict::NdArray::from_f64_vec((0..n).map(|i| x + i as f64).collect(), vec![n]).unwrap(),
        )
    };
    let field = array(400_000, 0.5);
    let blob = idict::Value::Bytes(bytes::Bytes::from(vec![7u8; 200_000]));
    let pair = idict::Value::List(vec![array(100_000, 1.0), idict::Value::Int(3)]);
    let idict = IDict::new("parts");
    {
        let mut d = idict.lock();
        d.insert("blob", blob.clone());
        d.insert("field", field.clone());
        d.insert("pair", pair.clone());
        d.insert("step", 1i64);
    }
    idict.notify_update().unwrap();
    let run = common::serve(&idict);
    let token = run.server.tokens().observer.clone();
    let mut raw = common::raw_inspector(run.server.address(), &token)
        .await
        .watch(idict::proto::v1::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let client = run.observer().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();

    // The first state: in parts of 1 MiB (the core's `PART_BYTES`), the
    // rest in chunks; each message at most that and a little.
    let chunk = idict::ServeOptions::default().snapshot_chunk_bytes;
    let part = 1 << 20;
    let check = |messages: &[idict::proto::v1::WatchUpdate]| {
        for m in messages {
            let most = if m.part.is_some() { part } else { chunk };
            assert!(
                m.encoded_len() <= most + 1024,
                "a message of {} bytes",
                m.encoded_len()
            );
        }
        messages.iter().filter(|m| m.part.is_some()).count()
    };
    let first = raw_update(&mut raw).await;
    assert!(first[0].reset);
    let parts = check(&first);
    // The field in 4 parts, the blob and the pair in one each.
    assert_eq!(parts, 3_200_000usize.div_ceil(part) + 2, "{parts} parts");
    let u = next(&mut w).await;
    assert!(u.reset);
    let keys: Vec<&str> = u.changed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["blob", "field", "pair", "step"], "sorted, each once");
    assert_eq!(value_of(&u, "field"), Some(&field));
    assert_eq!(value_of(&u, "blob"), Some(&blob));
    assert_eq!(value_of(&u, "pair"), Some(&pair));

    // A change of a large value: the small changes first, then the parts,
    // all of one version; the client applies them as one update.
    let field2 = array(400_000, -2.0);
    {
        let mut d = idict.lock();
        d.insert("field", field2.clone());
        d.insert("step", 2i64);
    }
    let v = idict.notify_update().unwrap();
    let delta = raw_update(&mut raw).await;
    check(&delta);
    assert!(delta.iter().all(|m| m.version == v && !m.reset));
    assert_eq!(delta[0].changed.len(), 1, "step, with the small changes");
    let u = next(&mut w).await;
    assert_eq!(u.version, v);
    let keys: Vec<&str> = u.changed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["field", "step"]);
    assert_eq!(value_of(&u, "field"), Some(&field2));

    // The final update ends the stream after its last part.
    idict.lock().insert("field", field.clone());
    idict.notify_update_final().unwrap();
    let fin = raw_update(&mut raw).await;
    assert!(fin.last().unwrap().last && fin.iter().rev().skip(1).all(|m| !m.last));
    let (u, _) = until_last(&mut w).await;
    assert_eq!(value_of(&u, "field"), Some(&field));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_ask_for_packed_samples_gets_the_repeated_form() {
    use idict::proto::v1 as pb;
    let idict = IDict::new("forms");
    for i in 0..3000u64 {
        {
            let mut d = idict.lock();
            d.insert("x", i as f64 * 0.5);
            if i % 3 == 0 {
                d.insert("y", -(i as f64));
            }
        }
        idict.notify_update().unwrap();
    }
    let run = common::serve(&idict);
    let token = run.server.tokens().observer.clone();
    let mut raw = common::raw_inspector(run.server.address(), &token).await;
    // As an older client or grpcurl asks: the parallel repeated fields.
    let mut stream = raw
        .get_history(pb::GetHistoryRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut old: std::collections::BTreeMap<String, Vec<(u64, f64, f64)>> = Default::default();
    while let Some(chunk) = stream.message().await.unwrap() {
        for s in chunk.series {
            assert!(s.packed_values.is_empty() && s.packed_times.is_empty());
            let rows = s.versions.iter().zip(&s.times).zip(&s.values);
            old.entry(s.key)
                .or_default()
                .extend(rows.map(|((&v, &t), &x)| (v, t, x)));
        }
    }
    // The client asks for the packed form and reads the same samples.
    let client = run.observer().await;
    let new = client.history(&[], 0).await.unwrap();
    assert_eq!(old.len(), 2);
    for (key, series) in &new {
        let rows: Vec<_> = (0..series.len())
            .map(|i| (series.versions[i], series.times[i], series.values[i]))
            .collect();
        assert_eq!(&rows, &old[key], "{key}");
    }
    assert_eq!(new["y"].len(), 1000);
    // Watch with history too, unpacked on request.
    let mut w = raw
        .watch(pb::WatchRequest {
            with_history: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut xs = 0;
    loop {
        let m = w.message().await.unwrap().unwrap();
        for s in &m.samples {
            assert!(s.packed_values.is_empty());
            xs += if s.key == "x" { s.values.len() } else { 0 };
        }
        if !m.more {
            break;
        }
    }
    assert_eq!(xs, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_size_of_zero_still_delivers_the_state() {
    let idict = IDict::new("zero");
    for i in 0..5 {
        idict.lock().insert(format!("k{i}"), "x".repeat(3000));
    }
    idict.notify_update().unwrap();
    let server = idict::ServeOptions {
        snapshot_chunk_bytes: 0,
        ..Default::default()
    }
    .write_run_file(false)
    .announce(false)
    .serve(&idict)
    .unwrap();
    let target =
        idict::client::Target::at(server.address(), Some(server.tokens().observer.clone()));
    let client = idict::client::Client::connect_target(target, Default::default())
        .await
        .unwrap();
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let first = next(&mut w).await;
    assert_eq!(first.changed.len(), 5);
}

/// Metrics are extra: a metrics address already taken (a second task on a
/// node, an inherited IDICT_METRICS) leaves the run served without them.
#[test]
fn a_taken_metrics_address_leaves_the_run_served_without_metrics() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let idict = IDict::new("metrics-taken");
    let server = idict::ServeOptions {
        metrics: Some(taken.local_addr().unwrap()),
        ..Default::default()
    }
    .write_run_file(false)
    .announce(false)
    .serve(&idict)
    .expect("served, metrics or not");
    assert_eq!(server.metrics_address(), None);
    assert!(server.address().starts_with("http://127.0.0.1:"));
}

/// Issue 16: the flight recorder keeps what the run published (every
/// scalar sample, the values, the final update) and the control actions
/// with who took them, in a file that reads back after the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_reads_back_with_every_sample_and_its_control_actions() {
    use idict::proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let idict = IDict::new("recorded");
    let server = idict::ServeOptions {
        record: Some(dir.path().to_path_buf()),
        // Every version of the field (by default, one a second of run time).
        record_arrays: Some(idict::RecordArrays::All),
        ..Default::default()
    }
    .write_run_file(false)
    .announce(false)
    .serve(&idict)
    .unwrap();
    let path = server.recording().expect("recorded").to_path_buf();
    let target =
        idict::client::Target::at(server.address(), Some(server.tokens().controller.clone()));
    let client = idict::client::Client::connect_target(target, Default::default())
        .await
        .unwrap();
    for i in 0..500i64 {
        {
            let mut d = idict.lock();
            d.insert("x", i);
            if i % 100 == 0 {
                d.insert(
                    "field",
                    Value::array(vec![i as f64; 64], vec![8, 8]).unwrap(),
                );
            }
        }
        idict.notify_update().unwrap();
        if i == 200 {
            client.pause().await.unwrap();
            client.resume().await.unwrap();
        }
    }
    idict.notify_update_final().unwrap();
    // Closing waits for the recorder's last write.
    tokio::task::spawn_blocking(move || server.wait_then_close(Duration::from_secs(20)))
        .await
        .unwrap();
    let entries: Vec<pb::RecordEntry> = idict::recording::open(&path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| matches!(&e.kind, Some(pb::record_entry::Kind::Update(u)) if u.last)),
        "no final update recorded"
    );
    let recording = idict::recording::open(&path).unwrap();
    assert_eq!(recording.header.name, "recorded");
    assert_eq!(recording.header.pid, std::process::id());
    let (mut xs, mut controls, mut fields) = (Vec::new(), Vec::new(), 0);
    for e in entries {
        match e.kind {
            Some(pb::record_entry::Kind::Update(u)) => {
                assert!(u.thinned.is_empty(), "nothing thinned: {:?}", u.thinned);
                for s in u.samples.into_iter().filter(|s| s.key == "x") {
                    let n = s.packed_values.len() / 8;
                    for k in 0..n {
                        let b: [u8; 8] = s.packed_values[k * 8..k * 8 + 8].try_into().unwrap();
                        xs.push(f64::from_le_bytes(b) as i64);
                    }
                }
                fields += u.changed.iter().filter(|e| e.key == "field").count()
                    + usize::from(u.part.as_ref().is_some_and(|p| p.key == "field"));
            }
            Some(pb::record_entry::Kind::Control(c)) => controls.push(c),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        xs,
        (0..500).collect::<Vec<_>>(),
        "every sample of x, once, in order"
    );
    assert!(fields >= 1, "the array was recorded");
    let actions: Vec<i32> = controls.iter().map(|c| c.action).collect();
    assert_eq!(
        actions,
        [pb::Action::Pause as i32, pb::Action::Resume as i32]
    );
    assert!(
        controls[0].origin.contains("idict-client"),
        "{:?}",
        controls[0].origin
    );
    assert!(controls[0].version >= 200, "{}", controls[0].version);
}

/// Issue 16: a recording replays into a run that publishes the same
/// samples, in the same order, and ends in the same state.
#[test]
fn a_recording_replays_the_same_samples_and_the_same_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let original = IDict::new("to-replay");
    let server = idict::ServeOptions {
        record: Some(dir.path().to_path_buf()),
        ..Default::default()
    }
    .write_run_file(false)
    .announce(false)
    .serve(&original)
    .unwrap();
    let path = server.recording().unwrap().to_path_buf();
    for i in 0..300i64 {
        {
            let mut d = original.lock();
            d.insert("x", i);
            if i % 3 == 0 {
                d.insert("y", i as f64 * 0.5);
            }
            if i % 100 == 0 {
                d.insert(
                    "field",
                    Value::array(vec![i as f64; 40_000], vec![200, 200]).unwrap(),
                );
            }
        }
        original.notify_update().unwrap();
    }
    original.message(Level::Warn, "half way");
    original.lock().insert("label", "done");
    original.notify_update_final().unwrap();
    // Closing waits for the recorder's last write.
    server.wait_then_close(Duration::from_secs(20));

    let replayed = IDict::builder("to-replay")
        .replay_of(path.display().to_string())
        .build();
    let replayer = idict::replay::Replayer::open(&path).unwrap();
    let summary = replayer
        .replay(&replayed, &idict::replay::ReplayOptions::default())
        .unwrap();
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.samples, 300 + 100, "every sample of x and y");
    let xs = replayed.history("x").unwrap();
    assert_eq!(xs.values, (0..300).map(|i| i as f64).collect::<Vec<_>>());
    // At the recorded versions and times, to the nanosecond.
    let live = original.history("x").unwrap();
    assert_eq!(xs.versions, live.versions);
    for (a, b) in xs.times.iter().zip(&live.times) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
    assert_eq!(replayed.version(), original.version());
    let ys = replayed.history("y").unwrap();
    assert_eq!(
        ys.values,
        (0..100).map(|i| i as f64 * 1.5).collect::<Vec<_>>()
    );
    let d = replayed.lock();
    assert_eq!(
        d.get("x"),
        Some(&Value::Int(299)),
        "an int key stays an int"
    );
    assert_eq!(d.get("label"), Some(&Value::Str("done".into())));
    let field = d.get("field").and_then(Value::as_array).expect("the array");
    assert_eq!(field.shape(), [200, 200]);
}

/// `pause --at-step N` holds the run when it has done exactly N steps,
/// a write scheduled at a step is applied at that wait() (not before), a
/// step already past is refused, and `terminate --at-step` ends the run
/// at its step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_pause_write_and_terminate_act_at_their_step() {
    let idict = IDict::new("scheduled");
    idict.writable("dt", 1.0);
    let run = serve(&idict);
    let looper = {
        let idict = idict.clone();
        std::thread::spawn(move || {
            // (step, dt) as the loop saw them after each wait.
            let mut seen = Vec::new();
            let mut step = 0u64;
            while idict.wait() {
                step += 1;
                let dt = idict.lock().get("dt").and_then(|v| v.as_f64());
                seen.push((step, dt));
                idict.lock().insert("step", step);
                idict.notify_update().unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
            seen
        })
    };
    let client = run.controller().await;
    eventually("the run to advance", || idict.status().step > 5).await;
    let at = idict.status().step + 200;
    let s = client.pause_at(at).await.unwrap();
    assert_eq!(s.pause_at, Some(at));
    client.set_at("dt", 2.0, at - 100).await.unwrap();
    eventually("the hold", || idict.status().held).await;
    let s = client.info().await.unwrap().status;
    assert_eq!((s.state, s.step, s.pause_at), (RunState::Paused, at, None));

    // Past: refused, with the step the run is at.
    let past = client.pause_at(at - 1).await.unwrap_err().to_string();
    assert!(past.contains(&format!("step {} is past", at - 1)), "{past}");
    assert!(client.set_at("dt", 3.0, 1).await.is_err());

    client.terminate_at(at + 3).await.unwrap();
    client.resume().await.unwrap();
    let seen = looper.join().unwrap();
    // The loop went on after steps 1..=at+3: the terminate held the wait after step at+3.
    assert_eq!(seen.last().map(|s| s.0), Some(at + 3));
    // dt became 2.0 at the wait after step at-100, so from step at-99 on.
    for (step, dt) in seen {
        let want = if step > at - 100 { 2.0 } else { 1.0 };
        assert_eq!(dt, Some(want), "dt at step {step}");
    }
}
