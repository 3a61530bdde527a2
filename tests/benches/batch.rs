//! Batch RPC performance (issue 4's goals), side by side in one run.
//!
//! Target: `memory_pattern`, started by this program with piped stdin and
//! stdout (it prints the address of its 1 MiB pattern buffer and waits on
//! stdin), attached through an in-process server ([`utraced::Embedded`]) by
//! an engine that asks only for `death`, and held stopped (a first batch
//! with `interrupt` and `control: ACTION_HOLD`). The reads: 1,000 8-byte
//! words spread over the whole buffer, in a scattered order; every result is
//! checked against the pattern.
//!
//! Rows (each run measures every row once, in this order; the table shows
//! the median over `UTRACE_BENCH_RUNS` runs):
//!
//! 1. one `Batch` with 1,000 `read_memory` ops (the mean of
//!    [`BATCHES_PER_RUN`] calls back to back);
//! 2. 1,000 single-op `Batch` calls, one after the other (total time);
//!    goal: (1) at least 100 times faster;
//! 3. the floor: an empty `Batch` (0 ops) on the held task (the mean of
//!    [`EMPTY_PER_RUN`] calls), plus one `process_vm_readv` of the same
//!    1,000 iovecs done directly by this process (the mean of
//!    [`READV_PER_RUN`] calls); goal: (1) at most 1.5 times the floor (the
//!    table's last line gives this ratio taken within each run as well);
//! 4. gdb reading the same 1,000 words through gdbserver on loopback: a
//!    second copy of the target (a process has only one tracer), a fresh
//!    `gdbserver --attach 127.0.0.1:PORT PID` per gdb run, and
//!    `gdb -batch -nx EXE -ex 'target remote …' -x SCRIPT` where SCRIPT holds
//!    1,000 `x/1gx ADDR` (one RSP `m` packet each), timed inside gdb by
//!    its Python (`time.perf_counter()` before the first and after the
//!    last): (4) = the median of those times. A gdb without Python is timed
//!    from outside instead: the same command with an empty script (start,
//!    connect, disconnect: hundreds of ms that vary by ±100 ms here) is
//!    subtracted, (4) = median(reads) - median(empty). (4a) and (4b), the
//!    whole commands, are shown either way. Goal: (1) at least 50 times
//!    faster. gdb and gdbserver are installed with apt-get when missing;
//!    when that fails the row says why it is skipped;
//! 5. one `Batch` with one 64 MiB `read_memory` op, end to end (request to
//!    decoded reply), from a target with a 64 MiB buffer: this bench program
//!    itself, started again in target mode ([`BIG_TARGET_ENV`]), since no
//!    tracee program has a mapping that large. Goal: at least 1 GiB/s. A
//!    direct `process_vm_readv` of the same 64 MiB is shown for reference;
//! 6. the same 64 MiB through `ReadMemoryStream` (64 KiB chunks, the
//!    server reading ahead while it sends), end to end: request to the last
//!    chunk decoded and copied into a 64 MiB buffer of this program (its
//!    pages touched before, like (5a)'s). Goal: at least 1 GiB/s.
//!
//! ```text
//! cargo bench -p utrace-tests --bench batch                    # 5 runs
//! UTRACE_BENCH_RUNS=11 cargo bench -p utrace-tests --bench batch
//! ```
//!
//! Needs root (or ptrace rights over its children).

mod common;

use common::{ensure_gdb, fmt_time, free_port, median};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use utrace_client::{pb, Client};

type Raw = pb::tracer_client::TracerClient<utrace_client::Transport>;

const MEMORY_PATTERN: &str = env!("CARGO_BIN_EXE_memory_pattern");
/// memory_pattern's buffer length.
const BUF_LEN: u64 = 1 << 20;
/// Scattered reads, and their size.
const READS: usize = 1000;
const WORD: usize = 8;
/// The contiguous read of row 5.
const BIG: usize = 64 << 20;
/// Set in the environment of this program started as row 5's target.
const BIG_TARGET_ENV: &str = "UTRACE_BENCH_BATCH_BIG_TARGET";
/// Calls per run whose mean is one sample, for the rows of microseconds.
const BATCHES_PER_RUN: usize = 200;
const EMPTY_PER_RUN: usize = 1000;
const READV_PER_RUN: usize = 1000;
/// Bound on one gdb (or gdbserver start) run.
const GDB_TIMEOUT: Duration = Duration::from_secs(120);

