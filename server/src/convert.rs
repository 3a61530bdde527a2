//! The one place where engine-layer types become wire types and back.
//! Inbound conversion validates: a bad field is INVALID_ARGUMENT naming the
//! field and the fix.

use tonic::Status;
use utrace_engines::{
    AttachError, EngineOptions, Error, EventMask, ExitStatus, RunState, SpawnError, SyscallMode,
    SyscallSet, TaskInfo,
};
use utrace_proto::v1 as pb;
use utrace_proto::wire::{ReadsReply, ReadsRequest};

use crate::remote::{Expedite, MemRef, NamedRegister, Spec, SyncSpec};

/// An engine spec, validated.
pub struct EngineConfig {
    pub options: EngineOptions,
    pub spec: Spec,
    pub queue_len: usize,
}

/// The kinds an empty `events` list means: what strace shows.
fn default_events() -> EventMask {
    EventMask::SYSCALLS
        | EventMask::SIGNAL
        | EventMask::CLONE
        | EventMask::EXEC
        | EventMask::EXIT
        | EventMask::DEATH
        | EventMask::GROUP_STOP
}

fn kind_mask(k: pb::EventKind) -> EventMask {
    match k {
        pb::EventKind::Unspecified => EventMask::empty(),
        pb::EventKind::SyscallEntry => EventMask::SYSCALL_ENTRY,
        pb::EventKind::SyscallExit => EventMask::SYSCALL_EXIT,
        pb::EventKind::Signal => EventMask::SIGNAL,
        pb::EventKind::Clone => EventMask::CLONE,
        pb::EventKind::Exec => EventMask::EXEC,
        pb::EventKind::Exit => EventMask::EXIT,
        pb::EventKind::Death => EventMask::DEATH,
        pb::EventKind::Breakpoint => EventMask::BREAKPOINT,
        pb::EventKind::Step => EventMask::STEP,
        pb::EventKind::GroupStop => EventMask::GROUP_STOP,
        pb::EventKind::Watchpoint => EventMask::WATCHPOINT,
        pb::EventKind::ChildStart => EventMask::CHILD_START,
    }
}

/// A watchpoint op's fields (at `field`), checked: a message naming the
/// field and the rule when they are wrong.
fn watchpoint(
    addr: u64,
    len: u32,
    kind: i32,
    field: &str,
) -> Result<utrace_engines::Watchpoint, String> {
    use utrace_engines::WatchKind as K;
    let kind = match pb::WatchKind::try_from(kind) {
        Ok(pb::WatchKind::Execute) => K::Execute,
        Ok(pb::WatchKind::Write) => K::Write,
        Ok(pb::WatchKind::ReadWrite) => K::ReadWrite,
        Ok(pb::WatchKind::Unspecified) => {
            return Err(format!(
                "{field}.kind: unspecified; WATCH_KIND_EXECUTE, WATCH_KIND_WRITE or WATCH_KIND_READ_WRITE"
            ))
        }
        Err(_) => return Err(format!("{field}.kind: {kind} is not a WatchKind")),
    };
    utrace_engines::Watchpoint::new(addr, len.into(), kind)
        .map_err(|why| format!("{field}: {addr:#x}/{len}: {why}"))
}

/// The wire form of a watch kind.
pub fn watch_kind(k: utrace_engines::WatchKind) -> pb::WatchKind {
    match k {
        utrace_engines::WatchKind::Execute => pb::WatchKind::Execute,
        utrace_engines::WatchKind::Write => pb::WatchKind::Write,
        utrace_engines::WatchKind::ReadWrite => pb::WatchKind::ReadWrite,
    }
}

