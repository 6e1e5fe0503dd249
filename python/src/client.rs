//! The Python client: `idict.connect(run)` gives a `Run` to read, watch and
//! drive; `idict.runs()` lists the runs on this machine. It is the Rust
//! client underneath, on a runtime of its own; every call releases the GIL
//! while it waits on the network and checks for Ctrl-C as it does.

use crate::convert::{to_py, to_value};
use crate::embed::duration;
use crate::errors::{Disconnected, client_error};
use crate::model::{
    AppliedWrite, History, Message, Status, Thinned, Trigger, applied_list, trigger_actions,
};
use futures::{Stream, StreamExt};
use idict::client::{Client, ClientError, ConnectOptions, Update as RustUpdate, WatchOptions};
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

/// How often a blocked call looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

type UpdateStream = Pin<Box<dyn Stream<Item = Result<RustUpdate, ClientError>> + Send>>;

/// The runtime every client of this process shares: one thread, apart from
/// Python's, so the network never runs on a Python thread.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("idict-client")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the client's runtime: {e}")))
}

/// Runs `fut` to completion without the GIL; Ctrl-C (or any signal handler
/// that raises) abandons it and raises.
fn block_on<T: Send>(py: Python<'_>, fut: impl Future<Output = T> + Send) -> PyResult<T> {
    let rt = runtime()?;
    py.detach(|| {
        rt.block_on(async {
            let mut fut = std::pin::pin!(fut);
            loop {
                tokio::select! {
                    v = &mut fut => return Ok(v),
                    _ = tokio::time::sleep(SIGNAL_CHECK) => {
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}

/// Like `block_on` for a call that returns a client result.
fn call<T: Send>(
    py: Python<'_>,
    fut: impl Future<Output = Result<T, ClientError>> + Send,
) -> PyResult<T> {
    block_on(py, fut)?.map_err(client_error)
}

/// Connects to a run by name, pid, address (`http://127.0.0.1:PORT`) or run
/// file path. The token comes from the run file unless given (or
/// `$IDICT_TOKEN`).
#[pyfunction]
#[pyo3(signature = (run, token=None, timeout=5.0))]
pub fn connect(py: Python<'_>, run: String, token: Option<String>, timeout: f64) -> PyResult<Run> {
    let opts = ConnectOptions {
        token,
        client_name: format!("python {}", ConnectOptions::default().client_name),
        connect_timeout: duration(timeout, "timeout")?,
        ..ConnectOptions::default()
    };
    let client = call(py, Client::connect_with(&run, opts))?;
    let info = call(py, client.info())?;
    Ok(Run {
        client: parking_lot::Mutex::new(Some(client)),
        name: info.name,
    })
}

/// A run on this machine (its run file).
#[pyclass(frozen, get_all, module = "idict")]
pub struct RunEntry {
    name: String,
    pid: u32,
    host: String,
    address: String,
    started_unix_ms: i64,
    run_file: String,
}

#[pymethods]
impl RunEntry {
    fn __repr__(&self) -> String {
        format!(
            "RunEntry({:?}, pid={}, address={:?})",
            self.name, self.pid, self.address
        )
    }
}

/// The live runs on this machine (from the runs directory).
#[pyfunction]
pub fn runs(py: Python<'_>) -> PyResult<Vec<RunEntry>> {
    let found = py
        .detach(idict::runfile::list_runs)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(found
        .into_iter()
        .map(|f| RunEntry {
            name: f.run.name,
            pid: f.run.pid,
            host: f.run.host,
            address: f.run.address,
            started_unix_ms: f.run.started_unix_ms,
            run_file: f.path.display().to_string(),
        })
        .collect())
}

/// A connection to one run (from `idict.connect`). Usable from several
/// threads at once.
#[pyclass(frozen, module = "idict")]
pub struct Run {
    /// Cloned out for each call (clones share the connection), so `close()`
    /// from another thread never waits for a call in flight.
    client: parking_lot::Mutex<Option<Client>>,
    #[pyo3(get)]
    name: String,
}

impl Run {
    fn client(&self) -> PyResult<Client> {
        self.client
            .lock()
            .clone()
            .ok_or_else(|| Disconnected::new_err("this Run was closed"))
    }
}

#[pymethods]
impl Run {
    #[getter]
    fn address(&self) -> PyResult<String> {
        Ok(self.client()?.address().to_owned())
    }

    fn info(&self, py: Python<'_>) -> PyResult<RunInfo> {
        let c = &self.client()?;
        let i = call(py, c.info())?;
        Ok(RunInfo {
            name: i.name,
            pid: i.pid,
            host: i.host,
            started_unix_ms: i.started_unix_ms,
            status: i.status.into(),
            version: i.version,
            keys: i.keys.into_iter().map(KeyInfo::from).collect(),
            watchers: i.watchers,
            updates_per_second: i.updates_per_second,
            uptime_seconds: i.uptime_seconds,
            pending_writes: i.pending_writes,
            role: i.role.map(|r| r.name().to_owned()),
            server_version: i.server_version,
            replay_of: i.replay_of,
            ranks: i.ranks,
            replay: i.replay.map(ReplayTimeline::from),
            triggers: i.triggers.iter().map(Trigger::from).collect(),
        })
    }

    /// Adds a trigger to the run (needs the controller token); the
    /// arguments are `IDict.trigger`'s. Returns the run's notes on it. A bad
    /// condition raises InvalidArgument naming the column.
    #[pyo3(signature = (name, condition, *, pause=false, terminate=false, checkpoint=false, level=None, message=None))]
    #[allow(clippy::too_many_arguments)]
    fn add_trigger(
        &self,
        py: Python<'_>,
        name: &str,
        condition: &str,
        pause: bool,
        terminate: bool,
        checkpoint: bool,
        level: Option<&str>,
        message: Option<String>,
    ) -> PyResult<Vec<String>> {
        let actions = trigger_actions(
            pause,
            terminate,
            checkpoint,
            level,
            message.unwrap_or_default(),
        )?;
        let c = &self.client()?;
        Ok(call(py, c.add_trigger(name, condition, &actions))?.notes)
    }

    /// Removes the run's trigger called `name` (NotFound if none).
    fn remove_trigger(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let c = &self.client()?;
        call(py, c.remove_trigger(name))?;
        Ok(())
    }

    /// The run's published values (arrays as read-only numpy arrays).
    #[pyo3(signature = (prefix=""))]
    fn snapshot<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.client()?;
        let s = call(py, c.snapshot(prefix))?;
        let out = PyDict::new(py);
        for (k, v) in &s.values {
            out.set_item(k, to_py(py, v)?)?;
        }
        Ok(out)
    }

    /// `for u in run.watch(): ...`: the whole state first, then what changed.
    #[pyo3(signature = (prefix="", since_version=0, history=false))]
    fn watch(
        &self,
        py: Python<'_>,
        prefix: &str,
        since_version: u64,
        history: bool,
    ) -> PyResult<Watch> {
        let c = &self.client()?;
        let opts = WatchOptions {
            since_version,
            prefix: prefix.to_owned(),
            with_history: history,
        };
        let stream = call(py, c.watch(opts))?;
        Ok(Watch::new(Box::pin(stream)))
    }

    /// The recorded samples of a scalar key.
    fn history(&self, py: Python<'_>, key: &str) -> PyResult<History> {
        let c = &self.client()?;
        let mut all = call(py, c.history(&[key], 0))?;
        Ok(History::new(py, all.remove(key).unwrap_or_default()))
    }

    /// Pauses now, or when the run has done `at_step` steps.
    #[pyo3(signature = (at_step=None))]
    fn pause(&self, py: Python<'_>, at_step: Option<u64>) -> PyResult<Status> {
        let c = &self.client()?;
        match at_step {
            Some(step) => call(py, c.pause_at(step)),
            None => call(py, c.pause()),
        }
        .map(Status::from)
    }
    fn resume(&self, py: Python<'_>) -> PyResult<Status> {
        let c = &self.client()?;
        call(py, c.resume()).map(Status::from)
    }
    #[pyo3(signature = (n=1))]
    fn step(&self, py: Python<'_>, n: u64) -> PyResult<Status> {
        let c = &self.client()?;
        call(py, c.step(n)).map(Status::from)
    }
    /// Terminates now, or when the run has done `at_step` steps.
    #[pyo3(signature = (at_step=None))]
    fn terminate(&self, py: Python<'_>, at_step: Option<u64>) -> PyResult<Status> {
        let c = &self.client()?;
        match at_step {
            Some(step) => call(py, c.terminate_at(step)),
            None => call(py, c.terminate()),
        }
        .map(Status::from)
    }

    /// Moves a replay to a recorded version or time (seconds since the
    /// run started), forward or back; a live run refuses.
    #[pyo3(signature = (version=None, time=None))]
    fn seek(&self, py: Python<'_>, version: Option<u64>, time: Option<f64>) -> PyResult<Status> {
        let to = match (version, time) {
            (Some(v), None) => idict::SeekTo::Version(v),
            (None, Some(t)) if t.is_finite() => idict::SeekTo::Time(t),
            (None, Some(t)) => {
                return Err(crate::errors::InvalidArgument::new_err(format!(
                    "time must be a finite number of seconds, got {t}"
                )));
            }
            _ => {
                return Err(crate::errors::InvalidArgument::new_err(
                    "give one of version= or time=",
                ));
            }
        };
        let c = &self.client()?;
        call(py, c.seek(to)).map(Status::from)
    }

    /// Asks the run to set a writable key; it applies it at its next wait(),
    /// or at the wait() after step `at_step`. `wait=True` returns once
    /// applied (or raises after `timeout` seconds).
    #[pyo3(signature = (key, value, wait=false, timeout=30.0, at_step=None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &str,
        value: &Bound<'_, PyAny>,
        wait: bool,
        timeout: f64,
        at_step: Option<u64>,
    ) -> PyResult<WriteReceipt> {
        let timeout = duration(timeout, "timeout")?;
        let value = to_value(key, value)?;
        let c = self.client()?;
        let key = key.to_owned();
        let outcome = block_on(py, async move {
            let write =
                async |c: &idict::client::Client, key: &str, value: idict::Value| match at_step {
                    Some(step) => c.set_at(key, value, step).await,
                    None => c.set(key, value).await,
                };
            if !wait {
                return write(&c, &key, value).await.map(|r| (r, None));
            }
            // Watch first, so the report of the write cannot be missed.
            let since = c.info().await?.version;
            let mut stream = c
                .watch(WatchOptions {
                    since_version: since.max(1),
                    prefix: key.clone(),
                    with_history: false,
                })
                .await?;
            let receipt = write(&c, &key, value).await?;
            let applied = tokio::time::timeout(timeout, async {
                while let Some(u) = stream.next().await {
                    let u = u?;
                    if let Some(a) = u.applied.iter().find(|a| a.write_id == receipt.write_id) {
                        return Ok(Some(a.version));
                    }
                    if u.last {
                        return Err(ClientError::FailedPrecondition(format!(
                            "the run ended before applying the write to {key}"
                        )));
                    }
                }
                Err(ClientError::Disconnected(
                    "the run's server closed before the write was applied".into(),
                ))
            })
            .await
            .map_err(|_| {
                ClientError::Disconnected(format!(
                    "the write to {key} was accepted but not applied within {:?} \
                     (is the run paused, or not calling wait()?)",
                    timeout
                ))
            })??;
            Ok((receipt, applied))
        })?;
        let (receipt, applied_version) = outcome.map_err(client_error)?;
        Ok(WriteReceipt {
            write_id: receipt.write_id,
            queue_position: receipt.queue_position,
            applied_version,
        })
    }

    /// Drops the connection.
    fn close(&self) {
        self.client.lock().take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        match &*self.client.lock() {
            Some(c) => format!("Run({:?} at {})", self.name, c.address()),
            None => format!("Run({:?}, closed)", self.name),
        }
    }
}

/// `for u in run.watch(): ...`: blocks, releasing the GIL, for the next
/// update; Ctrl-C raises KeyboardInterrupt.
#[pyclass(frozen, module = "idict")]
pub struct Watch {
    /// Taken out while a `__next__` waits on it; gone once the watch ended.
    stream: parking_lot::Mutex<Option<UpdateStream>>,
    /// Set by `close()`, which may come from another thread while a
    /// `__next__` waits: that wait then ends and the stream is dropped.
    closed: std::sync::atomic::AtomicBool,
    /// The run's last update was delivered (or the stream failed).
    ended: std::sync::atomic::AtomicBool,
    close_now: tokio::sync::Notify,
}

impl Watch {
    fn new(stream: UpdateStream) -> Self {
        Watch {
            stream: parking_lot::Mutex::new(Some(stream)),
            closed: std::sync::atomic::AtomicBool::new(false),
            ended: std::sync::atomic::AtomicBool::new(false),
            close_now: tokio::sync::Notify::new(),
        }
    }
}

#[pymethods]
impl Watch {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Update> {
        use std::sync::atomic::Ordering;
        let Some(mut stream) = self.stream.lock().take() else {
            if self.ended.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
                return Err(PyStopIteration::new_err(()));
            }
            return Err(PyRuntimeError::new_err(
                "another thread is reading this watch: use one watch per thread",
            ));
        };
        // Interrupted (Ctrl-C): the stream is dropped with the future, and
        // the watch is over, as the exception ends the loop anyway.
        let (item, stream) = block_on(py, async {
            let closed = self.close_now.notified();
            if self.closed.load(Ordering::Acquire) {
                return (None, stream);
            }
            tokio::select! {
                n = stream.next() => (Some(n), stream),
                _ = closed => (None, stream),
            }
        })?;
        if !matches!(item, Some(Some(Ok(ref u))) if !u.last) {
            self.ended.store(true, Ordering::Release);
        }
        match item {
            // Closed by `close()`.
            None => Err(PyStopIteration::new_err(())),
            Some(None) => Err(Disconnected::new_err(
                "the run's server closed the watch before the run ended",
            )),
            Some(Some(Err(e))) => Err(client_error(e)),
            Some(Some(Ok(u))) => {
                if !u.last && !self.closed.load(Ordering::Acquire) {
                    *self.stream.lock() = Some(stream);
                }
                Update::new(py, u)
            }
        }
    }

    /// Stops watching.
    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.close_now.notify_waiters();
        self.stream.lock().take();
    }
}

/// One delivered update of a watch (several versions may be coalesced).
#[pyclass(frozen, get_all, module = "idict")]
pub struct Update {
    version: u64,
    time: f64,
    /// The first update: `values` is the whole state.
    reset: bool,
    /// Changed keys and their new values.
    values: Py<PyDict>,
    removed: Vec<String>,
    /// Every new sample of each scalar key since the previous update.
    samples: Py<PyDict>,
    status: Status,
    messages: Vec<Py<Message>>,
    applied: Vec<Py<AppliedWrite>>,
    /// The run finished or failed; the iteration ends after this.
    last: bool,
    /// Samples thinned before they could be sent: with `samples`, every
    /// sample published since the watch began, exactly once.
    thinned: Vec<Py<Thinned>>,
}

impl Update {
    fn new(py: Python<'_>, u: RustUpdate) -> PyResult<Self> {
        let values = PyDict::new(py);
        for (k, v) in &u.changed {
            values.set_item(k, to_py(py, v)?)?;
        }
        let samples = PyDict::new(py);
        for (k, s) in u.samples {
            samples.set_item(k, History::new(py, s))?;
        }
        Ok(Update {
            version: u.version,
            time: u.time,
            reset: u.reset,
            values: values.unbind(),
            removed: u.removed,
            samples: samples.unbind(),
            status: u.status.into(),
            messages: u
                .messages
                .iter()
                .map(|m| Py::new(py, Message::from(m)))
                .collect::<PyResult<_>>()?,
            applied: applied_list(py, &u.applied)?
                .into_iter()
                .map(|a| Py::new(py, a))
                .collect::<PyResult<_>>()?,
            last: u.last,
            thinned: u
                .thinned
                .iter()
                .map(|t| Py::new(py, Thinned::from(t)))
                .collect::<PyResult<_>>()?,
        })
    }
}

#[pymethods]
impl Update {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Update(v{} {}, {} values{}{})",
            self.version,
            self.status.state,
            self.values.bind(py).len(),
            if self.reset { ", reset" } else { "" },
            if self.last { ", last" } else { "" }
        )
    }
}

/// A steering write the run accepted.
#[pyclass(frozen, get_all, module = "idict")]
pub struct WriteReceipt {
    write_id: u64,
    queue_position: u64,
    /// With `set(..., wait=True)`: the version that applied it.
    applied_version: Option<u64>,
}

#[pymethods]
impl WriteReceipt {
    fn __repr__(&self) -> String {
        match self.applied_version {
            Some(v) => format!("WriteReceipt(#{}, applied in v{v})", self.write_id),
            None => format!(
                "WriteReceipt(#{}, queue position {})",
                self.write_id, self.queue_position
            ),
        }
    }
}

/// The run's identity, status and keys.
#[pyclass(frozen, get_all, module = "idict")]
pub struct RunInfo {
    name: String,
    pid: u32,
    host: String,
    started_unix_ms: i64,
    status: Status,
    version: u64,
    keys: Vec<KeyInfo>,
    watchers: u64,
    updates_per_second: f64,
    uptime_seconds: f64,
    pending_writes: u64,
    /// "observer" or "controller".
    role: Option<String>,
    server_version: String,
    /// The recording a replay (`idict replay FILE`) replays.
    replay_of: Option<String>,
    /// A replay's timeline.
    replay: Option<ReplayTimeline>,
    /// The processes the run is made of: an MPI job's ranks; 1 for one.
    ranks: u32,
    /// The run's triggers.
    triggers: Vec<Trigger>,
}

/// What a replayed recording spans, and its marks.
#[pyclass(frozen, get_all, module = "idict")]
#[derive(Clone)]
pub struct ReplayTimeline {
    first_version: u64,
    last_version: u64,
    first_time: f64,
    last_time: f64,
    /// (version, time, "control" or "write", label), by version.
    marks: Vec<(u64, f64, String, String)>,
    /// The recording ends with the run's final update.
    complete: bool,
    /// The recorded run's pid, host and start (Unix ms).
    pid: u32,
    host: String,
    started_unix_ms: i64,
}

impl From<idict::ReplayTimeline> for ReplayTimeline {
    fn from(t: idict::ReplayTimeline) -> Self {
        ReplayTimeline {
            first_version: t.first_version,
            last_version: t.last_version,
            first_time: t.first_time,
            last_time: t.last_time,
            marks: t
                .marks
                .into_iter()
                .map(|m| {
                    let kind = match m.kind {
                        idict::MarkKind::Control => "control",
                        idict::MarkKind::Write => "write",
                    };
                    (m.version, m.time, kind.to_owned(), m.label)
                })
                .collect(),
            complete: t.complete,
            pid: t.pid,
            host: t.host,
            started_unix_ms: t.started_unix_ms,
        }
    }
}

#[pymethods]
impl ReplayTimeline {
    fn __repr__(&self) -> String {
        format!(
            "ReplayTimeline(v{} to v{}, {} marks)",
            self.first_version,
            self.last_version,
            self.marks.len()
        )
    }
}

#[pymethods]
impl RunInfo {
    fn __repr__(&self) -> String {
        format!(
            "RunInfo({:?}, pid {}, {}, v{}, {} keys)",
            self.name,
            self.pid,
            self.status.state,
            self.version,
            self.keys.len()
        )
    }
}

/// One key of a run.
#[pyclass(frozen, get_all, module = "idict")]
#[derive(Clone)]
pub struct KeyInfo {
    name: String,
    /// "null", "bool", "int", "float", "str", "bytes", "array", "list", "map".
    kind: String,
    /// For arrays: "f64", "f32", "i64", "i32", "u8" or "bool".
    dtype: Option<String>,
    shape: Option<Vec<usize>>,
    changed_version: u64,
    writable: bool,
    min: Option<f64>,
    max: Option<f64>,
    doc: String,
    history_len: u64,
}

impl From<idict::KeyInfo> for KeyInfo {
    fn from(k: idict::KeyInfo) -> Self {
        let (dtype, shape) = match k.array {
            Some((d, s)) => (Some(d.name().to_owned()), Some(s)),
            None => (None, None),
        };
        KeyInfo {
            name: k.name,
            kind: k.kind.name().to_owned(),
            dtype,
            shape,
            changed_version: k.changed_version,
            writable: k.writable.is_some(),
            min: k.writable.as_ref().and_then(|w| w.min),
            max: k.writable.as_ref().and_then(|w| w.max),
            doc: k.writable.map(|w| w.description).unwrap_or_default(),
            history_len: k.history_len,
        }
    }
}

#[pymethods]
impl KeyInfo {
    fn __repr__(&self) -> String {
        format!(
            "KeyInfo({:?}, {}{})",
            self.name,
            self.kind,
            if self.writable { ", writable" } else { "" }
        )
    }
}
