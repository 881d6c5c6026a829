//! Each partition's checkpoints on the state topic (`kafka.state_topic`): compacted, with as many
//! partitions as the events topic, partition `p` holding the checkpoints of events partition `p`,
//! so whichever engine owns `p` next, on any machine, reads them.
//!
//! A checkpoint (a [`CheckpointData`] payload: the engine's state, its figures and the events
//! offset it covers) is written as chunks of at most [`CHUNK`] bytes (under the 1 MB default
//! message limit of Kafka and librdkafka; tansu returns no record larger than a fetch), keyed
//! `p/slot/i`, then a manifest keyed `p` naming the offset each chunk landed at, with its length
//! and CRC-32C. Checkpoints alternate between two slots: compaction keeps the newest record of
//! each key, so the chunks of the newest manifest survive until a newer manifest exists, and a
//! write cut short leaves the previous checkpoint whole.
//!
//! Reading takes the newest manifest (scanning back from the partition's end in growing
//! windows), then its chunks by offset, checked; records delivered twice (tansu after a
//! compaction) are told apart by offset.

use crate::config::KafkaConfig;
use crate::transport::kafka::client_config;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest chunk of a checkpoint, in bytes.
pub const CHUNK: usize = 900 * 1024;
/// The manifest's format number.
const MANIFEST_FORMAT: u32 = 1;
/// How long a write or a read may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where a checkpoint's chunks are, and what it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The offset of the first events message the checkpoint does not include.
    pub next: i64,
    /// The slot its chunks were written to (0 or 1).
    pub slot: u8,
    pub chunks: Vec<ChunkRef>,
    pub taken_at_ms: i64,
}

/// One chunk: where it is on the state topic, its length and CRC-32C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub offset: i64,
    pub len: u32,
    pub crc: u32,
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("state topic partition {partition}: {what}")]
    Broken { partition: i32, what: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Collects the producer's delivery reports: (chunk index, offset or error).
struct Deliveries(Mutex<Vec<(usize, Result<i64, String>)>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        let outcome = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.to_string()),
        };
        (self.0.lock().expect("never poisoned")).push((*index, outcome));
    }
}

/// The state topic, for one engine process.
pub struct StateTopic {
    producer: Mutex<BaseProducer<Deliveries>>,
    kafka: KafkaConfig,
}

fn manifest_key(partition: i32) -> String {
    partition.to_string()
}

fn chunk_key(partition: i32, slot: u8, index: usize) -> String {
    format!("{partition}/{slot}/{index}")
}

