//! End-to-end tests of the engine layer with real tracee processes: each test
//! has its own `Tracer` (its own tracer thread), so tests run in parallel.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use utrace_engines::builtin::exit_gate::ExitGate;
use utrace_engines::{
    Action, AttachError, CloneKind, EngineOptions, Error, EventMask, ExitStatus, RunState,
    SignalDisposition, SpawnOptions, SyscallMode, SyscallSet, Tracer,
};

const GETPPID: u64 = libc::SYS_getppid as u64;
const OPENAT: u64 = libc::SYS_openat as u64;
const WRITE: u64 = libc::SYS_write as u64;
const GETPID: u64 = libc::SYS_getpid as u64;

fn set(names: &[&str]) -> SyscallSet {
    SyscallSet::from_names(names).expect("known syscalls")
}

fn spawn_opts(argv: &[&str]) -> (SpawnOptions, Lines) {
    let (w, lines) = Lines::pipe();
    let mut o = SpawnOptions::new(argv.iter().copied());
    o.stdout = Some(w);
    (o, lines)
}

/// memory_pattern spawned under `tracer` with `log` asking only for death,
/// its stdin a pipe: the spawn, its output after the `len` line, the stdin
/// writer, and the address of its 1 MiB pattern buffer.
fn spawn_memory_pattern(
    tracer: &Tracer,
    log: Log,
) -> (utrace_engines::Spawned, Lines, std::fs::File, u64) {
    let (stdin_r, stdin_w) = stdin_pipe();
    let (mut opts, mut out) = spawn_opts(&[tracee!("memory_pattern")]);
    opts.stdin = Some(stdin_r);
    let sp = tracer
        .spawn(opts, Box::new(log), EngineOptions::new(EventMask::DEATH))
        .wait()
        .unwrap();
    let addr = u64::from_str_radix(out.next().trim_start_matches("addr=0x"), 16).unwrap();
    assert_eq!(out.next(), "len=1048576");
    (sp, out, stdin_w, addr)
}

fn all_events(syscalls: SyscallSet) -> EngineOptions {
    EngineOptions::new(EventMask::all()).syscalls(syscalls)
}

/// Two engines on one task: A holds at a syscall, B resumes, the task stays
/// stopped; when A resumes, it runs to the end.
#[test]
fn hold_by_one_engine_keeps_task_stopped() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (a, a_log) = Log::new();
    let mut a = a;
    let mut held = false;
    a.on_entry = Some(Box::new(move |_, c| {
        if c.nr == GETPPID && !held {
            held = true;
            Action::Stop
        } else {
            Action::Resume
        }
    }));
    let (mut opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "200"]);
    opts.stop_at_entry = true;
    let sp = tracer
        .spawn(opts, Box::new(a), all_events(set(&["getppid"])))
        .wait()
        .unwrap();
    let (b, b_log) = Log::new();
    let b = tracer
        .attach(sp.pid, Box::new(b), all_events(set(&["getppid"])))
        .wait()
        .unwrap();
    // Release A's stop-at-entry hold: the task runs to A's hold at getppid.
    tracer
        .control(sp.engine, sp.pid, Action::Resume)
        .wait()
        .unwrap();
    b_log.wait_until("B sees the first getppid", |s| {
        s.iter()
            .any(|e| matches!(e, Seen::Entry { nr: GETPPID, .. }))
    });
    std::thread::sleep(Duration::from_millis(200));
    let tasks = tracer.tasks().wait().unwrap();
    let t = tasks.iter().find(|t| t.tid == sp.pid).unwrap();
    assert_eq!(t.state, RunState::Stopped);
    assert_eq!(t.holds, vec![sp.engine], "only A holds");
    assert_eq!(
        b_log.count(|s| matches!(s, Seen::Entry { nr: GETPPID, .. })),
        1,
        "B resumed but the task must not have moved"
    );
    assert!(out.quiet_for(Duration::from_millis(50)));
    // B resuming explicitly changes nothing either.
    tracer
        .control(b.engine, sp.pid, Action::Resume)
        .wait()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        b_log.count(|s| matches!(s, Seen::Entry { nr: GETPPID, .. })),
        1
    );
    // A resumes: it runs.
    tracer
        .control(sp.engine, sp.pid, Action::Resume)
        .wait()
        .unwrap();
    let death = a_log.wait_process_death(sp.pid);
    assert_eq!(death.status, ExitStatus::Exited(0));
    out.rest();
    assert_eq!(out.value("getppid").as_deref(), Some("200"));
    assert_eq!(
        b_log.count(|s| matches!(s, Seen::Entry { nr: GETPPID, .. })),
        200
    );
}

/// A wants openat only, B wants write only: each sees exactly its own, and
/// the counts match what the tracee did.
#[test]
fn each_engine_sees_exactly_its_syscalls() {
    init_logging();
    for kernel_filter in [true, false] {
        let tracer = Tracer::new().unwrap();
        let (a, a_log) = Log::new();
        let (mut opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "100", "10"]);
        opts.kernel_filter = kernel_filter;
        opts.stop_at_entry = true;
        let sp = tracer
            .spawn(opts, Box::new(a), all_events(set(&["openat"])))
            .wait()
            .unwrap();
        let (b, b_log) = Log::new();
        tracer
            .attach(sp.pid, Box::new(b), all_events(set(&["write"])))
            .wait()
            .unwrap();
        tracer
            .control(sp.engine, sp.pid, Action::Resume)
            .wait()
            .unwrap();
        a_log.wait_process_death(sp.pid);
        let lines = out.rest();
        let a_seen = a_log.seen();
        let b_seen = b_log.seen();
        for s in &a_seen {
            if let Seen::Entry { nr, .. } | Seen::Exit { nr, .. } = s {
                assert_eq!(*nr, OPENAT, "A saw a syscall it did not ask for");
            }
        }
        for s in &b_seen {
            if let Seen::Entry { nr, .. } | Seen::Exit { nr, .. } = s {
                assert_eq!(*nr, WRITE, "B saw a syscall it did not ask for");
            }
        }
        // The tracee opened /dev/null 10 times after start-up; the loader's
        // opens come first, so count the last 10 successful openat exits.
        let opens = a_seen
            .iter()
            .filter(|s| matches!(s, Seen::Exit { nr: OPENAT, ret, .. } if *ret >= 0))
            .count();
        assert!(opens >= 10, "A saw {opens} openat exits");
        assert_eq!(out.value("openat_ok").as_deref(), Some("10"));
        // B's writes to fd 1 carry exactly the bytes we read from the pipe.
        let written: u64 = b_seen
            .iter()
            .filter_map(|s| match s {
                Seen::Entry {
                    nr: WRITE, args, ..
                } if args[0] == 1 => Some(args[2]),
                _ => None,
            })
            .sum();
        let read: usize = lines.iter().map(|l| l.len() + 1).sum();
        assert_eq!(written as usize, read, "mode kernel_filter={kernel_filter}");
    }
}

