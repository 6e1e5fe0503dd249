//! The plain data a run reports (status, samples, applied writes, messages,
//! update events), as read-only Python objects.

use crate::convert::to_py;
use numpy::PyArray1;
use pyo3::prelude::*;

/// A run's status.
#[pyclass(frozen, get_all, module = "idict")]
#[derive(Clone)]
pub struct Status {
    /// "running", "paused", "terminating", "finished" or "failed".
    pub state: String,
    /// Why it failed (empty otherwise).
    pub message: String,
    /// True while the computation is blocked in wait().
    pub held: bool,
    /// Steps it may still take before holding again (when paused).
    pub steps_pending: u64,
    /// Steps done: the wait() calls that let the computation go on.
    pub step: u64,
    /// The step a scheduled pause holds at, if any.
    pub pause_at: Option<u64>,
    /// The step a scheduled terminate ends the run at, if any.
    pub terminate_at: Option<u64>,
    /// An MPI job held by rank 0: the ranks not yet at the wait() (the
    /// first 32 of them).
    pub ranks_behind: Vec<u32>,
}

impl From<idict::Status> for Status {
    fn from(s: idict::Status) -> Self {
        Status {
            state: s.state.name().to_owned(),
            message: s.message,
            held: s.held,
            steps_pending: s.steps_pending,
            step: s.step,
            pause_at: s.pause_at,
            terminate_at: s.terminate_at,
            ranks_behind: s.ranks_behind_first,
        }
    }
}

#[pymethods]
impl Status {
    fn __repr__(&self) -> String {
        let mut s = format!("Status({}", self.state);
        if !self.message.is_empty() {
            s.push_str(&format!(": {}", self.message));
        }
        if self.held {
            s.push_str(", held");
        }
        if self.steps_pending > 0 {
            s.push_str(&format!(", {} steps pending", self.steps_pending));
        }
        s.push_str(&format!(", step {}", self.step));
        if let Some(at) = self.pause_at {
            s.push_str(&format!(", pauses at step {at}"));
        }
        if let Some(at) = self.terminate_at {
            s.push_str(&format!(", terminates at step {at}"));
        }
        s.push(')');
        s
    }
    fn __str__(&self) -> String {
        if self.message.is_empty() {
            self.state.clone()
        } else {
            format!("{}: {}", self.state, self.message)
        }
    }
}

/// Samples of a scalar key: parallel numpy arrays, oldest first.
/// `versions, times, values = d.history("residual")` unpacks it.
#[pyclass(frozen, module = "idict")]
pub struct History {
    #[pyo3(get)]
    pub versions: Py<PyArray1<u64>>,
    /// Seconds since the run started.
    #[pyo3(get)]
    pub times: Py<PyArray1<f64>>,
    #[pyo3(get)]
    pub values: Py<PyArray1<f64>>,
    len: usize,
}

impl History {
    pub fn new(py: Python<'_>, s: idict::Series) -> Self {
        History {
            len: s.len(),
            versions: PyArray1::from_vec(py, s.versions).unbind(),
            times: PyArray1::from_vec(py, s.times).unbind(),
            values: PyArray1::from_vec(py, s.values).unbind(),
        }
    }
}

#[pymethods]
impl History {
    fn __len__(&self) -> usize {
        self.len
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let items = (
            self.versions.clone_ref(py),
            self.times.clone_ref(py),
            self.values.clone_ref(py),
        );
        items
            .into_pyobject(py)?
            .into_any()
            .try_iter()
            .map(Bound::into_any)
    }
    fn __repr__(&self) -> String {
        format!("History({} samples)", self.len)
    }
}

/// A client's steering write, applied at wait() or sync().
#[pyclass(frozen, get_all, module = "idict")]
pub struct AppliedWrite {
    pub write_id: u64,
    pub key: String,
    pub value: Py<PyAny>,
    /// Who sent it (the client's name).
    pub origin: String,
    /// The version that published it.
    pub version: u64,
}

impl AppliedWrite {
    pub fn new(py: Python<'_>, a: &idict::AppliedWrite) -> PyResult<Self> {
        Ok(AppliedWrite {
            write_id: a.write_id,
            key: a.key.clone(),
            value: to_py(py, &a.value)?.unbind(),
            origin: a.origin.clone(),
            version: a.version,
        })
    }
}

#[pymethods]
impl AppliedWrite {
    fn __repr__(&self, py: Python<'_>) -> String {
        let value = self
            .value
            .bind(py)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_default();
        format!(
            "AppliedWrite(#{} {} = {} from {:?} in v{})",
            self.write_id, self.key, value, self.origin, self.version
        )
    }
}

pub fn applied_list(py: Python<'_>, writes: &[idict::AppliedWrite]) -> PyResult<Vec<AppliedWrite>> {
    writes.iter().map(|a| AppliedWrite::new(py, a)).collect()
}

/// A message the run logged; `trigger` is set when a trigger's firing
/// logged it.
#[pyclass(frozen, get_all, module = "idict")]
pub struct Message {
    pub seq: u64,
    pub level: String,
    pub text: String,
    pub time: f64,
    pub version: u64,
    pub trigger: Option<Firing>,
}

impl From<&idict::LogMessage> for Message {
    fn from(m: &idict::LogMessage) -> Self {
        Message {
            seq: m.seq,
            level: m.level.name().to_owned(),
            text: m.text.clone(),
            time: m.time,
            version: m.version,
            trigger: m.trigger.as_ref().map(Firing::from),
        }
    }
}

