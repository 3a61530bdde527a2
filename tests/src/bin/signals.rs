//! Signal-delivery tracee.
//!
//! Usage: `signals SIGNAL_NUMBER COUNT` (e.g. `signals 10 3` for SIGUSR1 x3).
//! With `UTRACE_TRACEE_WAIT=1` it first waits for a line on stdin.
//!
//! Installs a handler (sigaction, SA_RESTART) for the signal that increments
//! a counter, then COUNT times sends itself the signal with a raw
//! `tgkill(getpid, gettid, sig)`, each followed by a raw `getppid`.
//! Output (one per line): `sent=COUNT`, `handled=H`.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

static HANDLED: AtomicU32 = AtomicU32::new(0);

extern "C" fn handler(_sig: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

fn usage() -> ! {
    eprintln!("usage: signals SIGNAL_NUMBER COUNT");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        usage();
    }
    let sig: libc::c_int = args[0].parse().unwrap_or_else(|_| usage());
    let count: u32 = args[1].parse().unwrap_or_else(|_| usage());

    utrace_tests::wait_if_asked();
    // SAFETY: an all-zero sigaction is a valid value; every field we rely on is set below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa` is a valid sigaction; the handler only touches an atomic.
    let rc = unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        eprintln!(
            "sigaction({sig}) failed: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }

    // SAFETY: getpid/gettid take no arguments and cannot fail.
    let (pid, tid) = unsafe {
        (
            libc::syscall(libc::SYS_getpid),
            libc::syscall(libc::SYS_gettid),
        )
    };
    for _ in 0..count {
        // SAFETY: signals our own thread with a signal that has a handler installed;
        // getppid takes no arguments and cannot fail.
        unsafe {
            libc::syscall(libc::SYS_tgkill, pid, tid, sig);
            libc::syscall(libc::SYS_getppid);
        }
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "sent={count}").unwrap();
    writeln!(out, "handled={}", HANDLED.load(Ordering::SeqCst)).unwrap();
    out.flush().unwrap();
}
