//! The admin listener: `/metrics` (Prometheus), `/healthz` (the process is up) and `/readyz`
//! (it can do its work: started, not shutting down, transport reachable). Kept off the public
//! listener so the internet never sees metrics.

use crate::metrics::{Exposition, Metrics, track};
use crate::transport::EventSink;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Content type of the OpenMetrics text exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Shared state of the admin listener.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub exposition: Arc<dyn Exposition>,
    /// The collector's transport, whose reachability `/readyz` reports (none in `engine`).
    pub sink: Option<Arc<dyn EventSink>>,
    /// False from the moment shutdown begins.
    pub ready: AtomicBool,
    /// The collector, whose set-up warnings `/readyz` shows (none in `engine`).
    pub collector: std::sync::OnceLock<Arc<crate::collector::CollectorState>>,
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), track))
        .with_state(state)
}

async fn metrics(State(st): State<Arc<AdminState>>) -> Response {
    match st.exposition.render().await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "scrape refused");
            (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
        }
    }
}

async fn readyz(State(st): State<Arc<AdminState>>) -> impl IntoResponse {
    let ready = st.ready.load(Ordering::Relaxed);
    let transport = st.sink.as_ref().is_none_or(|s| s.is_ready());
    let status = if ready && transport {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let reason = match (ready, transport) {
        (true, true) => "ready",
        (false, _) => "shutting down",
        (true, false) => "transport not reachable",
    };
    let warnings = st.collector.get().map(|c| c.warnings()).unwrap_or_default();
    (
        status,
        Json(json!({"status": reason, "warnings": warnings})),
    )
}
