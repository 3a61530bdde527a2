//! End-to-end tests of the `utrace` command: the built binary, run as a
//! separate process (as root), with its embedded server (no daemon needed),
//! compared with strace where it matters. Every wait is bounded.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_strace, status_field, strace, utrace_command, wait_bounded, Output, DEADLINE};

/// Run `utrace ARGS…` with its embedded server (or the local daemon, if one
/// listens on the default socket).
fn utrace(args: &[&str]) -> Output {
    let child = utrace_command(args)
        .spawn()
        .expect("cannot run the utrace binary");
    wait_bounded(child, &format!("utrace {}", args.join(" ")))
}

/// A trace line without its pid prefix (`[pid  N] ` or `N `).
fn strip_prefix(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix("[pid ") {
        return rest.split_once("] ").map_or(rest, |(_, l)| l);
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && line[digits..].starts_with(' ') {
        return line[digits..].trim_start();
    }
    line
}

/// The syscall names of a trace, in order: the start of each call line
/// (resumed halves, signal and exit lines, and strace's own messages are
/// not calls).
fn syscall_names(trace: &str) -> Vec<String> {
    trace
        .lines()
        .map(strip_prefix)
        .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
        .filter(|l| !l.starts_with("<...") && !l.starts_with("strace:"))
        .filter_map(|l| {
            let (name, _) = l.split_once('(')?;
            let ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            ok.then(|| name.to_string())
        })
        .collect()
}

#[test]
fn echo_makes_the_same_syscalls_as_strace() {
    let ours = utrace(&["trace", "--", "/bin/echo", "hi"]);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    assert_eq!(ours.stdout, "hi\n");
    let theirs = run_strace(&["-f", "-qq", "/bin/echo", "hi"]);
    assert_eq!(theirs.code, Some(0), "{theirs:?}");
    let (a, b) = (syscall_names(&ours.stderr), syscall_names(&theirs.stderr));
    assert!(a.len() > 10, "too few calls: {}", ours.stderr);
    assert_eq!(a, b, "utrace:\n{}\nstrace:\n{}", ours.stderr, theirs.stderr);
    // The last lines, as strace prints them.
    let lines: Vec<&str> = ours.stderr.lines().collect();
    assert_eq!(lines.last().copied(), Some("+++ exited with 0 +++"));
    assert!(
        lines.contains(&"write(1, \"hi\\n\", 3)                     = 3"),
        "{}",
        ours.stderr
    );
    assert!(lines.contains(&"exit_group(0)                           = ?"));
}

#[test]
fn count_prints_straces_table() {
    let ours = utrace(&["trace", "-c", "--", "/bin/ls", "/"]);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    assert!(!ours.stdout.is_empty(), "ls printed nothing");
    let theirs = run_strace(&["-c", "-w", "/bin/ls", "/"]);
    let header = |s: &str| s.lines().take(2).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        header(&ours.stderr),
        header(&theirs.stderr),
        "{}",
        ours.stderr
    );
    let total = ours
        .stderr
        .lines()
        .find(|l| l.ends_with(" total"))
        .unwrap_or_else(|| panic!("no total row: {}", ours.stderr));
    let calls: u64 = total
        .split_whitespace()
        .nth(3)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad total row {total:?}"));
    assert!(calls > 0, "{total}");
    // No trace lines with -c.
    assert!(!ours.stderr.contains("+++"), "{}", ours.stderr);
}

