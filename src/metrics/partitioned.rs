//! The exposition of a Kafka engine: the process's own metrics, and the engine's series of each
//! partition it owns, labelled `partition`.
//!
//! Each owned partition counts into a [`Metrics`] of its own, checkpointed with the partition's
//! offset; its counters are the partition's since its first message (restored by whichever
//! engine owns it next), so they are a function of the partition's offset alone: the engine
//! that owns it, the number of scrapers, a curl or a restart change nothing. `sum by (...)
//! (max by (..., partition) (...))` over engines (the recording rules in
//! `deploy/prometheus/rules.yml`) is therefore exact and never decreases when a partition moves.
//!
//! The text is merged family by family: a family the engine writes (the figures' ledger and the
//! engine's gauges) takes its series from the partitions, every other from the process. The
//! events-filtered family is shared: the collector's reasons come from the process, the
//! engine's from the partitions.

use super::{IngestMetrics, Metrics};
use std::collections::HashMap;
use std::fmt::Write;

/// The gauges the engine writes per partition (its counters are in the ledger).
const ENGINE_GAUGES: [&str; 4] = [
    "touchstream_funnel_active_sessions",
    "touchstream_carts_open",
    "touchstream_carts_open_value",
    "touchstream_engine_open_sessions",
];

/// The family whose series the collector and the engine share, by reason.
const FILTERED: &str = "touchstream_events_filtered";

/// One family of an exposition: its name, its comment lines and its samples.
struct Block<'a> {
    name: &'a str,
    header: Vec<&'a str>,
    samples: Vec<&'a str>,
}

/// Splits an OpenMetrics text into families, in order (`# EOF` left out).
fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out: Vec<Block> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or(rest);
            out.push(Block {
                name,
                header: vec![line],
                samples: Vec::new(),
            });
        } else if line == "# EOF" || line.is_empty() {
        } else if let Some(block) = out.last_mut() {
            if line.starts_with('#') {
                block.header.push(line);
            } else {
                block.samples.push(line);
            }
        }
    }
    out
}

/// `line` with `partition="p"` as its first label.
fn labelled(line: &str, partition: &str, out: &mut String) {
    let name_end = line.find([' ', '{']).unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    out.push_str(name);
    match rest.strip_prefix('{') {
        Some(labels) if labels.starts_with('}') => {
            _ = write!(out, "{{partition=\"{partition}\"{labels}");
        }
        Some(labels) => _ = write!(out, "{{partition=\"{partition}\",{labels}"),
        None => _ = write!(out, "{{partition=\"{partition}\"}}{rest}"),
    }
    out.push('\n');
}

/// Whether a sample of the events-filtered family is of a reason the engine counts.
fn engine_reason(sample: &str) -> bool {
    IngestMetrics::ENGINE_REASONS
        .iter()
        .any(|r| sample.contains(&format!("reason=\"{}\"", r.as_str())))
}

impl Metrics {
    /// Whether the engine writes family `name` (as registered, without `_total`).
    fn engine_family(&self, name: &str) -> bool {
        ENGINE_GAUGES.contains(&name) || self.ledger.iter().any(|b| b.name() == name)
    }

