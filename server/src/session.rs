//! The `Session` call: synchronous remote engines over one bidirectional
//! stream.
//!
//! One task per session reads the client's messages in order and acts on
//! each at once: spawns and attaches are awaited (their `attached` answer
//! goes out before any report of the new engine); decisions and batches are
//! *submitted* to the tracer thread in arrival order and their answers are
//! awaited on their own tasks, so a client can pipeline them. The response
//! stream reads each engine's bounded queue directly, and (for a sync
//! engine) a deadline task applies the default action to reports left
//! undecided too long. When the client's side ends, or the
//! client goes away, the session's engines detach.

use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Status, Streaming};
use tracing::{debug, info, warn, Instrument, Span};
use utrace_engines::{Action, EngineId, EventMask, Verdict};
use utrace_proto::v1 as pb;

use crate::convert::{self, status};
use crate::peer::Peer;
use crate::remote::{Held, Subscription, SyncState, TakeError};
use crate::service::{batch_timed_out, NewEngine, TracerService};

/// Answers (attached, batch replies, errors) queued for the client. Reports
/// wait in their engine's own bounded queue, read by the response stream;
/// when a slow client lets it fill, reports are dropped and counted (and a
/// holding report that no queue takes does not hold).
const OUT_QUEUE: usize = 256;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

type BoxStream = Pin<Box<dyn Stream<Item = Result<pb::ServerMessage, Status>> + Send>>;

/// What the session task and its answer tasks hand to the response stream.
enum Item {
    /// A message for the client.
    Msg(Box<pb::ServerMessage>),
    /// A new engine: stream its reports from now on (after everything
    /// queued before, e.g. its `attached` answer).
    Engine {
        engine_id: u64,
        sub: Subscription,
        sync: Option<Arc<SyncState>>,
    },
    /// The session fails: its stream ends with this status.
    End(Status),
}

/// The sending side of the response stream.
#[derive(Clone)]
struct Out(mpsc::Sender<Item>);

impl Out {
    async fn send(&self, m: pb::ServerMessage) -> Result<(), ()> {
        self.0.send(Item::Msg(Box::new(m))).await.map_err(|_| ())
    }

    async fn closed(&self) {
        self.0.closed().await
    }
}

/// Start a session for `peer` on `inbound`; returns the stream to the client.
pub fn start(
    svc: Arc<TracerService>,
    peer: Peer,
    inbound: Streaming<pb::ClientMessage>,
    span: Span,
) -> BoxStream {
    let (out, rx) = mpsc::channel(OUT_QUEUE);
    let out = Out(out);
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let session = Session {
        id,
        svc,
        peer,
        out,
        engines: Vec::new(),
        tasks: Vec::new(),
    };
    tokio::spawn(session.run(inbound).instrument(span));
    Box::pin(Replies {
        ctl: rx,
        ctl_done: false,
        engines: Vec::new(),
        next: 0,
    })
}

/// A message could not be acted on.
struct Refusal {
    status: Status,
    engine_id: u64,
    seq: u64,
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Self {
        Refusal {
            status,
            engine_id: 0,
            seq: 0,
        }
    }
}

fn refuse(status: Status, engine_id: u64, seq: u64) -> Refusal {
    Refusal {
        status,
        engine_id,
        seq,
    }
}

/// A gRPC code's canonical name.
fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn error_message(in_reply_to: u64, r: Refusal) -> pb::ServerMessage {
    pb::ServerMessage {
        msg: Some(pb::server_message::Msg::Error(pb::SessionError {
            code: code_name(r.status.code()).into(),
            message: r.status.message().to_string(),
            engine_id: r.engine_id,
            seq: r.seq,
        })),
        in_reply_to,
    }
}

fn kind_name(k: EventMask) -> &'static str {
    [
        (EventMask::SYSCALL_ENTRY, "syscall entry"),
        (EventMask::SYSCALL_EXIT, "syscall exit"),
        (EventMask::SIGNAL, "signal"),
        (EventMask::CLONE, "clone"),
        (EventMask::EXEC, "exec"),
        (EventMask::EXIT, "exit"),
        (EventMask::BREAKPOINT, "breakpoint"),
        (EventMask::STEP, "step"),
        (EventMask::WATCHPOINT, "watchpoint"),
    ]
    .iter()
    .find(|(bit, _)| k.contains(*bit))
    .map_or("other", |(_, n)| n)
}

struct Session {
    id: u64,
    svc: Arc<TracerService>,
    peer: Peer,
    out: Out,
    /// Engines created here, in creation order.
    engines: Vec<u64>,
    /// Forwarders and deadline tasks, stopped when the session ends.
    tasks: Vec<JoinHandle<()>>,
}

