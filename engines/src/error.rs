//! Typed errors of the engine layer. Each names its cause in words a person
//! can act on; none is a bare errno.

use std::path::PathBuf;

use crate::engine::EngineId;
use crate::sys::{Errno, Tid};

/// Why an attach was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("no process with pid {pid}")]
    NoSuchProcess { pid: Tid },
    #[error(
        "pid {pid} is this tracer's own process or one of its ancestors; tracing it would deadlock"
    )]
    SelfOrAncestor { pid: Tid },
    #[error("pid {pid} is already traced by pid {tracer} ({tracer_name}); only one tracer may hold a process (detach it there first)")]
    AlreadyTraced {
        pid: Tid,
        tracer: Tid,
        tracer_name: String,
    },
    #[error("pid {pid} is a zombie: it has exited and waits for its parent to reap it")]
    Zombie { pid: Tid },
    #[error("pid {pid} is a kernel thread; kernel threads cannot be traced")]
    KernelThread { pid: Tid },
    #[error("not permitted to trace pid {pid}: {cause}")]
    PermissionDenied { pid: Tid, cause: String },
    #[error("attaching to pid {pid} failed: {errno}")]
    Other { pid: Tid, errno: Errno },
}

/// Why a spawn failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    #[error("empty argv: give at least the program to run")]
    EmptyArgv,
    #[error("program {program:?} not found (searched {searched})")]
    NotFound { program: String, searched: String },
    #[error("argument, environment entry or path contains a NUL byte: {0:?}")]
    NulByte(String),
    #[error("cannot execute {path}: {errno}")]
    Exec { path: PathBuf, errno: Errno },
    #[error("cannot change to the working directory {path:?}: {errno}")]
    Cwd { path: PathBuf, errno: Errno },
    #[error("{program} started, but you may not trace it: {why}; it was killed")]
    NotTraceable { program: String, why: String },
    #[error("setting up the child before exec failed at {step}: {errno}")]
    Setup { step: &'static str, errno: Errno },
    #[error("fork failed: {0}")]
    Fork(Errno),
}

/// Every error of the engine layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("no engine {0}")]
    NoSuchEngine(EngineId),
    #[error("{engine} is not attached to thread {tid}")]
    NotAttached { engine: EngineId, tid: Tid },
    #[error("{engine} does not trace process {pid}")]
    NotOnProcess { engine: EngineId, pid: Tid },
    #[error("no traced thread {0}")]
    NoSuchTask(Tid),
    #[error("thread {0} is running; hold it (Action::Stop) or ask for an interrupt first")]
    NotStopped(Tid),
    #[error("thread {tid} has left the stop this was meant for (it was decided already, its deadline passed, or it was killed)")]
    StopGone { tid: Tid },
    #[error("{what}: the task is not stopped at a syscall (hold it at a syscall entry or exit report first)")]
    NotAtSyscall { what: &'static str },
    #[error("thread {0} exited")]
    TaskExited(Tid),
    #[error("unknown register {0:?}; the registers are {names}", names = crate::arch::register_names())]
    UnknownRegister(String),
    #[error("register {name} is {size} bytes wide; use register_bytes/set_register_bytes")]
    WideRegister { name: &'static str, size: usize },
    #[error("register {name} takes {expected} bytes, got {got}")]
    RegisterSize {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("no breakpoint of this engine at {addr:#x}")]
    NoBreakpoint { addr: u64 },
    #[error("cannot insert a breakpoint at {addr:#x}: the address is not mapped ({errno})")]
    BreakpointAddress { addr: u64, errno: Errno },
    #[error("watchpoint at {addr:#x}: {why}")]
    BadWatchpoint { addr: u64, why: &'static str },
    #[error("all {n} debug registers of process {pid} are in use ({held}); remove a watchpoint or hardware breakpoint first", n = crate::arch::DEBUG_SLOTS)]
    NoDebugSlot { pid: Tid, held: String },
    #[error("no watchpoint of this engine at {addr:#x} (length {len}, {kind:?})")]
    NoWatchpoint {
        addr: u64,
        len: u8,
        kind: crate::arch::WatchKind,
    },
    #[error("{name} is a debug register the tracer shares between engines: insert a watchpoint or hardware breakpoint instead of writing it")]
    SharedRegister { name: &'static str },
    #[error("{what} is only valid at a syscall {stop} stop")]
    WrongStop {
        what: &'static str,
        stop: &'static str,
    },
    #[error("{op} on thread {tid} failed: {errno}")]
    Sys {
        op: &'static str,
        tid: Tid,
        errno: Errno,
    },
    #[error("kernel {release} is too old: utrace needs Linux 5.3 or later (PTRACE_GET_SYSCALL_INFO, seccomp stop ordering)")]
    KernelTooOld { release: String },
    #[error("the tracer thread has stopped")]
    TracerGone,
    #[error("starting the tracer thread failed: {0}")]
    Start(String),
}

/// Result of the engine layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
