//! Gives the heap that departed watchers freed back to the operating system.
//!
//! A burst of watchers (their stream buffers, the history they pinned) can
//! take a hundred MiB; when they go, glibc's allocator keeps the freed
//! pages for reuse, so the run's resident memory would stay at the peak for
//! the rest of a week-long run. After watchers leave, the server asks the
//! allocator to return free pages, at most once per `INTERVAL`.

use super::shared::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(1);

/// Runs on the server's runtime until the server closes.
pub(crate) async fn after_watchers_leave(shared: Arc<Shared>) {
    // Once more a tick later: a departed watcher's connection (its HTTP/2
    // buffers) is torn down a little after its stream ends.
    let mut again = false;
    loop {
        tokio::time::sleep(INTERVAL).await;
        if shared.watchers_left.swap(false, Ordering::AcqRel) {
            release_free_heap();
            again = true;
        } else if std::mem::take(&mut again) {
            release_free_heap();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_heap() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    let start = std::time::Instant::now();
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks
    // each arena in turn); 0 keeps no extra padding.
    unsafe {
        malloc_trim(0);
    }
    tracing::debug!(took = ?start.elapsed(), "returned free heap to the OS");
}

/// Other allocators return memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}
