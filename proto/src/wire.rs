//! [`WireEvent`]: the Rust type the server's `Events` and `Trace` streams
//! send. On the wire it is an `Event`; in memory it is a subscriber's own
//! fields plus, already encoded, the fields every subscriber of one stop
//! shares, so a stop reported to many subscribers is encoded once.
//!
//! Protobuf lets a message's fields come in any order, and a scalar or
//! oneof field that comes twice takes its last value: the shared fields,
//! appended after the subscriber's, decode into the same `Event` that one
//! message holding all of them would.

use bytes::{BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::fast;
use crate::v1::{op, BatchReply, BatchRequest, Event, Op, ReadMemory};

/// An `Event` on its way out (see the module documentation). Clients decode
/// it as a plain [`Event`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WireEvent {
    own: Event,
    /// The encoding of an `Event` holding the shared fields only.
    shared: Bytes,
}

impl WireEvent {
    /// A whole event, encoded as it is.
    pub fn new(ev: Event) -> Self {
        WireEvent {
            own: ev,
            shared: Bytes::new(),
        }
    }

    /// The event made of `own` followed by `shared`, the encoding of an
    /// `Event` (e.g. [`WireEvent::encode_shared`]'s). Fields set in both
    /// take `shared`'s value (its oneof `kind` too).
    pub fn with_shared(own: Event, shared: Bytes) -> Self {
        WireEvent { own, shared }
    }

    /// Encode the fields of `ev` that subscribers share, for
    /// [`WireEvent::with_shared`].
    pub fn encode_shared(ev: &Event) -> Bytes {
        Bytes::from(ev.encode_to_vec())
    }
}

impl Message for WireEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.own.encode_raw(buf);
        buf.put_slice(&self.shared);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Decoding (which the server never does) yields a whole event.
        self.own.merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.own.encoded_len() + self.shared.len()
    }

    fn clear(&mut self) {
        self.own.clear();
        self.shared = Bytes::new();
    }
}

/// A `BatchReply` on its way out of the server's `Batch` RPC: either a
/// reply as it is, or (for a batch of only `read_memory` ops) the bytes of
/// one scatter read and each range's outcome, encoded straight into the
/// `results` a client decodes, with no `OpResult` built per range.
#[derive(Clone, Debug, PartialEq)]
pub enum WireBatchReply {
    /// Any reply.
    Reply(BatchReply),
    /// The reply of a batch of reads (see [`ReadsReply`]).
    Reads(ReadsReply),
}

impl Default for WireBatchReply {
    fn default() -> Self {
        WireBatchReply::Reply(BatchReply::default())
    }
}

/// The reply of a batch whose ops are all `read_memory`, as one buffer:
/// result `i` is a `memory` result with range `i`'s address and the bytes
/// that arrived, or `skipped` after a range that fell short under
/// `stop_on_error`. Encodes exactly as the equivalent `BatchReply`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadsReply {
    /// The ranges' bytes, back to back: range `i` at the sum of the asked
    /// lengths before it.
    pub buf: Vec<u8>,
    /// Each range's address and asked length, in request order.
    pub ranges: Vec<(u64, usize)>,
    /// Per range, the bytes that arrived (from its start) and why the rest
    /// did not (empty when all did); `None` when every range arrived whole.
    pub got: Option<Vec<(usize, String)>>,
    /// The batch's `stop_on_error`: results after the first range that
    /// fell short are `skipped`.
    pub stop_on_error: bool,
}

impl Message for WireBatchReply {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            // Cannot fail: `Message::encode` checked `buf` has room for
            // `encoded_len()` bytes before calling this.
            WireBatchReply::Reply(r) => {
                let _ = fast::encode_batch_reply(r, buf);
            }
            WireBatchReply::Reads(r) => fast::encode_reads_reply(r, buf),
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Decoding (which the server never does) yields a plain reply.
        if let WireBatchReply::Reads(_) = self {
            *self = WireBatchReply::default();
        }
        match self {
            WireBatchReply::Reply(r) => r.merge_field(tag, wire_type, buf, ctx),
            WireBatchReply::Reads(_) => Ok(()),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            WireBatchReply::Reply(r) => fast::batch_reply_len(r),
            WireBatchReply::Reads(r) => fast::reads_reply_len(r),
        }
    }

    fn clear(&mut self) {
        *self = WireBatchReply::default();
    }
}

/// What the server's `Batch` stub takes: a `BatchRequest`, decoded straight
/// to its ranges when every op is a `read_memory` (no `Op` per range to
/// build, convert and drop), else as a plain request.
#[derive(Clone, Debug, PartialEq)]
pub enum WireBatchRequest {
    /// Any request.
    Request(BatchRequest),
    /// A request whose ops are all `read_memory` (see [`ReadsRequest`]).
    Reads(ReadsRequest),
}

impl Default for WireBatchRequest {
    fn default() -> Self {
        WireBatchRequest::Request(BatchRequest::default())
    }
}

/// A `BatchRequest` of one or more ops, all `read_memory`: its fields, with
/// the ops as (address, length) ranges in request order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadsRequest {
    /// `BatchRequest.engine_id`.
    pub engine_id: u64,
    /// `BatchRequest.tid`.
    pub tid: u32,
    /// Each op's address and length, in request order.
    pub ranges: Vec<(u64, usize)>,
    /// `BatchRequest.stop_on_error`.
    pub stop_on_error: bool,
    /// `BatchRequest.interrupt`.
    pub interrupt: bool,
}

