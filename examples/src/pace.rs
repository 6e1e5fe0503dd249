//! A rate limiter for loops whose work is tiny: it keeps a computation
//! watchable by hand (minutes, not milliseconds) without busy-waiting.

use std::time::{Duration, Instant};

/// Holds a loop to at most `rate` iterations per second (0: unlimited).
#[derive(Debug)]
pub struct Pace {
    period: Option<Duration>,
    next: Instant,
}

impl Pace {
    pub fn new(rate: f64) -> Self {
        let period = (rate > 0.0)
            .then(|| Duration::try_from_secs_f64(1.0 / rate).ok())
            .flatten();
        Pace {
            period,
            next: Instant::now(),
        }
    }

    /// Sleeps until the next iteration is due.
    pub fn tick(&mut self) {
        let Some(period) = self.period else { return };
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
            self.next += period;
        } else {
            // Fell behind (e.g. paused): do not burst to catch up.
            self.next = now + period;
        }
    }
}
