//! Joins a value the server sent in parts (`WatchUpdate.part`) back into
//! one value, checking each part against the ones before it.

use crate::value::Value;
use crate::wire;
use idict_proto::v1 as pb;
use prost::Message;

/// Why parts were refused: they do not follow, overrun, or do not decode.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("a value sent in parts: {0}")]
pub struct PartError(String);

/// A value whose parts are arriving.
pub struct PartJoiner {
    /// Most bytes a value may take (the client's message limit).
    max: usize,
    current: Option<(String, Vec<u8>, usize)>,
}

fn refused(what: String) -> PartError {
    PartError(what)
}

/// A value's encoding, joined: decoded without copying its arrays' data.
fn decode_value(key: String, bytes: bytes::Bytes) -> Result<(String, Value), PartError> {
    let value =
        pb::Value::decode(bytes).map_err(|e| refused(format!("'{key}' does not decode: {e}")))?;
    let value = wire::value_from_proto(value).map_err(|e| refused(format!("'{key}': {e}")))?;
    Ok((key, value))
}

impl PartJoiner {
    pub fn new(max: usize) -> Self {
        PartJoiner { max, current: None }
    }

    /// Takes the next part; the key and value once the last part is in.
    pub fn add(&mut self, p: pb::ValuePart) -> Result<Option<(String, Value)>, PartError> {
        let total = usize::try_from(p.total).unwrap_or(usize::MAX);
        if p.offset == 0 {
            if let Some((key, _, _)) = &self.current {
                return Err(refused(format!("'{key}' was cut off by '{}'", p.key)));
            }
            if total > self.max {
                return Err(refused(format!(
                    "'{}' takes {total} bytes, more than this client accepts ({})",
                    p.key, self.max
                )));
            }
            wire::check_key(&p.key).map_err(|e| refused(e.to_string()))?;
            if p.data.len() as u64 == p.total && !p.data.is_empty() {
                // Whole in one part: decoded from the received buffer
                // itself (an array's data shares it), not copied first.
                return decode_value(p.key, p.data).map(Some);
            }
            // Reserved up to 64 MiB at once (an 8 MiB array is not copied
            // again as the buffer doubles), grown past that as parts come:
            // a server cannot make us reserve a gigabyte it never sends.
            let reserve = total.min(64 << 20);
            self.current = Some((p.key.clone(), Vec::with_capacity(reserve), total));
        }
        let Some((key, buf, expected)) = self.current.as_mut() else {
            return Err(refused(format!(
                "'{}' starts at byte {}, not 0",
                p.key, p.offset
            )));
        };
        if *key != p.key || buf.len() as u64 != p.offset || *expected != total {
            return Err(refused(format!(
                "'{}' at byte {} of {total} does not follow '{key}' at byte {} of {expected}",
                p.key,
                p.offset,
                buf.len()
            )));
        }
        if p.data.is_empty() || buf.len() + p.data.len() > total {
            return Err(refused(format!(
                "'{key}': a part of {} bytes at byte {} of {total}",
                p.data.len(),
                buf.len()
            )));
        }
        buf.extend_from_slice(&p.data);
        if buf.len() < total {
            return Ok(None);
        }
        let Some((key, buf, _)) = self.current.take() else {
            return Ok(None);
        };
        decode_value(key, bytes::Bytes::from(buf)).map(Some)
    }

    /// Whether a value is still incomplete (an update must not end there).
    pub fn is_open(&self) -> bool {
        self.current.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(key: &str, offset: u64, total: u64, data: &[u8]) -> pb::ValuePart {
        pb::ValuePart {
            key: key.into(),
            offset,
            total,
            data: bytes::Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn parts_that_do_not_follow_are_refused() {
        let v = wire::value_to_proto(&Value::Str("hello, parts".into())).encode_to_vec();
        let total = v.len() as u64;
        let mut j = PartJoiner::new(1 << 20);
        assert_eq!(j.add(part("k", 0, total, &v[..5])), Ok(None));
        assert!(j.is_open());
        assert_eq!(
            j.add(part("k", 5, total, &v[5..])),
            Ok(Some(("k".into(), Value::Str("hello, parts".into()))))
        );
        assert!(!j.is_open());

        let bad = [
            vec![part("k", 3, total, &v[3..])],
            vec![part("k", 0, total, &v[..5]), part("j", 5, total, &v[5..])],
            vec![part("k", 0, total, &v[..5]), part("k", 6, total, &v[6..])],
            vec![part("k", 0, total, &v[..5]), part("k", 0, total, &v[..5])],
            vec![part("k", 0, 2, &v[..5])],
            vec![part("k", 0, total, &[])],
            vec![part("k", 0, 1 << 40, &v[..5])],
            vec![part("k", 0, 3, &[0xff, 0xff, 0xff])],
        ];
        for parts in bad {
            let mut j = PartJoiner::new(1 << 20);
            let result: Result<Vec<_>, _> = parts.into_iter().map(|p| j.add(p)).collect();
            assert!(result.is_err(), "{result:?}");
        }
    }
}
