//! Where `serve` keeps its state. One process at a time holds a directory.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[state]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// The state directory, created if missing; relative paths are from the working directory.
    /// One process holds it at a time: give each its own. Env: `TOUCHSTREAM_STATE_DIR`.
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("touchstream-state"),
        }
    }
}

impl StateConfig {
    pub(super) fn validate(&self) -> Result<(), super::ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return Err(super::ConfigError::invalid(
                "state.dir",
                "must name a directory",
            ));
        }
        Ok(())
    }
}
