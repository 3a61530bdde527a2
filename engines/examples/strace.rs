//! A small strace on the engine layer.
//!
//! ```text
//! cargo run --release -p utrace-engines --example strace -- \
//!     [-f] [-e trace=NAME,NAME…] [-c] [-o FILE] [--no-seccomp] CMD ARGS…
//! ```
//!
//! * `-f` follows child processes (threads are always followed).
//! * `-e trace=NAMES` reports only these syscalls (`-e NAMES` too); signals
//!   and exits are always reported. With `-f`, kernel-side filtering is used
//!   (like strace's `--seccomp-bpf`): the other syscalls do not even stop the
//!   program; `--no-seccomp` filters in user space instead, under
//!   `PTRACE_SYSCALL`.
//! * `-c` prints a `strace -c -w` summary table at the end instead of lines.
//! * `-o FILE` writes lines (or the table) to FILE instead of stderr.
//!
//! It exits with the program's exit status (128 + the signal number if a
//! signal killed it), once every traced process is gone. Log with
//! `RUST_LOG=utrace_engines=debug`.
//!
//! Kernel-side filtering is used only with `-f`, as strace does: a filtered
//! tree depends on its tracer (see `SpawnOptions::kernel_filter`), so
//! without `-f` children nobody follows would be tied to this process.
//! Without `-f` every syscall stops the program and is filtered here.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};

use utrace_engines::builtin::counter::{self, Counter};
use utrace_engines::builtin::recorder::{PidPrefix, Recorder};
use utrace_engines::{
    Action, CloneKind, CloneReport, Engine, EngineOptions, EventMask, ExecReport, ExitReport,
    ExitStatus, SignalAction, SignalReport, SpawnOptions, SyscallEntry, SyscallExit, SyscallSet,
    Task, Tracer,
};

const USAGE: &str = "usage: strace [-f] [-c] [-e trace=NAME[,NAME...]] [-o FILE] [--no-seccomp] \
                     CMD [ARGS...]";

/// The command line.
struct Args {
    follow: bool,
    count: bool,
    trace: SyscallSet,
    output: Option<PathBuf>,
    seccomp: bool,
    argv: Vec<String>,
}

/// Why the command line was refused.
enum BadArgs {
    /// Print the usage (to stdout for `-h`, exit 0).
    Help,
    Usage(String),
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, BadArgs> {
    let mut a = Args {
        follow: false,
        count: false,
        trace: SyscallSet::all(),
        output: None,
        seccomp: true,
        argv: Vec::new(),
    };
    let missing = |opt: &str| BadArgs::Usage(format!("option {opt} needs an argument"));
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(BadArgs::Help),
            "-f" => a.follow = true,
            "-c" => a.count = true,
            "--no-seccomp" => a.seccomp = false,
            "--" => break,
            "-e" => {
                let v = it.next().ok_or_else(|| missing("-e"))?;
                a.trace = parse_trace(&v)?;
            }
            "-o" => a.output = Some(it.next().ok_or_else(|| missing("-o"))?.into()),
            s if s.starts_with("-e") => a.trace = parse_trace(&s[2..])?,
            s if s.starts_with("-o") => a.output = Some(s[2..].into()),
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(BadArgs::Usage(format!("unknown option {s}")))
            }
            _ => {
                a.argv.push(arg);
                break;
            }
        }
    }
    a.argv.extend(it);
    if a.argv.is_empty() {
        return Err(BadArgs::Usage("no command given".into()));
    }
    Ok(a)
}

/// `trace=open,read` or `open,read` (strace's shorthand).
fn parse_trace(expr: &str) -> Result<SyscallSet, BadArgs> {
    let names = match expr.split_once('=') {
        Some(("trace", names)) => names,
        Some((qualifier, _)) => {
            return Err(BadArgs::Usage(format!(
                "unsupported -e qualifier {qualifier:?} (only trace=)"
            )))
        }
        None => expr,
    };
    names
        .parse::<SyscallSet>()
        .map_err(|e| BadArgs::Usage(e.to_string()))
}

/// Where lines and the table go: stderr, or a buffered file flushed at the
/// end. Shared with the sink on the tracer thread.
type Output = Arc<Mutex<Box<dyn Write + Send>>>;

fn write_out(out: &Output, text: &str) {
    let mut w = match out.lock() {
        Ok(w) => w,
        Err(poisoned) => poisoned.into_inner(),
    };
    // Nowhere to report a failed write to the trace output; strace ignores it too.
    let _ = w.write_all(text.as_bytes());
}

/// Wraps the recorder or counter: counts the traced processes (the
/// program, and with `-f` its descendants) and, when the last one is gone,
/// sends the program's own exit status.
struct Lifetime<E> {
    inner: E,
    follow: bool,
    /// The spawned program's pid: the first task any report shows.
    program: Option<i32>,
    status: Option<ExitStatus>,
    live_processes: usize,
    done: mpsc::Sender<Option<ExitStatus>>,
}

