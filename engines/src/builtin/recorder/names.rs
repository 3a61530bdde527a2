//! Name tables: the kernel's and libc's constants with the names strace
//! prints them by.

use super::table::{Flags, Names};
/// `(uapi::X, "X")`: a constant of [`uapi`] and its name.
macro_rules! u {
    ($c:ident) => {
        (uapi::$c as u32 as u64, stringify!($c))
    };
}

/// `(libc::X, "X")`: a libc constant and its name. Constants are C `int`s
/// or `unsigned`s: widened through `u32` so that a high bit is not
/// sign-extended.
macro_rules! c {
    ($c:ident) => {
        (libc::$c as u32 as u64, stringify!($c))
    };
}

/// Kernel constants libc does not export for this target (or marks
/// deprecated), named as in the kernel's uapi headers.
pub(super) mod uapi {
    // asm-generic/siginfo.h: `si_code` values of SIGILL, SIGFPE, SIGSEGV, SIGIO, SIGSYS.
    pub const ILL_ILLOPC: i32 = 1;
    pub const ILL_ILLOPN: i32 = 2;
    pub const ILL_ILLADR: i32 = 3;
    pub const ILL_ILLTRP: i32 = 4;
    pub const ILL_PRVOPC: i32 = 5;
    pub const ILL_PRVREG: i32 = 6;
    pub const ILL_COPROC: i32 = 7;
    pub const ILL_BADSTK: i32 = 8;
    pub const FPE_INTDIV: i32 = 1;
    pub const FPE_INTOVF: i32 = 2;
    pub const FPE_FLTDIV: i32 = 3;
    pub const FPE_FLTOVF: i32 = 4;
    pub const FPE_FLTUND: i32 = 5;
    pub const FPE_FLTRES: i32 = 6;
    pub const FPE_FLTINV: i32 = 7;
    pub const FPE_FLTSUB: i32 = 8;
    pub const SEGV_MAPERR: i32 = 1;
    pub const SEGV_ACCERR: i32 = 2;
    pub const SEGV_BNDERR: i32 = 3;
    pub const SEGV_PKUERR: i32 = 4;
    pub const POLL_IN: i32 = 1;
    pub const POLL_OUT: i32 = 2;
    pub const POLL_MSG: i32 = 3;
    pub const POLL_ERR: i32 = 4;
    pub const POLL_PRI: i32 = 5;
    pub const POLL_HUP: i32 = 6;
    pub const SYS_SECCOMP: i32 = 1;
    // asm-generic/fcntl.h: `fcntl` commands.
    pub const F_SETSIG: i32 = 10;
    pub const F_GETSIG: i32 = 11;
    pub const F_SETOWN_EX: i32 = 15;
    pub const F_GETOWN_EX: i32 = 16;
    // asm/prctl.h (x86): `arch_prctl` codes.
    pub const ARCH_SET_GS: i32 = 0x1001;
    pub const ARCH_SET_FS: i32 = 0x1002;
    pub const ARCH_GET_FS: i32 = 0x1003;
    pub const ARCH_GET_GS: i32 = 0x1004;
    pub const ARCH_GET_CPUID: i32 = 0x1011;
    pub const ARCH_SET_CPUID: i32 = 0x1012;
    pub const ARCH_GET_XCOMP_SUPP: i32 = 0x1021;
    pub const ARCH_GET_XCOMP_PERM: i32 = 0x1022;
    pub const ARCH_REQ_XCOMP_PERM: i32 = 0x1023;
    // linux/net.h: a socket type libc marks deprecated.
    pub const SOCK_PACKET: i32 = 10;
    // linux/socket.h, asm-generic/poll.h, linux/mempolicy.h.
    pub const MSG_PROXY: i32 = 0x10;
    pub const POLLMSG: i32 = 0x400;
    pub const MPOL_PREFERRED_MANY: i32 = 5;
    // uapi/linux/eventpoll.h, uapi/linux/tcp.h.
    pub const EPOLLNVAL: i32 = 0x20;
    pub const TCP_TX_DELAY: i32 = 37;
}

/// The kernel's `O_LARGEFILE` (`asm-generic/fcntl.h`); libc has 0 on 64-bit
/// targets, but the kernel reports it in `F_GETFL` and 32-bit calls pass it.
const KERNEL_O_LARGEFILE: u64 = 0o100000;
/// `SA_RESTORER` (`asm/signal.h`), not exported by libc for glibc targets.
pub(super) const SA_RESTORER: u64 = 0x0400_0000;

