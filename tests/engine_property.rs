//! Property test: for any sessions on any sites, any order, any duplication and any
//! interleaving, the engine agrees with the independent reference model of the contract, by
//! site and by channel and device.
//!
//! A session id may come back after its session timed out (a second visit); events are spread
//! over the whole session timeout, and each carries its own channel and device (the session
//! keeps those of the first event received). Arrival order is free except for one rule: a
//! visit's events (retries included) arrive before the next visit of the same session id
//! starts. The engine reads arrival order and the model time order; when a late event of an
//! earlier visit arrives during a later one they disagree, pinned below as a known divergence
//! (`a_late_event_of_a_closed_visit_joins_the_open_one`) that the durable-state issue defines.

mod common;

use common::prom::Scrape;
use common::reference::{
    Figures, RefEvent, STAGES, assert_figures_eq, from_report_json, reference,
};
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

const SITES: &[&str] = &["demo", "outlet"];

/// One generated event: (kind, offset in ms within its visit, value in cents, currency, order,
/// channel, device).
type Spec = (usize, i64, Option<u32>, usize, Option<u8>, usize, usize);

/// A generated event with what only the engine sees: its site, channel and device.
#[derive(Debug, Clone)]
struct Sent {
    site: usize,
    visit: usize,
    event: RefEvent,
    channel: Channel,
    device: Device,
}

fn visit_events(site: usize, session: usize, visit: usize, specs: Vec<Spec>) -> Vec<Sent> {
    // Visits start three timeouts apart: any two events of one visit are less than a timeout
    // apart, and any two of different visits more.
    let start = 1_000_000 + visit as i64 * 3 * TIMEOUT_MS;
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (kind, offset, cents, cur, order, channel, device))| {
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
            Sent {
                site,
                visit,
                event: RefEvent {
                    session: format!("s{session}"),
                    id: format!("e{visit}-{i}"),
                    kind,
                    ts: start + offset,
                    value,
                    currency,
                    order_id,
                },
                channel: Channel::ALL[channel],
                device: Device::ALL[device],
            }
        })
        .collect()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..KINDS.len(),
        0..TIMEOUT_MS,
        proptest::option::of(0u32..100_000),
        0..CURRENCIES.len(),
        proptest::option::of(0u8..3),
        0..Channel::ALL.len(),
        0..Device::ALL.len(),
    )
}

/// One session id's arrival sequence on `site`: its visits in order, each visit's events (some
/// sent twice) shuffled among themselves.
fn session(index: usize, site: usize) -> impl Strategy<Value = Vec<Sent>> {
    let visits = proptest::collection::vec(proptest::collection::vec(spec(), 1..8), 1..4);
    visits.prop_flat_map(move |visits| {
        let groups: Vec<_> = visits
            .into_iter()
            .enumerate()
            .map(|(v, specs)| {
                let events = visit_events(site, index, v, specs);
                let n = events.len();
                (Just(events), proptest::collection::vec(any::<bool>(), n)).prop_flat_map(
                    |(events, dup)| {
                        let mut sent = events.clone();
                        sent.extend(
                            events
                                .iter()
                                .zip(&dup)
                                .filter(|(_, d)| **d)
                                .map(|(e, _)| e.clone()),
                        );
                        Just(sent).prop_shuffle()
                    },
                )
            })
            .collect();
        groups.prop_map(|groups| groups.concat())
    })
}

/// Sessions on both sites (the same session ids on both), interleaved in any order that keeps
/// each session id's own sequence.
fn workload() -> impl Strategy<Value = Vec<Sent>> {
    (1..6usize)
        .prop_flat_map(|n| {
            (0..n)
                .flat_map(|i| (0..SITES.len()).map(move |site| session(i, site)))
                .collect::<Vec<_>>()
        })
        .prop_flat_map(|sessions| {
            let total: usize = sessions.iter().map(Vec::len).sum();
            (
                Just(sessions),
                proptest::collection::vec(any::<u32>(), total),
            )
        })
        .prop_map(|(sessions, picks)| {
            let mut queues: Vec<std::collections::VecDeque<Sent>> =
                sessions.into_iter().map(Into::into).collect();
            let mut out = Vec::new();
            for pick in picks {
                queues.retain(|q| !q.is_empty());
                let q = pick as usize % queues.len();
                out.extend(queues[q].pop_front());
            }
            out
        })
}

fn to_event(s: &Sent) -> Event {
    let e = &s.event;
    Event {
        channel: s.channel,
        device: s.device,
        value: e.value,
        currency: e.currency.as_ref().map(|c| c.to_ascii_uppercase()),
        order_id: e.order_id.clone(),
        ..Event::new(SITES[s.site], &e.session, &e.id, &e.kind, e.ts)
    }
}

fn config() -> Config {
    let mut config = Config::default();
    let mut outlet = config.sites[0].clone();
    outlet.id = SITES[1].into();
    config.sites.push(outlet);
    config
}

