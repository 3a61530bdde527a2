//! The kernel boundary of uprobes with fetch arguments: tracefs's
//! `uprobe_events`. A uprobe defined there takes, at the hit and in the
//! kernel, values the perf uprobe PMU cannot: a string or bytes behind a
//! register, a word on the stack (`+0(%si):string`, `-16(%bp):s64`). Its
//! samples come through a tracepoint perf event with `PERF_SAMPLE_RAW`,
//! laid out as the event's `format` file says.
//!
//! Events are named `utrace_<tracer's pid>/p<n>`, so that several tracers
//! on one machine never touch each other's; each is deleted when its last
//! perf event is closed (the kernel refuses to delete one in use), and the
//! events of tracers that died without deleting theirs are deleted when
//! the next tracer starts ([`sweep_stale`]). Like [`crate::perf`], nothing
//! here decides anything.

use std::ffi::CStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use tracing::{debug, warn};

use crate::sys::Errno;

/// Where tracefs is, mounted here if it was not and we may (root): `None`
/// if it cannot be had (then no value is fetched at the hit; the reader
/// reads memory after it), or if `UTRACE_NO_TRACEFS` is set.
pub(crate) fn root() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        if std::env::var_os("UTRACE_NO_TRACEFS").is_some() {
            return None;
        }
        let root = find_or_mount()?;
        sweep_stale(&root);
        Some(root)
    })
    .as_deref()
}

fn find_or_mount() -> Option<PathBuf> {
    {
        for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            if Path::new(dir).join("uprobe_events").exists() {
                return Some(PathBuf::from(dir));
            }
        }
        let dir = c"/sys/kernel/tracing";
        // SAFETY: mount(2) with NUL-terminated strings and no data.
        let r = unsafe {
            libc::mount(
                c"nodev".as_ptr(),
                dir.as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        let path = PathBuf::from("/sys/kernel/tracing");
        if r == 0 && path.join("uprobe_events").exists() {
            debug!("mounted tracefs at /sys/kernel/tracing");
            return Some(path);
        }
        debug!(errno = %Errno::last(), "no tracefs: values are read after the hit");
        None
    }
}

/// Why tracefs cannot serve, for `utrace info`; `None` when it can.
pub fn unavailable() -> Option<String> {
    match root() {
        Some(_) => None,
        None if std::env::var_os("UTRACE_NO_TRACEFS").is_some() => {
            Some("UTRACE_NO_TRACEFS is set: strings and memory are read after the hit".into())
        }
        None => Some(
            "tracefs is not mounted and could not be (not root, or the kernel lacks \
             CONFIG_UPROBE_EVENTS): strings and memory are read after the hit"
                .into(),
        ),
    }
}

/// Tracefs uprobes defined and not deleted yet.
static LIVE: AtomicU64 = AtomicU64::new(0);

/// Wait (at most `grace`) until every tracefs uprobe of this process is
/// deleted: at a tracer's end, while the closer threads close the last
/// perf events on them.
pub fn wait_deleted(grace: std::time::Duration) {
    let deadline = std::time::Instant::now() + grace;
    while LIVE.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let left = LIVE.load(Ordering::Acquire);
    if left > 0 {
        warn!(
            left,
            "tracefs uprobes not deleted yet; the next tracer deletes them"
        );
    }
}

/// This tracer's event group.
fn group() -> String {
    format!("utrace_{}", std::process::id())
}

/// Delete the events of tracers that are gone (their group names a pid
/// that no longer runs); once, when tracefs is first used.
fn sweep_stale(root: &Path) {
    let Ok(text) = std::fs::read_to_string(root.join("uprobe_events")) else {
        return;
    };
    for line in text.lines() {
        // "p:utrace_1234/p5 /path:0x... args"
        let Some(name) = line.split_whitespace().next().and_then(|w| w.get(2..)) else {
            continue;
        };
        let Some((grp, _)) = name.split_once('/') else {
            continue;
        };
        let Some(pid) = grp
            .strip_prefix("utrace_")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Err(e) = write_line(root, &format!("-:{name}")) {
            debug!(event = name, %e, "a stale uprobe event could not be deleted");
        } else {
            debug!(event = name, "deleted a stale uprobe event");
        }
    }
}

fn write_line(root: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("uprobe_events"))?;
    f.write_all(format!("{line}\n").as_bytes())
}

/// Where one fetch argument's value is in a sample's raw data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// `__data_loc`: a u32 at this offset gives the value's own offset
    /// (low 16 bits) and length (high 16).
    DataLoc(usize),
    /// Inline, `size` bytes at this offset.
    Inline(usize, usize),
}

/// A uprobe event defined in tracefs, with fetch arguments. Deleted on
/// drop (after every perf event on it is closed: the kernel keeps it busy
/// until then).
#[derive(Debug)]
pub(crate) struct TraceProbe {
    root: &'static Path,
    /// `utrace_<pid>/p<n>`.
    name: String,
    /// The tracepoint id perf events name it by.
    pub id: u64,
    /// Each fetch argument's place in the raw data, in order.
    fields: Vec<Field>,
}

