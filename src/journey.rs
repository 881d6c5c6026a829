//! The journey map compiled for the hot path: one hash lookup turns a touchpoint type (or an
//! alias of one) into everything the engine needs to know about it. Label values come only from
//! the configuration, so a client sending a million distinct types adds no metric series.

use crate::config::JourneyConfig;
use std::collections::HashMap;

/// Phase label of post-purchase touchpoints.
pub const POST_PURCHASE: &str = "post_purchase";
/// Touchpoint label of every type the journey map does not name.
pub const OTHER: &str = "other";

/// What a touchpoint does to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touchpoint {
    /// Index into [`Journey::touchpoints`] (its label value).
    pub label: usize,
    /// The funnel stage it marks as reached, if any.
    pub stage: Option<usize>,
    /// Its effect on the cart's value.
    pub cart: CartEffect,
    /// Whether it is an order (a touchpoint of the purchase stage).
    pub order: bool,
    /// What it counts as outside the funnel.
    pub kind: Kind,
}

/// Effect of a touchpoint's value on the session's cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartEffect {
    None,
    Add,
    Remove,
}

/// Where a touchpoint is counted besides the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Marks a funnel stage; counted under that stage's phase.
    Funnel,
    /// Counted under the `post_purchase` phase.
    PostPurchase,
    /// A pain point; the value is its index in [`Journey::friction`].
    Friction(usize),
    /// Anything else, counted under the phase of the stage where the session stands.
    Other,
}

/// A funnel stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// Index into [`Journey::phases`].
    pub phase: usize,
}

/// The compiled journey map.
#[derive(Debug, Clone)]
pub struct Journey {
    pub stages: Vec<Stage>,
    /// Phase label values: the stages' phases in order, then `post_purchase`.
    pub phases: Vec<String>,
    /// Touchpoint label values; the last is `other`.
    pub touchpoints: Vec<String>,
    /// Friction kinds (the `kind` label of `touchstream_friction_total`).
    pub friction: Vec<String>,
    pub cart_stage: usize,
    pub purchase_stage: usize,
    pub session_timeout_ms: i64,
    lookup: HashMap<String, Touchpoint>,
    other: Touchpoint,
}

impl Journey {
    /// Compiles a validated journey configuration.
    pub fn new(config: &JourneyConfig) -> Self {
        let mut phases: Vec<String> = Vec::new();
        let mut stages = Vec::new();
        for s in &config.stages {
            let phase = phases
                .iter()
                .position(|p| *p == s.phase)
                .unwrap_or_else(|| {
                    phases.push(s.phase.clone());
                    phases.len() - 1
                });
            stages.push(Stage {
                name: s.name.clone(),
                phase,
            });
        }
        phases.push(POST_PURCHASE.to_string());
        let stage_index = |name: &str| config.stages.iter().position(|s| s.name == name);
        let cart_stage = stage_index(&config.cart_stage).expect("validated cart_stage");
        let purchase_stage = stage_index(&config.purchase_stage).expect("validated purchase_stage");

        let mut touchpoints: Vec<String> = Vec::new();
        let mut lookup: HashMap<String, Touchpoint> = HashMap::new();
        let mut define = |name: &str, stage: Option<usize>, kind: Kind| {
            let cart = if config.cart_add.iter().any(|t| t == name) {
                CartEffect::Add
            } else if config.cart_remove.iter().any(|t| t == name) {
                CartEffect::Remove
            } else {
                CartEffect::None
            };
            touchpoints.push(name.to_string());
            let order = stage == Some(purchase_stage);
            let tp = Touchpoint {
                label: touchpoints.len() - 1,
                stage,
                cart,
                order,
                kind,
            };
            lookup.insert(name.to_string(), tp);
        };
        for (i, s) in config.stages.iter().enumerate() {
            for t in &s.touchpoints {
                define(t, Some(i), Kind::Funnel);
            }
        }
        for t in &config.post_purchase {
            define(t, None, Kind::PostPurchase);
        }
        for (i, t) in config.friction.iter().enumerate() {
            define(t, None, Kind::Friction(i));
        }
        let extra = config
            .cart_add
            .iter()
            .chain(&config.cart_remove)
            .chain(&config.other_touchpoints);
        let defined: Vec<String> = config
            .stages
            .iter()
            .flat_map(|s| &s.touchpoints)
            .chain(&config.post_purchase)
            .chain(&config.friction)
            .cloned()
            .collect();
        let mut seen = defined;
        for t in extra {
            if !seen.contains(t) {
                seen.push(t.clone());
                define(t, None, Kind::Other);
            }
        }
        touchpoints.push(OTHER.to_string());
        let other = Touchpoint {
            label: touchpoints.len() - 1,
            stage: None,
            cart: CartEffect::None,
            order: false,
            kind: Kind::Other,
        };
        for (alias, target) in &config.aliases {
            let tp = lookup.get(target).copied().unwrap_or(other);
            lookup.entry(alias.clone()).or_insert(tp);
        }
        Self {
            stages,
            phases,
            touchpoints,
            friction: config.friction.clone(),
            cart_stage,
            purchase_stage,
            session_timeout_ms: config.session_timeout.as_millis().min(i64::MAX as u128) as i64,
            lookup,
            other,
        }
    }

    /// What a touchpoint type (or alias) means; unknown types are `other`.
    pub fn classify(&self, kind: &str) -> Touchpoint {
        self.lookup.get(kind).copied().unwrap_or(self.other)
    }

    /// Index of the `post_purchase` phase.
    pub fn post_purchase_phase(&self) -> usize {
        self.phases.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_classifies_contract_types() {
        let j = Journey::new(&JourneyConfig::default());
        assert_eq!(j.classify("page_view").stage, Some(0));
        assert_eq!(j.classify("Product Added").stage, Some(2));
        assert_eq!(j.classify("Product Added").cart, CartEffect::Add);
        assert_eq!(j.classify("view_cart").cart, CartEffect::None);
        assert_eq!(j.classify("Product Removed").cart, CartEffect::Remove);
        assert!(j.classify("Order Completed").order);
        assert_eq!(j.classify("review").kind, Kind::PostPurchase);
        assert_eq!(j.classify("rage_click").kind, Kind::Friction(3));
        let other = j.classify("made_up");
        assert_eq!(j.touchpoints[other.label], OTHER);
        assert_eq!(
            j.phases,
            [
                "awareness",
                "interest",
                "consideration",
                "decision",
                POST_PURCHASE
            ]
        );
        assert_eq!((j.cart_stage, j.purchase_stage), (2, 4));
    }
}
