//! How a command reaches its run: RUN split from the other words, an
//! address, name, pid, run file or recording resolved and connected to, and
//! a client error explained with a hint.

use crate::note;
use anyhow::{Context, Result, anyhow, bail};
use idict::SeekTo;
use idict::client::{Client, ClientError, ConnectOptions, Target};

/// Splits the positional words into RUN (unless --addr is given) and the rest.
pub(crate) fn split_run(
    cli_addr: &Option<String>,
    words: &[String],
) -> Result<(Option<String>, Vec<String>)> {
    if cli_addr.is_some() {
        return Ok((None, words.to_vec()));
    }
    match words.split_first() {
        Some((run, rest)) => Ok((Some(run.clone()), rest.to_vec())),
        None => {
            bail!("missing RUN: a run name, pid, address or run file (see `idict ls`), or --addr")
        }
    }
}

/// How this invocation reaches runs: `--addr`, `--token`, `--ca`.
pub(crate) struct Ctx {
    addr: Option<String>,
    token: Option<String>,
    ca: Option<std::path::PathBuf>,
    /// A recording given as RUN, replayed in this process for the command.
    replayed: std::sync::Mutex<Option<(idict::IDict, idict::Server)>>,
}

impl Ctx {
    pub(crate) fn new(
        addr: Option<String>,
        token: Option<String>,
        ca: Option<std::path::PathBuf>,
    ) -> Self {
        Ctx {
            addr,
            token,
            ca,
            replayed: std::sync::Mutex::new(None),
        }
    }

    /// A recording given as RUN (`idict get run.idrec`): replayed to its
    /// end in this process, then served here for this one command.
    async fn replayed(&self, file: &str) -> Result<Client> {
        let path = std::path::PathBuf::from(file);
        let replayer = idict::replay::Replayer::open(&path)?;
        let run = idict::IDict::builder(replayer.header.name.clone())
            .replay_of(file.to_string())
            .build();
        let server = idict::ServeOptions::default()
            .write_run_file(false)
            .announce(false)
            .serve(&run)?;
        let replaying = run.clone();
        let summary =
            tokio::task::spawn_blocking(move || replayer.replay(&replaying, &Default::default()))
                .await??;
        if let Some(damage) = &summary.damaged {
            note(format!(
                "idict: {file} is damaged ({damage}): what came before is shown"
            ));
        } else if !summary.complete {
            note(format!(
                "idict: {file} stops before its run's end (the run was killed?)"
            ));
        }
        let target = Target::at(server.address(), Some(server.tokens().controller.clone()));
        let opts = ConnectOptions {
            client_name: idict::client::client_name("idict-cli"),
            ..ConnectOptions::default()
        };
        let client = Client::connect_target(target, opts)
            .await
            .map_err(explain)?;
        if let Ok(mut held) = self.replayed.lock() {
            *held = Some((run, server));
        }
        Ok(client)
    }

    pub(crate) async fn connect(&self, run: Option<&str>) -> Result<Client> {
        if let (None, Some(file)) = (&self.addr, run)
            && idict::recording::is_recording_path(file)
        {
            return self.replayed(file).await;
        }
        let env_token = std::env::var("IDICT_TOKEN").ok().filter(|t| !t.is_empty());
        let mut target = match (&self.addr, run) {
            (Some(addr), _) => Target::at(addr, env_token),
            // Applies IDICT_TOKEN where it belongs.
            (None, Some(run)) => idict::client::resolve(run).map_err(explain)?,
            (None, None) => bail!("missing RUN"),
        };
        if let Some(token) = &self.token {
            target = target.with_token(token.clone()).map_err(explain)?;
        }
        let tls_ca_pem =
            match &self.ca {
                Some(path) => Some(std::fs::read(path).with_context(|| {
                    format!("cannot read the CA certificate {}", path.display())
                })?),
                None => None,
            };
        let opts = ConnectOptions {
            client_name: idict::client::client_name("idict-cli"),
            tls_ca_pem,
            ..ConnectOptions::default()
        };
        Client::connect_target(target, opts).await.map_err(explain)
    }
}

/// A client error with a hint of what to do about it.
pub(crate) fn explain(e: ClientError) -> anyhow::Error {
    match &e {
        ClientError::Unauthenticated(_) => anyhow!(
            "{e}\n  hint: pass --token or set IDICT_TOKEN (tokens are in the run's file, readable by its owner)"
        ),
        ClientError::PermissionDenied(m) if m.contains("observer") => {
            anyhow!("{e}\n  hint: this needs the run's controller token")
        }
        _ => anyhow!("{e}"),
    }
}

/// A seek target: a version (`1200`, `v1200`) or seconds (`12.5s`).
pub(crate) fn parse_seek(s: &str) -> Result<SeekTo> {
    let t = s.trim();
    if let Some(secs) = t.strip_suffix('s') {
        return secs
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(SeekTo::Time)
            .ok_or_else(|| anyhow!("'{s}' is not a time: give seconds like 12.5s"));
    }
    t.trim_start_matches('v')
        .parse::<u64>()
        .map(SeekTo::Version)
        .map_err(|_| anyhow!("'{s}' is neither a version (1200) nor a time (12.5s)"))
}

pub(crate) fn no_extra(rest: &[String]) -> Result<()> {
    match rest.first() {
        Some(x) => bail!("unexpected argument '{x}'"),
        None => Ok(()),
    }
}
