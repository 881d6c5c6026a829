//! The reader of the Prometheus/OpenMetrics exposition, shared with the load generator.

pub use touchstream_load::scrape::Scrape;
