//! The tracer thread and its handle.
//!
//! One dedicated OS thread owns every attachment (ptrace requests must come
//! from the thread that seized the tracee). It sleeps in the kernel's wait
//! for its tracees (`wait4(-1, __WALL|__WNOTHREAD)`, as strace does), which a
//! command sender interrupts; or, while it watches uprobe rings or has no
//! tracee, in `epoll_wait` on its own eventfd ([`crate::sys::Waker`] says
//! how each is woken without a wake-up lost). On each wake-up it runs queued
//! commands, then handles the stop it took, or reaps every pending stop. It
//! polls on a timer only while uprobe rings need it, and never blocks on a
//! client.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info_span, warn};

use crate::attach::{self, Attached};
use crate::batch::{self, Op, OpResult};
use crate::core::{Core, TaskInfo, TracerStats};
use crate::engine::{Action, Engine, EngineId, EngineOptions};
use crate::error::{Error, Result};
use crate::event::{EventMask, SyscallSet};
use crate::gate::Gates;
use crate::spawn::{self, SpawnOptions, Spawned};
use crate::sys::{self, ChildWait, RemoteWaker, Tid, Waker, Woken};
use crate::task::ScatterRead;
use crate::task::Task;

type Command = Box<dyn FnOnce(&mut Core) + Send>;

/// Commands queued for the tracer thread at most; senders wait beyond it.
const COMMAND_QUEUE: usize = 1024;
/// How long shutdown waits for running tasks to reach a stop and detach.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Options for a tracer thread.
#[derive(Clone, Debug, Default)]
pub struct TracerOptions {
    /// Name of the thread (default `utrace-tracer`).
    pub thread_name: Option<String>,
    /// Record breakpoint changes for a keeper process, which restores the
    /// bytes if this tracer dies ([`crate::journal::start_keeper`]).
    pub journal: Option<Arc<crate::journal::Journal>>,
}

/// A handle to one tracer thread: cheap to clone, `Send`, usable from async
/// code (`.await` any call) and from plain threads (`.wait()`).
///
/// When the last handle is dropped (or on [`Tracer::shutdown`]) the thread
/// detaches every engine and task, and kills programs that were spawned with
/// kernel-side filtering (they cannot run untraced), then exits.
#[derive(Clone)]
pub struct Tracer {
    tx: mpsc::Sender<Command>,
    waker: RemoteWaker,
    tid: Tid,
    /// Gates of threads read lately, for reads from the calling thread
    /// ([`Tracer::read_scatter_now`]).
    gates: Arc<Gates>,
    /// The task list as last published, for [`Tracer::tasks_now`].
    snapshot: Arc<TaskSnapshot>,
}

/// The task list as the tracer thread last made it, and the generation of
/// the tracer's state: the thread counts a new generation before it
/// handles any stop or command, so a list of the current generation is
/// what the thread would answer now.
#[derive(Default)]
pub(crate) struct TaskSnapshot {
    generation: AtomicU64,
    published: std::sync::Mutex<Option<(u64, Vec<TaskInfo>)>>,
}

impl TaskSnapshot {
    /// The tracer thread is about to change something.
    pub(crate) fn changing(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Vec<TaskInfo>)>> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// On the tracer thread: `tasks` is the state now.
    fn publish(&self, tasks: &[TaskInfo]) {
        let generation = self.generation.load(Ordering::SeqCst);
        *self.lock() = Some((generation, tasks.to_vec()));
    }

    /// The thread is gone: no list is current any more.
    fn withdraw(&self) {
        self.changing();
        *self.lock() = None;
    }

    /// The published list, if nothing changed since it was made.
    fn current(&self) -> Option<Vec<TaskInfo>> {
        let published = self.lock();
        let (generation, tasks) = published.as_ref()?;
        (*generation == self.generation.load(Ordering::SeqCst)).then(|| tasks.to_vec())
    }
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").field("thread", &self.tid).finish()
    }
}