/// `-U COLUMNS`: strace's header and rules for each choice of columns
/// (the name added last when left out, `_` for `-`), and the same calls
/// and errors per syscall as strace counts; an unknown column is refused.
#[test]
fn summary_columns_like_strace() {
    let program = ["/bin/ls", "/nonexistent", "/"];
    for columns in [
        "name,calls,errors",
        "time-percent,total-time,min-time,max-time,avg-time,calls,errors,name",
        "errors,calls",
        "name,time",
        "time_percent,avg_time,min_time",
    ] {
        let mut args = vec!["trace", "-c", "-U", columns, "--"];
        args.extend(program);
        let ours = utrace(&args);
        let mut args = vec!["-c", "-U", columns];
        args.extend(program);
        let theirs = run_strace(&args);
        let head = |s: &str| {
            s.lines()
                .skip(1)
                .take(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(head(&ours.stderr), head(&theirs.stderr), "-U {columns}");
        if columns == "name,calls,errors" {
            let rows = |s: &str| {
                let mut r: Vec<String> = s
                    .lines()
                    .skip(3)
                    .filter(|l| !l.starts_with('-'))
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect();
                r.sort();
                r
            };
            let (ours, theirs) = (rows(&ours.stderr), rows(&theirs.stderr));
            let openat = |r: &[String]| r.iter().find(|l| l.starts_with("openat ")).cloned();
            assert_eq!(openat(&ours), openat(&theirs), "{ours:?}\n{theirs:?}");
            assert!(openat(&ours).is_some(), "{ours:?}");
        }
    }
    let bad = utrace(&["trace", "-c", "-U", "calls,bogus", "--", "/bin/true"]);
    assert_ne!(bad.code, Some(0));
    assert!(
        bad.stderr.contains("-U bogus: unknown column name"),
        "{bad:?}"
    );
}

#[test]
fn trace_filter_shows_only_those_calls() {
    let ours = utrace(&[
        "trace",
        "-e",
        "trace=openat",
        "--",
        "/bin/cat",
        "/etc/hostname",
    ]);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_eq!(ours.stdout, hostname);
    let lines: Vec<&str> = ours.stderr.lines().collect();
    assert!(
        lines.contains(&"openat(AT_FDCWD, \"/etc/hostname\", O_RDONLY) = 3"),
        "{}",
        ours.stderr
    );
    for l in &lines {
        assert!(
            l.starts_with("openat(") || *l == "+++ exited with 0 +++",
            "unexpected line {l:?} in\n{}",
            ours.stderr
        );
    }
    assert_eq!(lines.last().copied(), Some("+++ exited with 0 +++"));
}

#[test]
fn missing_program_fails_with_not_found() {
    let ours = utrace(&["trace", "--", "/nonexistent/prog"]);
    assert_eq!(ours.code, Some(1), "{ours:?}");
    assert!(ours.stderr.starts_with("utrace: "), "{}", ours.stderr);
    assert!(ours.stderr.contains("not found"), "{}", ours.stderr);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(utrace(&["trace"]).code, Some(2));
    assert_eq!(
        utrace(&["trace", "-e", "signal=SIGNOPE", "--", "true"]).code,
        Some(2)
    );
    assert_eq!(
        utrace(&["trace", "-e", "verbose=none", "--", "true"]).code,
        Some(2)
    );
    assert_eq!(utrace(&["frobnicate"]).code, Some(2));
}

#[test]
fn info_shows_kernel_and_caller() {
    let ours = utrace(&["info"]);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = ours
        .stdout
        .lines()
        .find(|l| l.starts_with("kernel:"))
        .unwrap_or_else(|| panic!("no kernel line: {}", ours.stdout));
    assert!(
        kernel.ends_with(release.trim()),
        "{kernel:?} vs {release:?}"
    );
    let caller = ours
        .stdout
        .lines()
        .find(|l| l.starts_with("caller:"))
        .unwrap_or_else(|| panic!("no caller line: {}", ours.stdout));
    assert!(caller.contains("uid 0"), "{caller}");

    let json = utrace(&["info", "--json"]);
    assert_eq!(json.code, Some(0), "{json:?}");
    assert!(
        json.stdout
            .contains(&format!("\"kernel\": \"{}\"", release.trim())),
        "{}",
        json.stdout
    );
    assert!(
        json.stdout.contains("\"caller\": {\"uid\": 0"),
        "{}",
        json.stdout
    );
}

#[test]
fn follow_prefixes_child_lines() {
    let ours = utrace(&["trace", "-f", "--", "sh", "-c", "echo a; /bin/true"]);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    assert_eq!(ours.stdout, "a\n");
    // The shell is the first line's process; its child's lines carry its id.
    let pids: std::collections::BTreeSet<u32> = ours
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("[pid "))
        .filter_map(|l| l.split_once(']'))
        .filter_map(|(p, _)| p.trim().parse().ok())
        .collect();
    assert!(pids.len() >= 2, "no child lines:\n{}", ours.stderr);
    // As strace -f: each new process is announced, before its lines.
    let child = pids.iter().max().expect("a child");
    let announced = format!("utrace: Process {child} attached");
    let first_line = format!("[pid {child:>5}]");
    let at = |needle: &str| ours.stderr.find(needle);
    assert!(
        at(&announced).is_some() && at(&announced) < at(&first_line),
        "{}",
        ours.stderr
    );
    assert!(
        ours.stderr
            .lines()
            .any(|l| l.starts_with("[pid ") && l.contains("execve(\"/bin/true\"")),
        "{}",
        ours.stderr
    );
    // Both processes end with an exit line; the shell's comes last, alone.
    assert_eq!(
        ours.stderr.lines().last(),
        Some("+++ exited with 0 +++"),
        "{}",
        ours.stderr
    );
}

#[test]
fn follow_with_output_file_prefixes_every_line() {
    let dir = std::env::temp_dir().join(format!("utrace-cli-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("trace.txt");
    let path = file.to_string_lossy().into_owned();
    let ours = utrace(&[
        "trace",
        "-f",
        "-o",
        &path,
        "--",
        "sh",
        "-c",
        "/bin/true; exit 3",
    ]);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ours.code, Some(3), "{ours:?}");
    assert!(ours.stderr.is_empty(), "{}", ours.stderr);
    assert!(text.lines().count() > 10, "{text}");
    for l in text.lines() {
        let digits = l.bytes().take_while(u8::is_ascii_digit).count();
        assert!(digits > 0 && l[digits..].starts_with(' '), "{l:?}");
    }
    assert!(text
        .lines()
        .last()
        .is_some_and(|l| l.ends_with(" +++ exited with 3 +++")));
}

#[test]
fn exit_code_is_the_programs() {
    let ours = utrace(&["trace", "--", "sh", "-c", "exit 7"]);
    assert_eq!(ours.code, Some(7), "{ours:?}");
    assert!(
        ours.stderr.ends_with("+++ exited with 7 +++\n"),
        "{}",
        ours.stderr
    );
    // Killed: utrace dies of the same signal, as strace does.
    let killed = utrace(&["trace", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!((killed.code, killed.signal), (None, Some(9)), "{killed:?}");
    let theirs = run_strace(&["sh", "-c", "kill -9 $$"]);
    assert_eq!(theirs.signal, killed.signal);
    assert!(
        killed.stderr.ends_with("+++ killed by SIGKILL +++\n"),
        "{}",
        killed.stderr
    );
}

#[test]
fn attach_and_interrupt_detaches() {
    attach_and_interrupt(1, |p| vec!["-p".into(), p[0].to_string()]);
}

/// Several `-p` (a list, and repeated): every process attached, its lines
/// prefixed with its pid, every one detached at Ctrl-C and running on.
#[test]
fn several_pids_attach_and_detach_together() {
    attach_and_interrupt(3, |p| {
        vec![
            "-p".into(),
            format!("{},{}", p[0], p[1]),
            format!("-p{}", p[2]),
        ]
    });
}

/// Attach `utrace trace` to `n` sleeping processes (`-p` arguments made
/// by `args` from their pids), interrupt it once it said it attached, and
/// check it detached from each and died of the SIGINT, as strace does.
fn attach_and_interrupt(n: usize, args: fn(&[u32]) -> Vec<String>) {
    let mut sleepers: Vec<std::process::Child> = (0..n)
        .map(|_| {
            Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("cannot run sleep")
        })
        .collect();
    let pids: Vec<u32> = sleepers.iter().map(|s| s.id()).collect();
    // Its stderr in a file, read while it runs: the interrupt goes only
    // once utrace said it attached (the kernel shows the tracer a moment
    // before utrace has its answer and prints it).
    let err_path = std::env::temp_dir().join(format!("utrace-cli-attach-{}.err", pids[0]));
    let err_file = std::fs::File::create(&err_path).expect("stderr file");
    let mut argv = vec!["trace".to_string()];
    argv.extend(args(&pids));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut child = utrace_command(&argv)
        .stderr(err_file)
        .spawn()
        .expect("cannot run the utrace binary");
    let traced = |pid: u32| status_field(pid, "TracerPid").is_some_and(|v| v != "0");
    let said = || std::fs::read_to_string(&err_path).unwrap_or_default();
    let all_said = || said().matches(" attached").count() == n;
    let start = Instant::now();
    while !(pids.iter().all(|p| traced(*p)) && all_said()) && start.elapsed() < DEADLINE {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let attached = pids.iter().all(|p| traced(*p));
    // Ctrl-C, to utrace alone.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let mut out = wait_bounded(child, "utrace trace -p");
    out.stderr = said();
    let _ = std::fs::remove_file(&err_path);
    let still_traced: Vec<u32> = pids.iter().copied().filter(|p| traced(*p)).collect();
    let alive = sleepers
        .iter_mut()
        .all(|s| matches!(s.try_wait(), Ok(None)));
    for s in &mut sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
    assert!(attached, "never attached: {out:?}");
    // strace -p dies of the SIGINT after detaching (130 in a shell).
    assert_eq!(
        (out.code, out.signal),
        (None, Some(libc::SIGINT)),
        "{out:?}"
    );
    assert!(alive, "a process died");
    assert!(
        still_traced.is_empty(),
        "still traced after detaching: {still_traced:?}"
    );
    for pid in &pids {
        assert!(
            out.stderr.contains(&format!("Process {pid} attached")),
            "{out:?}"
        );
        assert!(
            out.stderr.contains(&format!("Process {pid} detached")),
            "{out:?}"
        );
    }
}

/// `-ff -o BASE`: a file per thread (`BASE.TID`), as strace writes them:
/// as many files, each with the same calls in the same order as strace's
/// file of the same place in the tree, no pid prefix on any line, the
/// child's exec in the child's file.
#[test]
fn ff_writes_a_file_per_thread_like_strace() {
    let strace = strace();
    let dir = std::env::temp_dir().join(format!("utrace-cli-ff-{}", std::process::id()));
    let (ours, theirs) = (dir.join("u"), dir.join("s"));
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    let script = "ls / > /dev/null; /bin/true; exit 3";
    let base = |d: &std::path::Path| d.join("t").to_string_lossy().into_owned();
    let out = utrace(&["trace", "-ff", "-o", &base(&ours), "--", "sh", "-c", script]);
    assert_eq!(out.code, Some(3), "{out:?}");
    let st = Command::new(strace)
        .args(["-ff", "-o", &base(&theirs), "--", "sh", "-c", script])
        .output()
        .expect("run strace");
    assert_eq!(st.status.code(), Some(3), "{st:?}");
    // Files in the order their threads were made (tids grow).
    let files = |d: &std::path::Path| {
        let mut v: Vec<(u32, String)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let tid = name.strip_prefix("t.").and_then(|t| t.parse().ok());
                let tid = tid.unwrap_or_else(|| panic!("a file named {name}"));
                (tid, std::fs::read_to_string(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let (u, s) = (files(&ours), files(&theirs));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        u.len(),
        3,
        "sh, ls and true: {:?}",
        u.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    assert_eq!(u.len(), s.len());
    for ((_, a), (_, b)) in u.iter().zip(&s) {
        assert_eq!(
            syscall_names(a),
            syscall_names(b),
            "ours:\n{a}\nstrace's:\n{b}"
        );
        assert!(a.lines().all(|l| !l.starts_with("[pid")), "{a}");
    }
    assert!(u[0].1.ends_with("+++ exited with 3 +++\n"), "{}", u[0].1);
    assert!(u[1].1.contains("execve(\"/usr/bin/ls\""), "{}", u[1].1);
}

/// The times `pid`'s threads have been put on a CPU so far.
fn timeslices(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// With `-o FILE`, the lines of a program that then goes quiet reach the
/// file while it is quiet (a `tail -f` sees them: flushed within 200 ms
/// of being written), and while it is quiet the command sleeps: no timer
/// wakes it (it used to flush every 200 ms, written or not).
#[test]
fn a_trace_file_is_flushed_and_a_quiet_program_costs_no_wake_ups() {
    let file = temp_trace("quiet");
    let f = file.to_str().expect("utf-8 path");
    let mut child = utrace_command(&["trace", "-o", f, "--", "sh", "-c", "echo one; sleep 4"])
        .spawn()
        .expect("cannot run the utrace binary");
    let pid = child.id();
    let deadline = Instant::now() + DEADLINE;
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains("write(1, \"one\\n\"")) {
        assert!(
            Instant::now() < deadline,
            "the write's line never reached the file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // (The line is in the file while the program sleeps.)
    std::thread::sleep(Duration::from_millis(500));
    let before = timeslices(pid);
    std::thread::sleep(Duration::from_secs(2));
    let woken = timeslices(pid) - before;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&file);
    assert!(woken <= 2, "utrace was woken {woken} times in 2 s");
}

/// A temporary path for a trace file, unique to this test process.
fn temp_trace(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("utrace-cli-{}-{name}", std::process::id()))
}

/// `-e inject=openat:error=ENOENT` fails the program as strace's does: the
/// same message, the same exit status, the same calls, each injected call
/// marked `(INJECTED)`.
#[test]
fn inject_fails_the_program_like_strace() {
    let (ours_file, theirs_file) = (temp_trace("inject-ours"), temp_trace("inject-theirs"));
    let ours = utrace(&[
        "trace",
        "-o",
        ours_file.to_str().unwrap(),
        "-e",
        "inject=openat:error=ENOENT",
        "--",
        "cat",
        "/etc/hostname",
    ]);
    let theirs = run_strace(&[
        "-o",
        theirs_file.to_str().unwrap(),
        "-e",
        "inject=openat:error=ENOENT",
        "cat",
        "/etc/hostname",
    ]);
    let ours_trace = std::fs::read_to_string(&ours_file).unwrap_or_default();
    let theirs_trace = std::fs::read_to_string(&theirs_file).unwrap_or_default();
    let _ = std::fs::remove_file(&ours_file);
    let _ = std::fs::remove_file(&theirs_file);
    assert_ne!(theirs.code, Some(0), "strace: {theirs:?}");
    assert_eq!(
        ours.code, theirs.code,
        "utrace: {ours:?}\nstrace: {theirs:?}"
    );
    assert_eq!(ours.stderr, theirs.stderr);
    assert_eq!(ours.stdout, theirs.stdout);
    assert_eq!(syscall_names(&ours_trace), syscall_names(&theirs_trace));
    let injected = |t: &str| t.lines().filter(|l| l.ends_with(" (INJECTED)")).count();
    assert!(injected(&ours_trace) > 0, "{ours_trace}");
    assert_eq!(injected(&ours_trace), injected(&theirs_trace));
}

/// `when=N+` counts as strace does, and `retval=` sets the value.
#[test]
fn inject_when_and_retval_like_strace() {
    for (expr, argv) in [
        (
            "inject=openat:error=EACCES:when=3+",
            &["cat", "/etc/hostname"][..],
        ),
        ("inject=getpid:retval=42", &["sh", "-c", "echo $$"][..]),
    ] {
        let mut args = vec!["trace", "-o", "/dev/null", "-e", expr, "--"];
        args.extend_from_slice(argv);
        let ours = utrace(&args);
        let mut sargs = vec!["-o", "/dev/null", "-e", expr];
        sargs.extend_from_slice(argv);
        let theirs = run_strace(&sargs);
        assert_eq!(
            (ours.code, &ours.stdout, &ours.stderr),
            (theirs.code, &theirs.stdout, &theirs.stderr),
            "{expr}"
        );
    }
    let r = utrace(&[
        "trace",
        "-o",
        "/dev/null",
        "-e",
        "inject=getpid:retval=42",
        "--",
        "sh",
        "-c",
        "echo $$",
    ]);
    assert_eq!(r.stdout, "42\n");
}

/// A malformed inject expression is a usage error naming the problem.
#[test]
fn inject_usage_errors() {
    for (expr, needle) in [
        ("inject=openat", "error="),
        ("inject=openat:error=ENOPE", "ENOPE"),
        ("inject=openat:error=EIO:when=0", "when=0"),
        ("inject=nosuch:error=EIO", "nosuch"),
    ] {
        let r = utrace(&["trace", "-e", expr, "--", "true"]);
        assert_eq!(r.code, Some(2), "{expr}: {r:?}");
        assert!(r.stderr.contains(needle), "{expr}: {}", r.stderr);
    }
}

/// strace's command-line syntax: joined values (`-etrace=openat`,
/// `-o/tmp/x`), long options (`--trace=`), the last `trace=` winning (as
/// strace: checked against it), and an strace option utrace does not
/// implement yet refused by name instead of taken for the program.
#[test]
fn strace_option_syntax() {
    let file = temp_trace("joined");
    let file_arg = format!("-o{}", file.display());
    let ours = utrace(&[
        "trace",
        "-etrace=read",
        "--trace=openat",
        &file_arg,
        "/bin/cat",
        "/etc/hostname",
    ]);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    assert!(
        text.contains("openat(AT_FDCWD, \"/etc/hostname\", O_RDONLY) = 3"),
        "{text}"
    );
    let ours_names: std::collections::BTreeSet<String> = syscall_names(&text).into_iter().collect();
    assert_eq!(
        ours_names.iter().map(String::as_str).collect::<Vec<_>>(),
        ["openat"],
        "the last trace= wins:\n{text}"
    );
    // strace does the same with the same expressions.
    let theirs = run_strace(&[
        "-e",
        "trace=read",
        "-e",
        "trace=openat",
        "/bin/cat",
        "/etc/hostname",
    ]);
    let theirs_names: std::collections::BTreeSet<String> =
        syscall_names(&theirs.stderr).into_iter().collect();
    assert_eq!(ours_names, theirs_names);

    // strace's quiet=, decode-fds= and abbrev= spell -q, -y and -v.
    let addr = regex::Regex::new("0x[0-9a-f]+").expect("regex");
    for set in [
        ["-e", "quiet=exit", "-e", "trace=close"],
        ["-e", "decode-fds=path", "-e", "trace=close"],
        ["-e", "abbrev=none", "-e", "trace=execve"],
        ["-e", "verbose=all", "-e", "trace=execve"],
    ] {
        let ours = utrace(&[&["trace"], &set[..], &["/bin/true"]].concat());
        let theirs = run_strace(&[&set[..], &["/bin/true"]].concat());
        assert_eq!(ours.code, Some(0), "{set:?}: {ours:?}");
        let first = |t: &str| {
            let line = t.lines().next().unwrap_or_default();
            addr.replace_all(line, "0x").into_owned()
        };
        assert_eq!(first(&ours.stderr), first(&theirs.stderr), "{set:?}");
        assert_eq!(
            ours.stderr.contains("+++ exited"),
            theirs.stderr.contains("+++ exited"),
            "{set:?}"
        );
    }
    let refused = utrace(&["trace", "-D", "--", "/bin/true"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("-D is not supported by utrace yet"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("not found"), "{}", refused.stderr);
    // An option strace does not have either: a usage error.
    assert_eq!(utrace(&["trace", "-Q", "/bin/true"]).code, Some(2));
}

/// `-t`, `-tt`, `-ttt` and `-T` print as strace's: the time at the start
/// of each line (local time of day, with microseconds, or epoch seconds)
/// and each call's time after its result; the lines are otherwise the
/// same as strace's.
#[test]
fn timestamps_and_syscall_times_like_strace() {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    // "12:34:56" and "12:34:56.123456".
    fn time_of_day(s: &str, micros: bool) -> bool {
        let (hms, frac) = match s.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let parts: Vec<&str> = hms.split(':').collect();
        parts.len() == 3
            && parts.iter().all(|p| p.len() == 2 && digits(p))
            && match frac {
                Some(f) => micros && f.len() == 6 && digits(f),
                None => !micros,
            }
    }
    let args = [
        "-e",
        "trace=openat,close",
        "--",
        "/bin/cat",
        "/etc/hostname",
    ];
    let run = |flags: &[&str]| {
        let mut v = vec!["trace"];
        v.extend_from_slice(flags);
        v.extend_from_slice(&args);
        let out = utrace(&v);
        assert_eq!(out.code, Some(0), "{out:?}");
        out.stderr
    };
    for (flag, check) in [
        (
            "-t",
            Box::new(|s: &str| time_of_day(s, false)) as Box<dyn Fn(&str) -> bool>,
        ),
        ("-tt", Box::new(|s: &str| time_of_day(s, true))),
        (
            "-ttt",
            Box::new(|s: &str| {
                s.split_once('.')
                    .is_some_and(|(a, b)| digits(a) && a.len() >= 10 && b.len() == 6 && digits(b))
            }),
        ),
    ] {
        let text = run(&[flag, "-T"]);
        let mut calls = 0;
        for line in text.lines() {
            let (stamp, rest) = line.split_once(' ').expect("a stamp");
            assert!(check(stamp), "{flag}: {stamp:?} in {line:?}");
            if rest.starts_with("openat(") || rest.starts_with("close(") {
                calls += 1;
                let dur = rest.rsplit_once(" <").map(|(_, d)| d).unwrap_or("");
                let dur = dur.strip_suffix('>').unwrap_or("");
                assert!(
                    dur.split_once('.')
                        .is_some_and(|(a, b)| digits(a) && b.len() == 6 && digits(b)),
                    "-T duration in {line:?}"
                );
            }
        }
        assert!(calls >= 4, "{text}");
    }
    // Without the stamps and durations, the lines are strace's.
    let strip = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                let l = l.split_once(' ').map_or(l, |(_, r)| r);
                let l = l
                    .rsplit_once(" <")
                    .filter(|(_, d)| d.ends_with('>'))
                    .map_or(l, |(a, _)| a);
                l.trim_end().to_string()
            })
            .collect()
    };
    let ours = strip(&run(&["-tt", "-T"]));
    let theirs = run_strace(&[
        "-tt",
        "-T",
        "-e",
        "trace=openat,close",
        "/bin/cat",
        "/etc/hostname",
    ]);
    let theirs = strip(&theirs.stderr);
    assert_eq!(ours, theirs);
}

/// `-s N` shows N bytes of each string, as strace's: the same lines as
/// strace's for a 100-byte write with `-s 200`, `-s 5` and the default;
/// a limit past the server's is refused naming the field.
#[test]
fn string_limit_like_strace() {
    let long = "x".repeat(100);
    for limit in [None, Some("200"), Some("5")] {
        let mut args = vec!["-e", "trace=write"];
        if let Some(n) = limit {
            args.extend_from_slice(&["-s", n]);
        }
        let mut ours_args = vec!["trace"];
        ours_args.extend_from_slice(&args);
        ours_args.extend_from_slice(&["--", "/bin/echo", &long]);
        let ours = utrace(&ours_args);
        assert_eq!(ours.code, Some(0), "{ours:?}");
        let mut theirs_args = args.clone();
        theirs_args.extend_from_slice(&["/bin/echo", &long]);
        let theirs = run_strace(&theirs_args);
        let writes = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with("write("))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(writes(&ours.stderr), writes(&theirs.stderr), "-s {limit:?}");
        assert!(!writes(&ours.stderr).is_empty());
    }
    let refused = utrace(&["trace", "-s", "100000", "--", "/bin/true"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("decode_string_limit"),
        "{}",
        refused.stderr
    );
}

/// Run `utrace trace FLAGS -o FILE -- PROGRAM` and `strace FLAGS -o FILE
/// PROGRAM` (the trace apart from the program's own stderr): their exit
/// codes and traces.
fn both(
    tag: &str,
    flags: &[&str],
    program: &[&str],
) -> ((Option<i32>, String), (Option<i32>, String)) {
    let ours_file = temp_trace(&format!("{tag}-ours"));
    let theirs_file = temp_trace(&format!("{tag}-theirs"));
    let (o, t) = (
        ours_file.to_str().expect("path").to_string(),
        theirs_file.to_str().expect("path").to_string(),
    );
    let mut args = vec!["trace"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["-o", &o, "--"]);
    args.extend_from_slice(program);
    let ours = utrace(&args);
    let mut args = flags.to_vec();
    args.extend_from_slice(&["-o", &t]);
    args.extend_from_slice(program);
    let theirs = run_strace(&args);
    let read = |f: &std::path::Path| {
        let s = std::fs::read_to_string(f).unwrap_or_default();
        let _ = std::fs::remove_file(f);
        s
    };
    (
        (ours.code, read(&ours_file)),
        (theirs.code, read(&theirs_file)),
    )
}

/// `-a COLUMN` aligns results where strace's does: the same lines, byte
/// for byte, for calls whose text has no address in it.
#[test]
fn result_column_like_strace() {
    for column in ["60", "10"] {
        let ((oc, ours), (tc, theirs)) = both(
            &format!("a{column}"),
            &["-a", column, "-e", "trace=close,exit_group"],
            &["/bin/true"],
        );
        assert_eq!((oc, tc), (Some(0), Some(0)), "{ours}\n{theirs}");
        assert_eq!(ours, theirs, "-a {column}");
        assert!(ours.contains("close(3)"), "{ours}");
    }
}

/// `line` with every hex number of 8 digits or more written `0x?`.
fn no_addresses(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        let digits = rest[i + 2..]
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .count();
        if digits >= 8 {
            out.push_str("0x?");
        } else {
            out.push_str(&rest[i..i + 2 + digits]);
        }
        rest = &rest[i + 2 + digits..];
    }
    out.push_str(rest);
    out
}

/// strace's syscall sets in `-e trace=`: classes, negation, regular
/// expressions, `?` and the old bare class names select the same calls,
/// in the same order, as they do for strace on the same program.
#[test]
fn syscall_sets_like_strace() {
    let program = ["/bin/cat", "/etc/hostname", "/nonexistent"];
    for (i, set) in [
        "%file",
        "!%file",
        "file",
        "/^(open|close)",
        "?nosuchcall,openat,read",
        "%%stat",
        "%memory,%desc",
        "!all",
    ]
    .into_iter()
    .enumerate()
    {
        let expr = format!("trace={set}");
        let ((oc, ours), (tc, theirs)) = both(&format!("set{i}"), &["-e", &expr], &program);
        assert_eq!(oc, Some(1), "cat fails on the missing file");
        assert_eq!(oc, tc);
        assert_eq!(
            syscall_names(&ours),
            syscall_names(&theirs),
            "-e trace={set}\nours:\n{ours}\ntheirs:\n{theirs}"
        );
    }
    for (bad, words) in [
        ("trace=nosuchcall", "invalid system call 'nosuchcall'"),
        ("trace=%nothing", "not a syscall class"),
        ("trace=/(", "not a regular expression"),
    ] {
        let r = utrace(&["trace", "-e", bad, "--", "/bin/true"]);
        assert_eq!(r.code, Some(2), "{bad}: {r:?}");
        assert!(r.stderr.contains(words), "{bad}: {}", r.stderr);
    }
}

/// `-e status=`, `-z`, `-Z` and `-e signal=` print what strace prints:
/// the failed calls only (whole lines, as strace, which waits for the
/// outcome), the successful ones only, and only the signals asked for.
#[test]
fn status_and_signal_filters_like_strace() {
    let program = ["/bin/cat", "/nonexistent", "/etc/hostname"];
    for (i, flags) in [
        &["-e", "status=failed"][..],
        &["-Z"],
        &["-z", "-e", "trace=openat,read,close"],
        &["-e", "status=!successful", "-e", "trace=%file"],
    ]
    .into_iter()
    .enumerate()
    {
        let ((oc, ours), (tc, theirs)) = both(&format!("status{i}"), flags, &program);
        assert_eq!(oc, tc, "{flags:?}");
        // Addresses change from run to run (ASLR): long hex numbers are
        // compared as `0x?`; brk and mmap lines aside.
        let calls = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with("brk(") && !l.starts_with("mmap("))
                .map(no_addresses)
                .collect()
        };
        assert_eq!(calls(&ours), calls(&theirs), "{flags:?}");
        assert!(calls(&ours).len() > 2, "{flags:?}: {ours}");
    }
    // Two signals, one shown. (The shell ignores both.)
    let script = [
        "sh",
        "-c",
        "trap '' USR1 USR2; kill -USR1 $$; kill -USR2 $$",
    ];
    let signals = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("---"))
            .map(|l| l.split(' ').nth(1).unwrap_or_default().to_string())
            .collect()
    };
    let ((oc, ours), (_, theirs)) = both(
        "signal",
        &["-e", "trace=none", "-e", "signal=SIGUSR2"],
        &script,
    );
    assert_eq!(oc, Some(0));
    assert_eq!(signals(&ours), ["SIGUSR2"]);
    assert_eq!(signals(&ours), signals(&theirs));
    let ((_, ours), _) = both(
        "nosignal",
        &["-e", "trace=none", "-e", "signal=!all"],
        &script,
    );
    assert!(signals(&ours).is_empty(), "{ours}");
}

/// `-e fault=` (ENOSYS by default) and inject's `when=FIRST..LAST`,
/// `delay_enter=`, `delay_exit=` and `signal=`, against strace: the same
/// lines, marks (`(INJECTED)`, `(DELAYED)`) included. A signal strace
/// injects is the kernel's (`si_code=SI_KERNEL`); ours is sent with tgkill
/// (`SI_TKILL` and the server's pid): only the signal's name is compared.
#[test]
fn fault_and_inject_actions_like_strace() {
    let program = ["/bin/cat", "/etc/hostname"];
    for (i, expr) in [
        "fault=openat:when=3",
        "fault=openat:error=EACCES:when=2..3",
        "inject=openat:error=ENOENT:when=2..4+2",
        "inject=openat:delay_enter=20ms:when=3",
        "inject=openat:error=EPERM:delay_exit=1ms:when=1",
    ]
    .into_iter()
    .enumerate()
    {
        let ((oc, ours), (tc, theirs)) = both(
            &format!("inject{i}"),
            &["-e", "trace=openat", "-e", expr],
            &program,
        );
        assert_eq!(oc, tc, "{expr}");
        assert_eq!(ours, theirs, "{expr}");
        assert!(
            ours.contains("(INJECTED)") || ours.contains("(DELAYED)"),
            "{expr}: {ours}"
        );
    }
    // signal=: the program gets it at the call, and dies of it.
    let script = ["sh", "-c", "echo $$; true"];
    let ((oc, ours), (tc, theirs)) = both(
        "injectsig",
        &["-e", "trace=getpid", "-e", "inject=getpid:signal=SIGUSR1"],
        &script,
    );
    // Both die of it, as the program did.
    assert_eq!(oc, None, "killed by SIGUSR1: {ours}");
    assert_eq!(oc, tc);
    let shape = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| match l.split_once(" {") {
                Some((head, _)) if l.starts_with("---") => head.to_string(),
                _ => l.split(" = ").next().unwrap_or(l).to_string(),
            })
            .collect()
    };
    assert_eq!(shape(&ours), shape(&theirs));
    assert!(ours.contains("+++ killed by SIGUSR1 +++"), "{ours}");
}

