//! # utrace-client
//!
//! A typed async client for utraced (`utrace.v1`).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use utrace_client::{Client, pb};
//! use tokio_stream::StreamExt;
//!
//! let mut client = Client::connect("unix:///run/utraced/utraced.sock").await?;
//! let mut events = client
//!     .trace(pb::TraceRequest {
//!         target: Some(pb::trace_request::Target::Spawn(pb::SpawnRequest {
//!             argv: vec!["/bin/echo".into(), "hi".into()],
//!             ..Default::default()
//!         })),
//!         engine: Some(pb::EngineSpec { decode: true, ..Default::default() }),
//!     })
//!     .await?;
//! while let Some(ev) = events.next().await {
//!     println!("{:?}", ev?);
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use tonic::transport::{Endpoint, Uri};
use tonic::Streaming;

pub use tonic::{Code, Status};
pub use utrace_proto::v1 as pb;
/// The type of the protocol's `bytes` fields (`pb::Memory.data`…).
pub use utrace_proto::Bytes;

pub mod batch;
#[cfg(feature = "gdb")]
pub mod gdb;
pub mod session;
pub mod spin;
pub mod transport;
pub use batch::{
    Action, BatchBuilder, BatchResults, FailureKind, MemoryRead, OpFailure, OpOutcome, EFLAGS_TF,
};
pub use session::{Decision, Session, SessionError, SessionEvent};
pub use transport::Transport;

/// Why a connection could not be made; each names the address and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("malformed server address {0:?}: expected unix:///path/to/utraced.sock or http://127.0.0.1:PORT")]
    BadUri(String),
    #[error("no server at {0}: the socket does not exist (start utraced, or pass --server / UTRACE_SERVER)")]
    NoSocket(PathBuf),
    #[error("permission denied connecting to {0}: the socket is mode 0660; run as root or as a member of its group")]
    PermissionDenied(PathBuf),
    #[error("nothing listens on {0} (a stale socket file? restart utraced)")]
    Refused(PathBuf),
    #[error("refusing the server on {path}: it runs as uid {owner}{name}, neither root nor you, and would see every request you send (your environment included); use a server started by root or by yourself")]
    ForeignServer {
        path: PathBuf,
        owner: u32,
        /// ` (name)` when the user database knows the uid.
        name: String,
    },
    #[error("{0} is a TLS server: give the CA, and your certificate and key (--tls-ca, --tls-cert, --tls-key)")]
    NeedsTls(String),
    #[error("{path}: {why}")]
    TlsFile { path: PathBuf, why: String },
    #[error("cannot connect to {addr}: {source}")]
    Transport {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("cannot start HTTP/2 with {addr}: {source}")]
    Handshake { addr: String, source: hyper::Error },
}

/// TLS for an `https://` server: the CA that signed the server's
/// certificate, and this client's certificate and key (the server maps the
/// certificate to the uid it acts as).
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// CA certificate(s) that sign the server's certificate (PEM).
    pub ca: PathBuf,
    /// This client's certificate chain (PEM).
    pub cert: PathBuf,
    /// This client's private key (PEM).
    pub key: PathBuf,
    /// The name to check the server's certificate for (default: the host
    /// in the URI).
    pub domain: Option<String>,
}

/// The authority HTTP/2 requires in every request, unused where the
/// transport names the server (a Unix socket, the in-process door).
const UNUSED_ORIGIN: &str = "http://utraced.invalid";

/// A connection to utraced.
#[derive(Clone, Debug)]
pub struct Client {
    inner: pb::tracer_client::TracerClient<Transport>,
}

impl Client {
    /// Connect to `unix:///path` or `http://host:port`.
    pub async fn connect(uri: &str) -> Result<Client, ConnectError> {
        Self::connect_with(uri, None).await
    }

