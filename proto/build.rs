//! Compile proto/utrace/v1/*.proto with protox (pure Rust: no protoc needed),
//! generate prost types and tonic stubs, and keep the encoded descriptor set
//! for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["utrace/v1/tracer.proto", "utrace/v1/probe.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    // Keep source info: the comments reach reflection clients, so grpcurl's
    // `describe` shows every field's documentation.
    let fds = protox::Compiler::new(["."])?
        .include_source_info(true)
        .open_files(files)?
        .file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("utrace_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Every `bytes` field is a `bytes::Bytes`: a read's buffer goes to
        // the encoder without a copy, and a decoded reply's data are slices
        // of the received buffer, not one allocation and copy each.
        .bytes(".")
        // Decode from one contiguous `Bytes` (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .build_server(false)
        .build_client(true)
        .compile_fds(fds.clone())?;
    // The server stubs, on their own: the same messages (crate::v1), except
    // that the Events and Trace streams send a `WireEvent` (src/wire.rs),
    // an Event whose shared part is encoded once for all its subscribers,
    // and Batch answers a `WireBatchReply`.
    let server = out.join("server");
    std::fs::create_dir_all(&server)?;
    tonic_prost_build::configure()
        .extern_path(".utrace.v1.Event", "crate::wire::WireEvent")
        // The Batch RPC answers a `WireBatchReply` (src/wire.rs): a batch
        // of reads is encoded straight from its read buffer.
        .extern_path(".utrace.v1.BatchReply", "crate::wire::WireBatchReply")
        // ... and takes a `WireBatchRequest`: a batch of reads is decoded
        // straight to its ranges.
        .extern_path(".utrace.v1.BatchRequest", "crate::wire::WireBatchRequest")
        .extern_path(".utrace.v1", "crate::v1")
        .codec_path("crate::codec::Codec")
        .build_server(true)
        .build_client(false)
        .out_dir(&server)
        .compile_fds(fds)?;
    Ok(())
}
