//! What rank 0 tells every rank at each `wait()`: go on or stop, the
//! steering writes to apply at this step, and, when rank 0's keys have
//! changed, the keys whose values the ranks send it at each update.
//!
//! A fixed header (one broadcast on every step) and, only when there are
//! writes or keys, a payload (a second broadcast of its length). When rank
//! 0's gate is about to hold, it first sends a header that says so: the
//! ranks then wait for the decision asleep (a nonblocking broadcast they
//! test now and then), while a step that does not hold costs one plain
//! broadcast.

use idict::proto::v1 as pb;
use idict::{Value, wire};
use prost::Message;

/// The header's words: flags, then the payload's length in bytes.
pub const HEADER_WORDS: usize = 2;
const GO: u64 = 1;
const KEYS: u64 = 2;
const HOLD: u64 = 4;
const STITCH: u64 = 8;

/// One step's decision.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// Do the next step (false: leave the loop).
    pub go: bool,
    /// Steering writes rank 0 applied, in order: every rank applies them.
    pub writes: Vec<(String, Value)>,
    /// The keys reduced from now on, in the order ranks send their values;
    /// `None`: unchanged.
    pub keys: Option<Vec<String>>,
    /// This step's update stitches the decomposed fields on rank 0.
    pub stitch: bool,
}

/// Why a payload could not be read (a bug: rank 0 wrote it).
#[derive(Debug, thiserror::Error)]
#[error("a decision from rank 0 that does not decode: {0}")]
pub struct Garbled(pub String);

impl Decision {
    /// The header and the payload (empty when there is nothing but `go`).
    pub fn encode(&self) -> ([u64; HEADER_WORDS], Vec<u8>) {
        let mut payload = Vec::new();
        put_u32(&mut payload, self.writes.len());
        for (key, value) in &self.writes {
            put_bytes(&mut payload, key.as_bytes());
            put_bytes(&mut payload, &wire::value_to_proto(value).encode_to_vec());
        }
        if let Some(keys) = &self.keys {
            put_u32(&mut payload, keys.len());
            for key in keys {
                put_bytes(&mut payload, key.as_bytes());
            }
        }
        if self.writes.is_empty() && self.keys.is_none() {
            payload.clear();
        }
        let flags = (u64::from(self.go) * GO)
            | (u64::from(self.keys.is_some()) * KEYS)
            | (u64::from(self.stitch) * STITCH);
        ([flags, payload.len() as u64], payload)
    }

    /// The header that says rank 0 holds: the decision comes later.
    pub fn hold_header() -> [u64; HEADER_WORDS] {
        [HOLD, 0]
    }

    /// True for [`hold_header`](Self::hold_header)'s.
    pub fn is_hold(header: &[u64; HEADER_WORDS]) -> bool {
        header[0] & HOLD != 0
    }

    /// The payload's length a header announces.
    pub fn payload_len(header: &[u64; HEADER_WORDS]) -> usize {
        header[1] as usize
    }

    pub fn decode(header: &[u64; HEADER_WORDS], payload: &[u8]) -> Result<Decision, Garbled> {
        let mut d = Decision {
            go: header[0] & GO != 0,
            stitch: header[0] & STITCH != 0,
            ..Decision::default()
        };
        if payload.is_empty() {
            return Ok(d);
        }
        let mut r = Reader(payload);
        for _ in 0..r.u32()? {
            let key = r.text()?;
            let value = pb::Value::decode(r.bytes()?)
                .map_err(|e| Garbled(e.to_string()))
                .and_then(|v| wire::value_from_proto(v).map_err(|e| Garbled(e.to_string())))?;
            d.writes.push((key, value));
        }
        if header[0] & KEYS != 0 {
            let n = r.u32()?;
            let mut keys = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                keys.push(r.text()?);
            }
            d.keys = Some(keys);
        }
        Ok(d)
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<usize, Garbled> {
        let (n, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or_else(|| Garbled("cut short".into()))?;
        self.0 = rest;
        Ok(u32::from_le_bytes(*n) as usize)
    }
    fn bytes(&mut self) -> Result<&'a [u8], Garbled> {
        let n = self.u32()?;
        let (b, rest) = self
            .0
            .split_at_checked(n)
            .ok_or_else(|| Garbled("cut short".into()))?;
        self.0 = rest;
        Ok(b)
    }
    fn text(&mut self) -> Result<String, Garbled> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|e| Garbled(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_go_has_no_payload_and_writes_and_keys_round_trip() {
        let go = Decision {
            go: true,
            ..Decision::default()
        };
        let (header, payload) = go.encode();
        assert!(payload.is_empty());
        assert_eq!(Decision::decode(&header, &payload).unwrap(), go);

        let full = Decision {
            go: false,
            writes: vec![
                ("dt".into(), Value::Float(1e-5)),
                ("name".into(), "x".into()),
            ],
            keys: Some(vec!["residual".into(), "energy".into()]),
            stitch: true,
        };
        let (header, payload) = full.encode();
        assert_eq!(Decision::payload_len(&header), payload.len());
        assert_eq!(Decision::decode(&header, &payload).unwrap(), full);
        // Keys alone, no writes.
        let keys = Decision {
            go: true,
            writes: vec![],
            keys: Some(vec![]),
            stitch: false,
        };
        let (header, payload) = keys.encode();
        assert_eq!(Decision::decode(&header, &payload).unwrap(), keys);
        // A hold is no decision.
        assert!(Decision::is_hold(&Decision::hold_header()));
        assert!(!Decision::is_hold(&header));
        // A payload cut short is an error, not a panic.
        let (header, payload) = full.encode();
        assert!(Decision::decode(&header, &payload[..payload.len() - 3]).is_err());
    }
}
