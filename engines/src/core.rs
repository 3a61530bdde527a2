//! The core: every traced task and attached engine, owned by the tracer
//! thread. It decodes each stop, reports it to the engines that want it (in
//! attach order), combines their actions, and resumes the task the way the
//! engines' masks need (`PTRACE_CONT`, `PTRACE_SYSCALL`, a single step, or
//! `PTRACE_LISTEN` for a group-stop) once no engine holds it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tracing::{debug, trace, warn};

use crate::arch::{self, gp};
use crate::engine::{Action, Engine, EngineId, EngineOptions, SignalDisposition};
use crate::error::{Error, Result};
use crate::event::{
    CloneKind, CloneReport, EventMask, ExecReport, ExitReport, ExitStatus, SignalReport,
    SyscallEntry, SyscallExit, SyscallSet,
};
use crate::spawn::PendingSpawn;
use crate::sys::{self, Errno, Resume, Tid};
use crate::task::{EngineCfg, MemFile, RunState, StopKind, SyscallMode, Task, TaskState};

/// A closure waiting to run on a stopped task (see `Tracer::with_stopped`).
pub(crate) type Waiter = Box<dyn FnOnce(Result<&mut Task<'_>>) + Send>;

/// Options every seized task gets.
pub(crate) const BASE_OPTIONS: u32 = sys::PTRACE_O_TRACESYSGOOD
    | sys::PTRACE_O_TRACECLONE
    | sys::PTRACE_O_TRACEFORK
    | sys::PTRACE_O_TRACEVFORK
    | sys::PTRACE_O_TRACEEXEC
    | sys::PTRACE_O_TRACEEXIT;

pub(crate) struct EngineSlot {
    /// `None` only while one of its callbacks runs.
    engine: Option<Box<dyn Engine>>,
    events: EventMask,
    syscalls: SyscallSet,
    follow_children: bool,
}

impl EngineSlot {
    #[inline]
    fn wants_syscall(&self, bit: EventMask, nr: u64) -> bool {
        self.events.contains(bit) && self.syscalls.contains(nr)
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
}

pub(crate) struct Core {
    pub tasks: HashMap<Tid, TaskState>,
    pub procs: HashMap<Tid, Proc>,
    engines: BTreeMap<EngineId, EngineSlot>,
    next_engine: u64,
    /// Stops of new tasks that arrived before their parent's clone event.
    unknown: HashMap<Tid, i32>,
    pub spawns: HashMap<Tid, PendingSpawn>,
    waiters: HashMap<Tid, Vec<(EngineId, Waiter)>>,
    /// Engines to hold a task at its next stop (`control(Stop)` on a running task).
    hold_next: HashMap<Tid, Vec<EngineId>>,
    /// Engines whose masks changed in a callback: running tasks may need a new mode.
    masks_changed: bool,
    /// Engines that asked to detach during a stop's handling; detached by
    /// [`Core::settle`] once the stop is handled (a detach may resume the
    /// task, which must not happen before its signal's fate is decided).
    detach_later: Vec<EngineId>,
    scratch: Vec<EngineId>,
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
}

impl Core {
    pub fn new() -> Self {
        Core {
            tasks: HashMap::new(),
            procs: HashMap::new(),
            engines: BTreeMap::new(),
            next_engine: 1,
            unknown: HashMap::new(),
            spawns: HashMap::new(),
            waiters: HashMap::new(),
            hold_next: HashMap::new(),
            masks_changed: false,
            detach_later: Vec::new(),
            scratch: Vec::new(),
            shutting_down: false,
            shut_down: false,
            stats: TracerStats::default(),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty() && self.spawns.is_empty()
    }

    pub fn add_engine(&mut self, engine: Box<dyn Engine>, opts: EngineOptions) -> EngineId {
        let id = EngineId(self.next_engine);
        self.next_engine += 1;
        self.engines.insert(
            id,
            EngineSlot {
                engine: Some(engine),
                events: opts.events,
                syscalls: opts.syscalls,
                follow_children: opts.follow_children,
            },
        );
        id
    }

    /// Forget an engine that never attached (a failed spawn or attach).
    pub fn drop_engine(&mut self, id: EngineId) {
        self.engines.remove(&id);
    }

    pub fn new_proc(&mut self, pid: Tid, engines: Vec<EngineId>, filter: Option<Arc<SyscallSet>>) {
        self.procs.insert(
            pid,
            Proc {
                pid,
                tasks: Vec::new(),
                engines,
                filter,
                mem: MemFile::default(),
                breakpoints: Default::default(),
            },
        );
    }

    pub fn new_task(&mut self, tid: Tid, pid: Tid) -> &mut TaskState {
        if let Some(p) = self.procs.get_mut(&pid) {
            if !p.tasks.contains(&tid) {
                p.tasks.push(tid);
            }
        }
        self.tasks.insert(tid, TaskState::new(tid, pid as u64));
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
                    mode: self.mode(p),
                    engines: p.engines.clone(),
                    holds: t.holds.iter().copied().collect(),
                })
            })
            .collect();
        out.sort_by_key(|i| (i.pid, i.tid));
        out
    }

    /// How syscalls of `p` reach us: kernel-side if its filter covers every
    /// syscall any engine wants, otherwise `PTRACE_SYSCALL`.
    fn mode(&self, p: &Proc) -> SyscallMode {
        let Some(filter) = &p.filter else {
            return SyscallMode::Ptrace;
        };
        for id in &p.engines {
            if let Some(s) = self.engines.get(id) {
                if s.events.intersects(EventMask::SYSCALLS) && !s.syscalls.is_subset(filter) {
                    return SyscallMode::Ptrace;
                }
            }
        }
        SyscallMode::Seccomp
    }

    fn wants_any_syscall(&self, p: &Proc) -> bool {
        p.engines.iter().any(|id| {
            self.engines
                .get(id)
                .is_some_and(|s| s.events.intersects(EventMask::SYSCALLS) && !s.syscalls.is_empty())
        })
    }

    // ---- dispatch ---------------------------------------------------------

    /// Call `f` for each engine of `tid`'s process that `want`s this report,
    /// in attach order, and apply the actions. Returns the engines' results.
    fn dispatch<R>(
        &mut self,
        tid: Tid,
        want: impl Fn(&EngineSlot) -> bool,
        mut f: impl FnMut(&mut dyn Engine, &mut Task<'_>) -> (Action, R),
    ) -> Vec<R> {
        let mut out = Vec::new();
        let Some(pid) = self.pid_of(tid) else {
            return out;
        };
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        if let Some(p) = self.procs.get(&pid) {
            ids.extend_from_slice(&p.engines);
        }
        let mode = self
            .procs
            .get(&pid)
            .map_or(SyscallMode::Ptrace, |p| self.mode(p));
        let mut detach = Vec::new();
        for &id in &ids {
            let (Some(slot), Some(state), Some(proc_)) = (
                self.engines.get_mut(&id),
                self.tasks.get_mut(&tid),
                self.procs.get_mut(&pid),
            ) else {
                continue;
            };
            if !proc_.engines.contains(&id) || !want(slot) {
                continue;
            }
            let Some(mut engine) = slot.engine.take() else {
                continue;
            };
            let before = (slot.events, slot.syscalls.clone());
            let mut task = Task {
                state,
                pid,
                mode,
                mem: &mut proc_.mem,
                bps: &mut proc_.breakpoints,
                engine: EngineCfg {
                    id,
                    events: &mut slot.events,
                    syscalls: &mut slot.syscalls,
                },
            };
            let (action, r) = f(engine.as_mut(), &mut task);
            self.stats.reports += 1;
            slot.engine = Some(engine);
            if before.0 != slot.events || before.1 != slot.syscalls {
                self.masks_changed = true;
            }
            out.push(r);
            let state = self.tasks.get_mut(&tid).expect("present above");
            match action {
                Action::Resume => {}
                Action::Stop => {
                    state.holds.insert(id);
                }
                Action::SingleStep => state.step_for.push(id),
                Action::Detach => detach.push(id),
            }
        }
        self.scratch = ids;
        self.detach_later.extend(detach);
        out
    }

    // ---- stops ------------------------------------------------------------

    /// Handle one wait status from `waitpid`.
    pub fn on_wait(&mut self, tid: Tid, status: i32) {
        trace!(tid, status = format_args!("{status:#x}"), "wait status");
        if let Some(exit) = ExitStatus::from_wait(status) {
            self.on_death(tid, exit);
            return;
        }
        if !libc::WIFSTOPPED(status) {
            return;
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
        t.run = RunState::Stopped;
        t.regs = Default::default();
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        if sig == (libc::SIGTRAP | 0x80) || event == sys::PTRACE_EVENT_SECCOMP {
            self.stats.syscall_stops += 1;
        }
        let first_stop = !t.started;
        t.started = true;

        // Closures waiting for this task to stop run first, at the state of the stop.
        self.run_waiters(tid);
        if let Some(ids) = self.hold_next.remove(&tid) {
            if let Some(t) = self.tasks.get_mut(&tid) {
                t.holds.extend(ids);
            }
        }
        self.report_quiesce(tid);

        if sig == (libc::SIGTRAP | 0x80) {
            self.on_syscall_stop(tid);
        } else if event == sys::PTRACE_EVENT_SECCOMP {
            self.on_seccomp_stop(tid);
        } else if event == sys::PTRACE_EVENT_STOP {
            self.on_trap_stop(tid, sig, first_stop);
        } else if event != 0 {
            self.on_event(tid, event);
        } else {
            self.on_signal(tid, sig);
        }
        self.settle(tid);
    }

    /// The end of handling a stop of `tid` (or of a command run at it):
    /// detach the engines that asked to leave, apply mask changes to running
    /// tasks, and resume `tid` if nobody holds it.
    fn settle(&mut self, tid: Tid) {
        for id in std::mem::take(&mut self.detach_later) {
            self.detach_engine(id);
        }
        if self.masks_changed {
            self.masks_changed = false;
            self.refresh_running();
        }
        self.maybe_resume(tid);
    }

    fn run_waiters(&mut self, tid: Tid) {
        let Some(ws) = self.waiters.remove(&tid) else {
            return;
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
        let afters = std::mem::take(&mut t.after);
        for (id, a) in afters {
            let Some(t) = self.tasks.get_mut(&tid) else {
                return;
            };
            if let Some(sig) = a.signal {
                // A suppression stands against any later replacement.
                if t.stop == Some(StopKind::Signal) && !t.signal_suppressed {
                    t.pending_signal = sig;
                    t.signal_suppressed = sig == 0;
                }
            }
            match a.action {
                None => {}
                Some(Action::Resume) => {
                    t.holds.remove(&id);
                }
                Some(Action::Stop) => {
                    t.holds.insert(id);
                }
                Some(Action::SingleStep) => {
                    t.holds.remove(&id);
                    t.step_for.push(id);
                }
                Some(Action::Detach) => self.detach_later.push(id),
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
        let pid = match self.pid_of(tid) {
            Some(p) => p,
            None => return f(Err(Error::NoSuchTask(tid))),
        };
        let mode = self.procs.get(&pid).map(|p| self.mode(p));
        let (Some(slot), Some(state), Some(proc_)) = (
            self.engines.get_mut(&id),
            self.tasks.get_mut(&tid),
            self.procs.get_mut(&pid),
        ) else {
            return f(Err(Error::NoSuchEngine(id)));
        };
        if !proc_.engines.contains(&id) {
            return f(Err(Error::NotAttached { engine: id, tid }));
        }
        let before = (slot.events, slot.syscalls.clone());
        let mut task = Task {
            state,
            pid,
            mode: mode.unwrap_or(SyscallMode::Ptrace),
            mem: &mut proc_.mem,
            bps: &mut proc_.breakpoints,
            engine: EngineCfg {
                id,
                events: &mut slot.events,
                syscalls: &mut slot.syscalls,
            },
        };
        let r = f(Ok(&mut task));
        if before.0 != slot.events || before.1 != slot.syscalls {
            self.masks_changed = true;
        }
        r
    }

    fn report_quiesce(&mut self, tid: Tid) {
        let Some(t) = self.tasks.get_mut(&tid) else {
            return;
        };
        if t.quiesce_for.is_empty() {
            return;
        }
        let asked = std::mem::take(&mut t.quiesce_for);
        self.dispatch(
            tid,
            |_| true,
            |e, task| {
                if asked.contains(&task.engine_id()) {
                    (e.report_quiesce(task), ())
                } else {
                    (Action::Resume, ())
                }
            },
        );
    }

    fn on_syscall_stop(&mut self, tid: Tid) {
        let info = match sys::get_syscall_info(tid) {
            Ok(i) => i,
            Err(e) => return self.vanishing(tid, "PTRACE_GET_SYSCALL_INFO", e),
        };
        match info.op {
            sys::PTRACE_SYSCALL_INFO_ENTRY => {
                let entry = SyscallEntry {
                    nr: info.data[0],
                    args: args_of(&info.data),
                    arch: info.arch,
                    from_seccomp: false,
                };
                self.report_entry(tid, entry);
            }
            sys::PTRACE_SYSCALL_INFO_EXIT => {
                let t = self.tasks.get_mut(&tid).expect("caller checked");
                let entry = match t.in_syscall.take() {
                    Some(e) => e,
                    None => match entry_from_regs(t, info.arch) {
                        Ok(e) => e,
                        Err(_) => return,
                    },
                };
                let exit = SyscallExit {
                    entry,
                    ret: info.data[0] as i64,
                    is_error: info.data[1] & 0xff != 0,
                };
                t.stop = Some(StopKind::SyscallExit(exit));
                if t.prelude && !is_execve(&entry) {
                    return;
                }
                let nr = entry.nr;
                self.dispatch(
                    tid,
                    |s| s.wants_syscall(EventMask::SYSCALL_EXIT, nr),
                    |e, task| (e.report_syscall_exit(task, &exit), ()),
                );
            }
            op => debug!(tid, op, "syscall stop with unexpected op"),
        }
    }

    fn on_seccomp_stop(&mut self, tid: Tid) {
        let t = self.tasks.get_mut(&tid).expect("caller checked");
        if t.in_syscall.is_some() {
            // The entry was reported at the ptrace entry stop just before
            // (Linux >= 4.8 order: entry, seccomp, exit). Nothing new.
            t.stop = Some(StopKind::Event);
            return;
        }
        let info = match sys::get_syscall_info(tid) {
            Ok(i) => i,
            Err(e) => return self.vanishing(tid, "PTRACE_GET_SYSCALL_INFO", e),
        };
        let entry = SyscallEntry {
            nr: info.data[0],
            args: args_of(&info.data),
            arch: info.arch,
            from_seccomp: true,
        };
        self.report_entry(tid, entry);
    }

    fn report_entry(&mut self, tid: Tid, entry: SyscallEntry) {
        let t = self.tasks.get_mut(&tid).expect("caller checked");
        t.stop = Some(StopKind::SyscallEntry(entry));
        t.in_syscall = Some(entry);
        t.skipped = None;
        if t.prelude && !is_execve(&entry) {
            return;
        }
        let nr = entry.nr;
        self.dispatch(
            tid,
            |s| s.wants_syscall(EventMask::SYSCALL_ENTRY, nr),
            |e, task| (e.report_syscall_entry(task, &entry), ()),
        );
        // A skipped call still reaches its exit stop; the entry stays recorded.
    }

    fn on_trap_stop(&mut self, tid: Tid, sig: i32, first_stop: bool) {
        let t = self.tasks.get_mut(&tid).expect("caller checked");
        if matches!(
            sig,
            libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
        ) {
            t.stop = Some(StopKind::GroupStop);
            t.run = RunState::Stopped;
            trace!(tid, sig, "group-stop");
            return;
        }
        // PTRACE_INTERRUPT's trap, or a new task's first stop.
        t.interrupt_sent = false;
        t.stop = Some(StopKind::Event);
        trace!(tid, first_stop, "trap stop");
    }

    fn on_event(&mut self, tid: Tid, event: i32) {
        let msg = match sys::get_event_msg(tid) {
            Ok(m) => m,
            Err(e) => return self.vanishing(tid, "PTRACE_GETEVENTMSG", e),
        };
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.stop = Some(StopKind::Event);
        }
        match event {
            sys::PTRACE_EVENT_FORK | sys::PTRACE_EVENT_VFORK | sys::PTRACE_EVENT_CLONE => {
                self.on_clone(tid, event, msg as Tid)
            }
            sys::PTRACE_EVENT_EXEC => self.on_exec(tid, msg as Tid),
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
                    |e, task| (e.report_exit(task, &report), ()),
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
            // parent's memory: nothing to clean.
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
                        let _ = c.mem.write(child, addr, &[orig]);
                    }
                }
            }
        }
        let prelude = self.tasks.get(&tid).is_some_and(|t| t.prelude);
        let t = self.new_task(child, child_pid);
        t.prelude = prelude;
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
                |e, task| (e.report_clone(task, &report), ()),
            );
        }
        if let Some(status) = self.unknown.remove(&child) {
            self.on_wait(child, status);
        }
    }

    fn on_exec(&mut self, tid: Tid, former: Tid) {
        if former != tid {
            // A non-leader thread exec'd and took over the leader's tid: its
            // state moves to `tid`, and the old leader is gone without a report.
            if let Some(mut moved) = self.tasks.remove(&former) {
                if let Some(old) = self.tasks.remove(&tid) {
                    self.fail_waiters(tid, &old);
                }
                moved.tid = tid;
                moved.run = RunState::Stopped;
                moved.stop = Some(StopKind::Event);
                self.tasks.insert(tid, moved);
                if let Some(ws) = self.waiters.remove(&former) {
                    self.waiters.entry(tid).or_default().extend(ws);
                }
                if let Some(p) = self.procs.get_mut(&tid) {
                    p.tasks.retain(|t| *t != former);
                }
            }
        }
        let Some(pid) = self.pid_of(tid) else { return };
        if let Some(p) = self.procs.get_mut(&pid) {
            p.mem.reset();
            // A new image: the old breakpoints are gone with the old text.
            p.breakpoints = Default::default();
        }
        let was_prelude = self.tasks.get(&tid).is_some_and(|t| t.prelude);
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.prelude = false;
        }
        let report = ExecReport {
            former_tid: former,
            exe: std::fs::read_link(format!("/proc/{tid}/exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
        };
        self.dispatch(
            tid,
            |s| s.events.contains(EventMask::EXEC),
            |e, task| (e.report_exec(task, &report), ()),
        );
        if was_prelude {
            if let Some(sp) = self.spawns.remove(&pid) {
                if sp.stop_at_entry {
                    if let Some(t) = self.tasks.get_mut(&tid) {
                        t.holds.insert(sp.engine);
                    }
                }
                sp.succeed(pid);
            }
        }
    }

    fn on_signal(&mut self, tid: Tid, sig: i32) {
        let si = match sys::get_siginfo(tid) {
            Ok(si) => si,
            Err(e) => return self.vanishing(tid, "PTRACE_GETSIGINFO", e),
        };
        let t = self.tasks.get_mut(&tid).expect("caller checked");
        t.stop = Some(StopKind::Signal);
        t.pending_signal = sig;
        let pid = t.proc as Tid;
        if sig == libc::SIGTRAP {
            if let Some(addr) = t.step_over.take() {
                // Stepped past a breakpoint: put its int3 back (if it is
                // still wanted). An engine's own step ends here too.
                if let Some(p) = self.procs.get_mut(&pid) {
                    if p.breakpoints.contains(addr) {
                        let _ = p.mem.write(pid, addr, &[crate::breakpoint::INT3]);
                    }
                }
                let t = self.tasks.get_mut(&tid).expect("present");
                if t.stepping.is_empty() {
                    t.pending_signal = 0;
                    return;
                }
            }
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
            let rip = t.gp_word(gp::RIP).unwrap_or(0);
            let addr = rip.wrapping_sub(1);
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
                    let _ = t.set_gp_word(gp::RIP, addr);
                    t.pending_signal = 0;
                    return;
                }
            } else {
                // Our int3: back up to the breakpoint, swallow the SIGTRAP,
                // and tell its owners (and only them).
                let _ = t.set_gp_word(gp::RIP, addr);
                t.pending_signal = 0;
                self.dispatch(
                    tid,
                    |s| s.events.contains(EventMask::BREAKPOINT),
                    |e, task| {
                        if owners.contains(&task.engine_id()) {
                            (e.report_breakpoint(task, addr), ())
                        } else {
                            (Action::Resume, ())
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
            let stepped = std::mem::take(&mut t.stepping);
            self.dispatch(
                tid,
                |_| true,
                |e, task| {
                    if stepped.contains(&task.engine_id()) {
                        (e.report_step(task), ())
                    } else {
                        (Action::Resume, ())
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
                    |e, task| (e.report_step(task), ()),
                );
                return;
            }
        }
        let report = SignalReport {
            signo: sig,
            code: si.si_code,
            sender_pid: if si.si_code <= 0 {
                // SAFETY: for SI_USER/SI_TKILL/SI_QUEUE (code <= 0) si_pid is valid.
                unsafe { si.si_pid() }
            } else {
                0
            },
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
        let answers = self.dispatch(
            tid,
            |s| s.events.contains(EventMask::SIGNAL),
            |e, task| {
                let a = e.report_signal(task, &report);
                (a.action, a.disposition)
            },
        );
        let mut fate = SignalDisposition::Deliver;
        for d in answers {
            fate = match (fate, d) {
                (SignalDisposition::Suppress, _) | (_, SignalDisposition::Suppress) => {
                    SignalDisposition::Suppress
                }
                (SignalDisposition::Replace(s), _) => SignalDisposition::Replace(s),
                (SignalDisposition::Deliver, other) => other,
            };
        }
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.signal_suppressed = fate == SignalDisposition::Suppress;
            t.pending_signal = match fate {
                SignalDisposition::Deliver => sig,
                SignalDisposition::Suppress => 0,
                SignalDisposition::Replace(s) => s,
            };
        }
    }

    fn on_death(&mut self, tid: Tid, status: ExitStatus) {
        self.unknown.remove(&tid);
        self.hold_next.remove(&tid);
        let Some(t) = self.tasks.remove(&tid) else {
            trace!(tid, ?status, "death of an untracked task");
            return;
        };
        self.fail_waiters(tid, &t);
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
        let process_gone = match self.procs.get_mut(&pid) {
            Some(p) => {
                p.tasks.retain(|x| *x != tid);
                p.tasks.is_empty()
            }
            None => true,
        };
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

    fn fail_waiters(&mut self, tid: Tid, _t: &TaskState) {
        if let Some(ws) = self.waiters.remove(&tid) {
            for (_, w) in ws {
                w(Err(Error::TaskExited(tid)));
            }
        }
    }

    /// A ptrace request failed while handling a stop. ESRCH means the task was
    /// killed (SIGKILL takes it out of any stop): its death will be reported.
    fn vanishing(&mut self, tid: Tid, op: &'static str, errno: Errno) {
        if errno != Errno::ESRCH {
            warn!(tid, op, %errno, "ptrace request failed while handling a stop");
        }
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.run = RunState::Running;
            t.stop = None;
        }
    }

    // ---- resuming ---------------------------------------------------------

    /// Resume `tid` if it is stopped and no engine holds it.
    pub fn maybe_resume(&mut self, tid: Tid) {
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
        let mode = self.mode(p);
        let wants_any = self.wants_any_syscall(p);
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
            (Resume::Cont, Some(e)) if wants_any && self_wants_exit(&self.engines, p, e.nr) => {
                Resume::Syscall
            }
            (how, _) => how,
        };
        // Resuming at a breakpoint: restore its byte for one instruction.
        let how = if how != Resume::Listen && p.breakpoints.active() {
            match t.gp_word(gp::RIP) {
                Ok(rip) if p.breakpoints.contains(rip) => {
                    let orig = p.breakpoints.map[&rip].orig;
                    let pm = self.procs.get_mut(&pid).expect("present above");
                    let _ = pm.mem.write(pid, rip, &[orig]);
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
        if let Err(e) = t.flush_registers() {
            warn!(tid, error = %e, "writing registers back failed");
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
        t.resumed_with = how;
        t.run = if how == Resume::Listen {
            RunState::GroupStop
        } else {
            RunState::Running
        };
        if let Err(e) = sys::resume(tid, how, sig) {
            self.vanishing(tid, "resume", e);
        }
    }

    /// After masks or engines change, running tasks whose resume mode is now
    /// wrong are interrupted so the next resume applies the new mode.
    pub fn refresh_running(&mut self) {
        let mut to_interrupt = Vec::new();
        for t in self.tasks.values() {
            if t.run != RunState::Running || t.interrupt_sent || !t.started {
                continue;
            }
            let Some(p) = self.procs.get(&(t.proc as Tid)) else {
                continue;
            };
            let need_syscall = self.mode(p) == SyscallMode::Ptrace && self.wants_any_syscall(p);
            if need_syscall && t.resumed_with == Resume::Cont {
                to_interrupt.push(t.tid);
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
        let Some(mut t) = self.tasks.remove(&tid) else {
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
        match sys::detach(tid, sig) {
            Ok(()) => debug!(tid, "detached"),
            Err(e) => debug!(tid, %e, "PTRACE_DETACH failed (task exiting?)"),
        }
        self.fail_waiters(tid, &t);
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
                p.tasks.clone()
            }
            None => return Vec::new(),
        };
        self.refresh_running();
        tids
    }

    /// Remove engine `id` everywhere; tasks left with no engine are detached
    /// (unless their tree depends on us for its seccomp filter).
    pub fn detach_engine(&mut self, id: EngineId) {
        let Some(mut slot) = self.engines.remove(&id) else {
            return;
        };
        if let Some(e) = slot.engine.as_mut() {
            e.report_detached();
        }
        let mut affected = Vec::new();
        for p in self.procs.values_mut() {
            if p.engines.contains(&id) {
                p.engines.retain(|x| *x != id);
                affected.extend(p.tasks.iter().copied());
                // Its breakpoints go; bytes nobody else needs are restored.
                for (addr, orig) in p.breakpoints.remove_engine(id) {
                    if let Err(e) = p.mem.write(p.pid, addr, &[orig]) {
                        warn!(pid = p.pid, addr, %e, "restoring a breakpoint's byte failed");
                    }
                }
            }
        }
        for w in self.waiters.values_mut() {
            w.retain(|(e, _)| *e != id);
        }
        for tid in affected {
            let Some(t) = self.tasks.get_mut(&tid) else {
                continue;
            };
            t.holds.remove(&id);
            t.step_for.retain(|x| *x != id);
            t.stepping.retain(|x| *x != id);
            t.quiesce_for.retain(|x| *x != id);
            let pid = t.proc as Tid;
            let orphan = self
                .procs
                .get(&pid)
                .is_some_and(|p| p.engines.is_empty() && p.filter.is_none());
            match t.run {
                RunState::Stopped => self.maybe_resume(tid),
                RunState::Running | RunState::GroupStop if orphan => {
                    // Detach needs a stop: interrupt, and detach when it comes.
                    self.interrupt(tid);
                }
                _ => {}
            }
        }
        debug!(engine = %id, "engine detached");
    }

    pub fn control(&mut self, id: EngineId, tid: Tid, action: Action) -> Result<()> {
        self.check_attached(id, tid)?;
        match action {
            Action::Detach => {
                self.detach_engine(id);
                return Ok(());
            }
            Action::Stop => {
                let t = self.tasks.get_mut(&tid).expect("checked");
                if t.run == RunState::Stopped {
                    t.holds.insert(id);
                } else {
                    self.hold_next.entry(tid).or_default().push(id);
                    self.interrupt(tid);
                }
                return Ok(());
            }
            Action::SingleStep => {
                let t = self.tasks.get_mut(&tid).expect("checked");
                if t.run != RunState::Stopped {
                    return Err(Error::NotStopped(tid));
                }
                t.holds.remove(&id);
                t.step_for.push(id);
            }
            Action::Resume => {
                let t = self.tasks.get_mut(&tid).expect("checked");
                t.holds.remove(&id);
            }
        }
        self.maybe_resume(tid);
        Ok(())
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
                self.waiters.entry(tid).or_default().push((id, w));
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
        self.refresh_running();
        Ok(())
    }

    /// Detach every engine; kill trees that depend on our seccomp filter.
    /// Idempotent.
    pub fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        let ids: Vec<EngineId> = self.engines.keys().copied().collect();
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

fn self_wants_exit(engines: &BTreeMap<EngineId, EngineSlot>, p: &Proc, nr: u64) -> bool {
    p.engines.iter().any(|id| {
        engines
            .get(id)
            .is_some_and(|s| s.wants_syscall(EventMask::SYSCALL_EXIT, nr))
    })
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
