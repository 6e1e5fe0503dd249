//! Samples the computation has recorded but not yet moved into the shared
//! histories.
//!
//! Server tasks read a key's history for every message they send. If the
//! computation pushed each sample into that shared history as it came, each
//! notify would write memory that those reads keep pulling to the server's
//! core, and would pay for the round trip once per key. So a fast run
//! stages its samples here, memory only its own thread touches, and moves
//! them into the histories in batches; a slow run (or a run that goes
//! quiet) has them moved at once. `through` tells readers the version up to
//! which the histories are complete, so nobody skips a staged sample.

use crate::history::Sample;
use crate::history::SharedSeries;
use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::tuning::{BATCH_VERSIONS, QUIET_SECS};

#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// Each live key's history, with the samples waiting for it; `None`
    /// where a removed key's was (reused by the next new key).
    series: Vec<Option<(SharedSeries, Vec<Sample>)>>,
    /// Positions in `series` free for reuse.
    free: Vec<u32>,
    /// Key → its position in `series`.
    positions: FxHashMap<Arc<str>, u32>,
    /// Positions in `series` with samples waiting, each once.
    waiting: Vec<u32>,
    /// Versions staged since the last move.
    versions: u32,
    /// The newest version staged: the histories are complete up to it once
    /// the waiting samples are moved.
    pub upto: u64,
    /// The version through which the histories are complete (the last
    /// `move_all`'s answer).
    through: u64,
    /// Run time of the newest version staged.
    last_time: f64,
}

impl Staged {
    /// The position of `key`'s history, registering `series` for it if new.
    pub fn position(&mut self, key: &Arc<str>, series: impl FnOnce() -> SharedSeries) -> u32 {
        if let Some(&i) = self.positions.get(key) {
            return i;
        }
        let entry = Some((series(), Vec::new()));
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

    /// Forgets a removed key: its waiting samples go with its history.
    pub fn forget(&mut self, key: &str) {
        let Some(i) = self.positions.remove(key) else {
            return;
        };
        if let Some(Some((_, samples))) = self.series.get(i as usize)
            && !samples.is_empty()
        {
            self.waiting.retain(|&w| w != i);
        }
        if let Some(slot) = self.series.get_mut(i as usize) {
            *slot = None;
            self.free.push(i);
        }
    }

    /// How many keys' histories are registered (for tests of boundedness).
    #[cfg(test)]
    pub fn registered(&self) -> usize {
        self.positions.len()
    }

    /// Stages a sample for the history at `position`.
    pub fn stage(&mut self, position: u32, sample: Sample) {
        if let Some(Some((_, samples))) = self.series.get_mut(position as usize) {
            if samples.is_empty() {
                self.waiting.push(position);
            }
            samples.push(sample);
        }
    }

    /// Records that version `version` (at run time `time`) is staged, and
    /// says whether its samples should move now: the run is quiet, the
    /// batch is full, or nothing is waiting (then moving only advances
    /// `through`, which must reach every version a watcher may wait for).
    pub fn staged_version(&mut self, version: u64, time: f64) -> bool {
        let quiet = time - self.last_time >= QUIET_SECS;
        self.upto = version;
        self.last_time = time;
        self.versions += 1;
        quiet || self.versions >= BATCH_VERSIONS || self.waiting.is_empty()
    }

    /// True if nothing was staged for `QUIET_SECS` before run time `now`.
    pub fn is_quiet(&self, now: f64) -> bool {
        now - self.last_time >= QUIET_SECS
    }

    /// True if samples wait or the histories are not complete through the
    /// newest staged version.
    pub fn needs_move(&self) -> bool {
        !self.waiting.is_empty() || self.through < self.upto
    }

    /// Moves every waiting sample into its history, each history locked
    /// once, with `push(history, samples)`. Returns the version through
    /// which the histories are now complete.
    pub fn move_all(&mut self, mut push: impl FnMut(&SharedSeries, &mut Vec<Sample>)) -> u64 {
        for i in self.waiting.drain(..) {
            if let Some(Some((series, samples))) = self.series.get_mut(i as usize) {
                push(series, samples);
                samples.clear();
            }
        }
        self.versions = 0;
        self.through = self.upto;
        self.upto
    }

    /// Starts from a restored run's version.
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
            staged.staged_version(i + 1, i as f64);
            if i > 0 {
                staged.forget(&format!("particle{}", i - 1));
            }
        }
        assert_eq!(staged.registered(), 1);
        assert!(staged.series.len() <= 2, "{} places", staged.series.len());
        assert!(staged.waiting.len() <= 1);
    }
}
