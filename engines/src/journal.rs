//! The breakpoint journal and its keeper: what the tracer has written into
//! traced processes, known to a small process outside the tracer's, so that
//! a tracer killed outright (SIGKILL, the OOM killer, a crash that aborts)
//! leaves no `int3` behind.
//!
//! An `int3` left in a process that is no longer traced kills it with
//! SIGTRAP when it next runs that instruction. On a clean stop the tracer
//! restores every byte itself; a tracer that dies cannot. So every time the
//! set of breakpoints of a process changes, the tracer thread writes that
//! set (pid, start time, and each address with its original byte) down a
//! pipe to the keeper, a process forked at start-up that only reads. When
//! the pipe ends (the tracer is gone, however it went), the keeper writes
//! each original byte back through `/proc/PID/mem` wherever an `int3`
//! still sits, in every process that is still the one recorded (same pid
//! and start time), and exits.
//!
//! The pipe ends only when the tracer's *last* thread has closed its
//! descriptors, but its traced processes run untraced as soon as the
//! tracer *thread* exits, which can be well before (a dying process with
//! perf rings mapped spends milliseconds in unmapping them). So the keeper
//! also watches the tracer thread itself (a `PIDFD_THREAD` pidfd, Linux
//! 6.9, sent with [`Journal::watch_thread`]) and acts when it exits,
//! after reading what the pipe holds by then.
//!
//! Hardware breakpoints and watchpoints (`watch.rs`) are debug registers,
//! which a tracer's exit leaves armed, and whose next hit is a SIGTRAP
//! that kills the untraced program. The journal also says which processes
//! have some armed; the keeper attaches to each of their threads, clears
//! its debug registers (swallowing the SIGTRAP of a hit it finds pending)
//! and detaches. A hit before the keeper gets there still kills.
//!
//! What it cannot do: a thread stopped at the breakpoint when the tracer
//! dies (the kernel then delivers the SIGTRAP it was stopped for), or one
//! that reaches it before the keeper's write, dies. Breakpoints that need
//! no stop are uprobes (`uprobe.rs`), which the kernel removes by itself.
//! Measured with `benches/faults.rs` (see the README). The keeper is for
//! the daemon (`utraced`); an embedded server has none.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::sys::{self, Tid};

/// The tracer's end of the journal.
#[derive(Debug)]
pub struct Journal {
    pipe: std::sync::Mutex<std::fs::File>,
    broken: AtomicBool,
}

