//! The syscall table: how each syscall's arguments and return value are
//! shown.

use super::names::{
    ACCESS_MODE, ADDRESS_FAMILIES, ARCH_PRCTL_CODES, AT_FLAGS, CLOCKS, CLONE_FLAGS,
    CLOSE_RANGE_FLAGS, EFD_FLAGS, EPOLL_FLAGS, EPOLL_OPS, FACCESSAT_FLAGS, FADVICE, FD_FLAGS,
    FLOCK_OPS, GRND_FLAGS, IDTYPES, IN_FLAGS, MADVICE, MAP_FLAGS, MFD_FLAGS, MPOL_MODES,
    MREMAP_FLAGS, MSG_FLAGS, MSYNC_FLAGS, PRCTL_OPTIONS, PROT, RENAME_FLAGS, RESOURCES,
    SEEK_WHENCE, SFD_FLAGS, SHUTDOWN_HOW, SIGPROCMASK_HOW, SOCKOPT_LEVELS, SOCK_FLAGS, STATX_MASK,
    TFD_FLAGS, TIMER_FLAGS, WAIT_OPTIONS,
};

/// How one argument is shown. Each kind reads the register at its own
/// position in the table entry unless it says otherwise.
#[derive(Clone, Copy, Debug)]
pub(super) enum Arg {
    /// `int`, decimal (also pids, uids).
    Int,
    /// A descriptor: decimal; with descriptor paths (strace's `-y`)
    /// followed by what it refers to, `3</etc/passwd>`.
    Fd,
    /// `unsigned int`, decimal.
    Uint,
    /// `long`/`off_t`, decimal.
    Long,
    /// `size_t`/`unsigned long`, decimal.
    Ulong,
    /// Hex (`0` for zero), for values not decoded further.
    Hex,
    /// A `personality` value: `PER_LINUX|ADDR_NO_RANDOMIZE`.
    Personality,
    /// A pointer: `NULL` or hex.
    Ptr,
    /// A pointer the kernel writes through, shown at exit.
    PtrOut,
    /// Not shown (a register the ABI splits, like `preadv2`'s high offset).
    Skip,
    /// A directory descriptor: `AT_FDCWD` or decimal.
    Dirfd,
    /// A file mode, octal (`0644`).
    Mode,
    /// A path read at entry, up to `PATH_MAX`.
    Path,
    /// A string read at entry, up to the string limit.
    Str,
    /// Bytes read at entry; the count is in argument `n`.
    BufIn(u8),
    /// Bytes the kernel wrote, read at exit; the count is the return value.
    BufOut,
    /// Like `BufOut`, every byte in `\x` hex (`getrandom`).
    BufOutHex,
    /// A path the kernel wrote (`getcwd`), read at exit.
    PathOut,
    /// An `iovec` array read at entry; its length is in argument `n`.
    IovIn(u8),
    /// An `iovec` array filled by the kernel; its length is in argument `n`.
    IovOut(u8),
    /// Bit flags by name.
    Flags(&'static Flags),
    /// One value by name, else decimal.
    Enum(&'static Names),
    /// `open` flags: the access mode always named.
    OpenFlags,
    /// The mode of `open`, shown only with `O_CREAT`/`O_TMPFILE` in argument `n`.
    OpenMode(u8),
    /// A signal number by name.
    Signal,
    /// A signal set read at entry.
    SigsetIn,
    /// A signal set written by the kernel.
    SigsetOut,
    /// A `struct sigaction` read at entry.
    SigactionIn,
    /// A `struct sigaction` written by the kernel.
    SigactionOut,
    /// A `stack_t` read at entry.
    StackIn,
    /// A `stack_t` written by the kernel.
    StackOut,
    /// The signal mask `rt_sigreturn` restores (read from the signal frame).
    SigreturnMask,
    /// A `struct stat` written by the kernel.
    StatOut,
    /// `statx` flags (`AT_STATX_SYNC_AS_STAT|…`).
    StatxFlags,
    /// A `struct statx` written by the kernel.
    StatxOut,
    /// `argv` of `execve`.
    Argv,
    /// `envp` of `execve`: the pointer and the count of variables.
    Envp,
    /// Two descriptors written by the kernel (`pipe`, `socketpair`).
    FdPairOut,
    /// A wait status written by the kernel.
    WaitStatusOut,
    /// A `struct rlimit` read at entry.
    RlimitIn,
    /// A `struct rlimit` written by the kernel.
    RlimitOut,
    /// A `struct timespec` read at entry.
    TimespecIn,
    /// A `struct timespec` written by the kernel.
    TimespecOut,
    /// A sleep's remaining time, shown at exit: the `struct timespec` the
    /// kernel wrote when a signal interrupted it, else the pointer (as
    /// strace).
    RemainOut,
    /// A `struct utsname` written by the kernel.
    UtsnameOut,
    /// A `struct sysinfo` written by the kernel.
    SysinfoOut,
    /// A `getdents64` buffer: the pointer and `/* N entries */` (the
    /// entries with `-v`).
    DirentsOut,
    /// A `getdents` buffer (`struct linux_dirent`), as `DirentsOut`.
    OldDirentsOut,
    /// A socket address read at entry; its length is in argument `n`.
    SockaddrIn(u8),
    /// A `struct pollfd` array; its length is in argument `n`.
    PollFds(u8),
    /// A socket address the kernel wrote; the pointer to its length is in
    /// argument `n`.
    SockaddrOut(u8),
    /// A `socklen_t` the kernel updated: `[N]`, or `[IN => OUT]` when it
    /// changed (the value at entry is kept for the exit).
    SocklenOut,
    /// A socket option's name; its level is argument 1.
    SockOpt,
    /// `setsockopt`'s value: `[N]` for an `int` (length, argument 4, of
    /// 4), `SO_LINGER`'s struct, else the pointer.
    SockOptIn,
    /// `getsockopt`'s value, as [`Arg::SockOptIn`], at exit; its length
    /// is at the pointer in argument 4.
    SockOptOut,
    /// A `struct epoll_event` read at entry.
    EpollEventIn,
    /// The `struct epoll_event`s the kernel wrote; the count is the
    /// return value.
    EpollEventsOut,
    /// Group ids the kernel wrote; the count is the return value.
    GidsOut,
    /// A CPU set the kernel wrote; its size in bytes is the return value.
    CpuSetOut,
    /// The `prctl` arguments that option uses (option in argument 0).
    PrctlRest,
    /// A socket type and its flags.
    SockType,
    /// A socket protocol, named for IP sockets (domain in argument 0).
    SockProto,
    /// `clone`'s stack (register 1).
    CloneStack,
    /// `clone`'s flags and exit signal (register 0).
    CloneFlags,
    /// `clone`'s thread-id and TLS pointers, shown at exit.
    CloneTail,
    /// `clone3`'s `struct clone_args`.
    Clone3Args,
    /// What `clone3` wrote back (` => {parent_tid=[N]}`) and the size
    /// (register 1), at exit.
    Clone3Tail,
    /// A futex operation.
    FutexOp,
    /// The futex arguments that operation uses.
    FutexRest,
    /// An `fcntl` command.
    FcntlCmd,
    /// The `fcntl` argument that command uses.
    FcntlValue,
    /// An `ioctl` request.
    IoctlReq,
    /// `ioctl`'s argument: not shown for the requests that take none
    /// (`FIOCLEX`…), as in strace; else hex.
    IoctlValue,
    /// `mremap`'s new address, shown only with `MREMAP_FIXED`.
    MremapNew,
    /// A NUMA node mask (`[0x00000000000001]`), as many words as the
    /// node count in argument N needs.
    NodemaskIn(u8),
    /// The same, written by the call, at exit.
    NodemaskOut(u8),
    /// A memory policy mode written by the call (`[MPOL_BIND]`), at exit.
    MpolModeOut,
}

impl Arg {
    /// Decoded at the exit stop (and so are the arguments after it).
    pub(super) fn at_exit(self) -> bool {
        matches!(
            self,
            Arg::PtrOut
                | Arg::BufOut
                | Arg::BufOutHex
                | Arg::PathOut
                | Arg::IovOut(_)
                | Arg::SigsetOut
                | Arg::SigactionOut
                | Arg::StackOut
                | Arg::StatOut
                | Arg::StatxOut
                | Arg::FdPairOut
                | Arg::WaitStatusOut
                | Arg::RlimitOut
                | Arg::TimespecOut
                | Arg::RemainOut
                | Arg::UtsnameOut
                | Arg::SysinfoOut
                | Arg::DirentsOut
                | Arg::OldDirentsOut
                | Arg::CloneTail
                | Arg::Clone3Tail
                | Arg::SockaddrOut(_)
                | Arg::SocklenOut
                | Arg::SockOptOut
                | Arg::EpollEventsOut
                | Arg::GidsOut
                | Arg::CpuSetOut
                | Arg::NodemaskOut(_)
                | Arg::MpolModeOut
        )
    }

    /// Prints its own leading separator (strace's `clone` decoders do).
    pub(super) fn self_separated(self) -> bool {
        matches!(self, Arg::CloneTail | Arg::Clone3Tail)
    }
}

/// How the return value is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ret {
    Dec,
    Hex,
    Oct,
    /// `fcntl`: flags by name for `F_GETFD`/`F_GETFL`.
    Fcntl,
    /// `personality`: the previous value in hex and by name,
    /// `0 (PER_LINUX)`.
    Personality,
    /// `poll`: `0 (Timeout)`, or the descriptors that have events.
    Poll,
    /// A new descriptor: decimal, with its path as [`Arg::Fd`].
    Fd,
}

/// One syscall's decoding: name, argument kinds, return kind.
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) name: &'static str,
    pub(super) args: &'static [Arg],
    pub(super) ret: Ret,
}

