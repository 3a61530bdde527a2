//! gdb, the real one, debugging through `utrace gdb` (the GDB remote
//! protocol bridge) on a utraced daemon, while another client traces the
//! same process: a breakpoint, registers (general, x87, SSE, written and
//! read back), a backtrace, stepping, Ctrl-C, detach; a program started
//! under gdb and seen to exit; TCP with `--listen`.
//!
//! gdb is installed by `.ci/run`; without it these tests say so and pass.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::daemon::Daemon;
use common::{ticker, ticks_on, untraced};

/// The `utrace` binary, beside this test's (`cargo test --workspace`
/// builds it).
fn utrace_bin() -> String {
    common::users::workspace_bin("utrace").display().to_string()
}

/// `out`'s stdout and stderr as one text, printed (the test's log shows
/// what the debugger said).
fn text_of(who: &str, out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("--- {who}\n{text}");
    text
}

/// `utrace gdb --listen 127.0.0.1:0 -p PID` on `d`: the bridge, and the
/// address it says it listens on.
fn listening_bridge(d: &Daemon, pid: u32) -> (common::KillOnDrop, String) {
    listening_bridge_for(d, &["-p", &pid.to_string()])
}

/// `utrace gdb --listen 127.0.0.1:0 WHAT…` on `d` (`-p PID`, or `-- PROG`).
fn listening_bridge_for(d: &Daemon, what: &[&str]) -> (common::KillOnDrop, String) {
    common::gdb_bridge(&d.uri, what)
}

/// lldb's command name, if it is installed.
fn have_lldb() -> Option<&'static str> {
    let lldb = ["lldb-16", "lldb"].into_iter().find(|l| {
        Command::new(l)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if lldb.is_none() {
        println!("SKIP: lldb is not installed (apt-get install -y lldb-16; .ci/run does)");
    }
    lldb
}

fn have_gdb() -> bool {
    let ok = Command::new("gdb")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIP: gdb is not installed (apt-get install -y gdb; .ci/run does)");
    }
    ok
}

/// Run gdb in batch mode on `program` with `commands` (each an `-ex`);
/// its output, stdout and stderr together. Bounded.
fn gdb(program: Option<&str>, commands: &[String]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "gdb", "-q", "-nx", "-batch"]);
    cmd.args(program);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    text_of("gdb", &cmd.output().expect("run gdb"))
}

/// Run `lldb` in batch mode on `program` (if any), connected to the bridge
/// at `addr`, then `commands` (each an `-o`); its output. Bounded.
fn lldb(lldb: &str, program: Option<&str>, addr: &str, commands: &[&str]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", lldb, "--batch"]);
    cmd.args(program);
    cmd.args(["-o", &format!("gdb-remote {addr}")]);
    for c in commands {
        cmd.args(["-o", c]);
    }
    text_of("lldb", &cmd.output().expect("run lldb"))
}

/// `utrace trace -p PID -e trace=write -o FILE` on the daemon: another
/// client tracing the same process.
fn strace_like(d: &Daemon, pid: u32, file: &str) -> Child {
    Command::new(utrace_bin())
        .args(["--server", &d.uri, "trace", "-e", "trace=write", "-o", file])
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("utrace trace")
}

fn write_lines(file: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("write("))
        .count()
}

/// gdb attaches to a running ticker that `utrace trace` also traces:
/// breakpoint at `clock_nanosleep`, registers, a backtrace, SSE registers
/// written and read back through the server, a step, detach. The program
/// runs on, still traced by the other client, whose trace carries on.
#[test]
fn gdb_debugs_a_process_another_client_traces() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-shared");
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    let trace_file = d.dir.path("trace.out");
    let mut tracer = common::KillOnDrop(strace_like(&d, pid, &trace_file));
    common::wait_for("the other client's first write lines", || {
        write_lines(&trace_file) >= 3
    });
    let remote = format!(
        "target remote | {} --server {} gdb --stdio -p {pid}",
        utrace_bin(),
        d.uri
    );
    let out = gdb(
        Some(tracee!("ticker")),
        &[
            remote,
            "break clock_nanosleep".into(),
            "continue".into(),
            "printf \"PC=%#lx\\n\", $pc".into(),
            "info symbol $pc".into(),
            "bt 3".into(),
            "printf \"FCW=%#x\\n\", $fctrl".into(),
            "set var $xmm1.v2_int64[0] = 0x1122334455667788".into(),
            "set var $r12 = 0x5a5a".into(),
            "stepi".into(),
            "printf \"XMM1=%#lx R12=%#lx\\n\", $xmm1.v2_int64[0], $r12".into(),
            "delete".into(),
            "detach".into(),
        ],
    );
    assert!(out.contains("Breakpoint 1, "), "the breakpoint hit:\n{out}");
    assert!(
        out.contains("clock_nanosleep"),
        "stopped in clock_nanosleep:\n{out}"
    );
    // The pc is the breakpoint's address, rewound (not one past the int3).
    let pc = out
        .lines()
        .find_map(|l| l.strip_prefix("PC="))
        .expect("PC line");
    assert!(
        out.contains(&format!("Breakpoint 1 at {pc}")),
        "pc {pc} is the breakpoint's address:\n{out}"
    );
    assert!(
        out.contains("std::thread") || out.contains("sleep"),
        "a backtrace through std's sleep:\n{out}"
    );
    // x87 control word as the kernel has it (the Linux default).
    assert!(out.contains("FCW=0x37f"), "x87 control word:\n{out}");
    // Written through SetRegisterBytes/SetRegisters, kept across a step,
    // read back from the kernel.
    assert!(
        out.contains("XMM1=0x1122334455667788 R12=0x5a5a"),
        "registers written and read back:\n{out}"
    );
    assert!(out.contains(&format!("(process {pid}) detached]")), "{out}");
    // The program runs on, still traced by the other client, whose trace
    // goes on.
    let before = write_lines(&trace_file);
    ticks_on(&mut lines, 10);
    common::wait_for("more write lines from the other client", || {
        write_lines(&trace_file) >= before + 5
    });
    assert_ne!(
        common::proc_status(pid as i32, "TracerPid").as_deref(),
        Some("0"),
        "still traced (by the other client)"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(tracer.0.id() as i32, libc::SIGINT) };
    common::wait_child(&mut tracer.0);
}

