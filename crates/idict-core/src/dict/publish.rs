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
//!    slow (`QUIET_SECS` since the previous notify) and few samples wait
//!    (`SMALL_MOVE`), the batch is full (`BATCH_VERSIONS`), it is the final
//!    update, or nothing is waiting (then moving costs one atomic store).
//! 2. Moving pushes each waiting sample into its history and then stores
//!    `samples_through = upto`: every sample of every version up to it is
//!    in the histories.
//! 3. If a run goes quiet with samples waiting (nothing staged for twice
//!    its last interval, at most `MAX_QUIET_WAIT_SECS`), the server's
//!    dispatcher moves them (`move_staged_if_quiet`); `fail` and readers of whole
//!    histories move them too (`move_staged_now`).
//! 4. Watchers send samples only up to `samples_through`, so none is
//!    skipped, and a terminal run always reaches `samples_through ==
//!    version` (whatever was staged last), so every watch can end.

use super::callbacks::UpdateEvent;
use super::{Inner, UpdateError};
use crate::history::SharedSeries;
use crate::history::{BoundedSeries, Sample};
use crate::model::{Level, LogMessage};
use crate::published::{Published, Record};
use crate::spin;
use crate::staged::Staged;
use crate::triggers::Fired;
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What [`Inner::move_staged_if_quiet`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagedSamples {
    None,
    /// Samples are staged by a run still updating: look again soon.
    Waiting,
    Moved,
}

/// A recorded update to publish as it was (replays only): its own version
/// and time, and its scalar samples at their own versions, instead of one
/// sample per changed scalar at a new version.
pub struct Recorded {
    pub version: u64,
    pub time: f64,
    /// Each key's samples, by version (some may be of versions already
    /// published: a recorder's samples lag its state).
    pub samples: Vec<(Arc<str>, Vec<Sample>)>,
    /// Every recorded sample up to this version is in the histories now.
    pub through: u64,
}

impl Inner {
    /// Publishes one version; returns it, and the event for the callbacks
    /// if there are any (they run after, with no lock held). A `recorded`
    /// update keeps its version (past the current one), time and samples.
    pub(crate) fn publish(
        &self,
        last: bool,
        recorded: Option<Recorded>,
    ) -> Result<(u64, Option<UpdateEvent>, Vec<Fired>), UpdateError> {
        self.claim_thread();
        if self.ended.load(Ordering::Acquire) {
            let g = self.gate.lock();
            return Err(match &g.failed {
                Some(why) => UpdateError::Failed(why.clone()),
                None => UpdateError::Finished,
            });
        }
        let time = recorded.as_ref().map_or_else(|| self.elapsed(), |r| r.time);
        let budget = self.options.history_budget_bytes;
        let with_event = self.callbacks.any();
        let mut w = self.data.lock();
        if self.triggers_generation.load(Ordering::Acquire) != w.triggers.generation {
            w.triggers.sync(&self.triggers.lock());
        }
        let mut p = spin::write(&self.published);
        let version = match &recorded {
            None => p
                .version
                .checked_add(1)
                .ok_or(UpdateError::VersionsExhausted)?,
            Some(r) if r.version > p.version => r.version,
            Some(r) => return Err(UpdateError::NotAfter(r.version, p.version)),
        };
        let mut staged = self.staged.lock();
        p.version = version;
        p.time = time;
        // Triggers read this update's values before they are published,
        // on this thread: a pause they ask for holds the next wait().
        let fired = if recorded.is_none() && !w.triggers.is_empty() {
            let super::Working {
                ids,
                slots,
                key_generation,
                triggers,
                ..
            } = &mut *w;
            triggers.evaluate(
                *key_generation,
                |key| ids.get(key).copied(),
                |id| {
                    let slot = slots.get(id as usize)?.as_ref()?;
                    if slot.dirty {
                        slot.value.as_scalar()
                    } else {
                        None
                    }
                },
                version,
            )
        } else {
            Vec::new()
        };
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
            if recorded.is_none()
                && let Some(x) = slot.value.as_scalar()
            {
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
        if let Some(r) = recorded {
            // Straight into the histories: a replay stages nothing.
            self.push_recorded(&mut p, r.samples);
            drop(p);
            self.samples_through
                .store(r.through.min(version), Ordering::Release);
        } else {
            drop(p);
            if staged.staged_version(version, time) || last {
                self.move_staged(&mut staged);
            }
        }
        drop(staged);
        if last {
            self.mark_finished();
        }
        self.bump();
        Ok((version, event, fired))
    }

    /// Pushes recorded samples straight into the histories.
    fn push_recorded(&self, p: &mut Published, samples: Vec<(Arc<str>, Vec<Sample>)>) {
        let budget = self.options.history_budget_bytes;
        for (key, samples) in samples {
            let series = p.history_for(&key, || {
                Arc::new(Mutex::new(BoundedSeries::sharing(
                    budget,
                    self.pin_pool.clone(),
                )))
            });
            let mut s = spin::lock(&series);
            for x in samples {
                s.push_pinned(x, || self.pins.oldest(self.elapsed_ms()));
            }
        }
    }

    /// Replays only: samples of versions already published (the recorder's
    /// samples lag its state), complete through `through`.
    pub fn add_recorded_samples(&self, samples: Vec<(Arc<str>, Vec<Sample>)>, through: u64) {
        let mut p = spin::write(&self.published);
        self.push_recorded(&mut p, samples);
        let through = through.min(p.version);
        drop(p);
        self.samples_through.store(through, Ordering::Release);
        self.bump();
    }

    /// Replays only: the run ends at the version it has (a recording's
    /// final update came with no version of its own to publish).
    pub fn finish_here(&self) {
        self.samples_through
            .store(self.published.read().version, Ordering::Release);
        self.mark_finished();
        self.bump();
    }

    /// Replays only: forgets every key, sample, record and message, and
    /// goes back to `version` (lower than now), as if the run had just
    /// reached it with nothing published. Watchers see the rewind and
    /// start again from a whole state.
    pub fn rewind(&self, version: u64) {
        let mut w = self.data.lock();
        let mut p = spin::write(&self.published);
        let mut staged = self.staged.lock();
        *w = super::Working::default();
        *staged = Staged::default();
        p.rewind(version);
        self.samples_through.store(version, Ordering::Release);
        drop((w, p, staged));
        self.bump();
    }

    /// Brings a server's mirror up to the published state.
    pub fn refresh_mirror(&self, mirror: &RwLock<Published>) {
        let mut m = mirror.write();
        let frame = self.published.read().frame_since(
            m.version,
            m.next_message_seq - 1,
            m.history_generation,
            m.rewinds,
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
    pub fn samples_through(&self) -> u64 {
        self.samples_through.load(Ordering::Acquire)
    }

    /// After a watcher whose cursor was `gone` left: if it was the one
    /// holding history back, thins what no remaining watcher needs, so a
    /// lagging watcher's memory comes back even while the run is paused.
    /// `histories` lists the run's histories (a server lists them from its
    /// mirror); it is called only when there is history to give back.
    pub fn release_history(&self, gone: u64, histories: impl FnOnce() -> Vec<SharedSeries>) {
        let oldest = self.pins.oldest(self.elapsed_ms());
        if oldest <= gone {
            return;
        }
        let series = histories();
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
            for &x in samples {
                s.push_pinned(x, || self.pins.oldest(self.elapsed_ms()));
            }
        });
        self.samples_through.store(through, Ordering::Release);
    }

    /// Moves the staged samples of a run gone quiet (the server's dispatcher
    /// calls this between updates), and tells watchers. Never waits for the
    /// computation: while it is staging, it moves them itself.
    pub fn move_staged_if_quiet(&self) -> StagedSamples {
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
            drop(staged);
            // Watchers are told: the dispatcher finds nothing left to move,
            // and a run that has ended sends no more news of its own.
            self.bump();
        }
    }

    /// A log message now. A replay's are on the recorded run's clock, as
    /// its recorded messages are (the replay's own seconds beside them read
    /// as a second clock: "[7.13s v601]" after "[3.00s v600]").
    pub(crate) fn log(&self, level: Level, text: String) {
        let time = match self.options.replay_of {
            Some(_) => self.published.read().time,
            None => self.elapsed(),
        };
        let time = if time.is_finite() { time } else { 0.0 };
        self.log_at(level, text, time, None);
    }

    /// A log message at a given run time and version (default: the
    /// published one): a replay's, the recorded ones.
    pub fn log_at(&self, level: Level, text: String, time: f64, version: Option<u64>) {
        self.log_message(level, text, time, version, None);
    }

    /// A log message, a trigger's firing if `trigger` is set.
    pub fn log_message(
        &self,
        level: Level,
        text: String,
        time: f64,
        version: Option<u64>,
        trigger: Option<crate::model::TriggerFiring>,
    ) {
        {
            let mut p = self.published.write();
            let version = version.unwrap_or(p.version);
            p.push_message(LogMessage {
                seq: 0,
                level,
                text,
                time,
                version,
                trigger,
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
                trigger: None,
            });
        }
        self.bump();
        self.callbacks.clear();
    }
}

#[cfg(test)]
mod tests {
    use crate::IDict;

    #[test]
    fn samples_moved_by_reading_the_histories_are_news_for_watchers() {
        let d = IDict::new("staged");
        let mut i = 0.0;
        // Updates a few microseconds apart leave their samples staged in a
        // batch (retried: a stall of 100 us between two moves them at once).
        for _ in 0..1000 {
            for _ in 0..2 {
                d.lock().insert("x", i);
                d.notify_update().expect("notify");
                i += 1.0;
            }
            if d.inner.samples_through() < d.inner.published.read().version {
                break;
            }
        }
        let version = d.inner.published.read().version;
        assert!(
            d.inner.samples_through() < version,
            "no samples stayed staged"
        );
        let epoch = d.inner.epoch();
        let history = d.history("x").expect("a history");
        assert_eq!(history.versions.last().copied(), Some(version));
        assert!(
            d.inner.epoch() > epoch,
            "samples moved into the histories without news: a watcher waiting for news never gets them"
        );
    }
}