const fn d(name: &'static str, args: &'static [Arg]) -> Spec {
    Spec {
        name,
        args,
        ret: Ret::Dec,
    }
}

/// A call that returns a descriptor.
const fn f(name: &'static str, args: &'static [Arg]) -> Spec {
    Spec {
        name,
        args,
        ret: Ret::Fd,
    }
}

const fn x(name: &'static str, args: &'static [Arg]) -> Spec {
    Spec {
        name,
        args,
        ret: Ret::Hex,
    }
}

/// Syscalls this build has no name for: six hex arguments, as strace.
pub(super) static UNKNOWN: Spec = d("", &[Arg::Hex; 6]);

/// Value/name pairs.
pub(super) type Names = [(u64, &'static str)];

/// A flag set: names in the order strace prints them, and the text for zero.
#[derive(Debug)]
pub(super) struct Flags {
    pub(super) names: &'static Names,
    pub(super) zero: &'static str,
}

use Arg::*;

#[rustfmt::skip]
pub(super) static SPECS: &[Spec] = &[
    d("read", &[Fd, BufOut, Ulong]),
    d("write", &[Fd, BufIn(2), Ulong]),
    f("open", &[Path, OpenFlags, OpenMode(1)]),
    d("close", &[Fd]),
    d("stat", &[Path, StatOut]),
    d("fstat", &[Fd, StatOut]),
    d("lstat", &[Path, StatOut]),
    Spec { name: "poll", args: &[PollFds(1), Uint, Int], ret: Ret::Poll },
    d("lseek", &[Fd, Long, Enum(SEEK_WHENCE)]),
    x("mmap", &[Ptr, Ulong, Flags(&PROT), Flags(&MAP_FLAGS), Fd, Hex]),
    d("mprotect", &[Ptr, Ulong, Flags(&PROT)]),
    d("munmap", &[Ptr, Ulong]),
    x("brk", &[Ptr]),
    d("rt_sigaction", &[Signal, SigactionIn, SigactionOut, Ulong]),
    d("rt_sigprocmask", &[Enum(SIGPROCMASK_HOW), SigsetIn, SigsetOut, Ulong]),
    d("rt_sigreturn", &[SigreturnMask]),
    d("ioctl", &[Fd, IoctlReq, IoctlValue]),
    d("pread64", &[Fd, BufOut, Ulong, Long]),
    d("pwrite64", &[Fd, BufIn(2), Ulong, Long]),
    d("readv", &[Fd, IovOut(2), Int]),
    d("writev", &[Fd, IovIn(2), Int]),
    d("access", &[Path, Flags(&ACCESS_MODE)]),
    d("pipe", &[FdPairOut]),
    d("select", &[Int, Ptr, Ptr, Ptr, Ptr]),
    d("sched_yield", &[]),
    x("mremap", &[Ptr, Ulong, Ulong, Flags(&MREMAP_FLAGS), MremapNew]),
    d("msync", &[Ptr, Ulong, Flags(&MSYNC_FLAGS)]),
    d("mincore", &[Ptr, Ulong, Ptr]),
    d("madvise", &[Ptr, Ulong, Enum(MADVICE)]),
    d("shmget", &[Hex, Ulong, Hex]),
    x("shmat", &[Int, Ptr, Hex]),
    d("shmctl", &[Int, Int, Ptr]),
    f("dup", &[Fd]),
    f("dup2", &[Fd, Fd]),
    d("pause", &[]),
    d("nanosleep", &[TimespecIn, RemainOut]),
    d("getitimer", &[Int, Ptr]),
    d("alarm", &[Uint]),
    d("setitimer", &[Int, Ptr, Ptr]),
    d("getpid", &[]),
    d("sendfile", &[Fd, Fd, Ptr, Ulong]),
    f("socket", &[Enum(ADDRESS_FAMILIES), SockType, SockProto]),
    d("connect", &[Fd, SockaddrIn(2), Int]),
    f("accept", &[Fd, SockaddrOut(2), SocklenOut]),
    d("sendto", &[Fd, BufIn(2), Ulong, Flags(&MSG_FLAGS), SockaddrIn(5), Int]),
    d("recvfrom", &[Fd, BufOut, Ulong, Flags(&MSG_FLAGS), SockaddrOut(5), SocklenOut]),
    d("sendmsg", &[Fd, Ptr, Flags(&MSG_FLAGS)]),
    d("recvmsg", &[Fd, PtrOut, Flags(&MSG_FLAGS)]),
    d("shutdown", &[Fd, Enum(SHUTDOWN_HOW)]),
    d("bind", &[Fd, SockaddrIn(2), Int]),
    d("listen", &[Fd, Int]),
    d("getsockname", &[Fd, SockaddrOut(2), SocklenOut]),
    d("getpeername", &[Fd, SockaddrOut(2), SocklenOut]),
    d("socketpair", &[Enum(ADDRESS_FAMILIES), SockType, Int, FdPairOut]),
    d("setsockopt", &[Fd, Enum(SOCKOPT_LEVELS), SockOpt, SockOptIn, Int]),
    d("getsockopt", &[Fd, Enum(SOCKOPT_LEVELS), SockOpt, SockOptOut, SocklenOut]),
    d("clone", &[CloneStack, CloneFlags, CloneTail]),
    d("fork", &[]),
    d("vfork", &[]),
    d("execve", &[Path, Argv, Envp]),
    d("exit", &[Int]),
    d("wait4", &[Int, WaitStatusOut, Flags(&WAIT_OPTIONS), Ptr]),
    d("kill", &[Int, Signal]),
    d("uname", &[UtsnameOut]),
    d("semget", &[Hex, Int, Hex]),
    d("semop", &[Int, Ptr, Ulong]),
    d("semctl", &[Int, Int, Int, Hex]),
    d("shmdt", &[Ptr]),
    d("msgget", &[Hex, Hex]),
    d("msgsnd", &[Int, Ptr, Ulong, Hex]),
    d("msgrcv", &[Int, Ptr, Ulong, Long, Hex]),
    d("msgctl", &[Int, Int, Ptr]),
    Spec { name: "fcntl", args: &[Fd, FcntlCmd, FcntlValue], ret: Ret::Fcntl },
    d("flock", &[Fd, Flags(&FLOCK_OPS)]),
    d("fsync", &[Fd]),
    d("fdatasync", &[Fd]),
    d("truncate", &[Path, Long]),
    d("ftruncate", &[Fd, Long]),
    d("getdents", &[Fd, OldDirentsOut, Uint]),
    d("getcwd", &[PathOut, Ulong]),
    d("chdir", &[Path]),
    d("fchdir", &[Fd]),
    d("rename", &[Path, Path]),
    d("mkdir", &[Path, Mode]),
    d("rmdir", &[Path]),
    f("creat", &[Path, Mode]),
    d("link", &[Path, Path]),
    d("unlink", &[Path]),
    d("symlink", &[Path, Path]),
    d("readlink", &[Path, BufOut, Ulong]),
    d("chmod", &[Path, Mode]),
    d("fchmod", &[Fd, Mode]),
    d("chown", &[Path, Int, Int]),
    d("fchown", &[Fd, Int, Int]),
    d("lchown", &[Path, Int, Int]),
    Spec { name: "umask", args: &[Mode], ret: Ret::Oct },
    d("gettimeofday", &[Ptr, Ptr]),
    d("getrlimit", &[Enum(RESOURCES), RlimitOut]),
    d("getrusage", &[Int, Ptr]),
    d("sysinfo", &[SysinfoOut]),
    d("times", &[Ptr]),
    d("ptrace", &[Int, Int, Hex, Hex]),
    d("getuid", &[]),
    d("syslog", &[Int, Ptr, Int]),
    d("getgid", &[]),
    d("setuid", &[Int]),
    d("setgid", &[Int]),
    d("geteuid", &[]),
    d("getegid", &[]),
    d("setpgid", &[Int, Int]),
    d("getppid", &[]),
    d("getpgrp", &[]),
    d("setsid", &[]),
    d("setreuid", &[Int, Int]),
    d("setregid", &[Int, Int]),
    d("getgroups", &[Int, GidsOut]),
    d("setgroups", &[Int, Ptr]),
    d("setresuid", &[Int, Int, Int]),
    d("getresuid", &[Ptr, Ptr, Ptr]),
    d("setresgid", &[Int, Int, Int]),
    d("getresgid", &[Ptr, Ptr, Ptr]),
    d("getpgid", &[Int]),
    d("setfsuid", &[Int]),
    d("setfsgid", &[Int]),
    d("getsid", &[Int]),
    d("capget", &[Ptr, Ptr]),
    d("capset", &[Ptr, Ptr]),
    d("rt_sigpending", &[SigsetOut, Ulong]),
    d("rt_sigtimedwait", &[SigsetIn, Ptr, TimespecIn, Ulong]),
    d("rt_sigqueueinfo", &[Int, Signal, Ptr]),
    d("rt_sigsuspend", &[SigsetIn, Ulong]),
    d("sigaltstack", &[StackIn, StackOut]),
    d("utime", &[Path, Ptr]),
    d("mknod", &[Path, Mode, Hex]),
    d("uselib", &[Path]),
    Spec {
        name: "personality",
        args: &[Personality],
        ret: Ret::Personality,
    },
    d("ustat", &[Hex, Ptr]),
    d("statfs", &[Path, PtrOut]),
    d("fstatfs", &[Fd, PtrOut]),
    d("sysfs", &[Int, Hex, Hex]),
    d("getpriority", &[Int, Int]),
    d("setpriority", &[Int, Int, Int]),
    d("sched_setparam", &[Int, Ptr]),
    d("sched_getparam", &[Int, Ptr]),
    d("sched_setscheduler", &[Int, Int, Ptr]),
    d("sched_getscheduler", &[Int]),
    d("sched_get_priority_max", &[Int]),
    d("sched_get_priority_min", &[Int]),
    d("sched_rr_get_interval", &[Int, Ptr]),
    d("mlock", &[Ptr, Ulong]),
    d("munlock", &[Ptr, Ulong]),
    d("mlockall", &[Hex]),
    d("munlockall", &[]),
    d("vhangup", &[]),
    d("modify_ldt", &[Int, Ptr, Ulong]),
    d("pivot_root", &[Path, Path]),
    d("_sysctl", &[Ptr]),
    d("prctl", &[Enum(PRCTL_OPTIONS), PrctlRest]),
    d("arch_prctl", &[Enum(ARCH_PRCTL_CODES), Hex]),
    d("adjtimex", &[Ptr]),
    d("setrlimit", &[Enum(RESOURCES), RlimitIn]),
    d("chroot", &[Path]),
    d("sync", &[]),
    d("acct", &[Path]),
    d("settimeofday", &[Ptr, Ptr]),
    d("mount", &[Path, Path, Str, Hex, Ptr]),
    d("umount2", &[Path, Hex]),
    d("swapon", &[Path, Hex]),
    d("swapoff", &[Path]),
    d("reboot", &[Hex, Hex, Hex, Ptr]),
    d("sethostname", &[BufIn(1), Ulong]),
    d("setdomainname", &[BufIn(1), Ulong]),
    d("iopl", &[Int]),
    d("ioperm", &[Hex, Hex, Int]),
    d("create_module", &[Str, Ulong]),
    d("init_module", &[Ptr, Ulong, Str]),
    d("delete_module", &[Str, Hex]),
    d("get_kernel_syms", &[Ptr]),
    d("query_module", &[Str, Int, Ptr, Ulong, Ptr]),
    d("quotactl", &[Hex, Path, Int, Ptr]),
    d("nfsservctl", &[Int, Ptr, Ptr]),
    d("getpmsg", &[Hex, Hex, Hex, Hex, Hex]),
    d("putpmsg", &[Hex, Hex, Hex, Hex, Hex]),
    d("afs_syscall", &[Hex, Hex, Hex, Hex, Hex]),
    d("tuxcall", &[Hex, Hex, Hex]),
    d("security", &[Hex, Hex, Hex]),
    d("gettid", &[]),
    d("readahead", &[Fd, Long, Ulong]),
    d("setxattr", &[Path, Str, BufIn(3), Ulong, Hex]),
    d("lsetxattr", &[Path, Str, BufIn(3), Ulong, Hex]),
    d("fsetxattr", &[Fd, Str, BufIn(3), Ulong, Hex]),
    d("getxattr", &[Path, Str, BufOut, Ulong]),
    d("lgetxattr", &[Path, Str, BufOut, Ulong]),
    d("fgetxattr", &[Fd, Str, BufOut, Ulong]),
    d("listxattr", &[Path, BufOut, Ulong]),
    d("llistxattr", &[Path, BufOut, Ulong]),
    d("flistxattr", &[Fd, BufOut, Ulong]),
    d("removexattr", &[Path, Str]),
    d("lremovexattr", &[Path, Str]),
    d("fremovexattr", &[Fd, Str]),
    d("tkill", &[Int, Signal]),
    d("time", &[Ptr]),
    d("futex", &[Ptr, FutexOp, FutexRest]),
    d("sched_setaffinity", &[Int, Ulong, Ptr]),
    d("sched_getaffinity", &[Int, Ulong, CpuSetOut]),
    d("set_thread_area", &[Ptr]),
    d("io_setup", &[Uint, Ptr]),
    d("io_destroy", &[Hex]),
    d("io_getevents", &[Hex, Long, Long, Ptr, Ptr]),
    d("io_submit", &[Hex, Long, Ptr]),
    d("io_cancel", &[Hex, Ptr, Ptr]),
    d("get_thread_area", &[Ptr]),
    d("lookup_dcookie", &[Hex, Ptr, Ulong]),
    f("epoll_create", &[Int]),
    d("epoll_ctl_old", &[Hex, Hex, Hex, Hex]),
    d("epoll_wait_old", &[Hex, Hex, Hex, Hex]),
    d("remap_file_pages", &[Ptr, Ulong, Flags(&PROT), Ulong, Hex]),
    d("getdents64", &[Fd, DirentsOut, Uint]),
    d("set_tid_address", &[Ptr]),
    d("restart_syscall", &[]),
    d("semtimedop", &[Int, Ptr, Ulong, Ptr]),
    d("fadvise64", &[Fd, Long, Long, Enum(FADVICE)]),
    d("timer_create", &[Enum(CLOCKS), Ptr, Ptr]),
    d("timer_settime", &[Int, Hex, Ptr, Ptr]),
    d("timer_gettime", &[Int, Ptr]),
    d("timer_getoverrun", &[Int]),
    d("timer_delete", &[Int]),
    d("clock_settime", &[Enum(CLOCKS), TimespecIn]),
    d("clock_gettime", &[Enum(CLOCKS), TimespecOut]),
    d("clock_getres", &[Enum(CLOCKS), TimespecOut]),
    d("clock_nanosleep", &[Enum(CLOCKS), Flags(&TIMER_FLAGS), TimespecIn, RemainOut]),
    d("exit_group", &[Int]),
    d("epoll_wait", &[Fd, EpollEventsOut, Int, Int]),
    d("epoll_ctl", &[Fd, Enum(EPOLL_OPS), Fd, EpollEventIn]),
    d("tgkill", &[Int, Int, Signal]),
    d("utimes", &[Path, Ptr]),
    d("vserver", &[Hex, Hex, Hex, Hex, Hex]),
    d("mbind", &[Ptr, Ulong, Enum(MPOL_MODES), NodemaskIn(4), Ulong, Hex]),
    d("set_mempolicy", &[Enum(MPOL_MODES), NodemaskIn(2), Ulong]),
    d("get_mempolicy", &[MpolModeOut, NodemaskOut(2), Ulong, Ptr, Hex]),
    f("mq_open", &[Str, OpenFlags, Mode, Ptr]),
    d("mq_unlink", &[Str]),
    d("mq_timedsend", &[Fd, BufIn(2), Ulong, Uint, Ptr]),
    d("mq_timedreceive", &[Fd, BufOut, Ulong, Ptr, Ptr]),
    d("mq_notify", &[Fd, Ptr]),
    d("mq_getsetattr", &[Fd, Ptr, Ptr]),
    d("kexec_load", &[Hex, Ulong, Ptr, Hex]),
    d("waitid", &[Enum(IDTYPES), Int, Ptr, Flags(&WAIT_OPTIONS), Ptr]),
    d("add_key", &[Str, Str, Ptr, Ulong, Int]),
    d("request_key", &[Str, Str, Str, Int]),
    d("keyctl", &[Int, Hex, Hex, Hex, Hex]),
    d("ioprio_set", &[Int, Int, Int]),
    d("ioprio_get", &[Int, Int]),
    f("inotify_init", &[]),
    d("inotify_add_watch", &[Fd, Path, Hex]),
    d("inotify_rm_watch", &[Fd, Int]),
    d("migrate_pages", &[Int, Ulong, Ptr, Ptr]),
    f("openat", &[Dirfd, Path, OpenFlags, OpenMode(2)]),
    d("mkdirat", &[Dirfd, Path, Mode]),
    d("mknodat", &[Dirfd, Path, Mode, Hex]),
    d("fchownat", &[Dirfd, Path, Int, Int, Flags(&AT_FLAGS)]),
    d("futimesat", &[Dirfd, Path, Ptr]),
    d("newfstatat", &[Dirfd, Path, StatOut, Flags(&AT_FLAGS)]),
    d("unlinkat", &[Dirfd, Path, Flags(&AT_FLAGS)]),
    d("renameat", &[Dirfd, Path, Dirfd, Path]),
    d("linkat", &[Dirfd, Path, Dirfd, Path, Flags(&AT_FLAGS)]),
    d("symlinkat", &[Path, Dirfd, Path]),
    d("readlinkat", &[Dirfd, Path, BufOut, Ulong]),
    d("fchmodat", &[Dirfd, Path, Mode]),
    d("faccessat", &[Dirfd, Path, Flags(&ACCESS_MODE)]),
    d("pselect6", &[Int, Ptr, Ptr, Ptr, Ptr, Ptr]),
    Spec { name: "ppoll", args: &[PollFds(1), Uint, TimespecIn, SigsetIn, Ulong], ret: Ret::Poll },
    d("unshare", &[Flags(&CLONE_FLAGS)]),
    d("set_robust_list", &[Ptr, Ulong]),
    d("get_robust_list", &[Int, Ptr, Ptr]),
    d("splice", &[Fd, Ptr, Fd, Ptr, Ulong, Hex]),
    d("tee", &[Fd, Fd, Ulong, Hex]),
    d("sync_file_range", &[Fd, Long, Long, Hex]),
    d("vmsplice", &[Fd, Ptr, Ulong, Hex]),
    d("move_pages", &[Int, Ulong, Ptr, Ptr, Ptr, Hex]),
    d("utimensat", &[Dirfd, Path, Ptr, Flags(&AT_FLAGS)]),
    d("epoll_pwait", &[Fd, EpollEventsOut, Int, Int, SigsetIn, Ulong]),
    f("signalfd", &[Fd, SigsetIn, Ulong]),
    f("timerfd_create", &[Enum(CLOCKS), Flags(&TFD_FLAGS)]),
    f("eventfd", &[Uint]),
    d("fallocate", &[Fd, Hex, Long, Long]),
    d("timerfd_settime", &[Fd, Hex, Ptr, Ptr]),
    d("timerfd_gettime", &[Fd, Ptr]),
    f("accept4", &[Fd, SockaddrOut(2), SocklenOut, Flags(&SOCK_FLAGS)]),
    f("signalfd4", &[Fd, SigsetIn, Ulong, Flags(&SFD_FLAGS)]),
    f("eventfd2", &[Uint, Flags(&EFD_FLAGS)]),
    f("epoll_create1", &[Flags(&EPOLL_FLAGS)]),
    f("dup3", &[Fd, Fd, Flags(&FD_FLAGS)]),
    d("pipe2", &[FdPairOut, Flags(&FD_FLAGS)]),
    f("inotify_init1", &[Flags(&IN_FLAGS)]),
    d("preadv", &[Fd, IovOut(2), Int, Long]),
    d("pwritev", &[Fd, IovIn(2), Int, Long]),
    d("rt_tgsigqueueinfo", &[Int, Int, Signal, Ptr]),
    f("perf_event_open", &[Ptr, Int, Int, Int, Hex]),
    d("recvmmsg", &[Fd, Ptr, Uint, Hex, Ptr]),
    f("fanotify_init", &[Hex, Hex]),
    d("fanotify_mark", &[Fd, Hex, Hex, Dirfd, Path]),
    d("prlimit64", &[Int, Enum(RESOURCES), RlimitIn, RlimitOut]),
    d("name_to_handle_at", &[Dirfd, Path, Ptr, Ptr, Flags(&AT_FLAGS)]),
    f("open_by_handle_at", &[Fd, Ptr, OpenFlags]),
    d("clock_adjtime", &[Enum(CLOCKS), Ptr]),
    d("syncfs", &[Fd]),
    d("sendmmsg", &[Fd, Ptr, Uint, Hex]),
    d("setns", &[Fd, Flags(&CLONE_FLAGS)]),
    d("getcpu", &[Ptr, Ptr, Ptr]),
    d("process_vm_readv", &[Int, Ptr, Ulong, Ptr, Ulong, Hex]),
    d("process_vm_writev", &[Int, Ptr, Ulong, Ptr, Ulong, Hex]),
    d("kcmp", &[Int, Int, Int, Hex, Hex]),
    d("finit_module", &[Fd, Str, Hex]),
    d("sched_setattr", &[Int, Ptr, Hex]),
    d("sched_getattr", &[Int, Ptr, Uint, Hex]),
    d("renameat2", &[Dirfd, Path, Dirfd, Path, Flags(&RENAME_FLAGS)]),
    d("seccomp", &[Int, Hex, Ptr]),
    d("getrandom", &[BufOutHex, Ulong, Flags(&GRND_FLAGS)]),
    f("memfd_create", &[Str, Flags(&MFD_FLAGS)]),
    d("kexec_file_load", &[Int, Int, Ulong, Str, Hex]),
    d("bpf", &[Int, Ptr, Uint]),
    d("execveat", &[Dirfd, Path, Argv, Envp, Flags(&AT_FLAGS)]),
    f("userfaultfd", &[Flags(&FD_FLAGS)]),
    d("membarrier", &[Int, Hex]),
    d("mlock2", &[Ptr, Ulong, Hex]),
    d("copy_file_range", &[Fd, Ptr, Fd, Ptr, Ulong, Hex]),
    d("preadv2", &[Fd, IovOut(2), Int, Long, Skip, Hex]),
    d("pwritev2", &[Fd, IovIn(2), Int, Long, Skip, Hex]),
    d("pkey_mprotect", &[Ptr, Ulong, Flags(&PROT), Int]),
    d("pkey_alloc", &[Hex, Hex]),
    d("pkey_free", &[Int]),
    d("statx", &[Dirfd, Path, StatxFlags, Flags(&STATX_MASK), StatxOut]),
    d("io_pgetevents", &[Hex, Long, Long, Ptr, Ptr, Ptr]),
    d("rseq", &[Ptr, Hex, Hex, Hex]),
    d("uretprobe", &[]),
    d("uprobe", &[]),
    d("pidfd_send_signal", &[Fd, Signal, Ptr, Hex]),
    f("io_uring_setup", &[Uint, Ptr]),
    d("io_uring_enter", &[Fd, Uint, Uint, Hex, Ptr, Ulong]),
    d("io_uring_register", &[Fd, Uint, Ptr, Uint]),
    f("open_tree", &[Dirfd, Path, Hex]),
    d("move_mount", &[Dirfd, Path, Dirfd, Path, Hex]),
    f("fsopen", &[Str, Hex]),
    d("fsconfig", &[Fd, Int, Str, Ptr, Int]),
    f("fsmount", &[Fd, Hex, Hex]),
    f("fspick", &[Dirfd, Path, Hex]),
    f("pidfd_open", &[Int, Hex]),
    d("clone3", &[Clone3Args, Clone3Tail]),
    d("close_range", &[Uint, Uint, Flags(&CLOSE_RANGE_FLAGS)]),
    f("openat2", &[Dirfd, Path, Ptr, Ulong]),
    f("pidfd_getfd", &[Fd, Int, Hex]),
    d("faccessat2", &[Dirfd, Path, Flags(&ACCESS_MODE), Flags(&FACCESSAT_FLAGS)]),
    d("process_madvise", &[Fd, Ptr, Ulong, Enum(MADVICE), Hex]),
    d("epoll_pwait2", &[Fd, EpollEventsOut, Int, Ptr, SigsetIn, Ulong]),
    d("mount_setattr", &[Dirfd, Path, Hex, Ptr, Ulong]),
    d("quotactl_fd", &[Fd, Hex, Int, Ptr]),
    f("landlock_create_ruleset", &[Ptr, Ulong, Hex]),
    d("landlock_add_rule", &[Fd, Int, Ptr, Hex]),
    d("landlock_restrict_self", &[Fd, Hex]),
    f("memfd_secret", &[Hex]),
    d("process_mrelease", &[Fd, Hex]),
    d("futex_waitv", &[Ptr, Uint, Hex, Ptr, Enum(CLOCKS)]),
    d("set_mempolicy_home_node", &[Ptr, Ulong, Ulong, Hex]),
    d("cachestat", &[Fd, Ptr, Ptr, Hex]),
    d("fchmodat2", &[Dirfd, Path, Mode, Flags(&AT_FLAGS)]),
    x("map_shadow_stack", &[Ptr, Ulong, Hex]),
    d("futex_wake", &[Ptr, Hex, Int, Hex]),
    d("futex_wait", &[Ptr, Hex, Hex, Hex, Ptr, Enum(CLOCKS)]),
    d("futex_requeue", &[Ptr, Hex, Int, Int]),
    d("statmount", &[Ptr, Ptr, Ulong, Hex]),
    d("listmount", &[Ptr, Ptr, Ulong, Hex]),
    d("lsm_get_self_attr", &[Uint, Ptr, Ptr, Hex]),
    d("lsm_set_self_attr", &[Uint, Ptr, Ulong, Hex]),
    d("lsm_list_modules", &[Ptr, Ptr, Hex]),
    d("mseal", &[Ptr, Ulong, Hex]),
    d("setxattrat", &[Dirfd, Path, Flags(&AT_FLAGS), Str, Ptr, Ulong]),
    d("getxattrat", &[Dirfd, Path, Flags(&AT_FLAGS), Str, Ptr, Ulong]),
    d("listxattrat", &[Dirfd, Path, Flags(&AT_FLAGS), Ptr, Ulong]),
    d("removexattrat", &[Dirfd, Path, Flags(&AT_FLAGS), Str]),
    f("open_tree_attr", &[Dirfd, Path, Hex, Ptr, Ulong]),
    d("file_getattr", &[Dirfd, Path, Ptr, Ulong, Flags(&AT_FLAGS)]),
    d("file_setattr", &[Dirfd, Path, Ptr, Ulong, Flags(&AT_FLAGS)]),
];
