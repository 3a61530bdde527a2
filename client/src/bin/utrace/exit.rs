//! How `utrace` ends, as strace ends: with the traced program's exit
//! code, or killed by the signal that killed it (core dumps off, so that
//! utrace leaves no core of its own), or by the SIGINT/SIGTERM that
//! interrupted it, or by SIGPIPE when its output is closed (`utrace trace
//! … 2>&1 | head -1`); never with a panic on a closed stderr.

use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

/// The signal to die of at the end (0: none).
static DIE_BY: AtomicI32 = AtomicI32::new(0);

/// Die of `signo` once everything is cleaned up (the embedded server
/// stopped, output flushed).
pub fn die_by(signo: i32) {
    DIE_BY.store(signo, Ordering::Relaxed);
}

/// Write a line to stderr; a closed stderr is not an error here (the
/// caller is usually on its way out already).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The process's end: `code`, unless a signal to die of was set; then
/// that signal, raised with its default action (128 + it if it does not
/// kill, which only a signal that cannot be made fatal would do).
pub fn finish(code: u8) -> ExitCode {
    let signo = DIE_BY.load(Ordering::Relaxed);
    if signo <= 0 {
        return ExitCode::from(code);
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on this process with valid arguments; the
    // signal mask is a local sigset_t, initialised by sigemptyset.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signo, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signo);
    }
    ExitCode::from((128 + signo).clamp(0, 255) as u8)
}