/// Validate `spec` (field path `field`, e.g. "engine").
pub fn engine_config(
    spec: Option<&pb::EngineSpec>,
    field: &str,
    ctx: &SpecContext,
) -> Result<EngineConfig, Status> {
    let (default_queue, max_queue) = (ctx.queue_len, ctx.max_queue_len);
    let empty = pb::EngineSpec::default();
    let spec = spec.unwrap_or(&empty);
    let mut wanted = EventMask::empty();
    for (i, raw) in spec.events.iter().enumerate() {
        match pb::EventKind::try_from(*raw) {
            Ok(pb::EventKind::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "{field}.events[{i}]: {raw} is not an event kind; use EVENT_KIND_SYSCALL_ENTRY, EVENT_KIND_SYSCALL_EXIT, EVENT_KIND_SIGNAL, EVENT_KIND_CLONE, EVENT_KIND_EXEC, EVENT_KIND_EXIT or EVENT_KIND_DEATH"
                )))
            }
            Ok(k) => wanted |= kind_mask(k),
        }
    }
    if spec.events.is_empty() {
        wanted = default_events();
    }
    let syscalls = if spec.syscalls.is_empty() {
        SyscallSet::all()
    } else {
        let mut set = SyscallSet::empty();
        for (i, name) in spec.syscalls.iter().enumerate() {
            let nr = utrace_engines::syscall_number(name.trim())
                .map_err(|e| Status::invalid_argument(format!("{field}.syscalls[{i}]: {e}")))?;
            set.insert(nr);
        }
        set
    };
    let expedite = expedite_config(spec.expedite.as_ref(), field)?;
    let sync = sync_config(spec, field, ctx)?;
    let queue_len = match spec.queue_len as usize {
        0 => default_queue,
        n if n > max_queue => {
            return Err(Status::invalid_argument(format!(
                "{field}.queue_len: {n} is over the server's limit of {max_queue}"
            )))
        }
        n => n,
    };
    let decode_hex = match spec.decode_hex {
        0 => utrace_engines::builtin::recorder::Hex::Never,
        1 => utrace_engines::builtin::recorder::Hex::NonAscii,
        2 => utrace_engines::builtin::recorder::Hex::All,
        n => {
            return Err(Status::invalid_argument(format!(
                "{field}.decode_hex: {n} is not 0 (escapes), 1 (-x) or 2 (-xx)"
            )))
        }
    };
    let decode_xlat = match spec.decode_xlat {
        0 => utrace_engines::builtin::recorder::Xlat::Abbrev,
        1 => utrace_engines::builtin::recorder::Xlat::Raw,
        2 => utrace_engines::builtin::recorder::Xlat::Verbose,
        n => {
            return Err(Status::invalid_argument(format!(
                "{field}.decode_xlat: {n} is not 0 (names), 1 (numbers, -X raw) or 2 (both, -X verbose)"
            )))
        }
    };
    let string_limit = match spec.decode_string_limit {
        None | Some(0) => utrace_engines::builtin::recorder::DEFAULT_STRING_LIMIT,
        Some(n) if n as usize > MAX_STRING_LIMIT => {
            return Err(Status::invalid_argument(format!(
                "{field}.decode_string_limit: {n} is over the limit of {MAX_STRING_LIMIT} bytes per string"
            )))
        }
        Some(n) => n as usize,
    };
    if spec.trace_paths.len() > MAX_TRACE_PATHS {
        return Err(Status::invalid_argument(format!(
            "{field}.trace_paths: {} paths; at most {MAX_TRACE_PATHS}",
            spec.trace_paths.len()
        )));
    }
    for (i, p) in spec.trace_paths.iter().enumerate() {
        if p.is_empty() || p.len() > 4096 || p.contains(&0) {
            return Err(Status::invalid_argument(format!(
                "{field}.trace_paths[{i}]: a path is 1 to 4096 bytes with no NUL (got {} bytes)",
                p.len()
            )));
        }
    }
    if !spec.trace_paths.is_empty() && !spec.decode {
        return Err(Status::invalid_argument(format!(
            "{field}.trace_paths: the paths are matched by the decoder: set decode"
        )));
    }
    // Internally the engine always sees clones and deaths (it ends the stream
    // when its last process is gone) and its own breakpoints' hits (its
    // client inserted them: they are always reported).
    let mut events = wanted
        | EventMask::CLONE
        | EventMask::DEATH
        | EventMask::BREAKPOINT
        | EventMask::WATCHPOINT;
    if spec.decode && wanted.contains(EventMask::SYSCALL_EXIT) {
        // An exit's text completes its entry's: the entry must be seen.
        events |= EventMask::SYSCALL_ENTRY;
    }
    // Breakpoints that need no stop are served by uprobes where they can
    // be (no ptrace stop, and nothing left behind if the server is
    // killed): an engine whose breakpoint reports do not hold, and whose
    // expedited data a hit carries (registers it samples, no memory).
    // A lossless engine's hits are int3 stops, which can wait for room.
    let breakpoint_hits = !spec.lossless
        && sync
            .as_ref()
            .is_none_or(|s| !s.hold.contains(EventMask::BREAKPOINT))
        && expedite.as_ref().is_none_or(|x| {
            x.memory.is_empty()
                && x.register_bytes.is_empty()
                && x.registers
                    .iter()
                    .all(|r| utrace_engines::BreakpointHit::REGISTERS.contains(&r.name.as_str()))
        });
    Ok(EngineConfig {
        options: EngineOptions {
            events,
            syscalls,
            follow_children: spec.follow_children,
            owner: None,
            breakpoint_hits,
            hit_stacks: false,
            system_times: spec.syscall_times,
        },
        spec: Spec {
            wanted,
            decode: spec.decode,
            string_limit,
            decode_fds: spec.decode_fds,
            decode_hex,
            decode_xlat,
            decode_fd_details: spec.decode_fd_details,
            decode_verbose: spec.decode_verbose,
            trace_paths: spec.trace_paths.iter().map(|p| p.to_vec()).collect(),
            follow_children: spec.follow_children,
            expedite,
            sync,
            lossless: spec.lossless,
            leave_at_exec: spec.leave_at_exec,
        },
        queue_len,
    })
}

/// Where an engine spec is being validated, and the server's bounds.
pub struct SpecContext {
    pub queue_len: usize,
    pub max_queue_len: usize,
    /// Inside a Session (sync engines allowed).
    pub session: bool,
    /// A held report's deadline when the spec sets none.
    pub decision_deadline: std::time::Duration,
}

impl SpecContext {
    pub fn new(limits: &crate::Limits, session: bool) -> Self {
        SpecContext {
            queue_len: limits.queue_len,
            max_queue_len: limits.max_queue_len,
            session,
            decision_deadline: limits.decision_deadline,
        }
    }
}

/// Paths an engine may watch (`EngineSpec.trace_paths`).
const MAX_TRACE_PATHS: usize = 256;

/// Registers an expedite may name, memory references, and bytes per reference.
const MAX_EXPEDITE_REGISTERS: usize = 64;
const MAX_EXPEDITE_MEMORY: usize = 16;
const MAX_EXPEDITE_LEN: u32 = 65_536;
/// Farthest an expedited read may start from its register (1 MiB).
const MAX_EXPEDITE_OFFSET: u32 = 1 << 20;
/// The longest deadline a client may ask for (a day).
const MAX_DEADLINE_MS: u32 = 86_400_000;
/// The longest `decode_string_limit` (strace's `-s`): a report's text stays
/// bounded.
const MAX_STRING_LIMIT: usize = 65_536;