/// gdb on a process another engine holds (a second debugger, speaking
/// the protocol itself, stopped it): gdb's `continue` lets go of gdb's
/// own hold only, so the program stays stopped; gdb's interrupt stops it
/// for gdb at once, and its detach leaves the other hold in place. The
/// program runs again when the other debugger leaves.
#[test]
fn gdb_continue_and_interrupt_leave_another_engines_hold_alone() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-held");
    let (prog, mut lines) = ticker(10);
    let pid = prog.0.id();
    ticks_on(&mut lines, 2);
    // The other engine: a debugger that stops the process when it asks why
    // it stopped, and keeps it stopped while it is connected.
    let (_holder_bridge, addr) = listening_bridge(&d, pid);
    let mut holder = common::rsp::Rsp::connect(&addr).expect("connect the holder");
    let why = holder.ask("?").expect("the holder's stop reply");
    assert!(why.starts_with('T'), "stopped for the holder: {why}");
    // Ticks written before the stop are taken now.
    std::thread::sleep(Duration::from_millis(200));
    lines.count_new();
    // gdb continues: its hold goes, the holder's stays, and the program
    // must not run. Then Ctrl-C: gdb's interrupt stops it for gdb.
    let target = format!(
        "target remote | {} --server {} gdb --stdio -p {pid}",
        utrace_bin(),
        d.uri
    );
    let out = gdb_interrupted(&d, &target, || {
        std::thread::sleep(Duration::from_millis(500))
    });
    assert!(out.contains("SIGINT"), "gdb's interrupt stopped it:\n{out}");
    assert!(out.contains("AFTER=0x"), "registers read after it:\n{out}");
    assert!(out.contains(&format!("(process {pid}) detached]")), "{out}");
    // Through all of it the program never ran: the holder's hold stayed.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lines.count_new(),
        0,
        "the program ran while another engine held it: {:?}",
        lines.all
    );
    let ps = Command::new(utrace_bin())
        .args(["--server", &d.uri, "ps", &pid.to_string()])
        .output()
        .expect("utrace ps");
    let ps = text_of("utrace ps", &ps);
    assert!(
        ps.contains("stopped"),
        "still stopped for the holder:\n{ps}"
    );
    // The holder leaves: the program runs on.
    assert_eq!(holder.ask("D").expect("the holder's detach"), "OK");
    ticks_on(&mut lines, 3);
}

/// gdb starts the program through the bridge (held at its first
/// instruction), stops at a breakpoint, then lets it run to its end; what
/// the program writes is printed by the bridge.
#[test]
fn gdb_starts_a_program_and_sees_it_exit() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-spawn");
    let remote = format!(
        "target remote | {} --server {} gdb --stdio -- {} 3 10",
        utrace_bin(),
        d.uri,
        tracee!("ticker")
    );
    let out = gdb(
        Some(tracee!("ticker")),
        &[
            remote,
            "printf \"ENTRY=%#lx\\n\", $pc".into(),
            // libc is not loaded yet: gdb learns of it at the dynamic
            // loader's breakpoint, through the bridge too.
            "set breakpoint pending on".into(),
            "break clock_nanosleep".into(),
            "continue".into(),
            "bt 1".into(),
            "delete".into(),
            "continue".into(),
        ],
    );
    // Held at the dynamic loader's first instruction.
    assert!(out.contains("ENTRY=0x"), "{out}");
    assert!(out.contains("_start"), "stopped at _start:\n{out}");
    assert!(out.contains("Breakpoint 1, "), "{out}");
    assert!(
        out.contains("exited normally"),
        "the program ran to its end:\n{out}"
    );
    // Its output came through the daemon to the bridge, which printed it
    // (as gdbserver's program writes on gdbserver's terminal).
    assert!(out.contains("tick=2\ndone=1"), "{out}");
}

/// `tests/c/NAME.c` built with `-g` into `dir`: the program's path, and
/// the line number of a source line by a piece of its text (a mark such
/// as `/* after counter */`, or code).
fn build_c(dir: &common::users::Scratch, name: &str) -> (String, impl Fn(&str) -> usize) {
    let src = format!("{}/c/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let exe = dir.path(name);
    let out = Command::new("cc")
        .args(["-g", "-O0", "-pthread", "-o", &exe, &src])
        .output()
        .expect("run cc (.ci/run installs gcc)");
    assert!(out.status.success(), "cc: {}", text_of("cc", &out));
    let text = std::fs::read_to_string(&src).expect("read the tracee's source");
    let line_of = move |mark: &str| {
        1 + text
            .lines()
            .position(|l| l.contains(mark))
            .unwrap_or_else(|| panic!("{mark:?} not in the source"))
    };
    (exe, line_of)
}

/// A daemon tagged `tag`, `tests/c/NAME.c` built into its directory, and
/// the gdb command that starts it through the bridge: the program's path,
/// its marked lines (see [`build_c`]), the `target remote | …` command.
fn daemon_and_c(tag: &str, name: &str) -> (Daemon, String, impl Fn(&str) -> usize, String) {
    let d = Daemon::start(tag);
    let (exe, line_of) = build_c(&d.dir, name);
    let remote = format!(
        "target remote | {} --server {} gdb --stdio -- {exe}",
        utrace_bin(),
        d.uri,
    );
    (d, exe, line_of, remote)
}

/// The text of `out` after the first `needle` (the test fails without it).
fn after<'a>(out: &'a str, needle: &str) -> &'a str {
    let at = out
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in gdb's output:\n{out}"));
    &out[at + needle.len()..]
}

