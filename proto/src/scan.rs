//! A walk over an encoded `SetRequest` that counts the values prost would
//! build from it, without building any: a 63 MiB list of empty values
//! decodes to gigabytes (each `Value` is tens of bytes in memory, two on
//! the wire), so the size of a message does not bound what decoding it
//! costs. The codec refuses a request over the budget before decoding.
//!
//! Malformed input is not judged here: the walk gives up and prost, which
//! decodes next, reports it.

/// Values (and map entries) one request may carry: about 100 MB decoded.
pub const MAX_VALUE_NODES: usize = 1 << 20;
/// Deeper than prost's own recursion limit (100): where the walk gives up,
/// prost has already refused the message.
const MAX_DEPTH: usize = 256;

struct Walk<'a> {
    buf: &'a [u8],
}

impl<'a> Walk<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// The next field: its number, and its bytes when length-delimited.
    fn field(&mut self) -> Option<(u64, Option<&'a [u8]>)> {
        let key = self.varint()?;
        let (number, wire_type) = (key >> 3, key & 7);
        let body = match wire_type {
            0 => {
                self.varint()?;
                None
            }
            1 => {
                self.buf = self.buf.get(8..)?;
                None
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let (body, rest) = (self.buf.get(..len)?, self.buf.get(len..)?);
                self.buf = rest;
                Some(body)
            }
            5 => {
                self.buf = self.buf.get(4..)?;
                None
            }
            // A group (deprecated, but prost skips it): skipped here too,
            // or one placed first would hide the rest from the count.
            3 => {
                self.skip_group(number, 0)?;
                None
            }
            _ => return None,
        };
        Some((number, body))
    }

    fn skip_group(&mut self, number: u64, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        loop {
            let key = self.varint()?;
            let (n, wire_type) = (key >> 3, key & 7);
            match wire_type {
                4 if n == number => return Some(()),
                4 => return None,
                3 => self.skip_group(n, depth + 1)?,
                0 => {
                    self.varint()?;
                }
                1 => self.buf = self.buf.get(8..)?,
                2 => {
                    let len = usize::try_from(self.varint()?).ok()?;
                    self.buf = self.buf.get(len..)?;
                }
                5 => self.buf = self.buf.get(4..)?,
                _ => return None,
            }
        }
    }
}

/// What a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// This many values and entries, within the limit.
    Within(usize),
    /// More than the limit (found before anything malformed).
    Over,
    /// Bytes that are not a SetRequest: prost, decoding next, says why.
    Malformed,
}

/// Counts into `n`; stops once the walk gives up (malformed, too deep)
/// or `n` passes `limit`.
struct Counter {
    n: usize,
    limit: usize,
    over: bool,
}

impl Counter {
    fn add(&mut self, k: usize) -> Option<()> {
        self.n += k;
        self.over = self.n > self.limit;
        (!self.over).then_some(())
    }

    fn each(
        &mut self,
        buf: &[u8],
        depth: usize,
        mut f: impl FnMut(&mut Self, u64, Option<&[u8]>, usize) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut w = Walk { buf };
        while !w.buf.is_empty() {
            let (number, body) = w.field()?;
            f(self, number, body, depth)?;
        }
        Some(())
    }

    fn value(&mut self, buf: &[u8], depth: usize) -> Option<()> {
        self.add(1)?;
        self.each(buf, depth, |c, number, body, depth| match (number, body) {
            (8, Some(list)) => c.each(list, depth + 1, |c, n, b, d| match (n, b) {
                (1, Some(item)) => c.value(item, d + 1),
                _ => Some(()),
            }),
            (9, Some(map)) => c.each(map, depth + 1, |c, n, b, d| match (n, b) {
                (1, Some(entry)) => {
                    c.add(1)?;
                    c.each(entry, d + 1, |c, n, b, d| match (n, b) {
                        (2, Some(v)) => c.value(v, d + 1),
                        _ => Some(()),
                    })
                }
                _ => Some(()),
            }),
            _ => Some(()),
        })
    }
}

/// How many values and entries the encoded `SetRequest` holds, counting
/// up to `limit`. Past the limit it stops at once: bytes that go wrong
/// further on must not send the message to prost, which would build all
/// it can before it found the fault.
pub fn set_request_values(buf: &[u8], limit: usize) -> Count {
    let mut c = Counter {
        n: 0,
        limit,
        over: false,
    };
    let walked = c.each(buf, 0, |c, number, body, depth| match (number, body) {
        (2, Some(v)) => c.value(v, depth + 1),
        _ => Some(()),
    });
    match walked {
        Some(()) => Count::Within(c.n),
        None if c.over => Count::Over,
        None => Count::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{self as pb, value::Kind};
    use prost::Message;

    fn list(items: Vec<pb::Value>) -> pb::Value {
        pb::Value {
            kind: Some(Kind::ListValue(pb::ListValue { items })),
        }
    }
    fn request(value: pb::Value) -> Vec<u8> {
        pb::SetRequest {
            key: "x".into(),
            value: Some(value),
            client_name: String::new(),
            at_step: None,
        }
        .encode_to_vec()
    }
    fn int(i: i64) -> pb::Value {
        pb::Value {
            kind: Some(Kind::IntValue(i)),
        }
    }

    #[test]
    fn values_are_counted_as_prost_would_build_them() {
        let v = list(vec![
            int(1),
            list(vec![int(2), int(3)]),
            pb::Value::default(),
        ]);
        let map = pb::Value {
            kind: Some(Kind::MapValue(pb::MapValue {
                entries: vec![pb::Entry {
                    key: "k".into(),
                    value: Some(v.clone()),
                }],
            })),
        };
        let req = request(map);
        // map value + entry + list + 1 + list + 2 + 3 + empty value
        assert_eq!(set_request_values(&req, usize::MAX), Count::Within(8));
        assert_eq!(set_request_values(&req, 7), Count::Over);
        assert_eq!(
            set_request_values(&req[..req.len() - 1], usize::MAX),
            Count::Malformed
        );
    }

    #[test]
    fn a_group_first_does_not_hide_the_rest() {
        let req = request(list(vec![pb::Value::default(); 1000]));
        // Field 7, a group holding a varint, before everything else.
        let mut grouped = vec![(7 << 3) | 3, (1 << 3), 5, (7 << 3) | 4];
        grouped.extend_from_slice(&req);
        assert!(pb::SetRequest::decode(grouped.as_slice()).is_ok());
        assert_eq!(set_request_values(&grouped, 500), Count::Over);
    }

    #[test]
    fn empty_values_cost_two_bytes_each_on_the_wire() {
        let req = request(list(vec![pb::Value::default(); 1000]));
        assert!(req.len() < 2100);
        assert_eq!(set_request_values(&req, usize::MAX), Count::Within(1001));
        // Over the limit, then garbage: still over (prost would build the
        // values before it met the garbage).
        let mut bad = req.clone();
        bad.extend_from_slice(&[0xff; 11]);
        assert_eq!(set_request_values(&bad, 500), Count::Over);
    }
}
