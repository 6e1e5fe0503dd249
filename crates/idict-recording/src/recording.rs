//! The flight recorder's file: written as a run goes (`ServeOptions::record`,
//! `IDICT_RECORD`), read after it ends. The layout is in
//! `docs/recording-format.md`: the magic bytes, then framed records (length,
//! CRC-32, a protobuf `RecordEntry`), the first a header. A run killed in
//! the middle of a write leaves a file that reads to its last whole record.

use idict_proto::v1 as pb;
use prost::Message;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every recording.
pub const MAGIC: &[u8; 8] = b"IDICTREC";
/// The layout this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest record read; a length past it is corruption, not a record.
pub const MAX_RECORD_BYTES: u32 = 1 << 30;

/// Why a recording cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not an idict recording (it does not start with IDICTREC)")]
    NotARecording(PathBuf),
    #[error("{path}: a recording of format {found}; this idict reads format {FORMAT_VERSION}")]
    UnknownFormat { path: PathBuf, found: u32 },
    #[error("{path}: the record at byte {at} is damaged ({why})")]
    Corrupt { path: PathBuf, at: u64, why: String },
}

/// Appends one framed record.
pub fn write_record(out: &mut impl Write, entry: &pb::RecordEntry) -> std::io::Result<()> {
    let bytes = entry.encode_to_vec();
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&n| n <= MAX_RECORD_BYTES)
        .ok_or_else(|| std::io::Error::other("a record larger than 1 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&crc32fast::hash(&bytes).to_le_bytes())?;
    out.write_all(&bytes)
}

/// A recording being read: its header, then its records in order.
pub struct Recording<R> {
    path: PathBuf,
    input: R,
    /// Where the next record starts.
    at: u64,
    pub header: pb::RecordingHeader,
    /// Set when the file ends inside a record (the run was killed while
    /// writing it): the byte where that record starts.
    pub cut_at: Option<u64>,
    done: bool,
}

/// The file extension of recordings.
pub const EXTENSION: &str = "idrec";

/// Whether a RUN argument names a recording file (by its extension; the
/// `.idictrec` of earlier versions too).
pub fn is_recording_path(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.ends_with(".idrec") || lower.ends_with(".idictrec")
}

/// Opens the recording at `path` and reads its header.
pub fn open(path: &Path) -> Result<Recording<std::io::BufReader<std::fs::File>>, RecordingError> {
    let file = std::fs::File::open(path).map_err(|source| RecordingError::Io {
        path: path.to_owned(),
        source,
    })?;
    read(std::io::BufReader::new(file), path)
}

/// Reads a recording from `input` (`path` names it in errors).
pub fn read<R: Read>(mut input: R, path: &Path) -> Result<Recording<R>, RecordingError> {
    let mut magic = [0u8; 8];
    if input.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(RecordingError::NotARecording(path.to_owned()));
    }
    let mut r = Recording {
        path: path.to_owned(),
        input,
        at: MAGIC.len() as u64,
        header: pb::RecordingHeader::default(),
        cut_at: None,
        done: false,
    };
    let header = match r.next() {
        Some(Ok(pb::RecordEntry {
            kind: Some(pb::record_entry::Kind::Header(h)),
        })) => h,
        Some(Err(e)) => return Err(e),
        _ => {
            return Err(RecordingError::Corrupt {
                path: path.to_owned(),
                at: MAGIC.len() as u64,
                why: "no header".into(),
            });
        }
    };
    if header.format_version != FORMAT_VERSION {
        return Err(RecordingError::UnknownFormat {
            path: path.to_owned(),
            found: header.format_version,
        });
    }
    r.header = header;
    Ok(r)
}

impl<R: Read> Recording<R> {
    /// The byte where the next record starts.
    pub fn position(&self) -> u64 {
        self.at
    }

    fn corrupt(&mut self, why: String) -> Option<Result<pb::RecordEntry, RecordingError>> {
        self.done = true;
        Some(Err(RecordingError::Corrupt {
            path: self.path.clone(),
            at: self.at,
            why,
        }))
    }

    /// Reads as much of `buf` as the input has; how much.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }
}