/// A request to the tracer thread: `.await` it, or `.wait()` from a thread
/// that is not running an async runtime.
#[must_use = "a request does nothing until awaited or waited on"]
pub struct Request<R> {
    tracer: Tracer,
    cmd: Command,
    rx: oneshot::Receiver<Result<R>>,
}

impl<R: Send + 'static> Request<R> {
    /// Block the calling thread until the tracer answers. Panics if called
    /// from inside an async runtime: `.await` the request there.
    pub fn wait(self) -> Result<R> {
        self.tracer
            .tx
            .blocking_send(self.cmd)
            .map_err(|_| Error::TracerGone)?;
        self.tracer.waker.wake();
        self.rx.blocking_recv().map_err(|_| Error::TracerGone)?
    }
}

impl<R: Send + 'static> Request<R> {
    /// Queue the request now (waiting only for room in the command queue)
    /// and return its answer to await later. Requests submitted one after
    /// another run in that order, so a caller can pipeline them.
    pub async fn submit(self) -> Result<Answer<R>> {
        self.tracer
            .tx
            .send(self.cmd)
            .await
            .map_err(|_| Error::TracerGone)?;
        self.tracer.waker.wake();
        Ok(Answer(self.rx))
    }
}

/// The answer of a [`Request::submit`]ted request; `.await` it.
pub struct Answer<R>(oneshot::Receiver<Result<R>>);

impl<R: Send + 'static> IntoFuture for Answer<R> {
    type Output = Result<R>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<R>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.0.await.map_err(|_| Error::TracerGone)? })
    }
}

impl<R: Send + 'static> IntoFuture for Request<R> {
    type Output = Result<R>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<R>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.submit().await?.await })
    }
}

/// The answer to one request, sent from the tracer thread.
pub(crate) struct Reply<R>(oneshot::Sender<Result<R>>);

impl<R> Reply<R> {
    pub(crate) fn send(self, r: Result<R>) {
        let _ = self.0.send(r);
    }

