//! Samples the computation has recorded but not yet moved into the shared
//! histories.
//!
//! Server tasks read a key's history for every message they send. If the
//! computation pushed each sample into that shared history as it came, each
//! notify would write memory that those reads keep pulling to the server's
//! core, and would pay for the round trip once per key. So a fast run
//! stages its samples here, memory only its own thread touches, and moves
//! them into the histories in batches; a slow, small run (or a run that
//! goes quiet) has them moved at once. Staging is one append to a log, and
//! a move groups the log by key, so each key's history is touched once a
//! batch however many keys there are. `through` tells readers the version up to
//! which the histories are complete, so nobody skips a staged sample.

use crate::history::Sample;
use crate::history::SharedSeries;
use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::tuning::{
    BATCH_VERSIONS, MAX_MOVE_SHARE, MAX_QUIET_WAIT_SECS, MOVE_SECS_PER_SAMPLE, QUIET_SECS,
    SMALL_MOVE,
};

#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// Each live key's history; `None` where a removed key's was.
    series: Vec<Option<SharedSeries>>,
    /// Positions in `series` free for reuse.
    free: Vec<u32>,
    /// Positions freed since the last move: reused only after it, so that
    /// no staged sample of a removed key reaches the key that takes its
    /// place.
    freed: Vec<u32>,
    /// Key → its position in `series`.
    positions: FxHashMap<Arc<str>, u32>,
    /// The samples staged since the last move, in the order staged, as
    /// (position, value): one sequential append per changed key. (A vector
    /// per key cost a cache miss per key per notify: at 100,000 keys, most
    /// of a notify.)
    log: Vec<(u32, f64)>,
    /// Each version staged since the last move: (version, time, index in
    /// `log` of its first sample).
    batch: Vec<(u64, f64, usize)>,
    /// Scratch for a move: the samples grouped by position, and each
    /// position with samples with where its samples end in `grouped`.
    ends: Vec<(u32, usize)>,
    /// Scratch for the counting sort: each position's next slot.
    next: Vec<usize>,
    grouped: Vec<Sample>,
    /// The newest version staged: the histories are complete up to it once
    /// the staged samples are moved.
    pub upto: u64,
    /// The version through which the histories are complete (the last
    /// `move_all`'s answer).
    through: u64,
    /// Run time of the newest version staged.
    last_time: f64,
    /// Seconds between the two newest versions staged: the run's pace.
    interval: f64,
}

impl Staged {
    /// The position of `key`'s history, registering `series` for it if new.
    pub fn position(&mut self, key: &Arc<str>, series: impl FnOnce() -> SharedSeries) -> u32 {
        if let Some(&i) = self.positions.get(key) {
            return i;
        }
        let entry = Some(series());
        let i = match self.free.pop() {
            Some(i) => {
                self.series[i as usize] = entry;
                i
            }
            None => {
                self.series.push(entry);
                (self.series.len() - 1) as u32
            }
        };
        self.positions.insert(key.clone(), i);
        i
    }

    /// Forgets a key whose history was freed; its staged samples are
    /// dropped at the next move.
    pub fn forget(&mut self, key: &str) {
        let Some(i) = self.positions.remove(key) else {
            return;
        };
        if let Some(slot) = self.series.get_mut(i as usize) {
            *slot = None;
            self.freed.push(i);
        }
    }

    #[cfg(test)]
    pub fn registered(&self) -> usize {
        self.positions.len()
    }

    /// Stages `sample` for the history at `position`. The samples of one
    /// version are staged together, versions in order.
    pub fn stage(&mut self, position: u32, sample: Sample) {
        if self.batch.last().is_none_or(|b| b.0 != sample.version) {
            self.batch
                .push((sample.version, sample.time, self.log.len()));
        }
        self.log.push((position, sample.value));
    }

    /// Records `version` as staged; true if the samples should be moved
    /// now: the batch is full, nothing is waiting (a move then costs one
    /// store), or the run is slow and the batch small enough to move in a
    /// small share of its pace. A slow run's large
    /// batch waits for the next full batch or for the dispatcher, which
    /// moves it once the run has gone quiet ([`is_quiet`](Self::is_quiet)):
    /// moving 100,000 keys' samples one version at a time touched each
    /// key's history at every notify.
    pub fn staged_version(&mut self, version: u64, time: f64) -> bool {
        let interval = time - self.last_time;
        self.interval = interval;
        self.upto = version;
        self.last_time = time;
        // A slow run's move at its notify is worth its latency while it
        // costs a small share of the run's pace.
        let cheap = (self.log.len() as f64) * MOVE_SECS_PER_SAMPLE <= MAX_MOVE_SHARE * interval;
        self.log.is_empty()
            || self.batch.len() >= BATCH_VERSIONS as usize
            || (interval >= QUIET_SECS && self.log.len() <= SMALL_MOVE && cheap)
    }

