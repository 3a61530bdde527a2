//! `utrace ps` and `utrace info`: the server's tasks and facts, for people
//! (tables, `key: value` lines) and for scripts (`info --json`).

use std::fmt::Write as _;

use utrace_client::pb;

/// `ListTasks` as a table, one row per thread, ordered by process and
/// thread id.
/// Who holds a task: each engine with its client's pid and, for a sync
/// engine waiting for a decision, the report: `2(pid 4242, #7)`.
fn holders(t: &pb::TaskInfo) -> String {
    if t.holders.is_empty() {
        return if t.holds.is_empty() {
            "-".into()
        } else {
            t.holds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
    }
    t.holders
        .iter()
        .map(|h| {
            let who = if h.client_pid != 0 {
                format!("pid {}", h.client_pid)
            } else {
                format!("uid {}", h.client_uid)
            };
            if h.seq != 0 {
                format!("{}({who}, #{})", h.engine_id, h.seq)
            } else {
                format!("{}({who})", h.engine_id)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn tasks_table(tasks: &[pb::TaskInfo]) -> String {
    servers_tasks_table(&[(String::new(), tasks.to_vec())], false)
}

/// The traced threads of several servers, each row with its server's name
/// first when `named`.
pub fn servers_tasks_table(servers: &[(String, Vec<pb::TaskInfo>)], named: bool) -> String {
    let ids = |v: &[u64]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        }
    };
    let mut header = vec!["PID", "TID", "STATE", "MODE", "ENGINES", "HOLDS", "COMM"];
    if named {
        header.insert(0, "SERVER");
    }
    // The columns right-aligned: the pid and the tid.
    let numeric = if named { 1..3 } else { 0..2 };
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for (server, tasks) in servers {
        let mut sorted: Vec<&pb::TaskInfo> = tasks.iter().collect();
        sorted.sort_by_key(|t| (t.pid, t.tid));
        for t in sorted {
            let mut row = vec![
                t.pid.to_string(),
                t.tid.to_string(),
                t.state.clone(),
                t.syscall_mode.clone(),
                ids(&t.engines),
                holders(t),
                t.comm.clone(),
            ];
            if named {
                row.insert(0, server.clone());
            }
            rows.push(row);
        }
    }
    let mut widths = vec![0usize; rows[0].len()];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if numeric.contains(&i) {
                let _ = write!(line, "{cell:>w$}  ", w = widths[i]);
            } else if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// What Yama's `ptrace_scope` means for a tracer.
fn yama_meaning(scope: i32) -> &'static str {
    match scope {
        -1 => "Yama absent: classic ptrace permissions",
        0 => "classic: any process of the same uid",
        1 => "restricted: only descendants, unless CAP_SYS_PTRACE",
        2 => "admin-only: CAP_SYS_PTRACE needed",
        3 => "no attach at all",
        _ => "unknown",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `GetServerInfo` as `key: value` lines; `uri` is where we connected,
/// `embedded` whether the server runs inside this command.
pub fn info_text(info: &pb::ServerInfo, uri: &str, embedded: bool) -> String {
    let caller = info.caller.clone().unwrap_or_default();
    let list = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(" ")
        }
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "server",
            if embedded {
                format!("{uri} (embedded: started by this utrace, no daemon listening)")
            } else {
                uri.to_string()
            },
        ),
        ("server version", info.version.clone()),
        ("client version", env!("CARGO_PKG_VERSION").to_string()),
        ("server pid", info.pid.to_string()),
        ("kernel", info.kernel.clone()),
        (
            "yama ptrace_scope",
            format!(
                "{} ({})",
                info.yama_ptrace_scope,
                yama_meaning(info.yama_ptrace_scope)
            ),
        ),
        ("seccomp filter", yes_no(info.seccomp_filter).to_string()),
        ("capabilities", list(&info.capabilities)),
        ("listen", list(&info.listen)),
        (
            "caller",
            format!(
                "uid {} gid {} pid {} over {}",
                caller.uid, caller.gid, caller.pid, caller.transport
            ),
        ),
        (
            "caller may trace any",
            yes_no(caller.may_trace_any).to_string(),
        ),
        ("caller rule", caller.rule.clone()),
        ("engines", info.engines.to_string()),
        ("tasks", info.tasks.to_string()),
        (
            "uprobes open",
            format!("{} events, {} rings", info.uprobe_events, info.uprobe_rings),
        ),
    ];
    let mut rows = rows;
    let backends: Vec<(String, String)> = info
        .probe_backends
        .iter()
        .map(|b| {
            (
                format!("probe back end {}", b.name),
                format!("{}: {}", yes_no(b.available), b.detail),
            )
        })
        .collect();
    rows.extend(backends.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{:<width$} {v}", format!("{k}:"));
    }
    out
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    format!("\"{}\"", crate::probe::print::json_escape(s))
}

fn json_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| json_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// `GetServerInfo` as one JSON object (field names as in the proto), plus
/// `server_uri`, `embedded` and `client_version`.
pub fn info_json(info: &pb::ServerInfo, uri: &str, embedded: bool) -> String {
    let c = info.caller.clone().unwrap_or_default();
    format!(
        "{{\n  \"server_uri\": {},\n  \"embedded\": {},\n  \"client_version\": {},\n  \
         \"version\": {},\n  \"kernel\": {},\n  \"yama_ptrace_scope\": {},\n  \
         \"capabilities\": {},\n  \"seccomp_filter\": {},\n  \"listen\": {},\n  \
         \"caller\": {{\"uid\": {}, \"gid\": {}, \"pid\": {}, \"transport\": {}, \
         \"may_trace_any\": {}, \"rule\": {}}},\n  \"pid\": {},\n  \"engines\": {},\n  \
         \"tasks\": {},\n  \"uprobe_events\": {},\n  \"uprobe_rings\": {},\n  \
         \"probe_backends\": [{}]\n}}\n",
        json_str(uri),
        embedded,
        json_str(env!("CARGO_PKG_VERSION")),
        json_str(&info.version),
        json_str(&info.kernel),
        info.yama_ptrace_scope,
        json_list(&info.capabilities),
        info.seccomp_filter,
        json_list(&info.listen),
        c.uid,
        c.gid,
        c.pid,
        json_str(&c.transport),
        c.may_trace_any,
        json_str(&c.rule),
        info.pid,
        info.engines,
        info.tasks,
        info.uprobe_events,
        info.uprobe_rings,
        info.probe_backends
            .iter()
            .map(|b| format!(
                "{{\"name\": {}, \"available\": {}, \"detail\": {}}}",
                json_str(&b.name),
                b.available,
                json_str(&b.detail)
            ))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let tasks = vec![
            pb::TaskInfo {
                tid: 12346,
                pid: 12345,
                state: "stopped".into(),
                syscall_mode: "ptrace".into(),
                engines: vec![1, 2],
                holds: vec![2],
                comm: "worker".into(),
                holders: vec![pb::Holder {
                    engine_id: 2,
                    seq: 7,
                    client_pid: 4242,
                    client_uid: 0,
                    sync: true,
                    deadline_in_ms: 1500,
                }],
                ..Default::default()
            },
            pb::TaskInfo {
                tid: 12345,
                pid: 12345,
                state: "running".into(),
                syscall_mode: "seccomp".into(),
                engines: vec![1, 2],
                holds: vec![],
                comm: "prog".into(),
                holders: vec![],
                ..Default::default()
            },
        ];
        let t = tasks_table(&tasks);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "  PID    TID  STATE    MODE     ENGINES  HOLDS            COMM"
        );
        assert_eq!(
            lines[1],
            "12345  12345  running  seccomp  1,2      -                prog"
        );
        assert_eq!(
            lines[2],
            "12345  12346  stopped  ptrace   1,2      2(pid 4242, #7)  worker"
        );
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        let info = pb::ServerInfo {
            kernel: "6.1.0".into(),
            ..Default::default()
        };
        let j = info_json(&info, "unix:///x", true);
        assert!(j.contains("\"kernel\": \"6.1.0\""));
        assert!(j.contains("\"embedded\": true"));
    }
}
