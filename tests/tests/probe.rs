//! Probes through a real server: a program calling a function with known
//! arguments a known number of times, probed by uprobe (and by syscall),
//! aggregated in the server; exact counts, sums, histograms and strings;
//! two clients on one site; nothing left behind; bad input named.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};

use tokio_stream::StreamExt;
use utrace_client::{pb, Client};

use common::{server, Lines, TIMEOUT};

/// `probe_target calls N ROUNDS`, waiting for its first round.
fn target(n: u32, rounds: u32) -> (Child, Lines, u32) {
    let mut child = std::process::Command::new(tracee!("probe_target"))
        .args(["calls", &n.to_string(), &rounds.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start probe_target");
    let mut out = Lines::from_reader(child.stdout.take().expect("stdout"));
    let ready = out.next();
    assert!(ready.starts_with("ready "), "{ready}");
    let pid = child.id();
    (child, out, pid)
}

/// Let the target make one round of calls, and wait for it.
fn round(child: &mut Child, out: &mut Lines) {
    use std::io::Write;
    let stdin = child.stdin.as_mut().expect("stdin");
    stdin.write_all(b"go\n").expect("write");
    stdin.flush().expect("flush");
    let done = out.next();
    assert!(done.starts_with("done "), "{done}");
}

fn e(x: pb::probe_expr::Expr) -> pb::ProbeExpr {
    pb::ProbeExpr { expr: Some(x) }
}

fn arg(i: u32) -> pb::ProbeExpr {
    e(pb::probe_expr::Expr::Arg(i))
}

/// USDT marker `utrace_test:NAME` of the program.
fn usdt(name: &str) -> pb::ProbePoint {
    pb::ProbePoint {
        point: Some(pb::probe_point::Point::Usdt(pb::UsdtPoint {
            provider: "utrace_test".into(),
            name: name.into(),
            ..Default::default()
        })),
    }
}

fn retval() -> pb::ProbeExpr {
    e(pb::probe_expr::Expr::Builtin(
        pb::ProbeBuiltin::Retval as i32,
    ))
}

fn int(i: i64) -> pb::ProbeExpr {
    e(pb::probe_expr::Expr::Int(i))
}

fn bin(op: pb::ProbeBinaryOp, l: pb::ProbeExpr, r: pb::ProbeExpr) -> pb::ProbeExpr {
    e(pb::probe_expr::Expr::Binary(Box::new(pb::ProbeBinary {
        op: op as i32,
        left: Some(Box::new(l)),
        right: Some(Box::new(r)),
    })))
}

fn function(symbol: &str) -> pb::ProbePoint {
    pb::ProbePoint {
        point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
            symbol: symbol.into(),
            ..Default::default()
        })),
    }
}

fn upd(map: &str, agg: pb::ProbeAggregation, value: Option<pb::ProbeExpr>) -> pb::MapUpdate {
    pb::MapUpdate {
        map: map.into(),
        agg: agg as i32,
        value,
        ..Default::default()
    }
}

fn probe_pid(pid: u32, clauses: Vec<pb::ProbeClause>) -> pb::ProbeRequest {
    pb::ProbeRequest {
        target: Some(pb::probe_request::Target::Pid(pid)),
        clauses,
        ..Default::default()
    }
}

/// A Session on `d` whose sync engine stops at a breakpoint at `addr` of
/// process `pid` (an int3, which every other engine there shares).
async fn stopping_breakpoint(d: &mut Client, pid: u32, addr: u64) -> utrace_client::Session {
    let mut sess = d.session().await.expect("session");
    stop_at(&mut sess, pid, addr).await;
    sess
}

/// A sync engine of `sess` on process `pid` that stops at a breakpoint at
/// `addr`; its id.
async fn stop_at(sess: &mut utrace_client::Session, pid: u32, addr: u64) -> u64 {
    let at = sess
        .attach(
            pid,
            pb::EngineSpec {
                sync: true,
                events: vec![pb::EventKind::Breakpoint as i32],
                ..Default::default()
            },
        )
        .await
        .expect("attach");
    let reply = sess
        .batch(pb::BatchRequest {
            engine_id: at.engine_id,
            tid: pid,
            interrupt: true,
            ops: vec![pb::Op {
                op: Some(pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint {
                    addr,
                    ..Default::default()
                })),
            }],
            ..Default::default()
        })
        .await
        .expect("insert");
    assert!(
        matches!(
            reply.results[0].result,
            Some(pb::op_result::Result::Done(_))
        ),
        "{reply:?}"
    );
    at.engine_id
}

/// Resume every breakpoint stop `sess` reports until `stops` (counted
/// here) reaches `until`.
async fn resume_stops(sess: &mut utrace_client::Session, stops: &mut u64, until: u64) {
    while *stops < until {
        let ev = tokio::time::timeout(TIMEOUT, sess.next())
            .await
            .unwrap_or_else(|_| panic!("stopped {stops} times, then no more"))
            .expect("session open")
            .expect("no error");
        if let utrace_client::session::SessionEvent::Report(r) = ev {
            if matches!(r.kind, Some(pb::event::Kind::Breakpoint(_))) {
                *stops += 1;
                sess.decide(utrace_client::session::Decision::resume(&r))
                    .await
                    .expect("decide");
            }
        }
    }
}

/// One round of the program (on a thread of its own) while `sess`
/// resumes each of its 300 stops at a stopping breakpoint; the program
/// and the stops resumed.
async fn round_resuming(
    sess: &mut utrace_client::Session,
    mut child: Child,
    mut out: Lines,
) -> (Child, Lines, u64) {
    let runner = tokio::task::spawn_blocking(move || {
        round(&mut child, &mut out);
        (child, out)
    });
    let mut stops = 0;
    resume_stops(sess, &mut stops, 300).await;
    let (child, out) = runner.await.expect("round");
    (child, out, stops)
}

/// What a probe stream said.
#[derive(Default, Debug)]
struct Seen {
    engine_id: u64,
    started: Option<pb::ProbeStarted>,
    snapshots: Vec<pb::ProbeSnapshot>,
    events: Vec<pb::ProbeEvent>,
    ended: Option<String>,
}

impl Seen {
    fn last(&self) -> &pb::ProbeSnapshot {
        self.snapshots.last().expect("a snapshot")
    }
}

/// Start a probe and read its `started`.
async fn start(
    c: &mut Client,
    req: pb::ProbeRequest,
) -> Result<(tonic::Streaming<pb::ProbeReport>, Seen), tonic::Status> {
    let mut s = c.raw().probe(req).await?.into_inner();
    let first = tokio::time::timeout(TIMEOUT, s.next())
        .await
        .expect("started in time")
        .expect("a first message")?;
    let Some(pb::probe_report::Kind::Started(st)) = first.kind else {
        panic!("first message is not `started`: {first:?}");
    };
    let seen = Seen {
        engine_id: st.engine_id,
        started: Some(st),
        ..Seen::default()
    };
    Ok((s, seen))
}

