//! End-to-end tests through a real utraced on a private Unix socket: each
//! test starts its own server (its own tracer thread and socket).

mod common;

use common::server;

use std::time::Duration;

use tokio_stream::StreamExt;
use utrace_client::{pb, Client};

/// A server on a private socket, and a client connected to it.
fn spawn_req(argv: &[&str]) -> pb::SpawnRequest {
    pb::SpawnRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn spec(syscalls: &[&str], events: &[pb::EventKind]) -> pb::EngineSpec {
    pb::EngineSpec {
        syscalls: syscalls.iter().map(|s| s.to_string()).collect(),
        events: events.iter().map(|e| *e as i32).collect(),
        ..Default::default()
    }
}

/// Collect a stream's events until it ends, bounded.
async fn collect(mut s: tonic::Streaming<pb::Event>) -> Vec<pb::Event> {
    let mut out = Vec::new();
    let r = tokio::time::timeout(common::TIMEOUT, async {
        while let Some(ev) = s.next().await {
            out.push(ev.expect("stream error"));
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "stream did not end within {:?}; got {} events",
        common::TIMEOUT,
        out.len()
    );
    out
}

fn entries<'a>(
    evs: &'a [pb::Event],
    name: &'a str,
) -> impl Iterator<Item = &'a pb::SyscallEntry> + 'a {
    evs.iter().filter_map(move |e| match &e.kind {
        Some(pb::event::Kind::SyscallEntry(s)) if s.name == name => Some(s),
        _ => None,
    })
}

fn death(evs: &[pb::Event]) -> Option<&pb::Death> {
    evs.iter().find_map(|e| match &e.kind {
        Some(pb::event::Kind::Death(d)) if d.process_gone => Some(d),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_streams_until_death() {
    let (_srv, mut c) = server().await;
    let s = c
        .trace(pb::TraceRequest {
            target: Some(pb::trace_request::Target::Spawn(spawn_req(&[
                tracee!("syscall_loop"),
                "100",
                "10",
            ]))),
            engine: Some(spec(&["openat", "getppid"], &[])),
        })
        .await
        .unwrap();
    let evs = collect(s).await;
    assert!(matches!(evs[0].kind, Some(pb::event::Kind::Attached(_))));
    assert_eq!(entries(&evs, "getppid").count(), 100);
    assert!(entries(&evs, "openat").count() >= 10);
    assert!(entries(&evs, "write").count() == 0, "syscall filter");
    let d = death(&evs).expect("death reported");
    assert_eq!(d.status.unwrap().code, 0);
    // Sequence numbers have no gaps: nothing was dropped.
    for w in evs[1..].windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        assert_eq!(w[1].dropped_before, 0);
    }
    let _ = Duration::from_secs(0);
}

fn kinds(evs: &[pb::Event]) -> Vec<&'static str> {
    evs.iter()
        .map(|e| match &e.kind {
            Some(pb::event::Kind::SyscallEntry(_)) => "entry",
            Some(pb::event::Kind::SyscallExit(_)) => "exit",
            Some(pb::event::Kind::Death(_)) => "death",
            Some(pb::event::Kind::Clone(_)) => "clone",
            Some(pb::event::Kind::Exec(_)) => "exec",
            Some(pb::event::Kind::Signal(_)) => "signal",
            Some(pb::event::Kind::Exit(_)) => "exit_event",
            Some(pb::event::Kind::Attached(_)) => "attached",
            _ => "other",
        })
        .collect()
}

/// Spawn, then Events: nothing is lost between the two calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_then_events() {
    let (_srv, mut c) = server().await;
    let r = c
        .spawn(pb::SpawnRequest {
            engine: Some(spec(
                &["getppid"],
                &[pb::EventKind::SyscallEntry, pb::EventKind::Death],
            )),
            ..spawn_req(&[tracee!("syscall_loop"), "300"])
        })
        .await
        .unwrap();
    assert!(r.pid > 0 && r.engine_id > 0);
    // Let the program run to its end before we even ask for the stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let evs = collect(c.events(r.engine_id).await.unwrap()).await;
    assert_eq!(entries(&evs, "getppid").count(), 300);
    assert!(evs
        .iter()
        .all(|e| e.engine_id == r.engine_id && e.pid == r.pid));
    assert_eq!(death(&evs).unwrap().status.unwrap().code, 0);
}

/// Attach to a running program, read its events, detach: it finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_running_program() {
    let (_srv, mut c) = server().await;
    let mut child = std::process::Command::new(tracee!("ticker"))
        .args(["20", "20"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = common::Lines::from_reader(child.stdout.take().unwrap());
    out.next();
    let pid = child.id();
    let r = c
        .attach(pb::AttachRequest {
            pid,
            engine: Some(spec(&[], &[pb::EventKind::SyscallEntry])),
        })
        .await
        .unwrap();
    assert_eq!(r.tids, vec![pid]);
    let mut s = c.events(r.engine_id).await.unwrap();
    let first = tokio::time::timeout(common::TIMEOUT, s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first.kind, Some(pb::event::Kind::SyscallEntry(_))));
    let tasks = c.list_tasks(pid).await.unwrap();
    assert_eq!(tasks[0].engines, vec![r.engine_id]);
    assert_eq!(tasks[0].syscall_mode, "ptrace");
    c.detach(r.engine_id).await.unwrap();
    let st = tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap();
    assert!(st.success());
    assert_eq!(common::proc_status(pid as i32, "TracerPid"), None);
    out.rest();
    assert_eq!(out.value("done").as_deref(), Some("1"));
}

/// Two clients on one process, each with its own mask: each sees exactly its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_each_see_their_own() {
    let (srv, mut a) = server().await;
    let mut b = Client::connect(&srv.uri()).await.unwrap();
    let r = a
        .spawn(pb::SpawnRequest {
            stop_at_entry: true,
            engine: Some(spec(
                &["openat"],
                &[pb::EventKind::SyscallEntry, pb::EventKind::Death],
            )),
            ..spawn_req(&[tracee!("syscall_loop"), "200", "20"])
        })
        .await
        .unwrap();
    let rb = b
        .attach(pb::AttachRequest {
            pid: r.pid,
            engine: Some(spec(
                &["getppid"],
                &[pb::EventKind::SyscallExit, pb::EventKind::Death],
            )),
        })
        .await
        .unwrap();
    let sa = a.events(r.engine_id).await.unwrap();
    let sb = b.events(rb.engine_id).await.unwrap();
    // Release the spawn hold: detaching would end the program's tracing, so
    // resume by attaching… the held-at-entry task runs when its engine lets
    // go; a client resumes it by detaching that engine's hold. Here: detach
    // nothing, just let A's stream read and B's stream read.
    let tasks = a.list_tasks(r.pid).await.unwrap();
    assert_eq!(tasks[0].holds, vec![r.engine_id]);
    assert_eq!(tasks[0].engines, vec![r.engine_id, rb.engine_id]);
    // Without Batch (issue 4) a held-at-entry task is released by detaching
    // the engine that holds it; use a third engine-less run instead:
    a.detach(r.engine_id).await.unwrap();
    let (ea, eb) = tokio::join!(collect(sa), collect(sb));
    // A detached before the program ran: it saw nothing of the run.
    assert!(kinds(&ea).iter().all(|k| *k != "exit"));
    // B saw exactly its own: getppid exits only.
    let names: std::collections::BTreeSet<_> = eb
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::event::Kind::SyscallExit(x)) => Some(x.name.clone()),
            Some(pb::event::Kind::SyscallEntry(_)) => Some("ENTRY?".into()),
            _ => None,
        })
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["getppid".to_string()]
    );
    assert_eq!(
        eb.iter()
            .filter(|e| matches!(&e.kind, Some(pb::event::Kind::SyscallExit(_))))
            .count(),
        200
    );
}

