//! How a run is served: where it listens ([`Bind`]), its tokens, TLS, the
//! recording, the run file, the limits a hostile client meets; and what can
//! stop it from starting ([`ServeError`]).

use idict_core::runfile;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A TCP address; port 0 picks a free port.
    Tcp(SocketAddr),
    /// A Unix domain socket at this path (created; removed on close).
    Unix(PathBuf),
}

/// A TLS certificate chain and private key (PEM), for serving over TLS.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity { .. }")
    }
}

impl TlsIdentity {
    /// Reads a certificate chain and its key from PEM files.
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<Self> {
        Ok(TlsIdentity {
            cert_pem: std::fs::read(cert)?,
            key_pem: std::fs::read(key)?,
        })
    }
}

/// How to serve a run. `ServeOptions::default()` is what `serve` uses.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Default 127.0.0.1:0 (loopback, a free port).
    pub bind: Bind,
    /// Observer (read-only) token; random if `None`.
    pub observer_token: Option<String>,
    /// Controller token; random if `None`.
    pub controller_token: Option<String>,
    /// Write a run file so `idict ls` and names find the run (default true).
    pub write_run_file: bool,
    /// Where to write it; default `runfile::runs_dir()`.
    pub runs_dir: Option<PathBuf>,
    /// Print one line to stderr saying how to connect (default true).
    pub announce: bool,
    /// Largest request accepted (a Set with an array), bytes. Default 64 MiB.
    pub max_request_bytes: usize,
    /// Largest message sent (one array must fit), bytes. Default 1 GiB.
    pub max_response_bytes: usize,
    /// Target size of a Watch message. Default 64 KiB: a first full state
    /// goes in chunks of about this size, and a value larger than this in
    /// parts of this size (`WatchUpdate.part`), so a stream whose client
    /// stops reading holds a chunk or two, plus handles to values it shares
    /// with the run.
    pub snapshot_chunk_bytes: usize,
    /// Serve over TLS with this identity (clients then need its CA).
    pub tls: Option<TlsIdentity>,
    /// Niceness of the server's threads (Unix; default 10): when watchers
    /// keep the server busy, the computation still gets the CPU first and
    /// the watchers get their updates more coalesced.
    pub nice: i32,
    /// Connections served at once (default 1024). When all are taken, a
    /// new connection takes the place of one that has not yet made a
    /// request with a valid token (chosen at random, the earlier accepted
    /// the likelier, one accepted within the last half second only when no
    /// other is found); only if every one has is the new connection closed
    /// at once. Anyone who can connect could otherwise hold every slot.
    /// Above 0.
    pub max_connections: usize,
    /// How long a new connection may take to start speaking HTTP/2 (and,
    /// with TLS, to finish its handshake) before it is closed. Default 5 s.
    pub handshake_timeout: Duration,
    /// How long a new connection has to make a request with a valid token
    /// (either role) before it is closed. Default 10 s. A client that
    /// connects and waits longer before its first call finds its
    /// connection closed; tonic's channels (`idict::client`) open a new
    /// one on the next call. Above 0.
    pub auth_timeout: Duration,
    /// Concurrent requests (streams) on one connection. Default 128.
    pub max_streams_per_connection: u32,
    /// Watch and GetHistory streams open at once per token (observer,
    /// controller). Default 256: each costs the server a first state or a
    /// history walk, and holds a message or two until its client takes
    /// them.
    pub max_streams_per_token: usize,
    /// Record the run (the flight recorder) into a file in this directory:
    /// everything it publishes and every control action, to read or
    /// replay after it ends (`idict::recording`). Default: the directory in
    /// `IDICT_RECORD`, if set; no recording otherwise.
    pub record: Option<PathBuf>,
    /// How much of each array key the recording keeps (the first version
    /// and the value at the final update always). Versions left out are
    /// reported in the file (`ArraysThinned`). Default:
    /// `IDICT_RECORD_ARRAY_MIBS` (MiB/s, or `all`), if set; else one
    /// version a second of run time (a 128x128 field at every step of a
    /// 200 Hz run wrote 78 MB in 3 s).
    pub record_arrays: Option<RecordArrays>,
    /// Serve Prometheus metrics here (`GET /metrics`): the run's numeric
    /// scalars, state, version, rate and watchers. Default: the address in
    /// `IDICT_METRICS`, if set; none otherwise. The endpoint has no token:
    /// bind it where only your Prometheus reaches.
    pub metrics: Option<SocketAddr>,
    /// How often the run file's heartbeat is refreshed (default 5 s): a run
    /// file seen from another host counts as live while its heartbeat is
    /// younger than `runfile::HEARTBEAT_STALE_MS`.
    pub heartbeat_every: Duration,
    /// GetSnapshot answers being sent at once per token. Default 4: a
    /// snapshot is one message, a copy of the whole state, held until its
    /// client has taken it.
    pub max_snapshots_per_token: usize,
    /// Threads of the server's runtime. Default 1: one thread serves every
    /// client with the fewest cross-thread wake-ups (the lowest latency) and
    /// leaves the other cores to the computation.
    pub worker_threads: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: Bind::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            observer_token: None,
            controller_token: None,
            write_run_file: true,
            runs_dir: None,
            announce: true,
            max_request_bytes: 64 << 20,
            max_response_bytes: 1 << 30,
            snapshot_chunk_bytes: 64 << 10,
            worker_threads: 1,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(5),
            auth_timeout: Duration::from_secs(10),
            max_streams_per_connection: 128,
            max_streams_per_token: 256,
            max_snapshots_per_token: 4,
            heartbeat_every: runfile::HEARTBEAT_EVERY,
            metrics: None,
            record: None,
            record_arrays: None,
            tls: None,
            nice: 10,
        }
    }
}