impl StateTopic {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let producer = client_config(kafka, &kafka.producer)
            .set("linger.ms", "5")
            .set("enable.idempotence", "false")
            .create_with_context(Deliveries(Mutex::new(Vec::new())))?;
        Ok(Self {
            producer: Mutex::new(producer),
            kafka: kafka.clone(),
        })
    }

    fn name(&self) -> &str {
        &self.kafka.state_topic
    }

    /// Fails unless the state topic has a partition for each of `events`' partitions.
    pub fn check(&self, events: &str) -> anyhow::Result<()> {
        let producer = self.producer.lock().expect("never poisoned");
        let count = |topic: &str| -> anyhow::Result<usize> {
            let metadata = producer.client().fetch_metadata(Some(topic), TIMEOUT)?;
            Ok(metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len()))
        };
        let (have, need) = (count(self.name())?, count(events)?);
        anyhow::ensure!(
            have >= need,
            "the state topic {} has {have} partitions, fewer than the {need} of {events}: \
             create it with {need} partitions and cleanup.policy=compact (kafka.state_topic)",
            self.name()
        );
        Ok(())
    }

    /// Writes `payload` as the checkpoint of `partition` up to events offset `next`, into
    /// `slot`; blocks until the broker has every record. Returns the manifest written.
    pub fn write(
        &self,
        partition: i32,
        slot: u8,
        next: i64,
        payload: &[u8],
    ) -> Result<Manifest, StoreError> {
        let producer = self.producer.lock().expect("never poisoned");
        let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
        let offsets = self.send_all(&producer, partition, slot, &pieces)?;
        let manifest = Manifest {
            next,
            slot,
            chunks: (pieces.iter().zip(offsets))
                .map(|(piece, offset)| ChunkRef {
                    offset,
                    len: piece.len() as u32,
                    crc: crc32c::crc32c(piece),
                })
                .collect(),
            taken_at_ms: crate::now_ms(),
        };
        let bytes = postcard::to_extend(&manifest, MANIFEST_FORMAT.to_le_bytes().to_vec())
            .expect("writing to a Vec cannot fail");
        let key = manifest_key(partition);
        let record = (BaseRecord::with_opaque_to(self.name(), Box::new(usize::MAX)))
            .partition(partition)
            .key(&key)
            .payload(&bytes);
        producer.send(record).map_err(|(e, _)| e)?;
        self.settle(&producer, partition, 1)?;
        Ok(manifest)
    }

    /// Sends the chunks and waits for them; their offsets, in order.
    fn send_all(
        &self,
        producer: &BaseProducer<Deliveries>,
        partition: i32,
        slot: u8,
        pieces: &[&[u8]],
    ) -> Result<Vec<i64>, StoreError> {
        for (i, piece) in pieces.iter().enumerate() {
            let key = chunk_key(partition, slot, i);
            let record = (BaseRecord::with_opaque_to(self.name(), Box::new(i)))
                .partition(partition)
                .key(&key)
                .payload(*piece);
            producer.send(record).map_err(|(e, _)| e)?;
            producer.poll(Duration::ZERO);
        }
        let delivered = self.settle(producer, partition, pieces.len())?;
        let mut offsets = vec![0; pieces.len()];
        for (i, offset) in delivered {
            offsets[i] = offset;
        }
        Ok(offsets)
    }

    /// Waits until `n` deliveries are reported; fails on the first error.
    fn settle(
        &self,
        producer: &BaseProducer<Deliveries>,
        partition: i32,
        n: usize,
    ) -> Result<Vec<(usize, i64)>, StoreError> {
        let start = Instant::now();
        loop {
            producer.flush(Duration::from_millis(100)).ok();
            let mut reports = producer.context().0.lock().expect("never poisoned");
            if let Some((_, Err(e))) = reports.iter().find(|(_, r)| r.is_err()) {
                let what = format!("a checkpoint record was not delivered: {e}");
                reports.clear();
                return Err(StoreError::Broken { partition, what });
            }
            if reports.len() >= n {
                return Ok(reports
                    .drain(..)
                    .map(|(i, r)| (i, r.unwrap_or_default()))
                    .collect());
            }
            if start.elapsed() > TIMEOUT {
                reports.clear();
                return Err(StoreError::Timeout(TIMEOUT));
            }
        }
    }

    /// The newest checkpoint of `partition`: its manifest and payload, or `None` when it has
    /// none. Blocking.
    pub fn read(&self, partition: i32) -> Result<Option<(Manifest, Vec<u8>)>, StoreError> {
        let k = &self.kafka;
        let reader: BaseConsumer = client_config(k, &k.consumer)
            .set("group.id", format!("{}-state", k.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()?;
        let (low, high) = reader.fetch_watermarks(self.name(), partition, TIMEOUT)?;
        let key = manifest_key(partition);
        let mut window = 64;
        let manifest = loop {
            let from = (high - window).max(low);
            let found =
                Reader::new(&reader, self.name(), partition)
                    .read(from, high, |_, k, _| k == key.as_bytes())?;
            let newest = found
                .into_iter()
                .rev()
                .find_map(|(_, bytes)| decode(&bytes));
            match newest {
                Some(m) => break m,
                None if from <= low => return Ok(None),
                None => window *= 4,
            }
        };
        let Some(first) = manifest.chunks.first() else {
            return Ok(Some((manifest, Vec::new())));
        };
        let wanted: HashMap<i64, &ChunkRef> =
            manifest.chunks.iter().map(|c| (c.offset, c)).collect();
        let last = manifest.chunks.iter().map(|c| c.offset).max().unwrap_or(0);
        let chunks = Reader::new(&reader, self.name(), partition).read(
            first.offset,
            last + 1,
            |offset, _, _| wanted.contains_key(&offset),
        )?;
        let by_offset: HashMap<i64, Vec<u8>> = chunks.into_iter().collect();
        let mut payload = Vec::new();
        for (i, c) in manifest.chunks.iter().enumerate() {
            let bytes = by_offset
                .get(&c.offset)
                .filter(|b| b.len() == c.len as usize && crc32c::crc32c(b) == c.crc);
            let Some(bytes) = bytes else {
                let what = format!(
                    "chunk {i} of the checkpoint at offset {} is missing or damaged",
                    c.offset
                );
                return Err(StoreError::Broken { partition, what });
            };
            payload.extend_from_slice(bytes);
        }
        Ok(Some((manifest, payload)))
    }
}

/// A manifest's record, or `None` when it is not one this release reads.
fn decode(bytes: &[u8]) -> Option<Manifest> {
    let (format, body) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*format) != MANIFEST_FORMAT {
        tracing::warn!(
            format = u32::from_le_bytes(*format),
            "a checkpoint manifest of an unknown format on the state topic: skipped"
        );
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// Reads a range of one state partition.
struct Reader<'a> {
    consumer: &'a BaseConsumer,
    topic: &'a str,
    partition: i32,
}

impl<'a> Reader<'a> {
    fn new(consumer: &'a BaseConsumer, topic: &'a str, partition: i32) -> Self {
        Self {
            consumer,
            topic,
            partition,
        }
    }

    /// The records at offsets `from..until` that `keep(offset, key, payload)` accepts, in
    /// offset order, each once.
    fn read(
        &self,
        from: i64,
        until: i64,
        keep: impl Fn(i64, &[u8], &[u8]) -> bool,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
        if from >= until {
            return Ok(out);
        }
        let mut start = TopicPartitionList::new();
        start.add_partition_offset(self.topic, self.partition, Offset::Offset(from))?;
        self.consumer.assign(&start)?;
        let begun = Instant::now();
        // The highest offset read: a record delivered again is skipped.
        let mut read = from - 1;
        while begun.elapsed() < TIMEOUT {
            match self.consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    let offset = m.offset();
                    let (key, payload) = (m.key().unwrap_or_default(), m.payload());
                    let payload = payload.unwrap_or_default();
                    if offset > read && offset < until && keep(offset, key, payload) {
                        out.push((offset, payload.to_vec()));
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
        Err(StoreError::Timeout(TIMEOUT))
    }
}
