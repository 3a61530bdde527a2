//! The `trace` command line: strace's options in strace's syntax, parsed
//! and checked into [`trace::Options`].

use std::path::PathBuf;

use clap::Args;

use crate::{assemble, inject, sysset, trace};

/// The `trace` command line: strace's options, in strace's syntax (joined
/// values such as `-p1234`, `-etrace=openat`, `-o/tmp/x`, and the long
/// forms). Options end at the program's name: what follows is the
/// program's own. strace options utrace does not implement yet are
/// refused by name (exit 1), never taken for the program.
#[derive(Args, Debug)]
#[command(override_usage = "utrace trace [OPTIONS] (-p PID | [--] CMD [ARGS]...)")]
pub struct TraceCmd {
    /// Follow child processes (fork, vfork, clone); threads are always
    /// followed. `-ff` with `-o FILE`: each thread's trace in `FILE.TID`
    /// (without `-o`, as `-f`).
    #[arg(short = 'f', long = "follow-forks", action = clap::ArgAction::Count)]
    follow: u8,
    /// Detach from a process when it reaches SYSCALL (`execve` only, as in
    /// strace): at each exec but the program's first, the line ends with
    /// ` <detached ...>` and the process runs its new program untraced
    /// (with -f, the rest of the tree is still traced).
    #[arg(short = 'b', long = "detach-on", value_name = "SYSCALL")]
    detach_on: Option<String>,
    /// strace's qualifiers. `trace=SET` (or just `SET`): only these
    /// syscalls; a SET is `[!]VALUE,…` of names, numbers, classes (`%file`,
    /// `%net`, `%process`, `%%stat`…), `/REGEX`, `all`, `none`, `?VALUE`.
    /// `signal=SET`: only these signals are shown. `status=SET`: only
    /// calls that were `successful`, `failed`, `unfinished`,
    /// `unavailable` or `detached`. The last of each wins, as in strace.
    /// Tampering, as strace: `inject=SET:ACTION…[:when=FIRST[..LAST][+[STEP]]]`
    /// with `error=ERRNO` or `retval=V`, `signal=SIG`, `delay_enter=D`,
    /// `delay_exit=D`; `fault=SET[:error=ERRNO][:when=…]` (ENOSYS by
    /// default).
    #[arg(short = 'e', value_name = "EXPR", value_parser = parse_expr)]
    exprs: Vec<TraceExpr>,
    /// `--trace=SET`: the same as `-e trace=SET`.
    #[arg(long = "trace", value_name = "SET", value_parser = parse_trace_set)]
    trace_sets: Vec<TraceExpr>,
    /// Count time, calls and errors per syscall and print strace's summary
    /// table at the end, instead of lines.
    #[arg(short = 'c', long = "summary-only")]
    count: bool,
    /// Write the trace (or the table) to FILE instead of stderr; with -f,
    /// each line starts with its thread id.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Attach to this running process (all its threads) instead of starting
    /// one; Ctrl-C detaches and leaves it running. Repeatable, and a list
    /// (`-p 12,34`, `-p "12 34"`, as strace takes `-p "$(pidof x)"`).
    #[arg(
        short = 'p',
        long = "attach",
        value_name = "PID",
        conflicts_with = "command",
        action = clap::ArgAction::Append
    )]
    pid: Vec<String>,
    /// The column results (`= RET`) are aligned at (strace's default: 40).
    #[arg(short = 'a', long = "columns", value_name = "COLUMN")]
    columns: Option<usize>,
    /// Bytes of each string and buffer shown before `...` (strace's
    /// default: 32; at most 65536). Paths are always shown whole.
    #[arg(short = 's', long = "string-limit", value_name = "N")]
    string_limit: Option<u32>,
    /// Time of day at the start of each line: `-t` seconds, `-tt`
    /// microseconds, `-ttt` seconds since the epoch (as strace).
    #[arg(short = 't', action = clap::ArgAction::Count)]
    timestamps: u8,
    /// Each call's time between its entry and exit, after its result
    /// (`<0.000012>`), as strace's `-T`.
    #[arg(short = 'T', long = "syscall-times")]
    syscall_times: bool,
    /// Only calls that returned without an error (`-e status=successful`).
    #[arg(short = 'z', long = "successful-only")]
    successful_only: bool,
    /// Only calls that returned an error (`-e status=failed`).
    #[arg(short = 'Z', long = "failed-only")]
    failed_only: bool,
    /// `-x`: strings with non-ASCII bytes in `\x` hex; `-xx`: every
    /// string, paths included.
    #[arg(short = 'x', action = clap::ArgAction::Count)]
    hex: u8,
    /// `-y`: descriptors with the paths they refer to,
    /// `read(3</etc/passwd>, …)`; `-yy`: also what sockets, devices and
    /// pidfds are, `5<TCP:[127.0.0.1:40069->127.0.0.1:57306]>`,
    /// `3</dev/null<char 1:3>>`, `4<pid:1234>`.
    #[arg(short = 'y', long = "decode-fds", action = clap::ArgAction::Count)]
    fd_paths: u8,
    /// Structures and environments in full: `execve`'s environment, every
    /// field of `stat` and `statx` (times with their dates), directory
    /// entries, `uname`.
    #[arg(short = 'v', long = "no-abbrev")]
    verbose: bool,
    /// Each line's time since the previous line's start (`-r`; after the
    /// time of day with `-t`).
    #[arg(short = 'r', long = "relative-timestamps")]
    relative: bool,
    /// The syscall number before each call (`[ 257] openat(…)`).
    #[arg(short = 'n', long = "syscall-number")]
    numbers: bool,
    /// The instruction pointer at each call and signal.
    #[arg(short = 'i', long = "instruction-pointer")]
    ip: bool,
    /// After each call, the stack it was made from (frames from the
    /// call-frame information of the process's files, named by their
    /// symbols), as strace -k prints it.
    #[arg(short = 'k', long = "stack-trace")]
    stack: bool,
    /// Only the calls that touch PATH: a path argument that is it, or a
    /// descriptor argument that refers to it (repeatable).
    #[arg(short = 'P', long = "trace-path", value_name = "PATH")]
    trace_paths: Vec<std::path::PathBuf>,
    /// How named constants are printed: `abbrev` (names, the default),
    /// `raw` (numbers) or `verbose` (both).
    #[arg(short = 'X', long = "const-print-style", value_name = "FORMAT")]
    xlat: Option<String>,
    /// `-q`: no attach and detach messages; `-qq`: no `+++ exited +++`
    /// lines either.
    #[arg(short = 'q', long = "quiet", action = clap::ArgAction::Count)]
    quiet: u8,
    /// `VAR=VAL`: put it in the program's environment; `VAR`: remove it.
    #[arg(short = 'E', long = "env", value_name = "VAR[=VAL]")]
    env: Vec<String>,
    /// With -c or -C: the table's columns, in order (time-percent,
    /// total-time, min-time, max-time, avg-time, calls, errors, name; the
    /// name is added last if missing), as strace -U.
    #[arg(short = 'U', long = "summary-columns", value_name = "COLUMNS")]
    summary_columns: Option<String>,
    /// Run the program as USER (a name or a number): its uid, its primary
    /// group and its groups from the user database, as strace -u (needs
    /// CAP_SETUID and CAP_SETGID, e.g. root).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    /// Like -c, and print the lines too.
    #[arg(short = 'C', long = "summary")]
    summary: bool,
    /// With -c or -C: times are wall-clock time from each call's entry
    /// to its exit (the default is the system time each call took, as
    /// strace's).
    #[arg(short = 'w', long = "summary-wall-clock")]
    wall_clock: bool,
    /// With -c or -C: sort the table by `time` (the default), `min-time`,
    /// `max-time`, `avg-time`, `calls`, `errors`, `name` or `nothing`.
    #[arg(short = 'S', long = "summary-sort-by", value_name = "KEY")]
    sort_by: Option<String>,
    #[command(flatten)]
    not_yet: NotYet,
    /// Reports the server may queue for this trace before it holds the
    /// program until utrace has read them (or, with --lossy, drops the
    /// newest) (0: the server's default). Default: 65536 with an embedded
    /// server, the daemon's default otherwise.
    #[arg(long, value_name = "N")]
    queue_len: Option<u32>,
    /// Never slow the program: when the server's queue for this trace is
    /// full, it drops reports (counted, and said at the end) instead of
    /// holding the program until utrace has read them, as strace would.
    #[arg(long)]
    lossy: bool,
    /// The program to start and its arguments.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        required_unless_present = "pid"
    )]
    command: Vec<String>,
}