fn register_8(name: &str, at: &str) -> Result<&'static utrace_engines::arch::RegDesc, Status> {
    match utrace_engines::arch::register(name) {
        None => Err(Status::invalid_argument(format!(
            "{at}: unknown register {name:?}; use names such as rip, rsp, rdi, rsi, rdx, r10, eflags, orig_rax"
        ))),
        Some(d) if d.size > 8 => Err(Status::invalid_argument(format!(
            "{at}: register {name} is {} bytes wide; expedite takes registers of at most 8 bytes",
            d.size
        ))),
        Some(d) => Ok(d),
    }
}

fn expedite_config(x: Option<&pb::Expedite>, field: &str) -> Result<Option<Expedite>, Status> {
    let Some(x) = x else { return Ok(None) };
    if x.registers.is_empty() && x.memory.is_empty() && x.register_bytes.is_empty() {
        return Ok(None);
    }
    let named = x.registers.len() + x.register_bytes.len();
    if named > MAX_EXPEDITE_REGISTERS || x.memory.len() > MAX_EXPEDITE_MEMORY {
        return Err(Status::invalid_argument(format!(
            "{field}.expedite: at most {MAX_EXPEDITE_REGISTERS} registers (registers and register_bytes together) and {MAX_EXPEDITE_MEMORY} memory references (got {named} and {})",
            x.memory.len()
        )));
    }
    let mut register_bytes = Vec::with_capacity(x.register_bytes.len());
    for (i, r) in x.register_bytes.iter().enumerate() {
        let name = r.trim();
        let Some(desc) = utrace_engines::arch::register(name) else {
            return Err(Status::invalid_argument(format!(
                "{field}.expedite.register_bytes[{i}]: unknown register {name:?}; the registers are {}",
                utrace_engines::arch::register_names()
            )));
        };
        register_bytes.push(NamedRegister {
            name: name.to_string(),
            desc,
        });
    }
    let mut registers = Vec::with_capacity(x.registers.len());
    for (i, r) in x.registers.iter().enumerate() {
        // Keep the client's spelling: it is the key in Expedited.registers.
        let desc = register_8(r.trim(), &format!("{field}.expedite.registers[{i}]"))?;
        registers.push(NamedRegister {
            name: r.trim().to_string(),
            desc,
        });
    }
    let mut memory = Vec::with_capacity(x.memory.len());
    for (i, m) in x.memory.iter().enumerate() {
        let at = format!("{field}.expedite.memory[{i}]");
        let register = register_8(m.register.trim(), &format!("{at}.register"))?;
        if m.len == 0 || m.len > MAX_EXPEDITE_LEN {
            return Err(Status::invalid_argument(format!(
                "{at}.len: {} is out of range; give 1 to {MAX_EXPEDITE_LEN} bytes",
                m.len
            )));
        }
        if m.offset.unsigned_abs() > MAX_EXPEDITE_OFFSET {
            return Err(Status::invalid_argument(format!(
                "{at}.offset: {} is out of range; give -{MAX_EXPEDITE_OFFSET} to {MAX_EXPEDITE_OFFSET}",
                m.offset
            )));
        }
        memory.push(MemRef {
            register,
            len: m.len as usize,
            string: m.string,
            offset: i64::from(m.offset),
        });
    }
    Ok(Some(Expedite {
        registers,
        memory,
        register_bytes,
    }))
}

fn sync_config(
    spec: &pb::EngineSpec,
    field: &str,
    ctx: &SpecContext,
) -> Result<Option<SyncSpec>, Status> {
    if !spec.sync {
        let stray = if spec.deadline_ms.is_some() {
            Some("deadline_ms")
        } else if spec.default_action != 0 {
            Some("default_action")
        } else if !spec.hold.is_empty() {
            Some("hold")
        } else if !spec.hold_syscalls.is_empty() {
            Some("hold_syscalls")
        } else {
            None
        };
        if let Some(f) = stray {
            return Err(Status::invalid_argument(format!(
                "{field}.{f}: only for a sync engine; set sync: true (in a Session) or leave it unset"
            )));
        }
        return Ok(None);
    }
    if !ctx.session {
        return Err(Status::invalid_argument(format!(
            "{field}.sync: a synchronous engine needs a stream to receive decisions on; spawn or attach it through the Session call, or leave sync false"
        )));
    }
    let deadline = match spec.deadline_ms {
        None => ctx.decision_deadline,
        Some(0) => {
            return Err(Status::invalid_argument(format!(
                "{field}.deadline_ms: 0 would resume every report before the client could decide; give a deadline in milliseconds (1 to {MAX_DEADLINE_MS}) or leave it unset for the server's default ({} ms)",
                ctx.decision_deadline.as_millis()
            )))
        }
        Some(ms) if ms > MAX_DEADLINE_MS => {
            return Err(Status::invalid_argument(format!(
                "{field}.deadline_ms: {ms} is over the limit of {MAX_DEADLINE_MS} (a day); to hold a task indefinitely, decide ACTION_HOLD"
            )))
        }
        Some(ms) => std::time::Duration::from_millis(u64::from(ms)),
    };
    let default_action = match pb::Action::try_from(spec.default_action) {
        Ok(pb::Action::Unspecified | pb::Action::Resume) => Action::Resume,
        Ok(pb::Action::Detach) => Action::Detach,
        Ok(a) => {
            return Err(Status::invalid_argument(format!(
                "{field}.default_action: {} cannot be a default (it would never end); use ACTION_RESUME or ACTION_DETACH",
                a.as_str_name()
            )))
        }
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "{field}.default_action: {} is not an action; use ACTION_RESUME or ACTION_DETACH",
                spec.default_action
            )))
        }
    };
    let mut hold = EventMask::empty();
    for (i, raw) in spec.hold.iter().enumerate() {
        match pb::EventKind::try_from(*raw) {
            Ok(pb::EventKind::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "{field}.hold[{i}]: {raw} is not an event kind"
                )))
            }
            Ok(pb::EventKind::Death) => {
                return Err(Status::invalid_argument(format!(
                    "{field}.hold[{i}]: a death report cannot hold (the thread is gone)"
                )))
            }
            Ok(k) => hold |= kind_mask(k),
        }
    }
    if spec.hold.is_empty() {
        hold = EventMask::all() - EventMask::DEATH;
    }
    let hold_syscalls = if spec.hold_syscalls.is_empty() {
        SyscallSet::all()
    } else {
        let mut set = SyscallSet::empty();
        for (i, name) in spec.hold_syscalls.iter().enumerate() {
            let nr = utrace_engines::syscall_number(name.trim()).map_err(|e| {
                Status::invalid_argument(format!("{field}.hold_syscalls[{i}]: {e}"))
            })?;
            set.insert(nr);
        }
        set
    };
    Ok(Some(SyncSpec {
        deadline,
        default_action,
        hold,
        hold_syscalls,
    }))
}

