//! The public router without a socket: exact statuses, bodies and CORS headers, and what
//! reaches the transport.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::app::{Harness, ORIGIN, post, post_json, send, send_raw};
use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;
use touchstream::config::Config;
use touchstream::transport::durable::Input;

fn harness(queue: usize) -> Harness {
    let mut config = Config::default();
    config.sites[0].origins = vec![ORIGIN.into()];
    config.sites[0].honor_gpc = true;
    config.limits.max_batch_events = 5;
    config.transport.queue_events = queue;
    config.transport.enqueue_timeout = Duration::from_millis(50);
    Harness::new(&config)
}

fn event(id: &str) -> Value {
    json!({"id": id, "type": "page_view", "ts": 1_763_800_000_000i64, "session": "s1"})
}

#[tokio::test]
async fn partial_batch_takes_good_events_and_names_bad_ones() {
    let mut h = harness(100);
    let batch = json!({"site": "demo", "sent_at": 1_763_800_000_500i64, "events": [
        event("a"), {"id": "b", "type": "page_view", "session": "s1"}, 7, event("c")
    ]});
    let (status, headers, body) = post_json(&h.app, &batch).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["reason"], "missing_field");
    assert!(
        body["rejected"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ts")
    );
    assert_eq!(
        body["rejected"][1],
        json!({"index": 2, "reason": "not_an_object", "message": "each event must be a JSON object"})
    );
    let Some((Input::Batch { events, .. }, _)) = h.source.next().await else {
        panic!("a batch is queued for the engine");
    };
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(h.metrics.ingest.received(0).get(), 4);
    assert_eq!(h.metrics.ingest.accepted(0).get(), 2);
}

#[tokio::test]
async fn text_plain_and_gzip_bodies_are_accepted() {
    let h = harness(100);
    let batch = json!({"site": "demo", "events": [event("a")]}).to_string();
    let req = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(Body::from(batch.clone()));
    let (status, _, body) = send(&h.app, req.unwrap()).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(1))
    );

    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(batch.as_bytes()).unwrap();
    let req = post()
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gz.finish().unwrap()));
    let (status, _, body) = send(&h.app, req.unwrap()).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(1))
    );
}

