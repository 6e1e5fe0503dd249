//! `idict trigger RUN add|ls|rm` (a run's triggers) and `idict wait-for
//! RUN CONDITION` (a script waiting on a condition).

use crate::target::{Ctx, explain, split_run};
use crate::{note, out};
use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use idict::client::WatchOptions;
use idict::triggers::Evaluator;
use idict::triggers::expr::Condition;
use idict::value::escape_controls;
use idict::{Level, TriggerActions, TriggerInfo};
use std::process::ExitCode;
use std::time::Duration;

/// What `trigger RUN add` acts with, from its flags.
pub(crate) struct ActionFlags {
    pub pause: bool,
    pub terminate: bool,
    pub checkpoint: bool,
    pub message: Option<String>,
    pub level: Option<String>,
}

impl ActionFlags {
    fn actions(&self) -> Result<TriggerActions> {
        let level = match self.level.as_deref() {
            None if self.terminate => Level::Error,
            None => Level::Warn,
            Some("debug") => Level::Debug,
            Some("info") => Level::Info,
            Some("warn" | "warning") => Level::Warn,
            Some("error") => Level::Error,
            Some(other) => bail!("--level is debug, info, warn or error, not '{other}'"),
        };
        Ok(TriggerActions {
            pause: self.pause,
            terminate: self.terminate,
            checkpoint: self.checkpoint,
            level,
            message: self.message.clone().unwrap_or_default(),
        })
    }
}

