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
/// `arrivals` with the given session timeout, every id within the dedup horizon. Per session id,
/// in arrival order:
/// - an event whose id the session id has seen (in its open session or in one closed) is a
///   duplicate and changes nothing, not even the last activity;
/// - else, with a session open: one less than a timeout after its last activity joins it (its
///   time may be earlier; the last activity is the latest time); one a timeout or more after
///   closes it, and is then taken as with no session open;
/// - else, with no session open: one less than a timeout after the last activity of the
///   session id's closed sessions is late: it counts its order (an order id counts once per
///   session id; an order without one always counts) and the late counter, and moves that last
///   activity, but opens no session and changes no stage, drop-off or cart; any other opens a
///   new session;
/// - a tick closes every open session whose last activity is a timeout or more before it.
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
        match &mut s.open {
            Some(open) => {
                open.last = open.last.max(e.ts);
                open.events.push(e);
            }
            None if s.closed_last.is_some_and(|last| e.ts < last + timeout_ms) => {
                f.late += 1;
                s.closed_last = s.closed_last.max(Some(e.ts));
                if is_order(e) && e.order_id.as_ref().is_none_or(|o| s.orders.insert(o)) {
                    f.count_order(e);
                }
            }
            None => {
                s.open = Some(Visit {
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
    /// The last activity of its closed sessions, if one closed.
    closed_last: Option<i64>,
}

struct Visit<'a> {
    last: i64,
    /// Its events (duplicates left out), in arrival order.
    events: Vec<&'a Event>,
}

impl SessionId<'_> {
    fn close(&mut self, f: &mut Figures) {
        if let Some(v) = self.open.take() {
            self.closed_last = self.closed_last.max(Some(v.last));
            f.add_closed(&v.events, &mut self.orders);
        }
    }
}

fn is_order(e: &Event) -> bool {
    matches!(e.kind.as_str(), "purchase" | "Order Completed")
}
