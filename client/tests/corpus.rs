//! The strace corpus: programs traced by strace and by `utrace trace` with
//! the same options, normalised and compared line by line, thread by
//! thread. The programs: `ls`, a `sh -c` pipeline, `python3 -c`, a
//! threaded writer, a signal sender, a socket/epoll program and the `-k`
//! tracee (the last three: `tests/c/writers.c`, `tests/c/sender.c`,
//! `tests/c/calls.c`, built here). The options: `-f`, `-f -y -s 100 -tt`,
//! `-f -c`, `-e trace=%file`, `-e status=failed`, `-e inject=…`.
//!
//! What varies between any two runs is normalised away in both traces
//! alike ([`normalise`]): pids (named by who started them), addresses,
//! times, random bytes, pipe and socket inodes, ports. What strace and
//! utrace are allowed to print differently is listed in [`DIFFERENCES`],
//! each with its reason; everything else must be the same.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{run_strace, strace, utrace_command, wait_bounded};

/// What may differ between two traces of the same program, by timing
/// alone: lines dropped (no replacement) or rewritten in both before they
/// are compared, and why.
const DIFFERENCES: &[(&str, Option<&str>, &str)] = &[
    (
        r"^--- SIGCHLD ",
        None,
        "a child's SIGCHLD reaches its parent whenever the child ends: where \
         it falls among the parent's calls depends on the scheduler, not on \
         the tracer (and so does the rt_sigreturn that ends its handler, the \
         thread's next one, dropped with it)",
    ),
    (
        r"^futex\(",
        None,
        "pthread_join waits on a futex only if the thread is still running \
         when it is called: the writers' main thread makes zero to three \
         futex calls, by timing (with -c: the futex row, and so the total)",
    ),
    (
        r"= \? ERESTARTNOINTR ",
        None,
        "a signal that comes during a fork (a SIGCHLD, whenever a child \
         ends) makes the kernel restart it: whether one comes is timing",
    ),
    (
        r"^(wait4\(-1, .*\) = )P[.0-9]*",
        Some("${1}CHILD"),
        "wait4(-1, …) returns whichever child ended first: the pipeline's \
         commands end in any order",
    ),
];

/// Rows of `-c`'s table left out, for the reasons [`DIFFERENCES`] gives:
/// the writers' futex calls; the pipeline's SIGCHLD handlers (how many
/// run, as signals that come together are delivered once, and whether
/// the call each interrupted had failed, which its rt_sigreturn returns
/// again) and the forks a SIGCHLD restarts; and so the total.
const SUMMARY_DIFFERENCES: &[&str] = &["futex", "rt_sigreturn", "clone", "total"];

/// A program of the corpus: a name for messages, its argv.
struct Program {
    name: &'static str,
    argv: Vec<String>,
}

/// The corpus's programs (the C ones built once, into a scratch dir).
fn programs() -> &'static [Program] {
    static PROGRAMS: OnceLock<Vec<Program>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("utrace-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let build = |name: &str, extra: &[&str]| -> String {
            let exe = dir.join(name);
            let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/c")
                .join(format!("{name}.c"));
            let cc = Command::new("cc")
                .args(["-O1", "-o"])
                .arg(&exe)
                .arg(&src)
                .args(extra)
                .output()
                .expect("run cc (.ci/run installs gcc)");
            assert!(cc.status.success(), "cc {}: {cc:?}", src.display());
            exe.display().to_string()
        };
        let socket_epoll = "import socket, select\n\
            l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(4)\n\
            c=socket.create_connection(l.getsockname()); a,_=l.accept()\n\
            ep=select.epoll(); ep.register(a.fileno(), select.EPOLLIN); c.send(b'hi')\n\
            ep.poll(1); a.recv(2); open('/nonexistent-utrace-corpus').close() if False else None\n";
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The interpreter itself, not a wrapper script in PATH (pyenv's
        // shims run bash, whose SIGCHLD handler reaps at times the
        // scheduler picks).
        let python = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "python3".into());
        // A fixed hash seed and no address randomisation: the
        // interpreter's allocations follow its dicts' layout.
        let python_c = |code: &str| {
            args(&[
                "setarch",
                "-R",
                "env",
                "PYTHONHASHSEED=0",
                &python,
                "-c",
                code,
            ])
        };
        vec![
            Program {
                name: "ls",
                argv: args(&["ls", "-a", "/"]),
            },
            Program {
                name: "pipeline",
                argv: args(&[
                    "sh",
                    "-c",
                    "echo a | tr a b | cat; ls /nonexistent-utrace || true",
                ]),
            },
            Program {
                name: "python",
                argv: python_c("import json, os; print(json.dumps({'cwd': os.getcwd() != ''}))"),
            },
            Program {
                name: "writers",
                argv: vec![build("writers", &["-pthread"])],
            },
            Program {
                name: "sender",
                argv: vec![build("sender", &[])],
            },
            Program {
                name: "socket-epoll",
                argv: python_c(socket_epoll),
            },
            Program {
                name: "calls",
                argv: vec![build("calls", &[])],
            },
        ]
    })
}