/// Read the stream to its end.
async fn finish(mut s: tonic::Streaming<pb::ProbeReport>, mut seen: Seen) -> Seen {
    loop {
        let m = tokio::time::timeout(TIMEOUT, s.next())
            .await
            .expect("the probe stream ends in time");
        let Some(m) = m else { break };
        match m.expect("stream item").kind {
            Some(pb::probe_report::Kind::Snapshot(x)) => seen.snapshots.push(x),
            Some(pb::probe_report::Kind::Event(x)) => seen.events.push(x),
            Some(pb::probe_report::Kind::Ended(x)) => seen.ended = Some(x.reason),
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

/// Map name → key (rendered) → entry.
fn maps(s: &pb::ProbeSnapshot) -> BTreeMap<String, BTreeMap<String, pb::ProbeEntry>> {
    s.maps
        .iter()
        .map(|m| {
            let entries = m
                .entries
                .iter()
                .map(|en| {
                    let key = en
                        .key
                        .iter()
                        .map(|v| match &v.value {
                            Some(pb::probe_value::Value::Int(i)) => i.to_string(),
                            Some(pb::probe_value::Value::Str(s)) => s.clone(),
                            Some(pb::probe_value::Value::Buf(b)) => format!("{b:?}"),
                            Some(pb::probe_value::Value::Stack(s)) => s
                                .frames
                                .iter()
                                .map(|f| format!("{}+{}", f.symbol, f.offset))
                                .collect::<Vec<_>>()
                                .join(";"),
                            None => "?".into(),
                        })
                        .collect::<Vec<_>>()
                        .join(",");
                    (key, en.clone())
                })
                .collect();
            (m.name.clone(), entries)
        })
        .collect()
}

/// Whether bpftrace runs here; if not, says why the test is skipped (CI
/// installs it).
fn bpftrace_here() -> bool {
    let bt = std::process::Command::new("bpftrace")
        .arg("--version")
        .output();
    let ok = bt.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: bpftrace is not installed (apt-get install -y bpftrace): {bt:?}");
    }
    ok
}

/// A copy of probe_target named `file` in a scratch directory `tag` of
/// this test process: a file location of its own (uprobes and int3s are
/// per file location, and bpftrace's probes see every process): (the
/// directory, the copy).
fn own_copy(tag: &str, file: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let copy = dir.join(file);
    std::fs::copy(tracee!("probe_target"), &copy).expect("copy the program");
    (dir, copy)
}

/// tracefs with the syscall tracepoints (which bpftrace needs, utrace
/// not), mounted if it is not.
fn tracefs_mounted() -> bool {
    std::path::Path::new("/sys/kernel/tracing/events/syscalls").exists()
        || std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status()
            .is_ok_and(|s| s.success())
}

/// Uprobe events and rings the server holds open.
async fn uprobes_open(c: &mut Client) -> (u32, u32) {
    let info = c.server_info().await.expect("server info");
    (info.uprobe_events, info.uprobe_rings)
}

/// The function's first bytes in the process, and in its file.
fn code_bytes(pid: u32, addr: u64) -> (Vec<u8>, Vec<u8>) {
    use std::os::unix::fs::FileExt;
    let mut mem = vec![0u8; 8];
    std::fs::File::open(format!("/proc/{pid}/mem"))
        .and_then(|f| f.read_exact_at(&mut mem, addr))
        .expect("read the process's code");
    // The file offset: the mapping holding addr.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    for l in maps.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (a, b) = f[0].split_once('-').expect("range");
        let (a, b) = (
            u64::from_str_radix(a, 16).expect("hex"),
            u64::from_str_radix(b, 16).expect("hex"),
        );
        if a <= addr && addr < b {
            let off = u64::from_str_radix(f[2], 16).expect("hex") + (addr - a);
            let mut file = vec![0u8; 8];
            std::fs::File::open(f[5])
                .and_then(|f| f.read_exact_at(&mut file, off))
                .expect("read the file");
            return (mem, file);
        }
    }
    panic!("{addr:#x} not mapped in {pid}");
}

/// count(), sum(arg0), hist(arg0), a str(arg1) key and a predicate, on
/// 3,000 calls with known arguments: every figure exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_are_exact() {
    let (_srv, mut c) = server().await;
    let (mut child, mut out, pid) = target(3000, 1);
    use pb::ProbeAggregation as A;
    let names_key = pb::MapUpdate {
        keys: vec![e(pb::probe_expr::Expr::StrAt(Box::new(pb::ProbeStr {
            addr: Some(Box::new(arg(1))),
            len: 0,
        })))],
        ..upd("@names", A::Count, None)
    };
    let req = probe_pid(
        pid,
        vec![
            pb::ProbeClause {
                points: vec![function("probed_fn")],
                updates: vec![
                    upd("@calls", A::Count, None),
                    upd("@sum", A::Sum, Some(arg(0))),
                    upd("@h", A::Hist, Some(arg(0))),
                    upd("@stats", A::Stats, Some(arg(0))),
                    names_key,
                ],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![function("probed_fn")],
                predicate: Some(bin(pb::ProbeBinaryOp::Gt, arg(0), int(5))),
                updates: vec![upd("@big", A::Count, None)],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
                        symbol: "probed_fn".into(),
                        on_return: true,
                        ..Default::default()
                    })),
                }],
                updates: vec![
                    upd("@r", A::Sum, Some(retval())),
                    upd("@rh", A::Hist, Some(retval())),
                ],
                ..Default::default()
            },
        ],
    );
    let (s, seen) = start(&mut c, req).await.expect("probe starts");
    let st = seen.started.clone().expect("started");
    assert_eq!(st.pid, pid);
    assert_eq!(st.points.len(), 3);
    assert!(st.points.iter().all(|p| p.address != 0 && !p.pending));
    assert!(st.points[0].binary.ends_with("probe_target"), "{st:?}");
    round(&mut child, &mut out);
    c.detach(seen.engine_id)
        .await
        .expect("detach ends the probe");
    let seen = finish(s, seen).await;
    assert_eq!(seen.ended.as_deref(), Some("detached"));
    let last = seen.last();
    assert!(last.r#final);
    let counters = last.counters.expect("counters");
    assert_eq!(counters.hits_lost, 0, "the kernel lost hits: {counters:?}");
    assert_eq!(counters.hits, 9000, "{counters:?}");
    let m = maps(last);
    assert_eq!(m["@calls"][""].value, 3000);
    // sum of i % 10 over 0..3000: 300 × 45.
    assert_eq!(m["@sum"][""].value, 13_500);
    // i % 10 > 5: 6, 7, 8, 9.
    assert_eq!(m["@big"][""].value, 1200);
    let stats = &m["@stats"][""];
    assert_eq!((stats.count, stats.sum, stats.value), (3000, 13_500, 4));
    let hist: Vec<(i64, i64, u64)> = m["@h"][""]
        .buckets
        .iter()
        .map(|b| (b.low, b.high, b.count))
        .collect();
    assert_eq!(
        hist,
        vec![
            (0, 0, 300),
            (1, 1, 300),
            (2, 3, 600),
            (4, 7, 1200),
            (8, 15, 600)
        ]
    );
    // The return probe: probed_fn returns arg0 + 1.
    assert_eq!(m["@r"][""].value, 13_500 + 3000);
    let rhist: Vec<(i64, i64, u64)> = m["@rh"][""]
        .buckets
        .iter()
        .map(|b| (b.low, b.high, b.count))
        .collect();
    assert_eq!(
        rhist,
        vec![(1, 1, 300), (2, 3, 600), (4, 7, 1200), (8, 15, 900)]
    );
    let names: Vec<(&str, i64)> = m["@names"]
        .iter()
        .map(|(k, v)| (k.as_str(), v.value))
        .collect();
    assert_eq!(
        names,
        vec![("alpha", 1000), ("beta", 1000), ("gamma", 1000)]
    );
    // The probe is gone: the program's code is its file's again.
    let addr = st.points[0].address;
    let (mem, file) = code_bytes(pid, addr);
    assert_eq!(mem, file);
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Two clients probe one function of one process with different
/// aggregations: both exact; one leaves and the other's counts go on;
/// after both, no perf descriptor is left and the code is the file's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_a_site_and_leave_nothing_behind() {
    let (srv, mut a) = server().await;
    let mut b = Client::connect(&srv.uri()).await.expect("second client");
    let (mut child, mut out, pid) = target(1000, 2);
    assert_eq!(uprobes_open(&mut a).await, (0, 0));
    use pb::ProbeAggregation as A;
    let one = |u: pb::MapUpdate| {
        probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![function("probed_fn")],
                updates: vec![u],
                ..Default::default()
            }],
        )
    };
    let (sa, seen_a) = start(&mut a, one(upd("@n", A::Count, None)))
        .await
        .expect("a starts");
    let (sb, seen_b) = start(&mut b, one(upd("@s", A::Sum, Some(arg(0)))))
        .await
        .expect("b starts");
    let addr = seen_a.started.as_ref().expect("a").points[0].address;
    assert_eq!(addr, seen_b.started.as_ref().expect("b").points[0].address);
    // One kernel uprobe event (one thread, one site) serves both.
    assert_eq!(uprobes_open(&mut a).await, (1, 1));
    round(&mut child, &mut out);
    a.detach(seen_a.engine_id).await.expect("a leaves");
    let seen_a = finish(sa, seen_a).await;
    assert_eq!(seen_a.last().counters.expect("counters").hits_lost, 0);
    assert_eq!(maps(seen_a.last())["@n"][""].value, 1000);
    round(&mut child, &mut out);
    b.detach(seen_b.engine_id).await.expect("b leaves");
    let seen_b = finish(sb, seen_b).await;
    // Two rounds of 100 × 45.
    assert_eq!(maps(seen_b.last())["@s"][""].value, 9000);
    assert_eq!(seen_b.last().counters.expect("counters").hits_lost, 0);
    // Nothing left: uprobe events and rings, code, tracer.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while uprobes_open(&mut a).await != (0, 0) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(uprobes_open(&mut a).await, (0, 0), "uprobes left open");
    let (mem, file) = code_bytes(pid, addr);
    assert_eq!(mem, file);
    while common::proc_status(pid as i32, "TracerPid").is_some_and(|t| t != "0")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        common::proc_status(pid as i32, "TracerPid").as_deref(),
        Some("0")
    );
    drop(child.stdin.take());
    let _ = child.wait();
}

