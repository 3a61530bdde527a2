//! The GDB remote protocol spoken raw to `utrace gdb --listen`, as a
//! broken or hostile frontend would: bad checksums, noise between packets,
//! unknown, malformed and over-long packets, an address nobody can read, a
//! thread that does not exist, a fifth hardware watchpoint, and a
//! frontend that leaves in the middle of a step. Each gets the reply RSP
//! asks for (`-`, an empty packet, `E..`), the session goes on, and the
//! program, traced by another client meanwhile, runs on unharmed.

mod common;

use common::daemon::Daemon;
use common::{ticker, ticks_on, untraced};

/// [`common::rsp::Rsp`], its failures the test's.
struct Raw(common::rsp::Rsp);

impl Raw {
    fn connect(addr: &str) -> Raw {
        Raw(common::rsp::Rsp::connect(addr).expect("connect to the bridge"))
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.0.send_raw(bytes).expect("write to the bridge");
    }

    /// Send packet `body`; its reply.
    fn ask(&mut self, body: &str) -> String {
        let r = self.0.ask(body).expect("the bridge's reply");
        println!("{body:.60} -> {r:.80}");
        r
    }
}

#[test]
fn bad_packets_are_answered_and_the_program_runs_on() {
    let d = Daemon::start("gdb-raw");
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    // Another client traces the same process throughout.
    let trace_file = d.dir.path("writes");
    let mut observer = common::KillOnDrop(
        std::process::Command::new(common::users::workspace_bin("utrace"))
            .args(["--server", &d.uri, "trace", "-e", "trace=write", "-o"])
            .arg(&trace_file)
            .args(["-p", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("utrace trace"),
    );
    let writes = || {
        std::fs::read_to_string(&trace_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("write("))
            .count()
    };
    common::wait_for("the observer's first write", || writes() > 0);
    let (_bridge, addr) = common::gdb_bridge(&d.uri, &["-p", &pid.to_string()]);
    let mut r = Raw::connect(&addr);
    assert!(r
        .ask("qSupported:multiprocess+;swbreak+;hwbreak+")
        .contains("PacketSize="));
    let stop = r.ask("?");
    let thread =
        common::rsp::Rsp::stop_thread(&stop).unwrap_or_else(|| panic!("no thread in {stop}"));

    // A bad checksum: asked for again, never seen by the stub.
    r.send_raw(b"$m0,4#00");
    while r.0.buf.is_empty() {
        r.0.more().expect("the bridge's answer");
    }
    assert_eq!(r.0.buf.remove(0), b'-', "a bad checksum is refused with -");
    // Noise between packets is skipped.
    r.send_raw(b"\x00\xffjunk}*\r\n");
    // Unknown packets: the empty reply RSP asks for.
    assert_eq!(r.ask("qUtraceNoSuchPacket"), "");
    // An address nobody can read, and an absurd length: an error.
    assert!(r.ask("m0,10").starts_with('E'));
    assert!(r.ask("mffffffffffff0000,fffffff").starts_with('E'));
    // Malformed or unservable packets gdbstub knows: E01, not the end.
    assert_eq!(r.ask("mzz,qq"), "E01");
    assert_eq!(r.ask("vCont;z"), "E01");
    assert_eq!(r.ask("qXfer:features:read:nonexistent.xml:0,fff"), "E01");
    // A packet longer than any the bridge takes (64 KiB): E01.
    let long = format!("q{}", "A".repeat(70_000));
    assert_eq!(r.ask(&long), "E01");
    // Registers of a thread the process does not have: an error; of its
    // own thread, the registers.
    let pid_part = thread.split('.').next().expect("pPID");
    assert_eq!(r.ask(&format!("Hg{pid_part}.1")), "OK");
    assert!(r.ask("g").starts_with('E'));
    assert_eq!(r.ask(&format!("Hg{thread}")), "OK");
    let regs = r.ask("g");
    assert!(regs.len() > 100 && !regs.starts_with('E'), "{regs}");
    // Four debug registers; a fifth watchpoint is refused.
    for i in 0..4u64 {
        assert_eq!(r.ask(&format!("Z2,{:x},8", 0x10000 + i * 8)), "OK");
    }
    assert!(r.ask("Z2,10020,8").starts_with('E'), "a fifth watchpoint");
    // The session went on through all of it.
    assert!(r.ask("?").contains(&thread));
    // The frontend steps and leaves before the step's stop reply.
    let step = format!("vCont;s:{thread}");
    r.send_raw(format!("${step}#{}", common::rsp::checksum(step.as_bytes())).as_bytes());
    drop(r);

    // The program runs on, its output as before, and the observer still
    // sees every write.
    ticks_on(&mut lines, 5);
    let seen = writes();
    ticks_on(&mut lines, 3);
    common::wait_for("the observer's next writes", || writes() >= seen + 3);
    // The observer leaves: nothing traces the program any more.
    let _ = observer.0.kill();
    let _ = observer.0.wait();
    untraced(pid);
    ticks_on(&mut lines, 2);
}

/// A debugger of another local user is refused: the bridge (root's, here)
/// closes its connection without a word, so that user cannot reach
/// through the port a process it could not trace itself. Root's own
/// debugger is served meanwhile; and a bridge run through sudo serves the
/// user who ran sudo (`SUDO_UID`).
#[test]
fn another_users_debugger_is_refused() {
    let d = Daemon::start("gdb-peer");
    let (prog, mut lines) = ticker(20);
    let pid = prog.0.id();
    let user = common::users::user("gdbpeer");
    // As `user`: connect to `addr`, ask why the program stopped, print
    // all that comes back until the bridge closes (cat's status 0, or 1
    // for a reset: the bridge closed with the request unread) or `wait`
    // seconds pass (124).
    let knock = |addr: &str, wait: u32| -> String {
        let (host, port) = addr.rsplit_once(':').expect("host:port");
        let script = format!(
            "exec 3<>/dev/tcp/{host}/{port} || exit 9; printf '+$?#3f' >&3; \
             timeout {wait} cat <&3; echo \"STATUS $?\""
        );
        let out = common::users::command_as(&user, &[], &["bash", "-c", &script])
            .output()
            .expect("bash as another user");
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("{said}{}", String::from_utf8_lossy(&out.stderr));
        said
    };
    let (_bridge, addr) = common::gdb_bridge(&d.uri, &["-p", &pid.to_string()]);
    let said = knock(&addr, 5);
    assert!(
        matches!(said.trim(), "STATUS 0" | "STATUS 1"),
        "refused at once, and nothing answered: {said}"
    );
    // Root's debugger is served.
    let mut r = Raw::connect(&addr);
    assert!(r.ask("?").contains("thread:"));
    assert_eq!(r.ask("D"), "OK");
    drop(r);
    ticks_on(&mut lines, 3);
    // Run through sudo by `user`: `user` is served (the session stays
    // open until its client gives up).
    let uid = user.uid.to_string();
    let (_sudo_bridge, addr) =
        common::gdb_bridge_with(&d.uri, &["-p", &pid.to_string()], &[("SUDO_UID", &uid)]);
    let said = knock(&addr, 2);
    assert!(
        said.contains("$T") && said.contains("STATUS 124"),
        "served: {said}"
    );
    ticks_on(&mut lines, 3);
}
