//! A traced thread: its state on the tracer thread ([`TaskState`], private to
//! the core) and the view engines get while it is stopped ([`Task`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;

use crate::arch::{self, gp, RegDesc, RegSet};
use crate::engine::EngineId;
use crate::error::{Error, Result};
use crate::event::{EventMask, SyscallEntry, SyscallExit, SyscallSet};
use crate::gate::{ProcGate, TaskGate};
use crate::sys::{self, Errno, Tid};

/// Largest number of iovecs one `process_vm_readv` takes (`IOV_MAX`).
const IOV_MAX: usize = 1024;

/// Scatter reads of at most this many bytes in all may be coalesced by page
/// (the buffer is zeroed first, which costs little at this size).
const COALESCE_MAX_TOTAL: usize = 1 << 20;
/// The largest gap between two ranges that one span bridges (see
/// `Task::read_coalesced`).
const SPAN_GAP: u64 = 4096;
/// The most bytes the spans of one coalesced read may hold.
const STAGE_MAX: usize = 4 << 20;
/// A staging buffer larger than this is freed after use.
const STAGE_KEEP: usize = 4 << 20;
/// Coalesced reads are staged this many bytes at a time (spans are cut
/// where they would grow past it): reads run on any thread of the server
/// (see `crate::gate`), and each thread keeps its staging buffer, so it is
/// kept small. (1,000 reads over 1 MiB measured no slower than staging the
/// whole span at once.)
const STAGE_CHUNK: usize = 64 << 10;

thread_local! {
    /// This thread's staging buffer for coalesced reads.
    static STAGE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn iovec(start: u64, end: u64) -> libc::iovec {
    libc::iovec {
        iov_base: start as usize as *mut libc::c_void,
        iov_len: (end - start) as usize,
    }
}

/// The remote iovec of one (address, length) range.
fn range_iovec(&(addr, len): &(u64, usize)) -> libc::iovec {
    libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: len,
    }
}

/// Reads of at least this many bytes go to a buffer backed by transparent
/// huge pages where the kernel allows (`madvise` mode): a fresh 64 MiB
/// buffer then takes 32 page faults, not 16,384.
const HUGE_READ: usize = 4 << 20;

/// How a task's syscalls reach the tracer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallMode {
    /// Kernel-side filtering: a seccomp filter stops only the syscalls some
    /// engine wants; the task otherwise runs under `PTRACE_CONT`.
    Seccomp,
    /// `PTRACE_SYSCALL`: every syscall stops and the core filters in user
    /// space (attached processes, or a spawned tree whose engines now want a
    /// syscall outside its filter).
    Ptrace,
}

/// Where a thread is, as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Running (or blocked in the kernel) between stops.
    Running,
    /// In a ptrace stop.
    Stopped,
    /// In a job-control group-stop, resumed with `PTRACE_LISTEN`: stopped
    /// like an untraced process, until SIGCONT.
    GroupStop,
}

/// The kind of stop a task is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopKind {
    SyscallEntry(SyscallEntry),
    SyscallExit(SyscallExit),
    /// Signal-delivery-stop; the signal that will be delivered on resume (0: none).
    Signal,
    /// A ptrace event stop (clone, exec, exit) or an interrupt/initial trap.
    Event,
    /// A job-control group-stop.
    GroupStop,
}

/// Registers as read at this stop, and whether a callback changed them.
#[derive(Default)]
pub(crate) struct RegCache {
    general: Option<[u8; arch::GENERAL_REGS_SIZE]>,
    general_dirty: bool,
    float: Option<Box<[u8; arch::FLOAT_REGS_SIZE]>>,
    float_dirty: bool,
}

/// One traced thread, owned by the tracer thread.
pub(crate) struct TaskState {
    pub tid: Tid,
    /// Key of its process in the core's process table.
    pub proc: u64,
    pub run: RunState,
    pub stop: Option<StopKind>,
    /// Signal to deliver when resumed from a signal-delivery-stop (0: none).
    pub pending_signal: i32,
    /// An engine suppressed this stop's signal: it stays suppressed whatever
    /// other engines decide later (a replacement does not revive it).
    pub signal_suppressed: bool,
    /// The tracer's stop count at this task's current stop: identifies the
    /// stop a report was made at (unique per tracer), so a late decision
    /// cannot act on a later stop.
    pub stop_seq: u64,
    /// Its ptrace stops since it was traced, and of those its syscall
    /// stops (for [`crate::Tracer::activity`]).
    pub stops: u64,
    pub syscall_stops: u64,
    /// An engine set eflags.TF: its trace traps are the engines' business,
    /// never delivered to the program (even one that arrives after the
    /// engine cleared TF or detached).
    pub tf_by_engine: bool,
    /// Stepping over the breakpoint at this address (its byte is restored
    /// for one instruction); the `int3` goes back at the next trap.
    pub step_over: Option<u64>,
    /// This stop is a hit of our int3 at this address, and the kernel has
    /// the rewound `rip` already (`Core::before_taking`).
    pub int3_rewound: Option<u64>,
    /// The signal's details, read at this stop by `Core::before_taking`
    /// (so `decode` need not read them again).
    pub peeked_siginfo: Option<libc::siginfo_t>,
    /// Engines holding this task stopped.
    pub holds: BTreeSet<EngineId>,
    /// Engines that asked for a single step at this stop.
    pub step_for: Vec<EngineId>,
    /// Engines waiting for a single step to complete.
    pub stepping: Vec<EngineId>,
    /// Engines that asked for an interrupt, reported with `report_quiesce`.
    pub quiesce_for: Vec<EngineId>,
    /// Engines that followed this new process from its parent, told of
    /// its first stop ([`crate::Engine::report_child_start`]).
    pub child_start_for: Vec<EngineId>,
    /// A `PTRACE_INTERRUPT` was sent and its stop has not arrived yet.
    pub interrupt_sent: bool,
    /// The syscall between its entry (or seccomp) stop and its exit stop.
    pub in_syscall: Option<SyscallEntry>,
    /// Its process's system time at that entry, in microseconds (when
    /// system times are asked for).
    pub entry_stime_us: Option<u64>,
    /// A callback skipped the syscall at this entry (with this return value).
    pub skipped: Option<i64>,
    /// How it was last resumed.
    pub resumed_with: sys::Resume,
    /// Before the spawned program's own execve: stops are not reported.
    pub prelude: bool,
    /// Control actions batches asked for, applied by the core after them.
    pub after: Vec<(EngineId, crate::batch::AfterBatch)>,
    /// Seen its first stop (new tasks start with a trap stop).
    pub started: bool,
    pub regs: RegCache,
    /// Closures waiting for this task's next stop (`Core::with_stopped` on
    /// a running task). Kept here, not in a map keyed by tid, so that they
    /// follow the task when a non-leader exec moves it to the leader's tid.
    pub waiters: Vec<(EngineId, crate::core::Waiter)>,
    /// Engines to hold this task at its next stop (`control(Stop)` while it
    /// runs); moves with the task like `waiters`.
    pub hold_next: Vec<EngineId>,
    /// What other threads may know of this one, to read its memory while
    /// it is stopped (see [`crate::gate`]); follows `run`.
    pub gate: Arc<TaskGate>,
    /// The debug registers it has (the kernel gives a new thread none),
    /// and the generation of its process's table they match
    /// ([`crate::watch`]).
    pub dregs: crate::watch::DebugRegs,
    pub dr_gen: u64,
    /// Engines whose single steps go on while `rip` stays in `[start,
    /// end)` ([`Task::step_within`]): one report when it leaves.
    pub step_range: Vec<(EngineId, u64, u64)>,
}