/// `idict trigger RUN add NAME CONDITION [--pause ...]`, `ls`, `rm NAME`.
pub(crate) async fn trigger(
    ctx: &Ctx,
    addr: &Option<String>,
    words: &[String],
    flags: ActionFlags,
) -> Result<ExitCode> {
    let (run, rest) = split_run(addr, words)?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match rest.as_slice() {
        ["add", name, condition] => {
            let actions = flags.actions()?;
            // Said here with where it is wrong, before connecting.
            Condition::parse(condition).map_err(|e| anyhow!("bad condition {e}"))?;
            let c = ctx.connect(run.as_deref()).await?;
            let added = c
                .add_trigger(name, condition, &actions)
                .await
                .map_err(explain)?;
            out(format!(
                "added trigger '{name}': {condition} → {}",
                actions.describe()
            ))?;
            for n in added.notes {
                out(format!("note: {n}"))?;
            }
        }
        ["add", ..] => bail!(
            "expected NAME CONDITION after add, e.g. `idict trigger heat add blowup 'isnan(residual)' --pause` (quote the condition)"
        ),
        ["ls"] | [] => {
            let c = ctx.connect(run.as_deref()).await?;
            let info = c.info().await.map_err(explain)?;
            print_triggers(&info.triggers)?;
        }
        ["rm", name] => {
            let c = ctx.connect(run.as_deref()).await?;
            c.remove_trigger(name).await.map_err(explain)?;
            out(format!("removed trigger '{name}'"))?;
        }
        [other, ..] => bail!("unknown trigger command '{other}': add, ls or rm"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_triggers(triggers: &[TriggerInfo]) -> Result<()> {
    if triggers.is_empty() {
        return out("no triggers");
    }
    for line in trigger_table(triggers) {
        out(line)?;
    }
    Ok(())
}

/// The triggers as a table (`trigger ls`, `info`): a header, a row each.
pub(crate) fn trigger_table(triggers: &[TriggerInfo]) -> Vec<String> {
    let rows: Vec<[String; 5]> = triggers
        .iter()
        .map(|t| {
            [
                escape_controls(&t.name).into_owned(),
                escape_controls(&t.condition).into_owned(),
                (if t.from_program { "program" } else { "client" }).to_string(),
                match t.fired {
                    0 => "-".to_string(),
                    n => format!("{n} (last v{})", t.last_fired_version),
                },
                escape_controls(&t.actions.describe()).into_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "CONDITION", "FROM", "FIRED", "ACTIONS"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

/// Exit codes of `wait-for`.
const TIMED_OUT: u8 = 1;
const RUN_ENDED: u8 = 2;
const COULD_NOT_WAIT: u8 = 3;

/// `idict wait-for RUN CONDITION [--timeout 1h]`: 0 when the condition
/// holds, 1 on timeout, 2 when the run ended first, 3 when it could not
/// wait (a bad condition, no such run).
pub(crate) async fn wait_for(
    ctx: &Ctx,
    addr: &Option<String>,
    words: &[String],
    timeout: Option<&str>,
) -> Result<ExitCode> {
    match wait_for_inner(ctx, addr, words, timeout).await {
        Ok(code) => Ok(code),
        Err(e) if crate::is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            note(format!("idict: {e:#}"));
            Ok(ExitCode::from(COULD_NOT_WAIT))
        }
    }
}

async fn wait_for_inner(
    ctx: &Ctx,
    addr: &Option<String>,
    words: &[String],
    timeout: Option<&str>,
) -> Result<ExitCode> {
    let (run, rest) = split_run(addr, words)?;
    let [condition] = rest.as_slice() else {
        bail!("expected one CONDITION after RUN, quoted: `idict wait-for heat 'residual < 1e-6'`");
    };
    let condition = Condition::parse(condition).map_err(|e| anyhow!("bad condition {e}"))?;
    let timeout = timeout.map(parse_duration).transpose()?;
    let source = condition.source.clone();
    let mut eval = Evaluator::new(condition);
    let c = ctx.connect(run.as_deref()).await?;
    let mut stream = c.watch(WatchOptions::default()).await.map_err(explain)?;
    let watching = async {
        while let Some(u) = stream.next().await {
            let u = u.map_err(explain)?;
            // Each sample in version order, so `prev` and `rises` see
            // every step; a key without samples by its latest value.
            let mut samples: Vec<(u64, &str, f64)> = Vec::new();
            for (key, series) in &u.samples {
                if eval.keys().contains(key) {
                    samples.extend(series.iter().map(|s| (s.version, key.as_str(), s.value)));
                }
            }
            for (key, value) in &u.changed {
                if eval.keys().contains(key)
                    && !u.samples.iter().any(|(k, _)| k == key)
                    && let Some(x) = value.as_scalar()
                {
                    samples.push((u.version, key.as_str(), x));
                }
            }
            samples.sort_by_key(|(v, _, _)| *v);
            let mut i = 0;
            while i < samples.len() {
                let version = samples[i].0;
                while i < samples.len() && samples[i].0 == version {
                    eval.observe(samples[i].1, samples[i].2);
                    i += 1;
                }
                if eval.holds() == Some(true) {
                    return Ok(Some(version));
                }
            }
            if u.last {
                return Ok(None);
            }
        }
        Ok::<_, anyhow::Error>(None)
    };
    let outcome = match timeout {
        Some(t) => match tokio::time::timeout(t, watching).await {
            Ok(r) => r?,
            Err(_) => {
                out(format!("timed out: {source} did not hold"))?;
                return Ok(ExitCode::from(TIMED_OUT));
            }
        },
        None => watching.await?,
    };
    match outcome {
        Some(version) => {
            out(format!("{source}: true at v{version}"))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            out(format!("the run ended before {source} held"))?;
            Ok(ExitCode::from(RUN_ENDED))
        }
    }
}

/// `90`, `90s`, `500ms`, `10m`, `1h`, `2d`.
fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| anyhow!("--timeout is a duration like 90s, 10m or 1h, not '{s}'"))?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => bail!("--timeout is a duration like 90s, 10m or 1h, not '{s}'"),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| anyhow!("--timeout '{s}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_a_script_writes() {
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90").ok(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("2.5m").ok(), Some(Duration::from_secs(150)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e30d").is_err());
    }
}
