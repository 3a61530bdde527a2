//! The batch executor (Renzo Davoli's PTRACE_MULTI, done as utrace meant:
//! as an engine facility). A batch is a list of [`Op`]s run in order on the
//! tracer thread while the task is held; each op gets its own [`OpResult`].
//! A failed op does not stop the batch unless the caller asks
//! (`stop_on_error`), in which case the rest come back [`OpResult::Skipped`].
//! Consecutive memory reads are coalesced into one `process_vm_readv`
//! scatter list.

use crate::engine::Action;
use crate::error::Error;
use crate::event::{EventMask, SyscallEntry, SyscallSet};
use crate::task::{MemRead, Task};

/// One operation on a stopped task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read `len` bytes at `addr`.
    ReadMemory { addr: u64, len: usize },
    /// Write `data` at `addr` (read-only text too).
    WriteMemory { addr: u64, data: Vec<u8> },
    /// Read a NUL-terminated string of at most `max_len` bytes.
    ReadString { addr: u64, max_len: usize },
    /// Registers by name; empty: every register of at most 8 bytes.
    GetRegisters { names: Vec<String> },
    /// Set registers (written back once, when the task resumes).
    SetRegisters { values: Vec<(String, u64)> },
    /// Registers of any width by name, as bytes; empty: every register.
    GetRegisterBytes { names: Vec<String> },
    /// Set registers of any width from bytes (each its register's width).
    SetRegisterBytes { values: Vec<(String, Vec<u8>)> },
    /// Atomic read-modify-write of one register: `(old | set) & !clear`.
    UpdateRegisterBits { name: String, set: u64, clear: u64 },
    /// The calling engine's event mask and syscall set.
    GetEvents,
    /// Replace the calling engine's event mask and syscall set (from the
    /// next report point on). The set is boxed: it is rare and large, and
    /// every op is as large as the largest.
    SetEvents {
        events: EventMask,
        syscalls: Box<SyscallSet>,
    },
    /// Insert a software breakpoint (shared, reference-counted).
    InsertBreakpoint { addr: u64 },
    /// Insert one at a function found by symbol in the process
    /// (`main`, `libc:malloc`, `BINARY:FUNC+OFF`); answers its address.
    InsertBreakpointAt { symbol: String },
    /// Remove one insertion of this engine's breakpoint.
    RemoveBreakpoint { addr: u64 },
    /// Insert a hardware breakpoint or watchpoint (a debug-register slot
    /// of the process, shared, reference-counted).
    InsertWatchpoint(crate::Watchpoint),
    /// Remove one insertion of this engine's watchpoint.
    RemoveWatchpoint(crate::Watchpoint),
    /// This engine's next single step goes on while `rip` stays in
    /// `[start, end)` ([`crate::Task::step_within`]).
    SetStepRange { start: u64, end: u64 },
    /// Act on the task after the batch: `Resume` releases this engine's
    /// hold, `Stop` holds it, `SingleStep` steps it, `Detach` detaches the
    /// engine. `signal`, if set, replaces the signal to deliver on resume
    /// (0 suppresses it).
    Control { action: Action, signal: Option<i32> },
    /// The syscall the task is stopped in, if any.
    GetSyscall,
    /// Change the current syscall's return value (at its exit stop), or skip
    /// it with this value (at its entry stop).
    SetSyscallReturn { value: i64 },
    /// The process's memory map (`/proc/PID/maps`).
    ReadMaps,
    /// Send signal `signo` to the thread (tgkill): pending when it runs
    /// again.
    SendSignal { signo: i32 },
}

impl Op {
    /// Whether the op only observes (reads) or controls (changes) the task.
    pub fn is_observe(&self) -> bool {
        matches!(
            self,
            Op::ReadMemory { .. }
                | Op::ReadString { .. }
                | Op::GetRegisters { .. }
                | Op::GetRegisterBytes { .. }
                | Op::GetEvents
                | Op::GetSyscall
                | Op::ReadMaps
        )
    }
}

/// `[BINARY:]FUNC[+OFF]` as (binary, function, offset); an empty binary
/// is the program's own file. OFF is decimal or 0x… hex.
pub fn split_symbol(s: &str) -> (&str, &str, u64) {
    let (binary, rest) = s.rsplit_once(':').unwrap_or(("", s));
    match rest.rsplit_once('+') {
        Some((f, off)) => {
            let n = off
                .strip_prefix("0x")
                .map_or_else(|| off.parse().ok(), |h| u64::from_str_radix(h, 16).ok());
            match n {
                Some(n) => (binary, f, n),
                None => (binary, rest, 0),
            }
        }
        None => (binary, rest, 0),
    }
}

/// Why one op failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpErrorKind {
    /// The op's arguments are wrong (an unknown register…).
    InvalidArgument,
    /// The task is not at a stop where the op makes sense.
    FailedPrecondition,
    /// Memory that is not mapped or not accessible.
    Fault,
    /// The task went away.
    NotFound,
    /// A shared resource is used up (the debug registers).
    ResourceExhausted,
    /// Anything else the kernel refused.
    Internal,
}

