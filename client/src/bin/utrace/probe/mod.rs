//! `utrace probe`: bpftrace for one process, over the `Probe` call.
//!
//! ```text
//! utrace probe -e 'uprobe:libc:malloc { @bytes = hist(arg0); }' -p 1234
//! utrace probe -e 'tracepoint:syscalls:sys_enter_openat { printf("%s\n", str(args->filename)); }' -- ls
//! utrace probe -f json prog.bt -c 'make -j2'
//! ```
//!
//! The program is compiled here ([`parse`]) into one `ProbeRequest`: the
//! server runs the uprobe and syscall clauses and keeps the maps; BEGIN,
//! END and the interval block run here, on the server's `started` report,
//! its final snapshot and its periodic snapshots. Everything printed is
//! bpftrace's format ([`print`]): `Attaching N probes...`, the events'
//! printf lines as they come, and at the end (the process exited, an
//! exit() ran, or Ctrl-C detached the probe) END's output, then every map.

mod merge;
pub mod parse;
pub mod print;

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tracing::debug;
use utrace_client::pb;
use utrace_client::pb::probe_report::Kind;

use self::parse::{ClientAction, EventAction, Program};
use self::print::{sprintf, OutputFormat, Printer};
use crate::server::Connection;
use crate::write_stdout;

/// How long the final snapshot may take after a detach.
const DETACH_TIMEOUT: Duration = Duration::from_secs(5);

/// The `probe` command line: bpftrace's options.
#[derive(Args, Debug)]
#[command(
    override_usage = "utrace probe [-f text|json] [--follow-forks] (-e PROGRAM | FILE) (-p PID | -c 'CMD ARGS' | [--] CMD [ARGS]...)"
)]
pub struct ProbeCmd {
    /// The program, in bpftrace's language (instead of FILE).
    #[arg(short = 'e', value_name = "PROGRAM")]
    pub program: Option<String>,
    /// Probe this running process (all its threads).
    #[arg(short = 'p', value_name = "PID", conflicts_with = "cmd")]
    pub pid: Option<u32>,
    /// Start this command and probe it: its words split on white space,
    /// as bpftrace does.
    #[arg(short = 'c', value_name = "CMD")]
    pub cmd: Option<String>,
    /// Output format: bpftrace's text, or its JSON lines.
    #[arg(short = 'f', value_name = "FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Probe the process's children too (and theirs), from their first
    /// instruction, as `strace --follow-forks`; `pid` tells them apart.
    /// (bpftrace has no such option: its uprobes without -p see every
    /// process.)
    #[arg(long = "follow-forks")]
    pub follow_forks: bool,
    /// The program's file (`-` for standard input) when there is no -e;
    /// with -e, the command to start.
    #[arg(value_name = "FILE")]
    pub file: Option<String>,
    /// The command to start and its arguments.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// A `probe` command, compiled and ready to run.
pub struct Prepared {
    program: Program,
    target: pb::probe_request::Target,
    format: OutputFormat,
    follow: bool,
}

/// Read and compile the program and settle the target, before connecting:
/// a message for `utrace: ` and exit status 2 if anything is wrong.
pub fn prepare(cmd: &ProbeCmd) -> Result<Prepared, String> {
    let mut command = cmd.command.clone();
    let (source, origin) = match (&cmd.program, &cmd.file) {
        (Some(p), file) => {
            if let Some(f) = file {
                command.insert(0, f.clone());
            }
            (p.clone(), String::new())
        }
        (None, Some(f)) if f == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| format!("probe: cannot read the program from standard input: {e}"))?;
            (s, "stdin:".to_string())
        }
        (None, Some(f)) => {
            let s = std::fs::read_to_string(f)
                .map_err(|e| format!("probe: cannot read {f}: {e}"))?;
            (s, format!("{f}:"))
        }
        (None, None) => {
            return Err(
                "probe: no program: give one with -e 'PROGRAM' or as a FILE (see `utrace probe --help`)"
                    .into(),
            )
        }
    };
    let program = parse::compile(&source).map_err(|e| {
        let mut msg = format!("probe: {origin}{e}");
        if let Some(line) = source.lines().nth(e.pos.line as usize - 1) {
            let pad: String = line
                .chars()
                .take(e.pos.col as usize - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            msg.push_str(&format!("\n{line}\n{pad}^"));
        }
        msg
    })?;
    let argv = match &cmd.cmd {
        Some(c) => {
            if !command.is_empty() {
                return Err("probe: -c and a command after the program go separately".into());
            }
            c.split_whitespace().map(str::to_string).collect()
        }
        None => command,
    };
    let target = match (cmd.pid, argv.is_empty()) {
        (Some(pid), true) => pb::probe_request::Target::Pid(pid),
        (Some(_), false) => return Err("probe: -p PID and a command to start go separately".into()),
        (None, false) => {
            let (env, cwd) = crate::trace::own_env_and_cwd();
            pb::probe_request::Target::Spawn(pb::ProbeSpawn { argv, env, cwd })
        }
        (None, true) => {
            return Err(
                "probe: which process? -p PID, -c 'CMD ARGS', or the command after the program \
                 (utrace probes one process, not the whole system)"
                    .into(),
            )
        }
    };
    Ok(Prepared {
        program,
        target,
        format: cmd.format,
        follow: cmd.follow_forks,
    })
}

