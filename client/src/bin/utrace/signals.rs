//! Signal and exit lines from wire events, as strace prints them: the
//! formatting is the recorder's (`utrace_engines::builtin::recorder`); this
//! module only turns wire types into engine types.

use utrace_client::pb;
use utrace_engines::builtin::recorder;
use utrace_engines::{ExitStatus, SignalReport};

/// `--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=42} ---`.
pub fn signal_line(s: &pb::Signal) -> String {
    recorder::signal_line(&SignalReport {
        signo: s.signo,
        code: s.code,
        sender_pid: s.sender_pid,
        sender_uid: s.sender_uid,
        addr: s.addr,
        child: s.child.as_ref().map(|c| utrace_engines::ChildInfo {
            status: c.status,
            utime: c.utime,
            stime: c.stime,
        }),
    })
}

/// `+++ exited with 0 +++`, `+++ killed by SIGKILL (core dumped) +++`.
pub fn death_line(status: Option<&pb::ExitStatus>) -> String {
    match status {
        Some(s) if s.signal != 0 => recorder::death_line(&ExitStatus::Signaled {
            signo: s.signal,
            core_dumped: s.core_dumped,
        }),
        Some(s) => recorder::death_line(&ExitStatus::Exited(s.code)),
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
    const SIGSEGV: i32 = 11;
    const SIGCHLD: i32 = 17;
    const SI_TKILL: i32 = -6;
    const SI_KERNEL: i32 = 0x80;
    use utrace_engines::builtin::recorder::signame;

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
            ..Default::default()
        };
        assert_eq!(
            signal_line(&usr1),
            "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=4242, si_uid=0} ---"
        );
        let segv = pb::Signal {
            signo: SIGSEGV,
            name: "SIGSEGV".into(),
            code: 1,
            sender_pid: 0,
            addr: 0,
            ..Default::default()
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
            ..Default::default()
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
