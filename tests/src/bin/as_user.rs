//! A utraced client that first becomes another user: the authorization
//! tests run it as uid/gid 65534 to act as an unprivileged client.
//!
//! Usage: `as_user UID URI ACTION [ARGS…]`, ACTION one of:
//! - `attach PID` → `attach=ok engine=E` or `attach=err code=CODE msg=…`
//! - `detach ENGINE` → `detach=ok` or `detach=err code=CODE msg=…`
//! - `spawn PROG [ARGS…]` → `spawn=ok pid=P engine=E` (held at entry), then
//!   waits for a line on stdin before exiting (keeping its engine alive)
//! - `info` → `uid=U rule=…`

use std::io::BufRead;

use utrace_client::{pb, Client};

fn usage() -> ! {
    eprintln!("usage: as_user UID URI (attach PID | detach ENGINE | spawn PROG [ARGS...] | info)");
    std::process::exit(2)
}

fn err_line(action: &str, s: &utrace_client::Status) {
    println!("{action}=err code={:?} msg={}", s.code(), s.message());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        usage();
    }
    let uid: u32 = args[0].parse().unwrap_or_else(|_| usage());
    // SAFETY: plain syscalls with valid arguments; failures are checked.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(uid) != 0
            || libc::setuid(uid) != 0
        {
            eprintln!(
                "as_user: cannot become uid {uid}: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("as_user: runtime: {e}");
            std::process::exit(1)
        });
    rt.block_on(async move {
        let mut c = match Client::connect(&args[1]).await {
            Ok(c) => c,
            Err(e) => {
                println!("connect=err msg={e}");
                return;
            }
        };
        match (args[2].as_str(), &args[3..]) {
            ("attach", [pid]) => {
                let pid = pid.parse().unwrap_or_else(|_| usage());
                match c.attach(pb::AttachRequest { pid, engine: None }).await {
                    Ok(r) => println!("attach=ok engine={}", r.engine_id),
                    Err(s) => err_line("attach", &s),
                }
            }
            ("detach", [id]) => match c.detach(id.parse().unwrap_or_else(|_| usage())).await {
                Ok(()) => println!("detach=ok"),
                Err(s) => err_line("detach", &s),
            },
            ("spawn", argv) if !argv.is_empty() => {
                match c
                    .spawn(pb::SpawnRequest {
                        argv: argv.to_vec(),
                        stop_at_entry: true,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(r) => {
                        println!("spawn=ok pid={} engine={}", r.pid, r.engine_id);
                        let mut line = String::new();
                        let _ = std::io::stdin().lock().read_line(&mut line);
                    }
                    Err(s) => err_line("spawn", &s),
                }
            }
            ("info", []) => match c.server_info().await {
                Ok(i) => {
                    let caller = i.caller.unwrap_or_default();
                    println!("uid={} rule={}", caller.uid, caller.rule);
                }
                Err(s) => err_line("info", &s),
            },
            _ => usage(),
        }
    });
}
