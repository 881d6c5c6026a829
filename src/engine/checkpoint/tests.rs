use super::*;
use crate::engine::{
    EngineState, JourneyNames, JourneyProgress, PastSession, PastState, SessionState,
};
use crate::metrics::{Figure, HistogramFigure, Micros};
use crate::ratelimit::LimiterState;

/// A checkpoint of every kind of content, fixed (no random hash keys).
fn known() -> CheckpointData {
    let labels = |pairs: &[(&str, &str)]| {
        (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    CheckpointData {
        lsn: 1_234,
        taken_at_ms: 1_763_800_000_000,
        engine: EngineState {
            keys: [1, 2, 3, 4],
            sites: names(&["demo"]),
            journeys: vec![JourneyNames {
                name: "default".into(),
                stages: names(&[
                    "visit",
                    "product_view",
                    "add_to_cart",
                    "checkout",
                    "purchase",
                ]),
            }],
            touchpoints: names(&["page_view", "add_to_cart", "payment_failed", "other"]),
            friction: names(&["payment_failed"]),
            currencies: vec![names(&["USD", "PLN", "other"])],
            channels: names(&["direct", "email"]),
            devices: names(&["desktop", "mobile"]),
            sessions: vec![SessionState {
                key: (5, 6),
                site: 0,
                first_ms: 1_763_799_000_000,
                last_ms: 1_763_799_900_000,
                ids: vec![7, 8, 9],
                events: 3,
                origin: 10,
                cart: vec![(1, 129_990_000)],
                progress: vec![JourneyProgress {
                    journey: 0,
                    reached: 3,
                    at_ms: 1_763_799_000_000,
                }],
                channel: 1,
                device: 0,
                ordered: false,
                last_touchpoint: Some(2),
                last_friction: Some(0),
            }],
            limiter: LimiterState {
                keys: (11, 12),
                buckets: vec![(13, 4.5, 1_763_799_900_000_000)],
            },
            past: PastState {
                sessions: vec![PastSession {
                    key: (14, 15),
                    site: 0,
                    ids: vec![16, 17],
                    first_ms: 1_763_789_000_000,
                    last_ms: 1_763_790_000_000,
                    closed_ms: 1_763_791_800_000,
                    events: 2,
                    reached: vec![(0, 5)],
                    channel: 0,
                    device: 1,
                }],
                forgotten_ms: Some(1_763_700_000_000),
                next_scan_ms: 1_763_792_000_000,
            },
        },
        figures: Figures {
            counters: vec![Figure {
                family: "touchstream_orders".into(),
                labels: labels(&[("site", "demo"), ("channel", "email"), ("device", "mobile")]),
                value: 2,
            }],
            money: vec![Figure {
                family: "touchstream_revenue".into(),
                labels: labels(&[("site", "demo"), ("currency", "PLN")]),
                value: Micros(u128::from(u64::MAX) * 3),
            }],
            histograms: vec![Figure {
                family: "touchstream_order_value".into(),
                labels: labels(&[("site", "demo"), ("currency", "PLN")]),
                value: HistogramFigure {
                    buckets: vec![("100".into(), 1), ("+Inf".into(), 1)],
                    sum_bits: 129.99f64.to_bits(),
                },
            }],
        },
    }
}

/// The bytes of [`FORMAT`], kept: a change to what a checkpoint holds fails this test, and
/// must bump [`FORMAT`], keep this file as the previous format's and add its migration
/// (`TOUCHSTREAM_BLESS=1` writes the file of a new format).
#[test]
fn format_3_reads_as_it_was_written() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/checkpoint-format-3.bin"
    );
    if std::env::var_os("TOUCHSTREAM_BLESS").is_some() {
        std::fs::write(path, known().encode()).unwrap();
    }
    let kept = std::fs::read(path).unwrap();
    assert_eq!(CheckpointData::decode(&kept).unwrap(), known());
    assert_eq!(
        known().encode(),
        kept,
        "format {FORMAT} changed: bump FORMAT and migrate"
    );
}

/// Format 2's bytes (written by the release before journeys) still load: the one journey's
/// progress becomes the `default` journey's, the state is [`known`] as format 3 writes it.
#[test]
fn format_2_migrates_into_the_default_journey() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/checkpoint-format-2.bin"
    );
    let kept = std::fs::read(path).unwrap();
    assert_eq!(u32::from_le_bytes(kept[..4].try_into().unwrap()), 2);
    assert_eq!(CheckpointData::decode(&kept).unwrap(), before_journeys());
}

/// [`known`] as a checkpoint written before journeys migrates: no last touchpoint or friction.
fn before_journeys() -> CheckpointData {
    let mut want = known();
    (want.engine.touchpoints, want.engine.friction) = (Vec::new(), Vec::new());
    for s in &mut want.engine.sessions {
        (s.last_touchpoint, s.last_friction) = (None, None);
    }
    want
}

