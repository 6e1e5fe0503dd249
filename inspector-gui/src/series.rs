//! A plotted series and its min/max summary. Samples append in version order;
//! each append updates a pyramid of (min, max, sum) buckets of 2, 4, 8, …
//! samples, so a frame draws any range of a million-sample series from about
//! two points per pixel instead of every sample.

/// Which x a plot uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum XAxis {
    /// The run's version (one per `notify_update`): "step".
    #[default]
    Version,
    /// Seconds since the run started.
    Time,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    min: f64,
    max: f64,
    sum: f64,
    n: u32,
}

impl Bucket {
    fn of(y: f64) -> Self {
        if y.is_finite() {
            Bucket {
                min: y,
                max: y,
                sum: y,
                n: 1,
            }
        } else {
            Bucket {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                sum: 0.0,
                n: 0,
            }
        }
    }
    fn add(&mut self, y: f64) {
        if y.is_finite() {
            self.min = self.min.min(y);
            self.max = self.max.max(y);
            self.sum += y;
            self.n += 1;
        }
    }
}

/// Values with their pyramid of (min, max, sum) buckets, built when a plot
/// first needs it and brought up to date as it draws: a run of 100,000
/// keys has as many series, most never drawn, and the buckets took more
/// memory than their samples.
#[derive(Debug, Clone, Default)]
struct Pyramid {
    values: Vec<f64>,
    levels: std::cell::RefCell<Levels>,
}

#[derive(Debug, Clone, Default)]
struct Levels {
    /// Level k holds buckets of 2^(k+1) values.
    levels: Vec<Vec<Bucket>>,
    /// How many of the values the levels take in.
    upto: usize,
}

impl Pyramid {
    fn push(&mut self, value: f64) {
        self.values.push(value);
    }

    /// Takes the values pushed since into the levels, and adds the levels
    /// the values are now enough for (O(n) in total).
    fn catch_up(&self) {
        let mut lv = self.levels.borrow_mut();
        let Levels { levels, upto } = &mut *lv;
        for (i, &value) in self.values.iter().enumerate().skip(*upto) {
            for (k, level) in levels.iter_mut().enumerate() {
                let b = i >> (k + 1);
                if b == level.len() {
                    level.push(Bucket::of(value));
                } else if let Some(last) = level.last_mut() {
                    last.add(value);
                }
            }
        }
        *upto = self.values.len();
        // A level appears once it can hold a whole bucket.
        while (1usize << (levels.len() + 1)) <= self.values.len() {
            let size = 1usize << (levels.len() + 1);
            levels.push(level_of(&self.values, size));
        }
    }

    /// Forgets the levels (the values were thinned): built again when drawn.
    fn rebuild(&mut self) {
        *self.levels.get_mut() = Levels::default();
    }

    /// Points for x in `[x0, x1]` at about `pixels` wide (see
    /// [`SeriesData::points`]); `xs` are the values' x positions.
    fn points(&self, xs: &[f64], x0: f64, x1: f64, pixels: usize, means: bool) -> Vec<[f64; 2]> {
        let lo = xs.partition_point(|&x| x < x0).saturating_sub(1);
        let hi = (xs.partition_point(|&x| x <= x1) + 1).min(xs.len());
        if lo >= hi {
            return Vec::new();
        }
        let n = hi - lo;
        let pixels = pixels.max(1);
        if n <= 2 * pixels {
            return (lo..hi).map(|i| [xs[i], self.values[i]]).collect();
        }
        self.catch_up();
        let lv = self.levels.borrow();
        // The finest level with at most one bucket per pixel.
        let want = n.div_ceil(pixels);
        let mut k = 0;
        while k + 1 < lv.levels.len() && (1usize << (k + 1)) < want {
            k += 1;
        }
        let size = 1usize << (k + 1);
        let Some(level) = lv.levels.get(k) else {
            return (lo..hi).map(|i| [xs[i], self.values[i]]).collect();
        };
        let mut out = Vec::with_capacity(2 * (n / size + 2));
        let (b0, b1) = (lo / size, (hi - 1) / size);
        for b in b0..=b1.min(level.len().saturating_sub(1)) {
            let bucket = &level[b];
            if bucket.n == 0 {
                continue;
            }
            let x = xs[(b * size).min(xs.len() - 1)];
            if means {
                out.push([x, bucket.sum / bucket.n as f64]);
            } else {
                out.push([x, bucket.min]);
                out.push([x, bucket.max]);
            }
        }
        out
    }
}

/// The buckets of `size` values each over `values`.
fn level_of(values: &[f64], size: usize) -> Vec<Bucket> {
    let mut level = Vec::with_capacity(values.len() / size + 1);
    for chunk in values.chunks(size) {
        let mut b = Bucket::of(chunk[0]);
        for &y in &chunk[1..] {
            b.add(y);
        }
        level.push(b);
    }
    level
}