/// Signal lines carry what strace's carry (`si_uid`, and a SIGCHLD's
/// child fields), and utrace ends as strace does: killed by the signal
/// that killed the program (not `128 + N`), and by SIGPIPE when the
/// reader of its output goes away (not a panic).
#[test]
fn signal_lines_and_exit_status_like_strace() {
    let script = ["sh", "-c", "true & wait; kill -USR1 $$"];
    let ((oc, ours), (tc, theirs)) = both("sigchld", &["-f", "-e", "trace=none"], &script);
    assert_eq!(oc, None, "killed by SIGUSR1, as the program: {ours}");
    assert_eq!(oc, tc);
    // Pids differ from run to run.
    let norm = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| {
                let l = strip_prefix(l);
                match l.split_once("si_pid=") {
                    Some((a, b)) => {
                        let rest = b.trim_start_matches(|c: char| c.is_ascii_digit());
                        format!("{a}si_pid=N{rest}")
                    }
                    None => l.to_string(),
                }
            })
            .collect()
    };
    assert_eq!(norm(&ours), norm(&theirs));
    assert!(ours.contains("si_code=CLD_EXITED, si_pid="), "{ours}");
    assert!(
        ours.contains(", si_uid=0, si_status=0, si_utime="),
        "{ours}"
    );

    // The reader of the trace leaves after one line.
    use std::io::BufRead;
    let sigpipe = |mut cmd: Command| {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run");
        let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        err.read_line(&mut first).expect("a first line");
        drop(err);
        let out = wait_bounded(child, "a trace whose reader left");
        (first, out)
    };
    let mut ours_cmd = utrace_command(&["trace", "--", "seq", "1", "200000"]);
    ours_cmd.stderr(Stdio::piped());
    let (first, ours) = sigpipe(ours_cmd);
    assert!(first.starts_with("execve("), "{first}");
    let mut theirs_cmd = Command::new(strace());
    theirs_cmd.args(["seq", "1", "200000"]);
    let (_, theirs) = sigpipe(theirs_cmd);
    assert_eq!(ours.code, None, "killed by SIGPIPE: {ours:?}");
    assert_eq!(ours.signal, Some(libc::SIGPIPE));
    assert_eq!(ours.signal, theirs.signal);
    assert!(!ours.stderr.contains("panicked"), "{}", ours.stderr);
}

