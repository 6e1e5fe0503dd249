//! What the server's tasks share: counters, the news the dispatcher fans
//! out, the mirror of the published state, the options; and small helpers
//! over them that several tasks use.

use crate::ServeOptions;
use idict_core::published::Published;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use tokio::sync::watch as tokio_watch;

/// What the server's tasks share.
pub(crate) struct Shared {
    pub watchers: AtomicUsize,
    /// Watch and GetHistory streams open per role (observer, controller),
    /// each capped at `options.max_streams_per_token`.
    pub streams_by_role: [AtomicUsize; 2],
    /// A watcher has gone since the free heap was last given back.
    pub watchers_left: AtomicBool,
    pub messages_sent: AtomicU64,
    /// The newest epoch, fanned out by the dispatcher.
    pub news: tokio_watch::Receiver<u64>,
    /// This server's copy of the published state, refreshed by the
    /// dispatcher once per frame; watch streams read only this.
    pub mirror: RwLock<Published>,
    pub options: ServeOptions,
    /// Control actions for the recorder, when the run is recorded.
    pub controls: Option<tokio::sync::mpsc::Sender<idict_proto::v1::ControlEvent>>,
}

/// Versions published per second over the 5 s before the newest one
/// (`now`: seconds since the run started), or 0 once updates have stopped:
/// none for three of the run's own intervals (at least a second). So the
/// rate does not fade for five seconds after a run stops, and a still run
/// reads the same 0 at every poll.
pub(crate) fn updates_per_second(p: &Published, now: f64) -> f64 {
    let Some(last) = p.records.back() else {
        return 0.0;
    };
    let start = p.records.partition_point(|r| r.time < last.time - 5.0);
    let Some(first) = p.records.get(start) else {
        return 0.0;
    };
    let (versions, span) = (last.version - first.version, last.time - first.time);
    if versions == 0 || span <= 0.0 {
        // A single update has no rate.
        return 0.0;
    }
    let interval = span / versions as f64;
    if now - last.time > (3.0 * interval).max(1.0) {
        return 0.0;
    }
    versions as f64 / span
}

/// A thread's name for a run: a name with a NUL in it (from a recording
/// or a client, say) would make the thread's creation panic.
pub(crate) fn thread_name(what: &str, run: &str) -> String {
    let run: String = run.chars().filter(|c| !c.is_control()).take(32).collect();
    format!("{what}-{run}")
}
