//! Thin wrappers over the kernel: ptrace requests, waiting, the tracer
//! thread's sleep and its wake-ups ([`wake`]), cross-process memory and
//! seccomp. This is the only module with `unsafe`; every wrapper maps errno to
//! [`Errno`] and nothing else.
//!
//! Every ptrace wrapper must be called from the tracer thread that seized the
//! tracee (the kernel answers ESRCH from any other thread).

use std::ffi::{c_long, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub use nix::errno::Errno;

mod wake;
pub use wake::{epoll_add, epoll_del, wake_all_tracers, ChildWait, RemoteWaker, Waker, Woken};

/// A thread id as the kernel names it (also a pid for a group leader).
pub type Tid = i32;

pub const PTRACE_SEIZE: u32 = 0x4206;
pub const PTRACE_INTERRUPT: u32 = 0x4207;
pub const PTRACE_LISTEN: u32 = 0x4208;
pub const PTRACE_GETREGSET: u32 = 0x4204;
pub const PTRACE_SETREGSET: u32 = 0x4205;
pub const PTRACE_GET_SYSCALL_INFO: u32 = 0x420e;

pub const PTRACE_O_TRACESYSGOOD: u32 = 1;
pub const PTRACE_O_TRACEFORK: u32 = 1 << 1;
pub const PTRACE_O_TRACEVFORK: u32 = 1 << 2;
pub const PTRACE_O_TRACECLONE: u32 = 1 << 3;
pub const PTRACE_O_TRACEEXEC: u32 = 1 << 4;
pub const PTRACE_O_TRACEVFORKDONE: u32 = 1 << 5;
pub const PTRACE_O_TRACEEXIT: u32 = 1 << 6;
pub const PTRACE_O_TRACESECCOMP: u32 = 1 << 7;
pub const PTRACE_O_EXITKILL: u32 = 1 << 20;

pub const PTRACE_EVENT_FORK: i32 = 1;
pub const PTRACE_EVENT_VFORK: i32 = 2;
pub const PTRACE_EVENT_CLONE: i32 = 3;
pub const PTRACE_EVENT_EXEC: i32 = 4;
pub const PTRACE_EVENT_VFORK_DONE: i32 = 5;
pub const PTRACE_EVENT_EXIT: i32 = 6;
pub const PTRACE_EVENT_SECCOMP: i32 = 7;
pub const PTRACE_EVENT_STOP: i32 = 128;

pub const PTRACE_SYSCALL_INFO_ENTRY: u8 = 1;
pub const PTRACE_SYSCALL_INFO_EXIT: u8 = 2;
pub const PTRACE_SYSCALL_INFO_SECCOMP: u8 = 3;

/// `struct ptrace_syscall_info` (linux/ptrace.h), with the union kept as
/// eight words: entry/seccomp use `data[0]` = nr and `data[1..7]` = args;
/// exit uses `data[0]` = rval and the low byte of `data[1]` = is_error.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawSyscallInfo {
    pub op: u8,
    pub pad: [u8; 3],
    pub arch: u32,
    pub instruction_pointer: u64,
    pub stack_pointer: u64,
    pub data: [u64; 8],
}

/// How a ptrace-stopped tracee is resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    Cont,
    Syscall,
    SingleStep,
    Listen,
}

fn ptrace(req: u32, tid: Tid, addr: usize, data: usize) -> Result<c_long, Errno> {
    Errno::clear();
    // SAFETY: the request codes used in this module take scalar addr/data
    // arguments or pointers to live, correctly sized buffers owned by the caller
    // for the duration of the call; the kernel validates the rest.
    let r = unsafe { libc::ptrace(req as _, tid, addr as *mut c_void, data as *mut c_void) };
    if r == -1 {
        let e = Errno::last();
        if e != Errno::UnknownErrno {
            return Err(e);
        }
    }
    Ok(r)
}

pub fn seize(tid: Tid, options: u32) -> Result<(), Errno> {
    ptrace(PTRACE_SEIZE, tid, 0, options as usize).map(drop)
}

pub fn set_options(tid: Tid, options: u32) -> Result<(), Errno> {
    ptrace(libc::PTRACE_SETOPTIONS, tid, 0, options as usize).map(drop)
}

pub fn interrupt(tid: Tid) -> Result<(), Errno> {
    ptrace(PTRACE_INTERRUPT, tid, 0, 0).map(drop)
}

