//! `utrace gdb`: a GDB remote-protocol server for a process that others may
//! trace at the same time (see `utrace_client::gdb`).
//!
//! ```text
//! gdb PROG -ex 'target remote | utrace gdb --stdio -p PID'
//! gdb PROG -ex 'target remote | utrace gdb --stdio -- PROG ARGS'
//! utrace gdb --listen 127.0.0.1:2345 -p PID      # then: target remote :2345
//! gdb -ex 'target extended-remote | utrace gdb --stdio --multi' \
//!     -ex 'set remote exec-file /bin/ls' -ex run     # or: attach PID
//! ```

use std::io::IsTerminal;

use clap::Args;
use tracing::{debug, warn};
use utrace_client::gdb::{prepare, serve_with, Ended, Options, What};

use crate::server::Connection;

/// `utrace gdb`.
#[derive(Args, Debug)]
#[command(
    override_usage = "utrace gdb (--stdio | --listen ADDR) [--multi] (-p PID | [--] CMD [ARGS]...)"
)]
pub struct GdbCmd {
    /// Serve one debugger on standard input and output, for gdb's
    /// `target remote | utrace gdb --stdio …` (the program's own output
    /// then goes to standard error, its input is /dev/null).
    #[arg(long, conflicts_with = "listen", required_unless_present = "listen")]
    pub stdio: bool,
    /// Listen for debuggers on this TCP address (`127.0.0.1:2345`; port 0
    /// picks one, printed on stderr); each connection is a session of its
    /// own, several at once. From this machine, only your uid's (and
    /// root's; run through sudo, also the uid that ran sudo) connections
    /// are served: another local user's are closed (gdbserver serves
    /// anyone). One from another host cannot be
    /// checked and debugs the process with your rights: keep it on
    /// loopback, or tunnel it (ssh -L).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// As gdbserver --multi, for gdb's `target extended-remote`: the
    /// session outlives its process (its exit, `kill`, `detach`), and gdb
    /// may `run` a program (`set remote exec-file PROG`, else the CMD
    /// given here) and `attach PID`, again and again. With neither -p nor
    /// CMD, the session starts with no process. With --listen, a debugger
    /// that connects (yours, or one from another host) may then run
    /// programs and attach to any process you may trace, as you (as with
    /// gdbserver --multi): loopback or a tunnel only.
    #[arg(long)]
    pub multi: bool,
    /// Start the program with address space layout randomization on
    /// (by default it is off, as gdbserver and gdb start a program: the
    /// same addresses at every run; gdb's `set disable-randomization`
    /// decides for each `run` of `--multi`).
    #[arg(long)]
    pub no_disable_randomization: bool,
    /// Debug this running process (all its threads).
    #[arg(short = 'p', value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,
    /// The program to start (held at its first instruction) and its
    /// arguments.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present_any = ["pid", "multi"]
    )]
    pub command: Vec<String>,
}

/// The program to start. An embedded server's gets this process's stdio
/// (stdout is stderr with `--stdio`: stdout carries the protocol); a
/// daemon's writes through pipes, printed here as it comes.
fn spawn_what(conn: &Connection, cmd: &GdbCmd) -> What {
    let (env, cwd) = crate::trace::own_env_and_cwd();
    What::Spawn {
        argv: cmd.command.clone(),
        env,
        cwd,
        stdio: if conn.is_embedded() {
            utrace_client::pb::Stdio::Default
        } else {
            utrace_client::pb::Stdio::Pipes
        },
        disable_aslr: !cmd.no_disable_randomization,
    }
}

/// What a session starts with (the process given, or nothing with
/// `--multi`), and its options: with `--multi`, `run` starts the program
/// given (its argv may be empty: gdb names one) with our environment.
fn what_and_options(conn: &Connection, cmd: &GdbCmd) -> (What, Options) {
    let what = match cmd.pid {
        Some(pid) => What::Attach(pid),
        None if cmd.command.is_empty() => What::Nothing,
        None => spawn_what(conn, cmd),
    };
    let opts = Options {
        multi: cmd.multi,
        program: cmd.multi.then(|| spawn_what(conn, cmd)),
    };
    (what, opts)
}

