//! Every request message, decoded from arbitrary bytes and validated as the
//! server validates it: never a panic, only errors.
#![no_main]

use idict::proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = pb::SetRequest::decode(data) {
        let _ = idict::wire::check_key(&set.key);
        if let Some(v) = set.value {
            if let Ok(value) = idict::wire::value_from_proto(v) {
                // What is accepted re-encodes and decodes to the same bytes.
                let once = idict::wire::value_to_proto(&value).encode_to_vec();
                let again = pb::Value::decode(once.as_slice()).expect("re-decodes");
                let back = idict::wire::value_from_proto(again).expect("re-validates");
                assert_eq!(idict::wire::value_to_proto(&back).encode_to_vec(), once);
            }
        }
    }
    let _ = pb::ControlRequest::decode(data).map(|c| pb::Action::try_from(c.action));
    let _ = pb::WatchRequest::decode(data);
    let _ = pb::GetHistoryRequest::decode(data);
    let _ = pb::GetSnapshotRequest::decode(data);
    let _ = pb::GetInfoRequest::decode(data);
});
