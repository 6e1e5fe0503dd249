//! The network side: one background task per open run, on the app's tokio
//! runtime, never the UI thread. It connects (resolving the run afresh each
//! time, so a restarted run is found again), takes the whole state and
//! history, applies each update to the run's model and asks for a repaint;
//! it carries out the UI's commands; and when the connection drops it keeps
//! the last state, marks it stale, and reconnects with capped backoff.

use crate::model::{Connection, PendingWrite, RunModel};
use futures::StreamExt;
use idict::Value;
use idict::client::{Client, ClientError, ConnectOptions, Target, WatchOptions};
use idict::runfile::FoundRun;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the UI asks of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Pause,
    Resume,
    Step(u64),
    Terminate,
    Set(String, Value),
    /// Reconnect now (e.g. after the run ended or while backing off).
    Reconnect,
}

/// How to reach a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSpec {
    /// A run name, pid, address or run file.
    pub target: String,
    /// Overrides the token from the run file.
    pub token: Option<String>,
}

/// An open run: its model and the way to send it commands. Dropping it
/// stops the task.
pub struct RunHandle {
    pub spec: OpenSpec,
    pub model: Arc<Mutex<RunModel>>,
    tx: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl RunHandle {
    pub fn send(&self, c: Command) {
        if self.tx.send(c).is_err() {
            self.model.lock().error = Some("the connection task has stopped".into());
        }
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first and the largest wait between reconnection attempts.
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Opens a run: starts its task on `rt`.
pub fn open(rt: &tokio::runtime::Handle, spec: OpenSpec, ctx: egui::Context) -> RunHandle {
    let model = Arc::new(Mutex::new(RunModel::new(&spec.target)));
    let (tx, rx) = mpsc::unbounded_channel();
    let task = rt.spawn(run_task(spec.clone(), model.clone(), rx, ctx));
    RunHandle {
        spec,
        model,
        tx,
        task,
    }
}

enum SessionEnd {
    /// The run finished or failed.
    RunEnded,
    /// The UI closed the run.
    Closed,
    /// Asked to reconnect.
    Reconnect,
}

async fn run_task(
    spec: OpenSpec,
    model: Arc<Mutex<RunModel>>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    ctx: egui::Context,
) {
    let mut backoff = BACKOFF_START;
    loop {
        {
            let mut m = model.lock();
            if !matches!(m.connection, Connection::Disconnected { .. }) {
                m.connection = Connection::Connecting;
            }
        }
        ctx.request_repaint();
        let end = session(&spec, &model, &mut rx, &ctx, &mut backoff).await;
        match end {
            Ok(SessionEnd::Closed) => return,
            Ok(SessionEnd::Reconnect) => continue,
            Ok(SessionEnd::RunEnded) => {
                // Keep the final state; act again only when asked to reconnect.
                ctx.request_repaint();
                loop {
                    match rx.recv().await {
                        None => return,
                        Some(Command::Reconnect) => break,
                        Some(_) => model.lock().error = Some("the run has ended".into()),
                    }
                    ctx.request_repaint();
                }
            }
            Err(e) => {
                {
                    let mut m = model.lock();
                    let since = match &m.connection {
                        Connection::Disconnected { since, .. } => *since,
                        _ => Instant::now(),
                    };
                    m.connection = Connection::Disconnected {
                        since,
                        error: e.to_string(),
                    };
                }
                ctx.request_repaint();
                // Wait out the backoff, still answering the UI.
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        c = rx.recv() => match c {
                            None => return,
                            Some(Command::Reconnect) => break,
                            Some(_) => {
                                model.lock().error = Some("not connected: the run is unreachable".into());
                                ctx.request_repaint();
                            }
                        }
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// The CA certificate (PEM) for runs served over TLS, from `--ca`.
static TLS_CA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Trust this CA (PEM) for `https://` runs; set once, at start.
pub fn set_tls_ca(pem: Vec<u8>) {
    let _ = TLS_CA.set(pem);
}

fn connect_options() -> ConnectOptions {
    let user = std::env::var("USER").unwrap_or_default();
    let defaults = ConnectOptions::default();
    ConnectOptions {
        client_name: format!("idict-inspector {user}@{}", idict::runfile::host_name()),
        connect_timeout: Duration::from_secs(3),
        tls_ca_pem: TLS_CA.get().cloned().or(defaults.tls_ca_pem.clone()),
        ..defaults
    }
}

async fn session(
    spec: &OpenSpec,
    model: &Arc<Mutex<RunModel>>,
    rx: &mut mpsc::UnboundedReceiver<Command>,
    ctx: &egui::Context,
    backoff: &mut Duration,
) -> Result<SessionEnd, ClientError> {
    // Resolving reads run files: on the blocking pool, not this worker.
    let mut target: Target = Client::resolve(&spec.target).await?;
    if spec.token.is_some() {
        target.token = spec.token.clone();
    }
    let client = Client::connect_target(target, connect_options()).await?;
    let info = client.info().await?;
    let mut stream = client
        .watch(WatchOptions {
            with_history: true,
            ..WatchOptions::default()
        })
        .await?;
    {
        let mut m = model.lock();
        m.apply_info(&info);
        m.address = client.address().to_string();
        m.connection = Connection::Connected;
        m.error = None;
    }
    *backoff = BACKOFF_START;
    ctx.request_repaint();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            u = stream.next() => match u {
                Some(Ok(u)) => {
                    let last = u.last;
                    model.lock().apply(&u, Instant::now());
                    ctx.request_repaint();
                    if last {
                        return Ok(SessionEnd::RunEnded);
                    }
                }
                Some(Err(e)) => return Err(e),
                None => return Err(ClientError::Disconnected("the run's server closed the stream".into())),
            },
            c = rx.recv() => match c {
                None => return Ok(SessionEnd::Closed),
                Some(Command::Reconnect) => return Ok(SessionEnd::Reconnect),
                Some(c) => {
                    tokio::spawn(execute(client.clone(), c, model.clone(), ctx.clone()));
                }
            },
            _ = tick.tick() => {
                let (client, model, ctx) = (client.clone(), model.clone(), ctx.clone());
                tokio::spawn(async move {
                    if let Ok(info) = client.info().await {
                        model.lock().apply_info(&info);
                        ctx.request_repaint();
                    }
                });
            }
        }
    }
}

/// Carries out one command, recording its outcome in the model.
async fn execute(client: Client, cmd: Command, model: Arc<Mutex<RunModel>>, ctx: egui::Context) {
    let result = match &cmd {
        Command::Pause => client.pause().await.map(drop),
        Command::Resume => client.resume().await.map(drop),
        Command::Step(n) => client.step(*n).await.map(drop),
        Command::Terminate => client.terminate().await.map(drop),
        Command::Set(key, value) => match client.set(key, value.clone()).await {
            Ok(receipt) => {
                let mut m = model.lock();
                m.write_errors.remove(key);
                if !m.applied_recently(receipt.write_id) {
                    m.pending.insert(
                        receipt.write_id,
                        PendingWrite {
                            key: key.clone(),
                            value: value.clone(),
                        },
                    );
                }
                Ok(())
            }
            Err(e) => {
                model.lock().write_errors.insert(key.clone(), e.to_string());
                ctx.request_repaint();
                return;
            }
        },
        Command::Reconnect => Ok(()),
    };
    model.lock().error = result.err().map(|e| e.to_string());
    ctx.request_repaint();
}

/// The live runs on this machine, refreshed every two seconds.
pub fn watch_local_runs(
    rt: &tokio::runtime::Handle,
    ctx: egui::Context,
) -> Arc<Mutex<Vec<FoundRun>>> {
    let runs: Arc<Mutex<Vec<FoundRun>>> = Arc::new(Mutex::new(Vec::new()));
    let shared = runs.clone();
    rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let found = tokio::task::spawn_blocking(idict::runfile::list_runs)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let changed = {
                let mut r = shared.lock();
                let changed = r.iter().map(|x| &x.path).ne(found.iter().map(|x| &x.path));
                *r = found;
                changed
            };
            if changed {
                ctx.request_repaint();
            }
        }
    });
    runs
}
