//! A strace-style recorder: formats each syscall, signal and exit of the
//! traced tasks as `strace -f` prints them, and hands every finished line to
//! a sink.
//!
//! ```text
//! openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
//! write(1, "hi\n", 3)                     = 3
//! --- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=4242, si_uid=0} ---
//! exit_group(0)                           = ?
//! +++ exited with 0 +++
//! ```
//!
//! Attach it with [`Recorder::EVENTS`]: it needs both syscall reports, since
//! a call's line starts at its entry and ends at its exit. When another
//! task's line must be printed in between, the open line is ended with
//! ` <unfinished ...>` and its exit is printed later as
//! `<... NAME resumed>) = RET`, as strace does.
//!
//! Arguments are decoded from a table with one entry per syscall (name →
//! argument kinds, return kind). Arguments read from the tracee at entry
//! (paths, strings, written buffers) are read at the entry stop; buffers the
//! kernel fills (`read`, `stat`…) at the exit stop. Memory that cannot be
//! read is shown as the pointer, in hex, as strace does. Strings and buffers
//! are cut at 32 bytes (strace's `-s 32`), paths are shown whole, results
//! are aligned at column 40 (strace's `-a 40`).
//!
//! Pid prefixes follow strace: `[pid N] ` on every line while more than one
//! task is traced (threads always count; child processes when
//! [`Recorder::follow`] says they are followed), or `N ` on every line
//! ([`PidPrefix::Always`], what `strace -f -o FILE` prints).
//!
//! Differences from strace: signal lines show only what
//! [`SignalReport`] carries (no `si_uid`, and no `si_pid`/`si_status` for
//! `SIGCHLD`); exit lines (`+++ exited with 0 +++`) are always printed, as
//! strace does without `-qq`; a few structures strace decodes (`statfs`,
//! `ioctl` terminal settings, `msghdr`…) are shown as pointers.
//!
//! The sink runs on the tracer thread, like every callback: it should hand
//! the line on quickly (a buffered writer, a channel), not block.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::mem::{offset_of, size_of};
use std::sync::OnceLock;

use crate::engine::{Action, Engine, SignalAction};
use crate::event::{
    CloneKind, CloneReport, EventMask, ExecReport, ExitReport, ExitStatus, SignalReport,
    SyscallEntry, SyscallExit,
};
use crate::sys::{self, Tid};
use crate::task::Task;

/// Where finished lines go: one call per line, without a trailing newline.
pub type Sink = Box<dyn FnMut(&str) + Send>;

/// strace's default `-s`: bytes of a string or buffer shown before `...`.
pub const DEFAULT_STRING_LIMIT: usize = 32;
/// Paths are shown whole up to `PATH_MAX`, as strace does.
const PATH_LIMIT: usize = libc::PATH_MAX as usize;
/// The column results are aligned to (strace's `-a` default).
pub const RESULT_COLUMN: usize = 40;
/// Environment pointers counted at most for `execve`'s `/* N vars */`.
const MAX_ENV_COUNT: usize = 1 << 16;
/// Directory-entry bytes read at most to count `getdents` entries.
const MAX_DIRENT_BYTES: usize = 1 << 20;
/// CPU-set bytes shown at most (`CPU_SETSIZE` bits).
const MAX_CPU_SET_BYTES: usize = libc::CPU_SETSIZE as usize / 8;
/// Signals in a kernel signal set on this architecture (`_NSIG`).
const NSIG: u32 = 64;

/// When lines get a pid prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PidPrefix {
    /// `[pid  1234] ` while more than one task is traced, as `strace -f`
    /// prints to stderr.
    #[default]
    WhenShared,
    /// `1234  ` on every line, as `strace -f -o FILE` does.
    Always,
    /// No prefix.
    Never,
}

/// The strace-style recorder engine. See the [module docs](self).
pub struct Recorder {
    sink: Sink,
    follow: bool,
    prefix: PidPrefix,
    limit: usize,
    /// Tasks traced now (strace's `nprocs`): decides the `[pid N]` prefix.
    live: usize,
    /// The line being built: an entry printed, its exit not yet.
    open: Option<OpenLine>,
    /// Per task: the syscall whose entry was printed and whose exit was not.
    pending: HashMap<Tid, Pending>,
}

struct OpenLine {
    tid: Tid,
    text: String,
}

struct Pending {
    name: String,
    spec: &'static Spec,
    /// Index of the first argument printed at exit.
    exit_from: usize,
    /// A separator is due before the next non-self-separated argument.
    need_sep: bool,
    /// Its entry line was ended with ` <unfinished ...>`.
    interrupted: bool,
}

impl Recorder {
    /// The events a recorder must be attached with.
    pub const EVENTS: EventMask = EventMask::SYSCALL_ENTRY
        .union(EventMask::SYSCALL_EXIT)
        .union(EventMask::SIGNAL)
        .union(EventMask::EXIT)
        .union(EventMask::DEATH)
        .union(EventMask::CLONE)
        .union(EventMask::EXEC);

    /// A recorder that gives each finished line to `sink`.
    pub fn new(sink: Sink) -> Self {
        Recorder {
            sink,
            follow: false,
            prefix: PidPrefix::default(),
            limit: DEFAULT_STRING_LIMIT,
            live: 1,
            open: None,
            pending: HashMap::new(),
        }
    }

    /// Child processes are traced too (set it when the engine is attached
    /// with [`crate::EngineOptions::follow_children`]): they count as tasks
    /// for the `[pid N]` prefix. Threads always count.
    pub fn follow(mut self, yes: bool) -> Self {
        self.follow = yes;
        self
    }

    /// When to prefix lines with the task's id (default
    /// [`PidPrefix::WhenShared`]).
    pub fn pid_prefix(mut self, prefix: PidPrefix) -> Self {
        self.prefix = prefix;
        self
    }

    /// Bytes of strings and buffers shown before `...` (strace's `-s`,
    /// default [`DEFAULT_STRING_LIMIT`]). Paths are always shown whole.
    pub fn string_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Tasks already traced when the recorder starts (default 1, a spawned
    /// program; give the thread count when attaching to a running process).
    pub fn initial_tasks(mut self, n: usize) -> Self {
        self.live = n;
        self
    }

    fn emit(&mut self, line: &str) {
        (self.sink)(line);
    }

    fn prefix_for(&self, tid: Tid) -> String {
        match self.prefix {
            PidPrefix::WhenShared if self.live > 1 => format!("[pid {tid:>5}] "),
            PidPrefix::Always => format!("{tid:<5} "),
            _ => String::new(),
        }
    }

    /// End the open line (if any) with ` <unfinished ...>`; its exit will be
    /// printed as resumed.
    fn interrupt_open(&mut self) {
        if let Some(open) = self.open.take() {
            let line = open.text + " <unfinished ...>";
            self.emit(&line);
            if let Some(p) = self.pending.get_mut(&open.tid) {
                p.interrupted = true;
            }
        }
    }

    /// The start of the line that finishes `tid`'s pending call: the open
    /// line if it is still `tid`'s, else a fresh `<... NAME resumed>`.
    fn resume_head(&mut self, tid: Tid, p: &Pending) -> String {
        if !p.interrupted {
            if let Some(open) = self.open.take_if(|o| o.tid == tid) {
                return open.text;
            }
        }
        self.interrupt_open();
        format!("{}<... {} resumed>", self.prefix_for(tid), p.name)
    }

    /// Print the entry part of `call` as the open line of `tid`.
    fn start_call(&mut self, mem: &mut dyn Tracee, tid: Tid, call: &SyscallEntry) {
        let (name, spec) = lookup(call);
        let mut ctx = Ctx {
            mem,
            args: call.args,
            exit: None,
            limit: self.limit,
        };
        let (args, exit_from, need_sep) = decode_entry(spec, &mut ctx);
        let text = format!("{}{name}({args}", self.prefix_for(tid));
        self.open = Some(OpenLine { tid, text });
        self.pending.insert(
            tid,
            Pending {
                name,
                spec,
                exit_from,
                need_sep,
                interrupted: false,
            },
        );
    }

    fn on_entry(&mut self, mem: &mut dyn Tracee, tid: Tid, call: &SyscallEntry) {
        // An entry without the previous call's exit (a restart the kernel
        // did not report): leave the old line unfinished.
        if self.pending.remove(&tid).is_some() {
            if let Some(open) = self.open.take_if(|o| o.tid == tid) {
                let line = open.text + " <unfinished ...>";
                self.emit(&line);
            }
        }
        self.interrupt_open();
        self.start_call(mem, tid, call);
    }

    fn on_exit(&mut self, mem: &mut dyn Tracee, tid: Tid, call: &SyscallExit) {
        let pending = match self.pending.remove(&tid) {
            Some(p) => p,
            None => {
                // An exit whose entry we did not see: print the whole call.
                self.interrupt_open();
                self.start_call(mem, tid, &call.entry);
                match self.pending.remove(&tid) {
                    Some(p) => p,
                    None => return,
                }
            }
        };
        let mut line = self.resume_head(tid, &pending);
        let mut ctx = Ctx {
            mem,
            args: call.entry.args,
            exit: Some((call.ret, call.is_error)),
            limit: self.limit,
        };
        line.push_str(&decode_exit(
            pending.spec,
            &mut ctx,
            pending.exit_from,
            pending.need_sep,
        ));
        line.push(')');
        let ret = format_return(pending.spec, call, &mut ctx);
        finish(&mut line, &ret);
        self.emit(&line);
    }

    fn on_signal(&mut self, tid: Tid, signal: &SignalReport) {
        self.interrupt_open();
        let line = format!("{}{}", self.prefix_for(tid), signal_line(signal));
        self.emit(&line);
    }

    fn on_clone(&mut self, kind: CloneKind) {
        if kind == CloneKind::Thread || self.follow {
            self.live += 1;
        }
    }

    fn on_exec(&mut self, tid: Tid, former: Tid) {
        if former == tid {
            return;
        }
        // A non-leader thread exec'd and took over the leader's id: the old
        // leader is gone without a death report.
        self.live = self.live.saturating_sub(1);
        if let Some(p) = self.pending.remove(&former) {
            self.pending.insert(tid, p);
        }
        if let Some(open) = self.open.as_mut().filter(|o| o.tid == former) {
            open.tid = tid;
        }
        self.interrupt_open();
        let line = format!(
            "{}+++ superseded by execve in pid {former} +++",
            self.prefix_for(tid)
        );
        self.emit(&line);
    }

    /// The task is about to exit: a call it is inside never returns (`= ?`).
    fn on_task_exit(&mut self, tid: Tid) {
        if let Some(p) = self.pending.remove(&tid) {
            let mut line = self.resume_head(tid, &p);
            if p.exit_from < p.spec.args.len() {
                line.push_str(" <unfinished ...>");
            }
            line.push(')');
            finish(&mut line, "?");
            self.emit(&line);
        }
    }

    fn on_death(&mut self, tid: Tid, status: &ExitStatus) {
        if self.pending.remove(&tid).is_some() {
            if let Some(open) = self.open.take_if(|o| o.tid == tid) {
                let line = open.text + " <unfinished ...>";
                self.emit(&line);
            }
        }
        self.interrupt_open();
        let line = format!("{}{}", self.prefix_for(tid), death_line(status));
        self.emit(&line);
        self.live = self.live.saturating_sub(1);
    }
}

impl Engine for Recorder {
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> Action {
        let tid = task.tid();
        self.on_entry(task, tid, call);
        Action::Resume
    }

    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        let tid = task.tid();
        self.on_exit(task, tid, call);
        Action::Resume
    }

    fn report_signal(&mut self, task: &mut Task<'_>, signal: &SignalReport) -> SignalAction {
        self.on_signal(task.tid(), signal);
        SignalAction::default()
    }

    fn report_clone(&mut self, _task: &mut Task<'_>, clone: &CloneReport) -> Action {
        self.on_clone(clone.kind);
        Action::Resume
    }

    fn report_exec(&mut self, task: &mut Task<'_>, exec: &ExecReport) -> Action {
        self.on_exec(task.tid(), exec.former_tid);
        Action::Resume
    }

    fn report_exit(&mut self, task: &mut Task<'_>, _exit: &ExitReport) -> Action {
        self.on_task_exit(task.tid());
        Action::Resume
    }

    fn report_death(&mut self, death: &ExitReport) {
        self.on_death(death.tid, &death.status);
    }

    fn report_detached(&mut self) {
        if let Some(open) = self.open.take() {
            let line = open.text + " <detached ...>";
            self.emit(&line);
        }
        self.pending.clear();
    }
}

/// Decoding one call at a time, for engines that send the text elsewhere
/// (the server's remote engines): [`Decoder::entry`] gives
/// `name(ARGS-KNOWN-AT-ENTRY`, and [`Decoder::exit`] the rest of the same
/// thread's call, `ARGS-KNOWN-AT-EXIT)`, and its return value's text.
/// Concatenated they make strace's line (before the `= RET` alignment).
pub struct Decoder {
    pending: HashMap<Tid, (&'static Spec, usize, bool)>,
    /// Bytes of strings and buffers shown before `...` (strace's `-s`).
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            pending: HashMap::new(),
            limit: DEFAULT_STRING_LIMIT,
        }
    }
}

/// The decoded exit of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedExit {
    /// The arguments known only at exit and the closing `)`; for an exit
    /// whose entry was not seen, the whole call `name(ARGS)`.
    pub args: String,
    /// The return value as strace shows it: `3`, `-1 ENOENT (No such file or
    /// directory)`, `0x7f…`.
    pub ret: String,
}

impl Decoder {
    /// A decoder showing `limit` bytes of strings and buffers before `...`
    /// (strace's `-s`; paths are always whole).
    pub fn with_string_limit(limit: usize) -> Self {
        Decoder {
            limit,
            ..Default::default()
        }
    }

    /// The entry part of `call`'s text.
    pub fn entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> String {
        let (name, spec) = lookup(call);
        let tid = task.tid();
        let mut ctx = Ctx {
            mem: task,
            args: call.args,
            exit: None,
            limit: self.limit,
        };
        let (args, from, sep) = decode_entry(spec, &mut ctx);
        self.pending.insert(tid, (spec, from, sep));
        format!("{name}({args}")
    }

    /// The exit part of the call whose entry this thread reported last.
    pub fn exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> DecodedExit {
        let tid = task.tid();
        let (head, (spec, from, sep)) = match self.pending.remove(&tid) {
            Some(p) => (String::new(), p),
            None => {
                let head = self.entry(task, &call.entry);
                let p = self.pending.remove(&tid).unwrap_or((&UNKNOWN, 0, false));
                (head, p)
            }
        };
        let mut ctx = Ctx {
            mem: task,
            args: call.entry.args,
            exit: Some((call.ret, call.is_error)),
            limit: self.limit,
        };
        let mut args = head;
        args.push_str(&decode_exit(spec, &mut ctx, from, sep));
        args.push(')');
        let ret = format_return(spec, call, &mut ctx);
        DecodedExit { args, ret }
    }

    /// Forget a thread's open call (it exited inside it).
    pub fn forget(&mut self, tid: Tid) {
        self.pending.remove(&tid);
    }

    /// A non-leader thread exec'd and took over the leader's tid: its open
    /// call (the execve) continues under `to`.
    pub fn rekey(&mut self, from: Tid, to: Tid) {
        if let Some(p) = self.pending.remove(&from) {
            self.pending.insert(to, p);
        }
    }
}

/// Pad `line` (which ends with `)`) to the result column and append `= RET`.
pub fn finish(line: &mut String, ret: &str) {
    line.push(' ');
    let width = line.chars().count();
    if width < RESULT_COLUMN {
        line.extend(std::iter::repeat_n(' ', RESULT_COLUMN - width));
    }
    line.push_str("= ");
    line.push_str(ret);
}

// ---- decoding ---------------------------------------------------------------

/// Tracee memory as the decoders read it: a stopped [`Task`], or a fake in
/// tests.
trait Tracee {
    /// Exactly `len` bytes at `addr`, or `None` if any is unreadable.
    fn bytes(&mut self, addr: u64, len: usize) -> Option<Vec<u8>>;
    /// A NUL-terminated string, at most `max` bytes of it: the bytes, and
    /// whether that is the whole string (no more than `max` bytes before
    /// its NUL). `None` if unreadable.
    fn string(&mut self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)>;
    /// The stack pointer.
    fn stack_pointer(&mut self) -> Option<u64>;
}

impl Tracee for Task<'_> {
    fn bytes(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let r = self.read_memory(addr, len);
        (r.error.is_none() && r.data.len() == len).then(|| r.data.into())
    }

    fn string(&mut self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)> {
        let r = self.read_string(addr, max.saturating_add(1));
        if r.data.len() > max {
            let mut data = r.data;
            data.truncate(max);
            return Some((data.into(), false));
        }
        if r.error.is_some() {
            return None;
        }
        Some((r.data.into(), true))
    }

    fn stack_pointer(&mut self) -> Option<u64> {
        self.register("rsp").ok()
    }
}

/// What a decoder sees of one call.
struct Ctx<'m> {
    mem: &'m mut dyn Tracee,
    args: [u64; 6],
    /// At exit: the return value and whether it is an error.
    exit: Option<(i64, bool)>,
    limit: usize,
}

impl Ctx<'_> {
    fn arg(&self, i: usize) -> u64 {
        self.args.get(i).copied().unwrap_or(0)
    }

    /// The return value of a call that succeeded.
    fn success(&self) -> Option<i64> {
        match self.exit {
            Some((ret, false)) => Some(ret),
            _ => None,
        }
    }
}