/// Hardware watchpoints and breakpoints, from gdb through the bridge to the
/// debug registers: `watch` stops just after each write, on the line after
/// it, with the old and new values; `hbreak` stops a thread made after it
/// went in; `rwatch` (x86 has no read-only kind: gdb gets an access
/// watchpoint, as from gdbserver) stops at the read and not at the write.
#[test]
fn gdb_hardware_watchpoints_and_breakpoints() {
    if !have_gdb() {
        return;
    }
    let (_d, exe, line_of, remote) = daemon_and_c("gdb-watch", "watch");
    let out = gdb(
        Some(&exe),
        &[
            remote,
            "break main".into(),
            "continue".into(),
            "watch counter".into(),
            "hbreak worker".into(),
            "rwatch flag".into(),
            "continue".into(),
            "continue".into(),
            "delete 2".into(),
            "continue".into(),
            "continue".into(),
            "continue".into(),
        ],
    );
    let counter_line = format!("watch.c:{}", line_of("after counter"));
    let rest = after(
        &out,
        "Hardware watchpoint 2: counter\n\nOld value = 0\nNew value = 1\n",
    );
    assert!(
        rest.lines().next().unwrap_or("").ends_with(&counter_line),
        "{out}"
    );
    let rest = after(rest, "Old value = 1\nNew value = 2\n");
    assert!(
        rest.lines().next().unwrap_or("").ends_with(&counter_line),
        "{out}"
    );
    // Deleted: no third stop for counter.
    assert!(!rest.contains("New value = 3"), "{out}");
    let rest = after(rest, "Thread 2 \"watch\" hit Breakpoint 3, worker");
    // flag's write in the worker is not a read; main's printf reads it.
    let rest = after(rest, "hit Hardware read watchpoint 4: flag\n\nValue = 7\n");
    let read_line = format!("watch.c:{}", line_of("printf(\"flag="));
    assert!(
        rest.lines().next().unwrap_or("").ends_with(&read_line),
        "{out}"
    );
    assert!(rest.contains("exited with code 03"), "{out}");
    assert_eq!(
        out.matches("read watchpoint 4: flag").count(),
        2,
        "set, and hit once:\n{out}"
    );
}

/// gdb in batch mode on the ticker: `target` (a `target remote …`), then
/// `continue`, interrupted by a SIGINT to gdb (Ctrl-C) once it continues
/// and `meanwhile` has run; then the pc printed (`AFTER=0x…`) and
/// `detach`. What gdb said.
fn gdb_interrupted(d: &Daemon, target: &str, meanwhile: impl FnOnce()) -> String {
    let flag = d.dir.path("continuing");
    // `--foreground`: the SIGINT below reaches gdb once (without it,
    // timeout also signals its process group, and gdb, interrupted twice,
    // gives up on the target).
    let g = Command::new("timeout")
        .args([
            "--foreground",
            "60",
            "gdb",
            "-q",
            "-nx",
            "-batch",
            tracee!("ticker"),
        ])
        .args(["-ex", target])
        .args(["-ex", &format!("shell touch {flag}")])
        .args(["-ex", "continue"])
        .args(["-ex", "printf \"AFTER=%#lx\\n\", $pc"])
        .args(["-ex", "detach"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gdb");
    common::wait_for("gdb to continue", || std::path::Path::new(&flag).exists());
    meanwhile();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(g.id() as i32, libc::SIGINT) };
    text_of("gdb", &g.wait_with_output().expect("gdb output"))
}

/// `utrace gdb --listen`: gdb connects over TCP; Ctrl-C (SIGINT to gdb)
/// stops the running program, which runs on after detach.
#[test]
fn gdb_over_tcp_and_ctrl_c() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-tcp");
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    let (_bridge, addr) = listening_bridge(&d, pid);
    // Once gdb has said `continue` and the program runs, press Ctrl-C.
    let text = gdb_interrupted(&d, &format!("target remote {addr}"), || {
        std::thread::sleep(Duration::from_millis(300));
        ticks_on(&mut lines, 2);
    });
    assert!(text.contains("SIGINT"), "interrupted:\n{text}");
    assert!(text.contains("AFTER=0x"), "{text}");
    assert!(
        text.contains(&format!("(process {pid}) detached]")),
        "{text}"
    );
    ticks_on(&mut lines, 5);
    untraced(pid);
}

/// gdb with no local file: it learns the executable's path from the
/// bridge and reads it, ld.so and libc through `vFile` (as the process
/// sees them, in its root), resolves symbols, and reads `/proc/PID/maps`
/// the same way for `info proc mappings`.
#[test]
fn gdb_reads_the_files_through_the_bridge() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-vfile");
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    let remote = format!(
        "target remote | {} --server {} gdb --stdio -p {pid}",
        utrace_bin(),
        d.uri
    );
    // No program given: gdb gets it from the bridge.
    let text = gdb(
        None,
        &[
            remote,
            "bt 2".into(),
            "info proc mappings".into(),
            "detach".into(),
        ],
    );
    assert!(
        !text.contains("does not support file transfer"),
        "vFile served:\n{text}"
    );
    // Stopped where the ticker was: asleep, or writing its line. Either
    // way libc's function by name, and the program's own below it.
    assert!(
        (text.contains("clock_nanosleep") || text.contains("libc_write"))
            && text.contains("#1 ")
            && text.contains("std::"),
        "symbols from the fetched files:\n{text}"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        text.contains(&format!("{}", exe.display())),
        "the mappings name the executable {}:\n{text}",
        exe.display()
    );
    assert!(
        text.contains(&format!("(process {pid}) detached]")),
        "{text}"
    );
    ticks_on(&mut lines, 3);
}

