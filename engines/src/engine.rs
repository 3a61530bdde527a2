//! The `Engine` trait: one callback per event, each with a default that
//! resumes; and the actions a callback returns.

use crate::event::{
    CloneReport, EventMask, ExecReport, ExitReport, SignalReport, SyscallEntry, SyscallExit,
    SyscallSet,
};
use std::sync::Arc;

use crate::access::{Denied, Owner};
use crate::sys::Tid;
use crate::task::Task;

/// An engine's identity; engines are called in attach order, which is the
/// order of their ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EngineId(pub u64);

impl std::fmt::Display for EngineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "engine#{}", self.0)
    }
}

/// What a callback wants done with the task.
///
/// Across engines: the task runs again only when no engine holds it; a step
/// beats a plain resume; `Detach` removes the calling engine everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Action {
    /// Let the task run (as far as this engine is concerned).
    #[default]
    Resume,
    /// Hold the task stopped until this engine resumes it with
    /// [`crate::Tracer::control`].
    Stop,
    /// Run one instruction, then report [`Engine::report_step`] to this engine.
    SingleStep,
    /// This engine leaves every task it is attached to.
    Detach,
    /// This engine leaves this task's process alone (its other processes
    /// stay; its last one left, it is detached), as
    /// [`crate::Tracer::leave_process`] does: strace's `-b execve`.
    Leave,
}

/// What happens to a signal about to be delivered.
///
/// Across engines: `Suppress` stands against any `Deliver` or `Replace`; a
/// `Replace` stands against `Deliver`; among replacements the latest counts
/// (engines are asked in attach order, and a later batch `Control` or
/// decision at the same stop comes after them), as in utrace, where each
/// engine sees the signal as the previous one left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SignalDisposition {
    #[default]
    Deliver,
    Suppress,
    /// Deliver this signal number instead.
    Replace(i32),
}

/// A signal report's answer: the action and the signal's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SignalAction {
    pub action: Action,
    pub disposition: SignalDisposition,
}

impl From<Action> for SignalAction {
    fn from(action: Action) -> Self {
        SignalAction {
            action,
            disposition: SignalDisposition::Deliver,
        }
    }
}

/// How an engine attaches: which events, which syscalls, whether it follows
/// new child processes.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    pub events: EventMask,
    /// Syscalls whose entry/exit reports this engine wants.
    pub syscalls: SyscallSet,
    /// Also attach to child processes (fork/vfork/clone without
    /// `CLONE_THREAD`). Threads of an attached process are always followed.
    pub follow_children: bool,
    /// Whose rights the engine acts with: it may trace only what these
    /// credentials could trace with ptrace ([`crate::access::check`]),
    /// checked at attach, when it joins a traced process, and again at
    /// every exec (a setuid program ends its hold on that process). `None`:
    /// the tracer's own rights (an engine of the program that runs the
    /// tracer).
    pub owner: Option<Arc<Owner>>,
    /// The engine's breakpoints need no stop: a hit's registers
    /// ([`Engine::report_breakpoint_hit`]) are all it wants. Its breakpoints
    /// may then be served by the kernel's uprobes: a few µs a hit with no
    /// ptrace stop (7.8 µs against an int3's 61 in `benches/breakpoints.rs`), and gone with the tracer's process however it ends
    /// (an `int3` left by a tracer killed with SIGKILL kills the program
    /// that hits it). A site another engine wants to stop at is an `int3`
    /// for all its users, and this engine then gets
    /// [`Engine::report_breakpoint`] there.
    pub breakpoint_hits: bool,
    /// With [`EngineOptions::breakpoint_hits`]: the engine's uprobe hits
    /// carry the thread's user stack ([`crate::BreakpointHit::stack`]),
    /// walked by the kernel at the hit. Costs each hit of its sites (for
    /// every engine using them) the walk and a bigger sample.
    pub hit_stacks: bool,
    /// Each syscall exit carries the system time the call took
    /// ([`crate::SyscallExit::system_ns`]). Costs every stop of every
    /// traced task a `wait4` with rusage (the kernel sums the process's
    /// threads) while any engine asks.
    pub system_times: bool,
}

impl EngineOptions {
    /// Options for the given events and every syscall.
    pub fn new(events: EventMask) -> Self {
        EngineOptions {
            events,
            syscalls: SyscallSet::all(),
            follow_children: false,
            owner: None,
            breakpoint_hits: false,
            hit_stacks: false,
            system_times: false,
        }
    }

    /// Take breakpoint hits without stops (see
    /// [`EngineOptions::breakpoint_hits`]).
    pub fn breakpoint_hits(mut self, yes: bool) -> Self {
        self.breakpoint_hits = yes;
        self
    }

    /// Uprobe hits carry the user stack (see
    /// [`EngineOptions::hit_stacks`]).
    pub fn hit_stacks(mut self, yes: bool) -> Self {
        self.hit_stacks = yes;
        self
    }

    /// Restrict syscall reports to `set`.
    pub fn syscalls(mut self, set: SyscallSet) -> Self {
        self.syscalls = set;
        self
    }

    /// Follow child processes.
    pub fn follow_children(mut self, yes: bool) -> Self {
        self.follow_children = yes;
        self
    }

    /// Act with `owner`'s rights, not the tracer's.
    pub fn owner(mut self, owner: Owner) -> Self {
        self.owner = Some(Arc::new(owner));
        self
    }
}

