//! `idict`: find, watch, pause, step, steer and terminate idict runs from a
//! terminal or a job script. Built only on `idict::client`.

mod render;

mod commands;
mod target;
use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use commands::*;
use std::io::Write;
use std::process::ExitCode;
use target::{Ctx, no_extra, parse_seek, split_run};

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
        /// An MPI job: each rank's value of the keys (KEY@ranks), not the reduced one.
        #[arg(long, conflicts_with = "rank")]
        ranks: bool,
        /// An MPI job: one rank's value of the keys.
        #[arg(long, value_name = "N")]
        rank: Option<usize>,
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
    /// Pause: the run holds at its next wait(), or at step N.
    Pause {
        #[arg(value_name = "RUN")]
        words: Vec<String>,
        /// Hold when the run has done N steps (its wait() calls that went on), not now.
        #[arg(long, value_name = "N")]
        at_step: Option<u64>,
        /// Wait until the run is held.
        #[arg(long)]
        wait: bool,
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
        /// End the run when it has done N steps, not now.
        #[arg(long, value_name = "N")]
        at_step: Option<u64>,
        /// Wait until the run has published its final update.
        #[arg(long)]
        wait: bool,
    },
    /// Write a writable key; VALUE is JSON (0.5, true, "text", [1,2]) or a bare word.
    Set {
        #[arg(value_name = "RUN KEY VALUE")]
        words: Vec<String>,
        /// Apply it at the wait() where the run has done N steps, not the next one.
        #[arg(long, value_name = "N")]
        at_step: Option<u64>,
        /// Wait until the run has applied the write.
        #[arg(long)]
        wait: bool,
    },
    /// Add, list or remove a run's triggers: conditions it checks at each
    /// update, acting when one becomes true. `trigger RUN add NAME
    /// 'CONDITION' --pause`, `trigger RUN ls`, `trigger RUN rm NAME`.
    /// CONDITION is a CEL expression over the run's scalar keys, e.g.
    /// 'isnan(residual)', 'energy > 2 * start(energy)', 'rises(residual) >= 10'.
    Trigger {
        #[arg(value_name = "RUN add|ls|rm")]
        words: Vec<String>,
        /// Hold the run at its next wait(), before another step.
        #[arg(long)]
        pause: bool,
        /// End the run.
        #[arg(long)]
        terminate: bool,
        /// Write a checkpoint of the run (next to it).
        #[arg(long)]
        checkpoint: bool,
        /// Log this text with the firing.
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        /// The firing's level: debug, info, warn (default), error.
        #[arg(long, value_name = "LEVEL")]
        level: Option<String>,
    },
    /// Wait until CONDITION holds at one of the run's updates (a CEL
    /// expression, as for `trigger`). Exit 0 when it does, 1 on timeout,
    /// 2 when the run ended first, 3 when it cannot wait.
    WaitFor {
        #[arg(value_name = "RUN CONDITION")]
        words: Vec<String>,
        /// Give up after this long: 90s, 10m, 1h.
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
    },
}

fn main() -> ExitCode {
    idict::log_to_stderr();
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
            note(format!("idict: cannot start: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            note(format!("idict: {e:#}"));
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
    note(format!("idict: {first} (see `idict --help`)"));
    ExitCode::FAILURE
}

pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Writes a line to stderr: a message, a warning or why the command failed.
/// Unlike `eprintln!`, a stderr that cannot be written (a closed pipe) is
/// not a panic.
pub(crate) fn note(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Writes a line to stdout; a closed pipe (`| head`) ends the program quietly.
pub(crate) fn out(line: impl std::fmt::Display) -> Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}")?;
    Ok(())
}

async fn run(mut cli: Cli) -> Result<ExitCode> {
    // `IDICT_ADDR=` (set but empty) means no address, not an empty one.
    cli.addr = cli.addr.filter(|a| !a.trim().is_empty());
    let ctx = Ctx::new(cli.addr.clone(), cli.token.clone(), cli.ca.clone());
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
        Command::Get {
            words,
            full,
            json,
            ranks,
            rank,
        } => {
            let (run, keys) = split_run(&cli.addr, &words)?;
            let c = ctx.connect(run.as_deref()).await?;
            match (ranks, rank) {
                (false, None) => get(&c, &keys, full, json).await,
                (_, rank) => get_ranks(&c, &keys, rank, json).await,
            }
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
        Command::Pause {
            words,
            at_step,
            wait,
        } => pause(&ctx, &cli.addr, &words, at_step, wait).await,
        Command::Resume { words } => resume(&ctx, &cli.addr, &words).await,
        Command::Step { words } => step(&ctx, &cli.addr, &words).await,
        Command::Seek { words } => seek(&ctx, &cli.addr, &words).await,
        Command::Terminate {
            words,
            at_step,
            wait,
        } => terminate(&ctx, &cli.addr, &words, at_step, wait).await,
        Command::Trigger {
            words,
            pause,
            terminate,
            checkpoint,
            message,
            level,
        } => {
            let flags = ActionFlags {
                pause,
                terminate,
                checkpoint,
                message,
                level,
            };
            trigger(&ctx, &cli.addr, &words, flags).await
        }
        Command::WaitFor { words, timeout } => {
            wait_for(&ctx, &cli.addr, &words, timeout.as_deref()).await
        }
        Command::Set {
            words,
            at_step,
            wait,
        } => {
            let (run, rest) = split_run(&cli.addr, &words)?;
            let [key, value] = rest.as_slice() else {
                bail!("expected KEY VALUE after RUN, e.g. `idict set heat dt 1e-5`");
            };
            set(
                &ctx.connect(run.as_deref()).await?,
                key,
                value,
                at_step,
                wait,
            )
            .await
        }
    }
}
