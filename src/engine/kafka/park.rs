//! Parked partitions: revoked before their offsets could be committed, kept with their state
//! so that, given back unconsumed, they resume where they stopped instead of counting again.

use super::{KafkaEngine, Part, Shared};

impl KafkaEngine {
    /// Resumes a parked `partition` whose first message after reassignment is at `offset`:
    /// when that is the offset this engine last knew committed, nobody consumed the partition
    /// meanwhile, and its state (with counts past the commit already made) is still right.
    pub(super) fn unpark(&self, partition: i32, offset: i64) -> bool {
        let mut state = self.shared.lock();
        let Some(parked) = state.parked.remove(&partition) else {
            return false;
        };
        if parked.committed != Some(offset) {
            unpark_lost(
                &self.shared,
                partition,
                parked,
                "consumed by another engine meanwhile",
            );
            return false;
        }
        tracing::info!(
            partition,
            resume_at = parked.next,
            "partition came back unconsumed; resuming its state"
        );
        self.shared.metrics.kafka.parked("resumed");
        if let Some(fresh) = state.parts.insert(partition, parked) {
            fresh.engine.release();
        }
        true
    }
}

/// Releases a parked partition another engine took over: the events this engine counted past
/// its last commit are counted again by the new owner.
pub(super) fn unpark_lost(shared: &Shared, partition: i32, part: Part, why: &str) {
    let uncommitted = part.next.unwrap_or(0) - part.committed.unwrap_or(0);
    part.engine.release();
    shared.metrics.kafka.parked("handed_over");
    tracing::warn!(
        partition,
        uncommitted,
        "a partition revoked before its offsets were committed was {why}: the events this engine counted since its last scrape (up to {uncommitted} messages) are counted again"
    );
}
