//! `IDict`: the dictionary a computation embeds. The computation writes keys
//! under `lock()`, publishes them with `notify_update()`, and calls `wait()`
//! at its safe point, where it may be paused, stepped or terminated and
//! where clients' steering writes are applied.
//!
//! One concern per module:
//! - `working`: the computation's map and its guard (and the check that a
//!   thread holding the guard does not call back in);
//! - `pause_gate`: pause, step, resume, terminate, and `wait()`;
//! - `publish`: `notify_update()`, staged samples, the mirror, the log, `fail`;
//! - `callbacks`: what runs after each update, with no lock held;
//! - `writes`: the run's side of steering: declaring writable keys, taking
//!   clients' writes (checked against `crate::write_rules`), applying them
//!   at safe points, bounded;
//! - `failure`: a panic in the run's thread marks the run Failed.
//!
//! # Lock order
//! Every lock of a run, and of its server, in the one order a thread that
//! holds more than one takes them:
//!
//! 1. `data` (the working map, held by a [`DictGuard`]);
//! 2. `published` (the computation's published state);
//! 3. `staged` (samples on their way into the histories);
//! 4. a history's mutex (one at a time);
//! 5. `pins` (watchers' sample cursors; taken inside a history's mutex when
//!    a push asks how far the pins reach).
//!
//! The server's `mirror` (its copy of `published`) is taken before
//! `published` (a refresh holds the mirror to write it and reads
//! `published` for the frame) and before a history's mutex; never after
//! either.
//!
//! `triggers` (their definitions) is taken last: under `data` by a
//! notify whose triggers changed, alone otherwise.
//!
//! Taken alone, with nothing held and nothing taken under them: `gate`
//! (then only `writes`' atomics), `writes`, `writable` (the declared rules:
//! a reader copies what it needs and lets go), the replay `timeline`, and
//! the callbacks' list (copied out; callbacks then run with no lock held).
//!
//! A thread holding `data` may not call `notify_update`, `wait`, `sync`,
//! `writable` or `lock`: that is reported (an error or a panic that says
//! so), never a hang. Server tasks hold `published` (for reading) and a
//! history's mutex for a few microseconds each, never for a time that grows
//! with the number of keys: what reads every key (GetInfo, GetSnapshot,
//! GetHistory, a watcher's first state, a departing watcher's release)
//! reads the server's mirror. The computation spins briefly for them
//! (`spin`) rather than sleeping.

mod callbacks;
mod failure;
mod pause_gate;
mod publish;
mod triggers;
mod working;
mod writes;

pub use callbacks::{CallbackId, UpdateEvent};
pub use pause_gate::ControlAction;
pub use pause_gate::WaitOutcome;
pub use publish::{Recorded, StagedSamples};
pub use working::{DictGuard, KeyId};
pub use writes::Writable;
pub use writes::WriteRefused;

use crate::model::{AppliedWrite, Level, Status};
use crate::pins::Pins;
use crate::published::Published;
use crate::staged::Staged;
use crate::value::Value;
use crate::write_rules::{WritableSpec, WriteQueue};
use callbacks::Callbacks;
use parking_lot::{Condvar, Mutex, RwLock};
use pause_gate::Gate;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};
use working::Working;

/// Options of an [`IDict`], set with [`IDict::builder`].
#[derive(Debug, Clone)]
pub struct IDictOptions {
    /// Hold the first `wait()` until a client (or the program) resumes.
    pub start_paused: bool,
    /// Memory budget of each scalar key's history, in bytes
    /// ([`SAMPLE_BYTES`](crate::SAMPLE_BYTES) per sample).
    pub history_budget_bytes: usize,
    /// How many log messages are kept for late joiners.
    pub message_capacity: usize,
    /// How much more than their budgets all histories together may hold
    /// to keep samples that reading watchers have not received yet, in
    /// bytes. Past it, the oldest of those are thinned, and the watchers
    /// are told which (never a silent hole in a curve).
    pub pinned_history_bytes: usize,
    /// This run replays the recording in this file (`idict replay`): its
    /// info says so.
    pub replay_of: Option<String>,
    /// The processes the run is made of (an MPI job's ranks, idict-mpi);
    /// 1 for a run of one process. Its info and run file say so.
    pub ranks: u32,
    /// Where a trigger's checkpoint is written (default: the working
    /// directory).
    pub checkpoint_dir: Option<std::path::PathBuf>,
}

