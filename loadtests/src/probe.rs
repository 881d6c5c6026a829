//! Reading `/metrics`, and freshness: the time from a batch's 2xx to its effect on `/metrics`.
//!
//! The probe sends, once per interval, a one-event session from the one channel and device the
//! simulated traffic never uses together (affiliate, tablet), then scrapes until the visit
//! counter of that pair has grown by one. Probe sessions are part of the ground truth.

use crate::scrape::Scrape;
use crate::send::{Stats, Target, send};
use crate::shopper::TABLET;
use crate::truth::{Event, Figures};
use hdrhistogram::Histogram;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// Scrapes every `/metrics` URL and combines them (collectors and engines of one deployment).
pub async fn scrape(client: &reqwest::Client, urls: &[String]) -> anyhow::Result<Scrape> {
    let mut scrapes = Vec::new();
    for url in urls {
        let res = client.get(url).send().await?;
        anyhow::ensure!(res.status().is_success(), "{url} answered {}", res.status());
        scrapes.push(Scrape::parse(&res.text().await?));
    }
    Ok(Scrape::combine(scrapes))
}

fn probe_visits(s: &Scrape, site: &str) -> f64 {
    s.sum(
        "touchstream_funnel_sessions_total",
        &[
            ("site", site),
            ("stage", "visit"),
            ("channel", "affiliate"),
            ("device", "tablet"),
        ],
    )
}

/// What the probe measured and sent.
pub struct Freshness {
    /// Microseconds from a probe's 2xx to the scrape that first showed it.
    pub micros: Histogram<u64>,
    /// Probes that never showed within the time limit.
    pub missed: u64,
    /// The probe sessions, for the ground truth.
    pub truth: Figures,
    pub stats: Stats,
}

/// Probes every `interval` until `stop` turns true; waits at most `limit` for each.
pub async fn run(
    client: reqwest::Client,
    target: Target,
    metrics: Vec<String>,
    run_id: String,
    interval: Duration,
    limit: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Freshness> {
    let mut out = Freshness {
        micros: Histogram::new_with_bounds(1, 600_000_000, 3).unwrap(),
        missed: 0,
        truth: Figures::default(),
        stats: Stats::default(),
    };
    let site = target.site.clone();
    let mut seen = probe_visits(&scrape(&client, &metrics).await?, &site);
    let mut n = 0u64;
    while !*stop.borrow() {
        let next = Instant::now() + interval;
        let session = format!("{run_id}-probe-{n}");
        n += 1;
        let ts = now_ms();
        let wire = json!({"id": format!("{session}-0"), "type": "page_view", "ts": ts,
                          "session": session, "utm": {"source": "partner", "medium": "affiliate"}});
        let sent = send(
            &client,
            &target,
            TABLET,
            &[wire],
            Instant::now(),
            &mut out.stats,
        )
        .await;
        if sent.is_err() {
            continue;
        }
        let acknowledged = Instant::now();
        let event = Event {
            session,
            id: "0".into(),
            kind: "page_view".into(),
            ts,
            value: None,
            currency: None,
            order_id: None,
        };
        out.truth.add_session(&[&event]);
        let target_count = seen + 1.0;
        loop {
            let now = probe_visits(&scrape(&client, &metrics).await?, &site);
            if now >= target_count {
                out.micros
                    .saturating_record(acknowledged.elapsed().as_micros().max(1) as u64);
                seen = now;
                break;
            }
            if acknowledged.elapsed() > limit {
                out.missed += 1;
                seen = target_count;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => {}
        }
    }
    Ok(out)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
