//! Watchers' sample cursors as the histories see them: a history keeps the
//! samples after the oldest cursor of the watchers that are reading, so a
//! watcher that keeps reading loses nothing to thinning.
//!
//! A watcher whose stream has not asked for a message for `STALLED_MS` (its
//! client stopped reading: flow control is full) holds nothing back, so a
//! stalled client costs the run neither memory nor time; if it reads again,
//! what it finds of that stretch may be thinned.

use crate::tuning::STALLED_MS;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// One watcher's cursor, shared with the registry (which holds it weakly,
/// so a watcher that goes unpins by dropping it).
#[derive(Debug)]
pub struct WatchPin {
    cursor: AtomicU64,
    /// When the stream last asked for a message (ms since the run started).
    active_ms: AtomicU64,
}

impl WatchPin {
    pub fn new(cursor: u64, now_ms: u64) -> Self {
        WatchPin {
            cursor: AtomicU64::new(cursor),
            active_ms: AtomicU64::new(now_ms),
        }
    }
    pub fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }
    pub fn set(&self, cursor: u64) {
        self.cursor.store(cursor, Ordering::Release);
    }
    /// The stream asked for a message.
    pub fn touch(&self, now_ms: u64) {
        self.active_ms.store(now_ms, Ordering::Relaxed);
    }
    fn reading(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.active_ms.load(Ordering::Relaxed)) < STALLED_MS
    }
}

/// The pins of a run's connected watchers.
#[derive(Debug, Default)]
pub struct Pins(Mutex<Vec<Weak<WatchPin>>>);

impl Pins {
    /// Registers a watcher's cursor.
    pub fn register(&self, pin: &Arc<WatchPin>) {
        let mut pins = self.0.lock();
        pins.retain(|w| w.strong_count() > 0);
        pins.push(Arc::downgrade(pin));
    }

    /// The oldest cursor of the watchers that are reading (`u64::MAX` if none).
    pub(crate) fn oldest(&self, now_ms: u64) -> u64 {
        let mut pins = self.0.lock();
        pins.retain(|w| w.strong_count() > 0);
        pins.iter()
            .filter_map(Weak::upgrade)
            .filter(|p| p.reading(now_ms))
            .map(|p| p.cursor())
            .min()
            .unwrap_or(u64::MAX)
    }
}
