//! The pause gate and the run's life cycle: `wait()`, pause, resume,
//! step(n), terminate, and the Control RPC's actions.
//!
//! The gate is level-triggered state under one mutex (never an edge that
//! can be missed): every change is made and notified while holding it, and
//! `wait()` checks the state (and queued writes) under it before sleeping,
//! so no wake-up is lost.

use super::Inner;
use crate::model::{AppliedWrite, RunState, SeekTo, Status};
use crate::write_rules::PendingWrite;
use parking_lot::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Pause gate and life cycle.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    pub paused: bool,
    pub steps: u64,
    pub terminated: bool,
    /// The computation is blocked in `wait()` right now.
    pub held: bool,
    pub finished: bool,
    pub failed: Option<String>,
    /// A replay's seek, until the replay takes it.
    pub seek: Option<SeekTo>,
    /// Actions scheduled at a step (`--at-step N`).
    pub pause_at: Option<u64>,
    pub terminate_at: Option<u64>,
    /// Writes scheduled at a step, in arrival order.
    pub scheduled_writes: Vec<(u64, PendingWrite)>,
    /// An MPI job's ranks not yet at the wait() rank 0 holds in.
    pub ranks_behind: Vec<u32>,
}

impl Gate {
    /// The first step something is scheduled at (`u64::MAX`: none).
    fn due_at(&self) -> u64 {
        let writes = self.scheduled_writes.iter().map(|(at, _)| *at).min();
        [self.pause_at, self.terminate_at, writes]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Takes out what is due at `step`: the writes to apply (in arrival
    /// order), and arms a due pause or terminate.
    fn take_due(&mut self, step: u64) -> Vec<PendingWrite> {
        let mut due = Vec::new();
        if self.scheduled_writes.iter().any(|(at, _)| *at <= step) {
            let (now, later) = std::mem::take(&mut self.scheduled_writes)
                .into_iter()
                .partition(|(at, _)| *at <= step);
            self.scheduled_writes = later;
            due = now.into_iter().map(|(_, w)| w).collect();
        }
        if self.pause_at.is_some_and(|at| at <= step) {
            self.pause_at = None;
            self.paused = true;
            self.steps = 0;
        }
        if self.terminate_at.is_some_and(|at| at <= step) {
            self.terminate_at = None;
            self.terminated = true;
        }
        due
    }

    pub fn status(&self, step: u64) -> Status {
        let state = if self.failed.is_some() {
            RunState::Failed
        } else if self.finished {
            RunState::Finished
        } else if self.terminated {
            RunState::Terminating
        } else if self.paused {
            RunState::Paused
        } else {
            RunState::Running
        };
        Status {
            state,
            message: self.failed.clone().unwrap_or_default(),
            held: self.held,
            steps_pending: if state == RunState::Paused {
                self.steps
            } else {
                0
            },
            step,
            pause_at: self.pause_at,
            terminate_at: self.terminate_at,
            ranks_behind: self.ranks_behind.len() as u32,
            ranks_behind_first: self
                .ranks_behind
                .iter()
                .take(crate::model::RANKS_LISTED)
                .copied()
                .collect(),
        }
    }

    fn ended(&self) -> bool {
        self.terminated || self.finished || self.failed.is_some()
    }
}

/// What [`IDict::wait_timeout`](crate::IDict::wait_timeout) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Do the next step.
    Go,
    /// The run was terminated (or has ended): leave the loop.
    Stop,
    /// Still paused when the timeout passed.
    StillPaused,
}

/// A control action from a client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ControlAction {
    Pause,
    Resume,
    Step(u64),
    Terminate,
    /// Pause when the run has done this many steps.
    PauseAt(u64),
    /// Terminate when the run has done this many steps.
    TerminateAt(u64),
    /// Replays only.
    Seek(SeekTo),
}

/// Why a write was not scheduled.
#[derive(Debug)]
pub(crate) enum Unscheduled {
    Past(String),
    Full(String),
}

/// A control action that cannot apply in the run's state.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ControlRefused(pub String);

