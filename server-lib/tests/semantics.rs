//! The semantics of `IDict` a computation relies on, without the wire.

use idict::{IDict, Level, RunState, UpdateError, Value, WaitOutcome};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_map_api_works_and_nothing_is_published_before_notify() {
    let d = IDict::new("map");
    {
        let mut g = d.lock();
        assert!(g.is_empty());
        assert_eq!(g.insert("b", 2), None);
        assert_eq!(g.insert("a", 1.5), None);
        assert_eq!(g.insert("b", 3), Some(Value::Int(2)));
        assert!(g.contains_key("a"));
        assert_eq!(g.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(g.iter().count(), 2);
        assert_eq!(g.len(), 2);
        assert_eq!(g.get("b"), Some(&Value::Int(3)));
        assert_eq!(g.remove("a"), Some(Value::Float(1.5)));
        assert_eq!(g.remove("a"), None);
    }
    assert_eq!(d.version(), 0, "nothing published before notify");
    assert_eq!(d.notify_update(), Ok(1));
    assert_eq!(
        d.history("b").unwrap().values,
        vec![3.0],
        "one sample per notify, not per insert"
    );
    d.lock().clear();
    assert_eq!(d.notify_update(), Ok(2));
    assert!(d.lock().is_empty());
}

#[test]
fn notify_publishes_only_changed_keys_and_samples_only_changed_scalars() {
    let d = IDict::new("changes");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    d.add_callback(move |_, e| {
        let mut changed: Vec<_> = e.changed().map(str::to_string).collect();
        changed.sort();
        s2.lock().unwrap().push((e.version(), changed));
    });
    {
        let mut g = d.lock();
        g.insert("x", 1.0);
        g.insert("y", 2.0);
        g.insert("s", "text");
    }
    d.notify_update().unwrap();
    d.lock().insert("x", 1.5);
    d.notify_update().unwrap();
    d.notify_update().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (1, vec!["s".to_string(), "x".to_string(), "y".to_string()]),
            (2, vec!["x".to_string()]),
            (3, vec![]),
        ]
    );
    assert_eq!(d.history("x").unwrap().versions, vec![1, 2]);
    assert_eq!(d.history("y").unwrap().versions, vec![1]);
    assert!(d.history("s").is_none(), "strings have no history");
}

#[test]
fn wait_returns_at_once_while_running_and_blocks_while_paused() {
    let d = IDict::new("gate");
    assert!(d.wait());
    assert_eq!(d.wait_timeout(Duration::from_millis(1)), WaitOutcome::Go);
    d.pause();
    assert_eq!(d.status().state, RunState::Paused);
    assert_eq!(
        d.wait_timeout(Duration::from_millis(20)),
        WaitOutcome::StillPaused,
        "paused: wait_timeout gives up"
    );
    let passed = Arc::new(AtomicU64::new(0));
    let worker = {
        let (d, passed) = (d.clone(), passed.clone());
        thread::spawn(move || {
            while !d.terminated() {
                d.wait();
                passed.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    wait_for("held", || d.status().held);
    assert_eq!(passed.load(Ordering::SeqCst), 0);
    d.step(3);
    wait_for("three passes", || {
        passed.load(Ordering::SeqCst) == 3 && d.status().held
    });
    thread::sleep(Duration::from_millis(20));
    assert_eq!(
        passed.load(Ordering::SeqCst),
        3,
        "exactly three wait() calls passed"
    );
    // Pausing a paused run changes nothing; a pause set before a wait is never missed.
    d.pause();
    d.resume();
    wait_for("running", || passed.load(Ordering::SeqCst) > 100);
    d.pause();
    wait_for("held again", || d.status().held);
    d.terminate();
    worker.join().unwrap();
    assert!(d.terminated());
    assert_eq!(d.status().state, RunState::Terminating);
    d.wait();
}

#[test]
fn start_paused_holds_the_first_wait_until_resumed() {
    let d = IDict::builder("sp").start_paused(true).build();
    let worker = {
        let d = d.clone();
        thread::spawn(move || {
            d.wait();
            d.lock().insert("started", true);
            d.notify_update().unwrap()
        })
    };
    wait_for("held", || d.status().held);
    assert_eq!(d.version(), 0);
    d.resume();
    assert_eq!(worker.join().unwrap(), 1);
}

#[test]
fn terminate_wakes_a_paused_wait() {
    let d = IDict::new("t");
    d.pause();
    let worker = {
        let d = d.clone();
        thread::spawn(move || d.wait())
    };
    wait_for("held", || d.status().held);
    d.terminate();
    worker.join().unwrap();
    assert!(d.terminated());
}

#[test]
fn after_the_final_update_further_updates_are_refused() {
    let d = IDict::new("fin");
    d.lock().insert("x", 1);
    let finals = Arc::new(AtomicU64::new(0));
    let f2 = finals.clone();
    d.add_callback(move |_, e| {
        if e.is_final() {
            f2.fetch_add(1, Ordering::SeqCst);
        }
    });
    assert_eq!(d.notify_update_final(), Ok(1));
    assert_eq!(finals.load(Ordering::SeqCst), 1);
    assert_eq!(d.status().state, RunState::Finished);
    assert_eq!(d.notify_update(), Err(UpdateError::Finished));
    assert_eq!(d.notify_update_final(), Err(UpdateError::Finished));
    assert_eq!(d.version(), 1);
}

#[test]
fn a_panic_in_the_loop_thread_fails_the_run() {
    let d = IDict::new("boom");
    let worker = {
        let d = d.clone();
        thread::spawn(move || {
            d.wait();
            let v: Vec<f64> = Vec::new();
            let _ = v[3];
        })
    };
    assert!(worker.join().is_err());
    let s = d.status();
    assert_eq!(s.state, RunState::Failed);
    assert!(s.message.contains("index out of bounds"), "{}", s.message);
    assert!(matches!(d.notify_update(), Err(UpdateError::Failed(_))));
}

#[test]
fn a_panic_in_another_thread_does_not_fail_the_run() {
    let d = IDict::new("calm");
    d.notify_update().unwrap();
    let _ = thread::spawn(|| panic!("unrelated")).join();
    assert_eq!(d.status().state, RunState::Running);
}

#[test]
fn messages_are_bounded_and_callbacks_can_be_removed() {
    let d = IDict::builder("log").message_capacity(3).build();
    for i in 0..5 {
        d.message(Level::Info, format!("m{i}"));
    }
    let n = Arc::new(AtomicU64::new(0));
    let n2 = n.clone();
    let id = d.add_callback(move |_, _| {
        n2.fetch_add(1, Ordering::SeqCst);
    });
    d.notify_update().unwrap();
    assert!(d.remove_callback(id));
    assert!(!d.remove_callback(id));
    d.notify_update().unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 1);
}

#[test]
fn writable_keys_are_published_with_their_initial_value() {
    let d = IDict::new("w");
    d.writable("rho", 28.0).min(0.0);
    assert_eq!(d.lock().get("rho"), Some(&Value::Float(28.0)));
    d.notify_update().unwrap();
    assert_eq!(d.history("rho").unwrap().values, vec![28.0]);
}

#[test]
fn every_sample_of_a_fast_burst_is_in_the_history_at_once() {
    // A fast run's samples are staged and moved in batches; reading the
    // history must still show every one, with no further update.
    let d = IDict::new("burst");
    for i in 1..=1000i64 {
        d.lock().insert("x", i);
        d.notify_update().unwrap();
    }
    let h = d.history("x").unwrap();
    assert_eq!(h.versions, (1..=1000).collect::<Vec<u64>>());
    assert_eq!(h.values.last(), Some(&1000.0));
}
