//! Property tests: for any sessions on any sites, any order, any duplication and any
//! interleaving, the engine agrees with the independent reference model of the contract
//! (touchstream-load's `truth`, which reads events in arrival order as the contract states), by
//! site and by channel and device.
//!
//! `engine_matches_the_reference_model`: a session id may come back after its session timed
//! out (a second visit); events are spread over the whole session timeout, and each carries
//! its own channel and device (the session keeps those of the first event received); a visit's
//! events (retries included) arrive before the next visit of the same session id starts, so
//! each visit's channel and device are known. Arrival orders across timeout gaps, with the
//! clock ticking, are `tests/engine_arrival.rs`'s.

mod common;

use common::prom::Scrape;
use common::reference::{
    Figures, RefEvent, STAGES, assert_figures_eq, from_report_json, reference,
};
use common::workload::{SITES, Sent, TIMEOUT_MS, config, spec, to_event, visit_events};
use proptest::prelude::*;
use std::sync::Arc;
use touchstream::config::Config;
use touchstream::engine::Engine;
use touchstream::event::{Channel, Device};
use touchstream::metrics::Metrics;
use touchstream::metrics::Report;

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
            // A cart is opened once per session reaching the cart stage.
            prop_assert_eq!(count("touchstream_carts_opened_total", None), want.reached[2], "{:?}", labels);
        }
        // Every gauge returns to zero once every session is closed.
        let text = metrics.encode();
        let gauge = |l: &&str| ["touchstream_carts_open{", "touchstream_carts_open_value{", "touchstream_funnel_active"].iter().any(|g| l.starts_with(g));
        for line in text.lines().filter(gauge) {
            prop_assert!(line.ends_with(" 0") || line.ends_with(" 0.0"), "{}", line);
        }
    }
}

/// The case fuzzing once found (fuzz/regressions/engine/split-session-with-repeated-id.bin): a
/// duplicate, even one timed later, does not extend its session; the same id exactly one
/// timeout after the session's last new event is a duplicate too (the dedup horizon), and
/// opens no session.
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
    assert_eq!((model.reached[0], model.duplicates), (1, 2));
    assert_figures_eq(&from_report_json(&report, "demo"), &model);
}