pub fn resume(tid: Tid, how: Resume, signal: i32) -> Result<(), Errno> {
    let req = match how {
        Resume::Cont => libc::PTRACE_CONT,
        Resume::Syscall => libc::PTRACE_SYSCALL,
        Resume::SingleStep => libc::PTRACE_SINGLESTEP,
        Resume::Listen => PTRACE_LISTEN,
    };
    ptrace(req, tid, 0, signal as usize).map(drop)
}

pub fn detach(tid: Tid, signal: i32) -> Result<(), Errno> {
    ptrace(libc::PTRACE_DETACH, tid, 0, signal as usize).map(drop)
}

pub fn get_event_msg(tid: Tid) -> Result<u64, Errno> {
    let mut msg: libc::c_ulong = 0;
    ptrace(
        libc::PTRACE_GETEVENTMSG,
        tid,
        0,
        &mut msg as *mut _ as usize,
    )?;
    Ok(msg as u64)
}

pub fn get_siginfo(tid: Tid) -> Result<libc::siginfo_t, Errno> {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    ptrace(libc::PTRACE_GETSIGINFO, tid, 0, &mut si as *mut _ as usize)?;
    Ok(si)
}

pub fn get_syscall_info(tid: Tid) -> Result<RawSyscallInfo, Errno> {
    let mut info = RawSyscallInfo::default();
    ptrace(
        PTRACE_GET_SYSCALL_INFO,
        tid,
        std::mem::size_of::<RawSyscallInfo>(),
        &mut info as *mut _ as usize,
    )?;
    Ok(info)
}

/// `PTRACE_GETREGSET` of note type `note` into `buf`; returns the bytes filled.
pub fn get_regset(tid: Tid, note: u32, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    ptrace(
        PTRACE_GETREGSET,
        tid,
        note as usize,
        &mut iov as *mut _ as usize,
    )?;
    Ok(iov.iov_len)
}

pub fn set_regset(tid: Tid, note: u32, buf: &[u8]) -> Result<(), Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut c_void,
        iov_len: buf.len(),
    };
    ptrace(
        PTRACE_SETREGSET,
        tid,
        note as usize,
        &mut iov as *mut _ as usize,
    )
    .map(drop)
}

pub fn peek_user(tid: Tid, offset: usize) -> Result<u64, Errno> {
    ptrace(libc::PTRACE_PEEKUSER, tid, offset, 0).map(|v| v as u64)
}

pub fn poke_user(tid: Tid, offset: usize, value: u64) -> Result<(), Errno> {
    ptrace(libc::PTRACE_POKEUSER, tid, offset, value as usize).map(drop)
}

pub fn peek_data(tid: Tid, addr: u64) -> Result<u64, Errno> {
    ptrace(libc::PTRACE_PEEKDATA, tid, addr as usize, 0).map(|v| v as u64)
}

pub fn poke_data(tid: Tid, addr: u64, value: u64) -> Result<(), Errno> {
    ptrace(libc::PTRACE_POKEDATA, tid, addr as usize, value as usize).map(drop)
}

/// One reaped wait status.
#[derive(Clone, Copy, Debug)]
pub struct WaitStatus {
    pub tid: Tid,
    pub status: i32,
    /// With rusage asked for: the system time of the task's process (and
    /// its waited-for children) so far, in microseconds (the kernel's
    /// `RUSAGE_BOTH`, as strace -c reads it).
    pub stime_us: Option<u64>,
}

/// `wait4` with or without rusage: the tid, or 0, or -1.
fn wait4(pid: Tid, status: &mut i32, flags: i32, rusage: bool) -> (Tid, Option<u64>) {
    if !rusage {
        // SAFETY: `status` is a valid out pointer for the duration of the call.
        return (unsafe { libc::waitpid(pid, status, flags) }, None);
    }
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `ru` are valid out pointers for the call.
    let r = unsafe { libc::wait4(pid, status, flags, &mut ru) };
    let us = (ru.ru_stime.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ru.ru_stime.tv_usec as u64);
    (r, (r > 0).then_some(us))
}

