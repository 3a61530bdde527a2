//! Structure decoders: what syscalls pass by pointer or pack into an
//! argument (stat, statx, sigaction, sockaddr, iovec, clone3, futex, fcntl,
//! poll, dirents…).

use std::fmt::Write as _;
use std::mem::{offset_of, size_of};

use super::decode::Ctx;
use super::format::{
    buffer_at, c_field, enum_lookup, enum_name, flags, hex, i32_at, in_struct, mode_octal,
    open_flags, ptr, quote, string_at, style, u16_at, u32_at, u64_at, xlat, Xlat,
};
use super::names::{
    uapi, ADDRESS_FAMILIES, AT_FLAGS, CLONE_FLAGS, EPOLL_EVENTS, FD_CLOEXEC_FLAG, FILE_TYPES,
    FUTEX_CMDS, IPV6_OPTIONS, IP_OPTIONS, IP_PROTOCOLS, PERSONALITY_FLAGS, PERSONALITY_TYPES,
    POLL_EVENTS, SA_FLAGS, SA_RESTORER, SOCK_FLAGS, SOCK_TYPES, SO_OPTIONS, SS_FLAGS, STATX_ATTRS,
    STATX_MASK, TCP_OPTIONS,
};
use super::signals::{signal_arg, signame};
use super::table::Names;
use super::{MAX_DIRENT_BYTES, MAX_ENV_COUNT, NSIG};
/// A file mode: `S_IFREG|0644`, `S_IFDIR|S_ISVTX|0777`.
pub(super) fn file_mode(m: u32) -> String {
    xlat(format!("0{m:o}"), || file_mode_names(m))
}

fn file_mode_names(m: u32) -> String {
    let mut s = String::new();
    let kind = m & libc::S_IFMT;
    if kind != 0 {
        match enum_lookup(kind as u64, FILE_TYPES) {
            Some(name) => s.push_str(name),
            None => {
                let _ = write!(s, "{kind:#o}");
            }
        }
        s.push('|');
    }
    for (bit, name) in [
        (libc::S_ISUID, "S_ISUID|"),
        (libc::S_ISGID, "S_ISGID|"),
        (libc::S_ISVTX, "S_ISVTX|"),
    ] {
        if m & bit != 0 {
            s.push_str(name);
        }
    }
    s.push_str(&mode_octal(m & 0o777));
    s
}

/// A `personality` value as strace writes it: the execution domain and
/// the flags, each in the `-X` style, `PER_LINUX|ADDR_NO_RANDOMIZE`
/// (`0|0x40000` raw); the query value 0xffffffff in hex.
pub(super) fn personality(v: u32) -> String {
    if v == u32::MAX {
        return hex(v.into());
    }
    let domain = u64::from(v & 0xff);
    let mut s = match enum_lookup(domain, PERSONALITY_TYPES) {
        Some(name) => xlat(hex(domain), || name.to_string()),
        None if style() == Xlat::Raw => hex(domain),
        None => format!("{} /* PER_??? */", hex(domain)),
    };
    let rest = u64::from(v & !0xff);
    if rest != 0 {
        s.push('|');
        s.push_str(&flags(rest, &PERSONALITY_FLAGS));
    }
    s
}

/// A device number as strace writes it: `makedev(0x1, 0x3)`.
fn makedev(dev: u64) -> String {
    format!(
        "makedev({}, {})",
        hex(libc::major(dev).into()),
        hex(libc::minor(dev).into())
    )
}

/// A time's date, strace's comment after it (`-v`):
/// ` /* 2026-12-06T01:15:02.231074491+0000 */` in the local time zone,
/// the fraction only when it is not 0; nothing for the epoch itself.
pub(super) fn date_comment(secs: i64, nsec: u64) -> String {
    if secs == 0 && nsec == 0 {
        return String::new();
    }
    let Some(t) = crate::sys::local_time(secs) else {
        return String::new();
    };
    let mut s = format!(
        " /* {:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    if nsec != 0 {
        let _ = write!(s, ".{nsec:09}");
    }
    let (sign, off) = if t.utc_offset < 0 {
        ('-', -t.utc_offset)
    } else {
        ('+', t.utc_offset)
    };
    let _ = write!(s, "{sign}{:02}{:02} */", off / 3600, off % 3600 / 60);
    s
}

