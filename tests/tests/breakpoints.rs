//! Breakpoint sites with real programs: one table per process decides
//! whether the kernel's uprobe or our `int3` serves each address, and
//! switches as engines come and go (the two cannot share an address).
//!
//! - An engine that takes hits without stops gets every hit of a hot
//!   breakpoint (or its loss counted) with no ptrace stop per hit, from
//!   every thread, those made after the insertion included.
//! - An engine that must stop there makes the site an `int3` for everyone;
//!   when it goes the uprobe serves again; when the last user goes the
//!   original byte is back.
//! - Reads through the tracer never show the kernel's or our `int3`.
//! - One uprobe serves a code location in every process that maps it: an
//!   int3 of ours at that location in another process makes the uprobes
//!   there int3s too (the uprobe would erase it at its first hit).

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use common::probe::{prober_opts, Counts, Prober, Where};
use common::*;
use utrace_engines::{EngineOptions, EventMask, SpawnOptions, Spawned, Tracer};

/// Run `argv` under a [`Prober`] to its end; its counts, its output and
/// how many ptrace stops the tracer handled.
fn run_probed(argv: &[&str], hits: bool, at: Where) -> (Arc<Counts>, Lines, u64) {
    let tracer = Tracer::new().unwrap();
    let counts = Arc::new(Counts::default());
    let (w, mut out) = Lines::pipe();
    let mut opts = SpawnOptions::new(argv.iter().copied());
    opts.stdout = Some(w);
    // Syscall stops by ptrace, which end when the engine wants no more
    // syscalls (a kernel-side filter would stop every getppid for good).
    opts.kernel_filter = false;
    tracer
        .spawn(
            opts,
            Box::new(Prober(Arc::clone(&counts), at)),
            prober_opts(hits),
        )
        .wait()
        .unwrap();
    wait_for("the program to end", || counts.gone.load(SeqCst));
    out.rest();
    let stops = tracer.stats().wait().unwrap().stops;
    (counts, out, stops)
}

/// A hot breakpoint (20,000 hits) for an engine that needs no stops: every
/// hit reported (or counted lost), with its registers, and no ptrace stop
/// per hit; the same breakpoint for an engine that stops takes two stops a
/// hit (the hit and the step over it).
#[test]
fn a_breakpoint_that_needs_no_stop_is_a_uprobe() {
    init_logging();
    let n = 20_000u64;
    let (c, out, stops) = run_probed(
        &[tracee!("syscall_loop"), &n.to_string()],
        true,
        Where::InLibc,
    );
    assert_eq!(out.value("getppid"), Some(n.to_string()));
    assert_eq!(c.stops.load(SeqCst), 0, "no hit stopped the program");
    assert_eq!(c.all_hits(), n, "every hit reported or counted lost");
    assert!(c.hits.load(SeqCst) > 0);
    assert_eq!(
        c.last_rip.load(SeqCst),
        c.addr.load(SeqCst),
        "rip is the breakpoint's"
    );
    // (The stops are the program's start-up syscalls, before the insertion.)
    assert!(stops < n / 20, "{stops} ptrace stops for {n} hits");
    eprintln!(
        "uprobe: {n} hits, {} reported, {} lost, {stops} ptrace stops",
        c.hits.load(SeqCst),
        c.lost.load(SeqCst)
    );

    let n = 2_000u64;
    let (c, _, stops) = run_probed(
        &[tracee!("syscall_loop"), &n.to_string()],
        false,
        Where::InProgram,
    );
    assert_eq!(c.stops.load(SeqCst), n);
    assert_eq!(c.hits.load(SeqCst), 0);
    assert!(stops >= 2 * n, "{stops} ptrace stops for {n} int3 hits");
}

/// Threads made before and after the insertion: the uprobe serves each
/// (events are per thread; new threads get theirs before they run).
#[test]
fn every_thread_hits_a_uprobe() {
    init_logging();
    let (t, n) = (4u64, 3_000u64);
    let (c, out, stops) = run_probed(
        &[tracee!("threads"), &t.to_string(), &n.to_string()],
        true,
        Where::InLibc,
    );
    assert_eq!(out.value("calls"), Some((t * n).to_string()));
    assert_eq!(c.stops.load(SeqCst), 0);
    assert_eq!(c.all_hits(), t * n, "every hit of every thread");
    assert_eq!(
        c.tids.lock().unwrap().len() as u64,
        t,
        "hits from each thread"
    );
    // Hits through ptrace would be 2 stops each (24,000). The stops there
    // are the start-up's syscalls, and the getppid calls of threads already
    // resumed to their next syscall when the engine stopped wanting them:
    // how many of those depends on the scheduler (625 were seen under a
    // full test run's load), so the bound is loose.
    assert!(stops < t * n / 4, "{stops} ptrace stops");
}

