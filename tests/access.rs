//! Who may send, at what rate: write keys and their rotation, signed server-side requests,
//! origins, and the site and client-address rate limits (429 with Retry-After, and nothing of a
//! refused batch accepted).

mod common;

use axum::body::Body;
use axum::http::{StatusCode, header};
use common::app::{Harness, ORIGIN, post, post_json, send};
use serde_json::{Value, json};
use touchstream::collector::{SIGNATURE_HEADER, sign};
use touchstream::config::{Config, SiteConfig};

const KEY: &str = "pk_live_4f9a2c7e1b";
const NEW_KEY: &str = "pk_live_8d3e5f0a6c";
const SECRET: &str = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";

fn batch(site: &str, id: &str) -> Value {
    json!({"site": site, "events": [{"id": id, "type": "page_view", "ts": touchstream::now_ms(), "session": "s"}]})
}

fn config() -> Config {
    let mut c = Config::default();
    c.sites[0].origins = vec![ORIGIN.into()];
    c.sites[0].keys = vec![KEY.into()];
    c.sites[0].signing_secrets = vec![SECRET.into()];
    c.sites.push(SiteConfig {
        id: "other".into(),
        origins: vec![ORIGIN.into()],
        ..SiteConfig::default()
    });
    c.limits.client_requests_per_second = 0;
    c
}

fn accepted(h: &Harness, site: &str) -> f64 {
    h.metric("touchstream_events_accepted_total", &[("site", site)])
}

