//! The kernel's ptrace access rule, decided for somebody else.
//!
//! utraced is root, so the kernel lets it trace anything; a client must get
//! only what its own credentials would get from `ptrace(PTRACE_SEIZE)`. This
//! module is the one place that rule lives. It follows the kernel's
//! `__ptrace_may_access` in `PTRACE_MODE_ATTACH_REALCREDS` mode and the two
//! security modules that take part in it:
//!
//! 1. The caller may go on if it has `CAP_SYS_PTRACE` in the target's user
//!    namespace; otherwise the target's real, effective and saved uids must
//!    all be the caller's uid, and likewise its gids.
//! 2. The target must be dumpable (a setuid program, or one that asked with
//!    `PR_SET_DUMPABLE`, or that runs a binary its user cannot read, is not),
//!    unless the caller has `CAP_SYS_PTRACE` over the target's memory.
//! 3. commoncap: in the same user namespace, the target's permitted
//!    capabilities must be a subset of the caller's permitted ones; across
//!    namespaces, the caller needs `CAP_SYS_PTRACE` in the target's.
//! 4. Yama: scope 1 only lets an ancestor attach, scope 2 only a caller
//!    with `CAP_SYS_PTRACE`, scope 3 nobody.
//!
//! A caller "has a capability in a namespace" as the kernel's `cap_capable`
//! says: it is in that namespace with the capability effective, or it is
//! in an ancestor namespace and the namespace (or the one on the path just
//! below the caller's) was created by the caller's euid.
//!
//! The same check runs at attach (on every thread, after the seize, so a
//! credential change in between is seen), when an engine joins a process
//! another engine traces, and at every exec, where a setuid or
//! file-capability program changes the credentials: an engine whose owner
//! lost the right leaves the process before the new program runs.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use crate::sys::{self, Tid};

