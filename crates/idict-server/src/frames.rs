//! The dispatcher: brings the server's mirror of the published state up to
//! date and tells the watchers, once per frame.
//!
//! An idle run's notify wakes the dispatcher, which frames at once (one
//! wake of the server thread, which then runs the watchers too). When a
//! notify follows the last frame within a few `FRAME_INTERVAL`s, updates
//! are streaming, and frames follow a `FRAME_INTERVAL` ticker instead, so the
//! computation's memory is read once per frame however many watchers there
//! are, its notifies wake nobody, and the server thread sleeps between
//! frames (the runtime's own timers cannot sleep under a millisecond; a
//! timerfd can). After a few empty ticks the ticker stops.

use super::shared::Shared;
use idict_core::{Inner, StagedSamples};
use std::sync::Arc;
use tokio::sync::watch;

use idict_core::tuning::{FRAME_INTERVAL, IDLE_AFTER, STAGED_CHECK};

/// Runs until the task is dropped; dropping `news` ends every watch stream.
pub(crate) async fn dispatch(inner: Arc<Inner>, shared: Arc<Shared>, news: watch::Sender<u64>) {
    let mut ticker = match ticker::Ticker::new(FRAME_INTERVAL) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("no frame ticker ({e}); frames follow every notify");
            None
        }
    };
    let mut sent = inner.epoch();
    let mut last_frame = std::time::Instant::now();
    inner.refresh_mirror(&shared.mirror);
    news.send_replace(sent);
    loop {
        // Idle: wait for a notify (or look for staged samples now and then).
        match inner.move_staged_if_quiet() {
            StagedSamples::Waiting => {
                tokio::select! {
                    _ = inner.changed.notified() => {}
                    _ = tokio::time::sleep(STAGED_CHECK) => continue,
                }
            }
            StagedSamples::None | StagedSamples::Moved => inner.changed.notified().await,
        }
        // A frame at once, unless the previous one was only a few frames
        // ago: then updates stream, and frames follow the ticker (which
        // the notifies do not wake). A run notifying every millisecond
        // thus costs one wake-up per update, not one per tick.
        let streaming = last_frame.elapsed() < FRAME_INTERVAL * IDLE_AFTER;
        if !streaming || ticker.is_none() {
            let epoch = inner.epoch();
            inner.refresh_mirror(&shared.mirror);
            news.send_replace(epoch);
            sent = epoch;
            last_frame = std::time::Instant::now();
            continue;
        }
        let Some(ticker) = ticker.as_mut() else {
            continue;
        };
        ticker.start();
        let mut quiet = 0;
        while quiet < IDLE_AFTER {
            ticker.tick().await;
            let epoch = inner.epoch();
            if epoch != sent {
                inner.refresh_mirror(&shared.mirror);
                news.send_replace(epoch);
                (sent, quiet) = (epoch, 0);
                last_frame = std::time::Instant::now();
            } else if inner.move_staged_if_quiet() != StagedSamples::Moved {
                quiet += 1;
            }
        }
        ticker.stop();
    }
}

#[cfg(target_os = "linux")]
mod ticker {
    //! A periodic timerfd, awaited on the runtime's reactor.
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    use std::os::fd::OwnedFd;
    use std::time::Duration;
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    pub(super) struct Ticker {
        fd: AsyncFd<OwnedFd>,
        every: Duration,
    }

    fn spec(d: Duration) -> Timespec {
        Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: d.subsec_nanos() as _,
        }
    }

    impl Ticker {
        pub fn new(every: Duration) -> std::io::Result<Self> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays
            // open and the same for the AsyncFd's whole life.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
            Ok(Ticker { fd, every })
        }

        fn set(&self, every: Duration) {
            let spec = Itimerspec {
                it_interval: spec(every),
                it_value: spec(every),
            };
            if let Err(e) = timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec) {
                tracing::debug!("timerfd_settime: {e}");
            }
        }

        pub fn start(&mut self) {
            self.set(self.every);
        }

        /// Disarms the timer (an all-zero setting).
        pub fn stop(&mut self) {
            self.set(Duration::ZERO);
        }

        /// Waits for the next tick (ticks missed meanwhile count as one).
        pub async fn tick(&mut self) {
            loop {
                let Ok(mut ready) = self.fd.readable().await else {
                    // The reactor is gone: the server is closing.
                    return std::future::pending().await;
                };
                let mut buf = [0u8; 8];
                match rustix::io::read(ready.get_inner(), &mut buf) {
                    Ok(_) => return,
                    Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                    Err(e) => {
                        tracing::debug!("timerfd read: {e}");
                        ready.clear_ready();
                    }
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod ticker {
    //! Elsewhere, the runtime's timer (millisecond frames).
    use std::time::Duration;

    pub(super) struct Ticker(tokio::time::Interval);

    impl Ticker {
        pub fn new(every: Duration) -> std::io::Result<Self> {
            let mut i = tokio::time::interval(every.max(Duration::from_millis(1)));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            Ok(Ticker(i))
        }
        pub fn start(&mut self) {
            self.0.reset();
        }
        pub fn stop(&mut self) {}
        pub async fn tick(&mut self) {
            self.0.tick().await;
        }
    }
}
