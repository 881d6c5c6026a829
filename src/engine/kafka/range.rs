//! Reading a range of offsets of one partition with a consumer that assigns it itself: the
//! re-read after a checkpoint, the rebuild without one, and the state topic's reader
//! (`store::reader`). Against tansu 0.6 the start may have to move earlier (`Start`).

use super::{Shared, decode};
use crate::config::KafkaConfig;
use crate::transport::kafka::{InMessage, client_config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// How long reading a partition may stall before the engine gives up.
pub(super) const STALL: Duration = Duration::from_secs(30);

/// Where a reader starts: at `from`, or earlier when the broker answered a fetch at `from` from
/// a later offset on. tansu 0.6 answers a fetch at an offset inside a record batch with the
/// batches after it, so the batch's later records would be skipped; reading from earlier
/// offsets finds the batch (its records before `from` are skipped by the caller). Against
/// Kafka the first fetch is answered from `from`, and this does nothing.
pub(super) struct Start {
    from: i64,
    at: i64,
    step: i64,
    first: bool,
}

impl Start {
    pub(super) fn new(from: i64) -> Self {
        Self {
            from,
            at: from,
            step: 1,
            first: true,
        }
    }

    /// Assigns `reader` to `partition` at the current start.
    pub(super) fn assign(
        &mut self,
        reader: &BaseConsumer,
        topic: &str,
        partition: i32,
    ) -> Result<(), KafkaError> {
        let mut start = TopicPartitionList::new();
        start.add_partition_offset(topic, partition, Offset::Offset(self.at))?;
        self.first = true;
        reader.assign(&start)
    }

    /// Whether the first record read, at `offset`, skipped some at or after `from`: then the
    /// start moves earlier (at most a few thousand records back; a real gap, a record
    /// compacted or deleted, is accepted after that) and the reader must be assigned again.
    pub(super) fn too_late(&mut self, offset: i64) -> bool {
        let first = std::mem::replace(&mut self.first, false);
        if !first || offset <= self.from || self.at == 0 || self.step > 4096 {
            return false;
        }
        self.at = (self.from - self.step).max(0);
        self.step *= 4;
        true
    }
}

/// The settings of a consumer that reads ranges it assigns itself (group `<group_id>-<role>`,
/// never committing), reporting each partition's end.
pub(super) fn reader_config(k: &KafkaConfig, role: &str) -> ClientConfig {
    let mut c = client_config(k, &k.consumer);
    c.set("group.id", format!("{}-{role}", k.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    c
}

/// The reader's position in `partition`, if it has one.
pub(super) fn position(reader: &BaseConsumer, topic: &str, partition: i32) -> Option<i64> {
    let list = reader.position().ok()?;
    match list.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// Applies the messages of `partition` at offsets `from..until` with `f(offset, message)`; how
/// many were read.
pub(super) fn read_range(
    shared: &Shared,
    reader: &BaseConsumer,
    partition: i32,
    from: i64,
    until: i64,
    mut f: impl FnMut(i64, &InMessage),
) -> anyhow::Result<u64> {
    if from >= until {
        return Ok(0);
    }
    let mut start = Start::new(from);
    start.assign(reader, shared.topic(), partition)?;
    let (mut read, mut next) = (0, from);
    let mut progress = Instant::now();
    while next < until {
        let polled = reader.poll(Duration::from_millis(500));
        if let Some(Ok(m)) = &polled
            && start.too_late(m.offset())
        {
            start.assign(reader, shared.topic(), partition)?;
            continue;
        }
        match polled {
            Some(Ok(m)) if m.offset() < next => {}
            // Past the last offset to re-read (offsets may have gaps): the live loop has it.
            Some(Ok(m)) if m.offset() >= until => break,
            Some(Ok(m)) => {
                if m.offset() > next {
                    tracing::error!(
                        partition,
                        from = next,
                        to = m.offset(),
                        "messages to re-read are gone (retention): their events are missing from the partition's state"
                    );
                }
                if let Some(message) = decode(&shared.metrics, m.payload()) {
                    f(m.offset(), &message);
                }
                read += 1;
                next = m.offset() + 1;
                progress = Instant::now();
            }
            // An end reported before `until` (seen against tansu right after an assign) is not
            // the end: `until` is at most the partition's end. Done only once the reader's
            // position is there (offsets may have gaps).
            Some(Err(KafkaError::PartitionEOF(_)))
                if position(reader, shared.topic(), partition).is_some_and(|p| p >= until) =>
            {
                break;
            }
            Some(Err(e)) => tracing::warn!(partition, error = %e, "read error; retrying"),
            None => {}
        }
        anyhow::ensure!(
            progress.elapsed() < STALL,
            "reading partition {partition} stalled at offset {next} (of {from}..{until})"
        );
    }
    Ok(read)
}
