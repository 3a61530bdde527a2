//! Remote engines: an engine in the core whose reports go to gRPC clients.
//!
//! An asynchronous remote engine never holds the task. Each report is turned
//! into a wire `Event` on the tracer thread and offered to every subscriber's
//! bounded queue with `try_send`: a full queue drops the report and counts
//! it, and the next event that gets through carries the count in
//! `dropped_before`. One slow client never slows another, or the tracee.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use utrace_engines::builtin::recorder;
use utrace_engines::{
    Action, CloneKind, CloneReport, Engine, EventMask, ExecReport, ExitReport, SignalAction,
    SignalReport, SyscallEntry, SyscallExit, Task,
};
use utrace_proto::v1 as pb;

use crate::convert::exit_status;

struct Sub {
    tx: mpsc::Sender<pb::Event>,
    /// Reports lost since the last one delivered; shared with the stream,
    /// which reports what is left when it ends.
    dropped: Arc<AtomicU64>,
}

/// One subscriber's end: its queue and its count of lost reports.
pub struct Subscription {
    pub rx: mpsc::Receiver<pb::Event>,
    pub dropped: Arc<AtomicU64>,
}

fn sub(queue_len: usize) -> (Sub, Subscription) {
    let (tx, rx) = mpsc::channel(queue_len);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        Sub {
            tx,
            dropped: Arc::clone(&dropped),
        },
        Subscription { rx, dropped },
    )
}

/// The subscribers of one engine.
pub struct Hub {
    subs: Mutex<Vec<Sub>>,
    closed: AtomicBool,
    queue_len: usize,
    /// The event kinds the client asked for (EventMask bits); a batch's
    /// set_events changes it. The engine's own mask also always has CLONE
    /// and DEATH, which it needs to end the stream.
    wanted: std::sync::atomic::AtomicU32,
}

impl Hub {
    /// A hub with one subscriber, whose end is returned.
    pub fn new(queue_len: usize, wanted: EventMask) -> (Arc<Hub>, Subscription) {
        let (s, end) = sub(queue_len);
        (
            Arc::new(Hub {
                subs: Mutex::new(vec![s]),
                closed: AtomicBool::new(false),
                queue_len,
                wanted: std::sync::atomic::AtomicU32::new(wanted.bits()),
            }),
            end,
        )
    }

    /// The kinds the client wants reported.
    pub fn wanted(&self) -> EventMask {
        EventMask::from_bits_truncate(self.wanted.load(Ordering::Acquire))
    }

    /// Change the kinds the client wants reported.
    pub fn set_wanted(&self, m: EventMask) {
        self.wanted.store(m.bits(), Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sub>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Another subscriber; `None` once the engine has nothing more to report.
    pub fn subscribe(&self) -> Option<Subscription> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let (s, end) = sub(self.queue_len);
        self.lock().push(s);
        Some(end)
    }

    /// Offer `ev` to every subscriber without ever blocking.
    pub fn publish(&self, ev: pb::Event) {
        let mut subs = self.lock();
        subs.retain_mut(|s| {
            // Reserve first, so the count travels with the event that gets in.
            match s.tx.try_reserve() {
                Ok(permit) => {
                    let mut e = ev.clone();
                    e.dropped_before = s.dropped.swap(0, Ordering::AcqRel);
                    permit.send(e);
                    true
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    s.dropped.fetch_add(1, Ordering::AcqRel);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(())) => false,
            }
        });
    }

    /// No more reports: every stream ends once it has drained its queue.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock().clear();
    }
}

/// What a remote engine reports and how.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The kinds the client asked for.
    pub wanted: EventMask,
    /// Attach strace-style text to syscall reports.
    pub decode: bool,
    pub follow_children: bool,
}

/// An asynchronous remote engine.
pub struct RemoteEngine {
    hub: Arc<Hub>,
    spec: Spec,
    seq: u64,
    /// Traced processes still alive (the stream ends at zero).
    live: i64,
    /// Syscall entry text per thread, completed at exit.
    decoder: recorder::Decoder,
}

impl RemoteEngine {
    pub fn new(hub: Arc<Hub>, spec: Spec) -> Self {
        RemoteEngine {
            hub,
            spec,
            seq: 0,
            live: 1,
            decoder: recorder::Decoder::default(),
        }
    }

    fn publish(&mut self, pid: i32, tid: i32, kind: pb::event::Kind) {
        self.seq += 1;
        let time_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.hub.publish(pb::Event {
            seq: self.seq,
            engine_id: 0,
            pid: pid as u32,
            tid: tid as u32,
            time_ns,
            kind: Some(kind),
            expedited: None,
            dropped_before: 0,
        });
    }

