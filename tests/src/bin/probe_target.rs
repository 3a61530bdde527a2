//! Tracee for probes: a function with a known symbol, called a known
//! number of times with known arguments.
//!
//! `probed_fn` (a name no demangled Rust symbol of this program starts
//! with: bpftrace 0.17 takes `probe_target` for `probe_target::main` and
//! its kin too) is written in assembly (so its code, and so what a
//! uprobe on it costs, does not depend on the compiler): it starts with
//! `push %rbp` (which the kernel emulates at a uprobe, as most compiled
//! functions' first instruction) and returns `x + 1`.
//!
//! Every call also passes a USDT marker `utrace_test:tick` (arguments `x`
//! and `name`) just before the function.
//!
//! Usage:
//! - `probe_target calls N [ROUNDS]`: prints `ready PID`, then for each
//!   round waits for a line on stdin and makes N calls
//!   `probed_fn(i % 10, NAMES[i % 3])` for i in 0..N (NAMES: "alpha",
//!   "beta", "gamma"), printing `done ROUND` after each; exits after the
//!   last round (default 1) once stdin gives one more line or ends. It
//!   pauses 1 ms after every 8 calls, so that a probe's hits (recorded
//!   by the kernel in a ring of about 330 per thread) are taken before the
//!   ring fills even by a debug build of the server sharing a CPU with
//!   it: the tests that use it check exact figures, not throughput (the
//!   bench does that, and tests count what the kernel could not record).
//! - `probe_target run N`: makes the N calls of one round at once (every
//!   other one through a second place of the marker), prints `done 0 SUM`
//!   and exits (for a spawned program).
//! - `probe_target loop N`: prints `ready PID`, waits for a line on
//!   stdin, makes N calls `probed_fn(i, "alpha")` as fast as it can,
//!   prints `ns_per_call X SUM`, and exits after one more line (or the
//!   end of stdin).
//! - `probe_target spin`: calls probe_target(1, "alpha") forever, every
//!   millisecond (a process to attach to and probe).
//! - `probe_target hot`: calls probe_target(1, "alpha") forever, as fast
//!   as it can (a tight loop: a breakpoint at `probed_fn` is reached at
//!   once, and the kernel's uprobes take its first instruction).
//! - `probe_target evex N`: prints `ready PID`, waits for a line on
//!   stdin, calls `evex_fn` (an AVX-512 instruction, then `ret`: run it
//!   only where the CPU has AVX-512F) N times, one every 100 µs, prints
//!   `done evex`, and exits after one more line (or the end of stdin).
//! - `probe_target mutate N`: makes N calls `probed_fn(i, buf)` where
//!   `buf` holds "v" and the digit `i % 10`, and is overwritten with "XX"
//!   right after each call returns (a value a probe must take at the
//!   hit); prints `done mutate` and exits.
//! - `probe_target tree N`: a process tree making N calls in each of its
//!   four processes: the first makes its calls, then forks a child that
//!   makes its own and forks a grandchild that makes its own, and a
//!   second child that execs `probe_target run N`; each waits for its
//!   children; the first prints `done tree` and exits.

use std::ffi::{c_char, CStr};
use std::io::{BufRead, Write};

std::arch::global_asm!(
    ".globl probed_fn",
    ".type probed_fn,@function",
    "probed_fn:",
    "push %rbp",
    "mov %rsp, %rbp",
    "lea 1(%rdi), %rax",
    "pop %rbp",
    "ret",
    ".size probed_fn, .-probed_fn",
    options(att_syntax)
);

// `evex_fn`: an EVEX-encoded AVX-512 instruction (`vpxord %zmm0, %zmm0,
// %zmm0`, as bytes: assemblers need not know it), then `ret`. The
// kernel's uprobes refuse EVEX instructions (ENOTSUPP), as libc's string
// functions have them.
std::arch::global_asm!(
    ".globl evex_fn",
    ".type evex_fn,@function",
    "evex_fn:",
    ".byte 0x62, 0xf1, 0x7d, 0x48, 0xef, 0xc0",
    "ret",
    ".size evex_fn, .-evex_fn",
    options(att_syntax)
);

extern "C" {
    /// Returns `x + 1`; `name` is there to be captured.
    fn probed_fn(x: u64, name: *const c_char) -> u64;
    /// Zeroes zmm0 (needs AVX-512F).
    fn evex_fn();
}

const NAMES: [&CStr; 3] = [c"alpha", c"beta", c"gamma"];

#[inline(never)]
fn call(x: u64, name: &CStr) -> u64 {
    let name = name.as_ptr();
    marker(x, name);
    // SAFETY: probed_fn reads only its register arguments.
    unsafe { probed_fn(std::hint::black_box(x), name) }
}

/// [`call`] again: its marker is a second place of `utrace_test:tick`
/// (a marker inlined in two places has two notes).
#[inline(never)]
fn call_too(x: u64, name: &CStr) -> u64 {
    let name = name.as_ptr();
    marker(x, name);
    // SAFETY: probed_fn reads only its register arguments.
    unsafe { probed_fn(std::hint::black_box(x), name) }
}