pub(super) static ACCESS_MODES: &Names = &[c!(O_RDONLY), c!(O_WRONLY), c!(O_RDWR)];

pub(super) static OPEN_FLAGS: Flags = Flags {
    names: &[
        c!(O_CREAT),
        c!(O_EXCL),
        c!(O_NOCTTY),
        c!(O_TRUNC),
        c!(O_APPEND),
        c!(O_NONBLOCK),
        c!(O_SYNC),
        c!(O_DSYNC),
        c!(O_DIRECT),
        (KERNEL_O_LARGEFILE, "O_LARGEFILE"),
        c!(O_NOFOLLOW),
        c!(O_NOATIME),
        c!(O_CLOEXEC),
        (libc::O_ASYNC as u32 as u64, "FASYNC"),
        c!(O_TMPFILE),
        c!(O_PATH),
        c!(O_DIRECTORY),
    ],
    zero: "0",
};

pub(super) static FD_FLAGS: Flags = Flags {
    names: &[c!(O_NONBLOCK), c!(O_DIRECT), c!(O_CLOEXEC)],
    zero: "0",
};

/// `personality`'s execution domains (the low byte), as strace names the
/// ones whose value is that byte alone.
pub(super) static PERSONALITY_TYPES: &Names = &[
    (0, "PER_LINUX"),
    (0x6, "PER_BSD"),
    (0x8, "PER_LINUX32"),
    (0xc, "PER_RISCOS"),
    (0xf, "PER_OSF4"),
    (0x10, "PER_HPUX"),
];

/// `personality`'s flags (above the low byte).
pub(super) static PERSONALITY_FLAGS: Flags = Flags {
    names: &[
        (0x002_0000, "UNAME26"),
        (0x004_0000, "ADDR_NO_RANDOMIZE"),
        (0x008_0000, "FDPIC_FUNCPTRS"),
        (0x010_0000, "MMAP_PAGE_ZERO"),
        (0x020_0000, "ADDR_COMPAT_LAYOUT"),
        (0x040_0000, "READ_IMPLIES_EXEC"),
        (0x080_0000, "ADDR_LIMIT_32BIT"),
        (0x100_0000, "SHORT_INODE"),
        (0x200_0000, "WHOLE_SECONDS"),
        (0x400_0000, "STICKY_TIMEOUTS"),
        (0x800_0000, "ADDR_LIMIT_3GB"),
    ],
    zero: "0",
};

pub(super) static FD_CLOEXEC_FLAG: Flags = Flags {
    names: &[c!(FD_CLOEXEC)],
    zero: "0",
};

pub(super) static ACCESS_MODE: Flags = Flags {
    names: &[c!(R_OK), c!(W_OK), c!(X_OK)],
    zero: "F_OK",
};

pub(super) static AT_FLAGS: Flags = Flags {
    names: &[
        c!(AT_SYMLINK_NOFOLLOW),
        c!(AT_REMOVEDIR),
        c!(AT_SYMLINK_FOLLOW),
        c!(AT_NO_AUTOMOUNT),
        c!(AT_EMPTY_PATH),
        c!(AT_STATX_FORCE_SYNC),
        c!(AT_STATX_DONT_SYNC),
        c!(AT_RECURSIVE),
    ],
    zero: "0",
};

pub(super) static FACCESSAT_FLAGS: Flags = Flags {
    names: &[c!(AT_SYMLINK_NOFOLLOW), c!(AT_EACCESS), c!(AT_EMPTY_PATH)],
    zero: "0",
};

pub(super) static PROT: Flags = Flags {
    names: &[
        c!(PROT_READ),
        c!(PROT_WRITE),
        c!(PROT_EXEC),
        c!(PROT_GROWSDOWN),
        c!(PROT_GROWSUP),
    ],
    zero: "PROT_NONE",
};

pub(super) static MAP_FLAGS: Flags = Flags {
    names: &[
        c!(MAP_SHARED_VALIDATE),
        c!(MAP_SHARED),
        c!(MAP_PRIVATE),
        c!(MAP_FIXED),
        c!(MAP_ANONYMOUS),
        c!(MAP_32BIT),
        c!(MAP_GROWSDOWN),
        c!(MAP_DENYWRITE),
        c!(MAP_EXECUTABLE),
        c!(MAP_LOCKED),
        c!(MAP_NORESERVE),
        c!(MAP_POPULATE),
        c!(MAP_NONBLOCK),
        c!(MAP_STACK),
        c!(MAP_HUGETLB),
        c!(MAP_SYNC),
        c!(MAP_FIXED_NOREPLACE),
    ],
    zero: "0",
};