impl<R: Read> Iterator for Recording<R> {
    type Item = Result<pb::RecordEntry, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut frame = [0u8; 8];
        let got = match self.fill(&mut frame) {
            Ok(n) => n,
            Err(e) => return self.corrupt(e.to_string()),
        };
        if got == 0 {
            self.done = true;
            return None;
        }
        if got < frame.len() {
            self.done = true;
            self.cut_at = Some(self.at);
            return None;
        }
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > MAX_RECORD_BYTES {
            return self.corrupt(format!("a length of {len} bytes"));
        }
        // Grown as bytes arrive: a damaged length cannot make us reserve
        // more than the file holds.
        let mut body = Vec::with_capacity((len as usize).min(1 << 20));
        let read = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut body);
        if let Err(e) = read {
            return self.corrupt(e.to_string());
        }
        if body.len() < len as usize {
            self.done = true;
            self.cut_at = Some(self.at);
            return None;
        }
        if crc32fast::hash(&body) != crc {
            return self.corrupt("its checksum does not match".into());
        }
        let entry = match pb::RecordEntry::decode(body.as_slice()) {
            Ok(e) => e,
            Err(e) => return self.corrupt(format!("it does not decode: {e}")),
        };
        self.at += 8 + u64::from(len);
        Some(Ok(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> pb::RecordEntry {
        pb::RecordEntry {
            kind: Some(pb::record_entry::Kind::Header(pb::RecordingHeader {
                format_version: FORMAT_VERSION,
                name: "heat".into(),
                ..Default::default()
            })),
        }
    }

    fn update(version: u64) -> pb::RecordEntry {
        pb::RecordEntry {
            kind: Some(pb::record_entry::Kind::Update(pb::WatchUpdate {
                version,
                ..Default::default()
            })),
        }
    }

    fn file(entries: &[pb::RecordEntry]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for e in entries {
            write_record(&mut out, e).unwrap();
        }
        out
    }

    fn versions(bytes: &[u8]) -> (Vec<u64>, Option<u64>) {
        let mut r = read(bytes, Path::new("t")).unwrap();
        let v = r
            .by_ref()
            .map(|e| match e.unwrap().kind {
                Some(pb::record_entry::Kind::Update(u)) => u.version,
                other => panic!("{other:?}"),
            })
            .collect();
        (v, r.cut_at)
    }

    #[test]
    fn a_file_cut_anywhere_reads_to_its_last_whole_record() {
        let bytes = file(&[header(), update(1), update(2), update(3)]);
        assert_eq!(versions(&bytes), (vec![1, 2, 3], None));
        let whole = |n: usize| file(&[header(), update(1), update(2), update(3)][..n]).len();
        for cut in whole(1)..bytes.len() {
            let (v, cut_at) = versions(&bytes[..cut]);
            let complete = (1..=3).filter(|&k| whole(k + 1) <= cut).count();
            assert_eq!(v.len(), complete, "cut at {cut}");
            assert_eq!(cut_at.is_some(), cut != whole(complete + 1), "cut at {cut}");
        }
    }

    #[test]
    fn the_fuzzers_seed_is_a_whole_recording() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(include_bytes!("../../../fuzz/corpus/recording/seed"));
        let mut r = read(bytes.as_slice(), Path::new("seed")).unwrap();
        assert_eq!(r.header.name, "heat");
        let kinds: Vec<_> = r.by_ref().map(|e| e.unwrap().kind.is_some()).collect();
        assert_eq!(kinds, [true, true]);
        assert_eq!(r.cut_at, None);
    }

    #[test]
    fn damage_is_an_error_not_a_record() {
        let mut bytes = file(&[header(), update(1), update(2)]);
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        let mut r = read(bytes.as_slice(), Path::new("t")).unwrap();
        assert!(r.next().unwrap().is_ok());
        assert!(matches!(
            r.next(),
            Some(Err(RecordingError::Corrupt { .. }))
        ));
        assert!(r.next().is_none());
        // A huge length is refused before anything is reserved for it.
        let mut bytes = file(&[header()]);
        bytes.extend((MAX_RECORD_BYTES + 1).to_le_bytes());
        bytes.extend([0u8; 4]);
        let mut r = read(bytes.as_slice(), Path::new("t")).unwrap();
        assert!(matches!(
            r.next(),
            Some(Err(RecordingError::Corrupt { .. }))
        ));
        assert!(matches!(
            read(&b"IDICTCKP"[..], Path::new("t")),
            Err(RecordingError::NotARecording(_))
        ));
    }
}