impl Drop for TaskState {
    fn drop(&mut self) {
        // Forgotten by the tracer: no reader may read through its gate.
        self.gate.close();
    }
}

impl TaskState {
    pub fn new(tid: Tid, proc: u64, gate: Arc<TaskGate>) -> Self {
        TaskState {
            tid,
            proc,
            run: RunState::Running,
            stop: None,
            pending_signal: 0,
            signal_suppressed: false,
            stop_seq: 0,
            stops: 0,
            syscall_stops: 0,
            step_over: None,
            int3_rewound: None,
            peeked_siginfo: None,
            tf_by_engine: false,
            holds: BTreeSet::new(),
            step_for: Vec::new(),
            stepping: Vec::new(),
            quiesce_for: Vec::new(),
            child_start_for: Vec::new(),
            interrupt_sent: false,
            in_syscall: None,
            entry_stime_us: None,
            skipped: None,
            resumed_with: sys::Resume::Cont,
            prelude: false,
            after: Vec::new(),
            started: false,
            regs: RegCache::default(),
            waiters: Vec::new(),
            hold_next: Vec::new(),
            gate,
            dregs: Default::default(),
            dr_gen: 0,
            step_range: Vec::new(),
        }
    }

    /// Set the run state, and the gate with it: call it *before* resuming
    /// the task, so no reader reads it as stopped once it runs.
    pub fn set_run(&mut self, run: RunState) {
        self.run = run;
        self.gate.set_stopped(run == RunState::Stopped);
    }

    /// Write back changed registers (once, before resuming) and forget the cache.
    pub fn flush_registers(&mut self) -> Result<()> {
        let regs = std::mem::take(&mut self.regs);
        if regs.general_dirty {
            if let Some(g) = &regs.general {
                sys::set_regset(self.tid, libc::NT_PRSTATUS as u32, g).map_err(|errno| {
                    Error::Sys {
                        op: "PTRACE_SETREGSET(NT_PRSTATUS)",
                        tid: self.tid,
                        errno,
                    }
                })?;
            }
        }
        if regs.float_dirty {
            if let Some(f) = &regs.float {
                sys::set_regset(self.tid, libc::NT_PRFPREG as u32, &f[..]).map_err(|errno| {
                    Error::Sys {
                        op: "PTRACE_SETREGSET(NT_PRFPREG)",
                        tid: self.tid,
                        errno,
                    }
                })?;
            }
        }
        Ok(())
    }

    fn general(&mut self) -> Result<&mut [u8; arch::GENERAL_REGS_SIZE]> {
        if self.regs.general.is_none() {
            let mut buf = [0u8; arch::GENERAL_REGS_SIZE];
            sys::get_regset(self.tid, libc::NT_PRSTATUS as u32, &mut buf).map_err(|errno| {
                Error::Sys {
                    op: "PTRACE_GETREGSET(NT_PRSTATUS)",
                    tid: self.tid,
                    errno,
                }
            })?;
            self.regs.general = Some(buf);
        }
        Ok(self.regs.general.as_mut().expect("filled above"))
    }

    fn float(&mut self) -> Result<&mut [u8; arch::FLOAT_REGS_SIZE]> {
        if self.regs.float.is_none() {
            let mut buf = Box::new([0u8; arch::FLOAT_REGS_SIZE]);
            sys::get_regset(self.tid, libc::NT_PRFPREG as u32, &mut buf[..]).map_err(|errno| {
                Error::Sys {
                    op: "PTRACE_GETREGSET(NT_PRFPREG)",
                    tid: self.tid,
                    errno,
                }
            })?;
            self.regs.float = Some(buf);
        }
        Ok(self.regs.float.as_mut().expect("filled above"))
    }

    pub fn gp_word(&mut self, offset: usize) -> Result<u64> {
        let g = self.general()?;
        Ok(u64::from_ne_bytes(
            g[offset..offset + 8].try_into().expect("8 bytes"),
        ))
    }

    pub fn set_gp_word(&mut self, offset: usize, value: u64) -> Result<()> {
        let g = self.general()?;
        g[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self.regs.general_dirty = true;
        Ok(())
    }

    /// Set a general register word and write the general registers to the
    /// kernel at once (the cache stays valid). For changes that must not
    /// wait for the resume: a tracee whose tracer dies runs on from the
    /// registers the kernel has, not from our cache.
    pub fn set_gp_word_now(&mut self, offset: usize, value: u64) -> Result<()> {
        self.set_gp_word(offset, value)?;
        let tid = self.tid;
        let g = self.general()?;
        sys::set_regset(tid, libc::NT_PRSTATUS as u32, &g[..]).map_err(|errno| Error::Sys {
            op: "PTRACE_SETREGSET(NT_PRSTATUS)",
            tid,
            errno,
        })?;
        self.regs.general_dirty = false;
        Ok(())
    }

    fn reg_bytes(&mut self, desc: &RegDesc) -> Result<Vec<u8>> {
        match desc.set {
            RegSet::General => Ok(self.general()?[desc.offset..desc.offset + desc.size].to_vec()),
            RegSet::Float => Ok(self.float()?[desc.offset..desc.offset + desc.size].to_vec()),
            RegSet::Debug => sys::peek_user(self.tid, desc.offset)
                .map(|v| v.to_ne_bytes().to_vec())
                .map_err(|errno| Error::Sys {
                    op: "PTRACE_PEEKUSER",
                    tid: self.tid,
                    errno,
                }),
        }
    }

    fn set_reg_bytes(&mut self, desc: &RegDesc, bytes: &[u8]) -> Result<()> {
        if bytes.len() != desc.size {
            return Err(Error::RegisterSize {
                name: desc.name,
                expected: desc.size,
                got: bytes.len(),
            });
        }
        match desc.set {
            RegSet::General => {
                self.general()?[desc.offset..desc.offset + desc.size].copy_from_slice(bytes);
                self.regs.general_dirty = true;
            }
            RegSet::Float => {
                self.float()?[desc.offset..desc.offset + desc.size].copy_from_slice(bytes);
                self.regs.float_dirty = true;
            }
            // Shared between engines (crate::watch): a write here would
            // take another engine's watchpoint, or be undone unseen.
            RegSet::Debug => return Err(Error::SharedRegister { name: desc.name }),
        }
        Ok(())
    }
}

/// Per-process memory access: the `/proc/PID/mem` descriptor, opened on first
/// use and reopened after exec (a descriptor is tied to the old image).
#[derive(Default)]
pub(crate) struct MemFile {
    file: Option<File>,
}

impl MemFile {
    pub fn reset(&mut self) {
        self.file = None;
    }

