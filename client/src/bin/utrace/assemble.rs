//! strace lines from wire events.
//!
//! The server decodes each syscall in two halves: `SyscallEntry.text` is
//! `name(ARGS-KNOWN-AT-ENTRY` and `SyscallExit.text` is
//! `ARGS-KNOWN-AT-EXIT)`, with `SyscallExit.ret_text` the return value. This
//! module joins them into strace's lines exactly as the engine layer's
//! in-process recorder does (`engines/src/builtin/recorder/`): a line
//! starts at a call's entry and is printed at its exit; when another task's
//! line comes in between, the open one is ended with ` <unfinished ...>` and
//! its exit later printed as `<... NAME resumed>ARGS) = RET`. A task that
//! exits inside a call gets ` = ?`. Pid prefixes follow strace: `[pid N] `
//! while more than one task is traced, or `N ` on every line (`-f -o FILE`).

use std::collections::{BTreeSet, HashMap};

use utrace_client::pb;
use utrace_client::pb::event::Kind;

use crate::signals::{death_line, signal_line};
use crate::sysset::Status;

/// When lines get a pid prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidPrefix {
    /// `[pid  1234] ` while more than one task is traced (strace -f to stderr).
    WhenShared,
    /// `1234  ` on every line (strace -f -o FILE).
    Always,
    /// Never (strace -ff -o FILE: a file per thread).
    Never,
}

/// strace's `-t`, `-tt`, `-ttt`: the time printed at the start of a line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stamp {
    /// No time.
    #[default]
    None,
    /// `-t`: local time of day, seconds (`12:34:56 `).
    Seconds,
    /// `-tt`: local time of day, microseconds (`12:34:56.123456 `).
    Micros,
    /// `-ttt`: seconds since the epoch, microseconds (`1733400000.123456 `).
    Epoch,
}

impl Stamp {
    /// `-t` given `n` times.
    pub fn from_count(n: u8) -> Stamp {
        match n {
            0 => Stamp::None,
            1 => Stamp::Seconds,
            2 => Stamp::Micros,
            _ => Stamp::Epoch,
        }
    }

    /// The stamp for `ns` (CLOCK_REALTIME nanoseconds), with its trailing
    /// space; empty for [`Stamp::None`].
    fn format(self, ns: u64) -> String {
        let secs = (ns / 1_000_000_000) as i64;
        let micros = (ns % 1_000_000_000) / 1_000;
        let local = || {
            chrono::DateTime::from_timestamp(secs, 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|| "??:??:??".into())
        };
        match self {
            Stamp::None => String::new(),
            Stamp::Seconds => format!("{} ", local()),
            Stamp::Micros => format!("{}.{micros:06} ", local()),
            Stamp::Epoch => format!("{secs}.{micros:06} "),
        }
    }
}

/// What strace prints at the start of each line besides the pid and the
/// time of day: `-r`, `-n`, `-i`; and whether `+++ exited +++` lines are
/// printed at all (`-qq` leaves them out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leader {
    /// `-r`: the time since the previous line's start (`     0.000123 `;
    /// `(+     0.000123) ` after a time of day).
    pub relative: bool,
    /// `-n`: the thread's syscall number (`[ 257] `).
    pub numbers: bool,
    /// `-i`: the instruction pointer (`[00007f3e52697b1d] `; question
    /// marks where there is none, as for an exit).
    pub ip: bool,
    /// `+++ exited with N +++` and `+++ killed by SIG +++` lines.
    pub exits: bool,
}

impl Default for Leader {
    fn default() -> Self {
        Leader {
            relative: false,
            numbers: false,
            ip: false,
            exits: true,
        }
    }
}

/// strace's `-e signal=` and `-e status=`: what is shown (`None`: all).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub signals: Option<BTreeSet<i32>>,
    pub status: Option<BTreeSet<Status>>,
}

/// A line printed in part: a call's entry, its exit still to come.
struct OpenLine {
    tid: u32,
    text: String,
}

/// A call whose entry was seen and whose exit was not.
struct Pending {
    /// The syscall's name as the entry text shows it.
    name: String,
    /// The entry text ends where arguments known only at exit start.
    args_at_exit: bool,
    /// Its line was ended with ` <unfinished ...>`.
    interrupted: bool,
    /// When it entered (the report's time).
    entered_ns: u64,
    /// With a status filter: the whole start of its line (prefix, time and
    /// entry text), printed at its exit if its outcome is shown.
    head: Option<String>,
}

