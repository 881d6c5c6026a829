//! The funnel engine: open sessions in a bounded concurrent map, each event applied once, and
//! every figure of the contract kept in the metrics as it happens.
//!
//! Semantics (CONTRACT.md section 2): a session is `(site, session)`; it closes once the clock
//! reaches its last event time plus the session timeout (live: the server clock, via
//! [`Engine::sweep`] between batches; an event that arrives after that gap closes the old
//! session and starts a new one). Its furthest
//! stage is the highest any of its events maps to, whatever their order; reaching a stage counts
//! every stage before it. Because reached counts are taken on arrival and drop-offs, abandoned
//! carts and open-cart value are computed from order-independent state (furthest stage, whether
//! an order was seen, net cart value clamped at zero only when read), the same events in any
//! order, duplicated or interleaved give the same figures. Channel and device are those of the
//! first event received for the session.

mod journey;
mod runner;
mod session;

pub use journey::{CartEffect, Journey, Kind, OTHER, POST_PURCHASE, Touchpoint};
pub use runner::run;

use crate::config::Config;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::metrics::money::to_micros;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use session::{Prehashed, Session};
use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128, SipHasher13 as SipHasher13x128};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    UnknownSite,
}

impl Outcome {
    /// The outcome as a log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
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
    journey: Journey,
    sites: HashMap<String, u16>,
    sessions: DashMap<SessionKey, Session, Prehashed>,
    /// Open sessions, shared by every engine of a process (one per Kafka partition).
    open: Arc<AtomicUsize>,
    max_open: usize,
    /// False while rebuilding state from events that were already counted: state and gauges
    /// follow the events, counters and histograms do not.
    counting: AtomicBool,
    keys: [u64; 4],
    metrics: Arc<Metrics>,
}