impl Default for IDictOptions {
    fn default() -> Self {
        IDictOptions {
            start_paused: false,
            history_budget_bytes: 1 << 20,
            message_capacity: 1000,
            pinned_history_bytes: 512 << 20,
            replay_of: None,
            ranks: 1,
            checkpoint_dir: None,
        }
    }
}

/// Builds an [`IDict`] with options.
#[derive(Debug, Clone)]
pub struct IDictBuilder {
    name: String,
    options: IDictOptions,
}

impl IDictBuilder {
    /// Marks the run as the replay of the recording in `file`.
    pub fn replay_of(mut self, file: impl Into<String>) -> Self {
        self.options.replay_of = Some(file.into());
        self
    }
    /// Hold the first `wait()` until resumed, so a client can attach before step 0.
    pub fn start_paused(mut self, yes: bool) -> Self {
        self.options.start_paused = yes;
        self
    }
    /// Memory budget per scalar key's history (default 1 MiB ≈ 32,000 samples).
    pub fn history_budget_bytes(mut self, bytes: usize) -> Self {
        self.options.history_budget_bytes = bytes;
        self
    }
    /// How much more than their budgets the histories may hold, together,
    /// for watchers that lag (default 512 MiB).
    pub fn pinned_history_bytes(mut self, bytes: usize) -> Self {
        self.options.pinned_history_bytes = bytes;
        self
    }
    /// How many log messages late joiners get (default 1000).
    pub fn message_capacity(mut self, n: usize) -> Self {
        self.options.message_capacity = n;
        self
    }
    /// The processes the run is made of (an MPI job's ranks; default 1).
    pub fn ranks(mut self, n: u32) -> Self {
        self.options.ranks = n.max(1);
        self
    }
    /// Where a trigger's checkpoint is written (default: the working
    /// directory).
    pub fn checkpoint_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.options.checkpoint_dir = Some(dir.into());
        self
    }
    pub fn build(self) -> IDict {
        IDict::with_options(self.name, self.options)
    }
}

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("the run has finished: notify_update_final() was already called")]
    Finished,
    #[error("the run has failed: {0}")]
    Failed(String),
    #[error(
        "notify_update() called while this thread holds lock(): drop the guard (end its block) before publishing"
    )]
    LockHeld,
    #[error("the run has published every version it can number")]
    VersionsExhausted,
    #[error("a recorded version {0} is not after the published version {1}")]
    NotAfter(u64, u64),
}

/// The shared state of one run; every [`IDict`] handle (and its server)
/// points at one.
pub struct Inner {
    pub name: String,
    pub(crate) started: Instant,
    pub started_unix_ms: i64,
    pub options: IDictOptions,
    /// The thread that last ran the loop (wait / notify): its panic fails the run.
    owner: AtomicU64,
    pub(crate) data: Mutex<Working>,
    /// The thread holding `data` through a [`DictGuard`] (0: none), so a
    /// call that would wait for `data` on that same thread is reported
    /// instead of deadlocking.
    holder: AtomicU64,
    pub published: RwLock<Published>,
    /// Samples on their way into `published.history` (see `crate::staged`).
    pub(crate) staged: Mutex<Staged>,
    /// Every sample up to this version is in `published.history`.
    samples_through: AtomicU64,
    gate: Mutex<Gate>,
    gate_cv: Condvar,
    /// Mirrors `gate.paused` so `wait()` is one atomic read while running.
    paused_hint: AtomicBool,
    /// Steps done: `wait()`s that returned go (only the loop's thread adds).
    passed: AtomicU64,
    /// The first step at which something is scheduled (a pause, a
    /// terminate, a write; `u64::MAX`: nothing), so that `wait()` takes
    /// the gate's lock only then.
    due_at: AtomicU64,
    terminated: AtomicBool,
    /// Finished or failed: one atomic read lets a notify refuse cheaply.
    ended: AtomicBool,
    writes: Mutex<WriteQueue>,
    pending_writes: AtomicUsize,
    /// Writes queued or applied but not yet published, and their bytes:
    /// bounded, so a client writing to a paused run cannot grow it.
    unpublished_writes: AtomicUsize,
    unpublished_bytes: AtomicUsize,
    pub writable: RwLock<HashMap<String, WritableSpec>>,
    callbacks: Callbacks,
    /// Bumped on anything clients should see (a version, status, message).
    epoch: AtomicU64,
    /// Wakes the server's dispatcher when it is idle; it fans the news out
    /// to watchers, so this thread wakes at most one task however many
    /// clients there are (and none while updates stream: frames then
    /// follow the dispatcher's ticker).
    pub changed: tokio::sync::Notify,
    pub served: AtomicBool,
    /// The sample cursors of connected watchers: history keeps what they
    /// have not received yet.
    pub pins: Pins,
    /// What the histories may hold past their budgets for those pins.
    pub(crate) pin_pool: Arc<crate::history::PinPool>,
    /// A replay's recording, as its replayer found it.
    pub timeline: RwLock<Option<Arc<crate::model::ReplayTimeline>>>,
    /// The triggers as defined, and their generation (a notify compares it
    /// with its compiled copy's, one atomic load).
    pub(crate) triggers: Mutex<crate::triggers::Defs>,
    pub(crate) triggers_generation: AtomicU64,
}

