//! Remote engines: an engine in the core whose reports go to gRPC clients.
//!
//! An asynchronous remote engine never holds the task. Each report is turned
//! into a wire `Event` on the tracer thread and offered to every subscriber's
//! bounded queue with `try_send`: a full queue drops the report and counts
//! it, and the next event that gets through carries the count in
//! `dropped_before`. One slow client never slows another, or the tracee.
//!
//! A synchronous remote engine (a Session's, `EngineSpec.sync`) returns
//! `Action::Stop` at each holding report and records it in its
//! [`SyncState`] ledger with the task's stop id and a deadline; the session
//! decides it later with `Tracer::decide`, which checks the task is still at
//! that stop. A holding report that no queue takes does not hold.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use utrace_engines::builtin::recorder;
use utrace_engines::{
    Action, CloneKind, CloneReport, Engine, EngineId, EventMask, ExecReport, ExitReport,
    SignalAction, SignalReport, SyscallEntry, SyscallExit, SyscallSet, Task, Tracer, Verdict,
};
use utrace_proto::v1 as pb;
use utrace_proto::wire::WireEvent;
use utrace_proto::Bytes;

use crate::budget::ByteMeter;
use crate::convert::exit_status;
use crate::sink::SinkFn;
use crate::stdio::{Outputs, Stdio};

/// What every engine reporting one stop shares: built once, on the
/// tracer thread, by the first engine to report the stop; encoded once, by
/// the first stream to send it.
#[derive(Debug)]
pub struct Shared {
    pid: u32,
    tid: u32,
    time_ns: u64,
    /// Bytes it holds, roughly (for the queued-bytes budget).
    cost: u32,
    kind: pb::event::Kind,
    /// Those fields as an encoded `Event` (see [`WireEvent::with_shared`]).
    wire: OnceLock<Bytes>,
}

impl Shared {
    fn new(pid: i32, tid: i32, time_ns: u64, kind: pb::event::Kind) -> Arc<Self> {
        let text = match &kind {
            pb::event::Kind::SyscallEntry(e) => e.text.len() + e.name.len(),
            pb::event::Kind::SyscallExit(e) => {
                e.text.len() + e.ret_text.len() + e.name.len() + e.errno.len()
            }
            pb::event::Kind::Exec(e) => e.exe.len(),
            pb::event::Kind::Revoked(r) => r.reason.len(),
            pb::event::Kind::Output(o) => o.data.len(),
            _ => 0,
        };
        Arc::new(Shared {
            pid: pid as u32,
            tid: tid as u32,
            time_ns,
            cost: (std::mem::size_of::<Shared>() + text).min(u32::MAX as usize) as u32,
            kind,
            wire: OnceLock::new(),
        })
    }
}

/// A report as it waits in a subscriber's queue: the stop's shared part,
/// and this engine's own fields. The wire form is made on the way out
/// ([`Report::into_wire`], [`Report::into_event`]), off the tracer thread.
///
/// Kept small (40 bytes): the tracer thread writes one per subscriber per
/// stop, into queue memory its consumer read last, on another CPU, so each
/// cache line written costs a transfer; what is rare (expedited data,
/// defaulted seqs) is boxed. With 16 subscribers the unboxed report (~130
/// bytes) made the queue push a fifth of the tracer thread's time.
#[derive(Clone, Debug)]
pub struct Report {
    seq: u64,
    shared: Arc<Shared>,
    dropped_before: u64,
    extra: Option<Box<Extra>>,
    held: bool,
}

const _: () = assert!(std::mem::size_of::<Report>() <= 40);

/// A report's rare fields.
#[derive(Clone, Debug, Default)]
struct Extra {
    expedited: Option<pb::Expedited>,
    defaulted: Vec<u64>,
}

impl Report {
    /// What it holds, roughly: itself, the stop's shared part (charged to
    /// each queue it is in, though they share it) and expedited data.
    fn measure(&self) -> u32 {
        let expedited = self
            .extra
            .as_ref()
            .and_then(|e| e.expedited.as_ref())
            .map_or(0, |x| {
                x.memory.iter().map(|m| m.len() + 32).sum::<usize>() + x.registers.len() * 48
            });
        let defaulted = self.extra.as_ref().map_or(0, |e| e.defaulted.len() * 8);
        (std::mem::size_of::<Report>() + self.shared.cost as usize + expedited + defaulted)
            .min(u32::MAX as usize) as u32
    }

    /// This engine's fields, without the shared ones.
    fn own(self, engine_id: u64) -> (pb::Event, Arc<Shared>) {
        let Extra {
            expedited,
            defaulted,
        } = self.extra.map(|b| *b).unwrap_or_default();
        (
            pb::Event {
                seq: self.seq,
                engine_id,
                expedited,
                dropped_before: self.dropped_before,
                held: self.held,
                defaulted,
                ..Default::default()
            },
            self.shared,
        )
    }

    /// The event as one message (for a Session's `ServerMessage`).
    pub fn into_event(self, engine_id: u64) -> pb::Event {
        let (mut ev, shared) = self.own(engine_id);
        ev.pid = shared.pid;
        ev.tid = shared.tid;
        ev.time_ns = shared.time_ns;
        ev.kind = Some(match Arc::try_unwrap(shared) {
            Ok(s) => s.kind,
            Err(s) => s.kind.clone(),
        });
        ev
    }

    /// The event for an `Events` or `Trace` stream: this engine's fields,
    /// then the stop's, encoded once for every subscriber.
    pub fn into_wire(self, engine_id: u64) -> WireEvent {
        let (own, shared) = self.own(engine_id);
        let wire = shared.wire.get_or_init(|| {
            WireEvent::encode_shared(&pb::Event {
                pid: shared.pid,
                tid: shared.tid,
                time_ns: shared.time_ns,
                kind: Some(shared.kind.clone()),
                ..Default::default()
            })
        });
        WireEvent::with_shared(own, wire.clone())
    }
}

/// A hub's local sink, and the engine id its events carry once open.
struct SinkSlot {
    f: SinkFn,
    engine_id: Option<u64>,
}

