//! The collector's and transport's metrics.

use super::{
    CounterFamily, GaugeFamily, HistogramFamily, histogram_family, labels, latency_buckets, reg,
};
use crate::collector::RejectReason;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Why the collector kept an accepted event out of the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterReason {
    Bot,
    Consent,
}

/// Per-site event counters of the collector.
#[derive(Debug)]
pub struct IngestMetrics {
    received: Vec<Counter>,
    accepted: Vec<Counter>,
    rejected: Vec<Counter>,
    bots: Vec<Counter>,
    consent: Vec<Counter>,
}

impl IngestMetrics {
    pub(super) fn new(r: &mut Registry, sites: &[String], filtered: &CounterFamily) -> Self {
        let received_f = reg(
            r,
            "touchstream_events_received",
            "Events in well-formed batches for a known site.",
            CounterFamily::default(),
        );
        let accepted_f = reg(
            r,
            "touchstream_events_accepted",
            "Events accepted (in the transport, or filtered).",
            CounterFamily::default(),
        );
        let rejected_f = reg(
            r,
            "touchstream_events_rejected",
            "Events not accepted, by reason.",
            CounterFamily::default(),
        );
        let per_site = |f: &CounterFamily| -> Vec<Counter> {
            sites
                .iter()
                .map(|s| f.get_or_create(&labels([("site", s)])).clone())
                .collect()
        };
        let rejected = sites
            .iter()
            .flat_map(|s| {
                RejectReason::ALL.iter().map(|reason| {
                    rejected_f
                        .get_or_create(&labels([("site", s), ("reason", reason.as_str())]))
                        .clone()
                })
            })
            .collect();
        let filter = |reason: &str| -> Vec<Counter> {
            sites
                .iter()
                .map(|s| {
                    filtered
                        .get_or_create(&labels([("site", s), ("reason", reason)]))
                        .clone()
                })
                .collect()
        };
        Self {
            received: per_site(&received_f),
            accepted: per_site(&accepted_f),
            rejected,
            bots: filter("bot"),
            consent: filter("consent"),
        }
    }

    pub fn received(&self, site: usize) -> &Counter {
        &self.received[site]
    }
    pub fn accepted(&self, site: usize) -> &Counter {
        &self.accepted[site]
    }
    pub fn rejected(&self, site: usize, reason: RejectReason) -> &Counter {
        &self.rejected[site * RejectReason::ALL.len() + reason.index()]
    }
    pub fn filtered(&self, site: usize, reason: FilterReason) -> &Counter {
        match reason {
            FilterReason::Bot => &self.bots[site],
            FilterReason::Consent => &self.consent[site],
        }
    }
}

/// HTTP request counters of both listeners.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: CounterFamily,
    duration: HistogramFamily,
    /// `touchstream_http_connections_open`: connections held now, both listeners.
    pub connections_open: Gauge,
    /// `touchstream_http_connections_refused_total`: connections closed at once because the
    /// listener held `limits.max_connections`.
    pub connections_refused: Counter,
}

impl HttpMetrics {
    pub(super) fn new(r: &mut Registry) -> Self {
        Self {
            requests: reg(
                r,
                "touchstream_http_requests",
                "HTTP requests by route and status.",
                CounterFamily::default(),
            ),
            duration: reg(
                r,
                "touchstream_http_request_duration_seconds",
                "HTTP request duration by route.",
                histogram_family(latency_buckets),
            ),
            connections_open: reg(
                r,
                "touchstream_http_connections_open",
                "HTTP connections held now.",
                Gauge::default(),
            ),
            connections_refused: reg(
                r,
                "touchstream_http_connections_refused",
                "HTTP connections closed at once because the listener was full.",
                Counter::default(),
            ),
        }
    }

    /// Records one request; `route` is a matched route template (a closed set), never a raw path.
    pub fn record(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&labels([("route", route), ("status", &status.to_string())]))
            .inc();
        self.duration
            .get_or_create(&labels([("route", route)]))
            .observe(seconds);
    }

    /// The duration histogram of `route`, for tests and reports.
    pub fn duration(&self, route: &str) -> Histogram {
        self.duration
            .get_or_create(&labels([("route", route)]))
            .clone()
    }
}

/// The embedded transport's queue.
#[derive(Debug)]
pub struct TransportMetrics {
    /// `touchstream_transport_queue_events`: events waiting for the engine.
    pub queued: Gauge,
    /// `touchstream_transport_queue_capacity_events`.
    pub capacity: Gauge,
    /// `touchstream_transport_send_failures_total{reason}`: batches refused (`full`, `closed`).
    pub failures: CounterFamily,
}

