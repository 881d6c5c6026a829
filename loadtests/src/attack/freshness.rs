//! The freshness probe of session-flood: once every interval, a one-event session on a site of
//! its own, timed from its POST until its visit shows on /metrics.

use super::{Context, histogram};
use crate::probe::now_ms;
use hdrhistogram::Histogram;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// What the probe measured: from its POST to its event on /metrics, and the POST alone.
pub struct Probe {
    pub fresh: Histogram<u64>,
    pub post: Histogram<u64>,
    pub missed: u64,
    pub refused: u64,
}

fn visits(s: &crate::scrape::Scrape, site: &str) -> f64 {
    s.sum(
        "touchstream_funnel_sessions_total",
        &[("site", site), ("stage", "visit")],
    )
}

pub async fn probe(
    ctx: &Context,
    site: &str,
    every: Duration,
    until: Instant,
) -> anyhow::Result<Probe> {
    let client = crate::send::client(1);
    let mut p = Probe {
        fresh: histogram(),
        post: histogram(),
        missed: 0,
        refused: 0,
    };
    let mut n = 0;
    while Instant::now() < until {
        let next = Instant::now() + every;
        let before = visits(&ctx.scrape().await?, site);
        let body = json!({"site": site, "events": [{"id": "p", "type": "page_view",
            "ts": now_ms(), "session": format!("{}-probe-{n}", ctx.run_id)}]});
        n += 1;
        let sent = Instant::now();
        let (status, _) = ctx.post(&client, &body).await;
        p.post
            .saturating_record(sent.elapsed().as_micros().max(1) as u64);
        if status != 200 {
            p.refused += 1;
            continue;
        }
        loop {
            if visits(&ctx.scrape().await?, site) > before {
                p.fresh
                    .saturating_record(sent.elapsed().as_micros().max(1) as u64);
                break;
            }
            if sent.elapsed() > Duration::from_secs(10) {
                p.missed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep_until(next).await;
    }
    Ok(p)
}
