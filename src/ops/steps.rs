//! The step alerts' recording rules, for every step of every journey at three levels (`scope`:
//! the whole site, each channel, each device): exact counts in windows, the baseline conversion
//! (the same hour of the week, else of the day, else the day before the last hour), the
//! expected completions and the shortfall score. RUNBOOK.md, "How the step alerts decide",
//! explains the statistics; `stats.rs` the thresholds.

use super::stats::SCORE_WINDOWS;
use crate::config::{DEFAULT_STEP_DELAY, JourneyConfig};
use std::fmt::Write as _;

/// Stage totals at each level, sessions reaching each stage in each `window`, and the
/// baseline tiers of each stage (rules.yml).
const TOTAL: &str = "site_journey_stage_segment:touchstream_funnel_sessions:total";
const INCREASE: &str = "site_journey_stage_segment:touchstream_funnel_sessions:increase";
const WEEKS: &str = "site_journey_stage_segment:touchstream_funnel_sessions:week1h";
const DAYS: &str = "site_journey_stage_segment:touchstream_funnel_sessions:day1h";
/// The recent tier: the day ending an hour ago, or as many hours of it as both stages have.
const RECENT: [u32; 4] = [25, 7, 3, 2];
const ENTRANTS: &str = "site_journey_step_segment:touchstream_step_entrants:window";
const COMPLETIONS: &str = "site_journey_step_segment:touchstream_step_completions:window";
const FLOWING: &str = "site_journey_step_segment:touchstream_step_entrants:flowing";
const BASELINE: &str = "site_journey_step_segment:touchstream_step_conversion:baseline";
const BASELINE_ENTRANTS: &str = "site_journey_step_segment:touchstream_step_entrants:baseline";
/// Sessions entering the site's journeys (their first stages) per minute, and whether they
/// came steadily (rules.yml).
const ENTRIES: &str = "site:touchstream_funnel_entries:increase1m";
const STEADY: &str = "site:touchstream_funnel_entries:steady";
/// The windows of both alerts, in minutes.
const WINDOWS: [u32; 5] = [2, 4, 10, 30, 120];
/// The labels a stage's series and a step's share besides `stage` and the step's own.
const LEVEL: &str = "site, journey, scope, channel, device";

/// The variance a window's edges add, per step and window (`2m/w`, `m` the spread of the
/// step's delay): sessions entering before an edge and completing after it.
const EDGE: &str = "journey_step_window:touchstream_step_edge:ratio";

/// Fewest entrants a baseline tier needs to be used.
const BASELINE_MINIMUM: u32 = 200;

/// `60m` as `1h`: durations are written in one unit so any tool can scale them.
fn duration(minutes: u32) -> String {
    if minutes.is_multiple_of(60) && minutes > 0 {
        format!("{}h", minutes / 60)
    } else {
        format!("{minutes}m")
    }
}

/// ` offset 2m`, or nothing for no offset.
fn offset(minutes: u32) -> String {
    match minutes {
        0 => String::new(),
        m => format!(" offset {}", duration(m)),
    }
}

fn rule(out: &mut String, record: &str, expr: &str, labels: &str) {
    let expr = expr.trim_end().replace('\n', "\n          ");
    let _ = write!(
        out,
        "      - record: {record}\n        expr: |\n          {expr}\n"
    );
    if !labels.is_empty() {
        let _ = writeln!(out, "        labels: {{{labels}}}");
    }
}

/// Sessions entering the site's journeys per minute: the first stage of each, site-wide.
pub fn entries(out: &mut String, journeys: &[JourneyConfig]) {
    let firsts: Vec<String> = (journeys.iter())
        .map(|j| {
            let first = format!(
                "{TOTAL}{{journey=\"{}\", stage=\"{}\", scope=\"site\"}}",
                j.name, j.stages[0].name
            );
            format!("clamp_min({first} - {first} offset 1m, 0)")
        })
        .collect();
    rule(
        out,
        ENTRIES,
        &format!("sum by (site) (\n     {}\n)", firsts.join("\n  or ")),
        "",
    );
}

