//! The recorded samples of one numeric scalar key, kept within a memory
//! budget. When the budget is full the older part is thinned to a uniform
//! stride, so the whole run stays visible at a coarser resolution instead of
//! the beginning being forgotten. The first and the newest samples are
//! always kept exactly.

/// Bytes one held sample takes (version, time, value, push number).
pub const SAMPLE_BYTES: usize = 32;

/// One sample of a scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub version: u64,
    /// Seconds since the run started.
    pub time: f64,
    pub value: f64,
}

/// Samples of one key, as parallel arrays (the wire's layout), oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub versions: Vec<u64>,
    pub times: Vec<f64>,
    pub values: Vec<f64>,
}

impl Series {
    pub fn len(&self) -> usize {
        self.versions.len()
    }
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
    pub fn get(&self, i: usize) -> Option<Sample> {
        Some(Sample {
            version: *self.versions.get(i)?,
            time: self.times[i],
            value: self.values[i],
        })
    }
    pub fn last(&self) -> Option<Sample> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }
    pub fn iter(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
    pub(crate) fn push(&mut self, s: Sample) {
        self.versions.push(s.version);
        self.times.push(s.time);
        self.values.push(s.value);
    }
    /// Appends another series' samples (for clients assembling chunks).
    pub fn extend(&mut self, other: &Series) {
        self.versions.extend_from_slice(&other.versions);
        self.times.extend_from_slice(&other.times);
        self.values.extend_from_slice(&other.values);
    }
    /// The samples with `after < version <= upto`.
    pub fn range(&self, after: u64, upto: u64) -> Series {
        let lo = self.versions.partition_point(|&v| v <= after);
        let hi = self.versions.partition_point(|&v| v <= upto);
        let hi = hi.max(lo);
        Series {
            versions: self.versions[lo..hi].to_vec(),
            times: self.times[lo..hi].to_vec(),
            values: self.values[lo..hi].to_vec(),
        }
    }
}

/// A series bounded by a sample budget. The newest quarter of the budget
/// keeps every sample (so a client that lags a little loses nothing); older
/// samples are kept at a uniform stride (every `stride`-th push) that doubles
/// whenever the budget fills, so the whole run stays visible evenly.
#[derive(Debug, Clone)]
pub struct BoundedSeries {
    series: Series,
    /// Push number of each held sample (parallel to `series`).
    seqs: Vec<u64>,
    pushes: u64,
    stride: u64,
    capacity: usize,
    /// Thin when the series reaches this length.
    next_thin: usize,
    /// How many samples thinning has dropped in all.
    dropped: u64,
}

/// How far past its budget a series may grow to keep samples that a
/// connected watcher has not received yet. Past this, even those are thinned
/// (a watcher that far behind is not reading at all).
pub const PIN_LIMIT: usize = 8;

