//! # utraced
//!
//! The gRPC server over the engine layer: `utrace.v1.Tracer`, gRPC
//! reflection (v1 and v1alpha) and `grpc.health.v1`, on a Unix socket (and,
//! only when asked, plaintext TCP on loopback). Each client's attach or spawn
//! becomes a remote engine in the core; see `remote.rs`.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let config = utraced::Config::default();
//! utraced::serve(config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod authority;
mod budget;
mod convert;
#[doc(hidden)]
pub mod fuzzing;
mod info;
mod listen;
mod local;
pub mod metrics;
mod metrics_http;
mod peer;
mod probe;
mod registry;
mod remote;
mod service;
mod session;
pub mod sink;
mod sockdiag;
mod stdio;
mod tls;
mod unix_io;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::info;
use utrace_engines::Tracer;
use utrace_proto::server::tracer_server::TracerServer;

pub use crate::listen::{activated, default_socket, ListenAddr, ListenError};
pub use crate::local::{Local, LocalError};
pub use crate::peer::{tcp_peer_uid, Peer, Transport};
pub use crate::tls::{TlsError, TlsFiles};

/// Bounds on what clients may ask for.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Reports queued per subscriber by default.
    pub queue_len: usize,
    /// The largest queue a client may ask for.
    pub max_queue_len: usize,
    /// Ops in one batch.
    pub max_batch_ops: usize,
    /// Bytes one read or write op may move.
    pub max_op_bytes: usize,
    /// Bytes one batch may move in all.
    pub max_batch_bytes: usize,
    /// How long a batch may wait for its task to stop and run.
    pub batch_timeout: std::time::Duration,
    /// How long a sync engine's held report waits for its decision when
    /// the engine does not say (`EngineSpec.deadline_ms`).
    pub decision_deadline: std::time::Duration,
    /// When more than one async report stream (`Events`, `Trace`) is busy,
    /// how long each lets reports gather after sending some, so that it
    /// sends many per write; zero sends each at once. A report to an idle
    /// stream, or to the only busy one, is never delayed.
    pub report_window: std::time::Duration,
    /// Open connections per uid (privileged clients, root with every
    /// capability the server has, are not counted).
    pub max_conns_per_uid: usize,
    /// Engines per connection and per uid (privileged clients are not
    /// counted).
    pub max_engines_per_conn: usize,
    pub max_engines_per_uid: usize,
    /// Bytes of reports (expedited data included) queued for one uid's
    /// streams, all engines together; past it, reports are dropped and
    /// counted.
    pub max_queued_bytes_per_uid: usize,
    /// Bytes moved by one uid's batches running at once.
    pub max_batch_bytes_in_flight_per_uid: usize,
    /// Calls (streams) open at once on one connection.
    pub max_streams_per_conn: u32,
}

impl Limits {
    /// The largest request a client may send: a batch's writes at most,
    /// with room for its ops' framing. Ops are counted while a request is
    /// decoded, so a request of many tiny ops is refused before it grows.
    pub fn max_request_bytes(&self) -> usize {
        self.max_batch_bytes
            .saturating_add(self.max_batch_ops.saturating_mul(32))
            .saturating_add(1 << 20)
    }

    /// The largest reply: a batch's reads, with their framing.
    pub fn max_reply_bytes(&self) -> usize {
        self.max_batch_bytes
            .saturating_add(self.max_batch_ops.saturating_mul(48))
            .saturating_add(1 << 20)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_len: 4096,
            max_queue_len: 1 << 20,
            max_batch_ops: 65_536,
            max_op_bytes: 64 << 20,
            max_batch_bytes: 256 << 20,
            batch_timeout: std::time::Duration::from_secs(10),
            decision_deadline: std::time::Duration::from_secs(30),
            report_window: std::time::Duration::from_millis(1),
            max_conns_per_uid: 256,
            max_engines_per_conn: 1024,
            max_engines_per_uid: 4096,
            max_queued_bytes_per_uid: 256 << 20,
            max_batch_bytes_in_flight_per_uid: 1 << 30,
            max_streams_per_conn: 256,
        }
    }
}

/// What to serve and where.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: Vec<ListenAddr>,
    /// Listening Unix sockets handed over already bound (systemd socket
    /// activation: [`activated`]), served besides `listen`; their files are
    /// left in place when the server stops (their owner made them).
    pub inherited: Vec<(PathBuf, Arc<std::os::unix::net::UnixListener>)>,
    pub limits: Limits,
    /// Uids that may only observe: their batches' control ops (writes,
    /// register changes, control) are refused.
    pub observe_only: Vec<u32>,
    /// Certificates and identities for `tls://` listeners.
    pub tls: Option<TlsFiles>,
    /// The breakpoint keeper's journal (see `utrace_engines::journal`): if
    /// set, breakpoint bytes are restored even when the server is killed.
    pub journal: Option<Arc<utrace_engines::journal::Journal>>,
    /// Where to serve OpenMetrics (`GET /metrics`, plain HTTP; see
    /// [`metrics`]). Anyone who reaches the address reads them: counts,
    /// and the uids that hold connections and engines.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![ListenAddr::Unix(default_socket())],
            inherited: Vec::new(),
            limits: Limits::default(),
            observe_only: Vec::new(),
            tls: None,
            journal: None,
            metrics_listen: None,
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("starting the tracer failed: {0}")]
    Tracer(#[from] utrace_engines::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("cannot listen for metrics on {addr}: {source}; choose another address with --metrics-listen")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Serve until `shutdown` completes; then detach every engine, so every
/// tracee runs on unharmed, and return.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(config).await?.run(shutdown).await
}

