//! What runs after each published update: mmf.async's callbacks, which get
//! the dict itself and the update.
//!
//! Callbacks run on the computation's thread with no lock held, so one may
//! call any `IDict` method (log, read, publish again, add or remove
//! callbacks). While they run they are taken out of the list; a nested
//! notify runs only callbacks added meanwhile. The list is dropped when the
//! run ends, which breaks the cycle a callback holding an `IDict` makes.

use super::IDict;
use crate::model::AppliedWrite;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What a callback is told after each published update.
#[derive(Debug, Clone)]
pub struct UpdateEvent {
    pub(crate) version: u64,
    pub(crate) time: f64,
    pub(crate) changed: Vec<Arc<str>>,
    pub(crate) removed: Vec<Arc<str>>,
    pub(crate) applied: Vec<AppliedWrite>,
    pub(crate) last: bool,
}

impl UpdateEvent {
    /// The version just published.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Seconds since the run started.
    pub fn time(&self) -> f64 {
        self.time
    }
    /// Keys whose value changed in this version, in the order first changed.
    pub fn changed(&self) -> impl Iterator<Item = &str> {
        self.changed.iter().map(|k| &**k)
    }
    /// Keys removed in this version.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.removed.iter().map(|k| &**k)
    }
    /// Steering writes that first appear in this version.
    pub fn applied(&self) -> &[AppliedWrite] {
        &self.applied
    }
    /// True for the final update.
    pub fn is_final(&self) -> bool {
        self.last
    }
}

/// Identifies a callback for [`IDict::remove_callback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

/// The id as a number, for bindings that hand it to another language.
impl From<CallbackId> for u64 {
    fn from(id: CallbackId) -> u64 {
        id.0
    }
}

/// An id a binding handed out (an unknown one removes nothing).
impl From<u64> for CallbackId {
    fn from(id: u64) -> CallbackId {
        CallbackId(id)
    }
}

pub(crate) type Callback = Box<dyn FnMut(&IDict, &UpdateEvent) + Send>;

/// The registered callbacks; `None` while one is running.
#[derive(Default)]
pub(crate) struct Callbacks {
    list: Mutex<Vec<(CallbackId, Option<Callback>)>>,
    /// How many are registered: a notify builds its event only if any are.
    count: AtomicUsize,
    next: AtomicU64,
}

impl Callbacks {
    pub fn add(&self, f: Callback) -> CallbackId {
        let id = CallbackId(self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let mut list = self.list.lock();
        list.push((id, Some(f)));
        self.count.store(list.len(), Ordering::Release);
        id
    }

    pub fn remove(&self, id: CallbackId) -> bool {
        let removed = {
            let mut list = self.list.lock();
            let at = list.iter().position(|(i, _)| *i == id);
            let removed = at.map(|i| list.remove(i));
            self.count.store(list.len(), Ordering::Release);
            removed
        };
        // Dropped outside the lock: its captured state may call back in.
        removed.is_some()
    }

    pub fn any(&self) -> bool {
        self.len() > 0
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Runs every callback with `event`, no lock held.
    pub fn run(&self, idict: &IDict, event: &UpdateEvent) {
        let mut running: Vec<(CallbackId, Callback)> = {
            let mut list = self.list.lock();
            list.iter_mut()
                .filter_map(|(id, cb)| cb.take().map(|cb| (*id, cb)))
                .collect()
        };
        for (_, cb) in running.iter_mut() {
            cb(idict, event);
        }
        // Back in place, unless removed (or the run ended) meanwhile.
        let mut gone = Vec::new();
        {
            let mut list = self.list.lock();
            for (id, cb) in running {
                match list.iter_mut().find(|(i, slot)| *i == id && slot.is_none()) {
                    Some((_, slot)) => *slot = Some(cb),
                    None => gone.push(cb),
                }
            }
        }
        drop(gone);
    }

    /// Drops every callback (outside the lock).
    pub fn clear(&self) {
        let all = {
            let mut list = self.list.lock();
            self.count.store(0, Ordering::Release);
            std::mem::take(&mut *list)
        };
        drop(all);
    }
}
