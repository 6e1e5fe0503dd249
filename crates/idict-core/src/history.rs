//! The recorded samples of one numeric scalar key, kept within a memory
//! budget. When the budget is full the older part is thinned to a uniform
//! stride, so the whole run stays visible at a coarser resolution instead of
//! the beginning being forgotten. The first and the newest samples are
//! always kept exactly, and so are the extremes: each thinned stretch keeps
//! its lowest and highest sample and its first NaN, at their versions, so
//! no spike or NaN is ever thinned out of sight.

use crate::tuning::SAMPLES_PER_LOCK;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The history of one key, locked on its own so that copying it out for a
/// client never holds up the computation's next update for long.
pub type SharedSeries = Arc<Mutex<BoundedSeries>>;

/// Keys with their history handles.
pub type KeyedSeries = Vec<(Arc<str>, SharedSeries)>;

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
    pub fn push(&mut self, s: Sample) {
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

/// Samples copied out of a history with their push numbers (the n-th
/// sample ever pushed to the key has number n): a gap in the numbers is
/// samples the history thinned, which is how a watcher is told exactly
/// what it did not get.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Piece {
    pub series: Series,
    pub seqs: Vec<u64>,
}

impl Piece {
    pub fn len(&self) -> usize {
        self.seqs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
    fn extend(&mut self, other: Piece) {
        self.series.extend(&other.series);
        self.seqs.extend(other.seqs);
    }
}

/// The memory that histories may hold beyond their budgets, all keys
/// together, to keep samples that reading watchers have not received.
#[derive(Debug)]
pub struct PinPool {
    bound: usize,
    /// Bytes held beyond budgets, as of each series' last thinning.
    over: AtomicUsize,
}

impl PinPool {
    pub fn new(bound_bytes: usize) -> Arc<Self> {
        Arc::new(PinPool {
            bound: bound_bytes,
            over: AtomicUsize::new(0),
        })
    }
}

/// A sample and its push number (which decides whether a stride keeps it).
#[derive(Debug, Clone, Copy)]
struct Held {
    seq: u64,
    sample: Sample,
}

/// A series bounded by a sample budget. The newest quarter of the budget
/// keeps every sample (so a client that lags a little loses nothing); older
/// samples are kept at a uniform stride (every `stride`-th push) that doubles
/// whenever the budget fills, so the whole run stays visible evenly.
///
/// Two parts make every push O(1) amortized, however far a watcher pins the
/// history: `old`, already at the stride, and `recent`, a ring of every
/// sample since. Thinning moves samples from the front of `recent` into
/// `old` (keeping only stride multiples) and never shifts what stays.
#[derive(Debug)]
pub struct BoundedSeries {
    old: Vec<Held>,
    recent: VecDeque<Held>,
    pushes: u64,
    stride: u64,
    capacity: usize,
    /// Thin when the series reaches this length.
    next_thin: usize,
    /// How many samples thinning has dropped in all.
    dropped: u64,
    /// Shared by a run's histories: how far past their budgets they may
    /// grow, together, to keep what watchers still need.
    pool: Arc<PinPool>,
    /// This series' bytes over its budget, as last told to the pool.
    over: usize,
    /// The most samples one call has copied out (one lock's worth when
    /// shared): tests check the bound.
    #[cfg(any(test, feature = "test-probes"))]
    pub most_copied: std::cell::Cell<usize>,
}

/// Copies the held samples with `after < version <= upto` out of a shared
/// series, `SAMPLES_PER_LOCK` per lock: whoever copies (a watcher's first
/// state, GetHistory, a checkpoint), the computation waits at most a few
/// microseconds for the lock, however long the history.
pub fn copy_range(series: &Mutex<BoundedSeries>, after: u64, upto: u64) -> Piece {
    copy_limited(series, after, upto, usize::MAX)
}

/// Like [`copy_range`], at most `limit` samples (the oldest first).
pub fn copy_limited(series: &Mutex<BoundedSeries>, after: u64, upto: u64, limit: usize) -> Piece {
    // Most copies (a delta's) are one short piece: returned as copied.
    let want = SAMPLES_PER_LOCK.min(limit);
    let mut all = series.lock().piece(after, upto, want);
    let mut short = all.len() < want;
    while !short && all.len() < limit {
        let from = all.series.versions.last().copied().unwrap_or(after);
        let want = SAMPLES_PER_LOCK.min(limit - all.len());
        let piece = series.lock().piece(from, upto, want);
        short = piece.len() < want;
        all.extend(piece);
    }
    all
}

/// Reads several keys' histories out in pieces, a key at a time, each
/// piece copied `SAMPLES_PER_LOCK` per lock: how a watcher's first state
/// and GetHistory send whole histories without building them whole.
pub struct HistoryPieces {
    keys: std::vec::IntoIter<(Arc<str>, SharedSeries)>,
    /// The key being read and the version read up to.
    current: Option<(Arc<str>, SharedSeries, u64)>,
    after: u64,
    upto: u64,
}

impl HistoryPieces {
    /// The samples with `after < version <= upto` of each of `keys`.
    pub fn new(keys: Vec<(Arc<str>, SharedSeries)>, after: u64, upto: u64) -> Self {
        HistoryPieces {
            keys: keys.into_iter(),
            current: None,
            after,
            upto,
        }
    }