    /// True once the run has staged nothing for longer than its own pace
    /// (twice its last interval, within `QUIET_SECS..MAX_QUIET_WAIT_SECS`):
    /// a run between two slow notifies is not quiet, one that stopped is.
    pub fn is_quiet(&self, now: f64) -> bool {
        let wait = (2.0 * self.interval).clamp(QUIET_SECS, MAX_QUIET_WAIT_SECS);
        now - self.last_time >= wait
    }

    /// True if samples are staged, or `upto` has not been published as
    /// complete yet.
    pub fn needs_move(&self) -> bool {
        !self.log.is_empty() || self.through < self.upto
    }

    /// Hands each history its staged samples, oldest first (one call per
    /// history), and returns the version the histories are complete through.
    pub fn move_all(&mut self, mut push: impl FnMut(&SharedSeries, &[Sample])) -> u64 {
        if !self.log.is_empty() {
            self.group();
            let mut start = 0usize;
            for &(p, end) in &self.ends {
                if let Some(Some(series)) = self.series.get(p as usize) {
                    push(series, &self.grouped[start..end]);
                }
                start = end;
            }
            // A steady run's buffers stay for its next batch; a burst's
            // are given back.
            if self.grouped.capacity() > 4 * self.log.len().max(1 << 16) {
                self.grouped = Vec::new();
                self.log = Vec::new();
            }
        }
        self.log.clear();
        self.batch.clear();
        self.free.append(&mut self.freed);
        self.through = self.upto;
        self.upto
    }

    /// Sorts the log by position into `grouped`, each position's samples
    /// in version order; `ends` lists each position that has samples with
    /// where its samples end. A big batch is sorted by counting (sequential
    /// passes over the log and the positions); a batch much smaller than
    /// the positions by comparison (no pass over every position).
    fn group(&mut self) {
        let blank = Sample {
            version: 0,
            time: 0.0,
            value: 0.0,
        };
        let sample_at = |batch: &[(u64, f64, usize)], b: usize, value: f64| {
            let (version, time, _) = batch[b];
            Sample {
                version,
                time,
                value,
            }
        };
        self.grouped.clear();
        self.ends.clear();
        let n = self.series.len();
        if self.log.len().saturating_mul(8) < n {
            let mut entries: Vec<(u32, usize, f64)> = Vec::with_capacity(self.log.len());
            for (b, &(_, _, first)) in self.batch.iter().enumerate() {
                let last = self.batch.get(b + 1).map_or(self.log.len(), |x| x.2);
                entries.extend(self.log[first..last].iter().map(|&(p, v)| (p, b, v)));
            }
            // Stable: each position's samples stay in version order.
            entries.sort_by_key(|e| e.0);
            for (i, &(p, b, v)) in entries.iter().enumerate() {
                self.grouped.push(sample_at(&self.batch, b, v));
                if entries.get(i + 1).is_none_or(|next| next.0 != p) {
                    self.ends.push((p, i + 1));
                }
            }
            return;
        }
        // Counting sort: each position's start, then its next free slot.
        let mut next = std::mem::take(&mut self.next);
        next.clear();
        next.resize(n, 0);
        for &(p, _) in &self.log {
            next[p as usize] += 1;
        }
        let mut total = 0usize;
        for (p, slot) in next.iter_mut().enumerate() {
            let count = *slot;
            *slot = total;
            total += count;
            if count > 0 {
                self.ends.push((p as u32, total));
            }
        }
        self.grouped.resize(self.log.len(), blank);
        for (b, &(_, _, first)) in self.batch.iter().enumerate() {
            let last = self.batch.get(b + 1).map_or(self.log.len(), |x| x.2);
            for &(p, value) in &self.log[first..last] {
                let at = &mut next[p as usize];
                self.grouped[*at] = sample_at(&self.batch, b, value);
                *at += 1;
            }
        }
        self.next = next;
    }