/// A `struct stat`: its mode and size (or device) and `...`; with `-v`,
/// every field, the times with their dates.
pub(super) fn stat_struct(b: &[u8], verbose: bool) -> String {
    let at = |off: usize| u64_at(b, off);
    let mode = u32_at(b, offset_of!(libc::stat, st_mode));
    let detail = if matches!(mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFBLK) {
        format!("st_rdev={}", makedev(at(offset_of!(libc::stat, st_rdev))))
    } else {
        format!("st_size={}", at(offset_of!(libc::stat, st_size)) as i64)
    };
    if !verbose {
        return format!("{{st_mode={}, {detail}, ...}}", file_mode(mode));
    }
    let mut s = format!(
        "{{st_dev={}, st_ino={}, st_mode={}, st_nlink={}, st_uid={}, st_gid={}, \
         st_blksize={}, st_blocks={}, {detail}",
        makedev(at(offset_of!(libc::stat, st_dev))),
        at(offset_of!(libc::stat, st_ino)),
        file_mode(mode),
        at(offset_of!(libc::stat, st_nlink)),
        u32_at(b, offset_of!(libc::stat, st_uid)),
        u32_at(b, offset_of!(libc::stat, st_gid)),
        at(offset_of!(libc::stat, st_blksize)) as i64,
        at(offset_of!(libc::stat, st_blocks)) as i64,
    );
    for (name, secs, nsec) in [
        (
            "st_atime",
            offset_of!(libc::stat, st_atime),
            offset_of!(libc::stat, st_atime_nsec),
        ),
        (
            "st_mtime",
            offset_of!(libc::stat, st_mtime),
            offset_of!(libc::stat, st_mtime_nsec),
        ),
        (
            "st_ctime",
            offset_of!(libc::stat, st_ctime),
            offset_of!(libc::stat, st_ctime_nsec),
        ),
    ] {
        let (secs, nsec) = (at(secs) as i64, at(nsec));
        let _ = write!(
            s,
            ", {name}={secs}{}, {name}_nsec={nsec}",
            date_comment(secs, nsec)
        );
    }
    s.push('}');
    s
}

pub(super) fn statx_flags(v: u64) -> String {
    if style() == Xlat::Raw {
        // The whole value (strace 6.1 prints `|0x900`, leaving out the
        // sync part's 0).
        return hex(v);
    }
    let sync = (libc::AT_STATX_FORCE_SYNC | libc::AT_STATX_DONT_SYNC) as u64;
    if v & sync == 0 {
        let rest = v & !sync;
        let sync = xlat("0".into(), || "AT_STATX_SYNC_AS_STAT".into());
        if rest == 0 {
            return sync;
        }
        return format!("{sync}|{}", flags(rest, &AT_FLAGS));
    }
    flags(v, &AT_FLAGS)
}

/// A `struct statx`: its mask, attributes, mode and size and `...`; with
/// `-v`, every field (in strace's order), the times with their dates.
pub(super) fn statx_struct(b: &[u8], verbose: bool) -> String {
    let mask = u32_at(b, offset_of!(libc::statx, stx_mask));
    let attributes = flags(
        u64_at(b, offset_of!(libc::statx, stx_attributes)),
        &STATX_ATTRS,
    );
    let mode = file_mode(u16_at(b, offset_of!(libc::statx, stx_mode)) as u32);
    let size = u64_at(b, offset_of!(libc::statx, stx_size));
    let mask_text = flags(mask as u64, &STATX_MASK);
    if !verbose {
        return format!(
            "{{stx_mask={mask_text}, stx_attributes={attributes}, stx_mode={mode}, \
             stx_size={size}, ...}}"
        );
    }
    let u32f = |off: usize| u32_at(b, off);
    let mut s = format!(
        "{{stx_mask={mask_text}, stx_blksize={}, stx_attributes={attributes}, stx_nlink={}, \
         stx_uid={}, stx_gid={}, stx_mode={mode}, stx_ino={}, stx_size={size}, stx_blocks={}, \
         stx_attributes_mask={}",
        u32f(offset_of!(libc::statx, stx_blksize)),
        u32f(offset_of!(libc::statx, stx_nlink)),
        u32f(offset_of!(libc::statx, stx_uid)),
        u32f(offset_of!(libc::statx, stx_gid)),
        u64_at(b, offset_of!(libc::statx, stx_ino)),
        u64_at(b, offset_of!(libc::statx, stx_blocks)),
        flags(
            u64_at(b, offset_of!(libc::statx, stx_attributes_mask)),
            &STATX_ATTRS
        ),
    );
    for (name, bit, at) in [
        (
            "stx_atime",
            libc::STATX_ATIME,
            offset_of!(libc::statx, stx_atime),
        ),
        (
            "stx_btime",
            libc::STATX_BTIME,
            offset_of!(libc::statx, stx_btime),
        ),
        (
            "stx_ctime",
            libc::STATX_CTIME,
            offset_of!(libc::statx, stx_ctime),
        ),
        (
            "stx_mtime",
            libc::STATX_MTIME,
            offset_of!(libc::statx, stx_mtime),
        ),
    ] {
        // As strace: a time only when the kernel's mask says it is there.
        if mask & bit == 0 {
            continue;
        }
        // statx_timestamp: i64 seconds, u32 nanoseconds.
        let (secs, nsec) = (u64_at(b, at) as i64, u32_at(b, at + 8));
        let _ = write!(
            s,
            ", {name}={{tv_sec={secs}, tv_nsec={nsec}}}{}",
            date_comment(secs, nsec.into())
        );
    }
    let _ = write!(
        s,
        ", stx_rdev_major={}, stx_rdev_minor={}, stx_dev_major={}, stx_dev_minor={}",
        u32f(offset_of!(libc::statx, stx_rdev_major)),
        u32f(offset_of!(libc::statx, stx_rdev_minor)),
        u32f(offset_of!(libc::statx, stx_dev_major)),
        u32f(offset_of!(libc::statx, stx_dev_minor)),
    );
    if mask & libc::STATX_MNT_ID != 0 {
        let _ = write!(
            s,
            ", stx_mnt_id={}",
            hex(u64_at(b, offset_of!(libc::statx, stx_mnt_id)))
        );
    }
    s.push('}');
    s
}

