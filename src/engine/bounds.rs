//! The store's bounds, shared by every engine of a process (one per Kafka partition): how many
//! sessions are open, how many ids they hold, and how fast each client may open new ones while
//! the store is under pressure.
//!
//! Memory: a session costs about 220 bytes, plus 8 bytes an id (its events' and its orders')
//! while it holds at most `SMALL`; beyond that its ids move to a hash table whose room (about
//! 10 bytes an id, 12 with its allocation's slack) is charged to a pool of
//! `engine.max_stored_ids`. A session holding `SMALL` ids or more takes a new event only while
//! the pool has room, and, once the pool is over half full, while the client that opened it
//! holds less than a sixteenth of it (else `session_memory`; the exempt, origin 0, have no
//! share). So the store stays under about `max_open_sessions x 730 + max_stored_ids x 12`
//! bytes, however the events are spread, and no one client can take the pool from the
//! shoppers' long visits.

use super::session::Session;
use crate::config::EngineConfig;
use crate::event::FilterReason;
use crate::ratelimit::{Limiter, LimiterState};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

/// Ids a session may always hold, whatever the process holds in all: a shopper's visit.
pub const SMALL: usize = 64;

/// The shared bounds.
#[derive(Debug)]
pub struct Bounds {
    open: AtomicUsize,
    /// The pool: room of every large id set ([`super::session::IdSet::cost`]).
    ids: AtomicUsize,
    /// The pool per client (non-zero origins); clients at zero are removed. Written only when
    /// a set grows or leaves, which is rare.
    clients: Mutex<HashMap<u32, usize>>,
    max_open: usize,
    max_ids: usize,
    max_session_events: u32,
    /// New sessions per client, on the events' received time (not the wall clock): a replay
    /// of old events (a catch-up after lag, a restart's log) is rated as it happened live.
    new_sessions: Limiter,
    /// Ids the engines remember of closed sessions (`super::past`), against `max_remembered`.
    remembered: AtomicUsize,
    max_remembered: usize,
    horizon_ms: i64,
    /// Close time of the newest closed session forgotten before its horizon was up (to make
    /// room, or never remembered: the state started empty or came from a release that kept
    /// none); `i64::MIN` when none was.
    forgotten_ms: AtomicI64,
    /// The current round of making room, and the fraction (ppm) of its ids each engine forgets
    /// in it: set once by the engine that finds the bound passed, taken once by each.
    room: Mutex<(u64, u32)>,
}

impl Bounds {
    pub fn new(e: &EngineConfig) -> Self {
        Self::restored(e, None)
    }

    /// Bounds whose new-session rate goes on from `limiter` (a checkpoint's); the open count
    /// and the id pool follow the sessions put back.
    pub fn restored(e: &EngineConfig, limiter: Option<&LimiterState>) -> Self {
        let (rate, burst) = (
            e.client_sessions_per_second as f64,
            e.client_burst_sessions as f64,
        );
        // Room for the clients of a full store's flood; least recently seen go first.
        let capacity = 100_000;
        Bounds {
            open: AtomicUsize::new(0),
            ids: AtomicUsize::new(0),
            clients: Mutex::default(),
            max_open: e.max_open_sessions,
            max_ids: e.max_stored_ids,
            max_session_events: e.max_session_events,
            new_sessions: match limiter {
                Some(state) => Limiter::restored(rate, burst, capacity, state),
                None => Limiter::new(rate, burst, capacity),
            },
            remembered: AtomicUsize::new(0),
            max_remembered: e.max_remembered_ids,
            horizon_ms: e.dedup_horizon.as_millis().min(i64::MAX as u128) as i64,
            forgotten_ms: AtomicI64::new(i64::MIN),
            room: Mutex::new((0, 0)),
        }
    }

    /// The round of making room an engine that last took `taken` should take now, with the
    /// fraction (ppm) of its ids to forget: a round it has not taken yet, or a new one when the
    /// process holds more than `engine.max_remembered_ids` (the fraction that brings it to
    /// 99 % of the bound, the same for every engine).
    pub fn room_round(&self, taken: u64) -> Option<(u64, u32)> {
        let mut room = self.room.lock().expect("never poisoned");
        if room.0 == taken && self.over_remembered() {
            let held = self.remembered_ids() as u128;
            let keep = self.max_remembered as u128 * 99 / 100;
            let ppm = ((held - keep.min(held)) * 1_000_000).div_ceil(held.max(1));
            *room = (room.0 + 1, ppm.min(1_000_000) as u32);
        }
        (room.0 != taken).then_some(*room)
    }