/// Two clients watching one run with different masks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_different_masks_same_run() {
    let (srv, mut a) = server().await;
    let mut b = Client::connect(&srv.uri()).await.unwrap();
    // A started program held at entry by a third, owner engine would need
    // Batch to release; instead attach both to a program waiting on stdin.
    let mut child = std::process::Command::new(tracee!("tracer_pid"))
        .arg("1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = common::Lines::from_reader(child.stdout.take().unwrap());
    out.next();
    let pid = child.id();
    let ra = a
        .attach(pb::AttachRequest {
            pid,
            engine: Some(spec(
                &["openat"],
                &[pb::EventKind::SyscallEntry, pb::EventKind::Death],
            )),
        })
        .await
        .unwrap();
    let rb = b
        .attach(pb::AttachRequest {
            pid,
            engine: Some(spec(
                &["write", "read"],
                &[pb::EventKind::SyscallEntry, pb::EventKind::Death],
            )),
        })
        .await
        .unwrap();
    let (sa, sb) = (
        a.events(ra.engine_id).await.unwrap(),
        b.events(rb.engine_id).await.unwrap(),
    );
    {
        use std::io::Write;
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    }
    let (ea, eb) = tokio::join!(collect(sa), collect(sb));
    let names = |evs: &[pb::Event]| -> std::collections::BTreeSet<String> {
        evs.iter()
            .filter_map(|e| match &e.kind {
                Some(pb::event::Kind::SyscallEntry(x)) => Some(x.name.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(names(&ea), ["openat".to_string()].into_iter().collect());
    assert!(names(&eb).is_subset(
        &["write".to_string(), "read".to_string()]
            .into_iter()
            .collect()
    ));
    assert!(names(&eb).contains("write"));
    assert!(death(&ea).is_some() && death(&eb).is_some());
    // Traced to its death in this process: its status is in the death report.
    tokio::task::spawn_blocking(move || common::reap_traced_child(&mut child))
        .await
        .unwrap();
    assert_eq!(death(&ea).unwrap().status.unwrap().code, 0);
    out.rest();
    // It was traced when it looked.
    assert_ne!(out.value("tracer_pid").as_deref(), Some("0"));
}

/// A client that never reads its stream: the tracee is not slowed, that
/// client's drops are counted (the process's death is not dropped), and a
/// second client gets every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_drops_are_counted_fast_client_gets_all() {
    let (srv, mut fast) = server().await;
    let mut slow = Client::connect(&srv.uri()).await.unwrap();
    // A shell that waits for a line, then runs 100,000 getppid: far more
    // reports than the slow client's queue and transport window hold.
    let mut child = waiting_loop(100_000);
    let pid = child.id();
    let mk = |queue_len| pb::EngineSpec {
        queue_len,
        ..spec(
            &["getppid"],
            &[pb::EventKind::SyscallEntry, pb::EventKind::Death],
        )
    };
    let rs = slow
        .attach(pb::AttachRequest {
            pid,
            engine: Some(mk(4)),
        })
        .await
        .unwrap();
    let rf = fast
        .attach(pb::AttachRequest {
            pid,
            engine: Some(mk(0)),
        })
        .await
        .unwrap();
    let slow_stream = slow.events(rs.engine_id).await.unwrap();
    let fast_stream = fast.events(rf.engine_id).await.unwrap();
    go(&mut child);
    // The fast client reads everything; the program finishes while the slow
    // client has read nothing at all.
    let ef = collect(fast_stream).await;
    tokio::task::spawn_blocking(move || common::reap_traced_child(&mut child))
        .await
        .unwrap();
    assert_eq!(death(&ef).unwrap().status.unwrap().code, 0);
    let fast_entries = ef
        .iter()
        .filter(|e| matches!(e.kind, Some(pb::event::Kind::SyscallEntry(_))))
        .count();
    assert_eq!(fast_entries, 100_000, "the fast client got every report");
    assert!(
        ef.iter().all(|e| e.dropped_before == 0),
        "the fast client lost nothing"
    );
    // Now the slow client reads: what its queue (and the transport's
    // flow-control window) held, and the rest counted as dropped.
    let es = collect(slow_stream).await;
    let received = es.iter().filter(|e| e.kind.is_some()).count();
    let dropped: u64 = es.iter().map(|e| e.dropped_before).sum();
    assert!(dropped > 0, "the slow client must have lost reports");
    assert!(received < ef.len());
    assert_eq!(
        received as u64 + dropped,
        ef.len() as u64,
        "every report is either received or counted"
    );
    // The process's end is never dropped: past the full queue, it ends the
    // stream, with the count of the reports lost just before it.
    let last = es.last().unwrap();
    assert!(
        matches!(&last.kind, Some(pb::event::Kind::Death(d)) if d.process_gone),
        "{last:?}"
    );
    assert!(last.dropped_before > 0, "{last:?}");
}

/// A shell waiting for a line on stdin, then exec'ing `syscall_loop n`,
/// once it sits in `read`.
/// Wait, bounded, until `c` sees no engine on `pid` (failing with `why`).
async fn until_untraced(c: &mut Client, pid: u32, why: &str) {
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    while !c.list_tasks(pid).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn waiting_loop(n: u32) -> std::process::Child {
    let child = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            &format!("read x; exec {} {n}", tracee!("syscall_loop")),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_reading_stdin(child.id());
    child
}

fn go(child: &mut std::process::Child) {
    use std::io::Write;
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
}

/// A report that comes to an idle async stream goes out at once, however
/// long the server's batching window (`Limits::report_window`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stream_sends_a_report_at_once() {
    let (_srv, mut c) = common::server_with(|cfg| {
        cfg.limits.report_window = Duration::from_secs(60);
    })
    .await;
    let mut child = waiting_loop(1);
    let a = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: Some(spec(&["getppid"], &[pb::EventKind::SyscallEntry])),
        })
        .await
        .unwrap();
    let mut events = c.events(a.engine_id).await.unwrap();
    let t0 = std::time::Instant::now();
    go(&mut child);
    let first = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("the first report must not wait for the 60 s window")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first.kind, Some(pb::event::Kind::SyscallEntry(e)) if e.name == "getppid"),
        "{first:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    c.detach(a.engine_id).await.unwrap();
    // The in-process tracer may reap it first: no status to check here.
    tokio::task::spawn_blocking(move || common::reap_traced_child(&mut child))
        .await
        .unwrap();
}

