//! Hand-written wire code for the two messages a large batch is made of:
//! `BatchRequest` (many `read_memory` ops) and `BatchReply` (many `memory`
//! results), and a decoder for the `Event`s a trace is made of (syscall
//! entries and exits). prost's generic code spends most of a 1,000-op
//! batch's encode and decode time on per-field calls (three length
//! computations per nested message when encoding, a `Buf` call per varint
//! when decoding); these functions handle those shapes directly and leave
//! everything else to prost. The server's reply to a batch of reads
//! ([`crate::wire::ReadsReply`]) is encoded here straight from its read
//! buffer. Decoded results are built in place, each in one expression: a
//! message built apart and then moved into its parent and the vector cost
//! more than parsing it (store-forwarding stalls on the moves).
//!
//! Encoding writes exactly what prost writes (the tests compare the bytes).
//! Decoding takes a fast path only for input it fully understands (the
//! fields above, one-byte keys, well-formed varints and lengths, valid
//! UTF-8); any other op or result is decoded by prost alone, and anything
//! else in the message (an unknown field, a malformed length…) sends the
//! whole message to prost, so what is accepted and every error are prost's.

use bytes::{BufMut, Bytes};
use prost::{EncodeError, Message};

use crate::v1::{
    event, op, op_result, BatchReply, BatchRequest, Event, Memory, Op, OpResult, ReadMemory,
    SyscallEntry, SyscallExit,
};
use crate::wire::{ReadsReply, ReadsRequest, WireBatchRequest};

use prost::encoding::encoded_len_varint as varint_len;

