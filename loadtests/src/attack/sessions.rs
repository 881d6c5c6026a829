//! session-flood-new (issue 13, item 6): real shoppers, each from a loopback address of their
//! own, put something in their carts; then one address (or a few) opens many times
//! `engine.max_open_sessions` new sessions as fast as the server answers. No real cart may be
//! closed early (abandoned, or evicted), the store stays within its bound, and afterwards the
//! real shoppers buy in the sessions they opened.

use super::{Bound, Check, Context};
use crate::probe::now_ms;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Real shoppers with a cart, from 127.0.0.10 on.
    #[arg(long, default_value_t = 20)]
    shoppers: u8,
    /// The server's engine.max_open_sessions.
    #[arg(long, default_value_t = 2_000_000)]
    max_open_sessions: u64,
    /// New sessions the flood opens, as a multiple of --max-open-sessions.
    #[arg(long, default_value_t = 10)]
    times: u64,
    /// Addresses the flood comes from (127.0.2.1 on); 1: one address (127.0.0.1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=254))]
    addresses: u8,
    /// Events in each new session (page views): 1 is what eviction forgets first.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=500))]
    depth: u64,
    /// New sessions per flood request.
    #[arg(long, default_value_t = 500)]
    flood_batch: u64,
}

fn client(from: IpAddr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(Some(from))
        .build()?)
}

fn shopper_address(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i))
}

/// A real shopper's events: `kinds` in its session, the cart worth 10 USD.
fn shopper(site: &str, session: &str, first: u32, kinds: &[&str]) -> Value {
    let events: Vec<Value> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let mut e = json!({"id": format!("{}", first as usize + i), "type": kind,
                               "ts": now_ms(), "session": session});
            if *kind == "add_to_cart" {
                e["props"] = json!({"value": 10.0, "currency": "USD"});
            }
            if *kind == "purchase" {
                e["props"] =
                    json!({"value": 10.0, "currency": "USD", "order_id": format!("o-{session}")});
            }
            e
        })
        .collect();
    json!({"site": site, "events": events})
}

/// One flooding address.
struct Job {
    url: String,
    origin: String,
    site: String,
    prefix: String,
    from: IpAddr,
    /// New sessions to open.
    sessions: u64,
    /// Events each (one: what eviction forgets first).
    depth: u64,
    /// Events per request.
    batch: u64,
}