/// Trace `argv` with `opts` by utrace and by strace, each into a file: the
/// two traces (their exit codes must agree).
fn both(tag: &str, opts: &[&str], argv: &[String]) -> (String, String) {
    let dir = std::env::temp_dir();
    let ours = dir.join(format!("utrace-corpus-{}-{tag}-ours", std::process::id()));
    let theirs = dir.join(format!("utrace-corpus-{}-{tag}-theirs", std::process::id()));
    let o = ours.display().to_string();
    let t = theirs.display().to_string();
    let mut args: Vec<&str> = vec!["trace"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-o", &o, "--"]);
    args.extend(argv.iter().map(String::as_str));
    let child = utrace_command(&args).spawn().expect("run utrace");
    let u = wait_bounded(child, &format!("utrace {}", args.join(" ")));
    let mut sargs: Vec<&str> = opts.to_vec();
    sargs.extend_from_slice(&["-o", &t]);
    sargs.extend(argv.iter().map(String::as_str));
    let s = run_strace(&sargs);
    assert_eq!(
        u.code, s.code,
        "{tag}: utrace exited {:?}, strace {:?}\nutrace's stderr: {}\nstrace's stderr: {}",
        u.code, s.code, u.stderr, s.stderr
    );
    let read = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        text
    };
    (read(&ours), read(&theirs))
}

