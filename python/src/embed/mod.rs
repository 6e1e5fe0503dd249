//! `idict.IDict`: the dictionary a Python computation embeds, its lock
//! (`with d.lock() as s:`), its callbacks and its server (`with d.serve():`).
//!
//! The GIL and the map's lock: a Python thread may hold the map's lock
//! across Python code (a `with d.lock()` block), and Python switches threads
//! in between. A thread that then waited for the map with the GIL held
//! would deadlock with it. So every call that may wait for the map releases
//! the GIL first whenever a Python thread holds, or is waiting for, a
//! `lock()` (`lockers` counts them); when none does, only Rust holds the map,
//! briefly, and the call takes it with the GIL held, saving the cost of
//! releasing and retaking it.

use crate::convert::{to_py, to_value};
use crate::errors::{CheckpointError, ServeError, update_error};
use crate::model::{AppliedWrite, History, Status, applied_list, parse_level};
use idict::{DictGuard, IDict, IDictOptions, ServeOptions, Value};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod callbacks;
mod locked;
mod mpi;
mod serving;

pub use callbacks::Callbacks;
pub use locked::Locked;
pub use serving::Serving;

/// How often a blocked `wait()` looks for Ctrl-C (and its timeout).
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

thread_local! {
    /// A KeyboardInterrupt (or SystemExit) raised in a callback, re-raised by
    /// the notify_update that ran it: it must not be swallowed.
    static CALLBACK_INTERRUPT: std::cell::RefCell<Option<PyErr>> =
        const { std::cell::RefCell::new(None) };
}

/// `seconds` as a Duration: finite, >= 0 and representable, else ValueError.
pub fn duration(seconds: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a number of seconds from 0 to {:e}, not {seconds}",
            Duration::MAX.as_secs_f64()
        ))
    })
}

/// The handle every Python object of one run shares.
#[derive(Clone)]
struct Run {
    idict: IDict,
    /// Python threads holding or waiting for `lock()`.
    lockers: Arc<AtomicUsize>,
}

impl Run {
    fn refuse_if_holding(&self, what: &str) -> PyResult<()> {
        if self.idict.holds_lock() {
            return Err(PyRuntimeError::new_err(format!(
                "{what} called inside `with d.lock()`: use the mapping the with statement \
                 gave you, or leave the block first"
            )));
        }
        Ok(())
    }

    /// Runs `f`, which may wait for the map, releasing the GIL if a Python
    /// thread may hold the map (see the module's comment).
    fn may_wait_for_map<T: Send>(&self, py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
        if self.lockers.load(Ordering::Acquire) == 0 {
            f()
        } else {
            py.detach(f)
        }
    }

    /// Runs `f` on the map for one brief operation. The guard never
    /// outlives `f`, so this thread never waits for the GIL holding the map:
    /// uncounted in `lockers`, it would deadlock with a thread that took the
    /// map with the GIL held. Convert to Python objects after, not inside.
    fn with_map<T: Send>(
        &self,
        py: Python<'_>,
        what: &str,
        f: impl FnOnce(&mut DictGuard<'_>) -> T + Send,
    ) -> PyResult<T> {
        self.refuse_if_holding(what)?;
        let d = &self.idict;
        Ok(self.may_wait_for_map(py, || f(&mut d.lock())))
    }

    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<Value>> {
        self.with_map(py, "d[key]", |m| m.get(key).cloned())
    }
}

/// The dictionary a computation embeds and serves.
///
/// `d[key]`, `d[key] = v`, `del d[key]`, `key in d`, `len(d)` and `iter(d)`
/// act on the working map, each taking the lock for itself; `with d.lock()
/// as s:` holds it for a block.
#[pyclass(frozen, module = "idict", name = "IDict")]
pub struct PyIDict {
    run: Run,
    /// The server of the last `serve()`: a bare `d.serve()` whose result is
    /// not kept serves until the dict goes, as a user would expect.
    serving: parking_lot::Mutex<Option<Py<Serving>>>,
}

/// What the MPI calls raise on a run that is not an MPI job.
fn not_a_job() -> PyErr {
    PyRuntimeError::new_err(
        "not an MPI job: make it with IDict(name, comm=MPI.COMM_WORLD) (an idict built with MPI)",
    )
}

impl Drop for PyIDict {
    fn drop(&mut self) {
        mpi::forget(&self.run.idict);
    }
}

impl PyIDict {
    fn wrap(idict: IDict) -> Self {
        PyIDict {
            run: Run {
                idict,
                lockers: Arc::new(AtomicUsize::new(0)),
            },
            serving: parking_lot::Mutex::new(None),
        }
    }