impl TransportMetrics {
    pub(super) fn new(r: &mut Registry) -> Self {
        Self {
            queued: reg(
                r,
                "touchstream_transport_queue_events",
                "Events in the transport waiting for the engine.",
                Gauge::default(),
            ),
            capacity: reg(
                r,
                "touchstream_transport_queue_capacity_events",
                "Most events the transport queue holds.",
                Gauge::default(),
            ),
            failures: reg(
                r,
                "touchstream_transport_send_failures",
                "Batches the transport could not take, by reason.",
                CounterFamily::default(),
            ),
        }
    }
}

/// The Kafka transport's metrics (registered in every process, zero without Kafka).
#[derive(Debug)]
pub struct KafkaMetrics {
    /// `touchstream_kafka_produce_seconds`: a batch's produce until its last delivery report.
    pub produce_seconds: Histogram,
    delivery_errors: CounterFamily,
    /// `touchstream_kafka_producer_queue_messages`: messages awaiting delivery.
    pub producer_queue: Gauge,
    /// `touchstream_kafka_consumer_lag_messages{partition}`.
    pub consumer_lag: GaugeFamily,
    /// `touchstream_kafka_assigned_partitions`.
    pub assigned_partitions: Gauge,
    /// `touchstream_kafka_rebuild_seconds`: rebuilding a newly assigned partition's sessions.
    pub rebuild_seconds: Histogram,
    /// `touchstream_kafka_rebuild_messages_total`.
    pub rebuild_messages: Counter,
    commits: CounterFamily,
    parked: CounterFamily,
    /// `touchstream_kafka_messages_unreadable_total`: messages of an unknown schema.
    pub unreadable: Counter,
}

impl KafkaMetrics {
    pub(super) fn new(r: &mut Registry) -> Self {
        Self {
            produce_seconds: reg(
                r,
                "touchstream_kafka_produce_seconds",
                "Seconds from producing a batch to its last delivery report.",
                latency_buckets(),
            ),
            delivery_errors: reg(
                r,
                "touchstream_kafka_delivery_errors",
                "Kafka delivery errors by kind.",
                CounterFamily::default(),
            ),
            producer_queue: reg(
                r,
                "touchstream_kafka_producer_queue_messages",
                "Messages in the producer awaiting delivery.",
                Gauge::default(),
            ),
            consumer_lag: reg(
                r,
                "touchstream_kafka_consumer_lag_messages",
                "Messages between the engine's position and the partition end.",
                GaugeFamily::default(),
            ),
            assigned_partitions: reg(
                r,
                "touchstream_kafka_assigned_partitions",
                "Partitions this engine owns.",
                Gauge::default(),
            ),
            rebuild_seconds: reg(
                r,
                "touchstream_kafka_rebuild_seconds",
                "Seconds to rebuild a newly assigned partition's open sessions.",
                latency_buckets(),
            ),
            rebuild_messages: reg(
                r,
                "touchstream_kafka_rebuild_messages",
                "Messages re-read to rebuild sessions.",
                Counter::default(),
            ),
            commits: reg(
                r,
                "touchstream_kafka_commits",
                "Offset commits by result.",
                CounterFamily::default(),
            ),
            parked: reg(
                r,
                "touchstream_kafka_parked_partitions",
                "Partitions revoked before their offsets could be committed, by outcome: resumed \
                 where they stopped, or handed over to another engine (the events counted since \
                 the last scrape are then counted twice).",
                CounterFamily::default(),
            ),
            unreadable: reg(
                r,
                "touchstream_kafka_messages_unreadable",
                "Messages skipped because their schema is unknown.",
                Counter::default(),
            ),
        }
    }

    /// Counts a delivery error of `kind` (a closed set, see the Kafka sink).
    pub fn delivery_error(&self, kind: &'static str) {
        self.delivery_errors
            .get_or_create(&labels([("kind", kind)]))
            .inc();
    }

    /// Counts a parked partition's end: `resumed` or `handed_over`.
    pub fn parked(&self, outcome: &'static str) {
        self.parked
            .get_or_create(&labels([("outcome", outcome)]))
            .inc();
    }

    /// Counts an offset commit.
    pub fn commit(&self, ok: bool) {
        self.commits
            .get_or_create(&labels([("result", if ok { "ok" } else { "error" })]))
            .inc();
    }
}

#[cfg(test)]
impl TransportMetrics {
    /// Metrics in a throw-away registry.
    pub fn for_tests() -> Self {
        Self::new(&mut Registry::default())
    }
}
