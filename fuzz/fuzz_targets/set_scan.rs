//! The codec's count of a Set's values before decoding (`idict_proto::scan`)
//! must never undercount what prost then builds: an undercount would let a
//! request that decodes to gigabytes past the budget. Any bytes: the walk
//! never panics, and whenever prost decodes a SetRequest, the walk counted
//! at least its values and entries, or said it held more than the limit.
#![no_main]

use idict::proto::scan::{Count, set_request_values};
use idict::proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn built(v: &pb::Value) -> usize {
    1 + match &v.kind {
        Some(pb::value::Kind::ListValue(l)) => l.items.iter().map(built).sum(),
        Some(pb::value::Kind::MapValue(m)) => m
            .entries
            .iter()
            .map(|e| 1 + e.value.as_ref().map_or(0, built))
            .sum(),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let limit = 64;
    let counted = set_request_values(data, limit);
    let unlimited = set_request_values(data, usize::MAX);
    if let Ok(req) = pb::SetRequest::decode(data) {
        let n = req.value.as_ref().map_or(0, built);
        match (counted, unlimited) {
            (Count::Within(c), Count::Within(u)) => {
                assert!(
                    c >= n && u == c,
                    "counted {c} (unlimited {u}), prost built {n}"
                );
            }
            (Count::Over, Count::Within(u)) => {
                assert!(
                    u > limit && u >= n,
                    "over the limit, yet {u} in all, prost built {n}"
                );
            }
            (c, u) => panic!("prost decoded what the walk called {c:?} / {u:?} ({n} built)"),
        }
    }
});
