//! The one place where engine-layer types become wire types and back.
//! Inbound conversion validates: a bad field is INVALID_ARGUMENT naming the
//! field and the fix.

use tonic::Status;
use utrace_engines::{
    AttachError, EngineOptions, Error, EventMask, ExitStatus, RunState, SpawnError, SyscallMode,
    SyscallSet, TaskInfo,
};
use utrace_proto::v1 as pb;

use crate::remote::Spec;

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
        pb::EventKind::Breakpoint => EventMask::empty(),
        pb::EventKind::Step => EventMask::STEP,
    }
}

/// Validate `spec` (field path `field`, e.g. "engine").
pub fn engine_config(
    spec: Option<&pb::EngineSpec>,
    field: &str,
    default_queue: usize,
    max_queue: usize,
) -> Result<EngineConfig, Status> {
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
            Ok(pb::EventKind::Breakpoint) | Ok(pb::EventKind::Step) => {
                return Err(Status::invalid_argument(format!(
                    "{field}.events[{i}]: breakpoints and steps come with Batch, which this server does not implement yet"
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
    if spec.sync {
        return Err(Status::invalid_argument(format!(
            "{field}.sync: synchronous engines run over the Session call, which this server does not implement yet; leave sync false"
        )));
    }
    let queue_len = match spec.queue_len as usize {
        0 => default_queue,
        n if n > max_queue => {
            return Err(Status::invalid_argument(format!(
                "{field}.queue_len: {n} is over the server's limit of {max_queue}"
            )))
        }
        n => n,
    };
    // Internally the engine always sees clones and deaths: it ends the stream
    // when its last process is gone.
    let mut events = wanted | EventMask::CLONE | EventMask::DEATH;
    if spec.decode {
        // Decoded text is assembled over entry and exit.
        if wanted.intersects(EventMask::SYSCALLS) {
            events |= EventMask::SYSCALLS;
        }
    }
    Ok(EngineConfig {
        options: EngineOptions {
            events,
            syscalls,
            follow_children: spec.follow_children,
        },
        spec: Spec {
            wanted,
            decode: spec.decode,
            follow_children: spec.follow_children,
        },
        queue_len,
    })
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
            SpawnError::Setup { .. } | SpawnError::Fork(_) => Status::internal(msg),
        },
        Error::NoSuchEngine(_) | Error::NoSuchTask(_) | Error::TaskExited(_) => {
            Status::not_found(msg)
        }
        Error::NotAttached { .. } | Error::NotStopped(_) | Error::WrongStop { .. } => {
            Status::failed_precondition(msg)
        }
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
        comm: std::fs::read_to_string(format!("/proc/{}/comm", t.tid))
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}
