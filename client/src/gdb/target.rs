//! The debugged process as gdbstub sees it, through one Session engine.
//!
//! All-stop, as gdb and lldb expect by default: when a thread stops for the
//! engine (a breakpoint, a step, a signal, the debugger's interrupt), the
//! bridge stops the process's other threads too (an interrupting batch
//! that holds each), and a resume lets every thread go again. A thread
//! held by a report is let go by deciding that report; one the bridge
//! stopped, by a `Control` op. Other clients tracing the same process keep
//! their own engines: they see the process stop and run as the debugger
//! drives it, and nothing of theirs is touched.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;

use gdbstub::common::Endianness;
use gdbstub::common::{Pid, Signal, Tid};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::ext::auxv::{Auxv, AuxvOps};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadRangeStepping, MultiThreadRangeSteppingOps, MultiThreadResume,
    MultiThreadResumeOps, MultiThreadSchedulerLocking, MultiThreadSchedulerLockingOps,
    MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::catch_syscalls::{
    CatchSyscallPosition, CatchSyscalls, CatchSyscallsOps, SyscallNumbers,
};
use gdbstub::target::ext::exec_file::{ExecFile, ExecFileOps};
use gdbstub::target::ext::extended_mode::{
    Args, AttachKind, ConfigureAslr, ConfigureAslrOps, CurrentActivePid, CurrentActivePidOps,
    ExtendedMode, ExtendedModeOps, ShouldTerminate,
};
use gdbstub::target::ext::host_info::{HostInfo, HostInfoOps, HostInfoResponse};
use gdbstub::target::{Target, TargetError, TargetResult};
use tokio::sync::mpsc;
use utrace_proto::v1 as pb;

use super::arch::{Regs, X86_64Linux, WIDE, WORDS};
use crate::Client;

/// Why the bridge cannot go on (the debugger is told the target failed).
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("the server refused: {0}")]
    Server(String),
    #[error("the server's session ended: {0}")]
    SessionGone(String),
    #[error("{0} is not supported by utrace gdb yet")]
    Unsupported(&'static str),
}

impl BridgeError {
    /// A failed call: the session is gone when the server or the
    /// connection is (`UNAVAILABLE`, `CANCELLED`); otherwise the server
    /// refused this one request.
    pub(super) fn from_status(s: tonic::Status) -> BridgeError {
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::Cancelled => {
                BridgeError::SessionGone(s.message().to_string())
            }
            _ => BridgeError::Server(s.message().to_string()),
        }
    }
}

/// A failure for the debugger's request: an `E` reply when the server
/// refused the request (a thread or an address it does not know of, as
/// a `g` for a thread gdb never named), and the session's end only when
/// the server or the session is gone.
fn failed(e: BridgeError) -> TargetError<BridgeError> {
    match e {
        BridgeError::SessionGone(_) => TargetError::Fatal(e),
        BridgeError::Server(_) | BridgeError::Unsupported(_) => {
            tracing_debug(&format!("answered with an error: {e}"));
            TargetError::NonFatal
        }
    }
}

/// How a thread is held now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Held {
    /// Running (or not yet stopped by us).
    Running,
    /// Held by its report `seq`; `signal` if the report was a signal.
    Report { seq: u64, signal: Option<i32> },
    /// Stopped and held by the bridge (an interrupting batch).
    Stopped,
}

/// What gdb asked for a thread at the next resume.
#[derive(Clone, Copy, Debug)]
enum Want {
    Continue(Option<i32>),
    Step(Option<i32>),
    /// Step while the pc stays in `[start, end)` (`vCont;r`): the server
    /// steps inside, and reports once it leaves.
    RangeStep(u64, u64),
}

/// The stop reason type the bridge reports.
pub type StopReason = MultiThreadStopReason<u64>;

/// A breakpoint or watchpoint of the bridge's engine in the server: a
/// software breakpoint (int3), or one debug-register slot (gdb's `Z1`-`Z4`;
/// a watched range that is not one aligned 1, 2, 4 or 8-byte piece takes
/// several, as gdbserver splits it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Point {
    Sw(u64),
    Hw {
        addr: u64,
        len: u32,
        /// What gdb asked for (`Z` type 1-4): reported back at a hit.
        z: u8,
    },
}

impl Point {
    /// The server's kind: x86 has no read-only watchpoint, so gdb's read
    /// watchpoint (`Z3`) is an access one, and gdb ignores the hits that
    /// changed the value (it does so for any target that cannot tell).
    fn kind(z: u8) -> pb::WatchKind {
        match z {
            1 => pb::WatchKind::Execute,
            2 => pb::WatchKind::Write,
            _ => pb::WatchKind::ReadWrite,
        }
    }

    fn insert_op(self) -> pb::op::Op {
        match self {
            Point::Sw(addr) => pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint {
                addr,
                ..Default::default()
            }),
            Point::Hw { addr, len, z } => pb::op::Op::InsertWatchpoint(pb::InsertWatchpoint {
                addr,
                len,
                kind: Point::kind(z) as i32,
            }),
        }
    }

    fn remove_op(self) -> pb::op::Op {
        match self {
            Point::Sw(addr) => pb::op::Op::RemoveBreakpoint(pb::RemoveBreakpoint { addr }),
            Point::Hw { addr, len, z } => pb::op::Op::RemoveWatchpoint(pb::RemoveWatchpoint {
                addr,
                len,
                kind: Point::kind(z) as i32,
            }),
        }
    }

    /// `addr..addr + len` as debug-register pieces: each 1, 2, 4 or 8
    /// bytes and aligned to its size. At most 4 (the slots there are):
    /// `None` past that.
    fn pieces(addr: u64, len: u64, z: u8) -> Option<Vec<Point>> {
        let (mut at, end) = (addr, addr.checked_add(len.max(1))?);
        let mut out = Vec::new();
        while at < end {
            let size = [8u64, 4, 2, 1]
                .into_iter()
                .find(|s| at % s == 0 && at + s <= end)
                .unwrap_or(1);
            out.push(Point::Hw {
                addr: at,
                len: size as u32,
                z,
            });
            at += size;
            if out.len() > 4 {
                return None;
            }
        }
        Some(out)
    }
}

