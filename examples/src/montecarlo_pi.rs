//! A Monte Carlo estimate of pi: points thrown uniformly into the unit
//! square, counting those inside the quarter circle. It publishes the
//! running estimate, its standard error and the true error; clients may
//! steer the batch size.

use crate::pace::Pace;
use idict::{IDict, UpdateError, Value};
use rand::{Rng, SeedableRng, rngs::SmallRng};

#[derive(Debug, Clone)]
pub struct PiConfig {
    /// Points per iteration, initially.
    pub batch: i64,
    pub seed: u64,
    pub max_steps: u64,
    pub rate: f64,
}

impl Default for PiConfig {
    fn default() -> Self {
        PiConfig {
            batch: 10_000,
            seed: 1,
            max_steps: u64::MAX,
            rate: 20.0,
        }
    }
}

/// The estimate of pi and its standard error from `hits` of `n` points.
pub fn estimate(hits: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::INFINITY);
    }
    let p = hits as f64 / n as f64;
    (4.0 * p, 4.0 * (p * (1.0 - p) / n as f64).sqrt())
}

pub fn run(idict: &IDict, cfg: &PiConfig) -> Result<u64, UpdateError> {
    idict.writable("batch", cfg.batch).range(1.0, 10_000_000.0);
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let mut pace = Pace::new(cfg.rate);
    let (mut hits, mut n, mut step) = (0u64, 0u64, 0u64);
    // wait(): the pause gate and steering; false once terminated.
    while step < cfg.max_steps && idict.wait() {
        pace.tick();
        let batch = idict
            .lock()
            .get("batch")
            .and_then(Value::as_i64)
            .unwrap_or(cfg.batch);
        for _ in 0..batch.max(1) {
            let (x, y): (f64, f64) = (rng.random(), rng.random());
            hits += u64::from(x * x + y * y <= 1.0);
        }
        n += batch.max(1) as u64;
        step += 1;
        let (pi, stderr) = estimate(hits, n);
        {
            let mut d = idict.lock();
            d.insert("step", step);
            d.insert("samples", n);
            d.insert("pi", pi);
            d.insert("stderr", stderr);
            d.insert("error", pi - std::f64::consts::PI);
        }
        idict.notify_update()?;
    }
    Ok(step)
}
