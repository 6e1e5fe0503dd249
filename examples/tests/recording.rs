//! The flight recorder survives kill -9: a real `lorenz` process recording
//! as fast as it runs is killed mid-write, and its recording reads to the
//! last whole record, every sample in it in order.
#![cfg(unix)]

use idict::proto::v1 as pb;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_recording_killed_mid_write_reads_to_its_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lorenz"))
        .args(["--rate", "0", "--record"])
        .arg(dir.path())
        .env("IDICT_RUNS_DIR", runs.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until the recording has grown past a few records, then kill -9.
    let start = Instant::now();
    let path = loop {
        let found = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "idrec"));
        if let Some(p) = found
            && std::fs::metadata(&p).map_or(0, |m| m.len()) > 200_000
        {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no recording grew"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let mut recording = idict::recording::open(&path).unwrap();
    assert_eq!(recording.header.name, "lorenz");
    let (mut updates, mut last_step) = (0, -1.0);
    for entry in recording.by_ref() {
        let entry = entry.expect("every whole record reads");
        if let Some(pb::record_entry::Kind::Update(u)) = entry.kind {
            updates += 1;
            for s in u.samples.iter().filter(|s| s.key == "step") {
                for c in s.packed_values.chunks_exact(8) {
                    let step = f64::from_le_bytes(c.try_into().unwrap());
                    assert!(step > last_step, "steps in order: {step} after {last_step}");
                    last_step = step;
                }
            }
        }
    }
    assert!(updates > 1, "{updates} updates");
    assert!(last_step > 0.0);
    // Whatever was cut (or not) is said, never read as a record.
    if let Some(at) = recording.cut_at {
        assert!(at < std::fs::metadata(&path).unwrap().len());
    }
}
