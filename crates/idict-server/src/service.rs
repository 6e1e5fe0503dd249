//! The `idict.v1.Inspector` service: each RPC of the wire contract, reading
//! the server's mirror of the published state (refreshed first; the one-off
//! readers never hold the computation's lock for longer than that refresh)
//! and acting on the pause gate and the write queue.

use super::auth::role;
use super::incoming::Peer;
use super::shared::{Shared, updates_per_second};
use super::thinning::Cursors;
use super::watch::Watcher;
use idict_core::history::HistoryPieces;
use idict_core::model::Role;
use idict_core::model::SeekTo;
use idict_core::published::Published;
use idict_core::triggers::TriggerError;
use idict_core::tuning::SAMPLES_PER_CHUNK;
use idict_core::wire;
use idict_core::{ControlAction, Inner, WriteRefused};
use idict_proto::v1 as pb;
use idict_proto::v1::inspector_server::Inspector;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub(crate) struct InspectorService {
    pub inner: Arc<Inner>,
    pub shared: Arc<Shared>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl InspectorService {
    /// The server's mirror brought up to the published state, for a one-off
    /// reader: it then reads the mirror, for as long as it takes, while the
    /// computation's `published` lock was held only for the refresh (the
    /// keys changed since the last frame).
    fn trigger_infos(&self) -> Vec<pb::TriggerInfo> {
        self.inner
            .trigger_list()
            .iter()
            .map(wire::trigger_info_to_proto)
            .collect()
    }

    fn fresh_mirror(&self) -> parking_lot::RwLockReadGuard<'_, Published> {
        self.inner.refresh_mirror(&self.shared.mirror);
        self.shared.mirror.read()
    }

    /// Every key's info (or only the writable keys'), from the mirror. The
    /// writable specs are copied first (declared keys are few, and a
    /// declaration waits for nothing).
    fn key_infos(&self, m: &Published, only_writable: bool) -> Vec<pb::KeyInfo> {
        let specs = self.inner.writable.read().clone();
        let entries = if only_writable {
            let mut v: Vec<_> = (specs.keys())
                .filter_map(|k| Some((Arc::<str>::from(k.as_str()), m.entry(k)?.clone())))
                .collect();
            v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            v
        } else {
            m.sorted_entries("")
        };
        let mut keys: Vec<pb::KeyInfo> = entries
            .into_iter()
            .map(|(k, e)| {
                let spec = specs.get(&*k);
                let (dtype, shape) = match e.value.as_array() {
                    Some(a) => (
                        wire::dtype_to_proto(a.dtype()) as i32,
                        a.shape().iter().map(|&d| d as u64).collect(),
                    ),
                    None => (0, Vec::new()),
                };
                let history_len = m.history.get(&k).map_or(0, |s| s.lock().len() as u64);
                pb::KeyInfo {
                    name: k.to_string(),
                    kind: wire::kind_to_proto(e.value.kind()) as i32,
                    dtype,
                    shape,
                    changed_version: e.version,
                    writable: spec.is_some(),
                    spec: spec.map(spec_to_proto),
                    history_len,
                }
            })
            .collect();
        // Writable keys declared but not yet published.
        for (name, spec) in &specs {
            if m.entry(name).is_none() {
                keys.push(pb::KeyInfo {
                    name: name.clone(),
                    kind: wire::kind_to_proto(spec.kind) as i32,
                    writable: true,
                    spec: Some(spec_to_proto(spec)),
                    ..Default::default()
                });
            }
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        keys
    }
}

fn spec_to_proto(s: &idict_core::write_rules::WritableSpec) -> pb::WritableSpec {
    let info = s.info();
    pb::WritableSpec {
        kind: wire::kind_to_proto(info.kind) as i32,
        min: info.min,
        max: info.max,
        description: info.description,
    }
}

fn origin<T>(req: &Request<T>, client_name: &str) -> String {
    // From the connection's own record: tonic's remote_addr() looks for a
    // TcpConnectInfo, which connections no longer hand out (incoming::Peer).
    let peer = req
        .extensions()
        .get::<Peer>()
        .and_then(|p| p.remote_addr)
        .or_else(|| req.remote_addr())
        .map_or_else(|| "local socket".to_string(), |a| a.to_string());
    let name: String = client_name
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect();
    if name.is_empty() {
        format!("client at {peer}")
    } else {
        format!("{name} at {peer}")
    }
}

#[tonic::async_trait]
impl Inspector for InspectorService {
    async fn get_info(
        &self,
        req: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::RunInfo>, Status> {
        let role = role(&req)?;
        let status = self.inner.status();
        let m = self.fresh_mirror();
        let only_writable = req.get_ref().only_writable_keys;
        let (version, keys) = (m.version, self.key_infos(&m, only_writable));
        let updates_per_second = updates_per_second(&m, self.inner.elapsed());
        drop(m);
        Ok(Response::new(pb::RunInfo {
            name: self.inner.name.clone(),
            pid: std::process::id(),
            host: idict_core::runfile::host_name(),
            started_unix_ms: self.inner.started_unix_ms,
            protocol_version: idict_proto::PROTOCOL_VERSION,
            status: Some(wire::status_to_proto(&status)),
            version,
            keys,
            stats: Some(pb::ServerStats {
                watchers: self.shared.watchers.load(Ordering::Acquire) as u64,
                updates_per_second,
                uptime_seconds: self.inner.elapsed(),
                messages_sent: self.shared.messages_sent.load(Ordering::Relaxed),
                pending_writes: self.inner.pending_writes() as u64,
            }),
            role: wire::role_to_proto(role) as i32,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            replay_of: self.inner.options.replay_of.clone().unwrap_or_default(),
            replay: self
                .inner
                .timeline
                .read()
                .as_deref()
                .map(wire::timeline_to_proto),
            ranks: self.inner.options.ranks,
            triggers: self.trigger_infos(),
        }))
    }

    async fn get_snapshot(
        &self,
        req: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        role(&req)?;
        let prefix = req.into_inner().prefix;
        let status = self.inner.status();
        let p = self.fresh_mirror();
        Ok(Response::new(pb::Snapshot {
            version: p.version,
            status: Some(wire::status_to_proto(&status)),
            entries: p
                .sorted_entries(&prefix)
                .iter()
                .map(|(k, e)| pb::Entry {
                    key: k.to_string(),
                    value: Some(wire::value_to_proto(&e.value)),
                })
                .collect(),
            time: p.time,
        }))
    }

    type WatchStream = BoxStream<pb::WatchUpdate>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // A slot first: a watcher's first state is the costly part.
        let slot = StreamSlot::take(&self.shared, role(&req)?)?;
        let watcher = Watcher::new(self.inner.clone(), self.shared.clone(), req.into_inner());
        let stream = futures::stream::unfold((watcher, slot), |(mut w, slot)| async move {
            let m = w.next().await?;
            Some((Ok(m), (w, slot)))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type GetHistoryStream = BoxStream<pb::HistoryChunk>;

    async fn get_history(
        &self,
        req: Request<pb::GetHistoryRequest>,
    ) -> Result<Response<Self::GetHistoryStream>, Status> {
        let slot = StreamSlot::take(&self.shared, role(&req)?)?;
        let req = req.into_inner();
        if req.keys.len() > MAX_HISTORY_KEYS {
            return Err(Status::invalid_argument(format!(
                "{} keys asked for: at most {MAX_HISTORY_KEYS} a request (none: every key)",
                req.keys.len()
            )));
        }
        for k in &req.keys {
            wire::check_key(k).map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let series: Vec<_> = {
            let p = self.fresh_mirror();
            if req.keys.is_empty() {
                p.histories("")
            } else {
                let mut out = Vec::new();
                for k in &req.keys {
                    match p.history.get(k.as_str()) {
                        Some(s) => out.push((Arc::<str>::from(k.as_str()), s.clone())),
                        None if p.entry(k).is_some() => {
                            return Err(Status::invalid_argument(format!(
                                "key '{k}' has no history: only numeric scalars (int, float, bool) are recorded"
                            )));
                        }
                        None => return Err(Status::not_found(format!("no key '{k}' in this run"))),
                    }
                }
                out
            }
        };
        // Chunks are built lazily, one key's piece at a time as the client
        // takes them.
        // Thinning is reported between the samples sent: from the start of
        // the run, or from the first sample after `since_version`.
        let cursors = Cursors::after(&series, req.since_version);
        let pieces = HistoryPieces::new(series, req.since_version, u64::MAX);
        let packed = req.packed_samples;
        let state = (pieces, cursors, slot);
        let chunks =
            futures::stream::unfold(state, move |(mut pieces, mut cursors, slot)| async move {
                let (key, piece) = pieces.next_piece(SAMPLES_PER_CHUNK)?;
                let chunk = pb::HistoryChunk {
                    thinned: cursors.take(&key, &piece).into_iter().collect(),
                    series: vec![wire::series_to_proto(&key, piece.series, packed)],
                };
                Some((Ok(chunk), (pieces, cursors, slot)))
            });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn control(
        &self,
        req: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlReply>, Status> {
        // Observers were refused at the gate, before the body was read.
        let from = origin(&req, &req.get_ref().client_name);
        let r = req.into_inner();
        let scheduled = match (pb::Action::try_from(r.action), r.at_step) {
            (Ok(pb::Action::Pause), Some(step)) => Some(ControlAction::PauseAt(step)),
            (Ok(pb::Action::Terminate), Some(step)) => Some(ControlAction::TerminateAt(step)),
            (_, Some(_)) => {
                return Err(Status::invalid_argument(
                    "at_step is for PAUSE and TERMINATE only",
                ));
            }
            (_, None) => None,
        };
        let action = match scheduled.ok_or(pb::Action::try_from(r.action)) {
            Ok(scheduled) => scheduled,
            Err(Ok(pb::Action::Pause)) => ControlAction::Pause,
            Err(Ok(pb::Action::Resume)) => ControlAction::Resume,
            Err(Ok(pb::Action::Terminate)) => ControlAction::Terminate,
            Err(Ok(pb::Action::Step)) if r.steps == 0 => {
                return Err(Status::invalid_argument("step needs steps >= 1"));
            }
            Err(Ok(pb::Action::Step)) => ControlAction::Step(r.steps),
            Err(Ok(pb::Action::Seek)) => match r.seek_to {
                Some(pb::control_request::SeekTo::SeekVersion(v)) => {
                    ControlAction::Seek(SeekTo::Version(v))
                }
                Some(pb::control_request::SeekTo::SeekTime(t)) if t.is_finite() => {
                    ControlAction::Seek(SeekTo::Time(t))
                }
                Some(pb::control_request::SeekTo::SeekTime(t)) => {
                    return Err(Status::invalid_argument(format!(
                        "seek_time must be a finite number of seconds, got {t}"
                    )));
                }
                None => {
                    return Err(Status::invalid_argument(
                        "seek needs seek_version or seek_time",
                    ));
                }
            },
            _ => {
                return Err(Status::invalid_argument(format!(
                    "unknown action {}: expected PAUSE, RESUME, STEP, TERMINATE or SEEK",
                    r.action
                )));
            }
        };
        let status = self
            .inner
            .control_action(action)
            .map_err(|e| Status::failed_precondition(e.0))?;
        let status = wire::status_to_proto(&status);
        if let Some(log) = &self.shared.controls {
            let event = pb::ControlEvent {
                action: r.action,
                steps: r.steps,
                origin: from,
                version: self.inner.published.read().version,
                time: self.inner.elapsed(),
                status: Some(status.clone()),
            };
            // The recorder's queue is bounded: a flood of controls is not
            // held in memory (the recording says what the status became).
            match log.try_send(event) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("a control action was not recorded: the recorder is behind");
                }
                // The recorder stopped (and said why).
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        Ok(Response::new(pb::ControlReply {
            status: Some(status),
        }))
    }

    async fn trigger(
        &self,
        req: Request<pb::TriggerRequest>,
    ) -> Result<Response<pb::TriggerReply>, Status> {
        // Observers were refused at the gate, before the body was read.
        use pb::trigger_request::Change;
        let notes = match req.into_inner().change {
            Some(Change::Add(spec)) => {
                if self.inner.status().state.is_terminal() {
                    return Err(Status::failed_precondition(
                        "the run has ended: a trigger would never fire",
                    ));
                }
                let actions = wire::trigger_actions_from_proto(spec.actions);
                self.inner
                    .add_trigger(&spec.name, &spec.condition, actions, false)
                    .map_err(trigger_status)?
            }
            Some(Change::Remove(name)) => {
                self.inner.remove_trigger(&name).map_err(trigger_status)?;
                Vec::new()
            }
            None => return Err(Status::invalid_argument("say what to add or remove")),
        };
        Ok(Response::new(pb::TriggerReply {
            notes,
            triggers: self.trigger_infos(),
        }))
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::SetReply>, Status> {
        // Observers were refused at the gate, before the body was read.
        let origin = origin(&req, &req.get_ref().client_name);
        let r = req.into_inner();
        wire::check_key(&r.key).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let value = r
            .value
            .ok_or_else(|| Status::invalid_argument(format!("no value given for '{}'", r.key)))
            .and_then(|v| {
                wire::value_from_proto(v).map_err(|e| {
                    Status::invalid_argument(format!("bad value for '{}': {e}", r.key))
                })
            })?;
        let (write_id, position) = self
            .inner
            .queue_write_at(&r.key, value, origin, r.at_step)
            .map_err(|e| match e {
                WriteRefused::NotWritable(m) => Status::permission_denied(clip(m)),
                // A validator's text is the run's own code: clipped too.
                WriteRefused::Invalid(m) => Status::invalid_argument(clip(m)),
                WriteRefused::NotRunning(m) => Status::failed_precondition(clip(m)),
                WriteRefused::Busy(m) => Status::resource_exhausted(clip(m)),
                WriteRefused::Removed(m) => Status::failed_precondition(clip(m)),
                WriteRefused::Past(m) => Status::failed_precondition(clip(m)),
            })?;
        Ok(Response::new(pb::SetReply {
            write_id,
            queue_position: position as u64,
        }))
    }
}

/// Keys one GetHistory may name (none means every key).
const MAX_HISTORY_KEYS: usize = 4096;

/// A status message of at most about 1 KiB: it travels in a header, which
/// a client refuses past its limit, and a refusal should say what is wrong,
/// not carry the whole of it.
/// A trigger refused, as the client is told.
fn trigger_status(e: TriggerError) -> Status {
    match e {
        TriggerError::Exists(_) => Status::already_exists(clip(e.to_string())),
        TriggerError::NotFound(_) => Status::not_found(clip(e.to_string())),
        TriggerError::TooMany => Status::resource_exhausted(e.to_string()),
        _ => Status::invalid_argument(clip(e.to_string())),
    }
}

fn clip(mut text: String) -> String {
    const MAX: usize = 1024;
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// One of a token's Watch or GetHistory streams; the slot is free again
/// when the stream is dropped.
struct StreamSlot {
    shared: Arc<Shared>,
    role: usize,
}

impl StreamSlot {
    fn take(shared: &Arc<Shared>, role: Role) -> Result<StreamSlot, Status> {
        let at = match role {
            Role::Observer => 0,
            Role::Controller => 1,
        };
        let cap = shared.options.max_streams_per_token;
        if !idict_core::counters::take_below(&shared.streams_by_role[at], cap) {
            return Err(Status::resource_exhausted(format!(
                "this token already has {cap} Watch and GetHistory streams open \
                 (the run's limit): close one"
            )));
        }
        Ok(StreamSlot {
            shared: shared.clone(),
            role: at,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.shared.streams_by_role[self.role].fetch_sub(1, Ordering::AcqRel);
    }
}
