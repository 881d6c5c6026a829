//! The engines' clock and lag: every `engine.sweep_interval` an engine writes a tick with its
//! clock to each partition it owns (applying it closes idle sessions, so a partition's state
//! follows from its log alone) and reads each partition's end to report consumer lag.

use super::KafkaEngine;
use crate::transport::kafka::OutMessage;
use rdkafka::producer::{FutureRecord, Producer};
use std::time::Duration;

impl KafkaEngine {
    /// Writes a clock tick to every owned partition and refreshes consumer lag.
    pub(super) async fn tick(&self) {
        let now = crate::now_ms();
        let payload =
            serde_json::to_vec(&OutMessage::Tick { at_ms: now }).expect("ticks serialise");
        let owned: Vec<(i32, Option<i64>)> = self
            .shared
            .lock()
            .parts
            .iter()
            .map(|(p, part)| (*p, part.next))
            .collect();
        for (partition, _) in &owned {
            let record = FutureRecord::<(), _>::to(self.shared.topic())
                .partition(*partition)
                .payload(&payload);
            if let Err((e, _)) = self.ticker.send_result(record) {
                tracing::warn!(partition, error = %e, "cannot write a clock tick");
            }
        }
        // Through the tick producer's connection: a broker may serve one connection's requests
        // in order, and the consumer's is busy with a long-polling fetch.
        let producer = self.ticker.clone();
        let topic = self.shared.topic().to_string();
        let lags = tokio::task::spawn_blocking(move || {
            owned
                .into_iter()
                .filter_map(|(p, next)| {
                    let (_, high) = producer
                        .client()
                        .fetch_watermarks(&topic, p, Duration::from_millis(500))
                        .ok()?;
                    Some((p, high - next?))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (partition, lag) in lags {
            let labels = crate::metrics::labels([("partition", &partition.to_string())]);
            self.shared
                .metrics
                .kafka
                .consumer_lag
                .get_or_create(&labels)
                .set(lag.max(0));
        }
    }
}
