//! The figures of a run, as text for people and as one JSON object for scripts.

use crate::send::Stats;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Server resources over the load phase.
#[derive(Debug, Clone, Default)]
pub struct ServerUse {
    pub cpu_seconds: f64,
    /// Highest resident memory seen (sampled every second), all processes together.
    pub max_rss: u64,
    /// Peak resident memory since the processes started (VmHWM), summed.
    pub peak_rss: u64,
    /// Resident memory samples: (seconds into the run, bytes).
    pub rss: Vec<(f64, u64)>,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Report {
    pub mode: String,
    pub seconds: f64,
    pub sessions: u64,
    pub stats: Stats,
    pub server: Option<ServerUse>,
    pub generator_cpu_seconds: f64,
    pub freshness: Option<Histogram<u64>>,
    pub freshness_missed: u64,
    /// None when not verified; otherwise every difference from the ground truth.
    pub differences: Option<Vec<String>>,
    /// Notes on how the verification was done (tolerances, causes).
    pub notes: Vec<String>,
    /// The ground truth: the figures every acknowledged event must add up to.
    pub truth: crate::truth::Figures,
    /// Every event sent and acknowledged, when the run kept a ledger.
    pub ledger: Option<crate::run::Ledger>,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn quantiles(h: &Histogram<u64>) -> Value {
    json!({
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "count": h.len(),
    })
}

impl Report {
    pub fn events_per_second(&self) -> f64 {
        self.stats.events_accepted as f64 / self.seconds
    }

    /// Whether `/metrics` was compared with the ground truth and matched it. A run that was
    /// not verified has not passed, whatever the reason: nothing was shown to be right.
    pub fn passed(&self) -> bool {
        self.differences.as_ref().is_some_and(Vec::is_empty)
    }

    /// The outcome of the verification in a few words, for people and scripts alike.
    pub fn verdict(&self) -> String {
        match &self.differences {
            None => "not verified".into(),
            Some(d) if d.is_empty() => "/metrics equals the ground truth".into(),
            Some(d) => format!("{} differences from the ground truth", d.len()),
        }
    }

    pub fn to_json(&self) -> Value {
        let s = &self.stats;
        let server = self.server.as_ref().map(|u| {
            json!({
                "cpu_seconds": u.cpu_seconds,
                "events_per_cpu_second": s.events_accepted as f64 / u.cpu_seconds.max(1e-9),
                "max_rss_bytes": u.max_rss,
                "peak_rss_bytes": u.peak_rss,
                "rss_samples": u.rss.iter().map(|(t, b)| json!([t, b])).collect::<Vec<_>>(),
            })
        });
        json!({
            "mode": self.mode,
            "seconds": self.seconds,
            "sessions": self.sessions,
            "requests": s.requests,
            "events_accepted": s.events_accepted,
            "batches_accepted": s.batches_accepted,
            "mean_batch_events": s.events_accepted as f64 / s.batches_accepted.max(1) as f64,
            "events_per_second": self.events_per_second(),
            "requests_per_second": s.requests as f64 / self.seconds,
            "latency_ms": quantiles(&s.latency),
            "statuses": s.statuses.iter().collect::<BTreeMap<_, _>>(),
            "retries": s.retries,
            "server": server,
            "generator_cpu_seconds": self.generator_cpu_seconds,
            "freshness_ms": self.freshness.as_ref().map(quantiles),
            "freshness_missed": self.freshness_missed,
            "verified": self.passed(),
            "figures": self.verdict(),
            "differences": self.differences,
            "notes": self.notes,
        })
    }

    pub fn to_text(&self) -> String {
        let s = &self.stats;
        let mut t = String::new();
        let l = &s.latency;
        let _ = writeln!(
            t,
            "{}: {:.1} s, {} sessions, {} events in {} batches (mean {:.1} events)",
            self.mode,
            self.seconds,
            self.sessions,
            s.events_accepted,
            s.batches_accepted,
            s.events_accepted as f64 / s.batches_accepted.max(1) as f64
        );
        let _ = writeln!(
            t,
            "throughput: {:.0} events/s, {:.0} requests/s",
            self.events_per_second(),
            s.requests as f64 / self.seconds
        );
        let _ = writeln!(
            t,
            "latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            ms(l.value_at_quantile(0.5)),
            ms(l.value_at_quantile(0.99)),
            ms(l.value_at_quantile(0.999)),
            ms(l.max())
        );
        let statuses: Vec<String> = s
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            t,
            "answers: {} ({} retries)",
            statuses.join(", "),
            s.retries
        );
        if let Some(u) = &self.server {
            let _ = writeln!(
                t,
                "server: {:.2} CPU s, {:.0} events per CPU second, max RSS {:.1} MiB (peak since start {:.1} MiB)",
                u.cpu_seconds,
                s.events_accepted as f64 / u.cpu_seconds.max(1e-9),
                u.max_rss as f64 / 1048576.0,
                u.peak_rss as f64 / 1048576.0
            );
        }
        let _ = writeln!(t, "generator: {:.2} CPU s", self.generator_cpu_seconds);
        if let Some(f) = &self.freshness {
            let _ = writeln!(
                t,
                "freshness (2xx to /metrics): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} probes{}",
                ms(f.value_at_quantile(0.5)),
                ms(f.value_at_quantile(0.99)),
                ms(f.max()),
                f.len(),
                if self.freshness_missed > 0 {
                    format!(", {} never seen", self.freshness_missed)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(t, "figures: {}", self.verdict());
        for line in self.differences.iter().flatten() {
            let _ = writeln!(t, "  {line}");
        }
        for note in &self.notes {
            let _ = writeln!(t, "note: {note}");
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(differences: Option<Vec<String>>) -> Report {
        Report {
            mode: "shoppers".into(),
            seconds: 1.0,
            sessions: 0,
            stats: Stats::default(),
            server: None,
            generator_cpu_seconds: 0.0,
            freshness: None,
            freshness_missed: 0,
            differences,
            notes: Vec::new(),
            truth: crate::truth::Figures::default(),
            ledger: None,
        }
    }

    #[test]
    fn a_run_not_verified_does_not_pass_and_says_so() {
        let r = report(None);
        assert!(!r.passed());
        assert!(
            r.to_text().contains("figures: not verified\n"),
            "{}",
            r.to_text()
        );
        let json = r.to_json();
        assert_eq!(json["verified"], false);
        assert_eq!(json["figures"], "not verified");
    }

    #[test]
    fn only_a_verification_without_differences_passes() {
        let exact = report(Some(Vec::new()));
        assert!(exact.passed());
        assert_eq!(exact.to_json()["verified"], true);
        let differs = report(Some(vec!["orders: actual 2, expected 1".into()]));
        assert!(!differs.passed());
        assert_eq!(
            differs.to_json()["figures"],
            "1 differences from the ground truth"
        );
        assert!(
            differs
                .to_text()
                .contains("  orders: actual 2, expected 1\n")
        );
    }
}
