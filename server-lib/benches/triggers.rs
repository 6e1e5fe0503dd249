//! What triggers cost a run, and how soon their pause holds it:
//! `cargo bench -p idict --bench triggers`.
//!
//! 1. `notify_update` of 10 changed scalars in a run with 10 triggers over
//!    those keys, against the same run without triggers, interleaved in one
//!    process (p50 of batches of 100 notifies; target <= 1.2x).
//! 2. A run at full speed whose NaN trigger fires 1,000 times: after each
//!    firing's notify returns, is the run already paused, so that its next
//!    `wait()` holds before another step is computed? (target: 0 steps.)

use idict::{IDict, RunState, TriggerActions};
use std::time::Instant;

const KEYS: [&str; 10] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];

/// Ten one-key tests, the usual trigger; none holds while measured.
const TESTS: [&str; 10] = [
    "isnan(k0)",
    "k1 > 1e300",
    "abs(k2) > 1e12",
    "isinf(k3)",
    "rises(k4) >= 1000000",
    "k5 < -1e300",
    "!isfinite(k6)",
    "abs(k7) < -1",
    "isinf(k8)",
    "falls(k9) > 1000000",
];

/// Ten rules of both kinds, four of them arithmetic over a key's values.
const MIXED: [&str; 10] = [
    "isnan(k0)",
    "k1 > 1e300",
    "abs(k2) > 1e12",
    "k3 > 2 * start(k3) + 1e9",
    "rises(k4) >= 1000000",
    "k5 < -1e300 || isinf(k5)",
    "k6 != k6",
    "k7 > abs(prev(k7)) * 1e6 + 1e9",
    "isinf(k8)",
    "falls(k9) > 1000000",
];

const BATCH: usize = 100;
const ROUNDS: usize = 20;
const BATCHES_PER_ROUND: usize = 500;
const FIRINGS: usize = 1000;

fn main() {
    println!(
        "insert 10 + notify_update, p50 over {} notifies each, interleaved:",
        ROUNDS * BATCHES_PER_ROUND * BATCH
    );
    notify_cost("10 one-key tests (isnan(k0), k1 > 1e300, ...)", &TESTS);
    notify_cost(
        "10 rules, 4 with arithmetic (k3 > 2 * start(k3) + 1e9, ...)",
        &MIXED,
    );
    pause_before_the_next_step();
}

/// ns per notify, one batch of `BATCH` (inserts under one lock, then notify).
fn batch(d: &IDict, i: &mut f64) -> f64 {
    let t = Instant::now();
    for _ in 0..BATCH {
        {
            let mut g = d.lock();
            for k in KEYS {
                g.insert(k, *i);
            }
        }
        *i += 1.0;
        if d.notify_update().is_err() {
            return f64::NAN;
        }
    }
    t.elapsed().as_nanos() as f64 / BATCH as f64
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn notify_cost(what: &str, rules: &[&str]) {
    let bare = IDict::new("bench-no-triggers");
    let with = IDict::new("bench-triggers");
    for (n, rule) in rules.iter().enumerate() {
        if let Err(e) = with.trigger(&format!("rule{n}"), rule, TriggerActions::pause()) {
            eprintln!("{rule}: {e}");
            return;
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (1.0, 1.0);
    for _ in 0..ROUNDS {
        for _ in 0..BATCHES_PER_ROUND {
            a.push(batch(&bare, &mut i));
        }
        for _ in 0..BATCHES_PER_ROUND {
            b.push(batch(&with, &mut j));
        }
    }
    let fired: u64 = with.triggers().iter().map(|t| t.fired).sum();
    let (a, b) = (p50(a), p50(b));
    println!("  {what}");
    println!(
        "    no triggers {a:>6.1} ns, with them {b:>6.1} ns: {:.2}x (target <= 1.2x){}",
        b / a,
        if fired > 0 { "  (some fired!)" } else { "" }
    );
}

fn pause_before_the_next_step() {
    let d = IDict::new("bench-pause");
    if let Err(e) = d.trigger("nan", "isnan(x)", TriggerActions::pause()) {
        eprintln!("{e}");
        return;
    }
    let run = {
        let d = d.clone();
        std::thread::spawn(move || {
            let (mut step, mut late, mut nans) = (0u64, 0u64, 0usize);
            while nans < FIRINGS && d.wait() {
                step += 1;
                // A NaN every 37 steps, a number between.
                let x = if step % 37 == 0 {
                    f64::NAN
                } else {
                    step as f64
                };
                d.lock().insert("x", x);
                if d.notify_update().is_err() {
                    break;
                }
                if x.is_nan() {
                    nans += 1;
                    // Paused already: the next wait() holds, no step runs.
                    if d.status().state != RunState::Paused {
                        late += 1;
                    }
                }
            }
            (step, late, nans)
        })
    };
    let t = Instant::now();
    // Resume each hold, at once.
    while !run.is_finished() {
        if d.status().held {
            d.resume();
        }
        std::hint::spin_loop();
    }
    let Ok((steps, late, nans)) = run.join() else {
        eprintln!("the run panicked");
        return;
    };
    let fired = d.triggers().first().map_or(0, |t| t.fired);
    println!(
        "a NaN trigger's pause, {nans} firings in {steps} steps at full speed ({:.0} ms):",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("  fired {fired}; steps computed after a firing before its hold: {late} (target 0)");
}
