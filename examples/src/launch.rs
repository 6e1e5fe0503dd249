//! What every example's `main` shares: the common flags, logging to
//! stderr, serving the run, SIGTERM and Ctrl-C as a graceful terminate, and
//! closing once watchers have the end.

use idict::{IDict, Server};
use std::time::Duration;

/// Flags every example takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Hold before step 0 until a client resumes (attach a viewer first).
    #[arg(long)]
    pub start_paused: bool,
    /// Iterations per second at most (0: as fast as it goes).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this many iterations.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Serve Prometheus metrics at this address (GET /metrics), e.g.
    /// 0.0.0.0:9464 for a Prometheus on another host (default: IDICT_METRICS).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Record the run into a file in DIR, to read or replay after it ends
    /// (default: IDICT_RECORD).
    #[arg(long, value_name = "DIR")]
    pub record: Option<std::path::PathBuf>,
    /// Keep at most this many MiB per second of run time of each array key
    /// in the recording, or `all` of them (its first version and its value
    /// at the end always; what is left out is reported in the file).
    /// Default: a version a second (or IDICT_RECORD_ARRAY_MIBS).
    #[arg(long, value_name = "MIB_PER_S|all", value_parser = array_mibs)]
    pub record_array_mibs: Option<idict::RecordArrays>,
}

fn array_mibs(s: &str) -> Result<idict::RecordArrays, String> {
    idict::RecordArrays::parse_mibs(s)
        .ok_or_else(|| format!("'{s}' is not a number of MiB per second above 0, or `all`"))
}

/// Creates and serves the run; the server prints how to connect.
/// SIGINT (Ctrl-C), SIGTERM (a batch scheduler cancelling the job) and
/// SIGHUP ask the computation to finish (a terminate); a second signal
/// exits at once (see `idict::signals`).
pub fn start(name: &str, args: &RunArgs) -> anyhow::Result<(IDict, Server)> {
    idict::log_to_stderr();
    let idict = IDict::builder(name).start_paused(args.start_paused).build();
    // Before serving, so no signal finds the run served but not registered.
    idict.terminate_on_signals()?;
    let server = idict::ServeOptions {
        metrics: args.metrics,
        record: args.record.clone(),
        record_arrays: args.record_array_mibs,
        ..Default::default()
    }
    .serve(&idict)?;
    if args.start_paused {
        eprintln!(
            "{name}: paused before step 0; resume it with `idict resume {name}` or the inspector"
        );
    }
    Ok((idict, server))
}

/// Publishes the final update and serves until watchers have it.
pub fn finish(idict: &IDict, server: Server) -> anyhow::Result<()> {
    idict.notify_update_final()?;
    server.wait_then_close(Duration::from_secs(10));
    Ok(())
}
