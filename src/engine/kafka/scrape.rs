//! `/metrics` of a Kafka engine: the figures are rendered and the offsets of exactly the
//! messages they include are committed, under the state lock, before the answer goes out (a
//! failed commit fails the scrape).

use super::{GroupConsumer, Shared, trail};
use crate::metrics::Exposition;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;

/// Renders `/metrics` and commits the offsets behind the figures.
pub struct ScrapeCommit {
    shared: Arc<Shared>,
    consumer: Arc<GroupConsumer>,
}

impl ScrapeCommit {
    pub(super) fn new(shared: Arc<Shared>, consumer: Arc<GroupConsumer>) -> Self {
        Self { shared, consumer }
    }
}

#[async_trait::async_trait]
impl Exposition for ScrapeCommit {
    async fn render(&self) -> Result<String, String> {
        let shared = self.shared.clone();
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = shared.lock();
            let text = shared.metrics.encode();
            let mut offsets = TopicPartitionList::new();
            for (p, part) in &state.parts {
                if let Some(next) = part.next {
                    let _ = offsets.add_partition_offset(shared.topic(), *p, Offset::Offset(next));
                }
            }
            if offsets.count() == 0 {
                trail::exported();
                return Ok(text);
            }
            let result = consumer.commit(&offsets, CommitMode::Sync);
            shared.metrics.kafka.commit(result.is_ok());
            if result.is_ok() {
                for part in state.parts.values_mut() {
                    part.committed = part.next.or(part.committed);
                }
                trail::committed(&offsets);
                trail::exported();
            }
            drop(state);
            result
                .map(|_| text)
                .map_err(|e| format!("cannot commit the offsets behind these figures: {e}"))
        })
        .await
        .map_err(|e| format!("scrape task failed: {e}"))?
    }
}
