//! The hand-written decoders of proto/src/fast.rs against prost, and the
//! request check (proto/src/validate.rs) on any input:
//! `cargo fuzz run decoders` (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    utrace_proto::fuzzing::decoders(data);
});
