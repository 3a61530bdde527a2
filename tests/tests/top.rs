//! `GetActivity` and `utrace top`: the counters are exact (every stop,
//! syscall, report and batch of a traced run), and the live view, driven
//! in a real terminal (tmux), shows a process's stop rate and its holder
//! within a refresh of them changing, and answers its keys.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{server, users, Waiting};
use utrace_client::{pb, Client, Decision, Session, SessionEvent};

fn kinds(k: &[pb::EventKind]) -> Vec<i32> {
    k.iter().map(|k| *k as i32).collect()
}

async fn next_report(s: &mut Session) -> pb::Event {
    loop {
        let m = tokio::time::timeout(common::TIMEOUT, s.next())
            .await
            .expect("a report within the test bound")
            .expect("session open")
            .expect("session stream");
        if let SessionEvent::Report(e) = m {
            return e;
        }
    }
}

/// A traced run's counters, exactly: 1,000 `getppid` calls are 1,000 entry
/// stops in the process's table and 1,000 reports of the engine that
/// asked for them; the sync engine holding the program at `exit_group`
/// is its holder, and has answered the three batches it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_counts_every_stop_call_report_and_batch() {
    let (_srv, mut c) = server().await;
    let mut t = Waiting::start(&[tracee!("syscall_loop"), "1000"]);
    let pid = t.pid();
    let observer = c
        .attach(pb::AttachRequest {
            pid,
            engine: Some(pb::EngineSpec {
                events: kinds(&[pb::EventKind::SyscallEntry]),
                syscalls: vec!["getppid".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("attach")
        .engine_id;
    let mut reports = c.events(observer).await.expect("events");
    let mut s = c.session().await.expect("session");
    let holder = s
        .attach(
            pid,
            pb::EngineSpec {
                events: kinds(&[pb::EventKind::SyscallEntry]),
                syscalls: vec!["exit_group".into()],
                sync: true,
                ..Default::default()
            },
        )
        .await
        .expect("session attach")
        .engine_id;
    t.go();
    let held = next_report(&mut s).await;
    for i in 0..1000 {
        let r = tokio::time::timeout(common::TIMEOUT, reports.message())
            .await
            .expect("reports flow");
        assert!(matches!(r, Ok(Some(_))), "report {i}: {r:?}");
    }
    for _ in 0..3 {
        let reply = s
            .batch(pb::BatchRequest {
                engine_id: holder,
                tid: held.tid,
                ops: vec![pb::Op {
                    op: Some(pb::op::Op::GetRegisters(pb::GetRegisters {
                        names: vec!["rip".into()],
                    })),
                }],
                ..Default::default()
            })
            .await
            .expect("batch");
        assert_eq!(reply.results.len(), 1);
    }

    let a = c.activity(pid, 0).await.expect("activity");
    assert!(a.monotonic_ns > 0);
    let [task] = &a.tasks[..] else {
        panic!("one thread: {:?}", a.tasks)
    };
    assert_eq!(
        task.holds,
        vec![holder],
        "held at exit_group by the session"
    );
    assert_eq!(task.holders[0].engine_id, holder);
    assert!(task.holders[0].sync);
    // Attached while it waited in read: every call after is two stops
    // (ptrace mode), and there are other stops besides.
    assert!(task.syscall_stops >= 2001, "{task:?}");
    assert!(task.stops >= task.syscall_stops, "{task:?}");
    let [proc_] = &a.processes[..] else {
        panic!("one process: {:?}", a.processes)
    };
    let calls = |name: &str| {
        proc_
            .syscalls
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.count)
    };
    assert_eq!(calls("getppid"), Some(1000), "{:?}", proc_.syscalls);
    assert_eq!(calls("exit_group"), Some(1));
    assert_eq!(proc_.syscalls[0].name, "getppid", "busiest first");
    assert!(proc_.syscalls.len() <= 16, "16 by default");
    let engine = |id: u64| {
        a.engines
            .iter()
            .find(|e| e.engine_id == id)
            .unwrap_or_else(|| panic!("engine {id} in {:?}", a.engines))
    };
    let o = engine(observer);
    assert_eq!(
        (
            o.kind.as_str(),
            o.reports_sent,
            o.reports_dropped,
            o.batches
        ),
        ("async", 1000, 0, 0)
    );
    assert_eq!(o.client_pid, std::process::id());
    let h = engine(holder);
    assert_eq!(
        (h.kind.as_str(), h.reports_sent, h.batches, h.batch_ops),
        ("sync", 1, 3, 3)
    );
    assert!(h.batch_ns > 0 && h.batch_max_ns > 0 && h.batch_max_ns <= h.batch_ns);

    // A bound past the table's is refused, and says what is allowed.
    let e = c.activity(pid, 5000).await.expect_err("too many");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("top_syscalls"), "{}", e.message());

    s.decide(Decision::resume(&held)).await.expect("decide");
    t.finish();
    common::wait_for("the process gone from the activity", || {
        let mut c = c.clone();
        let a = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("rt")
                .block_on(c.activity(pid, 0))
        })
        .join()
        .expect("thread");
        a.is_ok_and(|a| a.tasks.is_empty() && a.processes.is_empty())
    });
}

