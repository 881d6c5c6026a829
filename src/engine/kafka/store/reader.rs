//! Reading checkpoints: the newest manifest of each slot, then the chunks of the one that covers
//! more, checked and decoded, or else the other's; each range of the partition read once.

use super::{ChunkRef, Manifest, STALL, StateTopic, StoreError, decode};
use crate::engine::checkpoint::{CheckpointData, CheckpointFormatError};
use crate::engine::kafka::range::{Start, reader_config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
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
        let reader: BaseConsumer = reader_config(k, "state")
            // Several chunks a fetch.
            .set("max.partition.fetch.bytes", (4 << 20).to_string())
            .create()?;
        let mut failures = Vec::new();
        // The newest manifest first: the other slot's is looked for only if it does not read.
        let mut tried = [false; 2];
        for wanted in [1, 2] {
            for (slot, bytes) in self.manifests(&reader, partition, wanted)? {
                if std::mem::replace(&mut tried[slot], true) {
                    continue;
                }
                let manifest = match decode(partition, &bytes) {
                    Ok(m)
                        if m.topic == k.topic
                            && m.partition == partition
                            && m.slot == slot as u8 =>
                    {
                        m
                    }
                    Ok(_) => {
                        failures.push(format!("slot {slot}: a manifest of another partition"));
                        continue;
                    }
                    Err(e @ StoreError::Format(..)) => return Err(e),
                    Err(e) => {
                        failures.push(format!("slot {slot}: {e}"));
                        continue;
                    }
                };
                match self.load(&reader, &manifest) {
                    Ok(data) => return Ok(Some((manifest, data))),
                    Err(e @ StoreError::Checkpoint(_)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(partition, slot, error = %e, "a checkpoint on the state topic is damaged; trying the other slot");
                        failures.push(format!("slot {slot}: {e}"));
                    }
                }
            }
        }
        if failures.is_empty() {
            return Ok(None);
        }
        let what = format!("no checkpoint reads whole: {}", failures.join("; "));
        Err(StoreError::Broken { partition, what })
    }

    /// A manifest's checkpoint, read and decoded.
    fn load(
        &self,
        reader: &BaseConsumer,
        manifest: &Manifest,
    ) -> Result<CheckpointData, StoreError> {
        let payload = self.chunks(reader, manifest)?;
        CheckpointData::decode(&payload).map_err(|e| match e {
            CheckpointFormatError::Newer(_) => StoreError::Checkpoint(e),
            e => StoreError::Broken {
                partition: manifest.partition,
                what: format!("its checkpoint does not decode: {e}"),
            },
        })
    }

    /// The newest manifest record of each slot of `partition`, newest first, until `wanted`
    /// slots are found, scanning back from its end in growing windows, each record read once.
    fn manifests(
        &self,
        reader: &BaseConsumer,
        partition: i32,
        wanted: usize,
    ) -> Result<Vec<(usize, Vec<u8>)>, StoreError> {
        let (low, high) = reader.fetch_watermarks(self.name(), partition, STALL)?;
        let keys = [0, 1].map(|slot| self.manifest_key(partition, slot));
        let mut newest: Vec<(usize, Vec<u8>)> = Vec::new();
        // A manifest is the last record of a checkpoint written whole: usually the last.
        let (mut window, mut until) = (2, high);
        while until > low && newest.len() < wanted {
            let from = (until - window).max(low);
            let found = Reader::new(reader, self.name(), partition).read(from, until, |_, k| {
                keys.iter().any(|key| k == key.as_bytes())
            })?;
            for (_, key, bytes) in found.into_iter().rev() {
                let slot = usize::from(key == keys[1].as_bytes());
                if newest.iter().all(|(s, _)| *s != slot) {
                    newest.push((slot, bytes));
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
        let mut start = Start::new(from);
        start.assign(self.consumer, self.topic, self.partition)?;
        let mut progress = Instant::now();
        // The highest offset read: a record delivered again is skipped.
        let mut read = from - 1;
        while progress.elapsed() < STALL {
            match self.consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) if start.too_late(m.offset()) => {
                    start.assign(self.consumer, self.topic, self.partition)?;
                }
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
                // An end reported early (seen against tansu right after an assign) is not the
                // end: done once the position is at `until`.
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    let position = crate::engine::kafka::range::position(
                        self.consumer,
                        self.topic,
                        self.partition,
                    );
                    if position.is_some_and(|p| p >= until) {
                        return Ok(out);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(partition = self.partition, error = %e, "state topic read error; retrying");
                }
                None => {}
            }
        }
        Err(StoreError::Timeout(STALL))
    }
}