/// The samples of one scalar key, with its summary pyramid, and (once a
/// plot asks for it) its exponential moving average with a pyramid of its
/// own: smoothing runs over the samples, before any decimation, so the
/// smoothed curve is the same at every zoom.
#[derive(Debug, Clone, Default)]
pub struct SeriesData {
    versions: Vec<f64>,
    times: Vec<f64>,
    raw: Pyramid,
    /// The EMA factor and the smoothed values, kept up to date as samples
    /// come (a plot's frame only borrows the model).
    smoothed: std::cell::RefCell<Option<(f64, Pyramid)>>,
    /// The samples no curve can draw (NaN, ±inf) as (version, time, value),
    /// kept apart so that the plot marks each and thinning never drops one.
    nonfinite: Vec<(f64, f64, f64)>,
}

/// At most this many NaN and infinite samples per series are kept.
pub const MAX_NONFINITE: usize = 10_000;

/// At most this many samples per series are kept; beyond it the older half
/// is thinned, like the run's own history.
pub const MAX_SAMPLES: usize = 4_000_000;

impl SeriesData {
    pub fn len(&self) -> usize {
        self.raw.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.raw.values.is_empty()
    }
    pub fn last_version(&self) -> Option<f64> {
        self.versions.last().copied()
    }
    pub fn last_value(&self) -> Option<f64> {
        self.raw.values.last().copied()
    }

    /// Room for `n` more samples (exactly, for a series' first samples:
    /// a first state's 20 a key took room for 32 as they were pushed).
    pub fn reserve(&mut self, n: usize) {
        let n = n.min(MAX_SAMPLES.saturating_sub(self.len()));
        self.versions.reserve(n);
        self.times.reserve(n);
        self.raw.values.reserve(n);
    }

    /// Appends one sample; samples not newer than the last are ignored.
    pub fn push(&mut self, version: f64, time: f64, value: f64) {
        if self.versions.last().is_some_and(|&v| v >= version) {
            return;
        }
        if self.raw.values.len() >= MAX_SAMPLES {
            self.thin();
        }
        self.versions.push(version);
        self.times.push(time);
        self.raw.push(value);
        if !value.is_finite() {
            if self.nonfinite.len() >= MAX_NONFINITE {
                let half = self.nonfinite.len() / 2;
                thin_older_half(&mut self.nonfinite, half);
            }
            self.nonfinite.push((version, time, value));
        }
    }

    /// The NaN and infinite samples with x in `[x0, x1]`, as (x, value).
    pub fn nonfinite(
        &self,
        axis: XAxis,
        x0: f64,
        x1: f64,
    ) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.nonfinite
            .iter()
            .map(move |&(v, t, y)| (if axis == XAxis::Version { v } else { t }, y))
            .filter(move |(x, _)| (x0..=x1).contains(x))
    }

    fn thin(&mut self) {
        let half = self.raw.values.len() / 2;
        for v in [&mut self.versions, &mut self.times, &mut self.raw.values] {
            thin_older_half(v, half);
        }
        self.raw.rebuild();
        // Smoothed again from the samples that are left.
        *self.smoothed.get_mut() = None;
    }

    fn xs(&self, axis: XAxis) -> &[f64] {
        match axis {
            XAxis::Version => &self.versions,
            XAxis::Time => &self.times,
        }
    }

    /// The x range of the data.
    pub fn x_range(&self, axis: XAxis) -> Option<(f64, f64)> {
        let xs = self.xs(axis);
        Some((*xs.first()?, *xs.last()?))
    }

    /// Points to draw for x in `[x0, x1]` at about `pixels` wide: every
    /// sample when there are few, else the min and max of each bucket of
    /// about one pixel. With `ema` in (0, 1], the samples' exponential
    /// moving average instead (bucket means when decimated).
    pub fn points(&self, axis: XAxis, x0: f64, x1: f64, pixels: usize, ema: f64) -> Vec<[f64; 2]> {
        let xs = self.xs(axis);
        if ema <= 0.0 {
            return self.raw.points(xs, x0, x1, pixels, false);
        }
        let mut cache = self.smoothed.borrow_mut();
        let fresh = match cache.as_ref() {
            Some((alpha, s)) => *alpha != ema || s.values.len() > self.raw.values.len(),
            None => true,
        };
        if fresh {
            *cache = Some((ema, Pyramid::default()));
        }
        let Some((_, smooth)) = cache.as_mut() else {
            return Vec::new();
        };
        let mut acc = smooth.values.last().copied();
        for &y in &self.raw.values[smooth.values.len()..] {
            let a = match acc {
                Some(a) if y.is_finite() => a + ema * (y - a),
                Some(a) => a,
                None => y,
            };
            acc = Some(a).filter(|a| a.is_finite());
            smooth.push(a);
        }
        smooth.points(xs, x0, x1, pixels, true)
    }

    /// Every sample as (version, time, value), for CSV export.
    pub fn samples(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        (0..self.raw.values.len()).map(|i| (self.versions[i], self.times[i], self.raw.values[i]))
    }
}

