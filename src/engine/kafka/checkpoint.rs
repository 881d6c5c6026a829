//! Writing a partition's checkpoint: its engine's state and figures, taken between two
//! messages under the state lock, then encoded and written to the state topic off it (`store`).
//! Once written, the group's committed offset follows (a hint for lag tools and for a release
//! without checkpoints; the checkpoint's offset is what a new owner starts from).

use super::{KafkaEngine, Part, Shared, trail};
use crate::engine::checkpoint::CheckpointData;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// A partition's state as taken, to be written.
pub(super) struct Taken {
    partition: i32,
    slot: u8,
    data: CheckpointData,
}

/// Takes `part`'s state when it changed since its last checkpoint.
pub(super) fn take(partition: i32, part: &Part) -> Option<Taken> {
    let next = part.next?;
    if part.checkpointed == Some(next) {
        return None;
    }
    Some(Taken {
        partition,
        slot: part.slot ^ 1,
        data: CheckpointData {
            lsn: next as u64,
            taken_at_ms: crate::now_ms(),
            engine: part.engine.snapshot(),
            figures: part.metrics.figures(),
        },
    })
}

/// Writes a taken state; blocking. Returns the bytes written, or `None` when it failed
/// (logged and counted: the partition's previous checkpoint stays the newest).
pub(super) fn write(shared: &Shared, taken: &Taken) -> Option<usize> {
    let payload = taken.data.encode();
    let next = taken.data.lsn as i64;
    match shared
        .store
        .write(taken.partition, taken.slot, next, &payload)
    {
        Ok(_) => {
            trail::checkpointed(taken.partition, next);
            Some(payload.len())
        }
        Err(e) => {
            shared.metrics.state.checkpoint_failures.inc();
            tracing::warn!(partition = taken.partition, error = %e, "cannot write the partition's checkpoint; the previous one stays");
            None
        }
    }
}

/// Notes a written checkpoint on its partition, if this engine still owns it.
pub(super) fn written(shared: &Shared, taken: &Taken) {
    if let Some(part) = shared.lock().parts.get_mut(&taken.partition) {
        part.checkpointed = Some(taken.data.lsn as i64);
        part.slot = taken.slot;
    }
}

/// Commits `offsets` to the group; a failure is only logged (they are a hint).
pub(super) fn commit<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    shared: &Shared,
    offsets: &TopicPartitionList,
) {
    let result = consumer.commit(offsets, CommitMode::Sync);
    shared.metrics.kafka.commit(result.is_ok());
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot commit the checkpointed offsets");
    }
}

/// The offsets of `taken` to commit.
pub(super) fn offsets(shared: &Shared, taken: &[&Taken]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for t in taken {
        let offset = Offset::Offset(t.data.lsn as i64);
        let _ = list.add_partition_offset(shared.topic(), t.partition, offset);
    }
    list
}

impl KafkaEngine {
    /// Checkpoints every owned partition that moved since its last checkpoint, one at a time,
    /// until one fails. The apply loop waits for it: a rebalance callback, run while messages
    /// are polled, never writes a partition's checkpoint at the same time.
    pub(super) async fn checkpoint_all(&self) {
        if self.consumer.assignment_lost() {
            return;
        }
        // Each round starts one partition further, so one whose state partition fails (no
        // leader) stops a round without keeping the others from ever being written.
        let mut partitions: Vec<i32> = self.shared.lock().parts.keys().copied().collect();
        partitions.sort_unstable();
        let round = self
            .rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !partitions.is_empty() {
            let turn = round % partitions.len();
            partitions.rotate_left(turn);
        }
        let (mut done, mut failed, mut bytes) = (Vec::new(), 0, 0);
        let (start, mut snapshots) = (std::time::Instant::now(), std::time::Duration::ZERO);
        for partition in partitions {
            let taken = {
                let began = std::time::Instant::now();
                let state = self.shared.lock();
                let Some(part) = state.parts.get(&partition) else {
                    continue;
                };
                let taken = take(partition, part);
                snapshots += began.elapsed();
                taken
            };
            let Some(taken) = taken else { continue };
            let shared = self.shared.clone();
            let result = tokio::task::spawn_blocking(move || {
                let n = write(&shared, &taken);
                (taken, n)
            })
            .await;
            match result {
                Ok((taken, Some(n))) => {
                    written(&self.shared, &taken);
                    bytes += n;
                    done.push(taken);
                }
                // The others would wait as long: they are tried at the next round.
                _ => {
                    failed += 1;
                    break;
                }
            }
        }
        if !done.is_empty() {
            let list = offsets(&self.shared, &done.iter().collect::<Vec<_>>());
            let result = self.consumer.commit(&list, CommitMode::Async);
            self.shared.metrics.kafka.commit(result.is_ok());
            tracing::debug!(
                partitions = done.len(),
                bytes,
                snapshot_ms = snapshots.as_millis() as u64,
                // The apply loop waits for the whole round.
                paused_ms = start.elapsed().as_millis() as u64,
                "checkpoints written"
            );
        }
        if failed == 0 {
            let m = &self.shared.metrics.state;
            m.checkpoint_time.set(crate::now_ms() / 1000);
            if bytes > 0 {
                m.checkpoint_bytes.set(bytes as i64);
            }
        }
    }
}
