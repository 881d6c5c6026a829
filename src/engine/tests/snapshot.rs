//! Snapshots: an engine restored from another's state goes on exactly as the other would.

use super::*;
use crate::engine::snapshot::EngineState;

const KINDS: [&str; 8] = [
    "page_view",
    "view_item",
    "add_to_cart",
    "remove_from_cart",
    "begin_checkout",
    "purchase",
    "error",
    "page_view",
];

/// A seeded stream of events over a few hundred sessions: carts in two currencies, orders,
/// retries (ids used again) and visits that resume after the session timeout.
pub(super) fn stream(seed: u64) -> Vec<Event> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut t = 0;
    (0..4_000)
        .map(|i| {
            t += rng.i64(0..2_000);
            let session = format!("s{}", rng.u32(0..300));
            let id = if rng.u8(0..10) == 0 {
                rng.u32(0..i + 1)
            } else {
                i
            };
            let kind = KINDS[rng.usize(0..KINDS.len())];
            let at = t + if rng.u8(0..20) == 0 { 31 * MIN } else { 0 };
            Event {
                channel: Channel::ALL[rng.usize(0..Channel::ALL.len())],
                device: Device::ALL[rng.usize(0..Device::ALL.len())],
                value: Some(f64::from(rng.u32(1..500))),
                currency: Some(["PLN", "EUR"][rng.usize(0..2)].into()),
                order_id: (kind == "purchase").then(|| format!("o{}", rng.u32(0..50))),
                ..Event::new("demo", session, id.to_string(), kind, at)
            }
        })
        .collect()
}

pub(super) fn fixture(config: &Config) -> (Engine, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new(config));
    (Engine::new(config, metrics.clone()), metrics)
}

#[test]
fn a_restored_engine_goes_on_as_the_original_would() {
    let config = Config::default();
    for (seed, cut) in [(1, 0), (2, 1_000), (3, 2_500), (4, 4_000)] {
        let events = stream(seed);
        let (whole, expected) = fixture(&config);
        events.iter().for_each(|e| _ = whole.apply(e));
        let open = whole.open_sessions();
        whole.close_all();

        // The same events with a snapshot and restore after `cut` of them: the first engine
        // lets go of its sessions uncounted, the restored one takes them up in the same metrics.
        let (first, metrics) = fixture(&config);
        events[..cut].iter().for_each(|e| _ = first.apply(e));
        let state = first.snapshot();
        first.release();
        let bounds = Arc::new(Bounds::new(&config.engine));
        let (restored, report) = Engine::restore(&config, metrics.clone(), bounds, &state).unwrap();
        assert_eq!(report.sessions, state.sessions.len());
        assert_eq!(
            report,
            Restored {
                sessions: report.sessions,
                remembered: state.past.sessions.len(),
                ..Default::default()
            }
        );
        // The same closed sessions, each session id's in the same order.
        let by_key = |mut past: crate::engine::PastState| {
            past.sessions.sort_by_key(|p| p.key);
            past
        };
        assert_eq!(
            by_key(restored_past(&config, &state)),
            by_key(state.past.clone()),
            "seed {seed}"
        );
        events[cut..].iter().for_each(|e| _ = restored.apply(e));
        assert_eq!(restored.open_sessions(), open, "seed {seed}");
        assert_eq!(restored.snapshot().sessions.len(), open);
        restored.close_all();
        assert_eq!(
            Report::new(&config, &metrics),
            Report::new(&config, &expected),
            "seed {seed}, cut {cut}"
        );
        assert_eq!(metrics.funnel.carts_open(0).get(), 0);
        assert_eq!(metrics.engine.open_sessions.get(), 0);
    }
}

#[test]
fn restored_gauges_and_duplicates_are_those_of_the_original() {
    let config = Config::default();
    let (first, metrics) = fixture(&config);
    for e in &stream(7)[..1_500] {
        first.apply(e);
    }
    let gauges = |m: &Metrics| {
        let f = &m.funnel;
        let active: Vec<i64> = (0..5).map(|s| f.active(f.row(0, 0, s)).get()).collect();
        (
            active,
            f.carts_open(0).get(),
            sorted_lines(&m.encode(), "touchstream_carts_open_value"),
        )
    };
    let before = gauges(&metrics);
    let state = first.snapshot();
    let restored_metrics = Arc::new(Metrics::new(&config));
    let bounds = Arc::new(Bounds::new(&config.engine));
    let (restored, _) = Engine::restore(&config, restored_metrics.clone(), bounds, &state).unwrap();
    assert_eq!(gauges(&restored_metrics), before);
    // The hash keys came along: an id the original took is a duplicate to the restored one.
    let taken = &stream(7)[1_499];
    assert_eq!(
        restored.apply(taken),
        Outcome::Filtered(FilterReason::Duplicate)
    );
}

