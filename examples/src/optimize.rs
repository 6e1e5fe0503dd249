//! Gradient descent with momentum on the Rosenbrock function
//! f(x, y) = (1 - x)² + 100 (y - x²)², from (-1.2, 1). It publishes the
//! loss, the gradient norm and the point; clients may steer the learning
//! rate `lr` and the `momentum`. It stops when the gradient vanishes.

use crate::pace::Pace;
use idict::{IDict, Level, UpdateError, Value};

#[derive(Debug, Clone)]
pub struct OptimizeConfig {
    pub lr: f64,
    pub momentum: f64,
    pub tolerance: f64,
    pub max_steps: u64,
    pub rate: f64,
}

impl Default for OptimizeConfig {
    fn default() -> Self {
        OptimizeConfig {
            lr: 1e-3,
            momentum: 0.9,
            tolerance: 1e-8,
            max_steps: u64::MAX,
            rate: 100.0,
        }
    }
}

/// The Rosenbrock function and its gradient.
pub fn rosenbrock(p: [f64; 2]) -> (f64, [f64; 2]) {
    let [x, y] = p;
    let f = (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
    let g = [
        -2.0 * (1.0 - x) - 400.0 * x * (y - x * x),
        200.0 * (y - x * x),
    ];
    (f, g)
}

/// Runs until the gradient norm is below the tolerance, `max_steps`, or
/// terminate; returns the final point.
pub fn run(idict: &IDict, cfg: &OptimizeConfig) -> Result<[f64; 2], UpdateError> {
    idict
        .writable("lr", cfg.lr)
        .range(0.0, 0.01)
        .validate(|v| match v.as_f64() {
            Some(x) if x > 0.0 => Ok(()),
            _ => Err("the learning rate must be positive".into()),
        });
    idict.writable("momentum", cfg.momentum).range(0.0, 0.999);
    let mut p = [-1.2, 1.0];
    let mut v = [0.0, 0.0];
    let mut pace = Pace::new(cfg.rate);
    let mut step = 0u64;
    // wait(): the pause gate and steering; false once terminated.
    while step < cfg.max_steps && idict.wait() {
        pace.tick();
        let (lr, momentum) = {
            let d = idict.lock();
            (
                d.get("lr").and_then(Value::as_f64).unwrap_or(cfg.lr),
                d.get("momentum")
                    .and_then(Value::as_f64)
                    .unwrap_or(cfg.momentum),
            )
        };
        let (loss, g) = rosenbrock(p);
        for i in 0..2 {
            v[i] = momentum * v[i] - lr * g[i];
            p[i] += v[i];
        }
        step += 1;
        let grad_norm = g[0].hypot(g[1]);
        {
            let mut d = idict.lock();
            d.insert("step", step);
            d.insert("loss", loss);
            d.insert("grad_norm", grad_norm);
            d.insert("px", p[0]);
            d.insert("py", p[1]);
            d.insert("point", p);
        }
        idict.notify_update()?;
        if !loss.is_finite() {
            idict.message(Level::Error, "diverged: lower lr or momentum".to_string());
            break;
        }
        if grad_norm < cfg.tolerance {
            idict.message(
                Level::Info,
                format!("converged after {step} steps at ({:.6}, {:.6})", p[0], p[1]),
            );
            break;
        }
    }
    Ok(p)
}
