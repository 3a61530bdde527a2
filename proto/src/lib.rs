//! The `utrace.v1` wire protocol: types and tonic stubs generated from
//! `proto/utrace/v1/tracer.proto`, and the encoded descriptor set that gRPC
//! reflection serves (so grpcurl works without the .proto files).

/// The type of every `bytes` field (`Memory.data`, `WriteMemory.data`…):
/// build one with `Bytes::from(vec)` (no copy) or
/// `Bytes::copy_from_slice(&[…])`; it derefs to `&[u8]`.
pub use bytes::Bytes;

pub mod codec;
mod fast;
#[doc(hidden)]
pub mod fuzzing;
pub mod validate;
pub mod wire;

/// Generated from `utrace/v1/tracer.proto`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("utrace.v1");
}

/// The server's stubs: `tracer_server::Tracer` takes and returns the
/// [`v1`] messages, except that its `Events` and `Trace` streams send
/// [`wire::WireEvent`]s.
#[allow(clippy::all, missing_docs)]
pub mod server {
    include!(concat!(env!("OUT_DIR"), "/server/utrace.v1.rs"));
}

/// The encoded `FileDescriptorSet` of every utrace .proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/utrace_descriptor.bin"));