/// How one argument is shown. Each kind reads the register at its own
/// position in the table entry unless it says otherwise.
#[derive(Clone, Copy, Debug)]
enum Arg {
    /// `int`, decimal (also descriptors, pids, uids).
    Int,
    /// `unsigned int`, decimal.
    Uint,
    /// `long`/`off_t`, decimal.
    Long,
    /// `size_t`/`unsigned long`, decimal.
    Ulong,
    /// Hex (`0` for zero), for values not decoded further.
    Hex,
    /// A pointer: `NULL` or hex.
    Ptr,
    /// A pointer the kernel writes through, shown at exit.
    PtrOut,
    /// Not shown (a register the ABI splits, like `preadv2`'s high offset).
    Skip,
    /// A directory descriptor: `AT_FDCWD` or decimal.
    Dirfd,
    /// A file mode, octal (`0644`).
    Mode,
    /// A path read at entry, up to `PATH_MAX`.
    Path,
    /// A string read at entry, up to the string limit.
    Str,
    /// Bytes read at entry; the count is in argument `n`.
    BufIn(u8),
    /// Bytes the kernel wrote, read at exit; the count is the return value.
    BufOut,
    /// Like `BufOut`, every byte in `\x` hex (`getrandom`).
    BufOutHex,
    /// A path the kernel wrote (`getcwd`), read at exit.
    PathOut,
    /// An `iovec` array read at entry; its length is in argument `n`.
    IovIn(u8),
    /// An `iovec` array filled by the kernel; its length is in argument `n`.
    IovOut(u8),
    /// Bit flags by name.
    Flags(&'static Flags),
    /// One value by name, else decimal.
    Enum(&'static Names),
    /// `open` flags: the access mode always named.
    OpenFlags,
    /// The mode of `open`, shown only with `O_CREAT`/`O_TMPFILE` in argument `n`.
    OpenMode(u8),
    /// A signal number by name.
    Signal,
    /// A signal set read at entry.
    SigsetIn,
    /// A signal set written by the kernel.
    SigsetOut,
    /// A `struct sigaction` read at entry.
    SigactionIn,
    /// A `struct sigaction` written by the kernel.
    SigactionOut,
    /// A `stack_t` read at entry.
    StackIn,
    /// A `stack_t` written by the kernel.
    StackOut,
    /// The signal mask `rt_sigreturn` restores (read from the signal frame).
    SigreturnMask,
    /// A `struct stat` written by the kernel.
    StatOut,
    /// `statx` flags (`AT_STATX_SYNC_AS_STAT|…`).
    StatxFlags,
    /// A `struct statx` written by the kernel.
    StatxOut,
    /// `argv` of `execve`.
    Argv,
    /// `envp` of `execve`: the pointer and the count of variables.
    Envp,
    /// Two descriptors written by the kernel (`pipe`, `socketpair`).
    FdPairOut,
    /// A wait status written by the kernel.
    WaitStatusOut,
    /// A `struct rlimit` read at entry.
    RlimitIn,
    /// A `struct rlimit` written by the kernel.
    RlimitOut,
    /// A `struct timespec` read at entry.
    TimespecIn,
    /// A `struct timespec` written by the kernel.
    TimespecOut,
    /// A `struct utsname` written by the kernel.
    UtsnameOut,
    /// A `struct sysinfo` written by the kernel.
    SysinfoOut,
    /// A directory-entry buffer: the pointer and `/* N entries */`.
    DirentsOut,
    /// A socket address read at entry; its length is in argument `n`.
    SockaddrIn(u8),
    /// A `struct pollfd` array; its length is in argument `n`.
    PollFds(u8),
    /// A socket address the kernel wrote; the pointer to its length is in
    /// argument `n`.
    SockaddrOut(u8),
    /// A `socklen_t` the kernel updated: `[N]`.
    SocklenOut,
    /// Group ids the kernel wrote; the count is the return value.
    GidsOut,
    /// A CPU set the kernel wrote; its size in bytes is the return value.
    CpuSetOut,
    /// The `prctl` arguments that option uses (option in argument 0).
    PrctlRest,
    /// A socket type and its flags.
    SockType,
    /// A socket protocol, named for IP sockets (domain in argument 0).
    SockProto,
    /// `clone`'s stack (register 1).
    CloneStack,
    /// `clone`'s flags and exit signal (register 0).
    CloneFlags,
    /// `clone`'s thread-id and TLS pointers, shown at exit.
    CloneTail,
    /// `clone3`'s `struct clone_args`.
    Clone3Args,
    /// What `clone3` wrote back (` => {parent_tid=[N]}`) and the size
    /// (register 1), at exit.
    Clone3Tail,
    /// A futex operation.
    FutexOp,
    /// The futex arguments that operation uses.
    FutexRest,
    /// An `fcntl` command.
    FcntlCmd,
    /// The `fcntl` argument that command uses.
    FcntlValue,
    /// An `ioctl` request.
    IoctlReq,
    /// `mremap`'s new address, shown only with `MREMAP_FIXED`.
    MremapNew,
}

impl Arg {
    /// Decoded at the exit stop (and so are the arguments after it).
    fn at_exit(self) -> bool {
        matches!(
            self,
            Arg::PtrOut
                | Arg::BufOut
                | Arg::BufOutHex
                | Arg::PathOut
                | Arg::IovOut(_)
                | Arg::SigsetOut
                | Arg::SigactionOut
                | Arg::StackOut
                | Arg::StatOut
                | Arg::StatxOut
                | Arg::FdPairOut
                | Arg::WaitStatusOut
                | Arg::RlimitOut
                | Arg::TimespecOut
                | Arg::UtsnameOut
                | Arg::SysinfoOut
                | Arg::DirentsOut
                | Arg::CloneTail
                | Arg::Clone3Tail
                | Arg::SockaddrOut(_)
                | Arg::SocklenOut
                | Arg::GidsOut
                | Arg::CpuSetOut
        )
    }

    /// Prints its own leading separator (strace's `clone` decoders do).
    fn self_separated(self) -> bool {
        matches!(self, Arg::CloneTail | Arg::Clone3Tail)
    }
}

/// How the return value is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ret {
    Dec,
    Hex,
    Oct,
    /// `fcntl`: flags by name for `F_GETFD`/`F_GETFL`.
    Fcntl,
    /// `poll`: `0 (Timeout)`, or the descriptors that have events.
    Poll,
}

/// One syscall's decoding: name, argument kinds, return kind.
#[derive(Debug)]
struct Spec {
    name: &'static str,
    args: &'static [Arg],
    ret: Ret,
}

const fn d(name: &'static str, args: &'static [Arg]) -> Spec {
    Spec {
        name,
        args,
        ret: Ret::Dec,
    }
}

const fn x(name: &'static str, args: &'static [Arg]) -> Spec {
    Spec {
        name,
        args,
        ret: Ret::Hex,
    }
}

/// Syscalls this build has no name for: six hex arguments, as strace.
static UNKNOWN: Spec = d("", &[Arg::Hex; 6]);

/// Value/name pairs.
type Names = [(u64, &'static str)];

/// A flag set: names in the order strace prints them, and the text for zero.
#[derive(Debug)]
struct Flags {
    names: &'static Names,
    zero: &'static str,
}

/// `(uapi::X, "X")`: a constant of [`uapi`] and its name.
macro_rules! u {
    ($c:ident) => {
        (uapi::$c as u32 as u64, stringify!($c))
    };
}

/// `(libc::X, "X")`: a libc constant and its name. Constants are C `int`s
/// or `unsigned`s: widened through `u32` so that a high bit is not
/// sign-extended.
macro_rules! c {
    ($c:ident) => {
        (libc::$c as u32 as u64, stringify!($c))
    };
}

use Arg::*;

#[rustfmt::skip]
static SPECS: &[Spec] = &[
    d("read", &[Int, BufOut, Ulong]),
    d("write", &[Int, BufIn(2), Ulong]),
    d("open", &[Path, OpenFlags, OpenMode(1)]),
    d("close", &[Int]),
    d("stat", &[Path, StatOut]),
    d("fstat", &[Int, StatOut]),
    d("lstat", &[Path, StatOut]),
    Spec { name: "poll", args: &[PollFds(1), Uint, Int], ret: Ret::Poll },
    d("lseek", &[Int, Long, Enum(SEEK_WHENCE)]),
    x("mmap", &[Ptr, Ulong, Flags(&PROT), Flags(&MAP_FLAGS), Int, Hex]),
    d("mprotect", &[Ptr, Ulong, Flags(&PROT)]),
    d("munmap", &[Ptr, Ulong]),
    x("brk", &[Ptr]),
    d("rt_sigaction", &[Signal, SigactionIn, SigactionOut, Ulong]),
    d("rt_sigprocmask", &[Enum(SIGPROCMASK_HOW), SigsetIn, SigsetOut, Ulong]),
    d("rt_sigreturn", &[SigreturnMask]),
    d("ioctl", &[Int, IoctlReq, Hex]),
    d("pread64", &[Int, BufOut, Ulong, Long]),
    d("pwrite64", &[Int, BufIn(2), Ulong, Long]),
    d("readv", &[Int, IovOut(2), Int]),
    d("writev", &[Int, IovIn(2), Int]),
    d("access", &[Path, Flags(&ACCESS_MODE)]),
    d("pipe", &[FdPairOut]),
    d("select", &[Int, Ptr, Ptr, Ptr, Ptr]),
    d("sched_yield", &[]),
    x("mremap", &[Ptr, Ulong, Ulong, Flags(&MREMAP_FLAGS), MremapNew]),
    d("msync", &[Ptr, Ulong, Flags(&MSYNC_FLAGS)]),
    d("mincore", &[Ptr, Ulong, Ptr]),
    d("madvise", &[Ptr, Ulong, Enum(MADVICE)]),
    d("shmget", &[Hex, Ulong, Hex]),
    x("shmat", &[Int, Ptr, Hex]),
    d("shmctl", &[Int, Int, Ptr]),
    d("dup", &[Int]),
    d("dup2", &[Int, Int]),
    d("pause", &[]),
    d("nanosleep", &[TimespecIn, Ptr]),
    d("getitimer", &[Int, Ptr]),
    d("alarm", &[Uint]),
    d("setitimer", &[Int, Ptr, Ptr]),
    d("getpid", &[]),
    d("sendfile", &[Int, Int, Ptr, Ulong]),
    d("socket", &[Enum(ADDRESS_FAMILIES), SockType, SockProto]),
    d("connect", &[Int, SockaddrIn(2), Int]),
    d("accept", &[Int, SockaddrOut(2), SocklenOut]),
    d("sendto", &[Int, BufIn(2), Ulong, Flags(&MSG_FLAGS), SockaddrIn(5), Int]),
    d("recvfrom", &[Int, BufOut, Ulong, Flags(&MSG_FLAGS), SockaddrOut(5), SocklenOut]),
    d("sendmsg", &[Int, Ptr, Flags(&MSG_FLAGS)]),
    d("recvmsg", &[Int, PtrOut, Flags(&MSG_FLAGS)]),
    d("shutdown", &[Int, Enum(SHUTDOWN_HOW)]),
    d("bind", &[Int, SockaddrIn(2), Int]),
    d("listen", &[Int, Int]),
    d("getsockname", &[Int, SockaddrOut(2), SocklenOut]),
    d("getpeername", &[Int, SockaddrOut(2), SocklenOut]),
    d("socketpair", &[Enum(ADDRESS_FAMILIES), SockType, Int, FdPairOut]),
    d("setsockopt", &[Int, Int, Int, Ptr, Int]),
    d("getsockopt", &[Int, Int, Int, Ptr, Ptr]),
    d("clone", &[CloneStack, CloneFlags, CloneTail]),
    d("fork", &[]),
    d("vfork", &[]),
    d("execve", &[Path, Argv, Envp]),
    d("exit", &[Int]),
    d("wait4", &[Int, WaitStatusOut, Flags(&WAIT_OPTIONS), Ptr]),
    d("kill", &[Int, Signal]),
    d("uname", &[UtsnameOut]),
    d("semget", &[Hex, Int, Hex]),
    d("semop", &[Int, Ptr, Ulong]),
    d("semctl", &[Int, Int, Int, Hex]),
    d("shmdt", &[Ptr]),
    d("msgget", &[Hex, Hex]),
    d("msgsnd", &[Int, Ptr, Ulong, Hex]),
    d("msgrcv", &[Int, Ptr, Ulong, Long, Hex]),
    d("msgctl", &[Int, Int, Ptr]),
    Spec { name: "fcntl", args: &[Int, FcntlCmd, FcntlValue], ret: Ret::Fcntl },
    d("flock", &[Int, Flags(&FLOCK_OPS)]),
    d("fsync", &[Int]),
    d("fdatasync", &[Int]),
    d("truncate", &[Path, Long]),
    d("ftruncate", &[Int, Long]),
    d("getdents", &[Int, DirentsOut, Uint]),
    d("getcwd", &[PathOut, Ulong]),
    d("chdir", &[Path]),
    d("fchdir", &[Int]),
    d("rename", &[Path, Path]),
    d("mkdir", &[Path, Mode]),
    d("rmdir", &[Path]),
    d("creat", &[Path, Mode]),
    d("link", &[Path, Path]),
    d("unlink", &[Path]),
    d("symlink", &[Path, Path]),
    d("readlink", &[Path, BufOut, Ulong]),
    d("chmod", &[Path, Mode]),
    d("fchmod", &[Int, Mode]),
    d("chown", &[Path, Int, Int]),
    d("fchown", &[Int, Int, Int]),
    d("lchown", &[Path, Int, Int]),
    Spec { name: "umask", args: &[Mode], ret: Ret::Oct },
    d("gettimeofday", &[Ptr, Ptr]),
    d("getrlimit", &[Enum(RESOURCES), RlimitOut]),
    d("getrusage", &[Int, Ptr]),
    d("sysinfo", &[SysinfoOut]),
    d("times", &[Ptr]),
    d("ptrace", &[Int, Int, Hex, Hex]),
    d("getuid", &[]),
    d("syslog", &[Int, Ptr, Int]),
    d("getgid", &[]),
    d("setuid", &[Int]),
    d("setgid", &[Int]),
    d("geteuid", &[]),
    d("getegid", &[]),
    d("setpgid", &[Int, Int]),
    d("getppid", &[]),
    d("getpgrp", &[]),
    d("setsid", &[]),
    d("setreuid", &[Int, Int]),
    d("setregid", &[Int, Int]),
    d("getgroups", &[Int, GidsOut]),
    d("setgroups", &[Int, Ptr]),
    d("setresuid", &[Int, Int, Int]),
    d("getresuid", &[Ptr, Ptr, Ptr]),
    d("setresgid", &[Int, Int, Int]),
    d("getresgid", &[Ptr, Ptr, Ptr]),
    d("getpgid", &[Int]),
    d("setfsuid", &[Int]),
    d("setfsgid", &[Int]),
    d("getsid", &[Int]),
    d("capget", &[Ptr, Ptr]),
    d("capset", &[Ptr, Ptr]),
    d("rt_sigpending", &[SigsetOut, Ulong]),
    d("rt_sigtimedwait", &[SigsetIn, Ptr, TimespecIn, Ulong]),
    d("rt_sigqueueinfo", &[Int, Signal, Ptr]),
    d("rt_sigsuspend", &[SigsetIn, Ulong]),
    d("sigaltstack", &[StackIn, StackOut]),
    d("utime", &[Path, Ptr]),
    d("mknod", &[Path, Mode, Hex]),
    d("uselib", &[Path]),
    d("personality", &[Hex]),
    d("ustat", &[Hex, Ptr]),
    d("statfs", &[Path, PtrOut]),
    d("fstatfs", &[Int, PtrOut]),
    d("sysfs", &[Int, Hex, Hex]),
    d("getpriority", &[Int, Int]),
    d("setpriority", &[Int, Int, Int]),
    d("sched_setparam", &[Int, Ptr]),
    d("sched_getparam", &[Int, Ptr]),
    d("sched_setscheduler", &[Int, Int, Ptr]),
    d("sched_getscheduler", &[Int]),
    d("sched_get_priority_max", &[Int]),
    d("sched_get_priority_min", &[Int]),
    d("sched_rr_get_interval", &[Int, Ptr]),
    d("mlock", &[Ptr, Ulong]),
    d("munlock", &[Ptr, Ulong]),
    d("mlockall", &[Hex]),
    d("munlockall", &[]),
    d("vhangup", &[]),
    d("modify_ldt", &[Int, Ptr, Ulong]),
    d("pivot_root", &[Path, Path]),
    d("_sysctl", &[Ptr]),
    d("prctl", &[Enum(PRCTL_OPTIONS), PrctlRest]),
    d("arch_prctl", &[Enum(ARCH_PRCTL_CODES), Hex]),
    d("adjtimex", &[Ptr]),
    d("setrlimit", &[Enum(RESOURCES), RlimitIn]),
    d("chroot", &[Path]),
    d("sync", &[]),
    d("acct", &[Path]),
    d("settimeofday", &[Ptr, Ptr]),
    d("mount", &[Path, Path, Str, Hex, Ptr]),
    d("umount2", &[Path, Hex]),
    d("swapon", &[Path, Hex]),
    d("swapoff", &[Path]),
    d("reboot", &[Hex, Hex, Hex, Ptr]),
    d("sethostname", &[BufIn(1), Ulong]),
    d("setdomainname", &[BufIn(1), Ulong]),
    d("iopl", &[Int]),
    d("ioperm", &[Hex, Hex, Int]),
    d("create_module", &[Str, Ulong]),
    d("init_module", &[Ptr, Ulong, Str]),
    d("delete_module", &[Str, Hex]),
    d("get_kernel_syms", &[Ptr]),
    d("query_module", &[Str, Int, Ptr, Ulong, Ptr]),
    d("quotactl", &[Hex, Path, Int, Ptr]),
    d("nfsservctl", &[Int, Ptr, Ptr]),
    d("getpmsg", &[Hex, Hex, Hex, Hex, Hex]),
    d("putpmsg", &[Hex, Hex, Hex, Hex, Hex]),
    d("afs_syscall", &[Hex, Hex, Hex, Hex, Hex]),
    d("tuxcall", &[Hex, Hex, Hex]),
    d("security", &[Hex, Hex, Hex]),
    d("gettid", &[]),
    d("readahead", &[Int, Long, Ulong]),
    d("setxattr", &[Path, Str, BufIn(3), Ulong, Hex]),
    d("lsetxattr", &[Path, Str, BufIn(3), Ulong, Hex]),
    d("fsetxattr", &[Int, Str, BufIn(3), Ulong, Hex]),
    d("getxattr", &[Path, Str, BufOut, Ulong]),
    d("lgetxattr", &[Path, Str, BufOut, Ulong]),
    d("fgetxattr", &[Int, Str, BufOut, Ulong]),
    d("listxattr", &[Path, BufOut, Ulong]),
    d("llistxattr", &[Path, BufOut, Ulong]),
    d("flistxattr", &[Int, BufOut, Ulong]),
    d("removexattr", &[Path, Str]),
    d("lremovexattr", &[Path, Str]),
    d("fremovexattr", &[Int, Str]),
    d("tkill", &[Int, Signal]),
    d("time", &[Ptr]),
    d("futex", &[Ptr, FutexOp, FutexRest]),
    d("sched_setaffinity", &[Int, Ulong, Ptr]),
    d("sched_getaffinity", &[Int, Ulong, CpuSetOut]),
    d("set_thread_area", &[Ptr]),
    d("io_setup", &[Uint, Ptr]),
    d("io_destroy", &[Hex]),
    d("io_getevents", &[Hex, Long, Long, Ptr, Ptr]),
    d("io_submit", &[Hex, Long, Ptr]),
    d("io_cancel", &[Hex, Ptr, Ptr]),
    d("get_thread_area", &[Ptr]),
    d("lookup_dcookie", &[Hex, Ptr, Ulong]),
    d("epoll_create", &[Int]),
    d("epoll_ctl_old", &[Hex, Hex, Hex, Hex]),
    d("epoll_wait_old", &[Hex, Hex, Hex, Hex]),
    d("remap_file_pages", &[Ptr, Ulong, Flags(&PROT), Ulong, Hex]),
    d("getdents64", &[Int, DirentsOut, Uint]),
    d("set_tid_address", &[Ptr]),
    d("restart_syscall", &[]),
    d("semtimedop", &[Int, Ptr, Ulong, Ptr]),
    d("fadvise64", &[Int, Long, Long, Enum(FADVICE)]),
    d("timer_create", &[Enum(CLOCKS), Ptr, Ptr]),
    d("timer_settime", &[Int, Hex, Ptr, Ptr]),
    d("timer_gettime", &[Int, Ptr]),
    d("timer_getoverrun", &[Int]),
    d("timer_delete", &[Int]),
    d("clock_settime", &[Enum(CLOCKS), TimespecIn]),
    d("clock_gettime", &[Enum(CLOCKS), TimespecOut]),
    d("clock_getres", &[Enum(CLOCKS), TimespecOut]),
    d("clock_nanosleep", &[Enum(CLOCKS), Flags(&TIMER_FLAGS), TimespecIn, Ptr]),
    d("exit_group", &[Int]),
    d("epoll_wait", &[Int, PtrOut, Int, Int]),
    d("epoll_ctl", &[Int, Enum(EPOLL_OPS), Int, Ptr]),
    d("tgkill", &[Int, Int, Signal]),
    d("utimes", &[Path, Ptr]),
    d("vserver", &[Hex, Hex, Hex, Hex, Hex]),
    d("mbind", &[Ptr, Ulong, Int, Ptr, Ulong, Hex]),
    d("set_mempolicy", &[Enum(MPOL_MODES), Ptr, Ulong]),
    d("get_mempolicy", &[Ptr, Ptr, Ulong, Ptr, Hex]),
    d("mq_open", &[Str, OpenFlags, Mode, Ptr]),
    d("mq_unlink", &[Str]),
    d("mq_timedsend", &[Int, BufIn(2), Ulong, Uint, Ptr]),
    d("mq_timedreceive", &[Int, BufOut, Ulong, Ptr, Ptr]),
    d("mq_notify", &[Int, Ptr]),
    d("mq_getsetattr", &[Int, Ptr, Ptr]),
    d("kexec_load", &[Hex, Ulong, Ptr, Hex]),
    d("waitid", &[Enum(IDTYPES), Int, Ptr, Flags(&WAIT_OPTIONS), Ptr]),
    d("add_key", &[Str, Str, Ptr, Ulong, Int]),
    d("request_key", &[Str, Str, Str, Int]),
    d("keyctl", &[Int, Hex, Hex, Hex, Hex]),
    d("ioprio_set", &[Int, Int, Int]),
    d("ioprio_get", &[Int, Int]),
    d("inotify_init", &[]),
    d("inotify_add_watch", &[Int, Path, Hex]),
    d("inotify_rm_watch", &[Int, Int]),
    d("migrate_pages", &[Int, Ulong, Ptr, Ptr]),
    d("openat", &[Dirfd, Path, OpenFlags, OpenMode(2)]),
    d("mkdirat", &[Dirfd, Path, Mode]),
    d("mknodat", &[Dirfd, Path, Mode, Hex]),
    d("fchownat", &[Dirfd, Path, Int, Int, Flags(&AT_FLAGS)]),
    d("futimesat", &[Dirfd, Path, Ptr]),
    d("newfstatat", &[Dirfd, Path, StatOut, Flags(&AT_FLAGS)]),
    d("unlinkat", &[Dirfd, Path, Flags(&AT_FLAGS)]),
    d("renameat", &[Dirfd, Path, Dirfd, Path]),
    d("linkat", &[Dirfd, Path, Dirfd, Path, Flags(&AT_FLAGS)]),
    d("symlinkat", &[Path, Dirfd, Path]),
    d("readlinkat", &[Dirfd, Path, BufOut, Ulong]),
    d("fchmodat", &[Dirfd, Path, Mode]),
    d("faccessat", &[Dirfd, Path, Flags(&ACCESS_MODE)]),
    d("pselect6", &[Int, Ptr, Ptr, Ptr, Ptr, Ptr]),
    Spec { name: "ppoll", args: &[PollFds(1), Uint, TimespecIn, SigsetIn, Ulong], ret: Ret::Poll },
    d("unshare", &[Flags(&CLONE_FLAGS)]),
    d("set_robust_list", &[Ptr, Ulong]),
    d("get_robust_list", &[Int, Ptr, Ptr]),
    d("splice", &[Int, Ptr, Int, Ptr, Ulong, Hex]),
    d("tee", &[Int, Int, Ulong, Hex]),
    d("sync_file_range", &[Int, Long, Long, Hex]),
    d("vmsplice", &[Int, Ptr, Ulong, Hex]),
    d("move_pages", &[Int, Ulong, Ptr, Ptr, Ptr, Hex]),
    d("utimensat", &[Dirfd, Path, Ptr, Flags(&AT_FLAGS)]),
    d("epoll_pwait", &[Int, PtrOut, Int, Int, SigsetIn, Ulong]),
    d("signalfd", &[Int, SigsetIn, Ulong]),
    d("timerfd_create", &[Enum(CLOCKS), Flags(&TFD_FLAGS)]),
    d("eventfd", &[Uint]),
    d("fallocate", &[Int, Hex, Long, Long]),
    d("timerfd_settime", &[Int, Hex, Ptr, Ptr]),
    d("timerfd_gettime", &[Int, Ptr]),
    d("accept4", &[Int, SockaddrOut(2), SocklenOut, Flags(&SOCK_FLAGS)]),
    d("signalfd4", &[Int, SigsetIn, Ulong, Flags(&SFD_FLAGS)]),
    d("eventfd2", &[Uint, Flags(&EFD_FLAGS)]),
    d("epoll_create1", &[Flags(&EPOLL_FLAGS)]),
    d("dup3", &[Int, Int, Flags(&FD_FLAGS)]),
    d("pipe2", &[FdPairOut, Flags(&FD_FLAGS)]),
    d("inotify_init1", &[Flags(&IN_FLAGS)]),
    d("preadv", &[Int, IovOut(2), Int, Long]),
    d("pwritev", &[Int, IovIn(2), Int, Long]),
    d("rt_tgsigqueueinfo", &[Int, Int, Signal, Ptr]),
    d("perf_event_open", &[Ptr, Int, Int, Int, Hex]),
    d("recvmmsg", &[Int, Ptr, Uint, Hex, Ptr]),
    d("fanotify_init", &[Hex, Hex]),
    d("fanotify_mark", &[Int, Hex, Hex, Dirfd, Path]),
    d("prlimit64", &[Int, Enum(RESOURCES), RlimitIn, RlimitOut]),
    d("name_to_handle_at", &[Dirfd, Path, Ptr, Ptr, Flags(&AT_FLAGS)]),
    d("open_by_handle_at", &[Int, Ptr, OpenFlags]),
    d("clock_adjtime", &[Enum(CLOCKS), Ptr]),
    d("syncfs", &[Int]),
    d("sendmmsg", &[Int, Ptr, Uint, Hex]),
    d("setns", &[Int, Flags(&CLONE_FLAGS)]),
    d("getcpu", &[Ptr, Ptr, Ptr]),
    d("process_vm_readv", &[Int, Ptr, Ulong, Ptr, Ulong, Hex]),
    d("process_vm_writev", &[Int, Ptr, Ulong, Ptr, Ulong, Hex]),
    d("kcmp", &[Int, Int, Int, Hex, Hex]),
    d("finit_module", &[Int, Str, Hex]),
    d("sched_setattr", &[Int, Ptr, Hex]),
    d("sched_getattr", &[Int, Ptr, Uint, Hex]),
    d("renameat2", &[Dirfd, Path, Dirfd, Path, Flags(&RENAME_FLAGS)]),
    d("seccomp", &[Int, Hex, Ptr]),
    d("getrandom", &[BufOutHex, Ulong, Flags(&GRND_FLAGS)]),
    d("memfd_create", &[Str, Flags(&MFD_FLAGS)]),
    d("kexec_file_load", &[Int, Int, Ulong, Str, Hex]),
    d("bpf", &[Int, Ptr, Uint]),
    d("execveat", &[Dirfd, Path, Argv, Envp, Flags(&AT_FLAGS)]),
    d("userfaultfd", &[Flags(&FD_FLAGS)]),
    d("membarrier", &[Int, Hex]),
    d("mlock2", &[Ptr, Ulong, Hex]),
    d("copy_file_range", &[Int, Ptr, Int, Ptr, Ulong, Hex]),
    d("preadv2", &[Int, IovOut(2), Int, Long, Skip, Hex]),
    d("pwritev2", &[Int, IovIn(2), Int, Long, Skip, Hex]),
    d("pkey_mprotect", &[Ptr, Ulong, Flags(&PROT), Int]),
    d("pkey_alloc", &[Hex, Hex]),
    d("pkey_free", &[Int]),
    d("statx", &[Dirfd, Path, StatxFlags, Flags(&STATX_MASK), StatxOut]),
    d("io_pgetevents", &[Hex, Long, Long, Ptr, Ptr, Ptr]),
    d("rseq", &[Ptr, Hex, Hex, Hex]),
    d("uretprobe", &[]),
    d("uprobe", &[]),
    d("pidfd_send_signal", &[Int, Signal, Ptr, Hex]),
    d("io_uring_setup", &[Uint, Ptr]),
    d("io_uring_enter", &[Int, Uint, Uint, Hex, Ptr, Ulong]),
    d("io_uring_register", &[Int, Uint, Ptr, Uint]),
    d("open_tree", &[Dirfd, Path, Hex]),
    d("move_mount", &[Dirfd, Path, Dirfd, Path, Hex]),
    d("fsopen", &[Str, Hex]),
    d("fsconfig", &[Int, Int, Str, Ptr, Int]),
    d("fsmount", &[Int, Hex, Hex]),
    d("fspick", &[Dirfd, Path, Hex]),
    d("pidfd_open", &[Int, Hex]),
    d("clone3", &[Clone3Args, Clone3Tail]),
    d("close_range", &[Uint, Uint, Flags(&CLOSE_RANGE_FLAGS)]),
    d("openat2", &[Dirfd, Path, Ptr, Ulong]),
    d("pidfd_getfd", &[Int, Int, Hex]),
    d("faccessat2", &[Dirfd, Path, Flags(&ACCESS_MODE), Flags(&FACCESSAT_FLAGS)]),
    d("process_madvise", &[Int, Ptr, Ulong, Enum(MADVICE), Hex]),
    d("epoll_pwait2", &[Int, PtrOut, Int, Ptr, SigsetIn, Ulong]),
    d("mount_setattr", &[Dirfd, Path, Hex, Ptr, Ulong]),
    d("quotactl_fd", &[Int, Hex, Int, Ptr]),
    d("landlock_create_ruleset", &[Ptr, Ulong, Hex]),
    d("landlock_add_rule", &[Int, Int, Ptr, Hex]),
    d("landlock_restrict_self", &[Int, Hex]),
    d("memfd_secret", &[Hex]),
    d("process_mrelease", &[Int, Hex]),
    d("futex_waitv", &[Ptr, Uint, Hex, Ptr, Enum(CLOCKS)]),
    d("set_mempolicy_home_node", &[Ptr, Ulong, Ulong, Hex]),
    d("cachestat", &[Int, Ptr, Ptr, Hex]),
    d("fchmodat2", &[Dirfd, Path, Mode, Flags(&AT_FLAGS)]),
    x("map_shadow_stack", &[Ptr, Ulong, Hex]),
    d("futex_wake", &[Ptr, Hex, Int, Hex]),
    d("futex_wait", &[Ptr, Hex, Hex, Hex, Ptr, Enum(CLOCKS)]),
    d("futex_requeue", &[Ptr, Hex, Int, Int]),
    d("statmount", &[Ptr, Ptr, Ulong, Hex]),
    d("listmount", &[Ptr, Ptr, Ulong, Hex]),
    d("lsm_get_self_attr", &[Uint, Ptr, Ptr, Hex]),
    d("lsm_set_self_attr", &[Uint, Ptr, Ulong, Hex]),
    d("lsm_list_modules", &[Ptr, Ptr, Hex]),
    d("mseal", &[Ptr, Ulong, Hex]),
    d("setxattrat", &[Dirfd, Path, Flags(&AT_FLAGS), Str, Ptr, Ulong]),
    d("getxattrat", &[Dirfd, Path, Flags(&AT_FLAGS), Str, Ptr, Ulong]),
    d("listxattrat", &[Dirfd, Path, Flags(&AT_FLAGS), Ptr, Ulong]),
    d("removexattrat", &[Dirfd, Path, Flags(&AT_FLAGS), Str]),
    d("open_tree_attr", &[Dirfd, Path, Hex, Ptr, Ulong]),
    d("file_getattr", &[Dirfd, Path, Ptr, Ulong, Flags(&AT_FLAGS)]),
    d("file_setattr", &[Dirfd, Path, Ptr, Ulong, Flags(&AT_FLAGS)]),
];

/// The syscall's name and decoding.
fn lookup(entry: &SyscallEntry) -> (String, &'static Spec) {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static Spec>> = OnceLock::new();
    let table = BY_NAME.get_or_init(|| SPECS.iter().map(|s| (s.name, s)).collect());
    match entry.name() {
        Some(name) => (
            name.to_string(),
            table.get(name).copied().unwrap_or(&UNKNOWN),
        ),
        None => (format!("syscall_{:#x}", entry.nr), &UNKNOWN),
    }
}

/// The arguments shown at entry, the index of the first shown at exit, and
/// whether a separator is still due before it.
fn decode_entry(spec: &Spec, ctx: &mut Ctx<'_>) -> (String, usize, bool) {
    let mut out = String::new();
    let mut need_sep = false;
    for (i, &kind) in spec.args.iter().enumerate() {
        if kind.at_exit() {
            if need_sep && !kind.self_separated() {
                out.push_str(", ");
                need_sep = false;
            }
            return (out, i, need_sep);
        }
        push_arg(&mut out, &mut need_sep, kind, format_arg(kind, i, ctx));
    }
    (out, spec.args.len(), need_sep)
}

/// The arguments shown at exit, from `from` on.
fn decode_exit(spec: &Spec, ctx: &mut Ctx<'_>, from: usize, mut need_sep: bool) -> String {
    let mut out = String::new();
    for (i, &kind) in spec.args.iter().enumerate().skip(from) {
        push_arg(&mut out, &mut need_sep, kind, format_arg(kind, i, ctx));
    }
    out
}

fn push_arg(out: &mut String, need_sep: &mut bool, kind: Arg, text: Option<String>) {
    if let Some(text) = text {
        if *need_sep && !kind.self_separated() {
            out.push_str(", ");
        }
        out.push_str(&text);
        *need_sep = true;
    }
}

/// One argument's text; `None` if this argument is not shown.
fn format_arg(kind: Arg, i: usize, c: &mut Ctx<'_>) -> Option<String> {
    let v = c.arg(i);
    Some(match kind {
        Int => (v as i32).to_string(),
        Uint => (v as u32).to_string(),
        Long => (v as i64).to_string(),
        Ulong => v.to_string(),
        Hex => hex(v),
        Ptr => ptr(v),
        PtrOut => ptr(v),
        Skip => return None,
        Dirfd => dirfd(v),
        Mode => mode_octal(v as u32),
        Path => string_at(c, v, PATH_LIMIT),
        Str => string_at(c, v, c.limit),
        BufIn(n) => buffer_at(c, v, c.arg(n as usize) as usize, false),
        BufOut => match c.success() {
            Some(ret) => buffer_at(c, v, ret as usize, false),
            None => ptr(v),
        },
        BufOutHex => match c.success() {
            Some(ret) => buffer_at(c, v, ret as usize, true),
            None => ptr(v),
        },
        PathOut => match c.success() {
            Some(ret) if ret > 0 => match c.mem.bytes(v, (ret as usize).min(PATH_LIMIT)) {
                Some(b) => quote(b.strip_suffix(&[0]).unwrap_or(&b), false),
                None => ptr(v),
            },
            _ => ptr(v),
        },
        IovIn(n) => iovec(c, v, c.arg(n as usize), None),
        IovOut(n) => match c.success() {
            Some(ret) => iovec(c, v, c.arg(n as usize), Some(ret as u64)),
            None => ptr(v),
        },
        Flags(f) => flags(v, f),
        Enum(names) => enum_name(v, names),
        OpenFlags => open_flags(v),
        OpenMode(n) => {
            let fl = c.arg(n as usize) as u32 as i32;
            if fl & libc::O_CREAT == 0 && fl & libc::O_TMPFILE != libc::O_TMPFILE {
                return None;
            }
            mode_octal(v as u32)
        }
        Signal => signal_arg(v as i32),
        SigsetIn => sigset_at(c, v),
        SigsetOut => match c.success() {
            Some(_) => sigset_at(c, v),
            None => ptr(v),
        },
        SigactionIn => sigaction_at(c, v),
        SigactionOut => match c.success() {
            Some(_) => sigaction_at(c, v),
            None => ptr(v),
        },
        StackIn => stack_at(c, v),
        StackOut => match c.success() {
            Some(_) => stack_at(c, v),
            None => ptr(v),
        },
        SigreturnMask => sigreturn_mask(c)?,
        StatOut => out_struct(c, v, size_of::<libc::stat>(), stat_struct),
        StatxFlags => statx_flags(v),
        StatxOut => out_struct(c, v, size_of::<libc::statx>(), statx_struct),
        Argv => argv_at(c, v),
        Envp => envp_at(c, v),
        FdPairOut => out_struct(c, v, 2 * size_of::<i32>(), fd_pair),
        WaitStatusOut => match c.success() {
            Some(ret) if ret > 0 && v != 0 => match c.mem.bytes(v, size_of::<i32>()) {
                Some(b) => format!("[{}]", wait_status(i32_at(&b, 0))),
                None => ptr(v),
            },
            _ => ptr(v),
        },
        RlimitIn => in_struct(c, v, size_of::<libc::rlimit64>(), rlimit),
        RlimitOut => out_struct(c, v, size_of::<libc::rlimit64>(), rlimit),
        TimespecIn => in_struct(c, v, size_of::<libc::timespec>(), timespec),
        TimespecOut => out_struct(c, v, size_of::<libc::timespec>(), timespec),
        UtsnameOut => out_struct(c, v, size_of::<libc::utsname>(), utsname),
        SysinfoOut => out_struct(c, v, size_of::<libc::sysinfo>(), sysinfo),
        DirentsOut => dirents(c, v),
        SockaddrIn(n) => sockaddr_at(c, v, c.arg(n as usize) as usize),
        PollFds(n) => pollfds(c, v, c.arg(n as usize), false)?,
        SockaddrOut(n) => match c.success() {
            Some(_) => {
                let len = match c.mem.bytes(c.arg(n as usize), size_of::<u32>()) {
                    Some(b) => u32_at(&b, 0) as usize,
                    None => 0,
                };
                sockaddr_at(c, v, len)
            }
            None => ptr(v),
        },
        SocklenOut => in_struct(c, v, size_of::<u32>(), |b| format!("[{}]", u32_at(b, 0))),
        GidsOut => match c.success() {
            _ if v == 0 => ptr(v),
            Some(n) if n >= 0 => {
                let n = (n as usize).min(c.arg(0) as u32 as usize).min(c.limit);
                match c.mem.bytes(v, n * size_of::<libc::gid_t>()) {
                    Some(b) => {
                        let ids: Vec<String> = (0..n)
                            .map(|i| u32_at(&b, i * size_of::<libc::gid_t>()).to_string())
                            .collect();
                        format!("[{}]", ids.join(", "))
                    }
                    None => ptr(v),
                }
            }
            _ => ptr(v),
        },
        CpuSetOut => match c.success() {
            Some(n) if n > 0 => match c.mem.bytes(v, (n as usize).min(MAX_CPU_SET_BYTES)) {
                Some(b) => {
                    let cpus: Vec<String> = (0..b.len() * 8)
                        .filter(|i| b[i / 8] & (1 << (i % 8)) != 0)
                        .map(|i| i.to_string())
                        .collect();
                    format!("[{}]", cpus.join(" "))
                }
                None => ptr(v),
            },
            _ => ptr(v),
        },
        PrctlRest => prctl_rest(c)?,
        SockType => sock_type(v),
        SockProto => sock_proto(c.arg(0) as i32, v as i32),
        CloneStack => format!("child_stack={}", ptr(c.arg(1))),
        CloneFlags => format!("flags={}", clone_flags(c.arg(0))),
        CloneTail => clone_tail(c)?,
        Clone3Args => clone3_args(c, v),
        Clone3Tail => clone3_tail(c),
        FutexOp => futex_op(v),
        FutexRest => futex_rest(c)?,
        FcntlCmd => enum_name(v, FCNTL_CMDS),
        FcntlValue => fcntl_arg(c.arg(1) as i32, v)?,
        IoctlReq => match enum_lookup(v & 0xffff_ffff, IOCTL_REQUESTS) {
            Some(name) => name.to_string(),
            None => hex(v & 0xffff_ffff),
        },
        MremapNew => {
            if c.arg(3) & libc::MREMAP_FIXED as u64 == 0 {
                return None;
            }
            ptr(v)
        }
    })
}

/// The return value's text.
fn format_return(spec: &Spec, x: &SyscallExit, c: &mut Ctx<'_>) -> String {
    if x.is_error {
        return errno_text(x.ret.unsigned_abs().min(i32::MAX as u64) as i32);
    }
    match spec.ret {
        Ret::Dec => x.ret.to_string(),
        Ret::Hex => hex(x.ret as u64),
        Ret::Oct => mode_octal(x.ret as u32),
        Ret::Fcntl => match x.entry.args[1] as i32 {
            libc::F_GETFD if x.ret != 0 => format!(
                "{} (flags {})",
                hex(x.ret as u64),
                flags(x.ret as u64, &FD_CLOEXEC_FLAG)
            ),
            libc::F_GETFL => format!("{} (flags {})", hex(x.ret as u64), open_flags(x.ret as u64)),
            _ => x.ret.to_string(),
        },
        Ret::Poll if x.ret == 0 => "0 (Timeout)".into(),
        Ret::Poll => match pollfds(c, x.entry.args[0], x.entry.args[1], true) {
            Some(ready) => format!("{} ({ready})", x.ret),
            None => x.ret.to_string(),
        },
    }
}

// ---- primitive formats ------------------------------------------------------

fn hex(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".into()
    } else {
        format!("{v:#x}")
    }
}

fn dirfd(v: u64) -> String {
    let fd = v as i32;
    if fd == libc::AT_FDCWD {
        "AT_FDCWD".into()
    } else {
        fd.to_string()
    }
}

/// An octal mode as strace's `%#03o`: `0644`, `000`, `007`.
fn mode_octal(m: u32) -> String {
    if m == 0 {
        "000".into()
    } else {
        format!("{:0>3}", format!("0{m:o}"))
    }
}

/// Quote bytes as strace does: C escapes, octal for the rest (three digits
/// when an octal digit follows), or every byte as `\xNN` with `force_hex`.
fn quote(bytes: &[u8], force_hex: bool) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for (i, &c) in bytes.iter().enumerate() {
        if force_hex {
            let _ = write!(s, "\\x{c:02x}");
            continue;
        }
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x0b => s.push_str("\\v"),
            0x0c => s.push_str("\\f"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let octal_follows = bytes.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
                if octal_follows {
                    let _ = write!(s, "\\{c:03o}");
                } else {
                    let _ = write!(s, "\\{c:o}");
                }
            }
        }
    }
    s.push('"');
    s
}

