//! The collector's Kafka producer: idempotent, acks from all in-sync replicas, lz4, a short
//! linger. `send` returns only when every event of the batch has a delivery report; a failed,
//! refused or timed-out delivery makes the whole request a 503 (the client retries; event ids
//! make the retry safe), never a 4xx and never a 2xx.

use super::{OutMessage, client_config, key};
use crate::config::KafkaConfig;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::transport::{DeadLetter, EventSink, SendError};
use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A low-cardinality label for a delivery error.
pub fn error_kind(e: &KafkaError) -> &'static str {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => "queue_full",
        Some(RDKafkaErrorCode::MessageTimedOut) => "timed_out",
        Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure) => {
            "brokers_down"
        }
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed,
        ) => "not_authorized",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            "unknown_topic"
        }
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "too_large",
        Some(
            RDKafkaErrorCode::NotEnoughReplicas
            | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable,
        ) => "not_enough_replicas",
        _ => "other",
    }
}

/// The collector's end of Kafka.
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    dead_letter_topic: String,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl KafkaSink {
    /// A producer for `kafka`, reporting into `metrics`.
    pub fn new(kafka: &KafkaConfig, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let mut c = client_config(kafka, &Default::default());
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                kafka.delivery_timeout.as_millis().to_string(),
            );
        for (k, v) in &kafka.producer {
            c.set(k, v);
        }
        Ok(Self {
            producer: c.create()?,
            topic: kafka.topic.clone(),
            dead_letter_topic: kafka.dead_letter_topic.clone(),
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Checks broker reachability every `every` until the sink is dropped, for `/readyz`, and
    /// reports the producer's queue depth.
    pub fn spawn_probe(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(sink) = weak.upgrade() else { return };
                let producer = sink.producer.clone();
                let topic = sink.topic.clone();
                let reachable = tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_metadata(Some(&topic), Duration::from_secs(2))
                        .is_ok()
                })
                .await
                .unwrap_or(false);
                if reachable != sink.ready.swap(reachable, Ordering::Relaxed) {
                    tracing::info!(reachable, "Kafka brokers reachability changed");
                }
                sink.metrics
                    .kafka
                    .producer_queue
                    .set(i64::from(sink.producer.in_flight_count()));
                drop(sink);
                tokio::time::sleep(every).await;
            }
        });
    }

    fn fail(&self, e: &KafkaError) -> SendError {
        let kind = error_kind(e);
        self.metrics.kafka.delivery_error(kind);
        tracing::warn!(error = %e, kind, "Kafka delivery failed");
        if kind == "queue_full" {
            SendError::Full
        } else {
            SendError::Unavailable(kind)
        }
    }

    fn enqueue(&self, topic: &str, key: &str, payload: &[u8]) -> Result<DeliveryFuture, SendError> {
        self.producer
            .send_result(FutureRecord::to(topic).key(key).payload(payload))
            .map_err(|(e, _)| self.fail(&e))
    }

    async fn settle(&self, pending: Vec<DeliveryFuture>) -> Result<(), SendError> {
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(self.fail(&e)),
                Err(_canceled) => return Err(SendError::Closed),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventSink for KafkaSink {
    async fn send(&self, events: Vec<Event>) -> Result<(), SendError> {
        if events.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let mut pending = Vec::with_capacity(events.len());
        for event in &events {
            let payload =
                serde_json::to_vec(&OutMessage::Event(event)).expect("events always serialise");
            pending.push(self.enqueue(&self.topic, &key(event), &payload)?);
        }
        self.settle(pending).await?;
        self.metrics
            .kafka
            .produce_seconds
            .observe(start.elapsed().as_secs_f64());
        Ok(())
    }

    async fn dead_letter(&self, letters: Vec<DeadLetter>) -> Result<(), SendError> {
        let mut pending = Vec::with_capacity(letters.len());
        for letter in &letters {
            let payload = serde_json::to_vec(letter).expect("dead letters always serialise");
            pending.push(self.enqueue(&self.dead_letter_topic, &letter.site, &payload)?);
        }
        self.settle(pending).await
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
