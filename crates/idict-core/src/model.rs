//! The typed run model shared by the embedded server and the client: a run's
//! status, its log messages, applied steering writes and key metadata.

use crate::value::{DType, Value, ValueKind};
use std::fmt;

/// Where a replay is asked to go (the Control RPC's seek).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeekTo {
    /// The state at this recorded version (the last update at or before it).
    Version(u64),
    /// The state at this recorded time, in seconds since the run started.
    Time(f64),
}

/// What a replayed recording spans, with its marks (`RunInfo.replay`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayTimeline {
    pub first_version: u64,
    pub last_version: u64,
    /// Recorded seconds since the run started.
    pub first_time: f64,
    pub last_time: f64,
    /// Control actions and applied writes, by version (the first
    /// [`ReplayTimeline::MAX_MARKS`]).
    pub marks: Vec<TimelineMark>,
    /// Marks beyond those listed.
    pub marks_left_off: u64,
    /// The recording ends with the run's final update.
    pub complete: bool,
    /// The recorded run's pid, host and start (Unix ms).
    pub pid: u32,
    pub host: String,
    pub started_unix_ms: i64,
}

impl ReplayTimeline {
    /// Marks sent with the run's info at most.
    pub const MAX_MARKS: usize = 1000;
}

/// A control action or applied write on a replay's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineMark {
    pub version: u64,
    pub time: f64,
    pub kind: MarkKind,
    /// e.g. "pause by alice@login1", "dt = 1e-06 by alice@login1".
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Control,
    Write,
}

/// The life cycle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Computing; `wait()` returns at once.
    Running,
    /// `wait()` blocks until resume, step or terminate.
    Paused,
    /// Terminate was asked; the final update is not published yet.
    Terminating,
    /// The final update is published; nothing changes any more.
    Finished,
    /// The computation failed (panicked); see [`Status::message`].
    Failed,
}

impl RunState {
    /// The status word the CLI prints and its JSON carries.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Terminating => "terminating",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
        }
    }

    /// Finished or Failed: the run will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunState::Finished | RunState::Failed)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A run's status: level-triggered state, always whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: RunState,
    /// Why the run failed; empty otherwise.
    pub message: String,
    /// True while the computation is blocked in `wait()`.
    pub held: bool,
    /// While paused: how many more `wait()` calls will pass.
    pub steps_pending: u64,
    /// Steps done: the `wait()` calls that let the computation go on.
    pub step: u64,
    /// A pause asked for at a step: the run holds when it has done that
    /// many steps (`idict pause RUN --at-step N`).
    pub pause_at: Option<u64>,
    /// A terminate asked for at a step, likewise.
    pub terminate_at: Option<u64>,
    /// An MPI job held by rank 0: how many ranks have not reached the
    /// `wait()` yet (they are still computing the step), and the first of
    /// them (at most [`RANKS_LISTED`]).
    pub ranks_behind: u32,
    pub ranks_behind_first: Vec<u32>,
}

/// How many of the ranks behind a status lists.
pub const RANKS_LISTED: usize = 32;

