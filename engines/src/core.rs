//! The core: every traced task and attached engine, owned by the tracer
//! thread. It decodes each stop, reports it to the engines that want it (in
//! attach order), combines their actions, and resumes the task the way the
//! engines' masks need (`PTRACE_CONT`, `PTRACE_SYSCALL`, a single step, or
//! `PTRACE_LISTEN` for a group-stop) once no engine holds it.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use tracing::{debug, trace, warn};

use crate::access::{self, Denied, Owner};
use crate::arch::{self, gp};
use crate::engine::{Action, Engine, EngineId, EngineOptions, SignalDisposition};
use crate::error::{Error, Result};
use crate::event::{
    CloneKind, CloneReport, EventMask, ExecReport, ExitReport, ExitStatus, SignalReport,
    SyscallEntry, SyscallExit, SyscallSet,
};
use crate::gate::{ProcGate, TaskGate};
use crate::spawn::PendingSpawn;
use crate::sys::{self, Errno, Resume, Tid};
use crate::task::{EngineCfg, MemFile, RunState, StopKind, SyscallMode, Task, TaskState};

// The tables below are keyed by tids and engine ids, which no tracee or
// client picks freely enough to flood a bucket: FxHash (rustc-hash), a few
// instructions per lookup, instead of SipHash. Lookups are on every stop.

/// A closure waiting to run on a stopped task (see `Tracer::with_stopped`).
pub(crate) type Waiter = Box<dyn FnOnce(Result<&mut Task<'_>>) + Send>;

/// Options every seized task gets.
pub(crate) const BASE_OPTIONS: u32 = sys::PTRACE_O_TRACESYSGOOD
    | sys::PTRACE_O_TRACECLONE
    | sys::PTRACE_O_TRACEFORK
    | sys::PTRACE_O_TRACEVFORK
    | sys::PTRACE_O_TRACEVFORKDONE
    | sys::PTRACE_O_TRACEEXEC
    | sys::PTRACE_O_TRACEEXIT;

pub(crate) struct EngineSlot {
    /// `None` only while one of its callbacks runs.
    engine: Option<Box<dyn Engine>>,
    events: EventMask,
    syscalls: SyscallSet,
    follow_children: bool,
    /// Whose rights it acts with (`None`: the tracer's).
    owner: Option<Arc<Owner>>,
    /// Takes breakpoint hits without stops (uprobes may serve it).
    breakpoint_hits: bool,
    /// Its uprobe hits carry the user stack.
    hit_stacks: bool,
    /// Its syscall exits carry their system time.
    system_times: bool,
}

impl EngineSlot {
    #[inline]
    fn wants_syscall(&self, bit: EventMask, nr: u64) -> bool {
        self.events.contains(bit) && self.syscalls.contains(nr)
    }
}

/// What the engines of one process want of its syscalls, derived from
/// their masks and kept in [`Proc::view`] so a stop does not recompute it:
/// updated whenever an engine joins or leaves the process or changes its
/// mask ([`Core::update_views`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyscallView {
    /// How the syscalls reach us: kernel-side if the filter covers every
    /// syscall any engine wants, otherwise `PTRACE_SYSCALL`.
    pub mode: SyscallMode,
    /// Some engine wants some syscall report.
    pub wants_any: bool,
    /// The syscalls whose exit some engine wants.
    pub exits: SyscallSet,
}

impl Default for SyscallView {
    fn default() -> Self {
        SyscallView {
            mode: SyscallMode::Ptrace,
            wants_any: false,
            exits: SyscallSet::empty(),
        }
    }
}

impl SyscallView {
    fn of(engines: &FxHashMap<EngineId, EngineSlot>, p: &Proc) -> SyscallView {
        let mut v = SyscallView {
            mode: if p.filter.is_some() {
                SyscallMode::Seccomp
            } else {
                SyscallMode::Ptrace
            },
            ..SyscallView::default()
        };
        for s in p.engines.iter().filter_map(|id| engines.get(id)) {
            if !s.events.intersects(EventMask::SYSCALLS) {
                continue;
            }
            v.wants_any |= !s.syscalls.is_empty();
            if let Some(filter) = &p.filter {
                if !s.syscalls.is_subset(filter) {
                    v.mode = SyscallMode::Ptrace;
                }
            }
            if s.events.contains(EventMask::SYSCALL_EXIT) {
                v.exits.union_with(&s.syscalls);
            }
        }
        v
    }

    /// Running tasks must be resumed with `PTRACE_SYSCALL`.
    fn needs_syscall_stops(&self) -> bool {
        self.mode == SyscallMode::Ptrace && self.wants_any
    }
}

/// A traced process (thread group).
pub(crate) struct Proc {
    pub pid: Tid,
    pub tasks: Vec<Tid>,
    /// Attached engines, in attach order.
    pub engines: Vec<EngineId>,
    /// The seccomp filter's syscall set, for spawned trees with kernel-side
    /// filtering. Such a tree stays traced for its whole life.
    pub filter: Option<Arc<SyscallSet>>,
    pub mem: MemFile,
    /// Software breakpoints inserted in this process.
    pub breakpoints: crate::breakpoint::Breakpoints,
    /// Its debug-register slots: hardware breakpoints and watchpoints.
    pub watch: crate::watch::Watchpoints,
    /// Derived from `engines` and their masks; see [`SyscallView`].
    pub view: SyscallView,
    /// What other threads may know of it, to read its memory (see
    /// [`crate::gate`]): kept in step with `engines` and `breakpoints`.
    pub gate: Arc<ProcGate>,
    /// Its syscall-entry stops by call, since it was traced.
    pub syscalls: crate::activity::SyscallCounts,
}

impl Proc {
    /// The core's own memory writes (breakpoint bytes), which readers on
    /// other threads must not see half done.
    fn write_mem(&mut self, addr: u64, data: &[u8]) -> std::result::Result<usize, Errno> {
        let _c = self.gate.changing();
        self.mem.write(self.pid, addr, data)
    }

    /// Change this process's breakpoint sites with `f` (given the table and
    /// what placing a site needs: the threads and the memory), inside the
    /// gate's `changing()` window, so no reader on another thread sees
    /// memory mid-change. `publish`: the sites' original bytes changed, so
    /// readers get the new ones before the window closes.
    fn change_breakpoints<R>(
        &mut self,
        publish: bool,
        f: impl FnOnce(&mut crate::breakpoint::Breakpoints, &mut crate::breakpoint::Io<'_>) -> R,
    ) -> R {
        let _c = self.gate.changing();
        let mut io = crate::breakpoint::Io {
            pid: self.pid,
            threads: &self.tasks,
            mem: &mut self.mem,
        };
        let r = f(&mut self.breakpoints, &mut io);
        if publish {
            self.gate.set_breakpoints(&self.breakpoints);
        }
        r
    }

    /// `engines` changed: tell the gate.
    fn engines_changed(&self) {
        self.gate.set_engines(&self.engines);
    }
}

/// Public snapshot of one traced thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    pub tid: Tid,
    pub pid: Tid,
    pub state: RunState,
    pub mode: SyscallMode,
    /// Engines attached to its process, in attach order.
    pub engines: Vec<EngineId>,
    /// Engines holding it stopped.
    pub holds: Vec<EngineId>,
    /// Its ptrace stops since it was traced (every kind), and of those its
    /// syscall stops (entry, exit and seccomp).
    pub stops: u64,
    pub syscall_stops: u64,
}

pub(crate) struct Core {
    /// The process system time the stop being handled was reaped with
    /// (microseconds; only while [`Core::system_times`]).
    pub stime_us: Option<u64>,
    /// Engines asking for syscalls' system times (counted as they come
    /// and go: the reap loop asks at every stop).
    system_time_engines: usize,
    pub tasks: FxHashMap<Tid, TaskState>,
    pub procs: FxHashMap<Tid, Proc>,
    engines: FxHashMap<EngineId, EngineSlot>,
    next_engine: u64,
    /// Stops of new tasks that arrived before their parent's clone event.
    unknown: FxHashMap<Tid, i32>,
    pub spawns: FxHashMap<Tid, PendingSpawn>,
    /// Engines whose masks changed in a callback: their processes' views
    /// are updated, and running tasks may need a new mode ([`Core::settle`]).
    masks_changed: Vec<EngineId>,
    /// Processes whose debug-register slots changed in a callback: their
    /// running threads are interrupted to take the new set
    /// ([`Core::settle`]).
    watch_changed: Vec<Tid>,
    /// Engines that asked to detach during a stop's handling; detached by
    /// [`Core::settle`] once the stop is handled (a detach may resume the
    /// task, which must not happen before its signal's fate is decided).
    detach_later: Later,
    /// Why a spawn's engine lost its program at the program's exec (the
    /// spawn then fails with it).
    revoked: Option<Denied>,
    /// Where breakpoint changes are recorded for the keeper (see
    /// [`crate::journal`]).
    pub journal: Option<Arc<crate::journal::Journal>>,
    /// The tracer thread's epoll, which uprobe rings wake (each with its
    /// process's pid as the event's data).
    pub epoll: Option<Arc<std::os::fd::OwnedFd>>,
    /// The task list other threads may read without a command
    /// ([`crate::Tracer::tasks_now`]); bumped before every change.
    pub(crate) snapshot: Arc<crate::tracer::TaskSnapshot>,
    /// The [`crate::uprobe::Keys`] generation last acted on.
    keys_seen: u64,
    /// Uprobe rings open in this tracer's processes.
    open_rings: Arc<std::sync::atomic::AtomicUsize>,
    /// `Tracer::shutdown` was called: the thread leaves its loop.
    pub shutting_down: bool,
    /// `shutdown` ran.
    shut_down: bool,
    pub stats: TracerStats,
}

/// Counters of the tracer thread's work, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracerStats {
    /// ptrace stops handled (every kind).
    pub stops: u64,
    /// Of those, syscall stops (entry, exit and seccomp).
    pub syscall_stops: u64,
    /// Engine callbacks made.
    pub reports: u64,
    /// Calls of [`crate::Tracer::read_scatter_now`] answered by the calling
    /// thread.
    pub reads_now: u64,
    /// Calls of [`crate::Tracer::read_scatter_now`] that could not be (the
    /// caller went to the tracer thread).
    pub reads_routed: u64,
    /// Kernel uprobe events open now (one per site and thread).
    pub uprobe_events: u64,
    /// Uprobe sample rings open now (one per probed thread).
    pub uprobe_rings: u64,
}

