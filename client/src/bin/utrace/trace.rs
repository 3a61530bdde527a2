//! `utrace trace`: strace over a `Trace` call.
//!
//! One `Trace` RPC spawns the program (or attaches to `-p PID`) under a new
//! engine that asks for decoded text, and streams its reports; the lines
//! are assembled here ([`crate::assemble`]), or with `-c` the calls are
//! counted and strace's summary table printed at the end.
//!
//! Nothing is lost: the engine is lossless (a full queue holds the
//! program until we have read it) unless `--lossy`. With the embedded
//! server the reports do not come over the stream at all: they go to a
//! local sink ([`utraced::sink`]) that assembles and writes each line on
//! the tracer thread, before the call returns to the program (strace's
//! order relative to the program's own output).
//!
//! With `-e inject=`, the same engine is a sync engine on a `Session`
//! stream instead: it holds each entry of an injected syscall, and
//! [`crate::inject::Injector`] decides it (skip with the error or value, or
//! run it).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::StreamExt;
use tonic::Streaming;
use tracing::{debug, warn};
use utrace_client::pb::event::Kind;
use utrace_client::{pb, Session, SessionEvent};
use utrace_engines::builtin::counter::Counts;

use crate::assemble::{call_name, Assembler, PidPrefix};
use crate::inject::{Injector, Rule};
use crate::server::Connection;
use crate::signals::exit_code;

/// What to trace and how: the `trace` command line, parsed.
#[derive(Clone, Debug)]
pub struct Options {
    /// One server of several (`--server A --server B`): its name starts
    /// each line (the trace's and the program's), and the program's stdin
    /// is empty (as `ssh -n`: one terminal cannot feed several programs).
    pub node: Option<String>,
    /// Follow child processes (`-f`).
    pub follow: bool,
    /// Leave a process at its exec (`-b execve`).
    pub detach_on_exec: bool,
    /// Only these syscalls (`-e trace=`); empty: all, unless `no_syscalls`.
    pub syscalls: Vec<String>,
    /// No syscall at all (`-e trace=none`): signals and exits only.
    pub no_syscalls: bool,
    /// Count instead of printing lines (`-c`).
    pub count: bool,
    /// Write lines (or the table) here instead of stderr (`-o`).
    pub output: Option<PathBuf>,
    /// `-ff -o FILE`: each thread's lines in `FILE.TID` (and the table, with
    /// `-c`, on stderr).
    pub per_thread: bool,
    /// The column results are aligned at (`-a`).
    pub column: usize,
    /// Attach to these processes (`-p`, each a `Trace` call of its own;
    /// their lines are merged as they come).
    pub pids: Vec<u32>,
    /// Or start this program.
    pub command: Vec<String>,
    /// Reports the server queues for us (None: [`EMBEDDED_QUEUE_LEN`] with
    /// an embedded server, the daemon's default otherwise).
    pub queue_len: Option<u32>,
    /// Let the server drop reports rather than hold the program when its
    /// queue is full (strace never drops: the default is lossless).
    pub lossy: bool,
    /// Fault injection (`-e inject=`).
    pub inject: Vec<Rule>,
    /// `-s`: bytes of strings shown (None: strace's 32).
    pub string_limit: Option<u32>,
    /// `-t`/`-tt`/`-ttt`.
    pub stamp: crate::assemble::Stamp,
    /// `-T`.
    pub durations: bool,
    /// `-C`: the table and the lines.
    pub summary: bool,
    /// `-S`: the table's order.
    pub sort_by: utrace_engines::builtin::counter::SortBy,
    /// `-r`, `-n`, `-i`, `-qq`.
    pub leader: crate::assemble::Leader,
    /// `-q`: no attach and detach messages.
    pub quiet: bool,
    /// `-k`: each call's stack after its line.
    pub stack: bool,
    /// `-w`: `-c` times are wall-clock time, entry to exit (else the
    /// system time each call took, as strace's).
    pub wall_clock: bool,
    /// `-P`: only the calls touching these paths.
    pub trace_paths: Vec<Vec<u8>>,
    /// `-X`: 0 names, 1 numbers, 2 both (`EngineSpec.decode_xlat`).
    pub xlat: u32,
    /// `-y`: descriptors with their paths.
    pub fd_paths: bool,
    /// `-yy`: and what sockets, devices and pidfds are.
    pub fd_details: bool,
    /// `-v`: structures and environments in full.
    pub verbose: bool,
    /// `-x` (1), `-xx` (2): strings in hex.
    pub hex: u32,
    /// `-E`: `VAR=VAL` set, `VAR` removed, in the program's environment.
    pub env: Vec<String>,
    /// `-u USER`: the program's user.
    pub run_as: Option<pb::RunAs>,
    /// `-U`: the table's columns.
    pub columns: Vec<utrace_engines::builtin::counter::Column>,
    /// `-e signal=`: the signals shown (None: all).
    pub signals: Option<std::collections::BTreeSet<i32>>,
    /// `-e status=`, `-z`, `-Z`: the calls shown by outcome (None: all).
    pub status: Option<std::collections::BTreeSet<crate::sysset::Status>>,
}

