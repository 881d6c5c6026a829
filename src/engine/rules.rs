//! The funnel rules (CONTRACT.md section 2): what one new event does to its session, and what a
//! closing session counts as. They change the session and state what happened; they write no
//! metric, so the same rules serve counting and rebuilding alike (see `record`).

use super::past::Closed as ClosedSession;
use super::session::Session;
use crate::event::{Channel, Event};
use crate::journey::{CartEffect, Journey, Kind, Touchpoint};
use crate::metrics::money::to_micros;
use std::ops::Range;

/// What one new (not duplicate) event did to its session.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub site: usize,
    pub channel: Channel,
    pub device: crate::event::Device,
    /// Stages reached for the first time (empty when the session had been there already).
    pub reached: Range<usize>,
    /// Seconds from the session's start to this event.
    pub seconds: f64,
    /// The phase and touchpoint label it counts under.
    pub phase: usize,
    pub touchpoint: usize,
    /// `(stage where the session stands, kind)` of a friction touchpoint.
    pub friction: Option<(usize, usize)>,
    /// An order counted for the first time in this session.
    pub order: Option<Order>,
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
    j: &Journey,
    s: &mut Session,
    ev: &Event,
    currency: usize,
    order_id: Option<u64>,
) -> Step {
    let tp = j.classify(&ev.kind);
    s.first_ms = s.first_ms.min(ev.event_time_ms);
    s.last_ms = s.last_ms.max(ev.event_time_ms);

    // Reaching a stage counts every stage before it, whatever the order events arrive in.
    let target = tp.stage.unwrap_or(0);
    let before = usize::from(s.reached);
    let reached = if target >= before {
        s.reached = (target + 1) as u8;
        before..target + 1
    } else {
        before..before
    };

    let (phase, friction) = placed(j, &tp, s.furthest());

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
        s.ordered = true;
        order = first_time.then(|| counted(ev, currency));
    }
    Step {
        site: usize::from(s.site),
        channel: s.channel,
        device: s.device,
        reached,
        seconds: (ev.event_time_ms - s.first_ms).max(0) as f64 / 1000.0,
        phase,
        touchpoint: tp.label,
        friction,
        order,
    }
}

/// What a new event of a closed session counts (its touchpoint, friction and order, once per
/// order id); the session's stages, cart and visit were counted when it closed and stay so.
pub fn late(
    j: &Journey,
    r: &mut ClosedSession,
    ev: &Event,
    currency: usize,
    order_id: Option<u64>,
) -> Step {
    let tp = j.classify(&ev.kind);
    r.first_ms = r.first_ms.min(ev.event_time_ms);
    r.last_ms = r.last_ms.max(ev.event_time_ms);
    let (phase, friction) = placed(j, &tp, usize::from(r.reached.max(1)) - 1);
    let first_time = tp.order && order_id.is_none_or(|id| r.ids.insert(id));
    Step {
        site: usize::from(r.site),
        channel: r.channel,
        device: r.device,
        reached: 0..0,
        seconds: 0.0,
        phase,
        touchpoint: tp.label,
        friction,
        order: first_time.then(|| counted(ev, currency)),
    }
}

/// The phase a touchpoint counts under, and its friction `(stage, kind)` if it is one, for a
/// session standing at stage `furthest`.
#[inline(always)]
fn placed(j: &Journey, tp: &Touchpoint, furthest: usize) -> (usize, Option<(usize, usize)>) {
    let phase = match tp.kind {
        Kind::Funnel => j.stages[tp.stage.unwrap_or(0)].phase,
        Kind::PostPurchase => j.post_purchase_phase(),
        Kind::Friction(_) | Kind::Other => j.stages[furthest].phase,
    };
    let friction = match tp.kind {
        Kind::Friction(kind) => Some((furthest, kind)),
        _ => None,
    };
    (phase, friction)
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
    /// Its furthest stage, unless that is the last one (which is never a drop-off).
    pub dropped_at: Option<usize>,
    /// Whether it leaves an abandoned cart (of value `session.cart_value()`).
    pub abandoned: bool,
}

/// The figures of a closing session.
#[inline]
pub fn closing<'a>(j: &Journey, s: &'a Session) -> Closed<'a> {
    let furthest = s.furthest();
    Closed {
        session: s,
        dropped_at: (furthest + 1 < j.stages.len()).then_some(furthest),
        abandoned: s.cart_open(j.cart_stage),
    }
}
