//! `utrace batch`: one `Batch` call on a process, its ops read as a JSON
//! array in proto3 JSON form, its results printed as a JSON array; and the
//! one-shot engine that `batch`, `mem` and `regs` share (attach, run the
//! batch with `interrupt`, detach).

use std::io::Read;
use std::path::PathBuf;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use clap::Args;
use serde_json::{json, Map, Value};
use utrace_client::{pb, BatchResults, OpFailure, OpOutcome};

use crate::server::Connection;

/// The process a one-shot command works on.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// The process: a fresh engine attaches for this command only, stops
    /// the thread for the ops, lets it go and detaches.
    #[arg(short = 'p', value_name = "PID", required = true)]
    pub pid: Option<u32>,
    /// The thread (default: the process's main thread).
    #[arg(long, value_name = "TID")]
    pub tid: Option<u32>,
}

/// `utrace batch`.
#[derive(Args, Debug)]
#[command(after_help = BATCH_HELP)]
pub struct BatchCmd {
    #[command(flatten)]
    pub target: Target,
    /// After a failed op (an error or a partial read), skip the rest.
    #[arg(long)]
    pub stop_on_error: bool,
    /// The ops: a JSON file, or `-` (the default) for standard input.
    #[arg(value_name = "FILE|-")]
    pub input: Option<PathBuf>,
}

