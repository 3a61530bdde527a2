//! The tracer thread's sleep, and what wakes it.
//!
//! A tracer thread sleeps in one of two ways:
//!
//! - **In the kernel's wait** (the usual case): a blocking `wait4` (or a
//!   `waitid` peek) for its tracees, as strace does. A tracee's stop wakes
//!   the tracer directly, with the *synchronous* wake-up the kernel gives a
//!   parent waiting for its child (`__wake_up_parent`): the scheduler may
//!   run the tracer on the CPU the tracee is leaving, instead of sending an
//!   interrupt to the other CPU. No signal is delivered, no eventfd
//!   written, no epoll woken: one system call per stop where there were
//!   five and a signal frame. SIGCHLD stays blocked in the tracer thread
//!   (it is not needed: the wait itself wakes).
//! - **In `epoll_wait`**, on an eventfd, when the thread must also watch
//!   other descriptors (uprobe rings), must wake on a timer, or has no
//!   tracee to wait for. A tracee's stop then wakes it through the
//!   process-wide SIGCHLD handler, which writes every tracer's eventfd
//!   (SIGCHLD is unblocked for the length of the `epoll_pwait` only).
//!
//! Whoever gives the thread work ([`RemoteWaker::wake`]: a command sent,
//! uprobe state shared between tracers) counts a *kick* and then wakes it
//! the way it sleeps: an eventfd write for epoll, a thread-directed signal
//! ([`WAKE_SIGNAL`]) for the kernel's wait, nothing if it is awake. The
//! sleeper announces how it sleeps, then checks for kicks since it last
//! looked, then sleeps; a kicker counts its kick, then reads (and resets)
//! the announcement. Both sides are sequentially consistent, so either the
//! sleeper sees the kick or the kicker sees the sleeper.
//!
//! A signal alone cannot interrupt a wait reliably: it may arrive after
//! the sleeper's last check and before the `wait4` starts, and then the
//! wait blocks with the kick missed. So the wait is entered through a few
//! instructions of assembly (as musl enters cancellable system calls): it
//! re-reads the announcement just before the `syscall` instruction, and
//! the signal's handler, finding the thread between that read and the
//! `syscall` (or about to restart it), moves it to an exit that returns
//! `EINTR` instead. A signal during the wait interrupts it as any signal
//! does. Every other blockable signal is blocked in the tracer thread, and
//! the wake signal (`SIGSTKFLT`, chosen as one programs hardly use) has a
//! lower number than glibc's internal ones, so the kernel takes it first
//! when two are pending at once, and its handler sees the interrupted
//! `syscall`, not another handler's entry.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use super::{Errno, Tid, WaitStatus};

/// The signal that interrupts a tracer thread's wait for its tracees.
pub const WAKE_SIGNAL: i32 = libc::SIGSTKFLT;

/// The tracer thread runs (it looks for work before it sleeps again).
const AWAKE: u32 = 0;
/// It sleeps in `epoll_wait`: a kick writes its eventfd.
const EPOLL: u32 = 1;
/// It sleeps in the kernel's wait for its tracees: a kick signals it.
/// (The assembly below compares with this value.)
const WAITING: u32 = 2;
/// The thread has exited: nothing to wake.
const GONE: u32 = 3;

// The wait, entered so that a kick cannot be missed (see the module's
// documentation). `utrace_engines_wake_wait(state, nr, a1, a2, a3, a4)`
// makes system call `nr` with four arguments unless `*state` is no longer
// WAITING, and returns its result, or -EINTR when the handler moved it from
// between `begin` and `end` to `cancel`.
std::arch::global_asm!(
    ".pushsection .text.utrace_engines_wake,\"ax\",@progbits",
    ".globl utrace_engines_wake_wait",
    ".hidden utrace_engines_wake_wait",
    ".type utrace_engines_wake_wait,@function",
    "utrace_engines_wake_wait:",
    "    mov r11, rdi",
    "    mov rax, rsi",
    "    mov rdi, rdx",
    "    mov rsi, rcx",
    "    mov rdx, r8",
    "    mov r10, r9",
    ".globl utrace_engines_wake_begin",
    ".hidden utrace_engines_wake_begin",
    "utrace_engines_wake_begin:",
    "    cmp dword ptr [r11], 2",
    "    jne utrace_engines_wake_cancel",
    "    syscall",
    ".globl utrace_engines_wake_end",
    ".hidden utrace_engines_wake_end",
    "utrace_engines_wake_end:",
    "    ret",
    ".globl utrace_engines_wake_cancel",
    ".hidden utrace_engines_wake_cancel",
    "utrace_engines_wake_cancel:",
    "    mov rax, -4",
    "    ret",
    ".size utrace_engines_wake_wait, .-utrace_engines_wake_wait",
    ".popsection",
);

