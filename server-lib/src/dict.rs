//! `IDict`: the dictionary a computation embeds. The computation writes keys
//! under `lock()`, publishes them with `notify_update()`, and calls `wait()`
//! at its safe point, where it may be paused, stepped or terminated and
//! where clients' steering writes are applied.

use crate::history::{BoundedSeries, Sample};
use crate::model::{AppliedWrite, Level, LogMessage, RunState, Status};
use crate::published::{Published, Record, SharedSeries};
use crate::spin;
use crate::staged::Staged;
use crate::steer::{Rejected, Validator, WritableSpec, WriteQueue};
use crate::value::Value;
use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Options of an [`IDict`], set with [`IDict::builder`].
#[derive(Debug, Clone)]
pub struct IDictOptions {
    /// Hold the first `wait()` until a client (or the program) resumes.
    pub start_paused: bool,
    /// Memory budget of each scalar key's history, in bytes (24 per sample).
    pub history_budget_bytes: usize,
    /// How many log messages are kept for late joiners.
    pub message_capacity: usize,
}

impl Default for IDictOptions {
    fn default() -> Self {
        IDictOptions {
            start_paused: false,
            history_budget_bytes: 1 << 20,
            message_capacity: 1000,
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
    /// Hold the first `wait()` until resumed, so a client can attach before step 0.
    pub fn start_paused(mut self, yes: bool) -> Self {
        self.options.start_paused = yes;
        self
    }
    /// Memory budget per scalar key's history (default 1 MiB ≈ 43,000 samples).
    pub fn history_budget_bytes(mut self, bytes: usize) -> Self {
        self.options.history_budget_bytes = bytes;
        self
    }
    /// How many log messages late joiners get (default 1000).
    pub fn message_capacity(mut self, n: usize) -> Self {
        self.options.message_capacity = n.max(1);
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
}

/// What a callback is told after each published update.
#[derive(Debug)]
pub struct UpdateEvent<'a> {
    version: u64,
    time: f64,
    changed: Vec<&'a str>,
    removed: &'a [Arc<str>],
    applied: &'a [AppliedWrite],
    last: bool,
}

impl UpdateEvent<'_> {
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
        self.changed.iter().copied()
    }
    /// Keys removed in this version.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.removed.iter().map(|k| &**k)
    }
    /// Steering writes that first appear in this version.
    pub fn applied(&self) -> &[AppliedWrite] {
        self.applied
    }
    /// True for the final update.
    pub fn is_final(&self) -> bool {
        self.last
    }
}

/// Identifies a callback for [`IDict::remove_callback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

