//! A client that has no .proto file: `tests/reflection_client.py` (Python
//! grpcio, grpcio-reflection, protobuf) learns `utrace.v1` from the server's
//! reflection service, checks grpc.health.v1, and calls the server-streaming
//! `Trace` from a JSON body. These tests start a server in-process, run the
//! script against its socket (bounded: killed after 120 s), and check the one
//! JSON line it prints.
//!
//! The Python packages are installed with pip when missing; a failed install
//! fails the test (with pip's output) rather than skipping it. The README's
//! grpcurl commands are run literally with grpcurl-rs (installed by
//! `.ci/run`, else here; skipped, saying why, only if it cannot be).

mod common;

type Json = serde_json::Value;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/reflection_client.py");

/// Bound on one run of the script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Make sure `import grpc, grpc_reflection, google.protobuf` works, installing
/// the packages with pip once per test binary if not. Panics with pip's output
/// when that fails.
fn ensure_python_deps() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        let probe = Command::new("python3")
            .args(["-c", "import grpc, grpc_reflection, google.protobuf"])
            .output()
            .map_err(|e| format!("cannot run python3: {e}; install Python 3"))?;
        if probe.status.success() {
            return Ok(());
        }
        println!(
            "python3 lacks grpc/grpc_reflection/protobuf ({}); running: python3 -m pip install --quiet grpcio grpcio-reflection protobuf",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        let pip = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "grpcio",
                "grpcio-reflection",
                "protobuf",
            ])
            .output()
            .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
        if !pip.status.success() {
            return Err(format!(
                "pip install grpcio grpcio-reflection protobuf failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
                pip.status,
                String::from_utf8_lossy(&pip.stdout),
                String::from_utf8_lossy(&pip.stderr)
            ));
        }
        println!("installed grpcio, grpcio-reflection and protobuf with pip");
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// Start a server in a multi-thread runtime of its own (this thread stays
/// free to block on the script), run the script with `body` against it, and
/// return its JSON line, parsed.
fn run_client(body: &str) -> Json {
    run_client_at(body, |uri| uri.to_string())
}

/// [`run_client`], with the script given `target(server's unix:// URI)`.
fn run_client_at(body: &str, target: impl Fn(&str) -> String) -> Json {
    common::init_logging();
    ensure_python_deps();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let srv = rt
        .block_on(utraced::Embedded::start())
        .expect("start server");
    let out = run_script(&target(&srv.uri()), body);
    rt.block_on(srv.stop()).expect("server stopped cleanly");
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in the script's output:\n{out}"));
    println!("reflection client: {line}");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON from the script ({e}): {line}"))
}

/// `python3 reflection_client.py URI BODY`, killed after [`SCRIPT_TIMEOUT`];
/// its stdout, or a panic with both streams when it fails.
fn run_script(uri: &str, body: &str) -> String {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .arg(uri)
        .arg(body)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    // Drain both pipes on threads so a chatty script cannot block on them.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for python3") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        None => panic!(
            "reflection client did not finish within {SCRIPT_TIMEOUT:?}; killed\n--- stdout\n{out}\n--- stderr\n{err}"
        ),
        Some(st) if !st.success() => {
            panic!("reflection client failed ({st})\n--- stdout\n{out}\n--- stderr\n{err}")
        }
        Some(_) => out,
    }
}

fn trace_body(syscalls: &[&str], decode: bool) -> String {
    let quote = |s: &str| format!("\"{s}\"");
    let syscalls: Vec<String> = syscalls.iter().map(|s| quote(s)).collect();
    format!(
        r#"{{"spawn": {{"argv": [{}, "50", "10"]}}, "engine": {{"syscalls": [{}], "decode": {decode}}}}}"#,
        quote(tracee!("syscall_loop")),
        syscalls.join(", ")
    )
}

/// Both listings name the tracer and health services, and health says
/// SERVING for the server and for `utrace.v1.Tracer`.
fn check_services_and_health(r: &Json) {
    for (key, reflection) in [
        ("services", "grpc.reflection.v1alpha.ServerReflection"),
        ("services_v1", "grpc.reflection.v1.ServerReflection"),
    ] {
        let names: Vec<&str> = r[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} missing: {r:?}"))
            .iter()
            .filter_map(Json::as_str)
            .collect();
        for want in ["utrace.v1.Tracer", "grpc.health.v1.Health", reflection] {
            assert!(names.contains(&want), "{key} lacks {want}: {names:?}");
        }
    }
    assert_eq!(
        r["health"][""].as_str(),
        Some("SERVING"),
        "{:?}",
        r["health"]
    );
    assert_eq!(
        r["health"]["utrace.v1.Tracer"].as_str(),
        Some("SERVING"),
        "{:?}",
        r["health"]
    );
}