impl Session {
    async fn run(mut self, mut inbound: Streaming<pb::ClientMessage>) {
        info!(session = self.id, "session started");
        let mut stopping = self.svc.stopping.clone();
        loop {
            let msg = tokio::select! {
                m = inbound.message() => m,
                () = self.out.closed() => {
                    debug!(session = self.id, "client stopped listening");
                    break;
                }
                () = async { let _ = stopping.wait_for(|s| *s).await; } => {
                    let _ = self.out.0.send(Item::End(Status::unavailable(
                        "the server is shutting down; every engine was detached",
                    ))).await;
                    break;
                }
            };
            match msg {
                Ok(Some(m)) => {
                    let id = m.id;
                    if let Err(r) = self.handle(m).await {
                        debug!(session = self.id, in_reply_to = id, status = %r.status.message(), "refused");
                        if self.out.send(error_message(id, r)).await.is_err() {
                            break;
                        }
                    }
                }
                Ok(None) => {
                    debug!(session = self.id, "client ended its side");
                    break;
                }
                Err(e) => {
                    debug!(session = self.id, error = %e, "client stream failed");
                    // Say why (a message that cannot be decoded is the
                    // client's error); a client that is gone hears nothing.
                    let status = if e.code() == Code::InvalidArgument {
                        Status::invalid_argument(format!(
                            "the session ends: a message could not be decoded ({}); its engines are detached",
                            e.message()
                        ))
                    } else {
                        e
                    };
                    let _ = self.out.0.send(Item::End(status)).await;
                    break;
                }
            }
        }
        info!(
            session = self.id,
            engines = self.engines.len(),
            "session ended: detaching its engines"
        );
        self.svc.registry.session_closed(self.id);
        for t in self.tasks {
            t.abort();
        }
    }

    /// A sync engine holds tasks: control, which an observe-only client
    /// may not exercise.
    fn may_hold(&self, spec: Option<&pb::EngineSpec>, field: &str) -> Result<(), Refusal> {
        if spec.is_some_and(|s| s.sync) && self.svc.observes_only(&self.peer) {
            return Err(Status::permission_denied(format!(
                "{field}.sync: this client may only observe (--observe-only), and a sync engine holds tasks; leave sync false"
            ))
            .into());
        }
        Ok(())
    }

    async fn handle(&mut self, m: pb::ClientMessage) -> Result<(), Refusal> {
        use pb::client_message::Msg;
        let id = m.id;
        match m.msg {
            None => Err(Status::invalid_argument(
                "message: empty; set one of spawn, attach, decide, batch, set_events, probe",
            )
            .into()),
            Some(Msg::Spawn(mut s)) => {
                let engine = s.engine.take();
                self.may_hold(engine.as_ref(), "spawn.engine")?;
                let e = self
                    .svc
                    .do_spawn(
                        &self.peer,
                        s,
                        engine.as_ref(),
                        "spawn.",
                        "spawn.engine",
                        Some(self.id),
                        None,
                    )
                    .await?;
                self.started(id, e).await;
                Ok(())
            }
            Some(Msg::Attach(a)) => {
                self.may_hold(a.engine.as_ref(), "attach.engine")?;
                let e = self
                    .svc
                    .do_attach(
                        &self.peer,
                        a.pid,
                        a.engine.as_ref(),
                        "attach.",
                        Some(self.id),
                        None,
                    )
                    .await?;
                self.started(id, e).await;
                Ok(())
            }
            Some(Msg::Decide(d)) => self.decide(id, d).await,
            Some(Msg::Batch(b)) => self.batch(id, b).await,
            Some(Msg::SetEvents(s)) => self.set_events(s).await,
            Some(Msg::Probe(req)) => self.probe(id, req).await,
        }
    }

    /// A probe of this session: started as by the Probe call, its reports
    /// moved into the session's stream. When the session ends, the
    /// forwarder stops, and the probe's end of the stream closing detaches
    /// its engine.
    async fn probe(&mut self, in_reply_to: u64, req: pb::ProbeRequest) -> Result<(), Refusal> {
        let mut reports = crate::probe::start(&self.svc, self.peer.clone(), req)
            .await?
            .into_inner();
        let out = self.out.clone();
        let session = self.id;
        self.reap();
        self.tasks.push(tokio::spawn(
            async move {
                while let Some(r) = reports.next().await {
                    let msg = match r {
                        Ok(report) => pb::ServerMessage {
                            msg: Some(pb::server_message::Msg::Probe(report)),
                            in_reply_to,
                        },
                        Err(status) => error_message(in_reply_to, status.into()),
                    };
                    if out.send(msg).await.is_err() {
                        debug!(session, "session gone: its probe ends");
                        return;
                    }
                }
            }
            .in_current_span(),
        ));
        Ok(())
    }