// `u64::is_multiple_of` is newer than the workspace's rust-version (1.85).
#[allow(clippy::manual_is_multiple_of)]
pub(super) fn rlimit_value(v: u64) -> String {
    xlat(v.to_string(), || rlimit_name(v))
}

fn rlimit_name(v: u64) -> String {
    if v == libc::RLIM64_INFINITY {
        "RLIM64_INFINITY".into()
    } else if v > 1024 && v % 1024 == 0 {
        format!("{}*1024", v / 1024)
    } else {
        v.to_string()
    }
}

pub(super) fn rlimit(b: &[u8]) -> String {
    format!(
        "{{rlim_cur={}, rlim_max={}}}",
        rlimit_value(u64_at(b, offset_of!(libc::rlimit64, rlim_cur))),
        rlimit_value(u64_at(b, offset_of!(libc::rlimit64, rlim_max)))
    )
}

pub(super) fn timespec(b: &[u8]) -> String {
    format!(
        "{{tv_sec={}, tv_nsec={}}}",
        u64_at(b, offset_of!(libc::timespec, tv_sec)) as i64,
        u64_at(b, offset_of!(libc::timespec, tv_nsec)) as i64
    )
}

/// A `struct utsname`: its system and node names and `...`; with `-v`,
/// every field.
pub(super) fn utsname(b: &[u8], verbose: bool) -> String {
    let sysname = offset_of!(libc::utsname, sysname);
    let len = offset_of!(libc::utsname, nodename) - sysname;
    let field = |at: usize| quote(c_field(b, at, len), false);
    let head = format!(
        "{{sysname={}, nodename={}",
        field(sysname),
        field(offset_of!(libc::utsname, nodename))
    );
    if !verbose {
        return format!("{head}, ...}}");
    }
    format!(
        "{head}, release={}, version={}, machine={}, domainname={}}}",
        field(offset_of!(libc::utsname, release)),
        field(offset_of!(libc::utsname, version)),
        field(offset_of!(libc::utsname, machine)),
        field(offset_of!(libc::utsname, domainname)),
    )
}

pub(super) fn sysinfo(b: &[u8]) -> String {
    let ulong = |off: usize| u64_at(b, off);
    let loads = offset_of!(libc::sysinfo, loads);
    format!(
        "{{uptime={}, loads=[{}, {}, {}], totalram={}, freeram={}, sharedram={}, bufferram={}, \
         totalswap={}, freeswap={}, procs={}, totalhigh={}, freehigh={}, mem_unit={}}}",
        ulong(offset_of!(libc::sysinfo, uptime)) as i64,
        ulong(loads),
        ulong(loads + size_of::<u64>()),
        ulong(loads + 2 * size_of::<u64>()),
        ulong(offset_of!(libc::sysinfo, totalram)),
        ulong(offset_of!(libc::sysinfo, freeram)),
        ulong(offset_of!(libc::sysinfo, sharedram)),
        ulong(offset_of!(libc::sysinfo, bufferram)),
        ulong(offset_of!(libc::sysinfo, totalswap)),
        ulong(offset_of!(libc::sysinfo, freeswap)),
        u16_at(b, offset_of!(libc::sysinfo, procs)),
        ulong(offset_of!(libc::sysinfo, totalhigh)),
        ulong(offset_of!(libc::sysinfo, freehigh)),
        u32_at(b, offset_of!(libc::sysinfo, mem_unit)),
    )
}

/// The kernel's `struct sigaction` on x86_64 (`include/linux/signal_types.h`
/// with `SA_RESTORER`), which differs from glibc's `libc::sigaction`.
#[repr(C)]
struct KernelSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

pub(super) fn sigaction_at(c: &mut Ctx<'_>, addr: u64) -> String {
    in_struct(c, addr, size_of::<KernelSigaction>(), |b| {
        let handler = u64_at(b, offset_of!(KernelSigaction, handler));
        let fl = u64_at(b, offset_of!(KernelSigaction, flags));
        let handler = match handler as usize {
            libc::SIG_DFL => xlat("0".into(), || "SIG_DFL".into()),
            libc::SIG_IGN => xlat("0x1".into(), || "SIG_IGN".into()),
            h => format!("{h:#x}"),
        };
        let mut s = format!(
            "{{sa_handler={handler}, sa_mask={}, sa_flags={}",
            sigset(u64_at(b, offset_of!(KernelSigaction, mask))),
            flags(fl, &SA_FLAGS)
        );
        if fl & SA_RESTORER != 0 {
            let _ = write!(
                s,
                ", sa_restorer={}",
                ptr(u64_at(b, offset_of!(KernelSigaction, restorer)))
            );
        }
        s.push('}');
        s
    })
}

pub(super) fn stack_at(c: &mut Ctx<'_>, addr: u64) -> String {
    in_struct(c, addr, size_of::<libc::stack_t>(), |b| {
        format!(
            "{{ss_sp={}, ss_flags={}, ss_size={}}}",
            ptr(u64_at(b, offset_of!(libc::stack_t, ss_sp))),
            flags(
                u32_at(b, offset_of!(libc::stack_t, ss_flags)) as u64,
                &SS_FLAGS
            ),
            u64_at(b, offset_of!(libc::stack_t, ss_size))
        )
    })
}

