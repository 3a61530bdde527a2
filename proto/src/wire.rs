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

use crate::v1::Event;

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
}
