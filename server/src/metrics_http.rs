//! The metrics endpoint: `GET /metrics` over plain HTTP/1 (axum), the
//! OpenMetrics text of [`crate::metrics`] with the values read at the
//! scrape.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::service::TracerService;

/// OpenMetrics 1.0's media type (Prometheus asks for it first).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve `listener` until `stop` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    svc: Arc<TracerService>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .with_state(svc);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "the metrics endpoint failed");
    }
}

async fn metrics(State(svc): State<Arc<TracerService>>) -> impl IntoResponse {
    let now = svc.scrape().await;
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        crate::metrics::get().render(now),
    )
}
