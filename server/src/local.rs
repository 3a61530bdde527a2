//! The embedded server's in-process door: the calls of the program that
//! embeds the server reach its service as values, with no socket and no
//! HTTP/2 in between.
//!
//! Through the private socket, each message of the `utrace` command to its
//! own embedded server was framed by hyper, written to the socket
//! (`sendto`), woken on (`epoll_wait`), read (`recvfrom`) and parsed
//! again, and the answer the same way back, on the command's one runtime
//! thread: in a profile of gdb's breakpoint hits through `utrace gdb`,
//! that thread's largest item. [`Local`] is the service itself ([`TracerServer`], with
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
//! connection, admitted and closed as a socket's ([`Admitted`]): its
//! engines detach when the last clone of the door is dropped.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{http, Service};
use tracing::debug;
use utrace_proto::server::tracer_server::TracerServer;

use crate::listen::Admitted;
use crate::peer::{Peer, Transport};
use crate::registry::Registry;
use crate::service::TracerService;

/// The in-process door to an embedded server (see the module docs): a
/// `tower` service of gRPC requests. Clones share one connection.
#[derive(Clone)]
pub struct Local {
    svc: TracerServer<TracerService>,
    conn: Arc<Admitted>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("conn", &self.conn.peer.conn)
            .finish()
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
    /// A new connection of this process to `svc`, admitted as a socket's
    /// is ([`Admitted`]).
    pub(crate) fn open(
        svc: &Arc<TracerService>,
        registry: &Arc<Registry>,
    ) -> Result<Local, LocalError> {
        let peer = own_peer()?;
        let uid = peer.uid();
        let (conn, _refused) =
            Admitted::admit(peer, Arc::clone(registry)).ok_or(LocalError::Budget(uid))?;
        debug!(conn = conn.peer.conn, uid, "in-process connection");
        let limits = svc.limits;
        Ok(Local {
            svc: TracerServer::from_arc(Arc::clone(svc))
                .max_decoding_message_size(limits.max_request_bytes())
                .max_encoding_message_size(limits.max_reply_bytes()),
            conn: Arc::new(conn),
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
