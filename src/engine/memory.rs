//! The memory driver: the engine's task in `serve`, applying every batch from the embedded
//! queue and, between batches, closing idle sessions by the server clock.
//!
//! Sweeping between batches (never during one) means the events of one request are applied
//! together: a flushed offline queue whose events are all older than the session timeout still
//! forms one session instead of being split by a sweep that ran half-way through. On shutdown
//! the loop closes its source and applies everything already in the transport.

use super::Engine;
use crate::shutdown::Shutdown;
use crate::transport::{Delivery, EventSource};
use std::sync::Arc;
use std::time::Duration;

/// Applies every batch from `source` and sweeps every `sweep_interval`, until shutdown; then
/// drains what the transport holds. Returns the number of events applied.
pub async fn run(
    engine: Arc<Engine>,
    mut source: impl EventSource,
    sweep_interval: Duration,
    mut shutdown: Shutdown,
) -> u64 {
    let mut applied = 0u64;
    let mut tick = tokio::time::interval(sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            delivery = source.next() => match delivery {
                Some(d) => applied += apply(&engine, d),
                None => break,
            },
            _ = tick.tick() => {
                let closed = engine.sweep(crate::now_ms());
                if closed > 0 {
                    tracing::debug!(closed, "closed idle sessions");
                }
            }
            _ = shutdown.wait() => {
                source.close();
                shutdown = Shutdown::never();
            }
        }
    }
    tracing::info!(applied, "engine drained the transport");
    applied
}

fn apply(engine: &Engine, delivery: Delivery) -> u64 {
    for ev in &delivery.events {
        engine.apply(ev);
    }
    let now = crate::now_ms();
    for ev in &delivery.events {
        engine.metrics.engine.observe_lag(ev.received_at_ms, now);
    }
    let n = delivery.events.len() as u64;
    delivery.ack();
    n
}