/// Standard input and output become the debugger's alone: the protocol
/// gets copies of them, and descriptors 0 and 1 become /dev/null and
/// standard error, which a program started here inherits.
fn take_stdio() -> Result<(std::fs::File, std::fs::File), String> {
    use std::os::fd::AsFd;
    let input =
        nix::unistd::dup(std::io::stdin().as_fd()).map_err(|e| format!("dup stdin: {e}"))?;
    let output =
        nix::unistd::dup(std::io::stdout().as_fd()).map_err(|e| format!("dup stdout: {e}"))?;
    for fd in [&input, &output] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| format!("close-on-exec: {e}"))?;
    }
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("dup2 stdin: {e}"))?;
    nix::unistd::dup2_stdout(std::io::stderr().as_fd()).map_err(|e| format!("dup2 stdout: {e}"))?;
    Ok((input.into(), output.into()))
}

/// The next debugger on `listener` that may debug as this user (see
/// [`may_connect`]): its socket to read and to write (no Nagle delay: the
/// protocol is small packets, each answered), and who. Others are closed
/// at once, said on stderr.
fn accept(
    listener: &std::net::TcpListener,
) -> Result<
    (
        std::net::TcpStream,
        std::net::TcpStream,
        std::net::SocketAddr,
    ),
    String,
> {
    loop {
        let (sock, peer) = tokio::task::block_in_place(|| listener.accept())
            .map_err(|e| format!("accept: {e}"))?;
        if let Err(why) = may_connect(&sock, peer) {
            crate::say!("utrace: refused a debugger from {peer}: {why}");
            continue;
        }
        debug!(%peer, "debugger connected");
        let _ = sock.set_nodelay(true);
        let read = sock.try_clone().map_err(|e| format!("socket: {e}"))?;
        return Ok((read, sock, peer));
    }
}

/// Whether the debugger on `sock` may debug with this user's rights. A
/// connection from this machine is checked as the server checks its own
/// TCP clients: the socket at the other end belongs to a uid, and only
/// this user's (or root's) may connect, so another local user cannot
/// reach, through this port, a process it could not trace itself
/// (gdbserver lets anyone who connects in). A connection from another
/// host cannot be checked: listening beyond loopback is the user's
/// choice (`--listen`'s help says so).
fn may_connect(sock: &std::net::TcpStream, peer: std::net::SocketAddr) -> Result<(), String> {
    let local = sock.local_addr().map_err(|e| format!("its address: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    // Run through sudo, root serves the user who ran sudo too (`sudo
    // utrace gdb --listen …`, then gdb as oneself, as with gdbserver).
    let sudoer = (me == 0)
        .then(|| std::env::var("SUDO_UID").ok()?.parse::<u32>().ok())
        .flatten();
    match utraced::tcp_peer_uid(peer, local) {
        Some(uid) if uid == me || uid == 0 || Some(uid) == sudoer => Ok(()),
        Some(uid) if me == 0 => Err(match sudoer {
            Some(s) => format!(
                "its socket is uid {uid}'s; only root's and uid {s}'s (who ran sudo) may debug \
                 through this port"
            ),
            None => format!("its socket is uid {uid}'s; only root's may debug through this port"),
        }),
        Some(uid) => Err(format!(
            "its socket is uid {uid}'s; only uid {me}'s and root's may debug through this port"
        )),
        None if peer.ip().is_loopback() => Err(
            "no socket of this machine's is its end, so its user is unknown (it left at once?)"
                .into(),
        ),
        None => Ok(()),
    }
}

/// SIGINT and SIGTERM, caught from its making on.
struct Interrupts {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

/// What came first while waiting for a debugger.
enum Came {
    /// A debugger: its socket to read and to write.
    Debugger(std::net::TcpStream, std::net::TcpStream),
    /// This signal.
    Signal(i32),
}

impl Interrupts {
    fn new() -> Result<Interrupts, String> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Interrupts {
            int: signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?,
            term: signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?,
        })
    }

    /// The next debugger on `listener`, or the signal that came first.
    async fn accept(mut self, listener: &std::net::TcpListener) -> Result<Came, String> {
        let listener = listener
            .try_clone()
            .map_err(|e| format!("listening socket: {e}"))?;
        let accepted = blocking(move || accept(&listener));
        tokio::select! {
            r = accepted => r?.map(|(read, write, _)| Came::Debugger(read, write)),
            _ = self.int.recv() => Ok(Came::Signal(libc::SIGINT)),
            _ = self.term.recv() => Ok(Came::Signal(libc::SIGTERM)),
        }
    }
}

/// `f` on the runtime's blocking pool (the bridge blocks, and may call
/// the runtime from there).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the bridge failed: {e}"))
}