/// The queue asked of an embedded server: its limits are known (up to 2^20)
/// and it shares the machine's CPUs with this process, so a longer queue
/// (a few MB at most) rides out bursts instead of losing lines.
pub const EMBEDDED_QUEUE_LEN: u32 = 1 << 16;

/// Why tracing failed; printed as `utrace: MESSAGE`, exit status 1.
pub type Failure = String;

/// How the event loop ended.
enum End {
    /// The server ended the stream: every traced process is gone (or the
    /// engine was detached).
    StreamEnded,
    /// SIGINT (2) or SIGTERM (15).
    Interrupted(u8),
    /// The output (stderr, or `-o`'s pipe) was closed by its reader.
    OutputClosed,
}

/// Trace as `opts` says; the exit code to leave with.
pub async fn run(conn: &mut Connection, opts: Options) -> Result<u8, Failure> {
    let out: Box<dyn Write + Send> = match (&opts.output, &opts.node) {
        (None, Some(node)) => Box::new(crate::node_lines::NodeLines::new(std::io::stderr(), node)),
        (Some(_), Some(_)) => {
            return Err(
                "trace: -o with several servers: their lines go to stderr, each with its server"
                    .into(),
            )
        }
        (output, None) => match output {
            // -ff: the lines go to a file per thread; the rest to stderr.
            Some(_) if opts.per_thread => Box::new(BufWriter::new(std::io::stderr())),
            Some(path) => Box::new(BufWriter::new(
                File::create(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            )),
            None => Box::new(BufWriter::new(std::io::stderr())),
        },
    };
    // Register before the program starts, so an early Ctrl-C is ours.
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;

    let events = if opts.no_syscalls {
        // The protocol has no empty syscall set (empty means all): leave
        // the syscall kinds out instead.
        [
            pb::EventKind::Signal,
            pb::EventKind::Clone,
            pb::EventKind::Exec,
            pb::EventKind::Exit,
            pb::EventKind::Death,
            pb::EventKind::GroupStop,
        ]
        .map(|k| k as i32)
        .to_vec()
    } else if opts.count {
        // The counter needs the calls and, for the exit status, deaths;
        // not the decoded text.
        vec![
            pb::EventKind::SyscallEntry as i32,
            pb::EventKind::SyscallExit as i32,
            pb::EventKind::Death as i32,
        ]
    } else {
        Vec::new()
    };
    let mut engine = pb::EngineSpec {
        events,
        syscalls: opts.syscalls.clone(),
        follow_children: opts.follow,
        leave_at_exec: opts.detach_on_exec,
        // -P is matched by the decoder, with -c too.
        decode: !opts.count || !opts.trace_paths.is_empty(),
        trace_paths: opts.trace_paths.iter().map(|p| p.clone().into()).collect(),
        // -c and -C without -w: each exit with the system time it took.
        syscall_times: (opts.count || opts.summary) && !opts.wall_clock,
        decode_xlat: opts.xlat,
        decode_string_limit: opts.string_limit,
        decode_fds: opts.fd_paths,
        decode_fd_details: opts.fd_details,
        decode_verbose: opts.verbose,
        decode_hex: opts.hex,
        lossless: !opts.lossy,
        // -i: each report carries the instruction pointer; -k: the
        // registers and stack an unwinder starts from.
        expedite: if opts.stack {
            Some(crate::stack::expedite())
        } else {
            opts.leader.ip.then(|| pb::Expedite {
                registers: vec!["rip".into()],
                ..Default::default()
            })
        },
        queue_len: opts.queue_len.unwrap_or(if conn.is_embedded() {
            EMBEDDED_QUEUE_LEN
        } else {
            0
        }),
        ..Default::default()
    };
    // A daemon's program gets our streams, carried over the call.
    let stdio = match (conn.is_embedded(), opts.pids.is_empty()) {
        (false, true) if opts.node.is_some() => pb::Stdio::Pipes,
        (false, true) => crate::stdio::mode(),
        _ => pb::Stdio::Default,
    };
    let _raw = (stdio == pb::Stdio::Pty)
        .then(crate::stdio::RawTerminal::enter)
        .flatten();
    let targets: Vec<pb::trace_request::Target> = if opts.pids.is_empty() {
        vec![pb::trace_request::Target::Spawn(spawn_request(
            &opts, stdio,
        ))]
    } else {
        opts.pids
            .iter()
            .map(|p| pb::trace_request::Target::Pid(*p))
            .collect()
    };
    let local = Arc::new(Mutex::new(Local {
        state: State::new(&opts),
        out,
    }));
    // The output was closed by its reader (seen by the local sink).
    let closed = Arc::new(tokio::sync::Notify::new());
    // The local sink wrote to an -o file (flushed within 200 ms).
    let written = Arc::new(tokio::sync::Notify::new());
    // One sink per Trace call (a sink serves one call).
    let sinks: Vec<_> = targets
        .iter()
        .filter_map(|_| {
            conn.embedded().filter(|_| opts.inject.is_empty()).map(|e| {
                // In-process: the lines are written on the tracer thread,
                // each before the call returns to the program (strace's
                // order), and a slow output slows the program.
                let (local, closed) = (Arc::clone(&local), Arc::clone(&closed));
                let written = Arc::clone(&written);
                let flush_each = opts.output.is_none();
                e.local_sink(Box::new(move |ev| {
                    let mut l = lock(&local);
                    let Local { state, out } = &mut *l;
                    state.event(&ev, out);
                    if flush_each {
                        // Shared with the program's own output: written now.
                        state.flush(out);
                    } else {
                        written.notify_one();
                    }
                    if state.output_closed {
                        closed.notify_one();
                    }
                }))
            })
        })
        .collect();
    let sink = sinks.first();
    let mut stream = if opts.inject.is_empty() {
        let mut streams = tokio_stream::StreamMap::new();
        for (i, target) in targets.into_iter().enumerate() {
            let mut req = tonic::Request::new(pb::TraceRequest {
                target: Some(target),
                engine: Some(engine.clone()),
            });
            if let Some(sink) = sinks.get(i) {
                sink.apply(&mut req);
            }
            let s = conn
                .client
                .raw()
                .trace(req)
                .await
                .map_err(|s| s.message().to_string())?
                .into_inner();
            streams.insert(i, s);
        }
        Source::Trace(Box::new(streams))
    } else {
        let injector = Injector::new(opts.inject.clone());
        let show = hold_injected(&mut engine, &injector, &opts);
        let mut session = conn
            .client
            .session()
            .await
            .map_err(|s| s.message().to_string())?;
        // One engine per process (each -p), on the one session: the
        // injector decides every held call, whichever engine's.
        let mut attached = std::collections::VecDeque::new();
        for target in targets {
            let a = match target {
                pb::trace_request::Target::Pid(pid) => session.attach(pid, engine.clone()).await,
                pb::trace_request::Target::Spawn(mut s) => {
                    s.engine = Some(engine.clone());
                    session.spawn(s).await
                }
            }
            .map_err(|e| match e {
                utrace_client::SessionError::Refused { message, .. } => message,
                other => other.to_string(),
            })?;
            attached.push_back(pb::Event {
                engine_id: a.engine_id,
                pid: a.pid,
                tid: a.pid,
                kind: Some(Kind::Attached(a)),
                ..Default::default()
            });
        }
        Source::Session(Box::new(Injecting {
            engines: attached.len(),
            session,
            injector,
            show,
            attached,
        }))
    };

    // With a local sink and -o, the file is flushed now and then (a
    // `tail -f` sees the lines) rather than at each line: 200 ms after
    // the first line written since the last flush. No timer runs while
    // nothing is written (a quiet program costs no wake-ups).
    let periodic = sink.is_some() && opts.output.is_some();
    let mut flush_at: Option<tokio::time::Instant> = None;
    // A daemon's program gets our stdin once its engine is known.
    let mut feeding = stdio == pb::Stdio::Default;
    let end = loop {
        let next = tokio::select! {
            biased;
            _ = sigint.recv() => break End::Interrupted(2),
            _ = sigterm.recv() => break End::Interrupted(15),
            _ = closed.notified() => break End::OutputClosed,
            _ = written.notified(), if periodic && flush_at.is_none() => {
                flush_at = Some(tokio::time::Instant::now() + Duration::from_millis(200));
                continue;
            }
            _ = sleep_until(flush_at), if flush_at.is_some() => {
                flush_at = None;
                let mut l = lock(&local);
                let Local { state, out } = &mut *l;
                state.flush(out);
                continue;
            }
            ev = next_event(&mut stream, &local, sink.is_none()) => ev,
        };
        let mut l = lock(&local);
        let Local { state, out } = &mut *l;
        match next {
            Some(Ok(ev)) => {
                state.event(&ev, out);
                if state.output_closed {
                    break End::OutputClosed;
                }
                if let (false, Some(&id)) = (feeding, state.engine_ids.first()) {
                    feeding = true;
                    state.closed_outputs = Some(crate::stdio::feed_stdin(
                        conn.client.clone(),
                        id,
                        stdio == pb::Stdio::Pty,
                        opts.node.is_none(),
                    ));
                }
            }
            Some(Err(msg)) => {
                state.flush_open(" <unfinished ...>", out);
                let _ = out.flush();
                return Err(msg);
            }
            None => break End::StreamEnded,
        }
    };

    let (engine_ids, attached) = {
        let l = lock(&local);
        (l.state.engine_ids.clone(), l.state.attached.clone())
    };
    let code = match end {
        End::StreamEnded => {
            let mut l = lock(&local);
            let Local { state, out } = &mut *l;
            state.flush_open(" <unfinished ...>", out);
            state.finish(out)?;
            state.result(&opts)
        }
        End::Interrupted(signo) if !opts.pids.is_empty() => {
            // Detach explicitly (confirmed by the server), print what was
            // still queued, then end the streams. (The lock is never held
            // across an await: a local sink takes it on the tracer thread.)
            for &id in &engine_ids {
                match tokio::time::timeout(Duration::from_secs(5), conn.client.detach(id)).await {
                    Ok(Ok(())) => debug!(engine = id, "detached"),
                    Ok(Err(s)) => debug!(engine = id, "detach: {}", s.message()),
                    Err(_) => debug!(engine = id, "detach did not answer within 5 s"),
                }
            }
            if !engine_ids.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(ev)) = stream.next().await {
                        let mut l = lock(&local);
                        let Local { state, out } = &mut *l;
                        state.event(&ev, out);
                    }
                })
                .await;
            }
            drop(stream);
            let mut l = lock(&local);
            let Local { state, out } = &mut *l;
            state.flush_open(" <detached ...>", out);
            state.finish(out)?;
            if !opts.quiet {
                for pid in &attached {
                    crate::say!("utrace: Process {pid} detached");
                }
            }
            // strace -p dies of the signal that interrupted it (130 for
            // Ctrl-C), the process left running.
            crate::exit::die_by(i32::from(signo));
            Ok(128 + signo)
        }
        End::Interrupted(signo) => {
            // Dropping the stream cancels the call: the server detaches the
            // engine (or kills a program that depends on it) by its rules.
            drop(stream);
            let mut l = lock(&local);
            let Local { state, out } = &mut *l;
            state.flush_open(" <unfinished ...>", out);
            state.finish(out)?;
            crate::exit::die_by(i32::from(signo));
            Ok(128 + signo)
        }
        End::OutputClosed => {
            // Where strace would die of SIGPIPE writing: the trace ends
            // (a program started here goes with it, as with strace), and
            // so does utrace, of SIGPIPE.
            drop(stream);
            crate::exit::die_by(libc::SIGPIPE);
            Ok(128 + libc::SIGPIPE as u8)
        }
    };
    let dropped = lock(&local).state.dropped;
    if dropped > 0 {
        crate::say!(
            "utrace: {dropped} reports were lost: the server's queue for this trace was full \
             (ask for a longer one with --queue-len, or leave out --lossy)"
        );
    }
    code
}