/// Turns a stream of events into strace lines, handed one at a time
/// (without a newline) to the caller's sink.
pub struct Assembler {
    prefix: PidPrefix,
    follow: bool,
    /// Tasks traced now (strace's `nprocs`): decides the `[pid N]` prefix.
    live: usize,
    open: Option<OpenLine>,
    pending: HashMap<u32, Pending>,
    /// `-t`/`-tt`/`-ttt`.
    stamp: Stamp,
    /// `-T`: each call's time in the kernel, entry to exit, at its end.
    durations: bool,
    /// The time of the event being handled.
    now_ns: u64,
    /// `-e signal=`, `-e status=`.
    filters: Filters,
    /// `-r`, `-n`, `-i`, `-qq`.
    leader: Leader,
    /// The start of the previous line (for `-r`; 0: none yet).
    last_line_ns: u64,
    /// The instruction pointer of the event being handled (for `-i`).
    ip: Option<u64>,
    /// Each thread's last syscall number (for `-n`).
    last_nr: HashMap<u32, u64>,
    /// The column results are aligned at (`-a`; strace's 40).
    column: usize,
    /// `-k`: the unwinder, and each thread's stack as its call's entry
    /// brought it, printed after the call's line.
    stacks: Option<crate::stack::Stacks>,
    stack_of: HashMap<u32, Vec<String>>,
}

impl Assembler {
    /// An assembler for a trace that starts with `initial_tasks` tasks;
    /// `follow`: child processes are traced too (they count as tasks).
    pub fn new(prefix: PidPrefix, follow: bool, initial_tasks: usize) -> Self {
        Assembler {
            prefix,
            follow,
            live: initial_tasks.max(1),
            open: None,
            pending: HashMap::new(),
            stamp: Stamp::None,
            durations: false,
            now_ns: 0,
            filters: Filters::default(),
            leader: Leader::default(),
            last_line_ns: 0,
            ip: None,
            last_nr: HashMap::new(),
            column: utrace_engines::builtin::recorder::RESULT_COLUMN,
            stacks: None,
            stack_of: HashMap::new(),
        }
    }

    /// With `on`, print each call's stack after its line (`-k`); events
    /// are expected to carry what [`crate::stack::expedite`] asks.
    pub fn with_stacks(mut self, on: bool) -> Self {
        self.stacks = on.then(crate::stack::Stacks::default);
        self
    }

    /// The stack of `tid`'s call, whose line was just printed.
    fn print_stack(&mut self, tid: u32, out: &mut dyn FnMut(&str)) {
        for line in self.stack_of.remove(&tid).unwrap_or_default() {
            out(&line);
        }
    }

    /// Align results at `column` (strace's `-a`).
    pub fn with_column(mut self, column: usize) -> Self {
        self.column = column;
        self
    }

    /// `n` more tasks are traced from now (another `-p`'s process).
    pub fn add_tasks(&mut self, n: usize) {
        self.live += n;
    }

    /// Print line leaders as `leader` says (`-r`, `-n`, `-i`, `-qq`).
    /// With `ip`, events are expected to carry `rip` expedited.
    pub fn with_leader(mut self, leader: Leader) -> Self {
        self.leader = leader;
        self
    }

    /// Show only the signals and the call outcomes `filters` name. With a
    /// status filter, a call's line is printed whole at its exit, as
    /// strace does (it must know the outcome first): lines are then in
    /// the order calls end.
    pub fn with_filters(mut self, filters: Filters) -> Self {
        self.filters = filters;
        self
    }

    fn shows(&self, s: Status) -> bool {
        self.filters
            .status
            .as_ref()
            .is_none_or(|set| set.contains(&s))
    }

    /// Print times as strace's `-t`/`-tt`/`-ttt` do, and with `durations`
    /// each call's time as `-T` does (` <0.000012>` after its result).
    pub fn with_times(mut self, stamp: Stamp, durations: bool) -> Self {
        self.stamp = stamp;
        self.durations = durations;
        self
    }

