//! Reading a recording for replay: the recorder's updates put back in
//! version order (its samples can lag the state they came with), read
//! ahead a bounded way, as columns a span of versions can be cut from.

use super::*;

/// One whole update, gathered from the records it spans (`more`).
#[derive(Default)]
pub(crate) struct Whole {
    pub(crate) version: u64,
    pub(crate) time: f64,
    pub(crate) last: bool,
    pub(crate) reset: bool,
    /// Scalar samples, by key.
    pub(crate) samples: Vec<(Arc<str>, idict_core::history::Series)>,
    pub(crate) changed: Vec<(String, Value)>,
    pub(crate) removed: Vec<String>,
    pub(crate) messages: Vec<pb::LogMessage>,
    pub(crate) applied: Vec<pb::AppliedWrite>,
    pub(crate) status: Option<pb::Status>,
    pub(crate) thinned: Vec<pb::Thinned>,
}

/// What changed at one version besides samples.
#[derive(Default)]
pub(crate) struct StateChange {
    pub(crate) reset: bool,
    pub(crate) last: bool,
    /// The run's status as recorded with its last message.
    pub(crate) status: Option<pb::Status>,
    /// Samples the run thinned before the recorder had them.
    pub(crate) thinned: Vec<pb::Thinned>,
    pub(crate) changed: Vec<(String, Value)>,
    pub(crate) removed: Vec<String>,
    pub(crate) messages: Vec<pb::LogMessage>,
    pub(crate) applied: Vec<pb::AppliedWrite>,
}

impl StateChange {
    /// Adds a later update at the same version (or one come late).
    pub(crate) fn merge(&mut self, w: Whole) {
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
    pub(crate) fn bytes(&self) -> usize {
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
pub(crate) struct Upto {
    pub(crate) version: u64,
    pub(crate) time: f64,
}

impl Upto {
    pub(crate) fn version(version: u64) -> Self {
        Upto {
            version,
            time: f64::INFINITY,
        }
    }

    pub(crate) fn holds(&self, version: u64, time: f64) -> bool {
        // A time unknown (NaN) does not stop it.
        version <= self.version && (time.is_nan() || time <= self.time)
    }
}

/// Recorded versions taken together: each key's samples, and the changes
/// in version order.
#[derive(Default)]
pub(crate) struct Group {
    pub(crate) samples: Vec<(Arc<str>, Vec<Sample>)>,
    pub(crate) states: Vec<(u64, StateChange)>,
    /// Samples of versions already handed out (see `Reader::late`).
    pub(crate) late: Vec<(Arc<str>, Sample)>,
    /// The newest version in it, and its recorded time.
    pub(crate) newest: Option<(u64, f64)>,
}

impl Group {
    pub(crate) fn saw(&mut self, version: u64, time: f64) {
        if self
            .newest
            .is_none_or(|(v, t)| version > v || (version == v && t.is_nan()))
        {
            self.newest = Some((version, time));
        }
    }
}

/// Read-ahead bounds: updates and value bytes held waiting for samples.
pub(crate) const READ_AHEAD_UPDATES: usize = 64;
pub(crate) const READ_AHEAD_BYTES: usize = 64 << 20;
/// Samples held waiting (read ahead, or come late) at most.
pub(crate) const READ_AHEAD_SAMPLES: usize = 4 << 20;
/// One update (its records chained by `more`) at most.
pub(crate) const MAX_UPDATE_BYTES: usize = 4 << 30;

/// Reads a recording as recorded versions, in order; control events are
/// kept aside. A damaged record ends it (what came before stands).
///
/// What is read ahead is kept as columns (each key's samples in version
/// order) and the changes by version: taking a span of versions is a split
/// of each column, with nothing made per version.
pub(crate) struct Reader {
    pub(crate) recording: Recording<std::io::BufReader<std::fs::File>>,
    pub(crate) parts: PartJoiner,
    pub(crate) controls: Vec<pb::ControlEvent>,
    /// Array versions the recorder left out (its byte budget).
    pub(crate) arrays_thinned: Vec<pb::ArraysThinned>,
    pub(crate) damaged: Option<String>,
    /// Keys interned once, so samples share their names.
    pub(crate) names: HashMap<String, Arc<str>>,
    /// The newest value of each key read, for its kind.
    pub(crate) kinds: HashMap<String, Value>,
    /// Each key's samples read ahead (versions after `handed`).
    pub(crate) columns: Vec<(Arc<str>, VecDeque<Sample>)>,
    /// A column by its key's address (names are interned).
    pub(crate) column_of: rustc_hash::FxHashMap<usize, usize>,
    /// Changes read ahead, by version, with their recorded time.
    pub(crate) states: BTreeMap<u64, (f64, StateChange)>,
    pub(crate) ahead_updates: usize,
    pub(crate) ahead_bytes: usize,
    /// Samples in the columns.
    pub(crate) ahead_samples: usize,
    /// Every sample up to this version has been read (a recorder sends
    /// each key's samples in version order, all keys up to one version).
    pub(crate) through: u64,
    /// The newest version read (of a sample or a change): it is handed
    /// out only once something after it is (or the file ends), so updates
    /// at one version all go out with it.
    pub(crate) newest_read: u64,
    /// The newest version handed out.
    pub(crate) handed: Option<u64>,
    /// What came for versions already handed out, for the next take.
    pub(crate) late: Vec<(Arc<str>, Sample)>,
    pub(crate) late_state: Option<StateChange>,
    pub(crate) eof: bool,
}

impl Reader {
    pub(crate) fn open(path: &Path) -> Result<Reader, ReplayError> {
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

    pub(crate) fn name(&mut self, key: String) -> Arc<str> {
        if let Some(k) = self.names.get(&key) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(key.as_str());
        self.names.insert(key, k.clone());
        k
    }

    /// The oldest version read ahead.
    pub(crate) fn next_version(&self) -> Option<u64> {
        let samples = self
            .columns
            .iter()
            .filter_map(|(_, c)| c.front())
            .map(|x| x.version);
        samples.chain(self.states.keys().next().copied()).min()
    }

    /// The recorded time of a version read ahead.
    pub(crate) fn time_of(&self, version: u64) -> f64 {
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
    pub(crate) fn ready(&mut self) -> Result<Option<u64>, ReplayError> {
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
    pub(crate) fn take(&mut self, upto: Upto) -> Group {
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
    pub(crate) fn spread(&mut self, mut w: Whole) {
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
    pub(crate) fn file_series(&mut self, key: Arc<str>, s: idict_core::history::Series) {
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

    pub(crate) fn next_whole(&mut self) -> Result<Option<Whole>, ReplayError> {
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