/// Format 2's funnel figures lacked the `journey` label: migrated, they are the `default`
/// journey's, and restore into the metrics of the default configuration.
#[test]
fn format_2_figures_become_the_default_journeys() {
    let config = Config::default();
    let metrics = Metrics::new(&config);
    let source = Arc::new(Metrics::new(&config));
    let engine = Engine::new(&config, source.clone());
    for (i, kind) in ["page_view", "add_to_cart", "error"].iter().enumerate() {
        engine.apply(&Event::new("demo", "s", i.to_string(), *kind, 1_000));
    }
    engine.close_all();
    let mut figures = source.figures();
    // Families format 2 did not have.
    figures.counters.retain(|f| !f.family.contains("_last_"));
    for f in &mut figures.counters {
        f.labels.remove("journey");
    }
    for f in &mut figures.histograms {
        f.labels.remove("journey");
    }
    let mut two = postcard::to_extend(
        &v2::FormatTwo {
            lsn: 1,
            taken_at_ms: 0,
            engine: v2::EngineTwo {
                keys: [0; 4],
                sites: vec!["demo".into()],
                stages: vec!["visit".into()],
                currencies: vec![],
                channels: vec![],
                devices: vec![],
                sessions: vec![],
                limiter: LimiterState {
                    keys: (0, 0),
                    buckets: vec![],
                },
                past: v2::PastTwo::default(),
            },
            figures,
        },
        2u32.to_le_bytes().to_vec(),
    )
    .unwrap();
    let migrated = CheckpointData::decode(&two).unwrap();
    let restored = metrics.restore_figures(&migrated.figures);
    assert!(restored.skipped.is_empty(), "{:?}", restored.skipped);
    let text = metrics.encode();
    for line in [
        r#"touchstream_funnel_sessions_total{site="demo",journey="default",stage="add_to_cart",channel="direct",device="desktop"} 1"#,
        r#"touchstream_funnel_dropoffs_total{site="demo",journey="default",stage="add_to_cart",channel="direct",device="desktop"} 1"#,
        r#"touchstream_friction_total{site="demo",journey="default",stage="add_to_cart",kind="error"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing");
    }
    two.truncate(4);
    assert!(CheckpointData::decode(&two).is_err());
}

/// Format 1's bytes (written by the release before the dedup horizon) still load: the same
/// sessions, figures and rates, no closed session remembered, and the effective horizon
/// starting at the checkpoint.
#[test]
fn format_1_migrates() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/checkpoint-format-1.bin"
    );
    let kept = std::fs::read(path).unwrap();
    assert_eq!(u32::from_le_bytes(kept[..4].try_into().unwrap()), 1);
    let want = before_journeys();
    let want = CheckpointData {
        engine: EngineState {
            past: PastState {
                forgotten_ms: Some(want.taken_at_ms),
                ..PastState::default()
            },
            ..want.engine.clone()
        },
        ..want
    };
    let migrated = CheckpointData::decode(&kept).unwrap();
    assert_eq!(migrated, want);
    // And an engine takes it up and goes on: its session back, a new one counted.
    let config = Config::default();
    let metrics = Arc::new(Metrics::new(&config));
    let bounds = Arc::new(crate::engine::Bounds::new(&config.engine));
    let (engine, restored) =
        Engine::restore(&config, metrics.clone(), bounds, &migrated.engine).unwrap();
    assert_eq!((restored.sessions, restored.remembered), (1, 0));
    let event = Event::new("demo", "s", "1", "page_view", migrated.taken_at_ms);
    assert_eq!(engine.apply(&event), crate::engine::Outcome::Applied);
    assert_eq!(engine.open_sessions(), 2);
}
use crate::config::Config;
use crate::engine::Engine;
use crate::event::Event;
use crate::metrics::Metrics;
use std::sync::Arc;

#[test]
fn a_checkpoint_reads_back_and_a_newer_or_unknown_one_is_refused() {
    let config = Config::default();
    let metrics = Arc::new(Metrics::new(&config));
    let engine = Engine::new(&config, metrics.clone());
    engine.apply(&Event {
        value: Some(1e12),
        ..Event::new("demo", "s", "1", "purchase", 0)
    });
    let data = CheckpointData {
        lsn: 41,
        taken_at_ms: 1_763_800_000_000,
        engine: engine.snapshot(),
        figures: metrics.figures(),
    };
    let bytes = data.encode();
    assert_eq!(CheckpointData::decode(&bytes).unwrap(), data);

    let mut newer = bytes.clone();
    newer[..4].copy_from_slice(&(FORMAT + 1).to_le_bytes());
    let err = CheckpointData::decode(&newer).unwrap_err().to_string();
    assert!(
        err.contains("newer touchstream") && err.contains("move the state directory"),
        "{err}"
    );
    let mut unknown = bytes;
    unknown[..4].copy_from_slice(&0u32.to_le_bytes());
    let err = CheckpointData::decode(&unknown).unwrap_err().to_string();
    assert!(err.contains("format 0"), "{err}");
    assert!(matches!(
        CheckpointData::decode(&[1, 0]),
        Err(CheckpointFormatError::Short)
    ));
}

#[test]
fn a_start_falls_back_past_a_checkpoint_that_does_not_decode_but_not_past_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let write =
        |lsn, bytes: &[u8]| crate::state::checkpoint::write(dir.path(), lsn, bytes).unwrap();
    let mut older = known();
    older.lsn = 10;
    write(10, &older.encode());
    // Whole on disk (its checksum holds), but not a checkpoint of this format's shape.
    let mut garbled = FORMAT.to_le_bytes().to_vec();
    garbled.extend([0xff; 40]);
    write(20, &garbled);
    let (c, data) = crate::engine::durable::newest_usable(dir.path()).unwrap();
    assert_eq!((c.unwrap().lsn, data.unwrap()), (10, older.clone()));
    // Set aside, so the next checkpoint (at an lsn it may have claimed) is written.
    assert!(
        dir.path()
            .join("checkpoints/00000000000000000020.ckpt.unreadable")
            .exists()
    );
    write(20, &older.encode());

    let mut newer = (FORMAT + 1).to_le_bytes().to_vec();
    newer.extend(b"from the future");
    write(30, &newer);
    let err = crate::engine::durable::newest_usable(dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("newer touchstream"), "{err:#}");
}
