//! `idict::client`: the typed async client every other part (CLI, GUI,
//! benchmarks) uses to reach a run. It talks only through the v1 wire
//! contract and turns gRPC statuses into a [`ClientError`] a caller can
//! match on.

mod resolve;
pub mod ssh;

pub use resolve::{Target, resolve, resolve_default};

use futures::Stream;
use idict_core::history::Series;
use idict_core::model::{
    AppliedWrite, KeyInfo, LogMessage, Role, Status, Thinned, TriggerActions, TriggerInfo,
};
use idict_core::part_joiner::{PartError, PartJoiner};
use idict_core::value::Value;
use idict_core::wire::{self, WireError};
use idict_proto::v1 as pb;
use idict_proto::v1::inspector_client::InspectorClient;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tonic::codegen::InterceptedService;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

/// What can go wrong talking to a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("run not found: {0}")]
    RunNotFound(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("refused in the run's state: {0}")]
    FailedPrecondition(String),
    #[error("the run is busy: {0}")]
    ResourceExhausted(String),
    #[error("cannot reach the run at {address}: {message}")]
    Unreachable { address: String, message: String },
    #[error("disconnected: {0}")]
    Disconnected(String),
    #[error("bad address '{0}'")]
    BadAddress(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("unexpected data from the run: {0}")]
    Protocol(String),
    #[error("{code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let message = s.message().to_string();
        match s.code() {
            Code::NotFound => ClientError::NotFound(message),
            Code::Unauthenticated => ClientError::Unauthenticated(message),
            Code::PermissionDenied => ClientError::PermissionDenied(message),
            Code::InvalidArgument => ClientError::InvalidArgument(message),
            Code::FailedPrecondition => ClientError::FailedPrecondition(message),
            Code::ResourceExhausted => ClientError::ResourceExhausted(message),
            Code::Unavailable | Code::Cancelled | Code::Aborted => {
                ClientError::Disconnected(message)
            }
            code => ClientError::Rpc { code, message },
        }
    }
}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

impl From<PartError> for ClientError {
    fn from(e: PartError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

/// Adds the bearer token and client name to every request.
#[derive(Clone)]
pub(crate) struct Credentials {
    token: Option<MetadataValue<Ascii>>,
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.token {
            r.metadata_mut().insert("authorization", t.clone());
        }
        Ok(r)
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Overrides the token from the run file or `IDICT_TOKEN`.
    pub token: Option<String>,
    /// Shown to the run as the origin of steering writes.
    pub client_name: String,
    pub connect_timeout: Duration,
    /// Largest message accepted from the run (one array must fit). Default 1 GiB.
    pub max_receive_bytes: usize,
    /// Largest request sent. Default 64 MiB.
    pub max_send_bytes: usize,
    /// PEM certificate(s) of the CA that signed a TLS run's certificate
    /// (needed for `https://` addresses). Default: the file `$IDICT_CA` names.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// The name to check the run's certificate against (default: the host
    /// of the address).
    pub tls_domain: Option<String>,
    /// For `ssh://` runs: the ssh command and the far side's idict.
    pub ssh: ssh::SshOptions,
}

/// "idict-client alice@login1": who is connecting, for the run's log of
/// applied writes (`program` is what connects).
pub fn client_name(program: &str) -> String {
    // USER on Unix, USERNAME on Windows.
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default();
    format!("{program} {user}@{}", idict_core::runfile::host_name())
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            token: None,
            client_name: client_name("idict-client"),
            connect_timeout: Duration::from_secs(5),
            max_receive_bytes: 1 << 30,
            max_send_bytes: 64 << 20,
            tls_ca_pem: std::env::var_os("IDICT_CA")
                .filter(|p| !p.is_empty())
                .and_then(|p| std::fs::read(p).ok()),
            tls_domain: None,
            ssh: ssh::SshOptions::default(),
        }
    }
}

