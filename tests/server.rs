//! The real server on 127.0.0.1:0: batches over a socket, exact `/metrics` figures, sessions
//! closed by the live sweeper, and the admin endpoints.

mod common;

use common::server::{ORIGIN, TestServer, config};
use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

fn now() -> i64 {
    touchstream::now_ms()
}

fn ev(id: &str, kind: &str, session: &str, props: Value) -> Value {
    json!({"id": id, "type": kind, "ts": now(), "session": session, "props": props})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_site_and_stage_series_exists_at_zero_from_start_up() {
    let server = TestServer::start(config(Duration::from_secs(60))).await;
    let s = server.scrape().await;
    for stage in [
        "visit",
        "product_view",
        "add_to_cart",
        "checkout",
        "purchase",
    ] {
        let filter = [("site", "demo"), ("stage", stage)];
        assert_eq!(
            s.series("touchstream_funnel_sessions_total", &filter)
                .count(),
            27,
            "{stage}"
        );
        assert_eq!(s.sum("touchstream_funnel_sessions_total", &filter), 0.0);
        assert_eq!(
            s.series("touchstream_funnel_dropoffs_total", &filter)
                .count(),
            27,
            "{stage}"
        );
        assert_eq!(
            s.series("touchstream_funnel_active_sessions", &filter)
                .count(),
            1,
            "{stage}"
        );
        assert_eq!(
            s.series("touchstream_stage_reached_seconds_count", &filter)
                .count(),
            1,
            "{stage}"
        );
    }
    for name in [
        "touchstream_carts_abandoned_total",
        "touchstream_orders_total",
    ] {
        assert_eq!(s.series(name, &[("site", "demo")]).count(), 27, "{name}");
    }
    for name in [
        "touchstream_revenue_total",
        "touchstream_carts_abandoned_value_total",
        "touchstream_carts_open_value",
    ] {
        assert_eq!(s.series(name, &[("site", "demo")]).count(), 5, "{name}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_day_gives_exact_funnel_figures() {
    let server = TestServer::start(config(Duration::from_millis(500))).await;
    let google = json!({"id": "g1", "type": "page_view", "ts": now(), "session": "organic", "referrer": "https://www.google.com/"});
    let batch = json!({"site": "demo", "sent_at": now(), "events": [
        google,
        ev("a1", "page_view", "abandoner", json!({})),
        ev("a2", "view_item", "abandoner", json!({})),
        ev("a3", "add_to_cart", "abandoner", json!({"value": 50.5, "currency": "PLN"})),
        ev("a4", "add_to_cart", "abandoner", json!({"items": [{"price": 10, "quantity": 2}], "currency": "PLN"})),
        ev("a5", "remove_from_cart", "abandoner", json!({"value": 20, "currency": "PLN"})),
        ev("a6", "payment_failed", "abandoner", json!({})),
        ev("b1", "purchase", "buyer", json!({"value": 129.99, "currency": "EUR", "order_id": "A-1"})),
        ev("b2", "purchase", "buyer", json!({"value": 129.99, "currency": "EUR", "order_id": "A-1"})),
        ev("b1", "purchase", "buyer", json!({"value": 129.99, "currency": "EUR", "order_id": "A-1"})),
        {"id": "bad", "type": "page_view", "session": "x"},
    ]});
    let res = server.post(&batch).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["accepted"], 10);
    assert_eq!(body["rejected"][0]["index"], 10);

    server.wait_applied(10).await;
    let s = server
        .wait_for("every session closed", |s| {
            s.sum("touchstream_engine_open_sessions", &[]) == 0.0
        })
        .await;
    let reached = |stage| {
        s.sum(
            "touchstream_funnel_sessions_total",
            &[("site", "demo"), ("stage", stage)],
        )
    };
    let dropped = |stage| {
        s.sum(
            "touchstream_funnel_dropoffs_total",
            &[("site", "demo"), ("stage", stage)],
        )
    };
    assert_eq!(
        [
            reached("visit"),
            reached("product_view"),
            reached("add_to_cart"),
            reached("checkout"),
            reached("purchase")
        ],
        [3.0, 2.0, 2.0, 1.0, 1.0]
    );
    assert_eq!(
        [
            dropped("visit"),
            dropped("product_view"),
            dropped("add_to_cart"),
            dropped("checkout"),
            dropped("purchase")
        ],
        [1.0, 0.0, 1.0, 0.0, 0.0]
    );
    assert_eq!(
        s.sum(
            "touchstream_funnel_sessions_total",
            &[
                ("stage", "visit"),
                ("channel", "organic_search"),
                ("device", "desktop")
            ]
        ),
        1.0
    );
    assert_eq!(s.sum("touchstream_carts_abandoned_total", &[]), 1.0);
    assert_eq!(
        s.sum(
            "touchstream_carts_abandoned_value_total",
            &[("currency", "PLN")]
        ),
        50.5
    );
    assert_eq!(s.sum("touchstream_carts_open_value", &[]), 0.0);
    assert_eq!(s.sum("touchstream_orders_total", &[]), 1.0);
    assert_eq!(
        s.sum("touchstream_revenue_total", &[("currency", "EUR")]),
        129.99
    );
    assert_eq!(
        s.sum("touchstream_order_value_count", &[("currency", "EUR")]),
        1.0
    );
    assert_eq!(
        s.sum(
            "touchstream_events_filtered_total",
            &[("reason", "duplicate")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "touchstream_friction_total",
            &[("stage", "add_to_cart"), ("kind", "payment_failed")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "touchstream_touchpoints_total",
            &[
                ("phase", "consideration"),
                ("touchpoint", "remove_from_cart")
            ]
        ),
        1.0
    );
    assert_eq!(
        s.sum("touchstream_events_received_total", &[("site", "demo")]),
        11.0
    );
    assert_eq!(
        s.sum("touchstream_events_accepted_total", &[("site", "demo")]),
        10.0
    );
    assert_eq!(
        s.sum(
            "touchstream_events_rejected_total",
            &[("site", "demo"), ("reason", "missing_field")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "touchstream_http_requests_total",
            &[("route", "/v1/events"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        s.sum("touchstream_engine_event_lag_seconds_count", &[]),
        10.0
    );
    assert_eq!(s.sum("touchstream_transport_queue_events", &[]), 0.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sessions_and_carts_are_live_gauges() {
    let server = TestServer::start(config(Duration::from_secs(600))).await;
    let batch = json!({"site": "demo", "events": [
        ev("a1", "view_item", "a", json!({})),
        ev("a2", "add_to_cart", "a", json!({"value": 50.5, "currency": "PLN"})),
        ev("b1", "page_view", "b", json!({})),
    ]});
    assert_eq!(server.post(&batch).await.status(), 200);
    let s = server.wait_applied(3).await;
    assert_eq!(
        s.sum(
            "touchstream_funnel_active_sessions",
            &[("stage", "add_to_cart")]
        ),
        1.0
    );
    assert_eq!(
        s.sum("touchstream_funnel_active_sessions", &[("stage", "visit")]),
        1.0
    );
    assert_eq!(s.sum("touchstream_engine_open_sessions", &[]), 2.0);
    assert_eq!(s.sum("touchstream_carts_open", &[]), 1.0);
    assert_eq!(
        s.sum("touchstream_carts_open_value", &[("currency", "PLN")]),
        50.5
    );
    assert_eq!(s.sum("touchstream_funnel_dropoffs_total", &[]), 0.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_over_the_socket_get_exact_statuses_and_lose_nothing() {
    let server = TestServer::start(config(Duration::from_secs(60))).await;
    let c = &server.client;
    let url = server.events_url();
    let good =
        json!({"site": "demo", "events": [ev("1", "page_view", "s", json!({}))]}).to_string();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(good.as_bytes()).unwrap();
    let mut bomb = GzEncoder::new(Vec::new(), Compression::best());
    bomb.write_all(&vec![b' '; 20 * 1024 * 1024]).unwrap();
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            c.post(&url)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(gz.finish().unwrap()),
            200,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(bomb.finish().unwrap()),
            413,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .body("{\"site\":"),
            400,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .body(vec![b'a'; 513 * 1024]),
            413,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .header("origin", "https://evil.example")
                .body(good.clone()),
            403,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .body(good.replace("demo", "unknown")),
            401,
        ),
        (
            c.post(&url)
                .header("content-type", "multipart/form-data")
                .body(good.clone()),
            415,
        ),
        (
            c.put(&url)
                .header("content-type", "application/json")
                .body(good.clone()),
            405,
        ),
    ];
    for (req, status) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status);
        let body: Value = res.json().await.unwrap();
        if status != 200 {
            assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{body}"
            );
        }
    }
    let s = server.wait_applied(1).await;
    assert_eq!(
        s.sum("touchstream_funnel_sessions_total", &[("stage", "visit")]),
        1.0
    );
    for status in ["400", "401", "403", "405", "413", "415"] {
        let want = if status == "413" { 2.0 } else { 1.0 };
        assert_eq!(
            s.sum("touchstream_http_requests_total", &[("status", status)]),
            want,
            "status {status}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_answer_and_metrics_stay_off_the_public_listener() {
    let server = TestServer::start(config(Duration::from_secs(60))).await;
    let c = &server.client;
    let health = c
        .get(format!("http://{}/healthz", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = c
        .get(format!("http://{}/readyz", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = c
        .get(format!("http://{}/metrics", server.admin))
        .send()
        .await
        .unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let public = c
        .get(format!("http://{}/metrics", server.public))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    server.stop().await;
}
