//! The dashboard's funnel rows: the stages reached, step conversion, drop-off and stage timing,
//! and the channel and device breakdowns.

use super::dashboard::Stages;
use super::json::J;
use super::panels::{
    ALL, LOOK, Look, RATE, RATIO, SITE, STACKED, bars, instant, rate, reached, staged, target,
    timeseries,
};

pub(super) fn funnel(s: &Stages) -> Vec<J> {
    let total = |stage: &str| {
        format!(
            "sum(increase({}[$__range]))",
            staged("touchstream_funnel_sessions_total", ALL, stage)
        )
    };
    let first = &s.all[0];
    let wide = Look {
        width: 12,
        height: 9,
        ..LOOK
    };
    vec![
        bars(
            "Funnel: sessions reaching each stage",
            "Sessions that reached each stage (or a later one) in the selected time range.",
            s.all
                .iter()
                .map(|st| instant(total(st), st.as_str()))
                .collect(),
            wide,
        ),
        bars(
            "Share of visits reaching each stage",
            "Sessions reaching the stage per session that visited, over the selected time range.",
            (s.all[1..].iter())
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
            (s.all.windows(2))
                .map(|p| {
                    let expr = format!("{} / {}", reached(&p[1]), reached(&p[0]));
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
                        ALL,
                        "stage",
                        "$window",
                        ""
                    ),
                    rate(
                        "touchstream_funnel_sessions_total",
                        ALL,
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
            "Checkout conversion: last 15 minutes and the day",
            "Checkout to purchase, all channels and devices (recording rules of deploy/prometheus). \
             CheckoutDropoffSpike pages when the 15-minute line stays under half of the day line.",
            vec![
                target(
                    format!("site:touchstream_checkout_conversion:ratio15m{{{SITE}}}"),
                    "{{site}} last 15 min",
                ),
                target(
                    format!("site:touchstream_checkout_conversion:ratio1d{{{SITE}}}"),
                    "{{site}} last day",
                ),
            ],
            RATIO,
        ),
        timeseries(
            "Open sessions by stage",
            "Sessions open now, by the furthest stage they reached (all channels and devices).",
            vec![target(
                format!("sum by (stage) (touchstream_funnel_active_sessions{{{SITE}}})"),
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
                             (rate(touchstream_stage_reached_seconds_bucket{{{SITE}}}[$window])))"
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

pub(super) fn breakdowns(s: &Stages) -> Vec<J> {
    let visits = format!(r#"{ALL},stage="{}""#, s.all[0]);
    let purchases = format!(r#"{ALL},stage="{}""#, s.purchase);
    let mut out = Vec::new();
    for label in ["channel", "device"] {
        let legend = format!("{{{{{label}}}}}");
        out.push(timeseries(
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
        ));
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