/// A SetEvents message (`field` is its path) as (the engine's mask, its
/// syscall set, the kinds the client wants told, the signals passed).
pub fn set_events(
    s: &pb::SetEvents,
    field: &str,
) -> Result<(EventMask, SyscallSet, EventMask, u64), Status> {
    let spec = pb::EngineSpec {
        events: s.events.clone(),
        syscalls: s.syscalls.clone(),
        ..Default::default()
    };
    let cfg = engine_config(Some(&spec), field, &SET_EVENTS_CTX)?;
    let passed = pass_signals(s, field)?;
    Ok((
        cfg.options.events,
        cfg.options.syscalls,
        cfg.spec.wanted,
        passed,
    ))
}

/// A SetEvents's `pass_signals` (`field` is its path) as a bit per
/// signal (bit `n - 1` for signal `n`): each must be a signal number,
/// 1-64, and at most 64 are given.
pub fn pass_signals(s: &pb::SetEvents, field: &str) -> Result<u64, Status> {
    if s.pass_signals.len() > 64 {
        return Err(Status::invalid_argument(format!(
            "{field}.pass_signals: {} given, at most 64 (one per signal)",
            s.pass_signals.len()
        )));
    }
    let mut bits = 0u64;
    for (i, &n) in s.pass_signals.iter().enumerate() {
        if !(1..=64).contains(&n) {
            return Err(Status::invalid_argument(format!(
                "{field}.pass_signals[{i}]: {n} is not a signal number (1-64)"
            )));
        }
        bits |= 1 << (n - 1);
    }
    Ok(bits)
}

/// A wire action (field path `field`).
pub fn action(raw: i32, field: &str) -> Result<Action, String> {
    match pb::Action::try_from(raw) {
        Ok(pb::Action::Resume) => Ok(Action::Resume),
        Ok(pb::Action::Step) => Ok(Action::SingleStep),
        Ok(pb::Action::Hold) => Ok(Action::Stop),
        Ok(pb::Action::Detach) => Ok(Action::Detach),
        _ => Err(format!(
            "{field}: {raw} is not an action; use ACTION_RESUME, ACTION_STEP, ACTION_HOLD or ACTION_DETACH"
        )),
    }
}

/// A signal number to deliver (0: none), field path `field`.
pub fn signal(raw: i32, field: &str) -> Result<i32, String> {
    if (0..=64).contains(&raw) {
        Ok(raw)
    } else {
        Err(format!(
            "{field}: {raw} is not a signal number (1-64, or 0 for none)"
        ))
    }
}

/// An engine-layer error as a gRPC status with the cause in words.
pub fn status(e: Error) -> Status {
    let msg = e.to_string();
    match e {
        Error::Attach(a) => match a {
            AttachError::NoSuchProcess { .. } => Status::not_found(msg),
            AttachError::SelfOrAncestor { .. }
            | AttachError::KernelThread { .. }
            | AttachError::PermissionDenied { .. } => Status::permission_denied(msg),
            AttachError::AlreadyTraced { .. } | AttachError::Zombie { .. } => {
                Status::failed_precondition(msg)
            }
            AttachError::Other { .. } => Status::internal(msg),
        },
        Error::Spawn(s) => match s {
            SpawnError::EmptyArgv | SpawnError::NulByte(_) => Status::invalid_argument(msg),
            SpawnError::NotFound { .. } => Status::not_found(msg),
            SpawnError::Exec { errno, .. }
                if errno == nix::errno::Errno::EACCES || errno == nix::errno::Errno::EPERM =>
            {
                Status::permission_denied(msg)
            }
            SpawnError::Exec { .. } => Status::failed_precondition(msg),
            SpawnError::Cwd {
                errno: nix::errno::Errno::EACCES,
                ..
            } => Status::permission_denied(msg),
            SpawnError::Cwd { .. } => Status::invalid_argument(msg),
            SpawnError::NotTraceable { .. } => Status::permission_denied(msg),
            SpawnError::Setup { .. } | SpawnError::Fork(_) => Status::internal(msg),
        },
        Error::NoSuchEngine(_)
        | Error::NotOnProcess { .. }
        | Error::NoSuchTask(_)
        | Error::TaskExited(_)
        | Error::NoBreakpoint { .. }
        | Error::NoWatchpoint { .. } => Status::not_found(msg),
        Error::BreakpointAddress { .. }
        | Error::BadWatchpoint { .. }
        | Error::SharedRegister { .. } => Status::invalid_argument(msg),
        Error::NoDebugSlot { .. } => Status::resource_exhausted(msg),
        Error::NotAttached { .. }
        | Error::NotStopped(_)
        | Error::StopGone { .. }
        | Error::NotAtSyscall { .. }
        | Error::WrongStop { .. } => Status::failed_precondition(msg),
        Error::UnknownRegister(_) | Error::WideRegister { .. } | Error::RegisterSize { .. } => {
            Status::invalid_argument(msg)
        }
        Error::TracerGone => Status::unavailable(msg),
        Error::KernelTooOld { .. } | Error::Start(_) | Error::Sys { .. } => Status::internal(msg),
    }
}

