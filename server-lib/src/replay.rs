//! Replaying a recording: a run of its own publishes what the recorded run
//! did, version by version, at the recorded versions and times, paced by
//! the recorded times (`speed` times as fast) or as fast as it goes (then
//! many versions a publish). It waits
//! at its gate before each step, so clients pause, step and resume it like
//! any run, over the same contract; a Seek moves it to any recorded
//! version or time, forward or back (back: the run is rewound and the
//! recording read again from its start, fast); terminating it ends the
//! replay. Recorded log messages, control actions and applied writes come
//! back as log messages, and actions and writes are the marks of the
//! timeline the run's info carries.
//!
//! A recorder is a watcher: its updates carry the state at a version and
//! the samples up to where its histories were complete, which can lag the
//! state. The reader puts them back in version order (reading ahead a
//! bounded way), so the replay publishes each version with its samples,
//! as the run did.

use crate::client::parts::PartJoiner;
use crate::dict::Recorded;
use crate::history::Sample;
use crate::model::{Level, MarkKind, ReplayTimeline, RunState, SeekTo, TimelineMark};
use crate::recording::{Recording, RecordingError};
use crate::value::{Value, escape_controls};
use crate::{IDict, wire};
use idict_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Recorded seconds per wall second (2.0: twice as fast); `None`: as
    /// fast as it goes.
    pub speed: Option<f64>,
    /// Go straight to this version or time first (`idict replay --at`).
    pub at: Option<SeekTo>,
    /// At the end, hold the run paused (seekable) until it is terminated,
    /// instead of finishing it.
    pub hold_at_end: bool,
}

/// What a replay went through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    /// The last recorded version published.
    pub last_version: u64,
    /// Scalar samples published.
    pub samples: u64,
    /// Whether the recording ended with the run's last update.
    pub complete: bool,
    /// The replay was terminated before the end.
    pub terminated: bool,
    /// Where the recording is damaged, if it is: what came before was
    /// replayed.
    pub damaged: Option<String>,
}

/// Why a replay stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("the recording holds a value that is not valid: {0}")]
    BadValue(String),
    #[error("the replay's run refused an update: {0}")]
    Update(#[from] crate::UpdateError),
}

fn level(l: i32) -> Level {
    match pb::Level::try_from(l) {
        Ok(pb::Level::Debug) => Level::Debug,
        Ok(pb::Level::Warn) => Level::Warn,
        Ok(pb::Level::Error) => Level::Error,
        _ => Level::Info,
    }
}

/// A sample's value as the key's own kind (an int key stays an int).
fn as_kind(x: f64, last: Option<&Value>) -> Value {
    match last {
        Some(Value::Int(_)) if x.fract() == 0.0 && x.abs() < 9.0e15 => Value::Int(x as i64),
        Some(Value::Bool(_)) => Value::Bool(x != 0.0),
        _ => Value::Float(x),
    }
}

/// Labels longer than this are cut (they carry client-chosen names).
const MAX_LABEL: usize = 200;

