//! The admin listener: `/metrics` (Prometheus), `/healthz` (the process is up) and `/readyz`
//! (it can take events: started, not shutting down, transport ready). Kept off the public
//! listener so the internet never sees metrics.

use crate::collector::track;
use crate::metrics::Metrics;
use crate::transport::EventSink;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
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
    pub sink: Arc<dyn EventSink>,
    /// False before start-up completes and from the moment shutdown begins.
    pub ready: AtomicBool,
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

async fn metrics(State(st): State<Arc<AdminState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], st.metrics.encode())
}

async fn readyz(State(st): State<Arc<AdminState>>) -> impl IntoResponse {
    let ready = st.ready.load(Ordering::Relaxed);
    let transport = st.sink.is_ready();
    let status = if ready && transport {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let reason = match (ready, transport) {
        (true, true) => "ready",
        (false, _) => "starting or shutting down",
        (true, false) => "transport not ready",
    };
    (status, Json(json!({"status": reason})))
}
