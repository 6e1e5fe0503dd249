//! The recording's byte budget for arrays: each array key may take so many
//! bytes per second of run time, refilled as the run's clock moves (a
//! bucket of at most one second's worth, or one array if that is larger).
//! A key's first version is always kept; versions past the budget are left
//! out of the record (a large one's parts too) and reported as
//! `ArraysThinned`, so a week-long run's recording stays the size chosen
//! and says what it lacks. The value at the final update is written by the
//! recorder (see `recorder`).

use idict_proto::v1 as pb;
use std::collections::HashMap;

/// One key's allowance and what it has left out since its last kept version.
#[derive(Debug, Default)]
struct KeyBudget {
    /// Bytes it may take now.
    allowance: f64,
    /// Run time of the last refill.
    at: f64,
    /// A large value's parts being left out.
    dropping_parts: bool,
    dropped: Option<pb::ArraysThinned>,
}

#[derive(Debug)]
pub(crate) struct ArrayBudget {
    rate: Rate,
    keys: HashMap<String, KeyBudget>,
}

/// A key's allowance per second of run time.
#[derive(Debug, Clone, Copy)]
enum Rate {
    Bytes(f64),
    /// So many of its versions (in bytes: the version's own size).
    Versions(f64),
}

fn array_bytes(v: &pb::Value) -> Option<usize> {
    match &v.kind {
        Some(pb::value::Kind::ArrayValue(a)) => Some(a.data.len()),
        _ => None,
    }
}

impl ArrayBudget {
    fn at(rate: Rate) -> Self {
        ArrayBudget {
            rate,
            keys: HashMap::new(),
        }
    }

    pub fn new(bytes_per_second: u64) -> Self {
        ArrayBudget::at(Rate::Bytes(bytes_per_second.max(1) as f64))
    }

    /// The budget for `arrays` (none: every version kept).
    pub fn of(arrays: crate::RecordArrays) -> Option<Self> {
        match arrays {
            crate::RecordArrays::All => None,
            crate::RecordArrays::BytesPerSecond(b) => Some(ArrayBudget::new(b)),
            crate::RecordArrays::VersionPerSecond => Some(ArrayBudget::at(Rate::Versions(1.0))),
        }
    }

    /// Whether a version of `key` of `bytes` fits at run time `t`; takes
    /// it from the allowance if so, counts it dropped if not.
    fn admit(&mut self, key: &str, bytes: usize, version: u64, t: f64) -> bool {
        let rate = match self.rate {
            Rate::Bytes(r) => r,
            Rate::Versions(n) => n * (bytes.max(1) as f64),
        };
        let cap = rate.max(bytes as f64);
        let k = match self.keys.get_mut(key) {
            Some(k) => k,
            None => {
                // The first version: always kept, and the bucket starts full.
                self.keys.insert(
                    key.to_string(),
                    KeyBudget {
                        allowance: cap - bytes as f64,
                        at: t,
                        ..KeyBudget::default()
                    },
                );
                return true;
            }
        };
        if t.is_finite() && t > k.at {
            k.allowance = (k.allowance + (t - k.at) * rate).min(cap);
            k.at = t;
        }
        if k.allowance >= bytes as f64 {
            k.allowance -= bytes as f64;
            return true;
        }
        let d = k.dropped.get_or_insert_with(|| pb::ArraysThinned {
            key: key.to_string(),
            first_version: version,
            ..Default::default()
        });
        d.last_version = version;
        d.dropped += 1;
        d.bytes += bytes as u64;
        false
    }

