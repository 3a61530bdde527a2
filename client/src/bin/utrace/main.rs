//! `utrace`: the command-line client of utraced.
//!
//! ```text
//! utrace [--server URI] trace [-f] [-t|-tt|-ttt] [-T] [-e trace=NAME,…] [-e inject=SET:error=ERRNO[:when=N[+STEP]]] [-c] [-o FILE] (-p PID | [--] CMD ARGS…)
//! utrace [--server URI] ps [PID]
//! utrace [--server URI] info [--json]
//! utrace [--server URI] batch -p PID [--tid TID] [--stop-on-error] [FILE|-]
//! utrace [--server URI] mem read -p PID ADDR LEN [--hex|--raw]
//! utrace [--server URI] mem write -p PID ADDR HEXBYTES
//! utrace [--server URI] regs -p PID [NAME…]
//! utrace [--server URI] regs set -p PID NAME=VALUE…
//! utrace [--server URI] gdb (--stdio | --listen ADDR) (-p PID | [--] CMD ARGS…)
//! utrace [--server URI] probe [-f text|json] (-e PROGRAM | FILE) (-p PID | -c 'CMD ARGS' | [--] CMD ARGS…)
//! utrace completions SHELL
//! ```
//!
//! `trace` prints what `strace` prints, through one `Trace` call. The server
//! is the one `--server` or `UTRACE_SERVER` names; else the utraced daemon on
//! the default socket if one listens there; else a server started inside
//! this process, so `utrace trace -- ls` works with no daemon at all.
//!
//! `batch`, `mem` and `regs` attach a fresh engine to `-p PID` for the one
//! command, run their ops as one `Batch` with `interrupt` (the thread is
//! stopped for it and let go after) and detach: engines live as long as
//! their connection, so an engine id would be useless across commands.
//!
//! Exit status: `trace` leaves with the traced program's (128 + the signal
//! that killed it), as strace; 0 after `-p` (detached with Ctrl-C or the
//! process ended); `probe` leaves with 0, as bpftrace; 1 when the server
//! refuses or fails (the message names the field and the fix), or when an
//! op of `batch`, `mem` or `regs` failed (its code and message on stderr);
//! 2 on a usage error (a `batch` input that is not a JSON array of ops, or
//! a `probe` program that does not compile, included). Logs
//! (`RUST_LOG=debug`) go to stderr.

#[macro_use]
mod exit;
mod assemble;
mod batch;
mod brk;
mod gdb;
mod inject;
mod mem;
mod probe;
mod regs;
mod server;
mod show;
mod signals;
mod stdio;
mod sysset;
mod trace;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::server::Connection;

