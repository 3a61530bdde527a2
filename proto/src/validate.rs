//! A request's wire form checked before it is decoded, field by field,
//! against the schema in [`crate::FILE_DESCRIPTOR_SET`].
//!
//! Two things prost does by the protobuf rules that a server must not let
//! through: a 64-bit varint in a 32-bit field is truncated (a `len` of
//! 2^40 + 16 becomes 16, a `pid` 2^32 + 1 becomes 1), and every element of a
//! repeated field is decoded before anything can count them (64 MiB of
//! two-byte empty ops are 33 million `Op`s, gigabytes, before the batch's
//! op limit is looked at). Here a 32-bit field whose value does not fit,
//! and a repeated field with more elements than allowed, are refused with
//! the field's path (`ops[3].read_memory.len`), in one pass over the bytes
//! that allocates nothing per element.
//!
//! The schema is read once from the descriptor set the build keeps for
//! reflection, so fields added to the .proto are checked with no code here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use prost::Message;

/// How a field's values are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// uint32, fixed-size numbers aside: the varint must fit in 32 bits.
    U32,
    /// int32 and enums: a sign-extended 64-bit varint that fits in 32.
    I32,
    /// A nested message, by full name.
    Message(String),
    /// Anything else (64-bit numbers, bools, strings, bytes…).
    Other,
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    kind: Kind,
    repeated: bool,
}

/// Messages by full name (`utrace.v1.SpawnRequest`), their fields by number.
type Schema = HashMap<String, HashMap<u32, Field>>;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut out = Schema::new();
        let Ok(set) = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET) else {
            return out;
        };
        for file in &set.file {
            let package = file.package.clone().unwrap_or_default();
            for m in &file.message_type {
                add_message(&mut out, &format!(".{package}"), m);
            }
        }
        out
    })
}

fn add_message(out: &mut Schema, scope: &str, m: &prost_types::DescriptorProto) {
    use prost_types::field_descriptor_proto::{Label, Type};
    let name = format!("{scope}.{}", m.name());
    let mut fields = HashMap::new();
    for f in &m.field {
        let kind = match f.r#type() {
            Type::Uint32 => Kind::U32,
            Type::Int32 | Type::Enum => Kind::I32,
            Type::Message => Kind::Message(f.type_name().to_string()),
            _ => Kind::Other,
        };
        fields.insert(
            f.number() as u32,
            Field {
                name: f.name().to_string(),
                kind,
                repeated: f.label() == Label::Repeated,
            },
        );
    }
    for nested in &m.nested_type {
        add_message(out, &name, nested);
    }
    out.insert(name, fields);
}

/// The most elements one repeated field of a request may hold: a bound on
/// what decoding may build, well above any batch the server accepts (it
/// refuses those past its own op limit after decoding, with a precise
/// message, and a Session goes on).
static MAX_REPEATED: AtomicUsize = AtomicUsize::new(1 << 18);

/// Allow repeated fields of up to `n` elements (never fewer than 2^18).
/// Servers in one process share it: each raises it to what it needs.
pub fn allow_repeated(n: usize) {
    MAX_REPEATED.fetch_max(n.max(1 << 18), Ordering::Relaxed);
}

/// The current bound on a repeated field's elements.
pub fn max_repeated() -> usize {
    MAX_REPEATED.load(Ordering::Relaxed)
}

/// Nesting deeper than this is refused (the schema nests four levels,
/// and a probe's expressions two per operator: 64 allows 30 operators).
const MAX_DEPTH: usize = 64;

/// Check `buf`, an encoded `message` (full name, `.utrace.v1.Op`). `Err`
/// names the field and what is wrong with it.
pub fn check(message: &str, buf: &[u8]) -> Result<(), String> {
    let mut path = Vec::new();
    walk(schema(), message, buf, max_repeated(), &mut path, 0)
}