    /// Leaves out of `u` the array versions past their keys' budgets; the
    /// reports of keys left out up to now whose next version is kept here
    /// go in `reports`. A message of the first, whole state is kept whole.
    pub fn filter(
        &mut self,
        u: &mut pb::WatchUpdate,
        whole_state: bool,
        reports: &mut Vec<pb::ArraysThinned>,
    ) {
        let (version, t) = (u.version, u.time);
        // A key removed starts again: its next version is a first.
        for k in &u.removed {
            if let Some(mut kb) = self.keys.remove(k)
                && let Some(d) = kb.dropped.take()
            {
                reports.push(d);
            }
        }
        let mut kept = Vec::new();
        for e in std::mem::take(&mut u.changed) {
            let keep = match e.value.as_ref().and_then(array_bytes) {
                Some(bytes) if !whole_state => self.admit(&e.key, bytes, version, t),
                Some(bytes) => {
                    // Counted, so its first version is this one.
                    self.admit(&e.key, bytes, version, t);
                    true
                }
                None => true,
            };
            if keep {
                self.report_if_kept(&e.key, reports);
                kept.push(e);
            }
        }
        u.changed = kept;
        if let Some(p) = &u.part {
            let key = p.key.clone();
            let ends = p.offset.saturating_add(p.data.len() as u64) >= p.total;
            // Only arrays: an encoded `Value` whose field is `array_value`
            // (7, length-delimited) starts with the tag byte 7 << 3 | 2.
            let is_array = p.data.first() == Some(&((7 << 3) | 2));
            let drop = if p.offset == 0 && !is_array {
                false
            } else if p.offset == 0 {
                let keep = self.admit(&key, p.total as usize, version, t) || whole_state;
                if keep {
                    self.report_if_kept(&key, reports);
                }
                !keep
            } else {
                self.keys.get(&key).is_some_and(|k| k.dropping_parts)
            };
            if let Some(k) = self.keys.get_mut(&key) {
                k.dropping_parts = drop && !ends;
            }
            if drop {
                // The message stays (its `more` and `last` frame the
                // update); only the part goes.
                u.part = None;
            }
        }
    }

    fn report_if_kept(&mut self, key: &str, reports: &mut Vec<pb::ArraysThinned>) {
        if let Some(d) = self.keys.get_mut(key).and_then(|k| k.dropped.take()) {
            reports.push(d);
        }
    }

