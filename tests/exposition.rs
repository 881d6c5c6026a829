//! The `/metrics` exposition at start-up is part of the contract (dashboards, alert rules and
//! operators' queries read it): every family, in order, and every series created at zero. This
//! compares it with `tests/golden/exposition.txt` (values left out, series sorted within each
//! family, whose order is a hash map's). A change to the metrics updates that file in the same
//! commit, on purpose: `TOUCHSTREAM_BLESS=1 cargo test --test exposition` rewrites it.

use touchstream::config::Config;
use touchstream::metrics::Metrics;

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
    let actual = normalise(&Metrics::new(&Config::default()).encode());
    if std::env::var_os("TOUCHSTREAM_BLESS").is_some() {
        std::fs::write(path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap();
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(0);
        panic!(
            "the start-up exposition differs from {path} from line {}: {:?} instead of {:?}",
            first + 1,
            actual.lines().nth(first),
            expected.lines().nth(first)
        );
    }
}
