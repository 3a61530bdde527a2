//! lldb's own packets, which gdbstub lacks and the link answers
//! ([`super::link`]): `qProcessInfo`, `jThreadsInfo` and
//! `qThreadStopInfo`, as lldb-server answers them (JSON binary-escaped
//! by [`super::threads::escaped`]).
//!
//! What they tell is read beside the process (`/proc/PID/status`, the
//! threads' names), with this user's rights, as the process's maps are for
//! `qMemoryRegionInfo`; the stop itself is the one last reported.

use serde_json::{json, Map, Value};

/// The target triple lldb is told, hex-encoded in `qProcessInfo`.
const TRIPLE: &str = "x86_64-pc-linux-gnu";

/// lldb's `qProcessInfo` for process `pid`: its ids, parent, real and
/// effective user and group (from `/proc/PID/status`, when it can be
/// read), and what it runs on. `E01` with no process.
pub fn process_info(pid: u32) -> Vec<u8> {
    if pid == 0 {
        return b"E01".to_vec();
    }
    let mut out = format!("pid:{pid:x};");
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(ppid) = field("PPid:").first() {
            out.push_str(&format!("parent-pid:{ppid:x};"));
        }
        let (uids, gids) = (field("Uid:"), field("Gid:"));
        if let (Some(ru), Some(eu)) = (uids.first(), uids.get(1)) {
            out.push_str(&format!("real-uid:{ru:x};effective-uid:{eu:x};"));
        }
        if let (Some(rg), Some(eg)) = (gids.first(), gids.get(1)) {
            out.push_str(&format!("real-gid:{rg:x};effective-gid:{eg:x};"));
        }
    }
    let triple: String = TRIPLE.bytes().map(|b| format!("{b:02x}")).collect();
    out.push_str(&format!(
        "triple:{triple};ostype:linux;endian:little;ptrsize:8;"
    ));
    out.into_bytes()
}

/// The stop a thread is reported with: its signal (gdb's number, from the
/// stop reply), lldb's reason, and its registers (`NN:HEX;` pairs, gdb's
/// numbering in hex).
pub struct ThreadStop<'a> {
    pub tid: u32,
    pub signal: u8,
    pub reason: Option<&'static str>,
    pub regs: &'a str,
}

/// lldb's `jThreadsInfo`: a JSON array with each thread of `pid` (`tids`,
/// in order), its id and name; the thread of the last stop also with its
/// signal, reason and registers (lldb's register numbers, decimal, as
/// keys). lldb then asks nothing more of any thread at a stop.
pub fn threads_info(pid: u32, tids: &[u32], stop: Option<&ThreadStop<'_>>) -> String {
    let threads: Vec<Value> = tids
        .iter()
        .map(|tid| {
            let mut t = Map::new();
            t.insert("tid".into(), json!(tid));
            if let Some(name) = super::threads::name(pid, *tid) {
                t.insert("name".into(), json!(name));
            }
            if let Some(s) = stop.filter(|s| s.tid == *tid) {
                t.insert("signal".into(), json!(s.signal));
                if let Some(r) = s.reason {
                    t.insert("reason".into(), json!(r));
                }
                let regs: Map<String, Value> = s
                    .regs
                    .split(';')
                    .filter_map(|pair| {
                        let (n, v) = pair.split_once(':')?;
                        let n = u32::from_str_radix(n, 16).ok()?;
                        Some((n.to_string(), json!(v)))
                    })
                    .collect();
                if !regs.is_empty() {
                    t.insert("registers".into(), Value::Object(regs));
                }
            }
            Value::Object(t)
        })
        .collect();
    Value::Array(threads).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_info_names_the_process_and_its_users() {
        let me = std::process::id();
        let text = String::from_utf8(process_info(me)).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        assert!(
            text.starts_with(&format!("pid:{me:x};parent-pid:")),
            "{text}"
        );
        assert!(
            text.contains(&format!("real-uid:{uid:x};effective-uid:")),
            "{text}"
        );
        assert!(
            text.ends_with("ostype:linux;endian:little;ptrsize:8;"),
            "{text}"
        );
        assert!(text.contains("triple:7838365f36342d70632d6c696e75782d676e75;"));
        assert_eq!(process_info(0), b"E01");
    }

    #[test]
    fn threads_info_carries_the_stopped_threads_registers() {
        let me = std::process::id();
        let stop = ThreadStop {
            tid: me,
            signal: 5,
            reason: Some("breakpoint"),
            regs: "06:0100000000000000;10:0200000000000000;",
        };
        let text = threads_info(me, &[me, 1], Some(&stop));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["tid"], json!(me));
        assert_eq!(v[0]["reason"], "breakpoint");
        assert_eq!(v[0]["signal"], 5);
        assert_eq!(v[0]["registers"]["16"], "0200000000000000");
        assert_eq!(v[0]["registers"]["6"], "0100000000000000");
        assert!(v[0]["name"].is_string());
        assert_eq!(v[1], json!({"tid": 1}), "not ours: its id alone");
        assert_eq!(
            super::super::threads::escaped(b"{\"a\":\"$#*\"}"),
            b"{\"a\":\"}\x04}\x03}\x0a\"}]"
        );
    }
}
