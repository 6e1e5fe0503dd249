//! What the inspector knows about one run, and how it gets there without
//! either thread waiting on the other.
//!
//! The network task never touches what the UI draws from. It adds what it
//! learns to the run's [`Inbox`] under short locks (merging: values are
//! shared buffers, so no array is copied), and the UI takes the whole inbox
//! at the start of a frame (an O(1) swap, skipped if the network happens to
//! hold the lock) and applies it to its own [`RunModel`], which only the UI
//! thread touches. So the UI thread never waits on the network, and the
//! network never waits on a frame. Nothing here does I/O.

use crate::series::{MAX_SAMPLES, SeriesData, thin_older_half};
use idict::client::{RunInfo, Update};
use idict::{KeyInfo, LogMessage, Role, Series, Status, Thinned, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
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
        /// When the next attempt starts (in the past: one is under way).
        retry_at: Instant,
        /// Attempts made since the run was lost.
        attempts: u32,
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

/// How a steering write went, as the network task learnt it.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// The run accepted it (it is applied at the run's next `wait()`).
    Sent { write_id: u64, write: PendingWrite },
    /// The run (or the connection) refused it.
    Refused { key: String, error: String },
}

/// Log messages kept per run.
const MAX_MESSAGES: usize = 2000;
/// Trigger firings kept for the plots' marks.
const MAX_FIRINGS: usize = 1000;

/// A trigger's firing, as the plots mark it.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub name: String,
    pub version: f64,
    pub time: f64,
    /// The message it logged (what it read, what it did).
    pub text: String,
}
/// Applied writes remembered (to match late Set replies) and held for the UI.
const MAX_APPLIED: usize = 1000;
/// Thinning reports kept per run (the newest).
const MAX_THINNED: usize = 200;

/// What the network task has learnt about a run and the UI has not yet
/// taken: the only state the two threads share. Each part keeps only what
/// the UI still needs (the newest connection state, info and error; one
/// update merged from all delivered since the last frame), so it stays
/// bounded however long the UI goes without a frame.
#[derive(Debug, Default)]
pub struct Inbox {
    connection: Option<Connection>,
    address: Option<String>,
    info: Option<RunInfo>,
    update: Option<Update>,
    /// `Some(None)` clears the error shown.
    error: Option<Option<String>>,
    writes: Vec<WriteOutcome>,
}

impl Inbox {
    pub fn set_connection(&mut self, c: Connection) {
        self.connection = Some(c);
    }

    /// A session has started: the run's details and where it is.
    pub fn connected(&mut self, info: RunInfo, address: String) {
        self.info = Some(info);
        self.address = Some(address);
        self.connection = Some(Connection::Connected);
        self.error = Some(None);
    }

    pub fn set_info(&mut self, info: RunInfo) {
        self.info = Some(info);
    }

    pub fn set_error(&mut self, e: Option<String>) {
        self.error = Some(e);
    }

    pub fn write(&mut self, w: WriteOutcome) {
        self.writes.push(w);
    }

    /// Adds a delivered update, merged with any the UI has not taken yet.
    pub fn update(&mut self, u: Update) {
        if u.last {
            // Said here, in order with the other connection changes, so a
            // reconnect that follows within one frame is not undone by it.
            self.connection = Some(Connection::Ended);
        }
        match &mut self.update {
            Some(pending) => merge(pending, u),
            None => self.update = Some(u),
        }
    }

    /// Everything added since the last take, leaving the inbox empty.
    pub fn take(&mut self) -> Inbox {
        std::mem::take(self)
    }
}

