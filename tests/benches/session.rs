//! Session performance (issue 5's goals), side by side in one run.
//!
//! utraced runs in-process ([`utraced::Embedded`], on this program's tokio
//! runtime, on its private Unix socket); the clients are
//! [`utrace_client::Client`]s in the same process. Tracee: `syscall_loop`,
//! spawned by the server with `LD_LIBRARY_PATH=""` (few loader probes) and
//! its stdout on /dev/null.
//!
//! Rows (each run measures every row once, in this order, after one warm-up
//! round that is not counted; the table shows the median over
//! `UTRACE_BENCH_RUNS` runs, default 5, and the goals' ratios of those
//! medians; the notes also give each goal's ratio taken within each run):
//!
//! 1. **Sync round trip.** (1a) the reference: a bare tonic bidi ping-pong
//!    on the same kind of transport: an echo server started here
//!    (`utrace.v1.Tracer` whose `Session` answers each `ClientMessage` with
//!    one `ServerMessage` carrying an openat-entry-like report, from a task
//!    through a channel, as a real server does; every other method is
//!    UNIMPLEMENTED) on its own Unix socket in a temp dir, same HTTP/2 stack,
//!    driven by the same client `Session` type: send a decision, wait for
//!    the report, repeat ([`PINGS`] times; time per round trip). (1) the
//!    real thing: `syscall_loop SYNC_N 1 /dev/null` spawned through a
//!    `Session` with a sync engine holding `openat` entries (events
//!    `[syscall_entry, death]`, syscalls `["openat"]`); each held report is
//!    resumed at once; time per report = (first report → death report) /
//!    held reports. Goal: (1) ≤ 1.5 × (1a). For context: (1b) the echo as a
//!    mapped stream (no task, no channel); (1c) the same tracee under an
//!    in-process engine of the engine layer (no gRPC) that resumes each
//!    openat entry at once: the ptrace floor of one report's cycle; (1d) the
//!    same engine holding the task (`Action::Stop`) and a tokio task
//!    deciding it with `Tracer::decide`, as the server does: the floor of a
//!    sync cycle without gRPC. (1c) and (1d) run on a tracer of their own,
//!    started and stopped per run. (1*) = (1a) + (1c) is goal 1's floor:
//!    one bare round trip plus one ptrace report cycle, what (1) would cost
//!    if the server did no work at all; when (1*)/(1a) > 1.5 no design can
//!    meet the goal on the machine at hand.
//! 2. **openat probe that needs the path.** Same tracee and engine, plus:
//!    (2a) `expedite.memory [{rsi, 4096, string}]`: the path comes with the
//!    report, then resume; (2b) no expedite: `Session::batch` with one
//!    `read_string` at `args[1]` (waiting for its reply), then resume. Both
//!    check every path. Time per event as in (1). Goal: (2b)/(2a) ≥ 1.8.
//!    (2*) = (1*) + (1a): (2b) with no server work (a report cycle plus a
//!    bare round trip); (2*)/(1*) is what the ratio would be then. Server
//!    work added to both paths alike moves the ratio towards 2, work taken
//!    away moves it towards (2*)/(1*): below 1.8 the goal rewards a slower
//!    batch path rather than a faster expedite.
//! 3. **16 async observers vs 1.** `syscall_loop OBS_N` (OBS_N raw
//!    `getppid`), spawned by a unary `Spawn` with `stop_at_entry` and an async
//!    engine reporting `getppid` entries and death (queue_len large enough
//!    that nothing needs dropping), its `Events` stream drained by a task;
//!    for (3b), 15 more engines with the same spec attached by unary
//!    `Attach`, each through its own client connection with its own drained
//!    `Events` stream. Then a unary `Batch` with `control: ACTION_RESUME` on
//!    the first engine releases the program; the time runs from that call to
//!    the first engine's stream delivering the process's death. Every
//!    observer's reports are counted (and any `dropped_before`). (3n), for
//!    context: the same program run natively. Goal: (3b)/(3a) ≤ 1.3.
//!
//! Where the time goes, in the notes (and per run on stderr): for the sync
//! rows, a report's cycle split at the report's `Event.time_ns` (stamped on
//! the server's tracer thread) and the client's clock: `out` (report made →
//! client has it), `client` (→ decision handed to the client library; in
//! (2b) the batch round trip), `back` (→ next report made: server inbound,
//! resume, the tracee's next iteration, its stop); for the observer rows,
//! the tracee's own time (release → its death as stamped by the server) and
//! the CPU time of the tracer thread, the tokio workers (server and
//! clients), the main thread and the tracee.
//!
//! ```text
//! cargo bench -p utrace-tests --bench session                  # 5 runs
//! UTRACE_BENCH_RUNS=7 cargo bench -p utrace-tests --bench session
//! UTRACE_BENCH_ONLY=sync,obs16 cargo bench -p utrace-tests --bench session   # some rows
//! UTRACE_BENCH_WORKERS=1 cargo bench -p utrace-tests --bench session  # tokio workers
//! ```
//!
//! `UTRACE_BENCH_ONLY` (a comma-separated list of the row names printed per
//! run) runs only those rows, e.g. under `perf record`;
//! `UTRACE_BENCH_REPORT_WINDOW_US` sets the server's `--report-window-us`;
//! `UTRACE_BENCH_WORKERS` sets the tokio worker count (default: one per
//! CPU). A row whose runs all failed shows `-` (the failures are on stderr).
//!
//! Needs root (or ptrace rights over its children).

mod common;

use common::{fmt_time, median, quiet_stdout};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::IntoFuture;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use utrace_client::{pb, Client, Decision, Session, SessionEvent};
use utrace_engines::{
    Action, Engine, EngineId, EngineOptions, EventMask, ExitReport, ExitStatus, SpawnOptions,
    SyscallEntry, SyscallSet, Task, Tracer, Verdict,
};

const TRACEE: &str = env!("CARGO_BIN_EXE_syscall_loop");
/// openat calls of the sync rows (one per getppid).
const SYNC_N: u64 = 3000;
/// Round trips of the ping-pong rows.
const PINGS: usize = 3000;
/// getppid calls of the observer rows.
const OBS_N: u64 = 20_000;
/// Observers of row (3b).
const OBSERVERS: usize = 16;
/// Bound on any one wait (a message, a call, a stream's end).
const WAIT: Duration = Duration::from_secs(60);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

