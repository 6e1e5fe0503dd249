//! What a client was not sent: each key's samples carry their push numbers
//! out of the history, and a gap in them is samples the history thinned
//! before this client got them. Reported per message as `Thinned`, so the
//! samples a client receives plus the ones it is told were thinned account
//! for every published sample exactly once.

use idict_core::history::Piece;
use idict_core::history::SharedSeries;
use idict_proto::v1 as pb;
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Where a client is in one key's samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct KeyCursor {
    /// The push number of the next sample it is owed.
    next_seq: u64,
    /// The version of the last sample it has (0: none).
    last_version: u64,
}

/// A client's place in every key's samples.
#[derive(Debug, Default)]
pub(crate) struct Cursors(FxHashMap<Arc<str>, KeyCursor>);

impl Cursors {
    /// A client owed the samples after `version` of `series` (keys that
    /// appear later are owed all of theirs).
    pub fn after(series: &[(Arc<str>, SharedSeries)], version: u64) -> Self {
        Cursors(
            series
                .iter()
                .map(|(k, s)| {
                    let next_seq = s.lock().next_seq_after(version);
                    let at = KeyCursor {
                        next_seq,
                        last_version: version,
                    };
                    (k.clone(), at)
                })
                .collect(),
        )
    }

    /// Takes a piece of `key`'s samples as sent; what was thinned before
    /// and between them, if anything.
    pub fn take(&mut self, key: &Arc<str>, piece: &Piece) -> Option<pb::Thinned> {
        let at = self.0.entry(key.clone()).or_default();
        let mut report: Option<pb::Thinned> = None;
        // Index of the sample after the first gap, to count those kept.
        let mut first_after_gap = 0;
        for (i, (&seq, &version)) in piece.seqs.iter().zip(&piece.series.versions).enumerate() {
            if seq > at.next_seq {
                let dropped = seq - at.next_seq;
                match &mut report {
                    None => {
                        first_after_gap = i;
                        report = Some(pb::Thinned {
                            key: key.to_string(),
                            after_version: at.last_version,
                            until_version: version,
                            dropped,
                            kept: 0,
                        });
                    }
                    Some(r) => {
                        r.until_version = version;
                        r.dropped += dropped;
                        r.kept = (i - first_after_gap) as u64;
                    }
                }
            }
            // A push number below the expected one: the key was removed
            // and made again, and its history starts over.
            at.next_seq = seq + 1;
            at.last_version = version;
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idict_core::history::Series;

    fn piece(samples: &[(u64, u64)]) -> Piece {
        let mut p = Piece::default();
        for &(seq, version) in samples {
            p.seqs.push(seq);
            p.series.versions.push(version);
            p.series.times.push(0.0);
            p.series.values.push(0.0);
        }
        p
    }

    #[test]
    fn gaps_in_push_numbers_are_reported_once_with_what_was_kept() {
        let key: Arc<str> = "x".into();
        let mut c = Cursors::default();
        // Whole: nothing to say.
        assert_eq!(c.take(&key, &piece(&[(0, 1), (1, 2)])), None);
        // Then every other sample of 10..20 thinned: 5 dropped, 4 kept
        // strictly between the ends.
        let thinned = piece(&[(3, 11), (5, 13), (7, 15), (9, 17), (11, 19), (12, 20)]);
        let r = c.take(&key, &thinned).unwrap();
        assert_eq!(
            (r.after_version, r.until_version, r.dropped, r.kept),
            (2, 19, 5, 4)
        );
        // A gap across messages: the last sample had push number 12.
        let r = c.take(&key, &piece(&[(20, 40)])).unwrap();
        assert_eq!((r.after_version, r.until_version, r.dropped), (20, 40, 7));
        assert_eq!(c.take(&key, &Piece::default()), None);
    }

    #[test]
    fn a_client_that_starts_late_is_owed_only_what_follows() {
        let s: SharedSeries = Arc::new(parking_lot::Mutex::new(
            idict_core::history::BoundedSeries::new(1 << 20),
        ));
        for v in 1..=10 {
            s.lock().push(idict_core::history::Sample {
                version: v,
                time: 0.0,
                value: 0.0,
            });
        }
        let key: Arc<str> = "x".into();
        let mut c = Cursors::after(&[(key.clone(), s.clone())], 7);
        let rest = s.lock().piece(7, u64::MAX, usize::MAX);
        assert_eq!(
            rest.series,
            Series {
                versions: vec![8, 9, 10],
                times: vec![0.0; 3],
                values: vec![0.0; 3],
            }
        );
        assert_eq!(c.take(&key, &rest), None);
    }

    use idict_core::history::{BoundedSeries, PinPool, SAMPLE_BYTES, Sample};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// The run pushes this many samples.
        Burst(u64),
        /// The watcher reads at most this many samples.
        Read(usize),
        /// The watcher stops reading for a while: it pins nothing.
        Stall,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..2_000).prop_map(Op::Burst),
            (1usize..3_000).prop_map(Op::Read),
            Just(Op::Stall),
        ]
    }

    proptest! {
        /// For any interleaving of bursts, slow reads and stalls, the
        /// samples a watcher receives plus the ranges it is told were
        /// thinned account for every pushed sample exactly once.
        #[test]
        fn received_plus_reported_is_every_sample_exactly_once(
            ops in proptest::collection::vec(op(), 1..60),
            budget in 16usize..200,
            pool in 0usize..400,
        ) {
            let pool = PinPool::new(pool * SAMPLE_BYTES);
            let mut h = BoundedSeries::sharing(budget * SAMPLE_BYTES, pool);
            let key: Arc<str> = "x".into();
            let mut cursors = Cursors::default();
            let (mut pushed, mut cursor, mut reading) = (0u64, 0u64, true);
            let mut got: Vec<u64> = Vec::new();
            let mut reports: Vec<pb::Thinned> = Vec::new();
            let mut read = |h: &BoundedSeries, cursor: &mut u64, limit: usize, got: &mut Vec<u64>, reports: &mut Vec<pb::Thinned>| {
                let piece = h.piece(*cursor, u64::MAX, limit);
                reports.extend(cursors.take(&key, &piece));
                if let Some(&v) = piece.series.versions.last() {
                    *cursor = v;
                }
                got.extend(&piece.series.versions);
            };
            for op in ops {
                match op {
                    Op::Burst(n) => {
                        for _ in 0..n {
                            pushed += 1;
                            let pin = if reading { cursor } else { u64::MAX };
                            h.push_pinned(Sample { version: pushed, time: 0.0, value: 0.0 }, || pin);
                        }
                    }
                    Op::Read(limit) => {
                        reading = true;
                        read(&h, &mut cursor, limit, &mut got, &mut reports);
                    }
                    Op::Stall => reading = false,
                }
            }
            read(&h, &mut cursor, usize::MAX, &mut got, &mut reports);
            let dropped: u64 = reports.iter().map(|r| r.dropped).sum();
            prop_assert_eq!(got.len() as u64 + dropped, pushed);
            let mut have = got.iter().peekable();
            for v in 1..=pushed {
                if have.peek() == Some(&&v) {
                    have.next();
                } else {
                    prop_assert!(
                        reports.iter().any(|r| r.after_version < v && v < r.until_version),
                        "v{} missing and not reported", v
                    );
                }
            }
        }
    }
}
