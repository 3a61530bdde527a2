//! The embedded server's in-process door: the calls of the program that
//! embeds the server reach its service as values, with no socket and no
//! HTTP/2 in between.
//!
//! Through the private socket, each message of the `utrace` command to its
//! own embedded server was framed by hyper, written to the socket, woken
//! on, read and parsed again, and the answer the same way back: four
//! system calls and two HTTP/2 codecs per message, on the command's one
//! runtime thread. [`Local`] is the service itself ([`TracerServer`], with
//! the limits every listener's has), called by the client's transport
//! directly: a unary call's server side runs inside the caller's own
//! future, and a stream's messages are read from the other side's body as
//! they are made. Messages are still encoded and decoded (the service's
//! size limits and validation apply as to any client).
//!
//! Its caller is this process, with the credentials a Unix-socket
//! connection from this process would have: [`Peer::unix`] on a socket
//! pair made for the purpose (`SO_PEERCRED`, `SO_PEERPIDFD`), so the rule
//! it is held to is the one the socket would have given. It counts as a
//! connection (budgets, the registry): its engines detach when the last
//! clone of the door is dropped, as a socket's do when it closes.

use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{http, Service};
use tracing::debug;
use utrace_proto::server::tracer_server::TracerServer;

use crate::budget::{Admission, Ticket};
use crate::peer::{Peer, Transport};
use crate::registry::Registry;
use crate::service::TracerService;

/// The in-process door to an embedded server (see the module docs): a
/// `tower` service of gRPC requests. Clones share one connection.
#[derive(Clone)]
pub struct Local {
    svc: TracerServer<TracerService>,
    conn: Arc<LocalConn>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("conn", &self.conn.peer.conn)
            .finish()
    }
}

/// The door's place among the server's connections.
struct LocalConn {
    peer: Peer,
    registry: Arc<Registry>,
    _ticket: Ticket,
}

impl Drop for LocalConn {
    fn drop(&mut self) {
        debug!(conn = self.peer.conn, "in-process connection closed");
        self.registry.connection_closed(self.peer.conn);
    }
}

/// Why the door could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot take this process's credentials (a socket pair): {0}")]
    Credentials(#[source] std::io::Error),
    #[error("the connection budget of uid {0} is spent")]
    Budget(u32),
}

impl Local {
    /// A new connection of this process to `svc`.
    pub(crate) fn open(
        svc: &Arc<TracerService>,
        registry: &Arc<Registry>,
    ) -> Result<Local, LocalError> {
        let mut peer = own_peer()?;
        let ticket = match registry.budgets.admit(peer.uid(), peer.is_root()) {
            Admission::Admitted(t) => t,
            Admission::Refused(t, why) => {
                peer.refused = Some((tonic::Code::ResourceExhausted, why.into()));
                t
            }
            Admission::Dropped => return Err(LocalError::Budget(peer.uid())),
        };
        registry.connection_opened(peer.conn);
        debug!(conn = peer.conn, uid = peer.uid(), "in-process connection");
        let limits = svc.limits;
        Ok(Local {
            svc: TracerServer::from_arc(Arc::clone(svc))
                .max_decoding_message_size(limits.max_request_bytes())
                .max_encoding_message_size(limits.max_reply_bytes()),
            conn: Arc::new(LocalConn {
                peer,
                registry: Arc::clone(registry),
                _ticket: ticket,
            }),
        })
    }
}

/// This process as a Unix-socket peer of itself.
fn own_peer() -> Result<Peer, LocalError> {
    let (a, _b) = std::os::unix::net::UnixStream::pair().map_err(LocalError::Credentials)?;
    let cred = nix::sys::socket::getsockopt(&a, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| LocalError::Credentials(e.into()))?;
    let mut p = Peer::unix(a.as_raw_fd(), cred.uid(), cred.gid(), cred.pid());
    p.transport = Transport::Local;
    Ok(p)
}

impl<B> Service<http::Request<B>> for Local
where
    TracerServer<TracerService>: Service<http::Request<B>>,
{
    type Response = <TracerServer<TracerService> as Service<http::Request<B>>>::Response;
    type Error = <TracerServer<TracerService> as Service<http::Request<B>>>::Error;
    type Future = <TracerServer<TracerService> as Service<http::Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.svc.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.conn.peer.clone());
        self.svc.call(req)
    }
}

// The generated service never fails (errors are gRPC statuses in the
// answer): callers may rely on it.
const _: fn() = || {
    fn infallible<S: Service<http::Request<tonic::body::Body>, Error = Infallible>>() {}
    infallible::<Local>();
};
