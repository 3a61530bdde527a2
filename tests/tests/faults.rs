//! Faults: the server killed outright or stopped (SIGKILL, SIGTERM) and
//! clients killed in the middle of what they do, with real programs being
//! traced; each program's state afterwards is what the docs promise.
//!
//! - A breakpoint of a client that takes hits without stops is a uprobe
//!   (where the kernel's uprobes take the instruction), which the kernel
//!   takes out when the server dies: a program that hits it in a tight
//!   loop runs on.
//! - A breakpoint that stops (an int3) left by a killed server is put back
//!   by the keeper (a process `utraced` forks at start, fed a journal of
//!   breakpoints), so a program that calls the function now and then runs
//!   on. (One in a hot loop is hit before the keeper can act: see the
//!   fault bench.)
//! - A task held by an engine, or streamed, runs on when the server dies:
//!   the kernel detaches it.
//! - A program spawned with kernel-side filtering dies with the server, by
//!   design (its filtered syscalls would fail untraced).
//! - A client killed mid-stream, mid-decision or mid-batch loses its
//!   engines; what it held runs on, and other clients carry on.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::daemon::Daemon;
use common::users::AsClient;
use common::{raw_byte, ticker, ticks_on, untraced};
use utrace_client::{pb, Client};

/// A client (another process) whose Session holds `pid` at a syscall
/// entry and never decides, once it does.
fn held_by_a_client(uri: &str, pid: u32) -> AsClient {
    let mut holder = AsClient::start(&[], uri);
    let r = holder.cmd(&format!("session-hold {pid}"));
    assert!(r.starts_with("ok"), "{r}");
    holder.wait_event("held");
    holder
}

/// Insert a breakpoint for `engine` where `pid`'s thread is now (stopped
/// for it): its address and the original byte there.
async fn insert_where_it_is(c: &mut Client, engine: u64, pid: u32) -> (u64, u8) {
    let rip = c
        .batch(engine, 0)
        .interrupt(true)
        .regs(&["rip"])
        .send()
        .await
        .unwrap()
        .register(0, "rip")
        .unwrap();
    let orig = raw_byte(pid, rip);
    c.batch(engine, 0)
        .interrupt(true)
        .op(pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint {
            addr: rip,
            ..Default::default()
        }))
        .send()
        .await
        .unwrap()
        .done(0)
        .unwrap();
    (rip, orig)
}

/// Insert a breakpoint for `engine` at the function `symbol` of its
/// process's executable (`probe_target`'s `probed_fn`): its address and
/// the original byte there.
async fn insert_at(c: &mut Client, engine: u64, symbol: &str) -> (u64, u8) {
    let addr = common::insert_breakpoint_at(c, engine, symbol).await;
    // The byte there before: `probe_target`'s `probed_fn` starts with
    // `push %rbp`.
    (addr, 0x55)
}