#[tokio::test]
async fn whole_request_failures_have_their_status_and_code() {
    let h = harness(100);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post().body(Body::from("{not json")).unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            post()
                .body(Body::from(vec![b'{', 0xff, 0xfe, b'}']))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            post()
                .body(Body::from(r#"{"site":"demo","events":{}}"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            post().body(Body::from(r#"{"events":[]}"#)).unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            post()
                .body(Body::from(r#"{"site":"nope","events":[]}"#))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unknown_site",
        ),
        (
            Request::post("/v1/events")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::from(r#"{"site":"demo","events":[]}"#))
                .unwrap(),
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
        ),
        (
            post()
                .body(Body::from(
                    json!({"site": "demo", "events": vec![event("a"); 6]}).to_string(),
                ))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            post().body(Body::from(vec![b' '; 600 * 1024])).unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            Request::post("/v1/events")
                .header(header::CONTENT_TYPE, "application/xml")
                .body(Body::from("<a/>"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post()
                .header(header::CONTENT_ENCODING, "br")
                .body(Body::from("x"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post()
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Body::from("plain"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            Request::get("/v1/events").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::get("/admin").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (req, status, code) in cases {
        let (got, headers, body) = send(&h.app, req).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(headers[header::ALLOW], "POST, OPTIONS");
        }
    }
    assert_eq!(h.metrics.ingest.accepted(0).get(), 0);
}

#[tokio::test]
async fn preflight_allows_configured_origins_only() {
    let h = harness(100);
    let pre = |origin: &str| {
        Request::options("/v1/events")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers, _) = send(&h.app, pre(ORIGIN)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    assert!(
        headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("content-type")
    );
    let (status, headers, body) = send(&h.app, pre("https://evil.example")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("origin_not_allowed"))
    );
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn a_full_transport_answers_503_with_retry_after_and_accepts_nothing() {
    let h = harness(5);
    let batch = |ids: &[&str]| json!({"site": "demo", "events": ids.iter().map(|i| event(i)).collect::<Vec<_>>()});
    assert_eq!(
        post_json(&h.app, &batch(&["a", "b", "c", "d"])).await.0,
        StatusCode::OK
    );
    let (status, headers, body) = post_json(&h.app, &batch(&["e", "f"])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(h.metrics.ingest.accepted(0).get(), 4);
    assert_eq!(
        h.metrics
            .ingest
            .rejected(0, touchstream::event::RejectReason::Unavailable)
            .get(),
        2
    );
    assert_eq!(h.metrics.ingest.received(0).get(), 6);
}

#[tokio::test]
async fn bots_and_gpc_are_accepted_but_filtered() {
    let mut h = harness(100);
    let req = post()
        .header(
            header::USER_AGENT,
            "Mozilla/5.0 (compatible; Googlebot/2.1)",
        )
        .body(Body::from(
            json!({"site": "demo", "events": [event("a"), event("b")]}).to_string(),
        ))
        .unwrap();
    let (status, _, body) = send(&h.app, req).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(2))
    );
    assert_eq!(
        h.metrics
            .ingest
            .filtered(0, touchstream::event::FilterReason::Bot)
            .get(),
        2
    );
    let text = h.metrics.encode();
    assert!(
        text.contains(r#"touchstream_events_filtered_total{site="demo",reason="bot"} 2"#),
        "{text}"
    );
    let req = post()
        .header("sec-gpc", "1")
        .body(Body::from(
            json!({"site": "demo", "events": [event("c")]}).to_string(),
        ))
        .unwrap();
    let (status, _, body) = send(&h.app, req).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    assert_eq!(
        h.metrics
            .ingest
            .filtered(0, touchstream::event::FilterReason::Consent)
            .get(),
        1
    );
    // Nothing reached the transport.
    drop(h.app);
    h.source.close();
    assert!(h.source.next().await.is_none());
}

#[tokio::test]
async fn client_text_never_becomes_a_label() {
    let h = harness(1000);
    for i in 0..300 {
        let batch = json!({"site": "demo", "events": [{
            "id": format!("e{i}"), "type": format!("type_{i}"), "ts": 1, "session": format!("s{i}"),
            "utm": {"source": format!("src{i}"), "medium": format!("m{i}")},
            "props": {"currency": "ZZZ", "value": 1}
        }]});
        assert_eq!(post_json(&h.app, &batch).await.0, StatusCode::OK);
        let _ = post_json(&h.app, &json!({"site": format!("site{i}"), "events": []})).await;
    }
    let text = h.metrics.encode();
    assert!(
        !text.contains("type_1")
            && !text.contains("src1")
            && !text.contains("site1")
            && !text.contains("ZZZ")
    );
}

mod no_input_panics {
    use super::*;
    use proptest::prelude::*;

    fn json_ish() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| format!("{n:e}")),
            "[a-zA-Z0-9 _]{0,8}".prop_map(|s| format!("\"{s}\"")),
            Just("\"demo\"".to_string()),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let key = prop_oneof![
                Just("site"),
                Just("events"),
                Just("id"),
                Just("type"),
                Just("ts"),
                Just("session"),
                Just("props"),
                Just("value"),
                Just("items"),
                Just("price"),
                Just("utm"),
                Just("x")
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((key, inner), 0..6).prop_map(|kv| {
                    format!(
                        "{{{}}}",
                        kv.iter()
                            .map(|(k, v)| format!("\"{k}\":{v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn garbage_gets_a_client_error_or_a_partial_accept(body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            json_ish().prop_map(String::into_bytes),
            json_ish().prop_map(|e| format!(r#"{{"site":"demo","sent_at":5,"events":[{e},{e}]}}"#).into_bytes()),
        ]) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let h = harness(10_000);
            let (status, _, json) = rt.block_on(send(&h.app, post().body(Body::from(body)).unwrap()));
            prop_assert!(status == StatusCode::OK || status.is_client_error(), "{status} {json}");
            if status == StatusCode::OK {
                let accepted = json["accepted"].as_u64().unwrap();
                let rejected = json["rejected"].as_array().unwrap().len() as u64;
                prop_assert_eq!(h.metrics.ingest.received(0).get(), accepted + rejected);
            } else {
                prop_assert!(json["error"].is_string() && json["message"].is_string());
            }
        }
    }
}

#[tokio::test]
async fn the_snippet_is_served_cacheable_with_an_etag() {
    let h = harness(10);
    let (status, headers, _) =
        send_raw(&h.app, Request::get("/t.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=3600");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let etag = headers[header::ETAG].clone();
    let again = Request::get("/t.js")
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send_raw(&h.app, again).await.0, StatusCode::NOT_MODIFIED);
    for page in [
        "/demo",
        "/demo/product",
        "/demo/cart",
        "/demo/checkout",
        "/demo/thank-you",
    ] {
        let (status, _, body) =
            send_raw(&h.app, Request::get(page).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            body.contains(r#"<script async src="/t.js" data-site="demo""#),
            "{page}"
        );
    }
    let (status, _, _) = send_raw(
        &h.app,
        Request::get("/demo/admin").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
