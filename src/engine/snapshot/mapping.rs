//! How a restore maps a state's names (journeys, stages, channels, devices, currencies) onto
//! the running configuration's indices.

use super::{EngineState, JourneyProgress, Restored, SessionState, SnapshotError};
use crate::engine::Engine;
use crate::engine::session::{Progress, Session};
use crate::event::{Channel, Device};

/// The state's indices onto the running configuration's.
pub(super) struct Mapping {
    /// Per journey of the state: its index among the running journeys, if one has its name.
    journeys: Vec<Option<usize>>,
    /// Per journey of the state, per stage of it: the running journey's index of the stage,
    /// or of the furthest earlier stage it still has (`false`: not the same stage), or `None`
    /// when none is left.
    stages: Vec<Vec<Option<(usize, bool)>>>,
    channels: Vec<Option<Channel>>,
    devices: Vec<Option<Device>>,
    /// Per site of the state, per currency of its: the running site's currency index.
    currencies: Vec<Vec<Option<u16>>>,
    /// Stages of each journey of the state.
    lengths: Vec<usize>,
    /// Per touchpoint label and friction kind of the state: the running one's index.
    touchpoints: Vec<Option<u8>>,
    friction: Vec<Option<u8>>,
}

impl Mapping {
    pub(super) fn new(engine: &Engine, state: &EngineState) -> Self {
        let running = &engine.journeys.journeys;
        let mut journeys = Vec::with_capacity(state.journeys.len());
        let mut stages = Vec::with_capacity(state.journeys.len());
        for j in &state.journeys {
            let now = running.iter().position(|r| r.name == j.name);
            let names: Vec<&str> = now
                .map(|i| running[i].stages.iter().map(|s| &*s.name).collect())
                .unwrap_or_default();
            let mut last = None;
            let per_stage = (j.stages.iter())
                .map(|name| {
                    match names.iter().position(|n| n == name) {
                        Some(i) => last = Some((i, true)),
                        None => last = last.map(|(i, _)| (i, false)),
                    }
                    last
                })
                .collect();
            journeys.push(now);
            stages.push(per_stage);
        }
        let currencies = (state.sites.iter().zip(&state.currencies))
            .map(|(site, codes)| {
                let now = engine
                    .sites
                    .get(site)
                    .map(|&i| &engine.metrics.funnel.currencies[usize::from(i)].codes);
                (codes.iter())
                    .map(|c| now?.iter().position(|k| k == c).map(|i| i as u16))
                    .collect()
            })
            .collect();
        Mapping {
            journeys,
            stages,
            channels: (state.channels.iter())
                .map(|n| Channel::from_label(n))
                .collect(),
            devices: (state.devices.iter())
                .map(|n| Device::from_label(n))
                .collect(),
            currencies,
            lengths: state.journeys.iter().map(|j| j.stages.len()).collect(),
            touchpoints: names_onto(&state.touchpoints, &engine.journeys.touchpoints),
            friction: names_onto(&state.friction, &engine.journeys.friction),
        }
    }

    /// Whether session `n`'s progress names journeys and stages the state has.
    pub(super) fn check(
        &self,
        n: usize,
        progress: &[JourneyProgress],
    ) -> Result<(), SnapshotError> {
        for p in progress {
            let len = (self.lengths.get(usize::from(p.journey)))
                .ok_or(SnapshotError::BadJourney(n, p.journey, self.lengths.len()))?;
            if usize::from(p.reached) > *len {
                return Err(SnapshotError::BadStage(n, p.reached, *len));
            }
        }
        Ok(())
    }

