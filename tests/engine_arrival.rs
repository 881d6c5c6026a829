//! Property test: any arrival order across timeout gaps, with the clock (the sweep) ticking
//! between events: sessions split, close, and take duplicates and late events exactly as the
//! independent model of the contract in arrival order says (touchstream-load's `truth`). Each
//! session id's events lie anywhere over four timeouts, so an event often comes a timeout or
//! more after the one before it, or belongs to a session already closed.

mod common;

use common::reference::{
    Arrival, RefEvent, assert_figures_eq, figures_in_arrival_order, from_report_json,
};
use common::workload::{SITES, Sent, TIMEOUT_MS, config, spec, to_event, visit_events};
use proptest::prelude::*;
use std::sync::Arc;
use touchstream::engine::Engine;
use touchstream::event::{Channel, Device};
use touchstream::metrics::{Metrics, Report};

/// One session id's events at any time over four timeouts (ids `e0`.., some re-sent, order
/// ids shared by its sessions, each sent with values of its own), on `site`, in any arrival
/// order.
fn crossing(index: usize, site: usize) -> impl Strategy<Value = Vec<Sent>> {
    let events = proptest::collection::vec((spec(), 0..4 * TIMEOUT_MS, any::<bool>()), 1..10);
    events
        .prop_map(move |events| {
            let mut sent = Vec::new();
            for (i, (spec, at, resend)) in events.into_iter().enumerate() {
                let mut e = visit_events(site, index, 0, vec![spec]).remove(0);
                e.event.id = format!("e{i}");
                e.event.ts = 1_000_000 + at;
                if let Some(o) = &mut e.event.order_id {
                    // Shared by the session id's sessions, and re-sent with another value: which
                    // one counts is the first to arrive.
                    *o = o.replace("order-0-", "order-");
                    e.event.value = Some(f64::from(spec.2.unwrap_or(0)) / 100.0);
                }
                if resend {
                    sent.push(e.clone());
                }
                sent.push(e);
            }
            sent
        })
        .prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_arrival_order_across_timeout_gaps(
        sessions in (1..5usize).prop_flat_map(|n| {
            (0..n).flat_map(|i| (0..SITES.len()).map(move |site| crossing(i, site))).collect::<Vec<_>>()
        }),
        picks in proptest::collection::vec(any::<u32>(), 200),
        ticks in proptest::collection::vec((any::<u32>(), 0..TIMEOUT_MS), 0..6),
    ) {
        // Interleave the session ids, then let the clock tick at some places, forward only.
        let mut queues: Vec<std::collections::VecDeque<Sent>> =
            sessions.into_iter().map(Into::into).collect();
        let mut sent = Vec::new();
        for pick in picks.iter().cycle() {
            queues.retain(|q| !q.is_empty());
            if queues.is_empty() {
                break;
            }
            let q = *pick as usize % queues.len();
            sent.extend(queues[q].pop_front());
        }
        let mut arrivals: Vec<Option<&Sent>> = sent.iter().map(Some).collect();
        let mut places: Vec<(usize, i64)> = ticks
            .iter()
            .map(|(at, step)| (*at as usize % (sent.len() + 1), *step))
            .collect();
        places.sort();
        let mut clock = 1_000_000;
        let mut times = Vec::new();
        for (place, step) in places.iter().rev() {
            arrivals.insert(*place, None);
            times.push(*step);
        }
        let config = config();
        let metrics = Arc::new(Metrics::new(&config));
        let engine = Engine::new(&config, metrics.clone());
        let mut model: Vec<Vec<Arrival>> = vec![Vec::new(); SITES.len()];
        for a in &arrivals {
            match a {
                Some(s) => {
                    engine.apply(&to_event(s));
                    model[s.site].push(Arrival::Event(s.event.clone()));
                }
                None => {
                    clock += times.pop().expect("one time per tick");
                    engine.sweep(clock);
                    model.iter_mut().for_each(|m| m.push(Arrival::Tick(clock)));
                }
            }
        }
        engine.close_all();
        let report = Report::new(&config, &metrics).to_json();
        for (i, site) in SITES.iter().enumerate() {
            let want = figures_in_arrival_order(&model[i], TIMEOUT_MS);
            let differences = from_report_json(&report, site).differences(&want);
            prop_assert!(differences.is_empty(), "{}: {:?}\n{:?}", site, differences, model[i]);
        }
    }
}

/// The contract's cases of arrival order across a timeout gap (30 minutes), checked on the
/// engine and the model alike.
#[test]
fn sessions_split_and_take_late_events_in_arrival_order() {
    let config = config();
    let minutes = |m: i64| 1_000_000 + m * 60_000;
    let event = |id: &str, kind: &str, m: i64| Sent {
        site: 0,
        visit: 0,
        event: RefEvent {
            session: "s".into(),
            id: id.into(),
            kind: kind.into(),
            ts: minutes(m),
            value: Some(10.0),
            currency: Some("EUR".into()),
            order_id: kind.contains("purchase").then(|| "o1".into()),
        },
        channel: Channel::Direct,
        device: Device::Desktop,
    };
    enum A {
        E(Sent),
        Tick(i64),
    }
    let run = |arrivals: Vec<A>| {
        let metrics = Arc::new(Metrics::new(&config));
        let engine = Engine::new(&config, metrics.clone());
        let mut model = Vec::new();
        for a in arrivals {
            match a {
                A::E(s) => {
                    engine.apply(&to_event(&s));
                    model.push(Arrival::Event(s.event));
                }
                A::Tick(m) => {
                    engine.sweep(minutes(m));
                    model.push(Arrival::Tick(minutes(m)));
                }
            }
        }
        engine.close_all();
        let got = from_report_json(&Report::new(&config, &metrics).to_json(), "demo");
        assert_figures_eq(&got, &figures_in_arrival_order(&model, TIMEOUT_MS));
        got
    };
    use A::{E, Tick};
    // Events at 0, 40 and 20 minutes: in time order one session; in this arrival order the
    // one at 40 closes the first and opens a second, which the one at 20 joins.
    let f = run(vec![
        E(event("a", "page_view", 0)),
        E(event("b", "page_view", 40)),
        E(event("c", "page_view", 20)),
    ]);
    assert_eq!((f.reached[0], f.late), (2, 0));
    let f = run(vec![
        E(event("a", "page_view", 0)),
        E(event("c", "page_view", 20)),
        E(event("b", "page_view", 40)),
    ]);
    assert_eq!((f.reached[0], f.late), (1, 0));
    // The clock closes the session at 30; its retry the next day is a duplicate, and a
    // purchase of it sent late (an offline queue) counts its order against it, once, with no
    // second visit; its cart was counted abandoned when it closed and stays so.
    let f = run(vec![
        E(event("a", "add_to_cart", 0)),
        Tick(30),
        E(event("a", "add_to_cart", 0)),
        Tick(24 * 60),
        E(event("p", "purchase", 10)),
        E(event("q", "purchase", 11)),
        E(event("a", "add_to_cart", 0)),
    ]);
    assert_eq!((f.reached[0], f.reached[4], f.carts_abandoned), (1, 0, 1));
    assert_eq!((f.orders, f.late, f.duplicates), (1, 2, 2));
    // A new session after the gap: its purchase of an order the closed one counted is not
    // counted again, and it bought (no abandoned cart).
    let f = run(vec![
        E(event("p", "purchase", 0)),
        Tick(31),
        E(event("v", "add_to_cart", 60)),
        E(event("q", "purchase", 61)),
    ]);
    assert_eq!(
        (f.reached[0], f.orders, f.carts_abandoned, f.late),
        (2, 1, 0, 0)
    );
}
