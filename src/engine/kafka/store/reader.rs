//! Reading a range of one state partition, each record once.

use super::{STALL, StoreError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Reads a range of one state partition.
pub(super) struct Reader<'a> {
    consumer: &'a BaseConsumer,
    topic: &'a str,
    partition: i32,
}

impl<'a> Reader<'a> {
    pub(super) fn new(consumer: &'a BaseConsumer, topic: &'a str, partition: i32) -> Self {
        Self {
            consumer,
            topic,
            partition,
        }
    }

    /// The payloads of the records at offsets `from..until` that `keep(offset, key)` accepts,
    /// in offset order, each once.
    pub(super) fn read(
        &self,
        from: i64,
        until: i64,
        keep: impl Fn(i64, &[u8]) -> bool,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
        if from >= until {
            return Ok(out);
        }
        let mut start = TopicPartitionList::new();
        start.add_partition_offset(self.topic, self.partition, Offset::Offset(from))?;
        self.consumer.assign(&start)?;
        let mut progress = Instant::now();
        // The highest offset read: a record delivered again is skipped.
        let mut read = from - 1;
        while progress.elapsed() < STALL {
            match self.consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    progress = Instant::now();
                    let offset = m.offset();
                    let key = m.key().unwrap_or_default();
                    if offset > read && offset < until && keep(offset, key) {
                        out.push((offset, m.payload().unwrap_or_default().to_vec()));
                    }
                    read = read.max(offset);
                    if offset + 1 >= until {
                        return Ok(out);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(out),
                Some(Err(e)) => {
                    tracing::warn!(partition = self.partition, error = %e, "state topic read error; retrying");
                }
                None => {}
            }
        }
        Err(StoreError::Timeout(STALL))
    }
}