/// The run's identity, status and keys (GetInfo).
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub name: String,
    pub pid: u32,
    pub host: String,
    pub started_unix_ms: i64,
    pub protocol_version: u32,
    pub status: Status,
    pub version: u64,
    pub keys: Vec<KeyInfo>,
    pub watchers: u64,
    pub updates_per_second: f64,
    pub uptime_seconds: f64,
    pub pending_writes: u64,
    /// The role this client's token has.
    pub role: Option<Role>,
    pub server_version: String,
    /// The recording this run replays, if it is a replay.
    pub replay_of: Option<String>,
    /// A replay's timeline, to scrub with [`Client::seek`].
    pub replay: Option<idict_core::model::ReplayTimeline>,
    /// The processes the run is made of (an MPI job's ranks); 1 for one.
    pub ranks: u32,
    /// The run's triggers, in the order they were added.
    pub triggers: Vec<TriggerInfo>,
}

/// What the run said of a trigger added ([`Client::add_trigger`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerAdded {
    /// E.g. a key the run does not have yet: the trigger waits for it.
    pub notes: Vec<String>,
    /// The run's triggers now.
    pub triggers: Vec<TriggerInfo>,
}

/// The run's published state at one version (GetSnapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: u64,
    pub status: Status,
    /// Seconds since the run started.
    pub time: f64,
    pub values: BTreeMap<String, Value>,
}

/// One delivered update of a watch. The first (`reset`) holds the whole
/// state; later ones what changed, coalesced over `version`s.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub version: u64,
    /// Drop the state you have: `changed` is all of it.
    pub reset: bool,
    /// Sorted by key.
    pub changed: Vec<(String, Value)>,
    pub removed: Vec<String>,
    /// New samples of scalar keys since the previous update.
    pub samples: Vec<(String, Series)>,
    pub status: Status,
    pub messages: Vec<LogMessage>,
    pub applied: Vec<AppliedWrite>,
    /// Seconds since the run started, at `version`.
    pub time: f64,
    /// The last update: the run finished or failed; the stream ends.
    pub last: bool,
    /// Samples the run's histories thinned before they could be sent: with
    /// `samples`, they account for every sample published since the watch
    /// began (or since the start, with `with_history`).
    pub thinned: Vec<Thinned>,
}

/// What GetHistory returned: the samples by key, and where they were
/// thinned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub series: BTreeMap<String, Series>,
    pub thinned: Vec<Thinned>,
}

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Resume from this version (0: start with the full state).
    pub since_version: u64,
    /// Only keys with this prefix.
    pub prefix: String,
    /// Include every scalar's whole history in the first update.
    pub with_history: bool,
}

/// A steering write accepted by the run (not yet applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteReceipt {
    /// Matches [`AppliedWrite::write_id`] once applied.
    pub write_id: u64,
    pub queue_position: u64,
}

/// A connection to one run. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    rpc: InspectorClient<InterceptedService<Channel, Credentials>>,
    target: Target,
    client_name: String,
    /// Most bytes of one message, and of one value sent in parts.
    max_receive_bytes: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.target.address)
            .finish()
    }
}

impl Client {
    /// [`resolve`] for async callers: it reads the runs directory and run
    /// files, blocking I/O that would stall the async worker and every other
    /// task on it (a run file on a slow network home can take seconds), so
    /// it runs on tokio's blocking pool. The sync [`resolve`] stays for
    /// callers that are not async.
    pub async fn resolve(run: &str) -> Result<Target, ClientError> {
        let run = run.to_owned();
        tokio::task::spawn_blocking(move || resolve(&run))
            .await
            .map_err(|e| ClientError::RunNotFound(format!("resolving the run failed: {e}")))?
    }

    /// Connects to RUN: an address, a run name, a pid or a run file.
    pub async fn connect(run: &str) -> Result<Client, ClientError> {
        Self::connect_with(run, ConnectOptions::default()).await
    }

    pub async fn connect_with(run: &str, opts: ConnectOptions) -> Result<Client, ClientError> {
        let mut target = Self::resolve(run).await?;
        if let Some(token) = &opts.token {
            target = target.with_token(token.clone())?;
        }
        Self::connect_target(target, opts).await
    }

