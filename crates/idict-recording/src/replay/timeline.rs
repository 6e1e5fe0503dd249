//! A replay's timeline: what the recording spans and its marks (applied
//! writes, control actions), each with a short label, read before the
//! replay starts, and kept within `ReplayTimeline::MAX_MARKS`.

use super::*;

pub(crate) const MAX_LABEL: usize = 200;

pub(crate) fn bounded(s: String) -> String {
    let s = escape_controls(&s).into_owned();
    match s.char_indices().nth(MAX_LABEL) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

pub(crate) fn control_label(c: &pb::ControlEvent) -> String {
    let action = pb::Action::try_from(c.action).map_or("an unknown action".to_string(), |a| {
        a.as_str_name().trim_start_matches("ACTION_").to_lowercase()
    });
    let action = match action.as_str() {
        "step" if c.steps > 1 => format!("step {}", c.steps),
        _ => action,
    };
    bounded(format!("{action} by {}", c.origin))
}

pub(crate) fn write_label(a: &pb::AppliedWrite) -> String {
    let value = a
        .value
        .clone()
        .and_then(|v| wire::value_from_proto(v).ok())
        .map_or("?".to_string(), |v| v.to_string());
    bounded(format!("{} = {value} by {}", a.key, a.origin))
}

/// A series' first sample's version and time, read off its encoding
/// (for the timeline: nothing unpacked).
pub(crate) fn first_sample(s: &pb::SampleSeries) -> Option<(u64, f64)> {
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
pub(crate) fn thin_evenly(marks: &mut Vec<TimelineMark>, keep: usize) -> usize {
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

/// Reads the recording through once, lightly (each record's version, time
/// and marks, no sample unpacked: this read is as long as the recording),
/// for what it spans and its marks, thinned evenly to a bound.
pub(crate) fn read_timeline(reader: &mut Reader, header: &pb::RecordingHeader) -> ReplayTimeline {
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
    t
}
