//! Lossless engines (`EngineSpec.lossless`): a full queue holds the
//! program instead of dropping reports; and local sinks, which hand an
//! embedding program the reports on the tracer thread before the thread
//! resumes. Real programs, a real server; the slow readers really sleep.

mod common;

use common::slow::{note, slow_reader, Seen};

const LOOP: &str = env!("CARGO_BIN_EXE_syscall_loop");

use std::sync::{Arc, Mutex};

use tokio_stream::StreamExt;
use utrace_client::{pb, Client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossless_engine_holds_the_program_and_loses_nothing() {
    let (_srv, mut client) = common::server().await;
    let calls = 20_000;
    // The same slow reader loses reports without the option (so the
    // reader is slow enough for the test to mean something)…
    let lossy = slow_reader(&mut client, calls, false).await;
    assert_eq!(lossy.exit_code, Some(0), "{lossy:?}");
    assert!(
        lossy.dropped > 0 && lossy.getppid < calls,
        "a queue of 8 and a slow reader should lose reports: {lossy:?}"
    );
    // …and with it gets every call, in a program slowed to its pace.
    let lossless = slow_reader(&mut client, calls, true).await;
    assert_eq!(lossless.exit_code, Some(0), "{lossless:?}");
    assert_eq!(lossless.dropped, 0, "{lossless:?}");
    assert_eq!(lossless.getppid, calls, "{lossless:?}");
}

/// A thread's state letter from /proc (`t`: stopped by its tracer).
fn state_of(tid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sink_sees_each_report_while_its_thread_waits() {
    let (srv, client) = common::server().await;
    struct Got {
        events: Vec<pb::Event>,
        /// getppid entries seen while their thread was not stopped.
        running: usize,
    }
    let got = Arc::new(Mutex::new(Got {
        events: Vec::new(),
        running: 0,
    }));
    let g = Arc::clone(&got);
    let sink = srv.local_sink(Box::new(move |ev: pb::Event| {
        let mut g = g.lock().unwrap();
        if matches!(&ev.kind, Some(pb::event::Kind::SyscallEntry(e)) if e.name == "getppid")
            && state_of(ev.tid) != Some('t')
        {
            g.running += 1;
        }
        g.events.push(ev);
    }));
    let mut req = tonic::Request::new(pb::TraceRequest {
        target: Some(pb::trace_request::Target::Spawn(pb::SpawnRequest {
            argv: vec![LOOP.into(), "300".into(), "100".into()],
            ..Default::default()
        })),
        engine: Some(pb::EngineSpec {
            syscalls: vec!["getppid".into(), "openat".into()],
            events: vec![
                pb::EventKind::SyscallEntry as i32,
                pb::EventKind::Death as i32,
            ],
            queue_len: 1,
            ..Default::default()
        }),
    });
    sink.apply(&mut req);
    let mut stream = client
        .clone()
        .raw()
        .trace(req)
        .await
        .expect("trace")
        .into_inner();
    // The stream itself carries nothing: it ends with the trace.
    let on_stream = tokio::time::timeout(common::TIMEOUT, async {
        let mut n = 0;
        while let Some(ev) = stream.next().await {
            ev.expect("stream error");
            n += 1;
        }
        n
    })
    .await
    .expect("the trace ends");
    assert_eq!(on_stream, 0, "reports went to the sink, not the stream");
    {
        let g = got.lock().unwrap();
        assert!(
            matches!(
                g.events.first().and_then(|e| e.kind.as_ref()),
                Some(pb::event::Kind::Attached(_))
            ),
            "the sink gets `attached` first: {:?}",
            g.events.first()
        );
        let mut seen = Seen::default();
        for ev in &g.events {
            note(&mut seen, ev);
        }
        assert_eq!(seen.getppid, 300, "{seen:?}");
        assert_eq!(seen.exit_code, Some(0), "{seen:?}");
        assert_eq!(
            g.running, 0,
            "every report reached the sink while its thread was stopped"
        );
    }
    // A sink serves one call: its token is spent.
    let mut again = tonic::Request::new(pb::TraceRequest {
        target: Some(pb::trace_request::Target::Spawn(pb::SpawnRequest {
            argv: vec!["/bin/true".into()],
            ..Default::default()
        })),
        engine: None,
    });
    sink.apply(&mut again);
    let err = client.clone().raw().trace(again).await.expect_err("spent");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}

/// Another process may not name a local sink (only the embedding program
/// can register one, but a token is only a number).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_sink_is_refused_to_other_processes() {
    let daemon = common::daemon::Daemon::start("sink-refused");
    let mut client = Client::connect(&daemon.uri).await.expect("connect");
    let mut req = tonic::Request::new(pb::TraceRequest {
        target: Some(pb::trace_request::Target::Spawn(pb::SpawnRequest {
            argv: vec!["/bin/true".into()],
            ..Default::default()
        })),
        engine: None,
    });
    req.metadata_mut().insert(
        "utrace-local-sink",
        tonic::metadata::MetadataValue::from(1u64),
    );
    let err = client.raw().trace(req).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("local sink"), "{err:?}");
}
