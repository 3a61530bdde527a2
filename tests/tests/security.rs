//! Security: a client gets through utraced exactly what the kernel's ptrace
//! rules would give its own credentials, and nothing more. Each test is a
//! finding of issue 15, reproduced with real processes and a real
//! unprivileged user the test creates (`useradd`), asserting the fixed
//! behaviour. The kernel itself is the oracle where it can be: the same
//! client process asks utraced and then tries `PTRACE_SEIZE` itself.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::users::{self, AsClient, Scratch, Target};
use utrace_client::{pb, Client};

/// A runtime and a server on a private socket every test user may reach.
fn server() -> (tokio::runtime::Runtime, utraced::Embedded) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    common::init_logging();
    let srv = rt
        .block_on(utraced::Embedded::start())
        .expect("start server");
    users::open_socket(&srv.uri());
    (rt, srv)
}

fn setpriv_caps(cap: &str) -> Vec<String> {
    vec![
        format!("--inh-caps=+{cap}"),
        format!("--ambient-caps=+{cap}"),
    ]
}

/// Findings 2 (capabilities) and the rule as a whole: for targets of every
/// kind, utraced attaches for a client exactly when the kernel lets that
/// client's own process seize the target.
#[test]
fn utraced_and_the_kernel_agree_on_who_may_trace_what() {
    let (_rt, srv) = server();
    let u = users::user("access");
    let v = users::user("access-other");
    let dac = setpriv_caps("dac_override");
    let dac: Vec<&str> = dac.iter().map(String::as_str).collect();
    let nondumpable = [tracee!("hold"), "--nondumpable"];
    let mut other_gid = Command::new("setpriv");
    other_gid
        .arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", v.gid))
        .args(["--clear-groups", "--", "sleep", "1000"]);
    // (what, target, its program's name, whether the client may trace it,
    // a word the refusal must name)
    let cases: Vec<(&str, Command, &str, bool, &str)> = vec![
        (
            "its own process",
            users::command_as(&u, &[], &["sleep", "1000"]),
            "sleep",
            true,
            "",
        ),
        (
            "its own process holding CAP_DAC_OVERRIDE",
            users::command_as(&u, &dac, &["sleep", "1000"]),
            "sleep",
            false,
            "CAP_DAC_OVERRIDE",
        ),
        (
            "another user's process",
            users::command_as(&v, &[], &["sleep", "1000"]),
            "sleep",
            false,
            "uid",
        ),
        (
            "its own process made non-dumpable",
            users::command_as(&u, &[], &nondumpable),
            "hold",
            false,
            "dumpable",
        ),
        (
            "its uid with another group",
            other_gid,
            "sleep",
            false,
            "gid",
        ),
        (
            "a process in a user namespace it created",
            users::command_as(
                &u,
                &[],
                &["unshare", "--user", "--map-root-user", "sleep", "1000"],
            ),
            "sleep",
            true,
            "",
        ),
        (
            "root's process",
            {
                let mut c = Command::new("sleep");
                c.arg("1000");
                c
            },
            "sleep",
            false,
            "uid",
        ),
    ];
    let mut client = AsClient::as_user(&u, &[], &srv.uri());
    for (what, cmd, comm, allowed, named) in cases {
        let t = Target::start(cmd, comm);
        let pid = t.pid();
        let kernel = client.cmd(&format!("seize {pid}"));
        let ours = client.cmd(&format!("attach {pid}"));
        assert_eq!(
            kernel == "ok",
            allowed,
            "{what}: the kernel's own answer was {kernel:?}"
        );
        assert_eq!(
            ours.starts_with("ok"),
            allowed,
            "{what}: the kernel says {kernel:?}, utraced {ours:?}"
        );
        if allowed {
            let e = AsClient::field(&ours, "engine");
            assert_eq!(client.cmd(&format!("detach {e}")), "ok");
        } else {
            assert!(ours.starts_with("err PermissionDenied"), "{what}: {ours}");
            assert!(
                ours.contains(named),
                "{what}: the refusal names {named}: {ours}"
            );
        }
    }

    // A client holding CAP_DAC_OVERRIDE itself may trace its process that
    // holds it (the kernel's subset rule, both ways).
    let t = Target::start(users::command_as(&u, &dac, &["sleep", "1000"]), "sleep");
    let mut capable = AsClient::as_user(&u, &["--caps", "2"], &srv.uri());
    assert_eq!(capable.cmd(&format!("seize {}", t.pid())), "ok");
    let ours = capable.cmd(&format!("attach {}", t.pid()));
    assert!(ours.starts_with("ok"), "{ours}");
}

