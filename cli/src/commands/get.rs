//! `idict get`: the current values of a run's keys.

use crate::out;
use crate::render::{value_json, value_text};
use crate::target::explain;
use anyhow::{Result, anyhow};
use idict::Value;
use idict::client::Client;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::process::ExitCode;

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

pub(crate) async fn get(c: &Client, keys: &[String], full: bool, json: bool) -> Result<ExitCode> {
    let snap = c.snapshot("").await.map_err(explain)?;
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