fn lock_sink(m: &Mutex<SinkSlot>) -> std::sync::MutexGuard<'_, SinkSlot> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a waiting consumer waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A first report.
    Any,
    /// The queue half full (a stream gathering reports to send together).
    Half,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Report>,
    /// Reports lost to a full queue since the last one taken in.
    dropped: u64,
    /// The consumer's waker, and what it waits for.
    waiter: Option<(Waker, Want)>,
    /// Bytes charged to the uid's budget for the reports in `items`, given
    /// back when the consumer takes them (one release per batch taken,
    /// not per report: the meter's cache line stays with the tracer thread).
    bytes: usize,
    /// The hub let go of the queue: nothing more will come.
    closed: bool,
    /// The consumer is gone: the hub drops the queue.
    gone: bool,
    /// Threads held because this (lossless) queue was full when they
    /// reported: released when the consumer takes what is queued.
    stalled: Vec<Stall>,
}

/// A thread a lossless queue holds: its engine, and the stop it is held at.
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    pub engine: EngineId,
    pub tid: i32,
    pub stop_id: u64,
    /// A stop of an exec syscall: not held before a local sink opens (the
    /// spawn that opens it waits for the exec).
    pub exec: bool,
}

/// What a queue does with a report when it is full.
#[derive(Clone, Copy, Debug)]
enum WhenFull {
    /// Drop it and count it (an asynchronous engine's queue; any queue for
    /// a uprobe's hit, which no stop can wait for).
    Drop,
    /// Queue it anyway (a lossless engine's report that cannot hold: a
    /// death, a revocation, or one a decision already holds; a program's
    /// output, read only when there was room).
    Exceed,
    /// Queue it and hold its thread until the consumer takes the queue.
    Stall(Stall),
}

/// One subscriber's bounded queue: the tracer thread pushes, the stream
/// takes everything queued at once. A plain lock rather than a lock-free
/// channel: the consumer takes the lock once per batch (not per report), so
/// the tracer thread's pushes stay on cache lines its own CPU holds, and
/// wake the consumer only when it waits for what the push brings. A
/// subscriber holds at most twice its `queue_len`: what its stream took and
/// is handing out, and what came since.
struct Queue {
    state: Mutex<QueueState>,
    cap: usize,
    /// Its uid's queued bytes (the budget every queue of the uid shares).
    meter: Arc<ByteMeter>,
    /// A lossless engine's queue: who releases the threads it stalls.
    release: Option<Tracer>,
}

/// What [`Queue::offer`] did.
enum Offer {
    Taken,
    /// Taken into a full lossless queue: the reporting thread must be held.
    Stalled,
    Full,
    Gone,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue the report `make` gives, if there is room (or `full` says
    /// to queue it anyway); the count of reports lost before it travels
    /// with it.
    fn offer(
        &self,
        cost: usize,
        full: WhenFull,
        stall_always: bool,
        make: impl FnOnce() -> Option<Report>,
    ) -> Offer {
        let mut st = self.lock();
        if st.gone {
            return Offer::Gone;
        }
        // A full queue, or the uid's queued-bytes budget spent: the same
        // for the report. Charged before the report is made (a copy, for
        // all but the last subscriber): one past the budget costs no copy.
        let room = st.items.len() < self.cap && self.meter.try_charge(cost);
        if !room {
            if matches!(full, WhenFull::Drop) {
                st.dropped += 1;
                return Offer::Full;
            }
            // Lossless: past the bounds by at most a report per thread
            // (each is then held, or gone).
            self.meter.charge(cost);
        }
        let Some(mut r) = make() else {
            self.meter.release(cost);
            return Offer::Taken;
        };
        st.bytes += cost;
        r.dropped_before = std::mem::take(&mut st.dropped);
        st.items.push_back(r);
        let stalled = match full {
            WhenFull::Stall(s) if stall_always || !room || st.items.len() >= self.cap => {
                st.stalled.push(s);
                true
            }
            _ => false,
        };
        let wake = match st.waiter {
            Some((_, Want::Any)) => true,
            Some((_, Want::Half)) => st.items.len() * 2 >= self.cap,
            None => false,
        };
        let waker = if wake || stalled {
            st.waiter.take()
        } else {
            None
        };
        drop(st);
        if let Some((w, _)) = waker {
            w.wake();
        }
        if stalled {
            Offer::Stalled
        } else {
            Offer::Taken
        }
    }

    /// Whether another report fits, and a chunk of output: the program's
    /// output is read only while the queue and its uid's queued bytes
    /// have room for it (it waits in the pipe otherwise).
    fn has_room(&self) -> bool {
        self.lock().items.len() < self.cap && self.meter.fits(crate::stdio::CHUNK + 256)
    }

    /// Let the threads this queue held go (its consumer took the queue, or
    /// left). Off the tracer thread, in the order they stalled.
    fn release(&self, stalls: Vec<Stall>) {
        let Some(tracer) = &self.release else {
            return;
        };
        if stalls.is_empty() {
            return;
        }
        let requests: Vec<_> = stalls
            .into_iter()
            .map(|s| {
                tracer.decide(
                    s.engine,
                    s.tid,
                    s.stop_id,
                    Vec::new(),
                    false,
                    Verdict {
                        action: Action::Resume,
                        signal: None,
                        syscall_return: None,
                    },
                )
            })
            .collect();
        // A StopGone answer: the thread was killed, or its engine left.
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    for r in requests {
                        let _ = r.await;
                    }
                });
            }
            Err(_) => {
                std::thread::spawn(move || {
                    for r in requests {
                        let _ = r.wait();
                    }
                });
            }
        }
    }

    fn close(&self) {
        let waker = {
            let mut st = self.lock();
            st.closed = true;
            st.waiter.take()
        };
        if let Some((w, _)) = waker {
            w.wake();
        }
    }
}

/// What a subscription has for its stream now.
pub enum Next {
    Report(Report),
    /// Nothing queued.
    Empty,
    /// Nothing queued, and nothing more will come.
    Ended,
}

/// One subscriber's end of its queue.
pub struct Subscription {
    queue: Arc<Queue>,
    /// Reports taken from the queue, not handed out yet.
    taken: VecDeque<Report>,
}