/// The debugged process (none yet, or none any more, in extended mode
/// with [`super::Options::multi`]: pid 0).
pub struct Bridge {
    pub(super) rt: tokio::runtime::Handle,
    pub(super) client: Client,
    session: mpsc::Sender<pb::ClientMessage>,
    /// Replies awaited on the session (see [`Bridge::ordered_batch`]).
    awaited: super::Awaited,
    /// Where the reports of a session opened later go.
    pub(super) inbox: super::link::Inbox,
    /// The engine whose session may end the bridge (see [`super::open`]).
    current: std::sync::Arc<std::sync::atomic::AtomicU64>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
    /// gdbserver `--multi`: see [`super::Options`].
    pub multi: bool,
    /// What `run` starts: see [`super::Options::program`].
    pub program: Option<super::What>,
    /// What the debugger's `QDisableRandomization` asked for the next
    /// `run` (`None`: the program's own setting).
    disable_aslr: Option<bool>,
    /// What the bridge shares with the link (the process, gdb's signal
    /// sets, the thread list, the stop being reported…).
    common: std::sync::Arc<super::link::Common>,
    /// The signals the engine passes in the server (sent with a resume).
    passed_sent: u64,
    /// A resume put off for a pending report (its threads' wants, and
    /// whether the others stay stopped).
    deferred: Option<(HashMap<u32, Want>, bool)>,
    /// Forks not settled yet (see [`super::fork`]).
    pub forks: super::fork::Forks,
    /// Stack pages read at this stop (see [`Bridge::stack_read`]).
    stack_pages: HashMap<u64, Vec<u8>>,
    /// Memory that came with this stop's reports (see
    /// [`super::STOP_MEMORY`]): start and bytes.
    stop_memory: Vec<(u64, Vec<u8>)>,
    /// The last `qXfer:libraries-svr4` document (gdb reads it in pieces).
    pub(super) svr4: std::sync::Mutex<Option<Vec<u8>>>,
    /// gdb's `catch syscall` set (`None`: not catching).
    catching: Option<Vec<String>>,
    pub engine: u64,
    pub pid: u32,
    threads: BTreeMap<u32, Held>,
    wants: HashMap<u32, Want>,
    /// The next resume moves only the threads named (gdb's scheduler
    /// locking, and its `stepi`: `vCont;s:TID` alone).
    locked: bool,
    regs: HashMap<u32, Regs>,
    next_msg: u64,
    /// The process is gone.
    pub exited: bool,
    /// The bridge started the program (else it attached).
    pub spawned: bool,
    /// The debugger asked to kill the process (done with this user's own
    /// rights, as gdbserver beside the process would).
    pub killed: bool,
    /// `vFile`'s open files.
    pub(super) files: super::hostio::Files,
    /// A register read started at the last stop, for its thread.
    #[allow(clippy::type_complexity)]
    prefetch: Option<(
        u32,
        tokio::task::JoinHandle<Result<crate::BatchResults, tonic::Status>>,
    )>,
    /// Breakpoints and watchpoints of this engine in the server.
    inserted: std::collections::BTreeSet<Point>,
    /// Of those, the ones gdb removed since the last resume: gdb takes its
    /// breakpoints out at every stop and puts them back before it resumes
    /// (stepping over the one it stopped at first), so a removal waits for
    /// the resume, and an insertion of the same address before then cancels
    /// it: no round trip to the server for either. Meanwhile the server
    /// hides the byte from every read, and steps over its own int3 when a
    /// thread resumes on it, as if it were out.
    doomed: std::collections::BTreeSet<Point>,
}

/// How long a batch on the session stream is waited for (the server
/// answers one that cannot stop its thread in its batch timeout, 10 s by
/// default).
const ORDERED_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn tid_of(t: u32) -> Option<Tid> {
    NonZeroUsize::new(t as usize)
}

fn op(o: pb::op::Op) -> pb::Op {
    pb::Op { op: Some(o) }
}

fn control(action: pb::Action) -> pb::Op {
    op(pb::op::Op::Control(pb::Control {
        action: action as i32,
        signal: None,
    }))
}

/// A session sender that goes nowhere (no process).
fn no_session() -> mpsc::Sender<pb::ClientMessage> {
    mpsc::channel(1).0
}

impl Bridge {
    /// A bridge with no process yet: [`Bridge::adopt`] gives it one.
    pub(crate) fn new(
        rt: tokio::runtime::Handle,
        client: Client,
        inbox: super::link::Inbox,
        current: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Bridge {
        Bridge {
            rt,
            client,
            session: no_session(),
            awaited: Default::default(),
            inbox,
            current,
            forwarder: None,
            multi: false,
            program: None,
            disable_aslr: None,
            common: Default::default(),
            passed_sent: 0,
            deferred: None,
            catching: None,
            svr4: Default::default(),
            stack_pages: HashMap::new(),
            stop_memory: Vec::new(),
            forks: Default::default(),
            engine: 0,
            pid: 0,
            threads: BTreeMap::new(),
            wants: HashMap::new(),
            locked: false,
            regs: HashMap::new(),
            next_msg: 1_000_000,
            exited: false,
            spawned: false,
            killed: false,
            files: Default::default(),
            prefetch: None,
            inserted: Default::default(),
            doomed: Default::default(),
        }
    }

    /// Debug the process of `o` (its session and engine), `spawned` by
    /// the bridge or attached to.
    /// The bridge must have no process ([`Bridge::forget`]).
    pub(crate) fn adopt(&mut self, o: super::Opened, spawned: bool) {
        self.current
            .store(o.engine, std::sync::atomic::Ordering::SeqCst);
        self.session = o.session;
        self.awaited = o.awaited;
        self.engine = o.engine;
        self.pid = o.pid;
        self.threads = o.tids.iter().map(|t| (*t, Held::Running)).collect();
        self.forwarder = Some(o.forwarder);
        self.spawned = spawned;
        self.common
            .pid
            .store(o.pid, std::sync::atomic::Ordering::SeqCst);
    }

    /// Before leaving: the signal stops still held whose signal gdb keeps
    /// from the program (`QProgramSignals`; `handle SIG nopass`) are let
    /// go without it, as gdbserver discards them at a detach (the rest
    /// are delivered as the engine goes). An ordered batch after the
    /// decisions makes sure they were taken before the detach is.
    fn drop_kept_signals(&mut self) {
        let kept: Vec<u64> = self
            .threads
            .values()
            .filter_map(|h| match h {
                Held::Report {
                    seq,
                    signal: Some(s),
                } if !self.common.lets_have(*s) => Some(*seq),
                _ => None,
            })
            .collect();
        for seq in &kept {
            let d = pb::Decision {
                seq: *seq,
                action: pb::Action::Resume as i32,
                engine_id: self.engine,
                suppress_signal: true,
                ..Default::default()
            };
            if self.decide(d).is_err() {
                return;
            }
        }
        if !kept.is_empty() {
            // Refused or not (the thread may be running), its answer
            // comes after the decisions were taken.
            let _ = self.ordered_batch(self.pid, false, Vec::new());
        }
    }

    /// Share `common` with the link (made by it: [`super::link::Link::common`]).
    pub fn share(&mut self, common: std::sync::Arc<super::link::Common>) {
        self.forks.reported = common.clone();
        self.common = common;
    }

    /// Leave the process: the engine is detached (its holds released, its
    /// breakpoints and watchpoints gone; other engines stay), and its
    /// session ends quietly. The bridge then has no process.
    pub(crate) fn forget(&mut self) {
        self.current.store(0, std::sync::atomic::Ordering::SeqCst);
        if let Some((_, p)) = self.prefetch.take() {
            p.abort();
        }
        if self.engine != 0 && !self.exited {
            self.drop_kept_signals();
            let mut c = self.client.clone();
            let _ = crate::spin::block_on(&self.rt, c.detach(self.engine));
        }
        // Only now: the kept signals' ordered batch above is answered on
        // the session's stream, which this task reads (stopped before it,
        // a detach with a kept signal waited seconds for an answer nobody
        // read).
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
        self.session = no_session();
        self.awaited = Default::default();
        self.engine = 0;
        self.become_process(0, []);
        self.forks.clear();
        self.exited = false;
        self.killed = false;
        self.spawned = false;
        // A new engine starts with every signal reported, nothing caught.
        self.passed_sent = 0;
        self.catching = None;
    }

    /// Start debugging `what` (extended mode's `run` and `attach`), held
    /// stopped: its pid.
    fn open_and_adopt(&mut self, what: super::What) -> Result<u32, BridgeError> {
        self.forget();
        let mut c = self.client.clone();
        let o = crate::spin::block_on(
            &self.rt,
            super::open(&mut c, &what, self.inbox.clone(), self.current.clone()),
        )
        .map_err(|e| match e {
            super::GdbError::Bridge(b) => b,
            other => BridgeError::Server(other.to_string()),
        })?;
        let pid = o.pid;
        self.adopt(o, matches!(what, super::What::Spawn { .. }));
        self.stop_all(true)?;
        Ok(pid)
    }

    /// One batch on `tid`, interrupting it if asked.
    pub(super) fn batch(
        &self,
        tid: u32,
        interrupt: bool,
        ops: Vec<pb::Op>,
    ) -> Result<crate::BatchResults, BridgeError> {
        let req = self.batch_request(tid, interrupt, ops);
        let mut c = self.client.clone();
        crate::spin::block_on(&self.rt, c.send_batch(req)).map_err(BridgeError::from_status)
    }

    /// [`Bridge::batch`] on the session stream, after the decisions sent
    /// before it: the server takes a session's messages in order. A held
    /// report the bridge let go with a decision (a thread's clone, a
    /// passed signal) may not have been released yet when the bridge
    /// stops the thread; a unary batch could overtake the decision, whose
    /// release would then undo the stop (the engine's hold is one).
    fn ordered_batch(
        &mut self,
        tid: u32,
        interrupt: bool,
        ops: Vec<pb::Op>,
    ) -> Result<crate::BatchResults, BridgeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let req = self.batch_request(tid, interrupt, ops);
        let id = self.send(pb::client_message::Msg::Batch(req), Some(tx))?;
        let gone = || BridgeError::SessionGone("the session stream is closed".into());
        // The timer is made inside the runtime (this thread is not one
        // of its).
        let waited = crate::spin::block_on(&self.rt, async move {
            tokio::time::timeout(ORDERED_WAIT, rx).await
        });
        match waited {
            Ok(Ok(Ok(reply))) => Ok(crate::BatchResults::from_raw(reply.results)),
            Ok(Ok(Err(refused))) => Err(BridgeError::Server(refused)),
            Ok(Err(_)) => Err(gone()),
            Err(_) => {
                self.awaited
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                Err(BridgeError::Server(format!(
                    "no answer to a batch on thread {tid} within {ORDERED_WAIT:?}"
                )))
            }
        }
    }

