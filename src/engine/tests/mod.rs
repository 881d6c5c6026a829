//! Unit tests of the contract's funnel semantics, one rule at a time; `bounds` holds those of
//! the store's limits.

mod bounds;
mod figures;
mod journeys;
mod past;
mod snapshot;

use super::*;
use crate::event::{Channel, Device};
use crate::metrics::{Report, SiteReport};

const MIN: i64 = 60_000;

struct Fixture {
    engine: Engine,
    metrics: Arc<Metrics>,
    config: Config,
}

impl Fixture {
    fn new() -> Self {
        Self::of(Config::default())
    }

    fn of(config: Config) -> Self {
        let metrics = Arc::new(Metrics::new(&config));
        Self {
            engine: Engine::new(&config, metrics.clone()),
            metrics,
            config,
        }
    }

    fn ev(&self, session: &str, id: &str, kind: &str, t: i64) -> Event {
        Event {
            channel: Channel::Email,
            device: Device::Mobile,
            ..Event::new("demo", session, id, kind, t)
        }
    }

    fn apply(&self, session: &str, id: &str, kind: &str, t: i64) -> Outcome {
        self.engine.apply(&self.ev(session, id, kind, t))
    }

    fn apply_value(
        &self,
        session: &str,
        id: &str,
        kind: &str,
        value: f64,
        currency: Option<&str>,
        order: Option<&str>,
    ) {
        let mut e = self.ev(session, id, kind, 0);
        e.value = Some(value);
        e.currency = currency.map(String::from);
        e.order_id = order.map(String::from);
        self.engine.apply(&e);
    }

    fn report(&self) -> SiteReport {
        Report::new(&self.config, &self.metrics).sites.remove(0).1
    }

    fn reached(&self) -> Vec<u64> {
        self.report().reached.iter().map(|(_, n)| *n).collect()
    }

    fn dropoffs(&self) -> Vec<u64> {
        self.report().dropoffs.iter().map(|(_, n)| *n).collect()
    }
}

#[test]
fn reaching_a_stage_counts_every_stage_before_it() {
    let f = Fixture::new();
    f.apply("s", "1", "purchase", 0);
    assert_eq!(f.reached(), [1, 1, 1, 1, 1]);
    assert_eq!(
        f.metrics
            .funnel
            .reached(
                f.metrics.funnel.row(0, 0, 2),
                Channel::Email,
                Device::Mobile
            )
            .get(),
        1
    );
}

#[test]
fn events_outside_the_funnel_stand_at_the_first_stage() {
    let f = Fixture::new();
    f.apply("s", "1", "made_up_type", 0);
    f.apply("s", "2", "error", 0);
    assert_eq!(f.reached(), [1, 0, 0, 0, 0]);
    f.engine.close_all();
    assert_eq!(f.dropoffs(), [1, 0, 0, 0]);
    assert_eq!(
        f.metrics
            .funnel
            .friction(f.metrics.funnel.row(0, 0, 0), 0)
            .get(),
        1
    );
}

#[test]
fn furthest_stage_ignores_order_and_dropoff_is_counted_at_close() {
    let f = Fixture::new();
    f.apply("s", "1", "begin_checkout", 5 * MIN);
    f.apply("s", "2", "page_view", 0);
    f.apply("s", "3", "view_item", MIN);
    assert_eq!(f.reached(), [1, 1, 1, 1, 0]);
    assert_eq!(f.dropoffs(), [0, 0, 0, 0]);
    assert_eq!(
        f.metrics.funnel.active(f.metrics.funnel.row(0, 0, 3)).get(),
        1
    );
    f.engine.close_all();
    assert_eq!(f.dropoffs(), [0, 0, 0, 1]);
    assert_eq!(
        f.metrics.funnel.active(f.metrics.funnel.row(0, 0, 3)).get(),
        0
    );
}

#[test]
fn purchased_sessions_are_not_dropoffs() {
    let f = Fixture::new();
    f.apply("s", "1", "purchase", 0);
    f.engine.close_all();
    assert_eq!(f.dropoffs(), [0, 0, 0, 0]);
    assert_eq!(f.report().carts_abandoned, 0);
}

#[test]
fn duplicates_change_nothing() {
    let f = Fixture::new();
    assert_eq!(f.apply("s", "1", "add_to_cart", 0), Outcome::Applied);
    assert_eq!(
        f.apply("s", "1", "purchase", 0),
        Outcome::Filtered(FilterReason::Duplicate)
    );
    assert_eq!(f.reached(), [1, 1, 1, 0, 0]);
    assert_eq!(f.report().duplicates, 1);
    // The same id in another session is not a duplicate.
    assert_eq!(f.apply("t", "1", "page_view", 0), Outcome::Applied);
}

