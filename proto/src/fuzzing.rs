//! Oracles for fuzzing, shared by the bounded random tests (run in CI)
//! and the cargo-fuzz targets in `fuzz/`. Each panics when the property it
//! checks does not hold. Not a public interface.

use bytes::Bytes;
use prost::Message;

use crate::fast::{
    decode_batch_reply, decode_batch_request, decode_event, decode_wire_batch_request,
};
use crate::v1 as pb;
use crate::wire::WireBatchRequest;

/// On any input `b`: the hand-written decoders agree with prost (the same
/// message, or nothing where prost fails or where they decline); what the
/// server's fast path takes, the request check takes too (the fast path
/// is no way around it); and the request check never panics.
pub fn decoders(b: &[u8]) {
    let msg = Bytes::copy_from_slice(b);
    if let Some(r) = decode_batch_request(&msg) {
        assert_eq!(Ok(r), pb::BatchRequest::decode(b), "{b:02x?}");
    }
    if let Some(r) = decode_batch_reply(&msg) {
        assert_eq!(Ok(r), pb::BatchReply::decode(b), "{b:02x?}");
    }
    let checked = crate::validate::check(".utrace.v1.BatchRequest", b);
    if let Some(w) = decode_wire_batch_request(&msg) {
        assert_eq!(
            checked,
            Ok(()),
            "the fast path took what the check refuses: {b:02x?}"
        );
        let reads = matches!(w, WireBatchRequest::Reads(_));
        let r = w.into_request();
        // (An odd encoding of a read leaves the batch a plain request.)
        if reads {
            assert!(
                !r.ops.is_empty()
                    && r.ops
                        .iter()
                        .all(|o| matches!(o.op, Some(pb::op::Op::ReadMemory(_)))),
                "{b:02x?}"
            );
        }
        assert_eq!(Ok(r), pb::BatchRequest::decode(b), "{b:02x?}");
    }
    if let Some(r) = decode_event(&msg) {
        assert_eq!(Ok(r), pb::Event::decode(b), "{b:02x?}");
    }
    for name in [
        ".utrace.v1.ClientMessage",
        ".utrace.v1.SpawnRequest",
        ".utrace.v1.TraceRequest",
    ] {
        let _ = crate::validate::check(name, b);
    }
}

/// xorshift64*: deterministic random inputs without a dependency, for the
/// bounded random tests.
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
