//! The embedded gRPC server: `serve(&idict)` starts it on its own thread and
//! tokio runtime (never the computation's), bound to 127.0.0.1 on a free
//! port by default, with fresh tokens and a run file. It serves the
//! Inspector service plus gRPC health and reflection (v1 and v1alpha).

mod admission;
mod array_budget;
mod auth;
mod frames;
mod incoming;
mod metrics;
mod options;
mod parts;
mod recorder;
mod service;
mod shared;
#[cfg(test)]
mod tests;
mod thinning;
mod trim;
mod watch;

pub use auth::Tokens;
pub(crate) use auth::random_token;
pub use options::{Bind, RecordArrays, ServeError, ServeOptions, TlsIdentity};
use shared::{Shared, thread_name};

use idict_core::published::Published;
use idict_core::runfile::{self, RunFile};
use idict_core::tuning::{CLOSE_GRACE, FRAME_BYTES, WINDOW_BYTES};
use idict_core::{IDict, Inner};
use idict_proto::v1::inspector_server::InspectorServer;
use parking_lot::RwLock;
use service::InspectorService;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch as tokio_watch};

/// A running server. Dropping it closes the server and removes its run file
/// at once; the server's thread finishes closing on its own.
#[must_use = "dropping the Server closes it at once; keep it, then call wait_then_close"]
/// How many watch streams a server has open ([`Server::watcher_count`]).
#[derive(Clone)]
pub struct WatcherCount(Arc<Shared>);

impl WatcherCount {
    pub fn get(&self) -> usize {
        self.0.watchers.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for WatcherCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WatcherCount({})", self.get())
    }
}

pub struct Server {
    address: String,
    /// Where Prometheus scrapes, if metrics are served.
    metrics_address: Option<SocketAddr>,
    /// The recording's file, if the run is recorded.
    recording: Option<PathBuf>,
    /// The recorder's thread: `close` waits for it to write its last.
    recorder: Option<std::thread::JoinHandle<()>>,
    tokens: Tokens,
    run_file: Option<PathBuf>,
    heartbeat: Option<runfile::Heartbeat>,
    unix_socket: Option<PathBuf>,
    close: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .field("run_file", &self.run_file)
            .finish()
    }
}

/// Serves `idict` with the default options: 127.0.0.1 on a free port, fresh
/// tokens, a run file, and one line on stderr saying where to connect.
pub fn serve(idict: &IDict) -> Result<Server, ServeError> {
    ServeOptions::default().serve(idict)
}

impl ServeOptions {
    /// Starts the server on a thread and runtime of its own; works whether
    /// or not the caller is inside a tokio runtime.
    pub fn serve(&self, idict: &IDict) -> Result<Server, ServeError> {
        self.start(idict)
    }

    /// The same, for async callers: awaits readiness without blocking the
    /// caller's runtime. The server still runs on its own thread and runtime,
    /// so a busy application runtime never delays it.
    pub async fn serve_async(&self, idict: &IDict) -> Result<Server, ServeError> {
        let opts = self.clone();
        let idict = idict.clone();
        tokio::task::spawn_blocking(move || opts.start(&idict))
            .await
            .map_err(|_| ServeError::Stopped)?
    }

    fn start(&self, idict: &IDict) -> Result<Server, ServeError> {
        let inner = idict.inner.clone();
        if inner.served.swap(true, Ordering::AcqRel) {
            return Err(ServeError::AlreadyServed);
        }
        let result = self.start_served(inner.clone());
        if result.is_err() {
            inner.served.store(false, Ordering::Release);
        }
        result
    }

