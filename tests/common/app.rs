//! The public router without a socket, with its transport (`serve`'s: the write-ahead log in a
//! state directory of its own, and the queue to the engine) and metrics, for request-level
//! tests.

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;
use std::sync::Arc;
use touchstream::collector::{CollectorState, router};
use touchstream::config::Config;
use touchstream::metrics::Metrics;
use touchstream::state::{self, LogOptions};
use touchstream::transport::durable::{DurableSource, durable};
use tower::ServiceExt;

pub const ORIGIN: &str = "http://shop.test";

pub struct Harness {
    pub app: axum::Router,
    pub state: Arc<CollectorState>,
    pub source: DurableSource,
    pub metrics: Arc<Metrics>,
    _state: tempfile::TempDir,
}

impl Harness {
    pub fn new(config: &Config) -> Self {
        let metrics = Arc::new(Metrics::new(config));
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = state::log::open(dir.path(), LogOptions::default()).unwrap();
        let t = &config.transport;
        let (sink, source, _) = durable(log, t.queue_events, t.enqueue_timeout, &metrics.transport);
        let state = Arc::new(CollectorState::new(config, Arc::new(sink), metrics.clone()));
        Harness {
            app: router(state.clone()),
            state,
            source,
            metrics,
            _state: dir,
        }
    }

    /// A metric's value, summed over the series matching `filter`.
    pub fn metric(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        super::prom::Scrape::parse(&self.metrics.encode()).sum(name, filter)
    }
}

/// A JSON POST to /v1/events from the allowed origin.
pub fn post() -> axum::http::request::Builder {
    Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ORIGIN, ORIGIN)
}

pub async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, body) = send_raw(app, req).await;
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap()
    };
    (status, headers, json)
}

pub async fn post_json(app: &axum::Router, body: &Value) -> (StatusCode, HeaderMap, Value) {
    send(app, post().body(Body::from(body.to_string())).unwrap()).await
}

pub async fn send_raw(app: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}