/// Exit gate: the engine sees exits only for the entries it chose.
#[test]
fn exit_gate_sees_only_chosen_exits() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let chosen = Arc::new(AtomicU64::new(0));
    let exits = Arc::new(AtomicU64::new(0));
    let entries = Arc::new(AtomicU64::new(0));
    let (c, e, x) = (chosen.clone(), entries.clone(), exits.clone());
    let mut n = 0u64;
    let gate = ExitGate::new(
        Box::new(move |_, call| {
            e.fetch_add(1, Ordering::SeqCst);
            n += 1;
            let want = call.nr == GETPPID && n % 3 == 0;
            if want {
                c.fetch_add(1, Ordering::SeqCst);
            }
            want
        }),
        Box::new(move |_, call| {
            assert_eq!(call.entry.nr, GETPPID);
            x.fetch_add(1, Ordering::SeqCst);
        }),
    );
    let (log, log_h) = Log::new();
    let (opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "300"]);
    let sp = tracer
        .spawn(
            opts,
            Box::new(gate),
            EngineOptions::new(EventMask::SYSCALL_ENTRY).syscalls(set(&["getppid"])),
        )
        .wait()
        .unwrap();
    tracer
        .attach(sp.pid, Box::new(log), EngineOptions::new(EventMask::DEATH))
        .wait()
        .unwrap();
    log_h.wait_process_death(sp.pid);
    out.rest();
    assert_eq!(entries.load(Ordering::SeqCst), 300);
    assert_eq!(chosen.load(Ordering::SeqCst), 100);
    assert_eq!(exits.load(Ordering::SeqCst), 100);
}

/// 16 threads × N syscalls: every event of every thread seen, clean exit.
#[test]
fn sixteen_threads_no_event_lost() {
    init_logging();
    const N: usize = 300;
    for kernel_filter in [true, false] {
        let tracer = Tracer::new().unwrap();
        let (log, h) = Log::new();
        let (mut opts, mut out) = spawn_opts(&[tracee!("threads"), "16", "300"]);
        opts.kernel_filter = kernel_filter;
        let sp = tracer
            .spawn(opts, Box::new(log), all_events(set(&["getppid"])))
            .wait()
            .unwrap();
        let death = h.wait_process_death(sp.pid);
        assert_eq!(death.status, ExitStatus::Exited(0));
        out.rest();
        assert_eq!(out.value("calls").as_deref(), Some("4800"));
        let by_tid = h.entries_by_tid(GETPPID);
        assert_eq!(by_tid.len(), 16, "threads seen: {by_tid:?}");
        assert!(by_tid.values().all(|n| *n == N), "{by_tid:?}");
        let exits = h.count(|s| matches!(s, Seen::Exit { nr: GETPPID, .. }));
        assert_eq!(exits, 16 * N);
        let clones = h
            .count(|s| matches!(s, Seen::Clone { report, .. } if report.kind == CloneKind::Thread));
        assert_eq!(clones, 16);
        // Every thread's death was reported; the last one took the process.
        let deaths = h.count(|s| matches!(s, Seen::Death(_)));
        assert_eq!(deaths, 17);
    }
}

/// fork + exec: the child is followed through its exec, with its own events.
#[test]
fn fork_exec_child_followed() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, h) = Log::new();
    let (opts, mut out) = spawn_opts(&[tracee!("fork_exec"), tracee!("syscall_loop"), "25"]);
    let sp = tracer
        .spawn(
            opts,
            Box::new(log),
            all_events(set(&["getppid"])).follow_children(true),
        )
        .wait()
        .unwrap();
    h.wait_process_death(sp.pid);
    out.rest();
    let child: i32 = out.value("child_pid").unwrap().parse().unwrap();
    assert_eq!(out.value("child_status").as_deref(), Some("0"));
    let seen = h.seen();
    assert!(seen.iter().any(|s| matches!(s,
        Seen::Clone { tid, report } if *tid == sp.pid && report.child_pid == child && report.kind == CloneKind::Fork)));
    assert!(seen
        .iter()
        .any(|s| matches!(s, Seen::Exec { tid, .. } if *tid == child)));
    assert_eq!(h.entries_by_tid(GETPPID).get(&child), Some(&25));
    assert!(seen.iter().any(|s| matches!(s,
        Seen::Death(d) if d.pid == child && d.process_gone && d.status == ExitStatus::Exited(0))));
}

/// Without follow_children the child gets no engine. Under ptrace-mode
/// tracing it runs untraced; a tree with a kernel-side filter stays traced
/// (its filtered syscalls need the tracer) but reports nothing.
#[test]
fn fork_child_not_followed_by_default() {
    init_logging();
    for kernel_filter in [false, true] {
        let tracer = Tracer::new().unwrap();
        let (log, h) = Log::new();
        let (mut opts, mut out) = spawn_opts(&[tracee!("fork_exec"), tracee!("tracer_pid"), "0"]);
        opts.kernel_filter = kernel_filter;
        let sp = tracer
            .spawn(opts, Box::new(log), all_events(set(&["getppid", "openat"])))
            .wait()
            .unwrap();
        h.wait_process_death(sp.pid);
        out.rest();
        let child: i32 = out.value("child_pid").unwrap().parse().unwrap();
        let tracer_pid = out.value("tracer_pid").unwrap();
        if kernel_filter {
            assert_eq!(tracer_pid, tracer.thread_id().to_string());
        } else {
            assert_eq!(tracer_pid, "0", "{:?}", out.all);
        }
        assert!(!h.seen().iter().any(|s| match s {
            Seen::Exec { tid, .. } | Seen::Entry { tid, .. } => *tid == child,
            _ => false,
        }));
    }
}

/// Exec from a non-leader thread: the exec'ing thread takes over the leader's
/// tid, the engine keeps tracing, and the new program's syscalls are seen.
#[test]
fn exec_from_non_leader_thread() {
    init_logging();
    for kernel_filter in [true, false] {
        let tracer = Tracer::new().unwrap();
        let (log, h) = Log::new();
        let (mut opts, mut out) = spawn_opts(&[tracee!("exec_from_thread"), tracee!("getpid_ret")]);
        opts.kernel_filter = kernel_filter;
        let sp = tracer
            .spawn(opts, Box::new(log), all_events(set(&["getpid", "execve"])))
            .wait()
            .unwrap();
        let death = h.wait_process_death(sp.pid);
        assert_eq!(death.status, ExitStatus::Exited(0));
        out.rest();
        let thread: i32 = out.value("thread_tid").unwrap().parse().unwrap();
        assert_ne!(thread, sp.pid);
        let seen = h.seen();
        // The initial exec (from the leader), then the one from the thread.
        let execs: Vec<_> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Exec { tid, report } => Some((*tid, report.former_tid)),
                _ => None,
            })
            .collect();
        assert_eq!(execs, vec![(sp.pid, sp.pid), (sp.pid, thread)]);
        // getpid_ret's own getpid is reported on the leader's tid, after exec.
        assert_eq!(out.value("getpid"), Some(sp.pid.to_string()));
        assert!(seen
            .iter()
            .any(|s| matches!(s, Seen::Entry { tid, nr: GETPID, .. } if *tid == sp.pid)));
        assert!(tracer.tasks().wait().unwrap().is_empty());
    }
}