    /// The next piece of at most `limit` samples of one key. Every key
    /// gives at least one piece (empty if it has no samples in range).
    pub fn next_piece(&mut self, limit: usize) -> Option<(Arc<str>, Piece)> {
        loop {
            let (key, series, from, fresh) = match self.current.take() {
                Some((k, s, from)) => (k, s, from, false),
                None => {
                    let (k, s) = self.keys.next()?;
                    (k, s, self.after, true)
                }
            };
            let piece = copy_limited(&series, from, self.upto, limit);
            if piece.len() == limit
                && let Some(&last) = piece.series.versions.last()
            {
                self.current = Some((key.clone(), series, last));
            } else if piece.is_empty() && !fresh {
                // The previous piece ended exactly at the key's end.
                continue;
            }
            return Some((key, piece));
        }
    }

    /// True if the last piece's key may have more.
    pub fn within_key(&self) -> bool {
        self.current.is_some()
    }

    /// True if nothing is left to read.
    pub fn is_done(&self) -> bool {
        self.current.is_none() && self.keys.len() == 0
    }
}

/// How many of `held` (sorted by version) have `version <= v`, searched
/// from the newest end: a watcher asks for the last few samples, and a
/// binary search over a long history touched a cold cache line per step
/// on every delta (a tenth of a notify's latency).
fn count_upto_from_back(held: &VecDeque<Held>, v: u64) -> usize {
    // Gallop back from the end to a sample at or before `v`...
    let (mut lo, mut hi) = (0, held.len());
    let mut step = 1;
    while hi > 0 {
        let probe = hi.saturating_sub(step);
        if held[probe].sample.version <= v {
            lo = probe + 1;
            break;
        }
        hi = probe;
        step *= 2;
    }
    // ...then search that last stretch: the answer is in `lo..=hi`.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if held[mid].sample.version <= v {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

impl BoundedSeries {
    /// A series that holds at most `budget_bytes` of samples (at least 16 samples).
    pub fn new(budget_bytes: usize) -> Self {
        Self::sharing(budget_bytes, PinPool::new(0))
    }

    /// A series of a run's, which may grow past its budget to keep what
    /// watchers still need while the run's histories together stay within
    /// `pool`'s bound.
    pub fn sharing(budget_bytes: usize, pool: Arc<PinPool>) -> Self {
        let capacity = (budget_bytes / SAMPLE_BYTES).max(16);
        BoundedSeries {
            old: Vec::new(),
            recent: VecDeque::new(),
            pushes: 0,
            stride: 1,
            capacity,
            next_thin: capacity,
            dropped: 0,
            pool,
            over: 0,
            #[cfg(any(test, feature = "test-probes"))]
            most_copied: std::cell::Cell::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn len(&self) -> usize {
        self.old.len() + self.recent.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn held(&self) -> impl Iterator<Item = &Held> + Clone {
        self.old.iter().chain(self.recent.iter())
    }

    /// Every held sample, oldest first (a copy).
    pub fn to_series(&self) -> Series {
        self.collect(self.held()).series
    }

    /// The held samples with `after < version <= upto` (a copy).
    pub fn range(&self, after: u64, upto: u64) -> Series {
        self.range_limited(after, upto, usize::MAX)
    }

    /// The first `limit` held samples with `after < version <= upto`.
    pub fn range_limited(&self, after: u64, upto: u64, limit: usize) -> Series {
        self.piece(after, upto, limit).series
    }

    /// The same, with the samples' push numbers.
    pub fn piece(&self, after: u64, upto: u64, limit: usize) -> Piece {
        let (old, recent) = self.span(after, upto);
        let p = self.collect(
            self.old[old]
                .iter()
                .chain(self.recent.range(recent))
                .take(limit),
        );
        #[cfg(any(test, feature = "test-probes"))]
        self.most_copied.set(self.most_copied.get().max(p.len()));
        p
    }

    /// The push number of the first *held* sample after `version`: where a
    /// client whose samples start after `version` begins to count. A gap
    /// the history already had just after `version` is not counted (its
    /// start cannot be told apart from samples at or before `version`).
    pub fn next_seq_after(&self, version: u64) -> u64 {
        let (old, recent) = self.span(version, u64::MAX);
        match (self.old.get(old.start), self.recent.get(recent.start)) {
            (Some(h), _) | (None, Some(h)) => h.seq,
            (None, None) => self.pushes,
        }
    }

    /// How many held samples have `after < version <= upto`.
    pub fn count(&self, after: u64, upto: u64) -> usize {
        let (old, recent) = self.span(after, upto);
        old.len() + recent.len()
    }

    /// Where the samples with `after < version <= upto` are held, in `old`
    /// and in `recent` (both sorted by version).
    fn span(&self, after: u64, upto: u64) -> (Range<usize>, Range<usize>) {
        let upto = upto.max(after);
        let old = |v: u64| self.old.partition_point(|h| h.sample.version <= v);
        let recent = |v: u64| count_upto_from_back(&self.recent, v);
        (old(after)..old(upto), recent(after)..recent(upto))
    }

    fn collect<'a>(&self, held: impl Iterator<Item = &'a Held> + Clone) -> Piece {
        let n = held.clone().count();
        let mut p = Piece {
            series: Series {
                versions: Vec::with_capacity(n),
                times: Vec::with_capacity(n),
                values: Vec::with_capacity(n),
            },
            seqs: Vec::with_capacity(n),
        };
        for h in held {
            p.series.push(h.sample);
            p.seqs.push(h.seq);
        }
        p
    }

    /// Records a sample; thins the older part first if the budget is full.
    pub fn push(&mut self, s: Sample) {
        self.push_pinned(s, || u64::MAX);
    }

    /// Records a sample. When the budget is full, thins the older part but
    /// keeps every sample newer than `pin()` (the oldest cursor of the
    /// reading watchers) while the run's histories together stay within
    /// their pool's bound. `pin` is called only when thinning.
    pub fn push_pinned(&mut self, s: Sample, pin: impl FnOnce() -> u64) {
        if self.len() >= self.next_thin {
            self.thin(pin());
        }
        self.recent.push_back(Held {
            seq: self.pushes,
            sample: s,
        });
        self.pushes += 1;
    }

    /// Drops, if the series is over its budget, what watchers no longer pin:
    /// called when a watcher goes, so the memory it pinned is given back
    /// even if the run pushes nothing more.
    pub(crate) fn release(&mut self, pin: u64) {
        if self.len() > self.capacity {
            self.thin(pin);
        }
    }

    /// Has the next push thin (and give back memory), if the series is over
    /// its budget: for a run still pushing, so that the thinning is done by
    /// its own thread rather than under a lock it would wait for.
    pub(crate) fn thin_soon(&mut self) {
        if self.len() > self.capacity {
            self.next_thin = 0;
        }
    }

    /// Moves what is neither among the newest quarter of the budget nor
    /// (within limits) newer than `pin` into the old part at the current
    /// stride, doubling the stride until the old part fits in half the
    /// budget. Then gives back memory a pinned burst left unused.
    fn thin(&mut self, pin: u64) {
        let keep = self.capacity / 4;
        let mut movable = self.recent.len().saturating_sub(keep);
        // Keeping what a watcher still needs grows this series past its
        // budget: allowed while every history's excess together (this
        // one's as it is now) fits the pool.
        let over_now = self.len().saturating_sub(self.capacity) * SAMPLE_BYTES;
        let others = self
            .pool
            .over
            .load(Ordering::Acquire)
            .saturating_sub(self.over);
        if others + over_now <= self.pool.bound {
            movable = movable.min(self.recent.partition_point(|h| h.sample.version <= pin));
        }
        let before = self.len();
        let stride = self.stride;
        if let Some(first) = self.recent.front().filter(|_| movable > 0) {
            // The old part's last stretch may go on in what moves now:
            // thinned again with it, so a stretch keeps one set of extremes.
            let stretch = first.seq / stride;
            let tail = self.old.partition_point(|h| h.seq / stride < stretch);
            let tail: Vec<Held> = self.old.drain(tail..).collect();
            thin_into(
                &mut self.old,
                tail.into_iter().chain(self.recent.drain(..movable)),
                stride,
            );
        }
        while self.old.len() > self.capacity / 2 && self.stride < u64::MAX / 2 {
            self.stride *= 2;
            let old = std::mem::take(&mut self.old);
            thin_into(&mut self.old, old, self.stride);
        }
        self.dropped += (before - self.len()) as u64;
        self.tell_pool();
        // Thin again only after a quarter of the budget more: O(1) per push.
        self.next_thin = self.capacity.max(self.len() + self.capacity / 4);
        if self.recent.capacity() > 2 * self.capacity.max(self.recent.len()) {
            self.recent.shrink_to(self.recent.len() + self.capacity / 4);
        }
    }

    /// Brings the pool's count of this series' excess up to date.
    fn tell_pool(&mut self) {
        let over = self.len().saturating_sub(self.capacity) * SAMPLE_BYTES;
        if over >= self.over {
            self.pool.over.fetch_add(over - self.over, Ordering::AcqRel);
        } else {
            self.pool.over.fetch_sub(self.over - over, Ordering::AcqRel);
        }
        self.over = over;
    }
}

/// Thins `held` (in push order) into `out`: of each stretch of `stride`
/// pushes, its lowest and highest sample (its envelope, as a plot draws a
/// decimated curve) and its first NaN, each once, in push order; and the
/// very first sample. Two samples a stretch, so each doubling of the stride
/// halves what is held, as keeping every stride-th sample did.
fn thin_into(out: &mut Vec<Held>, held: impl IntoIterator<Item = Held>, stride: u64) {
    if stride <= 1 {
        // Every sample is a stretch of its own: all kept.
        out.extend(held);
        return;
    }
    // The stride is a power of two (it starts at 1 and doubles): a shift
    // and a mask, not a division per sample.
    let shift = stride.trailing_zeros();
    let mut current: Option<Stretch> = None;
    for h in held {
        let id = h.seq >> shift;
        match &mut current {
            Some(s) if s.id == id => s.add(h),
            _ => {
                if let Some(s) = current.take() {
                    s.keep(out);
                }
                current = Some(Stretch::new(id, h));
            }
        }
    }
    if let Some(s) = current {
        s.keep(out);
    }
}

/// One stretch of pushes being thinned: its first sample, its lowest and
/// highest (of those that are numbers) and its first NaN.
struct Stretch {
    id: u64,
    first: Held,
    low: Held,
    high: Held,
    numbers: bool,
    nan: Option<Held>,
}

impl Stretch {
    fn new(id: u64, h: Held) -> Self {
        let nan = h.sample.value.is_nan();
        Stretch {
            id,
            first: h,
            low: h,
            high: h,
            numbers: !nan,
            nan: nan.then_some(h),
        }
    }

    fn add(&mut self, h: Held) {
        let x = h.sample.value;
        if x.is_nan() {
            self.nan.get_or_insert(h);
        } else if !self.numbers {
            (self.low, self.high, self.numbers) = (h, h, true);
        } else if x < self.low.sample.value {
            self.low = h;
        } else if x > self.high.sample.value {
            self.high = h;
        }
    }

    /// What of it thinning keeps, in push order: its extremes, and the
    /// series' first sample if it is this stretch's.
    fn keep(self, out: &mut Vec<Held>) {
        let mut kept = [self.first; 4];
        let mut n = 0;
        let mut put = |h: Held| {
            if !kept[..n].iter().any(|k| k.seq == h.seq) {
                kept[n] = h;
                n += 1;
            }
        };
        if self.first.seq == 0 {
            put(self.first);
        }
        if self.numbers {
            put(self.low);
            put(self.high);
        }
        if let Some(h) = self.nan {
            put(h);
        }
        let kept = &mut kept[..n];
        kept.sort_unstable_by_key(|h| h.seq);
        out.extend_from_slice(kept);
    }
}

impl Drop for BoundedSeries {
    fn drop(&mut self) {
        self.pool.over.fetch_sub(self.over, Ordering::AcqRel);
    }
}

impl Clone for BoundedSeries {
    /// A copy counts in no pool (checkpoints and tests copy histories).
    fn clone(&self) -> Self {
        BoundedSeries {
            old: self.old.clone(),
            recent: self.recent.clone(),
            pushes: self.pushes,
            stride: self.stride,
            capacity: self.capacity,
            next_thin: self.next_thin,
            dropped: self.dropped,
            pool: PinPool::new(0),
            over: 0,
            #[cfg(any(test, feature = "test-probes"))]
            most_copied: self.most_copied.clone(),
        }
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
    fn searching_from_the_newest_end_finds_what_a_binary_search_finds() {
        // Versions with gaps and repeats, in a deque that wraps around.
        let mut held = VecDeque::new();
        for v in 0..40u64 {
            held.push_back(Held {
                seq: v,
                sample: Sample {
                    version: v / 2 * 3,
                    time: 0.0,
                    value: 0.0,
                },
            });
        }
        for _ in 0..7 {
            held.pop_front();
        }
        for v in 60..70u64 {
            held.push_back(Held {
                seq: v,
                sample: Sample {
                    version: v,
                    time: 0.0,
                    value: 0.0,
                },
            });
        }
        for v in 0..80 {
            let want = held.partition_point(|h| h.sample.version <= v);
            assert_eq!(count_upto_from_back(&held, v), want, "at version {v}");
        }
        assert_eq!(count_upto_from_back(&VecDeque::new(), 5), 0);
    }

    #[test]
    fn stays_within_budget_and_keeps_first_and_last_exact() {
        let mut h = BoundedSeries::new(SAMPLE_BYTES * 1000);
        for i in 1..=1_000_000 {
            h.push(sample(i));
        }
        assert!(h.len() <= 1000, "len {}", h.len());
        assert!(h.len() >= 500, "thinning kept too little: {}", h.len());
        let s = h.to_series();
        assert_eq!(s.get(0), Some(sample(1)));
        assert_eq!(s.last(), Some(sample(1_000_000)));
        // Still ordered, and the whole run is covered evenly enough: no gap is
        // larger than a small fraction of the run.
        let v = &s.versions;
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        let max_gap = v.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(max_gap < 20_000, "largest gap {max_gap}");
        assert_eq!(h.dropped() as usize + h.len(), 1_000_000);
    }

    #[test]
    fn samples_a_watcher_still_needs_are_kept_within_the_pool() {
        // Room for 700 samples past the budgets, shared by two keys.
        let pool = PinPool::new(SAMPLE_BYTES * 700);
        let mut a = BoundedSeries::sharing(SAMPLE_BYTES * 100, pool.clone());
        let mut b = BoundedSeries::sharing(SAMPLE_BYTES * 100, pool.clone());
        for i in 1..=400 {
            a.push_pinned(sample(i), || 200);
            b.push_pinned(sample(i), || 200);
        }
        // Everything after the pin is whole, in both.
        for h in [&a, &b] {
            let v = h.to_series().versions;
            let after: Vec<u64> = v.iter().copied().filter(|&x| x > 200).collect();
            assert_eq!(after, (201..=400).collect::<Vec<_>>());
        }
        // A watcher that never moves: the two together stay within the pool
        // (give or take the quarter budget each grows between thinnings).
        for i in 401..=10_000 {
            a.push_pinned(sample(i), || 200);
            b.push_pinned(sample(i), || 200);
        }
        assert!(
            a.len() + b.len() <= 200 + 700 + 2 * (100 / 4 + 1),
            "{} + {}",
            a.len(),
            b.len()
        );
        assert_eq!(a.to_series().last(), Some(sample(10_000)));
        // And what a series held past its budget is given back when it goes.
        drop(a);
        drop(b);
        assert_eq!(pool.over.load(Ordering::Acquire), 0);
    }

    #[test]
    fn push_numbers_show_exactly_what_was_thinned() {
        let mut h = BoundedSeries::new(SAMPLE_BYTES * 100);
        for i in 1..=100_000 {
            h.push(sample(i));
        }
        let p = h.piece(0, u64::MAX, usize::MAX);
        assert_eq!(p.seqs[0], 0);
        let missing: u64 = p.seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
        let last = *p.seqs.last().unwrap();
        assert_eq!(last, 99_999);
        assert_eq!(missing, h.dropped());
        // Where a watcher starting after a version begins to count.
        let v = p.series.versions[p.len() / 2];
        assert_eq!(h.next_seq_after(v), p.seqs[p.len() / 2 + 1]);
        assert_eq!(h.next_seq_after(100_000), 100_000);
    }

    #[test]
    fn thinning_never_drops_a_spike_or_a_nan() {
        let mut h = BoundedSeries::new(SAMPLE_BYTES * 100);
        let value = |i: u64| match i {
            31_337 => 1e9,
            55_555 => -1e9,
            77_777 => f64::NAN,
            88_888 => f64::INFINITY,
            _ => (i as f64 * 0.001).sin(),
        };
        for i in 1..=100_000 {
            h.push(Sample {
                version: i,
                time: i as f64,
                value: value(i),
            });
        }
        assert!(h.len() <= 100, "within budget: {}", h.len());
        let s = h.to_series();
        for v in [31_337, 55_555, 77_777, 88_888] {
            let i = s.versions.iter().position(|&x| x == v);
            let kept = i.map(|i| s.values[i]);
            assert!(
                kept.is_some_and(|x| x.to_bits() == value(v).to_bits()),
                "v{v} kept: {kept:?}"
            );
        }
        assert!(s.versions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.get(0).map(|x| x.version), Some(1));
        assert_eq!(s.last().map(|x| x.version), Some(100_000));
    }

    #[test]
    fn range_selects_by_version() {
        let mut h = BoundedSeries::new(SAMPLE_BYTES * 100);
        for i in 1..=10 {
            h.push(sample(i));
        }
        let r = h.range(3, 6);
        assert_eq!(r.versions, vec![4, 5, 6]);
        assert_eq!(r.times, vec![2.0, 2.5, 3.0]);
        assert!(h.range(10, 20).is_empty());
        assert!(h.range(7, 2).is_empty());
        assert_eq!(h.count(3, 6), 3);
        assert_eq!(h.range_limited(3, 6, 2).versions, vec![4, 5]);
        assert_eq!(h.count(7, 2), 0);
        // Across the thinned part and the recent ring alike.
        for i in 11..=1000 {
            h.push(sample(i));
        }
        let all = h.to_series();
        let mid = all.versions[all.len() / 2];
        let r = h.range(mid - 1, 1000);
        assert_eq!(r.versions, all.versions[all.len() / 2..]);
    }
}