/// A tmux session running `utrace top` on `uri`; killed when dropped.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(uri: &str, args: &[&str]) -> Tmux {
        let name = format!("utrace-top-{}", std::process::id());
        let cmd = format!(
            "{} --server {uri} top {}",
            users::workspace_bin("utrace").display(),
            args.join(" ")
        );
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "180", "-y", "45"])
            .args(["-e", "TERM=xterm-256color"])
            .arg(cmd)
            .status()
            .expect("run tmux (.ci/run installs it)");
        assert!(ok.success(), "tmux new-session failed");
        let _ = Command::new("tmux")
            .args(["set-option", "-t", &name, "remain-on-exit", "on"])
            .status();
        Tmux { name }
    }

    fn pane(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(ok.success());
    }

    /// Wait until the pane satisfies `f`; how long that took.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let pane = self.pane();
            if f(&pane) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < common::TIMEOUT,
                "the view never showed {what}; it shows:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pane_dead(&self) -> bool {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.name, "#{pane_dead}"])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// The task table's row of `pid`, as its cells.
fn row(pane: &str, pid: u32) -> Option<Vec<String>> {
    let p = pid.to_string();
    pane.lines().find_map(|l| {
        let cells: Vec<String> = l
            .trim_matches(|c: char| c == '│' || c.is_whitespace())
            .split_whitespace()
            .map(str::to_string)
            .collect();
        (cells.len() >= 8 && cells[0] == p && cells[1] == p).then_some(cells)
    })
}

/// Its STOPS/S cell as a number (`-` before the first interval).
fn stop_rate(cells: &[String]) -> Option<f64> {
    cells.get(5)?.parse().ok()
}

/// An async engine on each of `pids`, reporting every syscall entry (a
/// stop each); their streams, which must be kept open.
fn trace_entries(
    rt: &tokio::runtime::Runtime,
    c: &mut Client,
    pids: &[u32],
) -> Vec<tonic::Streaming<pb::Event>> {
    pids.iter()
        .map(|&pid| {
            let e = rt
                .block_on(c.attach(pb::AttachRequest {
                    pid,
                    engine: Some(pb::EngineSpec {
                        events: kinds(&[pb::EventKind::SyscallEntry]),
                        ..Default::default()
                    }),
                }))
                .expect("attach")
                .engine_id;
            rt.block_on(c.events(e)).expect("events")
        })
        .collect()
}