type Callback = Box<dyn FnMut(&UpdateEvent<'_>) + Send>;

/// One key of the working map.
#[derive(Debug, Clone)]
struct Slot {
    key: Arc<str>,
    value: Value,
    /// Already listed in `Working::touched` since the last notify.
    dirty: bool,
    /// Where the key's samples are staged, once it has held a scalar: kept
    /// here so a notify records a sample without looking the key up again.
    staged: Option<u32>,
}

/// The computation's working map: changes collect here until a notify.
/// Each key has a small id, its slot's index, so a notify reaches the
/// changed slots (and their published copies) without hashing.
#[derive(Debug, Default)]
struct Working {
    ids: FxHashMap<Arc<str>, u32>,
    slots: Vec<Option<Slot>>,
    /// Ids free for new keys: only ids whose removal has been published.
    free: Vec<u32>,
    /// Ids of keys inserted since the last notify (each once).
    touched: Vec<u32>,
    /// Keys removed since the last notify, with their ids.
    removed: Vec<(Arc<str>, u32)>,
    /// Steering writes applied since the last notify.
    applied: Vec<AppliedWrite>,
}

impl Working {
    fn slot(&self, key: &str) -> Option<&Slot> {
        let id = *self.ids.get(key)?;
        self.slots.get(id as usize)?.as_ref()
    }

    fn insert(&mut self, key: &str, value: Value) -> Option<Value> {
        if let Some(&id) = self.ids.get(key)
            && let Some(Some(slot)) = self.slots.get_mut(id as usize)
        {
            if !slot.dirty {
                slot.dirty = true;
                self.touched.push(id);
            }
            return Some(std::mem::replace(&mut slot.value, value));
        }
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
        None
    }

    fn remove(&mut self, key: &str) -> Option<Value> {
        let id = self.ids.remove(key)?;
        let slot = self.slots.get_mut(id as usize)?.take()?;
        self.removed.push((slot.key, id));
        Some(slot.value)
    }

    fn clear(&mut self) {
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

    fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.slots.iter().flatten().map(|s| (&*s.key, &s.value))
    }
}

/// Pause gate and life cycle.
#[derive(Debug, Default)]
struct Gate {
    paused: bool,
    steps: u64,
    terminated: bool,
    held: bool,
    finished: bool,
    failed: Option<String>,
}

impl Gate {
    fn status(&self) -> Status {
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
            steps_pending: if self.paused { self.steps } else { 0 },
        }
    }
}

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) started: Instant,
    pub(crate) started_unix_ms: i64,
    options: IDictOptions,
    /// The thread that last ran the loop (wait / notify): its panic fails the run.
    owner: AtomicU64,
    data: Mutex<Working>,
    pub(crate) published: RwLock<Published>,
    /// Samples on their way into `published.history` (see `staged`).
    staged: Mutex<Staged>,
    /// Every sample up to this version is in `published.history`.
    samples_through: AtomicU64,
    gate: Mutex<Gate>,
    gate_cv: Condvar,
    /// Mirrors `gate.paused` so `wait()` is one atomic read while running.
    paused_hint: AtomicBool,
    terminated: AtomicBool,
    /// Finished or failed: one atomic read lets a notify refuse cheaply.
    ended: AtomicBool,
    writes: Mutex<WriteQueue>,
    pending_writes: AtomicUsize,
    pub(crate) writable: RwLock<HashMap<String, WritableSpec>>,
    callbacks: Mutex<Vec<(CallbackId, Callback)>>,
    next_callback: AtomicU64,
    /// Bumped on anything clients should see (a version, status, message).
    epoch: AtomicU64,
    /// Wakes the server's dispatcher when it is idle; it fans the news out
    /// to watchers, so this thread wakes at most one task however many
    /// clients there are (and none while updates stream: frames then
    /// follow the dispatcher's ticker).
    pub(crate) changed: tokio::sync::Notify,
    pub(crate) served: AtomicBool,
    /// The version cursors of connected watchers: history keeps the samples
    /// they have not received yet (within a limit).
    cursors: Mutex<Vec<Weak<WatchPin>>>,
}

/// A watcher's sample cursor as the history sees it: the history keeps the
/// samples after it, while the watcher is reading. A watcher whose stream
/// has not asked for a message for `STALLED_MS` (its client stopped
/// reading: flow control is full) holds nothing back, so a stalled client
/// costs the run neither memory nor time; if it reads again, what it finds
/// of that stretch may be thinned.
#[derive(Debug)]
pub(crate) struct WatchPin {
    cursor: AtomicU64,
    /// When the stream last asked for a message (ms since the run started).
    active_ms: AtomicU64,
}

const STALLED_MS: u64 = 1000;

impl WatchPin {
    pub(crate) fn new(cursor: u64, now_ms: u64) -> Self {
        WatchPin {
            cursor: AtomicU64::new(cursor),
            active_ms: AtomicU64::new(now_ms),
        }
    }
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }
    pub(crate) fn set(&self, cursor: u64) {
        self.cursor.store(cursor, Ordering::Release);
    }
    /// The stream asked for a message.
    pub(crate) fn touch(&self, now_ms: u64) {
        self.active_ms.store(now_ms, Ordering::Relaxed);
    }
    fn reading(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.active_ms.load(Ordering::Relaxed)) < STALLED_MS
    }
}

/// What [`Inner::move_staged_if_quiet`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StagedSamples {
    None,
    /// Samples are staged by a run still updating: look again soon.
    Waiting,
    Moved,
}

