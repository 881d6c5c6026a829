//! The dashboard's funnel rows: the stages reached, step conversion, drop-off and stage timing,
//! and the channel and device breakdowns.

use super::json::J;
use super::panels::{
    LOOK, Look, RATE, RATIO, STACKED, Stages, bars, instant, rate, reached, staged, target,
    timeseries,
};

/// The funnel row of journey `s`. A journey of one stage has no steps, one whose purchase stage
/// is first no checkout: those panels have no query, and the dashboard leaves them out.
pub(super) fn funnel(s: &Stages) -> Vec<J> {
    let (all, site) = (s.all(), s.site());
    let total = |stage: &str| {
        format!(
            "sum(increase({}[$__range]))",
            staged("touchstream_funnel_sessions_total", &all, stage)
        )
    };
    let first = &s.names[0];
    let wide = Look {
        width: 12,
        height: 9,
        ..LOOK
    };
    vec![
        bars(
            "Funnel: sessions reaching each stage",
            "Sessions that reached each stage (or a later one) in the selected time range.",
            s.names
                .iter()
                .map(|st| instant(total(st), st.as_str()))
                .collect(),
            wide,
        ),
        bars(
            "Share of visits reaching each stage",
            "Sessions reaching the stage per session that visited, over the selected time range.",
            (s.names[1..].iter())
                .map(|st| instant(format!("{} / {}", total(st), total(first)), st.as_str()))
                .collect(),
            Look {
                unit: "percentunit",
                min: Some(0),
                ..wide
            },
        ),
        timeseries(
            "Step conversion",
            "Sessions reaching a stage per session reaching the one before, over $window.",
            (s.names.windows(2))
                .map(|p| {
                    let expr = format!("{} / {}", reached(s, &p[1]), reached(s, &p[0]));
                    target(expr, format!("{} → {}", p[0], p[1]))
                })
                .collect(),
            RATIO,
        ),
        timeseries(
            "Drop-off by stage",
            "Sessions that closed with the stage as their furthest, per session reaching it, over $window.",
            vec![target(
                format!(
                    "{} / {}",
                    rate(
                        "touchstream_funnel_dropoffs_total",
                        &all,
                        "stage",
                        "$window",
                        ""
                    ),
                    rate(
                        "touchstream_funnel_sessions_total",
                        &all,
                        "stage",
                        "$window",
                        ""
                    )
                ),
                "{{stage}}",
            )],
            RATIO,
        ),
        timeseries(
            "Step conversion against the usual",
            "Each step's conversion over the last 30 minutes (entrants counted a step delay earlier), \
             solid, and what its baseline (the same hour of past weeks, else of past days, else \
             the day before the last hour) expected, dashed: the step alerts' view, site-wide.",
            steps_against_baseline(s, &site),
            Look {
                dashed: Some("/usual$/"),
                ..RATIO
            },
        ),
        timeseries(
            "Step alerts: shortfall score",
            "How unlikely each step's shortfall is at its volume, in standard deviations: the \
             largest over the windows of 4 minutes to 2 hours, site-wide and in each channel and \
             device. StepConversionDropped pages over the thresholds `touchstream rules` \
             wrote into rules.yml (they grow with the number of steps).",
            if s.names.len() < 2 {
                Vec::new()
            } else {
                vec![target(
                    format!(
                        "max by (site, step, scope, channel, device) \
                         (site_journey_step_segment:touchstream_step_shortfall:score{{{site}}})"
                    ),
                    "{{site}} {{step}} {{scope}} {{channel}}{{device}}",
                )]
            },
            Look {
                unit: "none",
                min: Some(0),
                ..LOOK
            },
        ),
        timeseries(
            "Open sessions by stage",
            "Sessions open now, by the furthest stage they reached (all channels and devices).",
            vec![target(
                format!("sum by (stage) (touchstream_funnel_active_sessions{{{site}}})"),
                "{{stage}}",
            )],
            Look {
                width: 12,
                ..STACKED
            },
        ),
        timeseries(
            "Time from session start to stage",
            "Median and 90th percentile time from a session's first event to reaching each stage, over $window.",
            [("0.5", "p50"), ("0.9", "p90")]
                .iter()
                .map(|(q, p)| {
                    target(
                        format!(
                            "histogram_quantile({q}, sum by (le, stage) \
                             (rate(touchstream_stage_reached_seconds_bucket{{{site}}}[$window])))"
                        ),
                        format!("{{{{stage}}}} {p}"),
                    )
                })
                .collect(),
            Look {
                unit: "s",
                width: 12,
                ..LOOK
            },
        ),
    ]
}

