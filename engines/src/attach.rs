//! Attaching to a running process: checks that name the cause of a refusal
//! (never a bare EPERM), then `PTRACE_SEIZE` of every thread.

use std::collections::BTreeSet;

use std::os::fd::OwnedFd;

use tracing::debug;

use crate::access::{self, Denied, Owner, ProcStatus};
use crate::core::{Core, BASE_OPTIONS};
use crate::engine::{Engine, EngineId, EngineOptions};
use crate::error::{AttachError, Result};
use crate::sys::{self, Errno, Tid};

/// An engine attached to a running process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    pub engine: EngineId,
    /// The process's threads at attach time.
    pub tids: Vec<Tid>,
}

/// Our process and its ancestors, up to init.
fn ancestors() -> BTreeSet<Tid> {
    let mut out = BTreeSet::new();
    let mut pid = std::process::id() as Tid;
    while pid > 0 && out.insert(pid) {
        pid = ProcStatus::of(pid).map_or(0, |s| s.ppid);
    }
    out
}

fn comm(pid: Tid) -> String {
    crate::sys::read_small(&format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Refusals we can tell before trying.
pub(crate) fn precheck(pid: Tid) -> Result<(), AttachError> {
    if pid <= 0 {
        return Err(AttachError::NoSuchProcess { pid });
    }
    let Some(st) = ProcStatus::of(pid) else {
        return Err(AttachError::NoSuchProcess { pid });
    };
    if ancestors().contains(&pid) {
        return Err(AttachError::SelfOrAncestor { pid });
    }
    if matches!(st.state, 'Z' | 'X') {
        return Err(AttachError::Zombie { pid });
    }
    if pid == 2 || st.ppid == 2 {
        return Err(AttachError::KernelThread { pid });
    }
    if st.tracer != 0 {
        return Err(AttachError::AlreadyTraced {
            pid,
            tracer: st.tracer,
            tracer_name: comm(st.tracer),
        });
    }
    Ok(())
}

/// Explain an EPERM from PTRACE_SEIZE.
pub(crate) fn explain_eperm(pid: Tid) -> AttachError {
    let yama = access::yama_scope();
    let euid = nix::unistd::geteuid().as_raw();
    let cause = match (yama, ProcStatus::of(pid)) {
        (Some(3), _) => "Yama ptrace_scope is 3: attaching is disabled on this system until reboot".to_string(),
        (Some(2), _) if euid != 0 => {
            "Yama ptrace_scope is 2: only a tracer with CAP_SYS_PTRACE may attach".to_string()
        }
        (_, Some(st)) if euid != 0 && st.uids[..3].iter().any(|u| *u != euid) => format!(
            "uid mismatch: the process runs as uid {}/{}/{} (real/effective/saved) and the tracer as uid {euid}",
            st.uids[0], st.uids[1], st.uids[2]
        ),
        (Some(1), _) if euid != 0 => {
            "Yama ptrace_scope is 1: only ancestors of a process (or a tracer it names with PR_SET_PTRACER) may attach".to_string()
        }
        _ => "the process is not dumpable (setuid/setgid, or prctl(PR_SET_DUMPABLE, 0)) or a security module refused".to_string(),
    };
    AttachError::PermissionDenied { pid, cause }
}

/// The owner's rights over `pid`, as an attach error.
fn owner_may(owner: Option<&Owner>, pid: Tid) -> Result<(), AttachError> {
    match owner.map(|o| access::check(o, pid)) {
        None | Some(Ok(())) => Ok(()),
        Some(Err(Denied::NoProcess { .. })) => Err(AttachError::NoSuchProcess { pid }),
        Some(Err(why)) => Err(AttachError::PermissionDenied {
            pid,
            cause: why.to_string(),
        }),
    }
}

/// Attach a new engine to the process `pidfd` names (`pid`, any thread of
/// it), seizing every thread unless another engine traces it already.
///
/// The engine's owner (if any) must be allowed by [`access::check`]: asked
/// first (no process is seized for a caller refused outright), and again
/// once every thread is seized, when the answer is final (a traced process
/// cannot change credentials but by exec, which is checked then). The
/// pidfd, taken when the caller named the pid, is checked after the seize:
/// if that process is gone, the pid may now be another's, and nothing is
/// attached.
pub(crate) fn attach(
    core: &mut Core,
    pid: Tid,
    pidfd: &OwnedFd,
    engine: Box<dyn Engine>,
    eopts: EngineOptions,
) -> Result<Attached> {
    let owner = eopts.owner.clone();
    if let Some(leader) = core.tasks.get(&pid).map(|t| t.proc as Tid) {
        // Traced already (by another engine here): join its process.
        if !sys::pidfd_alive(pidfd) {
            return Err(AttachError::NoSuchProcess { pid }.into());
        }
        owner_may(owner.as_deref(), leader)?;
        let id = core.add_engine(engine, eopts);
        let tids = core.join_proc(leader, id);
        return Ok(Attached { engine: id, tids });
    }
    precheck(pid)?;
    owner_may(owner.as_deref(), pid)?;
    // Seize every thread; threads created meanwhile by a seized thread are
    // auto-attached (TRACECLONE), so loop until a listing brings nothing new.
    let mut seized: Vec<Tid> = Vec::new();
    loop {
        let mut new = 0;
        let dir = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map_err(|_| AttachError::NoSuchProcess { pid })?;
        for entry in dir.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<Tid>().ok())
            else {
                continue;
            };
            if seized.contains(&tid) {
                continue;
            }
            match sys::seize(tid, BASE_OPTIONS) {
                Ok(()) => {
                    seized.push(tid);
                    new += 1;
                }
                Err(Errno::ESRCH) if tid != pid => continue, // the thread exited meanwhile
                Err(e) => {
                    for t in &seized {
                        let _ = sys::interrupt(*t);
                    }
                    // Seized threads are released when they stop (see below).
                    let err = match e {
                        Errno::EPERM => explain_eperm(pid),
                        Errno::ESRCH => AttachError::NoSuchProcess { pid },
                        errno => AttachError::Other { pid, errno },
                    };
                    release_partial(&seized);
                    return Err(err.into());
                }
            }
        }
        if new == 0 {
            break;
        }
    }
    // Seized: its pid cannot be reused now. Is it still the process the
    // caller named, and may the owner trace it as it is now?
    let settled = if sys::pidfd_alive(pidfd) {
        owner_may(owner.as_deref(), pid)
    } else {
        Err(AttachError::NoSuchProcess { pid })
    };
    if let Err(e) = settled {
        for t in &seized {
            let _ = sys::interrupt(*t);
        }
        release_partial(&seized);
        return Err(e.into());
    }
    let id = core.add_engine(engine, eopts);
    core.new_proc(pid, vec![id], None);
    for &tid in &seized {
        core.new_task(tid, pid);
        // Stop it once, so the next resume applies the engines' mode (and a
        // group-stopped process is seen as such).
        core.interrupt(tid);
    }
    debug!(pid, threads = seized.len(), engine = %id, "attached");
    Ok(Attached {
        engine: id,
        tids: seized,
    })
}

/// Undo a partial attach: wait for each seized thread's interrupt stop and
/// detach it. Bounded: a thread that does not stop within the retries is left
/// to the kernel, which detaches it when the tracer thread exits.
fn release_partial(seized: &[Tid]) {
    for &tid in seized {
        for _ in 0..100 {
            match sys::wait_pid(tid, libc::WNOHANG) {
                Ok(Some(ws)) if libc::WIFSTOPPED(ws.status) => {
                    let _ = sys::detach(tid, 0);
                    break;
                }
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }
}