/// Until `at` (never, without one).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The trace's state and its output: taken by the event loop, and by a
/// local sink on the tracer thread.
struct Local {
    state: State,
    out: Box<dyn Write + Send>,
}

fn lock(l: &Mutex<Local>) -> std::sync::MutexGuard<'_, Local> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// The next event; flushes the output first when none is ready at once
/// (if `flush`: not when a local sink writes it), so lines appear
/// promptly without a write per line under load.
async fn next_event(
    source: &mut Source,
    local: &Mutex<Local>,
    flush: bool,
) -> Option<Result<pb::Event, String>> {
    let flush_now = || {
        if flush {
            let mut l = lock(local);
            let Local { state, out } = &mut *l;
            state.flush(out);
        }
    };
    match source {
        Source::Trace(stream) => {
            let next = match tokio::time::timeout(Duration::ZERO, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    flush_now();
                    stream.next().await
                }
            };
            next.map(|(_, r)| r.map_err(|s| stream_failed(&s)))
        }
        // Not cancelled midway (it may be sending a decision): flush first.
        Source::Session(s) => {
            flush_now();
            s.next().await
        }
    }
}

/// Why the stream failed, in words: a connection lost mid-trace (the
/// server stopped or died) says so, not only what HTTP/2 saw.
fn stream_failed(s: &tonic::Status) -> String {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
            if s.message().contains("h2") || s.message().contains("transport") =>
        {
            format!(
                "the connection to the server was lost mid-trace (did it stop?): {}",
                s.message()
            )
        }
        _ => s.message().to_string(),
    }
}

