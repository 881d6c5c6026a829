//! Figures without an engine: what they hold, how they travel and what a restore skips. The
//! helpers are shared with the engine's tests (`engine::tests::figures`), which drive them
//! with real events.

use super::*;
use crate::config::Config;
use crate::event::{Channel, Device, FilterReason};
use crate::metrics::{IngestMetrics, Route};

/// The counter families a restore brings back (the brief's list, written out here rather than
/// read from the ledger, so a family dropped from it fails the tests).
const COUNTERS: [&str; 16] = [
    "touchstream_funnel_sessions",
    "touchstream_funnel_dropoffs",
    "touchstream_funnel_dropoffs_last_touchpoint",
    "touchstream_funnel_dropoffs_last_friction",
    "touchstream_carts_opened",
    "touchstream_carts_abandoned",
    "touchstream_orders",
    "touchstream_touchpoints",
    "touchstream_friction",
    "touchstream_engine_sessions_evicted",
    "touchstream_engine_carts_evicted",
    "touchstream_engine_events_applied",
    "touchstream_engine_events_unknown_site",
    "touchstream_engine_late_events",
    "touchstream_revenue",
    "touchstream_carts_abandoned_value",
];
const HISTOGRAMS: [&str; 2] = [
    "touchstream_stage_reached_seconds",
    "touchstream_order_value",
];

/// Whether an exposition sample belongs to a series a restore brings back.
fn kept(line: &str) -> bool {
    let name = line.split(['{', ' ']).next().unwrap_or_default();
    let engine_reason = (IngestMetrics::ENGINE_REASONS.iter())
        .any(|r| line.contains(&format!("reason=\"{}\"", r.as_str())));
    COUNTERS.iter().any(|f| name == format!("{f}_total"))
        || (HISTOGRAMS.iter()).any(|f| {
            ["_sum", "_count", "_bucket"]
                .map(|s| format!("{f}{s}"))
                .contains(&name.into())
        })
        || (name == "touchstream_events_filtered_total" && engine_reason)
}

/// The exposition's samples, split into those a restore brings back and the rest, each sorted
/// (a family's series print in hash-map order).
pub(crate) fn split(m: &Metrics) -> (Vec<String>, Vec<String>) {
    let text = m.encode();
    let samples = text.lines().filter(|l| !l.starts_with('#'));
    let (mut kept, mut rest): (Vec<String>, Vec<String>) =
        samples.map(String::from).partition(|l| kept(l));
    kept.sort();
    rest.sort();
    (kept, rest)
}

/// Through JSON and back, as a checkpoint carries them.
pub(crate) fn through_json(f: &Figures) -> Figures {
    let text = serde_json::to_string(f).unwrap();
    let back: Figures = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, f);
    back
}

/// Writes into every kind of series there is, kept or not; `scale` varies the amounts.
fn write_everything(m: &Metrics, scale: u64) {
    let f = &m.funnel;
    for (stage, seconds) in [(0, 0.0), (1, 0.1), (2, 0.2), (4, 7200.5)] {
        f.reached(f.row(0, 0, stage), Channel::Email, Device::Mobile)
            .inc_by(scale);
        f.stage_seconds(f.row(0, 0, stage))
            .observe(seconds * scale as f64);
    }
    f.dropoffs(f.row(0, 0, 1), Channel::Direct, Device::Tablet)
        .inc();
    f.carts_abandoned(0, Channel::Social, Device::Desktop).inc();
    // Three times i64::MAX micro-units: past 2^64.
    for _ in 0..3 {
        f.carts_abandoned_value(0, 2).add(i64::MAX);
        f.revenue(0, 1).add(i64::MAX);
    }
    f.revenue(0, 4).add(1);
    f.orders(0, Channel::Other, Device::Desktop).inc_by(scale);
    for v in [0.3, 129.99, 1e12, 4.999 * scale as f64] {
        f.order_value(0, 1).observe(v);
    }
    f.touchpoint(0, 1, 2).inc();
    f.friction(f.row(0, 0, 3), 1).inc_by(scale);
    let e = &m.engine;
    for (n, c) in [&e.applied, &e.unknown_site, &e.evicted, &e.carts_evicted]
        .into_iter()
        .enumerate()
    {
        c.inc_by(scale + n as u64);
    }
    for reason in FilterReason::ALL {
        m.ingest.filtered(0, *reason).inc_by(scale);
    }
    // Not kept: gauges, the collector's and the process's own.
    f.active(f.row(0, 0, 2)).inc();
    f.carts_open(0).inc();
    f.carts_open_value(0, 1).add(5_000_000);
    m.ingest.received(0).inc();
    e.open_sessions.inc();
    e.observe_lag(0, 1_500);
    m.http.record(Route::Events, 200, 0.01);
}

