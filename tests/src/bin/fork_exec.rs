//! Fork + exec tracee.
//!
//! Usage: `fork_exec PROG [ARGS...]`.
//!
//! Forks; the child `execv`s PROG with argv = [PROG, ARGS...] (exiting with
//! 127 if the exec fails); the parent waits for it. Output (one per line):
//! `child_pid=P`, `child_status=S` where S is the child's exit code, or
//! 128 + signal number if it was killed by a signal.

use std::ffi::CString;
use std::io::Write;

fn main() {
    let args: Vec<CString> = std::env::args()
        .skip(1)
        .map(|a| CString::new(a).expect("argument contains NUL"))
        .collect();
    if args.is_empty() {
        eprintln!("usage: fork_exec PROG [ARGS...]");
        std::process::exit(2);
    }
    // Build argv before forking: the child must only call async-signal-safe functions.
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    std::io::stdout().flush().unwrap();

    // SAFETY: the process is single-threaded; the child only calls execv and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("fork failed: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    if pid == 0 {
        // SAFETY: `argv` is a NULL-terminated array of valid C strings kept alive by `args`.
        unsafe {
            libc::execv(argv[0], argv.as_ptr());
            libc::_exit(127);
        }
    }

    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            eprintln!("waitpid failed: {e}");
            std::process::exit(1);
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };

    let mut out = std::io::stdout().lock();
    writeln!(out, "child_pid={pid}").unwrap();
    writeln!(out, "child_status={code}").unwrap();
    out.flush().unwrap();
}
