//! An engine's open sessions as data, for checkpoints: [`Engine::snapshot`] takes it and
//! [`Engine::restore`] builds an engine from it.
//!
//! The state names what the configuration may change between the two: sites, journeys and
//! their stages, currencies, channels and devices are written as their names, and a restore
//! maps them onto the running configuration. A site that is no longer configured loses its
//! sessions; progress in a journey the site no longer runs is dropped; a stage that is gone
//! maps to the furthest earlier stage still there; a currency no longer listed becomes `other`
//! (each counted in [`Restored`], for the log). The hash keys are written too:
//! the restored sessions' keys and ids were hashed with them, so the engine goes on with them.
//!
//! Gauges and the store's bounds (open sessions, the id pool and each client's share of it)
//! are not written: they follow from the sessions and are rebuilt as each is put back. The
//! new-session rate's buckets are written ([`EngineState::limiter`]): the caller builds the
//! restored engine's [`Bounds`] from them, so it refuses what the stopped one would have.

use super::past::{Closed, Ids, PastState};
use super::session::Session;
use super::{Bounds, Engine, SessionKey};
use crate::config::Config;
use crate::event::{Channel, Device};
use crate::journey::MAX_SITE_JOURNEYS;
use crate::metrics::Metrics;
use crate::ratelimit::LimiterState;
use mapping::Mapping;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

mod mapping;

/// An engine's open sessions and what they are written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// The keys of the session and id hashes.
    pub keys: [u64; 4],
    /// Names behind the sessions' indices.
    pub sites: Vec<String>,
    /// Every configured journey, with its stages.
    pub journeys: Vec<JourneyNames>,
    /// Touchpoint label values and friction kinds, what sessions' last ones index.
    pub touchpoints: Vec<String>,
    pub friction: Vec<String>,
    /// Each site's currency codes, `other` last: a cart's currency index is into its site's.
    pub currencies: Vec<Vec<String>>,
    pub channels: Vec<String>,
    pub devices: Vec<String>,
    pub sessions: Vec<SessionState>,
    /// The new-session rate's buckets (of every engine sharing the bounds).
    pub limiter: LimiterState,
    /// Closed sessions remembered for the dedup horizon.
    pub past: PastState,
}

/// A journey's name and its stages' names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyNames {
    pub name: String,
    pub stages: Vec<String>,
}

/// A session's progress in one journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyProgress {
    /// Index into [`EngineState::journeys`].
    pub journey: u16,
    /// Stages reached (the furthest is `reached - 1`).
    pub reached: u8,
    /// When the furthest was reached (an ordered journey times its next step from it).
    pub at_ms: i64,
}

/// One open session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub key: (u64, u64),
    pub site: u16,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Hashes of its event and order ids.
    pub ids: Vec<u64>,
    pub events: u32,
    pub origin: u32,
    pub cart: Vec<(u16, i64)>,
    /// Progress in each journey entered.
    pub progress: Vec<JourneyProgress>,
    pub channel: u8,
    pub device: u8,
    pub ordered: bool,
    /// The last touchpoint and friction kind received, as indices into
    /// [`EngineState::touchpoints`] and [`EngineState::friction`].
    pub last_touchpoint: Option<u16>,
    pub last_friction: Option<u16>,
}

/// What a restore had to change to fit the running configuration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    pub sessions: usize,
    /// Closed sessions remembered for the dedup horizon.
    pub remembered: usize,
    /// Sessions of sites no longer configured, left out.
    pub unknown_site: usize,
    /// Sessions whose furthest stage is gone, moved to an earlier one (counted per journey).
    pub stage_moved: usize,
    /// Progress in journeys the session's site no longer runs, dropped (counted per journey).
    pub journey_dropped: usize,
    /// Cart values in a currency no longer listed, moved to `other`.
    pub currency_moved: usize,
    /// Last touchpoints and friction kinds no longer configured (counted as `other` and `none`).
    pub last_moved: usize,
    /// Sessions whose channel or device the running code does not know (a newer writer's),
    /// kept as `other` / `desktop` (each label counted).
    pub label_unknown: usize,
}

impl Restored {
    /// How many things the restore had to change to fit the running configuration (worth a
    /// warning: figures or progress were moved or left out).
    pub fn changed(&self) -> usize {
        self.unknown_site
            + self.stage_moved
            + self.journey_dropped
            + self.currency_moved
            + self.last_moved
            + self.label_unknown
    }
}

/// Why a state cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("session {0} names site index {1}, but the state lists {2} sites")]
    BadSite(usize, u16, usize),
    #[error("session {0} reached {1} stages, but its journey has {2}")]
    BadStage(usize, u8, usize),
    #[error("session {0} names journey index {1}, but the state lists {2} journeys")]
    BadJourney(usize, u16, usize),
}