#[test]
fn abandoned_cart_value_is_adds_less_removes_never_below_zero() {
    let f = Fixture::new();
    f.apply_value("a", "1", "add_to_cart", 100.0, Some("PLN"), None);
    f.apply_value("a", "2", "Product Added", 29.99, Some("PLN"), None);
    f.apply_value("a", "3", "remove_from_cart", 100.0, Some("PLN"), None);
    f.apply_value("b", "1", "remove_from_cart", 50.0, None, None);
    f.apply_value("b", "2", "add_to_cart", 20.0, None, None);
    assert_eq!(f.metrics.funnel.carts_open(0).get(), 2);
    assert_eq!(f.metrics.funnel.carts_open_value(0, 2).micros(), 29_990_000);
    f.engine.close_all();
    let r = f.report();
    assert_eq!(r.carts_abandoned, 2);
    assert_eq!(r.carts_abandoned_value, [("PLN".to_string(), 29.99)]);
    assert_eq!(f.metrics.funnel.carts_open(0).get(), 0);
    for c in 0..5 {
        assert_eq!(f.metrics.funnel.carts_open_value(0, c).micros(), 0);
    }
}

#[test]
fn a_checkout_without_cart_event_is_an_abandoned_cart_of_value_zero() {
    let f = Fixture::new();
    f.apply("s", "1", "begin_checkout", 0);
    f.engine.close_all();
    let r = f.report();
    assert_eq!(r.carts_abandoned, 1);
    assert!(r.carts_abandoned_value.is_empty());
}

#[test]
fn orders_count_once_per_order_id_and_close_the_cart() {
    let f = Fixture::new();
    f.apply_value("s", "1", "add_to_cart", 10.0, Some("EUR"), None);
    f.apply_value("s", "2", "purchase", 10.0, Some("EUR"), Some("A-1"));
    f.apply_value("s", "3", "Order Completed", 10.0, Some("EUR"), Some("A-1"));
    f.apply_value("s", "4", "purchase", 5.5, Some("XYZ"), Some("A-2"));
    assert_eq!(f.metrics.funnel.carts_open(0).get(), 0);
    f.engine.close_all();
    let r = f.report();
    assert_eq!(r.orders, 2);
    assert_eq!(
        r.revenue,
        [("EUR".to_string(), 10.0), ("other".to_string(), 5.5)]
    );
    assert_eq!(r.carts_abandoned, 0);
}

/// The collector's largest value, 1e12 units, in micro-units.
const LARGEST: i128 = 1_000_000_000_000_000_000;

#[test]
fn the_largest_values_never_wrap_shrink_or_turn_money_negative() {
    let f = Fixture::new();
    let (m, pln) = (&f.metrics.funnel, 2);
    let add = |s: &str, id: &str| f.apply_value(s, id, "add_to_cart", 1e12, Some("PLN"), None);
    // Ten carts of the largest value: 1e13 units in all, past one i64 of micro-units.
    for s in 0..10 {
        add(&format!("c{s}"), "1");
    }
    assert_eq!(m.carts_open_value(0, pln).micros(), 10 * LARGEST);
    // One cart filled twenty times over stops at i64::MAX micro-units.
    for i in 0..20 {
        add("big", &i.to_string());
    }
    let open = 10 * LARGEST + i128::from(i64::MAX);
    assert_eq!(m.carts_open_value(0, pln).micros(), open);
    // Twenty-five orders of the largest value in one session: revenue is exact all the way,
    // past u64::MAX micro-units (where it once stopped, after the nineteenth).
    let revenue = || i128::try_from(m.revenue(0, pln).micros()).unwrap();
    for i in 1..=25 {
        let order = format!("A-{i}");
        f.apply_value("buyer", &order, "purchase", 1e12, Some("PLN"), Some(&order));
        assert_eq!(revenue(), i * LARGEST);
    }
    assert!(revenue() > i128::from(u64::MAX));
    // Exposed in currency units; the order value histogram sums in floating point, which
    // cannot wrap either.
    let text = f.metrics.encode();
    for name in ["touchstream_revenue_total", "touchstream_order_value_sum"] {
        let line = format!("{name}{{site=\"demo\",currency=\"PLN\"}} 25000000000000.0\n");
        assert!(text.contains(&line), "{line} not in {text}");
    }
    // A negative value (the collector refuses it; another writer of the topic might not)
    // counts as zero: the order value histogram's sum does not go down.
    f.apply_value("buyer", "neg", "purchase", -5.0, Some("EUR"), Some("A-neg"));
    let sum = "touchstream_order_value_sum{site=\"demo\",currency=\"EUR\"} 0.0";
    assert!(f.metrics.encode().contains(sum), "{}", f.metrics.encode());
    f.engine.close_all();
    assert_eq!(m.carts_open_value(0, pln).micros(), 0);
    // 11 abandoned carts worth more than u64::MAX micro-units, counted exactly.
    let abandoned = m.carts_abandoned_value(0, pln).micros();
    assert_eq!(i128::try_from(abandoned).unwrap(), open);
    assert!(abandoned > u128::from(u64::MAX));
}

