//! Where `serve` keeps its state: the log of accepted batches and the engine's checkpoints.
//! One process at a time holds a directory.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[state]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// The state directory, created if missing; relative paths are from the working directory.
    /// One process holds it at a time: give each its own. Env: `TOUCHSTREAM_STATE_DIR`.
    pub dir: PathBuf,
    /// How often the engine writes a checkpoint of its state; a start replays the log written
    /// since the last one, so this bounds the time a restart takes.
    #[serde(with = "super::duration")]
    pub checkpoint_interval: Duration,
    /// Size at which the log starts a new segment file; segments that checkpoints cover are
    /// removed whole.
    pub segment_bytes: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("touchstream-state"),
            checkpoint_interval: Duration::from_secs(30),
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

impl StateConfig {
    pub(super) fn validate(&self) -> Result<(), super::ConfigError> {
        let invalid = super::ConfigError::invalid;
        if self.dir.as_os_str().is_empty() {
            return Err(invalid("state.dir", "must name a directory"));
        }
        if self.checkpoint_interval < Duration::from_secs(1) {
            return Err(invalid("state.checkpoint_interval", "must be at least 1s"));
        }
        if self.segment_bytes < 1024 * 1024 {
            return Err(invalid(
                "state.segment_bytes",
                "must be at least 1 MiB (1048576)",
            ));
        }
        Ok(())
    }
}