/// A kernel signal set: `[HUP INT]`, or `~[...]` listing the missing
/// signals when more than half are set.
pub(super) fn sigset(bits: u64) -> String {
    let (neg, bits) = if bits.count_ones() > NSIG / 2 {
        ("~", !bits)
    } else {
        ("", bits)
    };
    let names: Vec<String> = (0..NSIG)
        .filter(|b| bits & (1u64 << b) != 0)
        .map(|b| {
            let n = b as i32 + 1;
            xlat(n.to_string(), || {
                let name = signame(n);
                name.strip_prefix("SIG").map(str::to_string).unwrap_or(name)
            })
        })
        .collect();
    format!("{neg}[{}]", names.join(" "))
}

pub(super) fn sigset_at(c: &mut Ctx<'_>, addr: u64) -> String {
    in_struct(c, addr, size_of::<u64>(), |b| sigset(u64_at(b, 0)))
}

/// `{mask=[...]}`: the mask `rt_sigreturn` restores, from the `ucontext` at
/// the stack pointer (the handler's `ret` popped the frame's return address).
pub(super) fn sigreturn_mask(c: &mut Ctx<'_>) -> Option<String> {
    let sp = c.mem.stack_pointer()?;
    let at = sp.checked_add(offset_of!(libc::ucontext_t, uc_sigmask) as u64)?;
    let b = c.mem.bytes(at, size_of::<u64>())?;
    Some(format!("{{mask={}}}", sigset(u64_at(&b, 0))))
}

pub(super) fn argv_at(c: &mut Ctx<'_>, addr: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let mut items = Vec::new();
    for i in 0.. {
        let at = (i as u64)
            .checked_mul(size_of::<u64>() as u64)
            .and_then(|off| addr.checked_add(off));
        let Some(b) = at.and_then(|at| c.mem.bytes(at, size_of::<u64>())) else {
            if i == 0 {
                return ptr(addr);
            }
            items.push(ptr(at.unwrap_or(0)));
            break;
        };
        let p = u64_at(&b, 0);
        if p == 0 {
            break;
        }
        // strace shows at most -s strings, all of them with -v (bounded
        // here as the environment's count is).
        if (!c.verbose && i >= c.limit) || i >= MAX_ENV_COUNT {
            items.push("...".into());
            break;
        }
        let limit = c.limit;
        items.push(string_at(c, p, limit));
    }
    format!("[{}]", items.join(", "))
}

pub(super) fn envp_at(c: &mut Ctx<'_>, addr: u64) -> String {
    if c.verbose {
        // strace -v: the strings, as argv's.
        return argv_at(c, addr);
    }
    if addr == 0 {
        return "NULL".into();
    }
    let word = size_of::<u64>();
    let mut count = 0usize;
    while count < MAX_ENV_COUNT {
        let at = addr.checked_add((count * word) as u64);
        let Some(b) = at.and_then(|at| c.mem.bytes(at, word)) else {
            if count == 0 {
                return ptr(addr);
            }
            break;
        };
        if u64_at(&b, 0) == 0 {
            break;
        }
        count += 1;
    }
    format!("{} /* {count} vars */", ptr(addr))
}

/// A wait status as strace shows it: `{WIFEXITED(s) && WEXITSTATUS(s) == 0}`.
pub(super) fn wait_status(s: i32) -> String {
    if libc::WIFEXITED(s) {
        format!(
            "{{WIFEXITED(s) && WEXITSTATUS(s) == {}}}",
            libc::WEXITSTATUS(s)
        )
    } else if libc::WIFSIGNALED(s) {
        format!(
            "{{WIFSIGNALED(s) && WTERMSIG(s) == {}{}}}",
            signame(libc::WTERMSIG(s)),
            if libc::WCOREDUMP(s) {
                " && WCOREDUMP(s)"
            } else {
                ""
            }
        )
    } else if libc::WIFSTOPPED(s) {
        format!(
            "{{WIFSTOPPED(s) && WSTOPSIG(s) == {}}}",
            signame(libc::WSTOPSIG(s))
        )
    } else if libc::WIFCONTINUED(s) {
        "{WIFCONTINUED(s)}".into()
    } else {
        format!("{:#x}", s as u32)
    }
}

/// A `getdents` buffer: the pointer and the number of entries returned.
pub(super) fn dirents(c: &mut Ctx<'_>, addr: u64, old_dirents: bool) -> String {
    let Some(ret) = c.success() else {
        return ptr(addr);
    };
    let len = (ret.max(0) as usize).min(MAX_DIRENT_BYTES);
    if len == 0 {
        if c.verbose {
            return "[]".into();
        }
        return format!("{} /* 0 entries */", ptr(addr));
    }
    let Some(b) = c.mem.bytes(addr, len) else {
        return ptr(addr);
    };
    let reclen_at = offset_of!(libc::dirent64, d_reclen);
    let (mut off, mut count) = (0usize, 0usize);
    let mut entries = Vec::new();
    while off + reclen_at + size_of::<u16>() <= b.len() {
        let reclen = u16_at(&b, off + reclen_at) as usize;
        if reclen == 0 {
            break;
        }
        if c.verbose {
            entries.push(dirent(&b[off..(off + reclen).min(b.len())], old_dirents));
        }
        count += 1;
        off += reclen;
    }
    if c.verbose {
        return format!("[{}]", entries.join(", "));
    }
    format!("{} /* {count} entries */", ptr(addr))
}