/// Where the events come from.
enum Source {
    /// The streams of the `Trace` calls (one per `-p`), merged as events
    /// come; it ends when every one has.
    Trace(Box<tokio_stream::StreamMap<usize, Streaming<pb::Event>>>),
    /// A `Session` whose engine holds injected syscalls' entries.
    Session(Box<Injecting>),
}

impl Source {
    async fn next(&mut self) -> Option<Result<pb::Event, String>> {
        match self {
            Source::Trace(s) => s
                .next()
                .await
                .map(|(_, r)| r.map_err(|s| s.message().to_string())),
            Source::Session(s) => s.next().await,
        }
    }
}

/// Make `engine` a sync engine that holds the entries of the injected
/// syscalls. Returns the syscalls to show (None: all): with `-e trace=`
/// (or `trace=none`) the injected ones are traced but not all shown.
fn hold_injected(
    engine: &mut pb::EngineSpec,
    injector: &Injector,
    opts: &Options,
) -> Option<Vec<u64>> {
    let injected = injector.syscalls();
    let show = if opts.no_syscalls {
        engine.events.extend([
            pb::EventKind::SyscallEntry as i32,
            pb::EventKind::SyscallExit as i32,
        ]);
        engine.syscalls = injected.clone();
        Some(Vec::new())
    } else if opts.syscalls.is_empty() {
        None
    } else {
        let show = opts
            .syscalls
            .iter()
            .filter_map(|n| utrace_engines::syscall_number(n).ok())
            .collect();
        engine.syscalls.extend(injected.iter().cloned());
        Some(show)
    };
    engine.sync = true;
    engine.hold = vec![pb::EventKind::SyscallEntry as i32];
    if injector.holds_exits() {
        engine.hold.push(pb::EventKind::SyscallExit as i32);
    }
    engine.hold_syscalls = injected;
    show
}

