//! Each partition's checkpoints on the state topic (`kafka.state_topic`): compacted, with as many
//! partitions as the events topic, partition `p` holding the checkpoints of events partition `p`,
//! so whichever engine owns `p` next, on any machine, reads them.
//!
//! A checkpoint (a [`CheckpointData`](crate::engine::checkpoint::CheckpointData) payload: the
//! engine's state, its figures and the events offset it covers) is written into one of two
//! slots as chunks of at most [`CHUNK`] bytes (under the 1 MB default message limit of Kafka and
//! librdkafka; tansu returns no record larger than a fetch), keyed `topic/group/p/slot/i`, then
//! a manifest keyed `topic/group/p/m/slot` naming the offset each chunk landed at, with its
//! length and CRC-32C. Checkpoints alternate between the slots and a write never goes to the slot of the
//! newest checkpoint known good: compaction keeps the newest record of each key, so a write cut
//! short (a crash, a broker gone, a report lost) spoils at most its own slot, and the other
//! slot's checkpoint stays whole; a write that fails purges its records still queued or in
//! flight, so none of them lands after the next write's. Keys name the events topic and the
//! group, so deployments sharing a state topic never read each other's checkpoints.
//!
//! Reading takes the newest manifest of each slot (scanning back from the partition's end in
//! growing windows) and loads the one that covers more, checked, or else the other. Records
//! delivered twice (tansu after a compaction) are told apart by offset.

use crate::config::KafkaConfig;
use crate::engine::checkpoint::CheckpointFormatError;
use crate::transport::kafka::client_config;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, PurgeConfig};

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod reader;

/// Largest chunk of a checkpoint, in bytes.
pub const CHUNK: usize = 900 * 1024;
/// The manifest's format number.
const MANIFEST_FORMAT: u32 = 1;
/// How long a read may go without a record.
const STALL: Duration = Duration::from_secs(30);
/// How long a write of a small checkpoint may take (a second more for each 4 MiB): a revoke
/// waits for it, and a broker that takes longer is down (the previous checkpoint stays; the
/// next owner re-applies a little more).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a checkpoint's chunks are, and what it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The events topic and partition it is of.
    pub topic: String,
    pub partition: i32,
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
    #[error(
        "state topic partition {0}: a checkpoint manifest of format {1}, which this release \
         (format {MANIFEST_FORMAT}) does not read: run the release that wrote it, or a later one"
    )]
    Format(i32, u32),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointFormatError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// A delivery report: the write it belongs to, the record's index in it (the manifest's is
/// `usize::MAX`), and its offset or error.
type Report = (u64, usize, Result<i64, String>);

/// Collects the producer's delivery reports.
struct Deliveries(Mutex<Vec<Report>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<(u64, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: Box<(u64, usize)>) {
        let outcome = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.to_string()),
        };
        (self.0.lock().expect("never poisoned")).push((tag.0, tag.1, outcome));
    }
}

/// The producer and the number of the last write, one write at a time.
struct Writer {
    producer: BaseProducer<Deliveries>,
    writes: u64,
}

/// The state topic, for one engine process.
pub struct StateTopic {
    writer: Mutex<Writer>,
    kafka: KafkaConfig,
}

