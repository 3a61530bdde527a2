//! GetServerInfo: what a bug report needs.

use utrace_proto::v1 as pb;

use crate::peer::Peer;

/// Capabilities that matter to a tracer, by bit number.
const CAPS: [(u32, &str); 5] = [
    (19, "CAP_SYS_PTRACE"),
    (21, "CAP_SYS_ADMIN"),
    (7, "CAP_SETUID"),
    (6, "CAP_SETGID"),
    (5, "CAP_KILL"),
];

fn effective_caps() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    CAPS.iter()
        .filter(|(bit, _)| eff & (1 << bit) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

pub fn server_info(p: &Peer, listen: &[String], engines: u32, tasks: u32) -> pb::ServerInfo {
    pb::ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        kernel: utrace_engines::sys::kernel_release(),
        yama_ptrace_scope: utrace_engines::access::yama_scope().map_or(-1, |s| s as i32),
        capabilities: effective_caps(),
        seccomp_filter: std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
            .map(|s| s.contains("trace"))
            .unwrap_or(false),
        listen: listen.to_vec(),
        caller: Some(pb::Caller {
            uid: p.uid(),
            gid: p.gid(),
            pid: p.pid.max(0) as u32,
            transport: p.transport.as_str().into(),
            may_trace_any: p.is_root(),
            rule: p.rule(),
        }),
        pid: std::process::id(),
        engines,
        tasks,
    }
}
