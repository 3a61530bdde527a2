//! Helpers shared by the benchmarks: medians, times, the run count, and
//! a quiet stdout for tracees that print.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::{Command, Stdio};

/// Runs per row: `UTRACE_BENCH_RUNS`, else `default` (at least 1).
pub fn runs(default: usize) -> usize {
    std::env::var("UTRACE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// The median (the upper one of an even count); `None` for no samples.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Seconds as µs, ms or s.
pub fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

/// Point fd 1 at /dev/null (the server's tracees inherit it and print their
/// counts there) and return the original stdout, for the table.
pub fn quiet_stdout() -> File {
    std::io::stdout().flush().expect("flush stdout");
    let null = File::options()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    // SAFETY: dup and dup2 on descriptors this process owns; the duplicate
    // is owned by the returned File alone.
    unsafe {
        let saved = libc::dup(1);
        assert!(saved >= 0, "dup(1): {}", std::io::Error::last_os_error());
        assert!(
            libc::dup2(null.as_raw_fd(), 1) >= 0,
            "dup2: {}",
            std::io::Error::last_os_error()
        );
        File::from_raw_fd(saved)
    }
}

/// Whether `prog --version` runs.
pub fn runs_ok(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Make gdb and gdbserver available, installing them when missing; the
/// reason when they cannot be had.
pub fn ensure_gdb() -> Result<(), String> {
    ensure(&["gdb", "gdbserver"], &["gdb", "gdbserver"])
}

/// Make the programs `progs` available (each answers `--version`),
/// installing `packages` with apt-get when one is missing; the reason when
/// they cannot be had.
pub fn ensure(progs: &[&str], packages: &[&str]) -> Result<(), String> {
    let missing = || -> Vec<&str> { progs.iter().copied().filter(|p| !runs_ok(p)).collect() };
    if missing().is_empty() {
        return Ok(());
    }
    let install: Vec<&str> = ["install", "-y"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    eprintln!(
        "{} not found: installing with `apt-get {}`",
        missing().join(" and "),
        install.join(" ")
    );
    let apt = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "`apt-get {}` failed ({}): {}",
                args.join(" "),
                out.status,
                err.lines().last().unwrap_or("").trim()
            ))
        }
    };
    if let Err(first) = apt(&install) {
        eprintln!("{first}; retrying after `apt-get update`");
        apt(&["update"])?;
        apt(&install)?;
    }
    match missing().as_slice() {
        [] => Ok(()),
        m => Err(format!(
            "{} still missing after apt-get install",
            m.join(" and ")
        )),
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `utrace` command, built with the bench's (release) profile beside
/// this bench (`cargo bench -p utrace-tests` builds only the library of
/// its package); the reason when it cannot be built.
#[allow(dead_code)]
pub fn utrace_bin() -> Result<std::path::PathBuf, String> {
    release_bin("utrace-client", "utrace")
}

/// The `utraced` daemon, built as [`utrace_bin`] is.
#[allow(dead_code)]
pub fn utraced_bin() -> Result<std::path::PathBuf, String> {
    release_bin("utraced", "utraced")
}

/// Binary `bin` of package `package`, built with the release profile.
fn release_bin(package: &str, bin: &str) -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("no target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = std::process::Command::new(cargo)
        .args(["build", "--release", "-q", "-p", package, "--bin", bin])
        .status()
        .map_err(|e| format!("cannot run cargo to build {bin}: {e}"))?;
    let path = dir.join(bin);
    if st.success() && path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "building {bin} failed ({st}); it should be at {}",
            path.display()
        ))
    }
}
