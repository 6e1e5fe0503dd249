//! The CLI's VALUE path: JSON text to a `Value`, to the wire and back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let value = idict::Value::from(json);
    let _ = value.to_json();
    let _ = value.to_string();
    let wire = idict::wire::value_to_proto(&value).encode_to_vec();
    // prost's decoder stops at 100 levels of nesting: only JSON nested
    // deeper than the wire allows (MAX_DEPTH) may fail to decode.
    let Ok(decoded) = idict::proto::v1::Value::decode(wire.as_slice()) else {
        assert!(
            depth(&value) > idict::wire::MAX_DEPTH,
            "our own encoding decodes"
        );
        return;
    };
    // The wire's checks may refuse what JSON allows (too deep, a key with
    // control characters); what they accept comes back the same.
    if let Ok(back) = idict::wire::value_from_proto(decoded) {
        assert_eq!(idict::wire::value_to_proto(&back).encode_to_vec(), wire);
    }
});

/// How deeply lists and maps nest in `v` (a scalar is 0).
fn depth(v: &idict::Value) -> usize {
    match v {
        idict::Value::List(l) => 1 + l.iter().map(depth).max().unwrap_or(0),
        idict::Value::Map(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
