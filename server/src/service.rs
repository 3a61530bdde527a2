//! The `utrace.v1.Tracer` service. Handlers validate, authorize, and send
//! commands to the tracer thread; they never touch ptrace themselves. The
//! one thing they do without the tracer thread is read the memory of a
//! stopped task ([`read_ranges`], through the engine layer's
//! `Tracer::read_scatter_now`), which saves two thread wake-ups per read.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, info_span, Instrument};
use utrace_engines::{Credentials, SpawnOptions, Tracer};
use utrace_proto::v1 as pb;
use utrace_proto::wire::{ReadsRequest, WireBatchReply, WireBatchRequest, WireEvent};

use crate::convert::{self, status, SpecContext};
use crate::peer::Peer;
use crate::registry::Registry;
use crate::remote::{Hub, Next, RemoteEngine, Subscription, SyncState};
use crate::sink::{SinkFn, Sinks, SINK_METADATA};
use crate::Limits;

/// The service state shared by every listener.
pub struct TracerService {
    pub(crate) tracer: Tracer,
    pub(crate) registry: Arc<Registry>,
    pub(crate) limits: Limits,
    pub(crate) observe_only: Vec<u32>,
    pub(crate) listen: Vec<String>,
    /// This service itself, for sessions (which outlive a handler call).
    pub(crate) this: std::sync::Weak<TracerService>,
    /// Async report streams handing out reports now (see [`EventStream`]).
    pub(crate) busy_streams: Arc<AtomicUsize>,
    /// Becomes true when the server stops: sessions end.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    /// Local sinks the embedding program registered (see [`crate::sink`]).
    pub(crate) sinks: Arc<Sinks>,
}

/// An engine just created by a spawn or an attach, registered to its
/// client's connection. Until [`NewEngine::keep`] says its client has
/// learned of it (the reply is built, the stream set up), dropping it
/// undoes it: a call cancelled at any point leaves no engine, and no
/// started program, behind.
pub(crate) struct NewEngine {
    pub pid: u32,
    pub engine_id: u64,
    pub tids: Vec<u32>,
    /// Its first subscriber's queue.
    pub sub: Option<Subscription>,
    /// Its subscribers (a remote engine's).
    pub hub: Option<Arc<Hub>>,
    /// Its ledger of held reports, for a sync engine.
    pub sync: Option<Arc<SyncState>>,
    undo: Option<Undo>,
}

/// What undoes an engine nobody learned of.
struct Undo {
    registry: Arc<Registry>,
    /// The program it started (killed with it).
    spawned: Option<u32>,
}

impl NewEngine {
    /// Its client knows of it now: it stays (an engine without reports).
    pub fn keep_quiet(mut self) {
        self.undo = None;
    }

    /// Its client knows of it now: it stays.
    pub fn keep(mut self) -> Subscription {
        self.undo = None;
        self.sub
            .take()
            .expect("a new engine has its first subscriber")
    }
}

impl Drop for NewEngine {
    fn drop(&mut self) {
        if let Some(u) = self.undo.take() {
            debug!(
                engine = self.engine_id,
                "its call went away: undoing the new engine"
            );
            u.registry.abandon(self.engine_id, u.spawned);
        }
    }
}

/// A new engine's server-side parts, kept while the tracer attaches it.
pub(crate) struct Parts {
    /// A remote engine's subscribers and its first queue (a probe has none).
    hub: Option<(Arc<Hub>, Subscription)>,
    sync: Option<Arc<SyncState>>,
    ticket: crate::budget::Ticket,
}

impl Parts {
    /// A remote engine for `spec` and the parts the server keeps of it.
    fn new(
        registry: &Registry,
        tracer: &Tracer,
        p: &Peer,
        queue_len: usize,
        spec: crate::remote::Spec,
        sink: Option<SinkFn>,
    ) -> Result<(Box<RemoteEngine>, Parts), Status> {
        let ticket = registry.reserve(p)?;
        let meter = registry.budgets.queued(p.uid());
        // A sink is lossless by nature (and needs the tracer to release
        // the threads that reported before it opened).
        let lossless = (spec.lossless || sink.is_some()).then(|| tracer.clone());
        let counters = crate::metrics::get().engine(spec.sync.is_some());
        let (hub, sub) = Hub::new(queue_len, spec.wanted, meter, lossless, sink, counters);
        let engine = RemoteEngine::new(Arc::clone(&hub), spec);
        let sync = engine.sync_state();
        Ok((
            Box::new(engine),
            Parts {
                hub: Some((hub, sub)),
                sync,
                ticket,
            },
        ))
    }

    /// Parts of an engine without reports (a probe): its place in `p`'s
    /// engine budget.
    pub(crate) fn quiet(registry: &Registry, p: &Peer) -> Result<Parts, Status> {
        Ok(Parts {
            hub: None,
            sync: None,
            ticket: registry.reserve(p)?,
        })
    }

    /// The engine exists as `id` on `pid`: record it for `p`. If `p`'s
    /// connection is gone, the engine (and a program it `spawned`) is undone.
    #[allow(clippy::too_many_arguments)]
    fn register(
        self,
        registry: &Arc<Registry>,
        id: utrace_engines::EngineId,
        p: &Peer,
        pid: u32,
        tids: Vec<u32>,
        session: Option<u64>,
        spawned: bool,
    ) -> Result<NewEngine, Status> {
        let undo = Undo {
            registry: Arc::clone(registry),
            spawned: spawned.then_some(pid),
        };
        let (hub, sub) = self.hub.unzip();
        if let Err(e) = registry.insert(
            id,
            p,
            self.ticket,
            pid,
            hub.clone(),
            self.sync.clone(),
            session,
        ) {
            undo.registry.abandon(id.0, undo.spawned);
            return Err(e);
        }
        Ok(NewEngine {
            pid,
            engine_id: id.0,
            tids,
            sub,
            hub,
            sync: self.sync,
            undo: Some(undo),
        })
    }
}

/// Which processes a listing shows a caller: those it may trace (decided
/// once per process: the check reads every thread of it), and only `only`
/// if not 0.
struct Visible<'a> {
    peer: &'a Peer,
    only: u32,
    decided: std::collections::HashMap<i32, bool>,
}

