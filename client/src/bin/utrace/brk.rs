//! `utrace break -p PID (ADDR | SYMBOL)`: insert a software breakpoint
//! (at an address, or at a function the server finds by symbol in the
//! process: `main`, `libc:malloc`, `prog:parse+0x10`), report its hits,
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
    /// Address of the instruction (0x… hex or decimal), or a function:
    /// `main`, `libc:malloc`, `BINARY:FUNC+OFF`.
    #[arg(value_name = "ADDR|SYMBOL", value_parser = place)]
    pub at: Place,
    /// Hits to report before removing the breakpoint.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Seconds to wait for each hit before giving up.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// Where the breakpoint goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Addr(u64),
    Symbol(String),
}

fn place(s: &str) -> Result<Place, String> {
    if let Some(a) = parse_u64(s) {
        return Ok(Place::Addr(a));
    }
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "{s:?} is neither an address (0x… hex or decimal) nor a symbol (main, libc:malloc)"
        ));
    }
    Ok(Place::Symbol(s.to_string()))
}

fn op(o: pb::op::Op) -> pb::Op {
    pb::Op { op: Some(o) }
}

/// Run one op as `engine` on `tid`, interrupting the thread for it; a
/// breakpoint inserted by symbol answers its address.
async fn one(
    conn: &mut Connection,
    engine: u64,
    tid: u32,
    o: pb::op::Op,
) -> Result<Option<u64>, String> {
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
        Some(pb::op_result::Result::Done(_)) => Ok(None),
        Some(pb::op_result::Result::Breakpoint(b)) => Ok(Some(b.addr)),
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
    let (insert, what) = match &cmd.at {
        Place::Addr(a) => (
            pb::InsertBreakpoint {
                addr: *a,
                ..Default::default()
            },
            format!("{a:#x}"),
        ),
        Place::Symbol(s) => (
            pb::InsertBreakpoint {
                symbol: s.clone(),
                ..Default::default()
            },
            s.clone(),
        ),
    };
    let addr = match one(conn, engine, tid, pb::op::Op::InsertBreakpoint(insert)).await {
        Ok(Some(a)) => {
            crate::write_stdout(format!("breakpoint at {a:#x} ({what})\n").as_bytes())?;
            a
        }
        Ok(None) => match cmd.at {
            Place::Addr(a) => a,
            Place::Symbol(_) => 0,
        },
        Err(e) => {
            let _ = conn.client.detach(engine).await;
            return Err(format!("inserting the breakpoint at {what}: {e}"));
        }
    };
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
                    crate::say!("utrace: process {pid} exited");
                    gone = true;
                    break;
                }
                _ => {}
            },
            Ok(Some(Err(s))) => return Err(s.message().to_string()),
            Ok(None) => break,
            Err(_) => {
                crate::say!("utrace: no hit within {} s", cmd.timeout);
                break;
            }
        }
    }
    if !gone {
        let remove = pb::op::Op::RemoveBreakpoint(pb::RemoveBreakpoint { addr });
        if let Err(e) = one(conn, engine, tid, remove).await {
            crate::say!("utrace: removing the breakpoint: {e} (detaching restores it)");
        }
    }
    // Detaching restores any byte still ours.
    let _ = conn.client.detach(engine).await;
    Ok(if hits >= cmd.count { 0 } else { 1 })
}
