//! Watchpoint tracee: writes a counter a tracer can watch, from the main
//! thread and from threads made after the watchpoint went in.
//!
//! Usage: `watched COUNT INTERVAL_MS`. With `UTRACE_TRACEE_WAIT=1` it first
//! waits for a line on stdin.
//!
//! Prints `pid=PID` and `addr=0xADDR` (the counter: 8 bytes, aligned),
//! then for i in 1..=COUNT stores i in the counter (odd i from the main
//! thread, even i from a new thread), prints `n=i` and sleeps INTERVAL_MS;
//! then `done=1`. Exit 0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use utrace_tests::line;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn usage() -> ! {
    eprintln!("usage: watched COUNT INTERVAL_MS");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        usage();
    }
    let count: u64 = args[0].parse().unwrap_or_else(|_| usage());
    let interval = Duration::from_millis(args[1].parse().unwrap_or_else(|_| usage()));
    line(format_args!("pid={}", std::process::id()));
    line(format_args!(
        "addr={:#x}",
        &COUNTER as *const AtomicU64 as usize
    ));
    utrace_tests::wait_if_asked();
    for i in 1..=count {
        if i % 2 == 1 {
            COUNTER.store(i, Ordering::Relaxed);
        } else {
            std::thread::spawn(move || COUNTER.store(i, Ordering::Relaxed))
                .join()
                .unwrap();
        }
        line(format_args!("n={i}"));
        std::thread::sleep(interval);
    }
    line(format_args!("done=1"));
}
