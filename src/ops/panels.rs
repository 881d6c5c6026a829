//! The dashboard's building blocks (selectors, queries, panels) and its carts and friction rows;
//! the funnel rows are in `funnel`, the health row in `health`. Funnel, cart and order counters
//! carry channel and device; the others only site.

use super::json::{J, obj};

/// One journey's stages, as the panels name them.
pub(super) struct Stages {
    pub journey: String,
    pub ordered: bool,
    pub names: Vec<String>,
    pub purchase: Option<String>,
}

impl Stages {
    /// The stages of `j`.
    pub fn of(j: &crate::config::JourneyConfig) -> Self {
        let name = |i: Option<usize>| i.map(|i| j.stages[i].name.clone());
        Self {
            journey: j.name.clone(),
            ordered: j.mode == crate::config::JourneyMode::Ordered,
            names: j.stages.iter().map(|s| s.name.clone()).collect(),
            purchase: name(j.purchase_stage()),
        }
    }

    /// [`ALL`] within this journey.
    pub fn all(&self) -> String {
        format!(r#"{ALL},journey="{}""#, self.journey)
    }

    /// [`SITE`] within this journey.
    pub fn site(&self) -> String {
        format!(r#"{SITE},journey="{}""#, self.journey)
    }

    /// The stage a purchase per visit is measured at: the purchase stage, else the last.
    pub fn converted(&self) -> &str {
        self.purchase
            .as_deref()
            .unwrap_or(&self.names[self.names.len() - 1])
    }
}

/// A query's `refId` as Grafana names them: `A` to `Z`, then `AA`, `AB`, ... (a journey of 32
/// stages has 31 step queries in one panel).
pub(super) fn ref_id(i: usize) -> String {
    let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
    match i / 26 {
        0 => letter(i).to_string(),
        n => format!("{}{}", ref_id(n - 1), letter(i)),
    }
}

/// The data source every panel and query uses: the dashboard's variable.
pub(super) fn datasource() -> J {
    obj! { "type" => "prometheus", "uid" => "${datasource}" }
}

pub(super) const SITE: &str = r#"site=~"$site""#;
pub(super) const ALL: &str = r#"site=~"$site",channel=~"$channel",device=~"$device""#;
pub(super) const INGEST: &str = r#"route="/v1/events""#;
pub(super) const FAILED: &str = r#"route="/v1/events",status=~"5..""#;
pub(super) const RATE: &str = "$__rate_interval";

/// `metric{labels,stage="s"}`.
pub(super) fn staged(metric: &str, labels: &str, stage: &str) -> String {
    format!(r#"{metric}{{{labels},stage="{stage}"}}"#)
}

/// Sessions reaching `stage` of journey `s` per second, over `$window`.
pub(super) fn reached(s: &Stages, stage: &str) -> String {
    format!(
        "sum(rate({}[$window]))",
        staged("touchstream_funnel_sessions_total", &s.all(), stage)
    )
}

pub(super) fn series(metric: &str, labels: &str) -> String {
    if labels.is_empty() {
        metric.to_string()
    } else {
        format!("{metric}{{{labels}}}")
    }
}

/// The summed per-second rate of `metric{labels}`, `by` labels when given, then `scale`.
pub(super) fn rate(metric: &str, labels: &str, by: &str, window: &str, scale: &str) -> String {
    let grouping = if by.is_empty() {
        "sum".to_string()
    } else {
        format!("sum by ({by}) ")
    };
    format!(
        "{grouping}(rate({}[{window}])){scale}",
        series(metric, labels)
    )
}

pub(super) fn quantile(q: &str, metric: &str, labels: &str, by: &str) -> String {
    let buckets = series(&format!("{metric}_bucket"), labels);
    format!("histogram_quantile({q}, sum by ({by}) (rate({buckets}[{RATE}])))")
}

pub(super) fn target(expr: impl Into<String>, legend: impl Into<String>) -> J {
    obj! { "datasource" => datasource(), "expr" => expr.into(), "legendFormat" => legend.into() }
}

/// A target read once, at the end of the time range.
pub(super) fn instant(expr: impl Into<String>, legend: impl Into<String>) -> J {
    (target(expr, legend))
        .with("instant", true.into())
        .with("range", false.into())
        .with("format", "time_series".into())
}

/// How a panel looks.
#[derive(Clone, Copy)]
pub(super) struct Look {
    pub unit: &'static str,
    pub width: i64,
    pub height: i64,
    pub min: Option<i64>,
    pub no_value: Option<&'static str>,
    pub stack: bool,
    /// Series whose legend matches this regular expression are drawn dashed (a baseline).
    pub dashed: Option<&'static str>,
}

pub(super) const LOOK: Look = Look {
    unit: "short",
    width: 8,
    height: 8,
    min: None,
    no_value: None,
    stack: false,
    dashed: None,
};

pub(super) const RATIO: Look = Look {
    unit: "percentunit",
    min: Some(0),
    ..LOOK
};

pub(super) const STACKED: Look = Look {
    stack: true,
    ..LOOK
};

fn panel(kind: &str, title: &str, description: &str, targets: Vec<J>, look: Look) -> J {
    let mut defaults = obj! { "unit" => look.unit };
    if let Some(min) = look.min {
        defaults = defaults.with("min", min.into());
    }
    if let Some(text) = look.no_value {
        defaults = defaults.with("noValue", text.into());
    }
    let last = obj! { "calcs" => vec![J::from("lastNotNull")], "fields" => "", "values" => false };
    let options = match kind {
        "timeseries" => {
            let custom = obj! {
                "drawStyle" => "line", "lineWidth" => 1i64,
                "fillOpacity" => if look.stack { 20i64 } else { 0 },
                "showPoints" => "never", "spanNulls" => true,
                "stacking" => obj! {
                    "mode" => if look.stack { "normal" } else { "none" }, "group" => "A",
                },
            };
            defaults = defaults.with("custom", custom);
            obj! {
                "legend" => obj! { "displayMode" => "list", "placement" => "bottom", "showLegend" => true },
                "tooltip" => obj! { "mode" => "multi", "sort" => "desc" },
            }
        }
        "stat" => obj! { "reduceOptions" => last, "colorMode" => "value", "graphMode" => "area" },
        _ => obj! {
            "reduceOptions" => last, "orientation" => "horizontal",
            "displayMode" => "gradient", "showUnfilled" => true,
        },
    };
    let overrides: Vec<J> = (look.dashed.iter())
        .map(|regex| {
            let dash = obj! { "fill" => "dash", "dash" => vec![J::from(10i64), J::from(10i64)] };
            obj! {
                "matcher" => obj! { "id" => "byRegexp", "options" => *regex },
                "properties" => vec![obj! { "id" => "custom.lineStyle", "value" => dash }],
            }
        })
        .collect();
    let targets: Vec<J> = (targets.into_iter().enumerate())
        .map(|(i, t)| t.with("refId", ref_id(i).into()))
        .collect();
    obj! {
        "type" => kind, "title" => title, "description" => description,
        "datasource" => datasource(), "targets" => targets,
        "fieldConfig" => obj! { "defaults" => defaults, "overrides" => overrides },
        "options" => options, "width" => look.width, "height" => look.height,
    }
}

pub(super) fn timeseries(title: &str, description: &str, targets: Vec<J>, look: Look) -> J {
    panel("timeseries", title, description, targets, look)
}

pub(super) fn stat(title: &str, description: &str, targets: Vec<J>, look: Look) -> J {
    panel("stat", title, description, targets, look)
}

pub(super) fn bars(title: &str, description: &str, targets: Vec<J>, look: Look) -> J {
    panel("bargauge", title, description, targets, look)
}

/// The carts and orders row (carts and orders are the session's, whatever its journeys).
pub(super) fn carts() -> Vec<J> {
    let small = Look { width: 4, ..LOOK };
    let hourly = |metric: &str, labels: &str, by: &str| rate(metric, labels, by, RATE, " * 3600");
    vec![
        stat(
            "Open carts",
            "Open sessions with a cart and no order.",
            vec![target(
                format!("sum(touchstream_carts_open{{{SITE}}})"),
                "carts",
            )],
            small,
        ),
        stat(
            "Value in open carts",
            "What the open carts hold, per currency.",
            vec![target(
                format!("sum by (currency) (touchstream_carts_open_value{{{SITE}}})"),
                "{{currency}}",
            )],
            small,
        ),
        timeseries(
            "Abandoned carts per hour",
            "Sessions that reached the cart and closed without an order, by channel.",
            vec![target(
                hourly("touchstream_carts_abandoned_total", ALL, "channel"),
                "{{channel}}",
            )],
            STACKED,
        ),
        timeseries(
            "Abandoned cart value per hour",
            "Value left in abandoned carts, per currency.",
            vec![target(
                hourly("touchstream_carts_abandoned_value_total", SITE, "currency"),
                "{{currency}}",
            )],
            LOOK,
        ),
        timeseries(
            "Cart abandonment rate",
            "Abandoned carts per cart opened (a session reaching a cart stage), over $window.",
            vec![target(
                format!(
                    "{} / {}",
                    rate("touchstream_carts_abandoned_total", ALL, "", "$window", ""),
                    rate("touchstream_carts_opened_total", ALL, "", "$window", "")
                ),
                "abandoned",
            )],
            RATIO,
        ),
        timeseries(
            "Orders per hour",
            "Orders (an order id counted once), by channel.",
            vec![target(
                hourly("touchstream_orders_total", ALL, "channel"),
                "{{channel}}",
            )],
            STACKED,
        ),
        timeseries(
            "Revenue per hour",
            "Revenue of orders, per currency.",
            vec![target(
                hourly("touchstream_revenue_total", SITE, "currency"),
                "{{currency}}",
            )],
            LOOK,
        ),
        timeseries(
            "Average order value",
            "Revenue per order, per currency, over $window.",
            vec![target(
                format!(
                    "{} / {}",
                    rate(
                        "touchstream_order_value_sum",
                        SITE,
                        "currency",
                        "$window",
                        ""
                    ),
                    rate(
                        "touchstream_order_value_count",
                        SITE,
                        "currency",
                        "$window",
                        ""
                    )
                ),
                "{{currency}}",
            )],
            LOOK,
        ),
    ]
}

/// The friction panels of journey `s` (a friction kind counts in each journey naming it), and
/// where its sessions left: their last friction and last touchpoint at the drop-off.
pub(super) fn friction(s: &Stages) -> Vec<J> {
    let per_minute = |by: &str| rate("touchstream_friction_total", &s.site(), by, RATE, " * 60");
    let site = s.site();
    let after_friction = format!(
        "sum by (stage, kind) (rate(touchstream_funnel_dropoffs_last_friction_total{{{site},kind!=\"none\"}}[$window])) \
         / on (stage) group_left sum by (stage) (rate(touchstream_funnel_dropoffs_total{{{site}}}[$window]))"
    );
    let last_touchpoint = format!(
        "topk(10, sum by (stage, touchpoint) (rate(touchstream_funnel_dropoffs_last_touchpoint_total{{{site}}}[$window])) * 3600)"
    );
    vec![
        timeseries(
            "Drop-offs after friction",
            "Share of a stage's drop-offs whose last friction was each kind, over $window: the last pain they met before leaving.",
            vec![target(after_friction, "{{stage}}: {{kind}}")],
            RATIO,
        ),
        timeseries(
            "Last touchpoint before a drop-off",
            "Drop-offs per hour by stage and the last touchpoint the session sent, the ten largest, over $window.",
            vec![target(last_touchpoint, "{{stage}}: {{touchpoint}}")],
            LOOK,
        ),
        timeseries(
            "Friction per minute by stage",
            "Errors, failed payments, form errors, rage clicks and out-of-stock hits, by the stage the session stood at.",
            vec![target(per_minute("stage"), "{{stage}}")],
            STACKED,
        ),
        timeseries(
            "Friction per minute by kind",
            "The same touchpoints by kind.",
            vec![target(per_minute("kind"), "{{kind}}")],
            STACKED,
        ),
    ]
}

/// Every touchpoint by phase (once per event, whatever the journeys).
pub(super) fn touchpoints() -> J {
    timeseries(
        "Touchpoints per minute by phase",
        "Every counted touchpoint, by journey phase.",
        vec![target(
            rate(
                "touchstream_touchpoints_total",
                SITE,
                "phase",
                RATE,
                " * 60",
            ),
            "{{phase}}",
        )],
        STACKED,
    )
}