/// One debugging session, to its end, on a blocking thread.
async fn serve_one(
    rt: tokio::runtime::Handle,
    conn: &Connection,
    what: What,
    opts: Options,
    input: utrace_client::gdb::DebuggerInput,
    output: Box<dyn std::io::Write + Send>,
) -> Result<u8, String> {
    let client = conn.client.clone();
    let ended = blocking(move || serve_with(rt, client, what, opts, input, output))
        .await?
        .map_err(|e| e.to_string())?;
    debug!(?ended, "debugging session over");
    Ok(0)
}

/// Exit status: 0 when the debugger detached, killed, or the program
/// exited; 1 when the session could not start or failed.
pub async fn run(conn: &mut Connection, cmd: GdbCmd) -> Result<u8, String> {
    // A debugger's packet, the server's answer and the program's next stop
    // come a few hundred microseconds apart: the threads passing them along
    // (this command's, and the tracer's of the server it embeds) look that
    // long before they sleep (`UTRACE_LOOK_US` still decides when set).
    utrace_client::spin::set_default(utrace_client::spin::DEBUGGER_SPIN);
    utrace_engines::set_default_look(utrace_client::spin::DEBUGGER_SPIN);
    let rt = tokio::runtime::Handle::current();
    if cmd.stdio {
        if std::io::stdin().is_terminal() {
            crate::say!(
                "utrace: --stdio speaks the GDB remote protocol on stdin/stdout; run it from gdb: \
                 target remote | utrace gdb --stdio …"
            );
        }
        let (input, output) = take_stdio()?;
        let (what, opts) = what_and_options(conn, &cmd);
        return serve_one(rt, conn, what, opts, input.into(), Box::new(output)).await;
    }
    let addr = cmd.listen.as_deref().unwrap_or("127.0.0.1:0");
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("listening socket: {e}"))?;
    crate::say!("utrace: listening for debuggers on {local}");
    if cmd.multi {
        // A session per connection, each with what was given (or
        // nothing), several at once, until interrupted.
        let (what, opts) = what_and_options(conn, &cmd);
        loop {
            let (read, sock, peer) = accept(&listener)?;
            let (client, rt, what, opts) =
                (conn.client.clone(), rt.clone(), what.clone(), opts.clone());
            std::thread::spawn(move || {
                match serve_with(rt, client, what, opts, read, Box::new(sock)) {
                    Ok(e) => debug!(%peer, ?e, "debugging session over"),
                    Err(e) => warn!(%peer, "debugging session failed: {e}"),
                }
            });
        }
    }
    let Some(pid) = cmd.pid else {
        // A program to start, started now and held at its first
        // instruction, as gdbserver starts it before a debugger comes
        // (others may trace it meanwhile); one session, the first
        // debugger's.
        // (Ctrl-C from here on is ours: see below.)
        let signals = Interrupts::new()?;
        let what = spawn_what(conn, &cmd);
        let client = conn.client.clone();
        let rt2 = rt.clone();
        let prepared = blocking(move || prepare(rt2, client, what, Options::default()))
            .await?
            .map_err(|e| e.to_string())?;
        if let Some(pid) = prepared.pid() {
            crate::say!(
                "utrace: process {} created; pid = {pid}",
                cmd.command.first().map_or("", String::as_str)
            );
        }
        // Interrupted before a debugger came: the program nobody saw goes,
        // and utrace dies of the same signal.
        let (read, write) = match signals.accept(&listener).await? {
            Came::Debugger(read, write) => (read, write),
            Came::Signal(signo) => {
                prepared.abandon();
                crate::exit::die_by(signo);
                return Ok(128 + signo as u8);
            }
        };
        let ended = blocking(move || prepared.serve(read, Box::new(write)))
            .await?
            .map_err(|e| e.to_string())?;
        debug!(?ended, "debugging session over");
        return Ok(0);
    };
    // A running process: a session per connection, several at once, until
    // interrupted.
    loop {
        let (read, sock, peer) = accept(&listener)?;
        let client = conn.client.clone();
        let rt = rt.clone();
        std::thread::spawn(move || {
            match serve_with(
                rt,
                client,
                What::Attach(pid),
                Options::default(),
                read,
                Box::new(sock),
            ) {
                Ok(Ended::Exited) => crate::say!("utrace: process {pid} exited"),
                Ok(e) => debug!(%peer, ?e, "debugging session over"),
                Err(e) => warn!(%peer, "debugging session failed: {e}"),
            }
        });
    }
}