/// A server whose sockets are bound (clients may connect from now on) and
/// whose tracer thread runs; [`Server::run`] serves them.
pub struct Server {
    tracer: Tracer,
    registry: Arc<registry::Registry>,
    svc: Arc<service::TracerService>,
    bound: Vec<(ListenAddr, listen::Listener)>,
    /// Socket files handed over (socket activation): left in place.
    inherited: Vec<PathBuf>,
    stopping: tokio::sync::watch::Sender<bool>,
    /// The metrics endpoint's socket, if asked for.
    metrics: Option<tokio::net::TcpListener>,
}

impl Server {
    /// Start the tracer thread and bind every listener.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        raise_fd_limit();
        // Requests are checked as they arrive: no repeated field much longer
        // than a batch may be is decoded at all.
        utrace_proto::validate::allow_repeated(config.limits.max_batch_ops.saturating_mul(4));
        let mut bound = Vec::new();
        // Loaded once, for the first tls:// listener.
        let mut tls: Option<(tokio_rustls::TlsAcceptor, Arc<tls::Identities>)> = None;
        for addr in &config.listen {
            // A TCP port 0 binds a free port: the address kept says which.
            let local =
                |l: &tokio::net::TcpListener, a: std::net::SocketAddr| l.local_addr().unwrap_or(a);
            let b = match addr {
                ListenAddr::Unix(path) => (
                    addr.clone(),
                    listen::Listener::Unix(listen::bind_unix(path)?),
                ),
                ListenAddr::Tcp(a) => {
                    let l = listen::bind_tcp(*a).await?;
                    (ListenAddr::Tcp(local(&l, *a)), listen::Listener::Tcp(l))
                }
                ListenAddr::Tls(a) => {
                    let (acceptor, ids) = match &tls {
                        Some(t) => t.clone(),
                        None => {
                            let files = config.tls.as_ref().ok_or(tls::TlsError::Missing)?;
                            tls.insert(tls::load(files)?).clone()
                        }
                    };
                    let tcp = listen::bind_tcp(*a).await?;
                    (
                        ListenAddr::Tls(local(&tcp, *a)),
                        listen::Listener::Tls { tcp, acceptor, ids },
                    )
                }
            };
            bound.push(b);
        }
        let mut inherited = Vec::new();
        for (path, l) in &config.inherited {
            let err = |source| ListenError::Socket {
                path: path.clone(),
                source,
            };
            let std_l = l.try_clone().map_err(err)?;
            std_l.set_nonblocking(true).map_err(err)?;
            let l = tokio::net::UnixListener::from_std(std_l).map_err(err)?;
            bound.push((ListenAddr::Unix(path.clone()), listen::Listener::Unix(l)));
            inherited.push(path.clone());
        }
        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let tracer = Tracer::with_options(utrace_engines::TracerOptions {
            journal: config.journal.clone(),
            ..Default::default()
        })?;
        let registry = Arc::new(registry::Registry::new(
            tracer.clone(),
            tokio::runtime::Handle::current(),
            budget::Budgets::new(config.limits),
        ));
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        let svc = Arc::new_cyclic(|this| service::TracerService {
            tracer: tracer.clone(),
            registry: Arc::clone(&registry),
            limits: config.limits,
            observe_only: config.observe_only.clone(),
            listen: bound.iter().map(|(a, _)| a.to_string()).collect(),
            this: this.clone(),
            busy_streams: Default::default(),
            stopping: stopping_rx,
            sinks: Default::default(),
        });
        Ok(Server {
            tracer,
            registry,
            svc,
            bound,
            inherited,
            stopping,
            metrics,
        })
    }

    /// Where the metrics are served (a port 0 resolved), if they are.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The addresses it listens on (a TCP port 0 resolved to the port
    /// bound).
    pub fn local_addrs(&self) -> Vec<ListenAddr> {
        self.bound.iter().map(|(a, _)| a.clone()).collect()
    }

    /// Serve until `shutdown` completes, then detach everything.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            tracer,
            registry,
            svc,
            bound,
            inherited,
            stopping,
            metrics,
        } = self;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(utrace_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(utrace_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<TracerServer<service::TracerService>>()
            .await;

        let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let mut servers = tokio::task::JoinSet::new();
        let mut sockets = Vec::new();
        let limits = svc.limits;
        for (addr, listener) in bound {
            let router = tonic::transport::Server::builder()
                // Large writes arrive in frames of up to 1 MiB, not 16 KiB.
                .max_frame_size(1 << 20)
                .max_concurrent_streams(limits.max_streams_per_conn)
                .add_service(
                    TracerServer::from_arc(Arc::clone(&svc))
                        .max_decoding_message_size(limits.max_request_bytes())
                        .max_encoding_message_size(limits.max_reply_bytes()),
                )
                .add_service(health.clone())
                .add_service(reflection_v1.clone())
                .add_service(reflection_v1alpha.clone());
            let mut stop = stop_tx.subscribe();
            info!(listen = %addr, "serving");
            if let ListenAddr::Unix(path) = &addr {
                sockets.push(path.clone());
            }
            let incoming = listen::incoming(listener, Arc::clone(&registry));
            servers.spawn(async move {
                router
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stop.recv().await;
                    })
                    .await
            });
        }
        if let Some(l) = metrics {
            let mut stop = stop_tx.subscribe();
            if let Ok(a) = l.local_addr() {
                info!(metrics = %format!("http://{a}/metrics"), "serving OpenMetrics");
            }
            let svc = Arc::clone(&svc);
            tokio::spawn(metrics_http::serve(l, svc, async move {
                let _ = stop.recv().await;
            }));
        }
        let mut failed = None;
        tokio::select! {
            _ = shutdown => info!("shutting down: detaching every engine"),
            Some(r) = servers.join_next() => {
                if let Ok(Err(e)) = r {
                    failed = Some(e);
                }
            }
        }
        // No new client finds the sockets; sessions end (with UNAVAILABLE),
        // connections are told to go.
        for path in sockets.iter().filter(|p| !inherited.contains(p)) {
            let _ = std::fs::remove_file(path);
        }
        let _ = stopping.send(true);
        let _ = stop_tx.send(());
        // Detach every engine: streams end, tracees run on.
        let _ = tracer.shutdown().await;
        // The tracefs uprobes of probes go after their last perf event is
        // closed (closer threads, an RCU wait each): before this process
        // ends, so that none is left defined.
        let _ = tokio::task::spawn_blocking(|| {
            utrace_engines::tracefs_wait_deleted(std::time::Duration::from_secs(2))
        })
        .await;
        let waited = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            while servers.join_next().await.is_some() {}
        })
        .await;
        if waited.is_err() {
            info!("connections still open after 1 s: closing them");
            servers.abort_all();
        }
        info!("stopped");
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Raise the soft limit of open descriptors to the hard limit: each client
/// connection holds one (budgets bound them per uid).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// A server running inside another program (the `utrace` command uses one
/// when no daemon is listening), on a private socket in a fresh 0700
/// directory. Dropping it stops the server.
pub struct Embedded {
    dir: PathBuf,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    sinks: Arc<sink::Sinks>,
    svc: Arc<service::TracerService>,
    registry: Arc<registry::Registry>,
}