/// The rules of each step of journey `j`.
pub fn journey(out: &mut String, j: &JourneyConfig) {
    for pair in j.stages.windows(2) {
        let (from, to) = (&pair[0].name, &pair[1].name);
        // Unset: 2 minutes, or the stage's `within` when shorter.
        let delay = (pair[1].step_delay).unwrap_or_else(|| {
            DEFAULT_STEP_DELAY.min(pair[1].within.unwrap_or(DEFAULT_STEP_DELAY))
        });
        let delay_minutes = (delay.as_secs() / 60) as u32;
        // The mean distance of a step's delay from its typical one (m): the sessions on either
        // side of a window's edge add variance in proportion to it. Three quarters of the delay
        // (exact for a delay of one minute plus an exponential), at least half a minute.
        let spread = (delay.as_secs_f64() * 0.75 / 60.0).max(0.5);
        let step = format!("{from}_to_{to}");
        let labels = format!("step: {step}, from: \"{from}\", to: \"{to}\"");
        let at = |stage: &str, extra: &str| {
            format!("{{journey=\"{}\", stage=\"{stage}\"{extra}}}", j.name)
        };
        let mine = |extra: &str| {
            format!(
                "{{journey=\"{}\", from=\"{from}\", to=\"{to}\"{extra}}}",
                j.name
            )
        };
        let _ = writeln!(
            out,
            "      # Step {from} -> {to} of journey {}: entrants counted {} earlier (its step_delay).",
            j.name,
            duration(delay_minutes)
        );
        rule(
            out,
            ENTRANTS,
            &format!(
                "sum without (stage) ({INCREASE}{}{})",
                at(from, ", window!=\"1h\""),
                offset(delay_minutes)
            ),
            &labels,
        );
        rule(
            out,
            COMPLETIONS,
            &format!(
                "sum without (stage) ({INCREASE}{})",
                at(to, ", window!=\"1h\"")
            ),
            &labels,
        );
        // A window is tested while sessions still reach the step's first stage about as often
        // as a delay ago (not significantly fewer than half: a step broken upstream or a stalled
        // engine would read as a shortfall here), and while the site's entries came steadily
        // through it and the delay before it (a scrape gap, an engine catching up or a
        // partition changing owner piles minutes of sessions onto one instant, which the
        // shifted entrants would hold longer than the completions).
        let flow = |window: &str| {
            let before = format!("{ENTRANTS}{}", mine(window));
            format!(
                "sum without (stage) ({INCREASE}{})\n    >= ignoring (step, from, to)\n  \
                 0.5 * {before} - 2 * sqrt({before})",
                at(from, window),
            )
        };
        let steady: Vec<String> = (WINDOWS.iter())
            .map(|&w| {
                format!(
                    "label_replace(min_over_time({STEADY}[{}]) == 1, \"window\", \"{}\", \"\", \"\")",
                    duration(w + delay_minutes),
                    duration(w)
                )
            })
            .collect();
        rule(
            out,
            FLOWING,
            &format!(
                "(\n  {}\n)\nand ignoring (window) (\n  {}\n)\nand on (site, window) (\n     {}\n)",
                flow(", window!=\"1h\""),
                flow(", window=\"4m\""),
                steady.join("\n  or ")
            ),
            &labels,
        );
        // The baseline: the first tier with enough entrants, each period counted only where
        // both stages have it (a stage added to the journey has a shorter history).
        let paired = |tier: &str, a: &str, b: &str| {
            format!(
                "sum without (stage, k, window) ({tier}{} and on ({LEVEL}, k) {tier}{})",
                at(a, ""),
                at(b, "")
            )
        };
        let recent = |stage: &str, hours: u32| {
            format!(
                "sum without (stage) (clamp_min({TOTAL}{0} offset 1h - {TOTAL}{0} offset {hours}h, 0))",
                at(stage, "")
            )
        };
        let mut entrants = vec![
            format!("({} >= {BASELINE_MINIMUM})", paired(WEEKS, from, to)),
            format!("({} >= {BASELINE_MINIMUM})", paired(DAYS, from, to)),
        ];
        let mut tiers = vec![
            format!("{} / {}", paired(WEEKS, to, from), entrants[0]),
            format!("{} / {}", paired(DAYS, to, from), entrants[1]),
        ];
        for hours in RECENT {
            let before = format!("({} >= {BASELINE_MINIMUM})", recent(from, hours));
            tiers.push(format!("{} / {before}", recent(to, hours)));
            entrants.push(format!("{before} and on ({LEVEL}) {}", recent(to, hours)));
        }
        rule(
            out,
            BASELINE,
            &format!("clamp(\n     {}\n  , 0.001, 0.999)", tiers.join("\n  or ")),
            &labels,
        );
        rule(out, BASELINE_ENTRANTS, &entrants.join("\nor "), &labels);
        let edges: Vec<String> = (SCORE_WINDOWS.iter())
            .map(|&w| {
                format!(
                    "label_replace(vector({:.3}), \"window\", \"{}\", \"\", \"\")",
                    2.0 * spread / f64::from(w),
                    duration(w)
                )
            })
            .collect();
        rule(
            out,
            EDGE,
            &edges.join("\nor "),
            &format!("journey: \"{}\", {labels}", j.name),
        );
    }
}
