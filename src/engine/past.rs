//! Sessions remembered after they close, for `engine.dedup_horizon` (CONTRACT.md section 2):
//! an event whose id a closed session of the same `(site, session)` holds is a duplicate, and a
//! new event that falls inside a closed session's timeout (an offline queue flushed late, a
//! server's late call) is a late event counted against it, never a second visit.
//!
//! Each closed session keeps its ids (event and order id hashes, as while open) in a sorted
//! array cut to size, its last event time and what a late event is counted under (site,
//! furthest stage, channel, device): 48 bytes in the table plus 8 an id (`benches/
//! session_memory.rs` measures it). A session id that closes again merges into its record.
//! There is no queue: records are scanned when some may have passed the horizon (at most every
//! hundredth of it, so an id is kept at most 1 % longer than the horizon, never shorter), and
//! when the ids held (counted in the shared [`Bounds`], over every engine of the process) pass
//! `engine.max_remembered_ids`, the records closed longest ago are forgotten, down to 99 % of
//! it; the effective horizon is then the time since the newest of them closed. Within it,
//! dedup is exact.

use super::session::{IdSet, Prehashed};
use super::{Bounds, SessionKey};
use crate::event::{Channel, Device};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use thin_vec::ThinVec;

/// A closed session's ids: sorted, no spare room.
#[derive(Debug, Default)]
pub struct Ids(ThinVec<u64>);

impl Ids {
    fn of(set: IdSet) -> Self {
        let mut ids: ThinVec<u64> = match set {
            IdSet::Small(v) => v,
            IdSet::Large(set) => set.into_iter().collect(),
        };
        ids.sort_unstable();
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
                self.0.shrink_to_fit();
                true
            }
        }
    }

    fn merge(&mut self, other: Ids) {
        let mut all: ThinVec<u64> = std::mem::take(&mut self.0);
        all.extend(other.0);
        all.sort_unstable();
        all.dedup();
        all.shrink_to_fit();
        self.0 = all;
    }
}

/// A closed session, remembered.
#[derive(Debug)]
pub struct Record {
    pub ids: Ids,
    /// Latest event time of the session (and of its late events), ms.
    pub last_ms: i64,
    /// When it closed (the engine's clock), ms: the horizon runs from here.
    pub closed_ms: i64,
    pub site: u16,
    /// Stages reached, as the session had when it closed.
    pub reached: u8,
    pub channel: Channel,
    pub device: Device,
}

/// What a closing session leaves behind.
#[derive(Debug)]
pub struct Leaving {
    pub ids: IdSet,
    pub last_ms: i64,
    pub site: u16,
    pub reached: u8,
    pub channel: Channel,
    pub device: Device,
}

/// One engine's remembered sessions.
#[derive(Debug, Default)]
pub struct Past {
    records: HashMap<SessionKey, Record, Prehashed>,
    /// Ids held here (the bounds count every engine's).
    ids: usize,
    /// No record closed before this (a lower bound): until the horizon reaches it, no scan.
    oldest_ms: i64,
    /// The earliest time of the next scan for records past the horizon.
    next_scan_ms: i64,
}

impl Past {
    /// Whether a closed session of `key` is remembered.
    pub fn has(&self, key: SessionKey) -> bool {
        self.records.contains_key(&key)
    }

    /// Whether the closed sessions of `key` hold the id hash `id`.
    pub fn holds(&self, key: SessionKey, id: u64) -> bool {
        self.records.get(&key).is_some_and(|r| r.ids.contains(id))
    }

    pub fn get_mut(&mut self, key: SessionKey) -> Option<&mut Record> {
        self.records.get_mut(&key)
    }

    /// Ids a late event added to a record (its id, an order id): counted in the bounds.
    pub fn grew(&mut self, added: usize, bounds: &Bounds) {
        self.ids += added;
        bounds.remembered(added as isize);
    }

