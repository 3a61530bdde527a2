//! Tracing overhead, side by side with strace, in one run; and the engine
//! layer's own cost per engine per stop.
//!
//! Table 1 (`strace`). Tracee: `syscall_loop N 1000`: N `getppid()` with one
//! `openat` per 1,000. Each variant runs `RUNS` times; the table shows the
//! median wall time and the ratio to native and to the matching strace
//! reference. The engine rows run the engine layer in this process; the
//! `utrace trace` rows run the command (its embedded server, each call
//! decoded and written to /dev/null). A pinned row puts tracer and tracee
//! on CPU 0 and is compared with strace pinned the same way (`taskset`):
//! on a small VM, where the two land decides the figure more than the
//! work done.
//!
//! Table 2 (`engines`). Tracee: `syscall_loop M` (M raw `getppid()`, nothing
//! else), spawned with kernel-side filtering and traced by K in-process
//! engines (default K = 1 and 16), each wanting `getppid` entries only and
//! answering `Resume`: one seccomp stop per call, K callbacks per stop, no
//! gRPC. The spawn holds the program at its entry until all K engines are
//! attached, so every call is seen by every engine. Rows: median wall time
//! per stop (from the release to the death report), median CPU time of the
//! tracer thread per stop (`/proc/self/task/TID/schedstat`), and for the
//! native run the time per call. Then the ratio K=16 / K=1 and the cost of
//! each extra engine per stop, (t16 - t1) / 15, in wall and tracer CPU. The
//! runs of the K values are interleaved, so drift hits them alike.
//!
//! ```text
//! cargo bench -p utrace-tests --bench overhead              # N=1,000,000, M=200,000, 3 runs
//! UTRACE_BENCH_N=200000 UTRACE_BENCH_RUNS=5 cargo bench -p utrace-tests --bench overhead
//! UTRACE_BENCH_ONLY=engines UTRACE_BENCH_RUNS=7 cargo bench -p utrace-tests --bench overhead
//! ```
//!
//! Variables: `UTRACE_BENCH_ONLY` (`strace` or `engines`: one table),
//! `UTRACE_BENCH_N`, `UTRACE_BENCH_ENGINE_N` (M), `UTRACE_BENCH_ENGINES`
//! (the K values, comma-separated, default `1,16`), `UTRACE_BENCH_RUNS`.
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

mod common;
use common::median;

/// Seconds as ns (per-stop figures are a few µs; the differences, tens of ns).
fn fmt_ns(s: f64) -> String {
    format!("{:.0} ns", s * 1e9)
}

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

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let only = std::env::var("UTRACE_BENCH_ONLY").ok();
    let runs = common::runs(3);
    if only.as_deref().is_none_or(|o| o == "strace") {
        strace_table(runs);
    }
    if only.as_deref().is_none_or(|o| o == "engines") {
        engines_table(runs);
    }
}

