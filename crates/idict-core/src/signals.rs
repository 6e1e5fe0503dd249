//! Ending a run the way clusters end it. Batch schedulers (SLURM's
//! `scancel`, PBS's `qdel`, …), container runtimes and `kill` end a job with
//! SIGTERM, then SIGKILL once a grace period has passed; a terminal sends
//! SIGINT (Ctrl-C) or SIGHUP. [`IDict::terminate_on_signals`] (opt-in) turns
//! all three into [`IDict::terminate`], so the computation leaves its loop at
//! its next `wait()`, publishes its final update and closes its server, which
//! removes its run file.
//!
//! - The first signal terminates every registered run that has not ended,
//!   and prints one line on stderr: `heat: finishing (signal again to quit
//!   at once)`.
//! - A second signal exits the process at once with status 130 (128 +
//!   SIGINT, whichever signal it was). So does the first one when no
//!   registered run is left to finish (all dropped or ended), as it would
//!   without the handler. Before exiting it removes this process's run files
//!   from the runs directory ([`runfile::runs_dir`]). A run served with
//!   `ServeOptions::runs_dir` elsewhere
//!   leaves its file behind (readers skip it once the process is gone), and
//!   so does a Unix socket.
//! - Runs are registered as `Weak` handles: registering never keeps a run's
//!   memory alive, and a dropped run drops out. Any number of runs in one
//!   process can register; the handler is installed once.
//! - The handler is the `ctrlc` crate's: it runs on a thread of its own, not
//!   in signal context. It replaces the dispositions SIGINT, SIGTERM and
//!   SIGHUP had, "ignore" included (so under `nohup` a hangup finishes the
//!   run). `ctrlc` allows one handler per process: if the program already set
//!   one, registering fails with [`SignalError::HandlerTaken`]. On Windows
//!   it answers the console's control events (Ctrl-C, Ctrl-Break, close).
//!
//! The scheduler's grace period (SLURM's `KillWait`, 30 s by default) must
//! cover the rest of the step, the final update and `wait_then_close`;
//! SIGKILL after it cannot be caught.

use crate::IDict;
use crate::dict::Inner;
use crate::runfile;
use parking_lot::Mutex;
use std::path::Path;
use std::sync::{Arc, Weak};

/// The exit status after a second signal (128 + SIGINT, as shells report an
/// interrupted program).
pub const EXIT_STATUS_ON_SECOND_SIGNAL: i32 = 130;

/// Why [`IDict::terminate_on_signals`] could not take the signals.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("this process already has a Ctrl-C handler from the ctrlc crate; it allows only one")]
    HandlerTaken,
    #[error("cannot install the signal handler: {0}")]
    Install(#[source] std::io::Error),
}

struct Registry {
    /// Runs the first signal terminates.
    runs: Vec<Weak<Inner>>,
    handler_installed: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    runs: Vec::new(),
    handler_installed: false,
});

impl IDict {
    /// SIGINT, SIGTERM and SIGHUP terminate this run (and every other run
    /// registered in the process); a second signal exits at once. See the
    /// [module docs](crate::signals) for exactly what happens. Call it before
    /// `serve`, so that no signal finds the run served but not yet
    /// registered. Calling it again is harmless.
    pub fn terminate_on_signals(&self) -> Result<(), SignalError> {
        let mut registry = REGISTRY.lock();
        if !registry.handler_installed {
            let mut signals_seen = 0u32;
            ctrlc::set_handler(move || {
                signals_seen = signals_seen.saturating_add(1);
                on_signal(signals_seen);
            })
            .map_err(|e| match e {
                ctrlc::Error::MultipleHandlers => SignalError::HandlerTaken,
                ctrlc::Error::System(io) => SignalError::Install(io),
                other => SignalError::Install(std::io::Error::other(other.to_string())),
            })?;
            registry.handler_installed = true;
            tracing::debug!("SIGINT, SIGTERM and SIGHUP now terminate the registered runs");
        }
        register(&mut registry, self);
        Ok(())
    }
}

fn register(registry: &mut Registry, idict: &IDict) {
    registry.runs.retain(|run| run.strong_count() > 0);
    if !registry
        .runs
        .iter()
        .any(|run| std::ptr::eq(run.as_ptr(), Arc::as_ptr(&idict.inner)))
    {
        registry.runs.push(Arc::downgrade(&idict.inner));
    }
}