extern "C" {
    fn utrace_engines_wake_wait(
        state: *const u32,
        nr: i64,
        a1: i64,
        a2: i64,
        a3: i64,
        a4: i64,
    ) -> i64;
    static utrace_engines_wake_begin: u8;
    static utrace_engines_wake_end: u8;
    static utrace_engines_wake_cancel: u8;
}

/// The wake signal's handler: a thread between the last look at its state
/// and the `syscall` (or rewound to restart it) leaves by the cancel exit.
extern "C" fn on_wake(_sig: i32, _info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid ucontext_t for an SA_SIGINFO
    // handler; only the saved instruction pointer is read and written, and
    // only ever set to the cancel exit of the same few instructions, which
    // needs no register but the stack pointer (unchanged).
    unsafe {
        let uc = &mut *ctx.cast::<libc::ucontext_t>();
        let rip = &mut uc.uc_mcontext.gregs[libc::REG_RIP as usize];
        let begin = std::ptr::addr_of!(utrace_engines_wake_begin) as i64;
        let end = std::ptr::addr_of!(utrace_engines_wake_end) as i64;
        if (begin..end).contains(rip) {
            *rip = std::ptr::addr_of!(utrace_engines_wake_cancel) as i64;
        }
    }
}

static INSTALL_WAKE: Once = Once::new();

/// Install `handler` (`SA_SIGINFO | SA_RESTART`) for `sig`, with every
/// signal blocked while it runs if `block_all`; the handler it replaces.
fn install(
    sig: i32,
    handler: extern "C" fn(i32, *mut libc::siginfo_t, *mut c_void),
    block_all: bool,
) -> Result<libc::sigaction, Errno> {
    // SAFETY: sigaction with a zeroed struct plus the fields we set is the
    // documented way to install a handler; `old` receives the previous one.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        if block_all {
            libc::sigfillset(&mut sa.sa_mask);
        } else {
            libc::sigemptyset(&mut sa.sa_mask);
        }
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, &sa, &mut old) != 0 {
            return Err(Errno::last());
        }
        Ok(old)
    }
}

/// The wake signal's handler, once. SA_RESTART: a restarted wait is
/// rewound to its `syscall`, which the handler sends to the cancel exit;
/// other system calls of the thread restart as usual.
fn install_wake_handler() -> Result<(), Errno> {
    let mut result = Ok(());
    INSTALL_WAKE.call_once(|| result = install(WAKE_SIGNAL, on_wake, true).map(drop));
    result
}

/// Eventfds of live tracer threads; the SIGCHLD handler writes each one.
static WAKERS: [AtomicI32; 256] = [const { AtomicI32::new(-1) }; 256];
/// One past the highest slot of [`WAKERS`] ever taken: the handler looks
/// at no more (a process has one or a few tracers; the handler runs at
/// every tracee stop, and scanning all 256 slots was 4 % of a traced
/// program's profile).
static WAKERS_USED: AtomicUsize = AtomicUsize::new(0);
/// The SIGCHLD handler that was installed before ours, chained from ours.
static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS_SIGINFO: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
/// Handlers running now; a tracer waits for zero before closing its eventfd,
/// so a handler never writes to a closed (and possibly reused) fd number.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
/// The tracer threads, for [`wake_all_tracers`].
static TRACERS: std::sync::Mutex<Vec<std::sync::Weak<Shared>>> = std::sync::Mutex::new(Vec::new());