/// strace options that `utrace trace` parses, as strace does, but does
/// not implement yet: given one, it says so by name and exits 1 (rather
/// than take it for the program, or silently ignore it).
#[derive(Args, Debug)]
struct NotYet {
    #[arg(short = 'D', long = "daemonize", action = clap::ArgAction::Count, hide = true)]
    d: u8,
    #[arg(short = 'I', long = "interruptible", value_name = "WHEN", hide = true)]
    big_i: Option<String>,
}

impl NotYet {
    /// The first option given that is not implemented yet, by its short
    /// name.
    fn first(&self) -> Option<&'static str> {
        let given: [(&'static str, bool); 2] = [("-D", self.d > 0), ("-I", self.big_i.is_some())];
        given.iter().find(|(_, on)| *on).map(|(n, _)| *n)
    }
}

/// One `-e` expression (strace's qualifiers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceExpr {
    /// `trace=SET`: `None` for every syscall.
    Trace(Option<std::collections::BTreeSet<u64>>),
    /// `inject=SET:…` or `fault=SET:…`.
    Inject(inject::Rule),
    /// `signal=SET`: the signals shown (`None`: all).
    Signal(Option<std::collections::BTreeSet<i32>>),
    /// `status=SET`: the calls shown by outcome (`None`: all).
    Status(Option<std::collections::BTreeSet<sysset::Status>>),
    /// `quiet=SET`: 1 no attach and detach messages (`-q`), 2 no exit
    /// lines either (`-qq`); 0 both shown.
    Quiet(u8),
    /// `decode-fds=SET`: 0 numbers only, 1 paths (`-y`), 2 and sockets,
    /// devices and pidfds (`-yy`).
    DecodeFds(u8),
    /// `abbrev=none` (`-v`: structures and environments whole), or
    /// `abbrev=all` (the default).
    Verbose(bool),
    /// `verbose=all`: structures dereferenced, the default (strace's
    /// `verbose=none`, pointers only, is not supported).
    Dereference,
}