pub(super) static MREMAP_FLAGS: Flags = Flags {
    names: &[c!(MREMAP_MAYMOVE), c!(MREMAP_FIXED)],
    zero: "0",
};

pub(super) static MSYNC_FLAGS: Flags = Flags {
    names: &[c!(MS_ASYNC), c!(MS_INVALIDATE), c!(MS_SYNC)],
    zero: "0",
};

pub(super) static MADVICE: &Names = &[
    c!(MADV_NORMAL),
    c!(MADV_RANDOM),
    c!(MADV_SEQUENTIAL),
    c!(MADV_WILLNEED),
    c!(MADV_DONTNEED),
    c!(MADV_FREE),
    c!(MADV_REMOVE),
    c!(MADV_DONTFORK),
    c!(MADV_DOFORK),
    c!(MADV_MERGEABLE),
    c!(MADV_UNMERGEABLE),
    c!(MADV_HUGEPAGE),
    c!(MADV_NOHUGEPAGE),
    c!(MADV_DONTDUMP),
    c!(MADV_DODUMP),
    c!(MADV_WIPEONFORK),
    c!(MADV_KEEPONFORK),
    c!(MADV_COLD),
    c!(MADV_PAGEOUT),
    c!(MADV_POPULATE_READ),
    c!(MADV_POPULATE_WRITE),
    c!(MADV_HWPOISON),
];

pub(super) static SEEK_WHENCE: &Names = &[
    c!(SEEK_SET),
    c!(SEEK_CUR),
    c!(SEEK_END),
    c!(SEEK_DATA),
    c!(SEEK_HOLE),
];

pub(super) static SIGPROCMASK_HOW: &Names = &[c!(SIG_BLOCK), c!(SIG_UNBLOCK), c!(SIG_SETMASK)];

pub(super) static ADDRESS_FAMILIES: &Names = &[
    c!(AF_UNSPEC),
    c!(AF_UNIX),
    c!(AF_INET),
    c!(AF_INET6),
    c!(AF_NETLINK),
    c!(AF_PACKET),
    c!(AF_ALG),
    c!(AF_VSOCK),
];

pub(super) static SOCK_TYPES: &Names = &[
    c!(SOCK_STREAM),
    c!(SOCK_DGRAM),
    c!(SOCK_RAW),
    c!(SOCK_RDM),
    c!(SOCK_SEQPACKET),
    u!(SOCK_PACKET),
];

pub(super) static SOCK_FLAGS: Flags = Flags {
    names: &[c!(SOCK_CLOEXEC), c!(SOCK_NONBLOCK)],
    zero: "0",
};

pub(super) static IP_PROTOCOLS: &Names = &[
    c!(IPPROTO_IP),
    c!(IPPROTO_ICMP),
    c!(IPPROTO_TCP),
    c!(IPPROTO_UDP),
    c!(IPPROTO_IPV6),
    c!(IPPROTO_ICMPV6),
    c!(IPPROTO_SCTP),
    c!(IPPROTO_RAW),
];

pub(super) static MSG_FLAGS: Flags = Flags {
    names: &[
        c!(MSG_OOB),
        c!(MSG_PEEK),
        c!(MSG_DONTROUTE),
        c!(MSG_CTRUNC),
        u!(MSG_PROXY),
        c!(MSG_TRUNC),
        c!(MSG_DONTWAIT),
        c!(MSG_EOR),
        c!(MSG_WAITALL),
        c!(MSG_FIN),
        c!(MSG_SYN),
        c!(MSG_CONFIRM),
        c!(MSG_RST),
        c!(MSG_ERRQUEUE),
        c!(MSG_NOSIGNAL),
        c!(MSG_MORE),
        c!(MSG_WAITFORONE),
        c!(MSG_FASTOPEN),
        c!(MSG_ZEROCOPY),
        c!(MSG_CMSG_CLOEXEC),
    ],
    zero: "0",
};

