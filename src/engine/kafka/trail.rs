//! The audit trail: with `RUST_LOG=touchstream::trail=trace`, every event counted, every
//! checkpoint written and every partition restored, under the target `touchstream::trail` (see the module
//! doc of `engine::kafka`). The chaos tests read it id by id.

use crate::engine::Outcome;
use crate::event::Event;

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

/// A partition's checkpoint written: a new owner starts at `next`.
pub(super) fn checkpointed(partition: i32, next: i64) {
    tracing::trace!(target: TRAIL, partition, next, "checkpointed");
}

/// A partition restored: counted up to `next` (its checkpoint and the messages re-applied).
pub(super) fn restored(partition: i32, next: Option<i64>) {
    tracing::trace!(target: TRAIL, partition, next, "restored");
}