/// A session that injects faults, seen as a stream of events.
struct Injecting {
    session: Session,
    injector: Injector,
    /// Syscalls to show (None: all).
    show: Option<Vec<u64>>,
    /// The `attached` events (one per process), given first.
    attached: std::collections::VecDeque<pb::Event>,
    /// Engines on the session not ended yet (none: the trace is over).
    engines: usize,
}

impl Injecting {
    async fn next(&mut self) -> Option<Result<pb::Event, String>> {
        if let Some(a) = self.attached.pop_front() {
            return Some(Ok(a));
        }
        if self.engines == 0 {
            return None;
        }
        loop {
            let mut ev = match self.session.next().await? {
                Ok(SessionEvent::Report(ev)) => ev,
                Ok(SessionEvent::Ended(e)) => {
                    // One engine (one process) ended; the trace ends with
                    // the last.
                    self.engines = self.engines.saturating_sub(1);
                    if e.dropped > 0 {
                        return Some(Ok(pb::Event {
                            dropped_before: e.dropped,
                            ..Default::default()
                        }));
                    }
                    if self.engines == 0 {
                        return None;
                    }
                    continue;
                }
                Ok(SessionEvent::Error { error, .. }) => {
                    warn!(code = %error.code, "the server refused a decision: {}", error.message);
                    continue;
                }
                Ok(_) => continue,
                Err(e) => return Some(Err(e.to_string())),
            };
            if ev.held {
                let plan = self.injector.decide(&ev);
                // delay_enter=, delay_exit=: the task waits, held.
                if let Some(d) = plan.delay {
                    tokio::time::sleep(d).await;
                }
                if let Err(e) = self.session.decide(plan.decision).await {
                    return Some(Err(e.to_string()));
                }
            }
            if let Some(mark) = self.injector.take_mark(&ev) {
                if let Some(Kind::SyscallExit(x)) = &mut ev.kind {
                    x.ret_text.push_str(mark);
                }
            }
            let nr = match &ev.kind {
                Some(Kind::SyscallEntry(c)) => Some(c.nr),
                Some(Kind::SyscallExit(x)) => Some(x.nr),
                _ => None,
            };
            if let (Some(nr), Some(show)) = (nr, &self.show) {
                if !show.contains(&nr) {
                    continue;
                }
            }
            return Some(Ok(ev));
        }
    }
}

