//! The published state of a run: what clients see. The computation's thread
//! writes it once per `notify_update()` (a version); server tasks read it to
//! build snapshots and per-client deltas. A ring of recent update records
//! lets a client's delta be built from only the keys that changed since its
//! cursor, so a slow client gets the newest state coalesced.

use crate::history::{KeyedSeries, SharedSeries};
use crate::model::{AppliedWrite, LogMessage};
use crate::value::Value;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::tuning::{
    MAX_APPLIED_LOG, MAX_APPLIED_LOG_BYTES, MAX_REMOVED_HISTORIES, MAX_TOMBSTONES, RECORD_RING,
};

/// What an applied write holds, roughly (for the log's bound).
fn applied_bytes(a: &AppliedWrite) -> usize {
    a.key.len() + a.origin.len() + a.value.approx_wire_bytes() + 32
}

/// A key's published value and the version that last changed it.
#[derive(Debug, Clone)]
pub struct PubEntry {
    pub value: Value,
    pub version: u64,
}

/// A published key, at the slot of its key id.
#[derive(Debug, Clone)]
pub struct PubSlot {
    pub key: Arc<str>,
    pub entry: PubEntry,
}

/// What one version changed.
#[derive(Debug, Default)]
pub struct Record {
    pub version: u64,
    pub time: f64,
    /// Ids of the keys changed: a notify records them without touching the
    /// keys' shared reference counts. Readers map them to keys through
    /// `entries`; an id reused since belongs to a key changed since.
    pub changed: Vec<u32>,
    pub removed: Vec<Arc<str>>,
    pub applied: Vec<AppliedWrite>,
}

#[derive(Debug)]
pub struct Published {
    pub version: u64,
    /// Seconds since start at `version`.
    pub time: f64,
    /// Published keys by key id (the computation's thread writes a slot
    /// without hashing); `ids` finds a key's id by name.
    pub entries: Vec<Option<PubSlot>>,
    pub ids: FxHashMap<Arc<str>, u32>,
    /// Ids free for reuse (a mirror allocates its own; the computation's
    /// published state uses the working map's ids).
    free: Vec<u32>,
    pub records: VecDeque<Record>,
    /// The records tell every change after this version: the version the
    /// oldest record starts after. (A mirror's records are a frame's each,
    /// spanning several versions: the oldest record's own version says
    /// nothing of where it starts.)
    pub records_floor: u64,
    /// Removed key → version of removal (bounded).
    pub tombstones: FxHashMap<Arc<str>, u64>,
    /// Removals at or before this version may be forgotten.
    pub tombstone_floor: u64,
    pub history: FxHashMap<Arc<str>, SharedSeries>,
    /// Bumped whenever a history is added or removed, so a mirror knows
    /// when to take the list again.
    pub history_generation: u64,
    /// Removed keys whose history is still kept, oldest first.
    retired: VecDeque<Arc<str>>,
    pub messages: VecDeque<LogMessage>,
    pub next_message_seq: u64,
    pub message_capacity: usize,
    /// The newest version with applied writes: a client past it skips the
    /// look into `applied_log` (writes are rare).
    pub last_applied_version: u64,
    /// Applied writes, oldest first, kept apart from the records: a client
    /// far behind the ring still gets every write applied since its cursor.
    /// Bounded in count and bytes (`MAX_APPLIED_LOG`, `MAX_APPLIED_LOG_BYTES`).
    applied_log: VecDeque<AppliedWrite>,
    applied_log_bytes: usize,
    /// How many times a replay went back (see [`Published::rewind`]): a
    /// watcher that sees it change starts again from a whole state.
    pub rewinds: u64,
}

/// What a server's mirror lacks of the published state (see [`Published::apply`]).
#[derive(Debug)]
pub(crate) struct Frame {
    delta: Delta,
    messages: Vec<LogMessage>,
    next_message_seq: u64,
    /// Every history, when the set of keys with one changed.
    histories: Option<(u64, KeyedSeries)>,
    rewinds: u64,
}

