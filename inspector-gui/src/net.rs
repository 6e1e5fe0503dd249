//! The network side: one background task per open run, on the app's tokio
//! runtime, never the UI thread. It connects (resolving the run afresh each
//! time, on the blocking pool, so a restarted run is found again and a slow
//! runs directory stalls no other run), takes the whole state and history,
//! puts each update into the run's inbox and asks for a repaint; it carries
//! out the UI's commands; and when the connection drops it says so (the UI
//! keeps the last state, marked stale) and reconnects with capped backoff.
//! It holds the inbox's lock only to add to it, never across an await.

use crate::model::{Connection, Inbox, PendingWrite, WriteOutcome};
use futures::StreamExt;
use idict::Value;
use idict::client::{Client, ClientError, ConnectOptions, WatchOptions};
use idict::runfile::FoundRun;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the UI asks of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Pause,
    /// Pauses when the run has done this many steps.
    PauseAt(u64),
    Resume,
    Step(u64),
    Terminate,
    /// Moves a replay to a recorded version or time.
    Seek(idict::SeekTo),
    Set(String, Value),
    /// Adds a trigger to the run, or removes one by name.
    AddTrigger {
        name: String,
        condition: String,
        actions: idict::TriggerActions,
    },
    RemoveTrigger(String),
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