fn bounded(s: String) -> String {
    let s = escape_controls(&s).into_owned();
    match s.char_indices().nth(MAX_LABEL) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn control_label(c: &pb::ControlEvent) -> String {
    let action = pb::Action::try_from(c.action).map_or("an unknown action".to_string(), |a| {
        a.as_str_name().trim_start_matches("ACTION_").to_lowercase()
    });
    let action = match action.as_str() {
        "step" if c.steps > 1 => format!("step {}", c.steps),
        _ => action,
    };
    bounded(format!("{action} by {}", c.origin))
}

fn write_label(a: &pb::AppliedWrite) -> String {
    let value = a
        .value
        .clone()
        .and_then(|v| wire::value_from_proto(v).ok())
        .map_or("?".to_string(), |v| v.to_string());
    bounded(format!("{} = {value} by {}", a.key, a.origin))
}

/// A series' first sample's version and time, read off its encoding
/// (for the timeline: nothing unpacked).
fn first_sample(s: &pb::SampleSeries) -> Option<(u64, f64)> {
    let version = match s.versions.first() {
        Some(&v) => v,
        None if !s.packed_values.is_empty() => s.first_version,
        None => return None,
    };
    let time = if let Some(&t) = s.times.first() {
        t
    } else if let Some(&ns) = s.time_steps_ns.first() {
        ns as f64 / 1e9
    } else {
        let b = s.packed_times.get(..8)?;
        f64::from_le_bytes(b.try_into().ok()?)
    };
    Some((version, time))
}

/// Keeps `keep` of the marks, spread evenly (by position); how many went.
fn thin_evenly(marks: &mut Vec<TimelineMark>, keep: usize) -> usize {
    let n = marks.len();
    if n <= keep || keep == 0 {
        return 0;
    }
    let mut i = 0;
    marks.retain(|_| {
        // Kept: the first of each of `keep` equal shares.
        let kept = (i * keep) / n != ((i + 1) * keep) / n || i == 0;
        i += 1;
        kept
    });
    marks.truncate(keep);
    n - marks.len()
}

/// One whole update, gathered from the records it spans (`more`).
#[derive(Default)]
struct Whole {
    version: u64,
    time: f64,
    last: bool,
    reset: bool,
    /// Scalar samples, by key.
    samples: Vec<(Arc<str>, crate::history::Series)>,
    changed: Vec<(String, Value)>,
    removed: Vec<String>,
    messages: Vec<pb::LogMessage>,
    applied: Vec<pb::AppliedWrite>,
    status: Option<pb::Status>,
    thinned: Vec<pb::Thinned>,
}

/// What changed at one version besides samples.
#[derive(Default)]
struct StateChange {
    reset: bool,
    last: bool,
    /// The run's status as recorded with its last message.
    status: Option<pb::Status>,
    /// Samples the run thinned before the recorder had them.
    thinned: Vec<pb::Thinned>,
    changed: Vec<(String, Value)>,
    removed: Vec<String>,
    messages: Vec<pb::LogMessage>,
    applied: Vec<pb::AppliedWrite>,
}

impl StateChange {
    /// Adds a later update at the same version (or one come late).
    fn merge(&mut self, w: Whole) {
        if w.reset {
            self.changed.clear();
            self.removed.clear();
            self.reset = true;
        }
        self.last |= w.last;
        if w.status.is_some() {
            self.status = w.status;
        }
        self.thinned.extend(w.thinned);
        self.changed.extend(w.changed);
        self.removed.extend(w.removed);
        self.messages.extend(w.messages);
        self.applied.extend(w.applied);
    }

    /// Roughly what it holds, for the read-ahead's bound.
    fn bytes(&self) -> usize {
        let changed: usize = (self.changed.iter())
            .map(|(k, v)| k.len() + v.approx_wire_bytes())
            .sum();
        let removed: usize = self.removed.iter().map(|k| k.len() + 16).sum();
        let messages: usize = self.messages.iter().map(|m| m.text.len() + 32).sum();
        let applied = self.applied.len() * 64;
        changed + removed + messages + applied + self.thinned.len() * 48
    }
}

/// Where to take recorded versions up to: a version, and (pacing or
/// seeking by time) a recorded time.
#[derive(Debug, Clone, Copy)]
struct Upto {
    version: u64,
    time: f64,
}

impl Upto {
    fn version(version: u64) -> Self {
        Upto {
            version,
            time: f64::INFINITY,
        }
    }

    fn holds(&self, version: u64, time: f64) -> bool {
        // A time unknown (NaN) does not stop it.
        version <= self.version && (time.is_nan() || time <= self.time)
    }
}

/// Recorded versions taken together: each key's samples, and the changes
/// in version order.
#[derive(Default)]
struct Group {
    samples: Vec<(Arc<str>, Vec<Sample>)>,
    states: Vec<(u64, StateChange)>,
    /// Samples of versions already handed out (see `Reader::late`).
    late: Vec<(Arc<str>, Sample)>,
    /// The newest version in it, and its recorded time.
    newest: Option<(u64, f64)>,
}

impl Group {
    fn saw(&mut self, version: u64, time: f64) {
        if self
            .newest
            .is_none_or(|(v, t)| version > v || (version == v && t.is_nan()))
        {
            self.newest = Some((version, time));
        }
    }
}

/// Read-ahead bounds: updates and value bytes held waiting for samples.
const READ_AHEAD_UPDATES: usize = 64;
const READ_AHEAD_BYTES: usize = 64 << 20;
/// Samples held waiting (read ahead, or come late) at most.
const READ_AHEAD_SAMPLES: usize = 4 << 20;
/// One update (its records chained by `more`) at most.
const MAX_UPDATE_BYTES: usize = 4 << 30;

/// Reads a recording as recorded versions, in order; control events are
/// kept aside. A damaged record ends it (what came before stands).
///
/// What is read ahead is kept as columns (each key's samples in version
/// order) and the changes by version: taking a span of versions is a split
/// of each column, with nothing made per version.
struct Reader {
    recording: Recording<std::io::BufReader<std::fs::File>>,
    parts: PartJoiner,
    controls: Vec<pb::ControlEvent>,
    /// Array versions the recorder left out (its byte budget).
    arrays_thinned: Vec<pb::ArraysThinned>,
    damaged: Option<String>,
    /// Keys interned once, so samples share their names.
    names: HashMap<String, Arc<str>>,
    /// The newest value of each key read, for its kind.
    kinds: HashMap<String, Value>,
    /// Each key's samples read ahead (versions after `handed`).
    columns: Vec<(Arc<str>, VecDeque<Sample>)>,
    /// A column by its key's address (names are interned).
    column_of: rustc_hash::FxHashMap<usize, usize>,
    /// Changes read ahead, by version, with their recorded time.
    states: BTreeMap<u64, (f64, StateChange)>,
    ahead_updates: usize,
    ahead_bytes: usize,
    /// Samples in the columns.
    ahead_samples: usize,
    /// Every sample up to this version has been read (a recorder sends
    /// each key's samples in version order, all keys up to one version).
    through: u64,
    /// The newest version read (of a sample or a change): it is handed
    /// out only once something after it is (or the file ends), so updates
    /// at one version all go out with it.
    newest_read: u64,
    /// The newest version handed out.
    handed: Option<u64>,
    /// What came for versions already handed out, for the next take.
    late: Vec<(Arc<str>, Sample)>,
    late_state: Option<StateChange>,
    eof: bool,
}

impl Reader {
    fn open(path: &Path) -> Result<Reader, ReplayError> {
        Ok(Reader {
            recording: crate::recording::open(path)?,
            parts: PartJoiner::new(1 << 30),
            controls: Vec::new(),
            arrays_thinned: Vec::new(),
            damaged: None,
            names: HashMap::new(),
            kinds: HashMap::new(),
            columns: Vec::new(),
            column_of: Default::default(),
            states: BTreeMap::new(),
            ahead_updates: 0,
            ahead_bytes: 0,
            ahead_samples: 0,
            through: 0,
            newest_read: 0,
            handed: None,
            late: Vec::new(),
            late_state: None,
            eof: false,
        })
    }

    fn name(&mut self, key: String) -> Arc<str> {
        if let Some(k) = self.names.get(&key) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(key.as_str());
        self.names.insert(key, k.clone());
        k
    }

    /// The oldest version read ahead.
    fn next_version(&self) -> Option<u64> {
        let samples = self
            .columns
            .iter()
            .filter_map(|(_, c)| c.front())
            .map(|x| x.version);
        samples.chain(self.states.keys().next().copied()).min()
    }

    /// The recorded time of a version read ahead.
    fn time_of(&self, version: u64) -> f64 {
        if let Some((t, _)) = self.states.get(&version) {
            return *t;
        }
        (self.columns.iter())
            .filter_map(|(_, c)| c.front())
            .find(|x| x.version == version)
            .map_or(f64::NAN, |x| x.time)
    }

    /// The newest version that may be handed out now (reading on until
    /// the samples of the oldest one are all read, or the read-ahead is
    /// full, or the file ends); `None` when nothing is left.
    fn ready(&mut self) -> Result<Option<u64>, ReplayError> {
        loop {
            let settled = self.newest_read.saturating_sub(1);
            let full = self.ahead_updates > READ_AHEAD_UPDATES
                || self.ahead_bytes > READ_AHEAD_BYTES
                || self.ahead_samples + self.late.len() > READ_AHEAD_SAMPLES;
            let pending = !self.late.is_empty() || self.late_state.is_some();
            match self.next_version() {
                Some(_) if self.eof => return Ok(Some(u64::MAX)),
                Some(v) if self.through.min(settled) >= v => {
                    return Ok(Some(self.through.min(settled)));
                }
                // Full and nothing settled: on with what there is.
                Some(v) if full => return Ok(Some(v.max(self.through.min(settled)))),
                None if self.eof || (full && pending) => {
                    return Ok(pending.then(|| self.handed.unwrap_or(0)));
                }
                _ => {}
            }
            match self.next_whole()? {
                Some(w) => self.spread(w),
                None => self.eof = true,
            }
        }
    }

    /// Takes every version read ahead up to `upto`, and what came late.
    fn take(&mut self, upto: Upto) -> Group {
        let mut g = Group::default();
        for (key, column) in &mut self.columns {
            let n = column.partition_point(|x| upto.holds(x.version, x.time));
            self.ahead_samples = self.ahead_samples.saturating_sub(n);
            if n > 0 {
                let taken: Vec<Sample> = column.drain(..n).collect();
                if let Some(x) = taken.last() {
                    g.saw(x.version, x.time);
                }
                g.samples.push((key.clone(), taken));
            }
        }
        while let Some(entry) = self.states.first_entry() {
            let (v, (t, _)) = (*entry.key(), entry.get());
            if !upto.holds(v, *t) {
                break;
            }
            let t = *t;
            let (_, (_, state)) = entry.remove_entry();
            self.ahead_updates = self.ahead_updates.saturating_sub(1);
            self.ahead_bytes = self.ahead_bytes.saturating_sub(state.bytes());
            g.saw(v, t);
            g.states.push((v, state));
        }
        g.late = std::mem::take(&mut self.late);
        if let Some(late) = self.late_state.take() {
            g.states.insert(0, (self.handed.unwrap_or(0), late));
        }
        if let Some((v, _)) = g.newest {
            self.handed = Some(self.handed.map_or(v, |h| h.max(v)));
        }
        g
    }

    /// Files an update's samples and changes under their versions.
    fn spread(&mut self, mut w: Whole) {
        if w.reset && self.handed.is_some_and(|h| w.version <= h) {
            // A whole state behind what was handed out: the versions go
            // back (a replay recorded while sought back). What came before
            // stands; the rest is not this run's.
            self.damaged = Some(format!(
                "the recording goes back to v{} (before byte {}): what comes after is not replayed",
                w.version,
                self.recording.position()
            ));
            self.eof = true;
            return;
        }
        for (k, v) in &w.changed {
            self.kinds.insert(k.clone(), v.clone());
        }
        for (key, series) in std::mem::take(&mut w.samples) {
            self.file_series(key, series);
        }
        let handed = self.handed;
        let is_late = |v: u64| handed.is_some_and(|h| v <= h);
        let (version, time) = (w.version, w.time);
        self.newest_read = self.newest_read.max(version);
        let changes = !(w.changed.is_empty()
            && w.removed.is_empty()
            && w.messages.is_empty()
            && w.applied.is_empty()
            && w.thinned.is_empty()
            && !w.reset
            && !w.last);
        if !changes {
            return;
        }
        if is_late(version) {
            self.late_state
                .get_or_insert_with(StateChange::default)
                .merge(w);
            return;
        }
        let (t, state) = self.states.entry(version).or_insert_with(|| {
            self.ahead_updates += 1;
            (time, StateChange::default())
        });
        *t = time;
        let before = state.bytes();
        state.merge(w);
        self.ahead_bytes = (self.ahead_bytes + state.bytes()).saturating_sub(before);
    }

    /// Files a key's samples in its column (appended: they come in
    /// version order; put in place if not, in a crafted file).
    fn file_series(&mut self, key: Arc<str>, s: crate::history::Series) {
        let Some(&newest) = s.versions.last() else {
            return;
        };
        self.through = self.through.max(newest);
        self.newest_read = self.newest_read.max(newest);
        let columns = &mut self.columns;
        let c = *self
            .column_of
            .entry(Arc::as_ptr(&key) as *const u8 as usize)
            .or_insert_with(|| {
                columns.push((key.clone(), VecDeque::new()));
                columns.len() - 1
            });
        let column = &mut self.columns[c].1;
        for j in 0..s.len() {
            let x = Sample {
                version: s.versions[j],
                time: s.times[j],
                value: s.values[j],
            };
            if self.handed.is_some_and(|h| x.version <= h) {
                self.late.push((key.clone(), x));
                continue;
            }
            self.ahead_samples += 1;
            if column.back().is_none_or(|b| b.version <= x.version) {
                column.push_back(x);
            } else {
                let at = column.partition_point(|y| y.version <= x.version);
                column.insert(at, x);
            }
        }
    }

    fn next_whole(&mut self) -> Result<Option<Whole>, ReplayError> {
        let mut whole = Whole::default();
        // What the update holds so far, bounded: its records chain (`more`)
        // without limit in a crafted file.
        let mut held = 0usize;
        loop {
            if held > MAX_UPDATE_BYTES {
                self.damaged = Some(format!(
                    "an update larger than {} MiB (at byte {}): what comes after is not replayed",
                    MAX_UPDATE_BYTES >> 20,
                    self.recording.position()
                ));
                return Ok(None);
            }
            let entry = match self.recording.next() {
                None => return Ok(None),
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    self.damaged = Some(e.to_string());
                    return Ok(None);
                }
            };
            let update = match entry.kind {
                Some(pb::record_entry::Kind::Update(u)) => u,
                Some(pb::record_entry::Kind::Control(c)) => {
                    self.controls.push(c);
                    continue;
                }
                Some(pb::record_entry::Kind::ArraysThinned(a)) => {
                    self.arrays_thinned.push(a);
                    continue;
                }
                _ => continue,
            };
            for s in update.samples {
                let (key, series) =
                    wire::series_from_proto(s).map_err(|e| ReplayError::BadValue(e.to_string()))?;
                held += series.len() * 24;
                let key = self.name(key);
                whole.samples.push((key, series));
            }
            for e in update.changed {
                let v = e
                    .value
                    .ok_or_else(|| ReplayError::BadValue(format!("no value for '{}'", e.key)))?;
                let v =
                    wire::value_from_proto(v).map_err(|e| ReplayError::BadValue(e.to_string()))?;
                held += e.key.len() + v.approx_wire_bytes();
                whole.changed.push((e.key, v));
            }
            if let Some(p) = update.part
                && let Some(done) = self
                    .parts
                    .add(p)
                    .map_err(|e| ReplayError::BadValue(e.to_string()))?
            {
                whole.changed.push(done);
            }
            whole.removed.extend(update.removed);
            whole.messages.extend(update.messages);
            whole.applied.extend(update.applied);
            whole.thinned.extend(update.thinned);
            if update.status.is_some() {
                whole.status = update.status;
            }
            whole.reset |= update.reset;
            if update.more {
                continue;
            }
            whole.version = update.version;
            whole.time = update.time;
            whole.last = update.last;
            return Ok(Some(whole));
        }
    }
}

