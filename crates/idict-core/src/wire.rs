//! Conversions between the typed model (`Value`, `Status`, …) and the v1
//! protobuf messages. Decoding is where input from outside enters, so every
//! decode here is bounded and validated: nesting depth, key length, array
//! byte length against shape × dtype. Arrays are never copied: their bytes
//! are shared between `Value` and the message.

use crate::history::Series;
use crate::model::{
    AppliedWrite, KeyInfo, Level, LogMessage, Role, RunState, Status, TriggerActions,
    TriggerFiring, TriggerInfo, WritableInfo,
};
use crate::value::{ArrayError, DType, NdArray, Value, ValueKind};
use idict_proto::v1 as pb;
use std::collections::BTreeMap;

/// Deepest nesting of lists and maps accepted from a client.
pub const MAX_DEPTH: usize = 32;
/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a message from the other side is not a valid value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("a value is missing (empty oneof)")]
    MissingValue,
    #[error("values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("a key of {0} bytes is longer than the limit of {MAX_KEY_BYTES}")]
    KeyTooLong(usize),
    #[error("unknown array dtype {0}")]
    UnknownDType(i32),
    #[error("array shape dimension {0} does not fit this machine")]
    HugeDimension(u64),
    #[error(transparent)]
    Array(#[from] ArrayError),
    #[error("duplicate map key '{0}'")]
    DuplicateKey(String),
    #[error("unknown {what} value {value}")]
    UnknownEnum { what: &'static str, value: i32 },
    #[error("samples of '{key}': {problem}")]
    BadSeries { key: String, problem: String },
}

/// Checks a key from outside.
pub fn check_key(key: &str) -> Result<(), WireError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(WireError::KeyTooLong(key.len()));
    }
    Ok(())
}

pub fn dtype_to_proto(d: DType) -> pb::Dtype {
    match d {
        DType::F64 => pb::Dtype::F64,
        DType::F32 => pb::Dtype::F32,
        DType::I64 => pb::Dtype::I64,
        DType::I32 => pb::Dtype::I32,
        DType::U8 => pb::Dtype::U8,
        DType::Bool => pb::Dtype::Bool,
    }
}

pub(crate) fn dtype_from_proto(d: i32) -> Result<DType, WireError> {
    Ok(match pb::Dtype::try_from(d) {
        Ok(pb::Dtype::F64) => DType::F64,
        Ok(pb::Dtype::F32) => DType::F32,
        Ok(pb::Dtype::I64) => DType::I64,
        Ok(pb::Dtype::I32) => DType::I32,
        Ok(pb::Dtype::U8) => DType::U8,
        Ok(pb::Dtype::Bool) => DType::Bool,
        _ => return Err(WireError::UnknownDType(d)),
    })
}

/// A value as a protobuf message (arrays share their bytes).
pub fn value_to_proto(v: &Value) -> pb::Value {
    use pb::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(pb::Null {}),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Int(i) => Kind::IntValue(*i),
        Value::Float(x) => Kind::FloatValue(*x),
        Value::Str(s) => Kind::StrValue(s.clone()),
        Value::Bytes(b) => Kind::BytesValue(b.clone()),
        Value::Array(a) => Kind::ArrayValue(pb::NdArray {
            dtype: dtype_to_proto(a.dtype()) as i32,
            shape: a.shape().iter().map(|&d| d as u64).collect(),
            data: a.bytes().clone(),
        }),
        Value::List(items) => Kind::ListValue(pb::ListValue {
            items: items.iter().map(value_to_proto).collect(),
        }),
        Value::Map(m) => Kind::MapValue(pb::MapValue {
            entries: m
                .iter()
                .map(|(k, v)| pb::Entry {
                    key: k.clone(),
                    value: Some(value_to_proto(v)),
                })
                .collect(),
        }),
    };
    pb::Value { kind: Some(kind) }
}

