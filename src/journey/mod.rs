//! The journey maps compiled for the hot path. Each site gets one lookup ([`SiteJourneys`])
//! that turns a touchpoint type (or an alias of one) into everything the engine needs for every
//! journey the site runs, so an event costs one hash lookup however many journeys there are.
//! Label values come only from the configuration, so a client sending a million distinct types
//! adds no metric series.
//!
//! Label sets are shared by every site: the touchpoints, phases and friction kinds of all
//! journeys, each once, in configuration order (for the default configuration, the order of
//! the one map's lists). Series exist only for what a site's journeys use.

mod site;

pub use site::{CartEffect, Mark, SiteJourneys, Touchpoint};

use crate::config::{Config, JourneyMode};

/// Phase label of post-purchase touchpoints.
pub const POST_PURCHASE: &str = "post_purchase";
pub use crate::config::{NO_FRICTION, OTHER};
/// Journeys one site runs at most (validated).
pub const MAX_SITE_JOURNEYS: usize = crate::config::MAX_SITE_JOURNEYS;

/// A funnel stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// Index into [`Journeys::phases`].
    pub phase: usize,
    /// Ordered journeys: reached only within this long (ms) of the stage before it.
    pub within_ms: Option<i64>,
}

/// One compiled journey map.
#[derive(Debug, Clone)]
pub struct Journey {
    pub name: String,
    /// Stages count only in order (`mode = "ordered"`).
    pub ordered: bool,
    /// Ordered journeys: the first stage names no touchpoint, so any event enters the journey
    /// (else only an event of the first stage does).
    pub open_entry: bool,
    pub stages: Vec<Stage>,
    pub cart_stage: Option<usize>,
    pub purchase_stage: Option<usize>,
    /// The friction kinds it counts, one bit per kind of [`Journeys::friction`].
    pub friction_kinds: u64,
}

impl Journey {
    /// Whether `reached` stages pass its cart stage (it opens the session's cart).
    #[inline]
    pub fn opens_cart(&self, reached: u8) -> bool {
        self.cart_stage.is_some_and(|c| usize::from(reached) > c)
    }

    /// Whether it counts friction kind `kind` (an index into [`Journeys::friction`]).
    #[inline]
    pub fn counts_friction(&self, kind: u8) -> bool {
        self.friction_kinds & (1 << kind) != 0
    }
}

/// Every configured journey, and each site's lookup.
#[derive(Debug, Clone)]
pub struct Journeys {
    pub journeys: Vec<Journey>,
    /// Phase label values: every journey's stage phases, then `post_purchase`.
    pub phases: Vec<String>,
    /// Touchpoint label values; the last is `other`.
    pub touchpoints: Vec<String>,
    /// Friction kinds (the `kind` label of `touchstream_friction_total`).
    pub friction: Vec<String>,
    /// Per configured site, in order.
    pub sites: Vec<SiteJourneys>,
    pub session_timeout_ms: i64,
}

/// Appends `item` unless present; its index either way.
fn intern(list: &mut Vec<String>, item: &str) -> usize {
    list.iter().position(|x| x == item).unwrap_or_else(|| {
        list.push(item.to_string());
        list.len() - 1
    })
}

impl Journeys {
    /// Compiles a validated configuration's journeys.
    pub fn new(config: &Config) -> Self {
        let maps = config.journeys();
        let mut phases = Vec::new();
        let mut touchpoints = Vec::new();
        let mut friction = Vec::new();
        let mut journeys = Vec::new();
        for j in maps {
            let stages = (j.stages.iter())
                .map(|s| Stage {
                    name: s.name.clone(),
                    phase: intern(&mut phases, &s.phase),
                    within_ms: s.within.map(|w| w.as_millis().min(i64::MAX as u128) as i64),
                })
                .collect();
            let friction_kinds = (j.friction.iter())
                .map(|f| intern(&mut friction, f))
                .fold(0, |mask, k| mask | 1 << k);
            journeys.push(Journey {
                name: j.name.clone(),
                ordered: j.mode == JourneyMode::Ordered,
                open_entry: j.stages[0].touchpoints.is_empty(),
                stages,
                cart_stage: j.cart_stage(),
                purchase_stage: j.purchase_stage(),
                friction_kinds,
            });
            for t in j.touchpoints() {
                intern(&mut touchpoints, t);
            }
        }
        phases.push(POST_PURCHASE.to_string());
        touchpoints.push(OTHER.to_string());
        let mut compiled = Self {
            journeys,
            phases,
            touchpoints,
            friction,
            sites: Vec::new(),
            session_timeout_ms: config
                .journey
                .session_timeout
                .as_millis()
                .min(i64::MAX as u128) as i64,
        };
        compiled.sites = (config.sites.iter())
            .map(|s| SiteJourneys::new(config, &config.site_journeys(s), &compiled))
            .collect();
        compiled
    }

    /// Index of the `post_purchase` phase.
    pub fn post_purchase_phase(&self) -> usize {
        self.phases.len() - 1
    }

    /// The journey in `site`'s slot `slot`.
    #[inline]
    pub fn of(&self, site: usize, slot: usize) -> &Journey {
        &self.sites[site].slots[slot]
    }
}

#[cfg(test)]
mod tests;
