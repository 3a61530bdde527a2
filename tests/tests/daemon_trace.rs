//! `utrace trace` through a `utraced` daemon (the real binaries), as a
//! strace user runs it: the program's stdin, stdout and stderr are the
//! user's (carried over the call), its environment is the user's and
//! never the daemon's, its exit status is utrace's, its output and the
//! trace lines keep their order, and a slow reader loses nothing.

mod common;

use std::process::{Command, Output, Stdio};

use common::daemon::Daemon;
use utrace_client::{pb, Client};

/// `sh -c SCRIPT`, where `$U` is `utrace --server` on `d`; its output.
fn sh(d: &Daemon, script: &str) -> Output {
    let utrace = common::users::workspace_bin("utrace");
    let run = format!("U='{} --server {}'; {script}", utrace.display(), d.uri);
    let child = Command::new("sh")
        .args(["-c", &run])
        .env("UTRACE_TEST_CLIENT", "from-the-client")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    let out = common::wait_output(child, common::TIMEOUT);
    println!(
        "--- {script}\nstatus {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_program_has_the_users_stdio_and_environment() {
    let d = Daemon::start_with_env("stdio", &[("UTRACE_TEST_SECRET", "daemon-secret")]);
    // stdin reaches it, stdout and stderr come back apart, its exit
    // status is utrace's.
    let out = sh(
        &d,
        "echo hello | $U trace -e trace=none -- sh -c \
         'read x; echo got $x; echo to-stderr >&2; \
          echo \"${UTRACE_TEST_SECRET:-unset} $UTRACE_TEST_CLIENT\"; exit 4'",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stdout.contains("got hello"), "{stdout}");
    assert!(stderr.contains("to-stderr"), "{stderr}");
    assert!(!stdout.contains("to-stderr"), "{stdout}");
    // The client's variable, not the daemon's.
    assert!(stdout.contains("unset from-the-client"), "{stdout}");
    assert!(!stdout.contains("daemon-secret"), "{stdout}");
    assert!(stderr.contains("+++ exited with 4 +++"), "{stderr}");
}

/// A quiet program traced through the daemon with its stdio carried: the
/// daemon sleeps until something happens. (Its output forwarder used to
/// look every 200 ms whether the trace had ended: 5 wake-ups a second
/// per traced program.)
#[test]
fn a_quiet_traced_program_costs_the_daemon_no_wake_ups() {
    let d = Daemon::start("quiet");
    let utrace = common::users::workspace_bin("utrace");
    let mut t = common::KillOnDrop(
        Command::new(utrace)
            .args(["--server", &d.uri, "trace", "-o", "/dev/null", "--"])
            .args(["sleep", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("utrace trace"),
    );
    // The program: a child of one of the daemon's threads.
    let children = || {
        std::fs::read_dir(format!("/proc/{}/task", d.pid()))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .collect::<String>()
    };
    common::wait_for("the traced sleep", || {
        children().split_whitespace().any(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "sleep")
        })
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = common::schedstat::timeslices(d.pid());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let woken = common::schedstat::timeslices(d.pid()) - before;
    assert!(woken <= 2, "the daemon was woken {woken} times in 2 s");
    let _ = t.0.kill();
}

#[test]
fn output_and_lines_keep_the_programs_order() {
    let d = Daemon::start("order");
    for run in 0..3 {
        let out = sh(
            &d,
            "$U trace -e trace=openat -- sh -c \
             'for i in 1 2 3; do echo MARK$i >&2; exec 3</dev/null; done' 2>&1",
        );
        let seq: Vec<&str> = text(&out.stdout)
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
            "run {run}"
        );
    }
}

#[test]
fn a_closed_output_pipe_ends_the_program_as_it_would_locally() {
    let d = Daemon::start("sigpipe");
    // `yes` writes for ever; `head` takes two lines and leaves: yes dies
    // of SIGPIPE, and utrace with it (141), as under strace.
    let out = sh(
        &d,
        "($U trace -e trace=none -- yes; echo \"utrace=$?\" >&2) | head -2",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(stdout, "y\ny\n");
    assert!(stderr.contains("+++ killed by SIGPIPE +++"), "{stderr}");
    assert!(stderr.contains("utrace=141"), "{stderr}");
}

#[test]
fn a_slow_reader_loses_nothing() {
    let d = Daemon::start("slow-reader");
    let out = sh(
        &d,
        "$U trace --queue-len 64 -- dd if=/dev/zero of=/dev/null bs=1 count=3000 2>&1 \
         | (sleep 1; cat)",
    );
    let stdout = text(&out.stdout);
    let reads = stdout.lines().filter(|l| l.starts_with("read(0, ")).count();
    let writes = stdout
        .lines()
        .filter(|l| l.starts_with("write(1, "))
        .count();
    assert!(!stdout.contains("were lost"), "{stdout}");
    assert_eq!((reads, writes), (3000, 3000));
    // dd's own report, on its stderr, came through too.
    assert!(stdout.contains("3000 bytes"), "{stdout}");
    assert!(stdout.contains("+++ exited with 0 +++"));
}

/// The Stdin call feeds only the caller's own program, and only one
/// started with pipes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_only_for_the_programs_own_client() {
    let d = Daemon::start("stdin-owner");
    let mut owner = Client::connect(&d.uri).await.expect("connect");
    let mut other = Client::connect(&d.uri).await.expect("connect");
    let spawn = |stdio: pb::Stdio| pb::SpawnRequest {
        argv: vec!["sleep".into(), "30".into()],
        stdio: stdio as i32,
        ..Default::default()
    };
    let piped = owner.spawn(spawn(pb::Stdio::Pipes)).await.expect("spawn");
    let plain = owner.spawn(spawn(pb::Stdio::Default)).await.expect("spawn");
    let feed = |engine_id: u64| {
        tokio_stream::iter([pb::StdinRequest {
            engine_id,
            data: b"x\n".to_vec().into(),
            ..Default::default()
        }])
    };
    let err = other
        .stdin(feed(piped.engine_id))
        .await
        .expect_err("not its own");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let err = owner
        .stdin(feed(plain.engine_id))
        .await
        .expect_err("no pipes");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let ok = owner.stdin(feed(piped.engine_id)).await.expect("its own");
    assert_eq!(ok.written, 2);
    for pid in [piped.pid, plain.pid] {
        // SAFETY: killing the sleeps this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// Runs argv[3:] on a pseudo-terminal of 33 rows and 101 columns, types
/// argv[2] (escapes allowed) once argv[1] has been printed, and prints
/// what came out (repr) and the exit code.
const ON_A_TERMINAL: &str = r#"
import os, pty, sys, time, select, struct, fcntl, termios
after = sys.argv[1].encode()
send = sys.argv[2].encode().decode("unicode_escape").encode("latin1")
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[3], sys.argv[3:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
out, sent, deadline = b"", False, time.time() + 30
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if not sent and after in out:
        os.write(fd, send)
        sent = True
_, st = os.waitpid(pid, 0)
print(repr(out.decode(errors="replace")))
print("status", os.waitstatus_to_exitcode(st))
"#;

/// `utrace trace` on a terminal, through a daemon: the program gets a
/// terminal of its own (the size of ours), what is typed reaches it, and
/// Ctrl-C interrupts it, as with `ssh -t`.
#[test]
fn on_a_terminal_the_program_gets_one() {
    let d = Daemon::start("pty");
    let script = d.dir.path("on_a_terminal.py");
    std::fs::write(&script, ON_A_TERMINAL).expect("write the script");
    let utrace = common::users::workspace_bin("utrace");
    let run = |after: &str, send: &str, program: &str| {
        let child = Command::new("python3")
            .args([&script, after, send])
            .arg(&utrace)
            .args([
                "--server",
                &d.uri,
                "trace",
                "-e",
                "trace=none",
                "--",
                "sh",
                "-c",
                program,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        let out = common::wait_output(child, common::TIMEOUT);
        let text = text(&out.stdout);
        println!(
            "--- {program}\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let text = run(
        "READY",
        "hello\\r",
        "tty; test -t 0 && echo ISATTY; stty size; echo READY; read x; echo got $x; exit 3",
    );
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("ISATTY"), "{text}");
    assert!(text.contains("33 101"), "{text}");
    assert!(text.contains("got hello"), "{text}");
    assert!(text.contains("+++ exited with 3 +++"), "{text}");
    assert!(text.ends_with("status 3\n"), "{text}");
    // Ctrl-C reaches the program through its terminal: it dies of
    // SIGINT, and utrace with it.
    let text = run(
        "READY",
        "\\x03",
        "echo READY; sleep 20; echo not-interrupted",
    );
    assert!(!text.contains("not-interrupted"), "{text}");
    assert!(text.contains("+++ killed by SIGINT +++"), "{text}");
    assert!(text.ends_with("status -2\n"), "{text}");
}

/// `GET path` on `addr` (plain HTTP/1.0); the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

/// The value of the sample `name` (with its labels, as printed) in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// `--metrics-listen`: after a traced run, the endpoint's counts are what
/// happened (reports the client received and the drops it was told of,
/// the batches it ran and their ops, the syscall stops), and the text
/// parses as OpenMetrics (Python's prometheus_client parser).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened() {
    let d = Daemon::start_with("metrics", &[], &["--metrics-listen", "127.0.0.1:0"]);
    let mut addr = String::new();
    common::wait_for("the metrics address in the log", || {
        let log = std::fs::read_to_string(d.dir.path("server.log")).unwrap_or_default();
        addr = log
            .split("http://")
            .nth(1)
            .and_then(|r| r.split("/metrics").next())
            .unwrap_or_default()
            .to_string();
        !addr.is_empty()
    });
    let mut c = Client::connect(&d.uri).await.unwrap();
    // A run whose reader is slow and whose queue is short: reports taken
    // and reports dropped, both counted by the client.
    let calls = 20_000;
    let seen = common::slow::slow_reader(&mut c, calls, false).await;
    assert!(seen.dropped > 0, "the reader was slow enough to lose some");
    // Every getppid entry it got, and the death (never dropped).
    assert_eq!(seen.exit_code, Some(0), "{seen:?}");
    let (received, dropped) = (seen.getppid as u64 + 1, seen.dropped);
    // Batches on a running program (each interrupts it), three ops each.
    let (prog, _lines) = common::ticker(20);
    let mut watch = c
        .trace(pb::TraceRequest {
            target: Some(pb::trace_request::Target::Pid(prog.0.id())),
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Death as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let engine = tokio_stream::StreamExt::next(&mut watch)
        .await
        .unwrap()
        .unwrap()
        .engine_id;
    let batches = 4;
    for _ in 0..batches {
        c.batch(engine, prog.0.id())
            .interrupt(true)
            .regs(&["rip"])
            .op(pb::op::Op::ReadMaps(pb::ReadMaps {}))
            .op(pb::op::Op::GetSyscall(pb::GetSyscall {}))
            .send()
            .await
            .unwrap();
    }
    // A sync engine holds the ticker at a write for 50 ms, then lets it go.
    let mut s = c.session().await.unwrap();
    s.attach(
        prog.0.id(),
        pb::EngineSpec {
            events: vec![pb::EventKind::SyscallEntry as i32],
            syscalls: vec!["write".into()],
            sync: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    async fn next_report(s: &mut utrace_client::Session) -> pb::Event {
        loop {
            match tokio::time::timeout(common::TIMEOUT, s.next()).await {
                Ok(Some(Ok(utrace_client::SessionEvent::Report(e)))) => break e,
                Ok(Some(Ok(_))) => continue,
                other => panic!("no report: {other:?}"),
            }
        }
    }
    let held = next_report(&mut s).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    s.decide(utrace_client::Decision::resume(&held))
        .await
        .unwrap();
    // The next write's report: the decision was applied. (Its hold ends
    // with the session, not by a decision.)
    next_report(&mut s).await;
    s.close();
    let pid = prog.0.id();
    let c2 = c.clone();
    common::wait_for("the session's engine gone", move || {
        let mut c = c2.clone();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(c.list_tasks(pid))
        })
        .join()
        .unwrap()
        .is_ok_and(|t| t.iter().all(|t| t.engines.len() == 1))
    });
    let (head, text) = http_get(&addr, "/metrics");
    println!("{head}\n{text}");
    // Scrapes within a second get the same text: a flood of them does not
    // reach the tracer (its CPU time would have moved).
    let (_, again) = http_get(&addr, "/metrics");
    assert_eq!(again, text, "a second scrape at once is the first's text");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert_eq!(
        sample(&text, "utrace_reports_total{engine=\"async\"}"),
        received as f64
    );
    assert_eq!(
        sample(&text, "utrace_reports_dropped_total{engine=\"async\"}"),
        dropped as f64
    );
    assert_eq!(sample(&text, "utrace_batches_total"), batches as f64);
    assert_eq!(
        sample(&text, "utrace_batch_ops_total"),
        (batches * 3) as f64
    );
    assert!(sample(&text, "utrace_stops_total{kind=\"syscall\"}") >= calls as f64);
    assert_eq!(
        sample(&text, "utrace_traced_tasks{mode=\"ptrace\"}"),
        1.0,
        "the ticker"
    );
    assert_eq!(
        sample(&text, "utrace_engines{uid=\"0\"}"),
        1.0,
        "the ticker's engine"
    );
    assert!(sample(&text, "utrace_tracer_cpu_seconds_total") > 0.0);
    // The one hold, decided after 50 ms.
    assert_eq!(sample(&text, "utrace_decisions_total"), 1.0);
    assert_eq!(sample(&text, "utrace_hold_duration_seconds_count"), 1.0);
    let held_for = sample(&text, "utrace_hold_duration_seconds_sum");
    assert!((0.05..5.0).contains(&held_for), "{held_for}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    common::python_module("prometheus_client", "prometheus-client");
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import sys\n\
             from prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
             fams = list(p(sys.stdin.read()))\n\
             print(len(fams), sum(len(f.samples) for f in fams))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run the OpenMetrics parser");
    assert!(
        parsed.status.success(),
        "not OpenMetrics: {}",
        self::text(&parsed.stderr)
    );
    println!("parsed: {}", self::text(&parsed.stdout));
}