    /// The caller stopped waiting (its future was dropped, or it timed out).
    pub(crate) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl Tracer {
    /// Start a tracer thread.
    ///
    /// A program embedding a tracer may block SIGCHLD in its other
    /// threads ([`Waker::block_sigchld`] first thing in `main`, before
    /// other threads start; `utraced` and `utrace` do): the tracer needs
    /// no SIGCHLD while it waits for its tracees, and a thread that takes
    /// one is woken at every stop. Programs it then starts with
    /// `std::process::Command` inherit the blocked SIGCHLD (std does not
    /// reset the mask), which breaks those that wait for it (gdbserver
    /// does): such a program leaves SIGCHLD alone. The tracer's own
    /// spawns start with an empty mask.
    ///
    /// The library installs two process-wide signal handlers: SIGCHLD's
    /// (chained to one installed before it) and `SIGSTKFLT`'s, the signal
    /// that interrupts a tracer thread's wait for its tracees
    /// ([`crate::sys::Waker`]). A program embedding a tracer leaves
    /// `SIGSTKFLT` to it.
    pub fn new() -> Result<Tracer> {
        Self::with_options(TracerOptions::default())
    }

    /// Start a tracer thread with options.
    pub fn with_options(opts: TracerOptions) -> Result<Tracer> {
        check_kernel()?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let journal = opts.journal.clone();
        let snapshot = Arc::new(TaskSnapshot::default());
        let published = Arc::clone(&snapshot);
        std::thread::Builder::new()
            .name(opts.thread_name.unwrap_or_else(|| "utrace-tracer".into()))
            .spawn(move || {
                let waker = match Waker::new() {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Start(e.to_string())));
                        return;
                    }
                };
                let tid = nix::unistd::gettid().as_raw();
                let _ = ready_tx.send(Ok((waker.remote(), tid)));
                run(rx, waker, journal, published);
            })
            .map_err(|e| Error::Start(e.to_string()))?;
        let (waker, tid) = ready_rx
            .recv()
            .map_err(|_| Error::Start("tracer thread exited during start-up".into()))??;
        Ok(Tracer {
            tx,
            waker,
            tid,
            gates: Arc::default(),
            snapshot,
        })
    }

    /// The tracer thread's tid (tracees report it as their `TracerPid`).
    pub fn thread_id(&self) -> Tid {
        self.tid
    }

    fn request<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core, Reply<R>) + Send + 'static,
    ) -> Request<R> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply(tx);
        Request {
            tracer: self.clone(),
            cmd: Box::new(move |core| f(core, reply)),
            rx,
        }
    }

    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<R> + Send + 'static,
    ) -> Request<R> {
        self.request(move |core, reply| reply.send(f(core)))
    }

    /// Start a program traced by a new engine. Answers once the program has
    /// exec'd (or failed to). See [`SpawnOptions::kernel_filter`] for what
    /// kernel-side filtering means for the program's life.
    pub fn spawn(
        &self,
        opts: SpawnOptions,
        engine: Box<dyn Engine>,
        eopts: EngineOptions,
    ) -> Request<Spawned> {
        self.request(move |core, reply: Reply<Spawned>| {
            spawn::spawn(core, opts, engine, eopts, Box::new(move |r| reply.send(r)))
        })
    }

    /// Attach a new engine to a running process (all its threads), seizing it
    /// with `PTRACE_SEIZE` unless this tracer traces it already. The
    /// process is the one `pid` names now, when this is called (a pidfd is
    /// taken here): if it exits before the seize, nothing is attached,
    /// whoever has its pid by then. With [`EngineOptions::owner`], the
    /// owner's rights are checked ([`crate::access::check`]).
    pub fn attach(
        &self,
        pid: Tid,
        engine: Box<dyn Engine>,
        eopts: EngineOptions,
    ) -> Request<Attached> {
        let pidfd = sys::pidfd_of(pid);
        self.call(move |core| match pidfd {
            Ok((fd, leader)) => attach::attach(core, leader, &fd, engine, eopts),
            Err(_) => Err(crate::AttachError::NoSuchProcess { pid }.into()),
        })
    }

    /// [`Tracer::attach`] to the process `pidfd` names, whose pid is `pid`
    /// ([`sys::pidfd_of`] gives both for a pid or thread id).
    pub fn attach_pidfd(
        &self,
        pidfd: std::os::fd::OwnedFd,
        pid: Tid,
        engine: Box<dyn Engine>,
        eopts: EngineOptions,
    ) -> Request<Attached> {
        self.call(move |core| attach::attach(core, pid, &pidfd, engine, eopts))
    }

    /// Detach an engine from every task. The last engine to leave a process
    /// detaches ptrace from it; the process runs on as if never traced.
    pub fn detach(&self, engine: EngineId) -> Request<()> {
        self.call(move |core| {
            core.check_engine(engine)?;
            core.detach_engine(engine);
            Ok(())
        })
    }

    /// Take `engine` off process `pid` alone: its holds, waiters, steps,
    /// breakpoints and watchpoints there go (the process runs on if no
    /// other engine holds it), and it stays on its other processes; the
    /// last one left, it is detached. A debugger following one side of a
    /// fork leaves the other this way.
    pub fn leave_process(&self, engine: EngineId, pid: Tid) -> Request<()> {
        self.call(move |core| core.leave_process(engine, pid))
    }

    /// Kill process `pid` (SIGKILL), which `engine` traces: for a program
    /// started for a caller that went away. Refused if `engine` does not
    /// trace it (any more); while it is traced its pid cannot be reused, so
    /// the signal reaches that process and no other.
    pub fn kill(&self, engine: EngineId, pid: Tid) -> Request<()> {
        self.call(move |core| core.kill(engine, pid))
    }

    /// Act on a task as `engine`: release its hold (`Resume`), hold it
    /// (`Stop`; a running task is interrupted and held at its next stop),
    /// single-step it, or detach the engine.
    pub fn control(&self, engine: EngineId, tid: Tid, action: Action) -> Request<()> {
        self.call(move |core| core.control(engine, tid, action))
    }

    /// Deliver to `engine` every uprobe hit recorded or counted so far in
    /// its processes (counting events are read only when asked: before a
    /// snapshot of what an engine aggregates, say).
    pub fn flush_counts(&self, engine: EngineId) -> Request<()> {
        self.call(move |core| core.flush_counts(engine))
    }

    /// Stop a running task soon and call `engine`'s `report_quiesce` there.
    pub fn interrupt(&self, engine: EngineId, tid: Tid) -> Request<()> {
        self.call(move |core| core.request_quiesce(engine, tid))
    }

    /// Run `f` on the tracer thread while `tid` is stopped. If it is running:
    /// with `interrupt`, stop it (`PTRACE_INTERRUPT`), run `f` at that stop
    /// and let it go again unless some engine holds it; without, fail with
    /// [`Error::NotStopped`]. `f` must not call back into this tracer. If
    /// the caller gave up before the stop (dropped the request, e.g. timed
    /// out waiting), `f` never runs: nothing acts on a task for a caller
    /// that is no longer there.
    pub fn with_stopped<R, F>(
        &self,
        engine: EngineId,
        tid: Tid,
        interrupt: bool,
        f: F,
    ) -> Request<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Task<'_>) -> R + Send + 'static,
    {
        self.request(move |core, reply: Reply<R>| {
            core.with_stopped(
                engine,
                tid,
                interrupt,
                Box::new(move |task| {
                    if !reply.is_closed() {
                        reply.send(task.map(f));
                    }
                }),
            );
            // A task stopped by the interrupt is resumed by the normal path.
        })
    }

    /// Run a batch of ops on `tid` as `engine`, in order, while it is held
    /// (see [`crate::batch`]). With `interrupt`, a running task is stopped
    /// for the batch and let go after it (unless some engine holds it).
    pub fn batch(
        &self,
        engine: EngineId,
        tid: Tid,
        interrupt: bool,
        ops: Vec<Op>,
        stop_on_error: bool,
    ) -> Request<Vec<OpResult>> {
        self.with_stopped(engine, tid, interrupt, move |task| {
            let (results, after) = batch::run(task, ops, stop_on_error);
            task.push_after(after);
            results
        })
    }

    /// Read many ranges of `tid`'s memory into one buffer, as a batch of
    /// only `ReadMemory` ops would (same stop, hold and `interrupt` rules as
    /// [`Tracer::batch`]), without a result per range: for callers that
    /// encode the bytes straight from the buffer.
    pub fn read_scatter(
        &self,
        engine: EngineId,
        tid: Tid,
        interrupt: bool,
        ranges: Vec<(u64, usize)>,
    ) -> Request<ScatterRead> {
        let gates = Arc::clone(&self.gates);
        self.with_stopped(engine, tid, interrupt, move |task| {
            // Later reads of this thread may not need this trip.
            gates.remember(tid, Arc::clone(&task.state.gate));
            task.read_scatter_buf(&ranges)
        })
    }

    /// [`Tracer::read_scatter`] done by the calling thread, with no trip to
    /// the tracer thread, when it can be: `tid` is stopped now, `engine` is
    /// attached to it, `tid` was read through [`Tracer::read_scatter`]
    /// before (which lets this call find it), and every byte arrives. The
    /// answer is then the one the tracer thread would have given (same
    /// bytes, breakpoints hidden); the task cannot be resumed, and the
    /// tracer cannot write its memory or change its breakpoints, without
    /// this call noticing and giving up. `None` otherwise: call
    /// [`Tracer::read_scatter`], which answers it the ordinary way, errors
    /// included.
    ///
    /// It blocks for as long as the reads take (about 0.2 ms for 1,000
    /// small ranges, 0.3 ms per MiB here): keep large reads off async
    /// executor threads.
    pub fn read_scatter_now(
        &self,
        engine: EngineId,
        tid: Tid,
        ranges: &[(u64, usize)],
    ) -> Option<ScatterRead> {
        self.gates.read(engine, tid, ranges)
    }

    /// Decide a report `engine` holds `tid` at: at the stop identified by
    /// `stop_id` ([`Task::stop_id`] at the report), run `ops`, then
    /// `verdict`'s syscall change, then its action. Fails with
    /// [`Error::StopGone`] when the task has left that stop (killed, or
    /// released by someone else), so a late decision never acts on a later
    /// stop.
    pub fn decide(
        &self,
        engine: EngineId,
        tid: Tid,
        stop_id: u64,
        ops: Vec<Op>,
        stop_on_error: bool,
        verdict: Verdict,
    ) -> Request<Decided> {
        self.request(move |core, reply: Reply<Decided>| {
            core.with_stopped(
                engine,
                tid,
                false,
                Box::new(move |task| {
                    let r = match task {
                        Err(Error::NotStopped(tid)) => Err(Error::StopGone { tid }),
                        Err(e) => Err(e),
                        Ok(task) if task.stop_id() != stop_id => {
                            Err(Error::StopGone { tid: task.tid() })
                        }
                        Ok(task) => Ok(decide_at(task, ops, stop_on_error, verdict)),
                    };
                    if let Err(e) = &r {
                        debug!(%engine, tid, error = %e, "decision not applied");
                    }
                    reply.send(r);
                }),
            );
        })
    }

    /// Replace `engine`'s event mask and syscall set from outside.
    pub fn set_events(
        &self,
        engine: EngineId,
        events: EventMask,
        syscalls: SyscallSet,
    ) -> Request<()> {
        self.call(move |core| core.set_events(engine, events, syscalls))
    }

    /// Every traced thread, with its state, mode, engines and holds.
    pub fn tasks(&self) -> Request<Vec<TaskInfo>> {
        self.call(|core| {
            let tasks = core.task_infos();
            core.snapshot.publish(&tasks);
            Ok(tasks)
        })
    }

    /// [`Tracer::tasks`], without waking the tracer thread when it has
    /// handled no stop and run no command since it last answered one:
    /// that answer is still the state (a `ps` of idle programs costs the
    /// tracer nothing). Otherwise it asks, as [`Tracer::tasks`].
    pub async fn tasks_now(&self) -> Result<Vec<TaskInfo>> {
        if let Some(tasks) = self.snapshot.current() {
            return Ok(tasks);
        }
        self.tasks().await
    }

    /// The traced tasks with their stop counters, and each traced
    /// process's syscalls, unsorted ([`crate::ProcActivity::keep_busiest`]
    /// sorts them, off the tracer thread).
    pub fn activity(&self) -> Request<crate::activity::Activity> {
        self.call(|core| Ok(core.activity()))
    }

    /// Counters of the tracer thread's work so far.
    pub fn stats(&self) -> Request<TracerStats> {
        let gates = Arc::clone(&self.gates);
        self.call(move |core| {
            let mut stats = core.stats;
            stats.reads_now = gates.direct.load(Ordering::Relaxed);
            stats.reads_routed = gates.routed.load(Ordering::Relaxed);
            for p in core.procs.values() {
                let (events, rings) = p.breakpoints.probes.open();
                stats.uprobe_events += events as u64;
                stats.uprobe_rings += rings as u64;
            }
            Ok(stats)
        })
    }

    /// Detach everything and stop the thread (as dropping every handle does).
    pub fn shutdown(&self) -> Request<()> {
        self.call(|core| {
            core.shutting_down = true;
            core.shutdown();
            Ok(())
        })
    }
}

