//! The consumer's rebalance callbacks (cooperative: each names only the partitions that move).
//! A revoked partition is checkpointed, its offset committed, and its sessions released; an
//! assigned one is registered and its checkpoint starts loading (all of an assignment's
//! together), to be brought up to date on its first message.

use super::checkpoint::{commit, offsets, take, write};
use super::restore::{discard, prefetch};
use super::{Part, Shared, State};
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use std::sync::Arc;

/// Consumer callbacks: checkpointing revoked partitions and registering assigned ones.
pub(super) struct Context(pub Arc<Shared>);

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let shared = &self.0;
        let mut gone = Vec::new();
        {
            let mut state = shared.lock();
            for elem in revoked.elements_for_topic(shared.topic()) {
                if let Some(part) = state.parts.remove(&elem.partition()) {
                    gone.push((elem.partition(), part));
                }
            }
            let owned = state.parts.len() as i64;
            shared.metrics.kafka.assigned_partitions.set(owned);
        }
        for (partition, _) in &gone {
            let labels = crate::metrics::labels([("partition", &partition.to_string())]);
            shared.metrics.kafka.consumer_lag.remove(&labels);
        }
        // The new owner starts from the newest checkpoint: written now, it re-applies nothing.
        // After a failure (the brokers unreachable) the others are not tried: the rebalance
        // waits for these writes. An assignment lost (this engine was expelled from the group)
        // may already be another engine's: it writes nothing over that one's checkpoints.
        let lost = consumer.assignment_lost();
        if lost {
            tracing::warn!(
                "partitions lost to the group: their state since the last checkpoint is left to their new owners"
            );
        }
        let taken: Vec<_> = (gone.iter())
            .filter(|_| !lost)
            .filter_map(|(p, part)| take(*p, part))
            .collect();
        let written: Vec<_> = taken
            .iter()
            .map_while(|t| write(shared, t).map(|_| t))
            .collect();
        if !written.is_empty() {
            commit(consumer, shared, &offsets(shared, &written));
        }
        for (partition, mut part) in gone {
            if let Some(loading) = part.loading.take() {
                let discarded = discard(shared, partition, loading);
                shared.lock().discarded.insert(partition, discarded);
            }
            let released = part.engine.release();
            tracing::info!(partition, released, "partition revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        let shared = &self.0;
        let mut state = shared.lock();
        let State { parts, discarded } = &mut *state;
        discarded.retain(|_, given_back| !given_back.is_finished());
        for elem in assigned.elements_for_topic(shared.topic()) {
            parts.entry(elem.partition()).or_insert_with(|| {
                tracing::info!(partition = elem.partition(), "partition assigned");
                let mut part = Part::new(shared);
                let earlier = discarded.remove(&elem.partition());
                part.loading = Some(prefetch(shared, elem.partition(), earlier));
                part
            });
        }
        let owned = state.parts.len() as i64;
        shared.metrics.kafka.assigned_partitions.set(owned);
    }
}
