//! An independent model of the contract's funnel figures (CONTRACT.md section 2), written from
//! the contract's text and sharing no code with touchstream: each session's complete event list
//! in, the figures touchstream must report out. The load generator checks `/metrics` against it,
//! and touchstream's own tests check the engine and the replay report against it.

mod arrival;

pub use arrival::{Arrival, figures_in_arrival_order};
use std::collections::{BTreeMap, HashSet};

/// The default journey's stages, in funnel order.
pub const STAGES: [&str; 5] = [
    "visit",
    "product_view",
    "add_to_cart",
    "checkout",
    "purchase",
];

/// The default site's currencies; any other code counts as `other`.
pub const CURRENCIES: [&str; 4] = ["USD", "EUR", "PLN", "GBP"];

/// Stage of a touchpoint type in the default journey map (GA4 names and Segment aliases).
pub fn stage_of(kind: &str) -> Option<usize> {
    Some(match kind {
        "page_view" | "session_start" => 0,
        "view_item"
        | "view_item_list"
        | "select_item"
        | "search"
        | "Product Viewed"
        | "Product List Viewed"
        | "Products Searched" => 1,
        "add_to_cart" | "view_cart" | "Product Added" | "Cart Viewed" => 2,
        "begin_checkout"
        | "add_shipping_info"
        | "add_payment_info"
        | "Checkout Started"
        | "Payment Info Entered" => 3,
        "purchase" | "Order Completed" => 4,
        _ => return None,
    })
}

/// One event as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub session: String,
    pub id: String,
    pub kind: String,
    pub ts: i64,
    pub value: Option<f64>,
    pub currency: Option<String>,
    pub order_id: Option<String>,
}

/// Amounts per currency, in micro-units (millionths), as touchstream keeps money.
pub type Money = BTreeMap<String, i64>;

/// An amount in micro-units.
pub fn micros(value: f64) -> i64 {
    (value * 1e6).round() as i64
}

/// The figures of one site.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    pub reached: [u64; 5],
    pub dropoffs: [u64; 4],
    pub carts_abandoned: u64,
    /// Only currencies with a non-zero amount.
    pub carts_abandoned_value: Money,
    pub orders: u64,
    /// Only currencies with a non-zero amount.
    pub revenue: Money,
    pub duplicates: u64,
    /// New events of a session that had closed, counted against it.
    pub late: u64,
}

fn currency(c: &Option<String>) -> String {
    match c.as_deref().map(str::to_ascii_uppercase) {
        None => CURRENCIES[0].into(),
        Some(c) if CURRENCIES.contains(&c.as_str()) => c,
        Some(_) => "other".into(),
    }
}

/// The contract's figures for `events` arriving in time order (any sessions), with the given
/// session timeout: [`figures_in_arrival_order`] of the events stably sorted by time, no clock.
pub fn figures(events: &[Event], timeout_ms: i64) -> Figures {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.ts);
    let arrivals: Vec<Arrival> = sorted.into_iter().cloned().map(Arrival::Event).collect();
    figures_in_arrival_order(&arrivals, timeout_ms)
}

impl Figures {
    /// Adds one whole session of a session id seen once (its events, duplicates included).
    pub fn add_session(&mut self, all: &[&Event]) {
        let mut seen = HashSet::new();
        let mut events = Vec::new();
        for e in all {
            if seen.insert(e.id.as_str()) {
                events.push(*e);
            } else {
                self.duplicates += 1;
            }
        }
        self.add_closed(&events, Some(&mut HashSet::new()));
    }

    /// Adds one closed session (its events, duplicates left out), counting each order id not
    /// in `orders` (the session id's counted orders) once; `None` when its orders were counted
    /// as they arrived.
    pub(crate) fn add_closed<'a>(
        &mut self,
        events: &[&'a Event],
        mut orders: Option<&mut HashSet<&'a String>>,
    ) {
        let furthest = events
            .iter()
            .filter_map(|e| stage_of(&e.kind))
            .max()
            .unwrap_or(0);
        for r in &mut self.reached[..=furthest] {
            *r += 1;
        }
        if furthest < 4 {
            self.dropoffs[furthest] += 1;
        }
        let mut ordered = false;
        let mut cart = Money::new();
        for e in events {
            let amount = micros(e.value.unwrap_or(0.0));
            match e.kind.as_str() {
                "add_to_cart" | "Product Added" => {
                    *cart.entry(currency(&e.currency)).or_default() += amount
                }
                "remove_from_cart" | "Product Removed" => {
                    *cart.entry(currency(&e.currency)).or_default() -= amount
                }
                "purchase" | "Order Completed" => {
                    // Bought, even when the order was counted already (a re-sent confirmation).
                    ordered = true;
                    if let Some(orders) = orders.as_mut()
                        && e.order_id.as_ref().is_none_or(|o| orders.insert(o))
                    {
                        self.count_order(e);
                    }
                }
                _ => {}
            }
        }
        if furthest >= 2 && !ordered {
            self.carts_abandoned += 1;
            for (c, v) in cart {
                add(&mut self.carts_abandoned_value, &c, v.max(0));
            }
        }
    }

    pub(crate) fn count_order(&mut self, e: &Event) {
        self.orders += 1;
        add(
            &mut self.revenue,
            &currency(&e.currency),
            micros(e.value.unwrap_or(0.0)),
        );
    }

