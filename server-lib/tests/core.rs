//! The core's promises under natural use: nothing a computation's own code
//! or a client does hangs the run, grows its memory without bound, or keeps
//! it alive after it ends. Each test names the way it used to go wrong.

mod common;

use common::{eventually, next, serve, until_last};
use idict::client::{ClientError, WatchOptions};
use idict::{IDict, Level, RunState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` on its own thread and fails the test if it has not returned
/// within `secs`: a hang becomes a failure instead of a stuck test run.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: still blocked after {secs} s (a hang)"),
    }
}

/// The text of a panic payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn a_callback_may_call_every_idict_method() {
    let d = IDict::new("reentrant");
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    d.add_callback(move |d, ev| {
        // What mmf.async callbacks do: log, read values and history, and
        // even publish again.
        d.message(Level::Info, format!("v{}", ev.version()));
        let _ = d.version();
        let _ = d.history("x");
        let _ = d.status();
        if ev.version() == 1 {
            d.lock().insert("from_callback", true);
            assert_eq!(d.notify_update(), Ok(2), "a nested notify publishes");
        }
        seen2.fetch_add(1, Ordering::SeqCst);
    });
    let d2 = d.clone();
    within(10, "notify_update with a re-entrant callback", move || {
        d2.lock().insert("x", 1.0);
        d2.notify_update().expect("notify");
        let dir = tempfile::tempdir().expect("tempdir");
        d2.checkpoint(dir.path().join("c")).expect("checkpoint");
    });
    assert_eq!(d.version(), 2);
    assert_eq!(d.history("x").expect("x").values, vec![1.0]);
    assert!(seen.load(Ordering::SeqCst) >= 1);
}

#[test]
fn callbacks_may_add_and_remove_callbacks() {
    let d = IDict::new("callbacks");
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let id = Arc::new(parking_lot::Mutex::new(None));
    let id2 = id.clone();
    let first = d.add_callback(move |d, _| {
        // Remove ourselves and add another: neither may hang.
        if let Some(me) = id2.lock().take() {
            assert!(d.remove_callback(me));
            let c = c.clone();
            d.add_callback(move |_, _| {
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    *id.lock() = Some(first);
    let d2 = d.clone();
    within(10, "callbacks editing callbacks", move || {
        d2.notify_update().expect("first");
        d2.notify_update().expect("second");
        d2.notify_update().expect("third");
    });
    assert_eq!(count.load(Ordering::SeqCst), 2, "added once, ran twice");
}

/// Counts drops of the state a callback captured.
struct DropCounter(Arc<AtomicUsize>);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_callback_holding_a_handle_does_not_keep_the_run_alive() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let d = IDict::new("cycle");
        let run = serve(&d);
        let captured = d.clone();
        let counter = DropCounter(drops.clone());
        d.add_callback(move |_, _| {
            let _keep = (&captured, &counter);
        });
        d.lock().insert("x", 1.0);
        d.notify_update().expect("notify");
        d.notify_update_final().expect("final");
        let common::Run { idict, server, .. } = run;
        server.wait_then_close(Duration::from_secs(5));
        drop(idict);
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the callback (and the run it captured) was freed with the last handle"
    );
}

#[test]
fn notify_while_holding_the_lock_is_an_error_not_a_hang() {
    let d = IDict::new("held");
    let err = within(10, "notify_update with the guard held", move || {
        let mut g = d.lock();
        g.insert("x", 1.0);
        let r = d.notify_update();
        drop(g);
        r
    });
    let text = err.expect_err("refused").to_string();
    assert!(text.contains("lock()"), "says what to do: {text}");
}

#[test]
fn wait_sync_and_writable_while_holding_the_lock_panic_with_a_clear_text() {
    type Call = fn(&IDict);
    let calls: [(&str, Call); 4] = [
        ("wait", |d| {
            d.wait();
        }),
        ("sync", |d| {
            d.sync();
        }),
        ("writable", |d| {
            d.writable("dt", 0.1);
        }),
        ("lock", |d| {
            d.lock();
        }),
    ];
    for (name, call) in calls {
        let d = IDict::new("held");
        d.writable("other", 1.0);
        let r = within(10, name, move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _g = d.lock();
                call(&d);
            }))
        });
        let panic = r.expect_err(name);
        let text = panic_text(&*panic);
        assert!(
            text.contains("lock()") && text.contains(name),
            "{name}: the panic says what went wrong: {text}"
        );
    }
}

/// A binding (Python) must see its own signals while the loop is held, and
/// must be able to leave before blocking without the status flickering.
#[test]
fn an_interruptible_wait_asks_before_blocking_and_while_held() {
    let d = IDict::new("interruptible");
    // Running: returns at once, never asking.
    let asked = AtomicUsize::new(0);
    let go = d.wait_interruptible(Duration::from_millis(5), || {
        asked.fetch_add(1, Ordering::Relaxed);
        Err("asked")
    });
    assert_eq!(go, Ok(true));
    assert_eq!(asked.load(Ordering::Relaxed), 0);

    // Paused: asked before the first block, and refusing leaves the run
    // not held (no status change a client could see).
    d.pause();
    let before = d.status();
    assert_eq!(
        d.wait_interruptible(Duration::from_millis(5), || {
            Err::<(), _>(d.status().held)
        }),
        Err(false)
    );
    assert_eq!(d.status(), before);

    // Held: asked again and again; held throughout; resume lets it go.
    let d2 = d.clone();
    let asked = Arc::new(AtomicUsize::new(0));
    let held_when_asked = Arc::new(AtomicUsize::new(0));
    let (a, h) = (asked.clone(), held_when_asked.clone());
    let waiter = thread::spawn(move || {
        d2.wait_interruptible(Duration::from_millis(2), || {
            if a.fetch_add(1, Ordering::Relaxed) > 0 && d2.status().held {
                h.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), ()>(())
        })
    });
    let start = Instant::now();
    while held_when_asked.load(Ordering::Relaxed) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never asked while held"
        );
        thread::sleep(Duration::from_millis(1));
    }
    d.resume();
    assert_eq!(waiter.join().unwrap(), Ok(true));
    assert!(!d.status().held);

    // An error while held ends the wait at once and clears held.
    d.pause();
    let n = AtomicUsize::new(0);
    let out = within(5, "interrupt while held", {
        let d = d.clone();
        move || {
            d.wait_interruptible(Duration::from_millis(2), || {
                if n.fetch_add(1, Ordering::Relaxed) == 3 {
                    Err("signal")
                } else {
                    Ok(())
                }
            })
        }
    });
    assert_eq!(out, Err("signal"));
    assert!(!d.status().held);
    assert_eq!(d.status().state, RunState::Paused);
}

#[test]
fn wait_returns_whether_to_go_on() {
    let d = IDict::new("loop");
    assert!(d.wait(), "running: go on");
    d.pause();
    let d2 = d.clone();
    let waiter = thread::spawn(move || d2.wait());
    thread::sleep(Duration::from_millis(20));
    d.terminate();
    assert!(
        !waiter.join().expect("waiter"),
        "terminated while paused: stop"
    );
    assert!(!d.wait(), "terminated: stop at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fails_right_after_a_sample_free_update_ends_every_watch() {
    let d = IDict::new("fails");
    let run = serve(&d);
    let c = run.controller().await;
    let mut s = c.watch(WatchOptions::default()).await.expect("watch");
    next(&mut s).await;
    // A scalar update, then one without scalars less than a frame later:
    // the second's version has no samples to move.
    thread::sleep(Duration::from_millis(2));
    d.lock().insert("x", 1.0);
    d.notify_update().expect("scalar update");
    d.lock().insert("text", "no samples");
    d.notify_update().expect("sample-free update");
    d.fail("gave up");
    let (last, updates) = until_last(&mut s).await;
    assert_eq!(last.status.state, RunState::Failed);
    assert!(updates < 10, "no stream of empty updates: {updates}");
    let common::Run { server, .. } = run;
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        server.wait_then_close(Duration::from_secs(30));
        start.elapsed()
    })
    .await
    .map(|took| assert!(took < Duration::from_secs(10), "closed in {took:?}"))
    .expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_then_close_finishes_a_run_that_never_published_its_end() {
    let d = IDict::new("unfinished");
    let run = serve(&d);
    let c = run.controller().await;
    let mut s = c.watch(WatchOptions::default()).await.expect("watch");
    next(&mut s).await;
    d.lock().insert("x", 7.0);
    // The loop ends without notify_update_final: the last insert is not
    // published yet either.
    let common::Run { server, .. } = run;
    let closing =
        tokio::task::spawn_blocking(move || server.wait_then_close(Duration::from_secs(60)));
    let (last, _) = until_last(&mut s).await;
    assert_eq!(last.status.state, RunState::Finished);
    assert_eq!(d.status().state, RunState::Finished);
    assert_eq!(
        d.history("x").expect("x").values,
        vec![7.0],
        "the last state was published"
    );
    tokio::time::timeout(Duration::from_secs(20), closing)
        .await
        .expect("wait_then_close returns once the watcher has the end")
        .expect("joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_server_does_not_wait_for_its_clients() {
    let d = IDict::new("drop");
    // More than the flow-control window: a client that does not read
    // keeps the first state's stream open.
    d.lock().insert("u", vec![0.5f64; 4 << 20]);
    d.notify_update().expect("notify");
    let run = serve(&d);
    let c = run.controller().await;
    let _watch = c.watch(WatchOptions::default()).await.expect("watch");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let common::Run { server, .. } = run;
    let run_file = server.run_file().expect("run file").to_owned();
    // Dropped inside async code, with a client still connected: the old
    // drop joined the server thread through a 3 s grace period.
    let start = Instant::now();
    drop(server);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "drop blocked for {took:?}");
    assert!(!run_file.exists(), "the run file is gone at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_applied_while_paused_are_bounded() {
    let d = IDict::builder("paused").start_paused(true).build();
    d.writable("dt", 0.0);
    let run = serve(&d);
    let d2 = d.clone();
    // The computation is held in wait(): every write is applied at once,
    // yet nothing publishes them.
    let computation = thread::spawn(move || d2.wait_timeout(Duration::from_secs(60)));
    let c = run.controller().await;
    eventually("held", || d.status().held).await;
    let mut refused = None;
    for i in 0..5_000 {
        match c.set("dt", i as f64).await {
            Ok(_) => {}
            Err(ClientError::ResourceExhausted(why)) => {
                refused = Some((i, why));
                break;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    let (at, why) = refused.expect("writes beyond the bound are refused");
    assert!(at >= 100, "a reasonable number is accepted first: {at}");
    assert!(
        why.contains("update"),
        "the reason says what frees it: {why}"
    );
    d.terminate();
    computation.join().expect("computation");
    d.notify_update().expect("publish the applied writes");
    c.set("dt", 1.0)
        .await
        .expect_err("terminated runs take no writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_held_run_is_applied_at_once_every_time() {
    let d = IDict::builder("held").start_paused(true).build();
    d.writable("dt", 0.0);
    let run = serve(&d);
    let d2 = d.clone();
    let computation = thread::spawn(move || while d2.wait() {});
    let c = run.controller().await;
    for i in 1..=300 {
        eventually("held", || d.status().held).await;
        c.set("dt", i as f64).await.expect("set");
        // Applied while held: no resume needed (a lost wake-up left it queued).
        eventually("the write applied", || {
            d.lock().get("dt").and_then(|v| v.as_f64()) == Some(i as f64)
        })
        .await;
    }
    d.terminate();
    computation.join().expect("computation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_keys_free_their_history() {
    let d = IDict::new("churn");
    let run = serve(&d);
    let c = run.observer().await;
    // A key per particle, each gone the next step.
    for i in 0..20_000u64 {
        {
            let mut g = d.lock();
            g.insert(format!("particle{i}"), i as f64);
            if i > 0 {
                g.remove(&format!("particle{}", i - 1));
            }
        }
        d.notify_update().expect("notify");
    }
    assert!(
        d.history("particle0").is_none(),
        "a removed key has no history"
    );
    assert_eq!(
        d.history("particle19999").expect("live").values,
        vec![19_999.0]
    );
    let all = c.history(&[], 0).await.expect("history");
    assert!(
        all.len() <= 1025,
        "only live keys and the most recently removed ones keep a history: {}",
        all.len()
    );
    assert!(all.contains_key("particle19999"));
}

#[test]
fn a_checkpoint_at_the_end_of_versions_is_refused() {
    use idict::proto::v1 as pb;
    use prost::Message;
    let dir = tempfile::tempdir().expect("tempdir");
    for version in [u64::MAX, u64::MAX - 1, 1 << 63] {
        let msg = pb::Checkpoint {
            format_version: idict::checkpoint::FORMAT_VERSION,
            name: "huge".into(),
            version,
            ..Default::default()
        };
        let mut bytes = idict::checkpoint::MAGIC.to_vec();
        msg.encode(&mut bytes).expect("encode");
        let path = dir.path().join("huge.ckpt");
        std::fs::write(&path, bytes).expect("write");
        let err = IDict::restore(&path).expect_err("refused");
        assert!(
            err.to_string().contains("version"),
            "names the problem: {err}"
        );
    }
}