/// A setuid-root copy of `print_ids` in a fresh root-owned directory.
fn setuid_print_ids(scratch: &Scratch) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch.0.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("print_ids");
    std::fs::copy(tracee!("print_ids"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    bin.display().to_string()
}

fn euid_in(line: &str) -> u32 {
    AsClient::field(line, "euid").parse().unwrap()
}

/// Finding 1: an unprivileged client's program that execs a setuid-root
/// binary gains nothing the client could use. Spawned: no_new_privs, so the
/// binary runs with the client's uid (as under the kernel's rule for an
/// unprivileged tracer) and stays traced. Attached: the engine leaves the
/// process at the exec, before the new program runs (it never reports the
/// exec), and every later op on it is refused; the program runs as root,
/// as it would have untraced.
#[test]
fn a_setuid_exec_gives_the_client_nothing() {
    let (_rt, srv) = server();
    let u = users::user("setuid");
    let scratch = Scratch::new("setuid");
    let bin = setuid_print_ids(&scratch);
    let mut c = AsClient::as_user(&u, &[], &srv.uri());

    // Spawned without a filter (and with one).
    for (opts, out) in [
        ("nofilter events=exec", "spawned"),
        ("events=exec syscalls=write", "filtered"),
    ] {
        let script = scratch.0.join(format!("{out}.sh"));
        std::fs::write(&script, format!("exec {bin} {}\n", scratch.path(out))).unwrap();
        let r = c.cmd(&format!("spawn {opts} -- /bin/sh {}", script.display()));
        assert!(r.starts_with("ok"), "{r}");
        let e = AsClient::field(&r, "engine");
        assert_eq!(c.cmd(&format!("events {e}")), "ok");
        c.wait_event(&format!("end {e}"));
        let ids = scratch.read(out);
        assert_eq!(
            euid_in(&ids),
            u.uid,
            "{out}: the setuid bit gave root: {ids}"
        );
        assert!(
            c.events
                .iter()
                .any(|l| l.starts_with(&format!("event {e} exec exe={bin}"))),
            "{out}: the engine stays and sees the exec: {:?}",
            c.events
        );
    }

    // Attached to its own shell, which then execs the setuid binary.
    let script = scratch.0.join("attached.sh");
    std::fs::write(
        &script,
        format!("read x\nexec {bin} {}\n", scratch.path("attached")),
    )
    .unwrap();
    let mut t = Target::start(
        users::command_as(&u, &[], &["/bin/sh", &script.display().to_string()]),
        "sh",
    );
    let pid = t.pid();
    common::wait_reading_stdin(pid);
    let r = c.cmd(&format!("attach {pid} events=exec,syscall_entry"));
    assert!(r.starts_with("ok"), "{r}");
    let e = AsClient::field(&r, "engine");
    assert_eq!(c.cmd(&format!("events {e}")), "ok");
    let regs = c.cmd(&format!("regs {e} {pid} rip"));
    assert!(
        regs.starts_with("ok rip="),
        "before the exec the client may: {regs}"
    );
    use std::io::Write;
    writeln!(t.stdin.as_mut().unwrap(), "go").unwrap();
    let revoked = c.wait_event(&format!("event {e} revoked"));
    assert!(
        revoked.contains("uid"),
        "the report names the rule: {revoked}"
    );
    c.wait_event(&format!("end {e}"));
    assert!(
        !c.events
            .iter()
            .any(|l| l.starts_with(&format!("event {e} exec"))),
        "the engine never saw the setuid program: {:?}",
        c.events
    );
    let ids = scratch.read("attached");
    assert_eq!(euid_in(&ids), 0, "it ran as a setuid program does: {ids}");
    for op in [
        format!("write {e} {pid} 0x400000 90"),
        format!("regs {e} {pid} rip"),
        format!("read {e} {pid} 0x400000 1"),
    ] {
        let r = c.cmd(&op);
        assert!(r.starts_with("err NotFound"), "{op}: {r}");
    }
}

/// Finding 4: a pid named by a caller is decided on a pidfd. Its process
/// exits and its pid goes to a root process: the attach finds the pidfd's
/// process gone and attaches nothing.
#[test]
fn a_reused_pid_is_never_attached() {
    use utrace_engines::{AttachError, Engine, EngineOptions, Error, EventMask, Tracer};
    struct Quiet;
    impl Engine for Quiet {}
    let tracer = Tracer::new().unwrap();
    let mut done = false;
    for _ in 0..5 {
        let mut a = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = a.id() as i32;
        let pidfd = utrace_engines::sys::pidfd_open(pid).unwrap();
        a.kill().unwrap();
        a.wait().unwrap();
        if !users::process_with_pid(pid, &["/bin/sleep", "30"]) {
            continue; // taken meanwhile by another test's process
        }
        let r = tracer
            .attach_pidfd(
                pidfd,
                pid,
                Box::new(Quiet),
                EngineOptions::new(EventMask::empty()),
            )
            .wait();
        assert!(
            matches!(r, Err(Error::Attach(AttachError::NoSuchProcess { .. }))),
            "{r:?}"
        );
        assert_eq!(
            common::proc_status(pid, "TracerPid").as_deref(),
            Some("0"),
            "the new process with the old pid is not traced"
        );
        // The same pid, named afresh, is attached.
        let at = tracer
            .attach(pid, Box::new(Quiet), EngineOptions::new(EventMask::empty()))
            .wait()
            .unwrap();
        tracer.detach(at.engine).wait().unwrap();
        common::wait_for("the detach", || {
            common::proc_status(pid, "TracerPid").as_deref() == Some("0")
        });
        // SAFETY: our child; reaped below.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let mut st = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        done = true;
        break;
    }
    assert!(
        done,
        "could not give a freed pid to a new process in 5 tries"
    );
}

/// Finding 10: a program a client starts gets only what the client sends:
/// not the server's environment, stdio, descriptors or working directory;
/// and errors tell the client nothing it could not learn itself.
#[test]
fn a_spawned_program_inherits_nothing_of_the_server() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let u = users::user("spawn");
    let scratch = Scratch::new("spawn");
    let sock = scratch.path("s.sock");
    let leak = std::fs::File::open("/etc/hostname").unwrap();
    use std::os::fd::AsRawFd;
    let leak_fd = leak.as_raw_fd();
    let mut server = Command::new(users::utraced_bin());
    server
        .args(["--listen", &format!("unix://{sock}")])
        .env("UTRACED_TEST_SECRET", "hunter2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: dup2 in the child before exec; async-signal-safe.
    unsafe {
        server.pre_exec(move || {
            if libc::dup2(leak_fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = server.spawn().unwrap();
    common::wait_listening(&sock);
    users::open_socket_to_all(&sock);

    let script = scratch.0.join("probe.sh");
    std::fs::write(
        &script,
        "d=$1\nenv > $d/env\nls /proc/$$/fd > $d/fds\npwd > $d/cwd\necho out-MARK\necho err-MARK >&2\ncat > $d/stdin\necho done > $d/done\n",
    )
    .unwrap();
    let mut c = AsClient::as_user(&u, &[], &format!("unix://{sock}"));
    let r = c.cmd(&format!(
        "spawn nofilter env=ONLY=1 -- /bin/sh {} {}",
        script.display(),
        scratch.0.display()
    ));
    assert!(r.starts_with("ok"), "{r}");
    scratch.read("done");
    let env = std::fs::read_to_string(scratch.0.join("env")).unwrap();
    assert!(env.contains("ONLY=1"), "{env}");
    assert!(
        !env.contains("hunter2"),
        "the server's environment leaked: {env}"
    );
    assert!(!env.contains("HOME=/root"), "{env}");
    let fds: Vec<String> = std::fs::read_to_string(scratch.0.join("fds"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        !fds.iter().any(|f| f == "7"),
        "the server's fd 7 leaked: {fds:?}"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.0.join("cwd")).unwrap(),
        "/\n"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.0.join("stdin")).unwrap(),
        "",
        "stdin is empty, not the server's"
    );

    // Paths the client cannot reach: the same answer whether they exist.
    let closed = scratch.0.join("closed");
    std::fs::create_dir_all(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let prog = closed.join("prog");
    std::fs::copy("/bin/true", &prog).unwrap();
    let exists = c.cmd(&format!("spawn nofilter -- {}", prog.display()));
    let missing = c.cmd(&format!("spawn nofilter -- {}/missing", closed.display()));
    let code = |r: &str| r.split_whitespace().nth(1).unwrap_or("").to_string();
    assert_eq!(code(&exists), "PermissionDenied", "{exists}");
    assert_eq!(code(&missing), code(&exists), "{missing} vs {exists}");
    // A bad working directory names the field.
    let r = c.cmd("spawn nofilter cwd=/nonexistent-utt -- /bin/true");
    assert!(
        r.starts_with("err InvalidArgument") && r.contains("cwd"),
        "{r}"
    );
    let r = c.cmd(&format!(
        "spawn nofilter cwd={} -- /bin/true",
        closed.display()
    ));
    assert!(
        r.starts_with("err PermissionDenied") && r.contains("cwd"),
        "{r}"
    );

    drop(c);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let out = server.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        !printed.contains("out-MARK") && !printed.contains("err-MARK"),
        "the program wrote into the server's output: {printed}"
    );
    drop(leak);
}

/// Finding 5: a spawned program's groups are the connection's
/// (`SO_PEERGROUPS` at accept), even after the client's pid belongs to a
/// root process.
#[test]
fn groups_come_from_the_connection_not_a_reused_pid() {
    let (_rt, srv) = server();
    let u = users::user("groups");
    let extra = users::group("groups-extra");
    let scratch = Scratch::new("groups");
    let mut helper = Command::new(tracee!("as_client"))
        .args([
            "--uid",
            &u.uid.to_string(),
            "--gid",
            &u.gid.to_string(),
            "--groups",
            &format!("{},{extra}", u.gid),
            "--handoff",
            &srv.uri(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = helper.stdin.take().unwrap();
    let mut lines = common::Lines::from_reader(helper.stdout.take().unwrap());
    let first = lines.next();
    let parent: i32 = first
        .strip_prefix("parent=")
        .unwrap_or_else(|| panic!("{first}"))
        .parse()
        .unwrap();
    assert_eq!(parent, helper.id() as i32);
    helper.wait().unwrap();
    // The client's pid now names a root process.
    let reused = users::process_with_pid(parent, &["/bin/sleep", "30"]);
    assert!(reused, "pid {parent} could not be given to a root process");
    use std::io::Write;
    writeln!(stdin, "go").unwrap();
    assert_eq!(lines.next(), "ready");
    let script = scratch.0.join("groups.sh");
    std::fs::write(
        &script,
        "id -G > $1/groups\ngrep -E 'CapPrm|CapEff|NoNewPrivs' /proc/self/status > $1/caps\n",
    )
    .unwrap();
    writeln!(
        stdin,
        "spawn nofilter -- /bin/sh {} {}",
        script.display(),
        scratch.0.display()
    )
    .unwrap();
    let r = lines.next();
    assert!(r.starts_with("ok"), "{r}");
    let mut groups: Vec<u32> = scratch
        .read("groups")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort();
    groups.dedup();
    let mut want = vec![u.gid, extra];
    want.sort();
    assert_eq!(
        groups, want,
        "the program's groups are the client's (the client's pid now names a root process: {reused})"
    );
    let caps = scratch.read("caps");
    let fields: Vec<&str> = caps.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "CapPrm:",
            "0000000000000000",
            "CapEff:",
            "0000000000000000",
            "NoNewPrivs:",
            "1"
        ],
        "no capability, and none to gain"
    );
    drop(stdin);
    // SAFETY: our child; reaped below.
    unsafe { libc::kill(parent, libc::SIGKILL) };
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(parent, &mut st, 0) };
}

/// A tiny deterministic generator for the cancellation points.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Processes whose command line holds `marker`.
fn with_marker(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
                && common::alive(*pid)
        })
        .collect()
}

/// Finding 6: Spawn, Attach and Trace cancelled at random points (1,000
/// calls, each given 0 to 5 ms) leave no engine outside the registry: a
/// call cancelled before its reply is undone at once (its program killed);
/// one whose reply was already on its way when the client gave up has an
/// engine its connection owns (gRPC cannot tell a server its reply was not
/// read). Once the connection closes, no engine and no traced process is
/// left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_leave_nothing_behind() {
    let (srv, mut c) = common::server().await;
    let mut observer = Client::connect(&srv.uri()).await.unwrap();
    let pool: Vec<common::KillOnDrop> = (0..4)
        .map(|_| common::KillOnDrop(Command::new("sleep").arg("1000").spawn().unwrap()))
        .collect();
    let marker = format!("4{}.25", std::process::id());
    let mut rng = Lcg(std::process::id() as u64);
    let (mut finished, mut cancelled) = (0, 0);
    for i in 0..1000u64 {
        let budget = Duration::from_micros(rng.next(5000));
        let spawn = pb::SpawnRequest {
            argv: vec!["/bin/sleep".into(), marker.clone()],
            stop_at_entry: true,
            no_kernel_filter: true,
            ..Default::default()
        };
        match i % 3 {
            0 => match tokio::time::timeout(budget, c.spawn(spawn)).await {
                Ok(r) => {
                    let r = r.unwrap();
                    finished += 1;
                    // SAFETY: still traced by our engine: the pid is its.
                    unsafe { libc::kill(r.pid as i32, libc::SIGKILL) };
                    c.detach(r.engine_id).await.unwrap();
                }
                Err(_) => cancelled += 1,
            },
            1 => {
                let pid = pool[(i / 3) as usize % pool.len()].0.id();
                let req = pb::AttachRequest { pid, engine: None };
                match tokio::time::timeout(budget, c.attach(req)).await {
                    Ok(r) => {
                        finished += 1;
                        c.detach(r.unwrap().engine_id).await.unwrap();
                    }
                    Err(_) => cancelled += 1,
                }
            }
            _ => {
                let req = pb::TraceRequest {
                    target: Some(pb::trace_request::Target::Spawn(spawn)),
                    engine: None,
                };
                match tokio::time::timeout(budget, c.trace(req)).await {
                    Ok(r) => {
                        finished += 1;
                        let mut s = r.unwrap();
                        if let Some(Ok(ev)) = tokio_stream::StreamExt::next(&mut s).await {
                            // SAFETY: traced by the stream's engine.
                            unsafe { libc::kill(ev.pid as i32, libc::SIGKILL) };
                        }
                        drop(s);
                    }
                    Err(_) => cancelled += 1,
                }
            }
        }
    }
    assert!(cancelled > 100, "the budgets cut some calls short");

    // While the connection is open: every engine the tracer has is one the
    // registry knows (owned, listed, detachable).
    let settled = |tasks: &[pb::TaskInfo]| {
        let mut ids: Vec<u64> = tasks.iter().flat_map(|t| t.engines.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len() as u32
    };
    let deadline = Instant::now() + common::TIMEOUT;
    let kept = loop {
        let tasks = observer.list_tasks(0).await.unwrap();
        let registered = observer.server_info().await.unwrap().engines;
        if settled(&tasks) == registered {
            break registered;
        }
        assert!(
            Instant::now() < deadline,
            "the tracer has {} engines, the registry {registered}",
            settled(&tasks)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "{finished} calls finished, {cancelled} cancelled; {kept} engines of cancelled calls whose reply had been sent are kept for the connection"
    );

    // The connection closes: nothing is left.
    drop(c);
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let tasks = observer.list_tasks(0).await.unwrap();
        let engines = observer.server_info().await.unwrap().engines;
        let traced: Vec<u32> = pool
            .iter()
            .map(|k| k.0.id())
            .chain(with_marker(&marker))
            .filter(|p| common::proc_status(*p as i32, "TracerPid").as_deref() != Some("0"))
            .collect();
        if tasks.is_empty() && engines == 0 && traced.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {} traced tasks, {engines} engines, traced processes {traced:?}",
            tasks.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Programs whose reply reached the wire run on, untraced, as every
    // program of a client that leaves does.
    let running = with_marker(&marker);
    eprintln!("{} started programs run on untraced", running.len());
    for pid in running {
        // SAFETY: the marker names this test's programs.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// Finding 11: the client will not talk to a server another (non-root)
/// user runs; and the server will not listen in another user's directory.
#[test]
fn a_server_of_another_user_is_refused() {
    let u = users::user("socket");
    let v = users::user("socket-other");
    let scratch = Scratch::new("socket");
    let path = scratch.path("fake.sock");
    let _fake = Target::start(
        users::command_as(&v, &[], &[tracee!("hold"), "--listen", &path]),
        "hold",
    );
    common::wait_for("the fake socket", || std::path::Path::new(&path).exists());
    let out = users::command_as(&u, &[], &[tracee!("as_client"), &format!("unix://{path}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("err connect refusing the server") && line.contains(&v.name),
        "{line}"
    );

    // utraced itself will not listen in a directory another user owns.
    let dir = scratch.0.join("theirs");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(v.uid), Some(v.gid)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(utraced::Server::bind(utraced::Config {
            listen: vec![utraced::ListenAddr::Unix(dir.join("s.sock"))],
            ..Default::default()
        }))
        .err()
        .expect("bind must fail");
    assert!(
        e.to_string().contains(&format!("belongs to uid {}", v.uid)),
        "{e}"
    );
}

/// Finding 12: what is wrong is said with the right status: a message that
/// cannot be decoded is INVALID_ARGUMENT (for a Session too: the stream
/// ends with it, and its engines are detached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_messages_are_invalid_arguments() {
    use prost::Message;
    let (srv, _c) = common::server().await;
    let mut grpc = raw_grpc(srv.uri().trim_start_matches("unix://")).await;
    grpc.ready().await.unwrap();
    // A length-delimited field whose length runs past the end.
    let garbage = vec![0x0a, 0x7f, 0x01];
    let e = grpc
        .unary(
            tonic::Request::new(garbage.clone()),
            "/utrace.v1.Tracer/Spawn".parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("SpawnRequest"), "{}", e.message());

    // A session: a good attach, then garbage.
    let target = common::KillOnDrop(Command::new("sleep").arg("1000").spawn().unwrap());
    let attach = pb::ClientMessage {
        id: 1,
        msg: Some(pb::client_message::Msg::Attach(pb::AttachRequest {
            pid: target.0.id(),
            engine: None,
        })),
    }
    .encode_to_vec();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    tx.send(attach).await.unwrap();
    grpc.ready().await.unwrap();
    let mut replies = grpc
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            "/utrace.v1.Tracer/Session".parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap()
        .into_inner();
    let first = replies.message().await.unwrap().unwrap();
    let first = pb::ServerMessage::decode(&first[..]).unwrap();
    assert!(
        matches!(first.msg, Some(pb::server_message::Msg::Attached(_))),
        "{first:?}"
    );
    common::wait_for("the attach", || {
        common::proc_status(target.0.id() as i32, "TracerPid").as_deref() != Some("0")
    });
    tx.send(garbage).await.unwrap();
    let end = loop {
        match replies.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the session ended with OK"),
            Err(e) => break e,
        }
    };
    assert_eq!(end.code(), tonic::Code::InvalidArgument, "{end:?}");
    assert!(end.message().contains("decoded"), "{}", end.message());
    common::wait_for("the session's engine to detach", || {
        common::proc_status(target.0.id() as i32, "TracerPid").as_deref() == Some("0")
    });
}

/// A gRPC client of the server on the Unix socket `path` that sends and
/// receives raw bytes (with [`RawCodec`]).
async fn raw_grpc(path: &str) -> tonic::client::Grpc<tonic::transport::Channel> {
    let path = path.to_string();
    let channel = tonic::transport::Endpoint::from_static("http://utraced.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

/// Bytes in, bytes out: a codec for sending what no client library would.
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut v = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

/// Finding 12: SIGTERM with a Session open: the session ends (UNAVAILABLE),
/// the server is gone within a second or two (not the 5 s it waited for
/// open streams) and its socket file with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_session_open_is_quick_and_clean() {
    let scratch = Scratch::new("sigterm");
    let sock = scratch.path("s.sock");
    let mut server = Command::new(users::utraced_bin())
        .args(["--listen", &format!("unix://{sock}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(&sock);
    let mut c = Client::connect(&format!("unix://{sock}")).await.unwrap();
    let target = common::KillOnDrop(Command::new("sleep").arg("1000").spawn().unwrap());
    let mut s = c.session().await.unwrap();
    s.attach(
        target.0.id(),
        pb::EngineSpec {
            sync: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let start = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let st = tokio::task::spawn_blocking(move || common::wait_child(&mut server))
        .await
        .unwrap();
    let took = start.elapsed();
    eprintln!("SIGTERM with a session open: exited in {took:?}");
    assert!(st.success(), "{st:?}");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(
        !std::path::Path::new(&sock).exists(),
        "the socket file is removed"
    );
    assert_eq!(
        common::proc_status(target.0.id() as i32, "TracerPid").as_deref(),
        Some("0")
    );
}

/// Finding 3: a loopback TCP client is the user owning its socket, over
/// IPv4, IPv6 and IPv4 through a dual-stack socket (v4-mapped, listed in
/// tcp6), with that user's own gid; never taken for `nobody`.
#[test]
fn loopback_tcp_clients_are_who_their_socket_says() {
    let u = users::user("tcp");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listen = ["tcp://127.0.0.1:0", "tcp://[::1]:0"]
        .iter()
        .map(|a| utraced::ListenAddr::parse(a, true).unwrap())
        .collect();
    let server = rt
        .block_on(utraced::Server::bind(utraced::Config {
            listen,
            ..Default::default()
        }))
        .unwrap();
    let ports: Vec<std::net::SocketAddr> = server
        .local_addrs()
        .into_iter()
        .map(|a| match a {
            utraced::ListenAddr::Tcp(s) => s,
            other => panic!("{other}"),
        })
        .collect();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let uris = [
        format!("http://127.0.0.1:{}", ports[0].port()),
        format!("http://[::ffff:127.0.0.1]:{}", ports[0].port()),
        format!("http://[::1]:{}", ports[1].port()),
    ];
    for uri in uris {
        let mut c = AsClient::as_user(&u, &[], &uri);
        let info = c.cmd("info");
        assert_eq!(
            info,
            format!("ok uid={} gid={} any=false", u.uid, u.gid),
            "{uri}"
        );
    }
    let _ = stop.send(());
    rt.block_on(task).unwrap().unwrap();
}

/// Finding 7: reports queued for one uid (expedited memory counted) stay
/// within its budget: the rest are dropped and counted, as for a full
/// queue, however long the client leaves its stream unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_report_bytes_are_bounded_per_uid() {
    let (_srv, mut c) = common::server_with(|cfg| {
        cfg.limits.max_queued_bytes_per_uid = 64 << 10;
    })
    .await;
    let expedite = pb::Expedite {
        registers: vec![],
        memory: (0..16)
            .map(|_| pb::MemRef {
                register: "rsp".into(),
                len: 1024,
                string: false,
                offset: 0,
            })
            .collect(),
        register_bytes: Default::default(),
    };
    let r = c
        .spawn(pb::SpawnRequest {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo x > /dev/null; done".into(),
            ],
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::SyscallEntry as i32],
                syscalls: vec!["write".into()],
                expedite: Some(expedite),
                queue_len: 100_000,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    // Nobody reads until the program is gone.
    common::wait_for("the program to finish", || common::exited(r.pid));
    let mut s = c.events(r.engine_id).await.unwrap();
    let (mut delivered, mut dropped, mut last_seq) = (0u64, 0u64, 0u64);
    while let Some(ev) = tokio_stream::StreamExt::next(&mut s).await {
        let ev = ev.unwrap();
        dropped += ev.dropped_before;
        if ev.kind.is_some() {
            delivered += 1;
            last_seq = last_seq.max(ev.seq);
        }
    }
    eprintln!("queued-bytes budget: {delivered} delivered, {dropped} dropped");
    assert!(dropped > 200, "{delivered} delivered, {dropped} dropped");
    assert!(
        delivered < 40,
        "{delivered} reports of 16 KiB queued in 64 KiB"
    );
    assert!(
        last_seq <= delivered + dropped,
        "every report is told: {last_seq} seqs"
    );
}

/// Finding 8: one user's connections are bounded, and past the bound it
/// is told why (RESOURCE_EXHAUSTED naming the budget) while other users
/// are served.
#[test]
fn connections_are_bounded_per_uid() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt
        .block_on(utraced::Embedded::start_with(|cfg| {
            cfg.limits.max_conns_per_uid = 8;
        }))
        .unwrap();
    users::open_socket(&srv.uri());
    let u = users::user("conns");
    let v = users::user("conns-other");
    let mut first = AsClient::as_user(&u, &[], &srv.uri());
    assert!(first.cmd("info").starts_with("ok"));
    assert!(first.cmd("conns 20").starts_with("ok held=20"));
    let mut over = AsClient::as_user(&u, &[], &srv.uri());
    let r = over.cmd("info");
    assert!(
        r.starts_with("err ResourceExhausted")
            && r.contains("connections")
            && r.contains(&format!("uid {}", u.uid)),
        "{r}"
    );
    let mut other = AsClient::as_user(&v, &[], &srv.uri());
    assert!(
        other.cmd("info").starts_with("ok"),
        "another user is served"
    );
    drop(first);
    drop(over);
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let mut again = AsClient::as_user(&u, &[], &srv.uri());
        if again.cmd("info").starts_with("ok") {
            break;
        }
        assert!(Instant::now() < deadline, "connections were not given back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), counted after the command name.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Finding 8: a server out of descriptors does not spin in its accept loop
/// (it backs off), and serves again as soon as descriptors come back.
#[test]
fn descriptor_exhaustion_backs_off_and_recovers() {
    use std::os::unix::process::CommandExt;
    let u = users::user("fds");
    let v = users::user("fds-other");
    let scratch = Scratch::new("fds");
    let sock = scratch.path("s.sock");
    let mut server = Command::new(users::utraced_bin());
    server
        .args(["--listen", &format!("unix://{sock}")])
        .stderr(Stdio::null());
    // SAFETY: setrlimit in the child before exec.
    unsafe {
        server.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = common::KillOnDrop(server.spawn().unwrap());
    common::wait_listening(&sock);
    users::open_socket_to_all(&sock);
    let uri = format!("unix://{sock}");
    let mut hog = AsClient::as_user(&u, &[], &uri);
    assert!(hog.cmd("conns 100").starts_with("ok held=100"));
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(server.0.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(server.0.id()) - before;
    eprintln!("out of descriptors: {used:.2} s of CPU in 2 s");
    assert!(
        used < 0.5,
        "the server spent {used:.2} s of CPU in 2 s out of descriptors"
    );
    // Another user's call waits in the backlog, and is served once the hog
    // lets go.
    let waiting = std::thread::spawn({
        let v = v.clone();
        let uri = uri.clone();
        move || {
            let mut c = AsClient::as_user(&v, &[], &uri);
            c.cmd("info")
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(hog);
    let r = waiting.join().unwrap();
    assert!(r.starts_with("ok"), "{r}");
}

/// Findings 7 and 12: a length that does not fit its field is refused, not
/// truncated; a batch of 64 MiB of empty ops is refused before it is
/// decoded (the server's memory does not grow by gigabytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_fields_and_op_floods_are_refused_before_decoding() {
    let scratch = Scratch::new("flood");
    let sock = scratch.path("s.sock");
    let server = common::KillOnDrop(
        Command::new(users::utraced_bin())
            .args(["--listen", &format!("unix://{sock}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_listening(&sock);
    let mut c = Client::connect(&format!("unix://{sock}")).await.unwrap();
    let target = common::KillOnDrop(Command::new("sleep").arg("1000").spawn().unwrap());
    let engine = c
        .attach(pb::AttachRequest {
            pid: target.0.id(),
            engine: None,
        })
        .await
        .unwrap()
        .engine_id;
    let mut grpc = raw_grpc(&sock).await.max_encoding_message_size(usize::MAX);
    let varint = |v: u64, out: &mut Vec<u8>| prost::encoding::encode_varint(v, out);
    // BatchRequest { engine_id, ops: [read_memory { addr, len: 2^40 + 16 }] }
    let mut read = vec![0x08];
    varint(0x1000, &mut read);
    read.push(0x10);
    varint((1 << 40) + 16, &mut read);
    let mut op = vec![0x0a];
    varint(read.len() as u64, &mut op);
    op.extend(read);
    let mut req = vec![0x08];
    varint(engine, &mut req);
    req.push(0x1a);
    varint(op.len() as u64, &mut req);
    req.extend(op);
    grpc.ready().await.unwrap();
    let e = grpc
        .unary(
            tonic::Request::new(req),
            "/utrace.v1.Tracer/Batch".parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("ops[0].read_memory.len"),
        "{}",
        e.message()
    );

    let hwm = |pid: u32| -> u64 {
        common::proc_status(pid as i32, "VmHWM")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = hwm(server.0.id());
    let mut flood = vec![0x08];
    varint(engine, &mut flood);
    flood.reserve(64 << 20);
    while flood.len() < 64 << 20 {
        flood.extend_from_slice(&[0x1a, 0x00]);
    }
    grpc.ready().await.unwrap();
    let e = grpc
        .unary(
            tonic::Request::new(flood),
            "/utrace.v1.Tracer/Batch".parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("ops: more than"), "{}", e.message());
    let grew_mib = hwm(server.0.id()).saturating_sub(before) / 1024;
    eprintln!("64 MiB op flood: peak memory grew by {grew_mib} MiB");
    assert!(
        grew_mib < 512,
        "the server's peak memory grew by {grew_mib} MiB for a 64 MiB request"
    );
    // Still serving, the engine intact.
    c.detach(engine).await.unwrap();
}

/// TCP with TLS: the client must hold a certificate of the configured CA,
/// and acts as the uid its certificate maps to (held to that user's ptrace
/// rights, observe-only if so configured); a certificate mapped to no one
/// is told so; a plaintext or certificate-less client gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_who_their_certificate_says() {
    let u = users::user("tls");
    let pki = Pki::new("utt-tls");
    pki.issue("server", "utraced", &["localhost", "127.0.0.1"], true);
    pki.issue("alice", "utt-alice", &[], false);
    pki.issue("watcher", "utt-watcher", &["watcher.example.com"], false);
    pki.issue("stranger", "utt-stranger", &[], false);
    let other = Pki::new("utt-tls-other");
    other.issue("alice", "utt-alice", &[], false);
    std::fs::write(
        pki.path("identities"),
        format!(
            "# test identities\nCN=utt-alice {uid}\nSAN=watcher.example.com {uid} observe-only\n",
            uid = u.uid
        ),
    )
    .unwrap();
    let server = utraced::Server::bind(pki.tls_server_config())
        .await
        .unwrap();
    let port = match &server.local_addrs()[0] {
        utraced::ListenAddr::Tls(a) => a.port(),
        other => panic!("{other}"),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let uri = format!("https://localhost:{port}");

    // alice acts as the user: its process yes, root's no.
    let mut alice = Client::connect_with(&uri, Some(&pki.client("alice")))
        .await
        .unwrap();
    let caller = alice.server_info().await.unwrap().caller.unwrap();
    assert_eq!((caller.uid, caller.gid), (u.uid, u.gid));
    assert_eq!(caller.transport, "tls");
    let root_proc = common::KillOnDrop(Command::new("sleep").arg("1000").spawn().unwrap());
    let e = alice
        .attach(pb::AttachRequest {
            pid: root_proc.0.id(),
            engine: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let mine = Target::start(users::command_as(&u, &[], &["sleep", "1000"]), "sleep");
    let at = alice
        .attach(pb::AttachRequest {
            pid: mine.pid(),
            engine: None,
        })
        .await
        .unwrap();
    alice.detach(at.engine_id).await.unwrap();

    // watcher (by its SAN) may only observe.
    let mut watcher = Client::connect_with(&uri, Some(&pki.client("watcher")))
        .await
        .unwrap();
    let at = watcher
        .attach(pb::AttachRequest {
            pid: mine.pid(),
            engine: None,
        })
        .await
        .unwrap();
    let r = watcher
        .batch(at.engine_id, 0)
        .interrupt(true)
        .set_reg("rax", 1)
        .send()
        .await;
    let refused = match r {
        Err(s) => s.code() == tonic::Code::PermissionDenied,
        Ok(results) => results.failure(0).is_some(),
    };
    assert!(refused, "an observe-only identity may not change registers");
    watcher.detach(at.engine_id).await.unwrap();

    // A certificate mapped to no one.
    let mut stranger = Client::connect_with(&uri, Some(&pki.client("stranger")))
        .await
        .unwrap();
    let e = stranger.server_info().await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("CN=utt-stranger"), "{}", e.message());

    // A certificate of another CA, and none at all: no call gets through.
    let forged = Client::connect_with(&uri, Some(&other.client("alice"))).await;
    let forged_ok = match forged {
        Ok(mut c) => c.server_info().await.is_ok(),
        Err(_) => false,
    };
    assert!(!forged_ok, "a certificate of another CA is refused");
    let e = Client::connect(&uri).await.unwrap_err();
    assert!(e.to_string().contains("--tls-cert"), "{e}");
    let plain = Client::connect(&format!("http://127.0.0.1:{port}")).await;
    let plain_ok = match plain {
        Ok(mut c) => c.server_info().await.is_ok(),
        Err(_) => false,
    };
    assert!(!plain_ok, "plaintext to the TLS port gets nothing");

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// A client whose uid is 0 but which holds fewer capabilities than the
/// server (root in a confined container, say) gains none through it: it may
/// not trace a process holding more, as the kernel says, and what it spawns
/// holds no capability it lacks, with no_new_privs.
#[test]
fn a_confined_root_client_gains_no_capability() {
    let (_rt, srv) = server();
    let scratch = Scratch::new("confined-root");
    // Root, with CAP_DAC_OVERRIDE only.
    let mut c = AsClient::start(
        &[
            "--uid".into(),
            "0".into(),
            "--gid".into(),
            "0".into(),
            "--caps".into(),
            "2".into(),
        ],
        &srv.uri(),
    );
    assert!(c.cmd("info").ends_with("any=false"));
    let t = Target::start(
        {
            let mut s = Command::new("sleep");
            s.arg("1000");
            s
        },
        "sleep",
    );
    assert_eq!(c.cmd(&format!("seize {}", t.pid())), "err EPERM");
    let r = c.cmd(&format!("attach {}", t.pid()));
    assert!(
        r.starts_with("err PermissionDenied") && r.contains("capabilities"),
        "{r}"
    );
    let script = scratch.0.join("caps.sh");
    std::fs::write(
        &script,
        "grep -E 'CapPrm|CapEff|CapAmb|NoNewPrivs' /proc/self/status > $1/caps\n",
    )
    .unwrap();
    let r = c.cmd(&format!(
        "spawn nofilter -- /bin/sh {} {}",
        script.display(),
        scratch.0.display()
    ));
    assert!(r.starts_with("ok"), "{r}");
    let caps = scratch.read("caps");
    let fields: Vec<&str> = caps.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "CapPrm:",
            "0000000000000002",
            "CapEff:",
            "0000000000000002",
            "CapAmb:",
            "0000000000000000",
            "NoNewPrivs:",
            "1"
        ],
        "{caps}"
    );
}

/// Issue 13: a probe follows the ptrace rule like any engine. An
/// unprivileged client cannot probe another user's process nor root's
/// (PERMISSION_DENIED, nothing attached), and probes its own; the probe
/// writes nothing (the code is its file's after).
#[test]
fn probes_follow_the_ptrace_rule() {
    let (_rt, srv) = server();
    let u = users::user("probe");
    let v = users::user("probe-other");
    let spin = [tracee!("probe_target"), "spin"];
    let mine = Target::start(users::command_as(&u, &[], &spin), "probe_target");
    let theirs = Target::start(users::command_as(&v, &[], &spin), "probe_target");
    let mut root_cmd = Command::new(spin[0]);
    root_cmd.arg(spin[1]);
    let roots = Target::start(root_cmd, "probe_target");
    let mut c = AsClient::as_user(&u, &[], &srv.uri());
    for pid in [theirs.child.id(), roots.child.id()] {
        let a = c.cmd(&format!("probe {pid} probed_fn"));
        assert!(a.starts_with("err PermissionDenied"), "{a}");
        assert_eq!(
            common::proc_status(pid as i32, "TracerPid").as_deref(),
            Some("0")
        );
    }
    let pid = mine.child.id();
    let a = c.cmd(&format!("probe {pid} probed_fn"));
    assert!(a.starts_with("ok engine="), "{a}");
    let engine = AsClient::field(&a, "engine");
    // It counts: spin calls the function every millisecond.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.cmd(&format!("detach {engine}")), "ok");
    let end = c.wait_event(&format!("end {engine} "));
    let count: i64 = AsClient::field(&end, "count").parse().expect("count");
    assert!(count > 10, "{end}");
    assert!(end.contains("reason=detached"), "{end}");
    common::wait_for("the detach", || {
        common::proc_status(pid as i32, "TracerPid").as_deref() == Some("0")
    });
}

/// `GetActivity` (what `utrace top` reads) shows a client the tasks it
/// may trace, their processes' syscalls and the engines on them: another
/// user's traced process, root's, and the engines on them are not there.
#[test]
fn activity_shows_only_what_the_caller_may_trace() {
    let (_rt, srv) = server();
    let u = users::user("activity");
    let v = users::user("activity-other");
    let mine = Target::start(users::command_as(&u, &[], &["sleep", "1000"]), "sleep");
    let theirs = Target::start(users::command_as(&v, &[], &["sleep", "1000"]), "sleep");
    let mut root_cmd = Command::new("sleep");
    root_cmd.arg("1000");
    let roots = Target::start(root_cmd, "sleep");
    // Root traces all three; each user traces its own.
    let mut root = AsClient::start(&[], &srv.uri());
    let mut root_engines = Vec::new();
    for t in [&mine, &theirs, &roots] {
        let a = root.cmd(&format!("attach {}", t.pid()));
        assert!(a.starts_with("ok"), "{a}");
        root_engines.push(AsClient::field(&a, "engine"));
    }
    let mut c = AsClient::as_user(&u, &[], &srv.uri());
    let a = c.cmd(&format!("attach {}", mine.pid()));
    let my_engine = AsClient::field(&a, "engine");
    let mut other = AsClient::as_user(&v, &[], &srv.uri());
    let a = other.cmd(&format!("attach {}", theirs.pid()));
    let their_engine = AsClient::field(&a, "engine");

    let seen = c.cmd("activity");
    let mut want_engines = [root_engines[0].clone(), my_engine];
    want_engines.sort_by_key(|e| e.parse::<u64>().unwrap_or(0));
    assert_eq!(
        seen,
        format!(
            "ok tasks={pid} procs={pid} engines={}",
            want_engines.join(","),
            pid = mine.pid()
        ),
        "the other user's ({}) and root's ({}) processes, and their engines \
         ({their_engine}, {} and {}), are not shown",
        theirs.pid(),
        roots.pid(),
        root_engines[1],
        root_engines[2],
    );
    // Root sees all three.
    let all = root.cmd("activity");
    for t in [&mine, &theirs, &roots] {
        assert!(all.contains(&t.pid().to_string()), "{all}");
    }
}

/// `utrace trace -u USER` (strace -u): root starts the program as the
/// user, with the user's groups, as strace does (the same `id` output,
/// through the embedded server and through a daemon); a client without
/// CAP_SETUID and CAP_SETGID may not ask for any user, its own included.
#[test]
fn run_as_is_for_clients_that_may_set_ids() {
    let u = users::user("runas");
    let id = |cmd: &mut Command| {
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let utrace = users::workspace_bin("utrace");
    // The options utrace and strace share, then the program.
    let quiet = ["-e", "trace=none", "-o", "/dev/null"];
    let ours = id(Command::new(&utrace)
        .env_remove("UTRACE_SERVER")
        .env("UTRACE_SERVERS", "")
        .args(["trace", "-u", &u.name])
        .args(quiet)
        .args(["--", "id"]));
    assert!(
        ours.starts_with(&format!("uid={}({}) gid={}", u.uid, u.name, u.gid)),
        "{ours}"
    );
    if Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let theirs = id(Command::new("strace")
            .args(["-u", &u.name])
            .args(quiet)
            .arg("id"));
        assert_eq!(ours, theirs, "as strace -u");
    }
    let d = common::daemon::Daemon::start("runas");
    let through = id(Command::new(&utrace)
        .args(["--server", &d.uri, "trace", "-u", &u.uid.to_string()])
        .args(quiet)
        .args(["--", "id"]));
    assert_eq!(through, ours, "through a daemon");

    // An unprivileged client may ask for no user at all.
    users::open_socket(&d.uri);
    let mut c = AsClient::as_user(&u, &[], &d.uri);
    for ids in ["0:0", &format!("{}:{}", u.uid, u.gid)] {
        let a = c.cmd(&format!("spawn runas={ids} -- /bin/true"));
        assert!(a.starts_with("err PermissionDenied"), "{ids}: {a}");
        assert!(a.contains("CAP_SETUID"), "{a}");
    }
}