/// One directory entry as strace -v shows it: `{d_ino=2, d_off=1,
/// d_reclen=24, d_type=DT_DIR, d_name="."}`. `old`: getdents's `struct
/// linux_dirent`, whose type is the record's last byte.
fn dirent(e: &[u8], old: bool) -> String {
    const DT: [&str; 15] = [
        "DT_UNKNOWN",
        "DT_FIFO",
        "DT_CHR",
        "3",
        "DT_DIR",
        "5",
        "DT_BLK",
        "7",
        "DT_REG",
        "9",
        "DT_LNK",
        "11",
        "DT_SOCK",
        "13",
        "DT_WHT",
    ];
    // dirent64: ino, off, reclen (u16), type (u8), name; linux_dirent:
    // ino, off, reclen, name, ..., type.
    let name_at = if old { 18 } else { 19 };
    let ty = if old {
        e.last().copied().unwrap_or(0)
    } else {
        e.get(18).copied().unwrap_or(0)
    };
    let name = e.get(name_at..).unwrap_or(&[]);
    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
    let ty = DT
        .get(usize::from(ty))
        .map(|t| t.to_string())
        .unwrap_or_else(|| ty.to_string());
    format!(
        "{{d_ino={}, d_off={}, d_reclen={}, d_type={ty}, d_name={}}}",
        u64_at(e, 0),
        u64_at(e, 8) as i64,
        u16_at(e, 16),
        quote(name, false)
    )
}

/// A `struct pollfd` array: `[{fd=0, events=POLLIN}]`, or with `revents`
/// the entries that have events: `[{fd=3, revents=POLLIN}]`.
pub(super) fn pollfds(c: &mut Ctx<'_>, addr: u64, count: u64, revents: bool) -> Option<String> {
    if addr == 0 {
        return Some("NULL".into());
    }
    let size = size_of::<libc::pollfd>();
    let n = (count as usize).min(c.limit);
    let Some(b) = c.mem.bytes(addr, n * size) else {
        return Some(ptr(addr));
    };
    let mut items = Vec::new();
    for i in 0..n {
        let at = i * size;
        let fd = i32_at(&b, at + offset_of!(libc::pollfd, fd));
        let field = if revents {
            offset_of!(libc::pollfd, revents)
        } else {
            offset_of!(libc::pollfd, events)
        };
        let ev = u16_at(&b, at + field) as u64;
        if revents && ev == 0 {
            continue;
        }
        let name = if revents { "revents" } else { "events" };
        items.push(format!("{{fd={fd}, {name}={}}}", flags(ev, &POLL_EVENTS)));
    }
    if !revents && (count as usize) > n {
        items.push("...".into());
    }
    Some(format!("[{}]", items.join(", ")))
}

/// The `prctl` arguments after the option, as strace shows the common
/// options; others get four hex arguments.
pub(super) fn prctl_rest(c: &mut Ctx<'_>) -> Option<String> {
    let a = c.arg(1);
    Some(match c.arg(0) as i32 {
        libc::PR_GET_DUMPABLE
        | libc::PR_GET_KEEPCAPS
        | libc::PR_GET_SECCOMP
        | libc::PR_GET_TIMERSLACK
        | libc::PR_GET_NO_NEW_PRIVS
        | libc::PR_GET_THP_DISABLE => return None,
        libc::PR_CAPBSET_READ | libc::PR_CAPBSET_DROP => {
            match crate::access::CAP_NAMES.get(a as usize) {
                Some(name) => (*name).to_string(),
                None => format!("{} /* CAP_??? */", hex(a)),
            }
        }
        libc::PR_SET_NAME => {
            let limit = c.limit;
            string_at(c, a, limit)
        }
        libc::PR_SET_PDEATHSIG => signal_arg(a as i32),
        libc::PR_SET_DUMPABLE
        | libc::PR_SET_KEEPCAPS
        | libc::PR_SET_TIMERSLACK
        | libc::PR_SET_CHILD_SUBREAPER => a.to_string(),
        libc::PR_GET_NAME | libc::PR_GET_PDEATHSIG | libc::PR_GET_CHILD_SUBREAPER => ptr(a),
        _ => (1..5).map(|i| hex(c.arg(i))).collect::<Vec<_>>().join(", "),
    })
}