impl Status {
    pub fn running() -> Self {
        Status {
            state: RunState::Running,
            message: String::new(),
            held: false,
            steps_pending: 0,
            step: 0,
            pause_at: None,
            terminate_at: None,
            ranks_behind: 0,
            ranks_behind_first: Vec::new(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state.name())?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// Severity of a log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of a run's message log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMessage {
    /// Increasing from 1.
    pub seq: u64,
    pub level: Level,
    pub text: String,
    /// Seconds since the run started.
    pub time: f64,
    /// The newest published version when it was logged.
    pub version: u64,
    /// Set when a trigger's firing logged it.
    pub trigger: Option<TriggerFiring>,
}

/// What a trigger does when its condition becomes true. It always logs a
/// message (at `level`, with `message` appended if set).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerActions {
    /// Hold the run at its next `wait()`, before another step.
    pub pause: bool,
    pub terminate: bool,
    /// Write a checkpoint of the run (`IDict::checkpoint`) next to it.
    pub checkpoint: bool,
    pub level: Level,
    pub message: String,
}

impl Default for TriggerActions {
    fn default() -> Self {
        TriggerActions {
            pause: false,
            terminate: false,
            checkpoint: false,
            level: Level::Warn,
            message: String::new(),
        }
    }
}

impl TriggerActions {
    /// Pause the run (and log at `Warn`).
    pub fn pause() -> Self {
        TriggerActions {
            pause: true,
            ..Self::default()
        }
    }
    /// Terminate the run (and log at `Error`).
    pub fn terminate() -> Self {
        TriggerActions {
            terminate: true,
            level: Level::Error,
            ..Self::default()
        }
    }
    /// Only log `text` at `level`.
    pub fn message(level: Level, text: impl Into<String>) -> Self {
        TriggerActions {
            level,
            message: text.into(),
            ..Self::default()
        }
    }
    /// Also write a checkpoint.
    pub fn with_checkpoint(mut self) -> Self {
        self.checkpoint = true;
        self
    }
    /// Also log `text` (at `level`).
    pub fn with_message(mut self, level: Level, text: impl Into<String>) -> Self {
        self.level = level;
        self.message = text.into();
        self
    }
    /// The actions in words, as `idict trigger ls` shows them.
    pub fn describe(&self) -> String {
        let mut words = Vec::new();
        if self.pause {
            words.push("pause".to_string());
        }
        if self.terminate {
            words.push("terminate".to_string());
        }
        if self.checkpoint {
            words.push("checkpoint".to_string());
        }
        if self.message.is_empty() {
            words.push(format!("log {}", self.level));
        } else {
            words.push(format!("log {} \"{}\"", self.level, self.message));
        }
        words.join(", ")
    }
}

/// A trigger's firing: which, at which version, and the values of the
/// keys its condition read that made it true.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerFiring {
    pub name: String,
    pub condition: String,
    pub version: u64,
    pub values: Vec<(String, f64)>,
}

/// A trigger as a run lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerInfo {
    pub name: String,
    pub condition: String,
    pub actions: TriggerActions,
    /// Declared by the program (`IDict::trigger`), not added by a client.
    pub from_program: bool,
    /// How many times it fired, and the version it last did (0: never).
    pub fired: u64,
    pub last_fired_version: u64,
}

/// A steering write the computation applied at a safe point.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedWrite {
    /// The id the Set reply gave.
    pub write_id: u64,
    pub key: String,
    pub value: Value,
    /// Who sent it: client name and peer address.
    pub origin: String,
    /// The version in which it first appears (0 until published).
    pub version: u64,
}

/// Samples of a key that its history thinned (dropped to stay within its
/// memory budget) before this client received them. Between the samples at
/// `after_version` (which the client has; 0: the start) and `until_version`,
/// `dropped` samples are missing and `kept` were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thinned {
    pub key: String,
    pub after_version: u64,
    pub until_version: u64,
    pub dropped: u64,
    pub kept: u64,
}

impl Thinned {
    /// One sample in how many was sent, of `kept` sent and `dropped` not
    /// (None when none was sent).
    pub fn one_in(kept: u64, dropped: u64) -> Option<u64> {
        (kept > 0).then(|| ((kept + dropped) as f64 / kept as f64).round() as u64)
    }

    /// One line for a person: "x thinned 1:4 from v120000 to v380000
    /// (195000 samples not sent)".
    pub fn describe(&self) -> String {
        let how = match Self::one_in(self.kept, self.dropped) {
            Some(n) => format!("thinned 1:{n}"),
            None => "thinned".to_string(),
        };
        format!(
            "{} {how} from v{} to v{} ({} samples not sent)",
            self.key, self.after_version, self.until_version, self.dropped
        )
    }
}

/// The rule a client's write to a writable key must follow, as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct WritableInfo {
    pub kind: ValueKind,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub description: String,
}

/// Metadata of one published key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    pub name: String,
    pub kind: ValueKind,
    /// For arrays: element type and shape.
    pub array: Option<(DType, Vec<usize>)>,
    pub changed_version: u64,
    /// Present when clients may write the key.
    pub writable: Option<WritableInfo>,
    pub history_len: u64,
}

/// Which RPCs a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Read-only.
    Observer,
    /// Read, control and steer.
    Controller,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Observer => "observer",
            Role::Controller => "controller",
        }
    }
}
