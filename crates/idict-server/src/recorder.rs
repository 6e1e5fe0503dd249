//! The flight recorder: a watcher of its own, on a thread of its own, that
//! appends what the run publishes (and the control actions clients take) to
//! the run's recording (`idict_recording::recording`). It costs the computation what
//! one more watcher does: it reads the server's mirror, never the
//! computation's state, and its disk writes never hold up the server
//! thread. A disk too slow to keep up gets the state coalesced, every
//! scalar sample it can, and a thinning report for the rest, as a slow
//! watcher does.

use super::array_budget::ArrayBudget;
use super::shared::Shared;
use super::watch::Watcher;
use idict_core::Inner;
use idict_proto::v1 as pb;
use idict_recording::recording::{self, FORMAT_VERSION, MAGIC};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Control events queued for the recorder at most; past it they are
/// dropped (and counted in the log) rather than held without bound.
pub(crate) const CONTROL_QUEUE: usize = 1024;

/// Creates the recording in `dir` (exclusively, private to the user) and
/// starts the thread that fills it. Returns the file's path and the thread
/// (it ends after the run's last update, or when the server closes).
pub(crate) fn start(
    dir: &Path,
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    controls: mpsc::Receiver<pb::ControlEvent>,
    arrays: crate::RecordArrays,
) -> std::io::Result<(PathBuf, std::thread::JoinHandle<()>)> {
    std::fs::create_dir_all(dir)?;
    let host = idict_core::runfile::host_name();
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect()
    };
    // Named for the serve, not the run's start: a run served again (or
    // two of one name in one millisecond) gets a file of its own.
    let stem = format!(
        "{}-{}-{}-{}",
        safe(&inner.name),
        safe(&host),
        std::process::id(),
        idict_core::runfile::now_unix_ms()
    );
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut n = 0;
    let (path, file) = loop {
        let path = if n == 0 {
            dir.join(format!("{stem}.{}", idict_recording::recording::EXTENSION))
        } else {
            dir.join(format!(
                "{stem}-{n}.{}",
                idict_recording::recording::EXTENSION
            ))
        };
        match open.open(&path) {
            Ok(f) => break (path, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC)?;
    let header = pb::RecordEntry {
        kind: Some(pb::record_entry::Kind::Header(pb::RecordingHeader {
            format_version: FORMAT_VERSION,
            name: inner.name.clone(),
            pid: std::process::id(),
            host,
            started_unix_ms: inner.started_unix_ms,
            writer_version: env!("CARGO_PKG_VERSION").into(),
        })),
    };
    recording::write_record(&mut out, &header)?;
    out.flush()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let watcher = Watcher::new(
        inner.clone(),
        shared,
        pb::WatchRequest {
            with_history: true,
            packed_samples: true,
            ..Default::default()
        },
    );
    let shown = path.clone();
    let thread = std::thread::Builder::new()
        .name(super::shared::thread_name("idict-recorder", &inner.name))
        .spawn(move || {
            let budget = ArrayBudget::of(arrays);
            if let Err(e) = runtime.block_on(record(watcher, controls, out, budget)) {
                // Said where the user sees it: a run without a tracing
                // subscriber would lose its recording in silence.
                tracing::error!("the recording {} stopped: {e}", shown.display());
                eprintln!("idict: the recording {} stopped: {e}", shown.display());
            }
        })?;
    Ok((path, thread))
}

/// Writes `value` of `key` as part records of the update `u` (its
/// version, `more` set).
fn write_parts(
    out: &mut std::io::BufWriter<std::fs::File>,
    u: &pb::WatchUpdate,
    key: &str,
    value: &idict_core::value::Value,
) -> std::io::Result<()> {
    let mut parts = super::parts::ValueParts::new(key, value);
    while !parts.is_done() {
        let m = pb::WatchUpdate {
            version: u.version,
            time: u.time,
            status: u.status.clone(),
            more: true,
            part: Some(parts.next(PART_BYTES)),
            ..Default::default()
        };
        let kind = pb::record_entry::Kind::Update(m);
        recording::write_record(out, &pb::RecordEntry { kind: Some(kind) })?;
    }
    Ok(())
}

/// A value written in parts goes this much a record.
const PART_BYTES: usize = 4 << 20;

/// Appends updates and control events until the run's last update (or the
/// server closing).
async fn record(
    mut watcher: Watcher,
    mut controls: mpsc::Receiver<pb::ControlEvent>,
    mut out: std::io::BufWriter<std::fs::File>,
    mut budget: Option<ArrayBudget>,
) -> std::io::Result<()> {
    let mut controls_open = true;
    // The first messages are a whole state, until one without `more` (and
    // so is a reset later, e.g. a watcher that fell too far behind).
    let mut in_whole_state = true;
    let mut reports = Vec::new();
    // Values written after the final message's content, before its end.
    let mut at_the_end: Vec<(String, idict_core::value::Value)> = Vec::new();
    let write_reports = |out: &mut std::io::BufWriter<std::fs::File>,
                         reports: &mut Vec<pb::ArraysThinned>|
     -> std::io::Result<()> {
        for r in reports.drain(..) {
            let kind = pb::record_entry::Kind::ArraysThinned(r);
            recording::write_record(out, &pb::RecordEntry { kind: Some(kind) })?;
        }
        Ok(())
    };
    loop {
        let entry = tokio::select! {
            // Control events first: they are few, and their version places
            // them among the updates.
            biased;
            c = controls.recv(), if controls_open => match c {
                Some(c) => pb::record_entry::Kind::Control(c),
                None => {
                    controls_open = false;
                    continue;
                }
            },
            u = watcher.next() => match u {
                Some(mut u) => {
                    // Times as nanosecond steps: half the bytes of doubles.
                    for s in &mut u.samples {
                        idict_core::wire::times_to_steps(s);
                    }
                    // A whole state (the first, or a reset later) is kept whole.
                    in_whole_state |= u.reset;
                    let whole = in_whole_state;
                    in_whole_state &= u.more;
                    if let Some(b) = budget.as_mut() {
                        b.filter(&mut u, whole, &mut reports);
                        if u.last {
                            // The value at the end, always: for each key
                            // with versions left out since its last kept.
                            for r in b.take_pending() {
                                if !u.changed.iter().any(|e| e.key == r.key)
                                    && let Some(v) = watcher.published_value(&r.key)
                                {
                                    at_the_end.push((r.key.clone(), v));
                                }
                                reports.push(r);
                            }
                        }
                        write_reports(&mut out, &mut reports)?;
                    }
                    pb::record_entry::Kind::Update(u)
                }
                None => {
                    // Closed without a final update: say what was left out.
                    if let Some(b) = budget.as_mut() {
                        reports.extend(b.take_pending());
                        write_reports(&mut out, &mut reports)?;
                    }
                    break;
                }
            },
        };
        let last = matches!(&entry, pb::record_entry::Kind::Update(u) if u.last);
        let mut entry = entry;
        let closing = match &mut entry {
            pb::record_entry::Kind::Update(u) if !at_the_end.is_empty() => {
                // The final update goes on: the values at the end follow in
                // parts (as a large value goes on the wire), then its end.
                let closing = pb::WatchUpdate {
                    version: u.version,
                    time: u.time,
                    status: u.status.clone(),
                    last: true,
                    ..Default::default()
                };
                (u.more, u.last) = (true, false);
                Some(closing)
            }
            _ => None,
        };
        recording::write_record(&mut out, &pb::RecordEntry { kind: Some(entry) })?;
        if let Some(closing) = closing {
            for (key, value) in at_the_end.drain(..) {
                write_parts(&mut out, &closing, &key, &value)?;
            }
            let kind = pb::record_entry::Kind::Update(closing);
            recording::write_record(&mut out, &pb::RecordEntry { kind: Some(kind) })?;
        }
        // Each record reaches the file at once: a run killed now leaves it
        // whole up to here.
        out.flush()?;
        if last {
            break;
        }
    }
    out.flush()?;
    out.get_ref().sync_data()
}