/// A recording opened for replay, with its timeline read.
pub struct Replayer {
    path: PathBuf,
    pub header: pb::RecordingHeader,
    timeline: ReplayTimeline,
    /// Set when the file ends inside a record (the run was killed while
    /// writing it): the byte where that record starts.
    pub cut_at: Option<u64>,
}

impl Replayer {
    /// Opens the recording and reads it through once for its timeline.
    pub fn open(path: &Path) -> Result<Replayer, ReplayError> {
        let mut reader = Reader::open(path)?;
        let header = reader.recording.header.clone();
        let mut t = ReplayTimeline {
            first_version: u64::MAX,
            first_time: f64::NAN,
            pid: header.pid,
            host: header.host.clone(),
            started_unix_ms: header.started_unix_ms,
            ..ReplayTimeline::default()
        };
        let mut marks = Vec::new();
        let (mut left_off, mut seen, mut stride) = (0, 0usize, 1usize);
        let first = |t: &mut ReplayTimeline, v: u64, time: f64| {
            if v < t.first_version {
                t.first_version = v;
                t.first_time = time;
            }
        };
        // A light read: each record's version, time and marks, no sample
        // unpacked (this read is as long as the recording).
        for entry in reader.recording.by_ref() {
            let Ok(entry) = entry else { break };
            let w = match entry.kind {
                Some(pb::record_entry::Kind::Update(u)) => u,
                Some(pb::record_entry::Kind::Control(c)) => {
                    reader.controls.push(c);
                    continue;
                }
                _ => continue,
            };
            for s in &w.samples {
                if let Some((v, time)) = first_sample(s) {
                    first(&mut t, v, time);
                }
            }
            first(&mut t, w.version, w.time);
            if w.version >= t.last_version {
                t.last_version = w.version;
                t.last_time = w.time;
            }
            t.complete |= w.last;
            let mut found: Vec<TimelineMark> = (w.applied.iter())
                .map(|a| TimelineMark {
                    version: a.version,
                    time: w.time,
                    kind: MarkKind::Write,
                    label: write_label(a),
                })
                .collect();
            found.extend(reader.controls.drain(..).map(|c| TimelineMark {
                version: c.version,
                time: c.time,
                kind: MarkKind::Control,
                label: control_label(&c),
            }));
            // Bounded while reading (a script stepping every iteration for
            // a week makes millions): every `stride`th kept, the stride
            // doubling (and the kept halved) when they fill up: even.
            for m in found {
                if seen % stride == 0 {
                    marks.push(m);
                } else {
                    left_off += 1;
                }
                seen += 1;
                if marks.len() >= 4 * ReplayTimeline::MAX_MARKS {
                    let mut i = 0;
                    marks.retain(|_| {
                        i += 1;
                        i % 2 == 1
                    });
                    left_off += 2 * ReplayTimeline::MAX_MARKS;
                    stride *= 2;
                }
            }
        }
        marks.extend(reader.controls.drain(..).map(|c| TimelineMark {
            version: c.version,
            time: c.time,
            kind: MarkKind::Control,
            label: control_label(&c),
        }));
        marks.sort_by_key(|m| m.version);
        left_off += thin_evenly(&mut marks, ReplayTimeline::MAX_MARKS);
        t.marks = marks;
        t.marks_left_off = left_off as u64;
        if t.first_version == u64::MAX {
            t.first_version = 0;
            t.first_time = 0.0;
        }
        Ok(Replayer {
            path: path.to_owned(),
            header,
            timeline: t,
            cut_at: reader.recording.cut_at,
        })
    }

