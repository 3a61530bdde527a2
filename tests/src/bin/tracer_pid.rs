//! Reports who traces it, after waiting for the test to say when.
//!
//! Usage: `tracer_pid WAIT_LINES`.
//!
//! Prints `pid=PID`, then reads WAIT_LINES lines from stdin (stopping early
//! at EOF), then prints `tracer_pid=N`, the `TracerPid:` value from
//! /proc/self/status. Exit 0.

use std::io::{BufRead, Write};

fn usage() -> ! {
    eprintln!("usage: tracer_pid WAIT_LINES");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 1 {
        usage();
    }
    let wait: u64 = args[0].parse().unwrap_or_else(|_| usage());

    println!("pid={}", std::process::id());
    std::io::stdout().flush().unwrap();

    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    for _ in 0..wait {
        line.clear();
        if stdin.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
    }

    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let tracer = status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .map(str::trim)
        .expect("no TracerPid line in /proc/self/status");
    println!("tracer_pid={tracer}");
    std::io::stdout().flush().unwrap();
}
