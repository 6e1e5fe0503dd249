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
    let mut carried: BTreeMap<u64, Vec<(String, f64, f64)>> = BTreeMap::new();
    let started = Instant::now();
    let mut first_time: Option<f64> = None;
    let pace = |t: f64, first: &mut Option<f64>| {
        let Some(speed) = opts.speed.filter(|s| s.is_finite() && *s > 0.0) else {
            return;
        };
        let t0 = *first.get_or_insert(t);
        let due = Duration::from_secs_f64(((t - t0) / speed).clamp(0.0, 1e9));
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    };
    for entry in recording.by_ref() {
        let update = match entry?.kind {
            Some(pb::record_entry::Kind::Update(u)) => u,
            Some(pb::record_entry::Kind::Control(c)) => {
                let action = pb::Action::try_from(c.action)
                    .map_or("an unknown action".to_string(), |a| {
                        a.as_str_name().trim_start_matches("ACTION_").to_lowercase()
                    });
                idict.message(
                    Level::Info,
                    format!("[recorded] {action} by {} at v{}", c.origin, c.version),
                );
                continue;
            }
            _ => continue,
        };
        // The samples of this update, version by version (with those of
        // its newest version that an earlier message of it carried).
        let mut by_version: BTreeMap<u64, Vec<(String, f64, f64)>> = std::mem::take(&mut carried);
        for s in update.samples {
            let (key, series) =
                wire::series_from_proto(s).map_err(|e| ReplayError::BadValue(e.to_string()))?;
            sampled.insert(key.clone());
            for i in 0..series.len() {
                by_version.entry(series.versions[i]).or_default().push((
                    key.clone(),
                    series.times[i],
                    series.values[i],
                ));
            }
        }
        let mut changed = Vec::new();
        for e in update.changed {
            let v = e
                .value
                .ok_or_else(|| ReplayError::BadValue(format!("no value for '{}'", e.key)))?;
            changed.push((
                e.key,
                wire::value_from_proto(v).map_err(|e| ReplayError::BadValue(e.to_string()))?,
            ));
        }
        if let Some(p) = update.part
            && let Some(done) = parts
                .add(p)
                .map_err(|e| ReplayError::BadValue(e.to_string()))?
        {
            changed.push(done);
        }
        // The kinds first: a sample of an int key publishes an int.
        for (k, v) in &changed {
            kinds.insert(k.clone(), v.clone());
        }
        for (_, samples) in by_version.range(..update.version) {
            if !idict.wait() {
                summary.terminated = true;
                return Ok(summary);
            }
            if let Some((_, t, _)) = samples.first() {
                pace(*t, &mut first_time);
            }
            {
                let mut d = idict.lock();
                for (key, _, x) in samples {
                    let v = as_kind(*x, kinds.get(key));
                    d.insert(key, v);
                }
            }
            idict.notify_update()?;
            summary.versions += 1;
            summary.samples += samples.len() as u64;
        }
        for m in &update.messages {
            idict.message(level(m.level), m.text.clone());
        }
        if update.more {
            // The rest of this update (a large state, or a value in parts)
            // follows: its newest version is published with it.
            if let Some(samples) = by_version.remove(&update.version) {
                carried.insert(update.version, samples);
            }
            for (k, v) in changed {
                kinds.insert(k.clone(), v.clone());
                if !(sampled.contains(&k) && v.as_scalar().is_some()) {
                    idict.lock().insert(&k, v);
                }
            }
            continue;
        }
        if !idict.wait() {
            summary.terminated = true;
            return Ok(summary);
        }
        pace(update.time, &mut first_time);
        {
            let mut d = idict.lock();
            if update.reset {
                d.clear();
            }
            if let Some(samples) = by_version.get(&update.version) {
                for (key, _, x) in samples {
                    let v = as_kind(*x, kinds.get(key));
                    d.insert(key, v);
                }
                summary.samples += samples.len() as u64;
            }
            for (k, v) in changed {
                kinds.insert(k.clone(), v.clone());
                if !(sampled.contains(&k) && v.as_scalar().is_some()) {
                    d.insert(&k, v);
                }
            }
            for k in &update.removed {
                d.remove(k);
            }
        }
        if update.last {
            summary.complete = true;
            return Ok(summary);
        }
        idict.notify_update()?;
        summary.versions += 1;
    }
    Ok(summary)
}