    /// What the recording spans, with its marks.
    pub fn timeline(&self) -> &ReplayTimeline {
        &self.timeline
    }

    /// Publishes the recording into `idict` (which a server serves), its
    /// timeline in the run's info, until the end (or, with `hold_at_end`,
    /// until the run is terminated).
    pub fn replay(
        &self,
        idict: &IDict,
        opts: &ReplayOptions,
    ) -> Result<ReplaySummary, ReplayError> {
        *idict.inner.timeline.write() = Some(Arc::new(self.timeline.clone()));
        let mut player = Player {
            replayer: self,
            idict,
            opts,
            reader: Reader::open(&self.path)?,
            controls: Vec::new(),
            arrays_thinned: Vec::new(),
            complete: false,
            target: None,
            pace: Pace {
                speed: opts.speed.filter(|s| s.is_finite() && *s > 0.0),
                origin: None,
            },
            said_end: false,
            summary: ReplaySummary::default(),
        };
        if let Some(to) = opts.at {
            player.seek(to)?;
        }
        loop {
            match player.step()? {
                Flow::Go => {}
                Flow::End => break,
                Flow::Stop => {
                    player.summary.terminated = true;
                    break;
                }
            }
        }
        player.summary.damaged = player.reader.damaged.take();
        Ok(player.summary)
    }
}