    /// One op on `tid`, which is stopped.
    fn one(&mut self, tid: u32, o: pb::op::Op) -> Result<crate::BatchResults, BridgeError> {
        self.batch(tid, false, vec![op(o)])
    }

    fn decide(&mut self, d: pb::Decision) -> Result<(), BridgeError> {
        self.send(pb::client_message::Msg::Decide(d), None)
            .map(drop)
    }

    /// Send `msg` on the session stream (its reply, if any, to `reply`):
    /// its id.
    fn send(
        &mut self,
        msg: pb::client_message::Msg,
        reply: Option<super::Reply>,
    ) -> Result<u64, BridgeError> {
        self.next_msg += 1;
        let id = self.next_msg;
        if let Some(tx) = reply {
            self.awaited
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, tx);
        }
        let msg = pb::ClientMessage { id, msg: Some(msg) };
        self.session
            .blocking_send(msg)
            .map_err(|_| BridgeError::SessionGone("the session stream is closed".into()))?;
        Ok(id)
    }

    fn batch_request(&self, tid: u32, interrupt: bool, ops: Vec<pb::Op>) -> pb::BatchRequest {
        pb::BatchRequest {
            engine_id: self.engine,
            tid,
            ops,
            stop_on_error: true,
            interrupt,
        }
    }

    /// A thread to run ops on: one that is stopped, else the first.
    pub(super) fn any_stopped(&self) -> u32 {
        self.threads
            .iter()
            .find(|(_, h)| **h != Held::Running)
            .map(|(t, _)| *t)
            .unwrap_or(self.pid)
    }

    /// The engine's events: the bridge's kinds, gdb's caught syscalls, and
    /// the signals passed in the server (`passed`, a bit per signal).
    fn set_events_op(&self, passed: u64) -> pb::Op {
        op(pb::op::Op::SetEvents(pb::SetEvents {
            events: super::engine_events(self.catching.is_some()),
            syscalls: self.catching.clone().unwrap_or_default(),
            engine_id: 0,
            pass_signals: (1..=64).filter(|n| passed & (1 << (n - 1)) != 0).collect(),
        }))
    }

    /// A thread to read or write memory through for gdb's `tid`: that one
    /// if it is the process's, else one that is (memory is the process's;
    /// gdbstub keeps the thread gdb chose before a `run` or `attach`, when
    /// there was none).
    fn mem_tid(&self, tid: Tid) -> u32 {
        let t = tid.get() as u32;
        // A fork child gdb has heard of is a process of its own, one
        // thread (its tid its pid).
        if self.threads.contains_key(&t) || self.forks.has(t) {
            t
        } else {
            self.any_stopped()
        }
    }

    /// The process's threads, as the server knows them now.
    /// The process's threads as the server lists them.
    fn server_tasks(&self) -> Result<Vec<pb::TaskInfo>, BridgeError> {
        let mut c = self.client.clone();
        crate::spin::block_on(&self.rt, c.list_tasks(self.pid)).map_err(BridgeError::from_status)
    }

    fn refresh_threads(&mut self) -> Result<(), BridgeError> {
        let tasks = self.server_tasks()?;
        let now: Vec<u32> = tasks.iter().map(|t| t.tid).collect();
        self.threads.retain(|t, _| now.contains(t));
        for t in now {
            self.threads.entry(t).or_insert(Held::Running);
        }
        Ok(())
    }

    /// Stop and hold every running thread (all-stop). `refresh`: ask the
    /// server for the thread list first (at the first stop and at an
    /// interrupt; at a report the list is current: threads come and go by
    /// the engine's clone, exit and death reports, which come in order).
    pub fn stop_all(&mut self, refresh: bool) -> Result<(), BridgeError> {
        if refresh {
            self.refresh_threads()?;
        }
        let running: Vec<u32> = self
            .threads
            .iter()
            .filter(|(_, h)| **h == Held::Running)
            .map(|(t, _)| *t)
            .collect();
        for t in running {
            match self.ordered_batch(t, true, vec![control(pb::Action::Hold)]) {
                Ok(_) => {
                    self.threads.insert(t, Held::Stopped);
                }
                // Gone meanwhile.
                Err(e) => {
                    tracing_debug(&format!("stopping thread {t}: {e}"));
                    self.threads.remove(&t);
                }
            }
        }
        self.publish_threads();
        Ok(())
    }

    /// Tell the link (shared since the threads were stopped) the process
    /// and its threads.
    pub(super) fn publish(&self) {
        self.common
            .pid
            .store(self.pid, std::sync::atomic::Ordering::SeqCst);
        self.publish_threads();
    }

    /// Keep the thread list where the link answers `qXfer:threads` from
    /// (the leader first, as gdb lists threads in the order it learns of
    /// them).
    fn publish_threads(&self) {
        let mut tids: Vec<u32> = self.threads.keys().copied().collect();
        tids.sort_by_key(|t| (*t != self.pid, *t));
        *super::link::lock(&self.common.threads) = tids;
    }

    /// Whether a thread the bridge stopped is held by a report of this
    /// engine that the bridge has not seen yet (it stopped at a breakpoint
    /// or signal of its own just before the bridge stopped it). Asked of
    /// the server only when the bridge has stopped some thread.
    fn has_pending_report(&mut self) -> Result<bool, BridgeError> {
        if !self.threads.values().any(|h| *h == Held::Stopped) {
            return Ok(false);
        }
        let tasks = self.server_tasks()?;
        Ok(tasks.iter().any(|t| {
            self.threads.get(&t.tid) == Some(&Held::Stopped)
                && t.holders
                    .iter()
                    .any(|h| h.engine_id == self.engine && h.seq != 0)
        }))
    }

    /// After a report gdb does not hear of: the resume put off for it
    /// (see `deferred`), now that no report of ours is pending. When a
    /// report is a stop, gdb hears of it instead, and its resume is
    /// dropped (gdb resumes again after it).
    pub fn resume_deferred(&mut self, stopped: bool) -> Result<(), BridgeError> {
        let Some((wants, locked)) = self.deferred.take() else {
            return Ok(());
        };
        if stopped {
            return Ok(());
        }
        self.wants = wants;
        self.locked = locked;
        self.resume()
    }

    /// The thread a stop without one is reported on.
    pub fn main_tid(&self) -> Tid {
        // No process (extended mode, before a run or attach): gdbstub
        // still wants a thread id for some replies.
        tid_of(self.pid).unwrap_or(NonZeroUsize::MIN)
    }

    /// A report of the engine: the stop to tell the debugger, if any.
    pub fn on_report(&mut self, ev: pb::Event) -> Result<Option<StopReason>, BridgeError> {
        use pb::event::Kind;
        if ev.engine_id != self.engine {
            // A report of an engine the bridge has left (extended mode):
            // its session is being closed.
            return Ok(None);
        }
        if ev.pid != self.pid {
            // Another process of the engine: a fork child starting, else
            // one the bridge has left (a report queued before it did).
            return match &ev.kind {
                Some(Kind::ChildStart(_)) if ev.held => self.on_child_start(&ev),
                Some(Kind::Death(d)) if d.process_gone => {
                    self.forks.gone(ev.pid);
                    Ok(None)
                }
                _ => Ok(None),
            };
        }
        let tid = ev.tid;
        let reason = match &ev.kind {
            // A breakpoint gdb took out, kept in the server through a
            // step (see `doomed`), met by a thread gdb did not resume (one
            // new since the stop): as if it were out, the thread goes on
            // (the server steps it over its own int3).
            Some(Kind::Breakpoint(b)) if self.doomed.contains(&Point::Sw(b.addr)) => None,
            Some(Kind::Breakpoint(_)) => tid_of(tid).map(StopReason::SwBreak),
            Some(Kind::Watchpoint(w)) => tid_of(tid).map(|tid| self.watch_stop(tid, w)),
            Some(Kind::SyscallEntry(e)) => Some(StopReason::CatchSyscall {
                tid: tid_of(tid),
                number: e.nr,
                position: CatchSyscallPosition::Entry,
            }),
            Some(Kind::SyscallExit(e)) => Some(StopReason::CatchSyscall {
                tid: tid_of(tid),
                number: e.nr,
                position: CatchSyscallPosition::Return,
            }),
            Some(Kind::Step(_)) => tid_of(tid).map(|tid| StopReason::SignalWithThread {
                tid,
                signal: Signal::SIGTRAP,
            }),
            Some(Kind::Signal(s)) => tid_of(tid).map(|tid| StopReason::SignalWithThread {
                tid,
                signal: super::signals::to_gdb(s.signo),
            }),
            Some(Kind::Death(d)) => {
                self.threads.remove(&tid);
                if d.process_gone {
                    self.exited = true;
                    let st = d.status.unwrap_or_default();
                    return Ok(Some(if st.signal != 0 {
                        StopReason::Terminated(super::signals::to_gdb(st.signal))
                    } else {
                        StopReason::Exited(st.code as u8)
                    }));
                }
                None
            }
            // A new thread runs if gdb let the whole process run; else
            // (its parent cloned just before a stop, or while gdb steps
            // one thread) it stops with the rest, as under gdbserver.
            Some(Kind::Clone(c)) if c.kind == "thread" => {
                let all_running = self.threads.values().all(|h| *h == Held::Running);
                self.threads.entry(c.child_tid).or_insert(Held::Running);
                if !all_running {
                    self.stop_all(false)?;
                }
                None
            }
            // The parent of a fork waits for its child's start.
            Some(Kind::Clone(c)) if self.on_fork(&ev, c)? => return Ok(None),
            Some(Kind::Exit(_)) => {
                self.threads.remove(&tid);
                None
            }
            // A new program: one thread (the one that exec'd, with the
            // leader's id), none of the engine's breakpoints (the server
            // drops them with the old image; gdb inserts its own again
            // once it has the new program's symbols).
            // The exec that started a spawned program: the debugger never
            // hears of it (the program was started at its first
            // instruction, after it).
            Some(Kind::Exec(x)) if x.startup => None,
            Some(Kind::Exec(x)) => {
                self.become_process(self.pid, [(tid, Held::Running)]);
                *super::link::lock(&self.common.exec) = Some(x.exe.clone());
                tid_of(tid).map(StopReason::Library)
            }
            _ => None,
        };
        if !ev.held {
            return Ok(reason);
        }
        let passed = match &ev.kind {
            Some(Kind::Signal(s)) => self.common.passes(s.signo),
            _ => false,
        };
        let Some(reason) = reason.filter(|_| !passed) else {
            // Held, but nothing the debugger is told (or a signal gdb
            // passes, which it would only resume with the signal: `handle
            // SIG nostop pass`). A thread the bridge stopped for gdb stays
            // stopped: the engine's hold is one, and letting the report go
            // would let the thread go. It goes (the signal delivered) when
            // gdb resumes it.
            if self.threads.get(&tid) == Some(&Held::Stopped) {
                self.decide_hold(ev.seq)?;
                self.threads.insert(
                    tid,
                    Held::Report {
                        seq: ev.seq,
                        signal: None,
                    },
                );
                return Ok(None);
            }
            // Else let it go, with no round trip.
            self.decide(pb::Decision {
                seq: ev.seq,
                action: pb::Action::Resume as i32,
                engine_id: self.engine,
                ..Default::default()
            })?;
            return Ok(None);
        };
        let signal = match &ev.kind {
            Some(Kind::Signal(s)) => Some(s.signo),
            _ => None,
        };
        self.hold_report(&ev, signal)?;
        self.stop_all(false)?;
        Ok(Some(reason))
    }

    /// Keep report `seq` held, with no deadline, until the debugger
    /// resumes its thread.
    pub(super) fn decide_hold(&mut self, seq: u64) -> Result<(), BridgeError> {
        self.decide(pb::Decision {
            seq,
            action: pb::Action::Hold as i32,
            engine_id: self.engine,
            ..Default::default()
        })
    }

    /// Keep report `ev` held (of `signal`, if a signal's), its thread
    /// stopped for the debugger. Its registers came with it (the engine
    /// expedites them); they are read (in the background) only if not.
    pub(super) fn hold_report(
        &mut self,
        ev: &pb::Event,
        signal: Option<i32>,
    ) -> Result<(), BridgeError> {
        self.decide_hold(ev.seq)?;
        self.threads.insert(
            ev.tid,
            Held::Report {
                seq: ev.seq,
                signal,
            },
        );
        match ev
            .expedited
            .as_ref()
            .map(|x| Regs::from_server(&x.registers, &x.register_bytes))
        {
            Some(Ok(regs)) => {
                if let Some(x) = &ev.expedited {
                    self.keep_stop_memory(&regs, &x.memory);
                }
                self.regs.insert(ev.tid, regs);
            }
            _ => self.prefetch_regs(ev.tid),
        }
        Ok(())
    }

    /// Keep the memory a report brought, at the addresses its registers
    /// give (bounded: a stop's reports are few; the oldest go first).
    fn keep_stop_memory(&mut self, regs: &Regs, memory: &[utrace_proto::Bytes]) {
        for ((register, offset, _), data) in super::STOP_MEMORY.iter().zip(memory) {
            let base = match *register {
                "rip" => regs.rip,
                _ => regs.gpr[7],
            };
            if data.is_empty() {
                continue;
            }
            if self.stop_memory.len() >= 16 {
                self.stop_memory.remove(0);
            }
            self.stop_memory
                .push((base.wrapping_add(*offset as i64 as u64), data.to_vec()));
        }
    }

    /// A read wholly inside memory that came with this stop's reports.
    fn stop_memory_read(&self, start: u64, data: &mut [u8]) -> Option<usize> {
        let end = start.checked_add(data.len() as u64)?;
        let (at, bytes) = self
            .stop_memory
            .iter()
            .find(|(at, bytes)| *at <= start && end <= at.saturating_add(bytes.len() as u64))?;
        let from = (start - at) as usize;
        data.copy_from_slice(&bytes[from..from + data.len()]);
        Some(data.len())
    }

    /// The report `tid` is held by for the debugger, if it is.
    pub(super) fn threads_held_by(&self, tid: u32) -> Option<u64> {
        match self.threads.get(&tid) {
            Some(Held::Report { seq, .. }) => Some(*seq),
            _ => None,
        }
    }

    /// Debug process `pid` (0: none), its threads as given: nothing of
    /// the last one's is kept (breakpoints are per process: a fork child
    /// has none of the parent's, and gdb inserts them again).
    pub(super) fn become_process(
        &mut self,
        pid: u32,
        threads: impl IntoIterator<Item = (u32, Held)>,
    ) {
        self.pid = pid;
        self.common
            .pid
            .store(pid, std::sync::atomic::Ordering::SeqCst);
        self.threads = threads.into_iter().collect();
        self.publish_threads();
        self.wants.clear();
        self.regs.clear();
        self.stack_pages.clear();
        self.stop_memory.clear();
        if let Some((_, p)) = self.prefetch.take() {
            p.abort();
        }
        self.inserted.clear();
        self.doomed.clear();
        self.locked = false;
        *self.svr4.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Leave the frame, stack and program pointers of `stop`'s thread for
    /// the link to put in the stop reply (when the report brought them):
    /// gdb then asks for no `g` at the stop, as with gdbserver. With why
    /// it stopped in lldb's words (`stepped`: the report was a step's;
    /// a watchpoint's stop says `watch:ADDR`, which lldb reads itself).
    pub fn expedite(&self, stop: &StopReason, stepped: bool) {
        let reason = match stop {
            StopReason::SwBreak(_) | StopReason::HwBreak(_) => Some("breakpoint"),
            StopReason::SignalWithThread { .. } if stepped => Some("trace"),
            StopReason::SignalWithThread { .. } => Some("signal"),
            _ => None,
        };
        let tid = match stop {
            StopReason::SwBreak(t) | StopReason::HwBreak(t) => *t,
            StopReason::Watch { tid, .. } => *tid,
            StopReason::SignalWithThread { tid, .. } => *tid,
            StopReason::Fork { cur_tid, .. } => *cur_tid,
            StopReason::Library(t) => *t,
            StopReason::CatchSyscall { tid: Some(t), .. } => *t,
            _ => return,
        };
        let tid = tid.get() as u32;
        let Some(r) = self.regs.get(&tid) else {
            return;
        };
        let hex =
            |v: u64| -> String { v.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect() };
        let text = format!(
            "06:{};07:{};10:{};",
            hex(r.gpr[6]),
            hex(r.gpr[7]),
            hex(r.rip)
        );
        *super::link::lock(&self.common.expedite) = Some(super::link::Stopped {
            tid,
            regs: text,
            reason,
        });
    }

    /// The fork child gdb's breakpoint packets are about, if they are not
    /// about the debugged process (`Hg` named the child, whose memory has
    /// none of the engine's breakpoints).
    fn other_process(&self) -> Option<u32> {
        let g = self
            .common
            .general
            .load(std::sync::atomic::Ordering::SeqCst);
        (g != 0 && g != self.pid && self.forks.has(g)).then_some(g)
    }

    /// The stop a hit of this engine's debug-register slot `w` is to gdb:
    /// a hardware breakpoint, or the watchpoint gdb set that covers it.
    fn watch_stop(&self, tid: Tid, w: &pb::Watchpoint) -> StopReason {
        let z = self
            .inserted
            .iter()
            .find_map(|p| match *p {
                Point::Hw { addr, len, z }
                    if addr == w.addr && len == w.len && Point::kind(z) as i32 == w.kind =>
                {
                    Some(z)
                }
                _ => None,
            })
            .unwrap_or(2);
        let kind = match z {
            1 => return StopReason::HwBreak(tid),
            3 => WatchKind::Read,
            4 => WatchKind::ReadWrite,
            _ => WatchKind::Write,
        };
        StopReason::Watch {
            tid,
            kind,
            addr: w.addr,
        }
    }

    /// Insert `points` (all or none): from the doomed, else in the server.
    fn add_points(&mut self, points: &[Point]) -> TargetResult<bool, Self> {
        if let Some(pid) = self.other_process() {
            // gdb debugs one process at a time (no `detach-on-fork off`).
            tracing_debug(&format!("not inserting {points:?} in {pid}, not debugged"));
            return Ok(false);
        }
        let new: Vec<Point> = points
            .iter()
            .filter(|p| !self.inserted.contains(p))
            .copied()
            .collect();
        if !new.is_empty() {
            let t = self.any_stopped();
            let ops = new.iter().map(|p| op(p.insert_op())).collect();
            let res = self.batch(t, false, ops).map_err(failed)?;
            if let Some(f) = res.first_failure() {
                tracing_debug(&format!("inserting {points:?}: {f:?}"));
                // The batch stopped at the failure: take back what went in
                // before it.
                let undo: Vec<pb::Op> = new
                    .iter()
                    .zip(res.raw())
                    .filter(|(_, r)| matches!(r.result, Some(pb::op_result::Result::Done(_))))
                    .map(|(p, _)| op(p.remove_op()))
                    .collect();
                if !undo.is_empty() {
                    let _ = self.batch(t, false, undo);
                }
                return Ok(false);
            }
            self.inserted.extend(new);
        }
        // Ones gdb removed since the resume stay in.
        for p in points {
            self.doomed.remove(p);
        }
        Ok(true)
    }

    /// Remove `points`: ones in the server wait for the resume (see
    /// `doomed`).
    fn remove_points(&mut self, points: &[Point]) -> TargetResult<bool, Self> {
        if self.other_process().is_some() {
            // A fork child starts with none of the engine's.
            return Ok(true);
        }
        let mut ok = true;
        for p in points {
            if self.inserted.contains(p) {
                self.doomed.insert(*p);
            } else {
                ok = false;
            }
        }
        Ok(ok)
    }

    /// The batch that reads every register gdb's `g` packet holds.
    fn regs_request(&self, tid: u32) -> pb::BatchRequest {
        let words: Vec<String> = WORDS.iter().map(|s| s.to_string()).collect();
        let wide: Vec<String> = WIDE.iter().map(|s| s.to_string()).collect();
        let ops = vec![
            op(pb::op::Op::GetRegisters(pb::GetRegisters { names: words })),
            op(pb::op::Op::GetRegisterBytes(pb::GetRegisterBytes {
                names: wide,
            })),
        ];
        self.batch_request(tid, false, ops)
    }

    /// Start reading `tid`'s registers now, before the debugger asks (it
    /// always does, right after a stop reply): the round trip to the
    /// server overlaps the one to the debugger.
    fn prefetch_regs(&mut self, tid: u32) {
        let req = self.regs_request(tid);
        let mut c = self.client.clone();
        let task = self.rt.spawn(async move { c.send_batch(req).await });
        if let Some((_, old)) = self.prefetch.replace((tid, task)) {
            old.abort();
        }
    }

    /// A read of the stack near the stopped thread `tid`'s stack pointer,
    /// from whole pages read once per stop: gdb reads a backtrace's frames
    /// and `x` of the stack a few bytes at a time, each a round trip
    /// through the server. gdb itself caches stack reads within a stop
    /// (`set stack-cache`, on by default): a program's own threads are all
    /// held meanwhile. The pages go at the next resume or write. `None`:
    /// not such a read (no registers of this stop for `tid`, not near its
    /// stack pointer, over a page, or a page that could not be read
    /// whole); the caller reads as usual.
    fn stack_read(&mut self, tid: u32, start: u64, data: &mut [u8]) -> Option<usize> {
        const PAGE: u64 = 4096;
        const BELOW: u64 = 128 << 10;
        const ABOVE: u64 = 1 << 20;
        let len = data.len() as u64;
        if len == 0 || len > PAGE {
            return None;
        }
        // rsp is gdb's register 7.
        let sp = self.regs.get(&tid)?.gpr[7];
        let end = start.checked_add(len)?;
        if start < sp.saturating_sub(BELOW) || end > sp.saturating_add(ABOVE) {
            return None;
        }
        let pages = [start & !(PAGE - 1), (end - 1) & !(PAGE - 1)];
        let mut need: Vec<u64> = pages
            .iter()
            .copied()
            .filter(|p| !self.stack_pages.contains_key(p))
            .collect();
        need.dedup();
        if !need.is_empty() {
            let ops = need
                .iter()
                .map(|&addr| {
                    op(pb::op::Op::ReadMemory(pb::ReadMemory {
                        addr,
                        len: PAGE as u32,
                    }))
                })
                .collect();
            let res = self.batch(tid, false, ops).ok()?;
            for (i, p) in need.iter().enumerate() {
                if let Ok(m) = res.read(i) {
                    self.stack_pages.insert(*p, m.data.to_vec());
                }
            }
        }
        let mut n = 0;
        while n < data.len() {
            let a = start + n as u64;
            let page = self.stack_pages.get(&(a & !(PAGE - 1)))?;
            let off = (a & (PAGE - 1)) as usize;
            if off >= page.len() {
                return None;
            }
            let k = (page.len() - off).min(data.len() - n);
            data[n..n + k].copy_from_slice(&page[off..off + k]);
            n += k;
        }
        Some(n)
    }

    fn regs_of(&mut self, tid: u32) -> Result<Regs, BridgeError> {
        if let Some(r) = self.regs.get(&tid) {
            return Ok(r.clone());
        }
        let res = match self.prefetch.take() {
            Some((t, task)) if t == tid => match crate::spin::block_on(&self.rt, task) {
                Ok(r) => r.map_err(BridgeError::from_status)?,
                Err(e) => return Err(BridgeError::Server(format!("register read: {e}"))),
            },
            other => {
                if let Some((_, task)) = other {
                    task.abort();
                }
                let req = self.regs_request(tid);
                let mut c = self.client.clone();
                crate::spin::block_on(&self.rt, c.send_batch(req))
                    .map_err(BridgeError::from_status)?
            }
        };
        let f = |e: crate::OpFailure| BridgeError::Server(e.to_string());
        let regs = Regs::from_server(
            res.registers(0).map_err(f)?,
            res.register_bytes(1).map_err(f)?,
        )
        .map_err(BridgeError::Server)?;
        self.regs.insert(tid, regs.clone());
        Ok(regs)
    }
}

