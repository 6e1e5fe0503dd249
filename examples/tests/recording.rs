//! The flight recorder survives kill -9: a real `lorenz` process recording
//! as fast as it runs is killed mid-write, and its recording reads to the
//! last whole record, every sample in it in order. And a recording says
//! where it goes, and keeps arrays to a budget by default.
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

/// The versions of array key `key` a recording holds, and how many its
/// budget left out.
fn array_versions(path: &std::path::Path, key: &str) -> (usize, u64) {
    let recording = idict::recording::open(path).unwrap();
    let (mut n, mut left_out) = (0, 0);
    for entry in recording {
        match entry.unwrap().kind {
            Some(pb::record_entry::Kind::Update(u)) => {
                n += u.changed.iter().filter(|e| e.key == key).count();
                n += u
                    .part
                    .iter()
                    .filter(|p| p.key == key && p.offset == 0)
                    .count();
            }
            Some(pb::record_entry::Kind::ArraysThinned(a)) if a.key == key => {
                left_out += a.dropped;
            }
            _ => {}
        }
    }
    (n, left_out)
}

/// Issue 30: `heat --rate 200 --steps 600 --record DIR` wrote 78.8 MB in
/// 3 s (its 128x128 field at every version) and said nothing of where. It
/// says where the recording goes and what it keeps; by default a field a
/// second (and its first and last), `--record-array-mibs all` every one.
#[test]
fn a_recording_says_where_it_goes_and_keeps_a_field_a_second() {
    let run = |extra: &[&str], steps: &str| {
        let dir = tempfile::tempdir().unwrap();
        let runs = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_heat"))
            .args(["--rate", "200", "--steps", steps, "--record"])
            .arg(dir.path())
            .args(extra)
            .env("IDICT_RUNS_DIR", runs.path())
            .env_remove("IDICT_RECORD_ARRAY_MIBS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "idrec"))
            .expect("a recording");
        (dir, path, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (_dir, path, said) = run(&[], "600");
    let line = format!("recording run 'heat' to {}", path.display());
    assert!(said.contains(&line), "not said where: {said}");
    assert!(said.contains("a version a second of each array"), "{said}");
    // About one a second of its 3 s (more if a loaded machine slows it).
    let (fields, left_out) = array_versions(&path, "u");
    assert!(
        (3..=12).contains(&fields) && left_out > 500,
        "{fields} versions of the field kept, {left_out} left out"
    );
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes < 10_000_000, "{bytes} bytes");

    // Every version the recorder receives (a loaded machine may coalesce
    // a few on the way, as for any watcher): none left out by a budget.
    let (_dir, path, said) = run(&["--record-array-mibs", "all"], "40");
    assert!(said.contains("every version of each array"), "{said}");
    let (fields, left_out) = array_versions(&path, "u");
    assert_eq!(left_out, 0, "left out under `all`");
    assert!(fields >= 10, "{fields} versions of 40 kept");
}
