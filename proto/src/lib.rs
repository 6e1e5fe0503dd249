//! The idict v1 wire contract: the generated protobuf messages and the tonic
//! client and server for `idict.v1.Inspector`, defined in
//! `proto/idict/v1/inspector.proto`, and the codec both ends use (prost
//! with an exact reservation; a count of a Set's values before decoding
//! it). No semantics of runs: those live in `idict-core`, the server in
//! `idict-server`, the client in `idict-client`.

pub mod codec;
pub mod scan;

/// Generated code for the `idict.v1` protobuf package.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("idict.v1");
}

/// The encoded `FileDescriptorSet` of the contract, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/idict_descriptor.bin"));

/// The protocol version this contract describes (`RunInfo.protocol_version`).
pub const PROTOCOL_VERSION: u32 = 2;

/// The fully qualified gRPC service name, as health checks and reflection name it.
pub const SERVICE_NAME: &str = "idict.v1.Inspector";