pub fn exit_status(s: ExitStatus) -> pb::ExitStatus {
    match s {
        ExitStatus::Exited(code) => pb::ExitStatus {
            code,
            signal: 0,
            core_dumped: false,
        },
        ExitStatus::Signaled { signo, core_dumped } => pb::ExitStatus {
            code: 0,
            signal: signo,
            core_dumped,
        },
    }
}

pub fn task_info(t: &TaskInfo) -> pb::TaskInfo {
    pb::TaskInfo {
        tid: t.tid as u32,
        pid: t.pid as u32,
        state: match t.state {
            RunState::Running => "running",
            RunState::Stopped => "stopped",
            RunState::GroupStop => "group-stop",
        }
        .into(),
        syscall_mode: match t.mode {
            SyscallMode::Seccomp => "seccomp",
            SyscallMode::Ptrace => "ptrace",
        }
        .into(),
        engines: t.engines.iter().map(|e| e.0).collect(),
        holds: t.holds.iter().map(|e| e.0).collect(),
        holders: Vec::new(),
        comm: utrace_engines::sys::read_small(&format!("/proc/{}/comm", t.tid))
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        stops: t.stops,
        syscall_stops: t.syscall_stops,
    }
}

/// A process's syscall table, for `GetActivity`.
pub fn process_activity(p: &utrace_engines::ProcActivity) -> pb::ProcessActivity {
    pb::ProcessActivity {
        pid: p.pid as u32,
        syscalls: p
            .syscalls
            .iter()
            .map(|c| pb::SyscallCount {
                nr: c.nr,
                name: c.name.unwrap_or_default().to_string(),
                arch: c.arch,
                count: c.count,
                other: c.other,
            })
            .collect(),
    }
}

/// An engine and its counters, for `GetActivity`.
pub fn engine_activity(e: &crate::registry::EngineSummary) -> pb::EngineActivity {
    use std::sync::atomic::Ordering::Relaxed;
    let t = &e.tally;
    pb::EngineActivity {
        engine_id: e.id,
        pid: e.pid,
        client_pid: e.client_pid,
        client_uid: e.client_uid,
        kind: e.kind.to_string(),
        reports_sent: t.sent.load(Relaxed),
        reports_dropped: t.dropped.load(Relaxed),
        batches: t.batches.load(Relaxed),
        batch_ops: t.batch_ops.load(Relaxed),
        batch_ns: t.batch_ns.load(Relaxed),
        batch_max_ns: t.batch_max_ns.load(Relaxed),
    }
}

// ---- Batch -------------------------------------------------------------------

use utrace_engines::batch::{Op, OpErrorKind, OpResult};
use utrace_engines::Action;

/// Validation context of a set_events op (only its kinds and syscalls count).
const SET_EVENTS_CTX: SpecContext = SpecContext {
    queue_len: 1,
    max_queue_len: 1,
    session: false,
    decision_deadline: std::time::Duration::from_secs(1),
};

/// A batch, validated: the ops to run (in request order) and, for every op
/// of the request, where its result comes from.
pub struct Planned {
    ops: Vec<Op>,
    slots: Vec<Slot>,
}

impl Planned {
    fn with_capacity(n: usize) -> Planned {
        Planned {
            ops: Vec::with_capacity(n),
            slots: Vec::new(),
        }
    }

    fn run(&mut self, op: Op) {
        self.ops.push(op);
        match self.slots.last_mut() {
            Some(Slot::Run(n)) => *n += 1,
            _ => self.slots.push(Slot::Run(1)),
        }
    }

    fn answer(&mut self, r: pb::OpResult) {
        self.slots.push(Slot::Ready(r));
    }
}

fn op_error(code: &str, message: String) -> pb::OpResult {
    pb::OpResult {
        result: Some(pb::op_result::Result::Error(pb::OpError {
            code: code.into(),
            message,
        })),
    }
}

/// A batch's last set_events op: its index, the kinds the client is to be
/// told, and the signals passed (a bit per signal).
pub type NewEvents = (usize, EventMask, u64);

