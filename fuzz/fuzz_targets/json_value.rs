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
    let decoded = idict::proto::v1::Value::decode(wire.as_slice()).expect("our own encoding decodes");
    // Deep JSON may exceed the wire's nesting limit; anything else must pass.
    if let Ok(back) = idict::wire::value_from_proto(decoded) {
        assert_eq!(idict::wire::value_to_proto(&back).encode_to_vec(), wire);
    }
});
