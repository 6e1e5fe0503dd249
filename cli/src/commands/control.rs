//! `idict pause`, `resume`, `step`, `seek` and `terminate`.

use crate::out;
use crate::render::status_text;
use crate::target::{Ctx, explain, no_extra, parse_seek, split_run};
use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use idict::client::WatchOptions;
use idict::{RunState, SeekTo};
use std::process::ExitCode;

/// `idict resume RUN`.
pub(crate) async fn resume(ctx: &Ctx, addr: &Option<String>, words: &[String]) -> Result<ExitCode> {
    let (run, rest) = split_run(addr, words)?;
    no_extra(&rest)?;
    let c = ctx.connect(run.as_deref()).await?;
    let s = c.resume().await.map_err(explain)?;
    out(status_text(&s))?;
    Ok(ExitCode::SUCCESS)
}

/// `idict pause RUN [--at-step N] [--wait]`: holds now or at step N; with
/// --wait, until the run is held.
pub(crate) async fn pause(
    ctx: &Ctx,
    addr: &Option<String>,
    words: &[String],
    at_step: Option<u64>,
    wait: bool,
) -> Result<ExitCode> {
    let (run, rest) = split_run(addr, words)?;
    no_extra(&rest)?;
    let c = ctx.connect(run.as_deref()).await?;
    // Watch before asking, so the hold cannot be missed.
    let mut stream = match wait {
        true => Some(c.watch(WatchOptions::default()).await.map_err(explain)?),
        false => None,
    };
    let s = match at_step {
        Some(step) => c.pause_at(step).await,
        None => c.pause().await,
    }
    .map_err(explain)?;
    out(status_text(&s))?;
    let Some(w) = stream.as_mut() else {
        return Ok(ExitCode::SUCCESS);
    };
    if s.state == RunState::Paused && s.held {
        out(format!("held at step {}", s.step))?;
        return Ok(ExitCode::SUCCESS);
    }
    while let Some(u) = w.next().await {
        let u = u.map_err(explain)?;
        if u.status.state == RunState::Paused && u.status.held {
            out(format!("held at step {}", u.status.step))?;
            return Ok(ExitCode::SUCCESS);
        }
        if u.last {
            bail!(
                "the run ended before it was held: {}",
                status_text(&u.status)
            );
        }
    }
    bail!("the run's server closed before the run was held")
}

/// `idict step RUN [N]`: N more steps (default 1) of a paused run.
pub(crate) async fn step(ctx: &Ctx, addr: &Option<String>, words: &[String]) -> Result<ExitCode> {
    let (run, rest) = split_run(addr, words)?;
    let n = match rest.as_slice() {
        [] => 1,
        [n] => n
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| anyhow!("N must be a whole number >= 1, got '{n}'"))?,
        _ => bail!("too many arguments: step RUN [N]"),
    };
    let c = ctx.connect(run.as_deref()).await?;
    let s = c.step(n).await.map_err(explain)?;
    out(format!("stepping {n}: {}", status_text(&s)))?;
    Ok(ExitCode::SUCCESS)
}

/// `idict seek RUN TO`: a replay moved to a version or a time.
pub(crate) async fn seek(ctx: &Ctx, addr: &Option<String>, words: &[String]) -> Result<ExitCode> {
    let (run, rest) = split_run(addr, words)?;
    let to = match rest.as_slice() {
        [to] => parse_seek(to)?,
        [] => bail!("missing TO: seek RUN VERSION, or seek RUN SECONDSs (e.g. 12.5s)"),
        _ => bail!("too many arguments: seek RUN TO"),
    };
    let c = ctx.connect(run.as_deref()).await?;
    let s = c.seek(to).await.map_err(explain)?;
    out(format!(
        "seeking to {}: {}",
        match to {
            SeekTo::Version(v) => format!("v{v}"),
            SeekTo::Time(t) => format!("{t} s"),
        },
        status_text(&s)
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `idict terminate RUN [--at-step N] [--wait]`: ends the run, now or at
/// step N; with --wait, until its final update.
pub(crate) async fn terminate(
    ctx: &Ctx,
    addr: &Option<String>,
    words: &[String],
    at_step: Option<u64>,
    wait: bool,
) -> Result<ExitCode> {
    let (run, rest) = split_run(addr, words)?;
    no_extra(&rest)?;
    let c = ctx.connect(run.as_deref()).await?;
    // Watch before asking, so the final update cannot be missed.
    let mut stream = match wait {
        true => Some(c.watch(WatchOptions::default()).await.map_err(explain)?),
        false => None,
    };
    let s = match at_step {
        Some(step) => c.terminate_at(step).await,
        None => c.terminate().await,
    }
    .map_err(explain)?;
    out(status_text(&s))?;
    if let Some(w) = stream.as_mut() {
        while let Some(u) = w.next().await {
            let u = u.map_err(explain)?;
            if u.last {
                out(status_text(&u.status))?;
                break;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