    /// A new engine: answer `attached`, then forward its reports and watch
    /// its deadlines.
    async fn started(&mut self, in_reply_to: u64, mut e: NewEngine) {
        let engine_id = e.engine_id;
        let (pid, tids, sync) = (e.pid, std::mem::take(&mut e.tids), e.sync.clone());
        // The session owns it now: it detaches when the session ends.
        let sub = e.keep();
        self.engines.push(engine_id);
        let _ = self
            .out
            .send(pb::ServerMessage {
                msg: Some(pb::server_message::Msg::Attached(pb::Attached {
                    pid,
                    engine_id,
                    tids,
                })),
                in_reply_to,
            })
            .await;
        let _ = self
            .out
            .0
            .send(Item::Engine {
                engine_id,
                sub,
                sync: sync.clone(),
            })
            .await;
        if let Some(sync) = sync {
            let tracer = self.svc.tracer.clone();
            self.tasks.push(tokio::spawn(
                deadlines(tracer, engine_id, sync).in_current_span(),
            ));
        }
    }

    /// The engine a message names; 0: the session's only engine.
    fn engine(&mut self, id: u64, field: &str) -> Result<u64, Refusal> {
        if id != 0 {
            return Ok(id);
        }
        // Engines whose processes are gone no longer count.
        let registry = &self.svc.registry;
        self.engines.retain(|id| registry.is_open(*id));
        match self.engines.as_slice() {
            [only] => Ok(*only),
            [] => Err(Status::failed_precondition(format!(
                "{field}: this session has no live engine; spawn or attach first"
            ))
            .into()),
            _ => Err(Status::invalid_argument(format!(
                "{field}: this session has {} engines; name one (engine_id)",
                self.engines.len()
            ))
            .into()),
        }
    }

