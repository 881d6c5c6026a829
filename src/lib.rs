//! touchstream: a real-time customer-journey monitor for online shops.
//!
//! The modules, lowest first; each imports only from those above it in this list
//! (`tests/layout.rs` checks it):
//! - [`config`]: the one typed configuration, loaded once; [`shutdown`]: the signal a task
//!   stops on; [`state`]: the state directory of `serve` and what it holds on disk.
//! - [`event`]: the [`event::Event`] that travels from collector to engine, and the closed label
//!   sets (channel, device, reject and filter reasons) everything else shares.
//! - [`journey`]: the journey map compiled for the hot path, built once per process and shared
//!   by the metrics and the engine.
//! - [`metrics`]: every Prometheus metric, registered once, the `/metrics` exposition and the
//!   replay report.
//! - [`transport`]: what carries events from collector to engine: the sink and source traits,
//!   the embedded queue, Kafka's producer and message codec, dead letters.
//! - [`collector`]: `POST /v1/events`: access checks, decoding, validation, enrichment, the
//!   error answers.
//! - [`engine`]: open sessions, funnel stages, carts and orders with the contract's semantics,
//!   and its two drivers: the durable log of `serve` and a Kafka consumer group.
//! - [`admin`] (`/metrics`, `/healthz`, `/readyz`), [`http`] (serving with connection limits),
//!   [`replay`] (the engine over a recorded log), then [`server`] (the processes).
//!
//! One event's path in `serve`: `collector` decodes it and hands it to
//! `transport::durable::DurableSink`, which answers once the batch is in the log on disk;
//! `engine::durable::run` takes it from the queue and applies it; `metrics` holds the figures that
//! `admin` serves. Over Kafka: `transport::kafka::KafkaSink` produces it to the events topic;
//! `engine::kafka::KafkaEngine` consumes it on its partition's engine, whose state and figures
//! are checkpointed with the partition's offset to the state topic; `/metrics` serves each
//! partition's figures labelled `partition`.

#[macro_use]
mod label;

pub mod config;
pub mod ratelimit;
pub mod shutdown;
pub mod state;

pub mod event;
pub mod journey;
pub mod metrics;

pub mod transport;

pub mod collector;
pub mod engine;

pub mod admin;
pub mod http;
pub mod ops;
pub mod replay;
pub mod server;

/// The server clock: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
