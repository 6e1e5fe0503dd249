//! `idict get`: the current values of a run's keys.

use crate::out;
use crate::render::{format_float, value_json, value_text};
use crate::target::explain;
use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use idict::client::{Client, Snapshot, WatchOptions};
use idict::{NdArray, Value};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) fn pick<'a>(
    values: &'a BTreeMap<String, Value>,
    keys: &[String],
) -> Result<Vec<(&'a String, &'a Value)>> {
    if keys.is_empty() {
        return Ok(values.iter().collect());
    }
    keys.iter()
        .map(|k| {
            values.get_key_value(k).ok_or_else(|| {
                let known: Vec<_> = values.keys().map(String::as_str).collect();
                anyhow!("no key '{k}' in this run; keys: {}", known.join(", "))
            })
        })
        .collect()
}

/// How long `get` waits for a run's first update (a job asked just after
/// it started, an MPI job's ranks still agreeing on its keys).
const FIRST_UPDATE: Duration = Duration::from_secs(10);

/// The run's published state; for a run that has published nothing yet
/// (version 0, no keys to answer from), its first update, waited for.
async fn published(c: &Client) -> Result<Snapshot> {
    let snap = c.snapshot("").await.map_err(explain)?;
    if snap.version > 0 || snap.status.state.is_terminal() {
        return Ok(snap);
    }
    let mut updates = c.watch(WatchOptions::default()).await.map_err(explain)?;
    let first = tokio::time::timeout(FIRST_UPDATE, async {
        while let Some(u) = updates.next().await {
            let u = u.map_err(explain)?;
            if u.version > 0 || u.last {
                return Ok(());
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    match first {
        Ok(r) => r?,
        Err(_) => bail!(
            "the run has published nothing yet (version 0, {} s after asking): ask again once it has",
            FIRST_UPDATE.as_secs()
        ),
    }
    c.snapshot("").await.map_err(explain)
}

pub(crate) async fn get(c: &Client, keys: &[String], full: bool, json: bool) -> Result<ExitCode> {
    let snap = published(c).await?;
    let picked = pick(&snap.values, keys)?;
    if json {
        let values: serde_json::Map<String, Json> = picked
            .iter()
            .map(|(k, v)| ((*k).clone(), value_json(v, full)))
            .collect();
        out(json!({
            "version": snap.version,
            "status": snap.status.state.name(),
            "values": values,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = picked.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in picked {
        out(format!("{k:<width$}  {}", value_text(v, full)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `idict get RUN KEY... --ranks` (every rank's value) or `--rank N` (one
/// rank's) of an MPI job: the `KEY@ranks` arrays its rank 0 publishes.
pub(crate) async fn get_ranks(
    c: &Client,
    keys: &[String],
    rank: Option<usize>,
    json: bool,
) -> Result<ExitCode> {
    const SUFFIX: &str = "@ranks";
    const BLOCKS: &str = "@blocks";
    let snap = published(c).await?;
    let reduced: Vec<String> = match keys {
        [] => snap
            .values
            .keys()
            .filter_map(|k| k.strip_suffix(SUFFIX).map(str::to_string))
            .collect(),
        keys => keys.to_vec(),
    };
    if reduced.is_empty() {
        bail!("this run has no per-rank values: it is not an MPI job (see `idict ls`, RANKS)");
    }
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    for key in &reduced {
        if let (Some(Value::Array(field)), Some(Value::Array(layout))) = (
            snap.values.get(key),
            snap.values.get(&format!("{key}{BLOCKS}")),
        ) {
            print_blocks(key, field, layout, rank)?;
            continue;
        }
        let per_rank = match snap.values.get(&format!("{key}{SUFFIX}")) {
            Some(Value::Array(a)) => a.to_f64_vec(),
            _ if snap.values.contains_key(key) => bail!(
                "'{key}' has no per-rank values: only the numeric scalars of an MPI job have them"
            ),
            _ => bail!("no key '{key}' in this run"),
        };
        if let Some(r) = rank
            && r >= per_rank.len()
        {
            bail!(
                "no rank {r}: the job has {} ranks (0 to {})",
                per_rank.len(),
                per_rank.len() - 1
            );
        }
        rows.push((key, per_rank));
    }
    if rows.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        let values: serde_json::Map<String, Json> = rows
            .iter()
            .map(|(k, v)| {
                let v = match rank {
                    Some(r) => json!(v[r]),
                    None => json!(v),
                };
                ((*k).to_string(), v)
            })
            .collect();
        out(json!({ "version": snap.version, "values": values }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, per_rank) in &rows {
        match rank {
            Some(r) => out(format!(
                "{key:<width$}  {}  (rank {r})",
                format_float(per_rank[r])
            ))?,
            None => {
                for (r, v) in per_rank.iter().enumerate() {
                    let name = if r == 0 { *key } else { "" };
                    out(format!("{name:<width$}  rank {r:<4} {}", format_float(*v)))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A stitched field's blocks, one rank's or each rank's, as `get` shows
/// an array: `layout` (KEY@blocks) has a row per rank, its offset then
/// its shape.
fn print_blocks(key: &str, field: &NdArray, layout: &NdArray, rank: Option<usize>) -> Result<()> {
    let (ranks, width) = match layout.shape() {
        [ranks, width] if *width == 2 * field.shape().len() => (*ranks, *width),
        _ => bail!("'{key}@blocks' does not describe the blocks of '{key}'"),
    };
    let cells = layout.to_f64_vec();
    let show = |r: usize| -> Result<()> {
        let row = &cells[r * width..(r + 1) * width];
        let n = width / 2;
        let offset: Vec<usize> = row[..n].iter().map(|&x| x as usize).collect();
        let shape: Vec<usize> = row[n..].iter().map(|&x| x as usize).collect();
        let block = sub_block(field, &offset, &shape)
            .ok_or_else(|| anyhow!("rank {r}'s block of '{key}' is outside the field"))?;
        out(format!(
            "{key}  rank {r:<4} at {offset:?}  {}",
            value_text(&Value::Array(block), false)
        ))
    };
    match rank {
        Some(r) if r >= ranks => bail!(
            "no rank {r}: the job has {ranks} ranks (0 to {})",
            ranks - 1
        ),
        Some(r) => show(r),
        None => (0..ranks).try_for_each(show),
    }
}

/// The part of `field` (row-major) of `shape` at `offset`, as f64.
fn sub_block(field: &NdArray, offset: &[usize], shape: &[usize]) -> Option<NdArray> {
    let global = field.shape();
    if offset.len() != global.len()
        || shape.len() != global.len()
        || (0..global.len()).any(|d| offset[d] + shape[d] > global[d])
    {
        return None;
    }
    let all = field.to_f64_vec();
    let len: usize = shape.iter().product();
    let mut values = Vec::with_capacity(len);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..len {
        let at = (0..global.len()).fold(0, |a, d| a * global[d] + offset[d] + index[d]);
        values.push(*all.get(at)?);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    NdArray::from_f64_vec(values, shape.to_vec()).ok()
}
