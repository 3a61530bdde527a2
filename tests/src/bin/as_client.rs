//! A utraced client that first becomes another user, driven line by line:
//! the security tests run it with the credentials of an unprivileged user
//! they create, and ask the same process for the kernel's own verdict
//! (`seize`), so utraced's answer can be compared with the kernel's.
//!
//! Usage: `as_client [--uid U] [--gid G] [--groups A,B] [--caps HEX]
//! [--handoff] URI`, then one command per line on stdin; each answer is one
//! line on stdout: `ok …`, `err CODE MESSAGE` (a failed call) or
//! `operr MESSAGE` (a failed op in a successful batch). Reports of streams
//! opened with `events` arrive as `event ENGINE KIND key=value…` lines, and
//! `end ENGINE CODE` when the stream ends.
//!
//! Commands:
//! - `info` → `ok uid=U gid=G any=BOOL`
//! - `attach PID [events=K,K] ` → `ok engine=E`
//! - `spawn [nofilter] [stop] [cwd=DIR] [runas=UID:GID] [env=K=V]… [events=K,K] [syscalls=S,S] -- ARGV…`
//!   → `ok pid=P engine=E`
//! - `events E` → `ok`, then event lines
//! - `probe PID SYMBOL` → `ok engine=E` once a Probe counting the calls
//!   of SYMBOL (in PID's executable) is placed; when its stream ends,
//!   `end E count=N reason=WHY`
//! - `read E TID ADDR LEN` (hex ADDR) → `ok HEX`
//! - `write E TID ADDR HEX` → `ok`
//! - `regs E TID NAME…` → `ok NAME=0xVALUE…`
//! - `detach E` → `ok`
//! - `leave E PID` → `ok`: engine E off process PID alone
//! - `list` → `ok TID:PID:ENGINES …`
//! - `activity` → `ok tasks=TID,… procs=PID,… engines=E,…` (GetActivity)
//! - `conns N`: open N more plain connections to the socket and hold them
//!   → `ok held=TOTAL`
//! - `session-hold PID` → `ok engine=E`: a Session's sync engine that holds
//!   every syscall entry of PID and never decides (`event E held …` lines)
//! - `batch-loop E TID N` → `ok` after N register batches
//! - `seize PID`: the kernel's verdict for these credentials
//!   (`PTRACE_SEIZE` then `PTRACE_DETACH`) → `ok` or `err ERRNO`
//!
//! `--handoff`: connect, fork, print `parent=PID` and let the parent exit;
//! the child waits for a line `go` on stdin and then serves commands over
//! the connection its parent made (the tests reuse the parent's pid for a
//! root process meanwhile: the server must not take the client to be it).

use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::{Arc, Mutex};

use tokio_stream::StreamExt;
use utrace_client::pb;

type Raw = pb::tracer_client::TracerClient<utrace_client::Transport>;

/// The server's socket path, for `conns`.
static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// Connections `conns` holds open.
static HELD: Mutex<Vec<std::os::unix::net::UnixStream>> = Mutex::new(Vec::new());

fn die(msg: &str) -> ! {
    eprintln!("as_client: {msg}");
    std::process::exit(2)
}

struct Opts {
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Vec<u32>,
    caps: Option<u64>,
    handoff: bool,
    uri: String,
}

