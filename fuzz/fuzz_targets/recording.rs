//! Reading an arbitrary recording: its header and records, or a clear
//! error, never a panic, and never more memory than the input holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = idict::recording::MAGIC.to_vec();
    bytes.extend_from_slice(data);
    let path = std::path::Path::new("fuzz");
    if let Ok(mut recording) = idict::recording::read(bytes.as_slice(), path) {
        let _ = &recording.header.name;
        for entry in recording.by_ref() {
            if entry.is_err() {
                break;
            }
        }
        let _ = recording.cut_at;
    }
});