/// Reap one status of this thread's tracees or children, without blocking.
/// `__WNOTHREAD` keeps other threads' tracees (other tracers in this process)
/// out of our hands; `__WALL` includes clone children.
/// With `rusage`, [`WaitStatus::stime_us`] too.
pub fn wait_any_nohang(rusage: bool) -> Result<Option<WaitStatus>, Errno> {
    let mut status = 0;
    let (r, stime_us) = wait4(
        -1,
        &mut status,
        libc::__WALL | libc::__WNOTHREAD | libc::WNOHANG,
        rusage,
    );
    match r {
        0 => Ok(None),
        -1 => match Errno::last() {
            Errno::ECHILD => Ok(None),
            e => Err(e),
        },
        tid => Ok(Some(WaitStatus {
            tid,
            status,
            stime_us,
        })),
    }
}

/// A pending status of this thread's tracees or children, looked at but
/// left to be taken (`WNOWAIT`): its tid, and for a ptrace stop the stop's
/// whole code (`si_status` of a `CLD_TRAPPED`: the signal, with the event
/// or syscall bits), else `None`.
pub fn peek_any_nohang() -> Result<Option<(Tid, Option<i32>)>, Errno> {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `si` is a valid out pointer for the duration of the call.
    let r = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut si,
            libc::WEXITED
                | libc::WSTOPPED
                | libc::WNOHANG
                | libc::WNOWAIT
                | libc::__WALL
                | libc::__WNOTHREAD,
        )
    };
    if r == -1 {
        return match Errno::last() {
            Errno::ECHILD => Ok(None),
            e => Err(e),
        };
    }
    Ok(peeked(&si))
}

/// What a `waitid(WNOWAIT)` found: the tid, and for a ptrace stop its
/// whole code (see [`peek_any_nohang`]); `None` if nothing.
pub(crate) fn peeked(si: &libc::siginfo_t) -> Option<(Tid, Option<i32>)> {
    // SAFETY: waitid filled the SIGCHLD fields (or left them zero: none).
    let (pid, status) = unsafe { (si.si_pid(), si.si_status()) };
    if pid == 0 {
        return None;
    }
    const CLD_TRAPPED: i32 = 4;
    Some((pid, (si.si_code == CLD_TRAPPED).then_some(status)))
}

/// Wait for one specific child (spawn set-up, attaching; the reap loop
/// uses [`wait_pid_with`]).
pub fn wait_pid(tid: Tid, flags: i32) -> Result<Option<WaitStatus>, Errno> {
    wait_pid_with(tid, flags, false)
}

/// [`wait_pid`], with [`WaitStatus::stime_us`] if `rusage`.
pub fn wait_pid_with(tid: Tid, flags: i32, rusage: bool) -> Result<Option<WaitStatus>, Errno> {
    let mut status = 0;
    loop {
        let (r, stime_us) = wait4(tid, &mut status, flags | libc::__WALL, rusage);
        match r {
            0 => return Ok(None),
            -1 if Errno::last() == Errno::EINTR => continue,
            -1 => return Err(Errno::last()),
            tid => {
                return Ok(Some(WaitStatus {
                    tid,
                    status,
                    stime_us,
                }))
            }
        }
    }
}

// ---- memory ----------------------------------------------------------------