// ---------------------------------------------------------------------------
// The reference: a bare tonic echo server.

/// A `Tracer` whose `Session` echoes one report-like message per client
/// message; every other method is UNIMPLEMENTED.
struct Echo {
    /// Answer from the stream itself (`map`) instead of from a task through
    /// a channel.
    mapped: bool,
}

/// A report like a held openat entry of row (1).
fn report_like(seq: u64) -> pb::ServerMessage {
    pb::ServerMessage {
        msg: Some(pb::server_message::Msg::Report(pb::Event {
            seq,
            engine_id: 1,
            pid: 123_456,
            tid: 123_456,
            time_ns: 1_750_000_000_000_000_000 + seq * 1000,
            kind: Some(pb::event::Kind::SyscallEntry(pb::SyscallEntry {
                nr: 257,
                name: "openat".into(),
                args: vec![
                    0xffff_ff9c,
                    0x5555_5555_a2b0,
                    0,
                    0,
                    0x7ffd_1234_5678,
                    0x5555_5555_a2b0,
                ],
                text: String::new(),
            })),
            held: true,
            ..Default::default()
        })),
        in_reply_to: 0,
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("echo server: only Session"))
}

#[tonic::async_trait]
impl utrace_proto::server::tracer_server::Tracer for Echo {
    async fn spawn(
        &self,
        _: Request<pb::SpawnRequest>,
    ) -> Result<Response<pb::SpawnReply>, Status> {
        unimplemented()
    }
    async fn attach(
        &self,
        _: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::AttachReply>, Status> {
        unimplemented()
    }
    async fn detach(
        &self,
        _: Request<pb::DetachRequest>,
    ) -> Result<Response<pb::DetachReply>, Status> {
        unimplemented()
    }
    async fn list_tasks(
        &self,
        _: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksReply>, Status> {
        unimplemented()
    }
    async fn get_activity(
        &self,
        _: Request<pb::GetActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        unimplemented()
    }
    async fn get_server_info(
        &self,
        _: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfo>, Status> {
        unimplemented()
    }
    async fn batch(
        &self,
        _: Request<utrace_proto::wire::WireBatchRequest>,
    ) -> Result<Response<utrace_proto::wire::WireBatchReply>, Status> {
        unimplemented()
    }

    type EventsStream = BoxStream<utrace_proto::wire::WireEvent>;
    async fn events(
        &self,
        _: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        unimplemented()
    }

    type TraceStream = BoxStream<utrace_proto::wire::WireEvent>;
    async fn trace(
        &self,
        _: Request<pb::TraceRequest>,
    ) -> Result<Response<Self::TraceStream>, Status> {
        unimplemented()
    }
    async fn stdin(
        &self,
        _: Request<tonic::Streaming<pb::StdinRequest>>,
    ) -> Result<Response<pb::StdinReply>, Status> {
        unimplemented()
    }

    type ReadMemoryStreamStream = BoxStream<pb::MemoryChunk>;
    async fn read_memory_stream(
        &self,
        _: Request<pb::ReadMemoryStreamRequest>,
    ) -> Result<Response<Self::ReadMemoryStreamStream>, Status> {
        unimplemented()
    }

    type ProbeStream = BoxStream<pb::ProbeReport>;
    async fn probe(
        &self,
        _: Request<pb::ProbeRequest>,
    ) -> Result<Response<Self::ProbeStream>, Status> {
        unimplemented()
    }

    type SessionStream = BoxStream<pb::ServerMessage>;
    async fn session(
        &self,
        req: Request<Streaming<pb::ClientMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = req.into_inner();
        if self.mapped {
            let mut seq = 0;
            let s = inbound.map(move |m| {
                m.map(|_| {
                    seq += 1;
                    report_like(seq)
                })
            });
            return Ok(Response::new(Box::pin(s)));
        }
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut seq = 0;
            while let Ok(Some(_)) = inbound.message().await {
                seq += 1;
                if tx.send(Ok(report_like(seq))).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// An echo server on its own Unix socket.
struct EchoServer {
    uri: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl EchoServer {
    fn start(dir: &std::path::Path, name: &str, mapped: bool) -> EchoServer {
        let path = dir.join(name);
        let listener = tokio::net::UnixListener::bind(&path)
            .unwrap_or_else(|e| panic!("bind the echo server at {}: {e}", path.display()));
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(utrace_proto::server::tracer_server::TracerServer::new(
                    Echo { mapped },
                ))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                    let _ = rx.await;
                }),
        );
        EchoServer {
            uri: format!("unix://{}", path.display()),
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(WAIT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            other => eprintln!("echo server {} ended badly: {other:?}", self.uri),
        }
    }
}

/// The next message of a session, within [`WAIT`].
async fn next(s: &mut Session, what: &str) -> Result<SessionEvent, String> {
    match tokio::time::timeout(WAIT, s.next()).await {
        Ok(Some(Ok(ev))) => Ok(ev),
        Ok(Some(Err(e))) => Err(format!("{what}: session failed: {e}")),
        Ok(None) => Err(format!("{what}: session ended")),
        Err(_) => Err(format!("{what}: no message within {WAIT:?}")),
    }
}

/// (1a), (1b): `PINGS` round trips on a fresh session with the echo
/// server; seconds per round trip.
async fn ping_pong(client: &mut Client) -> Result<f64, String> {
    let mut s = client
        .session()
        .await
        .map_err(|e| format!("echo session: {e}"))?;
    let pb::ServerMessage {
        msg: Some(pb::server_message::Msg::Report(mut ev)),
        ..
    } = report_like(0)
    else {
        unreachable!("report_like makes a report")
    };
    let start = Instant::now();
    for _ in 0..PINGS {
        s.decide(Decision::resume(&ev))
            .await
            .map_err(|e| format!("echo decide: {e}"))?;
        match next(&mut s, "echo").await? {
            SessionEvent::Report(r) if r.seq == ev.seq + 1 => ev = r,
            other => return Err(format!("echo answered {other:?}")),
        }
    }
    let t = start.elapsed().as_secs_f64() / PINGS as f64;
    s.close();
    Ok(t)
}

// ---------------------------------------------------------------------------
// Rows 1 and 2: a sync openat probe.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Probe {
    /// (1): resume at once.
    Plain,
    /// (2a): the path expedited with the report.
    Expedite,
    /// (2b): the path read by a batch, then resume.
    Batch,
}

fn kinds(k: &[pb::EventKind]) -> Vec<i32> {
    k.iter().map(|k| *k as i32).collect()
}

fn openat_engine(probe: Probe) -> pb::EngineSpec {
    pb::EngineSpec {
        events: kinds(&[pb::EventKind::SyscallEntry, pb::EventKind::Death]),
        syscalls: vec!["openat".into()],
        sync: true,
        expedite: (probe == Probe::Expedite).then(|| pb::Expedite {
            registers: Vec::new(),
            memory: vec![pb::MemRef {
                register: "rsi".into(),
                len: 4096,
                string: true,
                offset: 0,
            }],
            register_bytes: Default::default(),
        }),
        ..Default::default()
    }
}

fn quiet_env() -> HashMap<String, String> {
    HashMap::from([("LD_LIBRARY_PATH".to_string(), String::new())])
}

/// One sync run.
#[derive(Clone, Copy, Debug, Default)]
struct SyncRun {
    /// Seconds per held report.
    per_report: f64,
    /// Held reports.
    reports: u64,
    /// Means over held reports, in seconds (CLOCK_REALTIME; `Event.time_ns`
    /// is taken on the server's tracer thread when it makes the report):
    /// report made -> client has it;
    out: f64,
    /// client has it -> its decision is handed to the client library
    /// (row 2b: the batch round trip);
    client: f64,
    /// decision handed over -> next report made (server inbound, ptrace
    /// resume, the tracee's next loop iteration, its seccomp stop, the
    /// tracer thread's wake-up).
    back: f64,
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `b - a` in seconds, for nanosecond stamps.
fn ns_delta(a: u64, b: u64) -> f64 {
    (b as f64 - a as f64) / 1e9
}

fn death_code(e: &pb::Event) -> Option<Option<i32>> {
    match &e.kind {
        Some(pb::event::Kind::Death(d)) if d.process_gone => Some(d.status.map(|s| s.code)),
        _ => None,
    }
}

async fn sync_run(client: &mut Client, probe: Probe) -> Result<SyncRun, String> {
    let mut s = client
        .session()
        .await
        .map_err(|e| format!("session: {e}"))?;
    let n = SYNC_N.to_string();
    s.spawn(pb::SpawnRequest {
        argv: vec![TRACEE.into(), n, "1".into(), "/dev/null".into()],
        env: quiet_env(),
        engine: Some(openat_engine(probe)),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("spawn: {e}"))?;
    let mut first: Option<Instant> = None;
    let mut reports = 0u64;
    let mut dev_null = 0u64;
    let (mut out, mut client, mut back) = (0.0, 0.0, 0.0);
    let mut last_sent: Option<u64> = None;
    let end = loop {
        let ev = match next(&mut s, "sync run").await? {
            SessionEvent::Report(ev) => ev,
            SessionEvent::Error { error, .. } => return Err(format!("refused: {error:?}")),
            SessionEvent::Ended(e) => return Err(format!("engine ended before death: {e:?}")),
            _ => continue,
        };
        let now = Instant::now();
        let got_ns = realtime_ns();
        first.get_or_insert(now);
        if let Some(code) = death_code(&ev) {
            if code != Some(0) {
                return Err(format!("syscall_loop ended with {code:?}"));
            }
            break now;
        }
        if !ev.held {
            continue;
        }
        reports += 1;
        out += ns_delta(ev.time_ns, got_ns);
        if let Some(sent) = last_sent {
            back += ns_delta(sent, ev.time_ns);
        }
        let Some(pb::event::Kind::SyscallEntry(call)) = &ev.kind else {
            return Err(format!("held report is not a syscall entry: {ev:?}"));
        };
        let path: Vec<u8> = match probe {
            Probe::Plain => Vec::new(),
            Probe::Expedite => ev
                .expedited
                .as_ref()
                .and_then(|x| x.memory.first())
                .map(|b| b.to_vec())
                .ok_or_else(|| format!("report {} has no expedited memory", ev.seq))?,
            Probe::Batch => {
                let addr = *call
                    .args
                    .get(1)
                    .ok_or_else(|| format!("report {} has no args[1]", ev.seq))?;
                let reply = s
                    .batch(pb::BatchRequest {
                        engine_id: ev.engine_id,
                        tid: ev.tid,
                        ops: vec![pb::Op {
                            op: Some(pb::op::Op::ReadString(pb::ReadString {
                                addr,
                                max_len: 4096,
                            })),
                        }],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("read_string batch: {e}"))?;
                match reply.results.first().and_then(|r| r.result.as_ref()) {
                    Some(pb::op_result::Result::Memory(m)) if m.error.is_empty() => m.data.to_vec(),
                    other => return Err(format!("read_string answered {other:?}")),
                }
            }
        };
        s.decide(Decision::resume(&ev))
            .await
            .map_err(|e| format!("decide: {e}"))?;
        let sent = realtime_ns();
        client += ns_delta(got_ns, sent);
        last_sent = Some(sent);
        if path == b"/dev/null" {
            dev_null += 1;
        }
    };
    let first = first.expect("a report came before the death");
    // Let the session end cleanly: the engine's last message.
    loop {
        match next(&mut s, "after death").await? {
            SessionEvent::Ended(_) => break,
            SessionEvent::Error { error, .. } => return Err(format!("refused: {error:?}")),
            _ => {}
        }
    }
    if probe != Probe::Plain && dev_null != SYNC_N {
        return Err(format!(
            "{probe:?}: {dev_null} reports with the path /dev/null, expected {SYNC_N}"
        ));
    }
    if reports < SYNC_N {
        return Err(format!(
            "{reports} held reports, expected at least {SYNC_N}"
        ));
    }
    Ok(SyncRun {
        per_report: (end - first).as_secs_f64() / reports as f64,
        reports,
        out: out / reports as f64,
        client: client / reports as f64,
        back: back / (reports - 1) as f64,
    })
}

// ---------------------------------------------------------------------------
// Context for row 1: the engine layer alone, in this process, no gRPC.

/// The in-process probe's end: first report, reports, death, exit code.
type LocalEnd = (Option<Instant>, u64, Instant, Option<i32>);

/// An in-process engine on openat entries: resumes at once, or holds the
/// task and hands (tid, stop id) to a tokio task that decides it.
struct LocalProbe {
    hold: Option<mpsc::UnboundedSender<(i32, u64)>>,
    first: Option<Instant>,
    reports: u64,
    done: Option<tokio::sync::oneshot::Sender<LocalEnd>>,
}

impl Engine for LocalProbe {
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, _: &SyscallEntry) -> Action {
        self.first.get_or_insert_with(Instant::now);
        self.reports += 1;
        match &self.hold {
            Some(tx) if tx.send((task.tid(), task.stop_id())).is_ok() => Action::Stop,
            _ => Action::Resume,
        }
    }

    fn report_death(&mut self, d: &ExitReport) {
        if d.process_gone {
            let end = Instant::now();
            self.hold = None;
            let code = match d.status {
                ExitStatus::Exited(c) => Some(c),
                ExitStatus::Signaled { .. } => None,
            };
            if let Some(tx) = self.done.take() {
                let _ = tx.send((self.first, self.reports, end, code));
            }
        }
    }
}

/// (1c) with `hold` false, (1d) with `hold` true: seconds per report. The
/// tracer lives for this run only: every tracer thread of a process is woken
/// by each SIGCHLD, so one left idle would tax the server's rows.
async fn local_run(hold: bool) -> Result<f64, String> {
    let tracer = Tracer::new().map_err(|e| format!("start an in-process tracer: {e}"))?;
    let r = local_run_on(&tracer, hold).await;
    if let Err(e) = within(
        "in-process tracer shutdown",
        tracer.shutdown().into_future(),
    )
    .await
    {
        eprintln!("{e}");
    }
    r
}

async fn local_run_on(tracer: &Tracer, hold: bool) -> Result<f64, String> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (held_tx, mut held_rx) = mpsc::unbounded_channel::<(i32, u64)>();
    let engine = LocalProbe {
        hold: hold.then_some(held_tx),
        first: None,
        reports: 0,
        done: Some(done_tx),
    };
    let (id_tx, id_rx) = tokio::sync::oneshot::channel::<EngineId>();
    let decider = {
        let tracer = tracer.clone();
        tokio::spawn(async move {
            let Ok(engine) = id_rx.await else {
                return Ok(0);
            };
            let mut answers = Vec::new();
            while let Some((tid, stop_id)) = held_rx.recv().await {
                let verdict = Verdict {
                    action: Action::Resume,
                    signal: None,
                    syscall_return: None,
                };
                let a = tracer
                    .decide(engine, tid, stop_id, Vec::new(), false, verdict)
                    .submit()
                    .await
                    .map_err(|e| format!("decide: {e}"))?;
                answers.push(a);
            }
            let n = answers.len();
            for a in answers {
                a.await.map_err(|e| format!("decision failed: {e}"))?;
            }
            Ok::<usize, String>(n)
        })
    };
    let mut opts = SpawnOptions::new([TRACEE.to_string(), SYNC_N.to_string(), "1".into()]);
    opts.env = vec![("LD_LIBRARY_PATH".into(), String::new())];
    opts.stdout = Some(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("open /dev/null: {e}"))?
            .into(),
    );
    let set = SyscallSet::from_names(["openat"]).map_err(|e| format!("syscall set: {e:?}"))?;
    let spawned = within(
        "in-process spawn",
        tracer
            .spawn(
                opts,
                Box::new(engine),
                EngineOptions::new(EventMask::SYSCALL_ENTRY | EventMask::DEATH).syscalls(set),
            )
            .into_future(),
    )
    .await?;
    let _ = id_tx.send(spawned.engine);
    let (first, reports, end, code) = match tokio::time::timeout(WAIT, done_rx).await {
        Ok(Ok(x)) => x,
        Ok(Err(_)) => return Err("in-process engine gone before the death".into()),
        Err(_) => return Err(format!("in-process run: no death within {WAIT:?}")),
    };
    let decided = match tokio::time::timeout(WAIT, decider).await {
        Ok(Ok(r)) => r?,
        Ok(Err(e)) => return Err(format!("decider task: {e}")),
        Err(_) => return Err(format!("decider: not done within {WAIT:?}")),
    };
    if code != Some(0) {
        return Err(format!("syscall_loop ended with {code:?}"));
    }
    if reports < SYNC_N || (hold && decided as u64 != reports) {
        return Err(format!("{reports} reports, {decided} decided"));
    }
    let first = first.ok_or("no report before the death")?;
    Ok((end - first).as_secs_f64() / reports as f64)
}

// ---------------------------------------------------------------------------
// Row 3: async observers.

fn observer_engine() -> pb::EngineSpec {
    pb::EngineSpec {
        events: kinds(&[pb::EventKind::SyscallEntry, pb::EventKind::Death]),
        syscalls: vec!["getppid".into()],
        // Room for every report: the observers must not lose any.
        queue_len: (OBS_N as u32 + 1024).next_power_of_two(),
        ..Default::default()
    }
}

/// What one observer's stream delivered.
#[derive(Clone, Copy, Debug, Default)]
struct Drained {
    /// getppid entry reports.
    entries: u64,
    /// Sum of dropped_before.
    dropped: u64,
    /// When the process's death came, its `time_ns`, and its exit code.
    death: Option<(Instant, u64, Option<i32>)>,
}

async fn drain(mut stream: Streaming<pb::Event>) -> Result<Drained, Status> {
    let mut d = Drained::default();
    while let Some(ev) = stream.message().await? {
        d.dropped += ev.dropped_before;
        match &ev.kind {
            Some(pb::event::Kind::SyscallEntry(_)) => d.entries += 1,
            Some(pb::event::Kind::Death(x)) if x.process_gone && d.death.is_none() => {
                d.death = Some((Instant::now(), ev.time_ns, x.status.map(|s| s.code)));
            }
            _ => {}
        }
    }
    Ok(d)
}

/// One observer run.
#[derive(Clone, Debug)]
struct ObsRun {
    /// Release → the first engine's death report, seconds.
    time: f64,
    /// Release → the death as stamped by the server (`Event.time_ns`): the
    /// tracee's own wall time, without the delivery of the queued reports.
    tracee: f64,
    /// CPU seconds this process (server, clients) and its reaped children
    /// (the tracee) used from the release to the last stream's end.
    cpu: f64,
    /// Of which: the server's tracer thread, the tokio workers (server and
    /// clients), the main thread, the tracee (10 ms ticks for the threads).
    cpu_split: CpuSplit,
    /// Per observer: entries received and dropped.
    seen: Vec<(u64, u64)>,
}

async fn within<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(WAIT, f).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: nothing within {WAIT:?}")),
    }
}

/// `clients[i]` is observer i's connection.
async fn observers_run(clients: &mut [Client]) -> Result<ObsRun, String> {
    // Engines made so far (client index, engine id), and the drainers: on a
    // failure, the engines are detached (the tracee runs to its end) and the
    // drainers stopped.
    let mut engines: Vec<(usize, u64)> = Vec::new();
    let mut drainers = Vec::new();
    let r = observers_try(clients, &mut engines, &mut drainers).await;
    if r.is_err() {
        for (i, id) in engines {
            if let Err(e) = within("detach", clients[i].detach(id)).await {
                eprintln!("cleaning up after a failed observer run: {e}");
            }
        }
        for h in drainers {
            h.abort();
        }
    }
    r
}

type Drainer = tokio::task::JoinHandle<Result<Drained, Status>>;

async fn observers_try(
    clients: &mut [Client],
    engines: &mut Vec<(usize, u64)>,
    drainers: &mut Vec<Drainer>,
) -> Result<ObsRun, String> {
    let spec = observer_engine();
    let sp = within(
        "spawn",
        clients[0].spawn(pb::SpawnRequest {
            argv: vec![TRACEE.into(), OBS_N.to_string()],
            env: quiet_env(),
            stop_at_entry: true,
            engine: Some(spec.clone()),
            ..Default::default()
        }),
    )
    .await?;
    engines.push((0, sp.engine_id));
    let stream = within("events", clients[0].events(sp.engine_id)).await?;
    drainers.push(tokio::spawn(drain(stream)));
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        let a = within(
            "attach",
            c.attach(pb::AttachRequest {
                pid: sp.pid,
                engine: Some(spec.clone()),
            }),
        )
        .await?;
        engines.push((i, a.engine_id));
        let stream = within("events", c.events(a.engine_id)).await?;
        drainers.push(tokio::spawn(drain(stream)));
    }
    let release = pb::BatchRequest {
        engine_id: sp.engine_id,
        tid: 0,
        ops: vec![pb::Op {
            op: Some(pb::op::Op::Control(pb::Control {
                action: pb::Action::Resume as i32,
                signal: None,
            })),
        }],
        stop_on_error: true,
        interrupt: false,
    };
    let cpu0 = cpu_seconds();
    let split0 = CpuSplit::now();
    let start_ns = realtime_ns();
    let start = Instant::now();
    let reply = within("release batch", clients[0].raw().batch(release))
        .await?
        .into_inner();
    match reply.results.first().and_then(|r| r.result.as_ref()) {
        Some(pb::op_result::Result::Done(_)) => {}
        other => return Err(format!("release batch answered {other:?}")),
    }
    let mut time = None;
    let mut tracee = 0.0;
    let mut seen = Vec::new();
    for (i, h) in std::mem::take(drainers).into_iter().enumerate() {
        let d = match tokio::time::timeout(WAIT, h).await {
            Ok(Ok(Ok(d))) => d,
            Ok(Ok(Err(e))) => return Err(format!("observer {i}: stream failed: {e}")),
            Ok(Err(e)) => return Err(format!("observer {i}: drainer failed: {e}")),
            Err(_) => return Err(format!("observer {i}: no stream end within {WAIT:?}")),
        };
        match d.death {
            Some((at, ns, Some(0))) => {
                if i == 0 {
                    time = Some((at - start).as_secs_f64());
                    tracee = ns_delta(start_ns, ns);
                }
            }
            other => return Err(format!("observer {i}: death {other:?}")),
        }
        seen.push((d.entries, d.dropped));
    }
    let cpu = cpu_seconds() - cpu0;
    let cpu_split = CpuSplit::now().minus(split0);
    let time = time.ok_or("observer 0 saw no death")?;
    Ok(ObsRun {
        time,
        tracee,
        cpu,
        cpu_split,
        seen,
    })
}

/// CPU seconds by kind of thread.
#[derive(Clone, Copy, Debug, Default)]
struct CpuSplit {
    tracer: f64,
    tokio: f64,
    /// This program's main thread (the clients' code, in `block_on`).
    main: f64,
    tracee: f64,
}

impl CpuSplit {
    fn now() -> CpuSplit {
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut s = CpuSplit::default();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for t in dir.flatten() {
                let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                    continue;
                };
                let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                    continue;
                };
                let comm = &stat[open + 1..close];
                // Fields after the name start at field 3 (state); utime and
                // stime are fields 14 and 15.
                let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
                let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
                let secs = (ticks(11) + ticks(12)) / hz;
                if comm == "utrace-tracer" {
                    s.tracer += secs;
                } else if comm.starts_with("tokio-r") {
                    s.tokio += secs;
                } else {
                    s.main += secs;
                }
            }
        }
        // SAFETY: getrusage writes one rusage into the zeroed struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } == 0 {
            for t in [ru.ru_utime, ru.ru_stime] {
                s.tracee += t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            }
        }
        s
    }

    fn minus(self, o: CpuSplit) -> CpuSplit {
        CpuSplit {
            tracer: self.tracer - o.tracer,
            tokio: self.tokio - o.tokio,
            main: self.main - o.main,
            tracee: self.tracee - o.tracee,
        }
    }
}