/// `-e QUALIFIER=SET` as strace reads it (`trace=` when there is no
/// qualifier): `trace`, `signal`/`signals`, `status`, `inject`, `fault`.
pub fn parse_expr(expr: &str) -> Result<TraceExpr, String> {
    let (qualifier, set) = match expr.split_once('=') {
        Some((q, set)) => (q, set),
        None => ("trace", expr),
    };
    match qualifier {
        "trace" | "t" => sysset::syscalls(set).map(TraceExpr::Trace),
        "inject" => inject::parse(set, false).map(TraceExpr::Inject),
        "fault" => inject::parse(set, true).map(TraceExpr::Inject),
        "signal" | "signals" | "s" => sysset::signals(set).map(TraceExpr::Signal),
        "status" => sysset::statuses(set).map(TraceExpr::Status),
        "quiet" | "silent" | "silence" | "q" => quiet_set(set).map(TraceExpr::Quiet),
        "decode-fds" | "decode-fd" => decode_fds_set(set).map(TraceExpr::DecodeFds),
        // strace's -v is abbrev=none; verbose= is whether structures are
        // dereferenced at all (all, the default).
        "abbrev" | "a" => all_or_none(qualifier, set).map(|a| TraceExpr::Verbose(!a)),
        "verbose" | "v" => match all_or_none(qualifier, set)? {
            true => Ok(TraceExpr::Dereference),
            false => Err(format!(
                "-e {qualifier}={set}: structures printed as bare pointers are not supported \
                 by utrace yet (issue 14); verbose=all is the default"
            )),
        },
        "raw" | "x" | "read" | "reads" | "r" | "write" | "writes" | "w" | "decode-pids"
        | "decode-pid" | "kvm" | "trace-fds" | "trace-fd" | "fd" | "fds" => Err(format!(
            "strace's -e {qualifier}= is not supported by utrace yet (issue 14); \
             trace=, signal=, status=, inject=, fault=, quiet=, decode-fds=, verbose= and \
             abbrev= are"
        )),
        _ => Err(format!(
            "unknown qualifier {qualifier:?}: -e takes trace=, signal=, status=, inject=, \
             fault= (and strace's others)"
        )),
    }
}