    fn options(
        start_paused: bool,
        history_budget: Option<usize>,
        message_capacity: Option<usize>,
        pinned_history: Option<usize>,
    ) -> IDictOptions {
        let mut o = IDictOptions {
            start_paused,
            ..IDictOptions::default()
        };
        if let Some(bytes) = history_budget {
            o.history_budget_bytes = bytes;
        }
        if let Some(n) = message_capacity {
            o.message_capacity = n;
        }
        if let Some(bytes) = pinned_history {
            o.pinned_history_bytes = bytes;
        }
        o
    }
}

#[pymethods]
impl PyIDict {
    #[new]
    #[pyo3(signature = (name, *, start_paused=false, history_budget=None, message_capacity=None, pinned_history=None, comm=None))]
    fn new(
        py: Python<'_>,
        name: String,
        start_paused: bool,
        history_budget: Option<usize>,
        message_capacity: Option<usize>,
        pinned_history: Option<usize>,
        comm: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if let Some(comm) = comm.filter(|c| !c.is_none()) {
            // An MPI job: this rank's part of one run (collective).
            return mpi::new(py, name, comm).map(Self::wrap);
        }
        Ok(Self::wrap(IDict::with_options(
            name,
            Self::options(
                start_paused,
                history_budget,
                message_capacity,
                pinned_history,
            ),
        )))
    }

    /// A run restored from a checkpoint: its name, values, history, version
    /// and messages. Declare writable keys and serve it as usual.
    #[staticmethod]
    #[pyo3(signature = (path, *, start_paused=false, history_budget=None, message_capacity=None, pinned_history=None))]
    fn restore(
        py: Python<'_>,
        path: PathBuf,
        start_paused: bool,
        history_budget: Option<usize>,
        message_capacity: Option<usize>,
        pinned_history: Option<usize>,
    ) -> PyResult<Self> {
        let options = Self::options(
            start_paused,
            history_budget,
            message_capacity,
            pinned_history,
        );
        py.detach(|| IDict::restore_with_options(&path, options))
            .map(Self::wrap)
            .map_err(|e| CheckpointError::new_err(e.to_string()))
    }

    #[getter]
    fn name(&self) -> &str {
        self.run.idict.name()
    }

    /// The callbacks: `d.callbacks.add(f)`, `d.callbacks.remove(id)`.
    #[getter]
    fn callbacks(&self) -> Callbacks {
        Callbacks {
            run: self.run.clone(),
        }
    }

    /// Exclusive access to the working map: `with d.lock() as s:`. Blocks,
    /// releasing the GIL, while another thread holds it.
    fn lock(&self, py: Python<'_>) -> PyResult<Locked> {
        self.run.refuse_if_holding("d.lock()")?;
        Locked::acquire(py, &self.run)
    }