impl<'a> Visible<'a> {
    fn new(peer: &'a Peer, only: u32) -> Self {
        Visible {
            peer,
            only,
            decided: std::collections::HashMap::new(),
        }
    }

    fn shows(&mut self, pid: i32) -> bool {
        (self.only == 0 || pid as u32 == self.only)
            && *self
                .decided
                .entry(pid)
                .or_insert_with(|| self.peer.may_see(pid))
    }
}

/// The caller, from the connection (every listener attaches a [`Peer`]).
/// A connection past its uid's budget gets the reason for every call.
fn peer<T>(req: &Request<T>) -> Result<Peer, Status> {
    let p = req
        .extensions()
        .get::<Peer>()
        .cloned()
        .ok_or_else(|| Status::internal("connection without peer identity"))?;
    match &p.refused {
        Some((code, why)) => Err(Status::new(*code, why.to_string())),
        None => Ok(p),
    }
}

fn span(method: &'static str, p: &Peer) -> tracing::Span {
    info_span!(
        "rpc",
        method,
        conn = p.conn,
        uid = p.uid(),
        client_pid = p.pid
    )
}

/// A stream of one engine's events; detaches the engine when dropped if it
/// belongs to this call (Trace).
pub struct EventStream {
    sub: Subscription,
    engine_id: u64,
    first: Option<pb::Event>,
    detach_on_drop: Option<Arc<Registry>>,
    /// After handing out reports, how long the stream lets more gather
    /// before it looks again (zero: it never waits).
    window: Duration,
    /// The window's timer.
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The stream waits out a window (or for its queue to fill to half).
    waiting: bool,
    /// Reports were handed out since the queue was last found empty.
    burst: bool,
    /// The server's count of busy streams, and whether this one is in it
    /// (from its first report after being idle until it is idle again).
    busy: Arc<AtomicUsize>,
    counted: bool,
}

impl EventStream {
    fn new(
        sub: Subscription,
        engine_id: u64,
        first: Option<pb::Event>,
        detach_on_drop: Option<Arc<Registry>>,
        window: Duration,
        busy: Arc<AtomicUsize>,
    ) -> Self {
        EventStream {
            sub,
            engine_id,
            first,
            detach_on_drop,
            window,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            waiting: false,
            burst: false,
            busy,
            counted: false,
        }
    }