impl Core {
    pub fn new() -> Self {
        Core {
            stime_us: None,
            system_time_engines: 0,
            tasks: FxHashMap::default(),
            procs: FxHashMap::default(),
            engines: FxHashMap::default(),
            next_engine: 1,
            unknown: FxHashMap::default(),
            spawns: FxHashMap::default(),
            masks_changed: Vec::new(),
            watch_changed: Vec::new(),
            detach_later: Later::default(),
            revoked: None,
            journal: None,
            epoll: None,
            snapshot: Arc::default(),
            keys_seen: 0,
            open_rings: Default::default(),
            shutting_down: false,
            shut_down: false,
            stats: TracerStats::default(),
        }
    }

    /// Whether some engine asks for syscalls' system times: stops are
    /// then reaped with rusage.
    pub fn system_times(&self) -> bool {
        self.system_time_engines > 0
    }

    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty() && self.spawns.is_empty()
    }

    pub fn add_engine(&mut self, engine: Box<dyn Engine>, opts: EngineOptions) -> EngineId {
        let id = EngineId(self.next_engine);
        self.next_engine += 1;
        self.system_time_engines += usize::from(opts.system_times);
        self.engines.insert(
            id,
            EngineSlot {
                engine: Some(engine),
                events: opts.events,
                syscalls: opts.syscalls,
                follow_children: opts.follow_children,
                owner: opts.owner,
                breakpoint_hits: opts.breakpoint_hits,
                hit_stacks: opts.hit_stacks,
                system_times: opts.system_times,
            },
        );
        id
    }

    /// Forget an engine that never attached (a failed spawn or attach).
    pub fn drop_engine(&mut self, id: EngineId) {
        if let Some(slot) = self.engines.remove(&id) {
            self.system_time_engines -= usize::from(slot.system_times);
        }
    }

    pub fn new_proc(&mut self, pid: Tid, engines: Vec<EngineId>, filter: Option<Arc<SyscallSet>>) {
        let gate = ProcGate::new(pid, &engines, self.journal.as_ref());
        let mut p = Proc {
            pid,
            tasks: Vec::new(),
            engines,
            gate,
            filter,
            mem: MemFile::default(),
            breakpoints: crate::breakpoint::Breakpoints::new(crate::uprobe::Probes::new(
                pid,
                self.epoll.clone(),
                Arc::clone(&self.open_rings),
            )),
            view: SyscallView::default(),
            watch: Default::default(),
            syscalls: Default::default(),
        };
        p.view = SyscallView::of(&self.engines, &p);
        self.procs.insert(pid, p);
    }

    pub fn new_task(&mut self, tid: Tid, pid: Tid) -> &mut TaskState {
        let gate = match self.procs.get_mut(&pid) {
            Some(p) => {
                if !p.tasks.contains(&tid) {
                    p.tasks.push(tid);
                    if p.breakpoints.active() {
                        // Uprobes are per thread: the new one gets them
                        // before it runs (it is stopped until seen).
                        p.change_breakpoints(true, |b, io| b.thread_added(tid, io));
                    }
                }
                Arc::clone(&p.gate)
            }
            // No process yet: a gate no engine may read through.
            None => ProcGate::new(pid, &[], None),
        };
        self.tasks
            .insert(tid, TaskState::new(tid, pid as u64, TaskGate::new(gate)));
        self.tasks.get_mut(&tid).expect("inserted above")
    }

    fn pid_of(&self, tid: Tid) -> Option<Tid> {
        self.tasks.get(&tid).map(|t| t.proc as Tid)
    }

    // ---- queries ----------------------------------------------------------

    pub fn task_infos(&self) -> Vec<TaskInfo> {
        let mut out: Vec<TaskInfo> = self
            .tasks
            .values()
            .filter_map(|t| {
                let p = self.procs.get(&(t.proc as Tid))?;
                Some(TaskInfo {
                    tid: t.tid,
                    pid: p.pid,
                    state: t.run,
                    mode: p.view.mode,
                    engines: p.engines.clone(),
                    holds: t.holds.iter().copied().collect(),
                    stops: t.stops,
                    syscall_stops: t.syscall_stops,
                })
            })
            .collect();
        out.sort_by_key(|i| (i.pid, i.tid));
        out
    }

    /// The tasks with their counters, and each process's calls (copied
    /// only: sorting and naming them is the caller's, off this thread).
    pub fn activity(&self) -> crate::activity::Activity {
        let procs = self
            .procs
            .values()
            .map(|p| crate::activity::ProcActivity {
                pid: p.pid,
                syscalls: p.syscalls.rows(),
            })
            .collect();
        crate::activity::Activity {
            monotonic_ns: sys::clock_ns(libc::CLOCK_MONOTONIC) as u64,
            tasks: self.task_infos(),
            procs,
        }
    }

    // ---- dispatch ---------------------------------------------------------

    /// Call `f` for each engine of `tid`'s process that `want`s this report,
    /// in attach order, and apply the actions it returns.
    ///
    /// The task, its process and its syscall mode are looked up once per
    /// stop; per engine, one lookup of its slot and one bit test. Callbacks
    /// cannot change the set of engines (a `Detach` is deferred to
    /// [`Core::settle`]), so the process's engine list is walked in place.
    fn dispatch(
        &mut self,
        tid: Tid,
        want: impl Fn(&EngineSlot) -> bool,
        mut f: impl FnMut(&mut dyn Engine, &mut Task<'_>) -> Action,
    ) {
        let Core {
            tasks,
            procs,
            engines,
            stats,
            masks_changed,
            watch_changed,
            detach_later,
            ..
        } = self;
        let Some(state) = tasks.get_mut(&tid) else {
            return;
        };
        let pid = state.proc as Tid;
        let Some(Proc {
            engines: ids,
            tasks: threads,
            mem,
            breakpoints,
            view,
            gate,
            watch,
            ..
        }) = procs.get_mut(&pid)
        else {
            return;
        };
        let mode = view.mode;
        let watch_gen = watch.gen();
        for &id in ids.iter() {
            let Some(slot) = engines.get_mut(&id) else {
                continue;
            };
            if !want(slot) {
                continue;
            }
            let Some(mut engine) = slot.engine.take() else {
                continue;
            };
            let mut task = Task {
                state: &mut *state,
                pid,
                mode,
                mem: &mut *mem,
                bps: &mut *breakpoints,
                threads,
                gate,
                watch: &mut *watch,
                engine: EngineCfg::new(
                    id,
                    &mut slot.events,
                    &mut slot.syscalls,
                    slot.breakpoint_hits,
                    slot.hit_stacks,
                ),
            };
            let action = f(engine.as_mut(), &mut task);
            let changed = task.engine.changed;
            slot.engine = Some(engine);
            stats.reports += 1;
            if changed {
                masks_changed.push(id);
            }
            apply_action(state, id, action, Answer::Report, detach_later);
        }
        if watch.gen() != watch_gen {
            watch_changed.push(pid);
        }
    }

    // ---- stops ------------------------------------------------------------

    /// Handle one wait status from `waitpid`.
    ///
    /// Order: a non-leader exec first moves the exec'ing thread's state to
    /// the leader's tid; the stop is decoded (its kind, syscall, signal);
    /// then closures waiting for the stop run (so a batch sees the syscall it
    /// landed on), holds asked for while it ran are taken, quiesce reports
    /// go out, and the stop is reported to the engines that want it.
    pub fn on_wait(&mut self, tid: Tid, status: i32) {
        trace!(tid, status = format_args!("{status:#x}"), "wait status");
        // Uprobe hits of this thread happened before this stop: they are
        // reported first (its ring has them by now).
        if let Some(pid) = self.pid_of(tid) {
            if ExitStatus::from_wait(status).is_none() {
                self.deliver_hits(pid, Some(tid));
            }
        }
        if let Some(exit) = ExitStatus::from_wait(status) {
            self.on_death(tid, exit);
            return;
        }
        if !libc::WIFSTOPPED(status) {
            return;
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        let mut exec_from = None;
        if event == sys::PTRACE_EVENT_EXEC {
            match sys::get_event_msg(tid) {
                Ok(former) => {
                    let former = former as Tid;
                    self.exec_moves(tid, former);
                    exec_from = Some(former);
                }
                Err(e) => return self.vanishing(tid, "PTRACE_GETEVENTMSG", e),
            }
            // A new program: new memory, and maybe new credentials. Engines
            // whose owners may not trace it leave now, before anything (a
            // reader on another thread included) sees the task stopped in
            // it, and before it runs an instruction.
            self.new_image(tid);
            self.recheck_access(tid);
        }
        let Some(t) = self.tasks.get_mut(&tid) else {
            trace!(
                tid,
                status,
                "stop of a task not known yet; kept for its clone event"
            );
            self.unknown.insert(tid, status);
            return;
        };
        // Holds belong to the stop they were taken at. A held task that
        // reports a new stop was forced out (SIGKILL): the holds are void.
        t.holds.clear();
        // Any stop absorbs a pending PTRACE_INTERRUPT (the kernel clears its
        // trap at every ptrace stop): a later interrupt must be sent anew.
        t.interrupt_sent = false;
        // Stop ids count every stop of the tracer, so one names one stop of
        // one task for good (a reused tid starts no new count).
        self.stats.stops += 1;
        t.stop_seq = self.stats.stops;
        t.signal_suppressed = false;
        t.set_run(RunState::Stopped);
        // What `before_taking` read at this stop (a SIGTRAP signal stop, an
        // int3 of ours) stays: registers, siginfo. Anything else starts
        // afresh (a SIGKILL may have turned that stop into another).
        let peeked = t.int3_rewound.is_some() && sig == libc::SIGTRAP && event == 0;
        if !peeked {
            t.regs = Default::default();
            t.int3_rewound = None;
            t.peeked_siginfo = None;
        }
        t.stops += 1;
        if sig == (libc::SIGTRAP | 0x80) || event == sys::PTRACE_EVENT_SECCOMP {
            self.stats.syscall_stops += 1;
            t.syscall_stops += 1;
        }
        let proc = t.proc as Tid;
        // A range step ends at any stop but a trap (its step's, checked in
        // `on_signal`).
        let trap = sig == libc::SIGTRAP && event == 0;
        if !trap && !t.step_range.is_empty() {
            t.step_range.clear();
        }
        let first_stop = !t.started;
        t.started = true;

        let Some(report) = self.decode(tid, sig, event, first_stop, exec_from) else {
            // The task vanished (ESRCH): its death follows, and fails its waiters.
            return;
        };
        if let Decoded::Entry(e) = &report {
            if let Some(p) = self.procs.get_mut(&proc) {
                p.syscalls.count(e.arch, e.nr);
            }
        }
        // Closures waiting for this task to stop run first, at the stop as
        // decoded and before any engine acted on it.
        self.run_waiters(tid);
        if let Some(t) = self.tasks.get_mut(&tid) {
            let next = std::mem::take(&mut t.hold_next);
            t.holds.extend(next);
        }
        self.report_quiesce(tid);
        self.report_child_start(tid);
        self.report(tid, report);
        self.settle(tid);
    }

    /// A non-leader thread `former` exec'd and took over the leader's tid
    /// `tid`: its state (waiters and pending holds included) moves to
    /// `tid`, and the old leader is gone without a report.
    fn exec_moves(&mut self, tid: Tid, former: Tid) {
        if former == tid {
            return;
        }
        let Some(mut moved) = self.tasks.remove(&former) else {
            return;
        };
        if let Some(mut old) = self.tasks.remove(&tid) {
            fail_waiters(&mut old);
        }
        moved.tid = tid;
        // Its old tid is gone: readers holding the old gate must not use
        // it. (The exec stop being handled marks the new one stopped.)
        moved.gate = moved.gate.renew();
        self.tasks.insert(tid, moved);
        if let Some(p) = self.procs.get_mut(&tid) {
            p.tasks.retain(|t| *t != former);
            if !p.tasks.contains(&tid) {
                p.tasks.push(tid);
            }
        }
        debug!(
            tid,
            former, "non-leader exec: the thread takes the leader's tid"
        );
    }

    /// Record what kind of stop `tid` is at (`TaskState::stop`, the syscall,
    /// the pending signal) and say what is to be reported. `None`: the task
    /// vanished (a ptrace request failed with ESRCH).
    fn decode(
        &mut self,
        tid: Tid,
        sig: i32,
        event: i32,
        first_stop: bool,
        exec_from: Option<Tid>,
    ) -> Option<Decoded> {
        if sig == (libc::SIGTRAP | 0x80) {
            let info = self.syscall_info(tid)?;
            let t = self.tasks.get_mut(&tid)?;
            return Some(match info.op {
                sys::PTRACE_SYSCALL_INFO_ENTRY => entry_stop(
                    t,
                    SyscallEntry {
                        nr: info.data[0],
                        args: args_of(&info.data),
                        arch: info.arch,
                        from_seccomp: false,
                    },
                    self.stime_us,
                ),
                sys::PTRACE_SYSCALL_INFO_EXIT => {
                    let entry = match t.in_syscall.take() {
                        Some(e) => e,
                        None => match entry_from_regs(t, info.arch) {
                            Ok(e) => e,
                            Err(_) => {
                                t.stop = Some(StopKind::Event);
                                return Some(Decoded::Nothing);
                            }
                        },
                    };
                    let system_ns = match (t.entry_stime_us.take(), self.stime_us) {
                        (Some(at), Some(now)) => Some(now.saturating_sub(at) * 1000),
                        _ => None,
                    };
                    let exit = SyscallExit {
                        entry,
                        ret: info.data[0] as i64,
                        is_error: info.data[1] & 0xff != 0,
                        system_ns,
                    };
                    t.stop = Some(StopKind::SyscallExit(exit));
                    if t.prelude && !is_execve(&entry) {
                        Decoded::Nothing
                    } else {
                        Decoded::Exit(exit)
                    }
                }
                op => {
                    debug!(tid, op, "syscall stop with unexpected op");
                    t.stop = Some(StopKind::Event);
                    Decoded::Nothing
                }
            });
        }
        if event == sys::PTRACE_EVENT_SECCOMP {
            let t = self.tasks.get_mut(&tid)?;
            if t.in_syscall.is_some() {
                // The entry was reported at the ptrace entry stop just before
                // (Linux >= 4.8 order: entry, seccomp, exit). Nothing new.
                t.stop = Some(StopKind::Event);
                return Some(Decoded::Nothing);
            }
            let info = self.syscall_info(tid)?;
            let t = self.tasks.get_mut(&tid)?;
            return Some(entry_stop(
                t,
                SyscallEntry {
                    nr: info.data[0],
                    args: args_of(&info.data),
                    arch: info.arch,
                    from_seccomp: true,
                },
                self.stime_us,
            ));
        }
        if event == sys::PTRACE_EVENT_STOP {
            if self.on_trap_stop(tid, sig, first_stop) {
                return Some(Decoded::GroupStop { sig });
            }
            return Some(Decoded::Nothing);
        }
        if event != 0 {
            let msg = match exec_from {
                Some(former) => former as u64,
                None => match sys::get_event_msg(tid) {
                    Ok(m) => m,
                    Err(e) => {
                        self.vanishing(tid, "PTRACE_GETEVENTMSG", e);
                        return None;
                    }
                },
            };
            self.tasks.get_mut(&tid)?.stop = Some(StopKind::Event);
            return Some(Decoded::Event { event, msg });
        }
        let peeked = self.tasks.get_mut(&tid)?.peeked_siginfo.take();
        let si = match peeked.map_or_else(|| sys::get_siginfo(tid), Ok) {
            Ok(si) => si,
            Err(e) => {
                self.vanishing(tid, "PTRACE_GETSIGINFO", e);
                return None;
            }
        };
        let t = self.tasks.get_mut(&tid)?;
        t.stop = Some(StopKind::Signal);
        t.pending_signal = sig;
        Some(Decoded::Signal { sig, si })
    }

    /// Report a decoded stop to the engines that want it.
    fn report(&mut self, tid: Tid, d: Decoded) {
        match d {
            Decoded::Nothing => {}
            Decoded::Entry(entry) => {
                let nr = entry.nr;
                self.dispatch(
                    tid,
                    |s| s.wants_syscall(EventMask::SYSCALL_ENTRY, nr),
                    |e, task| e.report_syscall_entry(task, &entry),
                );
                // A skipped call still reaches its exit stop; the entry stays recorded.
            }
            Decoded::Exit(exit) => {
                let nr = exit.entry.nr;
                self.dispatch(
                    tid,
                    |s| s.wants_syscall(EventMask::SYSCALL_EXIT, nr),
                    |e, task| e.report_syscall_exit(task, &exit),
                );
            }
            Decoded::Event { event, msg } => self.on_event(tid, event, msg),
            Decoded::Signal { sig, si } => self.on_signal(tid, sig, si),
            Decoded::GroupStop { sig } => self.dispatch(
                tid,
                |s| s.events.contains(EventMask::GROUP_STOP),
                |e, task| e.report_group_stop(task, sig),
            ),
        }
    }

    /// The end of handling a stop of `tid` (or of a command run at it):
    /// detach the engines that asked to leave, apply mask changes to running
    /// tasks, and resume `tid` if nobody holds it.
    fn settle(&mut self, tid: Tid) {
        self.resolve_conflicts();
        let later = std::mem::take(&mut self.detach_later);
        for (id, pid) in later.leave {
            self.leave_one(id, pid, Some(tid));
        }
        for id in later.detach {
            self.detach_engine(id);
        }
        if !self.masks_changed.is_empty() {
            let ids = std::mem::take(&mut self.masks_changed);
            self.update_views(&ids);
        }
        if !self.watch_changed.is_empty() {
            for pid in std::mem::take(&mut self.watch_changed) {
                self.watch_reaches_running(pid);
            }
        }
        self.maybe_resume(tid);
    }

    /// Process `pid`'s debug-register slots changed: its running threads
    /// are interrupted, and take the new set before they run again
    /// ([`Core::maybe_resume`]). Threads in a group-stop take it when they
    /// leave it (they run only through a stop of ours).
    fn watch_reaches_running(&mut self, pid: Tid) {
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        // Armed from now (the calling thread has it already): the keeper
        // clears them if this tracer dies. Told until the process leaves
        // the tracer (a detach clears them), not when the table empties: a
        // thread keeps its registers until its next stop.
        if !p.watch.is_empty() {
            p.gate.set_debug_armed(true);
        }
        let gen = p.watch.gen();
        let stale: Vec<Tid> = p
            .tasks
            .iter()
            .filter(|tid| {
                self.tasks
                    .get(tid)
                    .is_some_and(|t| t.run == RunState::Running && t.dr_gen != gen)
            })
            .copied()
            .collect();
        for tid in stale {
            self.interrupt(tid);
        }
    }

    /// Act on the uprobe/int3 conflicts of this process's tracers (see
    /// [`crate::uprobe::Keys`]): this tracer's uprobes at a conflicting
    /// location become int3s; once no uprobe serves it, this tracer's
    /// int3s there are checked and written again if a hit of the lingering
    /// uprobe erased one.
    pub fn resolve_conflicts(&mut self) {
        if crate::uprobe::nothing_new(self.keys_seen) {
            return;
        }
        // Converting our uprobes closes them, and the kernel, taking the
        // uprobe out, also "restores" the int3s of ours at that location in
        // every other process (it takes them for its own): a second pass
        // writes those again, before anything resumes.
        if self.resolve_conflicts_once() {
            self.resolve_conflicts_once();
        }
    }

    /// One pass of [`Core::resolve_conflicts`]; whether it turned uprobes
    /// into int3s.
    fn resolve_conflicts_once(&mut self) -> bool {
        let conflicts = {
            let mut k = crate::uprobe::keys();
            if k.generation == self.keys_seen && !k.any_conflict() {
                return false;
            }
            self.keys_seen = k.generation;
            k.conflicts()
        };
        let mut converted = false;
        debug!(?conflicts, "resolving uprobe/int3 conflicts");
        let Core { procs, tasks, .. } = self;
        for (key, probes_gone) in conflicts {
            for p in procs.values_mut() {
                let probes = p.breakpoints.probes_at(&key);
                let int3s = if probes_gone {
                    p.breakpoints.int3s_at(&key)
                } else {
                    Vec::new()
                };
                if probes.is_empty() && int3s.is_empty() {
                    continue;
                }
                converted |= !probes.is_empty();
                p.change_breakpoints(true, |bps, io| {
                    for addr in probes {
                        if let Err(e) = bps.force_int3(addr, io) {
                            warn!(pid = io.pid, addr, %e, "a breakpoint's int3 could not be written");
                        }
                    }
                    for addr in int3s {
                        let stepping = io
                            .threads
                            .iter()
                            .any(|t| tasks.get(t).is_some_and(|t| t.step_over == Some(addr)));
                        let mut b = [0u8; 1];
                        let n = io.mem.read(io.pid, addr, &mut b).unwrap_or(0);
                        if n == 1
                            && b[0] != crate::breakpoint::INT3
                            && !stepping
                            && !bps.is_disarmed(addr)
                        {
                            debug!(
                                pid = io.pid,
                                addr, "an int3 erased by a uprobe: written again"
                            );
                            let _ = io.mem.write(io.pid, addr, &[crate::breakpoint::INT3]);
                        }
                    }
                });
            }
        }
        converted
    }

    fn run_waiters(&mut self, tid: Tid) {
        let ws = match self.tasks.get_mut(&tid) {
            Some(t) if !t.waiters.is_empty() => std::mem::take(&mut t.waiters),
            _ => return,
        };
        for (id, w) in ws {
            self.with_task(tid, id, |task| w(task));
        }
        self.apply_after(tid);
    }

    /// Apply the control actions batches recorded on `tid`.
    fn apply_after(&mut self, tid: Tid) {
        let Some(t) = self.tasks.get_mut(&tid) else {
            return;
        };
        for (id, a) in std::mem::take(&mut t.after) {
            match a.signal {
                Some(0) => fold_signal(t, SignalDisposition::Suppress),
                Some(sig) => fold_signal(t, SignalDisposition::Replace(sig)),
                None => {}
            }
            if let Some(action) = a.action {
                apply_action(t, id, action, Answer::Command, &mut self.detach_later);
            }
        }
    }

    /// Build a `Task` view for engine `id` and call `f` with it.
    pub fn with_task<R>(
        &mut self,
        tid: Tid,
        id: EngineId,
        f: impl FnOnce(Result<&mut Task<'_>>) -> R,
    ) -> R {
        let Core {
            tasks,
            procs,
            engines,
            masks_changed,
            watch_changed,
            ..
        } = self;
        let Some(state) = tasks.get_mut(&tid) else {
            return f(Err(Error::NoSuchTask(tid)));
        };
        let pid = state.proc as Tid;
        let (Some(slot), Some(proc_)) = (engines.get_mut(&id), procs.get_mut(&pid)) else {
            return f(Err(Error::NoSuchEngine(id)));
        };
        if !proc_.engines.contains(&id) {
            return f(Err(Error::NotAttached { engine: id, tid }));
        }
        let watch_gen = proc_.watch.gen();
        let mut task = Task {
            state,
            pid,
            mode: proc_.view.mode,
            mem: &mut proc_.mem,
            bps: &mut proc_.breakpoints,
            threads: &proc_.tasks,
            gate: &proc_.gate,
            watch: &mut proc_.watch,
            engine: EngineCfg::new(
                id,
                &mut slot.events,
                &mut slot.syscalls,
                slot.breakpoint_hits,
                slot.hit_stacks,
            ),
        };
        let r = f(Ok(&mut task));
        if task.engine.changed {
            masks_changed.push(id);
        }
        if task.watch.gen() != watch_gen {
            watch_changed.push(pid);
        }
        r
    }

    /// Some process has uprobe rings: the tracer thread drains them every
    /// few milliseconds (they wake it only when half full).
    pub fn probing(&self) -> bool {
        self.open_rings.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    /// Read process `pid`'s counting uprobe events and deliver what they
    /// counted, with every hit waiting in its rings.
    pub fn flush_counts_of(&mut self, pid: Tid) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.breakpoints.probes.read_counts();
        }
        self.deliver_hits(pid, None);
    }

    /// The processes engine `id` is attached to.
    fn pids_of(&self, id: EngineId) -> Vec<Tid> {
        self.procs
            .values()
            .filter(|p| p.engines.contains(&id))
            .map(|p| p.pid)
            .collect()
    }

    /// [`Core::flush_counts_of`] every process engine `id` is attached to.
    pub fn flush_counts(&mut self, id: EngineId) -> Result<()> {
        self.check_engine(id)?;
        for pid in self.pids_of(id) {
            self.flush_counts_of(pid);
        }
        Ok(())
    }

    /// [`Core::deliver_hits`] for every process with rings.
    pub fn deliver_all_hits(&mut self) -> usize {
        let pids: Vec<Tid> = self
            .procs
            .values()
            .filter(|p| !p.breakpoints.probes.is_empty())
            .map(|p| p.pid)
            .collect();
        pids.into_iter()
            .map(|pid| self.deliver_hits(pid, None))
            .sum()
    }

    /// Report the uprobe hits waiting in the rings of process `pid` (of
    /// thread `tid` only, or of all its threads) to the engines whose
    /// breakpoints they are, in attach order (lost hits likewise).
    /// Returns how many records (hits, losses, counts) the rings gave.
    pub fn deliver_hits(&mut self, pid: Tid, tid: Option<Tid>) -> usize {
        let Some(p) = self.procs.get_mut(&pid) else {
            return 0;
        };
        if p.breakpoints.probes.is_empty() {
            return 0;
        }
        let recs = p.breakpoints.probes.drain(tid);
        let taken = recs.len();
        // Who is told, per address: the same for a run of hits there (these
        // callbacks have no task, and cannot change who owns what).
        let mut order: Vec<EngineId> = Vec::new();
        let mut counters: Vec<EngineId> = Vec::new();
        let mut order_of = None;
        for rec in recs {
            let at = (rec.addr(), rec.returned());
            if order_of != Some(at) {
                let Some(p) = self.procs.get(&pid) else {
                    return taken;
                };
                let (owners, c) = if at.1 {
                    (p.breakpoints.ret_owners(at.0), Vec::new())
                } else {
                    (p.breakpoints.owners(at.0), p.breakpoints.counters(at.0))
                };
                counters = c;
                // Like an int3's hit: to its owners that want breakpoint
                // reports, in attach order.
                order.clear();
                order.extend(p.engines.iter().copied().filter(|id| {
                    owners.contains(id)
                        && self
                            .engines
                            .get(id)
                            .is_some_and(|s| s.events.contains(EventMask::BREAKPOINT))
                }));
                order_of = Some(at);
            }
            for &id in &order {
                let Some(e) = self.engines.get_mut(&id).and_then(|s| s.engine.as_mut()) else {
                    continue;
                };
                self.stats.reports += 1;
                use crate::uprobe::Record;
                match &rec {
                    // An engine that only counts here gets the count, even
                    // where others' needs make the site sample.
                    Record::Hit(h) if counters.contains(&id) => {
                        e.report_breakpoint_count(pid, h.tid, h.addr, 1)
                    }
                    Record::Hit(h) => e.report_breakpoint_hit(h),
                    Record::Lost { addr, n, .. } => e.report_breakpoint_hits_lost(pid, *addr, *n),
                    Record::Count { tid, addr, n } => {
                        e.report_breakpoint_count(pid, *tid, *addr, *n)
                    }
                }
            }
        }
        taken
    }

    /// A followed child process's first stop: its engines may place what
    /// they had in the parent.
    fn report_child_start(&mut self, tid: Tid) {
        let Some(t) = self.tasks.get_mut(&tid) else {
            return;
        };
        let asked = std::mem::take(&mut t.child_start_for);
        self.dispatch_to(tid, asked, |e, task| e.report_child_start(task));
    }

    fn report_quiesce(&mut self, tid: Tid) {
        let Some(t) = self.tasks.get_mut(&tid) else {
            return;
        };
        let asked = std::mem::take(&mut t.quiesce_for);
        self.dispatch_to(tid, asked, |e, task| e.report_quiesce(task));
    }

    /// Call `f` for the engines in `asked` (if any) at `tid`'s stop.
    fn dispatch_to(
        &mut self,
        tid: Tid,
        asked: Vec<EngineId>,
        f: impl Fn(&mut dyn Engine, &mut Task<'_>) -> Action,
    ) {
        if asked.is_empty() {
            return;
        }
        self.dispatch(
            tid,
            |_| true,
            |e, task| {
                if asked.contains(&task.engine_id()) {
                    f(e, task)
                } else {
                    Action::Resume
                }
            },
        );
    }

    /// A `PTRACE_EVENT_STOP`: a group-stop (true) or an interrupt's trap.
    fn on_trap_stop(&mut self, tid: Tid, sig: i32, first_stop: bool) -> bool {
        let t = self.tasks.get_mut(&tid).expect("caller checked");
        if matches!(
            sig,
            libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
        ) {
            t.stop = Some(StopKind::GroupStop);
            t.set_run(RunState::Stopped);
            trace!(tid, sig, "group-stop");
            return true;
        }
        // PTRACE_INTERRUPT's trap, or a new task's first stop.
        t.interrupt_sent = false;
        t.stop = Some(StopKind::Event);
        trace!(tid, first_stop, "trap stop");
        false
    }

    fn on_event(&mut self, tid: Tid, event: i32, msg: u64) {
        match event {
            sys::PTRACE_EVENT_FORK | sys::PTRACE_EVENT_VFORK | sys::PTRACE_EVENT_CLONE => {
                self.on_clone(tid, event, msg as Tid)
            }
            sys::PTRACE_EVENT_EXEC => self.on_exec(tid, msg as Tid),
            // A vfork child exec'd or exited: the parent's memory is its own
            // again (see `Breakpoints::hold_for_vfork`).
            sys::PTRACE_EVENT_VFORK_DONE => {
                if let Some(p) = self.pid_of(tid).and_then(|pid| self.procs.get_mut(&pid)) {
                    p.breakpoints.vfork_done();
                }
            }
            sys::PTRACE_EVENT_EXIT => {
                let Some(pid) = self.pid_of(tid) else { return };
                let report = ExitReport {
                    tid,
                    pid,
                    status: ExitStatus::from_wait(msg as i32).unwrap_or(ExitStatus::Exited(0)),
                    process_gone: false,
                };
                if self.tasks.get(&tid).is_some_and(|t| t.prelude) {
                    return;
                }
                self.dispatch(
                    tid,
                    |s| s.events.contains(EventMask::EXIT),
                    |e, task| e.report_exit(task, &report),
                );
            }
            other => debug!(tid, event = other, "unexpected ptrace event"),
        }
    }

    fn on_clone(&mut self, tid: Tid, event: i32, child: Tid) {
        let Some(pid) = self.pid_of(tid) else { return };
        let kind = match event {
            sys::PTRACE_EVENT_FORK => CloneKind::Fork,
            sys::PTRACE_EVENT_VFORK => CloneKind::Vfork,
            _ if std::path::Path::new(&format!("/proc/{pid}/task/{child}")).exists() => {
                CloneKind::Thread
            }
            _ => CloneKind::Fork,
        };
        let child_pid = if kind == CloneKind::Thread {
            pid
        } else {
            child
        };
        if kind != CloneKind::Thread {
            let (engines, filter) = match self.procs.get(&pid) {
                Some(p) => (
                    p.engines
                        .iter()
                        .copied()
                        .filter(|id| self.engines.get(id).is_some_and(|s| s.follow_children))
                        .collect(),
                    p.filter.clone(),
                ),
                None => (Vec::new(), None),
            };
            self.new_proc(child, engines, filter);
            // The child's copy of memory has our int3s; breakpoints are per
            // process, so put the original bytes back in it before it runs
            // (it is stopped until its first trap). A vfork child shares the
            // parent's memory: the int3s come out of it until the child
            // execs or exits (the parent waits meanwhile).
            if kind == CloneKind::Vfork {
                if let Some(p) = self.procs.get_mut(&pid) {
                    if p.breakpoints.active() {
                        p.change_breakpoints(false, |b, io| b.hold_for_vfork(io));
                    } else {
                        p.breakpoints.vfork_started();
                    }
                }
            }
            if kind == CloneKind::Fork {
                let restore: Vec<(u64, u8)> = self
                    .procs
                    .get(&pid)
                    .map(|p| {
                        p.breakpoints
                            .map
                            .iter()
                            .map(|(a, b)| (*a, b.orig))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(c) = self.procs.get_mut(&child) {
                    for (addr, orig) in restore {
                        let _ = c.write_mem(addr, &[orig]);
                    }
                }
            }
        }
        let prelude = self.tasks.get(&tid).is_some_and(|t| t.prelude);
        let followers: Vec<EngineId> = if kind == CloneKind::Thread {
            Vec::new()
        } else {
            self.procs
                .get(&child)
                .map(|p| p.engines.clone())
                .unwrap_or_default()
        };
        let t = self.new_task(child, child_pid);
        t.prelude = prelude;
        t.child_start_for = followers;
        debug!(parent = tid, child, ?kind, "new task");
        let report = CloneReport {
            child_tid: child,
            child_pid,
            kind,
        };
        if !prelude {
            self.dispatch(
                tid,
                |s| s.events.contains(EventMask::CLONE),
                |e, task| e.report_clone(task, &report),
            );
        }
        if let Some(status) = self.unknown.remove(&child) {
            self.on_wait(child, status);
        }
    }

    /// An exec stop (a non-leader's state was moved to `tid` already, by
    /// [`Core::exec_moves`]).
    fn on_exec(&mut self, tid: Tid, former: Tid) {
        let Some(pid) = self.pid_of(tid) else { return };
        let was_prelude = self.tasks.get(&tid).is_some_and(|t| t.prelude);
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.prelude = false;
        }
        let report = ExecReport {
            startup: was_prelude,
            former_tid: former,
            exe: std::fs::read_link(format!("/proc/{tid}/exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
        };
        self.dispatch(
            tid,
            |s| s.events.contains(EventMask::EXEC),
            |e, task| e.report_exec(task, &report),
        );
        if was_prelude {
            if let Some(sp) = self.spawns.remove(&pid) {
                if !self
                    .procs
                    .get(&pid)
                    .is_some_and(|p| p.engines.contains(&sp.engine))
                {
                    // Its owner may not trace the program it asked for (it
                    // is not readable by them): the spawn fails, and the
                    // program, which nobody asked to run untraced, dies.
                    let why = self
                        .revoked
                        .take()
                        .map_or_else(|| "access was revoked".to_string(), |d| d.to_string());
                    let _ = sys::tgkill(pid, tid, libc::SIGKILL);
                    sp.refuse(why);
                    return;
                }
                if sp.stop_at_entry {
                    if let Some(t) = self.tasks.get_mut(&tid) {
                        t.holds.insert(sp.engine);
                    }
                }
                sp.succeed(pid);
            }
        }
    }

    /// `tid` exec'd: its process has new memory, and the old breakpoints
    /// are gone with the old text.
    fn new_image(&mut self, tid: Tid) {
        let Some(pid) = self.pid_of(tid) else { return };
        if let Some(p) = self.procs.get_mut(&pid) {
            let _c = p.gate.changing();
            p.mem.reset();
            // Its uprobes close (the kernel takes them out); what they
            // recorded is delivered while the sites still name their owners.
            p.breakpoints.close_probes();
        }
        self.deliver_hits(pid, None);
        if let Some(p) = self.procs.get_mut(&pid) {
            let _c = p.gate.changing();
            p.breakpoints.new_image();
            p.gate.set_breakpoints(&p.breakpoints);
            // The kernel cleared the exec'ing thread's debug registers
            // (the others are gone), and the addresses meant the old image.
            p.watch.clear();
            let gen = p.watch.gen();
            if let Some(t) = self.tasks.get_mut(&tid) {
                t.dregs = Default::default();
                t.dr_gen = gen;
            }
        }
    }

    /// At an exec stop of `tid`: each engine whose owner may not trace the
    /// new program (a setuid or file-capability program, one its owner
    /// cannot read) leaves the process.
    fn recheck_access(&mut self, tid: Tid) {
        let Some(pid) = self.pid_of(tid) else { return };
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let mut lost = Vec::new();
        let mut decided: Vec<(Arc<Owner>, Result<(), Denied>)> = Vec::new();
        for id in &p.engines {
            let Some(owner) = self.engines.get(id).and_then(|s| s.owner.clone()) else {
                continue;
            };
            // Engines of one client share their owner: one check each.
            let verdict = match decided
                .iter()
                .find(|(o, _)| Arc::ptr_eq(o, &owner) || **o == *owner)
            {
                Some((_, v)) => v.clone(),
                None => {
                    let v = access::check_exec(&owner, pid);
                    decided.push((owner, v.clone()));
                    v
                }
            };
            if let Err(why) = verdict {
                lost.push((*id, why));
            }
        }
        for (id, why) in lost {
            warn!(pid, engine = %id, %why, "exec: the engine's owner may not trace the new program; it leaves the process");
            self.leave_proc(id, pid, tid, why);
        }
    }

    /// Engine `id` leaves process `pid` alone (it lost the right to trace
    /// it), with `why`. Its last process gone, it is detached.
    fn leave_proc(&mut self, id: EngineId, pid: Tid, at_stop: Tid, why: Denied) {
        if !self.engine_on(id, pid) {
            return;
        }
        self.leave(id, &[pid], Some(at_stop));
        if let Some(e) = self.engines.get_mut(&id).and_then(|s| s.engine.as_mut()) {
            e.report_revoked(pid, &why);
        }
        if self.spawns.get(&pid).is_some_and(|sp| sp.engine == id) {
            self.revoked = Some(why);
        }
        if !self.procs.values().any(|p| p.engines.contains(&id)) {
            self.detach_engine(id);
        }
    }

    /// `tid` is in a SIGTRAP stop that no wait has taken yet (the tracer
    /// loop looked with `WNOWAIT`). If it is a hit of our int3, the kernel
    /// gets the rewound `rip` now, while the SIGTRAP is still the task's:
    /// a tracer killed before its wait takes the stop leaves the task to
    /// die of that SIGTRAP; killed after, to run on from the breakpoint's
    /// address. Without this look, a tracer killed between its wait and the
    /// rewind leaves the task to run from one byte past the int3, the
    /// middle of an instruction, with no signal (the wait took it).
    pub fn before_taking(&mut self, tid: Tid) {
        let Some(t) = self.tasks.get_mut(&tid) else {
            return;
        };
        let Some(p) = self.procs.get(&(t.proc as Tid)) else {
            return;
        };
        if t.step_over.is_some() || !p.breakpoints.active() {
            return;
        }
        const SI_KERNEL: i32 = 0x80;
        let Ok(si) = sys::get_siginfo(tid) else {
            return;
        };
        if si.si_signo != libc::SIGTRAP || si.si_code != SI_KERNEL {
            return;
        }
        let Ok(rip) = t.gp_word(gp::RIP) else {
            return;
        };
        let addr = rip.wrapping_sub(1);
        if p.breakpoints.has_int3(addr) && t.set_gp_word_now(gp::RIP, addr).is_ok() {
            t.int3_rewound = Some(addr);
            t.peeked_siginfo = Some(si);
        }
    }

    /// At a `SIGTRAP` of `tid` (`si_code` `code`): the hardware breakpoints
    /// and watchpoints that fired, as armed on the thread when it ran, with
    /// the engines that hold each. A slot changed since (removed, or
    /// another watchpoint now) is a late hit: left out.
    fn watch_hits(&self, tid: Tid, code: i32) -> Vec<(crate::Watchpoint, Vec<EngineId>)> {
        const TRAP_TRACE: i32 = 2;
        const TRAP_HWBKPT: i32 = 4;
        if code != TRAP_HWBKPT && code != TRAP_TRACE {
            return Vec::new();
        }
        let (Some(t), Some(p)) = (
            self.tasks.get(&tid),
            self.pid_of(tid).and_then(|pid| self.procs.get(&pid)),
        ) else {
            return Vec::new();
        };
        let dr6 = match crate::watch::dr6(tid) {
            Ok(v) => v,
            Err(errno) => {
                debug!(tid, %errno, "reading dr6 failed");
                return Vec::new();
            }
        };
        let now = p.watch.regs();
        t.dregs
            .fired(dr6)
            .filter(|&i| {
                let m = arch::dr7_slot_mask(i);
                now.addr[i] == t.dregs.addr[i] && now.dr7 & m == t.dregs.dr7 & m
            })
            .filter_map(|i| p.watch.slot(i))
            .collect()
    }

    /// Report hardware breakpoint and watchpoint hits at `tid`'s stop to
    /// the engines that hold them (one report per engine: its first slot
    /// that fired), and swallow the trap. The hit ends those engines'
    /// single steps.
    fn report_watch_hits(&mut self, tid: Tid, hits: Vec<(crate::Watchpoint, Vec<EngineId>)>) {
        let Some(t) = self.tasks.get_mut(&tid) else {
            return;
        };
        t.pending_signal = 0;
        t.step_range.clear();
        t.stepping
            .retain(|e| !hits.iter().any(|(_, users)| users.contains(e)));
        self.dispatch(
            tid,
            |_| true,
            |e, task| {
                let id = task.engine_id();
                match hits.iter().find(|(_, users)| users.contains(&id)) {
                    Some((w, _)) => e.report_watchpoint(task, w),
                    None => Action::Resume,
                }
            },
        );
    }

    fn on_signal(&mut self, tid: Tid, sig: i32, si: libc::siginfo_t) {
        let Some(t) = self.tasks.get_mut(&tid) else {
            return;
        };
        let pid = t.proc as Tid;
        // Hardware breakpoints and watchpoints that fired (looked at first:
        // the instruction stepped over a breakpoint may be the write).
        let watch_hits = if sig == libc::SIGTRAP && t.dregs.dr7 != 0 {
            self.watch_hits(tid, si.si_code)
        } else {
            Vec::new()
        };
        let t = self.tasks.get_mut(&tid).expect("present above");
        if sig == libc::SIGTRAP {
            if let Some(addr) = t.step_over.take() {
                // Stepped past a breakpoint: put its int3 back (if it is
                // still wanted). An engine's own step ends here too.
                if let Some(p) = self.procs.get_mut(&pid) {
                    if p.breakpoints.has_int3(addr) {
                        let _ = p.write_mem(addr, &[crate::breakpoint::INT3]);
                    }
                }
                let t = self.tasks.get_mut(&tid).expect("present");
                if t.stepping.is_empty() && watch_hits.is_empty() {
                    t.pending_signal = 0;
                    return;
                }
            }
        }
        const TRAP_HWBKPT: i32 = 4;
        if !watch_hits.is_empty() {
            self.report_watch_hits(tid, watch_hits);
            let t = self.tasks.get_mut(&tid).expect("present");
            if t.stepping.is_empty() {
                return;
            }
            // Others' single steps ended at this instruction too: below.
        } else if sig == libc::SIGTRAP && si.si_code == TRAP_HWBKPT {
            // A debug register fired that no engine holds now (removed
            // while this trap was on its way, or left by an earlier
            // tracer): only a tracer arms them, so it is never the
            // program's.
            debug!(
                tid,
                "a hardware breakpoint or watchpoint no engine holds fired; swallowed"
            );
            if let Some(t) = self.tasks.get_mut(&tid) {
                t.pending_signal = 0;
            }
            return;
        }
        let t = self.tasks.get_mut(&tid).expect("caller checked");
        const SI_KERNEL: i32 = 0x80;
        if sig == libc::SIGTRAP
            && si.si_code == SI_KERNEL
            && self
                .procs
                .get(&pid)
                .is_some_and(|p| !p.breakpoints.is_empty())
        {
            let (addr, rewound) = match t.int3_rewound.take() {
                Some(addr) => (addr, true),
                None => (t.gp_word(gp::RIP).unwrap_or(0).wrapping_sub(1), false),
            };
            let owners = self
                .procs
                .get(&pid)
                .map(|p| p.breakpoints.owners(addr))
                .unwrap_or_default();
            if owners.is_empty() {
                // A late hit of a breakpoint removed while this SIGTRAP was
                // on its way: if no int3 is there now, it was ours. Back up
                // and carry on; a program's own int3 is still delivered.
                let p = self.procs.get_mut(&pid).expect("checked above");
                let mut now = [0u8; 1];
                let ours = p.breakpoints.was_removed(addr)
                    && p.mem.read(pid, addr, &mut now) == Ok(1)
                    && now[0] != crate::breakpoint::INT3;
                if ours {
                    let t = self.tasks.get_mut(&tid).expect("caller checked");
                    let _ = t.set_gp_word_now(gp::RIP, addr);
                    t.pending_signal = 0;
                    return;
                }
            } else {
                // Our int3: back up to the breakpoint, swallow the SIGTRAP,
                // and tell its owners (and only them). The kernel gets the
                // rewound rip now, not at the resume: our wait consumed the
                // SIGTRAP, so were this tracer killed while the task sits
                // here, the kernel would run it on from the registers it
                // has, and rip one past the int3 is the middle of an
                // instruction (measured: SIGSEGV, SIGILL, a smashed stack).
                // At the int3 it dies of a clean SIGTRAP, or runs on if the
                // keeper was first to put the byte back; and while no other
                // thread runs, the original byte goes back now (the site is
                // disarmed), so it runs on, whoever is first. (While int3s
                // are placed, the tracer loop has done this before its wait
                // took the SIGTRAP: `before_taking`.)
                if !rewound {
                    let _ = t.set_gp_word_now(gp::RIP, addr);
                }
                let Core { procs, tasks, .. } = self;
                let p = procs.get_mut(&pid).expect("checked above");
                let alone = p
                    .tasks
                    .iter()
                    .all(|x| *x == tid || tasks.get(x).is_none_or(|o| o.run == RunState::Stopped));
                if alone {
                    p.change_breakpoints(false, |b, io| b.disarm(addr, io));
                }
                let t = self.tasks.get_mut(&tid).expect("caller checked");
                t.pending_signal = 0;
                // A breakpoint in a stepped range ends the range step.
                t.step_range.clear();
                self.dispatch(
                    tid,
                    |s| s.events.contains(EventMask::BREAKPOINT),
                    |e, task| {
                        if owners.contains(&task.engine_id()) {
                            e.report_breakpoint(task, addr)
                        } else {
                            Action::Resume
                        }
                    },
                );
                return;
            }
        }
        let t = self.tasks.get_mut(&tid).expect("caller checked");
        if sig == libc::SIGTRAP && !t.stepping.is_empty() {
            // Our single step finished: report it and swallow the trap.
            t.pending_signal = 0;
            let mut stepped = std::mem::take(&mut t.stepping);
            if !t.step_range.is_empty() {
                // Range steps still in their range step again, unreported
                // (the resume after this stop is a single step).
                let rip = t.gp_word(gp::RIP).unwrap_or(0);
                let inside = |id: &EngineId| {
                    t.step_range
                        .iter()
                        .any(|(e, s, end)| e == id && (*s..*end).contains(&rip))
                };
                let (again, done): (Vec<EngineId>, Vec<EngineId>) =
                    stepped.into_iter().partition(inside);
                t.step_range.retain(|(e, ..)| again.contains(e));
                for id in again {
                    if !t.step_for.contains(&id) {
                        t.step_for.push(id);
                    }
                }
                stepped = done;
                if stepped.is_empty() {
                    return;
                }
            }
            self.dispatch(
                tid,
                |_| true,
                |e, task| {
                    if stepped.contains(&task.engine_id()) {
                        e.report_step(task)
                    } else {
                        Action::Resume
                    }
                },
            );
            return;
        }
        if t.prelude {
            return;
        }
        // A trace trap we did not ask for: an engine set eflags.TF (e.g. with
        // a batch's update_register_bits). Report it as a step to engines
        // that want steps and swallow it; delivered, SIGTRAP would kill.
        const TRAP_TRACE: i32 = 2;
        if sig == libc::SIGTRAP && si.si_code == TRAP_TRACE {
            let pid = t.proc as Tid;
            let wanted = self.procs.get(&pid).is_some_and(|p| {
                p.engines.iter().any(|id| {
                    self.engines
                        .get(id)
                        .is_some_and(|s| s.events.contains(EventMask::STEP))
                })
            });
            if t.tf_by_engine {
                // Ours: never the program's. Once TF is clear again, this
                // was the last one.
                t.pending_signal = 0;
                if t.gp_word(gp::EFLAGS)
                    .is_ok_and(|f| f & arch::EFLAGS_TF == 0)
                {
                    t.tf_by_engine = false;
                }
                if !wanted {
                    return;
                }
            }
            if wanted {
                if let Some(t) = self.tasks.get_mut(&tid) {
                    t.pending_signal = 0;
                }
                self.dispatch(
                    tid,
                    |s| s.events.contains(EventMask::STEP),
                    |e, task| e.report_step(task),
                );
                return;
            }
        }
        // A process sent it (code <= 0), or the kernel for a child.
        let from_process = si.si_code <= 0 || sig == libc::SIGCHLD;
        let report = SignalReport {
            signo: sig,
            code: si.si_code,
            sender_pid: if from_process {
                // SAFETY: for SI_USER/SI_TKILL/SI_QUEUE (code <= 0), and a
                // kernel SIGCHLD, si_pid is valid.
                unsafe { si.si_pid() }
            } else {
                0
            },
            sender_uid: if from_process {
                // SAFETY: as si_pid above.
                unsafe { si.si_uid() }
            } else {
                0
            },
            child: (sig == libc::SIGCHLD && si.si_code > 0).then(|| {
                // SAFETY: a kernel SIGCHLD's siginfo carries the child's fields.
                unsafe {
                    crate::event::ChildInfo {
                        status: si.si_status(),
                        utime: si.si_utime(),
                        stime: si.si_stime(),
                    }
                }
            }),
            addr: if matches!(
                sig,
                libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
            ) && si.si_code > 0
            {
                // SAFETY: for kernel-generated fault signals si_addr is valid.
                unsafe { si.si_addr() as u64 }
            } else {
                0
            },
        };
        self.dispatch(
            tid,
            |s| s.events.contains(EventMask::SIGNAL),
            |e, task| {
                let a = e.report_signal(task, &report);
                fold_signal(task.state, a.disposition);
                a.action
            },
        );
    }

    fn on_death(&mut self, tid: Tid, status: ExitStatus) {
        self.unknown.remove(&tid);
        let Some(mut t) = self.tasks.remove(&tid) else {
            trace!(tid, ?status, "death of an untracked task");
            return;
        };
        fail_waiters(&mut t);
        let pid = t.proc as Tid;
        if let Some(sp) = self.spawns.remove(&pid) {
            // The child died before its exec: the spawn failed.
            self.drop_engine(sp.engine);
            if let Some(p) = self.procs.remove(&pid) {
                for tid in p.tasks {
                    self.tasks.remove(&tid);
                }
            }
            sp.fail(status);
            return;
        }
        // Its last uprobe hits (and losses) come before its death.
        let process_gone = match self.procs.get_mut(&pid) {
            Some(p) => {
                p.tasks.retain(|x| *x != tid);
                p.breakpoints.thread_gone(tid);
                p.tasks.is_empty()
            }
            None => true,
        };
        self.deliver_hits(pid, Some(tid));
        let report = ExitReport {
            tid,
            pid,
            status,
            process_gone,
        };
        debug!(tid, pid, ?status, process_gone, "task died");
        let ids = self
            .procs
            .get(&pid)
            .map(|p| p.engines.clone())
            .unwrap_or_default();
        for id in ids {
            if let Some(slot) = self.engines.get_mut(&id) {
                if slot.events.contains(EventMask::DEATH) {
                    if let Some(e) = slot.engine.as_mut() {
                        e.report_death(&report);
                    }
                }
            }
        }
        if process_gone {
            self.procs.remove(&pid);
        }
    }

    /// A ptrace request failed while handling a stop. ESRCH means the task was
    /// killed (SIGKILL takes it out of any stop): its death will be reported.
    /// `PTRACE_GET_SYSCALL_INFO` at `tid`'s stop; `None` if the task
    /// vanished (its death follows).
    fn syscall_info(&mut self, tid: Tid) -> Option<sys::RawSyscallInfo> {
        match sys::get_syscall_info(tid) {
            Ok(i) => Some(i),
            Err(e) => {
                self.vanishing(tid, "PTRACE_GET_SYSCALL_INFO", e);
                None
            }
        }
    }

    fn vanishing(&mut self, tid: Tid, op: &'static str, errno: Errno) {
        if errno != Errno::ESRCH {
            warn!(tid, op, %errno, "ptrace request failed while handling a stop");
        }
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.set_run(RunState::Running);
            t.stop = None;
        }
    }

    // ---- resuming ---------------------------------------------------------

    /// Resume `tid` if it is stopped and no engine holds it.
    pub fn maybe_resume(&mut self, tid: Tid) {
        // An int3 just placed where our uprobes are (in any process) is
        // taken by the kernel's uprobe at its first hit, and erased: the
        // uprobes become int3s before this task (or any) runs again.
        self.resolve_conflicts();
        let Some(t) = self.tasks.get(&tid) else {
            return;
        };
        if t.run != RunState::Stopped || !t.holds.is_empty() {
            return;
        }
        let pid = t.proc as Tid;
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let spawning = self.spawns.contains_key(&pid);
        if p.engines.is_empty() && p.filter.is_none() && !spawning {
            self.detach_task(tid);
            return;
        }
        debug_assert_eq!(
            p.view,
            SyscallView::of(&self.engines, p),
            "a process's syscall view is kept up to date"
        );
        let mode = p.view.mode;
        let wants_any = p.view.wants_any;
        // Only the generation per resume; the registers themselves only
        // when this thread's are stale (rare: after a change).
        let watch_gen = p.watch.gen();
        let watch_regs = (t.dr_gen != watch_gen).then(|| *p.watch.regs());
        let mut rearm = p.breakpoints.any_disarmed();
        let t = self.tasks.get_mut(&tid).expect("present above");
        let prelude = t.prelude;
        let how = if t.stop == Some(StopKind::GroupStop) {
            Resume::Listen
        } else if !t.step_for.is_empty() {
            Resume::SingleStep
        } else if prelude && p.filter.is_none() && wants_any {
            Resume::Syscall
        } else {
            match mode {
                SyscallMode::Ptrace if wants_any => Resume::Syscall,
                SyscallMode::Ptrace => Resume::Cont,
                SyscallMode::Seccomp => Resume::Cont,
            }
        };
        // In seccomp mode a syscall's exit is seen only if we ask for it now.
        let how = match (how, t.in_syscall) {
            (Resume::Cont, Some(e)) if wants_any && p.view.exits.contains(e.nr) => Resume::Syscall,
            (how, _) => how,
        };
        // Resuming at a breakpoint: restore its byte for one instruction.
        let how = if how != Resume::Listen && p.breakpoints.active() {
            match t.gp_word(gp::RIP) {
                Ok(rip) if p.breakpoints.has_int3(rip) => {
                    let orig = p.breakpoints.map[&rip].orig;
                    let pm = self.procs.get_mut(&pid).expect("present above");
                    if !pm.breakpoints.take_disarmed(rip) {
                        let _ = pm.write_mem(rip, &[orig]);
                    }
                    rearm = pm.breakpoints.any_disarmed();
                    t.step_over = Some(rip);
                    Resume::SingleStep
                }
                _ => how,
            }
        } else {
            how
        };
        if how == Resume::Cont {
            t.in_syscall = None;
        }
        let sig = if t.stop == Some(StopKind::Signal) {
            t.pending_signal
        } else {
            0
        };
        if let (true, Some(regs)) = (how != Resume::Listen, watch_regs) {
            // The process's hardware breakpoints and watchpoints changed
            // (or this thread is new): it takes them before it runs.
            if let Err(errno) = regs.apply(tid, &t.dregs) {
                warn!(tid, %errno, "setting the debug registers failed: this thread's hardware breakpoints and watchpoints may not fire");
            }
            t.dregs = regs;
            t.dr_gen = watch_gen;
        }
        if let Err(e) = t.flush_registers() {
            warn!(tid, error = %e, "writing registers back failed");
        }
        // A thread runs: no site stays disarmed (but the one it steps
        // over). Known from the process looked up above: no second lookup
        // on this hot path when none is.
        if rearm {
            if let Some(pm) = self.procs.get_mut(&pid) {
                pm.change_breakpoints(false, |b, io| b.rearm(io));
            }
        }
        if how == Resume::SingleStep && !t.step_for.is_empty() {
            let steps = std::mem::take(&mut t.step_for);
            t.stepping = steps;
        }
        t.stop = if how == Resume::Listen {
            Some(StopKind::GroupStop)
        } else {
            None
        };
        t.pending_signal = 0;
        t.skipped = None;
        t.int3_rewound = None;
        t.resumed_with = how;
        t.set_run(if how == Resume::Listen {
            RunState::GroupStop
        } else {
            RunState::Running
        });
        if let Err(e) = sys::resume(tid, how, sig) {
            self.vanishing(tid, "resume", e);
        }
    }

    /// The masks of engines `ids` changed (or they joined or left
    /// processes): update the syscall views of their processes, and
    /// interrupt running tasks whose resume mode is now wrong, so the next
    /// resume applies the new mode. Processes without these engines are not
    /// looked at.
    fn update_views(&mut self, ids: &[EngineId]) {
        let mut to_interrupt = Vec::new();
        for p in self.procs.values_mut() {
            if !p.engines.iter().any(|e| ids.contains(e)) {
                continue;
            }
            p.view = SyscallView::of(&self.engines, p);
            if !p.view.needs_syscall_stops() {
                continue;
            }
            for tid in &p.tasks {
                let Some(t) = self.tasks.get(tid) else {
                    continue;
                };
                if t.run == RunState::Running
                    && !t.interrupt_sent
                    && t.started
                    && t.resumed_with == Resume::Cont
                {
                    to_interrupt.push(*tid);
                }
            }
        }
        for tid in to_interrupt {
            self.interrupt(tid);
        }
    }

    pub fn interrupt(&mut self, tid: Tid) {
        trace!(tid, "interrupt requested");
        if let Some(t) = self.tasks.get_mut(&tid) {
            if t.interrupt_sent {
                return;
            }
            match sys::interrupt(tid) {
                Ok(()) => t.interrupt_sent = true,
                Err(e) => debug!(tid, %e, "PTRACE_INTERRUPT failed"),
            }
        }
    }

    fn detach_task(&mut self, tid: Tid) {
        let Some(t) = self.tasks.get_mut(&tid) else {
            return;
        };
        let sig = if t.stop == Some(StopKind::Signal) {
            t.pending_signal
        } else {
            0
        };
        if let Err(e) = t.flush_registers() {
            debug!(tid, error = %e, "register write-back before detach failed");
        }
        // PTRACE_DETACH leaves debug registers armed, and a hit of one in an
        // untraced thread is a SIGTRAP that kills it: disarm them.
        if t.dregs != Default::default() {
            if let Err(errno) = crate::watch::DebugRegs::default().apply(tid, &t.dregs) {
                warn!(tid, %errno, "clearing the debug registers before detaching failed");
            }
            t.dregs = Default::default();
        }
        // Untraced, it runs: no reader may take it for stopped from here.
        t.set_run(RunState::Running);
        match sys::detach(tid, sig) {
            Ok(()) => debug!(tid, "detached"),
            Err(Errno::ESRCH) if std::path::Path::new(&format!("/proc/{tid}")).exists() => {
                // A SIGKILL took it out of its stop: it is still traced, and
                // will stop again at its exit (PTRACE_EVENT_EXIT). Keep it,
                // and detach it then (or forget it at its death); dropped
                // now, it would wait in that stop for good.
                debug!(
                    tid,
                    "PTRACE_DETACH: no longer stopped (killed?); detaching at its next stop"
                );
                return;
            }
            Err(e) => debug!(tid, %e, "PTRACE_DETACH failed (task gone?)"),
        }
        let Some(mut t) = self.tasks.remove(&tid) else {
            return;
        };
        fail_waiters(&mut t);
        let pid = t.proc as Tid;
        if let Some(p) = self.procs.get_mut(&pid) {
            p.tasks.retain(|x| *x != tid);
            if p.tasks.is_empty() {
                self.procs.remove(&pid);
            }
        }
    }

    // ---- commands ---------------------------------------------------------

    /// Attach engine `id` to an already traced process.
    pub fn join_proc(&mut self, pid: Tid, id: EngineId) -> Vec<Tid> {
        let tids = match self.procs.get_mut(&pid) {
            Some(p) => {
                p.engines.push(id);
                p.engines_changed();
                p.tasks.clone()
            }
            None => return Vec::new(),
        };
        self.update_views(&[id]);
        tids
    }

    /// Remove engine `id` everywhere; tasks left with no engine are detached
    /// (unless their tree depends on us for its seccomp filter).
    pub fn detach_engine(&mut self, id: EngineId) {
        if !self.engines.contains_key(&id) {
            return;
        }
        let pids = self.pids_of(id);
        // Hits its uprobes recorded (or counted) before now are its own:
        // delivered first (a probe's last counts include them).
        for pid in &pids {
            self.flush_counts_of(*pid);
        }
        let Some(mut slot) = self.engines.remove(&id) else {
            return;
        };
        self.system_time_engines -= usize::from(slot.system_times);
        if let Some(e) = slot.engine.as_mut() {
            e.report_detached();
        }
        self.leave(id, &pids, None);
        debug!(engine = %id, "engine detached");
    }

    /// Engine `id` leaves process `pid` at its own request
    /// ([`crate::Tracer::leave_process`]); its last process left, it is
    /// detached.
    pub fn leave_process(&mut self, id: EngineId, pid: Tid) -> Result<()> {
        self.check_engine(id)?;
        if !self.engine_on(id, pid) {
            return Err(Error::NotOnProcess { engine: id, pid });
        }
        self.leave_one(id, pid, None);
        Ok(())
    }

    /// Whether engine `id` traces process `pid`.
    fn engine_on(&self, id: EngineId, pid: Tid) -> bool {
        self.procs
            .get(&pid)
            .is_some_and(|p| p.engines.contains(&id))
    }

    /// Engine `id` leaves process `pid` at its own request (its hits there
    /// delivered first, then told with `report_left`); its last process
    /// left, it is detached. `at_stop`: as [`Core::leave`]'s (an
    /// [`Action::Leave`] at that thread's stop, whose end resumes or
    /// detaches it).
    fn leave_one(&mut self, id: EngineId, pid: Tid, at_stop: Option<Tid>) {
        if !self.engine_on(id, pid) {
            return;
        }
        self.flush_counts_of(pid);
        self.leave(id, &[pid], at_stop);
        if let Some(e) = self.engines.get_mut(&id).and_then(|s| s.engine.as_mut()) {
            e.report_left(pid);
        }
        if !self.procs.values().any(|p| p.engines.contains(&id)) {
            self.detach_engine(id);
        }
        debug!(engine = %id, pid, "engine left a process");
    }

    /// Engine `id` leaves processes `pids`: its breakpoints there go (bytes
    /// nobody else needs are restored), and so do its holds, waiters and
    /// steps on their tasks; a task left with no engine is detached. Task
    /// `at_stop`, whose stop is being handled, is left to that (it resumes
    /// or detaches it).
    fn leave(&mut self, id: EngineId, pids: &[Tid], at_stop: Option<Tid>) {
        let mut affected = Vec::new();
        let mut rewatched = Vec::new();
        for pid in pids {
            let Some(p) = self.procs.get_mut(pid) else {
                continue;
            };
            if !p.engines.contains(&id) {
                continue;
            }
            p.engines.retain(|x| *x != id);
            p.engines_changed();
            p.view = SyscallView::of(&self.engines, p);
            affected.extend(p.tasks.iter().copied());
            p.change_breakpoints(true, |b, io| b.remove_engine(id, io));
            if p.watch.remove_engine(id) {
                rewatched.push(*pid);
            }
        }
        for pid in rewatched {
            self.watch_reaches_running(pid);
        }
        for tid in affected {
            let Some(t) = self.tasks.get_mut(&tid) else {
                continue;
            };
            let at_stop = at_stop == Some(tid);
            let (gone, kept) = std::mem::take(&mut t.waiters)
                .into_iter()
                .partition::<Vec<_>, _>(|(e, _)| *e == id);
            t.waiters = kept;
            for (_, w) in gone {
                w(Err(Error::NotAttached { engine: id, tid }));
            }
            let t = self.tasks.get_mut(&tid).expect("present above");
            t.hold_next.retain(|e| *e != id);
            t.holds.remove(&id);
            t.step_for.retain(|x| *x != id);
            t.stepping.retain(|x| *x != id);
            t.quiesce_for.retain(|x| *x != id);
            t.child_start_for.retain(|x| *x != id);
            let pid = t.proc as Tid;
            let orphan = self
                .procs
                .get(&pid)
                .is_some_and(|p| p.engines.is_empty() && p.filter.is_none());
            match t.run {
                _ if at_stop => {}
                RunState::Stopped => self.maybe_resume(tid),
                RunState::Running | RunState::GroupStop if orphan => {
                    // Detach needs a stop: interrupt, and detach when it comes.
                    self.interrupt(tid);
                }
                _ => {}
            }
        }
    }

    pub fn control(&mut self, id: EngineId, tid: Tid, action: Action) -> Result<()> {
        self.check_attached(id, tid)?;
        let t = self.tasks.get_mut(&tid).ok_or(Error::NoSuchTask(tid))?;
        match action {
            Action::Detach => {
                self.detach_engine(id);
                return Ok(());
            }
            Action::Leave => {
                let pid = t.proc as Tid;
                return self.leave_process(id, pid);
            }
            Action::Stop if t.run != RunState::Stopped => {
                if !t.hold_next.contains(&id) {
                    t.hold_next.push(id);
                }
                self.interrupt(tid);
                return Ok(());
            }
            Action::SingleStep if t.run != RunState::Stopped => {
                return Err(Error::NotStopped(tid));
            }
            Action::Resume if t.run != RunState::Stopped => {
                // Not held yet: a hold asked for its next stop is called off.
                t.hold_next.retain(|e| *e != id);
            }
            _ => apply_action(t, id, action, Answer::Command, &mut self.detach_later),
        }
        self.settle(tid);
        Ok(())
    }

    pub fn kill(&mut self, id: EngineId, pid: Tid) -> Result<()> {
        self.check_attached(id, pid)?;
        let pid = self.pid_of(pid).ok_or(Error::NoSuchTask(pid))?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|errno| Error::Sys {
            op: "kill",
            tid: pid,
            errno,
        })
    }

    pub fn check_engine(&self, id: EngineId) -> Result<()> {
        if self.engines.contains_key(&id) {
            Ok(())
        } else {
            Err(Error::NoSuchEngine(id))
        }
    }

    pub fn check_attached(&self, id: EngineId, tid: Tid) -> Result<()> {
        if !self.engines.contains_key(&id) {
            return Err(Error::NoSuchEngine(id));
        }
        let pid = self.pid_of(tid).ok_or(Error::NoSuchTask(tid))?;
        match self.procs.get(&pid) {
            Some(p) if p.engines.contains(&id) => Ok(()),
            _ => Err(Error::NotAttached { engine: id, tid }),
        }
    }

    /// Ask for `report_quiesce` to engine `id` at the task's next stop.
    pub fn request_quiesce(&mut self, id: EngineId, tid: Tid) -> Result<()> {
        self.check_attached(id, tid)?;
        let t = self.tasks.get_mut(&tid).expect("checked");
        t.quiesce_for.push(id);
        if t.run == RunState::Stopped {
            self.report_quiesce(tid);
            self.settle(tid);
        } else {
            self.interrupt(tid);
        }
        Ok(())
    }

    /// Run `w` on `tid` while it is stopped: now if it is, else (with
    /// `interrupt`) at the stop an interrupt brings.
    pub fn with_stopped(&mut self, id: EngineId, tid: Tid, interrupt: bool, w: Waiter) {
        if let Err(e) = self.check_attached(id, tid) {
            return w(Err(e));
        }
        let run = self.tasks.get(&tid).map(|t| t.run);
        match run {
            Some(RunState::Stopped) => {
                self.with_task(tid, id, |task| w(task));
                self.apply_after(tid);
                self.settle(tid);
            }
            Some(_) if interrupt => {
                if let Some(t) = self.tasks.get_mut(&tid) {
                    t.waiters.push((id, w));
                }
                self.interrupt(tid);
            }
            Some(_) => w(Err(Error::NotStopped(tid))),
            None => w(Err(Error::NoSuchTask(tid))),
        }
    }

    pub fn set_events(
        &mut self,
        id: EngineId,
        events: EventMask,
        syscalls: SyscallSet,
    ) -> Result<()> {
        let slot = self.engines.get_mut(&id).ok_or(Error::NoSuchEngine(id))?;
        slot.events = events;
        slot.syscalls = syscalls;
        self.update_views(&[id]);
        Ok(())
    }

    /// Detach every engine; kill trees that depend on our seccomp filter.
    /// Idempotent.
    pub fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        let mut ids: Vec<EngineId> = self.engines.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.detach_engine(id);
        }
        for p in self.procs.values() {
            if p.filter.is_some() {
                warn!(
                    pid = p.pid,
                    "killing a program spawned with kernel-side filtering: it cannot run untraced"
                );
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Drop for Core {
    /// A tracer thread that unwinds (a panic) still restores every byte it
    /// wrote and detaches every task before it goes: the tasks run on.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A decoded stop: what is to be reported to the engines.
enum Decoded {
    /// Nothing to report (an interrupt's trap, a stop of the spawn's
    /// prelude, the seccomp stop after an entry stop).
    Nothing,
    /// The thread entered a group-stop by this signal.
    GroupStop {
        sig: i32,
    },
    Entry(SyscallEntry),
    Exit(SyscallExit),
    /// A ptrace event (clone, fork, vfork, exec, exit) and its message.
    Event {
        event: i32,
        msg: u64,
    },
    Signal {
        sig: i32,
        si: libc::siginfo_t,
    },
}

/// Record a syscall entry stop on `t`; report it unless in the prelude.
fn entry_stop(t: &mut TaskState, entry: SyscallEntry, stime_us: Option<u64>) -> Decoded {
    t.stop = Some(StopKind::SyscallEntry(entry));
    t.in_syscall = Some(entry);
    t.entry_stime_us = stime_us;
    t.skipped = None;
    if t.prelude && !is_execve(&entry) {
        Decoded::Nothing
    } else {
        Decoded::Entry(entry)
    }
}

/// Who gave an action.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// An engine's answer to a report.
    Report,
    /// A command acting on the engine's standing at a stop: `control`, a
    /// batch's `Control`, a decision.
    Command,
}

/// The one place an engine's action takes effect on a stopped task. `Stop`
/// holds it for `id`; `SingleStep` releases `id`'s hold and asks for one
/// step; `Detach` is deferred to [`Core::settle`] (pushed on `detach`).
/// `Resume` from a command releases `id`'s hold; as a report's answer it
/// only says "no hold from this report": a hold the engine took otherwise at
/// this stop (`control(Stop)` while the task ran, a batch's `Control`)
/// stands.
/// What engines asked at a stop that waits for its end ([`Core::settle`]):
/// to detach, or to leave a process (engine, pid).
#[derive(Default)]
struct Later {
    detach: Vec<EngineId>,
    leave: Vec<(EngineId, Tid)>,
}

fn apply_action(t: &mut TaskState, id: EngineId, action: Action, from: Answer, later: &mut Later) {
    match action {
        Action::Resume => {
            if from == Answer::Command {
                t.holds.remove(&id);
            }
        }
        Action::Stop => {
            t.holds.insert(id);
        }
        Action::SingleStep => {
            t.holds.remove(&id);
            if !t.step_for.contains(&id) {
                t.step_for.push(id);
            }
        }
        Action::Detach => later.detach.push(id),
        Action::Leave => later.leave.push((id, t.proc as Tid)),
    }
}

/// The one rule for a signal's fate at a signal-delivery stop, whoever
/// decides it (an engine's answer to the report, a batch's `Control`, a
/// decision), applied in the order they come: a suppression stands for the
/// rest of the stop; otherwise the latest replacement counts.
fn fold_signal(t: &mut TaskState, d: SignalDisposition) {
    if t.stop != Some(StopKind::Signal) || t.signal_suppressed {
        return;
    }
    match d {
        SignalDisposition::Deliver => {}
        SignalDisposition::Suppress => {
            t.pending_signal = 0;
            t.signal_suppressed = true;
        }
        SignalDisposition::Replace(sig) => t.pending_signal = sig,
    }
}

/// Answer the closures waiting for a task that is gone.
fn fail_waiters(t: &mut TaskState) {
    for (_, w) in std::mem::take(&mut t.waiters) {
        w(Err(Error::TaskExited(t.tid)));
    }
}

fn args_of(data: &[u64; 8]) -> [u64; 6] {
    [data[1], data[2], data[3], data[4], data[5], data[6]]
}

fn is_execve(e: &SyscallEntry) -> bool {
    e.arch == arch::AUDIT_ARCH
        && (e.nr == libc::SYS_execve as u64 || e.nr == libc::SYS_execveat as u64)
}

/// An exit stop whose entry we did not see (attached mid-syscall): rebuild it.
fn entry_from_regs(t: &mut TaskState, arch_: u32) -> Result<SyscallEntry> {
    let nr = t.gp_word(gp::ORIG_RAX)?;
    let mut args = [0u64; 6];
    for (a, off) in args.iter_mut().zip(gp::ARGS) {
        *a = t.gp_word(off)?;
    }
    Ok(SyscallEntry {
        nr,
        args,
        arch: arch_,
        from_seccomp: false,
    })
}