/// A signal suppressed by one engine stays suppressed though another says deliver.
#[test]
fn suppress_beats_deliver() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (mut a, a_log) = Log::new();
    a.on_signal = Some(always(SignalDisposition::Deliver));
    let (mut opts, mut out) = spawn_opts(&[tracee!("signals"), "10", "3"]);
    opts.stop_at_entry = true;
    let sp = tracer
        .spawn(
            opts,
            Box::new(a),
            EngineOptions::new(EventMask::SIGNAL | EventMask::DEATH),
        )
        .wait()
        .unwrap();
    let (mut b, b_log) = Log::new();
    b.on_signal = Some(Box::new(|_, s| {
        if s.signo == libc::SIGUSR1 {
            SignalDisposition::Suppress.into_action()
        } else {
            SignalDisposition::Deliver.into_action()
        }
    }));
    tracer
        .attach(sp.pid, Box::new(b), EngineOptions::new(EventMask::SIGNAL))
        .wait()
        .unwrap();
    tracer
        .control(sp.engine, sp.pid, Action::Resume)
        .wait()
        .unwrap();
    a_log.wait_process_death(sp.pid);
    out.rest();
    assert_eq!(out.value("sent").as_deref(), Some("3"));
    assert_eq!(
        out.value("handled").as_deref(),
        Some("0"),
        "suppressed signals were delivered"
    );
    let usr1 = |s: &Seen| {
        matches!(
            s,
            Seen::Signal {
                signo: libc::SIGUSR1,
                ..
            }
        )
    };
    assert_eq!(a_log.count(usr1), 3);
    assert_eq!(b_log.count(usr1), 3);
}

/// With no engine suppressing, signals arrive unchanged.
#[test]
fn signals_delivered_unchanged() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (a, a_log) = Log::new();
    let (opts, mut out) = spawn_opts(&[tracee!("signals"), "10", "3"]);
    let sp = tracer
        .spawn(
            opts,
            Box::new(a),
            EngineOptions::new(EventMask::SIGNAL | EventMask::DEATH),
        )
        .wait()
        .unwrap();
    a_log.wait_process_death(sp.pid);
    out.rest();
    assert_eq!(out.value("handled").as_deref(), Some("3"));
}

/// An engine that suppresses a signal and detaches in the same answer: the
/// suppression holds (the detach waits until the stop is handled), and the
/// later signals, nobody tracing them, are delivered.
#[test]
fn suppress_and_detach_at_one_signal() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (mut a, a_log) = Log::new();
    a.on_signal = Some(Box::new(|_, _| utrace_engines::SignalAction {
        action: Action::Detach,
        disposition: SignalDisposition::Suppress,
    }));
    let (mut opts, mut out) = spawn_opts(&[tracee!("signals"), "10", "3"]);
    opts.kernel_filter = false;
    let sp = tracer
        .spawn(opts, Box::new(a), EngineOptions::new(EventMask::SIGNAL))
        .wait()
        .unwrap();
    out.rest();
    assert_eq!(out.value("sent").as_deref(), Some("3"));
    assert_eq!(
        out.value("handled").as_deref(),
        Some("2"),
        "the first signal was suppressed, the other two delivered"
    );
    assert_eq!(a_log.count(|s| matches!(s, Seen::Signal { .. })), 1);
    let _ = sp;
}

trait IntoAction {
    fn into_action(self) -> utrace_engines::SignalAction;
}
impl IntoAction for SignalDisposition {
    fn into_action(self) -> utrace_engines::SignalAction {
        utrace_engines::SignalAction {
            action: Action::Resume,
            disposition: self,
        }
    }
}

/// SIGSTOP/SIGCONT sent from outside behave as on an untraced process.
#[test]
fn sigstop_sigcont_from_outside() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, h) = Log::new();
    let (opts, mut out) = spawn_opts(&[tracee!("ticker"), "40", "10"]);
    let sp = tracer
        .spawn(opts, Box::new(log), all_events(set(&["write"])))
        .wait()
        .unwrap();
    out.next();
    out.next();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sp.pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    wait_for("tracee in stopped state", || {
        proc_status(sp.pid, "State").is_some_and(|s| s.starts_with('T') || s.starts_with('t'))
    });
    // Drain what was in flight, then nothing more may come while stopped.
    while !out.quiet_for(Duration::from_millis(100)) {}
    assert!(
        out.quiet_for(Duration::from_millis(300)),
        "ticked while stopped"
    );
    let tasks = tracer.tasks().wait().unwrap();
    assert_eq!(tasks[0].state, RunState::GroupStop);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sp.pid),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let death = h.wait_process_death(sp.pid);
    assert_eq!(death.status, ExitStatus::Exited(0));
    out.rest();
    assert_eq!(out.value("done").as_deref(), Some("1"));
    assert_eq!(out.value("tick").as_deref(), Some("39"));
    let seen = h.seen();
    assert!(seen.iter().any(|s| matches!(
        s,
        Seen::Signal {
            signo: libc::SIGSTOP,
            ..
        }
    )));
    assert!(seen.iter().any(|s| matches!(
        s,
        Seen::Signal {
            signo: libc::SIGCONT,
            ..
        }
    )));
}

/// A process started outside the tracer, with piped stdout.
fn outside(argv: &[&str]) -> (std::process::Child, Lines) {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .expect("start tracee");
    let lines = Lines::from_reader(child.stdout.take().unwrap());
    (child, lines)
}

/// Detach while running: the tracee finishes normally, untraced.
#[test]
fn detach_while_running() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (mut child, mut out) = outside(&[tracee!("ticker"), "30", "10"]);
    let pid = child.id() as i32;
    out.next();
    let (log, h) = Log::new();
    let at = tracer
        .attach(pid, Box::new(log), all_events(SyscallSet::all()))
        .wait()
        .unwrap();
    assert_eq!(at.tids, vec![pid]);
    h.wait_until("some syscalls seen", |s| s.len() > 3);
    assert_eq!(
        proc_status(pid, "TracerPid"),
        Some(tracer.thread_id().to_string())
    );
    tracer.detach(at.engine).wait().unwrap();
    wait_for("TracerPid back to 0", || {
        proc_status(pid, "TracerPid").as_deref() == Some("0")
    });
    let st = wait_child(&mut child);
    assert!(st.success());
    out.rest();
    assert_eq!(out.value("done").as_deref(), Some("1"));
    assert_eq!(out.value("tick").as_deref(), Some("29"));
    assert!(h.seen().contains(&Seen::Detached));
}

/// Detach while an engine holds the task stopped.
#[test]
fn detach_while_held() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (mut child, mut out) = outside(&[tracee!("tracer_pid"), "1"]);
    let pid = child.id() as i32;
    out.next();
    let (mut log, h) = Log::new();
    log.on_quiesce = Action::Stop;
    let at = tracer
        .attach(pid, Box::new(log), EngineOptions::new(EventMask::QUIESCE))
        .wait()
        .unwrap();
    tracer.interrupt(at.engine, pid).wait().unwrap();
    h.wait_until("quiesce", |s| {
        s.iter().any(|e| matches!(e, Seen::Quiesce { .. }))
    });
    let tasks = tracer.tasks().wait().unwrap();
    assert_eq!(tasks[0].holds, vec![at.engine]);
    assert_eq!(tasks[0].state, RunState::Stopped);
    tracer.detach(at.engine).wait().unwrap();
    send_line(child.stdin.as_mut().unwrap(), "go");
    let st = wait_child(&mut child);
    assert!(st.success());
    out.rest();
    assert_eq!(out.value("tracer_pid").as_deref(), Some("0"));
}