    /// A report goes out: the stream is busy.
    fn hand_out(&mut self, r: crate::remote::Report) -> Poll<Option<Result<WireEvent, Status>>> {
        self.burst = true;
        if !self.counted {
            self.counted = true;
            self.busy.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(Some(Ok(r.into_wire(self.engine_id))))
    }

    /// The stream has nothing to send: it is idle.
    fn idle(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.busy.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The engine is done. Reports lost after the last delivered one are
    /// told in a final event with no kind.
    fn end(&self) -> Option<Result<WireEvent, Status>> {
        let lost = self.sub.take_dropped();
        (lost != 0).then(|| {
            Ok(WireEvent::new(pb::Event {
                engine_id: self.engine_id,
                dropped_before: lost,
                ..Default::default()
            }))
        })
    }
}

impl Stream for EventStream {
    type Item = Result<WireEvent, Status>;

    /// When several streams are busy at once (many clients watching
    /// syscall-heavy programs), reports that come while others are being
    /// sent go out together: after a burst, the stream waits up to `window`
    /// (less if its queue fills to half), then hands out everything queued,
    /// which tonic encodes into one HTTP/2 write; while it waits, the tracer
    /// thread's pushes wake nobody. A report that comes to an idle stream,
    /// or to the only busy one, goes out at once: one busy stream costs the
    /// server one wake per report, and batching it would leave a CPU idle
    /// for the scheduler to move the tracer or the tracee to.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(ev) = this.first.take() {
            return Poll::Ready(Some(Ok(WireEvent::new(ev))));
        }
        loop {
            if this.waiting {
                if this.timer.as_mut().poll(cx).is_pending() && this.sub.wait_half(cx) {
                    return Poll::Pending;
                }
                this.waiting = false;
            }
            match this.sub.try_next() {
                Next::Report(r) => return this.hand_out(r),
                Next::Ended => {
                    this.idle();
                    return Poll::Ready(this.end());
                }
                Next::Empty => {}
            }
            if std::mem::take(&mut this.burst)
                && !this.window.is_zero()
                && this.busy.load(Ordering::Relaxed) > 1
            {
                let at = tokio::time::Instant::now() + this.window;
                this.timer.as_mut().reset(at);
                this.waiting = true;
                continue;
            }
            // Idle: the next report goes out as soon as it comes.
            return match this.sub.poll_next(cx) {
                Poll::Ready(Some(r)) => this.hand_out(r),
                Poll::Ready(None) => {
                    this.idle();
                    Poll::Ready(this.end())
                }
                Poll::Pending => {
                    this.idle();
                    Poll::Pending
                }
            };
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.idle();
        if let Some(reg) = self.detach_on_drop.take() {
            reg.detach_later(self.engine_id);
        }
    }
}

/// A batch validated and authorized, ready to run.
pub(crate) struct PlannedBatch {
    pub engine: utrace_engines::EngineId,
    pub tid: i32,
    pub interrupt: bool,
    pub stop_on_error: bool,
    pub ops: Vec<utrace_engines::batch::Op>,
    pub reply: BatchReplyPlan,
}

/// How to turn a batch's results into its reply.
pub(crate) struct BatchReplyPlan {
    slots: Vec<convert::Slot>,
    stop_on_error: bool,
    hub: Arc<Hub>,
    /// The last set_events op (its index), the kinds it asks to be told
    /// and the signals it passes.
    new_wanted: Option<convert::NewEvents>,
    /// The signals passed before the batch, if it set them.
    passed_before: Option<u64>,
    /// The bytes it moves, in its uid's budget until its reply is built.
    _bytes: crate::budget::Ticket,
}

impl BatchReplyPlan {
    pub fn finish(self, results: Vec<utrace_engines::batch::OpResult>) -> pb::BatchReply {
        // A get_events after the set_events tells the new kinds; no op after
        // a set_events that failed or was skipped runs.
        let wanted = self.new_wanted.map_or(self.hub.wanted(), |(_, w, _)| w);
        let results = convert::merge_results(self.slots, results, self.stop_on_error, wanted);
        if let Some((i, w, _)) = self.new_wanted {
            // The engine's mask changed only if the op ran.
            if matches!(
                results.get(i).and_then(|r| r.result.as_ref()),
                Some(pb::op_result::Result::Done(_))
            ) {
                self.hub.set_wanted(w);
            } else if let Some(before) = self.passed_before {
                self.hub.set_passed(before);
            }
        }
        pb::BatchReply { results }
    }
}

pub(crate) fn batch_timed_out(tid: i32, limit: std::time::Duration) -> Status {
    Status::deadline_exceeded(format!(
        "thread {tid} did not stop within the batch time limit ({limit:?}); it may be in an uninterruptible sleep. The batch was not run."
    ))
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl TracerService {
    /// The values a metrics scrape reads now (see [`crate::metrics`]).
    pub(crate) async fn scrape(&self) -> crate::metrics::Scrape {
        let mut s = crate::metrics::Scrape::default();
        if let Ok(st) = self.tracer.stats().await {
            s.stops = st.stops;
            s.syscall_stops = st.syscall_stops;
            s.callbacks = st.reports;
            s.uprobe_events = st.uprobe_events;
        }
        if let Ok(tasks) = self.tracer.tasks().await {
            for t in &tasks {
                match t.mode {
                    utrace_engines::SyscallMode::Seccomp => s.tasks_seccomp += 1,
                    utrace_engines::SyscallMode::Ptrace => s.tasks_ptrace += 1,
                }
                s.tasks_held += u64::from(!t.holds.is_empty());
            }
        }
        s.uids = self.registry.budgets.uses();
        s.tracer_cpu = crate::metrics::thread_cpu(self.tracer.thread_id());
        s
    }

    /// This service, owned (for a session's tasks).
    pub(crate) fn me(&self) -> Result<Arc<TracerService>, Status> {
        self.this
            .upgrade()
            .ok_or_else(|| Status::unavailable("the server is shutting down"))
    }

    /// `p` may only observe: its identity says so (TLS), or its uid is
    /// listed (`--observe-only`).
    pub(crate) fn observes_only(&self, p: &Peer) -> bool {
        p.observe_only || self.observe_only.contains(&p.uid())
    }

    /// The threads of `tasks` that `visible` shows, with their holders.
    fn shown_tasks(
        &self,
        tasks: &[utrace_engines::TaskInfo],
        visible: &mut Visible<'_>,
    ) -> Vec<pb::TaskInfo> {
        tasks
            .iter()
            .filter(|t| visible.shows(t.pid))
            .map(|t| {
                let mut info = convert::task_info(t);
                info.holders = t.holds.iter().map(|id| self.holder(id.0, t.tid)).collect();
                info
            })
            .collect()
    }

    /// Who holds task `tid` through engine `id`.
    fn holder(&self, id: u64, tid: i32) -> pb::Holder {
        let mut h = pb::Holder {
            engine_id: id,
            ..Default::default()
        };
        if let Some((client_pid, client_uid, sync)) = self.registry.holder(id) {
            h.client_pid = client_pid;
            h.client_uid = client_uid;
            h.sync = sync.is_some();
            if let Some((seq, held)) = sync.and_then(|s| s.held_at(tid)) {
                h.seq = seq;
                h.deadline_in_ms = held.deadline.map_or(0, |d| {
                    d.saturating_duration_since(std::time::Instant::now())
                        .as_millis() as u64
                });
            }
        }
        h
    }

    /// Validate and authorize a batch for `p`.
    pub(crate) fn plan_batch(&self, p: &Peer, r: pb::BatchRequest) -> Result<PlannedBatch, Status> {
        let pid = self.registry.owned_pid(r.engine_id, p)?;
        let tid = if r.tid == 0 { pid } else { r.tid };
        let (ops, reply) = self.plan_ops(p, r.engine_id, r.ops, r.stop_on_error)?;
        Ok(PlannedBatch {
            engine: utrace_engines::EngineId(r.engine_id),
            tid: tid as i32,
            interrupt: r.interrupt,
            stop_on_error: r.stop_on_error,
            ops,
            reply,
        })
    }

    /// Validate and authorize `ops` for `p` on engine `engine_id`: the ops
    /// to run and how to answer (a Batch's, or a Decision's batch).
    pub(crate) fn plan_ops(
        &self,
        p: &Peer,
        engine_id: u64,
        ops: Vec<pb::Op>,
        stop_on_error: bool,
    ) -> Result<(Vec<utrace_engines::batch::Op>, BatchReplyPlan), Status> {
        let observe_only = self.observes_only(p);
        let hub = self.registry.hub(engine_id, p)?;
        let (planned, new_wanted) = convert::batch_ops(ops, observe_only, &self.limits)?;
        let (ops, slots) = convert::split_plan(planned, stop_on_error);
        let bytes = self.registry.budgets.batch_bytes(p, moved_bytes(&ops))?;
        // The signals a set_events passes apply from before the batch runs,
        // so that a resume in the same batch (a debugger's) lets none of
        // them be reported; if the op does not run, `finish` puts the old
        // set back.
        let passed_before = new_wanted.map(|(_, _, passed)| hub.swap_passed(passed));
        let reply = BatchReplyPlan {
            slots,
            stop_on_error,
            hub,
            new_wanted,
            passed_before,
            _bytes: bytes,
        };
        Ok((ops, reply))
    }

    /// Wait for `run` (a batch on `tid`) within the batch time limit.
    async fn within_batch_limit<T: Send + 'static>(
        &self,
        tid: i32,
        run: utrace_engines::Request<T>,
    ) -> Result<T, Status> {
        match tokio::time::timeout(self.limits.batch_timeout, run).await {
            Ok(Ok(x)) => Ok(x),
            Ok(Err(e)) => Err(status(e)),
            Err(_) => Err(batch_timed_out(tid, self.limits.batch_timeout)),
        }
    }

    /// A batch of only `read_memory` ops: one scatter read on the tracer
    /// thread, its reply encoded from the read buffer. Same checks (owner,
    /// then limits), stop rules and time limit as any batch.
    async fn read_batch(
        &self,
        p: &Peer,
        r: ReadsRequest,
        started: std::time::Instant,
    ) -> Result<Response<WireBatchReply>, Status> {
        let pid = self.registry.owned_pid(r.engine_id, p)?;
        let ranges = convert::check_read_ranges(r.ranges, &self.limits)?;
        let total = ranges.iter().map(|r| r.1).sum();
        let _bytes = self.registry.budgets.batch_bytes(p, total)?;
        let tid = if r.tid == 0 { pid } else { r.tid } as i32;
        let engine = utrace_engines::EngineId(r.engine_id);
        let (ranges, read) = read_ranges(
            &self.tracer,
            engine,
            tid,
            r.interrupt,
            ranges,
            self.limits.batch_timeout,
        )
        .await?;
        self.registry
            .batch_done(r.engine_id, ranges.len(), started.elapsed());
        Ok(Response::new(WireBatchReply::Reads(convert::reads_reply(
            ranges,
            read,
            r.stop_on_error,
        ))))
    }

    /// Spawn for `p` with engine spec `spec`; returns the new engine.
    ///
    /// The program gets what its client sends and nothing of the server's:
    /// the environment in the request only; the client's uid, gid and
    /// groups (from the connection); unless the client holds every
    /// capability the server has, `no_new_privs` and no capability the
    /// client does not hold (so neither the server's rights nor a setuid
    /// program give it what the client could not have); stdio on
    /// /dev/null, descriptors from 3 up closed, and `/` as its working
    /// directory unless the request names one (entered with the client's
    /// rights). A client in the server's own process (the `utrace`
    /// command's embedded server) keeps its stdio, descriptors and
    /// directory: they are its own.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn do_spawn(
        &self,
        p: &Peer,
        req: pb::SpawnRequest,
        spec: Option<&pb::EngineSpec>,
        field: &str,
        engine_field: &str,
        session: Option<u64>,
        sink: Option<SinkFn>,
    ) -> Result<NewEngine, Status> {
        check_argv(&req.argv, field)?;
        let cfg = convert::engine_config(
            spec,
            engine_field,
            &SpecContext::new(&self.limits, session.is_some()),
        )?;
        let (engine, parts) = self.remote_parts(p, &cfg, sink)?;
        self.spawn_engine(p, req, field, session, engine, cfg.options, parts)
            .await
    }

