//! A run killed and started again under the same name: which of this
//! machine's runs took over from a view's lost run, and whether the view
//! follows it at once or offers to.

use crate::model::{Connection, RunModel};
use idict::runfile::FoundRun;

/// What a view should do about a run that may have replaced its own.
#[derive(Debug)]
pub enum Successor<'a> {
    None,
    /// Its run is gone and exactly one run took its name on its host
    /// since it started: follow that one.
    Follow(&'a FoundRun),
    /// A run of the same name started since, but the view's run may still
    /// be there (or it ended, or there are several): ask.
    Offer(&'a FoundRun),
}

/// The run that replaced `m`'s, among the live `local` runs, leaving out
/// runs already open in a view (`open`).
pub fn successor<'a>(m: &RunModel, local: &'a [FoundRun], open: &[&RunModel]) -> Successor<'a> {
    let lost = matches!(m.connection, Connection::Disconnected { .. });
    if m.pid == 0 || !(lost || m.ended()) {
        return Successor::None;
    }
    let already_open = |r: &FoundRun| {
        open.iter()
            .any(|o| o.address == r.run.address || (o.pid == r.run.pid && o.host == r.run.host))
    };
    let mut candidates: Vec<&FoundRun> = local
        .iter()
        .filter(|r| {
            r.run.name == m.name
                && r.run.host == m.host
                && r.run.pid != m.pid
                && r.run.started_unix_ms >= m.started_unix_ms
                && !already_open(r)
        })
        .collect();
    candidates.sort_by_key(|r| std::cmp::Reverse(r.run.started_unix_ms));
    let still_there = local
        .iter()
        .any(|r| r.run.pid == m.pid && r.run.host == m.host);
    match candidates.as_slice() {
        [] => Successor::None,
        [one] if lost && !still_there && !m.ended() => Successor::Follow(one),
        [newest, ..] => Successor::Offer(newest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn found(name: &str, pid: u32, host: &str, started: i64) -> FoundRun {
        FoundRun {
            path: format!("/runs/{name}-{pid}.json").into(),
            run: idict::runfile::RunFile {
                name: name.into(),
                pid,
                host: host.into(),
                address: format!("http://127.0.0.1:{pid}"),
                observer_token: "o".into(),
                controller_token: "c".into(),
                started_unix_ms: started,
                protocol_version: 2,
                heartbeat_unix_ms: 0,
                metrics: None,
                ranks: 1,
            },
        }
    }

    fn lost(name: &str, pid: u32) -> RunModel {
        let mut m = RunModel::new(name);
        m.name = name.into();
        m.pid = pid;
        m.host = "vm".into();
        m.started_unix_ms = 1000;
        m.address = format!("http://127.0.0.1:{pid}");
        m.connection = Connection::Disconnected {
            since: Instant::now(),
            error: "connection refused".into(),
            retry_at: Instant::now(),
            attempts: 1,
        };
        m
    }

    #[test]
    fn a_lost_run_is_followed_by_the_one_that_took_its_name() {
        let m = lost("heat", 10);
        let restarted = found("heat", 11, "vm", 2000);
        let others = [
            found("lorenz", 12, "vm", 3000),
            found("heat", 13, "other-node", 3000),
            found("heat", 14, "vm", 500), // started before ours: not a restart
        ];
        let mut local = vec![restarted.clone()];
        local.extend(others.iter().cloned());
        assert!(matches!(successor(&m, &local, &[&m]), Successor::Follow(r) if r.run.pid == 11));
        // Only others: nothing to follow.
        assert!(matches!(successor(&m, &others, &[&m]), Successor::None));
        // Connected: nothing to do.
        let mut connected = lost("heat", 10);
        connected.connection = Connection::Connected;
        assert!(matches!(
            successor(&connected, &local, &[]),
            Successor::None
        ));
    }

    #[test]
    fn a_run_that_may_still_be_there_is_only_offered() {
        let m = lost("heat", 10);
        // The old run's file is still listed (it is alive, maybe busy).
        let local = [found("heat", 10, "vm", 1000), found("heat", 11, "vm", 2000)];
        assert!(matches!(successor(&m, &local, &[&m]), Successor::Offer(r) if r.run.pid == 11));
        // Two new ones: the newest is offered.
        let local = [found("heat", 11, "vm", 2000), found("heat", 12, "vm", 3000)];
        assert!(matches!(successor(&m, &local, &[&m]), Successor::Offer(r) if r.run.pid == 12));
        // Already open in another view: not offered again.
        let mut other = lost("heat", 11);
        other.address = "http://127.0.0.1:11".into();
        let local = [found("heat", 11, "vm", 2000)];
        assert!(matches!(
            successor(&m, &local, &[&m, &other]),
            Successor::None
        ));
    }
}
