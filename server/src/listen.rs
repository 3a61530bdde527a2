//! Listeners: a Unix socket (the default) and, only when asked explicitly, a
//! plaintext TCP socket on loopback. Each accepted connection is wrapped in
//! [`Conn`], which carries the peer's identity into every request and tells
//! the registry when the connection closes (its engines then detach).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use crate::authority::AuthorityFix;
use crate::budget::{Admission, Ticket};
use crate::peer::{tcp_peer_uid, Peer};
use crate::registry::Registry;
use crate::tls::Identities;
use crate::unix_io::QuietUnixStream;

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP address (loopback only, plaintext, with `--insecure-tcp`).
    Tcp(SocketAddr),
    /// A TCP address with TLS and client certificates (any address).
    Tls(SocketAddr),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
            ListenAddr::Tls(a) => write!(f, "tls://{a}"),
        }
    }
}

/// A listen URI that cannot be used, with what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "malformed listen address {0:?}: expected unix:///path/to.sock, tls://ADDR:PORT or tcp://127.0.0.1:PORT"
    )]
    Malformed(String),
    #[error("refusing plaintext TCP on {0}: without TLS anyone on the network could trace as this server; use tls://{0} with client certificates, a loopback address (127.0.0.1 or [::1]) or a unix:// socket")]
    NotLoopback(SocketAddr),
    #[error("TCP listening ({0}) is plaintext and must be asked for explicitly with --insecure-tcp (loopback only); for clients elsewhere use tls://ADDR:PORT with client certificates")]
    TcpNeedsFlag(SocketAddr),
    #[error(
        "cannot create socket {path}: {source}; choose another path with --listen unix:///PATH"
    )]
    Socket { path: PathBuf, source: io::Error },
    #[error("another server already listens on {0}; stop it or choose another path with --listen")]
    InUse(PathBuf),
    #[error("refusing to listen in {dir}: it belongs to uid {owner}, who could replace the socket; use a directory of your own or root's")]
    ForeignDir { dir: PathBuf, owner: u32 },
    #[error("cannot listen on {addr}: {source}")]
    Tcp { addr: SocketAddr, source: io::Error },
    #[error("socket activation: {0}")]
    Activation(String),
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// Listening sockets systemd passed this process (socket activation:
/// `LISTEN_PID` is ours and `LISTEN_FDS` counts them, from descriptor 3),
/// with their paths; none without activation. Only Unix stream sockets
/// are taken (a TCP one would need the TLS this server asks of TCP
/// listeners: refused, named). The variables are removed, so that no
/// child takes the sockets for its own.
pub fn activated() -> Result<Vec<(PathBuf, std::os::unix::net::UnixListener)>, ListenError> {
    use std::os::fd::FromRawFd;
    let (Some(pid), Some(n)) = (
        std::env::var_os("LISTEN_PID"),
        std::env::var_os("LISTEN_FDS"),
    ) else {
        return Ok(Vec::new());
    };
    let bad = |m: String| ListenError::Activation(m);
    let pid: u32 = pid
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("LISTEN_PID is not a number".into()))?;
    if pid != std::process::id() {
        // Meant for another process (an ancestor's, inherited): not ours.
        return Ok(Vec::new());
    }
    let n: i32 = n
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|n| (0..=64).contains(n))
        .ok_or_else(|| bad("LISTEN_FDS is not a count from 0 to 64".into()))?;
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut out = Vec::new();
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + n {
        // SAFETY: fstat/getsockname/getsockopt/fcntl on a descriptor
        // number systemd passed; each writes only into the locals given,
        // of the sizes given.
        let (family, listening, path) = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
                return Err(bad(format!("descriptor {fd} is not a socket")));
            }
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if libc::getsockname(fd, (&raw mut addr).cast(), &mut len) != 0 {
                return Err(bad(format!(
                    "descriptor {fd}: {}",
                    io::Error::last_os_error()
                )));
            }
            let mut on: libc::c_int = 0;
            let mut olen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                (&raw mut on).cast(),
                &mut olen,
            );
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            let path_len = (len as usize).saturating_sub(std::mem::size_of::<libc::sa_family_t>());
            let raw: Vec<u8> = addr.sun_path[..path_len.min(addr.sun_path.len())]
                .iter()
                .map(|c| *c as u8)
                .take_while(|c| *c != 0)
                .collect();
            (addr.sun_family as i32, on != 0, raw)
        };
        if family != libc::AF_UNIX {
            return Err(bad(format!(
                "descriptor {fd} is not a Unix socket (address family {family}); this server \
                 takes TCP only as tls:// or loopback --listen addresses"
            )));
        }
        if !listening || path.is_empty() {
            return Err(bad(format!(
                "descriptor {fd} is not a listening Unix stream socket with a path \
                 (ListenStream=/path in the .socket unit)"
            )));
        }
        use std::os::unix::ffi::OsStringExt;
        let path = PathBuf::from(std::ffi::OsString::from_vec(path));
        // SAFETY: a listening socket systemd passed to this process alone
        // (the variables named it ours); owned from here on.
        let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
        out.push((path, l));
    }
    Ok(out)
}

