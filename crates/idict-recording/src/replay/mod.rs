//! Replaying a recording: a run of its own publishes what the recorded run
//! did, version by version, at the recorded versions and times, paced by
//! the recorded times (`speed` times as fast) or as fast as it goes (then
//! many versions a publish). It waits
//! at its gate before each step, so clients pause, step and resume it like
//! any run, over the same contract; a Seek moves it to any recorded
//! version or time, forward or back (back: the run is rewound and the
//! recording read again from its start, fast); terminating it ends the
//! replay. Recorded log messages, control actions and applied writes come
//! back as log messages, and actions and writes are the marks of the
//! timeline the run's info carries.
//!
//! A recorder is a watcher: its updates carry the state at a version and
//! the samples up to where its histories were complete, which can lag the
//! state. The reader puts them back in version order (reading ahead a
//! bounded way), so the replay publishes each version with its samples,
//! as the run did.
mod player;
mod reader;
mod timeline;

use player::*;
use reader::*;
use timeline::*;

use crate::recording::{Recording, RecordingError};
use idict_core::Recorded;
use idict_core::history::Sample;
use idict_core::model::{Level, MarkKind, ReplayTimeline, RunState, SeekTo, TimelineMark};
use idict_core::part_joiner::PartJoiner;
use idict_core::value::{Value, escape_controls};
use idict_core::{IDict, wire};
use idict_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Recorded seconds per wall second (2.0: twice as fast); `None`: as
    /// fast as it goes.
    pub speed: Option<f64>,
    /// Go straight to this version or time first (`idict replay --at`).
    pub at: Option<SeekTo>,
    /// At the end, hold the run paused (seekable) until it is terminated,
    /// instead of finishing it.
    pub hold_at_end: bool,
}

/// What a replay went through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    /// The last recorded version published.
    pub last_version: u64,
    /// Scalar samples published.
    pub samples: u64,
    /// Whether the recording ended with the run's last update.
    pub complete: bool,
    /// The replay was terminated before the end.
    pub terminated: bool,
    /// Where the recording is damaged, if it is: what came before was
    /// replayed.
    pub damaged: Option<String>,
}

/// Why a replay stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("the recording holds a value that is not valid: {0}")]
    BadValue(String),
    #[error("the replay's run refused an update: {0}")]
    Update(#[from] idict_core::UpdateError),
}

/// A recording opened for replay, with its timeline read.
pub struct Replayer {
    path: PathBuf,
    pub header: pb::RecordingHeader,
    timeline: ReplayTimeline,
    /// Set when the file ends inside a record (the run was killed while
    /// writing it): the byte where that record starts.
    pub cut_at: Option<u64>,
}

impl Replayer {
    /// Opens the recording and reads it through once for its timeline.
    pub fn open(path: &Path) -> Result<Replayer, ReplayError> {
        let mut reader = Reader::open(path)?;
        let header = reader.recording.header.clone();
        let timeline = read_timeline(&mut reader, &header);
        Ok(Replayer {
            path: path.to_owned(),
            header,
            timeline,
            cut_at: reader.recording.cut_at,
        })
    }

    /// What the recording spans, with its marks.
    pub fn timeline(&self) -> &ReplayTimeline {
        &self.timeline
    }

    /// Publishes the recording into `idict` (which a server serves), its
    /// timeline in the run's info, until the end (or, with `hold_at_end`,
    /// until the run is terminated).
    pub fn replay(
        &self,
        idict: &IDict,
        opts: &ReplayOptions,
    ) -> Result<ReplaySummary, ReplayError> {
        *idict.inner.timeline.write() = Some(Arc::new(self.timeline.clone()));
        let mut player = Player {
            replayer: self,
            idict,
            opts,
            reader: Reader::open(&self.path)?,
            controls: Vec::new(),
            arrays_thinned: Vec::new(),
            arrays_left_out: Default::default(),
            complete: false,
            target: None,
            pace: Pace {
                speed: opts.speed.filter(|s| s.is_finite() && *s > 0.0),
                origin: None,
            },
            said_end: false,
            summary: ReplaySummary::default(),
        };
        if let Some(to) = opts.at {
            player.seek(to)?;
        }
        loop {
            match player.step()? {
                Flow::Go => {}
                Flow::End => break,
                Flow::Stop => {
                    player.summary.terminated = true;
                    break;
                }
            }
        }
        player.summary.damaged = player.reader.damaged.take();
        Ok(player.summary)
    }
}

/// Where a seek goes.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{MAGIC, write_record};

    fn entry(kind: pb::record_entry::Kind) -> pb::RecordEntry {
        pb::RecordEntry { kind: Some(kind) }
    }

    /// A recording with a NaN time, a removal in an update whose large
    /// value came in parts, and a control event written ahead of the
    /// update it belongs to.
    fn crafted() -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let header = pb::RecordingHeader {
            format_version: crate::recording::FORMAT_VERSION,
            name: "crafted".into(),
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Header(header))).unwrap();
        let int = |i| Some(wire::value_to_proto(&Value::Int(i)));
        let first = pb::WatchUpdate {
            version: 1,
            reset: true,
            time: f64::NAN,
            changed: vec![
                pb::Entry {
                    key: "gone".into(),
                    value: int(1),
                },
                pb::Entry {
                    key: "x".into(),
                    value: int(1),
                },
            ],
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Update(first))).unwrap();
        let control = pb::ControlEvent {
            action: pb::Action::Pause as i32,
            origin: "tester".into(),
            version: 2,
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Control(control))).unwrap();
        let big = wire::value_to_proto(&Value::Str("y".repeat(100)));
        let bytes = prost::Message::encode_to_vec(&big);
        let (a, b) = bytes.split_at(50);
        let head = pb::WatchUpdate {
            version: 2,
            time: 0.5,
            more: true,
            removed: vec!["gone".into()],
            part: Some(pb::ValuePart {
                key: "big".into(),
                offset: 0,
                total: bytes.len() as u64,
                data: bytes::Bytes::copy_from_slice(a),
            }),
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Update(head))).unwrap();
        let tail = pb::WatchUpdate {
            version: 2,
            time: 0.5,
            last: true,
            part: Some(pb::ValuePart {
                key: "big".into(),
                offset: a.len() as u64,
                total: bytes.len() as u64,
                data: bytes::Bytes::copy_from_slice(b),
            }),
            ..Default::default()
        };
        write_record(&mut out, &entry(pb::record_entry::Kind::Update(tail))).unwrap();
        out
    }

    #[test]
    fn a_crafted_recording_replays_removals_parts_and_controls_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crafted.idrec");
        std::fs::write(&path, crafted()).unwrap();
        let replayer = Replayer::open(&path).unwrap();
        let run = IDict::builder("crafted").replay_of("crafted.idrec").build();
        // Paced, with a NaN time in the file: no panic.
        let opts = ReplayOptions {
            speed: Some(1000.0),
            ..ReplayOptions::default()
        };
        let summary = replayer.replay(&run, &opts).unwrap();
        assert!(summary.complete);
        let d = run.lock();
        assert_eq!(d.get("x"), Some(&Value::Int(1)));
        assert!(
            d.get("gone").is_none(),
            "removed in the update of the parts"
        );
        assert_eq!(d.get("big"), Some(&Value::Str("y".repeat(100))));
        drop(d);
        let log: Vec<String> = run
            .inner
            .published
            .read()
            .messages_after(0)
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(log, ["[recorded] pause by tester at v2"]);
    }
}
