//! `idict watch`: a run's updates as they come, with thinning said in one line.

use crate::render::{status_text, value_json, value_text};
use crate::target::explain;
use crate::{note, out};
use anyhow::{Result, bail};
use futures::StreamExt;
use idict::RunState;
use idict::client::{Client, WatchOptions};
use idict::value::escape_controls;
use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) async fn watch(c: &Client, keys: &[String], full: bool, json: bool) -> Result<ExitCode> {
    let wanted: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    let shown = |k: &str| wanted.is_empty() || wanted.contains(k);
    let mut stream = c.watch(WatchOptions::default()).await.map_err(explain)?;
    let mut last_status = None;
    let mut thinning = ThinningNotice::default();
    let (mut checked, mut seen) = (false, BTreeSet::<String>::new());
    while let Some(u) = stream.next().await {
        let u = u.map_err(explain)?;
        if !checked {
            // The state as of the run's first update: a key it lacks would
            // only ever print empty lines. (A run that has published nothing
            // yet, version 0, has no keys to judge by: wait for its first.)
            seen.extend(u.changed.iter().map(|(k, _)| k.clone()));
        }
        if !checked && u.version > 0 {
            checked = true;
            let missing: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|k| !seen.contains(*k))
                .collect();
            if !missing.is_empty() {
                let mut have: Vec<&str> = seen.iter().map(String::as_str).collect();
                have.truncate(20);
                bail!(
                    "no key {} in this run (it has: {})",
                    missing
                        .iter()
                        .map(|k| format!("'{}'", escape_controls(k)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    escape_controls(&have.join(", "))
                );
            }
        }
        let changed: Vec<_> = u.changed.iter().filter(|(k, _)| shown(k)).collect();
        let removed: Vec<_> = u.removed.iter().filter(|k| shown(k)).collect();
        let status_changed = last_status.as_ref() != Some(&u.status);
        last_status = Some(u.status.clone());
        if json {
            let changed: serde_json::Map<String, Json> = changed
                .iter()
                .map(|(k, v)| (k.clone(), value_json(v, full)))
                .collect();
            let mut line = json!({
                "version": u.version,
                "status": u.status.state.name(),
                "changed": changed,
                "removed": removed,
            });
            let thinned: Vec<Json> = u
                .thinned
                .iter()
                .filter(|t| shown(&t.key))
                .map(|t| {
                    json!({
                        "key": t.key,
                        "after_version": t.after_version,
                        "until_version": t.until_version,
                        "dropped": t.dropped,
                        "kept": t.kept,
                    })
                })
                .collect();
            if !thinned.is_empty() {
                line["thinned"] = Json::Array(thinned);
            }
            out(line)?;
        } else {
            for m in &u.messages {
                note(format!("[{}] {}", m.level, m.text));
            }
            thinning.add(u.thinned.iter().filter(|t| shown(&t.key)));
            if u.last || thinning.due() {
                thinning.flush();
            }
            if !changed.is_empty() || !removed.is_empty() || status_changed || u.last {
                let mut line = format!("v{} {}", u.version, status_text(&u.status));
                for (k, v) in &changed {
                    line.push_str(&format!("  {k}={}", value_text(v, full)));
                }
                for k in &removed {
                    line.push_str(&format!("  -{k}"));
                }
                out(line)?;
            }
        }
        if u.last {
            if u.status.state == RunState::Failed {
                bail!("the run failed: {}", u.status.message);
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    // What was told before the stream broke is still said.
    thinning.flush();
    bail!("the stream ended before the run did (the run's server closed)")
}

/// What a watch was told was thinned, said at most once a second on
/// stderr (a fast run outpacing a slow link reports every message).
#[derive(Default)]
pub(crate) struct ThinningNotice {
    keys: BTreeSet<String>,
    from: u64,
    to: u64,
    dropped: u64,
    kept: u64,
    since: Option<std::time::Instant>,
}

impl ThinningNotice {
    fn add<'a>(&mut self, reports: impl Iterator<Item = &'a idict::Thinned>) {
        for t in reports {
            if self.keys.is_empty() {
                self.from = t.after_version;
                self.since.get_or_insert_with(std::time::Instant::now);
            }
            self.from = self.from.min(t.after_version);
            self.to = self.to.max(t.until_version);
            self.dropped += t.dropped;
            self.kept += t.kept;
            self.keys.insert(t.key.clone());
        }
    }

    fn due(&self) -> bool {
        self.since
            .is_some_and(|s| s.elapsed() >= Duration::from_secs(1))
    }

    fn flush(&mut self) {
        if let Some(line) = self.text() {
            note(line);
        }
        *self = ThinningNotice::default();
    }

    fn text(&self) -> Option<String> {
        if self.keys.is_empty() {
            return None;
        }
        let mut keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        let more = keys.len().saturating_sub(5);
        keys.truncate(5);
        let mut names = keys.join(", ");
        if more > 0 {
            names.push_str(&format!(" and {more} more"));
        }
        let ratio = idict::Thinned::one_in(self.kept, self.dropped)
            .map_or_else(String::new, |n| format!(" 1:{n}"));
        Some(format!(
            "[thinned]{ratio} from v{} to v{}: {} samples of {} not sent (the run outpaced this watch)",
            self.from,
            self.to,
            self.dropped,
            escape_controls(&names)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(key: &str, after: u64, until: u64, dropped: u64, kept: u64) -> idict::Thinned {
        idict::Thinned {
            key: key.into(),
            after_version: after,
            until_version: until,
            dropped,
            kept,
        }
    }

    #[test]
    fn thinning_reports_are_summed_into_one_line() {
        let mut n = ThinningNotice::default();
        assert_eq!(n.text(), None);
        n.add([report("x", 10, 50, 30, 10), report("y", 10, 50, 30, 10)].iter());
        n.add([report("x", 50, 90, 30, 10)].iter());
        assert_eq!(
            n.text().unwrap(),
            "[thinned] 1:4 from v10 to v90: 90 samples of x, y not sent (the run outpaced this watch)"
        );
        let many: Vec<_> = (0..8)
            .map(|i| report(&format!("k{i}\n"), 1, 9, 7, 0))
            .collect();
        let mut n = ThinningNotice::default();
        n.add(many.iter());
        let line = n.text().unwrap();
        assert!(
            line.contains("and 3 more") && !line.contains('\n'),
            "{line}"
        );
    }
}
