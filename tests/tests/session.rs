//! Synchronous remote engines over the Session call: held reports,
//! decisions, expedited data, arbitration between clients, deadlines, and
//! bad input. Each test starts its own server on a private socket.

mod common;

use common::{server, server_with, Waiting};

use std::time::{Duration, Instant};

use utrace_client::{pb, Client, Decision, Session, SessionError, SessionEvent};

fn kinds(k: &[pb::EventKind]) -> Vec<i32> {
    k.iter().map(|k| *k as i32).collect()
}

/// A sync engine on `openat` entries (and deaths), expediting the path
/// (rsi, as a string), rip/rsi, and the bytes of mxcsr and xmm0.
fn openat_probe() -> pb::EngineSpec {
    pb::EngineSpec {
        events: kinds(&[pb::EventKind::SyscallEntry, pb::EventKind::Death]),
        syscalls: vec!["openat".into()],
        sync: true,
        expedite: Some(pb::Expedite {
            registers: vec!["rip".into(), "rsi".into()],
            memory: vec![pb::MemRef {
                register: "rsi".into(),
                len: 4096,
                string: true,
                offset: 0,
            }],
            register_bytes: vec!["mxcsr".into(), "xmm0".into()],
        }),
        ..Default::default()
    }
}

/// The next message of `s` that is not a batch reply, within the test bound.
async fn next(s: &mut Session) -> SessionEvent {
    tokio::time::timeout(common::TIMEOUT, s.next())
        .await
        .expect("no session message within the test bound")
        .expect("session ended")
        .expect("session stream failed")
}

/// The next report of `s` (refusals fail the test).
async fn next_report(s: &mut Session) -> pb::Event {
    loop {
        match next(s).await {
            SessionEvent::Report(e) => return e,
            SessionEvent::Error { error, .. } => panic!("unexpected refusal: {error:?}"),
            SessionEvent::Ended(e) => panic!("engine ended while a report was expected: {e:?}"),
            _ => {}
        }
    }
}

/// The next refusal of `s`, skipping reports (which are resumed if held).
async fn next_error(s: &mut Session) -> (u64, pb::SessionError) {
    loop {
        match next(s).await {
            SessionEvent::Error { in_reply_to, error } => return (in_reply_to, error),
            SessionEvent::Report(e) if e.held => {
                s.decide(Decision::resume(&e)).await.unwrap();
            }
            _ => {}
        }
    }
}

/// Resume every held report until the process's death; its exit code.
async fn resume_to_death(s: &mut Session) -> i32 {
    loop {
        let r = next_report(s).await;
        if let Some(code) = death_code(&r) {
            return code;
        }
        if r.held {
            s.decide(Decision::resume(&r)).await.unwrap();
        }
    }
}

/// The next refusal of `s` has `code` and a message with every `needle`;
/// returns the id of the message it answers.
async fn expect_refusal(s: &mut Session, code: &str, needles: &[&str]) -> u64 {
    let (in_reply_to, err) = next_error(s).await;
    assert_eq!(err.code, code, "{}", err.message);
    for n in needles {
        assert!(err.message.contains(n), "{:?} not in {}", n, err.message);
    }
    in_reply_to
}

fn death_code(e: &pb::Event) -> Option<i32> {
    match &e.kind {
        Some(pb::event::Kind::Death(d)) if d.process_gone => d.status.map(|s| s.code),
        _ => None,
    }
}

fn path_of(e: &pb::Event) -> String {
    let x = e.expedited.as_ref().expect("expedited data");
    String::from_utf8_lossy(&x.memory[0]).into_owned()
}

