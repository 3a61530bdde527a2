//! Starting a program traced: fork on the tracer thread, seize the child,
//! let it install the seccomp filter and exec. Everything the child needs is
//! prepared before the fork; between fork and exec the child makes only
//! async-signal-safe calls.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::{Core, BASE_OPTIONS};
use crate::engine::{Engine, EngineId, EngineOptions};
use crate::error::{Error, Result, SpawnError};
use crate::event::{EventMask, ExitStatus};
use crate::sys::{self, Errno, Tid};

/// The uid, gid and supplementary groups a spawned program runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// How to start a program.
#[derive(Debug, Default)]
pub struct SpawnOptions {
    /// Program and arguments; `argv[0]` is looked up in `PATH` unless it has a `/`.
    pub argv: Vec<String>,
    /// Variables set on top of the inherited environment.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment instead of the tracer's.
    pub env_clear: bool,
    /// Working directory (default: the tracer's).
    pub cwd: Option<PathBuf>,
    /// Hold the program at its first instruction after exec (the spawn
    /// engine holds it; resume with `control`).
    pub stop_at_entry: bool,
    /// Install a seccomp filter so that only syscalls the engines want stop
    /// (default on). Such a program depends on the tracer for its whole life:
    /// it is killed if the tracer goes away, never left running untraced,
    /// because its filtered syscalls would fail with ENOSYS.
    pub kernel_filter: bool,
    /// Run as this user (default: the tracer's own credentials).
    pub credentials: Option<Credentials>,
    /// Descriptors for the program's stdin, stdout, stderr (default: inherited).
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Start the program in a session of its own whose controlling
    /// terminal is its stdin (which must be a terminal: a pseudo-terminal's
    /// far end), as a terminal emulator or `ssh -t` does: job control and
    /// the terminal's signals (Ctrl-C) then work in it.
    pub controlling_tty: bool,
    /// Pin the program (and the tracer thread) to this CPU.
    pub pin_cpu: Option<usize>,
    /// Set `no_new_privs` whether or not a filter is installed: setuid and
    /// file-capability programs then run without the privileges they
    /// carry. A program started for an owner less privileged than the
    /// tracer ([`crate::access::Owner::is_privileged`]) needs it: without
    /// it, the tracer's root rights would let such a program gain them
    /// while traced, which the kernel never allows an unprivileged tracer.
    pub no_new_privs: bool,
    /// Keep the tracer's descriptors other than 0, 1 and 2 open in the
    /// program (default: closed, with `close_range`, so a program never
    /// inherits what the tracer's own parent left open).
    pub keep_fds: bool,
    /// The capabilities the program may hold at most (default: the
    /// tracer's): its permitted and effective sets are cut down to these
    /// (which needs no privilege), ambient capabilities are cleared, and
    /// the others leave its bounding set where the tracer may drop them
    /// (`CAP_SETPCAP`). With `no_new_privs`, no exec can give them back: a
    /// program started for a client never holds a capability its client
    /// does not.
    pub max_caps: Option<u64>,
    /// Start the program with address space layout randomization off
    /// (`personality(ADDR_NO_RANDOMIZE)`, as gdb and gdbserver start a
    /// program by default: the same addresses at every run). The kernel
    /// turns it off again for a set-user-ID or set-group-ID program.
    pub disable_aslr: bool,
}

impl SpawnOptions {
    /// Options for `argv` with kernel-side filtering on.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SpawnOptions {
            argv: argv.into_iter().map(Into::into).collect(),
            kernel_filter: true,
            ..Default::default()
        }
    }
}

/// A started program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spawned {
    pub pid: Tid,
    pub engine: EngineId,
}

/// Steps of the child's set-up, reported through the error pipe.
const STEPS: [&str; 14] = [
    "?",
    "waiting for the tracer",
    "setgroups",
    "setgid",
    "setuid",
    "chdir",
    "stdio",
    "installing the seccomp filter",
    "execve",
    "closing inherited descriptors",
    "no_new_privs",
    "limiting capabilities",
    "making stdin the controlling terminal",
    "turning address space randomization off",
];
const STEP_CHDIR: u8 = 5;
const STEP_PERSONALITY: u8 = 13;
/// `personality(2)`'s flag for no address space layout randomization.
const ADDR_NO_RANDOMIZE: libc::c_int = 0x0004_0000;
const STEP_EXEC: u8 = 8;
/// The failure record: step, errno, index of the program candidate.
const RECORD: usize = 7;