impl<E: Engine> Lifetime<E> {
    const EVENTS: EventMask = EventMask::CLONE
        .union(EventMask::DEATH)
        .union(EventMask::EXEC);

    fn new(inner: E, follow: bool, done: mpsc::Sender<Option<ExitStatus>>) -> Self {
        Lifetime {
            inner,
            follow,
            program: None,
            status: None,
            live_processes: 1,
            done,
        }
    }

    fn saw(&mut self, task: &Task<'_>) {
        self.program.get_or_insert(task.pid());
    }
}

impl<E: Engine> Engine for Lifetime<E> {
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> Action {
        self.saw(task);
        self.inner.report_syscall_entry(task, call)
    }

    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        self.saw(task);
        self.inner.report_syscall_exit(task, call)
    }

    fn report_signal(&mut self, task: &mut Task<'_>, signal: &SignalReport) -> SignalAction {
        self.saw(task);
        self.inner.report_signal(task, signal)
    }

    fn report_clone(&mut self, task: &mut Task<'_>, clone: &CloneReport) -> Action {
        self.saw(task);
        if clone.kind != CloneKind::Thread && self.follow {
            self.live_processes += 1;
        }
        self.inner.report_clone(task, clone)
    }

    fn report_exec(&mut self, task: &mut Task<'_>, exec: &ExecReport) -> Action {
        self.saw(task);
        self.inner.report_exec(task, exec)
    }

    fn report_exit(&mut self, task: &mut Task<'_>, exit: &ExitReport) -> Action {
        self.saw(task);
        self.inner.report_exit(task, exit)
    }

    fn report_death(&mut self, death: &ExitReport) {
        self.inner.report_death(death);
        if !death.process_gone {
            return;
        }
        if self.program.is_none_or(|p| p == death.pid) {
            self.status = Some(death.status);
        }
        self.live_processes = self.live_processes.saturating_sub(1);
        if self.live_processes == 0 {
            let _ = self.done.send(self.status);
        }
    }

    fn report_quiesce(&mut self, task: &mut Task<'_>) -> Action {
        self.inner.report_quiesce(task)
    }

    fn report_step(&mut self, task: &mut Task<'_>) -> Action {
        self.inner.report_step(task)
    }

    fn report_detached(&mut self) {
        self.inner.report_detached();
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();

    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(BadArgs::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(BadArgs::Usage(why)) => {
            eprintln!("strace-example: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("strace-example: {e}");
            ExitCode::from(1)
        }
    }
}

/// Trace the program to its end; the exit code to leave with.
fn run(args: Args) -> Result<u8, Box<dyn std::error::Error>> {
    let out: Output = Arc::new(Mutex::new(match &args.output {
        Some(path) => {
            let f =
                File::create(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Box::new(BufWriter::new(f))
        }
        None => Box::new(std::io::stderr()),
    }));

    let tracer = Tracer::new()?;
    let (done_tx, done_rx) = mpsc::channel();
    let mut counts = None;
    let (engine, events): (Box<dyn Engine>, EventMask) = if args.count {
        let (counter, shared) = Counter::new();
        counts = Some(shared);
        (
            Box::new(Lifetime::new(counter, args.follow, done_tx)),
            Counter::EVENTS | Lifetime::<Counter>::EVENTS,
        )
    } else {
        let sink_out = Arc::clone(&out);
        let recorder = Recorder::new(Box::new(move |line: &str| {
            write_out(&sink_out, &format!("{line}\n"));
        }))
        .follow(args.follow)
        .pid_prefix(if args.follow && args.output.is_some() {
            PidPrefix::Always
        } else {
            PidPrefix::WhenShared
        });
        (
            Box::new(Lifetime::new(recorder, args.follow, done_tx)),
            Recorder::EVENTS | Lifetime::<Recorder>::EVENTS,
        )
    };
    let eopts = EngineOptions::new(events)
        .syscalls(args.trace)
        .follow_children(args.follow);
    let mut sopts = SpawnOptions::new(args.argv);
    // Like strace's --seccomp-bpf, kernel-side filtering goes with -f: a
    // filtered tree must stay traced, so children nobody follows would still
    // be tied to this process (and killed when it exits).
    sopts.kernel_filter = args.seccomp && args.follow;

    tracer.spawn(sopts, engine, eopts).wait()?;
    // The engine reports once every traced process is gone; a closed channel
    // means the tracer dropped the engine first.
    let status = done_rx
        .recv()
        .map_err(|_| "the tracer stopped before the program ended")?;
    // Detaches (and drops) the engine: nothing writes to `out` after this.
    let _ = tracer.shutdown().wait();

    if let Some(shared) = counts {
        write_out(&out, &counter::snapshot(&shared).table());
    }
    {
        let mut w = match out.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        w.flush()?;
    }
    Ok(match status {
        Some(ExitStatus::Exited(code)) => code as u8,
        Some(ExitStatus::Signaled { signo, .. }) => (128 + signo) as u8,
        None => 1,
    })
}