/// A spawned program: its library functions are placed when it maps
/// them, syscalls are probed too, and its exit ends the probe with a
/// final snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_program_is_probed_to_its_exit() {
    let (_srv, mut c) = server().await;
    use pb::ProbeAggregation as A;
    let req = pb::ProbeRequest {
        target: Some(pb::probe_request::Target::Spawn(pb::ProbeSpawn {
            argv: vec![tracee!("probe_target").into(), "run".into(), "500".into()],
            ..Default::default()
        })),
        clauses: vec![
            pb::ProbeClause {
                points: vec![function("probed_fn")],
                updates: vec![upd("@calls", A::Count, None)],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
                        binary: "libc".into(),
                        symbol: "write".into(),
                        ..Default::default()
                    })),
                }],
                updates: vec![upd("@writes", A::Count, None)],
                emit_event: true,
                event_values: vec![arg(2)],
                ..Default::default()
            },
            // The USDT marker before each call, with the same arguments.
            pb::ProbeClause {
                points: vec![usdt("tick")],
                updates: vec![
                    upd("@us", A::Sum, Some(arg(0))),
                    pb::MapUpdate {
                        keys: vec![e(pb::probe_expr::Expr::StrAt(Box::new(pb::ProbeStr {
                            addr: Some(Box::new(arg(1))),
                            len: 0,
                        })))],
                        ..upd("@un", A::Count, None)
                    },
                ],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Syscall(pb::SyscallPoint {
                        name: "write".into(),
                        exit: true,
                    })),
                }],
                updates: vec![upd(
                    "@written",
                    A::Sum,
                    Some(e(pb::probe_expr::Expr::Builtin(
                        pb::ProbeBuiltin::Retval as i32,
                    ))),
                )],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let (s, seen) = start(&mut c, req).await.expect("probe starts");
    let st = seen.started.as_ref().expect("started");
    assert!(
        st.points.iter().any(|p| p.pending),
        "libc is not loaded at exec: {st:?}"
    );
    let seen = finish(s, seen).await;
    assert_eq!(seen.ended.as_deref(), Some("the process exited"));
    let last = seen.last();
    assert!(last.r#final);
    let m = maps(last);
    assert_eq!(m["@calls"][""].value, 500);
    // 50 rounds of 0..9, and names in turn from "alpha".
    assert_eq!(m["@us"][""].value, 50 * 45);
    assert_eq!(m["@un"]["alpha"].value, 167);
    assert_eq!(m["@un"]["gamma"].value, 166);
    // "done 0 SUM\n": one write through libc, its length in arg2 and
    // returned by the syscall.
    let line = format!("done 0 {}\n", (0..500u64).map(|i| i % 10 + 1).sum::<u64>());
    assert_eq!(m["@writes"][""].value, 1, "{m:?}");
    assert_eq!(m["@written"][""].value, line.len() as i64);
    assert_eq!(seen.events.len(), 1);
    assert_eq!(
        seen.events[0].values[0].value,
        Some(pb::probe_value::Value::Int(line.len() as i64))
    );
}

/// Bad requests are refused naming the field or the missing thing, and
/// leave nothing attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_probes_are_named_and_leave_nothing() {
    let (_srv, mut c) = server().await;
    let (mut child, _out, pid) = target(10, 1);
    use pb::ProbeAggregation as A;
    let clause = |point: pb::ProbePoint, u: pb::MapUpdate, pred: Option<pb::ProbeExpr>| {
        probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![point],
                predicate: pred,
                updates: vec![u],
                ..Default::default()
            }],
        )
    };
    let count = || upd("@n", A::Count, None);
    let cases: Vec<(pb::ProbeRequest, tonic::Code, &str)> = vec![
        (
            clause(function("no_such_function"), count(), None),
            tonic::Code::NotFound,
            "no symbol \"no_such_function\"",
        ),
        (
            clause(usdt("no_such_marker"), count(), None),
            tonic::Code::NotFound,
            "no USDT marker utrace_test:no_such_marker",
        ),
        (
            clause(
                pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Address(0x10)),
                },
                count(),
                None,
            ),
            tonic::Code::InvalidArgument,
            "outside every mapping",
        ),
        (
            clause(
                pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
                        binary: "libnothere".into(),
                        symbol: "f".into(),
                        ..Default::default()
                    })),
                },
                count(),
                None,
            ),
            tonic::Code::NotFound,
            "no library named libnothere",
        ),
        (
            clause(function("probed_fn"), count(), Some(arg(9))),
            tonic::Code::InvalidArgument,
            "clauses[0].predicate.arg: arg9 does not exist",
        ),
        (
            clause(
                function("probed_fn"),
                count(),
                Some(e(pb::probe_expr::Expr::Register("xmm99".into()))),
            ),
            tonic::Code::InvalidArgument,
            "is not a register a probe sees",
        ),
        (
            clause(
                function("probed_fn"),
                pb::MapUpdate {
                    lhist_min: 0,
                    lhist_max: 10,
                    lhist_step: 0,
                    ..upd("@l", A::Lhist, Some(arg(0)))
                },
                None,
            ),
            tonic::Code::InvalidArgument,
            "clauses[0].updates[0].lhist_step",
        ),
        (
            clause(
                pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Syscall(pb::SyscallPoint {
                        name: "no_such_call".into(),
                        exit: false,
                    })),
                },
                count(),
                None,
            ),
            tonic::Code::InvalidArgument,
            "clauses[0].points[0].syscall.name",
        ),
        (
            clause(
                pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Syscall(pb::SyscallPoint {
                        name: "%nonsense".into(),
                        exit: false,
                    })),
                },
                count(),
                None,
            ),
            tonic::Code::InvalidArgument,
            "is not a syscall class; the classes are %file",
        ),
        (
            clause(
                function("probed_fn"),
                pb::MapUpdate {
                    keys: vec![e(pb::probe_expr::Expr::Ustack(pb::ProbeStack {
                        depth: 500,
                    }))],
                    ..count()
                },
                None,
            ),
            tonic::Code::InvalidArgument,
            "clauses[0].updates[0].keys[0].ustack.depth: 500 frames is too deep",
        ),
    ];
    for (req, code, words) in cases {
        let err = start(&mut c, req).await.expect_err("refused");
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(words), "{words:?} not in {err:?}");
    }
    // Nothing attached: the process is not traced, no engine is listed.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while common::proc_status(pid as i32, "TracerPid").is_some_and(|t| t != "0")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        common::proc_status(pid as i32, "TracerPid").as_deref(),
        Some("0")
    );
    assert!(c.list_tasks(pid).await.expect("list").is_empty());
    drop(child.stdin.take());
    let _ = child.wait();
}

/// A probe (uprobe) and a breakpoint a Session engine stops at, at one
/// address: the site becomes an int3 for both, and both see every hit.
/// (At probed_fn+1, its second instruction: a location no other test
/// uses, since an int3 where uprobes are turns them into int3s in every
/// process mapping the file, by design: see `uprobe::Keys`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_and_a_stopping_breakpoint_share_a_site() {
    let (srv, mut c) = server().await;
    let mut d = Client::connect(&srv.uri()).await.expect("second client");
    let (child, out, pid) = target(300, 1);
    use pb::ProbeAggregation as A;
    let (s, seen) = start(
        &mut c,
        probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
                        symbol: "probed_fn".into(),
                        offset: 1,
                        ..Default::default()
                    })),
                }],
                updates: vec![upd("@n", A::Count, None), upd("@s", A::Sum, Some(arg(0)))],
                ..Default::default()
            }],
        ),
    )
    .await
    .expect("probe starts");
    let addr = seen.started.as_ref().expect("started").points[0].address;
    let mut sess = stopping_breakpoint(&mut d, pid, addr).await;
    // A return probe cannot go where an int3 serves the site.
    let err = start(
        &mut c,
        probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
                        symbol: "probed_fn".into(),
                        offset: 1,
                        exact: true,
                        on_return: true,
                        ..Default::default()
                    })),
                }],
                updates: vec![upd("@r", A::Count, None)],
                ..Default::default()
            }],
        ),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("no return probe"), "{err:?}");
    // The program runs its round while this client resumes every stop.
    let (mut child, _out, _stops) = round_resuming(&mut sess, child, out).await;
    sess.close();
    c.detach(seen.engine_id).await.expect("detach");
    let seen = finish(s, seen).await;
    let m = maps(seen.last());
    assert_eq!(m["@n"][""].value, 300);
    assert_eq!(m["@s"][""].value, 30 * 45);
    drop(child.stdin.take());
    let _ = child.wait();
}