impl Subscription {
    /// The next report, without waiting.
    ///
    /// Reports taken from the queue leave the uid's queued-bytes budget:
    /// what a subscriber holds beyond it is at most one queue's worth,
    /// being handed to its stream.
    pub fn try_next(&mut self) -> Next {
        if let Some(r) = self.taken.pop_front() {
            return Next::Report(r);
        }
        let mut st = self.queue.lock();
        std::mem::swap(&mut st.items, &mut self.taken);
        let closed = st.closed;
        let bytes = std::mem::take(&mut st.bytes);
        let stalled = std::mem::take(&mut st.stalled);
        drop(st);
        if bytes > 0 {
            self.queue.meter.release(bytes);
        }
        // The queue is empty again: the threads it held may report more.
        self.queue.release(stalled);
        match self.taken.pop_front() {
            Some(r) => Next::Report(r),
            None if closed => Next::Ended,
            None => Next::Empty,
        }
    }

    /// Hand everything queued to `f`, then release the threads the queue
    /// held (after `f` has seen their reports).
    fn drain(&mut self, mut f: impl FnMut(Report)) {
        let mut st = self.queue.lock();
        let items = std::mem::take(&mut st.items);
        let bytes = std::mem::take(&mut st.bytes);
        let stalled = std::mem::take(&mut st.stalled);
        drop(st);
        self.queue.meter.release(bytes);
        for r in self.taken.drain(..).chain(items) {
            f(r);
        }
        self.queue.release(stalled);
    }

    /// The next report; `None` once the engine has nothing more to report.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Report>> {
        loop {
            match self.try_next() {
                Next::Report(r) => return Poll::Ready(Some(r)),
                Next::Ended => return Poll::Ready(None),
                Next::Empty if self.wait(cx, Want::Any) => return Poll::Pending,
                Next::Empty => {}
            }
        }
    }

    /// Be woken when the queue is half full; `false` if it is already (or
    /// ended).
    pub fn wait_half(&mut self, cx: &mut Context<'_>) -> bool {
        self.wait(cx, Want::Half)
    }

    /// Register to be woken for `want`; `false` if it is already there.
    fn wait(&mut self, cx: &mut Context<'_>, want: Want) -> bool {
        let mut st = self.queue.lock();
        let there = st.closed
            || match want {
                Want::Any => !st.items.is_empty(),
                Want::Half => st.items.len() * 2 >= self.queue.cap,
            };
        if there {
            st.waiter = None;
            return false;
        }
        match &mut st.waiter {
            Some((w, x)) if w.will_wake(cx.waker()) => *x = want,
            w => *w = Some((cx.waker().clone(), want)),
        }
        true
    }

    /// Reports lost since the last one queued (told when the stream ends).
    pub fn take_dropped(&self) -> u64 {
        std::mem::take(&mut self.queue.lock().dropped)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut st = self.queue.lock();
        st.gone = true;
        st.items.clear();
        let queued = std::mem::take(&mut st.bytes);
        let stalled = std::mem::take(&mut st.stalled);
        st.waiter = None;
        drop(st);
        self.queue.meter.release(queued);
        // Nobody reads any more: nothing to wait for.
        self.queue.release(stalled);
    }
}

fn sub(
    queue_len: usize,
    meter: Arc<ByteMeter>,
    release: Option<Tracer>,
) -> (Arc<Queue>, Subscription) {
    let queue = Arc::new(Queue {
        state: Mutex::new(QueueState::default()),
        cap: queue_len.max(1),
        meter,
        release,
    });
    (
        Arc::clone(&queue),
        Subscription {
            queue,
            taken: VecDeque::new(),
        },
    )
}

/// The subscribers of one engine.
pub struct Hub {
    subs: Mutex<Vec<Arc<Queue>>>,
    closed: AtomicBool,
    queue_len: usize,
    meter: Arc<ByteMeter>,
    /// A lossless engine's hub: its full queues hold threads, and this
    /// tracer releases them.
    lossless: Option<Tracer>,
    /// The embedding program's own consumer, instead of queues (see
    /// [`crate::sink`]).
    sink: Option<Mutex<SinkSlot>>,
    /// The started program's standard streams, when carried over the call
    /// (see [`crate::stdio`]).
    stdio: OnceLock<Arc<Stdio>>,
    /// The started program's pid, for its output's events.
    pid: std::sync::atomic::AtomicU32,
    /// The event kinds the client asked for (EventMask bits); a batch's
    /// set_events changes it. The engine's own mask also always has CLONE
    /// and DEATH, which it needs to end the stream.
    wanted: std::sync::atomic::AtomicU32,
    /// Signals let through unreported (bit `n - 1` for signal `n`): a
    /// set_events's `pass_signals`.
    passed: std::sync::atomic::AtomicU64,
    /// Reports queued and dropped, for the metrics.
    counters: crate::metrics::EngineCounters,
}