    /// Read bytes at `addr` of process `pid` as memory holds them.
    pub fn read(
        &mut self,
        pid: Tid,
        addr: u64,
        buf: &mut [u8],
    ) -> std::result::Result<usize, Errno> {
        let fd = self.get(pid)?.as_raw_fd();
        sys::pread(fd, buf, addr)
    }

    /// Write bytes at `addr` of process `pid` (the core's own writes:
    /// breakpoint bytes put back).
    pub fn write(&mut self, pid: Tid, addr: u64, data: &[u8]) -> std::result::Result<usize, Errno> {
        let fd = self.get(pid)?.as_raw_fd();
        sys::pwrite(fd, data, addr)
    }

    fn get(&mut self, pid: Tid) -> std::result::Result<&File, Errno> {
        if self.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{pid}/mem"))
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            self.file = Some(f);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }
}

/// The result of one memory read: the bytes that came back, and if fewer than
/// asked, why the rest did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemRead {
    /// Address the read started at.
    pub addr: u64,
    /// The bytes read; shorter than asked when `error` is set. The reads of
    /// one [`Task::read_scatter`] share one buffer (each is a slice of it):
    /// no copy and no allocation per range.
    pub data: Bytes,
    /// Why the read stopped short (EFAULT/EIO for unmapped memory).
    pub error: Option<Errno>,
}

/// How much of one range of a scatter read arrived, and why not the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Got {
    /// Bytes that arrived, from the range's start.
    pub len: usize,
    /// Why the rest did not (EFAULT/EIO for unmapped memory).
    pub error: Option<Errno>,
}

/// The bytes of many ranges read in one go ([`Task::read_scatter_buf`]):
/// every range at its place in `buf` (after the *asked* lengths of the
/// ranges before it), as a debugger sees memory (its own breakpoints'
/// `int3`s hidden).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScatterRead {
    /// The ranges' bytes, back to back; bytes of a range that did not
    /// arrive are zero.
    pub buf: Vec<u8>,
    /// Per range, how much arrived; `None` when every range arrived whole
    /// (the common case, with no vector to build).
    pub got: Option<Vec<Got>>,
}

/// Callback-time configuration of the engine being called.
pub(crate) struct EngineCfg<'a> {
    pub id: EngineId,
    pub events: &'a mut EventMask,
    pub syscalls: &'a mut SyscallSet,
    /// Set when the callback changed the mask or the syscall set: the core
    /// then recomputes the syscall mode of the engine's processes (no copy
    /// of the set is taken to compare).
    pub changed: bool,
    /// The engine takes breakpoint hits without a stop
    /// ([`crate::EngineOptions::breakpoint_hits`]).
    pub breakpoint_hits: bool,
    /// Its uprobe hits carry the user stack
    /// ([`crate::EngineOptions::hit_stacks`]).
    pub hit_stacks: bool,
}

impl<'a> EngineCfg<'a> {
    /// The configuration of engine `id`, unchanged so far.
    pub fn new(
        id: EngineId,
        events: &'a mut EventMask,
        syscalls: &'a mut SyscallSet,
        breakpoint_hits: bool,
        hit_stacks: bool,
    ) -> Self {
        EngineCfg {
            id,
            events,
            syscalls,
            changed: false,
            breakpoint_hits,
            hit_stacks,
        }
    }
}

/// A stopped thread, as an engine sees it during a callback or a
/// [`crate::Tracer::with_stopped`] closure: memory, registers, the current
/// syscall, and the calling engine's own event mask.
pub struct Task<'a> {
    pub(crate) state: &'a mut TaskState,
    pub(crate) pid: Tid,
    pub(crate) mode: SyscallMode,
    pub(crate) mem: &'a mut MemFile,
    pub(crate) bps: &'a mut crate::breakpoint::Breakpoints,
    /// Its process's threads (a uprobe serves each).
    pub(crate) threads: &'a [Tid],
    /// Its process's gate: memory and breakpoint changes go through it.
    pub(crate) gate: &'a ProcGate,
    /// Its process's debug-register slots.
    pub(crate) watch: &'a mut crate::watch::Watchpoints,
    pub(crate) engine: EngineCfg<'a>,
}

