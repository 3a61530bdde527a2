//! What a breakpoint hit costs the traced program, by how it is served, in
//! one run: the kernel's uprobe (an engine that needs no stop) against a
//! ptrace int3 (an engine that stops there: two stops a hit, the hit and
//! the step over it), with the untraced program as the floor.
//!
//! Tracee: `syscall_loop N` (N raw `getppid()` through libc's `syscall()`).
//! The engine puts its breakpoint where the first call's syscall returns,
//! inside `syscall()`, so every call hits it once, and then wants nothing
//! else: the run's extra time over the untraced one is the breakpoint's.
//! Rows: median wall time per call over `RUNS` runs, the extra per hit,
//! and the ratio of the int3's extra to the uprobe's; for the uprobe, how
//! many hits were reported and how many the kernel lost (a full ring: the
//! tracer thread fell behind), which add up to N.
//!
//! ```text
//! cargo bench -p utrace-tests --bench breakpoints
//! UTRACE_BENCH_N=500000 UTRACE_BENCH_RUNS=7 cargo bench -p utrace-tests --bench breakpoints
//! ```

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use utrace_engines::{SpawnOptions, Tracer};

#[path = "../tests/common/probe.rs"]
#[allow(dead_code)]
mod probe;
use probe::{prober_opts, Counts, Prober, Where};

/// One traced run: wall time and counts.
fn traced(tracer: &Tracer, n: u64, uprobe: bool) -> (Duration, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let mut opts = SpawnOptions::new([env!("CARGO_BIN_EXE_syscall_loop"), &n.to_string()]);
    opts.kernel_filter = false;
    opts.stdout = Some(
        std::fs::File::create("/dev/null")
            .expect("/dev/null")
            .into(),
    );
    let start = Instant::now();
    tracer
        .spawn(
            opts,
            Box::new(Prober(Arc::clone(&counts), Where::InLibc)),
            prober_opts(uprobe),
        )
        .wait()
        .expect("spawn");
    while !counts.gone.load(SeqCst) {
        std::thread::sleep(Duration::from_micros(200));
    }
    (start.elapsed(), counts)
}

fn native(n: u64) -> Duration {
    let start = Instant::now();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_syscall_loop"))
        .arg(n.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("syscall_loop");
    assert!(st.success());
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("UTRACE_BENCH_N", 200_000);
    let n_int3 = (n / 10).max(1000);
    let runs = env("UTRACE_BENCH_RUNS", 5) as usize;
    let tracer = Tracer::new().expect("tracer");
    let (mut nat, mut up, mut i3) = (Vec::new(), Vec::new(), Vec::new());
    let (mut reported, mut lost) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        // Interleaved, so drift hits every variant alike.
        nat.push(native(n).as_secs_f64() * 1e6 / n as f64);
        let (t, c) = traced(&tracer, n, true);
        up.push(t.as_secs_f64() * 1e6 / n as f64);
        reported.push(c.hits.load(SeqCst) as f64);
        lost.push(c.lost.load(SeqCst) as f64);
        assert_eq!(c.stops.load(SeqCst), 0, "a uprobe hit stopped the program");
        let (t, c) = traced(&tracer, n_int3, false);
        i3.push(t.as_secs_f64() * 1e6 / n_int3 as f64);
        assert!(c.stops.load(SeqCst) >= n_int3 - 1);
    }
    let (nat, up, i3) = (median(nat), median(up), median(i3));
    println!("Breakpoint hit cost, syscall_loop N={n} (int3: N={n_int3}), median of {runs} runs");
    println!("| breakpoint | µs per call | extra µs per hit | vs uprobe |");
    println!("|---|---|---|---|");
    println!("| none (untraced) | {nat:.3} | - | - |");
    println!("| uprobe (no stop) | {up:.3} | {:.3} | 1.0x |", up - nat);
    println!(
        "| ptrace int3 (two stops) | {i3:.3} | {:.3} | {:.1}x |",
        i3 - nat,
        (i3 - nat) / (up - nat).max(1e-9)
    );
    println!(
        "uprobe hits: {} reported, {} lost (median per run of {n})",
        median(reported),
        median(lost)
    );
}