/// Busy and total CPU seconds of the whole machine (/proc/stat), summed
/// over its CPUs.
fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let t: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: f64 = t.iter().take(8).sum();
    let idle = t.get(3)? + t.get(4).unwrap_or(&0.0);
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(((total - idle) / hz, total / hz))
}

/// User + system CPU seconds of this process and its reaped children.
fn cpu_seconds() -> f64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage writes one rusage into the zeroed struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            for t in [ru.ru_utime, ru.ru_stime] {
                total += t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            }
        }
    }
    total
}

/// (3n): the program without tracing, seconds.
fn native_run() -> Result<f64, String> {
    let start = Instant::now();
    let st = Command::new(TRACEE)
        .arg(OBS_N.to_string())
        .env("LD_LIBRARY_PATH", "")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("run {TRACEE}: {e}"))?;
    let t = start.elapsed().as_secs_f64();
    if st.success() {
        Ok(t)
    } else {
        Err(format!("native syscall_loop: {st}"))
    }
}

// ---------------------------------------------------------------------------
// The table.

/// One table row.
struct Row {
    name: String,
    median: Option<f64>,
    unit: &'static str,
    ratio: Option<(f64, &'static str)>,
    goal: &'static str,
    /// The goal, judged on the ratio of the medians and on the median of
    /// the ratios within runs.
    met: Option<&'static str>,
    note: String,
}

impl Row {
    fn plain(name: &str, median: Option<f64>, unit: &'static str) -> Row {
        Row {
            name: name.into(),
            median,
            unit,
            ratio: None,
            goal: "",
            met: None,
            note: String::new(),
        }
    }
}

/// Every row's samples, one per run.
#[derive(Default)]
struct Samples {
    echo: Vec<f64>,
    echo_mapped: Vec<f64>,
    local: Vec<f64>,
    local_hold: Vec<f64>,
    sync: Vec<SyncRun>,
    expedite: Vec<SyncRun>,
    batch: Vec<SyncRun>,
    native: Vec<f64>,
    obs1: Vec<ObsRun>,
    obs16: Vec<ObsRun>,
    /// The goals' ratios within each run: (1)/(1a), (2b)/(2a), (3b)/(3a).
    paired: [Vec<f64>; 3],
}

struct Clients {
    echo: Client,
    echo_mapped: Client,
    utraced: Client,
    observers: Vec<Client>,
}

/// Append `name value` to a run's line, or say why it failed.
fn note(line: &mut String, round: &str, name: &str, r: Result<String, String>) {
    match r {
        Ok(v) => {
            let _ = write!(line, " {name} {v}");
        }
        Err(e) => eprintln!("  {round}: {name} failed: {e}"),
    }
}

/// Keep `x` in `v` unless this is the warm-up round.
fn keep<T>(v: &mut Vec<T>, x: T, keep: bool) {
    if keep {
        v.push(x);
    }
}

/// The rows to run: `UTRACE_BENCH_ONLY`, a comma-separated list of the
/// names shown per run (echo, echo-mapped, local, local-hold, sync,
/// expedite, batch, native, obs1, obs16), e.g. to profile one of them;
/// unset: all.
struct Only(Option<Vec<String>>);

impl Only {
    fn from_env() -> Only {
        Only(
            std::env::var("UTRACE_BENCH_ONLY")
                .ok()
                .map(|v| v.split(',').map(|x| x.trim().to_string()).collect()),
        )
    }