/// Debug log through `tracing` when the CLI has it (the library does not
/// depend on it).
pub(crate) fn tracing_debug(_msg: &str) {
    #[cfg(feature = "embedded")]
    tracing::debug!("{_msg}");
}

/// A warning through `tracing` when the CLI has it.
pub(crate) fn tracing_warn(_msg: &str) {
    #[cfg(feature = "embedded")]
    tracing::warn!("{_msg}");
}

impl Target for Bridge {
    type Arch = X86_64Linux;
    type Error = BridgeError;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_exec_file(&mut self) -> Option<ExecFileOps<'_, Self>> {
        Some(self)
    }

    fn support_auxv(&mut self) -> Option<AuxvOps<'_, Self>> {
        Some(self)
    }

    fn support_extended_mode(&mut self) -> Option<ExtendedModeOps<'_, Self>> {
        Some(self)
    }

    fn support_host_io(&mut self) -> Option<gdbstub::target::ext::host_io::HostIoOps<'_, Self>> {
        Some(self)
    }

    fn support_catch_syscalls(&mut self) -> Option<CatchSyscallsOps<'_, Self>> {
        Some(self)
    }

    fn support_host_info(&mut self) -> Option<HostInfoOps<'_, Self>> {
        Some(self)
    }

    fn support_libraries_svr4(
        &mut self,
    ) -> Option<gdbstub::target::ext::libraries::LibrariesSvr4Ops<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(
        &mut self,
    ) -> Option<gdbstub::target::ext::monitor_cmd::MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    // Forks are followed (see super::fork); vforks are not offered.
    fn use_vfork_stop_reason(&self) -> bool {
        false
    }

    fn use_vforkdone_stop_reason(&self) -> bool {
        false
    }
}

