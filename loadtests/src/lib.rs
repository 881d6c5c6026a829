//! touchstream-load: drives a touchstream deployment over HTTP with simulated shoppers or a
//! recorded clickstream, the way the tracking snippet sends, and measures throughput, latency,
//! the server's CPU and memory, and freshness. It keeps the ground truth of every acknowledged
//! event (an independent model of the contract's funnel, `truth`) and checks `/metrics`
//! against it at the end. `attack` measures the bounds of issue 13 with hostile clients.

pub mod attack;
pub mod probe;
pub mod procstat;
pub mod rees46;
pub mod report;
pub mod run;
pub mod scrape;
pub mod send;
pub mod shopper;
#[doc(hidden)]
pub mod stand_in;
pub mod truth;
