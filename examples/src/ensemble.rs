//! An ensemble of damped, driven oscillators, each with its own frequency:
//! one key per member (`m000042.x`), as a many-rank job or a parameter
//! sweep publishes them. It shows idict at scale: 100,000 members are
//! 100,000 keys changed at every step. Clients may steer `drive`, the
//! driving force's amplitude, which every member feels.

use crate::pace::Pace;
use idict::{IDict, KeyId, UpdateError, Value};

#[derive(Debug, Clone)]
pub struct EnsembleConfig {
    pub members: usize,
    pub dt: f64,
    pub max_steps: u64,
    pub rate: f64,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        EnsembleConfig {
            members: 100_000,
            dt: 0.01,
            max_steps: u64::MAX,
            rate: 10.0,
        }
    }
}

/// Member `i`'s key.
pub fn key(i: usize) -> String {
    format!("m{i:06}.x")
}

/// Runs until `max_steps` or terminate; returns the steps taken.
pub fn run(idict: &IDict, cfg: &EnsembleConfig) -> Result<u64, UpdateError> {
    idict.writable("drive", 1.0).range(0.0, 100.0);
    let n = cfg.members;
    // Frequencies spread over 0.5..2.0; every member starts at rest.
    let omega: Vec<f64> = (0..n)
        .map(|i| 0.5 + 1.5 * i as f64 / n.max(2) as f64)
        .collect();
    let (mut x, mut v) = (vec![0.0f64; n], vec![0.0f64; n]);
    let names: Vec<String> = (0..n).map(key).collect();
    // Each member's key id, found once: setting 100,000 keys by name each
    // step would hash every name.
    let mut ids: Vec<Option<KeyId>> = Vec::new();
    let mut ids_generation = u64::MAX;
    let mut pace = Pace::new(cfg.rate);
    let (mut t, mut step) = (0.0f64, 0u64);
    while step < cfg.max_steps && idict.wait() {
        pace.tick();
        let drive = idict
            .lock()
            .get("drive")
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        for i in 0..n {
            // Semi-implicit Euler: x'' = -w^2 x - 0.1 x' + drive cos(t).
            let a = -omega[i] * omega[i] * x[i] - 0.1 * v[i] + drive * t.cos();
            v[i] += cfg.dt * a;
            x[i] += cfg.dt * v[i];
        }
        t += cfg.dt;
        step += 1;
        {
            let mut d = idict.lock();
            if d.key_generation() != ids_generation {
                ids = names.iter().map(|k| d.key_id(k)).collect();
                ids_generation = d.key_generation();
            }
            for (i, name) in names.iter().enumerate() {
                match ids[i] {
                    Some(id) if d.insert_by_id(id, x[i]).is_ok() => {}
                    _ => {
                        d.insert(name, x[i]);
                    }
                }
            }
            d.insert("step", step);
            d.insert("t", t);
        }
        idict.notify_update()?;
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every member is a key of its own, all changed at each step; from
    /// rest, one step of the drive (1 at t = 0) moves each member by dt^2.
    #[test]
    fn each_member_is_a_key_moved_by_the_drive() {
        let idict = IDict::new("ensemble-test");
        let cfg = EnsembleConfig {
            members: 500,
            max_steps: 1,
            rate: 0.0,
            ..EnsembleConfig::default()
        };
        assert_eq!(run(&idict, &cfg), Ok(1));
        let d = idict.lock();
        assert_eq!(d.len(), 500 + 3, "members, step, t and drive");
        let x = |i: usize| d.get(&key(i)).and_then(Value::as_f64);
        assert!((0..500).all(|i| x(i).is_some_and(|v| (v - 1e-4).abs() < 1e-12)));
        assert_eq!(d.get("step"), Some(&Value::Int(1)));
    }
}
