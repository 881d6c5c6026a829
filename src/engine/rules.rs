//! The funnel rules (CONTRACT.md section 2): what one new event does to its session, and what a
//! closing session counts as. They change the session and state what happened; they write no
//! metric, so the same rules serve counting and rebuilding alike (see `record`).

use super::past::Closed as ClosedSession;
use super::session::{Progress, Session};
use crate::event::{Channel, Event};
use crate::journey::{CartEffect, Journey, Journeys, MAX_SITE_JOURNEYS, SiteJourneys, Touchpoint};
use crate::metrics::money::to_micros;
use std::ops::Range;

/// What one new (not duplicate) event did to its session.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub site: usize,
    pub channel: Channel,
    pub device: crate::event::Device,
    /// How many journeys the site runs: the slots of `reached` and `friction` that count.
    pub slots: usize,
    /// Per slot: stages reached for the first time (empty when the session had been there).
    pub reached: [Range<u8>; MAX_SITE_JOURNEYS],
    /// Seconds from the session's start to this event.
    pub seconds: f64,
    /// The phase and touchpoint label it counts under.
    pub phase: usize,
    pub touchpoint: usize,
    /// Per slot, for a friction touchpoint: `(stage where the session stands, kind)`.
    pub friction: [Option<(u8, u8)>; MAX_SITE_JOURNEYS],
    /// An order counted for the first time in this session.
    pub order: Option<Order>,
    /// The session reached a cart stage (of any of its journeys) for the first time.
    pub cart_opened: bool,
}

/// A counted order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    pub currency: usize,
    pub micros: i64,
    /// The value as sent (never below zero), for the order value histogram.
    pub value: f64,
}

/// Applies a new event to its session. `currency` is the event's currency label index and
/// `order_id` the keyed hash of its order id, both resolved by the caller.
// Always inlined into the engine's apply: as a call it cost 5 % of `engine/apply`.
#[inline(always)]
pub fn advance(
    all: &Journeys,
    s: &mut Session,
    ev: &Event,
    currency: usize,
    order_id: Option<u64>,
) -> Step {
    let site = usize::from(s.site);
    let journeys = &all.sites[site];
    let tp = journeys.classify(&ev.kind);
    s.first_ms = s.first_ms.min(ev.event_time_ms);
    s.last_ms = s.last_ms.max(ev.event_time_ms);

    let slots = journeys.slots();
    let mut reached: [Range<u8>; MAX_SITE_JOURNEYS] = Default::default();
    let mut friction = [None; MAX_SITE_JOURNEYS];
    let had_cart = s.has_cart();
    let mut has_cart = had_cart;
    for (slot, journey) in journeys.slots.iter().enumerate() {
        let was = s.progress(slot, journey.ordered);
        let mark = tp.marks[slot];
        let now = reach(journey, was, mark.stage, ev.event_time_ms, s.first_ms);
        if now != was {
            s.set_progress(slot, now, journey.ordered);
        }
        has_cart |= journey.opens_cart(now.reached);
        reached[slot] = was.reached..now.reached.max(was.reached);
        // In a journey the session has entered (an ordered one it has not counts nothing).
        friction[slot] = mark
            .friction
            .filter(|_| now.reached > 0)
            .map(|kind| (now.reached - 1, kind));
    }

    if has_cart && !had_cart {
        s.set_cart();
    }

    // What a drop-off is diagnosed by: the last touchpoint and friction received.
    s.last_touchpoint = tp.label as u8;
    if let Some(kind) = tp.friction {
        s.last_friction = kind + 1;
    }

    let micros = ev.value.map(to_micros).unwrap_or(0);
    match tp.cart {
        CartEffect::Add => s.add_to_cart(currency as u16, micros),
        CartEffect::Remove => s.add_to_cart(currency as u16, -micros),
        CartEffect::None => {}
    }
    let mut order = None;
    if tp.order {
        // An order id counts once per session id within the dedup horizon (the caller marks
        // those its closed sessions counted); an order without one always counts. Either way
        // the session bought.
        let first_time = order_id.is_none_or(|id| s.insert_order(id));
        s.set_ordered();
        order = first_time.then(|| counted(ev, currency));
    }
    Step {
        site,
        channel: s.channel,
        device: s.device,
        slots,
        reached,
        seconds: (ev.event_time_ms - s.first_ms).max(0) as f64 / 1000.0,
        phase: phase(journeys, tp, s.furthest()),
        touchpoint: tp.label,
        friction,
        order,
        cart_opened: has_cart && !had_cart,
    }
}