    /// [`TracerService::do_spawn`] with an engine made: `engine` with
    /// `options` (their owner is set here), `parts` its server side.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn spawn_engine(
        &self,
        p: &Peer,
        req: pb::SpawnRequest,
        field: &str,
        session: Option<u64>,
        engine: Box<dyn utrace_engines::Engine>,
        mut options: utrace_engines::EngineOptions,
        parts: Parts,
    ) -> Result<NewEngine, Status> {
        check_argv(&req.argv, field)?;
        options.owner = Some(Arc::clone(&p.owner));
        // SAFETY: geteuid has no preconditions.
        let server_uid = unsafe { libc::geteuid() };
        let credentials = if let Some(r) = &req.run_as {
            // strace -u: the client sets the program's ids, as it could
            // itself with setresuid and setgroups.
            if !p.owner.may_set_ids() {
                return Err(Status::permission_denied(format!(
                    "{field}run_as: starting a program as uid {} needs CAP_SETUID and CAP_SETGID \
                     (in the server's user namespace), which you do not have",
                    r.uid
                )));
            }
            if server_uid != 0 {
                return Err(Status::permission_denied(format!(
                    "{field}run_as: this server runs as uid {server_uid} and cannot start programs \
                     as another user"
                )));
            }
            if r.groups.len() > 65_536 {
                return Err(Status::invalid_argument(format!(
                    "{field}run_as.groups: {} groups; at most 65,536",
                    r.groups.len()
                )));
            }
            Some(Credentials {
                uid: r.uid,
                gid: r.gid,
                groups: r.groups.clone(),
            })
        } else if p.uid() == server_uid {
            None
        } else if server_uid == 0 {
            Some(Credentials {
                uid: p.uid(),
                gid: p.gid(),
                groups: p.owner.groups.clone(),
            })
        } else {
            return Err(Status::permission_denied(format!(
                "this server runs as uid {server_uid} and cannot start programs as your uid {}",
                p.uid()
            )));
        };
        let mut opts = SpawnOptions::new(req.argv);
        opts.env = environment(req.env, req.environ, field)?;
        opts.env_clear = true;
        opts.stop_at_entry = req.stop_at_entry;
        opts.disable_aslr = req.disable_aslr;
        opts.kernel_filter = !req.no_kernel_filter;
        opts.credentials = credentials;
        opts.no_new_privs = !p.is_root();
        opts.max_caps = (!p.is_root()).then_some(p.owner.cap_permitted);
        let stdio = match pb::Stdio::try_from(req.stdio) {
            Ok(s) => s,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "{field}stdio: {} is not a Stdio; use STDIO_DEFAULT or STDIO_PIPES",
                    req.stdio
                )))
            }
        };
        if stdio != pb::Stdio::Default {
            let Some((hub, _)) = &parts.hub else {
                return Err(Status::invalid_argument(format!(
                    "{field}stdio: {} carries output among an engine's reports; this call has none",
                    stdio.as_str_name()
                )));
            };
            let made = if stdio == pb::Stdio::Pty {
                let (rows, cols) = window_size(req.window.as_ref(), field)?;
                crate::stdio::Stdio::pty(rows, cols).and_then(|(io, ends)| {
                    // The terminal is the program's, as sshd makes it.
                    if p.uid() != server_uid {
                        nix::unistd::fchown(&ends.stdin, Some(p.uid().into()), None)
                            .map_err(std::io::Error::from)?;
                    }
                    opts.controlling_tty = true;
                    Ok((io, ends))
                })
            } else {
                crate::stdio::Stdio::pipes()
            };
            let (io, ends) = made.map_err(|e| {
                Status::internal(format!("making the program's {}: {e}", stdio.as_str_name()))
            })?;
            opts.stdin = Some(ends.stdin);
            opts.stdout = Some(ends.stdout);
            opts.stderr = Some(ends.stderr);
            hub.carry_stdio(io);
        }
        if p.is_in_process() {
            opts.keep_fds = stdio == pb::Stdio::Default;
            opts.cwd = (!req.cwd.is_empty()).then(|| req.cwd.into());
        } else {
            let null = |write: bool| {
                std::fs::OpenOptions::new()
                    .read(!write)
                    .write(write)
                    .open("/dev/null")
                    .map(std::os::fd::OwnedFd::from)
                    .map_err(|e| {
                        Status::internal(format!("opening /dev/null for the program's stdio: {e}"))
                    })
            };
            if stdio == pb::Stdio::Default {
                opts.stdin = Some(null(false)?);
                opts.stdout = Some(null(true)?);
                opts.stderr = Some(null(true)?);
            }
            opts.cwd = Some(if req.cwd.is_empty() {
                "/".into()
            } else {
                req.cwd.into()
            });
        }
        // The tracer's answer is awaited on a task of its own, which a
        // cancelled call does not stop: the engine is then registered and
        // undone (program killed) when nobody takes it.
        let (tracer, registry, p2) = (self.tracer.clone(), Arc::clone(&self.registry), p.clone());
        let field = field.to_string();
        let made = tokio::spawn(
            async move {
                let spawned = tracer
                    .spawn(opts, engine, options)
                    .await
                    .map_err(|e| spawn_status(e, &field))?;
                info!(pid = spawned.pid, engine = spawned.engine.0, "spawned");
                let pid = spawned.pid as u32;
                parts.register(
                    &registry,
                    spawned.engine,
                    &p2,
                    pid,
                    vec![pid],
                    session,
                    true,
                )
            }
            .in_current_span(),
        );
        made.await
            .map_err(|e| Status::internal(format!("spawning: {e}")))?
    }

    /// Attach for `p`; `field` prefixes the request's field paths in errors
    /// ("" for Attach and Trace, "attach." in a Session).
    pub(crate) async fn do_attach(
        &self,
        p: &Peer,
        pid: u32,
        spec: Option<&pb::EngineSpec>,
        field: &str,
        session: Option<u64>,
        sink: Option<SinkFn>,
    ) -> Result<NewEngine, Status> {
        if pid == 0 || pid > i32::MAX as u32 {
            return Err(Status::invalid_argument(format!(
                "{field}pid: {pid} is not a process id; give the pid to attach to"
            )));
        }
        let cfg = convert::engine_config(
            spec,
            &format!("{field}engine"),
            &SpecContext::new(&self.limits, session.is_some()),
        )?;
        let (engine, parts) = self.remote_parts(p, &cfg, sink)?;
        self.attach_engine(p, pid, field, session, engine, cfg.options, parts)
            .await
    }

    /// [`TracerService::do_attach`] with an engine made (see
    /// [`TracerService::spawn_engine`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn attach_engine(
        &self,
        p: &Peer,
        pid: u32,
        field: &str,
        session: Option<u64>,
        engine: Box<dyn utrace_engines::Engine>,
        mut options: utrace_engines::EngineOptions,
        parts: Parts,
    ) -> Result<NewEngine, Status> {
        if pid == 0 || pid > i32::MAX as u32 {
            return Err(Status::invalid_argument(format!(
                "{field}pid: {pid} is not a process id; give the pid to attach to"
            )));
        }
        options.owner = Some(Arc::clone(&p.owner));
        // The process the client names now: a later one given the same
        // pid is never attached (the engine layer checks the pidfd after
        // seizing, and the client's rights on the seized process).
        let (pidfd, leader) = utrace_engines::sys::pidfd_of(pid as i32)
            .map_err(|_| Status::not_found(format!("{field}pid: no process with pid {pid}")))?;
        let (tracer, registry, p2) = (self.tracer.clone(), Arc::clone(&self.registry), p.clone());
        let made = tokio::spawn(
            async move {
                let at = tracer
                    .attach_pidfd(pidfd, leader, engine, options)
                    .await
                    .map_err(status)?;
                info!(pid = leader, engine = at.engine.0, "attached");
                let tids = at.tids.iter().map(|t| *t as u32).collect();
                parts.register(
                    &registry,
                    at.engine,
                    &p2,
                    leader as u32,
                    tids,
                    session,
                    false,
                )
            }
            .in_current_span(),
        );
        made.await
            .map_err(|e| Status::internal(format!("attaching: {e}")))?
    }
}