impl Engine {
    /// The engine's open sessions as data. Call it between events (the durable driver does):
    /// sessions changed while it runs may be taken before or after the change.
    pub fn snapshot(&self) -> EngineState {
        let mut sessions = Vec::with_capacity(self.sessions.len());
        let journeys = &self.journeys;
        sessions.extend(self.sessions.iter().map(|e| {
            let (k, s) = (e.key(), e.value());
            let slots = &journeys.sites[usize::from(s.site)].journeys;
            let progress = (slots.iter().enumerate())
                .map(|(slot, &j)| (j, s.progress(slot, journeys.journeys[j].ordered)))
                .filter(|(_, p)| p.reached > 0)
                .map(|(j, p)| JourneyProgress {
                    journey: j as u16,
                    reached: p.reached,
                    at_ms: p.at_ms,
                })
                .collect();
            SessionState {
                key: (k.0, k.1),
                site: s.site,
                first_ms: s.first_ms,
                last_ms: s.last_ms,
                ids: s.ids.iter().collect(),
                events: s.events,
                origin: s.origin,
                cart: s.cart_lines().collect(),
                progress,
                channel: s.channel as u8,
                device: s.device as u8,
                ordered: s.ordered(),
                last_touchpoint: Some(u16::from(s.last_touchpoint)),
                last_friction: s.last_friction.checked_sub(1).map(u16::from),
            }
        }));
        let mut sites: Vec<(&String, &u16)> = self.sites.iter().collect();
        sites.sort_by_key(|(_, i)| **i);
        EngineState {
            keys: self.keys,
            sites: sites.into_iter().map(|(s, _)| s.clone()).collect(),
            journeys: (journeys.journeys.iter())
                .map(|j| JourneyNames {
                    name: j.name.clone(),
                    stages: j.stages.iter().map(|s| s.name.clone()).collect(),
                })
                .collect(),
            touchpoints: journeys.touchpoints.clone(),
            friction: journeys.friction.clone(),
            currencies: (self.metrics.funnel.currencies.iter())
                .map(|c| c.codes.clone())
                .collect(),
            channels: Channel::ALL.iter().map(|c| c.as_str().into()).collect(),
            devices: Device::ALL.iter().map(|d| d.as_str().into()).collect(),
            sessions,
            limiter: self.bounds.limiter_state(),
            past: self.past().snapshot(self.bounds.forgotten_ms(), journeys),
        }
    }

    /// An engine for `config` holding `state`'s sessions, mapped onto `config` (see the module
    /// doc), its gauges and `bounds` following them.
    pub fn restore(
        config: &Config,
        metrics: Arc<Metrics>,
        bounds: Arc<Bounds>,
        state: &EngineState,
    ) -> Result<(Self, Restored), SnapshotError> {
        let mut engine = Engine::with_bounds(config, metrics, bounds);
        engine.keys = state.keys;
        let map = Mapping::new(&engine, state);
        let mut report = Restored::default();
        if let Some(t) = state.past.forgotten_ms {
            engine.bounds.forgot_early(t);
        }
        engine.past().restore_schedule(state.past.next_scan_ms);
        for (n, p) in state.past.sessions.iter().enumerate() {
            let site_name = (state.sites.get(usize::from(p.site)))
                .ok_or(SnapshotError::BadSite(n, p.site, state.sites.len()))?;
            let progress = p.reached.iter().map(|&(journey, reached)| JourneyProgress {
                journey,
                reached,
                at_ms: p.first_ms,
            });
            let progress: Vec<JourneyProgress> = progress.collect();
            map.check(n, &progress)?;
            let Some(&site) = engine.sites.get(site_name) else {
                report.unknown_site += 1;
                continue;
            };
            let closed = Closed {
                ids: Ids::from_checkpoint(&p.ids),
                first_ms: p.first_ms,
                last_ms: p.last_ms,
                closed_ms: p.closed_ms,
                events: p.events,
                site,
                reached: {
                    let mut reached = [0; MAX_SITE_JOURNEYS];
                    for (slot, p, _) in map.slots(&engine, site, &progress, &mut report) {
                        reached[slot] = p.reached;
                    }
                    reached
                },
                channel: map.channel(p.channel, &mut report),
                device: map.device(p.device, &mut report),
            };
            let key = SessionKey(p.key.0, p.key.1);
            (engine.past()).remember(key, closed, &engine.bounds);
            report.remembered += 1;
        }
        for (n, s) in state.sessions.iter().enumerate() {
            let old_site = usize::from(s.site);
            let site_name = (state.sites.get(old_site)).ok_or(SnapshotError::BadSite(
                n,
                s.site,
                state.sites.len(),
            ))?;
            map.check(n, &s.progress)?;
            let Some(&site) = engine.sites.get(site_name) else {
                report.unknown_site += 1;
                continue;
            };
            let key = SessionKey(s.key.0, s.key.1);
            let remembered = engine.past().has(key);
            let session = map
                .session(&engine, s, site, &mut report)
                .remembering(remembered);
            engine.put_back(key, session);
            report.sessions += 1;
        }
        engine.remembered_gauges(crate::now_ms());
        Ok((engine, report))
    }

    /// Adds a restored session to the store, its gauges and the bounds.
    fn put_back(&self, key: SessionKey, s: Session) {
        self.opened();
        self.gauges().add(&s);
        if let Some(pool) = self.bounds.charge(s.origin, 0, s.ids.cost()) {
            self.metrics.engine.stored_ids.set(pool as i64);
        }
        self.sessions.insert(key, s);
    }
}
