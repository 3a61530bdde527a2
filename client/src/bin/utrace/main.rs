//! `utrace`: the command-line client of utraced.
//!
//! ```text
//! utrace [--server URI] trace [-f] [-t|-tt|-ttt] [-T] [-e trace=NAME,…] [-e inject=SET:error=ERRNO[:when=N[+STEP]]] [-c] [-o FILE] (-p PID | [--] CMD ARGS…)
//! utrace [--server URI] ps [PID]
//! utrace [--server URI] info [--json]
//! utrace [--server URI] batch -p PID [--tid TID] [--stop-on-error] [FILE|-]
//! utrace [--server URI] mem read -p PID ADDR LEN [--hex|--raw]
//! utrace [--server URI] mem write -p PID ADDR HEXBYTES
//! utrace [--server URI] regs -p PID [NAME…]
//! utrace [--server URI] regs set -p PID NAME=VALUE…
//! utrace [--server URI] gdb (--stdio | --listen ADDR) (-p PID | [--] CMD ARGS…)
//! utrace [--server URI] top [-b] [-d SECS] [-n N] [-p PID] [-s stops|syscalls|pid|comm]
//! utrace [--server URI] probe [-f text|json] (-e PROGRAM | FILE) (-p PID | -c 'CMD ARGS' | [--] CMD ARGS…)
//! utrace --server A --server B … ps|top|trace|probe …   (several servers: fanout)
//! utrace completions SHELL
//! ```
//!
//! `trace` prints what `strace` prints, through one `Trace` call. The server
//! is the one `--server` or `UTRACE_SERVER` names; else the utraced daemon on
//! the default socket if one listens there; else a server started inside
//! this process, so `utrace trace -- ls` works with no daemon at all.
//!
//! `batch`, `mem` and `regs` attach a fresh engine to `-p PID` for the one
//! command, run their ops as one `Batch` with `interrupt` (the thread is
//! stopped for it and let go after) and detach: engines live as long as
//! their connection, so an engine id would be useless across commands.
//!
//! Exit status: `trace` leaves with the traced program's (128 + the signal
//! that killed it), as strace; 0 after `-p` (detached with Ctrl-C or the
//! process ended); `probe` leaves with 0, as bpftrace; 1 when the server
//! refuses or fails (the message names the field and the fix), or when an
//! op of `batch`, `mem` or `regs` failed (its code and message on stderr);
//! 2 on a usage error (a `batch` input that is not a JSON array of ops, or
//! a `probe` program that does not compile, included). Logs
//! (`RUST_LOG=debug`) go to stderr.

#[macro_use]
mod exit;
mod assemble;
mod batch;
mod brk;
mod fanout;
mod gdb;
mod inject;
mod mem;
mod node_lines;
mod opjson;
mod per_thread;
mod probe;
mod regs;
mod server;
mod show;
mod signals;
mod stack;
mod stdio;
mod sysset;
mod top;
mod trace;
mod trace_cmd;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::server::Connection;

/// utrace: strace, and more, over the shared tracer utraced.
#[derive(Parser, Debug)]
#[command(name = "utrace", version, propagate_version = true)]
struct Cli {
    /// The server: unix:///PATH/utraced.sock, https://HOST:PORT (with
    /// --tls-ca, --tls-cert, --tls-key) or http://127.0.0.1:PORT. Default:
    /// the utraced daemon on its default socket if one listens there, else a
    /// server started inside this command. Several (repeated, or
    /// comma-separated; or UTRACE_SERVERS=A,B): ps, top, trace and probe
    /// run on each and merge the answers.
    #[arg(long, global = true, env = "UTRACE_SERVER", value_name = "URI")]
    server: Vec<String>,
    /// For an https:// server: the CA certificate that signed it (PEM).
    #[arg(long, global = true, env = "UTRACE_TLS_CA", value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// For an https:// server: your certificate (PEM), which the server maps
    /// to the user you act as.
    #[arg(long, global = true, env = "UTRACE_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<std::path::PathBuf>,
    /// For an https:// server: your private key (PEM).
    #[arg(long, global = true, env = "UTRACE_TLS_KEY", value_name = "FILE")]
    tls_key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Trace a program or a process, strace-style.
    Trace(Box<trace_cmd::TraceCmd>),
    /// List the traced threads, their state and their engines.
    Ps {
        /// Only this process.
        pid: Option<u32>,
    },
    /// Versions, kernel facts, capabilities, and what you may trace: the
    /// first thing to attach to a bug report.
    Info {
        /// One JSON object instead of `key: value` lines.
        #[arg(long)]
        json: bool,
    },
    /// Run operations (memory, registers, syscall, control…) on a process
    /// in one round trip: a JSON array of ops in, a JSON array of results
    /// out.
    Batch(batch::BatchCmd),
    /// Read or write a process's memory.
    Mem {
        #[command(subcommand)]
        cmd: mem::MemCmd,
    },
    /// Print a thread's registers, or set them (`regs set`).
    Regs(regs::RegsCmd),
    /// Insert a software breakpoint, report its hits, remove it.
    Break(brk::BreakCmd),
    /// Serve gdb or lldb (GDB remote protocol) for a process, alongside
    /// whatever else traces it.
    Gdb(gdb::GdbCmd),
    /// Probe a process bpftrace-style: uprobes and syscalls, with maps
    /// (count, sum, hist…) kept by the server and printf events, printed
    /// as bpftrace prints them.
    Probe(probe::ProbeCmd),
    /// A live view of the traced threads (stop and syscall rates, holders),
    /// their busiest syscalls, and the engines (reports, drops, batch
    /// latency), as top; `-b` prints it as text.
    Top(top::TopCmd),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    if let Command::Completions { shell } = &cli.command {
        // Into a buffer first: clap_complete panics on a failed write.
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "utrace", &mut script);
        return match write_stdout(&script) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say!("utrace: {e}");
                ExitCode::from(1)
            }
        };
    }
    // SIGCHLD only for the embedded server's tracer thread, which a
    // tracee's stop then wakes directly.
    utrace_engines::sys::Waker::block_sigchld();
    // Several servers: one thread drives every connection (no server runs
    // here, and handing answers between two workers cost more than it
    // saved: 16 servers' `ps` took about 5 % less).
    let several = fanout::servers(&cli.server).len() > 1;
    let built = if several {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        // One worker: a command serves one user, and its client's and its
        // embedded server's tasks then meet on one thread instead of
        // handing each message to the other worker (gdb's `stepi` through
        // `utrace gdb`: 0.48-0.65 ms with two workers, 0.33-0.53 ms with
        // one; a breakpoint hit 1.15-1.32 ms, 0.80-0.88 ms).
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(1).enable_all();
        // The worker carries every message between the command and the
        // server it embeds: while they come close together, it looks for
        // the next before it sleeps (utrace_client::spin).
        b.on_thread_park(utrace_client::spin::before_park)
            .on_thread_unpark(utrace_client::spin::after_unpark);
        b.build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            say!("utrace: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(run(cli));
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => exit::finish(code),
        Err(msg) => {
            say!("utrace: {msg}");
            exit::finish(1)
        }
    }
}