pub(super) static POLL_EVENTS: Flags = Flags {
    names: &[
        c!(POLLIN),
        c!(POLLPRI),
        c!(POLLOUT),
        c!(POLLERR),
        c!(POLLHUP),
        c!(POLLNVAL),
        c!(POLLRDNORM),
        c!(POLLRDBAND),
        c!(POLLWRNORM),
        c!(POLLWRBAND),
        u!(POLLMSG),
        c!(POLLRDHUP),
    ],
    zero: "0",
};

pub(super) static MPOL_MODES: &Names = &[
    c!(MPOL_DEFAULT),
    c!(MPOL_PREFERRED),
    c!(MPOL_BIND),
    c!(MPOL_INTERLEAVE),
    c!(MPOL_LOCAL),
    u!(MPOL_PREFERRED_MANY),
];

pub(super) static SHUTDOWN_HOW: &Names = &[c!(SHUT_RD), c!(SHUT_WR), c!(SHUT_RDWR)];

pub(super) static WAIT_OPTIONS: Flags = Flags {
    names: &[
        c!(WNOHANG),
        c!(WUNTRACED),
        c!(WEXITED),
        c!(WCONTINUED),
        c!(WNOWAIT),
        c!(__WNOTHREAD),
        c!(__WALL),
        c!(__WCLONE),
    ],
    zero: "0",
};

pub(super) static IDTYPES: &Names = &[c!(P_ALL), c!(P_PID), c!(P_PGID), c!(P_PIDFD)];

pub(super) static FLOCK_OPS: Flags = Flags {
    names: &[c!(LOCK_SH), c!(LOCK_EX), c!(LOCK_NB), c!(LOCK_UN)],
    zero: "0",
};

pub(super) static RESOURCES: &Names = &[
    c!(RLIMIT_CPU),
    c!(RLIMIT_FSIZE),
    c!(RLIMIT_DATA),
    c!(RLIMIT_STACK),
    c!(RLIMIT_CORE),
    c!(RLIMIT_RSS),
    c!(RLIMIT_NPROC),
    c!(RLIMIT_NOFILE),
    c!(RLIMIT_MEMLOCK),
    c!(RLIMIT_AS),
    c!(RLIMIT_LOCKS),
    c!(RLIMIT_SIGPENDING),
    c!(RLIMIT_MSGQUEUE),
    c!(RLIMIT_NICE),
    c!(RLIMIT_RTPRIO),
    c!(RLIMIT_RTTIME),
];

pub(super) static PRCTL_OPTIONS: &Names = &[
    c!(PR_SET_PDEATHSIG),
    c!(PR_GET_PDEATHSIG),
    c!(PR_GET_DUMPABLE),
    c!(PR_SET_DUMPABLE),
    c!(PR_GET_KEEPCAPS),
    c!(PR_SET_KEEPCAPS),
    c!(PR_SET_NAME),
    c!(PR_GET_NAME),
    c!(PR_GET_SECCOMP),
    c!(PR_SET_SECCOMP),
    c!(PR_CAPBSET_READ),
    c!(PR_CAPBSET_DROP),
    c!(PR_SET_TIMERSLACK),
    c!(PR_GET_TIMERSLACK),
    c!(PR_SET_MM),
    c!(PR_SET_CHILD_SUBREAPER),
    c!(PR_GET_CHILD_SUBREAPER),
    c!(PR_SET_NO_NEW_PRIVS),
    c!(PR_GET_NO_NEW_PRIVS),
    c!(PR_SET_THP_DISABLE),
    c!(PR_GET_THP_DISABLE),
    c!(PR_CAP_AMBIENT),
    c!(PR_SET_VMA),
];

pub(super) static ARCH_PRCTL_CODES: &Names = &[
    u!(ARCH_SET_GS),
    u!(ARCH_SET_FS),
    u!(ARCH_GET_FS),
    u!(ARCH_GET_GS),
    u!(ARCH_GET_CPUID),
    u!(ARCH_SET_CPUID),
    u!(ARCH_GET_XCOMP_SUPP),
    u!(ARCH_GET_XCOMP_PERM),
    u!(ARCH_REQ_XCOMP_PERM),
];

pub(super) static FADVICE: &Names = &[
    c!(POSIX_FADV_NORMAL),
    c!(POSIX_FADV_RANDOM),
    c!(POSIX_FADV_SEQUENTIAL),
    c!(POSIX_FADV_WILLNEED),
    c!(POSIX_FADV_DONTNEED),
    c!(POSIX_FADV_NOREUSE),
];

