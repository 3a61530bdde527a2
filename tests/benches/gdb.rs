//! gdb through the bridge (`utrace gdb`) against gdb through gdbserver, in
//! one run: the cost of a breakpoint hit and of a single step as gdb sees
//! them.
//!
//! Target: `syscall_loop`, which calls libc's `syscall()` in a loop. For
//! each server, a fresh copy of the target, attached by a fresh server on a
//! loopback TCP port (a process has one tracer):
//! - gdbserver: `gdbserver --attach 127.0.0.1:PORT PID`;
//! - the bridge: `utrace gdb --listen 127.0.0.1:PORT -p PID`, the command
//!   a user runs, on the server it embeds (no daemon): a process of its
//!   own, as gdbserver is.
//!
//! Then `gdb -batch -nx EXE -ex 'target remote 127.0.0.1:PORT'`, `break
//! syscall`, `continue` to the first hit, and, timed inside gdb by its
//! Python (`time.perf_counter()`):
//! - hits: `ignore 1 N` then `continue` (gdb takes N stops and resumes
//!   each, then stops at the next): time / (N + 1);
//! - steps: `stepi N`: time / N.
//!
//! A third row: `next` over one source line that loops (`tests/c/loop.c`,
//! built with `cc -g`, `UTRACE_BENCH_TURNS` turns, default 20,000), the
//! program started by each server: gdb range-steps it (`vCont;r`), and
//! each server steps inside the range itself; time / turns.
//!
//! Three rows on `tests/c/deep.c` (a 64-deep recursion, started by each
//! server and stopped at its bottom; `UTRACE_BENCH_DEEP` sessions per
//! server and run, default 5, taken in turn): gdb's first `bt` there (66
//! frames, unwound through memory reads), the part of it gdb spent
//! waiting (the `bt`'s time less gdb's own CPU time meanwhile: most of a
//! first `bt` is gdb reading debug information, the same work whichever
//! the server), and `x/4096gx` (32 KiB of the stack, below the stack
//! pointer).
//!
//! Two more rows, on `signals 10 N` (SIGUSR1 to itself N times,
//! `UTRACE_BENCH_SIGNALS`, default 20,000) started by each server: the
//! time of gdb's `target remote` (the symbols of the program and of its
//! libraries read through `vFile`; `utrace gdb --listen -- PROG` starts
//! the program when gdb connects, gdbserver before, so the bridge's time
//! includes the program's start), and, with `handle SIGUSR1 nostop
//! noprint pass` (gdb's `QPassSignals`), `continue` to its end / N.
//!
//! A second table: single packets sent raw to each server on `deep` (no
//! gdb; `UTRACE_BENCH_PACKETS` of each, default 2,000): the round trip
//! and the server process's CPU time per packet (the bridge's own cost
//! per packet), for an `m` the bridge answers from the memory its stop
//! brought, an `m` that takes it one call to its server, and a 16 KiB
//! `vFile:pread`.
//!
//! The table shows medians over `UTRACE_BENCH_RUNS` runs (default 3) and
//! the ratio bridge / gdbserver. gdb and gdbserver are installed with
//! apt-get when missing.
//!
//! ```text
//! cargo bench -p utrace-tests --bench gdb
//! UTRACE_BENCH_RUNS=5 UTRACE_BENCH_HITS=2000 cargo bench -p utrace-tests --bench gdb
//! UTRACE_BENCH_DEEP=10 cargo bench -p utrace-tests --bench gdb   # more bt samples
//! ```

mod common;
#[path = "../tests/common/rsp.rs"]
mod rsp;
#[path = "../tests/common/schedstat.rs"]
mod schedstat;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ensure_gdb, fmt_time, free_port, median, utrace_bin};