/// The dictionary a computation embeds and serves. Cloning gives another
/// handle to the same run.
#[derive(Clone)]
pub struct IDict {
    pub inner: Arc<Inner>,
}

impl std::fmt::Debug for IDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IDict")
            .field("name", &self.inner.name)
            .field("version", &self.version())
            .field("status", &self.status())
            .finish()
    }
}

impl IDict {
    /// A new run called `name`, with default options.
    pub fn new(name: impl Into<String>) -> IDict {
        Self::with_options(name.into(), IDictOptions::default())
    }

    /// A builder for a run with options (`start_paused`, history budget…).
    pub fn builder(name: impl Into<String>) -> IDictBuilder {
        IDictBuilder {
            name: name.into(),
            options: IDictOptions::default(),
        }
    }

    pub fn with_options(name: impl Into<String>, options: IDictOptions) -> IDict {
        let started_unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self::with_start(name.into(), options, Instant::now(), started_unix_ms)
    }

    /// A run whose clock started at `started` (a restored run continues its time).
    pub(crate) fn with_start(
        name: String,
        options: IDictOptions,
        started: Instant,
        started_unix_ms: i64,
    ) -> IDict {
        // Bounded here, the one way in (a restore comes through too).
        let options = IDictOptions {
            message_capacity: options.message_capacity.max(1),
            ..options
        };
        let inner = Arc::new(Inner {
            name,
            started,
            started_unix_ms,
            owner: AtomicU64::new(failure::thread_tag()),
            data: Mutex::new(Working::default()),
            holder: AtomicU64::new(0),
            published: RwLock::new(Published::new(options.message_capacity)),
            staged: Mutex::new(Staged::default()),
            samples_through: AtomicU64::new(0),
            gate: Mutex::new(Gate {
                paused: options.start_paused,
                ..Gate::default()
            }),
            gate_cv: Condvar::new(),
            paused_hint: AtomicBool::new(options.start_paused),
            passed: AtomicU64::new(0),
            due_at: AtomicU64::new(u64::MAX),
            terminated: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            writes: Mutex::new(WriteQueue::default()),
            pending_writes: AtomicUsize::new(0),
            unpublished_writes: AtomicUsize::new(0),
            unpublished_bytes: AtomicUsize::new(0),
            writable: RwLock::new(HashMap::new()),
            callbacks: Callbacks::default(),
            epoch: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
            served: AtomicBool::new(false),
            pins: Pins::default(),
            pin_pool: crate::history::PinPool::new(options.pinned_history_bytes),
            timeline: RwLock::new(None),
            triggers: Mutex::new(crate::triggers::Defs::default()),
            triggers_generation: AtomicU64::new(0),
            options,
        });
        failure::register(&inner);
        IDict { inner }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Exclusive access to the working map. Drop the guard (end its block)
    /// before `notify_update`, `wait`, `sync` or `writable`.
    ///
    /// # Panics
    /// If this thread already holds the guard (that would deadlock).
    pub fn lock(&self) -> DictGuard<'_> {
        self.inner.refuse_if_holding("lock");
        DictGuard::new(&self.inner)
    }

    /// Publishes the keys changed since the last notify as one new version,
    /// records a history sample per changed numeric scalar, wakes clients
    /// (without waiting on any), then runs the callbacks with no lock held.
    /// Returns the version.
    pub fn notify_update(&self) -> Result<u64, UpdateError> {
        self.publish(false, None)
    }