fn check_kernel() -> Result<()> {
    let release = sys::kernel_release();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if (major, minor) < (5, 3) {
        return Err(Error::KernelTooOld { release });
    }
    Ok(())
}

/// How often the tracer thread drains uprobe rings that have not filled
/// half way, while hits come: the longest a hit waits to be reported then.
const PROBE_POLL_MS: i32 = 5;
/// ... and at most, once they stop coming: each drain that finds nothing
/// doubles the interval up to this, the first hit after a quiet spell
/// brings it back to [`PROBE_POLL_MS`]. A probe on a quiet program wakes
/// the thread 20 times a second, not 200.
const PROBE_POLL_QUIET_MS: i32 = 50;

fn run(
    mut rx: mpsc::Receiver<Command>,
    waker: Waker,
    journal: Option<Arc<crate::journal::Journal>>,
    snapshot: Arc<TaskSnapshot>,
) {
    let _span = info_span!("tracer").entered();
    let mut core = Core::new();
    if let Some(j) = &journal {
        j.watch_thread(nix::unistd::gettid().as_raw());
    }
    core.journal = journal;
    core.snapshot = snapshot;
    match waker.epoll() {
        Ok(ep) => core.epoll = Some(ep),
        Err(e) => warn!(%e, "no epoll for uprobe rings: every breakpoint is an int3"),
    }
    let mut closed = false;
    // How long the last wait for a stop slept (a short one: the next is
    // looked for first, see `look_for_stop`).
    let mut last_sleep = Duration::MAX;
    // A stop the last sleep took, to handle now; or one it found waiting.
    let mut taken = None;
    let mut peeked = None;
    // The rings' drain interval now (see PROBE_POLL_QUIET_MS).
    let mut probe_poll = PROBE_POLL_MS;
    loop {
        let mark = waker.mark();
        closed |= drain(&mut rx, &mut core);
        // Commands sent while a stop is handled (by an engine's callback)
        // run before the next stop is taken: a hold asked for a running
        // thread's next stop is in place when that stop comes, however
        // soon.
        match taken.take() {
            Some(ws) => {
                handle(&mut core, ws);
                closed |= drain(&mut rx, &mut core);
            }
            None => reap(&mut core, peeked.take(), &mut |core| {
                closed |= drain(&mut rx, core)
            }),
        }
        // Uprobe hits after the stops (a hot probe must not delay them;
        // each thread's hits are taken at its stops anyway, first).
        if core.probing() {
            core.snapshot.changing();
            if core.deliver_all_hits() > 0 {
                probe_poll = PROBE_POLL_MS;
            }
        }
        core.resolve_conflicts();
        if closed || core.shutting_down {
            break;
        }
        // Rings wake us only when half full: look at them every 5 ms while
        // hits come, less often when they do not; and while a uprobe/int3
        // conflict is open, every 5 ms at the int3s it may erase.
        let conflicts = crate::uprobe::conflicts_open();
        let poll = core.probing() || conflicts;
        if poll || core.tasks.is_empty() {
            let timeout = if !poll {
                -1
            } else if conflicts {
                PROBE_POLL_MS
            } else {
                probe_poll
            };
            waker.wait(mark, timeout);
            probe_poll = (probe_poll * 2).min(PROBE_POLL_QUIET_MS);
            continue;
        }
        // While an int3 of ours is in some program, a SIGTRAP stop is
        // looked at before it is taken (see `Core::before_taking`): the
        // sleep only waits for a stop, and the reap takes it.
        let how = if crate::breakpoint::int3s_placed() {
            ChildWait::Peek
        } else {
            ChildWait::Take {
                rusage: core.system_times(),
            }
        };
        let woken = match look_for_stop(&waker, mark, how, last_sleep) {
            Some(w) => {
                last_sleep = Duration::ZERO;
                w
            }
            None => {
                let slept = Instant::now();
                let w = waker.wait_tracees(mark, how);
                last_sleep = slept.elapsed();
                w
            }
        };
        match woken {
            Woken::Taken(ws) => taken = Some(ws),
            Woken::Ready(tid, stop) => peeked = Some((tid, stop)),
            Woken::Kicked => {}
            // Spawns and attaches still starting (not yet tasks) are
            // waited for by their own commands.
            Woken::NoChildren => waker.wait(mark, -1),
            Woken::Failed(e) => {
                warn!(%e, "waiting for tracees failed");
                waker.wait(mark, PROBE_POLL_MS);
            }
        }
    }
    // Shutdown: detach all, then give running tasks a bounded time to stop
    // and be detached.
    core.snapshot.withdraw();
    core.shutdown();
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !core.is_idle() && Instant::now() < deadline {
        reap(&mut core, None, &mut |_| {});
        if core.is_idle() {
            break;
        }
        waker.wait(waker.mark(), 100);
        // Commands that arrive now get TracerGone when their reply is dropped.
        while let Ok(cmd) = rx.try_recv() {
            drop(cmd);
        }
    }
    if !core.is_idle() {
        warn!(
            tasks = core.tasks.len(),
            "tracer exiting with tasks still attached; the kernel detaches them"
        );
    }
    // Every uprobe event closes (on the closer threads), and the tracefs
    // uprobes they used are deleted after them; a program that must not
    // end before that waits with `tracefs_wait_deleted` (the server does).
    drop(core);
    debug!("tracer thread exits");
}