    fn start_served(&self, inner: Arc<Inner>) -> Result<Server, ServeError> {
        for (name, zero) in [
            ("max_connections", self.max_connections == 0),
            ("handshake_timeout", self.handshake_timeout.is_zero()),
            ("auth_timeout", self.auth_timeout.is_zero()),
        ] {
            if zero {
                return Err(ServeError::Zero(name));
            }
        }
        let token = |given: &Option<String>| match given {
            Some(t) => Ok(t.clone()),
            None => random_token().map_err(|e| ServeError::Token(e.to_string())),
        };
        let tokens = Tokens {
            observer: token(&self.observer_token)?,
            controller: token(&self.controller_token)?,
        };
        let (news_tx, news_rx) = tokio_watch::channel(inner.epoch());
        let record_dir = self.record.clone().or_else(|| {
            std::env::var_os("IDICT_RECORD")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        });
        // A replay is not recorded again: its seeks back would make a
        // recording whose versions go back, which no replay can follow.
        let record_dir = match (&inner.options.replay_of, record_dir) {
            (Some(_), Some(dir)) => {
                tracing::info!(
                    "not recording a replay (asked to record into {})",
                    dir.display()
                );
                None
            }
            (_, dir) => dir,
        };
        let record_arrays = match self.record_arrays {
            Some(a) => a,
            None => match std::env::var("IDICT_RECORD_ARRAY_MIBS") {
                Ok(v) if !v.trim().is_empty() => RecordArrays::parse_mibs(&v)
                    .ok_or_else(|| ServeError::ArrayBudget(v.clone()))?,
                _ => RecordArrays::default(),
            },
        };
        let (controls_tx, controls_rx) = tokio::sync::mpsc::channel(recorder::CONTROL_QUEUE);
        let shared = Arc::new(Shared {
            watchers: AtomicUsize::new(0),
            streams_by_role: [AtomicUsize::new(0), AtomicUsize::new(0)],
            watchers_left: AtomicBool::new(false),
            messages_sent: AtomicU64::new(0),
            controls: record_dir.as_ref().map(|_| controls_tx.clone()),
            news: news_rx,
            mirror: RwLock::new(Published::new(inner.options.message_capacity)),
            options: self.clone(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, ServeError>>();
        let (close_tx, close_rx) = oneshot::channel::<()>();
        let nice = self.nice;
        let runtime = match self.worker_threads {
            0 | 1 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            n => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .thread_name("idict-server")
                .on_thread_start(move || lower_priority(nice))
                .enable_all()
                .build(),
        }
        .map_err(ServeError::Runtime)?;
        let metrics_addr = match self.metrics {
            Some(a) => Some(a),
            None => match std::env::var("IDICT_METRICS") {
                Ok(v) if !v.trim().is_empty() => Some(
                    v.trim()
                        .parse::<SocketAddr>()
                        .map_err(|_| ServeError::MetricsAddress(v.clone()))?,
                ),
                _ => None,
            },
        };
        // Metrics are extra: a run whose metrics address is taken (a second
        // task on a node, IDICT_METRICS inherited) serves without them.
        let metrics_listener = metrics_addr.and_then(|addr| {
            match std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(l) => {
                    if !addr.ip().is_loopback() {
                        tracing::warn!(
                            "metrics at {addr} are served to anyone who can reach it, without a token"
                        );
                    }
                    Some(l)
                }
                Err(e) => {
                    tracing::warn!("no metrics: cannot bind {addr}: {e}");
                    eprintln!("idict: run '{}': no metrics, cannot bind {addr}: {e}", inner.name);
                    None
                }
            }
        });
        let metrics_address = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let ctx = ServerTask {
            inner: inner.clone(),
            shared: shared.clone(),
            tokens: Arc::new(tokens.clone()),
            news: news_tx,
            metrics: metrics_listener,
        };
        let bind = self.bind.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name("idict-server", &inner.name))
            .spawn(move || {
                lower_priority(nice);
                runtime.block_on(ctx.run(bind, ready_tx, close_rx));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(ServeError::Runtime)?;
        let address = match ready_rx.recv() {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(ServeError::Stopped);
            }
        };
        let (recording, recorder) = match &record_dir {
            Some(dir) => {
                let (path, thread) = recorder::start(
                    dir,
                    inner.clone(),
                    shared.clone(),
                    controls_rx,
                    record_arrays,
                )
                .map_err(|source| ServeError::Record {
                    path: dir.clone(),
                    source,
                })?;
                (Some(path), Some(thread))
            }
            None => (None, None),
        };
        let mut server = Server {
            address,
            metrics_address,
            recording,
            recorder,
            tokens,
            run_file: None,
            heartbeat: None,
            unix_socket: match &self.bind {
                Bind::Unix(p) => Some(p.clone()),
                Bind::Tcp(_) => None,
            },
            close: Some(close_tx),
            thread: Some(thread),
            shared,
            inner,
        };
        if self.write_run_file {
            let dir = match &self.runs_dir {
                Some(d) => d.clone(),
                None => runfile::runs_dir()?,
            };
            let rf = RunFile {
                name: server.inner.name.clone(),
                pid: std::process::id(),
                host: runfile::host_name(),
                address: server.address.clone(),
                observer_token: server.tokens.observer.clone(),
                controller_token: server.tokens.controller.clone(),
                started_unix_ms: server.inner.started_unix_ms,
                protocol_version: idict_proto::PROTOCOL_VERSION,
                heartbeat_unix_ms: runfile::now_unix_ms(),
                metrics: server.metrics_address.map(|a| {
                    // An "any address" bind is scraped at this host's name.
                    if a.ip().is_unspecified() {
                        format!("{}:{}", runfile::host_name(), a.port())
                    } else {
                        a.to_string()
                    }
                }),
                ranks: server.inner.options.ranks,
            };
            server.run_file = Some(runfile::write_run_file(&dir, &rf)?);
            server.heartbeat = Some(runfile::Heartbeat::start(dir, rf, self.heartbeat_every));
        }
        if let Bind::Tcp(addr) = &self.bind
            && !addr.ip().is_loopback()
            && self.tls.is_none()
        {
            let warning = format!(
                "idict: WARNING: run '{}' is served on {addr}, reachable from other machines, without TLS: \
                 its tokens and data cross the network in clear text (use ServeOptions::tls, or bind 127.0.0.1 and tunnel)",
                server.inner.name
            );
            // Once: through the application's logging if it has any for
            // warnings, else straight to stderr (it must not go unseen).
            if tracing::enabled!(tracing::Level::WARN) {
                tracing::warn!("{warning}");
            } else {
                eprintln!("{warning}");
            }
        }
        if self.announce {
            let name = &server.inner.name;
            eprintln!(
                "idict: run '{name}' (pid {}) served at {} — watch: `idict watch {name}`, inspect: `idict-inspector {name}`{}",
                std::process::id(),
                server.address,
                server
                    .metrics_address
                    .map(|a| format!(", metrics: http://{a}/metrics"))
                    .unwrap_or_default(),
            );
        }
        // A recording grows on disk: where it goes and what it keeps are
        // said (they were nowhere to be read).
        if self.announce
            && let Some(path) = &server.recording
        {
            let more = match record_arrays {
                RecordArrays::VersionPerSecond => "; IDICT_RECORD_ARRAY_MIBS=N|all for more",
                _ => "",
            };
            eprintln!(
                "idict: recording run '{}' to {} ({}{more}) — replay: `idict replay {}`",
                server.inner.name,
                path.display(),
                record_arrays.describe(),
                path.display()
            );
        }
        tracing::info!(address = %server.address, run_file = ?server.run_file, "idict server ready");
        Ok(server)
    }
}

/// The server's own task, run on its runtime.
struct ServerTask {
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    tokens: Arc<Tokens>,
    news: tokio_watch::Sender<u64>,
    metrics: Option<std::net::TcpListener>,
}

impl ServerTask {
    async fn run(
        self,
        bind: Bind,
        ready: std::sync::mpsc::Sender<Result<String, ServeError>>,
        close: oneshot::Receiver<()>,
    ) {
        let ServerTask {
            inner,
            shared,
            tokens,
            news,
            metrics,
        } = self;
        let metrics = match metrics.map(tokio::net::TcpListener::from_std).transpose() {
            Ok(m) => m.map(|l| tokio::spawn(metrics::serve(l, inner.clone(), shared.clone()))),
            Err(source) => {
                let _ = ready.send(Err(ServeError::Bind {
                    what: "the metrics address".into(),
                    source,
                }));
                return;
            }
        };
        let trimmer = tokio::spawn(trim::after_watchers_leave(shared.clone()));
        // The dispatcher: one wake from the computation fans out to every
        // watcher from here, off the computation's thread.
        let dispatcher = tokio::spawn(frames::dispatch(inner.clone(), shared.clone(), news));
        let opts = shared.options.clone();
        let svc = InspectorServer::new(InspectorService {
            inner: inner.clone(),
            shared: shared.clone(),
        })
        .max_decoding_message_size(opts.max_request_bytes)
        .max_encoding_message_size(opts.max_response_bytes);
        let (health, health_svc) = tonic_health::server::health_reporter();
        health
            .set_serving::<InspectorServer<InspectorService>>()
            .await;
        let reflection = |b: tonic_reflection::server::Builder<'static>| {
            b.register_encoded_file_descriptor_set(idict_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let refl_v1 = match reflection(tonic_reflection::server::Builder::configure()).build_v1() {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(ServeError::Reflection(e.to_string())));
                return;
            }
        };
        let refl_v1alpha =
            match reflection(tonic_reflection::server::Builder::configure()).build_v1alpha() {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(ServeError::Reflection(e.to_string())));
                    return;
                }
            };
        let mut builder = tonic::transport::Server::builder();
        let scheme = if let Some(tls) = &opts.tls {
            let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            let tls_config = tonic::transport::ServerTlsConfig::new()
                .identity(identity)
                .timeout(opts.handshake_timeout);
            match builder.tls_config(tls_config) {
                Ok(b) => builder = b,
                Err(e) => {
                    let _ = ready.send(Err(ServeError::Tls(e.to_string())));
                    return;
                }
            }
            "https"
        } else {
            "http"
        };
        let router = builder
            .initial_stream_window_size(Some(WINDOW_BYTES))
            .initial_connection_window_size(Some(WINDOW_BYTES))
            .max_frame_size(Some(FRAME_BYTES))
            .max_concurrent_streams(Some(opts.max_streams_per_connection))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(admission::GateLayer::new(
                tokens,
                opts.max_request_bytes,
                opts.max_snapshots_per_token,
            ))
            .add_service(health_svc)
            .add_service(refl_v1)
            .add_service(refl_v1alpha)
            .add_service(svc);
        let closing = Arc::new(tokio::sync::Notify::new());
        let closing2 = closing.clone();
        let signal = async move {
            let _ = close.await;
            // Ending the fan-out ends every watch stream.
            dispatcher.abort();
            if let Some(m) = &metrics {
                m.abort();
            }
            trimmer.abort();
            closing2.notify_one();
        };
        let limits = incoming::Limits {
            max_connections: opts.max_connections,
            handshake_timeout: opts.handshake_timeout,
            auth_timeout: opts.auth_timeout,
        };
        let served = match bind {
            Bind::Tcp(addr) => {
                let listener = match listen_tcp(addr) {
                    Ok(l) => l,
                    Err(source) => {
                        let _ = ready.send(Err(ServeError::Bind {
                            what: addr.to_string(),
                            source,
                        }));
                        return;
                    }
                };
                let local = listener.local_addr().map(|a| format!("{scheme}://{a}"));
                let _ = ready.send(local.map_err(|source| ServeError::Bind {
                    what: addr.to_string(),
                    source,
                }));
                let listener = Arc::new(listener);
                let accept = move || {
                    let listener = listener.clone();
                    async move {
                        let (stream, _) = listener.accept().await?;
                        // Not worth failing over: on macOS it fails for a
                        // peer that has already reset, and the error would
                        // back the accept loop off.
                        let _ = stream.set_nodelay(true);
                        Ok(stream)
                    }
                };
                let incoming = incoming::incoming(accept, limits);
                let serve = router.serve_with_incoming_shutdown(incoming, signal);
                with_grace(serve, closing).await
            }
            #[cfg(not(unix))]
            Bind::Unix(path) => {
                let _ = ready.send(Err(ServeError::Bind {
                    what: path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "Unix domain sockets are not served on this platform: bind a TCP address",
                    ),
                }));
                return;
            }
            #[cfg(unix)]
            Bind::Unix(path) => {
                let _ = std::fs::remove_file(&path);
                let listener = match tokio::net::UnixListener::bind(&path) {
                    Ok(l) => l,
                    Err(source) => {
                        let _ = ready.send(Err(ServeError::Bind {
                            what: path.display().to_string(),
                            source,
                        }));
                        return;
                    }
                };
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                }
                let _ = ready.send(Ok(format!("unix:{}", path.display())));
                let listener = Arc::new(listener);
                let accept = move || {
                    let listener = listener.clone();
                    async move { listener.accept().await.map(|(stream, _)| stream) }
                };
                let incoming = incoming::incoming(accept, limits);
                let serve = router.serve_with_incoming_shutdown(incoming, signal);
                with_grace(serve, closing).await
            }
        };
        if let Err(e) = served {
            tracing::error!("idict server stopped: {e}");
        }
    }
}

