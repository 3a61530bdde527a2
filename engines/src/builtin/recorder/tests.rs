use super::decode::*;
use super::format::*;
use super::names::*;
use super::signals::*;
use super::structs::*;
use super::table::*;
use super::*;
use std::mem::{offset_of, size_of};
use std::sync::{Arc, Mutex};

/// Tracee memory made of a few mapped regions.
#[derive(Default)]
struct FakeMem {
    regions: Vec<(u64, Vec<u8>)>,
    sp: Option<u64>,
}

impl FakeMem {
    fn map(mut self, addr: u64, bytes: &[u8]) -> Self {
        self.regions.push((addr, bytes.to_vec()));
        self
    }

    fn region(&self, addr: u64) -> Option<&[u8]> {
        self.regions.iter().find_map(|(start, b)| {
            (addr >= *start && addr < start + b.len() as u64).then(|| &b[(addr - start) as usize..])
        })
    }
}

impl Tracee for FakeMem {
    fn fd_path(&mut self, fd: i32) -> Option<Vec<u8>> {
        (fd == 3).then(|| b"/etc/pass<wd>".to_vec())
    }

    fn bytes(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
        if len == 0 {
            return Some(Vec::new());
        }
        let r = self.region(addr)?;
        (r.len() >= len).then(|| r[..len].to_vec())
    }

    fn string(&mut self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)> {
        let r = self.region(addr)?;
        match r.iter().take(max + 1).position(|&c| c == 0) {
            Some(n) => Some((r[..n].to_vec(), true)),
            None if r.len() >= max => Some((r[..max].to_vec(), false)),
            None => None,
        }
    }

    fn stack_pointer(&mut self) -> Option<u64> {
        self.sp
    }
}

fn nr(name: &str) -> u64 {
    crate::event::syscall_number(name).unwrap()
}

fn entry(name: &str, args: &[u64]) -> SyscallEntry {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    SyscallEntry {
        nr: nr(name),
        args: a,
        arch: crate::arch::AUDIT_ARCH,
        from_seccomp: false,
    }
}

fn exit(e: SyscallEntry, ret: i64) -> SyscallExit {
    SyscallExit {
        entry: e,
        ret,
        is_error: (-4095..0).contains(&ret),
        system_ns: None,
    }
}

/// A recorder whose lines are collected.
fn recorder() -> (Recorder, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let r = Recorder::new(Box::new(move |l: &str| {
        sink.lock().unwrap().push(l.to_string())
    }));
    (r, lines)
}

