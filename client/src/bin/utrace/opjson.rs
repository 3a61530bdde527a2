//! Batch ops from proto3 JSON and their results to it (`utrace batch`):
//! `utrace.v1.Op` read and `utrace.v1.OpResult` written by `prost-reflect`
//! over the descriptor set the build keeps, so every op and result the
//! .proto has, now and later, goes with its own field names and types
//! (nothing here lists them). Results get hex forms beside the values
//! (`"hex"`: of memory, registers, register bytes, a breakpoint's address).
//!
//! A thin pre-pass, guided by the same descriptors, keeps the conveniences
//! proto3 JSON lacks and names the place of a mistake:
//! - integers also as `"0x…"` hex strings (and with `_`), and as floats
//!   with an integral value;
//! - bytes also as `"hex:…"`, and base64 of either alphabet, padded or not;
//! - enum values also without their prefix and in any case (`resume` for
//!   `ACTION_RESUME`);
//! - an unknown field, or a value of the wrong JSON type, is named by its
//!   path (`ops[2].readMemory.len`).

use std::sync::OnceLock;

use base64::Engine as _;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value;
use utrace_client::pb;

use crate::batch::{decode_base64, parse_hex, parse_i64, parse_u64};

/// The descriptors of `utrace.v1` (built into the proto crate).
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(utrace_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set built into utrace-proto decodes")
    })
}

fn op_descriptor() -> MessageDescriptor {
    pool()
        .get_message_by_name("utrace.v1.Op")
        .expect("utrace.v1.Op is in the descriptor set")
}

/// The ops' names, as proto3 JSON writes them (`readMemory`…).
pub fn op_names() -> Vec<String> {
    op_descriptor()
        .fields()
        .map(|f| f.json_name().to_string())
        .collect()
}

/// What kind of JSON value `v` is, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Op `i` of a batch (`{"readMemory": {…}}`, the op's name as proto3 JSON
/// or as the .proto spells it).
pub fn parse_op(i: usize, item: &Value) -> Result<pb::Op, String> {
    let path = format!("ops[{i}]");
    let names = || op_names().join(", ");
    let Value::Object(map) = item else {
        return Err(format!(
            "{path}: an op is an object with one key, the op's name (one of {}); got {}",
            names(),
            type_name(item)
        ));
    };
    let mut entries = map.iter();
    let (name, body) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        _ => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            return Err(format!(
                "{path}: an op has exactly one key, the op's name (one of {}); got {{{}}}",
                names(),
                keys.join(", ")
            ));
        }
    };
    let desc = op_descriptor();
    let Some(field) = desc
        .get_field_by_json_name(name)
        .or_else(|| desc.get_field_by_name(name))
    else {
        return Err(format!(
            "{path}: unknown op {name:?}; the ops are {}",
            names()
        ));
    };
    // `{"readMaps": null}`: the op with no fields, as `{}`.
    let mut body = match body {
        Value::Null => Value::Object(Default::default()),
        b => b.clone(),
    };
    normalize(&format!("{path}.{}", field.json_name()), &mut body, &field)?;
    let mut op = serde_json::Map::new();
    op.insert(field.json_name().to_string(), body);
    let msg = DynamicMessage::deserialize(desc, Value::Object(op))
        .map_err(|e| format!("{path}.{}: {e}", field.json_name()))?;
    msg.transcode_to::<pb::Op>()
        .map_err(|e| format!("{path}: {e}"))
}

/// Check and rewrite `v`, the JSON of `field`, into what the proto3 JSON
/// reader takes (see the module's text).
fn normalize(path: &str, v: &mut Value, field: &FieldDescriptor) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    if field.is_map() {
        let Value::Object(m) = v else {
            return Err(format!(
                "{path}: expected an object (a map); got {}",
                type_name(v)
            ));
        };
        let Kind::Message(entry) = field.kind() else {
            return Ok(());
        };
        let value_field = entry.map_entry_value_field();
        for (k, x) in m.iter_mut() {
            one(&format!("{path}.{k}"), x, &value_field)?;
        }
        return Ok(());
    }
    if field.is_list() {
        let Value::Array(items) = v else {
            return Err(format!("{path}: expected an array; got {}", type_name(v)));
        };
        for (j, x) in items.iter_mut().enumerate() {
            one(&format!("{path}[{j}]"), x, field)?;
        }
        return Ok(());
    }
    one(path, v, field)
}