#[test]
fn a_restore_maps_names_onto_a_changed_configuration() {
    let config = Config::default();
    let (first, _) = fixture(&config);
    let at = |kind, currency: &str| Event {
        value: Some(10.0),
        currency: Some(currency.into()),
        ..Event::new("demo", "s", kind, kind, 0)
    };
    first.apply(&at("add_to_cart", "GBP"));
    first.apply(&at("begin_checkout", "PLN"));
    let mut state: EngineState = first.snapshot();
    state.sessions.push(SessionState {
        site: 1,
        ..state.sessions[0].clone()
    });
    state.sites.push("closed-shop".into());
    state.currencies.push(vec!["other".into()]);

    // The running configuration no longer has the stage `checkout` nor GBP.
    let mut changed = config.clone();
    changed.journey.stages.retain(|s| s.name != "checkout");
    changed.sites[0].currencies.retain(|c| c != "GBP");
    let metrics = Arc::new(Metrics::new(&changed));
    let bounds = Arc::new(Bounds::new(&changed.engine));
    let (restored, report) = Engine::restore(&changed, metrics.clone(), bounds, &state).unwrap();
    assert_eq!(
        report,
        Restored {
            sessions: 1,
            remembered: 0,
            unknown_site: 1,
            stage_moved: 1,
            journey_dropped: 0,
            // Its last touchpoint was of the stage that is gone.
            last_moved: 1,
            currency_moved: 1,
            label_unknown: 0,
        }
    );
    let s = &restored.snapshot().sessions[0];
    // Furthest stage: `add_to_cart` (index 2), the last one before the stage that is gone.
    assert_eq!(s.progress[0].reached, 3);
    assert_eq!(metrics.funnel.carts_open(0).get(), 1);
    let other = metrics.funnel.currencies[0].codes.len() - 1;
    assert_eq!(
        s.cart
            .iter()
            .find(|(c, _)| usize::from(*c) == other)
            .map(|c| c.1),
        Some(10_000_000)
    );
}

#[test]
fn a_state_that_contradicts_itself_is_refused() {
    let config = Config::default();
    let (first, metrics) = fixture(&config);
    first.apply(&Event::new("demo", "s", "1", "page_view", 0));
    let mut state = first.snapshot();
    state.sessions[0].site = 9;
    let bounds = Arc::new(Bounds::new(&config.engine));
    let err = Engine::restore(&config, metrics.clone(), bounds.clone(), &state)
        .err()
        .unwrap();
    assert!(err.to_string().contains("site index 9"), "{err}");
    state.sessions[0].site = 0;
    state.sessions[0].progress[0].reached = 9;
    let err = Engine::restore(&config, metrics, bounds, &state)
        .err()
        .unwrap();
    assert!(err.to_string().contains("reached 9 stages"), "{err}");
    state.sessions[0].progress[0].journey = 4;
    let bounds = Arc::new(Bounds::new(&config.engine));
    let metrics = Arc::new(Metrics::new(&config));
    let err = Engine::restore(&config, metrics, bounds, &state)
        .err()
        .unwrap();
    assert!(err.to_string().contains("journey index 4"), "{err}");
}

fn sorted_lines(exposition: &str, prefix: &str) -> Vec<String> {
    let mut lines: Vec<String> = (exposition.lines())
        .filter(|l| l.starts_with(prefix))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_restored_engine_rates_new_sessions_as_the_original_would() {
    // Found by review: the new-session rate's buckets were not kept, so after a restart the
    // replayed events of a client over its rate were let in, and `session_rate` went down.
    let mut config = Config::default();
    config.engine.max_open_sessions = 20;
    config.engine.client_sessions_per_second = 1;
    config.engine.client_burst_sessions = 5;
    let events: Vec<Event> = (0..60)
        .map(|i| Event {
            origin: 7 + u64::from(i % 2 == 0),
            received_at_ms: 1_000 + i64::from(i) * 300,
            ..Event::new(
                "demo",
                format!("s{i}"),
                "1",
                "add_to_cart",
                1_000 + i64::from(i) * 300,
            )
        })
        .collect();
    let (whole, expected) = fixture(&config);
    events.iter().for_each(|e| _ = whole.apply(e));
    let refused = expected.ingest.filtered(0, FilterReason::SessionRate).get();
    assert!(refused > 10, "the test needs refusals: {refused}");

    for cut in [15, 30, 45] {
        let (first, metrics) = fixture(&config);
        events[..cut].iter().for_each(|e| _ = first.apply(e));
        let state = first.snapshot();
        first.release();
        let bounds = Arc::new(Bounds::restored(&config.engine, Some(&state.limiter)));
        let (restored, _) = Engine::restore(&config, metrics.clone(), bounds, &state).unwrap();
        events[cut..].iter().for_each(|e| _ = restored.apply(e));
        assert_eq!(
            metrics.ingest.filtered(0, FilterReason::SessionRate).get(),
            refused,
            "cut {cut}"
        );
        assert_eq!(
            Report::new(&config, &metrics),
            Report::new(&config, &expected),
            "cut {cut}"
        );
    }
}

/// The closed sessions an engine restored from `state` remembers, as it would write them.
fn restored_past(config: &Config, state: &EngineState) -> crate::engine::PastState {
    let bounds = Arc::new(Bounds::new(&config.engine));
    let metrics = Arc::new(Metrics::new(config));
    let (engine, _) = Engine::restore(config, metrics, bounds, state).unwrap();
    engine.snapshot().past
}