/// Detach while the process is in a group-stop: it stays stopped, as an
/// untraced process would, and SIGCONT lets it finish.
#[test]
fn detach_while_in_group_stop() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (mut child, mut out) = outside(&[tracee!("ticker"), "20", "10"]);
    let pid = child.id() as i32;
    out.next();
    let (log, _h) = Log::new();
    let at = tracer
        .attach(pid, Box::new(log), EngineOptions::new(EventMask::SIGNAL))
        .wait()
        .unwrap();
    let p = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGSTOP).unwrap();
    wait_for("group-stop", || {
        tracer
            .tasks()
            .wait()
            .unwrap()
            .iter()
            .any(|t| t.state == RunState::GroupStop)
    });
    tracer.detach(at.engine).wait().unwrap();
    wait_for("TracerPid back to 0", || {
        proc_status(pid, "TracerPid").as_deref() == Some("0")
    });
    // At detach the kernel wakes the task and it re-enters the group-stop.
    wait_for("detached process back in its group-stop", || {
        proc_status(pid, "State").is_some_and(|s| s.starts_with('T'))
    });
    while !out.quiet_for(Duration::from_millis(100)) {}
    assert!(
        out.quiet_for(Duration::from_millis(300)),
        "ran while stopped"
    );
    assert!(proc_status(pid, "State").is_some_and(|s| s.starts_with('T')));
    nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGCONT).unwrap();
    let st = wait_child(&mut child);
    assert!(st.success());
    out.rest();
    assert_eq!(out.value("done").as_deref(), Some("1"));
}

/// Memory written by the tracer is seen by the tracee; scattered reads match
/// the tracee's pattern.
#[test]
fn memory_read_write_seen_by_tracee() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, h) = Log::new();
    let (sp, mut out, mut stdin_w, addr) = spawn_memory_pattern(&tracer, log);
    let marker = u64::from_str_radix(out.next().trim_start_matches("marker_addr=0x"), 16).unwrap();
    let checked = tracer
        .with_stopped(sp.engine, sp.pid, true, move |task| {
            // 1,000 scattered 8-byte reads in one call.
            let ranges: Vec<(u64, usize)> = (0..1000u64)
                .map(|i| {
                    (
                        addr + 4096 + (i * 1031) % (1 << 20) - ((i * 1031) % (1 << 20)) % 8,
                        8,
                    )
                })
                .map(|(a, l)| (a.min(addr + (1 << 20) - 8), l))
                .collect();
            let reads = task.read_scatter(&ranges);
            for r in &reads {
                assert!(r.error.is_none());
                for (k, b) in r.data.iter().enumerate() {
                    let i = r.addr - addr + k as u64;
                    assert_eq!(*b, (i * 7 + 3) as u8, "byte {i}");
                }
            }
            task.write_memory(addr, b"utrace was here!").unwrap();
            task.write_memory(marker, &0x1234_5642u64.to_ne_bytes())
                .unwrap();
            reads.len()
        })
        .wait()
        .unwrap();
    assert_eq!(checked, 1000);
    send_line(&mut stdin_w, "go");
    let death = h.wait_process_death(sp.pid);
    out.rest();
    assert_eq!(out.value("pattern_ok").as_deref(), Some("1"));
    assert_eq!(
        out.value("scratch").as_deref(),
        Some(hex(b"utrace was here!").as_str())
    );
    assert_eq!(out.value("marker").as_deref(), Some("0x12345642"));
    assert_eq!(death.status, ExitStatus::Exited(0x42));
}

/// Scatter reads of many small ranges (read a page at a time) give what
/// one read per range gives: any order, repeats, overlaps, page crossings,
/// empty ranges; with an unmapped range among them, every other range is
/// still whole and that one fails alone.
#[test]
fn scatter_reads_match_single_reads() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, _h) = Log::new();
    let (sp, mut out, mut stdin_w, addr) = spawn_memory_pattern(&tracer, log);
    // A deterministic jumble over the first 64 KiB: lengths 0 to 40.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ranges: Vec<(u64, usize)> = (0..2000)
        .map(|_| (addr + next() % 65_000, (next() % 41) as usize))
        .collect();
    ranges.extend([(addr + 4090, 12), (addr + 4090, 12), (addr + 8192, 0)]);
    let mut with_bad = ranges.clone();
    with_bad.insert(700, (0x10, 8));
    let (reads, singles, bad, bad_singles) = tracer
        .with_stopped(sp.engine, sp.pid, true, move |task| {
            let single = |task: &mut utrace_engines::Task<'_>, rs: &[(u64, usize)]| {
                rs.iter()
                    .map(|&(a, l)| task.read_memory(a, l))
                    .collect::<Vec<_>>()
            };
            (
                task.read_scatter(&ranges),
                single(task, &ranges),
                task.read_scatter(&with_bad),
                single(task, &with_bad),
            )
        })
        .wait()
        .unwrap();
    assert_eq!(reads, singles);
    assert!(reads.iter().all(|r| r.error.is_none()));
    for r in &reads {
        for (k, b) in r.data.iter().enumerate() {
            assert_eq!(*b, ((r.addr - addr + k as u64) * 7 + 3) as u8);
        }
    }
    assert_eq!(bad, bad_singles);
    assert!(bad[700].error.is_some() && bad[700].data.is_empty());
    assert_eq!(bad.iter().filter(|r| r.error.is_some()).count(), 1);
    send_line(&mut stdin_w, "go");
    out.rest();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reading unmapped memory gives a partial result with the errno, no panic.
#[test]
fn unmapped_memory_read_is_partial() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, _h) = Log::new();
    let (sp, mut out, mut stdin_w, _) = spawn_memory_pattern(&tracer, log);
    let (null, rest) = tracer
        .with_stopped(sp.engine, sp.pid, true, |task| {
            let null = task.read_memory(0x10, 16);
            // The stack's top: readable, then unmapped past the end of its mapping.
            let end = stack_end(task.pid() as u32);
            let scatter = task.read_scatter(&[(end - 8, 16), (0x10, 4), (end - 16, 8)]);
            (null, scatter)
        })
        .wait()
        .unwrap();
    assert!(null.data.is_empty());
    assert!(null.error.is_some());
    assert_eq!(rest[0].data.len(), 8, "partial read keeps what came back");
    assert!(rest[0].error.is_some());
    assert!(rest[1].data.is_empty() && rest[1].error.is_some());
    assert_eq!(rest[2].data.len(), 8);
    assert!(
        rest[2].error.is_none(),
        "a bad range does not spoil the next"
    );
    send_line(&mut stdin_w, "go");
    out.rest();
}

/// A register write at syscall exit changes what the tracee sees.
#[test]
fn syscall_return_rewritten_at_exit() {
    init_logging();
    for kernel_filter in [true, false] {
        let tracer = Tracer::new().unwrap();
        let (mut log, h) = Log::new();
        log.on_exit = Some(Box::new(|task, call| {
            if call.entry.nr == GETPID {
                task.set_syscall_return(4242).unwrap();
            }
            Action::Resume
        }));
        let (mut opts, mut out) = spawn_opts(&[tracee!("getpid_ret")]);
        opts.kernel_filter = kernel_filter;
        let sp = tracer
            .spawn(opts, Box::new(log), all_events(set(&["getpid"])))
            .wait()
            .unwrap();
        h.wait_process_death(sp.pid);
        out.rest();
        assert_eq!(out.value("getpid").as_deref(), Some("4242"));
        assert_eq!(out.value("real_pid"), Some(sp.pid.to_string()));
    }
}