extern "C" fn on_sigchld(sig: i32, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: errno is thread-local; saving and restoring it keeps the
    // interrupted code's errno intact. write(2) is async-signal-safe.
    unsafe {
        IN_HANDLER.fetch_add(1, Ordering::AcqRel);
        let errno = *libc::__errno_location();
        let one: u64 = 1;
        let used = WAKERS_USED.load(Ordering::Acquire).min(WAKERS.len());
        for slot in &WAKERS[..used] {
            let fd = slot.load(Ordering::Relaxed);
            if fd >= 0 {
                libc::write(fd, (&one as *const u64).cast(), 8);
            }
        }
        IN_HANDLER.fetch_sub(1, Ordering::AcqRel);
        let prev = PREVIOUS_HANDLER.load(Ordering::Relaxed);
        if prev > 1 {
            // prev is neither SIG_DFL (0) nor SIG_IGN (1): call it as installed.
            if PREVIOUS_SIGINFO.load(Ordering::Relaxed) != 0 {
                let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut c_void) =
                    std::mem::transmute(prev);
                f(sig, info, ctx);
            } else {
                let f: extern "C" fn(i32) = std::mem::transmute(prev);
                f(sig);
            }
        }
        *libc::__errno_location() = errno;
    }
}

/// Wake every tracer thread of this process: for state they share
/// ([`crate::uprobe`]'s location table).
pub fn wake_all_tracers() {
    let tracers: Vec<Arc<Shared>> = TRACERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .collect();
    for t in tracers {
        t.kick();
    }
}

fn install_sigchld_handler() -> Result<(), Errno> {
    let mut result = Ok(());
    INSTALL.call_once(|| match install(libc::SIGCHLD, on_sigchld, false) {
        Ok(old) => {
            if old.sa_sigaction != on_sigchld as *const () as usize {
                PREVIOUS_SIGINFO.store(
                    usize::from(old.sa_flags & libc::SA_SIGINFO != 0),
                    Ordering::Relaxed,
                );
                PREVIOUS_HANDLER.store(old.sa_sigaction, Ordering::Relaxed);
            }
        }
        Err(e) => result = Err(e),
    });
    result
}

/// What a tracer thread and the threads that wake it share.
#[derive(Debug)]
struct Shared {
    eventfd: OwnedFd,
    /// [`AWAKE`], [`EPOLL`], [`WAITING`] or [`GONE`].
    state: AtomicU32,
    /// Kicks so far.
    kicks: AtomicU64,
    pid: libc::pid_t,
    tid: Tid,
}

impl Shared {
    fn kick(&self) {
        self.kicks.fetch_add(1, Ordering::SeqCst);
        match self.state.swap(AWAKE, Ordering::SeqCst) {
            EPOLL => {
                let one: u64 = 1;
                // SAFETY: writing 8 bytes from a live u64 to an eventfd.
                unsafe {
                    libc::write(self.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8);
                }
            }
            WAITING => {
                // SAFETY: tgkill to a thread of this process (the tracer,
                // which has not exited: its state would be GONE).
                unsafe {
                    libc::syscall(libc::SYS_tgkill, self.pid, self.tid, WAKE_SIGNAL);
                }
            }
            GONE => self.state.store(GONE, Ordering::SeqCst),
            _ => {}
        }
    }
}

/// How [`Waker::wait_tracees`] waits.
#[derive(Clone, Copy, Debug)]
pub enum ChildWait {
    /// Take the next status (`wait4`), with the process's system time if
    /// `rusage`.
    Take { rusage: bool },
    /// Only wait until a status is there, leaving it to be taken
    /// (`waitid` with `WNOWAIT`).
    Peek,
}

/// Why [`Waker::wait_tracees`] returned.
#[derive(Debug)]
pub enum Woken {
    /// A status, taken.
    Taken(WaitStatus),
    /// A status is waiting to be taken ([`ChildWait::Peek`]): its tid,
    /// and for a ptrace stop its code (as [`super::peek_any_nohang`]).
    Ready(Tid, Option<i32>),
    /// A kick (or another signal): look for work.
    Kicked,
    /// The thread has no tracee or child to wait for.
    NoChildren,
    /// The wait failed.
    Failed(Errno),
}

/// The tracer thread's side: its sleeps ([`Waker::wait`] in epoll,
/// [`Waker::wait_tracees`] in the kernel's wait). Made on the tracer
/// thread itself.
pub struct Waker {
    shared: Arc<Shared>,
    epoll: OwnedFd,
    slot: usize,
    /// The thread's mask during an epoll sleep: SIGCHLD let in.
    epoll_mask: libc::sigset_t,
}