/// A NUL-terminated string of at most `limit` bytes, `...` if longer.
fn string_at(c: &mut Ctx<'_>, addr: u64, limit: usize) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    match c.mem.string(addr, limit) {
        Some((bytes, true)) => quote(&bytes, false),
        Some((bytes, false)) => quote(&bytes, false) + "...",
        None => ptr(addr),
    }
}

/// `len` bytes at `addr`, at most the string limit of them, `...` if more.
fn buffer_at(c: &mut Ctx<'_>, addr: u64, len: usize, force_hex: bool) -> String {
    if addr == 0 && len != 0 {
        return "NULL".into();
    }
    let shown = len.min(c.limit);
    match c.mem.bytes(addr, shown) {
        Some(b) if shown < len => quote(&b, force_hex) + "...",
        Some(b) => quote(&b, force_hex),
        None => ptr(addr),
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_ne_bytes)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    u32_at(b, off) as i32
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// A C string in a fixed-size field.
fn c_field(b: &[u8], off: usize, len: usize) -> &[u8] {
    let field = b.get(off..(off + len).min(b.len())).unwrap_or(&[]);
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..end]
}

/// A struct of `size` bytes read at entry, formatted by `f`.
fn in_struct(c: &mut Ctx<'_>, addr: u64, size: usize, f: fn(&[u8]) -> String) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    match c.mem.bytes(addr, size) {
        Some(b) => f(&b),
        None => ptr(addr),
    }
}

