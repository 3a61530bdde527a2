//! What a function probe with `count()` costs the probed program, in one
//! run, side by side: bpftrace (in-kernel BPF), utraced's Probe (kernel
//! uprobes, aggregated in the server) with one client and with 16 (a
//! count needs no sample: counting uprobe events), a `sum(arg0)` probe
//! (a sample with the registers per hit), and the same count served by
//! ptrace int3 (uprobes turned off), with the unprobed program as the
//! floor.
//!
//! Tracee: `probe_target loop N`, a tight loop calling a five-instruction
//! function (`push %rbp` first, which the kernel emulates at a uprobe);
//! it times its own loop and prints the time per call. Each row attaches
//! its probe(s) to a fresh copy, lets it run, then reads the count (from
//! bpftrace's output after SIGINT, or the Probe stream's final snapshot
//! after Detach): hits counted plus hits the kernel could not record
//! (`lost`: a thread's ring filled) must add up to N.
//!
//! Rows: median time per call over `UTRACE_BENCH_RUNS` runs (default 3),
//! the extra per hit over the unprobed loop, and ratios: utraced / bpftrace,
//! 16 clients / 1 client, int3 / utraced. bpftrace is installed with
//! apt-get when missing (the row is skipped, with the reason, if it cannot
//! be).
//!
//! Second table: a syscall probe, `syscall:openat:entry` with `count()`,
//! on `syscall_loop N 1` (N `getppid` and N `openat` + `close`), the
//! program started by the probe (seccomp: only `openat` stops it),
//! against `strace -c -e trace=openat` (which stops at every syscall) and
//! `strace -f --seccomp-bpf -c -e trace=openat`, and the program alone:
//! wall time of the whole run, and the ratio to strace's.
//!
//! ```text
//! cargo bench -p utrace-tests --bench probes
//! UTRACE_BENCH_N=2000000 UTRACE_BENCH_RUNS=5 cargo bench -p utrace-tests --bench probes
//! UTRACE_BENCH_SYSCALL_N=200000 cargo bench -p utrace-tests --bench probes
//! ```

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use tokio_stream::StreamExt;
use utrace_client::{pb, Client};

use common::{median, runs};

const TARGET: &str = env!("CARGO_BIN_EXE_probe_target");

/// A `probe_target loop N` waiting to start.
struct Target {
    child: Child,
    out: BufReader<ChildStdout>,
    pid: u32,
}