    /// `progress` (checked) on the running journeys of `site`: `(slot, progress, whether the
    /// journey is ordered)` of each journey the site still runs.
    pub(super) fn slots(
        &self,
        engine: &Engine,
        site: u16,
        progress: &[JourneyProgress],
        r: &mut Restored,
    ) -> Vec<(usize, Progress, bool)> {
        let all = &engine.journeys;
        let slots = &all.sites[usize::from(site)].journeys;
        let mut placed = Vec::with_capacity(progress.len());
        for p in progress.iter().filter(|p| p.reached > 0) {
            let j = usize::from(p.journey);
            let slot = self.journeys[j].and_then(|now| slots.iter().position(|&k| k == now));
            let Some(slot) = slot else {
                r.journey_dropped += 1;
                continue;
            };
            let reached = match self.stages[j][usize::from(p.reached) - 1] {
                Some((i, same)) => {
                    r.stage_moved += usize::from(!same);
                    (i + 1) as u8
                }
                None => {
                    r.stage_moved += 1;
                    1
                }
            };
            let ordered = all.journeys[slots[slot]].ordered;
            placed.push((
                slot,
                Progress {
                    reached,
                    at_ms: p.at_ms,
                },
                ordered,
            ));
        }
        placed
    }

    pub(super) fn channel(&self, index: u8, r: &mut Restored) -> Channel {
        let known = self.channels.get(usize::from(index)).copied().flatten();
        r.label_unknown += usize::from(known.is_none());
        known.unwrap_or(Channel::Other)
    }

    pub(super) fn device(&self, index: u8, r: &mut Restored) -> Device {
        let known = self.devices.get(usize::from(index)).copied().flatten();
        r.label_unknown += usize::from(known.is_none());
        known.unwrap_or(Device::Desktop)
    }

    pub(super) fn session(
        &self,
        engine: &Engine,
        s: &SessionState,
        site: u16,
        r: &mut Restored,
    ) -> Session {
        let (channel, device) = (self.channel(s.channel, r), self.device(s.device, r));
        let other = engine.metrics.funnel.currencies[usize::from(site)]
            .codes
            .len()
            - 1;
        let known = self.currencies.get(usize::from(s.site));
        let mut session = Session::new(site, s.first_ms, Channel::Other, Device::Desktop, 0);
        for &(c, micros) in &s.cart {
            let now = known.and_then(|k| k.get(usize::from(c)).copied().flatten());
            r.currency_moved += usize::from(now.is_none());
            session.add_to_cart(now.unwrap_or(other as u16), micros);
        }
        for id in &s.ids {
            session.ids.insert(*id);
        }
        for (slot, p, ordered) in self.slots(engine, site, &s.progress, r) {
            // A step time outside the session's events is not one its events gave (the file
            // is not trusted): held to them, no window reaches past them.
            let at_ms = p.at_ms.clamp(s.first_ms, s.last_ms.max(s.first_ms));
            session.set_progress(slot, Progress { at_ms, ..p }, ordered);
        }
        if s.ordered {
            session.set_ordered();
        }
        session.note_cart(&engine.journeys.sites[usize::from(site)].slots);
        let index =
            |names: &[Option<u8>], i: Option<u16>| i.and_then(|i| *names.get(usize::from(i))?);
        // A touchpoint no longer named is `other`, the last label.
        let other = (engine.journeys.touchpoints.len() - 1) as u8;
        session.last_ms = s.last_ms;
        session.events = s.events;
        session.origin = s.origin;
        (session.channel, session.device) = (channel, device);
        let (touchpoint, friction) = (
            index(&self.touchpoints, s.last_touchpoint),
            index(&self.friction, s.last_friction),
        );
        r.last_moved += usize::from(s.last_touchpoint.is_some() && touchpoint.is_none())
            + usize::from(s.last_friction.is_some() && friction.is_none());
        session.last_touchpoint = touchpoint.unwrap_or(other);
        session.last_friction = friction.map_or(0, |k| k + 1);
        session
    }
}

/// Each of `state`'s names' index among `running`'s, if it is there.
fn names_onto(state: &[String], running: &[String]) -> Vec<Option<u8>> {
    (state.iter())
        .map(|n| running.iter().position(|r| r == n).map(|i| i as u8))
        .collect()
}