/// Folds `next` into `pending` so that applying the result is the same as
/// applying both in turn (but for when keys count as changed).
fn merge(pending: &mut Update, next: Update) {
    if next.reset {
        // The whole state again: what was pending of the old one is moot,
        // but its messages and applied writes are still news.
        let old = std::mem::replace(pending, next);
        pending.messages.splice(0..0, old.messages);
        pending.applied.splice(0..0, old.applied);
        pending.thinned.splice(0..0, old.thinned);
    } else {
        let Update {
            version,
            reset: _,
            changed,
            removed,
            samples,
            status,
            mut messages,
            mut applied,
            time,
            last,
            mut thinned,
        } = next;
        let mut values: BTreeMap<String, Value> =
            std::mem::take(&mut pending.changed).into_iter().collect();
        let mut gone: BTreeSet<String> = std::mem::take(&mut pending.removed).into_iter().collect();
        // Within one update the changes come first, then the removals.
        for (k, v) in changed {
            gone.remove(&k);
            values.insert(k, v);
        }
        for k in removed {
            values.remove(&k);
            gone.insert(k);
        }
        pending.changed = values.into_iter().collect();
        pending.removed = gone.into_iter().collect();
        let mut series: BTreeMap<String, Series> =
            std::mem::take(&mut pending.samples).into_iter().collect();
        for (k, s) in samples {
            series.entry(k).or_default().extend(&s);
        }
        pending.samples = series
            .into_iter()
            .map(|(k, mut s)| {
                thin(&mut s);
                (k, s)
            })
            .collect();
        pending.messages.append(&mut messages);
        pending.applied.append(&mut applied);
        pending.thinned.append(&mut thinned);
        pending.version = version;
        pending.status = status;
        pending.time = time;
        pending.last |= last;
    }
    // Bounded however long the UI goes without a frame (a minimised window).
    let excess = pending.messages.len().saturating_sub(MAX_MESSAGES);
    pending.messages.drain(..excess);
    let excess = pending.applied.len().saturating_sub(MAX_APPLIED);
    pending.applied.drain(..excess);
    let excess = pending.thinned.len().saturating_sub(MAX_THINNED);
    pending.thinned.drain(..excess);
}

/// Keeps samples waiting for the UI within what the plot keeps anyway:
/// past [`MAX_SAMPLES`] the older half goes to every other sample.
fn thin(s: &mut Series) {
    if s.len() <= MAX_SAMPLES {
        return;
    }
    let half = s.len() / 2;
    thin_older_half(&mut s.versions, half);
    thin_older_half(&mut s.times, half);
    thin_older_half(&mut s.values, half);
}

/// Sets `key`'s entry, copying the key only when it is new.
fn set_or_insert<V>(map: &mut HashMap<String, V>, key: &str, value: V) {
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

/// The suffix of the key an MPI job's rank 0 publishes each rank's value
/// of a reduced key under.
pub const RANKS_SUFFIX: &str = "@ranks";
/// The most ranks whose own curves are kept (past it, only the spread).
pub const MAX_RANK_CURVES: usize = 16;

/// How a key's values spread over an MPI job's ranks, step by step.
#[derive(Debug, Clone, Default)]
pub struct Band {
    pub min: SeriesData,
    pub max: SeriesData,
    /// Each rank's own curve, for a job of at most [`MAX_RANK_CURVES`].
    pub ranks: Vec<SeriesData>,
}

impl Band {
    fn push(&mut self, version: f64, time: f64, values: &[f64]) {
        // A NaN on any rank is the spread's: it must show, not be skipped.
        let nan = values.iter().any(|v| v.is_nan());
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let (lo, hi) = if nan || values.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (lo, hi)
        };
        self.min.push(version, time, lo);
        self.max.push(version, time, hi);
        if values.len() <= MAX_RANK_CURVES {
            self.ranks.resize_with(values.len(), SeriesData::default);
            for (curve, &v) in self.ranks.iter_mut().zip(values) {
                curve.push(version, time, v);
            }
        }
    }
}