/// One step of a field path: a name, with an index for repeated fields.
type Step = (&'static str, Option<usize>);

/// `path`, then `name[index]`, as text: `ops[3].read_memory.len`.
fn at(path: &[Step], last: Option<Step>) -> String {
    let mut s = String::new();
    for (name, index) in path.iter().chain(last.as_ref()) {
        if !s.is_empty() {
            s.push('.');
        }
        s.push_str(name);
        if let Some(i) = index {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

fn malformed(path: &[Step]) -> String {
    match at(path, None) {
        p if p.is_empty() => "the message is malformed (a field runs past its end)".into(),
        p => format!("{p}: malformed (a field runs past its end)"),
    }
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// `v` fits a field of `kind` (any value fits a kind not checked).
fn fits(kind: &Kind, v: u64) -> bool {
    match kind {
        Kind::U32 => v <= u64::from(u32::MAX),
        Kind::I32 => i32::try_from(v as i64).is_ok(),
        _ => true,
    }
}

/// A field's value on the wire.
enum Value<'a> {
    Varint(u64),
    Delimited(&'a [u8]),
    Fixed,
}

fn walk(
    schema: &'static Schema,
    message: &str,
    b: &[u8],
    max: usize,
    path: &mut Vec<Step>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{}: nested too deeply", at(path, None)));
    }
    let fields = schema.get(message);
    // Elements seen per repeated field: the next one's index.
    let mut counts: HashMap<u32, usize> = HashMap::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i).ok_or_else(|| malformed(path))?;
        let (number, wire) = ((key >> 3) as u32, key & 7);
        let skip = |i: &mut usize, n: usize| {
            *i = i
                .checked_add(n)
                .filter(|e| *e <= b.len())
                .ok_or_else(|| malformed(path))?;
            Ok::<_, String>(())
        };
        let value = match wire {
            0 => Value::Varint(varint(b, &mut i).ok_or_else(|| malformed(path))?),
            1 => skip(&mut i, 8).map(|()| Value::Fixed)?,
            5 => skip(&mut i, 4).map(|()| Value::Fixed)?,
            2 => {
                let len = varint(b, &mut i).ok_or_else(|| malformed(path))?;
                let start = i;
                skip(&mut i, usize::try_from(len).map_err(|_| malformed(path))?)?;
                Value::Delimited(&b[start..i])
            }
            _ => return Err(malformed(path)),
        };
        let Some(f) = fields.and_then(|f| f.get(&number)) else {
            continue;
        };
        // The index of the next element of `f`, refused past `max`.
        let mut next = || -> Result<Option<usize>, String> {
            if !f.repeated {
                return Ok(None);
            }
            let n = counts.entry(number).or_insert(0);
            if *n >= max {
                return Err(format!(
                    "{}: more than {max} elements; split the request",
                    at(path, Some((&f.name, None)))
                ));
            }
            *n += 1;
            Ok(Some(*n - 1))
        };
        let too_wide = |index, v| {
            format!(
                "{}: {v} does not fit in 32 bits",
                at(path, Some((&f.name, index)))
            )
        };
        match (value, &f.kind) {
            (Value::Varint(v), kind) => {
                let index = next()?;
                if !fits(kind, v) {
                    return Err(too_wide(index, v));
                }
            }
            (Value::Delimited(body), Kind::Message(name)) => {
                let index = next()?;
                path.push((&f.name, index));
                walk(schema, name, body, max, path, depth + 1)?;
                path.pop();
            }
            // Packed numbers: each is an element.
            (Value::Delimited(body), kind @ (Kind::U32 | Kind::I32)) => {
                let mut j = 0;
                while j < body.len() {
                    let v = varint(body, &mut j).ok_or_else(|| malformed(path))?;
                    let index = next()?;
                    if !fits(kind, v) {
                        return Err(too_wide(index, v));
                    }
                }
            }
            _ => {
                next()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    fn check_msg<M: Message>(name: &str, m: &M) -> Result<(), String> {
        check(name, &m.encode_to_vec())
    }

    #[test]
    fn well_formed_requests_pass() {
        let r = v1::BatchRequest {
            engine_id: 1,
            tid: 7,
            ops: vec![
                v1::Op {
                    op: Some(v1::op::Op::ReadMemory(v1::ReadMemory {
                        addr: u64::MAX,
                        len: u32::MAX,
                    })),
                },
                v1::Op {
                    op: Some(v1::op::Op::SetSyscallReturn(v1::SetSyscallReturn {
                        value: -1,
                    })),
                },
            ],
            ..Default::default()
        };
        assert_eq!(check_msg(".utrace.v1.BatchRequest", &r), Ok(()));
        let d = v1::ClientMessage {
            id: 3,
            msg: Some(v1::client_message::Msg::Decide(v1::Decision {
                signal: -5,
                action: v1::Action::Resume as i32,
                ..Default::default()
            })),
        };
        assert_eq!(check_msg(".utrace.v1.ClientMessage", &d), Ok(()));
    }

    /// Encode `fields` (number, varint) as a message.
    fn raw(fields: &[(u32, u64)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in fields {
            prost::encoding::encode_varint(u64::from(n << 3), &mut b);
            prost::encoding::encode_varint(*v, &mut b);
        }
        b
    }

    fn nested(number: u32, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        prost::encoding::encode_varint(u64::from((number << 3) | 2), &mut b);
        prost::encoding::encode_varint(body.len() as u64, &mut b);
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn wide_values_in_32_bit_fields_are_named() {
        // BatchRequest.ops[1].read_memory.len = 2^40 + 16
        let ok_op = nested(1, &raw(&[(1, 0x1000), (2, 8)]));
        let bad_op = nested(1, &raw(&[(1, 0x1000), (2, (1 << 40) + 16)]));
        let mut req = raw(&[(1, 5)]);
        req.extend(nested(3, &ok_op));
        req.extend(nested(3, &bad_op));
        assert_eq!(
            check(".utrace.v1.BatchRequest", &req),
            Err("ops[1].read_memory.len: 1099511627792 does not fit in 32 bits".into())
        );
        // AttachRequest.pid = 2^32 + 1
        assert_eq!(
            check(".utrace.v1.AttachRequest", &raw(&[(1, (1 << 32) + 1)])),
            Err("pid: 4294967297 does not fit in 32 bits".into())
        );
        // An int32 holds negative numbers (sign-extended), not 2^31.
        assert!(check(".utrace.v1.Decision", &raw(&[(3, (-5i64) as u64)])).is_ok());
        assert!(check(".utrace.v1.Decision", &raw(&[(3, 1 << 31)])).is_err());
    }

    #[test]
    fn too_many_elements_are_refused_before_decoding() {
        let max = max_repeated();
        let mut req = raw(&[(1, 5)]);
        for _ in 0..=max {
            req.extend([0x1a, 0x00]); // an empty op
        }
        let e = check(".utrace.v1.BatchRequest", &req).unwrap_err();
        assert_eq!(
            e,
            format!("ops: more than {max} elements; split the request")
        );
    }

    #[test]
    fn truncated_input_is_malformed() {
        let e = check(".utrace.v1.SpawnRequest", &[0x0a, 0x7f, 0x01]).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
    }
}