    /// Feed one event; finished lines go to `out`.
    pub fn event(&mut self, ev: &pb::Event, out: &mut dyn FnMut(&str)) {
        let tid = ev.tid;
        self.now_ns = ev.time_ns;
        // Kept only for the leaders that print them (with the embedded
        // server, this runs on the tracer thread at every report).
        if self.leader.ip {
            self.ip = ev
                .expedited
                .as_ref()
                .and_then(|x| x.registers.get("rip"))
                .copied();
        }
        if let (true, Some(Kind::SyscallEntry(e))) = (self.leader.numbers, &ev.kind) {
            self.last_nr.insert(tid, e.nr);
        }
        // -k: a call's stack, from its entry (kept once the entry has
        // closed the thread's previous call: printed at its exit, or after
        // the thread's death for one that never returns, exit_group).
        let mut entry_stack = None;
        if let Some(stacks) = &mut self.stacks {
            match (&ev.kind, &ev.expedited) {
                (Some(Kind::SyscallEntry(_)), Some(x)) => {
                    entry_stack = Some(stacks.lines(ev.pid, x));
                }
                (Some(Kind::SyscallExit(call)), x) => {
                    // Only the exit reported (the trace asks for no
                    // entries): the registers and the stack above rsp are
                    // the entry's still, the call being a leaf of the
                    // program's.
                    if let (Some(x), false) = (x, self.stack_of.contains_key(&tid)) {
                        self.stack_of.insert(tid, stacks.lines(ev.pid, x));
                    }
                    // The process's mappings changed: read them again.
                    if changes_maps(call.nr) {
                        stacks.forget(ev.pid);
                    }
                }
                (Some(Kind::Exec(_)), _) => stacks.forget(ev.pid),
                // Its maps go with the process (a -f tree may run
                // thousands).
                (Some(Kind::Death(d)), _) if d.process_gone => stacks.forget(ev.pid),
                _ => {}
            }
        }
        match &ev.kind {
            Some(Kind::SyscallEntry(e)) => {
                self.on_entry(tid, e, out);
                if let Some(stack) = entry_stack {
                    self.stack_of.insert(tid, stack);
                }
            }
            Some(Kind::SyscallExit(x)) => self.on_exit(tid, x, out),
            Some(Kind::Signal(s))
                if self
                    .filters
                    .signals
                    .as_ref()
                    .is_some_and(|set| !set.contains(&s.signo)) => {}
            Some(Kind::Signal(s)) => {
                self.interrupt_open(out);
                let line = format!("{}{}", self.prefix_for(tid), signal_line(s));
                out(&line);
                // -k: where the signal found the thread, as strace shows.
                if let (Some(stacks), Some(x)) = (&mut self.stacks, &ev.expedited) {
                    for l in stacks.lines(ev.pid, x) {
                        out(&l);
                    }
                }
            }
            Some(Kind::GroupStop(g)) => {
                self.interrupt_open(out);
                let line = format!("{}--- stopped by {} ---", self.prefix_for(tid), g.name);
                out(&line);
            }
            Some(Kind::Clone(c)) => {
                if c.kind == "thread" || self.follow {
                    self.live += 1;
                }
            }
            Some(Kind::Exec(x)) => {
                self.on_exec(tid, x.former_tid, out);
                if x.left {
                    self.on_left(tid, out);
                }
            }
            Some(Kind::Exit(_)) => self.on_task_exit(tid, out),
            Some(Kind::Death(d)) => self.on_death(tid, d.status.as_ref(), out),
            Some(Kind::Revoked(r)) => {
                // The process runs on, no longer traced by us (it exec'd a
                // program we may not trace): its calls in progress never end.
                self.interrupt_open(out);
                self.pending.remove(&tid);
                let line = format!(
                    "{}+++ no longer traced: {} +++",
                    self.prefix_for(ev.pid),
                    r.reason
                );
                out(&line);
                self.live = self.live.saturating_sub(1);
            }
            // The program's own output is written by the caller.
            Some(Kind::Attached(_))
            | Some(Kind::Breakpoint(_))
            | Some(Kind::Watchpoint(_))
            | Some(Kind::Step(_))
            | Some(Kind::Output(_))
            | Some(Kind::ChildStart(_))
            | None => {}
        }
    }