/// The items of a `-e` set (`a,b`), with strace's `!` negation flag.
fn set_items(set: &str) -> (bool, Vec<&str>) {
    let (negated, set) = match set.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, set),
    };
    (negated, set.split(',').map(str::trim).collect())
}

/// `quiet=`: strace's message classes. `attach` is `-q`'s, `exit` the
/// `+++ exited +++` lines (`-qq`); the rest are messages utrace never
/// prints (accepted, as strace's).
fn quiet_set(set: &str) -> Result<u8, String> {
    let (negated, items) = set_items(set);
    let mut level = 0u8;
    for item in items {
        match item {
            "all" => level |= 3,
            "none" => {}
            "attach" => level |= 1,
            "exit" | "exits" => level |= 2,
            "path-resolution" | "personality" | "thread-execve" | "superseded" => {}
            other => {
                return Err(format!(
                    "-e quiet={set}: {other:?} is not one of strace's: attach, exit, \
                     path-resolution, personality, thread-execve, superseded, all, none"
                ))
            }
        }
    }
    Ok(if negated { 3 & !level } else { level })
}

/// `decode-fds=`: `path` is `-y`; `socket`, `dev` and `pidfd` are shown
/// together, with the paths (`-yy`).
fn decode_fds_set(set: &str) -> Result<u8, String> {
    let (negated, items) = set_items(set);
    let mut level = 0u8;
    for item in items {
        match item {
            "none" => {}
            "path" => level = level.max(1),
            "all" | "socket" | "dev" | "pidfd" => level = 2,
            other => {
                return Err(format!(
                    "-e decode-fds={set}: {other:?} is not one of path, socket, dev, pidfd, \
                     all, none"
                ))
            }
        }
    }
    Ok(match (negated, level) {
        (false, l) => l,
        (true, 0) => 2,
        (true, _) => 0,
    })
}

/// `verbose=` and `abbrev=`: for every syscall or none (strace's per-call
/// sets are not kept apart).
fn all_or_none(qualifier: &str, set: &str) -> Result<bool, String> {
    match set {
        "all" | "!none" => Ok(true),
        "none" | "!all" => Ok(false),
        other => Err(format!(
            "-e {qualifier}={other}: utrace takes all or none here (strace's per-syscall \
             sets are not supported)"
        )),
    }
}

/// `--trace=SET`.
fn parse_trace_set(set: &str) -> Result<TraceExpr, String> {
    parse_expr(&format!("trace={set}"))
}

/// The syscalls the `-e trace=` expressions select: the last one wins, as
/// in strace. `(names, none)`, where empty names mean every syscall unless
/// `none` (an empty set: `trace=none`, `trace=!all`).
pub fn selected_syscalls(exprs: &[TraceExpr]) -> (Vec<String>, bool) {
    let last = exprs.iter().rev().find_map(|e| match e {
        TraceExpr::Trace(set) => Some(set),
        _ => None,
    });
    match last {
        None | Some(None) => (Vec::new(), false),
        Some(Some(set)) if set.is_empty() => (Vec::new(), true),
        Some(Some(set)) => (sysset::names(set), false),
    }
}

