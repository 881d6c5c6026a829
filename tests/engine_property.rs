//! Property test: for any sessions, any order, any duplication and any interleaving, the engine
//! agrees with the independent reference model of the contract.

mod common;

use common::reference::{RefEvent, assert_figures_eq, from_report_json, reference};
use proptest::prelude::*;
use std::sync::Arc;
use touchstream::config::Config;
use touchstream::engine::Engine;
use touchstream::event::{Channel, Device, Event};
use touchstream::metrics::Metrics;
use touchstream::metrics::Report;

const KINDS: &[&str] = &[
    "page_view",
    "session_start",
    "view_item",
    "Product Viewed",
    "search",
    "add_to_cart",
    "Product Added",
    "view_cart",
    "remove_from_cart",
    "Product Removed",
    "begin_checkout",
    "add_payment_info",
    "purchase",
    "Order Completed",
    "error",
    "rage_click",
    "review",
    "refund",
    "something_else",
];
const CURRENCIES: &[Option<&str>] = &[None, Some("USD"), Some("EUR"), Some("pln"), Some("XYZ")];
const TIMEOUT_MS: i64 = 30 * 60_000;

/// One generated event: (kind, offset in ms within the session, value in cents, currency, order).
type Spec = (usize, i64, Option<u32>, usize, Option<u8>);

fn session_events(session: usize, specs: Vec<Spec>) -> Vec<RefEvent> {
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (kind, offset, cents, cur, order))| {
            let kind = KINDS[kind].to_string();
            let is_order = kind == "purchase" || kind == "Order Completed";
            // The same order re-sent carries the same value: derive both from the order id.
            let (value, currency, order_id) = match (is_order, order) {
                (true, Some(o)) => (
                    Some(f64::from(o) * 10.25),
                    Some("EUR".to_string()),
                    Some(format!("order-{o}")),
                ),
                _ => (
                    cents.map(|c| f64::from(c) / 100.0),
                    CURRENCIES[cur].map(String::from),
                    None,
                ),
            };
            RefEvent {
                session: format!("s{session}"),
                id: format!("e{i}"),
                kind,
                ts: 1_000_000 + offset,
                value,
                currency,
                order_id,
            }
        })
        .collect()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..KINDS.len(),
        0..TIMEOUT_MS / 2,
        proptest::option::of(0u32..100_000),
        0..CURRENCIES.len(),
        proptest::option::of(0u8..3),
    )
}

/// Sessions, each event possibly sent twice, all shuffled together.
fn workload() -> impl Strategy<Value = (Vec<RefEvent>, Vec<RefEvent>)> {
    proptest::collection::vec(proptest::collection::vec(spec(), 1..12), 1..8)
        .prop_map(|sessions| {
            sessions
                .into_iter()
                .enumerate()
                .flat_map(|(i, specs)| session_events(i, specs))
                .collect::<Vec<_>>()
        })
        .prop_flat_map(|events| {
            let n = events.len();
            (Just(events), proptest::collection::vec(any::<bool>(), n))
        })
        .prop_flat_map(|(events, dup)| {
            let mut sent = events.clone();
            sent.extend(
                events
                    .iter()
                    .zip(&dup)
                    .filter(|(_, d)| **d)
                    .map(|(e, _)| e.clone()),
            );
            (Just(events), Just(sent).prop_shuffle())
        })
}

fn to_event(e: &RefEvent) -> Event {
    Event {
        site: "demo".into(),
        id: e.id.clone(),
        kind: e.kind.clone(),
        session: e.session.clone(),
        event_time_ms: e.ts,
        received_at_ms: e.ts,
        channel: Channel::Direct,
        device: Device::Desktop,
        value: e.value,
        currency: e.currency.as_ref().map(|c| c.to_ascii_uppercase()),
        order_id: e.order_id.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn engine_matches_the_reference_model((_, sent) in workload()) {
        let config = Config::default();
        let metrics = Arc::new(Metrics::new(&config));
        let engine = Engine::new(&config, metrics.clone());
        for e in &sent {
            engine.apply(&to_event(e));
        }
        engine.close_all();
        let report = Report::new(&config, &metrics).to_json();
        assert_figures_eq(&from_report_json(&report, "demo"), &reference(&sent, TIMEOUT_MS));
        // Every gauge returns to zero once every session is closed.
        let text = metrics.encode();
        for line in text.lines().filter(|l| l.starts_with("touchstream_carts_open") || l.starts_with("touchstream_funnel_active")) {
            prop_assert!(line.ends_with(" 0") || line.ends_with(" 0.0"), "{}", line);
        }
    }
}