impl TracerService {
    /// A remote engine for `cfg` and the parts the server keeps of it,
    /// charged to `p`.
    fn remote_parts(
        &self,
        p: &Peer,
        cfg: &convert::EngineConfig,
        sink: Option<SinkFn>,
    ) -> Result<(Box<RemoteEngine>, Parts), Status> {
        Parts::new(
            &self.registry,
            &self.tracer,
            p,
            cfg.queue_len,
            cfg.spec.clone(),
            sink,
        )
    }

    /// The local sink `req` names, taken; only the server's own process
    /// may name one.
    fn local_sink<T>(&self, p: &Peer, req: &Request<T>) -> Result<Option<SinkFn>, Status> {
        let Some(v) = req.metadata().get(SINK_METADATA) else {
            return Ok(None);
        };
        if !p.is_in_process() {
            return Err(Status::permission_denied(format!(
                "{SINK_METADATA}: only the program embedding this server may hand reports to a local sink"
            )));
        }
        let token = v
            .to_str()
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("{SINK_METADATA}: not a sink token"))
            })?;
        self.sinks.take(token).map(Some).ok_or_else(|| {
            Status::not_found(format!(
                "{SINK_METADATA}: no sink {token} (each serves one call)"
            ))
        })
    }
}

/// A terminal size from `w` (unset or zero: 24 rows of 80 columns).
fn window_size(w: Option<&pb::WindowSize>, field: &str) -> Result<(u16, u16), Status> {
    let Some(w) = w else {
        return Ok((24, 80));
    };
    let dim = |v: u32, default: u16, name: &str| match v {
        0 => Ok(default),
        v => u16::try_from(v).map_err(|_| {
            Status::invalid_argument(format!("{field}window.{name}: {v} is over 65535"))
        }),
    };
    Ok((dim(w.rows, 24, "rows")?, dim(w.cols, 80, "cols")?))
}

