//! `idict`: find, watch, pause, step, steer and terminate idict runs from a
//! terminal or a job script. Built only on `idict::client`.

mod render;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use idict::client::{Client, ClientError, ConnectOptions, Target, WatchOptions};
use idict::value::escape_controls;
use idict::{RunState, SeekTo, Value};
use render::{duration_text, format_float, state_word, status_text, value_json, value_text};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Watch and steer idict runs.
///
/// RUN is a run name, a pid, an address (host:port, unix:/path) or a run
/// file; `idict ls` lists the local ones. For a remote run give --addr and
/// --token (or IDICT_ADDR and IDICT_TOKEN) and leave RUN out.
#[derive(Parser)]
#[command(name = "idict", version, about, long_about)]
struct Cli {
    /// Connect to this address instead of looking RUN up (then omit RUN).
    #[arg(long, global = true, env = "IDICT_ADDR", value_name = "HOST:PORT")]
    addr: Option<String>,
    /// The run's token (default: IDICT_TOKEN for an address, else the run
    /// file's). A token is sent only to the address it belongs to: with a
    /// RUN found by its file, it must be one of that file's tokens.
    #[arg(long, global = true)]
    token: Option<String>,
    /// For a run served over TLS (https://): the PEM file of the CA that signed its certificate.
    #[arg(long, global = true, env = "IDICT_CA", value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the live runs on this machine, or on another (ssh://[user@]host).
    Ls {
        #[arg(value_name = "ssh://HOST")]
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write Prometheus file-based service discovery targets: the runs in
    /// the runs directory that serve metrics (`--metrics ADDR`,
    /// IDICT_METRICS). With a runs directory shared across a cluster, one
    /// Prometheus finds every run.
    PrometheusSd {
        /// Write here (atomically) instead of to stdout; point a
        /// `file_sd_configs` entry at it.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Keep writing it every SECONDS (runs come and go).
        #[arg(long, value_name = "SECONDS")]
        every: Option<f64>,
    },
    /// Serve a recording (see --record) as a run: what the recorded run
    /// published, version by version, that every client can watch, pause,
    /// step and resume. It stays served after the end until Ctrl-C.
    Replay {
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        /// Recorded seconds per second (2: twice as fast); default as fast
        /// as it goes.
        #[arg(long)]
        speed: Option<f64>,
        /// Hold before the first version until a client resumes.
        #[arg(long)]
        paused: bool,
        /// Exit when the replay has reached the end (otherwise it is held
        /// there, paused, for seeking, until terminated or Ctrl-C).
        #[arg(long)]
        exit_at_end: bool,
        /// Start at this recorded version (e.g. 1200) or time (e.g. 12.5s).
        #[arg(long, value_name = "VERSION|SECONDSs")]
        at: Option<String>,
    },
    /// The far side of ssh://HOST/RUN: find RUN here, say which run it is
    /// (one JSON line, with its tokens), then pass bytes between stdin and
    /// stdout and the run. Run by ssh, not by hand.
    Bridge {
        #[arg(value_name = "RUN")]
        run: String,
    },
    /// Show a run's identity, status, rate and keys.
    Info {
        #[arg(value_name = "RUN")]
        words: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print current values (all keys, or the KEYs given).
    Get {
        #[arg(value_name = "RUN KEY")]
        words: Vec<String>,
        /// Print arrays whole instead of summarised.
        #[arg(long)]
        full: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print a line per delivered update until the run ends.
    Watch {
        #[arg(value_name = "RUN KEY")]
        words: Vec<String>,
        #[arg(long)]
        full: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print the recorded samples of numeric keys.
    History {
        #[arg(value_name = "RUN KEY", required = true)]
        words: Vec<String>,
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[arg(long)]
        json: bool,
        /// Only samples after this version.
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
    /// Pause: the run holds at its next wait().
    Pause {
        #[arg(value_name = "RUN")]
        words: Vec<String>,
    },
    /// Resume a paused run.
    Resume {
        #[arg(value_name = "RUN")]
        words: Vec<String>,
    },
    /// Let N more iterations pass, then hold (default 1).
    Step {
        #[arg(value_name = "RUN N")]
        words: Vec<String>,
    },
    /// Move a replay to a recorded version (1200) or time (12.5s), forward
    /// or back.
    Seek {
        #[arg(value_name = "RUN TO")]
        words: Vec<String>,
    },
    /// Ask the run to finish (irreversible).
    Terminate {
        #[arg(value_name = "RUN")]
        words: Vec<String>,
        /// Wait until the run has published its final update.
        #[arg(long)]
        wait: bool,
    },
    /// Write a writable key; VALUE is JSON (0.5, true, "text", [1,2]) or a bare word.
    Set {
        #[arg(value_name = "RUN KEY VALUE")]
        words: Vec<String>,
        /// Wait until the run has applied the write.
        #[arg(long)]
        wait: bool,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idict: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idict: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version print as clap prints them; a usage error is one line
/// on stderr and exit 1, like every other failure of this command.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    eprintln!("idict: {first} (see `idict --help`)");
    ExitCode::FAILURE
}

/// Sends the library's `tracing` events to stderr, filtered by `RUST_LOG`
/// (default: warnings and errors); the command's output stays on stdout.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::WARN.into())
        .from_env_lossy();
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in a batch job's log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Writes a line to stdout; a closed pipe (`| head`) ends the program quietly.
fn out(line: impl std::fmt::Display) -> Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}")?;
    Ok(())
}

/// Splits the positional words into RUN (unless --addr is given) and the rest.
fn split_run(cli_addr: &Option<String>, words: &[String]) -> Result<(Option<String>, Vec<String>)> {
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

struct Ctx {
    addr: Option<String>,
    token: Option<String>,
    ca: Option<std::path::PathBuf>,
    /// A recording given as RUN, replayed in this process for the command.
    replayed: std::sync::Mutex<Option<(idict::IDict, idict::Server)>>,
}

impl Ctx {
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
            eprintln!("idict: {file} is damaged ({damage}): what came before is shown");
        } else if !summary.complete {
            eprintln!("idict: {file} stops before its run's end (the run was killed?)");
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

    async fn connect(&self, run: Option<&str>) -> Result<Client> {
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
/// A seek target: a version (`1200`, `v1200`) or seconds (`12.5s`).
fn parse_seek(s: &str) -> Result<SeekTo> {
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

fn explain(e: ClientError) -> anyhow::Error {
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

async fn run(mut cli: Cli) -> Result<ExitCode> {
    // `IDICT_ADDR=` (set but empty) means no address, not an empty one.
    cli.addr = cli.addr.filter(|a| !a.trim().is_empty());
    let ctx = Ctx {
        addr: cli.addr.clone(),
        token: cli.token.clone(),
        ca: cli.ca.clone(),
        replayed: std::sync::Mutex::new(None),
    };
    match cli.command {
        Command::Ls { host: None, json } => ls(json).await,
        Command::Ls {
            host: Some(host),
            json,
        } => ls_over_ssh(&host, json).await,
        Command::Bridge { run } => bridge(&run).await,
        Command::Replay {
            file,
            speed,
            paused,
            exit_at_end,
            at,
        } => {
            let at = at.as_deref().map(parse_seek).transpose()?;
            replay(file, speed, paused, exit_at_end, at).await
        }
        Command::PrometheusSd { out, every } => prometheus_sd(out.as_deref(), every).await,
        Command::Info { words, json } => {
            let (run, rest) = split_run(&cli.addr, &words)?;
            no_extra(&rest)?;
            info(&ctx.connect(run.as_deref()).await?, json).await
        }
        Command::Get { words, full, json } => {
            let (run, keys) = split_run(&cli.addr, &words)?;
            get(&ctx.connect(run.as_deref()).await?, &keys, full, json).await
        }
        Command::Watch { words, full, json } => {
            let (run, keys) = split_run(&cli.addr, &words)?;
            watch(&ctx.connect(run.as_deref()).await?, &keys, full, json).await
        }
        Command::History {
            words,
            csv,
            json,
            since,
        } => {
            let (run, keys) = split_run(&cli.addr, &words)?;
            if keys.is_empty() {
                bail!("name at least one KEY");
            }
            history(&ctx.connect(run.as_deref()).await?, &keys, since, csv, json).await
        }
        Command::Pause { words } => control(&ctx, &cli.addr, &words, Action::Pause).await,
        Command::Resume { words } => control(&ctx, &cli.addr, &words, Action::Resume).await,
        Command::Step { words } => {
            let (run, rest) = split_run(&cli.addr, &words)?;
            let n = match rest.as_slice() {
                [] => 1,
                [n] => n
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| anyhow!("N must be a whole number >= 1, got '{n}'"))?,
                _ => bail!("too many arguments: step RUN [N]"),
            };
            let c = ctx.connect(run.as_deref()).await?;
            let s = c.step(n).await.map_err(explain)?;
            out(format!("stepping {n}: {}", status_text(&s)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Seek { words } => {
            let (run, rest) = split_run(&cli.addr, &words)?;
            let to = match rest.as_slice() {
                [to] => parse_seek(to)?,
                [] => bail!("missing TO: seek RUN VERSION, or seek RUN SECONDSs (e.g. 12.5s)"),
                _ => bail!("too many arguments: seek RUN TO"),
            };
            let c = ctx.connect(run.as_deref()).await?;
            let s = c.seek(to).await.map_err(explain)?;
            out(format!(
                "seeking to {}: {}",
                match to {
                    SeekTo::Version(v) => format!("v{v}"),
                    SeekTo::Time(t) => format!("{t} s"),
                },
                status_text(&s)
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Terminate { words, wait } => {
            let (run, rest) = split_run(&cli.addr, &words)?;
            no_extra(&rest)?;
            let c = ctx.connect(run.as_deref()).await?;
            // Watch before asking, so the final update cannot be missed.
            let mut stream = match wait {
                true => Some(c.watch(WatchOptions::default()).await.map_err(explain)?),
                false => None,
            };
            let s = c.terminate().await.map_err(explain)?;
            out(status_text(&s))?;
            if let Some(w) = stream.as_mut() {
                while let Some(u) = w.next().await {
                    let u = u.map_err(explain)?;
                    if u.last {
                        out(status_text(&u.status))?;
                        break;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Set { words, wait } => {
            let (run, rest) = split_run(&cli.addr, &words)?;
            let [key, value] = rest.as_slice() else {
                bail!("expected KEY VALUE after RUN, e.g. `idict set heat dt 1e-5`");
            };
            set(&ctx.connect(run.as_deref()).await?, key, value, wait).await
        }
    }
}

fn no_extra(rest: &[String]) -> Result<()> {
    match rest.first() {
        Some(x) => bail!("unexpected argument '{x}'"),
        None => Ok(()),
    }
}

enum Action {
    Pause,
    Resume,
}

async fn control(
    ctx: &Ctx,
    addr: &Option<String>,
    words: &[String],
    action: Action,
) -> Result<ExitCode> {
    let (run, rest) = split_run(addr, words)?;
    no_extra(&rest)?;
    let c = ctx.connect(run.as_deref()).await?;
    let s = match action {
        Action::Pause => c.pause().await,
        Action::Resume => c.resume().await,
    }
    .map_err(explain)?;
    out(status_text(&s))?;
    Ok(ExitCode::SUCCESS)
}

/// `idict ls` on another host, through ssh; its output as it prints it.
async fn ls_over_ssh(host: &str, json: bool) -> Result<ExitCode> {
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

/// The file_sd targets of the live runs that serve metrics.
fn sd_targets() -> Result<Json> {
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

async fn prometheus_sd(out_file: Option<&std::path::Path>, every: Option<f64>) -> Result<ExitCode> {
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
            None => println!("{targets}"),
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

async fn replay(
    file: std::path::PathBuf,
    speed: Option<f64>,
    paused: bool,
    exit_at_end: bool,
    at: Option<SeekTo>,
) -> Result<ExitCode> {
    if let Some(s) = speed
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--speed takes a number > 0, got {s}");
    }
    let replayer = idict::replay::Replayer::open(&file)?;
    let h = replayer.header.clone();
    let t = replayer.timeline();
    let idict = idict::IDict::builder(&h.name)
        .replay_of(file.display().to_string())
        .start_paused(paused)
        .build();
    idict.terminate_on_signals()?;
    let server = idict::serve(&idict)?;
    eprintln!(
        "idict: replaying {} (run '{}', pid {} on {}: v{} to v{}, {:.1} s, {} marks){}",
        file.display(),
        escape_controls(&h.name),
        h.pid,
        escape_controls(&h.host),
        t.first_version,
        t.last_version,
        (t.last_time - t.first_time).max(0.0),
        t.marks.len() as u64 + t.marks_left_off,
        speed.map_or(String::new(), |s| format!(" at {s}x"))
    );
    let cut_at = replayer.cut_at;
    let run = idict.clone();
    let opts = idict::replay::ReplayOptions {
        speed,
        at,
        hold_at_end: !exit_at_end,
    };
    if !exit_at_end {
        eprintln!(
            "idict: at its end the replay holds, paused, for seeking (idict seek); Ctrl-C or terminate to quit"
        );
    }
    let summary = tokio::task::spawn_blocking(move || replayer.replay(&run, &opts)).await?;
    let summary = summary.unwrap_or_else(|e| {
        eprintln!("idict: the replay stopped: {e}");
        idict::replay::ReplaySummary::default()
    });
    eprintln!(
        "idict: replayed to v{} ({} samples){}{}",
        summary.last_version,
        summary.samples,
        if summary.terminated {
            ", stopped by terminate"
        } else {
            ""
        },
        match (&summary.damaged, cut_at) {
            (Some(d), _) =>
                format!("; the recording is damaged ({d}): what came before was replayed"),
            (None, Some(at)) =>
                format!("; the recording ends inside a record at byte {at} (the run was killed)"),
            (None, None) if !summary.complete && !summary.terminated => {
                "; the recording stops before the run's end".to_string()
            }
            (None, None) => String::new(),
        }
    );
    if !idict.status().state.is_terminal() {
        let _ = idict.notify_update_final();
    }
    server.wait_then_close(Duration::from_secs(2));
    Ok(ExitCode::SUCCESS)
}

/// The far side of `ssh://HOST/RUN` (see `idict::client::ssh`).
async fn bridge(run: &str) -> Result<ExitCode> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let say = |hello: &idict::client::ssh::Hello| -> Result<()> {
        let mut line = serde_json::to_vec(hello)?;
        line.push(b'\n');
        let mut out = std::io::stdout().lock();
        std::io::Write::write_all(&mut out, &line)?;
        std::io::Write::flush(&mut out)?;
        Ok(())
    };
    let refuse = |error: String| -> Result<ExitCode> {
        say(&idict::client::ssh::Hello {
            idict_bridge: 1,
            error: Some(error),
            ..Default::default()
        })?;
        Ok(ExitCode::FAILURE)
    };
    let target = match idict::client::resolve(run) {
        Ok(t) => t,
        // The near side says "run not found" itself.
        Err(ClientError::RunNotFound(m)) => return refuse(m),
        Err(e) => return refuse(e.to_string()),
    };
    let address = target.address.clone();
    if address.starts_with("ssh://") {
        return refuse("a bridge does not go on to another host: use ssh's ProxyJump".into());
    }
    if address.starts_with("https://") {
        return refuse(format!(
            "{address} is served over TLS, which a bridge does not pass: reach it at its address with its CA"
        ));
    }
    let (mut from_run, mut to_run): (
        Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    ) = if let Some(path) = address.strip_prefix("unix:") {
        #[cfg(unix)]
        {
            match tokio::net::UnixStream::connect(path.trim_start_matches("//")).await {
                Ok(s) => {
                    let (r, w) = s.into_split();
                    (Box::new(r), Box::new(w))
                }
                Err(e) => return refuse(format!("cannot reach the run at {address}: {e}")),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            return refuse("Unix sockets are not reached on this platform".into());
        }
    } else {
        match tokio::net::TcpStream::connect(address.trim_start_matches("http://")).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Err(e) => return refuse(format!("cannot reach the run at {address}: {e}")),
        }
    };
    let run_file = target.run.clone();
    say(&idict::client::ssh::Hello {
        idict_bridge: 1,
        error: None,
        name: run_file
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        pid: run_file.as_ref().map_or(0, |r| r.pid),
        host: idict::runfile::host_name(),
        address: address.clone(),
        started_unix_ms: run_file.as_ref().map_or(0, |r| r.started_unix_ms),
        observer_token: run_file.as_ref().map(|r| r.observer_token.clone()),
        controller_token: run_file
            .as_ref()
            .map(|r| r.controller_token.clone())
            .or(target.token.clone()),
    })?;
    // Bytes both ways, each flushed as it comes (ssh passes them on).
    let upstream = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = stdin.read(&mut buf).await?;
            if n == 0 {
                return to_run.shutdown().await;
            }
            to_run.write_all(&buf[..n]).await?;
        }
    };
    let downstream = async {
        let mut stdout = tokio::io::stdout();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = from_run.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            stdout.write_all(&buf[..n]).await?;
            stdout.flush().await?;
        }
    };
    // Either side ending ends the bridge: ssh closes, the run sees its
    // connection go.
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
    // Exit now: a read of stdin still waiting on its blocking thread would
    // keep the runtime (and stdout, so the near side's view) open until the
    // near side next wrote.
    std::process::exit(0)
}

async fn ls(json: bool) -> Result<ExitCode> {
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
        eprintln!(
            "no live runs in {}",
            idict::runfile::runs_dir().map_or_else(|e| e.to_string(), |d| d.display().to_string())
        );
        return Ok(ExitCode::SUCCESS);
    }
    out(format!(
        "{:<20} {:>8}  {:<16} {:<28} {:<12} {:>10}  {:>7}",
        "NAME", "PID", "HOST", "ADDRESS", "STATUS", "VERSION", "AGE"
    ))?;
    let mut elsewhere = None;
    for (r, info) in runs.iter().zip(&statuses) {
        if r.run.host != here {
            elsewhere = Some(r);
        }
        out(format!(
            "{:<20} {:>8}  {:<16} {:<28} {:<12} {:>10}  {:>7}",
            escape_controls(&r.run.name),
            r.run.pid,
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
        eprintln!(
            "runs on other hosts are reached over SSH, e.g. idict watch ssh://{}/{}",
            escape_controls(&r.run.host),
            escape_controls(&r.run.name)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn info(c: &Client, json: bool) -> Result<ExitCode> {
    let i = c.info().await.map_err(explain)?;
    if json {
        let keys: Vec<Json> = i
            .keys
            .iter()
            .map(|k| {
                let mut o = serde_json::Map::new();
                o.insert("name".into(), json!(k.name));
                o.insert("type".into(), json!(k.kind.name()));
                o.insert("writable".into(), json!(k.writable.is_some()));
                if let Some((dtype, shape)) = &k.array {
                    o.insert("dtype".into(), json!(dtype.name()));
                    o.insert("shape".into(), json!(shape));
                }
                if let Some(w) = &k.writable {
                    o.insert("min".into(), json!(w.min));
                    o.insert("max".into(), json!(w.max));
                    o.insert("rule".into(), json!(w.description));
                }
                Json::Object(o)
            })
            .collect();
        out(json!({
            "name": i.name,
            "pid": i.pid,
            "host": i.host,
            "address": c.address(),
            "status": i.status.state.name(),
            "message": i.status.message,
            "held": i.status.held,
            "version": i.version,
            "updates_per_second": i.updates_per_second,
            "watchers": i.watchers,
            "uptime_seconds": i.uptime_seconds,
            "replay_of": i.replay_of,
            "replay": i.replay.as_ref().map(|t| json!({
                "first_version": t.first_version,
                "last_version": t.last_version,
                "first_time": t.first_time,
                "last_time": t.last_time,
                "complete": t.complete,
                "marks": t.marks.iter().map(|m| json!({
                    "version": m.version,
                    "time": m.time,
                    "kind": match m.kind {
                        idict::MarkKind::Control => "control",
                        idict::MarkKind::Write => "write",
                    },
                    "label": m.label,
                })).collect::<Vec<_>>(),
                "marks_left_off": t.marks_left_off,
            })),
            "role": i.role.map(|r| r.name()),
            "keys": keys,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    out(format!(
        "{} (pid {} on {}) at {}",
        escape_controls(&i.name),
        i.pid,
        escape_controls(&i.host),
        c.address()
    ))?;
    out(format!("  status    {}", status_text(&i.status)))?;
    out(format!(
        "  version   {}  ({} updates/s, {} watcher{})",
        i.version,
        format_float((i.updates_per_second * 10.0).round() / 10.0),
        i.watchers,
        if i.watchers == 1 { "" } else { "s" }
    ))?;
    out(format!("  uptime    {}", duration_text(i.uptime_seconds)))?;
    if let Some(file) = &i.replay_of {
        out(format!("  replay of {}", escape_controls(file)))?;
    }
    if let Some(t) = &i.replay {
        out(format!(
            "  recorded  v{} to v{}, {} s{}",
            t.first_version,
            t.last_version,
            format_float(((t.last_time - t.first_time).max(0.0) * 10.0).round() / 10.0),
            if t.complete {
                ""
            } else {
                " (stops before the run's end)"
            }
        ))?;
        // The marks: what was done to the run, and when (`idict seek` there).
        const SHOWN: usize = 20;
        for m in t.marks.iter().take(SHOWN) {
            out(format!(
                "    v{:<9} {:>9} s  {}",
                m.version,
                format_float((m.time * 1000.0).round() / 1000.0),
                escape_controls(&m.label)
            ))?;
        }
        let more = (t.marks.len().saturating_sub(SHOWN)) as u64 + t.marks_left_off;
        if more > 0 {
            out(format!("    ... and {more} more marks (--json lists them)"))?;
        }
    }
    if let Some(r) = i.role {
        out(format!("  access    {}", r.name()))?;
    }
    out("  keys")?;
    let width = i.keys.iter().map(|k| k.name.len()).max().unwrap_or(0);
    for k in &i.keys {
        let ty = match &k.array {
            Some((dtype, shape)) => format!(
                "{dtype}[{}]",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => k.kind.name().to_string(),
        };
        let w = match &k.writable {
            Some(w) => format!("writable: {}", escape_controls(&w.description)),
            None => String::new(),
        };
        out(format!("    {:<width$}  {:<16} {}", escape_controls(&k.name), ty, w).trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn pick<'a>(
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

async fn get(c: &Client, keys: &[String], full: bool, json: bool) -> Result<ExitCode> {
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

async fn watch(c: &Client, keys: &[String], full: bool, json: bool) -> Result<ExitCode> {
    let wanted: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    let shown = |k: &str| wanted.is_empty() || wanted.contains(k);
    let mut stream = c.watch(WatchOptions::default()).await.map_err(explain)?;
    let mut last_status = None;
    let mut thinning = ThinningNotice::default();
    while let Some(u) = stream.next().await {
        let u = u.map_err(explain)?;
        if u.reset {
            // The first update is the whole state: a key it lacks would only
            // ever print empty lines.
            let missing: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|k| !u.changed.iter().any(|(have, _)| have == k))
                .collect();
            if !missing.is_empty() {
                let mut have: Vec<&str> = u.changed.iter().map(|(k, _)| k.as_str()).collect();
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
                eprintln!("[{}] {}", m.level, m.text);
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
struct ThinningNotice {
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
            eprintln!("{line}");
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

async fn history(
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
        eprintln!("[thinned] {}", escape_controls(&t.describe()));
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

async fn set(c: &Client, key: &str, text: &str, wait: bool) -> Result<ExitCode> {
    let value = render::parse_value(text);
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
    let receipt = c.set(key, value.clone()).await.map_err(explain)?;
    out(format!(
        "{key} = {}: accepted as write #{}; the run applies it at its next wait()",
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