/// A tracing engine. Callbacks run on the tracer thread with the task stopped;
/// `task` reads and writes its memory and registers. Callbacks must not block:
/// hand work to another thread through a bounded channel instead.
///
/// Each callback runs only if the engine's [`EventMask`] has its bit (and, for
/// syscalls, its [`SyscallSet`] holds the number). An engine may change its own
/// mask at any time with [`Task::set_events`]; the change applies from the
/// next report point.
#[allow(unused_variables)]
pub trait Engine: Send + 'static {
    /// A syscall is about to run. [`Task::skip_syscall`] skips it.
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> Action {
        Action::Resume
    }

    /// A syscall returned. [`Task::set_syscall_return`] changes what the task sees.
    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        Action::Resume
    }

    /// A signal is about to be delivered.
    fn report_signal(&mut self, task: &mut Task<'_>, signal: &SignalReport) -> SignalAction {
        SignalAction::default()
    }

    /// The first stop of a new process this engine followed from its
    /// parent ([`EngineOptions::follow_children`]), on its first thread,
    /// before it runs: its memory is its parent's copy with every
    /// breakpoint of ours taken out (breakpoints are per process), so an
    /// engine that wants them there places them again now.
    fn report_child_start(&mut self, task: &mut Task<'_>) -> Action {
        Action::Resume
    }

    /// The task made a new thread or process (reported on the parent).
    fn report_clone(&mut self, task: &mut Task<'_>, clone: &CloneReport) -> Action {
        Action::Resume
    }

    /// The thread entered a group-stop by `signo` (SIGSTOP, SIGTSTP,
    /// SIGTTIN, SIGTTOU; its signal report came first). It stays stopped
    /// until a SIGCONT, whatever the engines answer.
    fn report_group_stop(&mut self, task: &mut Task<'_>, signo: i32) -> Action {
        Action::Resume
    }

    /// The task completed an exec.
    fn report_exec(&mut self, task: &mut Task<'_>, exec: &ExecReport) -> Action {
        Action::Resume
    }

    /// The thread is about to exit; memory and registers are still readable.
    fn report_exit(&mut self, task: &mut Task<'_>, exit: &ExitReport) -> Action {
        Action::Resume
    }

    /// The thread is gone (reaped). No task access: it no longer exists.
    fn report_death(&mut self, death: &ExitReport) {}

    /// The task stopped because this engine called [`crate::Tracer::interrupt`].
    fn report_quiesce(&mut self, task: &mut Task<'_>) -> Action {
        Action::Resume
    }

    /// A breakpoint this engine inserted was hit; `addr` is its address and
    /// the task's `rip` has been set back to it. Other engines do not see it.
    fn report_breakpoint(&mut self, task: &mut Task<'_>, addr: u64) -> Action {
        Action::Resume
    }

    /// A breakpoint this engine inserted was hit where a uprobe serves it
    /// (engines with [`EngineOptions::breakpoint_hits`]): the program did
    /// not stop and has moved on; `hit` has its registers at the
    /// breakpoint. Hits of one thread come in order, and before that
    /// thread's next stop is reported.
    fn report_breakpoint_hit(&mut self, hit: &crate::BreakpointHit) {}

    /// `hits` hits by thread `tid` of process `pid` of this engine's
    /// breakpoint at `addr`, inserted with
    /// [`Task::insert_breakpoint_counted`] (only counts wanted): where a
    /// uprobe serves it, every user of which only counts, the kernel
    /// counts them without a sample, and they arrive when the tracer reads
    /// the counts ([`crate::Tracer::flush_counts`], a detach, the thread's
    /// end); where samples are taken anyway, one call per hit. (At an int3,
    /// [`Engine::report_breakpoint`] as for any breakpoint.)
    fn report_breakpoint_count(&mut self, pid: Tid, tid: Tid, addr: u64, hits: u64) {}

    /// The kernel could not record `lost` hits of this engine's breakpoint
    /// at `addr` in process `pid` (the tracer fell behind a hot breakpoint
    /// and a thread's ring filled). Every hit is either reported or counted
    /// here.
    fn report_breakpoint_hits_lost(&mut self, pid: Tid, addr: u64, lost: u64) {}

    /// A hardware breakpoint or watchpoint this engine inserted
    /// ([`Task::insert_watchpoint`]) fired on this thread: an `Execute` one
    /// before its instruction runs (`rip` is its address), a `Write` or
    /// `ReadWrite` one just after the access (`rip` is past the accessing
    /// instruction). Only the engines that inserted it are told; the trap
    /// never reaches the program. A single step of this engine's that
    /// ended at the same instruction ends here too (no `report_step`).
    fn report_watchpoint(&mut self, task: &mut Task<'_>, watch: &crate::Watchpoint) -> Action {
        Action::Resume
    }

    /// A single step this engine asked for has completed.
    fn report_step(&mut self, task: &mut Task<'_>) -> Action {
        Action::Resume
    }

    /// This engine lost the right to trace process `pid` and has left it
    /// (its breakpoints there removed, its holds released): the process
    /// exec'd a program its owner may not trace (setuid, file
    /// capabilities, unreadable), and it runs that program untraced by
    /// this engine. `why` names the rule. Called before the new program
    /// runs an instruction; if it was the engine's last process,
    /// [`Engine::report_detached`] follows.
    fn report_revoked(&mut self, pid: Tid, why: &Denied) {}

    /// This engine left process `pid` at its own request
    /// ([`crate::Tracer::leave_process`]): nothing more comes from it. If
    /// it was the engine's last process, [`Engine::report_detached`]
    /// follows.
    fn report_left(&mut self, pid: Tid) {}

    /// This engine has been detached (by its own `Detach` action, by
    /// [`crate::Tracer::detach`], or at tracer shutdown). Last call it gets.
    fn report_detached(&mut self) {}
}