impl Target {
    fn start(n: u64) -> Target {
        let mut child = Command::new(TARGET)
            .args(["loop", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start probe_target");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("ready");
        let pid = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .expect("ready PID");
        Target { child, out, pid }
    }

    fn line(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }

    /// Run the loop; nanoseconds per call.
    fn run(&mut self) -> f64 {
        self.line();
        let mut line = String::new();
        self.out.read_line(&mut line).expect("ns_per_call");
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad line {line:?}"))
    }

    fn finish(mut self) {
        self.line();
        let _ = self.child.wait();
    }
}

fn native(n: u64) -> f64 {
    let mut t = Target::start(n);
    let ns = t.run();
    t.finish();
    ns
}

/// bpftrace's `body` (e.g. `@ = count();`) on the function: (ns per
/// call, the sum of the map's counts).
fn bpftrace(n: u64, body: &str) -> Result<(f64, u64), String> {
    let mut t = Target::start(n);
    let mut bt = Command::new("bpftrace")
        .args([
            "-p",
            &t.pid.to_string(),
            "-e",
            &format!("uprobe:{TARGET}:probed_fn {{ {body} }}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run bpftrace: {e}"))?;
    let mut out = BufReader::new(bt.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).map_err(|e| e.to_string())?;
    if !line.starts_with("Attaching") {
        let _ = bt.kill();
        let mut err = String::new();
        if let Some(mut e) = bt.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        t.finish();
        return Err(format!("bpftrace did not attach: {line}{err}"));
    }
    // "Attaching" is printed just before the probes go in.
    std::thread::sleep(Duration::from_millis(500));
    let ns = t.run();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(bt.id() as i32, libc::SIGINT) };
    let mut count = 0;
    for l in out.lines().map_while(Result::ok) {
        // "@: N" or "@[key]: N"
        if let Some((_, v)) = l.strip_prefix('@').and_then(|l| l.rsplit_once(": ")) {
            count += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    let _ = bt.wait();
    t.finish();
    Ok((ns, count))
}

/// What a benchmarked probe does at each hit.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `@ = count()`: no sample (counting uprobe events).
    Count,
    /// `@ = sum(arg0)`: a sample with the registers per hit.
    Sum,
    /// `@[str(arg1)] = count()`: the string taken by the kernel at the
    /// hit (a tracefs uprobe with a fetch argument).
    Str,
}

/// `clients` Probe streams doing `kind` on the function: (ns per call,
/// hits taken, hits lost), the first client's figures.
async fn utraced(uri: &str, n: u64, clients: usize, kind: Kind) -> (f64, u64, u64) {
    let mut t = Target::start(n);
    let mut streams = Vec::new();
    for _ in 0..clients {
        let mut c = Client::connect(uri).await.expect("connect");
        let req = pb::ProbeRequest {
            target: Some(pb::probe_request::Target::Pid(t.pid)),
            // The loop is all hits: a probe on it takes the whole CPU,
            // past the default budget (50 %), which would end it.
            limits: Some(pb::ProbeLimits {
                cpu_percent: 1000,
                ..Default::default()
            }),
            clauses: vec![pb::ProbeClause {
                points: vec![pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
                        symbol: "probed_fn".into(),
                        ..Default::default()
                    })),
                }],
                updates: vec![match kind {
                    Kind::Sum => pb::MapUpdate {
                        map: "@".into(),
                        agg: pb::ProbeAggregation::Sum as i32,
                        value: Some(pb::ProbeExpr {
                            expr: Some(pb::probe_expr::Expr::Arg(0)),
                        }),
                        ..Default::default()
                    },
                    Kind::Count => pb::MapUpdate {
                        map: "@".into(),
                        agg: pb::ProbeAggregation::Count as i32,
                        ..Default::default()
                    },
                    Kind::Str => pb::MapUpdate {
                        map: "@".into(),
                        agg: pb::ProbeAggregation::Count as i32,
                        keys: vec![pb::ProbeExpr {
                            expr: Some(pb::probe_expr::Expr::StrAt(Box::new(pb::ProbeStr {
                                addr: Some(Box::new(pb::ProbeExpr {
                                    expr: Some(pb::probe_expr::Expr::Arg(1)),
                                })),
                                len: 0,
                            }))),
                        }],
                        ..Default::default()
                    },
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut s = c.raw().probe(req).await.expect("probe").into_inner();
        let engine = match s.next().await {
            Some(Ok(pb::ProbeReport {
                kind: Some(pb::probe_report::Kind::Started(st)),
            })) => st.engine_id,
            other => panic!("no start: {other:?}"),
        };
        streams.push((c, s, engine));
    }
    let ns = tokio::task::block_in_place(|| t.run());
    let mut first = None;
    for (mut c, mut s, engine) in streams {
        c.detach(engine).await.expect("detach");
        let mut last = None;
        while let Some(Ok(m)) = s.next().await {
            if let Some(pb::probe_report::Kind::Snapshot(x)) = m.kind {
                last = Some(x);
            }
        }
        let last = last.expect("a final snapshot");
        let counted = last.counters.map_or(0, |c| c.hits);
        let lost = last.counters.map_or(0, |c| c.hits_lost);
        first.get_or_insert((counted, lost));
    }
    tokio::task::block_in_place(|| t.finish());
    let (counted, lost) = first.unwrap_or((0, 0));
    (ns, counted, lost)
}

const SYSCALL_LOOP: &str = env!("CARGO_BIN_EXE_syscall_loop");

/// `syscall_loop n 1` alone: seconds.
fn loop_alone(n: u64) -> f64 {
    let t = std::time::Instant::now();
    let st = Command::new(SYSCALL_LOOP)
        .args([&n.to_string(), "1"])
        .stdout(Stdio::null())
        .status()
        .expect("syscall_loop");
    assert!(st.success());
    t.elapsed().as_secs_f64()
}

/// Under strace (`-c -e trace=openat`, with `seccomp` its
/// `-f --seccomp-bpf`): seconds, or why not.
fn strace_count(n: u64, seccomp: bool) -> Result<f64, String> {
    let mut args: Vec<String> = Vec::new();
    if seccomp {
        args.extend(["-f".into(), "--seccomp-bpf".into()]);
    }
    args.extend(["-c", "-e", "trace=openat", "-o", "/dev/null", SYSCALL_LOOP].map(String::from));
    args.extend([n.to_string(), "1".into()]);
    let t = std::time::Instant::now();
    let st = Command::new("strace")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run strace: {e}"))?;
    if !st.success() {
        return Err(format!("strace {args:?}: {st}"));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// `syscall:openat:entry { @ = count(); }` on a `syscall_loop n 1` the
/// probe starts: (seconds from the request to the end, count).
async fn utraced_syscall(uri: &str, n: u64) -> (f64, u64) {
    let mut c = Client::connect(uri).await.expect("connect");
    let req = pb::ProbeRequest {
        target: Some(pb::probe_request::Target::Spawn(pb::ProbeSpawn {
            argv: vec![SYSCALL_LOOP.into(), n.to_string(), "1".into()],
            ..Default::default()
        })),
        // A stop at every openat takes most of the program's time: past
        // the default budget (50 %), which would end the probe.
        limits: Some(pb::ProbeLimits {
            cpu_percent: 1000,
            ..Default::default()
        }),
        clauses: vec![pb::ProbeClause {
            points: vec![pb::ProbePoint {
                point: Some(pb::probe_point::Point::Syscall(pb::SyscallPoint {
                    name: "openat".into(),
                    exit: false,
                })),
            }],
            updates: vec![pb::MapUpdate {
                map: "@".into(),
                agg: pb::ProbeAggregation::Count as i32,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let mut s = c.raw().probe(req).await.expect("probe").into_inner();
    let mut count = 0;
    while let Some(Ok(m)) = s.next().await {
        if let Some(pb::probe_report::Kind::Snapshot(x)) = m.kind {
            count = x
                .maps
                .first()
                .and_then(|m| m.entries.first())
                .map_or(0, |e| e.value as u64);
        }
    }
    (t.elapsed().as_secs_f64(), count)
}

/// The second table.
async fn syscall_table(uri: &str, runs: usize) {
    // The programs this process's server starts print to its stdout: that
    // goes to /dev/null, the table to the real one.
    let mut out = common::quiet_stdout();
    let n = env_u64("UTRACE_BENCH_SYSCALL_N", 100_000);
    let (mut alone, mut ours, mut st, mut st_bpf) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut counted = 0;
    let mut why = None;
    for r in 0..runs {
        eprintln!("syscall run {}/{runs}", r + 1);
        alone.push(tokio::task::block_in_place(|| loop_alone(n)));
        let (t, c) = utraced_syscall(uri, n).await;
        ours.push(t);
        counted = c;
        match tokio::task::block_in_place(|| strace_count(n, false)) {
            Ok(t) => st.push(t),
            Err(e) => why = Some(e),
        }
        if let Ok(t) = tokio::task::block_in_place(|| strace_count(n, true)) {
            st_bpf.push(t);
        }
    }
    let mut text =
        format!("\nsyscall probe, openat count(): syscall_loop {n} 1, median of {runs} runs\n\n");
    let mut row = |name: &str, v: &[f64], note: String| match median(v.to_vec()) {
        Some(m) => text.push_str(&format!("{name:<44} {:>10.3} s  {note}\n", m)),
        None => text.push_str(&format!("{name:<44} {:>12}  {note}\n", "-")),
    };
    row("the program alone", &alone, String::new());
    row(
        "utraced Probe syscall:openat:entry count()",
        &ours,
        format!("{counted} counted (of {n})"),
    );
    row(
        "strace -c -e trace=openat",
        &st,
        why.clone().unwrap_or_default(),
    );
    row(
        "strace -f --seccomp-bpf -c -e trace=openat",
        &st_bpf,
        String::new(),
    );
    let ratio = |a: &[f64], b: &[f64]| match (median(a.to_vec()), median(b.to_vec())) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    };
    text.push_str(&format!(
        "\nutraced / strace -c:                {}\nutraced / strace --seccomp-bpf -c:  {}\n",
        ratio(&ours, &st),
        ratio(&ours, &st_bpf)
    ));
    let _ = out.write_all(text.as_bytes());
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_u64("UTRACE_BENCH_N", 1_000_000);
    let n_int3 = (n / 20).max(1000);
    let runs = runs(3);
    let bt_ok = common::ensure(&["bpftrace"], &["bpftrace"]);
    let srv = utraced::Embedded::start().await.expect("server");
    let uri = srv.uri();

    let mut rows: Vec<(&str, Vec<f64>, String)> = Vec::new();
    let mut nat = Vec::new();
    let mut bt = Vec::new();
    let mut one = Vec::new();
    let mut many = Vec::new();
    let mut int3 = Vec::new();
    let mut sampled = Vec::new();
    let mut bt_str = Vec::new();
    let mut strs = Vec::new();
    let mut notes = (String::new(), String::new(), String::new(), String::new());
    let mut sampled_note = String::new();
    let mut str_notes = (String::new(), String::new());
    for r in 0..runs {
        eprintln!("run {}/{runs}", r + 1);
        nat.push(tokio::task::block_in_place(|| native(n)));
        if bt_ok.is_ok() {
            match tokio::task::block_in_place(|| bpftrace(n, "@ = count();")) {
                Ok((ns, c)) => {
                    bt.push(ns);
                    notes.0 = format!("{c} counted");
                }
                Err(e) => notes.0 = e,
            }
            match tokio::task::block_in_place(|| bpftrace(n, "@[str(arg1)] = count();")) {
                Ok((ns, c)) => {
                    bt_str.push(ns);
                    str_notes.0 = format!("{c} counted");
                }
                Err(e) => str_notes.0 = e,
            }
        }
        let (ns, c, l) = utraced(&uri, n, 1, Kind::Count).await;
        one.push(ns);
        notes.1 = format!("{c} counted + {l} lost");
        let (ns, c, l) = utraced(&uri, n, 16, Kind::Count).await;
        many.push(ns);
        notes.2 = format!("{c} counted + {l} lost (each)");
        let (ns, c, l) = utraced(&uri, n, 1, Kind::Sum).await;
        sampled.push(ns);
        sampled_note = format!("{c} taken + {l} lost");
        let (ns, c, l) = utraced(&uri, n, 1, Kind::Str).await;
        strs.push(ns);
        str_notes.1 = format!("{c} taken + {l} lost");
        std::env::set_var("UTRACE_NO_UPROBES", "1");
        let (ns, c, l) = utraced(&uri, n_int3, 1, Kind::Count).await;
        std::env::remove_var("UTRACE_NO_UPROBES");
        int3.push(ns);
        notes.3 = format!("{c} counted + {l} lost of {n_int3}");
    }
    let base = median(nat.clone()).unwrap_or(0.0);
    let extra = |v: &[f64]| median(v.to_vec()).map(|m| m - base);
    if let Err(e) = &bt_ok {
        notes.0 = format!("skipped: {e}");
    }
    rows.push(("unprobed loop", nat, String::new()));
    rows.push(("bpftrace @ = count()", bt.clone(), notes.0));
    rows.push(("utraced Probe count(), 1 client", one.clone(), notes.1));
    rows.push(("utraced Probe count(), 16 clients", many.clone(), notes.2));
    rows.push(("utraced Probe sum(arg0) (sampled)", sampled, sampled_note));
    rows.push((
        "bpftrace @[str(arg1)] = count()",
        bt_str.clone(),
        str_notes.0,
    ));
    rows.push((
        "utraced the same (tracefs fetch)",
        strs.clone(),
        str_notes.1,
    ));
    rows.push(("same probe served by ptrace int3", int3.clone(), notes.3));
    println!("\nfunction probe, count(): {n} calls ({n_int3} for int3), median of {runs} runs\n");
    println!(
        "{:<36} {:>12} {:>14}  counts",
        "", "per call", "extra per hit"
    );
    for (name, v, note) in &rows {
        match median(v.clone()) {
            Some(m) => println!("{name:<36} {:>9.1} ns {:>11.1} ns  {note}", m, m - base),
            None => println!("{name:<36} {:>12} {:>14}  {note}", "-", "-"),
        }
    }
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    };
    println!();
    println!(
        "utraced 1 client / bpftrace (extra per hit):   {}",
        ratio(extra(&one), extra(&bt))
    );
    println!(
        "utraced 16 clients / 1 client (extra per hit): {}",
        ratio(extra(&many), extra(&one))
    );
    println!(
        "ptrace int3 / utraced uprobe (extra per hit):  {}",
        ratio(extra(&int3), extra(&one))
    );
    println!(
        "utraced str() / bpftrace str() (extra per hit): {}",
        ratio(extra(&strs), extra(&bt_str))
    );
    syscall_table(&uri, runs).await;
    drop(srv);
}
