//! One site's lookup: each touchpoint type (or alias) its journeys name, with what it means in
//! each of them. A site's journeys are its *slots*, in the order the site names them; the first
//! is its main journey.

use super::{Journeys, MAX_SITE_JOURNEYS, intern};
use crate::config::Config;
use std::collections::HashMap;

/// Effect of a touchpoint's value on the session's cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartEffect {
    None,
    Add,
    Remove,
}

/// What a touchpoint is in one journey.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark {
    /// The stage it marks as reached.
    pub stage: Option<u8>,
    /// Its friction kind (index into [`Journeys::friction`]), if it is a pain point there.
    pub friction: Option<u8>,
}

/// What a touchpoint does to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touchpoint {
    /// Index into [`Journeys::touchpoints`] (its label value).
    pub label: usize,
    /// The phase it counts under (index into [`Journeys::phases`]): its stage's in the first
    /// journey that has it as a stage's, else `post_purchase` for a post-purchase touchpoint;
    /// `None`: the phase of the stage where the session stands in the site's main journey.
    pub phase: Option<usize>,
    /// Its effect on the cart's value (the same in every journey).
    pub cart: CartEffect,
    /// Whether it is an order: a touchpoint of a purchase stage of one of the site's journeys.
    pub order: bool,
    /// Its friction kind, if one of the site's journeys counts it as friction.
    pub friction: Option<u8>,
    /// What it is in each of the site's journeys, by slot.
    pub marks: [Mark; MAX_SITE_JOURNEYS],
}

/// A site's journeys and its touchpoint lookup.
#[derive(Debug, Clone)]
pub struct SiteJourneys {
    /// Index into [`Journeys::journeys`] of each slot.
    pub journeys: Vec<usize>,
    /// Each slot's journey (a copy, one lookup nearer the hot path).
    pub slots: Vec<super::Journey>,
    lookup: HashMap<String, Touchpoint>,
    other: Touchpoint,
}

impl SiteJourneys {
    /// The lookup of a site running `slots` (indices into `config.journeys()`), whose label
    /// sets `compiled` holds already.
    pub(super) fn new(config: &Config, slots: &[usize], compiled: &Journeys) -> Self {
        let maps: Vec<_> = slots.iter().map(|&j| &config.journeys()[j]).collect();
        let other = Touchpoint {
            label: compiled.touchpoints.len() - 1,
            phase: None,
            cart: CartEffect::None,
            order: false,
            friction: None,
            marks: [Mark::default(); MAX_SITE_JOURNEYS],
        };
        // Every name a journey of the site gives, and the touchpoint each alias stands for (the
        // first journey's, when two alias one name).
        let mut names: Vec<String> = Vec::new();
        let mut aliases: HashMap<&str, &str> = HashMap::new();
        for m in &maps {
            for t in m.touchpoints() {
                intern(&mut names, t);
            }
            for (alias, target) in &m.aliases {
                aliases.entry(alias).or_insert(target);
            }
        }
        let mut lookup = HashMap::new();
        for name in &names {
            let tp = Self::meaning(name, &maps, slots, compiled).unwrap_or_else(|| other.clone());
            lookup.insert(name.clone(), tp);
        }
        for (alias, target) in aliases {
            let tp = lookup.get(target).cloned().unwrap_or_else(|| other.clone());
            lookup.entry(alias.to_string()).or_insert(tp);
        }
        Self {
            journeys: slots.to_vec(),
            slots: slots
                .iter()
                .map(|&j| compiled.journeys[j].clone())
                .collect(),
            lookup,
            other,
        }
    }

    /// What `name` (a touchpoint, not an alias) means in the site's journeys.
    fn meaning(
        name: &str,
        maps: &[&crate::config::JourneyConfig],
        slots: &[usize],
        compiled: &Journeys,
    ) -> Option<Touchpoint> {
        let label = compiled.touchpoints.iter().position(|t| t == name)?;
        let mut tp = Touchpoint {
            label,
            phase: None,
            cart: CartEffect::None,
            order: false,
            friction: None,
            marks: [Mark::default(); MAX_SITE_JOURNEYS],
        };
        let mut post_purchase = false;
        for (slot, (m, &j)) in maps.iter().zip(slots).enumerate() {
            let journey = &compiled.journeys[j];
            let stage = m
                .stages
                .iter()
                .position(|s| s.touchpoints.iter().any(|t| t == name));
            if let Some(stage) = stage {
                tp.phase = tp.phase.or(Some(journey.stages[stage].phase));
                tp.order |= journey.purchase_stage == Some(stage);
            }
            let friction = (m.friction.iter().any(|f| f == name))
                .then(|| compiled.friction.iter().position(|f| f == name))
                .flatten();
            tp.marks[slot] = Mark {
                stage: stage.map(|s| s as u8),
                friction: friction.map(|f| f as u8),
            };
            tp.friction = tp.friction.or(tp.marks[slot].friction);
            post_purchase |= m.post_purchase.iter().any(|t| t == name);
            if m.cart_add.iter().any(|t| t == name) {
                tp.cart = CartEffect::Add;
            } else if m.cart_remove.iter().any(|t| t == name) {
                tp.cart = CartEffect::Remove;
            }
        }
        if tp.phase.is_none() && post_purchase {
            tp.phase = Some(compiled.post_purchase_phase());
        }
        Some(tp)
    }

    /// What a touchpoint type (or alias) means; unknown types are `other`.
    #[inline]
    pub fn classify(&self, kind: &str) -> &Touchpoint {
        self.lookup.get(kind).unwrap_or(&self.other)
    }

    /// How many journeys the site runs.
    #[inline]
    pub fn slots(&self) -> usize {
        self.journeys.len()
    }
}