const SYSCALL_LOOP: &str = env!("CARGO_BIN_EXE_syscall_loop");
const SIGNALS: &str = env!("CARGO_BIN_EXE_signals");

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A step of a gdb script: a command, or one timed by gdb's Python under
/// a key (its seconds printed as `KEY seconds`).
enum Step {
    Run(String),
    Timed(&'static str, String),
}

fn run(cmd: impl Into<String>) -> Step {
    Step::Run(cmd.into())
}

fn timed(key: &'static str, cmd: impl Into<String>) -> Step {
    Step::Timed(key, cmd.into())
}

/// What gdb said.
struct Said(String);

impl Said {
    /// The seconds of the step timed under `key`.
    fn seconds(&self, key: &str) -> Result<f64, String> {
        // The key may follow gdb's own output on its line (`stepi` ends
        // with an address and a tab when it stops outside a line).
        let tag = format!("{key} ");
        self.0
            .lines()
            .find_map(|l| {
                let at = l.find(&tag)?;
                let before = l[..at].chars().next_back();
                before
                    .is_none_or(char::is_whitespace)
                    .then(|| &l[at + tag.len()..])
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("no {key} timing from gdb:\n{}", self.0))
    }
}

/// gdb in batch mode on `exe`, connected to the server on `port` (timed
/// as `CONNECT`), then `steps`; bounded by `limit` seconds.
fn gdb_script(exe: &str, port: u16, steps: &[Step], limit: u32) -> Result<Said, String> {
    let mut cmd = Command::new("timeout");
    cmd.args([
        "--foreground",
        &limit.to_string(),
        "gdb",
        "-q",
        "-nx",
        "-batch",
        exe,
    ]);
    let connect = timed("CONNECT", format!("target remote 127.0.0.1:{port}"));
    let mut ex = |c: &str| {
        cmd.args(["-ex", c]);
    };
    ex("set confirm off");
    ex("python import time");
    for step in std::iter::once(&connect).chain(steps) {
        match step {
            Step::Run(c) => ex(c),
            Step::Timed(key, c) => {
                ex("python t0 = time.perf_counter()");
                ex(c);
                ex(&format!(
                    "python print('{key} %.9f' % (time.perf_counter() - t0))"
                ));
            }
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("gdb: {e}"))?;
    Ok(Said(
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    ))
}

/// One gdb session on `port`: (seconds per hit, seconds per step).
fn session(port: u16, hits: usize, steps: usize) -> Result<(f64, f64), String> {
    let script = [
        run("break syscall"),
        run("continue"),
        run(format!("ignore 1 {hits}")),
        timed("HITS", "continue"),
        run("delete"),
        timed("STEPS", format!("stepi {steps}")),
        run("detach"),
    ];
    let said = gdb_script(SYSCALL_LOOP, port, &script, 300)?;
    Ok((
        said.seconds("HITS")? / (hits + 1) as f64,
        said.seconds("STEPS")? / steps as f64,
    ))
}

/// gdb on `port` (a server that started `signals 10 n`): seconds for
/// `target remote`, and for `continue` to the program's end with SIGUSR1
/// passed, per signal.
fn signal_session(port: u16, n: usize) -> Result<(f64, f64), String> {
    let script = [
        run("handle SIGUSR1 nostop noprint pass"),
        timed("PASS", "continue"),
    ];
    let said = gdb_script(SIGNALS, port, &script, 300)?;
    if !said.0.contains("exited normally") {
        return Err(format!("the program did not run to its end:\n{}", said.0));
    }
    Ok((said.seconds("CONNECT")?, said.seconds("PASS")? / n as f64))
}

fn signals_argv(n: usize) -> Vec<String> {
    vec![
        SIGNALS.to_string(),
        libc::SIGUSR1.to_string(),
        n.to_string(),
    ]
}

fn signals_gdbserver(n: usize) -> Result<(f64, f64), String> {
    let (_server, port) = gdbserver(&[], &signals_argv(n))?;
    signal_session(port, n)
}

fn signals_bridge(utrace: &Path, n: usize) -> Result<(f64, f64), String> {
    let (_bridge, port) = bridge(utrace, &["--"], &signals_argv(n))?;
    signal_session(port, n)
}

/// `tests/c/loop.c` built with `-g` in a fresh directory: the program, and
/// the line of its loop.
fn build_loop() -> Result<(String, usize), String> {
    let (exe, src) = build_c("loop")?;
    let text = std::fs::read_to_string(src).map_err(|e| e.to_string())?;
    let line = text
        .lines()
        .position(|l| l.contains("/* the loop */"))
        .ok_or("no loop line in loop.c")?;
    Ok((exe, line + 1))
}

/// `tests/c/NAME.c` built with `-g -O0` in a fresh directory: the
/// program and its source.
fn build_c(name: &str) -> Result<(String, String), String> {
    let src = format!("{}/c/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("utrace-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exe = dir.join(name).display().to_string();
    let out = Command::new("cc")
        .args(["-g", "-O0", "-o", &exe, &src])
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!("cc: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok((exe, src))
}

/// What a `deep` session measured, in seconds.
#[derive(Default)]
struct Deep {
    /// The first `bt` at the recursion's bottom.
    bt: Vec<f64>,
    /// The part of it gdb did not spend on a CPU (waiting for the server).
    bt_wait: Vec<f64>,
    /// `x/4096gx` below the stack pointer.
    x: Vec<f64>,
}

impl Deep {
    fn keep(&mut self, r: Result<[f64; 3], String>, what: &str) {
        match r {
            Ok([bt, wait, x]) => {
                self.bt.push(bt);
                self.bt_wait.push(wait);
                self.x.push(x);
            }
            Err(e) => eprintln!("{what}: {e}"),
        }
    }
}

/// gdb on `port` (a server that started `deep`): seconds for the first
/// `bt` at the recursion's bottom, of them those gdb was not on a CPU,
/// and seconds for `x/4096gx` below the stack pointer.
fn deep_session(port: u16, exe: &str) -> Result<[f64; 3], String> {
    let script = [
        run("break bottom"),
        run("continue"),
        run("python c0 = time.process_time()"),
        timed("BT", "bt"),
        run("python print('BTCPU %.9f' % (time.process_time() - c0))"),
        timed("X", "x/4096gx $sp - 32768"),
        run("kill"),
    ];
    let said = gdb_script(exe, port, &script, 300)?;
    if !said.0.contains("#65 ") {
        return Err(format!("no 66-frame backtrace:\n{}", said.0));
    }
    let bt = said.seconds("BT")?;
    // The CPU time spans the timed step's own Python lines too (a few
    // microseconds), so it may pass the wall time by as much.
    let wait = (bt - said.seconds("BTCPU")?).max(0.0);
    Ok([bt, wait, said.seconds("X")?])
}

fn deep_gdbserver(exe: &str) -> Result<[f64; 3], String> {
    let (_server, port) = gdbserver(&[], &[exe.to_string()])?;
    deep_session(port, exe)
}

fn deep_bridge(utrace: &Path, exe: &str) -> Result<[f64; 3], String> {
    let (_bridge, port) = bridge(utrace, &["--"], &[exe.to_string()])?;
    deep_session(port, exe)
}

/// gdb on `port` (a server that started `exe`): seconds for `next` over
/// the loop line at `line`.
fn range_session(port: u16, exe: &str, line: usize) -> Result<f64, String> {
    let script = [
        run(format!("break {line}")),
        run("continue"),
        timed("RANGE", "next"),
        run("kill"),
    ];
    gdb_script(exe, port, &script, 600)?.seconds("RANGE")
}

/// gdbserver on a free loopback port, with `before` the port (e.g.
/// `--attach`) and `after` it (a program, or a pid): the server (killed
/// when dropped) and its port, once it has had time to listen.
fn gdbserver(before: &[&str], after: &[String]) -> Result<(Reaped, u16), String> {
    listening("gdbserver".as_ref(), |port| {
        let mut args: Vec<String> = before.iter().map(|s| s.to_string()).collect();
        args.push(format!("127.0.0.1:{port}"));
        args.extend_from_slice(after);
        args
    })
}

/// `utrace gdb --listen 127.0.0.1:PORT` (the command a user runs, on its
/// embedded server), with `before` and then `after` as gdbserver's
/// arguments are given: started and reaped as gdbserver is.
fn bridge(utrace: &Path, before: &[&str], after: &[String]) -> Result<(Reaped, u16), String> {
    listening(utrace, |port| {
        let mut args = vec!["gdb".into(), "--listen".into(), format!("127.0.0.1:{port}")];
        args.extend(before.iter().map(|s| s.to_string()));
        args.extend_from_slice(after);
        args
    })
}

/// `program` with the arguments `args` makes for a free loopback port:
/// the server (killed when dropped) and its port, once it has had time to
/// listen.
fn listening(
    program: &Path,
    args: impl FnOnce(u16) -> Vec<String>,
) -> Result<(Reaped, u16), String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let server = Reaped(
        Command::new(program)
            .args(args(port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?,
    );
    std::thread::sleep(Duration::from_millis(300));
    Ok((server, port))
}

fn range_gdbserver(exe: &str, line: usize, turns: usize) -> Result<f64, String> {
    let (_server, port) = gdbserver(&[], &[exe.to_string(), turns.to_string()])?;
    range_session(port, exe, line)
}

fn range_bridge(utrace: &Path, exe: &str, line: usize, turns: usize) -> Result<f64, String> {
    let (_bridge, port) = bridge(utrace, &["--"], &[exe.to_string(), turns.to_string()])?;
    range_session(port, exe, line)
}

/// A child killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target() -> Reaped {
    Reaped(
        Command::new(SYSCALL_LOOP)
            .arg("1000000000")
            .stdout(Stdio::null())
            .spawn()
            .expect("syscall_loop"),
    )
}

fn with_gdbserver(hits: usize, steps: usize) -> Result<(f64, f64), String> {
    let t = target();
    let (_server, port) = gdbserver(&["--attach"], &[t.0.id().to_string()])?;
    session(port, hits, steps)
}

fn with_bridge(utrace: &Path, hits: usize, steps: usize) -> Result<(f64, f64), String> {
    let t = target();
    let (_bridge, port) = bridge(utrace, &["-p"], &[t.0.id().to_string()])?;
    session(port, hits, steps)
}

/// Single packets, sent raw (no gdb), on a server that started `exe`
/// (held at its first instruction) at `port`, `n` of each: per packet, the
/// round trip and the server process's CPU time (`server`: its pid; for
/// the bridge, the command with the server it embeds). Three kinds:
/// `m` of 64 bytes at the stack pointer (the bridge answers from the
/// memory its stop brought, with no call to its server), `m` of 64 bytes
/// in the loader's code away from the pc (one call), and a 16 KiB
/// `vFile:pread` of the program's file.
fn packets(port: u16, server: u32, exe: &str, n: usize) -> Result<[(f64, f64); 3], String> {
    let mut r = rsp::Rsp::connect(&format!("127.0.0.1:{port}"))?;
    r.ask("qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+")?;
    let stop = r.ask("?")?;
    let thread = rsp::Rsp::stop_thread(&stop).ok_or(format!("no thread in {stop}"))?;
    r.ask(&format!("Hg{thread}"))?;
    let regs = rsp::unrle(&r.ask("g")?);
    let word = |i: usize| -> Result<u64, String> {
        let hex = regs.get(i * 16..i * 16 + 16).ok_or("short g reply")?;
        let v = u64::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
        Ok(u64::from_be(v))
    };
    // rsp is gdb's register 7, rip 16.
    let (sp, pc) = (word(7)?, word(16)?);
    let open = r.ask(&format!(
        "vFile:open:{},0,0",
        exe.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    ))?;
    let fd = open
        .strip_prefix('F')
        .and_then(|f| f.split(';').next())
        .filter(|f| !f.starts_with('-'))
        .ok_or(format!("vFile:open: {open}"))?
        .to_string();
    let kinds = [
        format!("m{sp:x},40"),
        format!("m{:x},40", pc + 0x800),
        format!("vFile:pread:{fd},4000,0"),
    ];
    let mut out = [(0.0, 0.0); 3];
    for (k, packet) in kinds.iter().enumerate() {
        let reply = r.ask(packet)?;
        if reply.starts_with('E') || reply.starts_with("F-") {
            return Err(format!("{packet}: {reply}"));
        }
        let cpu0 = schedstat::cpu_seconds(server);
        let start = std::time::Instant::now();
        for _ in 0..n {
            r.ask_bytes(packet.as_bytes())?;
        }
        let t = start.elapsed().as_secs_f64();
        out[k] = (
            t / n as f64,
            (schedstat::cpu_seconds(server) - cpu0) / n as f64,
        );
    }
    let _ = r.ask("k");
    Ok(out)
}

fn packets_gdbserver(exe: &str, n: usize) -> Result<[(f64, f64); 3], String> {
    let (server, port) = gdbserver(&[], &[exe.to_string()])?;
    packets(port, server.0.id(), exe, n)
}

fn packets_bridge(utrace: &Path, exe: &str, n: usize) -> Result<[(f64, f64); 3], String> {
    let (bridge, port) = bridge(utrace, &["--"], &[exe.to_string()])?;
    packets(port, bridge.0.id(), exe, n)
}

/// A session's two figures, each kept in its row, or why there are none.
fn keep(r: Result<(f64, f64), String>, a: &mut Vec<f64>, b: &mut Vec<f64>, what: &str) {
    match r {
        Ok((x, y)) => {
            a.push(x);
            b.push(y);
        }
        Err(e) => eprintln!("{what}: {e}"),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs = env_usize("UTRACE_BENCH_RUNS", 3);
    let hits = env_usize("UTRACE_BENCH_HITS", 1000);
    let steps = env_usize("UTRACE_BENCH_STEPS", 1000);
    let turns = env_usize("UTRACE_BENCH_TURNS", 20_000);
    let signals = env_usize("UTRACE_BENCH_SIGNALS", 20_000);
    let n_packets = env_usize("UTRACE_BENCH_PACKETS", 2000);
    let deeps = env_usize("UTRACE_BENCH_DEEP", 5);
    if let Err(why) = ensure_gdb() {
        println!("SKIP: gdb and gdbserver are needed: {why}");
        return;
    }
    let utrace = match utrace_bin() {
        Ok(p) => p,
        Err(why) => {
            println!("SKIP: the utrace command is needed: {why}");
            return;
        }
    };
    let (mut gs_hit, mut gs_step, mut br_hit, mut br_step) = (vec![], vec![], vec![], vec![]);
    let (mut gs_range, mut br_range) = (vec![], vec![]);
    let (mut gs_connect, mut br_connect, mut gs_pass, mut br_pass) =
        (vec![], vec![], vec![], vec![]);
    let (mut gs_deep, mut br_deep) = (Deep::default(), Deep::default());
    let deep = build_c("deep");
    if let Err(e) = &deep {
        eprintln!("no bt and x rows: {e}");
    }
    let looped = build_loop();
    if let Err(e) = &looped {
        eprintln!("no range-stepping row: {e}");
    }
    // Per packet kind: round trips and CPU, gdbserver's and the bridge's.
    let mut gs_pk: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    let mut br_pk: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    for run in 0..runs {
        if let Ok((exe, _)) = &deep {
            for (who, got, into) in [
                ("gdbserver", packets_gdbserver(exe, n_packets), &mut gs_pk),
                (
                    "bridge",
                    packets_bridge(&utrace, exe, n_packets),
                    &mut br_pk,
                ),
            ] {
                match got {
                    Ok(k) => {
                        for (i, (t, c)) in k.into_iter().enumerate() {
                            into[i].0.push(t);
                            into[i].1.push(c);
                        }
                    }
                    Err(e) => eprintln!("run {run}: {who}, packets: {e}"),
                }
            }
        }
        match with_gdbserver(hits, steps) {
            Ok((h, s)) => {
                gs_hit.push(h);
                gs_step.push(s);
            }
            Err(e) => eprintln!("run {run}: gdbserver: {e}"),
        }
        match with_bridge(&utrace, hits, steps) {
            Ok((h, s)) => {
                br_hit.push(h);
                br_step.push(s);
            }
            Err(e) => eprintln!("run {run}: bridge: {e}"),
        }
        if let Ok((exe, _)) = &deep {
            for _ in 0..deeps {
                let what = format!("run {run}: gdbserver, deep");
                gs_deep.keep(deep_gdbserver(exe), &what);
                let what = format!("run {run}: bridge, deep");
                br_deep.keep(deep_bridge(&utrace, exe), &what);
            }
        }
        let what = format!("run {run}: gdbserver, signals");
        keep(
            signals_gdbserver(signals),
            &mut gs_connect,
            &mut gs_pass,
            &what,
        );
        let what = format!("run {run}: bridge, signals");
        keep(
            signals_bridge(&utrace, signals),
            &mut br_connect,
            &mut br_pass,
            &what,
        );
        if let Ok((exe, line)) = &looped {
            match range_gdbserver(exe, *line, turns) {
                Ok(t) => gs_range.push(t / turns as f64),
                Err(e) => eprintln!("run {run}: gdbserver, range: {e}"),
            }
            match range_bridge(&utrace, exe, *line, turns) {
                Ok(t) => br_range.push(t / turns as f64),
                Err(e) => eprintln!("run {run}: bridge, range: {e}"),
            }
        }
    }
    println!(
        "gdb through gdbserver and through utrace gdb: median of {runs} runs \
         ({hits} hits, {steps} steps each; the deep rows: {deeps} sessions per run)"
    );
    println!("| per | gdbserver | utrace gdb | utrace gdb / gdbserver |");
    println!("|---|---|---|---|");
    for (what, g, b) in [
        ("breakpoint hit (stop, report, resume)", gs_hit, br_hit),
        ("single step (stepi)", gs_step, br_step),
        (
            "loop turn under `next` (range stepping)",
            gs_range,
            br_range,
        ),
        ("first `bt` of a 66-frame stack", gs_deep.bt, br_deep.bt),
        (
            "of which gdb waited (the `bt` less gdb's own CPU time)",
            gs_deep.bt_wait,
            br_deep.bt_wait,
        ),
        ("`x/4096gx` (32 KiB of stack)", gs_deep.x, br_deep.x),
        (
            "signal passed (`handle SIGUSR1 nostop noprint pass`)",
            gs_pass,
            br_pass,
        ),
        (
            "`target remote` to a started program (symbols through vFile)",
            gs_connect,
            br_connect,
        ),
    ] {
        match (median(g), median(b)) {
            (Some(g), Some(b)) => println!(
                "| {what} | {} | {} | {:.2} |",
                fmt_time(g),
                fmt_time(b),
                b / g
            ),
            _ => println!("| {what} | - | - | (no samples) |"),
        }
    }
    println!();
    println!(
        "single packets, sent raw ({n_packets} of each per run, medians of {runs} runs): \
         round trip, and the server process's CPU time per packet"
    );
    println!("| packet | gdbserver | utrace gdb | ratio | gdbserver CPU | utrace gdb CPU |");
    println!("|---|---|---|---|---|---|");
    let names = [
        "`m` 64 B at sp (the bridge: from its stop's memory, no server call)",
        "`m` 64 B of code (the bridge: one server call)",
        "`vFile:pread` 16 KiB",
    ];
    for (i, what) in names.iter().enumerate() {
        let [g, b] = [&gs_pk[i], &br_pk[i]].map(|(t, c)| (median(t.clone()), median(c.clone())));
        match (g, b) {
            ((Some(gt), Some(gc)), (Some(bt), Some(bc))) => println!(
                "| {what} | {} | {} | {:.2} | {} | {} |",
                fmt_time(gt),
                fmt_time(bt),
                bt / gt,
                fmt_time(gc),
                fmt_time(bc)
            ),
            _ => println!("| {what} | - | - | (no samples) | - | - |"),
        }
    }
}
