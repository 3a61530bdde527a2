//! End-to-end tests through a real utraced on a private Unix socket: each
//! test starts its own server (its own tracer thread and socket).

mod common;

use std::time::Duration;

use tokio_stream::StreamExt;
use utrace_client::{pb, Client};

/// A server on a private socket, and a client connected to it.
async fn server() -> (utraced::Embedded, Client) {
    common::init_logging();
    let srv = utraced::Embedded::start().await.expect("start server");
    let client = Client::connect(&srv.uri()).await.expect("connect");
    (srv, client)
}

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
    assert!(r.is_ok(), "stream did not end within {:?}; got {} events", common::TIMEOUT, out.len());
    out
}

fn entries<'a>(evs: &'a [pb::Event], name: &'a str) -> impl Iterator<Item = &'a pb::SyscallEntry> + 'a {
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
