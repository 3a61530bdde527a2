//! The metrics endpoint: `GET /metrics` over plain HTTP/1 (axum), the
//! OpenMetrics text of [`crate::metrics`] with the values read at the
//! scrape.
//!
//! Anyone who reaches the address may scrape, as often as they like: a
//! scrape asks the tracer thread for its tasks and counts, so the text is
//! made at most once per [`FRESH`] and served from there meanwhile. A
//! flood of requests costs the tracer nothing more.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::service::TracerService;

/// OpenMetrics 1.0's media type (Prometheus asks for it first).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape's text is served again.
const FRESH: Duration = Duration::from_secs(1);

/// The server, and the last text made.
struct Endpoint {
    svc: Arc<TracerService>,
    last: tokio::sync::Mutex<Option<(Instant, Arc<String>)>>,
}

/// Serve `listener` until `stop` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    svc: Arc<TracerService>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::new(Endpoint {
            svc,
            last: Default::default(),
        }));
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "the metrics endpoint failed");
    }
}

async fn metrics(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    // One scrape at a time; the others wait for it and take its text.
    let mut last = e.last.lock().await;
    let text = match &*last {
        Some((at, text)) if at.elapsed() < FRESH => Arc::clone(text),
        _ => {
            let text = Arc::new(crate::metrics::get().render(e.svc.scrape().await));
            *last = Some((Instant::now(), Arc::clone(&text)));
            text
        }
    };
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        text.as_str().to_owned(),
    )
}
