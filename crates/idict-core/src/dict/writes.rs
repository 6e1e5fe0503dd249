//! Clients' steering writes: checked against the key's rule, queued in
//! arrival order, applied only at the computation's safe points (`wait()`,
//! `sync()`), and published with its next update.
//!
//! Everything is bounded: the queue (`MAX_PENDING_WRITES`) and what has been
//! applied but not yet published (`MAX_UNPUBLISHED_WRITES` writes and
//! `MAX_UNPUBLISHED_WRITE_BYTES` bytes), since a paused run applies each
//! write at once but publishes them only when it next updates.

use super::{IDict, Inner};
use crate::model::{AppliedWrite, RunState};
use crate::tuning::{MAX_UNPUBLISHED_WRITE_BYTES, MAX_UNPUBLISHED_WRITES};
use crate::value::Value;
use crate::write_rules::{PendingWrite, Rejected, Validator, WritableSpec};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The rule of a writable key, refined with builder-style calls that take
/// effect at once: `idict.writable("dt", 0.01).range(0.0, 0.25);`
pub struct Writable<'a> {
    idict: &'a IDict,
    key: String,
}

impl<'a> Writable<'a> {
    pub(crate) fn declare(idict: &'a IDict, key: String, initial: Value) -> Self {
        idict
            .inner
            .writable
            .write()
            .insert(key.clone(), WritableSpec::for_initial(&initial));
        idict.inner.data.lock().insert(&key, initial);
        Writable { idict, key }
    }

    fn edit(self, f: impl FnOnce(&mut WritableSpec)) -> Self {
        if let Some(spec) = self.idict.inner.writable.write().get_mut(&self.key) {
            f(spec);
        }
        self
    }
    /// Inclusive lower bound for a numeric key.
    pub fn min(self, min: f64) -> Self {
        self.edit(|s| s.min = Some(min))
    }
    /// Inclusive upper bound for a numeric key.
    pub fn max(self, max: f64) -> Self {
        self.edit(|s| s.max = Some(max))
    }
    /// Inclusive bounds for a numeric key.
    pub fn range(self, min: f64, max: f64) -> Self {
        self.min(min).max(max)
    }
    /// A check of its own; `Err(reason)` refuses the write with that reason.
    pub fn validate(
        self,
        f: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        let v: Validator = Arc::new(f);
        self.edit(|s| s.validator = Some(v))
    }
    /// The rule in words, shown to clients instead of the generated one.
    pub fn describe(self, text: impl Into<String>) -> Self {
        let text = text.into();
        self.edit(|s| s.description = text)
    }
}

/// Why a client's write was not queued.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteRefused {
    #[error("{0}")]
    NotWritable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotRunning(String),
    /// Too many writes queued or not yet published: RESOURCE_EXHAUSTED.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Removed(String),
    /// Scheduled at a step the run has passed: FAILED_PRECONDITION.
    #[error("{0}")]
    Past(String),
}

impl Inner {
    /// Queues a client's write after checking it against the key's rule.
    pub fn queue_write(
        &self,
        key: &str,
        value: Value,
        origin: String,
    ) -> Result<(u64, usize), WriteRefused> {
        self.queue_write_at(key, value, origin, None)
    }