impl Task<'_> {
    /// Thread id.
    pub fn tid(&self) -> Tid {
        self.state.tid
    }

    /// Process id (thread group id).
    pub fn pid(&self) -> Tid {
        self.pid
    }

    /// The engine this view was handed to.
    pub fn engine_id(&self) -> EngineId {
        self.engine.id
    }

    /// Identifies the stop the task is at: it changes at every stop, and no
    /// two stops under one tracer share it. A decision taken later for the
    /// report made here can be checked against it (see
    /// [`crate::Tracer::decide`]).
    pub fn stop_id(&self) -> u64 {
        self.state.stop_seq
    }

    /// How this task's syscalls reach the tracer.
    pub fn syscall_mode(&self) -> SyscallMode {
        self.mode
    }

    // ---- the calling engine's own mask ----

    /// The calling engine's event mask.
    pub fn events(&self) -> EventMask {
        *self.engine.events
    }

    /// Change the calling engine's event mask; applies from the next report
    /// point (so setting `SYSCALL_EXIT` at an entry report yields that exit).
    pub fn set_events(&mut self, events: EventMask) {
        if *self.engine.events != events {
            *self.engine.events = events;
            self.engine.changed = true;
        }
    }

    /// The calling engine's syscall set.
    pub fn syscalls(&self) -> &SyscallSet {
        self.engine.syscalls
    }

    /// Change the calling engine's syscall set (next report point on).
    pub fn set_syscalls(&mut self, set: SyscallSet) {
        if *self.engine.syscalls != set {
            *self.engine.syscalls = set;
            self.engine.changed = true;
        }
    }

    /// Record what a batch asked for; the core applies it after the batch.
    /// Range stepping (gdb's `vCont;r`): the calling engine's next single
    /// step goes on, one instruction at a time inside the tracer with no
    /// report, while `rip` stays in `[start, end)`; it is reported
    /// ([`crate::Engine::report_step`]) once `rip` leaves the range. Any
    /// other stop (a signal, a breakpoint, a syscall an engine wants) ends
    /// it and is reported as usual.
    pub fn step_within(&mut self, start: u64, end: u64) {
        let id = self.engine.id;
        self.state.step_range.retain(|(e, ..)| *e != id);
        if start < end {
            self.state.step_range.push((id, start, end));
        }
    }

    pub(crate) fn push_after(&mut self, after: crate::batch::AfterBatch) {
        if after != crate::batch::AfterBatch::default() {
            self.state.after.push((self.engine.id, after));
        }
    }

    // ---- syscalls ----

    /// Skip the syscall at this entry stop; the task sees `ret` as its result
    /// (e.g. `-libc::ENOENT as i64`). Later engines see the skip through
    /// [`Task::syscall_skipped`].
    pub fn skip_syscall(&mut self, ret: i64) -> Result<()> {
        if !matches!(
            self.state.stop,
            Some(crate::task::StopKind::SyscallEntry(_))
        ) {
            return Err(Error::WrongStop {
                what: "skip_syscall",
                stop: "entry",
            });
        }
        self.state.set_gp_word(gp::ORIG_RAX, u64::MAX)?;
        self.state.set_gp_word(gp::RAX, ret as u64)?;
        self.state.skipped = Some(ret);
        Ok(())
    }

    /// The return value a previous engine chose when it skipped this syscall.
    pub fn syscall_skipped(&self) -> Option<i64> {
        self.state.skipped
    }

    /// Change the value the syscall returns, at its exit stop.
    pub fn set_syscall_return(&mut self, ret: i64) -> Result<()> {
        if !matches!(self.state.stop, Some(crate::task::StopKind::SyscallExit(_))) {
            return Err(Error::WrongStop {
                what: "set_syscall_return",
                stop: "exit",
            });
        }
        self.state.set_gp_word(gp::RAX, ret as u64)
    }

    /// What the task sees as the current syscall's result: at an entry stop
    /// the call is skipped with `value` ([`Task::skip_syscall`]), at an exit
    /// stop its return value is replaced ([`Task::set_syscall_return`]).
    pub fn set_syscall_result(&mut self, value: i64) -> Result<()> {
        match self.current_syscall() {
            Some((_, None)) => self.skip_syscall(value),
            Some((_, Some(_))) => self.set_syscall_return(value),
            None => Err(Error::NotAtSyscall {
                what: "set_syscall_return",
            }),
        }
    }

    /// The syscall this task is stopped in, if at a syscall stop: entry, and
    /// the return value at an exit.
    pub fn current_syscall(&self) -> Option<(SyscallEntry, Option<i64>)> {
        match self.state.stop {
            Some(StopKind::SyscallEntry(e)) => Some((e, None)),
            Some(StopKind::SyscallExit(x)) => Some((x.entry, Some(x.ret))),
            _ => None,
        }
    }

    // ---- registers ----

    /// A register of at most 8 bytes by its usual name (`rip`, `rax`,
    /// `eflags`, `fs_base`, `dr7`, `mxcsr`…), zero-extended.
    pub fn register(&mut self, name: &str) -> Result<u64> {
        let desc = arch::register(name).ok_or_else(|| Error::UnknownRegister(name.into()))?;
        self.register_at(desc)
    }

    /// [`Task::register`] of a register looked up already
    /// ([`arch::register`]): what a caller that reads the same registers
    /// at every stop keeps.
    pub fn register_at(&mut self, desc: &'static arch::RegDesc) -> Result<u64> {
        if desc.size > 8 {
            return Err(Error::WideRegister {
                name: desc.name,
                size: desc.size,
            });
        }
        let bytes = self.state.reg_bytes(desc)?;
        let mut w = [0u8; 8];
        w[..bytes.len()].copy_from_slice(&bytes);
        Ok(u64::from_le_bytes(w))
    }

    /// Set a register of at most 8 bytes (truncated to its width). General
    /// and FP registers are written back once, when the task resumes.
    pub fn set_register(&mut self, name: &str, value: u64) -> Result<()> {
        let desc = arch::register(name).ok_or_else(|| Error::UnknownRegister(name.into()))?;
        if desc.size > 8 {
            return Err(Error::WideRegister {
                name: desc.name,
                size: desc.size,
            });
        }
        if desc.name == "eflags" && value & arch::EFLAGS_TF != 0 {
            self.state.tf_by_engine = true;
        }
        self.state
            .set_reg_bytes(desc, &value.to_le_bytes()[..desc.size])
    }

    /// Any register's raw bytes (little-endian), e.g. `xmm0` (16) or `st0` (10).
    pub fn register_bytes(&mut self, name: &str) -> Result<Vec<u8>> {
        let desc = arch::register(name).ok_or_else(|| Error::UnknownRegister(name.into()))?;
        self.register_bytes_at(desc)
    }

    /// [`Task::register_bytes`] of a register looked up already.
    pub fn register_bytes_at(&mut self, desc: &'static arch::RegDesc) -> Result<Vec<u8>> {
        self.state.reg_bytes(desc)
    }

    /// Set any register from its raw bytes; the length must match its width.
    pub fn set_register_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let desc = arch::register(name).ok_or_else(|| Error::UnknownRegister(name.into()))?;
        self.state.set_reg_bytes(desc, bytes)
    }

    /// Every register of at most 8 bytes, by name.
    pub fn registers(&mut self) -> Result<Vec<(&'static str, u64)>> {
        let mut out = Vec::with_capacity(arch::REGISTERS.len());
        for desc in arch::REGISTERS.iter().filter(|d| d.size <= 8) {
            out.push((desc.name, self.register(desc.name)?));
        }
        Ok(out)
    }

    // ---- memory ----

    /// Read `len` bytes at `addr`; a partial read says why it stopped.
    pub fn read_memory(&mut self, addr: u64, len: usize) -> MemRead {
        self.read_scatter(&[(addr, len)])
            .pop()
            .expect("one request, one result")
    }

    /// Read many ranges with as few `process_vm_readv` calls as the kernel
    /// allows (one per 1,024 ranges, plus one per range that fails), into one
    /// buffer. Each range gets its own result (a slice of that buffer); a bad
    /// range does not spoil the others.
    pub fn read_scatter(&mut self, ranges: &[(u64, usize)]) -> Vec<MemRead> {
        let mut out = Vec::with_capacity(ranges.len());
        self.read_scatter_each(ranges, |r| out.push(r));
        out
    }

    /// [`Task::read_scatter`], handing each range's result to `f` in order
    /// (no vector of results in between).
    pub(crate) fn read_scatter_each(
        &mut self,
        ranges: &[(u64, usize)],
        mut f: impl FnMut(MemRead),
    ) {
        let read = self.read_scatter_buf(ranges);
        // Empty when every range arrived whole.
        let got: Vec<Got> = read.got.unwrap_or_default();
        let buf = Bytes::from(read.buf);
        let mut off = 0;
        for (i, &(addr, len)) in ranges.iter().enumerate() {
            let g = got.get(i).copied().unwrap_or(Got { len, error: None });
            f(MemRead {
                addr,
                data: buf.slice(off..off + g.len),
                error: g.error,
            });
            off += len;
        }
    }

    /// Read many ranges into one buffer (see [`ScatterRead`]): the same
    /// reads as [`Task::read_scatter`], without a result per range.
    pub fn read_scatter_buf(&mut self, ranges: &[(u64, usize)]) -> ScatterRead {
        let (mut buf, got) = self.read_scatter_raw(ranges);
        if self.bps.active() {
            let mut off = 0;
            for (i, &(addr, len)) in ranges.iter().enumerate() {
                let n = got.as_ref().map_or(len, |g| g[i].len);
                self.bps.unpatch(addr, &mut buf[off..off + n]);
                off += len;
            }
        }
        ScatterRead { buf, got }
    }

    /// Reads as the memory holds them, `int3`s included: one buffer with
    /// every range at its place (the sum of the lengths before it), and how
    /// much of each range arrived (`None`: every range arrived whole, the
    /// common case, with no vector of one entry per range to build).
    fn read_scatter_raw(&mut self, ranges: &[(u64, usize)]) -> (Vec<u8>, Option<Vec<Got>>) {
        let total = ranges.iter().fold(0usize, |acc, r| acc.saturating_add(r.1));
        if let Some(buf) = read_coalesced(self.pid, ranges, total) {
            return (buf, None);
        }
        let mut buf: Vec<u8> = Vec::with_capacity(total);
        if total >= HUGE_READ {
            sys::advise_huge_pages(&mut buf);
        }
        let mut got: Vec<Got> = ranges
            .iter()
            .map(|r| Got {
                len: r.1,
                error: None,
            })
            .collect();
        let mut remote: Vec<libc::iovec> = Vec::with_capacity(ranges.len().min(IOV_MAX));
        // `start`: the first range not read yet; it goes at `buf.len()`.
        let mut start = 0usize;
        while start < ranges.len() {
            let end = (start + IOV_MAX).min(ranges.len());
            remote.clear();
            remote.extend(ranges[start..end].iter().map(range_iovec));
            let want: usize = ranges[start..end].iter().map(|r| r.1).sum();
            let off = buf.len();
            let n = sys::process_vm_readv_append(self.pid, &mut buf, want, &remote).unwrap_or(0);
            if n >= want {
                start = end;
                continue;
            }
            // Everything up to `n` bytes arrived; the range where it stopped
            // failed: read it the slow way, then go on after it.
            let mut acc = 0usize;
            let mut i = start;
            while i < end && acc + ranges[i].1 <= n {
                acc += ranges[i].1;
                i += 1;
            }
            let slot = off + acc;
            let Some(&(addr, len)) = ranges.get(i).filter(|_| i < end) else {
                // Not reached (the ranges sum to more than `n`); go on anyway.
                buf.resize(off + want, 0);
                start = end;
                continue;
            };
            // Drop the failed range's partial bytes; read it again whole.
            buf.truncate(slot);
            buf.resize(slot + len, 0);
            got[i] = self.read_slow(addr, &mut buf[slot..slot + len]);
            start = i + 1;
        }
        (buf, Some(got))
    }

    /// One range that `process_vm_readv` could not read whole: retry through
    /// `/proc/PID/mem` (which can also read pages without read permission),
    /// keep what arrives, and record why the rest did not.
    fn read_slow(&mut self, addr: u64, data: &mut [u8]) -> Got {
        let len = data.len();
        let mut done = 0usize;
        let mut error = None;
        match self.mem.get(self.pid) {
            Ok(f) => {
                let fd = f.as_raw_fd();
                while done < len {
                    match sys::pread(fd, &mut data[done..], addr + done as u64) {
                        Ok(0) => {
                            error = Some(Errno::EIO);
                            break;
                        }
                        Ok(n) => done += n,
                        Err(Errno::EINTR) => continue,
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
            }
            Err(e) => error = Some(e),
        }
        // /proc/PID/mem says EIO for an address with no mapping; callers
        // (and process_vm_readv) call that EFAULT.
        let error = match (done == len, error) {
            (true, _) => None,
            (false, Some(Errno::EIO)) | (false, None) => Some(Errno::EFAULT),
            (false, e) => e,
        };
        Got { len: done, error }
    }

    /// Read a NUL-terminated string of at most `max_len` bytes (the NUL is not
    /// included). `error` is set if memory ended before a NUL or the limit.
    pub fn read_string(&mut self, addr: u64, max_len: usize) -> MemRead {
        let mut data = Vec::new();
        let mut at = addr;
        while data.len() < max_len {
            // Read up to the end of the page, so an unmapped next page does not
            // fail a string that ends before it.
            let page_left = 4096 - (at % 4096) as usize;
            let want = page_left.min(max_len - data.len());
            let chunk = self.read_memory(at, want);
            if let Some(nul) = chunk.data.iter().position(|b| *b == 0) {
                data.extend_from_slice(&chunk.data[..nul]);
                return MemRead {
                    addr,
                    data: data.into(),
                    error: None,
                };
            }
            data.extend_from_slice(&chunk.data);
            if chunk.error.is_some() {
                return MemRead {
                    addr,
                    data: data.into(),
                    error: chunk.error,
                };
            }
            at += want as u64;
        }
        MemRead {
            addr,
            data: data.into(),
            error: None,
        }
    }

    /// Write bytes at `addr` through `/proc/PID/mem` (which can write
    /// read-only text, for breakpoints), falling back to `PTRACE_POKEDATA`.
    /// Returns the bytes written.
    pub fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<usize> {
        if !self.bps.active() {
            return self.write_raw(addr, data);
        }
        let gate = self.gate;
        let _c = gate.changing();
        // A uprobe runs its file's copy of the instruction: a site whose
        // instruction this write changes becomes an int3 first.
        for site in self.bps.probes_under(addr, data.len()) {
            let r = {
                let (bps, mut io) = self.sites();
                bps.force_int3(site, &mut io)
            };
            r.map_err(|errno| Error::BreakpointAddress { addr: site, errno })?;
        }
        // Bytes under a breakpoint become its saved original; the int3 stays.
        let mut data = data.to_vec();
        if self.bps.patch_write(addr, &mut data) {
            gate.set_breakpoints(self.bps);
        }
        self.write_raw(addr, &data)
    }

    /// The breakpoint table, and what it needs to place this process's
    /// sites.
    fn sites(
        &mut self,
    ) -> (
        &mut crate::breakpoint::Breakpoints,
        crate::breakpoint::Io<'_>,
    ) {
        (
            &mut *self.bps,
            crate::breakpoint::Io {
                pid: self.pid,
                threads: self.threads,
                mem: &mut *self.mem,
            },
        )
    }

    /// Settle the site at `addr` to what its users now want (or, with
    /// `drop`, take it out for good), inside the process gate's change,
    /// then publish the breakpoint set to readers.
    fn resettle(&mut self, addr: u64, drop: bool) -> std::result::Result<(), Errno> {
        let gate = self.gate;
        let _c = gate.changing();
        let r = {
            let (bps, mut io) = self.sites();
            if drop {
                bps.drop_site(addr, &mut io)
            } else {
                bps.settle(addr, &mut io)
            }
        };
        gate.set_breakpoints(self.bps);
        r
    }

    /// The site at `addr`, if there is one.
    fn site_mut(&mut self, addr: u64) -> Result<&mut crate::breakpoint::Bp> {
        self.bps
            .map
            .get_mut(&addr)
            .ok_or(Error::NoBreakpoint { addr })
    }

    /// Breakpoint at `addr` for the calling engine, shared with other
    /// engines (reference-counted). Served by an `int3` (the task stops
    /// there: [`crate::Engine::report_breakpoint`]) or, when every engine
    /// using it takes hits without a stop
    /// ([`crate::EngineOptions::breakpoint_hits`]), by the kernel's uprobe
    /// ([`crate::Engine::report_breakpoint_hit`]).
    pub fn insert_breakpoint(&mut self, addr: u64) -> Result<()> {
        self.insert_breakpoint_as(addr, false)
    }

    /// [`Task::insert_breakpoint`] for an engine that only counts this
    /// breakpoint's hits (an engine with
    /// [`crate::EngineOptions::breakpoint_hits`]): while every user of a
    /// site served by a uprobe only counts, the kernel counts its hits
    /// without a sample each (about a third of the cost), and they come as
    /// [`crate::Engine::report_breakpoint_count`]. The same engine
    /// inserting it uncounted too wants the hits themselves.
    pub fn insert_breakpoint_counted(&mut self, addr: u64) -> Result<()> {
        self.insert_breakpoint_as(addr, self.engine.breakpoint_hits)
    }

    /// A breakpoint at a USDT marker guarded by a semaphore at file offset
    /// `ref_ctr` of the marker's file (for an engine with
    /// [`crate::EngineOptions::breakpoint_hits`]; `counted` as
    /// [`Task::insert_breakpoint_counted`]). The kernel increments the
    /// semaphore while its uprobe serves the marker, so the program runs
    /// the marker; only a uprobe can: refused where none can serve it.
    pub fn insert_marker(&mut self, addr: u64, ref_ctr: u64, counted: bool) -> Result<()> {
        let refuse = |errno| Err(Error::BreakpointAddress { addr, errno });
        if !self.engine.breakpoint_hits {
            return refuse(Errno::EOPNOTSUPP);
        }
        match self.bps.map.get_mut(&addr) {
            Some(bp) if bp.ref_ctr != ref_ctr => return refuse(Errno::EINVAL),
            Some(_) => {}
            None => {
                // A new site: made with its semaphore, so that its first
                // uprobe has it (the kernel keeps one per location).
                let mut bp = self.new_site(addr)?;
                bp.ref_ctr = ref_ctr;
                let _c = self.gate.changing();
                self.bps.map.insert(addr, bp);
            }
        }
        let counted = counted && self.engine.breakpoint_hits;
        let r = self.insert_breakpoint_as(addr, counted);
        let served = self
            .bps
            .map
            .get(&addr)
            .is_some_and(|b| matches!(b.mech, crate::breakpoint::Mech::Probe(_)));
        match r {
            Ok(()) if served => Ok(()),
            Ok(()) => {
                let _ = self.remove_breakpoint(addr);
                refuse(Errno::EOPNOTSUPP)
            }
            Err(e) => {
                // Nothing of this insertion stays.
                let _ = self.remove_breakpoint(addr);
                if self.bps.map.get(&addr).is_some_and(|b| b.unused()) {
                    self.bps.map.remove(&addr);
                }
                Err(e)
            }
        }
    }

    /// A site at `addr`, not in the table yet: its original byte read,
    /// its file location found.
    fn new_site(&mut self, addr: u64) -> Result<crate::breakpoint::Bp> {
        let (buf, got) = self.read_scatter_raw(&[(addr, 1)]);
        let got = got
            .as_ref()
            .and_then(|g| g.first())
            .copied()
            .unwrap_or(Got {
                len: 1,
                error: None,
            });
        let (Some(&orig), Got { len: 1, .. }) = (buf.first(), got) else {
            return Err(Error::BreakpointAddress {
                addr,
                errno: got.error.unwrap_or(Errno::EFAULT),
            });
        };
        let loc = crate::uprobe::locate(self.pid, addr);
        // An int3 in memory where the file has another byte, at a site
        // none of ours: a kernel uprobe's breakpoint (one of this process's
        // events from before an exec, not closed yet, or another tool's).
        // The byte under it is the file's; taking the int3 for the
        // original would leave one in the program for good.
        let orig = match (orig, &loc) {
            (crate::breakpoint::INT3, Some(l)) => l
                .file_byte()
                .filter(|b| *b != crate::breakpoint::INT3)
                .unwrap_or(orig),
            _ => orig,
        };
        Ok(crate::breakpoint::Bp::new(orig, loc))
    }

    fn insert_breakpoint_as(&mut self, addr: u64, counted: bool) -> Result<()> {
        let id = self.engine.id;
        let stops = !self.engine.breakpoint_hits;
        let gate = self.gate;
        let stacks = self.engine.hit_stacks && self.engine.breakpoint_hits;
        if let Some(bp) = self.bps.map.get_mut(&addr) {
            let first = !bp.users.contains_key(&id);
            *bp.users.entry(id).or_insert(0) += 1;
            let stack_changed = first && stacks && !bp.shape_has_stack();
            if stacks {
                bp.stackers.insert(id);
            }
            // Counting changes only with a new user, or a counting one
            // that now wants hits.
            let counting_changed = if counted {
                first && bp.counters.insert(id)
            } else {
                bp.counters.remove(&id) || first
            };
            if (stops && bp.stoppers.insert(id)) || counting_changed || stack_changed {
                self.resettle(addr, false)
                    .map_err(|errno| Error::BreakpointAddress { addr, errno })?;
            }
            return Ok(());
        }
        let mut bp = self.new_site(addr)?;
        let _c = gate.changing();
        bp.users.insert(id, 1);
        if stops {
            bp.stoppers.insert(id);
        }
        if counted {
            bp.counters.insert(id);
        }
        if stacks {
            bp.stackers.insert(id);
        }
        self.bps.map.insert(addr, bp);
        let r = {
            let (bps, mut io) = self.sites();
            bps.settle(addr, &mut io)
        };
        if let Err(errno) = r {
            // Nothing of ours went in.
            self.bps.map.remove(&addr);
            return Err(Error::BreakpointAddress { addr, errno });
        }
        gate.set_breakpoints(self.bps);
        Ok(())
    }

    /// A return probe of the function starting at `addr` for the calling
    /// engine (one with [`crate::EngineOptions::breakpoint_hits`]): its
    /// hits come as [`crate::Engine::report_breakpoint_hit`] with
    /// `returned` set, the registers at the function's return. Served by
    /// the kernel's return probe (a uprobe) only: refused where no uprobe
    /// can serve the address, or an int3 serves it (an engine stops
    /// there); shared and reference-counted like breakpoints.
    pub fn insert_return_probe(&mut self, addr: u64) -> Result<()> {
        let refuse = |errno| Err(Error::BreakpointAddress { addr, errno });
        if !self.engine.breakpoint_hits {
            return refuse(Errno::EOPNOTSUPP);
        }
        let id = self.engine.id;
        let gate = self.gate;
        let new_site = !self.bps.map.contains_key(&addr);
        if new_site {
            let bp = self.new_site(addr)?;
            self.bps.map.insert(addr, bp);
        }
        let Some(bp) = self.bps.map.get_mut(&addr) else {
            return refuse(Errno::EFAULT);
        };
        let stack_changed =
            self.engine.hit_stacks && !bp.ret_users.contains_key(&id) && !bp.shape_has_stack();
        if self.engine.hit_stacks {
            bp.stackers.insert(id);
        }
        let first = bp.ret_users.is_empty() || stack_changed;
        *bp.ret_users.entry(id).or_insert(0) += 1;
        let _c = gate.changing();
        let r = if first {
            let (bps, mut io) = self.sites();
            bps.settle(addr, &mut io)
        } else {
            Ok(())
        };
        let served = self
            .bps
            .map
            .get(&addr)
            .is_some_and(|b| matches!(b.mech, crate::breakpoint::Mech::Probe(_)));
        if r.is_err() || !served {
            // Undo: this engine's return probe is not there.
            if let Some(bp) = self.bps.map.get_mut(&addr) {
                if let Some(n) = bp.ret_users.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        bp.ret_users.remove(&id);
                    }
                }
            }
            if new_site {
                self.bps.map.remove(&addr);
            } else {
                let (bps, mut io) = self.sites();
                let _ = bps.settle(addr, &mut io);
            }
            gate.set_breakpoints(self.bps);
            return refuse(r.err().unwrap_or(Errno::EOPNOTSUPP));
        }
        gate.set_breakpoints(self.bps);
        Ok(())
    }

    /// What the calling engine wants the kernel to take at each hit of
    /// its breakpoint at `addr` (`ret`: of its return probe there), before
    /// the program runs on: tracefs fetch arguments (`+0(%di):string`,
    /// `-16(%bp):s64`, `+8(%si):u8[16]`). While a uprobe serves the site,
    /// its sampling events are then tracefs uprobes taking every user's
    /// arguments, and each hit carries the values
    /// ([`crate::BreakpointHit::fetched`]). Replaces the engine's earlier
    /// wish there; an empty list takes it back. Where tracefs cannot be
    /// had, or an int3 serves the site (the task stops: read its memory
    /// then), hits carry nothing fetched.
    pub fn fetch_at(&mut self, addr: u64, ret: bool, args: Vec<String>) -> Result<()> {
        let id = self.engine.id;
        let bp = self.site_mut(addr)?;
        let (wants, users) = if ret {
            (&mut bp.ret_fetch, &bp.ret_users)
        } else {
            (&mut bp.fetch, &bp.users)
        };
        if !users.contains_key(&id) {
            return Err(Error::NoBreakpoint { addr });
        }
        let before = wants.get(&id).cloned().unwrap_or_default();
        if before == args {
            return Ok(());
        }
        if args.is_empty() {
            wants.remove(&id);
        } else {
            wants.insert(id, args);
        }
        self.resettle(addr, false)
            .map_err(|errno| Error::BreakpointAddress { addr, errno })
    }

    /// Remove one insertion of the calling engine's return probe at
    /// `addr`.
    pub fn remove_return_probe(&mut self, addr: u64) -> Result<()> {
        let id = self.engine.id;
        let bp = self.site_mut(addr)?;
        let n = bp
            .ret_users
            .get_mut(&id)
            .ok_or(Error::NoBreakpoint { addr })?;
        *n -= 1;
        if *n > 0 {
            return Ok(());
        }
        bp.ret_users.remove(&id);
        bp.ret_fetch.remove(&id);
        let unused = bp.unused();
        self.resettle(addr, unused).map_err(|errno| Error::Sys {
            op: "remove a return probe",
            tid: self.state.tid,
            errno,
        })
    }

    /// A hardware breakpoint (`WatchKind::Execute`) or watchpoint for the
    /// calling engine, in one of the process's four debug-register slots
    /// ([`crate::watch`]): shared with engines that insert the same one,
    /// refused (never taken from another engine) when the four are in use.
    /// This thread has it at once; the process's other threads before they
    /// next run (running ones are interrupted for it), new threads before
    /// their first instruction. Hits: [`crate::Engine::report_watchpoint`].
    pub fn insert_watchpoint(&mut self, w: crate::Watchpoint) -> Result<()> {
        let id = self.engine.id;
        let changed = self
            .watch
            .insert(id, w)
            .map_err(|full| Error::NoDebugSlot {
                pid: self.pid,
                held: full
                    .0
                    .iter()
                    .map(|(w, users)| {
                        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
                        format!(
                            "{:?} {:#x}/{} by {}",
                            w.kind,
                            w.addr,
                            w.len,
                            users.join(", ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        if !changed {
            return Ok(());
        }
        if let Err(errno) = self.sync_debug_regs() {
            // The kernel refused (no slot left on this CPU's perf side, a
            // kernel address): take it back out, and say so.
            self.watch.remove(id, w);
            let _ = self.sync_debug_regs();
            return Err(Error::Sys {
                op: "PTRACE_POKEUSER (debug registers)",
                tid: self.state.tid,
                errno,
            });
        }
        Ok(())
    }

    /// Remove one insertion of the calling engine's watchpoint `w`; its
    /// slot frees when no engine uses it.
    pub fn remove_watchpoint(&mut self, w: crate::Watchpoint) -> Result<()> {
        match self.watch.remove(self.engine.id, w) {
            None => Err(Error::NoWatchpoint {
                addr: w.addr,
                len: w.len,
                kind: w.kind,
            }),
            Some(false) => Ok(()),
            Some(true) => self.sync_debug_regs().map_err(|errno| Error::Sys {
                op: "PTRACE_POKEUSER (debug registers)",
                tid: self.state.tid,
                errno,
            }),
        }
    }

    /// Bring this (stopped) thread's debug registers up to its process's.
    fn sync_debug_regs(&mut self) -> std::result::Result<(), Errno> {
        let to = *self.watch.regs();
        let r = to.apply(self.state.tid, &self.state.dregs);
        if r.is_ok() {
            self.state.dregs = to;
            self.state.dr_gen = self.watch.gen();
        }
        r
    }

    /// Remove one insertion of the calling engine's breakpoint at `addr`;
    /// the original byte returns when no engine uses it any more.
    pub fn remove_breakpoint(&mut self, addr: u64) -> Result<()> {
        let id = self.engine.id;
        let bp = self.site_mut(addr)?;
        let n = bp.users.get_mut(&id).ok_or(Error::NoBreakpoint { addr })?;
        *n -= 1;
        if *n > 0 {
            return Ok(());
        }
        bp.users.remove(&id);
        bp.stoppers.remove(&id);
        bp.counters.remove(&id);
        bp.fetch.remove(&id);
        // The last user gone, the site goes; else, its last stop-needing
        // user gone, a uprobe may serve it.
        let last = bp.unused();
        self.resettle(addr, last).map_err(|errno| Error::Sys {
            op: "restore a breakpoint's byte",
            tid: self.state.tid,
            errno,
        })?;
        Ok(())
    }

    fn write_raw(&mut self, addr: u64, data: &[u8]) -> Result<usize> {
        let gate = self.gate;
        let _c = gate.changing();
        let tid = self.state.tid;
        if let Ok(f) = self.mem.get(self.pid) {
            let fd = f.as_raw_fd();
            let mut done = 0;
            while done < data.len() {
                match sys::pwrite(fd, &data[done..], addr + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(Errno::EINTR) => continue,
                    Err(errno) if done == 0 => {
                        return self.poke_fallback(addr, data).map_err(|_| Error::Sys {
                            op: "write to /proc/PID/mem",
                            tid,
                            errno,
                        })
                    }
                    Err(_) => break,
                }
            }
            return Ok(done);
        }
        self.poke_fallback(addr, data)
    }

    fn poke_fallback(&mut self, addr: u64, data: &[u8]) -> Result<usize> {
        let tid = self.state.tid;
        let err = |errno| Error::Sys {
            op: "PTRACE_POKEDATA",
            tid,
            errno,
        };
        let mut done = 0usize;
        while done < data.len() {
            let at = addr + done as u64;
            let word_addr = at & !7;
            let skew = (at - word_addr) as usize;
            let n = (8 - skew).min(data.len() - done);
            let mut word = if skew != 0 || n < 8 {
                sys::peek_data(tid, word_addr).map_err(err)?.to_ne_bytes()
            } else {
                [0u8; 8]
            };
            word[skew..skew + n].copy_from_slice(&data[done..done + n]);
            sys::poke_data(tid, word_addr, u64::from_ne_bytes(word)).map_err(err)?;
            done += n;
        }
        Ok(done)
    }
}

/// Many small ranges close together: read them as few spans as will
/// do, into one staging buffer, and copy each range to its place. The
/// kernel's cost is mostly per remote iovec (a VMA lookup, a page-table
/// walk, a pin and an unpin) and per local piece, not per byte: a span
/// that bridges a gap of up to [`SPAN_GAP`] bytes between two ranges
/// costs less than a second iovec does. The ranges are sorted by
/// address (ties: request order); spans hold at most [`STAGE_MAX`]
/// bytes in all; the staging buffer lives on as long as the tracer
/// thread, so its pages are not faulted in again for every read.
/// `None` when that saves little, or when anything failed (the caller
/// then reads range by range and finds the failures: bytes in a gap may
/// be unmapped where the ranges are not).
fn read_coalesced(pid: Tid, ranges: &[(u64, usize)], total: usize) -> Option<Vec<u8>> {
    // Sort keys below hold the request index in 16 bits.
    if ranges.len() < 8 || ranges.len() > 1 << 16 || total > COALESCE_MAX_TOTAL {
        return None;
    }
    // Sort keys: the address above (user addresses fit in 47 bits), the
    // request index below.
    let mut order: Vec<u64> = Vec::with_capacity(ranges.len());
    for (i, r) in ranges.iter().enumerate() {
        if r.0 >= 1 << 47 {
            return None;
        }
        if r.1 > 0 {
            order.push(r.0 << 16 | i as u64);
        }
    }
    order.sort_unstable();
    // Spans, in address order: (start, end). A span stops growing at
    // STAGE_CHUNK bytes where the next range does not overlap it.
    let mut spans: Vec<libc::iovec> = Vec::new();
    let mut cur: Option<(u64, u64)> = None;
    let mut staged = 0usize;
    for &key in &order {
        let (addr, i) = (key >> 16, (key & 0xffff) as usize);
        let end = addr.checked_add(ranges[i].1 as u64)?;
        match &mut cur {
            Some((s, e))
                if addr < *e
                    || (addr <= e.saturating_add(SPAN_GAP)
                        && end.max(*e) - *s <= STAGE_CHUNK as u64) =>
            {
                *e = (*e).max(end)
            }
            _ => {
                if let Some((s, e)) = cur.replace((addr, end)) {
                    staged += (e - s) as usize;
                    spans.push(iovec(s, e));
                }
            }
        }
    }
    if let Some((s, e)) = cur {
        staged += (e - s) as usize;
        spans.push(iovec(s, e));
    }
    // Worth it only if it saves a quarter of the remote iovecs.
    if spans.len() * 4 > order.len() * 3 || staged > STAGE_MAX {
        return None;
    }
    let mut buf = vec![0u8; total];
    let mut offs = Vec::with_capacity(ranges.len());
    let mut off = 0usize;
    for r in ranges {
        offs.push(off);
        off += r.1;
    }
    let span_end = |s: &libc::iovec| s.iov_base as u64 + s.iov_len as u64;
    STAGE.with(|stage| {
        let mut stage = stage.borrow_mut();
        // `k`: the next range (in address order) to copy out.
        let (mut k, mut first) = (0usize, 0usize);
        while first < spans.len() {
            // A group of spans that fits the staging chunk (at least one).
            let (mut last, mut want) = (first, 0usize);
            while last < spans.len()
                && last - first < IOV_MAX
                && (last == first || want + spans[last].iov_len <= STAGE_CHUNK)
            {
                want += spans[last].iov_len;
                last += 1;
            }
            stage.clear();
            let n =
                sys::process_vm_readv_append(pid, &mut stage, want, &spans[first..last]).ok()?;
            if n != want {
                return None;
            }
            // Copy out the ranges of this group, walking them and its spans
            // together.
            let group_end = span_end(&spans[last - 1]);
            let (mut span, mut span_off) = (first, 0usize);
            while let Some(&key) = order.get(k) {
                let (addr, i) = (key >> 16, (key & 0xffff) as usize);
                if addr >= group_end {
                    break;
                }
                while addr >= span_end(&spans[span]) {
                    span_off += spans[span].iov_len;
                    span += 1;
                }
                let at = span_off + (addr - spans[span].iov_base as u64) as usize;
                let len = ranges[i].1;
                buf[offs[i]..offs[i] + len].copy_from_slice(&stage[at..at + len]);
                k += 1;
            }
            first = last;
        }
        if stage.capacity() > STAGE_KEEP {
            *stage = Vec::new();
        }
        Some(())
    })?;
    Some(buf)
}

/// Read every range whole with `process_vm_readv`, into one buffer (every
/// range at its place, after the lengths of the ranges before it): from any
/// thread of the tracer's process, stopped task or not. `None` if any byte
/// did not arrive (the caller then reads through the tracer thread, which
/// finds out which range failed and why). `int3`s are not hidden.
pub(crate) fn read_whole(pid: Tid, ranges: &[(u64, usize)]) -> Option<Vec<u8>> {
    let total = ranges
        .iter()
        .try_fold(0usize, |acc, r| acc.checked_add(r.1))?;
    if let Some(buf) = read_coalesced(pid, ranges, total) {
        return Some(buf);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(total);
    if total >= HUGE_READ {
        sys::advise_huge_pages(&mut buf);
    }
    let mut remote: Vec<libc::iovec> = Vec::with_capacity(ranges.len().min(IOV_MAX));
    for chunk in ranges.chunks(IOV_MAX) {
        remote.clear();
        remote.extend(chunk.iter().map(range_iovec));
        let want: usize = chunk.iter().map(|r| r.1).sum();
        if want == 0 {
            continue;
        }
        let n = sys::process_vm_readv_append(pid, &mut buf, want, &remote).ok()?;
        if n != want {
            return None;
        }
    }
    Some(buf)
}