/// `utrace break` takes a symbol the server finds in the process
/// (`libc:wait4` in a shell that waits for its children), says where it
/// went and reports the hits; an unknown one is NOT_FOUND with the file
/// it was looked for in. `utrace regs` with an unknown name lists the
/// valid ones.
#[test]
fn break_by_symbol_and_register_names() {
    let mut sh = Command::new("sh")
        .args(["-c", "while :; do sleep 0.01; done"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("a shell");
    let pid = sh.id().to_string();
    let out = utrace(&["break", "-p", &pid, "libc:wait4", "--count", "2"]);
    let unknown = utrace(&["break", "-p", &pid, "no_such_function"]);
    let regs = utrace(&["regs", "-p", &pid, "nosuchreg"]);
    let _ = sh.kill();
    let _ = sh.wait();
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("breakpoint at 0x") && lines[0].ends_with(" (libc:wait4)"),
        "{lines:?}"
    );
    let at = lines[0]
        .split_whitespace()
        .nth(2)
        .expect("an address")
        .to_string();
    assert_eq!(
        lines[1..]
            .iter()
            .filter(|l| l.starts_with(&format!("breakpoint {at} hit by pid {pid}")))
            .count(),
        2,
        "{lines:?}"
    );
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(
        unknown.stderr.contains("NOT_FOUND")
            && unknown.stderr.contains("no symbol \"no_such_function\""),
        "{}",
        unknown.stderr
    );
    assert_eq!(regs.code, Some(1), "{regs:?}");
    assert!(
        regs.stderr.contains("the registers are rax, rbx") && regs.stderr.contains("xmm0-xmm15"),
        "{}",
        regs.stderr
    );
}

/// strace's order: the line for a call is written before the call returns
/// to the program, so the program's own output on the same stderr comes
/// between the lines of the calls around it. Five runs, each in order
/// (before lines were written on the tracer thread, all three MARKs came
/// first in most runs).
#[test]
fn lines_come_in_program_order() {
    let utrace = env!("CARGO_BIN_EXE_utrace");
    for run in 0..5 {
        // utrace's stderr and the program's are one pipe, as on a terminal.
        let script = format!(
            "{utrace} trace -e trace=openat -- sh -c \
             'for i in 1 2 3; do echo MARK$i >&2; exec 3</dev/null; done' 2>&1"
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .env_remove("UTRACE_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sh");
        let out = wait_bounded(child, "utrace trace (order)");
        let seq: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| {
                if l.starts_with("MARK") {
                    Some("MARK")
                } else if l.contains("\"/dev/null\", O_RDONLY)") {
                    Some("openat")
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(
            seq,
            ["MARK", "openat", "MARK", "openat", "MARK", "openat"],
            "run {run}: {}",
            out.stdout
        );
    }
}

/// A line's leader normalised: every `N.NNNNNN` time written `T`, every
/// 16-digit instruction pointer `IP`.
fn no_times(line: &str) -> String {
    let re = regex::Regex::new(r"\d+\.\d{6}").expect("regex");
    let ip = regex::Regex::new(r"\[[0-9a-f]{16}\]").expect("regex");
    ip.replace_all(&re.replace_all(line, "T"), "[IP]")
        .into_owned()
}

/// `-r`, `-n`, `-i`, `-qq` print strace's leaders; `-E` changes the
/// program's environment; `-C` prints the lines and the table; `-S`
/// orders the table. (A difference left: with `-n`, strace numbers a
/// `+++ exited +++` line with the thread's last syscall even when no
/// syscall is traced; utrace knows only the traced ones.)
#[test]
fn leaders_quiet_env_and_summaries_like_strace() {
    strace();
    let pids = regex::Regex::new(r"si_pid=\d+").expect("regex");
    let lines = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| pids.replace_all(&no_times(l), "si_pid=N").into_owned())
            .collect()
    };
    for flags in [
        &["-r", "-e", "trace=openat,close"][..],
        &["-r", "-tt", "-e", "trace=openat"][..],
        &["-n", "-i", "-e", "trace=openat,exit_group"][..],
        &["-qq", "-e", "trace=exit_group"][..],
    ] {
        let ((oc, ours), (tc, theirs)) = both("leaders", flags, &["cat", "/dev/null"]);
        assert_eq!(oc, tc, "{flags:?}");
        assert_eq!(lines(&ours), lines(&theirs), "{flags:?}\n{ours}\n{theirs}");
        assert!(!ours.is_empty(), "{flags:?}");
    }
    // Signals get the instruction pointer too, exits question marks.
    let ((_, ours), (_, theirs)) = both(
        "leaders-signal",
        &["-i", "-e", "trace=none"],
        &["sh", "-c", "kill -USR1 $$"],
    );
    assert_eq!(lines(&ours), lines(&theirs), "\n{ours}\n{theirs}");
    assert!(
        ours.contains("[????????????????] +++ killed by SIGUSR1 +++"),
        "{ours}"
    );
    // -E sets and removes, as strace.
    let flags = ["-E", "UTRACE_E=set", "-E", "HOME", "-e", "trace=none"];
    let program = ["sh", "-c", "echo $UTRACE_E ${HOME:-nohome}"];
    for tool in ["utrace", "strace"] {
        let out = if tool == "utrace" {
            let mut args = vec!["trace"];
            args.extend(flags);
            args.push("--");
            args.extend(program);
            utrace(&args)
        } else {
            run_strace(&[&flags[..], &program[..]].concat())
        };
        assert_eq!(out.stdout, "set nohome\n", "{tool}: {out:?}");
    }
    // -C: the lines, then the table.
    let ((_, ours), _) = both(
        "summary",
        &["-C", "-e", "trace=openat"],
        &["cat", "/dev/null"],
    );
    assert!(
        ours.contains("openat(AT_FDCWD, \"/dev/null\", O_RDONLY) = 3"),
        "{ours}"
    );
    let table = ours
        .split("% time")
        .nth(1)
        .expect("a table after the lines");
    assert!(
        table.contains(" openat\n") && table.contains(" total\n"),
        "{ours}"
    );
    // -S calls / name: the rows in that order, as strace's.
    for key in ["calls", "name"] {
        let ((_, ours), (_, theirs)) = both("sort", &["-c", "-S", key], &["ls", "/"]);
        let order = |t: &str| -> Vec<String> {
            t.lines()
                .skip(2)
                .take_while(|l| !l.starts_with("---"))
                .filter_map(|l| l.split_whitespace().last().map(str::to_string))
                .collect()
        };
        let (o, t) = (order(&ours), order(&theirs));
        assert!(o.len() > 5, "{ours}");
        if key == "name" {
            assert_eq!(o, t, "-S name");
        } else {
            // Counts match call for call; equal counts keep strace's tie order (by name).
            let calls = |s: &str, n: &str| {
                s.lines()
                    .find(|l| l.ends_with(&format!(" {n}")))
                    .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
            };
            let mut last = u64::MAX;
            for n in &o {
                let c: u64 = calls(&ours, n).and_then(|c| c.parse().ok()).expect("calls");
                assert!(c <= last, "-S calls: {ours}");
                last = c;
                assert_eq!(calls(&ours, n), calls(&theirs, n), "{n}");
            }
        }
    }
    let bad = utrace(&["trace", "-c", "-S", "bogus", "--", "/bin/true"]);
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(bad.stderr.contains("-S bogus"), "{}", bad.stderr);
}

/// `-y`: descriptors with their paths, as strace shows them (arguments
/// read before the call, so `close` shows what it closes; returned
/// descriptors; `AT_FDCWD` with the working directory; pipes and
/// sockets as the kernel names them).
#[test]
fn descriptor_paths_like_strace() {
    strace();
    let norm =
        regex::Regex::new(r"0x[0-9a-f]+|\[\d+\]|si_pid=\d+|si_[us]time=[^,}]*").expect("regex");
    // SIGCHLD comes when a child ends, whenever that is: not compared.
    let lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("--- SIGCHLD"))
            .map(|l| norm.replace_all(l, "N").into_owned())
            .collect()
    };
    // One process (sh execs python at the end): no interleaving to differ.
    let script = "read l </etc/hostname; exec 5>/dev/null; echo x >&5; \
                  exec python3 -c 'import os, socket; socket.socket().close(); r, w = os.pipe(); os.close(r)'";
    let ((oc, ours), (tc, theirs)) = both(
        "fd-paths",
        &[
            "-y",
            "-e",
            "trace=openat,read,write,close,fcntl,dup2,pipe2,socket",
        ],
        &["sh", "-c", script],
    );
    assert_eq!(oc, tc);
    for want in [
        "</etc/hostname>",
        "<socket:[",
        "<pipe:[",
        "AT_FDCWD</",
        "5</dev/null>",
    ] {
        assert!(ours.contains(want), "{want}: {ours}");
    }
    assert_eq!(lines(&ours), lines(&theirs), "\n{ours}\n---\n{theirs}");
}

