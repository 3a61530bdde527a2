//! What a [`crate::Client`] sends its calls over.
//!
//! - **TCP and TLS** (`http://`, `https://`): a tonic [`Channel`], which
//!   dials lazily again after a failure.
//! - **A Unix socket** (`unix://`): the HTTP/2 connection itself, over
//!   the socket that was connected and checked ([`hyper`]'s client
//!   connection, its driver a task of its own). A `Channel` adds a queue
//!   and a task in front of the connection (its `Buffer`) and a reconnect
//!   layer: work for every call, and one more task to wake each way. Of
//!   `utrace ps`'s own CPU time per server it was about a third. A
//!   reconnect would be of no use here anyway: a server's engines live
//!   and die with the connection that made them, so a call after a
//!   dropped connection fails, naming the transport error.
//! - **In process** ([`Client::local`](crate::Client::local)): a server
//!   embedded in this program, called as a `tower` service with no socket
//!   and no HTTP/2 (`utraced::Embedded::local`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::body::Body;
use tonic::transport::Channel;
use tower::util::BoxCloneSyncService;

/// A boxed error, as tonic takes a transport's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The calls' way to the server (see the module docs).
#[derive(Clone)]
pub enum Transport {
    /// TCP or TLS, through tonic's channel.
    Channel(Channel),
    /// A Unix socket's HTTP/2 connection, used directly.
    Unix(SendRequest<Body>),
    /// A server in this process, called directly.
    Local(LocalService),
}

/// A server's gRPC service in this process.
pub type LocalService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>;

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Channel(c) => f.debug_tuple("Channel").field(c).finish(),
            Transport::Unix(s) => f.debug_tuple("Unix").field(s).finish(),
            Transport::Local(_) => f.write_str("Local"),
        }
    }
}

/// HTTP/2 settings for every connection: see [`crate::windows`].
pub(crate) const STREAM_WINDOW: u32 = 256 * 1024;
pub(crate) const CONNECTION_WINDOW: u32 = 4 << 20;
pub(crate) const MAX_FRAME: u32 = 1 << 20;

/// Start HTTP/2 on a connected Unix socket: the connection's driver runs
/// on a task of its own until either side closes.
pub(crate) async fn unix(stream: tokio::net::UnixStream) -> Result<Transport, hyper::Error> {
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .handshake(TokioIo::new(Coalesce::new(stream)))
        .await?;
    // Its error, if any, is the next call's: that call fails naming it.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Transport::Unix(send))
}

type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

impl tower::Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Transport::Channel(c) => {
                tower::Service::<http::Request<Body>>::poll_ready(c, cx).map_err(Into::into)
            }
            Transport::Unix(s) => s.poll_ready(cx).map_err(Into::into),
            Transport::Local(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, req: http::Request<Body>) -> Answer {
        match self {
            Transport::Channel(c) => {
                let f = tower::Service::call(c, req);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Transport::Unix(s) => {
                let f = s.send_request(req);
                Box::pin(async move { Ok(f.await?.map(Body::new)) })
            }
            Transport::Local(s) => Box::pin(s.call(req)),
        }
    }
}

/// A socket whose writes wait for the runtime's other tasks: a flush with
/// data waiting yields, again while the round before added more (up to
/// [`COALESCE_ROUNDS`] times), so that the frames of one call (the
/// preface and settings, its headers, then its body once the connection
/// has granted it window: three tasks, three rounds) go out in one
/// `write`. Each write wakes the server; four writes for one call woke a
/// daemon up to four times. (The same on the server's side measured no
/// better: its settings go out before the client's preface arrives, and
/// its answer is one write already.)
pub(crate) struct Coalesce<T> {
    io: T,
    buf: Vec<u8>,
    /// Rounds yielded for the data waiting, and its length at the last.
    rounds: u8,
    len_at_yield: usize,
    /// The yield under way: tokio's, which lets the runtime's other tasks
    /// run first (a plain self-wake would be polled again at once on a
    /// multi-threaded runtime, from its LIFO slot).
    pause: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// How many rounds a flush may wait for more.
const COALESCE_ROUNDS: u8 = 3;

/// Past this, a write is sent without waiting for the round's end.
const COALESCE_MAX: usize = 64 * 1024;

impl<T> Coalesce<T> {
    pub(crate) fn new(io: T) -> Self {
        Coalesce {
            io,
            buf: Vec::new(),
            rounds: 0,
            len_at_yield: 0,
            pause: None,
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> Coalesce<T> {
    /// Write out everything waiting.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.buf.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.buf.drain(..n);
        }
        self.rounds = 0;
        self.len_at_yield = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Coalesce<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Coalesce<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.buf.len() + data.len() > COALESCE_MAX {
            std::task::ready!(self.poll_drain(cx))?;
            if data.len() > COALESCE_MAX {
                return Pin::new(&mut self.io).poll_write(cx, data);
            }
        }
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            if let Some(p) = self.pause.as_mut() {
                std::task::ready!(p.as_mut().poll(cx));
                self.pause = None;
            }
            if self.buf.is_empty()
                || self.rounds >= COALESCE_ROUNDS
                || self.buf.len() == self.len_at_yield
            {
                break;
            }
            self.rounds += 1;
            self.len_at_yield = self.buf.len();
            self.pause = Some(Box::pin(tokio::task::yield_now()));
        }
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWrite, AsyncWriteExt};

    /// A writer that records each write it is given.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>, bool);

    impl AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.1 = true;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn writes_of_one_round_go_out_as_one() {
        let mut c = Coalesce::new(Writes::default());
        c.write_all(b"PRI ").await.unwrap();
        c.write_all(b"settings ").await.unwrap();
        assert!(c.io.0.is_empty(), "nothing is written before a flush");
        c.flush().await.unwrap();
        assert_eq!(c.io.0, vec![b"PRI settings ".to_vec()]);
        // A large write goes out as it is, after what waits.
        c.write_all(b"headers ").await.unwrap();
        let big = vec![7u8; COALESCE_MAX + 1];
        c.write_all(&big).await.unwrap();
        assert_eq!(c.io.0.len(), 3);
        assert_eq!(c.io.0[1], b"headers ");
        assert_eq!(c.io.0[2], big);
        // Shutting down sends what waits first.
        c.write_all(b"goaway").await.unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(c.io.0[3], b"goaway");
        assert!(c.io.1);
    }

    #[tokio::test]
    async fn a_flush_waits_while_more_comes() {
        let mut c = Coalesce::new(Writes::default());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        c.write_all(b"headers ").await.unwrap();
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_pending());
        // Another task's frame, queued while the flush waits.
        assert!(Pin::new(&mut c).poll_write(&mut cx, b"body").is_ready());
        let mut polls = 0;
        while Pin::new(&mut c).poll_flush(&mut cx).is_pending() {
            polls += 1;
            assert!(
                polls <= 2 * usize::from(COALESCE_ROUNDS),
                "the flush never ends"
            );
        }
        assert_eq!(c.io.0, vec![b"headers body".to_vec()]);
        // A flush with nothing waiting is immediate.
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
    }
}
