//! How often a program survives its tracer being killed outright (SIGKILL)
//! while a breakpoint sits in its code: rounds of start a server (with its
//! keeper, as `utraced` runs), attach, insert a breakpoint, see it hit,
//! `kill -9` the server, and check half a second later that the program
//! still runs with its original byte back.
//!
//! Three ways to serve the breakpoint, side by side: a uprobe (the client
//! needs no stop at it: the server's default then), an int3 with the
//! keeper (the client asks for memory at each hit, which needs a stop), and
//! an int3 without the keeper (as before it existed). Three programs: one
//! that reaches the breakpoint every 50 ms (a sleep's return, as a
//! debugger user's breakpoint is hit now and then), one that reaches it
//! in a tight loop (`probe_target hot`, at its `probed_fn`), and the first held at
//! its breakpoint by a debugger (a Session's sync engine that does not
//! decide: a gdb user looking at the stop) when the server dies. The
//! kernel takes a uprobe out with the server's descriptors: both survive.
//! An int3 without the keeper kills a program that reaches it again; with
//! the keeper, the one that reaches it now and then survives unless the
//! kill lands around a hit, and the tight loop mostly dies (the kill lands
//! while it runs towards the int3 or steps over it, and it gets there
//! before the keeper can act). A held program sits at the breakpoint with
//! the original byte back in memory (no other thread runs), so it runs on
//! with or without the keeper. (A debugger's breakpoint needs a stop: no
//! uprobe row for it.)
//!
//! ```text
//! cargo bench -p utrace-tests --bench faults
//! UTRACE_BENCH_ROUNDS=100 cargo bench -p utrace-tests --bench faults
//! UTRACE_BENCH_ONLY=loop UTRACE_BENCH_ROUNDS=100 cargo bench -p utrace-tests --bench faults
//! UTRACE_BENCH_ONLY=held cargo bench -p utrace-tests --bench faults
//! ```
//!
//! A program that does not survive should die of SIGTRAP (an int3 with no
//! tracer); the last line counts those that died of anything else, each
//! also named on stderr as it happens.
//!
//! The server runs in a child process: this bench re-runs itself with
//! `UTRACE_FAULT_BENCH_SERVE=SOCKET`, and that process starts the keeper
//! first thing, as `utraced`'s main does.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use utrace_client::{pb, Client};