/// A process by pid and start time (clock ticks after boot, from
/// `/proc/PID/stat`): the pair names one process for good.
pub(crate) fn start_time(pid: Tid) -> Option<u64> {
    let stat = crate::sys::read_small(&format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the command name (field 2) may hold spaces, so count from
    // its closing parenthesis (field 3 is the first after it).
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

impl Journal {
    /// The tracer thread `tid` (this process's only one): when it exits,
    /// the keeper restores at once, not when the pipe ends.
    pub(crate) fn watch_thread(&self, tid: Tid) {
        // A record for pid 0 (no process) names the thread.
        self.record(0, tid as u64, &[]);
    }

    /// Record that process `pid` (started at `start`) now holds exactly the
    /// breakpoints `bps` (address, original byte); empty: none.
    pub(crate) fn record(&self, pid: Tid, start: u64, bps: &[(u64, u8)]) {
        let mut rec = Vec::with_capacity(HEAD + bps.len() * 9);
        rec.extend_from_slice(&(pid as u32).to_le_bytes());
        rec.extend_from_slice(&start.to_le_bytes());
        rec.push(INT3S);
        rec.extend_from_slice(&(bps.len() as u32).to_le_bytes());
        for (addr, orig) in bps {
            rec.extend_from_slice(&addr.to_le_bytes());
            rec.push(*orig);
        }
        self.write(&rec);
    }

    /// Record whether process `pid` (started at `start`) has debug
    /// registers armed in some thread.
    pub(crate) fn record_debug_regs(&self, pid: Tid, start: u64, armed: bool) {
        let mut rec = Vec::with_capacity(HEAD);
        rec.extend_from_slice(&(pid as u32).to_le_bytes());
        rec.extend_from_slice(&start.to_le_bytes());
        rec.push(DEBUG_REGS);
        rec.extend_from_slice(&u32::from(armed).to_le_bytes());
        self.write(&rec);
    }

    fn write(&self, rec: &[u8]) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let mut pipe = self.pipe.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = pipe.write_all(rec) {
            self.broken.store(true, Ordering::Relaxed);
            tracing::warn!(error = %e, "the breakpoint keeper is gone: a crash of this server could now leave int3s behind");
        }
    }
}

/// A record: pid (u32), start time (u64), kind (u8), count (u32), then
/// for [`INT3S`] that many (address u64, original byte u8); for
/// [`DEBUG_REGS`] the count is 1 (armed) or 0.
const HEAD: usize = 17;
const INT3S: u8 = 0;
const DEBUG_REGS: u8 = 1;

/// What the keeper knows: each process's int3s, and the processes with
/// debug registers armed.
#[derive(Default)]
struct Table {
    int3s: HashMap<(u32, u64), Vec<(u64, u8)>>,
    armed: std::collections::HashSet<(u32, u64)>,
}

/// Fork the keeper and return the journal that feeds it.
///
/// # Safety
/// The calling process must have a single thread: the child runs ordinary
/// Rust code after the fork. Call it first thing in `main`.
pub unsafe fn start_keeper() -> std::io::Result<Arc<Journal>> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    // A large pipe: the tracer thread never waits on the keeper in practice.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    // SAFETY: the caller guarantees a single thread.
    match unsafe { sys::fork() }.map_err(std::io::Error::from)? {
        0 => {
            drop(w);
            keep(r)
        }
        _ => {
            drop(r);
            Ok(Arc::new(Journal {
                pipe: std::sync::Mutex::new(std::fs::File::from(w)),
                broken: AtomicBool::new(false),
            }))
        }
    }
}

/// Apply the whole records at the start of `buf` to `table` (a pid-0
/// record names the tracer thread to watch); the bytes used.
fn apply_records(buf: &[u8], table: &mut Table, watched: &mut Option<OwnedFd>) -> usize {
    let mut at = 0;
    while let Some(head) = buf.get(at..at + HEAD) {
        let pid = u32::from_le_bytes(head[0..4].try_into().unwrap_or_default());
        let start = u64::from_le_bytes(head[4..12].try_into().unwrap_or_default());
        let kind = head[12];
        let n = u32::from_le_bytes(head[13..17].try_into().unwrap_or_default()) as usize;
        if kind == DEBUG_REGS {
            at += HEAD;
            if n > 0 {
                table.armed.insert((pid, start));
            } else {
                table.armed.remove(&(pid, start));
            }
            continue;
        }
        let Some(body) = buf.get(at + HEAD..at + HEAD + n * 9) else {
            break;
        };
        at += HEAD + n * 9;
        if pid == 0 {
            // Not on kernels before 6.9: the pipe's end is all we have.
            *watched = sys::pidfd_open_thread(start as Tid).ok();
            continue;
        }
        let bps: Vec<(u64, u8)> = body
            .chunks_exact(9)
            .map(|c| {
                (
                    u64::from_le_bytes(c[0..8].try_into().unwrap_or_default()),
                    c[8],
                )
            })
            .collect();
        if bps.is_empty() {
            table.int3s.remove(&(pid, start));
        } else {
            table.int3s.insert((pid, start), bps);
        }
    }
    at
}