pub(super) fn sock_type(v: u64) -> String {
    let flag_bits = (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u32 as u64;
    let kind = v & !flag_bits & 0xffff_ffff;
    let mut s = match enum_lookup(kind, SOCK_TYPES) {
        Some(n) => xlat(format!("{kind:#x}"), || n.to_string()),
        None => format!("{kind:#x}"),
    };
    if v & flag_bits != 0 {
        s.push('|');
        s.push_str(&flags(v & flag_bits, &SOCK_FLAGS));
    }
    s
}

pub(super) fn sock_proto(domain: i32, proto: i32) -> String {
    if domain == libc::AF_INET || domain == libc::AF_INET6 {
        if let Some(n) = enum_lookup(proto as u32 as u64, IP_PROTOCOLS) {
            return n.to_string();
        }
    }
    proto.to_string()
}

/// A socket option's name at `level`, as strace prints it (the number
/// when the level or the option is not one it names).
pub(super) fn sockopt_name(level: u64, name: u64) -> String {
    let names: &Names = match level as u32 as i32 {
        libc::SOL_SOCKET => SO_OPTIONS,
        libc::IPPROTO_TCP => TCP_OPTIONS,
        libc::IPPROTO_IP => IP_OPTIONS,
        libc::IPPROTO_IPV6 => IPV6_OPTIONS,
        _ => &[],
    };
    enum_name(name as u32 as u64, names)
}

/// A socket option's value of `len` bytes at `addr`: `[N]` for an `int`,
/// `{l_onoff=…, l_linger=…}` for `SO_LINGER`, the pointer otherwise (as
/// strace, for the options it does not decode).
pub(super) fn sockopt_value(c: &mut Ctx<'_>, level: u64, name: u64, addr: u64, len: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let linger = level as u32 as i32 == libc::SOL_SOCKET && name as u32 as i32 == libc::SO_LINGER;
    match (len, linger) {
        (8, true) => match c.mem.bytes(addr, 8) {
            Some(b) => format!("{{l_onoff={}, l_linger={}}}", i32_at(&b, 0), i32_at(&b, 4)),
            None => ptr(addr),
        },
        (4, _) => match c.mem.bytes(addr, 4) {
            Some(b) => format!("[{}]", i32_at(&b, 0)),
            None => ptr(addr),
        },
        _ => ptr(addr),
    }
}

/// One `struct epoll_event` (packed on x86_64: `events` then `data`).
fn epoll_event(b: &[u8]) -> String {
    let events = u32_at(b, 0) as u64;
    let data = u64_at(b, 4);
    format!(
        "{{events={}, data={{u32={}, u64={data}}}}}",
        flags(events, &EPOLL_EVENTS),
        data as u32
    )
}

/// The size of a `struct epoll_event` (packed on x86_64).
const EPOLL_EVENT_SIZE: usize = 12;

/// `epoll_ctl`'s event, read at entry.
pub(super) fn epoll_event_in(c: &mut Ctx<'_>, addr: u64) -> String {
    in_struct(c, addr, EPOLL_EVENT_SIZE, epoll_event)
}

/// The events `epoll_wait` wrote: as many as it returned.
pub(super) fn epoll_events_out(c: &mut Ctx<'_>, addr: u64) -> String {
    let Some(n) = c.success() else {
        return ptr(addr);
    };
    let n = (n.max(0) as usize).min(c.limit);
    match c.mem.bytes(addr, n * EPOLL_EVENT_SIZE) {
        Some(b) => {
            let items: Vec<String> = b.chunks_exact(EPOLL_EVENT_SIZE).map(epoll_event).collect();
            format!("[{}]", items.join(", "))
        }
        None => ptr(addr),
    }
}

pub(super) fn sockaddr_at(c: &mut Ctx<'_>, addr: u64, len: usize) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let len = len.min(size_of::<libc::sockaddr_storage>());
    if len < size_of::<libc::sa_family_t>() {
        return ptr(addr);
    }
    let Some(b) = c.mem.bytes(addr, len) else {
        return ptr(addr);
    };
    let family = u16_at(&b, 0) as i32;
    let fam = enum_name(family as u64, ADDRESS_FAMILIES);
    match family {
        libc::AF_UNIX => {
            let at = offset_of!(libc::sockaddr_un, sun_path);
            let path = b.get(at..).unwrap_or(&[]);
            if path.is_empty() {
                format!("{{sa_family={fam}}}")
            } else if path[0] == 0 {
                format!(
                    "{{sa_family={fam}, sun_path=@{}}}",
                    quote(&path[1..], false)
                )
            } else {
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                format!(
                    "{{sa_family={fam}, sun_path={}}}",
                    quote(&path[..end], false)
                )
            }
        }
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            let port = u16::from_be(u16_at(&b, offset_of!(libc::sockaddr_in, sin_port)));
            let a = offset_of!(libc::sockaddr_in, sin_addr);
            let ip = std::net::Ipv4Addr::new(b[a], b[a + 1], b[a + 2], b[a + 3]);
            format!("{{sa_family={fam}, sin_port=htons({port}), sin_addr=inet_addr(\"{ip}\")}}")
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            let port = u16::from_be(u16_at(&b, offset_of!(libc::sockaddr_in6, sin6_port)));
            let flow = u32::from_be(u32_at(&b, offset_of!(libc::sockaddr_in6, sin6_flowinfo)));
            let a = offset_of!(libc::sockaddr_in6, sin6_addr);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[a..a + 16]);
            let ip = std::net::Ipv6Addr::from(octets);
            let scope = u32_at(&b, offset_of!(libc::sockaddr_in6, sin6_scope_id));
            format!(
                "{{sa_family={fam}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), \
                 inet_pton({fam}, \"{ip}\", &sin6_addr), sin6_scope_id={scope}}}"
            )
        }
        libc::AF_NETLINK if len >= size_of::<libc::sockaddr_nl>() => {
            // strace shows the padding only when it is not 0.
            // nl_family (u16), nl_pad (u16), nl_pid, nl_groups.
            let pad = u16_at(&b, size_of::<libc::sa_family_t>());
            let pad = if pad != 0 {
                format!("nl_pad={}, ", hex(pad.into()))
            } else {
                String::new()
            };
            format!(
                "{{sa_family={fam}, {pad}nl_pid={}, nl_groups={:08x}}}",
                u32_at(&b, offset_of!(libc::sockaddr_nl, nl_pid)),
                u32_at(&b, offset_of!(libc::sockaddr_nl, nl_groups))
            )
        }
        _ => format!("{{sa_family={fam}, ...}}"),
    }
}