/// The dictionary a computation embeds and serves. Cloning gives another
/// handle to the same run.
#[derive(Clone)]
pub struct IDict {
    pub(crate) inner: Arc<Inner>,
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

/// Exclusive access to the working map (see [`IDict::lock`]). Nothing a
/// client sees changes until `notify_update()`.
pub struct DictGuard<'a> {
    w: MutexGuard<'a, Working>,
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
}

/// The rule of a writable key, refined with builder-style calls that take
/// effect at once: `idict.writable("dt", 0.01).range(0.0, 0.25);`
pub struct Writable<'a> {
    idict: &'a IDict,
    key: String,
}

impl Writable<'_> {
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

thread_local! {
    static THREAD_TAG: u64 = NEXT_THREAD_TAG.fetch_add(1, Ordering::Relaxed);
}
static NEXT_THREAD_TAG: AtomicU64 = AtomicU64::new(1);
static LIVE: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

fn thread_tag() -> u64 {
    THREAD_TAG.with(|t| *t)
}

/// A panic in the thread running a run's loop marks that run Failed with the
/// panic's message; the previous hook still runs (and prints as usual).
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            let message = match info.location() {
                Some(l) => format!("panicked at {}:{}: {text}", l.file(), l.line()),
                None => format!("panicked: {text}"),
            };
            let me = thread_tag();
            if let Some(live) = LIVE.try_lock_for(Duration::from_millis(100)) {
                for inner in live.iter().filter_map(Weak::upgrade) {
                    if inner.owner.load(Ordering::Relaxed) == me {
                        inner.fail(message.clone());
                    }
                }
            }
            previous(info);
        }));
    });
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
        install_panic_hook();
        let inner = Arc::new(Inner {
            name,
            started,
            started_unix_ms,
            owner: AtomicU64::new(thread_tag()),
            data: Mutex::new(Working::default()),
            published: RwLock::new(Published::new(options.message_capacity)),
            staged: Mutex::new(Staged::default()),
            samples_through: AtomicU64::new(0),
            gate: Mutex::new(Gate {
                paused: options.start_paused,
                ..Gate::default()
            }),
            gate_cv: Condvar::new(),
            paused_hint: AtomicBool::new(options.start_paused),
            terminated: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            writes: Mutex::new(WriteQueue::default()),
            pending_writes: AtomicUsize::new(0),
            writable: RwLock::new(HashMap::new()),
            callbacks: Mutex::new(Vec::new()),
            next_callback: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
            served: AtomicBool::new(false),
            cursors: Mutex::new(Vec::new()),
            options,
        });
        let mut live = LIVE.lock();
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&inner));
        drop(live);
        IDict { inner }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Exclusive access to the working map.
    pub fn lock(&self) -> DictGuard<'_> {
        DictGuard {
            w: self.inner.data.lock(),
        }
    }

    /// Publishes the keys changed since the last notify as one new version,
    /// records a history sample per changed numeric scalar, wakes clients
    /// (without waiting on any) and runs the callbacks. Returns the version.
    pub fn notify_update(&self) -> Result<u64, UpdateError> {
        self.inner.publish(false)
    }

    /// Like `notify_update`, and marks the run Finished: every watcher gets
    /// this update and then its stream ends. Later updates are refused.
    pub fn notify_update_final(&self) -> Result<u64, UpdateError> {
        self.inner.publish(true)
    }

    /// The safe point of the loop: applies queued steering writes, then
    /// returns at once while running; blocks while paused until resume,
    /// step or terminate.
    pub fn wait(&self) {
        self.inner.wait_until(None);
    }

    /// Like `wait`, giving up after `timeout`. Returns true if the gate let
    /// it through, false if it is still paused.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.inner.wait_until(Some(Instant::now() + timeout))
    }

    /// Applies queued steering writes now (a safe point of the computation's
    /// choosing) and returns what was applied, in arrival order.
    pub fn sync(&self) -> Vec<AppliedWrite> {
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
    pub fn writable(&self, key: impl Into<String>, initial: impl Into<Value>) -> Writable<'_> {
        let key = key.into();
        let initial = initial.into();
        self.inner
            .writable
            .write()
            .insert(key.clone(), WritableSpec::for_initial(&initial));
        self.inner.data.lock().insert(&key, initial);
        Writable { idict: self, key }
    }

    /// Logs a message every client sees; late joiners get the recent ones.
    pub fn message(&self, level: Level, text: impl Into<String>) {
        self.inner.log(level, text.into());
    }

    /// Runs `f` on the computation's thread after each published update.
    /// `f` must not call `add_callback`/`remove_callback`.
    pub fn add_callback(&self, f: impl FnMut(&UpdateEvent<'_>) + Send + 'static) -> CallbackId {
        let id = CallbackId(self.inner.next_callback.fetch_add(1, Ordering::Relaxed));
        self.inner.callbacks.lock().push((id, Box::new(f)));
        id
    }

    pub fn remove_callback(&self, id: CallbackId) -> bool {
        let mut cbs = self.inner.callbacks.lock();
        let before = cbs.len();
        cbs.retain(|(i, _)| *i != id);
        cbs.len() != before
    }

    /// Marks the run Failed with `message` (as a panic in its loop does).
    pub fn fail(&self, message: impl Into<String>) {
        self.inner.fail(message.into());
    }

    /// The recorded samples of a scalar key (a copy).
    pub fn history(&self, key: &str) -> Option<crate::history::Series> {
        self.inner.move_staged_now();
        let series = self.inner.published.read().history.get(key).cloned()?;
        let s = series.lock().to_series();
        Some(s)
    }
}