impl TraceProbe {
    /// Define a uprobe (`ret`: a return probe) at `offset` of the file
    /// `path` names (`ref_ctr`: a USDT semaphore's file offset, 0 for
    /// none) taking `args` (fetch arguments in tracefs's syntax, e.g.
    /// `+0(%di):string`).
    pub fn create(
        path: &CStr,
        offset: u64,
        ref_ctr: u64,
        ret: bool,
        args: &[String],
    ) -> Result<TraceProbe, String> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let root = root().ok_or("no tracefs")?;
        let path = path.to_str().map_err(|_| "a path that is not UTF-8")?;
        if path.contains(char::is_whitespace) {
            return Err(format!("{path}: tracefs takes no path with spaces"));
        }
        let name = format!("{}/p{}", group(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut def = format!("{}:{name} {path}:{offset:#x}", if ret { 'r' } else { 'p' });
        if ref_ctr != 0 {
            def.push_str(&format!("({ref_ctr:#x})"));
        }
        for (i, a) in args.iter().enumerate() {
            def.push_str(&format!(" a{i}={a}"));
        }
        write_line(root, &def).map_err(|e| format!("defining {def:?}: {e}"))?;
        LIVE.fetch_add(1, Ordering::AcqRel);
        let mut probe = TraceProbe {
            root,
            name,
            id: 0,
            fields: Vec::new(),
        };
        let dir = root.join("events").join(&probe.name);
        probe.id = std::fs::read_to_string(dir.join("id"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("{}: no id", probe.name))?;
        let format = std::fs::read_to_string(dir.join("format"))
            .map_err(|e| format!("{}: reading its format: {e}", probe.name))?;
        probe.fields = parse_format(&format, args.len())
            .ok_or_else(|| format!("{}: a format this tracer cannot read", probe.name))?;
        debug!(event = probe.name, "tracefs uprobe defined: {def}");
        Ok(probe)
    }

    /// The fetched values in a sample's raw data (`raw`: what follows its
    /// u32 size), in the order of the arguments; `None` for one the data
    /// does not hold. A string's ending NUL is not part of it.
    pub fn values(&self, raw: &[u8]) -> Vec<Option<Vec<u8>>> {
        self.fields
            .iter()
            .map(|f| match *f {
                Field::Inline(at, n) => raw.get(at..at + n).map(<[u8]>::to_vec),
                Field::DataLoc(at) => {
                    let w = u32::from_ne_bytes(raw.get(at..at + 4)?.try_into().ok()?);
                    let (off, len) = ((w & 0xffff) as usize, (w >> 16) as usize);
                    let mut v = raw.get(off..off + len)?.to_vec();
                    if v.last() == Some(&0) {
                        v.pop();
                    }
                    Some(v)
                }
            })
            .collect()
    }
}

impl Drop for TraceProbe {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        if let Err(e) = write_line(self.root, &format!("-:{}", self.name)) {
            warn!(event = self.name, %e, "a tracefs uprobe could not be deleted");
        }
        LIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The places of fields `a0`..`a{n-1}` in a `format` file.
fn parse_format(text: &str, n: usize) -> Option<Vec<Field>> {
    let mut out = vec![None; n];
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next()?;
        let mut offset = None;
        let mut size = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse::<usize>().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse::<usize>().ok();
            }
        }
        // "__data_loc char[] a0", "u8 a1[]", "u64 a2".
        let name = decl.split_whitespace().last()?.trim_end_matches("[]");
        let Some(i) = name.strip_prefix('a').and_then(|i| i.parse::<usize>().ok()) else {
            continue;
        };
        let (Some(offset), Some(size)) = (offset, size) else {
            return None;
        };
        let slot = out.get_mut(i)?;
        *slot = Some(if decl.starts_with("__data_loc") {
            Field::DataLoc(offset)
        } else {
            Field::Inline(offset, size)
        });
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_format_file() {
        let f = "name: p1\nID: 2326\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:__data_loc char[] a0;\toffset:16;\tsize:4;\tsigned:1;\n\
            \tfield:u8 a1[];\toffset:20;\tsize:4;\tsigned:0;\n\
            \tfield:u64 a2;\toffset:24;\tsize:8;\tsigned:0;\n";
        let fields = parse_format(f, 3).expect("parsed");
        assert_eq!(
            fields,
            vec![
                Field::DataLoc(16),
                Field::Inline(20, 4),
                Field::Inline(24, 8)
            ]
        );
        assert_eq!(parse_format(f, 4), None, "a4 is not there");
        let probe = TraceProbe {
            root: Path::new("/nonexistent"),
            name: String::new(),
            id: 0,
            fields,
        };
        let mut raw = vec![0u8; 32];
        raw[16..20].copy_from_slice(&(32u32 | (6 << 16)).to_ne_bytes());
        raw[20..24].copy_from_slice(b"alph");
        raw[24..32].copy_from_slice(&7u64.to_ne_bytes());
        raw.extend_from_slice(b"alpha\0");
        assert_eq!(
            probe.values(&raw),
            vec![
                Some(b"alpha".to_vec()),
                Some(b"alph".to_vec()),
                Some(7u64.to_ne_bytes().to_vec())
            ]
        );
        // Dropping it tries to delete an event under a root that is not
        // there: a warning, nothing else.
    }
}
