//! What the CLI's test files share: a real heat simulation served in this
//! process with a private runs directory, and finding the outside programs
//! (sshd, Prometheus) that some tests drive.

#![allow(dead_code)] // each test file uses its own part of this

use idict::{IDict, ServeOptions};
use idict_examples::heat::{self, HeatConfig};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A heat run served in this process; terminated and joined when dropped.
pub struct HeatRun {
    pub idict: IDict,
    pub address: String,
    pub observer_token: String,
    pub metrics_address: Option<std::net::SocketAddr>,
    thread: Option<JoinHandle<()>>,
}

impl HeatRun {
    /// Serves `cfg` under `name` with `options` (its run file in `runs`) and
    /// waits for its first update.
    pub fn serve(name: &str, runs: &Path, options: ServeOptions, cfg: HeatConfig) -> HeatRun {
        let idict = IDict::new(name);
        let server = options
            .runs_dir(runs)
            .announce(false)
            .serve(&idict)
            .expect("serve the heat run");
        let address = server.address().to_string();
        let observer_token = server.tokens().observer.clone();
        let metrics_address = server.metrics_address();
        let handle = idict.clone();
        let thread = std::thread::spawn(move || {
            heat::run(&handle, &cfg).expect("the heat run");
            handle.notify_update_final().expect("the final update");
            server.wait_then_close(Duration::from_secs(5));
        });
        let run = HeatRun {
            idict,
            address,
            observer_token,
            metrics_address,
            thread: Some(thread),
        };
        run.wait_for("the first update", |d| d.version() > 0);
        run
    }

    /// Waits (20 s at most) until `f` holds of the run.
    pub fn wait_for(&self, what: &str, f: impl Fn(&IDict) -> bool) {
        let start = Instant::now();
        while !f(&self.idict) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for HeatRun {
    fn drop(&mut self) {
        self.idict.terminate();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A small heat grid at `rate` steps per second.
pub fn small_heat(n: usize, rate: f64) -> HeatConfig {
    HeatConfig {
        n,
        rate,
        ..HeatConfig::default()
    }
}

/// Set (to anything) by `.ci/run`: a missing outside program then fails the
/// tests that need it, instead of leaving them out.
pub const REQUIRE_ENV: &str = "IDICT_TESTS_REQUIRE_TOOLS";

/// Where the outside program `name` is (`candidates` first, then `PATH`).
/// Missing, a test that needs it is left out, saying so on the terminal
/// (libtest captures `eprintln!`, not a direct write to stderr), unless
/// `.ci/run` asked for every test to run.
pub fn outside_program(name: &str, candidates: &[&str], package: &str) -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file());
    if found.is_none() {
        let why = format!("{name} is not installed (Debian: {package}; .ci/run installs it)");
        assert!(std::env::var_os(REQUIRE_ENV).is_none(), "{why}");
        let _ = writeln!(
            std::io::stderr(),
            "note: left out a test that needs {name}: {why}"
        );
    }
    found
}