impl Embedded {
    /// Start on the current tokio runtime.
    pub async fn start() -> Result<Embedded, ServeError> {
        Self::start_with(|_| {}).await
    }

    /// Start with a configuration adjusted by `adjust` (limits, observe-only
    /// uids); the listen address is always the private socket.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Result<Embedded, ServeError> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let mut dir = None;
        for i in 0..100u32 {
            let cand = base.join(format!("utrace-{}-{i}", std::process::id()));
            if std::fs::DirBuilder::new().mode(0o700).create(&cand).is_ok() {
                dir = Some(cand);
                break;
            }
        }
        let dir = dir.ok_or_else(|| ListenError::Socket {
            path: base.clone(),
            source: std::io::Error::other("cannot create a private directory"),
        })?;
        let socket = dir.join("utraced.sock");
        let mut config = Config {
            listen: vec![ListenAddr::Unix(socket.clone())],
            ..Config::default()
        };
        adjust(&mut config);
        config.listen = vec![ListenAddr::Unix(socket.clone())];
        let server = Server::bind(config).await?;
        let sinks = Arc::clone(&server.svc.sinks);
        let svc = Arc::clone(&server.svc);
        let registry = Arc::clone(&server.registry);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Ok(Embedded {
            dir,
            socket,
            stop: Some(tx),
            task: Some(task),
            sinks,
            svc,
            registry,
        })
    }

    /// Hand the reports of one `Trace` call of this program to `f`, on
    /// the tracer thread, each before the thread that made it resumes
    /// (strace's order, and a slow `f` slows the program: nothing is
    /// dropped). Name the sink in the call with [`sink::LocalSink::apply`];
    /// `f` gets the call's `attached` event first, and the call's stream
    /// only ends with the trace. See [`sink`].
    pub fn local_sink(&self, f: sink::SinkFn) -> sink::LocalSink {
        sink::LocalSink::new(self.sinks.add(f))
    }

    /// A new connection of this program to the server that does not go
    /// through its socket (see [`Local`]): what the `utrace` command's own
    /// calls use. Its engines detach when its last clone is dropped.
    pub fn local(&self) -> Result<Local, LocalError> {
        Local::open(&self.svc, &self.registry)
    }

    /// The URI clients connect to.
    pub fn uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Stop the server, detaching every engine, and wait for it.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            if let Ok(r) = t.await {
                r?;
            }
        }
        Ok(())
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}
