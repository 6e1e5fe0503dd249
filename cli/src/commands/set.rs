//! `idict set`: a steering write, optionally waiting until the run applies it.

use crate::out;
use crate::render::value_text;
use crate::target::explain;
use anyhow::{Result, bail};
use futures::StreamExt;
use idict::client::{Client, WatchOptions};
use std::process::ExitCode;

pub(crate) async fn set(
    c: &Client,
    key: &str,
    text: &str,
    at_step: Option<u64>,
    wait: bool,
) -> Result<ExitCode> {
    let value = crate::render::parse_value(text);
    // Watch first, so the report of the write cannot be missed.
    let mut stream = if wait {
        let since = c.info().await.map_err(explain)?.version;
        Some(
            c.watch(WatchOptions {
                since_version: since.max(1),
                prefix: key.to_string(),
                with_history: false,
            })
            .await
            .map_err(explain)?,
        )
    } else {
        None
    };
    let receipt = match at_step {
        Some(step) => c.set_at(key, value.clone(), step).await,
        None => c.set(key, value.clone()).await,
    }
    .map_err(explain)?;
    let when = match at_step {
        Some(step) => format!("at the wait() after step {step}"),
        None => "at its next wait()".to_string(),
    };
    out(format!(
        "{key} = {}: accepted as write #{}; the run applies it {when}",
        value_text(&value, false),
        receipt.write_id
    ))?;
    if let Some(stream) = stream.as_mut() {
        while let Some(u) = stream.next().await {
            let u = u.map_err(explain)?;
            if let Some(a) = u.applied.iter().find(|a| a.write_id == receipt.write_id) {
                out(format!(
                    "{key} = {}: applied in version {}",
                    value_text(&a.value, false),
                    a.version
                ))?;
                return Ok(ExitCode::SUCCESS);
            }
            if u.last {
                bail!("the run ended before applying the write");
            }
        }
        bail!("the run's server closed before the write was applied");
    }
    Ok(ExitCode::SUCCESS)
}