    async fn decide(&mut self, in_reply_to: u64, d: pb::Decision) -> Result<(), Refusal> {
        let engine_id = self.engine(d.engine_id, "decide.engine_id")?;
        let seq = d.seq;
        let at = |s: Status| refuse(s, engine_id, seq);
        let sync = self
            .svc
            .registry
            .session_engine(engine_id, &self.peer, self.id)
            .map_err(at)?;
        let held = sync.peek(seq).map_err(|e| at(not_held(e, seq)))?;
        crate::metrics::get().decision();
        let action = convert::action(d.action, "decide.action")
            .map_err(|m| at(Status::invalid_argument(m)))?;
        let kind = held.kind;
        let signal_stop = kind == EventMask::SIGNAL;
        if (d.signal != 0 || d.suppress_signal) && !signal_stop {
            return Err(at(Status::invalid_argument(format!(
                "decide.signal: report {seq} is a {} report; signal and suppress_signal apply only at a signal report",
                kind_name(kind)
            ))));
        }
        if !(0..=64).contains(&d.signal) {
            return Err(at(Status::invalid_argument(format!(
                "decide.signal: {} is not a signal number (1-64; 0 keeps the reported signal)",
                d.signal
            ))));
        }
        if d.skip_syscall && kind != EventMask::SYSCALL_ENTRY {
            return Err(at(Status::invalid_argument(format!(
                "decide.skip_syscall: report {seq} is a {} report; a syscall can be skipped only at its entry",
                kind_name(kind)
            ))));
        }
        if d.syscall_return.is_some() && !d.skip_syscall && kind != EventMask::SYSCALL_EXIT {
            return Err(at(Status::invalid_argument(format!(
                "decide.syscall_return: report {seq} is a {} report; set it at a syscall exit, or with skip_syscall at an entry",
                kind_name(kind)
            ))));
        }
        let changes =
            d.skip_syscall || d.syscall_return.is_some() || d.signal != 0 || d.suppress_signal;
        if changes && self.svc.observes_only(&self.peer) {
            return Err(at(Status::permission_denied(
                "decide: this client may only observe (--observe-only): it may resume, hold, step or detach, not change syscalls or signals",
            )));
        }
        let (ops, reply_plan, stop_on_error) = match d.batch {
            Some(b) => {
                let (ops, reply) = self
                    .svc
                    .plan_ops(&self.peer, engine_id, b.ops, b.stop_on_error)
                    .map_err(|s| {
                        at(Status::new(
                            s.code(),
                            format!("decide.batch: {}", s.message()),
                        ))
                    })?;
                (ops, Some(reply), b.stop_on_error)
            }
            None => (Vec::new(), None, false),
        };
        // Everything checks out: the report is decided now.
        let held = sync.take(seq).map_err(|e| at(not_held(e, seq)))?;
        if action != Action::Stop {
            crate::metrics::get().released(held.since.elapsed());
        }
        if action == Action::Stop {
            sync.put_back(
                seq,
                Held {
                    deadline: None,
                    ..held
                },
            );
            if ops.is_empty() && reply_plan.is_none() && !changes {
                // A HOLD and nothing else: the engine answered Stop at the
                // report, so the task is held there already; only the
                // deadline goes, and the ledger keeps that. The tracer
                // thread is not woken for it (a debugger holds every stop
                // it is shown: one wake-up fewer per stop).
                debug!(engine = engine_id, seq, tid = held.tid, "decision: hold");
                return Ok(());
            }
        }
        let verdict = Verdict {
            action,
            signal: if d.suppress_signal {
                Some(0)
            } else if d.signal != 0 {
                Some(d.signal)
            } else {
                None
            },
            syscall_return: if d.skip_syscall {
                Some(d.syscall_return.unwrap_or(-i64::from(libc::ENOSYS)))
            } else {
                d.syscall_return
            },
        };
        debug!(
            engine = engine_id,
            seq,
            tid = held.tid,
            ?verdict,
            "decision"
        );
        let answer = self
            .svc
            .tracer
            .decide(
                EngineId(engine_id),
                held.tid,
                held.stop_id,
                ops,
                stop_on_error,
                verdict,
            )
            .submit()
            .await
            .map_err(|e| at(status(e)))?;
        if reply_plan.is_none() && verdict.syscall_return.is_none() {
            // Nothing to answer on success: do not wait (the tracer thread
            // then wakes nobody before it resumes the task). A failure
            // (the task left the stop meanwhile) is logged by the tracer.
            drop(answer);
            return Ok(());
        }
        let out = self.out.clone();
        self.tasks.push(tokio::spawn(
            async move {
                let msg = match answer.await {
                    Ok(done) => {
                        if let Some(e) = done.syscall_error {
                            let r = refuse(Status::failed_precondition(e.message), engine_id, seq);
                            let _ = out.send(error_message(in_reply_to, r)).await;
                        }
                        match reply_plan {
                            Some(plan) => pb::ServerMessage {
                                msg: Some(pb::server_message::Msg::BatchReply(
                                    plan.finish(done.results),
                                )),
                                in_reply_to,
                            },
                            None => return,
                        }
                    }
                    Err(e) => error_message(in_reply_to, refuse(status(e), engine_id, seq)),
                };
                let _ = out.send(msg).await;
            }
            .in_current_span(),
        ));
        self.reap();
        Ok(())
    }

    async fn batch(&mut self, in_reply_to: u64, b: pb::BatchRequest) -> Result<(), Refusal> {
        let mut b = b;
        b.engine_id = self.engine(b.engine_id, "batch.engine_id")?;
        let plan = self
            .svc
            .plan_batch(&self.peer, b)
            .map_err(|s| Status::new(s.code(), format!("batch: {}", s.message())))?;
        let tid = plan.tid;
        let (n, started) = (plan.ops.len(), std::time::Instant::now());
        let answer = self
            .svc
            .tracer
            .batch(
                plan.engine,
                plan.tid,
                plan.interrupt,
                plan.ops,
                plan.stop_on_error,
            )
            .submit()
            .await
            .map_err(status)?;
        let out = self.out.clone();
        let limit = self.svc.limits.batch_timeout;
        let reply = plan.reply;
        let tally = self.svc.registry.tally(plan.engine.0);
        self.tasks.push(tokio::spawn(
            async move {
                let msg = match tokio::time::timeout(limit, answer.into_future()).await {
                    Ok(Ok(results)) => {
                        crate::metrics::batch_done(tally.as_deref(), n, started.elapsed());
                        pb::ServerMessage {
                            msg: Some(pb::server_message::Msg::BatchReply(reply.finish(results))),
                            in_reply_to,
                        }
                    }
                    Ok(Err(e)) => error_message(in_reply_to, status(e).into()),
                    Err(_) => error_message(in_reply_to, batch_timed_out(tid, limit).into()),
                };
                let _ = out.send(msg).await;
            }
            .in_current_span(),
        ));
        self.reap();
        Ok(())
    }