pub(super) static CLOCKS: &Names = &[
    c!(CLOCK_REALTIME),
    c!(CLOCK_MONOTONIC),
    c!(CLOCK_PROCESS_CPUTIME_ID),
    c!(CLOCK_THREAD_CPUTIME_ID),
    c!(CLOCK_MONOTONIC_RAW),
    c!(CLOCK_REALTIME_COARSE),
    c!(CLOCK_MONOTONIC_COARSE),
    c!(CLOCK_BOOTTIME),
    c!(CLOCK_REALTIME_ALARM),
    c!(CLOCK_BOOTTIME_ALARM),
    c!(CLOCK_TAI),
];

pub(super) static TIMER_FLAGS: Flags = Flags {
    names: &[c!(TIMER_ABSTIME)],
    zero: "0",
};

pub(super) static EPOLL_OPS: &Names = &[c!(EPOLL_CTL_ADD), c!(EPOLL_CTL_DEL), c!(EPOLL_CTL_MOD)];

/// `struct epoll_event`'s `events` (strace's names).
pub(super) static EPOLL_EVENTS: Flags = Flags {
    names: &[
        c!(EPOLLIN),
        c!(EPOLLPRI),
        c!(EPOLLOUT),
        c!(EPOLLERR),
        c!(EPOLLHUP),
        u!(EPOLLNVAL),
        c!(EPOLLRDNORM),
        c!(EPOLLRDBAND),
        c!(EPOLLWRNORM),
        c!(EPOLLWRBAND),
        c!(EPOLLMSG),
        c!(EPOLLRDHUP),
        c!(EPOLLEXCLUSIVE),
        c!(EPOLLWAKEUP),
        c!(EPOLLONESHOT),
        c!(EPOLLET),
    ],
    zero: "0",
};

/// `setsockopt`/`getsockopt` levels, as strace names them (`SOL_IP` for
/// 0, `SOL_TCP` for 6).
pub(super) static SOCKOPT_LEVELS: &Names = &[
    (0, "SOL_IP"),
    c!(SOL_SOCKET),
    (6, "SOL_TCP"),
    (17, "SOL_UDP"),
    c!(SOL_IPV6),
    c!(SOL_ICMPV6),
    c!(SOL_RAW),
    c!(SOL_PACKET),
    c!(SOL_NETLINK),
    c!(SOL_TLS),
];

/// Socket options of `SOL_SOCKET`.
pub(super) static SO_OPTIONS: &Names = &[
    c!(SO_DEBUG),
    c!(SO_REUSEADDR),
    c!(SO_TYPE),
    c!(SO_ERROR),
    c!(SO_DONTROUTE),
    c!(SO_BROADCAST),
    c!(SO_SNDBUF),
    c!(SO_RCVBUF),
    c!(SO_SNDBUFFORCE),
    c!(SO_RCVBUFFORCE),
    c!(SO_KEEPALIVE),
    c!(SO_OOBINLINE),
    c!(SO_NO_CHECK),
    c!(SO_PRIORITY),
    c!(SO_LINGER),
    c!(SO_BSDCOMPAT),
    c!(SO_REUSEPORT),
    c!(SO_PASSCRED),
    c!(SO_PEERCRED),
    c!(SO_RCVLOWAT),
    c!(SO_SNDLOWAT),
    (20, "SO_RCVTIMEO_OLD"),
    (21, "SO_SNDTIMEO_OLD"),
    c!(SO_BINDTODEVICE),
    c!(SO_ATTACH_FILTER),
    c!(SO_DETACH_FILTER),
    c!(SO_PEERNAME),
    (29, "SO_TIMESTAMP_OLD"),
    c!(SO_ACCEPTCONN),
    c!(SO_PEERSEC),
    c!(SO_PASSSEC),
    c!(SO_MARK),
    c!(SO_PROTOCOL),
    c!(SO_DOMAIN),
    c!(SO_RXQ_OVFL),
    c!(SO_ATTACH_BPF),
    c!(SO_INCOMING_CPU),
    c!(SO_BUSY_POLL),
    c!(SO_ZEROCOPY),
    c!(SO_TXTIME),
    c!(SO_BINDTOIFINDEX),
];

