//! The Grafana dashboard in deploy/grafana: the output of `touchstream dashboard`, well formed, reading only
//! metrics touchstream exports, and every panel query and variable answering with data from a
//! real Prometheus that scrapes touchstream under traffic.
//!
//! The traffic runs through both transports, as the dashboard serves both: an in-memory `serve`,
//! and `collect` + `engine` over Kafka (tansu), plus a collector whose topic does not exist, so
//! the 503 and Kafka delivery-error panels have something to show.

mod common;

use common::kafka::{self, Broker, Running};
use common::prometheus::{Prometheus, production_rules};
use common::server::{ORIGIN, TestServer};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DESKTOP: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
const MOBILE: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn dashboard() -> Value {
    let text =
        std::fs::read_to_string(format!("{ROOT}/deploy/grafana/dashboards/touchstream.json"))
            .unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// The dashboard's panels, rows excluded.
fn panels(dashboard: &Value) -> Vec<&Value> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

/// Whether a query reads the step alerts' records, which need hours of history (the windows
/// run to 2 hours, the baseline to the hour before the last): such panels must answer without
/// error here, and `deploy/prometheus/tests` (promtool, with hours of traffic) checks that they
/// have data.
fn needs_history(query: &str) -> bool {
    query.contains("touchstream_step_")
}

/// Every panel query as (panel title, expression).
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_string();
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// The query variables as (name, `label_values(selector, label)` definition).
fn query_variables(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["query"]["query"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `deploy/grafana/dashboards/touchstream.json` is `touchstream dashboard` for the default
/// configuration (`TOUCHSTREAM_BLESS=1 cargo test --test dashboard` writes it again).
#[test]
fn the_dashboard_file_is_generated_from_the_default_configuration() {
    let path = format!("{ROOT}/deploy/grafana/dashboards/touchstream.json");
    let generated = touchstream::ops::dashboard(&touchstream::config::Config::default());
    if std::env::var_os("TOUCHSTREAM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    assert!(
        std::fs::read_to_string(&path).unwrap() == generated,
        "{path} is stale: the panels are in src/ops/ (dashboard.rs, funnel.rs, panels.rs, health.rs); after changing them \
         run `TOUCHSTREAM_BLESS=1 cargo test --test dashboard the_dashboard_file`"
    );
}

#[test]
fn the_dashboard_is_well_formed_and_reads_only_exported_metrics() {
    let d = dashboard();
    assert_eq!(d["uid"], "touchstream");
    // Unique ids; panels inside the 24-column grid, none overlapping another.
    let all = d["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = all.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "panel ids are unique");
    let mut cells = BTreeSet::new();
    for p in all {
        let g = &p["gridPos"];
        let (x, y, w, h) = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap()).into();
        assert!(x + w <= 24, "{} leaves the grid", p["title"]);
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{} overlaps another panel", p["title"]);
        }
    }
    // Every panel and query goes through the data source variable.
    for p in panels(&d) {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        assert!(!p["targets"].as_array().unwrap().is_empty());
        assert!(!p["description"].as_str().unwrap_or_default().is_empty());
    }
    let names: Vec<String> = query_variables(&d).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["site", "channel", "device"]);
    // Metric names are touchstream's; recorded series are the rules'.
    let text = d.to_string();
    let unknown = common::exports::unknown_in(&text);
    assert!(
        unknown.is_empty(),
        "the dashboard reads metrics touchstream does not export: {unknown:?}"
    );
    // The runbook's "Panel title" pointers name panels of this dashboard.
    let titles: BTreeSet<&str> = panels(&d)
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    let runbook = common::deploy::read("deploy/prometheus/RUNBOOK.md").replace("\n   ", " ");
    let prose: String = runbook.split('`').step_by(2).collect();
    let named: Vec<&str> = prose.split('"').skip(1).step_by(2).collect();
    assert!(named.len() >= 8, "{named:?}");
    for title in named {
        assert!(
            titles.contains(title),
            "RUNBOOK.md names a panel \"{title}\" the dashboard lacks"
        );
    }
    let rules = production_rules();
    for (title, expr) in queries(&d) {
        for recorded in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.matches(':').count() == 2)
        {
            assert!(
                rules.contains(&format!("record: {recorded}")),
                "{title}: {recorded} is not recorded by deploy/prometheus/rules.yml"
            );
        }
    }
}

/// Grafana's variables for one evaluation: the selections, the ratio window, and the intervals
/// Grafana derives (a 1 s scrape here; `$__range` from the dashboard's default 6 hours).
fn substitute(expr: &str, site: &str, channel: &str, device: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$__range", "6h")
        .replace("$window", "1h")
        .replace("$site", site)
        .replace("$channel", channel)
        .replace("$device", device)
}