/// A struct of `size` bytes the kernel wrote, formatted by `f`: shown only
/// if the call succeeded, else as the pointer.
fn out_struct(c: &mut Ctx<'_>, addr: u64, size: usize, f: fn(&[u8]) -> String) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    if c.success().is_none() {
        return ptr(addr);
    }
    match c.mem.bytes(addr, size) {
        Some(b) => f(&b),
        None => ptr(addr),
    }
}

fn flags(v: u64, f: &Flags) -> String {
    if v == 0 {
        return f.zero.to_string();
    }
    let mut parts = Vec::new();
    let mut rest = v;
    for &(bits, name) in f.names {
        if bits != 0 && rest & bits == bits {
            parts.push(name.to_string());
            rest &= !bits;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

fn enum_lookup(v: u64, names: &Names) -> Option<&'static str> {
    names.iter().find(|(n, _)| *n == v).map(|(_, s)| *s)
}

fn enum_name(v: u64, names: &Names) -> String {
    match enum_lookup(v, names) {
        Some(s) => s.to_string(),
        None => (v as i64 as i32).to_string(),
    }
}

fn open_flags(v: u64) -> String {
    let v = v as u32 as u64;
    let acc = v & libc::O_ACCMODE as u64;
    let mode = match enum_lookup(acc, ACCESS_MODES) {
        Some(n) => n.to_string(),
        None => format!("{acc:#x}"),
    };
    let rest = v & !(libc::O_ACCMODE as u64);
    if rest == 0 {
        mode
    } else {
        format!("{mode}|{}", flags(rest, &OPEN_FLAGS))
    }
}

fn fd_pair(b: &[u8]) -> String {
    format!("[{}, {}]", i32_at(b, 0), i32_at(b, size_of::<i32>()))
}

// ---- structures -------------------------------------------------------------

/// A file mode: `S_IFREG|0644`, `S_IFDIR|S_ISVTX|0777`.
fn file_mode(m: u32) -> String {
    let mut s = String::new();
    let kind = m & libc::S_IFMT;
    if kind != 0 {
        match enum_lookup(kind as u64, FILE_TYPES) {
            Some(name) => s.push_str(name),
            None => {
                let _ = write!(s, "{kind:#o}");
            }
        }
        s.push('|');
    }
    for (bit, name) in [
        (libc::S_ISUID, "S_ISUID|"),
        (libc::S_ISGID, "S_ISGID|"),
        (libc::S_ISVTX, "S_ISVTX|"),
    ] {
        if m & bit != 0 {
            s.push_str(name);
        }
    }
    s.push_str(&mode_octal(m & 0o777));
    s
}

fn stat_struct(b: &[u8]) -> String {
    let mode = u32_at(b, offset_of!(libc::stat, st_mode));
    let detail = if matches!(mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFBLK) {
        let rdev = u64_at(b, offset_of!(libc::stat, st_rdev));
        format!(
            "st_rdev=makedev({:#x}, {:#x})",
            libc::major(rdev),
            libc::minor(rdev)
        )
    } else {
        format!(
            "st_size={}",
            u64_at(b, offset_of!(libc::stat, st_size)) as i64
        )
    };
    format!("{{st_mode={}, {detail}, ...}}", file_mode(mode))
}

fn statx_flags(v: u64) -> String {
    let sync = (libc::AT_STATX_FORCE_SYNC | libc::AT_STATX_DONT_SYNC) as u64;
    if v & sync == 0 {
        let rest = v & !sync;
        if rest == 0 {
            return "AT_STATX_SYNC_AS_STAT".into();
        }
        return format!("AT_STATX_SYNC_AS_STAT|{}", flags(rest, &AT_FLAGS));
    }
    flags(v, &AT_FLAGS)
}

fn statx_struct(b: &[u8]) -> String {
    format!(
        "{{stx_mask={}, stx_attributes={}, stx_mode={}, stx_size={}, ...}}",
        flags(
            u32_at(b, offset_of!(libc::statx, stx_mask)) as u64,
            &STATX_MASK
        ),
        flags(
            u64_at(b, offset_of!(libc::statx, stx_attributes)),
            &STATX_ATTRS
        ),
        file_mode(u16_at(b, offset_of!(libc::statx, stx_mode)) as u32),
        u64_at(b, offset_of!(libc::statx, stx_size)),
    )
}

// `u64::is_multiple_of` is newer than the workspace's rust-version (1.85).
#[allow(clippy::manual_is_multiple_of)]
fn rlimit_value(v: u64) -> String {
    if v == libc::RLIM64_INFINITY {
        "RLIM64_INFINITY".into()
    } else if v > 1024 && v % 1024 == 0 {
        format!("{}*1024", v / 1024)
    } else {
        v.to_string()
    }
}

fn rlimit(b: &[u8]) -> String {
    format!(
        "{{rlim_cur={}, rlim_max={}}}",
        rlimit_value(u64_at(b, offset_of!(libc::rlimit64, rlim_cur))),
        rlimit_value(u64_at(b, offset_of!(libc::rlimit64, rlim_max)))
    )
}

fn timespec(b: &[u8]) -> String {
    format!(
        "{{tv_sec={}, tv_nsec={}}}",
        u64_at(b, offset_of!(libc::timespec, tv_sec)) as i64,
        u64_at(b, offset_of!(libc::timespec, tv_nsec)) as i64
    )
}

fn utsname(b: &[u8]) -> String {
    let sysname = offset_of!(libc::utsname, sysname);
    let nodename = offset_of!(libc::utsname, nodename);
    let len = nodename - sysname;
    format!(
        "{{sysname={}, nodename={}, ...}}",
        quote(c_field(b, sysname, len), false),
        quote(c_field(b, nodename, len), false)
    )
}

fn sysinfo(b: &[u8]) -> String {
    let ulong = |off: usize| u64_at(b, off);
    let loads = offset_of!(libc::sysinfo, loads);
    format!(
        "{{uptime={}, loads=[{}, {}, {}], totalram={}, freeram={}, sharedram={}, bufferram={}, \
         totalswap={}, freeswap={}, procs={}, totalhigh={}, freehigh={}, mem_unit={}}}",
        ulong(offset_of!(libc::sysinfo, uptime)) as i64,
        ulong(loads),
        ulong(loads + size_of::<u64>()),
        ulong(loads + 2 * size_of::<u64>()),
        ulong(offset_of!(libc::sysinfo, totalram)),
        ulong(offset_of!(libc::sysinfo, freeram)),
        ulong(offset_of!(libc::sysinfo, sharedram)),
        ulong(offset_of!(libc::sysinfo, bufferram)),
        ulong(offset_of!(libc::sysinfo, totalswap)),
        ulong(offset_of!(libc::sysinfo, freeswap)),
        u16_at(b, offset_of!(libc::sysinfo, procs)),
        ulong(offset_of!(libc::sysinfo, totalhigh)),
        ulong(offset_of!(libc::sysinfo, freehigh)),
        u32_at(b, offset_of!(libc::sysinfo, mem_unit)),
    )
}

/// The kernel's `struct sigaction` on x86_64 (`include/linux/signal_types.h`
/// with `SA_RESTORER`), which differs from glibc's `libc::sigaction`.
#[repr(C)]
struct KernelSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

fn sigaction_at(c: &mut Ctx<'_>, addr: u64) -> String {
    in_struct(c, addr, size_of::<KernelSigaction>(), |b| {
        let handler = u64_at(b, offset_of!(KernelSigaction, handler));
        let fl = u64_at(b, offset_of!(KernelSigaction, flags));
        let handler = match handler as usize {
            libc::SIG_DFL => "SIG_DFL".to_string(),
            libc::SIG_IGN => "SIG_IGN".to_string(),
            h => format!("{h:#x}"),
        };
        let mut s = format!(
            "{{sa_handler={handler}, sa_mask={}, sa_flags={}",
            sigset(u64_at(b, offset_of!(KernelSigaction, mask))),
            flags(fl, &SA_FLAGS)
        );
        if fl & SA_RESTORER != 0 {
            let _ = write!(
                s,
                ", sa_restorer={}",
                ptr(u64_at(b, offset_of!(KernelSigaction, restorer)))
            );
        }
        s.push('}');
        s
    })
}

fn stack_at(c: &mut Ctx<'_>, addr: u64) -> String {
    in_struct(c, addr, size_of::<libc::stack_t>(), |b| {
        format!(
            "{{ss_sp={}, ss_flags={}, ss_size={}}}",
            ptr(u64_at(b, offset_of!(libc::stack_t, ss_sp))),
            flags(
                u32_at(b, offset_of!(libc::stack_t, ss_flags)) as u64,
                &SS_FLAGS
            ),
            u64_at(b, offset_of!(libc::stack_t, ss_size))
        )
    })
}

/// A kernel signal set: `[HUP INT]`, or `~[...]` listing the missing
/// signals when more than half are set.
fn sigset(bits: u64) -> String {
    let (neg, bits) = if bits.count_ones() > NSIG / 2 {
        ("~", !bits)
    } else {
        ("", bits)
    };
    let names: Vec<String> = (0..NSIG)
        .filter(|b| bits & (1u64 << b) != 0)
        .map(|b| {
            let name = signame(b as i32 + 1);
            name.strip_prefix("SIG").map(str::to_string).unwrap_or(name)
        })
        .collect();
    format!("{neg}[{}]", names.join(" "))
}

fn sigset_at(c: &mut Ctx<'_>, addr: u64) -> String {
    in_struct(c, addr, size_of::<u64>(), |b| sigset(u64_at(b, 0)))
}

/// `{mask=[...]}`: the mask `rt_sigreturn` restores, from the `ucontext` at
/// the stack pointer (the handler's `ret` popped the frame's return address).
fn sigreturn_mask(c: &mut Ctx<'_>) -> Option<String> {
    let sp = c.mem.stack_pointer()?;
    let at = sp.checked_add(offset_of!(libc::ucontext_t, uc_sigmask) as u64)?;
    let b = c.mem.bytes(at, size_of::<u64>())?;
    Some(format!("{{mask={}}}", sigset(u64_at(&b, 0))))
}

fn argv_at(c: &mut Ctx<'_>, addr: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let mut items = Vec::new();
    for i in 0.. {
        let at = (i as u64)
            .checked_mul(size_of::<u64>() as u64)
            .and_then(|off| addr.checked_add(off));
        let Some(b) = at.and_then(|at| c.mem.bytes(at, size_of::<u64>())) else {
            if i == 0 {
                return ptr(addr);
            }
            items.push(ptr(at.unwrap_or(0)));
            break;
        };
        let p = u64_at(&b, 0);
        if p == 0 {
            break;
        }
        if i >= c.limit {
            items.push("...".into());
            break;
        }
        let limit = c.limit;
        items.push(string_at(c, p, limit));
    }
    format!("[{}]", items.join(", "))
}

fn envp_at(c: &mut Ctx<'_>, addr: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let word = size_of::<u64>();
    let mut count = 0usize;
    while count < MAX_ENV_COUNT {
        let at = addr.checked_add((count * word) as u64);
        let Some(b) = at.and_then(|at| c.mem.bytes(at, word)) else {
            if count == 0 {
                return ptr(addr);
            }
            break;
        };
        if u64_at(&b, 0) == 0 {
            break;
        }
        count += 1;
    }
    format!("{} /* {count} vars */", ptr(addr))
}

/// A wait status as strace shows it: `{WIFEXITED(s) && WEXITSTATUS(s) == 0}`.
fn wait_status(s: i32) -> String {
    if libc::WIFEXITED(s) {
        format!(
            "{{WIFEXITED(s) && WEXITSTATUS(s) == {}}}",
            libc::WEXITSTATUS(s)
        )
    } else if libc::WIFSIGNALED(s) {
        format!(
            "{{WIFSIGNALED(s) && WTERMSIG(s) == {}{}}}",
            signame(libc::WTERMSIG(s)),
            if libc::WCOREDUMP(s) {
                " && WCOREDUMP(s)"
            } else {
                ""
            }
        )
    } else if libc::WIFSTOPPED(s) {
        format!(
            "{{WIFSTOPPED(s) && WSTOPSIG(s) == {}}}",
            signame(libc::WSTOPSIG(s))
        )
    } else if libc::WIFCONTINUED(s) {
        "{WIFCONTINUED(s)}".into()
    } else {
        format!("{:#x}", s as u32)
    }
}

/// A `getdents` buffer: the pointer and the number of entries returned.
fn dirents(c: &mut Ctx<'_>, addr: u64) -> String {
    let Some(ret) = c.success() else {
        return ptr(addr);
    };
    let len = (ret.max(0) as usize).min(MAX_DIRENT_BYTES);
    if len == 0 {
        return format!("{} /* 0 entries */", ptr(addr));
    }
    let Some(b) = c.mem.bytes(addr, len) else {
        return ptr(addr);
    };
    let reclen_at = offset_of!(libc::dirent64, d_reclen);
    let (mut off, mut count) = (0usize, 0usize);
    while off + reclen_at + size_of::<u16>() <= b.len() {
        let reclen = u16_at(&b, off + reclen_at) as usize;
        if reclen == 0 {
            break;
        }
        count += 1;
        off += reclen;
    }
    format!("{} /* {count} entries */", ptr(addr))
}

/// A `struct pollfd` array: `[{fd=0, events=POLLIN}]`, or with `revents`
/// the entries that have events: `[{fd=3, revents=POLLIN}]`.
fn pollfds(c: &mut Ctx<'_>, addr: u64, count: u64, revents: bool) -> Option<String> {
    if addr == 0 {
        return Some("NULL".into());
    }
    let size = size_of::<libc::pollfd>();
    let n = (count as usize).min(c.limit);
    let Some(b) = c.mem.bytes(addr, n * size) else {
        return Some(ptr(addr));
    };
    let mut items = Vec::new();
    for i in 0..n {
        let at = i * size;
        let fd = i32_at(&b, at + offset_of!(libc::pollfd, fd));
        let field = if revents {
            offset_of!(libc::pollfd, revents)
        } else {
            offset_of!(libc::pollfd, events)
        };
        let ev = u16_at(&b, at + field) as u64;
        if revents && ev == 0 {
            continue;
        }
        let name = if revents { "revents" } else { "events" };
        items.push(format!("{{fd={fd}, {name}={}}}", flags(ev, &POLL_EVENTS)));
    }
    if !revents && (count as usize) > n {
        items.push("...".into());
    }
    Some(format!("[{}]", items.join(", ")))
}

/// The `prctl` arguments after the option, as strace shows the common
/// options; others get four hex arguments.
fn prctl_rest(c: &mut Ctx<'_>) -> Option<String> {
    let a = c.arg(1);
    Some(match c.arg(0) as i32 {
        libc::PR_GET_DUMPABLE
        | libc::PR_GET_KEEPCAPS
        | libc::PR_GET_SECCOMP
        | libc::PR_GET_TIMERSLACK
        | libc::PR_GET_NO_NEW_PRIVS
        | libc::PR_GET_THP_DISABLE => return None,
        libc::PR_CAPBSET_READ | libc::PR_CAPBSET_DROP => {
            match crate::access::CAP_NAMES.get(a as usize) {
                Some(name) => (*name).to_string(),
                None => format!("{} /* CAP_??? */", hex(a)),
            }
        }
        libc::PR_SET_NAME => {
            let limit = c.limit;
            string_at(c, a, limit)
        }
        libc::PR_SET_PDEATHSIG => signal_arg(a as i32),
        libc::PR_SET_DUMPABLE
        | libc::PR_SET_KEEPCAPS
        | libc::PR_SET_TIMERSLACK
        | libc::PR_SET_CHILD_SUBREAPER => a.to_string(),
        libc::PR_GET_NAME | libc::PR_GET_PDEATHSIG | libc::PR_GET_CHILD_SUBREAPER => ptr(a),
        _ => (1..5).map(|i| hex(c.arg(i))).collect::<Vec<_>>().join(", "),
    })
}

fn sock_type(v: u64) -> String {
    let flag_bits = (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u32 as u64;
    let kind = v & !flag_bits & 0xffff_ffff;
    let mut s = match enum_lookup(kind, SOCK_TYPES) {
        Some(n) => n.to_string(),
        None => format!("{kind:#x}"),
    };
    if v & flag_bits != 0 {
        s.push('|');
        s.push_str(&flags(v & flag_bits, &SOCK_FLAGS));
    }
    s
}

fn sock_proto(domain: i32, proto: i32) -> String {
    if domain == libc::AF_INET || domain == libc::AF_INET6 {
        if let Some(n) = enum_lookup(proto as u32 as u64, IP_PROTOCOLS) {
            return n.to_string();
        }
    }
    proto.to_string()
}

fn sockaddr_at(c: &mut Ctx<'_>, addr: u64, len: usize) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let len = len.min(size_of::<libc::sockaddr_storage>());
    if len < size_of::<libc::sa_family_t>() {
        return ptr(addr);
    }
    let Some(b) = c.mem.bytes(addr, len) else {
        return ptr(addr);
    };
    let family = u16_at(&b, 0) as i32;
    let fam = enum_name(family as u64, ADDRESS_FAMILIES);
    match family {
        libc::AF_UNIX => {
            let at = offset_of!(libc::sockaddr_un, sun_path);
            let path = b.get(at..).unwrap_or(&[]);
            if path.is_empty() {
                format!("{{sa_family={fam}}}")
            } else if path[0] == 0 {
                format!(
                    "{{sa_family={fam}, sun_path=@{}}}",
                    quote(&path[1..], false)
                )
            } else {
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                format!(
                    "{{sa_family={fam}, sun_path={}}}",
                    quote(&path[..end], false)
                )
            }
        }
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            let port = u16::from_be(u16_at(&b, offset_of!(libc::sockaddr_in, sin_port)));
            let a = offset_of!(libc::sockaddr_in, sin_addr);
            let ip = std::net::Ipv4Addr::new(b[a], b[a + 1], b[a + 2], b[a + 3]);
            format!("{{sa_family={fam}, sin_port=htons({port}), sin_addr=inet_addr(\"{ip}\")}}")
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            let port = u16::from_be(u16_at(&b, offset_of!(libc::sockaddr_in6, sin6_port)));
            let flow = u32::from_be(u32_at(&b, offset_of!(libc::sockaddr_in6, sin6_flowinfo)));
            let a = offset_of!(libc::sockaddr_in6, sin6_addr);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[a..a + 16]);
            let ip = std::net::Ipv6Addr::from(octets);
            let scope = u32_at(&b, offset_of!(libc::sockaddr_in6, sin6_scope_id));
            format!(
                "{{sa_family={fam}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), \
                 inet_pton({fam}, \"{ip}\", &sin6_addr), sin6_scope_id={scope}}}"
            )
        }
        _ => format!("{{sa_family={fam}, ...}}"),
    }
}

/// An `iovec` array: `[{iov_base="hi\n", iov_len=3}]`. At exit, `filled`
/// is the byte count the kernel wrote across the buffers.
fn iovec(c: &mut Ctx<'_>, addr: u64, count: u64, filled: Option<u64>) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let size = size_of::<libc::iovec>();
    let n = (count as usize).min(c.limit);
    let Some(b) = c.mem.bytes(addr, n * size) else {
        return ptr(addr);
    };
    let mut left = filled;
    let mut items = Vec::new();
    for i in 0..n {
        let base = u64_at(&b, i * size + offset_of!(libc::iovec, iov_base));
        let len = u64_at(&b, i * size + offset_of!(libc::iovec, iov_len));
        let shown = match left.as_mut() {
            Some(l) => {
                let s = len.min(*l);
                *l -= s;
                s
            }
            None => len,
        };
        let data = buffer_at(c, base, shown as usize, false);
        items.push(format!("{{iov_base={data}, iov_len={len}}}"));
    }
    if (count as usize) > n {
        items.push("...".into());
    }
    format!("[{}]", items.join(", "))
}

fn clone_flags(v: u64) -> String {
    let sig = v & libc::CSIGNAL as u64;
    let rest = v & !(libc::CSIGNAL as u64);
    let mut parts = Vec::new();
    if rest != 0 {
        parts.push(flags(rest, &CLONE_FLAGS));
    }
    if sig != 0 {
        parts.push(signame(sig as i32));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// What `clone` shows after its flags: `, parent_tid=[N], tls=…,
/// child_tidptr=…`, as its flags say.
fn clone_tail(c: &mut Ctx<'_>) -> Option<String> {
    let fl = c.arg(0);
    let has = |bits: i32| fl & bits as u32 as u64 != 0;
    let mut parts = Vec::new();
    if has(libc::CLONE_PARENT_SETTID | libc::CLONE_PIDFD) {
        let at = c.arg(2);
        let shown = match c.success().and_then(|_| c.mem.bytes(at, size_of::<i32>())) {
            Some(b) => format!("[{}]", i32_at(&b, 0)),
            None => ptr(at),
        };
        parts.push(format!("parent_tid={shown}"));
    }
    if has(libc::CLONE_SETTLS) {
        parts.push(format!("tls={}", ptr(c.arg(4))));
    }
    if has(libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) {
        parts.push(format!("child_tidptr={}", ptr(c.arg(3))));
    }
    (!parts.is_empty()).then(|| format!(", {}", parts.join(", ")))
}

fn clone3_read(c: &mut Ctx<'_>, addr: u64) -> Option<Vec<u8>> {
    let size = (c.arg(1) as usize).min(size_of::<libc::clone_args>());
    let mut b = c.mem.bytes(addr, size)?;
    b.resize(size_of::<libc::clone_args>(), 0);
    Some(b)
}

fn clone3_args(c: &mut Ctx<'_>, addr: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let Some(b) = clone3_read(c, addr) else {
        return ptr(addr);
    };
    let field = |off: usize| u64_at(&b, off);
    let fl = field(offset_of!(libc::clone_args, flags));
    let has = |bits: i32| fl & bits as u32 as u64 != 0;
    let mut parts = vec![format!("flags={}", flags(fl, &CLONE_FLAGS))];
    if has(libc::CLONE_PIDFD) {
        parts.push(format!(
            "pidfd={}",
            ptr(field(offset_of!(libc::clone_args, pidfd)))
        ));
    }
    if has(libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) {
        parts.push(format!(
            "child_tid={}",
            ptr(field(offset_of!(libc::clone_args, child_tid)))
        ));
    }
    if has(libc::CLONE_PARENT_SETTID) {
        parts.push(format!(
            "parent_tid={}",
            ptr(field(offset_of!(libc::clone_args, parent_tid)))
        ));
    }
    let exit_signal = field(offset_of!(libc::clone_args, exit_signal));
    parts.push(format!("exit_signal={}", signal_arg(exit_signal as i32)));
    parts.push(format!(
        "stack={}",
        ptr(field(offset_of!(libc::clone_args, stack)))
    ));
    parts.push(format!(
        "stack_size={}",
        hex(field(offset_of!(libc::clone_args, stack_size)))
    ));
    if has(libc::CLONE_SETTLS) {
        parts.push(format!(
            "tls={}",
            ptr(field(offset_of!(libc::clone_args, tls)))
        ));
    }
    let set_tid_size = field(offset_of!(libc::clone_args, set_tid_size));
    if set_tid_size != 0 {
        parts.push(format!(
            "set_tid={}, set_tid_size={set_tid_size}",
            ptr(field(offset_of!(libc::clone_args, set_tid)))
        ));
    }
    format!("{{{}}}", parts.join(", "))
}

/// What `clone3` wrote back, ` => {pidfd=[N], parent_tid=[M]}` (if it
/// succeeded), then `, SIZE`.
fn clone3_tail(c: &mut Ctx<'_>) -> String {
    let size = format!(", {}", c.arg(1));
    let addr = c.arg(0);
    if c.success().is_none() {
        return size;
    }
    let Some(b) = clone3_read(c, addr) else {
        return size;
    };
    let fl = u64_at(&b, offset_of!(libc::clone_args, flags));
    let mut parts = Vec::new();
    for (bit, name, off) in [
        (
            libc::CLONE_PIDFD,
            "pidfd",
            offset_of!(libc::clone_args, pidfd),
        ),
        (
            libc::CLONE_PARENT_SETTID,
            "parent_tid",
            offset_of!(libc::clone_args, parent_tid),
        ),
    ] {
        if fl & bit as u32 as u64 != 0 {
            let at = u64_at(&b, off);
            let shown = match c.mem.bytes(at, size_of::<i32>()) {
                Some(v) => format!("[{}]", i32_at(&v, 0)),
                None => ptr(at),
            };
            parts.push(format!("{name}={shown}"));
        }
    }
    if parts.is_empty() {
        size
    } else {
        format!(" => {{{}}}{size}", parts.join(", "))
    }
}

const FUTEX_MODIFIERS: u64 = (libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64;

fn futex_op(v: u64) -> String {
    let cmd = v & !FUTEX_MODIFIERS;
    let mut s = match enum_lookup(cmd, FUTEX_CMDS) {
        Some(n) => n.to_string(),
        None => cmd.to_string(),
    };
    if v & libc::FUTEX_PRIVATE_FLAG as u64 != 0 {
        s.push_str("_PRIVATE");
    }
    if v & libc::FUTEX_CLOCK_REALTIME as u64 != 0 {
        s.push_str("|FUTEX_CLOCK_REALTIME");
    }
    s
}

/// The futex arguments after the operation, as that operation uses them.
fn futex_rest(c: &mut Ctx<'_>) -> Option<String> {
    let cmd = (c.arg(1) & !FUTEX_MODIFIERS) as i32;
    let val = (c.arg(2) as u32).to_string();
    let timeout = c.arg(3);
    let val2 = (timeout as u32).to_string();
    let uaddr2 = ptr(c.arg(4));
    let val3 = c.arg(5) as u32;
    let bitset = if val3 == libc::FUTEX_BITSET_MATCH_ANY as u32 {
        "FUTEX_BITSET_MATCH_ANY".to_string()
    } else {
        hex(val3 as u64)
    };
    let ts = |c: &mut Ctx<'_>| in_struct(c, timeout, size_of::<libc::timespec>(), timespec);
    let parts: Vec<String> = match cmd {
        libc::FUTEX_WAIT => vec![val, ts(c)],
        libc::FUTEX_WAKE | libc::FUTEX_FD => vec![val],
        libc::FUTEX_REQUEUE => vec![val, val2, uaddr2],
        libc::FUTEX_CMP_REQUEUE | libc::FUTEX_CMP_REQUEUE_PI => {
            vec![val, val2, uaddr2, val3.to_string()]
        }
        libc::FUTEX_WAKE_OP => vec![val, val2, uaddr2, hex(val3 as u64)],
        libc::FUTEX_LOCK_PI | libc::FUTEX_LOCK_PI2 => vec![ts(c)],
        libc::FUTEX_UNLOCK_PI | libc::FUTEX_TRYLOCK_PI => vec![],
        libc::FUTEX_WAIT_BITSET => vec![val, ts(c), bitset],
        libc::FUTEX_WAKE_BITSET => vec![val, bitset],
        libc::FUTEX_WAIT_REQUEUE_PI => vec![val, ts(c), uaddr2],
        _ => vec![hex(c.arg(2)), hex(timeout), hex(c.arg(4)), hex(c.arg(5))],
    };
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The third `fcntl` argument, if the command takes one.
fn fcntl_arg(cmd: i32, v: u64) -> Option<String> {
    Some(match cmd {
        libc::F_GETFD
        | libc::F_GETFL
        | libc::F_GETOWN
        | uapi::F_GETSIG
        | libc::F_GETLEASE
        | libc::F_GETPIPE_SZ
        | libc::F_GET_SEALS => return None,
        libc::F_SETFD => flags(v, &FD_CLOEXEC_FLAG),
        libc::F_SETFL => open_flags(v),
        libc::F_DUPFD
        | libc::F_DUPFD_CLOEXEC
        | libc::F_SETOWN
        | uapi::F_SETSIG
        | libc::F_SETPIPE_SZ
        | libc::F_SETLEASE
        | libc::F_NOTIFY => (v as i32).to_string(),
        libc::F_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW
        | uapi::F_GETOWN_EX
        | uapi::F_SETOWN_EX => ptr(v),
        _ => hex(v),
    })
}

// ---- signals, errors, exits -------------------------------------------------

/// A signal's name as strace prints it: `SIGUSR1`, `SIGRTMIN`, `SIGRT_1`
/// (real-time signals counted from the kernel's 32), else the number.
pub fn signame(n: i32) -> String {
    if (1..=64).contains(&n) {
        sys::signal_name(n)
    } else {
        n.to_string()
    }
}

fn signal_arg(n: i32) -> String {
    if n == 0 {
        "0".into()
    } else {
        signame(n)
    }
}

fn si_code_name(signo: i32, code: i32) -> String {
    let per_signal: &Names = match signo {
        _ if code <= 0 || code == libc::SI_KERNEL => &[],
        libc::SIGILL => ILL_CODES,
        libc::SIGFPE => FPE_CODES,
        libc::SIGSEGV => SEGV_CODES,
        libc::SIGBUS => BUS_CODES,
        libc::SIGTRAP => TRAP_CODES,
        libc::SIGCHLD => CLD_CODES,
        libc::SIGIO => POLL_CODES,
        libc::SIGSYS => SYS_CODES,
        _ => &[],
    };
    let v = code as u32 as u64;
    enum_lookup(v, per_signal)
        .or_else(|| enum_lookup(v, SI_CODES))
        .map_or_else(|| code.to_string(), str::to_string)
}

/// `--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=42} ---`.
pub fn signal_line(r: &SignalReport) -> String {
    let sig = signame(r.signo);
    let mut s = format!(
        "--- {sig} {{si_signo={sig}, si_code={}",
        si_code_name(r.signo, r.code)
    );
    if let (libc::SIGCHLD, Some(c)) = (r.signo, r.child) {
        // si_status is the exit code, or the signal that stopped or
        // killed the child.
        let status = if r.code == libc::CLD_EXITED {
            c.status.to_string()
        } else {
            signame(c.status)
        };
        let _ = write!(
            s,
            ", si_pid={}, si_uid={}, si_status={status}, si_utime={}, si_stime={}",
            r.sender_pid, r.sender_uid, c.utime, c.stime
        );
    } else if matches!(r.code, libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL) {
        let _ = write!(s, ", si_pid={}, si_uid={}", r.sender_pid, r.sender_uid);
    } else if r.code > 0
        && matches!(
            r.signo,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
        )
    {
        let _ = write!(s, ", si_addr={}", ptr(r.addr));
    }
    s.push_str("} ---");
    s
}

/// `+++ exited with 0 +++`, `+++ killed by SIGKILL +++`.
pub fn death_line(status: &ExitStatus) -> String {
    match *status {
        ExitStatus::Exited(code) => format!("+++ exited with {code} +++"),
        ExitStatus::Signaled { signo, core_dumped } => format!(
            "+++ killed by {}{} +++",
            signame(signo),
            if core_dumped { " (core dumped)" } else { "" }
        ),
    }
}

/// Kernel-internal "restart" errnos a traced syscall can end with
/// (`include/linux/errno.h`; not in libc): name and strace's message.
const RESTART_ERRNOS: &[(i32, &str, &str)] = &[
    (512, "ERESTARTSYS", "To be restarted if SA_RESTART is set"),
    (513, "ERESTARTNOINTR", "To be restarted"),
    (514, "ERESTARTNOHAND", "To be restarted if no handler"),
    (516, "ERESTART_RESTARTBLOCK", "Interrupted by signal"),
];

/// A failed call's result: `-1 ENOENT (No such file or directory)`.
fn errno_text(e: i32) -> String {
    if let Some((_, name, msg)) = RESTART_ERRNOS.iter().find(|(n, _, _)| *n == e) {
        return format!("? {name} ({msg})");
    }
    let name = sys::errno_name(e);
    let name = if name.starts_with('E') {
        name
    } else {
        format!("ERRNO_{e}")
    };
    let msg = std::io::Error::from_raw_os_error(e).to_string();
    let msg = msg
        .strip_suffix(&format!(" (os error {e})"))
        .unwrap_or(&msg)
        .to_string();
    format!("-1 {name} ({msg})")
}

// ---- name tables ------------------------------------------------------------

/// Kernel constants libc does not export for this target (or marks
/// deprecated), named as in the kernel's uapi headers.
mod uapi {
    // asm-generic/siginfo.h: `si_code` values of SIGILL, SIGFPE, SIGSEGV, SIGIO, SIGSYS.
    pub const ILL_ILLOPC: i32 = 1;
    pub const ILL_ILLOPN: i32 = 2;
    pub const ILL_ILLADR: i32 = 3;
    pub const ILL_ILLTRP: i32 = 4;
    pub const ILL_PRVOPC: i32 = 5;
    pub const ILL_PRVREG: i32 = 6;
    pub const ILL_COPROC: i32 = 7;
    pub const ILL_BADSTK: i32 = 8;
    pub const FPE_INTDIV: i32 = 1;
    pub const FPE_INTOVF: i32 = 2;
    pub const FPE_FLTDIV: i32 = 3;
    pub const FPE_FLTOVF: i32 = 4;
    pub const FPE_FLTUND: i32 = 5;
    pub const FPE_FLTRES: i32 = 6;
    pub const FPE_FLTINV: i32 = 7;
    pub const FPE_FLTSUB: i32 = 8;
    pub const SEGV_MAPERR: i32 = 1;
    pub const SEGV_ACCERR: i32 = 2;
    pub const SEGV_BNDERR: i32 = 3;
    pub const SEGV_PKUERR: i32 = 4;
    pub const POLL_IN: i32 = 1;
    pub const POLL_OUT: i32 = 2;
    pub const POLL_MSG: i32 = 3;
    pub const POLL_ERR: i32 = 4;
    pub const POLL_PRI: i32 = 5;
    pub const POLL_HUP: i32 = 6;
    pub const SYS_SECCOMP: i32 = 1;
    // asm-generic/fcntl.h: `fcntl` commands.
    pub const F_SETSIG: i32 = 10;
    pub const F_GETSIG: i32 = 11;
    pub const F_SETOWN_EX: i32 = 15;
    pub const F_GETOWN_EX: i32 = 16;
    // asm/prctl.h (x86): `arch_prctl` codes.
    pub const ARCH_SET_GS: i32 = 0x1001;
    pub const ARCH_SET_FS: i32 = 0x1002;
    pub const ARCH_GET_FS: i32 = 0x1003;
    pub const ARCH_GET_GS: i32 = 0x1004;
    pub const ARCH_GET_CPUID: i32 = 0x1011;
    pub const ARCH_SET_CPUID: i32 = 0x1012;
    pub const ARCH_GET_XCOMP_SUPP: i32 = 0x1021;
    pub const ARCH_GET_XCOMP_PERM: i32 = 0x1022;
    pub const ARCH_REQ_XCOMP_PERM: i32 = 0x1023;
    // linux/net.h: a socket type libc marks deprecated.
    pub const SOCK_PACKET: i32 = 10;
    // linux/socket.h, asm-generic/poll.h, linux/mempolicy.h.
    pub const MSG_PROXY: i32 = 0x10;
    pub const POLLMSG: i32 = 0x400;
    pub const MPOL_PREFERRED_MANY: i32 = 5;
}

/// The kernel's `O_LARGEFILE` (`asm-generic/fcntl.h`); libc has 0 on 64-bit
/// targets, but the kernel reports it in `F_GETFL` and 32-bit calls pass it.
const KERNEL_O_LARGEFILE: u64 = 0o100000;
/// `SA_RESTORER` (`asm/signal.h`), not exported by libc for glibc targets.
const SA_RESTORER: u64 = 0x0400_0000;

static ACCESS_MODES: &Names = &[c!(O_RDONLY), c!(O_WRONLY), c!(O_RDWR)];

static OPEN_FLAGS: Flags = Flags {
    names: &[
        c!(O_CREAT),
        c!(O_EXCL),
        c!(O_NOCTTY),
        c!(O_TRUNC),
        c!(O_APPEND),
        c!(O_NONBLOCK),
        c!(O_SYNC),
        c!(O_DSYNC),
        c!(O_DIRECT),
        (KERNEL_O_LARGEFILE, "O_LARGEFILE"),
        c!(O_NOFOLLOW),
        c!(O_NOATIME),
        c!(O_CLOEXEC),
        (libc::O_ASYNC as u32 as u64, "FASYNC"),
        c!(O_TMPFILE),
        c!(O_PATH),
        c!(O_DIRECTORY),
    ],
    zero: "0",
};

static FD_FLAGS: Flags = Flags {
    names: &[c!(O_NONBLOCK), c!(O_DIRECT), c!(O_CLOEXEC)],
    zero: "0",
};

static FD_CLOEXEC_FLAG: Flags = Flags {
    names: &[c!(FD_CLOEXEC)],
    zero: "0",
};

static ACCESS_MODE: Flags = Flags {
    names: &[c!(R_OK), c!(W_OK), c!(X_OK)],
    zero: "F_OK",
};

static AT_FLAGS: Flags = Flags {
    names: &[
        c!(AT_SYMLINK_NOFOLLOW),
        c!(AT_REMOVEDIR),
        c!(AT_SYMLINK_FOLLOW),
        c!(AT_NO_AUTOMOUNT),
        c!(AT_EMPTY_PATH),
        c!(AT_STATX_FORCE_SYNC),
        c!(AT_STATX_DONT_SYNC),
        c!(AT_RECURSIVE),
    ],
    zero: "0",
};

static FACCESSAT_FLAGS: Flags = Flags {
    names: &[c!(AT_SYMLINK_NOFOLLOW), c!(AT_EACCESS), c!(AT_EMPTY_PATH)],
    zero: "0",
};

static PROT: Flags = Flags {
    names: &[
        c!(PROT_READ),
        c!(PROT_WRITE),
        c!(PROT_EXEC),
        c!(PROT_GROWSDOWN),
        c!(PROT_GROWSUP),
    ],
    zero: "PROT_NONE",
};

static MAP_FLAGS: Flags = Flags {
    names: &[
        c!(MAP_SHARED_VALIDATE),
        c!(MAP_SHARED),
        c!(MAP_PRIVATE),
        c!(MAP_FIXED),
        c!(MAP_ANONYMOUS),
        c!(MAP_32BIT),
        c!(MAP_GROWSDOWN),
        c!(MAP_DENYWRITE),
        c!(MAP_EXECUTABLE),
        c!(MAP_LOCKED),
        c!(MAP_NORESERVE),
        c!(MAP_POPULATE),
        c!(MAP_NONBLOCK),
        c!(MAP_STACK),
        c!(MAP_HUGETLB),
        c!(MAP_SYNC),
        c!(MAP_FIXED_NOREPLACE),
    ],
    zero: "0",
};

static MREMAP_FLAGS: Flags = Flags {
    names: &[c!(MREMAP_MAYMOVE), c!(MREMAP_FIXED)],
    zero: "0",
};

static MSYNC_FLAGS: Flags = Flags {
    names: &[c!(MS_ASYNC), c!(MS_INVALIDATE), c!(MS_SYNC)],
    zero: "0",
};

static MADVICE: &Names = &[
    c!(MADV_NORMAL),
    c!(MADV_RANDOM),
    c!(MADV_SEQUENTIAL),
    c!(MADV_WILLNEED),
    c!(MADV_DONTNEED),
    c!(MADV_FREE),
    c!(MADV_REMOVE),
    c!(MADV_DONTFORK),
    c!(MADV_DOFORK),
    c!(MADV_MERGEABLE),
    c!(MADV_UNMERGEABLE),
    c!(MADV_HUGEPAGE),
    c!(MADV_NOHUGEPAGE),
    c!(MADV_DONTDUMP),
    c!(MADV_DODUMP),
    c!(MADV_WIPEONFORK),
    c!(MADV_KEEPONFORK),
    c!(MADV_COLD),
    c!(MADV_PAGEOUT),
    c!(MADV_POPULATE_READ),
    c!(MADV_POPULATE_WRITE),
    c!(MADV_HWPOISON),
];

static SEEK_WHENCE: &Names = &[
    c!(SEEK_SET),
    c!(SEEK_CUR),
    c!(SEEK_END),
    c!(SEEK_DATA),
    c!(SEEK_HOLE),
];

static SIGPROCMASK_HOW: &Names = &[c!(SIG_BLOCK), c!(SIG_UNBLOCK), c!(SIG_SETMASK)];

static ADDRESS_FAMILIES: &Names = &[
    c!(AF_UNSPEC),
    c!(AF_UNIX),
    c!(AF_INET),
    c!(AF_INET6),
    c!(AF_NETLINK),
    c!(AF_PACKET),
    c!(AF_ALG),
    c!(AF_VSOCK),
];

static SOCK_TYPES: &Names = &[
    c!(SOCK_STREAM),
    c!(SOCK_DGRAM),
    c!(SOCK_RAW),
    c!(SOCK_RDM),
    c!(SOCK_SEQPACKET),
    u!(SOCK_PACKET),
];

static SOCK_FLAGS: Flags = Flags {
    names: &[c!(SOCK_CLOEXEC), c!(SOCK_NONBLOCK)],
    zero: "0",
};

static IP_PROTOCOLS: &Names = &[
    c!(IPPROTO_IP),
    c!(IPPROTO_ICMP),
    c!(IPPROTO_TCP),
    c!(IPPROTO_UDP),
    c!(IPPROTO_IPV6),
    c!(IPPROTO_ICMPV6),
    c!(IPPROTO_SCTP),
    c!(IPPROTO_RAW),
];

static MSG_FLAGS: Flags = Flags {
    names: &[
        c!(MSG_OOB),
        c!(MSG_PEEK),
        c!(MSG_DONTROUTE),
        c!(MSG_CTRUNC),
        u!(MSG_PROXY),
        c!(MSG_TRUNC),
        c!(MSG_DONTWAIT),
        c!(MSG_EOR),
        c!(MSG_WAITALL),
        c!(MSG_FIN),
        c!(MSG_SYN),
        c!(MSG_CONFIRM),
        c!(MSG_RST),
        c!(MSG_ERRQUEUE),
        c!(MSG_NOSIGNAL),
        c!(MSG_MORE),
        c!(MSG_WAITFORONE),
        c!(MSG_FASTOPEN),
        c!(MSG_ZEROCOPY),
        c!(MSG_CMSG_CLOEXEC),
    ],
    zero: "0",
};

static POLL_EVENTS: Flags = Flags {
    names: &[
        c!(POLLIN),
        c!(POLLPRI),
        c!(POLLOUT),
        c!(POLLERR),
        c!(POLLHUP),
        c!(POLLNVAL),
        c!(POLLRDNORM),
        c!(POLLRDBAND),
        c!(POLLWRNORM),
        c!(POLLWRBAND),
        u!(POLLMSG),
        c!(POLLRDHUP),
    ],
    zero: "0",
};

static MPOL_MODES: &Names = &[
    c!(MPOL_DEFAULT),
    c!(MPOL_PREFERRED),
    c!(MPOL_BIND),
    c!(MPOL_INTERLEAVE),
    c!(MPOL_LOCAL),
    u!(MPOL_PREFERRED_MANY),
];

static SHUTDOWN_HOW: &Names = &[c!(SHUT_RD), c!(SHUT_WR), c!(SHUT_RDWR)];

static WAIT_OPTIONS: Flags = Flags {
    names: &[
        c!(WNOHANG),
        c!(WUNTRACED),
        c!(WEXITED),
        c!(WCONTINUED),
        c!(WNOWAIT),
        c!(__WNOTHREAD),
        c!(__WALL),
        c!(__WCLONE),
    ],
    zero: "0",
};

static IDTYPES: &Names = &[c!(P_ALL), c!(P_PID), c!(P_PGID), c!(P_PIDFD)];

static FLOCK_OPS: Flags = Flags {
    names: &[c!(LOCK_SH), c!(LOCK_EX), c!(LOCK_NB), c!(LOCK_UN)],
    zero: "0",
};

static RESOURCES: &Names = &[
    c!(RLIMIT_CPU),
    c!(RLIMIT_FSIZE),
    c!(RLIMIT_DATA),
    c!(RLIMIT_STACK),
    c!(RLIMIT_CORE),
    c!(RLIMIT_RSS),
    c!(RLIMIT_NPROC),
    c!(RLIMIT_NOFILE),
    c!(RLIMIT_MEMLOCK),
    c!(RLIMIT_AS),
    c!(RLIMIT_LOCKS),
    c!(RLIMIT_SIGPENDING),
    c!(RLIMIT_MSGQUEUE),
    c!(RLIMIT_NICE),
    c!(RLIMIT_RTPRIO),
    c!(RLIMIT_RTTIME),
];

static PRCTL_OPTIONS: &Names = &[
    c!(PR_SET_PDEATHSIG),
    c!(PR_GET_PDEATHSIG),
    c!(PR_GET_DUMPABLE),
    c!(PR_SET_DUMPABLE),
    c!(PR_GET_KEEPCAPS),
    c!(PR_SET_KEEPCAPS),
    c!(PR_SET_NAME),
    c!(PR_GET_NAME),
    c!(PR_GET_SECCOMP),
    c!(PR_SET_SECCOMP),
    c!(PR_CAPBSET_READ),
    c!(PR_CAPBSET_DROP),
    c!(PR_SET_TIMERSLACK),
    c!(PR_GET_TIMERSLACK),
    c!(PR_SET_MM),
    c!(PR_SET_CHILD_SUBREAPER),
    c!(PR_GET_CHILD_SUBREAPER),
    c!(PR_SET_NO_NEW_PRIVS),
    c!(PR_GET_NO_NEW_PRIVS),
    c!(PR_SET_THP_DISABLE),
    c!(PR_GET_THP_DISABLE),
    c!(PR_CAP_AMBIENT),
    c!(PR_SET_VMA),
];

static ARCH_PRCTL_CODES: &Names = &[
    u!(ARCH_SET_GS),
    u!(ARCH_SET_FS),
    u!(ARCH_GET_FS),
    u!(ARCH_GET_GS),
    u!(ARCH_GET_CPUID),
    u!(ARCH_SET_CPUID),
    u!(ARCH_GET_XCOMP_SUPP),
    u!(ARCH_GET_XCOMP_PERM),
    u!(ARCH_REQ_XCOMP_PERM),
];

static FADVICE: &Names = &[
    c!(POSIX_FADV_NORMAL),
    c!(POSIX_FADV_RANDOM),
    c!(POSIX_FADV_SEQUENTIAL),
    c!(POSIX_FADV_WILLNEED),
    c!(POSIX_FADV_DONTNEED),
    c!(POSIX_FADV_NOREUSE),
];

static CLOCKS: &Names = &[
    c!(CLOCK_REALTIME),
    c!(CLOCK_MONOTONIC),
    c!(CLOCK_PROCESS_CPUTIME_ID),
    c!(CLOCK_THREAD_CPUTIME_ID),
    c!(CLOCK_MONOTONIC_RAW),
    c!(CLOCK_REALTIME_COARSE),
    c!(CLOCK_MONOTONIC_COARSE),
    c!(CLOCK_BOOTTIME),
    c!(CLOCK_REALTIME_ALARM),
    c!(CLOCK_BOOTTIME_ALARM),
    c!(CLOCK_TAI),
];

static TIMER_FLAGS: Flags = Flags {
    names: &[c!(TIMER_ABSTIME)],
    zero: "0",
};

static EPOLL_OPS: &Names = &[c!(EPOLL_CTL_ADD), c!(EPOLL_CTL_DEL), c!(EPOLL_CTL_MOD)];

static STATX_MASK: Flags = Flags {
    names: &[
        c!(STATX_ALL),
        c!(STATX_BASIC_STATS),
        c!(STATX_TYPE),
        c!(STATX_MODE),
        c!(STATX_NLINK),
        c!(STATX_UID),
        c!(STATX_GID),
        c!(STATX_ATIME),
        c!(STATX_MTIME),
        c!(STATX_CTIME),
        c!(STATX_INO),
        c!(STATX_SIZE),
        c!(STATX_BLOCKS),
        c!(STATX_BTIME),
        c!(STATX_MNT_ID),
        c!(STATX_DIOALIGN),
    ],
    zero: "0",
};

static STATX_ATTRS: Flags = Flags {
    names: &[
        c!(STATX_ATTR_COMPRESSED),
        c!(STATX_ATTR_IMMUTABLE),
        c!(STATX_ATTR_APPEND),
        c!(STATX_ATTR_NODUMP),
        c!(STATX_ATTR_ENCRYPTED),
        c!(STATX_ATTR_AUTOMOUNT),
        c!(STATX_ATTR_MOUNT_ROOT),
        c!(STATX_ATTR_VERITY),
        c!(STATX_ATTR_DAX),
    ],
    zero: "0",
};

static RENAME_FLAGS: Flags = Flags {
    names: &[
        c!(RENAME_NOREPLACE),
        c!(RENAME_EXCHANGE),
        c!(RENAME_WHITEOUT),
    ],
    zero: "0",
};

static GRND_FLAGS: Flags = Flags {
    names: &[c!(GRND_NONBLOCK), c!(GRND_RANDOM), c!(GRND_INSECURE)],
    zero: "0",
};

static MFD_FLAGS: Flags = Flags {
    names: &[c!(MFD_CLOEXEC), c!(MFD_ALLOW_SEALING), c!(MFD_HUGETLB)],
    zero: "0",
};

static TFD_FLAGS: Flags = Flags {
    names: &[c!(TFD_CLOEXEC), c!(TFD_NONBLOCK)],
    zero: "0",
};

static SFD_FLAGS: Flags = Flags {
    names: &[c!(SFD_CLOEXEC), c!(SFD_NONBLOCK)],
    zero: "0",
};

static EFD_FLAGS: Flags = Flags {
    names: &[c!(EFD_SEMAPHORE), c!(EFD_CLOEXEC), c!(EFD_NONBLOCK)],
    zero: "0",
};

static EPOLL_FLAGS: Flags = Flags {
    names: &[c!(EPOLL_CLOEXEC)],
    zero: "0",
};

static IN_FLAGS: Flags = Flags {
    names: &[c!(IN_CLOEXEC), c!(IN_NONBLOCK)],
    zero: "0",
};

static CLOSE_RANGE_FLAGS: Flags = Flags {
    names: &[c!(CLOSE_RANGE_UNSHARE), c!(CLOSE_RANGE_CLOEXEC)],
    zero: "0",
};

static CLONE_FLAGS: Flags = Flags {
    names: &[
        c!(CLONE_VM),
        c!(CLONE_FS),
        c!(CLONE_FILES),
        c!(CLONE_SIGHAND),
        c!(CLONE_PIDFD),
        c!(CLONE_PTRACE),
        c!(CLONE_VFORK),
        c!(CLONE_PARENT),
        c!(CLONE_THREAD),
        c!(CLONE_NEWNS),
        c!(CLONE_SYSVSEM),
        c!(CLONE_SETTLS),
        c!(CLONE_PARENT_SETTID),
        c!(CLONE_CHILD_CLEARTID),
        c!(CLONE_DETACHED),
        c!(CLONE_UNTRACED),
        c!(CLONE_CHILD_SETTID),
        c!(CLONE_NEWCGROUP),
        c!(CLONE_NEWUTS),
        c!(CLONE_NEWIPC),
        c!(CLONE_NEWUSER),
        c!(CLONE_NEWPID),
        c!(CLONE_NEWNET),
        c!(CLONE_IO),
    ],
    zero: "0",
};

static FUTEX_CMDS: &Names = &[
    c!(FUTEX_WAIT),
    c!(FUTEX_WAKE),
    c!(FUTEX_FD),
    c!(FUTEX_REQUEUE),
    c!(FUTEX_CMP_REQUEUE),
    c!(FUTEX_WAKE_OP),
    c!(FUTEX_LOCK_PI),
    c!(FUTEX_UNLOCK_PI),
    c!(FUTEX_TRYLOCK_PI),
    c!(FUTEX_WAIT_BITSET),
    c!(FUTEX_WAKE_BITSET),
    c!(FUTEX_WAIT_REQUEUE_PI),
    c!(FUTEX_CMP_REQUEUE_PI),
    c!(FUTEX_LOCK_PI2),
];

static FCNTL_CMDS: &Names = &[
    c!(F_DUPFD),
    c!(F_GETFD),
    c!(F_SETFD),
    c!(F_GETFL),
    c!(F_SETFL),
    c!(F_GETLK),
    c!(F_SETLK),
    c!(F_SETLKW),
    c!(F_SETOWN),
    c!(F_GETOWN),
    u!(F_SETSIG),
    u!(F_GETSIG),
    u!(F_SETOWN_EX),
    u!(F_GETOWN_EX),
    c!(F_OFD_GETLK),
    c!(F_OFD_SETLK),
    c!(F_OFD_SETLKW),
    c!(F_SETLEASE),
    c!(F_GETLEASE),
    c!(F_NOTIFY),
    c!(F_DUPFD_CLOEXEC),
    c!(F_SETPIPE_SZ),
    c!(F_GETPIPE_SZ),
    c!(F_ADD_SEALS),
    c!(F_GET_SEALS),
];

static IOCTL_REQUESTS: &Names = &[
    c!(TCGETS),
    c!(TCSETS),
    c!(TCSETSW),
    c!(TCSETSF),
    c!(TCFLSH),
    c!(TIOCSCTTY),
    c!(TIOCGPGRP),
    c!(TIOCSPGRP),
    c!(TIOCOUTQ),
    c!(TIOCGWINSZ),
    c!(TIOCSWINSZ),
    c!(FIONREAD),
    c!(TIOCNOTTY),
    c!(FIONBIO),
    c!(FIONCLEX),
    c!(FIOCLEX),
    c!(FIOASYNC),
    c!(TIOCGPTN),
    c!(TIOCSPTLCK),
];

static FILE_TYPES: &Names = &[
    c!(S_IFREG),
    c!(S_IFDIR),
    c!(S_IFCHR),
    c!(S_IFBLK),
    c!(S_IFIFO),
    c!(S_IFLNK),
    c!(S_IFSOCK),
];

static SA_FLAGS: Flags = Flags {
    names: &[
        (SA_RESTORER, "SA_RESTORER"),
        c!(SA_ONSTACK),
        c!(SA_RESTART),
        c!(SA_NODEFER),
        c!(SA_RESETHAND),
        c!(SA_SIGINFO),
        c!(SA_NOCLDSTOP),
        c!(SA_NOCLDWAIT),
    ],
    zero: "0",
};

static SS_FLAGS: Flags = Flags {
    names: &[c!(SS_ONSTACK), c!(SS_DISABLE)],
    zero: "0",
};

static SI_CODES: &Names = &[
    c!(SI_USER),
    c!(SI_KERNEL),
    c!(SI_QUEUE),
    c!(SI_TIMER),
    c!(SI_MESGQ),
    c!(SI_ASYNCIO),
    c!(SI_SIGIO),
    c!(SI_TKILL),
    c!(SI_DETHREAD),
    c!(SI_ASYNCNL),
];

static ILL_CODES: &Names = &[
    u!(ILL_ILLOPC),
    u!(ILL_ILLOPN),
    u!(ILL_ILLADR),
    u!(ILL_ILLTRP),
    u!(ILL_PRVOPC),
    u!(ILL_PRVREG),
    u!(ILL_COPROC),
    u!(ILL_BADSTK),
];

static FPE_CODES: &Names = &[
    u!(FPE_INTDIV),
    u!(FPE_INTOVF),
    u!(FPE_FLTDIV),
    u!(FPE_FLTOVF),
    u!(FPE_FLTUND),
    u!(FPE_FLTRES),
    u!(FPE_FLTINV),
    u!(FPE_FLTSUB),
];

static SEGV_CODES: &Names = &[
    u!(SEGV_MAPERR),
    u!(SEGV_ACCERR),
    u!(SEGV_BNDERR),
    u!(SEGV_PKUERR),
];

static BUS_CODES: &Names = &[
    c!(BUS_ADRALN),
    c!(BUS_ADRERR),
    c!(BUS_OBJERR),
    c!(BUS_MCEERR_AR),
    c!(BUS_MCEERR_AO),
];

static TRAP_CODES: &Names = &[
    c!(TRAP_BRKPT),
    c!(TRAP_TRACE),
    c!(TRAP_BRANCH),
    c!(TRAP_HWBKPT),
];

static CLD_CODES: &Names = &[
    c!(CLD_EXITED),
    c!(CLD_KILLED),
    c!(CLD_DUMPED),
    c!(CLD_TRAPPED),
    c!(CLD_STOPPED),
    c!(CLD_CONTINUED),
];

static POLL_CODES: &Names = &[
    u!(POLL_IN),
    u!(POLL_OUT),
    u!(POLL_MSG),
    u!(POLL_ERR),
    u!(POLL_PRI),
    u!(POLL_HUP),
];

static SYS_CODES: &Names = &[u!(SYS_SECCOMP)];

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Tracee memory made of a few mapped regions.
    #[derive(Default)]
    struct FakeMem {
        regions: Vec<(u64, Vec<u8>)>,
        sp: Option<u64>,
    }

    impl FakeMem {
        fn map(mut self, addr: u64, bytes: &[u8]) -> Self {
            self.regions.push((addr, bytes.to_vec()));
            self
        }

        fn region(&self, addr: u64) -> Option<&[u8]> {
            self.regions.iter().find_map(|(start, b)| {
                (addr >= *start && addr < start + b.len() as u64)
                    .then(|| &b[(addr - start) as usize..])
            })
        }
    }

    impl Tracee for FakeMem {
        fn bytes(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
            if len == 0 {
                return Some(Vec::new());
            }
            let r = self.region(addr)?;
            (r.len() >= len).then(|| r[..len].to_vec())
        }

        fn string(&mut self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)> {
            let r = self.region(addr)?;
            match r.iter().take(max + 1).position(|&c| c == 0) {
                Some(n) => Some((r[..n].to_vec(), true)),
                None if r.len() >= max => Some((r[..max].to_vec(), false)),
                None => None,
            }
        }

        fn stack_pointer(&mut self) -> Option<u64> {
            self.sp
        }
    }

    fn nr(name: &str) -> u64 {
        crate::event::syscall_number(name).unwrap()
    }

    fn entry(name: &str, args: &[u64]) -> SyscallEntry {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        SyscallEntry {
            nr: nr(name),
            args: a,
            arch: crate::arch::AUDIT_ARCH,
            from_seccomp: false,
        }
    }

    fn exit(e: SyscallEntry, ret: i64) -> SyscallExit {
        SyscallExit {
            entry: e,
            ret,
            is_error: (-4095..0).contains(&ret),
        }
    }

    /// A recorder whose lines are collected.
    fn recorder() -> (Recorder, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let r = Recorder::new(Box::new(move |l: &str| {
            sink.lock().unwrap().push(l.to_string())
        }));
        (r, lines)
    }

    /// The line for one complete call on task 100.
    fn call_line(mem: &mut FakeMem, name: &str, args: &[u64], ret: i64) -> String {
        let (mut r, lines) = recorder();
        let e = entry(name, args);
        r.on_entry(mem, 100, &e);
        r.on_exit(mem, 100, &exit(e, ret));
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines[0].clone()
    }

    #[test]
    fn quoting_escapes_like_strace() {
        // Bytes and expected text taken from a real strace run.
        let raw = b"\x018\x017\x01a\xff\x00\x0b\x0c\x1b\"\\ \x7f";
        assert_eq!(quote(raw, false), r#""\18\0017\1a\377\0\v\f\33\"\\ \177""#);
        assert_eq!(quote(b"hi\n\t\r", false), r#""hi\n\t\r""#);
        assert_eq!(quote(b"\x27\xb4", true), r#""\x27\xb4""#);
        assert_eq!(quote(b"", false), r#""""#);
    }

    #[test]
    fn strings_and_buffers_truncate_at_the_limit() {
        let a32 = [b'a'; 32];
        let mut s32 = a32.to_vec();
        s32.push(0);
        let mut s33 = vec![b'a'; 33];
        s33.push(0);
        let mut mem = FakeMem::default()
            .map(0x1000, &s32)
            .map(0x2000, &s33)
            .map(0x3000, &[b'b'; 40]);
        let mut c = Ctx {
            mem: &mut mem,
            args: [0; 6],
            exit: None,
            limit: DEFAULT_STRING_LIMIT,
        };
        let q32 = format!("\"{}\"", "a".repeat(32));
        assert_eq!(string_at(&mut c, 0x1000, 32), q32);
        assert_eq!(string_at(&mut c, 0x2000, 32), format!("{q32}..."));
        assert_eq!(string_at(&mut c, 0, 32), "NULL");
        // Unreadable: the pointer.
        assert_eq!(string_at(&mut c, 0x9000, 32), "0x9000");
        assert_eq!(
            buffer_at(&mut c, 0x3000, 40, false),
            format!("\"{}\"...", "b".repeat(32))
        );
        assert_eq!(buffer_at(&mut c, 0x3000, 3, false), r#""bbb""#);
        assert_eq!(buffer_at(&mut c, 0x3ff0, 3, false), "0x3ff0");
    }

    #[test]
    fn flags_decode_like_strace() {
        let o = |f: i32| open_flags(f as u32 as u64);
        assert_eq!(o(libc::O_RDONLY | libc::O_CLOEXEC), "O_RDONLY|O_CLOEXEC");
        assert_eq!(
            o(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC),
            "O_WRONLY|O_CREAT|O_TRUNC"
        );
        assert_eq!(
            o(libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_DIRECTORY),
            "O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY"
        );
        // From strace's output for Python's os.open with every flag.
        assert_eq!(
            o(libc::O_WRONLY
                | libc::O_CREAT
                | libc::O_EXCL
                | libc::O_NOCTTY
                | libc::O_TRUNC
                | libc::O_APPEND
                | libc::O_NONBLOCK
                | libc::O_DSYNC
                | libc::O_ASYNC
                | libc::O_NOFOLLOW
                | libc::O_NOATIME
                | libc::O_CLOEXEC
                | libc::O_SYNC
                | libc::O_DIRECT),
            "O_WRONLY|O_CREAT|O_EXCL|O_NOCTTY|O_TRUNC|O_APPEND|O_NONBLOCK|O_SYNC|O_DIRECT|\
             O_NOFOLLOW|O_NOATIME|O_CLOEXEC|FASYNC"
        );
        assert_eq!(
            o(libc::O_RDWR | libc::O_CLOEXEC | libc::O_TMPFILE),
            "O_RDWR|O_CLOEXEC|O_TMPFILE"
        );
        assert_eq!(
            o(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | 0x4000_0000),
            "O_RDONLY|O_CLOEXEC|O_PATH|O_DIRECTORY|0x40000000"
        );
        assert_eq!(flags(0, &PROT), "PROT_NONE");
        assert_eq!(
            flags((libc::PROT_READ | libc::PROT_EXEC) as u64, &PROT),
            "PROT_READ|PROT_EXEC"
        );
        assert_eq!(
            flags(
                (libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_DENYWRITE) as u64,
                &MAP_FLAGS
            ),
            "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE"
        );
        assert_eq!(flags(0, &ACCESS_MODE), "F_OK");
        assert_eq!(
            flags((libc::R_OK | libc::X_OK) as u64, &ACCESS_MODE),
            "R_OK|X_OK"
        );
        assert_eq!(
            clone_flags(
                (libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64
            ),
            "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
        );
        assert_eq!(clone_flags(0), "0");
        assert_eq!(
            statx_flags((libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT) as u64),
            "AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW|AT_NO_AUTOMOUNT"
        );
        assert_eq!(
            futex_op((libc::FUTEX_WAIT_BITSET | libc::FUTEX_CLOCK_REALTIME) as u64),
            "FUTEX_WAIT_BITSET|FUTEX_CLOCK_REALTIME"
        );
        assert_eq!(
            futex_op((libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as u64),
            "FUTEX_WAKE_PRIVATE"
        );
        assert_eq!(
            sock_type((libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64),
            "SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK"
        );
    }

    #[test]
    fn modes_signals_and_errors() {
        assert_eq!(mode_octal(0o644), "0644");
        assert_eq!(mode_octal(0), "000");
        assert_eq!(mode_octal(0o7), "007");
        assert_eq!(mode_octal(0o4755), "04755");
        assert_eq!(file_mode(libc::S_IFREG | 0o644), "S_IFREG|0644");
        assert_eq!(
            file_mode(libc::S_IFDIR | libc::S_ISVTX | 0o777),
            "S_IFDIR|S_ISVTX|0777"
        );

        assert_eq!(sigset(0), "[]");
        assert_eq!(sigset(u64::MAX), "~[]");
        assert_eq!(sigset(!(0b11u64 << 31)), "~[RTMIN RT_1]");
        assert_eq!(sigset(1 << (libc::SIGPIPE - 1)), "[PIPE]");
        assert_eq!(signame(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(signame(33), "SIGRT_1");
        assert_eq!(signal_arg(0), "0");

        assert_eq!(
            errno_text(libc::ENOENT),
            "-1 ENOENT (No such file or directory)"
        );
        assert_eq!(
            errno_text(libc::ENOTTY),
            "-1 ENOTTY (Inappropriate ioctl for device)"
        );
        assert_eq!(
            errno_text(512),
            "? ERESTARTSYS (To be restarted if SA_RESTART is set)"
        );

        let sig = SignalReport {
            signo: libc::SIGUSR1,
            code: libc::SI_TKILL,
            sender_pid: 4242,
            sender_uid: 1000,
            addr: 0,
            child: None,
        };
        assert_eq!(
            signal_line(&sig),
            "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=4242, si_uid=1000} ---"
        );
        let chld = SignalReport {
            signo: libc::SIGCHLD,
            code: libc::CLD_KILLED,
            sender_pid: 77,
            sender_uid: 0,
            addr: 0,
            child: Some(crate::event::ChildInfo {
                status: libc::SIGKILL,
                utime: 1,
                stime: 2,
            }),
        };
        assert_eq!(
            signal_line(&chld),
            "--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_KILLED, si_pid=77, si_uid=0, \
             si_status=SIGKILL, si_utime=1, si_stime=2} ---"
        );
        let segv = SignalReport {
            signo: libc::SIGSEGV,
            code: uapi::SEGV_MAPERR,
            sender_pid: 0,
            sender_uid: 0,
            addr: 0,
            child: None,
        };
        assert_eq!(
            signal_line(&segv),
            "--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL} ---"
        );
        assert_eq!(death_line(&ExitStatus::Exited(3)), "+++ exited with 3 +++");
        assert_eq!(
            death_line(&ExitStatus::Signaled {
                signo: libc::SIGSEGV,
                core_dumped: true
            }),
            "+++ killed by SIGSEGV (core dumped) +++"
        );
        assert_eq!(wait_status(0), "{WIFEXITED(s) && WEXITSTATUS(s) == 0}");
        assert_eq!(
            wait_status(libc::SIGKILL),
            "{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}"
        );
        assert_eq!(rlimit_value(8 << 20), "8192*1024");
        assert_eq!(rlimit_value(libc::RLIM64_INFINITY), "RLIM64_INFINITY");
    }

    #[test]
    fn results_align_at_column_40() {
        let mut l = "close(1)".to_string();
        finish(&mut l, "0");
        assert_eq!(l, format!("close(1){}= 0", " ".repeat(32)));
        let mut l = format!("access(\"{}\", F_OK)", "a".repeat(23));
        assert_eq!(l.len(), 39);
        finish(&mut l, "0");
        assert!(l.ends_with("F_OK) = 0"));
        let mut l = "x".repeat(60);
        finish(&mut l, "?");
        assert!(l.ends_with("x = ?"));
    }

    #[test]
    fn common_calls_decode_like_strace() {
        let mut mem = FakeMem::default()
            .map(0x1000, b"/etc/ld.so.cache\0")
            .map(0x2000, b"hi\n")
            .map(0x3000, b"abc");
        let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
        let fdcwd = libc::AT_FDCWD as u32 as u64;
        assert_eq!(
            call_line(&mut mem, "openat", &[fdcwd, 0x1000, flags], 3),
            "openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3"
        );
        assert_eq!(
            call_line(
                &mut mem,
                "openat",
                &[fdcwd, 0x1000, 0],
                -(libc::ENOENT as i64)
            ),
            "openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY) = -1 ENOENT (No such file or \
             directory)"
        );
        let creat = (libc::O_WRONLY | libc::O_CREAT) as u64;
        assert_eq!(
            call_line(&mut mem, "openat", &[fdcwd, 0x1000, creat, 0o666], 4),
            "openat(AT_FDCWD, \"/etc/ld.so.cache\", O_WRONLY|O_CREAT, 0666) = 4"
        );
        // Unreadable path: its address.
        assert_eq!(
            call_line(
                &mut mem,
                "openat",
                &[fdcwd, 0x7000, 0],
                -(libc::EFAULT as i64)
            ),
            "openat(AT_FDCWD, 0x7000, O_RDONLY)      = -1 EFAULT (Bad address)"
        );
        assert_eq!(
            call_line(&mut mem, "write", &[1, 0x2000, 3], 3),
            format!("write(1, \"hi\\n\", 3){}= 3", " ".repeat(21))
        );
        assert_eq!(
            call_line(&mut mem, "read", &[3, 0x3000, 4096], 3),
            format!("read(3, \"abc\", 4096){}= 3", " ".repeat(20))
        );
        // A failed read shows the buffer's address.
        assert_eq!(
            call_line(&mut mem, "read", &[3, 0x3000, 4096], -(libc::EBADF as i64)),
            format!(
                "read(3, 0x3000, 4096){}= -1 EBADF (Bad file descriptor)",
                " ".repeat(19)
            )
        );
        let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let map = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        assert_eq!(
            call_line(
                &mut mem,
                "mmap",
                &[0, 8192, prot, map, u64::MAX, 0],
                0x7f00_8189_0000
            ),
            "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = \
             0x7f0081890000"
        );
        // Undecoded arguments of a syscall outside the table: hex.
        let mut unknown = entry("getpid", &[]);
        unknown.nr = 500;
        let (mut r, lines) = recorder();
        r.on_entry(&mut mem, 100, &unknown);
        r.on_exit(&mut mem, 100, &exit(unknown, -(libc::ENOSYS as i64)));
        assert_eq!(
            lines.lock().unwrap()[0],
            "syscall_0x1f4(0, 0, 0, 0, 0, 0)         = -1 ENOSYS (Function not implemented)"
        );
    }

    #[test]
    fn execve_shows_argv_and_env_count() {
        let mut ptrs = Vec::new();
        for p in [0x1000u64, 0x1100, 0] {
            ptrs.extend_from_slice(&p.to_ne_bytes());
        }
        let mut env = Vec::new();
        for p in [0x1200u64, 0x1200, 0] {
            env.extend_from_slice(&p.to_ne_bytes());
        }
        let mut mem = FakeMem::default()
            .map(0x1000, b"/bin/echo\0")
            .map(0x1100, b"hi\0")
            .map(0x1200, b"A=1\0")
            .map(0x4000, &ptrs)
            .map(0x5000, &env);
        assert_eq!(
            call_line(&mut mem, "execve", &[0x1000, 0x4000, 0x5000], 0),
            "execve(\"/bin/echo\", [\"/bin/echo\", \"hi\"], 0x5000 /* 2 vars */) = 0"
        );
    }

    #[test]
    fn stat_struct_at_exit() {
        let mut st = vec![0u8; size_of::<libc::stat>()];
        let mode = (libc::S_IFREG | 0o644).to_ne_bytes();
        let m = offset_of!(libc::stat, st_mode);
        st[m..m + 4].copy_from_slice(&mode);
        let sz = offset_of!(libc::stat, st_size);
        st[sz..sz + 8].copy_from_slice(&33699i64.to_ne_bytes());
        let mut mem = FakeMem::default().map(0x1000, b"\0").map(0x2000, &st);
        assert_eq!(
            call_line(
                &mut mem,
                "newfstatat",
                &[3, 0x1000, 0x2000, libc::AT_EMPTY_PATH as u64],
                0
            ),
            "newfstatat(3, \"\", {st_mode=S_IFREG|0644, st_size=33699, ...}, AT_EMPTY_PATH) = 0"
        );
    }

    #[test]
    fn interleaved_tasks_use_unfinished_and_resumed() {
        let mut mem = FakeMem::default().map(0x3000, b"abc");
        let (mut r, lines) = recorder();
        let r = {
            r = r.follow(true);
            &mut r
        };
        r.on_clone(CloneKind::Fork);
        let read = entry("read", &[3, 0x3000, 4096]);
        let getpid = entry("getpid", &[]);
        r.on_entry(&mut mem, 100, &read);
        r.on_entry(&mut mem, 101, &getpid);
        r.on_exit(&mut mem, 101, &exit(getpid, 101));
        r.on_exit(&mut mem, 100, &exit(read, 3));
        let exit_group = entry("exit_group", &[0]);
        r.on_entry(&mut mem, 101, &exit_group);
        r.on_task_exit(101);
        r.on_death(101, &ExitStatus::Exited(0));
        let close = entry("close", &[3]);
        r.on_entry(&mut mem, 100, &close);
        r.on_exit(&mut mem, 100, &exit(close, 0));
        let lines = lines.lock().unwrap();
        assert_eq!(
            *lines,
            [
                "[pid   100] read(3,  <unfinished ...>".to_string(),
                format!("[pid   101] getpid(){}= 101", " ".repeat(20)),
                "[pid   100] <... read resumed>\"abc\", 4096) = 3".to_string(),
                format!("[pid   101] exit_group(0){}= ?", " ".repeat(15)),
                "[pid   101] +++ exited with 0 +++".to_string(),
                // One task left: no prefix, as strace.
                format!("close(3){}= 0", " ".repeat(32)),
            ]
        );
    }

    #[test]
    fn clone_tail_is_printed_at_exit() {
        let mut mem = FakeMem::default();
        let (r, lines) = recorder();
        let mut r = r.follow(true).pid_prefix(PidPrefix::Always);
        let fl = (libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64;
        let clone = entry("clone", &[fl, 0, 0, 0x7f00, 0]);
        r.on_entry(&mut mem, 100, &clone);
        r.on_clone(CloneKind::Fork);
        r.on_signal(
            101,
            &SignalReport {
                signo: libc::SIGSTOP,
                code: libc::SI_USER,
                sender_pid: 1,
                sender_uid: 0,
                addr: 0,
                child: None,
            },
        );
        r.on_exit(&mut mem, 100, &exit(clone, 101));
        let lines = lines.lock().unwrap();
        assert_eq!(
            *lines,
            [
                "100   clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|\
                 SIGCHLD <unfinished ...>",
                "101   --- SIGSTOP {si_signo=SIGSTOP, si_code=SI_USER, si_pid=1, si_uid=0} ---",
                "100   <... clone resumed>, child_tidptr=0x7f00) = 101",
            ]
        );
    }

    #[test]
    fn sigreturn_reads_the_saved_mask() {
        let sp = 0x8000u64;
        let at = sp + offset_of!(libc::ucontext_t, uc_sigmask) as u64;
        let mask = 1u64 << (libc::SIGUSR2 - 1);
        let mut mem = FakeMem::default().map(at, &mask.to_ne_bytes());
        mem.sp = Some(sp);
        assert_eq!(
            call_line(&mut mem, "rt_sigreturn", &[], 0),
            format!("rt_sigreturn({{mask=[USR2]}}){}= 0", " ".repeat(13))
        );
    }

    #[test]
    fn hostile_arguments_never_panic() {
        // Every table entry, with argument registers and return values a
        // tracee could pass, over memory that is partly mapped.
        let patterns = [0u64, 1, 0x1000, u64::MAX, u64::MAX - 7, 1 << 63];
        let rets = [0i64, 3, -(libc::EFAULT as i64), i64::MAX, -512];
        for spec in SPECS {
            for &a in &patterns {
                for &ret in &rets {
                    let mut mem = FakeMem::default().map(0x1000, &[0xff; 64]);
                    mem.sp = Some(u64::MAX - 3);
                    let _ = call_line(&mut mem, spec.name, &[a; 6], ret);
                }
            }
        }
    }

    #[test]
    fn table_covers_every_syscall_once() {
        let mut seen = std::collections::HashSet::new();
        for s in SPECS {
            assert!(
                crate::event::syscall_number(s.name).is_ok(),
                "{} is not a syscall",
                s.name
            );
            assert!(seen.insert(s.name), "{} listed twice", s.name);
            let registers = s.args.iter().filter(|a| !a.self_separated()).count();
            assert!(registers <= 6, "{} has too many arguments", s.name);
        }
        let missing: Vec<&str> = (0..crate::event::MAX_SYSCALL as u64)
            .filter_map(crate::event::syscall_name)
            .filter(|n| !seen.contains(n))
            .collect();
        assert!(missing.is_empty(), "no table entry for {missing:?}");
    }
}
