//! The embedded transport: an in-process queue bounded in events (not batches), so memory use
//! is capped whatever the batch sizes. A batch holds its share of a semaphore's permits from
//! enqueue until the engine acknowledges it; when the engine falls behind, senders wait up to
//! the enqueue timeout and then get [`SendError::Full`] (the client sees 503 and retries).

use super::{Delivery, EventSink, EventSource, SendError};
use crate::event::Event;
use crate::metrics::TransportMetrics;
use async_trait::async_trait;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

type Item = (Vec<Event>, OwnedSemaphorePermit);

/// The collector's end of the memory queue.
pub struct MemorySink {
    tx: mpsc::UnboundedSender<Item>,
    room: Arc<Semaphore>,
    enqueue_timeout: Duration,
    queued: Gauge,
    failures: crate::metrics::CounterFamily,
}

/// The engine's end of the memory queue.
pub struct MemorySource {
    rx: mpsc::UnboundedReceiver<Item>,
    queued: Gauge,
}

/// A queue holding at most `capacity` events.
pub fn memory(
    capacity: usize,
    enqueue_timeout: Duration,
    metrics: &TransportMetrics,
) -> (MemorySink, MemorySource) {
    let (tx, rx) = mpsc::unbounded_channel();
    metrics.capacity.set(capacity as i64);
    let room = Arc::new(Semaphore::new(capacity.min(Semaphore::MAX_PERMITS)));
    let sink = MemorySink {
        tx,
        room,
        enqueue_timeout,
        queued: metrics.queued.clone(),
        failures: metrics.failures.clone(),
    };
    (
        sink,
        MemorySource {
            rx,
            queued: metrics.queued.clone(),
        },
    )
}

impl MemorySink {
    fn fail(&self, e: SendError) -> SendError {
        self.failures
            .get_or_create(&crate::metrics::labels([("reason", e.reason())]))
            .inc();
        e
    }
}

#[async_trait]
impl EventSink for MemorySink {
    async fn send(&self, events: Vec<Event>) -> Result<(), SendError> {
        if events.is_empty() {
            return Ok(());
        }
        let n = u32::try_from(events.len()).map_err(|_| self.fail(SendError::Full))?;
        let permit = match tokio::time::timeout(
            self.enqueue_timeout,
            self.room.clone().acquire_many_owned(n),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(self.fail(SendError::Closed)),
            Err(_elapsed) => return Err(self.fail(SendError::Full)),
        };
        self.queued.inc_by(i64::from(n));
        self.tx.send((events, permit)).map_err(|_| {
            self.queued.dec_by(i64::from(n));
            self.fail(SendError::Closed)
        })
    }

    fn is_ready(&self) -> bool {
        !self.tx.is_closed()
    }
}

#[async_trait]
impl EventSource for MemorySource {
    async fn next(&mut self) -> Option<Delivery> {
        let (events, permit) = self.rx.recv().await?;
        let queued = self.queued.clone();
        let n = events.len() as i64;
        Some(Delivery::new(events, move || {
            queued.dec_by(n);
            drop(permit);
        }))
    }

    fn close(&mut self) {
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::new("demo", "s", i.to_string(), "page_view", 0))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn full_queue_refuses_after_timeout_and_frees_on_ack() {
        let m = TransportMetrics::for_tests();
        let (sink, mut source) = memory(10, Duration::from_millis(100), &m);
        sink.send(events(8)).await.unwrap();
        assert_eq!(m.queued.get(), 8);
        assert!(matches!(sink.send(events(3)).await, Err(SendError::Full)));
        let d = source.next().await.unwrap();
        assert_eq!(d.events.len(), 8);
        d.ack();
        assert_eq!(m.queued.get(), 0);
        sink.send(events(10)).await.unwrap();
    }

    #[tokio::test]
    async fn close_drains_what_was_queued() {
        let m = TransportMetrics::for_tests();
        let (sink, mut source) = memory(100, Duration::from_millis(100), &m);
        sink.send(events(3)).await.unwrap();
        source.close();
        assert!(matches!(sink.send(events(1)).await, Err(SendError::Closed)));
        assert_eq!(source.next().await.unwrap().events.len(), 3);
        assert!(source.next().await.is_none());
    }
}