/// Keeps every other one of the first `half` items and all the rest: how a
/// curve past its budget stays whole at a coarser resolution.
pub(crate) fn thin_older_half<T>(v: &mut Vec<T>, half: usize) {
    let mut i = 0;
    v.retain(|_| {
        let keep = i >= half || i % 2 == 0;
        i += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize) -> SeriesData {
        let mut s = SeriesData::default();
        for i in 0..n {
            s.push(i as f64, i as f64 * 0.1, ((i * 7919) % 1000) as f64);
        }
        s
    }

    #[test]
    fn few_samples_are_drawn_as_they_are() {
        let s = series(100);
        let p = s.points(XAxis::Version, 0.0, 99.0, 800, 0.0);
        assert_eq!(p.len(), 100);
        assert_eq!(p[10], [10.0, ((10 * 7919) % 1000) as f64]);
    }

    #[test]
    fn many_samples_become_a_min_max_envelope_of_about_two_points_per_pixel() {
        let s = series(1_000_000);
        let p = s.points(XAxis::Version, 0.0, 1e6, 1000, 0.0);
        assert!(p.len() <= 2 * 1000 + 4, "{}", p.len());
        assert!(p.len() >= 1000 / 2, "{}", p.len());
        let max = p.iter().map(|q| q[1]).fold(f64::MIN, f64::max);
        let min = p.iter().map(|q| q[1]).fold(f64::MAX, f64::min);
        assert_eq!((min, max), (0.0, 999.0), "extremes survive decimation");
        // A zoomed-in window is exact again.
        let z = s.points(XAxis::Version, 5000.0, 5100.0, 1000, 0.0);
        assert!(z.iter().any(|q| q[0] == 5050.0));
    }

    #[test]
    fn the_pyramid_matches_a_rebuild() {
        // Drawn as the samples came (levels brought up to date a few times
        // on the way), against levels built once from all of them.
        let mut s = SeriesData::default();
        for i in 0..12_345 {
            s.push(i as f64, i as f64 * 0.1, ((i * 7919) % 1000) as f64);
            if i % 1000 == 999 {
                s.raw.catch_up();
            }
        }
        s.raw.catch_up();
        let mut rebuilt = s.clone();
        rebuilt.raw.rebuild();
        rebuilt.raw.catch_up();
        let (a, b) = (s.raw.levels.borrow(), rebuilt.raw.levels.borrow());
        assert_eq!(a.levels.len(), b.levels.len());
        for (a, b) in a.levels.iter().zip(&b.levels) {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert_eq!((x.min, x.max, x.n), (y.min, y.max, y.n));
            }
        }
    }

    /// Issue 15: smoothing after decimation made the curve depend on the
    /// zoom (lorenz x swung -18..+20 zoomed in, +-9 over the whole run).
    #[test]
    fn the_smoothed_curve_is_the_same_at_every_zoom() {
        let mut s = SeriesData::default();
        for i in 0..200_000 {
            let y = if (i / 1000) % 2 == 0 { 20.0 } else { -20.0 };
            s.push(i as f64, i as f64, y);
        }
        let whole = s.points(XAxis::Version, 0.0, 2e5, 500, 0.05);
        let near = s.points(XAxis::Version, 50_000.0, 52_000.0, 2000, 0.05);
        let span = |p: &[[f64; 2]]| {
            let max = p.iter().map(|q| q[1]).fold(f64::MIN, f64::max);
            let min = p.iter().map(|q| q[1]).fold(f64::MAX, f64::min);
            max - min
        };
        // Zoomed in or out, the smoothed square wave swings nearly +-20
        // (smoothing the decimated points flattened it to a few units over
        // the whole run), and the zoomed-in points are the EMA's own.
        assert!(span(&near) > 35.0, "{}", span(&near));
        assert!(span(&whole) > 30.0, "{}", span(&whole));
        let at = |p: &[[f64; 2]], x: f64| p.iter().find(|q| q[0] == x).map(|q| q[1]);
        let mut acc = 20.0;
        for i in 1..=51_000 {
            let y = if (i / 1000) % 2 == 0 { 20.0 } else { -20.0 };
            acc += 0.05 * (y - acc);
        }
        assert!((at(&near, 51_000.0).unwrap() - acc).abs() < 1e-9);
        // A new factor smooths again from the samples.
        let other = s.points(XAxis::Version, 50_000.0, 52_000.0, 2000, 0.5);
        assert_ne!(at(&other, 51_000.0), at(&near, 51_000.0));
    }
}
