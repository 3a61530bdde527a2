//! A GDB remote serial protocol (RSP) server over utraced: gdb (and the
//! frontends that drive it) debug a process through one Session engine,
//! while other clients trace the same process.
//!
//! Protocol handling is the `gdbstub` crate's; this module gives it a
//! target ([`target::Bridge`]: registers, memory, breakpoints, resume and
//! step through the server) and an event loop that waits for the debugger
//! and the server at once ([`link::Link`]).
//!
//! ```no_run
//! # async fn f(client: utrace_client::Client) {
//! use utrace_client::gdb::{serve, What};
//! let rt = tokio::runtime::Handle::current();
//! let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let (sock, _) = listener.accept().unwrap();
//! let read = sock.try_clone().unwrap();
//! std::thread::spawn(move || serve(rt, client, What::Attach(1234), read, Box::new(sock)));
//! # }
//! ```
//!
//! Served today: the target description (general, x87, SSE, `orig_rax`,
//! `fs_base`, `gs_base`), `g`/`G`, `m`/`M`, software breakpoints
//! (`Z0`/`z0`, through the server's shared breakpoint table, so hidden
//! from other clients' reads), hardware breakpoints and watchpoints
//! (`Z1`, `Z2`, `Z4`: the process's debug-register slots, shared with the
//! server's other engines; `Z3` answered as unsupported, as gdbserver does
//! on x86, so gdb uses an access watchpoint), `QCatchSyscalls` (the
//! engine's syscall set), `vCont` continue, step and range step (`r`:
//! stepped inside the server, one report when the pc leaves) per thread with
//! signals (in gdb's numbering: [`signals`]), Ctrl-C, thread lists, exit
//! and signal deaths, `qXfer:libraries-svr4` ([`libraries`]), `QPassSignals`
//! and `qXfer:threads` ([`threads`]; both answered in [`link`]), forks
//! and execs ([`fork`]), `qXfer:exec-file`
//! (the debugger then reads the executable from this machine), `detach`
//! and `kill`; with [`Options::multi`], extended mode as gdbserver
//! `--multi`'s: `run` and `attach`, the session outliving each process.

pub mod arch;
pub mod fork;
pub mod hostio;
pub mod libraries;
pub mod link;
pub mod lldb;
pub mod regions;
pub mod signals;
pub mod target;
pub mod threads;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub};
use utrace_proto::v1 as pb;

use crate::Client;
use link::{Inbox, Input, Link, Next, Shared};
use target::{Bridge, BridgeError, StopReason};
use tokio::sync::mpsc;

/// What to debug.
#[derive(Clone, Debug)]
pub enum What {
    /// Nothing yet: the debugger runs a program or attaches to a process
    /// (gdb's `target extended-remote` with `run` and `attach`; as
    /// gdbserver `--multi` with no program). Serve it with
    /// [`Options::multi`].
    Nothing,
    /// A running process (all its threads).
    Attach(u32),
    /// A program to start, held at its first instruction: argv, env
    /// (the whole environment), working directory, and its stdio:
    /// `STDIO_DEFAULT` (an embedded server: the bridge's own; a daemon:
    /// `/dev/null`), or `STDIO_PIPES` (what it writes comes with the
    /// reports and goes to the bridge's own standard output and error, as
    /// gdbserver's program writes on gdbserver's terminal; its stdin is
    /// empty); and with `disable_aslr`, address space randomization off
    /// (gdbserver's default; gdb's `set disable-randomization` changes it
    /// for the next `run`).
    Spawn {
        argv: Vec<String>,
        env: std::collections::HashMap<String, String>,
        cwd: String,
        stdio: pb::Stdio,
        disable_aslr: bool,
    },
}

/// How a debugging session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The debugger detached (the process runs on, untraced by this engine).
    Detached,
    /// The debugger asked to kill the process.
    Killed,
    /// The process exited.
    Exited,
    /// The debugger went away (the process runs on).
    DebuggerGone,
}