/// What the run loop keeps.
struct State<'a> {
    prog: &'a Program,
    printer: Printer<'a>,
    /// The probe's engine, once started.
    engine_id: Option<u64>,
    /// An exit() ran or Ctrl-C came: the probe is being detached; events
    /// and periodic snapshots are no longer shown (as bpftrace).
    ending: bool,
    /// The final snapshot.
    last: Option<pb::ProbeSnapshot>,
    /// Maps END cleared.
    cleared: BTreeSet<String>,
    /// Events the server reported lost, with the events.
    lost_seen: u64,
}

impl State<'_> {
    /// Run a BEGIN, END or interval block against `snap`; whether it
    /// called exit().
    fn client_block(
        &mut self,
        actions: &[ClientAction],
        snap: Option<&pb::ProbeSnapshot>,
        out: &mut String,
    ) -> bool {
        let mut cleared_now: BTreeSet<&str> = BTreeSet::new();
        for a in actions {
            match a {
                ClientAction::Printf { format, args } => {
                    out.push_str(&self.printer.printf(&sprintf(format, args)));
                }
                ClientAction::Print { map, top, div } => {
                    let m = if cleared_now.contains(map.as_str()) || self.cleared.contains(map) {
                        None
                    } else {
                        print::snapshot_map(snap, map)
                    };
                    out.push_str(&self.printer.map(map, m, *top, *div));
                }
                ClientAction::Clear(map) => {
                    cleared_now.insert(map);
                }
                ClientAction::Time(f) => out.push_str(&self.printer.time(&strftime(f))),
                ClientAction::Exit => return true,
            }
        }
        false
    }

    /// A clause's event; whether it called exit().
    fn event(&mut self, ev: &pb::ProbeEvent, out: &mut String) -> bool {
        if ev.dropped_before > 0 {
            self.lost_seen += ev.dropped_before;
            out.push_str(&self.printer.lost(ev.dropped_before));
        }
        let Some(actions) = self.prog.events.get(ev.clause as usize) else {
            debug!(clause = ev.clause, "an event of no clause of ours");
            return false;
        };
        let mut values = ev.values.as_slice();
        for a in actions {
            match a {
                EventAction::Printf { format, args } => {
                    let n = (*args).min(values.len());
                    out.push_str(&self.printer.printf(&sprintf(format, &values[..n])));
                    values = &values[n..];
                }
                EventAction::Time(f) => out.push_str(&self.printer.time(&strftime(f))),
                EventAction::Exit => return true,
            }
        }
        false
    }

    /// The end: END, then every map, as bpftrace prints them at exit.
    fn finish(&mut self, out: &mut String) {
        let snap = self.last.take();
        let end = self.prog.end.clone();
        let mut cleared_now = BTreeSet::new();
        // END's clear()s count for the maps printed after it.
        for a in &end {
            if let ClientAction::Clear(m) = a {
                cleared_now.insert(m.clone());
            }
        }
        self.client_block(&end, snap.as_ref(), out);
        self.cleared.extend(cleared_now);
        out.push_str(&self.printer.all_maps(snap.as_ref(), &self.cleared));
        if let Some(s) = &snap {
            warn_losses(s, self.lost_seen);
        }
    }
}

/// The time of day as `format` (strftime) says.
fn strftime(format: &str) -> String {
    let mut s = String::new();
    if std::fmt::Write::write_fmt(
        &mut s,
        format_args!("{}", chrono::Local::now().format(format)),
    )
    .is_err()
    {
        return format.to_string();
    }
    s
}

