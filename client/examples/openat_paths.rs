//! Count and print every `openat` path of a program, with a synchronous
//! engine on a `Session`: each `openat` entry holds the program until this
//! client decides, and its path comes with the report (expedited from the
//! address in `rsi`), so there is no second round trip.
//!
//! ```text
//! cargo run --example openat_paths -- ls /
//! UTRACE_SERVER=unix:///run/utraced/utraced.sock cargo run --example openat_paths -- cat /etc/hostname
//! ```
//!
//! Without `UTRACE_SERVER`, a server is started inside this process.

use std::collections::BTreeMap;

use utrace_client::{pb, Client, Decision, SessionEvent};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        eprintln!("usage: openat_paths PROGRAM [ARGS...]");
        std::process::exit(2);
    }
    // A daemon if asked for, else a server of our own.
    let (uri, _embedded) = match std::env::var("UTRACE_SERVER") {
        Ok(uri) => (uri, None),
        Err(_) => {
            let e = utraced::Embedded::start().await?;
            (e.uri(), Some(e))
        }
    };
    let mut client = Client::connect(&uri).await?;
    let mut session = client.session().await?;
    let attached = session
        .spawn(pb::SpawnRequest {
            argv,
            engine: Some(pb::EngineSpec {
                events: vec![
                    pb::EventKind::SyscallEntry as i32,
                    pb::EventKind::Death as i32,
                ],
                syscalls: vec!["openat".into()],
                sync: true,
                expedite: Some(pb::Expedite {
                    registers: vec![],
                    memory: vec![pb::MemRef {
                        register: "rsi".into(),
                        len: 4096,
                        string: true,
                        offset: 0,
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    eprintln!("traced pid {}", attached.pid);

    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut status = None;
    while let Some(ev) = session.next().await {
        match ev? {
            SessionEvent::Report(report) => {
                if let Some(pb::event::Kind::Death(d)) = &report.kind {
                    if d.process_gone {
                        status = d.status;
                    }
                }
                if let Some(x) = &report.expedited {
                    let path = String::from_utf8_lossy(&x.memory[0]).into_owned();
                    println!("openat {path}");
                    *counts.entry(path).or_default() += 1;
                }
                if report.held {
                    session.decide(Decision::resume(&report)).await?;
                }
            }
            SessionEvent::Ended(_) => break,
            SessionEvent::Error { error, .. } => eprintln!("refused: {}", error.message),
            // Batch replies, and what a newer server may send.
            _ => {}
        }
    }
    let total: u32 = counts.values().sum();
    println!("{total} openat calls, {} distinct paths", counts.len());
    for (path, n) in &counts {
        if *n > 1 {
            println!("{n:6}  {path}");
        }
    }
    if let Some(s) = status {
        eprintln!("exit code {}, signal {}", s.code, s.signal);
    }
    Ok(())
}
