//! A process to trace that only waits (until killed, or until a line on
//! stdin). Options set it up first:
//! - `--nondumpable`: `prctl(PR_SET_DUMPABLE, 0)`, as programs holding
//!   secrets do;
//! - `--listen PATH`: listen on a Unix socket at PATH (a stand-in for a
//!   server run by somebody else).

use std::io::BufRead;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut _listener = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--nondumpable" => {
                // SAFETY: prctl with scalar arguments.
                if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
                    eprintln!("hold: PR_SET_DUMPABLE: {}", std::io::Error::last_os_error());
                    std::process::exit(1);
                }
            }
            "--listen" => {
                let path = args.next().unwrap_or_else(|| {
                    eprintln!("hold: --listen PATH");
                    std::process::exit(2)
                });
                match std::os::unix::net::UnixListener::bind(&path) {
                    Ok(l) => {
                        // Anyone may connect (and be fooled, unless careful).
                        use std::os::unix::fs::PermissionsExt;
                        let _ =
                            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777));
                        _listener = Some(l)
                    }
                    Err(e) => {
                        eprintln!("hold: {path}: {e}");
                        std::process::exit(1);
                    }
                }
            }
            other => {
                eprintln!("hold: unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.is_empty() {
        // stdin closed at once (not a pipe we hold): wait to be killed.
        loop {
            std::thread::park();
        }
    }
}