/// A spawn's environment, from its map or, in order, from its `KEY=VALUE`
/// list.
fn environment(
    env: std::collections::HashMap<String, String>,
    environ: Vec<String>,
    field: &str,
) -> Result<Vec<(String, String)>, Status> {
    if environ.is_empty() {
        return Ok(env.into_iter().collect());
    }
    if !env.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field}env and {field}environ are both set; give the environment once \
             (environ keeps its order)"
        )));
    }
    environ
        .into_iter()
        .enumerate()
        .map(|(i, e)| match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Status::invalid_argument(format!(
                "{field}environ[{i}]: {:?} is not KEY=VALUE",
                e.chars().take(64).collect::<String>()
            ))),
        })
        .collect()
}

/// A spawn's program must be named.
fn check_argv(argv: &[String], field: &str) -> Result<(), Status> {
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(Status::invalid_argument(format!(
            "{field}argv: empty; give the program and its arguments, e.g. [\"/bin/ls\", \"/\"]"
        )));
    }
    Ok(())
}

/// A spawn's error as a status; a working directory the request named is
/// its field's fault.
fn spawn_status(e: utrace_engines::Error, field: &str) -> Status {
    let cwd = matches!(
        e,
        utrace_engines::Error::Spawn(utrace_engines::SpawnError::Cwd { .. })
    );
    let s = status(e);
    if cwd {
        Status::new(s.code(), format!("{field}cwd: {}", s.message()))
    } else {
        s
    }
}

#[tonic::async_trait]
impl utrace_proto::server::tracer_server::Tracer for TracerService {
    async fn spawn(
        &self,
        req: Request<pb::SpawnRequest>,
    ) -> Result<Response<pb::SpawnReply>, Status> {
        let p = peer(&req)?;
        let span = span("Spawn", &p);
        async {
            let mut r = req.into_inner();
            let engine = r.engine.take();
            let e = self
                .do_spawn(&p, r, engine.as_ref(), "", "engine", None, None)
                .await?;
            let reply = pb::SpawnReply {
                pid: e.pid,
                engine_id: e.engine_id,
            };
            // The first queue waits for the client's Events call.
            let id = e.engine_id;
            self.registry.set_pending(id, e.keep());
            Ok(Response::new(reply))
        }
        .instrument(span)
        .await
    }

