//! Which server `utrace` talks to: the one named by `--server` /
//! `UTRACE_SERVER`, else the daemon on the default socket if one listens
//! there, else a server started inside this process.

use std::time::Duration;

use tracing::debug;
use utrace_client::Client;

/// A connected server, and the in-process one when it was started here.
pub struct Connection {
    /// The client.
    pub client: Client,
    /// The URI connected to.
    pub uri: String,
    /// The in-process server, if there was no daemon. Stopped by
    /// [`Connection::close`] (or when dropped).
    embedded: Option<utraced::Embedded>,
}

impl Connection {
    /// Connect as the command line says: `explicit` (from `--server` or
    /// `UTRACE_SERVER`), or the default daemon, or an embedded server.
    pub async fn open(
        explicit: Option<&str>,
        tls: Option<&utrace_client::TlsOptions>,
    ) -> Result<Connection, String> {
        if let Some(uri) = explicit {
            let client = Client::connect_with(uri, tls)
                .await
                .map_err(|e| e.to_string())?;
            debug!(uri, "using the server given by --server / UTRACE_SERVER");
            return Ok(Connection {
                client,
                uri: uri.to_string(),
                embedded: None,
            });
        }
        let default = format!("unix://{}", utraced::default_socket().display());
        match Client::connect(&default).await {
            Ok(client) => {
                debug!(uri = %default, "using the utraced daemon on the default socket");
                return Ok(Connection {
                    client,
                    uri: default,
                    embedded: None,
                });
            }
            Err(e) => debug!(uri = %default, %e, "no daemon on the default socket"),
        }
        let embedded = utraced::Embedded::start()
            .await
            .map_err(|e| format!("no utraced daemon, and starting one in-process failed: {e}"))?;
        let uri = embedded.uri();
        debug!(%uri, "started an embedded server");
        // The server's tracer thread wakes this runtime's tasks: the
        // worker may look for them before it parks (utrace_client::spin).
        utrace_client::spin::park_looks(true);
        let client = Client::local(
            embedded
                .local()
                .map_err(|e| format!("cannot connect to the embedded server: {e}"))?,
        );
        Ok(Connection {
            client,
            uri,
            embedded: Some(embedded),
        })
    }

    /// The server runs inside this process.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// The server inside this process, if it runs here.
    pub fn embedded(&self) -> Option<&utraced::Embedded> {
        self.embedded.as_ref()
    }

    /// Stop the embedded server, if any (detaching whatever it still
    /// traces), waiting a few seconds at most.
    pub async fn close(mut self) {
        if let Some(e) = self.embedded.take() {
            match tokio::time::timeout(Duration::from_secs(5), e.stop()).await {
                Ok(Ok(())) => debug!("embedded server stopped"),
                Ok(Err(err)) => debug!(%err, "embedded server stopped with an error"),
                Err(_) => debug!("embedded server did not stop within 5 s"),
            }
        }
    }
}
