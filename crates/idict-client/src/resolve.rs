//! Turning what a user types for a RUN (an address, a run name, a pid or a
//! run file) into an address and a token. `IDICT_ADDR` / `IDICT_TOKEN`
//! override for remote runs.

use super::{ClientError, ssh};
use idict_core::runfile::{self, FoundRun, RunFile};
use std::path::Path;

/// Where to connect and with which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, `https://…` or `unix:/path`.
    pub address: String,
    pub token: Option<String>,
    /// The run file the address came from; `None` when the user gave the
    /// address (even if a local run file lent its token).
    pub run: Option<RunFile>,
}

impl Target {
    /// Uses `token` instead of the run file's. A token is sent only where it
    /// belongs: to an address the user gave, or to a run whose own file
    /// holds it (its observer token, say). A token meant for one run must
    /// never reach the address another user's run file names.
    pub fn with_token(mut self, token: String) -> Result<Target, ClientError> {
        if let Some(run) = &self.run
            && !run.holds_token(&token)
        {
            return Err(ClientError::InvalidArgument(format!(
                "the token given is not one of run '{}' (pid {}): it is sent only to the \
                 address it came with (give that address, or --addr)",
                run.name, run.pid
            )));
        }
        self.token = Some(token);
        Ok(self)
    }

    /// A target at an explicit address (`host:port` gains `http://`).
    pub fn at(address: &str, token: Option<String>) -> Target {
        Target {
            address: normalise(address),
            token,
            run: None,
        }
    }
}