#[test]
fn a_gap_of_the_session_timeout_starts_a_new_session() {
    let f = Fixture::new();
    f.apply("s", "1", "add_to_cart", 0);
    f.apply("s", "2", "page_view", 29 * MIN);
    f.apply("s", "3", "page_view", 59 * MIN);
    assert_eq!(f.reached(), [2, 1, 1, 0, 0]);
    assert_eq!(f.report().carts_abandoned, 1);
    assert_eq!(f.engine.open_sessions(), 1);
}

#[test]
fn sweep_closes_only_idle_sessions() {
    let f = Fixture::new();
    f.apply("old", "1", "view_item", 0);
    f.apply("new", "1", "page_view", 20 * MIN);
    assert_eq!(f.engine.sweep(30 * MIN - 1), 0);
    assert_eq!(f.engine.sweep(30 * MIN), 1);
    assert_eq!(f.dropoffs(), [0, 1, 0, 0]);
    assert_eq!(f.engine.open_sessions(), 1);
    assert_eq!(f.metrics.engine.open_sessions.get(), 1);
}

#[test]
fn touchpoints_count_under_their_phase() {
    let f = Fixture::new();
    let j = f.engine.journeys();
    f.apply("s", "1", "view_item", 0);
    f.apply("s", "2", "rage_click", 0);
    f.apply("s", "3", "review", 0);
    let label = |t: &str| j.touchpoints.iter().position(|x| x == t).unwrap();
    assert_eq!(
        f.metrics.funnel.touchpoint(0, 1, label("view_item")).get(),
        1
    );
    assert_eq!(
        f.metrics.funnel.touchpoint(0, 1, label("rage_click")).get(),
        1
    );
    assert_eq!(
        f.metrics
            .funnel
            .touchpoint(0, j.post_purchase_phase(), label("review"))
            .get(),
        1
    );
    assert_eq!(
        f.metrics
            .funnel
            .friction(f.metrics.funnel.row(0, 0, 1), 3)
            .get(),
        1
    );
}

#[test]
fn unknown_sites_are_counted_not_applied() {
    let f = Fixture::new();
    let mut e = f.ev("s", "1", "page_view", 0);
    e.site = "other-shop".into();
    assert_eq!(f.engine.apply(&e), Outcome::UnknownSite);
    assert_eq!(f.metrics.engine.unknown_site.get(), 1);
    assert_eq!(f.engine.open_sessions(), 0);
}

#[test]
fn silent_rebuild_restores_state_and_gauges_without_counting() {
    let f = Fixture::new();
    let mut cart = f.ev("s", "1", "add_to_cart", 0);
    cart.value = Some(10.0);
    f.engine.apply_into(&cart, &Silent);
    f.engine
        .apply_into(&f.ev("t", "1", "page_view", 0), &Silent);
    f.engine.sweep_into(31 * MIN, &Silent);
    f.engine
        .apply_into(&f.ev("s", "2", "view_item", 40 * MIN), &Silent);
    assert_eq!(f.reached(), [0, 0, 0, 0, 0]);
    assert_eq!(f.report().carts_abandoned, 0);
    assert_eq!(
        f.metrics.funnel.active(f.metrics.funnel.row(0, 0, 1)).get(),
        1
    );
    assert_eq!(f.metrics.engine.applied.get(), 0);
    // The silent sweep closed the first `s`; the rebuilt second one knows it reached
    // product_view, so a purchase now counts only the stages after it.
    let mut buy = f.ev("s", "3", "purchase", 41 * MIN);
    (buy.value, buy.order_id) = (Some(10.0), Some("o".into()));
    f.engine.apply(&buy);
    assert_eq!(f.reached(), [0, 0, 1, 1, 1]);
    assert_eq!(f.report().orders, 1);
    assert_eq!(f.engine.release(), 1);
    assert_eq!(
        f.metrics.funnel.active(f.metrics.funnel.row(0, 0, 4)).get(),
        0
    );
    assert_eq!(f.metrics.engine.open_sessions.get(), 0);
    assert_eq!(f.dropoffs(), [0, 0, 0, 0]);
}
