//! Playing a recording into a run: behind the run's gate, paced by the
//! recorded times, seeking forward and back, with the recorded messages,
//! actions and writes logged at their versions.

use super::*;

pub(crate) fn level(l: i32) -> Level {
    match pb::Level::try_from(l) {
        Ok(pb::Level::Debug) => Level::Debug,
        Ok(pb::Level::Warn) => Level::Warn,
        Ok(pb::Level::Error) => Level::Error,
        _ => Level::Info,
    }
}

/// A sample's value as the key's own kind (an int key stays an int).
pub(crate) fn as_kind(x: f64, last: Option<&Value>) -> Value {
    match last {
        Some(Value::Int(_)) if x.fract() == 0.0 && x.abs() < 9.0e15 => Value::Int(x as i64),
        Some(Value::Bool(_)) => Value::Bool(x != 0.0),
        _ => Value::Float(x),
    }
}

/// Labels longer than this are cut (they carry client-chosen names).

#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    Version(u64),
    Time(f64),
}

impl Target {
    /// Whether the recorded version is at or before the target.
    pub(crate) fn covers(&self, version: u64, time: f64) -> bool {
        match *self {
            Target::Version(v) => version <= v,
            // A version of unknown time does not stop a seek by time.
            Target::Time(t) => time.is_nan() || time <= t,
        }
    }
}

pub(crate) enum Flow {
    Go,
    End,
    Stop,
}

pub(crate) enum GateOutcome {
    Go,
    Stop,
    Seek(SeekTo),
    /// Paused while waiting for a version's time: back to the gate.
    Held,
}

pub(crate) struct Player<'a> {
    pub(crate) replayer: &'a Replayer,
    pub(crate) idict: &'a IDict,
    pub(crate) opts: &'a ReplayOptions,
    pub(crate) reader: Reader,
    /// Recorded control events not yet reached.
    pub(crate) controls: Vec<pb::ControlEvent>,
    /// Reports of array versions left out, not yet reached.
    pub(crate) arrays_thinned: Vec<pb::ArraysThinned>,
    /// Keys whose first report of versions left out was logged, with what
    /// was left out since, summed for one line at the end: a budget of a
    /// version a second made a line a second per array key.
    pub(crate) arrays_left_out: std::collections::BTreeMap<String, pb::ArraysThinned>,
    /// The recording's last update was published.
    pub(crate) complete: bool,
    /// Where a seek is going: until there, no gate and no pacing.
    pub(crate) target: Option<Target>,
    pub(crate) pace: Pace,
    pub(crate) said_end: bool,
    pub(crate) summary: ReplaySummary,
}

impl Player<'_> {
    pub(crate) fn step(&mut self) -> Result<Flow, ReplayError> {
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
    pub(crate) fn unless_go(&mut self, outcome: GateOutcome) -> Result<Option<Flow>, ReplayError> {
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
    pub(crate) fn publish(&mut self, g: Group) -> Result<(), ReplayError> {
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
                // A trigger's firing stays one, so a replay marks it too.
                let trigger = m.trigger.and_then(wire::firing_from_proto);
                let level = level(m.level);
                this.idict.inner.log_message(level, m.text, t, v, trigger);
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
    pub(crate) fn complete_through(&self, version: u64, final_update: bool) -> u64 {
        if final_update || self.reader.eof {
            version
        } else {
            self.reader.through.min(version)
        }
    }

    /// Logs the recorded control actions (and array versions the recorder
    /// left out) up to `upto`, at run time `time`.
    pub(crate) fn log_controls(&mut self, upto: u64, time: f64) {
        let inner = &self.idict.inner;
        let left_out = &mut self.arrays_left_out;
        self.arrays_thinned.retain(|a| {
            if a.last_version > upto {
                return true;
            }
            match left_out.get_mut(&a.key) {
                Some(sum) => {
                    if sum.dropped == 0 {
                        sum.first_version = a.first_version;
                    }
                    sum.last_version = a.last_version;
                    sum.dropped += a.dropped;
                    sum.bytes += a.bytes;
                }
                None => {
                    let note = bounded(format!(
                        "[recorded] {}: {} versions (v{} to v{}, {} bytes) left out by the recording's array budget (any later ones: summed up at the end)",
                        a.key, a.dropped, a.first_version, a.last_version, a.bytes
                    ));
                    inner.log_at(Level::Info, note, time, None);
                    left_out.insert(a.key.clone(), pb::ArraysThinned::default());
                }
            }
            false
        });
        if upto == u64::MAX {
            for (key, sum) in left_out.iter_mut().filter(|(_, s)| s.dropped > 0) {
                let note = bounded(format!(
                    "[recorded] {key}: {} more versions (v{} to v{}, {} bytes) left out by the recording's array budget",
                    sum.dropped, sum.first_version, sum.last_version, sum.bytes
                ));
                inner.log_at(Level::Info, note, time, None);
                *sum = pb::ArraysThinned::default();
            }
        }
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
    pub(crate) fn at_end(&mut self) -> Result<Flow, ReplayError> {
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
    pub(crate) fn gate(&mut self) -> GateOutcome {
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
    pub(crate) fn sleep_until(&mut self, due: Instant) -> GateOutcome {
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
    pub(crate) fn seek(&mut self, to: SeekTo) -> Result<(), ReplayError> {
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
            self.arrays_left_out.clear();
            self.complete = false;
            self.said_end = false;
        }
        self.target = Some(target);
        Ok(())
    }
}

/// The recorded pace: when a recorded moment is due on the wall clock.
#[derive(Clone, Copy)]
pub(crate) struct Pace {
    pub(crate) speed: Option<f64>,
    /// The wall time and recorded time pacing counts from (reset after a
    /// hold or a seek, so neither counts as replayed).
    pub(crate) origin: Option<(Instant, f64)>,
}

impl Pace {
    /// The recorded time due now, once pacing has started.
    pub(crate) fn recorded_now(&self) -> Option<f64> {
        let speed = self.speed?;
        let (at, t0) = self.origin?;
        Some(t0 + at.elapsed().as_secs_f64() * speed)
    }

    /// When the moment recorded at `t` is due; `None`: now (unpaced).
    pub(crate) fn due(&mut self, t: f64) -> Option<Instant> {
        let speed = self.speed?;
        if !t.is_finite() {
            return None;
        }
        let (at, t0) = *self.origin.get_or_insert((Instant::now(), t));
        let secs = ((t - t0) / speed).clamp(0.0, 1e9);
        Some(at + Duration::from_secs_f64(secs))
    }
}
