//! Several servers at once (`utrace --server A --server B --server C …`),
//! with three real daemons on one machine: `ps` and `top` rows carry their
//! server, `trace` runs the program on each with every line marked, probe
//! maps are merged exactly, and a server that is down or dies mid-run is
//! named while the others complete.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};

use common::daemon::Daemon;
use common::users;
use utrace_client::{pb, Client};

fn utrace(servers: &[&Daemon]) -> Command {
    let mut c = Command::new(users::workspace_bin("utrace"));
    for d in servers {
        c.args(["--server", &d.uri]);
    }
    c.env_remove("UTRACE_SERVER").env_remove("UTRACE_SERVERS");
    c
}

/// A daemon's name in the merged output: its URI without the scheme.
fn name(d: &Daemon) -> String {
    d.uri.trim_start_matches("unix://").to_string()
}

fn three(tag: &str) -> [Daemon; 3] {
    ["a", "b", "c"].map(|n| Daemon::start(&format!("fanout-{tag}-{n}")))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ps_top_trace_and_probe_over_three_servers() {
    let ds = three("all");
    let all: Vec<&Daemon> = ds.iter().collect();

    // trace: the program runs on each; its lines and the trace's carry
    // the server.
    let out = utrace(&all)
        .args(["trace", "-e", "trace=write", "--", "sh", "-c", "echo hi"])
        .output()
        .expect("run utrace trace");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    for d in &ds {
        let n = name(d);
        assert!(stdout.contains(&format!("[{n}] hi\n")), "{stdout}");
        assert!(
            stderr.contains(&format!("[{n}] write(1, \"hi\\n\", 3)")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("[{n}] +++ exited with 0 +++")),
            "{stderr}"
        );
    }

    // ps and top: one ticker traced on each server, each row with its own.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut tickers = Vec::new();
    let mut clients = Vec::new();
    for d in &ds {
        let (t, lines) = common::ticker(20);
        let mut c = rt.block_on(Client::connect(&d.uri)).expect("connect");
        rt.block_on(c.attach(pb::AttachRequest {
            pid: t.0.id(),
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Death as i32],
                ..Default::default()
            }),
        }))
        .expect("attach");
        tickers.push((t, lines));
        clients.push(c);
    }
    let out = utrace(&all).arg("ps").output().expect("run utrace ps");
    let ps = text(&out.stdout);
    assert!(out.status.success(), "{ps}{}", text(&out.stderr));
    assert!(ps.starts_with("SERVER "), "{ps}");
    for (d, (t, _)) in ds.iter().zip(&tickers) {
        let pid = t.0.id().to_string();
        let row = ps
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(pid.as_str()))
            .unwrap_or_else(|| panic!("no row for {pid}:\n{ps}"));
        assert!(row.starts_with(&name(d)), "{row}");
    }
    let out = utrace(&all)
        .args(["top", "-b", "-n", "1"])
        .output()
        .expect("run utrace top");
    let top = text(&out.stdout);
    assert!(out.status.success(), "{top}{}", text(&out.stderr));
    assert!(top.contains("3 threads · 3 engines"), "{top}");
    for (d, (t, _)) in ds.iter().zip(&tickers) {
        let pid = t.0.id().to_string();
        assert!(
            top.lines()
                .any(|l| l.starts_with(&name(d))
                    && l.split_whitespace().nth(1) == Some(pid.as_str())),
            "{top}"
        );
    }
    drop(tickers);

    // probe: the maps of the three are one, exactly.
    let target = tracee!("probe_target");
    let prog = format!(
        "uprobe:{target}:probed_fn {{ @calls[arg0] = count(); @h = hist(arg0); @total = sum(arg0); @lo = min(arg0); }}"
    );
    let out = utrace(&all)
        .args(["probe", "-e", &prog, "-c", &format!("{target} run 300")])
        .output()
        .expect("run utrace probe");
    let maps = text(&out.stdout);
    assert!(out.status.success(), "{maps}{}", text(&out.stderr));
    // 300 calls with arg0 = i % 10 on each of three servers.
    for k in 0..10 {
        assert!(maps.contains(&format!("@calls[{k}]: 90\n")), "{maps}");
    }
    assert!(
        maps.contains(&format!("@total: {}\n", 3 * 30 * 45)),
        "{maps}"
    );
    assert!(maps.contains("@lo: 0\n"), "{maps}");
    assert!(maps.contains("[4, 8)               360 |"), "{maps}");
}

