//! The checks the fuzz targets run, shared with `tests/fuzz_regressions.rs`, which replays the
//! kept inputs (fuzz/regressions/) on every test run.

use arbitrary::Arbitrary;
use std::sync::Arc;
use touchstream::collector::{
    BatchContext, Clock, WireBatch, check_depth, decode_batch, mask_json,
};
use touchstream::config::Config;
use touchstream::engine::Engine;
use touchstream::event::{Channel, Device, Event};
use touchstream::metrics::Metrics;
use touchstream_load::truth;

/// A request body through the collector's decoding: depth check, batch parse, each event
/// decoded and validated, good ones enriched, bad ones masked for the dead-letter topic. Never
/// panics; masking keeps JSON valid; an accepted event's fields are within their limits.
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
    }
    for (index, _) in &decoded.rejected {
        // Valid JSON in, valid JSON out (syntax: numbers need not fit an f64).
        let masked = mask_json(batch.events[*index].get());
        assert!(
            serde_json::from_str::<Box<serde_json::value::RawValue>>(&masked).is_ok(),
            "masking broke JSON: {masked}"
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
const TIMEOUT_MS: i64 = 60_000;

/// One event of an arbitrary sequence.
#[derive(Debug, Arbitrary)]
pub struct Step {
    session: u8,
    id: u8,
    kind: u8,
    /// Seconds after the start; gaps over the timeout split sessions.
    at: u16,
    value: Option<u16>,
    currency: u8,
    order: Option<u8>,
}

/// Arbitrary event sequences (sessions, touchpoint types, times out of order, duplicates,
/// repeated order ids, values and currencies) through the engine, checked against the
/// independent model of the contract (touchstream-load's `truth`) once every session closed.
pub fn engine(steps: &[Step]) {
    // Registering every metric is the slow part: one registry for the process, read as
    // differences before and after each input.
    static SHARED: std::sync::OnceLock<(Config, Arc<Metrics>)> = std::sync::OnceLock::new();
    let (config, metrics) = SHARED.get_or_init(|| {
        let mut config = Config::default();
        config.journey.session_timeout = std::time::Duration::from_millis(TIMEOUT_MS as u64);
        let metrics = Arc::new(Metrics::new(&config));
        (config, metrics)
    });
    let m = &metrics.funnel;
    let figures = || {
        let reached: Vec<u64> = (0..5).map(|stage| m.reached_total(0, stage)).collect();
        let dropoffs: Vec<u64> = (0..4).map(|stage| m.dropoffs_total(0, stage)).collect();
        (
            reached,
            dropoffs,
            m.orders_total(0),
            m.carts_abandoned_total(0),
        )
    };
    let before = figures();
    let engine = Engine::new(config, metrics.clone());
    let mut model = Vec::new();
    for s in steps.iter().take(512) {
        let ts = 1_763_800_000_000 + i64::from(s.at) * 1000;
        let e = truth::Event {
            session: format!("s{}", s.session % 16),
            id: format!("e{}", s.id),
            kind: KINDS[usize::from(s.kind) % KINDS.len()].to_string(),
            ts,
            value: s.value.map(|v| f64::from(v) / 100.0),
            currency: Some(CURRENCIES[usize::from(s.currency) % CURRENCIES.len()].to_string()),
            order_id: s.order.map(|o| format!("o{}", o % 4)),
        };
        engine.apply(&Event {
            site: "demo".into(),
            id: e.id.clone(),
            kind: e.kind.clone(),
            session: e.session.clone(),
            event_time_ms: ts,
            received_at_ms: ts,
            channel: Channel::Direct,
            device: Device::Desktop,
            value: e.value,
            currency: e.currency.clone(),
            order_id: e.order_id.clone(),
        });
        model.push(e);
    }
    engine.close_all();
    assert_eq!(engine.open_sessions(), 0);
    let after = figures();
    let since =
        |a: &[u64], b: &[u64]| -> Vec<u64> { a.iter().zip(b).map(|(a, b)| a - b).collect() };
    let reached = since(&after.0, &before.0);
    let dropoffs = since(&after.1, &before.1);
    let (orders, carts_abandoned) = (after.2 - before.2, after.3 - before.3);
    // The model reads events in time order; the engine in arrival order. They agree when
    // events arrive in time order.
    if model.windows(2).all(|w| w[0].ts <= w[1].ts) {
        let expected = truth::figures(&model, TIMEOUT_MS);
        assert_eq!(reached, expected.reached, "{model:?}");
        assert_eq!(dropoffs, expected.dropoffs, "{model:?}");
        assert_eq!(orders, expected.orders, "{model:?}");
        assert_eq!(carts_abandoned, expected.carts_abandoned, "{model:?}");
    }
    // Whatever the order: the funnel never widens, and every closed session either bought or
    // dropped off at exactly one stage.
    assert!(reached.windows(2).all(|w| w[0] >= w[1]), "{reached:?}");
    assert_eq!(dropoffs.iter().sum::<u64>() + reached[4], reached[0]);
}
