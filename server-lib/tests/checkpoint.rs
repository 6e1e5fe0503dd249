//! Checkpoints: a restored run has its state, its whole history and its
//! messages; a process killed mid-checkpoint leaves the previous one whole.

use idict::{IDict, Level, Value};
use std::time::Duration;

#[test]
fn a_restored_run_has_its_state_history_and_messages_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let d = IDict::new("resumable");
    d.message(Level::Info, "started");
    for i in 1..=2000i64 {
        let mut g = d.lock();
        g.insert("step", i);
        g.insert("loss", 1.0 / i as f64);
        g.insert("u", vec![i as f64; 16]);
        g.insert(
            "meta",
            Value::from(serde_json::json!({"solver": "cg", "tol": 1e-6})),
        );
        drop(g);
        d.notify_update().unwrap();
    }
    assert_eq!(d.checkpoint(&path).unwrap(), 2000);
    let original = d.history("loss").unwrap();

    let r = IDict::restore(&path).unwrap();
    assert_eq!(r.name(), "resumable");
    assert_eq!(r.version(), 2000);
    assert_eq!(r.lock().get("step"), Some(&Value::Int(2000)));
    assert_eq!(
        r.lock()
            .get("u")
            .and_then(Value::as_array)
            .unwrap()
            .to_f64_vec(),
        vec![2000.0; 16]
    );
    assert_eq!(r.lock().get("meta"), d.lock().get("meta"));
    assert_eq!(r.history("loss").unwrap(), original, "the whole curve");
    // It goes on from where it was.
    r.lock().insert("step", 2001);
    assert_eq!(r.notify_update(), Ok(2001));
    let h = r.history("step").unwrap();
    assert_eq!(h.versions.first(), Some(&1));
    assert_eq!(h.versions.last(), Some(&2001));
}

#[test]
fn bad_checkpoint_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = IDict::restore(&junk).unwrap_err();
    assert!(e.to_string().contains("not an idict checkpoint"), "{e}");
    let torn = dir.path().join("torn");
    let mut bytes = idict::checkpoint::MAGIC.to_vec();
    bytes.extend_from_slice(&[0x0a, 0xff, 0x01]);
    std::fs::write(&torn, bytes).unwrap();
    let e = IDict::restore(&torn).unwrap_err();
    assert!(e.to_string().contains("damaged"), "{e}");
    assert!(IDict::restore(dir.path().join("missing")).is_err());
}

/// The child of the kill test: checkpoints a growing run over and over.
#[test]
fn checkpoint_child() {
    let Ok(path) = std::env::var("IDICT_CHECKPOINT_CHILD") else {
        return;
    };
    let d = IDict::new("killed");
    for i in 1.. {
        {
            let mut g = d.lock();
            g.insert("i", i as i64);
            g.insert("u", vec![i as f64; 1 << 20]); // 8 MiB: writes take a while
        }
        d.notify_update().unwrap();
        d.checkpoint(&path).unwrap();
    }
}

#[test]
fn a_process_killed_mid_checkpoint_leaves_the_previous_checkpoint_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let exe = std::env::current_exe().unwrap();
    let mut last_seen = 0;
    for round in 0..6u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "checkpoint_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("IDICT_CHECKPOINT_CHILD", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it write a few, then kill it at a varying moment.
        let start = std::time::Instant::now();
        while !path.exists() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(40 + 17 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let r = IDict::restore(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let i = r.lock().get("i").and_then(Value::as_i64).unwrap();
        let u = r
            .lock()
            .get("u")
            .and_then(Value::as_array)
            .unwrap()
            .to_f64_vec();
        assert_eq!(u.len(), 1 << 20);
        assert!(
            u.iter().all(|&x| x == i as f64),
            "round {round}: a consistent checkpoint"
        );
        assert_eq!(r.version(), i as u64);
        last_seen = last_seen.max(i);
    }
    assert!(last_seen >= 1);
}

#[test]
fn a_checkpoint_with_an_absurd_time_restores_with_a_fresh_clock() {
    // Found by the fuzzer: a time too large for a Duration panicked.
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd");
    let msg = idict::proto::v1::Checkpoint {
        format_version: 1,
        name: "odd".into(),
        version: 3,
        time: 1e300,
        ..Default::default()
    };
    let mut bytes = idict::checkpoint::MAGIC.to_vec();
    bytes.extend(msg.encode_to_vec());
    std::fs::write(&path, bytes).unwrap();
    let r = IDict::restore(&path).unwrap();
    assert_eq!(r.version(), 3);
}
