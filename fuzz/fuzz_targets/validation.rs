//! The server's validation of engine specs and batches on any input:
//! `cargo fuzz run validation` (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    utraced::fuzzing::engine_spec(data);
    utraced::fuzzing::batch(data);
});