impl Inner {
    pub(crate) fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The published state, history and log, as of one version (for a checkpoint).
    pub(crate) fn checkpoint_state(&self) -> CheckpointState {
        let (version, time, entries, histories, messages) = {
            let p = self.published.read();
            (
                p.version,
                p.time,
                p.sorted_entries(""),
                p.histories(""),
                p.messages_after(0),
            )
        };
        // After reading the version: its samples are staged, so now moved.
        self.move_staged_now();
        let history = histories
            .into_iter()
            .map(|(k, s)| {
                let series = s.lock().range(0, version);
                (k.to_string(), series)
            })
            .collect();
        CheckpointState {
            version,
            time,
            entries: entries
                .into_iter()
                .map(|(k, e)| (k.to_string(), e.value))
                .collect(),
            history,
            messages,
        }
    }

    /// Loads a checkpoint into a fresh run: its values become the working
    /// and the published state at the checkpoint's version.
    pub(crate) fn load_state(&self, state: CheckpointState) {
        let budget = self.options.history_budget_bytes;
        let mut w = self.data.lock();
        let mut p = self.published.write();
        for (key, value) in state.entries {
            w.insert(&key, value);
        }
        let touched = std::mem::take(&mut w.touched);
        for id in touched {
            if let Some(Some(slot)) = w.slots.get_mut(id as usize) {
                slot.dirty = false;
                p.set(id, &slot.key, slot.value.clone(), state.version);
            }
        }
        for (key, series) in state.history {
            let mut b = BoundedSeries::new(budget);
            for sample in series.iter() {
                b.push(sample);
            }
            p.history
                .insert(Arc::from(key.as_str()), Arc::new(Mutex::new(b)));
        }
        for m in state.messages {
            p.push_message(m);
        }
        p.version = state.version;
        p.time = state.time;
        self.staged.lock().restored(state.version);
        self.samples_through.store(state.version, Ordering::Release);
    }

    /// Registers a watcher's cursor; history keeps what it has not received.
    pub(crate) fn register_cursor(&self, cursor: &Arc<WatchPin>) {
        let mut c = self.cursors.lock();
        c.retain(|w| w.strong_count() > 0);
        c.push(Arc::downgrade(cursor));
    }

