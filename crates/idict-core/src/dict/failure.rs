//! A panic in the thread running a run's loop marks that run Failed with the
//! panic's message. Threads get small tags so a run knows which thread runs
//! its loop (and which holds its working map).

use super::Inner;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

thread_local! {
    static THREAD_TAG: u64 = NEXT_THREAD_TAG.fetch_add(1, Ordering::Relaxed);
}
static NEXT_THREAD_TAG: AtomicU64 = AtomicU64::new(1);
/// Every run of the process, weakly: the panic hook finds the failing one.
static LIVE: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

/// This thread's tag (never 0).
pub(crate) fn thread_tag() -> u64 {
    THREAD_TAG.with(|t| *t)
}

/// Lists a new run for the panic hook (installed on first use).
pub fn register(inner: &Arc<Inner>) {
    install_panic_hook();
    let mut live = LIVE.lock();
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(inner));
}

/// The previous hook still runs (and prints as usual).
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            let message = match info.location() {
                Some(l) => format!("panicked at {}:{}: {text}", l.file(), l.line()),
                None => format!("panicked: {text}"),
            };
            let me = thread_tag();
            let failing: Vec<Arc<Inner>> = match LIVE.try_lock_for(Duration::from_millis(100)) {
                Some(live) => live
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|inner| inner.owner.load(Ordering::Relaxed) == me)
                    .collect(),
                None => Vec::new(),
            };
            for inner in failing {
                inner.fail(message.clone());
            }
            previous(info);
        }));
    });
}