/// Normalises an address: `host:port` gains `http://`.
fn normalise(addr: &str) -> String {
    if addr.contains("://") || addr.starts_with("unix:") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// True if `s` reads as an address rather than a name: a URL, `unix:…`, or
/// `host:port` with a numeric port.
fn looks_like_address(s: &str) -> bool {
    if s.contains("://") || s.starts_with("unix:") {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn describe(runs: &[FoundRun]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "{} (pid {})",
                idict_core::value::escape_controls(&r.run.name),
                r.run.pid
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The target a run file names. A run on another host whose address only
/// means something there (loopback, a Unix socket, "any address") is an
/// error that says how to reach it: dialling it here would reach this
/// machine, not the run.
fn from_run(run: RunFile) -> Result<Target, ClientError> {
    let here = runfile::host_name();
    if run.host != here && local_only(&run.address) {
        return Err(ClientError::RunNotFound(format!(
            "run '{name}' (pid {pid}) lives on host {host}, at {address} there: \
             reach it with ssh://{host}/{name}",
            name = idict_core::value::escape_controls(&run.name),
            pid = run.pid,
            host = idict_core::value::escape_controls(&run.host),
            address = idict_core::value::escape_controls(&run.address),
        )));
    }
    Ok(Target {
        address: normalise(&run.address),
        token: Some(run.controller_token.clone()),
        run: Some(run),
    })
}

/// Whether an address reaches only the machine that uses it.
fn local_only(address: &str) -> bool {
    if address.starts_with("unix:") {
        return true;
    }
    let rest = address
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let host = match rest.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => rest,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| {
            let ip = ip.to_canonical();
            ip.is_loopback() || ip.is_unspecified()
        })
}

/// Resolves `run` using the local runs directory. An empty or blank `run`
/// is an error (an unset shell variable must not pick a run); to mean "the
/// only live run, or `IDICT_ADDR`", use [`resolve_default`].
///
/// `IDICT_TOKEN` is used for addresses (and `IDICT_ADDR`); a run found by
/// its file uses that file's token, unless `IDICT_TOKEN` is one of its.
pub fn resolve(run: &str) -> Result<Target, ClientError> {
    if run.trim().is_empty() {
        return Err(ClientError::RunNotFound(
            "the RUN given is empty (an unset shell variable?): name a run, a pid, an \
             address or a run file (see `idict ls`)"
                .into(),
        ));
    }
    with_env_token(resolve_without_env(run, None)?)
}

/// The only live run, or `IDICT_ADDR` if set: for a caller with no RUN.
pub fn resolve_default() -> Result<Target, ClientError> {
    let env_addr = std::env::var("IDICT_ADDR").ok().filter(|a| !a.is_empty());
    with_env_token(resolve_without_env("", env_addr.as_deref())?)
}

fn with_env_token(target: Target) -> Result<Target, ClientError> {
    let Some(token) = std::env::var("IDICT_TOKEN").ok().filter(|t| !t.is_empty()) else {
        return Ok(target);
    };
    if target.address.starts_with("ssh://") {
        // The bridge hands over the run's own token.
        return Ok(target);
    }
    match &target.run {
        // A token from the environment is for whatever address it was set
        // for; a local run's own file has the right one.
        Some(run) if !run.holds_token(&token) => Ok(target),
        _ => target.with_token(token),
    }
}

fn runs() -> Result<Vec<FoundRun>, ClientError> {
    runfile::list_runs().map_err(|e| ClientError::RunNotFound(e.to_string()))
}

fn resolve_without_env(run: &str, env_addr: Option<&str>) -> Result<Target, ClientError> {
    let run = run.trim();
    if run.starts_with("ssh://") {
        ssh::parse(run)?;
        return Ok(Target {
            address: run.to_string(),
            token: None,
            run: None,
        });
    }
    if run.is_empty() {
        if let Some(addr) = env_addr {
            return Ok(Target {
                address: normalise(addr),
                token: None,
                run: None,
            });
        }
        let mut all = runs()?;
        return match all.len() {
            1 => from_run(all.remove(0).run),
            0 => Err(ClientError::RunNotFound(
                "no run given and no live runs found (see `idict ls`)".into(),
            )),
            _ => Err(ClientError::RunNotFound(format!(
                "several runs are live; name one: {}",
                describe(&all)
            ))),
        };
    }
    if looks_like_address(run) {
        let address = normalise(run);
        // A local run at that address lends its token.
        let known = runs()
            .unwrap_or_default()
            .into_iter()
            .find(|r| normalise(&r.run.address) == address);
        return Ok(match known {
            // The address is the user's: any token they give may go to it.
            Some(r) => Target {
                address,
                token: Some(r.run.controller_token),
                run: None,
            },
            None => Target {
                address,
                token: None,
                run: None,
            },
        });
    }
    let path = Path::new(run);
    if run.ends_with(".json") || (path.components().count() > 1 && path.exists()) {
        let rf =
            runfile::read_run_file(path).map_err(|e| ClientError::RunNotFound(e.to_string()))?;
        return from_run(rf);
    }
    let all = runs()?;
    if let Ok(pid) = run.parse::<u32>()
        && let Some(r) = all.iter().find(|r| r.run.pid == pid)
    {
        return from_run(r.run.clone());
    }
    let mut named: Vec<_> = all.iter().filter(|r| r.run.name == run).cloned().collect();
    match named.len() {
        1 => from_run(named.remove(0).run),
        0 => Err(ClientError::RunNotFound(if all.is_empty() {
            format!(
                "no run named '{}': no live runs found (see `idict ls`)",
                idict_core::value::escape_controls(run)
            )
        } else {
            format!(
                "no run named '{}'; live runs: {}",
                idict_core::value::escape_controls(run),
                describe(&all)
            )
        })),
        _ => Err(ClientError::RunNotFound(format!(
            "several runs are named '{}'; give a pid: {}",
            idict_core::value::escape_controls(run),
            describe(&named)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_told_from_names() {
        assert!(looks_like_address("127.0.0.1:50051"));
        assert!(looks_like_address("node7:4000"));
        assert!(looks_like_address("http://x"));
        assert!(looks_like_address("unix:/tmp/s"));
        assert!(looks_like_address("[::1]:80"));
        assert!(!looks_like_address("heat"));
        assert!(!looks_like_address("1234"));
        assert!(!looks_like_address("heat:run"));
        assert_eq!(normalise("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(normalise("unix:/a"), "unix:/a");
    }

    #[test]
    fn an_empty_run_is_an_error_not_the_only_live_run() {
        for blank in ["", "  ", "\t"] {
            let err = resolve(blank).unwrap_err();
            assert!(
                matches!(&err, ClientError::RunNotFound(m) if m.contains("empty")),
                "{err}"
            );
        }
    }

    fn run_file(name: &str, host: &str, address: &str) -> RunFile {
        RunFile {
            name: name.into(),
            pid: 42,
            host: host.into(),
            address: address.into(),
            observer_token: "obs".into(),
            controller_token: "ctl".into(),
            started_unix_ms: 0,
            protocol_version: 1,
            heartbeat_unix_ms: idict_core::runfile::now_unix_ms(),
            metrics: None,
            ranks: 1,
        }
    }

    fn from_file(name: &str) -> Target {
        from_run(run_file(name, &runfile::host_name(), "http://127.0.0.1:1")).unwrap()
    }

    #[test]
    fn a_run_on_another_host_is_never_dialled_here() {
        for address in [
            "http://127.0.0.1:4000",
            "http://localhost:4000",
            "http://0.0.0.0:4000",
            "http://[::1]:4000",
            "http://LOCALHOST.:4000",
            "http://[::ffff:127.0.0.1]:4000",
            "unix:/tmp/run.sock",
        ] {
            let err = from_run(run_file("heat", "node17", address)).unwrap_err();
            assert!(
                matches!(&err, ClientError::RunNotFound(m) if m.contains("ssh://node17/heat")),
                "{address}: {err}"
            );
        }
        // An address that means the same from anywhere is used as it is.
        let t = from_run(run_file("heat", "node17", "https://10.0.0.17:4000")).unwrap();
        assert_eq!(t.address, "https://10.0.0.17:4000");
    }

    #[test]
    fn a_token_goes_only_where_it_belongs() {
        // An explicit address takes any token.
        let t = Target::at("127.0.0.1:9", None).with_token("anything".into());
        assert_eq!(t.unwrap().token.as_deref(), Some("anything"));
        // A run found by its file takes only one of its own tokens.
        let t = from_file("heat").with_token("obs".into()).unwrap();
        assert_eq!(t.token.as_deref(), Some("obs"));
        let err = from_file("heat").with_token("for-another-run".into());
        assert!(matches!(err, Err(ClientError::InvalidArgument(_))));
    }

    #[test]
    fn env_address_is_used_when_no_run_is_named() {
        let t = resolve_without_env("", Some("10.1.2.3:7000")).unwrap();
        assert_eq!(t.address, "http://10.1.2.3:7000");
    }
}