/// A field's encoded length: key (one byte here) and value.
fn len_field(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Encoded bytes gathered on the stack, then written with one `put_slice`
/// (a `put_slice` per field costs more than the field).
struct Head {
    buf: [u8; HEAD],
    len: usize,
}

/// Bytes gathered before a `put_slice`.
const HEAD: usize = 1024;
/// Byte strings up to this long are gathered; longer ones are written
/// directly.
const INLINE: usize = 256;
/// Room kept for one more op or result's keys and varints (at most 55).
const ROOM: usize = 64;

impl Head {
    fn new() -> Head {
        Head {
            buf: [0; HEAD],
            len: 0,
        }
    }

    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// Write `b`: gathered if short, else after what is gathered.
    fn bytes(&mut self, b: &[u8], out: &mut impl BufMut) {
        if b.len() > INLINE {
            self.flush(out);
            out.put_slice(b);
            return;
        }
        if self.len + b.len() > HEAD - ROOM {
            self.flush(out);
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    /// Write what is gathered if less than ROOM bytes are left.
    fn room(&mut self, out: &mut impl BufMut) {
        if self.len > HEAD - ROOM {
            self.flush(out);
        }
    }

    fn flush(&mut self, out: &mut impl BufMut) {
        if self.len > 0 {
            out.put_slice(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

// ---- BatchReply --------------------------------------------------------------

/// The encoded length of a `Memory` message's fields.
fn memory_len(m: &Memory) -> usize {
    memory_fields_len(m.data.len(), m.addr, m.error.len())
}

/// The encoded length of a `Memory` message with these fields.
fn memory_fields_len(data: usize, addr: u64, error: usize) -> usize {
    let mut n = 0;
    if data != 0 {
        n += len_field(data);
    }
    if addr != 0 {
        n += 1 + varint_len(addr);
    }
    if error != 0 {
        n += len_field(error);
    }
    n
}

/// The encoded length of one `results` element's value (the OpResult).
fn result_len(r: &OpResult) -> usize {
    match &r.result {
        Some(op_result::Result::Memory(m)) => len_field(memory_len(m)),
        _ => r.encoded_len(),
    }
}

/// `r.encoded_len()`.
pub(crate) fn batch_reply_len(r: &BatchReply) -> usize {
    r.results.iter().map(|x| len_field(result_len(x))).sum()
}

/// One `results` element holding a `memory` result.
fn put_memory_result(h: &mut Head, data: &[u8], addr: u64, error: &str, out: &mut impl BufMut) {
    let mlen = memory_fields_len(data.len(), addr, error.len());
    h.byte(0x0a); // results
    h.varint(len_field(mlen) as u64);
    h.byte(0x0a); // OpResult.memory
    h.varint(mlen as u64);
    if !data.is_empty() {
        h.byte(0x0a); // Memory.data
        h.varint(data.len() as u64);
        h.bytes(data, out);
    }
    if addr != 0 {
        h.byte(0x10); // Memory.addr
        h.varint(addr);
    }
    if !error.is_empty() {
        h.byte(0x1a); // Memory.error
        h.varint(error.len() as u64);
        h.bytes(error.as_bytes(), out);
    }
    h.room(out);
}

/// `r.encode(out)`.
pub(crate) fn encode_batch_reply(r: &BatchReply, out: &mut impl BufMut) -> Result<(), EncodeError> {
    let mut h = Head::new();
    for x in &r.results {
        match &x.result {
            Some(op_result::Result::Memory(m)) => {
                put_memory_result(&mut h, &m.data, m.addr, &m.error, out)
            }
            _ => {
                h.flush(out);
                out.put_u8(0x0a);
                x.encode_length_delimited(out)?;
            }
        }
    }
    h.flush(out);
    Ok(())
}

/// A `results` element holding `skipped {}`: key, length 2, then the
/// oneof's key (field 8, length-delimited) and an empty message.
const SKIPPED_RESULT: [u8; 4] = [0x0a, 0x02, 0x42, 0x00];

/// What range `i` of `r` (at `off` in its buffer) answers: its bytes and
/// error text, or `None` when it is skipped. `failed` carries whether an
/// earlier range fell short.
fn reads_result<'a>(
    r: &'a ReadsReply,
    i: usize,
    off: usize,
    failed: &mut bool,
) -> Option<(&'a [u8], &'a str)> {
    if *failed && r.stop_on_error {
        return None;
    }
    let asked = r.ranges[i].1;
    let (n, error) = match &r.got {
        Some(g) => g
            .get(i)
            .map_or((asked, ""), |(n, e)| ((*n).min(asked), e.as_str())),
        None => (asked, ""),
    };
    *failed |= !error.is_empty();
    Some((r.buf.get(off..off + n).unwrap_or(&[]), error))
}

/// The encoded length of the `BatchReply` that `r` stands for.
pub(crate) fn reads_reply_len(r: &ReadsReply) -> usize {
    let (mut off, mut failed, mut n) = (0usize, false, 0usize);
    for (i, &(addr, asked)) in r.ranges.iter().enumerate() {
        n += match reads_result(r, i, off, &mut failed) {
            Some((data, error)) => {
                len_field(len_field(memory_fields_len(data.len(), addr, error.len())))
            }
            None => SKIPPED_RESULT.len(),
        };
        off += asked;
    }
    n
}

/// Encode the `BatchReply` that `r` stands for.
pub(crate) fn encode_reads_reply(r: &ReadsReply, out: &mut impl BufMut) {
    let mut h = Head::new();
    let (mut off, mut failed) = (0usize, false);
    for (i, &(addr, asked)) in r.ranges.iter().enumerate() {
        match reads_result(r, i, off, &mut failed) {
            Some((data, error)) => put_memory_result(&mut h, data, addr, error, out),
            None => {
                h.bytes(&SKIPPED_RESULT, out);
                h.room(out);
            }
        }
        off += asked;
    }
    h.flush(out);
}

// ---- BatchRequest ------------------------------------------------------------

fn read_memory_len(r: &ReadMemory) -> usize {
    let mut n = 0;
    if r.addr != 0 {
        n += 1 + varint_len(r.addr);
    }
    if r.len != 0 {
        n += 1 + varint_len(r.len.into());
    }
    n
}

fn op_len(o: &Op) -> usize {
    match &o.op {
        Some(op::Op::ReadMemory(r)) => len_field(read_memory_len(r)),
        _ => o.encoded_len(),
    }
}

/// `r.encoded_len()`.
pub(crate) fn batch_request_len(r: &BatchRequest) -> usize {
    let mut n = 0;
    if r.engine_id != 0 {
        n += 1 + varint_len(r.engine_id);
    }
    if r.tid != 0 {
        n += 1 + varint_len(r.tid.into());
    }
    n += r.ops.iter().map(|o| len_field(op_len(o))).sum::<usize>();
    n += 2 * usize::from(r.stop_on_error) + 2 * usize::from(r.interrupt);
    n
}

/// `r.encode(out)`.
pub(crate) fn encode_batch_request(
    r: &BatchRequest,
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let mut h = Head::new();
    if r.engine_id != 0 {
        h.byte(0x08);
        h.varint(r.engine_id);
    }
    if r.tid != 0 {
        h.byte(0x10);
        h.varint(r.tid.into());
    }
    for o in &r.ops {
        match &o.op {
            Some(op::Op::ReadMemory(rm)) => {
                let rlen = read_memory_len(rm);
                h.byte(0x1a); // ops
                h.varint(len_field(rlen) as u64);
                h.byte(0x0a); // Op.read_memory
                h.varint(rlen as u64);
                if rm.addr != 0 {
                    h.byte(0x08);
                    h.varint(rm.addr);
                }
                if rm.len != 0 {
                    h.byte(0x10);
                    h.varint(rm.len.into());
                }
                h.room(out);
            }
            _ => {
                h.flush(out);
                out.put_u8(0x1a);
                o.encode_length_delimited(out)?;
            }
        }
    }
    if r.stop_on_error {
        h.byte(0x20);
        h.byte(1);
    }
    if r.interrupt {
        h.byte(0x28);
        h.byte(1);
    }
    h.flush(out);
    Ok(())
}

// ---- decoding ----------------------------------------------------------------

/// A well-formed varint at `b[*i..]` (prost's rules: at most ten bytes, the
/// tenth at most 1); advances `i`. Inlined, with a one-byte fast path: a
/// batch's keys, lengths and most values are one byte, and a call through
/// prost's `Buf`-generic decoder per varint cost more than the varint.
#[inline(always)]
fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let first = *b.get(*i)?;
    if first < 0x80 {
        *i += 1;
        return Some(u64::from(first));
    }
    varint_long(b, i)
}

/// [`varint`] of two bytes or more.
#[inline]
fn varint_long(b: &[u8], i: &mut usize) -> Option<u64> {
    let rest = b.get(*i..)?;
    let mut v = 0u64;
    for (k, &byte) in rest.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * k);
        if byte < 0x80 {
            // prost refuses a tenth byte above 1 (it would overflow 64 bits).
            if k == 9 && byte > 1 {
                return None;
            }
            *i += k + 1;
            return Some(v);
        }
    }
    None
}

/// A length-delimited value at `b[*i..]`: its bounds; advances `i` past it.
fn delimited(b: &[u8], i: &mut usize) -> Option<(usize, usize)> {
    let len = usize::try_from(varint(b, i)?).ok()?;
    let start = *i;
    let end = start.checked_add(len).filter(|&e| e <= b.len())?;
    *i = end;
    Some((start, end))
}

/// `b` is exactly one field with key `key`, length-delimited: its bounds.
fn only_field(b: &[u8], key: u8) -> Option<(usize, usize)> {
    if b.first() != Some(&key) {
        return None;
    }
    let mut i = 1;
    let span = delimited(b, &mut i)?;
    (i == b.len()).then_some(span)
}

/// A `ReadMemory` op's fields (address, length), if that is all `b` holds.
#[inline(always)]
fn read_memory_fields(b: &[u8]) -> Option<(u64, u32)> {
    let (s, e) = only_field(b, 0x0a)?;
    let f = &b[..e];
    let (mut addr, mut len) = (0, 0);
    let mut i = s;
    while i < e {
        let key = f[i];
        i += 1;
        match key {
            0x08 => addr = varint(f, &mut i)?,
            // A length that does not fit is the validator's to refuse.
            0x10 => len = u32::try_from(varint(f, &mut i)?).ok()?,
            _ => return None,
        }
    }
    Some((addr, len))
}

/// A `BatchRequest`'s fields but its ops.
#[derive(Default)]
struct RequestHead {
    engine_id: u64,
    tid: u32,
    stop_on_error: bool,
    interrupt: bool,
}

/// Walk a `BatchRequest`: its fields, and each op's bounds handed to
/// `on_op` in order. `None` if the walk or `on_op` gave up.
#[inline(always)]
fn request_fields(
    b: &[u8],
    mut on_op: impl FnMut(usize, usize) -> Option<()>,
) -> Option<RequestHead> {
    let mut h = RequestHead::default();
    let mut i = 0;
    // Past this many ops, the validator refuses the request (before
    // anything decodes them all).
    let (max_ops, mut ops) = (crate::validate::max_repeated(), 0usize);
    while i < b.len() {
        let key = b[i];
        i += 1;
        match key {
            0x08 => h.engine_id = varint(b, &mut i)?,
            0x10 => h.tid = u32::try_from(varint(b, &mut i)?).ok()?,
            0x20 => h.stop_on_error = varint(b, &mut i)? != 0,
            0x28 => h.interrupt = varint(b, &mut i)? != 0,
            0x1a => {
                ops += 1;
                if ops > max_ops {
                    return None;
                }
                let (s, e) = delimited(b, &mut i)?;
                on_op(s, e)?;
            }
            _ => return None,
        }
    }
    Some(h)
}

/// `BatchRequest::decode(msg)`, or `None` when prost should decode it.
pub(crate) fn decode_batch_request(msg: &Bytes) -> Option<BatchRequest> {
    let b: &[u8] = msg;
    // A guess (a read op takes about 13 bytes), grown as needed; no
    // counting pass.
    let mut ops = Vec::with_capacity((b.len() / 12).min(1 << 16));
    let h = request_fields(b, |s, e| {
        // Built in place, in one expression (see the module documentation).
        match read_memory_fields(&b[s..e]) {
            Some((addr, len)) => ops.push(Op {
                op: Some(op::Op::ReadMemory(ReadMemory { addr, len })),
            }),
            None => ops.push(Op::decode(msg.slice(s..e)).ok()?),
        }
        Some(())
    })?;
    Some(BatchRequest {
        engine_id: h.engine_id,
        tid: h.tid,
        ops,
        stop_on_error: h.stop_on_error,
        interrupt: h.interrupt,
    })
}

/// The server's `Batch` request, decoded straight to ranges when every op
/// is a `read_memory` (`None`: prost should decode it).
pub(crate) fn decode_wire_batch_request(msg: &Bytes) -> Option<WireBatchRequest> {
    let b: &[u8] = msg;
    let mut ranges = Vec::with_capacity((b.len() / 12).min(1 << 16));
    // Another op (or anything unusual): a plain request after all, which
    // the caller checks (crate::validate) and prost decodes.
    let h = request_fields(b, |s, e| {
        let (addr, len) = read_memory_fields(&b[s..e])?;
        ranges.push((addr, len as usize));
        Some(())
    })?;
    let r = ReadsRequest {
        engine_id: h.engine_id,
        tid: h.tid,
        ranges,
        stop_on_error: h.stop_on_error,
        interrupt: h.interrupt,
    };
    if r.ranges.is_empty() {
        return Some(WireBatchRequest::Request(r.into()));
    }
    Some(WireBatchRequest::Reads(r))
}

/// Bounds of a length-delimited value within its message.
type Span = (usize, usize);

/// The fields of a `memory` result, if that is all `b` holds: the bounds
/// of its data and error (within `b`) and its address.
#[inline(always)]
fn memory_fields(b: &[u8]) -> Option<(Span, u64, Span)> {
    let (s, e) = only_field(b, 0x0a)?;
    let (mut data, mut addr, mut error) = ((s, s), 0, (s, s));
    let mut i = s;
    while i < e {
        let key = b[i];
        i += 1;
        match key {
            0x0a => data = delimited(&b[..e], &mut i)?,
            0x10 => addr = varint(&b[..e], &mut i)?,
            0x1a => {
                error = delimited(&b[..e], &mut i)?;
                // prost checks every occurrence of a string field, even
                // one a later occurrence replaces (found by cargo fuzz).
                std::str::from_utf8(&b[error.0..error.1]).ok()?;
            }
            _ => return None,
        }
    }
    Some((data, addr, error))
}

/// `BatchReply::decode(msg)`, or `None` when prost should decode it.
pub(crate) fn decode_batch_reply(msg: &Bytes) -> Option<BatchReply> {
    let b: &[u8] = msg;
    // A guess (a `memory` result of 8 bytes takes about 20), grown as
    // needed; no counting pass.
    let mut results = Vec::with_capacity((b.len() / 16).min(1 << 16));
    let mut i = 0;
    while i < b.len() {
        // `results` is the only field; anything else goes to prost.
        if b[i] != 0x0a {
            return None;
        }
        i += 1;
        let (s, e) = delimited(b, &mut i)?;
        // Built in place, in one expression (see the module documentation).
        match memory_fields(&b[s..e]) {
            Some(((ds, de), addr, (es, ee))) => results.push(OpResult {
                result: Some(op_result::Result::Memory(Memory {
                    data: msg.slice(s + ds..s + de),
                    addr,
                    error: if es == ee {
                        String::new()
                    } else {
                        std::str::from_utf8(&b[s + es..s + ee]).ok()?.to_owned()
                    },
                })),
            }),
            None => results.push(OpResult::decode(msg.slice(s..e)).ok()?),
        }
    }
    Some(BatchReply { results })
}

// ---- Event ---------------------------------------------------------------------

/// One field of a message: its number, and its value (a varint's, or a
/// length-delimited value's bounds); wire types other than these two, and
/// field numbers past 63, are left to prost.
enum Value {
    Varint(u64),
    Delimited(usize, usize),
}

/// The fields of `b`, each number at most once (a repeated field merges
/// in prost's way: left to prost).
fn fields(b: &[u8], mut f: impl FnMut(u32, Value) -> Option<()>) -> Option<()> {
    let mut seen = 0u64;
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let n = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..64).contains(n))?;
        if seen & (1 << n) != 0 {
            return None;
        }
        seen |= 1 << n;
        let v = match key & 7 {
            0 => Value::Varint(varint(b, &mut i)?),
            2 => {
                let (s, e) = delimited(b, &mut i)?;
                Value::Delimited(s, e)
            }
            _ => return None,
        };
        f(n, v)?;
    }
    Some(())
}

