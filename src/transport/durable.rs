//! The embedded transport with a write-ahead log: `serve`'s collector hands each batch to the
//! log, and only once the batch is on disk (written and fdatasync'ed, with other requests' in
//! one group commit) is the request answered; the engine then takes it from an in-process
//! queue, in log order, each input with its lsn. Ticks of the engine's clock go through the
//! same log, so the log alone says what the engine did, and a restart replays it exactly.
//!
//! The queue is bounded in events (`transport.queue_events`): a batch holds its room from
//! before its append until the engine has applied it, and a request that finds no room within
//! `transport.enqueue_timeout` gets 503. A failed append (a full disk, an I/O error) is a 503
//! too, and the batch is then neither in the log nor in the queue: the client's retry is the
//! only copy, so nothing accepted is lost and nothing refused is counted.

pub mod record;

use super::{EventSink, SendError};
use crate::event::Event;
use crate::metrics::{CounterFamily, TransportMetrics};
use crate::state::{LogWriter, Lsn};
use async_trait::async_trait;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What the engine applies, in log order.
#[derive(Debug)]
pub enum Input {
    Batch { events: Vec<Event>, lsn: Lsn },
    Tick { now_ms: i64, lsn: Lsn },
}

impl Input {
    pub fn lsn(&self) -> Lsn {
        match self {
            Input::Batch { lsn, .. } | Input::Tick { lsn, .. } => *lsn,
        }
    }
}

type Item = (Input, Option<OwnedSemaphorePermit>);

/// The collector's end: appends each batch to the log, then queues it for the engine.
pub struct DurableSink {
    log: LogWriter,
    tx: mpsc::UnboundedSender<Item>,
    room: Arc<Semaphore>,
    enqueue_timeout: Duration,
    queued: Gauge,
    failures: CounterFamily,
    /// The last append failed for want of room: not ready until one succeeds again.
    no_room: AtomicBool,
}

/// The engine's end: the inputs in log order.
pub struct DurableSource {
    rx: mpsc::UnboundedReceiver<Item>,
    queued: Gauge,
}

/// The engine's clock: appends ticks to the log, which reach the source in their turn.
#[derive(Clone)]
pub struct Clock {
    log: LogWriter,
    tx: mpsc::UnboundedSender<Item>,
}

/// A durable queue over `log`, holding at most `capacity` events.
pub fn durable(
    log: LogWriter,
    capacity: usize,
    enqueue_timeout: Duration,
    metrics: &TransportMetrics,
) -> (DurableSink, DurableSource, Clock) {
    let (tx, rx) = mpsc::unbounded_channel();
    metrics.capacity.set(capacity as i64);
    let sink = DurableSink {
        log: log.clone(),
        tx: tx.clone(),
        room: Arc::new(Semaphore::new(capacity.min(Semaphore::MAX_PERMITS))),
        enqueue_timeout,
        queued: metrics.queued.clone(),
        failures: metrics.failures.clone(),
        no_room: AtomicBool::new(false),
    };
    let source = DurableSource {
        rx,
        queued: metrics.queued.clone(),
    };
    (sink, source, Clock { log, tx })
}

impl DurableSink {
    fn fail(&self, e: SendError) -> SendError {
        self.failures
            .get_or_create(&crate::metrics::labels([("reason", e.reason())]))
            .inc();
        e
    }
}

#[async_trait]
impl EventSink for DurableSink {
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
        let record = record::batch(&events);
        let (tx, queued) = (self.tx.clone(), self.queued.clone());
        let enqueue = move |lsn| {
            queued.inc_by(i64::from(n));
            // A closed queue (the engine stopped) loses nothing: the batch is in the log, and
            // the next start replays it.
            _ = tx.send((Input::Batch { events, lsn }, Some(permit)));
        };
        match self.log.append(record, enqueue).await {
            Ok(_) => {
                self.no_room.store(false, Relaxed);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "batch not written to the log: answered 503");
                self.no_room.store(e.is_no_space(), Relaxed);
                let kind = if e.is_no_space() { "disk_full" } else { "disk" };
                Err(self.fail(SendError::Unavailable(kind)))
            }
        }
    }

    /// Ready unless the engine is gone or the disk was full at the last append.
    fn is_ready(&self) -> bool {
        !self.tx.is_closed() && !self.no_room.load(Relaxed)
    }
}

impl DurableSource {
    /// The next input, or `None` once every sender is gone and the queue is drained. Its
    /// queue room is given back when the returned guard is dropped (once it is applied).
    pub async fn next(&mut self) -> Option<(Input, Applied)> {
        let (input, permit) = self.rx.recv().await?;
        let n = match &input {
            Input::Batch { events, .. } => events.len() as i64,
            Input::Tick { .. } => 0,
        };
        Some((
            input,
            Applied {
                _permit: permit,
                queued: self.queued.clone(),
                n,
            },
        ))
    }

    /// Stops taking new inputs; those already queued are still delivered.
    pub fn close(&mut self) {
        self.rx.close();
    }
}

/// An input's queue room, given back on drop.
pub struct Applied {
    _permit: Option<OwnedSemaphorePermit>,
    queued: Gauge,
    n: i64,
}

impl Drop for Applied {
    fn drop(&mut self) {
        self.queued.dec_by(self.n);
    }
}

impl Clock {
    /// Logs a tick at `now_ms`; it reaches the source after every batch logged before it.
    /// A tick that cannot be logged is skipped (the next one closes the same sessions).
    pub async fn tick(&self, now_ms: i64) {
        let tx = self.tx.clone();
        let enqueue = move |lsn| _ = tx.send((Input::Tick { now_ms, lsn }, None));
        if let Err(e) = self.log.append(record::tick(now_ms), enqueue).await {
            tracing::warn!(error = %e, "tick not written to the log; sessions close at the next");
        }
    }

    /// The log, for removing what a checkpoint covers.
    pub fn log(&self) -> &LogWriter {
        &self.log
    }
}
