//! Publishing: `notify_update()` turns the working map's changes into one
//! new version of the published state, stages the scalar samples, and
//! tells the server. Also the log, `fail`, and how the server's mirror and
//! the histories catch up.
//!
//! # Staged samples and `samples_through`
//! A fast run stages its samples in `Staged` (memory only its own thread
//! touches) and moves them into the shared histories in batches; see
//! `crate::staged`. The protocol, in one place:
//! 1. Every notify calls `Staged::staged_version(version)`, which records the
//!    version as staged (`upto`) and says whether to move now: the run is
//!    quiet (`QUIET_SECS` since the previous notify), the batch is full
//!    (`BATCH_VERSIONS`), it is the final update, or nothing is waiting
//!    (then moving costs one atomic store).
//! 2. Moving pushes each waiting sample into its history and then stores
//!    `samples_through = upto`: every sample of every version up to it is
//!    in the histories.
//! 3. If a run goes quiet with samples waiting, the server's dispatcher
//!    moves them (`move_staged_if_quiet`); `fail` and readers of whole
//!    histories move them too (`move_staged_now`).
//! 4. Watchers send samples only up to `samples_through`, so none is
//!    skipped, and a terminal run always reaches `samples_through ==
//!    version` (whatever was staged last), so every watch can end.

use super::callbacks::UpdateEvent;
use super::{Inner, UpdateError};
use crate::history::{BoundedSeries, Sample};
use crate::model::{Level, LogMessage};
use crate::published::{Published, Record, SharedSeries};
use crate::spin;
use crate::staged::Staged;
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What [`Inner::move_staged_if_quiet`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StagedSamples {
    None,
    /// Samples are staged by a run still updating: look again soon.
    Waiting,
    Moved,
}

impl Inner {
    /// Publishes one version; returns it, and the event for the callbacks
    /// if there are any (they run after, with no lock held).
    pub(super) fn publish(&self, last: bool) -> Result<(u64, Option<UpdateEvent>), UpdateError> {
        self.claim_thread();
        if self.ended.load(Ordering::Acquire) {
            let g = self.gate.lock();
            return Err(match &g.failed {
                Some(why) => UpdateError::Failed(why.clone()),
                None => UpdateError::Finished,
            });
        }
        let time = self.elapsed();
        let budget = self.options.history_budget_bytes;
        let with_event = self.callbacks.any();
        let mut w = self.data.lock();
        let mut p = spin::write(&self.published);
        let Some(version) = p.version.checked_add(1) else {
            return Err(UpdateError::VersionsExhausted);
        };
        let mut staged = self.staged.lock();
        p.version = version;
        p.time = time;
        let super::Working {
            slots,
            free,
            touched,
            removed: removed_ids,
            applied: applied_now,
            ..
        } = &mut *w;
        let mut removed = Vec::with_capacity(removed_ids.len());
        for (key, id) in removed_ids.drain(..) {
            if p.unset(id) {
                p.remember_removal(key.clone(), version);
                removed.push(key);
            }
            // The id is free once its removal is published.
            free.push(id);
        }
        let mut changed = p.spare_keys();
        let mut changed_keys = Vec::new();
        for id in touched.drain(..) {
            // A key removed after it changed has no slot any more.
            let Some(Some(slot)) = slots.get_mut(id as usize) else {
                continue;
            };
            slot.dirty = false;
            if let Some(x) = slot.value.as_scalar() {
                let position = *slot.staged.get_or_insert_with(|| {
                    staged.position(&slot.key, || {
                        p.history_for(&slot.key, || {
                            Arc::new(Mutex::new(BoundedSeries::sharing(
                                budget,
                                self.pin_pool.clone(),
                            )))
                        })
                    })
                });
                let sample = Sample {
                    version,
                    time,
                    value: x,
                };
                staged.stage(position, sample);
            }
            if !p.tombstones.is_empty() {
                p.tombstones.remove(&slot.key);
            }
            p.set(id, &slot.key, slot.value.clone(), version);
            changed.push(id);
            if with_event {
                changed_keys.push(slot.key.clone());
            }
        }
        if !removed.is_empty() {
            // Removed and inserted again before this notify: changed, not removed.
            removed.retain(|k| !p.ids.contains_key(k));
            // Removed keys' histories are kept for a while (a key may come
            // back), the oldest freed past a bound.
            for k in &removed {
                for gone in p.retire_history(k.clone()) {
                    staged.forget(&gone);
                }
            }
        }
        let mut applied = std::mem::take(applied_now);
        drop(w);
        for a in &mut applied {
            a.version = version;
        }
        self.writes_published(&applied);
        let event = with_event.then(|| UpdateEvent {
            version,
            time,
            changed: changed_keys,
            removed: removed.clone(),
            applied: applied.clone(),
            last,
        });
        p.push_record(Record {
            version,
            time,
            changed,
            removed,
            applied,
        });
        drop(p);
        if staged.staged_version(version, time) || last {
            self.move_staged(&mut staged);
        }
        drop(staged);
        if last {
            self.mark_finished();
        }
        self.bump();
        Ok((version, event))
    }

    /// Brings a server's mirror up to the published state.
    pub(crate) fn refresh_mirror(&self, mirror: &RwLock<Published>) {
        let mut m = mirror.write();
        let frame = self.published.read().frame_since(
            m.version,
            m.next_message_seq - 1,
            m.history_generation,
        );
        if let Some(frame) = frame {
            m.apply(frame);
        }
    }

    /// A restored run's histories are complete through its version.
    pub(crate) fn restored_through(&self, version: u64) {
        self.samples_through.store(version, Ordering::Release);
    }

    /// Every sample up to this version is in the histories.
    pub(crate) fn samples_through(&self) -> u64 {
        self.samples_through.load(Ordering::Acquire)
    }

    /// After a watcher whose cursor was `gone` left: if it was the one
    /// holding history back, thins what no remaining watcher needs, so a
    /// lagging watcher's memory comes back even while the run is paused.
    pub(crate) fn release_history(&self, gone: u64) {
        let oldest = self.pins.oldest(self.elapsed_ms());
        if oldest <= gone {
            return;
        }
        let series: Vec<SharedSeries> = self.published.read().history.values().cloned().collect();
        // A run still updating thins on its next push (a large thinning
        // here would hold locks it needs); a quiet one is thinned now.
        let updating = self
            .staged
            .try_lock()
            .is_none_or(|s| !s.is_quiet(self.elapsed()));
        for s in series {
            if updating {
                s.lock().thin_soon();
            } else {
                s.lock().release(oldest);
            }
        }
    }

    /// Moves the staged samples into the histories and says through which
    /// version they are complete.
    fn move_staged(&self, staged: &mut Staged) {
        let through = staged.move_all(|series, samples| {
            let mut s = spin::lock(series);
            for x in samples.drain(..) {
                s.push_pinned(x, || self.pins.oldest(self.elapsed_ms()));
            }
        });
        self.samples_through.store(through, Ordering::Release);
    }

    /// Moves the staged samples of a run gone quiet (the server's dispatcher
    /// calls this between updates), and tells watchers. Never waits for the
    /// computation: while it is staging, it moves them itself.
    pub(crate) fn move_staged_if_quiet(&self) -> StagedSamples {
        let Some(mut staged) = self.staged.try_lock() else {
            return StagedSamples::Waiting;
        };
        if !staged.needs_move() {
            return StagedSamples::None;
        }
        if !staged.is_quiet(self.elapsed()) {
            return StagedSamples::Waiting;
        }
        self.move_staged(&mut staged);
        drop(staged);
        self.bump();
        StagedSamples::Moved
    }

    /// Moves all staged samples, waiting for the computation if need be
    /// (before reading the histories whole).
    pub(crate) fn move_staged_now(&self) {
        let mut staged = self.staged.lock();
        if staged.needs_move() {
            self.move_staged(&mut staged);
        }
    }

    pub(crate) fn log(&self, level: Level, text: String) {
        let time = self.elapsed();
        {
            let mut p = self.published.write();
            let version = p.version;
            p.push_message(LogMessage {
                seq: 0,
                level,
                text,
                time,
                version,
            });
        }
        self.bump();
    }

    /// Marks the run Failed (once), publishes its last samples and the
    /// reason, and drops the callbacks. Bounded waits: a thread that
    /// panicked mid-notify may still hold a lock.
    pub(crate) fn fail(&self, message: String) {
        {
            let Some(mut g) = self.gate.try_lock_for(Duration::from_millis(200)) else {
                return;
            };
            if g.failed.is_some() || g.finished {
                return;
            }
            g.failed = Some(message.clone());
            self.terminated.store(true, Ordering::Release);
            self.ended.store(true, Ordering::Release);
            self.gate_cv.notify_all();
        }
        // The run's last samples go into its history: a watcher's final
        // message carries them. (If the lock is held, the server's
        // dispatcher moves them later.)
        if let Some(mut staged) = self.staged.try_lock_for(Duration::from_millis(200))
            && staged.needs_move()
        {
            self.move_staged(&mut staged);
        }
        if let Some(mut p) = self.published.try_write_for(Duration::from_millis(200)) {
            let version = p.version;
            let time = self.elapsed();
            p.push_message(LogMessage {
                seq: 0,
                level: Level::Error,
                text: message,
                time,
                version,
            });
        }
        self.bump();
        self.callbacks.clear();
    }
}