    /// Like `notify_update`, and marks the run Finished: every watcher gets
    /// this update and then its stream ends. Later updates are refused, and
    /// the callbacks are dropped (so one holding an `IDict` handle no longer
    /// keeps the run alive).
    pub fn notify_update_final(&self) -> Result<u64, UpdateError> {
        self.publish(true, None)
    }

    /// Publishes a recorded update as it was (see [`publish::Recorded`]).
    pub fn publish_recorded(
        &self,
        recorded: publish::Recorded,
        last: bool,
    ) -> Result<u64, UpdateError> {
        self.publish(last, Some(recorded))
    }

    fn publish(&self, last: bool, recorded: Option<publish::Recorded>) -> Result<u64, UpdateError> {
        if self.inner.holding() {
            return Err(UpdateError::LockHeld);
        }
        let (version, event, fired) = self.inner.publish(last, recorded)?;
        for f in fired {
            self.act_on(f);
        }
        if let Some(event) = event {
            self.inner.callbacks.run(self, &event);
        }
        if last {
            self.inner.callbacks.clear();
        }
        Ok(version)
    }

    /// The safe point of the loop: applies queued steering writes, then
    /// returns whether to go on: at once while running (true), false once
    /// terminated or ended; while paused it blocks until resume, step or
    /// terminate. The whole loop is `while idict.wait() { ... }`.
    ///
    /// # Panics
    /// If this thread holds the [`lock()`](Self::lock) guard.
    pub fn wait(&self) -> bool {
        self.inner.refuse_if_holding("wait");
        self.inner.wait_until(None, None, None) == Some(WaitOutcome::Go)
    }

    /// Like [`wait_interruptible`](Self::wait_interruptible), also giving
    /// the steering writes it applied, in order: what a run made of many
    /// processes passes on to the others (idict-mpi), so that each applies
    /// them at the same step. `Err` is the interrupt's.
    ///
    /// # Panics
    /// If this thread holds the [`lock()`](Self::lock) guard.
    pub fn wait_applying<E>(
        &self,
        every: Duration,
        interrupt: impl FnMut() -> Result<(), E>,
    ) -> (Result<bool, E>, Vec<AppliedWrite>) {
        self.inner.refuse_if_holding("wait_applying");
        let mut applied = Vec::new();
        let go = self.wait_checking(every, interrupt, Some(&mut applied));
        (go, applied)
    }

    /// The body of `wait_interruptible` and `wait_applying`.
    fn wait_checking<E>(
        &self,
        every: Duration,
        mut interrupt: impl FnMut() -> Result<(), E>,
        applied: Option<&mut Vec<AppliedWrite>>,
    ) -> Result<bool, E> {
        let mut error = None;
        let mut check = || match interrupt() {
            Ok(()) => true,
            Err(e) => {
                error = Some(e);
                false
            }
        };
        let outcome = self
            .inner
            .wait_until(None, Some((every, &mut check)), applied);
        match (outcome, error) {
            (_, Some(e)) => Err(e),
            (outcome, None) => Ok(outcome == Some(WaitOutcome::Go)),
        }
    }

    /// Like `wait`, giving up after `timeout` if still paused.
    ///
    /// # Panics
    /// If this thread holds the [`lock()`](Self::lock) guard.
    pub fn wait_timeout(&self, timeout: Duration) -> WaitOutcome {
        self.inner.refuse_if_holding("wait_timeout");
        self.inner
            .wait_until(Some(Instant::now() + timeout), None, None)
            .unwrap_or(WaitOutcome::StillPaused)
    }

    /// Like `wait`, for callers that must notice something of their own
    /// while it blocks (a language binding's Ctrl-C): `interrupt` is called
    /// with no lock held before it first blocks and then about every `every`;
    /// its `Err` ends the wait at once and is returned (the run stays
    /// paused). Returns what `wait` would.
    ///
    /// # Panics
    /// If this thread holds the [`lock()`](Self::lock) guard.
    pub fn wait_interruptible<E>(
        &self,
        every: Duration,
        interrupt: impl FnMut() -> Result<(), E>,
    ) -> Result<bool, E> {
        self.inner.refuse_if_holding("wait_interruptible");
        self.wait_checking(every, interrupt, None)
    }

    /// Applies queued steering writes now (a safe point of the computation's
    /// choosing) and returns what was applied, in arrival order.
    ///
    /// # Panics
    /// If this thread holds the [`lock()`](Self::lock) guard.
    pub fn sync(&self) -> Vec<AppliedWrite> {
        self.inner.refuse_if_holding("sync");
        self.inner.apply_writes()
    }