/// Busy async streams batch reports (two clients read one engine's reports
/// at once), but a queue filling up cuts the window short: with a 2 s
/// window and 20,000 reports in a few hundred milliseconds, waiting out the
/// window would lose all but the queue's 4,096; each stream must deliver
/// (nearly) all of them, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_streams_batch_without_losing_reports() {
    const N: u32 = 20_000;
    let (_srv, mut c) = common::server_with(|cfg| {
        cfg.limits.report_window = Duration::from_secs(2);
    })
    .await;
    let mut child = waiting_loop(N);
    let a = c
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: Some(pb::EngineSpec {
                queue_len: 4096,
                ..spec(
                    &["getppid"],
                    &[pb::EventKind::SyscallEntry, pb::EventKind::Death],
                )
            }),
        })
        .await
        .unwrap();
    let first = c.events(a.engine_id).await.unwrap();
    // The engine's owner may subscribe again: a second stream.
    let second = c.events(a.engine_id).await.unwrap();
    go(&mut child);
    let (e1, e2) = tokio::join!(collect(first), collect(second));
    // The in-process tracer may reap it first: no status to check here.
    tokio::task::spawn_blocking(move || common::reap_traced_child(&mut child))
        .await
        .unwrap();
    for evs in [e1, e2] {
        let got = entries(&evs, "getppid").count() as u64;
        let dropped: u64 = evs.iter().map(|e| e.dropped_before).sum();
        assert_eq!(got + dropped, N as u64, "every report received or counted");
        assert!(
            dropped < 10_000,
            "{dropped} of {N} reports lost: the full queue did not cut the window short"
        );
        assert!(
            evs.windows(2)
                .all(|w| w[0].seq < w[1].seq || w[1].kind.is_none()),
            "reports in order"
        );
        assert_eq!(death(&evs).unwrap().status.unwrap().code, 0);
    }
}

