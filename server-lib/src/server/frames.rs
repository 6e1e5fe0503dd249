//! The frame thread: brings the server's mirror of the published state up
//! to date and tells the watchers, at most once per `FRAME_INTERVAL` while
//! a run updates, and sleeps when it does not.
//!
//! It is a plain thread (at the server's lowered priority) because it
//! sleeps between frames: the async runtime's timers cannot sleep for less
//! than a millisecond, and spinning would take a core from the machine. A
//! run's notify only bumps an atomic epoch; it wakes this thread (a system
//! call) only when the thread has gone idle, so a fast run pays for at most
//! one wake per burst, and the computation's memory is read once per frame
//! however many clients there are.

use super::Shared;
use crate::dict::{Inner, StagedSamples};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The shortest time between two frames while updates stream: watchers see
/// a fast run's state at most about this late.
const FRAME_INTERVAL: Duration = Duration::from_micros(100);
/// Frames without news before the thread sleeps until the next notify.
const IDLE_AFTER: u32 = 3;
/// How often an idle thread looks for samples a quiet run left staged.
const STAGED_CHECK: Duration = Duration::from_millis(1);

/// Runs until `closing` is set (and the thread unparked); dropping `news`
/// on return ends every watch stream.
pub(crate) fn run(
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    news: watch::Sender<u64>,
    closing: Arc<AtomicBool>,
) {
    let mut sent = inner.epoch();
    inner.refresh_mirror(&shared.mirror);
    news.send_replace(sent);
    let mut quiet = 0u32;
    while !closing.load(Ordering::Acquire) {
        // Read the epoch first: whatever is bumped after it makes a frame.
        let epoch = inner.epoch();
        if epoch != sent {
            inner.refresh_mirror(&shared.mirror);
            news.send_replace(epoch);
            (sent, quiet) = (epoch, 0);
            std::thread::sleep(FRAME_INTERVAL);
            continue;
        }
        let staged = inner.move_staged_if_quiet();
        if staged == StagedSamples::Moved {
            continue;
        }
        quiet += 1;
        if quiet < IDLE_AFTER {
            std::thread::sleep(FRAME_INTERVAL);
            continue;
        }
        // Idle: say so, look once more (a notify may have come between),
        // then sleep until a notify wakes us.
        inner.frames_idle(true);
        if inner.epoch() == sent && !closing.load(Ordering::Acquire) {
            match staged {
                StagedSamples::Waiting => std::thread::park_timeout(STAGED_CHECK),
                _ => std::thread::park(),
            }
        }
        inner.frames_idle(false);
    }
}
