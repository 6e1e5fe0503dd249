//! What the inspector knows about one run: the model the background network
//! task writes and the views read. Nothing here does I/O.

use crate::series::SeriesData;
use idict::client::{RunInfo, Update};
use idict::{KeyInfo, LogMessage, Role, Status, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

/// The state of the connection to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting,
    Connected,
    /// Lost; the last state stays visible, marked stale.
    Disconnected {
        since: Instant,
        error: String,
    },
    /// The run finished or failed: nothing more will come.
    Ended,
}

/// A steering write sent and not yet applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingWrite {
    pub key: String,
    pub value: Value,
}

/// Log messages kept per run.
const MAX_MESSAGES: usize = 2000;

/// One open run.
#[derive(Debug)]
pub struct RunModel {
    /// What the user asked to open (name, pid, address or run file).
    pub target: String,
    pub name: String,
    pub address: String,
    pub pid: u32,
    pub host: String,
    pub connection: Connection,
    pub status: Option<Status>,
    pub version: u64,
    /// Seconds since the run started, at `version`.
    pub time: f64,
    pub values: BTreeMap<String, Value>,
    /// When each key last changed (for highlighting).
    pub changed_at: HashMap<String, Instant>,
    pub keys: BTreeMap<String, KeyInfo>,
    pub role: Option<Role>,
    pub updates_per_second: f64,
    pub watchers: u64,
    pub series: BTreeMap<String, SeriesData>,
    pub messages: VecDeque<LogMessage>,
    /// Writes sent, by write id, until the run reports them applied.
    pub pending: BTreeMap<u64, PendingWrite>,
    /// Ids of recently applied writes (a report can beat the Set reply).
    recently_applied: VecDeque<u64>,
    /// The last refusal of a write, per key.
    pub write_errors: HashMap<String, String>,
    /// The last failed action (pause, step…), shown until the next one.
    pub error: Option<String>,
    /// Bumped whenever the state is replaced (a reconnect).
    pub generation: u64,
}

impl RunModel {
    pub fn new(target: &str) -> Self {
        RunModel {
            target: target.to_string(),
            name: target.to_string(),
            address: String::new(),
            pid: 0,
            host: String::new(),
            connection: Connection::Connecting,
            status: None,
            version: 0,
            time: 0.0,
            values: BTreeMap::new(),
            changed_at: HashMap::new(),
            keys: BTreeMap::new(),
            role: None,
            updates_per_second: 0.0,
            watchers: 0,
            series: BTreeMap::new(),
            messages: VecDeque::new(),
            pending: BTreeMap::new(),
            recently_applied: VecDeque::new(),
            write_errors: HashMap::new(),
            error: None,
            generation: 0,
        }
    }

    /// True when the shown state may be out of date.
    pub fn is_stale(&self) -> bool {
        matches!(
            self.connection,
            Connection::Disconnected { .. } | Connection::Connecting
        ) && self.version > 0
    }

    /// May this client pause, step, terminate and set?
    pub fn can_control(&self) -> bool {
        self.role == Some(Role::Controller)
            && self.connection == Connection::Connected
            && !self.status.as_ref().is_some_and(|s| s.state.is_terminal())
    }

    pub fn apply_info(&mut self, info: &RunInfo) {
        self.name = info.name.clone();
        self.pid = info.pid;
        self.host = info.host.clone();
        self.keys = info
            .keys
            .iter()
            .map(|k| (k.name.clone(), k.clone()))
            .collect();
        self.role = info.role;
        self.updates_per_second = info.updates_per_second;
        self.watchers = info.watchers;
    }

    /// Takes one delivered update into the model.
    pub fn apply(&mut self, u: &Update, now: Instant) {
        if u.reset {
            self.values.clear();
            self.series.clear();
            self.changed_at.clear();
            self.generation += 1;
        }
        for (k, v) in &u.changed {
            self.values.insert(k.clone(), v.clone());
            if !u.reset {
                self.changed_at.insert(k.clone(), now);
            }
        }
        for k in &u.removed {
            self.values.remove(k);
        }
        for (k, s) in &u.samples {
            let series = self.series.entry(k.clone()).or_default();
            for x in s.iter() {
                series.push(x.version as f64, x.time, x.value);
            }
        }
        for m in &u.messages {
            if self.messages.back().is_none_or(|last| last.seq < m.seq) {
                self.messages.push_back(m.clone());
            }
        }
        while self.messages.len() > MAX_MESSAGES {
            self.messages.pop_front();
        }
        for a in &u.applied {
            self.pending.remove(&a.write_id);
            self.recently_applied.push_back(a.write_id);
            if self.recently_applied.len() > 1000 {
                self.recently_applied.pop_front();
            }
        }
        self.version = u.version;
        self.time = u.time;
        self.status = Some(u.status.clone());
        if u.last {
            self.connection = Connection::Ended;
            self.pending.clear();
        }
    }

    pub fn applied_recently(&self, write_id: u64) -> bool {
        self.recently_applied.contains(&write_id)
    }

    /// Scalar keys that have a plot series.
    pub fn plottable(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }
}