fn strace_table(runs: usize) {
    let n = std::env::var("UTRACE_BENCH_N").unwrap_or_else(|_| "1000000".into());
    let have_strace = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_strace {
        eprintln!("strace not found: reference rows are skipped (apt-get install -y strace)");
    }
    let openat = SyscallSet::from_names(["openat"]).expect("openat");
    let utrace = common::utrace_bin()
        .map(|p| p.display().to_string())
        .map_err(|e| eprintln!("the utrace command's rows are skipped: {e}"))
        .ok();
    type Variant<'a> = (&'a str, Box<dyn Fn() -> Option<Duration> + 'a>);
    // `argv` running the tracee, on CPU 0 (with its children) if `pinned`.
    let tracing = |pinned: bool, argv: &[&str]| -> Option<Duration> {
        let mut cmd: Vec<&str> = if pinned {
            vec!["taskset", "-c", "0"]
        } else {
            Vec::new()
        };
        cmd.extend_from_slice(argv);
        cmd.extend_from_slice(&[TRACEE, &n, "1000"]);
        run_cmd(&cmd)
    };
    // strace with `opts` (a row skipped without strace).
    let strace = |pinned: bool, opts: &'static [&'static str]| -> Option<Duration> {
        let mut argv = vec!["strace"];
        argv.extend_from_slice(opts);
        have_strace.then(|| tracing(pinned, &argv)).flatten()
    };
    // The utrace command, tracing everything into /dev/null.
    let command = |pinned: bool| -> Option<Duration> {
        let utrace = utrace.as_deref()?;
        tracing(pinned, &[utrace, "trace", "-f", "-o", "/dev/null", "--"])
    };
    const SECCOMP: &[&str] = &[
        "-f",
        "--seccomp-bpf",
        "-e",
        "trace=openat",
        "-o",
        "/dev/null",
    ];
    const FULL: &[&str] = &["-f", "-o", "/dev/null"];
    const COUNT: &[&str] = &["-f", "-c", "-o", "/dev/null"];
    let variants: Vec<Variant> = vec![
        ("native", Box::new(|| tracing(false, &[]))),
        (
            "strace -f --seccomp-bpf -e trace=openat",
            Box::new(|| strace(false, SECCOMP)),
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
        ("strace -f -o /dev/null", Box::new(|| strace(false, FULL))),
        (
            "strace -f -c -o /dev/null",
            Box::new(|| strace(false, COUNT)),
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
        // The same pinning for strace (it and its tracee on CPU 0), so the
        // pinned rows compare like with like.
        (
            "strace -f -c -o /dev/null, pinned",
            Box::new(|| strace(true, COUNT)),
        ),
        // The product's whole path: the `utrace` command, its embedded
        // server, decoded lines written (to /dev/null), against strace's.
        (
            "utrace trace -f -o /dev/null (command)",
            Box::new(|| command(false)),
        ),
        (
            "strace -f -o /dev/null, pinned",
            Box::new(|| strace(true, FULL)),
        ),
        (
            "utrace trace -f -o /dev/null (command), pinned",
            Box::new(|| command(true)),
        ),
    ];
    println!("tracee: syscall_loop {n} 1000 ({n} getppid + one openat per 1,000); median of {runs} runs\n");
    let mut results: Vec<(&str, Option<Duration>)> = Vec::new();
    for (name, f) in &variants {
        // Interleave nothing: each variant's runs back to back, medians compared.
        let times: Vec<f64> = (0..runs)
            .filter_map(|_| f())
            .map(|d| d.as_secs_f64())
            .collect();
        let m = median(times).map(Duration::from_secs_f64);
        eprintln!("  {name}: {m:?}");
        results.push((name, m));
    }
    let get = |name: &str| results.iter().find(|r| r.0 == name).and_then(|r| r.1);
    let native = get("native");
    let reference = |name: &str| match name {
        "utrace openat-only (seccomp)" => Some("strace -f --seccomp-bpf -e trace=openat"),
        "utrace count all" => Some("strace -f -c -o /dev/null"),
        "utrace count all, pinned" => Some("strace -f -c -o /dev/null, pinned"),
        "utrace trace -f -o /dev/null (command)" => Some("strace -f -o /dev/null"),
        "utrace trace -f -o /dev/null (command), pinned" => Some("strace -f -o /dev/null, pinned"),
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

// ---- table 2: the engine layer's cost per engine per stop ------------------

/// Sees `getppid` entries and resumes; at the death, sends how many it saw.
struct Observer {
    seen: u64,
    done: mpsc::Sender<u64>,
}

impl Engine for Observer {
    fn report_syscall_entry(&mut self, _: &mut Task<'_>, _: &SyscallEntry) -> Action {
        self.seen += 1;
        Action::Resume
    }
    fn report_death(&mut self, d: &ExitReport) {
        if d.process_gone {
            let _ = self.done.send(self.seen);
        }
    }
}

/// One traced run of `syscall_loop m` under `k` observers.
struct EngineRun {
    /// Wall seconds from the release at entry to the last death report.
    wall: f64,
    /// CPU seconds of the tracer thread over the same span.
    tracer_cpu: f64,
    /// ptrace stops the tracer handled in the span.
    stops: u64,
}

/// CPU seconds `tid` (a thread of this process) has run, from schedstat.
fn thread_cpu(tid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

fn run_engines(m: u64, k: usize) -> Result<EngineRun, String> {
    let tracer = Tracer::new().map_err(|e| e.to_string())?;
    let getppid = SyscallSet::from_names(["getppid"]).map_err(|e| e.to_string())?;
    let opts = || {
        EngineOptions::new(EventMask::SYSCALL_ENTRY | EventMask::DEATH).syscalls(getppid.clone())
    };
    let (tx, rx) = mpsc::channel();
    let observer = || {
        Box::new(Observer {
            seen: 0,
            done: tx.clone(),
        })
    };
    let mut sopts = SpawnOptions::new([TRACEE.to_string(), m.to_string()]);
    sopts.stdout = Some(devnull());
    sopts.stop_at_entry = true;
    let spawned = tracer
        .spawn(sopts, observer(), opts())
        .wait()
        .map_err(|e| format!("spawn: {e}"))?;
    for _ in 1..k {
        tracer
            .attach(spawned.pid, observer(), opts())
            .wait()
            .map_err(|e| format!("attach: {e}"))?;
    }
    let stats0 = tracer.stats().wait().map_err(|e| e.to_string())?;
    let cpu0 = thread_cpu(tracer.thread_id());
    let start = Instant::now();
    tracer
        .control(spawned.engine, spawned.pid, Action::Resume)
        .wait()
        .map_err(|e| format!("release: {e}"))?;
    for _ in 0..k {
        let seen = rx
            .recv_timeout(Duration::from_secs(3600))
            .map_err(|_| "no death report".to_string())?;
        if seen != m {
            return Err(format!("an observer saw {seen} getppid entries of {m}"));
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let tracer_cpu = thread_cpu(tracer.thread_id()) - cpu0;
    let stats = tracer.stats().wait().map_err(|e| e.to_string())?;
    Ok(EngineRun {
        wall,
        tracer_cpu,
        stops: stats.stops - stats0.stops,
    })
}

fn engines_table(runs: usize) {
    let m: u64 = std::env::var("UTRACE_BENCH_ENGINE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let ks: Vec<usize> = std::env::var("UTRACE_BENCH_ENGINES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 16])
        .into_iter()
        .filter(|k| *k >= 1)
        .collect();
    let m_s = m.to_string();
    println!(
        "\ntracee: syscall_loop {m} ({m} getppid, one seccomp stop each); K in-process \
         observers of getppid entries; median of {runs} runs, interleaved\n"
    );
    let mut native = Vec::new();
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); ks.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); ks.len()];
    for round in 0..runs {
        if let Some(t) = run_cmd(&[TRACEE, &m_s]) {
            native.push(t.as_secs_f64() / m as f64);
        }
        for (i, &k) in ks.iter().enumerate() {
            match run_engines(m, k) {
                Ok(r) => {
                    let per = r.stops.max(1) as f64;
                    eprintln!(
                        "  round {round}: K={k}: {:.3} s, tracer CPU {:.3} s, {} stops",
                        r.wall, r.tracer_cpu, r.stops
                    );
                    wall[i].push(r.wall / per);
                    cpu[i].push(r.tracer_cpu / per);
                }
                Err(e) => eprintln!("  round {round}: K={k}: failed: {e}"),
            }
        }
    }
    println!(
        "{:<42} {:>14} {:>18}",
        "variant", "wall per stop", "tracer CPU / stop"
    );
    let show = |x: Option<f64>| x.map_or("-".into(), fmt_ns);
    println!(
        "{:<42} {:>14} {:>18}",
        "native (per getppid)",
        show(median(native)),
        "-"
    );
    let wm: Vec<Option<f64>> = wall.into_iter().map(median).collect();
    let cm: Vec<Option<f64>> = cpu.into_iter().map(median).collect();
    for (i, k) in ks.iter().enumerate() {
        let name = format!("utrace {k} engine{}", if *k == 1 { "" } else { "s" });
        println!("{name:<42} {:>14} {:>18}", show(wm[i]), show(cm[i]));
    }
    let (Some(i1), Some(ik)) = (
        ks.iter().position(|k| *k == 1),
        ks.iter().rposition(|k| *k > 1),
    ) else {
        return;
    };
    let k = ks[ik];
    if let (Some(w1), Some(wk), Some(c1), Some(ck)) = (wm[i1], wm[ik], cm[i1], cm[ik]) {
        let extra = (k - 1) as f64;
        println!(
            "{:<42} {:>14} {:>18}",
            format!("ratio {k}/1"),
            format!("{:.2}", wk / w1),
            format!("{:.2}", ck / c1)
        );
        println!(
            "{:<42} {:>14} {:>18}",
            "per extra engine per stop",
            fmt_ns((wk - w1) / extra),
            fmt_ns((ck - c1) / extra)
        );
    }
}
