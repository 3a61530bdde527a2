//! What an engine can be told about: the event mask, the per-engine syscall
//! set, and the payload of each report.

use std::fmt;
use std::str::FromStr;

use crate::sys::Tid;

bitflags::bitflags! {
    /// The events an engine wants reported. The core tests one bit before it
    /// calls an engine, so an engine that does not care costs nothing more.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct EventMask: u32 {
        /// Syscall entry (filtered by the engine's [`SyscallSet`]).
        const SYSCALL_ENTRY = 1 << 0;
        /// Syscall exit (filtered by the engine's [`SyscallSet`]).
        const SYSCALL_EXIT = 1 << 1;
        /// A signal about to be delivered.
        const SIGNAL = 1 << 2;
        /// A new thread or child process (reported on the parent).
        const CLONE = 1 << 3;
        /// A successful exec.
        const EXEC = 1 << 4;
        /// A thread about to exit (still inspectable).
        const EXIT = 1 << 5;
        /// A thread reaped: gone for good.
        const DEATH = 1 << 6;
        /// A single step completed (only for the engine that asked for it).
        const STEP = 1 << 7;
        /// The task stopped because this engine asked ([`crate::Tracer::interrupt`]).
        const QUIESCE = 1 << 8;
        /// A breakpoint this engine inserted was hit (only for its owners).
        const BREAKPOINT = 1 << 9;
        /// The thread entered a group-stop (SIGSTOP, SIGTSTP, SIGTTIN,
        /// SIGTTOU): strace's `--- stopped by SIGSTOP ---`.
        const GROUP_STOP = 1 << 10;
        /// A hardware breakpoint or watchpoint this engine inserted fired
        /// (only for its owners).
        const WATCHPOINT = 1 << 11;
        /// A followed child process's first stop, before it runs
        /// ([`crate::Engine::report_child_start`]; only for its followers).
        const CHILD_START = 1 << 12;
        /// Both syscall reports.
        const SYSCALLS = Self::SYSCALL_ENTRY.bits() | Self::SYSCALL_EXIT.bits();
    }
}

impl EventMask {
    /// Parse one event name as used on the command line and in the wire
    /// protocol: `syscall_entry`, `syscall_exit`, `syscalls`, `signal`,
    /// `clone`, `exec`, `exit`, `death`, `step`, `quiesce`, `all`.
    pub fn parse_name(name: &str) -> Option<EventMask> {
        Some(match name.to_ascii_lowercase().as_str() {
            "syscall_entry" => Self::SYSCALL_ENTRY,
            "syscall_exit" => Self::SYSCALL_EXIT,
            "syscalls" | "syscall" => Self::SYSCALLS,
            "signal" => Self::SIGNAL,
            "clone" => Self::CLONE,
            "exec" => Self::EXEC,
            "exit" => Self::EXIT,
            "death" => Self::DEATH,
            "step" => Self::STEP,
            "quiesce" => Self::QUIESCE,
            "breakpoint" => Self::BREAKPOINT,
            "group_stop" => Self::GROUP_STOP,
            "watchpoint" => Self::WATCHPOINT,
            "child_start" => Self::CHILD_START,
            "all" => Self::all(),
            _ => return None,
        })
    }
}

/// Syscall numbers this build knows by name (x86_64 today).
const SET_WORDS: usize = 8;
/// Highest syscall number a [`SyscallSet`] can hold, plus one.
pub const MAX_SYSCALL: usize = SET_WORDS * 64;

/// A set of syscall numbers (a 512-bit map) or "all". Names come from the
/// `syscalls` crate's table for the build's architecture.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SyscallSet {
    all: bool,
    bits: [u64; SET_WORDS],
}

impl Default for SyscallSet {
    /// The empty set.
    fn default() -> Self {
        SyscallSet {
            all: false,
            bits: [0; SET_WORDS],
        }
    }
}

/// A syscall name or number that does not name a syscall of this architecture.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown syscall {0:?}: expected a name such as \"openat\" or a number below {MAX_SYSCALL}"
)]
pub struct UnknownSyscall(pub String);

impl SyscallSet {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every syscall, including numbers this build has no name for.
    pub fn all() -> Self {
        SyscallSet {
            all: true,
            bits: [u64::MAX; SET_WORDS],
        }
    }

    /// Whether this is the "all" set.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether no syscall is in the set.
    pub fn is_empty(&self) -> bool {
        !self.all && self.bits.iter().all(|w| *w == 0)
    }

    /// Build from names ("openat") or decimal numbers ("257").
    pub fn from_names<I, S>(names: I) -> Result<Self, UnknownSyscall>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::empty();
        for n in names {
            set.insert(syscall_number(n.as_ref())?);
        }
        Ok(set)
    }

    /// Add one syscall number; numbers past [`MAX_SYSCALL`] are ignored.
    pub fn insert(&mut self, nr: u64) {
        if (nr as usize) < MAX_SYSCALL {
            self.bits[nr as usize / 64] |= 1 << (nr % 64);
        }
    }

    /// Whether `nr` is in the set.
    #[inline]
    pub fn contains(&self, nr: u64) -> bool {
        if self.all {
            return true;
        }
        (nr as usize) < MAX_SYSCALL && self.bits[nr as usize / 64] & (1 << (nr % 64)) != 0
    }

    /// Add every member of `other`.
    pub fn union_with(&mut self, other: &SyscallSet) {
        self.all |= other.all;
        for (a, b) in self.bits.iter_mut().zip(other.bits.iter()) {
            *a |= *b;
        }
    }

    /// Whether every member of `self` is in `other`.
    pub fn is_subset(&self, other: &SyscallSet) -> bool {
        if other.all {
            return true;
        }
        if self.all {
            return false;
        }
        self.bits
            .iter()
            .zip(other.bits.iter())
            .all(|(a, b)| a & !b == 0)
    }

    /// The numbers in the set (for "all", every number below [`MAX_SYSCALL`]).
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..MAX_SYSCALL as u64).filter(move |n| self.contains(*n))
    }
}

