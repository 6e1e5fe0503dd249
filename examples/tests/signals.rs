//! The example binaries end the way batch schedulers end a job: SIGTERM
//! finishes the run (watchers get the final update, the run file goes, the
//! process succeeds); a second signal quits at once. Each test runs a real
//! `lorenz` process with a private runs directory and watches it with the
//! real client.
#![cfg(unix)]

use futures::{Stream, StreamExt};
use idict::RunState;
use idict::client::{Client, ClientError, ConnectOptions, Target, Update, WatchOptions};
use idict::runfile::{self, FoundRun};
use rustix::process::{Pid, Signal, kill_process};
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any wait may take before the test gives up: there only so that a
/// broken build fails instead of hanging, never a measure of speed.
const DEADLINE: Duration = Duration::from_secs(60);

/// A running example process; killed if the test ends before it exits.
struct Example {
    child: Child,
    runs_dir: tempfile::TempDir,
}

impl Example {
    fn spawn(args: &[&str]) -> Example {
        let runs_dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lorenz"))
            .args(args)
            .env("IDICT_RUNS_DIR", runs_dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Example { child, runs_dir }
    }

    /// Waits for the run file the process writes once it serves.
    fn run_file(&mut self) -> FoundRun {
        let start = Instant::now();
        loop {
            if let Some(run) = runfile::list_runs_in(self.runs_dir.path())
                .unwrap()
                .into_iter()
                .next()
            {
                return run;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("lorenz exited ({status}) before serving: {}", self.stderr());
            }
            assert!(start.elapsed() < DEADLINE, "lorenz never wrote a run file");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        kill_process(pid, signal).unwrap();
    }

    /// Waits for the process to exit; its status and everything it wrote on stderr.
    fn exit(&mut self) -> (ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            assert!(start.elapsed() < DEADLINE, "lorenz did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn watch(run: &FoundRun) -> impl Stream<Item = Result<Update, ClientError>> + Unpin + use<> {
    let target = Target::at(&run.run.address, Some(run.run.observer_token.clone()));
    let client = Client::connect_target(target, ConnectOptions::default())
        .await
        .unwrap();
    client.watch(WatchOptions::default()).await.unwrap()
}

/// Starts lorenz with `args` and watches it until it has published.
async fn publishing(
    args: &[&str],
) -> (
    Example,
    FoundRun,
    impl Stream<Item = Result<Update, ClientError>> + Unpin + use<>,
) {
    let mut lorenz = Example::spawn(args);
    let run = lorenz.run_file();
    let mut updates = watch(&run).await;
    next_update_where(&mut updates, |u| u.version > 0)
        .await
        .expect("the run published nothing");
    (lorenz, run, updates)
}

/// Reads updates until one satisfies `wanted`; `None` if the stream ends
/// (or fails) first.
async fn next_update_where(
    updates: &mut (impl Stream<Item = Result<Update, ClientError>> + Unpin),
    wanted: impl Fn(&Update) -> bool,
) -> Option<Update> {
    let read = async {
        while let Some(Ok(update)) = updates.next().await {
            if wanted(&update) {
                return Some(update);
            }
        }
        None
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("no such update before the deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_publishes_the_final_update_removes_the_run_file_and_succeeds() {
    let (mut lorenz, run, mut updates) = publishing(&[]).await;

    lorenz.signal(Signal::TERM);

    let last = next_update_where(&mut updates, |u| u.last).await;
    drop(updates);
    let (status, stderr) = lorenz.exit();
    let last = last.unwrap_or_else(|| panic!("no final update ({status}); stderr: {stderr}"));
    assert_eq!(last.status.state, RunState::Finished, "{stderr}");
    assert!(status.success(), "{status}; stderr: {stderr}");
    assert!(
        stderr.contains("lorenz: finishing (signal again to quit at once)"),
        "{stderr}"
    );
    assert!(!run.path.exists(), "{} was left behind", run.path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_quits_at_once_and_removes_the_run_file() {
    // One step per 1000 s: after its first step the computation is stuck in
    // a long step and cannot act on the first signal by itself.
    let (mut lorenz, run, mut updates) = publishing(&["--rate", "0.001"]).await;

    lorenz.signal(Signal::TERM);
    let terminating =
        next_update_where(&mut updates, |u| u.status.state == RunState::Terminating).await;
    if terminating.is_none() {
        let (status, stderr) = lorenz.exit();
        panic!("the first signal did not leave the run terminating ({status}); stderr: {stderr}");
    }

    lorenz.signal(Signal::INT);
    let (status, stderr) = lorenz.exit();
    assert_eq!(status.code(), Some(130), "{status}; stderr: {stderr}");
    assert!(!run.path.exists(), "{} was left behind", run.path.display());
}