    /// The trace ended (detached, or the stream was cut): print the open
    /// line with `suffix` (strace prints ` <detached ...>`).
    pub fn finish(&mut self, suffix: &str, out: &mut dyn FnMut(&str)) {
        if let Some(open) = self.open.take() {
            out(&format!("{}{suffix}", open.text));
        }
        if self.filters.status.is_some() {
            // Calls in progress: detached (strace's wording), shown if asked.
            let status = if suffix.contains("detached") {
                Status::Detached
            } else {
                Status::Unfinished
            };
            if self.shows(status) {
                let mut heads: Vec<(u32, String)> = self
                    .pending
                    .iter()
                    .filter_map(|(t, p)| Some((*t, p.head.clone()?)))
                    .collect();
                heads.sort();
                for (_, head) in heads {
                    out(&format!("{head}{suffix}"));
                }
            }
        }
        self.pending.clear();
    }

    /// The start of a line of `tid`'s: its pid, the times, the syscall
    /// number and the instruction pointer, as strace's leader.
    fn prefix_for(&mut self, tid: u32) -> String {
        let mut out = match self.prefix {
            PidPrefix::WhenShared if self.live > 1 => format!("[pid {tid:>5}] "),
            PidPrefix::WhenShared => String::new(),
            PidPrefix::Always => format!("{tid:<5} "),
            PidPrefix::Never => String::new(),
        };
        out.push_str(&self.stamp.format(self.now_ns));
        if self.leader.relative {
            let since = match self.last_line_ns {
                0 => 0,
                last => self.now_ns.saturating_sub(last),
            };
            self.last_line_ns = self.now_ns;
            let (s, us) = (since / 1_000_000_000, (since % 1_000_000_000) / 1_000);
            if self.stamp == Stamp::None {
                out.push_str(&format!("{s:>6}.{us:06} "));
            } else {
                out.push_str(&format!("(+{s:>6}.{us:06}) "));
            }
        }
        if self.leader.numbers {
            if let Some(nr) = self.last_nr.get(&tid) {
                out.push_str(&format!("[{nr:>4}] "));
            }
        }
        if self.leader.ip {
            match self.ip {
                Some(ip) => out.push_str(&format!("[{ip:016x}] ")),
                None => out.push_str("[????????????????] "),
            }
        }
        out
    }

    /// End the open line (if any) with ` <unfinished ...>`.
    fn interrupt_open(&mut self, out: &mut dyn FnMut(&str)) {
        if let Some(open) = self.open.take() {
            out(&format!("{} <unfinished ...>", open.text));
            if let Some(p) = self.pending.get_mut(&open.tid) {
                p.interrupted = true;
            }
        }
    }

    /// The start of the line finishing `tid`'s pending call: its open line
    /// if nothing came in between, else `<... NAME resumed>`.
    fn resume_head(&mut self, tid: u32, p: &Pending, out: &mut dyn FnMut(&str)) -> String {
        if !p.interrupted {
            if let Some(open) = self.open.take_if(|o| o.tid == tid) {
                return open.text;
            }
        }
        self.interrupt_open(out);
        format!("{}<... {} resumed>", self.prefix_for(tid), p.name)
    }

    /// Drop `tid`'s pending call; if its line is open, print it unfinished.
    fn abandon(&mut self, tid: u32, out: &mut dyn FnMut(&str)) {
        self.stack_of.remove(&tid);
        if self.pending.remove(&tid).is_some() {
            if let Some(open) = self.open.take_if(|o| o.tid == tid) {
                out(&format!("{} <unfinished ...>", open.text));
            }
        }
    }

    fn on_entry(&mut self, tid: u32, e: &pb::SyscallEntry, out: &mut dyn FnMut(&str)) {
        // An entry without the previous call's exit: leave the old line
        // unfinished.
        self.abandon(tid, out);
        self.interrupt_open(out);
        let text = if e.text.is_empty() {
            // Not decoded (an older server): the name at least.
            format!("{}(", call_name(&e.name, e.nr))
        } else {
            e.text.clone()
        };
        let name = text.split('(').next().unwrap_or_default().to_string();
        let line = format!("{}{text}", self.prefix_for(tid));
        let filtered = self.filters.status.is_some();
        self.pending.insert(
            tid,
            Pending {
                name,
                args_at_exit: text.ends_with(", "),
                interrupted: false,
                entered_ns: self.now_ns,
                head: filtered.then(|| line.clone()),
            },
        );
        if !filtered {
            self.open = Some(OpenLine { tid, text: line });
        }
    }

