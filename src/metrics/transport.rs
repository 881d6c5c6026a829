//! The transports' metrics: the embedded queue, and Kafka's producer and consumer.

use super::cells::Registrar;
use super::{CounterFamily, GaugeFamily, labels, latency_buckets};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

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
    pub(super) fn new(r: &mut Registrar) -> Self {
        Self {
            queued: r.gauge((
                "touchstream_transport_queue_events",
                "Events in the transport waiting for the engine.",
            )),
            capacity: r.gauge((
                "touchstream_transport_queue_capacity_events",
                "Most events the transport queue holds.",
            )),
            failures: r.counters((
                "touchstream_transport_send_failures",
                "Batches the transport could not take, by reason.",
            )),
        }
        .with_reasons()
    }

    /// The embedded transports' reasons at zero from the start, so a rate over them (the
    /// StateNotDurable alert, the dashboard) has a series before the first failure. Kafka's
    /// delivery error kinds appear when they first happen.
    fn with_reasons(self) -> Self {
        for reason in ["full", "closed", "disk_full", "disk"] {
            drop(self.failures.get_or_create(&labels([("reason", reason)])));
        }
        self
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
    /// `touchstream_kafka_messages_unreadable_total`: messages of an unknown schema.
    pub unreadable: Counter,
}

impl KafkaMetrics {
    pub(super) fn new(r: &mut Registrar) -> Self {
        Self {
            produce_seconds: r.add(
                (
                    "touchstream_kafka_produce_seconds",
                    "Seconds from producing a batch to its last delivery report.",
                ),
                latency_buckets(),
            ),
            delivery_errors: r.counters((
                "touchstream_kafka_delivery_errors",
                "Kafka delivery errors by kind.",
            )),
            producer_queue: r.gauge((
                "touchstream_kafka_producer_queue_messages",
                "Messages in the producer awaiting delivery.",
            )),
            consumer_lag: r.gauges((
                "touchstream_kafka_consumer_lag_messages",
                "Messages between the engine's position and the partition end.",
            )),
            assigned_partitions: r.gauge((
                "touchstream_kafka_assigned_partitions",
                "Partitions this engine owns.",
            )),
            rebuild_seconds: r.add(
                (
                    "touchstream_kafka_rebuild_seconds",
                    "Seconds to rebuild a newly assigned partition's open sessions.",
                ),
                latency_buckets(),
            ),
            rebuild_messages: r.counter((
                "touchstream_kafka_rebuild_messages",
                "Messages re-read to rebuild sessions.",
            )),
            commits: r.counters(("touchstream_kafka_commits", "Offset commits by result.")),
            unreadable: r.counter((
                "touchstream_kafka_messages_unreadable",
                "Messages skipped because their schema is unknown.",
            )),
        }
    }

    /// Counts a delivery error of `kind` (a closed set, see the Kafka sink).
    pub fn delivery_error(&self, kind: &'static str) {
        self.delivery_errors
            .get_or_create(&labels([("kind", kind)]))
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
        Self::new(&mut Registrar::new(
            &mut prometheus_client::registry::Registry::default(),
        ))
    }
}