/// This command's environment (the UTF-8 variables) and working directory:
/// what a program it starts gets, as from strace or gdbserver.
pub fn own_env_and_cwd() -> (HashMap<String, String>, String) {
    (own_environ().into_iter().collect(), own_cwd())
}

/// This command's environment (its UTF-8 variables), in its order.
fn own_environ() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn own_cwd() -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| d.into_os_string().into_string().ok())
        .unwrap_or_default()
}

/// The spawn half of the request: the program, with this command's
/// environment and working directory (as strace runs it), its stdio as
/// `stdio` says (carried over the call for a daemon's program).
fn spawn_request(opts: &Options, stdio: pb::Stdio) -> pb::SpawnRequest {
    // In our order, as strace passes its own (-v shows it).
    let mut env = own_environ();
    // -E VAR=VAL sets (in its place, or last if new), -E VAR removes, in
    // order (as strace's setenv and unsetenv).
    for e in &opts.env {
        match e.split_once('=') {
            Some((k, v)) => match env.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => env.push((k.to_string(), v.to_string())),
            },
            None => env.retain(|(k, _)| k != e),
        }
    }
    pb::SpawnRequest {
        stdio: stdio as i32,
        window: (stdio == pb::Stdio::Pty)
            .then(crate::stdio::window)
            .flatten(),
        argv: opts.command.clone(),
        env: HashMap::new(),
        environ: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: own_cwd(),
        stop_at_entry: false,
        // Kernel-side filtering only with -f, as strace's --seccomp-bpf: a
        // filtered program depends on its tracer for its whole life, so
        // children nobody follows would be tied to the server; and a
        // program left at its exec (-b execve) runs on untraced.
        no_kernel_filter: !opts.follow || opts.detach_on_exec,
        engine: None,
        run_as: opts.run_as.clone(),
        // strace leaves randomization as it is.
        disable_aslr: false,
    }
}

/// What the event loop keeps.
struct State {
    /// Lines (None with `-c`).
    lines: Option<Assembler>,
    /// `-ff -o BASE`: lines in a file per thread instead (BASE until the
    /// trace starts).
    per_thread: Option<crate::per_thread::PerThread>,
    per_thread_base: Option<PathBuf>,
    /// The counts (with `-c`), and each thread's open call's entry time.
    counts: Option<(Counts, HashMap<u32, u64>)>,
    follow: bool,
    prefix: PidPrefix,
    attaching: bool,
    /// Every engine and traced process, from the `Attached` events (one
    /// each per `-p`; the first is the program started or attached).
    engine_ids: Vec<u64>,
    attached: Vec<u32>,
    /// How the traced process ended.
    status: Option<pb::ExitStatus>,
    /// The traced process was left at an exec (`-b execve`): it runs on,
    /// and its end is not ours to know (strace then exits 0).
    left_main: bool,
    /// Reports the server dropped for us.
    dropped: u64,
    /// The output failed once (reported once).
    write_failed: bool,
    /// Its reader closed it (EPIPE): the trace ends, utrace dies of SIGPIPE.
    output_closed: bool,
    /// `-t`/`-tt`/`-ttt`, `-T`.
    stamp: crate::assemble::Stamp,
    /// `-a`.
    column: usize,
    durations: bool,
    /// `-e signal=`, `-e status=`.
    filters: crate::assemble::Filters,
    /// Lines are printed (all but `-c`; `-C` prints both).
    lines_too: bool,
    /// `-S`.
    sort_by: utrace_engines::builtin::counter::SortBy,
    /// `-U`.
    columns: Vec<utrace_engines::builtin::counter::Column>,
    /// `-r`, `-n`, `-i`, `-qq`.
    leader: crate::assemble::Leader,
    /// `-q`.
    quiet: bool,
    /// `-k`: each call's stack after its line.
    stack: bool,
    /// The trace goes to stderr (not `-o`): flushed before the program's
    /// own output is written, so both keep their order.
    to_stderr: bool,
    /// The program's stdout and stderr (carried over the call) can no
    /// longer be written here; the server is told through this.
    outputs_gone: [bool; 2],
    closed_outputs: Option<tokio::sync::mpsc::Sender<u32>>,
    /// With several servers: the program's stdout and stderr, each line
    /// with the server's name.
    node_outputs: Option<[Box<dyn Write + Send>; 2]>,
}