/// lldb (16) through `utrace gdb --listen`: it finds the modules, stops at
/// a breakpoint in libc (its own "breakpoint 1.1" stop reason: the pc is
/// the breakpoint's), reads SSE and x87 registers, steps one instruction,
/// and detaches; the program runs on, untraced.
#[test]
fn lldb_debugs_through_the_bridge() {
    let Some(lldb_cmd) = have_lldb() else {
        return;
    };
    let d = Daemon::start("lldb");
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    let (_bridge, addr) = listening_bridge(&d, pid);
    let text = lldb(
        lldb_cmd,
        None,
        &addr,
        &[
            "breakpoint set -n clock_nanosleep",
            "continue",
            "bt 2",
            "register read xmm0 st0 fctrl",
            "memory region $pc",
            "memory region $sp",
            "memory region 0x1000",
            "thread step-inst",
            "breakpoint delete 1",
            "process detach",
        ],
    );
    assert!(text.contains("stop reason = breakpoint 1.1"), "{text}");
    // qMemoryRegionInfo, answered by the bridge from /proc/PID/maps: the
    // code is libc's, executable; the stack is writable; low memory is a
    // hole up to the first mapping.
    let libc_code = text
        .lines()
        .any(|l| l.starts_with("[0x") && l.contains(") r-x ") && l.contains("libc.so.6"));
    assert!(libc_code, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("[0x") && l.contains(") rw- [stack]")),
        "{text}"
    );
    assert!(text.contains("[0x0000000000001000-0x"), "{text}");
    assert!(text.contains("clock_nanosleep"), "{text}");
    assert!(text.contains("xmm0 = {"), "{text}");
    assert!(text.contains("fctrl = 0x0000037f"), "{text}");
    assert!(
        text.contains("stop reason = instruction step into"),
        "{text}"
    );
    assert!(text.contains(&format!("Process {pid} detached")), "{text}");
    ticks_on(&mut lines, 5);
    untraced(pid);
}

/// lldb's watchpoints through the bridge: `watchpoint set variable` stops
/// just after each write, with the old and new values, on the line after
/// it; deleted, the program runs to its end.
#[test]
fn lldb_watchpoints_through_the_bridge() {
    let Some(lldb_cmd) = have_lldb() else {
        return;
    };
    let d = Daemon::start("lldb-watch");
    let (exe, line_of) = build_c(&d.dir, "watch");
    let (_bridge, addr) = listening_bridge_for(&d, &["--", &exe]);
    let text = lldb(
        lldb_cmd,
        Some(&exe),
        &addr,
        &[
            "breakpoint set -n main",
            "continue",
            "watchpoint set variable counter",
            "continue",
            "continue",
            "watchpoint delete 1",
            "continue",
        ],
    );
    let rest = after(&text, "old value: 0\nnew value: 1");
    let rest = after(rest, "stop reason = watchpoint 1");
    let line = format!("watch.c:{}", line_of("after counter"));
    assert!(rest.lines().nth(1).unwrap_or("").contains(&line), "{text}");
    let rest = after(rest, "old value: 1\nnew value: 2");
    assert!(!rest.contains("new value: 3"), "{text}");
    assert!(rest.contains("exited with status = 3"), "{text}");
}

/// A whole gdb session on a C program with debug info: threads seen and
/// backtraced at a breakpoint in a thread; a conditional breakpoint in a
/// recursion; `print` and `set var` of a global, `finish` with the value
/// returned; `catch syscall write` at the call and its return (the engine's
/// syscall set, so other syscalls do not stop); `handle SIGUSR1 nostop
/// noprint pass` (signals in gdb's numbering: SIGUSR1 is 10 on Linux and
/// 30 to gdb); a child process not followed; the exit.
#[test]
fn gdb_session_with_threads_signals_syscalls_and_a_child() {
    if !have_gdb() {
        return;
    }
    let (_d, exe, _, remote) = daemon_and_c("gdb-session", "session");
    let out = gdb(
        Some(&exe),
        &[
            remote,
            "handle SIGUSR1 nostop noprint pass".into(),
            "break worker".into(),
            "continue".into(),
            "info threads".into(),
            "thread apply all bt 1".into(),
            "delete 1".into(),
            "break depth if n == 0".into(),
            "catch syscall write".into(),
            "continue".into(),
            "bt".into(),
            "print global_value".into(),
            // A stack read (its page kept for this stop), a write there,
            // and the read again: the write is seen.
            "x/gx $sp - 256".into(),
            "set var *(long *)($sp - 256) = 0x1234abcd".into(),
            "x/gx $sp - 256".into(),
            "set var global_value = 100".into(),
            "finish".into(),
            "continue".into(),
            "continue".into(),
            "print got_usr1".into(),
            "delete".into(),
            "continue".into(),
        ],
    );
    let rest = after(&out, "hit Breakpoint 1, worker");
    let rest = after(rest, "Target Id");
    let listed = rest
        .lines()
        .take_while(|l| !l.starts_with("Thread ") && !l.is_empty())
        .filter(|l| l.contains("Thread "))
        .count();
    assert!(listed >= 2, "main and a worker at least:\n{out}");
    // Named (qXfer:threads, from the threads' comm).
    assert!(rest.contains("\"session\""), "thread names:\n{out}");
    let rest = after(rest, "Breakpoint 2, depth (n=0)");
    let rest = after(rest, "#4 ");
    assert!(
        rest.lines().next().unwrap_or("").contains("in main ()"),
        "{out}"
    );
    let rest = after(rest, "$1 = 42");
    let rest = after(rest, ":\t0x");
    let rest = after(rest, ":\t0x000000001234abcd");
    let rest = after(rest, "Value returned is $2 = 100");
    let rest = after(rest, "Catchpoint 3 (call to syscall write)");
    let rest = after(rest, "Catchpoint 3 (returned from syscall write)");
    // SIGUSR1 went to the program, which handled it; gdb never stopped
    // for it, nor for the child's SIGCHLD.
    let rest = after(rest, "$3 = 1");
    assert!(rest.contains("exited normally"), "{out}");
    assert!(!out.contains("received signal"), "{out}");
}

/// `next` over a line that runs ~30,000 instructions: gdb asks for range
/// stepping (`vCont;r`) and the server steps inside the range itself, one
/// report when the pc leaves it, instead of a round trip to gdb per
/// instruction (`set range-stepping off` took minutes here).
#[test]
fn gdb_next_over_a_loop_steps_inside_the_server() {
    if !have_gdb() {
        return;
    }
    let (_d, exe, line_of, remote) = daemon_and_c("gdb-range", "loop");
    let out = gdb(
        Some(&exe),
        &[
            remote,
            format!("break {}", line_of("the loop")),
            "continue".into(),
            "set debug remote 1".into(),
            "next".into(),
            "set debug remote 0".into(),
            "print sum".into(),
            "continue".into(),
        ],
    );
    let after_line = format!("{}\t", line_of("the loop") + 1);
    assert!(
        out.contains(&after_line),
        "next reached the next line:\n{out}"
    );
    assert!(out.contains("$1 = 12497500"), "the loop ran whole:\n{out}");
    let ranges = out.matches("Sending packet: $vCont;r").count();
    let steps = out.matches("Sending packet: $vCont;s").count();
    assert!(ranges >= 1, "gdb range-stepped: {ranges} vCont;r");
    assert!(
        steps < 10,
        "a handful of single steps at most, not one per instruction: {steps}"
    );
    assert!(out.contains("exited normally"), "{out}");
}

