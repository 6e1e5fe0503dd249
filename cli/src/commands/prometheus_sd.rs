//! `idict prometheus-sd`: Prometheus file-based discovery of the runs that serve metrics.

use crate::out;
use anyhow::{Context, Result, bail};
use serde_json::{Value as Json, json};
use std::process::ExitCode;
use std::time::Duration;

/// The file_sd targets of the live runs that serve metrics.
pub(crate) fn sd_targets() -> Result<Json> {
    let runs = idict::runfile::list_runs().context("cannot read the runs directory")?;
    let here = idict::runfile::host_name();
    let targets: Vec<Json> = runs
        .iter()
        .filter_map(|r| {
            let at = r.run.metrics.as_ref()?;
            // Another host's loopback address would have Prometheus scrape
            // this machine: such a run's metrics are not reachable.
            let host = at.rsplit_once(':').map_or(at.as_str(), |(h, _)| h);
            let loopback = host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
            if loopback && r.run.host != here {
                return None;
            }
            // The metrics carry run, host and pid themselves; target labels
            // of the same names would rename them (exported_run). These
            // are for relabelling only.
            Some(json!({
                "targets": [at],
                "labels": {
                    "__meta_idict_run": r.run.name,
                    "__meta_idict_host": r.run.host,
                    "__meta_idict_pid": r.run.pid.to_string(),
                },
            }))
        })
        .collect();
    Ok(Json::Array(targets))
}

pub(crate) async fn prometheus_sd(
    out_file: Option<&std::path::Path>,
    every: Option<f64>,
) -> Result<ExitCode> {
    let every = match every {
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
            Some(Duration::from_secs_f64(s.max(0.1)))
        }
        Some(s) => bail!("--every takes a number of seconds from 0.1 to 86400, got {s}"),
        None => None,
    };
    loop {
        let targets = serde_json::to_string_pretty(&sd_targets()?)?;
        match out_file {
            None => out(&targets)?,
            Some(path) => {
                // Prometheus may read it at any moment: a whole file or
                // the previous one, never half of one. The temporary is
                // created new (never through a planted symlink), named for
                // this process and moment (two writers do not share it).
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(format!(".{}-{stamp}.tmp", std::process::id()));
                let tmp = path.with_file_name(name);
                let written = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, targets.as_bytes()));
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&tmp);
                    bail!("cannot write {}: {e}", tmp.display());
                }
                if let Err(e) = std::fs::rename(&tmp, path) {
                    let _ = std::fs::remove_file(&tmp);
                    bail!("cannot replace {}: {e}", path.display());
                }
            }
        }
        match every {
            Some(d) => tokio::time::sleep(d).await,
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}
