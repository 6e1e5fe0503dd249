//! Replaying a recording: a run of its own publishes what the recorded run
//! did, version by version, paced by the recorded times (`speed` times as
//! fast) or as fast as it goes. It waits at its gate before each version,
//! so clients pause, step and resume it like any run, over the same
//! contract; terminating it ends the replay. Recorded log messages and
//! control actions come back as log messages.

use crate::client::parts::PartJoiner;
use crate::model::Level;
use crate::recording::{Recording, RecordingError};
use crate::value::Value;
use crate::{IDict, wire};
use idict_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Recorded seconds per wall second (2.0: twice as fast); `None`: as
    /// fast as it goes.
    pub speed: Option<f64>,
}

/// What a replay went through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    /// Versions published.
    pub versions: u64,
    /// Scalar samples published.
    pub samples: u64,
    /// Whether the recording ended with the run's last update.
    pub complete: bool,
    /// The replay was terminated before the end.
    pub terminated: bool,
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

/// One whole update, gathered from the messages it spans (`more`).
#[derive(Default)]
struct Whole {
    /// Scalar samples by version.
    samples: BTreeMap<u64, Vec<(String, f64, f64)>>,
    changed: Vec<(String, Value)>,
    removed: Vec<String>,
    messages: Vec<pb::LogMessage>,
    reset: bool,
}

/// The run's gate, then the recorded pace: sleeps in short steps, so a
/// pause or terminate is seen at once, and time held at the gate does not
/// count as replayed. False once the replay is terminated.
struct Pace {
    speed: Option<f64>,
    /// Wall time of the recording's first published moment, moved on by
    /// every hold at the gate.
    origin: Option<(Instant, f64)>,
}

impl Pace {
    fn gate(&mut self, idict: &IDict, t: f64) -> bool {
        let held = Instant::now();
        if !idict.wait() {
            return false;
        }
        let Some(speed) = self.speed.filter(|s| s.is_finite() && *s > 0.0) else {
            return true;
        };
        if !t.is_finite() {
            return true;
        }
        if let Some((at, _)) = &mut self.origin {
            *at += held.elapsed();
        }
        let (at, t0) = *self.origin.get_or_insert((Instant::now(), t));
        let due = ((t - t0) / speed).clamp(0.0, 1e9);
        let due = at + Duration::from_secs_f64(due);
        while Instant::now() < due {
            if idict.terminated() {
                return false;
            }
            if idict.status().state == crate::RunState::Paused {
                // Held: the pause is the gate's, and does not count.
                let paused = Instant::now();
                if !idict.wait() {
                    return false;
                }
                if let Some((at, _)) = &mut self.origin {
                    *at += paused.elapsed();
                }
                continue;
            }
            std::thread::sleep((due - Instant::now()).min(Duration::from_millis(50)));
        }
        true
    }
}

fn action_name(c: &pb::ControlEvent) -> String {
    pb::Action::try_from(c.action).map_or("an unknown action".to_string(), |a| {
        a.as_str_name().trim_start_matches("ACTION_").to_lowercase()
    })
}