/// Say on stderr what the server could not count or keep.
fn warn_losses(s: &pb::ProbeSnapshot, lost_seen: u64) {
    if let Some(c) = &s.counters {
        if c.hits_lost > 0 {
            eprintln!(
                "utrace: {} hits were lost: the process outran the server (the maps miss them)",
                c.hits_lost
            );
        }
        if c.events_dropped > lost_seen {
            eprintln!(
                "utrace: {} events were dropped (past the events-per-second limit, or a full queue)",
                c.events_dropped - lost_seen
            );
        }
        if c.read_errors > 0 {
            eprintln!(
                "utrace: {} str() reads failed (the address was not readable)",
                c.read_errors
            );
        }
    }
    for m in &s.maps {
        if m.keys_dropped > 0 {
            eprintln!(
                "utrace: {}: {} updates of new keys were dropped: the map was full \
                 (BPFTRACE_MAP_KEYS_MAX raises the limit)",
                m.name, m.keys_dropped
            );
        }
    }
}

/// One server's probe, as the run loop follows it.
#[derive(Default)]
struct Node {
    /// Its engine, once started.
    engine_id: Option<u64>,
    /// Its latest periodic snapshot, and its final one.
    latest: Option<pb::ProbeSnapshot>,
    last: Option<pb::ProbeSnapshot>,
    /// Its stream is over (ended, or failed: then why).
    done: bool,
    failed: Option<String>,
}

/// Run the probe to its end; exit status 0 (bpftrace's), errors from the
/// server as `utrace: MESSAGE`, status 1.
///
/// With several servers (`--server A --server B`), the same probe runs on
/// each: BEGIN runs once (at the first start), the events' lines come as
/// they arrive, each with its server's name, the interval block and the
/// maps at the end see every server's maps merged ([`merge`]). A server
/// that fails is named on stderr and left out; the others go on, and the
/// exit status is then 1.
pub async fn run(conns: &mut [&mut Connection], prepared: Prepared) -> Result<u8, String> {
    let Prepared {
        program,
        target,
        format,
        follow,
    } = prepared;
    let many = conns.len() > 1;
    // Before the probe starts, so that an early Ctrl-C is ours.
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;

    let mut request = program.request.clone();
    request.target = Some(target);
    request.follow_children = follow;
    let mut nodes: Vec<Node> = conns.iter().map(|_| Node::default()).collect();
    let mut streams = tokio_stream::StreamMap::new();
    for (i, conn) in conns.iter_mut().enumerate() {
        match conn.client.probe(request.clone()).await {
            Ok(s) => {
                streams.insert(i, s);
            }
            Err(s) if !many => return Err(program.explain(s.message())),
            Err(s) => fail(&mut nodes[i], &conn.uri, program.explain(s.message())),
        }
    }
    if streams.is_empty() {
        return Err("probe: no server could start it".into());
    }

    let mut st = State {
        prog: &program,
        printer: Printer {
            format,
            maps: &program.maps,
        },
        engine_id: None,
        ending: false,
        last: None,
        cleared: BTreeSet::new(),
        lost_seen: 0,
    };
    let mut deadline: Option<tokio::time::Instant> = None;
    while nodes.iter().any(|n| !n.done) {
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut stop = false;
        let next = tokio::select! {
            _ = sigint.recv() => { stop = true; None }
            _ = sigterm.recv() => { stop = true; None }
            _ = timeout => {
                let why = format!(
                    "the server did not end the probe within {} s of the detach; its last \
                     counts are lost",
                    DETACH_TIMEOUT.as_secs()
                );
                if !many {
                    return Err(why);
                }
                for (i, n) in nodes.iter_mut().enumerate().filter(|(_, n)| !n.done) {
                    fail(n, &conns[i].uri, why.clone());
                }
                break;
            }
            m = tokio_stream::StreamExt::next(&mut streams) => m,
        };
        if stop {
            if st.ending {
                return Err("interrupted again: the final counts are lost".into());
            }
            if nodes.iter().all(|n| n.engine_id.is_none()) {
                // Not started: cancelling the calls is all there is to do.
                debug!("interrupted before the probe started");
                return Ok(0);
            }
            st.ending = true;
            deadline = Some(tokio::time::Instant::now() + DETACH_TIMEOUT);
            detach_all(conns, &nodes).await;
            continue;
        }
        let Some((i, message)) = next else {
            // Every stream is over.
            break;
        };
        let report = match message {
            Ok(r) => r,
            Err(status) if !many => return Err(program.explain(status.message())),
            Err(status) => {
                streams.remove(&i);
                fail(
                    &mut nodes[i],
                    &conns[i].uri,
                    program.explain(status.message()),
                );
                continue;
            }
        };
        let mut out = String::new();
        let mut exit = false;
        match report.kind {
            Some(Kind::Started(s)) => {
                debug!(engine = s.engine_id, pid = s.pid, points = ?s.points, "probe started");
                for p in s.points.iter().filter(|p| p.pending) {
                    debug!(
                        clause = p.clause,
                        point = p.point,
                        "pending until its library loads"
                    );
                }
                let first = nodes.iter().all(|n| n.engine_id.is_none());
                nodes[i].engine_id = Some(s.engine_id);
                st.engine_id = Some(s.engine_id);
                if st.ending {
                    // Started after an exit() or Ctrl-C elsewhere.
                    detach(conns[i], s.engine_id).await;
                } else if first {
                    out.push_str(&st.printer.attached(st.prog.probes));
                    let begin = st.prog.begin.clone();
                    exit = st.client_block(&begin, None, &mut out);
                }
            }
            // After an exit() or Ctrl-C, bpftrace shows no more events.
            Some(Kind::Event(ev)) if !st.ending => {
                let mut lines = String::new();
                exit = st.event(&ev, &mut lines);
                out = node_lines(many.then_some(&conns[i].uri), format, lines);
            }
            Some(Kind::Event(_)) => {}
            Some(Kind::Snapshot(s)) => {
                if s.r#final {
                    nodes[i].last = Some(s);
                } else {
                    nodes[i].latest = Some(s);
                    // The interval block runs at the first live server's
                    // snapshots, on every server's latest maps.
                    let lead = nodes.iter().position(|n| !n.done);
                    if !st.ending && lead == Some(i) {
                        let merged = merged(nodes.iter().map(|n| n.latest.as_ref()));
                        let interval = st.prog.interval.clone();
                        exit = st.client_block(&interval, Some(&merged), &mut out);
                    }
                }
            }
            Some(Kind::Ended(e)) => {
                debug!(reason = %e.reason, "probe ended");
                let usual = e.reason == "detached"
                    || e.reason.ends_with("process exited")
                    || e.reason.ends_with("of the tree exited");
                if !usual && !st.ending {
                    match many {
                        true => {
                            eprintln!("utrace: {}: the probe ended: {}", conns[i].uri, e.reason)
                        }
                        false => eprintln!("utrace: the probe ended: {}", e.reason),
                    }
                }
                nodes[i].done = true;
                streams.remove(&i);
            }
            None => {}
        }
        write_stdout(out.as_bytes())?;
        if exit && !st.ending {
            st.ending = true;
            deadline = Some(tokio::time::Instant::now() + DETACH_TIMEOUT);
            detach_all(conns, &nodes).await;
        }
    }
    // A stream that ended without `ended` is over too.
    for n in &mut nodes {
        n.done = true;
    }
    // The maps at the end: the servers' final snapshots, merged (a server
    // that failed is left out, and was named).
    let finals: Vec<&pb::ProbeSnapshot> = nodes
        .iter()
        .filter(|n| n.failed.is_none())
        .filter_map(|n| n.last.as_ref())
        .collect();
    st.last = (!finals.is_empty()).then(|| merged(finals.into_iter().map(Some)));
    let mut out = String::new();
    st.finish(&mut out);
    write_stdout(out.as_bytes())?;
    Ok(if nodes.iter().any(|n| n.failed.is_some()) {
        1
    } else {
        0
    })
}

