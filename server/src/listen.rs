//! Listeners: a Unix socket (the default) and, only when asked explicitly, a
//! plaintext TCP socket on loopback. Each accepted connection is wrapped in
//! [`Conn`], which carries the peer's identity into every request and tells
//! the registry when the connection closes (its engines then detach).

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use crate::peer::{next_conn_id, tcp_peer_uid, Peer, Transport};
use crate::registry::Registry;

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP address (loopback only, plaintext, with `--insecure-tcp`).
    Tcp(SocketAddr),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A listen URI that cannot be used, with what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "malformed listen address {0:?}: expected unix:///path/to.sock or tcp://127.0.0.1:PORT"
    )]
    Malformed(String),
    #[error("refusing plaintext TCP on {0}: without TLS anyone on the network could trace as this server; use a loopback address (127.0.0.1 or [::1]) or a unix:// socket")]
    NotLoopback(SocketAddr),
    #[error("TCP listening ({0}) is plaintext and must be asked for explicitly with --insecure-tcp (loopback only)")]
    TcpNeedsFlag(SocketAddr),
    #[error(
        "cannot create socket {path}: {source}; choose another path with --listen unix:///PATH"
    )]
    Socket { path: PathBuf, source: io::Error },
    #[error("another server already listens on {0}; stop it or choose another path with --listen")]
    InUse(PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Tcp { addr: SocketAddr, source: io::Error },
}

impl ListenAddr {
    /// Parse `unix:///path` or `tcp://host:port`.
    pub fn parse(uri: &str, insecure_tcp: bool) -> Result<ListenAddr, ListenError> {
        if let Some(path) = uri.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(ListenError::Malformed(uri.into()));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = uri.strip_prefix("tcp://") {
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| ListenError::Malformed(uri.into()))?;
            if !addr.ip().is_loopback() {
                return Err(ListenError::NotLoopback(addr));
            }
            if !insecure_tcp {
                return Err(ListenError::TcpNeedsFlag(addr));
            }
            return Ok(ListenAddr::Tcp(addr));
        }
        Err(ListenError::Malformed(uri.into()))
    }
}

/// The default socket: `/run/utraced/utraced.sock` as root, else
/// `$XDG_RUNTIME_DIR/utraced.sock` (or `/tmp/utraced-UID/utraced.sock`).
pub fn default_socket() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/utraced/utraced.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("utraced.sock"),
        _ => PathBuf::from(format!("/tmp/utraced-{uid}/utraced.sock")),
    }
}

/// Bind a Unix socket at `path` (mode 0660), replacing a stale socket file
/// but never a live server's.
pub fn bind_unix(path: &Path) -> Result<UnixListener, ListenError> {
    let err = |source| ListenError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(err)?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        }
    }
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(ListenError::InUse(path.to_path_buf())),
            Err(_) => {
                debug!(path = %path.display(), "removing stale socket");
                std::fs::remove_file(path).map_err(err)?;
            }
        }
    }
    let l = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(l)
}

pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Tcp { addr, source })
}

enum Io {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// An accepted connection: the stream, the peer, and a guard that tells the
/// registry when the connection is gone.
pub struct Conn {
    io: Io,
    peer: Peer,
    registry: Arc<Registry>,
}

impl Conn {
    pub fn unix(s: UnixStream, registry: Arc<Registry>) -> Conn {
        let (uid, gid, pid) = match s.peer_cred() {
            Ok(c) => (c.uid(), c.gid(), c.pid().unwrap_or(0)),
            Err(e) => {
                // Unknowable peer: treat as nobody.
                warn!(%e, "SO_PEERCRED failed; treating the peer as uid 65534");
                (65534, 65534, 0)
            }
        };
        let peer = Peer {
            conn: next_conn_id(),
            uid,
            gid,
            pid,
            transport: Transport::Unix,
        };
        debug!(conn = peer.conn, uid, pid, "connection");
        Conn {
            io: Io::Unix(s),
            peer,
            registry,
        }
    }

    pub fn tcp(s: TcpStream, registry: Arc<Registry>) -> Conn {
        let uid = match (s.peer_addr(), s.local_addr()) {
            (Ok(p), Ok(l)) => tcp_peer_uid(p, l),
            _ => None,
        }
        .unwrap_or(65534);
        let peer = Peer {
            conn: next_conn_id(),
            uid,
            gid: if uid == 0 { 0 } else { 65534 },
            pid: 0,
            transport: Transport::Tcp,
        };
        debug!(conn = peer.conn, uid, "tcp connection");
        Conn {
            io: Io::Tcp(s),
            peer,
            registry,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        debug!(conn = self.peer.conn, "connection closed");
        self.registry.connection_closed(self.peer.conn);
    }
}

impl Connected for Conn {
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Unix(s) => Pin::new(s).poll_flush(cx),
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