/// The first line where `ours` and `theirs` differ, both shown.
fn first_difference(ours: &[String], theirs: &[String]) -> Option<String> {
    let at = (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i))?;
    Some(format!(
        "line {at}:\nours:   {:?}\ntheirs: {:?}",
        ours.get(at),
        theirs.get(at)
    ))
}

/// `-yy`: sockets with their protocol and addresses (TCP listening,
/// connected and accepted, UDPv6 bound, unix abstract and socketpair,
/// netlink), devices with their numbers, pidfds with their process, as
/// strace -yy shows them (inodes, ports and pids aside).
#[test]
fn socket_and_device_details_like_strace() {
    strace();
    let script = "import socket, os\n\
        s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n\
        c=socket.create_connection(s.getsockname()); a,_=s.accept(); c.send(b'x'); a.recv(1)\n\
        u=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); u.bind('\\0utrace-yy'); u.getsockname()\n\
        p1,p2=socket.socketpair(); p1.send(b'y')\n\
        s6=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s6.bind(('::1',0)); s6.getsockname()\n\
        n=socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); n.bind((0,0)); n.getsockname()\n\
        f=os.open('/dev/null', os.O_RDONLY); os.dup2(f, 20)\n\
        pf=os.pidfd_open(os.getpid()); os.dup2(pf, 21)\n\
        os._exit(0)\n";
    let ((oc, ours), (tc, theirs)) = both(
        "yy",
        &[
            "-yy",
            "-e",
            "trace=bind,listen,connect,accept4,sendto,recvfrom,getsockname,dup2,pidfd_open",
        ],
        &["python3", "-c", script],
    );
    assert_eq!((oc, tc), (Some(0), Some(0)), "{ours}\n---\n{theirs}");
    // Inodes, ports, pids and netlink port ids vary; so do the CPU times
    // of a child the interpreter may start (a SIGCHLD line, in CI's
    // Python: 1 tick in one run, 0 in the other).
    let vary = [
        (r"(si_[us]time=)\d+( /\* [\d.]+ s \*/)?", "${1}N"),
        (r"(\d+\.\d+\.\d+\.\d+|\]|ROUTE):\d+", "${1}:N"),
        (r"([\[>])\d+([\],-])", "${1}N${2}"),
        (r"(htons\(|pid:|pid=|pidfd_open\()\d+", "${1}N"),
        (r"0x[0-9a-f]+", "N"),
    ]
    .map(|(re, to)| (regex::Regex::new(re).expect("regex"), to));
    let lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("+++"))
            .map(|l| {
                vary.iter().fold(l.to_string(), |l, (re, to)| {
                    re.replace_all(&l, *to).into_owned()
                })
            })
            .collect()
    };
    let diff = first_difference(&lines(&ours), &lines(&theirs));
    assert!(diff.is_none(), "{}", diff.unwrap_or_default());
    let ours = lines(&ours).join("\n");
    for want in [
        "listen(3<TCP:[127.0.0.1:N]>, 128)",
        "= 5<TCP:[127.0.0.1:N->127.0.0.1:N]>",
        "sendto(4<TCP:[127.0.0.1:N->127.0.0.1:N]>",
        "getsockname(6<UNIX:[N,@\"utrace-yy\"]>",
        "sendto(7<UNIX-STREAM:[N->N]>",
        "getsockname(9<UDPv6:[[::1]:N]>",
        // The descriptor's number depends on what the Python opened first.
        "<NETLINK:[ROUTE:N]>, {sa_family=AF_NETLINK, nl_pid=N, nl_groups=00000000}",
        "</dev/null<char 1:3>>, 20)",
        "= 20</dev/null<char 1:3>>",
        "<pid:N>, 21)",
        "= 21<pid:N>",
    ] {
        assert!(ours.contains(want), "{want:?} in:\n{ours}");
    }
}