#[test]
fn reflection_client_lists_services_and_traces_from_json() {
    let r = run_client(&trace_body(&["getppid", "openat"], true));
    check_services_and_health(&r);
    assert_eq!(r["status"].as_str(), Some("OK"), "Trace failed: {r:?}");
    assert_eq!(r["first_kind"].as_str(), Some("attached"));
    let entries = &r["syscall_entries"];
    assert_eq!(entries["getppid"].as_u64(), Some(50), "{entries:?}");
    // 50 getppid with one openat per 10: the loop's 5 openat of /dev/null,
    // plus the dynamic loader's.
    let openat = entries["openat"].as_u64().unwrap_or(0);
    assert!(openat >= 5, "openat entries: {openat}; {entries:?}");
    assert_eq!(
        r["entry_texts"][r#"openat(AT_FDCWD, "/dev/null", O_RDONLY"#].as_u64(),
        Some(5),
        "decoded openat texts: {:?}",
        r["entry_texts"]
    );
    let names: Vec<&str> = entries
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(names, ["getppid", "openat"], "syscall filter");
    assert_eq!(r["dropped_before"].as_u64(), Some(0));
    assert_eq!(r["death_seen"].as_bool(), Some(true), "no death: {r:?}");
    assert_eq!(r["exit_code"].as_u64(), Some(0));
    assert_eq!(r["exit_signal"].as_u64(), Some(0));
}

#[test]
fn reflection_client_bad_syscall_is_invalid_argument_naming_the_field() {
    let r = run_client(&trace_body(&["notasyscall"], false));
    check_services_and_health(&r);
    assert_eq!(r["status"].as_str(), Some("INVALID_ARGUMENT"), "{r:?}");
    let details = r["details"].as_str().unwrap_or_default();
    // The field path is TraceRequest's: `engine` (TraceRequest.spawn.engine is
    // ignored, so a message naming it would send the user to the wrong field).
    assert!(
        details.starts_with("engine.syscalls[0]:"),
        "message should start with the field path engine.syscalls[0]: {details:?}"
    );
    assert!(details.contains("notasyscall"), "{details:?}");
    assert_eq!(r["events"].as_u64(), Some(0));
}

/// Python grpcio on its defaults (`grpc.insecure_channel("unix:///path")`,
/// no options), which sends the socket's path, percent-encoded, as the
/// HTTP/2 `:authority`: every RPC of `utrace.v1.Tracer` gets the server's
/// own answer, never a transport error (before, each one failed with
/// `INTERNAL: Stream removed`). Also with the `unix:/path` form.
#[test]
fn grpcio_on_its_defaults_reaches_every_rpc() {
    for (form, target) in [
        (
            "unix:///path",
            Box::new(|u: &str| u.to_string()) as Box<dyn Fn(&str) -> String>,
        ),
        (
            "unix:/path",
            Box::new(|u: &str| u.replacen("unix://", "unix:", 1)),
        ),
    ] {
        let r = run_client_at(&trace_body(&["getppid"], false), target);
        check_services_and_health(&r);
        assert_eq!(r["status"].as_str(), Some("OK"), "{form}: Trace: {r:?}");
        assert_eq!(r["syscall_entries"]["getppid"].as_u64(), Some(50), "{form}");
        let rpcs = r["rpcs"].as_object().expect("rpcs");
        let mut names: Vec<&str> = rpcs.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "Attach",
                "Batch",
                "Detach",
                "Events",
                "GetActivity",
                "GetServerInfo",
                "ListTasks",
                "Probe",
                "ReadMemoryStream",
                "Session",
                "Spawn",
                "Stdin",
                "Trace"
            ],
            "{form}"
        );
        for (name, code) in rpcs {
            let code = code.as_str().unwrap_or_default();
            assert!(
                ![
                    "INTERNAL",
                    "UNKNOWN",
                    "UNAVAILABLE",
                    "UNIMPLEMENTED",
                    "DEADLINE_EXCEEDED"
                ]
                .contains(&code),
                "{form}: {name} answered {code}: {rpcs:?}"
            );
        }
        for ok in ["GetActivity", "GetServerInfo", "ListTasks", "Session"] {
            assert_eq!(rpcs[ok].as_str(), Some("OK"), "{form}: {ok}: {rpcs:?}");
        }
    }
}