impl gdbstub::target::ext::monitor_cmd::MonitorCmd for Bridge {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: gdbstub::target::ext::monitor_cmd::ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        // gdb's `D;PID` after a fork, as the link passes it on.
        if let Some(pid) = cmd.strip_prefix(super::link::LEAVE.as_bytes()) {
            let pid = std::str::from_utf8(pid)
                .ok()
                .and_then(|p| u32::from_str_radix(p, 16).ok());
            if let Some(pid) = pid {
                // gdb reads one reply, `OK` or an error: nothing else is
                // written, and a failure is only logged.
                if let Err(e) = self.leave(pid) {
                    tracing_debug(&format!("detaching {pid} after a fork: {e}"));
                }
            }
            return Ok(());
        }
        gdbstub::outputln!(out, "utrace gdb has no monitor commands");
        Ok(())
    }
}

/// lldb's `qHostInfo`: what it is talking to. (Not `qProcessInfo`:
/// gdbstub 0.7 writes its pid in decimal where lldb reads hex, and lldb
/// then takes the process for another and kills it.)
const TRIPLE: &str = "x86_64-pc-linux-gnu";

impl Bridge {
    /// The engine's report kinds and syscalls now (`syscalls` `None`: no
    /// syscall stops). The server applies the set kernel-side where it
    /// can: syscalls gdb does not catch do not stop the program.
    fn set_syscalls(&mut self, syscalls: Option<Vec<String>>) -> TargetResult<(), Self> {
        self.catching = syscalls;
        let events = self.set_events_op(self.passed_sent);
        let t = self.any_stopped();
        let res = self.batch(t, false, vec![events]).map_err(failed)?;
        match res.first_failure() {
            None => Ok(()),
            Some(f) => {
                tracing_debug(&format!("catch syscall: {f:?}"));
                Err(TargetError::NonFatal)
            }
        }
    }
}

