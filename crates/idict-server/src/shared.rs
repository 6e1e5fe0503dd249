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

/// Versions published per second over the 5 s up to `now` (seconds since
/// the run started; the run's age when younger), or 0 once updates have
/// stopped: none for three of the run's own intervals (at least a second).
/// So the rate does not fade for five seconds after a run stops, a still
/// run reads the same 0 at every poll, and a few steps taken while paused
/// read as few.
pub(crate) fn updates_per_second(p: &Published, now: f64) -> f64 {
    let Some(last) = p.records.back() else {
        return 0.0;
    };
    let start = p.records.partition_point(|r| r.time <= now - RATE_WINDOW);
    let Some(first) = p.records.get(start) else {
        return 0.0;
    };
    // The versions published in the window: those after the record before
    // it (records are frames, each up to its version).
    let before = match start.checked_sub(1) {
        Some(i) => p.records.get(i).map_or(p.records_floor, |r| r.version),
        None => p.records_floor,
    };
    let versions = last.version.saturating_sub(before);
    if versions == 0 {
        return 0.0;
    }
    // A run that stopped reads 0 once three of its intervals (a second at
    // least) have passed with nothing...
    let span = (last.time - first.time).max(0.0);
    let interval = span / versions as f64;
    if now - last.time > (3.0 * interval).max(1.0) {
        return 0.0;
    }
    // ...and till then the window runs up to now, not to the last update:
    // five steps taken while paused read 1/s, not the steps' own pace.
    versions as f64 / RATE_WINDOW.min(now).max(f64::EPSILON)
}

/// The recent window an update rate is over, in seconds.
const RATE_WINDOW: f64 = 5.0;

/// A thread's name for a run: a name with a NUL in it (from a recording
/// or a client, say) would make the thread's creation panic.
pub(crate) fn thread_name(what: &str, run: &str) -> String {
    let run: String = run.chars().filter(|c| !c.is_control()).take(32).collect();
    format!("{what}-{run}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use idict_core::published::Record;

    fn run_with(updates: &[(u64, f64)]) -> Published {
        let mut p = Published::new(16);
        for &(version, time) in updates {
            p.push_record(Record {
                version,
                time,
                ..Record::default()
            });
        }
        p
    }

    /// Issue 30: "40.0 updates/s" while paused, "24.2 updates/s" after Step
    /// 5 while paused. A rate is over the recent window up to now.
    #[test]
    fn a_rate_is_over_the_recent_window_and_reads_0_when_nothing_comes() {
        // 40 updates a second for 10 s.
        let steady: Vec<(u64, f64)> = (1..=400).map(|v| (v, v as f64 / 40.0)).collect();
        let p = run_with(&steady);
        let rate = updates_per_second(&p, 10.0);
        assert!((rate - 40.0).abs() < 0.5, "{rate}");
        // Paused since: 0 within a second.
        assert_eq!(updates_per_second(&p, 11.1), 0.0);
        // Paused a minute, then Step 5 (five updates 10 ms apart).
        let mut stepped = steady.clone();
        stepped.extend((1..=5).map(|i| (400 + i, 70.0 + i as f64 * 0.01)));
        let p = run_with(&stepped);
        let rate = updates_per_second(&p, 70.1);
        assert!(
            (rate - 1.0).abs() < 1e-9,
            "five steps in the window: {rate}"
        );
        assert_eq!(updates_per_second(&p, 71.2), 0.0);
        // A run 2 s old at 40 a second reads 40, not 16.
        let young: Vec<(u64, f64)> = (1..=80).map(|v| (v, v as f64 / 40.0)).collect();
        let rate = updates_per_second(&run_with(&young), 2.0);
        assert!((rate - 40.0).abs() < 0.5, "{rate}");
    }
}