const BATCH_HELP: &str = "\
The input is a JSON array of ops in proto3 JSON form (utrace.v1.Op), e.g.
  [{\"readMemory\": {\"addr\": \"0x7ffc0000\", \"len\": 8}},
   {\"readString\": {\"addr\": 140720308486144, \"maxLen\": 256}},
   {\"getRegisters\": {\"names\": [\"rip\", \"rsp\"]}},
   {\"writeMemory\": {\"addr\": \"0x7ffc0000\", \"data\": \"hex:90cc\"}},
   {\"setRegisters\": {\"values\": {\"rax\": \"1\"}}},
   {\"control\": {\"action\": \"ACTION_RESUME\"}}]
Addresses and other integers: JSON numbers, decimal strings or \"0x…\" hex
strings. writeMemory data: base64 (proto3 JSON) or \"hex:…\".
The output is a JSON array, one result per op, in order: {\"memory\": …},
{\"registers\": …}, {\"done\": {}}, {\"error\": {\"code\", \"message\"}},
{\"skipped\": {}}…

Exit status: 0 when every op succeeded; 1 when an op failed (each failure is
also told on stderr) or the call failed; 2 when the input is not a batch.";

/// Op names as proto3 JSON writes them, and as the .proto spells them.
const OPS: &[(&str, &str)] = &[
    ("readMemory", "read_memory"),
    ("writeMemory", "write_memory"),
    ("readString", "read_string"),
    ("getRegisters", "get_registers"),
    ("setRegisters", "set_registers"),
    ("updateRegisterBits", "update_register_bits"),
    ("getEvents", "get_events"),
    ("setEvents", "set_events"),
    ("insertBreakpoint", "insert_breakpoint"),
    ("removeBreakpoint", "remove_breakpoint"),
    ("control", "control"),
    ("getSyscall", "get_syscall"),
    ("setSyscallReturn", "set_syscall_return"),
    ("readMaps", "read_maps"),
    ("getRegisterBytes", "get_register_bytes"),
    ("setRegisterBytes", "set_register_bytes"),
    ("sendSignal", "send_signal"),
];

const EXAMPLE: &str =
    r#"[{"readMemory": {"addr": "0x7ffc0000", "len": 8}}, {"getRegisters": {"names": ["rip"]}}]"#;

fn accepted_ops() -> String {
    OPS.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
}

/// Read the batch from `input` (None or `-`: stdin) and parse it. An error
/// here is a usage error.
pub fn load(input: Option<&PathBuf>) -> Result<Vec<pb::Op>, String> {
    let text = match input {
        Some(p) if p.as_os_str() != "-" => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read the batch file {}: {e}", p.display()))?,
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the batch from standard input: {e}"))?;
            s
        }
    };
    parse_ops(&text)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON array of ops (proto3 JSON) as wire ops.
pub fn parse_ops(text: &str) -> Result<Vec<pb::Op>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        format!("the batch is not valid JSON: {e}; expected an array of ops such as {EXAMPLE}")
    })?;
    let Value::Array(items) = v else {
        return Err(format!(
            "the batch must be a JSON array of ops, e.g. {EXAMPLE}; got {}",
            type_name(&v)
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_op(i, item))
        .collect()
}

/// `camelCase` → `snake_case`.
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The fields of one op, with their path for messages.
struct Fields<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Fields<'a> {
    fn new(path: String, v: &'a Value) -> Result<Fields<'a>, String> {
        match v {
            Value::Null => Ok(Fields { path, map: None }),
            Value::Object(m) => Ok(Fields { path, map: Some(m) }),
            other => Err(format!(
                "{path}: expected an object of the op's fields ({{}} for none); got {}",
                type_name(other)
            )),
        }
    }

    /// Refuse fields the op does not have (names in camelCase; snake_case
    /// accepted too).
    fn only(&self, known: &[&str]) -> Result<(), String> {
        let Some(map) = self.map else { return Ok(()) };
        for key in map.keys() {
            if !known.iter().any(|k| key == k || *key == snake(k)) {
                let takes = if known.is_empty() {
                    "no fields".to_string()
                } else {
                    known.join(", ")
                };
                return Err(format!(
                    "{}: unknown field {key:?}; this op takes {takes}",
                    self.path
                ));
            }
        }
        Ok(())
    }

    /// Field `name` (camelCase or snake_case), unless absent or null.
    fn get(&self, name: &str) -> Option<(String, &'a Value)> {
        let map = self.map?;
        let v = map.get(name).or_else(|| map.get(&snake(name)))?;
        (!v.is_null()).then(|| (format!("{}.{name}", self.path), v))
    }

    fn u64(&self, name: &str) -> Result<u64, String> {
        self.get(name).map_or(Ok(0), |(path, v)| json_u64(&path, v))
    }

    fn u32(&self, name: &str) -> Result<u32, String> {
        let Some((path, v)) = self.get(name) else {
            return Ok(0);
        };
        let n = json_u64(&path, v)?;
        u32::try_from(n).map_err(|_| format!("{path}: {n} does not fit in 32 bits"))
    }

    fn i64(&self, name: &str) -> Result<i64, String> {
        self.get(name).map_or(Ok(0), |(path, v)| json_i64(&path, v))
    }

    fn string(&self, name: &str) -> Result<String, String> {
        match self.get(name) {
            None => Ok(String::new()),
            Some((_, Value::String(s))) => Ok(s.clone()),
            Some((path, v)) => Err(format!("{path}: expected a string; got {}", type_name(v))),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some((path, Value::Array(items))) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(format!(
                        "{path}[{i}]: expected a string; got {}",
                        type_name(v)
                    )),
                })
                .collect(),
            Some((path, v)) => Err(format!(
                "{path}: expected an array of strings; got {}",
                type_name(v)
            )),
        }
    }
}

/// An integer: a JSON number, a decimal string or a "0x…" hex string.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A signed integer: like [`parse_u64`], with an optional leading `-`.
pub fn parse_i64(s: &str) -> Option<i64> {
    let s = s.trim();
    match s.strip_prefix('-') {
        Some(rest) => {
            let n = parse_u64(rest)?;
            if n == 1 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(n).ok().map(|n| -n)
            }
        }
        None => i64::try_from(parse_u64(s)?).ok(),
    }
}

/// A JSON number written as a float ("1e3", "-0") with an exact integral
/// value, as proto3 JSON accepts for integer fields.
fn integral(n: &serde_json::Number) -> Option<i64> {
    const EXACT: f64 = (1u64 << 53) as f64;
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

fn json_u64(path: &str, v: &Value) -> Result<u64, String> {
    let ok = match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| integral(n).and_then(|i| u64::try_from(i).ok())),
        Value::String(s) => parse_u64(s),
        _ => None,
    };
    ok.ok_or_else(|| {
        format!(
            "{path}: {v} is not an unsigned 64-bit integer; give a JSON number, a decimal string or a \"0x…\" hex string"
        )
    })
}

fn json_i64(path: &str, v: &Value) -> Result<i64, String> {
    let ok = match v {
        Value::Number(n) => n.as_i64().or_else(|| integral(n)),
        Value::String(s) => parse_i64(s),
        _ => None,
    };
    ok.ok_or_else(|| {
        format!(
            "{path}: {v} is not a signed 64-bit integer; give a JSON number, a decimal string or a \"0x…\" hex string"
        )
    })
}

/// Bytes from hex digits; spaces and colons between them are ignored.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    if digits.len() % 2 != 0 {
        return Err(format!(
            "{} hex digits: give two per byte, e.g. 90cc",
            digits.len()
        ));
    }
    let nibble = |b: u8| -> Result<u8, String> {
        match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => Err(format!("{:?} is not a hex digit", char::from(b))),
        }
    };
    digits
        .chunks(2)
        .map(|p| match p {
            [hi, lo] => Ok(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => Err("odd number of hex digits".to_string()),
        })
        .collect()
}

/// Base64 with either alphabet, padding optional (what proto3 JSON
/// parsers accept).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if s.contains(['-', '_']) {
        &alphabet::URL_SAFE
    } else {
        &alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, cfg).decode(s.trim()).ok()
}

fn json_bytes(path: &str, v: &Value) -> Result<Vec<u8>, String> {
    let Value::String(s) = v else {
        return Err(format!(
            "{path}: expected a base64 string or \"hex:…\"; got {}",
            type_name(v)
        ));
    };
    if let Some(hex) = s.strip_prefix("hex:") {
        return parse_hex(hex).map_err(|e| format!("{path}: {e}"));
    }
    decode_base64(s).ok_or_else(|| {
        format!("{path}: {s:?} is not base64; give base64 (proto3 JSON bytes) or \"hex:\" and hex digits")
    })
}

/// An enum value by name (`ACTION_RESUME`, or without its prefix,
/// `resume`) or number.
fn json_enum(
    path: &str,
    v: &Value,
    prefix: &str,
    from_name: fn(&str) -> Option<i32>,
    names: &[&str],
) -> Result<i32, String> {
    let found = match v {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => {
            let upper = s.trim().to_ascii_uppercase();
            from_name(&upper).or_else(|| from_name(&format!("{prefix}{upper}")))
        }
        _ => None,
    };
    found.ok_or_else(|| format!("{path}: {v} is not one of {}", names.join(", ")))
}

fn action(path: &str, v: &Value) -> Result<i32, String> {
    json_enum(
        path,
        v,
        "ACTION_",
        |s| pb::Action::from_str_name(s).map(|a| a as i32),
        &[
            "ACTION_RESUME",
            "ACTION_STEP",
            "ACTION_HOLD",
            "ACTION_DETACH",
        ],
    )
}

fn event_kind(path: &str, v: &Value) -> Result<i32, String> {
    json_enum(
        path,
        v,
        "EVENT_KIND_",
        |s| pb::EventKind::from_str_name(s).map(|k| k as i32),
        &[
            "EVENT_KIND_SYSCALL_ENTRY",
            "EVENT_KIND_SYSCALL_EXIT",
            "EVENT_KIND_SIGNAL",
            "EVENT_KIND_CLONE",
            "EVENT_KIND_EXEC",
            "EVENT_KIND_EXIT",
            "EVENT_KIND_DEATH",
        ],
    )
}

fn parse_op(i: usize, item: &Value) -> Result<pb::Op, String> {
    use pb::op::Op as P;
    let path = format!("ops[{i}]");
    let Value::Object(map) = item else {
        return Err(format!(
            "{path}: an op is an object with one key, the op's name (one of {}); got {}",
            accepted_ops(),
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
                accepted_ops(),
                keys.join(", ")
            ));
        }
    };
    let Some((camel, _)) = OPS.iter().find(|(c, s)| name == c || name == s) else {
        return Err(format!(
            "{path}: unknown op {name:?}; the ops are {}",
            accepted_ops()
        ));
    };
    let f = Fields::new(format!("{path}.{camel}"), body)?;
    let op = match *camel {
        "readMemory" => {
            f.only(&["addr", "len"])?;
            P::ReadMemory(pb::ReadMemory {
                addr: f.u64("addr")?,
                len: f.u32("len")?,
            })
        }
        "writeMemory" => {
            f.only(&["addr", "data"])?;
            P::WriteMemory(pb::WriteMemory {
                addr: f.u64("addr")?,
                data: match f.get("data") {
                    Some((p, v)) => json_bytes(&p, v)?.into(),
                    None => Default::default(),
                },
            })
        }
        "readString" => {
            f.only(&["addr", "maxLen"])?;
            P::ReadString(pb::ReadString {
                addr: f.u64("addr")?,
                max_len: f.u32("maxLen")?,
            })
        }
        "getRegisters" => {
            f.only(&["names"])?;
            P::GetRegisters(pb::GetRegisters {
                names: f.strings("names")?,
            })
        }
        "setRegisters" => {
            f.only(&["values"])?;
            let values = match f.get("values") {
                None => Default::default(),
                Some((p, Value::Object(m))) => m
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), json_u64(&format!("{p}.{k}"), v)?)))
                    .collect::<Result<_, String>>()?,
                Some((p, v)) => {
                    return Err(format!(
                    "{p}: expected an object of register values, e.g. {{\"rax\": \"0x1\"}}; got {}",
                    type_name(v)
                ))
                }
            };
            P::SetRegisters(pb::SetRegisters { values })
        }
        "getRegisterBytes" => {
            f.only(&["names"])?;
            P::GetRegisterBytes(pb::GetRegisterBytes {
                names: f.strings("names")?,
            })
        }
        "setRegisterBytes" => {
            f.only(&["values"])?;
            let values = match f.get("values") {
                None => Default::default(),
                Some((p, Value::Object(m))) => m
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), json_bytes(&format!("{p}.{k}"), v)?.into())))
                    .collect::<Result<_, String>>()?,
                Some((p, v)) => {
                    return Err(format!(
                    "{p}: expected an object of register bytes (base64), e.g. {{\"xmm0\": \"AAAAAAAAAAAAAAAAAAAAAA==\"}}; got {}",
                    type_name(v)
                ))
                }
            };
            P::SetRegisterBytes(pb::SetRegisterBytes { values })
        }
        "updateRegisterBits" => {
            f.only(&["name", "set", "clear"])?;
            P::UpdateRegisterBits(pb::UpdateRegisterBits {
                name: f.string("name")?,
                set: f.u64("set")?,
                clear: f.u64("clear")?,
            })
        }
        "getEvents" => {
            f.only(&[])?;
            P::GetEvents(pb::GetEvents {})
        }
        "setEvents" => {
            f.only(&["events", "syscalls"])?;
            let events = match f.get("events") {
                None => Vec::new(),
                Some((p, Value::Array(items))) => items
                    .iter()
                    .enumerate()
                    .map(|(j, v)| event_kind(&format!("{p}[{j}]"), v))
                    .collect::<Result<_, String>>()?,
                Some((p, v)) => {
                    return Err(format!(
                        "{p}: expected an array of event kinds; got {}",
                        type_name(v)
                    ))
                }
            };
            P::SetEvents(pb::SetEvents {
                events,
                syscalls: f.strings("syscalls")?,
                engine_id: 0,
            })
        }
        "insertBreakpoint" => {
            f.only(&["addr", "symbol"])?;
            P::InsertBreakpoint(pb::InsertBreakpoint {
                addr: f.u64("addr")?,
                symbol: f.string("symbol")?,
            })
        }
        "removeBreakpoint" => {
            f.only(&["addr"])?;
            P::RemoveBreakpoint(pb::RemoveBreakpoint {
                addr: f.u64("addr")?,
            })
        }
        "control" => {
            f.only(&["action", "signal"])?;
            let action = match f.get("action") {
                Some((p, v)) => action(&p, v)?,
                None => pb::Action::Unspecified as i32,
            };
            let signal = match f.get("signal") {
                Some((p, v)) => {
                    let n = json_i64(&p, v)?;
                    Some(i32::try_from(n).map_err(|_| format!("{p}: {n} is not a signal number"))?)
                }
                None => None,
            };
            P::Control(pb::Control { action, signal })
        }
        "getSyscall" => {
            f.only(&[])?;
            P::GetSyscall(pb::GetSyscall {})
        }
        "setSyscallReturn" => {
            f.only(&["value"])?;
            P::SetSyscallReturn(pb::SetSyscallReturn {
                value: f.i64("value")?,
            })
        }
        "sendSignal" => {
            f.only(&["signo"])?;
            P::SendSignal(pb::SendSignal {
                signo: i32::try_from(f.i64("signo")?)
                    .map_err(|_| "sendSignal: signo is 1 to 64".to_string())?,
            })
        }
        "readMaps" => {
            f.only(&[])?;
            P::ReadMaps(pb::ReadMaps {})
        }
        other => {
            return Err(format!(
                "{path}: op {other:?} is listed but not handled (a bug in utrace)"
            ))
        }
    };
    Ok(pb::Op { op: Some(op) })
}