/// Validate and authorize a batch. Past a limit the whole call is refused;
/// a bad or forbidden op is answered in its own result.
pub fn batch_ops(
    ops: Vec<pb::Op>,
    observe_only: bool,
    limits: &crate::Limits,
) -> Result<(Planned, Option<NewEvents>), Status> {
    let mut new_wanted = None;
    check_op_count(ops.len(), limits)?;
    let mut total = 0usize;
    let mut out = Planned::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        let Some(op) = op.op else {
            out.answer(op_error(
                "INVALID_ARGUMENT",
                format!(
                    "ops[{i}]: empty op; set one of read_memory, write_memory, get_registers, …"
                ),
            ));
            continue;
        };
        use pb::op::Op as P;
        let bytes = match &op {
            P::ReadMemory(r) => r.len as usize,
            P::WriteMemory(w) => w.data.len(),
            P::ReadString(r) => r.max_len as usize,
            _ => 0,
        };
        check_op_bytes(i, bytes, &mut total, limits)?;
        let planned = match op {
            P::ReadMemory(r) => Ok(Op::ReadMemory {
                addr: r.addr,
                len: r.len as usize,
            }),
            P::WriteMemory(w) => Ok(Op::WriteMemory {
                addr: w.addr,
                data: w.data.into(),
            }),
            P::ReadString(r) => Ok(Op::ReadString {
                addr: r.addr,
                max_len: if r.max_len == 0 {
                    4096
                } else {
                    r.max_len as usize
                },
            }),
            P::GetRegisters(g) => Ok(Op::GetRegisters { names: g.names }),
            P::SetRegisters(s) => {
                let mut values: Vec<(String, u64)> = s.values.into_iter().collect();
                values.sort();
                Ok(Op::SetRegisters { values })
            }
            P::GetRegisterBytes(g) => Ok(Op::GetRegisterBytes { names: g.names }),
            P::SetRegisterBytes(s) => {
                let mut values: Vec<(String, Vec<u8>)> =
                    s.values.into_iter().map(|(n, v)| (n, v.to_vec())).collect();
                values.sort();
                Ok(Op::SetRegisterBytes { values })
            }
            P::UpdateRegisterBits(u) => Ok(Op::UpdateRegisterBits {
                name: u.name,
                set: u.set,
                clear: u.clear,
            }),
            P::GetEvents(_) => Ok(Op::GetEvents),
            P::SetEvents(s) => {
                let spec = pb::EngineSpec {
                    events: s.events.clone(),
                    syscalls: s.syscalls.clone(),
                    ..Default::default()
                };
                let field = format!("ops[{i}].set_events");
                match engine_config(Some(&spec), &field, &SET_EVENTS_CTX)
                    .and_then(|cfg| Ok((cfg, pass_signals(&s, &field)?)))
                {
                    Ok((cfg, passed)) => {
                        new_wanted = Some((i, cfg.spec.wanted, passed));
                        Ok(Op::SetEvents {
                            events: cfg.options.events,
                            syscalls: Box::new(cfg.options.syscalls),
                        })
                    }
                    Err(st) => Err(op_error("INVALID_ARGUMENT", st.message().to_string())),
                }
            }
            P::InsertBreakpoint(b) if b.symbol.is_empty() => {
                Ok(Op::InsertBreakpoint { addr: b.addr })
            }
            P::InsertBreakpoint(b) if b.addr != 0 => Err(op_error(
                "INVALID_ARGUMENT",
                format!("ops[{i}].insert_breakpoint: give addr or symbol, not both"),
            )),
            P::InsertBreakpoint(b) if b.symbol.len() > 4096 => Err(op_error(
                "INVALID_ARGUMENT",
                format!("ops[{i}].insert_breakpoint.symbol: longer than 4096 bytes"),
            )),
            P::InsertBreakpoint(b) => Ok(Op::InsertBreakpointAt { symbol: b.symbol }),
            P::RemoveBreakpoint(b) => Ok(Op::RemoveBreakpoint { addr: b.addr }),
            P::SetStepRange(r) => Ok(Op::SetStepRange {
                start: r.start,
                end: r.end,
            }),
            P::InsertWatchpoint(w) => watchpoint(
                w.addr,
                w.len,
                w.kind,
                &format!("ops[{i}].insert_watchpoint"),
            )
            .map(Op::InsertWatchpoint)
            .map_err(|m| op_error("INVALID_ARGUMENT", m)),
            P::RemoveWatchpoint(w) => watchpoint(
                w.addr,
                w.len,
                w.kind,
                &format!("ops[{i}].remove_watchpoint"),
            )
            .map(Op::RemoveWatchpoint)
            .map_err(|m| op_error("INVALID_ARGUMENT", m)),
            P::Control(c) => action(c.action, &format!("ops[{i}].control.action"))
                .and_then(|action| {
                    let signal = c
                        .signal
                        .map(|s| signal(s, &format!("ops[{i}].control.signal")))
                        .transpose()?;
                    Ok(Op::Control { action, signal })
                })
                .map_err(|m| op_error("INVALID_ARGUMENT", m)),
            P::GetSyscall(_) => Ok(Op::GetSyscall),
            P::SetSyscallReturn(s) => Ok(Op::SetSyscallReturn { value: s.value }),
            P::ReadMaps(_) => Ok(Op::ReadMaps),
            P::SendSignal(s) => signal(s.signo, &format!("ops[{i}].send_signal.signo"))
                .and_then(|signo| {
                    if signo == 0 {
                        Err(format!("ops[{i}].send_signal.signo: 0 is no signal (1-64)"))
                    } else {
                        Ok(Op::SendSignal { signo })
                    }
                })
                .map_err(|m| op_error("INVALID_ARGUMENT", m)),
        };
        match planned {
            Ok(op) if observe_only && !op.is_observe() => out.answer(op_error(
                "PERMISSION_DENIED",
                format!("ops[{i}]: this client may only observe (the server lists its uid under --observe-only); reads and get_* ops are allowed"),
            )),
            Ok(op) => out.run(op),
            Err(answer) => out.answer(answer),
        }
    }
    Ok((out, new_wanted))
}