impl CatchSyscalls for Bridge {
    fn enable_catch_syscalls(
        &mut self,
        filter: Option<SyscallNumbers<'_, u64>>,
    ) -> TargetResult<(), Self> {
        // No filter ("catch syscall" alone): every syscall, which is what
        // the server takes an empty list for.
        let names: Vec<String> = filter
            .map(|f| f.map(|n| n.to_string()).collect())
            .unwrap_or_default();
        self.set_syscalls(Some(names))
    }

    fn disable_catch_syscalls(&mut self) -> TargetResult<(), Self> {
        self.set_syscalls(None)
    }
}

impl HostInfo for Bridge {
    fn host_info(&self, write: &mut dyn FnMut(&HostInfoResponse<'_>)) -> Result<(), Self::Error> {
        write(&HostInfoResponse::Triple(TRIPLE));
        write(&HostInfoResponse::Endianness(Endianness::Little));
        write(&HostInfoResponse::PointerSize(8));
        Ok(())
    }
}

/// A `run` or `attach` the server refused: said on the bridge's standard
/// error, as gdbserver says why a program could not start (gdb itself
/// only learns that it failed).
fn refused(what: &str, e: BridgeError) -> TargetError<BridgeError> {
    eprintln!("utrace gdb: {what}: {e}");
    TargetError::NonFatal
}

/// Extended mode: the real pid in every thread id, `kill`, and (with
/// `--multi`, as gdbserver's) `run` and `attach`.
impl ExtendedMode for Bridge {
    fn run(&mut self, filename: Option<&[u8]>, args: Args<'_, '_>) -> TargetResult<Pid, Self> {
        let Some(super::What::Spawn {
            argv: given,
            env,
            cwd,
            stdio,
            disable_aslr,
        }) = self.program.clone()
        else {
            eprintln!("utrace gdb: run: a program is started by utrace gdb --multi only");
            return Err(TargetError::NonFatal);
        };
        // gdb names the program with `set remote exec-file`, else the one
        // given on utrace's command line runs; gdb's arguments replace
        // that one's when it sends any.
        let mut argv: Vec<String> = match filename.filter(|f| !f.is_empty()) {
            Some(f) => vec![String::from_utf8_lossy(f).into_owned()],
            None => given.first().cloned().into_iter().collect(),
        };
        if argv.is_empty() {
            eprintln!(
                "utrace gdb: run: which program? (gdb: set remote exec-file PROG; or give \
                 it to utrace gdb --multi)"
            );
            return Err(TargetError::NonFatal);
        }
        let args: Vec<String> = args
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.is_empty() && filename.is_none_or(|f| f.is_empty()) {
            argv.extend(given.iter().skip(1).cloned());
        } else {
            argv.extend(args);
        }
        let program = argv[0].clone();
        let pid = self
            .open_and_adopt(super::What::Spawn {
                argv,
                env,
                cwd,
                stdio,
                disable_aslr: self.disable_aslr.unwrap_or(disable_aslr),
            })
            .map_err(|e| refused(&format!("run {program}"), e))?;
        Pid::new(pid as usize).ok_or(TargetError::NonFatal)
    }

