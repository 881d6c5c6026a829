//! Where the engine reports: the funnel rules state what happened, a [`Recorder`] turns that
//! into counter writes. [`Counting`] writes them; [`Silent`] writes nothing, for rebuilding
//! state from events whose counts were already exported. The gauges are not a recorder's
//! business: they mirror the open sessions, so [`Gauges`] follows every change of state,
//! counted or not (as do the store's own open-session gauge and eviction counter).

// Every function here runs on every event; without `#[inline]` they are compiled as calls
// into another codegen unit, which cost 5 % on `engine/apply` (loadtests/RESULTS.md).

use super::rules::{Closed, Step};
use super::session::Session;
use crate::event::FilterReason;
use crate::journey::Journeys;
use crate::metrics::Metrics;

/// What the engine reports into.
pub trait Recorder {
    /// Whether this recorder counts a live run (the store's rates and id pool apply) rather
    /// than rebuild what was already counted (held to neither).
    const COUNTS: bool = true;
    /// An event reached the engine (duplicates and unknown sites included).
    fn applied(&self);
    /// An event named a site this engine does not have.
    fn unknown_site(&self);
    /// An event kept out of the funnel: an id its session had already seen, a session at its
    /// event limit, a new session over its client's rate.
    fn filtered(&self, site: usize, reason: FilterReason);
    /// A new event's effect on its session.
    fn step(&self, step: &Step);
    /// A session closed.
    fn closed(&self, closed: &Closed<'_>);
    /// A new event of a closed session was counted against it (after its [`Recorder::step`]).
    fn late(&self, site: usize);
}

/// Counts everything into the process's metrics.
pub struct Counting<'a>(pub &'a Metrics);

impl Recorder for Counting<'_> {
    #[inline]
    fn applied(&self) {
        self.0.engine.applied.inc();
    }
    #[inline]
    fn unknown_site(&self) {
        self.0.engine.unknown_site.inc();
    }
    #[inline]
    fn filtered(&self, site: usize, reason: FilterReason) {
        self.0.ingest.filtered(site, reason).inc();
    }
    #[inline]
    fn step(&self, st: &Step) {
        let m = &self.0.funnel;
        for slot in 0..st.slots {
            for stage in st.reached[slot].clone() {
                let row = m.row(st.site, slot, usize::from(stage));
                m.reached(row, st.channel, st.device).inc();
                m.stage_seconds(row).observe(st.seconds);
            }
            if let Some((stage, kind)) = st.friction[slot] {
                m.friction(m.row(st.site, slot, usize::from(stage)), usize::from(kind))
                    .inc();
            }
        }
        m.touchpoint(st.site, st.phase, st.touchpoint).inc();
        if st.cart_opened {
            m.carts_opened(st.site, st.channel, st.device).inc();
        }
        if let Some(order) = st.order {
            m.orders(st.site, st.channel, st.device).inc();
            m.revenue(st.site, order.currency).add(order.micros);
            m.order_value(st.site, order.currency).observe(order.value);
        }
    }
    fn late(&self, site: usize) {
        self.0.engine.late(site).inc();
    }
    #[inline]
    fn closed(&self, c: &Closed<'_>) {
        let m = &self.0.funnel;
        let s = c.session;
        let site = usize::from(s.site);
        for (slot, dropped) in c.dropped_at[..c.slots].iter().enumerate() {
            if let Some(stage) = dropped {
                let row = m.row(site, slot, usize::from(*stage));
                m.dropoffs(row, s.channel, s.device).inc();
                m.dropoffs_last_touchpoint(row, usize::from(s.last_touchpoint))
                    .inc();
                m.dropoffs_last_friction(row, usize::from(c.last_friction[slot]))
                    .inc();
            }
        }
        if c.abandoned {
            m.carts_abandoned(site, s.channel, s.device).inc();
            for (currency, micros) in s.cart_value() {
                m.carts_abandoned_value(site, currency).add(micros);
            }
        }
    }
}

/// Records nothing: for rebuilding sessions from events that were already counted.
pub struct Silent;