    /// Connect, with TLS and a client certificate for `https://` servers.
    pub async fn connect_with(uri: &str, tls: Option<&TlsOptions>) -> Result<Client, ConnectError> {
        if uri.starts_with("https://") && tls.is_none() {
            return Err(ConnectError::NeedsTls(uri.into()));
        }
        let inner = if let Some(path) = uri.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(ConnectError::BadUri(uri.into()));
            }
            pb::tracer_client::TracerClient::with_origin(
                connect_unix(Path::new(path)).await?,
                Uri::from_static(UNUSED_ORIGIN),
            )
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            let mut ep = windows(
                Endpoint::from_shared(uri.to_string())
                    .map_err(|_| ConnectError::BadUri(uri.into()))?,
            );
            if let (Some(t), true) = (tls, uri.starts_with("https://")) {
                ep = ep
                    .tls_config(tls_config(t)?)
                    .map_err(|source| ConnectError::Transport {
                        addr: uri.into(),
                        source,
                    })?;
            }
            pb::tracer_client::TracerClient::new(Transport::Channel(ep.connect().await.map_err(
                |source| ConnectError::Transport {
                    addr: uri.into(),
                    source,
                },
            )?))
        } else {
            return Err(ConnectError::BadUri(uri.into()));
        };
        Ok(Client::over(inner))
    }

    fn over(inner: pb::tracer_client::TracerClient<Transport>) -> Client {
        Client {
            inner: inner
                // Above the server's largest batch reply (--max-batch-bytes,
                // 256 MiB by default); the server bounds what it sends.
                .max_decoding_message_size(512 << 20),
        }
    }

    /// A client of a server in this process, called as a `tower` service
    /// with no socket in between (`utraced::Embedded::local`): the
    /// `utrace` command's way to the server it embeds.
    pub fn local<S>(svc: S) -> Client
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<transport::BoxError>,
        S::Future: Send + 'static,
    {
        use tower::ServiceExt;
        let svc = transport::LocalService::new(svc.map_err(Into::into));
        Client::over(pb::tracer_client::TracerClient::with_origin(
            Transport::Local(svc),
            Uri::from_static(UNUSED_ORIGIN),
        ))
    }

    /// The generated tonic client, for calls this type does not wrap.
    pub fn raw(&mut self) -> &mut pb::tracer_client::TracerClient<Transport> {
        &mut self.inner
    }

    /// Start a program under a new engine.
    pub async fn spawn(&mut self, req: pb::SpawnRequest) -> Result<pb::SpawnReply, Status> {
        Ok(self.inner.spawn(req).await?.into_inner())
    }

    /// Attach a new engine to a running process.
    pub async fn attach(&mut self, req: pb::AttachRequest) -> Result<pb::AttachReply, Status> {
        Ok(self.inner.attach(req).await?.into_inner())
    }

    /// Drop an engine.
    pub async fn detach(&mut self, engine_id: u64) -> Result<(), Status> {
        self.inner
            .detach(pb::DetachRequest { engine_id, pid: 0 })
            .await?;
        Ok(())
    }

    /// Take an engine off one of its processes (it stays on the others;
    /// its last left, it is gone): a debugger following one side of a
    /// fork leaves the other.
    pub async fn leave_process(&mut self, engine_id: u64, pid: u32) -> Result<(), Status> {
        self.inner
            .detach(pb::DetachRequest { engine_id, pid })
            .await?;
        Ok(())
    }

    /// Traced threads (of `pid`, or all with 0).
    pub async fn list_tasks(&mut self, pid: u32) -> Result<Vec<pb::TaskInfo>, Status> {
        Ok(self
            .inner
            .list_tasks(pb::ListTasksRequest { pid })
            .await?
            .into_inner()
            .tasks)
    }

    /// Counters of the traced threads (of `pid`, or all with 0) and their
    /// engines, with each process's `top_syscalls` busiest calls (0: 16).
    pub async fn activity(&mut self, pid: u32, top_syscalls: u32) -> Result<pb::Activity, Status> {
        Ok(self
            .inner
            .get_activity(pb::GetActivityRequest { pid, top_syscalls })
            .await?
            .into_inner())
    }

    /// The server, the kernel, and the caller.
    pub async fn server_info(&mut self) -> Result<pb::ServerInfo, Status> {
        Ok(self
            .inner
            .get_server_info(pb::GetServerInfoRequest {})
            .await?
            .into_inner())
    }

    /// An engine's reports.
    pub async fn events(&mut self, engine_id: u64) -> Result<Streaming<pb::Event>, Status> {
        Ok(self
            .inner
            .events(pb::EventsRequest { engine_id })
            .await?
            .into_inner())
    }

    /// Open a Session stream: synchronous engines whose reports wait for
    /// this client's decisions (see [`Session`]).
    pub async fn session(&mut self) -> Result<Session, Status> {
        Session::open(&mut self.inner).await
    }

    /// Spawn or attach and stream, in one call; cancel (drop) to detach.
    pub async fn trace(&mut self, req: pb::TraceRequest) -> Result<Streaming<pb::Event>, Status> {
        Ok(self.inner.trace(req).await?.into_inner())
    }

    /// Feed the standard input of a program this client started with
    /// `SpawnRequest.stdio = STDIO_PIPES`: the first message names its
    /// engine; the program reads end of file when `input` ends.
    pub async fn stdin(
        &mut self,
        input: impl tokio_stream::Stream<Item = pb::StdinRequest> + Send + 'static,
    ) -> Result<pb::StdinReply, Status> {
        Ok(self.inner.stdin(input).await?.into_inner())
    }

    /// Probe a process, bpftrace-style (see `probe.proto`): the stream
    /// starts with `started`, carries events and snapshots of the maps the
    /// server keeps, and ends with a final snapshot and `ended` when the
    /// process exits or when [`Client::detach`] is called with the
    /// started report's engine id. Dropping the stream ends the probe
    /// without them.
    pub async fn probe(
        &mut self,
        req: pb::ProbeRequest,
    ) -> Result<Streaming<pb::ProbeReport>, Status> {
        Ok(self.inner.probe(req).await?.into_inner())
    }

    /// A large memory read as a stream of chunks, in address order (the
    /// last one, or one with `error` set, ends it). Hold the task first for
    /// a consistent snapshot.
    pub async fn read_memory_stream(
        &mut self,
        req: pb::ReadMemoryStreamRequest,
    ) -> Result<Streaming<pb::MemoryChunk>, Status> {
        Ok(self.inner.read_memory_stream(req).await?.into_inner())
    }
}