/// Everything a client needs to go from its cursor to the newest version.
#[derive(Debug, Default)]
pub struct Delta {
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
            entries: Vec::new(),
            ids: FxHashMap::default(),
            free: Vec::new(),
            records: VecDeque::new(),
            records_floor: 0,
            tombstones: FxHashMap::default(),
            tombstone_floor: 0,
            history: FxHashMap::default(),
            history_generation: 0,
            retired: VecDeque::new(),
            messages: VecDeque::new(),
            next_message_seq: 1,
            message_capacity,
            last_applied_version: 0,
            applied_log: VecDeque::new(),
            applied_log_bytes: 0,
            rewinds: 0,
        }
    }

    /// Forgets every key, history, record and message, and goes back to
    /// `version`; message numbers and generations go on (replays only).
    pub fn rewind(&mut self, version: u64) {
        let mut fresh = Published::new(self.message_capacity);
        fresh.version = version;
        fresh.tombstone_floor = version;
        fresh.records_floor = version;
        fresh.next_message_seq = self.next_message_seq;
        fresh.history_generation = self.history_generation + 1;
        fresh.rewinds = self.rewinds + 1;
        *self = fresh;
    }

    /// The published entry of a key.
    pub fn entry(&self, key: &str) -> Option<&PubEntry> {
        let id = *self.ids.get(key)?;
        self.entries.get(id as usize)?.as_ref().map(|s| &s.entry)
    }

    /// Publishes `value` for the key with id `id`.
    pub fn set(&mut self, id: u32, key: &Arc<str>, value: Value, version: u64) {
        let i = id as usize;
        if self.entries.len() <= i {
            self.entries.resize(i + 1, None);
        }
        match &mut self.entries[i] {
            Some(slot) => slot.entry = PubEntry { value, version },
            vacant => {
                *vacant = Some(PubSlot {
                    key: key.clone(),
                    entry: PubEntry { value, version },
                });
                self.ids.insert(key.clone(), id);
            }
        }
    }

    /// The history of `key`, made with `new` if it has none.
    pub fn history_for(
        &mut self,
        key: &Arc<str>,
        new: impl FnOnce() -> SharedSeries,
    ) -> SharedSeries {
        if let Some(s) = self.history.get(key) {
            return s.clone();
        }
        let s = new();
        self.history.insert(key.clone(), s.clone());
        self.history_generation += 1;
        s
    }

    /// Notes that `key` was removed; frees the history of the removed key
    /// retired longest ago once more than `MAX_REMOVED_HISTORIES` are kept,
    /// unless it is live again. Returns the keys whose history was freed.
    pub fn retire_history(&mut self, key: Arc<str>) -> Vec<Arc<str>> {
        if !self.history.contains_key(&key) {
            return Vec::new();
        }
        self.retired.push_back(key);
        let mut freed = Vec::new();
        while self.retired.len() > MAX_REMOVED_HISTORIES {
            let Some(old) = self.retired.pop_front() else {
                break;
            };
            if !self.ids.contains_key(&old) && self.history.remove(&old).is_some() {
                self.history_generation += 1;
                freed.push(old);
            }
        }
        freed
    }

    /// Unpublishes the key with id `id`; true if it was published.
    pub fn unset(&mut self, id: u32) -> bool {
        match self.entries.get_mut(id as usize).and_then(Option::take) {
            Some(slot) => {
                self.ids.remove(&slot.key);
                true
            }
            None => false,
        }
    }

    pub fn remember_removal(&mut self, key: Arc<str>, version: u64) {
        if self.tombstones.len() >= MAX_TOMBSTONES {
            self.tombstones.clear();
            self.tombstone_floor = version - 1;
        }
        self.tombstones.insert(key, version);
    }

    /// An empty key list for the next record: the oldest record's, when the
    /// ring is full, so a notify allocates nothing in the steady state.
    pub fn spare_keys(&mut self) -> Vec<u32> {
        if self.records.len() >= RECORD_RING
            && let Some(old) = self.records.pop_front()
        {
            self.records_floor = old.version;
            let mut keys = old.changed;
            keys.clear();
            return keys;
        }
        Vec::new()
    }

    pub fn push_record(&mut self, mut record: Record) {
        if !record.applied.is_empty() {
            self.last_applied_version = record.version;
            // Moved, not copied: the log is where watchers read them.
            for a in std::mem::take(&mut record.applied) {
                self.applied_log_bytes += applied_bytes(&a);
                self.applied_log.push_back(a);
            }
            // Past its bounds, the log forgets only what the records' ring
            // no longer covers: a write no frame has read yet is never lost.
            while self.applied_log.len() > MAX_APPLIED_LOG
                || self.applied_log_bytes > MAX_APPLIED_LOG_BYTES
            {
                match self.applied_log.front() {
                    Some(a) if a.version <= self.records_floor => {}
                    _ => break,
                }
                let Some(old) = self.applied_log.pop_front() else {
                    break;
                };
                self.applied_log_bytes = self.applied_log_bytes.saturating_sub(applied_bytes(&old));
            }
        }
        if self.records.len() >= RECORD_RING
            && let Some(old) = self.records.pop_front()
        {
            self.records_floor = old.version;
        }
        self.records.push_back(record);
    }

    pub fn push_message(&mut self, mut m: LogMessage) {
        m.seq = self.next_message_seq;
        self.next_message_seq += 1;
        self.keep_message(m);
    }

    /// Keeps a numbered message, the oldest going when the log is full.
    fn keep_message(&mut self, m: LogMessage) {
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
            .flatten()
            .filter(|s| s.key.starts_with(prefix))
            .map(|s| (s.key.clone(), s.entry.clone()))
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

    /// What a mirror at `version`, with messages up to `message_seq` and
    /// histories as of `history_generation`, lacks of this state; `None` if
    /// nothing. Runs under the read lock the computation's next notify
    /// waits for, so it copies and nothing more.
    pub(crate) fn frame_since(
        &self,
        version: u64,
        message_seq: u64,
        history_generation: u64,
        rewinds: u64,
    ) -> Option<Frame> {
        let histories_changed = history_generation != self.history_generation;
        let rewound = rewinds != self.rewinds;
        if self.version == version
            && self.next_message_seq == message_seq + 1
            && !histories_changed
            && !rewound
        {
            return None;
        }
        let delta = if rewound {
            Delta {
                version: self.version,
                time: self.time,
                reset: true,
                changed: (self.entries.iter().flatten())
                    .map(|s| (s.key.clone(), s.entry.value.clone()))
                    .collect(),
                ..Delta::default()
            }
        } else {
            self.changes_since(version, "")
        };
        let histories = histories_changed.then(|| {
            (
                self.history_generation,
                self.history
                    .iter()
                    .map(|(k, s)| (k.clone(), s.clone()))
                    .collect(),
            )
        });
        Some(Frame {
            delta,
            messages: self.messages_after(if rewound { 0 } else { message_seq }),
            next_message_seq: self.next_message_seq,
            histories,
            rewinds: self.rewinds,
        })
    }

    /// Brings this copy (a server's mirror) up to the published state a
    /// frame was taken from, as one version step.
    ///
    /// Watch streams read the mirror, never the computation's published
    /// state: however many clients there are, the computation's memory is
    /// read once per frame.
    pub(crate) fn apply(&mut self, frame: Frame) {
        let Frame {
            delta: d,
            messages,
            next_message_seq,
            histories,
            rewinds,
        } = frame;
        if rewinds != self.rewinds {
            self.messages.clear();
            self.retired.clear();
            self.last_applied_version = 0;
            self.applied_log.clear();
            self.applied_log_bytes = 0;
            self.rewinds = rewinds;
        }
        if d.reset {
            self.entries.clear();
            self.ids.clear();
            self.free.clear();
            self.records.clear();
            // A whole state: its own record tells nothing of before it.
            self.records_floor = d.version;
            self.tombstones.clear();
            self.tombstone_floor = d.version.saturating_sub(1);
        }
        // Removals first: an id freed here may be reused below, which the
        // record's readers handle (an id reused belongs to a key changed since).
        let mut removed = Vec::with_capacity(d.removed.len());
        for k in d.removed {
            if let Some(&id) = self.ids.get(&k) {
                self.unset(id);
                self.free.push(id);
            }
            self.remember_removal(k.clone(), d.version);
            removed.push(k);
        }
        let mut changed = self.spare_keys();
        for (k, v) in d.changed {
            let id = match self.ids.get(&k) {
                Some(&id) => id,
                None => self.free.pop().unwrap_or(self.entries.len() as u32),
            };
            if !self.tombstones.is_empty() {
                self.tombstones.remove(&k);
            }
            self.set(id, &k, v, d.version);
            changed.push(id);
        }
        if let Some((generation, histories)) = histories {
            // (A rewind always brings the histories: its generation moved.)
            self.history = histories.into_iter().collect();
            self.history_generation = generation;
        }
        if d.version != self.version || !changed.is_empty() || !removed.is_empty() {
            self.push_record(Record {
                version: d.version,
                time: d.time,
                changed,
                removed,
                applied: d.applied,
            });
        }
        for m in messages {
            self.keep_message(m);
        }
        self.next_message_seq = next_message_seq;
        self.version = d.version;
        self.time = d.time;
    }

    /// The keys a record names as changed, as published now.
    pub fn changed_keys<'a>(&'a self, r: &'a Record) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        r.changed
            .iter()
            .filter_map(|&id| self.entries.get(id as usize)?.as_ref().map(|s| &s.key))
    }

    /// The keys a record names: changed (as published now) and removed.
    pub fn keys_of<'a>(&'a self, r: &'a Record) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        self.changed_keys(r).chain(&r.removed)
    }

    /// The histories of the keys with the prefix changed after version
    /// `after`, or `None` when the ring no longer covers it or names more
    /// keys than the map holds (then every history is as cheap).
    pub fn series_changed_since(
        &self,
        after: u64,
        prefix: &str,
    ) -> Option<Vec<(Arc<str>, SharedSeries)>> {
        let keys = self.keys_since(after, prefix)?;
        Some(
            keys.into_iter()
                .filter_map(|k| self.history.get(k).map(|s| (k.clone(), s.clone())))
                .collect(),
        )
    }

    /// The keys with the prefix that the ring records as changed or removed
    /// after version `after`, each once; `None` when the ring no longer
    /// covers `after` or names as many keys as the map holds (then scanning
    /// the map is as cheap). The walk stops there, so a reader far behind
    /// costs no more than one near the front.
    fn keys_since(&self, after: u64, prefix: &str) -> Option<Vec<&Arc<str>>> {
        self.records.front()?;
        if self.records_floor > after {
            return None;
        }
        let since = self.records.partition_point(|r| r.version <= after);
        let mut work = 0usize;
        let mut seen = rustc_hash::FxHashSet::default();
        let mut keys = Vec::new();
        for r in self.records.range(since..) {
            work += r.changed.len() + r.removed.len();
            if work >= self.ids.len() {
                return None;
            }
            for k in self.keys_of(r) {
                if k.starts_with(prefix) && seen.insert(&**k) {
                    keys.push(k);
                }
            }
        }
        Some(keys)
    }

    /// What changed after version `cursor`, for keys with the prefix. Sample
    /// series are returned as handles to copy after the lock is released.
    /// This runs under the read lock the computation's next notify waits
    /// for, so it does the least work it can and sorts nothing: the caller
    /// sorts with [`Delta::sort`] after releasing the lock.
    pub fn delta_since(&self, cursor: u64, prefix: &str) -> (Delta, Vec<(Arc<str>, SharedSeries)>) {
        let d = self.changes_since(cursor, prefix);
        let series = d
            .changed
            .iter()
            .map(|(k, _)| k)
            .chain(&d.removed)
            .filter_map(|k| self.history.get(k).map(|s| (k.clone(), s.clone())))
            .collect();
        (d, series)
    }

    /// The delta alone, without the changed keys' histories: a frame
    /// brings the mirror's histories over whole when their set changes,
    /// and looking each changed key's up (a hash of its name) under the
    /// lock the computation's next notify waits for cost a notify of 1,000
    /// keys several times its own time.
    fn changes_since(&self, cursor: u64, prefix: &str) -> Delta {
        let mut d = Delta {
            version: self.version,
            time: self.time,
            ..Delta::default()
        };
        if cursor >= self.version {
            return d;
        }
        if self.last_applied_version > cursor {
            let since = self.applied_log.partition_point(|a| a.version <= cursor);
            d.applied.extend(
                (self.applied_log.range(since..))
                    .filter(|a| a.key.starts_with(prefix))
                    .cloned(),
            );
        }
        // The ring's keys when it names fewer than the map holds; else scan
        // the map (a client far behind, or a run with few keys).
        if let Some(keys) = self.keys_since(cursor, prefix) {
            for k in keys {
                match self.entry(k) {
                    Some(e) => d.changed.push((k.clone(), e.value.clone())),
                    None => d.removed.push(k.clone()),
                }
            }
        } else if cursor >= self.tombstone_floor {
            for slot in self.entries.iter().flatten() {
                if slot.entry.version > cursor && slot.key.starts_with(prefix) {
                    d.changed.push((slot.key.clone(), slot.entry.value.clone()));
                }
            }
            d.removed = self
                .tombstones
                .iter()
                .filter(|(k, v)| **v > cursor && k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect();
        } else {
            d.reset = true;
            for slot in self.entries.iter().flatten() {
                if slot.key.starts_with(prefix) {
                    d.changed.push((slot.key.clone(), slot.entry.value.clone()));
                }
            }
        }
        d
    }
}