/// Socket options of `SOL_TCP`.
pub(super) static TCP_OPTIONS: &Names = &[
    c!(TCP_NODELAY),
    c!(TCP_MAXSEG),
    c!(TCP_CORK),
    c!(TCP_KEEPIDLE),
    c!(TCP_KEEPINTVL),
    c!(TCP_KEEPCNT),
    c!(TCP_SYNCNT),
    c!(TCP_LINGER2),
    c!(TCP_DEFER_ACCEPT),
    c!(TCP_WINDOW_CLAMP),
    c!(TCP_INFO),
    c!(TCP_QUICKACK),
    c!(TCP_CONGESTION),
    c!(TCP_MD5SIG),
    c!(TCP_THIN_LINEAR_TIMEOUTS),
    c!(TCP_THIN_DUPACK),
    c!(TCP_USER_TIMEOUT),
    c!(TCP_REPAIR),
    c!(TCP_REPAIR_QUEUE),
    c!(TCP_QUEUE_SEQ),
    c!(TCP_REPAIR_OPTIONS),
    c!(TCP_FASTOPEN),
    c!(TCP_TIMESTAMP),
    c!(TCP_NOTSENT_LOWAT),
    c!(TCP_CC_INFO),
    c!(TCP_SAVE_SYN),
    c!(TCP_SAVED_SYN),
    c!(TCP_REPAIR_WINDOW),
    c!(TCP_FASTOPEN_CONNECT),
    c!(TCP_ULP),
    c!(TCP_MD5SIG_EXT),
    c!(TCP_FASTOPEN_KEY),
    c!(TCP_FASTOPEN_NO_COOKIE),
    c!(TCP_ZEROCOPY_RECEIVE),
    c!(TCP_INQ),
    u!(TCP_TX_DELAY),
];

/// Socket options of `SOL_IP`.
pub(super) static IP_OPTIONS: &Names = &[
    c!(IP_TOS),
    c!(IP_TTL),
    c!(IP_HDRINCL),
    c!(IP_OPTIONS),
    c!(IP_RECVOPTS),
    c!(IP_RETOPTS),
    c!(IP_PKTINFO),
    c!(IP_MTU_DISCOVER),
    c!(IP_RECVERR),
    c!(IP_RECVTTL),
    c!(IP_RECVTOS),
    c!(IP_MTU),
    c!(IP_FREEBIND),
    c!(IP_TRANSPARENT),
    c!(IP_BIND_ADDRESS_NO_PORT),
    c!(IP_MULTICAST_IF),
    c!(IP_MULTICAST_TTL),
    c!(IP_MULTICAST_LOOP),
    c!(IP_ADD_MEMBERSHIP),
    c!(IP_DROP_MEMBERSHIP),
];

/// Socket options of `SOL_IPV6`.
pub(super) static IPV6_OPTIONS: &Names = &[
    c!(IPV6_ADDRFORM),
    c!(IPV6_UNICAST_HOPS),
    c!(IPV6_MULTICAST_IF),
    c!(IPV6_MULTICAST_HOPS),
    c!(IPV6_MULTICAST_LOOP),
    c!(IPV6_ADD_MEMBERSHIP),
    c!(IPV6_DROP_MEMBERSHIP),
    c!(IPV6_MTU_DISCOVER),
    c!(IPV6_MTU),
    c!(IPV6_RECVERR),
    c!(IPV6_V6ONLY),
    c!(IPV6_RECVPKTINFO),
    c!(IPV6_TCLASS),
    c!(IPV6_RECVTCLASS),
    c!(IPV6_FREEBIND),
];

pub(super) static STATX_MASK: Flags = Flags {
    names: &[
        c!(STATX_ALL),
        c!(STATX_BASIC_STATS),
        c!(STATX_TYPE),
        c!(STATX_MODE),
        c!(STATX_NLINK),
        c!(STATX_UID),
        c!(STATX_GID),
        c!(STATX_ATIME),
        c!(STATX_MTIME),
        c!(STATX_CTIME),
        c!(STATX_INO),
        c!(STATX_SIZE),
        c!(STATX_BLOCKS),
        c!(STATX_BTIME),
        c!(STATX_MNT_ID),
        c!(STATX_DIOALIGN),
    ],
    zero: "0",
};

pub(super) static STATX_ATTRS: Flags = Flags {
    names: &[
        c!(STATX_ATTR_COMPRESSED),
        c!(STATX_ATTR_IMMUTABLE),
        c!(STATX_ATTR_APPEND),
        c!(STATX_ATTR_NODUMP),
        c!(STATX_ATTR_ENCRYPTED),
        c!(STATX_ATTR_AUTOMOUNT),
        c!(STATX_ATTR_MOUNT_ROOT),
        c!(STATX_ATTR_VERITY),
        c!(STATX_ATTR_DAX),
    ],
    zero: "0",
};