#[test]
fn figures_round_trip_exactly_and_hold_only_what_the_engine_writes() {
    let config = Config::default();
    let (original, fresh) = (Metrics::new(&config), Metrics::new(&config));
    write_everything(&original, 3);
    let figures = through_json(&original.figures());

    let restored = Metrics::new(&config);
    let report = restored.restore_figures(&figures);
    let total = figures.counters.len() + figures.money.len() + figures.histograms.len();
    assert_eq!((report.restored, report.skipped), (total, vec![]));
    let (kept, rest) = split(&original);
    assert_eq!(split(&restored).0, kept);
    // Nothing else came back, though the original had it.
    assert_eq!(split(&restored).1, split(&fresh).1);
    assert_ne!(rest, split(&fresh).1);

    // Money past 2^64 micro-units travels as exact digits.
    let json = serde_json::to_string(&figures).unwrap();
    assert!(json.contains("\"27670116110564327421\""), "{json}");
    assert_eq!(restored.funnel.revenue(0, 1).micros(), 3 * i64::MAX as u128);
    let value = serde_json::to_value(&figures).unwrap();
    assert_eq!(serde_json::from_value::<Figures>(value).unwrap(), figures);
    // Only the engine's filter reasons; no gauge; every family is one of the kept ones.
    let families: Vec<&str> = (figures.counters.iter().map(|f| &*f.family))
        .chain(figures.money.iter().map(|f| &*f.family))
        .chain(figures.histograms.iter().map(|f| &*f.family))
        .collect();
    for family in &families {
        let known = COUNTERS.contains(family) || HISTOGRAMS.contains(family);
        assert!(
            known || *family == "touchstream_events_filtered",
            "{family}"
        );
    }
    let reasons: Vec<&str> = (figures.counters.iter())
        .filter_map(|f| f.labels.get("reason").map(|r| &**r))
        .collect();
    assert_eq!(
        reasons,
        [
            "duplicate",
            "session_limit",
            "session_memory",
            "session_rate"
        ]
    );
}

#[test]
fn restored_metrics_go_on_as_the_original() {
    let config = Config::default();
    let (whole, restored) = (Metrics::new(&config), Metrics::new(&config));
    write_everything(&whole, 2);
    restored.restore_figures(&through_json(&whole.figures()));
    write_everything(&whole, 5);
    write_everything(&restored, 5);
    assert_eq!(split(&restored).0, split(&whole).0);
    // Restoring adds: a second restore doubles what the first brought.
    let twice = Metrics::new(&config);
    let figures = whole.figures();
    twice.restore_figures(&figures);
    twice.restore_figures(&figures);
    assert_eq!(
        twice.funnel.orders_total(0),
        2 * whole.funnel.orders_total(0)
    );
}

/// `pairs` with one label's value changed.
fn with<'a>(
    pairs: &[(&'a str, &'a str)],
    (name, value): (&'a str, &'a str),
) -> Vec<(&'a str, &'a str)> {
    (pairs.iter())
        .map(|(k, v)| (*k, if *k == name { value } else { v }))
        .collect()
}

fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    (pairs.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_restore_skips_what_has_no_place_and_says_why() {
    let metrics = Metrics::new(&Config::default());
    let counter = |family: &str, labels: &[(&str, &str)]| Figure {
        family: family.into(),
        labels: labels_of(labels),
        value: 1,
    };
    let reached = [
        ("site", "demo"),
        ("journey", "default"),
        ("stage", "visit"),
        ("channel", "email"),
        ("device", "mobile"),
    ];
    let mut histogram = metrics
        .funnel
        .stage_seconds(metrics.funnel.row(0, 0, 0))
        .figure();
    histogram.buckets.pop();
    let figures = Figures {
        counters: vec![
            counter("touchstream_funnel_sessions", &reached),
            counter("touchstream_gone", &[]),
            counter("touchstream_engine_events_applied", &[("site", "demo")]),
            counter("touchstream_funnel_sessions", &reached[..4]),
            counter(
                "touchstream_funnel_sessions",
                &with(&reached, ("stage", "pay")),
            ),
            counter(
                "touchstream_funnel_sessions",
                &with(&reached, ("channel", "tv")),
            ),
            counter(
                "touchstream_events_filtered",
                &[("site", "demo"), ("reason", "bot")],
            ),
            counter("touchstream_funnel_active_sessions", &reached[..3]),
            counter(
                "touchstream_revenue",
                &[("site", "demo"), ("currency", "EUR")],
            ),
        ],
        money: vec![],
        histograms: vec![Figure {
            family: "touchstream_stage_reached_seconds".into(),
            labels: labels_of(&[("site", "demo"), ("journey", "default"), ("stage", "visit")]),
            value: histogram,
        }],
    };
    let report = metrics.restore_figures(&figures);
    let reasons: Vec<SkipReason> = report.skipped.into_iter().map(|s| s.reason).collect();
    let not = |label: &str, value: &str| SkipReason::NotConfigured {
        label: label.into(),
        value: value.into(),
    };
    assert_eq!(
        reasons,
        [
            SkipReason::UnknownFamily,
            SkipReason::UnknownLabel("site".into()),
            SkipReason::MissingLabel("device".into()),
            not("stage", "pay"),
            not("channel", "tv"),
            not("reason", "bot"),
            SkipReason::UnknownFamily,
            SkipReason::WrongKind,
            SkipReason::BucketLayout,
        ]
    );
    assert_eq!(report.restored, 1);
    assert_eq!(metrics.funnel.reached_total(metrics.funnel.row(0, 0, 0)), 1);
    assert_eq!(
        metrics
            .funnel
            .stage_seconds(metrics.funnel.row(0, 0, 0))
            .count(),
        0
    );
}

#[test]
fn a_space_indexes_its_label_sets_in_order_and_locates_them_by_name() {
    let rows = ["a", "b"]
        .map(|s| crate::metrics::labels([("site", s)]))
        .to_vec();
    let space = Space::new(rows)
        .by("x", ["1", "2", "3"])
        .by("y", ["p", "q"]);
    assert_eq!(space.len(), 12);
    let sets = space.sets();
    assert_eq!(
        sets[0],
        crate::metrics::labels([("site", "a"), ("x", "1"), ("y", "p")])
    );
    assert_eq!(
        sets[7],
        crate::metrics::labels([("site", "b"), ("x", "1"), ("y", "q")])
    );
    assert_eq!(
        sets[11],
        crate::metrics::labels([("site", "b"), ("x", "3"), ("y", "q")])
    );
    for set in &sets {
        let named = set
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(&space.locate(&named).unwrap(), set);
    }
}