impl Hub {
    /// A hub with one subscriber, whose end is returned. With `lossless`
    /// (the engine's tracer), a full queue holds the reporting thread
    /// instead of dropping the report.
    ///
    /// With a `sink`, reports go to it once [`Hub::open_sink`] has been
    /// called (until then they queue and hold their threads, `lossless`
    /// being required).
    pub fn new(
        queue_len: usize,
        wanted: EventMask,
        meter: Arc<ByteMeter>,
        lossless: Option<Tracer>,
        sink: Option<SinkFn>,
        counters: crate::metrics::EngineCounters,
    ) -> (Arc<Hub>, Subscription) {
        let (s, end) = sub(queue_len, Arc::clone(&meter), lossless.clone());
        let sink = sink.map(|f| Mutex::new(SinkSlot { f, engine_id: None }));
        (
            Arc::new(Hub {
                subs: Mutex::new(vec![s]),
                closed: AtomicBool::new(false),
                queue_len,
                meter,
                lossless,
                sink,
                stdio: OnceLock::new(),
                pid: Default::default(),
                wanted: std::sync::atomic::AtomicU32::new(wanted.bits()),
                passed: Default::default(),
                counters,
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

    /// Change the signals let through unreported (see
    /// [`convert::pass_signals`](crate::convert::pass_signals)).
    pub fn set_passed(&self, signals: u64) {
        self.passed.store(signals, Ordering::Release);
    }

    /// Set the signals let through unreported; the set before.
    pub fn swap_passed(&self, signals: u64) -> u64 {
        self.passed.swap(signals, Ordering::AcqRel)
    }

    /// Whether signal `signo` goes through unreported.
    fn passes(&self, signo: i32) -> bool {
        (1..=64).contains(&signo) && self.passed.load(Ordering::Acquire) & (1 << (signo - 1)) != 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Queue>>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Another subscriber; `None` once the engine has nothing more to report.
    pub fn subscribe(&self) -> Option<Subscription> {
        // Under the lock, so a concurrent close cannot miss the new queue.
        let mut subs = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let (s, end) = sub(
            self.queue_len,
            Arc::clone(&self.meter),
            self.lossless.clone(),
        );
        subs.push(s);
        Some(end)
    }

    /// Offer `ev` to every subscriber without ever blocking, `full` saying
    /// what a full queue does. Returns whether some subscriber's queue took
    /// it, and whether one stalled the thread (it must be held).
    fn publish(&self, ev: Report, full: WhenFull) -> (bool, bool) {
        // The embedding program's sink: called here, before the thread
        // resumes; until it is open, reports queue and hold.
        let mut sink = self.sink.as_ref().map(lock_sink);
        if let Some(slot) = sink.as_mut() {
            if let Some(id) = slot.engine_id {
                (slot.f)(ev.into_event(id));
                self.counters.sent();
                return (true, false);
            }
        }
        let stall_always = sink.is_some() && !matches!(full, WhenFull::Stall(s) if s.exec);
        // What the stopped program wrote goes first, and nothing else
        // comes between it and the report (the forwarder waits for this
        // lock).
        let _outputs = self.stdio.get().map(|io| {
            let mut o = io.outputs();
            self.pid
                .compare_exchange(0, ev.shared.pid, Ordering::Relaxed, Ordering::Relaxed)
                .ok();
            self.take_output(&mut o);
            o
        });
        let mut subs = self.lock();
        let (mut taken, mut stalled) = (false, false);
        let last = subs.len();
        // Measured once, charged to each queue that takes it.
        let cost = ev.measure() as usize;
        let (mut ev, mut i) = (Some(ev), 0);
        subs.retain(|q| {
            i += 1;
            // The last subscriber (usually the only one) gets the report
            // itself; the others a copy (its kind is shared).
            match q.offer(cost, full, stall_always, || {
                if i == last {
                    ev.take()
                } else {
                    ev.clone()
                }
            }) {
                Offer::Taken => {
                    self.counters.sent();
                    taken = true;
                    true
                }
                Offer::Stalled => {
                    self.counters.sent();
                    (taken, stalled) = (true, true);
                    true
                }
                Offer::Full => {
                    self.counters.dropped(1);
                    true
                }
                Offer::Gone => false,
            }
        });
        (taken, stalled)
    }

    /// The program's output in `o`, as events, while every queue has room
    /// (the rest waits in the pipes). True when the pipes were empty.
    fn take_output(&self, o: &mut Outputs<'_>) -> bool {
        let pid = self.pid.load(Ordering::Relaxed);
        o.drain(
            || self.has_room(),
            |fd, data| {
                let shared = Shared::new(
                    pid as i32,
                    pid as i32,
                    now_ns(),
                    pb::event::Kind::Output(pb::Output { fd, data }),
                );
                self.publish_plain(shared);
            },
        )
    }

    /// Queue an event that is not a report (seq 0), never dropped.
    fn publish_plain(&self, shared: Arc<Shared>) {
        let ev = Report {
            seq: 0,
            shared,
            dropped_before: 0,
            extra: None,
            held: false,
        };
        let mut subs = self.lock();
        let cost = ev.measure() as usize;
        let last = subs.len();
        let (mut ev, mut i) = (Some(ev), 0);
        subs.retain(|q| {
            i += 1;
            let make = || if i == last { ev.take() } else { ev.clone() };
            !matches!(q.offer(cost, WhenFull::Exceed, false, make), Offer::Gone)
        });
    }

    /// Every subscriber's queue has room.
    fn has_room(&self) -> bool {
        self.lock().iter().all(|q| q.has_room())
    }

    /// Carry the started program's standard streams (`stdio`) over this
    /// engine's reports: its output is taken at each report, and by a
    /// task between reports, until the engine ends. The events carry the
    /// pid of the first report.
    pub fn carry_stdio(self: &Arc<Self>, stdio: Arc<Stdio>) {
        if self.stdio.set(Arc::clone(&stdio)).is_err() {
            return;
        }
        let hub = Arc::clone(self);
        let (h1, h2) = (Arc::clone(&hub), Arc::clone(&hub));
        tokio::spawn(crate::stdio::forward(
            stdio,
            move || h1.has_room(),
            move || h2.is_closed(),
            move |o| hub.take_output(o),
        ));
    }

    /// The started program's standard streams, when carried.
    pub fn stdio(&self) -> Option<Arc<Stdio>> {
        self.stdio.get().cloned()
    }

    /// Whether a full queue holds the reporting thread.
    fn is_lossless(&self) -> bool {
        self.lossless.is_some()
    }

    /// Start handing reports to the sink: `first` (the call's `attached`
    /// event), then what `sub` (the first subscriber) queued meanwhile,
    /// whose threads are then released; later reports go to the sink as
    /// they come. Without a sink, nothing happens.
    pub fn open_sink(&self, engine_id: u64, first: pb::Event, sub: &mut Subscription) {
        let Some(slot) = &self.sink else {
            return;
        };
        let mut slot = lock_sink(slot);
        (slot.f)(first);
        sub.drain(|r| (slot.f)(r.into_event(engine_id)));
        slot.engine_id = Some(engine_id);
    }

    /// This engine's own counters.
    pub fn tally(&self) -> Arc<crate::metrics::EngineTally> {
        Arc::clone(&self.counters.own)
    }

    /// Whether reports go to a local sink.
    pub fn has_sink(&self) -> bool {
        self.sink.is_some()
    }

    /// `n` reports were lost before they reached the hub (uprobe hits the
    /// kernel could not record): each subscriber is told with its next
    /// report, as of a full queue.
    pub fn lost(&self, n: u64) {
        self.counters.dropped(n);
        for q in self.lock().iter() {
            let mut st = q.lock();
            st.dropped = st.dropped.saturating_add(n);
        }
    }

    /// The engine has nothing more to report.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// No more reports: every stream ends once it has drained its queue.
    pub fn close(&self) {
        let mut subs = self.lock();
        self.closed.store(true, Ordering::Release);
        for q in subs.drain(..) {
            q.close();
        }
        drop(subs);
        if let Some(stdio) = self.stdio.get() {
            stdio.engine_ended();
        }
    }
}

/// Registers and memory fetched at each report (validated).
#[derive(Clone, Debug, Default)]
pub struct Expedite {
    pub registers: Vec<NamedRegister>,
    pub memory: Vec<MemRef>,
    /// Registers of any width, as bytes.
    pub register_bytes: Vec<NamedRegister>,
}

/// A register as the client named it (the key of its value in
/// `Expedited`), looked up once, when the engine was made: each stop then
/// reads it with no search by name.
#[derive(Clone, Debug)]
pub struct NamedRegister {
    pub name: String,
    pub desc: &'static utrace_engines::arch::RegDesc,
}

/// Memory at the address a register holds.
#[derive(Clone, Debug)]
pub struct MemRef {
    pub register: &'static utrace_engines::arch::RegDesc,
    pub len: usize,
    pub string: bool,
    /// Added to the register's value.
    pub offset: i64,
}

/// What makes a remote engine synchronous.
#[derive(Clone, Debug)]
pub struct SyncSpec {
    /// How long a held report waits for its decision.
    pub deadline: Duration,
    /// What a report gets when its deadline passes.
    pub default_action: Action,
    /// Report kinds that hold.
    pub hold: EventMask,
    /// Syscalls whose reports hold.
    pub hold_syscalls: SyscallSet,
}

/// What a remote engine reports and how.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The kinds the client asked for.
    pub wanted: EventMask,
    /// Attach strace-style text to syscall reports.
    pub decode: bool,
    /// With `decode`: strace's `-s`.
    pub string_limit: usize,
    /// With `decode`: strace's `-y`.
    pub decode_fds: bool,
    /// With `decode`: strace's `-x`, `-xx`.
    pub decode_hex: recorder::Hex,
    /// With `decode`: strace's `-X`.
    pub decode_xlat: recorder::Xlat,
    /// With `decode`: strace's `-yy` (implies `decode_fds`).
    pub decode_fd_details: bool,
    /// With `decode`: strace's `-v`.
    pub decode_verbose: bool,
    /// With `decode`: strace's `-P` (empty: every call).
    pub trace_paths: Vec<Vec<u8>>,
    pub follow_children: bool,
    /// Data fetched at each report.
    pub expedite: Option<Expedite>,
    /// Reports hold the task until the client decides (Session engines).
    pub sync: Option<SyncSpec>,
    /// A full queue holds the reporting thread instead of dropping.
    pub lossless: bool,
    /// Leave a process at its exec (strace's `-b execve`).
    pub leave_at_exec: bool,
}

/// A report a sync engine holds its task at, waiting for a decision.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    pub tid: i32,
    /// The task's stop when reported (`Task::stop_id`).
    pub stop_id: u64,
    /// Its kind (one bit).
    pub kind: EventMask,
    /// When its default action applies; `None` after a HOLD decision.
    pub deadline: Option<Instant>,
    /// When it was reported (for the hold-duration metric).
    pub since: Instant,
}

#[derive(Default)]
struct Ledger {
    held: BTreeMap<u64, Held>,
    /// Seqs whose deadline passed, not yet told to the client.
    defaulted: Vec<u64>,
    /// The last seq issued.
    last_seq: u64,
}

/// Why a decision cannot take a report.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    /// No report with this seq was made yet.
    Unknown { last: u64 },
    /// It was decided, its deadline passed, or it did not hold the task.
    NotHeld,
}

/// The held reports of one sync engine, shared by the engine (tracer
/// thread) and its session (which decides them and runs their deadlines).
pub struct SyncState {
    pub spec: SyncSpec,
    ledger: Mutex<Ledger>,
    /// Notified when a report is held (a new deadline to watch).
    pub changed: tokio::sync::Notify,
}

impl SyncState {
    pub fn new(spec: SyncSpec) -> Arc<Self> {
        Arc::new(SyncState {
            spec,
            ledger: Mutex::new(Ledger::default()),
            changed: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take report `seq` out of the ledger to decide it.
    pub fn take(&self, seq: u64) -> Result<Held, TakeError> {
        let mut l = self.lock();
        if seq == 0 || seq > l.last_seq {
            return Err(TakeError::Unknown { last: l.last_seq });
        }
        l.held.remove(&seq).ok_or(TakeError::NotHeld)
    }

    /// Look at report `seq` without taking it.
    pub fn peek(&self, seq: u64) -> Result<Held, TakeError> {
        let l = self.lock();
        if seq == 0 || seq > l.last_seq {
            return Err(TakeError::Unknown { last: l.last_seq });
        }
        l.held.get(&seq).copied().ok_or(TakeError::NotHeld)
    }

    /// Put report `seq` back (a HOLD decision: no deadline any more).
    pub fn put_back(&self, seq: u64, held: Held) {
        self.lock().held.insert(seq, held);
    }

    /// The earliest deadline of a held report.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().held.values().filter_map(|h| h.deadline).min()
    }

    /// Take every report whose deadline is at or before `now`, and note
    /// them for the client.
    pub fn expire(&self, now: Instant) -> Vec<(u64, Held)> {
        let mut l = self.lock();
        let due: Vec<u64> = l
            .held
            .iter()
            .filter(|(_, h)| h.deadline.is_some_and(|d| d <= now))
            .map(|(s, _)| *s)
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for seq in due {
            if let Some(h) = l.held.remove(&seq) {
                l.defaulted.push(seq);
                out.push((seq, h));
            }
        }
        out
    }

    /// The report `tid` is held at, if any (for ListTasks).
    pub fn held_at(&self, tid: i32) -> Option<(u64, Held)> {
        self.lock()
            .held
            .iter()
            .find(|(_, h)| h.tid == tid)
            .map(|(s, h)| (*s, *h))
    }

    /// Seqs defaulted since the last call.
    pub fn take_defaulted(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock().defaulted)
    }
}

/// Children followed and not started yet that an engine remembers the
/// parents of (a child starts at once, unless the parent's fork stop is
/// held past its start: few wait at a time).
const MAX_UNSTARTED: usize = 1024;

/// A remote engine: asynchronous (reports never hold the task), or
/// synchronous (held reports wait for the client's decision).
pub struct RemoteEngine {
    hub: Arc<Hub>,
    spec: Spec,
    sync: Option<Arc<SyncState>>,
    seq: u64,
    /// Traced processes still alive (the stream ends at zero).
    live: i64,
    /// Syscall entry text per thread, completed at exit.
    decoder: recorder::Decoder,
    /// With decode but no entry reports: each thread's entry text, put in
    /// front of its exit's.
    heads: std::collections::HashMap<i32, String>,
    /// Followed children not started yet, and their parents' pids (for
    /// [`pb::ChildStart::parent_pid`]); at most [`MAX_UNSTARTED`].
    parents: std::collections::HashMap<i32, i32>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Fetch what `x` asks for from the stopped task.
fn expedite(task: &mut Task<'_>, x: &Expedite) -> pb::Expedited {
    let mut registers = std::collections::HashMap::with_capacity(x.registers.len());
    for r in &x.registers {
        if let Ok(v) = task.register_at(r.desc) {
            registers.insert(r.name.clone(), v);
        }
    }
    let memory = x
        .memory
        .iter()
        .map(|m| {
            let Ok(addr) = task.register_at(m.register) else {
                return utrace_proto::Bytes::new();
            };
            let addr = addr.wrapping_add(m.offset as u64);
            let r = if m.string {
                task.read_string(addr, m.len)
            } else {
                task.read_memory(addr, m.len)
            };
            let mut data = r.data;
            if m.string {
                if let Some(nul) = data.iter().position(|b| *b == 0) {
                    data.truncate(nul);
                }
            }
            data
        })
        .collect();
    let register_bytes = x
        .register_bytes
        .iter()
        .filter_map(|r| Some((r.name.clone(), task.register_bytes_at(r.desc).ok()?.into())))
        .collect();
    pb::Expedited {
        registers,
        memory,
        register_bytes,
    }
}

/// The shared part of the last stop a remote engine reported.
struct LastStop {
    /// (tid, stop id, kind bit): stop ids are unique per tracer.
    key: (i32, u64, u32),
    shared: Arc<Shared>,
}

thread_local! {
    /// Remote engines' callbacks run on their tracer's thread, one engine
    /// after another at each stop: the first to report a stop builds its
    /// shared part, and the others take it (16 observers of one process
    /// cost one report's allocations and one encoding, not 16).
    static LAST_STOP: RefCell<Option<LastStop>> = const { RefCell::new(None) };
}

/// The shared part of the report of the stop `key` names: built by `make`
/// for the first engine reporting it, taken by the others.
fn shared_report(key: (i32, u64, u32), make: impl FnOnce() -> Arc<Shared>) -> Arc<Shared> {
    LAST_STOP.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(l) = last.as_ref().filter(|l| l.key == key) {
            return Arc::clone(&l.shared);
        }
        let shared = make();
        *last = Some(LastStop {
            key,
            shared: Arc::clone(&shared),
        });
        shared
    })
}

impl RemoteEngine {
    /// A remote engine reporting to `hub`; synchronous when `spec.sync` is
    /// set (its ledger is [`RemoteEngine::sync_state`]).
    pub fn new(hub: Arc<Hub>, mut spec: Spec) -> Self {
        let sync = spec.sync.take().map(SyncState::new);
        let decoder = recorder::Decoder::with_string_limit(spec.string_limit)
            .with_fd_paths(spec.decode_fds)
            .with_fd_details(spec.decode_fd_details)
            .with_verbose(spec.decode_verbose)
            .with_hex(spec.decode_hex)
            .with_paths(std::mem::take(&mut spec.trace_paths))
            .with_xlat(spec.decode_xlat);
        RemoteEngine {
            hub,
            spec,
            sync,
            seq: 0,
            live: 1,
            decoder,
            heads: std::collections::HashMap::new(),
            parents: std::collections::HashMap::new(),
        }
    }

    /// The ledger of held reports, for a sync engine.
    pub fn sync_state(&self) -> Option<Arc<SyncState>> {
        self.sync.clone()
    }

    /// Report the kind `make` builds (of kind bit `bit`, syscall `nr`) at
    /// `task`'s stop, if the client wants it; hold the task when this is a
    /// sync engine's holding report and the client's queue took it.
    fn report(
        &mut self,
        task: &mut Task<'_>,
        bit: EventMask,
        nr: Option<u64>,
        make: impl FnOnce(&mut Task<'_>) -> pb::event::Kind,
    ) -> Action {
        if !self.wants(bit) {
            return Action::Resume;
        }
        self.report_asked(task, bit, nr, make)
    }

    /// [`RemoteEngine::report`] without the client's filter.
    fn report_asked(
        &mut self,
        task: &mut Task<'_>,
        bit: EventMask,
        nr: Option<u64>,
        make: impl FnOnce(&mut Task<'_>) -> pb::event::Kind,
    ) -> Action {
        let shared = if self.spec.decode {
            // The text is this engine's own (its decoder's state).
            Shared::new(task.pid(), task.tid(), now_ns(), make(task))
        } else {
            let key = (task.tid(), task.stop_id(), bit.bits());
            let (pid, tid) = (task.pid(), task.tid());
            shared_report(key, || Shared::new(pid, tid, now_ns(), make(task)))
        };
        let expedited = self.spec.expedite.as_ref().map(|x| expedite(task, x));
        let stall = Stall {
            engine: task.engine_id(),
            tid: task.tid(),
            stop_id: task.stop_id(),
            exec: nr
                .is_some_and(|nr| [libc::SYS_execve, libc::SYS_execveat].contains(&(nr as i64))),
        };
        let hold = self.sync.as_ref().and_then(|sync| {
            let s = &sync.spec;
            // A group-stop never holds: the thread stays stopped until a
            // SIGCONT whatever anyone decides.
            (s.hold.intersects(bit)
                && bit != EventMask::GROUP_STOP
                && nr.is_none_or(|nr| s.hold_syscalls.contains(nr)))
            .then(|| Held {
                tid: task.tid(),
                stop_id: task.stop_id(),
                kind: bit,
                deadline: Some(Instant::now() + s.deadline),
                since: Instant::now(),
            })
        });
        // A report held for a decision is not held a second time for room.
        let full = self.when_full(hold.is_none().then_some(stall));
        self.publish(shared, expedited, hold, full)
    }

    /// What a full queue does with a report: drop it, or (lossless) queue
    /// it and hold the thread at `stall` (when there is one to hold).
    fn when_full(&self, stall: Option<Stall>) -> WhenFull {
        match stall {
            _ if !self.hub.is_lossless() => WhenFull::Drop,
            Some(s) => WhenFull::Stall(s),
            None => WhenFull::Exceed,
        }
    }

    /// Report without a task (death, revocation): never holds.
    fn report_gone(&mut self, pid: i32, tid: i32, bit: EventMask, kind: pb::event::Kind) {
        if self.wants(bit) {
            let full = self.when_full(None);
            self.publish(Shared::new(pid, tid, now_ns(), kind), None, None, full);
        }
    }

    /// Number the report, record it in the ledger if it holds, and offer it
    /// to the subscribers. `Stop` if it holds and some queue took it, or a
    /// full lossless queue stalled its thread.
    fn publish(
        &mut self,
        shared: Arc<Shared>,
        expedited: Option<pb::Expedited>,
        hold: Option<Held>,
        full: WhenFull,
    ) -> Action {
        self.seq += 1;
        let seq = self.seq;
        let mut defaulted = Vec::new();
        if let Some(sync) = &self.sync {
            let mut l = sync.lock();
            l.last_seq = seq;
            defaulted = std::mem::take(&mut l.defaulted);
            if let Some(h) = hold {
                l.held.insert(seq, h);
            }
        }
        let told = defaulted.clone();
        let extra = (expedited.is_some() || !defaulted.is_empty()).then(|| {
            Box::new(Extra {
                expedited,
                defaulted,
            })
        });
        let (delivered, stalled) = self.hub.publish(
            Report {
                seq,
                shared,
                dropped_before: 0,
                extra,
                held: hold.is_some(),
            },
            full,
        );
        if stalled {
            return Action::Stop;
        }
        let Some(sync) = &self.sync else {
            return Action::Resume;
        };
        if !delivered {
            // Nobody will see it: it cannot hold the task, and the defaulted
            // seqs it carried are told with a later report.
            let mut l = sync.lock();
            if hold.is_some() {
                l.held.remove(&seq);
            }
            l.defaulted.splice(0..0, told);
            return Action::Resume;
        }
        if hold.is_none() {
            return Action::Resume;
        }
        // Wakes the deadline task only if it waits for a first deadline;
        // asleep on a timer it finds the stored permit later (deadlines are
        // "now + a constant": a new one is never earlier than the armed one).
        sync.changed.notify_one();
        Action::Stop
    }

    /// One of its processes is gone from it (died, or left by revocation):
    /// after the last, its stream ends.
    fn process_gone(&mut self) {
        self.live -= 1;
        if self.live <= 0 {
            self.hub.close();
        }
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
        if self.spec.decode && !self.wants(EventMask::SYSCALL_ENTRY) {
            // Only the exit is reported: it carries the whole call.
            self.heads.insert(task.tid(), text);
            return Action::Resume;
        }
        if !self.decoder.shown(task.tid()) {
            // It touches none of the paths watched (strace's -P).
            return Action::Resume;
        }
        self.report(task, EventMask::SYSCALL_ENTRY, Some(call.nr), |_| {
            pb::event::Kind::SyscallEntry(pb::SyscallEntry {
                nr: call.nr,
                name: call.name().unwrap_or_default().to_string(),
                args: call.args.to_vec(),
                text,
            })
        })
    }

    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        let (text, ret_text) = if self.spec.decode {
            let d = self.decoder.exit(task, call);
            if !d.shown {
                self.heads.remove(&task.tid());
                return Action::Resume;
            }
            match self.heads.remove(&task.tid()) {
                Some(head) => (head + &d.args, d.ret),
                None => (d.args, d.ret),
            }
        } else {
            (String::new(), String::new())
        };
        self.report(task, EventMask::SYSCALL_EXIT, Some(call.entry.nr), |_| {
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
                system_time_ns: call.system_ns,
            })
        })
    }

    fn report_signal(&mut self, task: &mut Task<'_>, s: &SignalReport) -> SignalAction {
        if self.hub.passes(s.signo) {
            // As if this engine did not trace the task: delivered, and
            // nothing told (another engine may still stop for it).
            return Action::Resume.into();
        }
        self.report(task, EventMask::SIGNAL, None, |_| {
            pb::event::Kind::Signal(pb::Signal {
                signo: s.signo,
                name: utrace_engines::sys::signal_name(s.signo),
                code: s.code,
                sender_pid: s.sender_pid,
                addr: s.addr,
                sender_uid: s.sender_uid,
                child: s.child.map(|c| pb::ChildStatus {
                    status: c.status,
                    utime: c.utime,
                    stime: c.stime,
                }),
            })
        })
        .into()
    }

    fn report_group_stop(&mut self, task: &mut Task<'_>, signo: i32) -> Action {
        self.report(task, EventMask::GROUP_STOP, None, |_| {
            pb::event::Kind::GroupStop(pb::GroupStop {
                signo: signo as u32,
                name: utrace_engines::sys::signal_name(signo),
            })
        })
    }

    fn report_clone(&mut self, task: &mut Task<'_>, c: &CloneReport) -> Action {
        if self.spec.follow_children && c.kind != CloneKind::Thread {
            self.live += 1;
            if self.wants(EventMask::CHILD_START) {
                // Until the child's first stop (bounded: a parent's
                // forks that never start are dropped past the bound).
                if self.parents.len() >= MAX_UNSTARTED {
                    self.parents.clear();
                }
                self.parents.insert(c.child_pid, task.pid());
            }
        }
        self.report(task, EventMask::CLONE, None, |_| {
            pb::event::Kind::Clone(pb::Clone {
                child_tid: c.child_tid as u32,
                child_pid: c.child_pid as u32,
                kind: match c.kind {
                    CloneKind::Thread => "thread",
                    CloneKind::Fork => "fork",
                    CloneKind::Vfork => "vfork",
                }
                .into(),
            })
        })
    }

    fn report_exec(&mut self, task: &mut Task<'_>, e: &ExecReport) -> Action {
        if e.former_tid != task.tid() {
            self.decoder.rekey(e.former_tid, task.tid());
            if let Some(head) = self.heads.remove(&e.former_tid) {
                self.heads.insert(task.tid(), head);
            }
        }
        let leave = self.spec.leave_at_exec && !e.startup;
        let make = |_: &mut Task<'_>| {
            pb::event::Kind::Exec(pb::Exec {
                former_tid: e.former_tid as u32,
                exe: e.exe.clone().unwrap_or_default(),
                left: leave,
                startup: e.startup,
            })
        };
        if !leave {
            return self.report(task, EventMask::EXEC, None, make);
        }
        // Told even if exec reports were not asked for, and past a full
        // queue (the client must learn the process is gone from it); this
        // engine's own (not shared with other engines' reports of the
        // exec), never held; then left.
        self.decoder.forget(task.tid());
        self.heads.remove(&task.tid());
        let shared = Shared::new(task.pid(), task.tid(), now_ns(), make(task));
        let expedited = self.spec.expedite.as_ref().map(|x| expedite(task, x));
        let _ = self.publish(shared, expedited, None, WhenFull::Exceed);
        Action::Leave
    }