/// A spawn waiting for its child's exec (success) or death (failure).
pub(crate) struct PendingSpawn {
    pub engine: EngineId,
    pub stop_at_entry: bool,
    program: String,
    /// Where the program was looked for (`PATH=…`, or "the path as given").
    searched: String,
    candidates: Vec<PathBuf>,
    cwd: Option<PathBuf>,
    err_pipe: OwnedFd,
    reply: Box<dyn FnOnce(Result<Spawned>) + Send>,
}

impl PendingSpawn {
    pub fn succeed(self, pid: Tid) {
        (self.reply)(Ok(Spawned {
            pid,
            engine: self.engine,
        }));
    }

    /// The program exec'd, but its owner may not trace it (`why`).
    pub fn refuse(self, why: String) {
        (self.reply)(Err(SpawnError::NotTraceable {
            program: self.program.clone(),
            why,
        }
        .into()));
    }

    pub fn fail(self, status: ExitStatus) {
        let mut buf = [0u8; RECORD];
        // The child wrote its failure record before exiting: one read.
        let n = nix::unistd::read(&self.err_pipe, &mut buf).unwrap_or(0);
        let err = if n == RECORD {
            let errno = Errno::from_raw(i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]));
            let index = u16::from_ne_bytes([buf[5], buf[6]]) as usize;
            match buf[0] {
                STEP_EXEC if matches!(errno, Errno::ENOENT | Errno::ENOTDIR) => {
                    SpawnError::NotFound {
                        program: self.program.clone(),
                        searched: self.searched.clone(),
                    }
                }
                STEP_EXEC => SpawnError::Exec {
                    path: self
                        .candidates
                        .get(index)
                        .cloned()
                        .unwrap_or_else(|| PathBuf::from(&self.program)),
                    errno,
                },
                STEP_CHDIR => SpawnError::Cwd {
                    path: self.cwd.clone().unwrap_or_default(),
                    errno,
                },
                step => SpawnError::Setup {
                    step: STEPS.get(step as usize).copied().unwrap_or("?"),
                    errno,
                },
            }
        } else {
            SpawnError::Setup {
                step: match status {
                    ExitStatus::Exited(_) => "before exec (child exited)",
                    ExitStatus::Signaled { .. } => "before exec (child killed)",
                },
                errno: Errno::UnknownErrno,
            }
        };
        (self.reply)(Err(err.into()));
    }
}

/// Where `program` may be, in the order execvp looks: the path itself if it
/// has a `/`, else each directory of `path_var`. Which one runs is decided
/// in the child, with the program's own credentials (see [`child`]), so
/// nothing here tells a client about a path it could not look at itself.
pub(crate) fn candidates(program: &str, path_var: Option<&str>) -> (Vec<PathBuf>, String) {
    if program.contains('/') {
        return (vec![PathBuf::from(program)], "the path as given".into());
    }
    let path_var = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    let list = path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .collect();
    (list, format!("PATH={path_var}"))
}

fn cstring(s: &[u8]) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::NulByte(String::from_utf8_lossy(s).into_owned()))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Fork)
}

/// Everything the child needs, built before fork.
struct ChildPlan {
    /// Where the program may be; the child runs the first it may execute.
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    creds: Option<Credentials>,
    stdio: [RawFd; 3],
    controlling_tty: bool,
    filter: Option<Vec<libc::sock_filter>>,
    no_new_privs: bool,
    close_fds: bool,
    /// The capabilities the program may keep, if limited.
    max_caps: Option<u64>,
    pin_cpu: Option<usize>,
    disable_aslr: bool,
}