// ---- output ----------------------------------------------------------------

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn event_kind_name(k: i32) -> Value {
    match pb::EventKind::try_from(k) {
        Ok(k) => Value::String(k.as_str_name().to_string()),
        Err(_) => Value::from(k),
    }
}

/// One result in proto3 JSON form (64-bit integers as decimal strings), plus
/// `hex` renderings of bytes and register values.
pub fn result_json(r: &pb::OpResult) -> Value {
    use pb::op_result::Result as R;
    match &r.result {
        Some(R::Memory(m)) => {
            let mut o = json!({
                "addr": m.addr.to_string(),
                "data": base64::engine::general_purpose::STANDARD.encode(&m.data),
                "hex": hex(&m.data),
            });
            if !m.error.is_empty() {
                o["error"] = Value::String(m.error.clone());
            }
            json!({ "memory": o })
        }
        Some(R::Registers(regs)) => {
            let values: Map<String, Value> = regs
                .values
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                .collect();
            let hexes: Map<String, Value> = regs
                .values
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(format!("{v:#x}"))))
                .collect();
            json!({ "registers": { "values": values, "hex": hexes } })
        }
        Some(R::RegisterBytes(regs)) => {
            let values: Map<String, Value> = regs
                .values
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
                    )
                })
                .collect();
            let hexes: Map<String, Value> = regs
                .values
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(hex(v))))
                .collect();
            json!({ "registerBytes": { "values": values, "hex": hexes } })
        }
        Some(R::Events(e)) => json!({ "events": {
            "events": e.events.iter().map(|k| event_kind_name(*k)).collect::<Vec<_>>(),
            "syscalls": e.syscalls,
        }}),
        Some(R::Syscall(s)) => {
            let mut o = json!({ "inSyscall": s.in_syscall });
            if s.in_syscall {
                o["nr"] = Value::String(s.nr.to_string());
                o["name"] = Value::String(s.name.clone());
                o["args"] = s
                    .args
                    .iter()
                    .map(|a| Value::String(a.to_string()))
                    .collect();
                if let Some(ret) = s.ret {
                    o["ret"] = Value::String(ret.to_string());
                }
            }
            json!({ "syscall": o })
        }
        Some(R::Maps(m)) => json!({ "maps": { "text": m.text } }),
        Some(R::Breakpoint(b)) => json!({ "breakpoint": { "addr": format!("{:#x}", b.addr) } }),
        Some(R::Done(_)) => json!({ "done": {} }),
        Some(R::Error(e)) => json!({ "error": { "code": e.code, "message": e.message } }),
        Some(R::Skipped(_)) => json!({ "skipped": {} }),
        None => json!({}),
    }
}

