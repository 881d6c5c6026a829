//! A report of the funnel's figures (what `touchstream replay` prints), read from the same
//! metric handles `/metrics` exposes, as a table or as the contract's JSON.

use super::Metrics;
use super::money::{MoneyCounter, from_micros};
use crate::config::Config;
use crate::event::FilterReason;
use serde_json::{Map, Value, json};
use std::fmt::Write;

/// Figures of one site. Its main journey's funnel is `reached` and `dropoffs` (the contract's
/// shape); the funnels of the other journeys it runs are in `journeys`.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteReport {
    /// The main journey's name.
    pub journey: String,
    /// `(stage, sessions that reached it)`, in stage order.
    pub reached: Vec<(String, u64)>,
    /// `(stage, drop-offs)`, in stage order, without the last stage.
    pub dropoffs: Vec<(String, u64)>,
    /// `(journey, reached, dropoffs)` of each further journey, in the site's order.
    pub journeys: Vec<(String, Stages, Stages)>,
    pub carts_abandoned: u64,
    /// `(currency, value)` for every currency with a non-zero value.
    pub carts_abandoned_value: Vec<(String, f64)>,
    pub orders: u64,
    pub revenue: Vec<(String, f64)>,
    pub duplicates: u64,
    /// New events of closed sessions, counted against them.
    pub late: u64,
}

/// `(stage, sessions)` in stage order.
pub type Stages = Vec<(String, u64)>;

/// Figures of every configured site.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub sites: Vec<(String, SiteReport)>,
}

fn money(codes: &[String], counters: impl Fn(usize) -> MoneyCounter) -> Vec<(String, f64)> {
    codes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), counters(i).micros()))
        .filter(|(_, v)| *v != 0)
        .map(|(c, v)| (c, from_micros(v)))
        .collect()
}

impl Report {
    /// Reads the figures of `metrics`, built for `config`.
    pub fn new(config: &Config, metrics: &Metrics) -> Self {
        let f = &metrics.funnel;
        let all = metrics.journeys();
        // Reached and drop-offs of the journey in `site`'s `slot`.
        let funnel = |site: usize, slot: usize| {
            let stages = &all.of(site, slot).stages;
            let named = |k: usize, n: u64| (stages[k].name.clone(), n);
            let reached =
                (0..stages.len()).map(|k| named(k, f.reached_total(f.row(site, slot, k))));
            let dropoffs =
                (0..stages.len() - 1).map(|k| named(k, f.dropoffs_total(f.row(site, slot, k))));
            (reached.collect::<Stages>(), dropoffs.collect::<Stages>())
        };
        let sites = config
            .sites
            .iter()
            .enumerate()
            .map(|(s, site)| {
                let codes = &f.currencies[s].codes;
                let (reached, dropoffs) = funnel(s, 0);
                let journeys = (1..all.sites[s].slots())
                    .map(|slot| {
                        let (reached, dropoffs) = funnel(s, slot);
                        (all.of(s, slot).name.clone(), reached, dropoffs)
                    })
                    .collect();
                let report = SiteReport {
                    journey: all.of(s, 0).name.clone(),
                    reached,
                    dropoffs,
                    journeys,
                    carts_abandoned: f.carts_abandoned_total(s),
                    carts_abandoned_value: money(codes, |c| f.carts_abandoned_value(s, c).clone()),
                    orders: f.orders_total(s),
                    revenue: money(codes, |c| f.revenue(s, c).clone()),
                    duplicates: metrics.ingest.filtered(s, FilterReason::Duplicate).get(),
                    late: metrics.engine.late(s).get(),
                };
                (site.id.clone(), report)
            })
            .collect();
        Self { sites }
    }

    /// The contract's JSON form, and `journey` naming the journey of `reached` and `dropoffs`
    /// (the site's main one); a site's further journeys, if it runs any, under `journeys`
    /// (`{"<journey>": {"reached": ..., "dropoffs": ...}}`).
    pub fn to_json(&self) -> Value {
        fn obj<T: Into<Value> + Clone>(pairs: &[(String, T)]) -> Value {
            Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into()))
                    .collect(),
            )
        }
        let sites: Map<String, Value> = self
            .sites
            .iter()
            .map(|(id, r)| {
                let mut v = json!({
                    "journey": r.journey,
                    "reached": obj(&r.reached),
                    "dropoffs": obj(&r.dropoffs),
                    "carts_abandoned": r.carts_abandoned,
                    "carts_abandoned_value": obj(&r.carts_abandoned_value),
                    "orders": r.orders,
                    "revenue": obj(&r.revenue),
                    "duplicates": r.duplicates,
                    "late_events": r.late,
                });
                if !r.journeys.is_empty() {
                    let journeys: Map<String, Value> = (r.journeys.iter())
                        .map(|(name, reached, dropoffs)| {
                            let funnel =
                                json!({"reached": obj(reached), "dropoffs": obj(dropoffs)});
                            (name.clone(), funnel)
                        })
                        .collect();
                    v["journeys"] = Value::Object(journeys);
                }
                (id.clone(), v)
            })
            .collect();
        json!({ "sites": sites })
    }

    /// A table for people.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let amounts = |v: &[(String, f64)]| {
            if v.is_empty() {
                "0".to_string()
            } else {
                v.iter()
                    .map(|(c, x)| format!("{x:.2} {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        for (id, r) in &self.sites {
            let _ = writeln!(out, "site {id}");
            let title = |name: &str| match r.journeys.len() {
                0 => "stage".to_string(),
                _ => format!("{name}: stage"),
            };
            let main = (title(&r.journey), &r.reached, &r.dropoffs);
            let others = (r.journeys.iter()).map(|(name, re, dr)| (title(name), re, dr));
            for (title, reached, dropoffs) in std::iter::once(main).chain(others) {
                funnel_table(&mut out, &title, reached, dropoffs);
            }
            let _ = writeln!(
                out,
                "  abandoned carts  {} worth {}",
                r.carts_abandoned,
                amounts(&r.carts_abandoned_value)
            );
            let _ = writeln!(
                out,
                "  orders           {} worth {}",
                r.orders,
                amounts(&r.revenue)
            );
            let _ = writeln!(out, "  duplicates       {}", r.duplicates);
            let _ = writeln!(out, "  late events      {}", r.late);
        }
        out
    }
}

/// One journey's stages: reached, share of the first stage, drop-offs.
fn funnel_table(out: &mut String, title: &str, reached: &Stages, dropoffs: &Stages) {
    let first = reached.first().map(|(_, n)| *n).unwrap_or(0).max(1) as f64;
    let _ = writeln!(
        out,
        "  {title:<16} {:>10} {:>9} {:>10}",
        "reached", "of first", "drop-offs"
    );
    for (i, (stage, n)) in reached.iter().enumerate() {
        let drop = (dropoffs.get(i))
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "-".into());
        let share = 100.0 * *n as f64 / first;
        let _ = writeln!(out, "  {stage:<16} {n:>10} {share:>8.1}% {drop:>10}");
    }
}