/// How long the tracer thread looks for its tracees' next stop before it
/// sleeps, when the last sleep was at most [`LOOK_WHEN`]:
/// `UTRACE_LOOK_US` from the environment (0: never look; at most 1000),
/// or else the process's default ([`set_default_look`]; 60 µs unless the
/// program changed it).
fn look() -> Duration {
    static FROM_ENV: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    FROM_ENV
        .get_or_init(|| look_from_env(std::env::var("UTRACE_LOOK_US").ok().as_deref()))
        .unwrap_or_else(|| Duration::from_micros(DEFAULT_LOOK_US.load(Ordering::Relaxed)))
}

/// The look's length when the environment does not say, in microseconds.
static DEFAULT_LOOK_US: AtomicU64 = AtomicU64::new(60);

/// Make `look` (at most 1 ms) the tracer threads' look in this process
/// when `UTRACE_LOOK_US` does not say otherwise: longer for a program
/// whose exchanges come a few hundred microseconds apart, such as a
/// debugger's stop, step and resume (`utrace gdb`), where the default
/// suits a tracer that must stay cheap beside a busy program. Tracers
/// already running take it at their next look.
pub fn set_default_look(look: Duration) {
    let us = look.as_micros().min(1000) as u64;
    DEFAULT_LOOK_US.store(us, Ordering::Relaxed);
}