/// Connections the kernel may hold, handshake done, before the server
/// accepts them. Past it, a client's SYN is dropped and retried a second
/// later: under a flood of reconnecting connections without a token (each
/// accepted only to take another's place) the default of 1,024 filled up
/// and a real client waited that second. The kernel caps it
/// (`net.core.somaxconn`, 4,096 on Linux since 5.4).
const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `addr` (address reuse as `TcpListener::bind` sets it)
/// with `LISTEN_BACKLOG`.
fn listen_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Gives the calling thread (only) a lower CPU priority.
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
            tracing::debug!("cannot lower the server thread's priority: {e}");
        }
    }
    // Windows: a thread priority below normal is the same promise.
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::Threading::{
            GetCurrentThread, SetThreadPriority, THREAD_PRIORITY_BELOW_NORMAL,
        };
        // SAFETY: the pseudo-handle of the calling thread needs no closing.
        if unsafe { SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL) } == 0 {
            tracing::debug!("cannot lower the server thread's priority");
        }
    }
}

/// Runs the server until it stops, giving connections at most `CLOSE_GRACE`
/// after the close signal to finish.
async fn with_grace(
    serve: impl std::future::Future<Output = Result<(), tonic::transport::Error>>,
    closing: Arc<tokio::sync::Notify>,
) -> Result<(), tonic::transport::Error> {
    tokio::select! {
        r = serve => r,
        _ = async { closing.notified().await; tokio::time::sleep(CLOSE_GRACE).await } => Ok(()),
    }
}

