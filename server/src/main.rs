//! `utraced`: the shared tracer, served over gRPC.

use clap::Parser;
use tracing::error;
use utraced::{default_socket, Config, Limits, ListenAddr};

/// utraced: one ptrace tracer, shared by many engines and clients over gRPC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Where to listen (repeatable): unix:///PATH, or tcp://127.0.0.1:PORT with
    /// --insecure-tcp. Default: /run/utraced/utraced.sock as root, else
    /// $XDG_RUNTIME_DIR/utraced.sock.
    #[arg(long = "listen", value_name = "URI")]
    listen: Vec<String>,
    /// Allow a plaintext TCP listener (loopback addresses only). Every local
    /// user can then connect; each is authorized as the uid owning its socket.
    #[arg(long)]
    insecure_tcp: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "plain")]
    log_format: LogFormat,
    /// Reports queued per subscriber before the oldest are dropped.
    #[arg(long, default_value_t = Limits::default().queue_len)]
    queue_len: usize,
    /// The largest queue a client may ask for (EngineSpec.queue_len).
    #[arg(long, default_value_t = Limits::default().max_queue_len)]
    max_queue_len: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Plain,
    Json,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
    if listen.is_empty() {
        listen.push(ListenAddr::Unix(default_socket()));
    }
    let config = Config {
        listen,
        limits: Limits {
            queue_len: args.queue_len.max(1),
            max_queue_len: args.max_queue_len.max(1),
        },
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
