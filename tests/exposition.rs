//! The `/metrics` exposition is part of the contract (dashboards, alert rules and operators'
//! queries read it): every family, in order, and every series created at zero at start-up. This
//! compares it with `tests/golden/exposition.txt` (values left out, series sorted within each
//! family, whose order is a hash map's), after one series of each family created on first use
//! was made, so those families are pinned too. A change to the metrics updates that file in the
//! same commit, on purpose: `TOUCHSTREAM_BLESS=1 cargo test --test exposition` rewrites it.

use touchstream::config::Config;
use touchstream::metrics::{Metrics, Route, labels};

/// One series of each family whose series appear on first use, as in a process at work.
fn first_uses(m: &Metrics) {
    m.funnel.touchpoint(0, 0, 0).inc();
    m.funnel.friction(m.funnel.row(0, 0, 0), 0).inc();
    m.http.record(Route::Events, 200, 0.001);
    m.transport
        .failures
        .get_or_create(&labels([("reason", "full")]))
        .inc();
    m.kafka.delivery_error("timed_out");
    m.kafka
        .consumer_lag
        .get_or_create(&labels([("partition", "0")]))
        .set(0);
    m.kafka.commit(true);
}

/// Family lines as they are; the series of each family without their values, sorted.
fn normalise(text: &str) -> String {
    let mut out = Vec::new();
    let mut series: Vec<String> = Vec::new();
    let flush = |out: &mut Vec<String>, series: &mut Vec<String>| {
        series.sort();
        out.append(series);
    };
    for line in text.lines().filter(|l| *l != "# EOF") {
        if line.starts_with('#') {
            flush(&mut out, &mut series);
            out.push(line.to_string());
        } else {
            let (name, _value) = line.rsplit_once(' ').expect("a sample has a value");
            series.push(name.to_string());
        }
    }
    flush(&mut out, &mut series);
    out.join("\n") + "\n"
}

#[test]
fn the_start_up_exposition_is_the_contract() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/exposition.txt");
    let metrics = Metrics::new(&Config::default());
    first_uses(&metrics);
    let actual = normalise(&metrics.encode());
    if std::env::var_os("TOUCHSTREAM_BLESS").is_some() {
        std::fs::write(path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap();
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
        panic!(
            "the start-up exposition differs from {path} from line {}: {:?} instead of {:?}",
            first + 1,
            actual.lines().nth(first),
            expected.lines().nth(first)
        );
    }
}
