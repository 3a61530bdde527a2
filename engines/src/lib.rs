//! # utrace-engines
//!
//! The utrace engine layer over ptrace and seccomp, in-process: any number of
//! [`Engine`]s attach to the same task, each with its own [`EventMask`] and
//! [`SyscallSet`]; the task runs again only when no engine holds it.
//!
//! ```no_run
//! use utrace_engines::{Action, Engine, EngineOptions, EventMask, SpawnOptions,
//!                      SyscallEntry, SyscallSet, Task, Tracer};
//!
//! struct Opens(u64);
//! impl Engine for Opens {
//!     fn report_syscall_entry(&mut self, _t: &mut Task<'_>, _c: &SyscallEntry) -> Action {
//!         self.0 += 1;
//!         Action::Resume
//!     }
//! }
//!
//! let tracer = Tracer::new()?;
//! let opts = EngineOptions::new(EventMask::SYSCALL_ENTRY)
//!     .syscalls(SyscallSet::from_names(["openat"])?);
//! let spawned = tracer
//!     .spawn(SpawnOptions::new(["/bin/true"]), Box::new(Opens(0)), opts)
//!     .wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers: [`sys`] (thin kernel wrappers, nearly all the `unsafe`), [`arch`]
//! (register layout), the core (stop decoding, dispatch and arbitration, on
//! the tracer thread), [`Tracer`] (the handle), and built-in engines in
//! [`builtin`].

pub mod access;
mod activity;
pub mod arch;
mod attach;
pub mod batch;
mod breakpoint;
pub mod builtin;
mod classes;
mod core;
mod engine;
mod error;
mod event;
mod gate;
pub mod journal;
mod perf;
mod seccomp;
mod spawn;
pub mod sys;
mod task;
mod tracefs;
mod tracer;
mod uprobe;
mod watch;

pub use crate::access::{Denied, Owner};
pub use crate::activity::{
    Activity, ProcActivity, SyscallCount, MAX_DISTINCT as MAX_DISTINCT_SYSCALLS,
};
pub use crate::arch::WatchKind;
pub use crate::attach::Attached;
pub use crate::classes::{
    class_names as syscall_class_names, syscall_class, CLASSES as SYSCALL_CLASSES,
};
pub use crate::core::{TaskInfo, TracerStats};
pub use crate::engine::{Action, Engine, EngineId, EngineOptions, SignalAction, SignalDisposition};
pub use crate::error::{AttachError, Error, Result, SpawnError};
pub use crate::event::{
    syscall_name, syscall_number, ChildInfo, CloneKind, CloneReport, EventMask, ExecReport,
    ExitReport, ExitStatus, SignalReport, SyscallEntry, SyscallExit, SyscallSet, UnknownSyscall,
    MAX_SYSCALL,
};
pub use crate::seccomp::filter_for as seccomp_filter_for;
pub use crate::spawn::{Credentials, SpawnOptions, Spawned};
pub use crate::task::{Got, MemRead, RunState, ScatterRead, SyscallMode, Task};
pub use crate::tracefs::{
    unavailable as tracefs_unavailable, wait_deleted as tracefs_wait_deleted,
};
pub use crate::tracer::{
    set_default_look, Answer, Decided, Request, Tracer, TracerOptions, Verdict,
};
pub use crate::uprobe::{unavailable as uprobes_unavailable, BreakpointHit};
pub use crate::watch::Watchpoint;
