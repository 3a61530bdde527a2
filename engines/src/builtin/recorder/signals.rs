//! Signals, errors and exits: signal names and lines, `si_code` names,
//! errno text, death lines.

use std::fmt::Write as _;

use crate::event::{ExitStatus, SignalReport};
use crate::sys;

use super::format::{enum_lookup, ptr, xlat};
use super::names::{
    BUS_CODES, CLD_CODES, FPE_CODES, ILL_CODES, POLL_CODES, SEGV_CODES, SI_CODES, SYS_CODES,
    TRAP_CODES,
};
use super::table::Names;
/// A signal's name as strace prints it: `SIGUSR1`, `SIGRTMIN`, `SIGRT_1`
/// (real-time signals counted from the kernel's 32), else the number.
pub fn signame(n: i32) -> String {
    if (1..=64).contains(&n) {
        sys::signal_name(n)
    } else {
        n.to_string()
    }
}

pub(super) fn signal_arg(n: i32) -> String {
    if (1..=64).contains(&n) {
        xlat(n.to_string(), || signame(n))
    } else {
        n.to_string()
    }
}

fn si_code_name(signo: i32, code: i32) -> String {
    let per_signal: &Names = match signo {
        _ if code <= 0 || code == libc::SI_KERNEL => &[],
        libc::SIGILL => ILL_CODES,
        libc::SIGFPE => FPE_CODES,
        libc::SIGSEGV => SEGV_CODES,
        libc::SIGBUS => BUS_CODES,
        libc::SIGTRAP => TRAP_CODES,
        libc::SIGCHLD => CLD_CODES,
        libc::SIGIO => POLL_CODES,
        libc::SIGSYS => SYS_CODES,
        _ => &[],
    };
    let v = code as u32 as u64;
    enum_lookup(v, per_signal)
        .or_else(|| enum_lookup(v, SI_CODES))
        .map_or_else(|| code.to_string(), str::to_string)
}

/// A time in clock ticks, as strace prints it: the count, and when not
/// 0 the seconds in a comment (`1 /* 0.01 s */`; Linux counts 100 a
/// second).
fn clock_ticks(t: i64) -> String {
    if t <= 0 {
        t.to_string()
    } else {
        format!("{t} /* {}.{:02} s */", t / 100, t % 100)
    }
}

/// `--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=42} ---`.
pub fn signal_line(r: &SignalReport) -> String {
    let sig = signame(r.signo);
    let mut s = format!(
        "--- {sig} {{si_signo={sig}, si_code={}",
        si_code_name(r.signo, r.code)
    );
    if let (libc::SIGCHLD, Some(c)) = (r.signo, r.child) {
        // si_status is the exit code, or the signal that stopped or
        // killed the child.
        let status = if r.code == libc::CLD_EXITED {
            c.status.to_string()
        } else {
            signame(c.status)
        };
        let _ = write!(
            s,
            ", si_pid={}, si_uid={}, si_status={status}, si_utime={}, si_stime={}",
            r.sender_pid,
            r.sender_uid,
            clock_ticks(c.utime),
            clock_ticks(c.stime)
        );
    } else if matches!(r.code, libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL) {
        let _ = write!(s, ", si_pid={}, si_uid={}", r.sender_pid, r.sender_uid);
    } else if r.code > 0
        && matches!(
            r.signo,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
        )
    {
        let _ = write!(s, ", si_addr={}", ptr(r.addr));
    }
    s.push_str("} ---");
    s
}

/// `+++ exited with 0 +++`, `+++ killed by SIGKILL +++`.
pub fn death_line(status: &ExitStatus) -> String {
    match *status {
        ExitStatus::Exited(code) => format!("+++ exited with {code} +++"),
        ExitStatus::Signaled { signo, core_dumped } => format!(
            "+++ killed by {}{} +++",
            signame(signo),
            if core_dumped { " (core dumped)" } else { "" }
        ),
    }
}

/// Kernel-internal "restart" errnos a traced syscall can end with
/// (`include/linux/errno.h`; not in libc): name and strace's message.
const RESTART_ERRNOS: &[(i32, &str, &str)] = &[
    (512, "ERESTARTSYS", "To be restarted if SA_RESTART is set"),
    (513, "ERESTARTNOINTR", "To be restarted"),
    (514, "ERESTARTNOHAND", "To be restarted if no handler"),
    (516, "ERESTART_RESTARTBLOCK", "Interrupted by signal"),
];

/// A failed call's result: `-1 ENOENT (No such file or directory)`.
pub(super) fn errno_text(e: i32) -> String {
    if let Some((_, name, msg)) = RESTART_ERRNOS.iter().find(|(n, _, _)| *n == e) {
        return format!("? {name} ({msg})");
    }
    let name = sys::errno_name(e);
    let name = if name.starts_with('E') {
        name
    } else {
        format!("ERRNO_{e}")
    };
    let msg = std::io::Error::from_raw_os_error(e).to_string();
    let msg = msg
        .strip_suffix(&format!(" (os error {e})"))
        .unwrap_or(&msg)
        .to_string();
    format!("-1 {name} ({msg})")
}