    /// Adds another set of figures to these.
    pub fn merge(&mut self, other: &Figures) {
        for (a, b) in self.reached.iter_mut().zip(other.reached) {
            *a += b;
        }
        for (a, b) in self.dropoffs.iter_mut().zip(other.dropoffs) {
            *a += b;
        }
        self.carts_abandoned += other.carts_abandoned;
        self.orders += other.orders;
        self.duplicates += other.duplicates;
        self.late += other.late;
        for (c, v) in &other.carts_abandoned_value {
            add(&mut self.carts_abandoned_value, c, *v);
        }
        for (c, v) in &other.revenue {
            add(&mut self.revenue, c, *v);
        }
    }

    /// What happened between `before` and `self` (two readings of the same counters).
    pub fn since(&self, before: &Figures) -> Figures {
        let money = |now: &Money, then: &Money| -> Money {
            let mut m = now.clone();
            for (c, v) in then {
                add(&mut m, c, -v);
            }
            m.retain(|_, v| *v != 0);
            m
        };
        Figures {
            reached: std::array::from_fn(|i| self.reached[i] - before.reached[i]),
            dropoffs: std::array::from_fn(|i| self.dropoffs[i] - before.dropoffs[i]),
            carts_abandoned: self.carts_abandoned - before.carts_abandoned,
            carts_abandoned_value: money(
                &self.carts_abandoned_value,
                &before.carts_abandoned_value,
            ),
            orders: self.orders - before.orders,
            revenue: money(&self.revenue, &before.revenue),
            duplicates: self.duplicates - before.duplicates,
            late: self.late - before.late,
        }
    }

    /// Every figure in which `self` (what touchstream reports) differs from `expected`, as
    /// `name: actual X, expected Y` lines; empty when they agree.
    pub fn differences(&self, expected: &Figures) -> Vec<String> {
        let mut out = Vec::new();
        let mut count = |name: String, actual: u64, expected: u64| {
            if actual != expected {
                out.push(format!("{name}: actual {actual}, expected {expected}"));
            }
        };
        for (i, stage) in STAGES.iter().enumerate() {
            count(
                format!("reached {stage}"),
                self.reached[i],
                expected.reached[i],
            );
            if i < 4 {
                count(
                    format!("dropoffs {stage}"),
                    self.dropoffs[i],
                    expected.dropoffs[i],
                );
            }
        }
        count(
            "carts abandoned".into(),
            self.carts_abandoned,
            expected.carts_abandoned,
        );
        count("orders".into(), self.orders, expected.orders);
        count("duplicates".into(), self.duplicates, expected.duplicates);
        count("late events".into(), self.late, expected.late);
        for (name, actual, expected) in [
            (
                "abandoned cart value",
                &self.carts_abandoned_value,
                &expected.carts_abandoned_value,
            ),
            ("revenue", &self.revenue, &expected.revenue),
        ] {
            let currencies: std::collections::BTreeSet<&String> =
                actual.keys().chain(expected.keys()).collect();
            for c in currencies {
                let (a, e) = (
                    actual.get(c).copied().unwrap_or(0),
                    expected.get(c).copied().unwrap_or(0),
                );
                if a != e {
                    out.push(format!(
                        "{name} {c}: actual {}, expected {}",
                        a as f64 / 1e6,
                        e as f64 / 1e6
                    ));
                }
            }
        }
        out
    }
}

fn add(money: &mut Money, currency: &str, amount: i64) {
    if amount != 0 {
        *money.entry(currency.to_string()).or_default() += amount;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(session: &str, id: &str, kind: &str, ts: i64, value: Option<f64>) -> Event {
        Event {
            session: session.into(),
            id: id.into(),
            kind: kind.into(),
            ts,
            value,
            currency: Some("EUR".into()),
            order_id: None,
        }
    }

    #[test]
    fn a_duplicate_does_not_keep_a_session_open() {
        // Found by fuzzing the engine: the repeat of `1`, 40 s later, changes nothing; the
        // one 70 s after the first is a duplicate too (the dedup horizon), not a new session.
        let events = [
            ev("a", "1", "add_to_cart", 0, Some(1.0)),
            ev("a", "1", "add_to_cart", 40_000, Some(1.0)),
            ev("a", "1", "add_to_cart", 70_000, Some(1.0)),
        ];
        let f = figures(&events, 60_000);
        assert_eq!((f.reached[0], f.duplicates, f.carts_abandoned), (1, 2, 1));
    }

    #[test]
    fn a_session_walks_the_contract_rules() {
        let events = [
            ev("a", "1", "page_view", 0, None),
            ev("a", "2", "add_to_cart", 1, Some(10.5)),
            ev("a", "2", "add_to_cart", 2, Some(10.5)),
            ev("a", "3", "remove_from_cart", 3, Some(20.0)),
            ev("b", "1", "purchase", 0, Some(5.25)),
            // 30 minutes later: a new session of the same id, which only visits.
            ev("b", "9", "page_view", 1_800_000, None),
        ];
        let f = figures(&events, 1_800_000);
        assert_eq!(f.reached, [3, 2, 2, 1, 1]);
        assert_eq!(f.dropoffs, [1, 0, 1, 0]);
        assert_eq!(f.carts_abandoned, 1);
        assert!(f.carts_abandoned_value.is_empty(), "never below zero");
        assert_eq!(f.revenue, Money::from([("EUR".into(), 5_250_000)]));
        assert_eq!(f.duplicates, 1);
        let mut other = f.clone();
        other.orders += 1;
        assert_eq!(other.differences(&f), ["orders: actual 2, expected 1"]);
    }
}
