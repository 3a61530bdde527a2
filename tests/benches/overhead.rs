//! Tracing overhead, side by side with strace, in one run.
//!
//! Tracee: `syscall_loop N 1000`: N `getppid()` with one `openat` per 1,000.
//! Each variant runs `RUNS` times; the table shows the median wall time and
//! the ratio to native and to the matching strace reference.
//!
//! ```text
//! cargo bench -p utrace-tests --bench overhead              # N=1,000,000, 3 runs
//! UTRACE_BENCH_N=200000 UTRACE_BENCH_RUNS=5 cargo bench -p utrace-tests --bench overhead
//! ```
//!
//! Needs root (or ptrace rights) and strace in PATH for the reference rows
//! (`apt-get install -y strace`); without strace those rows say why they are
//! missing.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use utrace_engines::{
    Action, Engine, EngineOptions, EventMask, ExitReport, SpawnOptions, SyscallEntry, SyscallExit,
    SyscallSet, Task, Tracer,
};

const TRACEE: &str = env!("CARGO_BIN_EXE_syscall_loop");

/// Counts calls per syscall at entry and errors at exit: the work `strace -c`
/// does (it needs both stops too).
struct Count {
    calls: Vec<u64>,
    errors: Vec<u64>,
    done: mpsc::Sender<()>,
}

impl Engine for Count {
    fn report_syscall_entry(&mut self, _: &mut Task<'_>, c: &SyscallEntry) -> Action {
        if let Some(n) = self.calls.get_mut(c.nr as usize) {
            *n += 1;
        }
        Action::Resume
    }
    fn report_syscall_exit(&mut self, _: &mut Task<'_>, c: &SyscallExit) -> Action {
        if c.is_error {
            if let Some(n) = self.errors.get_mut(c.entry.nr as usize) {
                *n += 1;
            }
        }
        Action::Resume
    }
    fn report_death(&mut self, d: &ExitReport) {
        if d.process_gone {
            let _ = self.done.send(());
        }
    }
}

fn count_engine() -> (Count, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    (
        Count {
            calls: vec![0; 512],
            errors: vec![0; 512],
            done: tx,
        },
        rx,
    )
}

fn run_utrace(n: &str, set: SyscallSet, events: EventMask, pin: bool) -> Duration {
    let tracer = Tracer::new().expect("tracer");
    let (engine, done) = count_engine();
    let mut opts = SpawnOptions::new([TRACEE, n, "1000"]);
    opts.stdout = Some(devnull());
    if pin {
        opts.pin_cpu = Some(0);
    }
    let start = Instant::now();
    tracer
        .spawn(
            opts,
            Box::new(engine),
            EngineOptions::new(events | EventMask::DEATH).syscalls(set),
        )
        .wait()
        .expect("spawn");
    done.recv_timeout(Duration::from_secs(3600))
        .expect("tracee finished");
    start.elapsed()
}

fn devnull() -> std::os::fd::OwnedFd {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null")
        .into()
}

fn run_cmd(argv: &[&str]) -> Option<Duration> {
    let start = Instant::now();
    let st = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    st.success().then(|| start.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let n = std::env::var("UTRACE_BENCH_N").unwrap_or_else(|_| "1000000".into());
    let runs: usize = std::env::var("UTRACE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let have_strace = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_strace {
        eprintln!("strace not found: reference rows are skipped (apt-get install -y strace)");
    }
    let openat = SyscallSet::from_names(["openat"]).expect("openat");
    type Variant<'a> = (&'a str, Box<dyn Fn() -> Option<Duration> + 'a>);
    let variants: Vec<Variant> = vec![
        ("native", Box::new(|| run_cmd(&[TRACEE, &n, "1000"]))),
        (
            "strace -f --seccomp-bpf -e trace=openat",
            Box::new(|| {
                if have_strace {
                    run_cmd(&[
                        "strace",
                        "-f",
                        "--seccomp-bpf",
                        "-e",
                        "trace=openat",
                        "-o",
                        "/dev/null",
                        TRACEE,
                        &n,
                        "1000",
                    ])
                } else {
                    None
                }
            }),
        ),
        (
            "utrace openat-only (seccomp)",
            Box::new(|| {
                Some(run_utrace(
                    &n,
                    openat.clone(),
                    EventMask::SYSCALL_ENTRY,
                    false,
                ))
            }),
        ),
        (
            "strace -f -o /dev/null",
            Box::new(|| {
                if have_strace {
                    run_cmd(&["strace", "-f", "-o", "/dev/null", TRACEE, &n, "1000"])
                } else {
                    None
                }
            }),
        ),
        (
            "strace -f -c -o /dev/null",
            Box::new(|| {
                if have_strace {
                    run_cmd(&["strace", "-f", "-c", "-o", "/dev/null", TRACEE, &n, "1000"])
                } else {
                    None
                }
            }),
        ),
        (
            "utrace count all",
            Box::new(|| {
                Some(run_utrace(
                    &n,
                    SyscallSet::all(),
                    EventMask::SYSCALLS,
                    false,
                ))
            }),
        ),
        (
            "utrace count all, pinned",
            Box::new(|| Some(run_utrace(&n, SyscallSet::all(), EventMask::SYSCALLS, true))),
        ),
    ];
    println!("tracee: syscall_loop {n} 1000 ({n} getppid + one openat per 1,000); median of {runs} runs\n");
    let mut results: Vec<(&str, Option<Duration>)> = Vec::new();
    for (name, f) in &variants {
        // Interleave nothing: each variant's runs back to back, medians compared.
        let times: Vec<Duration> = (0..runs).filter_map(|_| f()).collect();
        let m = (!times.is_empty()).then(|| median(times));
        eprintln!("  {name}: {m:?}");
        results.push((name, m));
    }
    let get = |name: &str| results.iter().find(|r| r.0 == name).and_then(|r| r.1);
    let native = get("native");
    let reference = |name: &str| match name {
        "utrace openat-only (seccomp)" => Some("strace -f --seccomp-bpf -e trace=openat"),
        "utrace count all" | "utrace count all, pinned" => Some("strace -f -c -o /dev/null"),
        _ => None,
    };
    println!(
        "{:<42} {:>12} {:>10} {:>12}  reference",
        "variant", "median", "x native", "x reference"
    );
    for (name, t) in &results {
        let Some(t) = t else {
            println!("{name:<42} {:>12}", "skipped");
            continue;
        };
        let xn = native.map_or("-".into(), |nt| {
            format!("{:.2}", t.as_secs_f64() / nt.as_secs_f64())
        });
        let (xr, rname) = match reference(name).and_then(|r| get(r).map(|rt| (r, rt))) {
            Some((r, rt)) => (format!("{:.2}", t.as_secs_f64() / rt.as_secs_f64()), r),
            None => ("-".into(), ""),
        };
        println!(
            "{name:<42} {:>10.3} s {xn:>10} {xr:>12}  {rname}",
            t.as_secs_f64()
        );
    }
}