/// Skipping a syscall at entry with a chosen return value.
#[test]
fn syscall_skipped_at_entry() {
    init_logging();
    for kernel_filter in [true, false] {
        let tracer = Tracer::new().unwrap();
        let (mut log, h) = Log::new();
        log.on_entry = Some(Box::new(|task, call| {
            // Only the tracee's own opens of /dev/null, not the loader's.
            if call.nr == OPENAT {
                let path = task.read_string(call.args[1], 64);
                if path.data == b"/dev/null"[..] {
                    task.skip_syscall(-(libc::ENOENT as i64)).unwrap();
                }
            }
            Action::Resume
        }));
        let (mut opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "50", "10"]);
        opts.kernel_filter = kernel_filter;
        let sp = tracer
            .spawn(opts, Box::new(log), all_events(set(&["openat"])))
            .wait()
            .unwrap();
        h.wait_process_death(sp.pid);
        out.rest();
        assert_eq!(out.value("openat_ok").as_deref(), Some("0"));
        assert_eq!(out.value("openat_err").as_deref(), Some("5"));
        assert_eq!(out.value("last_errno").as_deref(), Some("2"));
        // The exits show the value the tracee saw.
        let skipped_exits =
            h.count(|s| matches!(s, Seen::Exit { nr: OPENAT, ret, .. } if *ret == -2));
        assert!(skipped_exits >= 5);
    }
}

/// Tracee killed while held: no hang, death reported to every engine.
#[test]
fn killed_while_held_reports_death_to_all() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (mut a, a_log) = Log::new();
    a.on_entry = Some(Box::new(|_, _| Action::Stop));
    let (opts, _out) = spawn_opts(&[tracee!("syscall_loop"), "1000000"]);
    let sp = tracer
        .spawn(opts, Box::new(a), all_events(set(&["getppid"])))
        .wait()
        .unwrap();
    let (b, b_log) = Log::new();
    tracer
        .attach(sp.pid, Box::new(b), EngineOptions::new(EventMask::DEATH))
        .wait()
        .unwrap();
    a_log.wait_until("held at getppid", |s| {
        s.iter()
            .any(|e| matches!(e, Seen::Entry { nr: GETPPID, .. }))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sp.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let da = a_log.wait_process_death(sp.pid);
    let db = b_log.wait_process_death(sp.pid);
    let killed = ExitStatus::Signaled {
        signo: libc::SIGKILL,
        core_dumped: false,
    };
    assert_eq!(da.status, killed);
    assert_eq!(db.status, killed);
    assert!(tracer.tasks().wait().unwrap().is_empty());
    // The tracer is fine: it still serves.
    assert!(tracer.stats().wait().unwrap().stops > 0);
}

/// Seccomp mode: untraced syscalls cause no stops at all.
#[test]
fn seccomp_mode_untraced_syscalls_do_not_stop() {
    init_logging();
    const N: u64 = 20_000;
    let mut stops = Vec::new();
    for kernel_filter in [true, false] {
        let tracer = Tracer::new().unwrap();
        let (log, h) = Log::new();
        let (mut opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "20000", "1000"]);
        opts.kernel_filter = kernel_filter;
        let sp = tracer
            .spawn(
                opts,
                Box::new(log),
                EngineOptions::new(EventMask::SYSCALL_ENTRY | EventMask::DEATH)
                    .syscalls(set(&["openat"])),
            )
            .wait()
            .unwrap();
        h.wait_process_death(sp.pid);
        out.rest();
        assert_eq!(out.value("openat_ok").as_deref(), Some("20"));
        let entries = h.count(|s| matches!(s, Seen::Entry { nr: OPENAT, .. }));
        assert!(entries >= 20);
        stops.push((tracer.stats().wait().unwrap().syscall_stops, entries as u64));
    }
    let (seccomp_stops, seccomp_entries) = stops[0];
    let (ptrace_stops, _) = stops[1];
    // Kernel-side: one stop per openat, nothing for the 20,000 getppid.
    assert_eq!(
        seccomp_stops, seccomp_entries,
        "seccomp mode stopped for untraced syscalls"
    );
    assert!(
        ptrace_stops > 2 * N,
        "ptrace mode stops for every syscall: {ptrace_stops}"
    );
}

/// When an engine widens its set beyond the filter, the task falls back to
/// PTRACE_SYSCALL and every syscall it asks for is seen; narrowing returns
/// to kernel-side filtering.
#[test]
fn seccomp_fallback_when_mask_widens() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, h) = Log::new();
    let (stdin_r, mut stdin_w) = stdin_pipe();
    let (mut opts, mut out) = spawn_opts(&[tracee!("tracer_pid"), "1"]);
    opts.stdin = Some(stdin_r);
    let sp = tracer
        .spawn(opts, Box::new(log), all_events(set(&["openat"])))
        .wait()
        .unwrap();
    out.next();
    assert_eq!(tracer.tasks().wait().unwrap()[0].mode, SyscallMode::Seccomp);
    // Widen: the engine now wants read and write too (outside the filter).
    tracer
        .set_events(
            sp.engine,
            EventMask::all(),
            set(&["openat", "read", "write"]),
        )
        .wait()
        .unwrap();
    wait_for("mode switched to ptrace", || {
        tracer.tasks().wait().unwrap()[0].mode == SyscallMode::Ptrace
    });
    send_line(&mut stdin_w, "go");
    h.wait_process_death(sp.pid);
    out.rest();
    let seen = h.seen();
    let read = libc::SYS_read as u64;
    // The blocked read completes after the switch: its exit is seen; the
    // write of `tracer_pid=` is seen at entry and exit.
    assert!(seen
        .iter()
        .any(|s| matches!(s, Seen::Exit { nr, .. } if *nr == read)));
    assert!(seen
        .iter()
        .any(|s| matches!(s, Seen::Entry { nr: WRITE, args, .. } if args[0] == 1)));
    assert!(seen
        .iter()
        .any(|s| matches!(s, Seen::Exit { nr: WRITE, .. })));
    // The program's open of /proc/self/status happened after the switch too.
    assert!(
        seen.iter()
            .filter(|s| matches!(s, Seen::Entry { nr: OPENAT, .. }))
            .count()
            >= 1
    );
}

/// Narrowing back to the filter's set returns the task to kernel-side filtering.
#[test]
fn seccomp_mode_returns_when_mask_narrows() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, h) = Log::new();
    let (mut opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "2000", "100"]);
    opts.stop_at_entry = true;
    let sp = tracer
        .spawn(opts, Box::new(log), all_events(set(&["openat"])))
        .wait()
        .unwrap();
    tracer
        .set_events(sp.engine, EventMask::all(), set(&["openat", "getppid"]))
        .wait()
        .unwrap();
    assert_eq!(tracer.tasks().wait().unwrap()[0].mode, SyscallMode::Ptrace);
    tracer
        .set_events(sp.engine, EventMask::all(), set(&["openat"]))
        .wait()
        .unwrap();
    assert_eq!(tracer.tasks().wait().unwrap()[0].mode, SyscallMode::Seccomp);
    tracer
        .control(sp.engine, sp.pid, Action::Resume)
        .wait()
        .unwrap();
    h.wait_process_death(sp.pid);
    out.rest();
    assert_eq!(out.value("openat_ok").as_deref(), Some("20"));
    assert_eq!(h.count(|s| matches!(s, Seen::Entry { nr: GETPPID, .. })), 0);
}