    async fn set_events(&mut self, s: pb::SetEvents) -> Result<(), Refusal> {
        let engine_id = self.engine(s.engine_id, "set_events.engine_id")?;
        let hub = self.svc.registry.hub(engine_id, &self.peer)?;
        let (events, syscalls, wanted, passed) = convert::set_events(&s, "set_events")?;
        self.svc
            .tracer
            .set_events(EngineId(engine_id), events, syscalls)
            .await
            .map_err(status)?;
        hub.set_wanted(wanted);
        hub.set_passed(passed);
        Ok(())
    }

    /// Forget finished answer tasks (the list stays as long as what is in
    /// flight).
    fn reap(&mut self) {
        if self.tasks.len() > 64 {
            self.tasks.retain(|t| !t.is_finished());
        }
    }
}

fn not_held(e: TakeError, seq: u64) -> Status {
    match e {
        TakeError::Unknown { last } => Status::not_found(format!(
            "decide.seq: no report {seq} yet (the last report has seq {last})"
        )),
        TakeError::NotHeld => Status::failed_precondition(format!(
            "decide.seq: report {seq} is not waiting for a decision: it was decided already, its deadline passed (the default action was applied), or it did not hold the task (Event.held false)"
        )),
    }
}

/// The response stream: the session's answers, and every engine's
/// reports straight from its queue (no task in between: a report goes from
/// the tracer thread's `try_send` to HTTP/2). Each engine's last message is
/// `ended`. Answers come first; engines are served round-robin.
struct Replies {
    ctl: mpsc::Receiver<Item>,
    ctl_done: bool,
    engines: Vec<(u64, Subscription, Option<Arc<SyncState>>)>,
    /// The engine to look at first next time.
    next: usize,
}

impl Stream for Replies {
    type Item = Result<pb::ServerMessage, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        while !this.ctl_done {
            match this.ctl.poll_recv(cx) {
                Poll::Ready(Some(Item::Msg(m))) => return Poll::Ready(Some(Ok(*m))),
                Poll::Ready(Some(Item::End(status))) => {
                    this.ctl_done = true;
                    this.engines.clear();
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Some(Item::Engine {
                    engine_id,
                    sub,
                    sync,
                })) => this.engines.push((engine_id, sub, sync)),
                Poll::Ready(None) => this.ctl_done = true,
                Poll::Pending => break,
            }
        }
        let n = this.engines.len();
        for k in 0..n {
            let i = (this.next + k) % n;
            let (engine_id, sub, _) = &mut this.engines[i];
            match sub.poll_next(cx) {
                Poll::Ready(Some(r)) => {
                    this.next = i + 1;
                    return Poll::Ready(Some(Ok(pb::ServerMessage {
                        msg: Some(pb::server_message::Msg::Report(r.into_event(*engine_id))),
                        in_reply_to: 0,
                    })));
                }
                Poll::Ready(None) => {
                    // The engine is done: say so, with what the client has
                    // not heard yet.
                    let (engine_id, sub, sync) = this.engines.remove(i);
                    let ended = pb::EngineEnded {
                        engine_id,
                        dropped: sub.take_dropped(),
                        defaulted: sync.map(|s| s.take_defaulted()).unwrap_or_default(),
                    };
                    return Poll::Ready(Some(Ok(pb::ServerMessage {
                        msg: Some(pb::server_message::Msg::Ended(ended)),
                        in_reply_to: 0,
                    })));
                }
                Poll::Pending => {}
            }
        }
        if this.ctl_done && this.engines.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// Apply the default action to held reports whose deadline passed.
async fn deadlines(tracer: utrace_engines::Tracer, engine_id: u64, sync: Arc<SyncState>) {
    loop {
        match sync.next_deadline() {
            // Later reports' deadlines are later: sleep through their
            // notifications (a stored permit only costs one extra loop).
            Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            None => {
                sync.changed.notified().await;
                continue;
            }
        }
        for (seq, held) in sync.expire(std::time::Instant::now()) {
            crate::metrics::get().defaulted(1);
            crate::metrics::get().released(held.since.elapsed());
            warn!(
                engine = engine_id,
                seq,
                tid = held.tid,
                action = ?sync.spec.default_action,
                "decision deadline passed; applying the default action"
            );
            let verdict = Verdict {
                action: sync.spec.default_action,
                signal: None,
                syscall_return: None,
            };
            let req = tracer.decide(
                EngineId(engine_id),
                held.tid,
                held.stop_id,
                Vec::new(),
                false,
                verdict,
            );
            // Only queue it: the answer (StopGone if the task moved on) is
            // of no use here.
            if req.submit().await.is_err() {
                return;
            }
        }
    }
}