/// An `iovec` array: `[{iov_base="hi\n", iov_len=3}]`. At exit, `filled`
/// is the byte count the kernel wrote across the buffers.
pub(super) fn iovec(c: &mut Ctx<'_>, addr: u64, count: u64, filled: Option<u64>) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let size = size_of::<libc::iovec>();
    let n = (count as usize).min(c.limit);
    let Some(b) = c.mem.bytes(addr, n * size) else {
        return ptr(addr);
    };
    let mut left = filled;
    let mut items = Vec::new();
    for i in 0..n {
        let base = u64_at(&b, i * size + offset_of!(libc::iovec, iov_base));
        let len = u64_at(&b, i * size + offset_of!(libc::iovec, iov_len));
        let shown = match left.as_mut() {
            Some(l) => {
                let s = len.min(*l);
                *l -= s;
                s
            }
            None => len,
        };
        let data = buffer_at(c, base, shown as usize, false);
        items.push(format!("{{iov_base={data}, iov_len={len}}}"));
    }
    if (count as usize) > n {
        items.push("...".into());
    }
    format!("[{}]", items.join(", "))
}

pub(super) fn clone_flags(v: u64) -> String {
    let sig = v & libc::CSIGNAL as u64;
    let rest = v & !(libc::CSIGNAL as u64);
    let mut parts = Vec::new();
    if rest != 0 {
        parts.push(flags(rest, &CLONE_FLAGS));
    }
    if sig != 0 {
        parts.push(signame(sig as i32));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// What `clone` shows after its flags: `, parent_tid=[N], tls=…,
/// child_tidptr=…`, as its flags say.
pub(super) fn clone_tail(c: &mut Ctx<'_>) -> Option<String> {
    let fl = c.arg(0);
    let has = |bits: i32| fl & bits as u32 as u64 != 0;
    let mut parts = Vec::new();
    if has(libc::CLONE_PARENT_SETTID | libc::CLONE_PIDFD) {
        let at = c.arg(2);
        let shown = match c.success().and_then(|_| c.mem.bytes(at, size_of::<i32>())) {
            Some(b) => format!("[{}]", i32_at(&b, 0)),
            None => ptr(at),
        };
        parts.push(format!("parent_tid={shown}"));
    }
    if has(libc::CLONE_SETTLS) {
        parts.push(format!("tls={}", ptr(c.arg(4))));
    }
    if has(libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) {
        parts.push(format!("child_tidptr={}", ptr(c.arg(3))));
    }
    (!parts.is_empty()).then(|| format!(", {}", parts.join(", ")))
}

fn clone3_read(c: &mut Ctx<'_>, addr: u64) -> Option<Vec<u8>> {
    let size = (c.arg(1) as usize).min(size_of::<libc::clone_args>());
    let mut b = c.mem.bytes(addr, size)?;
    b.resize(size_of::<libc::clone_args>(), 0);
    Some(b)
}

pub(super) fn clone3_args(c: &mut Ctx<'_>, addr: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let Some(b) = clone3_read(c, addr) else {
        return ptr(addr);
    };
    let field = |off: usize| u64_at(&b, off);
    let fl = field(offset_of!(libc::clone_args, flags));
    let has = |bits: i32| fl & bits as u32 as u64 != 0;
    let mut parts = vec![format!("flags={}", flags(fl, &CLONE_FLAGS))];
    if has(libc::CLONE_PIDFD) {
        parts.push(format!(
            "pidfd={}",
            ptr(field(offset_of!(libc::clone_args, pidfd)))
        ));
    }
    if has(libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) {
        parts.push(format!(
            "child_tid={}",
            ptr(field(offset_of!(libc::clone_args, child_tid)))
        ));
    }
    if has(libc::CLONE_PARENT_SETTID) {
        parts.push(format!(
            "parent_tid={}",
            ptr(field(offset_of!(libc::clone_args, parent_tid)))
        ));
    }
    let exit_signal = field(offset_of!(libc::clone_args, exit_signal));
    parts.push(format!("exit_signal={}", signal_arg(exit_signal as i32)));
    parts.push(format!(
        "stack={}",
        ptr(field(offset_of!(libc::clone_args, stack)))
    ));
    parts.push(format!(
        "stack_size={}",
        hex(field(offset_of!(libc::clone_args, stack_size)))
    ));
    if has(libc::CLONE_SETTLS) {
        parts.push(format!(
            "tls={}",
            ptr(field(offset_of!(libc::clone_args, tls)))
        ));
    }
    let set_tid_size = field(offset_of!(libc::clone_args, set_tid_size));
    if set_tid_size != 0 {
        parts.push(format!(
            "set_tid={}, set_tid_size={set_tid_size}",
            ptr(field(offset_of!(libc::clone_args, set_tid)))
        ));
    }
    format!("{{{}}}", parts.join(", "))
}

/// What `clone3` wrote back, ` => {pidfd=[N], parent_tid=[M]}` (if it
/// succeeded), then `, SIZE`.
pub(super) fn clone3_tail(c: &mut Ctx<'_>) -> String {
    let size = format!(", {}", c.arg(1));
    let addr = c.arg(0);
    if c.success().is_none() {
        return size;
    }
    let Some(b) = clone3_read(c, addr) else {
        return size;
    };
    let fl = u64_at(&b, offset_of!(libc::clone_args, flags));
    let mut parts = Vec::new();
    for (bit, name, off) in [
        (
            libc::CLONE_PIDFD,
            "pidfd",
            offset_of!(libc::clone_args, pidfd),
        ),
        (
            libc::CLONE_PARENT_SETTID,
            "parent_tid",
            offset_of!(libc::clone_args, parent_tid),
        ),
    ] {
        if fl & bit as u32 as u64 != 0 {
            let at = u64_at(&b, off);
            let shown = match c.mem.bytes(at, size_of::<i32>()) {
                Some(v) => format!("[{}]", i32_at(&v, 0)),
                None => ptr(at),
            };
            parts.push(format!("{name}={shown}"));
        }
    }
    if parts.is_empty() {
        size
    } else {
        format!(" => {{{}}}{size}", parts.join(", "))
    }
}

const FUTEX_MODIFIERS: u64 = (libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64;

pub(super) fn futex_op(v: u64) -> String {
    xlat(hex(v), || futex_op_name(v))
}

fn futex_op_name(v: u64) -> String {
    let cmd = v & !FUTEX_MODIFIERS;
    let mut s = match enum_lookup(cmd, FUTEX_CMDS) {
        Some(n) => n.to_string(),
        None => cmd.to_string(),
    };
    if v & libc::FUTEX_PRIVATE_FLAG as u64 != 0 {
        s.push_str("_PRIVATE");
    }
    if v & libc::FUTEX_CLOCK_REALTIME as u64 != 0 {
        s.push_str("|FUTEX_CLOCK_REALTIME");
    }
    s
}

/// The futex arguments after the operation, as that operation uses them.
pub(super) fn futex_rest(c: &mut Ctx<'_>) -> Option<String> {
    let cmd = (c.arg(1) & !FUTEX_MODIFIERS) as i32;
    let val = (c.arg(2) as u32).to_string();
    let timeout = c.arg(3);
    let val2 = (timeout as u32).to_string();
    let uaddr2 = ptr(c.arg(4));
    let val3 = c.arg(5) as u32;
    let bitset = if val3 == libc::FUTEX_BITSET_MATCH_ANY as u32 {
        "FUTEX_BITSET_MATCH_ANY".to_string()
    } else {
        hex(val3 as u64)
    };
    let ts = |c: &mut Ctx<'_>| in_struct(c, timeout, size_of::<libc::timespec>(), timespec);
    let parts: Vec<String> = match cmd {
        libc::FUTEX_WAIT => vec![val, ts(c)],
        libc::FUTEX_WAKE | libc::FUTEX_FD => vec![val],
        libc::FUTEX_REQUEUE => vec![val, val2, uaddr2],
        libc::FUTEX_CMP_REQUEUE | libc::FUTEX_CMP_REQUEUE_PI => {
            vec![val, val2, uaddr2, val3.to_string()]
        }
        libc::FUTEX_WAKE_OP => vec![val, val2, uaddr2, hex(val3 as u64)],
        libc::FUTEX_LOCK_PI | libc::FUTEX_LOCK_PI2 => vec![ts(c)],
        libc::FUTEX_UNLOCK_PI | libc::FUTEX_TRYLOCK_PI => vec![],
        libc::FUTEX_WAIT_BITSET => vec![val, ts(c), bitset],
        libc::FUTEX_WAKE_BITSET => vec![val, bitset],
        libc::FUTEX_WAIT_REQUEUE_PI => vec![val, ts(c), uaddr2],
        _ => vec![hex(c.arg(2)), hex(timeout), hex(c.arg(4)), hex(c.arg(5))],
    };
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The third `fcntl` argument, if the command takes one.
pub(super) fn fcntl_arg(cmd: i32, v: u64) -> Option<String> {
    Some(match cmd {
        libc::F_GETFD
        | libc::F_GETFL
        | libc::F_GETOWN
        | uapi::F_GETSIG
        | libc::F_GETLEASE
        | libc::F_GETPIPE_SZ
        | libc::F_GET_SEALS => return None,
        libc::F_SETFD => flags(v, &FD_CLOEXEC_FLAG),
        libc::F_SETFL => open_flags(v),
        libc::F_DUPFD
        | libc::F_DUPFD_CLOEXEC
        | libc::F_SETOWN
        | uapi::F_SETSIG
        | libc::F_SETPIPE_SZ
        | libc::F_SETLEASE
        | libc::F_NOTIFY => (v as i32).to_string(),
        libc::F_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW
        | uapi::F_GETOWN_EX
        | uapi::F_SETOWN_EX => ptr(v),
        _ => hex(v),
    })
}
