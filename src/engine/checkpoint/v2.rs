//! Checkpoint format 2 (issue 14): one journey, unnamed, whose stages every session's
//! `reached` counts. Read and migrated into the journey named `default` (what `[journey]`'s
//! map is called), never written.

use super::CheckpointData;
use crate::config::DEFAULT_JOURNEY;
use crate::engine::{
    EngineState, JourneyNames, JourneyProgress, PastSession, PastState, SessionState,
};
use crate::metrics::Figures;
use crate::ratelimit::LimiterState;
use serde::{Deserialize, Serialize};

/// Families that gained the `journey` label with format 3.
const JOURNEY_FAMILIES: &[&str] = &[
    "touchstream_funnel_sessions",
    "touchstream_funnel_dropoffs",
    "touchstream_stage_reached_seconds",
    "touchstream_friction",
];

/// [`CheckpointData`] as format 2 wrote it.
#[derive(Serialize, Deserialize)]
pub struct FormatTwo {
    pub lsn: u64,
    pub taken_at_ms: i64,
    pub engine: EngineTwo,
    pub figures: Figures,
}

/// [`EngineState`] as format 2 wrote it.
#[derive(Serialize, Deserialize)]
pub struct EngineTwo {
    pub keys: [u64; 4],
    pub sites: Vec<String>,
    pub stages: Vec<String>,
    pub currencies: Vec<Vec<String>>,
    pub channels: Vec<String>,
    pub devices: Vec<String>,
    pub sessions: Vec<SessionTwo>,
    pub limiter: LimiterState,
    pub past: PastTwo,
}

/// [`SessionState`] as formats 1 and 2 wrote it.
#[derive(Serialize, Deserialize)]
pub struct SessionTwo {
    pub key: (u64, u64),
    pub site: u16,
    pub first_ms: i64,
    pub last_ms: i64,
    pub ids: Vec<u64>,
    pub events: u32,
    pub origin: u32,
    pub cart: Vec<(u16, i64)>,
    pub reached: u8,
    pub channel: u8,
    pub device: u8,
    pub ordered: bool,
}

/// [`PastState`] as format 2 wrote it.
#[derive(Default, Serialize, Deserialize)]
pub struct PastTwo {
    pub sessions: Vec<PastSessionTwo>,
    pub forgotten_ms: Option<i64>,
    pub next_scan_ms: i64,
}

/// [`PastSession`] as format 2 wrote it.
#[derive(Serialize, Deserialize)]
pub struct PastSessionTwo {
    pub key: (u64, u64),
    pub site: u16,
    pub ids: Vec<u64>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub closed_ms: i64,
    pub events: u32,
    pub reached: u8,
    pub channel: u8,
    pub device: u8,
}

impl From<FormatTwo> for CheckpointData {
    /// Every session's progress, and every funnel figure, becomes the `default` journey's.
    fn from(two: FormatTwo) -> Self {
        let e = two.engine;
        let sessions = (e.sessions.into_iter())
            .map(|s| SessionState {
                key: s.key,
                site: s.site,
                first_ms: s.first_ms,
                last_ms: s.last_ms,
                ids: s.ids,
                events: s.events,
                origin: s.origin,
                cart: s.cart,
                progress: (s.reached > 0)
                    .then_some(JourneyProgress {
                        journey: 0,
                        reached: s.reached,
                        at_ms: s.first_ms,
                    })
                    .into_iter()
                    .collect(),
                channel: s.channel,
                device: s.device,
                ordered: s.ordered,
                last_touchpoint: None,
                last_friction: None,
            })
            .collect();
        let past = (e.past.sessions.into_iter())
            .map(|p| PastSession {
                key: p.key,
                site: p.site,
                ids: p.ids,
                first_ms: p.first_ms,
                last_ms: p.last_ms,
                closed_ms: p.closed_ms,
                events: p.events,
                reached: (p.reached > 0)
                    .then_some((0, p.reached))
                    .into_iter()
                    .collect(),
                channel: p.channel,
                device: p.device,
            })
            .collect();
        let mut figures = two.figures;
        let named = |family: &String| JOURNEY_FAMILIES.contains(&family.as_str());
        let labelled = (figures.counters.iter_mut())
            .filter(|f| named(&f.family))
            .map(|f| &mut f.labels)
            .chain(
                (figures.histograms.iter_mut())
                    .filter(|f| named(&f.family))
                    .map(|f| &mut f.labels),
            );
        for labels in labelled {
            labels.insert("journey".into(), DEFAULT_JOURNEY.into());
        }
        CheckpointData {
            lsn: two.lsn,
            taken_at_ms: two.taken_at_ms,
            engine: EngineState {
                keys: e.keys,
                sites: e.sites,
                journeys: vec![JourneyNames {
                    name: DEFAULT_JOURNEY.into(),
                    stages: e.stages,
                }],
                touchpoints: Vec::new(),
                friction: Vec::new(),
                currencies: e.currencies,
                channels: e.channels,
                devices: e.devices,
                sessions,
                limiter: e.limiter,
                past: PastState {
                    sessions: past,
                    forgotten_ms: e.past.forgotten_ms,
                    next_scan_ms: e.past.next_scan_ms,
                },
            },
            figures,
        }
    }
}
