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
        step_delay: None,
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
    // Cart first: `express` is entered by its view, after the cart, so the cart does not
    // count there.
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
    assert_eq!(f.second(), (vec![3, 2, 1], vec![1, 1]));
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
    // `replay --json`: the main journey in the contract's shape, the other under `journeys`.
    let json = Report::new(&f.config, &f.metrics).to_json();
    let site = &json["sites"]["demo"];
    assert_eq!(
        (site["journey"].as_str(), &site["reached"]["purchase"]),
        (Some("shop"), &2.into())
    );
    assert_eq!(site["journeys"]["express"]["reached"]["bought"], 1);
    assert_eq!(site["journeys"]["express"]["dropoffs"]["view"], 1);
    let table = Report::new(&f.config, &f.metrics).to_table();
    assert!(
        table.contains("express: stage") && table.contains("shop: stage"),
        "{table}"
    );
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
    // Exactly at the window's end counts; the cart again moves the next window's start, so
    // a purchase 6 minutes after the first cart but 5 after the second is `bought`.
    f.apply("edge", "1", "view_item", 0);
    f.apply("edge", "2", "add_to_cart", 10 * MIN);
    f.apply("edge", "3", "add_to_cart", 11 * MIN);
    f.apply("edge", "4", "purchase", 16 * MIN);
    // A minute past the cart's window.
    f.apply("slow", "1", "view_item", 0);
    f.apply("slow", "2", "add_to_cart", 11 * MIN);
    // Never entered: `express` starts with a product view.
    f.apply("none", "1", "page_view", 0);
    f.apply("none", "2", "add_to_cart", MIN);
    assert_eq!(f.second().0, [4, 1, 1]);
    // Open sessions stand where they got to; one never entered stands nowhere.
    let m = &f.metrics.funnel;
    let active: Vec<i64> = (0..3).map(|s| m.active(m.row(0, 1, s)).get()).collect();
    assert_eq!(active, [3, 0, 1]);
    f.engine.close_all();
    assert_eq!(
        f.second().1,
        [3, 0],
        "a session never entered drops off nowhere"
    );
}

/// An ordered journey whose first stage names no touchpoint is entered by any event, at the
/// session's earliest.
#[test]
fn an_ordered_journey_with_an_open_first_stage_is_entered_by_any_event() {
    let mut c = Config::default();
    c.journey.mode = JourneyMode::Ordered;
    c.journey.stages[0].touchpoints.clear();
    c.journey.stages[1].within = Some(std::time::Duration::from_secs(60));
    c.validate().unwrap();
    let f = Fixture::of(c);
    f.apply("s", "1", "add_to_cart", 2 * MIN);
    f.apply("s", "2", "view_item", 2 * MIN + 30_000);
    // A step exactly its window after the entry counts.
    f.apply("t", "1", "page_view", 5 * MIN);
    f.apply("t", "2", "view_item", 6 * MIN);
    assert_eq!(f.reached(), [2, 2, 0, 0, 0]);
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

/// A drop-off is diagnosed by the last touchpoint and the last friction received, in each
/// journey it drops off in; a restore keeps them.
#[test]
fn drop_offs_say_where_the_session_was_and_what_hurt_last() {
    let f = Fixture::new();
    for (session, kinds) in [
        ("paid", &["begin_checkout", "payment_failed"][..]),
        (
            "back",
            &["begin_checkout", "payment_failed", "view_item"][..],
        ),
        ("calm", &["begin_checkout", "add_payment_info"][..]),
    ] {
        for (i, kind) in kinds.iter().enumerate() {
            f.apply(session, &i.to_string(), kind, i as i64 * MIN);
        }
    }
    // Through a checkpoint: the last touchpoint and friction travel with the session.
    let state = f.engine.snapshot();
    let metrics = Arc::new(Metrics::new(&f.config));
    let bounds = Arc::new(Bounds::new(&f.config.engine));
    let (engine, _) = Engine::restore(&f.config, metrics.clone(), bounds, &state).unwrap();
    engine.close_all();
    let text = metrics.encode();
    let line = |family: &str, label: &str, value: &str, n: u32| {
        format!(
            r#"touchstream_funnel_dropoffs_last_{family}_total{{site="demo",journey="default",stage="checkout",{label}="{value}"}} {n}"#
        )
    };
    for want in [
        line("touchpoint", "touchpoint", "payment_failed", 1),
        line("touchpoint", "touchpoint", "view_item", 1),
        line("touchpoint", "touchpoint", "add_payment_info", 1),
        line("friction", "kind", "payment_failed", 2),
        line("friction", "kind", "none", 1),
    ] {
        assert!(text.contains(&want), "{want} missing from\n{text}");
    }
}

/// A journey's drop-off is diagnosed only by a friction kind that journey counts, and an
/// ordered journey the session never entered counts none of its friction; a restore onto a
/// configuration without the last friction kind counts it as none, and says so.
#[test]
fn each_journey_diagnoses_with_its_own_friction() {
    let f = two_journeys();
    // `express` counts payment_failed only: its drop-off at `view` after a rage click met none.
    f.apply("s", "1", "view_item", 0);
    f.apply("s", "2", "rage_click", MIN);
    // Never entered `express` (no view): its friction counts in `shop` only.
    f.apply("t", "1", "page_view", 0);
    f.apply("t", "2", "payment_failed", MIN);
    let state = f.engine.snapshot();
    let mut changed = f.config.clone();
    changed.journeys[0].friction.retain(|k| k != "rage_click");
    let metrics = Arc::new(Metrics::new(&changed));
    let bounds = Arc::new(Bounds::new(&changed.engine));
    let (engine, report) = Engine::restore(&changed, metrics.clone(), bounds, &state).unwrap();
    // Its last touchpoint and its last friction kind: `rage_click` is no longer named at all.
    assert_eq!(report.last_moved, 2, "{report:?}");
    engine.close_all();
    f.engine.close_all();
    let count = |m: &Metrics, family: &str, labels: &str| {
        let text = m.encode();
        let prefix = format!("{family}{{site=\"demo\",{labels}}} ");
        (text.lines())
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    let last = "touchstream_funnel_dropoffs_last_friction_total";
    let m = &f.metrics;
    assert_eq!(
        count(m, last, r#"journey="express",stage="view",kind="none""#),
        1
    );
    assert_eq!(
        count(
            m,
            last,
            r#"journey="express",stage="view",kind="rage_click""#
        ),
        0
    );
    assert_eq!(
        count(
            m,
            last,
            r#"journey="shop",stage="product_view",kind="rage_click""#
        ),
        1
    );
    assert_eq!(
        count(
            m,
            last,
            r#"journey="shop",stage="visit",kind="payment_failed""#
        ),
        1
    );
    let friction = "touchstream_friction_total";
    assert_eq!(
        count(
            m,
            friction,
            r#"journey="express",stage="view",kind="payment_failed""#
        ),
        0
    );
    // Restored where `shop` no longer counts rage clicks: that drop-off met none.
    let shop = r#"journey="shop",stage="product_view",kind="none""#;
    assert_eq!(count(&metrics, last, shop), 1);
}