/// One op's failure: a kind and a message a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    pub kind: OpErrorKind,
    pub message: String,
}

impl From<Error> for OpError {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::UnknownRegister(_)
            | Error::WideRegister { .. }
            | Error::RegisterSize { .. }
            | Error::BadWatchpoint { .. }
            | Error::SharedRegister { .. } => OpErrorKind::InvalidArgument,
            Error::NoDebugSlot { .. } => OpErrorKind::ResourceExhausted,
            Error::WrongStop { .. }
            | Error::NotAtSyscall { .. }
            | Error::NotStopped(_)
            | Error::NotAttached { .. } => OpErrorKind::FailedPrecondition,
            Error::TaskExited(_)
            | Error::NoSuchTask(_)
            | Error::NoBreakpoint { .. }
            | Error::NoWatchpoint { .. } => OpErrorKind::NotFound,
            Error::BreakpointAddress { .. } => OpErrorKind::Fault,
            _ => OpErrorKind::Internal,
        };
        OpError {
            kind,
            message: e.to_string(),
        }
    }
}

/// The syscall a task is stopped in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallState {
    pub entry: SyscallEntry,
    /// The return value, at an exit stop.
    pub ret: Option<i64>,
}

/// One op's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Bytes read; shorter than asked with `error` set on a partial read.
    Memory(MemRead),
    /// Register values by name.
    Registers(Vec<(String, u64)>),
    /// Register values by name, as bytes.
    RegisterBytes(Vec<(String, Vec<u8>)>),
    /// The engine's mask and syscall set (boxed, as the syscall below:
    /// rare and large, and every result is as large as the largest).
    Events {
        events: EventMask,
        syscalls: Box<SyscallSet>,
    },
    /// The current syscall, or `None` when not at a syscall stop.
    Syscall(Option<Box<SyscallState>>),
    /// `/proc/PID/maps`.
    Maps(String),
    /// A breakpoint inserted by symbol, at this address.
    Breakpoint(u64),
    /// An op without a value succeeded.
    Done,
    /// This op failed; the batch went on.
    Error(OpError),
    /// Not run: an earlier op failed under `stop_on_error`.
    Skipped,
}

impl OpResult {
    fn failed(&self) -> bool {
        match self {
            OpResult::Error(_) => true,
            OpResult::Memory(m) => m.error.is_some(),
            _ => false,
        }
    }
}

/// What a batch asks to happen after it ran (the last `Control` wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfterBatch {
    pub action: Option<Action>,
    pub signal: Option<i32>,
}

fn err(kind: OpErrorKind, message: impl Into<String>) -> OpResult {
    OpResult::Error(OpError {
        kind,
        message: message.into(),
    })
}

/// Run `ops` in order on `task`. Returns one result per op and what to do
/// with the task afterwards.
pub fn run(task: &mut Task<'_>, ops: Vec<Op>, stop_on_error: bool) -> (Vec<OpResult>, AfterBatch) {
    let mut results: Vec<OpResult> = Vec::with_capacity(ops.len());
    let mut after = AfterBatch::default();
    let mut failed = false;
    let ops_len = ops.len();
    // The current run of reads (one scatter read).
    let mut ranges: Vec<(u64, usize)> = Vec::new();
    let mut ops = ops.into_iter().peekable();
    while let Some(op) = ops.next() {
        if failed && stop_on_error {
            results.push(OpResult::Skipped);
            continue;
        }
        // Coalesce a run of reads into one scatter list.
        if let Op::ReadMemory { addr, len } = op {
            ranges.clear();
            ranges.reserve(ops.len() + 1);
            ranges.push((addr, len));
            if !stop_on_error {
                while let Some(Op::ReadMemory { addr, len }) = ops.peek() {
                    ranges.push((*addr, *len));
                    ops.next();
                }
            }
            task.read_scatter_each(&ranges, |r| {
                let res = OpResult::Memory(r);
                failed |= res.failed();
                results.push(res);
            });
            continue;
        }
        let res = run_one(task, op, &mut after);
        failed |= res.failed();
        results.push(res);
    }
    debug_assert_eq!(results.len(), ops_len);
    (results, after)
}