/// Server `uri` failed: say so now (its counts are left out).
fn fail(n: &mut Node, uri: &str, why: String) {
    eprintln!("utrace: {uri}: {why} (its counts are left out)");
    n.done = true;
    n.failed = Some(why);
}

/// The snapshots there are, as one.
fn merged<'a>(snaps: impl Iterator<Item = Option<&'a pb::ProbeSnapshot>>) -> pb::ProbeSnapshot {
    let snaps: Vec<&pb::ProbeSnapshot> = snaps.flatten().collect();
    match snaps.as_slice() {
        [one] => (*one).clone(),
        many => merge::snapshots(many),
    }
}

/// An event's text lines, each with its server's name (text format, with
/// several servers).
fn node_lines(node: Option<&String>, format: OutputFormat, lines: String) -> String {
    match node {
        Some(n) if format == OutputFormat::Text => crate::node_lines::lines_of(n, &lines),
        _ => lines,
    }
}

/// Detach every server's probe.
async fn detach_all(conns: &mut [&mut Connection], nodes: &[Node]) {
    for (conn, n) in conns.iter_mut().zip(nodes) {
        if let (Some(id), false) = (n.engine_id, n.done) {
            detach(conn, id).await;
        }
    }
}

/// Detach the probe's engine: the server sends the final snapshot and
/// `ended`. A probe that already ended is no error.
async fn detach(conn: &mut Connection, id: u64) {
    if let Err(s) = conn.client.detach(id).await {
        debug!(code = ?s.code(), "detach: {}", s.message());
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn probe_cmd(args: &[&str]) -> ProbeCmd {
        let mut argv = vec!["utrace", "probe"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Command::Probe(p),
                ..
            }) => p,
            Ok(other) => panic!("{args:?}: {other:?}"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    const PROG: &str = "uprobe:libc:malloc { @ = count(); }";

    #[test]
    fn command_lines() {
        let p = probe_cmd(&["-e", PROG, "-p", "42"]);
        let prep = prepare(&p).expect("prepared");
        assert_eq!(prep.target, pb::probe_request::Target::Pid(42));
        assert_eq!(prep.format, OutputFormat::Text);

        let p = probe_cmd(&["-f", "json", "-e", PROG, "-c", "ls  -l /tmp"]);
        let prep = prepare(&p).expect("prepared");
        let pb::probe_request::Target::Spawn(s) = prep.target else {
            panic!("not a spawn");
        };
        assert_eq!(s.argv, ["ls", "-l", "/tmp"]);
        assert!(!s.env.is_empty());
        assert_eq!(prep.format, OutputFormat::Json);

        for args in [
            &["-e", PROG, "--", "ls", "-l"][..],
            &["-e", PROG, "ls", "-l"][..],
        ] {
            let prep = prepare(&probe_cmd(args)).expect("prepared");
            let pb::probe_request::Target::Spawn(s) = prep.target else {
                panic!("not a spawn");
            };
            assert_eq!(s.argv, ["ls", "-l"], "{args:?}");
        }
    }

    #[test]
    fn program_files() {
        let dir = std::env::temp_dir().join(format!("utrace-probe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let file = dir.join("p.bt");
        std::fs::write(&file, format!("{PROG}\n")).expect("write");
        let path = file.to_str().expect("utf-8 path");
        let p = probe_cmd(&[path, "-p", "7"]);
        assert_eq!(
            prepare(&p).expect("prepared").target,
            pb::probe_request::Target::Pid(7)
        );
        let p = probe_cmd(&[path, "--", "ls", "-a"]);
        let pb::probe_request::Target::Spawn(s) = prepare(&p).expect("prepared").target else {
            panic!("not a spawn");
        };
        assert_eq!(s.argv, ["ls", "-a"]);

        std::fs::write(&file, "uprobe:libc:malloc {\n  @ = count(\n}\n").expect("write");
        let msg = prepare(&probe_cmd(&[path, "-p", "7"]))
            .err()
            .expect("an error");
        assert_eq!(
            msg,
            format!("probe: {path}:3:1: expected an expression, found '}}'\n}}\n^")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn usage_errors() {
        let err = |args: &[&str]| prepare(&probe_cmd(args)).err().expect("an error");
        assert!(err(&["-p", "1"]).contains("no program"));
        assert!(err(&["-e", PROG]).contains("which process?"));
        assert!(err(&["-e", PROG, "-c", "ls", "ls"]).contains("go separately"));
        assert!(err(&["-e", PROG, "-p", "1", "ls"]).contains("go separately"));
        assert_eq!(
            err(&["-e", "uprobe:libc:puts { @[str(arg0 { }", "-p", "1"]),
            "probe: 1:31: expected ')' after str's argument, found '{'\n\
             uprobe:libc:puts { @[str(arg0 { }\n                              ^"
        );
    }

    #[test]
    fn events_print_their_printfs_in_turn() {
        let prog = parse::compile(
            "uprobe:libc:puts { printf(\"%s:\", comm); printf(\" %d\\n\", arg0); } \
             uprobe:libc:exit { exit(); printf(\"never\\n\"); }",
        )
        .expect("compiles");
        let mut st = State {
            prog: &prog,
            printer: Printer {
                format: OutputFormat::Text,
                maps: &prog.maps,
            },
            engine_id: Some(1),
            ending: false,
            last: None,
            cleared: BTreeSet::new(),
            lost_seen: 0,
        };
        let v = |v| pb::ProbeValue { value: Some(v) };
        let ev = pb::ProbeEvent {
            clause: 0,
            values: vec![
                v(pb::probe_value::Value::Str("sh".into())),
                v(pb::probe_value::Value::Int(7)),
            ],
            dropped_before: 2,
            ..Default::default()
        };
        let mut out = String::new();
        assert!(!st.event(&ev, &mut out));
        assert_eq!(out, "Lost 2 events\nsh: 7\n");
        let mut out = String::new();
        assert!(st.event(
            &pb::ProbeEvent {
                clause: 1,
                ..Default::default()
            },
            &mut out
        ));
        assert_eq!(out, "");
    }
}
