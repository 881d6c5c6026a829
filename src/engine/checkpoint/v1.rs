//! Checkpoint format 1 (issue 14's first release): the engine's state without the closed
//! sessions remembered for the dedup horizon. Read and migrated, never written.

use super::v2::{EngineTwo, FormatTwo, PastTwo, SessionTwo};
use crate::metrics::Figures;
use crate::ratelimit::LimiterState;
use serde::Deserialize;

/// [`CheckpointData`] as format 1 wrote it.
#[derive(Deserialize)]
pub struct FormatOne {
    lsn: u64,
    taken_at_ms: i64,
    engine: EngineOne,
    figures: Figures,
}

/// [`EngineState`] as format 1 wrote it.
#[derive(Deserialize)]
struct EngineOne {
    keys: [u64; 4],
    sites: Vec<String>,
    stages: Vec<String>,
    currencies: Vec<Vec<String>>,
    channels: Vec<String>,
    devices: Vec<String>,
    sessions: Vec<SessionTwo>,
    limiter: LimiterState,
}

impl From<FormatOne> for FormatTwo {
    /// Format 1 kept no closed session: every session closed before it was taken is
    /// forgotten, so the effective dedup horizon starts at the checkpoint.
    fn from(one: FormatOne) -> Self {
        let e = one.engine;
        FormatTwo {
            lsn: one.lsn,
            taken_at_ms: one.taken_at_ms,
            engine: EngineTwo {
                keys: e.keys,
                sites: e.sites,
                stages: e.stages,
                currencies: e.currencies,
                channels: e.channels,
                devices: e.devices,
                sessions: e.sessions,
                limiter: e.limiter,
                past: PastTwo {
                    forgotten_ms: Some(one.taken_at_ms),
                    ..PastTwo::default()
                },
            },
            figures: one.figures,
        }
    }
}