fn check_op_count(n: usize, limits: &crate::Limits) -> Result<(), Status> {
    if n > limits.max_batch_ops {
        return Err(Status::invalid_argument(format!(
            "ops: {n} ops is over the limit of {} per batch (--max-batch-ops); split the batch",
            limits.max_batch_ops
        )));
    }
    Ok(())
}

/// Op `i` moves `bytes`; `total` is what the ops before it move.
fn check_op_bytes(
    i: usize,
    bytes: usize,
    total: &mut usize,
    limits: &crate::Limits,
) -> Result<(), Status> {
    if bytes > limits.max_op_bytes {
        return Err(Status::invalid_argument(format!(
            "ops[{i}]: {bytes} bytes is over the limit of {} bytes per op (--max-op-bytes)",
            limits.max_op_bytes
        )));
    }
    *total += bytes;
    if *total > limits.max_batch_bytes {
        return Err(Status::resource_exhausted(format!(
            "ops: the batch moves more than the limit of {} bytes (--max-batch-bytes); split it",
            limits.max_batch_bytes
        )));
    }
    Ok(())
}

/// A batch made only of `read_memory` ops (at least one), as ranges. Such
/// a batch runs as one scatter read whose reply is encoded from the read
/// buffer ([`check_read_ranges`], [`reads_reply`]); reads are allowed to
/// observe-only clients. The server's decoder gives most such batches as
/// ranges already (`WireBatchRequest::Reads`); this finds the others.
pub fn as_reads(r: &pb::BatchRequest) -> Option<ReadsRequest> {
    let ranges = r
        .ops
        .iter()
        .map(|o| match &o.op {
            Some(pb::op::Op::ReadMemory(m)) => Some((m.addr, m.len as usize)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    if ranges.is_empty() {
        return None;
    }
    Some(ReadsRequest {
        engine_id: r.engine_id,
        tid: r.tid,
        ranges,
        stop_on_error: r.stop_on_error,
        interrupt: r.interrupt,
    })
}

/// The ranges of a batch of reads, checked against the limits as
/// [`batch_ops`] checks them (same order, same messages).
pub fn check_read_ranges(
    ranges: Vec<(u64, usize)>,
    limits: &crate::Limits,
) -> Result<Vec<(u64, usize)>, Status> {
    check_op_count(ranges.len(), limits)?;
    let mut total = 0usize;
    for (i, &(_, len)) in ranges.iter().enumerate() {
        check_op_bytes(i, len, &mut total, limits)?;
    }
    Ok(ranges)
}

/// The reply of a batch of reads: the scatter read of `ranges`, each
/// range's result as [`op_result`] would give it.
pub fn reads_reply(
    ranges: Vec<(u64, usize)>,
    read: utrace_engines::ScatterRead,
    stop_on_error: bool,
) -> ReadsReply {
    let got = read.got.map(|g| {
        g.into_iter()
            .map(|g| (g.len, g.error.map(|e| e.to_string()).unwrap_or_default()))
            .collect()
    });
    ReadsReply {
        buf: read.buf,
        ranges,
        got,
        stop_on_error,
    }
}

/// Where results come from, in request order: the next `n` executor
/// results, a ready answer, or `n` ops not run (`skipped`).
pub enum Slot {
    Run(usize),
    Ready(pb::OpResult),
    Skipped(usize),
}

/// Split a plan into the ops to run and the slots to merge back. Under
/// `stop_on_error`, nothing after the first pre-answered error runs.
pub fn split_plan(planned: Planned, stop_on_error: bool) -> (Vec<Op>, Vec<Slot>) {
    let Planned { mut ops, mut slots } = planned;
    if !stop_on_error {
        return (ops, slots);
    }
    let Some(first) = slots.iter().position(|s| matches!(s, Slot::Ready(_))) else {
        return (ops, slots);
    };
    // The ops before the first answer run; every later op is skipped.
    let runs: usize = slots[..first]
        .iter()
        .map(|s| match s {
            Slot::Run(n) => *n,
            _ => 0,
        })
        .sum();
    let rest: usize = slots[first + 1..]
        .iter()
        .map(|s| match s {
            Slot::Run(n) | Slot::Skipped(n) => *n,
            Slot::Ready(_) => 1,
        })
        .sum();
    ops.truncate(runs);
    slots.truncate(first + 1);
    if rest > 0 {
        slots.push(Slot::Skipped(rest));
    }
    (ops, slots)
}

/// Merge executor results back into request order. Under `stop_on_error`,
/// everything after the first failure (run or pre-answered) is `skipped`.
/// `get_events` shows the kinds the client asked for (`wanted`), not the
/// engine's internal mask.
pub fn merge_results(
    slots: Vec<Slot>,
    results: Vec<OpResult>,
    stop_on_error: bool,
    wanted: EventMask,
) -> Vec<pb::OpResult> {
    let total: usize = slots
        .iter()
        .map(|s| match s {
            Slot::Run(n) | Slot::Skipped(n) => *n,
            Slot::Ready(_) => 1,
        })
        .sum();
    let mut results = results.into_iter();
    let mut failed = false;
    let mut out = Vec::with_capacity(total);
    for s in slots {
        match s {
            Slot::Run(n) => {
                for _ in 0..n {
                    let r = match results.next() {
                        Some(r) if !(failed && stop_on_error) => r,
                        _ => {
                            out.push(skipped());
                            continue;
                        }
                    };
                    failed |= matches!(&r, OpResult::Error(_))
                        || matches!(&r, OpResult::Memory(m) if m.error.is_some());
                    out.push(match r {
                        OpResult::Events { syscalls, .. } => op_result(OpResult::Events {
                            events: wanted,
                            syscalls,
                        }),
                        other => op_result(other),
                    });
                }
            }
            Slot::Ready(r) => {
                out.push(if failed && stop_on_error {
                    skipped()
                } else {
                    r
                });
                failed = true;
            }
            Slot::Skipped(n) => out.extend((0..n).map(|_| skipped())),
        }
    }
    out
}

fn skipped() -> pb::OpResult {
    pb::OpResult {
        result: Some(pb::op_result::Result::Skipped(pb::Skipped {})),
    }
}

/// An engine-layer op result as a wire result.
pub fn op_result(r: OpResult) -> pb::OpResult {
    use pb::op_result::Result as R;
    let result = match r {
        OpResult::Memory(m) => R::Memory(pb::Memory {
            data: m.data,
            addr: m.addr,
            error: m.error.map(|e| e.to_string()).unwrap_or_default(),
        }),
        OpResult::Registers(v) => R::Registers(pb::Registers {
            values: v.into_iter().collect(),
        }),
        OpResult::RegisterBytes(v) => R::RegisterBytes(pb::RegisterBytes {
            values: v.into_iter().map(|(n, b)| (n, b.into())).collect(),
        }),
        OpResult::Events { events, syscalls } => R::Events(pb::EventsState {
            events: event_kinds(events),
            syscalls: if syscalls.is_all() {
                Vec::new()
            } else {
                syscalls
                    .iter()
                    .map(|n| {
                        utrace_engines::syscall_name(n)
                            .map(str::to_string)
                            .unwrap_or_else(|| n.to_string())
                    })
                    .collect()
            },
        }),
        OpResult::Syscall(s) => R::Syscall(match s {
            Some(s) => pb::Syscall {
                in_syscall: true,
                nr: s.entry.nr,
                name: s.entry.name().unwrap_or_default().to_string(),
                args: s.entry.args.to_vec(),
                ret: s.ret,
            },
            None => pb::Syscall::default(),
        }),
        OpResult::Maps(text) => R::Maps(pb::Maps { text }),
        OpResult::Breakpoint(addr) => R::Breakpoint(pb::BreakpointSet { addr }),
        OpResult::Done => R::Done(pb::Done {}),
        OpResult::Error(e) => R::Error(pb::OpError {
            code: match e.kind {
                OpErrorKind::InvalidArgument => "INVALID_ARGUMENT",
                OpErrorKind::FailedPrecondition => "FAILED_PRECONDITION",
                OpErrorKind::Fault => "EFAULT",
                OpErrorKind::NotFound => "NOT_FOUND",
                OpErrorKind::ResourceExhausted => "RESOURCE_EXHAUSTED",
                OpErrorKind::Internal => "INTERNAL",
            }
            .into(),
            message: e.message,
        }),
        OpResult::Skipped => R::Skipped(pb::Skipped {}),
    };
    pb::OpResult {
        result: Some(result),
    }
}

fn event_kinds(m: EventMask) -> Vec<i32> {
    let mut v = Vec::new();
    for (bit, kind) in [
        (EventMask::SYSCALL_ENTRY, pb::EventKind::SyscallEntry),
        (EventMask::SYSCALL_EXIT, pb::EventKind::SyscallExit),
        (EventMask::SIGNAL, pb::EventKind::Signal),
        (EventMask::CLONE, pb::EventKind::Clone),
        (EventMask::EXEC, pb::EventKind::Exec),
        (EventMask::EXIT, pb::EventKind::Exit),
        (EventMask::DEATH, pb::EventKind::Death),
        (EventMask::STEP, pb::EventKind::Step),
        (EventMask::BREAKPOINT, pb::EventKind::Breakpoint),
        (EventMask::WATCHPOINT, pb::EventKind::Watchpoint),
        (EventMask::CHILD_START, pb::EventKind::ChildStart),
    ] {
        if m.contains(bit) {
            v.push(kind as i32);
        }
    }
    v
}

/// The default chunk of a ReadMemoryStream. With 1 MiB chunks, perf showed
/// page faults (fresh buffers) in the read, the encoding and the socket
/// reads, and 64 MiB streamed about 14% slower here (the batch bench's
/// row 6); buffers of 64 KiB are reused from the allocator's heap.
const STREAM_CHUNK: u64 = 64 << 10;

/// Validate a ReadMemoryStream request: the end address and the chunk
/// length.
pub fn memory_stream(
    r: &pb::ReadMemoryStreamRequest,
    limits: &crate::Limits,
) -> Result<(u64, u64), Status> {
    if r.len == 0 {
        return Err(Status::invalid_argument("len: 0 bytes; ask for at least 1"));
    }
    let end = r.addr.checked_add(r.len).ok_or_else(|| {
        Status::invalid_argument(format!(
            "len: {} bytes at addr {:#x} pass the end of the address space; ask for at most {}",
            r.len,
            r.addr,
            u64::MAX - r.addr
        ))
    })?;
    let chunk = match u64::from(r.chunk_len) {
        0 => STREAM_CHUNK,
        n if n > limits.max_op_bytes as u64 => {
            return Err(Status::invalid_argument(format!(
                "chunk_len: {n} bytes is over the limit of {} bytes per op (--max-op-bytes); 0 means 64 KiB",
                limits.max_op_bytes
            )))
        }
        n => n,
    };
    Ok((end, chunk))
}