impl Inner {
    /// The body of every wait. `interrupt`, if any, is asked (with no lock
    /// held) before the first block and then about every `every` while
    /// blocked; when it says stop, the wait returns `None` at once.
    /// `applied`, if given, collects the writes applied.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<Instant>,
        mut interrupt: Option<(Duration, &mut dyn FnMut() -> bool)>,
        mut applied: Option<&mut Vec<AppliedWrite>>,
    ) -> Option<WaitOutcome> {
        self.claim_thread();
        let mut keep = |writes: Vec<AppliedWrite>| {
            if let Some(all) = applied.as_mut() {
                all.extend(writes);
            }
        };
        if self.pending_writes.load(Ordering::Acquire) > 0 {
            keep(self.apply_writes());
        }
        if !self.paused_hint.load(Ordering::Acquire)
            && self.passed.load(Ordering::Relaxed) < self.due_at.load(Ordering::Acquire)
        {
            return Some(if self.terminated.load(Ordering::Acquire) {
                WaitOutcome::Stop
            } else {
                self.passed.fetch_add(1, Ordering::AcqRel);
                WaitOutcome::Go
            });
        }
        #[cfg(test)]
        tests::after_looking_at_the_queue();
        let mut g = self.gate.lock();
        // What was scheduled for this step: its writes first (a run paused
        // here shows them), then its pause or terminate.
        let step = self.passed.load(Ordering::Acquire);
        if g.due_at() <= step {
            let due = g.take_due(step);
            self.sync_hints(&g);
            if !due.is_empty() {
                keep(MutexGuard::unlocked(&mut g, || self.apply_batch(due)));
            }
            self.bump();
        }
        let outcome = loop {
            if g.ended() {
                break Some(WaitOutcome::Stop);
            }
            if !g.paused {
                break Some(WaitOutcome::Go);
            }
            if g.steps > 0 {
                g.steps -= 1;
                // The last step re-arms the hold: status changes (steps_pending).
                self.bump();
                break Some(WaitOutcome::Go);
            }
            // Writes that arrived while held are applied at once. Checked
            // under the gate's lock, which `queue_write` notifies under.
            if self.pending_writes.load(Ordering::Acquire) > 0 {
                keep(MutexGuard::unlocked(&mut g, || self.apply_writes()));
                continue;
            }
            // Asked before `held` is first set, so a caller that must not
            // block where it stands can leave without the status changing.
            if let Some((_, check)) = interrupt.as_mut()
                && !MutexGuard::unlocked(&mut g, check)
            {
                break None;
            }
            if !g.held {
                g.held = true;
                self.bump();
            }
            let wake = match (deadline, &interrupt) {
                (Some(d), Some((every, _))) => Some(d.min(Instant::now() + *every)),
                (None, Some((every, _))) => Some(Instant::now() + *every),
                (d, None) => d,
            };
            match wake {
                Some(w) => {
                    if self.gate_cv.wait_until(&mut g, w).timed_out()
                        && deadline.is_some_and(|d| Instant::now() >= d)
                    {
                        break Some(WaitOutcome::StillPaused);
                    }
                }
                None => self.gate_cv.wait(&mut g),
            }
        };
        if outcome == Some(WaitOutcome::Go) {
            self.passed.fetch_add(1, Ordering::AcqRel);
        }
        let was_held = std::mem::replace(&mut g.held, false);
        drop(g);
        if was_held {
            self.bump();
        }
        outcome
    }

    /// Sets the ranks an MPI job's rank 0 is waiting for (idict-mpi).
    pub(crate) fn set_ranks_behind(&self, ranks: Vec<u32>) {
        let mut g = self.gate.lock();
        if g.ranks_behind != ranks {
            g.ranks_behind = ranks;
            drop(g);
            self.bump();
        }
    }

    /// The atomics `wait()` reads without the gate's lock, from the gate.
    fn sync_hints(&self, g: &Gate) {
        self.paused_hint.store(g.paused, Ordering::Release);
        if g.terminated {
            self.terminated.store(true, Ordering::Release);
        }
        self.due_at.store(g.due_at(), Ordering::Release);
    }

    /// Schedules `write` for the wait() at which the run has done `step`
    /// steps; its place among the scheduled writes. Refused when that step
    /// is past, or too many are scheduled.
    pub(crate) fn schedule_write(
        &self,
        step: u64,
        write: PendingWrite,
    ) -> Result<usize, Unscheduled> {
        let mut g = self.gate.lock();
        self.refuse_past(step).map_err(|e| Unscheduled::Past(e.0))?;
        if g.scheduled_writes.len() >= crate::tuning::MAX_PENDING_WRITES {
            return Err(Unscheduled::Full(format!(
                "{} writes are scheduled already; retry when some have been applied",
                g.scheduled_writes.len()
            )));
        }
        g.scheduled_writes.push((step, write));
        let position = g.scheduled_writes.len();
        self.sync_hints(&g);
        drop(g);
        self.bump();
        Ok(position)
    }

    fn refuse_past(&self, step: u64) -> Result<(), ControlRefused> {
        let done = self.passed.load(Ordering::Acquire);
        if step < done {
            return Err(ControlRefused(format!(
                "step {step} is past: the run has done {done} steps"
            )));
        }
        Ok(())
    }

    /// Wakes a `wait()` so it looks at the gate (and queued writes) again.
    pub(crate) fn wake_waiter(&self) {
        let _g = self.gate.lock();
        self.gate_cv.notify_all();
    }

    pub(crate) fn pause(&self) {
        self.control(|g| {
            g.paused = true;
            g.steps = 0;
        });
    }

    pub(crate) fn resume(&self) {
        self.control(|g| {
            g.paused = false;
            g.steps = 0;
        });
    }

    pub(crate) fn step(&self, n: u64) {
        self.control(|g| {
            if !g.paused {
                g.paused = true;
                g.steps = 0;
            }
            g.steps = g.steps.saturating_add(n);
        });
    }

    pub(crate) fn terminate(&self) {
        self.control(|g| g.terminated = true);
    }

    fn control(&self, f: impl FnOnce(&mut Gate)) {
        let mut g = self.gate.lock();
        f(&mut g);
        self.sync_hints(&g);
        self.gate_cv.notify_all();
        drop(g);
        self.bump();
    }

    /// Marks the run Finished (the final update is being published).
    pub(crate) fn mark_finished(&self) {
        let mut g = self.gate.lock();
        g.finished = true;
        self.ended.store(true, Ordering::Release);
        self.gate_cv.notify_all();
    }

    /// Applies the server's control actions (Control RPC).
    pub fn control_action(&self, action: ControlAction) -> Result<Status, ControlRefused> {
        {
            let g = self.gate.lock();
            let status = g.status(self.passed.load(Ordering::Acquire));
            if status.state.is_terminal() {
                return match action {
                    ControlAction::Terminate => Ok(status),
                    _ => Err(ControlRefused(format!(
                        "the run is {}: it cannot be paused, resumed or stepped",
                        status.state
                    ))),
                };
            }
        }
        match action {
            ControlAction::Pause => self.pause(),
            ControlAction::Resume => self.resume(),
            ControlAction::Step(n) => self.step(n),
            ControlAction::Terminate => self.terminate(),
            ControlAction::PauseAt(step) => {
                self.refuse_past(step)?;
                self.control(|g| g.pause_at = Some(step));
            }
            ControlAction::TerminateAt(step) => {
                self.refuse_past(step)?;
                self.control(|g| g.terminate_at = Some(step));
            }
            ControlAction::Seek(to) => {
                if self.options.replay_of.is_none() {
                    return Err(ControlRefused(
                        "only a replay (idict replay FILE) can seek: this run is live".into(),
                    ));
                }
                self.control(|g| g.seek = Some(to));
            }
        }
        Ok(self.status())
    }

    /// The seek a client asked for since the last call, if any (replays).
    pub fn take_seek(&self) -> Option<SeekTo> {
        self.gate.lock().seek.take()
    }
}

