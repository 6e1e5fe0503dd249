//! `idict ls`: the live runs of this machine, or of another through ssh.

use crate::render::{duration_text, state_word};
use crate::target::explain;
use crate::{note, out};
use anyhow::{Context, Result, bail};
use idict::client::{Client, ConnectOptions, Target};
use idict::value::escape_controls;
use serde_json::{Value as Json, json};
use std::process::ExitCode;
use std::time::Duration;

pub(crate) async fn ls(json: bool) -> Result<ExitCode> {
    let runs = idict::runfile::list_runs().context("cannot read the runs directory")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let here = idict::runfile::host_name();
    // Ask every run on this host for its status at once, each with a short
    // deadline. A run on another host (a shared home directory) is not
    // dialled: its address means something only there.
    let statuses = futures::future::join_all(runs.iter().map(|r| async {
        if r.run.host != here {
            return None;
        }
        let target = Target {
            address: r.run.address.clone(),
            token: Some(r.run.observer_token.clone()),
            run: Some(r.run.clone()),
        };
        let opts = ConnectOptions {
            connect_timeout: Duration::from_secs(1),
            ..ConnectOptions::default()
        };
        let probe = async {
            let c = Client::connect_target(target, opts).await?;
            c.info().await
        };
        tokio::time::timeout(Duration::from_secs(2), probe)
            .await
            .ok()
            .and_then(Result::ok)
    }))
    .await;
    if json {
        let rows: Vec<Json> = runs
            .iter()
            .zip(&statuses)
            .map(|(r, info)| {
                json!({
                    "name": r.run.name,
                    "pid": r.run.pid,
                    "ranks": r.run.ranks,
                    "host": r.run.host,
                    "address": r.run.address,
                    "status": info.as_ref().map_or(
                        if r.run.host == here { "unreachable" } else { "elsewhere" },
                        |i| i.status.state.name(),
                    ),
                    "version": info.as_ref().map(|i| i.version),
                    "started_unix_ms": r.run.started_unix_ms,
                    "age_seconds": (now_ms - r.run.started_unix_ms) as f64 / 1000.0,
                    "run_file": r.path.display().to_string(),
                })
            })
            .collect();
        out(Json::Array(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        note(format!(
            "no live runs in {}",
            idict::runfile::runs_dir().map_or_else(|e| e.to_string(), |d| d.display().to_string())
        ));
        return Ok(ExitCode::SUCCESS);
    }
    out(format!(
        "{:<20} {:>8} {:>5}  {:<16} {:<28} {:<12} {:>10}  {:>7}",
        "NAME", "PID", "RANKS", "HOST", "ADDRESS", "STATUS", "VERSION", "AGE"
    ))?;
    let mut elsewhere = None;
    for (r, info) in runs.iter().zip(&statuses) {
        if r.run.host != here {
            elsewhere = Some(r);
        }
        out(format!(
            "{:<20} {:>8} {:>5}  {:<16} {:<28} {:<12} {:>10}  {:>7}",
            escape_controls(&r.run.name),
            r.run.pid,
            r.run.ranks,
            escape_controls(&r.run.host),
            escape_controls(&r.run.address),
            info.as_ref().map_or(
                if r.run.host == here {
                    "unreachable"
                } else {
                    "elsewhere"
                },
                |i| state_word(&i.status)
            ),
            info.as_ref()
                .map_or_else(|| "-".to_string(), |i| i.version.to_string()),
            duration_text((now_ms - r.run.started_unix_ms) as f64 / 1000.0),
        ))?;
    }
    if let Some(r) = elsewhere {
        note(format!(
            "runs on other hosts are reached over SSH, e.g. idict watch ssh://{}/{}",
            escape_controls(&r.run.host),
            escape_controls(&r.run.name)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `idict ls` on another host, through ssh; its output as it prints it.
pub(crate) async fn ls_over_ssh(host: &str, json: bool) -> Result<ExitCode> {
    if !host.starts_with("ssh://") {
        bail!("ls lists this machine's runs, or another's as ssh://[user@]host; got '{host}'");
    }
    let t = idict::client::ssh::parse(host).map_err(explain)?;
    let mut args = vec!["ls"];
    if json {
        args.push("--json");
    }
    let mut cmd = idict::client::ssh::command(&t, &args, &Default::default()).map_err(explain)?;
    let status = cmd
        .status()
        .await
        .with_context(|| "cannot start ssh (install OpenSSH's client, or set IDICT_SSH_COMMAND)")?;
    match status.code() {
        Some(0) => Ok(ExitCode::SUCCESS),
        Some(127) => bail!(
            "idict is not on the PATH of {} (install it there, or set IDICT_REMOTE to its path)",
            t.host
        ),
        Some(255) => bail!(
            "ssh could not reach {} (see ssh's message above)",
            t.destination()
        ),
        _ => Ok(ExitCode::FAILURE),
    }
}
