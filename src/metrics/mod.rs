//! Every metric of the contract, registered once in one [`Registry`] per process (tests build
//! their own, so nothing is double-registered).
//!
//! Label values come only from closed sets: configured sites, stages, phases, touchpoints and
//! currencies, and the closed label enums of [`crate::event`] and [`Route`]. Series whose labels
//! are known up front are created at zero at start-up and their handles kept in flat vectors;
//! series from a closed but large set (touchpoint x phase, status x route) are created on first
//! use in pre-sized cells. Either way the hot path is an index and an atomic add, never a label
//! hash. The only families resolved by label on use are off the hot path, written on failures
//! or on the clock: the transport's refused batches, Kafka delivery errors, commits and
//! per-partition lag.
//!
//! A Kafka engine keeps one `Metrics` per partition it owns, for that partition's figures, and
//! exports them labelled `partition` beside its own (`partitioned`).
//!
//! The counters and histograms the engine writes can be read out as [`Figures`] and added back
//! into a fresh `Metrics` (checkpoints: see `figures`).

mod cells;
mod engine;
pub(crate) mod figures;
mod funnel;
pub mod histogram;
mod http;
mod ingest;
pub mod money;
mod partitioned;
mod report;
mod state;
mod transport;

pub use cells::SiteCurrencies;
pub use engine::EngineMetrics;
pub use figures::{Figure, Figures, FiguresRestored, Micros, SkipReason, Skipped};
pub use funnel::FunnelMetrics;
pub use histogram::HistogramFigure;
pub(crate) use http::track;
pub use http::{HttpMetrics, Route};
pub use ingest::IngestMetrics;
pub use report::{Report, SiteReport};
pub use state::StateMetrics;
pub use transport::{KafkaMetrics, TransportMetrics};

use crate::config::Config;
use crate::journey::Journeys;
use async_trait::async_trait;
use cells::{Registrar, Space};
use figures::Book;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Label set of every family: `(name, value)` pairs built once per series.
pub type Labels = Vec<(&'static str, String)>;
pub type CounterFamily = Family<Labels, Counter>;
pub type GaugeFamily = Family<Labels, Gauge>;
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// All metrics of one process, laid out for the compiled journeys.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The journeys the funnel series are laid out for; the engine applies events with this
    /// same value, so stage and touchpoint indices always agree.
    journeys: Arc<Journeys>,
    /// The families the engine writes, each with its label sets: what [`Figures`] hold.
    ledger: Vec<Book>,
    pub funnel: FunnelMetrics,
    pub engine: EngineMetrics,
    pub ingest: IngestMetrics,
    pub http: HttpMetrics,
    pub transport: TransportMetrics,
    pub kafka: KafkaMetrics,
    pub state: StateMetrics,
}

impl Metrics {
    /// Compiles `config`'s journeys, registers every metric for them and creates the zero
    /// series.
    pub fn new(config: &Config) -> Self {
        let journeys = Arc::new(Journeys::new(config));
        let mut registry = Registry::default();
        let mut r = Registrar::new(&mut registry);
        let sites: Vec<String> = config.sites.iter().map(|s| s.id.clone()).collect();
        let funnel = FunnelMetrics::new(&mut r, config, &journeys);
        // Registered here, between the funnel and the engine's own metrics, to keep the
        // exposition's order: the collector's filters and the engine's duplicates share it, and
        // only the engine's reasons are kept in the figures.
        let engine_reasons = IngestMetrics::ENGINE_REASONS.iter().map(|r| r.as_str());
        let filtered = r.kept(
            (
                "touchstream_events_filtered",
                "Accepted events kept out of the funnel, by reason.",
            ),
            Family::default(),
            &Space::sites(&sites).by("reason", engine_reasons),
        );
        let engine = EngineMetrics::new(&mut r, &sites);
        let ingest = IngestMetrics::new(&mut r, &sites, &filtered);
        let http = HttpMetrics::new(&mut r);
        let transport = TransportMetrics::new(&mut r);
        let kafka = KafkaMetrics::new(&mut r);
        let state = StateMetrics::new(&mut r);
        Self {
            ledger: r.ledger,
            registry,
            journeys,
            funnel,
            engine,
            ingest,
            http,
            transport,
            kafka,
            state,
        }
    }

    /// The compiled journeys these metrics are laid out for.
    pub fn journeys(&self) -> &Arc<Journeys> {
        &self.journeys
    }

    /// The Prometheus/OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// What `/metrics` answers: the metrics as they are, or (the Kafka engine) the metrics with
/// the offsets behind them committed first.
#[async_trait]
pub trait Exposition: Send + Sync + 'static {
    /// The exposition text, or why it cannot be served now (answered with 503).
    async fn render(&self) -> Result<String, String>;
}

#[async_trait]
impl Exposition for Metrics {
    async fn render(&self) -> Result<String, String> {
        Ok(self.encode())
    }
}

/// Builds a label set.
pub fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Seconds from session start to a stage: seconds to hours.
fn stage_seconds_buckets() -> histogram::Histogram {
    histogram::Histogram::new(&[
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
    ])
}

/// Order values in currency units.
fn order_value_buckets() -> histogram::Histogram {
    histogram::Histogram::new(&[
        5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    ])
}

/// Request and pipeline latencies in seconds: sub-millisecond to a minute.
fn latency_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ])
}
