//! The computation's working map and its guard. Changes collect here until
//! a notify publishes them; nothing a client sees changes before.
//!
//! The guard records the thread holding it, so that a call on that same
//! thread which would wait for the map (`notify_update`, `wait`, `sync`,
//! `writable`, a second `lock`) is reported instead of deadlocking.

use super::{Inner, failure};
use crate::model::AppliedWrite;
use crate::value::Value;
use parking_lot::MutexGuard;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One key of the working map.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub key: Arc<str>,
    pub value: Value,
    /// Already listed in `Working::touched` since the last notify.
    pub dirty: bool,
    /// Where the key's samples are staged, once it has held a scalar: kept
    /// here so a notify records a sample without looking the key up again.
    pub staged: Option<u32>,
}

/// The computation's working map. Each key has a small id, its slot's
/// index, so a notify reaches the changed slots (and their published
/// copies) without hashing.
#[derive(Debug, Default)]
pub(crate) struct Working {
    pub ids: FxHashMap<Arc<str>, u32>,
    pub slots: Vec<Option<Slot>>,
    /// Ids free for new keys: only ids whose removal has been published.
    pub free: Vec<u32>,
    /// Ids of keys inserted since the last notify (each once).
    pub touched: Vec<u32>,
    /// Keys removed since the last notify, with their ids.
    pub removed: Vec<(Arc<str>, u32)>,
    /// Steering writes applied since the last notify.
    pub applied: Vec<AppliedWrite>,
    /// Moves on when a key is added or removed (not when a value changes).
    pub key_generation: u64,
    /// The triggers as this thread evaluates them at each notify.
    pub triggers: crate::triggers::Engine,
}

impl Working {
    pub fn slot(&self, key: &str) -> Option<&Slot> {
        let id = *self.ids.get(key)?;
        self.slots.get(id as usize)?.as_ref()
    }

    /// Sets the value of the key at `id`, if one is there; gives the value
    /// back if not.
    pub fn set(&mut self, id: u32, value: Value) -> Result<Value, Value> {
        let Some(Some(slot)) = self.slots.get_mut(id as usize) else {
            return Err(value);
        };
        if !slot.dirty {
            slot.dirty = true;
            self.touched.push(id);
        }
        Ok(std::mem::replace(&mut slot.value, value))
    }

    pub fn insert(&mut self, key: &str, value: Value) -> Option<Value> {
        let value = match self.ids.get(key) {
            Some(&id) => match self.set(id, value) {
                Ok(old) => return Some(old),
                Err(value) => value,
            },
            None => value,
        };
        let key: Arc<str> = Arc::from(key);
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[id as usize] = Some(Slot {
            key: key.clone(),
            value,
            dirty: true,
            staged: None,
        });
        self.ids.insert(key, id);
        self.touched.push(id);
        self.key_generation += 1;
        None
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let id = self.ids.remove(key)?;
        let slot = self.slots.get_mut(id as usize)?.take()?;
        self.removed.push((slot.key, id));
        self.key_generation += 1;
        Some(slot.value)
    }

    pub fn clear(&mut self) {
        self.key_generation += 1;
        for (key, id) in std::mem::take(&mut self.ids) {
            if self
                .slots
                .get_mut(id as usize)
                .and_then(Option::take)
                .is_some()
            {
                self.removed.push((key, id));
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.slots.iter().flatten().map(|s| (&*s.key, &s.value))
    }
}

/// Where a key sits in the working map, so a caller that sets the same
/// keys at every update reaches them without hashing their names
/// ([`DictGuard::key_id`]). It stays valid while
/// [`DictGuard::key_generation`] does not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(u32);

/// Exclusive access to the working map (see [`IDict::lock`](crate::IDict::lock)).
/// Nothing a client sees changes until `notify_update()`.
pub struct DictGuard<'a> {
    w: MutexGuard<'a, Working>,
    holder: &'a AtomicU64,
}

impl<'a> DictGuard<'a> {
    pub fn new(inner: &'a Inner) -> Self {
        let w = inner.data.lock();
        inner.holder.store(failure::thread_tag(), Ordering::Relaxed);
        DictGuard {
            w,
            holder: &inner.holder,
        }
    }
}

impl Drop for DictGuard<'_> {
    fn drop(&mut self) {
        // Before the map's mutex is released (fields drop after this).
        self.holder.store(0, Ordering::Relaxed);
    }
}

impl DictGuard<'_> {
    /// Sets `key` to `value`; returns the previous value.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<Value>) -> Option<Value> {
        self.w.insert(key.as_ref(), value.into())
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.w.slot(key).map(|s| &s.value)
    }
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.w.remove(key)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.w.ids.contains_key(key)
    }
    /// Keys in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let mut keys: Vec<&str> = self.w.ids.keys().map(|k| &**k).collect();
        keys.sort_unstable();
        keys.into_iter()
    }
    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let mut entries: Vec<_> = self.w.iter().collect();
        entries.sort_unstable_by_key(|(k, _)| *k);
        entries.into_iter()
    }
    pub fn len(&self) -> usize {
        self.w.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.w.ids.is_empty()
    }
    /// Removes every key.
    pub fn clear(&mut self) {
        self.w.clear();
    }
    /// True if `key` was set since the last `notify_update()` (by the
    /// program or an applied steering write).
    pub fn changed(&self, key: &str) -> bool {
        self.w.slot(key).is_some_and(|s| s.dirty)
    }
    /// Where `key` sits, for [`get_by_id`](Self::get_by_id) and
    /// [`insert_by_id`](Self::insert_by_id).
    pub fn key_id(&self, key: &str) -> Option<KeyId> {
        self.w.ids.get(key).map(|&id| KeyId(id))
    }
    /// The value at `id` and whether it was set since the last notify.
    pub fn get_by_id(&self, id: KeyId) -> Option<(&Value, bool)> {
        let slot = self.w.slots.get(id.0 as usize)?.as_ref()?;
        Some((&slot.value, slot.dirty))
    }
    /// Sets the value at `id`, as `insert` would; gives the value back if
    /// the key there was removed.
    pub fn insert_by_id(&mut self, id: KeyId, value: impl Into<Value>) -> Result<Value, Value> {
        self.w.set(id.0, value.into())
    }
    /// A number that moves on whenever a key is added or removed (not when
    /// a value changes): a caller that lists the keys can tell when its
    /// list is out of date without listing them again.
    pub fn key_generation(&self) -> u64 {
        self.w.key_generation
    }
}

#[cfg(test)]
mod tests {
    use crate::IDict;
    use crate::value::Value;

    #[test]
    fn a_key_id_sets_the_key_until_it_is_removed() {
        let d = IDict::new("ids");
        let mut map = d.lock();
        map.insert("a", 1.0);
        map.insert("b", 2.0);
        let generation = map.key_generation();
        let Some(b) = map.key_id("b") else {
            panic!("b has an id");
        };
        assert_eq!(map.insert_by_id(b, 3.0), Ok(Value::Float(2.0)));
        assert_eq!(map.get("b"), Some(&Value::Float(3.0)));
        assert_eq!(map.get_by_id(b), Some((&Value::Float(3.0), true)));
        assert_eq!(
            map.key_generation(),
            generation,
            "a value changed, not a key"
        );
        map.remove("b");
        assert_ne!(map.key_generation(), generation);
        assert_eq!(map.get_by_id(b), None);
        assert_eq!(map.insert_by_id(b, 4.0), Err(Value::Float(4.0)));
        assert!(!map.contains_key("b"), "a stale id never brings a key back");
    }
}