/// utrace: strace, and more, over the shared tracer utraced.
#[derive(Parser, Debug)]
#[command(name = "utrace", version, propagate_version = true)]
struct Cli {
    /// The server: unix:///PATH/utraced.sock, https://HOST:PORT (with
    /// --tls-ca, --tls-cert, --tls-key) or http://127.0.0.1:PORT. Default:
    /// the utraced daemon on its default socket if one listens there, else a
    /// server started inside this command.
    #[arg(long, global = true, env = "UTRACE_SERVER", value_name = "URI")]
    server: Option<String>,
    /// For an https:// server: the CA certificate that signed it (PEM).
    #[arg(long, global = true, env = "UTRACE_TLS_CA", value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// For an https:// server: your certificate (PEM), which the server maps
    /// to the user you act as.
    #[arg(long, global = true, env = "UTRACE_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<std::path::PathBuf>,
    /// For an https:// server: your private key (PEM).
    #[arg(long, global = true, env = "UTRACE_TLS_KEY", value_name = "FILE")]
    tls_key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Trace a program or a process, strace-style.
    Trace(Box<TraceCmd>),
    /// List the traced threads, their state and their engines.
    Ps {
        /// Only this process.
        pid: Option<u32>,
    },
    /// Versions, kernel facts, capabilities, and what you may trace: the
    /// first thing to attach to a bug report.
    Info {
        /// One JSON object instead of `key: value` lines.
        #[arg(long)]
        json: bool,
    },
    /// Run operations (memory, registers, syscall, control…) on a process
    /// in one round trip: a JSON array of ops in, a JSON array of results
    /// out.
    Batch(batch::BatchCmd),
    /// Read or write a process's memory.
    Mem {
        #[command(subcommand)]
        cmd: mem::MemCmd,
    },
    /// Print a thread's registers, or set them (`regs set`).
    Regs(regs::RegsCmd),
    /// Insert a software breakpoint, report its hits, remove it.
    Break(brk::BreakCmd),
    /// Serve gdb or lldb (GDB remote protocol) for a process, alongside
    /// whatever else traces it.
    Gdb(gdb::GdbCmd),
    /// Probe a process bpftrace-style: uprobes and syscalls, with maps
    /// (count, sum, hist…) kept by the server and printf events, printed
    /// as bpftrace prints them.
    Probe(probe::ProbeCmd),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The `trace` command line: strace's options, in strace's syntax (joined
/// values such as `-p1234`, `-etrace=openat`, `-o/tmp/x`, and the long
/// forms). Options end at the program's name: what follows is the
/// program's own. strace options utrace does not implement yet are
/// refused by name (exit 1), never taken for the program.
#[derive(Args, Debug)]
#[command(override_usage = "utrace trace [OPTIONS] (-p PID | [--] CMD [ARGS]...)")]
struct TraceCmd {
    /// Follow child processes (fork, vfork, clone); threads are always
    /// followed. (`-ff`, a file per process, is not supported yet.)
    #[arg(short = 'f', long = "follow-forks", action = clap::ArgAction::Count)]
    follow: u8,
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
    /// one; Ctrl-C detaches and leaves it running.
    #[arg(
        short = 'p',
        long = "attach",
        value_name = "PID",
        conflicts_with = "command"
    )]
    pid: Option<u32>,
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
    #[arg(short = 'v', long = "no-abbrev", action = clap::ArgAction::Count, hide = true)]
    v: u8,
    #[arg(short = 'x', action = clap::ArgAction::Count, hide = true)]
    x: u8,
    #[arg(short = 'y', action = clap::ArgAction::Count, hide = true)]
    y: u8,
    #[arg(short = 'r', hide = true)]
    r: bool,
    #[arg(short = 'k', long = "stack-trace", hide = true)]
    k: bool,
    #[arg(short = 'i', long = "instruction-pointer", hide = true)]
    i: bool,
    #[arg(short = 'n', long = "syscall-number", hide = true)]
    n: bool,
    #[arg(short = 'q', long = "quiet", action = clap::ArgAction::Count, hide = true)]
    q: u8,
    #[arg(short = 'u', long = "user", value_name = "USER", hide = true)]
    u: Option<String>,
    #[arg(short = 'E', long = "env", value_name = "VAR", hide = true)]
    env: Vec<String>,
    #[arg(short = 'b', long = "detach-on", value_name = "SYSCALL", hide = true)]
    b: Option<String>,
    #[arg(short = 'a', long = "columns", value_name = "N", hide = true)]
    a: Option<String>,
    #[arg(short = 'w', long = "summary-wall-clock", hide = true)]
    w: bool,
    #[arg(short = 'S', long = "summary-sort-by", value_name = "KEY", hide = true)]
    big_s: Option<String>,
    #[arg(short = 'C', long = "summary", hide = true)]
    big_c: bool,
    #[arg(short = 'D', long = "daemonize", action = clap::ArgAction::Count, hide = true)]
    d: u8,
    #[arg(short = 'I', long = "interruptible", value_name = "WHEN", hide = true)]
    big_i: Option<String>,
    #[arg(
        short = 'X',
        long = "const-print-style",
        value_name = "FORMAT",
        hide = true
    )]
    big_x: Option<String>,
    #[arg(short = 'P', long = "trace-path", value_name = "PATH", hide = true)]
    big_p: Vec<String>,
    #[arg(
        short = 'U',
        long = "summary-columns",
        value_name = "COLUMNS",
        hide = true
    )]
    big_u: Option<String>,
}