/// A trace as per-thread line lists, sorted: each thread named by who
/// started it (`P` the first, `P.2` its second child or thread; `Q` one
/// whose start the trace does not show), every pid in the text written
/// with that name, an unfinished call joined to its resumed half (strace
/// 6.1 with `-e status=` writes that half right after, without its pid or
/// `<... resumed>`: joined too), and what
/// varies between runs (addresses, times, random bytes, inodes, ports)
/// written alike.
fn normalise(trace: &str) -> Vec<(String, Vec<String>)> {
    let prefix = regex::Regex::new(r"^(\d+) +").expect("regex");
    let time = regex::Regex::new(r"^\d\d:\d\d:\d\d\.\d{6} ").expect("regex");
    let child = regex::Regex::new(r"^(clone3?|fork|vfork)\(.*\) += (\d+)").expect("regex");
    let resumed = regex::Regex::new(r"^<\.\.\. [a-z0-9_]+ resumed>").expect("regex");
    let differences: Vec<(regex::Regex, Option<&str>)> = DIFFERENCES
        .iter()
        .map(|(re, to, _)| (regex::Regex::new(re).expect("regex"), *to))
        .collect();
    // Where a pid is written: a signal's sender, the pid arguments of the
    // calls that take one, the results of the calls that return one.
    let pids = [
        r"(si_pid=)(\d+)",
        r"^((?:kill|tkill|tgkill|wait4|waitid|pidfd_open|getpgid|setpgid|getsid|prlimit64)\(-?)(\d+)",
        r"^(tgkill\(\w+, )(\d+)",
        r"^((?:clone3?|fork|vfork|wait4|waitid|getpid|gettid|set_tid_address|getpgrp|setsid)\(.*\) += )(\d+)",
    ]
    .map(|re| regex::Regex::new(re).expect("regex"));
    let vary = [
        (r"0x[0-9a-f]{5,}", "0xADDR"),
        (r"(parent_tid|child_tid)=\[\d+\]", "$1=[TID]"),
        (r#"getrandom\("(\\x[0-9a-f]{2})*""#, "getrandom(\"RANDOM\""),
        (r"(pipe|socket):\[\d+\]", "$1:[INODE]"),
        (r"htons\(\d+\)", "htons(PORT)"),
        (r"(si_[us]time)=\d+( /\* [^*]* \*/)?", "$1=TIME"),
        (r"\{uptime=\d+, loads=\[[^]]*\], [^}]*\}", "{SYSINFO}"),
        // The first program's parent is the tracer (utrace or strace).
        (r"getppid\(\) = \d+", "getppid() = TRACER"),
    ]
    .map(|(re, to)| (regex::Regex::new(re).expect("regex"), to));

    // Each line's thread; the halves of a call joined; each thread's
    // children in the order it started them.
    let mut open: BTreeMap<String, String> = BTreeMap::new();
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut last: Option<String> = None;
    for raw in trace.lines() {
        let (pid, rest, bare) = match prefix.captures(raw) {
            Some(c) => (c[1].to_string(), &raw[c[0].len()..], false),
            None => match &last {
                // strace's -e status= continuation of the line before.
                Some(p) if open.contains_key(p) => (p.clone(), raw, true),
                _ => ("main".to_string(), raw, false),
            },
        };
        last = Some(pid.clone());
        let rest = time.replace(rest, "").into_owned();
        let full = if bare {
            let head = open.remove(&pid).unwrap_or_default();
            format!("{head}{rest}")
        } else if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            open.insert(pid.clone(), head.to_string());
            continue;
        } else if let Some(m) = resumed.find(&rest) {
            let head = open.remove(&pid).unwrap_or_default();
            format!("{head}{}", &rest[m.end()..])
        } else {
            rest
        };
        if let Some(c) = child.captures(&full) {
            children
                .entry(pid.clone())
                .or_default()
                .push(c[2].to_string());
        }
        lines.push((pid, full));
    }
    // Calls cut short by the end of their thread.
    for (pid, head) in open {
        lines.push((pid, format!("{head} <unfinished ...>")));
    }
    // Names from the first thread down; a thread whose start is not shown
    // is `Q`.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    if let Some((root, _)) = lines.first() {
        let mut todo = vec![(root.clone(), "P".to_string())];
        while let Some((pid, name)) = todo.pop() {
            for (k, c) in children.get(&pid).into_iter().flatten().enumerate() {
                todo.push((c.clone(), format!("{name}.{}", k + 1)));
            }
            names.insert(pid, name);
        }
    }
    for (pid, _) in &lines {
        names.entry(pid.clone()).or_insert_with(|| "Q".into());
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut after_sigchld: BTreeMap<String, bool> = BTreeMap::new();
    for (pid, line) in lines {
        let sigchld = line.starts_with("--- SIGCHLD ");
        if line.starts_with("rt_sigreturn(") && after_sigchld.remove(&pid).is_some() {
            continue;
        }
        let drop = differences
            .iter()
            .any(|(re, to)| to.is_none() && re.is_match(&line));
        if drop {
            if sigchld {
                after_sigchld.insert(pid.clone(), true);
            }
            continue;
        }
        // Results are aligned after the call: the column moves with the
        // width of what is normalised, and with a call cut in two.
        let mut line = collapse_alignment(&line);
        for re in &pids {
            line = re
                .replace_all(&line, |c: &regex::Captures| {
                    let name = names.get(&c[2]).map_or(&c[2], String::as_str);
                    format!("{}{name}", &c[1])
                })
                .into_owned();
        }
        for (re, to) in &vary {
            line = re.replace_all(&line, *to).into_owned();
        }
        for (re, to) in &differences {
            if let Some(to) = to {
                line = re.replace_all(&line, *to).into_owned();
            }
        }
        let who = names.get(&pid).cloned().unwrap_or_else(|| "Q".into());
        out.entry(format!("{who} {pid}")).or_default().push(line);
    }
    // Keyed by name alone, sorted by name and then lines (so that the
    // unnamed `Q`s pair up by what they did).
    let mut threads: Vec<(String, Vec<String>)> = out
        .into_iter()
        .map(|(k, v)| (k.split(' ').next().unwrap_or_default().to_string(), v))
        .collect();
    threads.sort();
    threads
}

