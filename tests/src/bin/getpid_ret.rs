//! Tracee for syscall return-value rewriting.
//!
//! Usage: `getpid_ret` (no arguments).
//!
//! Makes exactly one raw `getpid` syscall and prints `getpid=<returned value>`
//! and `real_pid=<pid>`. The real pid comes from a raw `gettid` in the main
//! thread (equal to the pid) rather than `std::process::id()`, because the
//! latter is itself a `getpid` syscall the tracer would also rewrite. Exit 0.

use std::io::Write;

fn main() {
    if std::env::args().len() != 1 {
        eprintln!("usage: getpid_ret");
        std::process::exit(2);
    }
    // SAFETY: getpid takes no arguments and cannot fail.
    let ret = unsafe { libc::syscall(libc::SYS_getpid) };
    // SAFETY: gettid takes no arguments and cannot fail; in the main thread tid == pid.
    let real = unsafe { libc::syscall(libc::SYS_gettid) };

    let mut out = std::io::stdout().lock();
    writeln!(out, "getpid={ret}").unwrap();
    writeln!(out, "real_pid={real}").unwrap();
    out.flush().unwrap();
}
