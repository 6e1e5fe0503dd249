//! Restoring from an arbitrary file: a clear error or a run, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("idict-fuzz-ckpt-{}", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    let mut bytes = idict::checkpoint::MAGIC.to_vec();
    bytes.extend_from_slice(data);
    if f.write_all(&bytes).is_err() {
        return;
    }
    drop(f);
    if let Ok(run) = idict::IDict::restore(&path) {
        let _ = run.version();
        let _ = run.lock().len();
        // A restored run must be able to go on: publish twice, then end.
        run.lock().insert("fuzz", 1.0);
        let _ = run.notify_update();
        let _ = run.notify_update_final();
        let _ = run.history("fuzz");
    }
});
