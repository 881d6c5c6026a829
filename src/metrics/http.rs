//! Request counting for both listeners. The route label is a known path or `other`, never the
//! raw path, so scanners probing random URLs add no series; the status is the answer's code.
//! Series are resolved by index (route, status), so a request costs no label hashing.

use super::cells::{LazyCells, Registrar};
use super::{Metrics, labels, latency_buckets};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use std::time::Instant;

closed_label!(
    /// The `route` label: the paths the listeners serve by name; the rest (the snippet, the
    /// demo shop, unknown paths) is `other`.
    Route {
        Events => "/v1/events",
        Metrics => "/metrics",
        Healthz => "/healthz",
        Readyz => "/readyz",
        Other => "other",
    }
);

impl Route {
    /// The route of a request path.
    pub fn of(path: &str) -> Route {
        Route::from_label(path).unwrap_or(Route::Other)
    }
}

/// Status codes a response can carry (hyper allows 100 to 999).
const STATUSES: std::ops::RangeInclusive<u16> = 100..=999;

/// HTTP request and connection metrics of both listeners.
#[derive(Debug)]
pub struct HttpMetrics {
    /// `touchstream_http_requests_total{route, status}`: `[route][status - 100]`.
    requests: LazyCells<Counter>,
    /// `touchstream_http_request_duration_seconds{route}`, per route.
    duration: LazyCells<Histogram>,
    /// `touchstream_http_connections_open`: connections held now, both listeners.
    pub connections_open: Gauge,
    /// `touchstream_http_connections_refused_total`: connections closed at once because the
    /// listener held `limits.max_connections`.
    pub connections_refused: Counter,
}

impl HttpMetrics {
    pub(super) fn new(r: &mut Registrar) -> Self {
        let requests = r.counters((
            "touchstream_http_requests",
            "HTTP requests by route and status.",
        ));
        let statuses = STATUSES.len();
        let durations = r.histograms(
            (
                "touchstream_http_request_duration_seconds",
                "HTTP request duration by route.",
            ),
            latency_buckets,
        );
        Self {
            requests: LazyCells::new(Route::ALL.len() * statuses, move |i| {
                let (route, status) = (
                    Route::ALL[i / statuses],
                    *STATUSES.start() as usize + i % statuses,
                );
                let l = labels([("route", route.as_str()), ("status", &status.to_string())]);
                requests.get_or_create(&l).clone()
            }),
            duration: LazyCells::new(Route::ALL.len(), move |i| {
                let l = labels([("route", Route::ALL[i].as_str())]);
                durations.get_or_create(&l).clone()
            }),
            connections_open: r.gauge((
                "touchstream_http_connections_open",
                "HTTP connections held now.",
            )),
            connections_refused: r.counter((
                "touchstream_http_connections_refused",
                "HTTP connections closed at once because the listener was full.",
            )),
        }
    }

    /// Records one answered request.
    pub fn record(&self, route: Route, status: u16, seconds: f64) {
        let status =
            usize::from(status.clamp(*STATUSES.start(), *STATUSES.end()) - STATUSES.start());
        self.requests
            .get(route.index() * STATUSES.len() + status)
            .inc();
        self.duration.get(route.index()).observe(seconds);
    }
}

/// Middleware recording `touchstream_http_requests_total` and the duration histogram.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = Route::of(req.uri().path());
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.http.record(
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_paths_or_other() {
        assert_eq!(Route::of("/v1/events"), Route::Events);
        assert_eq!(Route::of("/readyz"), Route::Readyz);
        assert_eq!(Route::of("other"), Route::Other);
        assert_eq!(Route::of("/v1/events/x"), Route::Other);
    }

    #[test]
    fn each_route_and_status_has_its_own_series() {
        let config = crate::config::Config::default();
        let m = Metrics::new(&config);
        m.http.record(Route::Events, 200, 0.001);
        m.http.record(Route::Events, 200, 0.001);
        m.http.record(Route::Other, 404, 0.001);
        m.http.record(Route::Metrics, 999, 0.001);
        let text = m.encode();
        for line in [
            r#"touchstream_http_requests_total{route="/v1/events",status="200"} 2"#,
            r#"touchstream_http_requests_total{route="other",status="404"} 1"#,
            r#"touchstream_http_requests_total{route="/metrics",status="999"} 1"#,
            r#"touchstream_http_request_duration_seconds_count{route="/v1/events"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
