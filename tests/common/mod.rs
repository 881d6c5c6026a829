//! Helpers shared by the integration tests.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod deploy;
pub mod durable;
pub mod exports;
pub mod kafka;
pub mod load;
pub mod process;
pub mod prom;
pub mod prometheus;
pub mod rees46;
pub mod reference;
pub mod server;
pub mod workload;
