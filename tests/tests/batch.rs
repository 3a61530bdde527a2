//! Batch through a real server: many ops in one round trip, each with its
//! own result, on a held or interrupted task.

mod common;

use common::{raw_byte, server, server_with};

use std::io::Write;
use std::process::{Child, Command, Stdio};

use tokio_stream::StreamExt;
use utrace_client::{pb, Client};

/// memory_pattern, started outside the server: (child, output, buffer
/// address, marker address).
fn pattern_target() -> (Child, common::Lines, u64, u64) {
    let mut child = Command::new(tracee!("memory_pattern"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = common::Lines::from_reader(child.stdout.take().unwrap());
    let addr = u64::from_str_radix(out.next().trim_start_matches("addr=0x"), 16).unwrap();
    assert_eq!(out.next(), "len=1048576");
    let marker = u64::from_str_radix(out.next().trim_start_matches("marker_addr=0x"), 16).unwrap();
    (child, out, addr, marker)
}

fn op(o: pb::op::Op) -> pb::Op {
    pb::Op { op: Some(o) }
}

fn read(addr: u64, len: u32) -> pb::Op {
    op(pb::op::Op::ReadMemory(pb::ReadMemory { addr, len }))
}

fn batch(engine_id: u64, ops: Vec<pb::Op>) -> pb::BatchRequest {
    pb::BatchRequest {
        engine_id,
        tid: 0,
        ops,
        stop_on_error: false,
        interrupt: true,
    }
}

/// Detach `engine`, let the waiting target go on (a line on its stdin)
/// and wait for its exit.
async fn detach_and_finish(
    c: &mut Client,
    engine: u64,
    mut child: Child,
) -> std::process::ExitStatus {
    c.detach(engine).await.unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap()
}

fn memory(r: &pb::OpResult) -> &pb::Memory {
    match &r.result {
        Some(pb::op_result::Result::Memory(m)) => m,
        other => panic!("expected memory, got {other:?}"),
    }
}

/// 1,000 scattered reads in one batch all match; a write is seen by the tracee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scattered_reads_match_and_write_is_seen() {
    let (_srv, mut c) = server().await;
    let (child, mut out, addr, marker) = pattern_target();
    let pid = child.id();
    let at = c
        .attach(pb::AttachRequest { pid, engine: None })
        .await
        .unwrap();
    let offsets: Vec<u64> = (0..1000u64)
        .map(|i| 4096 + (i * 1031) % ((1 << 20) - 4096 - 8))
        .collect();
    let reply = c
        .raw()
        .batch(batch(
            at.engine_id,
            offsets.iter().map(|o| read(addr + o, 8)).collect(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.results.len(), 1000);
    for (o, r) in offsets.iter().zip(&reply.results) {
        let m = memory(r);
        assert_eq!(m.addr, addr + o);
        assert!(m.error.is_empty());
        let want: Vec<u8> = (0..8).map(|k| ((o + k) * 7 + 3) as u8).collect();
        assert_eq!(m.data, want, "offset {o}");
    }
    let reply = c
        .raw()
        .batch(batch(
            at.engine_id,
            vec![
                op(pb::op::Op::WriteMemory(pb::WriteMemory {
                    addr,
                    data: b"batched write!!!".to_vec().into(),
                })),
                op(pb::op::Op::WriteMemory(pb::WriteMemory {
                    addr: marker,
                    data: 0x4242u64.to_ne_bytes().to_vec().into(),
                })),
                read(addr, 16),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        reply.results[0].result,
        Some(pb::op_result::Result::Done(_))
    ));
    assert_eq!(memory(&reply.results[2]).data, &b"batched write!!!"[..]);
    let st = detach_and_finish(&mut c, at.engine_id, child).await;
    assert_eq!(st.code(), Some(0x42));
    out.rest();
    assert_eq!(out.value("pattern_ok").as_deref(), Some("1"));
    assert_eq!(out.value("marker").as_deref(), Some("0x4242"));
}

/// One bad address among good ones fails alone; stop_on_error skips the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_address_fails_alone_and_stop_on_error_skips() {
    let (_srv, mut c) = server().await;
    let (mut child, _out, addr, _) = pattern_target();
    let at = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: None,
        })
        .await
        .unwrap();
    let ops = vec![
        read(addr, 8),
        read(0x10, 8),
        read(addr + 8, 8),
        op(pb::op::Op::GetRegisters(pb::GetRegisters {
            names: vec!["rip".into(), "nosuchreg".into()],
        })),
    ];
    let r = c
        .raw()
        .batch(batch(at.engine_id, ops.clone()))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(memory(&r[0]).data.len(), 8);
    assert!(memory(&r[1]).data.is_empty());
    assert!(
        memory(&r[1]).error.contains("EFAULT") || memory(&r[1]).error.contains("EIO"),
        "{:?}",
        memory(&r[1]).error
    );
    assert_eq!(memory(&r[2]).data.len(), 8, "a bad address fails alone");
    match &r[3].result {
        Some(pb::op_result::Result::Error(e)) => {
            assert_eq!(e.code, "INVALID_ARGUMENT");
            assert!(e.message.contains("nosuchreg"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    let mut req = batch(at.engine_id, ops);
    req.stop_on_error = true;
    let r = c.raw().batch(req).await.unwrap().into_inner().results;
    assert_eq!(memory(&r[0]).data.len(), 8);
    assert!(!memory(&r[1]).error.is_empty());
    assert!(matches!(
        r[2].result,
        Some(pb::op_result::Result::Skipped(_))
    ));
    assert!(matches!(
        r[3].result,
        Some(pb::op_result::Result::Skipped(_))
    ));
    c.detach(at.engine_id).await.unwrap();
    let _ = child.kill();
    tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap();
}

/// A batch of only reads (answered from one scatter read's buffer) gives
/// exactly what the same reads give in a batch with another op (answered
/// op by op): scattered, overlapping and empty ranges, one unmapped, one
/// cut short at the end of the stack, one over a breakpoint (its int3
/// hidden); with and without stop_on_error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_only_batch_answers_as_a_mixed_batch_does() {
    let (_srv, mut c) = server().await;
    let (child, mut out, addr, _) = pattern_target();
    let pid = child.id();
    let at = c
        .attach(pb::AttachRequest { pid, engine: None })
        .await
        .unwrap();
    let bp = addr + 8192 + 5;
    let ins = c
        .raw()
        .batch(batch(
            at.engine_id,
            vec![op(pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint {
                addr: bp,
                ..Default::default()
            }))],
        ))
        .await
        .unwrap()
        .into_inner();
    done(&ins.results[0]);
    let end = common::stack_end(pid);
    let mut ranges: Vec<(u64, u32)> = (0..600u64)
        .map(|i| (addr + 4096 + (i * 2311) % 60_000, (i % 33) as u32))
        .collect();
    ranges[10] = (bp - 3, 8);
    ranges[40] = (ranges[41].0 + 2, 8); // overlaps the next one
    ranges[50] = ranges[51]; // the same range twice
    ranges[20] = (addr + 100, 0);
    ranges[300] = (end - 4, 16);
    ranges[450] = (0x10, 8);
    for stop_on_error in [false, true] {
        let reads: Vec<pb::Op> = ranges.iter().map(|&(a, l)| read(a, l)).collect();
        let mut fast = batch(at.engine_id, reads.clone());
        fast.stop_on_error = stop_on_error;
        let mut mixed = batch(at.engine_id, reads);
        mixed.ops.push(op(pb::op::Op::GetEvents(pb::GetEvents {})));
        mixed.stop_on_error = stop_on_error;
        let f = c.raw().batch(fast).await.unwrap().into_inner().results;
        let m = c.raw().batch(mixed).await.unwrap().into_inner().results;
        assert_eq!(f.len(), ranges.len());
        assert_eq!(f[..], m[..ranges.len()], "stop_on_error {stop_on_error}");
        let hidden = memory(&f[10]);
        assert_eq!(hidden.data.len(), 8);
        assert_eq!(
            hidden.data[3],
            (((bp - addr) * 7 + 3) & 0xff) as u8,
            "int3 shown"
        );
        let short = memory(&f[300]);
        assert_eq!(short.data.len(), 4, "cut at the stack's end");
        assert!(!short.error.is_empty());
        if stop_on_error {
            assert!(matches!(
                f[301].result,
                Some(pb::op_result::Result::Skipped(_))
            ));
        } else {
            assert!(!memory(&f[450]).error.is_empty());
            assert_eq!(memory(&f[451]).data.len(), ranges[451].1 as usize);
        }
    }
    let st = detach_and_finish(&mut c, at.engine_id, child).await;
    assert!(st.success(), "{st:?}");
    out.rest();
    assert_eq!(out.value("pattern_ok").as_deref(), Some("1"));
}

/// update_register_bits sets eflags.TF: the next resume is a single step,
/// reported as a step event; clearing TF lets the program run on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_flag_makes_next_resume_a_step() {
    let (_srv, mut c) = server().await;
    // A program busy in user space, so the step lands on a plain instruction.
    let mut guard = common::KillOnDrop(
        Command::new("/bin/sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let at = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Step as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut events = c.events(at.engine_id).await.unwrap();
    const TF: u64 = 1 << 8;
    let r = c
        .raw()
        .batch(batch(
            at.engine_id,
            vec![
                op(pb::op::Op::GetRegisters(pb::GetRegisters {
                    names: vec!["rip".into()],
                })),
                op(pb::op::Op::UpdateRegisterBits(pb::UpdateRegisterBits {
                    name: "eflags".into(),
                    set: TF,
                    clear: 0,
                })),
            ],
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    let old_flags = match &r[1].result {
        Some(pb::op_result::Result::Registers(v)) => v.values["eflags"],
        other => panic!("{other:?}"),
    };
    assert_eq!(old_flags & TF, 0);
    let ev = tokio::time::timeout(common::TIMEOUT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev.kind {
        Some(pb::event::Kind::Step(s)) => assert_ne!(s.rip, 0),
        other => panic!("expected a step, got {other:?}"),
    }
    // Clear TF: steps stop, the program runs on.
    c.raw()
        .batch(batch(
            at.engine_id,
            vec![op(pb::op::Op::UpdateRegisterBits(pb::UpdateRegisterBits {
                name: "eflags".into(),
                set: 0,
                clear: TF,
            }))],
        ))
        .await
        .unwrap();
    c.detach(at.engine_id).await.unwrap();
    assert!(common::alive(child.id()), "still running after the steps");
    // `guard` kills it, also when an assertion above fails.
}

/// Batches from two clients on one task race without mixing results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_batches_do_not_mix() {
    let (srv, mut a) = server().await;
    let mut b = Client::connect(&srv.uri()).await.unwrap();
    let (mut child, _out, addr, _) = pattern_target();
    let pid = child.id();
    let ea = a
        .attach(pb::AttachRequest { pid, engine: None })
        .await
        .unwrap()
        .engine_id;
    let eb = b
        .attach(pb::AttachRequest { pid, engine: None })
        .await
        .unwrap()
        .engine_id;
    let run = |mut c: Client, engine: u64, base: u64| async move {
        for round in 0..50u64 {
            let offs: Vec<u64> = (0..20).map(|i| base + round * 97 + i * 8).collect();
            let r = c
                .raw()
                .batch(batch(
                    engine,
                    offs.iter().map(|o| read(addr + o, 8)).collect(),
                ))
                .await
                .unwrap()
                .into_inner()
                .results;
            for (o, r) in offs.iter().zip(&r) {
                let want: Vec<u8> = (0..8).map(|k| ((o + k) * 7 + 3) as u8).collect();
                assert_eq!(memory(r).data, want);
            }
        }
    };
    tokio::join!(run(a.clone(), ea, 4096), run(b.clone(), eb, 600_000));
    a.detach(ea).await.unwrap();
    b.detach(eb).await.unwrap();
    let _ = child.kill();
    tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap();
}

/// A batch on a task that dies: a clean error, no hang, the server fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_on_dying_task_errors_cleanly() {
    let (_srv, mut c) = server().await;
    for _ in 0..5 {
        let (mut child, _out, addr, _) = pattern_target();
        let at = c
            .attach(pb::AttachRequest {
                pid: child.id(),
                engine: None,
            })
            .await
            .unwrap();
        let _ = child.kill();
        let r = c
            .raw()
            .batch(batch(at.engine_id, vec![read(addr, 8); 100]))
            .await;
        match r {
            Ok(reply) => assert_eq!(reply.into_inner().results.len(), 100),
            Err(e) => assert!(
                matches!(
                    e.code(),
                    tonic::Code::NotFound | tonic::Code::FailedPrecondition
                ),
                "{e:?}"
            ),
        }
        tokio::task::spawn_blocking(move || common::reap_traced_child(&mut child))
            .await
            .unwrap();
    }
    assert!(c.server_info().await.is_ok());
}

/// Oversized batches are refused whole, naming the limit; the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batches_refused_with_the_limit_named() {
    let (_srv, mut c) = server().await;
    let (mut child, _out, addr, _) = pattern_target();
    let at = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: None,
        })
        .await
        .unwrap();
    let many = vec![op(pb::op::Op::GetEvents(pb::GetEvents {})); 65_537];
    let e = c.raw().batch(batch(at.engine_id, many)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("65536"), "{}", e.message());
    let e = c
        .raw()
        .batch(batch(at.engine_id, vec![read(addr, (64 << 20) + 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("--max-op-bytes"), "{}", e.message());
    // Not the owner's engine / no engine.
    let e = c
        .raw()
        .batch(batch(999_999, vec![read(addr, 8)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // Still serving, and the task is intact.
    let r = c
        .raw()
        .batch(batch(at.engine_id, vec![read(addr, 8)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(memory(&r.results[0]).data.len(), 8);
    c.detach(at.engine_id).await.unwrap();
    let _ = child.kill();
    tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap();
}

/// An observe-only client may read but not write or control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_only_client_may_read_not_write() {
    common::init_logging();
    // The test runs as root: make uid 0 observe-only on this server.
    let (_srv, mut c) = server_with(|c| c.observe_only = vec![0]).await;
    let (mut child, _out, addr, _) = pattern_target();
    let at = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: None,
        })
        .await
        .unwrap();
    let r = c
        .raw()
        .batch(batch(
            at.engine_id,
            vec![
                read(addr + 4096, 8),
                op(pb::op::Op::WriteMemory(pb::WriteMemory {
                    addr,
                    data: vec![0; 8].into(),
                })),
                op(pb::op::Op::SetRegisters(pb::SetRegisters {
                    values: [("rax".to_string(), 1u64)].into(),
                })),
                op(pb::op::Op::SendSignal(pb::SendSignal { signo: 9 })),
            ],
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(memory(&r[0]).data.len(), 8);
    for denied in &r[1..] {
        match &denied.result {
            Some(pb::op_result::Result::Error(e)) => assert_eq!(e.code, "PERMISSION_DENIED"),
            other => panic!("{other:?}"),
        }
    }
    c.detach(at.engine_id).await.unwrap();
    let _ = child.kill();
    tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap();
}

/// Without interrupt, a batch on a running task is refused, not queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_without_interrupt_on_running_task_is_refused() {
    let (_srv, mut c) = server().await;
    let (mut child, _out, addr, _) = pattern_target();
    let at = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: None,
        })
        .await
        .unwrap();
    // Let the attach interrupt settle: the task is running (blocked in read).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut req = batch(at.engine_id, vec![read(addr, 8)]);
    req.interrupt = false;
    let e = c.raw().batch(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("running"), "{}", e.message());
    c.detach(at.engine_id).await.unwrap();
    let _ = child.kill();
    tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap();
}

fn done(r: &pb::OpResult) {
    assert!(
        matches!(r.result, Some(pb::op_result::Result::Done(_))),
        "{r:?}"
    );
}

/// Wait for a breakpoint event at `addr` on `s`, reported after `after_ns`
/// (CLOCK_REALTIME nanoseconds; 0: any).
async fn next_breakpoint(s: &mut tonic::Streaming<pb::Event>, addr: u64, after_ns: u64) {
    let found = tokio::time::timeout(common::TIMEOUT, async {
        while let Some(ev) = s.next().await {
            let ev = ev.unwrap();
            if let Some(pb::event::Kind::Breakpoint(b)) = ev.kind {
                assert_eq!(b.addr, addr);
                if ev.time_ns > after_ns {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no breakpoint event at {addr:#x}");
}

/// Two engines insert the same breakpoint; one removes it and the other still
/// stops there; an engine that inserted none never sees it; after both go,
/// the original byte is back; the program runs on throughout (stepping over
/// the breakpoint works).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_breakpoint_refcounted_and_restored() {
    let (srv, mut a) = server().await;
    let mut b = Client::connect(&srv.uri()).await.unwrap();
    let mut c = Client::connect(&srv.uri()).await.unwrap();
    // A program calling one function as fast as it can: a breakpoint at
    // its start is hit again and again. (Where a busy shell loop happened
    // to be when sampled was not always on the loop's way: an address
    // passed once, and the test waited in vain for a hit.)
    let guard = common::KillOnDrop(
        Command::new(tracee!("probe_target"))
            .arg("hot")
            .spawn()
            .unwrap(),
    );
    let pid = guard.0.id();
    let bp_spec = || pb::EngineSpec {
        events: vec![pb::EventKind::Breakpoint as i32],
        queue_len: 16,
        ..Default::default()
    };
    let ea = a
        .attach(pb::AttachRequest {
            pid,
            engine: Some(bp_spec()),
        })
        .await
        .unwrap()
        .engine_id;
    let eb = b
        .attach(pb::AttachRequest {
            pid,
            engine: Some(bp_spec()),
        })
        .await
        .unwrap()
        .engine_id;
    let ec = c
        .attach(pb::AttachRequest {
            pid,
            engine: Some(bp_spec()),
        })
        .await
        .unwrap()
        .engine_id;
    let mut sa = a.events(ea).await.unwrap();
    let mut sb = b.events(eb).await.unwrap();
    let mut sc = c.events(ec).await.unwrap();

    // A inserts the breakpoint by name; its address is B's too.
    let site = common::insert_breakpoint_at(&mut a, ea, "probed_fn").await;
    // `probed_fn` starts with `push %rbp`: reads show that byte, not the
    // int3.
    let orig = 0x55;
    let r = a
        .raw()
        .batch(batch(ea, vec![read(site, 1)]))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(
        memory(&r[0]).data,
        vec![orig],
        "reads show the original byte"
    );
    let insert = |e| {
        batch(
            e,
            vec![
                op(pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint {
                    addr: site,
                    ..Default::default()
                })),
                read(site, 1),
            ],
        )
    };
    let r = b
        .raw()
        .batch(insert(eb))
        .await
        .unwrap()
        .into_inner()
        .results;
    done(&r[0]);

    next_breakpoint(&mut sa, site, 0).await;
    next_breakpoint(&mut sb, site, 0).await;

    // A removes its breakpoint: B's stays, and B keeps stopping there.
    let r = a
        .raw()
        .batch(batch(
            ea,
            vec![op(pb::op::Op::RemoveBreakpoint(pb::RemoveBreakpoint {
                addr: site,
            }))],
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    done(&r[0]);
    // (Memory itself is not checked here: while the loop runs, each hit's
    // step-over has the original byte in place for one instruction.)
    // A hit reported after the removal: B still stops there.
    let removed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    next_breakpoint(&mut sb, site, removed_at).await;
    // Removing twice is an error for that op only.
    let r = a
        .raw()
        .batch(batch(
            ea,
            vec![op(pb::op::Op::RemoveBreakpoint(pb::RemoveBreakpoint {
                addr: site,
            }))],
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    match &r[0].result {
        Some(pb::op_result::Result::Error(e)) => assert_eq!(e.code, "NOT_FOUND"),
        other => panic!("{other:?}"),
    }

    // B goes (detach): the original byte is back, the program runs on.
    b.detach(eb).await.unwrap();
    assert_eq!(raw_byte(pid, site), orig, "original byte restored");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        common::alive(pid),
        "the program was not killed by a stray int3"
    );
    // C inserted nothing and saw no breakpoint.
    a.detach(ea).await.unwrap();
    c.detach(ec).await.unwrap();
    let seen_by_c = tokio::time::timeout(std::time::Duration::from_millis(200), async {
        let mut n = 0;
        while let Some(Ok(ev)) = sc.next().await {
            if matches!(ev.kind, Some(pb::event::Kind::Breakpoint(_))) {
                n += 1;
            }
        }
        n
    })
    .await
    .unwrap_or(0);
    assert_eq!(
        seen_by_c, 0,
        "breakpoints are hidden from engines that did not insert them"
    );
}

/// big_pattern with `mib` MiB, started outside the server: (child, output,
/// buffer address, length).
fn big_target(mib: usize) -> (Child, common::Lines, u64, u64) {
    let mut child = Command::new(tracee!("big_pattern"))
        .arg(mib.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = common::Lines::from_reader(child.stdout.take().unwrap());
    let addr = u64::from_str_radix(out.next().trim_start_matches("addr=0x"), 16).unwrap();
    let len: u64 = out.next().trim_start_matches("len=").parse().unwrap();
    (child, out, addr, len)
}

fn stream_req(engine_id: u64, addr: u64, len: u64, chunk_len: u32) -> pb::ReadMemoryStreamRequest {
    pb::ReadMemoryStreamRequest {
        engine_id,
        tid: 0,
        addr,
        len,
        chunk_len,
        interrupt: false,
    }
}

/// Every chunk of a streamed read, in order (the stream's error, if any).
async fn stream_chunks(
    c: &mut Client,
    req: pb::ReadMemoryStreamRequest,
) -> Result<Vec<pb::MemoryChunk>, tonic::Status> {
    let mut s = c.read_memory_stream(req).await?;
    let mut chunks = Vec::new();
    while let Some(chunk) = s.message().await? {
        chunks.push(chunk);
    }
    Ok(chunks)
}

/// Check that `chunks` are `len` bytes from `addr` of big_pattern's buffer
/// at `base`, back to back, each `chunk` bytes but the last.
fn check_big_chunks(chunks: &[pb::MemoryChunk], base: u64, addr: u64, len: u64, chunk: u64) {
    assert_eq!(chunks.len() as u64, len.div_ceil(chunk), "chunk count");
    let mut at = addr;
    for (k, c) in chunks.iter().enumerate() {
        assert_eq!(c.addr, at, "chunk {k} address");
        assert!(c.error.is_empty(), "chunk {k}: {}", c.error);
        let want = chunk.min(addr + len - at);
        assert_eq!(c.data.len() as u64, want, "chunk {k} length");
        if let Some(i) = c
            .data
            .iter()
            .enumerate()
            .position(|(i, &b)| b != ((at - base + i as u64) % 251) as u8)
        {
            panic!("chunk {k}: wrong byte at {:#x}", at + i as u64);
        }
        at += want;
    }
    assert_eq!(at, addr + len);
}

/// ReadMemoryStream moves 64 MiB of a held task in chunks (default 64 KiB,
/// or an odd size, from an odd address), every byte right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stream_reads_64_mib() {
    let (_srv, mut c) = server().await;
    let (child, _out, addr, len) = big_target(64);
    assert_eq!(len, 64 << 20);
    let at = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: None,
        })
        .await
        .unwrap();
    let hold = op(pb::op::Op::Control(pb::Control {
        action: pb::Action::Hold as i32,
        signal: None,
    }));
    let r = c
        .raw()
        .batch(batch(at.engine_id, vec![hold]))
        .await
        .unwrap();
    done(&r.into_inner().results[0]);

    let chunks = stream_chunks(&mut c, stream_req(at.engine_id, addr, len, 0))
        .await
        .unwrap();
    check_big_chunks(&chunks, addr, addr, len, 64 << 10);
    drop(chunks);
    let odd = (3 << 20) + 7;
    let chunks = stream_chunks(
        &mut c,
        stream_req(at.engine_id, addr + 5, len - 5 - 11, odd),
    )
    .await
    .unwrap();
    check_big_chunks(&chunks, addr, addr + 5, len - 5 - 11, odd.into());
    drop(chunks);

    let st = detach_and_finish(&mut c, at.engine_id, child).await;
    assert!(st.success(), "{st:?}");
}

/// ReadMemoryStream: bad fields are INVALID_ARGUMENT naming the field; a
/// task neither held nor interrupted is FAILED_PRECONDITION; unreadable
/// memory ends the stream with a chunk that says why (keeping what came
/// back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stream_refuses_bad_fields_and_stops_at_unmapped_memory() {
    let (_srv, mut c) = server().await;
    let (child, _out, addr, _) = pattern_target();
    let pid = child.id();
    let at = c
        .attach(pb::AttachRequest { pid, engine: None })
        .await
        .unwrap();
    let e = at.engine_id;
    for (req, field) in [
        (stream_req(e, addr, 0, 0), "len: "),
        (stream_req(e, u64::MAX - 10, 100, 0), "len: "),
        (stream_req(e, addr, 16, u32::MAX), "chunk_len: "),
    ] {
        let err = stream_chunks(&mut c, req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().starts_with(field), "{err:?}");
    }
    assert!(stream_chunks(&mut c, stream_req(e + 1000, addr, 16, 0))
        .await
        .is_err());
    // Not held, no interrupt: refused (the task runs, blocked in read).
    let err = stream_chunks(&mut c, stream_req(e, addr, 16, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    let interrupted = |addr, len, chunk_len| pb::ReadMemoryStreamRequest {
        interrupt: true,
        ..stream_req(e, addr, len, chunk_len)
    };
    let chunks = stream_chunks(&mut c, interrupted(addr, 4096 * 3, 4096))
        .await
        .unwrap();
    assert_eq!(chunks.len(), 3);
    assert!(chunks
        .iter()
        .all(|c| c.error.is_empty() && c.data.len() == 4096));
    assert_eq!(chunks[2].data[0], ((8192 * 7 + 3) % 256) as u8);
    // Nothing mapped at 0x10: one chunk, empty, with the error.
    let chunks = stream_chunks(&mut c, interrupted(0x10, 1 << 20, 0))
        .await
        .unwrap();
    assert_eq!(chunks.len(), 1);
    assert!(chunks[0].data.is_empty());
    assert!(chunks[0].error.contains("EFAULT"), "{:?}", chunks[0].error);
    // The stack's top: its last 8 bytes come back, then the error; no more
    // chunks after it.
    let end = common::stack_end(pid);
    let chunks = stream_chunks(&mut c, interrupted(end - 4096 - 8, 3 * 4096, 4096))
        .await
        .unwrap();
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert!(chunks[0].error.is_empty() && chunks[0].data.len() == 4096);
    assert_eq!(chunks[1].addr, end - 8);
    assert_eq!(chunks[1].data.len(), 8);
    assert!(!chunks[1].error.is_empty());

    let st = detach_and_finish(&mut c, e, child).await;
    assert!(st.success(), "{st:?}");
}

/// A batch's `set_events` changes what the engine's stream reports, and
/// only when it runs: skipped under `stop_on_error`, the client's kinds stay
/// as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_events_op_applies_only_when_it_runs() {
    const N: usize = 30;
    let (_srv, mut c) = server().await;
    let entries_and_death = vec![
        pb::EventKind::SyscallEntry as i32,
        pb::EventKind::Death as i32,
    ];
    let set_death_only = op(pb::op::Op::SetEvents(pb::SetEvents {
        events: vec![pb::EventKind::Death as i32],
        syscalls: vec!["getppid".into()],
        engine_id: 0,
        pass_signals: Vec::new(),
    }));
    let get_events = op(pb::op::Op::GetEvents(pb::GetEvents {}));
    let resume = op(pb::op::Op::Control(pb::Control {
        action: pb::Action::Resume as i32,
        signal: None,
    }));
    for skipped in [true, false] {
        let sp = c
            .spawn(pb::SpawnRequest {
                argv: vec![tracee!("syscall_loop").into(), N.to_string()],
                stop_at_entry: true,
                engine: Some(pb::EngineSpec {
                    events: entries_and_death.clone(),
                    syscalls: vec!["getppid".into()],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let stream = c.events(sp.engine_id).await.unwrap();
        let mut ops = vec![set_death_only.clone(), get_events.clone()];
        if skipped {
            // A read of unmapped memory fails first: the rest is skipped.
            ops.insert(0, read(8, 8));
        }
        let reply = c
            .raw()
            .batch(pb::BatchRequest {
                stop_on_error: true,
                interrupt: false,
                ..batch(sp.engine_id, ops)
            })
            .await
            .unwrap()
            .into_inner();
        if skipped {
            assert!(!memory(&reply.results[0]).error.is_empty());
            for r in &reply.results[1..] {
                assert!(
                    matches!(r.result, Some(pb::op_result::Result::Skipped(_))),
                    "{r:?}"
                );
            }
        } else {
            done(&reply.results[0]);
            match &reply.results[1].result {
                Some(pb::op_result::Result::Events(e)) => {
                    assert_eq!(e.events, vec![pb::EventKind::Death as i32], "{e:?}")
                }
                other => panic!("get_events: {other:?}"),
            }
        }
        let reply = c
            .raw()
            .batch(pb::BatchRequest {
                interrupt: false,
                ..batch(sp.engine_id, vec![get_events.clone(), resume.clone()])
            })
            .await
            .unwrap()
            .into_inner();
        match &reply.results[0].result {
            Some(pb::op_result::Result::Events(e)) if skipped => {
                assert_eq!(e.events, entries_and_death, "{e:?}")
            }
            Some(pb::op_result::Result::Events(e)) => {
                assert_eq!(e.events, vec![pb::EventKind::Death as i32], "{e:?}")
            }
            other => panic!("get_events: {other:?}"),
        }
        done(&reply.results[1]);
        let evs: Vec<pb::Event> = tokio::time::timeout(common::TIMEOUT, async {
            stream.map(|e| e.unwrap()).collect::<Vec<_>>().await
        })
        .await
        .expect("the stream ends with the program");
        let entries = evs
            .iter()
            .filter(|e| matches!(e.kind, Some(pb::event::Kind::SyscallEntry(_))))
            .count();
        assert_eq!(entries, if skipped { N } else { 0 }, "skipped: {skipped}");
        assert!(evs.iter().any(|e| matches!(
            &e.kind,
            Some(pb::event::Kind::Death(d)) if d.process_gone
        )));
    }
}

/// `set_events`'s `pass_signals`: the signals named reach the program
/// with no report (20 SIGUSR1 handled, none reported, where without the
/// set all 20 are); a signal number outside 1-64 is refused by index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_events_passes_signals_unreported() {
    const N: usize = 20;
    let (_srv, mut c) = server().await;
    let kinds = vec![pb::EventKind::Signal as i32, pb::EventKind::Death as i32];
    let set = |pass: Vec<i32>| {
        op(pb::op::Op::SetEvents(pb::SetEvents {
            events: kinds.clone(),
            pass_signals: pass,
            ..Default::default()
        }))
    };
    let resume = op(pb::op::Op::Control(pb::Control {
        action: pb::Action::Resume as i32,
        signal: None,
    }));
    for (pass, reported) in [(vec![], N), (vec![libc::SIGUSR1], 0)] {
        let sp = c
            .spawn(pb::SpawnRequest {
                argv: vec![
                    tracee!("signals").into(),
                    libc::SIGUSR1.to_string(),
                    N.to_string(),
                ],
                stop_at_entry: true,
                engine: Some(pb::EngineSpec {
                    events: kinds.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let stream = c.events(sp.engine_id).await.unwrap();
        // Refused by index, before anything runs; then the set given.
        let reply = c
            .raw()
            .batch(batch(sp.engine_id, vec![set(vec![10, 0]), set(vec![65])]))
            .await
            .unwrap()
            .into_inner();
        for (r, want) in reply
            .results
            .iter()
            .zip(["pass_signals[1]: 0", "pass_signals[0]: 65"])
        {
            let e = op_error(r);
            assert_eq!(e.code, "INVALID_ARGUMENT", "{e:?}");
            assert!(e.message.contains(want), "{e:?}");
        }
        let reply = c
            .raw()
            .batch(batch(sp.engine_id, vec![set(pass.clone()), resume.clone()]))
            .await
            .unwrap()
            .into_inner();
        done(&reply.results[0]);
        let evs: Vec<pb::Event> = tokio::time::timeout(common::TIMEOUT, async {
            stream.map(|e| e.unwrap()).collect::<Vec<_>>().await
        })
        .await
        .expect("the stream ends with the program");
        let usr1 = evs
            .iter()
            .filter(
                |e| matches!(&e.kind, Some(pb::event::Kind::Signal(s)) if s.signo == libc::SIGUSR1),
            )
            .count();
        assert_eq!(usr1, reported, "passing {pass:?}");
        // It handled them all and exited as it does untraced.
        assert!(
            evs.iter().any(|e| matches!(
                &e.kind,
                Some(pb::event::Kind::Death(d)) if d.process_gone
                    && d.status.as_ref().is_some_and(|s| s.code == 0 && s.signal == 0)
            )),
            "{evs:?}"
        );
    }
}

fn reg_bytes(r: &pb::OpResult) -> &std::collections::HashMap<String, utrace_client::Bytes> {
    match &r.result {
        Some(pb::op_result::Result::RegisterBytes(v)) => &v.values,
        other => panic!("expected register bytes, got {other:?}"),
    }
}

fn op_error(r: &pb::OpResult) -> &pb::OpError {
    match &r.result {
        Some(pb::op_result::Result::Error(e)) => e,
        other => panic!("expected an op error, got {other:?}"),
    }
}

/// Registers wider than 8 bytes (SSE, x87) by bytes: read at their widths,
/// written (the old values answered), and read back from the kernel in a
/// later batch; a wrong width or name is INVALID_ARGUMENT naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_registers_read_written_and_read_back() {
    let (_srv, mut c) = server().await;
    let (child, _out, _addr, _) = pattern_target();
    let at = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: None,
        })
        .await
        .unwrap();
    let get = |names: &[&str]| {
        op(pb::op::Op::GetRegisterBytes(pb::GetRegisterBytes {
            names: names.iter().map(|s| s.to_string()).collect(),
        }))
    };
    let set = |name: &str, v: Vec<u8>| {
        op(pb::op::Op::SetRegisterBytes(pb::SetRegisterBytes {
            values: [(name.to_string(), v.into())].into(),
        }))
    };
    let pattern: Vec<u8> = (0x10..0x20).collect();
    let r = c
        .raw()
        .batch(batch(
            at.engine_id,
            vec![
                get(&["xmm2", "st0", "fcw", "rip"]),
                set("xmm2", pattern.clone()),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    let before = reg_bytes(&r.results[0]);
    let widths: Vec<(&str, usize)> = ["xmm2", "st0", "fcw", "rip"]
        .iter()
        .map(|n| (*n, before[*n].len()))
        .collect();
    assert_eq!(widths, [("xmm2", 16), ("st0", 10), ("fcw", 2), ("rip", 8)]);
    // The x87 control word of a fresh Linux process.
    assert_eq!(&before["fcw"][..], &0x037fu16.to_le_bytes());
    // The write answers the old value.
    assert_eq!(reg_bytes(&r.results[1])["xmm2"], before["xmm2"]);
    // A later batch reads it back from the kernel.
    let r = c
        .raw()
        .batch(batch(
            at.engine_id,
            vec![
                get(&["xmm2"]),
                set("xmm2", vec![0; 15]),
                get(&["nope"]),
                set("xmm2", before["xmm2"].to_vec()),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&reg_bytes(&r.results[0])["xmm2"][..], &pattern[..]);
    let e = op_error(&r.results[1]);
    assert_eq!(e.code, "INVALID_ARGUMENT");
    assert!(
        e.message.contains("xmm2") && e.message.contains("16"),
        "{}",
        e.message
    );
    let e = op_error(&r.results[2]);
    assert_eq!(e.code, "INVALID_ARGUMENT");
    assert!(e.message.contains("nope"), "{}", e.message);
    reg_bytes(&r.results[3]);
    let status = detach_and_finish(&mut c, at.engine_id, child).await;
    assert!(status.success(), "{status:?}");
}

/// `send_signal` queues a signal for the thread (a control op): a
/// tracer watching signals sees it delivered; a signal number out of
/// range is refused naming the field, the rest of the batch done.
/// (SIGWINCH: ignored by default, so the program runs on.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_signal_reaches_the_thread() {
    let (_srv, mut c) = server().await;
    let child = Command::new(tracee!("signals"))
        .args(["10", "0"])
        .env("UTRACE_TRACEE_WAIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut events = c
        .raw()
        .trace(pb::TraceRequest {
            target: Some(pb::trace_request::Target::Pid(pid)),
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Signal as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let engine = match events.next().await {
        Some(Ok(pb::Event {
            kind: Some(pb::event::Kind::Attached(a)),
            ..
        })) => a.engine_id,
        other => panic!("no attached event: {other:?}"),
    };
    let send = |signo| op(pb::op::Op::SendSignal(pb::SendSignal { signo }));
    let r = c
        .raw()
        .batch(batch(engine, vec![send(0), send(65), send(28)]))
        .await
        .unwrap()
        .into_inner()
        .results;
    for (bad, i) in [(&r[0], 0), (&r[1], 1)] {
        match &bad.result {
            Some(pb::op_result::Result::Error(e)) => {
                assert_eq!(e.code, "INVALID_ARGUMENT");
                assert!(
                    e.message.contains(&format!("ops[{i}].send_signal.signo")),
                    "{e:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    done(&r[2]);
    let delivered = tokio::time::timeout(common::TIMEOUT, async {
        while let Some(Ok(ev)) = events.next().await {
            if let Some(pb::event::Kind::Signal(s)) = ev.kind {
                return Some(s);
            }
        }
        None
    })
    .await
    .expect("a signal report in time")
    .expect("the stream goes on");
    assert_eq!((delivered.signo, delivered.name.as_str()), (28, "SIGWINCH"));
    let status = detach_and_finish(&mut c, engine, child).await;
    assert!(status.success(), "the program runs on");
}
