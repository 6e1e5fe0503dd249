//! The idict v1 wire contract: the generated protobuf messages and the tonic
//! client and server for `idict.v1.Inspector`, defined in
//! `proto/idict/v1/inspector.proto`. This crate holds no logic: the embedded
//! server and the client live in the `idict` crate.

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