impl NotYet {
    /// The first option given that is not implemented yet, by its short
    /// name.
    fn first(&self) -> Option<&'static str> {
        let given: [(&'static str, bool); 20] = [
            ("-v", self.v > 0),
            ("-x", self.x > 0),
            ("-y", self.y > 0),
            ("-r", self.r),
            ("-k", self.k),
            ("-i", self.i),
            ("-n", self.n),
            ("-q", self.q > 0),
            ("-u", self.u.is_some()),
            ("-E", !self.env.is_empty()),
            ("-b", self.b.is_some()),
            ("-a", self.a.is_some()),
            ("-w", self.w),
            ("-S", self.big_s.is_some()),
            ("-C", self.big_c),
            ("-D", self.d > 0),
            ("-I", self.big_i.is_some()),
            ("-X", self.big_x.is_some()),
            ("-P", !self.big_p.is_empty()),
            ("-U", self.big_u.is_some()),
        ];
        given.iter().find(|(_, on)| *on).map(|(n, _)| *n)
    }
}

/// One `-e` expression (strace's qualifiers).
#[derive(Clone, Debug, PartialEq, Eq)]
enum TraceExpr {
    /// `trace=SET`: `None` for every syscall.
    Trace(Option<std::collections::BTreeSet<u64>>),
    /// `inject=SET:…` or `fault=SET:…`.
    Inject(inject::Rule),
    /// `signal=SET`: the signals shown (`None`: all).
    Signal(Option<std::collections::BTreeSet<i32>>),
    /// `status=SET`: the calls shown by outcome (`None`: all).
    Status(Option<std::collections::BTreeSet<sysset::Status>>),
}

