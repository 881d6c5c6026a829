//! The audit trail: with `RUST_LOG=touchstream::trail=trace`, every event counted, every offset
//! committed and every scrape answered, under the target `touchstream::trail` (see the module
//! doc of `engine::kafka`). The chaos tests read it id by id.

use crate::engine::Outcome;
use crate::event::Event;
use rdkafka::{Offset, TopicPartitionList};

/// The log target of the trail.
const TRAIL: &str = "touchstream::trail";

/// An event counted at `offset` of `partition`.
pub(super) fn event(partition: i32, offset: i64, e: &Event, outcome: Outcome) {
    tracing::trace!(
        target: TRAIL,
        partition,
        offset,
        session = %e.session,
        id = %e.id,
        outcome = %outcome.as_str(),
        "event"
    );
}

/// Offsets committed.
pub(super) fn committed(offsets: &TopicPartitionList) {
    for elem in offsets.elements() {
        if let Offset::Offset(offset) = elem.offset() {
            tracing::trace!(target: TRAIL, partition = elem.partition(), offset, "committed");
        }
    }
}

/// A scrape answered: its figures include exactly the events logged before this line.
pub(super) fn exported() {
    tracing::trace!(target: TRAIL, "figures exported");
}