pub(super) static RENAME_FLAGS: Flags = Flags {
    names: &[
        c!(RENAME_NOREPLACE),
        c!(RENAME_EXCHANGE),
        c!(RENAME_WHITEOUT),
    ],
    zero: "0",
};

pub(super) static GRND_FLAGS: Flags = Flags {
    names: &[c!(GRND_NONBLOCK), c!(GRND_RANDOM), c!(GRND_INSECURE)],
    zero: "0",
};

pub(super) static MFD_FLAGS: Flags = Flags {
    names: &[c!(MFD_CLOEXEC), c!(MFD_ALLOW_SEALING), c!(MFD_HUGETLB)],
    zero: "0",
};

pub(super) static TFD_FLAGS: Flags = Flags {
    names: &[c!(TFD_CLOEXEC), c!(TFD_NONBLOCK)],
    zero: "0",
};

pub(super) static SFD_FLAGS: Flags = Flags {
    names: &[c!(SFD_CLOEXEC), c!(SFD_NONBLOCK)],
    zero: "0",
};

pub(super) static EFD_FLAGS: Flags = Flags {
    names: &[c!(EFD_SEMAPHORE), c!(EFD_CLOEXEC), c!(EFD_NONBLOCK)],
    zero: "0",
};

pub(super) static EPOLL_FLAGS: Flags = Flags {
    names: &[c!(EPOLL_CLOEXEC)],
    zero: "0",
};

pub(super) static IN_FLAGS: Flags = Flags {
    names: &[c!(IN_CLOEXEC), c!(IN_NONBLOCK)],
    zero: "0",
};

pub(super) static CLOSE_RANGE_FLAGS: Flags = Flags {
    names: &[c!(CLOSE_RANGE_UNSHARE), c!(CLOSE_RANGE_CLOEXEC)],
    zero: "0",
};

pub(super) static CLONE_FLAGS: Flags = Flags {
    names: &[
        c!(CLONE_VM),
        c!(CLONE_FS),
        c!(CLONE_FILES),
        c!(CLONE_SIGHAND),
        c!(CLONE_PIDFD),
        c!(CLONE_PTRACE),
        c!(CLONE_VFORK),
        c!(CLONE_PARENT),
        c!(CLONE_THREAD),
        c!(CLONE_NEWNS),
        c!(CLONE_SYSVSEM),
        c!(CLONE_SETTLS),
        c!(CLONE_PARENT_SETTID),
        c!(CLONE_CHILD_CLEARTID),
        c!(CLONE_DETACHED),
        c!(CLONE_UNTRACED),
        c!(CLONE_CHILD_SETTID),
        c!(CLONE_NEWCGROUP),
        c!(CLONE_NEWUTS),
        c!(CLONE_NEWIPC),
        c!(CLONE_NEWUSER),
        c!(CLONE_NEWPID),
        c!(CLONE_NEWNET),
        c!(CLONE_IO),
    ],
    zero: "0",
};

pub(super) static FUTEX_CMDS: &Names = &[
    c!(FUTEX_WAIT),
    c!(FUTEX_WAKE),
    c!(FUTEX_FD),
    c!(FUTEX_REQUEUE),
    c!(FUTEX_CMP_REQUEUE),
    c!(FUTEX_WAKE_OP),
    c!(FUTEX_LOCK_PI),
    c!(FUTEX_UNLOCK_PI),
    c!(FUTEX_TRYLOCK_PI),
    c!(FUTEX_WAIT_BITSET),
    c!(FUTEX_WAKE_BITSET),
    c!(FUTEX_WAIT_REQUEUE_PI),
    c!(FUTEX_CMP_REQUEUE_PI),
    c!(FUTEX_LOCK_PI2),
];

pub(super) static FCNTL_CMDS: &Names = &[
    c!(F_DUPFD),
    c!(F_GETFD),
    c!(F_SETFD),
    c!(F_GETFL),
    c!(F_SETFL),
    c!(F_GETLK),
    c!(F_SETLK),
    c!(F_SETLKW),
    c!(F_SETOWN),
    c!(F_GETOWN),
    u!(F_SETSIG),
    u!(F_GETSIG),
    u!(F_SETOWN_EX),
    u!(F_GETOWN_EX),
    c!(F_OFD_GETLK),
    c!(F_OFD_SETLK),
    c!(F_OFD_SETLKW),
    c!(F_SETLEASE),
    c!(F_GETLEASE),
    c!(F_NOTIFY),
    c!(F_DUPFD_CLOEXEC),
    c!(F_SETPIPE_SZ),
    c!(F_GETPIPE_SZ),
    c!(F_ADD_SEALS),
    c!(F_GET_SEALS),
];