/// Why a session could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum GdbError {
    #[error("{0}")]
    Bridge(#[from] BridgeError),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// The events a debugger's engine reports: stops it shows (breakpoints,
/// watchpoints, steps, signals) hold the thread; threads come and go;
/// death ends it.
fn engine_spec() -> pb::EngineSpec {
    use pb::EventKind as K;
    pb::EngineSpec {
        sync: true,
        events: engine_events(false),
        // Syscall stops are reported only while gdb catches some
        // (`catch syscall`: QCatchSyscalls changes the events).
        hold: [
            K::Exec,
            K::Breakpoint,
            K::Watchpoint,
            K::Step,
            K::Signal,
            K::SyscallEntry,
            K::SyscallExit,
            // A fork's parent waits for gdb, and so does its child (see
            // `fork`); threads are let go at once, with no round trip.
            K::Clone,
            K::ChildStart,
        ]
        .into_iter()
        .map(|k| k as i32)
        .collect(),
        // A debugger's user may look at a stop for a long time; the
        // bridge decides HOLD (no deadline) as soon as it sees a report.
        deadline_ms: Some(86_400_000),
        follow_children: true,
        // Every register of gdb's `g` packet comes with each report: the
        // `g` gdb sends right after a stop needs no round trip.
        // So does the memory gdb reads right after a stop: the code
        // around the pc (the instruction, for stepi and prologue
        // analysis) and the stack around the stack pointer (the frame's
        // return address and locals).
        expedite: Some(pb::Expedite {
            registers: arch::WORDS.iter().map(|s| s.to_string()).collect(),
            register_bytes: arch::WIDE.iter().map(|s| s.to_string()).collect(),
            memory: STOP_MEMORY
                .iter()
                .map(|(register, offset, len)| pb::MemRef {
                    register: register.to_string(),
                    len: *len,
                    string: false,
                    offset: *offset,
                })
                .collect(),
        }),
        ..Default::default()
    }
}

/// The memory each report brings (register, offset from its value,
/// bytes): what gdb reads right after a stop (measured: the pc's byte,
/// twice, and 64 bytes from 8 below the stack pointer), with a margin.
pub(crate) const STOP_MEMORY: [(&str, i32, u32); 2] = [("rip", -64, 192), ("rsp", -256, 1280)];

/// The report kinds of the bridge's engine; with syscall stops while gdb
/// catches syscalls.
pub(crate) fn engine_events(syscalls: bool) -> Vec<i32> {
    use pb::EventKind as K;
    let mut v = vec![
        K::Breakpoint,
        K::Watchpoint,
        K::Step,
        K::Signal,
        K::Clone,
        K::ChildStart,
        K::Exec,
        K::Exit,
        K::Death,
    ];
    if syscalls {
        v.extend([K::SyscallEntry, K::SyscallExit]);
    }
    v.into_iter().map(|k| k as i32).collect()
}

/// What the program wrote (`STDIO_PIPES`), on this process's own
/// standard output or error. A broken one loses it; the session goes on.
fn write_output(o: &pb::Output) {
    use std::io::Write as _;
    let _ = if o.fd == 2 {
        let mut e = std::io::stderr().lock();
        e.write_all(&o.data).and_then(|()| e.flush())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(&o.data).and_then(|()| out.flush())
    };
}

/// Batch replies awaited on a Session stream, by the id of the message
/// that asked (see `Bridge::ordered_batch`): the reply, or the refusal's
/// message. The forwarder hands them over; when the stream ends, every
/// waiter is dropped.
pub(crate) type Awaited = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, Reply>>>;

/// Where one awaited batch reply goes (see [`Awaited`]).
pub(crate) type Reply = tokio::sync::oneshot::Sender<Result<pb::BatchReply, String>>;

/// A Session and its engine, as [`open`] made them.
pub(crate) struct Opened {
    pub session: mpsc::Sender<pb::ClientMessage>,
    pub awaited: Awaited,
    pub engine: u64,
    pub pid: u32,
    pub tids: Vec<u32>,
    /// The task that forwards the engine's reports.
    pub forwarder: tokio::task::JoinHandle<()>,
}

/// Open the Session, create the engine (attach or spawn), and start
/// forwarding its reports to `inbox`. When the Session ends, the inbox is
/// told so only while `current` still names this engine (a session the
/// bridge has left ends quietly).
pub(crate) async fn open(
    client: &mut Client,
    what: &What,
    inbox: Inbox,
    current: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<Opened, GdbError> {
    let (tx, rx) = mpsc::channel::<pb::ClientMessage>(64);
    let first = match what {
        What::Nothing => {
            return Err(BridgeError::Unsupported("opening a session for no process").into())
        }
        What::Attach(pid) => pb::client_message::Msg::Attach(pb::AttachRequest {
            pid: *pid,
            engine: Some(engine_spec()),
        }),
        What::Spawn {
            argv,
            env,
            cwd,
            stdio,
            disable_aslr,
        } => pb::client_message::Msg::Spawn(pb::SpawnRequest {
            argv: argv.clone(),
            env: env.clone(),
            cwd: cwd.clone(),
            stop_at_entry: true,
            engine: Some(engine_spec()),
            no_kernel_filter: false,
            stdio: *stdio as i32,
            window: None,
            run_as: None,
            environ: Vec::new(),
            disable_aslr: *disable_aslr,
        }),
    };
    let _ = tx
        .send(pb::ClientMessage {
            id: 1,
            msg: Some(first),
        })
        .await;
    let mut replies = client
        .raw()
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(BridgeError::from_status)?
        .into_inner();
    let attached = loop {
        match replies.message().await {
            Ok(Some(pb::ServerMessage {
                msg: Some(pb::server_message::Msg::Attached(a)),
                ..
            })) => break a,
            Ok(Some(pb::ServerMessage {
                msg: Some(pb::server_message::Msg::Error(e)),
                ..
            })) => return Err(BridgeError::Server(e.message).into()),
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(
                    BridgeError::SessionGone("ended before the engine existed".into()).into(),
                )
            }
            Err(s) => return Err(BridgeError::from_status(s).into()),
        }
    };
    let engine = attached.engine_id;
    current.store(engine, std::sync::atomic::Ordering::SeqCst);
    let awaited: Awaited = Default::default();
    let waiters = awaited.clone();
    let answer = move |id: u64, r: Result<pb::BatchReply, String>| {
        let w = waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(w) = w {
            let _ = w.send(r);
        }
    };
    let waiters = awaited.clone();
    let forwarder = tokio::spawn(async move {
        let why = loop {
            match replies.message().await {
                Ok(Some(pb::ServerMessage {
                    msg: Some(pb::server_message::Msg::BatchReply(r)),
                    in_reply_to,
                })) => answer(in_reply_to, Ok(r)),
                Ok(Some(pb::ServerMessage {
                    msg: Some(pb::server_message::Msg::Error(e)),
                    in_reply_to,
                })) => answer(in_reply_to, Err(e.message)),
                Ok(Some(pb::ServerMessage {
                    msg: Some(pb::server_message::Msg::Report(ev)),
                    ..
                })) => {
                    if let Some(pb::event::Kind::Output(o)) = &ev.kind {
                        write_output(o);
                        continue;
                    }
                    if inbox.send(Input::Report(Box::new(ev))).await.is_err() {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break "the session ended".to_string(),
                Err(s) => break format!("the session failed: {}", s.message()),
            }
        };
        waiters.lock().unwrap_or_else(|e| e.into_inner()).clear();
        // Told only while the bridge is still on this engine.
        if current.load(std::sync::atomic::Ordering::SeqCst) == engine {
            let _ = inbox.send(Input::ServerGone(why)).await;
        }
    });
    Ok(Opened {
        session: tx,
        awaited,
        engine,
        pid: attached.pid,
        tids: attached.tids,
        forwarder,
    })
}

/// The largest packet the bridge takes and offers (`PacketSize`), about
/// gdbserver's (0x47ff). gdb reads a `target remote |` pipe one byte per
/// `read` (~1 µs a byte here), and its file reads (`vFile:pread`) fetch a
/// whole packet ahead: with 64 KiB packets it read 1.5 times the bytes
/// and `target remote` took 5.5 s on a Rust program where gdbserver took
/// 3.8 s; at 16 KiB, 3.8 s for both.
const PACKET_SIZE: usize = 16 * 1024;

enum Loop {}

impl BlockingEventLoop for Loop {
    type Target = Bridge;
    type Connection = Shared;
    type StopReason = StopReason;

    fn wait_for_stop_reason(
        target: &mut Bridge,
        conn: &mut Shared,
    ) -> Result<Event<StopReason>, WaitForStopReasonError<BridgeError, std::io::Error>> {
        loop {
            let next = conn.lock().next_input();
            match next.map_err(WaitForStopReasonError::Connection)? {
                Next::Byte(b) => return Ok(Event::IncomingData(b)),
                Next::Report(ev) => {
                    let stepped = matches!(ev.kind, Some(pb::event::Kind::Step(_)));
                    let stop = target
                        .on_report(*ev)
                        .map_err(WaitForStopReasonError::Target)?;
                    target
                        .resume_deferred(stop.is_some())
                        .map_err(WaitForStopReasonError::Target)?;
                    if let Some(stop) = stop {
                        target.expedite(&stop, stepped);
                        return Ok(Event::TargetStopped(stop));
                    }
                }
            }
        }
    }

    fn on_interrupt(target: &mut Bridge) -> Result<Option<StopReason>, BridgeError> {
        target.stop_all(true)?;
        Ok(Some(StopReason::SignalWithThread {
            tid: target.main_tid(),
            signal: gdbstub::common::Signal::SIGINT,
        }))
    }
}

/// How [`serve_with`] serves.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// As gdbserver `--multi`: the session outlives its process (its
    /// exit, gdb's `kill` and `detach`), and the debugger may `run` a
    /// program and `attach` to a process, again and again, until it
    /// disconnects.
    pub multi: bool,
    /// What gdb's `run` starts: a [`What::Spawn`] whose environment,
    /// directory and stdio the program gets, and whose argv is used when
    /// gdb names no program (`set remote exec-file`) or no arguments. An
    /// empty argv: gdb must name the program. `None`: the program given to
    /// serve, if any.
    pub program: Option<What>,
}

/// Where the debugger's bytes come from.
pub enum DebuggerInput {
    /// A socket or a pipe: the bridge's thread waits on it itself, beside
    /// the server's reports, so each packet reaches the stub with no other
    /// thread in between.
    Fd(OwnedFd),
    /// Any reader: read on a thread of its own.
    Reader(Box<dyn Read + Send>),
}

impl From<std::net::TcpStream> for DebuggerInput {
    fn from(s: std::net::TcpStream) -> Self {
        DebuggerInput::Fd(s.into())
    }
}

impl From<std::os::unix::net::UnixStream> for DebuggerInput {
    fn from(s: std::os::unix::net::UnixStream) -> Self {
        DebuggerInput::Fd(s.into())
    }
}

impl From<std::fs::File> for DebuggerInput {
    fn from(f: std::fs::File) -> Self {
        DebuggerInput::Fd(f.into())
    }
}

impl From<Box<dyn Read + Send>> for DebuggerInput {
    fn from(r: Box<dyn Read + Send>) -> Self {
        DebuggerInput::Reader(r)
    }
}

/// Serve one debugger on `input`/`output` until it detaches, kills the
/// process, the process exits, or the debugger goes away. Blocking: run
/// it on a thread of its own (it uses `rt` for the server's calls).
pub fn serve(
    rt: tokio::runtime::Handle,
    client: Client,
    what: What,
    input: impl Into<DebuggerInput>,
    output: Box<dyn Write + Send>,
) -> Result<Ended, GdbError> {
    serve_with(rt, client, what, Options::default(), input, output)
}

/// [`serve`], with [`Options`]. With `multi`, the session ends only when
/// the debugger goes away (or a kill without extended mode).
pub fn serve_with(
    rt: tokio::runtime::Handle,
    client: Client,
    what: What,
    opts: Options,
    input: impl Into<DebuggerInput>,
    output: Box<dyn Write + Send>,
) -> Result<Ended, GdbError> {
    prepare(rt, client, what, opts)?.serve(input, output)
}

/// A session made ready before its debugger comes (as gdbserver starts
/// its program before it listens): the program started and held at its
/// first instruction, every thread stopped for the debugger, or the
/// process attached; [`Prepared::serve`] then serves the debugger.
pub struct Prepared {
    what: What,
    inbox_rx: link::Receiving,
    /// The bridge, with its process when it has one.
    bridge: Bridge,
    /// Its threads are stopped for the debugger already (a program started
    /// here; an attached process runs on until the debugger comes).
    stopped: bool,
}

/// SIGKILL to process `pid`, with this process's own rights (as
/// gdbserver beside it would send it).
pub(crate) fn sigkill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Open the session for `what` (start the program, or attach), with no
/// debugger yet. A program started here has its threads stopped for the
/// debugger now, as gdbserver has before it listens: the debugger's
/// first packets then wait for no call to the server.
pub fn prepare(
    rt: tokio::runtime::Handle,
    mut client: Client,
    what: What,
    opts: Options,
) -> Result<Prepared, GdbError> {
    let (inbox_tx, inbox_rx) =
        link::inbox().map_err(|e| GdbError::Protocol(format!("the bridge's inbox: {e}")))?;
    let current = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let opened = match &what {
        What::Nothing if !opts.multi => {
            return Err(BridgeError::Unsupported("a session with no process without multi").into())
        }
        What::Nothing => None,
        w => Some(rt.block_on(open(&mut client, w, inbox_tx.clone(), current.clone()))?),
    };
    let spawned = matches!(what, What::Spawn { .. });
    let mut bridge = Bridge::new(rt, client, inbox_tx, current);
    bridge.multi = opts.multi;
    bridge.program = opts.program.or_else(|| spawned.then(|| what.clone()));
    let mut stopped = false;
    if let Some(o) = opened {
        bridge.adopt(o, spawned);
        if spawned {
            if let Err(e) = bridge.stop_all(true) {
                // Nobody will see the program: it goes, as at an abandon.
                sigkill(bridge.pid);
                return Err(e.into());
            }
            stopped = true;
        }
    }
    Ok(Prepared {
        what,
        inbox_rx,
        bridge,
        stopped,
    })
}

impl Prepared {
    /// The process: the started program's pid, or the attached one's
    /// (`None` with no process yet, `--multi`).
    pub fn pid(&self) -> Option<u32> {
        (self.bridge.pid != 0).then_some(self.bridge.pid)
    }

    /// No debugger will come: a program started here is killed (as
    /// gdbserver kills the program it started when it is interrupted); a
    /// process attached to is left as it was, when the session ends.
    pub fn abandon(self) {
        if let (Some(pid), What::Spawn { .. }) = (self.pid(), &self.what) {
            sigkill(pid);
        }
    }

    /// Serve one debugger on `input`/`output`, as [`serve_with`] does.
    pub fn serve(
        self,
        input: impl Into<DebuggerInput>,
        output: Box<dyn Write + Send>,
    ) -> Result<Ended, GdbError> {
        let Prepared {
            what: _,
            inbox_rx,
            mut bridge,
            stopped,
        } = self;
        let input = match input.into() {
            DebuggerInput::Fd(fd) => Some(fd),
            DebuggerInput::Reader(r) => {
                link::pump(r, bridge.inbox.clone());
                None
            }
        };
        let mut link = Shared::new(Link::new(inbox_rx, input, output));
        bridge.share(link.lock().common());
        if bridge.pid != 0 {
            bridge.publish();
            if !stopped {
                // Stopped when the debugger connects: it asks why first.
                bridge.stop_all(true)?;
            }
        }
        loop {
            let stub = GdbStub::builder(link.clone())
                .packet_buffer_size(PACKET_SIZE)
                .build()
                .map_err(|e| GdbError::Protocol(e.to_string()))?;
            let reason = stub.run_blocking::<Loop>(&mut bridge);
            let ended = match reason {
                Ok(DisconnectReason::Disconnect) => Ended::Detached,
                Ok(DisconnectReason::Kill) => {
                    if !bridge.killed && bridge.pid != 0 {
                        sigkill(bridge.pid);
                    }
                    Ended::Killed
                }
                Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => {
                    Ended::Exited
                }
                Err(e) if e.is_connection_error() => Ended::DebuggerGone,
                Err(e) => {
                    bridge.forget();
                    return Err(GdbError::Protocol(e.to_string()));
                }
            };
            // Detaching releases every hold and removes this engine's
            // breakpoints; other clients' engines stay.
            bridge.forget();
            // gdbstub ends its session when the process exits or the
            // debugger detaches; in extended mode the debugger stays, and the
            // next session (a fresh stub on the same link) answers it.
            if !(bridge.multi && matches!(ended, Ended::Detached | Ended::Exited)) {
                return Ok(ended);
            }
            target::tracing_debug(&format!(
                "{ended:?}; extended mode: the debugger may run or attach next"
            ));
            link.lock().replay_handshake();
        }
    }
}
