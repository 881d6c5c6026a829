//! session-flood (issue 13, item 1): connections post purchases into ONE session as fast as the
//! server answers (distinct event ids and order ids, items), while simulated shoppers walk
//! their journeys on `--site` at a paced rate and a probe sends one-event sessions to a site
//! of its own. Measured: the flood's rate, the latency of every other request during the
//! flood, how soon a probe's event shows on `/metrics` (from its POST), the events filtered as
//! `session_limit`, the server's peak memory, and whether the shoppers' figures stay exact.

use super::freshness::probe;
use super::{Bound, Check, Context, mib, quantiles};
use crate::probe::now_ms;
use crate::run::{Options, Workload, execute};
use crate::send::Target;
use crate::shopper::Mix;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long the shoppers and the probe run under the flood (the flood starts 1 s earlier).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Connections flooding the one session.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Purchases per flood request.
    #[arg(long, default_value_t = 500)]
    flood_batch: usize,
    /// Items per purchase.
    #[arg(long, default_value_t = 10)]
    items: usize,
    /// The site the flooded session belongs to.
    #[arg(long, default_value = "flood")]
    flood_site: String,
    /// The probe's site: one one-event session per probe, counted alone.
    #[arg(long, default_value = "probe")]
    probe_site: String,
    /// How often the probe sends.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    probe_every: Duration,
    /// The shoppers' events per second on --site, paced (open loop).
    #[arg(long, default_value_t = 2000.0)]
    shopper_rate: f64,
    /// The server's engine.max_session_events.
    #[arg(long, default_value_t = 5000)]
    max_session_events: u64,
    /// Most growth of the server's peak resident memory over the attack, in MiB.
    #[arg(long, default_value_t = 100.0)]
    memory_limit: f64,
    /// Longest time for a probe's event to show on /metrics, from its POST.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    freshness_limit: Duration,
    /// Goal for the p99 latency of the other requests during the flood.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    p99_goal: Duration,
}

/// What the flood sent.
#[derive(Debug, Default)]
struct Flood {
    requests: u64,
    events_accepted: u64,
    statuses: BTreeMap<u16, u64>,
}

/// A body of `job.batch` purchases into the session, numbered from `*n` on.
fn flood_body(job: &Job, n: &mut u64, items: &str) -> String {
    let (site, session, worker, batch) = (&job.site, &job.session, job.worker, job.batch);
    let ts = now_ms();
    let mut body = String::with_capacity(batch * (160 + items.len()));
    let _ = write!(body, r#"{{"site":"{site}","events":["#);
    for i in 0..batch {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"id":"f{worker}-{n}","type":"purchase","ts":{ts},"session":"{session}","props":{{"order_id":"o{worker}-{n}","currency":"USD","items":[{items}]}}}}"#
        );
        *n += 1;
    }
    body.push_str("]}");
    body
}

/// One flooding connection's orders.
#[derive(Clone)]
struct Job {
    url: String,
    origin: String,
    site: String,
    session: String,
    worker: usize,
    batch: usize,
    items: usize,
}