    fn on_exit(&mut self, tid: u32, x: &pb::SyscallExit, out: &mut dyn FnMut(&str)) {
        let name = call_name(&x.name, x.nr);
        let text = x.text.as_str();
        let mut entered = None;
        if self.filters.status.is_some() {
            let status = if x.is_error {
                Status::Failed
            } else if x.ret_text == "?" {
                Status::Unavailable
            } else {
                Status::Successful
            };
            if !self.shows(status) {
                self.pending.remove(&tid);
                return;
            }
        }
        let mut line = match self.pending.remove(&tid) {
            Some(Pending {
                head: Some(head),
                entered_ns,
                ..
            }) => {
                entered = Some(entered_ns);
                head
            }
            Some(p) => {
                entered = Some(p.entered_ns);
                self.resume_head(tid, &p, out)
            }
            None => {
                self.interrupt_open(out);
                // The server sends the whole call when it saw no entry; a
                // tail means the entry report was lost on the way.
                if text.starts_with(&format!("{name}(")) {
                    self.prefix_for(tid)
                } else {
                    format!("{}<... {name} resumed>", self.prefix_for(tid))
                }
            }
        };
        line.push_str(text);
        if text.is_empty() {
            line.push(')');
        }
        let ret = if x.ret_text.is_empty() {
            x.ret.to_string()
        } else {
            x.ret_text.clone()
        };
        finish_at(&mut line, &ret, self.column);
        if self.durations {
            // strace -T: the time between entry and exit (unknown without
            // the entry: strace prints what it has, we print nothing).
            if let Some(t) = entered {
                let ns = self.now_ns.saturating_sub(t);
                line.push_str(&format!(
                    " <{}.{:06}>",
                    ns / 1_000_000_000,
                    (ns % 1_000_000_000) / 1_000
                ));
            }
        }
        out(&line);
        self.print_stack(tid, out);
    }

    fn on_exec(&mut self, tid: u32, former: u32, out: &mut dyn FnMut(&str)) {
        if former == tid || former == 0 {
            return;
        }
        // A non-leader thread exec'd and took over the leader's id: the old
        // leader is gone without a death report.
        self.live = self.live.saturating_sub(1);
        // The server's decoder follows the move too: the exit's text is
        // the tail of the call printed under the former id.
        if let Some(p) = self.pending.remove(&former) {
            self.pending.insert(tid, p);
        }
        if let Some(open) = self.open.as_mut().filter(|o| o.tid == former) {
            open.tid = tid;
        }
        self.interrupt_open(out);
        let line = format!(
            "{}+++ superseded by execve in pid {former} +++",
            self.prefix_for(tid)
        );
        out(&line);
    }

    /// The engine left `tid`'s process at its exec (`-b execve`): the
    /// execve it is inside is never seen to return; strace ends its line
    /// with ` <detached ...>`.
    fn on_left(&mut self, tid: u32, out: &mut dyn FnMut(&str)) {
        const LEFT: &str = " <detached ...>";
        if let Some(open) = self.open.take_if(|o| o.tid == tid) {
            self.pending.remove(&tid);
            out(&format!("{}{LEFT}", open.text));
        } else if let Some(head) = self.pending.remove(&tid).and_then(|p| p.head) {
            // Held back for a status filter: its outcome is "detached".
            if self.shows(Status::Detached) {
                self.interrupt_open(out);
                out(&format!("{head}{LEFT}"));
            }
        }
        // A line already ended ` <unfinished ...>` gets nothing more (as
        // in strace).
        self.live = self.live.saturating_sub(1);
    }

    /// The task is about to exit: a call it is inside never returns.
    fn on_task_exit(&mut self, tid: u32, out: &mut dyn FnMut(&str)) {
        if self.filters.status.is_some() && !self.shows(Status::Unfinished) {
            self.pending.remove(&tid);
            return;
        }
        if let Some(p) = self.pending.remove(&tid) {
            if let Some(head) = p.head {
                let mut line = head;
                if p.args_at_exit {
                    line.push_str(" <unfinished ...>");
                }
                line.push(')');
                finish_at(&mut line, "?", self.column);
                out(&line);
                return;
            }
            let mut line = self.resume_head(tid, &p, out);
            if p.args_at_exit {
                line.push_str(" <unfinished ...>");
            }
            line.push(')');
            finish_at(&mut line, "?", self.column);
            out(&line);
            // -k: its stack follows the thread's exit line (on_death).
        }
    }