/// `target extended-remote` with `utrace gdb --multi`, as with gdbserver
/// `--multi`: the session starts with no process; gdb runs the program it
/// names (`set remote exec-file`), stops at a breakpoint, kills it, runs it
/// again to its end, attaches to a running process and detaches from it
/// (which runs on, untraced), and runs once more; all over one connection.
/// A `run` with no program named says why. Then the same over TCP
/// (`--listen`).
#[test]
fn gdb_extended_remote_runs_and_attaches() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-multi");
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    let exe = tracee!("ticker");
    let remote = format!(
        "target extended-remote | {} --server {} gdb --stdio --multi",
        utrace_bin(),
        d.uri
    );
    let out = gdb(
        None,
        &[
            remote,
            "run".into(),
            format!("set remote exec-file {exe}"),
            "set breakpoint pending on".into(),
            "break clock_nanosleep".into(),
            "run 3 10".into(),
            "bt 1".into(),
            "kill".into(),
            "run 2 10".into(),
            "delete".into(),
            "continue".into(),
            format!("attach {pid}"),
            "bt 3".into(),
            "detach".into(),
            "run 1 10".into(),
        ],
    );
    // No program named yet: refused, saying what to do.
    assert!(out.contains("set remote exec-file PROG"), "{out}");
    let first = after(&out, "Breakpoint 1, ");
    assert!(first.contains("clock_nanosleep"), "{out}");
    let second = after(first, "killed]");
    let attached = after(after(second, "Breakpoint 1, "), "exited normally]");
    assert!(
        attached.contains("std::thread") || attached.contains("sleep"),
        "attached to the running ticker:\n{out}"
    );
    let last = after(attached, &format!("(process {pid}) detached]"));
    assert!(last.contains("exited normally]"), "a third run:\n{out}");
    // The programs' own output (through the daemon, printed by the
    // bridge): the second and third runs went to their end.
    assert!(out.contains("tick=1\ndone=1"), "{out}");
    assert_eq!(out.matches("done=1").count(), 2, "{out}");
    ticks_on(&mut lines, 5);
    untraced(pid);

    // Over TCP: one session per connection, each with no process first.
    let (_bridge, addr) = listening_bridge_for(&d, &["--multi"]);
    let out = gdb(
        None,
        &[
            format!("target extended-remote {addr}"),
            format!("set remote exec-file {exe}"),
            "run 2 10".into(),
            "run 1 10".into(),
        ],
    );
    assert_eq!(out.matches("exited normally]").count(), 2, "{out}");
}

/// `utrace gdb --listen -- PROG` starts the program at once, held at its
/// first instruction, and says its pid, as gdbserver does: it is there
/// before a debugger comes (another client may trace it meanwhile), and
/// the debugger that comes finds it at its start.
#[test]
fn the_program_is_started_before_the_debugger_comes() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-started");
    let exe = tracee!("ticker");
    let mut bridge = common::KillOnDrop(
        Command::new(utrace_bin())
            .args(["--server", &d.uri, "gdb", "--listen", "127.0.0.1:0", "--"])
            .args([exe, "2", "10"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("utrace gdb --listen"),
    );
    let mut err = BufReader::new(bridge.0.stderr.take().expect("piped"));
    let mut line = || {
        let mut l = String::new();
        err.read_line(&mut l).expect("the bridge's stderr");
        l
    };
    let listening = line();
    let addr = listening
        .trim()
        .rsplit(' ')
        .next()
        .expect("address")
        .to_string();
    let created = line();
    let pid: u32 = created
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {created:?}"));
    assert!(
        created.contains(&format!("process {exe} created")),
        "{created}"
    );
    // Held (a tracing stop) at its first instruction, before any debugger.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the program");
    let state = state
        .rsplit_once(')')
        .map(|(_, r)| r.trim_start().chars().next());
    assert_eq!(state.flatten(), Some('t'), "held: {state:?}");
    let out = gdb(
        Some(exe),
        &[
            format!("target remote {addr}"),
            "info inferiors".into(),
            "continue".into(),
        ],
    );
    assert!(out.contains(&format!("process {pid}")), "{out}");
    assert!(out.contains("exited normally"), "{out}");

    // Interrupted before any debugger came (Ctrl-C): the program nobody
    // saw goes with it, as gdbserver's does, and utrace dies of SIGINT.
    let mut bridge = Command::new(utrace_bin())
        .args(["--server", &d.uri, "gdb", "--listen", "127.0.0.1:0", "--"])
        .args([exe, "2", "10"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("utrace gdb --listen");
    let mut err = BufReader::new(bridge.stderr.take().expect("piped"));
    let mut created = String::new();
    while !created.contains("created") {
        created.clear();
        assert!(
            err.read_line(&mut created).expect("stderr") > 0,
            "no pid said"
        );
    }
    let pid = created.trim().rsplit(' ').next().expect("pid").to_string();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(bridge.id() as i32, libc::SIGINT) };
    let st = bridge.wait().expect("utrace gdb");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGINT), "{st:?}");
    common::wait_for("the program to go", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    });
}

