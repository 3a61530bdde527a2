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
use serde_json::Value;
use utrace_client::{pb, BatchResults, OpFailure, OpOutcome};

use crate::opjson::type_name;
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
The input is a JSON array of ops in proto3 JSON form (utrace.v1.Op: every op
the .proto has, e.g. insertWatchpoint), e.g.
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

const EXAMPLE: &str =
    r#"[{"readMemory": {"addr": "0x7ffc0000", "len": 8}}, {"getRegisters": {"names": ["rip"]}}]"#;

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
        .map(|(i, item)| crate::opjson::parse_op(i, item))
        .collect()
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
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if s.contains(['-', '_']) {
        &alphabet::URL_SAFE
    } else {
        &alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, cfg).decode(s.trim()).ok()
}

// ---- output ----------------------------------------------------------------

pub fn results_json(results: &BatchResults) -> String {
    if results.is_empty() {
        return "[]\n".into();
    }
    let items: Vec<String> = results
        .raw()
        .iter()
        .map(|r| crate::opjson::result_json(r).to_string())
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
                pass_signals: Vec::new(),
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
        use serde_json::json;
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
            res(R::Breakpoint(pb::BreakpointSet { addr: 0x401000 })),
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
                {"breakpoint": {"addr": "4198400", "hex": "0x401000"}},
            ])
        );
        assert_eq!(text.lines().count(), 8);
        assert_eq!(results_json(&BatchResults::default()), "[]\n");
    }
}