/// One open run, as the UI shows it. Only the UI thread has one.
#[derive(Debug)]
pub struct RunModel {
    /// What the user asked to open (name, pid, address or run file).
    pub target: String,
    pub name: String,
    pub address: String,
    pub pid: u32,
    /// The processes the run is made of (an MPI job's ranks; 1 for one).
    pub ranks: u32,
    pub host: String,
    /// When the run started (Unix ms, from its info).
    pub started_unix_ms: i64,
    /// This view followed a restarted run: the pid it had before.
    pub followed_from: Option<u32>,
    /// The run replays this recording.
    pub replay_of: Option<String>,
    /// A replay's span and marks (control actions, applied writes).
    pub replay: Option<idict::ReplayTimeline>,
    pub connection: Connection,
    pub status: Option<Status>,
    pub version: u64,
    /// Seconds since the run started, at `version`.
    pub time: f64,
    pub values: BTreeMap<String, Value>,
    /// When each key last changed (for highlighting).
    pub changed_at: HashMap<String, Instant>,
    /// The version at which each key last changed: views that derive
    /// something costly from a value (plot points, a texture) rebuild it
    /// only when this (or `generation`) moves.
    pub key_versions: HashMap<String, u64>,
    /// Min, max and mean of each array key, computed once per change (the
    /// views would otherwise walk every element every frame).
    pub array_stats: HashMap<String, idict::value::ArrayStats>,
    /// The writable keys' info (the info is asked for those only: a run
    /// of 100,000 keys would send them all each second).
    pub keys: BTreeMap<String, KeyInfo>,
    pub role: Option<Role>,
    pub updates_per_second: f64,
    pub watchers: u64,
    pub series: BTreeMap<String, SeriesData>,
    /// An MPI job's keys reduced over its ranks (from `KEY@ranks`, as
    /// updates come): the spread of the ranks' values, and each rank's.
    pub bands: BTreeMap<String, Band>,
    pub messages: VecDeque<LogMessage>,
    /// The triggers' firings, oldest first (kept apart from the bounded
    /// log, so the plots keep marking them).
    pub firings: VecDeque<Firing>,
    /// The run's triggers, as its info last listed them.
    pub triggers: Vec<idict::TriggerInfo>,
    /// Where the run's histories thinned samples before they reached us:
    /// the curves have holes there, and the user is told so.
    pub thinned: VecDeque<Thinned>,
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
    /// Bumped whenever a key appears or goes (not when a value changes):
    /// views that list the keys list them again only then.
    pub key_set_generation: u64,
}

impl RunModel {
    pub fn new(target: &str) -> Self {
        RunModel {
            target: target.to_string(),
            name: target.to_string(),
            address: String::new(),
            pid: 0,
            ranks: 1,
            host: String::new(),
            started_unix_ms: 0,
            followed_from: None,
            replay_of: None,
            replay: None,
            connection: Connection::Connecting,
            status: None,
            version: 0,
            time: 0.0,
            values: BTreeMap::new(),
            changed_at: HashMap::new(),
            key_versions: HashMap::new(),
            array_stats: HashMap::new(),
            keys: BTreeMap::new(),
            role: None,
            updates_per_second: 0.0,
            watchers: 0,
            series: BTreeMap::new(),
            bands: BTreeMap::new(),
            messages: VecDeque::new(),
            firings: VecDeque::new(),
            triggers: Vec::new(),
            thinned: VecDeque::new(),
            pending: BTreeMap::new(),
            recently_applied: VecDeque::new(),
            write_errors: HashMap::new(),
            error: None,
            generation: 0,
            key_set_generation: 0,
        }
    }

    /// True when the shown state may be out of date.
    pub fn is_stale(&self) -> bool {
        matches!(
            self.connection,
            Connection::Disconnected { .. } | Connection::Connecting
        ) && self.version > 0
    }