fn parse() -> Opts {
    let mut o = Opts {
        uid: None,
        gid: None,
        groups: Vec::new(),
        caps: None,
        handoff: false,
        uri: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a}: needs a value")))
        };
        match a.as_str() {
            "--uid" => o.uid = val().parse().ok(),
            "--gid" => o.gid = val().parse().ok(),
            "--groups" => {
                o.groups = val()
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(|g| g.parse().unwrap_or_else(|_| die("bad group")))
                    .collect()
            }
            "--caps" => {
                o.caps = Some(u64::from_str_radix(&val(), 16).unwrap_or_else(|_| die("bad caps")))
            }
            "--handoff" => o.handoff = true,
            uri => o.uri = uri.to_string(),
        }
    }
    if o.uri.is_empty() {
        die("usage: as_client [--uid U] [--gid G] [--groups A,B] [--caps HEX] [--handoff] URI");
    }
    o
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Become the user: groups, gid, uid; with `caps`, keep those
/// capabilities permitted and effective.
fn become_user(o: &Opts) {
    let Some(uid) = o.uid else { return };
    let gid = o.gid.unwrap_or(uid);
    // SAFETY: plain syscalls on valid buffers; failures are checked.
    unsafe {
        if o.caps.is_some() && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            die("PR_SET_KEEPCAPS failed");
        }
        if libc::setgroups(o.groups.len(), o.groups.as_ptr()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
        {
            die(&format!(
                "cannot become uid {uid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        if let Some(caps) = o.caps {
            let hdr = CapHeader {
                version: 0x2008_0522,
                pid: 0,
            };
            let data = [
                CapData {
                    effective: caps as u32,
                    permitted: caps as u32,
                    inheritable: 0,
                },
                CapData {
                    effective: (caps >> 32) as u32,
                    permitted: (caps >> 32) as u32,
                    inheritable: 0,
                },
            ];
            if libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) != 0 {
                die(&format!("capset: {}", std::io::Error::last_os_error()));
            }
        }
    }
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, line: &str) {
    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn status_line(s: &tonic::Status) -> String {
    format!("err {:?} {}", s.code(), s.message().replace('\n', " "))
}

fn kinds(list: &str) -> Vec<i32> {
    list.split(',')
        .filter(|k| !k.is_empty())
        .map(|k| {
            pb::EventKind::from_str_name(&format!("EVENT_KIND_{}", k.to_uppercase()))
                .unwrap_or_else(|| die(&format!("unknown event kind {k}"))) as i32
        })
        .collect()
}

fn event_line(engine: u64, ev: &pb::Event) -> Option<String> {
    use pb::event::Kind;
    let detail = match ev.kind.as_ref()? {
        Kind::Attached(_) => "attached".to_string(),
        Kind::SyscallEntry(e) => format!("syscall_entry name={}", e.name),
        Kind::SyscallExit(e) => format!("syscall_exit name={} ret={}", e.name, e.ret),
        Kind::Signal(s) => format!("signal signo={}", s.signo),
        Kind::Clone(c) => format!("clone child={}", c.child_pid),
        Kind::Exec(x) => format!("exec exe={}", x.exe),
        Kind::Exit(_) => "exit".to_string(),
        Kind::Death(d) => format!("death gone={}", d.process_gone),
        Kind::Breakpoint(b) => format!("breakpoint addr={:#x}", b.addr),
        Kind::Step(_) => "step".to_string(),
        Kind::Revoked(r) => format!("revoked reason={}", r.reason.replace(' ', "_")),
        Kind::Output(o) => format!("output fd={} bytes={}", o.fd, o.data.len()),
        Kind::GroupStop(g) => format!("group_stop signo={}", g.signo),
        Kind::Watchpoint(w) => format!("watchpoint addr={:#x} len={}", w.addr, w.len),
        Kind::ChildStart(c) => format!("child_start parent={}", c.parent_pid),
    };
    Some(format!(
        "event {engine} {detail} pid={} tid={}",
        ev.pid, ev.tid
    ))
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or_else(|_| die("bad hex")))
        .collect()
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| die(&format!("bad number {s}")))
}

fn batch_op(op: pb::op::Op) -> pb::Op {
    pb::Op { op: Some(op) }
}

async fn batch(
    c: &mut Raw,
    engine: u64,
    tid: u64,
    ops: Vec<pb::Op>,
) -> Result<pb::OpResult, String> {
    match c
        .batch(pb::BatchRequest {
            engine_id: engine,
            tid: tid as u32,
            ops,
            interrupt: true,
            ..Default::default()
        })
        .await
    {
        Ok(r) => r
            .into_inner()
            .results
            .into_iter()
            .next()
            .ok_or_else(|| "operr no result".to_string()),
        Err(s) => Err(status_line(&s)),
    }
}

fn seize(pid: i32) -> String {
    // SAFETY: plain ptrace requests on a pid; no memory is passed.
    unsafe {
        if libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) != 0 {
            let e = std::io::Error::last_os_error();
            return format!("err {}", e.raw_os_error().map_or("?".into(), errno_name));
        }
        // Seized without stopping it: interrupt, wait for the stop, detach.
        libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0usize, 0usize);
        let mut st = 0;
        libc::waitpid(pid, &mut st, libc::__WALL);
        libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize);
    }
    "ok".into()
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::EACCES => "EACCES".into(),
        other => format!("errno{other}"),
    }
}