/// Single-stepping: a step is reported to the engine that asked, at the next
/// instruction.
#[test]
fn single_step_reports_step() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (mut log, h) = Log::new();
    let mut steps = 0;
    log.on_step = Action::Resume;
    log.on_entry = Some(Box::new(move |_, c| {
        if c.nr == GETPPID && steps == 0 {
            steps += 1;
            Action::SingleStep
        } else {
            Action::Resume
        }
    }));
    let (opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "5"]);
    let sp = tracer
        .spawn(opts, Box::new(log), all_events(set(&["getppid"])))
        .wait()
        .unwrap();
    h.wait_process_death(sp.pid);
    out.rest();
    assert_eq!(out.value("getppid").as_deref(), Some("5"));
    assert_eq!(h.count(|s| matches!(s, Seen::Step { .. })), 1);
}

// ---- bad input -------------------------------------------------------------

#[test]
fn attach_nonexistent_pid() {
    let tracer = Tracer::new().unwrap();
    let (log, _) = Log::new();
    let err = tracer
        .attach(0x3fff_fff0, Box::new(log), EngineOptions::default())
        .wait()
        .unwrap_err();
    assert!(
        matches!(err, Error::Attach(AttachError::NoSuchProcess { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("no process"), "{err}");
}

#[test]
fn attach_self_or_ancestor() {
    let tracer = Tracer::new().unwrap();
    for pid in [
        std::process::id() as i32,
        nix::unistd::getppid().as_raw(),
        1,
    ] {
        let (log, _) = Log::new();
        let err = tracer
            .attach(pid, Box::new(log), EngineOptions::default())
            .wait()
            .unwrap_err();
        assert!(
            matches!(err, Error::Attach(AttachError::SelfOrAncestor { .. })),
            "{pid}: {err}"
        );
    }
}

#[test]
fn attach_already_traced_names_the_tracer() {
    init_logging();
    let first = Tracer::new().unwrap();
    let second = Tracer::new().unwrap();
    let (mut child, _out) = outside(&[tracee!("ticker"), "50", "20"]);
    let pid = child.id() as i32;
    let (log, _) = Log::new();
    let at = first
        .attach(pid, Box::new(log), EngineOptions::default())
        .wait()
        .unwrap();
    let (log, _) = Log::new();
    let err = second
        .attach(pid, Box::new(log), EngineOptions::default())
        .wait()
        .unwrap_err();
    match &err {
        Error::Attach(AttachError::AlreadyTraced { tracer, .. }) => {
            assert_eq!(*tracer, first.thread_id())
        }
        other => panic!("expected AlreadyTraced, got {other}"),
    }
    assert!(err.to_string().contains("already traced by pid"), "{err}");
    first.detach(at.engine).wait().unwrap();
    let _ = child.kill();
    wait_child(&mut child);
}

/// The last engine detached while the program is being killed: the
/// detach needs a stop, the SIGKILL takes the task out of it (PTRACE_DETACH
/// fails with ESRCH), and the task stops once more at its exit; the tracer
/// must detach it there rather than forget it (it would wait in that stop
/// for good). Repeated, since the race is narrow.
#[test]
fn killed_while_being_detached_does_not_hang() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    for _ in 0..20 {
        let (mut child, _out) = outside(&[tracee!("ticker"), "50", "20"]);
        let pid = child.id() as i32;
        let (log, _) = Log::new();
        let at = tracer
            .attach(pid, Box::new(log), EngineOptions::default())
            .wait()
            .unwrap();
        tracer.detach(at.engine).wait().unwrap();
        let _ = child.kill();
        let st = wait_child(&mut child);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL)
        );
    }
}

#[test]
fn attach_zombie() {
    let tracer = Tracer::new().unwrap();
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id() as i32;
    wait_for("zombie", || {
        proc_status(pid, "State").is_some_and(|s| s.starts_with('Z'))
    });
    let (log, _) = Log::new();
    let err = tracer
        .attach(pid, Box::new(log), EngineOptions::default())
        .wait()
        .unwrap_err();
    assert!(
        matches!(err, Error::Attach(AttachError::Zombie { .. })),
        "{err}"
    );
    child.wait().unwrap();
}

#[test]
fn spawn_missing_program_and_empty_argv() {
    let tracer = Tracer::new().unwrap();
    let (log, _) = Log::new();
    let err = tracer
        .spawn(
            SpawnOptions::new(["definitely-not-a-program-utrace"]),
            Box::new(log),
            EngineOptions::default(),
        )
        .wait()
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    let (log, _) = Log::new();
    let err = tracer
        .spawn(
            SpawnOptions::new(Vec::<String>::new()),
            Box::new(log),
            EngineOptions::default(),
        )
        .wait()
        .unwrap_err();
    assert!(err.to_string().contains("empty argv"), "{err}");
    // A directory is found but cannot be executed: the exec error is reported.
    let (log, _) = Log::new();
    let err = tracer
        .spawn(
            SpawnOptions::new(["/tmp"]),
            Box::new(log),
            EngineOptions::default(),
        )
        .wait()
        .unwrap_err();
    assert!(err.to_string().contains("cannot execute /tmp"), "{err}");
    assert!(tracer.tasks().wait().unwrap().is_empty());
}

#[test]
fn control_unknown_engine_or_task() {
    let tracer = Tracer::new().unwrap();
    let err = tracer
        .control(utrace_engines::EngineId(999), 1, Action::Resume)
        .wait()
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchEngine(_)), "{err}");
}

/// The async API works from a tokio runtime too.
#[tokio::test]
async fn async_api_spawn_and_tasks() {
    let tracer = Tracer::new().unwrap();
    let (log, h) = Log::new();
    let (opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "10"]);
    let sp = tracer
        .spawn(opts, Box::new(log), all_events(set(&["getppid"])))
        .await
        .unwrap();
    let pid = sp.pid;
    tokio::task::spawn_blocking(move || {
        h.wait_process_death(pid);
        out.rest();
        assert_eq!(
            h.count(|s| matches!(s, Seen::Entry { nr: GETPPID, .. })),
            10
        );
    })
    .await
    .unwrap();
    assert!(tracer.tasks().await.unwrap().is_empty());
}

/// `control(Stop)` on a running non-leader thread that is in the middle of
/// an execve: the exec's stop comes on the leader's tid (the thread takes it
/// over), and the hold asked for follows the thread there.
#[test]
fn control_stop_follows_a_non_leader_exec() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (mut log, h) = Log::new();
    let queue = tracer.clone();
    let asked = Arc::new(AtomicU64::new(0));
    let asked_in = Arc::clone(&asked);
    log.on_entry = Some(Box::new(move |task, c| {
        if c.nr == libc::SYS_execve as u64 && task.tid() != task.pid() {
            // Queued now, run by the tracer thread once this stop is handled
            // and the thread is running (inside its execve): a hold for the
            // thread's next stop, which is the exec's.
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let req = queue.control(task.engine_id(), task.tid(), Action::Stop);
            if rt.block_on(req.submit()).is_ok() {
                asked_in.store(task.tid() as u64, Ordering::SeqCst);
            }
        }
        Action::Resume
    }));
    let (opts, mut out) = spawn_opts(&[tracee!("exec_from_thread"), tracee!("getpid_ret")]);
    let sp = tracer
        .spawn(opts, Box::new(log), all_events(set(&["execve", "getpid"])))
        .wait()
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let held = loop {
        let tasks = tracer.tasks().wait().unwrap();
        if let Some(t) = tasks.iter().find(|t| t.tid == sp.pid) {
            if t.state == RunState::Stopped && t.holds == vec![sp.engine] {
                break true;
            }
        }
        if tasks.is_empty() || std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let thread = asked.load(Ordering::SeqCst) as i32;
    assert_ne!(thread, 0, "the thread's execve entry was reported");
    assert!(held, "the exec stop is held for the engine");
    assert!(h.seen().iter().any(|s| matches!(
        s,
        Seen::Exec { tid, report } if *tid == sp.pid && report.former_tid == thread
    )));
    tracer
        .control(sp.engine, sp.pid, Action::Resume)
        .wait()
        .unwrap();
    let death = h.wait_process_death(sp.pid);
    assert_eq!(death.status, ExitStatus::Exited(0));
    out.rest();
    assert_eq!(out.value("getpid"), Some(sp.pid.to_string()));
}

