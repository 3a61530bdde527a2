//! Decoding one call: the tracee memory the decoders read, what they see
//! of a call, and the text of its arguments and its return value.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::OnceLock;

use crate::event::{SyscallEntry, SyscallExit};
use crate::task::Task;

use super::details::{Detail, Details};
use super::format::{
    buffer_at, dirfd, enum_lookup, enum_name, fd_pair, flags, hex, i32_at, in_struct, mode_octal,
    open_flags, out_struct, ptr, quote, quote_read, string_at, u32_at, u64_at, xlat,
};
use super::names::{FCNTL_CMDS, FD_CLOEXEC_FLAG, IOCTL_REQUESTS, MPOL_MODES};
use super::signals::{errno_text, signal_arg};
use super::structs::{
    argv_at, clone3_args, clone3_tail, clone_flags, clone_tail, dirents, envp_at, epoll_event_in,
    epoll_events_out, fcntl_arg, futex_op, futex_rest, iovec, personality, pollfds, prctl_rest,
    rlimit, sigaction_at, sigreturn_mask, sigset_at, sock_proto, sock_type, sockaddr_at,
    sockopt_name, sockopt_value, stack_at, stat_struct, statx_flags, statx_struct, sysinfo,
    timespec, utsname, wait_status,
};
use super::table::Arg::*;
use super::table::{Arg, Ret, Spec, SPECS, UNKNOWN};
use super::{MAX_CPU_SET_BYTES, PATH_LIMIT};
/// Tracee memory as the decoders read it: a stopped [`Task`], or a fake in
/// tests.
pub(super) trait Tracee {
    /// Exactly `len` bytes at `addr`, or `None` if any is unreadable.
    fn bytes(&mut self, addr: u64, len: usize) -> Option<Vec<u8>>;
    /// A NUL-terminated string, at most `max` bytes of it: the bytes, and
    /// whether that is the whole string (no more than `max` bytes before
    /// its NUL). `None` if unreadable.
    fn string(&mut self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)>;
    /// The stack pointer.
    fn stack_pointer(&mut self) -> Option<u64>;
    /// What descriptor `fd` of the thread refers to now (its
    /// `/proc/TID/fd` link), if it is open; for `AT_FDCWD`, the working
    /// directory.
    fn fd_path(&mut self, fd: i32) -> Option<Vec<u8>>;
    /// What descriptor `fd`, whose link is `link`, is beyond its path
    /// (strace's `-yy`), found through `details`.
    fn fd_detail(&mut self, _fd: i32, _link: &[u8], _details: &mut Details) -> Option<Detail> {
        None
    }
    /// Whether descriptor `fd`'s file was unlinked (its link reads
    /// `PATH (deleted)` for that reason).
    fn fd_unlinked(&mut self, _fd: i32) -> bool {
        false
    }
}

impl Tracee for Task<'_> {
    fn bytes(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let r = self.read_memory(addr, len);
        (r.error.is_none() && r.data.len() == len).then(|| r.data.into())
    }

    fn string(&mut self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)> {
        let r = self.read_string(addr, max.saturating_add(1));
        if r.data.len() > max {
            let mut data = r.data;
            data.truncate(max);
            return Some((data.into(), false));
        }
        if r.error.is_some() {
            return None;
        }
        Some((r.data.into(), true))
    }

    fn stack_pointer(&mut self) -> Option<u64> {
        self.register("rsp").ok()
    }

    fn fd_path(&mut self, fd: i32) -> Option<Vec<u8>> {
        use std::os::unix::ffi::OsStringExt;
        let link = if fd == libc::AT_FDCWD {
            format!("/proc/{}/cwd", self.tid())
        } else {
            format!("/proc/{}/fd/{fd}", self.tid())
        };
        std::fs::read_link(link)
            .ok()
            .map(|p| p.into_os_string().into_vec())
    }

    fn fd_detail(&mut self, fd: i32, link: &[u8], details: &mut Details) -> Option<Detail> {
        details.of(self.tid(), fd, link)
    }

    fn fd_unlinked(&mut self, fd: i32) -> bool {
        super::details::unlinked(self.tid(), fd)
    }
}

