//! Slow-output tracee for attach/detach and SIGSTOP/SIGCONT tests.
//!
//! Usage: `ticker COUNT INTERVAL_MS`.
//!
//! Prints `pid=PID`, then `tick=i` for i in 0..COUNT sleeping INTERVAL_MS
//! between ticks, then `done=1`; every line is flushed at once. Exit 0.

use std::time::Duration;
use utrace_tests::line;

fn usage() -> ! {
    eprintln!("usage: ticker COUNT INTERVAL_MS");
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
    for i in 0..count {
        if i > 0 {
            std::thread::sleep(interval);
        }
        line(format_args!("tick={i}"));
    }
    line(format_args!("done=1"));
}
