//! Counters shared between threads that must stay within bounds: a slot
//! taken only while below a cap, a count lowered without wrapping.
//!
//! Compare-exchange loops, not `fetch_update`: that is deprecated from Rust
//! 1.99 (renamed `try_update`, which the toolchains this builds on lack).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Adds one to `counter` if it is below `cap`; whether it did.
pub fn take_below(counter: &AtomicUsize, cap: usize) -> bool {
    let mut n = counter.load(Ordering::Acquire);
    while n < cap {
        match counter.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => n = now,
        }
    }
    false
}

/// Subtracts `amount` from `counter`, stopping at 0.
pub fn sub_saturating(counter: &AtomicUsize, amount: usize) {
    let mut n = counter.load(Ordering::Acquire);
    loop {
        let to = n.saturating_sub(amount);
        match counter.compare_exchange_weak(n, to, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => n = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_taken_only_below_the_cap_and_counts_never_wrap() {
        let c = AtomicUsize::new(0);
        assert!(take_below(&c, 2));
        assert!(take_below(&c, 2));
        assert!(!take_below(&c, 2));
        assert_eq!(c.load(Ordering::Relaxed), 2);
        sub_saturating(&c, 5);
        assert_eq!(c.load(Ordering::Relaxed), 0);
        // Four threads racing for 100 slots take 100, not one more.
        let taken: usize = std::thread::scope(|s| {
            let racers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).filter(|_| take_below(&c, 100)).count()))
                .collect();
            racers.into_iter().map(|r| r.join().unwrap_or(0)).sum()
        });
        assert_eq!(taken, 100);
    }
}