/// The Rust port of grpcurl (`cargo install grpcurl-rs`): where cargo
/// installs it (`.ci/run` does), else installed now under the target
/// directory; `None`, with the reason printed, if it cannot be had.
fn grpcurl_rs() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))?;
    let works = |p: &std::path::Path| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let installed = home.join("bin/grpcurl");
    if works(&installed) {
        return Some(installed);
    }
    let root = users_target_dir().join("grpcurl-rs");
    let local = root.join("bin/grpcurl");
    if works(&local) {
        return Some(local);
    }
    eprintln!(
        "grpcurl-rs not found: installing it with `cargo install --locked --debug grpcurl-rs`"
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["install", "--locked", "--debug", "grpcurl-rs", "--root"])
        .arg(&root)
        .output();
    match out {
        Ok(o) if o.status.success() && works(&local) => Some(local),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            eprintln!(
                "SKIP readme_grpcurl_examples_run_with_grpcurl_rs: cannot install grpcurl-rs: {}",
                err.lines().last().unwrap_or("").trim()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIP readme_grpcurl_examples_run_with_grpcurl_rs: cannot run cargo: {e}");
            None
        }
    }
}

/// The target directory this test runs from.
fn users_target_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .and_then(|profile| profile.parent())
        .expect("target dir")
        .to_path_buf()
}

/// The README's grpcurl commands, literally, run by grpcurl-rs against a
/// real daemon (`$S` its socket, the attach's pid a running ticker's).
#[test]
fn readme_grpcurl_examples_run_with_grpcurl_rs() {
    let Some(grpcurl) = grpcurl_rs() else {
        return;
    };
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("### grpcurl")
        .nth(1)
        .expect("a grpcurl section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    // A command goes on past a line that ends with `\`, or inside quotes.
    let mut commands = Vec::new();
    let mut cur = String::new();
    for line in block.lines() {
        cur.push_str(line);
        cur.push('\n');
        let quoted = cur.matches('\'').count() % 2 == 1;
        if !line.ends_with('\\') && !quoted {
            commands.push(std::mem::take(&mut cur));
        }
    }
    assert!(commands[0].starts_with("S="), "{commands:?}");
    let commands = &commands[1..];
    assert_eq!(commands.len(), 6, "{commands:?}");

    let d = common::daemon::Daemon::start("grpcurl");
    let sock = d.uri.trim_start_matches("unix://").to_string();
    let (ticker, _lines) = common::ticker(50);
    let path = format!(
        "{}:{}",
        grpcurl.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |cmd: &str| -> std::process::Child {
        let cmd = cmd.replace("1234", &ticker.0.id().to_string());
        Command::new("sh")
            // exec: the command is the child itself, so killing it ends it.
            .args(["-c", &format!("exec {cmd}")])
            .env("S", &sock)
            .env("PATH", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sh")
    };
    let wanted: [&[&str]; 6] = [
        &["utrace.v1.Tracer", "grpc.health.v1.Health"],
        &["message EngineSpec"],
        &["\"version\"", "\"caller\""],
        &[
            "\"attached\"",
            "write(1, \\\"hi\\\\n\\\", 3",
            "\"processGone\": true",
        ],
        &["\"attached\""],
        &["SERVING"],
    ];
    for (i, cmd) in commands.iter().enumerate() {
        let mut child = run(cmd);
        let out = if i == 4 {
            // Streams until Ctrl-C: read until the attach shows, then stop.
            let mut stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut all = Vec::new();
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                    let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
                }
            });
            let deadline = Instant::now() + common::TIMEOUT;
            let mut seen = String::new();
            while !seen.contains("\"attached\"") && Instant::now() < deadline {
                if let Ok(s) = rx.recv_timeout(Duration::from_millis(100)) {
                    seen = s;
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            seen
        } else {
            let out = common::wait_output(child, common::TIMEOUT);
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for w in wanted[i] {
            assert!(out.contains(w), "{cmd}: no {w} in:\n{out}");
        }
    }
    // The attach ended with grpcurl: the ticker runs on untraced.
    common::untraced(ticker.0.id());
}