/// A sync client gets every `openat` entry with its path expedited, resumes
/// each, and the program finishes normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_client_sees_every_openat_path() {
    let (_srv, mut c) = server().await;
    let mut s = c.session().await.unwrap();
    let a = s
        .spawn(pb::SpawnRequest {
            argv: vec![
                tracee!("syscall_loop").into(),
                "100".into(),
                "10".into(),
                "/etc/hostname".into(),
            ],
            engine: Some(openat_probe()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(a.pid > 0 && a.engine_id > 0);
    let mut paths = Vec::new();
    let mut last_seq = 0;
    let code = loop {
        let e = next_report(&mut s).await;
        assert_eq!(e.engine_id, a.engine_id);
        assert_eq!(e.seq, last_seq + 1, "reports in order, none lost");
        last_seq = e.seq;
        if let Some(code) = death_code(&e) {
            assert!(!e.held, "a death report never holds");
            break code;
        }
        let Some(pb::event::Kind::SyscallEntry(call)) = &e.kind else {
            continue;
        };
        assert_eq!(call.name, "openat");
        assert!(e.held, "a sync engine's openat entry holds the task");
        let x = e.expedited.as_ref().expect("expedited");
        assert_eq!(x.registers.get("rsi"), Some(&call.args[1]));
        assert!(x.registers.get("rip").is_some_and(|r| *r != 0));
        // Registers of any width, as bytes: mxcsr holds its reset value
        // (0x1f80: every exception masked) in a program that never set it.
        assert_eq!(x.register_bytes["mxcsr"][..], 0x1f80u32.to_le_bytes());
        assert_eq!(x.register_bytes["xmm0"].len(), 16);
        paths.push(path_of(&e));
        s.decide(Decision::resume(&e)).await.unwrap();
    };
    assert_eq!(code, 0);
    match next(&mut s).await {
        SessionEvent::Ended(e) => assert_eq!((e.engine_id, e.dropped), (a.engine_id, 0)),
        other => panic!("expected the engine's end, got {other:?}"),
    }
    assert_eq!(
        paths.iter().filter(|p| *p == "/etc/hostname").count(),
        10,
        "paths: {paths:?}"
    );
    // The dynamic loader's opens are there too, with their paths.
    assert!(paths.iter().all(|p| p.starts_with('/')), "{paths:?}");
}

/// Skipping `openat` with -ENOENT: the program sees the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_openat_fails_in_the_program() {
    let (_srv, mut c) = server().await;
    let mut t = Waiting::start(&[tracee!("syscall_loop"), "50", "5", "/etc/hostname"]);
    let mut s = c.session().await.unwrap();
    let a = s.attach(t.pid(), openat_probe()).await.unwrap();
    assert_eq!(a.pid, t.pid());
    t.go();
    let mut skipped = 0;
    loop {
        let e = next_report(&mut s).await;
        if death_code(&e).is_some() {
            break;
        }
        if e.held {
            assert_eq!(path_of(&e), "/etc/hostname");
            s.decide(Decision::skip_syscall(&e, -i64::from(libc::ENOENT)))
                .await
                .unwrap();
            skipped += 1;
        }
    }
    t.finish();
    assert_eq!(skipped, 10);
    assert_eq!(t.out.value("openat_ok").as_deref(), Some("0"));
    assert_eq!(t.out.value("openat_err").as_deref(), Some("10"));
    assert_eq!(
        t.out.value("last_errno"),
        Some(libc::ENOENT.to_string()),
        "the program saw ENOENT"
    );
}

/// Two sync clients and one async observer on one process: the task waits
/// for both decisions; a signal one suppresses is not delivered, whatever
/// the other decides; the observer sees every report, in order; ListTasks
/// names the client still holding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sync_clients_and_an_observer() {
    let (srv, mut c1) = server().await;
    let mut c2 = Client::connect(&srv.uri()).await.unwrap();
    let mut c3 = Client::connect(&srv.uri()).await.unwrap();
    let mut t = Waiting::start(&[tracee!("signals"), "10", "3"]);
    let pid = t.pid();
    let signals = || pb::EngineSpec {
        events: kinds(&[pb::EventKind::Signal, pb::EventKind::Death]),
        sync: true,
        ..Default::default()
    };
    let mut a = c1.session().await.unwrap();
    let mut b = c2.session().await.unwrap();
    let ea = a.attach(pid, signals()).await.unwrap().engine_id;
    let eb = b.attach(pid, signals()).await.unwrap().engine_id;
    let obs = c3
        .attach(pb::AttachRequest {
            pid,
            engine: Some(pb::EngineSpec {
                events: kinds(&[pb::EventKind::Signal, pb::EventKind::Death]),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut observed = c3.events(obs.engine_id).await.unwrap();
    t.go();
    for round in 0..3 {
        let ra = next_report(&mut a).await;
        let rb = next_report(&mut b).await;
        for r in [&ra, &rb] {
            assert!(r.held);
            assert!(
                matches!(&r.kind, Some(pb::event::Kind::Signal(s)) if s.signo == libc::SIGUSR1)
            );
        }
        // A suppresses at once; the task must still wait for B.
        a.decide(Decision::suppress_signal(&ra)).await.unwrap();
        let deadline = Instant::now() + common::TIMEOUT;
        loop {
            let tasks = c3.list_tasks(pid).await.unwrap();
            let task = &tasks[0];
            if task.holds == vec![eb] {
                assert_eq!(task.state, "stopped", "round {round}: held by B");
                let h = &task.holders[0];
                assert_eq!(h.engine_id, eb);
                assert_eq!(h.seq, rb.seq);
                assert!(h.sync);
                assert_eq!(h.client_pid, std::process::id());
                break;
            }
            assert!(Instant::now() < deadline, "A's decision never applied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c3.list_tasks(pid).await.unwrap()[0].state, "stopped");
        // B would deliver it (even as another signal): A's suppression stands.
        let mut d = Decision::resume(&rb);
        if round == 1 {
            d.signal = libc::SIGUSR2;
        }
        b.decide(d).await.unwrap();
    }
    let mut deaths = 0;
    for s in [&mut a, &mut b] {
        let e = next_report(s).await;
        assert_eq!(death_code(&e), Some(0));
        deaths += 1;
    }
    assert_eq!(deaths, 2);
    t.finish();
    assert_eq!(t.out.value("sent").as_deref(), Some("3"));
    assert_eq!(
        t.out.value("handled").as_deref(),
        Some("0"),
        "suppressed signals were delivered"
    );
    let mut seqs = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(
        common::TIMEOUT,
        tokio_stream::StreamExt::next(&mut observed),
    )
    .await
    {
        assert!(!e.held, "an async observer never holds");
        assert_eq!(e.dropped_before, 0);
        seqs.push((e.seq, e.kind.clone()));
        if death_code(&e).is_some() {
            break;
        }
    }
    assert_eq!(
        seqs.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(seqs[..3]
        .iter()
        .all(|(_, k)| matches!(k, Some(pb::event::Kind::Signal(s)) if s.signo == libc::SIGUSR1)));
    let _ = ea;
}

/// A client that stops reading: each held report's deadline applies the
/// default action and the program finishes; the next message says which
/// reports were defaulted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_releases_a_stalled_client() {
    let (_srv, mut c) = server().await;
    let mut s = c.session().await.unwrap();
    let a = s
        .spawn(pb::SpawnRequest {
            argv: vec![tracee!("syscall_loop").into(), "20".into(), "5".into()],
            engine: Some(pb::EngineSpec {
                deadline_ms: Some(20),
                ..openat_probe()
            }),
            // Not cargo's library path: fewer loader probes to time out.
            env: [("LD_LIBRARY_PATH".to_string(), String::new())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Read nothing: the program must still finish.
    let started = Instant::now();
    while common::alive(a.pid) {
        assert!(
            started.elapsed() < common::TIMEOUT,
            "held forever by a client that stopped reading"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Now read: every held report was defaulted, and the stream says so.
    let mut held = Vec::new();
    let mut defaulted = Vec::new();
    loop {
        let e = next_report(&mut s).await;
        defaulted.extend(e.defaulted.iter().copied());
        if e.held {
            held.push(e.seq);
        }
        if death_code(&e).is_some() {
            // The death report tells of the last ones.
            break;
        }
    }
    assert!(held.len() >= 4, "held: {held:?}");
    assert_eq!(defaulted, held, "every held report was defaulted, in order");
    // Deciding one of them now is refused, and says why.
    s.decide(Decision::resume(&pb::Event {
        seq: held[0],
        engine_id: a.engine_id,
        ..Default::default()
    }))
    .await
    .unwrap();
    expect_refusal(&mut s, "FAILED_PRECONDITION", &["deadline"]).await;
}

/// A client that disconnects while holding: its hold goes with it and the
/// program finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_releases_the_task() {
    let (srv, mut c) = server().await;
    let mut s = c.session().await.unwrap();
    let a = s
        .spawn(pb::SpawnRequest {
            argv: vec![tracee!("syscall_loop").into(), "20".into(), "5".into()],
            engine: Some(openat_probe()),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = next_report(&mut s).await;
    assert!(e.held);
    let mut other = Client::connect(&srv.uri()).await.unwrap();
    let tasks = other.list_tasks(a.pid).await.unwrap();
    assert_eq!(tasks[0].holds, vec![a.engine_id]);
    drop(s);
    drop(c);
    let started = Instant::now();
    while common::alive(a.pid) {
        assert!(
            started.elapsed() < common::TIMEOUT,
            "still held after its client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(other.list_tasks(a.pid).await.unwrap().is_empty());
}

/// HOLD keeps the task past the deadline; a later RESUME of the same report
/// lets it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_outlives_the_deadline() {
    let (_srv, mut c) = server().await;
    let mut s = c.session().await.unwrap();
    let a = s
        .spawn(pb::SpawnRequest {
            argv: vec![
                tracee!("syscall_loop").into(),
                "10".into(),
                "5".into(),
                "/etc/hostname".into(),
            ],
            engine: Some(pb::EngineSpec {
                deadline_ms: Some(50),
                hold_syscalls: vec!["openat".into()],
                ..openat_probe()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = next_report(&mut s).await;
    assert!(e.held);
    s.decide(Decision::hold(&e)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tasks = c.list_tasks(a.pid).await.unwrap();
    assert_eq!(tasks[0].state, "stopped");
    assert_eq!(tasks[0].holders[0].seq, e.seq);
    assert_eq!(tasks[0].holders[0].deadline_in_ms, 0);
    // A decision's batch runs at the stop, before the action.
    let mut d = Decision::resume(&e);
    d.batch = Some(pb::BatchRequest {
        ops: vec![pb::Op {
            op: Some(pb::op::Op::GetSyscall(pb::GetSyscall {})),
        }],
        ..Default::default()
    });
    let id = s.decide(d).await.unwrap();
    loop {
        match next(&mut s).await {
            SessionEvent::BatchReply { in_reply_to, reply } => {
                assert_eq!(in_reply_to, id);
                let Some(pb::op_result::Result::Syscall(sc)) = &reply.results[0].result else {
                    panic!("{reply:?}");
                };
                assert_eq!(sc.name, "openat");
                break;
            }
            SessionEvent::Report(r) if r.held => {
                s.decide(Decision::resume(&r)).await.unwrap();
            }
            other => assert!(matches!(other, SessionEvent::Report(_)), "{other:?}"),
        }
    }
    assert_eq!(resume_to_death(&mut s).await, 0);
}

/// Bad decisions and messages get a SessionError naming the problem; the
/// session and the tracee carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_refused_and_the_session_goes_on() {
    let (srv, mut c) = server().await;
    let mut s = c.session().await.unwrap();

    // A deadline of zero.
    let err = s
        .spawn(pb::SpawnRequest {
            argv: vec![tracee!("syscall_loop").into(), "1".into()],
            engine: Some(pb::EngineSpec {
                deadline_ms: Some(0),
                ..openat_probe()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let SessionError::Refused { code, message, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(message.contains("deadline_ms"), "{message}");

    let a = s
        .spawn(pb::SpawnRequest {
            argv: vec![
                tracee!("syscall_loop").into(),
                "20".into(),
                "5".into(),
                "/etc/hostname".into(),
            ],
            engine: Some(openat_probe()),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = next_report(&mut s).await;
    assert!(e.held);

    // An unknown seq.
    let id = s
        .decide(pb::Decision {
            seq: 999_999,
            ..Decision::resume(&e)
        })
        .await
        .unwrap();
    let r = expect_refusal(&mut s, "NOT_FOUND", &["999999"]).await;
    assert_eq!(r, id);

    // No action.
    s.decide(pb::Decision {
        action: 0,
        ..Decision::resume(&e)
    })
    .await
    .unwrap();
    expect_refusal(&mut s, "INVALID_ARGUMENT", &["decide.action"]).await;

    // A signal at a syscall report.
    s.decide(Decision::suppress_signal(&e)).await.unwrap();
    expect_refusal(&mut s, "INVALID_ARGUMENT", &["signal"]).await;

    // A malformed batch: over the op limit.
    let mut d = Decision::resume(&e);
    d.batch = Some(pb::BatchRequest {
        ops: vec![
            pb::Op {
                op: Some(pb::op::Op::GetEvents(pb::GetEvents {}))
            };
            70_000
        ],
        ..Default::default()
    });
    s.decide(d).await.unwrap();
    expect_refusal(&mut s, "INVALID_ARGUMENT", &["decide.batch", "limit"]).await;

    // Another client's engine.
    let mut c2 = Client::connect(&srv.uri()).await.unwrap();
    let mut s2 = c2.session().await.unwrap();
    s2.decide(Decision::resume(&e)).await.unwrap();
    expect_refusal(&mut s2, "PERMISSION_DENIED", &["another client"]).await;

    // The report is still held, and a good decision still works.
    let tasks = c.list_tasks(a.pid).await.unwrap();
    assert_eq!(tasks[0].holds, vec![a.engine_id]);
    s.decide(Decision::resume(&e)).await.unwrap();
    // Deciding it twice.
    s.decide(Decision::resume(&e)).await.unwrap();
    expect_refusal(&mut s, "FAILED_PRECONDITION", &["already"]).await;
    // The program finishes normally.
    assert_eq!(resume_to_death(&mut s).await, 0);
}

/// `sync` outside a Session is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_needs_a_session() {
    let (_srv, mut c) = server().await;
    let err = c
        .spawn(pb::SpawnRequest {
            argv: vec![tracee!("syscall_loop").into(), "1".into()],
            engine: Some(openat_probe()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("Session"), "{}", err.message());
}

/// Expedited data comes with asynchronous reports too (a Trace stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expedite_on_an_async_stream() {
    let (_srv, mut c) = server().await;
    let mut spec = openat_probe();
    spec.sync = false;
    let mut stream = c
        .trace(pb::TraceRequest {
            target: Some(pb::trace_request::Target::Spawn(pb::SpawnRequest {
                argv: vec![
                    tracee!("syscall_loop").into(),
                    "20".into(),
                    "5".into(),
                    "/etc/hostname".into(),
                ],
                ..Default::default()
            })),
            engine: Some(spec),
        })
        .await
        .unwrap();
    let mut paths = Vec::new();
    while let Ok(Some(Ok(e))) =
        tokio::time::timeout(common::TIMEOUT, tokio_stream::StreamExt::next(&mut stream)).await
    {
        assert!(!e.held);
        if matches!(e.kind, Some(pb::event::Kind::SyscallEntry(_))) {
            paths.push(path_of(&e));
        }
    }
    assert_eq!(paths.iter().filter(|p| *p == "/etc/hostname").count(), 4);
}

/// Bad engine specs and mask changes in a session are refused with the
/// field named; an observe-only client may not hold tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_refused() {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let (_srv, mut c) = server_with(|cfg| cfg.observe_only = vec![me]).await;
    let mut s = c.session().await.unwrap();
    let spawn = |spec: pb::EngineSpec| pb::SpawnRequest {
        argv: vec![tracee!("syscall_loop").into(), "1".into()],
        engine: Some(spec),
        ..Default::default()
    };
    let refused = |e: SessionError| match e {
        SessionError::Refused { code, message, .. } => (code, message),
        other => panic!("{other}"),
    };
    let (code, msg) = refused(s.spawn(spawn(openat_probe())).await.unwrap_err());
    assert_eq!(code, "PERMISSION_DENIED");
    assert!(msg.contains("observe"), "{msg}");
    let mut bad = openat_probe();
    bad.sync = false;
    bad.expedite = Some(pb::Expedite {
        registers: vec!["rip".into(), "nosuchreg".into()],
        memory: vec![],
        register_bytes: Default::default(),
    });
    let (code, msg) = refused(s.spawn(spawn(bad)).await.unwrap_err());
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(
        msg.contains("expedite.registers[1]") && msg.contains("nosuchreg"),
        "{msg}"
    );
    let mut bad = openat_probe();
    bad.sync = false;
    bad.expedite = Some(pb::Expedite {
        registers: vec![],
        memory: vec![pb::MemRef {
            register: "rsi".into(),
            len: 0,
            string: true,
            offset: 0,
        }],
        register_bytes: Default::default(),
    });
    let (code, msg) = refused(s.spawn(spawn(bad)).await.unwrap_err());
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(msg.contains("expedite.memory[0].len"), "{msg}");
    let mut bad = openat_probe();
    bad.sync = false;
    bad.expedite = Some(pb::Expedite {
        register_bytes: vec!["xmm0".into(), "ymm99".into()],
        ..Default::default()
    });
    let (code, msg) = refused(s.spawn(spawn(bad)).await.unwrap_err());
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(
        msg.contains("expedite.register_bytes[1]") && msg.contains("ymm99"),
        "{msg}"
    );
    let mut bad = openat_probe();
    bad.sync = false;
    bad.deadline_ms = Some(10);
    let (code, msg) = refused(s.spawn(spawn(bad)).await.unwrap_err());
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(msg.contains("deadline_ms") && msg.contains("sync"), "{msg}");
    // An async engine in the session works, and a bad mask change is refused.
    let mut ok = openat_probe();
    ok.sync = false;
    let a = s.spawn(spawn(ok)).await.unwrap();
    s.set_events(pb::SetEvents {
        syscalls: vec!["nosuchcall".into()],
        engine_id: a.engine_id,
        ..Default::default()
    })
    .await
    .unwrap();
    expect_refusal(&mut s, "INVALID_ARGUMENT", &["nosuchcall"]).await;
}

/// A syscall one sync client skips is what another client's later report
/// (the exit) shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skip_shows_in_the_other_clients_exit_report() {
    let (srv, mut c1) = server().await;
    let mut c2 = Client::connect(&srv.uri()).await.unwrap();
    let mut t = Waiting::start(&[tracee!("syscall_loop"), "10", "5", "/etc/hostname"]);
    let mut a = c1.session().await.unwrap();
    let mut b = c2.session().await.unwrap();
    a.attach(t.pid(), openat_probe()).await.unwrap();
    let both = pb::EngineSpec {
        events: kinds(&[
            pb::EventKind::SyscallEntry,
            pb::EventKind::SyscallExit,
            pb::EventKind::Death,
        ]),
        ..openat_probe()
    };
    b.attach(t.pid(), both).await.unwrap();
    t.go();
    let mut exits = Vec::new();
    for _ in 0..2 {
        let ra = next_report(&mut a).await;
        a.decide(Decision::skip_syscall(&ra, -i64::from(libc::EACCES)))
            .await
            .unwrap();
        let entry = next_report(&mut b).await;
        assert!(matches!(entry.kind, Some(pb::event::Kind::SyscallEntry(_))));
        b.decide(Decision::resume(&entry)).await.unwrap();
        let exit = next_report(&mut b).await;
        let Some(pb::event::Kind::SyscallExit(x)) = &exit.kind else {
            panic!("{exit:?}")
        };
        exits.push((x.ret, x.errno.clone()));
        b.decide(Decision::resume(&exit)).await.unwrap();
    }
    assert_eq!(
        exits,
        vec![(-i64::from(libc::EACCES), "EACCES".to_string()); 2]
    );
    for s in [&mut a, &mut b] {
        let ev = next_report(s).await;
        assert_eq!(death_code(&ev), Some(0), "{ev:?}");
    }
    t.finish();
    assert_eq!(t.out.value("openat_err").as_deref(), Some("2"));
    assert_eq!(t.out.value("last_errno"), Some(libc::EACCES.to_string()));
}

fn op(o: pb::op::Op) -> pb::Op {
    pb::Op { op: Some(o) }
}

fn watch(addr: u64, len: u32, kind: pb::WatchKind) -> pb::op::Op {
    pb::op::Op::InsertWatchpoint(pb::InsertWatchpoint {
        addr,
        len,
        kind: kind as i32,
    })
}

/// One op on `tid` (interrupted if it runs, then let go); its result.
async fn one_op(s: &mut Session, engine: u64, tid: u32, o: pb::op::Op) -> pb::OpResult {
    let reply = s
        .batch(pb::BatchRequest {
            engine_id: engine,
            tid,
            ops: vec![op(o)],
            interrupt: true,
            ..Default::default()
        })
        .await
        .expect("batch");
    reply.results.into_iter().next().expect("one result")
}

fn op_error(r: &pb::OpResult) -> Option<&pb::OpError> {
    match &r.result {
        Some(pb::op_result::Result::Error(e)) => Some(e),
        _ => None,
    }
}

/// Hardware watchpoints through the server: the debug-register slots are
/// the process's, shared by engines that watch the same bytes, never taken
/// from one that holds them (a fifth is refused, naming the holders), and
/// not writable as registers. A hit is reported to its owners only, after
/// the write (the new value is in memory), from threads made after the
/// insertion too. When every engine has left, the program runs on with
/// its debug registers cleared: writes to the watched word do not kill it
/// with a SIGTRAP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchpoints_are_shared_slots_and_fire_for_their_owners() {
    let (srv, mut c1) = server().await;
    let mut c2 = Client::connect(&srv.uri()).await.unwrap();
    let mut t = Waiting::start(&[tracee!("watched"), "8", "10"]);
    let pid = t.pid();
    assert!(t.out.next().starts_with("pid="));
    let addr_line = t.out.next();
    let addr = u64::from_str_radix(addr_line.trim_start_matches("addr=0x"), 16).unwrap();
    let spec = || pb::EngineSpec {
        events: kinds(&[pb::EventKind::Death]),
        sync: true,
        ..Default::default()
    };
    let mut a = c1.session().await.unwrap();
    let mut b = c2.session().await.unwrap();
    let ea = a.attach(pid, spec()).await.unwrap().engine_id;
    let eb = b.attach(pid, spec()).await.unwrap().engine_id;
    let counter = watch(addr, 8, pb::WatchKind::Write);
    let r = one_op(&mut a, ea, pid, counter.clone()).await;
    assert!(op_error(&r).is_none(), "{r:?}");
    // Three more slots for A (addresses need not be mapped: these are not,
    // so nothing fires them)…
    for i in 1..4u64 {
        let r = one_op(
            &mut a,
            ea,
            pid,
            watch(0x10000 * i, 4, pb::WatchKind::ReadWrite),
        )
        .await;
        assert!(op_error(&r).is_none(), "{r:?}");
    }
    // …so B's fifth distinct one is refused, naming who holds the four;
    // the same bytes as A's share A's slot.
    let r = one_op(&mut b, eb, pid, watch(addr + 8, 8, pb::WatchKind::Write)).await;
    let e = op_error(&r).expect("a fifth watchpoint is refused");
    assert_eq!(e.code, "RESOURCE_EXHAUSTED", "{}", e.message);
    assert!(e.message.contains(&format!("engine#{ea}")), "{}", e.message);
    let r = one_op(&mut b, eb, pid, counter.clone()).await;
    assert!(op_error(&r).is_none(), "{r:?}");
    // Bad ones, and the registers themselves.
    for (o, needle) in [
        (watch(addr + 4, 8, pb::WatchKind::Write), "aligned"),
        (watch(addr, 3, pb::WatchKind::Write), "1, 2, 4 or 8"),
        (watch(addr, 8, pb::WatchKind::Unspecified), "kind"),
        (watch(u64::MAX - 7, 8, pb::WatchKind::Write), "user space"),
        (
            pb::op::Op::SetRegisters(pb::SetRegisters {
                values: [("dr7".to_string(), 0u64)].into(),
            }),
            "watchpoint",
        ),
    ] {
        let r = one_op(&mut b, eb, pid, o).await;
        let e = op_error(&r).expect("refused");
        assert_eq!(e.code, "INVALID_ARGUMENT", "{}", e.message);
        assert!(e.message.contains(needle), "{needle:?}: {}", e.message);
    }
    t.go();
    let read_counter = |tid: u32, engine: u64| pb::BatchRequest {
        engine_id: engine,
        tid,
        ops: vec![op(pb::op::Op::ReadMemory(pb::ReadMemory { addr, len: 8 }))],
        ..Default::default()
    };
    for i in 1..=6u64 {
        let mut owners = vec![&mut a];
        if i <= 4 {
            owners.push(&mut b);
        }
        let mut tids = Vec::new();
        for s in owners.iter_mut() {
            // (Threads' deaths come between.)
            let r = loop {
                let r = next_report(s).await;
                if !matches!(&r.kind, Some(pb::event::Kind::Death(d)) if !d.process_gone) {
                    break r;
                }
            };
            assert!(r.held, "{r:?}");
            let Some(pb::event::Kind::Watchpoint(w)) = &r.kind else {
                panic!("write {i}: {r:?}");
            };
            assert_eq!((w.addr, w.len), (addr, 8));
            assert_eq!(w.kind, pb::WatchKind::Write as i32);
            tids.push(r.tid);
            // Stopped just after the write: the new value is there.
            let engine = r.engine_id;
            let got = s.batch(read_counter(r.tid, engine)).await.unwrap();
            let Some(pb::op_result::Result::Memory(m)) = &got.results[0].result else {
                panic!("{got:?}");
            };
            assert_eq!(m.data[..], i.to_le_bytes(), "write {i}");
            if i == 4 && engine == eb {
                // B gives its share up: A's hits go on, B hears no more.
                let mut d = Decision::resume(&r);
                d.batch = Some(pb::BatchRequest {
                    ops: vec![op(pb::op::Op::RemoveWatchpoint(pb::RemoveWatchpoint {
                        addr,
                        len: 8,
                        kind: pb::WatchKind::Write as i32,
                    }))],
                    ..Default::default()
                });
                let id = s.decide(d).await.unwrap();
                match next(s).await {
                    SessionEvent::BatchReply { in_reply_to, reply } => {
                        assert_eq!(in_reply_to, id);
                        assert!(op_error(&reply.results[0]).is_none(), "{reply:?}");
                    }
                    other => panic!("{other:?}"),
                }
            } else if i < 6 {
                s.decide(Decision::resume(&r)).await.unwrap();
            }
        }
        // Even writes come from a thread made after the insertion.
        assert!(
            tids.iter().all(|t| (*t == pid) == (i % 2 == 1)),
            "{i}: {tids:?}"
        );
    }
    // B heard nothing of writes 5 and 6.
    let deadline = Instant::now() + Duration::from_millis(200);
    while let Ok(e) = tokio::time::timeout_at(deadline.into(), next(&mut b)).await {
        assert!(
            matches!(&e, SessionEvent::Report(r) if !r.held),
            "B heard more than threads' deaths after removing its watchpoint: {e:?}"
        );
    }
    // Both leave, A with its watchpoint in and write 6 held: the process
    // is untraced and writes 7 and 8 with no SIGTRAP.
    b.close();
    a.close();
    let status = common::reap_traced_child(&mut t.child.0).expect("exit status");
    assert!(status.success(), "{status:?}");
    t.out.rest();
    assert_eq!(t.out.value("n").as_deref(), Some("8"));
    assert_eq!(t.out.value("done").as_deref(), Some("1"));
}

/// A followed child is held at its first instruction for a sync engine
/// that asks (EVENT_KIND_CHILD_START, after the parent's clone report),
/// and `Detach` with a pid takes the engine off that process alone: the
/// child runs on untraced while the engine stays on the parent (what gdb
/// needs to follow one side of a fork and let the other go).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_child_waits_at_its_start_and_can_be_left_alone() {
    use pb::EventKind as K;
    let (srv, mut c) = server().await;
    let mut s = c.session().await.unwrap();
    let a = s
        .spawn(pb::SpawnRequest {
            argv: vec![
                tracee!("fork_exec").into(),
                "/bin/sh".into(),
                "-c".into(),
                "exit 5".into(),
            ],
            engine: Some(pb::EngineSpec {
                events: kinds(&[K::Clone, K::ChildStart, K::Death]),
                hold: kinds(&[K::ChildStart]),
                follow_children: true,
                sync: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let clone = next_report(&mut s).await;
    let child = match &clone.kind {
        Some(pb::event::Kind::Clone(c)) => c.child_pid,
        other => panic!("expected the fork's clone report, got {other:?}"),
    };
    assert!(!clone.held, "clone reports do not hold unless asked");
    let start = next_report(&mut s).await;
    assert_eq!((start.pid, start.tid), (child, child));
    assert!(start.held);
    match &start.kind {
        Some(pb::event::Kind::ChildStart(cs)) => assert_eq!(cs.parent_pid, a.pid),
        other => panic!("expected the child's start, got {other:?}"),
    }
    // Held before it runs anything: still the parent's program, not sh.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let exe = std::fs::read_link(format!("/proc/{child}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().contains("fork_exec"),
        "the child ran: it is {exe:?}"
    );
    let mut other = Client::connect(&srv.uri()).await.unwrap();
    let holders = other.list_tasks(child).await.unwrap();
    assert_eq!(holders[0].holds, vec![a.engine_id]);

    // A process the engine does not trace: NOT_FOUND, and nothing changes.
    let err = c.leave_process(a.engine_id, 1).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{}", err.message());
    assert!(err.message().contains("process 1"), "{}", err.message());

    // Leave the child alone: it runs (untraced) and exits 5, which the
    // parent, still traced, reports as the child's status.
    c.leave_process(a.engine_id, child).await.unwrap();
    assert!(other.list_tasks(child).await.unwrap().is_empty());
    assert_eq!(resume_to_death(&mut s).await, 0);
    // Left twice: it is no longer the engine's.
    let ended = c.leave_process(a.engine_id, child).await.unwrap_err();
    assert_eq!(ended.code(), tonic::Code::NotFound, "{}", ended.message());
}