/// One file location, two processes: process A probed there (uprobes),
/// then process B gets a breakpoint a Session engine stops at. The
/// kernel has one uprobe per location for every process, and it takes
/// an int3 of ours there for its own and erases it at its first hit: so
/// A's probe becomes an int3 too, before B runs again. Both see every hit
/// then, and after A's probe leaves (its uprobe's removal writes the
/// original byte over B's int3 too: written again), B's breakpoint still
/// stops. (At probed_fn+4, a location no other test uses.)
///
/// While A's uprobe is being taken out (the kernel waits for RCU grace
/// periods: 64 ms here), A's calls hit nothing: the test lets that pass
/// before A runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uprobes_and_an_int3_at_one_location_in_two_processes() {
    let (srv, mut c) = server().await;
    let mut d = Client::connect(&srv.uri()).await.expect("second client");
    let (mut a_child, mut a_out, a_pid) = target(300, 2);
    let (mut b_child, mut b_out, b_pid) = target(300, 2);
    use pb::ProbeAggregation as A;
    let at4 = || pb::ProbePoint {
        point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
            symbol: "probed_fn".into(),
            offset: 4,
            ..Default::default()
        })),
    };
    let (s, seen) = start(
        &mut c,
        probe_pid(
            a_pid,
            vec![pb::ProbeClause {
                points: vec![at4()],
                updates: vec![upd("@n", A::Count, None)],
                ..Default::default()
            }],
        ),
    )
    .await
    .expect("probe starts");
    // B's address of the same location.
    let b_addr = {
        let (sb, seen_b) = start(
            &mut d,
            probe_pid(
                b_pid,
                vec![pb::ProbeClause {
                    points: vec![at4()],
                    updates: vec![upd("@n", A::Count, None)],
                    ..Default::default()
                }],
            ),
        )
        .await
        .expect("locating in B");
        let addr = seen_b.started.as_ref().expect("started").points[0].address;
        d.detach(seen_b.engine_id).await.expect("detach");
        finish(sb, seen_b).await;
        addr
    };
    let mut sess = stopping_breakpoint(&mut d, b_pid, b_addr).await;
    // A's probe is an int3 now: the server shows no uprobe (and answers
    // only once the switch is done).
    assert_eq!(uprobes_open(&mut c).await, (0, 0));
    let mut b_stops = 0;
    for r in 0..2 {
        // Round r of both programs at once; after the first, A's probe goes.
        let runner = tokio::task::spawn_blocking(move || {
            round(&mut a_child, &mut a_out);
            round(&mut b_child, &mut b_out);
            (a_child, a_out, b_child, b_out)
        });
        resume_stops(&mut sess, &mut b_stops, 300 * (r + 1)).await;
        (a_child, a_out, b_child, b_out) = runner.await.expect("rounds");
        if r == 0 {
            c.detach(seen.engine_id).await.expect("detach A's probe");
        }
    }
    let seen = finish(s, seen).await;
    let m = maps(seen.last());
    assert_eq!(
        m.get("@n").and_then(|m| m.get("")).map(|e| e.value),
        Some(300),
        "{:?}",
        seen.last()
    );
    sess.close();
    for mut ch in [a_child, b_child] {
        drop(ch.stdin.take());
        let _ = ch.wait();
    }
}

/// `utrace probe` on bpftrace one-liners prints what bpftrace 0.17 prints
/// for the same program and command (lines compared as sets: both sort a
/// map by value, and break ties differently; the "Attaching N probes"
/// line aside, which counts differently). Skipped, with the reason, only
/// where bpftrace is missing or cannot attach (CI installs it).
#[test]
fn the_cli_prints_what_bpftrace_prints() {
    if !bpftrace_here() {
        return;
    }
    // A copy of the program of its own: bpftrace's uprobes (and its
    // tracepoints' comm filter) are system-wide, and other tests of this
    // file run probe_target at the same time.
    let (dir, copy) = own_copy("utrace-bt", "probe_target_bt");
    let signals = dir.join("signals_bt");
    std::fs::copy(tracee!("signals"), &signals).expect("copy the program");
    let target = copy.to_str().expect("path");
    let utrace = common::users::workspace_bin("utrace");
    // bpftrace finds syscall tracepoints in tracefs, which this VM does
    // not mount at boot (utrace needs no tracefs).
    let tracefs = tracefs_mounted();
    let mut programs = vec![
        format!(
            "uprobe:{target}:probed_fn /arg0 > 5/ {{ @big = count(); @s = sum(arg0); \
             @h = lhist(arg0, 0, 10, 2); @st = stats(arg0); @[str(arg1)] = count(); \
             @hh = hist(arg0); @mn = min(arg0); @mx = max(arg0); @av = avg(arg0); }}"
        ),
        format!(
            "uprobe:{target}:probed_fn /arg0 == 9 && str(arg1) != \"beta\"/ \
             {{ printf(\"%d %s %5d|%-6s|\\n\", arg0, str(arg1), arg0 * 2, str(arg1)); }}"
        ),
        format!(
            "uretprobe:{target}:probed_fn {{ @r = sum(retval); @rh = hist(retval); \
             @rc[retval] = count(); }}"
        ),
        // The program is gone when the last hits are taken: its name was
        // read while it ran.
        format!("uprobe:{target}:probed_fn {{ @[comm] = count(); }}"),
        format!(
            "usdt:{target}:utrace_test:tick /arg0 > 5/ {{ @s = sum(arg0); \
             @[str(arg1)] = count(); @p[probe] = count(); }}"
        ),
    ];
    if tracefs {
        programs.push(
            "tracepoint:syscalls:sys_enter_write /comm == \"probe_target_bt\"/ \
             { @[comm, args->fd] = count(); @bytes = sum(args->count); }"
                .to_string(),
        );
    } else {
        eprintln!(
            "SKIP (syscall one-liner only): tracefs cannot be mounted, bpftrace has no tracepoints"
        );
    }
    let cmd = format!("{target} run 300");
    let run = |prog: &[&str], args: &[&str]| -> Vec<String> {
        let out = std::process::Command::new(prog[0])
            .args(&prog[1..])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{prog:?} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A JSON line is compared as its value (an object's keys in any
        // order: serde_json's maps are sorted).
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("Attaching "))
            .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) if v.is_object() => v.to_string(),
                _ => l.to_string(),
            })
            .collect();
        lines.sort();
        lines
    };
    for p in &programs {
        for fmt in ["text", "json"] {
            let ours = run(
                &[utrace.to_str().expect("path"), "probe"],
                &["-f", fmt, "-e", p, "-c", &cmd],
            );
            let theirs = run(&["bpftrace"], &["-f", fmt, "-e", p, "-c", &cmd]);
            if theirs.is_empty() {
                eprintln!("SKIP: bpftrace printed nothing for {p} (cannot attach here?)");
                return;
            }
            let theirs: Vec<String> = if fmt == "json" {
                theirs
                    .into_iter()
                    .filter(|l| !l.contains("attached_probes"))
                    .collect()
            } else {
                theirs
            };
            let ours: Vec<String> = ours
                .into_iter()
                .filter(|l| !l.contains("attached_probes"))
                .collect();
            assert_eq!(ours, theirs, "-f {fmt} -e {p}");
        }
    }
    // Signals and the exec of a program, at bpftrace's tracepoints.
    if tracefs {
        let sig = "tracepoint:signal:signal_deliver /comm == \"signals_bt\"/ { @[args->sig] = count(); } \
                   tracepoint:sched:sched_process_exec /comm == \"signals_bt\"/ { @exec = count(); }";
        for fmt in ["text", "json"] {
            let cmd = format!("{} 10 5", signals.display());
            let ours = run(
                &[utrace.to_str().expect("path"), "probe"],
                &["-f", fmt, "-e", sig, "-c", &cmd],
            );
            let theirs = run(&["bpftrace"], &["-f", fmt, "-e", sig, "-c", &cmd]);
            let drop_attach = |v: Vec<String>| -> Vec<String> {
                v.into_iter()
                    .filter(|l| !l.contains("attached_probes"))
                    .collect()
            };
            assert_eq!(drop_attach(ours), drop_attach(theirs), "-f {fmt} -e {sig}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A probe whose clauses only count (no predicate, keys the thread
/// gives) is served by counting uprobe events: no sample and no ring per
/// hit, counts read when asked. A client needing values joining the site
/// turns it into sampling events, with no hit lost or counted twice
/// while the program is idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_probes_take_no_samples() {
    let (srv, mut a) = server().await;
    let mut b = Client::connect(&srv.uri()).await.expect("second client");
    let (mut child, mut out, pid) = target(600, 2);
    use pb::ProbeAggregation as A;
    let at = || pb::ProbePoint {
        point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
            symbol: "probed_fn".into(),
            offset: 8,
            exact: true,
            ..Default::default()
        })),
    };
    let builtin = |b: pb::ProbeBuiltin| e(pb::probe_expr::Expr::Builtin(b as i32));
    let req = pb::ProbeRequest {
        snapshot_interval_ms: 50,
        ..probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![at()],
                updates: vec![pb::MapUpdate {
                    keys: vec![
                        builtin(pb::ProbeBuiltin::Pid),
                        builtin(pb::ProbeBuiltin::Comm),
                    ],
                    ..upd("@c", A::Count, None)
                }],
                ..Default::default()
            }],
        )
    };
    let (mut sa, seen_a) = start(&mut a, req).await.expect("a starts");
    // One counting event, no ring.
    assert_eq!(uprobes_open(&mut a).await, (1, 0));
    round(&mut child, &mut out);
    let key = format!("{pid},probe_target");
    // The counts are read for each periodic snapshot: one shows the round.
    loop {
        let m = tokio::time::timeout(TIMEOUT, sa.next())
            .await
            .expect("a snapshot in time")
            .expect("stream open")
            .expect("no error");
        if let Some(pb::probe_report::Kind::Snapshot(snap)) = m.kind {
            if maps(&snap)
                .get("@c")
                .and_then(|m| m.get(&key))
                .is_some_and(|e| e.value == 600)
            {
                break;
            }
        }
    }
    let (sb, seen_b) = start(
        &mut b,
        probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![at()],
                updates: vec![upd("@s", A::Sum, Some(arg(0)))],
                ..Default::default()
            }],
        ),
    )
    .await
    .expect("b starts");
    // A sampling event and its ring now.
    assert_eq!(uprobes_open(&mut a).await, (1, 1));
    round(&mut child, &mut out);
    a.detach(seen_a.engine_id).await.expect("a leaves");
    b.detach(seen_b.engine_id).await.expect("b leaves");
    let seen_a = finish(sa, seen_a).await;
    let seen_b = finish(sb, seen_b).await;
    assert_eq!(maps(seen_a.last())["@c"][&key].value, 1200);
    assert_eq!(maps(seen_b.last())["@s"][""].value, 60 * 45);
    drop(child.stdin.take());
    let _ = child.wait();
}

