//! The `Probe` call: a `ProbeRequest` checked and turned into the engine
//! layer's [`Program`] (every error names its field), a
//! [`ProbeEngine`] attached or spawned like any engine (the caller's
//! rights, budget and connection), and the stream of its snapshots and
//! events, read from the engine's [`Shared`] state.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::{Response, Status};
use tracing::{debug, Instrument};
use utrace_engines::builtin::probe::{
    self as probe, Agg, BinOp, Builtin, Clause, Expr, Limits, MapDef, Point, ProbeEngine,
    ProcessEvent, Program, Shared, UnOp, Update, Value,
};
use utrace_engines::{BreakpointHit, EngineId};
use utrace_proto::v1 as pb;

use crate::peer::Peer;
use crate::service::{Parts, TracerService};

/// Bounds of a request.
const MAX_CLAUSES: usize = 64;
const MAX_POINTS: usize = 16;
const MAX_UPDATES: usize = 32;
const MAX_EVENT_VALUES: usize = 16;
const MAX_KEYS: usize = 8;
const MAX_MAPS: usize = 64;
const MAX_NODES: usize = 256;
const MAX_NAME: usize = 4096;
/// How long the first placement may take (symbol tables are read then).
const PLACE_TIMEOUT: Duration = Duration::from_secs(20);
/// Reports waiting for the client.
const STREAM_QUEUE: usize = 64;

type ProbeStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ProbeReport, Status>> + Send>>;

fn bad(field: &str, why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {why}"))
}

