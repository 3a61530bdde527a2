//! Multi-threaded tracee.
//!
//! Usage: `threads T N`.
//!
//! Spawns T std threads; each performs N raw `getppid` syscalls. The main
//! thread joins them all. Output (one per line): `threads=T`, `calls=T*N`
//! (the sum of the calls the threads report having made).

use std::io::Write;

fn usage() -> ! {
    eprintln!("usage: threads T N");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        usage();
    }
    let t: u64 = args[0].parse().unwrap_or_else(|_| usage());
    let n: u64 = args[1].parse().unwrap_or_else(|_| usage());

    let handles: Vec<_> = (0..t)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..n {
                    // SAFETY: getppid takes no arguments and cannot fail.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                n
            })
        })
        .collect();
    let calls: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();

    let mut out = std::io::stdout().lock();
    writeln!(out, "threads={t}").unwrap();
    writeln!(out, "calls={calls}").unwrap();
    out.flush().unwrap();
}
