//! The one way idict's programs (the CLI, the examples, the inspector) and a
//! computation that wants the same send idict's `tracing` events to stderr.

/// Sends `tracing` events (and `log` records) to stderr, filtered by `RUST_LOG` (default:
/// warnings and errors), so a program's own output stays on stdout. Does
/// nothing if a subscriber is already set.
pub fn log_to_stderr() {
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
