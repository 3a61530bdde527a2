//! Tracee that calls execve from a non-leader thread.
//!
//! Usage: `exec_from_thread PROG [ARGS...]`.
//!
//! Prints `leader=PID` (getpid), then spawns a thread that prints
//! `thread_tid=TID` (raw gettid) and `execv`s PROG with argv = [PROG, ARGS...].
//! The main thread just blocks in join; the exec replaces the whole process.
//! If execv fails the thread prints `exec_failed errno=E` and exits 1.

use std::ffi::CString;
use std::io::Write;

fn main() {
    let args: Vec<CString> = std::env::args()
        .skip(1)
        .map(|a| CString::new(a).expect("argument contains NUL"))
        .collect();
    if args.is_empty() {
        eprintln!("usage: exec_from_thread PROG [ARGS...]");
        std::process::exit(2);
    }

    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "leader={}", std::process::id()).unwrap();
        out.flush().unwrap();
    }

    let t = std::thread::spawn(move || {
        // SAFETY: gettid takes no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        let mut out = std::io::stdout().lock();
        writeln!(out, "thread_tid={tid}").unwrap();
        out.flush().unwrap();
        drop(out);

        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        // SAFETY: `argv` is a NULL-terminated array of valid C strings kept alive by `args`.
        unsafe { libc::execv(argv[0], argv.as_ptr()) };

        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        println!("exec_failed errno={errno}");
        std::io::stdout().flush().unwrap();
        std::process::exit(1);
    });
    let _ = t.join();
    // Not reached: the thread either execs or exits the process.
    std::process::exit(1);
}
