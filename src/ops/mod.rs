//! The operations kit, generated from the configuration: the Prometheus recording and alerting
//! rules (`touchstream rules`) and the Grafana dashboard (`touchstream dashboard`) for exactly
//! the journey configured. The files in `deploy/` are their output for the default
//! configuration (`tests/deploy.rs` fails when they are stale). Nothing here binds a port,
//! touches the state directory or reaches a broker.

mod dashboard;
mod funnel;
mod health;
mod json;
mod panels;
mod rules;
mod stats;
mod steps;

pub use dashboard::dashboard;
pub use rules::rules;