impl StateTopic {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let producer = client_config(kafka, &kafka.producer)
            .set("linger.ms", "5")
            .set("enable.idempotence", "false")
            .set("message.timeout.ms", "60000")
            .set(
                "request.timeout.ms",
                (WRITE_TIMEOUT / 2).as_millis().to_string(),
            )
            .create_with_context(Deliveries(Mutex::new(Vec::new())))?;
        Ok(Self {
            writer: Mutex::new(Writer {
                producer,
                writes: 0,
            }),
            kafka: kafka.clone(),
        })
    }

    fn name(&self) -> &str {
        &self.kafka.state_topic
    }

    fn manifest_key(&self, partition: i32, slot: u8) -> String {
        format!(
            "{}/{}/{partition}/m/{slot}",
            self.kafka.topic, self.kafka.group_id
        )
    }

    fn chunk_key(&self, partition: i32, slot: u8, index: usize) -> String {
        format!(
            "{}/{}/{partition}/{slot}/{index}",
            self.kafka.topic, self.kafka.group_id
        )
    }

    /// Fails unless the state topic has a partition for each of `events`' partitions.
    pub fn check(&self, events: &str) -> anyhow::Result<()> {
        let writer = self.writer.lock().expect("never poisoned");
        let count = |topic: &str| -> anyhow::Result<usize> {
            let metadata = writer
                .producer
                .client()
                .fetch_metadata(Some(topic), STALL)?;
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
        let mut writer = self.writer.lock().expect("never poisoned");
        writer.writes += 1;
        let write = writer.writes;
        let deadline =
            Instant::now() + WRITE_TIMEOUT + Duration::from_secs(payload.len() as u64 >> 22);
        let result = self.send(
            &writer.producer,
            write,
            deadline,
            (partition, slot),
            next,
            payload,
        );
        if result.is_err() {
            // None of this write's records may land after the next write's (a retry would):
            // what is queued or in flight is dropped, and its reports awaited.
            let producer = &writer.producer;
            producer.purge(PurgeConfig::default().queue().inflight());
            let deadline = Instant::now() + WRITE_TIMEOUT;
            while producer.in_flight_count() > 0 && Instant::now() < deadline {
                producer.poll(Duration::from_millis(50));
            }
            producer.context().0.lock().expect("never poisoned").clear();
        }
        result
    }

    /// The records of write `write`, then its manifest.
    fn send(
        &self,
        producer: &BaseProducer<Deliveries>,
        write: u64,
        deadline: Instant,
        (partition, slot): (i32, u8),
        next: i64,
        payload: &[u8],
    ) -> Result<Manifest, StoreError> {
        let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let key = self.chunk_key(partition, slot, i);
            let record = (BaseRecord::with_opaque_to(self.name(), Box::new((write, i))))
                .partition(partition)
                .key(&key)
                .payload(*piece);
            producer.send(record).map_err(|(e, _)| e)?;
            producer.poll(Duration::ZERO);
        }
        let offsets = settle(producer, write, deadline, partition, pieces.len())?;
        let manifest = Manifest {
            topic: self.kafka.topic.clone(),
            partition,
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
        let key = self.manifest_key(partition, slot);
        let record = (BaseRecord::with_opaque_to(self.name(), Box::new((write, usize::MAX))))
            .partition(partition)
            .key(&key)
            .payload(&bytes);
        producer.send(record).map_err(|(e, _)| e)?;
        settle(producer, write, deadline, partition, 1)?;
        Ok(manifest)
    }
}

/// Waits until write `write`'s `n` records are reported; their offsets by index. Reports of
/// earlier writes (given up on, then delivered late) are dropped.
fn settle(
    producer: &BaseProducer<Deliveries>,
    write: u64,
    deadline: Instant,
    partition: i32,
    n: usize,
) -> Result<Vec<i64>, StoreError> {
    let mut offsets: HashMap<usize, i64> = HashMap::new();
    loop {
        producer.flush(Duration::from_millis(100)).ok();
        let reports = std::mem::take(&mut *producer.context().0.lock().expect("never poisoned"));
        for (w, index, result) in reports {
            if w != write {
                continue;
            }
            match result {
                Ok(offset) => _ = offsets.insert(index, offset),
                Err(e) => {
                    let what = format!("a checkpoint record was not delivered: {e}");
                    return Err(StoreError::Broken { partition, what });
                }
            }
        }
        if offsets.len() >= n {
            let mut sorted: Vec<(usize, i64)> = offsets.into_iter().collect();
            sorted.sort();
            return Ok(sorted.into_iter().map(|(_, offset)| offset).collect());
        }
        if Instant::now() > deadline {
            return Err(StoreError::Timeout(WRITE_TIMEOUT));
        }
    }
}

/// A manifest's record. One of a newer format stops the read: its checkpoint must not be
/// taken for missing.
fn decode(partition: i32, bytes: &[u8]) -> Result<Manifest, StoreError> {
    let broken = |what: String| StoreError::Broken { partition, what };
    let (format, body) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| broken("a manifest too short to read".into()))?;
    match u32::from_le_bytes(*format) {
        MANIFEST_FORMAT => {
            postcard::from_bytes(body).map_err(|e| broken(format!("a manifest: {e}")))
        }
        other => Err(StoreError::Format(partition, other)),
    }
}

#[cfg(test)]
mod tests;