/// Write a command's output. A reader that went away (`utrace info | head`)
/// is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("writing to standard output failed: {e}")),
    }
}

/// Connect, run the command, and stop an embedded server.
async fn run(cli: Cli) -> Result<u8, String> {
    // A batch's input is read before connecting: a bad one is a usage
    // error, and attaches to nothing.
    let ops = match &cli.command {
        Command::Batch(b) => match batch::load(b.input.as_ref()) {
            Ok(ops) => ops,
            Err(msg) => {
                say!("utrace: {msg}");
                return Ok(2);
            }
        },
        _ => Vec::new(),
    };
    // So is a probe's program: one that does not compile probes nothing.
    let prepared = match &cli.command {
        Command::Probe(p) => match probe::prepare(p) {
            Ok(p) => Some(p),
            Err(msg) => {
                say!("utrace: {msg}");
                return Ok(2);
            }
        },
        _ => None,
    };
    let tls = match (&cli.tls_ca, &cli.tls_cert, &cli.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(utrace_client::TlsOptions {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
            domain: None,
        }),
        (None, None, None) => None,
        _ => return Err("--tls-ca, --tls-cert and --tls-key go together".into()),
    };
    let servers = fanout::servers(&cli.server);
    if servers.len() > 1 {
        return fanout::run(servers, tls, cli.command, prepared).await;
    }
    let mut conn = Connection::open(servers.first().map(String::as_str), tls.as_ref()).await?;
    let result = command(&mut conn, cli.command, ops, prepared).await;
    conn.close().await;
    result
}

/// Run `cmd`; `ops` are a `batch` command's, read beforehand, and
/// `prepared` a `probe` command's compiled program.
async fn command(
    conn: &mut Connection,
    cmd: Command,
    ops: Vec<utrace_client::pb::Op>,
    prepared: Option<probe::Prepared>,
) -> Result<u8, String> {
    match cmd {
        Command::Probe(_) => match prepared {
            Some(p) => probe::run(&mut [conn], p).await,
            None => Err("probe: the program was not compiled".into()),
        },
        Command::Batch(b) => batch::run(conn, &b, ops).await,
        Command::Mem { cmd } => mem::run(conn, cmd).await,
        Command::Regs(r) => regs::run(conn, r).await,
        Command::Break(b) => brk::run(conn, &b).await,
        Command::Gdb(g) => gdb::run(conn, g).await,
        Command::Trace(t) => {
            let opts = t.into_options()?;
            trace::run(conn, opts).await
        }
        Command::Top(t) => {
            if conn.is_embedded() {
                return Err(format!(
                    "top: no utraced daemon listens on {}: start one, or name a server with --server",
                    utraced::default_socket().display()
                ));
            }
            let node = top::Node {
                name: conn.uri.clone(),
                client: conn.client.clone(),
            };
            top::run(vec![node], t).await
        }
        Command::Ps { pid } => {
            let tasks = conn
                .client
                .list_tasks(pid.unwrap_or(0))
                .await
                .map_err(|s| s.message().to_string())?;
            if tasks.is_empty() && conn.is_embedded() {
                say!(
                    "utrace: no utraced daemon listens on {}; this embedded server traces nothing",
                    utraced::default_socket().display()
                );
            }
            write_stdout(show::tasks_table(&tasks).as_bytes())?;
            Ok(0)
        }
        Command::Info { json } => {
            let info = conn
                .client
                .server_info()
                .await
                .map_err(|s| s.message().to_string())?;
            let text = if json {
                show::info_json(&info, &conn.uri, conn.is_embedded())
            } else {
                show::info_text(&info, &conn.uri, conn.is_embedded())
            };
            write_stdout(text.as_bytes())?;
            Ok(0)
        }
        Command::Completions { .. } => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