impl State {
    fn new(opts: &Options) -> State {
        State {
            lines: None,
            per_thread: None,
            per_thread_base: opts.output.clone().filter(|_| opts.per_thread),
            counts: (opts.count || opts.summary).then(|| (Counts::default(), HashMap::new())),
            lines_too: !opts.count,
            sort_by: opts.sort_by,
            columns: opts.columns.clone(),
            leader: opts.leader,
            quiet: opts.quiet,
            stack: opts.stack,
            follow: opts.follow,
            prefix: if opts.follow && opts.output.is_some() {
                PidPrefix::Always
            } else {
                PidPrefix::WhenShared
            },
            attaching: !opts.pids.is_empty(),
            engine_ids: Vec::new(),
            attached: Vec::new(),
            status: None,
            left_main: false,
            dropped: 0,
            write_failed: false,
            output_closed: false,
            stamp: opts.stamp,
            column: opts.column,
            durations: opts.durations,
            filters: crate::assemble::Filters {
                signals: opts.signals.clone(),
                status: opts.status.clone(),
            },
            to_stderr: opts.output.is_none(),
            outputs_gone: [false; 2],
            closed_outputs: None,
            node_outputs: opts.node.as_deref().map(|n| -> [Box<dyn Write + Send>; 2] {
                use crate::node_lines::NodeLines;
                [
                    Box::new(NodeLines::new(std::io::stdout(), n)),
                    Box::new(NodeLines::new(std::io::stderr(), n)),
                ]
            }),
        }
    }

    /// The traced process (the first attached).
    fn main_pid(&self) -> Option<u32> {
        self.attached.first().copied()
    }

    fn write(&mut self, out: &mut Box<dyn Write + Send>, text: &str) {
        if self.output_closed {
            return;
        }
        let r = out.write_all(text.as_bytes());
        self.written(r);
    }

    /// What the program (started by a daemon, its stdio carried over the
    /// call) wrote: to our own stdout or stderr, after the trace lines
    /// before it. Where that output is gone (a `| head` that exited) the
    /// server closes the program's pipe, so the program meets EPIPE as it
    /// would here.
    fn program_output(&mut self, o: &pb::Output, out: &mut Box<dyn Write + Send>) {
        let Some(slot) = (o.fd as usize).checked_sub(1).filter(|i| *i < 2) else {
            return;
        };
        if self.outputs_gone[slot] {
            return;
        }
        if self.to_stderr {
            self.flush(out);
        }
        let r = match &mut self.node_outputs {
            Some(w) => w[slot].write_all(&o.data).and_then(|()| w[slot].flush()),
            None if slot == 0 => {
                let mut w = std::io::stdout().lock();
                w.write_all(&o.data).and_then(|()| w.flush())
            }
            None => std::io::stderr().lock().write_all(&o.data),
        };
        if let Err(e) = r {
            debug!(fd = o.fd, %e, "the program's output can no longer be written here");
            self.outputs_gone[slot] = true;
            if let Some(tx) = &self.closed_outputs {
                let _ = tx.try_send(o.fd);
            }
        }
    }

    /// Write out what is buffered.
    fn flush(&mut self, out: &mut Box<dyn Write + Send>) {
        if !self.output_closed {
            let r = out.flush();
            self.written(r);
        }
        if let Some(pt) = &mut self.per_thread {
            let r = pt.flush();
            self.written(r);
        }
    }

