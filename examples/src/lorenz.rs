//! The Lorenz system, integrated with classical Runge–Kutta (RK4). It
//! publishes x, y, z and t each step; clients may steer sigma, rho and beta
//! and watch the attractor change.

use crate::pace::Pace;
use idict::{IDict, UpdateError, Value};

#[derive(Debug, Clone)]
pub struct LorenzConfig {
    pub dt: f64,
    pub max_steps: u64,
    pub rate: f64,
}

impl Default for LorenzConfig {
    fn default() -> Self {
        LorenzConfig {
            dt: 0.01,
            max_steps: u64::MAX,
            rate: 100.0,
        }
    }
}

/// The right-hand side of the Lorenz equations.
pub fn lorenz(s: [f64; 3], sigma: f64, rho: f64, beta: f64) -> [f64; 3] {
    let [x, y, z] = s;
    [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]
}

/// One RK4 step of size `dt`.
pub fn rk4(s: [f64; 3], dt: f64, f: impl Fn([f64; 3]) -> [f64; 3]) -> [f64; 3] {
    let add =
        |a: [f64; 3], b: [f64; 3], k: f64| [a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2]];
    let k1 = f(s);
    let k2 = f(add(s, k1, dt / 2.0));
    let k3 = f(add(s, k2, dt / 2.0));
    let k4 = f(add(s, k3, dt));
    [0, 1, 2].map(|i| s[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

/// Runs until `max_steps` or terminate; returns the steps taken.
pub fn run(idict: &IDict, cfg: &LorenzConfig) -> Result<u64, UpdateError> {
    idict.writable("sigma", 10.0).range(0.0, 100.0);
    idict.writable("rho", 28.0).range(0.0, 200.0);
    idict.writable("beta", 8.0 / 3.0).range(0.0, 20.0);
    let mut s = [1.0, 1.0, 1.0];
    let mut pace = Pace::new(cfg.rate);
    let (mut t, mut step) = (0.0, 0u64);
    // wait(): the pause gate and steering; false once terminated.
    while step < cfg.max_steps && idict.wait() {
        pace.tick();
        let (sigma, rho, beta) = {
            let d = idict.lock();
            let get = |k: &str, default: f64| d.get(k).and_then(Value::as_f64).unwrap_or(default);
            (get("sigma", 10.0), get("rho", 28.0), get("beta", 8.0 / 3.0))
        };
        s = rk4(s, cfg.dt, |v| lorenz(v, sigma, rho, beta));
        t += cfg.dt;
        step += 1;
        {
            let mut d = idict.lock();
            d.insert("step", step);
            d.insert("t", t);
            d.insert("x", s[0]);
            d.insert("y", s[1]);
            d.insert("z", s[2]);
        }
        idict.notify_update()?;
    }
    Ok(step)
}
