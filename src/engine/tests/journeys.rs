//! Several journeys on one site, and ordered journeys: each journey's funnel on its own, money
//! and carts once per session.

use super::*;
use crate::config::{JourneyConfig, JourneyMode, StageConfig};

fn stage(name: &str, touchpoints: &[&str], within: Option<i64>) -> StageConfig {
    StageConfig {
        name: name.into(),
        phase: "p".into(),
        touchpoints: touchpoints.iter().map(|t| t.to_string()).collect(),
        within: within.map(|m| std::time::Duration::from_millis((m * MIN) as u64)),
    }
}

/// The default map as journey `shop`, and an ordered `express` journey over some of the same
/// touchpoints: view, cart within 10 minutes, purchase within 5.
fn two_journeys() -> Fixture {
    let mut c = Config::default();
    let express = JourneyConfig {
        name: "express".into(),
        mode: JourneyMode::Ordered,
        stages: vec![
            stage("view", &["view_item"], None),
            stage("cart", &["add_to_cart"], Some(10)),
            stage("bought", &["purchase"], Some(5)),
        ],
        cart_stage: "cart".into(),
        purchase_stage: "bought".into(),
        friction: vec!["payment_failed".into()],
        post_purchase: vec![],
        other_touchpoints: vec![],
        ..JourneyConfig::default()
    };
    let shop = JourneyConfig {
        name: "shop".into(),
        ..JourneyConfig::default()
    };
    c.journeys = vec![shop, express];
    c.validate().unwrap();
    Fixture::of(c)
}

impl Fixture {
    /// `(reached, drop-offs)` of the site's journey in slot 1.
    fn second(&self) -> (Vec<u64>, Vec<u64>) {
        let r = self.report();
        let (_, reached, dropoffs) = &r.journeys[0];
        let counts = |v: &Vec<(String, u64)>| v.iter().map(|(_, n)| *n).collect();
        (counts(reached), counts(dropoffs))
    }
}

#[test]
fn each_journey_counts_its_own_funnel_and_money_counts_once() {
    let f = two_journeys();
    // In order and in time: both journeys to the end.
    f.apply("a", "1", "view_item", 0);
    f.apply("a", "2", "add_to_cart", MIN);
    f.apply("a", "3", "purchase", 2 * MIN);
    // Cart first: every event enters a journey at its first stage, so the cart is the next
    // step, at once; the view after it changes nothing.
    f.apply("b", "1", "add_to_cart", 0);
    f.apply("b", "2", "view_item", MIN);
    // A purchase 20 minutes after the cart: past `express`'s window, an order all the same.
    f.apply("c", "1", "view_item", 0);
    f.apply("c", "2", "add_to_cart", MIN);
    f.apply("c", "3", "payment_failed", 2 * MIN);
    f.apply("c", "4", "purchase", 21 * MIN);
    f.engine.close_all();
    assert_eq!(f.reached(), [3, 3, 3, 2, 2]);
    assert_eq!(f.dropoffs(), [0, 0, 1, 0]);
    assert_eq!(f.second(), (vec![3, 3, 1], vec![0, 2]));
    let r = f.report();
    assert_eq!((r.orders, r.carts_abandoned), (2, 1), "once per session");
    // Friction counts in each journey that names it, at the stage the session stood at.
    let m = &f.metrics.funnel;
    assert_eq!(m.friction(m.row(0, 0, 2), 1).get(), 1, "shop: add_to_cart");
    let kind = f
        .engine
        .journeys()
        .friction
        .iter()
        .position(|k| k == "payment_failed");
    assert_eq!(
        m.friction(m.row(0, 1, 1), kind.unwrap()).get(),
        1,
        "express: cart"
    );
    // Every open-session gauge is back to zero.
    for slot in 0..2 {
        for stage in 0..f.engine.journeys().of(0, slot).stages.len() {
            assert_eq!(m.active(m.row(0, slot, stage)).get(), 0);
        }
    }
    let text = f.metrics.encode();
    let line = r#"touchstream_funnel_sessions_total{site="demo",journey="express",stage="bought",channel="email",device="mobile"} 1"#;
    assert!(text.contains(line), "{text}");
}

#[test]
fn an_ordered_journey_counts_a_step_only_after_the_one_before_and_within_its_window() {
    let f = two_journeys();
    // The cart arrives after the view but happened before it, by event time: no step.
    f.apply("late", "1", "view_item", 5 * MIN);
    f.apply("late", "2", "add_to_cart", 4 * MIN);
    // A skipped step: a purchase straight after the view is not `bought`.
    f.apply("skip", "1", "view_item", 0);
    f.apply("skip", "2", "purchase", MIN);
    // Exactly at the window's end counts; a repeated step changes nothing.
    f.apply("edge", "1", "page_view", 0);
    f.apply("edge", "2", "add_to_cart", 10 * MIN);
    f.apply("edge", "3", "add_to_cart", 11 * MIN);
    f.apply("edge", "4", "purchase", 15 * MIN);
    assert_eq!(f.second().0, [3, 1, 1]);
    // Open sessions stand where they got to.
    let m = &f.metrics.funnel;
    let active: Vec<i64> = (0..3).map(|s| m.active(m.row(0, 1, s)).get()).collect();
    assert_eq!(active, [2, 0, 1]);
}

#[test]
fn a_restore_keeps_each_journeys_progress_and_the_step_time() {
    let f = two_journeys();
    f.apply("s", "1", "view_item", 0);
    f.apply("s", "2", "add_to_cart", 3 * MIN);
    let state = f.engine.snapshot();
    let p = &state.sessions[0].progress;
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!((p[1].journey, p[1].reached, p[1].at_ms), (1, 2, 3 * MIN));
    let metrics = Arc::new(Metrics::new(&f.config));
    let bounds = Arc::new(Bounds::new(&f.config.engine));
    let (engine, report) = Engine::restore(&f.config, metrics.clone(), bounds, &state).unwrap();
    assert_eq!((report.sessions, report.journey_dropped), (1, 0));
    // Within 5 minutes of the restored cart time: `bought`.
    let purchase = Event {
        channel: Channel::Email,
        device: Device::Mobile,
        ..Event::new("demo", "s", "3", "purchase", 8 * MIN)
    };
    engine.apply(&purchase);
    let m = &metrics.funnel;
    assert_eq!(m.reached_total(m.row(0, 1, 2)), 1);
    assert_eq!(m.active(m.row(0, 1, 2)).get(), 1);
    // Restored where the site no longer runs `express`: its progress is dropped, counted.
    let mut one = f.config.clone();
    one.sites[0].journeys = vec!["shop".into()];
    let metrics = Arc::new(Metrics::new(&one));
    let bounds = Arc::new(Bounds::new(&one.engine));
    let (_, report) = Engine::restore(&one, metrics.clone(), bounds, &state).unwrap();
    assert_eq!((report.sessions, report.journey_dropped), (1, 1));
    assert_eq!(metrics.funnel.active(metrics.funnel.row(0, 0, 2)).get(), 1);
}

/// A purchase stage of the second journey alone is an order, and a cart stage of either opens
/// the cart: counted once whichever journeys see it.
#[test]
fn orders_and_carts_of_any_journey_count_once() {
    let f = two_journeys();
    f.apply("s", "1", "add_to_cart", 0);
    assert_eq!(f.metrics.funnel.carts_open(0).get(), 1);
    f.apply("s", "2", "purchase", MIN);
    assert_eq!(f.metrics.funnel.carts_open(0).get(), 0);
    f.engine.close_all();
    let r = f.report();
    assert_eq!((r.orders, r.carts_abandoned), (1, 0));
}