fn run_one(task: &mut Task<'_>, op: Op, after: &mut AfterBatch) -> OpResult {
    match op {
        Op::ReadMemory { addr, len } => OpResult::Memory(task.read_memory(addr, len)),
        Op::WriteMemory { addr, data } => match task.write_memory(addr, &data) {
            Ok(n) if n == data.len() => OpResult::Done,
            Ok(n) => err(
                OpErrorKind::Fault,
                format!(
                    "wrote {n} of {} bytes at {addr:#x}: the rest is not mapped",
                    data.len()
                ),
            ),
            Err(e) => err(
                OpErrorKind::Fault,
                format!("writing {} bytes at {addr:#x}: {e}", data.len()),
            ),
        },
        Op::ReadString { addr, max_len } => OpResult::Memory(task.read_string(addr, max_len)),
        Op::GetRegisters { names } => {
            if names.is_empty() {
                return match task.registers() {
                    Ok(v) => OpResult::Registers(
                        v.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
                    ),
                    Err(e) => OpResult::Error(e.into()),
                };
            }
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                match task.register(&n) {
                    Ok(v) => out.push((n, v)),
                    Err(e) => return OpResult::Error(e.into()),
                }
            }
            OpResult::Registers(out)
        }
        Op::GetRegisterBytes { names } => {
            let names: Vec<String> = if names.is_empty() {
                crate::arch::REGISTERS
                    .iter()
                    .map(|d| d.name.to_string())
                    .collect()
            } else {
                names
            };
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                match task.register_bytes(&n) {
                    Ok(v) => out.push((n, v)),
                    Err(e) => return OpResult::Error(e.into()),
                }
            }
            OpResult::RegisterBytes(out)
        }
        Op::SetRegisterBytes { values } => {
            let mut old = Vec::with_capacity(values.len());
            for (n, v) in values {
                let before = match task.register_bytes(&n) {
                    Ok(b) => b,
                    Err(e) => return OpResult::Error(e.into()),
                };
                if let Err(e) = task.set_register_bytes(&n, &v) {
                    return OpResult::Error(e.into());
                }
                old.push((n, before));
            }
            OpResult::RegisterBytes(old)
        }
        Op::SetRegisters { values } => {
            for (n, v) in values {
                if let Err(e) = task.set_register(&n, v) {
                    return OpResult::Error(e.into());
                }
            }
            OpResult::Done
        }
        Op::UpdateRegisterBits { name, set, clear } => match task.register(&name) {
            Ok(old) => match task.set_register(&name, (old | set) & !clear) {
                Ok(()) => OpResult::Registers(vec![(name, old)]),
                Err(e) => OpResult::Error(e.into()),
            },
            Err(e) => OpResult::Error(e.into()),
        },
        Op::InsertBreakpoint { addr } => match task.insert_breakpoint(addr) {
            Ok(()) => OpResult::Done,
            Err(e) => OpResult::Error(e.into()),
        },
        Op::InsertBreakpointAt { symbol } => {
            let (binary, func, offset) = split_symbol(&symbol);
            use crate::builtin::probe::resolve::{function, Unplaced};
            match function(task.pid(), binary, Some(func), offset, false) {
                Ok(p) => match task.insert_breakpoint(p.addr) {
                    Ok(()) => OpResult::Breakpoint(p.addr),
                    Err(e) => OpResult::Error(e.into()),
                },
                Err(e @ (Unplaced::Missing(_) | Unplaced::NotLoaded(_))) => {
                    err(OpErrorKind::NotFound, e.to_string())
                }
                Err(e) => err(OpErrorKind::InvalidArgument, e.to_string()),
            }
        }
        Op::RemoveBreakpoint { addr } => match task.remove_breakpoint(addr) {
            Ok(()) => OpResult::Done,
            Err(e) => OpResult::Error(e.into()),
        },
        Op::InsertWatchpoint(w) => match task.insert_watchpoint(w) {
            Ok(()) => OpResult::Done,
            Err(e) => OpResult::Error(e.into()),
        },
        Op::RemoveWatchpoint(w) => match task.remove_watchpoint(w) {
            Ok(()) => OpResult::Done,
            Err(e) => OpResult::Error(e.into()),
        },
        Op::SetStepRange { start, end } => {
            task.step_within(start, end);
            OpResult::Done
        }
        Op::GetEvents => OpResult::Events {
            events: task.events(),
            syscalls: Box::new(task.syscalls().clone()),
        },
        Op::SetEvents { events, syscalls } => {
            task.set_events(events);
            task.set_syscalls(*syscalls);
            OpResult::Done
        }
        Op::Control { action, signal } => {
            after.action = Some(action);
            if signal.is_some() {
                after.signal = signal;
            }
            OpResult::Done
        }
        Op::GetSyscall => OpResult::Syscall(
            task.current_syscall()
                .map(|(entry, ret)| Box::new(SyscallState { entry, ret })),
        ),
        Op::SetSyscallReturn { value } => match task.set_syscall_result(value) {
            Ok(()) => OpResult::Done,
            Err(e) => OpResult::Error(e.into()),
        },
        Op::SendSignal { signo } => match crate::sys::tgkill(task.pid(), task.tid(), signo) {
            Ok(()) => OpResult::Done,
            Err(e) => err(
                OpErrorKind::NotFound,
                format!("sending signal {signo} to thread {}: {e}", task.tid()),
            ),
        },
        Op::ReadMaps => match std::fs::read_to_string(format!("/proc/{}/maps", task.pid())) {
            Ok(m) => OpResult::Maps(m),
            Err(e) => err(
                OpErrorKind::NotFound,
                format!("reading /proc/{}/maps: {e}", task.pid()),
            ),
        },
    }
}