/// A JSON number written as a float (`1e3`) with an exact integral value.
fn integral(n: &serde_json::Number) -> Option<i64> {
    const EXACT: f64 = (1u64 << 53) as f64;
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

/// One value (not a list or map) of `field`'s kind.
fn one(path: &str, v: &mut Value, field: &FieldDescriptor) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    match field.kind() {
        Kind::Message(m) => message(path, v, &m),
        k @ (Kind::Uint64 | Kind::Fixed64 | Kind::Uint32 | Kind::Fixed32) => {
            let wide = matches!(k, Kind::Uint64 | Kind::Fixed64);
            let n = match &*v {
                Value::Number(n) => n
                    .as_u64()
                    .or_else(|| integral(n).and_then(|i| u64::try_from(i).ok())),
                Value::String(s) => parse_u64(s),
                _ => None,
            }
            .ok_or_else(|| {
                format!(
                    "{path}: {v} is not an unsigned integer; give a JSON number, a decimal string or a \"0x…\" hex string"
                )
            })?;
            if !wide && n > u64::from(u32::MAX) {
                return Err(format!("{path}: {n} does not fit in 32 bits"));
            }
            *v = if wide {
                Value::String(n.to_string())
            } else {
                Value::from(n)
            };
            Ok(())
        }
        k @ (Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32) => {
            let wide = matches!(k, Kind::Int64 | Kind::Sint64 | Kind::Sfixed64);
            let n = match &*v {
                Value::Number(n) => n.as_i64().or_else(|| integral(n)),
                Value::String(s) => parse_i64(s),
                _ => None,
            }
            .ok_or_else(|| {
                format!(
                    "{path}: {v} is not a signed integer; give a JSON number, a decimal string or a \"0x…\" hex string"
                )
            })?;
            if !wide && i32::try_from(n).is_err() {
                return Err(format!("{path}: {n} does not fit in 32 bits"));
            }
            *v = if wide {
                Value::String(n.to_string())
            } else {
                Value::from(n)
            };
            Ok(())
        }
        Kind::Bytes => {
            let Value::String(s) = &*v else {
                return Err(format!(
                    "{path}: expected a base64 string or \"hex:…\"; got {}",
                    type_name(v)
                ));
            };
            let bytes = match s.strip_prefix("hex:") {
                Some(hex) => parse_hex(hex).map_err(|e| format!("{path}: {e}"))?,
                None => decode_base64(s).ok_or_else(|| {
                    format!("{path}: {s:?} is not base64; give base64 (proto3 JSON bytes) or \"hex:\" and hex digits")
                })?,
            };
            *v = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
            Ok(())
        }
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().map(|x| x.name().to_string()).collect();
            let found = match &*v {
                Value::Number(n) => n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .and_then(|n| e.get_value(n))
                    .map(|x| x.name().to_string()),
                Value::String(s) => {
                    let upper = s.trim().to_ascii_uppercase();
                    let prefix = format!("{}_", screaming(e.name()));
                    names
                        .iter()
                        .find(|n| **n == upper || **n == format!("{prefix}{upper}"))
                        .cloned()
                }
                _ => None,
            };
            let name =
                found.ok_or_else(|| format!("{path}: {v} is not one of {}", names.join(", ")))?;
            *v = Value::String(name);
            Ok(())
        }
        // Strings, booleans, floats: as proto3 JSON has them (a wrong type
        // is refused by the reader, at this op's path).
        _ => Ok(()),
    }
}