/// `-yy` on a program in a network namespace of its own: its sockets are
/// found there (strace asks in its own namespace and shows only the
/// inode).
#[test]
fn socket_details_in_the_programs_network_namespace() {
    strace();
    let script = "import socket; a,b=socket.socketpair(); a.send(b'x'); \
                  n=socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); n.bind((0,0)); \
                  n.getsockname()";
    let program = ["unshare", "-n", "python3", "-c", script];
    let ((oc, ours), (_, theirs)) = both(
        "yy-netns",
        &["-f", "-yy", "-e", "trace=sendto,getsockname"],
        &program,
    );
    assert_eq!(oc, Some(0), "{ours}");
    let pair = regex::Regex::new(r"sendto\(3<UNIX-STREAM:\[(\d+)->(\d+)\]>").expect("regex");
    assert!(pair.is_match(&ours), "{ours}");
    assert!(ours.contains("<NETLINK:[ROUTE:"), "{ours}");
    // strace, asking from its own namespace, does not find them.
    let inode_only = regex::Regex::new(r"sendto\(3<UNIX-STREAM:\[\d+\]>").expect("regex");
    assert!(inode_only.is_match(&theirs), "{theirs}");
}

/// `-v`: the environment of `execve` (in the order the program gets it),
/// every field of `stat` and `statx` with the times' dates, directory
/// entries and `uname`'s fields, as strace -v shows them.
#[test]
fn verbose_structures_like_strace() {
    strace();
    let dir = temp_trace("v-dir");
    std::fs::create_dir_all(dir.join("sub")).expect("dir");
    std::fs::write(dir.join("file"), "12345").expect("file");
    let d = dir.to_str().expect("path");
    let script = format!("ls -a {d} >/dev/null; stat {d}/file >/dev/null; uname -a >/dev/null");
    let ((oc, ours), (tc, theirs)) = both(
        "v",
        &[
            "-f",
            "-v",
            "-E",
            "UTRACE_V_TEST=1",
            "-e",
            "trace=execve,getdents64,statx,uname",
        ],
        &["sh", "-c", &script],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((oc, tc), (Some(0), Some(0)), "{ours}\n---\n{theirs}");
    // Access times change as the runs read the files; pipes are new.
    let vary = regex::Regex::new(
        r"^\d+ +|0x7[0-9a-f]+|st_atime=\d+( /\*[^*]*\*/)?, st_atime_nsec=\d+|stx_atime=\{[^}]*\}( /\*[^*]*\*/)?|st_ino=\d+, st_mode=S_IFIFO",
    )
    .expect("regex");
    let lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.contains("+++") && !l.contains("---"))
            .filter(|l| !l.contains("resumed>") && !l.contains("<unfinished"))
            .map(|l| vary.replace_all(l, "_").into_owned())
            .collect()
    };
    let diff = first_difference(&lines(&ours), &lines(&theirs));
    assert!(diff.is_none(), "{}", diff.unwrap_or_default());
    let ours = lines(&ours).join("\n");
    for want in [
        "\"UTRACE_V_TEST=1\"]) = 0",
        "d_type=DT_DIR, d_name=\"sub\"}",
        "d_type=DT_REG, d_name=\"file\"}",
        "stx_size=5, stx_blocks=",
        "stx_mtime={tv_sec=",
        ", release=\"",
    ] {
        assert!(ours.contains(want), "{want:?} in:\n{ours}");
    }
    assert!(!ours.contains(" vars */"), "{ours}");
}