/// A program the bridge starts runs with address space randomization
/// off, as gdbserver starts one (its stack, heap and libraries where they
/// were the last time), unless `--no-disable-randomization`; with
/// `--multi`, gdb's `set disable-randomization` decides each `run`
/// (`QDisableRandomization`).
#[test]
fn programs_start_without_address_randomization_as_under_gdbserver() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-aslr");
    let exe = tracee!("ticker");
    // The program's personality flags, and its stack pointer at entry.
    let look = [
        "python print('PERS=' + open('/proc/%d/personality' % \
         gdb.selected_inferior().pid).read().strip())"
            .to_string(),
        "printf \"SP=%#lx\\n\", $sp".to_string(),
    ];
    let started = |flags: &str| {
        let remote = format!(
            "target remote | {} --server {} gdb --stdio {flags} -- {exe} 1 10",
            utrace_bin(),
            d.uri
        );
        let mut cmds = vec![remote];
        cmds.extend(look.iter().cloned());
        cmds.push("kill".into());
        let out = gdb(Some(exe), &cmds);
        let field = |name: &str| {
            after(&out, name)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        (field("PERS="), field("SP="))
    };
    let (pers, sp) = started("");
    assert_eq!(pers, "00040000", "ADDR_NO_RANDOMIZE");
    assert_eq!(started("").1, sp, "the same stack at every run");
    let (pers, random_sp) = started("--no-disable-randomization");
    assert_eq!(pers, "00000000");
    assert_ne!(random_sp, sp, "a randomized stack");

    let remote = format!(
        "target extended-remote | {} --server {} gdb --stdio --multi",
        utrace_bin(),
        d.uri
    );
    let mut cmds = vec![
        remote,
        format!("set remote exec-file {exe}"),
        "set breakpoint pending on".into(),
        "break clock_nanosleep".into(),
        "run 2 10".into(),
    ];
    cmds.extend(look.iter().cloned());
    cmds.extend(["kill".into(), "set disable-randomization off".into()]);
    cmds.push("run 2 10".into());
    cmds.extend(look.iter().cloned());
    cmds.push("kill".into());
    let out = gdb(None, &cmds);
    let second = after(&out, "PERS=00040000");
    assert!(second.contains("PERS=00000000"), "{out}");
}

/// `handle SIGUSR1 nostop noprint pass` is sent as `QPassSignals` (the
/// bridge advertises it, gdbstub lacks it), and the bridge then lets the
/// signal through at once: a program that signals itself 200 times
/// handles all 200, and gdb never hears of one (no `T1e` stop reply,
/// SIGUSR1 in gdb's numbering), where it would stop for each without.
#[test]
fn gdb_passed_signals_never_reach_gdb() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-pass");
    let out = gdb(
        None,
        &[
            "set debug remote 1".into(),
            format!(
                "target remote | {} --server {} gdb --stdio -- {} 10 200",
                utrace_bin(),
                d.uri,
                tracee!("signals")
            ),
            "handle SIGUSR1 nostop noprint pass".into(),
            "continue".into(),
        ],
    );
    assert!(out.contains(";QPassSignals+"), "advertised:\n{out}");
    // SIGUSR1 is gdb's 30, 0x1e.
    let sent = out
        .lines()
        .filter(|l| l.contains("Sending packet: $QPassSignals:") && l.contains(";1e;"))
        .count();
    assert!(sent >= 1, "gdb sent the list with SIGUSR1:\n{out}");
    assert!(!out.contains("received: T1e"), "a stop for SIGUSR1:\n{out}");
    assert!(out.contains("handled=200"), "{out}");
    assert!(out.contains("exited normally"), "{out}");
}

/// gdb learns the loaded libraries from the bridge's
/// `qXfer:libraries-svr4` (the loader's own list, read in a few batches),
/// not by walking it a memory packet at a time: libc is in the list at the
/// base its first mapping has in `/proc/PID/maps`, gdb reads its symbols,
/// and a breakpoint in it hits.
#[test]
fn gdb_lists_libraries_from_the_loader() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-svr4");
    let out = gdb(
        Some(tracee!("ticker")),
        &[
            "set debug remote 1".into(),
            format!(
                "target remote | {} --server {} gdb --stdio -- {} 3 10",
                utrace_bin(),
                d.uri,
                tracee!("ticker")
            ),
            "set breakpoint pending on".into(),
            "break clock_nanosleep".into(),
            "continue".into(),
            "info sharedlibrary".into(),
            "info proc mappings".into(),
            "kill".into(),
        ],
    );
    assert!(out.contains("Breakpoint 1, "), "{out}");
    assert!(
        !out.contains("while parsing target library list"),
        "gdb took the list:\n{out}"
    );
    // libc's entry in the list the bridge sent: its load base.
    let entry = after(&out, "<library name=\"/lib/x86_64-linux-gnu/libc.so.6\"");
    let l_addr = after(entry, "l_addr=\"")
        .split('"')
        .next()
        .expect("l_addr")
        .to_string();
    // The start of libc's first mapping (file offset 0).
    let base = out
        .lines()
        .find(|l| l.contains("libc.so.6") && l.split_whitespace().nth(3) == Some("0x0"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("libc's first mapping:\n{out}"));
    assert_eq!(l_addr, base, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("libc.so.6") && l.contains("Yes")),
        "gdb read libc's symbols:\n{out}"
    );
}

