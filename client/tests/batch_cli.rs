//! End-to-end tests of `utrace batch`, `mem` and `regs` (the built binary,
//! as a separate process with its embedded server, or the local daemon if
//! one listens), and of the typed batch builder against an embedded server
//! in this process. Targets are `sleep` processes started here; every wait
//! is bounded.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{status_field, utrace_command, wait_bounded, Output, DEADLINE};

use utrace_client::{pb, Action, Client, Code, FailureKind, OpOutcome, EFLAGS_TF};

/// Run `utrace ARGS…`, with `stdin` as its standard input.
fn utrace_with(args: &[&str], stdin: &str) -> Output {
    let mut child = utrace_command(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("cannot run the utrace binary");
    if let Some(mut pipe) = child.stdin.take() {
        // A command that does not read its input may close it first.
        let _ = pipe.write_all(stdin.as_bytes());
    }
    wait_bounded(child, &format!("utrace {}", args.join(" ")))
}

fn utrace(args: &[&str]) -> Output {
    utrace_with(args, "")
}

/// Run `utrace ARGS…` and expect exit 0.
fn utrace_ok(args: &[&str]) -> Output {
    let out = utrace(args);
    assert_eq!(out.code, Some(0), "utrace {}: {out:?}", args.join(" "));
    out
}

/// Poll `cond` until it holds, at most [`DEADLINE`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_until`] without blocking the runtime.
async fn wait_until_async(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `sleep 30` started here, killed when dropped.
struct Target {
    child: Child,
}

impl Target {
    fn start() -> Target {
        let child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start sleep");
        let t = Target { child };
        let pid = t.pid();
        // Exec'd and asleep in nanosleep.
        wait_until("sleep to start", || {
            status_field(pid, "Name").as_deref() == Some("sleep")
                && status_field(pid, "State").is_some_and(|s| s.starts_with('S'))
        });
        t
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn arg(&self) -> String {
        self.pid().to_string()
    }

    /// Alive, asleep, and traced by nobody (every engine detached).
    fn assert_untraced(&self) {
        let pid = self.pid();
        wait_until("the target to be untraced", || {
            status_field(pid, "TracerPid").as_deref() == Some("0")
        });
        let state = status_field(pid, "State").unwrap_or_default();
        assert!(
            state.starts_with('S') || state.starts_with('R'),
            "pid {pid} is {state:?} after the command"
        );
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn hex_u64(s: &str) -> u64 {
    let digits = s
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("{s:?}: not 0x…"));
    u64::from_str_radix(digits, 16).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// `utrace regs -p PID NAMES…` as (name, value) pairs.
fn regs(t: &Target, names: &[&str]) -> Vec<(String, u64)> {
    let mut args = vec!["regs", "-p"];
    let pid = t.arg();
    args.push(&pid);
    args.extend_from_slice(names);
    let out = utrace_ok(&args);
    out.text()
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            match (f.next(), f.next(), f.next()) {
                (Some(n), Some(v), None) => (n.to_string(), hex_u64(v)),
                _ => panic!("not `name value`: {l:?}"),
            }
        })
        .collect()
}

fn rsp(t: &Target) -> u64 {
    match regs(t, &["rsp"]).as_slice() {
        [(n, v)] if n == "rsp" => *v,
        other => panic!("regs rsp: {other:?}"),
    }
}

/// `utrace mem read --hex`.
fn mem_hex(t: &Target, addr: u64, len: usize) -> String {
    let out = utrace_ok(&[
        "mem",
        "read",
        "-p",
        &t.arg(),
        &format!("{addr:#x}"),
        &len.to_string(),
        "--hex",
    ]);
    out.text().trim().to_string()
}

#[test]
fn regs_prints_hex_values() {
    let t = Target::start();
    let two = regs(&t, &["rip", "rsp"]);
    assert_eq!(two.len(), 2, "{two:?}");
    assert_eq!((two[0].0.as_str(), two[1].0.as_str()), ("rip", "rsp"));
    assert!(two[0].1 != 0 && two[1].1 != 0, "{two:?}");
    // All registers: the general ones first, in the usual order.
    let all = regs(&t, &[]);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first().copied(), Some("rax"), "{names:?}");
    for n in ["rip", "rsp", "eflags", "fs_base", "orig_rax"] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    // An unknown register fails with the server's code and message.
    let out = utrace(&["regs", "-p", &t.arg(), "nosuchreg"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("utrace: INVALID_ARGUMENT: ") && out.stderr.contains("nosuchreg"),
        "{}",
        out.stderr
    );
    t.assert_untraced();
}

#[test]
fn mem_read_prints_the_bytes() {
    let t = Target::start();
    let sp = rsp(&t);
    let out = utrace_ok(&["mem", "read", "-p", &t.arg(), &sp.to_string(), "16"]);
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first = lines[0];
    assert!(first.starts_with(&format!("{sp:016x}  ")), "{first}");
    let bytes: Vec<&str> = first[18..]
        .split('|')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(bytes.len(), 16, "{first}");
    assert!(bytes
        .iter()
        .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok()));
    assert_eq!(lines[1], format!("{:016x}", sp + 16));
    // --hex and --raw show the same bytes.
    let hex = mem_hex(&t, sp, 16);
    assert_eq!(hex, bytes.concat());
    let raw = utrace_ok(&[
        "mem",
        "read",
        "-p",
        &t.arg(),
        &sp.to_string(),
        "16",
        "--raw",
    ]);
    let raw_hex: String = raw
        .stdout_bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(raw_hex, hex);
    // An unmapped address: the code and the message, exit 1.
    let out = utrace(&["mem", "read", "-p", &t.arg(), "0x10", "8"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("utrace: EFAULT: ") || out.stderr.starts_with("utrace: EIO: "),
        "{}",
        out.stderr
    );
    t.assert_untraced();
}

#[test]
fn batch_answers_each_op_in_order() {
    let t = Target::start();
    let sp = rsp(&t);
    let input = format!(
        r#"[{{"readMemory": {{"addr": "{sp:#x}", "len": 8}}}},
            {{"readMemory": {{"addr": "0x10", "len": 8}}}},
            {{"getRegisters": {{"names": ["rip", "rsp"]}}}}]"#
    );
    let out = utrace_with(&["batch", "-p", &t.arg(), "-"], &input);
    // One op failed: exit 1, told on stderr; every result on stdout.
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("ops[1]: EFAULT") || out.stderr.contains("ops[1]: EIO"),
        "stderr: {}",
        out.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&out.text())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.text()));
    let results = v.as_array().expect("an array");
    assert_eq!(results.len(), 3, "{v}");
    let good = &results[0]["memory"];
    assert_eq!(good["addr"], sp.to_string(), "{v}");
    assert_eq!(good["hex"].as_str().map(str::len), Some(16), "{v}");
    assert!(good.get("error").is_none(), "{v}");
    // The bad read: a failure of that op only (a partial read of 0 bytes,
    // or an op error).
    let bad = &results[1];
    let failed = bad["memory"]["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("EFAULT") || e.starts_with("EIO"))
        || bad["error"]["code"].is_string();
    assert!(failed, "{v}");
    assert_eq!(bad["memory"]["hex"].as_str().unwrap_or(""), "", "{v}");
    let regs = &results[2]["registers"]["values"];
    assert_eq!(regs["rsp"], sp.to_string(), "{v}");
    assert!(regs["rip"].is_string(), "{v}");

    // --stop-on-error: the ops after the failure are skipped.
    let input = r#"[{"readMemory": {"addr": 16, "len": 8}}, {"readMaps": {}}]"#;
    let out = utrace_with(&["batch", "-p", &t.arg(), "--stop-on-error"], input);
    assert_eq!(out.code, Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.text()).expect("JSON");
    assert_eq!(v[1], serde_json::json!({"skipped": {}}), "{v}");

    // A batch that succeeds exits 0, read from a file.
    let dir = std::env::temp_dir().join(format!("utrace-batch-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("ops.json");
    std::fs::write(
        &file,
        r#"[{"get_registers": {"names": ["rip"]}}, {"readMaps": null}, {"getSyscall": {}}]"#,
    )
    .expect("write ops");
    let out = utrace_ok(&["batch", "-p", &t.arg(), &file.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value = serde_json::from_str(&out.text()).expect("JSON");
    assert!(
        v[1]["maps"]["text"]
            .as_str()
            .is_some_and(|m| m.contains("[stack]")),
        "{v}"
    );
    assert!(v[2]["syscall"]["inSyscall"].is_boolean(), "{v}");
    t.assert_untraced();
}

#[test]
fn batch_input_errors_are_usage_errors() {
    // Parsed before connecting: nothing is attached (the pid does not exist).
    let out = utrace_with(&["batch", "-p", "999999999"], "[{\"readMemory\": ");
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .starts_with("utrace: the batch is not valid JSON")
            && out.stderr.contains("line 1"),
        "{}",
        out.stderr
    );
    let out = utrace_with(
        &["batch", "-p", "999999999", "-"],
        r#"[{"readMaps": {}}, {"peek": {"addr": 1}}]"#,
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("ops[1]: unknown op \"peek\"")
            && out.stderr.contains("readMemory")
            && out.stderr.contains("setSyscallReturn"),
        "{}",
        out.stderr
    );
    // A good batch on a pid that does not exist: the server's message, exit 1.
    let out = utrace_with(&["batch", "-p", "999999999"], "[]");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.starts_with("utrace: "), "{}", out.stderr);
}

#[test]
fn mem_write_then_read_back() {
    let t = Target::start();
    let addr = rsp(&t) - 64;
    let before = mem_hex(&t, addr, 8);
    assert_eq!(before.len(), 16);
    utrace_ok(&[
        "mem",
        "write",
        "-p",
        &t.arg(),
        &format!("{addr:#x}"),
        "1122334455667788",
    ]);
    assert_eq!(mem_hex(&t, addr, 8), "1122334455667788");
    // Put the stack back as it was.
    utrace_ok(&["mem", "write", "-p", &t.arg(), &addr.to_string(), &before]);
    assert_eq!(mem_hex(&t, addr, 8), before);
    t.assert_untraced();
}

#[test]
fn regs_set_then_get() {
    let t = Target::start();
    // r15 is callee-saved and untouched by the syscall `sleep` waits in.
    let old = match regs(&t, &["r15"]).as_slice() {
        [(_, v)] => *v,
        other => panic!("{other:?}"),
    };
    utrace_ok(&["regs", "set", "-p", &t.arg(), "r15=0x1122334455667788"]);
    assert_eq!(
        regs(&t, &["r15"]),
        [("r15".to_string(), 0x1122334455667788)]
    );
    utrace_ok(&["regs", "set", "-p", &t.arg(), &format!("r15={old}")]);
    assert_eq!(regs(&t, &["r15"]), [("r15".to_string(), old)]);
    let out = utrace(&["regs", "set", "-p", &t.arg(), "nosuchreg=1"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("utrace: INVALID_ARGUMENT: "),
        "{}",
        out.stderr
    );
    t.assert_untraced();
}

/// The typed builder, against an embedded server in this process and a
/// `sleep` it spawns, held at its first instruction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_typed_results() {
    match tokio::time::timeout(DEADLINE, builder_scenario()).await {
        Ok(()) => {}
        Err(_) => panic!("the builder scenario took more than {DEADLINE:?}"),
    }
}

async fn builder_scenario() {
    let server = utraced::Embedded::start().await.expect("embedded server");
    let mut client = Client::connect(&server.uri()).await.expect("connect");
    let spawned = client
        .spawn(pb::SpawnRequest {
            argv: vec!["sleep".into(), "30".into()],
            stop_at_entry: true,
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Death as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("spawn sleep");
    let engine = spawned.engine_id;

    // Held at entry: no interrupt needed. At entry, [rsp] is argc and
    // [rsp + 8] argv[0].
    let first = client
        .batch(engine, 0)
        .regs(&["rip", "rsp", "rax"])
        .send()
        .await
        .expect("first batch");
    let rip = first.register(0, "rip").expect("rip");
    let sp = first.register(0, "rsp").expect("rsp");
    let rax = first.register(0, "rax").expect("rax");
    let argv = client
        .batch(engine, 0)
        .read(sp, 8)
        .read(sp + 8, 8)
        .send()
        .await
        .expect("argv batch");
    let argc = argv.memory(0).expect("argc");
    assert_eq!(argc, 2u64.to_le_bytes(), "argc");
    let argv0 = u64::from_le_bytes(
        argv.memory(1)
            .expect("argv[0]")
            .try_into()
            .expect("8 bytes"),
    );

    let r = client
        .batch(engine, 0)
        .read(sp, 8) // 0
        .read(0x10, 8) // 1: fails alone
        .read_string(argv0, 256) // 2
        .regs(&["rip"]) // 3
        .set_regs(&[("rax", 0x1234)]) // 4
        .regs(&["rax".to_string()]) // 5
        .set_bits("eflags", EFLAGS_TF, 0) // 6: old value, without TF
        .set_bits("eflags", 0, EFLAGS_TF) // 7: old value, with TF
        .write(sp - 64, [1u8, 2, 3, 4]) // 8
        .read(sp - 64, 4) // 9
        .syscall() // 10
        .maps() // 11
        .events() // 12
        .op(pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint {
            addr: rip,
            ..Default::default()
        })) // 13
        .set_reg("rax", rax) // 14
        .send()
        .await
        .expect("big batch");
    assert_eq!(r.len(), 15);
    assert_eq!(r.memory(0).expect("read 0"), 2u64.to_le_bytes());
    let bad = r.memory(1).expect_err("read of 0x10");
    assert_eq!(bad.kind, FailureKind::Partial, "{bad}");
    // The proto says EFAULT; the /proc/PID/mem fallback answers EIO.
    assert!(["EFAULT", "EIO"].contains(&bad.code.as_str()), "{bad}");
    assert_eq!(r.read(1).map(|m| m.data.len()), Ok(0));
    let name = r.string(2).expect("argv[0]");
    assert!(name.ends_with("sleep"), "{name:?}");
    assert_eq!(r.register(3, "rip"), Ok(rip));
    assert_eq!(r.done(4), Ok(()));
    assert_eq!(r.register(5, "rax"), Ok(0x1234));
    let eflags = r.register(6, "eflags").expect("eflags");
    assert_eq!(eflags & EFLAGS_TF, 0);
    assert_eq!(r.register(7, "eflags"), Ok(eflags | EFLAGS_TF));
    assert_eq!(r.done(8), Ok(()));
    assert_eq!(r.memory(9).expect("read back"), [1, 2, 3, 4]);
    r.syscall(10).expect("syscall");
    assert!(r.maps(11).expect("maps").contains("sleep"));
    r.events(12).expect("events");
    // A breakpoint at the entry point: inserted; resuming steps over it.
    assert_eq!(r.done(13), Ok(()));
    assert_eq!(r.done(14), Ok(()));
    // Asking for the wrong kind is an error too, not a panic.
    assert_eq!(r.maps(0).map_err(|f| f.kind), Err(FailureKind::Unexpected));
    assert_eq!(r.maps(15).map_err(|f| f.kind), Err(FailureKind::Unexpected));
    let failed: Vec<usize> = r.failures().map(|f| f.index).collect();
    assert_eq!(failed, [1]);
    assert!(matches!(r.iter().nth(3), Some(OpOutcome::Registers(_))));

    // stop_on_error: after the failed read, the rest are skipped.
    let r = client
        .batch(engine, 0)
        .read(0x10, 8)
        .regs(&["rip"])
        .stop_on_error(true)
        .send()
        .await
        .expect("stop_on_error batch");
    assert!(r.memory(0).expect_err("bad read").is_partial());
    assert!(r.registers(1).expect_err("skipped").is_skipped());
    assert!(matches!(r.get(1), Some(OpOutcome::Skipped)));

    // Let it run; a running task needs `interrupt`.
    let r = client
        .batch(engine, 0)
        .control(Action::Resume)
        .send()
        .await
        .expect("resume");
    assert_eq!(r.done(0), Ok(()));
    let pid = spawned.pid;
    wait_until_async("the spawned sleep to run into its nanosleep", || {
        status_field(pid, "State").is_some_and(|s| s.starts_with('S'))
    })
    .await;
    let refused = client
        .batch(engine, 0)
        .regs(&["rip"])
        .send()
        .await
        .expect_err("a running task without interrupt");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let r = client
        .batch(engine, 0)
        .regs(&["rip"])
        .interrupt(true)
        .send()
        .await
        .expect("interrupt batch");
    assert!(r.register(0, "rip").is_ok());

    client.detach(engine).await.expect("detach");
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let _ = server.stop().await;
    wait_until_async("the spawned sleep to end", || {
        status_field(pid, "State").is_none_or(|s| s.starts_with('Z'))
    })
    .await;
}

/// A busy loop in user space, killed when dropped.
struct Busy(Child);

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `utrace break` reports hits at an address the program runs through, then
/// removes the breakpoint: the original byte is back, the program runs on,
/// untraced.
#[test]
fn break_reports_hits_and_leaves_no_int3() {
    let busy = Busy(
        Command::new("/bin/sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("start the busy loop"),
    );
    let pid = busy.0.id();
    let p = pid.to_string();
    let rip_line = utrace_ok(&["regs", "-p", &p, "rip"]).text();
    let rip = rip_line
        .split_whitespace()
        .nth(1)
        .map(hex_u64)
        .expect("rip value");
    let orig = {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(format!("/proc/{pid}/mem")).expect("mem");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, rip).expect("read");
        b[0]
    };
    let addr = format!("{rip:#x}");
    let out = utrace_ok(&["break", "-p", &p, &addr, "--count", "2"]);
    let hits = out
        .text()
        .lines()
        .filter(|l| l.contains("hit by pid"))
        .count();
    assert_eq!(hits, 2, "{out:?}");
    wait_until("detached", || {
        status_field(pid, "TracerPid").as_deref() == Some("0")
    });
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).expect("mem");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, rip).expect("read");
    assert_eq!(b[0], orig, "the original byte is back");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        status_field(pid, "State").is_some(),
        "the program is still running"
    );
}
