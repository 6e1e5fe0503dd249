//! Faults of the process around a run.

use idict::{IDict, ServeOptions};
use std::time::{Duration, Instant};

/// The child of the panic test: serves a run, then its loop panics.
#[test]
fn panicking_child() {
    let Ok(dir) = std::env::var("IDICT_PANIC_CHILD") else {
        return;
    };
    let d = IDict::new("doomed");
    let _server = ServeOptions::default()
        .runs_dir(&dir)
        .announce(false)
        .serve(&d)
        .unwrap();
    for i in 0..10 {
        d.lock().insert("i", i);
        d.notify_update().unwrap();
    }
    std::fs::write(format!("{dir}/ready"), b"").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    panic!("the solver blew up");
}

#[test]
fn a_run_whose_computation_panics_leaves_no_run_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "panicking_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IDICT_PANIC_CHILD", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child panicked");
    assert!(
        dir.path().join("ready").exists(),
        "the child served and updated first"
    );
    let start = Instant::now();
    let run_files = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    };
    while run_files() > 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        run_files(),
        0,
        "the run file was removed as the process unwound"
    );
    assert!(idict::runfile::list_runs_in(dir.path()).unwrap().is_empty());
}
