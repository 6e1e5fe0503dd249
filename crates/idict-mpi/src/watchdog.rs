//! Rank 0's watch over the other ranks of its host: a rank that is killed
//! or dies (a panic, an abort) makes the run Failed, naming the rank, so
//! its watchers get the final update and the reason instead of a server
//! that vanishes when the launcher ends the job.
//!
//! A rank's process is checked by pid (only ranks on rank 0's host can
//! be). A rank that panics first writes its message to a file named after
//! the job (see [`panic_file`]), which the watchdog reads for the reason.

use idict::IDict;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the ranks' processes are looked at.
const EVERY: Duration = Duration::from_millis(20);

/// Where rank `rank` of the job whose rank 0 is `root_pid` leaves its panic
/// message.
pub fn panic_file(root_pid: u32, rank: usize) -> PathBuf {
    std::env::temp_dir().join(format!("idict-mpi-{root_pid}-rank{rank}.panic"))
}

/// Installs, on a rank other than 0, a panic hook that leaves the message
/// where rank 0's watchdog reads it (the previous hook still runs).
pub fn report_panics(root_pid: u32, rank: usize) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let message = match info.location() {
            Some(l) => format!("panicked at {}:{}: {text}", l.file(), l.line()),
            None => format!("panicked: {text}"),
        };
        let _ = std::fs::write(panic_file(root_pid, rank), message);
        previous(info);
    }));
}

/// Watches `peers` ((rank, pid) on this host) until the run ends or
/// `ending` is set (the job's last update: its ranks may then exit).
pub fn watch(run: IDict, peers: Vec<(usize, u32)>, ending: Arc<AtomicBool>) {
    if peers.is_empty() {
        return;
    }
    let root_pid = std::process::id();
    let spawned = std::thread::Builder::new()
        .name("idict-mpi-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EVERY);
                if ending.load(Ordering::Acquire) || run.status().state.is_terminal() {
                    return;
                }
                let Some(&(rank, pid)) = peers
                    .iter()
                    .find(|(_, pid)| !idict::runfile::process_alive(*pid))
                else {
                    continue;
                };
                if ending.load(Ordering::Acquire) {
                    return;
                }
                let file = panic_file(root_pid, rank);
                let why = match std::fs::read_to_string(&file) {
                    Ok(text) => {
                        let _ = std::fs::remove_file(&file);
                        text
                    }
                    Err(_) => format!(
                        "its process (pid {pid}) ended outside the job: killed, or it exited"
                    ),
                };
                tracing::error!("rank {rank}: {why}");
                run.fail(format!("rank {rank}: {why}"));
                return;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no watch over the ranks (a thread could not start: {e})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idict::RunState;
    use std::time::Instant;

    #[test]
    fn a_rank_killed_fails_the_run_naming_it_and_one_that_panicked_gives_its_message() {
        for panicked in [false, true] {
            let run = IDict::new("watched");
            let mut child = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("sleep runs");
            if panicked {
                std::fs::write(
                    panic_file(std::process::id(), 2),
                    "panicked at heat.rs:7: boom",
                )
                .expect("panic file");
            }
            watch(
                run.clone(),
                vec![(2, child.id())],
                Arc::new(AtomicBool::new(false)),
            );
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(run.status().state, RunState::Running, "alive: no failure");
            child.kill().expect("kill");
            child.wait().expect("reaped");
            let start = Instant::now();
            while run.status().state != RunState::Failed {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the death was not seen"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            let message = run.status().message;
            assert!(message.starts_with("rank 2: "), "{message}");
            let want = if panicked {
                "boom"
            } else {
                "ended outside the job"
            };
            assert!(message.contains(want), "{message}");
        }
    }

    #[test]
    fn ranks_that_exit_after_the_last_update_are_no_failure() {
        let run = IDict::new("ending");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let ending = Arc::new(AtomicBool::new(false));
        watch(run.clone(), vec![(1, child.id())], ending.clone());
        ending.store(true, Ordering::Release);
        child.kill().expect("kill");
        child.wait().expect("reaped");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(run.status().state, RunState::Running);
    }
}