    async fn attach(
        &self,
        req: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::AttachReply>, Status> {
        let p = peer(&req)?;
        let span = span("Attach", &p);
        async {
            let r = req.into_inner();
            let mut e = self
                .do_attach(&p, r.pid, r.engine.as_ref(), "", None, None)
                .await?;
            let reply = pb::AttachReply {
                engine_id: e.engine_id,
                tids: std::mem::take(&mut e.tids),
            };
            let id = e.engine_id;
            self.registry.set_pending(id, e.keep());
            Ok(Response::new(reply))
        }
        .instrument(span)
        .await
    }

    async fn detach(
        &self,
        req: Request<pb::DetachRequest>,
    ) -> Result<Response<pb::DetachReply>, Status> {
        let p = peer(&req)?;
        let span = span("Detach", &p);
        async {
            let r = req.into_inner();
            let id = r.engine_id;
            self.registry.check_owner(id, &p)?;
            if r.pid != 0 {
                // One process only; the engine stays on its others (and
                // in the registry until its last is left: then its
                // session sees the stream end, as at the last death).
                self.tracer
                    .leave_process(utrace_engines::EngineId(id), r.pid as i32)
                    .await
                    .map_err(status)?;
                return Ok(Response::new(pb::DetachReply {}));
            }
            self.registry.remove(id);
            match self.tracer.detach(utrace_engines::EngineId(id)).await {
                Ok(()) | Err(utrace_engines::Error::NoSuchEngine(_)) => {}
                Err(e) => return Err(status(e)),
            }
            Ok(Response::new(pb::DetachReply {}))
        }
        .instrument(span)
        .await
    }

    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksReply>, Status> {
        let p = peer(&req)?;
        let span = span("ListTasks", &p);
        async move {
            let only = req.into_inner().pid;
            let tasks = self.tracer.tasks_now().await.map_err(status)?;
            let tasks = self.shown_tasks(&tasks, &mut Visible::new(&p, only));
            Ok(Response::new(pb::ListTasksReply { tasks }))
        }
        .instrument(span)
        .await
    }

    async fn get_activity(
        &self,
        req: Request<pb::GetActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let p = peer(&req)?;
        let span = span("GetActivity", &p);
        async move {
            let r = req.into_inner();
            let top = match r.top_syscalls {
                0 => 16,
                n if n as usize <= utrace_engines::MAX_DISTINCT_SYSCALLS => n as usize,
                n => {
                    return Err(Status::invalid_argument(format!(
                        "top_syscalls is {n}: at most {} (0 for 16)",
                        utrace_engines::MAX_DISTINCT_SYSCALLS
                    )))
                }
            };
            let act = self.tracer.activity().await.map_err(status)?;
            let mut visible = Visible::new(&p, r.pid);
            let tasks = self.shown_tasks(&act.tasks, &mut visible);
            let mut processes: Vec<pb::ProcessActivity> = act
                .procs
                .into_iter()
                .filter(|pa| visible.shows(pa.pid))
                .map(|mut pa| {
                    pa.keep_busiest(top);
                    convert::process_activity(&pa)
                })
                .collect();
            processes.sort_by_key(|pa| pa.pid);
            // The engines on the processes shown.
            let engine_ids: std::collections::BTreeSet<u64> = tasks
                .iter()
                .flat_map(|t| t.engines.iter().copied())
                .collect();
            let engines = self
                .registry
                .activity(engine_ids)
                .iter()
                .map(convert::engine_activity)
                .collect();
            Ok(Response::new(pb::Activity {
                monotonic_ns: act.monotonic_ns,
                tasks,
                processes,
                engines,
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_server_info(
        &self,
        req: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfo>, Status> {
        let p = peer(&req)?;
        let span = span("GetServerInfo", &p);
        async move {
            let tasks = self.tracer.tasks_now().await.map_err(status)?;
            let stats = self.tracer.stats().await.map_err(status)?;
            Ok(Response::new(crate::info::server_info(
                &p,
                &self.listen,
                crate::info::Counts {
                    engines: self.registry.len() as u32,
                    tasks: tasks.len() as u32,
                    uprobe_events: stats.uprobe_events as u32,
                    uprobe_rings: stats.uprobe_rings as u32,
                },
            )))
        }
        .instrument(span)
        .await
    }

    async fn batch(
        &self,
        req: Request<WireBatchRequest>,
    ) -> Result<Response<WireBatchReply>, Status> {
        let p = peer(&req)?;
        let span = span("Batch", &p);
        let started = std::time::Instant::now();
        async move {
            let r = match req.into_inner() {
                WireBatchRequest::Reads(r) => return self.read_batch(&p, r, started).await,
                WireBatchRequest::Request(r) => r,
            };
            if let Some(reads) = convert::as_reads(&r) {
                return self.read_batch(&p, reads, started).await;
            }
            let plan = self.plan_batch(&p, r)?;
            let n = plan.ops.len();
            let run = self.tracer.batch(
                plan.engine,
                plan.tid,
                plan.interrupt,
                plan.ops,
                plan.stop_on_error,
            );
            let results = self.within_batch_limit(plan.tid, run).await?;
            self.registry
                .batch_done(plan.engine.0, n, started.elapsed());
            Ok(Response::new(WireBatchReply::Reply(
                plan.reply.finish(results),
            )))
        }
        .instrument(span)
        .await
    }

    type EventsStream = BoxStream<WireEvent>;

    async fn events(
        &self,
        req: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let p = peer(&req)?;
        let span = span("Events", &p);
        async move {
            let id = req.into_inner().engine_id;
            let sub = self.registry.subscribe(id, &p)?;
            let stream: Self::EventsStream = Box::pin(EventStream::new(
                sub,
                id,
                None,
                None,
                self.limits.report_window,
                Arc::clone(&self.busy_streams),
            ));
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }

    type TraceStream = BoxStream<WireEvent>;

    async fn trace(
        &self,
        req: Request<pb::TraceRequest>,
    ) -> Result<Response<Self::TraceStream>, Status> {
        let p = peer(&req)?;
        let span = span("Trace", &p);
        async {
            let sink = self.local_sink(&p, &req)?;
            let mut r = req.into_inner();
            if sink.is_some() {
                // Nothing a sink is given is ever dropped.
                r.engine.get_or_insert_default().lossless = true;
            }
            let e = match r.target {
                Some(pb::trace_request::Target::Spawn(s)) => {
                    self.do_spawn(&p, s, r.engine.as_ref(), "spawn.", "engine", None, sink)
                        .await?
                }
                Some(pb::trace_request::Target::Pid(pid)) => {
                    self.do_attach(&p, pid, r.engine.as_ref(), "", None, sink)
                        .await?
                }
                None => {
                    return Err(Status::invalid_argument(
                        "target: missing; set spawn {argv: [...]} or pid",
                    ))
                }
            };
            let mut e = e;
            let (pid, engine_id) = (e.pid, e.engine_id);
            let first = pb::Event {
                seq: 0,
                engine_id,
                pid,
                tid: pid,
                kind: Some(pb::event::Kind::Attached(pb::Attached {
                    pid,
                    engine_id,
                    tids: std::mem::take(&mut e.tids),
                })),
                ..Default::default()
            };
            // From here the stream owns the engine (it detaches it when
            // the client goes).
            let hub = e.hub.clone();
            let mut sub = e.keep();
            let first = match hub.filter(|h| h.has_sink()) {
                Some(hub) => {
                    // Every report, `attached` first, goes to the sink; the
                    // stream only ends with the engine.
                    hub.open_sink(engine_id, first, &mut sub);
                    None
                }
                None => Some(first),
            };
            let stream: Self::TraceStream = Box::pin(EventStream::new(
                sub,
                engine_id,
                first,
                Some(Arc::clone(&self.registry)),
                self.limits.report_window,
                Arc::clone(&self.busy_streams),
            ));
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }

    async fn stdin(
        &self,
        req: Request<Streaming<pb::StdinRequest>>,
    ) -> Result<Response<pb::StdinReply>, Status> {
        let p = peer(&req)?;
        let span = span("Stdin", &p);
        async {
            let mut s = req.into_inner();
            let first = s.message().await?.ok_or_else(|| {
                Status::invalid_argument(
                    "the stream ended before its first message named an engine_id",
                )
            })?;
            let id = first.engine_id;
            let io = self.registry.hub(id, &p)?.stdio().ok_or_else(|| {
                Status::failed_precondition(format!(
                    "engine_id {id}: its program was not started with stdio STDIO_PIPES"
                ))
            })?;
            let mut written = 0u64;
            let mut next = Some(first);
            // The program reads end of file when the client's stream ends,
            // however it ends.
            let r = async {
                while let Some(m) = next {
                    match m.closed_output {
                        0 => {}
                        fd @ (1 | 2) => io.close_output(fd),
                        fd => {
                            return Err(Status::invalid_argument(format!(
                                "closed_output: {fd} is not an output; 1 is stdout, 2 stderr"
                            )))
                        }
                    }
                    if let Some(w) = &m.window {
                        let (rows, cols) = window_size(Some(w), "")?;
                        if let Err(e) = io.resize(rows, cols) {
                            debug!(%e, "resizing the program's terminal");
                        }
                    }
                    match io.write_stdin(&m.data, m.close).await {
                        Ok(()) => written += m.data.len() as u64,
                        // The program closed it: what comes is not read.
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                        Err(e) => {
                            return Err(Status::internal(format!(
                                "writing the program's stdin: {e}"
                            )))
                        }
                    }
                    next = s.message().await?;
                }
                Ok(())
            }
            .await;
            let _ = io.write_stdin(&[], true).await;
            r.map(|()| Response::new(pb::StdinReply { written }))
        }
        .instrument(span)
        .await
    }

    type ProbeStream = BoxStream<pb::ProbeReport>;

    async fn probe(
        &self,
        req: Request<pb::ProbeRequest>,
    ) -> Result<Response<Self::ProbeStream>, Status> {
        let p = peer(&req)?;
        let span = span("Probe", &p);
        crate::probe::start(self, p, req.into_inner())
            .instrument(span)
            .await
    }

    type SessionStream = BoxStream<pb::ServerMessage>;

    async fn session(
        &self,
        req: Request<Streaming<pb::ClientMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let p = peer(&req)?;
        let span = span("Session", &p);
        let stream = crate::session::start(self.me()?, p, req.into_inner(), span);
        Ok(Response::new(stream))
    }

    type ReadMemoryStreamStream = BoxStream<pb::MemoryChunk>;

    async fn read_memory_stream(
        &self,
        req: Request<pb::ReadMemoryStreamRequest>,
    ) -> Result<Response<Self::ReadMemoryStreamStream>, Status> {
        let p = peer(&req)?;
        let span = span("ReadMemoryStream", &p);
        async move {
            let r = req.into_inner();
            let (end, chunk_len) = convert::memory_stream(&r, &self.limits)?;
            let pid = self.registry.owned_pid(r.engine_id, &p)?;
            // Chunks read ahead, the one being sent, and the one being read.
            let in_flight = (chunk_len as usize).saturating_mul(READ_AHEAD + 2);
            let bytes = self.registry.budgets.batch_bytes(&p, in_flight)?;
            let tid = if r.tid == 0 { pid } else { r.tid } as i32;
            let engine = utrace_engines::EngineId(r.engine_id);
            // The reader runs ahead of the sender by up to READ_AHEAD chunks:
            // the next chunk is read while the last one is encoded and sent.
            let (tx, rx) = mpsc::channel(READ_AHEAD);
            let tracer = self.tracer.clone();
            let limit = self.limits.batch_timeout;
            tokio::spawn(
                async move {
                    let _bytes = bytes;
                    let mut addr = r.addr;
                    while addr < end {
                        let len = chunk_len.min(end - addr) as usize;
                        let read = read_ranges(
                            &tracer,
                            engine,
                            tid,
                            r.interrupt,
                            vec![(addr, len)],
                            limit,
                        )
                        .await;
                        let chunk = match read {
                            Ok((_, read)) => {
                                let got = read.got.and_then(|g| g.first().copied());
                                let mut data = read.buf;
                                let error = match got {
                                    Some(g) => {
                                        data.truncate(g.len);
                                        g.error.map(|e| e.to_string()).unwrap_or_default()
                                    }
                                    None => String::new(),
                                };
                                Ok(pb::MemoryChunk {
                                    addr,
                                    data: data.into(),
                                    error,
                                })
                            }
                            Err(e) if e.code() == tonic::Code::DeadlineExceeded => {
                                Err(read_timed_out(tid, limit, addr))
                            }
                            Err(e) => Err(e),
                        };
                        let last = chunk.as_ref().map_or(true, |c| !c.error.is_empty());
                        if tx.send(chunk).await.is_err() || last {
                            // The client is gone, or the read ended.
                            break;
                        }
                        addr += len as u64;
                    }
                }
                .in_current_span(),
            );
            let stream: Self::ReadMemoryStreamStream =
                Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }
}

/// Bytes a batch's ops move (reads, strings, writes).
fn moved_bytes(ops: &[utrace_engines::batch::Op]) -> usize {
    use utrace_engines::batch::Op;
    ops.iter()
        .map(|op| match op {
            Op::ReadMemory { len, .. } => *len,
            Op::ReadString { max_len, .. } => *max_len,
            Op::WriteMemory { data, .. } => data.len(),
            _ => 0,
        })
        .fold(0, usize::saturating_add)
}

/// Chunks a ReadMemoryStream reads ahead of what the client has taken.
const READ_AHEAD: usize = 4;

/// Reads of at most this many bytes in all may run on an async worker
/// thread (about 0.3 ms per MiB here); larger ones go to a blocking thread.
const INLINE_READ: usize = 1 << 20;

/// Read `ranges` of `tid` for `engine`: from this process's own threads if
/// the engine layer allows it now (the task is stopped and was read before:
/// `Tracer::read_scatter_now`), else on the tracer thread within `limit`
/// (which also stops a running task first, with `interrupt`). Gives the
/// ranges back with the bytes.
pub(crate) async fn read_ranges(
    tracer: &Tracer,
    engine: utrace_engines::EngineId,
    tid: i32,
    interrupt: bool,
    ranges: Vec<(u64, usize)>,
    limit: Duration,
) -> Result<(Vec<(u64, usize)>, utrace_engines::ScatterRead), Status> {
    let total = ranges.iter().fold(0usize, |a, r| a.saturating_add(r.1));
    let (ranges, now) = if total <= INLINE_READ {
        let now = tracer.read_scatter_now(engine, tid, &ranges);
        (ranges, now)
    } else {
        let t = tracer.clone();
        tokio::task::spawn_blocking(move || {
            let now = t.read_scatter_now(engine, tid, &ranges);
            (ranges, now)
        })
        .await
        .map_err(|e| Status::internal(format!("reading memory of thread {tid}: {e}")))?
    };
    if let Some(read) = now {
        return Ok((ranges, read));
    }
    let run = tracer.read_scatter(engine, tid, interrupt, ranges.clone());
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(read)) => Ok((ranges, read)),
        Ok(Err(e)) => Err(status(e)),
        Err(_) => Err(batch_timed_out(tid, limit)),
    }
}

fn read_timed_out(tid: i32, limit: std::time::Duration, addr: u64) -> Status {
    Status::deadline_exceeded(format!(
        "thread {tid} did not stop within the batch time limit ({limit:?}); it may be in an uninterruptible sleep. The read stopped at {addr:#x}."
    ))
}