pub(super) static IOCTL_REQUESTS: &Names = &[
    c!(TCGETS),
    c!(TCSETS),
    c!(TCSETSW),
    c!(TCSETSF),
    c!(TCFLSH),
    c!(TIOCSCTTY),
    c!(TIOCGPGRP),
    c!(TIOCSPGRP),
    c!(TIOCOUTQ),
    c!(TIOCGWINSZ),
    c!(TIOCSWINSZ),
    c!(FIONREAD),
    c!(TIOCNOTTY),
    c!(FIONBIO),
    c!(FIONCLEX),
    c!(FIOCLEX),
    c!(FIOASYNC),
    c!(TIOCGPTN),
    c!(TIOCSPTLCK),
];

pub(super) static FILE_TYPES: &Names = &[
    c!(S_IFREG),
    c!(S_IFDIR),
    c!(S_IFCHR),
    c!(S_IFBLK),
    c!(S_IFIFO),
    c!(S_IFLNK),
    c!(S_IFSOCK),
];

pub(super) static SA_FLAGS: Flags = Flags {
    names: &[
        (SA_RESTORER, "SA_RESTORER"),
        c!(SA_ONSTACK),
        c!(SA_RESTART),
        c!(SA_NODEFER),
        c!(SA_RESETHAND),
        c!(SA_SIGINFO),
        c!(SA_NOCLDSTOP),
        c!(SA_NOCLDWAIT),
    ],
    zero: "0",
};

pub(super) static SS_FLAGS: Flags = Flags {
    names: &[c!(SS_ONSTACK), c!(SS_DISABLE)],
    zero: "0",
};

pub(super) static SI_CODES: &Names = &[
    c!(SI_USER),
    c!(SI_KERNEL),
    c!(SI_QUEUE),
    c!(SI_TIMER),
    c!(SI_MESGQ),
    c!(SI_ASYNCIO),
    c!(SI_SIGIO),
    c!(SI_TKILL),
    c!(SI_DETHREAD),
    c!(SI_ASYNCNL),
];

pub(super) static ILL_CODES: &Names = &[
    u!(ILL_ILLOPC),
    u!(ILL_ILLOPN),
    u!(ILL_ILLADR),
    u!(ILL_ILLTRP),
    u!(ILL_PRVOPC),
    u!(ILL_PRVREG),
    u!(ILL_COPROC),
    u!(ILL_BADSTK),
];

pub(super) static FPE_CODES: &Names = &[
    u!(FPE_INTDIV),
    u!(FPE_INTOVF),
    u!(FPE_FLTDIV),
    u!(FPE_FLTOVF),
    u!(FPE_FLTUND),
    u!(FPE_FLTRES),
    u!(FPE_FLTINV),
    u!(FPE_FLTSUB),
];

pub(super) static SEGV_CODES: &Names = &[
    u!(SEGV_MAPERR),
    u!(SEGV_ACCERR),
    u!(SEGV_BNDERR),
    u!(SEGV_PKUERR),
];

pub(super) static BUS_CODES: &Names = &[
    c!(BUS_ADRALN),
    c!(BUS_ADRERR),
    c!(BUS_OBJERR),
    c!(BUS_MCEERR_AR),
    c!(BUS_MCEERR_AO),
];

pub(super) static TRAP_CODES: &Names = &[
    c!(TRAP_BRKPT),
    c!(TRAP_TRACE),
    c!(TRAP_BRANCH),
    c!(TRAP_HWBKPT),
];

pub(super) static CLD_CODES: &Names = &[
    c!(CLD_EXITED),
    c!(CLD_KILLED),
    c!(CLD_DUMPED),
    c!(CLD_TRAPPED),
    c!(CLD_STOPPED),
    c!(CLD_CONTINUED),
];

pub(super) static POLL_CODES: &Names = &[
    u!(POLL_IN),
    u!(POLL_OUT),
    u!(POLL_MSG),
    u!(POLL_ERR),
    u!(POLL_PRI),
    u!(POLL_HUP),
];

pub(super) static SYS_CODES: &Names = &[u!(SYS_SECCOMP)];
