//! A 2-D heat equation, u_t = alpha ∇²u + s·g(x, y), on the unit square with
//! u = 0 on the boundary, by explicit finite differences. It publishes the
//! step, time, residual (max |∂u/∂t|), total energy and the field `u`, and
//! lets clients steer the time step `dt` (bounded by the stability limit)
//! and the source strength `source`. It runs until the field is steady.

use crate::pace::Pace;
use idict::{IDict, Level, UpdateError, Value};

#[derive(Debug, Clone)]
pub struct HeatConfig {
    /// Grid points per side.
    pub n: usize,
    /// Diffusivity.
    pub alpha: f64,
    /// Initial source strength.
    pub source: f64,
    /// Stop when the residual falls below this.
    pub tolerance: f64,
    pub max_steps: u64,
    /// Iterations per second at most (0: unlimited).
    pub rate: f64,
    /// Let `dt` be steered past the stability limit (up to 100 times it):
    /// the field then blows up to inf and NaN, which is how triggers are
    /// tried.
    pub unstable_dt: bool,
}

impl Default for HeatConfig {
    fn default() -> Self {
        HeatConfig {
            n: 128,
            alpha: 1.0,
            source: 1.0,
            tolerance: 1e-4,
            max_steps: u64::MAX,
            rate: 60.0,
            unstable_dt: false,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatSummary {
    pub steps: u64,
    pub converged: bool,
    pub residual: f64,
}

/// The largest stable explicit time step for grid spacing `h`.
pub fn stability_limit(h: f64, alpha: f64) -> f64 {
    h * h / (4.0 * alpha)
}

/// Runs the simulation in `idict`'s loop until it converges, reaches
/// `max_steps`, or is terminated. The caller publishes the final update.
pub fn run(idict: &IDict, cfg: &HeatConfig) -> Result<HeatSummary, UpdateError> {
    let n = cfg.n.max(3);
    let h = 1.0 / (n - 1) as f64;
    let dt_max = stability_limit(h, cfg.alpha);
    let (dt_bound, bound_is) = match cfg.unstable_dt {
        false => (dt_max, "the stability limit"),
        true => (
            100.0 * dt_max,
            "100 times the stability limit: past it, it blows up",
        ),
    };
    idict
        .writable("dt", 0.9 * dt_max)
        .range(0.0, dt_bound)
        .validate(|v| match v.as_f64() {
            Some(x) if x > 0.0 => Ok(()),
            _ => Err("dt must be positive".into()),
        })
        .describe(format!("0 < dt <= {dt_bound:.4e} ({bound_is})"));
    idict.writable("source", cfg.source).range(0.0, 1e6);
    // A Gaussian heat source off the centre, so the field is not symmetric.
    let g: Vec<f64> = (0..n * n)
        .map(|k| {
            let (x, y) = ((k % n) as f64 * h, (k / n) as f64 * h);
            (-((x - 0.35).powi(2) + (y - 0.6).powi(2)) / (2.0 * 0.08f64.powi(2))).exp()
        })
        .collect();
    {
        let mut d = idict.lock();
        d.insert("n", n);
        d.insert("alpha", cfg.alpha);
    }
    idict.message(
        Level::Info,
        format!("heat: {n}x{n} grid, stability limit dt <= {dt_max:.4e}"),
    );
    let mut u = vec![0.0f64; n * n];
    let mut next = u.clone();
    let mut pace = Pace::new(cfg.rate);
    let (mut t, mut step, mut residual) = (0.0, 0u64, f64::INFINITY);
    let mut converged = false;
    // wait(): the pause gate and steering; false once terminated.
    while step < cfg.max_steps && idict.wait() {
        pace.tick();
        let (dt, source) = {
            let d = idict.lock();
            let dt = d.get("dt").and_then(Value::as_f64).unwrap_or(0.9 * dt_max);
            let source = d
                .get("source")
                .and_then(Value::as_f64)
                .unwrap_or(cfg.source);
            (dt, source)
        };
        residual = 0.0;
        for j in 1..n - 1 {
            for i in 1..n - 1 {
                let k = j * n + i;
                let lap = (u[k - 1] + u[k + 1] + u[k - n] + u[k + n] - 4.0 * u[k]) / (h * h);
                let rate = cfg.alpha * lap + source * g[k];
                next[k] = u[k] + dt * rate;
                // Not f64::max alone, which would hide a NaN.
                residual = if residual.is_nan() || rate.is_nan() {
                    f64::NAN
                } else {
                    residual.max(rate.abs())
                };
            }
        }
        std::mem::swap(&mut u, &mut next);
        t += dt;
        step += 1;
        let energy: f64 = u.iter().sum::<f64>() * h * h;
        let peak = u.iter().copied().fold(0.0, f64::max);
        {
            let mut d = idict.lock();
            d.insert("step", step);
            d.insert("t", t);
            d.insert("residual", residual);
            d.insert("energy", energy);
            d.insert("max_u", peak);
            d.insert("u", Value::array(u.clone(), vec![n, n]).unwrap_or_default());
        }
        idict.notify_update()?;
        if residual < cfg.tolerance {
            converged = true;
            idict.message(
                Level::Info,
                format!("heat: steady after {step} steps (residual {residual:.3e})"),
            );
            break;
        }
    }
    Ok(HeatSummary {
        steps: step,
        converged,
        residual,
    })
}