impl From<ReadsRequest> for BatchRequest {
    fn from(r: ReadsRequest) -> BatchRequest {
        BatchRequest {
            engine_id: r.engine_id,
            tid: r.tid,
            ops: r
                .ranges
                .iter()
                .map(|&(addr, len)| Op {
                    op: Some(op::Op::ReadMemory(ReadMemory {
                        addr,
                        len: len as u32,
                    })),
                })
                .collect(),
            stop_on_error: r.stop_on_error,
            interrupt: r.interrupt,
        }
    }
}

impl WireBatchRequest {
    /// As a plain request.
    pub fn into_request(self) -> BatchRequest {
        match self {
            WireBatchRequest::Request(r) => r,
            WireBatchRequest::Reads(r) => r.into(),
        }
    }
}

impl Message for WireBatchRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        // Only clients encode requests, and they send `BatchRequest`s;
        // this is here for completeness.
        match self {
            WireBatchRequest::Request(r) => r.encode_raw(buf),
            WireBatchRequest::Reads(r) => BatchRequest::from(r.clone()).encode_raw(buf),
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // prost's decoding (off the fast path) builds a plain request.
        if let WireBatchRequest::Reads(r) = self {
            *self = WireBatchRequest::Request(std::mem::take(r).into());
        }
        match self {
            WireBatchRequest::Request(r) => r.merge_field(tag, wire_type, buf, ctx),
            WireBatchRequest::Reads(_) => Ok(()),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            WireBatchRequest::Request(r) => r.encoded_len(),
            WireBatchRequest::Reads(r) => BatchRequest::from(r.clone()).encoded_len(),
        }
    }

    fn clear(&mut self) {
        *self = WireBatchRequest::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{event, Expedited, SyscallEntry};

    fn whole() -> Event {
        Event {
            seq: 7,
            engine_id: 3,
            pid: 100,
            tid: 101,
            time_ns: 1_700_000_000_123_456_789,
            kind: Some(event::Kind::SyscallEntry(SyscallEntry {
                nr: 257,
                name: "openat".into(),
                args: vec![u64::MAX - 99, 0x7fff_ffff_e000, 0o2000000, 0, 0, 0],
                text: String::new(),
            })),
            expedited: Some(Expedited {
                registers: [("rip".to_string(), 0x401000u64)].into(),
                memory: vec![Bytes::from_static(b"/etc/hostname")],
                register_bytes: Default::default(),
            }),
            dropped_before: 2,
            held: true,
            defaulted: vec![4, 5],
        }
    }

    #[test]
    fn own_plus_shared_decodes_as_the_whole_event() {
        let ev = whole();
        let shared = Event {
            pid: ev.pid,
            tid: ev.tid,
            time_ns: ev.time_ns,
            kind: ev.kind.clone(),
            ..Default::default()
        };
        let own = Event {
            pid: 0,
            tid: 0,
            time_ns: 0,
            kind: None,
            ..ev.clone()
        };
        let w = WireEvent::with_shared(own, WireEvent::encode_shared(&shared));
        let bytes = w.encode_to_vec();
        assert_eq!(bytes.len(), w.encoded_len());
        assert_eq!(Event::decode(bytes.as_slice()).unwrap(), ev);
        // A whole event encodes exactly as prost encodes it.
        assert_eq!(
            WireEvent::new(ev.clone()).encode_to_vec(),
            ev.encode_to_vec()
        );
    }

    /// A [`ReadsReply`] encodes exactly as the `BatchReply` it stands for,
    /// built the plain way: whole, partial and failed ranges, empty ones,
    /// address 0, with and without `stop_on_error`.
    #[test]
    fn reads_reply_encodes_as_its_batch_reply() {
        use crate::v1::{op_result, Memory, OpResult, Skipped};
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for case in 0..400 {
            let count = next(40) as usize;
            let ranges: Vec<(u64, usize)> = (0..count)
                .map(|_| (next(3) * next(1 << 40), next(300) as usize))
                .collect();
            let total: usize = ranges.iter().map(|r| r.1).sum();
            let buf: Vec<u8> = (0..total).map(|_| next(256) as u8).collect();
            let got: Option<Vec<(usize, String)>> = (case % 2 == 1).then(|| {
                ranges
                    .iter()
                    .map(|&(_, len)| match next(4) {
                        0 => (
                            next(len as u64 + 1) as usize,
                            "EFAULT: Bad address".to_string(),
                        ),
                        _ => (len, String::new()),
                    })
                    .collect()
            });
            let stop_on_error = case % 4 >= 2;
            let reads = ReadsReply {
                buf: buf.clone(),
                ranges: ranges.clone(),
                got: got.clone(),
                stop_on_error,
            };
            // The plain way.
            let (mut off, mut failed, mut results) = (0usize, false, Vec::new());
            for (i, &(addr, len)) in ranges.iter().enumerate() {
                let (n, error) = got.as_ref().map_or((len, String::new()), |g| g[i].clone());
                let result = if failed && stop_on_error {
                    op_result::Result::Skipped(Skipped {})
                } else {
                    failed |= !error.is_empty();
                    op_result::Result::Memory(Memory {
                        data: Bytes::copy_from_slice(&buf[off..off + n]),
                        addr,
                        error,
                    })
                };
                results.push(OpResult {
                    result: Some(result),
                });
                off += len;
            }
            let plain = BatchReply { results };
            let w = WireBatchReply::Reads(reads);
            let bytes = w.encode_to_vec();
            assert_eq!(bytes, plain.encode_to_vec(), "case {case}");
            assert_eq!(w.encoded_len(), bytes.len(), "case {case}");
            assert_eq!(
                WireBatchReply::Reply(plain.clone()).encode_to_vec(),
                bytes,
                "case {case}"
            );
        }
    }
}
