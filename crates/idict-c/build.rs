//! Names the shared library by its ABI: on ELF systems `libidict_c.so`
//! carries the SONAME `libidict.so.<IDICT_ABI_VERSION>`, the name it is
//! installed under (CMakeLists.txt), so a program linked with `-lidict`
//! asks the loader for the ABI it was built against.

use std::fs;

fn main() {
    println!("cargo:rerun-if-changed=src/lib.rs");
    let source = fs::read_to_string("src/lib.rs").expect("src/lib.rs");
    let abi = source
        .lines()
        .find_map(|line| line.strip_prefix("pub const IDICT_ABI_VERSION: u32 = "))
        .and_then(|rest| rest.strip_suffix(';'))
        .and_then(|n| n.parse::<u32>().ok())
        .expect("src/lib.rs defines `pub const IDICT_ABI_VERSION: u32 = N;`");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = matches!(
        os.as_str(),
        "linux"
            | "android"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "dragonfly"
            | "solaris"
            | "illumos"
    );
    if elf {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libidict.so.{abi}");
    }
}
