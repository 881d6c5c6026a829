//! `touchstream rules`: `rules.yml` (a template kept beside this file) with the journeys put
//! in: a step-conversion rule and the step alerts' rules for each pair of consecutive stages
//! of each journey, the alerts' thresholds for the number of steps a site runs, and the cart
//! rules when a journey has a cart stage.

use super::{stats, steps};
use crate::config::Config;
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

/// Channels and devices: the segments each step is also tested in (9 + 3).
const SEGMENTS: usize = 12;

/// False pages in 30 days each family of step alerts may spend (RUNBOOK.md, "How the step
/// alerts decide"): 0.35 in all, so at most one in 30 days is 95 % likely.
const BUDGET_SITE: f64 = 0.05;
const BUDGET_SEGMENTS: f64 = 0.1;
const BUDGET_STOPPED_SITE: f64 = 0.05;
const BUDGET_STOPPED_SEGMENTS: f64 = 0.1;
const BUDGET_FRICTION: f64 = 0.05;

/// StepStopped's condition: for each window and level, the least number of completions expected
/// that may page when none came.
fn stopped(steps: usize) -> String {
    let metric = "site_journey_step_segment:touchstream_step_completions:expected_from_rate";
    let mut branches = Vec::new();
    for (scope, series, budget) in [
        ("scope=\"site\"", steps, BUDGET_STOPPED_SITE),
        ("scope!=\"site\"", steps * SEGMENTS, BUDGET_STOPPED_SEGMENTS),
    ] {
        for w in stats::STOPPED_WINDOWS {
            branches.push(format!(
                "{metric}{{{scope}, window=\"{w}m\"}} >= {}",
                stats::stopped_minimum(series, budget, w)
            ));
        }
    }
    branches.join("\n              or ")
}

/// The thresholds of the step and friction alerts, for the site that runs the most steps and
/// the friction kinds counted at any stage.
fn thresholds(config: &Config) -> Vec<(&'static str, String)> {
    let journeys = config.journeys();
    let steps = |js: &[usize]| -> usize {
        js.iter()
            .map(|&j| journeys[j].stages.len().saturating_sub(1))
            .sum()
    };
    let most = if config.sites.is_empty() {
        steps(&(0..journeys.len()).collect::<Vec<_>>())
    } else {
        (config.sites.iter())
            .map(|s| steps(&config.site_journeys(s)))
            .max()
            .unwrap_or(0)
    };
    let friction: usize = (journeys.iter())
        .map(|j| j.stages.len() * j.friction.len())
        .sum();
    vec![
        (
            "${TESTED}",
            format!(
                "{most} steps site-wide, {} in channels and devices",
                most * SEGMENTS
            ),
        ),
        (
            "${SHORTFALL_SITE}",
            format!("{:.2}", stats::shortfall_threshold(most, BUDGET_SITE)),
        ),
        (
            "${SHORTFALL_SEGMENT}",
            format!(
                "{:.2}",
                stats::shortfall_threshold(most * SEGMENTS, BUDGET_SEGMENTS)
            ),
        ),
        ("${STOPPED}", stopped(most)),
        (
            "${FRICTION}",
            format!(
                "{:.2}",
                stats::shortfall_threshold(friction, BUDGET_FRICTION)
            ),
        ),
    ]
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
    let mut entries = String::new();
    steps::entries(&mut entries, journeys);
    let mut step_rules = String::new();
    for j in journeys {
        steps::journey(&mut step_rules, j);
    }
    let has_cart = journeys.iter().any(|j| j.cart_stage().is_some());
    let thresholds = thresholds(config);
    let mut out = String::new();
    let mut put = |line: &str| {
        let mut line = line.to_string();
        for (key, value) in &thresholds {
            line = line.replace(key, value);
        }
        out.push_str(&line);
        out.push('\n');
    };
    for part in parts(TEMPLATE) {
        match part {
            Part::Line("${STEPS}") => put(steps.trim_end_matches('\n')),
            Part::Line("${STEP_RULES}") => put(step_rules.trim_end_matches('\n')),
            Part::Line("${ENTRIES}") => put(entries.trim_end_matches('\n')),
            Part::Line(line) => put(line),
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
    use crate::config::{JourneyConfig, JourneyMode, StageConfig};

    fn stage(name: &str) -> StageConfig {
        StageConfig {
            name: name.into(),
            phase: "p".into(),
            touchpoints: vec![name.into()],
            within: None,
            step_delay: None,
        }
    }

    #[test]
    fn a_journey_of_its_own_gets_its_steps_and_their_alerts() {
        let mut c = Config::default();
        c.journey.stages = vec![stage("landing"), stage("quote"), stage("signed")];
        c.journey.stages[2].step_delay = Some(std::time::Duration::from_secs(600));
        c.journey.cart_stage = "quote".into();
        c.journey.purchase_stage = "signed".into();
        c.validate().unwrap();
        let text = rules(&c);
        assert!(text.contains("step: landing_to_quote"), "{text}");
        assert!(text.contains("step: quote_to_signed"));
        assert!(!text.contains("add_to_cart") && !text.contains("${"));
        // Entrants shifted by each step's delay: 2 minutes unset, 10 set.
        assert!(text.contains(r#"{journey="default", stage="landing", window!="1h"} offset 2m)"#));
        assert!(text.contains(r#"{journey="default", stage="quote", window!="1h"} offset 10m)"#));
        // Two steps site-wide, 24 in segments: the thresholds of that many series.
        assert!(text.contains("(2 steps site-wide, 24 in channels and devices)"));
        let threshold = |scope: &str| {
            let at = text.find(&format!("score{{{scope}}} > ")).unwrap();
            text[at..]
                .split(['>', '\n'])
                .nth(1)
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(threshold(r#"scope="site""#), "5.25");
        assert_eq!(threshold(r#"scope!="site""#), "5.60");
        assert!(text.contains("alert: CartAbandonmentSpike") && text.ends_with("\n"));
        assert!(!text.contains("#~") && !text.contains("#["));
        // No cart: no cart rules, no cart alert.
        c.journey.cart_stage = String::new();
        let text = rules(&c);
        assert!(text.contains("No cart rules") && !text.contains("CartAbandonmentSpike"));
        assert!(!text.contains("site:touchstream_carts:increase1h"));
    }

    /// Each journey gets its steps; the carts are counted on every journey with a cart stage;
    /// the thresholds are those of the site running the most steps.
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
            text.matches("record: site_journey_step_segment:touchstream_step_entrants:window")
                .count(),
            6
        );
        assert!(text.contains(r#"{journey="quote", stage="asked", window!="1h"}"#));
        assert!(text.contains("(6 steps site-wide, 72 in channels and devices)"));
        assert_eq!(text.matches("alert: StepConversionDropped").count(), 1);
        assert_eq!(
            text.matches("record: site:touchstream_carts:increase1h")
                .count(),
            1
        );
        assert!(!text.contains(r#"{journey="quote", stage="add_to_cart"}"#));
    }
}
