//! Figures of real runs: taken, carried as JSON and restored into a fresh process, the engine's
//! counters are where they stood, and with the sessions' snapshot the process counts on as if
//! it had never stopped.

use super::snapshot::{fixture, stream};
use super::*;
use crate::config::SiteConfig;
use crate::metrics::SkipReason;
use crate::metrics::figures::tests::{split, through_json};

/// A store small enough to evict and sessions short enough to hit their event limit.
fn busy() -> Config {
    let mut config = Config::default();
    config.engine.max_open_sessions = 100;
    config.engine.max_session_events = 12;
    config
}

/// A seeded stream for `site`, with what it lacks: orders and carts in GBP, an unknown and an
/// absent currency, friction, 25 orders and 27 cart additions of the largest value (each sum
/// past 2^64 micro-units), retried orders and events, and an event for a site not configured.
fn events(site: &str, seed: u64) -> Vec<Event> {
    let mut out: Vec<Event> = (stream(seed).into_iter())
        .map(|e| Event {
            site: site.into(),
            ..e
        })
        .collect();
    let t = out.last().map_or(0, |e| e.event_time_ms);
    let valued = |session: &str, id: &str, kind: &str, value: f64, currency: Option<&str>| Event {
        value: Some(value),
        currency: currency.map(String::from),
        order_id: (kind == "purchase").then(|| id.to_string()),
        ..Event::new(site, session, id, kind, t)
    };
    for (i, currency) in ["GBP", "GBP", "XYZ"].iter().enumerate() {
        let session = format!("gb{i}");
        out.push(valued(&session, "c", "add_to_cart", 12.5, Some(currency)));
        out.push(valued(&session, "f", "payment_failed", 0.0, None));
        out.push(valued(&session, "o", "purchase", 99.99, Some(currency)));
        out.push(valued(&session, "o", "purchase", 99.99, Some(currency)));
    }
    out.push(valued("none", "o", "purchase", 7.25, None));
    // A session takes 12 events here, and a cart holds up to i64::MAX micro-units: orders in
    // sessions of their own, carts of 9e18 micro-units in sessions of several events (the
    // last a full store evicts).
    let pln = Some("PLN");
    for i in 0..25 {
        out.push(valued(&format!("whale{i}"), "o", "purchase", 1e12, pln));
    }
    for i in 0..27 {
        let (session, id) = (format!("cart{}", i / 9), format!("c{i}"));
        out.push(valued(&session, &id, "add_to_cart", 1e12, Some("EUR")));
    }
    out.push(Event::new("nowhere", "s", "1", "page_view", t));
    out
}

fn run(engine: &Engine, events: &[Event]) {
    events.iter().for_each(|e| _ = engine.apply(e));
}

#[test]
fn the_figures_of_a_run_restore_exactly_into_a_fresh_process() {
    let config = busy();
    let (engine, metrics) = fixture(&config);
    run(&engine, &events("demo", 21));
    // The collector's counters, not the engine's: never restored.
    metrics.ingest.received(0).inc_by(7);
    metrics.ingest.filtered(0, FilterReason::Bot).inc();
    let fresh = split(&Metrics::new(&config)).1;
    for closed in [false, true] {
        if closed {
            engine.close_all();
        }
        let figures = through_json(&metrics.figures());
        let restored = Metrics::new(&config);
        let report = restored.restore_figures(&figures);
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        // Every kept series is back, histogram buckets and sums included, to the byte; nothing
        // else (gauges of open sessions, the collector's counters) is.
        assert_eq!(split(&restored).0, split(&metrics).0, "closed: {closed}");
        assert_eq!(split(&restored).1, fresh);
        assert_ne!(split(&metrics).1, fresh);
        // Money past 2^64 micro-units, exact (the exposition shows it rounded to an f64).
        let (f, r) = (&metrics.funnel, &restored.funnel);
        let (pln, eur) = (2, 1);
        assert!(f.revenue(0, pln).micros() > u128::from(u64::MAX));
        assert_eq!(r.revenue(0, pln).micros(), f.revenue(0, pln).micros());
        let abandoned =
            |m: &crate::metrics::FunnelMetrics| m.carts_abandoned_value(0, eur).micros();
        assert_eq!(abandoned(r), abandoned(f));
        assert_eq!(abandoned(f) > u128::from(u64::MAX), closed);
    }
    // The run wrote every kind of kept figure.
    let figures = metrics.figures();
    let has = |family: &str| {
        let name = |f: &str| f == family;
        (figures.counters.iter()).any(|f| name(&f.family))
            || (figures.money.iter()).any(|f| name(&f.family))
            || (figures.histograms.iter()).any(|f| name(&f.family))
    };
    for family in [
        "touchstream_funnel_sessions",
        "touchstream_funnel_dropoffs",
        "touchstream_carts_abandoned",
        "touchstream_carts_abandoned_value",
        "touchstream_orders",
        "touchstream_revenue",
        "touchstream_order_value",
        "touchstream_stage_reached_seconds",
        "touchstream_touchpoints",
        "touchstream_friction",
        "touchstream_engine_sessions_evicted",
        "touchstream_engine_carts_evicted",
        "touchstream_engine_events_applied",
        "touchstream_engine_events_unknown_site",
        "touchstream_engine_late_events",
        "touchstream_events_filtered",
    ] {
        assert!(has(family), "{family} not in the figures");
    }
    let filtered = |reason: FilterReason| metrics.ingest.filtered(0, reason).get();
    assert!(filtered(FilterReason::Duplicate) > 0 && filtered(FilterReason::SessionLimit) > 0);
}

