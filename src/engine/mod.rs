//! The funnel engine: open sessions in a bounded concurrent map, each event applied once, and
//! every figure of the contract reported as it happens. Two drivers feed it: [`durable`] (the
//! log and queue of `serve`, with its checkpoints) and [`kafka`] (a consumer group, one engine
//! per partition).
//!
//! Semantics (CONTRACT.md section 2): a session is `(site, session)`; it closes once the clock
//! reaches its last event time plus the session timeout (live: the server clock, via
//! [`Engine::sweep`] between batches; an event that arrives after that gap closes the old
//! session and starts a new one). Its furthest stage is the highest any of its events maps to,
//! whatever their order; reaching a stage counts every stage before it. Because reached counts
//! are taken on arrival and drop-offs, abandoned carts and open-cart value are computed from
//! order-independent state (furthest stage, whether an order was seen, net cart value clamped
//! at zero only when read), the same events in any order, duplicated or interleaved give the
//! same figures. Channel and device are those of the first event received for the session.
//!
//! The layers: this module keeps the store (keys, opening, closing, eviction, and with them
//! the open-session gauge and the eviction counter, written whatever the recorder); `rules`
//! says what an event does to its session; a `Recorder` turns that into counter writes, and
//! `record::Gauges` keeps the funnel's gauges in step with the open sessions.

mod bounds;
pub mod checkpoint;
mod close;
pub mod durable;
pub mod kafka;
mod past;
mod record;
mod rules;
mod session;
mod snapshot;

pub use bounds::Bounds;
pub use past::{PastSession, PastState};
pub(crate) use record::{Counting, Recorder, Silent};
pub use snapshot::{
    EngineState, JourneyNames, JourneyProgress, Restored, SessionState, SnapshotError,
};

use crate::config::Config;
use crate::event::{Event, FilterReason};
use crate::journey::Journeys;
use crate::metrics::Metrics;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use past::Past;
use record::Gauges;
use session::{Prehashed, Session};
use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128, SipHasher13 as SipHasher13x128};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A new event of a session that had closed, counted against it (no second visit).
    Late,
    /// Kept out of the funnel: `duplicate`, `session_limit` or `session_rate`.
    Filtered(FilterReason),
    UnknownSite,
}

impl Outcome {
    /// The outcome as a log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Late => "late",
            Outcome::Filtered(reason) => reason.as_str(),
            Outcome::UnknownSite => "unknown_site",
        }
    }
}

/// 128-bit keyed hash of `(site, session)`: the map key, so no session string is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SessionKey(u64, u64);

impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The engine. All methods take `&self`: the map is concurrent, so readers never block it.
pub struct Engine {
    journeys: Arc<Journeys>,
    sites: HashMap<String, u16>,
    sessions: DashMap<SessionKey, Session, Prehashed>,
    /// Open sessions, ids held and new sessions per client, shared by every engine of a
    /// process (one per Kafka partition).
    bounds: Arc<Bounds>,
    /// Closed sessions remembered for the dedup horizon. Locked after a session's map entry,
    /// never before one.
    past: Mutex<Past>,
    keys: [u64; 4],
    metrics: Arc<Metrics>,
}