/// Check `req` and build its program.
pub fn program(req: &pb::ProbeRequest) -> Result<Program, Status> {
    let l = req.limits.unwrap_or_default();
    let limits = Limits {
        max_keys: match l.max_keys {
            0 => 4096,
            n @ 1..=65536 => n as usize,
            n => return Err(bad("limits.max_keys", format!("{n} is more than 65536"))),
        },
        string_len: match l.string_len {
            0 => 64,
            n @ 1..=4096 => n,
            n => return Err(bad("limits.string_len", format!("{n} is more than 4096"))),
        },
        events_per_second: match l.events_per_second {
            0 => 10_000,
            n @ 1..=1_000_000 => n,
            n => {
                return Err(bad(
                    "limits.events_per_second",
                    format!("{n} is more than 1000000"),
                ))
            }
        },
        cpu_percent: match l.cpu_percent {
            0 => 50,
            n @ 1..=1000 => n,
            n => return Err(bad("limits.cpu_percent", format!("{n} is more than 1000"))),
        },
        ..Limits::default()
    };
    if req.clauses.is_empty() {
        return Err(bad(
            "clauses",
            "empty; give at least one clause with a point",
        ));
    }
    if req.clauses.len() > MAX_CLAUSES {
        return Err(bad(
            "clauses",
            format!("{} clauses, at most {MAX_CLAUSES}", req.clauses.len()),
        ));
    }
    let mut maps: Vec<MapDef> = Vec::new();
    let mut clauses = Vec::new();
    for (ci, c) in req.clauses.iter().enumerate() {
        let f = format!("clauses[{ci}]");
        if c.points.is_empty() || c.points.len() > MAX_POINTS {
            return Err(bad(
                &format!("{f}.points"),
                format!("{} points; give 1 to {MAX_POINTS}", c.points.len()),
            ));
        }
        let mut points = Vec::new();
        for (pi, p) in c.points.iter().enumerate() {
            points.push(point(p, &format!("{f}.points[{pi}]"))?);
        }
        let predicate = c
            .predicate
            .as_ref()
            .map(|e| expr_checked(e, &format!("{f}.predicate")))
            .transpose()?;
        if c.updates.len() > MAX_UPDATES {
            return Err(bad(
                &format!("{f}.updates"),
                format!("{} updates, at most {MAX_UPDATES}", c.updates.len()),
            ));
        }
        let mut updates = Vec::new();
        for (ui, u) in c.updates.iter().enumerate() {
            updates.push(update(u, &format!("{f}.updates[{ui}]"), &mut maps)?);
        }
        if c.event_values.len() > MAX_EVENT_VALUES {
            return Err(bad(
                &format!("{f}.event_values"),
                format!(
                    "{} values, at most {MAX_EVENT_VALUES}",
                    c.event_values.len()
                ),
            ));
        }
        if !c.emit_event && !c.event_values.is_empty() {
            return Err(bad(
                &format!("{f}.event_values"),
                "set, but emit_event is not: set emit_event to send them",
            ));
        }
        let event = c
            .emit_event
            .then(|| {
                c.event_values
                    .iter()
                    .enumerate()
                    .map(|(i, e)| expr_checked(e, &format!("{f}.event_values[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        clauses.push(Clause {
            points,
            predicate,
            updates,
            event,
        });
    }
    Ok(Program {
        clauses,
        maps,
        limits,
    })
}

fn point(p: &pb::ProbePoint, f: &str) -> Result<Point, Status> {
    use pb::probe_point::Point as P;
    match &p.point {
        None => Err(bad(f, "empty; set function, address or syscall")),
        Some(P::Address(0)) => Err(bad(&format!("{f}.address"), "0 is not an address")),
        Some(P::Address(a)) => Ok(Point::Address(*a)),
        Some(P::Function(fp)) => {
            if fp.binary.len() > MAX_NAME || fp.binary.contains('\0') {
                return Err(bad(&format!("{f}.function.binary"), "not a file name"));
            }
            if fp.symbol.len() > MAX_NAME || fp.symbol.contains('\0') {
                return Err(bad(&format!("{f}.function.symbol"), "not a symbol name"));
            }
            if fp.binary.contains('/') && !fp.binary.starts_with('/') {
                return Err(bad(
                    &format!("{f}.function.binary"),
                    format!(
                        "{:?} is a relative path; give an absolute one (as the process sees it) or a library name such as \"libc\"",
                        fp.binary
                    ),
                ));
            }
            Ok(Point::Function {
                binary: fp.binary.clone(),
                symbol: (!fp.symbol.is_empty()).then(|| fp.symbol.clone()),
                offset: fp.offset,
                exact: fp.exact,
                ret: fp.on_return,
            })
        }
        Some(P::Process(pp)) => {
            use pb::ProcessEvent as E;
            let signal = match pp.signal {
                0 => None,
                s @ 1..=64 => Some(s),
                s => {
                    return Err(bad(
                        &format!("{f}.process.signal"),
                        format!("{s} is not a signal number (1 to 64, or 0 for any)"),
                    ))
                }
            };
            let e =
                match E::try_from(pp.event).unwrap_or(E::Unspecified) {
                    E::Unspecified => return Err(bad(
                        &format!("{f}.process.event"),
                        "unset or unknown; give SIGNAL, THREAD_START, THREAD_EXIT, EXEC or EXIT",
                    )),
                    E::Signal => ProcessEvent::Signal(signal),
                    E::ThreadStart => ProcessEvent::ThreadStart,
                    E::ThreadExit => ProcessEvent::ThreadExit,
                    E::Exec => ProcessEvent::Exec,
                    E::Exit => ProcessEvent::Exit,
                };
            if signal.is_some() && !matches!(e, ProcessEvent::Signal(_)) {
                return Err(bad(
                    &format!("{f}.process.signal"),
                    "set, but the event is not SIGNAL",
                ));
            }
            Ok(Point::Process(e))
        }
        Some(P::Usdt(u)) => {
            for (v, field) in [
                (&u.binary, "binary"),
                (&u.provider, "provider"),
                (&u.name, "name"),
            ] {
                if v.len() > MAX_NAME || v.contains('\0') {
                    return Err(bad(&format!("{f}.usdt.{field}"), "not a name"));
                }
            }
            if u.name.is_empty() {
                return Err(bad(
                    &format!("{f}.usdt.name"),
                    "empty; name the marker, e.g. \"function__entry\"",
                ));
            }
            if u.binary.contains('/') && !u.binary.starts_with('/') {
                return Err(bad(
                    &format!("{f}.usdt.binary"),
                    format!("{:?} is a relative path; give an absolute one", u.binary),
                ));
            }
            Ok(Point::Usdt {
                binary: u.binary.clone(),
                provider: u.provider.clone(),
                name: u.name.clone(),
            })
        }
        Some(P::Syscall(s)) if s.name.starts_with('%') => {
            let set = utrace_engines::syscall_class(&s.name).ok_or_else(|| {
                bad(
                    &format!("{f}.syscall.name"),
                    format!(
                        "{:?} is not a syscall class; the classes are {}",
                        s.name,
                        utrace_engines::syscall_class_names().join(", ")
                    ),
                )
            })?;
            Ok(Point::Syscall {
                nr: None,
                exit: s.exit,
                class: Some(Arc::new((s.name.clone(), set))),
            })
        }
        Some(P::Syscall(s)) => {
            let nr = if s.name.is_empty() {
                None
            } else {
                Some(
                    s.name
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n <= utrace_engines::MAX_SYSCALL as u64)
                        .or_else(|| utrace_engines::syscall_number(&s.name).ok())
                        .ok_or_else(|| {
                            bad(
                                &format!("{f}.syscall.name"),
                                format!("{:?} is not a syscall of this architecture", s.name),
                            )
                        })?,
                )
            };
            Ok(Point::Syscall {
                nr,
                exit: s.exit,
                class: None,
            })
        }
    }
}

fn update(u: &pb::MapUpdate, f: &str, maps: &mut Vec<MapDef>) -> Result<Update, Status> {
    use pb::ProbeAggregation as A;
    if u.map.is_empty() || u.map.len() > 64 || u.map.chars().any(|c| c.is_control()) {
        return Err(bad(
            &format!("{f}.map"),
            "a map needs a name of 1 to 64 printable characters, e.g. \"@bytes\"",
        ));
    }
    let agg = match A::try_from(u.agg).unwrap_or(A::Unspecified) {
        A::Unspecified => {
            return Err(bad(
                &format!("{f}.agg"),
                "unset or unknown; give COUNT, SUM, MIN, MAX, AVG, STATS, HIST or LHIST",
            ))
        }
        A::Count => Agg::Count,
        A::Sum => Agg::Sum,
        A::Min => Agg::Min,
        A::Max => Agg::Max,
        A::Avg => Agg::Avg,
        A::Stats => Agg::Stats,
        A::Hist => Agg::Hist,
        A::Lhist => {
            let (min, max, step) = (u.lhist_min, u.lhist_max, u.lhist_step);
            if step <= 0 {
                return Err(bad(
                    &format!("{f}.lhist_step"),
                    format!("{step}: a linear histogram's step must be positive"),
                ));
            }
            if max <= min {
                return Err(bad(
                    &format!("{f}.lhist_max"),
                    format!("{max} is not above lhist_min {min}"),
                ));
            }
            let n = probe::agg::lhist_inner(min, max, step);
            if n > probe::agg::MAX_LHIST_BUCKETS - 2 {
                return Err(bad(
                    &format!("{f}.lhist_step"),
                    format!(
                        "{n} buckets from {min} to {max}; at most {}",
                        probe::agg::MAX_LHIST_BUCKETS - 2
                    ),
                ));
            }
            Agg::Lhist { min, max, step }
        }
    };
    let map = match maps.iter().position(|m| m.name == u.map) {
        Some(i) if maps[i].agg != agg => {
            return Err(bad(
                &format!("{f}.agg"),
                format!(
                    "map {} is already a {:?}; one map keeps one aggregation",
                    u.map, maps[i].agg
                ),
            ))
        }
        Some(i) => i,
        None if maps.len() >= MAX_MAPS => {
            return Err(bad(
                &format!("{f}.map"),
                format!("more than {MAX_MAPS} maps"),
            ))
        }
        None => {
            maps.push(MapDef {
                name: u.map.clone(),
                agg,
            });
            maps.len() - 1
        }
    };
    if u.keys.len() > MAX_KEYS {
        return Err(bad(
            &format!("{f}.keys"),
            format!("{} keys, at most {MAX_KEYS}", u.keys.len()),
        ));
    }
    let keys = u
        .keys
        .iter()
        .enumerate()
        .map(|(i, e)| expr_checked(e, &format!("{f}.keys[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let value = match (&u.value, agg.takes_value()) {
        (None, true) => {
            return Err(bad(
                &format!("{f}.value"),
                format!("{agg:?} needs a value to aggregate"),
            ))
        }
        (Some(_), false) => {
            return Err(bad(&format!("{f}.value"), "COUNT takes no value"));
        }
        (Some(e), true) => Some(expr_checked(e, &format!("{f}.value"))?),
        (None, false) => None,
    };
    Ok(Update { map, keys, value })
}

fn expr_checked(e: &pb::ProbeExpr, f: &str) -> Result<Expr, Status> {
    let mut nodes = 0;
    expr(e, f, &mut nodes)
}

fn expr(e: &pb::ProbeExpr, f: &str, nodes: &mut usize) -> Result<Expr, Status> {
    use pb::probe_expr::Expr as E;
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(bad(f, format!("more than {MAX_NODES} operations")));
    }
    let sub = |x: &Option<Box<pb::ProbeExpr>>, name: &str, nodes: &mut usize| match x {
        Some(x) => expr(x, &format!("{f}.{name}"), nodes).map(Box::new),
        None => Err(bad(&format!("{f}.{name}"), "missing")),
    };
    Ok(match &e.expr {
        None => return Err(bad(f, "empty expression")),
        Some(E::Int(i)) => Expr::Int(*i),
        Some(E::Str(s)) => {
            if s.len() > MAX_NAME {
                return Err(bad(&format!("{f}.str"), "longer than 4096 bytes"));
            }
            Expr::Str(s.as_str().into())
        }
        Some(E::Builtin(b)) => Expr::Builtin(
            match pb::ProbeBuiltin::try_from(*b).unwrap_or(pb::ProbeBuiltin::Unspecified) {
                pb::ProbeBuiltin::Unspecified => {
                    return Err(bad(
                        &format!("{f}.builtin"),
                        "unknown; give PID, TID, COMM, NSECS, RETVAL or PROBE",
                    ))
                }
                pb::ProbeBuiltin::Pid => Builtin::Pid,
                pb::ProbeBuiltin::Tid => Builtin::Tid,
                pb::ProbeBuiltin::Comm => Builtin::Comm,
                pb::ProbeBuiltin::Nsecs => Builtin::Nsecs,
                pb::ProbeBuiltin::Retval => Builtin::Retval,
                pb::ProbeBuiltin::Probe => Builtin::Probe,
            },
        ),
        Some(E::Arg(i)) if *i <= 5 => Expr::Arg(*i as u8),
        Some(E::Arg(i)) => {
            return Err(bad(
                &format!("{f}.arg"),
                format!("arg{i} does not exist; arguments are arg0 to arg5"),
            ))
        }
        Some(E::Register(name)) => {
            let i = BreakpointHit::REGISTERS
                .iter()
                .position(|r| r == name)
                .ok_or_else(|| {
                    bad(
                        &format!("{f}.register"),
                        format!(
                            "{name:?} is not a register a probe sees; it sees {}",
                            BreakpointHit::REGISTERS.join(", ")
                        ),
                    )
                })?;
            Expr::Reg(i)
        }
        Some(E::Binary(b)) => {
            use pb::ProbeBinaryOp as O;
            let op = match O::try_from(b.op).unwrap_or(O::Unspecified) {
                O::Unspecified => {
                    return Err(bad(&format!("{f}.binary.op"), "unset or unknown operator"))
                }
                O::Add => BinOp::Add,
                O::Sub => BinOp::Sub,
                O::Mul => BinOp::Mul,
                O::Div => BinOp::Div,
                O::Mod => BinOp::Mod,
                O::BitAnd => BinOp::BitAnd,
                O::BitOr => BinOp::BitOr,
                O::BitXor => BinOp::BitXor,
                O::Shl => BinOp::Shl,
                O::Shr => BinOp::Shr,
                O::Eq => BinOp::Eq,
                O::Ne => BinOp::Ne,
                O::Lt => BinOp::Lt,
                O::Le => BinOp::Le,
                O::Gt => BinOp::Gt,
                O::Ge => BinOp::Ge,
                O::And => BinOp::And,
                O::Or => BinOp::Or,
            };
            Expr::Bin(
                op,
                sub(&b.left, "binary.left", nodes)?,
                sub(&b.right, "binary.right", nodes)?,
            )
        }
        Some(E::Unary(u)) => {
            use pb::ProbeUnaryOp as O;
            let op = match O::try_from(u.op).unwrap_or(O::Unspecified) {
                O::Unspecified => {
                    return Err(bad(&format!("{f}.unary.op"), "unset or unknown operator"))
                }
                O::Neg => UnOp::Neg,
                O::Not => UnOp::Not,
                O::BitNot => UnOp::BitNot,
            };
            Expr::Un(op, sub(&u.operand, "unary.operand", nodes)?)
        }
        // A length of 0: as long as limits.string_len allows.
        Some(E::StrAt(s)) => Expr::StrAt(sub(&s.addr, "str_at.addr", nodes)?, any_len(s.len)),
        Some(E::Buf(s)) => Expr::Buf(sub(&s.addr, "buf.addr", nodes)?, any_len(s.len)),
        Some(E::Ustack(s)) => {
            let max = probe::MAX_STACK as u32;
            if s.depth > max {
                return Err(bad(
                    &format!("{f}.ustack.depth"),
                    format!("{} frames is too deep: at most {max}", s.depth),
                ));
            }
            Expr::Ustack(if s.depth == 0 { max } else { s.depth })
        }
    })
}

/// A `str()`/`buf()` length: 0 is no bound of its own (the probe's
/// string limit bounds it).
fn any_len(n: u32) -> u32 {
    if n == 0 {
        u32::MAX
    } else {
        n
    }
}

fn value(v: &Value) -> pb::ProbeValue {
    use pb::probe_value::Value as V;
    pb::ProbeValue {
        value: Some(match v {
            Value::Int(i) => V::Int(*i),
            Value::Str(s) => V::Str(String::from_utf8_lossy(s).into_owned()),
            Value::Buf(b) => V::Buf(b.to_vec().into()),
            Value::Stack(s) => V::Stack(pb::ProbeStackValue {
                frames: s
                    .addrs
                    .iter()
                    .zip(s.frames.iter())
                    .map(|(a, f)| pb::ProbeFrame {
                        address: *a,
                        symbol: f.symbol.to_string(),
                        offset: f.offset,
                        binary: f.binary.to_string(),
                    })
                    .collect(),
            }),
        }),
    }
}

fn agg_pb(a: Agg) -> pb::ProbeAggregation {
    use pb::ProbeAggregation as A;
    match a {
        Agg::Count => A::Count,
        Agg::Sum => A::Sum,
        Agg::Min => A::Min,
        Agg::Max => A::Max,
        Agg::Avg => A::Avg,
        Agg::Stats => A::Stats,
        Agg::Hist => A::Hist,
        Agg::Lhist { .. } => A::Lhist,
    }
}

fn snapshot(s: probe::Snapshot, last: bool) -> pb::ProbeReport {
    let time_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut maps: Vec<pb::ProbeMap> = s
        .maps
        .into_iter()
        .filter(|m| !m.entries.is_empty() || m.keys_dropped > 0)
        .map(|m| pb::ProbeMap {
            name: m.name,
            agg: agg_pb(m.agg) as i32,
            keys_dropped: m.keys_dropped,
            entries: m
                .entries
                .into_iter()
                .map(|(k, c)| pb::ProbeEntry {
                    key: k.iter().map(value).collect(),
                    value: c.value(m.agg),
                    count: c.count,
                    sum: c.sum,
                    buckets: c
                        .nonzero_buckets(m.agg)
                        .into_iter()
                        .map(|(low, high, count)| pb::HistBucket { low, high, count })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    maps.sort_by(|a, b| a.name.cmp(&b.name));
    let c = s.counters;
    pb::ProbeReport {
        kind: Some(pb::probe_report::Kind::Snapshot(pb::ProbeSnapshot {
            time_ns,
            maps,
            counters: Some(pb::ProbeCounters {
                hits: c.hits,
                hits_lost: c.hits_lost,
                events_dropped: c.events_dropped,
                read_errors: c.read_errors,
            }),
            r#final: last,
        })),
    }
}

fn event(e: probe::ProbeEvent) -> pb::ProbeReport {
    pb::ProbeReport {
        kind: Some(pb::probe_report::Kind::Event(pb::ProbeEvent {
            clause: e.clause,
            pid: e.pid as u32,
            tid: e.tid as u32,
            nsecs: e.nsecs,
            values: e.values.iter().map(value).collect(),
            dropped_before: e.dropped_before,
        })),
    }
}

/// Wait for the engine's first placement.
async fn placed(shared: &Shared) -> Result<Vec<probe::PlacedPoint>, probe::PlaceError> {
    loop {
        let woken = shared.notify.notified();
        if let Some(r) = shared.lock().placed.clone() {
            return r;
        }
        woken.await;
    }
}

/// The Probe call.
pub(crate) async fn start(
    svc: &TracerService,
    p: Peer,
    req: pb::ProbeRequest,
) -> Result<Response<ProbeStream>, Status> {
    let prog = Arc::new(program(&req)?);
    let every = match req.snapshot_interval_ms {
        0 => None,
        n @ 10..=86_400_000 => Some(Duration::from_millis(u64::from(n))),
        n => {
            return Err(bad(
                "snapshot_interval_ms",
                format!("{n}: give 0 (only at the end) or 10 to 86400000"),
            ))
        }
    };
    let clear = req.clear_after_snapshot;
    let cpu_percent = prog.limits.cpu_percent;
    let shared = Shared::new(&prog);
    let spawn = matches!(req.target, Some(pb::probe_request::Target::Spawn(_)));
    let (engine, options) = ProbeEngine::new(
        Arc::clone(&prog),
        Arc::clone(&shared),
        spawn,
        req.follow_children,
    );
    let parts = Parts::quiet(&svc.registry, &p)?;
    let e = match req.target {
        Some(pb::probe_request::Target::Pid(pid)) => {
            let e = svc
                .attach_engine(&p, pid, "", None, Box::new(engine), options, parts)
                .await?;
            // The engine places its points at the stop this brings.
            svc.tracer
                .interrupt(EngineId(e.engine_id), e.pid as i32)
                .await
                .map_err(crate::convert::status)?;
            e
        }
        Some(pb::probe_request::Target::Spawn(s)) => {
            let req = pb::SpawnRequest {
                argv: s.argv,
                env: s.env,
                cwd: s.cwd,
                ..Default::default()
            };
            svc.spawn_engine(&p, req, "spawn.", None, Box::new(engine), options, parts)
                .await?
        }
        None => return Err(bad("target", "missing; set pid, or spawn {argv: [...]}")),
    };
    // Dropping `e` before keep_quiet() undoes the engine (and kills a
    // program it started): nothing is left of a probe that failed.
    let points = match tokio::time::timeout(PLACE_TIMEOUT, placed(&shared)).await {
        Ok(Ok(points)) => points,
        Ok(Err(err)) if err.missing => return Err(Status::not_found(err.message)),
        Ok(Err(err)) => return Err(Status::invalid_argument(err.message)),
        Err(_) => {
            return Err(Status::deadline_exceeded(format!(
                "the probe was not placed within {}s (the process did not stop?)",
                PLACE_TIMEOUT.as_secs()
            )))
        }
    };
    let (engine_id, pid) = (e.engine_id, e.pid);
    e.keep_quiet();
    let started = pb::ProbeReport {
        kind: Some(pb::probe_report::Kind::Started(pb::ProbeStarted {
            engine_id,
            pid,
            points: points
                .into_iter()
                .map(|p| pb::PlacedPoint {
                    clause: p.clause,
                    point: p.point,
                    address: p.addr,
                    binary: p.file,
                    pending: p.pending,
                })
                .collect(),
        })),
    };
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    // The channel has room: the first message goes in at once.
    let _ = tx.try_send(Ok(started));
    let registry = Arc::clone(&svc.registry);
    let tracer = svc.tracer.clone();
    tokio::spawn(
        async move {
            let pump = Pump {
                shared: &shared,
                tx: &tx,
                every,
                clear,
                tracer: &tracer,
                engine: EngineId(engine_id),
                cpu_percent,
            };
            let gone = pump.run().await;
            if gone {
                debug!(engine = engine_id, "probe client gone: detaching");
            }
            registry.detach_later(engine_id);
        }
        .in_current_span(),
    );
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}

/// What moves a probe's reports to its client.
struct Pump<'a> {
    shared: &'a Shared,
    tx: &'a mpsc::Sender<Result<pb::ProbeReport, Status>>,
    every: Option<Duration>,
    clear: bool,
    tracer: &'a utrace_engines::Tracer,
    engine: EngineId,
    cpu_percent: u32,
}

/// How often a probe's cost is checked against its budget.
const BUDGET_WINDOW: Duration = Duration::from_secs(1);

impl Pump<'_> {
    /// Past its CPU budget over the last window (`cost` the estimate at
    /// its start, `since` when): the reason to end it.
    async fn overloaded(&self, cost: &mut u64, since: &mut tokio::time::Instant) -> Option<String> {
        let _ = self.tracer.flush_counts(self.engine).await;
        let now_cost = self
            .shared
            .cost_ns
            .load(std::sync::atomic::Ordering::Relaxed);
        let elapsed = since.elapsed().as_nanos().max(1) as f64;
        let used = (now_cost.saturating_sub(*cost)) as f64 / elapsed * 100.0;
        *cost = now_cost;
        *since = tokio::time::Instant::now();
        (used > f64::from(self.cpu_percent)).then(|| {
            format!(
                "overload: its hits took about {used:.0}% of a CPU from the program over the last \
                 second, past its budget of {}% (limits.cpu_percent); the program runs on unprobed",
                self.cpu_percent
            )
        })
    }

    /// Move the probe's events and snapshots to the client until it ends
    /// (true: the client went away first).
    async fn run(&self) -> bool {
        let (shared, tx, every, clear, tracer, engine) = (
            self.shared,
            self.tx,
            self.every,
            self.clear,
            self.tracer,
            self.engine,
        );
        let mut tick = every.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
        let mut budget =
            tokio::time::interval_at(tokio::time::Instant::now() + BUDGET_WINDOW, BUDGET_WINDOW);
        let (mut cost, mut since) = (0u64, tokio::time::Instant::now());
        loop {
            let (events, ended) = {
                let mut st = shared.lock();
                (std::mem::take(&mut st.events), st.ended.clone())
            };
            for ev in events {
                if tx.send(Ok(event(ev))).await.is_err() {
                    return true;
                }
            }
            if let Some(why) = ended {
                let last = snapshot(shared.snapshot(false), true);
                let end = pb::ProbeReport {
                    kind: Some(pb::probe_report::Kind::Ended(pb::ProbeEnded {
                        reason: why,
                    })),
                };
                return tx.send(Ok(last)).await.is_err() || tx.send(Ok(end)).await.is_err();
            }
            let next_tick = async {
                match tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shared.notify.notified() => {}
                () = next_tick => {
                    // Counted hits (no sample each) are read now. An engine
                    // gone meanwhile has ended: its final snapshot follows.
                    let _ = tracer.flush_counts(engine).await;
                    if tx.send(Ok(snapshot(shared.snapshot(clear), false))).await.is_err() {
                        return true;
                    }
                }
                () = tx.closed() => return true,
                _ = budget.tick() => {
                    if let Some(why) = self.overloaded(&mut cost, &mut since).await {
                        tracing::info!(engine = engine.0, "{why}");
                        shared.end(&why);
                        let _ = tracer.detach(engine).await;
                    }
                }
            }
        }
    }
}
