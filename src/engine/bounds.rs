//! The store's bounds, shared by every engine of a process (one per Kafka partition): how many
//! sessions are open, how many ids they hold, and how fast each client may open new ones while
//! the store is under pressure.
//!
//! Memory: a session costs about 220 bytes plus 8 to 18 bytes per id it holds (its events' ids
//! and its order ids). Every session may hold `SMALL` ids; beyond that, a session takes new
//! events only while the process holds fewer than `engine.max_stored_ids` ids in all, and at
//! most `engine.max_session_events` events. So the store stays under about
//! `max_open_sessions x (220 + 8 x SMALL) + max_stored_ids x 18` bytes, however the events are
//! spread.

use super::session::Session;
use crate::config::EngineConfig;
use crate::event::FilterReason;
use crate::ratelimit::Limiter;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Ids a session may always hold, whatever the process holds in all: a shopper's visit.
pub const SMALL: usize = 64;

/// The shared bounds.
#[derive(Debug)]
pub struct Bounds {
    open: AtomicUsize,
    /// Ids held beyond the first `SMALL` of each session.
    ids: AtomicUsize,
    max_open: usize,
    max_ids: usize,
    max_session_events: u32,
    new_sessions: Limiter,
    /// The new-session rate's clock: an event's received time, placed on `Instant`s from this
    /// pair, so a replay of old events (a catch-up after lag) is rated as it happened live.
    epoch: (Instant, i64),
}

impl Bounds {
    pub fn new(e: &EngineConfig) -> Self {
        Bounds {
            open: AtomicUsize::new(0),
            ids: AtomicUsize::new(0),
            max_open: e.max_open_sessions,
            max_ids: e.max_stored_ids,
            max_session_events: e.max_session_events,
            new_sessions: Limiter::new(
                e.client_sessions_per_second as f64,
                e.client_burst_sessions as f64,
                // Room for the clients of a full store's flood; least recently seen go first.
                100_000,
            ),
            epoch: (Instant::now(), crate::now_ms()),
        }
    }

    /// Sessions open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The store holds `max_open_sessions`: a new session needs room.
    pub fn full(&self) -> bool {
        self.open() >= self.max_open
    }

    /// The store is more than half full: new sessions are rated per client.
    pub fn under_pressure(&self) -> bool {
        self.open() > self.max_open / 2
    }

    pub fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// A session left the store with the ids it held.
    pub fn closed(&self, ids: usize) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if ids > SMALL {
            self.ids.fetch_sub(ids - SMALL, Ordering::Relaxed);
        }
    }

    /// A session's ids went from `before` to `after`. Only those beyond `SMALL` count, so a
    /// shopper's visit never touches the shared count.
    #[inline]
    pub fn stored(&self, before: usize, after: usize) {
        if after > SMALL {
            self.ids
                .fetch_add(after - before.max(SMALL), Ordering::Relaxed);
        }
    }

    /// Why `s` takes no new event, if it takes none: it holds `max_session_events`, or more
    /// than `SMALL` ids while the process holds `max_stored_ids`.
    pub fn refuses(&self, s: &Session) -> Option<FilterReason> {
        let full = s.events >= self.max_session_events
            || (s.ids.len() >= SMALL && self.ids.load(Ordering::Relaxed) >= self.max_ids);
        full.then_some(FilterReason::SessionLimit)
    }

    /// Whether the client `origin` may open a session with an event received at
    /// `received_at_ms` (exempt senders, origin 0, always may).
    pub fn may_open(&self, origin: u64, received_at_ms: i64) -> bool {
        if origin == 0 || !self.new_sessions.is_enabled() {
            return true;
        }
        self.new_sessions
            .check(origin, 1.0, self.instant(received_at_ms))
            .is_ok()
    }

    fn instant(&self, ms: i64) -> Instant {
        let (at, at_ms) = self.epoch;
        let offset = Duration::from_millis(ms.abs_diff(at_ms));
        if ms >= at_ms {
            at + offset
        } else {
            at.checked_sub(offset).unwrap_or(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_session_rate_follows_the_events_clock_not_the_wall_clock() {
        let b = Bounds::new(&EngineConfig {
            client_sessions_per_second: 1,
            client_burst_sessions: 2,
            ..EngineConfig::default()
        });
        let t = crate::now_ms() - 3_600_000;
        assert!(b.may_open(7, t) && b.may_open(7, t));
        assert!(!b.may_open(7, t));
        // A replay an hour late: a second later in the events' time, one more.
        assert!(b.may_open(7, t + 1_000));
        assert!(!b.may_open(7, t + 1_000));
        assert!(b.may_open(0, t), "exempt");
    }
}