/// Where a seek goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    Version(u64),
    Time(f64),
}

impl Target {
    /// Whether the recorded version is at or before the target.
    fn covers(&self, version: u64, time: f64) -> bool {
        match *self {
            Target::Version(v) => version <= v,
            // A version of unknown time does not stop a seek by time.
            Target::Time(t) => time.is_nan() || time <= t,
        }
    }
}

enum Flow {
    Go,
    End,
    Stop,
}

enum GateOutcome {
    Go,
    Stop,
    Seek(SeekTo),
    /// Paused while waiting for a version's time: back to the gate.
    Held,
}

struct Player<'a> {
    replayer: &'a Replayer,
    idict: &'a IDict,
    opts: &'a ReplayOptions,
    reader: Reader,
    /// Recorded control events not yet reached.
    controls: Vec<pb::ControlEvent>,
    /// Reports of array versions left out, not yet reached.
    arrays_thinned: Vec<pb::ArraysThinned>,
    /// The recording's last update was published.
    complete: bool,
    /// Where a seek is going: until there, no gate and no pacing.
    target: Option<Target>,
    pace: Pace,
    said_end: bool,
    summary: ReplaySummary,
}

impl Player<'_> {
    fn step(&mut self) -> Result<Flow, ReplayError> {
        let ready = self.reader.ready()?;
        self.controls.append(&mut self.reader.controls);
        self.arrays_thinned.append(&mut self.reader.arrays_thinned);
        let Some(ready) = ready else {
            return self.at_end();
        };
        let next = match self.reader.next_version() {
            Some(v) if v > self.idict.version() => v,
            // Only what came late: no version to publish, so no gate.
            _ => {
                let g = self.reader.take(Upto::version(ready));
                self.publish(g)?;
                return Ok(Flow::Go);
            }
        };
        if self.target.is_some() {
            // Seeking skips the gate: a terminate, or a newer seek (a
            // slider still moving), is seen here instead.
            if self.idict.terminated() {
                return Ok(Flow::Stop);
            }
            if let Some(to) = self.idict.inner.take_seek() {
                self.seek(to)?;
                return Ok(Flow::Go);
            }
        }
        if self.target.is_none() {
            let outcome = self.gate();
            if let Some(flow) = self.unless_go(outcome)? {
                return Ok(flow);
            }
        }
        let next_time = self.reader.time_of(next);
        let upto = if let Some(target) = self.target {
            if !target.covers(next, next_time) {
                // There: the gate and the pace take over again.
                self.target = None;
                self.pace.origin = None;
                return Ok(Flow::Go);
            }
            match target {
                Target::Version(v) => Upto::version(v.min(ready)),
                Target::Time(t) => Upto {
                    version: ready,
                    time: t,
                },
            }
        } else if self.idict.status().state == RunState::Paused {
            // Stepping: one recorded version a step.
            Upto::version(next)
        } else if self.pace.speed.is_some() {
            if let Some(due) = self.pace.due(next_time) {
                let outcome = self.sleep_until(due);
                if let Some(flow) = self.unless_go(outcome)? {
                    return Ok(flow);
                }
            }
            // With it, every version already due (a fast run's many a frame).
            let now = self.pace.recorded_now().unwrap_or(f64::INFINITY);
            Upto {
                version: ready,
                time: if next_time.is_nan() {
                    now
                } else {
                    now.max(next_time)
                },
            }
        } else {
            Upto::version(ready)
        };
        let g = self.reader.take(upto);
        self.publish(g)?;
        Ok(Flow::Go)
    }

    /// What to do after waiting: `None` to go on publishing; otherwise the
    /// step ends there (stopped, held, or sought elsewhere).
    fn unless_go(&mut self, outcome: GateOutcome) -> Result<Option<Flow>, ReplayError> {
        Ok(match outcome {
            GateOutcome::Go => None,
            GateOutcome::Stop => Some(Flow::Stop),
            GateOutcome::Held => Some(Flow::Go),
            GateOutcome::Seek(to) => {
                self.seek(to)?;
                Some(Flow::Go)
            }
        })
    }

    /// Publishes what was taken as one version (the newest in it).
    fn publish(&mut self, g: Group) -> Result<(), ReplayError> {
        let published = self.idict.version();
        let Group {
            samples,
            states,
            late,
            newest,
        } = g;
        let (version, mut time) = newest.unwrap_or((published, f64::NAN));
        let mut messages = Vec::new();
        let mut applied = Vec::new();
        let mut thinned = Vec::new();
        let mut status = None;
        let mut final_update = false;
        let mut late_changes = false;
        {
            let mut d = self.idict.lock();
            // Changes in version order; a key's newest sample then wins
            // over an older change (and loses to a newer one, or a reset).
            let mut changed_at: HashMap<String, u64> = HashMap::new();
            let mut reset_at = None;
            for (v, s) in states {
                if v <= published {
                    late_changes |= s.reset || !s.changed.is_empty() || !s.removed.is_empty();
                }
                if s.reset {
                    d.clear();
                    reset_at = Some(v);
                }
                for (k, value) in s.changed {
                    d.insert(&k, value);
                    changed_at.insert(k, v);
                }
                for k in s.removed {
                    d.remove(&k);
                    changed_at.insert(k, v);
                }
                messages.extend(s.messages);
                applied.extend(s.applied);
                thinned.extend(s.thinned);
                if s.status.is_some() {
                    status = s.status;
                }
                final_update |= s.last;
            }
            for (key, column) in &samples {
                let Some(x) = column.last() else { continue };
                let newer = x.version > published
                    && reset_at.is_none_or(|r| x.version >= r)
                    && changed_at.get(&**key).is_none_or(|&c| x.version >= c);
                if newer {
                    d.insert(&**key, as_kind(x.value, self.reader.kinds.get(&**key)));
                }
            }
        }
        // The histories: what came late first (it is older), then the rest.
        let mut by_key: Vec<(Arc<str>, Vec<Sample>)> = Vec::new();
        let mut at: rustc_hash::FxHashMap<usize, usize> = Default::default();
        let mut count = 0u64;
        for (key, x) in late {
            let i = *at
                .entry(Arc::as_ptr(&key) as *const u8 as usize)
                .or_insert_with(|| {
                    by_key.push((key.clone(), Vec::new()));
                    by_key.len() - 1
                });
            by_key[i].1.push(x);
            count += 1;
        }
        for (key, column) in samples {
            count += column.len() as u64;
            match at.get(&(Arc::as_ptr(&key) as *const u8 as usize)) {
                Some(&i) => by_key[i].1.extend(column),
                None => by_key.push((key, column)),
            }
        }
        let failed = final_update
            .then(|| {
                status
                    .as_ref()
                    .filter(|s| s.state == pb::RunState::Failed as i32)
                    .map(|s| s.message.clone())
            })
            .flatten();
        let ends = final_update && !self.opts.hold_at_end;
        if time.is_nan() {
            time = self.idict.inner.published.read().time;
        }
        let log_time = if time.is_nan() { 0.0 } else { time };
        // The log goes out with the version it belongs to; before the
        // final one, so a watcher whose stream that ends still gets it.
        let mut log = Some((messages, applied, thinned));
        let mut write_log = |this: &mut Self, upto: u64| {
            let Some((messages, applied, thinned)) = log.take() else {
                return;
            };
            for m in messages {
                let t = if m.time.is_finite() { m.time } else { log_time };
                // Its recorded version, within the span (a crafted one is
                // held to it).
                let v = Some(m.version.min(version));
                this.idict.inner.log_at(level(m.level), m.text, t, v);
            }
            for a in &applied {
                let note = format!("[recorded] {} at v{}", write_label(a), a.version);
                let v = Some(a.version.min(version));
                this.idict.inner.log_at(Level::Info, note, log_time, v);
            }
            for t in &thinned {
                let note = bounded(format!(
                    "[recorded] {}: {} samples (v{} to v{}) were thinned by the run before they were recorded",
                    t.key, t.dropped, t.after_version, t.until_version
                ));
                let v = Some(t.until_version.min(version));
                this.idict.inner.log_at(Level::Warn, note, log_time, v);
            }
            this.log_controls(upto, log_time);
        };
        if ends {
            write_log(self, u64::MAX);
        }
        if version <= published {
            // Only what came late: it joins the histories.
            let through = self.complete_through(version, final_update);
            self.idict.inner.add_recorded_samples(by_key, through);
        } else {
            let recorded = Recorded {
                version,
                time,
                samples: by_key,
                through: self.complete_through(version, final_update),
            };
            // A run that failed ends failed, below.
            self.idict
                .publish_recorded(recorded, ends && failed.is_none())?;
            self.summary.last_version = version;
        }
        write_log(self, version);
        if ends {
            match failed {
                Some(why) => self.idict.fail(why),
                // The final update came late, with no version of its own,
                // and with changes the working map holds: they need one.
                None if version <= published && late_changes => {
                    self.idict.notify_update_final()?;
                }
                None if version <= published => self.idict.inner.finish_here(),
                None => {}
            }
        }
        self.summary.samples += count;
        self.complete |= final_update;
        Ok(())
    }

    /// Through which version the histories are complete once this publish
    /// is in: what the reader has read every sample of (the whole run at
    /// its end).
    fn complete_through(&self, version: u64, final_update: bool) -> u64 {
        if final_update || self.reader.eof {
            version
        } else {
            self.reader.through.min(version)
        }
    }

    /// Logs the recorded control actions (and array versions the recorder
    /// left out) up to `upto`, at run time `time`.
    fn log_controls(&mut self, upto: u64, time: f64) {
        let inner = &self.idict.inner;
        self.arrays_thinned.retain(|a| {
            if a.last_version > upto {
                return true;
            }
            let note = bounded(format!(
                "[recorded] {}: {} versions (v{} to v{}, {} bytes) left out by the recording's array budget",
                a.key, a.dropped, a.first_version, a.last_version, a.bytes
            ));
            inner.log_at(Level::Info, note, time, None);
            false
        });
        self.controls.retain(|c| {
            if c.version > upto {
                return true;
            }
            let t = if c.time.is_finite() { c.time } else { time };
            let note = format!("[recorded] {} at v{}", control_label(c), c.version);
            inner.log_at(Level::Info, note, t, Some(c.version));
            false
        });
    }

    /// The recording is read to its end (or to damage).
    fn at_end(&mut self) -> Result<Flow, ReplayError> {
        self.target = None;
        let time = self.idict.inner.published.read().time;
        self.log_controls(u64::MAX, time);
        self.summary.complete = self.complete;
        if !self.opts.hold_at_end {
            if !self.complete {
                // Cut short (the run was killed): it ends where it stops.
                self.idict.inner.finish_here();
            }
            return Ok(Flow::End);
        }
        if !self.said_end {
            self.said_end = true;
            self.idict.message(
                Level::Info,
                format!(
                    "replay: the end of the recording (v{}); seek to look again",
                    self.idict.version()
                ),
            );
        }
        // Held at the end, paused, until a seek or a terminate.
        self.idict.pause();
        Ok(match self.gate() {
            GateOutcome::Stop => Flow::Stop,
            GateOutcome::Seek(to) => {
                self.seek(to)?;
                Flow::Go
            }
            GateOutcome::Go | GateOutcome::Held => Flow::Go,
        })
    }

    /// The run's gate; a seek asked meanwhile ends the wait.
    fn gate(&mut self) -> GateOutcome {
        if let Some(to) = self.idict.inner.take_seek() {
            return GateOutcome::Seek(to);
        }
        let inner = &self.idict.inner;
        let mut seek = None;
        let was_paused = self.idict.status().state == RunState::Paused;
        let outcome = self
            .idict
            .wait_interruptible(Duration::from_millis(50), || match inner.take_seek() {
                Some(to) => {
                    seek = Some(to);
                    Err(())
                }
                None => Ok(()),
            });
        if was_paused {
            // Time held does not count as replayed (a running gate's
            // brief preemption is not a hold).
            self.pace.origin = None;
        }
        match (outcome, seek) {
            (_, Some(to)) => GateOutcome::Seek(to),
            (Ok(true), None) => GateOutcome::Go,
            (Ok(false), None) => GateOutcome::Stop,
            (Err(()), None) => GateOutcome::Held,
        }
    }

    /// Sleeps until `due` in short steps, so a pause, seek or terminate is
    /// seen at once.
    fn sleep_until(&mut self, due: Instant) -> GateOutcome {
        loop {
            if self.idict.terminated() {
                return GateOutcome::Stop;
            }
            if let Some(to) = self.idict.inner.take_seek() {
                return GateOutcome::Seek(to);
            }
            if self.idict.status().state == RunState::Paused {
                return GateOutcome::Held;
            }
            let now = Instant::now();
            if now >= due {
                return GateOutcome::Go;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(20)));
        }
    }

    /// Goes to `to`: forward by reading on, back by rewinding the run and
    /// reading the recording again from its start; either way without
    /// pacing or gate until there.
    fn seek(&mut self, to: SeekTo) -> Result<(), ReplayError> {
        let timeline = &self.replayer.timeline;
        let target = match to {
            SeekTo::Version(v) => Target::Version(v.max(timeline.first_version)),
            SeekTo::Time(t) => Target::Time(t.max(timeline.first_time)),
        };
        let (version, time) = {
            let p = self.idict.inner.published.read();
            (p.version, p.time)
        };
        let ahead = match target {
            Target::Version(v) => v >= version,
            Target::Time(t) => time.is_nan() || t >= time,
        };
        if !ahead {
            self.idict.inner.rewind(0);
            self.reader = Reader::open(&self.replayer.path)?;
            self.controls.clear();
            self.arrays_thinned.clear();
            self.complete = false;
            self.said_end = false;
        }
        self.target = Some(target);
        Ok(())
    }
}

