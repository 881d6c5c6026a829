//! `[engine]`: the session store's bounds and how long closed sessions are remembered.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The engine's session store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Most open sessions kept in memory. When full, 1 % is forgotten: single-event sessions
    /// first, then those without an open cart, then the longest idle; they count in
    /// `touchstream_engine_sessions_evicted_total` and `touchstream_engine_carts_evicted_total`,
    /// never as drop-offs or abandoned carts.
    pub max_open_sessions: usize,
    /// How often idle sessions are looked for and closed.
    #[serde(with = "super::duration")]
    pub sweep_interval: Duration,
    /// Most events one session takes; later new events of it are filtered (`session_limit`).
    pub max_session_events: u32,
    /// Room of the sessions' id hash tables (a session's ids move to one past 64): past it, or
    /// past its client's sixteenth once it is half full, sessions holding 64 ids or more take
    /// no new event (`session_memory`). About 12 bytes each.
    pub max_stored_ids: usize,
    /// New sessions a second one client address may open while the store is more than half
    /// full, over its burst; beyond it, events that would open one are filtered
    /// (`session_rate`). Trusted proxies and signed requests are exempt. 0: no limit.
    pub client_sessions_per_second: u64,
    /// New sessions a client address may open at once above its rate, under pressure.
    pub client_burst_sessions: u64,
    /// How long after its session closed an event id is still remembered: a retry of an event
    /// it took is a duplicate within it, and a new event of the closed session (an offline
    /// queue flushed late) a late event counted against it (never a second visit).
    #[serde(with = "super::duration")]
    pub dedup_horizon: Duration,
    /// Most event and order ids remembered for closed sessions (19 bytes an id in sessions of
    /// ten events, about 46 at REES46's 3.4 events a session, 140 for a session of one); past
    /// it the sessions closed longest ago are forgotten first, and
    /// `touchstream_engine_dedup_horizon_seconds` falls below `dedup_horizon`.
    pub max_remembered_ids: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_open_sessions: 2_000_000,
            sweep_interval: Duration::from_secs(1),
            max_session_events: 2_000,
            max_stored_ids: 20_000_000,
            client_sessions_per_second: 5,
            client_burst_sessions: 100,
            dedup_horizon: Duration::from_secs(24 * 3600),
            max_remembered_ids: 5_000_000,
        }
    }
}

impl EngineConfig {
    /// Checks what the keys need of each other; `session_timeout` is the journey's.
    pub(super) fn validate(&self, session_timeout: Duration) -> Result<(), super::ConfigError> {
        if self.dedup_horizon < session_timeout {
            return Err(super::ConfigError::invalid(
                "engine.dedup_horizon",
                "must be at least journey.session_timeout (24h is usual): a retry inside a \
                 session's own timeout must always be a duplicate",
            ));
        }
        Ok(())
    }
}
