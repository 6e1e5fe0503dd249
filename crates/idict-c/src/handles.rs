//! Handles C holds instead of pointers: a table of live objects, each
//! handle naming its kind, its slot and the slot's generation. A handle
//! that is 0, freed, made up or of another kind is refused with a clear
//! error, never followed into freed memory.

use crate::status::{Failure, IDICT_ERR_HANDLE, Result};
use parking_lot::RwLock;

/// Bits of a handle: the slot + 1 (so 0 is never a handle), the slot's
/// generation, and the kind.
const SLOT_BITS: u32 = 32;
const GENERATION_BITS: u32 = 24;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

struct Slot<T> {
    generation: u64,
    item: Option<T>,
}

struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
}

/// The live objects of one kind.
pub struct Table<T> {
    kind: u64,
    name: &'static str,
    inner: RwLock<Slots<T>>,
}

impl<T: Clone> Table<T> {
    pub const fn new(kind: u64, name: &'static str) -> Self {
        Table {
            kind,
            name,
            inner: RwLock::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn handle(&self, index: usize, generation: u64) -> u64 {
        (self.kind << (SLOT_BITS + GENERATION_BITS))
            | ((generation & GENERATION_MASK) << SLOT_BITS)
            | (index as u64 + 1)
    }

    /// Where a handle points, if it is of this kind.
    fn parts(&self, handle: u64) -> Option<(usize, u64)> {
        if handle >> (SLOT_BITS + GENERATION_BITS) != self.kind {
            return None;
        }
        let slot = (handle & ((1 << SLOT_BITS) - 1)) as usize;
        let generation = (handle >> SLOT_BITS) & GENERATION_MASK;
        slot.checked_sub(1).map(|index| (index, generation))
    }

    /// Keeps `item`; its new handle.
    pub fn insert(&self, item: T) -> u64 {
        let mut t = self.inner.write();
        let index = match t.free.pop() {
            Some(index) => index,
            None => {
                t.slots.push(Slot {
                    generation: 0,
                    item: None,
                });
                t.slots.len() - 1
            }
        };
        let slot = &mut t.slots[index];
        slot.item = Some(item);
        let generation = slot.generation;
        self.handle(index, generation)
    }

    fn refused(&self, handle: u64) -> Failure {
        let what = if handle == 0 {
            "0 (no handle)".to_string()
        } else {
            format!("{handle:#x}")
        };
        Failure::new(
            IDICT_ERR_HANDLE,
            format!(
                "{what} is not a live {} handle (freed, closed, or never made)",
                self.name
            ),
        )
    }

    /// The object a live handle names.
    pub fn get(&self, handle: u64) -> Result<T> {
        let (index, generation) = self.parts(handle).ok_or_else(|| self.refused(handle))?;
        let t = self.inner.read();
        match t.slots.get(index) {
            Some(Slot {
                generation: g,
                item: Some(item),
            }) if *g & GENERATION_MASK == generation => Ok(item.clone()),
            _ => Err(self.refused(handle)),
        }
    }

    /// Takes the object out: the handle, and any copy of it, is dead from
    /// now on (the slot's generation moves on).
    pub fn remove(&self, handle: u64) -> Result<T> {
        let (index, generation) = self.parts(handle).ok_or_else(|| self.refused(handle))?;
        let mut t = self.inner.write();
        let item = match t.slots.get_mut(index) {
            Some(slot)
                if slot.generation & GENERATION_MASK == generation && slot.item.is_some() =>
            {
                slot.generation += 1;
                slot.item.take()
            }
            _ => None,
        };
        match item {
            Some(item) => {
                t.free.push(index);
                Ok(item)
            }
            None => Err(self.refused(handle)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_foreign_and_made_up_handles_are_refused() {
        let a: Table<u32> = Table::new(1, "a");
        let b: Table<u32> = Table::new(2, "b");
        let h = a.insert(7);
        assert_eq!(a.get(h).ok(), Some(7));
        assert!(b.get(h).is_err(), "a handle of another kind");
        assert!(a.get(0).is_err() && a.get(h + 1).is_err() && a.get(u64::MAX).is_err());
        assert_eq!(a.remove(h).ok(), Some(7));
        assert!(a.get(h).is_err() && a.remove(h).is_err(), "freed");
        // The slot is reused with a new generation: the old handle stays dead.
        let h2 = a.insert(8);
        assert_ne!(h, h2);
        assert!(a.get(h).is_err());
        assert_eq!(a.get(h2).ok(), Some(8));
    }
}