/// A program stopped by SIGSTOP: `--- stopped by SIGSTOP ---` after its
/// signal line, as strace prints (EVENT_KIND_GROUP_STOP).
#[test]
fn group_stop_like_strace() {
    strace();
    let script = "(sleep 0.3; kill -CONT $$) & kill -STOP $$; wait";
    let ((oc, ours), (tc, theirs)) = both(
        "group-stop",
        &["-e", "trace=none", "-e", "signal=SIGSTOP,SIGCONT"],
        &["sh", "-c", script],
    );
    let pids = regex::Regex::new(r"si_pid=\d+").expect("regex");
    let norm = |t: &str| pids.replace_all(t, "si_pid=N").into_owned();
    assert_eq!((oc, norm(&ours)), (tc, norm(&theirs)));
    assert!(ours.contains("--- stopped by SIGSTOP ---"), "{ours}");
}

/// `-x` and `-xx`: strings in `\x` hex as strace prints them (a string
/// with a non-ASCII byte whole; every string and path).
#[test]
fn hex_strings_like_strace() {
    strace();
    let data = temp_trace("hex-data");
    std::fs::write(&data, b"ab\x01c\n").expect("data file");
    let path = data.to_str().expect("path").to_string();
    let addr = regex::Regex::new(r"0x[0-9a-f]{6,}").expect("regex");
    for flag in ["-x", "-xx"] {
        let ((oc, ours), (tc, theirs)) = both(
            "hex",
            &[flag, "-e", "trace=execve,openat,read,write"],
            &["cat", &path],
        );
        assert_eq!(oc, tc);
        let norm = |t: &str| addr.replace_all(t, "P").into_owned();
        assert_eq!(norm(&ours), norm(&theirs), "{flag}");
        assert!(ours.contains("\\x01"), "{flag}: {ours}");
    }
    let _ = std::fs::remove_file(&data);
}

