//! Every metric of the contract, registered once in one [`Registry`] per process (tests build
//! their own, so nothing is double-registered).
//!
//! Label values come only from closed sets: configured sites, stages, phases, touchpoints and
//! currencies, the `Channel`/`Device` enums, and fixed reason lists. Series whose labels are
//! known up front are created at zero at start-up and their handles kept in flat vectors, so
//! the hot path is an index and an atomic add, never a label hash.

mod funnel;
mod ingest;
pub mod money;

pub use funnel::{FunnelMetrics, SiteCurrencies};
pub use ingest::{FilterReason, HttpMetrics, IngestMetrics, KafkaMetrics, TransportMetrics};

use crate::config::Config;
use crate::engine::Journey;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label set of every family: `(name, value)` pairs built once per series.
pub type Labels = Vec<(&'static str, String)>;
pub type CounterFamily = Family<Labels, Counter>;
pub type GaugeFamily = Family<Labels, Gauge>;
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// All metrics of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub funnel: FunnelMetrics,
    pub ingest: IngestMetrics,
    pub http: HttpMetrics,
    pub transport: TransportMetrics,
    pub kafka: KafkaMetrics,
}

impl Metrics {
    /// Registers every metric for `config` and creates the zero series.
    pub fn new(config: &Config, journey: &Journey) -> Self {
        let mut registry = Registry::default();
        let sites: Vec<String> = config.sites.iter().map(|s| s.id.clone()).collect();
        let funnel = FunnelMetrics::new(&mut registry, config, journey);
        let ingest = IngestMetrics::new(&mut registry, &sites, &funnel.filtered);
        let http = HttpMetrics::new(&mut registry);
        let transport = TransportMetrics::new(&mut registry);
        let kafka = KafkaMetrics::new(&mut registry);
        Self {
            registry,
            funnel,
            ingest,
            http,
            transport,
            kafka,
        }
    }

    /// The Prometheus/OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Builds a label set.
pub fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Registers `metric` under `name` and returns it (handles share the registered series).
pub fn reg<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// A histogram family whose series all use `buckets`.
pub fn histogram_family(buckets: fn() -> Histogram) -> HistogramFamily {
    Family::new_with_constructor(buckets)
}

/// Seconds from session start to a stage: seconds to hours.
pub fn stage_seconds_buckets() -> Histogram {
    Histogram::new([
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
    ])
}

/// Order values in currency units.
pub fn order_value_buckets() -> Histogram {
    Histogram::new([
        5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    ])
}

/// Request and pipeline latencies in seconds: sub-millisecond to a minute.
pub fn latency_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ])
}
