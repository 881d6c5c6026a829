//! `touchstream dashboard`: the Grafana dashboard for the configured journey map, its panels in
//! `panels`. Every query is run against a real Prometheus by `tests/dashboard.rs`.

use super::json::{J, obj};
use super::panels::{self, Stages, datasource};
use crate::config::Config;

fn has_targets(panel: &J) -> bool {
    let J::Obj(fields) = panel else { return false };
    (fields.iter()).any(|(k, v)| *k == "targets" && !matches!(v, J::Arr(t) if t.is_empty()))
}

/// The dashboard for `config`'s journeys (validated): a funnel row and a breakdown row for each
/// journey (titled with its name when there are several), then the carts, friction and health
/// rows.
pub fn dashboard(config: &Config) -> String {
    let journeys: Vec<Stages> = config.journeys().iter().map(Stages::of).collect();
    let titled = |title: &str, s: &Stages| match journeys.len() {
        1 => title.to_string(),
        _ => format!("{title}: {}", s.journey),
    };
    let mut rows = Vec::new();
    for s in &journeys {
        rows.push((titled("Funnel", s), super::funnel::funnel(s)));
    }
    rows.push(("Carts, orders and revenue".into(), panels::carts()));
    for (i, s) in journeys.iter().enumerate() {
        let breakdowns = super::funnel::breakdowns(s, i == 0 || s.ordered);
        rows.push((titled("Channels and devices", s), breakdowns));
    }
    for s in &journeys {
        rows.push((titled("Friction", s), panels::friction(s)));
    }
    if let Some((_, last)) = rows.last_mut() {
        last.push(panels::touchpoints());
    }
    rows.push(("Ingest and engine health".into(), super::health::health()));
    let (mut out, mut y, mut next_id) = (Vec::new(), 0, 1);
    for (title, row) in rows {
        out.push(obj! {
            "type" => "row", "title" => title.as_str(), "collapsed" => false, "panels" => Vec::new(),
            "id" => next_id,
            "gridPos" => obj! { "h" => 1i64, "w" => 24i64, "x" => 0i64, "y" => y },
        });
        next_id += 1;
        y += 1;
        let (mut x, mut line_height) = (0, 0);
        // A panel without a query (a step of a one-stage journey, say) is left out.
        for mut p in row.into_iter().filter(has_targets) {
            let (w, h) = (int(p.take("width")), int(p.take("height")));
            if x + w > 24 {
                (x, y, line_height) = (0, y + line_height, 0);
            }
            let grid = obj! { "h" => h, "w" => w, "x" => x, "y" => y };
            out.push(p.with("id", next_id.into()).with("gridPos", grid));
            next_id += 1;
            x += w;
            line_height = line_height.max(h);
        }
        y += line_height;
    }
    let windows = ["15m", "1h", "6h", "1d"];
    let options: Vec<J> = (windows.iter())
        .map(|v| obj! { "selected" => *v == "1h", "text" => *v, "value" => *v })
        .collect();
    obj! {
        "uid" => "touchstream", "title" => "touchstream: customer journey",
        "tags" => vec![J::from("touchstream"), J::from("e-commerce")],
        "description" => "Live funnel, carts, revenue and friction from touchstream, and its ingest health.",
        "timezone" => "browser", "editable" => true, "graphTooltip" => 1i64, "refresh" => "30s",
        "schemaVersion" => 39i64, "version" => 1i64,
        "time" => obj! { "from" => "now-6h", "to" => "now" },
        "templating" => obj! { "list" => vec![
            obj! {
                "name" => "datasource", "label" => "Data source", "type" => "datasource",
                "query" => "prometheus", "current" => obj! {}, "hide" => 0i64, "refresh" => 1i64,
            },
            variable("site", "Site", "label_values(touchstream_funnel_sessions_total, site)"),
            variable("channel", "Channel", r#"label_values(touchstream_funnel_sessions_total{site=~"$site"}, channel)"#),
            variable("device", "Device", r#"label_values(touchstream_funnel_sessions_total{site=~"$site"}, device)"#),
            obj! {
                "name" => "window", "label" => "Ratio window", "type" => "custom",
                "query" => windows.join(","),
                "current" => obj! { "selected" => true, "text" => "1h", "value" => "1h" },
                "hide" => 0i64, "multi" => false, "includeAll" => false, "options" => options,
            },
        ] },
        "annotations" => obj! { "list" => vec![obj! {
            "name" => "Funnel alerts", "datasource" => datasource(), "enable" => true,
            "iconColor" => "red",
            "expr" => r#"ALERTS{alertstate="firing", team="ecommerce", site=~"$site"}"#,
            "titleFormat" => "{{alertname}}", "textFormat" => "{{site}}", "step" => "60s",
        }] },
        "panels" => out,
    }
    .pretty()
}

fn int(value: Option<J>) -> i64 {
    match value {
        Some(J::Int(n)) => n,
        other => panic!("a panel's size is an integer, not {other:?}"),
    }
}

fn variable(name: &str, label: &str, query: &str) -> J {
    obj! {
        "name" => name, "label" => label, "type" => "query", "datasource" => datasource(),
        "query" => obj! { "query" => query, "refId" => format!("{name}-values") },
        "definition" => query, "includeAll" => true, "multi" => true, "allValue" => ".*",
        "current" => obj! {
            "selected" => true, "text" => vec![J::from("All")], "value" => vec![J::from("$__all")],
        },
        "refresh" => 2i64, "sort" => 1i64, "hide" => 0i64,
    }
}
