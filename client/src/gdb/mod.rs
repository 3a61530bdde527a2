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
//! std::thread::spawn(move || serve(rt, client, What::Attach(1234), Box::new(read), Box::new(sock)));
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
//! and signal deaths, `qXfer:exec-file`
//! (the debugger then reads the executable from this machine), `detach`
//! and `kill`.

pub mod arch;
pub mod hostio;
pub mod link;
pub mod signals;
pub mod target;

use std::io::{Read, Write};

use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub};
use tokio::sync::mpsc;
use utrace_proto::v1 as pb;

use crate::Client;
use link::{Input, Link, Next};
use target::{Bridge, BridgeError, StopReason};

/// What to debug.
#[derive(Clone, Debug)]
pub enum What {
    /// A running process (all its threads).
    Attach(u32),
    /// A program to start, held at its first instruction: argv, env
    /// (the whole environment), working directory, and its stdio:
    /// `STDIO_DEFAULT` (an embedded server: the bridge's own; a daemon:
    /// `/dev/null`), or `STDIO_PIPES` (what it writes comes with the
    /// reports and goes to the bridge's own standard output and error, as
    /// gdbserver's program writes on gdbserver's terminal; its stdin is
    /// empty).
    Spawn {
        argv: Vec<String>,
        env: std::collections::HashMap<String, String>,
        cwd: String,
        stdio: pb::Stdio,
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
            K::Breakpoint,
            K::Watchpoint,
            K::Step,
            K::Signal,
            K::SyscallEntry,
            K::SyscallExit,
        ]
        .into_iter()
        .map(|k| k as i32)
        .collect(),
        // A debugger's user may look at a stop for a long time; the
        // bridge decides HOLD (no deadline) as soon as it sees a report.
        deadline_ms: Some(86_400_000),
        // Every register of gdb's `g` packet comes with each report: the
        // `g` gdb sends right after a stop needs no round trip.
        expedite: Some(pb::Expedite {
            registers: arch::WORDS.iter().map(|s| s.to_string()).collect(),
            register_bytes: arch::WIDE.iter().map(|s| s.to_string()).collect(),
            memory: Vec::new(),
        }),
        ..Default::default()
    }
}

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

/// Open the Session, create the engine (attach or spawn), and start
/// forwarding its reports to `inbox`. The engine, pid and threads.
async fn open(
    client: &mut Client,
    what: &What,
    inbox: mpsc::Sender<Input>,
) -> Result<(mpsc::Sender<pb::ClientMessage>, u64, u32, Vec<u32>), GdbError> {
    let (tx, rx) = mpsc::channel::<pb::ClientMessage>(64);
    let first = match what {
        What::Attach(pid) => pb::client_message::Msg::Attach(pb::AttachRequest {
            pid: *pid,
            engine: Some(engine_spec()),
        }),
        What::Spawn {
            argv,
            env,
            cwd,
            stdio,
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
        .map_err(|s| BridgeError::Server(s.message().to_string()))?
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
            Err(s) => return Err(BridgeError::Server(s.message().to_string()).into()),
        }
    };
    tokio::spawn(async move {
        loop {
            match replies.message().await {
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
                Ok(None) => {
                    let _ = inbox
                        .send(Input::ServerGone("the session ended".into()))
                        .await;
                    return;
                }
                Err(s) => {
                    let _ = inbox
                        .send(Input::ServerGone(format!(
                            "the session failed: {}",
                            s.message()
                        )))
                        .await;
                    return;
                }
            }
        }
    });
    Ok((tx, attached.engine_id, attached.pid, attached.tids))
}

/// The largest packet the bridge takes and offers (`PacketSize`).
const PACKET_SIZE: usize = 64 * 1024;

enum Loop {}

impl BlockingEventLoop for Loop {
    type Target = Bridge;
    type Connection = Link;
    type StopReason = StopReason;

    fn wait_for_stop_reason(
        target: &mut Bridge,
        conn: &mut Link,
    ) -> Result<Event<StopReason>, WaitForStopReasonError<BridgeError, std::io::Error>> {
        loop {
            match conn
                .next_input()
                .map_err(WaitForStopReasonError::Connection)?
            {
                Next::Byte(b) => return Ok(Event::IncomingData(b)),
                Next::Report(ev) => {
                    if let Some(stop) = target
                        .on_report(*ev)
                        .map_err(WaitForStopReasonError::Target)?
                    {
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

/// Serve one debugger on `input`/`output` until it detaches, kills the
/// process, the process exits, or the debugger goes away. Blocking: run
/// it on a thread of its own (it uses `rt` for the server's calls).
pub fn serve(
    rt: tokio::runtime::Handle,
    mut client: Client,
    what: What,
    input: Box<dyn Read + Send>,
    output: Box<dyn Write + Send>,
) -> Result<Ended, GdbError> {
    let (inbox_tx, inbox_rx) = mpsc::channel(link::INBOX);
    let (session, engine, pid, tids) = rt.block_on(open(&mut client, &what, inbox_tx.clone()))?;
    link::pump(input, inbox_tx);
    let mut bridge = Bridge::new(rt.clone(), client.clone(), session, engine, pid, &tids);
    bridge.spawned = matches!(what, What::Spawn { .. });
    // Stopped when the debugger connects: it asks why first.
    bridge.stop_all(true)?;
    let conn = Link::new(inbox_rx, output);
    // Large packets: gdb reads files (vFile:pread) and memory in pieces of
    // at most this, each a round trip.
    let stub = GdbStub::builder(conn)
        .packet_buffer_size(PACKET_SIZE)
        .build()
        .map_err(|e| GdbError::Protocol(e.to_string()))?;
    let reason = stub.run_blocking::<Loop>(&mut bridge);
    let ended = match reason {
        Ok(DisconnectReason::Disconnect) => Ended::Detached,
        Ok(DisconnectReason::Kill) => {
            if !bridge.killed {
                // With this user's own rights, as gdbserver beside it.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Ended::Killed
        }
        Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => {
            Ended::Exited
        }
        Err(e) if e.is_connection_error() => Ended::DebuggerGone,
        Err(e) => {
            let _ = rt.block_on(client.detach(engine));
            return Err(GdbError::Protocol(e.to_string()));
        }
    };
    // Detaching releases every hold and removes this engine's breakpoints;
    // other clients' engines stay.
    if !bridge.exited {
        let _ = rt.block_on(client.detach(engine));
    }
    Ok(ended)
}