#[test]
fn a_restored_process_counts_on_as_if_it_had_never_stopped() {
    let config = busy();
    let events = events("demo", 22);
    let (whole, expected) = fixture(&config);
    run(&whole, &events);
    let open = split(&expected);
    whole.close_all();
    let closed = split(&expected);
    for cut in [0, 1_000, 2_500, events.len()] {
        // A checkpoint after `cut` events: the sessions and the figures. The process stops;
        // a fresh one takes both up and replays the rest of the log.
        let (first, metrics) = fixture(&config);
        run(&first, &events[..cut]);
        let (state, figures) = (first.snapshot(), through_json(&metrics.figures()));
        drop((first, metrics));
        let fresh = Arc::new(Metrics::new(&config));
        assert!(fresh.restore_figures(&figures).skipped.is_empty());
        let bounds = Arc::new(Bounds::new(&config.engine));
        let (restored, _) = Engine::restore(&config, fresh.clone(), bounds, &state).unwrap();
        run(&restored, &events[cut..]);
        // Every counter and histogram, and the gauges the sessions rebuilt, as the whole run's.
        assert_eq!(split(&fresh), open, "cut {cut}");
        restored.close_all();
        assert_eq!(split(&fresh), closed, "cut {cut}");
    }
}

#[test]
fn figures_restore_into_a_changed_configuration_skipping_only_what_is_gone() {
    let mut config = Config::default();
    config.sites.push(SiteConfig {
        id: "shop".into(),
        ..SiteConfig::default()
    });
    let (engine, metrics) = fixture(&config);
    run(&engine, &[events("demo", 31), events("shop", 32)].concat());
    engine.close_all();
    let figures = through_json(&metrics.figures());

    // The site `shop`, the stage `checkout` and the currency GBP are gone.
    let mut changed = Config::default();
    changed.journey.stages.retain(|s| s.name != "checkout");
    changed.sites[0].currencies.retain(|c| c != "GBP");
    let checkout: Vec<String> = (config.journey.stages.iter())
        .find(|s| s.name == "checkout")
        .map(|s| s.touchpoints.clone())
        .unwrap();
    let restored = Metrics::new(&changed);
    let report = restored.restore_figures(&figures);

    let mut gone = std::collections::BTreeSet::new();
    for s in &report.skipped {
        let SkipReason::NotConfigured { label, value } = &s.reason else {
            panic!("{s:?}");
        };
        assert_eq!(s.labels.get(label), Some(value), "{s:?}");
        let expected = matches!(
            (label.as_str(), value.as_str()),
            ("site", "shop") | ("stage", "checkout") | ("currency", "GBP")
        ) || (label == "touchpoint" && checkout.contains(value));
        assert!(expected, "{s:?}");
        gone.insert(label.as_str());
    }
    assert_eq!(
        gone.into_iter().collect::<Vec<_>>(),
        ["currency", "site", "stage", "touchpoint"]
    );
    let total = figures.counters.len() + figures.money.len() + figures.histograms.len();
    assert_eq!(report.restored + report.skipped.len(), total);

    // What is still configured came back: demo's stages that remain, by name, its orders,
    // revenue in the currencies kept, duplicates and the engine's own counters.
    let (f, r) = (&metrics.funnel, &restored.funnel);
    for (now, was) in [(0, 0), (1, 1), (2, 2), (3, 4)] {
        assert_eq!(
            r.reached_total(r.row(0, 0, now)),
            f.reached_total(f.row(0, 0, was))
        );
    }
    assert_eq!(r.orders_total(0), f.orders_total(0));
    for (now, was) in [(0, 0), (1, 1), (2, 2), (3, 4)] {
        assert_eq!(r.revenue(0, now).micros(), f.revenue(0, was).micros());
    }
    assert!(
        f.revenue(0, 3).micros() > 0,
        "GBP was counted, then left out"
    );
    let duplicates = |m: &Metrics| m.ingest.filtered(0, FilterReason::Duplicate).get();
    assert_eq!(duplicates(&restored), duplicates(&metrics));
    assert_eq!(restored.engine.applied.get(), metrics.engine.applied.get());
}
