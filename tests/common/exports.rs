//! The metric names touchstream exports, and the names a rule file or dashboard reads, so a test
//! can tell that every query reads something that exists.

use std::collections::BTreeSet;
use touchstream::config::Config;
use touchstream::metrics::Metrics;

/// Every sample name touchstream can export (counters with `_total`, histograms' series).
pub fn exported() -> BTreeSet<String> {
    let config = Config::default();
    let metrics = Metrics::new(&config);
    // Families whose series appear on first use, as in a process that has been working.
    metrics
        .http
        .record(touchstream::metrics::Route::Events, 200, 0.001);
    metrics.kafka.delivery_error("timed_out");
    metrics.kafka.commit(true);
    metrics.funnel.touchpoint(0, 0, 0).inc();
    let row = metrics.funnel.row(0, 0, 0);
    metrics.funnel.friction(row, 0).inc();
    metrics.funnel.dropoffs_last_touchpoint(row, 0).inc();
    metrics.funnel.dropoffs_last_friction(row, 0).inc();
    metrics
        .kafka
        .consumer_lag
        .get_or_create(&touchstream::metrics::labels([("partition", "0")]))
        .set(0);
    // Families from their TYPE lines; OpenMetrics names a counter family without the `_total`
    // of its samples.
    let mut names = BTreeSet::new();
    for line in metrics.encode().lines() {
        let Some(family) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = family.split_once(' ').unwrap_or((family, ""));
        match kind {
            "counter" => _ = names.insert(format!("{name}_total")),
            "histogram" => {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")))
            }
            _ => _ = names.insert(name.to_string()),
        }
    }
    names
}

/// The touchstream metric names `text` reads: recorded series (`level:metric:operations`) and
/// anchors (`#name`) excluded.
pub fn read_by(text: &str) -> BTreeSet<String> {
    let mut read = BTreeSet::new();
    for (i, _) in text.match_indices("touchstream_") {
        let before = text[..i].chars().last().unwrap_or(' ');
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if before != ':' && before != '#' && !text[i + name.len()..].starts_with(':') {
            read.insert(name);
        }
    }
    read
}

/// Names in `text` that touchstream does not export.
pub fn unknown_in(text: &str) -> Vec<String> {
    let exported = exported();
    read_by(text)
        .into_iter()
        .filter(|n| !exported.contains(n))
        .collect()
}
