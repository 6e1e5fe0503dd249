//! `idict history`: a scalar key's samples, as text, CSV or JSON.

use crate::render::format_float;
use crate::target::explain;
use crate::{note, out};
use anyhow::Result;
use idict::client::Client;
use idict::value::escape_controls;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::process::ExitCode;

pub(crate) async fn history(
    c: &Client,
    keys: &[String],
    since: u64,
    csv: bool,
    json: bool,
) -> Result<ExitCode> {
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let h = c.history_thinned(&refs, since).await.map_err(explain)?;
    // On stderr, so that what stdout gives a script stays the samples.
    for t in &h.thinned {
        note(format!("[thinned] {}", escape_controls(&t.describe())));
    }
    let h = h.series;
    if json {
        let o: serde_json::Map<String, Json> = h
            .iter()
            .map(|(k, s)| {
                let rows: Vec<Json> = s
                    .iter()
                    .map(|x| json!([x.version, x.time, x.value]))
                    .collect();
                (k.clone(), Json::Array(rows))
            })
            .collect();
        out(Json::Object(o))?;
        return Ok(ExitCode::SUCCESS);
    }
    // One row per version; a key without a sample at that version is empty.
    let mut rows: BTreeMap<u64, (f64, Vec<Option<f64>>)> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(s) = h.get(k) {
            for x in s.iter() {
                let row = rows
                    .entry(x.version)
                    .or_insert((x.time, vec![None; keys.len()]));
                row.1[i] = Some(x.value);
            }
        }
    }
    let sep = if csv { "," } else { "\t" };
    out(format!("version{sep}t{sep}{}", keys.join(sep)))?;
    for (v, (t, vals)) in rows {
        let cells: Vec<String> = vals
            .iter()
            .map(|x| {
                x.map_or_else(String::new, |x| {
                    if csv { x.to_string() } else { format_float(x) }
                })
            })
            .collect();
        let t = if csv { t.to_string() } else { format_float(t) };
        out(format!("{v}{sep}{t}{sep}{}", cells.join(sep)))?;
    }
    Ok(ExitCode::SUCCESS)
}