    /// Like `queue_write`; with `at_step`, the write is applied at the
    /// `wait()` where the run has done that many steps, not the next one
    /// (its position is then its place among the writes scheduled).
    pub fn queue_write_at(
        &self,
        key: &str,
        value: Value,
        origin: String,
        at_step: Option<u64>,
    ) -> Result<(u64, usize), WriteRefused> {
        let checked = {
            let specs = self.writable.read();
            let spec = specs.get(key).ok_or_else(|| {
                let mut names: Vec<_> = specs.keys().map(String::as_str).collect();
                names.sort_unstable();
                // A run may declare thousands: the message names a few.
                const NAMED: usize = 20;
                let more = names.len().saturating_sub(NAMED);
                names.truncate(NAMED);
                WriteRefused::NotWritable(if names.is_empty() {
                    format!("key '{key}' is not writable: this run declares no writable keys")
                } else if more > 0 {
                    format!(
                        "key '{key}' is not writable; writable keys: {} and {more} more",
                        names.join(", ")
                    )
                } else {
                    format!(
                        "key '{key}' is not writable; writable keys: {}",
                        names.join(", ")
                    )
                })
            })?;
            spec.check(key, value)
                .map_err(|Rejected(why)| WriteRefused::Invalid(why))?
        };
        if self.published.read().tombstones.contains_key(key) {
            return Err(WriteRefused::Removed(format!(
                "key '{key}' was removed by the run; it takes no writes until it is published again"
            )));
        }
        let status = self.status();
        if status.state.is_terminal() || status.state == RunState::Terminating {
            return Err(WriteRefused::NotRunning(format!(
                "the run is {}: writes are no longer applied",
                status.state
            )));
        }
        let bytes = checked.approx_wire_bytes() + key.len();
        let writes = self.unpublished_writes.load(Ordering::Acquire);
        let held = self.unpublished_bytes.load(Ordering::Acquire);
        if writes >= MAX_UNPUBLISHED_WRITES || held + bytes > MAX_UNPUBLISHED_WRITE_BYTES {
            return Err(WriteRefused::Busy(format!(
                "{writes} writes ({} KiB) are waiting for the run's next update, which publishes them; retry after it",
                held >> 10
            )));
        }
        if let Some(step) = at_step {
            let write = self.writes.lock().allocate(key.to_owned(), checked, origin);
            let id = write.id;
            let position = self.schedule_write(step, write).map_err(|e| match e {
                super::pause_gate::Unscheduled::Past(why) => WriteRefused::Past(why),
                super::pause_gate::Unscheduled::Full(why) => WriteRefused::Busy(why),
            })?;
            self.unpublished_writes.fetch_add(1, Ordering::AcqRel);
            self.unpublished_bytes.fetch_add(bytes, Ordering::AcqRel);
            return Ok((id, position));
        }
        let mut q = self.writes.lock();
        let r = q
            .push(key.to_owned(), checked, origin)
            .ok_or_else(|| WriteRefused::Busy("too many writes waiting; retry later".into()))?;
        self.unpublished_writes.fetch_add(1, Ordering::AcqRel);
        self.unpublished_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.pending_writes.store(q.len(), Ordering::Release);
        drop(q);
        // A run held in wait() applies the write at once.
        self.wake_waiter();
        Ok(r)
    }

    /// Applies the queued writes to the working map, in arrival order.
    pub(crate) fn apply_writes(&self) -> Vec<AppliedWrite> {
        let batch = {
            let mut q = self.writes.lock();
            self.pending_writes.store(0, Ordering::Release);
            q.take_all()
        };
        self.apply_batch(batch)
    }

    /// Applies `batch` to the working map, in its order.
    pub(crate) fn apply_batch(
        &self,
        batch: impl IntoIterator<Item = PendingWrite, IntoIter: ExactSizeIterator>,
    ) -> Vec<AppliedWrite> {
        let batch = batch.into_iter();
        if batch.len() == 0 {
            return Vec::new();
        }
        let mut w = self.data.lock();
        let mut out = Vec::with_capacity(batch.len());
        for pw in batch {
            let a = pw.into_applied();
            w.insert(&a.key, a.value.clone());
            w.applied.push(a.clone());
            out.push(a);
        }
        out
    }

    /// The applied writes just published no longer count against the bound.
    pub(crate) fn writes_published(&self, applied: &[AppliedWrite]) {
        if applied.is_empty() {
            return;
        }
        let bytes: usize = applied
            .iter()
            .map(|a| a.value.approx_wire_bytes() + a.key.len())
            .sum();
        crate::counters::sub_saturating(&self.unpublished_writes, applied.len());
        crate::counters::sub_saturating(&self.unpublished_bytes, bytes);
    }
}
