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

use crate::engine::{Action, Engine, SignalAction};
use crate::event::{
    CloneKind, CloneReport, EventMask, ExecReport, ExitReport, ExitStatus, SignalReport,
    SyscallEntry, SyscallExit,
};
use crate::sys::Tid;
use crate::task::Task;

mod decode;
mod details;
mod format;
mod names;
mod signals;
mod sockets;
mod structs;
mod table;
#[cfg(test)]
mod tests;

pub use decode::{Hex, Watched};
pub use format::Xlat;
pub use signals::{death_line, signal_line, signame};

use decode::{decode_entry, decode_exit, entry_socklen, format_return, lookup, Ctx, Tracee};
use details::Details;
use table::{Spec, UNKNOWN};

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
    /// Per task: the last call it entered (for `restart_syscall`).
    last: HashMap<Tid, &'static str>,
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
    /// Its `socklen_t` at entry (see `decode::entry_socklen`).
    saved_len: Option<u32>,
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
            last: HashMap::new(),
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
            limit: self.limit,
            ..Ctx::new(mem, call.args, None)
        };
        let saved_len = entry_socklen(spec, &mut ctx);
        let (mut args, exit_from, need_sep) = decode_entry(spec, &mut ctx);
        if spec.name == "restart_syscall" {
            args = resuming(self.last.get(&tid).copied());
        }
        self.last.insert(tid, spec.name);
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
                saved_len,
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
            limit: self.limit,
            saved_len: pending.saved_len,
            ..Ctx::new(mem, call.entry.args, Some((call.ret, call.is_error)))
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
        self.last.remove(&tid);
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
    /// Each thread's open call: its spec, where its exit's arguments
    /// start, whether they need a separator, its saved `socklen_t`, and
    /// whether it touched a watched path.
    pending: HashMap<Tid, (&'static Spec, usize, bool, Option<u32>, bool)>,
    /// The last call each thread entered (for `restart_syscall`).
    last: HashMap<Tid, &'static str>,
    /// Bytes of strings and buffers shown before `...` (strace's `-s`).
    limit: usize,
    /// Descriptors with what they refer to (strace's `-y`).
    fd_paths: bool,
    /// Strings in hex (strace's `-x`, `-xx`).
    hex: Hex,
    /// strace's `-P`: only calls touching these paths are shown.
    watch: Option<Watched>,
    /// strace's `-X`: constants as names, numbers or both.
    xlat: Xlat,
    /// strace's `-yy`: sockets, devices and pidfds described.
    details: Option<Details>,
    /// strace's `-v`: structures and environments in full.
    verbose: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            pending: HashMap::new(),
            last: HashMap::new(),
            limit: DEFAULT_STRING_LIMIT,
            fd_paths: false,
            hex: Hex::Never,
            watch: None,
            xlat: Xlat::Abbrev,
            details: None,
            verbose: false,
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
    /// Shown: no paths are watched, or the call touched one
    /// ([`Decoder::with_paths`]).
    pub shown: bool,
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

    /// Show each descriptor argument and returned descriptor with what it
    /// refers to, `3</etc/passwd>`, `4<socket:[1234]>` (strace's `-y`): read
    /// from `/proc/TID/fd` at the stop (an argument at the call's entry,
    /// before a `close` takes it; a new descriptor at the exit).
    pub fn with_fd_paths(mut self, on: bool) -> Self {
        self.fd_paths = on;
        self
    }

    /// Descriptors with their paths ([`Decoder::with_fd_paths`]) and also
    /// what sockets, devices and pidfds are (strace's `-yy`):
    /// `5<TCP:[127.0.0.1:40069->127.0.0.1:57306]>`,
    /// `3</dev/null<char 1:3>>`, `4<pid:1234>`.
    pub fn with_fd_details(mut self, on: bool) -> Self {
        self.details = on.then(Details::default);
        self.fd_paths |= on;
        self
    }

    /// Structures and environments in full (strace's `-v`): `execve`'s
    /// environment, every field of `stat` and `statx` (times with their
    /// dates), directory entries, `uname`'s every field.
    pub fn with_verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }

    /// Show strings in `\x` hex as `hex` says (strace's `-x`, `-xx`).
    pub fn with_hex(mut self, hex: Hex) -> Self {
        self.hex = hex;
        self
    }

    /// Show only the calls that touch one of `paths` (strace's `-P`): a
    /// path argument that is one of them, byte for byte, or a descriptor
    /// argument that refers to one (its `/proc/TID/fd` link, at the stop).
    /// No paths: every call.
    pub fn with_paths(mut self, paths: Vec<Vec<u8>>) -> Self {
        self.watch = (!paths.is_empty()).then(|| paths.into());
        self
    }

    /// Print named constants as `style` says (strace's `-X`).
    pub fn with_xlat(mut self, style: Xlat) -> Self {
        self.xlat = style;
        self
    }

    /// Whether `tid`'s open call is shown (see [`Decoder::with_paths`]),
    /// as its entry tells.
    pub fn shown(&self, tid: Tid) -> bool {
        self.watch.is_none() || self.pending.get(&tid).is_some_and(|p| p.4)
    }

    /// The entry part of `call`'s text.
    pub fn entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> String {
        let (name, spec) = lookup(call);
        let tid = task.tid();
        let _style = format::XlatScope::new(self.xlat);
        let mut ctx = Ctx {
            limit: self.limit,
            fd_paths: self.fd_paths,
            hex: self.hex,
            watch: self.watch.clone(),
            details: self.details.as_mut(),
            verbose: self.verbose,
            ..Ctx::new(task, call.args, None)
        };
        let saved = entry_socklen(spec, &mut ctx);
        let (mut args, from, sep) = decode_entry(spec, &mut ctx);
        let matched = ctx.matched;
        if spec.name == "restart_syscall" {
            args = resuming(self.last.get(&tid).copied());
        }
        self.last.insert(tid, spec.name);
        self.pending.insert(tid, (spec, from, sep, saved, matched));
        format!("{name}({args}")
    }

    /// The exit part of the call whose entry this thread reported last.
    pub fn exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> DecodedExit {
        let tid = task.tid();
        let (head, (spec, from, sep, saved, matched)) = match self.pending.remove(&tid) {
            Some(p) => (String::new(), p),
            None => {
                let head = self.entry(task, &call.entry);
                let p = self
                    .pending
                    .remove(&tid)
                    .unwrap_or((&UNKNOWN, 0, false, None, false));
                (head, p)
            }
        };
        let _style = format::XlatScope::new(self.xlat);
        let mut ctx = Ctx {
            limit: self.limit,
            fd_paths: self.fd_paths,
            hex: self.hex,
            saved_len: saved,
            details: self.details.as_mut(),
            verbose: self.verbose,
            ..Ctx::new(task, call.entry.args, Some((call.ret, call.is_error)))
        };
        let mut args = head;
        args.push_str(&decode_exit(spec, &mut ctx, from, sep));
        args.push(')');
        let ret = format_return(spec, call, &mut ctx);
        DecodedExit {
            args,
            ret,
            // As strace: decided by the arguments at the call's entry.
            shown: self.watch.is_none() || matched,
        }
    }

    /// Forget a thread's open call (it exited inside it).
    pub fn forget(&mut self, tid: Tid) {
        self.pending.remove(&tid);
        self.last.remove(&tid);
    }

    /// A non-leader thread exec'd and took over the leader's tid: its open
    /// call (the execve) continues under `to`.
    pub fn rekey(&mut self, from: Tid, to: Tid) {
        if let Some(p) = self.pending.remove(&from) {
            self.pending.insert(to, p);
        }
        if let Some(l) = self.last.remove(&from) {
            self.last.insert(to, l);
        }
    }
}

/// `restart_syscall`'s text, as strace prints it: the call the thread
/// entered before it (the one the kernel restarts), or `read` when none
/// was seen (strace's default: syscall 0, on x86_64 `read`, as after an
/// attach to a thread asleep).
fn resuming(prev: Option<&str>) -> String {
    format!("<... resuming interrupted {} ...>", prev.unwrap_or("read"))
}

/// Pad `line` (which ends with `)`) to the result column and append `= RET`.
pub fn finish(line: &mut String, ret: &str) {
    finish_at(line, ret, RESULT_COLUMN);
}

/// [`finish`] with the result at `column` (strace's `-a COLUMN`).
pub fn finish_at(line: &mut String, ret: &str, column: usize) {
    line.push(' ');
    let width = line.chars().count();
    if width < column {
        line.extend(std::iter::repeat_n(' ', column - width));
    }
    line.push_str("= ");
    line.push_str(ret);
}