impl Engine {
    /// An engine for `config` reporting into `metrics` (built for the same config and journey).
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        Self::with_open_count(config, metrics, Arc::default())
    }

    /// An engine whose session bound `engine.max_open_sessions` is shared through `open` with
    /// other engines (the partitions a Kafka consumer owns).
    pub fn with_open_count(config: &Config, metrics: Arc<Metrics>, open: Arc<AtomicUsize>) -> Self {
        let random = RandomState::new();
        Self {
            journey: Journey::new(&config.journey),
            sites: config
                .sites
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i as u16))
                .collect(),
            sessions: DashMap::with_hasher(Prehashed::default()),
            open,
            max_open: config.engine.max_open_sessions,
            counting: AtomicBool::new(true),
            keys: [0u8, 1, 2, 3].map(|i| random.hash_one(i)),
            metrics,
        }
    }

    /// The compiled journey map.
    pub fn journey(&self) -> &Journey {
        &self.journey
    }

    /// Turns counting on or off. Off, events and sweeps rebuild sessions and gauges without
    /// adding to any counter: for replaying events whose counts were already exported.
    pub fn set_counting(&self, on: bool) {
        self.counting.store(on, Ordering::Relaxed);
    }

    fn counting(&self) -> bool {
        self.counting.load(Ordering::Relaxed)
    }

    /// Sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

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

    /// Applies one event.
    pub fn apply(&self, ev: &Event) -> Outcome {
        let m = &self.metrics.funnel;
        let count = self.counting();
        if count {
            m.applied.inc();
        }
        let Some(&site) = self.sites.get(&*ev.site) else {
            if count {
                m.unknown_site.inc();
            }
            return Outcome::UnknownSite;
        };
        let key = self.session_key(site, &ev.session);
        if self.open.load(Ordering::Relaxed) >= self.max_open && !self.sessions.contains_key(&key) {
            self.evict();
        }
        let timeout = self.journey.session_timeout_ms;
        let mut entry = match self.sessions.entry(key) {
            Entry::Occupied(mut o) => {
                if ev.event_time_ms >= o.get().last_ms.saturating_add(timeout) {
                    let fresh = Session::new(site, ev.event_time_ms, ev.channel, ev.device);
                    let old = std::mem::replace(o.get_mut(), fresh);
                    self.close(&old);
                    self.opened();
                }
                o.into_ref()
            }
            Entry::Vacant(v) => {
                self.opened();
                v.insert(Session::new(site, ev.event_time_ms, ev.channel, ev.device))
            }
        };
        self.update(entry.value_mut(), ev)
    }

    fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.metrics.funnel.open_sessions.inc();
    }

    fn update(&self, s: &mut Session, ev: &Event) -> Outcome {
        let m = &self.metrics.funnel;
        let j = &self.journey;
        let site = usize::from(s.site);
        let count = self.counting();
        if !s.ids.insert(self.id_hash(0, &ev.id)) {
            if count {
                m.duplicates(site).inc();
            }
            return Outcome::Duplicate;
        }
        let tp = j.classify(&ev.kind);
        s.first_ms = s.first_ms.min(ev.event_time_ms);
        s.last_ms = s.last_ms.max(ev.event_time_ms);

        let was_open = s.cart_open(j.cart_stage);
        if was_open {
            for (cur, v) in s.cart_value() {
                m.carts_open_value(site, cur).add(-v);
            }
        }

        let target = tp.stage.unwrap_or(0);
        let before = usize::from(s.reached);
        if target >= before {
            let seconds = (ev.event_time_ms - s.first_ms).max(0) as f64 / 1000.0;
            for stage in (before..=target).filter(|_| count) {
                m.reached(site, stage, s.channel, s.device).inc();
                m.stage_seconds(site, stage).observe(seconds);
            }
            if before > 0 {
                m.active(site, before - 1).dec();
            }
            m.active(site, target).inc();
            s.reached = (target + 1) as u8;
        }

        let phase = match tp.kind {
            Kind::Funnel => j.stages[target].phase,
            Kind::PostPurchase => j.post_purchase_phase(),
            Kind::Friction(_) | Kind::Other => j.stages[s.furthest()].phase,
        };
        if count {
            m.touchpoint(site, phase, tp.label).inc();
            if let Kind::Friction(kind) = tp.kind {
                m.friction(site, s.furthest(), kind).inc();
            }
        }

        let currency = m.currencies[site].index(ev.currency.as_deref());
        let micros = ev.value.map(to_micros).unwrap_or(0);
        match tp.cart {
            CartEffect::Add => s.add_to_cart(currency as u16, micros),
            CartEffect::Remove => s.add_to_cart(currency as u16, -micros),
            CartEffect::None => {}
        }
        if tp.order {
            let first_time = match &ev.order_id {
                Some(order) => s.insert_order(self.id_hash(1, order)),
                None => true,
            };
            if first_time && count {
                m.orders(site, s.channel, s.device).inc();
                m.revenue(site, currency).add(micros);
                m.order_value(site, currency)
                    .observe(ev.value.unwrap_or(0.0));
            }
            s.ordered |= first_time;
        }

        let now_open = s.cart_open(j.cart_stage);
        if now_open {
            for (cur, v) in s.cart_value() {
                m.carts_open_value(site, cur).add(v);
            }
        }
        match (was_open, now_open) {
            (false, true) => _ = m.carts_open(site).inc(),
            (true, false) => _ = m.carts_open(site).dec(),
            _ => {}
        }
        Outcome::Applied
    }

    /// Counts a session's close (drop-off, abandoned cart) and forgets it.
    fn close(&self, s: &Session) {
        if self.counting() {
            let m = &self.metrics.funnel;
            let site = usize::from(s.site);
            let furthest = s.furthest();
            if furthest + 1 < self.journey.stages.len() {
                m.dropoffs(site, furthest, s.channel, s.device).inc();
            }
            if s.cart_open(self.journey.cart_stage) {
                m.carts_abandoned(site, s.channel, s.device).inc();
                for (cur, v) in s.cart_value() {
                    m.carts_abandoned_value(site, cur).add(v);
                }
            }
        }
        self.forget(s);
    }

    /// Takes a session out of the gauges without counting anything.
    fn forget(&self, s: &Session) {
        let m = &self.metrics.funnel;
        let site = usize::from(s.site);
        m.active(site, s.furthest()).dec();
        if s.cart_open(self.journey.cart_stage) {
            m.carts_open(site).dec();
            for (cur, v) in s.cart_value() {
                m.carts_open_value(site, cur).add(-v);
            }
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
        m.open_sessions.dec();
    }

    /// Drops every session without counting a close: another engine takes them over (a
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

    /// Closes every session idle since `now_ms - session_timeout` or earlier; returns how many.
    pub fn sweep(&self, now_ms: i64) -> usize {
        let cutoff = now_ms.saturating_sub(self.journey.session_timeout_ms);
        self.close_where(|s| s.last_ms <= cutoff)
    }

    /// Closes every open session (the end of a replayed log).
    pub fn close_all(&self) -> usize {
        self.close_where(|_| true)
    }

    fn close_where(&self, mut pred: impl FnMut(&Session) -> bool) -> usize {
        let mut closed = 0;
        self.sessions.retain(|_, s| {
            if pred(s) {
                self.close(s);
                closed += 1;
                false
            } else {
                true
            }
        });
        closed
    }

    /// Makes room when the store is full: closes the longest-idle 1 % of sessions.
    fn evict(&self) {
        let mut last: Vec<i64> = self.sessions.iter().map(|e| e.last_ms).collect();
        if last.is_empty() {
            return;
        }
        let n = (last.len() / 100).max(1).min(last.len()) - 1;
        let (_, cutoff, _) = last.select_nth_unstable(n);
        let cutoff = *cutoff;
        let closed = self.close_where(|s| s.last_ms <= cutoff);
        self.metrics.funnel.evicted.inc_by(closed as u64);
        tracing::warn!(
            closed,
            max = self.max_open,
            "session store full: closed the longest-idle sessions early"
        );
    }
}

#[cfg(test)]
mod tests;
