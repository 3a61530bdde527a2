//! `utrace break -p PID ADDR`: insert a software breakpoint, report its hits,
//! then remove it and detach (the program's bytes are restored; no int3 is
//! left behind). Reports are asynchronous: the program is not held at a hit
//! (holding needs a synchronous Session engine).

use std::time::Duration;

use clap::Args;
use tokio_stream::StreamExt;
use utrace_client::pb;

use crate::batch::{parse_u64, Target};
use crate::server::Connection;

/// `utrace break`.
#[derive(Args, Debug)]
pub struct BreakCmd {
    #[command(flatten)]
    pub target: Target,
    /// Address of the instruction (0x… hex or decimal).
    #[arg(value_name = "ADDR", value_parser = addr)]
    pub addr: u64,
    /// Hits to report before removing the breakpoint.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Seconds to wait for each hit before giving up.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

fn addr(s: &str) -> Result<u64, String> {
    parse_u64(s).ok_or_else(|| format!("{s:?} is not an address: give 0x… hex or decimal"))
}

fn op(o: pb::op::Op) -> pb::Op {
    pb::Op { op: Some(o) }
}

/// Run one op as `engine` on `tid`, interrupting the thread for it.
async fn one(conn: &mut Connection, engine: u64, tid: u32, o: pb::op::Op) -> Result<(), String> {
    let reply = conn
        .client
        .raw()
        .batch(pb::BatchRequest {
            engine_id: engine,
            tid,
            ops: vec![op(o)],
            stop_on_error: false,
            interrupt: true,
        })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    match reply.results.first().and_then(|r| r.result.as_ref()) {
        Some(pb::op_result::Result::Done(_)) => Ok(()),
        Some(pb::op_result::Result::Error(e)) => Err(format!("{}: {}", e.code, e.message)),
        other => Err(format!("unexpected result {other:?}")),
    }
}

/// Exit status: 0 when every hit asked for came, 1 otherwise.
pub async fn run(conn: &mut Connection, cmd: &BreakCmd) -> Result<u8, String> {
    let Some(pid) = cmd.target.pid else {
        return Err("give the process with -p PID".into());
    };
    let tid = cmd.target.tid.unwrap_or(0);
    let attached = conn
        .client
        .attach(pb::AttachRequest {
            pid,
            engine: Some(pb::EngineSpec {
                events: vec![
                    pb::EventKind::Breakpoint as i32,
                    pb::EventKind::Death as i32,
                ],
                queue_len: 64,
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| s.message().to_string())?;
    let engine = attached.engine_id;
    let mut events = conn
        .client
        .events(engine)
        .await
        .map_err(|s| s.message().to_string())?;
    let insert = pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint { addr: cmd.addr });
    if let Err(e) = one(conn, engine, tid, insert).await {
        let _ = conn.client.detach(engine).await;
        return Err(format!("inserting the breakpoint at {:#x}: {e}", cmd.addr));
    }
    let mut hits = 0;
    let mut gone = false;
    while hits < cmd.count {
        let next = tokio::time::timeout(Duration::from_secs(cmd.timeout), events.next()).await;
        match next {
            Ok(Some(Ok(ev))) => match ev.kind {
                Some(pb::event::Kind::Breakpoint(b)) => {
                    hits += 1;
                    crate::write_stdout(
                        format!(
                            "breakpoint {:#x} hit by pid {} tid {}\n",
                            b.addr, ev.pid, ev.tid
                        )
                        .as_bytes(),
                    )?;
                }
                Some(pb::event::Kind::Death(d)) if d.process_gone => {
                    eprintln!("utrace: process {pid} exited");
                    gone = true;
                    break;
                }
                _ => {}
            },
            Ok(Some(Err(s))) => return Err(s.message().to_string()),
            Ok(None) => break,
            Err(_) => {
                eprintln!("utrace: no hit within {} s", cmd.timeout);
                break;
            }
        }
    }
    if !gone {
        let remove = pb::op::Op::RemoveBreakpoint(pb::RemoveBreakpoint { addr: cmd.addr });
        if let Err(e) = one(conn, engine, tid, remove).await {
            eprintln!("utrace: removing the breakpoint: {e} (detaching restores it)");
        }
    }
    // Detaching restores any byte still ours.
    let _ = conn.client.detach(engine).await;
    Ok(if hits >= cmd.count { 0 } else { 1 })
}
