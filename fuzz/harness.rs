//! The checks the fuzz targets run, shared with `tests/fuzz_regressions.rs`, which replays the
//! kept inputs (fuzz/regressions/) on every test run.

use arbitrary::Arbitrary;
use std::borrow::Cow;
use std::sync::Arc;
use touchstream::collector::{
    BatchContext, Clock, WireBatch, check_depth, decode_batch, mask, mask_json,
};
use touchstream::config::Config;
use touchstream::engine::{Engine, Outcome};
use touchstream::event::{Device, Event, FilterReason};
use touchstream::metrics::{Metrics, Report};
use touchstream_load::truth;

/// A request body through the collector's decoding: depth check, batch parse, each event
/// decoded and validated, good ones enriched, bad ones masked for the dead-letter topic. Never
/// panics; masking keeps JSON valid; an accepted event's fields are within their limits; no
/// personal data passes: not in an accepted event's text, not in a rejection's message, and
/// not in a dead letter (masking it again finds nothing more).
pub fn decode(body: &[u8]) {
    if check_depth(body).is_err() {
        return;
    }
    let Ok(batch) = serde_json::from_slice::<WireBatch>(body) else {
        return;
    };
    let config = Config::default();
    let received_at = 1_763_800_000_000;
    let ctx = BatchContext {
        site: Arc::from("demo"),
        require_consent: false,
        clock: Clock::Received {
            at: received_at,
            sent_at: batch.sent_at,
        },
        device: Device::Desktop,
        filter: None,
        origin: 0,
    };
    let decoded = decode_batch(&batch.events, &ctx, &config.limits);
    assert_eq!(
        decoded.events.len() + decoded.rejected.len(),
        batch.events.len()
    );
    for event in &decoded.events {
        assert!(!event.id.is_empty() && event.id.chars().count() <= 64);
        assert!(!event.session.is_empty() && event.session.chars().count() <= 64);
        assert!(event.event_time_ms <= received_at);
        let texts = [&event.id, &event.kind, &event.session];
        for text in texts.into_iter().chain(event.order_id.as_ref()) {
            assert!(matches!(mask(text), Cow::Borrowed(_)), "forwarded: {text}");
        }
    }
    for (index, rejection) in &decoded.rejected {
        let message = &rejection.message;
        assert!(matches!(mask(message), Cow::Borrowed(_)), "{message}");
        // Valid JSON in, valid JSON out (syntax: numbers need not fit an f64).
        let masked = mask_json(batch.events[*index].get());
        assert!(
            serde_json::from_str::<Box<serde_json::value::RawValue>>(&masked).is_ok(),
            "masking broke JSON: {masked}"
        );
        assert!(
            matches!(mask_json(&masked), Cow::Borrowed(_)),
            "masking left personal data: {masked}"
        );
    }
}

const KINDS: &[&str] = &[
    "page_view",
    "view_item",
    "search",
    "add_to_cart",
    "Product Added",
    "remove_from_cart",
    "begin_checkout",
    "add_payment_info",
    "purchase",
    "Order Completed",
    "rage_click",
    "refund",
    "unknown_type",
];
const CURRENCIES: &[&str] = &["USD", "EUR", "PLN", "XYZ"];
const TIMEOUT_S: i64 = 60;
const TIMEOUT_MS: i64 = TIMEOUT_S * 1000;
const START_MS: i64 = 1_763_800_000_000;

/// One event of an arbitrary sequence.
#[derive(Debug, Arbitrary)]
pub struct Step {
    session: u8,
    id: u8,
    kind: u8,
    /// Which visit of its session (`at / 60 % 3`) and the second within it (`at % 60`).
    at: u16,
    value: Option<u16>,
    currency: u8,
    order: Option<u8>,
}