    /// This process's exposition with the engine's series taken from `parts`, each labelled
    /// with its partition (see the module doc). `parts` are metrics of the same configuration.
    pub fn encode_partitioned(&self, parts: &[(i32, &Metrics)]) -> String {
        let own = self.encode();
        let texts: Vec<(String, String)> = parts
            .iter()
            .map(|(p, m)| (p.to_string(), m.encode()))
            .collect();
        let per_part: Vec<(&str, HashMap<&str, Block>)> = texts
            .iter()
            .map(|(p, text)| {
                let families = blocks(text).into_iter().map(|b| (b.name, b)).collect();
                (p.as_str(), families)
            })
            .collect();
        let mut out = String::with_capacity(own.len() * (parts.len() + 1));
        for block in blocks(&own) {
            for line in &block.header {
                out.push_str(line);
                out.push('\n');
            }
            let engine = self.engine_family(block.name);
            let shared = block.name == FILTERED;
            for sample in &block.samples {
                if !engine || (shared && !engine_reason(sample)) {
                    out.push_str(sample);
                    out.push('\n');
                }
            }
            if !engine {
                continue;
            }
            for (partition, families) in &per_part {
                let Some(theirs) = families.get(block.name) else {
                    continue;
                };
                for sample in &theirs.samples {
                    if !shared || engine_reason(sample) {
                        labelled(sample, partition, &mut out);
                    }
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::FilterReason;

    #[test]
    fn engine_series_come_from_the_partitions_and_the_rest_from_the_process() {
        let config = Config::default();
        let process = Metrics::new(&config);
        process.ingest.received(0).inc_by(3);
        process.ingest.filtered(0, FilterReason::Bot).inc();
        // Never written by a Kafka engine's process: left out, not shown at zero.
        process.engine.applied.inc_by(100);
        let (a, b) = (Metrics::new(&config), Metrics::new(&config));
        a.engine.applied.inc_by(2);
        a.ingest.filtered(0, FilterReason::Duplicate).inc();
        a.funnel.carts_open(0).set(1);
        b.engine.applied.inc_by(5);
        b.ingest.filtered(0, FilterReason::Bot).inc_by(50);
        let text = process.encode_partitioned(&[(0, &a), (3, &b)]);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has(
            r#"touchstream_engine_events_applied_total{partition="0"} 2"#
        ));
        assert!(has(
            r#"touchstream_engine_events_applied_total{partition="3"} 5"#
        ));
        assert!(!text.contains("touchstream_engine_events_applied_total 100"));
        assert!(has(
            r#"touchstream_carts_open{partition="0",site="demo"} 1"#
        ));
        assert!(has(r#"touchstream_events_received_total{site="demo"} 3"#));
        // The filtered family: the collector's reasons from the process, the engine's from the
        // partitions.
        assert!(has(
            r#"touchstream_events_filtered_total{site="demo",reason="bot"} 1"#
        ));
        assert!(has(
            r#"touchstream_events_filtered_total{partition="0",site="demo",reason="duplicate"} 1"#
        ));
        assert!(!text.contains(r#"{partition="3",site="demo",reason="bot"}"#));
        assert!(
            !text.contains(r#"touchstream_events_filtered_total{site="demo",reason="duplicate"}"#)
        );
        // One family block each, and the end marker last.
        let helps = |name: &str| text.matches(&format!("# HELP {name} ")).count();
        assert_eq!(helps("touchstream_engine_events_applied"), 1);
        assert_eq!(helps("touchstream_events_filtered"), 1);
        assert!(text.ends_with("# EOF\n"));
        // Every engine series of a partition is shown: the same count as a process alone.
        let count = |t: &str, name: &str| t.lines().filter(|l| l.starts_with(name)).count();
        let alone = a.encode();
        for family in [
            "touchstream_funnel_sessions_total",
            "touchstream_order_value_bucket",
        ] {
            assert_eq!(count(&text, family), 2 * count(&alone, family), "{family}");
        }
    }

    #[test]
    fn the_partition_label_goes_first_in_every_shape_of_sample() {
        let mut out = String::new();
        labelled(r#"a_total{site="demo"} 3"#, "7", &mut out);
        labelled("b_total 4", "7", &mut out);
        labelled("c{} 5", "7", &mut out);
        labelled(r#"d_bucket{le="+Inf",site="x"} 1"#, "7", &mut out);
        assert_eq!(
            out,
            "a_total{partition=\"7\",site=\"demo\"} 3\nb_total{partition=\"7\"} 4\n\
             c{partition=\"7\"} 5\nd_bucket{partition=\"7\",le=\"+Inf\",site=\"x\"} 1\n"
        );
    }
}