/// `-b execve` as strace's: with `-f`, a process is let go at its exec
/// (the line ends ` <detached ...>`) and runs its program untraced to its
/// end, while the rest of the tree is still traced; the same calls as
/// strace's, and exit 0 (the traced program's own end is not known).
#[test]
fn detach_on_execve_like_strace() {
    let (ours_file, theirs_file) = (temp_trace("b-ours"), temp_trace("b-theirs"));
    let script = "echo one; /bin/echo two; exec /bin/echo three";
    let ours = utrace(&[
        "trace",
        "-f",
        "-b",
        "execve",
        "-o",
        ours_file.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    let theirs = run_strace(&[
        "-f",
        "-b",
        "execve",
        "-o",
        theirs_file.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    let (u, s) = (
        std::fs::read_to_string(&ours_file).unwrap_or_default(),
        std::fs::read_to_string(&theirs_file).unwrap_or_default(),
    );
    let _ = (
        std::fs::remove_file(&ours_file),
        std::fs::remove_file(&theirs_file),
    );
    assert_eq!(ours.code, Some(0), "{ours:?}");
    assert_eq!(theirs.code, Some(0), "{theirs:?}");
    // The programs left ran to their end: all three words.
    assert_eq!(ours.stdout, "one\ntwo\nthree\n", "{ours:?}");
    // The execs (the rest of the calls interleave with SIGCHLD's handler
    // as the scheduler has it, in both traces; so does whether the vforked
    // child's exec is cut by its parent's line, `<unfinished ...>`, or not,
    // `<detached ...>`).
    let ptr =
        regex::Regex::new(r"0x[0-9a-f]+| <unfinished \.\.\.>| <detached \.\.\.>").expect("regex");
    let execs = |t: &str| -> Vec<String> {
        t.lines()
            .map(strip_prefix)
            .filter(|l| l.contains("execve("))
            .map(|l| ptr.replace_all(l, "_").into_owned())
            .collect()
    };
    assert_eq!(execs(&u), execs(&s), "ours:\n{u}\nstrace's:\n{s}");
    assert_eq!(execs(&u).len(), 3, "{u}");
    // The last exec (sh's own) ends the trace, detached; nothing of the
    // new program follows (no exit line: its end is not seen).
    let last = u.lines().last().unwrap_or_default();
    assert!(
        last.contains("execve(\"/bin/echo\", [\"/bin/echo\", \"three\"]")
            && last.ends_with(" <detached ...>"),
        "{u}"
    );
    assert!(!u.contains("+++ exited"), "{u}");
    // Only execve is strace's.
    let bad = utrace(&["trace", "-b", "openat", "--", "true"]);
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(bad.stderr.contains("only execve"), "{bad:?}");
}

/// A socket program's options, epoll events and address lengths decode
/// as strace's: `SOL_SOCKET, SO_REUSEADDR, [1]`, `SOL_TCP, TCP_NODELAY`,
/// `getsockopt`'s value and length, `{events=EPOLLIN, data={…}}` in and
/// out, and `[128 => 16]` where the kernel shortened a length (ports and
/// pointers aside, which differ from run to run).
#[test]
fn socket_options_and_epoll_decode_like_strace() {
    let script = "import socket, select\n\
        l=socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
        l.bind(('127.0.0.1',0)); l.listen(4)\n\
        c=socket.create_connection(l.getsockname()); a,_=l.accept()\n\
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n\
        c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)\n\
        ep=select.epoll(); ep.register(a.fileno(), select.EPOLLIN); c.send(b'hi')\n\
        ep.poll(1); a.recv(2)\n";
    let set = "-etrace=setsockopt,getsockopt,epoll_ctl,epoll_wait,getsockname,accept4";
    let ours = utrace(&["trace", set, "--", "python3", "-c", script]);
    let theirs = run_strace(&[set, "--", "python3", "-c", script]);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    let vary = regex::Regex::new(r"0x[0-9a-f]+|htons\(\d+\)").expect("regex");
    let calls = |trace: &str| -> Vec<String> {
        trace
            .lines()
            .map(strip_prefix)
            // The interpreter's launcher's children end with SIGCHLDs.
            .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
            .map(|l| vary.replace_all(l, "_").into_owned())
            .collect()
    };
    let (u, s) = (calls(&ours.stderr), calls(&theirs.stderr));
    assert_eq!(u, s, "ours:\n{}\nstrace's:\n{}", ours.stderr, theirs.stderr);
    let all = u.join("\n");
    for want in [
        "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0",
        "SOL_TCP, TCP_NODELAY, [1], 4) = 0",
        "getsockopt(4, SOL_SOCKET, SO_RCVBUF, [",
        "{events=EPOLLIN, data={u32=5, u64=5}}",
        "[128 => 16]",
    ] {
        assert!(all.contains(want), "{want:?} in:\n{all}");
    }
}

/// `-k`: each call's stack, as strace -k prints it (file, symbol and
/// offset, the offset in the file), after the call's line; the same lines
/// as strace's. A program built without frame pointers is unwound by its
/// call-frame information.
#[test]
fn stack_traces_like_strace() {
    let dir = temp_trace("stack");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let exe = dir.join("calls").display().to_string();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/c/calls.c");
    let cc = Command::new("cc")
        .args(["-O2", "-fomit-frame-pointer", "-fno-optimize-sibling-calls"])
        .args(["-o", &exe, src])
        .output()
        .expect("run cc (.ci/run installs gcc)");
    assert!(cc.status.success(), "{cc:?}");
    let ours = utrace(&["trace", "-k", "-e", "trace=write", "--", &exe]);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    let stack: Vec<&str> = ours
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("write(1, \"deep\\n\""))
        .skip(1)
        .take_while(|l| l.starts_with(" > "))
        .collect();
    let frames: Vec<&str> = stack
        .iter()
        .filter_map(|l| l.split_once('(')?.1.split_once('+').map(|(f, _)| f))
        .collect();
    // libc's write, then the program's three functions and main.
    let at = frames
        .iter()
        .position(|f| *f == "inner")
        .unwrap_or_else(|| {
            panic!("no inner frame:\n{}", ours.stderr);
        });
    assert_eq!(
        frames[at..at + 4],
        ["inner", "middle", "outer", "main"],
        "{}",
        ours.stderr
    );
    assert!(stack[0].contains("libc.so.6("), "{}", ours.stderr);
    assert!(stack.iter().all(|l| l.ends_with(']')), "{}", ours.stderr);
    // A call that never returns: exit_group's stack (from its entry) after
    // the exit line, as strace prints it, down to main's return.
    let ours = utrace(&["trace", "-k", "-e", "trace=exit_group", "--", &exe]);
    let after: Vec<&str> = ours
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("+++ exited with 0 +++"))
        .skip(1)
        .collect();
    assert!(after.len() >= 3, "{}", ours.stderr);
    assert!(
        after.iter().all(|l| l.starts_with(" > ")),
        "{}",
        ours.stderr
    );
    assert!(
        after.iter().any(|l| l.contains("(exit+")),
        "{}",
        ours.stderr
    );
    // The same lines as strace -k, where its build has stack traces.
    let probe = run_strace(&["-k", "-e", "trace=none", "true"]);
    if probe.stderr.contains("not supported") {
        println!(
            "skipped the comparison with strace -k: {}",
            probe.stderr.trim()
        );
    } else {
        for args in [vec![exe.as_str()], vec!["ls", "/"]] {
            let set = ["-k", "-e", "trace=openat,write"];
            let ours = utrace(&[&["trace"], &set[..], &["--"], &args[..]].concat());
            let theirs = run_strace(&[&set[..], &args[..]].concat());
            let lines = |trace: &str| -> Vec<String> {
                trace
                    .lines()
                    .filter(|l| !l.starts_with("+++"))
                    .map(String::from)
                    .collect()
            };
            assert_eq!(
                lines(&ours.stderr),
                lines(&theirs.stderr),
                "{args:?}: ours:\n{}\nstrace's:\n{}",
                ours.stderr,
                theirs.stderr
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-P PATH` (repeatable): only the calls that touch a path, by a path
/// argument or a descriptor that refers to it (also after a `dup2`), as
/// strace -P shows them, in a tree followed with `-f`.
#[test]
fn trace_path_like_strace() {
    let script = "cat /etc/hostname /etc/passwd >/dev/null; cat < /etc/hostname >/dev/null";
    let set = ["-f", "-P", "/etc/hostname", "-P", "/etc/passwd"];
    let ours = utrace(&[&["trace"], &set[..], &["sh", "-c", script]].concat());
    let theirs = run_strace(&[&set[..], &["sh", "-c", script]].concat());
    assert_eq!(ours.code, Some(0), "{ours:?}");
    let digits = regex::Regex::new(r"\d{4,}").expect("regex");
    let calls = |trace: &str| -> Vec<String> {
        trace
            .lines()
            .map(strip_prefix)
            .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
            .filter(|l| !l.contains("Process ") || !l.contains(" attached"))
            .map(|l| digits.replace_all(l, "N").into_owned())
            .collect()
    };
    let (u, s) = (calls(&ours.stderr), calls(&theirs.stderr));
    assert_eq!(u, s, "ours:\n{}\nstrace's:\n{}", ours.stderr, theirs.stderr);
    let all = u.join("\n");
    for want in [
        "openat(AT_FDCWD, \"/etc/passwd\", O_RDONLY) = 3",
        "read(0, \"",
        "dup2(3, 0)",
    ] {
        assert!(all.contains(want), "{want:?} in:\n{all}");
    }
    assert!(!all.contains("execve("), "a call touching neither:\n{all}");
}

/// `-X raw` and `-X verbose` print constants as strace's do: numbers
/// (`0x80000`, `-100`, signals by number, `0100644`), or numbers with
/// the names in a comment; the same lines as strace's.
#[test]
fn constant_styles_like_strace() {
    let set = "-etrace=openat,mmap,mprotect,newfstatat,close,read,rt_sigaction,rt_sigprocmask,prlimit64,fcntl";
    let prog = [
        "sh",
        "-c",
        "trap '' INT; read x < /etc/hostname; cat /nonexistent 2>/dev/null",
    ];
    let addr = regex::Regex::new(r"0x[0-9a-f]{8,}").expect("regex");
    let lines = |trace: &str| -> Vec<String> {
        trace
            .lines()
            .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
            .filter(|l| !l.starts_with("cat:") && !l.starts_with("execve("))
            .map(|l| addr.replace_all(l, "ADDR").into_owned())
            .collect()
    };
    for style in ["raw", "verbose"] {
        let ours = utrace(&[&["trace", "-X", style, set], &prog[..]].concat());
        let theirs = run_strace(&[&["-X", style, set], &prog[..]].concat());
        let (u, s) = (lines(&ours.stderr), lines(&theirs.stderr));
        assert_eq!(
            u, s,
            "-X {style}: ours:\n{}\nstrace's:\n{}",
            ours.stderr, theirs.stderr
        );
        let all = u.join("\n");
        let want = match style {
            "raw" => [
                "openat(-100, \"/etc/hostname\", 0)",
                "rt_sigaction(2, {sa_handler=0x1",
            ],
            _ => [
                "openat(-100 /* AT_FDCWD */, \"/etc/hostname\", 0 /* O_RDONLY */)",
                "rt_sigaction(2 /* SIGINT */, {sa_handler=0x1 /* SIG_IGN */",
            ],
        };
        for w in want {
            assert!(all.contains(w), "{w:?} in:\n{all}");
        }
    }
    let bad = utrace(&["trace", "-X", "fancy", "true"]);
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(
        bad.stderr.contains("raw, abbrev and verbose"),
        "{}",
        bad.stderr
    );
}

/// `-e inject=` into several processes at once (`-p A -p B`): each gets
/// the injected error while traced, and opens the file again once utrace
/// has detached (Ctrl-C).
#[test]
fn inject_into_several_attached_processes() {
    let dir = temp_trace("inject-several");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let script = "import time\n\
        while True:\n\
        \x20   try:\n\
        \x20       open('/etc/hostname').close(); print('ok', flush=True)\n\
        \x20   except OSError as e:\n\
        \x20       print('err', e.errno, flush=True)\n\
        \x20   time.sleep(0.02)\n";
    let outs: Vec<std::path::PathBuf> = (0..2).map(|i| dir.join(format!("out{i}"))).collect();
    let mut openers: Vec<std::process::Child> = outs
        .iter()
        .map(|o| {
            Command::new("python3")
                .args(["-c", script])
                .stdout(std::fs::File::create(o).expect("output file"))
                .spawn()
                .expect("run python3")
        })
        .collect();
    let pids: Vec<String> = openers.iter().map(|c| c.id().to_string()).collect();
    let read = |o: &std::path::Path| std::fs::read_to_string(o).unwrap_or_default();
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < DEADLINE, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait("the openers run", &|| {
        outs.iter().all(|o| read(o).contains("ok"))
    });
    let err_path = dir.join("trace.err");
    let child = utrace_command(&[
        "trace",
        "-e",
        "trace=openat",
        "-e",
        "inject=openat:error=ENOENT",
        "-p",
        &pids[0],
        "-p",
        &pids[1],
    ])
    .stderr(std::fs::File::create(&err_path).expect("stderr file"))
    .spawn()
    .expect("run utrace");
    wait("both openers get ENOENT", &|| {
        outs.iter().all(|o| read(o).contains("err 2"))
    });
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = wait_bounded(child, "utrace trace -p -p");
    // Detached: each opens the file again.
    let after: Vec<usize> = outs.iter().map(|o| read(o).len()).collect();
    wait("both open the file again", &|| {
        outs.iter()
            .zip(&after)
            .all(|(o, n)| read(o)[*n..].contains("ok"))
    });
    for c in &mut openers {
        let _ = c.kill();
        let _ = c.wait();
    }
    let trace = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.signal, Some(libc::SIGINT), "{out:?}\n{trace}");
    for pid in &pids {
        assert!(
            trace
                .lines()
                .any(|l| l.starts_with(&format!("[pid {pid:>5}]")) && l.ends_with("(INJECTED)")),
            "{pid} injected:\n{trace}"
        );
        assert!(
            trace.contains(&format!("Process {pid} detached")),
            "{trace}"
        );
    }
}