/// The events of `steps`: as the steps send them, and in an order the model can follow. A
/// step names an event by session, visit and id; its first step says what the event is, later
/// ones re-send it (a retry is the same event), and a purchase's value follows from its order
/// id. An id may come back in a later visit (a duplicate within the dedup horizon). Visits
/// start three timeouts apart and a visit's events lie within one timeout. The second order is
/// the first with each session's steps (keeping their places in the sequence) stably sorted by
/// visit; in the first, an event of a visit that already closed arrives late.
fn arrivals(steps: &[Step]) -> (Vec<truth::Event>, Vec<truth::Event>) {
    let mut defined: std::collections::HashMap<(u8, i64, u8), truth::Event> = Default::default();
    let mut events: Vec<(u8, i64, truth::Event)> = Vec::new();
    for s in steps.iter().take(512) {
        let session = s.session % 16;
        let visit = i64::from(s.at) / TIMEOUT_S % 3;
        let event = defined.entry((session, visit, s.id)).or_insert_with(|| {
            let kind = KINDS[usize::from(s.kind) % KINDS.len()];
            let mut value = s.value.map(|v| f64::from(v) / 100.0);
            let mut currency = CURRENCIES[usize::from(s.currency) % CURRENCIES.len()];
            let order_id = s.order.map(|o| o % 4);
            // An order re-sent by another event carries the same value: which of two different
            // values would count is the arrival order's choice, not the contract's.
            if let (Some(o), "purchase" | "Order Completed") = (order_id, kind) {
                value = Some(f64::from(o) * 10.25);
                currency = "EUR";
            }
            truth::Event {
                session: format!("s{session}"),
                id: format!("e{}", s.id),
                kind: kind.to_string(),
                ts: START_MS + (visit * 3 * TIMEOUT_S + i64::from(s.at) % TIMEOUT_S) * 1000,
                value,
                currency: Some(currency.into()),
                order_id: order_id.map(|o| format!("o{o}")),
            }
        });
        events.push((session, visit, event.clone()));
    }
    let as_sent = events.iter().map(|(_, _, e)| e.clone()).collect();
    for session in 0..16u8 {
        let slots: Vec<usize> = (0..events.len())
            .filter(|i| events[*i].0 == session)
            .collect();
        let mut mine: Vec<_> = slots.iter().map(|i| events[*i].clone()).collect();
        mine.sort_by_key(|(_, visit, _)| *visit);
        for (slot, e) in slots.into_iter().zip(mine) {
            events[slot] = e;
        }
    }
    let in_turn = events.into_iter().map(|(_, _, e)| e).collect();
    (as_sent, in_turn)
}

/// The figures of `demo`, as the model states them. Counts come from the replay report; money
/// straight from the counters, in exact micro-units: the report's amounts are `f64`, exact only
/// up to 2^53 micro-units, which a registry shared by millions of inputs passes (the engine
/// campaign of issue 13 failed on it, 1 micro-unit off, after 2.5 million runs).
fn figures(config: &Config, metrics: &Metrics) -> truth::Figures {
    let report = Report::new(config, metrics);
    let site = &report.sites[0].1;
    let funnel = &metrics.funnel;
    let money = |counter: &dyn Fn(usize) -> u128| -> truth::Money {
        (funnel.currencies[0].codes.iter().enumerate())
            .map(|(i, code)| {
                let micros = i64::try_from(counter(i)).expect("within i64 micro-units");
                (code.clone(), micros)
            })
            .filter(|(_, micros)| *micros != 0)
            .collect()
    };
    let mut f = truth::Figures::default();
    for (i, (_, n)) in site.reached.iter().enumerate() {
        f.reached[i] = *n;
    }
    for (i, (_, n)) in site.dropoffs.iter().enumerate() {
        f.dropoffs[i] = *n;
    }
    f.carts_abandoned = site.carts_abandoned;
    f.carts_abandoned_value = money(&|c| funnel.carts_abandoned_value(0, c).micros());
    f.orders = site.orders;
    f.revenue = money(&|c| funnel.revenue(0, c).micros());
    f.duplicates = site.duplicates;
    f.late = site.late;
    f
}

