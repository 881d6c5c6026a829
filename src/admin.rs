//! The admin listener: `/metrics` (Prometheus), `/healthz` (the process is up) and `/readyz`
//! (it can do its work: started, recovered, not shutting down, transport reachable). Kept off
//! the public listener so the internet never sees metrics.
//!
//! While `serve` recovers its state (loads a checkpoint, replays its log), `/healthz` answers,
//! and `/readyz` and `/metrics` answer 503 `recovering`: the counters are then on their way
//! back up to what was last exported, and a scrape of them would read as a counter reset.

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
    /// The collector's transport, whose reachability `/readyz` reports (none in `engine`; set
    /// once `serve` has recovered).
    pub sink: std::sync::OnceLock<Arc<dyn EventSink>>,
    /// False from the moment shutdown begins.
    pub ready: AtomicBool,
    /// True while `serve` recovers its state.
    pub recovering: AtomicBool,
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
    if st.recovering.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "recovering").into_response();
    }
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
    let recovering = st.recovering.load(Ordering::Relaxed);
    let transport = st.sink.get().is_none_or(|s| s.is_ready());
    let status = if ready && !recovering && transport {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let reason = match (ready, recovering, transport) {
        (false, _, _) => "shutting down",
        (true, true, _) => "recovering",
        (true, false, true) => "ready",
        (true, false, false) => "transport not reachable",
    };
    let warnings = st.collector.get().map(|c| c.warnings()).unwrap_or_default();
    (
        status,
        Json(json!({"status": reason, "warnings": warnings})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn status(state: &Arc<AdminState>, path: &str) -> (StatusCode, String) {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let res = router(state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn while_recovering_only_healthz_answers_200() {
        let metrics = Arc::new(Metrics::new(&Config::default()));
        let state = Arc::new(AdminState {
            metrics: metrics.clone(),
            exposition: metrics,
            sink: Default::default(),
            ready: true.into(),
            recovering: true.into(),
            collector: Default::default(),
        });
        assert_eq!(status(&state, "/healthz").await.0, StatusCode::OK);
        let (code, body) = status(&state, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("recovering"), "{body}");
        assert_eq!(
            status(&state, "/metrics").await,
            (StatusCode::SERVICE_UNAVAILABLE, "recovering".to_string())
        );
        state.recovering.store(false, Ordering::Relaxed);
        assert_eq!(status(&state, "/readyz").await.0, StatusCode::OK);
        assert_eq!(status(&state, "/metrics").await.0, StatusCode::OK);
    }
}