impl Recorder for Silent {
    const COUNTS: bool = false;
    fn applied(&self) {}
    fn unknown_site(&self) {}
    fn filtered(&self, _: usize, _: FilterReason) {}
    fn step(&self, _: &Step) {}
    fn closed(&self, _: &Closed<'_>) {}
    fn late(&self, _: usize) {}
}

/// The gauges' view of one session's cart, taken before a change.
#[derive(Debug, Clone, Copy)]
pub struct Mirrored {
    cart_open: bool,
    /// An open cart's value in its one currency, still in the gauge (the usual cart: the
    /// change is then written as one difference); `None` when the cart was taken out whole.
    kept: Option<(u16, i64)>,
}

/// The gauges that mirror open sessions: sessions by furthest stage of each journey, open
/// carts and their value.
pub struct Gauges<'a> {
    pub metrics: &'a Metrics,
    pub journeys: &'a Journeys,
}

impl Gauges<'_> {
    /// Notes what the gauges show of the session's cart before a change. A cart in one
    /// currency stays in the gauge (`after` writes the difference); one in several is taken
    /// out whole.
    #[inline]
    pub fn before(&self, s: &Session) -> Mirrored {
        let cart_open = s.cart_open();
        let mut kept = None;
        if cart_open {
            match s.single_cart() {
                Some((c, v)) => kept = Some((c, v.max(0))),
                None => self.cart_value(s, -1),
            }
        }
        Mirrored { cart_open, kept }
    }

    /// Puts the session changed by `step` back into the gauges: the stages `step` reached
    /// move it from the gauge of its old furthest stage to its new one, in each journey.
    // Always inlined, as `rules::advance` is: both sit on every event's path.
    #[inline(always)]
    pub fn after(&self, s: &Session, was: Mirrored, step: &Step) {
        let m = &self.metrics.funnel;
        let site = usize::from(s.site);
        for (slot, reached) in step.reached[..step.slots].iter().enumerate() {
            if !reached.is_empty() {
                self.moved(site, slot, reached.start, reached.end);
            }
        }
        let now_open = s.cart_open();
        match (was.kept, now_open, s.single_cart()) {
            // The usual event of a cart: one difference, none when the value is the same.
            (Some((c, old)), true, Some((now_c, now))) if c == now_c => {
                let diff = now.max(0) - old;
                if diff != 0 {
                    m.carts_open_value(site, usize::from(c)).add(diff);
                }
            }
            (kept, _, _) => {
                if let Some((c, old)) = kept {
                    m.carts_open_value(site, usize::from(c)).add(-old);
                }
                if now_open {
                    self.cart_value(s, 1);
                }
            }
        }
        match (was.cart_open, now_open) {
            (false, true) => _ = m.carts_open(site).inc(),
            (true, false) => _ = m.carts_open(site).dec(),
            _ => {}
        }
    }

    /// Moves a session whose furthest stage in slot `slot` went from `was` stages reached to
    /// `now` (`was` 0: it enters the journey).
    #[inline(always)]
    fn moved(&self, site: usize, slot: usize, was: u8, now: u8) {
        let m = &self.metrics.funnel;
        if was > 0 {
            m.active(m.row(site, slot, usize::from(was) - 1)).dec();
        }
        m.active(m.row(site, slot, usize::from(now) - 1)).inc();
    }

    /// Puts a session that was not in the gauges into them (a restored one).
    pub fn add(&self, s: &Session) {
        let site = usize::from(s.site);
        for slot in 0..self.journeys.sites[site].slots() {
            let reached = s.reached(slot);
            if reached > 0 {
                self.moved(site, slot, 0, reached);
            }
        }
        let m = &self.metrics.funnel;
        if s.cart_open() {
            m.carts_open(site).inc();
            self.cart_value(s, 1);
        }
    }

    /// Takes a leaving session out of every gauge.
    #[inline]
    pub fn remove(&self, s: &Session) {
        let m = &self.metrics.funnel;
        let site = usize::from(s.site);
        let journeys = &self.journeys.sites[site];
        for slot in 0..journeys.slots() {
            let reached = s.reached(slot);
            if reached > 0 {
                m.active(m.row(site, slot, usize::from(reached) - 1)).dec();
            }
        }
        if s.cart_open() {
            m.carts_open(site).dec();
            self.cart_value(s, -1);
        }
    }
    #[inline]
    fn cart_value(&self, s: &Session, sign: i64) {
        let site = usize::from(s.site);
        for (currency, micros) in s.cart_value() {
            self.metrics
                .funnel
                .carts_open_value(site, currency)
                .add(sign * micros);
        }
    }
}