/// Arbitrary event sequences (sessions and their later visits, touchpoint types, times out of
/// order, retries, ids used again in a later visit, repeated order ids, values and currencies,
/// late events of closed visits) through the engine. In the order the steps send them and with
/// each session's visits in turn, every figure the replay report has (money, duplicates and
/// late events included) must equal the independent model of the contract in arrival order
/// (touchstream-load's `truth`), the funnel must never widen and every session must buy or
/// drop off once. Every gauge is back at zero once every session closed.
pub fn engine(steps: &[Step]) {
    // Registering every metric is the slow part: one registry per thread (tests run in
    // parallel), read as differences before and after each input.
    thread_local! {
        static SHARED: (Config, Arc<Metrics>) = {
            let mut config = Config::default();
            config.journey.session_timeout = std::time::Duration::from_millis(TIMEOUT_MS as u64);
            let metrics = Arc::new(Metrics::new(&config));
            (config, metrics)
        };
    }
    SHARED.with(|(config, metrics)| check(config, metrics, steps));
}

fn check(config: &Config, metrics: &Arc<Metrics>, steps: &[Step]) {
    let (as_sent, in_turn) = arrivals(steps);
    // In turn, as sent, and as sent with the clock ticking after each event at the latest
    // event time so far (sessions close between events, so late events come).
    for (events, ticking) in [(in_turn, false), (as_sent.clone(), false), (as_sent, true)] {
        let before = figures(config, metrics);
        let arrivals = run(config, metrics, &events, ticking);
        let got = figures(config, metrics).since(&before);
        let expected = truth::figures_in_arrival_order(&arrivals, TIMEOUT_MS);
        let differences = got.differences(&expected);
        assert!(differences.is_empty(), "{differences:?}\n{arrivals:?}");
        // The funnel never widens; every closed session bought or dropped off once.
        assert!(got.reached.windows(2).all(|w| w[0] >= w[1]), "{got:?}");
        assert_eq!(
            got.dropoffs.iter().sum::<u64>() + got.reached[4],
            got.reached[0]
        );
    }
}

/// Applies `events` to a fresh engine and closes every session; the gauges are back at zero.
/// Applies `events` to a fresh engine, with a tick after each at the latest event time so far
/// when `ticking`, and closes every session; returns what arrived, for the model.
fn run(
    config: &Config,
    metrics: &Arc<Metrics>,
    events: &[truth::Event],
    ticking: bool,
) -> Vec<truth::Arrival> {
    let engine = Engine::new(config, metrics.clone());
    let (mut clock, mut arrivals) = (i64::MIN, Vec::new());
    for e in events {
        engine.apply(&Event {
            value: e.value,
            currency: e.currency.clone(),
            order_id: e.order_id.clone(),
            ..Event::new("demo", &e.session, &e.id, &e.kind, e.ts)
        });
        arrivals.push(truth::Arrival::Event(e.clone()));
        if ticking {
            clock = clock.max(e.ts);
            engine.sweep(clock);
            arrivals.push(truth::Arrival::Tick(clock));
        }
    }
    close_all(&engine, metrics);
    arrivals
}

/// Closes every session of `engine`; the gauges are back at zero.
fn close_all(engine: &Engine, metrics: &Metrics) {
    engine.close_all();
    assert_eq!(engine.open_sessions(), 0);
    assert_eq!(metrics.engine.open_sessions.get(), 0);
    let f = &metrics.funnel;
    assert!((0..5).all(|stage| f.active(f.row(0, 0, stage)).get() == 0));
    assert_eq!(f.carts_open(0).get(), 0);
    assert!((0..5).all(|c| f.carts_open_value(0, c).micros() == 0));
}

/// Events one visit of a session takes in the `session` target (`engine.max_session_events`):
/// small, so that a few bytes of input reach it.
pub const SESSION_EVENTS: u32 = 300;
/// Most events one `session` input expands to.
const MAX_EVENTS: u32 = 100_000;
/// Events of one `Op::Flood`, at most.
const FLOOD_EVENTS: u32 = 20_000;