/// A probe that takes more of the program's time than its budget
/// (limits.cpu_percent) ends, saying why, and the program runs on at full
/// speed: a sampled probe on a tight loop (3 µs a call against 2 ns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloading_probe_ends_and_the_program_runs_on() {
    use std::io::{BufRead, Write};
    let (_srv, mut c) = server().await;
    // 20,000,000 calls: 40 ms alone, a minute with a sample per call.
    let mut child = std::process::Command::new(tracee!("probe_target"))
        .args(["loop", "20000000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = lines.next().expect("ready").expect("line");
    assert!(ready.starts_with("ready "), "{ready}");
    let pid = child.id();
    use pb::ProbeAggregation as A;
    let req = pb::ProbeRequest {
        limits: Some(pb::ProbeLimits {
            cpu_percent: 20,
            ..Default::default()
        }),
        ..probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![function("probed_fn")],
                updates: vec![upd("@s", A::Sum, Some(arg(0)))],
                ..Default::default()
            }],
        )
    };
    let (s, seen) = start(&mut c, req).await.expect("probe starts");
    let addr = seen.started.as_ref().expect("started").points[0].address;
    let stdin = child.stdin.as_mut().expect("stdin");
    stdin.write_all(b"go\n").expect("go");
    stdin.flush().expect("flush");
    let seen = finish(s, seen).await;
    let why = seen.ended.clone().unwrap_or_default();
    assert!(why.starts_with("overload:"), "{why}");
    assert!(why.contains("budget of 20%"), "{why}");
    let last = seen.last();
    assert!(last.r#final);
    let c = last.counters.expect("counters");
    assert!(c.hits + c.hits_lost > 0, "{c:?}");
    // The rest of the loop runs unprobed: nothing traces it, and its code
    // is its file's again.
    common::wait_for("the detach", || {
        common::proc_status(pid as i32, "TracerPid").as_deref() == Some("0")
    });
    let (mem, file) = code_bytes(pid, addr);
    assert_eq!(mem, file);
    let done = tokio::task::spawn_blocking(move || lines.next())
        .await
        .expect("join")
        .expect("a line")
        .expect("line");
    assert!(done.starts_with("ns_per_call"), "{done}");
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Process events: signals delivered (all, and one by number), threads
/// started and exiting, the exec and the exit of spawned programs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_events_are_probed() {
    let (_srv, mut c) = server().await;
    use pb::ProbeAggregation as A;
    let ev = |event: pb::ProcessEvent, signal: i32| pb::ProbePoint {
        point: Some(pb::probe_point::Point::Process(pb::ProcessPoint {
            event: event as i32,
            signal,
        })),
    };
    let spawn = |argv: &[&str], clauses: Vec<pb::ProbeClause>| pb::ProbeRequest {
        target: Some(pb::probe_request::Target::Spawn(pb::ProbeSpawn {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })),
        clauses,
        ..Default::default()
    };
    let keyed = |map: &str, key: pb::ProbeExpr| pb::MapUpdate {
        keys: vec![key],
        ..upd(map, A::Count, None)
    };
    // `signals 10 5`: five SIGUSR1, handled.
    let req = spawn(
        &[tracee!("signals"), "10", "5"],
        vec![
            pb::ProbeClause {
                points: vec![ev(pb::ProcessEvent::Signal, 0)],
                updates: vec![keyed("@sig", arg(0))],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![ev(pb::ProcessEvent::Signal, 12)],
                updates: vec![upd("@usr2", A::Count, None)],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![ev(pb::ProcessEvent::Exec, 0)],
                updates: vec![upd("@exec", A::Count, None)],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![ev(pb::ProcessEvent::Exit, 0)],
                updates: vec![keyed("@exit", arg(0))],
                ..Default::default()
            },
        ],
    );
    let (s, seen) = start(&mut c, req).await.expect("probe starts");
    let seen = finish(s, seen).await;
    let m = maps(seen.last());
    assert_eq!(m["@sig"]["10"].value, 5, "{m:?}");
    assert!(!m.contains_key("@usr2"), "{m:?}");
    assert_eq!(m["@exec"][""].value, 1);
    assert_eq!(m["@exit"]["0"].value, 1);
    // `threads 3 10`: three threads start; four exit (with the main one).
    let req = spawn(
        &[tracee!("threads"), "3", "10"],
        vec![
            pb::ProbeClause {
                points: vec![ev(pb::ProcessEvent::ThreadStart, 0)],
                updates: vec![upd("@start", A::Count, None)],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![ev(pb::ProcessEvent::ThreadExit, 0)],
                updates: vec![upd("@exits", A::Count, None)],
                ..Default::default()
            },
        ],
    );
    let (s, seen) = start(&mut c, req).await.expect("probe starts");
    let seen = finish(s, seen).await;
    let m = maps(seen.last());
    assert_eq!(m["@start"][""].value, 3, "{m:?}");
    assert_eq!(m["@exits"][""].value, 4, "{m:?}");
}