    /// Keys with versions left out since their last kept one, and the
    /// reports of them (at the end).
    pub fn take_pending(&mut self) -> Vec<pb::ArraysThinned> {
        let mut out: Vec<_> = self
            .keys
            .values_mut()
            .filter_map(|k| k.dropped.take())
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idict_core::value::Value;

    fn update(version: u64, t: f64, array_len: usize) -> pb::WatchUpdate {
        pb::WatchUpdate {
            version,
            time: t,
            changed: vec![
                pb::Entry {
                    key: "field".into(),
                    value: Some(idict_core::wire::value_to_proto(&Value::from(vec![
                        0.5;
                        array_len
                    ]))),
                },
                pb::Entry {
                    key: "x".into(),
                    value: Some(idict_core::wire::value_to_proto(&Value::Float(1.0))),
                },
            ],
            ..Default::default()
        }
    }

    /// The default: a 128 KB field published at 200 Hz for 3 s keeps its
    /// first version and about one a second (not all 600, 78 MB).
    #[test]
    fn by_default_a_key_keeps_a_version_a_second() {
        let mut b = ArrayBudget::of(crate::RecordArrays::default()).unwrap();
        let mut reports = Vec::new();
        let mut kept = 0;
        for v in 1..=600u64 {
            let mut u = update(v, v as f64 / 200.0, 16_384);
            b.filter(&mut u, false, &mut reports);
            kept += u.changed.iter().filter(|e| e.key == "field").count();
        }
        reports.extend(b.take_pending());
        assert!((3..=5).contains(&kept), "{kept} kept");
        let dropped: u64 = reports.iter().map(|r| r.dropped).sum();
        assert_eq!(kept as u64 + dropped, 600, "every version kept or reported");
        assert!(ArrayBudget::of(crate::RecordArrays::All).is_none());
        assert_eq!(
            crate::RecordArrays::parse_mibs(" ALL "),
            Some(crate::RecordArrays::All)
        );
        assert_eq!(
            crate::RecordArrays::parse_mibs("0.5"),
            Some(crate::RecordArrays::BytesPerSecond(524_288))
        );
        assert_eq!(crate::RecordArrays::parse_mibs("0"), None);
        assert_eq!(crate::RecordArrays::parse_mibs("fast"), None);
    }

    /// 100 versions of an 8 KB array, 10 a second, with 16 KB/s: the first
    /// is kept, then about two a second; the rest are reported, and a
    /// scalar is never touched.
    #[test]
    fn a_key_keeps_to_its_rate_and_reports_the_rest() {
        let mut b = ArrayBudget::new(16_000);
        let mut reports = Vec::new();
        let mut kept = 0;
        for v in 1..=100u64 {
            let mut u = update(v, v as f64 * 0.1, 1000);
            b.filter(&mut u, false, &mut reports);
            assert!(u.changed.iter().any(|e| e.key == "x"));
            kept += u.changed.iter().filter(|e| e.key == "field").count();
        }
        reports.extend(b.take_pending());
        // 10 s of run time at 16 KB/s: 20 arrays of 8 KB, plus the first
        // (and the bucket it started with).
        assert!((19..=23).contains(&kept), "{kept} kept");
        let dropped: u64 = reports.iter().map(|r| r.dropped).sum();
        assert_eq!(kept as u64 + dropped, 100, "every version kept or reported");
        assert!(
            reports
                .iter()
                .all(|r| r.key == "field" && r.bytes == r.dropped * 8000)
        );
        assert!(
            reports
                .windows(2)
                .all(|w| w[0].last_version < w[1].first_version)
        );
    }

    /// A large array in parts: left out whole, every part of it, with the
    /// messages kept (they frame the update).
    #[test]
    fn a_value_in_parts_is_left_out_whole() {
        let mut b = ArrayBudget::new(1000);
        let mut reports = Vec::new();
        // An encoded array value starts with its field's tag (7, bytes).
        let part = |v: u64, offset: u64, more: bool| {
            let mut data = vec![0u8; 100_000];
            data[0] = (7 << 3) | 2;
            pb::WatchUpdate {
                version: v,
                time: v as f64,
                more,
                part: Some(pb::ValuePart {
                    key: "big".into(),
                    offset,
                    total: 200_000,
                    data: bytes::Bytes::from(data),
                }),
                ..Default::default()
            }
        };
        let mut parts = [part(1, 0, true), part(1, 100_000, false)];
        for p in &mut parts {
            b.filter(p, false, &mut reports);
        }
        assert!(
            parts.iter().all(|p| p.part.is_some()),
            "the first version is kept"
        );
        let mut parts = [part(2, 0, true), part(2, 100_000, false)];
        for p in &mut parts {
            b.filter(p, false, &mut reports);
        }
        assert!(
            parts.iter().all(|p| p.part.is_none()),
            "then left out, whole"
        );
        assert!(!parts[1].more, "the update still ends where it did");
        let r = b.take_pending();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].first_version, r[0].dropped, r[0].bytes),
            (2, 1, 200_000)
        );
        // A large text (or map, or bytes) is no array: never left out.
        for v in 3..6 {
            let mut text = part(v, 0, false);
            if let Some(p) = text.part.as_mut() {
                p.key = "notes".into();
                let mut data = p.data.to_vec();
                data[0] = (5 << 3) | 2;
                p.data = bytes::Bytes::from(data);
            }
            b.filter(&mut text, false, &mut reports);
            assert!(text.part.is_some());
        }
    }

    /// A key removed and back starts again, kept; a reset later is a whole
    /// state, kept whole.
    #[test]
    fn a_key_back_or_a_reset_is_kept() {
        let mut b = ArrayBudget::new(1000);
        let mut reports = Vec::new();
        let mut u = update(1, 0.0, 1000);
        b.filter(&mut u, false, &mut reports);
        let mut u = update(2, 0.0, 1000);
        b.filter(&mut u, false, &mut reports);
        assert!(
            !u.changed.iter().any(|e| e.key == "field"),
            "past its budget"
        );
        let mut gone = pb::WatchUpdate {
            version: 3,
            removed: vec!["field".into()],
            ..Default::default()
        };
        b.filter(&mut gone, false, &mut reports);
        assert_eq!(reports.len(), 1, "what it left out, said when it goes");
        let mut back = update(4, 0.0, 1000);
        b.filter(&mut back, false, &mut reports);
        assert!(
            back.changed.iter().any(|e| e.key == "field"),
            "back: a first"
        );
        let mut reset = update(5, 0.0, 1000);
        reset.reset = true;
        b.filter(&mut reset, true, &mut reports);
        assert!(
            reset.changed.iter().any(|e| e.key == "field"),
            "a whole state"
        );
    }
}