fn string(b: &[u8], s: usize, e: usize) -> Option<String> {
    String::from_utf8(b[s..e].to_vec()).ok()
}

/// A packed `repeated uint64` value.
fn packed(b: &[u8], s: usize, e: usize) -> Option<Vec<u64>> {
    let b = &b[..e];
    // At most one value per byte; a syscall's six arguments fit without a
    // counting pass or a regrowth.
    let mut out = Vec::with_capacity((e - s).min(8));
    let mut i = s;
    while i < e {
        out.push(varint(b, &mut i)?);
    }
    Some(out)
}

fn fast_syscall_entry(b: &[u8]) -> Option<SyscallEntry> {
    let mut m = SyscallEntry::default();
    fields(b, |n, v| {
        match (n, v) {
            (1, Value::Varint(x)) => m.nr = x,
            (2, Value::Delimited(s, e)) => m.name = string(b, s, e)?,
            (3, Value::Delimited(s, e)) => m.args = packed(b, s, e)?,
            (4, Value::Delimited(s, e)) => m.text = string(b, s, e)?,
            _ => return None,
        }
        Some(())
    })?;
    Some(m)
}

fn fast_syscall_exit(b: &[u8]) -> Option<SyscallExit> {
    let mut m = SyscallExit::default();
    fields(b, |n, v| {
        match (n, v) {
            (1, Value::Varint(x)) => m.nr = x,
            (2, Value::Delimited(s, e)) => m.name = string(b, s, e)?,
            (3, Value::Varint(x)) => m.ret = x as i64,
            (4, Value::Varint(x)) => m.is_error = x != 0,
            (5, Value::Delimited(s, e)) => m.errno = string(b, s, e)?,
            (6, Value::Delimited(s, e)) => m.text = string(b, s, e)?,
            (7, Value::Delimited(s, e)) => m.ret_text = string(b, s, e)?,
            (8, Value::Varint(x)) => m.system_time_ns = Some(x),
            _ => return None,
        }
        Some(())
    })?;
    Some(m)
}

