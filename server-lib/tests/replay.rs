//! Issue 16: a recorded run replayed over the same contract. A watcher of
//! the replay sees what a watcher of the live run saw (every version,
//! sample and action), and a seek moves the replay forward and back. Real
//! servers on 127.0.0.1:0, the real client.

mod common;

use common::{eventually, serve};
use futures::StreamExt;
use idict::client::{Client, ClientError, Update, WatchOptions};
use idict::replay::{ReplayOptions, Replayer};
use idict::{IDict, Level, MarkKind, RunState, SeekTo, Value};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What one watcher saw, update by update.
#[derive(Debug, Default, Clone)]
struct Seen {
    version: u64,
    values: BTreeMap<String, Value>,
    /// Every sample of every key: (version, time, value).
    samples: BTreeMap<String, Vec<(u64, f64, f64)>>,
    messages: Vec<String>,
    /// Trigger firings: (name, version).
    firings: Vec<(String, u64)>,
    applied: Vec<(String, Value, u64)>,
    resets: usize,
    last: bool,
}

impl Seen {
    fn take(&mut self, u: &Update) {
        if u.reset {
            self.values.clear();
            self.samples.clear();
            self.resets += 1;
        }
        self.version = u.version;
        for (k, v) in &u.changed {
            self.values.insert(k.clone(), v.clone());
        }
        for k in &u.removed {
            self.values.remove(k);
        }
        for (k, s) in &u.samples {
            let e = self.samples.entry(k.clone()).or_default();
            for x in s.iter() {
                e.push((x.version, x.time, x.value));
            }
        }
        self.messages
            .extend(u.messages.iter().map(|m| m.text.clone()));
        self.firings.extend(
            u.messages
                .iter()
                .filter_map(|m| m.trigger.as_ref().map(|t| (t.name.clone(), t.version))),
        );
        self.applied.extend(
            u.applied
                .iter()
                .map(|a| (a.key.clone(), a.value.clone(), a.version)),
        );
        self.last |= u.last;
    }
}

/// Watches `client` from the start, with the whole history, into `seen`.
async fn watch_into(client: &Client, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    let mut w = client
        .watch(WatchOptions {
            with_history: true,
            ..WatchOptions::default()
        })
        .await
        .expect("watch");
    tokio::spawn(async move {
        while let Some(Ok(u)) = w.next().await {
            seen.lock().take(&u);
            if u.last {
                break;
            }
        }
    })
}

/// A replay of `path` held at its start, served, with a controller client
/// and a watcher (with the history) into `Seen`.
async fn served_replay(
    name: &str,
    path: &std::path::Path,
) -> (
    IDict,
    common::Run,
    Client,
    Arc<Mutex<Seen>>,
    tokio::task::JoinHandle<()>,
) {
    let replay = IDict::builder(name)
        .replay_of(path.display().to_string())
        .start_paused(true)
        .build();
    let run = serve(&replay);
    let client = run.controller().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watch = watch_into(&client, seen.clone()).await;
    (replay, run, client, seen, watch)
}