impl Server {
    /// Where clients connect: `http://127.0.0.1:PORT` or `unix:/path`.
    pub fn address(&self) -> &str {
        &self.address
    }
    /// Where Prometheus scrapes `/metrics`, if this run serves metrics.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }
    /// The recording's file, if the run is recorded.
    pub fn recording(&self) -> Option<&std::path::Path> {
        self.recording.as_deref()
    }
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }
    /// The run file, if one was written.
    pub fn run_file(&self) -> Option<&std::path::Path> {
        self.run_file.as_deref()
    }
    /// Watch streams open now.
    pub fn watchers(&self) -> usize {
        self.shared.watchers.load(Ordering::Acquire)
    }

    /// A handle that tells how many watch streams are open, for as long as
    /// it is kept (after the server has closed: 0), apart from the server:
    /// what does more work only while watched keeps it.
    pub fn watcher_count(&self) -> WatcherCount {
        WatcherCount(self.shared.clone())
    }

    /// Keeps serving until every watcher has had the final update (their
    /// streams have ended) or `timeout` passes, then closes. A run that has
    /// not ended is finished first: its last state is published as the
    /// final update (status Finished). Returns once the server has closed.
    pub fn wait_then_close(self, timeout: Duration) {
        // A timeout too long to add is as good as none.
        let deadline = Instant::now().checked_add(timeout);
        if !self.inner.status().state.is_terminal() {
            let idict = IDict {
                inner: self.inner.clone(),
            };
            if let Err(e) = idict.notify_update_final() {
                tracing::debug!("finishing run '{}' on close: {e}", self.inner.name);
            }
        }
        while deadline.is_none_or(|d| Instant::now() < d) {
            let done = self.inner.status().state.is_terminal() && self.watchers() == 0;
            if done {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Every watcher is gone (or the time is up): the rest is quick, and
        // the caller gets the memory and the port back when this returns.
        self.close();
    }

    /// Closes now and waits until the server has let go of everything
    /// (its connections get at most `CLOSE_GRACE` to end): for a caller
    /// that needs the memory or the port back. Dropping the `Server`
    /// closes it the same way without waiting.
    pub fn close(mut self) {
        let thread = self.shut_down();
        if let Some(t) = thread {
            let _ = t.join();
        }
        // The server's end ends the recorder's watch: it writes what it
        // has and stops.
        if let Some(r) = self.recorder.take() {
            let _ = r.join();
        }
    }

    /// Tells the server thread to close, removes the run file, and hands
    /// back the thread without waiting for it: open connections get
    /// `CLOSE_GRACE` to end, which must not block a drop (async code, a
    /// GUI closing, a process on its way out).
    fn shut_down(&mut self) -> Option<std::thread::JoinHandle<()>> {
        if let Some(tx) = self.close.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.heartbeat.take() {
            // First: a rewrite after the removal would bring the file back.
            h.stop();
        }
        if let Some(p) = self.run_file.take() {
            let _ = std::fs::remove_file(p);
        }
        if let Some(p) = self.unix_socket.take() {
            let _ = std::fs::remove_file(p);
        }
        self.inner.served.store(false, Ordering::Release);
        self.thread.take()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Detached: the thread ends once its connections have.
        drop(self.shut_down());
    }
}
