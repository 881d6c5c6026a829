//! A report of the funnel's figures (what `touchstream replay` prints), read from the same
//! metric handles `/metrics` exposes, as a table or as the contract's JSON.

use super::Metrics;
use super::money::{MoneyCounter, from_micros};
use crate::config::Config;
use crate::event::FilterReason;
use serde_json::{Map, Value, json};
use std::fmt::Write;

/// Figures of one site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteReport {
    /// `(stage, sessions that reached it)`, in stage order.
    pub reached: Vec<(String, u64)>,
    /// `(stage, drop-offs)`, in stage order, without the last stage.
    pub dropoffs: Vec<(String, u64)>,
    pub carts_abandoned: u64,
    /// `(currency, value)` for every currency with a non-zero value.
    pub carts_abandoned_value: Vec<(String, f64)>,
    pub orders: u64,
    pub revenue: Vec<(String, f64)>,
    pub duplicates: u64,
    /// New events of closed sessions, counted against them.
    pub late: u64,
}

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
        let stages = &metrics.journey().stages;
        let sites = config
            .sites
            .iter()
            .enumerate()
            .map(|(s, site)| {
                let codes = &f.currencies[s].codes;
                let report = SiteReport {
                    reached: stages
                        .iter()
                        .enumerate()
                        .map(|(k, st)| (st.name.clone(), f.reached_total(s, k)))
                        .collect(),
                    dropoffs: stages[..stages.len() - 1]
                        .iter()
                        .enumerate()
                        .map(|(k, st)| (st.name.clone(), f.dropoffs_total(s, k)))
                        .collect(),
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

    /// The contract's JSON form.
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
                let v = json!({
                    "reached": obj(&r.reached),
                    "dropoffs": obj(&r.dropoffs),
                    "carts_abandoned": r.carts_abandoned,
                    "carts_abandoned_value": obj(&r.carts_abandoned_value),
                    "orders": r.orders,
                    "revenue": obj(&r.revenue),
                    "duplicates": r.duplicates,
                    "late_events": r.late,
                });
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
            let first = r.reached.first().map(|(_, n)| *n).unwrap_or(0).max(1) as f64;
            let _ = writeln!(out, "site {id}");
            let _ = writeln!(
                out,
                "  {:<16} {:>10} {:>9} {:>10}",
                "stage", "reached", "of first", "drop-offs"
            );
            for (i, (stage, n)) in r.reached.iter().enumerate() {
                let drop = r
                    .dropoffs
                    .get(i)
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_else(|| "-".into());
                let share = 100.0 * *n as f64 / first;
                let _ = writeln!(out, "  {stage:<16} {n:>10} {share:>8.1}% {drop:>10}");
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