/// Which ids a run of events uses: event ids (`e<n>`) or order ids (`o<n>`).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Ids {
    /// Ids not used before in the input: every event new.
    Fresh,
    /// One id for the whole run: retries of one event, or one order re-sent.
    Same(u16),
    /// `base + i % period`: a few ids, each repeated.
    Cycle { base: u16, period: u8 },
    /// `base + i * stride`: ids that other runs may share.
    Stride { base: u16, stride: u8 },
}

impl Ids {
    /// The id of the run's event `i`; `fresh` numbers the new ones.
    fn nth(self, i: u32, fresh: &mut u32) -> u32 {
        match self {
            Ids::Fresh => {
                *fresh += 1;
                *fresh
            }
            Ids::Same(id) => u32::from(id),
            Ids::Cycle { base, period } => u32::from(base) + i % (u32::from(period) + 1),
            Ids::Stride { base, stride } => u32::from(base) + i * u32::from(stride),
        }
    }
}

/// A run of events into one session, all alike but for what changes with their index `i`.
#[derive(Debug, Arbitrary)]
pub struct Run {
    session: u8,
    /// Touchpoint type (index into the engine target's types) of even and odd events.
    kinds: (u8, u8),
    ids: Ids,
    /// Order ids (of every event; only purchases use them).
    orders: Option<Ids>,
    /// Value in cents of event 0 and its change per event (never below zero). A purchase with
    /// an order id carries that order's value instead.
    value: Option<(u16, i8)>,
    currency: u8,
    /// Milliseconds into the visit of event 0 and the change per event, wrapping within the
    /// visit's first minute: times go backwards as well as forwards.
    at: (u16, i16),
}

/// One step of a `session` input.
#[derive(Debug, Arbitrary)]
pub enum Op {
    /// `n + 1` events (1 to 256).
    Run(Run, u8),
    /// `n % 20,001` events: a session flooded with purchases, retries, carts.
    Flood(Run, u16),
    /// The session's next visit: its later events come three timeouts after the last visit's
    /// start (the session closes and opens again).
    NextVisit(u8),
}

/// The session's visits and, of its current one, the event ids the engine took.
#[derive(Default)]
struct Visit {
    number: i64,
    taken: std::collections::HashSet<u32>,
    /// Ids taken by any visit of the session id: duplicates within the dedup horizon.
    seen: std::collections::HashSet<u32>,
}

/// Whole sessions, driven hard: a few ops expand into up to 100,000 events, and one op can put
/// 20,000 into one session (purchases with new or repeated order ids, retries, carts filled and
/// emptied, times out of order), with `engine.max_session_events` at 300. For every event the
/// engine's outcome must be what the limit says: applied while the visit has taken fewer than
/// 300 events, a duplicate when its id was taken by any visit of its session id (the dedup
/// horizon), `session_limit` otherwise; so a session never holds more than 300 event ids and
/// their order ids, whatever is thrown at it. The filtered
/// counters must agree; every figure of the report must equal the independent model
/// (`touchstream_load::truth`) of the events taken; every gauge is back at zero once every
/// session closed. The limit check is what bounds a session's cost, deterministically; the
/// wall time of an input is left to libFuzzer's `-timeout` (see fuzz/README.md).
pub fn session(ops: &[Op]) {
    thread_local! {
        static SHARED: (Config, Arc<Metrics>) = {
            let mut config = Config::default();
            config.journey.session_timeout = std::time::Duration::from_millis(TIMEOUT_MS as u64);
            config.engine.max_session_events = SESSION_EVENTS;
            let metrics = Arc::new(Metrics::new(&config));
            (config, metrics)
        };
    }
    SHARED.with(|(config, metrics)| check_sessions(config, metrics, ops));
}

