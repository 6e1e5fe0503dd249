//! How the computation's thread takes a lock that a server task may hold.
//!
//! Server tasks hold the published state and the histories for a few
//! microseconds at a time. A plain `lock()` that finds one held spins very
//! briefly, then yields and sleeps; waking again costs tens of microseconds
//! (far longer than the holder needed), and a yield hands the core to
//! whatever else is runnable. So the computation retries for a bounded time
//! first and only then sleeps, which keeps readers from slowing it down.

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockWriteGuard};
use std::time::Instant;

use crate::tuning::{RETRIES_PER_CHECK, SPIN_FOR};

fn spin_then<G>(mut attempt: impl FnMut() -> Option<G>, block: impl FnOnce() -> G) -> G {
    if let Some(g) = attempt() {
        return g;
    }
    let start = Instant::now();
    loop {
        for _ in 0..RETRIES_PER_CHECK {
            std::hint::spin_loop();
            if let Some(g) = attempt() {
                return g;
            }
        }
        if start.elapsed() > SPIN_FOR {
            return block();
        }
    }
}

/// `m.lock()`, retrying for a bounded time before sleeping.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    spin_then(|| m.try_lock(), || m.lock())
}

/// `l.write()`, retrying for a bounded time before sleeping.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    spin_then(|| l.try_write(), || l.write())
}
