//! Sessions remembered after they close, for `engine.dedup_horizon` (CONTRACT.md section 2):
//! an event whose id a closed session of the same `(site, session)` holds is a duplicate, and a
//! new event that falls inside a closed session's window (an offline queue flushed late, a
//! server's late call) is a late event counted against it, never a second visit.
//!
//! Each closed session keeps its ids (event and order id hashes, as while open) in a sorted
//! array, its first and last event times, its event count and what a late event is counted
//! under (site, furthest stage, channel, device); a session id's closed sessions sit together,
//! each forgotten on its own. `benches/session_memory.rs` measures the cost: about 130 bytes a
//! closed session plus 8 an id. Sessions leave once `dedup_horizon` has passed since they
//! closed: records are scanned when the oldest may have passed it, at most every hundredth of
//! the horizon (so an id is kept at most 1 % longer, never shorter); the scan's schedule is part
//! of the state, so a restored engine forgets at the same ticks as the live one. When the ids
//! held (counted in the shared [`Bounds`], over every engine of the process) pass
//! `engine.max_remembered_ids`, a round of making room starts: each engine, at its next tick,
//! forgets the same fraction of its ids (what brings the process to 99 % of the bound), its
//! sessions closed longest ago first; the effective horizon is then the time since the newest
//! of them closed. A session id keeps at most [`PER_SESSION_ID`] closed sessions. Within the
//! effective horizon, dedup is exact.

use super::session::{IdSet, Prehashed};
use super::{Bounds, SessionKey};
use crate::event::{Channel, Device};
use crate::journey::{Journeys, MAX_SITE_JOURNEYS};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use thin_vec::ThinVec;

/// Closed sessions kept per session id; past it the id's oldest is forgotten (a client that
/// steps one session id's times forward by a timeout would open and close one per event).
pub const PER_SESSION_ID: usize = 32;

/// A closed session's ids: sorted.
#[derive(Debug, Default)]
pub struct Ids(ThinVec<u64>);

impl Ids {
    /// The ids of a closing session's set.
    pub fn of(set: IdSet) -> Self {
        match set {
            IdSet::Small(v) => Self::sorted(v),
            IdSet::Large(set) => Self::sorted(set.into_iter().collect()),
        }
    }

    /// The ids of a checkpoint (sorted and deduplicated here: the file is not trusted).
    pub fn from_checkpoint(ids: &[u64]) -> Self {
        Self::sorted(ids.iter().copied().collect())
    }

    fn sorted(mut ids: ThinVec<u64>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        ids.shrink_to_fit();
        Ids(ids)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.0.binary_search(&id).is_ok()
    }

    /// Adds `id`; false when it was there.
    pub fn insert(&mut self, id: u64) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, id);
                true
            }
        }
    }
}

/// A closed session, remembered.
#[derive(Debug)]
pub struct Closed {
    pub ids: Ids,
    /// Earliest and latest event time of the session and of its late events, ms.
    pub first_ms: i64,
    pub last_ms: i64,
    /// When it closed (the engine's clock), ms: the horizon runs from here.
    pub closed_ms: i64,
    /// Events it took, late ones included: capped by `engine.max_session_events`.
    pub events: u32,
    pub site: u16,
    /// Stages reached in each of its site's journeys when it closed, by slot (what a late
    /// event's friction is counted at).
    pub reached: [u8; MAX_SITE_JOURNEYS],
    pub channel: Channel,
    pub device: Device,
}

impl Closed {
    /// Whether an event at `ts` belongs to it: less than a timeout from its events.
    fn covers(&self, ts: i64, timeout: i64) -> bool {
        ts > self.first_ms.saturating_sub(timeout) && ts < self.last_ms.saturating_add(timeout)
    }
}

