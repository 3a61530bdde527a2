//! gdb's `qXfer:threads:read`: the debugged process's threads with their
//! names (`info threads` shows them, as with gdbserver), in one document
//! instead of `qfThreadInfo`/`qsThreadInfo` rounds. gdbstub lacks the
//! packet; the link answers it ([`super::link`]) from the thread list the
//! bridge keeps there at each stop (`link::Common::threads`), with the names and last
//! CPUs read beside the process (`/proc/PID/task/TID/{comm,stat}`, with
//! this user's rights, as the process's maps are).

/// The document for process `pid`'s threads `tids`; thread ids
/// `pPID.TID` when the debugger speaks multiprocess, else `TID` (hex).
pub fn document(pid: u32, tids: &[u32], multiprocess: bool) -> String {
    let mut doc = String::from("<?xml version=\"1.0\"?>\n<threads>\n");
    for tid in tids {
        let id = if multiprocess {
            format!("p{pid:x}.{tid:x}")
        } else {
            format!("{tid:x}")
        };
        doc.push_str(&format!("<thread id=\"{id}\""));
        let task = format!("/proc/{pid}/task/{tid}");
        if let Some(core) = std::fs::read_to_string(format!("{task}/stat"))
            .ok()
            .and_then(|s| last_cpu(&s))
        {
            doc.push_str(&format!(" core=\"{core}\""));
        }
        if let Some(name) = name(pid, *tid) {
            doc.push_str(&format!(" name=\"{}\"", escape(&name)));
        }
        doc.push_str("/>\n");
    }
    doc.push_str("</threads>\n");
    doc
}

/// Thread `tid`'s name (its `comm`), read beside the process.
pub fn name(pid: u32, tid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_string())
}

/// The CPU a thread last ran on: field 39 of its `stat` (counted after the
/// name, which may hold spaces and parentheses).
fn last_cpu(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at 3 (state).
    after
        .split_whitespace()
        .nth(39 - 3)
        .and_then(|f| f.parse().ok())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The reply to `qXfer:…:read::OFF,LEN` over `doc`: `m` and the window
/// when more follows, `l` and the rest at the end, in the protocol's
/// binary escaping (`#`, `$`, `}` and `*` as `}` and the byte xor 0x20);
/// `E01` for a malformed window.
pub fn window(doc: &[u8], spec: &[u8]) -> Vec<u8> {
    let parsed = std::str::from_utf8(spec).ok().and_then(|s| {
        let (off, len) = s.split_once(',')?;
        Some((
            usize::from_str_radix(off, 16).ok()?,
            usize::from_str_radix(len, 16).ok()?,
        ))
    });
    let Some((off, len)) = parsed else {
        return b"E01".to_vec();
    };
    let start = off.min(doc.len());
    let end = start.saturating_add(len).min(doc.len());
    let mut out = vec![if end < doc.len() { b'm' } else { b'l' }];
    out.extend(escaped(&doc[start..end]));
    out
}

/// `data` in the protocol's binary escaping (`#`, `$`, `}` and `*` as `}`
/// and the byte xor 0x20), as `qXfer` windows and lldb-server's JSON are
/// sent.
pub fn escaped(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 8);
    for &b in data {
        if matches!(b, b'#' | b'$' | b'}' | b'*') {
            out.push(b'}');
            out.push(b ^ 0x20);
        } else {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_threads_are_listed_with_names_and_read_in_windows() {
        let pid = std::process::id();
        let doc = document(pid, &[pid], true);
        assert!(
            doc.contains(&format!("<thread id=\"p{pid:x}.{pid:x}\" core=\"")),
            "{doc}"
        );
        assert!(doc.contains(" name=\""), "{doc}");
        assert!(document(pid, &[pid], false).contains(&format!("id=\"{pid:x}\"")));
        let d = b"ab#cd";
        assert_eq!(window(d, b"0,2"), b"mab");
        assert_eq!(window(d, b"2,10"), b"l}\x03cd");
        assert_eq!(window(d, b"9,1"), b"l");
        assert_eq!(window(d, b"x"), b"E01");
    }

    #[test]
    fn the_last_cpu_is_read_past_a_name_with_spaces() {
        let stat = "12 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 \
                    21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 3 0 0";
        assert_eq!(last_cpu(stat), Some(3));
    }
}