/// The registered runs still alive that have not finished or failed.
fn runs_to_finish() -> Vec<IDict> {
    let mut registry = REGISTRY.lock();
    registry.runs.retain(|run| run.strong_count() > 0);
    registry
        .runs
        .iter()
        .filter_map(Weak::upgrade)
        .map(|inner| IDict { inner })
        .filter(|run| !run.status().state.is_terminal())
        .collect()
}

/// Called on the handler's thread for each signal, `signals_seen` counting it.
fn on_signal(signals_seen: u32) {
    if signals_seen == 1 && finish_registered_runs() {
        return;
    }
    tracing::warn!(
        signals_seen,
        "signal: exiting at once, without the final update"
    );
    if let Ok(dir) = runfile::runs_dir() {
        remove_own_run_files(&dir);
    }
    std::process::exit(EXIT_STATUS_ON_SECOND_SIGNAL);
}

/// Terminates the registered runs; false if there was none left to finish.
fn finish_registered_runs() -> bool {
    let runs = runs_to_finish();
    if runs.is_empty() {
        return false;
    }
    let names: Vec<&str> = runs.iter().map(IDict::name).collect();
    tracing::info!(runs = ?names, "signal: terminating");
    eprintln!(
        "{}: finishing (signal again to quit at once)",
        names.join(", ")
    );
    for run in &runs {
        run.terminate();
    }
    true
}

/// Removes the run files in `dir` that name this process on this host (the
/// process is about to exit, so they would only mislead). Best effort.
fn remove_own_run_files(dir: &Path) {
    let pid = std::process::id();
    let host = runfile::host_name();
    let own_suffix = format!("-{pid}.json");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|entry| entry.path()) {
        let named_for_this_pid = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.ends_with(&own_suffix));
        if !named_for_this_pid {
            continue;
        }
        let ours =
            runfile::read_run_file(&path).is_ok_and(|run| run.pid == pid && run.host == host);
        if ours {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed run file"),
                Err(e) => tracing::warn!(path = %path.display(), "cannot remove run file: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runfile::RunFile;

    fn is_registered(idict: &IDict) -> bool {
        REGISTRY
            .lock()
            .runs
            .iter()
            .any(|run| std::ptr::eq(run.as_ptr(), Arc::as_ptr(&idict.inner)))
    }

    fn is_to_finish(idict: &IDict) -> bool {
        runs_to_finish()
            .iter()
            .any(|run| Arc::ptr_eq(&run.inner, &idict.inner))
    }

    #[test]
    fn the_registry_never_keeps_a_run_alive_and_skips_ended_runs() {
        let running = IDict::new("running");
        let ended = IDict::new("ended");
        let dropped = IDict::new("dropped");
        for run in [&running, &ended, &dropped, &running] {
            register(&mut REGISTRY.lock(), run);
        }
        let registered_twice = REGISTRY
            .lock()
            .runs
            .iter()
            .filter(|run| std::ptr::eq(run.as_ptr(), Arc::as_ptr(&running.inner)))
            .count();
        assert_eq!(registered_twice, 1);

        let dropped_memory = Arc::downgrade(&dropped.inner);
        drop(dropped);
        assert!(dropped_memory.upgrade().is_none());

        ended.notify_update_final().unwrap();
        assert!(is_to_finish(&running));
        assert!(!is_to_finish(&ended));
        assert!(is_registered(&ended));

        assert!(finish_registered_runs());
        assert!(running.terminated());
    }

    #[test]
    fn only_this_processes_run_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, pid: u32| RunFile {
            name: name.into(),
            pid,
            host: runfile::host_name(),
            address: "http://127.0.0.1:1".into(),
            observer_token: "o".into(),
            controller_token: "c".into(),
            started_unix_ms: 1,
            protocol_version: 1,
            heartbeat_unix_ms: crate::runfile::now_unix_ms(),
            metrics: None,
            ranks: 1,
        };
        let me = std::process::id();
        let ours = runfile::write_run_file(dir.path(), &run("heat", me)).unwrap();
        let other_pid = if me == 1 { 2 } else { me - 1 };
        let theirs = runfile::write_run_file(dir.path(), &run("heat", other_pid)).unwrap();
        let mut elsewhere = run("lorenz", me);
        elsewhere.host = format!("not-{}", runfile::host_name());
        let other_host = runfile::write_run_file(dir.path(), &elsewhere).unwrap();

        remove_own_run_files(dir.path());

        assert!(!ours.exists());
        assert!(theirs.exists());
        assert!(other_host.exists());
    }
}