impl Waker {
    /// Made on the thread that will sleep: its signal mask becomes the
    /// tracer's (every blockable signal blocked but [`WAKE_SIGNAL`]).
    pub fn new() -> io::Result<Waker> {
        install_sigchld_handler().map_err(io::Error::from)?;
        install_wake_handler().map_err(io::Error::from)?;
        // SAFETY: plain syscalls; results are checked before use.
        let (efd, ep) = unsafe {
            let efd = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
            if efd < 0 {
                return Err(io::Error::last_os_error());
            }
            let efd = OwnedFd::from_raw_fd(efd);
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if ep < 0 {
                return Err(io::Error::last_os_error());
            }
            let ep = OwnedFd::from_raw_fd(ep);
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: 0,
            };
            if libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                efd.as_raw_fd(),
                &mut ev,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            (efd, ep)
        };
        let epoll_mask = set_tracer_mask()?;
        let raw = efd.as_raw_fd();
        let slot = WAKERS
            .iter()
            .position(|s| {
                s.compare_exchange(-1, raw, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| io::Error::other("more than 256 tracer threads in one process"))?;
        // Before this tracer has any tracee, so no SIGCHLD for it is missed.
        WAKERS_USED.fetch_max(slot + 1, Ordering::AcqRel);
        let shared = Arc::new(Shared {
            eventfd: efd,
            state: AtomicU32::new(AWAKE),
            kicks: AtomicU64::new(0),
            // SAFETY: getpid and gettid cannot fail.
            pid: unsafe { libc::getpid() },
            tid: nix::unistd::gettid().as_raw(),
        });
        {
            let mut all = TRACERS.lock().unwrap_or_else(|p| p.into_inner());
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&shared));
        }
        Ok(Waker {
            shared,
            epoll: ep,
            slot,
            epoll_mask,
        })
    }

    /// The epoll instance itself (shared), so other descriptors can wake
    /// the thread too (uprobe rings: [`epoll_add`]).
    pub fn epoll(&self) -> io::Result<Arc<OwnedFd>> {
        Ok(Arc::new(self.epoll.try_clone()?))
    }

    /// A sender-side handle.
    pub fn remote(&self) -> RemoteWaker {
        RemoteWaker(Arc::clone(&self.shared))
    }

    /// The kicks so far: take it before looking for work, and give it to
    /// the next sleep, which then returns at once if a kick came since.
    pub fn mark(&self) -> u64 {
        self.shared.kicks.load(Ordering::SeqCst)
    }

    /// Announce a sleep of kind `how`; false (and awake again) if a kick
    /// came since `mark`.
    fn announce(&self, how: u32, mark: u64) -> bool {
        self.shared.state.store(how, Ordering::SeqCst);
        if self.shared.kicks.load(Ordering::SeqCst) != mark {
            self.shared.state.store(AWAKE, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Block until the next wake-up (a kick, SIGCHLD, or a descriptor
    /// added with [`epoll_add`]), or `timeout_ms` (-1: no timeout), unless
    /// a kick came since `mark`. The caller re-checks all its sources, so
    /// which one woke it is not said.
    pub fn wait(&self, mark: u64, timeout_ms: i32) {
        if !self.announce(EPOLL, mark) {
            return;
        }
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `ev` is a valid buffer for one event, `epoll_mask` a valid
        // set. EINTR (a signal) is a wake-up like any other; the caller
        // re-checks all its sources.
        unsafe {
            libc::epoll_pwait(
                self.epoll.as_raw_fd(),
                &mut ev,
                1,
                timeout_ms,
                &self.epoll_mask,
            );
        }
        self.shared.state.store(AWAKE, Ordering::SeqCst);
    }

    /// Block in the kernel's wait for this thread's tracees and children
    /// (`__WALL | __WNOTHREAD`) until one has a status, unless a kick came
    /// since `mark`; a kick during the wait ends it ([`Woken::Kicked`]).
    pub fn wait_tracees(&self, mark: u64, how: ChildWait) -> Woken {
        if !self.announce(WAITING, mark) {
            return Woken::Kicked;
        }
        let flags = libc::__WALL | libc::__WNOTHREAD;
        let state = self.shared.state.as_ptr().cast_const();
        let woken = match how {
            ChildWait::Take { rusage } => {
                let mut status = 0i32;
                // SAFETY: rusage is plain old data; all-zero is valid.
                let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
                let ru_ptr = if rusage {
                    &mut ru as *mut libc::rusage as i64
                } else {
                    0
                };
                // SAFETY: wait4(-1, &status, flags, rusage or NULL) through
                // the stub; `status` and `ru` outlive the call; `state` is
                // this thread's live state word.
                let r = unsafe {
                    utrace_engines_wake_wait(
                        state,
                        libc::SYS_wait4,
                        -1,
                        &mut status as *mut i32 as i64,
                        i64::from(flags),
                        ru_ptr,
                    )
                };
                if r > 0 {
                    let stime_us = rusage.then(|| {
                        (ru.ru_stime.tv_sec as u64)
                            .saturating_mul(1_000_000)
                            .saturating_add(ru.ru_stime.tv_usec as u64)
                    });
                    Woken::Taken(WaitStatus {
                        tid: r as Tid,
                        status,
                        stime_us,
                    })
                } else {
                    Self::failed(r)
                }
            }
            ChildWait::Peek => {
                // SAFETY: siginfo_t is plain old data; all-zero is valid.
                let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: waitid(P_ALL, 0, &si, flags, NULL) through the
                // stub; `si` outlives the call.
                let r = unsafe {
                    utrace_engines_wake_wait(
                        state,
                        libc::SYS_waitid,
                        i64::from(libc::P_ALL),
                        0,
                        &mut si as *mut libc::siginfo_t as i64,
                        i64::from(flags | libc::WEXITED | libc::WSTOPPED | libc::WNOWAIT),
                    )
                };
                match (r, super::peeked(&si)) {
                    (0, Some((tid, stop))) => Woken::Ready(tid, stop),
                    (0, None) => Woken::Kicked,
                    _ => Self::failed(r),
                }
            }
        };
        self.shared.state.store(AWAKE, Ordering::SeqCst);
        woken
    }

    fn failed(r: i64) -> Woken {
        match Errno::from_raw(-r as i32) {
            Errno::EINTR => Woken::Kicked,
            Errno::ECHILD => Woken::NoChildren,
            e => Woken::Failed(e),
        }
    }

    /// Keep SIGCHLD from this thread and the threads it starts from now
    /// on (a program's main thread, before its runtime's threads exist):
    /// then only tracer threads sleeping in epoll take it, and no other
    /// thread is woken at a tracee's stop.
    pub fn block_sigchld() {
        sigchld_mask(libc::SIG_BLOCK);
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.shared.state.store(GONE, Ordering::SeqCst);
        WAKERS[self.slot].store(-1, Ordering::Release);
        while IN_HANDLER.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
    }
}

/// Set the tracer thread's mask: every blockable signal blocked (process
/// signals go to other threads) but the wake signal. Returns the mask for
/// epoll sleeps: the same, with SIGCHLD let in.
fn set_tracer_mask() -> io::Result<libc::sigset_t> {
    // SAFETY: building signal sets and setting this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigdelset(&mut set, WAKE_SIGNAL);
        // Faults are delivered whatever the mask; leaving them unblocked
        // keeps their usual meaning.
        for s in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGTRAP,
        ] {
            libc::sigdelset(&mut set, s);
        }
        let r = libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        libc::sigdelset(&mut set, libc::SIGCHLD);
        Ok(set)
    }
}

/// Block or unblock (`how`) SIGCHLD in this thread's signal mask.
fn sigchld_mask(how: libc::c_int) {
    // SAFETY: manipulating this thread's signal mask with a valid set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Wakes a tracer thread (see the module's documentation); shares
/// ownership of its eventfd, so it stays open for as long as any sender
/// can write it.
#[derive(Clone, Debug)]
pub struct RemoteWaker(Arc<Shared>);

impl RemoteWaker {
    /// Count a kick and wake the thread if it sleeps.
    pub fn wake(&self) {
        self.0.kick();
    }
}

/// Watch `fd` for input with the epoll instance `ep` (a [`Waker`]'s: it
/// wakes [`Waker::wait`]).
pub fn epoll_add(ep: &OwnedFd, fd: RawFd) -> Result<(), Errno> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 1,
    };
    // SAFETY: epoll_ctl with a valid event buffer.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Stop watching `fd` (before it closes; closing does it too, once every
/// reference to the file is gone).
pub fn epoll_del(ep: &OwnedFd, fd: RawFd) {
    // SAFETY: epoll_ctl; a null event is allowed for EPOLL_CTL_DEL.
    unsafe {
        libc::epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut(),
        );
    }
}
