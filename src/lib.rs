//! touchstream: a real-time customer-journey monitor for online shops.
//!
//! An event walks forward through the modules:
//! - [`collector`]: `POST /v1/events`, decoding, validation, enrichment (event time, channel,
//!   device, bots), CORS and the error answers.
//! - [`transport`]: the sink/source traits between collector and engine, and the bounded
//!   in-memory queue of `serve`.
//! - [`engine`]: open sessions, funnel stages, carts and orders, with the contract's
//!   semantics; the apply loop and the sweeper.
//! - [`metrics`]: every Prometheus metric, registered once; [`admin`] serves them.
//! - [`replay`]: the engine over a recorded log, and the final [`replay::Report`].
//! - [`config`]: the one typed configuration; [`server`] wires everything for `serve`;
//!   [`http`] serves a router with connection limits; [`shutdown`] is the one signal every
//!   task stops on.
//!
//! [`event::Event`] is the message that travels from collector to engine.

pub mod admin;
pub mod collector;
pub mod config;
pub mod engine;
pub mod event;
pub mod http;
pub mod metrics;
pub mod replay;
pub mod server;
pub mod shutdown;
pub mod transport;

/// The server clock: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
