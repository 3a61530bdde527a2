//! Tracing overhead through the server, side by side with strace, in one run.
//!
//! Tracee: `syscall_loop N 1000`: N `getppid()` with one `openat` per 1,000.
//! The remote rows run utraced in-process ([`utraced::Embedded`], in this
//! program's tokio runtime) and a [`utrace_client::Client`] in the same
//! process that drains the `Trace` stream; a row's time runs from the `Trace`
//! call to the end of the stream (the tracee's death, every event read).
//! Each variant runs `RUNS` times, one run of each variant per round; the
//! table shows the median wall time, the
//! ratio to native and to the matching strace reference, the events the
//! client received and the reports it lost (sum of `dropped_before`, over
//! all runs: 0 while the client keeps up).
//!
//! `metrics` is the all-entries row on a second server with
//! `--metrics-listen`, scraped every 100 ms while it runs, against the
//! same row without: the endpoint must cost the tracer nothing measurable.
//! Two more kinds of row: `lossless` is the decoded row with
//! `EngineSpec.lossless` (a full queue holds the program instead of
//! dropping), against the same row without it: the option must cost
//! nothing while the reader keeps up. The `(CLI)` rows run the `utrace
//! trace` command itself (built by the bench, release profile), with its
//! embedded server writing each line on the tracer thread before the call
//! returns (strace's order), against the same strace command line.
//!
//! ```text
//! cargo bench -p utrace-tests --bench server_overhead              # N=1,000,000, 3 runs
//! UTRACE_BENCH_N=50000 UTRACE_BENCH_RUNS=3 cargo bench -p utrace-tests --bench server_overhead
//! ```
//!
//! Needs root (or ptrace rights) and strace in PATH for the reference rows
//! (`apt-get install -y strace`); without strace those rows say why they are
//! missing.

mod common;

use common::quiet_stdout;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_stream::StreamExt;
use utrace_client::{pb, Client};

const TRACEE: &str = env!("CARGO_BIN_EXE_syscall_loop");

/// Bound on one traced run.
const RUN_TIMEOUT: Duration = Duration::from_secs(3600);

/// What the client saw on one `Trace` stream.
#[derive(Clone, Copy, Debug, Default)]
struct Streamed {
    /// Events with a kind, `attached` included.
    events: u64,
    /// Sum of `dropped_before` (the final kind-less event included).
    dropped: u64,
    /// The process's exit code, from its `death` with `process_gone`.
    exit_code: Option<i32>,
}

/// One run of a variant.
#[derive(Clone, Copy, Debug)]
struct Sample {
    time: Duration,
    stream: Option<Streamed>,
}

fn run_cmd(argv: &[&str]) -> Option<Sample> {
    let start = Instant::now();
    let st = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    st.success().then(|| Sample {
        time: start.elapsed(),
        stream: None,
    })
}

/// Trace `syscall_loop n 1000` through the server with `engine`, draining the
/// stream; `None` (with the reason on stderr) if the call or stream failed.
async fn run_remote(client: &mut Client, n: &str, engine: &pb::EngineSpec) -> Option<Sample> {
    let req = pb::TraceRequest {
        target: Some(pb::trace_request::Target::Spawn(pb::SpawnRequest {
            argv: vec![TRACEE.into(), n.into(), "1000".into()],
            ..Default::default()
        })),
        engine: Some(engine.clone()),
    };
    let start = Instant::now();
    let drained = tokio::time::timeout(RUN_TIMEOUT, async {
        let mut stream = client.trace(req).await?;
        let mut s = Streamed::default();
        while let Some(ev) = stream.next().await {
            let ev = ev?;
            s.dropped += ev.dropped_before;
            match &ev.kind {
                None => {}
                Some(pb::event::Kind::Death(d)) if d.process_gone && s.exit_code.is_none() => {
                    s.events += 1;
                    s.exit_code = d.status.map(|st| st.code);
                }
                Some(_) => s.events += 1,
            }
        }
        Ok::<_, tonic::Status>(s)
    })
    .await;
    let time = start.elapsed();
    match drained {
        Ok(Ok(s)) if s.exit_code == Some(0) => Some(Sample {
            time,
            stream: Some(s),
        }),
        Ok(Ok(s)) => {
            eprintln!("    run failed: the tracee did not exit 0 ({s:?})");
            None
        }
        Ok(Err(st)) => {
            eprintln!("    run failed: {:?}: {}", st.code(), st.message());
            None
        }
        Err(_) => {
            eprintln!("    run failed: no stream end within {RUN_TIMEOUT:?}");
            None
        }
    }
}