/// The line for one complete call on task 100.
fn call_line(mem: &mut FakeMem, name: &str, args: &[u64], ret: i64) -> String {
    let (mut r, lines) = recorder();
    let e = entry(name, args);
    r.on_entry(mem, 100, &e);
    r.on_exit(mem, 100, &exit(e, ret));
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

#[test]
fn quoting_escapes_like_strace() {
    // Bytes and expected text taken from a real strace run.
    let raw = b"\x018\x017\x01a\xff\x00\x0b\x0c\x1b\"\\ \x7f";
    assert_eq!(quote(raw, false), r#""\18\0017\1a\377\0\v\f\33\"\\ \177""#);
    assert_eq!(quote(b"hi\n\t\r", false), r#""hi\n\t\r""#);
    assert_eq!(quote(b"\x27\xb4", true), r#""\x27\xb4""#);
    assert_eq!(quote(b"", false), r#""""#);
}

#[test]
fn strings_and_buffers_truncate_at_the_limit() {
    let a32 = [b'a'; 32];
    let mut s32 = a32.to_vec();
    s32.push(0);
    let mut s33 = vec![b'a'; 33];
    s33.push(0);
    let mut mem = FakeMem::default()
        .map(0x1000, &s32)
        .map(0x2000, &s33)
        .map(0x3000, &[b'b'; 40]);
    let mut c = Ctx::new(&mut mem, [0; 6], None);
    let q32 = format!("\"{}\"", "a".repeat(32));
    assert_eq!(string_at(&mut c, 0x1000, 32), q32);
    assert_eq!(string_at(&mut c, 0x2000, 32), format!("{q32}..."));
    assert_eq!(string_at(&mut c, 0, 32), "NULL");
    // Unreadable: the pointer.
    assert_eq!(string_at(&mut c, 0x9000, 32), "0x9000");
    assert_eq!(
        buffer_at(&mut c, 0x3000, 40, false),
        format!("\"{}\"...", "b".repeat(32))
    );
    assert_eq!(buffer_at(&mut c, 0x3000, 3, false), r#""bbb""#);
    assert_eq!(buffer_at(&mut c, 0x3ff0, 3, false), "0x3ff0");
}

#[test]
fn flags_decode_like_strace() {
    let o = |f: i32| open_flags(f as u32 as u64);
    assert_eq!(o(libc::O_RDONLY | libc::O_CLOEXEC), "O_RDONLY|O_CLOEXEC");
    assert_eq!(
        o(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC),
        "O_WRONLY|O_CREAT|O_TRUNC"
    );
    assert_eq!(
        o(libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_DIRECTORY),
        "O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY"
    );
    // From strace's output for Python's os.open with every flag.
    assert_eq!(
        o(libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_NOCTTY
            | libc::O_TRUNC
            | libc::O_APPEND
            | libc::O_NONBLOCK
            | libc::O_DSYNC
            | libc::O_ASYNC
            | libc::O_NOFOLLOW
            | libc::O_NOATIME
            | libc::O_CLOEXEC
            | libc::O_SYNC
            | libc::O_DIRECT),
        "O_WRONLY|O_CREAT|O_EXCL|O_NOCTTY|O_TRUNC|O_APPEND|O_NONBLOCK|O_SYNC|O_DIRECT|\
         O_NOFOLLOW|O_NOATIME|O_CLOEXEC|FASYNC"
    );
    assert_eq!(
        o(libc::O_RDWR | libc::O_CLOEXEC | libc::O_TMPFILE),
        "O_RDWR|O_CLOEXEC|O_TMPFILE"
    );
    assert_eq!(
        o(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | 0x4000_0000),
        "O_RDONLY|O_CLOEXEC|O_PATH|O_DIRECTORY|0x40000000"
    );
    assert_eq!(flags(0, &PROT), "PROT_NONE");
    assert_eq!(
        flags((libc::PROT_READ | libc::PROT_EXEC) as u64, &PROT),
        "PROT_READ|PROT_EXEC"
    );
    assert_eq!(
        flags(
            (libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_DENYWRITE) as u64,
            &MAP_FLAGS
        ),
        "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE"
    );
    assert_eq!(flags(0, &ACCESS_MODE), "F_OK");
    assert_eq!(
        flags((libc::R_OK | libc::X_OK) as u64, &ACCESS_MODE),
        "R_OK|X_OK"
    );
    assert_eq!(
        clone_flags((libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64),
        "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
    );
    assert_eq!(clone_flags(0), "0");
    assert_eq!(
        statx_flags((libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT) as u64),
        "AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW|AT_NO_AUTOMOUNT"
    );
    assert_eq!(
        futex_op((libc::FUTEX_WAIT_BITSET | libc::FUTEX_CLOCK_REALTIME) as u64),
        "FUTEX_WAIT_BITSET|FUTEX_CLOCK_REALTIME"
    );
    assert_eq!(
        futex_op((libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as u64),
        "FUTEX_WAKE_PRIVATE"
    );
    assert_eq!(
        sock_type((libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64),
        "SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK"
    );
}

#[test]
fn modes_signals_and_errors() {
    assert_eq!(mode_octal(0o644), "0644");
    assert_eq!(mode_octal(0), "000");
    assert_eq!(mode_octal(0o7), "007");
    assert_eq!(mode_octal(0o4755), "04755");
    assert_eq!(file_mode(libc::S_IFREG | 0o644), "S_IFREG|0644");
    assert_eq!(
        file_mode(libc::S_IFDIR | libc::S_ISVTX | 0o777),
        "S_IFDIR|S_ISVTX|0777"
    );

    assert_eq!(sigset(0), "[]");
    assert_eq!(sigset(u64::MAX), "~[]");
    assert_eq!(sigset(!(0b11u64 << 31)), "~[RTMIN RT_1]");
    assert_eq!(sigset(1 << (libc::SIGPIPE - 1)), "[PIPE]");
    assert_eq!(signame(libc::SIGUSR1), "SIGUSR1");
    assert_eq!(signame(33), "SIGRT_1");
    assert_eq!(signal_arg(0), "0");

    assert_eq!(
        errno_text(libc::ENOENT),
        "-1 ENOENT (No such file or directory)"
    );
    assert_eq!(
        errno_text(libc::ENOTTY),
        "-1 ENOTTY (Inappropriate ioctl for device)"
    );
    assert_eq!(
        errno_text(512),
        "? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    );

    let sig = SignalReport {
        signo: libc::SIGUSR1,
        code: libc::SI_TKILL,
        sender_pid: 4242,
        sender_uid: 1000,
        addr: 0,
        child: None,
    };
    assert_eq!(
        signal_line(&sig),
        "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=4242, si_uid=1000} ---"
    );
    let chld = SignalReport {
        signo: libc::SIGCHLD,
        code: libc::CLD_KILLED,
        sender_pid: 77,
        sender_uid: 0,
        addr: 0,
        child: Some(crate::event::ChildInfo {
            status: libc::SIGKILL,
            utime: 0,
            stime: 250,
        }),
    };
    // Clock ticks, and the seconds when not 0, as strace 6.1.
    assert_eq!(
        signal_line(&chld),
        "--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_KILLED, si_pid=77, si_uid=0, \
         si_status=SIGKILL, si_utime=0, si_stime=250 /* 2.50 s */} ---"
    );
    let segv = SignalReport {
        signo: libc::SIGSEGV,
        code: uapi::SEGV_MAPERR,
        sender_pid: 0,
        sender_uid: 0,
        addr: 0,
        child: None,
    };
    assert_eq!(
        signal_line(&segv),
        "--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL} ---"
    );
    assert_eq!(death_line(&ExitStatus::Exited(3)), "+++ exited with 3 +++");
    assert_eq!(
        death_line(&ExitStatus::Signaled {
            signo: libc::SIGSEGV,
            core_dumped: true
        }),
        "+++ killed by SIGSEGV (core dumped) +++"
    );
    assert_eq!(wait_status(0), "{WIFEXITED(s) && WEXITSTATUS(s) == 0}");
    assert_eq!(
        wait_status(libc::SIGKILL),
        "{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}"
    );
    assert_eq!(rlimit_value(8 << 20), "8192*1024");
    assert_eq!(rlimit_value(libc::RLIM64_INFINITY), "RLIM64_INFINITY");
}

#[test]
fn results_align_at_column_40() {
    let mut l = "close(1)".to_string();
    finish(&mut l, "0");
    assert_eq!(l, format!("close(1){}= 0", " ".repeat(32)));
    let mut l = format!("access(\"{}\", F_OK)", "a".repeat(23));
    assert_eq!(l.len(), 39);
    finish(&mut l, "0");
    assert!(l.ends_with("F_OK) = 0"));
    let mut l = "x".repeat(60);
    finish(&mut l, "?");
    assert!(l.ends_with("x = ?"));
}

#[test]
fn common_calls_decode_like_strace() {
    let mut mem = FakeMem::default()
        .map(0x1000, b"/etc/ld.so.cache\0")
        .map(0x2000, b"hi\n")
        .map(0x3000, b"abc");
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    let fdcwd = libc::AT_FDCWD as u32 as u64;
    assert_eq!(
        call_line(&mut mem, "openat", &[fdcwd, 0x1000, flags], 3),
        "openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3"
    );
    assert_eq!(
        call_line(
            &mut mem,
            "openat",
            &[fdcwd, 0x1000, 0],
            -(libc::ENOENT as i64)
        ),
        "openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY) = -1 ENOENT (No such file or \
         directory)"
    );
    let creat = (libc::O_WRONLY | libc::O_CREAT) as u64;
    assert_eq!(
        call_line(&mut mem, "openat", &[fdcwd, 0x1000, creat, 0o666], 4),
        "openat(AT_FDCWD, \"/etc/ld.so.cache\", O_WRONLY|O_CREAT, 0666) = 4"
    );
    // Unreadable path: its address.
    assert_eq!(
        call_line(
            &mut mem,
            "openat",
            &[fdcwd, 0x7000, 0],
            -(libc::EFAULT as i64)
        ),
        "openat(AT_FDCWD, 0x7000, O_RDONLY)      = -1 EFAULT (Bad address)"
    );
    assert_eq!(
        call_line(&mut mem, "write", &[1, 0x2000, 3], 3),
        format!("write(1, \"hi\\n\", 3){}= 3", " ".repeat(21))
    );
    assert_eq!(
        call_line(&mut mem, "read", &[3, 0x3000, 4096], 3),
        format!("read(3, \"abc\", 4096){}= 3", " ".repeat(20))
    );
    // A failed read shows the buffer's address.
    assert_eq!(
        call_line(&mut mem, "read", &[3, 0x3000, 4096], -(libc::EBADF as i64)),
        format!(
            "read(3, 0x3000, 4096){}= -1 EBADF (Bad file descriptor)",
            " ".repeat(19)
        )
    );
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let map = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
    assert_eq!(
        call_line(
            &mut mem,
            "mmap",
            &[0, 8192, prot, map, u64::MAX, 0],
            0x7f00_8189_0000
        ),
        "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = \
         0x7f0081890000"
    );
    // Undecoded arguments of a syscall outside the table: hex.
    let mut unknown = entry("getpid", &[]);
    unknown.nr = 500;
    let (mut r, lines) = recorder();
    r.on_entry(&mut mem, 100, &unknown);
    r.on_exit(&mut mem, 100, &exit(unknown, -(libc::ENOSYS as i64)));
    assert_eq!(
        lines.lock().unwrap()[0],
        "syscall_0x1f4(0, 0, 0, 0, 0, 0)         = -1 ENOSYS (Function not implemented)"
    );
}

#[test]
fn execve_shows_argv_and_env_count() {
    let mut ptrs = Vec::new();
    for p in [0x1000u64, 0x1100, 0] {
        ptrs.extend_from_slice(&p.to_ne_bytes());
    }
    let mut env = Vec::new();
    for p in [0x1200u64, 0x1200, 0] {
        env.extend_from_slice(&p.to_ne_bytes());
    }
    let mut mem = FakeMem::default()
        .map(0x1000, b"/bin/echo\0")
        .map(0x1100, b"hi\0")
        .map(0x1200, b"A=1\0")
        .map(0x4000, &ptrs)
        .map(0x5000, &env);
    assert_eq!(
        call_line(&mut mem, "execve", &[0x1000, 0x4000, 0x5000], 0),
        "execve(\"/bin/echo\", [\"/bin/echo\", \"hi\"], 0x5000 /* 2 vars */) = 0"
    );
}

#[test]
fn stat_struct_at_exit() {
    let mut st = vec![0u8; size_of::<libc::stat>()];
    let mode = (libc::S_IFREG | 0o644).to_ne_bytes();
    let m = offset_of!(libc::stat, st_mode);
    st[m..m + 4].copy_from_slice(&mode);
    let sz = offset_of!(libc::stat, st_size);
    st[sz..sz + 8].copy_from_slice(&33699i64.to_ne_bytes());
    let mut mem = FakeMem::default().map(0x1000, b"\0").map(0x2000, &st);
    assert_eq!(
        call_line(
            &mut mem,
            "newfstatat",
            &[3, 0x1000, 0x2000, libc::AT_EMPTY_PATH as u64],
            0
        ),
        "newfstatat(3, \"\", {st_mode=S_IFREG|0644, st_size=33699, ...}, AT_EMPTY_PATH) = 0"
    );
}

#[test]
fn interleaved_tasks_use_unfinished_and_resumed() {
    let mut mem = FakeMem::default().map(0x3000, b"abc");
    let (mut r, lines) = recorder();
    let r = {
        r = r.follow(true);
        &mut r
    };
    r.on_clone(CloneKind::Fork);
    let read = entry("read", &[3, 0x3000, 4096]);
    let getpid = entry("getpid", &[]);
    r.on_entry(&mut mem, 100, &read);
    r.on_entry(&mut mem, 101, &getpid);
    r.on_exit(&mut mem, 101, &exit(getpid, 101));
    r.on_exit(&mut mem, 100, &exit(read, 3));
    let exit_group = entry("exit_group", &[0]);
    r.on_entry(&mut mem, 101, &exit_group);
    r.on_task_exit(101);
    r.on_death(101, &ExitStatus::Exited(0));
    let close = entry("close", &[3]);
    r.on_entry(&mut mem, 100, &close);
    r.on_exit(&mut mem, 100, &exit(close, 0));
    let lines = lines.lock().unwrap();
    assert_eq!(
        *lines,
        [
            "[pid   100] read(3,  <unfinished ...>".to_string(),
            format!("[pid   101] getpid(){}= 101", " ".repeat(20)),
            "[pid   100] <... read resumed>\"abc\", 4096) = 3".to_string(),
            format!("[pid   101] exit_group(0){}= ?", " ".repeat(15)),
            "[pid   101] +++ exited with 0 +++".to_string(),
            // One task left: no prefix, as strace.
            format!("close(3){}= 0", " ".repeat(32)),
        ]
    );
}

#[test]
fn clone_tail_is_printed_at_exit() {
    let mut mem = FakeMem::default();
    let (r, lines) = recorder();
    let mut r = r.follow(true).pid_prefix(PidPrefix::Always);
    let fl = (libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64;
    let clone = entry("clone", &[fl, 0, 0, 0x7f00, 0]);
    r.on_entry(&mut mem, 100, &clone);
    r.on_clone(CloneKind::Fork);
    r.on_signal(
        101,
        &SignalReport {
            signo: libc::SIGSTOP,
            code: libc::SI_USER,
            sender_pid: 1,
            sender_uid: 0,
            addr: 0,
            child: None,
        },
    );
    r.on_exit(&mut mem, 100, &exit(clone, 101));
    let lines = lines.lock().unwrap();
    assert_eq!(
        *lines,
        [
            "100   clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|\
             SIGCHLD <unfinished ...>",
            "101   --- SIGSTOP {si_signo=SIGSTOP, si_code=SI_USER, si_pid=1, si_uid=0} ---",
            "100   <... clone resumed>, child_tidptr=0x7f00) = 101",
        ]
    );
}

#[test]
fn sigreturn_reads_the_saved_mask() {
    let sp = 0x8000u64;
    let at = sp + offset_of!(libc::ucontext_t, uc_sigmask) as u64;
    let mask = 1u64 << (libc::SIGUSR2 - 1);
    let mut mem = FakeMem::default().map(at, &mask.to_ne_bytes());
    mem.sp = Some(sp);
    assert_eq!(
        call_line(&mut mem, "rt_sigreturn", &[], 0),
        format!("rt_sigreturn({{mask=[USR2]}}){}= 0", " ".repeat(13))
    );
}

#[test]
fn hostile_arguments_never_panic() {
    // Every table entry, with argument registers and return values a
    // tracee could pass, over memory that is partly mapped.
    let patterns = [0u64, 1, 0x1000, u64::MAX, u64::MAX - 7, 1 << 63];
    let rets = [0i64, 3, -(libc::EFAULT as i64), i64::MAX, -512];
    for spec in SPECS {
        for &a in &patterns {
            for &ret in &rets {
                let mut mem = FakeMem::default().map(0x1000, &[0xff; 64]);
                mem.sp = Some(u64::MAX - 3);
                let _ = call_line(&mut mem, spec.name, &[a; 6], ret);
            }
        }
    }
}

#[test]
fn table_covers_every_syscall_once() {
    let mut seen = std::collections::HashSet::new();
    for s in SPECS {
        assert!(
            crate::event::syscall_number(s.name).is_ok(),
            "{} is not a syscall",
            s.name
        );
        assert!(seen.insert(s.name), "{} listed twice", s.name);
        let registers = s.args.iter().filter(|a| !a.self_separated()).count();
        assert!(registers <= 6, "{} has too many arguments", s.name);
    }
    let missing: Vec<&str> = (0..crate::event::MAX_SYSCALL as u64)
        .filter_map(crate::event::syscall_name)
        .filter(|n| !seen.contains(n))
        .collect();
    assert!(missing.is_empty(), "no table entry for {missing:?}");
}

#[test]
fn descriptors_with_paths() {
    let mut mem = FakeMem::default();
    let mut c = Ctx::new(&mut mem, [0; 6], None);
    assert_eq!(c.fd(3), "3");
    c.fd_paths = true;
    // `<` and `>` in a path are escaped, as strace does.
    assert_eq!(c.fd(3), r"3</etc/pass\x3cwd\x3e>");
    // Not open: the number alone.
    assert_eq!(c.fd(4), "4");
    assert_eq!(c.fd(u64::MAX), "-1");
}

#[test]
fn strings_in_hex() {
    let mut mem = FakeMem::default()
        .map(0x1000, b"/etc\0")
        .map(0x2000, b"a\nb\0")
        .map(0x3000, b"\x7fELF\0");
    let mut c = Ctx {
        hex: Hex::NonAscii,
        ..Ctx::new(&mut mem, [0; 6], None)
    };
    // -x: only a string with a byte that is not printable (nor \t\n…).
    assert_eq!(string_at(&mut c, 0x1000, 32), r#""/etc""#);
    assert_eq!(string_at(&mut c, 0x2000, 32), r#""a\nb""#);
    assert_eq!(string_at(&mut c, 0x3000, 32), r#""\x7f\x45\x4c\x46""#);
    // -xx: every string.
    c.hex = Hex::All;
    assert_eq!(string_at(&mut c, 0x1000, 32), r#""\x2f\x65\x74\x63""#);
}

#[test]
fn socket_options_epoll_events_and_lengths_like_strace() {
    let one = 1i32.to_ne_bytes();
    let rcvbuf = 131072i32.to_ne_bytes();
    let four = 4u32.to_ne_bytes();
    // epoll_event, packed: events (u32), data (u64).
    let mut ev = (libc::EPOLLIN as u32).to_ne_bytes().to_vec();
    ev.extend_from_slice(&5u64.to_ne_bytes());
    let mut mem = FakeMem::default()
        .map(0x1000, &one)
        .map(0x2000, &rcvbuf)
        .map(0x2100, &four)
        .map(0x3000, &ev);
    let (sol, tcp) = (libc::SOL_SOCKET as u64, libc::IPPROTO_TCP as u64);
    assert_eq!(
        call_line(
            &mut mem,
            "setsockopt",
            &[3, sol, libc::SO_REUSEADDR as u64, 0x1000, 4],
            0
        ),
        "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0"
    );
    assert_eq!(
        call_line(
            &mut mem,
            "setsockopt",
            &[4, tcp, libc::TCP_NODELAY as u64, 0x1000, 4],
            0
        ),
        "setsockopt(4, SOL_TCP, TCP_NODELAY, [1], 4) = 0"
    );
    assert_eq!(
        call_line(
            &mut mem,
            "getsockopt",
            &[4, sol, libc::SO_RCVBUF as u64, 0x2000, 0x2100],
            0
        ),
        "getsockopt(4, SOL_SOCKET, SO_RCVBUF, [131072], [4]) = 0"
    );
    // Unknown level and option: numbers; a value that is not an int: the
    // pointer.
    assert_eq!(
        call_line(&mut mem, "setsockopt", &[4, 999, 77, 0x3000, 12], -22),
        format!(
            "{:<39} = -1 EINVAL (Invalid argument)",
            "setsockopt(4, 999, 77, 0x3000, 12)"
        )
    );
    let add = libc::EPOLL_CTL_ADD as u64;
    assert_eq!(
        call_line(&mut mem, "epoll_ctl", &[6, add, 5, 0x3000], 0),
        "epoll_ctl(6, EPOLL_CTL_ADD, 5, {events=EPOLLIN, data={u32=5, u64=5}}) = 0"
    );
    assert_eq!(
        call_line(&mut mem, "epoll_wait", &[6, 0x3000, 1023, 1000], 1),
        "epoll_wait(6, [{events=EPOLLIN, data={u32=5, u64=5}}], 1023, 1000) = 1"
    );
    assert_eq!(
        call_line(&mut mem, "epoll_wait", &[6, 0x3000, 1023, 0], 0),
        format!("{:<39} = 0", "epoll_wait(6, [], 1023, 0)")
    );
    // ioctl requests that take no argument show none.
    assert_eq!(
        call_line(&mut mem, "ioctl", &[3, libc::FIOCLEX, 0], 0),
        format!("{:<39} = 0", "ioctl(3, FIOCLEX)")
    );
    assert_eq!(
        call_line(&mut mem, "ioctl", &[3, libc::TCGETS, 0x7ffd0000], -25),
        format!(
            "{:<39} = -1 ENOTTY (Inappropriate ioctl for device)",
            "ioctl(3, TCGETS, 0x7ffd0000)"
        )
    );
    // restart_syscall names the call it resumes (strace's `read` when
    // none was seen).
    let (mut r, lines) = recorder();
    let sleep = entry("clock_nanosleep", &[0, 0, 0, 0]);
    r.on_entry(&mut mem, 100, &sleep);
    r.on_exit(&mut mem, 100, &exit(sleep, -516));
    let restart = entry("restart_syscall", &[]);
    r.on_entry(&mut mem, 100, &restart);
    r.on_exit(&mut mem, 100, &exit(restart, 0));
    let restart = entry("restart_syscall", &[]);
    r.on_entry(&mut mem, 200, &restart);
    r.on_exit(&mut mem, 200, &exit(restart, 0));
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines[1].starts_with("restart_syscall(<... resuming interrupted clock_nanosleep ...>) = 0"),
        "{lines:?}"
    );
    assert!(
        lines[2].contains("restart_syscall(<... resuming interrupted read ...>) = 0"),
        "{lines:?}"
    );
    // A sleep's time left, when a signal cut it short; else the pointer.
    let mut ts = 0i64.to_ne_bytes().to_vec();
    ts.extend_from_slice(&699_757_805i64.to_ne_bytes());
    let mut mem = mem.map(0x5000, &ts).map(0x5100, &ts);
    assert_eq!(
        call_line(&mut mem, "nanosleep", &[0x5100, 0x5000], -516),
        "nanosleep({tv_sec=0, tv_nsec=699757805}, {tv_sec=0, tv_nsec=699757805}) = ? \
         ERESTART_RESTARTBLOCK (Interrupted by signal)"
    );
    assert_eq!(
        call_line(&mut mem, "nanosleep", &[0x5100, 0x5000], 0),
        "nanosleep({tv_sec=0, tv_nsec=699757805}, 0x5000) = 0"
    );
    // A socket length the kernel changed: [IN => OUT].
    let mut sin = (libc::AF_INET as u16).to_ne_bytes().to_vec();
    sin.extend_from_slice(&8080u16.to_be_bytes());
    sin.extend_from_slice(&[127, 0, 0, 1]);
    sin.extend_from_slice(&[0; 8]);
    let (mut r, lines) = recorder();
    let e = entry("getsockname", &[5, 0x4000, 0x4100]);
    let mut before = FakeMem::default()
        .map(0x4000, &[0; 128])
        .map(0x4100, &128u32.to_ne_bytes());
    r.on_entry(&mut before, 100, &e);
    let mut after = FakeMem::default()
        .map(0x4000, &sin)
        .map(0x4100, &16u32.to_ne_bytes());
    r.on_exit(&mut after, 100, &exit(e, 0));
    assert_eq!(
        lines.lock().unwrap()[0],
        "getsockname(5, {sa_family=AF_INET, sin_port=htons(8080), \
         sin_addr=inet_addr(\"127.0.0.1\")}, [128 => 16]) = 0"
    );
}

#[test]
fn watched_paths_match_path_and_descriptor_arguments() {
    let mut mem = FakeMem::default()
        .map(0x1000, b"/etc/pass<wd>\0")
        .map(0x2000, b"/etc/shadow\0");
    let watch: Watched = vec![b"/etc/pass<wd>".to_vec()].into();
    // A path argument: the watched one, then another.
    for (addr, want) in [(0x1000, true), (0x2000, false)] {
        let mut c = Ctx {
            watch: Some(watch.clone()),
            ..Ctx::new(&mut mem, [addr, 0, 0, 0, 0, 0], None)
        };
        assert!(format_arg(Arg::Path, 0, &mut c).is_some());
        assert_eq!(c.matched, want, "path at {addr:#x}");
    }
    // A descriptor: 3 refers to the watched path (FakeMem's /proc link),
    // 4 to nothing; the text is the number alone without -y.
    for (fd, want) in [(3, true), (4, false)] {
        let mut c = Ctx {
            watch: Some(watch.clone()),
            ..Ctx::new(&mut mem, [0; 6], None)
        };
        assert_eq!(c.fd(fd), fd.to_string());
        assert_eq!(c.matched, want, "descriptor {fd}");
    }
    // Nothing watched: nothing matched.
    let mut c = Ctx::new(&mut mem, [0x1000, 0, 0, 0, 0, 0], None);
    format_arg(Arg::Path, 0, &mut c);
    let _ = c.fd(3);
    assert!(!c.matched);
}

#[test]
fn memory_policies_and_node_masks() {
    let mut mem = FakeMem::default()
        .map(0x1000, &1u64.to_le_bytes())
        .map(
            0x2000,
            &[0x0fu64.to_le_bytes(), 0x10u64.to_le_bytes()].concat(),
        )
        .map(0x3000, &libc::MPOL_BIND.to_le_bytes());
    for (name, args, want) in [
        (
            "set_mempolicy",
            &[2, 0x1000, 2][..],
            "set_mempolicy(MPOL_BIND, [0x00000000000001], 2)",
        ),
        // 65 nodes: two words.
        (
            "set_mempolicy",
            &[1, 0x2000, 65],
            "set_mempolicy(MPOL_PREFERRED, [0x0000000000000f, 0x00000000000010], 65)",
        ),
        (
            "get_mempolicy",
            &[0x3000, 0x1000, 64, 0, 0],
            "get_mempolicy([MPOL_BIND], [0x00000000000001], 64, NULL, 0)",
        ),
        (
            "mbind",
            &[0x7f00_0000_0000, 4096, 1, 0x1000, 2, 0],
            "mbind(0x7f0000000000, 4096, MPOL_PREFERRED, [0x00000000000001], 2, 0)",
        ),
        (
            "set_mempolicy",
            &[0, 0, 0],
            "set_mempolicy(MPOL_DEFAULT, NULL, 0)",
        ),
    ] {
        let line = call_line(&mut mem, name, args, 0);
        assert!(line.starts_with(want), "{line}");
    }
}
