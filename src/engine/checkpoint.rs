//! What a checkpoint file holds: the engine's state ([`EngineState`]), the figures it has counted
//! ([`Figures`]) and the log position both cover, behind a format number. A checkpoint of the
//! running format is read as is; one of an older format is migrated (each later change to the
//! engine's state adds its migration here, and a test that loads the format before it); one of a
//! newer or unknown format is refused with a message that says what to do, never read as something
//! else.

use super::snapshot::EngineState;
use crate::metrics::Figures;
use serde::{Deserialize, Serialize};

mod v1;
mod v2;

/// The format this release writes. 2: the engine's state gained the closed sessions
/// remembered for the dedup horizon (`EngineState::past`). 3: journeys (issue 15): sessions
/// keep their progress per journey, and the funnel figures carry the `journey` label.
pub const FORMAT: u32 = 3;

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointData {
    /// The last log record the state includes.
    pub lsn: u64,
    /// When it was taken, ms since the epoch (server clock).
    pub taken_at_ms: i64,
    pub engine: EngineState,
    /// The counters the engine writes, so a restored process counts on from them.
    pub figures: Figures,
}

/// Why a checkpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFormatError {
    #[error(
        "written by a newer touchstream (checkpoint format {0}; this release reads up to {FORMAT}): \
         run that release or a later one, or move the state directory away to start empty"
    )]
    Newer(u32),
    #[error("not a checkpoint this release can read (format {0})")]
    Unknown(u32),
    #[error("too short to hold a format number")]
    Short,
    #[error("unreadable: {0}")]
    Decode(#[from] postcard::Error),
}

impl CheckpointData {
    /// The payload of its checkpoint file: the format number, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, FORMAT.to_le_bytes().to_vec())
            .expect("writing to a Vec cannot fail")
    }

    /// Reads a payload of this format or an older one.
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointFormatError> {
        let (format, body) = bytes
            .split_first_chunk::<4>()
            .ok_or(CheckpointFormatError::Short)?;
        match u32::from_le_bytes(*format) {
            FORMAT => Ok(postcard::from_bytes(body)?),
            2 => Ok(postcard::from_bytes::<v2::FormatTwo>(body)?.into()),
            1 => Ok(v2::FormatTwo::from(postcard::from_bytes::<v1::FormatOne>(body)?).into()),
            // 0 was never written.
            newer if newer > FORMAT => Err(CheckpointFormatError::Newer(newer)),
            other => Err(CheckpointFormatError::Unknown(other)),
        }
    }
}

#[cfg(test)]
mod tests;