fn check_sessions(config: &Config, metrics: &Arc<Metrics>, ops: &[Op]) {
    use std::fmt::Write;
    let filtered = |reason| metrics.ingest.filtered(0, reason).get();
    let before = figures(config, metrics);
    let limited_before = filtered(FilterReason::SessionLimit);
    let engine = Engine::new(config, metrics.clone());
    let mut visits: [Visit; 4] = Default::default();
    let (mut taken, mut duplicates, mut limited, mut total) = (Vec::new(), 0, 0, 0);
    let mut fresh = 1 << 24;
    let mut ev = Event::new("demo", "", "", "", 0);
    for op in ops {
        let (run, n) = match op {
            Op::Run(run, n) => (run, u32::from(*n) + 1),
            Op::Flood(run, n) => (run, u32::from(*n) % (FLOOD_EVENTS + 1)),
            Op::NextVisit(session) => {
                let visit = &mut visits[usize::from(session % 4)];
                visit.number += 1;
                visit.taken.clear();
                continue;
            }
        };
        let n = n.min(MAX_EVENTS - total);
        total += n;
        let session = run.session % 4;
        let visit = &mut visits[usize::from(session)];
        let start = START_MS + visit.number * 3 * TIMEOUT_MS;
        ev.session = format!("s{session}");
        for i in 0..n {
            let id = run.ids.nth(i, &mut fresh);
            let kind = if i % 2 == 0 { run.kinds.0 } else { run.kinds.1 };
            let kind = KINDS[usize::from(kind) % KINDS.len()];
            let purchase = matches!(kind, "purchase" | "Order Completed");
            let order = run.orders.map(|o| o.nth(i, &mut fresh));
            let mut currency = CURRENCIES[usize::from(run.currency) % CURRENCIES.len()];
            let mut value = run.value.map(|(v, step)| {
                let cents = (i64::from(v) + i64::from(i) * i64::from(step)).max(0);
                cents as f64 / 100.0
            });
            // Which of two values an order re-sent counts is the arrival order's choice, not
            // the contract's: an order always carries the same one.
            if let (Some(o), true) = (order, purchase) {
                value = Some(f64::from(o % 1000) * 10.25);
                currency = CURRENCIES[o as usize % CURRENCIES.len()];
            }
            let at = (i64::from(run.at.0) + i64::from(i) * i64::from(run.at.1)).rem_euclid(60_000);
            ev.id.clear();
            write!(ev.id, "e{id}").unwrap();
            ev.kind.clear();
            ev.kind.push_str(kind);
            ev.event_time_ms = start + at;
            ev.received_at_ms = ev.event_time_ms;
            ev.value = value;
            ev.currency = Some(currency.into());
            ev.order_id = order.map(|o| format!("o{o}"));

            let expected = if visit.seen.contains(&id) {
                duplicates += 1;
                Outcome::Filtered(FilterReason::Duplicate)
            } else if visit.taken.len() >= SESSION_EVENTS as usize {
                limited += 1;
                Outcome::Filtered(FilterReason::SessionLimit)
            } else {
                visit.taken.insert(id);
                visit.seen.insert(id);
                taken.push(truth::Event {
                    session: ev.session.clone(),
                    id: ev.id.clone(),
                    kind: ev.kind.clone(),
                    ts: ev.event_time_ms,
                    value: ev.value,
                    currency: ev.currency.clone(),
                    order_id: ev.order_id.clone(),
                });
                Outcome::Applied
            };
            let got = engine.apply(&ev);
            assert_eq!(
                got,
                expected,
                "event {i} of {op:?}: the session's visit had taken {} events",
                visit.taken.len()
            );
        }
    }
    close_all(&engine, metrics);
    assert_eq!(
        filtered(FilterReason::SessionLimit) - limited_before,
        limited
    );
    let got = figures(config, metrics).since(&before);
    let mut expected = truth::figures(&taken, TIMEOUT_MS);
    expected.duplicates = duplicates;
    let differences = got.differences(&expected);
    assert!(differences.is_empty(), "{differences:?}\n{ops:?}");
}
