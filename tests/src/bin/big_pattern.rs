//! Large-memory tracee, for reads of many megabytes.
//!
//! Usage: `big_pattern MIB`.
//!
//! Allocates MIB MiB with `byte[i] = (i % 251) as u8` (251 is prime: a
//! misplaced page shows), prints `addr=0x<hex>` and `len=<bytes>`, then
//! blocks until one line arrives on stdin. Exit 0.

use std::io::{BufRead, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(mib) = args.get(1).and_then(|s| s.parse::<usize>().ok()) else {
        eprintln!("usage: big_pattern MIB");
        std::process::exit(2);
    };
    let len = mib << 20;
    let buf: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "addr={:#x}", buf.as_ptr() as usize).unwrap();
        writeln!(out, "len={len}").unwrap();
        out.flush().unwrap();
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    std::hint::black_box(&buf);
}