/// One engine's remembered sessions.
#[derive(Debug)]
pub struct Past {
    /// Each session id's closed sessions, in closing order.
    records: HashMap<SessionKey, ThinVec<Closed>, Prehashed>,
    /// Ids held here (the bounds count every engine's).
    ids: usize,
    /// When the oldest session held closed (`i64::MAX` when none is).
    oldest_ms: i64,
    /// The earliest time of the next scan for sessions past the horizon.
    next_scan_ms: i64,
    /// The last round of making room this engine took its share of (see [`Bounds`]).
    trimmed_round: u64,
}

impl Default for Past {
    fn default() -> Self {
        Past {
            records: HashMap::default(),
            ids: 0,
            oldest_ms: i64::MAX,
            next_scan_ms: i64::MIN,
            trimmed_round: 0,
        }
    }
}

impl Past {
    /// Whether a closed session of `key` is remembered.
    pub fn has(&self, key: SessionKey) -> bool {
        self.records.contains_key(&key)
    }

    /// Whether a closed session of `key` holds the id hash `id`.
    pub fn holds(&self, key: SessionKey, id: u64) -> bool {
        (self.records.get(&key)).is_some_and(|all| all.iter().any(|c| c.ids.contains(id)))
    }

    /// Whether a closed session of `key` covers an event at `ts`.
    pub fn covers(&self, key: SessionKey, ts: i64, timeout: i64) -> bool {
        (self.records.get(&key)).is_some_and(|all| all.iter().any(|c| c.covers(ts, timeout)))
    }

    /// The closed session of `key` an event at `ts` belongs to: the last closed that covers it.
    pub fn covering(&mut self, key: SessionKey, ts: i64, timeout: i64) -> Option<&mut Closed> {
        let all = self.records.get_mut(&key)?;
        all.iter_mut().rev().find(|c| c.covers(ts, timeout))
    }

    /// Ids a late event added to a closed session (its id, an order id).
    pub fn grew(&mut self, added: usize, bounds: &Bounds) {
        self.ids += added;
        bounds.remembered(added as isize);
    }

    /// Remembers a closed session of `key`.
    pub fn remember(&mut self, key: SessionKey, closed: Closed, bounds: &Bounds) {
        let closed_ms = closed.closed_ms;
        let added = closed.ids.len();
        let all = self.records.entry(key).or_default();
        if all.is_empty() {
            // Most session ids close once: no spare room for them.
            all.reserve_exact(1);
        }
        let dropped = if all.len() >= PER_SESSION_ID {
            let oldest = all.remove(0);
            bounds.forgot_early(oldest.closed_ms);
            oldest.ids.len()
        } else {
            0
        };
        all.push(closed);
        self.oldest_ms = self.oldest_ms.min(closed_ms);
        self.ids -= dropped;
        bounds.remembered(-(dropped as isize));
        self.grew(added, bounds);
    }

    /// Forgets the sessions closed a horizon before `now_ms` or earlier (when a scan is due),
    /// then, while the process remembers more ids than it may, this engine's share of the
    /// oldest (noting in `bounds` when they were forgotten early).
    pub fn expire(&mut self, now_ms: i64, bounds: &Bounds) {
        let horizon = bounds.horizon_ms();
        let cutoff = now_ms.saturating_sub(horizon);
        if cutoff >= self.oldest_ms && now_ms >= self.next_scan_ms {
            self.forget_until(cutoff, bounds);
            self.next_scan_ms = now_ms.saturating_add(horizon / 100);
        }
        if let Some((round, ppm)) = bounds.room_round(self.trimmed_round)
            && self.ids > 0
        {
            self.trimmed_round = round;
            let share = (self.ids as u128 * u128::from(ppm)).div_ceil(1_000_000) as usize;
            self.make_room(share, bounds);
        }
    }