    fn report_exit(&mut self, task: &mut Task<'_>, e: &ExitReport) -> Action {
        self.report(task, EventMask::EXIT, None, |_| {
            pb::event::Kind::Exit(pb::Exit {
                status: Some(exit_status(e.status)),
            })
        })
    }

    fn report_death(&mut self, d: &ExitReport) {
        self.decoder.forget(d.tid);
        self.heads.remove(&d.tid);
        let kind = pb::event::Kind::Death(pb::Death {
            status: Some(exit_status(d.status)),
            process_gone: d.process_gone,
        });
        if d.process_gone && self.wants(EventMask::DEATH) {
            // A process's end (and its exit status) is never lost to a
            // full queue: one report per process past the length.
            self.publish(
                Shared::new(d.pid, d.tid, now_ns(), kind),
                None,
                None,
                WhenFull::Exceed,
            );
        } else {
            self.report_gone(d.pid, d.tid, EventMask::DEATH, kind);
        }
        if d.process_gone {
            self.process_gone();
        }
    }

    // Breakpoint hits and steps reach this engine only when it asked for
    // them (it inserted the breakpoint, or decided a step): always told.
    fn report_breakpoint(&mut self, task: &mut Task<'_>, addr: u64) -> Action {
        self.report_asked(task, EventMask::BREAKPOINT, None, |_| {
            pb::event::Kind::Breakpoint(pb::Breakpoint { addr })
        })
    }