/// One `process_vm_readv` of the `remote` ranges, back to back, appended to
/// `buf` (at most `want` bytes, into its spare capacity: the new bytes are
/// never zeroed first). Returns the bytes read (the kernel stops at the
/// first failing remote iovec); `buf` grows by exactly that many.
pub fn process_vm_readv_append(
    pid: Tid,
    buf: &mut Vec<u8>,
    want: usize,
    remote: &[libc::iovec],
) -> Result<usize, Errno> {
    buf.reserve(want);
    let spare = buf.spare_capacity_mut();
    let local = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: want.min(spare.len()),
    };
    // SAFETY: the one local iovec is spare capacity of `buf` (borrowed
    // mutably for the call, at least `iov_len` bytes after reserve); the
    // kernel only writes there. `remote` addresses are only interpreted in
    // the target process.
    let r =
        unsafe { libc::process_vm_readv(pid, &local, 1, remote.as_ptr(), remote.len() as _, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    let n = (r as usize).min(local.iov_len);
    // SAFETY: the kernel initialized the first `n` bytes after the old
    // length (it returns how many it copied, never more than `iov_len`).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Ask for transparent huge pages under the whole pages of `buf`'s spare
/// capacity (advice only: errors are ignored). A large read buffer not
/// touched yet then faults in 2 MiB at a time instead of 4 KiB.
pub fn advise_huge_pages(buf: &mut Vec<u8>) {
    const PAGE: usize = 4096;
    let spare = buf.spare_capacity_mut();
    let start = spare.as_mut_ptr() as usize;
    let first = start.next_multiple_of(PAGE);
    let end = (start + spare.len()) & !(PAGE - 1);
    if end > first {
        // SAFETY: madvise(2) with MADV_HUGEPAGE only changes how the kernel
        // backs the pages of [first, end), a page-aligned range inside
        // `buf`'s allocation, borrowed mutably; no contents are read or
        // changed.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    }
}

pub fn pread(fd: RawFd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid writable buffer of the given length.
    let r = unsafe { libc::pread64(fd, buf.as_mut_ptr().cast(), buf.len(), offset as i64) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

pub fn pwrite(fd: RawFd, buf: &[u8], offset: u64) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid readable buffer of the given length.
    let r = unsafe { libc::pwrite64(fd, buf.as_ptr().cast(), buf.len(), offset as i64) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

// ---- seccomp and process set-up (used between fork and exec) ---------------

/// Install a seccomp filter on the calling thread, which must have
/// `no_new_privs` set or `CAP_SYS_ADMIN`. Async-signal-safe: called in a
/// forked child.
pub fn seccomp_install(filter: &[libc::sock_filter]) -> Result<(), Errno> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: `prog` points at a live filter array; seccomp only reads it.
    unsafe {
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Pin `tid` (0: the calling thread) to one CPU.
pub fn pin_to_cpu(tid: Tid, cpu: usize) -> Result<(), Errno> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Fork. The child must only make async-signal-safe calls until exec.
///
/// # Safety
/// The caller's child branch must not allocate, lock, or touch Rust runtime
/// state; it must end in `exec` or `_exit`.
pub unsafe fn fork() -> Result<Tid, Errno> {
    // SAFETY: the caller upholds the post-fork restrictions.
    let r = unsafe { libc::fork() };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// The kernel release string, e.g. "6.1.0-13-amd64".
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Send a signal to one thread.
pub fn tgkill(pid: Tid, tid: Tid, sig: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall with scalar arguments.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
    if r != 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The name of a signal number (`SIGSEGV`), or `SIG<n>` for an unknown one.
/// Real-time signals are named from the kernel's SIGRTMIN (32), as strace
/// and the kernel do, not glibc's (34, after its two reserved signals).
pub fn signal_name(sig: i32) -> String {
    const KERNEL_SIGRTMIN: i32 = 32;
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) if sig == KERNEL_SIGRTMIN => "SIGRTMIN".into(),
        Err(_) if sig > KERNEL_SIGRTMIN && sig <= libc::SIGRTMAX() => {
            format!("SIGRT_{}", sig - KERNEL_SIGRTMIN)
        }
        Err(_) => format!("SIG{sig}"),
    }
}

/// The symbolic errno name ("ENOENT").
pub fn errno_name(e: i32) -> String {
    // nix's Debug of Errno is the symbolic identifier.
    match Errno::from_raw(e) {
        Errno::UnknownErrno => format!("errno {e}"),
        known => format!("{known:?}"),
    }
}

// ---- process identity: pidfds, peers, user namespaces ----------------------

/// A pidfd for `pid` (`pidfd_open`): it names that process for good, so a
/// decision made on it cannot land on a later process given the same pid.
pub fn pidfd_open(pid: Tid) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with scalar arguments; a returned fd is ours.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// A pidfd for the thread `tid` alone (`PIDFD_THREAD`, Linux 6.9): it
/// becomes readable when that thread exits.
pub fn pidfd_open_thread(tid: Tid) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with scalar arguments; a returned fd is ours.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, libc::O_EXCL) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Wait until one of `fds` is readable (or hung up); which ones are.
pub fn poll_readable(fds: &[RawFd]) -> Result<Vec<bool>, Errno> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `p` is a valid array of `p.len()` pollfds.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, -1) };
        if r >= 0 {
            break;
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
    Ok(p.iter().map(|x| x.revents != 0).collect())
}

/// A moment as the local time zone (`TZ`, else `/etc/localtime`) writes
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Seconds east of UTC.
    pub utc_offset: i64,
}

/// `secs` since the epoch in the local time zone; `None` if out of
/// range.
pub fn local_time(secs: i64) -> Option<LocalTime> {
    let t: libc::time_t = secs;
    // SAFETY: an all-zero `tm` is a valid value (integers, and a null
    // zone name that localtime_r replaces).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `t` and `tm` are valid for the call; localtime_r is the
    // reentrant form (no shared result buffer).
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    Some(LocalTime {
        year: tm.tm_year.checked_add(1900)?,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        second: u32::try_from(tm.tm_sec).ok()?,
        utc_offset: tm.tm_gmtoff,
    })
}

/// A copy of descriptor `fd` of the process `pidfd` names
/// (`pidfd_getfd`, close-on-exec): needs the right to ptrace it.
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd takes two descriptor numbers and flags (0), and
    // returns a new descriptor, which nothing else owns.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `r` is a descriptor the kernel just opened for us.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// A socket's protocol number (`SO_PROTOCOL`).
pub fn socket_protocol(sock: &OwnedFd) -> Result<i32, Errno> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for the call and `len` is `v`'s
    // size; the kernel writes at most that.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PROTOCOL,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    Errno::result(r).map(|_| v)
}

/// What `statx` says of the file at `path` (the link followed) from what
/// the kernel has cached, without asking a network file system's server
/// (`AT_STATX_DONT_SYNC`): its mode, device numbers (`rdev`) and link
/// count. The tracer thread, which every client shares, must not wait on
/// a server that does not answer.
#[derive(Clone, Copy, Debug)]
pub struct CachedStat {
    pub mode: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub nlink: u32,
}

/// See [`CachedStat`].
pub fn stat_cached(path: &str) -> Option<CachedStat> {
    let path = std::ffi::CString::new(path).ok()?;
    // SAFETY: an all-zero statx is a valid value (integers only).
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is valid for the kernel
    // to write one struct statx.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_STATX_DONT_SYNC,
            libc::STATX_TYPE | libc::STATX_MODE | libc::STATX_NLINK,
            &mut st,
        )
    };
    (r == 0).then(|| CachedStat {
        mode: u32::from(st.stx_mode),
        rdev_major: st.stx_rdev_major,
        rdev_minor: st.stx_rdev_minor,
        nlink: st.stx_nlink,
    })
}