    /// Forgets `share` ids, the sessions closed longest ago first.
    #[cold]
    fn make_room(&mut self, share: usize, bounds: &Bounds) {
        // Ordered by when they closed, then by key: many close at the same tick.
        let mut by_age: Vec<((i64, SessionKey), usize)> = (self.records.iter())
            .flat_map(|(k, all)| all.iter().map(|c| ((c.closed_ms, *k), c.ids.len())))
            .collect();
        by_age.sort_unstable_by_key(|((t, k), _)| (*t, k.0, k.1));
        let (mut freed, mut until) = (0, (i64::MIN, SessionKey(0, 0)));
        for (at, n) in by_age {
            if freed >= share {
                break;
            }
            (freed, until) = (freed + n, at);
        }
        let last = (until.0, until.1.0, until.1.1);
        self.forget(|closed_ms, key| (closed_ms, key.0, key.1) <= last, bounds);
        bounds.forgot_early(until.0);
        tracing::warn!(
            forgotten = freed,
            held = bounds.remembered_ids(),
            "engine.max_remembered_ids reached: forgot the ids of the sessions closed longest ago"
        );
    }

    /// Forgets every session closed at `until_ms` or earlier.
    fn forget_until(&mut self, until_ms: i64, bounds: &Bounds) {
        self.forget(|closed_ms, _| closed_ms <= until_ms, bounds);
    }

    /// Forgets the sessions `pick` names by closing time and key.
    fn forget(&mut self, pick: impl Fn(i64, SessionKey) -> bool, bounds: &Bounds) {
        let (mut freed, mut oldest) = (0, i64::MAX);
        self.records.retain(|key, all| {
            all.retain(|c| {
                if pick(c.closed_ms, *key) {
                    freed += c.ids.len();
                    return false;
                }
                oldest = oldest.min(c.closed_ms);
                true
            });
            !all.is_empty()
        });
        self.ids -= freed;
        self.oldest_ms = oldest;
        bounds.remembered(-(freed as isize));
    }

    /// Forgets every session (a released partition).
    pub fn clear(&mut self, bounds: &Bounds) {
        bounds.remembered(-(self.ids as isize));
        *self = Past::default();
    }

    /// The sessions and the scan's schedule, for a checkpoint.
    pub fn snapshot(&self, forgotten_ms: Option<i64>, journeys: &Journeys) -> PastState {
        // Each session id's closed sessions stay together and in closing order (which their
        // close times need not follow: a tick and an event's receipt are two clocks).
        let sessions: Vec<PastSession> = (self.records.iter())
            .flat_map(|(k, all)| all.iter().map(move |c| (k, c)))
            .map(|(k, c)| PastSession {
                key: (k.0, k.1),
                site: c.site,
                ids: c.ids.0.to_vec(),
                first_ms: c.first_ms,
                last_ms: c.last_ms,
                closed_ms: c.closed_ms,
                events: c.events,
                reached: (journeys.sites[usize::from(c.site)].journeys.iter())
                    .zip(c.reached)
                    .filter(|(_, reached)| *reached > 0)
                    .map(|(&j, reached)| (j as u16, reached))
                    .collect(),
                channel: c.channel as u8,
                device: c.device as u8,
            })
            .collect();
        PastState {
            sessions,
            forgotten_ms,
            next_scan_ms: self.next_scan_ms,
        }
    }

    /// Takes up a checkpoint's scan schedule (its sessions are put back with `remember`).
    pub fn restore_schedule(&mut self, next_scan_ms: i64) {
        self.next_scan_ms = next_scan_ms;
    }
}

/// The closed sessions in a checkpoint (`EngineState::past`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PastState {
    /// Each session id's together, in closing order.
    pub sessions: Vec<PastSession>,
    /// When the newest closed session forgotten before its horizon had closed, if any was.
    pub forgotten_ms: Option<i64>,
    /// The earliest time of the next scan for sessions past the horizon.
    pub next_scan_ms: i64,
}

/// One remembered session, indices as in [`super::SessionState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastSession {
    pub key: (u64, u64),
    pub site: u16,
    pub ids: Vec<u64>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub closed_ms: i64,
    pub events: u32,
    /// `(journey, stages reached)` per journey entered, journeys as in
    /// [`super::EngineState::journeys`].
    pub reached: Vec<(u16, u8)>,
    pub channel: u8,
    pub device: u8,
}