/// Engines reporting the same stops share each stop's report (built and
/// encoded once): every observer still gets its own engine id and seq, the
/// entry and the exit of one call stay two reports, and an engine that
/// decodes gets its own text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_of_one_stop_share_its_report() {
    const N: usize = 50;
    let (srv, mut a) = server().await;
    let mut b = Client::connect(&srv.uri()).await.unwrap();
    let mut c = Client::connect(&srv.uri()).await.unwrap();
    let mut child = waiting_loop(N as u32);
    let plain = spec(
        &["getppid"],
        &[
            pb::EventKind::SyscallEntry,
            pb::EventKind::SyscallExit,
            pb::EventKind::Death,
        ],
    );
    let mut ids = Vec::new();
    let mut streams = Vec::new();
    for (client, decode) in [(&mut a, false), (&mut b, false), (&mut c, true)] {
        let r = client
            .attach(pb::AttachRequest {
                pid: child.id(),
                engine: Some(pb::EngineSpec {
                    decode,
                    ..plain.clone()
                }),
            })
            .await
            .unwrap();
        ids.push(r.engine_id);
        streams.push(client.events(r.engine_id).await.unwrap());
    }
    go(&mut child);
    let mut got = Vec::new();
    for s in streams {
        got.push(collect(s).await);
    }
    tokio::task::spawn_blocking(move || common::reap_traced_child(&mut child))
        .await
        .unwrap();
    let calls = |evs: &[pb::Event]| {
        evs.iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    Some(pb::event::Kind::SyscallEntry(_) | pb::event::Kind::SyscallExit(_))
                )
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    let (ea, eb, ec) = (calls(&got[0]), calls(&got[1]), calls(&got[2]));
    assert_eq!(ea.len(), 2 * N, "{:?}", kinds(&got[0]));
    assert_eq!(eb.len(), 2 * N);
    assert_eq!(ec.len(), 2 * N);
    for (k, ((x, y), z)) in ea.iter().zip(&eb).zip(&ec).enumerate() {
        assert_eq!(x.engine_id, ids[0]);
        assert_eq!(y.engine_id, ids[1]);
        assert_eq!(z.engine_id, ids[2]);
        // The same stop: the same process, thread, time and call.
        assert_eq!((x.pid, x.tid, x.time_ns), (y.pid, y.tid, y.time_ns));
        assert_eq!(x.kind, y.kind, "report {k}");
        assert_eq!((x.pid, x.tid), (z.pid, z.tid));
        // Entries and exits alternate.
        let entry = k % 2 == 0;
        match (&x.kind, &z.kind) {
            (Some(pb::event::Kind::SyscallEntry(p)), Some(pb::event::Kind::SyscallEntry(d)))
                if entry =>
            {
                assert_eq!((p.nr, &p.name, &p.args), (d.nr, &d.name, &d.args));
                assert!(p.text.is_empty());
                assert!(d.text.starts_with("getppid("), "{d:?}");
            }
            (Some(pb::event::Kind::SyscallExit(p)), Some(pb::event::Kind::SyscallExit(d)))
                if !entry =>
            {
                assert_eq!((p.nr, p.ret), (d.nr, d.ret));
                assert!(p.ret_text.is_empty());
                assert!(!d.ret_text.is_empty(), "{d:?}");
            }
            other => panic!("report {k}: {other:?}"),
        }
    }
    // Each engine numbers its own reports from 1, with no gap.
    for evs in &got {
        let seqs: Vec<u64> = evs
            .iter()
            .filter(|e| e.kind.is_some())
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
}