/// `-e QUALIFIER=SET` as strace reads it (`trace=` when there is no
/// qualifier): `trace`, `signal`/`signals`, `status`, `inject`, `fault`.
fn parse_expr(expr: &str) -> Result<TraceExpr, String> {
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
        "abbrev" | "a" | "verbose" | "v" | "raw" | "x" | "read" | "reads" | "r" | "write"
        | "writes" | "w" | "quiet" | "silent" | "silence" | "q" | "decode-fds" | "decode-fd"
        | "decode-pids" | "decode-pid" | "kvm" | "trace-fds" | "trace-fd" | "fd" | "fds" => {
            Err(format!(
                "strace's -e {qualifier}= is not supported by utrace yet (issue 14); \
             trace=, signal=, status=, inject= and fault= are"
            ))
        }
        _ => Err(format!(
            "unknown qualifier {qualifier:?}: -e takes trace=, signal=, status=, inject=, \
             fault= (and strace's others)"
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
fn selected_syscalls(exprs: &[TraceExpr]) -> (Vec<String>, bool) {
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
fn selected_filters(
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    if let Command::Completions { shell } = &cli.command {
        // Into a buffer first: clap_complete panics on a failed write.
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "utrace", &mut script);
        return match write_stdout(&script) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say!("utrace: {e}");
                ExitCode::from(1)
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("utrace: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(run(cli));
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => exit::finish(code),
        Err(msg) => {
            say!("utrace: {msg}");
            exit::finish(1)
        }
    }
}

/// Write a command's output. A reader that went away (`utrace info | head`)
/// is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("writing to standard output failed: {e}")),
    }
}

/// Connect, run the command, and stop an embedded server.
async fn run(cli: Cli) -> Result<u8, String> {
    // A batch's input is read before connecting: a bad one is a usage
    // error, and attaches to nothing.
    let ops = match &cli.command {
        Command::Batch(b) => match batch::load(b.input.as_ref()) {
            Ok(ops) => ops,
            Err(msg) => {
                say!("utrace: {msg}");
                return Ok(2);
            }
        },
        _ => Vec::new(),
    };
    // So is a probe's program: one that does not compile probes nothing.
    let prepared = match &cli.command {
        Command::Probe(p) => match probe::prepare(p) {
            Ok(p) => Some(p),
            Err(msg) => {
                say!("utrace: {msg}");
                return Ok(2);
            }
        },
        _ => None,
    };
    let tls = match (&cli.tls_ca, &cli.tls_cert, &cli.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(utrace_client::TlsOptions {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
            domain: None,
        }),
        (None, None, None) => None,
        _ => return Err("--tls-ca, --tls-cert and --tls-key go together".into()),
    };
    let mut conn = Connection::open(cli.server.as_deref(), tls.as_ref()).await?;
    let result = command(&mut conn, cli.command, ops, prepared).await;
    conn.close().await;
    result
}

/// Run `cmd`; `ops` are a `batch` command's, read beforehand, and
/// `prepared` a `probe` command's compiled program.
async fn command(
    conn: &mut Connection,
    cmd: Command,
    ops: Vec<utrace_client::pb::Op>,
    prepared: Option<probe::Prepared>,
) -> Result<u8, String> {
    match cmd {
        Command::Probe(_) => match prepared {
            Some(p) => probe::run(conn, p).await,
            None => Err("probe: the program was not compiled".into()),
        },
        Command::Batch(b) => batch::run(conn, &b, ops).await,
        Command::Mem { cmd } => mem::run(conn, cmd).await,
        Command::Regs(r) => regs::run(conn, r).await,
        Command::Break(b) => brk::run(conn, &b).await,
        Command::Gdb(g) => gdb::run(conn, g).await,
        Command::Trace(mut t) => {
            if let Some(opt) = t.not_yet.first() {
                return Err(format!(
                    "trace: strace's {opt} is not supported by utrace yet (issue 14); \
                     `utrace trace --help` lists what is"
                ));
            }
            if t.follow > 1 {
                return Err(
                    "trace: strace's -ff (a file per process) is not supported by utrace yet \
                     (issue 14); -f prefixes each line with its pid instead"
                        .into(),
                );
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
            let opts = trace::Options {
                follow: t.follow > 0,
                syscalls,
                no_syscalls,
                count: t.count,
                output: t.output,
                pid: t.pid,
                command: t.command,
                queue_len: t.queue_len,
                lossy: t.lossy,
                inject,
                string_limit: t.string_limit,
                stamp: assemble::Stamp::from_count(t.timestamps),
                durations: t.syscall_times,
                signals,
                status,
            };
            trace::run(conn, opts).await
        }
        Command::Ps { pid } => {
            let tasks = conn
                .client
                .list_tasks(pid.unwrap_or(0))
                .await
                .map_err(|s| s.message().to_string())?;
            if tasks.is_empty() && conn.is_embedded() {
                say!(
                    "utrace: no utraced daemon listens on {}; this embedded server traces nothing",
                    utraced::default_socket().display()
                );
            }
            write_stdout(show::tasks_table(&tasks).as_bytes())?;
            Ok(0)
        }
        Command::Info { json } => {
            let info = conn
                .client
                .server_info()
                .await
                .map_err(|s| s.message().to_string())?;
            let text = if json {
                show::info_json(&info, &conn.uri, conn.is_embedded())
            } else {
                show::info_text(&info, &conn.uri, conn.is_embedded())
            };
            write_stdout(text.as_bytes())?;
            Ok(0)
        }
        Command::Completions { .. } => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

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
        assert!(parse_expr("verbose=all")
            .unwrap_err()
            .contains("not supported by utrace yet"));
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
        assert_eq!(t.pid, Some(1234));
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
        let t = parse(&["utrace", "trace", "-s200", "-v", "-tt", "--", "ls"]);
        assert_eq!(t.string_limit, Some(200));
        assert_eq!(t.not_yet.first(), Some("-v"));
        assert_eq!(t.timestamps, 2);
        assert_eq!(t.command, ["ls"]);
        let t = parse(&["utrace", "trace", "-yT", "ls"]);
        assert!(t.syscall_times);
        assert_eq!(t.not_yet.first(), Some("-y"));
        let t = parse(&["utrace", "trace", "-zZ", "-esignal=!SIGCHLD", "ls"]);
        assert!(t.successful_only && t.failed_only);
        assert_eq!(t.not_yet.first(), None);
        // An option nobody has is a usage error, not a program name.
        assert!(Cli::try_parse_from(["utrace", "trace", "-Q", "ls"]).is_err());
        assert!(Cli::try_parse_from(["utrace", "trace"]).is_err());
        assert!(Cli::try_parse_from(["utrace", "trace", "-p", "1", "--", "ls"]).is_err());
        assert!(Cli::try_parse_from(["utrace", "trace", "-p", "1"]).is_ok());
    }
}