/// The value of extended attribute `name` of the file at `path` (the
/// link followed), at most 255 bytes; `None` if it has none or cannot be
/// read.
pub fn getxattr(path: &str, name: &str) -> Option<Vec<u8>> {
    let path = std::ffi::CString::new(path).ok()?;
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 255];
    // SAFETY: `path` and `name` are NUL-terminated; the kernel writes at
    // most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    let value = &buf[..n.min(buf.len())];
    // The kernel's socket protocol names are NUL-terminated.
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    Some(value[..end].to_vec())
}

/// The whole text of a small kernel-generated file (`/proc`, `/sys`).
///
/// `std::fs::read_to_string` asks the file's size first (a `statx`, which
/// `/proc` answers with 0) and then reads in growing steps from 32 bytes:
/// 8 reads and a `statx` for a 1.4 KB `/proc/PID/status`. This reads in
/// 4 KiB steps: one read, and one more to see the end.
pub fn read_small(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut out = Vec::with_capacity(4096);
    loop {
        let len = out.len();
        if out.capacity() - len < 4096 {
            out.reserve(4096);
        }
        let spare = out.capacity() - len;
        out.resize(len + spare, 0);
        match f.read(&mut out[len..]) {
            Ok(0) => {
                out.truncate(len);
                break;
            }
            Ok(n) => out.truncate(len + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => out.truncate(len),
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A pidfd for the process `tid` belongs to (a pid, or the id of any of
/// its threads), and that process's pid.
pub fn pidfd_of(tid: Tid) -> Result<(OwnedFd, Tid), Errno> {
    if tid <= 0 {
        return Err(Errno::ESRCH);
    }
    match pidfd_open(tid) {
        Err(Errno::EINVAL) => {
            // Not a thread-group leader: open its leader.
            let status = read_small(&format!("/proc/{tid}/status")).map_err(|_| Errno::ESRCH)?;
            let tgid: Tid = status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or(Errno::ESRCH)?;
            Ok((pidfd_open(tgid)?, tgid))
        }
        r => r.map(|fd| (fd, tid)),
    }
}

/// Whether the process a pidfd names still exists (signal 0 through the
/// pidfd). A zombie still exists: its pid is not free for reuse until
/// it is reaped.
pub fn pidfd_alive(pidfd: &OwnedFd) -> bool {
    // SAFETY: plain syscall; signal 0 only checks for existence.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0 || Errno::last() == Errno::EPERM
}

const SO_PEERGROUPS: libc::c_int = 59;
const SO_PEERPIDFD: libc::c_int = 77;

/// The supplementary groups of a Unix socket's peer, as they were when it
/// connected (`SO_PEERGROUPS`).
pub fn peer_groups(sock: RawFd) -> Result<Vec<u32>, Errno> {
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = (groups.len() * 4) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                sock,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r == 0 {
            groups.truncate(len as usize / 4);
            return Ok(groups);
        }
        let e = Errno::last();
        // ERANGE: `len` now says how much room the list needs.
        if e == Errno::ERANGE && (len as usize / 4) > groups.len() && groups.len() < 65536 {
            groups.resize(len as usize / 4, 0);
            continue;
        }
        return Err(e);
    }
}

/// A pidfd of a Unix socket's peer: the process that connected
/// (`SO_PEERPIDFD`, Linux 6.5 and later).
pub fn peer_pidfd(sock: RawFd) -> Result<OwnedFd, Errno> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is a live c_int and `len` its size.
    let r = unsafe {
        libc::getsockopt(
            sock,
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    if fd < 0 {
        return Err(Errno::ESRCH);
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `NS_GET_PARENT` and `NS_GET_OWNER_UID` (linux/nsfs.h: `_IO(0xb7, n)`).
const NS_GET_PARENT: libc::c_ulong = 0xb702;
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// The parent of the user namespace `ns` names (`None` at the top).
pub fn ns_parent(ns: &OwnedFd) -> Option<OwnedFd> {
    // SAFETY: NS_GET_PARENT takes no argument and returns a new fd.
    let r = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_PARENT) };
    // SAFETY: the kernel just gave us this descriptor.
    (r >= 0).then(|| unsafe { OwnedFd::from_raw_fd(r) })
}

/// The uid that created the user namespace `ns` names.
pub fn ns_owner_uid(ns: &OwnedFd) -> Result<u32, Errno> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t to the live `uid`.
    let r = unsafe {
        libc::ioctl(
            ns.as_raw_fd(),
            NS_GET_OWNER_UID,
            &mut uid as *mut libc::uid_t,
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(uid)
}

/// Close descriptors `first..=last` (`close_range`). Async-signal-safe:
/// called in a forked child.
pub fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: plain syscall with scalar arguments.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Cut the calling thread's permitted, effective and inheritable
/// capabilities down to `keep` (each ANDed: never raised). Needs no
/// privilege. Async-signal-safe: called in a forked child.
pub fn capset_limit(keep: u64) -> Result<(), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget/capset with a version-3 header and two data words,
    // both live for the calls.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) != 0 {
            return Err(Errno::last());
        }
        for (i, d) in data.iter_mut().enumerate() {
            let k = (keep >> (32 * i)) as u32;
            d.effective &= k;
            d.permitted &= k;
            d.inheritable &= k;
        }
        if libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// The time on clock `clock`, in nanoseconds.
pub fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Read exactly `buf.len()` bytes from `fd` in one `read` (a perf event's
/// counters); a short read is `EIO`.
pub fn read_exact(fd: RawFd, buf: &mut [u8]) -> Result<(), Errno> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    if n as usize != buf.len() {
        return Err(Errno::EIO);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn read_small_reads_whole_files_of_any_size() {
        let dir = std::env::temp_dir().join(format!("utrace-read-small-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [0usize, 1, 4095, 4096, 4097, 10_000] {
            let path = dir.join(format!("{len}"));
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            std::fs::write(&path, &text).unwrap();
            assert_eq!(super::read_small(path.to_str().unwrap()).unwrap(), text);
        }
        let _ = std::fs::remove_dir_all(&dir);
        // A /proc file, whose size is given as 0.
        let status = super::read_small("/proc/self/status").unwrap();
        assert!(status.starts_with("Name:") && status.contains("\nCapBnd:"));
        assert!(super::read_small("/proc/self/no-such-file").is_err());
    }
}