/// A fork, followed as gdb is told: with `follow-fork-mode child` gdb
/// detaches the parent (which runs on, untraced, and reaps the child) and
/// stops at a breakpoint in the child, whose exit code it reports; by
/// default (the parent followed, `catch fork` stopping at the fork) the
/// child runs free without the parent's breakpoints, which stop only the
/// parent. Both sides' output shows the other ran to its end.
#[test]
fn gdb_follows_a_fork_to_the_child_or_stays_with_the_parent() {
    if !have_gdb() {
        return;
    }
    let (d, exe, _, remote) = daemon_and_c("gdb-fork", "fork");
    let mark = d.dir.path("parent-done");
    let out = gdb(
        Some(&exe),
        &[
            "set follow-fork-mode child".into(),
            format!("{remote} {mark}"),
            "break in_child".into(),
            "break in_parent".into(),
            "continue".into(),
            "bt".into(),
            "continue".into(),
        ],
    );
    let rest = after(&out, "[Detaching after fork from parent process");
    let rest = after(rest, "hit Breakpoint 1, in_child (x=21)");
    let rest = after(rest, "#1 ");
    assert!(
        rest.lines().next().unwrap_or("").contains("in main ("),
        "{out}"
    );
    assert!(rest.contains("exited with code 07"), "{out}");
    assert!(out.contains("child 42"), "{out}");
    assert!(
        !out.contains("in_parent (x="),
        "the parent was let go:\n{out}"
    );
    // Its stdout came through the session, which ended with the child:
    // its file says it ran to its end.
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while std::fs::read_to_string(&mark).unwrap_or_default() != "parent 42, child exit 7\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "the parent did not run on:\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let out = gdb(
        Some(&exe),
        &[
            remote,
            "catch fork".into(),
            "break in_child".into(),
            "break in_parent".into(),
            "continue".into(),
            "continue".into(),
            "bt".into(),
            "continue".into(),
        ],
    );
    let rest = after(&out, "Catchpoint 1 (forked process ");
    let rest = after(rest, "[Detaching after fork from child process");
    let rest = after(rest, "Breakpoint 3, in_parent (x=41)");
    assert!(rest.contains("exited normally"), "{out}");
    assert!(out.contains("parent 42, child exit 7"), "{out}");
    assert!(
        out.contains("child 42") && !out.contains("in_child (x="),
        "the child ran free of the parent's breakpoints:\n{out}"
    );
}

/// An exec, as gdb's exec events tell it: gdb hears the new program's
/// path, loads its symbols, and its breakpoints are placed in the new
/// image (the program execs itself: same symbols, new addresses), where
/// one stops it; `catch exec` stops at the exec itself.
#[test]
fn gdb_follows_an_exec_into_the_new_program() {
    if !have_gdb() {
        return;
    }
    let (_d, exe, _, remote) = daemon_and_c("gdb-exec", "execer");
    let out = gdb(
        Some(&exe),
        &[
            remote,
            "catch exec".into(),
            "break before_exec".into(),
            "break in_new_image".into(),
            "continue".into(),
            "continue".into(),
            "continue".into(),
            "bt".into(),
            "continue".into(),
        ],
    );
    let rest = after(&out, "Breakpoint 2, before_exec (x=1)");
    let rest = after(rest, "is executing new program: ");
    let rest = after(rest, "Catchpoint 1 (exec'd ");
    let rest = after(rest, "Breakpoint 3, in_new_image (x=14)");
    let rest = after(rest, "#1 ");
    assert!(
        rest.lines().next().unwrap_or("").contains("in main ("),
        "{out}"
    );
    assert!(rest.contains("exited with code 04"), "{out}");
    assert!(
        out.contains("old image 2") && out.contains("new image 42"),
        "{out}"
    );
}

/// Two debuggers on one process, each through its own bridge (its own
/// engine): the second's breakpoint is in the process's memory (an int3,
/// as /proc/PID/mem shows) while the first reads the original byte there;
/// the first's own breakpoint stops only it, and it never stops for the
/// other's.
#[test]
fn two_debuggers_on_one_process_never_see_each_others_breakpoints() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-two");
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    let (mut bridge, addr) = listening_bridge(&d, pid);
    let going = d.dir.path("b-continues");
    // The second debugger: a breakpoint at a function never called, and
    // the program let run (gdb inserts it as it continues).
    let mut second = common::KillOnDrop(
        Command::new("timeout")
            .args(["60", "gdb", "-q", "-nx", "-batch", tracee!("ticker")])
            .args(["-ex", &format!("target remote {addr}")])
            .args(["-ex", "break *abort"])
            .args(["-ex", &format!("shell touch {going}")])
            .args(["-ex", "continue"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gdb"),
    );
    common::wait_for("the second debugger to continue", || {
        std::path::Path::new(&going).exists()
    });
    ticks_on(&mut lines, 2);
    let out = gdb(
        Some(tracee!("ticker")),
        &[
            format!(
                "target remote | {} --server {} gdb --stdio -p {pid}",
                utrace_bin(),
                d.uri
            ),
            "x/2bx abort".into(),
            "break clock_nanosleep".into(),
            "continue".into(),
            "bt 1".into(),
            "delete".into(),
            "detach".into(),
        ],
    );
    // `0x7f…39f <__GI_abort>:\t0x55\t0x53`: what the first read, and the
    // process's own byte there now (the second's int3, still in).
    let line = out
        .lines()
        .find(|l| l.contains("abort>:"))
        .unwrap_or_else(|| panic!("no abort bytes:\n{out}"));
    let at = u64::from_str_radix(line.trim_start_matches("0x").split(' ').next().unwrap(), 16)
        .expect("address");
    let seen = line.split_whitespace().nth(2).unwrap_or("");
    let mut byte = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(format!("/proc/{pid}/mem")).expect("mem"),
        &mut byte,
        at,
    )
    .expect("read the process's byte");
    assert_eq!(byte[0], 0xcc, "the second's int3 is in:\n{out}");
    assert_ne!(seen, "0xcc", "and hidden from the first:\n{out}");
    assert!(seen.starts_with("0x"), "{out}");
    let rest = after(&out, "Breakpoint 1, ");
    assert!(rest.contains("clock_nanosleep"), "{out}");
    assert!(
        !out.contains("SIGTRAP"),
        "never stopped by the other's:\n{out}"
    );
    assert!(out.contains(&format!("(process {pid}) detached]")), "{out}");
    ticks_on(&mut lines, 3);
    // The second's bridge goes (its gdb with it): its int3 too.
    let _ = bridge.0.kill();
    let _ = bridge.0.wait();
    let _ = second.0.wait();
    common::wait_for("the second's int3 gone", || {
        let mut b = [0u8; 1];
        std::fs::File::open(format!("/proc/{pid}/mem"))
            .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, at))
            .is_ok_and(|()| b[0] != 0xcc)
    });
    ticks_on(&mut lines, 3);
}