    fn attach(&mut self, pid: Pid) -> TargetResult<(), Self> {
        if !self.multi {
            eprintln!(
                "utrace gdb: attach: utrace gdb --multi attaches, this session has its process"
            );
            return Err(TargetError::NonFatal);
        }
        self.open_and_adopt(super::What::Attach(pid.get() as u32))
            .map_err(|e| refused(&format!("attach {pid}"), e))?;
        Ok(())
    }

    fn query_if_attached(&mut self, _pid: Pid) -> TargetResult<AttachKind, Self> {
        Ok(if self.spawned {
            AttachKind::Run
        } else {
            AttachKind::Attach
        })
    }

    fn kill(&mut self, _pid: Option<Pid>) -> TargetResult<ShouldTerminate, Self> {
        if self.pid != 0 {
            super::sigkill(self.pid);
            self.killed = true;
        }
        if self.multi {
            // The debugger stays, and may run or attach next.
            self.forget();
            return Ok(ShouldTerminate::No);
        }
        Ok(ShouldTerminate::Yes)
    }

    fn restart(&mut self) -> Result<(), Self::Error> {
        Err(BridgeError::Unsupported("restarting the program"))
    }

    fn support_current_active_pid(&mut self) -> Option<CurrentActivePidOps<'_, Self>> {
        Some(self)
    }

    fn support_configure_aslr(&mut self) -> Option<ConfigureAslrOps<'_, Self>> {
        Some(self)
    }
}

/// gdb's `set disable-randomization` (`QDisableRandomization`, sent before
/// each `run`): the next program starts with address space randomization
/// off, or on.
impl ConfigureAslr for Bridge {
    fn cfg_aslr(&mut self, enabled: bool) -> TargetResult<(), Self> {
        // (gdbstub's `enabled` is the packet's value: randomization
        // *disabled*.)
        self.disable_aslr = Some(enabled);
        Ok(())
    }
}

impl CurrentActivePid for Bridge {
    fn current_active_pid(&mut self) -> Result<Pid, Self::Error> {
        Ok(self.main_tid())
    }
}

impl MultiThreadBase for Bridge {
    fn read_registers(&mut self, regs: &mut Regs, tid: Tid) -> TargetResult<(), Self> {
        *regs = self.regs_of(tid.get() as u32).map_err(failed)?;
        Ok(())
    }

    fn write_registers(&mut self, regs: &Regs, tid: Tid) -> TargetResult<(), Self> {
        let t = tid.get() as u32;
        let old = self.regs_of(t).map_err(failed)?;
        let (words, wide) = regs.changes_from(&old);
        let mut ops = Vec::new();
        if !words.is_empty() {
            ops.push(op(pb::op::Op::SetRegisters(pb::SetRegisters {
                values: words.into_iter().collect(),
            })));
        }
        if !wide.is_empty() {
            ops.push(op(pb::op::Op::SetRegisterBytes(pb::SetRegisterBytes {
                values: wide
                    .into_iter()
                    .map(|(n, v)| (n, utrace_proto::Bytes::from(v)))
                    .collect(),
            })));
        }
        if ops.is_empty() {
            return Ok(());
        }
        let res = self.batch(t, false, ops).map_err(failed)?;
        if let Some(f) = res.first_failure() {
            tracing_debug(&format!("writing registers of {t}: {f}"));
            return Err(TargetError::NonFatal);
        }
        self.regs.insert(t, regs.clone());
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        let t = self.mem_tid(tid);
        if self.forks.has(t) {
            // A fork child's memory is its own.
        } else if let Some(n) = self.stop_memory_read(start, data) {
            return Ok(n);
        }
        if let Some(n) = self.stack_read(t, start, data) {
            return Ok(n);
        }
        let res = self
            .one(
                t,
                pb::op::Op::ReadMemory(pb::ReadMemory {
                    addr: start,
                    len: data.len() as u32,
                }),
            )
            .map_err(failed)?;
        let got = res.read(0).map_err(|_| TargetError::NonFatal)?;
        let n = got.data.len().min(data.len());
        data[..n].copy_from_slice(&got.data[..n]);
        if n == 0 {
            return Err(TargetError::NonFatal);
        }
        Ok(n)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        self.stack_pages.clear();
        self.stop_memory.clear();
        let res = self
            .one(
                self.mem_tid(tid),
                pb::op::Op::WriteMemory(pb::WriteMemory {
                    addr: start,
                    data: utrace_proto::Bytes::copy_from_slice(data),
                }),
            )
            .map_err(failed)?;
        if res.first_failure().is_some() {
            return Err(TargetError::NonFatal);
        }
        Ok(())
    }