/// Per step, the conversion over 30 minutes and the baseline's (weighted over the sites shown).
fn steps_against_baseline(s: &Stages, site: &str) -> Vec<J> {
    if s.names.len() < 2 {
        return Vec::new();
    }
    let window = format!(r#"{site},scope="site",window="30m""#);
    let sum = |metric: &str| format!("sum by (step) ({metric}{{{window}}})");
    let entrants = sum("site_journey_step_segment:touchstream_step_entrants:window");
    vec![
        target(
            format!(
                "{} / {entrants}",
                sum("site_journey_step_segment:touchstream_step_completions:window")
            ),
            "{{step}} now",
        ),
        target(
            format!(
                "{} / {entrants}",
                sum("site_journey_step_segment:touchstream_step_completions:expected")
            ),
            "{{step}} usual",
        ),
    ]
}

/// The channel and device row of journey `s`; `visits`: with the sessions entering it per
/// minute (the same in every `any` journey, so shown for the first and the ordered ones).
pub(super) fn breakdowns(s: &Stages, visits_too: bool) -> Vec<J> {
    let visits = format!(r#"{},stage="{}""#, s.all(), s.names[0]);
    let purchases = format!(r#"{},stage="{}""#, s.all(), s.converted());
    let mut out = Vec::new();
    for label in ["channel", "device"] {
        let legend = format!("{{{{{label}}}}}");
        let entering = timeseries(
            &format!("Sessions per minute by {label}"),
            &format!("New sessions (visits), by {label}."),
            vec![target(
                rate(
                    "touchstream_funnel_sessions_total",
                    &visits,
                    label,
                    RATE,
                    " * 60",
                ),
                legend.clone(),
            )],
            Look {
                width: 12,
                ..STACKED
            },
        );
        if visits_too {
            out.push(entering);
        }
        out.push(timeseries(
            &format!("Conversion by {label}"),
            &format!("Purchases per visit, by {label}, over $window."),
            vec![target(
                format!(
                    "{} / {}",
                    rate(
                        "touchstream_funnel_sessions_total",
                        &purchases,
                        label,
                        "$window",
                        ""
                    ),
                    rate(
                        "touchstream_funnel_sessions_total",
                        &visits,
                        label,
                        "$window",
                        ""
                    )
                ),
                legend,
            )],
            Look { width: 12, ..RATIO },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, StageConfig};

    /// A journey of one stage, its own purchase stage: no step or checkout panels, and every
    /// panel left has a query.
    #[test]
    fn a_one_stage_journey_gets_no_empty_panels() {
        let mut c = Config::default();
        c.journey.stages = vec![StageConfig {
            within: None,
            step_delay: None,
            name: "signed".into(),
            phase: "decision".into(),
            touchpoints: vec!["contract_signed".into()],
        }];
        c.journey.cart_stage = "signed".into();
        c.journey.purchase_stage = "signed".into();
        let text = crate::ops::dashboard(&c);
        let d: serde_json::Value = serde_json::from_str(&text).unwrap();
        let panels = d["panels"].as_array().unwrap();
        let titled = |t: &str| panels.iter().any(|p| p["title"] == t);
        assert!(!titled("Step conversion") && !titled("Share of visits reaching each stage"));
        assert!(!titled("Step conversion against the usual"));
        assert!(!titled("Step alerts: shortfall score"));
        assert!(titled("Funnel: sessions reaching each stage"));
        for p in panels.iter().filter(|p| p["type"] != "row") {
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "{}",
                p["title"]
            );
        }
        let rules = crate::ops::rules(&c);
        assert!(!rules.contains("{step:") && !rules.contains("${"));
        assert!(rules.contains("(0 steps site-wide, 0 in channels and devices)"));
    }

    #[test]
    fn ref_ids_go_on_past_z() {
        let ids: Vec<String> = [0, 25, 26, 27, 51, 52, 701, 702]
            .map(crate::ops::panels::ref_id)
            .into();
        assert_eq!(ids, ["A", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
    }
}