/// The look's length for an `UTRACE_LOOK_US` value (microseconds, at
/// most 1000); `None` (the default) without one, or with one that is not
/// a number.
fn look_from_env(v: Option<&str>) -> Option<Duration> {
    match v.map(|v| v.trim().parse::<u64>()) {
        None => None,
        Some(Ok(us)) => Some(Duration::from_micros(us.min(1000))),
        Some(Err(_)) => {
            warn!("UTRACE_LOOK_US is not a number of microseconds; the look keeps its default");
            None
        }
    }
}
const LOOK_WHEN: Duration = Duration::from_micros(300);

/// The next stop (or a kick), looked for for [`look`] without sleeping,
/// yielding the CPU between looks (a tracee on this CPU may run then):
/// while stops come close together, a stop that comes within the look is
/// taken without the thread sleeping and being woken. `None`: nothing came (or stops are far apart
/// and nothing was looked for); sleep.
fn look_for_stop(waker: &Waker, mark: u64, how: ChildWait, last_sleep: Duration) -> Option<Woken> {
    let budget = look();
    if last_sleep > LOOK_WHEN || budget.is_zero() {
        return None;
    }
    let start = Instant::now();
    loop {
        if waker.mark() != mark {
            return Some(Woken::Kicked);
        }
        let found = match how {
            ChildWait::Take { rusage } => sys::wait_any_nohang(rusage).map(|w| w.map(Woken::Taken)),
            ChildWait::Peek => {
                sys::peek_any_nohang().map(|p| p.map(|(tid, stop)| Woken::Ready(tid, stop)))
            }
        };
        match found {
            Ok(Some(w)) => return Some(w),
            Ok(None) => {}
            Err(_) => return None,
        }
        if start.elapsed() >= budget {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Run the commands waiting; whether the sending side is gone.
fn drain(rx: &mut mpsc::Receiver<Command>, core: &mut Core) -> bool {
    loop {
        match rx.try_recv() {
            Ok(cmd) => {
                core.snapshot.changing();
                cmd(core)
            }
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
}

/// Take every stop waiting, calling `between` after each; `first`: the
/// stop the sleep found waiting (looked at already).
fn reap(
    core: &mut Core,
    mut first: Option<(Tid, Option<i32>)>,
    between: &mut dyn FnMut(&mut Core),
) {
    loop {
        // While an int3 of ours is in some program, a SIGTRAP stop is looked
        // at before the wait takes it (see `Core::before_taking`).
        let taken = if crate::breakpoint::int3s_placed() {
            // (A command run since the sleep may have let its task go.)
            let peek = match first.take() {
                Some(p) if core.tasks.contains_key(&p.0) => Ok(Some(p)),
                _ => sys::peek_any_nohang(),
            };
            match peek {
                Ok(Some((tid, stop))) => {
                    if stop == Some(libc::SIGTRAP) {
                        core.before_taking(tid);
                    }
                    sys::wait_pid_with(tid, libc::WNOHANG, core.system_times())
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            sys::wait_any_nohang(core.system_times())
        };
        match taken {
            Ok(Some(ws)) => {
                handle(core, ws);
                between(core);
            }
            Ok(None) => break,
            Err(e) => {
                warn!(%e, "waitpid failed");
                break;
            }
        }
    }
}

/// Handle one stop taken by a wait.
fn handle(core: &mut Core, ws: sys::WaitStatus) {
    core.snapshot.changing();
    core.stime_us = ws.stime_us;
    core.on_wait(ws.tid, ws.status);
}

/// The end of a decision (see [`Tracer::decide`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What this engine wants done with the task.
    pub action: Action,
    /// At a signal stop: the signal to deliver instead (0 suppresses it; a
    /// suppression by any engine stands).
    pub signal: Option<i32>,
    /// At a syscall entry: skip the call, the task sees this value; at an
    /// exit: the value the task sees instead of the real one.
    pub syscall_return: Option<i64>,
}

/// What a decision did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// One result per op.
    pub results: Vec<OpResult>,
    /// The syscall change failed (the action was applied regardless).
    pub syscall_error: Option<crate::batch::OpError>,
}

fn decide_at(task: &mut Task<'_>, ops: Vec<Op>, stop_on_error: bool, verdict: Verdict) -> Decided {
    let (results, after) = batch::run(task, ops, stop_on_error);
    task.push_after(after);
    let syscall_error = verdict.syscall_return.and_then(|value| {
        task.set_syscall_result(value)
            .err()
            .map(crate::batch::OpError::from)
    });
    task.push_after(batch::AfterBatch {
        action: Some(verdict.action),
        signal: verdict.signal,
    });
    Decided {
        results,
        syscall_error,
    }
}

#[cfg(test)]
mod look_tests {
    use super::{look, look_from_env, set_default_look};
    use std::time::Duration;

    #[test]
    fn the_program_sets_the_default_look() {
        if std::env::var_os("UTRACE_LOOK_US").is_none() {
            assert_eq!(look(), Duration::from_micros(60));
            set_default_look(Duration::from_micros(300));
            assert_eq!(look(), Duration::from_micros(300));
            set_default_look(Duration::from_secs(1));
            assert_eq!(look(), Duration::from_micros(1000));
            set_default_look(Duration::from_micros(60));
        }
    }

    #[test]
    fn the_environment_gives_the_look_or_leaves_the_default() {
        assert_eq!(look_from_env(None), None);
        assert_eq!(look_from_env(Some("0")), Some(Duration::ZERO));
        assert_eq!(
            look_from_env(Some(" 250 ")),
            Some(Duration::from_micros(250))
        );
        assert_eq!(
            look_from_env(Some("99999")),
            Some(Duration::from_micros(1000))
        );
        assert_eq!(look_from_env(Some("fast")), None);
    }
}