/// One event of a test session.
fn event(session: &str, n: usize, kind: &str, extra: Value) -> Value {
    let mut e = json!({"id": format!("{session}-{n}"), "type": kind, "session": session,
                       "ts": touchstream::now_ms()});
    e.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    e
}

/// A session landing from channel `c` (0 to 5) that goes as far as stage `depth` (0 to 4),
/// with friction on the way.
fn session_events(session: &str, c: usize, depth: usize, currency: &str) -> Vec<Value> {
    let landing = match c {
        1 => json!({"utm": {"source": "google", "medium": "cpc"}}),
        2 => json!({"referrer": "https://www.google.com/"}),
        3 => json!({"utm": {"source": "newsletter", "medium": "email"}}),
        4 => json!({"referrer": "https://www.facebook.com/"}),
        5 => json!({"referrer": "https://blog.example.org/post"}),
        _ => json!({}),
    };
    let value = json!({"props": {"value": 40 + 10 * c, "currency": currency}});
    let steps = [
        ("page_view", landing),
        ("view_item", json!({})),
        ("add_to_cart", value.clone()),
        ("begin_checkout", json!({})),
        ("purchase", value),
    ];
    let mut events: Vec<Value> = steps[..=depth]
        .iter()
        .enumerate()
        .map(|(n, (kind, extra))| event(session, n, kind, extra.clone()))
        .collect();
    match depth {
        1 => events.push(event(session, 7, "rage_click", json!({}))),
        3 => events.push(event(session, 7, "payment_failed", json!({}))),
        _ => {}
    }
    events
}