/// A USDT marker guarded by a semaphore, in a real program: Python's
/// `python:gc__start` (Debian builds python3 with SDT markers). The
/// kernel's uprobe increments the semaphore, so the interpreter runs the
/// marker: seven `gc.collect()` with the collector otherwise off, seven
/// hits. Skipped, saying why, where python3 has no such marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usdt_marker_with_a_semaphore_in_python() {
    let Ok(python) = std::fs::canonicalize("/usr/bin/python3") else {
        eprintln!("SKIP: no /usr/bin/python3");
        return;
    };
    let notes = std::process::Command::new("readelf")
        .args(["-n", python.to_str().expect("path")])
        .output();
    let has_marker = notes
        .as_ref()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Name: gc__start"));
    if !has_marker {
        eprintln!(
            "SKIP: {} has no python:gc__start USDT marker",
            python.display()
        );
        return;
    }
    let (_srv, mut c) = server().await;
    use pb::ProbeAggregation as A;
    // Python collects by itself while it starts: the runs differ by the
    // collections asked for. The generation (arg0) is in memory
    // (`-4@112(%rsp)`): the kernel takes it at the hit.
    let mut counts = Vec::new();
    let mut by_gen = Vec::new();
    for n in [7, 17] {
        let req = pb::ProbeRequest {
            target: Some(pb::probe_request::Target::Spawn(pb::ProbeSpawn {
                argv: vec![
                    python.to_string_lossy().into_owned(),
                    "-I".into(),
                    "-S".into(),
                    "-c".into(),
                    format!(
                        "import gc; gc.disable(); [gc.collect() for _ in range({n})]; \
                         [gc.collect(1) for _ in range({n} // 7)]"
                    ),
                ],
                ..Default::default()
            })),
            clauses: vec![pb::ProbeClause {
                points: vec![pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Usdt(pb::UsdtPoint {
                        provider: "python".into(),
                        name: "gc__start".into(),
                        ..Default::default()
                    })),
                }],
                updates: vec![
                    upd("@gc", A::Count, None),
                    pb::MapUpdate {
                        keys: vec![arg(0)],
                        ..upd("@gen", A::Count, None)
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let (s, seen) = start(&mut c, req).await.expect("probe starts");
        let seen = finish(s, seen).await;
        assert_eq!(seen.ended.as_deref(), Some("the process exited"));
        let m = maps(seen.last());
        counts.push(m["@gc"][""].value);
        let gens: BTreeMap<String, i64> = m["@gen"]
            .iter()
            .map(|(k, e)| (k.clone(), e.value))
            .collect();
        by_gen.push(gens);
    }
    assert!(counts[0] >= 8, "{counts:?}");
    assert_eq!(counts[1] - counts[0], 11, "{counts:?}");
    let tracefs = c
        .server_info()
        .await
        .expect("server info")
        .probe_backends
        .iter()
        .any(|b| b.name == "tracefs" && b.available);
    if tracefs {
        // Generations 0 to 2 only, and the ten more full collections and
        // one more of generation 1 exactly where they belong.
        for g in &by_gen {
            assert!(
                g.keys().all(|k| ["0", "1", "2"].contains(&k.as_str())),
                "{by_gen:?}"
            );
        }
        let diff = |k: &str| by_gen[1].get(k).unwrap_or(&0) - by_gen[0].get(k).unwrap_or(&0);
        assert_eq!((diff("0"), diff("1"), diff("2")), (0, 1, 10), "{by_gen:?}");
    } else {
        eprintln!("SKIP (the generations): no tracefs, arguments in memory are read late");
    }
}

/// `ustack` and `buf()`: the same stack key whether the kernel's uprobe
/// walked the stack (a round with the probe alone) or the server did, at
/// an int3 stop (a round with a debugger's breakpoint at the same
/// address); its frames named from the program's symbols; the bytes of
/// each name. A copy of the program of its own: a breakpoint that stops
/// turns every uprobe at that file location into an int3, in every
/// process (other tests count exactly on the original).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_and_buffers_through_a_uprobe_and_an_int3() {
    let (dir, copy) = own_copy("utrace-stk", "probe_target_stk");
    let (srv, mut c) = server().await;
    let mut d = Client::connect(&srv.uri()).await.expect("second client");
    let mut child = std::process::Command::new(&copy)
        .args(["calls", "300", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the copy");
    let mut out = Lines::from_reader(child.stdout.take().expect("stdout"));
    assert!(out.next().starts_with("ready "));
    let pid = child.id();
    use pb::probe_expr::Expr as E;
    use pb::ProbeAggregation as A;
    let keyed = |map: &str, key: pb::ProbeExpr| pb::MapUpdate {
        keys: vec![key],
        ..upd(map, A::Count, None)
    };
    let (s, seen) = start(
        &mut c,
        probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![function("probed_fn")],
                updates: vec![
                    keyed("@s", e(E::Ustack(pb::ProbeStack { depth: 2 }))),
                    keyed(
                        "@b",
                        e(E::Buf(Box::new(pb::ProbeStr {
                            addr: Some(Box::new(arg(1))),
                            len: 6,
                        }))),
                    ),
                ],
                ..Default::default()
            }],
        ),
    )
    .await
    .expect("probe starts");
    let addr = seen.started.as_ref().expect("started").points[0].address;
    round(&mut child, &mut out);
    let mut sess = stopping_breakpoint(&mut d, pid, addr).await;
    let (mut child, _out, _stops) = round_resuming(&mut sess, child, out).await;
    sess.close();
    c.detach(seen.engine_id).await.expect("detach");
    let seen = finish(s, seen).await;
    let snap = seen.last();
    let stacks = &snap
        .maps
        .iter()
        .find(|m| m.name == "@s")
        .expect("@s")
        .entries;
    assert_eq!(stacks.len(), 1, "one stack, by either walk: {stacks:#?}");
    assert_eq!(stacks[0].value, 600);
    let Some(pb::probe_value::Value::Stack(st)) = &stacks[0].key[0].value else {
        panic!("a stack key: {stacks:?}");
    };
    assert_eq!(st.frames.len(), 2, "{st:#?}");
    assert_eq!(st.frames[0].address, addr);
    assert_eq!(
        (st.frames[0].symbol.as_str(), st.frames[0].offset),
        ("probed_fn", 0)
    );
    assert!(
        st.frames[1].symbol.starts_with("probe_target::call::h"),
        "the caller, demangled: {st:#?}"
    );
    assert!(
        st.frames[1].binary.ends_with("/probe_target_stk"),
        "{st:#?}"
    );
    let bufs = &snap
        .maps
        .iter()
        .find(|m| m.name == "@b")
        .expect("@b")
        .entries;
    let mut by_name: Vec<(Vec<u8>, i64)> = bufs
        .iter()
        .map(|en| match &en.key[0].value {
            Some(pb::probe_value::Value::Buf(b)) => (b.to_vec(), en.value),
            other => panic!("a buffer key: {other:?}"),
        })
        .collect();
    by_name.sort();
    assert_eq!(by_name.len(), 3, "{by_name:?}");
    assert_eq!(by_name[0], (b"alpha\0".to_vec(), 200));
    assert!(
        by_name[1].0.starts_with(b"beta\0") && by_name[1].1 == 200,
        "{by_name:?}"
    );
    assert!(
        by_name[2].0.starts_with(b"gamma\0") && by_name[2].1 == 200,
        "{by_name:?}"
    );
    drop(child.stdin.take());
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ustack` and `buf()` in the CLI print as bpftrace prints them, for a
/// process attached with -p (bpftrace names the frames only while the
/// process lives): a uprobe's stack, a USDT marker's, a syscall's (a
/// ptrace stop: the server walks the frames), buffers in keys. Counts
/// differ between two runs on a live process, so they are left out.
#[test]
fn stacks_and_buffers_print_as_bpftrace_prints_them() {
    if !bpftrace_here() {
        return;
    }
    let (dir, copy) = own_copy("utrace-btstk", "probe_target_bs");
    let target = copy.to_str().expect("path");
    let mut spin = std::process::Command::new(&copy)
        .arg("spin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the copy");
    let pid = spin.id().to_string();
    let tracefs = tracefs_mounted();
    let mut program = format!(
        "uprobe:{target}:probed_fn {{ @[ustack(3)] = count(); @u[ustack] = count(); \
         @b[buf(arg1, 6)] = count(); @k[comm, ustack(1)] = count(); }} \
         usdt:{target}:utrace_test:tick {{ @m[ustack(2)] = count(); }} "
    );
    if tracefs {
        program.push_str(&format!(
            "tracepoint:syscalls:sys_enter_clock_nanosleep /pid == {pid}/ {{ @sc[ustack(3)] = count(); }} "
        ));
    } else {
        eprintln!("SKIP (the syscall's stack only): tracefs cannot be mounted");
    }
    program.push_str("interval:ms:500 { exit(); }");
    let utrace = common::users::workspace_bin("utrace");
    // Lines without counts, sorted; a JSON line's numbers zeroed.
    let run = |prog: &str, fmt: &str| -> Vec<String> {
        let out = std::process::Command::new(prog)
            .args(if prog == "bpftrace" {
                vec![]
            } else {
                vec!["probe"]
            })
            .args(["-f", fmt, "-p", &pid, "-e", &program])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{prog}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fn zero(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Number(_) => *v = 0.into(),
                serde_json::Value::Object(m) => m.values_mut().for_each(zero),
                serde_json::Value::Array(a) => a.iter_mut().for_each(zero),
                _ => {}
            }
        }
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("Attaching ") && !l.contains("attached_probes"))
            .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
                Ok(mut v) if v.is_object() => {
                    zero(&mut v);
                    v.to_string()
                }
                _ => match l.rsplit_once("]: ") {
                    Some((k, n)) if n.bytes().all(|b| b.is_ascii_digit()) => format!("{k}]: N"),
                    _ => l.to_string(),
                },
            })
            .collect();
        lines.sort();
        lines
    };
    for fmt in ["text", "json"] {
        let ours = run(utrace.to_str().expect("path"), fmt);
        let theirs = run("bpftrace", fmt);
        assert!(
            ours.iter().any(|l| l.contains("probed_fn+0")),
            "frames named: {ours:#?}"
        );
        assert_eq!(ours, theirs, "-f {fmt}");
    }
    let _ = spin.kill();
    let _ = spin.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A process tree (`follow_children`): a spawned program that forks a
/// child, which forks a grandchild, and a second child that execs the
/// program anew; each of the four processes makes 200 calls. Every
/// process's calls are counted under its own pid, the exec'd one's
/// included (its points placed again in its new image), process exits
/// are seen for each, and the probe ends when the last one is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_tree_is_probed_to_its_last_exit() {
    let (_srv, mut c) = server().await;
    use pb::ProbeAggregation as A;
    let req = pb::ProbeRequest {
        target: Some(pb::probe_request::Target::Spawn(pb::ProbeSpawn {
            argv: vec![tracee!("probe_target").into(), "tree".into(), "200".into()],
            ..Default::default()
        })),
        follow_children: true,
        clauses: vec![
            pb::ProbeClause {
                points: vec![function("probed_fn")],
                updates: vec![pb::MapUpdate {
                    keys: vec![e(pb::probe_expr::Expr::Builtin(
                        pb::ProbeBuiltin::Pid as i32,
                    ))],
                    ..upd("@calls", A::Count, None)
                }],
                ..Default::default()
            },
            pb::ProbeClause {
                points: vec![pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Process(pb::ProcessPoint {
                        event: pb::ProcessEvent::Exit as i32,
                        signal: 0,
                    })),
                }],
                updates: vec![pb::MapUpdate {
                    keys: vec![e(pb::probe_expr::Expr::Builtin(
                        pb::ProbeBuiltin::Pid as i32,
                    ))],
                    ..upd("@exits", A::Count, None)
                }],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let (s, seen) = start(&mut c, req).await.expect("probe starts");
    let root = seen.started.as_ref().expect("started").pid;
    let seen = finish(s, seen).await;
    assert_eq!(
        seen.ended.as_deref(),
        Some("every process of the tree exited")
    );
    let m = maps(seen.last());
    let calls = &m["@calls"];
    assert_eq!(calls.len(), 4, "four processes: {calls:?}");
    assert!(calls.values().all(|e| e.value == 200), "{calls:?}");
    assert!(calls.contains_key(&root.to_string()), "{calls:?}");
    let exits: Vec<&String> = m["@exits"].keys().collect();
    let pids: Vec<&String> = calls.keys().collect();
    assert_eq!(exits, pids, "each process's exit seen once");
    assert!(m["@exits"].values().all(|e| e.value == 1));

    // Without follow_children only the first process is probed.
    let req = pb::ProbeRequest {
        target: Some(pb::probe_request::Target::Spawn(pb::ProbeSpawn {
            argv: vec![tracee!("probe_target").into(), "tree".into(), "200".into()],
            ..Default::default()
        })),
        clauses: vec![pb::ProbeClause {
            points: vec![function("probed_fn")],
            updates: vec![upd("@calls", A::Count, None)],
            ..Default::default()
        }],
        ..Default::default()
    };
    let (s, seen) = start(&mut c, req).await.expect("probe starts");
    let seen = finish(s, seen).await;
    assert_eq!(seen.ended.as_deref(), Some("the process exited"));
    assert_eq!(maps(seen.last())["@calls"][""].value, 200);
}

/// `utrace probe --follow-forks`: the four processes of the tree, each
/// with its calls, and their four exits.
#[test]
fn the_cli_follows_forks() {
    let utrace = common::users::workspace_bin("utrace");
    let target = tracee!("probe_target");
    let out = std::process::Command::new(utrace)
        .args([
            "probe",
            "--follow-forks",
            "-e",
            &format!(
                "uprobe:{target}:probed_fn {{ @[pid] = count(); }} \
                 tracepoint:sched:sched_process_exit {{ @exits = count(); }}"
            ),
            "-c",
            &format!("{target} tree 50"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run utrace probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let per_pid: Vec<&str> = text.lines().filter(|l| l.starts_with("@[")).collect();
    assert_eq!(per_pid.len(), 4, "{text}");
    assert!(per_pid.iter().all(|l| l.ends_with("]: 50")), "{text}");
    assert!(text.lines().any(|l| l == "@exits: 4"), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A probe inside a Session, beside the session's own sync engine on the
/// same process: the session's breakpoint stops at the probed function
/// (an int3 both use) and is resumed from the same stream that then
/// carries the probe's final snapshot and end, tagged with the probe
/// message's id. (A copy of the program: the int3 would turn other
/// tests' uprobes at this location into int3s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_inside_a_session() {
    use utrace_client::session::SessionEvent;
    let (dir, copy) = own_copy("utrace-sessprobe", "probe_target_sp");
    let (_srv, mut c) = server().await;
    let mut child = std::process::Command::new(&copy)
        .args(["calls", "300", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the copy");
    let mut out = Lines::from_reader(child.stdout.take().expect("stdout"));
    assert!(out.next().starts_with("ready "));
    let pid = child.id();
    use pb::ProbeAggregation as A;
    let mut sess = c.session().await.expect("session");
    let (probe_id, started) = sess
        .probe(probe_pid(
            pid,
            vec![pb::ProbeClause {
                points: vec![function("probed_fn")],
                updates: vec![upd("@n", A::Count, None), upd("@s", A::Sum, Some(arg(0)))],
                ..Default::default()
            }],
        ))
        .await
        .expect("the probe starts in the session");
    let addr = started.points[0].address;
    // The session's own sync engine, stopping at the same address.
    let engine = stop_at(&mut sess, pid, addr).await;
    let (mut child, _out, stops) = round_resuming(&mut sess, child, out).await;
    c.detach(started.engine_id).await.expect("detach the probe");
    let (mut last, mut ended) = (None, None);
    while ended.is_none() {
        let ev = tokio::time::timeout(TIMEOUT, sess.next())
            .await
            .expect("the probe's end in time")
            .expect("session open")
            .expect("no error");
        if let SessionEvent::Probe {
            in_reply_to,
            report,
        } = ev
        {
            assert_eq!(in_reply_to, probe_id);
            match report.kind {
                Some(pb::probe_report::Kind::Snapshot(s)) => last = Some(s),
                Some(pb::probe_report::Kind::Ended(e)) => ended = Some(e.reason),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(ended.as_deref(), Some("detached"));
    let m = maps(last.as_ref().expect("a final snapshot"));
    assert_eq!(m["@n"][""].value, 300);
    assert_eq!(m["@s"][""].value, 30 * 45);
    assert_eq!(stops, 300);
    // A probe the server refuses is a SessionError; the session goes on.
    let err = sess
        .probe(probe_pid(pid, vec![]))
        .await
        .expect_err("no clauses");
    assert!(err.to_string().contains("clauses"), "{err}");
    sess.batch(pb::BatchRequest {
        engine_id: engine,
        tid: pid,
        interrupt: true,
        ..Default::default()
    })
    .await
    .expect("the session goes on");
    sess.close();
    drop(child.stdin.take());
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// What str() and buf() read is what the memory held at the hit, not
/// when the server took the sample: the program overwrites its string
/// right after each call, and every capture still sees the string it
/// passed (the kernel takes them at the hit: a tracefs uprobe with fetch
/// arguments, shared by the site's users). Skipped, saying why, where
/// the server has no tracefs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_and_buffers_are_taken_at_the_hit() {
    let (_srv, mut c) = server().await;
    let info = c.server_info().await.expect("server info");
    let tracefs = info
        .probe_backends
        .iter()
        .find(|b| b.name == "tracefs")
        .expect("a tracefs back end is listed");
    if !tracefs.available {
        eprintln!("SKIP: {}", tracefs.detail);
        return;
    }
    use pb::probe_expr::Expr as E;
    use pb::ProbeAggregation as A;
    let keyed = |map: &str, key: pb::ProbeExpr| pb::MapUpdate {
        keys: vec![key],
        ..upd(map, A::Count, None)
    };
    let at = |len| {
        Some(Box::new(pb::ProbeStr {
            addr: Some(Box::new(arg(1))),
            len,
        }))
    };
    let req = pb::ProbeRequest {
        target: Some(pb::probe_request::Target::Spawn(pb::ProbeSpawn {
            argv: vec![
                tracee!("probe_target").into(),
                "mutate".into(),
                "500".into(),
            ],
            ..Default::default()
        })),
        clauses: vec![pb::ProbeClause {
            points: vec![function("probed_fn")],
            updates: vec![
                keyed("@s", e(E::StrAt(at(0).expect("expr")))),
                keyed("@b", e(E::Buf(at(2).expect("expr")))),
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    let (s, seen) = start(&mut c, req).await.expect("probe starts");
    let pid = seen.started.as_ref().expect("started").pid;
    let seen = finish(s, seen).await;
    let m = maps(seen.last());
    let want: BTreeMap<String, i64> = (0..10).map(|d| (format!("v{d}"), 50)).collect();
    let got: BTreeMap<String, i64> = m["@s"].iter().map(|(k, e)| (k.clone(), e.value)).collect();
    assert_eq!(
        got, want,
        "str(arg1) as passed, never the \"XX\" written after"
    );
    let got: BTreeMap<String, i64> = m["@b"].iter().map(|(k, e)| (k.clone(), e.value)).collect();
    // (Keys of bytes print as Rust's b"..." here.)
    let want: BTreeMap<String, i64> = (0..10).map(|d| (format!("b\"v{d}\""), 50)).collect();
    assert_eq!(got, want, "buf(arg1, 2) as passed");
    assert_eq!(
        seen.last().counters.as_ref().expect("counters").read_errors,
        0
    );
    // Nothing of this probe is left in tracefs once it is gone (its
    // uprobe was defined on the program's file as /proc/PID/map_files/…;
    // other tests' probes may be there meanwhile).
    let ours = format!("/proc/{pid}/map_files/");
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let events = std::fs::read_to_string("/sys/kernel/tracing/uprobe_events")
            .or_else(|_| std::fs::read_to_string("/sys/kernel/debug/tracing/uprobe_events"))
            .unwrap_or_default();
        if !events.contains(&ours) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tracefs uprobes left behind: {events}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A syscall class (strace's `%file`) as a probe point: the calls it
/// counts, syscall by syscall, are those `strace -c -e trace=%file`
/// counts for the same program; `probe` names each syscall.
#[test]
fn a_syscall_class_counts_what_strace_counts() {
    let have_strace = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_strace {
        eprintln!("SKIP: strace is not installed (apt-get install -y strace)");
        return;
    }
    let utrace = common::users::workspace_bin("utrace");
    let out = std::process::Command::new(&utrace)
        .args([
            "probe",
            "-e",
            "syscall:%file:entry { @[probe] = count(); }",
            "-c",
            "/bin/ls /",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run utrace probe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: BTreeMap<String, u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("@[tracepoint:syscalls:sys_enter_")?;
            let (name, n) = l.split_once("]: ")?;
            Some((name.to_string(), n.parse().ok()?))
        })
        .collect();
    let report = std::env::temp_dir().join(format!("utrace-class-{}.txt", std::process::id()));
    let st = std::process::Command::new("strace")
        .args(["-f", "-c", "-e", "trace=%file", "-o"])
        .arg(&report)
        .args(["/bin/ls", "/"])
        .stdout(Stdio::null())
        .status()
        .expect("run strace");
    assert!(st.success());
    let text = std::fs::read_to_string(&report).expect("strace's report");
    let _ = std::fs::remove_file(&report);
    // "% time seconds usecs/call calls [errors] syscall"
    let theirs: BTreeMap<String, u64> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = *f.last()?;
            if f.len() < 5 || name == "total" || name == "syscall" {
                return None;
            }
            Some((name.to_string(), f.get(3)?.parse().ok()?))
        })
        .collect();
    assert!(theirs.contains_key("openat"), "{text}");
    assert_eq!(ours, theirs, "utrace probe vs strace -c -e trace=%file");
}

/// The bash one-liners of bpftrace's tutorials (readline's callers and
/// what it returned, a string the kernel takes at the return), on an
/// interactive bash fed three commands: what bpftrace prints.
#[test]
fn the_bash_one_liners_print_what_bpftrace_prints() {
    if !bpftrace_here() {
        return;
    }
    let Ok(bash) = std::fs::canonicalize("/bin/bash") else {
        eprintln!("SKIP: no /bin/bash");
        return;
    };
    // A copy of its own: other shells of this machine call readline too.
    let dir = std::env::temp_dir().join(format!("utrace-bash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let copy = dir.join("bash");
    std::fs::copy(&bash, &copy).expect("copy bash");
    let copy = copy.to_str().expect("path");
    let program = format!(
        "uprobe:{copy}:readline {{ @[comm] = count(); }} \
         uretprobe:{copy}:readline {{ printf(\"read: %s\\n\", str(retval)); }}"
    );
    let utrace = common::users::workspace_bin("utrace");
    let run = |prog: &[&str]| -> Vec<String> {
        use std::io::Write;
        let mut child = std::process::Command::new(prog[0])
            .args(&prog[1..])
            .args([
                "-e",
                &program,
                "-c",
                &format!("{copy} --norc --noprofile -i"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"echo one\necho two\nexit\n")
            .expect("commands");
        let out = child.wait_with_output().expect("output");
        assert!(out.status.success(), "{prog:?}");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("Attaching "))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let ours = run(&[utrace.to_str().expect("path"), "probe"]);
    let theirs = run(&["bpftrace"]);
    assert!(ours.iter().any(|l| l == "read: echo two"), "{ours:#?}");
    assert!(ours.iter().any(|l| l == "@[bash]: 3"), "{ours:#?}");
    assert_eq!(ours, theirs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Where the kernel's uprobes cannot serve (no uprobe PMU; here they are
/// turned off with `UTRACE_NO_UPROBES` in the embedded server of a CLI of
/// its own), a function probe is served by int3 breakpoints and counts
/// the same, and a return probe, which only a uprobe serves, is refused
/// with the reason, nothing left behind.
#[test]
fn without_uprobes_functions_are_int3s_and_return_probes_say_why() {
    let utrace = common::users::workspace_bin("utrace");
    let target = tracee!("probe_target");
    let run = |program: String| {
        std::process::Command::new(&utrace)
            .env("UTRACE_NO_UPROBES", "1")
            .args(["probe", "-e", &program, "-c", &format!("{target} run 200")])
            .stdin(Stdio::null())
            .output()
            .expect("run utrace probe")
    };
    let out = run(format!("uprobe:{target}:probed_fn {{ @n = count(); }}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().any(|l| l == "@n: 200"), "{text}");
    let out = run(format!("uretprobe:{target}:probed_fn {{ @n = count(); }}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no return probe at") && err.contains("UTRACE_NO_UPROBES is set"),
        "{err}"
    );
}

/// A probe whose hits are sampled (`printf`: each hit's values go to the
/// kernel's ring) on a program that does not reach it: the daemon's
/// tracer looks at the ring less and less often, down to 20 times a
/// second, not 200; the program's next hit is still reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_probe_on_a_quiet_program_costs_few_wake_ups() {
    let d = common::daemon::Daemon::start("quiet-probe");
    let (mut child, mut out, pid) = target(5, 1);
    let mut probe = common::KillOnDrop(
        std::process::Command::new(common::users::workspace_bin("utrace"))
            .args(["--server", &d.uri, "probe", "-p", &pid.to_string(), "-e"])
            .arg("uprobe:probed_fn { printf(\"hit %d\\n\", arg0); }")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("utrace probe"),
    );
    let mut hits = Lines::from_reader(probe.0.stdout.take().expect("stdout"));
    let mut c = Client::connect(&d.uri).await.unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !c.server_info().await.is_ok_and(|i| i.uprobe_rings > 0) {
        assert!(std::time::Instant::now() < deadline, "no probe ring");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = common::schedstat::timeslices(d.pid());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let woken = common::schedstat::timeslices(d.pid()) - before;
    // 20 drains a second and a few others; 200 a second before.
    assert!(woken <= 80, "the daemon was woken {woken} times in 2 s");
    round(&mut child, &mut out);
    let mut seen = 0;
    while seen < 5 {
        seen += usize::from(hits.next().starts_with("hit "));
    }
    let _ = child.kill();
}