    /// Connects to a resolved target.
    pub async fn connect_target(
        target: Target,
        opts: ConnectOptions,
    ) -> Result<Client, ClientError> {
        if target.address.starts_with("ssh://") {
            return Self::connect_ssh(target, opts).await;
        }
        let mut endpoint = Endpoint::from_shared(target.address.clone())
            .map_err(|_| ClientError::BadAddress(target.address.clone()))?;
        if target.address.starts_with("https://") {
            let ca = opts.tls_ca_pem.as_ref().ok_or_else(|| {
                ClientError::Tls(format!(
                    "{} is served over TLS: give the CA certificate that signed it (--ca FILE or IDICT_CA)",
                    target.address
                ))
            })?;
            let mut tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca));
            if let Some(domain) = &opts.tls_domain {
                tls = tls.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| ClientError::Tls(error_chain(&e)))?;
        }
        let endpoint = endpoint
            .connect_timeout(opts.connect_timeout)
            .tcp_nodelay(true);
        let endpoint = tuned(endpoint);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| ClientError::Unreachable {
                address: target.address.clone(),
                message: error_chain(&e),
            })?;
        let token = target.token.clone();
        Self::over(channel, target, token.as_deref(), opts)
    }

    /// A run on another host, through `ssh ... idict bridge RUN` (see
    /// [`ssh`]). The token is the one the bridge found (a `--token` given
    /// with the target wins).
    async fn connect_ssh(target: Target, opts: ConnectOptions) -> Result<Client, ClientError> {
        let t = ssh::parse(&target.address)?;
        if t.run.is_empty() {
            return Err(ClientError::BadAddress(format!(
                "{}: name the run on that host, e.g. ssh://{}/heat",
                target.address,
                t.destination()
            )));
        }
        // ssh itself may take a while (a ProxyJump, a slow node).
        let wait = opts.connect_timeout.max(Duration::from_secs(20));
        let first = ssh::open(&t, wait, &opts.ssh).await?;
        let hello = first.hello.clone();
        let first_hello = first.hello;
        let spare = std::sync::Arc::new(parking_lot::Mutex::new(Some(first.stream)));
        let ssh_opts = opts.ssh.clone();
        let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
            let (t, hello, spare) = (t.clone(), first_hello.clone(), spare.clone());
            let ssh_opts = ssh_opts.clone();
            async move {
                // The first connection is the one just opened; a reconnect
                // opens another, to the same run only.
                if let Some(s) = spare.lock().take() {
                    return Ok(hyper_util::rt::TokioIo::new(s));
                }
                let again = ssh::open(&t, wait, &ssh_opts).await?;
                if (again.hello.pid, again.hello.started_unix_ms)
                    != (hello.pid, hello.started_unix_ms)
                {
                    return Err(ClientError::Disconnected(format!(
                        "the run '{}' on {} is another one now (pid {}): connect again",
                        t.run, t.host, again.hello.pid
                    )));
                }
                Ok(hyper_util::rt::TokioIo::new(again.stream))
            }
        });
        let channel = tuned(Endpoint::from_static("http://idict-bridge").connect_timeout(wait))
            .connect_with_connector(connector)
            .await
            .map_err(|e| ClientError::Unreachable {
                address: target.address.clone(),
                message: error_chain(&e),
            })?;
        let token = target
            .token
            .clone()
            .or(hello.controller_token.clone())
            .or(hello.observer_token.clone());
        Self::over(channel, target, token.as_deref(), opts)
    }

    /// The client over a connected channel, sending `token`.
    fn over(
        channel: Channel,
        target: Target,
        token: Option<&str>,
        opts: ConnectOptions,
    ) -> Result<Client, ClientError> {
        let token = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| {
                        ClientError::Unauthenticated(
                            "the token has characters a header cannot carry".into(),
                        )
                    })?,
            ),
            None => None,
        };
        let rpc = InspectorClient::with_interceptor(channel, Credentials { token })
            .max_decoding_message_size(opts.max_receive_bytes)
            .max_encoding_message_size(opts.max_send_bytes);
        Ok(Client {
            rpc,
            target,
            client_name: opts.client_name,
            max_receive_bytes: opts.max_receive_bytes,
        })
    }

    /// Where this client is connected.
    pub fn address(&self) -> &str {
        &self.target.address
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The run's info, with every key's.
    pub async fn info(&self) -> Result<RunInfo, ClientError> {
        self.info_with(false).await
    }

    /// The run's info listing only the keys clients may set: what a view
    /// that polls the info needs, at a cost that does not grow with the
    /// run's keys.
    pub async fn info_writable_keys(&self) -> Result<RunInfo, ClientError> {
        self.info_with(true).await
    }

    async fn info_with(&self, only_writable_keys: bool) -> Result<RunInfo, ClientError> {
        let r = self
            .rpc
            .clone()
            .get_info(pb::GetInfoRequest { only_writable_keys })
            .await?
            .into_inner();
        let stats = r.stats.unwrap_or_default();
        Ok(RunInfo {
            name: r.name,
            pid: r.pid,
            host: r.host,
            started_unix_ms: r.started_unix_ms,
            protocol_version: r.protocol_version,
            status: wire::status_from_proto(r.status)?,
            version: r.version,
            keys: r
                .keys
                .into_iter()
                .map(wire::key_info_from_proto)
                .collect::<Result<_, _>>()?,
            watchers: stats.watchers,
            updates_per_second: stats.updates_per_second,
            uptime_seconds: stats.uptime_seconds,
            pending_writes: stats.pending_writes,
            role: wire::role_from_proto(r.role),
            server_version: r.server_version,
            replay_of: Some(r.replay_of).filter(|f| !f.is_empty()),
            replay: r.replay.map(wire::timeline_from_proto),
            ranks: r.ranks.max(1),
            triggers: r
                .triggers
                .into_iter()
                .map(wire::trigger_info_from_proto)
                .collect(),
        })
    }

    /// Adds a trigger to the run (a controller's token): when `condition`
    /// becomes true at an update, the run logs it and does `actions`. A
    /// bad condition is `InvalidArgument` naming the column; a name in use
    /// `AlreadyExists`.
    pub async fn add_trigger(
        &self,
        name: &str,
        condition: &str,
        actions: &TriggerActions,
    ) -> Result<TriggerAdded, ClientError> {
        use pb::trigger_request::Change;
        let r = self
            .trigger_request(Change::Add(pb::TriggerSpec {
                name: name.to_owned(),
                condition: condition.to_owned(),
                actions: Some(wire::trigger_actions_to_proto(actions)),
            }))
            .await?;
        Ok(TriggerAdded {
            notes: r.notes,
            triggers: r
                .triggers
                .into_iter()
                .map(wire::trigger_info_from_proto)
                .collect(),
        })
    }

    /// Removes the run's trigger called `name` (`NotFound` if none);
    /// returns the triggers left.
    pub async fn remove_trigger(&self, name: &str) -> Result<Vec<TriggerInfo>, ClientError> {
        use pb::trigger_request::Change;
        let r = self
            .trigger_request(Change::Remove(name.to_owned()))
            .await?;
        Ok(r.triggers
            .into_iter()
            .map(wire::trigger_info_from_proto)
            .collect())
    }

    async fn trigger_request(
        &self,
        change: pb::trigger_request::Change,
    ) -> Result<pb::TriggerReply, ClientError> {
        let req = pb::TriggerRequest {
            change: Some(change),
        };
        Ok(self.rpc.clone().trigger(req).await?.into_inner())
    }

    /// The current state, optionally only keys starting with `prefix`.
    pub async fn snapshot(&self, prefix: &str) -> Result<Snapshot, ClientError> {
        let r = self
            .rpc
            .clone()
            .get_snapshot(pb::GetSnapshotRequest {
                prefix: prefix.to_owned(),
            })
            .await?
            .into_inner();
        Ok(Snapshot {
            version: r.version,
            status: wire::status_from_proto(r.status)?,
            time: r.time,
            values: entries(r.entries)?.into_iter().collect(),
        })
    }

    /// A stream of updates: first the whole state (one `reset` update, the
    /// chunks already joined), then one per delivery until the run ends.
    pub async fn watch(
        &self,
        opts: WatchOptions,
    ) -> Result<
        impl Stream<Item = Result<Update, ClientError>> + Send + Unpin + 'static + use<>,
        ClientError,
    > {
        let stream = self
            .rpc
            .clone()
            .watch(pb::WatchRequest {
                since_version: opts.since_version,
                prefix: opts.prefix,
                with_history: opts.with_history,
                packed_samples: true,
            })
            .await?
            .into_inner();
        Ok(Box::pin(join_chunks(stream, self.max_receive_bytes)))
    }

    /// The recorded samples of `keys` (all scalar keys if empty) after
    /// version `since`.
    pub async fn history(
        &self,
        keys: &[&str],
        since: u64,
    ) -> Result<BTreeMap<String, Series>, ClientError> {
        Ok(self.history_thinned(keys, since).await?.series)
    }

    /// Like [`history`](Self::history), with where the history was
    /// thinned (between the samples returned).
    pub async fn history_thinned(&self, keys: &[&str], since: u64) -> Result<History, ClientError> {
        let mut stream = self
            .rpc
            .clone()
            .get_history(pb::GetHistoryRequest {
                keys: keys.iter().map(|k| k.to_string()).collect(),
                since_version: since,
                packed_samples: true,
            })
            .await?
            .into_inner();
        let mut out = History::default();
        while let Some(chunk) = stream.message().await? {
            for s in chunk.series {
                let (k, s) = wire::series_from_proto(s)?;
                out.series.entry(k).or_default().extend(&s);
            }
            out.thinned
                .extend(chunk.thinned.into_iter().map(wire::thinned_from_proto));
        }
        Ok(out)
    }

    async fn control(&self, action: pb::Action, steps: u64) -> Result<Status, ClientError> {
        self.control_request(pb::ControlRequest {
            action: action as i32,
            steps,
            client_name: self.client_name.clone(),
            seek_to: None,
            at_step: None,
        })
        .await
    }

    async fn control_at(&self, action: pb::Action, step: u64) -> Result<Status, ClientError> {
        self.control_request(pb::ControlRequest {
            action: action as i32,
            steps: 0,
            client_name: self.client_name.clone(),
            seek_to: None,
            at_step: Some(step),
        })
        .await
    }

    async fn control_request(&self, req: pb::ControlRequest) -> Result<Status, ClientError> {
        let r = self.rpc.clone().control(req).await?.into_inner();
        Ok(wire::status_from_proto(r.status)?)
    }

    /// Moves a replay to a recorded version or time (a live run refuses).
    pub async fn seek(&self, to: idict_core::model::SeekTo) -> Result<Status, ClientError> {
        use pb::control_request::SeekTo as To;
        self.control_request(pb::ControlRequest {
            action: pb::Action::Seek as i32,
            steps: 0,
            client_name: self.client_name.clone(),
            seek_to: Some(match to {
                idict_core::model::SeekTo::Version(v) => To::SeekVersion(v),
                idict_core::model::SeekTo::Time(t) => To::SeekTime(t),
            }),
            at_step: None,
        })
        .await
    }

    pub async fn pause(&self) -> Result<Status, ClientError> {
        self.control(pb::Action::Pause, 0).await
    }
    pub async fn resume(&self) -> Result<Status, ClientError> {
        self.control(pb::Action::Resume, 0).await
    }
    /// Lets `n` more `wait()` calls pass, then holds (pauses a running run).
    pub async fn step(&self, n: u64) -> Result<Status, ClientError> {
        self.control(pb::Action::Step, n).await
    }
    pub async fn terminate(&self) -> Result<Status, ClientError> {
        self.control(pb::Action::Terminate, 0).await
    }
    /// Pauses the run when it has done `step` steps (`Status::step`): it
    /// holds in that `wait()`. Refused (`FailedPrecondition`) when past;
    /// replaces a pause scheduled before.
    pub async fn pause_at(&self, step: u64) -> Result<Status, ClientError> {
        self.control_at(pb::Action::Pause, step).await
    }
    /// Terminates the run when it has done `step` steps, likewise.
    pub async fn terminate_at(&self, step: u64) -> Result<Status, ClientError> {
        self.control_at(pb::Action::Terminate, step).await
    }

    /// Asks the run to set a writable key; applied at its next safe point.
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Value>,
    ) -> Result<WriteReceipt, ClientError> {
        self.set_request(key, value.into(), None).await
    }

    /// Like `set`, applied at the `wait()` where the run has done `step`
    /// steps; refused (`FailedPrecondition`) when that step is past.
    pub async fn set_at(
        &self,
        key: &str,
        value: impl Into<Value>,
        step: u64,
    ) -> Result<WriteReceipt, ClientError> {
        self.set_request(key, value.into(), Some(step)).await
    }

    async fn set_request(
        &self,
        key: &str,
        value: Value,
        at_step: Option<u64>,
    ) -> Result<WriteReceipt, ClientError> {
        let r = self
            .rpc
            .clone()
            .set(pb::SetRequest {
                key: key.to_owned(),
                value: Some(wire::value_to_proto(&value)),
                client_name: self.client_name.clone(),
                at_step,
            })
            .await?
            .into_inner();
        Ok(WriteReceipt {
            write_id: r.write_id,
            queue_position: r.queue_position,
        })
    }
}