/// `CAP_SYS_PTRACE` (linux/capability.h).
pub const CAP_SYS_PTRACE: u32 = 19;
/// `CAP_SETGID` and `CAP_SETUID`.
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// Capability names by number (`linux/capability.h`; libc has none).
pub(crate) const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The names of the capabilities in `set`, comma-separated.
pub fn cap_names(set: u64) -> String {
    (0..64)
        .filter(|b| set & (1u64 << b) != 0)
        .map(|b| {
            CAP_NAMES
                .get(b as usize)
                .map_or_else(|| format!("cap {b}"), |n| (*n).to_string())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A user namespace, as `stat` of `/proc/PID/ns/user` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserNs {
    pub dev: u64,
    pub ino: u64,
}

impl UserNs {
    /// The user namespace of process `pid`.
    pub fn of(pid: Tid) -> Option<UserNs> {
        Self::of_path(&format!("/proc/{pid}/ns/user"))
    }

    /// This process's user namespace (it never changes: a threaded
    /// process cannot enter another).
    pub fn current() -> Option<UserNs> {
        static CURRENT: OnceLock<Option<UserNs>> = OnceLock::new();
        *CURRENT.get_or_init(|| Self::of_path("/proc/self/ns/user"))
    }

    fn of_path(path: &str) -> Option<UserNs> {
        std::fs::metadata(path).ok().map(|m| UserNs {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    fn of_fd(fd: &OwnedFd) -> Option<UserNs> {
        nix::sys::stat::fstat(fd).ok().map(|m| UserNs {
            dev: m.st_dev,
            ino: m.st_ino,
        })
    }
}

/// Who an engine acts for: its client's credentials, taken when the client
/// connected (never read again from the client's pid, which may be
/// reused). The engine may do to a process exactly what these credentials
/// could do with ptrace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The client's process (for Yama's ancestry rule), if known.
    pub pid: Option<Tid>,
    /// Effective uid and gid (`SO_PEERCRED`).
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (`SO_PEERGROUPS`): what a program it spawns
    /// runs with.
    pub groups: Vec<u32>,
    /// Capability sets (bit n = capability n).
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub cap_bounding: u64,
    /// The client's user namespace; `None` when it could not be learned
    /// safely (the client had exited): then nothing may be traced for it
    /// ([`Denied::Unverified`]).
    pub userns: Option<UserNs>,
}

/// Every capability the kernel knows (bits 0..=40).
pub const ALL_CAPS: u64 = (1u64 << CAP_NAMES.len()) - 1;

/// This process's permitted and bounding capability sets.
fn tracer_caps() -> (u64, u64) {
    static CAPS: OnceLock<(u64, u64)> = OnceLock::new();
    *CAPS.get_or_init(|| {
        ProcStatus::read("/proc/self/status")
            .map_or((ALL_CAPS, ALL_CAPS), |s| (s.cap_prm, s.cap_bnd))
    })
}

impl Owner {
    /// Plain user credentials in the server's user namespace: no
    /// capabilities, no groups but `gid`.
    pub fn user(uid: u32, gid: u32) -> Owner {
        Owner {
            pid: None,
            uid,
            gid,
            groups: vec![gid],
            cap_effective: 0,
            cap_permitted: 0,
            cap_bounding: 0,
            userns: UserNs::current(),
        }
    }

    /// The credentials of process `pid` now (its `/proc` status). The
    /// caller must make sure `pid` is the process it means (a pidfd
    /// checked after the read).
    pub fn of_process(pid: Tid) -> Option<Owner> {
        let st = ProcStatus::of(pid)?;
        Some(Owner {
            pid: Some(pid),
            uid: st.uids[1],
            gid: st.gids[1],
            groups: st.groups,
            cap_effective: st.cap_eff,
            cap_permitted: st.cap_prm,
            cap_bounding: st.cap_bnd,
            userns: UserNs::of(pid),
        })
    }

    /// May set another user's uid and gid on a program: CAP_SETUID and
    /// CAP_SETGID effective, in the tracer's own user namespace (what
    /// `setresuid`/`setgroups` would demand of the client itself).
    pub fn may_set_ids(&self) -> bool {
        let want = (1u64 << CAP_SETUID) | (1u64 << CAP_SETGID);
        self.cap_effective & want == want
            && self.userns.is_some()
            && self.userns == UserNs::current()
    }

    /// As privileged as this tracer, in its user namespace:
    /// `CAP_SYS_PTRACE` effective, and every capability the tracer holds or
    /// may hold in the owner's permitted and bounding sets. Such an owner
    /// may trace anything but what Yama's scope 3 forbids, and gains
    /// nothing through the tracer it could not have had itself.
    pub fn is_privileged(&self) -> bool {
        let (prm, bnd) = tracer_caps();
        self.cap_effective & (1 << CAP_SYS_PTRACE) != 0
            && self.cap_permitted & prm == prm
            && self.cap_bounding & bnd == bnd
            && self.userns.is_some()
            && self.userns == UserNs::current()
    }
}

/// Why the rule refuses; each names the rule, as the kernel would apply it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no process with pid {pid}")]
    NoProcess { pid: Tid },
    #[error("pid {pid} runs as uid {}/{}/{} (real/effective/saved) and you are uid {uid}; only the same uid, or CAP_SYS_PTRACE over its user namespace, may trace it", .target[0], .target[1], .target[2])]
    Uid {
        pid: Tid,
        target: [u32; 3],
        uid: u32,
    },
    #[error("pid {pid} runs with gid {}/{}/{} (real/effective/saved) and your gid is {gid}; a set-group-ID program may only be traced with CAP_SYS_PTRACE", .target[0], .target[1], .target[2])]
    Gid {
        pid: Tid,
        target: [u32; 3],
        gid: u32,
    },
    #[error("pid {pid} is not dumpable (it runs a setuid/setgid or unreadable program, or called prctl(PR_SET_DUMPABLE, 0)); only CAP_SYS_PTRACE may trace it")]
    NotDumpable { pid: Tid },
    #[error("pid {pid} holds capabilities you do not ({}); a process may be traced only by one whose permitted capabilities include all of its own", cap_names(*.missing))]
    Capabilities { pid: Tid, missing: u64 },
    #[error("pid {pid} is in a user namespace you hold no CAP_SYS_PTRACE over")]
    UserNamespace { pid: Tid },
    #[error("Yama ptrace_scope is {scope}: {why}")]
    Yama { scope: u32, why: &'static str },
    #[error("your credentials could not be verified (your process exited after connecting), so nothing may be traced for you")]
    Unverified,
}

/// The fields of `/proc/PID/status` the rule (and the attach checks)
/// look at.
pub(crate) struct ProcStatus {
    /// The state letter (`R`, `S`, `Z`…).
    pub state: char,
    pub ppid: Tid,
    /// The pid of its tracer, 0 if none.
    pub tracer: Tid,
    /// Real, effective, saved and filesystem ids.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    groups: Vec<u32>,
    cap_prm: u64,
    cap_eff: u64,
    cap_bnd: u64,
}

impl ProcStatus {
    /// The status of process (or thread) `pid`.
    pub fn of(pid: Tid) -> Option<ProcStatus> {
        Self::read(&format!("/proc/{pid}/status"))
    }

    fn read(path: &str) -> Option<ProcStatus> {
        let text = crate::sys::read_small(path).ok()?;
        let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name));
        let ids = |name: &str| -> Option<[u32; 4]> {
            let mut out = [0u32; 4];
            let mut it = field(name)?.split_whitespace();
            for slot in &mut out {
                *slot = it.next()?.parse().ok()?;
            }
            Some(out)
        };
        let caps =
            |name: &str| -> Option<u64> { u64::from_str_radix(field(name)?.trim(), 16).ok() };
        Some(ProcStatus {
            uids: ids("Uid:")?,
            gids: ids("Gid:")?,
            groups: field("Groups:")
                .map(|g| {
                    g.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            cap_prm: caps("CapPrm:")?,
            cap_eff: caps("CapEff:")?,
            cap_bnd: caps("CapBnd:")?,
            state: field("State:")?.trim().chars().next()?,
            ppid: field("PPid:")?.trim().parse().ok()?,
            tracer: field("TracerPid:")?.trim().parse().ok()?,
        })
    }
}

/// One thread's credentials, as the rule needs them.
struct Target {
    uids: [u32; 4],
    gids: [u32; 4],
    cap_prm: u64,
    dumpable: bool,
}

impl Target {
    fn read(pid: Tid, tid: Tid) -> Option<Target> {
        let dir = format!("/proc/{pid}/task/{tid}");
        let st = ProcStatus::read(&format!("{dir}/status"))?;
        // A task's /proc files belong to its euid when it is dumpable, and
        // to root (of its user namespace) when not (`task_dump_owner`). Its
        // directory may keep the euid either way: look at a file.
        let owner = std::fs::metadata(format!("{dir}/status")).ok()?.uid();
        Some(Target {
            dumpable: owner == st.uids[1],
            uids: st.uids,
            gids: st.gids,
            cap_prm: st.cap_prm,
        })
    }
}

/// Does `owner` hold `cap` in the user namespace `target` (`cap_capable`)?
fn capable_in(owner: &Owner, target: UserNs, target_fd: Option<OwnedFd>, cap: u32) -> bool {
    let Some(mine) = owner.userns else {
        return false;
    };
    if target == mine {
        return owner.cap_effective & (1u64 << cap) != 0;
    }
    // Walk up from the target's namespace. Meeting the owner's own
    // namespace means the target's is a descendant: the owner holds every
    // capability there if it created the namespace just below its own.
    let Some(mut fd) = target_fd else {
        return false;
    };
    for _ in 0..64 {
        let Some(parent) = sys::ns_parent(&fd) else {
            return false;
        };
        let Some(parent_ns) = UserNs::of_fd(&parent) else {
            return false;
        };
        if parent_ns == mine {
            return sys::ns_owner_uid(&fd).is_ok_and(|u| u == owner.uid)
                || owner.cap_effective & (1u64 << cap) != 0;
        }
        fd = parent;
    }
    false
}

/// The Yama scope (`None` without Yama).
///
/// Read at every check where Yama is present (an administrator may raise
/// the scope at any time); where its file does not exist, that is
/// remembered: Yama is built into the kernel or not, and cannot appear
/// later (one failing `open` less per request). A file there that cannot
/// be read (descriptors exhausted, say) counts as scope 3, the strictest:
/// an error never lets a client past Yama.
pub fn yama_scope() -> Option<u32> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ABSENT: AtomicBool = AtomicBool::new(false);
    if ABSENT.load(Ordering::Relaxed) {
        return None;
    }
    match crate::sys::read_small("/proc/sys/kernel/yama/ptrace_scope") {
        Ok(s) => Some(s.trim().parse().unwrap_or(3)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ABSENT.store(true, Ordering::Relaxed);
            None
        }
        Err(e) => {
            tracing::warn!(%e, "cannot read Yama's ptrace_scope: taken as 3 (no attach)");
            Some(3)
        }
    }
}

/// Is `ancestor` an ancestor of `pid` (Yama scope 1)?
fn is_ancestor(ancestor: Tid, pid: Tid) -> bool {
    let mut p = pid;
    for _ in 0..4096 {
        let Some(st) = ProcStatus::of(p) else {
            return false;
        };
        if st.ppid == ancestor {
            return true;
        }
        if st.ppid <= 1 {
            return false;
        }
        p = st.ppid;
    }
    false
}

/// May `owner` trace process `pid` (every thread of it)? The kernel's
/// answer for `PTRACE_SEIZE` by a process with `owner`'s credentials.
///
/// The caller must know `pid` names the process it means: call it on a
/// process this tracer has seized (whose pid cannot be reused while it is
/// traced), or check a pidfd after.
pub fn check(owner: &Owner, pid: Tid) -> Result<(), Denied> {
    check_with(owner, pid, yama_scope())
}

/// [`check`] at an exec of a process the owner traces already: Yama,
/// which rules only on new attachments, has no say.
pub fn check_exec(owner: &Owner, pid: Tid) -> Result<(), Denied> {
    check_with(owner, pid, None)
}

fn check_with(owner: &Owner, pid: Tid, yama: Option<u32>) -> Result<(), Denied> {
    if yama == Some(3) {
        return Err(Denied::Yama {
            scope: 3,
            why: "attaching is disabled on this system until reboot",
        });
    }
    if owner.is_privileged() {
        // CAP_SYS_PTRACE in the tracer's own namespace covers every one
        // below it, and every capability the tracer could meet.
        return if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            Ok(())
        } else {
            Err(Denied::NoProcess { pid })
        };
    }
    let ns_fd = std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .ok()
        .map(OwnedFd::from);
    let Some(target_ns) = ns_fd.as_ref().and_then(UserNs::of_fd) else {
        return Err(Denied::NoProcess { pid });
    };
    if owner.userns.is_none() {
        return Err(Denied::Unverified);
    }
    let ptrace_cap = capable_in(owner, target_ns, ns_fd, CAP_SYS_PTRACE);
    if !ptrace_cap {
        // Without CAP_SYS_PTRACE over it, every thread must pass the
        // credential checks (threads may differ).
        if owner.userns != Some(target_ns) {
            return Err(Denied::UserNamespace { pid });
        }
        let tids: Vec<Tid> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map_err(|_| Denied::NoProcess { pid })?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        if tids.is_empty() {
            return Err(Denied::NoProcess { pid });
        }
        for tid in tids {
            // A thread that exits meanwhile is no longer to be traced.
            if let Some(t) = Target::read(pid, tid) {
                check_thread(owner, pid, &t)?;
            }
        }
    }
    match yama {
        Some(2) if !ptrace_cap => Err(Denied::Yama {
            scope: 2,
            why: "only a tracer with CAP_SYS_PTRACE may attach",
        }),
        Some(1) if !ptrace_cap && !owner.pid.is_some_and(|a| is_ancestor(a, pid)) => {
            Err(Denied::Yama {
                scope: 1,
                why: "only an ancestor of a process (or a holder of CAP_SYS_PTRACE) may attach",
            })
        }
        _ => Ok(()),
    }
}

/// One thread against an owner without `CAP_SYS_PTRACE` over it, in the
/// same user namespace: the same ids, dumpable, no capability the owner
/// lacks.
fn check_thread(owner: &Owner, pid: Tid, t: &Target) -> Result<(), Denied> {
    let target = [t.uids[0], t.uids[1], t.uids[2]];
    if target.iter().any(|u| *u != owner.uid) {
        return Err(Denied::Uid {
            pid,
            target,
            uid: owner.uid,
        });
    }
    let target = [t.gids[0], t.gids[1], t.gids[2]];
    if target.iter().any(|g| *g != owner.gid) {
        return Err(Denied::Gid {
            pid,
            target,
            gid: owner.gid,
        });
    }
    if !t.dumpable {
        return Err(Denied::NotDumpable { pid });
    }
    let missing = t.cap_prm & !owner.cap_permitted;
    if missing != 0 {
        return Err(Denied::Capabilities { pid, missing });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_capabilities() {
        assert_eq!(cap_names(0), "");
        assert_eq!(cap_names(1 << 1), "CAP_DAC_OVERRIDE");
        assert_eq!(
            cap_names((1 << 19) | (1 << 21)),
            "CAP_SYS_PTRACE, CAP_SYS_ADMIN"
        );
        assert_eq!(cap_names(1 << 50), "cap 50");
    }

    #[test]
    fn reads_own_credentials() {
        let me = Owner::of_process(std::process::id() as Tid).expect("own status");
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        assert_eq!(me.uid, uid);
        assert_eq!(me.userns, UserNs::current());
        // Our own process passes for ourselves.
        assert_eq!(check(&me, std::process::id() as Tid), Ok(()));
    }

    #[test]
    fn a_missing_process_is_named() {
        let me = Owner::user(12345, 12345);
        assert!(matches!(
            check(&me, i32::MAX - 1),
            Err(Denied::NoProcess { .. })
        ));
    }
}