    /// The remembered ids changed by `delta`.
    pub fn remembered(&self, delta: isize) {
        if delta >= 0 {
            self.remembered.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            self.remembered
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Ids remembered of closed sessions, over every engine sharing the bounds.
    pub fn remembered_ids(&self) -> usize {
        self.remembered.load(Ordering::Relaxed)
    }

    /// Whether the engines remember more ids than `engine.max_remembered_ids`.
    pub fn over_remembered(&self) -> bool {
        self.remembered_ids() > self.max_remembered
    }

    /// `engine.max_session_events`.
    pub fn max_session_events(&self) -> u32 {
        self.max_session_events
    }

    /// `engine.dedup_horizon`, ms.
    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms
    }

    /// A session closed at `closed_ms` was forgotten before its horizon was up.
    pub fn forgot_early(&self, closed_ms: i64) {
        self.forgotten_ms.fetch_max(closed_ms, Ordering::Relaxed);
    }

    /// When the newest session forgotten early had closed, if any was.
    pub fn forgotten_ms(&self) -> Option<i64> {
        Some(self.forgotten_ms.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN)
    }

    /// The effective dedup horizon at `now_ms`, ms: the configured one, or less when a
    /// session closed more recently than that was forgotten early.
    pub fn effective_horizon_ms(&self, now_ms: i64) -> i64 {
        let since = self
            .forgotten_ms()
            .map_or(i64::MAX, |t| now_ms.saturating_sub(t));
        self.horizon_ms.min(since.max(0))
    }

    /// The new-session rate's buckets, for a checkpoint.
    pub fn limiter_state(&self) -> LimiterState {
        self.new_sessions.state()
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

    /// The pool: room of every large id set.
    pub fn stored_ids(&self) -> usize {
        self.ids.load(Ordering::Relaxed)
    }

    pub fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// A session left the store with an id set of `cost` (its origin's share given back).
    /// Returns the pool's new size when it changed.
    pub fn closed(&self, origin: u32, cost: usize) -> Option<usize> {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.charge(origin, cost, 0)
    }

    /// A session's id set went from `before` to `after` in cost (a hash table grew): the pool
    /// and its origin's share follow. Returns the pool's new size when it changed.
    #[inline]
    pub fn charge(&self, origin: u32, before: usize, after: usize) -> Option<usize> {
        if before == after {
            return None;
        }
        let pool = if after > before {
            self.ids.fetch_add(after - before, Ordering::Relaxed) + (after - before)
        } else {
            self.ids.fetch_sub(before - after, Ordering::Relaxed) - (before - after)
        };
        if origin != 0 {
            let mut clients = self.clients.lock().expect("never poisoned");
            let mine = clients.entry(origin).or_insert(0);
            *mine = (*mine + after).saturating_sub(before);
            if *mine == 0 {
                clients.remove(&origin);
            }
        }
        Some(pool)
    }

    /// Why `s` takes no new event, if it takes none: it holds `max_session_events`
    /// (`session_limit`), or `SMALL` ids or more while the pool is full or, over half full,
    /// its client holds a sixteenth of it (`session_memory`). A rebuild (`counts` false)
    /// restores what was taken and skips the pool, which another process filled.
    #[inline]
    pub fn refuses(&self, s: &Session, counts: bool) -> Option<FilterReason> {
        if s.events >= self.max_session_events {
            return Some(FilterReason::SessionLimit);
        }
        if !counts || s.ids.len() < SMALL {
            return None;
        }
        let pool = self.ids.load(Ordering::Relaxed);
        let over_share = || {
            s.origin != 0
                && pool > self.max_ids / 2
                && self.share_of(s.origin) >= (self.max_ids / 16).max(1)
        };
        (pool >= self.max_ids || over_share()).then_some(FilterReason::SessionMemory)
    }

    #[cold]
    fn share_of(&self, origin: u32) -> usize {
        let clients = self.clients.lock().expect("never poisoned");
        clients.get(&origin).copied().unwrap_or(0)
    }

    /// Whether the client `origin` may open a session with an event received at
    /// `received_at_ms` (exempt senders, origin 0, always may).
    pub fn may_open(&self, origin: u64, received_at_ms: i64) -> bool {
        if origin == 0 || !self.new_sessions.is_enabled() {
            return true;
        }
        let at_us = received_at_ms.saturating_mul(1_000);
        self.new_sessions.check_at(origin, 1.0, at_us).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, Device};

    #[test]
    fn one_client_holds_at_most_a_sixteenth_of_the_pool_once_it_is_half_full() {
        let b = Bounds::new(&EngineConfig {
            max_stored_ids: 1_600,
            ..EngineConfig::default()
        });
        let big = |origin| {
            let mut s = Session::new(0, 0, Channel::Direct, Device::Desktop, origin);
            for i in 0..SMALL as u64 {
                s.ids.insert(i);
            }
            s
        };
        let (greedy, other) = (big(7), big(8));
        // Below half the pool, no share: one client may take up to it.
        assert_eq!(b.charge(7, 0, 800), Some(800));
        assert_eq!(b.refuses(&greedy, true), None);
        // Over half: the greedy client is past its sixteenth (100), another is not.
        b.charge(8, 0, 50);
        assert_eq!(b.refuses(&greedy, true), Some(FilterReason::SessionMemory));
        assert_eq!(b.refuses(&other, true), None);
        // A rebuild skips the pool; a full pool refuses everyone; given back, room again.
        assert_eq!(b.refuses(&greedy, false), None);
        b.charge(0, 0, 750);
        assert_eq!(b.refuses(&other, true), Some(FilterReason::SessionMemory));
        b.closed(7, 800);
        b.closed(0, 750);
        assert_eq!(b.refuses(&greedy, true), None);
        assert!(b.clients.lock().unwrap().get(&7).is_none());
    }

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