/// An error and its causes, each said once: many errors already end with
/// their cause's text ("tcp connect error: Connection refused"), and
/// appending it again made "os error 2" appear three times.
/// HTTP/2 as every connection to a run uses it: the windows and frames the
/// server uses, and keep-alives so a dead link is found.
fn tuned(endpoint: Endpoint) -> Endpoint {
    endpoint
        .initial_stream_window_size(Some(idict_core::tuning::WINDOW_BYTES))
        .initial_connection_window_size(Some(idict_core::tuning::WINDOW_BYTES))
        .max_frame_size(Some(idict_core::tuning::FRAME_BYTES))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

fn entries(es: Vec<pb::Entry>) -> Result<Vec<(String, Value)>, ClientError> {
    es.into_iter()
        .map(|e| {
            let v = e.value.ok_or(WireError::MissingValue)?;
            Ok((e.key, wire::value_from_proto(v)?))
        })
        .collect()
}

fn update_from_proto(m: pb::WatchUpdate) -> Result<Update, ClientError> {
    Ok(Update {
        version: m.version,
        reset: m.reset,
        changed: entries(m.changed)?,
        removed: m.removed,
        samples: m
            .samples
            .into_iter()
            .map(wire::series_from_proto)
            .collect::<Result<_, _>>()?,
        status: wire::status_from_proto(m.status)?,
        messages: m
            .messages
            .into_iter()
            .map(wire::message_from_proto)
            .collect(),
        applied: m
            .applied
            .into_iter()
            .map(wire::applied_from_proto)
            .collect::<Result<_, _>>()?,
        time: m.time,
        last: m.last,
        thinned: m
            .thinned
            .into_iter()
            .map(wire::thinned_from_proto)
            .collect(),
    })
}

/// Joins the chunks of a full state (`more`) into one update, and maps
/// stream errors; a clean end after the last update ends the stream.
fn join_chunks(
    stream: tonic::Streaming<pb::WatchUpdate>,
    max_value_bytes: usize,
) -> impl Stream<Item = Result<Update, ClientError>> + Send + 'static {
    let parts = PartJoiner::new(max_value_bytes);
    futures::stream::unfold(
        (stream, false, parts),
        |(mut s, ended, mut parts)| async move {
            if ended {
                return None;
            }
            let mut acc: Option<Update> = None;
            // Where each key's samples sit in `acc`: a first state comes in
            // many chunks, and finding a key by a scan of the keys so far
            // made joining 100,000 keys take 25 s (quadratic).
            let mut sample_index: HashMap<String, usize> = HashMap::new();
            let mut joined_parts = false;
            loop {
                let mut m = match s.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) if acc.is_none() => return None,
                    Ok(None) => {
                        // A state cut short must not pass for a whole one.
                        let e =
                            ClientError::Disconnected("the stream ended inside an update".into());
                        return Some((Err(e), (s, true, parts)));
                    }
                    Err(e) => return Some((Err(ClientError::from(e)), (s, true, parts))),
                };
                let more = m.more;
                let part = m.part.take();
                let mut u = match update_from_proto(m) {
                    Ok(u) => u,
                    Err(e) => return Some((Err(e), (s, true, parts))),
                };
                if let Some(part) = part {
                    match parts.add(part) {
                        Ok(Some(entry)) => {
                            u.changed.push(entry);
                            joined_parts = true;
                        }
                        Ok(None) => {}
                        Err(e) => return Some((Err(e.into()), (s, true, parts))),
                    }
                }
                if !more && parts.is_open() {
                    let e = ClientError::Protocol("an update ended inside a value's parts".into());
                    return Some((Err(e), (s, true, parts)));
                }
                let merged = match acc.take() {
                    None => {
                        if more {
                            sample_index.extend(
                                u.samples
                                    .iter()
                                    .enumerate()
                                    .map(|(i, (k, _))| (k.clone(), i)),
                            );
                        }
                        u
                    }
                    Some(mut a) => {
                        a.version = u.version;
                        a.changed.extend(u.changed);
                        a.removed.extend(u.removed);
                        for (k, ser) in u.samples {
                            match sample_index.get(&k) {
                                Some(&i) if i < a.samples.len() => a.samples[i].1.extend(&ser),
                                _ => {
                                    sample_index.insert(k.clone(), a.samples.len());
                                    a.samples.push((k, ser));
                                }
                            }
                        }
                        a.messages.extend(u.messages);
                        a.applied.extend(u.applied);
                        a.thinned.extend(u.thinned);
                        a.status = u.status;
                        a.time = u.time;
                        a.last = u.last;
                        a
                    }
                };
                if !more {
                    let mut merged = merged;
                    if joined_parts {
                        merged.changed.sort_by(|a, b| a.0.cmp(&b.0));
                    }
                    let last = merged.last;
                    return Some((Ok(merged), (s, last, parts)));
                }
                acc = Some(merged);
            }
        },
    )
}