    /// Pauses: the next `wait()` blocks.
    pub fn pause(&self) {
        self.inner.pause();
    }

    /// Resumes a paused run.
    pub fn resume(&self) {
        self.inner.resume();
    }

    /// Lets exactly `n` more `wait()` calls pass, then holds again. Pauses a
    /// running run first. Steps add up.
    pub fn step(&self, n: u64) {
        self.inner.step(n);
    }

    /// Asks the computation to stop; wakes a paused `wait()`. Irreversible.
    pub fn terminate(&self) {
        self.inner.terminate();
    }

    /// True once terminate was asked (a cheap atomic read).
    pub fn terminated(&self) -> bool {
        self.inner.terminated.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// The newest published version (0 before the first update).
    pub fn version(&self) -> u64 {
        self.inner.published.read().version
    }

    /// Declares `key` writable by clients and sets its initial value (published
    /// with the next update). The type of `initial` is the type writes must
    /// have; refine the rule on the returned handle.
    ///
    /// # Panics
    /// If this thread holds the [`lock()`](Self::lock) guard.
    pub fn writable(&self, key: impl Into<String>, initial: impl Into<Value>) -> Writable<'_> {
        self.inner.refuse_if_holding("writable");
        Writable::declare(self, key.into(), initial.into())
    }

    /// Logs a message every client sees; late joiners get the recent ones.
    pub fn message(&self, level: Level, text: impl Into<String>) {
        self.inner.log(level, text.into());
    }

    /// Runs `f(idict, event)` on the computation's thread after each
    /// published update, with no lock held: it may call any method of the
    /// `IDict` it is given (log, read, even publish again). Callbacks are
    /// dropped when the run ends.
    pub fn add_callback(&self, f: impl FnMut(&IDict, &UpdateEvent) + Send + 'static) -> CallbackId {
        self.inner.callbacks.add(Box::new(f))
    }

    /// Removes a callback; true if it was there. May be called from a callback.
    pub fn remove_callback(&self, id: CallbackId) -> bool {
        self.inner.callbacks.remove(id)
    }

    /// True if this thread holds the [`lock()`](Self::lock) guard, when
    /// `wait`, `sync`, `writable` and `lock` would panic and `notify_update`
    /// return [`UpdateError::LockHeld`]. For bindings that turn those into
    /// their own errors.
    pub fn holds_lock(&self) -> bool {
        self.inner.holding()
    }

    /// How many callbacks are registered.
    pub fn callback_count(&self) -> usize {
        self.inner.callbacks.len()
    }

    /// For a run made of many processes (idict-mpi): the ranks that have
    /// not yet reached the `wait()` its rank 0 holds in, shown in its
    /// status ("waiting for ranks 2, 3"); empty once they all have.
    pub fn set_ranks_behind(&self, ranks: Vec<u32>) {
        self.inner.set_ranks_behind(ranks);
    }

    /// Marks the run Failed with `message` (as a panic in its loop does).
    pub fn fail(&self, message: impl Into<String>) {
        self.inner.fail(message.into());
    }

    /// The recorded samples of a scalar key (a copy).
    pub fn history(&self, key: &str) -> Option<crate::history::Series> {
        self.inner.move_staged_now();
        let series = self.inner.published.read().history.get(key).cloned()?;
        Some(crate::history::copy_range(&series, 0, u64::MAX).series)
    }
}

impl Inner {
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Milliseconds since the run started (for watchers' activity).
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Tells clients something changed: bumps the epoch and wakes the
    /// dispatcher if it is idle.
    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    fn claim_thread(&self) {
        self.owner.store(failure::thread_tag(), Ordering::Relaxed);
    }

    /// True if this thread holds the working map's guard.
    fn holding(&self) -> bool {
        self.holder.load(Ordering::Relaxed) == failure::thread_tag()
    }

    /// Panics, saying what to do, if this thread holds the guard: `what`
    /// would wait for the lock this same thread holds.
    fn refuse_if_holding(&self, what: &str) {
        if self.holding() {
            panic!(
                "IDict::{what}() called while this thread holds lock(): drop the guard (end its block) first"
            );
        }
    }

    pub fn status(&self) -> Status {
        self.gate.lock().status(self.passed.load(Ordering::Acquire))
    }

    pub fn pending_writes(&self) -> usize {
        self.pending_writes.load(Ordering::Relaxed)
    }
}