/// A batch with `interrupt` on a task blocked in a syscall under
/// `PTRACE_SYSCALL` runs at that syscall's exit stop, and sees the syscall:
/// the stop is decoded before waiting batches run.
#[test]
fn interrupt_batch_sees_the_syscall_it_lands_on() {
    use utrace_engines::batch::{Op, OpResult};
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, h) = Log::new();
    // Close-on-exec: the program must not keep the write end (its read
    // would never see EOF if this test fails before writing).
    let (stdin_r, stdin_w) = stdin_pipe();
    let (mut opts, mut out) = spawn_opts(&[tracee!("syscall_loop"), "10"]);
    // PTRACE_SYSCALL, so the interrupted read stops at its exit.
    opts.kernel_filter = false;
    opts.stdin = Some(stdin_r);
    opts.env
        .push(("UTRACE_TRACEE_WAIT".to_string(), "1".to_string()));
    let sp = tracer
        .spawn(opts, Box::new(log), all_events(set(&["read"])))
        .wait()
        .unwrap();
    const READ: u64 = libc::SYS_read as u64;
    h.wait_until("the read from stdin starts", |s| {
        s.iter()
            .any(|e| matches!(e, Seen::Entry { nr: READ, args, .. } if args[0] == 0))
    });
    // Let it resume and block in the read.
    std::thread::sleep(Duration::from_millis(100));
    let results = tracer
        .batch(sp.engine, sp.pid, true, vec![Op::GetSyscall], false)
        .wait()
        .unwrap();
    match &results[..] {
        [OpResult::Syscall(Some(st))] => {
            assert_eq!(st.entry.nr, READ);
            assert_eq!(st.entry.args[0], 0);
            assert!(st.ret.is_some(), "at the read's exit stop: {st:?}");
        }
        other => panic!("expected the read at its exit stop, got {other:?}"),
    }
    // The read is restarted; a line lets the program go on.
    nix::unistd::write(&stdin_w, b"go\n").unwrap();
    let death = h.wait_process_death(sp.pid);
    assert_eq!(death.status, ExitStatus::Exited(0));
    out.rest();
    assert_eq!(out.value("getppid"), Some("10".to_string()));
}

/// Hold `pid` for `engine` and wait until it sits in the stop.
fn hold(tracer: &Tracer, engine: utrace_engines::EngineId, pid: i32) {
    tracer.control(engine, pid, Action::Stop).wait().unwrap();
    wait_for("the task to be held", || {
        tracer
            .tasks()
            .wait()
            .unwrap()
            .iter()
            .any(|t| t.tid == pid && t.state == RunState::Stopped && t.holds.contains(&engine))
    });
}

/// Reads from other threads (`read_scatter_now`) give exactly what the
/// tracer thread gives, breakpoints hidden; they give up (leaving the
/// caller to the tracer thread) before the thread was read once through
/// the tracer, for an engine not attached, while it runs, and once the
/// engine detached.
#[test]
fn reads_now_match_the_tracer_thread_and_give_up_when_they_must() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, h) = Log::new();
    let (sp, mut out, mut stdin_w, addr) = spawn_memory_pattern(&tracer, log);
    let bp = addr + 5000;
    let mut ranges: Vec<(u64, usize)> = (0..1000u64)
        .map(|i| (addr + 4096 + (i * 1031) % ((1 << 20) - 4104), 8))
        .collect();
    ranges.push((bp - 3, 8));
    let e = sp.engine;
    assert!(
        tracer.read_scatter_now(e, sp.pid, &ranges).is_none(),
        "not read through the tracer yet"
    );
    hold(&tracer, e, sp.pid);
    tracer
        .with_stopped(e, sp.pid, false, move |task| task.insert_breakpoint(bp))
        .wait()
        .unwrap()
        .unwrap();
    let routed = tracer
        .read_scatter(e, sp.pid, false, ranges.clone())
        .wait()
        .unwrap();
    let now = tracer
        .read_scatter_now(e, sp.pid, &ranges)
        .expect("a held task, read before: answered here");
    assert_eq!(now, routed);
    assert!(now.got.is_none());
    let mut off = 0;
    for &(a, len) in &ranges {
        for k in 0..len {
            let i = a - addr + k as u64;
            assert_eq!(now.buf[off + k], (i * 7 + 3) as u8, "byte {i}");
        }
        off += len;
    }
    // The int3 is in memory, hidden from both reads.
    let mut raw = [0u8; 1];
    nix::sys::uio::pread(
        std::fs::File::open(format!("/proc/{}/mem", sp.pid)).unwrap(),
        &mut raw,
        bp as i64,
    )
    .unwrap();
    assert_eq!(raw[0], 0xcc);
    assert!(tracer
        .read_scatter_now(utrace_engines::EngineId(999), sp.pid, &ranges)
        .is_none());
    assert!(tracer
        .read_scatter_now(e, sp.pid + 100_000, &ranges)
        .is_none());
    let stats = tracer.stats().wait().unwrap();
    assert_eq!(stats.reads_now, 1);
    assert_eq!(stats.reads_routed, 3);
    // Running: not read here.
    tracer.control(e, sp.pid, Action::Resume).wait().unwrap();
    assert!(tracer.read_scatter_now(e, sp.pid, &ranges).is_none());
    // Held again: read here again.
    hold(&tracer, e, sp.pid);
    assert!(tracer.read_scatter_now(e, sp.pid, &ranges).is_some());
    // Detached: the tracer forgot it.
    tracer.detach(e).wait().unwrap();
    assert!(tracer.read_scatter_now(e, sp.pid, &ranges).is_none());
    send_line(&mut stdin_w, "go");
    out.rest();
    assert_eq!(out.value("pattern_ok").as_deref(), Some("1"));
    drop(h);
}