/// memory_pattern's byte `i`.
fn pattern(i: u64) -> u8 {
    (i * 7 + 3) as u8
}

/// The big target's byte `i` (251 is prime: a misplaced page shows).
fn big_pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// The little-endian word at offset `off` of memory_pattern's buffer.
fn pattern_word(off: u64) -> u64 {
    u64::from_le_bytes(std::array::from_fn(|k| pattern(off + k as u64)))
}

/// Offsets of the 1,000 reads: one per 1,048-byte slot of the 1 MiB
/// buffer (8-aligned), visited in a scattered order (617 is prime to 1,000).
fn offsets() -> Vec<u64> {
    let slot = (BUF_LEN / READS as u64) & !7;
    (0..READS as u64)
        .map(|k| (k * 617 % READS as u64) * slot)
        .collect()
}

/// Row 5's target: this program, started again with [`BIG_TARGET_ENV`].
fn big_target_main() -> ! {
    let buf: Vec<u8> = (0..BIG as u64).map(big_pattern).collect();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "addr={:#x}", buf.as_ptr() as usize).unwrap();
        writeln!(out, "len={BIG}").unwrap();
        out.flush().unwrap();
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    std::hint::black_box(&buf);
    std::process::exit(0);
}

/// A process started by this program that printed `addr=0x…` and waits for
/// a line on stdin.
struct Target {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: u64,
}