/// An open run: the inbox its task fills and the way to send it commands.
/// Dropping it stops the task.
pub struct RunHandle {
    pub spec: OpenSpec,
    /// What the task has learnt and the UI has not yet taken.
    pub inbox: Arc<Mutex<Inbox>>,
    tx: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

/// The run's task is gone (it never stops on its own; only a panic ends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskStopped;

impl RunHandle {
    pub fn send(&self, c: Command) -> Result<(), TaskStopped> {
        self.tx.send(c).map_err(|_| TaskStopped)
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
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let (tx, rx) = mpsc::unbounded_channel();
    let task = rt.spawn(run_task(spec.clone(), inbox.clone(), rx, ctx));
    RunHandle {
        spec,
        inbox,
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
    inbox: Arc<Mutex<Inbox>>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    ctx: egui::Context,
) {
    let mut backoff = BACKOFF_START;
    // Since when the run has been unreachable, across failed attempts.
    let mut lost_since: Option<Instant> = None;
    let mut attempts = 0u32;
    let mut last_error = String::new();
    loop {
        match lost_since {
            None => inbox.lock().set_connection(Connection::Connecting),
            // Say that an attempt is under way (Reconnect showed nothing).
            Some(since) => inbox.lock().set_connection(Connection::Disconnected {
                since,
                error: last_error.clone(),
                retry_at: Instant::now(),
                attempts,
            }),
        }
        ctx.request_repaint();
        let end = session(&spec, &inbox, &mut rx, &ctx, &mut backoff, &mut lost_since).await;
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
                        Some(_) => inbox.lock().set_error(Some("the run has ended".into())),
                    }
                    ctx.request_repaint();
                }
            }
            Err(e) => {
                if lost_since.is_none() {
                    attempts = 0;
                }
                let since = *lost_since.get_or_insert_with(Instant::now);
                attempts += 1;
                last_error = e.to_string();
                inbox.lock().set_connection(Connection::Disconnected {
                    since,
                    error: last_error.clone(),
                    retry_at: Instant::now() + backoff,
                    attempts,
                });
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
                                inbox
                                    .lock()
                                    .set_error(Some("not connected: the run is unreachable".into()));
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
    let defaults = ConnectOptions::default();
    ConnectOptions {
        client_name: idict::client::client_name("idict-inspector"),
        connect_timeout: Duration::from_secs(3),
        tls_ca_pem: TLS_CA.get().cloned().or(defaults.tls_ca_pem.clone()),
        ..defaults
    }
}

async fn session(
    spec: &OpenSpec,
    inbox: &Arc<Mutex<Inbox>>,
    rx: &mut mpsc::UnboundedReceiver<Command>,
    ctx: &egui::Context,
    backoff: &mut Duration,
    lost_since: &mut Option<Instant>,
) -> Result<SessionEnd, ClientError> {
    // (Resolving reads run files: connect_with does it on the blocking pool.)
    let opts = ConnectOptions {
        token: spec.token.clone(),
        ..connect_options()
    };
    let client = Client::connect_with(&spec.target, opts).await?;
    let info = client.info_writable_keys().await?;
    let mut stream = client
        .watch(WatchOptions {
            with_history: true,
            ..WatchOptions::default()
        })
        .await?;
    inbox.lock().connected(info, client.address().to_string());
    *backoff = BACKOFF_START;
    *lost_since = None;
    ctx.request_repaint();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let shown_info: Arc<Mutex<Option<InfoShown>>> = Arc::new(Mutex::new(None));
    // Seeks go one at a time, in order, the newest winning: a slider
    // dragged sends many, and the replay must end where it was let go.
    let (seek_tx, mut seek_rx) = tokio::sync::watch::channel::<Option<idict::SeekTo>>(None);
    {
        let (client, inbox, ctx) = (client.clone(), inbox.clone(), ctx.clone());
        // Ends when the session does (its sender is dropped).
        tokio::spawn(async move {
            while seek_rx.changed().await.is_ok() {
                let to = *seek_rx.borrow_and_update();
                if let Some(to) = to {
                    let r = client.seek(to).await;
                    inbox.lock().set_error(r.err().map(|e| e.to_string()));
                    ctx.request_repaint();
                }
            }
        });
    }
    loop {
        tokio::select! {
            u = stream.next() => match u {
                Some(Ok(u)) => {
                    let last = u.last;
                    inbox.lock().update(u);
                    // Frames paced by what they cost (see `data_frame`),
                    // however fast the run goes: updates merge in the inbox.
                    if last {
                        ctx.request_repaint();
                    } else {
                        ctx.request_repaint_after(data_frame());
                    }
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
                Some(Command::Seek(to)) => {
                    let _ = seek_tx.send(Some(to));
                }
                Some(c) => {
                    tokio::spawn(execute(client.clone(), c, inbox.clone(), ctx.clone()));
                }
            },
            _ = tick.tick() => {
                let (client, inbox, ctx) = (client.clone(), inbox.clone(), ctx.clone());
                let shown = shown_info.clone();
                tokio::spawn(async move {
                    if let Ok(info) = client.info_writable_keys().await {
                        // A frame only when something the header shows
                        // moved: an idle window stays idle.
                        let now = InfoShown::of(&info);
                        let changed = shown.lock().replace(now.clone()) != Some(now);
                        inbox.lock().set_info(info);
                        if changed {
                            ctx.request_repaint();
                        }
                    }
                });
            }
        }
    }
}

/// What drawing costs: the process's CPU time per frame (µs), averaged,
/// from one frame's start to the next. With software GL most of it is the
/// rasterizer's own threads, which no per-frame timer of the UI sees.
static FRAME_COST_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static LAST_FRAME: Mutex<Option<cpu_time::ProcessTime>> = Mutex::new(None);

/// Called at the start of each frame.
pub fn frame_started() {
    let now = cpu_time::ProcessTime::try_now().ok();
    let mut last = LAST_FRAME.lock();
    if let (Some(now), Some(before)) = (now, *last) {
        let us = now.duration_since(before).as_micros() as u64;
        let old = FRAME_COST_US.load(std::sync::atomic::Ordering::Relaxed);
        // Smoothed: one slow frame does not stall the next ten.
        let cost = if old == 0 { us } else { (old * 3 + us) / 4 };
        FRAME_COST_US.store(cost, std::sync::atomic::Ordering::Relaxed);
    }
    *last = now;
}

/// The shortest time between two frames drawn for new data: at most the
/// display rate (60 a second), and no more often than keeps drawing under
/// an eighth of a core, and at least twice a second so the curves stay
/// live. Software GL spends ~30 ms of CPU on a 1400x860 frame: a 100 Hz
/// run drawn at every update took 130% of a core, paced like this 28%
/// (about 4 frames a second); with a GPU a frame costs a few ms and the
/// display rate is the limit.
pub fn data_frame() -> Duration {
    let cost = Duration::from_micros(FRAME_COST_US.load(std::sync::atomic::Ordering::Relaxed));
    (cost * 8).clamp(Duration::from_millis(16), Duration::from_millis(500))
}

/// What the header shows of a run's info, to repaint only when it moves.
#[derive(Clone, PartialEq)]
struct InfoShown {
    state: idict::RunState,
    rate: String,
    watchers: u64,
    keys: usize,
}

impl InfoShown {
    fn of(info: &idict::client::RunInfo) -> Self {
        InfoShown {
            state: info.status.state,
            rate: format!("{:.1}", info.updates_per_second),
            watchers: info.watchers,
            keys: info.keys.len(),
        }
    }
}

/// Carries out one command, putting its outcome in the inbox.
async fn execute(client: Client, cmd: Command, inbox: Arc<Mutex<Inbox>>, ctx: egui::Context) {
    let result = match cmd {
        Command::Pause => client.pause().await.map(drop),
        Command::PauseAt(step) => client.pause_at(step).await.map(drop),
        Command::Resume => client.resume().await.map(drop),
        Command::Step(n) => client.step(n).await.map(drop),
        Command::Terminate => client.terminate().await.map(drop),
        Command::Seek(to) => client.seek(to).await.map(drop),
        Command::Set(key, value) => match client.set(&key, value.clone()).await {
            Ok(receipt) => {
                let mut i = inbox.lock();
                i.write(WriteOutcome::Sent {
                    write_id: receipt.write_id,
                    write: PendingWrite { key, value },
                });
                i.set_error(None);
                drop(i);
                ctx.request_repaint();
                return;
            }
            Err(e) => {
                inbox.lock().write(WriteOutcome::Refused {
                    key,
                    error: e.to_string(),
                });
                ctx.request_repaint();
                return;
            }
        },
        Command::AddTrigger {
            name,
            condition,
            actions,
        } => client
            .add_trigger(&name, &condition, &actions)
            .await
            .map(drop),
        Command::RemoveTrigger(name) => client.remove_trigger(&name).await.map(drop),
        Command::Reconnect => Ok(()),
    };
    // The triggers' list at once, not at the next info tick.
    if result.is_ok()
        && let Ok(info) = client.info_writable_keys().await
    {
        inbox.lock().set_info(info);
    }
    inbox.lock().set_error(result.err().map(|e| e.to_string()));
    ctx.request_repaint();
}

/// The live runs on this machine, refreshed every two seconds.
pub fn watch_local_runs(
    rt: &tokio::runtime::Handle,
    ctx: egui::Context,
) -> Arc<Mutex<Option<Vec<FoundRun>>>> {
    // The list when it changes, for the UI to take (`None`: no news).
    let news: Arc<Mutex<Option<Vec<FoundRun>>>> = Arc::new(Mutex::new(None));
    let shared = news.clone();
    rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut last: Vec<std::path::PathBuf> = Vec::new();
        loop {
            tick.tick().await;
            let found = tokio::task::spawn_blocking(idict::runfile::list_runs)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            if last.iter().ne(found.iter().map(|x| &x.path)) {
                last = found.iter().map(|x| x.path.clone()).collect();
                *shared.lock() = Some(found);
                ctx.request_repaint();
            }
        }
    });
    news
}