    fn has(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|v| v.iter().any(|x| x == name))
    }
}

/// Measure every row once; `k` false for the warm-up round.
async fn one_round(c: &mut Clients, s: &mut Samples, only: &Only, round: &str, k: bool) {
    let mut line = format!("  {round}:");
    // This round's values of the goals' rows: (1a), (1), (2a), (2b), (3a), (3b).
    let mut this: HashMap<&str, f64> = HashMap::new();
    for (mapped, name) in [(false, "echo"), (true, "echo-mapped")] {
        if !only.has(name) {
            continue;
        }
        let (client, dst) = if mapped {
            (&mut c.echo_mapped, &mut s.echo_mapped)
        } else {
            (&mut c.echo, &mut s.echo)
        };
        let r = ping_pong(client).await;
        if let Ok(t) = &r {
            this.insert(name, *t);
        }
        note(
            &mut line,
            round,
            name,
            r.map(|t| (keep(dst, t, k), fmt_time(t)).1),
        );
    }
    for (hold, name) in [(false, "local"), (true, "local-hold")] {
        if !only.has(name) {
            continue;
        }
        let dst = if hold {
            &mut s.local_hold
        } else {
            &mut s.local
        };
        let r = local_run(hold).await;
        note(
            &mut line,
            round,
            name,
            r.map(|t| (keep(dst, t, k), fmt_time(t)).1),
        );
    }
    for (probe, name) in [
        (Probe::Plain, "sync"),
        (Probe::Expedite, "expedite"),
        (Probe::Batch, "batch"),
    ] {
        if !only.has(name) {
            continue;
        }
        let r = sync_run(&mut c.utraced, probe).await.map(|x| {
            this.insert(name, x.per_report);
            let v = format!(
                "{} [out {} client {} back {}]",
                fmt_time(x.per_report),
                fmt_time(x.out),
                fmt_time(x.client),
                fmt_time(x.back)
            );
            let dst = match probe {
                Probe::Plain => &mut s.sync,
                Probe::Expedite => &mut s.expedite,
                Probe::Batch => &mut s.batch,
            };
            keep(dst, x, k);
            v
        });
        note(&mut line, round, name, r);
    }
    if only.has("native") {
        let r = native_run();
        let v = r.map(|t| (keep(&mut s.native, t, k), fmt_time(t)).1);
        note(&mut line, round, "native", v);
    }
    for n in [1, OBSERVERS] {
        let name = format!("obs{n}");
        if !only.has(&name) {
            continue;
        }
        let r = observers_run(&mut c.observers[..n]).await.map(|x| {
            this.insert(if n == 1 { "obs1" } else { "obs16" }, x.time);
            let v = format!(
                "{} [tracee {} cpu {} = tracer {} + tokio {} + main {} + tracee {}]",
                fmt_time(x.time),
                fmt_time(x.tracee),
                fmt_time(x.cpu),
                fmt_time(x.cpu_split.tracer),
                fmt_time(x.cpu_split.tokio),
                fmt_time(x.cpu_split.main),
                fmt_time(x.cpu_split.tracee),
            );
            keep(if n == 1 { &mut s.obs1 } else { &mut s.obs16 }, x, k);
            v
        });
        note(&mut line, round, &name, r);
    }
    for (i, (a, b)) in [("sync", "echo"), ("batch", "expedite"), ("obs16", "obs1")]
        .into_iter()
        .enumerate()
    {
        if let (Some(a), Some(b)) = (this.get(a), this.get(b)) {
            keep(&mut s.paired[i], a / b, k);
        }
    }
    eprintln!("{line}");
}

