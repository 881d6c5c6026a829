//! A new owner's rebuild: before counting a newly assigned partition from its committed offset,
//! re-read the partition from `kafka.rebuild_lookback` earlier into the [`Silent`] recorder, so
//! the sessions open at that offset are back (with their gauges) and nothing is counted twice.

use super::{KafkaEngine, Shared, apply, decode};
use crate::engine::Silent;
use crate::transport::kafka::client_config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

impl KafkaEngine {
    /// Re-reads `partition` from `rebuild_lookback` before `until_time` up to offset `until`
    /// into the silent recorder, then marks it ready to count from `until`.
    pub(super) async fn rebuild(&self, partition: i32, until: i64, until_time: i64) {
        let shared = self.shared.clone();
        let start = Instant::now();
        let result =
            tokio::task::spawn_blocking(move || read_back(&shared, partition, until, until_time))
                .await;
        let read = match result {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::error!(partition, error = %e, "rebuild failed; sessions open before the committed offset are missing");
                0
            }
            Err(e) => {
                tracing::error!(partition, error = %e, "rebuild task failed");
                0
            }
        };
        let mut state = self.shared.lock();
        if let Some(part) = state.parts.get_mut(&partition) {
            part.next.get_or_insert(until);
            part.committed.get_or_insert(until);
        }
        let m = &self.shared.metrics.kafka;
        m.rebuild_seconds.observe(start.elapsed().as_secs_f64());
        m.rebuild_messages.inc_by(read);
        tracing::info!(
            partition,
            from_offset = until,
            read,
            seconds = start.elapsed().as_secs_f64(),
            "partition rebuilt"
        );
    }
}

/// The blocking part of a rebuild; returns the number of messages re-applied.
fn read_back(
    shared: &Shared,
    partition: i32,
    until: i64,
    until_time: i64,
) -> Result<u64, KafkaError> {
    let k = &shared.config.kafka;
    let topic = shared.topic();
    let reader: BaseConsumer = client_config(k, &k.consumer)
        .set("group.id", format!("{}-rebuild", k.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let since = until_time - k.rebuild_lookback.as_millis() as i64;
    // Sessions that closed before the lookback are not remembered: the effective dedup
    // horizon starts there.
    shared.bounds.forgot_early(since);
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition_offset(topic, partition, Offset::Offset(since))?;
    let found = reader.offsets_for_times(wanted, Duration::from_secs(10))?;
    let from = match found.find_partition(topic, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => until,
    };
    if from >= until {
        return Ok(0);
    }
    let mut start = TopicPartitionList::new();
    start.add_partition_offset(topic, partition, Offset::Offset(from))?;
    reader.assign(&start)?;
    let mut read = 0;
    let mut idle = 0;
    while idle < 30 {
        match reader.poll(Duration::from_secs(1)) {
            Some(Ok(m)) if m.offset() < until => {
                idle = 0;
                let message = decode(&shared.metrics, m.payload());
                let state = shared.lock();
                let Some(part) = state.parts.get(&partition) else {
                    return Ok(read);
                };
                if let Some(message) = &message {
                    apply(&part.engine, message, &Silent);
                }
                read += 1;
                if m.offset() + 1 >= until {
                    break;
                }
            }
            Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => {
                tracing::warn!(partition, error = %e, "rebuild read error; retrying");
                idle += 1;
            }
            None => idle += 1,
        }
    }
    Ok(read)
}