async fn flood(job: Job, stop: Arc<AtomicBool>) -> Flood {
    let client = crate::send::client(1);
    let items: Vec<String> = (0..job.items)
        .map(|i| format!(r#"{{"price":1.5,"quantity":{}}}"#, 1 + i % 3))
        .collect();
    let items = items.join(",");
    let mut out = Flood::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let body = flood_body(&job, &mut n, &items);
        let answer = client
            .post(&job.url)
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", &job.origin)
            .body(body)
            .send()
            .await;
        let status = match answer {
            Ok(res) => {
                let s = res.status().as_u16();
                let _ = res.bytes().await;
                s
            }
            Err(_) => 0,
        };
        out.requests += 1;
        *out.statuses.entry(status).or_default() += 1;
        if status == 200 {
            out.events_accepted += job.batch as u64;
        }
    }
    out
}

pub async fn run(ctx: &Context, a: Args) -> anyhow::Result<Vec<Bound>> {
    let server = ctx.server()?.clone();
    let before = ctx.scrape().await?;
    server.reset_peak_rss()?;
    let rss_before = server.rss()? as f64;
    let cpu_before = server.cpu_seconds()?;
    let session = format!("{}-flood", ctx.run_id);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..a.connections)
        .map(|w| {
            let job = Job {
                url: ctx.events_url(),
                origin: ctx.origin.clone(),
                site: a.flood_site.clone(),
                session: session.clone(),
                worker: w,
                batch: a.flood_batch,
                items: a.items,
            };
            // A thread and runtime of its own, so that building the flood's bodies does not
            // delay the shoppers' tasks, whose latency is measured.
            let stop = stop.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(flood(job, stop)))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "flooding session {session} of site {} from {} connections ({} purchases of {} items a request); shoppers on {} at {} events/s, a probe on {} every {:?}",
        a.flood_site,
        a.connections,
        a.flood_batch,
        a.items,
        ctx.site,
        a.shopper_rate,
        a.probe_site,
        a.probe_every
    );
    let options = Options {
        target: Target {
            events_url: ctx.events_url(),
            origin: ctx.origin.clone(),
            site: ctx.site.clone(),
            batch: ctx.batch,
            retry_backoff: ctx.retry_backoff,
        },
        metrics: ctx.metrics.clone(),
        concurrency: ctx.concurrency,
        rate: a.shopper_rate,
        server: None,
        session_timeout: ctx.session_timeout,
        settle: ctx.session_timeout + Duration::from_secs(30),
        verify: true,
        probe_interval: None,
        run_id: ctx.run_id.clone(),
        ledger: false,
    };
    let workload = Workload::Shoppers {
        mix: Mix::default(),
        duration: Some(a.duration),
        sessions: None,
        duplicates: 0.01,
        seed: 1,
    };
    let until = Instant::now() + a.duration;
    let (report, probed) = tokio::join!(
        execute(options, workload),
        probe(ctx, &a.probe_site, a.probe_every, until)
    );
    let (report, probed) = (report?, probed?);
    // The shoppers' figures were checked after their sessions closed, the flood going on.
    stop.store(true, Ordering::Relaxed);
    let mut sent = Flood::default();
    for w in workers {
        let f = tokio::task::spawn_blocking(move || w.join())
            .await?
            .map_err(|_| anyhow::anyhow!("a flood thread panicked"))??;
        sent.requests += f.requests;
        sent.events_accepted += f.events_accepted;
        for (k, v) in f.statuses {
            *sent.statuses.entry(k).or_default() += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    ctx.settle().await?;
    let peak = server.peak_rss()? as f64;
    let cpu = server.cpu_seconds()? - cpu_before;
    let after = ctx.scrape().await?;
    let delta =
        |name: &str, filter: &[(&str, &str)]| after.sum(name, filter) - before.sum(name, filter);
    let flood_site = a.flood_site.as_str();
    let limited = delta(
        "touchstream_events_filtered_total",
        &[("site", flood_site), ("reason", "session_limit")],
    );
    let orders = delta("touchstream_orders_total", &[("site", flood_site)]);
    // Filtered events do not keep a session open: once the flooded session is full, it closes
    // a session timeout after its last counted event, and the flood opens it again.
    let opened = delta(
        "touchstream_funnel_sessions_total",
        &[("site", flood_site), ("stage", "visit")],
    );

    println!(
        "flood: {} events accepted into one session in {} requests over {seconds:.1} s: {:.0} events/s, {:.0} requests/s; answers {:?}",
        sent.events_accepted,
        sent.requests,
        sent.events_accepted as f64 / seconds,
        sent.requests as f64 / seconds,
        sent.statuses
    );
    println!(
        "flooded session: opened {opened} times (it closes a session timeout, {:?}, after its last counted event: filtered ones do not keep it open), {orders} orders counted ({:.0} per opening), {limited} events filtered as session_limit (engine.max_session_events {})",
        ctx.session_timeout,
        orders / opened.max(1.0),
        a.max_session_events
    );
    let mut other = report.stats.latency.clone();
    other.add(&probed.post)?;
    println!(
        "shoppers: {} requests, {}; answers {:?}",
        report.stats.requests,
        quantiles(&report.stats.latency),
        report.stats.statuses
    );
    println!(
        "probe POSTs: {} ({} refused)",
        quantiles(&probed.post),
        probed.refused
    );
    println!("all other requests during the flood: {}", quantiles(&other));
    println!(
        "freshness (probe POST sent to its event on /metrics): {}{}",
        quantiles(&probed.fresh),
        if probed.missed > 0 {
            format!(", {} never seen", probed.missed)
        } else {
            String::new()
        }
    );
    println!(
        "server: {cpu:.1} CPU s, resident {:.1} MiB before, peak {:.1} MiB during the attack (+{:.1} MiB)",
        mib(rss_before),
        mib(peak),
        mib(peak - rss_before)
    );
    println!("shoppers' figures: {}", report.verdict());
    for d in report.differences.iter().flatten() {
        println!("  {d}");
    }

    let fresh_max = if probed.missed > 0 || probed.fresh.is_empty() {
        f64::INFINITY
    } else {
        probed.fresh.max() as f64 / 1000.0
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(vec![
        Bound::new(
            "session-flood/freshness",
            fresh_max,
            Check::AtMost,
            ms(a.freshness_limit),
            "ms",
            "slowest probe: another session's event visible on /metrics, from its POST",
        ),
        Bound::new(
            "session-flood/p99",
            other.value_at_quantile(0.99) as f64 / 1000.0,
            Check::AtMost,
            ms(a.p99_goal),
            "ms",
            "p99 latency of the shoppers' and the probe's requests during the flood (goal of issue 13)",
        ),
        Bound::new(
            "session-flood/memory",
            mib(peak - rss_before),
            Check::AtMost,
            a.memory_limit,
            "MiB",
            "growth of the server's peak resident memory over the attack",
        ),
        Bound::new(
            "session-flood/session-events",
            orders / opened.max(1.0),
            Check::AtMost,
            a.max_session_events as f64,
            "orders",
            "orders counted per opening of the flooded session (engine.max_session_events)",
        ),
        Bound::new(
            "session-flood/shoppers-exact",
            report
                .differences
                .as_ref()
                .map_or(f64::NAN, |d| d.len() as f64),
            Check::Exactly,
            0.0,
            "differences",
            "the shoppers' /metrics against their ground truth",
        ),
    ])
}