impl fmt::Debug for SyscallSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.all {
            return f.write_str("SyscallSet(all)");
        }
        f.debug_set()
            .entries(self.iter().map(|n| syscall_name(n).unwrap_or("?")))
            .finish()
    }
}

impl FromStr for SyscallSet {
    type Err = UnknownSyscall;
    /// Comma-separated names or numbers; "all" or "" for every syscall.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s == "all" {
            return Ok(Self::all());
        }
        Self::from_names(s.split(',').map(str::trim).filter(|n| !n.is_empty()))
    }
}

/// The number of a syscall name ("openat") or a decimal number ("257").
pub fn syscall_number(name: &str) -> Result<u64, UnknownSyscall> {
    if let Ok(n) = name.parse::<u64>() {
        if (n as usize) < MAX_SYSCALL {
            return Ok(n);
        }
        return Err(UnknownSyscall(name.to_string()));
    }
    syscalls::Sysno::from_str(name)
        .map(|s| s.id() as u64)
        .map_err(|_| UnknownSyscall(name.to_string()))
}

/// The name of a syscall number, if this architecture has one.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    i32::try_from(nr)
        .ok()
        .and_then(|n| syscalls::Sysno::new(n as usize))
        .map(|s| s.name())
}

/// A syscall at entry: number and the six argument registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallEntry {
    /// Syscall number (negative numbers appear as large values: the ABI's `-1`).
    pub nr: u64,
    /// The six argument registers, in ABI order.
    pub args: [u64; 6],
    /// The audit architecture the call was made with (a 64-bit task may make
    /// 32-bit calls); compare with [`crate::arch::AUDIT_ARCH`].
    pub arch: u32,
    /// Reported from a seccomp stop (kernel-side filtering), not a ptrace
    /// syscall-entry stop.
    pub from_seccomp: bool,
}

impl SyscallEntry {
    /// The syscall's name, if known.
    pub fn name(&self) -> Option<&'static str> {
        if self.arch != crate::arch::AUDIT_ARCH {
            return None;
        }
        syscall_name(self.nr)
    }
}

/// A syscall at exit: its entry (as reported then) and the return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallExit {
    /// The entry this exit completes.
    pub entry: SyscallEntry,
    /// The return value (negative errno on failure).
    pub ret: i64,
    /// The kernel says the call failed (`ret` is `-errno`).
    pub is_error: bool,
    /// The system time the call took, entry to exit (strace -c's time:
    /// the process's, as the kernel counts it at the two stops), when an
    /// engine asked for it ([`crate::EngineOptions::system_times`]).
    pub system_ns: Option<u64>,
}

/// A signal about to be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalReport {
    /// The signal number.
    pub signo: i32,
    /// `si_code` (SI_USER, SI_KERNEL, SEGV_MAPERR…).
    pub code: i32,
    /// Sender pid for signals sent by a process (`kill`, `tgkill`), and
    /// the child's for SIGCHLD; else 0.
    pub sender_pid: i32,
    /// Its real uid, with `sender_pid`.
    pub sender_uid: u32,
    /// Faulting address for SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP, else 0.
    pub addr: u64,
    /// A kernel SIGCHLD's child: its status (exit code, or the signal that
    /// stopped or killed it), user and system time in clock ticks.
    pub child: Option<ChildInfo>,
}

/// What a SIGCHLD tells of the child (`si_status`, `si_utime`, `si_stime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    pub status: i32,
    pub utime: i64,
    pub stime: i64,
}

/// What kind of task a clone made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneKind {
    /// A new thread in the same process.
    Thread,
    /// A new process by fork (or clone without CLONE_THREAD).
    Fork,
    /// A new process by vfork: the parent waits for its exec or exit.
    Vfork,
}

/// A new task, reported on the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloneReport {
    /// Thread id of the new task.
    pub child_tid: Tid,
    /// Its process id (equal to the parent's for a thread).
    pub child_pid: Tid,
    pub kind: CloneKind,
}

/// A successful exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecReport {
    /// The thread id that called execve. Differs from the reporting tid when a
    /// non-leader thread exec'd: it has taken over the leader's tid.
    pub former_tid: Tid,
    /// `/proc/PID/exe` after the exec, if readable.
    pub exe: Option<String>,
    /// The exec that started a program this tracer spawned (its first).
    pub startup: bool,
}

/// How a thread ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled { signo: i32, core_dumped: bool },
}

impl ExitStatus {
    /// Decode a wait(2) status.
    pub fn from_wait(status: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(status) {
            Some(ExitStatus::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ExitStatus::Signaled {
                signo: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            })
        } else {
            None
        }
    }
}

/// A thread about to exit, or gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitReport {
    pub tid: Tid,
    pub pid: Tid,
    pub status: ExitStatus,
    /// For a death: the last thread of its process is gone, so the process is.
    pub process_gone: bool,
}