/// A USDT (SystemTap SDT) marker `utrace_test:tick` with two arguments,
/// `x` and `name`, as `sys/sdt.h`'s `STAP_PROBE2` makes one: a `nop`, and a
/// `.note.stapsdt` note giving its address, the provider, the name and
/// where each argument is (`8@%rdi`-style); no semaphore.
#[inline(always)]
fn marker(x: u64, name: *const std::ffi::c_char) {
    // SAFETY: a nop, and notes in sections of their own; the operands are
    // only named in the note.
    unsafe {
        std::arch::asm!(
            "990: nop",
            ".pushsection .note.stapsdt,\"?\",\"note\"",
            ".balign 4",
            ".4byte 992f-991f, 994f-993f, 3",
            "991: .asciz \"stapsdt\"",
            "992: .balign 4",
            "993: .8byte 990b",
            ".8byte _.stapsdt.base",
            ".8byte 0",
            ".asciz \"utrace_test\"",
            ".asciz \"tick\"",
            ".asciz \"8@{x} 8@{name}\"",
            "994: .balign 4",
            ".popsection",
            ".ifndef _.stapsdt.base",
            ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat",
            ".weak _.stapsdt.base",
            ".hidden _.stapsdt.base",
            "_.stapsdt.base: .space 1",
            ".size _.stapsdt.base, 1",
            ".popsection",
            ".endif",
            x = in(reg) x,
            name = in(reg) name,
            options(att_syntax, nostack, preserves_flags, readonly),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = |i: usize| -> u64 {
        args.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: probe_target (calls N [ROUNDS] | run N | loop N | spin | hot | evex N | tree N | mutate N)");
            std::process::exit(2)
        })
    };
    let mut out = std::io::stdout().lock();
    let mut lines = std::io::stdin().lock().lines();
    match args.get(1).map(String::as_str) {
        Some("calls") => {
            let (count, rounds) = (n(2), args.get(3).map_or(1, |_| n(3)));
            writeln!(out, "ready {}", std::process::id()).ok();
            out.flush().ok();
            for round in 0..rounds {
                if lines.next().is_none() {
                    break;
                }
                let mut sum = 0u64;
                for i in 0..count {
                    sum = sum.wrapping_add(call(i % 10, NAMES[(i % 3) as usize]));
                    if i % 8 == 7 {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
                writeln!(out, "done {round} {sum}").ok();
                out.flush().ok();
            }
            let _ = lines.next();
        }
        Some("run") => {
            let count = n(2);
            let mut sum = 0u64;
            for i in 0..count {
                let f = if i % 2 == 0 { call } else { call_too };
                sum = sum.wrapping_add(f(i % 10, NAMES[(i % 3) as usize]));
                if i % 32 == 31 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            writeln!(out, "done 0 {sum}").ok();
        }
        Some("loop") => {
            let count = n(2);
            writeln!(out, "ready {}", std::process::id()).ok();
            out.flush().ok();
            let _ = lines.next();
            let t = std::time::Instant::now();
            let mut sum = 0u64;
            for i in 0..count {
                sum = sum.wrapping_add(call(i, NAMES[0]));
            }
            let ns = t.elapsed().as_nanos() as f64 / count.max(1) as f64;
            writeln!(out, "ns_per_call {ns:.1} {sum}").ok();
            out.flush().ok();
            let _ = lines.next();
        }
        Some("evex") => {
            let count = n(2);
            writeln!(out, "ready {}", std::process::id()).ok();
            out.flush().ok();
            let _ = lines.next();
            for _ in 0..count {
                // SAFETY: evex_fn changes only zmm0, a caller-saved
                // register; the caller runs it only with AVX-512F.
                unsafe { evex_fn() };
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            writeln!(out, "done evex").ok();
            out.flush().ok();
            let _ = lines.next();
        }
        Some("mutate") => {
            let count = n(2);
            let mut buf = *b"v0\0\0\0\0\0\0";
            for i in 0..count {
                buf[..2].copy_from_slice(&[b'v', b'0' + (i % 10) as u8]);
                // SAFETY: probed_fn reads only its register arguments.
                unsafe { probed_fn(i, std::hint::black_box(buf.as_ptr().cast())) };
                buf[..2].copy_from_slice(b"XX");
                std::hint::black_box(&buf);
                if i % 8 == 7 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            writeln!(out, "done mutate").ok();
        }
        Some("tree") => {
            let count = n(2);
            let calls = || {
                for i in 0..count {
                    call(i % 10, NAMES[(i % 3) as usize]);
                    if i % 8 == 7 {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            };
            calls();
            out.flush().ok();
            let child = fork_and(|| {
                calls();
                let grandchild = fork_and(calls);
                wait_for(grandchild);
            });
            let exec = fork_and(|| {
                use std::os::unix::process::CommandExt;
                let err = std::process::Command::new(&args[0])
                    .args(["run", &count.to_string()])
                    .stdout(std::process::Stdio::null())
                    .exec();
                eprintln!("exec: {err}");
            });
            wait_for(child);
            wait_for(exec);
            writeln!(out, "done tree").ok();
        }
        Some("spin") => loop {
            call(1, NAMES[0]);
            std::thread::sleep(std::time::Duration::from_millis(1));
        },
        Some("hot") => loop {
            call(1, NAMES[0]);
        },
        _ => {
            eprintln!(
                "usage: probe_target (calls N [ROUNDS] | run N | loop N | spin | hot | evex N | tree N | mutate N)"
            );
            std::process::exit(2);
        }
    }
}

/// Run `f` in a forked child, which then exits; the child's pid.
fn fork_and(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: this program has one thread; the child runs `f` and exits
    // without returning.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        f();
        // SAFETY: ends the child without running the parent's exit work.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0, "fork failed");
    pid
}

/// Wait for child `pid` to exit.
fn wait_for(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}