#[tokio::test]
async fn a_batch_names_its_site_by_id_or_write_key_and_is_counted_under_the_id() {
    let h = Harness::new(&config());
    assert_eq!(
        post_json(&h.app, &batch("demo", "a")).await.0,
        StatusCode::OK
    );
    assert_eq!(post_json(&h.app, &batch(KEY, "b")).await.0, StatusCode::OK);
    assert_eq!(accepted(&h, "demo"), 2.0);
    let (status, _, body) = post_json(&h.app, &batch("pk_live_revoked0000", "c")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unknown_site");
    // The write key never becomes a label value.
    assert!(!h.metrics.encode().contains(KEY));

    let mut strict = config();
    strict.sites[0].require_key = true;
    let h = Harness::new(&strict);
    let (status, _, body) = post_json(&h.app, &batch("demo", "a")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "key_required");
    assert_eq!(post_json(&h.app, &batch(KEY, "b")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn keys_rotate_without_a_restart_and_site_ids_cannot_change_on_reload() {
    let h = Harness::new(&config());
    let mut rotated = config();
    rotated.sites[0].keys = vec![NEW_KEY.into()];
    h.state.reload_sites(&rotated).unwrap();
    assert_eq!(
        post_json(&h.app, &batch(NEW_KEY, "a")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        post_json(&h.app, &batch(KEY, "b")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mut renamed = config();
    renamed.sites[1].id = "renamed".into();
    let err = h.state.reload_sites(&renamed).unwrap_err();
    assert!(err.contains("restart"), "{err}");
    assert_eq!(
        post_json(&h.app, &batch(NEW_KEY, "c")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn origins_are_enforced_for_browsers_and_signed_requests_bypass_them() {
    let h = Harness::new(&config());
    let body = batch("demo", "a").to_string();
    let from = |origin: &str| {
        axum::http::Request::post("/v1/events")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ORIGIN, origin)
    };
    let (status, _, answer) = send(
        &h.app,
        from("https://evil.test")
            .body(Body::from(body.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "origin_not_allowed");

    let now = touchstream::now_ms() / 1000;
    let signed = sign(SECRET, now, body.as_bytes());
    let req = from("https://evil.test").header(SIGNATURE_HEADER, &signed);
    assert_eq!(
        send(&h.app, req.body(Body::from(body.clone())).unwrap())
            .await
            .0,
        StatusCode::OK
    );

    // A signature that does not match, has expired, or comes under another secret: 401.
    for header_value in [
        sign(SECRET, now, b"another body"),
        sign(SECRET, now - 600, body.as_bytes()),
        sign("not-the-secret-not-the-secret-xx", now, body.as_bytes()),
        "v1=zz".to_string(),
    ] {
        let req = post().header(SIGNATURE_HEADER, &header_value);
        let (status, _, answer) = send(&h.app, req.body(Body::from(body.clone())).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header_value}");
        assert_eq!(answer["error"], "bad_signature");
    }
    // A site without secrets cannot be reached by a signature.
    let other = batch("other", "b").to_string();
    let req = post().header(SIGNATURE_HEADER, sign(SECRET, now, other.as_bytes()));
    assert_eq!(
        send(&h.app, req.body(Body::from(other)).unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// A known answer made with the README's shell recipe, independent of the product's code:
/// `printf '%s.%s' 1763800000 "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -r`.
const KNOWN_BODY: &str = r#"{"site":"demo","events":[{"id":"e1","type":"purchase","ts":1763800000000,"session":"s-7d1f9a","props":{"value":129.99,"currency":"PLN","order_id":"A-1001"}}]}"#;
const KNOWN_MAC: &str = "48da9e2b2731e4992273ecac0da52df01defd2920d64870a7a804a395723389d";

#[test]
fn signatures_match_the_readme_openssl_recipe() {
    assert_eq!(
        sign(SECRET, 1_763_800_000, KNOWN_BODY.as_bytes()),
        format!("t=1763800000,v1={KNOWN_MAC}")
    );
}

#[tokio::test]
async fn a_request_signed_by_the_readme_shell_recipe_is_accepted() {
    // The collector checks the signature's time, so a fixed known answer cannot pass it: the
    // README's recipe itself signs this request, now, in a shell (tests/run.sh installs openssl).
    let h = Harness::new(&config());
    let body = batch("demo", "signed-by-shell").to_string();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"t=$(date +%s); sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1); printf 't=%s,v1=%s' "$t" "$sig""#)
        .env("body", &body)
        .env("SECRET", SECRET)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header_value = String::from_utf8(out.stdout).unwrap();
    let req = post()
        .header(header::ORIGIN, "https://elsewhere.test")
        .header(SIGNATURE_HEADER, &header_value);
    let (status, _, answer) = send(&h.app, req.body(Body::from(body)).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{header_value}: {answer}");
    assert_eq!(accepted(&h, "demo"), 1.0);
}

#[tokio::test]
async fn a_site_over_its_rate_gets_429_and_another_site_is_untouched() {
    let mut c = config();
    c.limits.site_events_per_second = 10;
    c.limits.site_burst_events = 20;
    let h = Harness::new(&c);
    let mut limited = 0;
    for i in 0..40 {
        let (status, headers, body) = post_json(&h.app, &batch("demo", &format!("d{i}"))).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert_eq!(body["error"], "rate_limited");
            let retry: u64 = headers[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
        } else {
            assert_eq!(status, StatusCode::OK);
        }
        // The other site, within its own rate, passes whatever the first one does.
        if i % 4 == 0 {
            let other = batch("other", &format!("o{i}"));
            assert_eq!(post_json(&h.app, &other).await.0, StatusCode::OK);
        }
    }
    assert!((19..=21).contains(&(40 - limited)), "{limited} limited");
    // received = accepted + rejected: refused batches are counted as rate_limited.
    let received = h.metric("touchstream_events_received_total", &[("site", "demo")]);
    let rejected = h.metric(
        "touchstream_events_rejected_total",
        &[("site", "demo"), ("reason", "rate_limited")],
    );
    assert_eq!(received, 40.0);
    assert_eq!(accepted(&h, "demo") + rejected, received);
    assert_eq!(rejected, f64::from(limited));
    assert_eq!(accepted(&h, "other"), 10.0);
}

#[tokio::test]
async fn a_client_address_over_its_rate_gets_429_before_its_body_is_read() {
    let mut c = config();
    c.limits.client_requests_per_second = 5;
    c.limits.client_burst_requests = 10;
    c.limits.client_address_header = "x-forwarded-for".into();
    let h = Harness::new(&c);
    // The connection comes from the proxy, a trusted address by default.
    let proxy: std::net::SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let from = |ip: &str, id: &str| {
        post()
            .header("x-forwarded-for", format!("198.51.100.7, {ip}"))
            .extension(axum::extract::ConnectInfo(proxy))
            .body(Body::from(batch("demo", id).to_string()))
            .unwrap()
    };
    let mut statuses = Vec::new();
    for i in 0..15 {
        statuses.push(send(&h.app, from("203.0.113.1", &format!("a{i}"))).await.0);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses[14], StatusCode::TOO_MANY_REQUESTS);
    // Another address is not held back by the first.
    assert_eq!(
        send(&h.app, from("203.0.113.2", "b")).await.0,
        StatusCode::OK
    );
    // Nothing of a refused request was accepted, and no site series counted it.
    assert_eq!(accepted(&h, "demo"), 11.0);
    assert_eq!(
        h.metric("touchstream_events_received_total", &[("site", "demo")]),
        11.0
    );
}
