//! The consumer's rebalance callbacks: a revoked partition is committed and released (or
//! parked, when the commit fails); an assigned one is registered, to be rebuilt on its first
//! message; parked partitions that went to another engine are let go.

use super::park::unpark_lost;
use super::{Part, Shared, trail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Arc;

/// Consumer callbacks: releasing revoked partitions and registering assigned ones.
pub(super) struct Context(pub Arc<Shared>);

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let shared = &self.0;
        let mut state = shared.lock();
        let mut commit = TopicPartitionList::new();
        let mut revoked_parts = Vec::new();
        for elem in revoked.elements_for_topic(shared.topic()) {
            let Some(part) = state.parts.remove(&elem.partition()) else {
                continue;
            };
            if let (Some(next), false) = (part.next, state.shutting_down) {
                let _ = commit.add_partition_offset(
                    shared.topic(),
                    elem.partition(),
                    Offset::Offset(next),
                );
            }
            revoked_parts.push((elem.partition(), part));
        }
        let committed = commit.count() == 0 || commit_revoked(consumer, shared, &commit);
        for (partition, part) in revoked_parts {
            if !committed && part.next.is_some() {
                tracing::info!(partition, "partition revoked, parked uncommitted");
                state.parked.insert(partition, part);
            } else {
                let released = part.engine.release();
                tracing::info!(partition, released, "partition revoked");
            }
        }
        shared
            .metrics
            .kafka
            .assigned_partitions
            .set(state.parts.len() as i64);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        let shared = &self.0;
        let mut state = shared.lock();
        let mut kept = Vec::new();
        for elem in assigned.elements_for_topic(shared.topic()) {
            kept.push(elem.partition());
            state.parts.entry(elem.partition()).or_insert_with(|| {
                tracing::info!(partition = elem.partition(), "partition assigned");
                Part::new(shared)
            });
        }
        let gone: Vec<i32> = state
            .parked
            .keys()
            .filter(|p| !kept.contains(p))
            .copied()
            .collect();
        for partition in gone {
            if let Some(part) = state.parked.remove(&partition) {
                unpark_lost(shared, partition, part, "assigned to another engine");
            }
        }
        shared
            .metrics
            .kafka
            .assigned_partitions
            .set(state.parts.len() as i64);
    }
}

/// Commits the offsets of revoked partitions; false when that failed.
fn commit_revoked(
    consumer: &BaseConsumer<Context>,
    shared: &Shared,
    offsets: &TopicPartitionList,
) -> bool {
    let result = consumer.commit(offsets, CommitMode::Sync);
    shared.metrics.kafka.commit(result.is_ok());
    match result {
        Ok(()) => {
            trail::committed(offsets);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot commit offsets of revoked partitions; parking them");
            false
        }
    }
}