    /// Moves the staged samples into the histories and says through which
    /// version they are complete.
    fn move_staged(&self, staged: &mut Staged) {
        let through = staged.move_all(|series, samples| {
            let mut s = spin::lock(series);
            for x in samples.drain(..) {
                s.push_pinned(x, || self.oldest_cursor());
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
        if staged.is_empty() {
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
    fn move_staged_now(&self) {
        let mut staged = self.staged.lock();
        if !staged.is_empty() {
            self.move_staged(&mut staged);
        }
    }

    /// An empty mirror of the published state, for a server (see
    /// [`Published::apply`]).
    pub(crate) fn new_mirror(&self) -> Published {
        Published::new(self.options.message_capacity)
    }

    /// Brings a server's mirror up to the published state.
    pub(crate) fn refresh_mirror(&self, mirror: &RwLock<Published>) {
        let mut m = mirror.write();
        let frame =
            self.published
                .read()
                .frame_since(m.version, m.next_message_seq - 1, m.history.len());
        if let Some(frame) = frame {
            m.apply(frame);
        }
    }

    /// Every sample up to this version is in the histories.
    pub(crate) fn samples_through(&self) -> u64 {
        self.samples_through.load(Ordering::Acquire)
    }

    /// After a watcher whose cursor was `gone` left: if it was the one
    /// holding history back, thins what no remaining watcher needs, so a
    /// lagging watcher's memory comes back even while the run is paused.
    pub(crate) fn release_history(&self, gone: u64) {
        let oldest = self.oldest_cursor();
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

    /// The oldest cursor of the connected watchers that are reading
    /// (`u64::MAX` if none).
    fn oldest_cursor(&self) -> u64 {
        let now = self.elapsed_ms();
        let mut c = self.cursors.lock();
        c.retain(|w| w.strong_count() > 0);
        c.iter()
            .filter_map(Weak::upgrade)
            .filter(|p| p.reading(now))
            .map(|p| p.cursor())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Milliseconds since the run started (for watchers' activity).
    pub(crate) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    fn claim_thread(&self) {
        self.owner.store(thread_tag(), Ordering::Relaxed);
    }

    pub(crate) fn status(&self) -> Status {
        self.gate.lock().status()
    }

    pub(crate) fn pending_writes(&self) -> usize {
        self.pending_writes.load(Ordering::Relaxed)
    }

    fn publish(&self, last: bool) -> Result<u64, UpdateError> {
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
        // Lock order: data, then published. Clients only ever read `published`.
        let mut w = self.data.lock();
        let mut p = spin::write(&self.published);
        let mut staged = self.staged.lock();
        p.version += 1;
        let version = p.version;
        p.time = time;
        let Working {
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
        for id in touched.drain(..) {
            // A key removed after it changed has no slot any more.
            let Some(Some(slot)) = slots.get_mut(id as usize) else {
                continue;
            };
            slot.dirty = false;
            if let Some(x) = slot.value.as_scalar() {
                let position = *slot.staged.get_or_insert_with(|| {
                    staged.position(&slot.key, || {
                        p.history
                            .entry(slot.key.clone())
                            .or_insert_with(|| Arc::new(Mutex::new(BoundedSeries::new(budget))))
                            .clone()
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
        }
        if !removed.is_empty() {
            // Removed and inserted again before this notify: changed, not removed.
            removed.retain(|k| !p.ids.contains_key(k));
        }
        let mut applied = std::mem::take(applied_now);
        drop(w);
        for a in &mut applied {
            a.version = version;
        }
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
            let mut g = self.gate.lock();
            g.finished = true;
            self.ended.store(true, Ordering::Release);
            self.gate_cv.notify_all();
        }
        self.bump();
        self.run_callbacks(version, time, last);
        Ok(version)
    }

    fn run_callbacks(&self, version: u64, time: f64, last: bool) {
        let mut cbs = self.callbacks.lock();
        if cbs.is_empty() {
            return;
        }
        let p = self.published.read();
        let Some(r) = p.records.back().filter(|r| r.version == version) else {
            return;
        };
        let event = UpdateEvent {
            version,
            time,
            changed: p.changed_keys(r).map(|k| &**k).collect(),
            removed: &r.removed,
            applied: &r.applied,
            last,
        };
        for (_, cb) in cbs.iter_mut() {
            cb(&event);
        }
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        self.claim_thread();
        if self.pending_writes.load(Ordering::Acquire) > 0 {
            self.apply_writes();
        }
        if !self.paused_hint.load(Ordering::Acquire) {
            return true;
        }
        let mut g = self.gate.lock();
        let passed = loop {
            if g.terminated || !g.paused || g.finished || g.failed.is_some() {
                break true;
            }
            if g.steps > 0 {
                g.steps -= 1;
                // The last step re-arms the hold: status changes (steps_pending).
                self.bump();
                break true;
            }
            if !g.held {
                g.held = true;
                self.bump();
            }
            match deadline {
                Some(d) => {
                    if self.gate_cv.wait_until(&mut g, d).timed_out() {
                        break false;
                    }
                }
                None => self.gate_cv.wait(&mut g),
            }
            // Writes that arrived while held are applied before passing.
            if self.pending_writes.load(Ordering::Acquire) > 0 {
                MutexGuard::unlocked(&mut g, || {
                    self.apply_writes();
                });
            }
        };
        let was_held = std::mem::replace(&mut g.held, false);
        drop(g);
        if was_held {
            self.bump();
        }
        passed
    }

    fn pause(&self) {
        self.control(|g| {
            g.paused = true;
            g.steps = 0;
        });
    }

    fn resume(&self) {
        self.control(|g| {
            g.paused = false;
            g.steps = 0;
        });
    }

    fn step(&self, n: u64) {
        self.control(|g| {
            if !g.paused {
                g.paused = true;
                g.steps = 0;
            }
            g.steps = g.steps.saturating_add(n);
        });
    }

    fn terminate(&self) {
        self.control(|g| g.terminated = true);
    }

    fn control(&self, f: impl FnOnce(&mut Gate)) {
        let mut g = self.gate.lock();
        f(&mut g);
        self.paused_hint.store(g.paused, Ordering::Release);
        if g.terminated {
            self.terminated.store(true, Ordering::Release);
        }
        self.gate_cv.notify_all();
        drop(g);
        self.bump();
    }

    /// Applies the server's control actions (Control RPC).
    pub(crate) fn control_action(&self, action: ControlAction) -> Result<Status, ControlRefused> {
        {
            let g = self.gate.lock();
            let status = g.status();
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
        }
        Ok(self.status())
    }

    /// Queues a client's write after checking it against the key's rule.
    pub(crate) fn queue_write(
        &self,
        key: &str,
        value: Value,
        origin: String,
    ) -> Result<(u64, usize), WriteRefused> {
        let checked = {
            let specs = self.writable.read();
            let spec = specs.get(key).ok_or_else(|| {
                let mut names: Vec<_> = specs.keys().cloned().collect();
                names.sort();
                WriteRefused::NotWritable(if names.is_empty() {
                    format!("key '{key}' is not writable: this run declares no writable keys")
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
        let mut q = self.writes.lock();
        let r = q.push(key.to_owned(), checked, origin).ok_or_else(|| {
            WriteRefused::QueueFull("too many writes waiting; retry later".into())
        })?;
        self.pending_writes.store(q.len(), Ordering::Release);
        drop(q);
        // A run held in wait() applies the write at once.
        self.gate_cv.notify_all();
        Ok(r)
    }

    fn apply_writes(&self) -> Vec<AppliedWrite> {
        let batch = {
            let mut q = self.writes.lock();
            self.pending_writes.store(0, Ordering::Release);
            q.take_all()
        };
        if batch.is_empty() {
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
        // message carries them. (A thread that panicked mid-notify may still
        // hold the lock; then the server's dispatcher moves them later.)
        if let Some(mut staged) = self.staged.try_lock_for(Duration::from_millis(200))
            && !staged.is_empty()
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
    }
}

/// What a checkpoint holds.
pub(crate) struct CheckpointState {
    pub version: u64,
    pub time: f64,
    pub entries: Vec<(String, Value)>,
    pub history: Vec<(String, crate::history::Series)>,
    pub messages: Vec<LogMessage>,
}

/// A control action from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlAction {
    Pause,
    Resume,
    Step(u64),
    Terminate,
}

/// A control action that cannot apply in the run's state.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ControlRefused(pub String);

/// Why a client's write was not queued.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteRefused {
    #[error("{0}")]
    NotWritable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotRunning(String),
    #[error("{0}")]
    QueueFull(String),
    #[error("{0}")]
    Removed(String),
}