async fn command(c: &mut Raw, out: &Out, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["info"] => match c.get_server_info(pb::GetServerInfoRequest {}).await {
            Ok(i) => {
                let caller = i.into_inner().caller.unwrap_or_default();
                format!(
                    "ok uid={} gid={} any={}",
                    caller.uid, caller.gid, caller.may_trace_any
                )
            }
            Err(s) => status_line(&s),
        },
        ["attach", pid, rest @ ..] => {
            let mut spec = pb::EngineSpec::default();
            for r in rest {
                if let Some(k) = r.strip_prefix("events=") {
                    spec.events = kinds(k);
                }
            }
            match c
                .attach(pb::AttachRequest {
                    pid: num(pid) as u32,
                    engine: Some(spec),
                })
                .await
            {
                Ok(r) => format!("ok engine={}", r.into_inner().engine_id),
                Err(s) => status_line(&s),
            }
        }
        ["spawn", rest @ ..] => {
            let split = rest
                .iter()
                .position(|w| *w == "--")
                .unwrap_or_else(|| die("spawn: no --"));
            let mut req = pb::SpawnRequest {
                argv: rest[split + 1..].iter().map(|s| s.to_string()).collect(),
                engine: Some(pb::EngineSpec::default()),
                ..Default::default()
            };
            for o in &rest[..split] {
                let spec = req.engine.as_mut().expect("set above");
                match *o {
                    "nofilter" => req.no_kernel_filter = true,
                    "stop" => req.stop_at_entry = true,
                    o if o.starts_with("cwd=") => req.cwd = o[4..].into(),
                    o if o.starts_with("runas=") => {
                        let (u, g) = o[6..]
                            .split_once(':')
                            .unwrap_or_else(|| die("runas=UID:GID"));
                        req.run_as = Some(pb::RunAs {
                            uid: num(u) as u32,
                            gid: num(g) as u32,
                            groups: Vec::new(),
                        });
                    }
                    o if o.starts_with("env=") => {
                        let (k, v) = o[4..].split_once('=').unwrap_or_else(|| die("env=K=V"));
                        req.env.insert(k.into(), v.into());
                    }
                    o if o.starts_with("events=") => spec.events = kinds(&o[7..]),
                    o if o.starts_with("syscalls=") => {
                        spec.syscalls = o[9..].split(',').map(str::to_string).collect()
                    }
                    other => die(&format!("spawn: unknown option {other}")),
                }
            }
            match c.spawn(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    format!("ok pid={} engine={}", r.pid, r.engine_id)
                }
                Err(s) => status_line(&s),
            }
        }
        ["probe", pid, symbol] => {
            let req = pb::ProbeRequest {
                target: Some(pb::probe_request::Target::Pid(num(pid) as u32)),
                clauses: vec![pb::ProbeClause {
                    points: vec![pb::ProbePoint {
                        point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
                            symbol: symbol.to_string(),
                            ..Default::default()
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
            let mut stream = match c.probe(req).await {
                Ok(r) => r.into_inner(),
                Err(s) => return status_line(&s),
            };
            use pb::probe_report::Kind;
            let engine = match stream.next().await {
                Some(Ok(pb::ProbeReport {
                    kind: Some(Kind::Started(st)),
                })) => st.engine_id,
                Some(Err(s)) => return status_line(&s),
                other => return format!("err Internal no start: {other:?}"),
            };
            let out = Arc::clone(out);
            tokio::spawn(async move {
                let (mut count, mut reason) = (0, String::new());
                while let Some(Ok(m)) = stream.next().await {
                    match m.kind {
                        Some(Kind::Snapshot(s)) => {
                            count = s
                                .maps
                                .first()
                                .and_then(|m| m.entries.first())
                                .map_or(0, |e| e.value);
                        }
                        Some(Kind::Ended(e)) => reason = e.reason.replace(' ', "_"),
                        _ => {}
                    }
                }
                say(&out, &format!("end {engine} count={count} reason={reason}"));
            });
            format!("ok engine={engine}")
        }
        ["events", engine] => {
            let engine = num(engine);
            match c.events(pb::EventsRequest { engine_id: engine }).await {
                Ok(r) => {
                    let mut stream = r.into_inner();
                    let out = Arc::clone(out);
                    tokio::spawn(async move {
                        let code = loop {
                            match stream.next().await {
                                Some(Ok(ev)) => {
                                    if let Some(l) = event_line(engine, &ev) {
                                        say(&out, &l);
                                    }
                                }
                                Some(Err(s)) => break format!("{:?}", s.code()),
                                None => break "Ok".into(),
                            }
                        };
                        say(&out, &format!("end {engine} {code}"));
                    });
                    "ok".into()
                }
                Err(s) => status_line(&s),
            }
        }
        ["read", engine, tid, addr, len] => {
            let op = batch_op(pb::op::Op::ReadMemory(pb::ReadMemory {
                addr: num(addr),
                len: num(len) as u32,
            }));
            match batch(c, num(engine), num(tid), vec![op]).await {
                Ok(pb::OpResult {
                    result: Some(pb::op_result::Result::Memory(m)),
                }) if m.error.is_empty() => format!("ok {}", hex(&m.data)),
                Ok(r) => format!("operr {r:?}"),
                Err(e) => e,
            }
        }
        ["write", engine, tid, addr, data] => {
            let op = batch_op(pb::op::Op::WriteMemory(pb::WriteMemory {
                addr: num(addr),
                data: unhex(data).into(),
            }));
            match batch(c, num(engine), num(tid), vec![op]).await {
                Ok(pb::OpResult {
                    result: Some(pb::op_result::Result::Done(_)),
                }) => "ok".into(),
                Ok(r) => format!("operr {r:?}"),
                Err(e) => e,
            }
        }
        ["regs", engine, tid, names @ ..] => {
            let op = batch_op(pb::op::Op::GetRegisters(pb::GetRegisters {
                names: names.iter().map(|s| s.to_string()).collect(),
            }));
            match batch(c, num(engine), num(tid), vec![op]).await {
                Ok(pb::OpResult {
                    result: Some(pb::op_result::Result::Registers(r)),
                }) => {
                    let mut v: Vec<_> = r.values.into_iter().collect();
                    v.sort();
                    let vals: Vec<String> = v.iter().map(|(k, x)| format!("{k}={x:#x}")).collect();
                    format!("ok {}", vals.join(" "))
                }
                Ok(r) => format!("operr {r:?}"),
                Err(e) => e,
            }
        }
        ["detach", engine] => match c
            .detach(pb::DetachRequest {
                engine_id: num(engine),
                pid: 0,
            })
            .await
        {
            Ok(_) => "ok".into(),
            Err(s) => status_line(&s),
        },
        ["leave", engine, pid] => match c
            .detach(pb::DetachRequest {
                engine_id: num(engine),
                pid: num(pid) as u32,
            })
            .await
        {
            Ok(_) => "ok".into(),
            Err(s) => status_line(&s),
        },
        ["list"] => match c.list_tasks(pb::ListTasksRequest { pid: 0 }).await {
            Ok(r) => {
                let tasks: Vec<String> = r
                    .into_inner()
                    .tasks
                    .iter()
                    .map(|t| format!("{}:{}:{:?}", t.tid, t.pid, t.engines))
                    .collect();
                format!("ok {}", tasks.join(" "))
            }
            Err(s) => status_line(&s),
        },
        ["activity"] => match c
            .get_activity(pb::GetActivityRequest {
                pid: 0,
                top_syscalls: 0,
            })
            .await
        {
            Ok(r) => {
                let a = r.into_inner();
                let join = |v: Vec<String>| v.join(",");
                format!(
                    "ok tasks={} procs={} engines={}",
                    join(a.tasks.iter().map(|t| t.tid.to_string()).collect()),
                    join(a.processes.iter().map(|p| p.pid.to_string()).collect()),
                    join(a.engines.iter().map(|e| e.engine_id.to_string()).collect()),
                )
            }
            Err(s) => status_line(&s),
        },
        ["seize", pid] => seize(num(pid) as i32),
        ["session-hold", pid] => {
            // A Session whose sync engine holds every syscall entry of `pid`
            // and never decides.
            let (tx, rx) = tokio::sync::mpsc::channel::<pb::ClientMessage>(4);
            let attach = pb::ClientMessage {
                id: 1,
                msg: Some(pb::client_message::Msg::Attach(pb::AttachRequest {
                    pid: num(pid) as u32,
                    engine: Some(pb::EngineSpec {
                        sync: true,
                        events: kinds("syscall_entry"),
                        deadline_ms: Some(600_000),
                        ..Default::default()
                    }),
                })),
            };
            let _ = tx.send(attach).await;
            let mut replies = match c
                .session(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) => return status_line(&s),
            };
            let engine = match replies.message().await {
                Ok(Some(pb::ServerMessage {
                    msg: Some(pb::server_message::Msg::Attached(a)),
                    ..
                })) => a.engine_id,
                other => return format!("err session {other:?}"),
            };
            let out = Arc::clone(out);
            tokio::spawn(async move {
                let _keep = tx;
                let code = loop {
                    match replies.message().await {
                        Ok(Some(m)) => {
                            if let Some(pb::server_message::Msg::Report(ev)) = m.msg {
                                say(
                                    &out,
                                    &format!("event {engine} held seq={} tid={}", ev.seq, ev.tid),
                                );
                            }
                        }
                        Ok(None) => break "Ok".to_string(),
                        Err(s) => break format!("{:?}", s.code()),
                    }
                };
                say(&out, &format!("end {engine} {code}"));
            });
            format!("ok engine={engine}")
        }
        ["batch-loop", engine, tid, n] => {
            for _ in 0..num(n) {
                let op = batch_op(pb::op::Op::GetRegisters(pb::GetRegisters {
                    names: vec!["rip".into()],
                }));
                if let Err(e) = batch(c, num(engine), num(tid), vec![op]).await {
                    return e;
                }
            }
            "ok".into()
        }
        ["conns", n] => {
            // Plain connections to the same socket, held open (no HTTP/2).
            let Some(path) = PATH.get() else {
                return "err conns needs a unix:// server".into();
            };
            let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
            for _ in 0..num(n) {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(s) => held.push(s),
                    Err(e) => return format!("err connect {e}"),
                }
            }
            format!("ok held={}", held.len())
        }
        _ => die(&format!("unknown command: {line}")),
    }
}

fn main() {
    let o = parse();
    let path = o.uri.strip_prefix("unix://").map(str::to_string);
    if let Some(p) = &path {
        let _ = PATH.set(p.clone());
    }
    // With --handoff the connection is made now, before the fork, by the
    // process that then exits.
    let early = if o.handoff {
        become_user(&o);
        let p = path
            .clone()
            .unwrap_or_else(|| die("--handoff needs a unix:// URI"));
        let s = std::os::unix::net::UnixStream::connect(&p)
            .unwrap_or_else(|e| die(&format!("connect {p}: {e}")));
        // SAFETY: no threads run yet; the child continues as this program.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            die("fork failed");
        }
        if pid > 0 {
            // Long enough for the server to accept the connection while
            // this process lives (it reads its credentials then).
            std::thread::sleep(std::time::Duration::from_millis(300));
            println!("parent={}", std::process::id());
            let _ = std::io::stdout().flush();
            // SAFETY: _exit ends the process without running destructors
            // (the socket stays open in the child).
            unsafe { libc::_exit(0) };
        }
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        Some(s.into_raw_fd())
    } else {
        become_user(&o);
        None
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    rt.block_on(async move {
        let mut c: Raw = match early {
            Some(fd) => {
                // SAFETY: the fd is the connected socket made above, ours alone.
                let s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
                let _ = s.set_nonblocking(true);
                let s = tokio::net::UnixStream::from_std(s)
                    .unwrap_or_else(|e| die(&format!("socket: {e}")));
                let slot = Arc::new(Mutex::new(Some(s)));
                tonic::transport::Endpoint::from_static("http://utraced.invalid")
                    .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                        let s = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                        async move {
                            s.map(hyper_util::rt::TokioIo::new)
                                .ok_or_else(|| std::io::Error::other("one connection only"))
                        }
                    }))
                    .await
                    .map(|ch| Raw::new(utrace_client::Transport::Channel(ch)))
                    .unwrap_or_else(|e| die(&format!("channel: {e}")))
            }
            None => match utrace_client::Client::connect(&o.uri).await {
                Ok(mut c) => c.raw().clone(),
                Err(e) => {
                    println!("err connect {e}");
                    return;
                }
            },
        };
        let out: Out = Arc::new(Mutex::new(std::io::stdout()));
        say(&out, "ready");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line == "quit" {
                break;
            }
            let answer = command(&mut c, &out, line).await;
            say(&out, &answer);
        }
    });
}