/// One address's share of the flood: `sessions` new sessions in batches; requests answered
/// 200 and otherwise.
async fn flood(job: Job) -> anyhow::Result<(u64, u64)> {
    let client = client(job.from)?;
    let (mut ok, mut other) = (0, 0);
    let per_request = (job.batch / job.depth).max(1);
    let mut n = 0;
    while n < job.sessions {
        let ts = now_ms();
        let mut body = format!(r#"{{"site":"{}","events":["#, job.site);
        for i in 0..per_request.min(job.sessions - n) {
            for e in 0..job.depth {
                if i + e > 0 {
                    body.push(',');
                }
                let _ = write!(
                    body,
                    r#"{{"id":"{e}","type":"page_view","ts":{ts},"session":"{}-{}"}}"#,
                    job.prefix,
                    n + i
                );
            }
        }
        n += per_request;
        body.push_str("]}");
        let status = client
            .post(&job.url)
            .header("content-type", "application/json")
            .header("origin", &job.origin)
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 200 { ok += 1 } else { other += 1 }
    }
    Ok((ok, other))
}

pub async fn run(ctx: &Context, a: Args) -> anyhow::Result<Vec<Bound>> {
    let site = ctx.site.as_str();
    let before = ctx.scrape().await?;
    for i in 0..a.shoppers {
        let session = format!("{}-real-{i}", ctx.run_id);
        let (status, answer) = ctx
            .post(
                &client(shopper_address(i))?,
                &shopper(site, &session, 0, &["page_view", "add_to_cart"]),
            )
            .await;
        anyhow::ensure!(status == 200, "real shopper {i}: {status} {answer}");
    }
    ctx.settle().await?;
    println!(
        "{} real shoppers, each from an address of their own (127.0.0.10 on), hold a cart",
        a.shoppers
    );

    let total = a.times * a.max_open_sessions;
    let per = total.div_ceil(u64::from(a.addresses));
    let started = Instant::now();
    let floods: Vec<_> = (0..a.addresses)
        .map(|k| {
            let from = if a.addresses <= 1 {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1 + k))
            };
            tokio::spawn(flood(Job {
                url: ctx.events_url(),
                origin: ctx.origin.clone(),
                site: site.to_string(),
                prefix: format!("{}-new-{k}", ctx.run_id),
                from,
                sessions: per,
                depth: a.depth,
                batch: a.flood_batch,
            }))
        })
        .collect();
    let (mut ok, mut other) = (0, 0);
    for f in floods {
        let (o, x) = f.await??;
        ok += o;
        other += x;
    }
    let seconds = started.elapsed().as_secs_f64();
    ctx.settle().await?;
    let mid = ctx.scrape().await?;
    let delta = |s: &crate::scrape::Scrape, name: &str, filter: &[(&str, &str)]| {
        s.sum(name, filter) - before.sum(name, filter)
    };
    let refused = delta(
        &mid,
        "touchstream_events_filtered_total",
        &[("site", site), ("reason", "session_rate")],
    );
    let evicted = delta(&mid, "touchstream_engine_sessions_evicted_total", &[]);
    let carts_evicted = delta(&mid, "touchstream_engine_carts_evicted_total", &[]);
    let abandoned = delta(&mid, "touchstream_carts_abandoned_total", &[("site", site)]);
    let dropoffs = delta(&mid, "touchstream_funnel_dropoffs_total", &[("site", site)]);
    let carts_open = mid.sum("touchstream_carts_open", &[("site", site)]);
    let open = mid.sum("touchstream_engine_open_sessions", &[]);
    println!(
        "flood: {} new sessions from {} address(es) in {seconds:.1} s ({:.0} sessions/s), {ok} requests answered 200, {other} otherwise",
        a.addresses as u64 * per,
        a.addresses,
        (a.addresses as u64 * per) as f64 / seconds
    );
    println!(
        "after it: {refused} events filtered as session_rate (new sessions refused), {evicted} sessions evicted ({carts_evicted} of them with a cart), \
         {open} open (store of {}), carts open {carts_open}, carts abandoned {abandoned}, drop-offs {dropoffs}",
        a.max_open_sessions
    );

    // The real shoppers buy, in the sessions they opened before the flood.
    for i in 0..a.shoppers {
        let session = format!("{}-real-{i}", ctx.run_id);
        let (status, answer) = ctx
            .post(
                &client(shopper_address(i))?,
                &shopper(site, &session, 2, &["begin_checkout", "purchase"]),
            )
            .await;
        anyhow::ensure!(status == 200, "real shopper {i}: {status} {answer}");
    }
    ctx.settle().await?;
    let end = ctx.scrape().await?;
    let orders = delta(&end, "touchstream_orders_total", &[("site", site)]);
    // A shopper whose session was lost would open a new one with the purchase, and reach
    // the cart stage a second time.
    let carts_reached = delta(
        &end,
        "touchstream_funnel_sessions_total",
        &[("site", site), ("stage", "add_to_cart")],
    );
    println!(
        "the real shoppers then bought: {orders} orders; sessions that reached the cart: {carts_reached}"
    );
    let real = f64::from(a.shoppers);
    Ok(vec![
        Bound::new(
            "session-flood-new",
            abandoned,
            Check::Exactly,
            0.0,
            "carts",
            "real carts counted abandoned during the flood",
        ),
        Bound::new(
            "session-flood-new/evicted-carts",
            carts_evicted,
            Check::Exactly,
            0.0,
            "carts",
            "carts evicted from the store",
        ),
        Bound::new(
            "session-flood-new/carts-open",
            carts_open,
            Check::Exactly,
            real,
            "carts",
            "real carts still open after the flood",
        ),
        Bound::new(
            "session-flood-new/dropoffs",
            dropoffs,
            Check::Exactly,
            0.0,
            "sessions",
            "drop-offs counted during the flood",
        ),
        Bound::new(
            "session-flood-new/store",
            open,
            Check::AtMost,
            a.max_open_sessions as f64,
            "sessions",
            "sessions in the store (engine.max_open_sessions)",
        ),
        Bound::new(
            "session-flood-new/same-sessions",
            carts_reached,
            Check::Exactly,
            real,
            "sessions",
            "sessions that reached the cart once the real shoppers bought: their own, not new ones",
        ),
    ])
}
