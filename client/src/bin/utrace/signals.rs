//! Signal and exit lines as strace prints them, from wire reports.
//!
//! The same text the engine layer's recorder prints in-process
//! (`engines/src/builtin/recorder.rs`: `signal_line`, `death_line`), rebuilt
//! here from `pb::Signal` and `pb::ExitStatus` because the wire carries the
//! numbers, not the text.

use utrace_client::pb;

/// Standard signal names on x86_64, indexed by number (0 unused).
const SIGNALS: [&str; 32] = [
    "0",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A signal's name as strace prints it: `SIGUSR1`, `SIGRTMIN`, `SIGRT_1`
/// (real-time signals counted from the kernel's 32, not glibc's 34).
pub fn signame(n: i32) -> String {
    match n {
        1..=31 => SIGNALS[n as usize].to_string(),
        32 => "SIGRTMIN".into(),
        33..=64 => format!("SIGRT_{}", n - 32),
        _ => n.to_string(),
    }
}

const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGBUS: i32 = 7;
const SIGFPE: i32 = 8;
const SIGSEGV: i32 = 11;
const SIGCHLD: i32 = 17;
const SIGIO: i32 = 29;
const SIGSYS: i32 = 31;

const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
const SI_QUEUE: i32 = -1;
const SI_TKILL: i32 = -6;

/// Generic `si_code` values (`asm-generic/siginfo.h`).
const SI_CODES: &[(i32, &str)] = &[
    (SI_USER, "SI_USER"),
    (SI_KERNEL, "SI_KERNEL"),
    (SI_QUEUE, "SI_QUEUE"),
    (-2, "SI_TIMER"),
    (-3, "SI_MESGQ"),
    (-4, "SI_ASYNCIO"),
    (-5, "SI_SIGIO"),
    (SI_TKILL, "SI_TKILL"),
    (-7, "SI_DETHREAD"),
    (-60, "SI_ASYNCNL"),
];

/// Per-signal `si_code` names, numbered from 1.
fn per_signal_codes(signo: i32) -> &'static [&'static str] {
    match signo {
        SIGILL => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
        ],
        SIGFPE => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
        ],
        SIGSEGV => &["SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR"],
        SIGBUS => &[
            "BUS_ADRALN",
            "BUS_ADRERR",
            "BUS_OBJERR",
            "BUS_MCEERR_AR",
            "BUS_MCEERR_AO",
        ],
        SIGTRAP => &["TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT"],
        SIGCHLD => &[
            "CLD_EXITED",
            "CLD_KILLED",
            "CLD_DUMPED",
            "CLD_TRAPPED",
            "CLD_STOPPED",
            "CLD_CONTINUED",
        ],
        SIGIO => &[
            "POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP",
        ],
        SIGSYS => &["SYS_SECCOMP"],
        _ => &[],
    }
}

/// `si_code` by name: the signal's own codes for positive values, else the
/// generic ones, else the number.
fn si_code_name(signo: i32, code: i32) -> String {
    if code > 0 && code != SI_KERNEL {
        if let Some(name) = per_signal_codes(signo).get(code as usize - 1) {
            return (*name).to_string();
        }
    }
    SI_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_string(), |(_, n)| (*n).to_string())
}

/// `--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=42} ---`.
pub fn signal_line(s: &pb::Signal) -> String {
    let sig = signame(s.signo);
    let mut line = format!(
        "--- {sig} {{si_signo={sig}, si_code={}",
        si_code_name(s.signo, s.code)
    );
    if matches!(s.code, SI_USER | SI_QUEUE | SI_TKILL) {
        line.push_str(&format!(", si_pid={}", s.sender_pid));
    } else if s.code > 0 && matches!(s.signo, SIGSEGV | SIGBUS | SIGILL | SIGFPE | SIGTRAP) {
        let addr = if s.addr == 0 {
            "NULL".to_string()
        } else {
            format!("{:#x}", s.addr)
        };
        line.push_str(&format!(", si_addr={addr}"));
    }
    line.push_str("} ---");
    line
}

/// `+++ exited with 0 +++`, `+++ killed by SIGKILL (core dumped) +++`.
pub fn death_line(status: Option<&pb::ExitStatus>) -> String {
    match status {
        Some(s) if s.signal != 0 => format!(
            "+++ killed by {}{} +++",
            signame(s.signal),
            if s.core_dumped { " (core dumped)" } else { "" }
        ),
        Some(s) => format!("+++ exited with {} +++", s.code),
        None => "+++ exited +++".to_string(),
    }
}

/// The exit code strace leaves with for a program that ended with
/// `status`: its own code, or 128 + the signal that killed it.
pub fn exit_code(status: &pb::ExitStatus) -> u8 {
    if status.signal != 0 {
        (128 + status.signal).clamp(0, 255) as u8
    } else {
        (status.code & 0xff) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_strace() {
        assert_eq!(signame(10), "SIGUSR1");
        assert_eq!(signame(32), "SIGRTMIN");
        assert_eq!(signame(34), "SIGRT_2");
        assert_eq!(signame(99), "99");
    }

    #[test]
    fn signal_lines() {
        let usr1 = pb::Signal {
            signo: 10,
            name: "SIGUSR1".into(),
            code: SI_TKILL,
            sender_pid: 4242,
            addr: 0,
        };
        assert_eq!(
            signal_line(&usr1),
            "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=4242} ---"
        );
        let segv = pb::Signal {
            signo: SIGSEGV,
            name: "SIGSEGV".into(),
            code: 1,
            sender_pid: 0,
            addr: 0,
        };
        assert_eq!(
            signal_line(&segv),
            "--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL} ---"
        );
        let chld = pb::Signal {
            signo: SIGCHLD,
            name: "SIGCHLD".into(),
            code: 1,
            sender_pid: 7,
            addr: 0,
        };
        assert_eq!(
            signal_line(&chld),
            "--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---"
        );
        let kernel = pb::Signal {
            signo: SIGSEGV,
            code: SI_KERNEL,
            ..Default::default()
        };
        assert_eq!(
            signal_line(&kernel),
            "--- SIGSEGV {si_signo=SIGSEGV, si_code=SI_KERNEL, si_addr=NULL} ---"
        );
    }

    #[test]
    fn death_lines_and_codes() {
        let exited = pb::ExitStatus {
            code: 7,
            signal: 0,
            core_dumped: false,
        };
        assert_eq!(death_line(Some(&exited)), "+++ exited with 7 +++");
        assert_eq!(exit_code(&exited), 7);
        let killed = pb::ExitStatus {
            code: 0,
            signal: 9,
            core_dumped: false,
        };
        assert_eq!(death_line(Some(&killed)), "+++ killed by SIGKILL +++");
        assert_eq!(exit_code(&killed), 137);
        let dumped = pb::ExitStatus {
            code: 0,
            signal: 11,
            core_dumped: true,
        };
        assert_eq!(
            death_line(Some(&dumped)),
            "+++ killed by SIGSEGV (core dumped) +++"
        );
    }
}
