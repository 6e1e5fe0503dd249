//! `include/idict.h` is what cbindgen makes of the crate now: a stale
//! header (a function added, a comment changed) fails here.
//! `UPDATE_HEADER=1 cargo test -p idict-c --test header` writes it anew.

use std::path::Path;

#[test]
fn the_committed_header_is_generated_from_the_crate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads the crate")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8");
    let path = dir.join("include/idict.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/idict.h is stale: run `UPDATE_HEADER=1 cargo test -p idict-c --test header`"
    );
}
