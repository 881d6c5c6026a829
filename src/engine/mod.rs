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
pub mod durable;
pub mod kafka;
mod record;
mod rules;
mod session;
mod snapshot;

pub use bounds::Bounds;
pub(crate) use record::{Counting, Recorder, Silent};
pub use snapshot::{EngineState, Restored, SessionState, SnapshotError};

use crate::config::Config;
use crate::event::{Event, FilterReason};
use crate::journey::Journey;
use crate::metrics::Metrics;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use record::Gauges;
use session::{Prehashed, Session};
use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128, SipHasher13 as SipHasher13x128};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Kept out of the funnel: `duplicate`, `session_limit` or `session_rate`.
    Filtered(FilterReason),
    UnknownSite,
}

impl Outcome {
    /// The outcome as a log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
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
    journey: Arc<Journey>,
    sites: HashMap<String, u16>,
    sessions: DashMap<SessionKey, Session, Prehashed>,
    /// Open sessions, ids held and new sessions per client, shared by every engine of a
    /// process (one per Kafka partition).
    bounds: Arc<Bounds>,
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
        Self {
            journey: metrics.journey().clone(),
            sites: (config.sites.iter().enumerate())
                .map(|(i, s)| (s.id.clone(), i as u16))
                .collect(),
            sessions: DashMap::with_hasher(Prehashed::default()),
            bounds,
            keys: [0u8, 1, 2, 3].map(|i| random.hash_one(i)),
            metrics,
        }
    }

    /// The compiled journey map.
    #[cfg(test)]
    fn journey(&self) -> &Journey {
        &self.journey
    }

    /// Sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.bounds.open()
    }

    /// The recorder that counts into this engine's metrics.
    pub(crate) fn counting(&self) -> Counting<'_> {
        Counting(&self.metrics)
    }

    fn gauges(&self) -> Gauges<'_> {
        Gauges {
            metrics: &self.metrics,
            cart_stage: self.journey.cart_stage,
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
        if self.bounds.full() && !self.sessions.contains_key(&key) {
            self.evict();
        }
        let timeout = self.journey.session_timeout_ms;
        let fresh = || Session::new(site, ev.event_time_ms, ev.channel, ev.device, ev.origin);
        let mut entry = match self.sessions.entry(key) {
            Entry::Occupied(mut o) => {
                if ev.event_time_ms >= o.get().last_ms.saturating_add(timeout) {
                    let old = std::mem::replace(o.get_mut(), fresh());
                    self.close(&old, rec);
                    self.opened();
                }
                o.into_ref()
            }
            Entry::Vacant(v) => {
                self.opened();
                v.insert(fresh())
            }
        };
        self.update(entry.value_mut(), ev, rec)
    }

    /// Under pressure, whether `ev` may open a session (or continue one): a client past its
    /// new-session rate may only add to sessions it already has open.
    fn may_open(&self, key: SessionKey, ev: &Event) -> bool {
        if ev.origin == 0 {
            return true;
        }
        let timeout = self.journey.session_timeout_ms;
        let continues = self
            .sessions
            .get(&key)
            .is_some_and(|s| ev.event_time_ms < s.last_ms.saturating_add(timeout));
        continues || self.bounds.may_open(ev.origin, ev.received_at_ms)
    }

    fn update<R: Recorder>(&self, s: &mut Session, ev: &Event, rec: &R) -> Outcome {
        let site = usize::from(s.site);
        if let Some(limit) = self.bounds.refuses(s, R::COUNTS) {
            // Checked before the id is remembered, so the set stays within its bound; a retry
            // of an event the session took still counts as a duplicate.
            let reason = if s.ids.contains(self.id_hash(0, &ev.id)) {
                FilterReason::Duplicate
            } else {
                limit
            };
            rec.filtered(site, reason);
            return Outcome::Filtered(reason);
        }
        let cost = s.ids.cost();
        if !s.ids.insert(self.id_hash(0, &ev.id)) {
            rec.filtered(site, FilterReason::Duplicate);
            return Outcome::Filtered(FilterReason::Duplicate);
        }
        s.events += 1;
        let currency = self.metrics.funnel.currencies[site].index(ev.currency.as_deref());
        let order_id = ev.order_id.as_deref().map(|o| self.id_hash(1, o));
        let gauges = self.gauges();
        let was = gauges.before(s);
        let step = rules::advance(&self.journey, s, ev, currency, order_id);
        gauges.after(s, was);
        if let Some(pool) = self.bounds.charge(s.origin, cost, s.ids.cost()) {
            self.metrics.engine.stored_ids.set(pool as i64);
        }
        rec.step(&step);
        Outcome::Applied
    }

    fn opened(&self) {
        self.bounds.opened();
        self.metrics.engine.open_sessions.inc();
    }

    /// Reports a session's close (drop-off, abandoned cart) and forgets it.
    fn close(&self, s: &Session, rec: &impl Recorder) {
        rec.closed(&rules::closing(&self.journey, s));
        self.forget(s);
    }

    /// Takes a session out of the gauges and the open count.
    fn forget(&self, s: &Session) {
        self.gauges().remove(s);
        if let Some(pool) = self.bounds.closed(s.origin, s.ids.cost()) {
            self.metrics.engine.stored_ids.set(pool as i64);
        }
        self.metrics.engine.open_sessions.dec();
    }

    /// Drops every session without reporting a close: another engine takes them over (a
    /// revoked Kafka partition). Returns how many.
    pub fn release(&self) -> usize {
        let mut released = 0;
        self.sessions.retain(|_, s| {
            self.forget(s);
            released += 1;
            false
        });
        released
    }

    /// Closes and counts every session idle since `now_ms - session_timeout` or earlier;
    /// returns how many.
    pub fn sweep(&self, now_ms: i64) -> usize {
        self.sweep_into(now_ms, &self.counting())
    }

    /// [`Engine::sweep`], reporting into `rec`.
    pub(crate) fn sweep_into(&self, now_ms: i64, rec: &impl Recorder) -> usize {
        let cutoff = now_ms.saturating_sub(self.journey.session_timeout_ms);
        self.close_where(|s| s.last_ms <= cutoff, rec)
    }

    /// Closes and counts every open session (the end of a replayed log).
    pub fn close_all(&self) -> usize {
        self.close_where(|_| true, &self.counting())
    }

    fn close_where(&self, mut pred: impl FnMut(&Session) -> bool, rec: &impl Recorder) -> usize {
        let mut closed = 0;
        self.sessions.retain(|_, s| {
            if pred(s) {
                self.close(s, rec);
                closed += 1;
                false
            } else {
                true
            }
        });
        closed
    }

    /// Makes room when the store is full: forgets 1 % of the sessions (more when they tie),
    /// those with a single event first (what a flood of new sessions creates), then those
    /// without an open cart, then the longest idle. They are not drop-offs or abandoned carts (a
    /// flood must not fire the funnel alerts): they count in the eviction counters only.
    #[cold]
    fn evict(&self) {
        let cart_stage = self.journey.cart_stage;
        let rank = |s: &Session| (s.events > 1, s.cart_open(cart_stage), s.last_ms);
        let mut ranks: Vec<_> = self.sessions.iter().map(|e| rank(&e)).collect();
        if ranks.is_empty() {
            return;
        }
        let n = (ranks.len() / 100).max(1).min(ranks.len()) - 1;
        let (_, cutoff, _) = ranks.select_nth_unstable(n);
        let cutoff = *cutoff;
        let (mut evicted, mut carts) = (0, 0);
        self.sessions.retain(|_, s| {
            if rank(s) > cutoff {
                return true;
            }
            evicted += 1;
            carts += u64::from(s.cart_open(cart_stage));
            self.forget(s);
            false
        });
        self.metrics.engine.evicted.inc_by(evicted);
        self.metrics.engine.carts_evicted.inc_by(carts);
        tracing::warn!(
            evicted,
            carts,
            open = self.bounds.open(),
            "session store full: forgot sessions early, single-event ones first"
        );
    }
}

#[cfg(test)]
mod tests;