/// A protobuf value as a `Value`, validated.
pub fn value_from_proto(v: pb::Value) -> Result<Value, WireError> {
    from_proto_at(v, 0)
}

fn from_proto_at(v: pb::Value, depth: usize) -> Result<Value, WireError> {
    use pb::value::Kind;
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    Ok(match v.kind.ok_or(WireError::MissingValue)? {
        Kind::NullValue(_) => Value::Null,
        Kind::BoolValue(b) => Value::Bool(b),
        Kind::IntValue(i) => Value::Int(i),
        Kind::FloatValue(x) => Value::Float(x),
        Kind::StrValue(s) => Value::Str(s),
        Kind::BytesValue(b) => Value::Bytes(b),
        Kind::ArrayValue(a) => {
            let dtype = dtype_from_proto(a.dtype)?;
            let shape = a
                .shape
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| WireError::HugeDimension(d)))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Array(NdArray::from_bytes(dtype, shape, a.data)?)
        }
        Kind::ListValue(l) => Value::List(
            l.items
                .into_iter()
                .map(|x| from_proto_at(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Kind::MapValue(m) => {
            let mut out = BTreeMap::new();
            for e in m.entries {
                check_key(&e.key)?;
                let value = from_proto_at(e.value.ok_or(WireError::MissingValue)?, depth + 1)?;
                if out.insert(e.key.clone(), value).is_some() {
                    return Err(WireError::DuplicateKey(e.key));
                }
            }
            Value::Map(out)
        }
    })
}

pub fn kind_to_proto(k: ValueKind) -> pb::ValueKind {
    match k {
        ValueKind::Null => pb::ValueKind::Null,
        ValueKind::Bool => pb::ValueKind::Bool,
        ValueKind::Int => pb::ValueKind::Int,
        ValueKind::Float => pb::ValueKind::Float,
        ValueKind::Str => pb::ValueKind::Str,
        ValueKind::Bytes => pb::ValueKind::Bytes,
        ValueKind::Array => pb::ValueKind::Array,
        ValueKind::List => pb::ValueKind::List,
        ValueKind::Map => pb::ValueKind::Map,
    }
}

pub(crate) fn kind_from_proto(k: i32) -> Result<ValueKind, WireError> {
    Ok(match pb::ValueKind::try_from(k) {
        Ok(pb::ValueKind::Null) => ValueKind::Null,
        Ok(pb::ValueKind::Bool) => ValueKind::Bool,
        Ok(pb::ValueKind::Int) => ValueKind::Int,
        Ok(pb::ValueKind::Float) => ValueKind::Float,
        Ok(pb::ValueKind::Str) => ValueKind::Str,
        Ok(pb::ValueKind::Bytes) => ValueKind::Bytes,
        Ok(pb::ValueKind::Array) => ValueKind::Array,
        Ok(pb::ValueKind::List) => ValueKind::List,
        Ok(pb::ValueKind::Map) => ValueKind::Map,
        _ => {
            return Err(WireError::UnknownEnum {
                what: "ValueKind",
                value: k,
            });
        }
    })
}

pub fn status_to_proto(s: &Status) -> pb::Status {
    pb::Status {
        state: match s.state {
            RunState::Running => pb::RunState::Running,
            RunState::Paused => pb::RunState::Paused,
            RunState::Terminating => pb::RunState::Terminating,
            RunState::Finished => pb::RunState::Finished,
            RunState::Failed => pb::RunState::Failed,
        } as i32,
        message: s.message.clone(),
        held: s.held,
        steps_pending: s.steps_pending,
        step: s.step,
        pause_at_step: s.pause_at,
        terminate_at_step: s.terminate_at,
        ranks_behind: s.ranks_behind,
        ranks_behind_first: s.ranks_behind_first.clone(),
    }
}

pub fn status_from_proto(s: Option<pb::Status>) -> Result<Status, WireError> {
    let s = s.ok_or(WireError::MissingValue)?;
    let state = match pb::RunState::try_from(s.state) {
        Ok(pb::RunState::Running) => RunState::Running,
        Ok(pb::RunState::Paused) => RunState::Paused,
        Ok(pb::RunState::Terminating) => RunState::Terminating,
        Ok(pb::RunState::Finished) => RunState::Finished,
        Ok(pb::RunState::Failed) => RunState::Failed,
        _ => {
            return Err(WireError::UnknownEnum {
                what: "RunState",
                value: s.state,
            });
        }
    };
    Ok(Status {
        state,
        message: s.message,
        held: s.held,
        steps_pending: s.steps_pending,
        step: s.step,
        pause_at: s.pause_at_step,
        terminate_at: s.terminate_at_step,
        ranks_behind: s.ranks_behind,
        ranks_behind_first: s
            .ranks_behind_first
            .into_iter()
            .take(crate::model::RANKS_LISTED)
            .collect(),
    })
}

pub(crate) fn level_to_proto(l: Level) -> pb::Level {
    match l {
        Level::Debug => pb::Level::Debug,
        Level::Info => pb::Level::Info,
        Level::Warn => pb::Level::Warn,
        Level::Error => pb::Level::Error,
    }
}

pub fn message_to_proto(m: &LogMessage) -> pb::LogMessage {
    pb::LogMessage {
        seq: m.seq,
        level: level_to_proto(m.level) as i32,
        text: m.text.clone(),
        time: m.time,
        version: m.version,
        trigger: m.trigger.as_ref().map(firing_to_proto),
    }
}

pub fn message_from_proto(m: pb::LogMessage) -> LogMessage {
    LogMessage {
        seq: m.seq,
        level: level_from_proto(m.level, Level::Info),
        text: m.text,
        time: m.time,
        version: m.version,
        trigger: m.trigger.and_then(firing_from_proto),
    }
}

/// A level from the wire; `unset` when it is unspecified or unknown.
pub fn level_from_proto(level: i32, unset: Level) -> Level {
    match pb::Level::try_from(level) {
        Ok(pb::Level::Debug) => Level::Debug,
        Ok(pb::Level::Info) => Level::Info,
        Ok(pb::Level::Warn) => Level::Warn,
        Ok(pb::Level::Error) => Level::Error,
        _ => unset,
    }
}

pub fn firing_to_proto(f: &TriggerFiring) -> pb::TriggerFiring {
    pb::TriggerFiring {
        name: f.name.clone(),
        condition: f.condition.clone(),
        version: f.version,
        keys: f.values.iter().map(|(k, _)| k.clone()).collect(),
        values: f.values.iter().map(|(_, v)| *v).collect(),
    }
}

/// A firing from the wire; `None` if its keys and values do not pair up
/// or are more than a condition reads.
pub fn firing_from_proto(f: pb::TriggerFiring) -> Option<TriggerFiring> {
    if f.keys.len() != f.values.len() || f.keys.len() > crate::triggers::expr::MAX_KEYS {
        return None;
    }
    Some(TriggerFiring {
        name: f.name,
        condition: f.condition,
        version: f.version,
        values: f.keys.into_iter().zip(f.values).collect(),
    })
}

pub fn trigger_actions_to_proto(a: &TriggerActions) -> pb::TriggerActions {
    pb::TriggerActions {
        pause: a.pause,
        terminate: a.terminate,
        checkpoint: a.checkpoint,
        level: level_to_proto(a.level) as i32,
        message: a.message.clone(),
    }
}

pub fn trigger_actions_from_proto(a: Option<pb::TriggerActions>) -> TriggerActions {
    let a = a.unwrap_or_default();
    TriggerActions {
        pause: a.pause,
        terminate: a.terminate,
        checkpoint: a.checkpoint,
        level: level_from_proto(a.level, crate::triggers::DEFAULT_LEVEL),
        message: a.message,
    }
}

pub fn trigger_info_to_proto(t: &TriggerInfo) -> pb::TriggerInfo {
    pb::TriggerInfo {
        name: t.name.clone(),
        condition: t.condition.clone(),
        actions: Some(trigger_actions_to_proto(&t.actions)),
        from_program: t.from_program,
        fired: t.fired,
        last_fired_version: t.last_fired_version,
    }
}

pub fn trigger_info_from_proto(t: pb::TriggerInfo) -> TriggerInfo {
    TriggerInfo {
        name: t.name,
        condition: t.condition,
        actions: trigger_actions_from_proto(t.actions),
        from_program: t.from_program,
        fired: t.fired,
        last_fired_version: t.last_fired_version,
    }
}

pub fn applied_to_proto(a: &AppliedWrite) -> pb::AppliedWrite {
    pb::AppliedWrite {
        write_id: a.write_id,
        key: a.key.clone(),
        value: Some(value_to_proto(&a.value)),
        origin: a.origin.clone(),
        version: a.version,
    }
}

pub fn applied_from_proto(a: pb::AppliedWrite) -> Result<AppliedWrite, WireError> {
    Ok(AppliedWrite {
        write_id: a.write_id,
        key: a.key,
        value: value_from_proto(a.value.ok_or(WireError::MissingValue)?)?,
        origin: a.origin,
        version: a.version,
    })
}

/// A series for the wire, packed (for a client that asked) or repeated.
pub fn series_to_proto(key: &str, s: Series, packed: bool) -> pb::SampleSeries {
    if !packed {
        return pb::SampleSeries {
            key: key.to_owned(),
            versions: s.versions,
            times: s.times,
            values: s.values,
            ..Default::default()
        };
    }
    let steps = s.versions.windows(2).map(|w| w[1].wrapping_sub(w[0]));
    let version_steps = if steps.clone().all(|d| d == 1) {
        Vec::new()
    } else {
        steps.collect()
    };
    pb::SampleSeries {
        key: key.to_owned(),
        first_version: s.versions.first().copied().unwrap_or(0),
        version_steps,
        packed_times: f64s_to_le(&s.times),
        packed_values: f64s_to_le(&s.values),
        ..Default::default()
    }
}

fn f64s_to_le(xs: &[f64]) -> bytes::Bytes {
    let mut out = Vec::with_capacity(xs.len() * 8);
    for x in xs {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.into()
}

fn f64s_from_le(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

/// A sample series from the wire, in either form, checked: parallel arrays
/// of equal lengths, versions that fit.
pub fn series_from_proto(s: pb::SampleSeries) -> Result<(String, Series), WireError> {
    let packed = !s.packed_values.is_empty() || !s.packed_times.is_empty();
    if packed && !s.time_steps_ns.is_empty() {
        return stepped_series_from_proto(s);
    }
    if packed {
        return packed_series_from_proto(s);
    }
    let n = s.versions.len();
    if s.times.len() != n || s.values.len() != n {
        return Err(WireError::Array(ArrayError::LengthMismatch {
            dtype: DType::F64,
            shape: vec![n],
            expected: n,
            actual: s.times.len().min(s.values.len()),
        }));
    }
    Ok((
        s.key,
        Series {
            versions: s.versions,
            times: s.times,
            values: s.values,
        },
    ))
}

fn packed_series_from_proto(s: pb::SampleSeries) -> Result<(String, Series), WireError> {
    let bad = |key: &str, problem: String| WireError::BadSeries {
        key: key.to_owned(),
        problem,
    };
    let (t, v) = (s.packed_times.len(), s.packed_values.len());
    if t != v || !v.is_multiple_of(8) {
        return Err(bad(
            &s.key,
            format!("{t} bytes of times and {v} of values, not 8 per sample each"),
        ));
    }
    if !s.versions.is_empty() || !s.times.is_empty() || !s.values.is_empty() {
        return Err(bad(&s.key, "both the packed and the repeated form".into()));
    }
    let n = v / 8;
    let steps = s.version_steps.len();
    if steps != 0 && steps + 1 != n {
        return Err(bad(
            &s.key,
            format!("{steps} version steps for {n} samples"),
        ));
    }
    let past = || bad(&s.key, "a version past 2^64".into());
    let first = s.first_version;
    let versions = if steps == 0 {
        first
            .checked_add(n.saturating_sub(1) as u64)
            .ok_or_else(past)?;
        (0..n as u64).map(|i| first + i).collect()
    } else {
        let mut versions = Vec::with_capacity(n);
        let mut at = first;
        versions.push(at);
        for &step in &s.version_steps {
            at = at.checked_add(step).ok_or_else(past)?;
            versions.push(at);
        }
        versions
    };
    Ok((
        s.key,
        Series {
            versions,
            times: f64s_from_le(&s.packed_times),
            values: f64s_from_le(&s.packed_values),
        },
    ))
}

/// A packed series's times as nanosecond steps (what a recording keeps):
/// rounded to the nanosecond, which the run's clock does not pass anyway.
pub fn times_to_steps(s: &mut pb::SampleSeries) {
    if s.packed_times.is_empty() {
        return;
    }
    let times = f64s_from_le(&s.packed_times);
    let mut prev = 0i64;
    s.time_steps_ns = times
        .iter()
        .map(|t| {
            let ns = (t * 1e9).round() as i64;
            let step = ns.wrapping_sub(prev);
            prev = ns;
            step
        })
        .collect();
    s.packed_times = bytes::Bytes::new();
}

fn stepped_series_from_proto(mut s: pb::SampleSeries) -> Result<(String, Series), WireError> {
    let n = s.packed_values.len() / 8;
    if s.time_steps_ns.len() != n || !s.packed_times.is_empty() {
        return Err(WireError::BadSeries {
            key: s.key,
            problem: format!(
                "{} time steps (and {} bytes of times) for {n} samples",
                s.time_steps_ns.len(),
                s.packed_times.len()
            ),
        });
    }
    let mut at = 0i64;
    let mut times = Vec::with_capacity(n * 8);
    for &step in &s.time_steps_ns {
        at = at.wrapping_add(step);
        times.extend_from_slice(&(at as f64 / 1e9).to_le_bytes());
    }
    s.packed_times = times.into();
    s.time_steps_ns = Vec::new();
    packed_series_from_proto(s)
}

pub fn role_to_proto(r: Role) -> pb::Role {
    match r {
        Role::Observer => pb::Role::Observer,
        Role::Controller => pb::Role::Controller,
    }
}

pub fn role_from_proto(r: i32) -> Option<Role> {
    match pb::Role::try_from(r) {
        Ok(pb::Role::Observer) => Some(Role::Observer),
        Ok(pb::Role::Controller) => Some(Role::Controller),
        _ => None,
    }
}

pub fn key_info_from_proto(k: pb::KeyInfo) -> Result<KeyInfo, WireError> {
    let kind = kind_from_proto(k.kind)?;
    let array = if kind == ValueKind::Array {
        Some((
            dtype_from_proto(k.dtype)?,
            k.shape.iter().map(|&d| d as usize).collect(),
        ))
    } else {
        None
    };
    let writable = match (k.writable, k.spec) {
        (true, Some(s)) => Some(WritableInfo {
            kind: kind_from_proto(s.kind)?,
            min: s.min,
            max: s.max,
            description: s.description,
        }),
        (true, None) => Some(WritableInfo {
            kind,
            min: None,
            max: None,
            description: String::new(),
        }),
        _ => None,
    };
    Ok(KeyInfo {
        name: k.name,
        kind,
        array,
        changed_version: k.changed_version,
        writable,
        history_len: k.history_len,
    })
}

pub fn thinned_from_proto(t: pb::Thinned) -> crate::model::Thinned {
    crate::model::Thinned {
        key: t.key,
        after_version: t.after_version,
        until_version: t.until_version,
        dropped: t.dropped,
        kept: t.kept,
    }
}

pub fn timeline_to_proto(t: &crate::model::ReplayTimeline) -> pb::ReplayTimeline {
    pb::ReplayTimeline {
        first_version: t.first_version,
        last_version: t.last_version,
        first_time: t.first_time,
        last_time: t.last_time,
        marks: t
            .marks
            .iter()
            .map(|m| pb::TimelineMark {
                version: m.version,
                time: m.time,
                kind: match m.kind {
                    crate::model::MarkKind::Control => pb::MarkKind::Control,
                    crate::model::MarkKind::Write => pb::MarkKind::Write,
                } as i32,
                label: m.label.clone(),
            })
            .collect(),
        marks_left_off: t.marks_left_off,
        complete: t.complete,
        pid: t.pid,
        host: t.host.clone(),
        started_unix_ms: t.started_unix_ms,
    }
}

/// A replay's timeline; marks of kinds this client does not know are
/// left out, and text is bounded by the message size the client accepts.
pub fn timeline_from_proto(t: pb::ReplayTimeline) -> crate::model::ReplayTimeline {
    crate::model::ReplayTimeline {
        first_version: t.first_version,
        last_version: t.last_version,
        first_time: t.first_time,
        last_time: t.last_time,
        marks: t
            .marks
            .into_iter()
            .filter_map(|m| {
                let kind = match pb::MarkKind::try_from(m.kind) {
                    Ok(pb::MarkKind::Control) => crate::model::MarkKind::Control,
                    Ok(pb::MarkKind::Write) => crate::model::MarkKind::Write,
                    _ => return None,
                };
                Some(crate::model::TimelineMark {
                    version: m.version,
                    time: m.time,
                    kind,
                    label: m.label,
                })
            })
            .collect(),
        marks_left_off: t.marks_left_off,
        complete: t.complete,
        pid: t.pid,
        host: t.host,
        started_unix_ms: t.started_unix_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn values_round_trip_and_arrays_share_bytes() {
        let arr = Value::array(vec![1.5f64, -2.0, f64::NAN, f64::INFINITY], vec![2, 2]).unwrap();
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), arr.clone());
        m.insert(
            "b".to_string(),
            Value::List(vec![Value::Null, Value::Int(-7), "s".into()]),
        );
        let v = Value::Map(m);
        let back = value_from_proto(value_to_proto(&v)).unwrap();
        // NaN != NaN, so compare the bytes of the array.
        let Value::Map(bm) = &back else { panic!() };
        assert_eq!(
            bm["a"].as_array().unwrap().bytes(),
            arr.as_array().unwrap().bytes()
        );
        assert_eq!(
            bm["b"],
            Value::List(vec![Value::Null, Value::Int(-7), "s".into()])
        );
        let p = value_to_proto(&arr);
        let Some(pb::value::Kind::ArrayValue(a)) = p.kind else {
            panic!()
        };
        assert_eq!(a.data.as_ptr(), arr.as_array().unwrap().bytes().as_ptr());
    }

    #[test]
    fn bad_arrays_and_deep_nesting_are_refused() {
        let bad = pb::Value {
            kind: Some(pb::value::Kind::ArrayValue(pb::NdArray {
                dtype: pb::Dtype::F64 as i32,
                shape: vec![3],
                data: Bytes::from(vec![0u8; 16]),
            })),
        };
        assert!(matches!(value_from_proto(bad), Err(WireError::Array(_))));
        let unknown = pb::Value {
            kind: Some(pb::value::Kind::ArrayValue(pb::NdArray {
                dtype: 99,
                shape: vec![],
                data: Bytes::new(),
            })),
        };
        assert_eq!(value_from_proto(unknown), Err(WireError::UnknownDType(99)));
        let mut deep = pb::Value {
            kind: Some(pb::value::Kind::IntValue(1)),
        };
        for _ in 0..100 {
            deep = pb::Value {
                kind: Some(pb::value::Kind::ListValue(pb::ListValue {
                    items: vec![deep],
                })),
            };
        }
        assert_eq!(value_from_proto(deep), Err(WireError::TooDeep));
        assert_eq!(
            value_from_proto(pb::Value { kind: None }),
            Err(WireError::MissingValue)
        );
    }

    #[test]
    fn sample_series_round_trip_in_both_forms() {
        let series = |versions: Vec<u64>| Series {
            times: versions.iter().map(|&v| v as f64 * 0.001 + 1e-9).collect(),
            values: versions.iter().map(|&v| (v as f64).sin()).collect(),
            versions,
        };
        for s in [
            series(vec![]),
            series(vec![7]),
            series((100..1100).collect()),
            series(vec![1, 2, 4, 8, 1 << 40, u64::MAX]),
            Series {
                versions: vec![3, 4],
                times: vec![f64::NAN, -0.0],
                values: vec![f64::INFINITY, f64::MIN_POSITIVE],
            },
        ] {
            for packed in [false, true] {
                let m = series_to_proto("k", s.clone(), packed);
                assert_eq!(m.versions.is_empty(), packed || s.is_empty());
                let (key, back) = series_from_proto(m).expect("valid");
                assert_eq!(key, "k");
                assert_eq!(back.versions, s.versions);
                let bits = |xs: &[f64]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&back.times), bits(&s.times), "exact, NaN too");
                assert_eq!(bits(&back.values), bits(&s.values));
            }
        }
        // Consecutive versions cost no steps.
        let m = series_to_proto("k", series((5..505).collect()), true);
        assert!(m.version_steps.is_empty());
        assert_eq!((m.first_version, m.packed_values.len()), (5, 4000));
    }

    #[test]
    fn a_recordings_times_as_nanosecond_steps_read_back_to_the_nanosecond() {
        let times: Vec<f64> = (0..1000).map(|i| 3.25 + i as f64 * 1.7e-6).collect();
        let s = Series {
            versions: (1..=1000).collect(),
            values: times.iter().map(|t| t * 2.0).collect(),
            times: times.clone(),
        };
        let mut m = series_to_proto("k", s.clone(), true);
        times_to_steps(&mut m);
        assert!(m.packed_times.is_empty() && m.time_steps_ns.len() == 1000);
        assert!(
            prost::Message::encoded_len(&m) < 1000 * 12,
            "under 12 bytes a sample"
        );
        let (_, back) = series_from_proto(m.clone()).expect("valid");
        assert_eq!(back.versions, s.versions);
        assert_eq!(back.values, s.values, "values exact");
        for (a, b) in back.times.iter().zip(&times) {
            assert!((a - b).abs() < 1e-9, "{a} against {b}");
        }
        m.time_steps_ns.pop();
        assert!(matches!(
            series_from_proto(m),
            Err(WireError::BadSeries { .. })
        ));
    }

    #[test]
    fn malformed_packed_series_are_refused() {
        let packed = |first: u64, steps: Vec<u64>, t: usize, v: usize| pb::SampleSeries {
            key: "k".into(),
            first_version: first,
            version_steps: steps,
            packed_times: Bytes::from(vec![0u8; t]),
            packed_values: Bytes::from(vec![0u8; v]),
            ..Default::default()
        };
        for bad in [
            packed(1, vec![], 8, 16),
            packed(1, vec![], 12, 12),
            packed(1, vec![1, 1], 16, 16),
            packed(u64::MAX, vec![], 16, 16),
            packed(u64::MAX - 1, vec![2], 16, 16),
            pb::SampleSeries {
                versions: vec![1],
                ..packed(1, vec![], 8, 8)
            },
        ] {
            assert!(
                matches!(
                    series_from_proto(bad.clone()),
                    Err(WireError::BadSeries { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(series_from_proto(packed(u64::MAX, vec![], 8, 8)).is_ok());
    }
}