    /// Remembers a session closed at `closed_ms`, merged into an earlier record of its key.
    pub fn remember(&mut self, key: SessionKey, s: Leaving, closed_ms: i64, bounds: &Bounds) {
        let ids = Ids::of(s.ids);
        let before = self.records.get(&key).map_or(0, |r| r.ids.len());
        let r = self.records.entry(key).or_insert_with(|| Record {
            ids: Ids::default(),
            last_ms: s.last_ms,
            closed_ms,
            site: s.site,
            reached: s.reached,
            channel: s.channel,
            device: s.device,
        });
        r.ids.merge(ids);
        r.last_ms = r.last_ms.max(s.last_ms);
        r.closed_ms = r.closed_ms.max(closed_ms);
        r.reached = r.reached.max(s.reached);
        let added = r.ids.len() - before;
        if self.records.len() == 1 {
            self.oldest_ms = closed_ms;
        }
        self.oldest_ms = self.oldest_ms.min(closed_ms);
        self.grew(added, bounds);
    }

    /// Forgets the records closed a horizon before `now_ms` or earlier (when a scan is due),
    /// then, while the process remembers more ids than it may, the oldest (noting in `bounds`
    /// when they were forgotten early).
    pub fn expire(&mut self, now_ms: i64, bounds: &Bounds) {
        let horizon = bounds.horizon_ms();
        let cutoff = now_ms.saturating_sub(horizon);
        if !self.records.is_empty() && cutoff >= self.oldest_ms && now_ms >= self.next_scan_ms {
            self.forget_until(cutoff, bounds);
            self.next_scan_ms = now_ms.saturating_add(horizon / 100);
        }
        if bounds.over_remembered() && !self.records.is_empty() {
            self.make_room(bounds);
        }
    }

    /// Forgets the oldest records until the process holds at most 99 % of what it may (or this
    /// engine holds none).
    #[cold]
    fn make_room(&mut self, bounds: &Bounds) {
        let excess = bounds.over_by(bounds.max_remembered() / 100);
        let mut by_age: Vec<(i64, usize)> = (self.records.values())
            .map(|r| (r.closed_ms, r.ids.len()))
            .collect();
        by_age.sort_unstable();
        let (mut freed, mut until) = (0, i64::MIN);
        for (closed_ms, n) in by_age {
            if freed >= excess {
                break;
            }
            (freed, until) = (freed + n, closed_ms);
        }
        self.forget_until(until, bounds);
        bounds.forgot_early(until);
        tracing::warn!(
            forgotten = freed,
            held = bounds.remembered_ids(),
            "engine.max_remembered_ids reached: forgot the ids of the sessions closed longest ago"
        );
    }

    /// Forgets every record closed at `until_ms` or earlier.
    fn forget_until(&mut self, until_ms: i64, bounds: &Bounds) {
        let (mut freed, mut oldest) = (0, i64::MAX);
        self.records.retain(|_, r| {
            if r.closed_ms <= until_ms {
                freed += r.ids.len();
                return false;
            }
            oldest = oldest.min(r.closed_ms);
            true
        });
        self.ids -= freed;
        self.oldest_ms = oldest;
        bounds.remembered(-(freed as isize));
    }

    /// Forgets every record (a released partition).
    pub fn clear(&mut self, bounds: &Bounds) {
        bounds.remembered(-(self.ids as isize));
        *self = Past::default();
    }

    /// The records, oldest first, for a checkpoint.
    pub fn snapshot(&self) -> Vec<PastSession> {
        let mut out: Vec<PastSession> = (self.records.iter())
            .map(|(k, r)| PastSession {
                key: (k.0, k.1),
                site: r.site,
                ids: r.ids.0.to_vec(),
                last_ms: r.last_ms,
                closed_ms: r.closed_ms,
                reached: r.reached,
                channel: r.channel as u8,
                device: r.device as u8,
            })
            .collect();
        out.sort_unstable_by_key(|p| (p.closed_ms, p.key));
        out
    }
}

/// One remembered session in a checkpoint (`EngineState::past`), indices as in
/// [`super::SessionState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastSession {
    pub key: (u64, u64),
    pub site: u16,
    pub ids: Vec<u64>,
    pub last_ms: i64,
    pub closed_ms: i64,
    pub reached: u8,
    pub channel: u8,
    pub device: u8,
}

impl Leaving {
    /// What a checkpoint's record leaves, its labels already mapped.
    pub fn from_ids(ids: &[u64], last_ms: i64, site: u16, reached: u8) -> Self {
        let mut set = IdSet::default();
        for &id in ids {
            set.insert(id);
        }
        Leaving {
            ids: set,
            last_ms,
            site,
            reached,
            channel: Channel::Other,
            device: Device::Desktop,
        }
    }
}