/// What a decoder sees of one call.
pub(super) struct Ctx<'m> {
    pub(super) mem: &'m mut dyn Tracee,
    pub(super) args: [u64; 6],
    /// At exit: the return value and whether it is an error.
    pub(super) exit: Option<(i64, bool)>,
    pub(super) limit: usize,
    /// Descriptors shown with what they refer to (`-y`).
    pub(super) fd_paths: bool,
    /// Strings in `\x` hex: [`Hex::NonAscii`] (`-x`), [`Hex::All`] (`-xx`).
    pub(super) hex: Hex,
    /// At exit: the call's `socklen_t` as it was at entry ([`entry_socklen`]).
    pub(super) saved_len: Option<u32>,
    /// strace's `-P`: the paths watched; a descriptor or path argument
    /// that is one of them sets `matched`.
    pub(super) watch: Option<Watched>,
    pub(super) matched: bool,
    /// strace's `-yy`: sockets, devices and pidfds described.
    pub(super) details: Option<&'m mut Details>,
    /// strace's `-v`: structures and environments in full.
    pub(super) verbose: bool,
}

/// The paths `-P` names (each as given and, where it differs, as resolved).
pub type Watched = std::sync::Arc<[Vec<u8>]>;

impl<'m> Ctx<'m> {
    /// A call's context with strace's defaults: 32-byte strings, no
    /// descriptor paths, no hex, no paths watched.
    pub(super) fn new(mem: &'m mut dyn Tracee, args: [u64; 6], exit: Option<(i64, bool)>) -> Self {
        Ctx {
            mem,
            args,
            exit,
            limit: super::DEFAULT_STRING_LIMIT,
            fd_paths: false,
            hex: Hex::Never,
            saved_len: None,
            watch: None,
            matched: false,
            details: None,
            verbose: false,
        }
    }

    /// Note whether `path`, an argument's, is a watched one.
    fn watch_path(&mut self, path: &[u8]) {
        if let Some(w) = &self.watch {
            if w.iter().any(|p| p.as_slice() == path) {
                self.matched = true;
            }
        }
    }
}

/// When strings are shown in `\x` hex rather than with C escapes (strace's
/// `-x`, `-xx`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hex {
    /// Never (C escapes: `\n`, `\177`).
    #[default]
    Never,
    /// A string with a byte that is neither printable ASCII nor one of
    /// `\t\n\v\f\r`: the whole string (`-x`).
    NonAscii,
    /// Every string, paths included (`-xx`).
    All,
}