    /// The run finished or failed (as far as we know).
    pub fn ended(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.state.is_terminal())
    }

    /// May this client pause, step, terminate and set?
    pub fn can_control(&self) -> bool {
        self.role == Some(Role::Controller)
            && self.connection == Connection::Connected
            && !self.ended()
    }

    /// Takes in what the network task delivered since the last take.
    pub fn take_in(&mut self, inbox: Inbox, now: Instant) {
        let Inbox {
            connection,
            address,
            info,
            update,
            error,
            writes,
        } = inbox;
        if let Some(info) = &info {
            self.apply_info(info);
        }
        if let Some(address) = address {
            self.address = address;
        }
        // The update before the writes: a write's receipt that arrives after
        // the report of its application must not leave it pending.
        if let Some(u) = &update {
            self.apply(u, now);
        }
        for w in writes {
            self.record_write(w);
        }
        if let Some(error) = error {
            self.error = error;
        }
        // Last: the inbox holds the newest connection state, which an
        // update's end of run has already been folded into.
        if let Some(c) = connection {
            self.connection = c;
        }
    }

    pub fn apply_info(&mut self, info: &RunInfo) {
        self.name = info.name.clone();
        self.pid = info.pid;
        self.ranks = info.ranks;
        self.host = info.host.clone();
        self.started_unix_ms = info.started_unix_ms;
        self.replay_of = info.replay_of.clone();
        self.replay = info.replay.clone();
        self.keys = info
            .keys
            .iter()
            .map(|k| (k.name.clone(), k.clone()))
            .collect();
        self.role = info.role;
        self.updates_per_second = info.updates_per_second;
        self.watchers = info.watchers;
        self.triggers = info.triggers.clone();
    }

    /// Takes one delivered update into the model.
    pub fn apply(&mut self, u: &Update, now: Instant) {
        if u.reset {
            if self.replay.is_some() {
                // A replay sought back: its log and what it was told of
                // thinning start over too.
                self.messages.clear();
                self.thinned.clear();
            }
            self.values.clear();
            self.series.clear();
            self.bands.clear();
            self.changed_at.clear();
            self.key_versions.clear();
            self.array_stats.clear();
            self.generation += 1;
        }
        // A key already known is updated in place: its name is not copied
        // again at every update (100,000 keys changing made as many
        // allocations per update, in each map).
        for (k, v) in &u.changed {
            match self.values.get_mut(k) {
                Some(slot) => *slot = v.clone(),
                None => {
                    self.values.insert(k.clone(), v.clone());
                    self.key_set_generation += 1;
                }
            }
            set_or_insert(&mut self.key_versions, k, u.version);
            match v.as_array().and_then(|a| a.stats()) {
                Some(stats) => set_or_insert(&mut self.array_stats, k, stats),
                None => {
                    self.array_stats.remove(k);
                }
            };
            if !u.reset {
                set_or_insert(&mut self.changed_at, k, now);
            }
        }
        for (k, v) in &u.changed {
            if let (Some(key), Some(a)) = (k.strip_suffix(RANKS_SUFFIX), v.as_array()) {
                self.bands.entry(key.to_string()).or_default().push(
                    u.version as f64,
                    u.time,
                    &a.to_f64_vec(),
                );
            }
        }
        for k in &u.removed {
            if self.values.remove(k).is_some() {
                self.key_set_generation += 1;
            }
            self.key_versions.remove(k);
            self.array_stats.remove(k);
        }
        for (k, s) in &u.samples {
            let series = match self.series.get_mut(k) {
                Some(series) => series,
                None => self.series.entry(k.clone()).or_default(),
            };
            series.reserve(s.len());
            for x in s.iter() {
                series.push(x.version as f64, x.time, x.value);
            }
        }
        for m in &u.messages {
            if self.messages.back().is_none_or(|last| last.seq < m.seq) {
                self.messages.push_back(m.clone());
            }
            if let Some(t) = &m.trigger {
                let known = self
                    .firings
                    .iter()
                    .any(|f| f.name == t.name && f.version == t.version as f64);
                if !known {
                    self.firings.push_back(Firing {
                        name: t.name.clone(),
                        version: t.version as f64,
                        time: m.time,
                        text: m.text.clone(),
                    });
                }
            }
        }
        while self.firings.len() > MAX_FIRINGS {
            self.firings.pop_front();
        }
        while self.messages.len() > MAX_MESSAGES {
            self.messages.pop_front();
        }
        for t in &u.thinned {
            // A run outpacing us reports each message: a report that goes on
            // from where the key's last one ended extends it.
            let last = self.thinned.iter_mut().rev().find(|x| x.key == t.key);
            match last {
                Some(x) if x.until_version == t.after_version => {
                    x.until_version = t.until_version;
                    x.dropped += t.dropped;
                    x.kept += t.kept;
                }
                _ => self.thinned.push_back(t.clone()),
            }
        }
        while self.thinned.len() > MAX_THINNED {
            self.thinned.pop_front();
        }
        for a in &u.applied {
            self.pending.remove(&a.write_id);
            self.recently_applied.push_back(a.write_id);
            if self.recently_applied.len() > MAX_APPLIED {
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

    fn record_write(&mut self, w: WriteOutcome) {
        match w {
            WriteOutcome::Sent { write_id, write } => {
                self.write_errors.remove(&write.key);
                if !self.applied_recently(write_id) {
                    self.pending.insert(write_id, write);
                }
            }
            WriteOutcome::Refused { key, error } => {
                self.write_errors.insert(key, error);
            }
        }
    }

    pub fn applied_recently(&self, write_id: u64) -> bool {
        self.recently_applied.contains(&write_id)
    }

    /// How the run is named in a legend beside others: its name and pid
    /// (a replay's: the recorded run's).
    pub fn label(&self) -> String {
        match &self.replay {
            Some(t) => format!("{} (recorded pid {})", self.name, t.pid),
            None => format!("{} (pid {})", self.name, self.pid),
        }
    }

    /// How the Runs list names the run: as a legend does, and a replay by
    /// its file too (replays run in the inspector's own process: named by
    /// its pid, two recordings of one run read alike).
    pub fn list_label(&self) -> String {
        match (&self.replay, &self.replay_of) {
            (Some(_), Some(file)) => {
                let file = std::path::Path::new(file)
                    .file_name()
                    .map_or_else(|| file.clone(), |f| f.to_string_lossy().into_owned());
                format!("{} · {file}", self.label())
            }
            _ => self.label(),
        }
    }

    /// What the run is, in full (the Runs list's hover): where it runs,
    /// or for a replay what was recorded, where and when, and the file.
    /// Any start time is said, none panics.
    pub fn describe(&self) -> String {
        // Said as a date where httpdate can (it panics past the year
        // 9999, which a crafted recording's header can claim).
        let started = |ms: i64| match u64::try_from(ms) {
            Ok(ms) if ms < 253_402_300_800_000 => httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            ),
            _ => format!("at {ms} ms since 1970"),
        };
        match (&self.replay, &self.replay_of) {
            (Some(t), Some(file)) => format!(
                "A replay of {file}\nrecorded: {} (pid {}) on {}, started {}",
                self.name,
                t.pid,
                t.host,
                started(t.started_unix_ms)
            ),
            _ if self.started_unix_ms > 0 => format!(
                "{} (pid {}) on {}, started {}\nat {}",
                self.name,
                self.pid,
                self.host,
                started(self.started_unix_ms),
                self.address
            ),
            _ => self.target.clone(),
        }
    }

    /// The ranks of the job (1: not an MPI job).
    pub fn rank_count(&self) -> usize {
        self.ranks as usize
    }

    /// Scalar keys that have a plot series.
    pub fn plottable(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idict::{AppliedWrite, Level};

    fn update(version: u64, reset: bool, changed: &[(&str, i64)], removed: &[&str]) -> Update {
        let mut samples = Series::default();
        samples.versions.push(version);
        samples.times.push(version as f64 * 0.1);
        samples.values.push(version as f64);
        Update {
            version,
            reset,
            changed: changed
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Int(*v)))
                .collect(),
            removed: removed.iter().map(|k| k.to_string()).collect(),
            samples: vec![("loss".into(), samples)],
            status: Status::running(),
            messages: vec![LogMessage {
                seq: version,
                level: Level::Info,
                text: format!("v{version}"),
                time: 0.0,
                version,
                trigger: None,
            }],
            thinned: Vec::new(),
            applied: vec![AppliedWrite {
                write_id: version,
                key: "k".into(),
                value: Value::Int(0),
                origin: String::new(),
                version,
            }],
            time: version as f64 * 0.1,
            last: false,
        }
    }

    /// A crafted recording's header can claim any start: past the year
    /// 9999 the date formatter panicked, taking the window down.
    #[test]
    fn a_run_is_described_whatever_its_start() {
        let mut m = RunModel::new("heat");
        m.name = "heat".into();
        m.pid = 7;
        m.host = "node1".into();
        m.replay_of = Some("/runs/heat-node1-7-1.idrec".into());
        let mut t = idict::ReplayTimeline {
            pid: 7,
            host: "node1".into(),
            started_unix_ms: 1_796_623_373_379,
            ..Default::default()
        };
        m.replay = Some(t.clone());
        let d = m.describe();
        assert!(
            d.starts_with("A replay of /runs/heat-node1-7-1.idrec"),
            "{d}"
        );
        assert!(
            d.contains("heat (pid 7) on node1, started Mon, 07 Dec 2026"),
            "{d}"
        );
        assert_eq!(
            m.list_label(),
            "heat (recorded pid 7) · heat-node1-7-1.idrec"
        );
        for ms in [i64::MAX, i64::MIN, 253_402_300_800_000] {
            t.started_unix_ms = ms;
            m.replay = Some(t.clone());
            assert!(m.describe().contains(&format!("{ms} ms since 1970")));
        }
    }

    fn seen(m: &RunModel) -> impl PartialEq + std::fmt::Debug {
        (
            m.values.clone(),
            m.series
                .get("loss")
                .map(|s| s.samples().collect::<Vec<_>>()),
            m.messages.iter().map(|x| x.seq).collect::<Vec<_>>(),
            m.recently_applied.clone(),
            m.version,
            m.connection.clone(),
        )
    }

    /// What the UI shows after taking a merged inbox is what it would show
    /// had it applied every update in turn.
    #[test]
    fn a_keys_thinning_reports_that_follow_on_are_shown_as_one() {
        let report = |key: &str, after, until, dropped| idict::Thinned {
            key: key.into(),
            after_version: after,
            until_version: until,
            dropped,
            kept: 1,
        };
        let mut m = RunModel::new("t");
        let mut u = update(5, false, &[], &[]);
        u.thinned = vec![report("x", 10, 20, 8), report("y", 10, 20, 8)];
        m.apply(&u, Instant::now());
        u.thinned = vec![report("x", 20, 40, 18), report("y", 30, 40, 9)];
        m.apply(&u, Instant::now());
        let shown: Vec<_> = m
            .thinned
            .iter()
            .map(|t| (t.key.as_str(), t.after_version, t.until_version, t.dropped))
            .collect();
        assert_eq!(
            shown,
            [("x", 10, 40, 26), ("y", 10, 20, 8), ("y", 30, 40, 9)]
        );
    }

    #[test]
    fn merged_updates_apply_as_the_updates_in_turn() {
        let runs = [
            vec![
                update(1, true, &[("a", 1), ("b", 1)], &[]),
                update(2, false, &[("a", 2), ("c", 2)], &["b"]),
                update(3, false, &[("b", 3)], &["c"]),
                update(4, false, &[("d", 4)], &["d"]),
            ],
            // A reconnect: the second reset replaces what came before.
            vec![
                update(5, false, &[("a", 5)], &[]),
                update(1, true, &[("z", 1)], &[]),
                update(2, false, &[("z", 2)], &[]),
            ],
        ];
        let now = Instant::now();
        for updates in runs {
            let mut one_by_one = RunModel::new("t");
            let mut merged = RunModel::new("t");
            let mut inbox = Inbox::default();
            for u in &updates {
                one_by_one.apply(u, now);
                inbox.update(u.clone());
            }
            merged.take_in(inbox.take(), now);
            assert_eq!(seen(&merged), seen(&one_by_one));
        }
    }

    /// The end of a run followed by a reconnect within one frame leaves the
    /// connection as the network task last saw it.
    #[test]
    fn the_newest_connection_state_wins() {
        let mut inbox = Inbox::default();
        inbox.set_connection(Connection::Connected);
        let mut end = update(1, true, &[("a", 1)], &[]);
        end.last = true;
        inbox.update(end);
        let mut ended = RunModel::new("t");
        ended.take_in(inbox.take(), Instant::now());
        assert_eq!(ended.connection, Connection::Ended);

        inbox.set_connection(Connection::Connected);
        let mut end = update(1, true, &[("a", 1)], &[]);
        end.last = true;
        inbox.update(end);
        inbox.set_connection(Connection::Connecting);
        let mut again = RunModel::new("t");
        again.take_in(inbox.take(), Instant::now());
        assert_eq!(again.connection, Connection::Connecting);
        assert_eq!(again.values.get("a"), Some(&Value::Int(1)));
    }
}