/// An engine that takes hits without stops, then one that stops at the
/// same address: the site becomes an int3 for both (both see stops); the
/// stopping one leaves: a uprobe again; the last one leaves: the original
/// byte is back. Reads through the tracer show the original byte
/// throughout; the memory itself holds the kernel's or our int3.
#[test]
fn a_site_switches_between_uprobe_and_int3_as_engines_come_and_go() {
    init_logging();
    let tracer = Tracer::new().unwrap();
    let (a, sp, _out) = endless_threads(&tracer, true);
    let pid = sp.pid;
    let _kill = KillPid(pid);
    wait_for("the breakpoint", || a.addr.load(SeqCst) != 0);
    let addr = a.addr.load(SeqCst);
    let orig = tracer
        .read_scatter(sp.engine, pid, true, vec![(addr, 1)])
        .wait()
        .unwrap()
        .buf[0];
    assert_ne!(orig, 0xcc, "reads hide the breakpoint");
    let raw = |what: &str| {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, addr).unwrap();
        eprintln!("{what}: {:#x}", b[0]);
        b[0]
    };
    let grows = |what: &str, f: &dyn Fn() -> u64| {
        let before = f();
        wait_for(what, || f() > before + 100);
    };
    // Phase 1: a uprobe.
    assert_eq!(raw("uprobe"), 0xcc, "the kernel's int3");
    grows("uprobe hits", &|| a.hits.load(SeqCst));
    let stops_before = tracer.stats().wait().unwrap().stops;

    // Phase 2: an engine that stops there joins: an int3 for both.
    let b = Arc::new(Counts::default());
    let at = tracer
        .attach(
            pid,
            Box::new(Prober(Arc::clone(&b), Where::InProgram)),
            EngineOptions::new(EventMask::BREAKPOINT | EventMask::DEATH),
        )
        .wait()
        .unwrap();
    tracer
        .with_stopped(at.engine, pid, true, move |t| t.insert_breakpoint(addr))
        .wait()
        .unwrap()
        .unwrap();
    grows("b's stops", &|| b.stops.load(SeqCst));
    grows("a's stops", &|| a.stops.load(SeqCst));
    // Ours (out for a moment at each step over it).
    wait_for("our int3", || raw("int3") == 0xcc);
    assert!(tracer.stats().wait().unwrap().stops > stops_before + 200);
    let hits = a.hits.load(SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        a.hits.load(SeqCst),
        hits,
        "no uprobe hits while an int3 serves"
    );

    // Phase 3: the stopping engine leaves: a uprobe again.
    tracer
        .with_stopped(at.engine, pid, true, move |t| t.remove_breakpoint(addr))
        .wait()
        .unwrap()
        .unwrap();
    tracer.detach(at.engine).wait().unwrap();
    grows("uprobe hits again", &|| a.hits.load(SeqCst));
    let (s1, b1) = (a.stops.load(SeqCst), b.stops.load(SeqCst));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        (a.stops.load(SeqCst), b.stops.load(SeqCst)),
        (s1, b1),
        "no more stops"
    );
    assert_eq!(raw("uprobe again"), 0xcc);
    let seen = tracer
        .read_scatter(sp.engine, pid, true, vec![(addr, 1)])
        .wait()
        .unwrap()
        .buf[0];
    assert_eq!(seen, orig, "reads hide the uprobe's int3");

    // Phase 4: the last user leaves: the original byte.
    tracer
        .with_stopped(sp.engine, pid, true, move |t| t.remove_breakpoint(addr))
        .wait()
        .unwrap()
        .unwrap();
    assert_eq!(raw("removed"), orig);
    let hits = a.all_hits();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(a.all_hits(), hits, "no hits once removed");

    // Phase 5: another process of the same program, whose engine stops at
    // the same place: one uprobe serves a location in every process, and
    // it would erase that int3 at its first hit. So the first process's
    // uprobe becomes an int3 too, and both engines see every hit stop.
    tracer
        .with_stopped(sp.engine, pid, true, move |t| t.insert_breakpoint(addr))
        .wait()
        .unwrap()
        .unwrap();
    grows("uprobe hits once more", &|| a.hits.load(SeqCst));
    let (c, sp2, _out2) = endless_threads(&tracer, false);
    let _kill2 = KillPid(sp2.pid);
    wait_for("the second breakpoint", || c.addr.load(SeqCst) != 0);
    grows("the second process's stops", &|| c.stops.load(SeqCst));
    grows("the first process's stops", &|| a.stops.load(SeqCst));
    let hits = a.hits.load(SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(a.hits.load(SeqCst), hits, "no uprobe left at that location");
    grows("the second process's stops, still", &|| {
        c.stops.load(SeqCst)
    });

    drop(_kill);
    wait_for("the program to die", || a.gone.load(SeqCst));
}