fn serve(sock: &str, keeper: bool) -> ! {
    // SAFETY: first thing in this process: one thread.
    let journal =
        keeper.then(|| unsafe { utrace_engines::journal::start_keeper() }.expect("keeper"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let config = utraced::Config {
        listen: vec![utraced::ListenAddr::Unix(sock.into())],
        journal,
        ..Default::default()
    };
    let _ = rt.block_on(utraced::serve(config, std::future::pending()));
    std::process::exit(0)
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

fn raw_byte(pid: u32, addr: u64) -> Option<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, addr).ok()?;
    Some(b[0])
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

/// Insert a breakpoint for `engine` where `pid`'s thread is now (stopped
/// for it): its address and the original byte there.
async fn insert_where_it_is(c: &mut Client, engine: u64, pid: u32) -> Option<(u64, u8)> {
    let rip = c
        .batch(engine, 0)
        .interrupt(true)
        .regs(&["rip"])
        .send()
        .await
        .ok()?
        .register(0, "rip")
        .ok()?;
    let orig = raw_byte(pid, rip)?;
    c.batch(engine, 0)
        .interrupt(true)
        .op(pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint {
            addr: rip,
            ..Default::default()
        }))
        .send()
        .await
        .ok()?
        .done(0)
        .ok()?;
    Some((rip, orig))
}

/// Insert a breakpoint for `engine` at `probe_target`'s `probed_fn`: its
/// address and the original byte there (`push %rbp`). (Where a thread in
/// a loop is now may be an instruction the kernel's uprobes refuse, an
/// AVX-512 one in libc: an int3 would serve it in the uprobe rows.)
async fn insert_at_probed_fn(c: &mut Client, engine: u64) -> Option<(u64, u8)> {
    let addr = c
        .batch(engine, 0)
        .interrupt(true)
        .op(pb::op::Op::InsertBreakpoint(pb::InsertBreakpoint {
            symbol: "probed_fn".into(),
            ..Default::default()
        }))
        .send()
        .await
        .ok()?
        .breakpoint(0)
        .ok()?;
    Some((addr, 0x55))
}

/// Kill the server at a random point (0-49 ms from now), and say whether
/// the program runs on half a second later with its original byte back.
async fn kill_and_see(server: &mut Child, pid: u32, rip: u64, orig: u8) -> bool {
    let jitter = (Instant::now().elapsed().as_nanos() as u64 ^ u64::from(pid)) % 50;
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    let _ = server.kill();
    let _ = server.wait();
    tokio::time::sleep(Duration::from_millis(500)).await;
    alive(pid) && raw_byte(pid, rip) == Some(orig)
}

/// One round: does `program` survive? `None`: the round could not be set up.
/// `held`: a debugger holds it at the breakpoint when the server dies.
async fn round(
    dir: &std::path::Path,
    program: &[&str],
    keeper: bool,
    int3: bool,
    held: bool,
) -> Option<bool> {
    let sock = dir.join(format!("s{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let mut server = Command::new(std::env::current_exe().ok()?)
        .env("UTRACE_FAULT_BENCH_SERVE", &sock)
        .env("UTRACE_FAULT_BENCH_KEEPER", if keeper { "1" } else { "0" })
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut prog: Child = Command::new(program[0])
        .args(&program[1..])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let pid = prog.id();
    let result = async {
        if !wait_for(|| sock.exists()) {
            return None;
        }
        let mut c = Client::connect(&format!("unix://{}", sock.display()))
            .await
            .ok()?;
        if held {
            return held_round(&mut c, pid, &mut server).await;
        }
        let at = c
            .attach(pb::AttachRequest {
                pid,
                engine: Some(pb::EngineSpec {
                    events: vec![pb::EventKind::Breakpoint as i32],
                    // Memory at each hit needs a stop: an int3.
                    expedite: int3.then(|| pb::Expedite {
                        registers: vec![],
                        memory: vec![pb::MemRef {
                            register: "rsp".into(),
                            len: 8,
                            string: false,
                            offset: 0,
                        }],
                        register_bytes: Default::default(),
                    }),
                    ..Default::default()
                }),
            })
            .await
            .ok()?;
        let mut events = c.events(at.engine_id).await.ok()?;
        let (rip, orig) = if program[0].ends_with("probe_target") {
            insert_at_probed_fn(&mut c, at.engine_id).await?
        } else {
            insert_where_it_is(&mut c, at.engine_id, pid).await?
        };
        // Hit once, then killed at a random point of its cycle.
        loop {
            let ev = tokio::time::timeout(
                Duration::from_secs(5),
                tokio_stream::StreamExt::next(&mut events),
            )
            .await
            .ok()??
            .ok()?;
            if matches!(ev.kind, Some(pb::event::Kind::Breakpoint(_))) {
                break;
            }
        }
        Some(kill_and_see(&mut server, pid, rip, orig).await)
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    // How a program that did not survive died: SIGTRAP (an int3 with no
    // tracer) is expected; anything else is worth a look.
    if result == Some(false) {
        use std::os::unix::process::ExitStatusExt;
        if let Ok(Some(st)) = prog.try_wait() {
            if st.signal() != Some(libc::SIGTRAP) {
                eprintln!("a program died otherwise: {st:?}");
                OTHER_DEATHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    let _ = prog.kill();
    let _ = prog.wait();
    result
}

/// A round where a debugger holds the program at its breakpoint (a
/// Session's sync engine that does not decide) when the server dies.
async fn held_round(c: &mut Client, pid: u32, server: &mut Child) -> Option<bool> {
    let mut s = c.session().await.ok()?;
    let a = s
        .attach(
            pid,
            pb::EngineSpec {
                sync: true,
                events: vec![pb::EventKind::Breakpoint as i32],
                deadline_ms: Some(600_000),
                ..Default::default()
            },
        )
        .await
        .ok()?;
    let (rip, orig) = insert_where_it_is(c, a.engine_id, pid).await?;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .ok()??
            .ok()?;
        if let utrace_client::SessionEvent::Report(e) = ev {
            if e.held && matches!(e.kind, Some(pb::event::Kind::Breakpoint(_))) {
                break;
            }
        }
    }
    Some(kill_and_see(server, pid, rip, orig).await)
}

/// Programs that did not die of SIGTRAP (or survive).
static OTHER_DEATHS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn main() {
    if let Ok(sock) = std::env::var("UTRACE_FAULT_BENCH_SERVE") {
        serve(
            &sock,
            std::env::var("UTRACE_FAULT_BENCH_KEEPER").as_deref() == Ok("1"),
        );
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("UTRACE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = std::env::temp_dir().join(format!("utrace-fault-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ticker = env!("CARGO_BIN_EXE_ticker");
    // (what, argv, held by a debugger)
    let mut programs: Vec<(&str, Vec<&str>, bool)> = vec![
        (
            "hit every 50 ms (a sleep returns)",
            vec![ticker, "1000000", "50"],
            false,
        ),
        (
            "hit in a tight loop",
            vec![env!("CARGO_BIN_EXE_probe_target"), "hot"],
            false,
        ),
        (
            "held at the breakpoint by a debugger",
            vec![ticker, "1000000", "50"],
            true,
        ),
    ];
    match std::env::var("UTRACE_BENCH_ONLY").as_deref() {
        Ok("loop") => programs.retain(|p| p.0.contains("loop")),
        Ok("held") => programs.retain(|p| p.2),
        _ => {}
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("SIGKILL of the server with a breakpoint inserted, {rounds} rounds each");
    println!("| program | breakpoint | rounds | survived | share |");
    println!("|---|---|---|---|---|");
    let ways = [
        ("uprobe (no stop needed)", false, false),
        ("int3, keeper", true, true),
        ("int3, no keeper (before)", true, false),
    ];
    for (what, argv, held) in &programs {
        for (way, int3, keeper) in ways {
            if *held && !int3 {
                continue;
            }
            let (mut ran, mut survived) = (0, 0);
            for _ in 0..rounds {
                match rt.block_on(round(&dir, argv, keeper, int3, *held)) {
                    Some(s) => {
                        ran += 1;
                        survived += usize::from(s);
                    }
                    None => eprintln!("a round could not be set up"),
                }
            }
            println!(
                "| {what} | {way} | {ran} | {survived} | {:.0}% |",
                100.0 * survived as f64 / ran.max(1) as f64
            );
        }
    }
    println!(
        "programs that died of anything but SIGTRAP: {}",
        OTHER_DEATHS.load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