/// The fields of message `m` in `v`, each checked (an unknown one named).
fn message(path: &str, v: &mut Value, m: &MessageDescriptor) -> Result<(), String> {
    let Value::Object(map) = v else {
        return Err(format!(
            "{path}: expected an object ({}); got {}",
            m.name(),
            type_name(v)
        ));
    };
    for (k, x) in map.iter_mut() {
        let Some(f) = m
            .get_field_by_json_name(k)
            .or_else(|| m.get_field_by_name(k))
        else {
            let fields: Vec<String> = m.fields().map(|f| f.json_name().to_string()).collect();
            return Err(format!(
                "{path}: unknown field {k:?}; {} has {}",
                m.name(),
                if fields.is_empty() {
                    "no fields".to_string()
                } else {
                    fields.join(", ")
                }
            ));
        };
        normalize(&format!("{path}.{k}"), x, &f)?;
    }
    Ok(())
}

/// Result `r` as proto3 JSON, with hex forms beside the values.
pub fn result_json(r: &pb::OpResult) -> Value {
    let desc = pool()
        .get_message_by_name("utrace.v1.OpResult")
        .expect("utrace.v1.OpResult is in the descriptor set");
    let mut msg = DynamicMessage::new(desc);
    if let Err(e) = msg.transcode_from(r) {
        return serde_json::json!({ "error": { "code": "INTERNAL", "message": e.to_string() } });
    }
    let mut v = serde_json::to_value(&msg).unwrap_or_else(
        |e| serde_json::json!({ "error": { "code": "INTERNAL", "message": e.to_string() } }),
    );
    with_hex(&mut v, r);
    v
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Add to `v`, result `r`'s proto3 JSON, the hex forms of `r`'s values
/// (and `inSyscall`, which proto3 JSON leaves out when false).
fn with_hex(v: &mut Value, r: &pb::OpResult) {
    use pb::op_result::Result as R;
    let Some(body) = v
        .as_object_mut()
        .and_then(|o| o.values_mut().next())
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let hex_map = |m: Vec<(&String, String)>| {
        Value::Object(
            m.into_iter()
                .map(|(k, h)| (k.clone(), Value::String(h)))
                .collect(),
        )
    };
    let h = match &r.result {
        Some(R::Memory(m)) => Value::String(hex(&m.data)),
        Some(R::Registers(x)) => hex_map(
            x.values
                .iter()
                .map(|(k, n)| (k, format!("{n:#x}")))
                .collect(),
        ),
        Some(R::RegisterBytes(x)) => hex_map(x.values.iter().map(|(k, b)| (k, hex(b))).collect()),
        Some(R::Breakpoint(b)) => Value::String(format!("{:#x}", b.addr)),
        Some(R::Syscall(_)) => {
            body.entry("inSyscall").or_insert(Value::Bool(false));
            return;
        }
        _ => return,
    };
    body.insert("hex".into(), h);
}

/// `EventKind` → `EVENT_KIND` (an enum's values' prefix in the .proto).
fn screaming(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(json: &str) -> Result<pb::Op, String> {
        parse_op(0, &serde_json::from_str(json).expect("json"))
    }

    /// What batch.rs's tests do not cover: an op the hand-written reader
    /// never had, .proto names, enum values by their short name, a map.
    #[test]
    fn every_op_of_the_proto() {
        use pb::op::Op as P;
        let o =
            op(r#"{"insert_watchpoint": {"addr": "0x1000", "len": 8, "kind": "write"}}"#).unwrap();
        assert!(
            matches!(o.op, Some(P::InsertWatchpoint(w)) if w.addr == 0x1000 && w.kind == pb::WatchKind::Write as i32)
        );
        let o = op(r#"{"setRegisters": {"values": {"rax": "0x10"}}}"#).unwrap();
        assert!(matches!(o.op, Some(P::SetRegisters(s)) if s.values["rax"] == 16));
        let e = op(r#"{"getRegisters": {"names": "rip"}}"#).unwrap_err();
        assert!(
            e.contains("ops[0].getRegisters.names: expected an array"),
            "{e}"
        );
        let e = op(r#"{"removeWatchpoint": {"kind": "read"}}"#).unwrap_err();
        assert!(e.contains("WATCH_KIND_READ_WRITE"), "{e}");
    }
}