    /// Publishes what changed since the last notify as one new version and
    /// returns it; never blocks on clients. `final=True`: the run finished;
    /// watchers get this update and their streams end.
    #[pyo3(signature = (r#final=false))]
    fn notify_update(&self, py: Python<'_>, r#final: bool) -> PyResult<u64> {
        #[cfg(feature = "mpi")]
        {
            // An MPI job's update is collective: every rank sends rank 0.
            let d = self.run.idict.clone();
            let published = py.detach(move || {
                mpi::with(&d, |j| match r#final {
                    true => j.notify_update_final(),
                    false => j.notify_update(),
                })
            });
            if let Some(published) = published {
                return published.map_err(mpi::error);
            }
        }
        let d = &self.run.idict;
        let result = self.run.may_wait_for_map(py, || {
            if r#final {
                d.notify_update_final()
            } else {
                d.notify_update()
            }
        });
        if let Some(interrupt) = CALLBACK_INTERRUPT.with(|c| c.borrow_mut().take()) {
            return Err(interrupt);
        }
        result.map_err(update_error)
    }

    /// The loop's safe point: applies steering writes, then returns True to
    /// go on, False once terminated. Blocks, releasing the GIL, while
    /// paused; Ctrl-C raises KeyboardInterrupt. With `timeout` (seconds),
    /// returns None if still paused after it.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        self.run.refuse_if_holding("d.wait()")?;
        #[cfg(feature = "mpi")]
        {
            // An MPI job's wait is collective: rank 0's decision, on every
            // rank (no timeout: the ranks must go on together).
            let d = self.run.idict.clone();
            if let Some(go) = py.detach(move || mpi::with(&d, |j| j.wait())) {
                return Ok(Some(go));
            }
        }
        let d = &self.run.idict;
        let deadline = match timeout {
            // A timeout too long to add is as good as none.
            Some(t) => Instant::now().checked_add(duration(t, "timeout")?),
            None => None,
        };
        if self.run.lockers.load(Ordering::Acquire) == 0 {
            // With the GIL: returns at once unless it would have to block.
            enum MustBlock {
                Yes,
            }
            if let Ok(go) = d.wait_interruptible(SIGNAL_CHECK, || Err(MustBlock::Yes)) {
                return Ok(Some(go));
            }
        }
        enum Stop {
            Signal(PyErr),
            Timeout,
        }
        let outcome = py.detach(|| {
            d.wait_interruptible(SIGNAL_CHECK, || {
                if deadline.is_some_and(|t| Instant::now() >= t) {
                    return Err(Stop::Timeout);
                }
                Python::attach(|py| py.check_signals()).map_err(Stop::Signal)
            })
        });
        match outcome {
            Ok(go) => Ok(Some(go)),
            Err(Stop::Timeout) => Ok(None),
            Err(Stop::Signal(e)) => Err(e),
        }
    }

    /// Applies queued steering writes now; returns them.
    fn sync(&self, py: Python<'_>) -> PyResult<Vec<AppliedWrite>> {
        self.run.refuse_if_holding("d.sync()")?;
        let d = &self.run.idict;
        let applied = self.run.may_wait_for_map(py, || d.sync());
        applied_list(py, &applied)
    }

    /// Declares `key` writable by clients with the type of `initial` (and
    /// inclusive bounds for numbers), and sets it.
    #[pyo3(signature = (key, initial, *, min=None, max=None, doc=None))]
    fn writable(
        &self,
        py: Python<'_>,
        key: String,
        initial: &Bound<'_, PyAny>,
        min: Option<f64>,
        max: Option<f64>,
        doc: Option<String>,
    ) -> PyResult<()> {
        self.run.refuse_if_holding("d.writable()")?;
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err(PyValueError::new_err(format!(
                "{key}: min {lo} is above max {hi}"
            )));
        }
        let value = to_value(&key, initial)?;
        let d = &self.run.idict;
        self.run.may_wait_for_map(py, move || {
            let mut w = d.writable(key, value);
            if let Some(lo) = min {
                w = w.min(lo);
            }
            if let Some(hi) = max {
                w = w.max(hi);
            }
            if let Some(doc) = doc {
                w.describe(doc);
            }
        });
        Ok(())
    }

    /// Adds a trigger: when `condition` (a CEL expression over the run's
    /// scalar keys, e.g. "isnan(residual)" or "energy > 2 * start(energy)")
    /// becomes true at an update, the run logs it and pauses (before another
    /// step), terminates or checkpoints as asked. Returns notes (e.g. a key
    /// the run does not have yet). A bad condition raises ValueError naming
    /// the column.
    #[pyo3(signature = (name, condition, *, pause=false, terminate=false, checkpoint=false, level=None, message=None))]
    #[allow(clippy::too_many_arguments)]
    fn trigger(
        &self,
        name: &str,
        condition: &str,
        pause: bool,
        terminate: bool,
        checkpoint: bool,
        level: Option<&str>,
        message: Option<String>,
    ) -> PyResult<Vec<String>> {
        let actions = crate::model::trigger_actions(
            pause,
            terminate,
            checkpoint,
            level,
            message.unwrap_or_default(),
        )?;
        self.run
            .idict
            .trigger(name, condition, actions)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Removes the trigger called `name` (KeyError if there is none).
    fn remove_trigger(&self, name: &str) -> PyResult<()> {
        self.run
            .idict
            .remove_trigger(name)
            .map_err(|e| pyo3::exceptions::PyKeyError::new_err(e.to_string()))
    }

    /// The run's triggers and what each has done.
    fn triggers(&self) -> Vec<crate::model::Trigger> {
        self.run
            .idict
            .triggers()
            .iter()
            .map(crate::model::Trigger::from)
            .collect()
    }

    /// Logs a message every client sees ("debug", "info", "warn", "error").
    fn message(&self, level: &str, text: String) -> PyResult<()> {
        self.run.idict.message(parse_level(level)?, text);
        Ok(())
    }

    /// Runs `f(d, event)` after each update, on the thread that called
    /// notify_update(), with no lock held. Returns an id for remove_callback.
    fn add_callback(&self, f: Bound<'_, PyAny>) -> PyResult<u64> {
        self.callbacks().add(f)
    }

    fn remove_callback(&self, id: u64) -> bool {
        self.callbacks().remove(id)
    }

    fn pause(&self) {
        self.run.idict.pause();
    }
    fn resume(&self) {
        self.run.idict.resume();
    }
    /// Lets `n` more wait() calls pass, then holds (pauses first).
    #[pyo3(signature = (n=1))]
    fn step(&self, n: u64) {
        self.run.idict.step(n);
    }
    /// Asks the loop to stop: wait() returns False. Irreversible.
    fn terminate(&self) {
        self.run.idict.terminate();
    }
    /// Marks the run Failed with `message`.
    fn fail(&self, message: String) {
        self.run.idict.fail(message);
    }
    #[getter]
    fn terminated(&self) -> bool {
        self.run.idict.terminated()
    }
    #[getter]
    fn status(&self) -> Status {
        self.run.idict.status().into()
    }
    /// The newest published version (0 before the first update).
    #[getter]
    fn version(&self) -> u64 {
        self.run.idict.version()
    }

    /// The recorded samples of a scalar key, or None.
    fn history(&self, py: Python<'_>, key: String) -> Option<History> {
        let d = &self.run.idict;
        py.detach(|| d.history(&key)).map(|s| History::new(py, s))
    }

    /// Writes the published state to `path`; returns its version.
    fn checkpoint(&self, py: Python<'_>, path: PathBuf) -> PyResult<u64> {
        let d = &self.run.idict;
        py.detach(|| d.checkpoint(&path))
            .map_err(|e| CheckpointError::new_err(e.to_string()))
    }

    /// Serves the run over gRPC on 127.0.0.1 (a free port), with fresh
    /// tokens and a run file, so `idict ls`, the CLI and the inspector find it.
    #[pyo3(signature = (*, runs_dir=None, observer_token=None, controller_token=None, run_file=true, announce=true, close_timeout=10.0))]
    #[allow(clippy::too_many_arguments)]
    fn serve(
        &self,
        py: Python<'_>,
        runs_dir: Option<PathBuf>,
        observer_token: Option<String>,
        controller_token: Option<String>,
        run_file: bool,
        announce: bool,
        close_timeout: f64,
    ) -> PyResult<Py<Serving>> {
        let close_timeout = duration(close_timeout, "close_timeout")?;
        let mut options = ServeOptions::default()
            .write_run_file(run_file)
            .announce(announce);
        options.observer_token = observer_token;
        options.controller_token = controller_token;
        if let Some(dir) = runs_dir {
            options = options.runs_dir(dir);
        }
        let d = &self.run.idict;
        // An MPI job: rank 0 serves it, the other ranks nothing.
        #[cfg(feature = "mpi")]
        let job = mpi::with(d, mpi::serve);
        #[cfg(not(feature = "mpi"))]
        let job: Option<Result<Option<idict::Server>, idict::ServeError>> = None;
        let server = match job {
            Some(served) => served.map_err(|e| ServeError::new_err(e.to_string()))?,
            None => Some(
                py.detach(|| options.serve(d))
                    .map_err(|e| ServeError::new_err(e.to_string()))?,
            ),
        };
        let field = |f: fn(&idict::Server) -> String| server.as_ref().map(f).unwrap_or_default();
        let serving = Py::new(
            py,
            Serving {
                address: field(|s| s.address().to_owned()),
                observer_token: field(|s| s.tokens().observer.clone()),
                controller_token: field(|s| s.tokens().controller.clone()),
                run_file: server
                    .as_ref()
                    .and_then(|s| s.run_file().map(|p| p.display().to_string())),
                close_timeout,
                idict: self.run.idict.clone(),
                server: parking_lot::Mutex::new(server),
            },
        )?;
        *self.serving.lock() = Some(serving.clone_ref(py));
        Ok(serving)
    }

    /// This process's rank in its MPI job (0 for a run of one process).
    #[getter]
    fn rank(&self) -> i32 {
        #[cfg(feature = "mpi")]
        if let Some(rank) = mpi::with(&self.run.idict, |j| j.rank()) {
            return rank;
        }
        0
    }

    /// The ranks of its MPI job (1 for a run of one process).
    #[getter]
    fn ranks(&self) -> i32 {
        #[cfg(feature = "mpi")]
        if let Some(size) = mpi::with(&self.run.idict, |j| j.size()) {
            return size;
        }
        1
    }

    /// An MPI job: how `key`'s values on the ranks become the run's:
    /// 'sum', 'min', 'max' or 'mean' (the default).
    fn reduce(&self, key: String, how: &str) -> PyResult<()> {
        #[cfg(feature = "mpi")]
        {
            let how = mpi::reduction(how)?;
            if mpi::with(&self.run.idict, |j| j.reduce(key, how)).is_some() {
                return Ok(());
            }
            Err(not_a_job())
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = (key, how);
            Err(not_a_job())
        }
    }

    /// An MPI job: this rank's block of a field decomposed over the ranks
    /// (float64, row-major): the field's shape, the block's offset and its
    /// shape. Rank 0 publishes the field whole, stitched only while watched.
    fn field(
        &self,
        key: String,
        shape: Vec<usize>,
        offset: Vec<usize>,
        block: Vec<usize>,
    ) -> PyResult<()> {
        #[cfg(feature = "mpi")]
        if let Some(declared) = mpi::with(&self.run.idict, |j| {
            j.field(key.clone(), &shape, &offset, &block)
        }) {
            return declared.map_err(|e| PyValueError::new_err(e.to_string()));
        }
        let _ = (key, shape, offset, block);
        Err(not_a_job())
    }

    /// An MPI job: True when this step's update stitches the fields.
    #[getter]
    fn stitching(&self) -> bool {
        #[cfg(feature = "mpi")]
        if let Some(on) = mpi::with(&self.run.idict, |j| j.stitching()) {
            return on;
        }
        false
    }

    /// An MPI job: this step's values of this rank's block of `key` (a
    /// C-contiguous float64 array of the block's shape), copied only when
    /// the update stitches.
    fn set_block(&self, key: &str, values: numpy::PyReadonlyArrayDyn<'_, f64>) -> PyResult<()> {
        let values = values.as_slice().map_err(|_| {
            PyValueError::new_err(format!(
                "the block of {key} must be C-contiguous: pass np.ascontiguousarray(block)"
            ))
        })?;
        #[cfg(feature = "mpi")]
        if let Some(set) = mpi::with(&self.run.idict, |j| j.set_block(key, values)) {
            return set.map_err(|e| PyValueError::new_err(e.to_string()));
        }
        let _ = values;
        Err(not_a_job())
    }

    /// SIGTERM (a cancelled batch job) and Ctrl-C terminate the run (wait()
    /// returns False) instead of raising; a second signal exits the process.
    fn terminate_on_signals(&self) -> PyResult<()> {
        self.run
            .idict
            .terminate_on_signals()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    fn __getitem__<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        match self.run.get(py, &key)? {
            Some(v) => to_py(py, &v),
            None => Err(PyKeyError::new_err(key.to_owned())),
        }
    }

    fn __setitem__(&self, py: Python<'_>, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = to_value(&key, value)?;
        self.run.with_map(py, "d[key] = value", |m| {
            m.insert(&key, value);
        })
    }

    fn __delitem__(&self, py: Python<'_>, key: String) -> PyResult<()> {
        match self.run.with_map(py, "del d[key]", |m| m.remove(&key))? {
            Some(_) => Ok(()),
            None => Err(PyKeyError::new_err(key)),
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(key) = key.extract::<String>() else {
            return Ok(false);
        };
        self.run.with_map(py, "key in d", |m| m.contains_key(&key))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.run.with_map(py, "len(d)", |m| m.len())
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.keys(py)?)?
            .try_iter()
            .map(Bound::into_any)
    }

    /// The keys, sorted.
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.run
            .with_map(py, "d.keys()", |m| m.keys().map(str::to_owned).collect())
    }

    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: String,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.run.get(py, &key)? {
            Some(v) => to_py(py, &v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "IDict({:?}, version={}, status={})",
            self.run.idict.name(),
            self.run.idict.version(),
            self.run.idict.status()
        )
    }
}
