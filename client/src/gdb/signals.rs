//! Signal numbers: the GDB remote protocol numbers signals its own way
//! (gdb's `enum gdb_signal`, the same on every host), not Linux's. Stop
//! replies (`T0a…`), `vCont;C`, `QPassSignals` and exit-by-signal replies
//! all use gdb's numbers; gdbserver converts at its edge, and so does the
//! bridge.

use gdbstub::common::Signal;

/// gdb's number for "a signal it has no name for" (`GDB_SIGNAL_UNKNOWN`).
const GDB_UNKNOWN: u8 = 143;

/// Linux signals 1-31 by number (index 0 unused), as gdb numbers them.
const FROM_LINUX: [u8; 32] = [
    0,           // (none)
    1,           // SIGHUP
    2,           // SIGINT
    3,           // SIGQUIT
    4,           // SIGILL
    5,           // SIGTRAP
    6,           // SIGABRT
    10,          // SIGBUS
    8,           // SIGFPE
    9,           // SIGKILL
    30,          // SIGUSR1
    11,          // SIGSEGV
    31,          // SIGUSR2
    13,          // SIGPIPE
    14,          // SIGALRM
    15,          // SIGTERM
    GDB_UNKNOWN, // SIGSTKFLT: gdb has no name for it
    20,          // SIGCHLD
    19,          // SIGCONT
    17,          // SIGSTOP
    18,          // SIGTSTP
    21,          // SIGTTIN
    22,          // SIGTTOU
    16,          // SIGURG
    24,          // SIGXCPU
    25,          // SIGXFSZ
    26,          // SIGVTALRM
    27,          // SIGPROF
    28,          // SIGWINCH
    23,          // SIGIO
    32,          // SIGPWR
    12,          // SIGSYS
];

/// A Linux signal number as gdb numbers it.
pub fn to_gdb(linux: i32) -> Signal {
    Signal(match linux {
        0..=31 => FROM_LINUX[linux as usize],
        // Real-time signals: gdb's REALTIME_32 is out of order.
        32 => 77,
        33..=63 => 45 + (linux - 33) as u8,
        64 => 78,
        _ => GDB_UNKNOWN,
    })
}

/// gdb's signal number as Linux numbers it; `None` for a signal Linux does
/// not have (gdb's `SIGEMT`, `SIGLOST`…).
pub fn to_linux(gdb: Signal) -> Option<i32> {
    let g = gdb.0;
    if g == 0 {
        return Some(0);
    }
    if let Some(n) = FROM_LINUX.iter().position(|x| *x == g && g != GDB_UNKNOWN) {
        return Some(n as i32);
    }
    match g {
        // gdb's SIGPOLL is Linux's SIGIO.
        33 => Some(libc::SIGIO),
        77 => Some(32),
        45..=75 => Some(33 + i32::from(g - 45)),
        78 => Some(64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_and_gdb_numbers_round_trip() {
        for n in (1..=64).filter(|n| *n != 16) {
            assert_eq!(to_linux(to_gdb(n)), Some(n), "signal {n}");
        }
        assert_eq!(to_gdb(libc::SIGUSR1), Signal::SIGUSR1);
        assert_eq!(to_gdb(libc::SIGCHLD), Signal::SIGCHLD);
        assert_eq!(to_gdb(libc::SIGSTOP), Signal::SIGSTOP);
        assert_eq!(to_gdb(libc::SIGBUS), Signal::SIGBUS);
        assert_eq!(to_gdb(libc::SIGSYS), Signal::SIGSYS);
        assert_eq!(to_gdb(34), Signal::SIG34);
        assert_eq!(to_linux(Signal::SIGEMT), None);
        assert_eq!(to_linux(Signal::SIGPOLL), Some(libc::SIGIO));
    }
}
