//! Real unprivileged users for the security tests, and clients and
//! processes running as them.
//!
//! Each test creates its own user (`useradd`), so one test's budgets and
//! processes never meet another's; users persist between runs (creating
//! one is a lock on /etc/passwd, done once).

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Lines, TIMEOUT};

/// A local user made for a test.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

fn getent(db: &str, name: &str) -> Option<Vec<String>> {
    let out = Command::new("getent").args([db, name]).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .map(str::to_string)
            .collect()
    })
}

/// Run `cmd` with the tests' lock on the user database held (useradd
/// refuses to run while another holds /etc/passwd's lock).
fn locked(cmd: &mut Command) {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/utrace-tests-users.lock")
        .expect("open the users lock");
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let out = cmd.output().expect("run useradd/groupadd");
        if out.status.success() || out.status.code() == Some(9) {
            // 9: it exists already.
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The user `utt-TAG`, created if it does not exist (a system user with
/// its own group, no home, no login shell).
pub fn user(tag: &str) -> User {
    let name = format!("utt-{tag}");
    if getent("passwd", &name).is_none() {
        locked(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            &name,
        ]));
    }
    let f = getent("passwd", &name).unwrap_or_else(|| panic!("user {name} was not created"));
    User {
        uid: f[2].parse().expect("uid"),
        gid: f[3].parse().expect("gid"),
        name,
    }
}

/// The group `utt-TAG`, created if it does not exist; its gid.
pub fn group(tag: &str) -> u32 {
    let name = format!("utt-{tag}");
    if getent("group", &name).is_none() {
        locked(Command::new("groupadd").args(["--system", &name]));
    }
    getent("group", &name).expect("group created")[2]
        .parse()
        .expect("gid")
}

/// A program run as `user` (its uid and gid, no supplementary groups),
/// through `setpriv`; `extra` are more setpriv options (capabilities…).
pub fn command_as(user: &User, extra: &[&str], argv: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--clear-groups")
        .args(extra)
        .arg("--")
        .args(argv);
    c
}

/// A sleeping process whose pid is the one to trace; killed when dropped.
pub struct Target {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
}

impl Target {
    /// Start `cmd` (stdin piped: it may wait for a line) and wait until
    /// the program it ends up running has `comm`. The `hold` helper sets
    /// itself up (`--nondumpable`, `--listen`) after its exec, then reads
    /// stdin: for it, wait for that read too, or a test could meet it
    /// before its setup (a CI run once seized a `hold --nondumpable` that
    /// was still dumpable).
    pub fn start(mut cmd: Command, comm: &str) -> Target {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the target");
        let pid = child.id();
        super::wait_for(&format!("pid {pid} to run {comm}"), || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        });
        if comm == "hold" {
            super::wait_reading_stdin(pid);
        }
        Target {
            stdin: child.stdin.take(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `as_client` helper running as some user, driven line by line.
pub struct AsClient {
    child: Child,
    stdin: ChildStdin,
    lines: Lines,
    /// Event and end lines seen while waiting for answers.
    pub events: Vec<String>,
}

impl AsClient {
    /// `as_client` with `args` (credentials), connected to `uri`.
    pub fn start(args: &[String], uri: &str) -> AsClient {
        let mut child = Command::new(crate::tracee!("as_client"))
            .args(args)
            .arg(uri)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start as_client");
        let stdin = child.stdin.take().expect("stdin");
        let lines = Lines::from_reader(child.stdout.take().expect("stdout"));
        let mut c = AsClient {
            child,
            stdin,
            lines,
            events: Vec::new(),
        };
        let first = c.answer();
        assert_eq!(first, "ready", "as_client did not start: {first}");
        c
    }

    /// As `user`, with `extra` as_client options.
    pub fn as_user(user: &User, extra: &[&str], uri: &str) -> AsClient {
        let mut args = vec![
            "--uid".to_string(),
            user.uid.to_string(),
            "--gid".to_string(),
            user.gid.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(&args, uri)
    }

    /// The next line that is not an event.
    pub fn answer(&mut self) -> String {
        loop {
            let l = self.lines.next();
            if l.starts_with("event ") || l.starts_with("end ") {
                self.events.push(l);
                continue;
            }
            return l;
        }
    }

    /// Send `line`, return its answer.
    pub fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").expect("write to as_client");
        self.answer()
    }

    /// The helper's stdin, to send a command whose answer is not awaited.
    pub fn stdin_for_test(&mut self) -> &mut ChildStdin {
        &mut self.stdin
    }

    /// Wait for an event or end line containing `what`.
    pub fn wait_event(&mut self, what: &str) -> String {
        if let Some(l) = self.events.iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        loop {
            let l = self.lines.next();
            let hit = l.contains(what);
            self.events.push(l.clone());
            if hit {
                return l;
            }
        }
    }

    /// The value of `key=` in an `ok` answer.
    pub fn field(answer: &str, key: &str) -> String {
        let prefix = format!("{key}=");
        answer
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key}= in {answer:?}"))
            .to_string()
    }
}

impl Drop for AsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Make a private server's socket reachable by every user (the tests'
/// servers are private: their directory is 0700).
pub fn open_socket(uri: &str) {
    use std::os::unix::fs::PermissionsExt;
    let sock = uri.trim_start_matches("unix://");
    let dir = std::path::Path::new(sock).parent().expect("socket dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o666)).expect("chmod sock");
}

/// A directory every test user may write in, removed when dropped.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("utt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// The contents of `name` once it exists.
    pub fn read(&self, name: &str) -> String {
        let p = self.0.join(name);
        super::wait_for(&format!("{} to be written", p.display()), || {
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 0)
        });
        std::thread::sleep(Duration::from_millis(20));
        std::fs::read_to_string(&p).expect("read")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `utraced` binary built beside the tests.
pub fn utraced_bin() -> std::path::PathBuf {
    workspace_bin("utraced")
}

/// A binary of another package of the workspace, beside this test's
/// (`cargo test --workspace` builds it).
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|d| d.join(name))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// Make a process with exactly pid `pid` (free: its last holder reaped),
/// running `argv` as root, with `clone3`'s `set_tid`. Returns false if the
/// pid was taken meanwhile.
pub fn process_with_pid(pid: i32, argv: &[&str]) -> bool {
    use std::ffi::CString;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let cargs: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let env: [*const libc::c_char; 1] = [std::ptr::null()];
    let tids = [pid];
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        set_tid: tids.as_ptr() as u64,
        set_tid_size: 1,
        ..Default::default()
    };
    // SAFETY: clone3 like fork (no CLONE_VM); the child only calls execve and
    // _exit on memory prepared before the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r == 0 {
        // SAFETY: the child: exec or exit at once.
        unsafe {
            libc::execve(ptrs[0], ptrs.as_ptr(), env.as_ptr());
            libc::_exit(127);
        }
    }
    r == pid as i64
}

/// Let every user connect to a server's socket at `sock`: once the server
/// has set its own mode (0660, just after the bind that made the file
/// appear; setting ours before would be undone), make it 0666.
pub fn open_socket_to_all(sock: &str) {
    use std::os::unix::fs::PermissionsExt;
    super::wait_for("the server to set its socket's mode", || {
        std::fs::metadata(sock).is_ok_and(|m| m.permissions().mode() & 0o777 == 0o660)
    });
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o666)).unwrap();
}