async fn post(client: &reqwest::Client, public: SocketAddr, agent: &str, body: &Value) -> u16 {
    client
        .post(format!("http://{public}/v1/events"))
        .header("content-type", "application/json")
        .header("origin", ORIGIN)
        .header("user-agent", agent)
        .body(body.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// One second of a shop's traffic at `public`: every channel on desktop and mobile, sessions
/// stopping at every stage over successive ticks, carts in two currencies, a duplicate, an
/// invalid event, and a crawler.
async fn second_of_traffic(client: &reqwest::Client, public: SocketAddr, tick: usize) {
    for (d, agent) in [DESKTOP, MOBILE].into_iter().enumerate() {
        let mut events = Vec::new();
        for c in 0..6 {
            let session = format!("{public}-{tick}-{d}-{c}");
            let currency = if (tick + c).is_multiple_of(2) {
                "USD"
            } else {
                "EUR"
            };
            events.extend(session_events(&session, c, (tick + c + d) % 5, currency));
        }
        events.push(events[0].clone());
        events.push(json!({"type": "page_view", "session": "no-id", "ts": touchstream::now_ms()}));
        let status = post(
            client,
            public,
            agent,
            &json!({"site": "demo", "events": events}),
        )
        .await;
        assert_eq!(status, 200, "a batch to {public}");
    }
    let crawl = json!({"site": "demo", "events": [event(&format!("bot-{tick}"), 0, "page_view", json!({}))]});
    assert_eq!(post(client, public, BOT, &crawl).await, 200);
}

/// `expr` evaluated over the last `seconds`: an error, or the number of series and of finite
/// values in the answer.
async fn evaluate(
    prometheus: &Prometheus,
    expr: &str,
    seconds: i64,
) -> Result<(usize, usize), String> {
    let end = touchstream::now_ms() / 1000;
    let body = prometheus
        .api(
            "/api/v1/query_range",
            &[
                ("query", expr.to_string()),
                ("start", (end - seconds).to_string()),
                ("end", end.to_string()),
                ("step", "1".to_string()),
            ],
        )
        .await;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    let result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let finite = result
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter(|v| {
            v[1].as_str()
                .and_then(|x| x.parse::<f64>().ok())
                .is_some_and(f64::is_finite)
        })
        .count();
    Ok((result.len(), finite))
}

/// The values of a `label_values(selector, label)` variable, as Grafana asks Prometheus.
async fn variable_values(prometheus: &Prometheus, definition: &str, site: &str) -> Vec<String> {
    let inner = definition
        .strip_prefix("label_values(")
        .and_then(|d| d.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected variable query {definition}"));
    let (selector, label) = inner.rsplit_once(',').unwrap();
    let body = prometheus
        .api(
            &format!("/api/v1/label/{}/values", label.trim()),
            &[("match[]", selector.replace("$site", site))],
        )
        .await;
    assert_eq!(body["status"], "success", "{definition}: {body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_and_variable_answers_from_a_real_prometheus_scraping_touchstream() {
    let timeout = Duration::from_secs(2);
    let serve = TestServer::start(common::server::config(timeout)).await;
    let broker = Broker::memory();
    let kafka_config = kafka::config(&broker, 2, timeout);
    let collect = Running::collect(kafka_config.clone()).await;
    let engine = Running::engine(kafka_config.clone()).await;
    // A collector whose topic does not exist: every batch times out into a 503.
    let mut broken = kafka_config.clone();
    broken.kafka.topic = format!("{}-missing", kafka_config.kafka.topic);
    broken.kafka.create_topics = false;
    broken.kafka.delivery_timeout = Duration::from_secs(1);
    let broken = Running::collect(broken).await;

    let prometheus = Prometheus::start(
        &production_rules(),
        &[
            ("touchstream", &[serve.admin]),
            ("touchstream-collect", &[collect.admin, broken.admin]),
            ("touchstream-engine", &[engine.admin]),
        ],
    )
    .await;

    let client = reqwest::Client::new();
    let public = [serve.public, collect.public.unwrap()];
    let broken_public = broken.public.unwrap();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    for tick in 0..30 {
        every.tick().await;
        let lost = json!({"site": "demo", "events": [event(&format!("lost-{tick}"), 0, "page_view", json!({}))]});
        let (_, _, lost) = tokio::join!(
            second_of_traffic(&client, public[0], tick),
            second_of_traffic(&client, public[1], tick),
            post(&client, broken_public, DESKTOP, &lost),
        );
        assert_eq!(lost, 503, "a batch for a missing topic");
    }
    assert!(prometheus.targets_up().await, "every target is scraped");

    let d = dashboard();
    // Every variable lists what the traffic used.
    let mut values = Vec::new();
    for (name, definition) in query_variables(&d) {
        let found = variable_values(&prometheus, &definition, ".*").await;
        let expected = match name.as_str() {
            "site" => "demo",
            "channel" => "paid_search",
            _ => "mobile",
        };
        assert!(found.iter().any(|v| v == expected), "${name}: {found:?}");
        values.push(expected);
    }
    // Every query, with everything selected (Grafana's "All" is `.*`) and with one site, channel
    // and device, answers with at least one finite value over the last 20 seconds.
    let mut failures = Vec::new();
    for (site, channel, device) in [(".*", ".*", ".*"), (values[0], values[1], values[2])] {
        for (title, expr) in queries(&d) {
            let query = substitute(&expr, site, channel, device);
            match evaluate(&prometheus, &query, 20).await {
                Err(e) => failures.push(format!("{title}: {query}: {e}")),
                Ok((_, 0)) if !needs_history(&query) => {
                    failures.push(format!("{title}: {query}: no data"))
                }
                Ok(_) => {}
            }
        }
    }
    // The alert annotation's query is valid (it finds nothing: no alert fires here).
    for annotation in d["annotations"]["list"].as_array().unwrap() {
        let query = substitute(annotation["expr"].as_str().unwrap(), ".*", ".*", ".*");
        if let Err(e) = evaluate(&prometheus, &query, 20).await {
            failures.push(format!("annotation {}: {e}", annotation["name"]));
        }
    }
    assert!(
        failures.is_empty(),
        "panel queries failed:\n{}",
        failures.join("\n")
    );
    eprintln!(
        "{} panel queries answered, for all and for {values:?}",
        queries(&d).len()
    );

    serve.stop().await;
    collect.stop().await;
    broken.stop().await;
    engine.stop().await;
}

/// Two journeys on the demo site: the default map as `shop` and an ordered `express` (a view,
/// the cart within a minute, the checkout and purchase). The rules and the dashboard generated
/// for them load into a real Prometheus scraping a `serve` under traffic, every panel query
/// answers, and the figures meet: each journey's own funnel and friction, carts once per
/// session (no abandonment rate above 1), a checkout-conversion series per journey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_and_dashboard_of_two_journeys_answer_from_a_real_prometheus() {
    let mut config = common::server::config(Duration::from_secs(2));
    let stage =
        |name: &str, touchpoints: &[&str], within: Option<u64>| touchstream::config::StageConfig {
            name: name.into(),
            phase: "decision".into(),
            touchpoints: touchpoints.iter().map(|t| t.to_string()).collect(),
            within: within.map(Duration::from_secs),
            step_delay: None,
        };
    let shop = touchstream::config::JourneyConfig {
        name: "shop".into(),
        ..Default::default()
    };
    let express = touchstream::config::JourneyConfig {
        name: "express".into(),
        mode: touchstream::config::JourneyMode::Ordered,
        stages: vec![
            stage("view", &["view_item"], None),
            stage("cart", &["add_to_cart"], Some(60)),
            stage("pay", &["begin_checkout"], None),
            stage("bought", &["purchase"], None),
        ],
        cart_stage: "cart".into(),
        purchase_stage: "bought".into(),
        ..Default::default()
    };
    config.journeys = vec![shop, express];
    config.validate().unwrap();
    let rules = touchstream::ops::rules(&config);
    let d: Value = serde_json::from_str(&touchstream::ops::dashboard(&config)).unwrap();
    let serve = TestServer::start(config).await;
    let prometheus = Prometheus::start(&rules, &[("touchstream", &[serve.admin])]).await;
    let client = reqwest::Client::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    for tick in 0..20 {
        every.tick().await;
        second_of_traffic(&client, serve.public, tick).await;
    }
    assert!(prometheus.targets_up().await, "touchstream is scraped");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The journeys' rows (the health row's Kafka and 5xx panels are the test above's).
    let mut journey_panels = d.clone();
    let all = journey_panels["panels"].as_array_mut().unwrap();
    let health = all
        .iter()
        .position(|p| p["title"] == "Ingest and engine health");
    all.truncate(health.unwrap());
    let mut failures = Vec::new();
    for (title, expr) in queries(&journey_panels) {
        let query = substitute(&expr, ".*", ".*", ".*");
        match evaluate(&prometheus, &query, 20).await {
            Err(e) => failures.push(format!("{title}: {query}: {e}")),
            Ok((_, 0)) if !needs_history(&query) => {
                failures.push(format!("{title}: {query}: no data"))
            }
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "panel queries failed:\n{}",
        failures.join("\n")
    );
    let titles: Vec<&str> = (d["panels"].as_array().unwrap().iter())
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for row in [
        "Funnel: shop",
        "Funnel: express",
        "Friction: shop",
        "Friction: express",
    ] {
        assert!(titles.contains(&row), "{titles:?}");
    }

    let instant = |expr: &str| {
        let prometheus = &prometheus;
        let expr = expr.to_string();
        async move {
            let body = prometheus
                .api("/api/v1/query", &[("query", expr.clone())])
                .await;
            let result = body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (result.iter())
                .map(|s| {
                    let labels = s["metric"].clone();
                    (
                        labels,
                        s["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // Carts once per session: every session reaching `shop`'s cart stage opened one (the
    // `express` cart needs a view before it: fewer), and the abandonment rate stays a rate.
    let opened = instant("sum(touchstream_carts_opened_total)").await;
    let carts =
        instant(r#"sum(touchstream_funnel_sessions_total{journey="shop",stage="add_to_cart"})"#)
            .await;
    let express_carts =
        instant(r#"sum(touchstream_funnel_sessions_total{journey="express",stage="cart"})"#).await;
    assert!(
        opened[0].1 > 0.0 && opened[0].1 == carts[0].1,
        "{opened:?} {carts:?}"
    );
    assert!(express_carts[0].1 > 0.0 && express_carts[0].1 <= carts[0].1);
    let ratio = instant("site:touchstream_cart_abandonment:ratio1h").await;
    assert!(
        !ratio.is_empty() && ratio.iter().all(|(_, r)| (0.0..=1.0).contains(r)),
        "{ratio:?}"
    );
    // The exact totals per channel and device the step alerts read (their own group runs once a
    // minute, longer than this test; deploy/prometheus/tests checks it), per journey.
    let totals = instant(
        "count by (journey) (site_journey_stage_channel_device:touchstream_funnel_sessions:total)",
    )
    .await;
    let mut journeys: Vec<(&str, f64)> = totals
        .iter()
        .map(|(l, n)| (l["journey"].as_str().unwrap(), *n))
        .collect();
    journeys.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(journeys.len(), 2, "{totals:?}");
    assert!(
        journeys[0].0 == "express" && journeys[1].0 == "shop",
        "{totals:?}"
    );
    // Friction counts in each journey: the same events, so the same totals.
    let friction = instant("sum by (journey) (touchstream_friction_total)").await;
    assert_eq!(friction.len(), 2, "{friction:?}");
    assert!(
        friction[0].1 > 0.0 && friction[0].1 == friction[1].1,
        "{friction:?}"
    );
    serve.stop().await;
}