/// Observers' report counts over all runs ("min..max" per observer), and
/// the dropped total.
fn obs_counts(v: &[ObsRun]) -> (String, u64) {
    let all: Vec<u64> = v.iter().flat_map(|r| r.seen.iter().map(|s| s.0)).collect();
    let dropped = v.iter().flat_map(|r| r.seen.iter().map(|s| s.1)).sum();
    let (Some(lo), Some(hi)) = (all.iter().min(), all.iter().max()) else {
        return ("-".into(), dropped);
    };
    let counts = if lo == hi {
        format!("{lo}")
    } else {
        format!("{lo}..{hi}")
    };
    (counts, dropped)
}

/// The median of `f` over `v`.
fn median_of<T>(v: &[T], f: impl Fn(&T) -> f64) -> Option<f64> {
    median(v.iter().map(f).collect())
}

/// Whether a goal is met: "yes" when both the ratio of the medians and the
/// median of the ratios within runs meet it, "NO" when neither does, else
/// "mixed" (the machine's noise decides).
fn verdict(x: Option<f64>, paired: &[f64], ok: impl Fn(f64) -> bool) -> Option<&'static str> {
    let a = ok(x?);
    let b = median(paired.to_vec()).map_or(a, &ok);
    Some(match (a, b) {
        (true, true) => "yes",
        (false, false) => "NO",
        _ => "mixed",
    })
}

