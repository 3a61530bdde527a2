//! GetServerInfo: what a bug report needs.

use utrace_proto::v1 as pb;

use crate::peer::Peer;

/// Capabilities that matter to a tracer, by bit number.
const CAPS: [(u32, &str); 6] = [
    (19, "CAP_SYS_PTRACE"),
    (21, "CAP_SYS_ADMIN"),
    (7, "CAP_SETUID"),
    (6, "CAP_SETGID"),
    (5, "CAP_KILL"),
    (38, "CAP_PERFMON"),
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

/// Which probe back ends work here.
fn probe_backends(caps: &[String]) -> Vec<pb::ProbeBackend> {
    let pmu = std::path::Path::new("/sys/bus/event_source/devices/uprobe/type").exists();
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let admin = caps
        .iter()
        .any(|c| c == "CAP_SYS_ADMIN" || c == "CAP_PERFMON");
    let uprobe = match (pmu, admin) {
        (false, _) => (
            false,
            "the kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe): CONFIG_UPROBE_EVENTS is off; function points are int3 breakpoints".to_string(),
        ),
        (true, false) => (
            false,
            format!(
                "the server lacks CAP_SYS_ADMIN/CAP_PERFMON (perf_event_paranoid {}); function points are int3 breakpoints",
                paranoid.map_or("unknown".into(), |p| p.to_string())
            ),
        ),
        (true, true) => (
            true,
            "perf_event uprobes: a hit costs the program a few µs (a sample with its registers) and no stop".to_string(),
        ),
    };
    let seccomp = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .is_ok_and(|s| s.contains("trace"));
    vec![
        pb::ProbeBackend {
            name: "uprobe".into(),
            available: uprobe.0,
            detail: uprobe.1,
        },
        match utrace_engines::tracefs_unavailable() {
            None => pb::ProbeBackend {
                name: "tracefs".into(),
                available: uprobe.0,
                detail: "tracefs uprobe_events: str(), buf() of registers and USDT arguments \
                         in memory are taken by the kernel at the hit"
                    .into(),
            },
            Some(why) => pb::ProbeBackend {
                name: "tracefs".into(),
                available: false,
                detail: why,
            },
        },
        pb::ProbeBackend {
            name: "int3".into(),
            available: true,
            detail: "ptrace breakpoints: a stop of the thread per hit".into(),
        },
        pb::ProbeBackend {
            name: "syscall".into(),
            available: true,
            detail: if seccomp {
                "seccomp-filtered syscall stops for spawned programs, ptrace syscall stops for attached ones".into()
            } else {
                "ptrace syscall stops (no seccomp filter in this kernel)".into()
            },
        },
    ]
}

/// The figures of the tracer that GetServerInfo reports.
pub struct Counts {
    pub engines: u32,
    pub tasks: u32,
    pub uprobe_events: u32,
    pub uprobe_rings: u32,
}

pub fn server_info(p: &Peer, listen: &[String], n: Counts) -> pb::ServerInfo {
    let capabilities = effective_caps();
    pb::ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        kernel: utrace_engines::sys::kernel_release(),
        yama_ptrace_scope: utrace_engines::access::yama_scope().map_or(-1, |s| s as i32),
        probe_backends: probe_backends(&capabilities),
        capabilities,
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
        engines: n.engines,
        tasks: n.tasks,
        uprobe_events: n.uprobe_events,
        uprobe_rings: n.uprobe_rings,
    }
}