    fn list_active_threads(&mut self, found: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for t in self.threads.keys() {
            if let Some(t) = tid_of(*t) {
                found(t);
            }
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for Bridge {
    fn resume(&mut self) -> Result<(), Self::Error> {
        self.regs.clear();
        self.stack_pages.clear();
        self.stop_memory.clear();
        if let Some((_, task)) = self.prefetch.take() {
            task.abort();
        }
        // A resume that only single-steps keeps the breakpoints gdb took
        // out in the server: gdb steps over the breakpoint it stopped at
        // with it out, and puts it back right after (two round trips to
        // the server per hit, spared). The server steps a thread over its
        // own int3 as if it were out, and no other thread runs meanwhile.
        let moving = |t: &u32| match self.wants.get(t) {
            Some(w) => Some(*w),
            None if self.locked => None,
            None => Some(Want::Continue(None)),
        };
        let only_steps = self
            .threads
            .keys()
            .filter_map(moving)
            .all(|w| matches!(w, Want::Step(_)));
        if !self.doomed.is_empty() && !only_steps {
            let doomed = std::mem::take(&mut self.doomed);
            let ops = doomed.iter().map(|p| op(p.remove_op())).collect();
            let t = self.any_stopped();
            if let Err(e) = self.batch(t, false, ops) {
                tracing_debug(&format!("removing breakpoints: {e}"));
            }
            for a in doomed {
                self.inserted.remove(&a);
            }
        }
        if self.has_pending_report()? {
            // A thread the bridge stopped had stopped at a report of ours
            // already (two threads at breakpoints at once), and the report
            // is on its way: it is the next stop gdb hears of, with nothing
            // run meanwhile, as gdbserver reports pending events. Resumed
            // now, that thread would run on (our hold is one, whoever took
            // it) and its report would name a stop long gone. The resume
            // is kept: if that report is nothing gdb hears of (a clone),
            // it is done then ([`Bridge::resume_deferred`]).
            self.deferred = Some((
                std::mem::take(&mut self.wants),
                std::mem::take(&mut self.locked),
            ));
            return Ok(());
        }
        let wants = std::mem::take(&mut self.wants);
        let locked = std::mem::take(&mut self.locked);
        let threads: Vec<(u32, Held)> = self.threads.iter().map(|(t, h)| (*t, *h)).collect();
        // Threads not named continue, unless the scheduler is locked (then
        // they stay stopped). The stepping threads go last: the others are
        // on their way first.
        let mut order: Vec<(u32, Held, Want)> = threads
            .into_iter()
            .filter_map(|(t, h)| match wants.get(&t) {
                Some(w) => Some((t, h, *w)),
                None if locked => None,
                None => Some((t, h, Want::Continue(None))),
            })
            .collect();
        order.sort_by_key(|(_, _, w)| !matches!(w, Want::Continue(_)));
        // gdb's pass set, when it changed, goes to the server with the
        // first thread's resume (in its batch: no round trip of its own),
        // so that those signals no longer stop the program at all.
        let passed = self.common.passed.load(std::sync::atomic::Ordering::SeqCst);
        let mut pass_op = (passed != self.passed_sent && !order.is_empty()).then(|| {
            self.passed_sent = passed;
            self.set_events_op(passed)
        });
        for (t, held, want) in order {
            let (action, sig) = match want {
                Want::Continue(s) => (pb::Action::Resume, s),
                Want::Step(s) => (pb::Action::Step, s),
                Want::RangeStep(..) => (pb::Action::Step, None),
            };
            // A signal gdb keeps from the program is not delivered.
            let sig = sig.filter(|s| self.common.lets_have(*s));
            // A range step: the step's range goes first, in the same batch.
            let mut range: Vec<pb::Op> = pass_op.take().into_iter().collect();
            if let Want::RangeStep(start, end) = want {
                range.push(op(pb::op::Op::SetStepRange(pb::SetStepRange {
                    start,
                    end,
                })));
            }
            match held {
                Held::Running => {}
                Held::Report { seq, signal } => {
                    // At a signal stop, gdb passes the signal (or another)
                    // by naming it; no signal named: not delivered.
                    let d = pb::Decision {
                        seq,
                        action: action as i32,
                        engine_id: self.engine,
                        signal: sig.unwrap_or(0),
                        suppress_signal: signal.is_some() && sig.is_none(),
                        batch: (!range.is_empty()).then(|| pb::BatchRequest {
                            ops: range,
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    self.decide(d)?;
                }
                Held::Stopped => {
                    let mut ops = range;
                    ops.push(control(action));
                    if let Err(e) = self.batch(t, false, ops) {
                        tracing_debug(&format!("resuming thread {t}: {e}"));
                    }
                }
            }
            self.threads.insert(t, Held::Running);
        }
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.wants.clear();
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.wants.insert(
            tid.get() as u32,
            Want::Continue(signal.and_then(super::signals::to_linux)),
        );
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }

    fn support_range_step(&mut self) -> Option<MultiThreadRangeSteppingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadRangeStepping for Bridge {
    fn set_resume_action_range_step(
        &mut self,
        tid: Tid,
        start: u64,
        end: u64,
    ) -> Result<(), Self::Error> {
        self.wants
            .insert(tid.get() as u32, Want::RangeStep(start, end));
        Ok(())
    }
}

impl MultiThreadSchedulerLocking for Bridge {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.locked = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for Bridge {
    fn set_resume_action_step(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.wants.insert(
            tid.get() as u32,
            Want::Step(signal.and_then(super::signals::to_linux)),
        );
        Ok(())
    }
}

impl Breakpoints for Bridge {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for Bridge {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.add_points(&[Point::Sw(addr)])
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.remove_points(&[Point::Sw(addr)])
    }
}

impl HwBreakpoint for Bridge {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.add_points(&[Point::Hw { addr, len: 1, z: 1 }])
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.remove_points(&[Point::Hw { addr, len: 1, z: 1 }])
    }
}

fn z_of(kind: WatchKind) -> u8 {
    match kind {
        WatchKind::Write => 2,
        WatchKind::Read => 3,
        WatchKind::ReadWrite => 4,
    }
}

impl HwWatchpoint for Bridge {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        // More than the four slots: refused (gdb then says so).
        Point::pieces(addr, len, z_of(kind)).map_or(Ok(false), |p| self.add_points(&p))
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Point::pieces(addr, len, z_of(kind)).map_or(Ok(false), |p| self.remove_points(&p))
    }
}

/// `offset`/`length` of `bytes` into `buf`: the size copied.
pub(super) fn window(bytes: &[u8], offset: u64, length: usize, buf: &mut [u8]) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let n = length.min(buf.len()).min(bytes.len() - start);
    buf[..n].copy_from_slice(&bytes[start..start + n]);
    n
}

impl Auxv for Bridge {
    fn get_auxv(&self, offset: u64, length: usize, buf: &mut [u8]) -> TargetResult<usize, Self> {
        // Where the program and the dynamic loader were loaded (AT_ENTRY,
        // AT_BASE): gdb relocates a PIE and finds the libraries from it.
        let auxv =
            std::fs::read(format!("/proc/{}/auxv", self.pid)).map_err(|_| TargetError::NonFatal)?;
        Ok(window(&auxv, offset, length, buf))
    }
}

impl ExecFile for Bridge {
    fn get_exec_file(
        &self,
        _pid: Option<Pid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        // The bridge runs beside the process (as gdbserver does): its
        // executable's path, as this user may read it.
        let path = std::fs::read_link(format!("/proc/{}/exe", self.pid))
            .map_err(|_| TargetError::NonFatal)?;
        Ok(window(
            path.as_os_str().as_encoded_bytes(),
            offset,
            length,
            buf,
        ))
    }
}
