//! The `satchel.v1` gRPC API, generated from `proto/satchel/v1/satchel.proto`.
//!
//! Only the gRPC edges of Satchel (the daemon's API module, the CLI and the
//! tests) depend on this crate.

/// Messages, client and server of `satchel.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("satchel.v1");
}

/// The encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/satchel_descriptor.bin"));

/// The largest chunk of file bytes one message carries (1 MiB).
pub const MAX_CHUNK: usize = 1 << 20;