impl ListenAddr {
    /// Parse `unix:///path`, `tls://addr:port` or `tcp://host:port`.
    pub fn parse(uri: &str, insecure_tcp: bool) -> Result<ListenAddr, ListenError> {
        if let Some(addr) = uri.strip_prefix("tls://") {
            return addr
                .parse()
                .map(ListenAddr::Tls)
                .map_err(|_| ListenError::Malformed(uri.into()));
        }
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
        // A directory another user owns lets them swap the socket for
        // their own (and take every client's calls).
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(dir).map_err(err)?.uid();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if owner != me && owner != 0 {
            return Err(ListenError::ForeignDir {
                dir: dir.to_path_buf(),
                owner,
            });
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
    Unix(QuietUnixStream),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// A connection's place among the server's, whatever carries it (a
/// socket here, or the embedded server's in-process door): admitted by
/// its uid's connection budget (or let in only to be told why, each call
/// refused with the reason), opened in the registry, and closed there
/// (its engines detached) when dropped.
pub(crate) struct Admitted {
    pub(crate) peer: Peer,
    registry: Arc<Registry>,
    _ticket: Ticket,
}

impl Admitted {
    /// `peer`'s connection, if its uid's budget lets it in at all; and
    /// whether it is let in only to be told why (its calls refused).
    pub(crate) fn admit(mut peer: Peer, registry: Arc<Registry>) -> Option<(Admitted, bool)> {
        let (ticket, refused) = match registry.budgets.admit(peer.uid(), peer.is_root()) {
            Admission::Admitted(t) => (t, false),
            Admission::Refused(t, why) => {
                warn!(conn = peer.conn, uid = peer.uid(), "{why}");
                peer.refused = Some((tonic::Code::ResourceExhausted, why.into()));
                (t, true)
            }
            Admission::Dropped => {
                debug!(uid = peer.uid(), "connection past the budget: closed");
                return None;
            }
        };
        registry.connection_opened(peer.conn);
        Some((
            Admitted {
                peer,
                registry,
                _ticket: ticket,
            },
            refused,
        ))
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        debug!(conn = self.peer.conn, "connection closed");
        self.registry.connection_closed(self.peer.conn);
    }
}

/// An accepted connection: the stream, and its place among the server's
/// connections.
pub struct Conn {
    io: Io,
    admitted: Admitted,
    /// A connection past its uid's budget is closed at this time (its calls
    /// are refused until then, with the reason).
    close_at: Option<Pin<Box<tokio::time::Sleep>>>,
    /// On a Unix socket, until the client is known to send a valid
    /// `:authority`: what it sends goes through this ([`AuthorityFix`]).
    fix: Option<Box<AuthorityFix>>,
}

/// How long a connection past the budget stays, to tell its calls why.
const REFUSED_GRACE: Duration = Duration::from_secs(2);

impl Conn {
    /// A connection of `peer` on `io`, if the budget lets it in.
    fn admit(io: Io, peer: Peer, registry: Arc<Registry>) -> Option<Conn> {
        let (admitted, refused) = Admitted::admit(peer, registry)?;
        let close_at = refused.then(|| Box::pin(tokio::time::sleep(REFUSED_GRACE)));
        let fix = matches!(io, Io::Unix(_)).then(|| Box::new(AuthorityFix::new()));
        Some(Conn {
            io,
            admitted,
            close_at,
            fix,
        })
    }

    fn unix(s: UnixStream, registry: Arc<Registry>) -> Option<Conn> {
        let (uid, gid, pid) = match s.peer_cred() {
            Ok(c) => (c.uid(), c.gid(), c.pid().unwrap_or(0)),
            Err(e) => {
                warn!(%e, "SO_PEERCRED failed; closing the connection");
                return None;
            }
        };
        let peer = Peer::unix(s.as_raw_fd(), uid, gid, pid);
        debug!(conn = peer.conn, uid, pid, groups = ?peer.owner.groups, "connection");
        let s = match QuietUnixStream::new(s) {
            Ok(s) => s,
            Err(e) => {
                warn!(%e, "cannot register the connection; closing it");
                return None;
            }
        };
        Self::admit(Io::Unix(s), peer, registry)
    }

    fn tcp(s: TcpStream, registry: Arc<Registry>) -> Option<Conn> {
        let uid = match (s.peer_addr(), s.local_addr()) {
            (Ok(p), Ok(l)) => tcp_peer_uid(p, l),
            _ => None,
        };
        let Some(uid) = uid else {
            warn!(
                peer = ?s.peer_addr().ok(),
                "TCP connection whose socket owner cannot be found (another network namespace?); closing it"
            );
            return None;
        };
        let peer = Peer::tcp(uid);
        debug!(conn = peer.conn, uid, "tcp connection");
        Self::admit(Io::Tcp(s), peer, registry)
    }

    /// A TLS connection whose handshake is done: the client is who its
    /// certificate says, per the identities file.
    fn tls(
        s: tokio_rustls::server::TlsStream<TcpStream>,
        ids: &Identities,
        registry: Arc<Registry>,
    ) -> Option<Conn> {
        let leaf = s
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        let peer = match leaf.map(|c| ids.identify(&c)) {
            Some((Some(id), names)) => {
                debug!(uid = id.uid, %names, "tls connection");
                Peer::tls(id.uid, id.observe_only)
            }
            Some((None, names)) => {
                warn!(%names, "TLS client whose certificate maps to no user");
                Peer::unmapped(&names)
            }
            None => return None,
        };
        Self::admit(Io::Tls(Box::new(s)), peer, registry)
    }
}

/// TLS handshakes running at once, at most (the rest wait to be accepted).
const HANDSHAKES: usize = 64;
/// How long a client may take to finish its handshake.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

/// Accepted connections of a listener, as the server's incoming stream.
///
/// When the process is out of descriptors (EMFILE, ENFILE), accepting
/// backs off (10 ms, doubling up to 1 s) instead of spinning, and says so
/// once per episode; connections waiting in the backlog are taken when
/// descriptors come back.
pub fn incoming(
    listener: Listener,
    registry: Arc<Registry>,
) -> impl tokio_stream::Stream<Item = io::Result<Conn>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Conn>>(16);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
    tokio::spawn(async move {
        let mut backoff = Duration::ZERO;
        loop {
            let accepted = tokio::select! {
                a = listener.accept(&registry, &tx, &handshakes) => a,
                () = tx.closed() => return,
            };
            match accepted {
                Ok(Some(conn)) => {
                    backoff = Duration::ZERO;
                    if tx.send(Ok(conn)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if backoff.is_zero() {
                        warn!(error = %e, "out of file descriptors: accepting paused until some are closed");
                    }
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A bound listener.
pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
    Tls {
        tcp: TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
        ids: Arc<Identities>,
    },
}

impl Listener {
    /// The next connection. A TLS one is handed to `tx` by a task of its
    /// own once its handshake is done (at most [`HANDSHAKES`] at once, each
    /// within [`HANDSHAKE_TIME`]): a slow client never holds up the others.
    async fn accept(
        &self,
        registry: &Arc<Registry>,
        tx: &tokio::sync::mpsc::Sender<io::Result<Conn>>,
        handshakes: &Arc<tokio::sync::Semaphore>,
    ) -> io::Result<Option<Conn>> {
        Ok(match self {
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Conn::unix(s, Arc::clone(registry))
            }
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                Conn::tcp(s, Arc::clone(registry))
            }
            Listener::Tls { tcp, acceptor, ids } => {
                let permit = Arc::clone(handshakes)
                    .acquire_owned()
                    .await
                    .map_err(io::Error::other)?;
                let (s, addr) = tcp.accept().await?;
                let (acceptor, ids, registry, tx) = (
                    acceptor.clone(),
                    Arc::clone(ids),
                    Arc::clone(registry),
                    tx.clone(),
                );
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(s)).await {
                        Ok(Ok(s)) => {
                            if let Some(conn) = Conn::tls(s, &ids, registry) {
                                let _ = tx.send(Ok(conn)).await;
                            }
                        }
                        Ok(Err(e)) => debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%addr, "TLS handshake timed out"),
                    }
                });
                None
            }
        })
    }
}

impl Connected for Conn {
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        self.admitted.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(t) = &mut this.close_at {
            if t.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::other("closed: over the connection budget")));
            }
        }
        if let (Some(fix), Io::Unix(s)) = (&mut this.fix, &mut this.io) {
            loop {
                let out = fix.output();
                if !out.is_empty() {
                    let n = out.len().min(buf.remaining());
                    buf.put_slice(&out[..n]);
                    out.drain(..n);
                    return Poll::Ready(Ok(()));
                }
                if fix.is_raw() {
                    break;
                }
                let mut chunk = [0u8; 8192];
                let mut rb = ReadBuf::new(&mut chunk);
                std::task::ready!(Pin::new(&mut *s).poll_read(cx, &mut rb))?;
                if rb.filled().is_empty() {
                    return Poll::Ready(Ok(()));
                }
                if let Err(e) = fix.feed(rb.filled()) {
                    warn!(conn = this.admitted.peer.conn, error = %e, "closing the connection");
                    return Poll::Ready(Err(e.into()));
                }
            }
            this.fix = None;
        }
        match &mut this.io {
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
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
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Unix(s) => s.is_write_vectored(),
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Unix(s) => Pin::new(s).poll_flush(cx),
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
