//! How values, statuses and durations look on a terminal and in `--json`.
//! The JSON forms are a stable interface for scripts: scalars are JSON
//! scalars, arrays `{"dtype", "shape", "min", "max", "mean"}` plus `"data"`
//! with `--full`, status words lower-case.

use idict::{Status, Value};
use serde_json::{Value as Json, json};

/// A value as JSON for scripts; arrays summarised unless `full`.
pub fn value_json(v: &Value, full: bool) -> Json {
    match v {
        Value::Array(a) => {
            let mut o = serde_json::Map::new();
            o.insert("dtype".into(), json!(a.dtype().name()));
            o.insert("shape".into(), json!(a.shape()));
            if let Some(s) = a.stats() {
                o.insert("min".into(), json!(s.min));
                o.insert("max".into(), json!(s.max));
                o.insert("mean".into(), json!(s.mean));
            }
            if full {
                o.insert("data".into(), v.to_json());
            }
            Json::Object(o)
        }
        Value::Bytes(b) if !full => json!({ "bytes": b.len() }),
        Value::List(items) => Json::Array(items.iter().map(|x| value_json(x, full)).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), value_json(x, full)))
                .collect(),
        ),
        other => other.to_json(),
    }
}

/// A value for a person: scalars as they are, arrays summarised unless `full`.
pub fn value_text(v: &Value, full: bool) -> String {
    match v {
        Value::Float(x) => format_float(*x),
        Value::Array(_) | Value::Bytes(_) if full => v.to_json().to_string(),
        Value::Array(a) => {
            let shape: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
            let mut s = format!("{}[{}]", a.dtype(), shape.join(", "));
            if let Some(st) = a.stats() {
                s.push_str(&format!(
                    "  min {}  max {}  mean {}",
                    format_float(st.min),
                    format_float(st.max),
                    format_float(st.mean)
                ));
            }
            s
        }
        Value::List(_) | Value::Map(_) => value_json(v, full).to_string(),
        other => other.to_string(),
    }
}

pub use idict::value::format_number as format_float;

/// The status word, with the failure message or hold if any.
pub fn status_text(s: &Status) -> String {
    let mut t = state_word(s).to_string();
    if s.held {
        t.push_str(" (held)");
    }
    match s.steps_pending {
        0 => {}
        1 => t.push_str(" (1 step left, then paused)"),
        n => t.push_str(&format!(" ({n} steps left, then paused)")),
    }
    if let Some(step) = s.pause_at {
        t.push_str(&format!(" (pauses at step {step}; at {} now)", s.step));
    }
    if let Some(step) = s.terminate_at {
        t.push_str(&format!(" (terminates at step {step}; at {} now)", s.step));
    }
    if s.ranks_behind > 0 {
        t.push_str(&format!(", {}", ranks_behind_text(s)));
    }
    if !s.message.is_empty() {
        t.push_str(": ");
        t.push_str(&s.message);
    }
    t
}

/// "waiting for ranks 2, 3", or "waiting for 3998 ranks: 2, 3, 4, …".
pub fn ranks_behind_text(s: &Status) -> String {
    let listed: Vec<String> = s.ranks_behind_first.iter().map(u32::to_string).collect();
    if listed.len() as u32 >= s.ranks_behind {
        let word = if s.ranks_behind == 1 { "rank" } else { "ranks" };
        format!("waiting for {word} {}", listed.join(", "))
    } else {
        format!(
            "waiting for {} ranks: {}, …",
            s.ranks_behind,
            listed.join(", ")
        )
    }
}

/// The state in one word. A paused run with steps left is going on: it
/// says "stepping", not "paused" (after `step 2^64-1` it runs for good).
pub fn state_word(s: &Status) -> &'static str {
    if s.state == idict::RunState::Paused && s.steps_pending > 0 {
        "stepping"
    } else {
        s.state.name()
    }
}

/// "3h02m", "4m05s", "12s".
pub fn duration_text(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A command-line VALUE: JSON (`0.5`, `true`, `"text"`, `[1,2]`), a number
/// JSON does not accept (`.5`, `1.`), or else a bare word taken as a string.
pub fn parse_value(text: &str) -> Value {
    if let Ok(j) = serde_json::from_str::<Json>(text) {
        return Value::from(j);
    }
    if let Ok(x) = text.trim().parse::<f64>() {
        return Value::Float(x);
    }
    Value::Str(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_json_numbers_or_bare_words() {
        assert_eq!(parse_value("0.5"), Value::Float(0.5));
        assert_eq!(parse_value("3"), Value::Int(3));
        assert_eq!(parse_value(".5"), Value::Float(0.5));
        assert_eq!(parse_value("true"), Value::Bool(true));
        assert_eq!(parse_value("\"text\""), Value::from("text"));
        assert_eq!(parse_value("fast"), Value::from("fast"));
        assert_eq!(
            parse_value("[1,2]"),
            Value::List(vec![Value::Int(1), Value::Int(2)])
        );
    }

    #[test]
    fn arrays_are_summarised_in_json_unless_full() {
        let v = Value::array(vec![1.0, 2.0, 3.0, 6.0], vec![2, 2]).unwrap();
        assert_eq!(
            value_json(&v, false),
            json!({"dtype": "f64", "shape": [2, 2], "min": 1.0, "max": 6.0, "mean": 3.0})
        );
        assert_eq!(
            value_json(&v, true)["data"],
            json!([[1.0, 2.0], [3.0, 6.0]])
        );
        assert_eq!(value_text(&v, false), "f64[2, 2]  min 1  max 6  mean 3");
    }

    #[test]
    fn durations_and_floats_read_well() {
        assert_eq!(duration_text(5.2), "5s");
        assert_eq!(duration_text(185.0), "3m05s");
        assert_eq!(duration_text(7300.0), "2h01m");
        assert_eq!(format_float(0.015), "0.015");
        assert_eq!(format_float(1.5e-9), "1.5e-9");
        assert_eq!(format_float(2.0), "2");
    }
}
