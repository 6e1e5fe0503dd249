//! `idict info`: a run's name, place, status, statistics and keys.

use crate::out;
use crate::render::{duration_text, format_float, status_text};
use crate::target::explain;
use anyhow::Result;
use idict::client::Client;
use idict::value::escape_controls;
use serde_json::{Value as Json, json};
use std::process::ExitCode;

pub(crate) async fn info(c: &Client, json: bool) -> Result<ExitCode> {
    let i = c.info().await.map_err(explain)?;
    if json {
        let keys: Vec<Json> = i
            .keys
            .iter()
            .map(|k| {
                let mut o = serde_json::Map::new();
                o.insert("name".into(), json!(k.name));
                o.insert("type".into(), json!(k.kind.name()));
                o.insert("writable".into(), json!(k.writable.is_some()));
                if let Some((dtype, shape)) = &k.array {
                    o.insert("dtype".into(), json!(dtype.name()));
                    o.insert("shape".into(), json!(shape));
                }
                if let Some(w) = &k.writable {
                    o.insert("min".into(), json!(w.min));
                    o.insert("max".into(), json!(w.max));
                    o.insert("rule".into(), json!(w.description));
                }
                Json::Object(o)
            })
            .collect();
        out(json!({
            "name": i.name,
            "pid": i.pid,
            "host": i.host,
            "address": c.address(),
            "status": i.status.state.name(),
            "message": i.status.message,
            "held": i.status.held,
            "step": i.status.step,
            "ranks": i.ranks,
            "ranks_behind": i.status.ranks_behind_first,
            "version": i.version,
            "updates_per_second": i.updates_per_second,
            "watchers": i.watchers,
            "uptime_seconds": i.uptime_seconds,
            "replay_of": i.replay_of,
            "replay": i.replay.as_ref().map(|t| json!({
                "first_version": t.first_version,
                "last_version": t.last_version,
                "first_time": t.first_time,
                "last_time": t.last_time,
                "complete": t.complete,
                "marks": t.marks.iter().map(|m| json!({
                    "version": m.version,
                    "time": m.time,
                    "kind": match m.kind {
                        idict::MarkKind::Control => "control",
                        idict::MarkKind::Write => "write",
                    },
                    "label": m.label,
                })).collect::<Vec<_>>(),
                "marks_left_off": t.marks_left_off,
            })),
            "role": i.role.map(|r| r.name()),
            "keys": keys,
            "triggers": i.triggers.iter().map(|t| json!({
                "name": t.name,
                "condition": t.condition,
                "from_program": t.from_program,
                "pause": t.actions.pause,
                "terminate": t.actions.terminate,
                "checkpoint": t.actions.checkpoint,
                "level": t.actions.level.name(),
                "message": t.actions.message,
                "fired": t.fired,
                "last_fired_version": t.last_fired_version,
            })).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    out(format!(
        "{} (pid {} on {}) at {}",
        escape_controls(&i.name),
        i.pid,
        escape_controls(&i.host),
        c.address()
    ))?;
    out(format!("  status    {}", status_text(&i.status)))?;
    out(format!("  step      {}", i.status.step))?;
    if i.ranks > 1 {
        out(format!(
            "  ranks     {} (an MPI job, served by rank 0)",
            i.ranks
        ))?;
    }
    out(format!(
        "  version   {}  ({} updates/s, {} watcher{})",
        i.version,
        format_float((i.updates_per_second * 10.0).round() / 10.0),
        i.watchers,
        if i.watchers == 1 { "" } else { "s" }
    ))?;
    out(format!("  uptime    {}", duration_text(i.uptime_seconds)))?;
    if let Some(file) = &i.replay_of {
        out(format!("  replay of {}", escape_controls(file)))?;
    }
    if let Some(t) = &i.replay {
        out(format!(
            "  recorded  v{} to v{}, {} s{}",
            t.first_version,
            t.last_version,
            format_float(((t.last_time - t.first_time).max(0.0) * 10.0).round() / 10.0),
            if t.complete {
                ""
            } else {
                " (stops before the run's end)"
            }
        ))?;
        // The marks: what was done to the run, and when (`idict seek` there).
        const SHOWN: usize = 20;
        for m in t.marks.iter().take(SHOWN) {
            out(format!(
                "    v{:<9} {:>9} s  {}",
                m.version,
                format_float((m.time * 1000.0).round() / 1000.0),
                escape_controls(&m.label)
            ))?;
        }
        let more = (t.marks.len().saturating_sub(SHOWN)) as u64 + t.marks_left_off;
        if more > 0 {
            out(format!("    ... and {more} more marks (--json lists them)"))?;
        }
    }
    if let Some(r) = i.role {
        out(format!("  access    {}", r.name()))?;
    }
    out("  keys")?;
    let width = i.keys.iter().map(|k| k.name.len()).max().unwrap_or(0);
    for k in &i.keys {
        let ty = match &k.array {
            Some((dtype, shape)) => format!(
                "{dtype}[{}]",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => k.kind.name().to_string(),
        };
        let w = match &k.writable {
            Some(w) => format!("writable: {}", escape_controls(&w.description)),
            None => String::new(),
        };
        out(format!("    {:<width$}  {:<16} {}", escape_controls(&k.name), ty, w).trim_end())?;
    }
    if !i.triggers.is_empty() {
        out("  triggers")?;
        for line in super::trigger_table(&i.triggers) {
            out(format!("    {line}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