/// A vforked child runs on its parent's memory, where gdb's breakpoints
/// are, and nobody follows it: the int3s come out while it runs (it
/// exits 6, not killed by a SIGTRAP), and go back when it is done (the
/// parent stops at its own breakpoint after). As under gdbserver.
#[test]
fn a_vfork_child_never_meets_the_parents_breakpoints() {
    if !have_gdb() {
        return;
    }
    let (_d, exe, _, remote) = daemon_and_c("gdb-vfork", "vfork");
    let out = gdb(
        Some(&exe),
        &[
            remote,
            "break in_child".into(),
            "break in_parent".into(),
            "continue".into(),
            "continue".into(),
        ],
    );
    let rest = after(&out, "Breakpoint 2, in_parent (x=41)");
    assert!(rest.contains("exited normally"), "{out}");
    assert!(
        out.contains("parent 42, child exit 6, signal 0"),
        "the child ran its course:\n{out}"
    );
    assert!(!out.contains("in_child (x="), "{out}");
}

/// `handle SIG nopass` holds at a detach too: gdb tells the bridge which
/// signals the program may have (`QProgramSignals`), and a signal stop
/// still pending when gdb detaches is delivered only if it is one of them,
/// as gdbserver does. The program writes whether its SIGUSR1 handler ran.
#[test]
fn gdb_detach_delivers_a_pending_signal_only_if_gdb_passes_it() {
    if !have_gdb() {
        return;
    }
    let d = Daemon::start("gdb-program-signals");
    let (exe, _) = build_c(&d.dir, "usr1");
    for (pass, want) in [("nopass", "usr1=0"), ("pass", "usr1=1")] {
        let file = format!("usr1-{pass}");
        let out = gdb(
            Some(&exe),
            &[
                "set debug remote 1".into(),
                format!(
                    "target remote | {} --server {} gdb --stdio -- {exe} {}",
                    utrace_bin(),
                    d.uri,
                    d.dir.path(&file)
                ),
                format!("handle SIGUSR1 stop print {pass}"),
                "continue".into(),
                "detach".into(),
            ],
        );
        assert!(out.contains("received signal SIGUSR1"), "{out}");
        assert!(out.contains(";QProgramSignals+"), "advertised:\n{out}");
        // SIGUSR1 is gdb's 30, 0x1e: in the last list only when passed.
        let listed = out
            .lines()
            .rfind(|l| l.contains("Sending packet: $QProgramSignals:"))
            .is_some_and(|l| l.contains(";1e;"));
        assert_eq!(listed, pass == "pass", "{out}");
        assert_eq!(
            d.dir.read(&file).trim(),
            want,
            "handle SIGUSR1 {pass}:\n{out}"
        );
    }
}

/// lldb gets the answers lldb-server gives and gdbstub lacks: the process
/// (`qProcessInfo`), every thread with its name and the stopped one's
/// registers in one packet (`jThreadsInfo`), the thread list in each stop
/// reply (`QListThreadsInStopReply`) with why it stopped (`reason:`),
/// register packets that name their thread (`QThreadSuffixSupported`),
/// and `X09` after `k`.
#[test]
fn lldb_is_answered_as_lldb_server_answers() {
    let Some(lldb_cmd) = have_lldb() else {
        return;
    };
    let d = Daemon::start("lldb-packets");
    let (exe, _) = build_c(&d.dir, "session");
    let (_bridge, addr) = listening_bridge_for(&d, &["--", &exe]);
    let log = d.dir.path("packets.log");
    let mut cmd = Command::new("timeout");
    cmd.args(["60", lldb_cmd, "--batch", &exe]);
    for c in [
        format!("log enable -f {log} gdb-remote packets"),
        format!("gdb-remote {addr}"),
        "breakpoint set -n worker".into(),
        "continue".into(),
        "thread list".into(),
        "thread select 1".into(),
        "register read rip".into(),
        "process kill".into(),
    ] {
        cmd.args(["-o", &c]);
    }
    let text = text_of("lldb", &cmd.output().expect("run lldb"));
    assert!(text.contains("stop reason = breakpoint 1.1"), "{text}");
    // Thread 1 (main), not the one stopped, has its registers.
    let rest = after(&text, "register read rip");
    assert!(rest.contains("rip = 0x"), "{text}");
    assert!(
        text.lines()
            .filter(|l| l.contains("tid = ") && l.contains("name = 'session'"))
            .count()
            >= 2,
        "every thread listed, named:\n{text}"
    );
    assert!(text.contains("exited with status = 9"), "{text}");
    assert!(!text.contains("unexpected response"), "{text}");
    let pid: u32 = after(&text, "Process ")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in:\n{text}"));
    // Each packet and the reply to it, from lldb's log.
    let packets: Vec<String> = std::fs::read_to_string(&log)
        .expect("lldb's packet log")
        .lines()
        .filter_map(|l| {
            let at = l
                .find("send packet: ")
                .or_else(|| l.find("read packet: "))?;
            Some(l[at + 13..].to_string())
        })
        .collect();
    let reply_to = |head: &str| -> Vec<&str> {
        packets
            .windows(2)
            .filter(|w| w[0].starts_with(&format!("${head}")))
            .map(|w| w[1].as_str())
            .collect()
    };
    for (packet, want) in [
        ("QThreadSuffixSupported", "$OK#"),
        ("QListThreadsInStopReply", "$OK#"),
        ("qProcessInfo", &format!("$pid:{pid:x};parent-pid:")),
        ("jThreadsInfo", "$[{"),
    ] {
        let replies = reply_to(packet);
        assert!(
            !replies.is_empty() && replies.iter().all(|r| r.starts_with(want)),
            "{packet}: {replies:?}"
        );
    }
    let stops = reply_to("vCont;c");
    assert!(
        stops
            .iter()
            .any(|r| r.contains(";reason:breakpoint;") && r.contains(";threads:p")),
        "{stops:?}"
    );
    let suffixed: Vec<&str> = packets
        .windows(2)
        .filter(|w| w[0].contains(";thread:") && matches!(w[0].as_bytes()[1], b'g' | b'p'))
        .map(|w| w[1].as_str())
        .collect();
    assert!(
        suffixed
            .iter()
            .any(|r| r.len() > 100 && !r.starts_with("$E")),
        "registers read with a thread suffix: {suffixed:?}"
    );
}
