//! Request counting for both listeners. The route label is a known path or `other`, never the
//! raw path, so scanners probing random URLs add no series.

use crate::metrics::Metrics;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;

const ROUTES: &[&str] = &["/v1/events", "/metrics", "/healthz", "/readyz"];

/// The `route` label for a request path.
pub fn route_label(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

/// Middleware recording `touchstream_http_requests_total` and the duration histogram.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.http.record(
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
