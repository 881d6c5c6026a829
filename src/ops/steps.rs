//! The step alerts' recording rules, for every step of every journey at three levels (`scope`:
//! the whole site, each channel, each device): exact counts in windows, the baseline conversion
//! (the same hour of the week, else of the day, else the day before the last hour), the
//! expected completions and the shortfall score. RUNBOOK.md, "How the step alerts decide",
//! explains the statistics; `stats.rs` the thresholds.

use super::stats::SCORE_WINDOWS;
use crate::config::{DEFAULT_STEP_DELAY, JourneyConfig};
use std::fmt::Write as _;

/// Stage totals at each level, and sessions reaching each stage in each `window` (rules.yml).
const TOTAL: &str = "site_journey_stage_segment:touchstream_funnel_sessions:total";
const INCREASE: &str = "site_journey_stage_segment:touchstream_funnel_sessions:increase";
const ENTRANTS: &str = "site_journey_step_segment:touchstream_step_entrants:window";
const COMPLETIONS: &str = "site_journey_step_segment:touchstream_step_completions:window";
const FLOWING: &str = "site_journey_step_segment:touchstream_step_entrants:flowing";
const BASELINE: &str = "site_journey_step_segment:touchstream_step_conversion:baseline";
const BASELINE_ENTRANTS: &str = "site_journey_step_segment:touchstream_step_entrants:baseline";
/// Sessions entering each journey (its first stage, site-wide) per minute, and whether they
/// came steadily.
const ENTRIES: &str = "site_journey:touchstream_funnel_entries:increase1m";
const STEADY: &str = "site_journey:touchstream_funnel_entries:steady";
const STEADY_WINDOW: &str = "site_journey:touchstream_funnel_entries:steady_window";
/// The windows of both alerts, in minutes.
const WINDOWS: [u32; 5] = [2, 4, 10, 30, 120];

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

fn tier_name(tier: &str) -> String {
    format!("site_journey_stage_segment:touchstream_funnel_sessions:{tier}")
}

/// Whether each journey's entries came steadily through every window and the step delay before
/// it. A scrape gap, an engine stalled then catching up, or a partition changing owner over
/// Kafka piles minutes of sessions onto one instant; the entrants counted a step delay earlier
/// then hold that pile while the completions do not, which reads as a shortfall for as long as
/// a window holds it. A minute whose entries are further from the median of the last 10 than
/// half of it plus 4 standard deviations is unsteady, and no window holding it is tested.
pub fn steady(out: &mut String, journeys: &[JourneyConfig]) {
    for j in journeys {
        rule(
            out,
            ENTRIES,
            &format!(
                "sum without (stage, scope) (clamp_min(\n  {TOTAL}{{journey=\"{0}\", stage=\"{1}\", scope=\"site\"}}\n    \
                 - {TOTAL}{{journey=\"{0}\", stage=\"{1}\", scope=\"site\"}} offset 1m,\n  0))",
                j.name, j.stages[0].name
            ),
            "",
        );
    }
    let median = format!("quantile_over_time(0.5, {ENTRIES}[10m])");
    rule(
        out,
        STEADY,
        &format!("abs({ENTRIES} - {median})\n  <= bool (0.5 * {median} + 4 * sqrt({median}) + 2)"),
        "",
    );
    let longest = (journeys.iter())
        .flat_map(|j| j.stages.iter().skip(1))
        .map(|s| s.step_delay.unwrap_or(DEFAULT_STEP_DELAY).as_secs() / 60)
        .max()
        .unwrap_or(0) as u32;
    let windows: Vec<String> = (WINDOWS.iter())
        .map(|&w| {
            format!(
                "label_replace(min_over_time({STEADY}[{}]) == 1, \"window\", \"{}\", \"\", \"\")",
                duration(w + longest),
                duration(w)
            )
        })
        .collect();
    rule(out, STEADY_WINDOW, &windows.join("\nor "), "");
}

/// The rules of each step of journey `j`.
pub fn journey(out: &mut String, j: &JourneyConfig) {
    for pair in j.stages.windows(2) {
        let (from, to) = (&pair[0].name, &pair[1].name);
        let delay = pair[1].step_delay.unwrap_or(DEFAULT_STEP_DELAY);
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
        // Entrants still arrive as they did a delay ago (not significantly fewer than half): a
        // scrape gap, a stalled engine or a step broken upstream stops them now, which the
        // shifted counts would read as a shortfall of this step.
        let before = format!(
            "sum without (window) ({ENTRANTS}{{journey=\"{}\", step=\"{step}\", window=\"4m\"}})",
            j.name
        );
        rule(
            out,
            FLOWING,
            &format!(
                "sum without (stage, window) ({INCREASE}{})\n  >= ignoring (step, from, to)\n\
                 0.5 * {before} - 2 * sqrt({before})",
                at(from, ", window=\"4m\""),
            ),
            &labels,
        );
        let tiers: Vec<String> = ["week1h", "day1h", "last24h"]
            .iter()
            .map(|t| {
                format!(
                    "sum without (stage) ({}{}) / sum without (stage) ({}{} >= {BASELINE_MINIMUM})",
                    tier_name(t),
                    at(to, ""),
                    tier_name(t),
                    at(from, "")
                )
            })
            .collect();
        rule(
            out,
            BASELINE,
            &format!("clamp(\n     {}\n  , 0.001, 0.999)", tiers.join("\n  or ")),
            &labels,
        );
        let tiers: Vec<String> = ["week1h", "day1h", "last24h"]
            .iter()
            .map(|t| format!("({}{} >= {BASELINE_MINIMUM})", tier_name(t), at(from, "")))
            .collect();
        rule(
            out,
            BASELINE_ENTRANTS,
            &format!("sum without (stage) (\n     {}\n)", tiers.join("\n  or ")),
            &labels,
        );
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
            &format!("journey: \"{}\", step: {step}", j.name),
        );
    }
}