    fn report_breakpoint_hit(&mut self, hit: &utrace_engines::BreakpointHit) {
        // A uprobe's hit: the program did not stop. Its registers are the
        // sample's (the spec asked only for ones it carries).
        let expedited = self.spec.expedite.as_ref().map(|x| pb::Expedited {
            registers: x
                .registers
                .iter()
                .filter_map(|r| hit.register(&r.name).map(|v| (r.name.clone(), v)))
                .collect(),
            memory: Vec::new(),
            register_bytes: Default::default(),
        });
        // The program did not stop: nothing to hold, and a full queue
        // drops it (as the kernel's full ring would).
        self.publish(
            Shared::new(
                hit.pid,
                hit.tid,
                hit.time_ns,
                pb::event::Kind::Breakpoint(pb::Breakpoint { addr: hit.addr }),
            ),
            expedited,
            None,
            WhenFull::Drop,
        );
    }

    fn report_breakpoint_hits_lost(&mut self, _pid: i32, _addr: u64, lost: u64) {
        // Counted like reports a full queue lost.
        self.hub.lost(lost);
    }

    fn report_watchpoint(&mut self, task: &mut Task<'_>, w: &utrace_engines::Watchpoint) -> Action {
        self.report_asked(task, EventMask::WATCHPOINT, None, |_| {
            pb::event::Kind::Watchpoint(pb::Watchpoint {
                addr: w.addr,
                len: w.len.into(),
                kind: crate::convert::watch_kind(w.kind) as i32,
            })
        })
    }

    fn report_step(&mut self, task: &mut Task<'_>) -> Action {
        self.report_asked(task, EventMask::STEP, None, |t| {
            pb::event::Kind::Step(pb::Step {
                rip: t.register("rip").unwrap_or(0),
            })
        })
    }

    fn report_child_start(&mut self, task: &mut Task<'_>) -> Action {
        let parent = self.parents.remove(&task.pid()).unwrap_or(0);
        self.report(task, EventMask::CHILD_START, None, |_| {
            pb::event::Kind::ChildStart(pb::ChildStart {
                parent_pid: parent as u32,
            })
        })
    }

    fn report_left(&mut self, pid: i32) {
        self.parents.remove(&pid);
        self.process_gone();
    }

    fn report_revoked(&mut self, pid: i32, why: &utrace_engines::Denied) {
        // Always told, even past a full queue (once per process): the
        // client must learn its engine left a process.
        let full = WhenFull::Exceed;
        self.publish(
            Shared::new(
                pid,
                pid,
                now_ns(),
                pb::event::Kind::Revoked(pb::Revoked {
                    reason: why.to_string(),
                }),
            ),
            None,
            None,
            full,
        );
        self.process_gone();
    }

    fn report_detached(&mut self) {
        self.hub.close();
    }
}