fn recorded(dir: &std::path::Path, idict: &IDict) -> (common::Run, std::path::PathBuf) {
    let runs_dir = tempfile::tempdir().expect("tempdir");
    let server = idict::ServeOptions::default()
        .runs_dir(runs_dir.path())
        .announce(false)
        .record(dir)
        // Every version: these tests hold a replay to what the run showed.
        .record_arrays(idict::RecordArrays::All)
        .serve(idict)
        .expect("serve");
    let path = server.recording().expect("recording").to_path_buf();
    (
        common::Run {
            idict: idict.clone(),
            server,
            runs_dir,
        },
        path,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_shows_a_watcher_what_the_live_run_showed() {
    let dir = tempfile::tempdir().unwrap();
    let live = IDict::builder("steered").start_paused(true).build();
    live.writable("dt", 1.0);
    live.trigger(
        "hundred",
        "i == 100",
        idict::TriggerActions::message(Level::Info, "a hundred"),
    )
    .unwrap();
    let (run, path) = recorded(dir.path(), &live);
    let client = run.controller().await;
    let seen_live = Arc::new(Mutex::new(Seen::default()));
    let live_watch = watch_into(&client, seen_live.clone()).await;

    let computation = live.clone();
    let loop_thread = std::thread::spawn(move || {
        let mut i = 0i64;
        while computation.wait() {
            i += 1;
            {
                let mut d = computation.lock();
                let dt = d.get("dt").and_then(Value::as_f64).unwrap_or(1.0);
                d.insert("i", i);
                d.insert("y", i as f64 * dt);
                if i % 50 == 0 {
                    d.insert(
                        "field",
                        Value::array(vec![i as f64; 64], vec![8, 8]).unwrap(),
                    );
                }
            }
            if i == 60 {
                computation.message(Level::Warn, "sixty");
            }
            computation.notify_update().unwrap();
            std::thread::sleep(Duration::from_micros(500));
        }
        computation.notify_update_final().unwrap();
    });

    client.resume().await.unwrap();
    eventually("v40", || live.version() >= 40).await;
    client.set("dt", 0.5).await.unwrap();
    eventually("v80", || live.version() >= 80).await;
    client.pause().await.unwrap();
    eventually("held", || live.status().held).await;
    let held_at = live.version();
    client.step(2).await.unwrap();
    eventually("two steps", || {
        live.version() == held_at + 2 && live.status().held
    })
    .await;
    client.resume().await.unwrap();
    eventually("v150", || live.version() >= 150).await;
    client.terminate().await.unwrap();
    loop_thread.join().unwrap();
    tokio::time::timeout(Duration::from_secs(20), live_watch)
        .await
        .expect("the live watch ends")
        .unwrap();
    drop(client);
    run.server.close();
    let live_seen = seen_live.lock().clone();
    assert!(live_seen.last);
    assert_eq!(live_seen.applied.len(), 1, "{:?}", live_seen.applied);

    // The recording, replayed as fast as it goes to a new watcher.
    let replayer = Replayer::open(&path).unwrap();
    let timeline = replayer.timeline().clone();
    assert!(timeline.complete);
    assert_eq!(timeline.last_version, live_seen.version);
    let controls: Vec<&str> = timeline
        .marks
        .iter()
        .filter(|m| m.kind == MarkKind::Control)
        .map(|m| m.label.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        controls,
        ["resume", "pause", "step", "resume", "terminate"],
        "{:?}",
        timeline.marks
    );
    assert!(
        timeline
            .marks
            .iter()
            .all(|m| m.label.contains("test-client")),
        "each mark says who: {:?}",
        timeline.marks
    );
    let write = timeline
        .marks
        .iter()
        .find(|m| m.kind == MarkKind::Write)
        .expect("the write is a mark");
    assert_eq!(write.version, live_seen.applied[0].2);
    assert!(write.label.starts_with("dt = 0.5 by"), "{}", write.label);

    let (replay, _replay_run, replay_client, seen_replay, replay_watch) =
        served_replay("steered", &path).await;
    let replaying = replay.clone();
    let replay_thread =
        std::thread::spawn(move || replayer.replay(&replaying, &ReplayOptions::default()));
    replay_client.resume().await.unwrap();
    let summary = replay_thread.join().unwrap().unwrap();
    assert!(summary.complete && !summary.terminated, "{summary:?}");
    let info = replay_client.info().await.unwrap();
    assert_eq!(
        info.replay.as_ref(),
        Some(&timeline),
        "the info has the timeline"
    );
    tokio::time::timeout(Duration::from_secs(20), replay_watch)
        .await
        .expect("the replay's watch ends")
        .unwrap();
    let replay_seen = seen_replay.lock().clone();

    assert_eq!(
        replay_seen.version, live_seen.version,
        "the same last version"
    );
    assert_eq!(replay_seen.values, live_seen.values, "the same final state");
    assert_eq!(
        replay_seen.samples.keys().collect::<Vec<_>>(),
        live_seen.samples.keys().collect::<Vec<_>>()
    );
    for (key, want) in &live_seen.samples {
        let got = &replay_seen.samples[key];
        assert_eq!(got.len(), want.len(), "every sample of {key}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0, g.2), (w.0, w.2), "{key}: same version and value");
            assert!((g.1 - w.1).abs() < 1e-9, "{key}: time {} vs {}", g.1, w.1);
        }
    }
    // The steering shows: y grows by 0.5 a step after the write.
    let y = &live_seen.samples["y"];
    assert!(y.iter().any(|s| s.2 == s.0 as f64 * 0.5 && s.0 > 40));
    // Messages and actions come back in the log, in order.
    assert!(replay_seen.messages.contains(&"sixty".to_string()));
    // A trigger's firing replays as a firing, at its version.
    assert_eq!(live_seen.firings, [("hundred".to_string(), 100)]);
    assert_eq!(replay_seen.firings, live_seen.firings);
    let recorded: Vec<&String> = replay_seen
        .messages
        .iter()
        .filter(|m| m.starts_with("[recorded]"))
        .collect();
    assert_eq!(recorded.len(), 6, "{recorded:?}");
    assert!(recorded.iter().any(|m| m.contains("dt = 0.5 by")));
    assert!(recorded.last().unwrap().contains("terminate by"));
}

/// A recording of 300 versions: `x` = i, an array every 100, a text key
/// that changes at 150 and a key removed at 200.
fn three_hundred(dir: &std::path::Path) -> std::path::PathBuf {
    let live = IDict::new("seekable");
    let (run, path) = recorded(dir, &live);
    for i in 0..300i64 {
        {
            let mut d = live.lock();
            d.insert("x", i + 1);
            if i % 100 == 0 {
                d.insert(
                    "field",
                    Value::array(vec![i as f64; 16], vec![4, 4]).unwrap(),
                );
            }
            d.insert("phase", if i < 150 { "early" } else { "late" });
            if i == 10 {
                d.insert("temp", 1.5);
            }
            if i == 200 {
                d.remove("temp");
            }
        }
        live.notify_update().unwrap();
        if i % 25 == 0 {
            // Separate frames, so the recording has updates to seek between.
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    live.notify_update_final().unwrap();
    run.server.close();
    path
}

/// Waits until the watched state is at `version`; returns it.
async fn state_at(seen: &Arc<Mutex<Seen>>, version: u64) -> Seen {
    eventually(&format!("the state at v{version}"), || {
        seen.lock().version == version
    })
    .await;
    seen.lock().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_seeks_forward_and_back_and_its_watchers_start_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = three_hundred(dir.path());
    let replayer = Replayer::open(&path).unwrap();
    // From the empty state the recorder found at v0.
    assert_eq!(replayer.timeline().first_version, 0);
    // The final update (v301), though the server closed right after it.
    assert_eq!(replayer.timeline().last_version, 301);
    assert!(replayer.timeline().complete);
    let (replay, _run, client, seen, _watch) = served_replay("seekable", &path).await;
    // One more, without the history: a seek back does not send it one.
    let plain = Arc::new(Mutex::new(Vec::<Update>::new()));
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let into = plain.clone();
    tokio::spawn(async move {
        while let Some(Ok(u)) = w.next().await {
            into.lock().push(u);
        }
    });
    let replaying = replay.clone();
    let opts = ReplayOptions {
        hold_at_end: true,
        ..ReplayOptions::default()
    };
    let thread = std::thread::spawn(move || replayer.replay(&replaying, &opts));

    // Forward, while paused: the state at 120 and every sample up to it.
    client.seek(SeekTo::Version(120)).await.unwrap();
    let s = state_at(&seen, 120).await;
    assert_eq!(s.values.get("x"), Some(&Value::Int(120)));
    assert_eq!(s.values.get("phase"), Some(&Value::Str("early".into())));
    assert!(s.values.contains_key("temp"));
    let field = s.values["field"].as_array().unwrap().to_f64_vec();
    assert_eq!(field[0], 100.0, "the array as of v120");
    let xs: Vec<u64> = s.samples["x"].iter().map(|x| x.0).collect();
    assert_eq!(xs, (1..=120).collect::<Vec<_>>());
    assert_eq!(replay.status().state, RunState::Paused);

    client.seek(SeekTo::Version(250)).await.unwrap();
    let s = state_at(&seen, 250).await;
    assert_eq!(s.values.get("phase"), Some(&Value::Str("late".into())));
    assert!(!s.values.contains_key("temp"), "removed at v201");
    let resets_before = s.resets;

    // Back: the watcher is sent the whole state again, and only the past.
    client.seek(SeekTo::Version(50)).await.unwrap();
    let s = state_at(&seen, 50).await;
    assert!(
        s.resets > resets_before,
        "a reset tells the watcher to start over"
    );
    assert_eq!(s.values.get("x"), Some(&Value::Int(50)));
    assert_eq!(s.values.get("phase"), Some(&Value::Str("early".into())));
    let xs: Vec<u64> = s.samples["x"].iter().map(|x| x.0).collect();
    assert_eq!(
        xs,
        (1..=50).collect::<Vec<_>>(),
        "no sample from the future"
    );
    let history = client.history(&["x"], 0).await.unwrap();
    assert_eq!(history["x"].len(), 50);
    eventually("the plain watcher at v50", || {
        plain.lock().last().is_some_and(|u| u.version == 50)
    })
    .await;
    {
        let got = plain.lock();
        let reset = got.iter().rposition(|u| u.reset).expect("a reset");
        // The whole state without the history; then only the samples of
        // the versions the replay went through after it (on its way to 50).
        assert!(got[reset].samples.is_empty(), "no history: it did not ask");
        let after: Vec<u64> = got[reset..]
            .iter()
            .flat_map(|u| &u.samples)
            .flat_map(|(_, s)| s.versions.clone())
            .collect();
        assert!(
            after.iter().all(|&v| v > got[reset].version && v <= 50),
            "{after:?} after a reset at v{}",
            got[reset].version
        );
    }
    let snap = client.snapshot("").await.unwrap();
    assert_eq!(snap.version, 50);
    assert_eq!(snap.values.get("x"), Some(&Value::Int(50)));

    // By time: the last update at or before it.
    let t = s.samples["x"][29].1;
    client.seek(SeekTo::Time(t)).await.unwrap();
    let s = state_at(&seen, 30).await;
    assert_eq!(s.values.get("x"), Some(&Value::Int(30)));

    // Stepping goes on from there, one recorded version a step.
    client.step(1).await.unwrap();
    let s = state_at(&seen, 31).await;
    assert_eq!(s.values.get("x"), Some(&Value::Int(31)));

    // Resumed, it plays to its end and holds there, paused, seekable.
    client.resume().await.unwrap();
    state_at(&seen, 301).await;
    eventually("paused at the end", || {
        replay.status().state == RunState::Paused
    })
    .await;
    client.seek(SeekTo::Version(10)).await.unwrap();
    let s = state_at(&seen, 10).await;
    assert_eq!(s.values.get("x"), Some(&Value::Int(10)));

    client.terminate().await.unwrap();
    let summary = thread.join().unwrap().unwrap();
    assert!(summary.terminated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_refuses_to_seek() {
    let live = IDict::new("live");
    live.notify_update().unwrap();
    let run = serve(&live);
    let client = run.controller().await;
    match client.seek(SeekTo::Version(1)).await {
        Err(ClientError::FailedPrecondition(m)) => assert!(m.contains("replay"), "{m}"),
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
    assert!(client.info().await.unwrap().replay.is_none());
    // Observers cannot seek a replay either.
    let replay = IDict::builder("r").replay_of("f.idrec").build();
    let run = serve(&replay);
    match run.observer().await.seek(SeekTo::Version(1)).await {
        Err(ClientError::PermissionDenied(_)) => {}
        other => panic!("expected PERMISSION_DENIED, got {other:?}"),
    }
}

/// A recording with an array byte budget keeps the array's first version
/// and its value at the end, leaves out what is past the budget (parts and
/// all), and says so; the replay shows the same final state and the report.
#[test]
fn an_array_budget_keeps_the_first_and_last_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let live = IDict::new("budgeted");
    let server = idict::ServeOptions::default()
        .write_run_file(false)
        .announce(false)
        .record(dir.path())
        .record_array_budget(100_000)
        .serve(&live)
        .unwrap();
    let path = server.recording().unwrap().to_path_buf();
    // 64 KiB arrays (sent in parts), 100 versions, 1 ms apart.
    for i in 0..100i64 {
        {
            let mut d = live.lock();
            d.insert("i", i);
            d.insert("field", Value::from(vec![i as f64; 8192]));
        }
        live.notify_update().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    live.notify_update_final().unwrap();
    server.close();

    let mut kept_versions = Vec::new();
    let mut dropped = 0;
    for e in idict::recording::open(&path).unwrap() {
        match e.unwrap().kind {
            Some(idict::proto::v1::record_entry::Kind::Update(u)) => {
                let whole = u.changed.iter().any(|e| e.key == "field");
                let first_part = u
                    .part
                    .as_ref()
                    .is_some_and(|p| p.key == "field" && p.offset == 0);
                if whole || first_part {
                    kept_versions.push(u.version);
                }
            }
            Some(idict::proto::v1::record_entry::Kind::ArraysThinned(a)) => {
                assert_eq!(a.key, "field");
                // The array's bytes (as encoded: a few more for its shape).
                assert!((a.dropped * 65536..=a.dropped * 65600).contains(&a.bytes));
                dropped += a.dropped;
            }
            _ => {}
        }
    }
    assert!(dropped >= 50, "left out {dropped}, kept {kept_versions:?}");
    assert!(kept_versions.len() <= 20, "kept {kept_versions:?}");
    assert_eq!(
        kept_versions.last(),
        Some(&101),
        "the value at the end, always"
    );
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 30 * 65536, "{size} bytes");

    let replayer = Replayer::open(&path).unwrap();
    let replay = IDict::builder("budgeted")
        .replay_of(path.display().to_string())
        .build();
    let summary = replayer.replay(&replay, &ReplayOptions::default()).unwrap();
    assert!(summary.complete);
    let d = replay.lock();
    assert_eq!(d.get("i"), Some(&Value::Int(99)));
    let field = d
        .get("field")
        .and_then(Value::as_array)
        .unwrap()
        .to_f64_vec();
    assert_eq!(field[0], 99.0, "the last array, as the run ended");
    drop(d);
    assert_eq!(
        replay.history("i").unwrap().len(),
        100,
        "every scalar sample"
    );
    // The log says what was left out in two lines, not one per report
    // (a budget of a version a second made a line a second per array):
    // the first report as it comes, the rest summed at the end.
    let said: Vec<String> = replay
        .inner
        .published
        .read()
        .messages_after(0)
        .into_iter()
        .map(|m| m.text)
        .filter(|t| t.contains("left out by the recording's array budget"))
        .collect();
    assert!(said.len() <= 2, "{said:?}");
    let versions: u64 = said
        .iter()
        // "[recorded] field: N [more] versions ..."
        .map(|t| t.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(versions, dropped, "{said:?}");
}

/// A recording written by hand, record by record.
struct Crafted(Vec<u8>);

impl Crafted {
    fn new() -> Self {
        use idict::proto::v1 as pb;
        let mut out = idict::recording::MAGIC.to_vec();
        let header = pb::RecordingHeader {
            format_version: idict::recording::FORMAT_VERSION,
            name: "crafted".into(),
            ..Default::default()
        };
        let entry = pb::RecordEntry {
            kind: Some(pb::record_entry::Kind::Header(header)),
        };
        idict::recording::write_record(&mut out, &entry).unwrap();
        Crafted(out)
    }

    fn update(&mut self, u: idict::proto::v1::WatchUpdate) {
        use idict::proto::v1 as pb;
        let entry = pb::RecordEntry {
            kind: Some(pb::record_entry::Kind::Update(u)),
        };
        idict::recording::write_record(&mut self.0, &entry).unwrap();
    }

    fn save(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("crafted.idrec");
        std::fs::write(&path, &self.0).unwrap();
        path
    }
}

fn series(key: &str, versions: std::ops::RangeInclusive<u64>) -> idict::proto::v1::SampleSeries {
    idict::proto::v1::SampleSeries {
        key: key.into(),
        times: versions.clone().map(|v| v as f64 * 0.01).collect(),
        values: versions.clone().map(|v| v as f64).collect(),
        versions: versions.collect(),
        ..Default::default()
    }
}

fn status(state: idict::proto::v1::RunState, message: &str) -> Option<idict::proto::v1::Status> {
    Some(idict::proto::v1::Status {
        state: state as i32,
        message: message.into(),
        ..Default::default()
    })
}

/// The recorder's samples lagging its state by more than the read-ahead
/// holds (70 updates), a final update that brings only samples at a version
/// already had, and a run that failed: a watcher of the replay gets every
/// sample, told of no thinning; the replay ends at the recorded last
/// version, failed as the run did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_sends_samples_that_lagged_far_behind_and_ends_as_the_run_did() {
    use idict::proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let mut f = Crafted::new();
    let value = |x: i64| Some(idict::wire::value_to_proto(&Value::Int(x)));
    f.update(pb::WatchUpdate {
        version: 1,
        time: 0.01,
        reset: true,
        changed: vec![pb::Entry {
            key: "x".into(),
            value: value(1),
        }],
        samples: vec![series("x", 1..=1)],
        ..Default::default()
    });
    for v in 2..=80u64 {
        f.update(pb::WatchUpdate {
            version: v,
            time: v as f64 * 0.01,
            changed: vec![
                pb::Entry {
                    key: "x".into(),
                    value: value(v as i64),
                },
                pb::Entry {
                    key: "label".into(),
                    value: value(v as i64),
                },
            ],
            ..Default::default()
        });
    }
    // The samples, late; then the final update at the version already had.
    f.update(pb::WatchUpdate {
        version: 80,
        time: 0.8,
        samples: vec![series("x", 2..=80)],
        ..Default::default()
    });
    f.update(pb::WatchUpdate {
        version: 80,
        time: 0.8,
        last: true,
        status: status(pb::RunState::Failed, "diverged"),
        ..Default::default()
    });
    let path = f.save(dir.path());

    let replayer = Replayer::open(&path).unwrap();
    let (replay, _run, client, seen, watch) = served_replay("crafted", &path).await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let replaying = replay.clone();
    let thread = std::thread::spawn(move || replayer.replay(&replaying, &ReplayOptions::default()));
    client.resume().await.unwrap();
    let summary = thread.join().unwrap().unwrap();
    assert_eq!(summary.last_version, 80);
    tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .unwrap()
        .unwrap();
    let s = seen.lock().clone();
    assert!(s.last);
    assert_eq!(s.version, 80, "no version the recording does not have");
    let xs: Vec<u64> = s.samples["x"].iter().map(|x| x.0).collect();
    assert_eq!(xs, (1..=80).collect::<Vec<_>>(), "every sample, in order");
    assert_eq!(s.values.get("x"), Some(&Value::Int(80)));
    assert_eq!(replay.status().state, RunState::Failed);
    assert_eq!(replay.status().message, "diverged");
    // A watcher without the history is told of no thinning either.
    let mut thinned = 0;
    while let Ok(Some(Ok(u))) = tokio::time::timeout(Duration::from_secs(5), w.next()).await {
        thinned += u.thinned.len();
        if u.last {
            break;
        }
    }
    assert_eq!(thinned, 0);
}

/// A recording whose versions go back (a replay recorded while sought
/// back, before replays stopped being recorded): what came before is
/// replayed, the rest is reported, not read into memory or mixed in.
#[test]
fn a_recording_that_goes_back_is_replayed_up_to_there() {
    use idict::proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let mut f = Crafted::new();
    let value = |x: i64| Some(idict::wire::value_to_proto(&Value::Int(x)));
    for v in 1..=5u64 {
        f.update(pb::WatchUpdate {
            version: v,
            time: v as f64 * 0.01,
            reset: v == 1,
            changed: vec![pb::Entry {
                key: "x".into(),
                value: value(v as i64),
            }],
            samples: vec![series("x", v..=v)],
            ..Default::default()
        });
    }
    for v in 1..=3u64 {
        f.update(pb::WatchUpdate {
            version: v,
            time: v as f64 * 0.01,
            reset: v == 1,
            changed: vec![pb::Entry {
                key: "x".into(),
                value: value(100 + v as i64),
            }],
            samples: vec![series("x", v..=v)],
            ..Default::default()
        });
    }
    let path = f.save(dir.path());
    let replay = IDict::builder("crafted").replay_of("crafted.idrec").build();
    let summary = Replayer::open(&path)
        .unwrap()
        .replay(&replay, &ReplayOptions::default())
        .unwrap();
    assert!(
        summary
            .damaged
            .as_deref()
            .is_some_and(|d| d.contains("goes back")),
        "{summary:?}"
    );
    assert_eq!(replay.history("x").unwrap().versions, [1, 2, 3, 4, 5]);
    assert_eq!(replay.lock().get("x"), Some(&Value::Int(5)));
}

/// A replay is not recorded again (its seeks back would make a recording
/// no replay can follow), even with IDICT_RECORD set.
#[test]
fn a_replay_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let replay = IDict::builder("r").replay_of("f.idrec").build();
    let server = idict::ServeOptions::default()
        .write_run_file(false)
        .announce(false)
        .record(dir.path())
        .serve(&replay)
        .unwrap();
    assert!(server.recording().is_none());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