/// A goal's ratio taken within each run: "median (min..max)".
fn paired_note(v: &[f64]) -> String {
    let lo = v.iter().copied().min_by(f64::total_cmp);
    let hi = v.iter().copied().max_by(f64::total_cmp);
    match (median(v.to_vec()), lo, hi) {
        (Some(m), Some(lo), Some(hi)) => format!("within runs {m:.2} ({lo:.2}..{hi:.2}); "),
        _ => String::new(),
    }
}

/// Notes for a sync row: the latency split, and the held reports.
fn sync_note(v: &[SyncRun]) -> String {
    let us =
        |f: fn(&SyncRun) -> f64| median_of(v, f).map_or("-".into(), |x| format!("{:.1}", x * 1e6));
    let reports = match (
        v.iter().map(|x| x.reports).min(),
        v.iter().map(|x| x.reports).max(),
    ) {
        (Some(lo), Some(hi)) if lo == hi => format!("{lo}"),
        (Some(lo), Some(hi)) => format!("{lo}..{hi}"),
        _ => "-".into(),
    };
    format!(
        "out {} + client {} + back {} µs; {reports} held/run",
        us(|x| x.out),
        us(|x| x.client),
        us(|x| x.back)
    )
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let runs = common::runs(5);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("UTRACE_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    let scratch: PathBuf =
        std::env::temp_dir().join(format!("utrace-session-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("create the echo servers' directory");
    let mut out = quiet_stdout();

    // UTRACE_BENCH_REPORT_WINDOW_US: the server's --report-window-us.
    let window = std::env::var("UTRACE_BENCH_REPORT_WINDOW_US")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let srv = rt
        .block_on(utraced::Embedded::start_with(|cfg| {
            if let Some(us) = window {
                cfg.limits.report_window = Duration::from_micros(us);
            }
        }))
        .expect("start utraced");
    let (echo, echo_mapped) = rt.block_on(async {
        (
            EchoServer::start(&scratch, "echo.sock", false),
            EchoServer::start(&scratch, "echo-mapped.sock", true),
        )
    });
    let mut clients = rt.block_on(async {
        let mut observers = Vec::new();
        for _ in 0..OBSERVERS {
            observers.push(
                Client::connect(&srv.uri())
                    .await
                    .expect("connect an observer to utraced"),
            );
        }
        Clients {
            echo: Client::connect(&echo.uri)
                .await
                .expect("connect to the echo server"),
            echo_mapped: Client::connect(&echo_mapped.uri)
                .await
                .expect("connect to the mapped echo server"),
            utraced: Client::connect(&srv.uri())
                .await
                .expect("connect to utraced"),
            observers,
        }
    });

    eprintln!(
        "{runs} runs (+1 warm-up); sync rows: syscall_loop {SYNC_N} 1 /dev/null; \
         ping-pong: {PINGS} round trips; observer rows: syscall_loop {OBS_N}"
    );
    let only = Only::from_env();
    let machine0 = machine_cpu();
    let ours0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut s = Samples::default();
    rt.block_on(one_round(&mut clients, &mut s, &only, "warm-up", false));
    for run in 0..runs {
        let round = format!("run {}", run + 1);
        rt.block_on(one_round(&mut clients, &mut s, &only, &round, true));
    }

    // What else ran on the machine meanwhile (other processes' CPU time,
    // in CPUs busy on average): the rows' noise.
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let others = machine0.zip(machine_cpu()).map(|((b0, _), (b1, _))| {
        ((b1 - b0) - (cpu_seconds() - ours0)).max(0.0) / wall0.elapsed().as_secs_f64()
    });

    // The table.
    let m_echo = median(s.echo.clone());
    let m_mapped = median(s.echo_mapped.clone());
    let m_local = median(s.local.clone());
    let m_local_hold = median(s.local_hold.clone());
    let m_sync = median_of(&s.sync, |x| x.per_report);
    let m_exp = median_of(&s.expedite, |x| x.per_report);
    let m_batch = median_of(&s.batch, |x| x.per_report);
    let m_native = median(s.native.clone());
    let m_obs1 = median_of(&s.obs1, |x| x.time);
    let m_obs16 = median_of(&s.obs16, |x| x.time);
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let obs_note = |v: &[ObsRun]| {
        let (counts, dropped) = obs_counts(v);
        let t = median_of(v, |x| x.tracee).map_or("-".into(), fmt_time);
        let ms = |f: fn(&ObsRun) -> f64| {
            median_of(v, f).map_or("-".into(), |x| format!("{:.0}", x * 1e3))
        };
        format!(
            "{counts} reports/observer, {dropped} dropped; tracee {t}; CPU ms: {} (tracer {}, tokio {}, main {}, tracee {})",
            ms(|x| x.cpu),
            ms(|x| x.cpu_split.tracer),
            ms(|x| x.cpu_split.tokio),
            ms(|x| x.cpu_split.main),
            ms(|x| x.cpu_split.tracee)
        )
    };

    // What no design can beat on this machine: one bare round trip plus
    // one ptrace report cycle (goal 1's floor), and goal 2's ratio if the
    // server added nothing to either path (a report cycle against a report
    // cycle plus a bare round trip).
    let floor1 = m_echo.zip(m_local).map(|(a, c)| a + c);
    let zero2 = floor1.zip(m_echo).map(|(f, a)| f + a);
    let x1 = ratio(m_sync, m_echo);
    let x2 = ratio(m_batch, m_exp);
    let x3 = ratio(m_obs16, m_obs1);
    let rows = vec![
        Row {
            note: "echo from a task through a channel".into(),
            ..Row::plain("(1a) bare tonic bidi ping-pong (reference)", m_echo, "/rt")
        },
        Row {
            ratio: ratio(m_mapped, m_echo).map(|r| (r, "(1b)/(1a)")),
            note: "context: echo as a mapped stream".into(),
            ..Row::plain("(1b) bare tonic ping-pong, no task", m_mapped, "/rt")
        },
        Row {
            ratio: ratio(m_local, m_echo).map(|r| (r, "(1c)/(1a)")),
            note: "context: engine layer in-process, resumes at once".into(),
            ..Row::plain("(1c) in-process engine, openat -> Resume", m_local, "/rep")
        },
        Row {
            ratio: ratio(m_local_hold, m_echo).map(|r| (r, "(1d)/(1a)")),
            note: "context: Stop, Tracer::decide from a tokio task".into(),
            ..Row::plain(
                "(1d) in-process engine, Stop -> decide",
                m_local_hold,
                "/rep",
            )
        },
        Row {
            ratio: ratio(floor1, m_echo).map(|r| (r, "(1*)/(1a)")),
            note: "bound: (1) with no server work at all; goal 1 needs (1*)/(1a) <= 1.5".into(),
            ..Row::plain("(1*) floor of (1) = (1a) + (1c)", floor1, "/rep")
        },
        Row {
            ratio: x1.map(|r| (r, "(1)/(1a)")),
            goal: "<= 1.5x (1a)",
            met: verdict(x1, &s.paired[0], |r| r <= 1.5),
            note: paired_note(&s.paired[0]) + &sync_note(&s.sync),
            ..Row::plain("(1) Session sync: openat held -> resume", m_sync, "/rep")
        },
        Row {
            ratio: ratio(m_exp, m_sync).map(|r| (r, "(2a)/(1)")),
            note: sync_note(&s.expedite),
            ..Row::plain("(2a) openat + expedited path -> resume", m_exp, "/ev")
        },
        Row {
            ratio: x2.map(|r| (r, "(2b)/(2a)")),
            goal: ">= 1.8x speed-up",
            met: verdict(x2, &s.paired[1], |r| r >= 1.8),
            note: paired_note(&s.paired[1]) + &sync_note(&s.batch),
            ..Row::plain("(2b) openat, batch read_string -> resume", m_batch, "/ev")
        },
        Row {
            ratio: ratio(zero2, floor1).map(|r| (r, "(2*)/(1*)")),
            note: "bound: (2b)/(2a) if the server added nothing to either path; \
                   goal 2 needs it >= 1.8"
                .into(),
            ..Row::plain("(2*) (2b) with no server work = (1*) + (1a)", zero2, "/ev")
        },
        Row::plain(&format!("(3n) native syscall_loop {OBS_N}"), m_native, ""),
        Row {
            ratio: ratio(m_obs1, m_native).map(|r| (r, "(3a)/(3n)")),
            note: obs_note(&s.obs1),
            ..Row::plain("(3a) 1 async observer", m_obs1, "")
        },
        Row {
            ratio: x3.map(|r| (r, "(3b)/(3a)")),
            goal: "<= 1.3x (3a)",
            met: verdict(x3, &s.paired[2], |r| r <= 1.3),
            note: paired_note(&s.paired[2]) + &obs_note(&s.obs16),
            ..Row::plain(&format!("(3b) {OBSERVERS} async observers"), m_obs16, "")
        },
    ];

    let mut table = String::new();
    let _ = writeln!(
        table,
        "\nSession performance; median of {runs} runs (after 1 warm-up round)\n\
         (1), (2): syscall_loop {SYNC_N} 1 /dev/null (LD_LIBRARY_PATH=\"\"), sync engine on openat entries; \
         ping-pong: {PINGS} round trips\n\
         (3): syscall_loop {OBS_N}, async engines on getppid entries\n\
         machine: {cpus} CPUs; other processes kept {} of them busy on average during the runs\n",
        others.map_or("?".into(), |o| format!("{o:.2}"))
    );
    let _ = writeln!(
        table,
        "{:<42} {:>14} {:>7} {:<10} {:<17} {:<5} notes",
        "variant", "median", "ratio", "of", "goal", "met"
    );
    for r in &rows {
        let median = r
            .median
            .map_or("-".into(), |m| format!("{}{}", fmt_time(m), r.unit));
        let (ratio, of) = r
            .ratio
            .map_or((String::new(), ""), |(x, of)| (format!("{x:.2}"), of));
        let met = r.met.unwrap_or("");
        let _ = writeln!(
            table,
            "{:<42} {median:>14} {ratio:>7} {of:<10} {:<17} {met:<5} {}",
            r.name, r.goal, r.note
        );
    }
    let _ = writeln!(
        table,
        "\n/rt: per round trip; /rep, /ev: (first report -> death report) / held reports (the loader's few \
         openat probes included)\n\
         out: report made on the tracer thread -> client has it; client: -> decision handed to the \
         client library (2b: the batch round trip);\n\
         back: -> next report made (server inbound, resume, the tracee's next iteration, its stop)\n\
         (3): release Batch -> death on the first observer's stream; tracee: release -> death as \
         stamped by the server; CPU: server + clients + tracee, release -> last stream's end\n\
         (the threads in 10 ms ticks)"
    );
    out.write_all(table.as_bytes()).expect("write the table");
    out.flush().expect("flush");

    drop(clients);
    rt.block_on(async {
        echo.stop().await;
        echo_mapped.stop().await;
    });
    rt.block_on(srv.stop()).expect("stop utraced");
    let _ = std::fs::remove_dir_all(&scratch);
}
