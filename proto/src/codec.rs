//! The gRPC codec of the generated stubs: prost's wire format, decoded from
//! one contiguous [`Bytes`] instead of through tonic's `DecodeBuf`.
//!
//! tonic hands a decoder a `DecodeBuf`, a length-limited view of a
//! `BytesMut`; every varint prost reads from it goes through two `Buf`
//! layers and a `BytesMut` advance. Splitting the message off as one
//! `Bytes` first (no copy: a reference-counted slice of the same buffer)
//! makes prost's reads plain slice reads, and every `bytes` field a slice of
//! that buffer. Encoding reserves the message's length once, so a large
//! message is not grown by doubling.
//!
//! `BatchRequest` and `BatchReply`, the messages of a large batch, and the
//! server's [`WireBatchReply`] go through the hand-written code of
//! [`crate::fast`] (same bytes as prost), and so does the decoding of
//! `Event`s that are syscall entries and exits, the bulk of a trace.

use std::any::Any;
use std::marker::PhantomData;

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{DecodeBuf, EncodeBuf};
use tonic::Status;

use crate::fast;
use crate::v1::{BatchReply, BatchRequest, Event};
use crate::wire::{WireBatchReply, WireBatchRequest};

/// A [`tonic::codec::Codec`] for prost messages (`application/grpc+proto`).
#[derive(Debug, Clone)]
pub struct Codec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec { _pd: PhantomData }
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = Encoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoder { _pd: PhantomData }
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder { _pd: PhantomData }
    }
}

/// Encodes a `T` (see the module documentation).
#[derive(Debug, Clone)]
pub struct Encoder<T> {
    _pd: PhantomData<T>,
}

impl<T: Message + 'static> tonic::codec::Encoder for Encoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let any: &dyn Any = &item;
        // (A top-level `BatchReply` is only ever sent by the server, as a
        // `WireBatchReply`.)
        let done = if let Some(r) = any.downcast_ref::<BatchRequest>() {
            buf.reserve(fast::batch_request_len(r));
            fast::encode_batch_request(r, buf)
        } else if let Some(r) = any.downcast_ref::<WireBatchReply>() {
            // Its length is computed once (`encode` would do it again).
            buf.reserve(r.encoded_len());
            r.encode_raw(buf);
            Ok(())
        } else {
            buf.reserve(item.encoded_len());
            item.encode(buf)
        };
        done.map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }
}

/// Decodes a `U` (see the module documentation).
#[derive(Debug, Clone)]
pub struct Decoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default + 'static> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let msg: Bytes = buf.copy_to_bytes(buf.remaining());
        if let Some(m) = decode_fast::<U>(&msg) {
            return Ok(Some(m));
        }
        // A request (the server decodes it): its 32-bit fields must fit and
        // its repeated fields must not be huge, before prost decodes it.
        if let Some(name) = request_name::<U>() {
            crate::validate::check(name, &msg).map_err(|e| {
                Status::invalid_argument(format!("{}: {e}", short_name(std::any::type_name::<U>())))
            })?;
            if let Some(m) = decode_checked::<U>(&msg) {
                return Ok(Some(m));
            }
        }
        U::decode(msg).map(Some).map_err(|e| {
            Status::invalid_argument(format!(
                "malformed {} message: {e}",
                short_name(std::any::type_name::<U>())
            ))
        })
    }
}

/// The schema name of `U` if it is a message clients send (what the
/// server decodes).
fn request_name<U: 'static>() -> Option<&'static str> {
    use crate::v1;
    use std::any::TypeId;
    let t = TypeId::of::<U>();
    let known: [(TypeId, &str); 13] = [
        (TypeId::of::<v1::SpawnRequest>(), ".utrace.v1.SpawnRequest"),
        (
            TypeId::of::<v1::AttachRequest>(),
            ".utrace.v1.AttachRequest",
        ),
        (
            TypeId::of::<v1::DetachRequest>(),
            ".utrace.v1.DetachRequest",
        ),
        (
            TypeId::of::<v1::ListTasksRequest>(),
            ".utrace.v1.ListTasksRequest",
        ),
        (
            TypeId::of::<v1::GetActivityRequest>(),
            ".utrace.v1.GetActivityRequest",
        ),
        (
            TypeId::of::<v1::GetServerInfoRequest>(),
            ".utrace.v1.GetServerInfoRequest",
        ),
        (
            TypeId::of::<v1::EventsRequest>(),
            ".utrace.v1.EventsRequest",
        ),
        (TypeId::of::<v1::TraceRequest>(), ".utrace.v1.TraceRequest"),
        (TypeId::of::<v1::ProbeRequest>(), ".utrace.v1.ProbeRequest"),
        (
            TypeId::of::<v1::ClientMessage>(),
            ".utrace.v1.ClientMessage",
        ),
        (
            TypeId::of::<v1::ReadMemoryStreamRequest>(),
            ".utrace.v1.ReadMemoryStreamRequest",
        ),
        (TypeId::of::<v1::BatchRequest>(), ".utrace.v1.BatchRequest"),
        (TypeId::of::<WireBatchRequest>(), ".utrace.v1.BatchRequest"),
    ];
    known.iter().find(|(id, _)| *id == t).map(|(_, n)| *n)
}

/// A checked request the fast path left (a batch with ops other than
/// reads), decoded by [`crate::fast`] where it can: its reads are still
/// built without prost, the other ops by prost one by one.
fn decode_checked<U: 'static>(msg: &Bytes) -> Option<U> {
    let mut out: Option<U> = None;
    let slot: &mut dyn Any = &mut out;
    if let Some(s) = slot.downcast_mut::<Option<WireBatchRequest>>() {
        *s = fast::decode_batch_request(msg).map(WireBatchRequest::Request);
    }
    out
}

/// `utrace_proto::v1::SpawnRequest` → `SpawnRequest`.
fn short_name(full: &str) -> &str {
    full.rsplit("::").next().unwrap_or(full)
}

/// `msg` decoded by [`crate::fast`], when `U` is a message it knows and the
/// input is on its fast path. The result goes straight into the caller's
/// `Option<U>` (found by its type), not through a `Box<dyn Any>`: no
/// allocation and no extra move per message.
fn decode_fast<U: 'static>(msg: &Bytes) -> Option<U> {
    let mut out: Option<U> = None;
    let slot: &mut dyn Any = &mut out;
    if let Some(s) = slot.downcast_mut::<Option<BatchReply>>() {
        *s = fast::decode_batch_reply(msg);
    } else if let Some(s) = slot.downcast_mut::<Option<BatchRequest>>() {
        *s = fast::decode_batch_request(msg);
    } else if let Some(s) = slot.downcast_mut::<Option<WireBatchRequest>>() {
        *s = fast::decode_wire_batch_request(msg);
    } else if let Some(s) = slot.downcast_mut::<Option<Event>>() {
        if fast::decode_event_into(msg, s.insert(Event::default())).is_none() {
            *s = None;
        }
    }
    out
}