/// `Event::decode(msg)`, for the events a trace is made of: syscall
/// entries and exits with their numbers and flags (anything else: `None`,
/// and prost decodes it).
pub(crate) fn decode_event(msg: &Bytes) -> Option<Event> {
    let mut ev = Event::default();
    decode_event_into(msg, &mut ev)?;
    Some(ev)
}

/// [`decode_event`] into `ev` (a default `Event`), where the caller keeps
/// it: an `Event` is large, and moving it out cost as much as parsing its
/// scalars.
pub(crate) fn decode_event_into(msg: &Bytes, ev: &mut Event) -> Option<()> {
    let b: &[u8] = msg;
    fields(b, |n, v| {
        match (n, v) {
            (1, Value::Varint(x)) => ev.seq = x,
            (2, Value::Varint(x)) => ev.engine_id = x,
            (3, Value::Varint(x)) => ev.pid = x as u32,
            (4, Value::Varint(x)) => ev.tid = x as u32,
            (5, Value::Varint(x)) => ev.time_ns = x,
            (11, Value::Delimited(s, e)) => {
                ev.kind = Some(event::Kind::SyscallEntry(fast_syscall_entry(&b[s..e])?))
            }
            (12, Value::Delimited(s, e)) => {
                ev.kind = Some(event::Kind::SyscallExit(fast_syscall_exit(&b[s..e])?))
            }
            (31, Value::Varint(x)) => ev.dropped_before = x,
            (32, Value::Varint(x)) => ev.held = x != 0,
            (33, Value::Delimited(s, e)) => ev.defaulted = packed(b, s, e)?,
            _ => return None,
        }
        Some(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1 as pb;

    use crate::fuzzing::Rng;

    /// 0, small, or any width.
    trait Value {
        fn value(&mut self) -> u64;
    }

    impl Value for Rng {
        fn value(&mut self) -> u64 {
            match self.below(4) {
                0 => 0,
                1 => self.below(200),
                2 => self.next() >> self.below(64),
                _ => self.next(),
            }
        }
    }

    fn random_op(g: &mut Rng) -> pb::Op {
        let o = match g.below(7) {
            6 => pb::op::Op::SetRegisterBytes(pb::SetRegisterBytes {
                values: [("xmm0".to_string(), vec![g.next() as u8; 16].into())].into(),
            }),
            0..=2 => pb::op::Op::ReadMemory(pb::ReadMemory {
                addr: g.value(),
                len: g.value() as u32,
            }),
            3 => pb::op::Op::WriteMemory(pb::WriteMemory {
                addr: g.value(),
                data: (0..g.below(20)).map(|_| g.next() as u8).collect(),
            }),
            4 => pb::op::Op::GetRegisters(pb::GetRegisters {
                names: vec!["rip".into(), "rax".into()],
            }),
            _ => pb::op::Op::Control(pb::Control {
                action: g.below(5) as i32,
                signal: (g.below(2) == 0).then(|| g.below(64) as i32),
            }),
        };
        pb::Op {
            op: (g.below(20) != 0).then_some(o),
        }
    }

    fn random_request(g: &mut Rng) -> pb::BatchRequest {
        pb::BatchRequest {
            engine_id: g.value(),
            tid: g.value() as u32,
            ops: (0..g.below(40)).map(|_| random_op(g)).collect(),
            stop_on_error: g.below(2) == 0,
            interrupt: g.below(2) == 0,
        }
    }

    fn random_result(g: &mut Rng) -> pb::OpResult {
        let r = match g.below(6) {
            0..=2 => pb::op_result::Result::Memory(pb::Memory {
                data: (0..g.below(3) * g.below(300))
                    .map(|_| g.next() as u8)
                    .collect(),
                addr: g.value(),
                error: if g.below(4) == 0 {
                    "EFAULT: Bad address ü".into()
                } else {
                    String::new()
                },
            }),
            3 => pb::op_result::Result::Registers(pb::Registers {
                values: [("rip".to_string(), g.value())].into_iter().collect(),
            }),
            4 => pb::op_result::Result::Done(pb::Done {}),
            _ => pb::op_result::Result::Error(pb::OpError {
                code: "EFAULT".into(),
                message: "no".into(),
            }),
        };
        pb::OpResult {
            result: (g.below(20) != 0).then_some(r),
        }
    }

    fn random_reply(g: &mut Rng) -> pb::BatchReply {
        pb::BatchReply {
            results: (0..g.below(40)).map(|_| random_result(g)).collect(),
        }
    }

    fn enc_req(r: &pb::BatchRequest) -> Vec<u8> {
        let mut v = Vec::new();
        encode_batch_request(r, &mut v).unwrap();
        v
    }

    fn enc_reply(r: &pb::BatchReply) -> Vec<u8> {
        let mut v = Vec::new();
        encode_batch_reply(r, &mut v).unwrap();
        v
    }

    #[test]
    fn varint_len_matches_prost() {
        for v in [
            0,
            1,
            127,
            128,
            16383,
            16384,
            u32::MAX as u64,
            u64::MAX >> 1,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            prost::encoding::encode_varint(v, &mut b);
            assert_eq!(varint_len(v), b.len(), "{v}");
            let mut i = 0;
            assert_eq!(varint(&b, &mut i), Some(v));
            assert_eq!(i, b.len());
        }
    }

    /// The varint writer gives prost's bytes, at every length.
    #[test]
    fn varint_encode_matches_prost() {
        let mut g = Rng(0x9e37_79b9_7f4a_7c15);
        let mut values: Vec<u64> = (0..64).flat_map(|k| [1u64 << k, (1u64 << k) - 1]).collect();
        values.extend((0..5000).map(|_| g.next() >> g.below(64)));
        values.push(u64::MAX);
        for v in values {
            let mut want = Vec::new();
            prost::encoding::encode_varint(v, &mut want);
            let mut h = Head::new();
            h.byte(0xaa);
            h.varint(v);
            h.byte(0xbb);
            assert_eq!(&h.buf[1..h.len - 1], &want[..], "{v:#x}");
            assert_eq!(h.buf[h.len - 1], 0xbb);
        }
    }

    /// The inlined decoder accepts and refuses exactly what prost's does,
    /// on well-formed varints, truncated ones, and overlong ones.
    #[test]
    fn varint_decode_matches_prost() {
        let mut g = Rng(0x2545_f491_4f6c_dd1d);
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x80],
            vec![0xff; 9],
            vec![0xff; 10],
            vec![0xff; 11],
            [vec![0xff; 9], vec![0x01]].concat(),
            [vec![0xff; 9], vec![0x02]].concat(),
            [vec![0x80; 9], vec![0x7f]].concat(),
            [vec![0x80; 10], vec![0x00]].concat(),
        ];
        for _ in 0..5000 {
            let mut b = Vec::new();
            prost::encoding::encode_varint(g.value(), &mut b);
            match g.below(4) {
                0 => {
                    b.pop();
                }
                1 => b.push(g.next() as u8),
                2 => {
                    let k = g.below(b.len() as u64) as usize;
                    b[k] ^= 0x80;
                }
                _ => {}
            }
            cases.push(b.clone());
            // With bytes after it (as in a message): the 8-byte path.
            b.extend((0..8).map(|_| g.next() as u8));
            cases.push(b);
        }
        for b in cases {
            let mut rest: &[u8] = &b;
            let want = prost::encoding::decode_varint(&mut rest)
                .ok()
                .map(|v| (v, b.len() - rest.len()));
            let mut i = 0;
            let got = varint(&b, &mut i).map(|v| (v, i));
            assert_eq!(got, want, "{b:02x?}");
        }
    }

    #[test]
    fn encodings_are_prosts() {
        let mut g = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let req = random_request(&mut g);
            assert_eq!(enc_req(&req), req.encode_to_vec(), "{req:?}");
            assert_eq!(batch_request_len(&req), req.encoded_len());
            let reply = random_reply(&mut g);
            assert_eq!(enc_reply(&reply), reply.encode_to_vec(), "{reply:?}");
            assert_eq!(batch_reply_len(&reply), reply.encoded_len());
        }
        assert!(enc_req(&pb::BatchRequest::default()).is_empty());
        assert!(enc_reply(&pb::BatchReply::default()).is_empty());
    }

    fn agree(b: &[u8]) {
        crate::fuzzing::decoders(b);
    }

    fn text(g: &mut Rng) -> String {
        ["", "openat", "getppid(", "é✓", "\"/etc/hostname\""][g.below(5) as usize].to_string()
    }

    fn random_event(g: &mut Rng) -> pb::Event {
        let kind = match g.below(8) {
            0..=2 => Some(pb::event::Kind::SyscallEntry(pb::SyscallEntry {
                nr: g.value(),
                name: text(g),
                args: (0..g.below(7)).map(|_| g.value()).collect(),
                text: text(g),
            })),
            3..=5 => Some(pb::event::Kind::SyscallExit(pb::SyscallExit {
                nr: g.value(),
                name: text(g),
                ret: g.value() as i64,
                is_error: g.below(2) == 0,
                errno: text(g),
                text: text(g),
                ret_text: text(g),
                system_time_ns: (g.below(2) == 0).then(|| g.value()),
            })),
            6 => Some(pb::event::Kind::Signal(pb::Signal {
                signo: g.below(64) as i32,
                ..Default::default()
            })),
            _ => None,
        };
        pb::Event {
            seq: g.value(),
            engine_id: g.value(),
            pid: g.value() as u32,
            tid: g.value() as u32,
            time_ns: g.value(),
            kind,
            expedited: None,
            dropped_before: g.value(),
            held: g.below(2) == 0,
            defaulted: (0..g.below(3)).map(|_| g.value()).collect(),
        }
    }

    #[test]
    fn event_decoder_agrees_with_prost() {
        let mut g = Rng(0x0bad_cafe_f00d_1234);
        let mut fast = 0;
        for _ in 0..5000 {
            let ev = random_event(&mut g);
            let b = ev.encode_to_vec();
            if let Some(d) = decode_event(&Bytes::from(b.clone())) {
                fast += 1;
                assert_eq!(d, ev);
            } else {
                // Only the kinds it leaves to prost.
                assert!(
                    matches!(ev.kind, Some(pb::event::Kind::Signal(_))),
                    "{ev:?}"
                );
            }
            agree(&b);
            agree_damaged(&mut g, &b);
        }
        assert!(fast > 3000, "{fast}");
        // A server's WireEvent (own fields, then the shared ones) decodes
        // on the fast path too.
        let ev = random_event(&mut g);
        let shared = pb::Event {
            pid: 9,
            tid: 10,
            time_ns: 11,
            kind: Some(pb::event::Kind::SyscallEntry(pb::SyscallEntry {
                nr: 39,
                name: "getppid".into(),
                args: vec![0; 6],
                text: String::new(),
            })),
            ..Default::default()
        };
        let own = pb::Event {
            pid: 0,
            tid: 0,
            time_ns: 0,
            kind: None,
            ..ev
        };
        let w = crate::wire::WireEvent::with_shared(
            own.clone(),
            crate::wire::WireEvent::encode_shared(&shared),
        );
        let b = Bytes::from(w.encode_to_vec());
        let want = pb::Event {
            pid: 9,
            tid: 10,
            time_ns: 11,
            kind: shared.kind.clone(),
            ..own
        };
        assert_eq!(decode_event(&b), Some(want));
    }

    /// [`agree`] on damaged copies of `b`: truncated, a byte changed,
    /// bytes appended.
    fn agree_damaged(g: &mut Rng, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        let cut = g.below(b.len() as u64) as usize;
        agree(&b[..cut]);
        let mut x = b.to_vec();
        x[cut] = g.next() as u8;
        agree(&x);
        let mut x = b.to_vec();
        x.extend((0..g.below(4)).map(|_| g.next() as u8));
        agree(&x);
    }

    #[test]
    fn decoders_agree_with_prost() {
        let mut g = Rng(0x1234_5678_9abc_def1);
        let mut fast = (0, 0);
        for _ in 0..3000 {
            let req = random_request(&mut g);
            let b = req.encode_to_vec();
            let got = decode_batch_request(&Bytes::from(b.clone()));
            fast.0 += usize::from(got.is_some());
            if let Some(r) = got {
                assert_eq!(r, req);
            }
            agree(&b);
            let reply = random_reply(&mut g);
            let b = reply.encode_to_vec();
            let got = decode_batch_reply(&Bytes::from(b.clone()));
            fast.1 += usize::from(got.is_some());
            if let Some(r) = got {
                assert_eq!(r, reply);
            }
            agree(&b);
            for b in [req.encode_to_vec(), reply.encode_to_vec()] {
                agree_damaged(&mut g, &b);
            }
        }
        // Well-formed messages take the fast path.
        assert_eq!(fast, (3000, 3000));
        // Batches of reads only: decoded to ranges, as prost decodes them.
        for _ in 0..500 {
            let mut req = random_request(&mut g);
            for o in &mut req.ops {
                o.op = Some(pb::op::Op::ReadMemory(pb::ReadMemory {
                    addr: g.value(),
                    len: g.value() as u32,
                }));
            }
            let b = req.encode_to_vec();
            match decode_wire_batch_request(&Bytes::from(b.clone())) {
                Some(WireBatchRequest::Reads(r)) => {
                    assert!(!req.ops.is_empty());
                    assert_eq!(pb::BatchRequest::from(r), req);
                }
                Some(WireBatchRequest::Request(r)) => {
                    assert!(req.ops.is_empty());
                    assert_eq!(r, req);
                }
                None => panic!("a well-formed batch of reads left to prost"),
            }
            agree(&b);
            agree_damaged(&mut g, &b);
        }
    }

    #[test]
    fn decoders_take_odd_but_valid_encodings_as_prost_does() {
        // Fields out of order and repeated (the last wins), a non-minimal
        // varint, an unknown field (prost skips it: the fast path declines),
        // invalid UTF-8 in `error` (prost fails).
        let cases: &[&[u8]] = &[
            &[
                0x28, 0x01, 0x1a, 0x06, 0x0a, 0x04, 0x10, 0x08, 0x08, 0x05, 0x08, 0x07, 0x08, 0x09,
            ],
            &[0x1a, 0x07, 0x0a, 0x05, 0x08, 0x80, 0x80, 0x80, 0x00],
            &[0x1a, 0x02, 0x0a, 0x00, 0x30, 0x01],
            &[
                0x0a, 0x0a, 0x0a, 0x08, 0x1a, 0x02, 0xff, 0xfe, 0x10, 0x05, 0x0a, 0x00,
            ],
            &[
                0x0a, 0x0b, 0x0a, 0x09, 0x10, 0x05, 0x0a, 0x01, 0x07, 0x10, 0x06, 0x0a, 0x00,
            ],
            &[0x0a, 0x04, 0x0a, 0x00, 0x0a, 0x00],
            &[0x1a, 0x04, 0x0a, 0x00, 0x0a, 0x00],
            // A memory result whose error is given twice, the first time
            // not UTF-8 (prost refuses it; found by cargo fuzz).
            &[
                0x0a, 0x07, 0x0a, 0x05, 0x1a, 0x01, 0x86, 0x1a, 0x00, 0x0a, 0x07, 0x0a, 0x05, 0x1a,
                0x01, 0x00, 0x1a, 0x00,
            ],
        ];
        for b in cases {
            agree(b);
        }
        let r = decode_batch_request(&Bytes::from_static(cases[0])).unwrap();
        assert_eq!(r.engine_id, 9);
        assert!(r.interrupt);
        let m = decode_batch_reply(&Bytes::from_static(cases[4])).unwrap();
        assert!(matches!(
            &m.results[0].result,
            Some(pb::op_result::Result::Memory(m)) if m.addr == 6 && m.data.is_empty()
        ));
    }
}