fn has_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The live view, in a real terminal: a traced ticker's stop rate shows
/// within a refresh; a sync engine that holds it shows as its holder and
/// its rate falls to zero; `p` filters by pid, `s` changes the sort, `q`
/// leaves.
#[test]
fn top_shows_rates_and_holders_live() {
    if !has_tmux() {
        // .ci/run installs tmux; a developer's machine may lack it.
        eprintln!("SKIP top_shows_rates_and_holders_live: tmux is not installed");
        return;
    }
    let d = Daemon::start("top-live");
    let (ticker, mut ticks) = common::ticker(5);
    let (other, _other_ticks) = common::ticker(50);
    let (pid, other_pid) = (ticker.0.id(), other.0.id());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut c = rt.block_on(Client::connect(&d.uri)).expect("connect");
    // An async engine tracing both (every syscall: a stop each).
    let _streams = trace_entries(&rt, &mut c, &[pid, other_pid]);
    let tmux = Tmux::start(&d.uri, &["-d", "0.3"]);
    tmux.wait("the ticker with a stop rate", |p| {
        row(p, pid)
            .and_then(|r| stop_rate(&r))
            .is_some_and(|r| r > 0.0)
    });
    assert!(tmux.pane().contains("async"), "{}", tmux.pane());

    // A sync engine holds the ticker at its next write.
    let mut s = rt.block_on(c.session()).expect("session");
    let holder = rt
        .block_on(s.attach(
            pid,
            pb::EngineSpec {
                events: kinds(&[pb::EventKind::SyscallEntry]),
                syscalls: vec!["write".into()],
                sync: true,
                ..Default::default()
            },
        ))
        .expect("attach sync")
        .engine_id;
    let held = rt.block_on(next_report(&mut s));
    let shown = format!("#{holder} (pid {}, sync)", std::process::id());
    let took = tmux.wait("the holder", |p| {
        row(p, pid).is_some_and(|r| r.join(" ").contains(&shown))
    });
    eprintln!("the holder showed {took:?} after the hold");
    tmux.wait("the held ticker's rate at zero", |p| {
        row(p, pid).and_then(|r| stop_rate(&r)) == Some(0.0)
    });
    rt.block_on(s.decide(Decision::resume(&held)))
        .expect("resume");
    common::ticks_on(&mut ticks, 2);

    // `p PID Enter`: only that process; Esc: all again.
    assert!(row(&tmux.pane(), other_pid).is_some());
    tmux.keys(&["p"]);
    tmux.wait("the pid prompt", |p| p.contains("show pid"));
    tmux.keys(&[&pid.to_string(), "Enter"]);
    tmux.wait("the filter", |p| {
        p.contains(&format!("pid {pid} only"))
            && row(p, other_pid).is_none()
            && row(p, pid).is_some()
    });
    tmux.keys(&["Escape"]);
    tmux.wait("both processes again", |p| {
        row(p, other_pid).is_some() && !p.contains("only")
    });
    tmux.keys(&["s"]);
    tmux.wait("the new sort", |p| p.contains("sorted by syscalls"));
    tmux.keys(&["q"]);
    let start = Instant::now();
    while !tmux.pane_dead() {
        assert!(start.elapsed() < common::TIMEOUT, "q did not end top");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Batch mode (`-b`, and whenever stdout is not a terminal): the tables as
/// text, one block per refresh, `-p` keeping one process; and the errors a
/// user can make.
#[test]
fn top_batch_mode_prints_the_tables() {
    let d = Daemon::start("top-batch");
    let (ticker, _ticks) = common::ticker(5);
    let (other, _other_ticks) = common::ticker(50);
    let pid = ticker.0.id();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut c = rt.block_on(Client::connect(&d.uri)).expect("connect");
    let _streams = trace_entries(&rt, &mut c, &[pid, other.0.id()]);
    let out = Command::new(users::workspace_bin("utrace"))
        .args(["--server", &d.uri, "top", "-n", "2", "-d", "0.3", "-p"])
        .arg(pid.to_string())
        .output()
        .expect("run utrace top");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks: Vec<&str> = text.split("utrace top · ").skip(1).collect();
    assert_eq!(blocks.len(), 2, "two refreshes:\n{text}");
    let first = row(blocks[0], pid).expect("the ticker's row");
    assert_eq!(first[5], "-", "no rate before an interval has passed");
    let second = row(blocks[1], pid).expect("the ticker's row");
    assert!(stop_rate(&second).is_some_and(|r| r > 0.0), "{text}");
    assert!(
        row(blocks[1], other.0.id()).is_none(),
        "-p keeps one process:\n{text}"
    );
    assert!(
        blocks[1].contains("nanosleep") || blocks[1].contains("clock_nanosleep"),
        "{text}"
    );
    assert!(blocks[1].starts_with("1 thread · 1 engine · "), "{text}");

    for (args, named) in [
        (&["top", "-d", "0"][..], "-d"),
        (&["top", "--sort", "cpu"][..], "--sort"),
    ] {
        let out = Command::new(users::workspace_bin("utrace"))
            .args(["--server", &d.uri])
            .args(args)
            .output()
            .expect("run utrace top");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
    }
}