/// CPU time of this process's tracer threads (`utrace-tracer`), from
/// their schedstat (nanoseconds on a CPU).
fn tracer_cpu() -> Duration {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = t.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "utrace-tracer" {
            continue;
        }
        ns += std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

/// One `GET /metrics` on 127.0.0.1:`port`; whether it answered 200.
fn scrape(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut text = String::new();
    s.read_to_string(&mut text).is_ok() && text.starts_with("HTTP/1.0 200")
}

fn engine(syscalls: &[&str], events: &[pb::EventKind], decode: bool) -> pb::EngineSpec {
    pb::EngineSpec {
        syscalls: syscalls.iter().map(|s| s.to_string()).collect(),
        events: events.iter().map(|e| *e as i32).collect(),
        follow_children: true,
        decode,
        // Room for bursts: the client must keep up, not lose reports.
        queue_len: 65536,
        ..Default::default()
    }
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by_key(|s| s.time);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let n = std::env::var("UTRACE_BENCH_N").unwrap_or_else(|_| "1000000".into());
    let runs = common::runs(3);
    let strace_missing = match Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("`strace -V` failed ({s})")),
        Err(e) => Some(format!("strace not found ({e}); apt-get install -y strace")),
    };
    if let Some(why) = &strace_missing {
        eprintln!("{why}: reference rows are skipped");
    }
    let have_strace = strace_missing.is_none();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let srv = rt
        .block_on(utraced::Embedded::start())
        .expect("start utraced");
    let client = rt
        .block_on(Client::connect(&srv.uri()))
        .expect("connect to utraced");
    // The same server with --metrics-listen, scraped ten times a second
    // while its row runs (Prometheus scrapes every 15 s or so).
    let metrics_port = common::free_port().expect("a free port");
    let with_metrics = rt
        .block_on(utraced::Embedded::start_with(|c| {
            c.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], metrics_port)));
        }))
        .expect("start utraced with metrics");
    let metrics_client = rt
        .block_on(Client::connect(&with_metrics.uri()))
        .expect("connect to utraced");
    let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scrapes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (scraping, scrapes) = (scraping.clone(), scrapes.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            if !scraping.load(std::sync::atomic::Ordering::Relaxed) {
                continue;
            }
            if scrape(metrics_port) {
                scrapes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    let mut out = quiet_stdout();

    use pb::EventKind as K;
    let openat_only = engine(&["openat"], &[K::SyscallEntry, K::Death], false);
    let all = engine(&[], &[K::SyscallEntry, K::SyscallExit, K::Death], false);
    let all_decoded = engine(&[], &[K::SyscallEntry, K::SyscallExit, K::Death], true);
    let all_decoded_lossless = pb::EngineSpec {
        lossless: true,
        ..all_decoded.clone()
    };
    let utrace = common::utrace_bin();
    if let Err(why) = &utrace {
        eprintln!("{why}: the utrace CLI rows are skipped");
    }
    let cli = |args: &[&str]| {
        let bin = utrace.as_ref().ok()?.to_str()?;
        let mut argv = vec![bin, "trace"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["-o", "/dev/null", TRACEE, &n, "1000"]);
        run_cmd(&argv)
    };
    let remote = |spec: &pb::EngineSpec| {
        let mut c = client.clone();
        rt.block_on(run_remote(&mut c, &n, spec))
    };
    let strace = |args: &[&str]| {
        if !have_strace {
            return None;
        }
        let mut argv = vec!["strace"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["-o", "/dev/null", TRACEE, &n, "1000"]);
        run_cmd(&argv)
    };

    // The tracer threads' CPU time in the two rows that compare the
    // metrics endpoint (wall time on a 2-CPU machine moves with any other
    // activity; the tracer's own time is what the endpoint could cost).
    let cpu_plain = std::cell::RefCell::new(Vec::new());
    let cpu_metrics = std::cell::RefCell::new(Vec::new());
    const STRACE_OPENAT: &str = "strace -f --seccomp-bpf -e trace=openat";
    const STRACE_ALL: &str = "strace -f -o /dev/null";
    type Variant<'a> = (
        &'a str,
        Option<&'a str>,
        Box<dyn Fn() -> Option<Sample> + 'a>,
    );
    let variants: Vec<Variant> = vec![
        ("native", None, Box::new(|| run_cmd(&[TRACEE, &n, "1000"]))),
        (
            STRACE_OPENAT,
            None,
            Box::new(|| strace(&["-f", "--seccomp-bpf", "-e", "trace=openat"])),
        ),
        (
            "server: openat entries (seccomp)",
            Some(STRACE_OPENAT),
            Box::new(|| remote(&openat_only)),
        ),
        (STRACE_ALL, None, Box::new(|| strace(&["-f"]))),
        (
            "server: all entries+exits",
            Some(STRACE_ALL),
            Box::new(|| {
                let before = tracer_cpu();
                let r = remote(&all);
                cpu_plain
                    .borrow_mut()
                    .push((tracer_cpu() - before).as_secs_f64());
                r
            }),
        ),
        (
            "server: all entries+exits, metrics",
            Some("server: all entries+exits"),
            Box::new(|| {
                scraping.store(true, std::sync::atomic::Ordering::Relaxed);
                let before = tracer_cpu();
                let mut c = metrics_client.clone();
                let r = rt.block_on(run_remote(&mut c, &n, &all));
                cpu_metrics
                    .borrow_mut()
                    .push((tracer_cpu() - before).as_secs_f64());
                scraping.store(false, std::sync::atomic::Ordering::Relaxed);
                r
            }),
        ),
        (
            "server: all entries+exits, decode",
            Some(STRACE_ALL),
            Box::new(|| remote(&all_decoded)),
        ),
        (
            "server: all, decode, lossless",
            Some("server: all entries+exits, decode"),
            Box::new(|| remote(&all_decoded_lossless)),
        ),
        (
            "utrace trace -f -e trace=openat (CLI)",
            Some(STRACE_OPENAT),
            Box::new(|| cli(&["-f", "-e", "trace=openat"])),
        ),
        (
            "utrace trace -f (CLI)",
            Some(STRACE_ALL),
            Box::new(|| cli(&["-f"])),
        ),
    ];

    eprintln!("tracee: syscall_loop {n} 1000; {runs} runs per variant");
    let mut results: Vec<(&str, Option<&str>, Option<Sample>, u64)> = Vec::new();
    // Round by round, each variant once a round: a drift in the machine
    // (the scheduler's placement, another load) touches every variant
    // alike, and a variant's median is compared with its reference's.
    let mut all: Vec<Vec<Sample>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        for ((name, _, f), samples) in variants.iter().zip(all.iter_mut()) {
            if let Some(s) = f() {
                eprintln!("  round {round}: {name}: {:?} {:?}", s.time, s.stream);
                samples.push(s);
            }
        }
    }
    for ((name, reference, _), samples) in variants.iter().zip(all) {
        let dropped: u64 = samples
            .iter()
            .filter_map(|s| s.stream.map(|st| st.dropped))
            .sum();
        let m = (!samples.is_empty()).then(|| median(samples));
        results.push((name, *reference, m, dropped));
    }

    let get = |name: &str| results.iter().find(|r| r.0 == name).and_then(|r| r.2);
    let native = get("native");
    let mut table = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        table,
        "tracee: syscall_loop {n} 1000 ({n} getppid + one openat per 1,000); median of {runs} runs\n"
    );
    let _ = writeln!(
        table,
        "{:<42} {:>12} {:>10} {:>12} {:>10} {:>8}  reference",
        "variant", "median", "x native", "x reference", "events", "dropped"
    );
    for (name, reference, sample, dropped) in &results {
        let Some(s) = sample else {
            let why = match (reference, &strace_missing) {
                (None, Some(why)) if name.starts_with("strace") => why.as_str(),
                _ => "every run failed (see above)",
            };
            let _ = writeln!(table, "{name:<42} {:>12}  {why}", "skipped");
            continue;
        };
        let t = s.time.as_secs_f64();
        let xn = native.map_or("-".into(), |nt| format!("{:.2}", t / nt.time.as_secs_f64()));
        let (xr, rname) = match reference.and_then(|r| get(r).map(|rt| (r, rt))) {
            Some((r, rt)) => (format!("{:.2}", t / rt.time.as_secs_f64()), r),
            None => ("-".into(), reference.unwrap_or("")),
        };
        let (events, dropped) = match s.stream {
            Some(st) => (st.events.to_string(), dropped.to_string()),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            table,
            "{name:<42} {t:>10.3} s {xn:>10} {xr:>12} {events:>10} {dropped:>8}  {rname}"
        );
    }
    let _ = writeln!(
        table,
        "\nevents: received by the client in the median run (attached and death included);\n\
         dropped: sum of dropped_before over all {runs} runs (0: the client kept up);\n\
         metrics: the same server with --metrics-listen, scraped every 100 ms during the row \
         ({} scrapes in all)",
        scrapes.load(std::sync::atomic::Ordering::Relaxed)
    );
    if let (Some(p), Some(m)) = (
        common::median(cpu_plain.borrow().clone()),
        common::median(cpu_metrics.borrow().clone()),
    ) {
        let _ = writeln!(
            table,
            "tracer threads' CPU time per run (median): {p:.3} s without the metrics endpoint, \
             {m:.3} s with it scraped every 100 ms ({:.3}×)",
            m / p
        );
    }
    out.write_all(table.as_bytes()).expect("write table");
    out.flush().expect("flush");
    drop(variants);
    drop(client);
    drop(metrics_client);
    rt.block_on(srv.stop()).expect("stop utraced");
    rt.block_on(with_metrics.stop()).expect("stop utraced");
}