impl BoundedSeries {
    /// A series that holds at most `budget_bytes` of samples (at least 16 samples).
    pub fn new(budget_bytes: usize) -> Self {
        let capacity = (budget_bytes / SAMPLE_BYTES).max(16);
        BoundedSeries {
            series: Series::default(),
            seqs: Vec::new(),
            pushes: 0,
            stride: 1,
            capacity,
            next_thin: capacity,
            dropped: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn series(&self) -> &Series {
        &self.series
    }
    pub fn len(&self) -> usize {
        self.series.len()
    }
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records a sample; thins the older part first if the budget is full.
    pub fn push(&mut self, s: Sample) {
        self.push_pinned(s, || u64::MAX);
    }

    /// Records a sample. When the budget is full, thins the older part but
    /// keeps every sample newer than `pin()` (the oldest cursor of the
    /// connected watchers) unless the series has grown to `PIN_LIMIT` times
    /// its budget. `pin` is called only when thinning.
    pub fn push_pinned(&mut self, s: Sample, pin: impl FnOnce() -> u64) {
        if self.series.len() >= self.next_thin {
            self.thin(pin());
            // Thin again only after a quarter of the budget more: O(1) per push.
            self.next_thin = self.capacity.max(self.series.len() + self.capacity / 4);
        }
        self.series.push(s);
        self.seqs.push(self.pushes);
        self.pushes += 1;
    }

    /// Coarsens the older part (everything but the newest quarter and, within
    /// limits, anything newer than `pin`) to the current stride, doubling it
    /// until the older part fits in half the budget; then compacts all
    /// columns in one pass.
    fn thin(&mut self, pin: u64) {
        let recent = self.capacity / 4;
        let mut old_end = self.series.len().saturating_sub(recent);
        if self.series.len() < PIN_LIMIT * self.capacity {
            old_end = old_end.min(self.series.versions.partition_point(|&v| v <= pin));
        }
        if old_end == 0 {
            // Everything is pinned by a watcher still to receive it: nothing
            // to do, and nothing to scan.
            return;
        }
        let old = &self.seqs[..old_end];
        while self.stride < u64::MAX / 2
            && old
                .iter()
                .filter(|&&n| n.is_multiple_of(self.stride))
                .count()
                > self.capacity / 2
        {
            self.stride *= 2;
        }
        let stride = self.stride;
        // Compact from the first sample to drop; none, no work.
        let Some(first) = old.iter().position(|n| !n.is_multiple_of(stride)) else {
            return;
        };
        let before = self.series.len();
        let mut w = first;
        for r in first..before {
            if r >= old_end || self.seqs[r].is_multiple_of(stride) {
                self.seqs[w] = self.seqs[r];
                self.series.versions[w] = self.series.versions[r];
                self.series.times[w] = self.series.times[r];
                self.series.values[w] = self.series.values[r];
                w += 1;
            }
        }
        self.seqs.truncate(w);
        self.series.versions.truncate(w);
        self.series.times.truncate(w);
        self.series.values.truncate(w);
        self.dropped += (before - w) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: u64) -> Sample {
        Sample {
            version: i,
            time: i as f64 * 0.5,
            value: (i as f64).sqrt(),
        }
    }

    #[test]
    fn stays_within_budget_and_keeps_first_and_last_exact() {
        let mut h = BoundedSeries::new(SAMPLE_BYTES * 1000);
        for i in 1..=1_000_000 {
            h.push(sample(i));
        }
        assert!(h.len() <= 1000, "len {}", h.len());
        assert!(h.len() >= 500, "thinning kept too little: {}", h.len());
        assert_eq!(h.series().get(0), Some(sample(1)));
        assert_eq!(h.series().last(), Some(sample(1_000_000)));
        // Still ordered, and the whole run is covered evenly enough: no gap is
        // larger than a small fraction of the run.
        let v = &h.series().versions;
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        let max_gap = v.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(max_gap < 20_000, "largest gap {max_gap}");
        assert_eq!(h.dropped() as usize + h.len(), 1_000_000);
    }

    #[test]
    fn samples_a_watcher_still_needs_are_kept_within_the_pin_limit() {
        let mut h = BoundedSeries::new(SAMPLE_BYTES * 100);
        for i in 1..=600 {
            h.push_pinned(sample(i), || 200);
        }
        let v = &h.series().versions;
        // Everything after the pin is whole.
        let after: Vec<u64> = v.iter().copied().filter(|&x| x > 200).collect();
        assert_eq!(after, (201..=600).collect::<Vec<_>>());
        // And the limit still bounds a watcher that never moves.
        for i in 601..=10_000 {
            h.push_pinned(sample(i), || 200);
        }
        assert!(h.len() <= PIN_LIMIT * 100 + 100 / 4 + 1, "{}", h.len());
        assert_eq!(h.series().last(), Some(sample(10_000)));
    }

    #[test]
    fn range_selects_by_version() {
        let mut h = BoundedSeries::new(SAMPLE_BYTES * 100);
        for i in 1..=10 {
            h.push(sample(i));
        }
        let r = h.series().range(3, 6);
        assert_eq!(r.versions, vec![4, 5, 6]);
        assert!(h.series().range(10, 20).is_empty());
        assert!(h.series().range(7, 2).is_empty());
    }
}