/// Progress in `journey` after an event at `time_ms` that marks `stage`, in a session whose
/// earliest event is at `first_ms` (CONTRACT.md section 2, as the README extends it).
/// `any`: every event puts the session at the first stage; then the furthest stage any event
/// marks, and every stage before it. `ordered`: an event of the first stage enters the journey
/// (any event, at the session's earliest, when the first stage names no touchpoint); then a
/// stage counts only as the next one, at or after the latest event of the stage before it and,
/// when the stage has a window, within it.
#[inline(always)]
fn reach(
    journey: &Journey,
    was: Progress,
    stage: Option<u8>,
    time_ms: i64,
    first_ms: i64,
) -> Progress {
    if !journey.ordered {
        let reached = was.reached.max(stage.unwrap_or(0) + 1);
        return Progress { reached, ..was };
    }
    let mut now = was;
    if now.reached == 0 {
        let at_ms = match stage {
            Some(0) => time_ms,
            _ if journey.open_entry => first_ms,
            _ => return now,
        };
        now = Progress { reached: 1, at_ms };
    } else if stage == Some(now.reached - 1) && time_ms > now.at_ms {
        // The furthest step again, later: the next one's window runs from here.
        now.at_ms = time_ms;
    }
    if stage == Some(now.reached) {
        let gap = time_ms.saturating_sub(now.at_ms);
        let within = journey.stages[usize::from(now.reached)].within_ms;
        if gap >= 0 && within.is_none_or(|w| gap <= w) {
            now = Progress {
                reached: now.reached + 1,
                at_ms: time_ms,
            };
        }
    }
    now
}

/// What a new event of a closed session counts (its touchpoint, friction and order, once per
/// order id); the session's stages, cart and visit were counted when it closed and stay so.
pub fn late(
    all: &Journeys,
    r: &mut ClosedSession,
    ev: &Event,
    currency: usize,
    order_id: Option<u64>,
) -> Step {
    let site = usize::from(r.site);
    let tp = all.sites[site].classify(&ev.kind);
    r.first_ms = r.first_ms.min(ev.event_time_ms);
    r.last_ms = r.last_ms.max(ev.event_time_ms);
    let slots = all.sites[site].slots();
    let mut friction = [None; MAX_SITE_JOURNEYS];
    for (slot, f) in friction.iter_mut().enumerate().take(slots) {
        let reached = r.reached[slot];
        *f = (tp.marks[slot].friction)
            .filter(|_| reached > 0)
            .map(|kind| (reached - 1, kind));
    }
    let first_time = tp.order && order_id.is_none_or(|id| r.ids.insert(id));
    Step {
        site,
        channel: r.channel,
        device: r.device,
        slots,
        reached: Default::default(),
        seconds: 0.0,
        phase: phase(&all.sites[site], tp, usize::from(r.reached[0].max(1)) - 1),
        touchpoint: tp.label,
        friction,
        order: first_time.then(|| counted(ev, currency)),
        cart_opened: false,
    }
}

/// The phase a touchpoint counts under, for a session standing at stage `furthest` of its
/// site's main journey.
#[inline(always)]
fn phase(journeys: &SiteJourneys, tp: &Touchpoint, furthest: usize) -> usize {
    tp.phase
        .unwrap_or_else(|| journeys.slots[0].stages[furthest].phase)
}

/// An order counted for an event.
#[inline(always)]
fn counted(ev: &Event, currency: usize) -> Order {
    Order {
        currency,
        micros: ev.value.map(to_micros).unwrap_or(0),
        // The collector refuses negative values; another writer of the topic might not.
        value: ev.value.unwrap_or(0.0).max(0.0),
    }
}

/// What a session counts as when it closes.
#[derive(Debug)]
pub struct Closed<'a> {
    pub session: &'a Session,
    /// How many journeys its site runs.
    pub slots: usize,
    /// Per slot: its furthest stage, unless that is the journey's last one (never a drop-off)
    /// or it never entered the journey (a session restored into a journey added since).
    pub dropped_at: [Option<u8>; MAX_SITE_JOURNEYS],
    /// Per slot: the last friction kind the session met, plus one, if the journey counts that
    /// kind (else 0, as when it met none): what its drop-off there is diagnosed by.
    pub last_friction: [u8; MAX_SITE_JOURNEYS],
    /// Whether it leaves an abandoned cart (of value `session.cart_value()`).
    pub abandoned: bool,
}

/// The figures of a closing session.
#[inline]
pub fn closing<'a>(all: &Journeys, s: &'a Session) -> Closed<'a> {
    let site = &all.sites[usize::from(s.site)];
    let mut dropped_at = [None; MAX_SITE_JOURNEYS];
    let mut last_friction = [0; MAX_SITE_JOURNEYS];
    for (slot, journey) in site.slots.iter().enumerate() {
        let reached = s.reached(slot);
        let last = journey.stages.len();
        dropped_at[slot] = (reached > 0 && usize::from(reached) < last).then(|| reached - 1);
        last_friction[slot] = Some(s.last_friction)
            .filter(|&k| k > 0 && journey.counts_friction(k - 1))
            .unwrap_or(0);
    }
    Closed {
        session: s,
        slots: site.slots(),
        dropped_at,
        last_friction,
        abandoned: s.cart_open(),
    }
}