/// The results as a JSON array, one result per line.
pub fn results_json(results: &BatchResults) -> String {
    if results.is_empty() {
        return "[]\n".into();
    }
    let items: Vec<String> = results
        .raw()
        .iter()
        .map(|r| result_json(r).to_string())
        .collect();
    format!("[\n  {}\n]\n", items.join(",\n  "))
}

// ---- running ---------------------------------------------------------------

/// Attach a fresh engine to the target's process, run `ops` there as one
/// batch with `interrupt` (the thread is stopped for it and let go after),
/// and detach.
pub async fn run_once(
    conn: &mut Connection,
    target: &Target,
    ops: Vec<pb::Op>,
    stop_on_error: bool,
) -> Result<BatchResults, String> {
    let Some(pid) = target.pid else {
        return Err("give the process with -p PID".into());
    };
    let attached = conn
        .client
        .attach(pb::AttachRequest {
            pid,
            // Only what the engine always sees: no syscall or signal reports
            // for a one-shot engine nobody reads.
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Death as i32],
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| s.message().to_string())?;
    let engine = attached.engine_id;
    let sent = conn
        .client
        .batch(engine, target.tid.unwrap_or(0))
        .ops(ops)
        .stop_on_error(stop_on_error)
        .interrupt(true)
        .send()
        .await;
    if let Err(s) = conn.client.detach(engine).await {
        // The engine also goes when this connection closes.
        tracing::debug!(engine, %s, "detach failed");
        if sent.is_ok() {
            eprintln!("utrace: detaching from pid {pid} failed: {}", s.message());
        }
    }
    sent.map_err(|s| s.message().to_string())
}