/// Reads from other threads never see a tracer write or a breakpoint half
/// done: while the tracer thread writes alternating patterns over a page
/// and inserts and removes a breakpoint in it, three threads read the page;
/// every read they answer is one pattern whole, with no `int3`.
#[test]
fn reads_now_never_see_a_change_half_done() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (log, _h) = Log::new();
    let (sp, mut out, mut stdin_w, addr) = spawn_memory_pattern(&tracer, log);
    let e = sp.engine;
    hold(&tracer, e, sp.pid);
    let page = vec![(addr, 4096usize)];
    // The scratch page starts as the pattern: make it one fill first.
    tracer
        .with_stopped(e, sp.pid, false, move |task| {
            task.write_memory(addr, &[0x22; 4096]).unwrap()
        })
        .wait()
        .unwrap();
    tracer
        .read_scatter(e, sp.pid, false, page.clone())
        .wait()
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (tracer, page, done) = (tracer.clone(), page.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let (mut answered, mut refused) = (0u64, 0u64);
                while !done.load(Ordering::SeqCst) || answered == 0 {
                    match tracer.read_scatter_now(e, sp.pid, &page) {
                        Some(r) => {
                            answered += 1;
                            let first = r.buf[0];
                            assert!(first == 0x11 || first == 0x22, "read {first:#x}");
                            assert!(
                                r.buf.iter().all(|b| *b == first),
                                "a page read mixes two writes, or shows an int3"
                            );
                        }
                        None => refused += 1,
                    }
                }
                (answered, refused)
            })
        })
        .collect();
    for k in 0..400u32 {
        let fill = if k % 2 == 0 { 0x11u8 } else { 0x22 };
        tracer
            .with_stopped(e, sp.pid, false, move |task| {
                task.insert_breakpoint(addr + 100).unwrap();
                task.write_memory(addr, &[fill; 4096]).unwrap();
                task.remove_breakpoint(addr + 100).unwrap();
            })
            .wait()
            .unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let mut answered = 0;
    for r in readers {
        let (a, _refused) = r.join().expect("reader thread");
        answered += a;
    }
    assert!(answered > 0);
    tracer.control(e, sp.pid, Action::Resume).wait().unwrap();
    send_line(&mut stdin_w, "go");
    out.rest();
    assert_eq!(out.value("pattern_ok").as_deref(), Some("1"));
}

/// Records each `read` exit's system time.
struct ReadTimes(Arc<std::sync::Mutex<Vec<Option<u64>>>>);

impl utrace_engines::Engine for ReadTimes {
    fn report_syscall_exit(
        &mut self,
        _task: &mut utrace_engines::Task<'_>,
        call: &utrace_engines::SyscallExit,
    ) -> Action {
        if call.entry.nr == libc::SYS_read as u64 {
            self.0.lock().unwrap().push(call.system_ns);
        }
        Action::Resume
    }
}

/// An engine that asks for system times gets, at each syscall exit, the
/// system time the call took (strace -c's), from the rusage its stops
/// were reaped with: reading 2 GiB of zeros takes some (0.04-0.05 s by
/// `/usr/bin/time` here). 256 MiB took under 10 ms, which the kernel
/// charges a tick at a time: on a loaded machine, 6 runs of 15 saw none
/// at all. Without one asking, exits carry none.
#[test]
fn syscall_exits_carry_their_system_time_when_asked() {
    init_logging();
    for asked in [true, false] {
        let tracer = Tracer::new().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut opts =
            EngineOptions::new(EventMask::SYSCALL_EXIT | EventMask::DEATH).syscalls(set(&["read"]));
        opts.system_times = asked;
        let argv = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=2048"];
        let mut spawn = SpawnOptions::new(argv);
        spawn.stderr = Some(std::fs::File::create("/dev/null").unwrap().into());
        tracer
            .spawn(spawn, Box::new(ReadTimes(seen.clone())), opts)
            .wait()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while seen.lock().unwrap().len() < 2048 {
            assert!(std::time::Instant::now() < deadline, "dd's reads");
            std::thread::sleep(Duration::from_millis(10));
        }
        let times = seen.lock().unwrap().clone();
        assert!(times.len() >= 2048, "{} reads", times.len());
        if asked {
            assert!(times.iter().all(Option::is_some), "{times:?}");
            let total: u64 = times.iter().flatten().sum();
            assert!(total > 0, "2 GiB of zeros cost no system time: {times:?}");
        } else {
            assert!(times.iter().all(Option::is_none), "{times:?}");
        }
    }
}

/// The tracer thread sleeps in the kernel's wait for its tracees, and a
/// command must end that sleep whenever it comes: just before the wait
/// starts, during it, or as a stop arrives. Thousands of commands from two
/// threads, against a tracee that never stops (every command needs the
/// wake-up) and one that stops all the time; a lost wake-up would leave a
/// command unanswered, and the watchdog says so.
#[test]
fn commands_wake_the_tracer_while_it_waits_for_stops() {
    init_logging();
    const PER_THREAD: usize = 3000;
    let tracer = Tracer::new().unwrap();
    // Commands from two threads at once; true if all were answered in time.
    let hammer = |what: &str| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let (t, tx) = (tracer.clone(), tx.clone());
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    t.tasks().wait().expect("tasks");
                }
                let _ = tx.send(());
            });
        }
        for _ in 0..2 {
            rx.recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("{what}: a command was never answered"));
        }
    };
    // A tracee that never stops: the tracer only ever wakes for commands.
    let (log, h) = Log::new();
    let sleeper = tracer
        .spawn(
            SpawnOptions::new(["sleep", "600"]),
            Box::new(log),
            EngineOptions::new(EventMask::DEATH),
        )
        .wait()
        .unwrap();
    hammer("idle tracee");
    // One that stops at every call besides.
    let (log2, h2) = Log::new();
    let (opts, _out) = spawn_opts(&[tracee!("syscall_loop"), "200000"]);
    let busy = tracer
        .spawn(opts, Box::new(log2), all_events(set(&["getppid"])))
        .wait()
        .unwrap();
    hammer("busy tracee");
    for (sp, h) in [(sleeper, h), (busy, h2)] {
        tracer.kill(sp.engine, sp.pid).wait().unwrap();
        h.wait_process_death(sp.pid);
    }
}

/// `tasks_now` answers from the list the tracer thread last made only
/// while the thread has handled nothing since: a task that appears, is
/// held by a quiesce, is let go and dies is seen at each step, and an
/// unchanged list is answered the same.
#[test]
fn tasks_now_follows_every_change() {
    init_logging();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tracer = Tracer::new().unwrap();
    let now = || rt.block_on(tracer.tasks_now()).unwrap();
    assert!(now().is_empty());
    let (mut log, h) = Log::new();
    log.on_quiesce = Action::Stop;
    let sp = tracer
        .spawn(
            SpawnOptions::new(["sleep", "600"]),
            Box::new(log),
            EngineOptions::new(EventMask::QUIESCE | EventMask::DEATH),
        )
        .wait()
        .unwrap();
    let first = now();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!((first[0].pid, first[0].state), (sp.pid, RunState::Running));
    assert!(first[0].holds.is_empty());
    // Nothing happened: the same answer (from the published list).
    assert_eq!(now(), first);
    tracer.interrupt(sp.engine, sp.pid).wait().unwrap();
    h.wait_until("quiesce", |s| {
        s.iter().any(|e| matches!(e, Seen::Quiesce { .. }))
    });
    let held = now();
    assert_eq!(held[0].holds, vec![sp.engine], "{held:?}");
    assert_eq!(held[0].state, RunState::Stopped);
    tracer
        .control(sp.engine, sp.pid, Action::Resume)
        .wait()
        .unwrap();
    let resumed = now();
    assert!(resumed[0].holds.is_empty(), "{resumed:?}");
    assert_eq!(resumed[0].state, RunState::Running);
    tracer.kill(sp.engine, sp.pid).wait().unwrap();
    h.wait_process_death(sp.pid);
    // The death was handled: the list is made again, and empty.
    let gone = now();
    assert!(gone.is_empty(), "{gone:?}");
}
