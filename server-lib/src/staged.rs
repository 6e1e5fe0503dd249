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
use crate::published::SharedSeries;
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// A fast run moves its samples after at most this many versions.
pub(crate) const BATCH_VERSIONS: u32 = 32;
/// A notify this long after the previous one moves its samples at once:
/// the run is slow enough that batching saves nothing.
pub(crate) const QUIET_SECS: f64 = 100e-6;

#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// Each history that has held a sample, with the samples waiting for it.
    series: Vec<(SharedSeries, Vec<Sample>)>,
    /// Key → its position in `series`.
    positions: FxHashMap<Arc<str>, u32>,
    /// Positions in `series` with samples waiting, each once.
    waiting: Vec<u32>,
    /// Versions staged since the last move.
    versions: u32,
    /// The newest version staged: the histories are complete up to it once
    /// the waiting samples are moved.
    pub upto: u64,
    /// Run time of the newest version staged.
    last_time: f64,
}

impl Staged {
    /// The position of `key`'s history, registering `series` for it if new.
    pub fn position(&mut self, key: &Arc<str>, series: impl FnOnce() -> SharedSeries) -> u32 {
        if let Some(&i) = self.positions.get(key) {
            return i;
        }
        let i = self.series.len() as u32;
        self.series.push((series(), Vec::new()));
        self.positions.insert(key.clone(), i);
        i
    }

    /// Stages a sample for the history at `position`.
    pub fn stage(&mut self, position: u32, sample: Sample) {
        if let Some((_, samples)) = self.series.get_mut(position as usize) {
            if samples.is_empty() {
                self.waiting.push(position);
            }
            samples.push(sample);
        }
    }

    /// Records that version `version` (at run time `time`) is staged, and
    /// says whether its samples should move now.
    pub fn staged_version(&mut self, version: u64, time: f64) -> bool {
        let quiet = time - self.last_time >= QUIET_SECS;
        self.upto = version;
        self.last_time = time;
        self.versions += 1;
        quiet || self.versions >= BATCH_VERSIONS
    }

    /// True if nothing was staged for `QUIET_SECS` before run time `now`.
    pub fn is_quiet(&self, now: f64) -> bool {
        now - self.last_time >= QUIET_SECS
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Moves every waiting sample into its history, each history locked
    /// once, with `push(history, samples)`. Returns the version through
    /// which the histories are now complete.
    pub fn move_all(&mut self, mut push: impl FnMut(&SharedSeries, &mut Vec<Sample>)) -> u64 {
        for i in self.waiting.drain(..) {
            if let Some((series, samples)) = self.series.get_mut(i as usize) {
                push(series, samples);
                samples.clear();
            }
        }
        self.versions = 0;
        self.upto
    }

    /// Starts from a restored run's version.
    pub fn restored(&mut self, version: u64) {
        self.upto = version;
    }
}