    fn on_death(&mut self, tid: u32, status: Option<&pb::ExitStatus>, out: &mut dyn FnMut(&str)) {
        // -k: the stack of the call the thread ended in (exit_group), after
        // the exit line, as strace prints it.
        let stack = self.stack_of.remove(&tid);
        self.abandon(tid, out);
        self.interrupt_open(out);
        if self.leader.exits {
            let line = format!("{}{}", self.prefix_for(tid), death_line(status));
            out(&line);
        }
        for line in stack.unwrap_or_default() {
            out(&line);
        }
        self.live = self.live.saturating_sub(1);
        self.last_nr.remove(&tid);
    }
}

/// A syscall's name, or `syscall_0x1ff` for a number without one.
pub fn call_name(name: &str, nr: u64) -> String {
    if name.is_empty() {
        format!("syscall_{nr:#x}")
    } else {
        name.to_string()
    }
}

// Pads a line to strace's result column and appends `= RET`.
use utrace_engines::builtin::recorder::finish_at;

/// Whether x86-64 syscall `nr` maps or unmaps memory (mmap, munmap,
/// mremap, remap_file_pages, execve, execveat, shmat, shmdt): `-k` reads
/// the process's maps again after one.
fn changes_maps(nr: u64) -> bool {
    matches!(nr, 9 | 11 | 25 | 30 | 59 | 67 | 216 | 322)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tid: u32, kind: Kind) -> pb::Event {
        pb::Event {
            pid: tid,
            tid,
            kind: Some(kind),
            ..Default::default()
        }
    }

    fn entry(tid: u32, name: &str, text: &str) -> pb::Event {
        ev(
            tid,
            Kind::SyscallEntry(pb::SyscallEntry {
                name: name.into(),
                text: text.into(),
                ..Default::default()
            }),
        )
    }

    fn exit(tid: u32, name: &str, text: &str, ret: &str) -> pb::Event {
        ev(
            tid,
            Kind::SyscallExit(pb::SyscallExit {
                name: name.into(),
                text: text.into(),
                ret_text: ret.into(),
                ..Default::default()
            }),
        )
    }

    fn death(tid: u32, code: i32, gone: bool) -> pb::Event {
        ev(
            tid,
            Kind::Death(pb::Death {
                status: Some(pb::ExitStatus {
                    code,
                    signal: 0,
                    core_dumped: false,
                }),
                process_gone: gone,
            }),
        )
    }

    fn run(a: &mut Assembler, events: &[pb::Event]) -> Vec<String> {
        let mut lines = Vec::new();
        for e in events {
            a.event(e, &mut |l| lines.push(l.to_string()));
        }
        lines
    }

    #[test]
    fn single_task_lines() {
        let mut a = Assembler::new(PidPrefix::WhenShared, false, 1);
        let lines = run(
            &mut a,
            &[
                entry(100, "write", "write(1, \"hi\\n\", 3"),
                exit(100, "write", ")", "3"),
                entry(100, "read", "read(3, "),
                exit(100, "read", "\"abc\", 4096)", "3"),
                entry(100, "exit_group", "exit_group(0"),
                ev(100, Kind::Exit(pb::Exit { status: None })),
                death(100, 0, true),
            ],
        );
        assert_eq!(
            lines,
            [
                format!("write(1, \"hi\\n\", 3){}= 3", " ".repeat(21)),
                format!("read(3, \"abc\", 4096){}= 3", " ".repeat(20)),
                format!("exit_group(0){}= ?", " ".repeat(27)),
                "+++ exited with 0 +++".to_string(),
            ]
        );
    }

    #[test]
    fn interleaved_tasks_use_unfinished_and_resumed() {
        // The recorder's own test, replayed through wire events.
        let mut a = Assembler::new(PidPrefix::WhenShared, true, 1);
        let lines = run(
            &mut a,
            &[
                ev(
                    100,
                    Kind::Clone(pb::Clone {
                        child_tid: 101,
                        child_pid: 101,
                        kind: "fork".into(),
                    }),
                ),
                entry(100, "read", "read(3, "),
                entry(101, "getpid", "getpid("),
                exit(101, "getpid", ")", "101"),
                exit(100, "read", "\"abc\", 4096)", "3"),
                entry(101, "exit_group", "exit_group(0"),
                ev(101, Kind::Exit(pb::Exit { status: None })),
                death(101, 0, true),
                entry(100, "close", "close(3"),
                exit(100, "close", ")", "0"),
            ],
        );
        assert_eq!(
            lines,
            [
                "[pid   100] read(3,  <unfinished ...>".to_string(),
                format!("[pid   101] getpid(){}= 101", " ".repeat(20)),
                "[pid   100] <... read resumed>\"abc\", 4096) = 3".to_string(),
                format!("[pid   101] exit_group(0){}= ?", " ".repeat(15)),
                "[pid   101] +++ exited with 0 +++".to_string(),
                format!("close(3){}= 0", " ".repeat(32)),
            ]
        );
    }

    #[test]
    fn always_prefix_and_signal_between() {
        let mut a = Assembler::new(PidPrefix::Always, true, 1);
        let lines = run(
            &mut a,
            &[
                entry(
                    100,
                    "clone",
                    "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD",
                ),
                ev(
                    100,
                    Kind::Clone(pb::Clone {
                        child_tid: 101,
                        child_pid: 101,
                        kind: "fork".into(),
                    }),
                ),
                ev(
                    101,
                    Kind::Signal(pb::Signal {
                        signo: 19,
                        name: "SIGSTOP".into(),
                        code: 0,
                        sender_pid: 1,
                        addr: 0,
                        ..Default::default()
                    }),
                ),
                exit(100, "clone", ", child_tidptr=0x7f00)", "101"),
            ],
        );
        assert_eq!(
            lines,
            [
                "100   clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|\
                 SIGCHLD <unfinished ...>",
                "101   --- SIGSTOP {si_signo=SIGSTOP, si_code=SI_USER, si_pid=1, si_uid=0} ---",
                "100   <... clone resumed>, child_tidptr=0x7f00) = 101",
            ]
        );
    }

    #[test]
    fn exit_without_entry_and_death_inside_a_call() {
        let mut a = Assembler::new(PidPrefix::WhenShared, false, 1);
        let lines = run(
            &mut a,
            &[
                // The server sends the whole call for an exit whose entry it
                // did not see; a lost entry leaves only the tail.
                exit(100, "getpid", "getpid()", "100"),
                exit(100, "read", "\"x\", 1)", "1"),
                entry(100, "read", "read(0, "),
                ev(100, Kind::Exit(pb::Exit { status: None })),
            ],
        );
        assert_eq!(
            lines,
            [
                format!("getpid(){}= 100", " ".repeat(32)),
                format!("<... read resumed>\"x\", 1){}= 1", " ".repeat(15)),
                format!("read(0,  <unfinished ...>){}= ?", " ".repeat(14)),
            ]
        );
    }

    #[test]
    fn superseded_leader_and_detach() {
        let mut a = Assembler::new(PidPrefix::WhenShared, false, 2);
        let lines = run(
            &mut a,
            &[
                entry(
                    101,
                    "execve",
                    "execve(\"/bin/true\", [\"true\"], 0x1 /* 1 var */",
                ),
                ev(
                    100,
                    Kind::Exec(pb::Exec {
                        former_tid: 101,
                        exe: "/bin/true".into(),
                        left: false,
                        startup: false,
                    }),
                ),
                // The server follows the move: the exit completes the call.
                exit(100, "execve", ")", "0"),
                entry(100, "pause", "pause("),
            ],
        );
        let mut rest = Vec::new();
        a.finish(" <detached ...>", &mut |l| rest.push(l.to_string()));
        assert_eq!(
            lines,
            [
                "[pid   101] execve(\"/bin/true\", [\"true\"], 0x1 /* 1 var */ <unfinished ...>"
                    .to_string(),
                "+++ superseded by execve in pid 101 +++".to_string(),
                "<... execve resumed>)                   = 0".to_string(),
            ]
        );
        assert_eq!(rest, ["pause( <detached ...>"]);
    }
}