/// `threads 1 1000000000` under a [`Prober`] with its breakpoint in the
/// program's own code (a location no other test of this file probes),
/// taking hits without stops or not.
fn endless_threads(tracer: &Tracer, hits: bool) -> (Arc<Counts>, Spawned, Lines) {
    let counts = Arc::new(Counts::default());
    let (w, out) = Lines::pipe();
    let mut opts = SpawnOptions::new([tracee!("threads"), "1", "1000000000"]);
    opts.stdout = Some(w);
    opts.kernel_filter = false;
    let sp = tracer
        .spawn(
            opts,
            Box::new(Prober(Arc::clone(&counts), Where::InProgram)),
            prober_opts(hits),
        )
        .wait()
        .unwrap();
    (counts, sp, out)
}

/// Kills the program when the test ends, passed or not.
struct KillPid(i32);

impl Drop for KillPid {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A breakpoint that needs no stop, at an instruction the kernel's uprobes
/// refuse (an EVEX-encoded AVX-512 one, as libc's string functions have):
/// an int3 serves it, every hit is reported, the program runs its course,
/// and the original byte is back when the engine leaves. (The
/// program runs the instruction: skipped, saying why, where the CPU lacks
/// AVX-512F.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instruction_uprobes_refuse_is_served_by_an_int3() {
    use std::io::Write;
    use utrace_client::pb;
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !cpu.split_whitespace().any(|f| f == "avx512f") {
        eprintln!("skipped: this CPU has no AVX-512F, and the tracee's instruction needs it");
        return;
    }
    let n = 200;
    let (_srv, mut c) = server().await;
    let mut child = KillOnDrop(
        std::process::Command::new(tracee!("probe_target"))
            .args(["evex", &n.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start probe_target"),
    );
    let pid = child.0.id();
    let mut out = Lines::from_reader(child.0.stdout.take().expect("stdout"));
    assert!(out.next().starts_with("ready "));
    let at = c
        .attach(pb::AttachRequest {
            pid,
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Breakpoint as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut events = c.events(at.engine_id).await.unwrap();
    let addr = insert_breakpoint_at(&mut c, at.engine_id, "evex_fn").await;
    let raw = || raw_byte(pid, addr);
    assert_eq!(raw(), 0xcc, "a breakpoint is in memory");
    let info = c.server_info().await.unwrap();
    assert_eq!(info.uprobe_events, 0, "no uprobe: the kernel refused one");

    let stdin = child.0.stdin.as_mut().expect("stdin");
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
    let mut hits = 0;
    while hits < n {
        let ev = tokio::time::timeout(TIMEOUT, tokio_stream::StreamExt::next(&mut events))
            .await
            .expect("every hit reported")
            .unwrap()
            .unwrap();
        if let Some(pb::event::Kind::Breakpoint(b)) = ev.kind {
            assert_eq!(b.addr, addr);
            hits += 1;
        }
    }
    assert_eq!(out.next(), "done evex", "the program ran its course");
    c.detach(at.engine_id).await.unwrap();
    assert_eq!(raw(), 0x62, "the original byte is back");
    // (Its exit is not waited for here: the tracer is a thread of this
    // process, and a wait of ours could take a ptrace stop of the detach.)
    let stdin = child.0.stdin.as_mut().expect("stdin");
    stdin.write_all(b"end\n").unwrap();
}