    /// A restored checkpoint's version: complete through it.
    pub fn restored(&mut self, version: u64) {
        self.upto = version;
        self.through = version;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::BoundedSeries;
    use parking_lot::Mutex;

    #[test]
    fn forgotten_keys_give_their_place_back() {
        let mut staged = Staged::default();
        let new = || Arc::new(Mutex::new(BoundedSeries::new(1024)));
        for i in 0..10_000u64 {
            let key: Arc<str> = Arc::from(format!("particle{i}"));
            let p = staged.position(&key, new);
            staged.stage(
                p,
                Sample {
                    version: i + 1,
                    time: 0.0,
                    value: 1.0,
                },
            );
            if i > 0 {
                staged.forget(&format!("particle{}", i - 1));
            }
            if staged.staged_version(i + 1, i as f64) {
                staged.move_all(|_, _| {});
            }
        }
        assert_eq!(staged.registered(), 1);
        assert!(staged.series.len() <= 2, "{} places", staged.series.len());
        assert!(staged.log.len() <= 1);
    }

    /// Stages one version of `keys` samples `interval` seconds after the
    /// previous one; whether the notify would move them at once.
    fn moves_at_once(keys: u32, interval: f64) -> bool {
        let mut staged = Staged::default();
        let new = || Arc::new(Mutex::new(BoundedSeries::new(1024)));
        let positions: Vec<u32> = (0..keys)
            .map(|k| staged.position(&Arc::from(format!("k{k}")), new))
            .collect();
        let mut moved = false;
        for v in 1..=3u64 {
            for &p in &positions {
                staged.stage(p, sample(v, 1.0));
            }
            moved = staged.staged_version(v, v as f64 * interval);
            if moved {
                staged.move_all(|_, _| {});
            }
        }
        moved
    }

    /// A slow run's samples move at its notify only while that costs a
    /// small share of its pace: a 1,000-key run notifying every 150 µs
    /// moved every version's samples at once (touching 1,000 histories a
    /// notify: 65-190 ns a key, where a batch costs 15), flipping between
    /// the two as the machine's speed put it either side of 100 µs.
    #[test]
    fn a_slow_run_moves_its_samples_at_once_only_when_that_is_cheap() {
        assert!(!moves_at_once(1000, 150e-6), "1,000 keys every 150 µs");
        assert!(!moves_at_once(1000, 1e-3), "1,000 keys every 1 ms");
        assert!(moves_at_once(1000, 20e-3), "1,000 keys every 20 ms");
        assert!(moves_at_once(10, 150e-6), "10 keys every 150 µs");
        assert!(moves_at_once(100, 2e-3), "100 keys every 2 ms");
        assert!(!moves_at_once(10, 20e-6), "10 keys every 20 µs: a batch");
        assert!(
            !moves_at_once(100_000, 1.0),
            "100,000 keys: the dispatcher's"
        );
    }

    fn sample(version: u64, value: f64) -> Sample {
        Sample {
            version,
            time: version as f64 * 1e-6,
            value,
        }
    }

    /// Whatever the batch's size (grouped by counting or by sorting),
    /// each history gets exactly its own samples in version order, and a
    /// removed key's staged samples never reach the key that takes its
    /// place.
    #[test]
    fn a_batch_reaches_each_history_in_order_and_no_other() {
        // (keys, keys changed per version): a batch as big as the keys, and
        // one much smaller than them.
        for (keys, changing) in [(6usize, 6usize), (400, 3)] {
            let mut staged = Staged::default();
            let handles: Vec<SharedSeries> = (0..=keys)
                .map(|_| Arc::new(Mutex::new(BoundedSeries::new(1 << 20))))
                .collect();
            let mut positions = Vec::new();
            for (k, h) in handles.iter().take(keys).enumerate() {
                let name: Arc<str> = Arc::from(format!("k{k}"));
                positions.push(staged.position(&name, || h.clone()));
            }
            let mut want: Vec<Vec<Sample>> = vec![Vec::new(); keys + 1];
            // Fast versions (1 µs apart): one batch, not moved yet. Each
            // changes some keys, in an order of its own.
            for v in 1..=5u64 {
                let mut order: Vec<usize> = (0..keys)
                    .filter(|k| (k + v as usize).is_multiple_of(2))
                    .collect();
                order.truncate(changing);
                if v.is_multiple_of(2) {
                    order.reverse();
                }
                for k in order {
                    let x = sample(v, (k * 100) as f64 + v as f64);
                    staged.stage(positions[k], x);
                    want[k].push(x);
                }
                let moved = staged.staged_version(v, v as f64 * 1e-6);
                assert!(!moved || v == 1, "a fast run's batch waits");
                if moved {
                    staged.move_all(|s, got| {
                        let k = handles.iter().position(|h| Arc::ptr_eq(h, s));
                        assert!(k.is_some_and(|k| got == &want[k][..]));
                    });
                    want.iter_mut().for_each(Vec::clear);
                }
            }
            // k0 is removed (its history freed) and a new key comes.
            staged.forget("k0");
            let newcomer: Arc<str> = Arc::from("newcomer");
            let p = staged.position(&newcomer, || handles[keys].clone());
            assert_ne!(p, positions[0], "a freed place waits for the move");
            let x = sample(6, -1.0);
            staged.stage(p, x);
            staged.staged_version(6, 6e-6);
            want[0].clear();
            want[keys] = vec![x];
            let mut reached = vec![false; keys + 1];
            staged.move_all(|s, got| {
                let Some(k) = handles.iter().position(|h| Arc::ptr_eq(h, s)) else {
                    panic!("a history nobody registered");
                };
                assert_eq!(got, &want[k][..], "key {k}");
                reached[k] = true;
            });
            for (k, w) in want.iter().enumerate() {
                assert_eq!(reached[k], !w.is_empty(), "key {k}");
            }
            assert!(!staged.needs_move());
        }
    }
}