/// The last `signal=` and `status=` (as strace: the last wins).
pub fn selected_filters(
    exprs: &[TraceExpr],
) -> (
    Option<std::collections::BTreeSet<i32>>,
    Option<std::collections::BTreeSet<sysset::Status>>,
) {
    let signals = exprs.iter().rev().find_map(|e| match e {
        TraceExpr::Signal(s) => Some(s.clone()),
        _ => None,
    });
    let status = exprs.iter().rev().find_map(|e| match e {
        TraceExpr::Status(s) => Some(s.clone()),
        _ => None,
    });
    (signals.flatten(), status.flatten())
}

/// The pids of `-p` values: each a pid or a list of them, separated by
/// commas or white space, as strace takes them; each once.
fn pids(values: &[String]) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for v in values {
        for p in v.split(|c: char| c == ',' || c.is_whitespace()) {
            if p.is_empty() {
                continue;
            }
            match p.parse::<u32>() {
                Ok(n) if n > 0 => {
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
                _ => return Err(format!("trace: -p {v:?}: {p:?} is not a process id")),
            }
        }
    }
    Ok(out)
}

impl TraceCmd {
    /// The options `trace::run` takes; an option utrace does not support
    /// yet is refused by name.
    pub fn into_options(self) -> Result<trace::Options, String> {
        let mut t = self;

        if let Some(opt) = t.not_yet.first() {
            return Err(format!(
                "trace: strace's {opt} is not supported by utrace yet (issue 14); \
                     `utrace trace --help` lists what is"
            ));
        }
        // `--trace=SET` counts as a last `-e trace=SET`.
        t.exprs.append(&mut t.trace_sets);
        let inject = t
            .exprs
            .iter()
            .filter_map(|e| match e {
                TraceExpr::Inject(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let (syscalls, no_syscalls) = selected_syscalls(&t.exprs);
        // What is kept quiet: bit 0 attach and detach messages (-q), bit
        // 1 exit lines (-qq sets both).
        let mut quiet = match t.quiet {
            0 => 0u8,
            1 => 1,
            _ => 3,
        };
        // quiet=, decode-fds=, verbose=/abbrev=: as the options they spell
        // (the last of each wins, as in strace).
        for e in &t.exprs {
            match e {
                TraceExpr::Quiet(q) => quiet = *q,
                TraceExpr::DecodeFds(level) => t.fd_paths = *level,
                TraceExpr::Verbose(v) => t.verbose = *v,
                _ => {}
            }
        }
        let (signals, mut status) = selected_filters(&t.exprs);
        // -z, -Z: strace's status=successful, status=failed.
        if t.successful_only || t.failed_only {
            let mut s = std::collections::BTreeSet::new();
            if t.successful_only {
                s.insert(sysset::Status::Successful);
            }
            if t.failed_only {
                s.insert(sysset::Status::Failed);
            }
            status = Some(s);
        }
        let sort_by = match &t.sort_by {
            None => utrace_engines::builtin::counter::SortBy::Time,
            Some(k) => utrace_engines::builtin::counter::SortBy::parse(k).ok_or_else(|| {
                format!(
                    "trace: -S {k}: sort by time, min-time, max-time, avg-time, calls, \
                     errors, name or nothing"
                )
            })?,
        };
        let detach_on_exec = match t.detach_on.as_deref() {
            None => false,
            Some("execve") => true,
            Some(other) => {
                return Err(format!(
                    "trace: -b {other}: only execve is supported (as in strace)"
                ))
            }
        };
        let run_as = match &t.user {
            Some(_) if !t.pid.is_empty() => {
                return Err("trace: -u USER applies to a program utrace starts, not to -p".into())
            }
            Some(u) => Some(run_as(u)?),
            None => None,
        };
        let columns = match &t.summary_columns {
            None => utrace_engines::builtin::counter::Column::DEFAULT.to_vec(),
            Some(list) => list
                .split(',')
                .map(|c| {
                    utrace_engines::builtin::counter::Column::parse(c).ok_or_else(|| {
                        format!(
                            "trace: -U {c}: unknown column name; time-percent, total-time, \
                             min-time, max-time, avg-time, calls, errors or name"
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(trace::Options {
            node: None,
            run_as,
            columns,
            follow: t.follow > 0,
            detach_on_exec,
            // strace -ff: with -o, a file per thread (FILE.TID); without,
            // what -f does.
            per_thread: t.follow > 1 && t.output.is_some(),
            syscalls,
            no_syscalls,
            count: t.count && !t.summary,
            summary: t.summary,
            sort_by,
            leader: assemble::Leader {
                relative: t.relative,
                numbers: t.numbers,
                ip: t.ip,
                exits: quiet & 2 == 0,
            },
            quiet: quiet & 1 != 0,
            stack: t.stack,
            wall_clock: t.wall_clock,
            xlat: match t.xlat.as_deref() {
                None | Some("abbrev") => 0,
                Some("raw") => 1,
                Some("verbose") => 2,
                Some(other) => {
                    return Err(format!(
                        "trace: -X {other}: the styles are raw, abbrev and verbose"
                    ))
                }
            },
            // As strace: each path as given, and resolved if that differs.
            trace_paths: t
                .trace_paths
                .iter()
                .flat_map(|p| {
                    use std::os::unix::ffi::OsStrExt;
                    let given = p.as_os_str().as_bytes().to_vec();
                    let real = std::fs::canonicalize(p)
                        .ok()
                        .map(|r| r.as_os_str().as_bytes().to_vec())
                        .filter(|r| *r != given);
                    std::iter::once(given).chain(real)
                })
                .collect(),
            fd_paths: t.fd_paths > 0,
            fd_details: t.fd_paths > 1,
            verbose: t.verbose,
            hex: u32::from(t.hex.min(2)),
            env: t.env.clone(),
            output: t.output,
            pids: pids(&t.pid)?,
            column: t
                .columns
                .unwrap_or(utrace_engines::builtin::recorder::RESULT_COLUMN),
            command: t.command,
            queue_len: t.queue_len,
            lossy: t.lossy,
            inject,
            string_limit: t.string_limit,
            stamp: assemble::Stamp::from_count(t.timestamps),
            durations: t.syscall_times,
            signals,
            status,
        })
    }
}

/// strace -u's user: a name or a uid, with its primary group and its
/// groups from the user database.
fn run_as(user: &str) -> Result<utrace_client::pb::RunAs, String> {
    use nix::unistd::{Uid, User};
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    }
    .map_err(|e| format!("trace: -u {user}: reading the user database: {e}"))?;
    let Some(u) = found else {
        return Err(format!("trace: -u {user}: no such user"));
    };
    let name = std::ffi::CString::new(u.name.clone())
        .map_err(|_| format!("trace: -u {user}: a user name with a NUL byte"))?;
    let groups = nix::unistd::getgrouplist(&name, u.gid)
        .map_err(|e| format!("trace: -u {user}: its groups: {e}"))?;
    Ok(utrace_client::pb::RunAs {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups: groups.iter().map(|g| g.as_raw()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    #[test]
    fn trace_expressions() {
        let nr = |n: &str| utrace_engines::syscall_number(n).expect("a syscall");
        let set = |v: &[&str]| TraceExpr::Trace(Some(v.iter().map(|n| nr(n)).collect()));
        assert_eq!(
            parse_expr("trace=openat,read"),
            Ok(set(&["openat", "read"]))
        );
        assert_eq!(parse_expr("openat"), Ok(set(&["openat"])));
        assert_eq!(parse_expr("trace=all"), Ok(TraceExpr::Trace(None)));
        assert_eq!(
            parse_expr("none"),
            Ok(TraceExpr::Trace(Some(Default::default())))
        );
        let Ok(TraceExpr::Trace(Some(file))) = parse_expr("trace=%file") else {
            panic!("a class");
        };
        assert!(file.contains(&nr("openat")));
        let Ok(TraceExpr::Trace(Some(not_open))) = parse_expr("trace=!open") else {
            panic!("a negation");
        };
        assert!(!not_open.contains(&nr("open")) && not_open.contains(&nr("read")));
        assert_eq!(
            parse_expr("signal=SIGINT"),
            Ok(TraceExpr::Signal(Some([2].into())))
        );
        assert_eq!(
            parse_expr("status=failed"),
            Ok(TraceExpr::Status(Some([sysset::Status::Failed].into())))
        );
        assert!(matches!(
            parse_expr("fault=openat"),
            Ok(TraceExpr::Inject(_))
        ));
        assert!(parse_expr("trace=").is_err());
        assert!(parse_expr("trace=nosuchcall").is_err());
        assert!(parse_expr("write=1")
            .unwrap_err()
            .contains("not supported by utrace yet"));
        assert_eq!(parse_expr("verbose=all"), Ok(TraceExpr::Dereference));
        assert!(parse_expr("verbose=none").is_err());
        assert_eq!(parse_expr("abbrev=none"), Ok(TraceExpr::Verbose(true)));
        assert_eq!(parse_expr("abbrev=all"), Ok(TraceExpr::Verbose(false)));
        assert!(parse_expr("abbrev=execve")
            .unwrap_err()
            .contains("all or none"));
        assert_eq!(parse_expr("quiet=attach"), Ok(TraceExpr::Quiet(1)));
        assert_eq!(parse_expr("quiet=attach,exit"), Ok(TraceExpr::Quiet(3)));
        assert_eq!(parse_expr("quiet=!attach"), Ok(TraceExpr::Quiet(2)));
        assert_eq!(parse_expr("q=personality"), Ok(TraceExpr::Quiet(0)));
        assert!(parse_expr("quiet=bogus")
            .unwrap_err()
            .contains("attach, exit"));
        assert_eq!(parse_expr("decode-fds=path"), Ok(TraceExpr::DecodeFds(1)));
        assert_eq!(parse_expr("decode-fds=all"), Ok(TraceExpr::DecodeFds(2)));
        assert_eq!(
            parse_expr("decode-fds=path,socket"),
            Ok(TraceExpr::DecodeFds(2))
        );
        assert_eq!(parse_expr("decode-fds=none"), Ok(TraceExpr::DecodeFds(0)));
        assert!(parse_expr("decode-fds=x").is_err());
        assert!(parse_expr("bogus=1")
            .unwrap_err()
            .contains("unknown qualifier"));
        // The last trace= wins, as in strace.
        let none = TraceExpr::Trace(Some(Default::default()));
        assert_eq!(
            selected_syscalls(&[set(&["read"]), none.clone(), set(&["write"])]),
            (vec!["write".to_string()], false)
        );
        assert_eq!(
            selected_syscalls(&[set(&["read"]), none.clone()]),
            (vec![], true)
        );
        assert_eq!(selected_syscalls(&[none]), (vec![], true));
        assert_eq!(
            selected_syscalls(&[set(&["read"]), TraceExpr::Trace(None)]),
            (vec![], false)
        );
        assert_eq!(selected_syscalls(&[]), (vec![], false));
    }

    #[test]
    fn trace_command_lines() {
        let cli = Cli::try_parse_from([
            "utrace",
            "trace",
            "-f",
            "-e",
            "trace=openat",
            "--",
            "ls",
            "-l",
        ])
        .map_err(|e| e.to_string());
        let Ok(Cli {
            command: Command::Trace(t),
            ..
        }) = cli
        else {
            panic!("{cli:?}");
        };
        assert_eq!(t.follow, 1);
        assert_eq!(t.command, ["ls", "-l"]);
        // Without `--`, the program's own options stay its own.
        let cli =
            Cli::try_parse_from(["utrace", "trace", "ls", "-l", "-f"]).map_err(|e| e.to_string());
        let Ok(Cli {
            command: Command::Trace(t),
            ..
        }) = cli
        else {
            panic!("{cli:?}");
        };
        assert_eq!(t.follow, 0);
        assert_eq!(t.command, ["ls", "-l", "-f"]);
        // strace's joined and long forms.
        let names = |v: &[&str]| {
            TraceExpr::Trace(Some(
                v.iter()
                    .map(|n| utrace_engines::syscall_number(n).expect("a syscall"))
                    .collect(),
            ))
        };
        let parse = |v: &[&str]| match Cli::try_parse_from(v) {
            Ok(Cli {
                command: Command::Trace(t),
                ..
            }) => t,
            other => panic!("{v:?}: {other:?}"),
        };
        let t = parse(&["utrace", "trace", "-p1234"]);
        assert_eq!(pids(&t.pid), Ok(vec![1234]));
        let t = parse(&["utrace", "trace", "-etrace=openat", "-o/tmp/x", "cat", "-n"]);
        assert_eq!(t.exprs, vec![names(&["openat"])]);
        assert_eq!(t.output.as_deref(), Some(std::path::Path::new("/tmp/x")));
        assert_eq!(t.command, ["cat", "-n"]);
        let t = parse(&[
            "utrace",
            "trace",
            "--trace=read",
            "--output=/tmp/y",
            "-ff",
            "ls",
        ]);
        assert_eq!(t.trace_sets, vec![names(&["read"])]);
        assert_eq!(t.follow, 2);
        // Options strace has and utrace does not yet: parsed, then refused
        // by name (not taken for the program).
        // They set what their options set, the last one winning.
        let o = parse(&[
            "utrace",
            "trace",
            "-e",
            "decode-fds=all",
            "-e",
            "abbrev=none",
            "ls",
        ])
        .into_options()
        .expect("options");
        assert!(o.fd_paths && o.fd_details && o.verbose);
        let o = parse(&[
            "utrace",
            "trace",
            "-v",
            "-e",
            "abbrev=all",
            "-e",
            "quiet=all",
            "ls",
        ])
        .into_options()
        .expect("options");
        assert!(!o.verbose && o.quiet && !o.leader.exits);
        let o = parse(&["utrace", "trace", "-qq", "ls"])
            .into_options()
            .expect("options");
        assert!(o.quiet && !o.leader.exits);
        let t = parse(&["utrace", "trace", "-s200", "-D", "-tt", "--", "ls"]);
        assert_eq!(t.string_limit, Some(200));
        assert_eq!(t.not_yet.first(), Some("-D"));
        assert_eq!(t.timestamps, 2);
        assert_eq!(t.command, ["ls"]);
        let t = parse(&["utrace", "trace", "-yT", "ls"]);
        assert!(t.syscall_times);
        assert_eq!(t.fd_paths, 1);
        assert_eq!(t.not_yet.first(), None);
        let t = parse(&["utrace", "trace", "-vT", "ls"]);
        assert!(t.verbose && t.syscall_times);
        let t = parse(&["utrace", "trace", "-xx", "ls"]);
        assert_eq!(t.hex, 2);
        let t = parse(&["utrace", "trace", "-yy", "ls"]);
        let o = t.into_options().expect("-yy");
        assert!(o.fd_paths && o.fd_details);
        let t = parse(&["utrace", "trace", "-zZ", "-esignal=!SIGCHLD", "ls"]);
        assert!(t.successful_only && t.failed_only);
        assert_eq!(t.not_yet.first(), None);
        // An option nobody has is a usage error, not a program name.
        assert!(Cli::try_parse_from(["utrace", "trace", "-Q", "ls"]).is_err());
        assert!(Cli::try_parse_from(["utrace", "trace"]).is_err());
        assert!(Cli::try_parse_from(["utrace", "trace", "-p", "1", "--", "ls"]).is_err());
        assert!(Cli::try_parse_from(["utrace", "trace", "-p", "1"]).is_ok());
        let t = parse(&["utrace", "trace", "-p", "12,34", "-p56", "-p", "78 12"]);
        assert_eq!(pids(&t.pid), Ok(vec![12, 34, 56, 78]));
        assert!(pids(&["12,x".to_string()]).is_err_and(|e| e.contains("\"x\" is not a process id")));
        assert!(pids(&["0".to_string()]).is_err());
    }
}