impl Delta {
    /// Orders keys as the wire promises (by key).
    pub fn sort(&mut self) {
        self.changed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.removed.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mirror's record is a frame's, spanning several versions: a watcher
    /// at the version the frame started from still gets the writes applied
    /// inside it. (It was told the ring did not cover it, and lost them: a
    /// recording whose first frame spanned a write had no mark for it.)
    #[test]
    fn a_frame_spanning_versions_still_brings_its_applied_writes() {
        let mut run = Published::new(16);
        let key: Arc<str> = Arc::from("gain");
        for v in 1..=5u64 {
            run.version = v;
            run.set(0, &key, Value::Float(v as f64), v);
            let applied = if v == 3 {
                vec![AppliedWrite {
                    write_id: 1,
                    key: "gain".into(),
                    value: Value::Float(2.0),
                    origin: "tester".into(),
                    version: 3,
                }]
            } else {
                Vec::new()
            };
            run.push_record(Record {
                version: v,
                time: 0.0,
                changed: vec![0],
                removed: Vec::new(),
                applied,
            });
        }
        let mut mirror = Published::new(16);
        let frame = run.frame_since(0, 0, 0, 0).expect("a frame");
        mirror.apply(frame);
        assert_eq!(mirror.records.len(), 1, "one record for the frame");
        let (d, _) = mirror.delta_since(0, "");
        assert_eq!(d.version, 5);
        assert_eq!(d.applied.len(), 1, "the write applied at v3");
        assert_eq!(d.changed.len(), 1);
    }

    /// A client further behind than the records' ring is still told of the
    /// writes applied since its cursor (it used to get none: silently).
    #[test]
    fn a_client_far_behind_the_ring_still_gets_the_writes() {
        let mut run = Published::new(16);
        let key: Arc<str> = Arc::from("gain");
        let n = (RECORD_RING * 2) as u64;
        for v in 1..=n {
            run.version = v;
            run.set(0, &key, Value::Float(v as f64), v);
            let applied = (v == 10)
                .then(|| AppliedWrite {
                    write_id: 1,
                    key: "gain".into(),
                    value: Value::Float(2.0),
                    origin: "tester".into(),
                    version: 10,
                })
                .into_iter()
                .collect();
            run.push_record(Record {
                version: v,
                time: 0.0,
                changed: vec![0],
                removed: Vec::new(),
                applied,
            });
        }
        assert!(run.records_floor > 10, "the ring no longer covers v10");
        let (d, _) = run.delta_since(5, "");
        assert_eq!(d.applied.len(), 1, "the write at v10");
        let (d, _) = run.delta_since(10, "");
        assert!(d.applied.is_empty(), "not again past it");
    }

    /// Writes larger than the log's byte bound, that no frame has read yet,
    /// are kept (they were dropped as they came in).
    #[test]
    fn a_write_larger_than_the_log_is_kept_while_the_ring_covers_it() {
        let mut run = Published::new(16);
        let big = Value::from(vec![0.5f64; (MAX_APPLIED_LOG_BYTES / 8) + 1024]);
        let write = |id: u64| AppliedWrite {
            write_id: id,
            key: "field".into(),
            value: big.clone(),
            origin: "tester".into(),
            version: 1,
        };
        run.version = 1;
        run.push_record(Record {
            version: 1,
            time: 0.0,
            changed: Vec::new(),
            removed: Vec::new(),
            applied: vec![write(1), write(2)],
        });
        let (d, _) = run.delta_since(0, "");
        assert_eq!(d.applied.len(), 2, "both, though over the log's bytes");
    }
}