/// A one-op command's failure in words: its code and message.
pub fn single_failure(f: &OpFailure) -> String {
    format!("{}: {}", f.code, f.message)
}

/// `utrace batch`: run the ops (already parsed), print the results; exit 1
/// when any op failed.
pub async fn run(conn: &mut Connection, cmd: &BatchCmd, ops: Vec<pb::Op>) -> Result<u8, String> {
    let results = run_once(conn, &cmd.target, ops, cmd.stop_on_error).await?;
    crate::write_stdout(results_json(&results).as_bytes())?;
    let mut failed = false;
    let mut skipped = 0usize;
    for (i, outcome) in results.iter().enumerate() {
        match outcome {
            OpOutcome::Skipped => {
                skipped += 1;
                failed = true;
            }
            _ => {
                if let Some(f) = results.failure(i) {
                    eprintln!("utrace: {f}");
                    failed = true;
                }
            }
        }
    }
    if skipped > 0 {
        eprintln!("utrace: {skipped} ops skipped after the first failure (--stop-on-error)");
    }
    Ok(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::op::Op as P;

    fn op(p: P) -> pb::Op {
        pb::Op { op: Some(p) }
    }

    #[test]
    fn parses_every_op() {
        let text = r#"[
            {"readMemory": {"addr": "0x7fff0000", "len": 8}},
            {"read_memory": {"addr": 4096, "len": "16"}},
            {"writeMemory": {"addr": "4096", "data": "kMw="}},
            {"writeMemory": {"addr": "0x1000", "data": "hex:90 cc"}},
            {"readString": {"addr": "0x10", "maxLen": 256}},
            {"getRegisters": {"names": ["rip", "rsp"]}},
            {"getRegisters": {}},
            {"setRegisters": {"values": {"rax": "0x1", "rbx": 2}}},
            {"updateRegisterBits": {"name": "eflags", "set": "0x100", "clear": 0}},
            {"getEvents": {}},
            {"setEvents": {"events": ["EVENT_KIND_SYSCALL_ENTRY", "exit", 7], "syscalls": ["openat"]}},
            {"insertBreakpoint": {"addr": 1}},
            {"removeBreakpoint": {"addr": 1}},
            {"control": {"action": "ACTION_RESUME"}},
            {"control": {"action": "hold", "signal": 0}},
            {"getSyscall": null},
            {"setSyscallReturn": {"value": "-2"}},
            {"setSyscallReturn": {"value": -0}},
            {"readMemory": {"addr": 1e3, "len": 8.0}},
            {"readMaps": {}}
        ]"#;
        let ops = parse_ops(text).expect("parses");
        assert_eq!(ops.len(), 20);
        assert_eq!(
            ops[18],
            op(P::ReadMemory(pb::ReadMemory { addr: 1000, len: 8 }))
        );
        assert_eq!(
            ops[0],
            op(P::ReadMemory(pb::ReadMemory {
                addr: 0x7fff0000,
                len: 8
            }))
        );
        assert_eq!(
            ops[1],
            op(P::ReadMemory(pb::ReadMemory {
                addr: 4096,
                len: 16
            }))
        );
        let write = |data: Vec<u8>| {
            op(P::WriteMemory(pb::WriteMemory {
                addr: 4096,
                data: data.into(),
            }))
        };
        assert_eq!(ops[2], write(vec![0x90, 0xcc]));
        assert_eq!(ops[3], write(vec![0x90, 0xcc]));
        assert_eq!(
            ops[7],
            op(P::SetRegisters(pb::SetRegisters {
                values: [("rax".to_string(), 1), ("rbx".to_string(), 2)]
                    .into_iter()
                    .collect()
            }))
        );
        assert_eq!(
            ops[10],
            op(P::SetEvents(pb::SetEvents {
                events: vec![1, 6, 7],
                syscalls: vec!["openat".into()],
                engine_id: 0,
            }))
        );
        assert_eq!(
            ops[14],
            op(P::Control(pb::Control {
                action: pb::Action::Hold as i32,
                signal: Some(0)
            }))
        );
        assert_eq!(
            ops[16],
            op(P::SetSyscallReturn(pb::SetSyscallReturn { value: -2 }))
        );
    }

    #[test]
    fn bad_batches_name_the_place_and_the_ops() {
        let err = |t: &str| parse_ops(t).expect_err(t);
        let e = err(r#"[{"readMemory": {}}, {"readMem": {}}]"#);
        assert!(e.starts_with("ops[1]: unknown op \"readMem\""), "{e}");
        assert!(e.contains("readMemory, writeMemory"), "{e}");
        let e = err("[{\"readMemory\": ");
        assert!(e.contains("not valid JSON") && e.contains("line 1"), "{e}");
        assert!(err("{}").contains("must be a JSON array"));
        assert!(err("[1]").starts_with("ops[0]: an op is an object"));
        assert!(err(r#"[{"readMemory": {}, "readMaps": {}}]"#).contains("exactly one key"));
        let e = err(r#"[{"readMemory": {"addr": "zz"}}]"#);
        assert!(e.starts_with("ops[0].readMemory.addr: "), "{e}");
        let e = err(r#"[{"readMemory": {"address": 1}}]"#);
        assert!(e.contains("unknown field \"address\""), "{e}");
        assert!(err(r#"[{"readMemory": {"len": 4294967296}}]"#).contains("32 bits"));
        assert!(err(r#"[{"writeMemory": {"data": "hex:9"}}]"#).contains("hex digits"));
        assert!(err(r#"[{"writeMemory": {"data": "!!"}}]"#).contains("not base64"));
        assert!(err(r#"[{"control": {"action": "GO"}}]"#).contains("ACTION_RESUME"));
        assert!(err(r#"[{"readMemory": {"addr": -1}}]"#).contains("unsigned"));
        assert!(err(r#"[{"readMemory": {"addr": 1.5}}]"#).contains("unsigned"));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_u64("0x7FFF_0000"), Some(0x7fff_0000));
        assert_eq!(parse_u64(" 42 "), Some(42));
        assert_eq!(parse_u64("0x"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_i64("-0x10"), Some(-16));
        assert_eq!(parse_i64("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64("9223372036854775808"), None);
        assert_eq!(parse_hex("de:ad be EF"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert!(parse_hex("xy").is_err());
    }

    #[test]
    fn results_as_json() {
        use pb::op_result::Result as R;
        let res = |r| pb::OpResult { result: Some(r) };
        let results = BatchResults::from_raw(vec![
            res(R::Memory(pb::Memory {
                data: vec![0x90, 0xcc].into(),
                addr: 16,
                error: String::new(),
            })),
            res(R::Error(pb::OpError {
                code: "EFAULT".into(),
                message: "bad".into(),
            })),
            res(R::Registers(pb::Registers {
                values: [("rip".to_string(), 255)].into_iter().collect(),
            })),
            res(R::Skipped(pb::Skipped {})),
            res(R::Syscall(pb::Syscall::default())),
        ]);
        let text = results_json(&results);
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            v,
            json!([
                {"memory": {"addr": "16", "data": "kMw=", "hex": "90cc"}},
                {"error": {"code": "EFAULT", "message": "bad"}},
                {"registers": {"values": {"rip": "255"}, "hex": {"rip": "0xff"}}},
                {"skipped": {}},
                {"syscall": {"inSyscall": false}},
            ])
        );
        assert_eq!(text.lines().count(), 7);
        assert_eq!(results_json(&BatchResults::default()), "[]\n");
    }
}