/// A client that disconnects loses its engine; the tracee runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_detaches_engine() {
    let (srv, mut watcher) = server().await;
    let mut child = std::process::Command::new(tracee!("ticker"))
        .args(["30", "20"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = common::Lines::from_reader(child.stdout.take().unwrap());
    out.next();
    let pid = child.id();
    {
        let mut gone = Client::connect(&srv.uri()).await.unwrap();
        let r = gone
            .attach(pb::AttachRequest { pid, engine: None })
            .await
            .unwrap();
        let tasks = watcher.list_tasks(pid).await.unwrap();
        assert_eq!(tasks[0].engines, vec![r.engine_id]);
    } // dropped: the connection closes
    until_untraced(&mut watcher, pid, "engine not detached after disconnect").await;
    let st = tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap();
    assert!(st.success());
    out.rest();
    assert_eq!(out.value("done").as_deref(), Some("1"));
}

/// Authorization: an unprivileged client cannot attach to root's process or
/// touch another client's engine, and what it spawns runs as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_client_is_confined() {
    use common::users::AsClient;
    let (srv, mut root) = server().await;
    // Let uid 65534 reach the socket (the embedded server's is private).
    common::users::open_socket(&srv.uri());
    let uri = srv.uri();
    // The client, as uid 65534, in a process of its own (driven blocking).
    let nobody = ["--uid", "65534", "--gid", "65534"].map(String::from);
    let mut c = tokio::task::block_in_place(|| AsClient::start(&nobody, &uri));
    let mut cmd = |line: String| tokio::task::block_in_place(|| c.cmd(&line));

    let info = cmd("info".into());
    assert!(info.starts_with("ok uid=65534"), "{info}");

    // A root-owned process.
    let mut child = std::process::Command::new(tracee!("ticker"))
        .args(["100", "20"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let r = cmd(format!("attach {}", child.id()));
    assert!(r.starts_with("err PermissionDenied"), "{r}");
    assert!(r.contains("uid"), "the cause is named: {r}");

    // Another client's engine.
    let mine = root
        .attach(pb::AttachRequest {
            pid: child.id(),
            engine: None,
        })
        .await
        .unwrap();
    let r = cmd(format!("detach {}", mine.engine_id));
    assert!(r.starts_with("err PermissionDenied"), "{r}");
    assert!(r.contains("another client"), "{r}");
    root.detach(mine.engine_id).await.unwrap();
    let _ = child.kill();
    tokio::task::spawn_blocking(move || common::wait_child(&mut child))
        .await
        .unwrap();

    // What it spawns runs as uid 65534 (held at its first instruction).
    let line = cmd(format!("spawn stop -- {} 1 1", tracee!("ticker")));
    assert!(line.starts_with("ok"), "{line}");
    let spawned: i32 = AsClient::field(&line, "pid").parse().unwrap();
    let uids = common::proc_status(spawned, "Uid").unwrap();
    assert_eq!(
        uids.split_whitespace().collect::<Vec<_>>(),
        vec!["65534"; 4],
        "{uids}"
    );
    let gids = common::proc_status(spawned, "Gid").unwrap();
    assert!(gids.starts_with("65534"), "{gids}");
    // The client goes: its engine detaches and the program runs to its end.
    drop(c);
    common::wait_for("the spawned program to end", || {
        common::exited(spawned as u32)
    });
}

/// Bad input gets the right status and a message naming the field; the
/// server carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly() {
    let (_srv, mut c) = server().await;
    let e = c.spawn(spawn_req(&[])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("argv"), "{}", e.message());

    let e = c
        .spawn(spawn_req(&["no-such-program-utrace"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("not found"), "{}", e.message());

    let e = c
        .attach(pb::AttachRequest {
            pid: 0x3fff_fff0,
            engine: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    let e = c
        .spawn(pb::SpawnRequest {
            engine: Some(spec(&["openat", "notasyscall"], &[])),
            ..spawn_req(&["/bin/true"])
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("engine.syscalls[1]"),
        "{}",
        e.message()
    );

    let e = c
        .spawn(pb::SpawnRequest {
            engine: Some(pb::EngineSpec {
                events: vec![42],
                ..Default::default()
            }),
            ..spawn_req(&["/bin/true"])
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("engine.events[0]"), "{}", e.message());

    // An environment entry that is not KEY=VALUE, and the environment
    // given twice.
    for (environ, env, want) in [
        (vec!["PATH=/bin", "oops"], vec![], "environ[1]"),
        (vec!["=x"], vec![], "environ[0]"),
        (vec!["A=1"], vec![("B", "2")], "both set"),
    ] {
        let e = c
            .spawn(pb::SpawnRequest {
                environ: environ.iter().map(|s| s.to_string()).collect(),
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..spawn_req(&["/bin/true"])
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{environ:?}");
        assert!(e.message().contains(want), "{}", e.message());
    }

    let e = c.detach(987654).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    let e = c.events(987654).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    let e = c
        .raw()
        .trace(pb::TraceRequest {
            target: None,
            engine: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let e = c
        .raw()
        .batch(pb::BatchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "batch on engine 0: {e:?}");
    assert!(e.message().contains("engine_id 0"), "{}", e.message());

    // Still serving.
    let info = c.server_info().await.unwrap();
    assert!(!info.kernel.is_empty());
    assert!(info.caller.unwrap().may_trace_any);
}

#[tokio::test]
async fn bad_uris_and_socket_paths() {
    let e = Client::connect("tcp://nope").await.unwrap_err();
    assert!(e.to_string().contains("malformed"), "{e}");
    let e = Client::connect("unix:///nonexistent-dir/utraced.sock")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = utraced::ListenAddr::parse("tcp://0.0.0.0:7000", true).unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    let e = utraced::ListenAddr::parse("tcp://127.0.0.1:7000", false).unwrap_err();
    assert!(e.to_string().contains("--insecure-tcp"), "{e}");
    let cfg = utraced::Config {
        listen: vec![utraced::ListenAddr::Unix(
            "/proc/utrace-cannot/x.sock".into(),
        )],
        ..Default::default()
    };
    let e = utraced::Server::bind(cfg)
        .await
        .err()
        .expect("bind must fail");
    assert!(e.to_string().contains("cannot create socket"), "{e}");
}

/// The embedded server's in-process door (`Client::local`, what the
/// `utrace` command uses): a connection of this process, with the
/// credentials its Unix socket would have given; a unary call, a server
/// stream and a session all work through it; and its engines detach when
/// the last clone of the client is dropped, as a socket's do when it
/// closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_door_is_a_connection_of_this_process() {
    let (srv, mut sock) = server().await;
    let mut local = Client::local(srv.local().expect("the in-process door"));
    let caller = local.server_info().await.unwrap().caller.unwrap();
    assert_eq!(caller.transport, "local");
    assert_eq!(caller.uid, nix::unistd::geteuid().as_raw());
    assert_eq!(caller.gid, nix::unistd::getegid().as_raw());
    assert_eq!(caller.pid, std::process::id());
    assert_eq!(
        caller.may_trace_any,
        sock.server_info()
            .await
            .unwrap()
            .caller
            .unwrap()
            .may_trace_any,
        "the same rule as through the socket"
    );

    // A server stream.
    let s = local
        .trace(pb::TraceRequest {
            target: Some(pb::trace_request::Target::Spawn(spawn_req(&[
                tracee!("syscall_loop"),
                "50",
            ]))),
            engine: Some(spec(&["getppid"], &[])),
        })
        .await
        .unwrap();
    let evs = collect(s).await;
    assert_eq!(entries(&evs, "getppid").count(), 50);
    assert_eq!(death(&evs).unwrap().status.unwrap().code, 0);

    // A session holding a running program at its calls.
    let mut child = waiting_loop(1_000_000_000);
    let pid = child.id();
    let mut session = local.session().await.unwrap();
    let attached = session
        .attach(
            pid,
            pb::EngineSpec {
                sync: true,
                ..spec(&["getppid"], &[pb::EventKind::SyscallEntry])
            },
        )
        .await
        .unwrap();
    go(&mut child);
    let report = loop {
        match tokio::time::timeout(common::TIMEOUT, session.next())
            .await
            .expect("a report within the timeout")
        {
            Some(Ok(utrace_client::SessionEvent::Report(r))) => break r,
            Some(Ok(_)) => continue,
            other => panic!("the session ended: {other:?}"),
        }
    };
    assert_eq!(report.engine_id, attached.engine_id);
    let reply = session
        .batch(pb::BatchRequest {
            engine_id: attached.engine_id,
            tid: report.tid,
            ops: vec![pb::Op {
                op: Some(pb::op::Op::GetRegisters(pb::GetRegisters {
                    names: vec!["orig_rax".into()],
                })),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let Some(pb::op_result::Result::Registers(r)) = &reply.results[0].result else {
        panic!("{reply:?}");
    };
    assert_eq!(r.values["orig_rax"], libc::SYS_getppid as u64);
    let held = sock.list_tasks(pid).await.unwrap();
    assert!(
        held.iter().any(|t| t.engines.contains(&attached.engine_id)),
        "{held:?}"
    );

    // An engine of the connection (not of a call): it lives until the
    // door closes, with its last clone; then it detaches and the program
    // runs on, untraced.
    let kept = local
        .attach(pb::AttachRequest {
            pid,
            engine: Some(spec(&["getppid"], &[pb::EventKind::SyscallEntry])),
        })
        .await
        .unwrap();
    drop(session);
    let clone = local.clone();
    drop(local);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tasks = sock.list_tasks(pid).await.unwrap();
    assert!(
        tasks.iter().any(|t| t.engines == [kept.engine_id]),
        "the connection's engine stays while a clone of the client lives: {tasks:?}"
    );
    drop(clone);
    until_untraced(
        &mut sock,
        pid,
        "the door's engine is still attached after its client was dropped",
    )
    .await;
    assert!(common::alive(pid), "the program runs on");
    let _ = child.kill();
    let _ = child.wait();
}