/// Why a run could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("this IDict is already being served")]
    AlreadyServed,
    #[error("cannot bind {what}: {source}")]
    Bind {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot start the server's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot make a token: {0}")]
    Token(String),
    #[error("cannot write the run file: {0}")]
    RunFile(#[from] runfile::RunFileError),
    #[error("the server thread stopped before it was ready")]
    Stopped,
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot record the run in {path}: {source}")]
    Record {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("IDICT_METRICS is not an address (IP:port, e.g. 0.0.0.0:0): {0}")]
    MetricsAddress(String),
    #[error("IDICT_RECORD_ARRAY_MIBS is not a number of MiB per second above 0 (or `all`): {0}")]
    ArrayBudget(String),
    #[error("ServeOptions::{0} must be above 0 (it would close every connection)")]
    Zero(&'static str),
}

/// How much of each array key a recording keeps: its first version and
/// its value at the run's final update always, and between them:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordArrays {
    /// A version a second of run time (the default).
    #[default]
    VersionPerSecond,
    /// At most this many bytes per second of run time.
    BytesPerSecond(u64),
    /// Every version the recorder receives.
    All,
}

impl RecordArrays {
    /// `IDICT_RECORD_ARRAY_MIBS` and the examples' `--record-array-mibs`:
    /// MiB per second above 0, or `all`.
    pub fn parse_mibs(text: &str) -> Option<RecordArrays> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Some(RecordArrays::All);
        }
        let mibs = text
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && *m > 0.0)?;
        Some(RecordArrays::BytesPerSecond(
            (mibs * 1048576.0).min(u64::MAX as f64) as u64,
        ))
    }

    /// What the recording keeps, as the run's announcement says it.
    pub fn describe(&self) -> String {
        match self {
            RecordArrays::VersionPerSecond => {
                "a version a second of each array, first and last always".into()
            }
            RecordArrays::BytesPerSecond(b) => format!(
                "{:.3} MiB a second of each array, first and last always",
                *b as f64 / 1048576.0
            ),
            RecordArrays::All => "every version of each array".into(),
        }
    }
}

impl ServeOptions {
    pub fn bind(mut self, bind: Bind) -> Self {
        self.bind = bind;
        self
    }
    pub fn tokens(mut self, observer: impl Into<String>, controller: impl Into<String>) -> Self {
        self.observer_token = Some(observer.into());
        self.controller_token = Some(controller.into());
        self
    }
    /// Records the run into a file in `dir` (see [`ServeOptions::record`]).
    pub fn record(mut self, dir: impl Into<PathBuf>) -> Self {
        self.record = Some(dir.into());
        self
    }
    /// Keeps at most `bytes_per_second` of run time of each array key in
    /// the recording (see [`ServeOptions::record_arrays`]).
    pub fn record_array_budget(mut self, bytes_per_second: u64) -> Self {
        self.record_arrays = Some(RecordArrays::BytesPerSecond(bytes_per_second));
        self
    }
    /// See [`ServeOptions::record_arrays`].
    pub fn record_arrays(mut self, arrays: RecordArrays) -> Self {
        self.record_arrays = Some(arrays);
        self
    }
    pub fn runs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runs_dir = Some(dir.into());
        self
    }
    pub fn write_run_file(mut self, yes: bool) -> Self {
        self.write_run_file = yes;
        self
    }
    pub fn announce(mut self, yes: bool) -> Self {
        self.announce = yes;
        self
    }
    /// Serve over TLS.
    pub fn tls(mut self, identity: TlsIdentity) -> Self {
        self.tls = Some(identity);
        self
    }
}