/// Where [`breakpoint_in`] puts the breakpoint.
#[derive(Clone, Copy)]
enum Place {
    /// Where the thread is now (in a sleep, which returns there every
    /// tick).
    WhereItIs,
    /// At this function (`probe_target`'s `probed_fn`, whose first
    /// instruction, `push %rbp`, the kernel's uprobes take: where a thread
    /// in a loop is now may be an instruction they refuse, an AVX-512 one
    /// in libc, and an int3 would serve it).
    At(&'static str),
}

/// Attach to `pid` and insert a breakpoint `place`; wait for a hit. With
/// `int3`, the engine asks for memory at each hit, which only a stop can
/// give: an int3 serves it; without, a uprobe. Returns the address and the
/// original byte.
async fn breakpoint_in(c: &mut Client, pid: u32, place: Place, int3: bool) -> (u64, u8) {
    let expedite = int3.then(|| pb::Expedite {
        registers: vec![],
        memory: vec![pb::MemRef {
            register: "rsp".into(),
            len: 8,
            string: false,
            offset: 0,
        }],
        register_bytes: Default::default(),
    });
    let at = c
        .attach(pb::AttachRequest {
            pid,
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Breakpoint as i32],
                expedite,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut events = c.events(at.engine_id).await.unwrap();
    let (rip, orig) = match place {
        Place::WhereItIs => insert_where_it_is(c, at.engine_id, pid).await,
        Place::At(symbol) => insert_at(c, at.engine_id, symbol).await,
    };
    // (Right after the insertion the thread steps over an int3: it is back
    // once that step is done. A uprobe's is the kernel's.)
    common::wait_for("the int3 in memory", || raw_byte(pid, rip) == 0xcc);
    // It is hit (the program keeps calling it).
    loop {
        let ev = tokio::time::timeout(common::TIMEOUT, tokio_stream::StreamExt::next(&mut events))
            .await
            .expect("a breakpoint hit")
            .unwrap()
            .unwrap();
        if matches!(ev.kind, Some(pb::event::Kind::Breakpoint(_))) {
            break;
        }
    }
    std::mem::forget(events);
    (rip, orig)
}

/// A `ticker` spawned with kernel-side filtering (on `write`): it depends
/// on the server for its whole life.
async fn spawn_filtered(c: &mut Client) -> pb::SpawnReply {
    c.spawn(pb::SpawnRequest {
        argv: vec![tracee!("ticker").into(), "100000".into(), "20".into()],
        engine: Some(pb::EngineSpec {
            syscalls: vec!["write".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// SIGKILL of the server with a breakpoint in a function the program
/// calls every 50 ms: the keeper puts the byte back and the program runs
/// on; a held task and a streamed one run on (the kernel detaches them);
/// a program spawned with kernel-side filtering dies with the server, by
/// design.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_server_harms_no_program_it_may_leave() {
    let mut d = Daemon::start("kill9");
    let mut c = Client::connect(&d.uri).await.unwrap();

    let (bp_prog, mut bp_lines) = ticker(50);
    let (addr, orig) = breakpoint_in(&mut c, bp_prog.0.id(), Place::WhereItIs, true).await;

    let (held_prog, mut held_lines) = ticker(20);
    let _holder = held_by_a_client(&d.uri, held_prog.0.id());

    let (streamed, mut streamed_lines) = ticker(5);
    let mut stream = c
        .trace(pb::TraceRequest {
            target: Some(pb::trace_request::Target::Pid(streamed.0.id())),
            engine: None,
        })
        .await
        .unwrap();
    assert!(tokio_stream::StreamExt::next(&mut stream).await.is_some());

    let filtered = spawn_filtered(&mut c).await;
    assert!(common::alive(filtered.pid));

    // Killed between two hits (just after a tick, 50 ms before the next
    // hit), as the keeper promises: one that lands around a hit (the
    // thread at the trap, or stepping over the instruction) leaves it a
    // trap with no tracer, which kills it (see the fault bench).
    assert!(bp_lines.next_fresh().starts_with("tick="));
    d.stop(libc::SIGKILL);
    // The breakpoint's byte is back, and the program ticks on.
    common::wait_for("the keeper to restore the byte", || {
        raw_byte(bp_prog.0.id(), addr) == orig
    });
    ticks_on(&mut bp_lines, 10);
    untraced(bp_prog.0.id());

    // The held and the streamed programs run on.
    ticks_on(&mut held_lines, 5);
    untraced(held_prog.0.id());
    ticks_on(&mut streamed_lines, 20);
    // The filtered program died with its tracer.
    common::wait_for("the filtered program to die", || {
        !common::alive(filtered.pid)
    });
}

/// SIGKILL of the server while a debugger (a Session's sync engine) holds
/// a program at its breakpoint, as a gdb user sits at one: the program
/// runs on, from the breakpoint's instruction, correctly. (Our wait has
/// taken the SIGTRAP: the kernel runs the thread on from the registers it
/// has when its tracer dies. Were rip still one past the int3, it would
/// run from the middle of an instruction; were the int3 still in memory,
/// it would die of SIGTRAP before the keeper could act.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_server_spares_a_program_a_debugger_holds_at_a_breakpoint() {
    let mut d = Daemon::start("kill9-held-bp");
    let mut c = Client::connect(&d.uri).await.unwrap();
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    let mut s = c.session().await.unwrap();
    let a = s
        .attach(
            pid,
            pb::EngineSpec {
                sync: true,
                events: vec![pb::EventKind::Breakpoint as i32],
                deadline_ms: Some(600_000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Where it sleeps: the sleep returns there every tick.
    let (rip, orig) = insert_where_it_is(&mut c, a.engine_id, pid).await;
    let hit = loop {
        match tokio::time::timeout(common::TIMEOUT, s.next())
            .await
            .expect("a breakpoint hit")
            .expect("session open")
            .expect("session stream")
        {
            utrace_client::SessionEvent::Report(e)
                if matches!(e.kind, Some(pb::event::Kind::Breakpoint(_))) =>
            {
                break e;
            }
            _ => {}
        }
    };
    assert!(hit.held, "the debugger holds the program at its breakpoint");
    // What the kernel would run it on from if the tracer died now: the
    // breakpoint's address (its pc as /proc shows a stopped task's), with
    // the original byte there (no other thread runs: the site is disarmed).
    let kernel_pc = || {
        let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap();
        let pc = s.split_whitespace().nth(2).unwrap_or_default().to_string();
        u64::from_str_radix(pc.trim_start_matches("0x"), 16).unwrap_or(0)
    };
    assert_eq!(kernel_pc(), rip, "the kernel's pc is the breakpoint's");
    assert_eq!(raw_byte(pid, rip), orig, "the original byte is in memory");
    d.stop(libc::SIGKILL);
    ticks_on(&mut lines, 10);
    assert!(common::alive(pid), "the program runs on");
    untraced(pid);
    assert_eq!(raw_byte(pid, rip), orig, "no int3 of ours is left");
    drop(s);
}

/// SIGKILL of the server with a breakpoint in a tight loop, for a client
/// that needs no stops: a uprobe, which the kernel takes out with the
/// server's descriptors; the program runs on. (An int3 there would kill
/// it: the program is nearly always at the breakpoint when the server
/// dies. See the fault bench for the figures.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_server_spares_a_hot_loop_with_a_uprobe() {
    let mut d = Daemon::start("kill9-hot");
    let mut c = Client::connect(&d.uri).await.unwrap();
    let hot = common::KillOnDrop(
        Command::new(tracee!("probe_target"))
            .arg("hot")
            .spawn()
            .unwrap(),
    );
    let (addr, orig) = breakpoint_in(&mut c, hot.0.id(), Place::At("probed_fn"), false).await;
    let info = c.server_info().await.unwrap();
    assert_eq!(info.uprobe_events, 1, "a uprobe serves the breakpoint");
    d.stop(libc::SIGKILL);
    common::wait_for("the uprobe to go", || raw_byte(hot.0.id(), addr) == orig);
    std::thread::sleep(Duration::from_millis(200));
    assert!(common::alive(hot.0.id()), "the hot loop survived");
    untraced(hot.0.id());
}

/// SIGTERM: every breakpoint restored by the server itself, the held task
/// released, the stream ended, the filtered program ended; the others run
/// on, untraced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_the_server_leaves_programs_as_if_never_traced() {
    let mut d = Daemon::start("term");
    let mut c = Client::connect(&d.uri).await.unwrap();
    let (bp_prog, mut bp_lines) = ticker(20);
    let (addr, orig) = breakpoint_in(&mut c, bp_prog.0.id(), Place::WhereItIs, true).await;
    let (held_prog, mut held_lines) = ticker(20);
    let mut holder = held_by_a_client(&d.uri, held_prog.0.id());
    let filtered = spawn_filtered(&mut c).await;
    let log = d.stop(libc::SIGTERM);
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(raw_byte(bp_prog.0.id(), addr), orig);
    ticks_on(&mut bp_lines, 5);
    untraced(bp_prog.0.id());
    ticks_on(&mut held_lines, 5);
    untraced(held_prog.0.id());
    let end = holder.wait_event("end");
    assert!(
        end.ends_with("Unavailable"),
        "the session ends UNAVAILABLE: {end}"
    );
    common::wait_for("the filtered program to end", || {
        !common::alive(filtered.pid)
    });
}

/// A client killed mid-stream, mid-decision (its sync engine holding a
/// task) or mid-batch: its engines go with its connection, what it held
/// runs on, and another client of the same process carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_midway_harms_nobody() {
    let d = Daemon::start("client-kill");
    let mut other = Client::connect(&d.uri).await.unwrap();

    // Mid-decision: a held syscall entry that is never decided.
    let (held_prog, mut held_lines) = ticker(20);
    let holder = held_by_a_client(&d.uri, held_prog.0.id());
    let watch = other
        .attach(pb::AttachRequest {
            pid: held_prog.0.id(),
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Exit as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    drop(holder);
    ticks_on(&mut held_lines, 5);

    // Mid-stream.
    let (streamed, mut streamed_lines) = ticker(5);
    let mut streamer = AsClient::start(&[], &d.uri);
    let r = streamer.cmd(&format!("attach {}", streamed.0.id()));
    let e = AsClient::field(&r, "engine");
    assert_eq!(streamer.cmd(&format!("events {e}")), "ok");
    streamer.wait_event(&format!("event {e}"));
    drop(streamer);
    ticks_on(&mut streamed_lines, 20);
    untraced(streamed.0.id());

    // Mid-batch: a client in a loop of batches that stop the program.
    let (batched, mut batched_lines) = ticker(5);
    let mut batcher = AsClient::start(&[], &d.uri);
    let r = batcher.cmd(&format!("attach {}", batched.0.id()));
    let e = AsClient::field(&r, "engine");
    writeln!(
        batcher.stdin_for_test(),
        "batch-loop {e} {} 1000000",
        batched.0.id()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(batcher);
    ticks_on(&mut batched_lines, 20);
    untraced(batched.0.id());

    // The other client's engine on the held program works throughout.
    other
        .batch(watch.engine_id, 0)
        .interrupt(true)
        .regs(&["rip"])
        .send()
        .await
        .unwrap()
        .register(0, "rip")
        .unwrap();
    other.detach(watch.engine_id).await.unwrap();
    untraced(held_prog.0.id());
    ticks_on(&mut held_lines, 5);
}

/// SIGKILL of the server while a client's watchpoint is armed on a word
/// the program writes every 30 ms: the keeper clears the debug registers
/// of its threads, and the program runs to its end (armed, the next write
/// would kill it with SIGTRAP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_server_disarms_a_watchpoint() {
    let mut d = Daemon::start("kill9-watch");
    let mut c = Client::connect(&d.uri).await.unwrap();
    let mut child = std::process::Command::new(tracee!("watched"))
        .args(["100", "30"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start watched");
    let mut lines = common::Lines::from_reader(child.stdout.take().expect("piped"));
    let prog = common::KillOnDrop(child);
    let pid = prog.0.id();
    assert!(lines.next().starts_with("pid="));
    let addr = u64::from_str_radix(lines.next().trim_start_matches("addr=0x"), 16).unwrap();
    let mut stream = c
        .trace(pb::TraceRequest {
            target: Some(pb::trace_request::Target::Pid(pid)),
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Death as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let attached = tokio_stream::StreamExt::next(&mut stream)
        .await
        .expect("attached")
        .unwrap();
    c.batch(attached.engine_id, pid)
        .interrupt(true)
        .op(pb::op::Op::InsertWatchpoint(pb::InsertWatchpoint {
            addr,
            len: 8,
            kind: pb::WatchKind::Write as i32,
        }))
        .send()
        .await
        .unwrap()
        .done(0)
        .unwrap();
    // Armed: hits come, from the main thread and from new ones.
    let mut tids = std::collections::HashSet::new();
    while tids.len() < 2 {
        let e = tokio_stream::StreamExt::next(&mut stream)
            .await
            .expect("a report")
            .unwrap();
        if let Some(pb::event::Kind::Watchpoint(w)) = &e.kind {
            assert_eq!(w.addr, addr);
            tids.insert(e.tid == pid);
        }
    }
    d.stop(libc::SIGKILL);
    let mut prog = prog;
    let status = common::reap_traced_child(&mut prog.0).expect("exit status");
    assert!(status.success(), "{status:?}: {:?}", lines.rest());
    lines.rest();
    assert_eq!(lines.value("done").as_deref(), Some("1"));
    common::wait_for("the keeper's word", || {
        std::fs::read_to_string(d.dir.path("server.log"))
            .is_ok_and(|l| l.contains("cleared the debug registers"))
    });
}
