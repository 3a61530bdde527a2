//! A slow reader of a traced run, for the tests of what a full queue
//! does (drops, or holds the program) and of what the server counts.

use std::time::Duration;

use tokio_stream::StreamExt;
use utrace_client::{pb, Client};

/// What a reader saw of one traced run.
#[derive(Debug, Default)]
pub struct Seen {
    pub getppid: usize,
    pub dropped: u64,
    pub exit_code: Option<i32>,
}

pub fn note(seen: &mut Seen, ev: &pb::Event) {
    seen.dropped += ev.dropped_before;
    match &ev.kind {
        Some(pb::event::Kind::SyscallEntry(e)) if e.name == "getppid" => seen.getppid += 1,
        Some(pb::event::Kind::Death(d)) if d.process_gone => {
            seen.exit_code = d.status.map(|s| s.code);
        }
        _ => {}
    }
}

/// Trace `syscall_loop CALLS 1000` with a queue of 8 reports, reading
/// slowly (a pause every 50 reports, for the first 2,000).
pub async fn slow_reader(client: &mut Client, calls: usize, lossless: bool) -> Seen {
    let stream = client
        .trace(pb::TraceRequest {
            target: Some(pb::trace_request::Target::Spawn(pb::SpawnRequest {
                argv: vec![
                    env!("CARGO_BIN_EXE_syscall_loop").into(),
                    calls.to_string(),
                    "1000".into(),
                ],
                ..Default::default()
            })),
            engine: Some(pb::EngineSpec {
                syscalls: vec!["getppid".into()],
                events: vec![
                    pb::EventKind::SyscallEntry as i32,
                    pb::EventKind::Death as i32,
                ],
                queue_len: 8,
                lossless,
                ..Default::default()
            }),
        })
        .await
        .expect("trace");
    let mut stream = stream;
    let mut seen = Seen::default();
    let mut n = 0;
    tokio::time::timeout(super::TIMEOUT, async {
        while let Some(ev) = stream.next().await {
            let ev = ev.expect("stream error");
            note(&mut seen, &ev);
            n += 1;
            if n < 2000 && n % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
    .await
    .expect("the trace ends");
    seen
}
