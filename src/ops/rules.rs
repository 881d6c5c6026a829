//! `touchstream rules`: `rules.yml` (a template kept beside this file) with the journeys put
//! in: a step-conversion rule for each pair of consecutive stages of each journey, the checkout
//! rules of each journey whose purchase stage has a stage before it, and the cart rules when a
//! journey has a cart stage.

use crate::config::{Config, JourneyConfig};
use std::fmt::Write as _;

const TEMPLATE: &str = include_str!("rules.yml");

/// A block of the template: `#[name` to `#]name`.
struct Block<'a> {
    name: &'a str,
    lines: Vec<&'a str>,
}

/// The template's lines outside blocks, and its blocks, in order.
enum Part<'a> {
    Line(&'a str),
    Block(Block<'a>),
}

fn parts(template: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut open: Option<Block> = None;
    for line in template.lines().filter(|l| !l.starts_with("#~")) {
        if let Some(name) = line.strip_prefix("#[") {
            open = Some(Block {
                name,
                lines: Vec::new(),
            });
        } else if let Some(name) = line.strip_prefix("#]") {
            let block = open.take().expect("a block closed in rules.yml was opened");
            debug_assert_eq!(block.name, name, "blocks in rules.yml do not nest");
            parts.push(Part::Block(block));
        } else if let Some(block) = &mut open {
            block.lines.push(line);
        } else {
            parts.push(Part::Line(line));
        }
    }
    debug_assert!(open.is_none(), "a block of rules.yml is not closed");
    parts
}

/// The stage before the purchase stage and the purchase stage of `j`, if it has both.
fn checkout(j: &JourneyConfig) -> Option<(&str, &str)> {
    let purchase = j.purchase_stage()?;
    let before = purchase.checked_sub(1)?;
    Some((&j.stages[before].name, &j.stages[purchase].name))
}

/// The rules file for `config`'s journeys (validated). Journeys without a checkout or a cart
/// get no such rules, and the file says so.
pub fn rules(config: &Config) -> String {
    let journeys = config.journeys();
    let mut steps = String::new();
    for j in journeys {
        let names: Vec<&str> = j.stages.iter().map(|s| s.name.as_str()).collect();
        let reached = |stage: &str| {
            format!(
                "sum by (site, journey) (rate(touchstream_funnel_sessions_total{{journey=\"{}\", \
                 stage=\"{stage}\"}}[1h]))",
                j.name
            )
        };
        for pair in names.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            // Infallible: writing to a String.
            let _ = write!(
                steps,
                "      - record: site_journey_step:touchstream_step_conversion:ratio_rate1h\n        \
                 expr: |\n          {}\n            / {}\n        labels:\n          \
                 step: {from}_to_{to}\n          from: \"{from}\"\n          to: \"{to}\"\n",
                reached(to),
                reached(from),
            );
        }
    }
    let has_cart = journeys.iter().any(|j| j.cart_stage().is_some());
    let checkouts: Vec<_> = journeys
        .iter()
        .filter_map(|j| Some((&j.name, checkout(j)?)))
        .collect();
    let mut out = String::new();
    let mut put = |line: &str| {
        out.push_str(line);
        out.push('\n');
    };
    for part in parts(TEMPLATE) {
        match part {
            Part::Line("${STEPS}") => put(steps.trim_end_matches('\n')),
            Part::Line(line) => put(line),
            Part::Block(b) if b.name == "checkout" => {
                if checkouts.is_empty() {
                    put(
                        "      # No checkout rules: no journey's purchase stage has a stage before it.",
                    );
                }
                for (journey, (before, purchase)) in &checkouts {
                    for line in &b.lines {
                        put(&line
                            .replace("${JOURNEY}", journey)
                            .replace("${CHECKOUT}", before)
                            .replace("${PURCHASE}", purchase));
                    }
                }
            }
            Part::Block(b) if b.name == "checkout-alert" && checkouts.is_empty() => {}
            Part::Block(b) if b.name == "cart" && !has_cart => {
                put("      # No cart rules: no journey has a cart stage.");
            }
            Part::Block(b) => b.lines.iter().for_each(|line| put(line)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JourneyMode, StageConfig};

    fn stage(name: &str) -> StageConfig {
        StageConfig {
            name: name.into(),
            phase: "p".into(),
            touchpoints: vec![name.into()],
            within: None,
        }
    }

    #[test]
    fn a_journey_of_its_own_gets_its_steps_and_checkout() {
        let mut c = Config::default();
        c.journey.stages = vec![stage("landing"), stage("quote"), stage("signed")];
        c.journey.cart_stage = "quote".into();
        c.journey.purchase_stage = "signed".into();
        c.validate().unwrap();
        let text = rules(&c);
        assert!(text.contains("step: landing_to_quote"), "{text}");
        assert!(text.contains("step: quote_to_signed"));
        assert!(!text.contains("add_to_cart") && !text.contains("${"));
        assert!(text.contains(
            r#"increase(touchstream_funnel_sessions_total{journey="default", stage="quote"}[15m])"#
        ));
        // A purchase stage first: every rule but the checkout ones.
        c.journey.purchase_stage = "landing".into();
        let text = rules(&c);
        assert!(text.contains("No checkout rules") && text.contains("alert: CartAbandonmentSpike"));
        assert!(!text.contains("CheckoutDropoffSpike") && !text.contains("checkout_conversion"));
        assert!(!text.contains("#~") && !text.contains("#[") && text.ends_with("\n"));
        // No cart either: no cart rules, no cart alert.
        c.journey.cart_stage = String::new();
        let text = rules(&c);
        assert!(text.contains("No cart rules") && !text.contains("CartAbandonmentSpike"));
        assert!(!text.contains("site:touchstream_carts:increase1h"));
    }

    /// Each journey gets its steps and checkout rules; the carts are counted on every journey
    /// with a cart stage, the checkout alert is written once.
    #[test]
    fn several_journeys_get_their_own_rules() {
        let mut c = Config::default();
        let quote = JourneyConfig {
            name: "quote".into(),
            mode: JourneyMode::Ordered,
            stages: vec![stage("landing"), stage("asked"), stage("signed")],
            cart_stage: String::new(),
            purchase_stage: "signed".into(),
            ..JourneyConfig::default()
        };
        c.journeys = vec![
            JourneyConfig {
                name: "shop".into(),
                ..JourneyConfig::default()
            },
            quote,
        ];
        c.validate().unwrap();
        let text = rules(&c);
        assert!(
            text.contains("step: add_to_cart_to_checkout")
                && text.contains("step: asked_to_signed")
        );
        assert_eq!(
            text.matches("record: site_journey:touchstream_checkouts:increase15m")
                .count(),
            2
        );
        assert!(text.contains(r#"{journey="quote", stage="asked"}[15m]"#));
        assert_eq!(text.matches("alert: CheckoutDropoffSpike").count(), 1);
        assert_eq!(
            text.matches("record: site:touchstream_carts:increase1h")
                .count(),
            1
        );
        assert!(text.contains(r#"{journey="shop", stage="add_to_cart"}[1h]"#));
        assert!(!text.contains(r#"{journey="quote", stage="add_to_cart"}"#));
    }
}
