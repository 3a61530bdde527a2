//! Running the `utrace` binary in the CLI tests: a bounded wait that
//! collects its output, and a `/proc` reader.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any one command may run.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// What a finished command left.
#[derive(Debug)]
pub struct Output {
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Standard output as text (lossy) and as bytes.
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// Standard output as text.
    pub fn text(&self) -> String {
        self.stdout.clone()
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Wait for `child` at most [`DEADLINE`]; kill it and fail past that.
pub fn wait_bounded(mut child: Child, what: &str) -> Output {
    let out = child.stdout.take().map(reader);
    let err = child.stderr.take().map(reader);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: still running after {DEADLINE:?}; killed");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{what}: wait failed: {e}"),
        }
    };
    let join = |h: Option<JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    let stdout_bytes = join(out);
    use std::os::unix::process::ExitStatusExt;
    Output {
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr: String::from_utf8_lossy(&join(err)).into_owned(),
    }
}

/// `utrace ARGS…` with its embedded server (or the local daemon, if one
/// listens on the default socket), stdout and stderr piped, stdin null.
pub fn utrace_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_utrace"));
    c.args(args)
        .env_remove("UTRACE_SERVER")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A `/proc/PID/status` field.
pub fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

/// The strace binary, installed with apt-get if missing (once).
pub fn strace() -> &'static str {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let present = |_: ()| {
            Command::new("strace")
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if present(()) {
            return Ok(());
        }
        println!("strace is missing: installing it with apt-get install -y strace");
        let install = Command::new("apt-get")
            .args(["install", "-y", "strace"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        let out = wait_bounded(install, "apt-get install -y strace");
        if out.code == Some(0) && present(()) {
            println!("installed strace");
            Ok(())
        } else {
            Err(format!(
                "strace is not installed and `apt-get install -y strace` failed \
                 (exit {:?}): {}",
                out.code, out.stderr
            ))
        }
    });
    match ready {
        Ok(()) => "strace",
        Err(e) => panic!("{e}"),
    }
}

pub fn run_strace(args: &[&str]) -> Output {
    let child = Command::new(strace())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run strace");
    wait_bounded(child, &format!("strace {}", args.join(" ")))
}
