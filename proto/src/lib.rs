//! The `utrace.v1` wire protocol: types and tonic stubs generated from
//! `proto/utrace/v1/tracer.proto`, and the encoded descriptor set that gRPC
//! reflection serves (so grpcurl works without the .proto files).

/// The type of every `bytes` field (`Memory.data`, `WriteMemory.data`…):
/// build one with `Bytes::from(vec)` (no copy) or
/// `Bytes::copy_from_slice(&[…])`; it derefs to `&[u8]`.
pub use bytes::Bytes;

pub mod codec;
mod fast;

/// Generated from `utrace/v1/tracer.proto`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("utrace.v1");
}

/// The encoded `FileDescriptorSet` of every utrace .proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/utrace_descriptor.bin"));
