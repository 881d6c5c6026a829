//! The operations kit, generated from the configuration: the Prometheus recording and alerting
//! rules for exactly the journey configured (`touchstream rules`). The files in `deploy/` are
//! its output for the default configuration (`tests/deploy.rs` fails when they are stale).
//! Nothing here binds a port, touches the state directory or reaches a broker.

mod rules;

pub use rules::rules;
