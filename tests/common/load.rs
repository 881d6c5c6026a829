//! The load of the fault tests over Kafka (`tests/chaos.rs`, `tests/kafka_exact.rs`): shoppers
//! with a ledger of every event sent and acknowledged, verified by the test, not the generator.

use std::net::SocketAddr;
use std::time::Duration;
use touchstream_load::run::{Options, Workload};
use touchstream_load::send::Target;
use touchstream_load::shopper::Mix;

/// Options for an id-level run against `collector`: a ledger, no verification by the
/// generator (the test does it across engines), retries as the snippet does.
pub fn options(collector: SocketAddr, timeout: Duration, concurrency: usize, rate: f64) -> Options {
    Options {
        target: Target {
            events_url: format!("http://{collector}/v1/events"),
            origin: super::server::ORIGIN.to_string(),
            site: "demo".to_string(),
            batch: 10,
            retry_backoff: Duration::from_millis(100),
        },
        metrics: Vec::new(),
        concurrency,
        rate,
        server: None,
        session_timeout: timeout,
        settle: Duration::ZERO,
        verify: false,
        probe_interval: None,
        run_id: format!("chaos{}", touchstream::now_ms()),
        ledger: true,
    }
}

/// Shoppers walking the funnel for `duration`, 5 % of their events sent twice.
pub fn shoppers(duration: Duration) -> Workload {
    Workload::Shoppers {
        mix: Mix {
            steps: [0.9, 0.5, 0.7, 0.6],
            bots: 0.0,
            ..Mix::default()
        },
        duration: Some(duration),
        sessions: None,
        duplicates: 0.05,
        seed: 7,
    }
}
