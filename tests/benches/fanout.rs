//! `utrace ps` over many servers at once against one server, in one run:
//! the issue's goal is a fan-out over 16 servers in less than twice one
//! server's time (every server is asked at once).
//!
//! Starts 16 `utraced` daemons (release build) on private sockets, each
//! tracing one `sleep` of its own, then times the whole `utrace ps`
//! command (process start, connections, the calls, the merged table)
//! with 1, 4 and 16 `--server`s, one run of each per round; the table
//! shows the medians and the ratio to one server.
//!
//! ```text
//! cargo bench -p utrace-tests --bench fanout            # 20 runs
//! UTRACE_BENCH_RUNS=5 cargo bench -p utrace-tests --bench fanout
//! ```

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fmt_time, median, runs, utrace_bin, utraced_bin};

const SERVERS: usize = 16;

/// Daemons and their traced programs, killed when dropped.
struct Fleet {
    dir: std::path::PathBuf,
    children: Vec<Child>,
    uris: Vec<String>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fleet(utraced: &std::path::Path, utrace: &std::path::Path) -> Result<Fleet, String> {
    let dir = std::env::temp_dir().join(format!("utrace-bench-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut f = Fleet {
        dir: dir.clone(),
        children: Vec::new(),
        uris: Vec::new(),
    };
    for i in 0..SERVERS {
        let sock = dir.join(format!("{i}.sock"));
        let d = Command::new(utraced)
            .arg("--listen")
            .arg(format!("unix://{}", sock.display()))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start utraced: {e}"))?;
        f.children.push(d);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if Instant::now() > deadline {
                return Err(format!("utraced {i} did not listen"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        f.uris.push(format!("unix://{}", sock.display()));
    }
    // One traced program on each (a trace that runs until killed; with
    // -f the program has the kernel-side filter, so it dies with its
    // server and nothing is left behind).
    for uri in f.uris.clone() {
        let t = Command::new(utrace)
            .args([
                "--server",
                &uri,
                "trace",
                "-f",
                "-o",
                "/dev/null",
                "--",
                "sleep",
                "3600",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start utrace trace: {e}"))?;
        f.children.push(t);
    }
    Ok(f)
}

/// One `utrace ps` over `uris`: its wall time and its row count.
fn ps(utrace: &std::path::Path, uris: &[String]) -> Result<(f64, usize), String> {
    let mut c = Command::new(utrace);
    for u in uris {
        c.args(["--server", u]);
    }
    let start = Instant::now();
    let out = c
        .arg("ps")
        .output()
        .map_err(|e| format!("run utrace ps: {e}"))?;
    let t = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "utrace ps failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((t, String::from_utf8_lossy(&out.stdout).lines().count() - 1))
}

fn main() {
    let (utrace, utraced) = match (utrace_bin(), utraced_bin()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("fanout bench: {e}");
            std::process::exit(1);
        }
    };
    let f = match fleet(&utraced, &utrace) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fanout bench: {e}");
            std::process::exit(1);
        }
    };
    // Every server traces its program before timing starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ps(&utrace, &f.uris).map(|r| r.1) != Ok(SERVERS) {
        if Instant::now() > deadline {
            eprintln!("fanout bench: the servers' programs were not all traced");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let widths = [1, 4, SERVERS];
    let n = runs(20);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); widths.len()];
    // The reference: one `utrace ps` per server, one after another (what a
    // shell loop over the nodes does).
    let mut in_turn = Vec::new();
    for _ in 0..n {
        for (i, w) in widths.iter().enumerate() {
            match ps(&utrace, &f.uris[..*w]) {
                Ok((t, rows)) if rows == *w => times[i].push(t),
                Ok((_, rows)) => eprintln!("{w} servers: {rows} rows"),
                Err(e) => eprintln!("{w} servers: {e}"),
            }
        }
        let mut sum = 0.0;
        for u in &f.uris {
            match ps(&utrace, std::slice::from_ref(u)) {
                Ok((t, _)) => sum += t,
                Err(e) => eprintln!("in turn: {e}"),
            }
        }
        in_turn.push(sum);
    }
    println!("`utrace ps` over several servers at once, whole command, median of {n} runs");
    println!("{:<34} {:>12} {:>16}", "servers", "time", "vs one server");
    let one = median(times[0].clone());
    let ratio = |m: Option<f64>| match (m, one) {
        (Some(m), Some(o)) if o > 0.0 => format!("{:.2}×", m / o),
        _ => "-".into(),
    };
    let rows = widths
        .iter()
        .map(|w| format!("{w}, at once"))
        .zip(times)
        .chain([(format!("{SERVERS}, one command each in turn"), in_turn)]);
    for (what, t) in rows {
        let m = median(t);
        println!(
            "{:<34} {:>12} {:>16}",
            what,
            m.map(fmt_time).unwrap_or_else(|| "-".into()),
            ratio(m)
        );
    }
    println!("goal: {SERVERS} servers in less than 2.00× one server's time");
}