    fn wants(&self, m: EventMask) -> bool {
        self.hub.wanted().intersects(m)
    }
}

impl Engine for RemoteEngine {
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> Action {
        let text = if self.spec.decode {
            self.decoder.entry(task, call)
        } else {
            String::new()
        };
        if self.wants(EventMask::SYSCALL_ENTRY) {
            self.publish(
                task.pid(),
                task.tid(),
                pb::event::Kind::SyscallEntry(pb::SyscallEntry {
                    nr: call.nr,
                    name: call.name().unwrap_or_default().to_string(),
                    args: call.args.to_vec(),
                    text,
                }),
            );
        }
        Action::Resume
    }

    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        let (text, ret_text) = if self.spec.decode {
            let d = self.decoder.exit(task, call);
            (d.args, d.ret)
        } else {
            (String::new(), String::new())
        };
        if self.wants(EventMask::SYSCALL_EXIT) {
            self.publish(
                task.pid(),
                task.tid(),
                pb::event::Kind::SyscallExit(pb::SyscallExit {
                    nr: call.entry.nr,
                    name: call.entry.name().unwrap_or_default().to_string(),
                    ret: call.ret,
                    is_error: call.is_error,
                    errno: if call.is_error {
                        utrace_engines::sys::errno_name((-call.ret) as i32)
                    } else {
                        String::new()
                    },
                    text,
                    ret_text,
                }),
            );
        }
        Action::Resume
    }

    fn report_signal(&mut self, task: &mut Task<'_>, s: &SignalReport) -> SignalAction {
        if self.wants(EventMask::SIGNAL) {
            self.publish(
                task.pid(),
                task.tid(),
                pb::event::Kind::Signal(pb::Signal {
                    signo: s.signo,
                    name: utrace_engines::sys::signal_name(s.signo),
                    code: s.code,
                    sender_pid: s.sender_pid,
                    addr: s.addr,
                }),
            );
        }
        SignalAction::default()
    }

    fn report_clone(&mut self, task: &mut Task<'_>, c: &CloneReport) -> Action {
        if self.spec.follow_children && c.kind != CloneKind::Thread {
            self.live += 1;
        }
        if self.wants(EventMask::CLONE) {
            self.publish(
                task.pid(),
                task.tid(),
                pb::event::Kind::Clone(pb::Clone {
                    child_tid: c.child_tid as u32,
                    child_pid: c.child_pid as u32,
                    kind: match c.kind {
                        CloneKind::Thread => "thread",
                        CloneKind::Fork => "fork",
                        CloneKind::Vfork => "vfork",
                    }
                    .into(),
                }),
            );
        }
        Action::Resume
    }

    fn report_exec(&mut self, task: &mut Task<'_>, e: &ExecReport) -> Action {
        if e.former_tid != task.tid() {
            self.decoder.rekey(e.former_tid, task.tid());
        }
        if self.wants(EventMask::EXEC) {
            self.publish(
                task.pid(),
                task.tid(),
                pb::event::Kind::Exec(pb::Exec {
                    former_tid: e.former_tid as u32,
                    exe: e.exe.clone().unwrap_or_default(),
                }),
            );
        }
        Action::Resume
    }

    fn report_exit(&mut self, task: &mut Task<'_>, e: &ExitReport) -> Action {
        if self.wants(EventMask::EXIT) {
            self.publish(
                task.pid(),
                task.tid(),
                pb::event::Kind::Exit(pb::Exit {
                    status: Some(exit_status(e.status)),
                }),
            );
        }
        Action::Resume
    }

    fn report_death(&mut self, d: &ExitReport) {
        self.decoder.forget(d.tid);
        if self.wants(EventMask::DEATH) {
            self.publish(
                d.pid,
                d.tid,
                pb::event::Kind::Death(pb::Death {
                    status: Some(exit_status(d.status)),
                    process_gone: d.process_gone,
                }),
            );
        }
        if d.process_gone {
            self.live -= 1;
            if self.live <= 0 {
                self.hub.close();
            }
        }
    }

    fn report_breakpoint(&mut self, task: &mut Task<'_>, addr: u64) -> Action {
        if self.wants(EventMask::BREAKPOINT) {
            self.publish(
                task.pid(),
                task.tid(),
                pb::event::Kind::Breakpoint(pb::Breakpoint { addr }),
            );
        }
        Action::Resume
    }

    fn report_step(&mut self, task: &mut Task<'_>) -> Action {
        if self.wants(EventMask::STEP) {
            let rip = task.register("rip").unwrap_or(0);
            self.publish(
                task.pid(),
                task.tid(),
                pb::event::Kind::Step(pb::Step { rip }),
            );
        }
        Action::Resume
    }

    fn report_detached(&mut self) {
        self.hub.close();
    }
}
