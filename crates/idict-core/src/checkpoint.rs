//! Checkpoints: a run's published state, the history of its scalars and its
//! message log, written atomically (temp file, fsync, rename, fsync of the
//! directory), so a crash at any moment leaves the previous checkpoint
//! whole; and read back by `IDict::restore`, so a run restarted after a
//! crash shows its whole curve.
//!
//! The format (versioned): the 8 bytes `IDICTCKP`, then an
//! `idict.v1.Checkpoint` protobuf message (see `inspector.proto`).

use crate::dict::{IDict, IDictOptions, Inner};
use crate::history::{BoundedSeries, Series};
use crate::model::LogMessage;
use crate::value::Value;
use crate::wire::{self, WireError};
use idict_proto::v1 as pb;
use parking_lot::Mutex;
use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The first bytes of every checkpoint file.
pub const MAGIC: &[u8; 8] = b"IDICTCKP";
/// The layout this library writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The highest version a checkpoint may hold: 2^53, the largest integer
/// every JSON reader keeps exactly. A run publishing a million versions a
/// second would take 285 years to reach it; a file claiming more is
/// damaged (and its run could not count on from it).
pub const MAX_VERSION: u64 = 1 << 53;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not an idict checkpoint")]
    NotACheckpoint(PathBuf),
    #[error(
        "{path}: checkpoint format {found} is newer than this library reads ({FORMAT_VERSION})"
    )]
    UnknownFormat { path: PathBuf, found: u32 },
    #[error("{path}: damaged checkpoint: {why}")]
    Damaged { path: PathBuf, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl IDict {
    /// Writes the run's published state, history and messages to `path`,
    /// atomically: the file is either the previous checkpoint or this one.
    /// Returns the version it holds. It reads what clients see, so it does
    /// not need the working map; call it right after a `notify_update()`.
    pub fn checkpoint(&self, path: impl AsRef<Path>) -> Result<u64, CheckpointError> {
        let path = path.as_ref();
        let state = self.inner.checkpoint_state();
        let version = state.version;
        let msg = pb::Checkpoint {
            format_version: FORMAT_VERSION,
            name: self.inner.name.clone(),
            started_unix_ms: self.inner.started_unix_ms,
            version: state.version,
            time: state.time,
            entries: state
                .entries
                .iter()
                .map(|(k, v)| pb::Entry {
                    key: k.clone(),
                    value: Some(wire::value_to_proto(v)),
                })
                .collect(),
            history: state
                .history
                .into_iter()
                // Repeated, not packed: a checkpoint stays readable by
                // versions of idict that know only that form.
                .map(|(k, s)| wire::series_to_proto(&k, s, false))
                .collect(),
            messages: state.messages.iter().map(wire::message_to_proto).collect(),
            written_unix_ms: unix_ms(),
        };
        let mut bytes = Vec::with_capacity(MAGIC.len() + msg.encoded_len());
        bytes.extend_from_slice(MAGIC);
        msg.encode(&mut bytes)
            .map_err(|e| CheckpointError::Damaged {
                path: path.to_owned(),
                why: e.to_string(),
            })?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io(path))?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(version)
    }

    /// Resumes a run from a checkpoint: the same name, its values (in the
    /// working map and published, at the checkpoint's version), the whole
    /// history and the messages; its clock continues from the checkpoint's
    /// time. Declare writable keys and serve it as usual.
    pub fn restore(path: impl AsRef<Path>) -> Result<IDict, CheckpointError> {
        Self::restore_with_options(path, IDictOptions::default())
    }

    pub fn restore_with_options(
        path: impl AsRef<Path>,
        options: IDictOptions,
    ) -> Result<IDict, CheckpointError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(io(path))?;
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| CheckpointError::NotACheckpoint(path.to_owned()))?;
        let msg = pb::Checkpoint::decode(body).map_err(|e| CheckpointError::Damaged {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        if msg.format_version != FORMAT_VERSION {
            return Err(CheckpointError::UnknownFormat {
                path: path.to_owned(),
                found: msg.format_version,
            });
        }
        let damaged = |e: WireError| CheckpointError::Damaged {
            path: path.to_owned(),
            why: e.to_string(),
        };
        let entries = msg
            .entries
            .into_iter()
            .map(|e| {
                let v = e.value.ok_or(WireError::MissingValue)?;
                Ok((e.key, wire::value_from_proto(v)?))
            })
            .collect::<Result<Vec<_>, WireError>>()
            .map_err(damaged)?;
        let history = msg
            .history
            .into_iter()
            .map(wire::series_from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(damaged)?;
        if msg.version > MAX_VERSION {
            return Err(CheckpointError::Damaged {
                path: path.to_owned(),
                why: format!(
                    "version {} is beyond what a run can reach (at most {MAX_VERSION})",
                    msg.version
                ),
            });
        }
        let time = if msg.time.is_finite() && msg.time >= 0.0 {
            msg.time
        } else {
            0.0
        };
        // A time too large for a Duration (a damaged file) restarts the clock.
        let started = Duration::try_from_secs_f64(time)
            .ok()
            .and_then(|d| Instant::now().checked_sub(d))
            .unwrap_or_else(Instant::now);
        let idict = IDict::with_start(msg.name, options, started, msg.started_unix_ms);
        idict.inner.load_state(CheckpointState {
            version: msg.version,
            time,
            entries,
            history,
            messages: msg
                .messages
                .into_iter()
                .map(wire::message_from_proto)
                .collect(),
        });
        Ok(idict)
    }
}

/// What a checkpoint holds.
pub(crate) struct CheckpointState {
    pub version: u64,
    pub time: f64,
    pub entries: Vec<(String, Value)>,
    pub history: Vec<(String, Series)>,
    pub messages: Vec<LogMessage>,
}

impl Inner {
    /// The published state, history and log, as of one version.
    pub(crate) fn checkpoint_state(&self) -> CheckpointState {
        let (version, time, entries, histories, messages) = {
            let p = self.published.read();
            (
                p.version,
                p.time,
                p.sorted_entries(""),
                p.histories(""),
                p.messages_after(0),
            )
        };
        // After reading the version: its samples are staged, so now moved.
        self.move_staged_now();
        let history = histories
            .into_iter()
            .map(|(k, s)| {
                (
                    k.to_string(),
                    crate::history::copy_range(&s, 0, version).series,
                )
            })
            .collect();
        CheckpointState {
            version,
            time,
            entries: entries
                .into_iter()
                .map(|(k, e)| (k.to_string(), e.value))
                .collect(),
            history,
            messages,
        }
    }

    /// Loads a checkpoint into a fresh run: its values become the working
    /// and the published state at the checkpoint's version.
    pub(crate) fn load_state(&self, state: CheckpointState) {
        let budget = self.options.history_budget_bytes;
        let mut w = self.data.lock();
        let mut p = self.published.write();
        for (key, value) in state.entries {
            w.insert(&key, value);
        }
        let touched = std::mem::take(&mut w.touched);
        for id in touched {
            if let Some(Some(slot)) = w.slots.get_mut(id as usize) {
                slot.dirty = false;
                p.set(id, &slot.key, slot.value.clone(), state.version);
            }
        }
        for (key, series) in state.history {
            let mut b = BoundedSeries::sharing(budget, self.pin_pool.clone());
            for sample in series.iter() {
                b.push(sample);
            }
            p.history_for(&Arc::from(key.as_str()), || Arc::new(Mutex::new(b)));
        }
        for m in state.messages {
            p.push_message(m);
        }
        p.version = state.version;
        p.records_floor = state.version;
        // Removals before the restore are not known: a client from before
        // it gets the whole state.
        p.tombstone_floor = state.version;
        p.time = state.time;
        self.staged.lock().restored(state.version);
        self.restored_through(state.version);
    }
}
