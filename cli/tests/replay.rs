//! `idict replay FILE`: a recording served as a run that the CLI reaches as
//! any other: info says it is a replay, pause/step/resume move it, and its
//! history is the recorded run's.

use assert_cmd::Command;
use idict::{IDict, ServeOptions, Value};
use serde_json::Value as Json;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A run of 200 versions recorded into `dir`; the recording's path.
fn record(dir: &std::path::Path) -> std::path::PathBuf {
    let run = IDict::new("recorded-heat");
    let server = ServeOptions {
        record: Some(dir.to_path_buf()),
        ..Default::default()
    }
    .write_run_file(false)
    .announce(false)
    .serve(&run)
    .unwrap();
    let path = server.recording().unwrap().to_path_buf();
    for i in 0..200i64 {
        run.lock().insert("step", i);
        run.lock().insert("residual", 1.0 / (i + 1) as f64);
        run.notify_update().unwrap();
    }
    run.lock()
        .insert("field", Value::array(vec![0.5; 16], vec![4, 4]).unwrap());
    run.notify_update_final().unwrap();
    // Closing waits for the recorder's last write.
    server.wait_then_close(Duration::from_secs(20));
    path
}

#[test]
fn a_replayed_recording_is_a_run_the_cli_reaches() {
    let recordings = tempfile::tempdir().unwrap();
    let file = record(recordings.path());
    let runs = tempfile::tempdir().unwrap();
    let mut replay = std::process::Command::new(env!("CARGO_BIN_EXE_idict"))
        .arg("replay")
        .arg(&file)
        .arg("--paused")
        .env("IDICT_RUNS_DIR", runs.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let idict = |args: &[&str]| {
        let out = Command::cargo_bin("idict")
            .unwrap()
            .env("IDICT_RUNS_DIR", runs.path())
            .args(args)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let start = Instant::now();
    let info: Json = loop {
        let (ok, text) = idict(&["info", "recorded-heat", "--json"]);
        if ok {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the replay was not served"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(info["replay_of"], file.display().to_string());
    assert_eq!(info["status"], "paused");
    assert_eq!(info["replay"]["last_version"], 201, "the span: {info}");
    assert_eq!(info["replay"]["complete"], true);
    // Held before the first version; a step lets versions through.
    assert!(idict(&["step", "recorded-heat", "10"]).0);
    let start = Instant::now();
    while {
        let (_, text) = idict(&["info", "recorded-heat", "--json"]);
        serde_json::from_str::<Json>(&text).unwrap()["version"].as_u64() < Some(10)
    } {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the step did not move the replay"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(idict(&["resume", "recorded-heat"]).0);
    // At its end the replay holds, paused, for seeking.
    let start = Instant::now();
    loop {
        let (_, text) = idict(&["info", "recorded-heat", "--json"]);
        let info = serde_json::from_str::<Json>(&text).unwrap_or_default();
        if info["status"] == "paused" && info["version"].as_u64() == Some(201) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the replay did not reach the end: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, text) = idict(&["history", "recorded-heat", "step", "--json"]);
    assert!(ok, "{text}");
    let history: Json = serde_json::from_str(&text).unwrap();
    let steps: Vec<f64> = history["step"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[2].as_f64().unwrap())
        .collect();
    assert_eq!(steps, (0..200).map(f64::from).collect::<Vec<_>>());
    let (_, values) = idict(&["get", "recorded-heat", "--json"]);
    let values: Json = serde_json::from_str(&values).unwrap();
    assert_eq!(values["values"]["step"], 199);
    assert_eq!(
        values["values"]["field"]["shape"],
        serde_json::json!([4, 4])
    );
    // Back to v50: the state and the history as they were then.
    let (ok, text) = idict(&["seek", "recorded-heat", "50"]);
    assert!(ok && text.contains("seeking to v50"), "{text}");
    let start = Instant::now();
    loop {
        let (_, text) = idict(&["get", "recorded-heat", "--json"]);
        let g = serde_json::from_str::<Json>(&text).unwrap_or_default();
        if g["version"].as_u64() == Some(50) {
            assert_eq!(g["values"]["step"], 49);
            assert!(
                g["values"].get("field").is_none(),
                "not yet published at v50"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no seek: {g}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, text) = idict(&["history", "recorded-heat", "step", "--json"]);
    let history: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(history["step"].as_array().map(Vec::len), Some(50));
    // A bad target is the CLI's error, not the run's.
    let out = Command::cargo_bin("idict")
        .unwrap()
        .env("IDICT_RUNS_DIR", runs.path())
        .args(["seek", "recorded-heat", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a version"));
    // Terminate ends the replay's process.
    assert!(idict(&["terminate", "recorded-heat"]).0);
    let start = Instant::now();
    while replay.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "terminate did not end the replay"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = replay.kill();
    let _ = replay.wait();
}

#[test]
fn get_history_and_info_take_a_recording_as_run() {
    let recordings = tempfile::tempdir().unwrap();
    let file = record(recordings.path());
    let file = file.to_str().unwrap();
    let idict = |args: &[&str]| {
        let out = Command::cargo_bin("idict")
            .unwrap()
            .env("IDICT_RUNS_DIR", recordings.path())
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let values: Json = serde_json::from_str(&idict(&["get", file, "--json"])).unwrap();
    assert_eq!(values["status"], "finished");
    assert_eq!(values["values"]["step"], 199);
    let history: Json =
        serde_json::from_str(&idict(&["history", file, "residual", "--json"])).unwrap();
    let residuals = history["residual"].as_array().unwrap();
    assert_eq!(residuals.len(), 200);
    assert_eq!(residuals[199][2].as_f64(), Some(1.0 / 200.0));
    let info: Json = serde_json::from_str(&idict(&["info", file, "--json"])).unwrap();
    assert_eq!(info["name"], "recorded-heat");
    assert_eq!(info["replay_of"], file);
}