impl Target {
    fn start(cmd: &mut Command) -> Target {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the target");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the target's address");
        let addr = line
            .trim()
            .strip_prefix("addr=0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("target printed {line:?}, not addr=0x…"));
        Target {
            child,
            stdin,
            stdout,
            addr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Let it finish (after every tracer left it).
    fn finish(mut self) {
        let _ = writeln!(self.stdin, "go");
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        match self.child.wait() {
            Ok(st) if st.success() => {}
            other => eprintln!("target {} ended badly: {other:?}", self.child.id()),
        }
    }
}

fn read_op(addr: u64, len: usize) -> pb::Op {
    pb::Op {
        op: Some(pb::op::Op::ReadMemory(pb::ReadMemory {
            addr,
            len: len as u32,
        })),
    }
}

fn batch(engine_id: u64, ops: Vec<pb::Op>, interrupt: bool) -> pb::BatchRequest {
    pb::BatchRequest {
        engine_id,
        tid: 0,
        ops,
        stop_on_error: false,
        interrupt,
    }
}

/// Attach an engine that wants only `death` and hold the process stopped.
async fn attach_and_hold(tc: &mut Raw, pid: u32) -> Result<u64, tonic::Status> {
    let r = tc
        .attach(pb::AttachRequest {
            pid,
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Death as i32],
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let hold = pb::Op {
        op: Some(pb::op::Op::Control(pb::Control {
            action: pb::Action::Hold as i32,
            signal: None,
        })),
    };
    let reply = tc
        .batch(batch(r.engine_id, vec![hold], true))
        .await?
        .into_inner();
    match reply.results.first().and_then(|r| r.result.as_ref()) {
        Some(pb::op_result::Result::Done(_)) => Ok(r.engine_id),
        other => Err(tonic::Status::internal(format!(
            "hold batch answered {other:?}"
        ))),
    }
}

/// Check a reply's reads: every result whole and equal to `expect(addr)`.
fn check_reads(
    reply: &pb::BatchReply,
    want: &[(u64, usize)],
    expect: impl Fn(u64, &[u8]) -> bool,
) -> Result<(), String> {
    if reply.results.len() != want.len() {
        return Err(format!(
            "{} results for {} ops",
            reply.results.len(),
            want.len()
        ));
    }
    for (i, (r, &(addr, len))) in reply.results.iter().zip(want).enumerate() {
        match &r.result {
            Some(pb::op_result::Result::Memory(m))
                if m.error.is_empty() && m.addr == addr && m.data.len() == len =>
            {
                if !expect(addr, &m.data) {
                    return Err(format!("result {i}: wrong bytes at {addr:#x}"));
                }
            }
            other => {
                let shown = match other {
                    Some(pb::op_result::Result::Memory(m)) => format!(
                        "memory of {} bytes at {:#x}, error {:?}",
                        m.data.len(),
                        m.addr,
                        m.error
                    ),
                    o => format!("{o:?}"),
                };
                return Err(format!("result {i} (read {len} at {addr:#x}): {shown}"));
            }
        }
    }
    Ok(())
}

/// The remote iovecs of `ranges` and a local buffer to read them into.
struct DirectRead {
    pid: libc::pid_t,
    local_buf: Vec<u8>,
    local: Vec<libc::iovec>,
    remote: Vec<libc::iovec>,
    total: usize,
}

impl DirectRead {
    fn new(pid: u32, ranges: &[(u64, usize)]) -> DirectRead {
        let total: usize = ranges.iter().map(|r| r.1).sum();
        // Touch every page now, not in the timed calls.
        let mut local_buf = vec![1u8; total];
        let mut local = Vec::with_capacity(ranges.len());
        let mut at = 0;
        for &(_, len) in ranges {
            local.push(libc::iovec {
                iov_base: local_buf[at..].as_mut_ptr().cast(),
                iov_len: len,
            });
            at += len;
        }
        let remote = ranges
            .iter()
            .map(|&(addr, len)| libc::iovec {
                iov_base: addr as usize as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        DirectRead {
            pid: pid as libc::pid_t,
            local_buf,
            local,
            remote,
            total,
        }
    }

    /// One `process_vm_readv` of every range; the bytes read.
    fn read(&mut self) -> Result<usize, std::io::Error> {
        // SAFETY: `local` points into `local_buf`, owned by `self` and not
        // moved or resized since; `remote` is only interpreted in the target.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid,
                self.local.as_ptr(),
                self.local.len() as libc::c_ulong,
                self.remote.as_ptr(),
                self.remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Read, checking it was whole; the bytes, in range order.
    fn read_whole(&mut self) -> &[u8] {
        let n = self.read().expect("process_vm_readv");
        assert_eq!(n, self.total, "process_vm_readv read short");
        &self.local_buf
    }
}

/// Row 6: read `len` bytes at `addr` through ReadMemoryStream (default
/// chunks) into `dest`, checking the chunks are back to back and whole.
async fn stream_read(
    tc: &mut Raw,
    engine_id: u64,
    addr: u64,
    dest: &mut [u8],
) -> Result<(), String> {
    let mut s = tc
        .read_memory_stream(pb::ReadMemoryStreamRequest {
            engine_id,
            tid: 0,
            addr,
            len: dest.len() as u64,
            chunk_len: 0,
            interrupt: false,
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut at = 0usize;
    while let Some(c) = s.message().await.map_err(|e| e.to_string())? {
        if !c.error.is_empty() || c.addr != addr + at as u64 || at + c.data.len() > dest.len() {
            return Err(format!(
                "chunk of {} bytes at {:#x} (error {:?}) after {at} bytes",
                c.data.len(),
                c.addr,
                c.error
            ));
        }
        dest[at..at + c.data.len()].copy_from_slice(&c.data);
        at += c.data.len();
    }
    if at != dest.len() {
        return Err(format!(
            "the stream ended after {at} of {} bytes",
            dest.len()
        ));
    }
    Ok(())
}

/// One run of the scattered rows (1, 2, 3a), in seconds.
struct Scattered {
    batch: f64,
    singles: f64,
    empty: f64,
}

async fn scattered_run(
    tc: &mut Raw,
    whole: &pb::BatchRequest,
    singles: &[pb::BatchRequest],
    empty: &pb::BatchRequest,
) -> Result<Scattered, tonic::Status> {
    // Requests are built (cloned) before the clock starts.
    let reqs: Vec<pb::BatchRequest> = (0..BATCHES_PER_RUN).map(|_| whole.clone()).collect();
    let start = Instant::now();
    for r in reqs {
        std::hint::black_box(tc.batch(r).await?);
    }
    let batch = start.elapsed().as_secs_f64() / BATCHES_PER_RUN as f64;

    let reqs: Vec<pb::BatchRequest> = singles.to_vec();
    let start = Instant::now();
    for r in reqs {
        std::hint::black_box(tc.batch(r).await?);
    }
    let singles = start.elapsed().as_secs_f64();

    let reqs: Vec<pb::BatchRequest> = (0..EMPTY_PER_RUN).map(|_| empty.clone()).collect();
    let start = Instant::now();
    for r in reqs {
        std::hint::black_box(tc.batch(r).await?);
    }
    let empty = start.elapsed().as_secs_f64() / EMPTY_PER_RUN as f64;
    Ok(Scattered {
        batch,
        singles,
        empty,
    })
}

/// Run `cmd` to its end (killed past `limit`); its output and wall time.
fn output_within(
    cmd: &mut Command,
    limit: Duration,
) -> std::io::Result<(std::process::Output, Duration)> {
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // SAFETY: kill(2) on the child this function started and has not
            // reaped yet (wait_with_output is still waiting for it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output();
    let time = start.elapsed();
    let _ = tx.send(());
    let _ = watchdog.join();
    Ok((out?, time))
}

/// One gdb run through a fresh `gdbserver --attach` on `pid`: the gdb
/// command's wall time (gdbserver's start is not counted) and its stdout.
fn gdb_once(pid: u32, exe: &str, script: &Path) -> Result<(Duration, String), String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new("gdbserver")
        .args(["--attach", &listen, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start gdbserver: {e}"))?;
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let ready = loop {
        match lines.next() {
            Some(Ok(l)) => {
                let done = l.contains("Listening on port");
                log.push(l);
                if done {
                    break true;
                }
            }
            _ => break false,
        }
    };
    // Keep reading its stderr, so its writes never fail.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let result = if ready {
        let mut gdb = Command::new("gdb");
        gdb.args([
            "-batch",
            "-nx",
            // Files (the executable, libraries) from the local disk, not
            // through the remote.
            "-ex",
            "set sysroot /",
            exe,
            "-ex",
            &format!("target remote {listen}"),
            "-x",
        ])
        .arg(script);
        match output_within(&mut gdb, GDB_TIMEOUT) {
            Ok((out, t)) if out.status.success() => {
                Ok((t, String::from_utf8_lossy(&out.stdout).into_owned()))
            }
            Ok((out, _)) => Err(format!(
                "gdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run gdb: {e}")),
        }
    } else {
        Err(format!("gdbserver did not listen: {}", log.join(" / ")))
    };
    // gdb detached on quit; gdbserver then exits. Give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match server.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                eprintln!("gdbserver {} did not exit: killing it", server.id());
                let _ = server.kill();
                let _ = server.wait();
                break;
            }
        }
    }
    let _ = drain.join();
    result
}

/// Check gdb's `x/1gx` output: one `ADDR:\t0xVALUE` line per read, right.
/// Whether this gdb runs Python (to time the reads inside it).
fn gdb_has_python() -> bool {
    Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "python print('utrace_python_ok')"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("utrace_python_ok"))
}

/// The reads' time as the timed script printed it.
fn gdb_elapsed(out: &str) -> Result<f64, String> {
    out.lines()
        .find_map(|l| l.strip_prefix("utrace_elapsed=")?.trim().parse().ok())
        .ok_or_else(|| "gdb did not print the reads' time (utrace_elapsed=)".to_string())
}

fn check_gdb(out: &str, base: u64, offs: &[u64]) -> Result<(), String> {
    let vals: Vec<(u64, u64)> = out
        .lines()
        .filter_map(|l| {
            let (a, v) = l.split_once(':')?;
            let a = a.split_whitespace().next()?.strip_prefix("0x")?;
            let v = v.trim().strip_prefix("0x")?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(v, 16).ok()?,
            ))
        })
        .collect();
    if vals.len() != offs.len() {
        return Err(format!(
            "gdb printed {} words, not {}",
            vals.len(),
            offs.len()
        ));
    }
    for (&(a, v), &off) in vals.iter().zip(offs) {
        if a != base + off || v != pattern_word(off) {
            return Err(format!(
                "gdb read {v:#x} at {a:#x}; expected {:#x} at {:#x}",
                pattern_word(off),
                base + off
            ));
        }
    }
    Ok(())
}

fn gib_per_s(bytes: usize, s: f64) -> f64 {
    bytes as f64 / s / (1u64 << 30) as f64
}

/// One table row.
struct Row {
    name: String,
    median: Option<f64>,
    /// Ratio (or throughput) and what it is.
    ratio: Option<(String, &'static str)>,
    goal: &'static str,
    met: Option<bool>,
    /// Why the row has no value.
    skipped: Option<String>,
}

impl Row {
    fn plain(name: &str, median: Option<f64>) -> Row {
        Row {
            name: name.into(),
            median,
            ratio: None,
            goal: "",
            met: None,
            skipped: None,
        }
    }
}

/// `got` is the big target's pattern from its start.
fn check_big(got: &[u8], what: &str) {
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &x)| x == big_pattern(i as u64)),
        "{what}: wrong bytes"
    );
}

