//! Reading checkpoints: the newest manifest of each slot, then the chunks of the one that covers
//! more, checked and decoded, or else the other's; each range of the partition read once.

use super::{ChunkRef, Manifest, STALL, StateTopic, StoreError, decode};
use crate::engine::checkpoint::{CheckpointData, CheckpointFormatError};
use crate::transport::kafka::client_config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A record read: its offset, key and payload.
type Record = (i64, Vec<u8>, Vec<u8>);

impl StateTopic {
    /// The newest checkpoint of `partition` that reads whole, decoded: its manifest and data,
    /// or `None` when it has none. An error when it has some and none reads, or one is of a
    /// newer release. Blocking.
    pub fn read(&self, partition: i32) -> Result<Option<(Manifest, CheckpointData)>, StoreError> {
        let k = &self.kafka;
        let reader: BaseConsumer = client_config(k, &k.consumer)
            .set("group.id", format!("{}-state", k.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let mut failures = Vec::new();
        let mut manifests = Vec::new();
        for (slot, record) in self.manifests(&reader, partition)?.into_iter().enumerate() {
            let Some(bytes) = record else { continue };
            match decode(partition, &bytes) {
                Ok(m) if m.topic == k.topic && m.partition == partition && m.slot == slot as u8 => {
                    manifests.push(m)
                }
                Ok(_) => failures.push(format!("slot {slot}: a manifest of another partition")),
                Err(e @ StoreError::Format(..)) => return Err(e),
                Err(e) => failures.push(format!("slot {slot}: {e}")),
            }
        }
        // The one that covers more first.
        manifests.sort_by_key(|m| std::cmp::Reverse((m.next, m.taken_at_ms)));
        for manifest in manifests {
            let loaded = self.chunks(&reader, &manifest).and_then(|payload| {
                CheckpointData::decode(&payload).map_err(|e| match e {
                    CheckpointFormatError::Newer(_) => StoreError::Checkpoint(e),
                    e => StoreError::Broken {
                        partition,
                        what: format!("its checkpoint does not decode: {e}"),
                    },
                })
            });
            match loaded {
                Ok(data) => return Ok(Some((manifest, data))),
                Err(e @ StoreError::Checkpoint(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(partition, slot = manifest.slot, error = %e, "a checkpoint on the state topic is damaged; trying the other slot");
                    failures.push(format!("slot {}: {e}", manifest.slot));
                }
            }
        }
        if failures.is_empty() {
            return Ok(None);
        }
        let what = format!("no checkpoint reads whole: {}", failures.join("; "));
        Err(StoreError::Broken { partition, what })
    }

    /// The newest manifest record of each slot of `partition`, scanning back from its end in
    /// growing windows, each record read once.
    fn manifests(
        &self,
        reader: &BaseConsumer,
        partition: i32,
    ) -> Result<[Option<Vec<u8>>; 2], StoreError> {
        let (low, high) = reader.fetch_watermarks(self.name(), partition, STALL)?;
        let keys = [0, 1].map(|slot| self.manifest_key(partition, slot));
        let mut newest: [Option<Vec<u8>>; 2] = [None, None];
        // A manifest is the last record of a checkpoint written whole: usually the last.
        let (mut window, mut until) = (2, high);
        while until > low && newest.iter().any(Option::is_none) {
            let from = (until - window).max(low);
            let found = Reader::new(reader, self.name(), partition).read(from, until, |_, k| {
                keys.iter().any(|key| k == key.as_bytes())
            })?;
            let mut here: [Option<Vec<u8>>; 2] = [None, None];
            for (_, key, bytes) in found {
                here[usize::from(key == keys[1].as_bytes())] = Some(bytes);
            }
            for (kept, found) in newest.iter_mut().zip(here) {
                if kept.is_none() {
                    *kept = found;
                }
            }
            (until, window) = (from, window * 8);
        }
        Ok(newest)
    }

    /// A manifest's payload, each chunk checked.
    fn chunks(&self, reader: &BaseConsumer, manifest: &Manifest) -> Result<Vec<u8>, StoreError> {
        let partition = manifest.partition;
        let Some(first) = manifest.chunks.iter().map(|c| c.offset).min() else {
            return Ok(Vec::new());
        };
        let last = manifest
            .chunks
            .iter()
            .map(|c| c.offset)
            .max()
            .unwrap_or(first);
        let wanted: HashMap<i64, &ChunkRef> =
            manifest.chunks.iter().map(|c| (c.offset, c)).collect();
        let found =
            Reader::new(reader, self.name(), partition)
                .read(first, last + 1, |offset, _| wanted.contains_key(&offset))?;
        let by_offset: HashMap<i64, Vec<u8>> = found.into_iter().map(|(o, _, b)| (o, b)).collect();
        let mut payload = Vec::with_capacity(manifest.chunks.iter().map(|c| c.len as usize).sum());
        for (i, c) in manifest.chunks.iter().enumerate() {
            let bytes = (by_offset.get(&c.offset))
                .filter(|b| b.len() == c.len as usize && crc32c::crc32c(b) == c.crc);
            let Some(bytes) = bytes else {
                let what = format!(
                    "chunk {i} of the checkpoint in slot {} (offset {}) is missing or damaged",
                    manifest.slot, c.offset
                );
                return Err(StoreError::Broken { partition, what });
            };
            payload.extend_from_slice(bytes);
        }
        Ok(payload)
    }
}

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

    /// The records (offset, key, payload) at offsets `from..until` that `keep(offset, key)`
    /// accepts, in offset order, each once.
    pub(super) fn read(
        &self,
        from: i64,
        until: i64,
        keep: impl Fn(i64, &[u8]) -> bool,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
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
                        let payload = m.payload().unwrap_or_default().to_vec();
                        out.push((offset, key.to_vec(), payload));
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