    /// Note a write's outcome: a closed reader ends the trace; another
    /// failure is said once.
    fn written(&mut self, r: std::io::Result<()>) {
        let Err(e) = r else {
            return;
        };
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            self.output_closed = true;
            return;
        }
        if !self.write_failed {
            self.write_failed = true;
            warn!(%e, "writing the trace output failed");
        }
    }

    fn event(&mut self, ev: &pb::Event, out: &mut Box<dyn Write + Send>) {
        if ev.dropped_before > 0 {
            self.dropped += ev.dropped_before;
            warn!(
                lost = ev.dropped_before,
                "reports lost before seq {}", ev.seq
            );
        }
        match &ev.kind {
            Some(Kind::Attached(a)) => {
                self.engine_ids.push(a.engine_id);
                self.attached.push(a.pid);
                debug!(pid = a.pid, engine = a.engine_id, tids = ?a.tids, "traced");
                if self.attaching && !self.quiet {
                    crate::say!("utrace: Process {} attached", a.pid);
                }
                if let Some(lines) = &mut self.lines {
                    // Another -p: its threads count for the [pid N] prefix.
                    lines.add_tasks(a.tids.len());
                    return;
                }
                if self.lines_too && self.per_thread.is_none() {
                    let (stamp, durations, leader, column, stack) = (
                        self.stamp,
                        self.durations,
                        self.leader,
                        self.column,
                        self.stack,
                    );
                    let filters = self.filters.clone();
                    let make = move |prefix, follow, tasks| {
                        Assembler::new(prefix, follow, tasks)
                            .with_column(column)
                            .with_times(stamp, durations)
                            .with_filters(filters.clone())
                            .with_leader(leader)
                            .with_stacks(stack)
                    };
                    match self.per_thread_base.take() {
                        Some(base) => {
                            self.per_thread = Some(crate::per_thread::PerThread::new(
                                base,
                                Box::new(move || make(PidPrefix::Never, false, 1)),
                            ))
                        }
                        None => self.lines = Some(make(self.prefix, self.follow, a.tids.len())),
                    }
                }
                return;
            }
            Some(Kind::Death(d)) if d.process_gone && Some(ev.pid) == self.main_pid() => {
                self.status = d.status;
            }
            Some(Kind::Exec(x)) if x.left && Some(ev.pid) == self.main_pid() => {
                self.left_main = true;
            }
            Some(Kind::Output(o)) => {
                self.program_output(o, out);
                return;
            }
            // strace -f says so of each new thread and process, in the
            // trace on stderr (not with -o, not with -q).
            Some(Kind::Clone(c)) if self.follow && self.to_stderr && !self.quiet => {
                let line = format!("utrace: Process {} attached\n", c.child_tid);
                self.write(out, &line);
            }
            _ => {}
        }
        if let Some((counts, entered)) = &mut self.counts {
            match &ev.kind {
                Some(Kind::SyscallEntry(_)) => {
                    entered.insert(ev.tid, ev.time_ns);
                }
                Some(Kind::SyscallExit(x)) => {
                    let wall = entered
                        .remove(&ev.tid)
                        .map_or(0, |t| ev.time_ns.saturating_sub(t));
                    let ns = x.system_time_ns.unwrap_or(wall);
                    counts.record(
                        &call_name(&x.name, x.nr),
                        x.is_error,
                        Duration::from_nanos(ns),
                    );
                }
                Some(Kind::Death(_)) => {
                    entered.remove(&ev.tid);
                }
                _ => {}
            }
        }
        if let Some(pt) = &mut self.per_thread {
            let r = pt.event(ev);
            self.written(r);
            return;
        }
        let mut text = String::new();
        if let Some(lines) = &mut self.lines {
            lines.event(ev, &mut |l| {
                text.push_str(l);
                text.push('\n');
            });
        }
        if !text.is_empty() {
            self.write(out, &text);
        }
    }

    /// End the open line, if any, with `suffix`.
    fn flush_open(&mut self, suffix: &str, out: &mut Box<dyn Write + Send>) {
        if let Some(pt) = &mut self.per_thread {
            let r = pt.finish(suffix);
            self.written(r);
        }
        let mut text = String::new();
        if let Some(lines) = &mut self.lines {
            lines.finish(suffix, &mut |l| {
                text.push_str(l);
                text.push('\n');
            });
        }
        if !text.is_empty() {
            self.write(out, &text);
        }
    }

    /// Print the table (with `-c`) and flush.
    fn finish(&mut self, out: &mut Box<dyn Write + Send>) -> Result<(), Failure> {
        if let Some((counts, _)) = &self.counts {
            let table = counts.table_with(self.sort_by, &self.columns);
            self.write(out, &table);
        }
        out.flush()
            .map_err(|e| format!("writing the trace output failed: {e}"))
    }

    /// The exit code once the stream has ended by itself.
    fn result(&self, opts: &Options) -> Result<u8, Failure> {
        if !opts.pids.is_empty() {
            // strace -p leaves with 0 whatever the process did.
            return Ok(0);
        }
        match (&self.status, self.main_pid()) {
            (Some(s), _) => {
                // strace dies of the signal that killed the program.
                if s.signal > 0 {
                    crate::exit::die_by(s.signal);
                }
                Ok(exit_code(s))
            }
            (None, None) => Err("the server ended the trace before it started".into()),
            (None, Some(_)) if self.left_main => Ok(0),
            (None, Some(pid)) if self.dropped > 0 => Err(format!(
                "the exit status of pid {pid} is unknown: {} reports were lost",
                self.dropped
            )),
            (None, Some(pid)) => Err(format!(
                "the server ended the trace before pid {pid} exited (it detached, or stopped)"
            )),
        }
    }
}