impl Ctx<'_> {
    /// Whether `bytes` are shown in hex.
    pub(super) fn hex(&self, bytes: &[u8]) -> bool {
        match self.hex {
            Hex::Never => false,
            Hex::All => true,
            Hex::NonAscii => bytes
                .iter()
                .any(|b| !matches!(b, 0x20..=0x7e | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')),
        }
    }

    /// Descriptor `v` as strace's `-y` shows it: `3</etc/passwd>` (the
    /// path's unprintable bytes and `<>` escaped), or the number alone;
    /// `AT_FDCWD` with the working directory.
    pub(super) fn fd(&mut self, v: u64) -> String {
        let fd = v as i32;
        // Read once for -P (a watched path?) and -y (shown).
        let watched = self.watch.is_some() && fd >= 0;
        let shown = self.fd_paths && (fd >= 0 || fd == libc::AT_FDCWD);
        let path = (watched || shown).then(|| self.mem.fd_path(fd)).flatten();
        if let (true, Some(p)) = (watched, &path) {
            self.watch_path(p);
        }
        let name = if fd == libc::AT_FDCWD {
            dirfd(v)
        } else {
            fd.to_string()
        };
        let Some(mut path) = path.filter(|_| shown) else {
            return name;
        };
        let detail = match self.details.as_deref_mut() {
            Some(d) => self.mem.fd_detail(fd, &path, d),
            None => None,
        };
        match detail {
            Some(Detail::Socket(s)) => format!("{name}<{s}>"),
            Some(Detail::Pid(pid)) => format!("{name}<pid:{pid}>"),
            Some(Detail::Device {
                block,
                major,
                minor,
            }) => {
                let kind = if block { "block" } else { "char" };
                format!("{name}<{}<{kind} {major}:{minor}>>", angled(&path))
            }
            None => {
                // strace's `3</tmp/x>(deleted)` for a file unlinked.
                const DELETED: &[u8] = b" (deleted)";
                let deleted = path.ends_with(DELETED) && fd >= 0 && self.mem.fd_unlinked(fd);
                if deleted {
                    path.truncate(path.len() - DELETED.len());
                }
                let tail = if deleted { "(deleted)" } else { "" };
                format!("{name}<{}>{tail}", angled(&path))
            }
        }
    }
}

/// A path inside strace's `<…>`: printable ASCII as is, `<`, `>`, `\\` and
/// the rest as `\\xNN`.
fn angled(path: &[u8]) -> String {
    let mut s = String::with_capacity(path.len());
    for &b in path {
        match b {
            b'<' | b'>' | b'\\' => s.push_str(&format!("\\x{b:02x}")),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

impl Ctx<'_> {
    pub(super) fn arg(&self, i: usize) -> u64 {
        self.args.get(i).copied().unwrap_or(0)
    }

    /// The return value of a call that succeeded.
    pub(super) fn success(&self) -> Option<i64> {
        match self.exit {
            Some((ret, false)) => Some(ret),
            _ => None,
        }
    }
}

/// The syscall's name and decoding.
pub(super) fn lookup(entry: &SyscallEntry) -> (String, &'static Spec) {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static Spec>> = OnceLock::new();
    let table = BY_NAME.get_or_init(|| SPECS.iter().map(|s| (s.name, s)).collect());
    match entry.name() {
        Some(name) => (
            name.to_string(),
            table.get(name).copied().unwrap_or(&UNKNOWN),
        ),
        None => (format!("syscall_{:#x}", entry.nr), &UNKNOWN),
    }
}

/// The value at a call's `socklen_t` pointer at entry, for its exit to
/// show `[IN => OUT]` (strace's).
pub(super) fn entry_socklen(spec: &Spec, ctx: &mut Ctx<'_>) -> Option<u32> {
    let i = spec.args.iter().position(|a| matches!(a, SocklenOut))?;
    let at = ctx.arg(i);
    if at == 0 {
        return None;
    }
    ctx.mem.bytes(at, size_of::<u32>()).map(|b| u32_at(&b, 0))
}

/// The arguments shown at entry, the index of the first shown at exit, and
/// whether a separator is still due before it.
pub(super) fn decode_entry(spec: &Spec, ctx: &mut Ctx<'_>) -> (String, usize, bool) {
    let mut out = String::new();
    let mut need_sep = false;
    for (i, &kind) in spec.args.iter().enumerate() {
        if kind.at_exit() {
            if need_sep && !kind.self_separated() {
                out.push_str(", ");
                need_sep = false;
            }
            return (out, i, need_sep);
        }
        push_arg(&mut out, &mut need_sep, kind, format_arg(kind, i, ctx));
    }
    (out, spec.args.len(), need_sep)
}

/// The arguments shown at exit, from `from` on.
pub(super) fn decode_exit(
    spec: &Spec,
    ctx: &mut Ctx<'_>,
    from: usize,
    mut need_sep: bool,
) -> String {
    let mut out = String::new();
    for (i, &kind) in spec.args.iter().enumerate().skip(from) {
        push_arg(&mut out, &mut need_sep, kind, format_arg(kind, i, ctx));
    }
    out
}

fn push_arg(out: &mut String, need_sep: &mut bool, kind: Arg, text: Option<String>) {
    if let Some(text) = text {
        if *need_sep && !kind.self_separated() {
            out.push_str(", ");
        }
        out.push_str(&text);
        *need_sep = true;
    }
}

/// One argument's text; `None` if this argument is not shown.
pub(super) fn format_arg(kind: Arg, i: usize, c: &mut Ctx<'_>) -> Option<String> {
    let v = c.arg(i);
    Some(match kind {
        Int => (v as i32).to_string(),
        Fd => c.fd(v),
        Uint => (v as u32).to_string(),
        Long => (v as i64).to_string(),
        Ulong => v.to_string(),
        Hex => hex(v),
        Personality => personality(v as u32),
        Ptr => ptr(v),
        PtrOut => ptr(v),
        Skip => return None,
        Dirfd => c.fd(v),
        Mode => mode_octal(v as u32),
        Path if c.watch.is_some() && v != 0 => {
            // Read once: matched against the watched paths, and shown.
            let read = c.mem.string(v, PATH_LIMIT);
            if let Some((path, true)) = &read {
                c.watch_path(path);
            }
            quote_read(c, v, read)
        }
        Path => string_at(c, v, PATH_LIMIT),
        Str => string_at(c, v, c.limit),
        BufIn(n) => buffer_at(c, v, c.arg(n as usize) as usize, false),
        BufOut => match c.success() {
            Some(ret) => buffer_at(c, v, ret as usize, false),
            None => ptr(v),
        },
        BufOutHex => match c.success() {
            Some(ret) => buffer_at(c, v, ret as usize, true),
            None => ptr(v),
        },
        PathOut => match c.success() {
            Some(ret) if ret > 0 => match c.mem.bytes(v, (ret as usize).min(PATH_LIMIT)) {
                Some(b) => quote(b.strip_suffix(&[0]).unwrap_or(&b), false),
                None => ptr(v),
            },
            _ => ptr(v),
        },
        IovIn(n) => iovec(c, v, c.arg(n as usize), None),
        IovOut(n) => match c.success() {
            Some(ret) => iovec(c, v, c.arg(n as usize), Some(ret as u64)),
            None => ptr(v),
        },
        Flags(f) => flags(v, f),
        Enum(names) => enum_name(v, names),
        OpenFlags => open_flags(v),
        OpenMode(n) => {
            let fl = c.arg(n as usize) as u32 as i32;
            if fl & libc::O_CREAT == 0 && fl & libc::O_TMPFILE != libc::O_TMPFILE {
                return None;
            }
            mode_octal(v as u32)
        }
        Signal => signal_arg(v as i32),
        SigsetIn => sigset_at(c, v),
        SigsetOut => match c.success() {
            Some(_) => sigset_at(c, v),
            None => ptr(v),
        },
        SigactionIn => sigaction_at(c, v),
        SigactionOut => match c.success() {
            Some(_) => sigaction_at(c, v),
            None => ptr(v),
        },
        StackIn => stack_at(c, v),
        StackOut => match c.success() {
            Some(_) => stack_at(c, v),
            None => ptr(v),
        },
        SigreturnMask => sigreturn_mask(c)?,
        StatOut => {
            let verbose = c.verbose;
            out_struct(c, v, size_of::<libc::stat>(), |b| stat_struct(b, verbose))
        }
        StatxFlags => statx_flags(v),
        StatxOut => {
            let verbose = c.verbose;
            out_struct(c, v, size_of::<libc::statx>(), |b| statx_struct(b, verbose))
        }
        Argv => argv_at(c, v),
        Envp => envp_at(c, v),
        FdPairOut if c.fd_paths && v != 0 && c.success().is_some() => {
            // Each descriptor with its path (`[3<pipe:[1]>, 4<pipe:[1]>]`).
            match c.mem.bytes(v, 2 * size_of::<i32>()) {
                Some(b) => {
                    let (r, w) = (i32_at(&b, 0), i32_at(&b, size_of::<i32>()));
                    format!("[{}, {}]", c.fd(r as u64), c.fd(w as u64))
                }
                None => ptr(v),
            }
        }
        FdPairOut => out_struct(c, v, 2 * size_of::<i32>(), fd_pair),
        WaitStatusOut => match c.success() {
            Some(ret) if ret > 0 && v != 0 => match c.mem.bytes(v, size_of::<i32>()) {
                Some(b) => format!("[{}]", wait_status(i32_at(&b, 0))),
                None => ptr(v),
            },
            _ => ptr(v),
        },
        RlimitIn => in_struct(c, v, size_of::<libc::rlimit64>(), rlimit),
        RlimitOut => out_struct(c, v, size_of::<libc::rlimit64>(), rlimit),
        TimespecIn => in_struct(c, v, size_of::<libc::timespec>(), timespec),
        TimespecOut => out_struct(c, v, size_of::<libc::timespec>(), timespec),
        NodemaskIn(n) => nodemask_at(c, v, c.arg(n as usize)),
        NodemaskOut(n) => match c.success() {
            Some(_) => nodemask_at(c, v, c.arg(n as usize)),
            None => ptr(v),
        },
        MpolModeOut => match (c.success(), v) {
            (Some(_), 1..) => match c.mem.bytes(v, size_of::<i32>()) {
                Some(b) => format!("[{}]", enum_name(i32_at(&b, 0) as u32 as u64, MPOL_MODES)),
                None => ptr(v),
            },
            _ => ptr(v),
        },
        RemainOut => match c.exit {
            // Interrupted (EINTR, or a restart the kernel reports as
            // ERESTARTNOHAND or ERESTART_RESTARTBLOCK): the time left.
            Some((ret, true)) if v != 0 && matches!(-ret, 4 | 514 | 516) => {
                match c.mem.bytes(v, size_of::<libc::timespec>()) {
                    Some(b) => timespec(&b),
                    None => ptr(v),
                }
            }
            _ => ptr(v),
        },
        UtsnameOut => {
            let verbose = c.verbose;
            out_struct(c, v, size_of::<libc::utsname>(), |b| utsname(b, verbose))
        }
        SysinfoOut => out_struct(c, v, size_of::<libc::sysinfo>(), sysinfo),
        DirentsOut => dirents(c, v, false),
        OldDirentsOut => dirents(c, v, true),
        SockaddrIn(n) => sockaddr_at(c, v, c.arg(n as usize) as usize),
        PollFds(n) => pollfds(c, v, c.arg(n as usize), false)?,
        SockaddrOut(n) => match c.success() {
            Some(_) => {
                let len = match c.mem.bytes(c.arg(n as usize), size_of::<u32>()) {
                    Some(b) => u32_at(&b, 0) as usize,
                    None => 0,
                };
                sockaddr_at(c, v, len)
            }
            None => ptr(v),
        },
        SocklenOut => match (c.saved_len, c.mem.bytes(v, size_of::<u32>())) {
            _ if v == 0 => "NULL".into(),
            (Some(was), Some(b)) if was != u32_at(&b, 0) => {
                format!("[{was} => {}]", u32_at(&b, 0))
            }
            (_, Some(b)) => format!("[{}]", u32_at(&b, 0)),
            (_, None) => ptr(v),
        },
        SockOpt => sockopt_name(c.arg(1), v),
        SockOptIn => sockopt_value(c, c.arg(1), c.arg(2), v, c.arg(4) as u32 as u64),
        SockOptOut => match (c.success(), c.mem.bytes(c.arg(4), size_of::<u32>())) {
            (Some(_), Some(b)) => sockopt_value(c, c.arg(1), c.arg(2), v, u32_at(&b, 0) as u64),
            _ => ptr(v),
        },
        EpollEventIn => epoll_event_in(c, v),
        EpollEventsOut => epoll_events_out(c, v),
        GidsOut => match c.success() {
            _ if v == 0 => ptr(v),
            Some(n) if n >= 0 => {
                let n = (n as usize).min(c.arg(0) as u32 as usize).min(c.limit);
                match c.mem.bytes(v, n * size_of::<libc::gid_t>()) {
                    Some(b) => {
                        let ids: Vec<String> = (0..n)
                            .map(|i| u32_at(&b, i * size_of::<libc::gid_t>()).to_string())
                            .collect();
                        format!("[{}]", ids.join(", "))
                    }
                    None => ptr(v),
                }
            }
            _ => ptr(v),
        },
        CpuSetOut => match c.success() {
            Some(n) if n > 0 => match c.mem.bytes(v, (n as usize).min(MAX_CPU_SET_BYTES)) {
                Some(b) => {
                    let cpus: Vec<String> = (0..b.len() * 8)
                        .filter(|i| b[i / 8] & (1 << (i % 8)) != 0)
                        .map(|i| i.to_string())
                        .collect();
                    format!("[{}]", cpus.join(" "))
                }
                None => ptr(v),
            },
            _ => ptr(v),
        },
        PrctlRest => prctl_rest(c)?,
        SockType => sock_type(v),
        SockProto => sock_proto(c.arg(0) as i32, v as i32),
        CloneStack => format!("child_stack={}", ptr(c.arg(1))),
        CloneFlags => format!("flags={}", clone_flags(c.arg(0))),
        CloneTail => clone_tail(c)?,
        Clone3Args => clone3_args(c, v),
        Clone3Tail => clone3_tail(c),
        FutexOp => futex_op(v),
        FutexRest => futex_rest(c)?,
        FcntlCmd => enum_name(v, FCNTL_CMDS),
        FcntlValue => fcntl_arg(c.arg(1) as i32, v)?,
        IoctlReq => match enum_lookup(v & 0xffff_ffff, IOCTL_REQUESTS) {
            Some(name) => xlat(hex(v & 0xffff_ffff), || name.to_string()),
            None => hex(v & 0xffff_ffff),
        },
        IoctlValue => {
            const NONE: [u64; 5] = [
                libc::FIOCLEX,
                libc::FIONCLEX,
                libc::TIOCNOTTY,
                libc::TIOCEXCL,
                libc::TIOCNXCL,
            ];
            if NONE.contains(&(c.arg(1) & 0xffff_ffff)) {
                return None;
            }
            hex(v)
        }
        MremapNew => {
            if c.arg(3) & libc::MREMAP_FIXED as u64 == 0 {
                return None;
            }
            ptr(v)
        }
    })
}

/// The return value's text.
pub(super) fn format_return(spec: &Spec, x: &SyscallExit, c: &mut Ctx<'_>) -> String {
    if x.is_error {
        return errno_text(x.ret.unsigned_abs().min(i32::MAX as u64) as i32);
    }
    match spec.ret {
        Ret::Dec => x.ret.to_string(),
        Ret::Hex => hex(x.ret as u64),
        Ret::Personality => {
            let v = x.ret as u32;
            format!("{} ({})", hex(v.into()), personality(v))
        }
        Ret::Oct => mode_octal(x.ret as u32),
        Ret::Fcntl => match x.entry.args[1] as i32 {
            libc::F_GETFD if x.ret != 0 => format!(
                "{} (flags {})",
                hex(x.ret as u64),
                flags(x.ret as u64, &FD_CLOEXEC_FLAG)
            ),
            libc::F_GETFL => format!("{} (flags {})", hex(x.ret as u64), open_flags(x.ret as u64)),
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => c.fd(x.ret as u64),
            _ => x.ret.to_string(),
        },
        Ret::Fd => c.fd(x.ret as u64),
        Ret::Poll if x.ret == 0 => "0 (Timeout)".into(),
        Ret::Poll => match pollfds(c, x.entry.args[0], x.entry.args[1], true) {
            Some(ready) => format!("{} ({ready})", x.ret),
            None => x.ret.to_string(),
        },
    }
}

/// Words of a node mask shown at most (1,024 nodes), then `...`.
const MAX_NODEMASK_WORDS: usize = 16;

/// A NUMA node mask of `maxnode` bits at `addr`, as strace prints it: each
/// `unsigned long` in hex, 16 characters wide with its `0x`.
fn nodemask_at(c: &mut Ctx<'_>, addr: u64, maxnode: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let words = maxnode.div_ceil(64) as usize;
    let shown = words.min(MAX_NODEMASK_WORDS);
    let Some(b) = c.mem.bytes(addr, shown * 8) else {
        return ptr(addr);
    };
    let mut items: Vec<String> = b
        .chunks_exact(8)
        .map(|w| format!("{:#016x}", u64_at(w, 0)))
        .collect();
    if shown < words {
        items.push("...".into());
    }
    format!("[{}]", items.join(", "))
}