#[cfg(test)]
mod tests {
    use crate::IDict;
    use parking_lot::Mutex;
    use std::sync::mpsc;
    use std::time::Duration;

    type Hook = Box<dyn FnOnce() + Send>;
    /// Runs once, on the waiting thread, after wait() has looked at the
    /// write queue and before it takes the gate: a write queued here must
    /// still be seen before wait() sleeps.
    static BEFORE_SLEEP: Mutex<Option<Hook>> = Mutex::new(None);

    pub(crate) fn after_looking_at_the_queue() {
        let hook = BEFORE_SLEEP.lock().take();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// A write queued between wait()'s first look at the queue and its sleep
    /// is applied at once: wait() looks again under the gate's lock before
    /// sleeping, and `queue_write` notifies under that lock. (It used to
    /// sleep on it, and the write waited for a resume that might never come.)
    #[test]
    fn a_write_queued_just_before_wait_sleeps_wakes_it() {
        let d = IDict::builder("window").start_paused(true).build();
        d.writable("dt", 0.0);
        let writer = d.clone();
        *BEFORE_SLEEP.lock() = Some(Box::new(move || {
            writer
                .inner
                .queue_write("dt", 1.0.into(), "test".into())
                .expect("queued");
        }));
        let (tx, rx) = mpsc::channel();
        let waiter = d.clone();
        std::thread::spawn(move || {
            // Paused: it sleeps until woken, applying queued writes.
            let _ = waiter.wait_timeout(Duration::from_secs(30));
        });
        let applied = d.clone();
        std::thread::spawn(move || {
            while applied.inner.pending_writes() > 0
                || applied.lock().get("dt").and_then(|v| v.as_f64()) != Some(1.0)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "the write queued in the window was not applied: its wake-up was lost"
        );
        d.terminate();
    }
}
