//! CheckoutDropoffSpike end to end: a real Prometheus (Debian's, installed by ./tests/run.sh)
//! with the production rules, scraping a live touchstream fed normal checkout traffic and then a
//! breakage (checkouts stop converting), must report the alert firing through its API.
//!
//! The rule expressions are production's; only their time windows are divided by `TIME_SCALE`
//! (15m -> 15s, 1d -> 24m, for: 10m -> 10s), so the test takes a minute or two, not hours.

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

/// `rules` with every duration (in `[...]`, after `offset ` and in `for:`) divided by `scale`.
fn scale_durations(rules: &str, scale: u64) -> String {
    let mut out = String::with_capacity(rules.len());
    let bytes = rules.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_';
        let context = rules[..i].ends_with('[')
            || rules[..i].ends_with("offset ")
            || rules[..i].ends_with("for: ");
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
    let rule = "expr: rate(x[15m]) / (y[1d] offset 1w)\n        for: 10m\n        labels: {a: 5m}";
    assert_eq!(
        scale_durations(rule, 60),
        "expr: rate(x[15000ms]) / (y[1440000ms] offset 10080000ms)\n        for: 10000ms\n        labels: {a: 5m}"
    );
}

/// The alert's state in Prometheus: "", "pending" or "firing".
async fn alert_state(prometheus: &Prometheus) -> String {
    prometheus
        .alerts()
        .await
        .into_iter()
        .find(|a| {
            a["labels"]["alertname"] == "CheckoutDropoffSpike" && a["labels"]["site"] == "demo"
        })
        .map(|a| a["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// One second of shop traffic: `checkouts` sessions begin checkout, `purchases` of them buy.
async fn second_of_traffic(server: &TestServer, tick: usize, checkouts: usize, purchases: usize) {
    let now = touchstream::now_ms();
    let mut events = Vec::new();
    for i in 0..checkouts {
        let session = format!("s{tick}-{i}");
        events.push(json!({"id": format!("{session}-c"), "type": "begin_checkout", "ts": now, "session": session}));
        if i < purchases {
            events.push(json!({"id": format!("{session}-p"), "type": "purchase", "ts": now, "session": session,
                               "props": {"value": 50, "currency": "USD"}}));
        }
    }
    assert_eq!(
        server
            .post(&json!({"site": "demo", "events": events}))
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_breakage_fires_checkout_dropoff_spike_in_a_real_prometheus() {
    let server = TestServer::start(config(Duration::from_secs(3600))).await;
    let prometheus = Prometheus::start(
        &scale_durations(&production_rules(), TIME_SCALE),
        &[("touchstream", &[server.admin])],
    )
    .await;

    // A normal shop: 4 checkouts a second (60 in the scaled 15-minute window), half convert.
    for tick in 0..75 {
        second_of_traffic(&server, tick, 4, 2).await;
        if tick > 45 {
            assert_eq!(
                alert_state(&prometheus).await,
                "",
                "quiet while checkout converts"
            );
        }
    }
    // Payment breaks: checkouts go on, nobody buys.
    let broke = Instant::now();
    let mut seen_pending = false;
    let mut tick = 75;
    loop {
        second_of_traffic(&server, tick, 4, 0).await;
        tick += 1;
        match alert_state(&prometheus).await.as_str() {
            "pending" => seen_pending = true,
            "firing" => break,
            _ => {}
        }
        assert!(
            broke.elapsed() < Duration::from_secs(120),
            "CheckoutDropoffSpike never fired"
        );
    }
    let fired_after = broke.elapsed();
    assert!(
        seen_pending,
        "the alert fires only after its `for` (pending first)"
    );
    // Scaled: at most ~8 s for the window to show it, 10 s of `for`, plus scrape and evaluation.
    assert!(
        fired_after < Duration::from_secs(60),
        "fired only after {fired_after:?}"
    );
    eprintln!(
        "CheckoutDropoffSpike fired {fired_after:?} after the breakage (time scale 1/{TIME_SCALE})"
    );
    server.stop().await;
}
