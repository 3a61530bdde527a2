//! The exit gate (Renzo Davoli's request): at each syscall entry the engine
//! decides whether it wants the matching exit, by adding `SYSCALL_EXIT` to its
//! own mask for that one call. The core needs no special support: a mask
//! change takes effect at the next report point, which is that exit.

use crate::engine::{Action, Engine};
use crate::event::{EventMask, SyscallEntry, SyscallExit};
use crate::task::Task;

/// Decides at each entry whether the exit is wanted.
pub type Gate = Box<dyn FnMut(&mut Task<'_>, &SyscallEntry) -> bool + Send>;
/// Called with each exit the gate let through.
pub type OnExit = Box<dyn FnMut(&mut Task<'_>, &SyscallExit) + Send>;

/// An engine that sees every entry of its syscall set and only the exits its
/// gate chose. Attach it with `EventMask::SYSCALL_ENTRY`.
pub struct ExitGate {
    gate: Gate,
    on_exit: OnExit,
}

impl ExitGate {
    pub fn new(gate: Gate, on_exit: OnExit) -> Self {
        ExitGate { gate, on_exit }
    }
}

impl Engine for ExitGate {
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> Action {
        let mut mask = task.events();
        mask.set(EventMask::SYSCALL_EXIT, (self.gate)(task, call));
        task.set_events(mask);
        Action::Resume
    }

    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        (self.on_exit)(task, call);
        let mask = task.events() - EventMask::SYSCALL_EXIT;
        task.set_events(mask);
        Action::Resume
    }
}
