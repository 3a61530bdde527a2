//! `utraced`: the shared tracer, served over gRPC.

use clap::Parser;
use tracing::error;
use utraced::{default_socket, Config, Limits, ListenAddr};

/// utraced: one ptrace tracer, shared by many engines and clients over gRPC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Where to listen (repeatable): unix:///PATH; tls://ADDR:PORT (with
    /// --tls-cert, --tls-key, --tls-client-ca, --tls-identities); or
    /// tcp://127.0.0.1:PORT with --insecure-tcp. Default:
    /// /run/utraced/utraced.sock as root, else $XDG_RUNTIME_DIR/utraced.sock.
    #[arg(long = "listen", value_name = "URI")]
    listen: Vec<String>,
    /// Allow a plaintext TCP listener (loopback addresses only). Every local
    /// user can then connect; each is authorized as the uid owning its socket.
    #[arg(long)]
    insecure_tcp: bool,
    /// For tls:// listeners: the server's certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<std::path::PathBuf>,
    /// For tls:// listeners: the server's private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<std::path::PathBuf>,
    /// For tls:// listeners: the CA certificates that sign client
    /// certificates (PEM); a client without one is refused at the handshake.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// For tls:// listeners: which uid each client certificate acts as,
    /// one `CN=NAME UID [observe-only]` or `SAN=NAME UID [observe-only]`
    /// per line.
    #[arg(long, value_name = "FILE")]
    tls_identities: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "plain")]
    log_format: LogFormat,
    /// Reports queued per subscriber; when full, new reports are dropped
    /// (and counted for the client).
    #[arg(long, default_value_t = Limits::default().queue_len)]
    queue_len: usize,
    /// The largest queue a client may ask for (EngineSpec.queue_len).
    #[arg(long, default_value_t = Limits::default().max_queue_len)]
    max_queue_len: usize,
    /// Ops in one Batch call.
    #[arg(long, default_value_t = Limits::default().max_batch_ops)]
    max_batch_ops: usize,
    /// Bytes one read or write op may move.
    #[arg(long, default_value_t = Limits::default().max_op_bytes)]
    max_op_bytes: usize,
    /// Bytes one Batch call may move in all.
    #[arg(long, default_value_t = Limits::default().max_batch_bytes)]
    max_batch_bytes: usize,
    /// Seconds a batch may wait for its task to stop.
    #[arg(long, default_value_t = Limits::default().batch_timeout.as_secs())]
    batch_timeout_secs: u64,
    /// Milliseconds a sync engine's held report waits for the client's
    /// decision (when the engine's deadline_ms is unset); then its default
    /// action (resume) applies.
    #[arg(long, default_value_t = Limits::default().decision_deadline.as_millis() as u64)]
    decision_deadline_ms: u64,
    /// When several async report streams (Events, Trace) are busy, how
    /// long, in microseconds, each lets reports gather so that many go in
    /// one write; a report to an idle stream, or to the only busy one, goes
    /// at once. 0: every report at once.
    #[arg(long, default_value_t = Limits::default().report_window.as_micros() as u64)]
    report_window_us: u64,
    /// Open connections per uid (a root client with every capability the
    /// server has is not counted). Past it a connection's calls fail with RESOURCE_EXHAUSTED
    /// for two seconds, then it is closed.
    #[arg(long, default_value_t = Limits::default().max_conns_per_uid)]
    max_conns_per_uid: usize,
    /// Engines one connection may hold.
    #[arg(long, default_value_t = Limits::default().max_engines_per_conn)]
    max_engines_per_conn: usize,
    /// Engines one uid may hold, over all its connections.
    #[arg(long, default_value_t = Limits::default().max_engines_per_uid)]
    max_engines_per_uid: usize,
    /// Bytes of reports (expedited data included) queued for one uid's
    /// streams at once; past it, reports are dropped and counted.
    #[arg(long, default_value_t = Limits::default().max_queued_bytes_per_uid)]
    max_queued_bytes_per_uid: usize,
    /// Bytes one uid's batches may move while they run at once.
    #[arg(long, default_value_t = Limits::default().max_batch_bytes_in_flight_per_uid)]
    max_batch_bytes_in_flight_per_uid: usize,
    /// Calls (streams) open at once on one connection.
    #[arg(long, default_value_t = Limits::default().max_streams_per_conn)]
    max_streams_per_conn: u32,
    /// Serve OpenMetrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port
    /// 0 picks a free one, logged). Plain HTTP, readable by anyone who
    /// reaches the address: counts, and the uids holding connections and
    /// engines. Keep it on loopback or a private network.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// A uid that may only observe (repeatable): its batches may read memory
    /// and registers but not write, change registers, or control tasks.
    #[arg(long = "observe-only", value_name = "UID")]
    observe_only: Vec<u32>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Plain,
    Json,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // First, while this process has one thread: the keeper, which restores
    // breakpoint bytes if this server is killed.
    // SAFETY: no other thread exists yet (no runtime, no tracer).
    let journal = match unsafe { utrace_engines::journal::start_keeper() } {
        Ok(j) => Some(j),
        Err(e) => {
            eprintln!("utraced: warning: cannot start the breakpoint keeper ({e}); a crash could leave int3s in traced programs");
            None
        }
    };
    // SIGCHLD only for the tracer thread (which unblocks it): a tracee's
    // stop then wakes it directly, not another thread first.
    utrace_engines::sys::Waker::block_sigchld();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Plain => fmt.init(),
        LogFormat::Json => fmt.json().init(),
    }
    let mut listen = Vec::new();
    for uri in &args.listen {
        match ListenAddr::parse(uri, args.insecure_tcp) {
            Ok(a) => listen.push(a),
            Err(e) => {
                eprintln!("utraced: --listen {uri}: {e}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    // Socket activation (systemd's utraced.socket): the sockets come bound.
    let inherited = match utraced::activated() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("utraced: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if listen.is_empty() && inherited.is_empty() {
        listen.push(ListenAddr::Unix(default_socket()));
    }
    let inherited = inherited
        .into_iter()
        .map(|(p, l)| (p, std::sync::Arc::new(l)))
        .collect();
    let tls = match (
        args.tls_cert,
        args.tls_key,
        args.tls_client_ca,
        args.tls_identities,
    ) {
        (Some(cert), Some(key), Some(client_ca), Some(identities)) => Some(utraced::TlsFiles {
            cert,
            key,
            client_ca,
            identities,
        }),
        (None, None, None, None) => None,
        _ => {
            eprintln!("utraced: {}", utraced::TlsError::Missing);
            return std::process::ExitCode::from(2);
        }
    };
    let config = Config {
        journal,
        tls,
        listen,
        inherited,
        limits: Limits {
            queue_len: args.queue_len.max(1),
            max_queue_len: args.max_queue_len.max(1),
            max_batch_ops: args.max_batch_ops.max(1),
            max_op_bytes: args.max_op_bytes,
            max_batch_bytes: args.max_batch_bytes,
            batch_timeout: std::time::Duration::from_secs(args.batch_timeout_secs.max(1)),
            decision_deadline: std::time::Duration::from_millis(args.decision_deadline_ms.max(1)),
            report_window: std::time::Duration::from_micros(args.report_window_us),
            max_conns_per_uid: args.max_conns_per_uid.max(1),
            max_engines_per_conn: args.max_engines_per_conn.max(1),
            max_engines_per_uid: args.max_engines_per_uid.max(1),
            max_queued_bytes_per_uid: args.max_queued_bytes_per_uid,
            max_batch_bytes_in_flight_per_uid: args.max_batch_bytes_in_flight_per_uid,
            max_streams_per_conn: args.max_streams_per_conn.max(1),
        },
        observe_only: args.observe_only,
        metrics_listen: args.metrics_listen,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("utraced: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(utraced::serve(config, shutdown_signal()));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("utraced: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
