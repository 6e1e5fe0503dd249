//! Values too large for one message, sent in parts (`WatchUpdate.part`).
//!
//! A stream whose client stops reading keeps what it has built and not yet
//! sent. Were an 8 MiB array one message, each such stream would keep its
//! own 8 MiB copy (hundreds of stalled streams: gigabytes). In parts, a
//! stream keeps a handle to the value, which it shares with the run, and a
//! copy of one part at most.

use bytes::{Bytes, BytesMut};
use idict_core::value::Value;
use idict_core::wire;
use idict_proto::v1 as pb;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use std::collections::VecDeque;

/// Below this, a piece of a value is copied into the encoding's glue rather
/// than shared.
const SHARE_AT_LEAST: usize = 4096;

/// A value's protobuf encoding as a list of byte strings: the data of
/// large arrays and bytes values are the value's own buffers (shared, not
/// copied); the rest is encoded as usual.
#[derive(Default)]
struct Rope {
    pieces: VecDeque<Bytes>,
    glue: BytesMut,
}

impl Rope {
    fn share(&mut self, b: &Bytes) {
        if b.len() < SHARE_AT_LEAST {
            self.glue.extend_from_slice(b);
        } else {
            self.flush();
            self.pieces.push_back(b.clone());
        }
    }

    fn flush(&mut self) {
        if !self.glue.is_empty() {
            self.pieces.push_back(self.glue.split().freeze());
        }
    }

    fn field_header(&mut self, field: u32, len: usize) {
        encode_key(field, WireType::LengthDelimited, &mut self.glue);
        encode_varint(len as u64, &mut self.glue);
    }

    /// Appends `v`'s encoding, exactly as `v.encode_raw` would write it.
    fn value(&mut self, v: &pb::Value) {
        use pb::value::Kind;
        if v.encoded_len() < SHARE_AT_LEAST {
            v.encode_raw(&mut self.glue);
            return;
        }
        match &v.kind {
            Some(Kind::BytesValue(b)) => {
                self.field_header(6, b.len());
                self.share(b);
            }
            Some(Kind::ArrayValue(a)) => {
                self.field_header(7, a.encoded_len());
                let head = pb::NdArray {
                    dtype: a.dtype,
                    shape: a.shape.clone(),
                    data: Bytes::new(),
                };
                head.encode_raw(&mut self.glue);
                if !a.data.is_empty() {
                    self.field_header(3, a.data.len());
                    self.share(&a.data);
                }
            }
            Some(Kind::ListValue(l)) => {
                self.field_header(8, l.encoded_len());
                for item in &l.items {
                    self.field_header(1, item.encoded_len());
                    self.value(item);
                }
            }
            Some(Kind::MapValue(m)) => {
                self.field_header(9, m.encoded_len());
                for e in &m.entries {
                    self.field_header(1, e.encoded_len());
                    let head = pb::Entry {
                        key: e.key.clone(),
                        value: None,
                    };
                    head.encode_raw(&mut self.glue);
                    if let Some(v) = &e.value {
                        self.field_header(2, v.encoded_len());
                        self.value(v);
                    }
                }
            }
            // Text and scalars: encoded as they are.
            _ => v.encode_raw(&mut self.glue),
        }
    }
}

/// One value on its way out in parts.
pub(crate) struct ValueParts {
    key: String,
    pieces: VecDeque<Bytes>,
    offset: u64,
    total: u64,
}

impl ValueParts {
    pub fn new(key: &str, v: &Value) -> Self {
        let mut rope = Rope::default();
        rope.value(&wire::value_to_proto(v));
        rope.flush();
        let total = rope.pieces.iter().map(|p| p.len() as u64).sum();
        ValueParts {
            key: key.to_owned(),
            pieces: rope.pieces,
            offset: 0,
            total,
        }
    }

    /// The next part, of at most `max` bytes (at least one).
    pub fn next(&mut self, max: usize) -> pb::ValuePart {
        let max = max.max(1);
        let offset = self.offset;
        let data = match self.pieces.front_mut() {
            // Within one piece: a slice of it, not a copy.
            Some(front) if front.len() >= max => front.split_to(max),
            _ => {
                let mut out = BytesMut::with_capacity(max.min((self.total - offset) as usize));
                while out.len() < max
                    && let Some(front) = self.pieces.front_mut()
                {
                    let take = (max - out.len()).min(front.len());
                    out.extend_from_slice(&front.split_to(take));
                    if front.is_empty() {
                        self.pieces.pop_front();
                    }
                }
                out.freeze()
            }
        };
        if self.pieces.front().is_some_and(Bytes::is_empty) {
            self.pieces.pop_front();
        }
        self.offset += data.len() as u64;
        pb::ValuePart {
            key: self.key.clone(),
            offset,
            total: self.total,
            data,
        }
    }

    pub fn is_done(&self) -> bool {
        self.offset >= self.total
    }
}

/// Whether `v` goes in parts rather than in a message's `changed`.
pub(crate) fn too_large(v: &Value, chunk_bytes: usize) -> bool {
    v.approx_wire_bytes() > chunk_bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use idict_core::value::NdArray;

    fn joined(key: &str, v: &Value, max: usize) -> (Vec<u8>, usize) {
        let mut parts = ValueParts::new(key, v);
        let (mut out, mut n) = (Vec::new(), 0);
        while !parts.is_done() {
            let p = parts.next(max);
            assert_eq!(p.key, key);
            assert_eq!(p.offset as usize, out.len());
            assert_eq!(p.total, parts.total);
            assert!(!p.data.is_empty() && p.data.len() <= max);
            out.extend_from_slice(&p.data);
            n += 1;
        }
        (out, n)
    }

    #[test]
    fn parts_join_to_the_values_own_encoding() {
        let big = |n: usize, x: f64| {
            Value::Array(NdArray::from_f64_vec(vec![x; n], vec![n]).expect("shape fits"))
        };
        let mut map = std::collections::BTreeMap::new();
        map.insert("a".to_string(), big(3000, 1.5));
        map.insert("b".to_string(), Value::Str("s".repeat(9000)));
        map.insert("c".to_string(), Value::Int(-3));
        map.insert(
            "d".to_string(),
            Value::Bytes(Bytes::from(vec![7u8; 10_000])),
        );
        let values = [
            Value::Int(0),
            Value::Float(2.5),
            big(1, 0.0),
            big(100_000, 0.25),
            Value::Bytes(Bytes::from(vec![1u8; 70_000])),
            Value::List(vec![
                big(5000, 2.0),
                Value::Null,
                big(20, 3.0),
                big(9000, -1.0),
            ]),
            Value::Map(map),
            Value::List(vec![Value::List(vec![big(4096, 1.0)]), Value::Bool(true)]),
        ];
        for v in &values {
            let expected = wire::value_to_proto(v).encode_to_vec();
            for max in [1, 7, 4096, 65536, 1 << 20] {
                let (bytes, parts) = joined("k", v, max);
                assert_eq!(bytes, expected, "{v:?} in parts of {max}");
                assert_eq!(parts, expected.len().div_ceil(max));
                let back = pb::Value::decode(bytes.as_slice()).expect("decodes");
                assert_eq!(wire::value_from_proto(back).expect("valid"), *v);
            }
        }
    }
}
