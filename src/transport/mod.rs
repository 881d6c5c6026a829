//! The transport between collector and engine: a sink the collector writes batches to (the
//! [`durable`] log and queue of `serve`, or Kafka's producer: the collector sees only the
//! trait). The engine reads the durable queue through [`durable::DurableSource`], and Kafka
//! through its own consumer (`engine::kafka`), which needs partitions and offsets.
//!
//! Contract of a sink: `send` returns `Ok` only once every event of the batch is held by the
//! transport (for the log: written and fdatasync'ed; for Kafka: acknowledged by the broker).
//! Any error means none of them may be counted on, and the client must be told to retry (503).

pub mod durable;
pub mod kafka;

use crate::event::Event;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A rejected event on its way to the dead-letter topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// 128 bits of SHA-256 of the batch and the event's place in it, in hex: the same when a
    /// batch is retried, so a reader can drop a letter written twice (a 503 after the letters
    /// were written: see [`DeadLetter::new`]).
    #[serde(default)]
    pub id: String,
    pub site: String,
    /// The rejection's reason label (`RejectReason`).
    pub reason: String,
    pub message: String,
    /// The event as sent, with personal data masked in place.
    pub event: Box<serde_json::value::RawValue>,
    pub received_at_ms: i64,
}

impl DeadLetter {
    /// The letter of the `index`th event (already masked) of a batch, rejected for `reason`.
    /// Its `id` is 128 bits of SHA-256 of `batch` (see [`DeadLetter::batch_key`]) and `index`:
    /// the same on every retry of the batch, and another for the same event in another batch
    /// or at another place in it.
    pub fn new(
        batch: &[u8; 32],
        index: usize,
        reason: &str,
        message: String,
        event: Box<serde_json::value::RawValue>,
        received_at_ms: i64,
        site: &str,
    ) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(batch)
            .chain_update((index as u64).to_be_bytes())
            .finalize();
        DeadLetter {
            id: digest[..16].iter().map(|b| format!("{b:02x}")).collect(),
            site: site.to_string(),
            reason: reason.to_string(),
            message,
            event,
            received_at_ms,
        }
    }

    /// What identifies a batch across its retries: SHA-256 of its site and its events (as
    /// masked for the letters, so the id reveals nothing masking hid).
    pub fn batch_key<'a>(site: &str, events: impl Iterator<Item = &'a str>) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new().chain_update(site);
        for e in events {
            h.update([0]);
            h.update(e);
        }
        h.finalize().into()
    }
}

/// Why a sink could not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No room within the enqueue timeout: the engine is behind.
    #[error("the transport queue is full")]
    Full,
    /// The transport is shutting down.
    #[error("the transport is closed")]
    Closed,
    /// The transport could not confirm delivery (Kafka: the kind of delivery error).
    #[error("the transport could not deliver: {0}")]
    Unavailable(&'static str),
}

impl SendError {
    /// Low-cardinality label value for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::Full => "full",
            SendError::Closed => "closed",
            SendError::Unavailable(kind) => kind,
        }
    }
}

/// Where the collector puts accepted events.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Hands over one batch; `Ok` means every event in it is in the transport.
    async fn send(&self, events: Vec<Event>) -> Result<(), SendError>;

    /// Hands over rejected events with their reasons. `Ok` means they are kept (the memory
    /// transport keeps none: they are only counted and named in the answer).
    async fn dead_letter(&self, letters: Vec<DeadLetter>) -> Result<(), SendError> {
        let _ = letters;
        Ok(())
    }

    /// Whether the transport can take events now (drives `/readyz`).
    fn is_ready(&self) -> bool {
        true
    }
}