/// A trigger's firing: its name and condition, the version it fired at,
/// and the values of the keys it read that made it true.
#[pyclass(frozen, get_all, module = "idict")]
#[derive(Clone)]
pub struct Firing {
    pub name: String,
    pub condition: String,
    pub version: u64,
    pub values: std::collections::BTreeMap<String, f64>,
}

impl From<&idict::TriggerFiring> for Firing {
    fn from(f: &idict::TriggerFiring) -> Self {
        Firing {
            name: f.name.clone(),
            condition: f.condition.clone(),
            version: f.version,
            values: f.values.iter().cloned().collect(),
        }
    }
}

#[pymethods]
impl Firing {
    fn __repr__(&self) -> String {
        format!(
            "Firing({:?} at v{}: {})",
            self.name, self.version, self.condition
        )
    }
}

/// A run's trigger: when `condition` becomes true at an update, the run
/// logs it (at `level`, with `message`) and pauses, terminates or
/// checkpoints as set. `fired` times so far, the last at
/// `last_fired_version` (0: never).
#[pyclass(frozen, get_all, module = "idict")]
#[derive(Clone)]
pub struct Trigger {
    pub name: String,
    pub condition: String,
    pub pause: bool,
    pub terminate: bool,
    pub checkpoint: bool,
    pub level: String,
    pub message: String,
    pub from_program: bool,
    pub fired: u64,
    pub last_fired_version: u64,
}

impl From<&idict::TriggerInfo> for Trigger {
    fn from(t: &idict::TriggerInfo) -> Self {
        Trigger {
            name: t.name.clone(),
            condition: t.condition.clone(),
            pause: t.actions.pause,
            terminate: t.actions.terminate,
            checkpoint: t.actions.checkpoint,
            level: t.actions.level.name().to_owned(),
            message: t.actions.message.clone(),
            from_program: t.from_program,
            fired: t.fired,
            last_fired_version: t.last_fired_version,
        }
    }
}

#[pymethods]
impl Trigger {
    fn __repr__(&self) -> String {
        format!(
            "Trigger({:?}: {} -> fired {})",
            self.name, self.condition, self.fired
        )
    }
}

/// What a trigger does, from the keyword arguments both `IDict.trigger`
/// and `Run.add_trigger` take.
pub fn trigger_actions(
    pause: bool,
    terminate: bool,
    checkpoint: bool,
    level: Option<&str>,
    message: String,
) -> PyResult<idict::TriggerActions> {
    let level = match level {
        Some(l) => parse_level(l)?,
        None if terminate => idict::Level::Error,
        None => idict::Level::Warn,
    };
    Ok(idict::TriggerActions {
        pause,
        terminate,
        checkpoint,
        level,
        message,
    })
}

#[pymethods]
impl Message {
    fn __repr__(&self) -> String {
        format!("Message({} v{}: {:?})", self.level, self.version, self.text)
    }
}

/// Samples of a key that the run's history thinned before this client got
/// them: between the samples at `after_version` (0: the start) and
/// `until_version`, `dropped` are missing and `kept` were sent.
#[pyclass(frozen, get_all, module = "idict")]
pub struct Thinned {
    pub key: String,
    pub after_version: u64,
    pub until_version: u64,
    pub dropped: u64,
    pub kept: u64,
}

impl From<&idict::Thinned> for Thinned {
    fn from(t: &idict::Thinned) -> Self {
        Thinned {
            key: t.key.clone(),
            after_version: t.after_version,
            until_version: t.until_version,
            dropped: t.dropped,
            kept: t.kept,
        }
    }
}

#[pymethods]
impl Thinned {
    fn __repr__(&self) -> String {
        let t = idict::Thinned {
            key: self.key.clone(),
            after_version: self.after_version,
            until_version: self.until_version,
            dropped: self.dropped,
            kept: self.kept,
        };
        format!("Thinned({})", t.describe())
    }
}

/// What a callback gets after each published update.
#[pyclass(frozen, get_all, module = "idict")]
pub struct UpdateEvent {
    pub version: u64,
    pub time: f64,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub applied: Vec<Py<AppliedWrite>>,
    #[pyo3(name = "final")]
    pub is_final: bool,
}

impl UpdateEvent {
    pub fn new(py: Python<'_>, ev: &idict::UpdateEvent) -> PyResult<Self> {
        Ok(UpdateEvent {
            version: ev.version(),
            time: ev.time(),
            changed: ev.changed().map(str::to_owned).collect(),
            removed: ev.removed().map(str::to_owned).collect(),
            applied: ev
                .applied()
                .iter()
                .map(|a| Py::new(py, AppliedWrite::new(py, a)?))
                .collect::<PyResult<_>>()?,
            is_final: ev.is_final(),
        })
    }
}

#[pymethods]
impl UpdateEvent {
    fn __repr__(&self) -> String {
        format!(
            "UpdateEvent(v{}, changed={:?}{})",
            self.version,
            self.changed,
            if self.is_final { ", final" } else { "" }
        )
    }
}

pub fn parse_level(level: &str) -> PyResult<idict::Level> {
    Ok(match level.to_ascii_lowercase().as_str() {
        "debug" => idict::Level::Debug,
        "info" => idict::Level::Info,
        "warn" | "warning" => idict::Level::Warn,
        "error" => idict::Level::Error,
        _ => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown message level {level:?}: use \"debug\", \"info\", \"warn\" or \"error\""
            )));
        }
    })
}
