//! The published state of a run: what clients see. The computation's thread
//! writes it once per `notify_update()` (a version); server tasks read it to
//! build snapshots and per-client deltas. A ring of recent update records
//! lets a client's delta be built from only the keys that changed since its
//! cursor, so a slow client gets the newest state coalesced.

use crate::history::BoundedSeries;
use crate::model::{AppliedWrite, LogMessage};
use crate::value::Value;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;

/// How many recent versions keep their list of changed keys.
pub(crate) const RECORD_RING: usize = 4096;
/// How many removed keys are remembered for resuming clients.
pub(crate) const MAX_TOMBSTONES: usize = 10_000;

/// A key's published value and the version that last changed it.
#[derive(Debug, Clone)]
pub(crate) struct PubEntry {
    pub value: Value,
    pub version: u64,
}

/// What one version changed.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub version: u64,
    pub time: f64,
    pub changed: Vec<Arc<str>>,
    pub removed: Vec<Arc<str>>,
    pub applied: Vec<AppliedWrite>,
}

/// The history of one key, locked on its own so that copying it out for a
/// client never holds up the computation's next update for long.
pub(crate) type SharedSeries = Arc<Mutex<BoundedSeries>>;

#[derive(Debug)]
pub(crate) struct Published {
    pub version: u64,
    /// Seconds since start at `version`.
    pub time: f64,
    pub entries: FxHashMap<Arc<str>, PubEntry>,
    pub records: VecDeque<Record>,
    /// Removed key → version of removal (bounded).
    pub tombstones: FxHashMap<Arc<str>, u64>,
    /// Removals at or before this version may be forgotten.
    pub tombstone_floor: u64,
    pub history: FxHashMap<Arc<str>, SharedSeries>,
    pub messages: VecDeque<LogMessage>,
    pub next_message_seq: u64,
    pub message_capacity: usize,
}

/// Everything a client needs to go from its cursor to the newest version.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub version: u64,
    pub time: f64,
    /// True when the client must drop its state and take `changed` as all.
    pub reset: bool,
    pub changed: Vec<(Arc<str>, Value)>,
    pub removed: Vec<Arc<str>>,
    pub applied: Vec<AppliedWrite>,
}

impl Published {
    pub fn new(message_capacity: usize) -> Self {
        Published {
            version: 0,
            time: 0.0,
            entries: FxHashMap::default(),
            records: VecDeque::new(),
            tombstones: FxHashMap::default(),
            tombstone_floor: 0,
            history: FxHashMap::default(),
            messages: VecDeque::new(),
            next_message_seq: 1,
            message_capacity,
        }
    }

    pub fn remember_removal(&mut self, key: Arc<str>, version: u64) {
        if self.tombstones.len() >= MAX_TOMBSTONES {
            self.tombstones.clear();
            self.tombstone_floor = version - 1;
        }
        self.tombstones.insert(key, version);
    }

    pub fn push_record(&mut self, record: Record) {
        if self.records.len() >= RECORD_RING {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    pub fn push_message(&mut self, mut m: LogMessage) {
        m.seq = self.next_message_seq;
        self.next_message_seq += 1;
        if self.messages.len() >= self.message_capacity {
            self.messages.pop_front();
        }
        self.messages.push_back(m);
    }

    /// Messages with a sequence number above `after`.
    pub fn messages_after(&self, after: u64) -> Vec<LogMessage> {
        let start = self.messages.partition_point(|m| m.seq <= after);
        self.messages.range(start..).cloned().collect()
    }

    /// The current entries with the prefix, sorted by key.
    pub fn sorted_entries(&self, prefix: &str) -> Vec<(Arc<str>, PubEntry)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The histories of keys with the prefix (shared handles, copied later).
    pub fn histories(&self, prefix: &str) -> Vec<(Arc<str>, SharedSeries)> {
        let mut v: Vec<_> = self
            .history
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// What changed after version `cursor`, for keys with the prefix. Sample
    /// series are returned as handles to copy after the lock is released.
    pub fn delta_since(&self, cursor: u64, prefix: &str) -> (Delta, Vec<(Arc<str>, SharedSeries)>) {
        let mut d = Delta {
            version: self.version,
            time: self.time,
            ..Delta::default()
        };
        if cursor >= self.version {
            return (d, Vec::new());
        }
        let covered = self
            .records
            .front()
            .is_some_and(|r| r.version <= cursor + 1);
        let mut touched: Vec<Arc<str>> = Vec::new();
        if covered {
            let start = self.records.partition_point(|r| r.version <= cursor);
            for r in self.records.range(start..) {
                touched.extend(r.changed.iter().filter(|k| k.starts_with(prefix)).cloned());
                touched.extend(r.removed.iter().filter(|k| k.starts_with(prefix)).cloned());
                d.applied.extend(
                    r.applied
                        .iter()
                        .filter(|a| a.key.starts_with(prefix))
                        .cloned(),
                );
            }
            touched.sort_unstable();
            touched.dedup();
            for k in &touched {
                match self.entries.get(k) {
                    Some(e) => d.changed.push((k.clone(), e.value.clone())),
                    None => d.removed.push(k.clone()),
                }
            }
        } else if cursor >= self.tombstone_floor {
            for (k, e) in self.sorted_entries(prefix) {
                if e.version > cursor {
                    touched.push(k.clone());
                    d.changed.push((k, e.value));
                }
            }
            let mut removed: Vec<_> = self
                .tombstones
                .iter()
                .filter(|(k, v)| **v > cursor && k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect();
            removed.sort_unstable();
            touched.extend(removed.iter().cloned());
            d.removed = removed;
        } else {
            d.reset = true;
            for (k, e) in self.sorted_entries(prefix) {
                touched.push(k.clone());
                d.changed.push((k, e.value));
            }
        }
        let series = touched
            .into_iter()
            .filter_map(|k| self.history.get(&k).map(|s| (k, s.clone())))
            .collect();
        (d, series)
    }
}