/// The model's figures of each (site, channel, device): every visit's figures, counted under
/// the channel and device of its first event received.
fn by_breakdown(sent: &[Sent]) -> std::collections::HashMap<(usize, Channel, Device), Figures> {
    type Visit = (usize, String, usize);
    let mut visits: Vec<(Visit, (Channel, Device), Vec<RefEvent>)> = Vec::new();
    for s in sent {
        let key = (s.site, s.event.session.clone(), s.visit);
        match visits.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, events)) => events.push(s.event.clone()),
            None => visits.push((key, (s.channel, s.device), vec![s.event.clone()])),
        }
    }
    let mut out = std::collections::HashMap::<_, Figures>::new();
    for ((site, _, _), (channel, device), events) in visits {
        out.entry((site, channel, device))
            .or_default()
            .merge(&reference(&events, TIMEOUT_MS));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn engine_matches_the_reference_model(sent in workload()) {
        let config = config();
        let metrics = Arc::new(Metrics::new(&config));
        let engine = Engine::new(&config, metrics.clone());
        for s in &sent {
            engine.apply(&to_event(s));
        }
        engine.close_all();
        let report = Report::new(&config, &metrics).to_json();
        for (i, site) in SITES.iter().enumerate() {
            let events: Vec<RefEvent> =
                sent.iter().filter(|s| s.site == i).map(|s| s.event.clone()).collect();
            assert_figures_eq(&from_report_json(&report, site), &reference(&events, TIMEOUT_MS));
        }
        // Each visit counts under the channel and device of its first event received.
        let scrape = Scrape::parse(&metrics.encode());
        for ((site, channel, device), want) in by_breakdown(&sent) {
            let labels = [("site", SITES[site]), ("channel", channel.as_str()), ("device", device.as_str())];
            let count = |name: &str, stage: Option<&str>| {
                let mut filter = labels.to_vec();
                filter.extend(stage.map(|s| ("stage", s)));
                scrape.sum(name, &filter) as u64
            };
            for (k, stage) in STAGES.iter().enumerate() {
                prop_assert_eq!(count("touchstream_funnel_sessions_total", Some(stage)), want.reached[k], "{:?} {}", labels, stage);
                if k < 4 {
                    prop_assert_eq!(count("touchstream_funnel_dropoffs_total", Some(stage)), want.dropoffs[k], "{:?} {}", labels, stage);
                }
            }
            prop_assert_eq!(count("touchstream_orders_total", None), want.orders, "{:?}", labels);
            prop_assert_eq!(count("touchstream_carts_abandoned_total", None), want.carts_abandoned, "{:?}", labels);
        }
        // Every gauge returns to zero once every session is closed.
        let text = metrics.encode();
        for line in text.lines().filter(|l| l.starts_with("touchstream_carts_open") || l.starts_with("touchstream_funnel_active")) {
            prop_assert!(line.ends_with(" 0") || line.ends_with(" 0.0"), "{}", line);
        }
    }
}

/// The known divergences (see the module doc): the engine applies events in arrival order, so
/// an event of a visit that already closed, arriving during the session id's next visit, joins
/// that visit, and a retry of it is not seen as a duplicate; the model places both in their own,
/// earlier visit. This pins today's behaviour until the durable-state issue (issue 14) defines
/// late events; it fails the day that changes.
#[test]
fn a_late_event_of_a_closed_visit_joins_the_open_one() {
    let config = config();
    let kind = |k: &str| KINDS.iter().position(|x| *x == k).unwrap();
    let event = |visit: usize, id: usize, k: &str| {
        let mut s = visit_events(0, 1, visit, vec![(kind(k), 0, Some(1000), 1, None, 0, 0)]);
        s[0].event.id = format!("e{id}");
        s.remove(0)
    };
    let run = |sent: &[Sent]| {
        let metrics = Arc::new(Metrics::new(&config));
        let engine = Engine::new(&config, metrics.clone());
        for s in sent {
            engine.apply(&to_event(s));
        }
        engine.close_all();
        let engine_figures = from_report_json(&Report::new(&config, &metrics).to_json(), "demo");
        let events: Vec<RefEvent> = sent.iter().map(|s| s.event.clone()).collect();
        (engine_figures, reference(&events, TIMEOUT_MS))
    };
    // A cart of the first visit, sent only once the second visit (a purchase) is open: the model
    // has an abandoned cart and an order; the engine merges the cart into the bought visit.
    let (engine, model) = run(&[
        event(0, 1, "page_view"),
        event(1, 2, "purchase"),
        event(0, 3, "add_to_cart"),
    ]);
    assert_eq!((model.carts_abandoned, model.orders), (1, 1));
    assert_eq!((engine.carts_abandoned, engine.orders), (0, 1));
    // A retry of a first-visit event, arriving during the second visit: a duplicate to the
    // model, a new event to the engine.
    let (engine, model) = run(&[
        event(0, 1, "page_view"),
        event(1, 2, "page_view"),
        event(0, 1, "page_view"),
    ]);
    assert_eq!(model.duplicates, 1);
    assert_eq!(engine.duplicates, 0);
}

/// The case fuzzing once found (fuzz/regressions/engine/split-session-with-repeated-id.bin): a
/// duplicate, even one timed later, does not extend its session, so the same id exactly one
/// timeout after the session's last new event opens a new session and counts again.
#[test]
fn a_duplicate_does_not_extend_its_session() {
    let mut config = Config::default();
    let timeout = 60_000;
    config.journey.session_timeout = std::time::Duration::from_millis(timeout as u64);
    let metrics = Arc::new(Metrics::new(&config));
    let engine = Engine::new(&config, metrics.clone());
    let at = |ts: i64| Sent {
        site: 0,
        visit: 0,
        event: RefEvent {
            session: "s7".into(),
            id: "e199".into(),
            kind: "view_item".into(),
            ts: 51_139_000 + ts,
            value: None,
            currency: None,
            order_id: None,
        },
        channel: Channel::Direct,
        device: Device::Desktop,
    };
    let sent = [at(0), at(4_000), at(timeout)];
    for s in &sent {
        engine.apply(&to_event(s));
    }
    engine.close_all();
    let report = Report::new(&config, &metrics).to_json();
    let events: Vec<RefEvent> = sent.iter().map(|s| s.event.clone()).collect();
    let model = reference(&events, timeout);
    assert_eq!((model.reached[0], model.duplicates), (2, 1));
    assert_figures_eq(&from_report_json(&report, "demo"), &model);
}