/// The recorded pace: when a recorded moment is due on the wall clock.
#[derive(Clone, Copy)]
struct Pace {
    speed: Option<f64>,
    /// The wall time and recorded time pacing counts from (reset after a
    /// hold or a seek, so neither counts as replayed).
    origin: Option<(Instant, f64)>,
}

impl Pace {
    /// The recorded time due now, once pacing has started.
    fn recorded_now(&self) -> Option<f64> {
        let speed = self.speed?;
        let (at, t0) = self.origin?;
        Some(t0 + at.elapsed().as_secs_f64() * speed)
    }

    /// When the moment recorded at `t` is due; `None`: now (unpaced).
    fn due(&mut self, t: f64) -> Option<Instant> {
        let speed = self.speed?;
        if !t.is_finite() {
            return None;
        }
        let (at, t0) = *self.origin.get_or_insert((Instant::now(), t));
        let secs = ((t - t0) / speed).clamp(0.0, 1e9);
        Some(at + Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{MAGIC, write_record};

    fn entry(kind: pb::record_entry::Kind) -> pb::RecordEntry {
        pb::RecordEntry { kind: Some(kind) }
    }

    /// A recording with a NaN time, a removal in an update whose large
    /// value came in parts, and a control event written ahead of the
    /// update it belongs to.
    fn crafted() -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let header = pb::RecordingHeader {
            format_version: crate::recording::FORMAT_VERSION,
            name: "crafted".into(),
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Header(header))).unwrap();
        let int = |i| Some(wire::value_to_proto(&Value::Int(i)));
        let first = pb::WatchUpdate {
            version: 1,
            reset: true,
            time: f64::NAN,
            changed: vec![
                pb::Entry {
                    key: "gone".into(),
                    value: int(1),
                },
                pb::Entry {
                    key: "x".into(),
                    value: int(1),
                },
            ],
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Update(first))).unwrap();
        let control = pb::ControlEvent {
            action: pb::Action::Pause as i32,
            origin: "tester".into(),
            version: 2,
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Control(control))).unwrap();
        let big = wire::value_to_proto(&Value::Str("y".repeat(100)));
        let bytes = prost::Message::encode_to_vec(&big);
        let (a, b) = bytes.split_at(50);
        let head = pb::WatchUpdate {
            version: 2,
            time: 0.5,
            more: true,
            removed: vec!["gone".into()],
            part: Some(pb::ValuePart {
                key: "big".into(),
                offset: 0,
                total: bytes.len() as u64,
                data: bytes::Bytes::copy_from_slice(a),
            }),
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Update(head))).unwrap();
        let tail = pb::WatchUpdate {
            version: 2,
            time: 0.5,
            last: true,
            part: Some(pb::ValuePart {
                key: "big".into(),
                offset: a.len() as u64,
                total: bytes.len() as u64,
                data: bytes::Bytes::copy_from_slice(b),
            }),
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Update(tail))).unwrap();
        out
    }

    #[test]
    fn a_crafted_recording_replays_removals_parts_and_controls_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crafted.idrec");
        std::fs::write(&path, crafted()).unwrap();
        let replayer = Replayer::open(&path).unwrap();
        let run = IDict::builder("crafted").replay_of("crafted.idrec").build();
        // Paced, with a NaN time in the file: no panic.
        let opts = ReplayOptions {
            speed: Some(1000.0),
            ..ReplayOptions::default()
        };
        let summary = replayer.replay(&run, &opts).unwrap();
        assert!(summary.complete);
        let d = run.lock();
        assert_eq!(d.get("x"), Some(&Value::Int(1)));
        assert!(
            d.get("gone").is_none(),
            "removed in the update of the parts"
        );
        assert_eq!(d.get("big"), Some(&Value::Str("y".repeat(100))));
        drop(d);
        let log: Vec<String> = run
            .inner
            .published
            .read()
            .messages_after(0)
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(log, ["[recorded] pause by tester at v2"]);
    }
}
