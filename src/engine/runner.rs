//! The engine's tasks: the apply loop reading from the transport, and the sweeper closing idle
//! sessions by the server clock. Both stop on the one shutdown signal; the apply loop first
//! closes its source and applies everything already in the transport.

use super::Engine;
use crate::shutdown::Shutdown;
use crate::transport::EventSource;
use std::sync::Arc;
use std::time::Duration;

/// Applies every batch from `source` until shutdown, then drains what the transport holds.
/// Returns the number of events applied.
pub async fn run(engine: Arc<Engine>, mut source: impl EventSource, mut shutdown: Shutdown) -> u64 {
    let mut applied = 0u64;
    loop {
        let delivery = tokio::select! {
            d = source.next() => d,
            _ = shutdown.wait() => {
                source.close();
                shutdown = Shutdown::never();
                continue;
            }
        };
        let Some(delivery) = delivery else { break };
        for ev in &delivery.events {
            engine.apply(ev);
        }
        let now = crate::now_ms();
        let lag = &engine.metrics.funnel.lag;
        for ev in &delivery.events {
            lag.observe((now - ev.received_at_ms).max(0) as f64 / 1000.0);
        }
        applied += delivery.events.len() as u64;
        delivery.ack();
    }
    tracing::info!(applied, "engine drained the transport");
    applied
}

/// Closes idle sessions every `interval` by the server clock, until shutdown.
pub async fn sweep_loop(engine: Arc<Engine>, interval: Duration, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let closed = engine.sweep(crate::now_ms());
                if closed > 0 {
                    tracing::debug!(closed, "closed idle sessions");
                }
            }
            _ = shutdown.wait() => return,
        }
    }
}
