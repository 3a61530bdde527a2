//! Syscall-heavy tracee, also the benchmark tracee.
//!
//! Usage: `syscall_loop N [K] [PATH]` (defaults: K=0, PATH=/dev/null). With
//! `UTRACE_TRACEE_WAIT=1` it first waits for a line on stdin.
//!
//! Performs N raw `getppid` syscalls. If K > 0, after every K-th `getppid` it
//! also does one raw `openat(AT_FDCWD, PATH, O_RDONLY)` and, if that returned
//! a descriptor, a raw `close` of it. Output (one per line):
//! `getppid=N`, `openat_ok=A`, `openat_err=B`, `last_errno=E` (errno of the last
//! failed openat, 0 if none).

use std::ffi::CString;
use std::io::Write;

fn usage() -> ! {
    eprintln!("usage: syscall_loop N [K] [PATH]");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.len() > 3 {
        usage();
    }
    let n: u64 = args[0].parse().unwrap_or_else(|_| usage());
    let k: u64 = match args.get(1) {
        Some(s) => s.parse().unwrap_or_else(|_| usage()),
        None => 0,
    };
    let path =
        CString::new(args.get(2).map_or("/dev/null", String::as_str)).unwrap_or_else(|_| usage());

    utrace_tests::wait_if_asked();
    let (mut ok, mut err, mut last_errno) = (0u64, 0u64, 0i32);
    for i in 1..=n {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
        if k > 0 && i % k == 0 {
            // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    libc::O_RDONLY,
                )
            };
            if fd >= 0 {
                ok += 1;
                // SAFETY: `fd` was just opened by us and is closed exactly once.
                unsafe { libc::syscall(libc::SYS_close, fd) };
            } else {
                err += 1;
                last_errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            }
        }
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "getppid={n}").unwrap();
    writeln!(out, "openat_ok={ok}").unwrap();
    writeln!(out, "openat_err={err}").unwrap();
    writeln!(out, "last_errno={last_errno}").unwrap();
    out.flush().unwrap();
}
