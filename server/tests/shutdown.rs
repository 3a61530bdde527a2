//! The `utraced` binary: SIGTERM detaches every engine and every tracee runs
//! on unharmed; attached and unfiltered spawned programs finish normally.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use utrace_client::{pb, Client};

const BOUND: Duration = Duration::from_secs(30);

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {BOUND:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tracer_pid(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:").map(|v| v.trim().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_detaches_everything() {
    let dir = std::env::temp_dir().join(format!("utraced-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_utraced"))
        .args(["--listen", &format!("unix://{}", sock.display())])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + BOUND;
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "server did not create its socket"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut c = Client::connect(&format!("unix://{}", sock.display()))
        .await
        .unwrap();

    // An attached program that prints 20 lines, 50 ms apart.
    let mut attached = Command::new("/bin/sh")
        .args(["-c", "for i in $(seq 1 20); do echo $i; sleep 0.05; done"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(attached.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "1");
    let a = c
        .attach(pb::AttachRequest {
            pid: attached.id(),
            engine: None,
        })
        .await
        .unwrap();
    let _events = c.events(a.engine_id).await.unwrap();
    // A spawned program without the kernel filter: detachable.
    let marker = dir.join("spawned-done");
    let sp = c
        .spawn(pb::SpawnRequest {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("sleep 0.5; echo ok > {}", marker.display()),
            ],
            no_kernel_filter: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_ne!(tracer_pid(attached.id()).as_deref(), Some("0"));
    assert_ne!(tracer_pid(sp.pid).as_deref(), Some("0"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = wait(&mut server);
    assert!(st.success(), "server exit: {st:?}");
    assert!(!sock.exists(), "socket removed at shutdown");

    // Both run on, untraced, to their normal end.
    assert_eq!(tracer_pid(attached.id()).as_deref(), Some("0"));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(rest.last().map(String::as_str), Some("20"), "{rest:?}");
    assert!(wait(&mut attached).success());
    let deadline = Instant::now() + BOUND;
    while !marker.exists() {
        assert!(Instant::now() < deadline, "spawned program did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