/// The TLS client configuration `t` names.
fn tls_config(t: &TlsOptions) -> Result<tonic::transport::ClientTlsConfig, ConnectError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| ConnectError::TlsFile {
            path: p.into(),
            why: e.to_string(),
        })
    };
    let mut c = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&t.ca)?))
        .identity(Identity::from_pem(read(&t.cert)?, read(&t.key)?));
    if let Some(d) = &t.domain {
        c = c.domain_name(d.clone());
    }
    Ok(c)
}

/// HTTP/2 receive windows and frame size. Event streams are many small
/// messages; the h2 crate budgets small DATA frames that are buffered but
/// not yet read and ends the connection past the budget (half the
/// connection window). A stream window of 256 KiB under a 4 MiB connection
/// window keeps a reader that falls behind well inside that budget: the
/// server then stops at flow control and drops (and counts) reports in its
/// own bounded queue, instead of the connection dying. Large replies (a big
/// read) come in frames of up to 1 MiB instead of HTTP/2's default 16 KiB:
/// 64 times fewer frames to parse and copy (larger windows measured no
/// faster on a Unix socket).
fn windows(ep: Endpoint) -> Endpoint {
    ep.initial_stream_window_size(transport::STREAM_WINDOW)
        .initial_connection_window_size(transport::CONNECTION_WINDOW)
        .max_frame_size(transport::MAX_FRAME)
}

/// The server behind a connected socket runs as root or as us: anyone
/// else's (another user who created the socket path first, e.g. in /tmp)
/// would see our requests.
fn check_server(s: &tokio::net::UnixStream, path: &Path) -> Result<(), ConnectError> {
    // The credentials the listening process had when it called listen().
    let owner = s
        .peer_cred()
        .map_err(|_| ConnectError::Refused(path.into()))?
        .uid();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if owner == 0 || owner == me {
        return Ok(());
    }
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner))
        .ok()
        .flatten()
        .map(|u| format!(" ({})", u.name))
        .unwrap_or_default();
    Err(ConnectError::ForeignServer {
        path: path.into(),
        owner,
        name,
    })
}

async fn connect_unix(path: &Path) -> Result<Transport, ConnectError> {
    // Check first, so the error says what is wrong with the path.
    let s = match tokio::net::UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) => {
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => ConnectError::NoSocket(path.into()),
                std::io::ErrorKind::PermissionDenied => ConnectError::PermissionDenied(path.into()),
                _ => ConnectError::Refused(path.into()),
            })
        }
    };
    check_server(&s, path)?;
    transport::unix(s)
        .await
        .map_err(|source| ConnectError::Handshake {
            addr: format!("unix://{}", path.display()),
            source,
        })
}