/// Publishes the recording's updates into `idict`, which a server serves.
pub fn replay<R: std::io::Read>(
    recording: &mut Recording<R>,
    idict: &IDict,
    opts: &ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    let mut summary = ReplaySummary::default();
    let mut parts = PartJoiner::new(1 << 30);
    let mut kinds: HashMap<String, Value> = HashMap::new();
    // Keys whose samples the recording carries: their samples, in order,
    // are their values (a delta's newest value can run ahead of the
    // samples it carries; applying it would publish the future early).
    let mut sampled: HashSet<String> = HashSet::new();
    // Control events wait for the replay to reach their version: the
    // recorder writes them as they come, ahead of the updates it lags.
    let mut controls: Vec<pb::ControlEvent> = Vec::new();
    let mut whole = Whole::default();
    let mut pace = Pace {
        speed: opts.speed,
        origin: None,
    };
    let log_controls = |controls: &mut Vec<pb::ControlEvent>, upto: u64| {
        controls.retain(|c| {
            if c.version > upto {
                return true;
            }
            idict.message(
                Level::Info,
                format!(
                    "[recorded] {} by {} at v{}",
                    action_name(c),
                    crate::value::escape_controls(&c.origin),
                    c.version
                ),
            );
            false
        });
    };
    for entry in recording.by_ref() {
        let update = match entry?.kind {
            Some(pb::record_entry::Kind::Update(u)) => u,
            Some(pb::record_entry::Kind::Control(c)) => {
                controls.push(c);
                continue;
            }
            _ => continue,
        };
        // Gather the update across its messages.
        for s in update.samples {
            let (key, series) =
                wire::series_from_proto(s).map_err(|e| ReplayError::BadValue(e.to_string()))?;
            sampled.insert(key.clone());
            for i in 0..series.len() {
                whole.samples.entry(series.versions[i]).or_default().push((
                    key.clone(),
                    series.times[i],
                    series.values[i],
                ));
            }
        }
        for e in update.changed {
            let v = e
                .value
                .ok_or_else(|| ReplayError::BadValue(format!("no value for '{}'", e.key)))?;
            let v = wire::value_from_proto(v).map_err(|e| ReplayError::BadValue(e.to_string()))?;
            whole.changed.push((e.key, v));
        }
        if let Some(p) = update.part
            && let Some(done) = parts
                .add(p)
                .map_err(|e| ReplayError::BadValue(e.to_string()))?
        {
            whole.changed.push(done);
        }
        whole.removed.extend(update.removed);
        whole.messages.extend(update.messages);
        whole.reset |= update.reset;
        if update.more {
            continue;
        }
        let w = std::mem::take(&mut whole);
        // The kinds first: a sample of an int key publishes an int.
        for (k, v) in &w.changed {
            kinds.insert(k.clone(), v.clone());
        }
        // Messages go out with the first version of the update.
        let mut messages = Some(w.messages);
        let send_messages = |messages: &mut Option<Vec<pb::LogMessage>>| {
            for m in messages.take().unwrap_or_default() {
                idict.message(level(m.level), m.text);
            }
        };
        if w.reset {
            // A whole state: everything in it, sampled keys too (their
            // last sample may be older than the samples it carries).
            let mut d = idict.lock();
            d.clear();
            for (k, v) in &w.changed {
                d.insert(k, v.clone());
            }
        }
        for (&v, samples) in w.samples.range(..update.version) {
            let t = samples.first().map_or(f64::NAN, |s| s.1);
            if !pace.gate(idict, t) {
                summary.terminated = true;
                return Ok(summary);
            }
            {
                let mut d = idict.lock();
                for (key, _, x) in samples {
                    let value = as_kind(*x, kinds.get(key));
                    d.insert(key, value);
                }
            }
            send_messages(&mut messages);
            idict.notify_update()?;
            log_controls(&mut controls, v);
            summary.versions += 1;
            summary.samples += samples.len() as u64;
        }
        if !pace.gate(idict, update.time) {
            summary.terminated = true;
            return Ok(summary);
        }
        {
            let mut d = idict.lock();
            if let Some(samples) = w.samples.get(&update.version) {
                for (key, _, x) in samples {
                    let value = as_kind(*x, kinds.get(key));
                    d.insert(key, value);
                }
                summary.samples += samples.len() as u64;
            }
            if !w.reset {
                for (k, v) in w.changed {
                    if !(sampled.contains(&k) && v.as_scalar().is_some()) {
                        d.insert(&k, v);
                    }
                }
            }
            for k in &w.removed {
                d.remove(k);
            }
        }
        send_messages(&mut messages);
        log_controls(&mut controls, update.version);
        if update.last {
            log_controls(&mut controls, u64::MAX);
            summary.complete = true;
            return Ok(summary);
        }
        idict.notify_update()?;
        summary.versions += 1;
    }
    log_controls(&mut controls, u64::MAX);
    Ok(summary)
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
        let bytes = crafted();
        let mut recording =
            crate::recording::read(bytes.as_slice(), std::path::Path::new("t")).unwrap();
        let run = IDict::new("crafted");
        // Paced, with a NaN time in the file: no panic.
        let opts = ReplayOptions {
            speed: Some(1000.0),
        };
        let summary = replay(&mut recording, &run, &opts).unwrap();
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
