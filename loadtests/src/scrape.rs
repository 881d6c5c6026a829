//! A small reader of the Prometheus/OpenMetrics text exposition, for exact comparisons.

use crate::truth::{Figures, Money, STAGES, micros};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parsed `/metrics` output.
#[derive(Debug, Clone)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|line| {
                let (series, value) = line
                    .rsplit_once(' ')
                    .unwrap_or_else(|| panic!("bad line {line}"));
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
                    None => (series, Vec::new()),
                };
                Sample {
                    name: name.to_string(),
                    labels,
                    value: value.parse().unwrap_or_else(|_| panic!("bad value {line}")),
                }
            })
            .collect();
        Scrape(samples)
    }

    /// Sum of `name` over every series whose labels include all of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.series(name, filter).map(|s| s.value).sum()
    }

    /// Every series of `name` matching `filter`.
    pub fn series<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// Number of distinct series in the exposition.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').to_string(), value));
        rest = &after[end..];
    }
    out
}

impl Scrape {
    /// The funnel figures of `site` in this scrape (summed over channels and devices).
    pub fn figures(&self, site: &str) -> Figures {
        let count = |name: &str, filter: &[(&str, &str)]| {
            let mut f = vec![("site", site)];
            f.extend_from_slice(filter);
            self.sum(name, &f) as u64
        };
        let money = |name: &str| -> Money {
            let mut m = Money::new();
            for s in self.series(name, &[("site", site)]) {
                let currency = s.labels.iter().find(|(k, _)| k == "currency");
                let amount = micros(s.value);
                if let (Some((_, c)), true) = (currency, amount != 0) {
                    *m.entry(c.clone()).or_default() += amount;
                }
            }
            m
        };
        let mut f = Figures::default();
        for (i, stage) in STAGES.iter().enumerate() {
            f.reached[i] = count("touchstream_funnel_sessions_total", &[("stage", stage)]);
            if i < 4 {
                f.dropoffs[i] = count("touchstream_funnel_dropoffs_total", &[("stage", stage)]);
            }
        }
        f.carts_abandoned = count("touchstream_carts_abandoned_total", &[]);
        f.carts_abandoned_value = money("touchstream_carts_abandoned_value_total");
        f.orders = count("touchstream_orders_total", &[]);
        f.revenue = money("touchstream_revenue_total");
        f.duplicates = count(
            "touchstream_events_filtered_total",
            &[("reason", "duplicate")],
        );
        f
    }

    /// The samples of several scrapes together (collectors and engines of one deployment).
    /// A Kafka engine's series labelled `partition` are the partition's figures whoever owns
    /// it, so the same series scraped from two engines (a partition that moved) is taken
    /// once, at its largest value: what `max by (partition)` does in the recording rules.
    pub fn combine(scrapes: impl IntoIterator<Item = Scrape>) -> Scrape {
        let mut out: Vec<Sample> = Vec::new();
        let mut at = std::collections::HashMap::new();
        for sample in scrapes.into_iter().flat_map(|s| s.0) {
            if !sample.labels.iter().any(|(k, _)| k == "partition") {
                out.push(sample);
                continue;
            }
            let mut key = sample.labels.clone();
            key.sort();
            match at.entry((sample.name.clone(), key)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let kept: &mut Sample = &mut out[*e.get()];
                    kept.value = kept.value.max(sample.value);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(out.len());
                    out.push(sample);
                }
            }
        }
        Scrape(out)
    }
}
