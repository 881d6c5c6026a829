//! The step alerts end to end: a real Prometheus (Debian's, installed by ./tests/run.sh) with
//! the production rules, scraping a live touchstream fed normal checkout traffic and then a
//! breakage (checkouts stop converting, for everyone on one shop and on phones only on another),
//! must report the pages through its API.
//!
//! The rule expressions are production's; only their durations are divided by `TIME_SCALE`
//! (10m -> 10s, 2h -> 2min, keep_firing_for: 10m -> 10s), so the test takes minutes, not hours.

mod common;

use common::prometheus::{Prometheus, production_rules};
use common::server::{TestServer, config};
use serde_json::json;
use std::time::{Duration, Instant};

/// Production durations are divided by this.
const TIME_SCALE: u64 = 60;

fn seconds(number: u64, unit: &str) -> Option<u64> {
    Some(
        number
            * match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                "w" => 604_800,
                _ => return None,
            },
    )
}

/// `rules` with every duration (in `[...]`, after `offset `, in `for:`, `keep_firing_for:` and a
/// group's `interval:`) divided by `scale`.
fn scale_durations(rules: &str, scale: u64) -> String {
    let mut out = String::with_capacity(rules.len());
    let bytes = rules.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_';
        let context = rules[..i].ends_with('[')
            || rules[..i].ends_with("offset ")
            || rules[..i].ends_with("for: ")
            || rules[..i].ends_with("interval: ");
        if starts && context && bytes[i].is_ascii_digit() {
            let digits = rules[i..].bytes().take_while(u8::is_ascii_digit).count();
            let unit = &rules[i + digits..i + digits + 1];
            if let Some(s) = seconds(rules[i..i + digits].parse().unwrap(), unit) {
                out.push_str(&format!("{}ms", s * 1000 / scale));
                i += digits + 1;
                continue;
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

#[test]
fn scaling_keeps_expressions_and_divides_durations() {
    let rule = "interval: 1m\nexpr: rate(x[15m]) / (y[1d] offset 1w)\n        for: 10m\n        keep_firing_for: 10m\n        labels: {a: 5m}";
    assert_eq!(
        scale_durations(rule, 60),
        "interval: 1000ms\nexpr: rate(x[15000ms]) / (y[1440000ms] offset 10080000ms)\n        for: 10000ms\n        keep_firing_for: 10000ms\n        labels: {a: 5m}"
    );
}

const MOBILE: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
const DESKTOP: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";

/// The firing page alerts of `site` as (alertname, scope, segment value, step).
async fn pages(prometheus: &Prometheus, site: &str) -> Vec<(String, String, String, String)> {
    let label = |a: &serde_json::Value, name: &str| {
        a["labels"][name].as_str().unwrap_or_default().to_string()
    };
    (prometheus.alerts().await.iter())
        .filter(|a| a["state"] == "firing" && a["labels"]["site"] == site)
        .filter(|a| a["labels"]["severity"] == "page")
        .map(|a| {
            let segment = label(a, "channel") + &label(a, "device");
            (
                label(a, "alertname"),
                label(a, "scope"),
                segment,
                label(a, "step"),
            )
        })
        .collect()
}

/// `checkouts` sessions of `site` on a device (`user_agent`) begin checkout, `purchases` of
/// them buy.
async fn shoppers(
    server: &TestServer,
    site: &str,
    user_agent: &str,
    name: &str,
    checkouts: usize,
    purchases: usize,
) {
    let now = touchstream::now_ms();
    let mut events = Vec::new();
    for i in 0..checkouts {
        let session = format!("{site}-{name}-{i}");
        events.push(json!({"id": format!("{session}-c"), "type": "begin_checkout", "ts": now, "session": session}));
        if i < purchases {
            events.push(json!({"id": format!("{session}-p"), "type": "purchase", "ts": now, "session": session,
                               "props": {"value": 50, "currency": "USD"}}));
        }
    }
    let status = (server.client.post(server.events_url()))
        .header("content-type", "application/json")
        .header("origin", common::server::ORIGIN)
        .header("user-agent", user_agent)
        .body(json!({"site": site, "events": events}).to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// One second of traffic on both shops: 6 desktop and 4 mobile checkouts each, half of them
/// buying, but none on `demo` once `broken`, and none on `shop2`'s phones.
async fn second_of_traffic(server: &TestServer, tick: usize, broken: bool) {
    let (desktop, mobile) = (format!("{tick}-d"), format!("{tick}-m"));
    tokio::join!(
        shoppers(
            server,
            "demo",
            DESKTOP,
            &desktop,
            6,
            if broken { 0 } else { 3 }
        ),
        shoppers(
            server,
            "demo",
            MOBILE,
            &mobile,
            4,
            if broken { 0 } else { 2 }
        ),
        shoppers(server, "shop2", DESKTOP, &desktop, 6, 3),
        shoppers(
            server,
            "shop2",
            MOBILE,
            &mobile,
            4,
            if broken { 0 } else { 2 }
        ),
        tokio::time::sleep(Duration::from_secs(1)),
    );
}

/// Two shops at 10 checkouts a second (600 a scaled minute), half converting. After two scaled
/// hours (the baseline's shortest tier: the hour before the last) checkout breaks on `demo` for
/// everyone and on `shop2` for phones only. Both page on the checkout step: `demo` site-wide,
/// `shop2` for mobile and never for desktop, which still converts; nothing pages before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_step_pages_site_wide_and_in_one_segment_in_a_real_prometheus() {
    let mut config = config(Duration::from_secs(3600));
    let mut second = config.sites[0].clone();
    second.id = "shop2".into();
    config.sites.push(second);
    let server = TestServer::start(config).await;
    let prometheus = Prometheus::start(
        &scale_durations(&production_rules(), TIME_SCALE),
        &[("touchstream", &[server.admin])],
    )
    .await;

    let normal = Instant::now();
    let mut tick = 0;
    while normal.elapsed() < Duration::from_secs(135) {
        second_of_traffic(&server, tick, false).await;
        tick += 1;
        for site in ["demo", "shop2"] {
            let pages = pages(&prometheus, site).await;
            assert!(
                pages.is_empty(),
                "{site} pages in normal traffic: {pages:?}"
            );
        }
    }
    let baseline = prometheus
        .api(
            "/api/v1/query",
            &[(
                "query",
                r#"site_journey_step_segment:touchstream_step_conversion:baseline{step="checkout_to_purchase",device="mobile"}"#
                    .to_string(),
            )],
        )
        .await;
    assert_eq!(
        baseline["data"]["result"].as_array().map(Vec::len),
        Some(2),
        "both shops have a baseline for phones by now: {baseline}"
    );

    // Each shop gets both pages for its checkout: StepStopped (nobody buys where many were
    // expected) and StepConversionDropped (the shortfall's score), each at the right scope.
    let broke = Instant::now();
    let wanted = ["StepStopped", "StepConversionDropped"];
    let (mut demo, mut phones) = (Vec::new(), Vec::new());
    while demo.len() < 2 || phones.len() < 2 {
        second_of_traffic(&server, tick, true).await;
        tick += 1;
        let checkout = |p: &(String, String, String, String)| p.3 == "checkout_to_purchase";
        for p in pages(&prometheus, "demo").await {
            if checkout(&p) && p.1 == "site" && !demo.iter().any(|(n, _)| *n == p.0) {
                demo.push((p.0, broke.elapsed()));
            }
        }
        let found = pages(&prometheus, "shop2").await;
        assert!(
            !found.iter().any(|p| p.2 == "desktop"),
            "desktop still converts on shop2: {found:?}"
        );
        for p in found {
            if checkout(&p) && p.2 == "mobile" && !phones.iter().any(|(n, _)| *n == p.0) {
                phones.push((p.0, broke.elapsed()));
            }
        }
        assert!(
            broke.elapsed() < Duration::from_secs(90),
            "not both pages after 90 s (a scaled hour and a half): demo {demo:?}, shop2 {phones:?}"
        );
    }
    for found in [&demo, &phones] {
        assert!(wanted.iter().all(|w| found.iter().any(|(n, _)| n == w)));
    }
    eprintln!(
        "paged after the breakage (time scale 1/{TIME_SCALE}: a second is a minute): demo site-wide {demo:?}; shop2 phones {phones:?}"
    );
    server.stop().await;
}