/// Applies updates to a local copy of the state; what a GUI or CLI keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub version: u64,
    pub values: BTreeMap<String, Value>,
    pub status: Option<Status>,
}

impl State {
    pub fn apply(&mut self, u: &Update) {
        if u.reset {
            self.values.clear();
        }
        for (k, v) in &u.changed {
            self.values.insert(k.clone(), v.clone());
        }
        for k in &u.removed {
            self.values.remove(k);
        }
        self.version = u.version;
        self.status = Some(u.status.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_says_each_cause_once() {
        #[derive(Debug)]
        struct Wrap(&'static str, Option<Box<Wrap>>);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|w| w as _)
            }
        }
        let e = Wrap(
            "tcp connect error: No such file (os error 2)",
            Some(Box::new(Wrap(
                "tcp connect error",
                Some(Box::new(Wrap("No such file (os error 2)", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "tcp connect error: No such file (os error 2)"
        );
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(matches!(
            ClientError::from(tonic::Status::permission_denied("x")),
            ClientError::PermissionDenied(m) if m == "x"
        ));
        assert!(matches!(
            ClientError::from(tonic::Status::unauthenticated("x")),
            ClientError::Unauthenticated(_)
        ));
        assert!(matches!(
            ClientError::from(tonic::Status::unavailable("x")),
            ClientError::Disconnected(_)
        ));
    }
}
