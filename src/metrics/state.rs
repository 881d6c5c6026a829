//! The state directory's metrics (`serve` without Kafka; zero elsewhere): the log's size and
//! group commits, and the checkpoints.

use super::cells::Registrar;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// The log and checkpoints of the state directory.
#[derive(Debug)]
pub struct StateMetrics {
    /// `touchstream_state_log_bytes`: log segments on disk.
    pub log_bytes: Gauge,
    /// `touchstream_state_log_syncs_total`: group commits (one fdatasync each).
    pub log_syncs: Counter,
    /// `touchstream_state_checkpoint_timestamp_seconds`: when the newest checkpoint was taken.
    pub checkpoint_time: Gauge,
    /// `touchstream_state_checkpoint_bytes`: its size.
    pub checkpoint_bytes: Gauge,
    /// `touchstream_state_checkpoint_failures_total`.
    pub checkpoint_failures: Counter,
}

impl StateMetrics {
    pub(super) fn new(r: &mut Registrar) -> Self {
        Self {
            log_bytes: r.gauge((
                "touchstream_state_log_bytes",
                "Bytes of the state directory's log on disk.",
            )),
            log_syncs: r.counter((
                "touchstream_state_log_syncs",
                "Group commits of the log (one fdatasync each).",
            )),
            checkpoint_time: r.gauge((
                "touchstream_state_checkpoint_timestamp_seconds",
                "When the newest engine checkpoint was taken, in seconds since the epoch.",
            )),
            checkpoint_bytes: r.gauge((
                "touchstream_state_checkpoint_bytes",
                "Size of the newest engine checkpoint.",
            )),
            checkpoint_failures: r.counter((
                "touchstream_state_checkpoint_failures",
                "Engine checkpoints that could not be written.",
            )),
        }
    }
}