/// Fork, seize and release the child. `reply` is called exactly once: with
/// an error now, or later at the child's exec (success) or death (failure).
pub(crate) fn spawn(
    core: &mut Core,
    opts: SpawnOptions,
    engine: Box<dyn Engine>,
    eopts: EngineOptions,
    reply: Box<dyn FnOnce(Result<Spawned>) + Send>,
) {
    let stop_at_entry = opts.stop_at_entry;
    let opts_program = opts.argv.first().cloned().unwrap_or_default();
    let opts_cwd = opts.cwd.clone();
    let (plan, candidates, searched) = match plan(&opts, &eopts) {
        Ok(p) => p,
        Err(e) => {
            reply(Err(e));
            return;
        }
    };
    let filter_set = plan
        .filter
        .as_ref()
        .map(|_| Arc::new(eopts.syscalls.clone()));
    let (sync_r, sync_w) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            reply(Err(e.into()));
            return;
        }
    };
    let (err_r, err_w) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            reply(Err(e.into()));
            return;
        }
    };
    let argv_ptrs: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_ptrs: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    if let Some(cpu) = plan.pin_cpu {
        if let Err(e) = sys::pin_to_cpu(0, cpu) {
            tracing::warn!(cpu, %e, "pinning the tracer thread failed");
        }
    }
    // SAFETY: the child branch below only makes async-signal-safe calls on
    // memory prepared before the fork, and ends in execve or _exit.
    let pid = match unsafe { sys::fork() } {
        Ok(pid) => pid,
        Err(e) => {
            reply(Err(SpawnError::Fork(e).into()));
            return;
        }
    };
    if pid == 0 {
        child(
            &plan,
            &argv_ptrs,
            &envp_ptrs,
            sync_r.as_raw_fd(),
            err_w.as_raw_fd(),
        );
    }
    drop(sync_r);
    drop(err_w);
    drop(opts);
    let mut options = BASE_OPTIONS;
    if filter_set.is_some() {
        options |= sys::PTRACE_O_TRACESECCOMP | sys::PTRACE_O_EXITKILL;
    }
    if let Err(e) = sys::seize(pid, options) {
        let _ = sys::tgkill(pid, pid, libc::SIGKILL);
        let _ = sys::wait_pid(pid, 0);
        reply(Err(Error::Sys {
            op: "PTRACE_SEIZE of the new child",
            tid: pid,
            errno: e,
        }));
        return;
    }
    let id = core.add_engine(engine, eopts);
    core.new_proc(pid, vec![id], filter_set);
    let t = core.new_task(pid, pid);
    t.prelude = true;
    core.interrupt(pid);
    // Release the child: it sets itself up and execs.
    // SAFETY: writing one byte from a live buffer to our pipe end.
    unsafe { libc::write(sync_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    drop(sync_w);
    core.spawns.insert(
        pid,
        PendingSpawn {
            engine: id,
            stop_at_entry,
            program: opts_program,
            searched,
            candidates,
            cwd: opts_cwd,
            err_pipe: err_r,
            reply,
        },
    );
}

/// The child's plan, and where the program is looked for (the candidate
/// paths, and in words) for the spawn's error messages.
fn plan(opts: &SpawnOptions, eopts: &EngineOptions) -> Result<(ChildPlan, Vec<PathBuf>, String)> {
    let program = opts.argv.first().ok_or(SpawnError::EmptyArgv)?;
    let mut env: Vec<(String, String)> = if opts.env_clear {
        Vec::new()
    } else {
        std::env::vars().collect()
    };
    for (k, v) in &opts.env {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let (candidates, searched) = candidates(program, path_var);
    if candidates.is_empty() || candidates.len() > u16::MAX as usize {
        return Err(SpawnError::NotFound {
            program: program.clone(),
            searched,
        }
        .into());
    }
    let wants_syscalls = eopts.events.intersects(EventMask::SYSCALLS) && !eopts.syscalls.is_empty();
    let filter =
        (opts.kernel_filter && wants_syscalls).then(|| crate::seccomp::filter_for(&eopts.syscalls));
    let root = nix::unistd::geteuid().is_root();
    let dropping = opts.credentials.as_ref().is_some_and(|c| c.uid != 0);
    let plan = ChildPlan {
        candidates: candidates
            .iter()
            .map(|c| cstring(c.as_os_str().as_bytes()))
            .collect::<Result<_, _>>()?,
        argv: opts
            .argv
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<Result<_, _>>()?,
        envp: env
            .iter()
            .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
            .collect::<Result<_, _>>()?,
        cwd: opts
            .cwd
            .as_ref()
            .map(|c| cstring(c.as_os_str().as_bytes()))
            .transpose()?,
        creds: opts.credentials.clone(),
        stdio: [
            opts.stdin.as_ref().map_or(-1, |f| f.as_raw_fd()),
            opts.stdout.as_ref().map_or(-1, |f| f.as_raw_fd()),
            opts.stderr.as_ref().map_or(-1, |f| f.as_raw_fd()),
        ],
        controlling_tty: opts.controlling_tty,
        filter,
        // Without CAP_SYS_ADMIN (not root, or dropping to a user) a filter
        // needs no_new_privs; and it is asked for on its own.
        no_new_privs: opts.no_new_privs || !root || dropping,
        close_fds: !opts.keep_fds,
        max_caps: opts.max_caps,
        pin_cpu: opts.pin_cpu,
        disable_aslr: opts.disable_aslr,
    };
    Ok((plan, candidates, searched))
}

/// The child between fork and exec. Never returns.
///
/// Order: wait for the tracer's seize; stdio; descriptors from 3 up
/// closed; capabilities the program may not hold dropped from the
/// bounding set (while still privileged, where allowed); groups, gid and
/// uid; capabilities cut to the allowed; the working directory and the
/// program chosen with those credentials (so a path the program's user
/// cannot reach fails as it would for them); no_new_privs and the filter;
/// exec.
fn child(
    plan: &ChildPlan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    sync_fd: RawFd,
    err_fd: RawFd,
) -> ! {
    let fail = |step: u8, index: u16| -> ! {
        // SAFETY: async-signal-safe calls on stack buffers; _exit never returns.
        unsafe {
            let errno = *libc::__errno_location();
            let mut buf = [0u8; RECORD];
            buf[0] = step;
            buf[1..5].copy_from_slice(&errno.to_ne_bytes());
            buf[5..7].copy_from_slice(&index.to_ne_bytes());
            libc::write(err_fd, buf.as_ptr().cast(), RECORD);
            libc::_exit(127)
        }
    };
    // SAFETY: every call below is async-signal-safe and uses memory prepared
    // before fork; failures are reported through `fail`, which exits.
    unsafe {
        let mut b = [0u8; 1];
        if libc::read(sync_fd, b.as_mut_ptr().cast(), 1) != 1 {
            fail(1, 0);
        }
        // The tracer thread blocks SIGCHLD and Rust ignores SIGPIPE; both
        // would survive exec. Start the program as a shell would.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        for (target, fd) in plan.stdio.iter().enumerate() {
            if *fd >= 0 && libc::dup2(*fd, target as i32) < 0 {
                fail(6, 0);
            }
        }
        if plan.controlling_tty && (libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0) {
            fail(12, 0);
        }
        if plan.close_fds {
            // Everything from 3 up but the error pipe, which is
            // close-on-exec: it stays for a failure record until exec.
            let closed = if err_fd >= 3 {
                let err = err_fd as u32;
                (err == 3 || sys::close_range(3, err - 1).is_ok())
                    && sys::close_range(err + 1, u32::MAX).is_ok()
            } else {
                sys::close_range(3, u32::MAX).is_ok()
            };
            if !closed {
                fail(9, 0);
            }
        }
        if let Some(keep) = plan.max_caps {
            // Best effort: dropping from the bounding set needs CAP_SETPCAP,
            // which a confined server may not have; the cut below does not.
            for cap in 0..64u64 {
                if keep & (1 << cap) == 0 {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                }
            }
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
        }
        if let Some(c) = &plan.creds {
            if libc::setgroups(c.groups.len(), c.groups.as_ptr()) != 0 {
                fail(2, 0);
            }
            if libc::setgid(c.gid) != 0 {
                fail(3, 0);
            }
            if libc::setuid(c.uid) != 0 {
                fail(4, 0);
            }
        }
        if let Some(keep) = plan.max_caps {
            // After setuid (which needs CAP_SETUID, and clears everything
            // for a user other than root): what is left is cut to `keep`.
            if sys::capset_limit(keep).is_err() {
                fail(11, 0);
            }
        }
        if let Some(cwd) = &plan.cwd {
            if libc::chdir(cwd.as_ptr()) != 0 {
                fail(STEP_CHDIR, 0);
            }
        }
        // The first candidate these credentials may execute, as execvp
        // picks it (a permission error is kept while later ones are tried).
        let mut chosen = None;
        let mut denied = None;
        for (i, c) in plan.candidates.iter().enumerate() {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(c.as_ptr(), &mut st) != 0 {
                let e = *libc::__errno_location();
                if e == libc::EACCES && denied.is_none() {
                    denied = Some(i);
                }
                continue;
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFREG
                || libc::access(c.as_ptr(), libc::X_OK) != 0
            {
                if denied.is_none() {
                    denied = Some(i);
                }
                continue;
            }
            chosen = Some(i);
            break;
        }
        let Some(index) = chosen else {
            match denied {
                Some(i) => {
                    *libc::__errno_location() = libc::EACCES;
                    fail(STEP_EXEC, i as u16)
                }
                None => {
                    *libc::__errno_location() = libc::ENOENT;
                    fail(STEP_EXEC, 0)
                }
            }
        };
        if let Some(cpu) = plan.pin_cpu {
            let _ = sys::pin_to_cpu(0, cpu);
        }
        if plan.disable_aslr {
            // The current persona (0xffffffff only reads it), plus the flag.
            let persona = libc::personality(0xffff_ffff);
            if persona < 0 || libc::personality((persona | ADDR_NO_RANDOMIZE) as libc::c_ulong) < 0
            {
                fail(STEP_PERSONALITY, 0);
            }
        }
        if plan.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(10, 0);
        }
        if let Some(filter) = &plan.filter {
            // (no_new_privs, where needed, was set just above.)
            if sys::seccomp_install(filter).is_err() {
                fail(7, 0);
            }
        }
        libc::execve(
            plan.candidates[index].as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
        );
        fail(STEP_EXEC, index as u16)
    }
}