/// `call(…)     = 0` with the alignment spaces before the result's `=`
/// (the last `)` followed by spaces and `=`) made one.
fn collapse_alignment(line: &str) -> String {
    static RESULT: OnceLock<regex::Regex> = OnceLock::new();
    let re = RESULT.get_or_init(|| regex::Regex::new(r"\) +=").expect("regex"));
    match re.find_iter(line).last() {
        Some(m) => format!("{}) ={}", &line[..m.start()], &line[m.end()..]),
        None => line.to_string(),
    }
}

/// `-c`'s table as (syscall, calls, errors) rows, by name (times differ).
fn summary_rows(table: &str) -> Vec<(String, u64, u64)> {
    let mut rows: Vec<(String, u64, u64)> = table
        .lines()
        .filter(|l| !l.starts_with('%') && !l.starts_with('-') && !l.trim().is_empty())
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let name = t.last()?.to_string();
            if SUMMARY_DIFFERENCES.contains(&name.as_str()) {
                return None;
            }
            let calls = t.get(3)?.parse().ok()?;
            let errors = if t.len() == 6 {
                t.get(4)?.parse().ok()?
            } else {
                0
            };
            Some((name, calls, errors))
        })
        .collect();
    rows.sort();
    rows
}

/// The first difference between two normalised traces, in words.
fn difference(ours: &[(String, Vec<String>)], theirs: &[(String, Vec<String>)]) -> Option<String> {
    let names = |t: &[(String, Vec<String>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let shown = |t: &[(String, Vec<String>)]| {
        t.iter()
            .map(|(n, l)| format!("{n}: {:?} .. {:?}", l.first(), l.last()))
            .collect::<Vec<_>>()
            .join("\n    ")
    };
    if names(ours) != names(theirs) {
        return Some(format!(
            "threads:\n  ours:\n    {}\n  strace's:\n    {}",
            shown(ours),
            shown(theirs)
        ));
    }
    for ((t, o), (_, s)) in ours.iter().zip(theirs) {
        if let Some(i) = (0..o.len().max(s.len())).find(|&i| o.get(i) != s.get(i)) {
            return Some(format!(
                "thread {t}, line {i}:\n  ours:    {:?}\n  strace's: {:?}",
                o.get(i),
                s.get(i)
            ));
        }
    }
    None
}

/// Run every program with `opts`: the differences found, none expected.
fn corpus(tag: &str, opts: &[&str]) {
    strace();
    let mut failures = Vec::new();
    for p in programs() {
        let (ours, theirs) = both(&format!("{tag}-{}", p.name), opts, &p.argv);
        assert!(!theirs.is_empty(), "{}: strace wrote nothing", p.name);
        let found = if opts.contains(&"-c") {
            let (o, s) = (summary_rows(&ours), summary_rows(&theirs));
            assert!(!s.is_empty(), "{}: no summary rows in\n{theirs}", p.name);
            let only = |a: &[(String, u64, u64)], b: &[(String, u64, u64)]| {
                a.iter()
                    .filter(|r| !b.contains(r))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            (o != s).then(|| {
                format!(
                    "rows that differ:\n  ours:    {:?}\n  strace's: {:?}",
                    only(&o, &s),
                    only(&s, &o)
                )
            })
        } else {
            difference(&normalise(&ours), &normalise(&theirs))
        };
        if let Some(d) = found {
            failures.push(format!("{} with {opts:?}: {d}", p.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn corpus_follow() {
    corpus("f", &["-f"]);
}

#[test]
fn corpus_paths_strings_times() {
    corpus("fys", &["-f", "-y", "-s", "100", "-tt"]);
}

#[test]
fn corpus_summary() {
    corpus("c", &["-f", "-c"]);
}

#[test]
fn corpus_file_class() {
    corpus("file", &["-f", "-e", "trace=%file"]);
}

#[test]
fn corpus_failed_calls() {
    corpus("failed", &["-f", "-e", "status=failed"]);
}

#[test]
fn corpus_injected_faults() {
    corpus(
        "inject",
        &["-f", "-e", "inject=openat,write:error=EACCES:when=3"],
    );
}
