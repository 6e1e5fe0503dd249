//! Compiles `idict/v1/inspector.proto` with protox (pure Rust: no system protoc)
//! and generates the tonic client and server, plus the encoded descriptor set
//! that the server hands to gRPC reflection.

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "idict/v1/inspector.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("idict_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Arrays and bytes values decode into a shared `Bytes`, never copied.
        .bytes(".idict.v1")
        // Our codec: prost, reserving each message's size before encoding it.
        .codec_path("crate::codec::ReservingCodec")
        .compile_fds(fds)?;
    Ok(())
}
