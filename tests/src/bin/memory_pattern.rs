//! Memory read/write tracee.
//!
//! Usage: `memory_pattern` (no arguments).
//!
//! Allocates a 1 MiB buffer with `byte[i] = (i * 7 + 3) as u8` and a separate
//! boxed `u64` marker (initially 0). Prints `addr=0x<hex>`, `len=1048576`,
//! `marker_addr=0x<hex>`, then blocks until one line arrives on stdin (the
//! tracer may write memory meanwhile). Then prints `pattern_ok=1|0` (pattern
//! intact for all i >= 4096; bytes 0..4096 are scratch), `scratch=<lowercase
//! hex of the first 16 bytes>` and `marker=0x<hex>`. Exit code is
//! `marker & 0xff`.

use std::io::{BufRead, Write};

const LEN: usize = 1 << 20;
const SCRATCH: usize = 4096;

fn expected(i: usize) -> u8 {
    (i * 7 + 3) as u8
}

fn main() {
    if std::env::args().len() != 1 {
        eprintln!("usage: memory_pattern");
        std::process::exit(2);
    }
    let buf: Vec<u8> = (0..LEN).map(expected).collect();
    let marker: Box<u64> = Box::new(0);
    let base = buf.as_ptr();
    let marker_ptr: *const u64 = &*marker;

    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "addr={:#x}", base as usize).unwrap();
        writeln!(out, "len={LEN}").unwrap();
        writeln!(out, "marker_addr={:#x}", marker_ptr as usize).unwrap();
        out.flush().unwrap();
    }

    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);

    // Volatile reads: the tracer changed memory behind the compiler's back.
    // SAFETY: every index is in bounds of `buf`, which is alive for the whole function.
    let byte = |i: usize| unsafe { std::ptr::read_volatile(base.add(i)) };
    let pattern_ok = (SCRATCH..LEN).all(|i| byte(i) == expected(i));
    let scratch: String = (0..16).map(|i| format!("{:02x}", byte(i))).collect();
    // SAFETY: `marker_ptr` points into `marker`, which is alive and properly aligned.
    let marker_val = unsafe { std::ptr::read_volatile(marker_ptr) };

    let mut out = std::io::stdout().lock();
    writeln!(out, "pattern_ok={}", u8::from(pattern_ok)).unwrap();
    writeln!(out, "scratch={scratch}").unwrap();
    writeln!(out, "marker={marker_val:#x}").unwrap();
    out.flush().unwrap();
    drop((buf, marker));
    std::process::exit((marker_val & 0xff) as i32);
}
