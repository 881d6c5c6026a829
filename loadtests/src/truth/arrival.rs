//! The model in arrival order: per session id, which session an event joins, which it closes,
//! and which events are duplicates or late (CONTRACT.md section 2).

use super::{Event, Figures};
use std::collections::{BTreeMap, HashSet};

/// What reaches the engine, in arrival order: an event, or the clock (the sweep) reaching a
/// time, which closes every session whose last event is at least a timeout before it.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    Event(Event),
    Tick(i64),
}

/// The contract's figures (CONTRACT.md section 2, "Sessions, duplicates and late events") for
/// `arrivals` with the given session timeout, every id within the dedup horizon and no session
/// at its event limit. A session's window is the times less than a timeout from its events
/// (after its first less a timeout, before its last plus a timeout). Per session id, in arrival
/// order:
/// - an event whose id the session id has seen (in its open session or in one closed) is a
///   duplicate and changes nothing, not even the session's times;
/// - else, with a session open: one a timeout or more after its last event closes it and is
///   then taken as with no session open; one a timeout or more before its first event is late
///   if one of the session id's closed sessions has it in its window; any other joins it;
/// - else, with no session open: one in the window of one of the session id's closed sessions
///   is late; any other opens a new session;
/// - a late event goes to the last closed session whose window has it, widens that session's
///   times, counts its order (an order id counts once per session id; an order without one
///   always counts) and the late counter, and opens no session and changes no stage, drop-off
///   or cart;
/// - a tick closes every open session whose last event is a timeout or more before it.
///
/// A closed session counts its furthest stage and every one before it, a drop-off at the
/// furthest unless it is the last stage, and an abandoned cart (its value, never below zero)
/// when it reached the cart stage without an order.
pub fn figures_in_arrival_order(arrivals: &[Arrival], timeout_ms: i64) -> Figures {
    let mut f = Figures::default();
    let mut ids: BTreeMap<&str, SessionId<'_>> = BTreeMap::new();
    for a in arrivals {
        let e = match a {
            Arrival::Tick(now) => {
                for s in ids.values_mut() {
                    if s.open.as_ref().is_some_and(|o| o.last + timeout_ms <= *now) {
                        s.close(&mut f);
                    }
                }
                continue;
            }
            Arrival::Event(e) => e,
        };
        let s = ids.entry(&e.session).or_default();
        if !s.seen.insert(&e.id) {
            f.duplicates += 1;
            continue;
        }
        if s.open.as_ref().is_some_and(|o| e.ts >= o.last + timeout_ms) {
            s.close(&mut f);
        }
        let before_open = s.open.as_ref().is_none_or(|o| e.ts <= o.first - timeout_ms);
        let window = |c: &&mut (i64, i64)| e.ts > c.0 - timeout_ms && e.ts < c.1 + timeout_ms;
        if before_open && let Some(c) = s.closed.iter_mut().rev().find(window) {
            (c.0, c.1) = (c.0.min(e.ts), c.1.max(e.ts));
            f.late += 1;
            if is_order(e) && e.order_id.as_ref().is_none_or(|o| s.orders.insert(o)) {
                f.count_order(e);
            }
            continue;
        }
        // An order counts as it arrives, once per session id.
        if is_order(e) && e.order_id.as_ref().is_none_or(|o| s.orders.insert(o)) {
            f.count_order(e);
        }
        match &mut s.open {
            Some(open) => {
                (open.first, open.last) = (open.first.min(e.ts), open.last.max(e.ts));
                open.events.push(e);
            }
            None => {
                s.open = Some(Visit {
                    first: e.ts,
                    last: e.ts,
                    events: vec![e],
                })
            }
        }
    }
    for s in ids.values_mut() {
        s.close(&mut f);
    }
    f
}

/// One session id's state in the model.
#[derive(Default)]
struct SessionId<'a> {
    seen: HashSet<&'a str>,
    /// Order ids counted, in any of its sessions.
    orders: HashSet<&'a String>,
    open: Option<Visit<'a>>,
    /// Its closed sessions' first and last event times, in closing order.
    closed: Vec<(i64, i64)>,
}

struct Visit<'a> {
    first: i64,
    last: i64,
    /// Its events (duplicates left out), in arrival order.
    events: Vec<&'a Event>,
}

impl SessionId<'_> {
    fn close(&mut self, f: &mut Figures) {
        if let Some(v) = self.open.take() {
            self.closed.push((v.first, v.last));
            f.add_closed(&v.events, None);
        }
    }
}

fn is_order(e: &Event) -> bool {
    matches!(e.kind.as_str(), "purchase" | "Order Completed")
}