fn main() {
    if std::env::var_os(BIG_TARGET_ENV).is_some() {
        big_target_main();
    }
    // `cargo bench` passes `--bench`; ignore arguments.
    let runs = common::runs(5);
    let gdb_missing = ensure_gdb().err();
    if let Some(why) = &gdb_missing {
        eprintln!("{why}: the gdb rows are skipped");
    }

    let offs = offsets();
    let scratch = std::env::temp_dir().join(format!("utrace-batch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");

    // The targets: A through utraced, B through gdbserver, C (64 MiB)
    // through utraced.
    let a = Target::start(&mut Command::new(MEMORY_PATTERN));
    let b = gdb_missing
        .is_none()
        .then(|| Target::start(&mut Command::new(MEMORY_PATTERN)));
    let exe = std::env::current_exe().expect("current_exe");
    let c = Target::start(Command::new(&exe).env(BIG_TARGET_ENV, "1"));

    let ranges: Vec<(u64, usize)> = offs.iter().map(|&o| (a.addr + o, WORD)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let srv = rt
        .block_on(utraced::Embedded::start())
        .expect("start utraced");
    let mut client = rt
        .block_on(Client::connect(&srv.uri()))
        .expect("connect to utraced");
    // A 64 MiB read's reply is over the client's default 64 MiB limit.
    let mut tc = client.raw().clone().max_decoding_message_size(usize::MAX);
    let engine_a = rt
        .block_on(attach_and_hold(&mut tc, a.pid()))
        .expect("attach and hold memory_pattern");
    let engine_c = rt
        .block_on(attach_and_hold(&mut tc, c.pid()))
        .expect("attach and hold the 64 MiB target");

    let whole = batch(
        engine_a,
        ranges.iter().map(|&(ad, l)| read_op(ad, l)).collect(),
        false,
    );
    let singles: Vec<pb::BatchRequest> = ranges
        .iter()
        .map(|&(ad, l)| batch(engine_a, vec![read_op(ad, l)], false))
        .collect();
    let empty = batch(engine_a, Vec::new(), false);
    let big_req = batch(engine_c, vec![read_op(c.addr, BIG)], false);

    // Warm up and check every path once.
    let word_ok = |addr: u64, d: &[u8]| d == pattern_word(addr - a.addr).to_le_bytes().as_slice();
    let reply = rt
        .block_on(tc.batch(whole.clone()))
        .expect("1,000-read batch")
        .into_inner();
    check_reads(&reply, &ranges, word_ok).expect("1,000-read batch");
    for (req, &r) in singles.iter().zip(&ranges).take(10) {
        let reply = rt
            .block_on(tc.batch(req.clone()))
            .expect("single read")
            .into_inner();
        check_reads(&reply, &[r], word_ok).expect("single read");
    }
    let reply = rt
        .block_on(tc.batch(empty.clone()))
        .expect("empty batch")
        .into_inner();
    assert!(reply.results.is_empty(), "empty batch: {reply:?}");
    let mut direct = DirectRead::new(a.pid(), &ranges);
    let got = direct.read_whole().to_vec();
    for (k, &off) in offs.iter().enumerate() {
        assert_eq!(
            got[k * WORD..(k + 1) * WORD],
            pattern_word(off).to_le_bytes(),
            "direct read {k}"
        );
    }
    let mut direct_big = DirectRead::new(c.pid(), &[(c.addr, BIG)]);
    assert!(
        direct_big
            .read_whole()
            .iter()
            .enumerate()
            .all(|(i, &x)| x == big_pattern(i as u64)),
        "direct 64 MiB read: wrong bytes"
    );

    // gdb scripts: 1,000 x/1gx (timed by gdb's Python when it has it), and
    // an empty one.
    let gdb_python = gdb_missing.is_none() && gdb_has_python();
    if gdb_missing.is_none() && !gdb_python {
        eprintln!("gdb has no Python: its reads are timed as (4b) - (4a), startup noise included");
    }
    let script_reads = scratch.join("reads.gdb");
    let script_empty = scratch.join("empty.gdb");
    let mut gdb_err: Option<String> = gdb_missing.clone();
    if let Some(b) = &b {
        let mut s = String::new();
        if gdb_python {
            s.push_str("python import time; utrace_t0 = time.perf_counter()\n");
        }
        for &off in &offs {
            let _ = writeln!(s, "x/1gx {:#x}", b.addr + off);
        }
        if gdb_python {
            s.push_str("python print('utrace_elapsed=%.9f' % (time.perf_counter() - utrace_t0))\n");
        }
        std::fs::write(&script_reads, s).expect("write gdb script");
        std::fs::write(&script_empty, "").expect("write gdb script");
        match gdb_once(b.pid(), MEMORY_PATTERN, &script_reads)
            .and_then(|(_, out)| check_gdb(&out, b.addr, &offs))
        {
            Ok(()) => {}
            Err(e) => {
                eprintln!("gdb warm-up failed: {e}: the gdb rows are skipped");
                gdb_err = Some(e);
            }
        }
    }

    let (mut t_batch, mut t_singles, mut t_empty, mut t_readv) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut t_gdb_reads, mut t_gdb_empty) = (Vec::new(), Vec::new());
    // The reads alone, timed inside gdb.
    let mut t_gdb_inner: Vec<f64> = Vec::new();
    let (mut t_big, mut t_big_direct, mut t_stream) = (Vec::new(), Vec::new(), Vec::new());
    // Row 6's destination, every page touched now (as (5a)'s buffer).
    let mut stream_dest = vec![1u8; BIG];
    rt.block_on(stream_read(&mut tc, engine_c, c.addr, &mut stream_dest))
        .expect("64 MiB stream");
    check_big(&stream_dest, "64 MiB stream");
    eprintln!(
        "{runs} runs; targets: memory_pattern {} (utraced), {} (gdbserver), 64 MiB {} (utraced)",
        a.pid(),
        b.as_ref().map_or("-".into(), |b| b.pid().to_string()),
        c.pid()
    );
    for run in 0..runs {
        // 1, 2, 3a.
        let s = rt
            .block_on(scattered_run(&mut tc, &whole, &singles, &empty))
            .expect("scattered batches");
        // 3b.
        let start = Instant::now();
        for _ in 0..READV_PER_RUN {
            let n = direct.read().expect("process_vm_readv");
            std::hint::black_box(n);
        }
        let readv = start.elapsed().as_secs_f64() / READV_PER_RUN as f64;
        // 4.
        let mut gdb_line = String::new();
        if let (Some(b), None) = (&b, &gdb_err) {
            let full = gdb_once(b.pid(), MEMORY_PATTERN, &script_reads).and_then(|(t, out)| {
                check_gdb(&out, b.addr, &offs)?;
                if gdb_python {
                    t_gdb_inner.push(gdb_elapsed(&out)?);
                }
                Ok(t)
            });
            let base = gdb_once(b.pid(), MEMORY_PATTERN, &script_empty).map(|(t, _)| t);
            match (full, base) {
                (Ok(f), Ok(e)) => {
                    t_gdb_reads.push(f.as_secs_f64());
                    t_gdb_empty.push(e.as_secs_f64());
                    gdb_line = format!(
                        " gdb reads {} empty {}{}",
                        fmt_time(f.as_secs_f64()),
                        fmt_time(e.as_secs_f64()),
                        t_gdb_inner
                            .last()
                            .map_or(String::new(), |t| format!(" (in gdb {})", fmt_time(*t)))
                    );
                }
                (Err(e), _) | (_, Err(e)) => eprintln!("  gdb run failed: {e}"),
            }
        }
        // 5.
        let start = Instant::now();
        let reply = rt
            .block_on(tc.batch(big_req.clone()))
            .expect("64 MiB batch")
            .into_inner();
        let big = start.elapsed().as_secs_f64();
        check_reads(&reply, &[(c.addr, BIG)], |_, d| {
            d.iter()
                .enumerate()
                .all(|(i, &x)| x == big_pattern(i as u64))
        })
        .expect("64 MiB batch");
        drop(reply);
        let start = Instant::now();
        let n = direct_big.read().expect("process_vm_readv 64 MiB");
        let big_direct = start.elapsed().as_secs_f64();
        assert_eq!(n, BIG);
        // 6.
        stream_dest.fill(0);
        let start = Instant::now();
        rt.block_on(stream_read(&mut tc, engine_c, c.addr, &mut stream_dest))
            .expect("64 MiB stream");
        let stream = start.elapsed().as_secs_f64();
        check_big(&stream_dest, "64 MiB stream");

        eprintln!(
            "  run {}: batch {} singles {} empty {} readv {}{gdb_line} 64MiB {} (direct {}, stream {})",
            run + 1,
            fmt_time(s.batch),
            fmt_time(s.singles),
            fmt_time(s.empty),
            fmt_time(readv),
            fmt_time(big),
            fmt_time(big_direct),
            fmt_time(stream)
        );
        t_batch.push(s.batch);
        t_singles.push(s.singles);
        t_empty.push(s.empty);
        t_readv.push(readv);
        t_big.push(big);
        t_big_direct.push(big_direct);
        t_stream.push(stream);
    }

    // Let the targets go.
    for id in [engine_a, engine_c] {
        if let Err(e) = rt.block_on(tc.detach(pb::DetachRequest {
            engine_id: id,
            pid: 0,
        })) {
            eprintln!("detach {id}: {e}");
        }
    }
    a.finish();
    c.finish();
    if let Some(b) = b {
        b.finish();
    }
    let _ = std::fs::remove_dir_all(&scratch);

    // The table.
    let m_batch = median(t_batch.clone()).expect("runs");
    let m_singles = median(t_singles).expect("runs");
    let m_empty = median(t_empty.clone()).expect("runs");
    let m_readv = median(t_readv.clone()).expect("runs");
    let floor = m_empty + m_readv;
    let m_big = median(t_big).expect("runs");
    let m_big_direct = median(t_big_direct).expect("runs");
    let m_stream = median(t_stream).expect("runs");
    let stream_gib = gib_per_s(BIG, m_stream);
    let singles_x = m_singles / m_batch;
    let floor_x = m_batch / floor;
    // The floor goal's ratio taken within each run (the rows move together
    // with the machine's state, so this is steadier than the ratio of the
    // medians): median and range.
    let mut within: Vec<f64> = t_batch
        .iter()
        .zip(t_empty.iter().zip(&t_readv))
        .map(|(b, (e, r))| b / (e + r))
        .collect();
    within.sort_by(f64::total_cmp);
    let within_note = match (within.first(), within.last()) {
        (Some(lo), Some(hi)) => format!(
            "(1)/(3) within runs: median {:.2} ({lo:.2}..{hi:.2})",
            median(within.clone()).unwrap_or(f64::NAN)
        ),
        _ => String::new(),
    };
    let big_gib = gib_per_s(BIG, m_big);

    let mut rows = vec![
        Row::plain("(1) Batch: 1,000 read_memory ops, one call", Some(m_batch)),
        Row {
            ratio: Some((format!("{singles_x:.1}"), "(2)/(1)")),
            goal: "(1) >= 100x faster",
            met: Some(singles_x >= 100.0),
            ..Row::plain(
                "(2) Batch: 1,000 single-op calls, sequential",
                Some(m_singles),
            )
        },
        Row::plain("(3a) empty Batch (0 ops) on the held task", Some(m_empty)),
        Row::plain(
            "(3b) process_vm_readv of the 1,000 iovecs, direct",
            Some(m_readv),
        ),
        Row {
            ratio: Some((format!("{floor_x:.2}"), "(1)/(3)")),
            goal: "(1) <= 1.5x floor",
            met: Some(floor_x <= 1.5),
            ..Row::plain("(3) floor = (3a) + (3b)", Some(floor))
        },
    ];
    let m_gdb_empty = median(t_gdb_empty);
    let m_gdb_reads = median(t_gdb_reads);
    let m_gdb_inner = median(t_gdb_inner);
    match (m_gdb_reads, m_gdb_empty) {
        (Some(r), Some(e)) => {
            let (gdb, how) = match m_gdb_inner {
                Some(inner) => (inner, "(4) gdb via gdbserver: 1,000 reads, timed in gdb"),
                None => (r - e, "(4) gdb via gdbserver: 1,000 reads = (4b)-(4a)"),
            };
            let x = gdb / m_batch;
            rows.push(Row::plain(
                "(4a) gdb: connect + disconnect (empty script)",
                Some(e),
            ));
            rows.push(Row::plain(
                "(4b) gdb: connect + 1,000 x/1gx + disconnect",
                Some(r),
            ));
            rows.push(Row {
                ratio: Some((format!("{x:.1}"), "(4)/(1)")),
                goal: "(1) >= 50x faster",
                met: Some(x >= 50.0),
                ..Row::plain(how, Some(gdb))
            });
        }
        _ => rows.push(Row {
            skipped: Some(
                gdb_err
                    .clone()
                    .unwrap_or_else(|| "every gdb run failed (see above)".into()),
            ),
            ..Row::plain("(4) gdb via gdbserver: 1,000 reads", None)
        }),
    }
    rows.push(Row {
        ratio: Some((format!("{:.2}", gib_per_s(BIG, m_big_direct)), "GiB/s")),
        ..Row::plain(
            "(5a) process_vm_readv of 64 MiB, direct",
            Some(m_big_direct),
        )
    });
    rows.push(Row {
        ratio: Some((format!("{big_gib:.2}"), "GiB/s")),
        goal: ">= 1 GiB/s",
        met: Some(big_gib >= 1.0),
        ..Row::plain("(5) Batch: one 64 MiB read_memory op", Some(m_big))
    });
    rows.push(Row {
        ratio: Some((format!("{stream_gib:.2}"), "GiB/s")),
        goal: ">= 1 GiB/s",
        met: Some(stream_gib >= 1.0),
        ..Row::plain(
            "(6) ReadMemoryStream: 64 MiB, 64 KiB chunks",
            Some(m_stream),
        )
    });

    let mut table = String::new();
    let _ = writeln!(
        table,
        "target: memory_pattern, held; 1,000 scattered 8-byte reads over its 1 MiB buffer; \
         64 MiB from a second target; median of {runs} runs\n"
    );
    let _ = writeln!(
        table,
        "{:<50} {:>11} {:>8} {:<8} {:<20} met",
        "variant", "median", "ratio", "of", "goal"
    );
    for r in &rows {
        if let Some(why) = &r.skipped {
            let _ = writeln!(table, "{:<50} {:>11}  {why}", r.name, "skipped");
            continue;
        }
        let (ratio, of) = r.ratio.clone().unwrap_or_default();
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        let _ = writeln!(
            table,
            "{:<50} {:>11} {ratio:>8} {of:<8} {:<20} {met}",
            r.name,
            r.median.map_or("-".into(), fmt_time),
            r.goal
        );
    }
    let _ = writeln!(
        table,
        "\n(1), (3a), (3b): mean of {BATCHES_PER_RUN}, {EMPTY_PER_RUN} and {READV_PER_RUN} calls per run; \
         (2): total of 1,000 calls; (4): medians of gdb runs, each on a fresh gdbserver\n\
         {within_note}"
    );
    print!("{table}");
    std::io::stdout().flush().expect("flush");
    drop(tc);
    drop(client);
    rt.block_on(srv.stop()).expect("stop utraced");
}