impl Engine {
    /// An engine for `config` reporting into `metrics` (built for the same config: the engine
    /// applies events with the journey the metrics are laid out for).
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        Self::with_bounds(config, metrics, Arc::new(Bounds::new(&config.engine)))
    }

    /// An engine whose store bounds are shared through `bounds` with other engines (the
    /// partitions a Kafka consumer owns).
    pub fn with_bounds(config: &Config, metrics: Arc<Metrics>, bounds: Arc<Bounds>) -> Self {
        let random = RandomState::new();
        let engine = Self {
            journeys: metrics.journeys().clone(),
            sites: (config.sites.iter().enumerate())
                .map(|(i, s)| (s.id.clone(), i as u16))
                .collect(),
            sessions: DashMap::with_hasher(Prehashed::default()),
            bounds,
            past: Mutex::default(),
            keys: [0u8, 1, 2, 3].map(|i| random.hash_one(i)),
            metrics,
        };
        engine.remembered_gauges(crate::now_ms());
        engine
    }

    /// The compiled journey maps.
    #[cfg(test)]
    fn journeys(&self) -> &Journeys {
        &self.journeys
    }

    /// Sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.bounds.open()
    }

    /// The recorder that counts into this engine's metrics.
    pub(crate) fn counting(&self) -> Counting<'_> {
        Counting(&self.metrics)
    }

    fn past(&self) -> MutexGuard<'_, Past> {
        self.past.lock().expect("never poisoned")
    }

    fn gauges(&self) -> Gauges<'_> {
        Gauges {
            metrics: &self.metrics,
            journeys: &self.journeys,
        }
    }
    #[inline(always)]
    fn session_key(&self, site: u16, session: &str) -> SessionKey {
        let mut h = SipHasher13x128::new_with_keys(self.keys[0], self.keys[1]);
        h.write_u16(site);
        h.write(session.as_bytes());
        let out = h.finish128();
        SessionKey(out.h1, out.h2)
    }

    fn id_hash(&self, domain: u8, id: &str) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.keys[2], self.keys[3]);
        h.write_u8(domain);
        h.write(id.as_bytes());
        h.finish()
    }

    /// Applies one event and counts what it does.
    pub fn apply(&self, ev: &Event) -> Outcome {
        self.apply_into(ev, &self.counting())
    }

    /// Applies one event, reporting into `rec`.
    pub(crate) fn apply_into<R: Recorder>(&self, ev: &Event, rec: &R) -> Outcome {
        rec.applied();
        let Some(&site) = self.sites.get(&*ev.site) else {
            rec.unknown_site();
            return Outcome::UnknownSite;
        };
        let key = self.session_key(site, &ev.session);
        // A rebuild restores sessions the live run counted: no rate holds it back (which may
        // admit what the live run refused; those sessions then close unseen).
        if R::COUNTS && self.bounds.under_pressure() && !self.may_open(key, ev) {
            rec.filtered(usize::from(site), FilterReason::SessionRate);
            return Outcome::Filtered(FilterReason::SessionRate);
        }
        if self.bounds.full() && !self.sessions.contains_key(&key) && !self.late_for(key, ev) {
            self.evict();
        }
        let id = self.id_hash(0, &ev.id);
        let timeout = self.journeys.session_timeout_ms;
        let dup = || {
            rec.filtered(usize::from(site), FilterReason::Duplicate);
            Outcome::Filtered(FilterReason::Duplicate)
        };
        // The rules of CONTRACT.md section 2, in arrival order. A duplicate changes nothing,
        // not even which session is open.
        loop {
            match self.sessions.entry(key) {
                Entry::Occupied(mut o) => {
                    let s = o.get();
                    if s.remembered() && self.past().holds(key, id) {
                        return dup();
                    }
                    // Within the session's window the common case: `update` finds a duplicate
                    // of the open session as it remembers the id.
                    let after = ev.event_time_ms >= s.last_ms.saturating_add(timeout);
                    let before = ev.event_time_ms <= s.first_ms.saturating_sub(timeout);
                    if (after || before) && s.ids.contains(id) {
                        return dup();
                    }
                    if after {
                        // Closes it; the event is then taken as with no session open.
                        let (_, mut old) = o.remove_entry();
                        self.close(key, &mut old, ev.received_at_ms, rec);
                        continue;
                    }
                    if before && let Some(late) = self.late(key, Some(s), ev, id, rec) {
                        return late;
                    }
                    return self.update(key, o.get_mut(), ev, id, rec);
                }
                Entry::Vacant(v) => {
                    let (had, seen) = {
                        let past = self.past();
                        (past.has(key), past.holds(key, id))
                    };
                    if seen {
                        return dup();
                    }
                    if had && let Some(late) = self.late(key, None, ev, id, rec) {
                        return late;
                    }
                    self.opened();
                    let fresh =
                        Session::new(site, ev.event_time_ms, ev.channel, ev.device, ev.origin)
                            .remembering(had);
                    return self.update(key, v.insert(fresh).value_mut(), ev, id, rec);
                }
            }
        }
    }

    /// Whether `ev` would be a late event of a closed session of `key`.
    fn late_for(&self, key: SessionKey, ev: &Event) -> bool {
        let timeout = self.journeys.session_timeout_ms;
        self.past().covers(key, ev.event_time_ms, timeout)
    }

    /// Counts a new event against the closed session of `key` it belongs to, if one does: its
    /// touchpoint, friction and order (once per session id: `open` is the session open now),
    /// and the late counter; no stage, visit, drop-off or cart changes (CONTRACT.md section 2).
    /// Past `engine.max_session_events` it is filtered as `session_limit`, as in an open one.
    fn late<R: Recorder>(
        &self,
        key: SessionKey,
        open: Option<&Session>,
        ev: &Event,
        id: u64,
        rec: &R,
    ) -> Option<Outcome> {
        let mut past = self.past();
        let order_id = ev.order_id.as_deref().map(|o| self.id_hash(1, o));
        // Only an event of a configured site reaches here.
        let is_order = self.is_order(usize::from(self.sites[&*ev.site]), ev);
        let counted = order_id.filter(|&o| {
            is_order && (past.holds(key, o) || open.is_some_and(|s| s.ids.contains(o)))
        });
        let max_events = self.bounds.max_session_events();
        let timeout = self.journeys.session_timeout_ms;
        let c = past.covering(key, ev.event_time_ms, timeout)?;
        let site = usize::from(c.site);
        if c.events >= max_events {
            rec.filtered(site, FilterReason::SessionLimit);
            return Some(Outcome::Filtered(FilterReason::SessionLimit));
        }
        c.events += 1;
        let before = c.ids.len();
        c.ids.insert(id);
        if let Some(o) = counted {
            // Counted by another session of the same id: marked, so it counts no more.
            c.ids.insert(o);
        }
        let currency = self.metrics.funnel.currencies[site].index(ev.currency.as_deref());
        let step = rules::late(&self.journeys, c, ev, currency, order_id);
        let added = c.ids.len() - before;
        past.grew(added, &self.bounds);
        drop(past);
        self.held_gauge();
        rec.step(&step);
        rec.late(site);
        Some(Outcome::Late)
    }

    /// Under pressure, whether `ev` may open a session (or continue one): a client past its
    /// new-session rate may only add to sessions it already has open.
    fn may_open(&self, key: SessionKey, ev: &Event) -> bool {
        if ev.origin == 0 {
            return true;
        }
        let timeout = self.journeys.session_timeout_ms;
        let continues = self
            .sessions
            .get(&key)
            .is_some_and(|s| ev.event_time_ms < s.last_ms.saturating_add(timeout));
        continues || self.late_for(key, ev) || self.bounds.may_open(ev.origin, ev.received_at_ms)
    }

    fn update<R: Recorder>(
        &self,
        key: SessionKey,
        s: &mut Session,
        ev: &Event,
        id: u64,
        rec: &R,
    ) -> Outcome {
        let site = usize::from(s.site);
        // Checked before the id is remembered, so the set stays within its bound; a retry of
        // an event the session took still counts as a duplicate.
        if let Some(limit) = self.bounds.refuses(s, R::COUNTS) {
            let reason = if s.ids.contains(id) {
                FilterReason::Duplicate
            } else {
                limit
            };
            rec.filtered(site, reason);
            return Outcome::Filtered(reason);
        }
        let cost = s.ids.cost();
        if !s.ids.insert(id) {
            rec.filtered(site, FilterReason::Duplicate);
            return Outcome::Filtered(FilterReason::Duplicate);
        }
        s.events += 1;
        let currency = self.metrics.funnel.currencies[site].index(ev.currency.as_deref());
        let order_id = ev.order_id.as_deref().map(|o| self.id_hash(1, o));
        let is_order = || self.is_order(site, ev);
        if let Some(o) =
            order_id.filter(|&o| s.remembered() && is_order() && self.past().holds(key, o))
        {
            // Counted by a closed session of the same key within the horizon: counted already.
            s.insert_order(o);
        }
        let gauges = self.gauges();
        let was = gauges.before(s);
        let step = rules::advance(&self.journeys, s, ev, currency, order_id);
        gauges.after(s, was, &step);
        if let Some(pool) = self.bounds.charge(s.origin, cost, s.ids.cost()) {
            self.metrics.engine.stored_ids.set(pool as i64);
        }
        rec.step(&step);
        Outcome::Applied
    }

    /// Whether `ev` is an order on `site`.
    fn is_order(&self, site: usize, ev: &Event) -> bool {
        self.journeys.sites[site].classify(&ev.kind).order
    }

    fn opened(&self) {
        self.bounds.opened();
        self.metrics.engine.open_sessions.inc();
    }
}

#[cfg(test)]
mod tests;