/// The keeper: read records until the pipe ends or the tracer thread
/// exits, then restore. Never returns.
fn keep(pipe: OwnedFd) -> ! {
    // The keeper outlives a stop of the server (it is told by the pipe),
    // and ignores the signals a service manager sends the whole group.
    // SAFETY: setting dispositions and the name of this single-threaded child.
    unsafe {
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::prctl(libc::PR_SET_NAME, c"utraced-keeper".as_ptr(), 0, 0, 0);
        // Die with nothing else: no descriptor but the pipe and stderr.
        let keep_fd = pipe.as_raw_fd() as u32;
        let _ = sys::close_range(0, 1);
        if keep_fd > 3 {
            let _ = sys::close_range(3, keep_fd - 1);
        }
        let _ = sys::close_range(keep_fd + 1, u32::MAX);
    }
    let mut table = Table::default();
    let mut watched: Option<OwnedFd> = None;
    let pipe_fd = pipe.as_raw_fd();
    let mut f = std::fs::File::from(pipe);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    'read: loop {
        let fds: Vec<i32> = std::iter::once(pipe_fd)
            .chain(watched.as_ref().map(|w| w.as_raw_fd()))
            .collect();
        let ready = sys::poll_readable(&fds).unwrap_or_else(|_| vec![true]);
        let thread_gone = ready.get(1).copied().unwrap_or(false);
        if thread_gone {
            // Whatever the tracer wrote before it went is in the pipe.
            // SAFETY: fcntl on the pipe this process owns.
            unsafe { libc::fcntl(pipe_fd, libc::F_SETFL, libc::O_NONBLOCK) };
        }
        loop {
            match f.read(&mut chunk) {
                Ok(0) => break 'read,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) if thread_gone => break,
                Err(_) => break 'read,
            }
            if !thread_gone {
                break;
            }
        }
        let used = apply_records(&buf, &mut table, &mut watched);
        buf.drain(..used);
        if thread_gone {
            break;
        }
    }
    let (mut restored, mut processes) = (0usize, 0usize);
    for ((pid, start), bps) in table.int3s {
        // Open first, then check the start time: if it matches, the open
        // file is that process's memory (a pid is not reused while it lives).
        let Ok(mem) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
        else {
            continue;
        };
        if start_time(pid as Tid) != Some(start) {
            continue;
        }
        processes += 1;
        for (addr, orig) in bps {
            let mut b = [0u8; 1];
            if mem.read_exact_at(&mut b, addr).is_ok()
                && b[0] == crate::breakpoint::INT3
                && mem.write_all_at(&[orig], addr).is_ok()
            {
                restored += 1;
            }
        }
    }
    if restored > 0 {
        eprintln!(
            "utraced-keeper: the server is gone; restored {restored} breakpoint byte(s) in {processes} process(es)"
        );
    }
    let mut cleared = 0usize;
    for (pid, start) in table.armed {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
        if start_time(pid as Tid) != Some(start) {
            continue;
        }
        for t in tasks.into_iter().flatten().flatten() {
            if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<Tid>().ok()) {
                cleared += usize::from(clear_debug_regs(tid));
            }
        }
    }
    if cleared > 0 {
        eprintln!(
            "utraced-keeper: the server is gone; cleared the debug registers of {cleared} thread(s)"
        );
    }
    // SAFETY: ends this process; nothing is left to clean.
    unsafe { libc::_exit(0) }
}

/// Attach to `tid` (untraced now that the tracer is gone), clear its debug
/// registers, and let it go; whether it was done. A `SIGTRAP` found
/// pending is a hit of one of them: swallowed. Any other signal is passed
/// on.
fn clear_debug_regs(tid: Tid) -> bool {
    // The kernel releases the dead tracer's tracees as it exits, which may
    // not be done yet: try for a moment.
    let mut seized = false;
    for _ in 0..200 {
        match sys::seize(tid, 0) {
            Ok(()) => {
                seized = true;
                break;
            }
            Err(nix::errno::Errno::EPERM) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(_) => return false,
        }
    }
    if !seized || sys::interrupt(tid).is_err() {
        return false;
    }
    let Ok(Some(st)) = sys::wait_pid(tid, 0) else {
        return false;
    };
    if !libc::WIFSTOPPED(st.status) {
        return false;
    }
    let sig = libc::WSTOPSIG(st.status);
    let event = st.status >> 16;
    // A signal-delivery stop carries its signal on; an event stop (the
    // interrupt's) none.
    let pass = if event != 0 || sig == libc::SIGTRAP {
        0
    } else {
        sig
    };
    let mut ok = true;
    for i in [7, 0, 1, 2, 3] {
        ok &= sys::poke_user(tid, crate::arch::debugreg_offset(i), 0).is_ok();
    }
    let _ = sys::detach(tid, pass);
    ok
}
