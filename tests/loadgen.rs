//! The load generator (loadtests/) against real servers: its ground truth equals what
//! touchstream reports over both transports and in replay, and a figure that differs is caught.
//! Short runs at a modest rate: these check correctness, the figures live in benchmarks.

mod common;

use common::kafka::{self, Broker, Running};
use common::server::{ORIGIN, TestServer, config};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use touchstream_load::report::Report;
use touchstream_load::run::{Options, Workload, execute};
use touchstream_load::send::Target;
use touchstream_load::shopper::Mix;

fn options(public: SocketAddr, metrics: &[SocketAddr], timeout: Duration) -> Options {
    Options {
        target: Target {
            events_url: format!("http://{public}/v1/events"),
            origin: ORIGIN.to_string(),
            site: "demo".to_string(),
            batch: 20,
            retry_backoff: Duration::from_millis(100),
        },
        metrics: metrics
            .iter()
            .map(|a| format!("http://{a}/metrics"))
            .collect(),
        concurrency: 8,
        rate: 2_000.0,
        server: Some(touchstream_load::procstat::Server::new(vec![std::process::id()]).unwrap()),
        session_timeout: timeout,
        settle: timeout + Duration::from_secs(20),
        verify: true,
        probe_interval: Some(Duration::from_millis(250)),
        run_id: format!("test{}", touchstream::now_ms()),
        ledger: false,
    }
}

fn shoppers(seconds: u64) -> Workload {
    Workload::Shoppers {
        mix: Mix {
            // More carts and friction than a real shop, so every figure is exercised.
            steps: [0.9, 0.4, 0.7, 0.6],
            ..Mix::default()
        },
        duration: Some(Duration::from_secs(seconds)),
        sessions: None,
        duplicates: 0.05,
        seed: 3,
    }
}

fn assert_exact(report: &Report) {
    assert!(report.passed(), "{}", report.to_text());
    assert!(report.stats.events_accepted > 1_000, "{}", report.to_text());
    assert_eq!(report.stats.failures(), 0, "{}", report.to_text());
    let freshness = report.freshness.as_ref().expect("probed");
    assert!(freshness.len() >= 4, "{}", report.to_text());
    assert_eq!(report.freshness_missed, 0);
    let json = report.to_json();
    for key in ["events_per_second", "latency_ms", "freshness_ms", "server"] {
        assert!(!json[key].is_null(), "{key} missing from {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_over_the_memory_transport_match_the_ground_truth() {
    let timeout = Duration::from_secs(2);
    let server = TestServer::start(config(timeout)).await;
    let report = execute(
        options(server.public, &[server.admin], timeout),
        shoppers(4),
    )
    .await
    .unwrap();
    assert_exact(&report);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_over_kafka_match_the_ground_truth() {
    let timeout = Duration::from_secs(2);
    let broker = Broker::memory();
    let c = kafka::config(&broker, 2, timeout);
    let collect = Running::collect(c.clone()).await;
    let engine = Running::engine(c).await;
    engine
        .wait_for("partitions assigned", |s| {
            s.sum("touchstream_kafka_assigned_partitions", &[]) == 2.0
        })
        .await;
    let report = execute(
        options(
            collect.public.unwrap(),
            &[collect.admin, engine.admin],
            timeout,
        ),
        shoppers(4),
    )
    .await
    .unwrap();
    assert_exact(&report);
    collect.stop().await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rees46_replay_matches_the_ground_truth() {
    // 2 h 50 min of the shop in about 20 s: the session timeout shrinks by the same factor.
    let speedup = 500.0;
    let timeout = Duration::from_millis(3_600);
    let server = TestServer::start(config(timeout)).await;
    let events =
        touchstream_load::rees46::read(std::path::Path::new(common::rees46::SAMPLE)).unwrap();
    let total = events.len() as u64;
    let mut o = options(server.public, &[server.admin], timeout);
    o.rate = 0.0;
    o.concurrency = 64;
    let report = execute(o, Workload::Replay { events, speedup })
        .await
        .unwrap();
    assert!(report.passed(), "{}", report.to_text());
    assert_eq!(report.sessions, 5_066);
    // Every row sent once, plus the freshness probes.
    let probes = report.freshness.as_ref().unwrap().len();
    assert_eq!(report.stats.events_accepted, total + probes);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_figure_that_differs_from_the_ground_truth_is_reported() {
    let timeout = Duration::from_secs(2);
    let server = TestServer::start(config(timeout)).await;
    // Someone else buys during the run: touchstream counts an order the generator never sent.
    let intruder = server.events_url();
    let other = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = touchstream::now_ms();
        reqwest::Client::new()
            .post(intruder)
            .header("origin", ORIGIN)
            .header("content-type", "application/json")
            .body(
                json!({"site": "demo", "events": [{"id": "x", "type": "purchase", "ts": now,
                        "session": "intruder", "props": {"value": 10, "currency": "EUR"}}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .status()
    });
    let mut o = options(server.public, &[server.admin], timeout);
    o.settle = Duration::from_secs(3);
    let report = execute(o, shoppers(2)).await.unwrap();
    assert_eq!(other.await.unwrap(), 200);
    assert!(!report.passed());
    let differences = report.differences.clone().unwrap();
    let orders = differences
        .iter()
        .find(|d| d.starts_with("orders: "))
        .cloned();
    assert!(orders.is_some(), "{differences:?}");
    assert!(
        differences.iter().any(|d| d.starts_with("revenue EUR: ")),
        "{differences:?}"
    );
    assert!(
        report
            .to_text()
            .contains("differences from the ground truth")
    );
    server.stop().await;
}