#[test]
fn a_server_down_or_dying_is_named_and_the_rest_complete() {
    let [a, b, mut c] = three("fail");
    // One that is not there at all.
    let gone = Daemon::start("fanout-fail-gone");
    let gone_uri = gone.uri.clone();
    drop(gone);
    let out = utrace(&[&a, &b])
        .args(["--server", &gone_uri, "ps"])
        .output()
        .expect("run utrace ps");
    assert_eq!(out.status.code(), Some(1), "a server is down");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: cannot connect",
            gone_uri.trim_start_matches("unix://")
        )),
        "{err}"
    );
    assert!(
        text(&out.stdout).starts_with("SERVER "),
        "the others' table"
    );

    // One that dies mid-run: the program on it dies with it (it was
    // started traced), the others finish and print everything.
    let mut child = utrace(&[&a, &b, &c])
        .args([
            "trace",
            "-e",
            "trace=none",
            "--",
            "sh",
            "-c",
            "echo start; sleep 2; echo end",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start utrace trace");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut started = 0;
    while started < 3 {
        let l = lines.next().expect("a line").expect("read");
        assert!(l.ends_with("] start"), "{l}");
        started += 1;
    }
    c.stop(libc::SIGKILL);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = common::wait_child(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read stderr");
    assert_eq!(status.code(), Some(1), "{rest:?}\n{err}");
    for d in [&a, &b] {
        assert!(rest.contains(&format!("[{}] end", name(d))), "{rest:?}");
        assert!(
            err.contains(&format!("[{}] +++ exited with 0 +++", name(d))),
            "{err}"
        );
    }
    assert!(
        !rest
            .iter()
            .any(|l| l.starts_with(&format!("[{}]", name(&c)))),
        "{rest:?}"
    );
    assert!(
        err.contains(&format!(
            "utrace: {}: the connection to the server was lost",
            name(&c)
        )),
        "{err}"
    );
}

/// Over TLS too: two servers on TCP with client certificates, asked at
/// once with one certificate; each row carries its server.
#[test]
fn tls_servers_fan_out_too() {
    let pki = common::pki::Pki::new("utt-fanout-tls");
    pki.issue("server", "utraced", &["localhost", "127.0.0.1"], true);
    pki.issue("fan", "utt-fan", &[], false);
    // The certificate acts as an unprivileged user, tracing its own
    // programs.
    let u = users::user("fanout-tls");
    std::fs::write(pki.path("identities"), format!("CN=utt-fan {}\n", u.uid)).expect("identities");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut uris = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..2 {
        let server = rt
            .block_on(utraced::Server::bind(pki.tls_server_config()))
            .expect("bind");
        let port = match &server.local_addrs()[0] {
            utraced::ListenAddr::Tls(a) => a.port(),
            other => panic!("{other}"),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(server.run(async move {
            let _ = stopped.await;
        }));
        stops.push(stop);
        uris.push(format!("https://localhost:{port}"));
    }
    let mut tickers = Vec::new();
    let mut clients = Vec::new();
    for uri in &uris {
        let t = users::Target::start(
            users::command_as(&u, &[], &[tracee!("ticker"), "100000", "20"]),
            "ticker",
        );
        let mut c = rt
            .block_on(Client::connect_with(uri, Some(&pki.client("fan"))))
            .expect("connect over TLS");
        rt.block_on(c.attach(pb::AttachRequest {
            pid: t.pid(),
            engine: Some(pb::EngineSpec {
                events: vec![pb::EventKind::Death as i32],
                ..Default::default()
            }),
        }))
        .expect("attach");
        tickers.push(t);
        clients.push(c);
    }
    let mut cmd = Command::new(users::workspace_bin("utrace"));
    cmd.env_remove("UTRACE_SERVER").env_remove("UTRACE_SERVERS");
    for uri in &uris {
        cmd.args(["--server", uri]);
    }
    let out = cmd
        .arg("--tls-ca")
        .arg(pki.path("ca.pem"))
        .arg("--tls-cert")
        .arg(pki.path("fan.pem"))
        .arg("--tls-key")
        .arg(pki.path("fan.key"))
        .arg("ps")
        .output()
        .expect("run utrace ps");
    let ps = text(&out.stdout);
    assert!(out.status.success(), "{ps}{}", text(&out.stderr));
    for (uri, t) in uris.iter().zip(&tickers) {
        let name = uri.trim_start_matches("https://");
        let pid = t.pid().to_string();
        assert!(
            ps.lines()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some(pid.as_str())),
            "{ps}"
        );
    }
    drop(clients);
    for s in stops {
        let _ = s.send(());
    }
}
