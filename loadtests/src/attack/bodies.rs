//! chunked-bodies (issue 13, item 3): bodies sent at once in one-byte chunks must cost about
//! their size in memory, as the same bodies sent with a Content-Length do; and one address
//! trickling bodies into many connections gets 503 with `Retry-After` once it holds its share
//! of `limits.max_inflight_body_bytes` (a sixteenth, once half is held), while another
//! address's full body still passes.

use super::raw::{chunked_post, connect_from, post_head, read_answer};
use super::{Bound, Check, Context, mib};
use crate::probe::now_ms;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bodies sent at once.
    #[arg(long, default_value_t = 8)]
    bodies: usize,
    /// Size of each body, in bytes (under limits.max_body_bytes).
    #[arg(long, default_value_t = 500_000)]
    body_bytes: usize,
    /// Events in each body (at most limits.max_batch_events).
    #[arg(long, default_value_t = 500)]
    events: usize,
    /// The server's limits.max_inflight_body_bytes.
    #[arg(long, default_value_t = 67_108_864)]
    inflight_budget: usize,
    /// Slow bodies one address opens at once for the burst (each declares --body-bytes and
    /// sends --trickle bytes, then waits).
    #[arg(long, default_value_t = 40)]
    burst: usize,
    /// Bytes of each slow body sent before it waits.
    #[arg(long, default_value_t = 200_000)]
    trickle: usize,
    /// Most growth of the server's peak memory per chunked body, as a multiple of its size.
    #[arg(long, default_value_t = 2.0)]
    ratio_limit: f64,
}

/// A batch of `events` page views in its own session, padded with spaces to `size` bytes.
fn body(site: &str, session: &str, events: usize, size: usize) -> Vec<u8> {
    let ts = now_ms();
    let per_event = size.saturating_sub(64) / events.max(1);
    let mut b = format!(r#"{{"site":"{site}","events":["#);
    for i in 0..events {
        let start = b.len();
        let _ = write!(
            b,
            r#"{{"id":"e{i}","type":"page_view","ts":{ts},"session":"{session}","url":"https://shop.example/p?q="#
        );
        let pad = per_event.saturating_sub(b.len() - start + 3);
        b.push_str(&"x".repeat(pad));
        b.push_str("\"}");
        if i + 1 < events {
            b.push(',');
        }
    }
    b.push_str("]}");
    while b.len() < size {
        b.push(' ');
    }
    b.into_bytes()
}

/// Sends `wire` on a new connection to `to` and reads the answer's status (0: none).
async fn send(to: SocketAddr, wire: Vec<u8>) -> u16 {
    let Ok(mut s) = connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), to).await else {
        return 0;
    };
    if s.write_all(&wire).await.is_err() {
        return 0;
    }
    read_answer(&mut s, Duration::from_secs(60))
        .await
        .map_or(0, |(h, _)| h.status)
}

/// What sending several bodies at once cost the server.
struct Cost {
    statuses: Vec<u16>,
    /// Peak resident memory over what the server held before, in bytes.
    growth: f64,
    seconds: f64,
    cpu_seconds: f64,
}

impl Cost {
    /// Prints what `bodies` bodies of `size` bytes sent `how` cost; the peak memory growth
    /// per body, as a multiple of its size.
    fn report(&self, bodies: usize, size: usize, how: &str) -> f64 {
        let per_body = self.growth / bodies as f64;
        let ratio = per_body / size as f64;
        println!(
            "{bodies} bodies of {size} bytes {how}, at once: answers {:?} in {:.2} s ({:.2} CPU s); peak memory +{:.1} MiB, {:.2} MiB ({ratio:.2} times the size) per body",
            self.statuses,
            self.seconds,
            self.cpu_seconds,
            mib(self.growth),
            mib(per_body),
        );
        ratio
    }
}

/// Sends one wire per body at once, each on its own connection.
async fn at_once(ctx: &Context, wires: Vec<Vec<u8>>) -> anyhow::Result<Cost> {
    let server = ctx.server()?;
    ctx.settle().await?;
    server.reset_peak_rss()?;
    let rss = server.rss()? as f64;
    let cpu = server.cpu_seconds()?;
    let started = Instant::now();
    let sends: Vec<_> = wires
        .into_iter()
        .map(|w| tokio::spawn(send(ctx.public, w)))
        .collect();
    let mut statuses = Vec::new();
    for s in sends {
        statuses.push(s.await?);
    }
    Ok(Cost {
        statuses,
        seconds: started.elapsed().as_secs_f64(),
        growth: server.peak_rss()? as f64 - rss,
        cpu_seconds: server.cpu_seconds()? - cpu,
    })
}

pub async fn run(ctx: &Context, a: Args) -> anyhow::Result<Vec<Bound>> {
    let bodies: Vec<Vec<u8>> = (0..a.bodies)
        .map(|k| {
            body(
                &ctx.site,
                &format!("{}-body-{k}", ctx.run_id),
                a.events,
                a.body_bytes,
            )
        })
        .collect();
    let plain = bodies
        .iter()
        .map(|b| [post_head(&ctx.origin, b.len()).as_bytes(), b].concat())
        .collect();
    let c = at_once(ctx, plain).await?;
    c.report(a.bodies, a.body_bytes, "with Content-Length");
    let chunked: Vec<Vec<u8>> = bodies
        .iter()
        .map(|b| chunked_post(&ctx.origin, b))
        .collect();
    let wire = chunked[0].len();
    let c = at_once(ctx, chunked).await?;
    let ratio = c.report(
        a.bodies,
        a.body_bytes,
        &format!("in one-byte chunks ({wire} bytes on the wire each)"),
    );
    let all_taken = c.statuses.iter().all(|s| *s == 200);

    // The burst: one address's slow bodies, each declaring its length, sending part of it and
    // waiting; meanwhile another address sends a whole body.
    ctx.settle().await?;
    let mut held = Vec::new();
    let (mut refused, mut with_retry_after, mut other) = (0, 0, Vec::new());
    let partial = vec![b' '; a.trickle.min(a.body_bytes - 1)];
    for _ in 0..a.burst {
        let mut s = connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), ctx.public).await?;
        s.write_all(post_head(&ctx.origin, a.body_bytes).as_bytes())
            .await?;
        s.write_all(&partial).await?;
        match read_answer(&mut s, Duration::from_millis(300)).await {
            None => held.push(s),
            Some((h, _)) if h.status == 503 => {
                refused += 1;
                with_retry_after += usize::from(h.header("retry-after").is_some());
            }
            Some((h, _)) => other.push(h.status),
        }
    }
    let whole = body(
        &ctx.site,
        &format!("{}-other", ctx.run_id),
        a.events,
        a.body_bytes,
    );
    let mut s = connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), ctx.public).await?;
    s.write_all(&[post_head(&ctx.origin, whole.len()).as_bytes(), &whole].concat())
        .await?;
    let another = read_answer(&mut s, Duration::from_secs(10))
        .await
        .map_or(0, |(h, _)| h.status);
    println!(
        "one address, {} slow bodies of {} bytes sending {} each, against a budget of {} bytes (its share {}): {} held, {refused} answered 503 ({with_retry_after} with Retry-After), other answers {other:?}; another address's whole body meanwhile: {another}",
        a.burst,
        a.body_bytes,
        partial.len(),
        a.inflight_budget,
        a.inflight_budget / 16,
        held.len()
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = body(
        &ctx.site,
        &format!("{}-after", ctx.run_id),
        a.events,
        a.body_bytes,
    );
    let after = send(
        ctx.public,
        [post_head(&ctx.origin, again.len()).as_bytes(), &again].concat(),
    )
    .await;
    println!("once the slow bodies are gone, a full body is answered {after}");

    Ok(vec![
        Bound::new(
            "chunked-bodies",
            if all_taken { ratio } else { f64::NAN },
            Check::AtMost,
            a.ratio_limit,
            "x body size",
            "peak memory growth per body sent in one-byte chunks (NaN when not every body got 200)",
        ),
        Bound::new(
            "chunked-bodies/burst-503",
            with_retry_after as f64,
            Check::AtLeast,
            1.0,
            "answers",
            "503 with Retry-After for one address trickling bodies past its share of limits.max_inflight_body_bytes",
        ),
        Bound::new(
            "chunked-bodies/other-address",
            f64::from(another),
            Check::Exactly,
            200.0,
            "status",
            "a whole body from another address while the first holds all it may",
        ),
        Bound::new(
            "chunked-bodies/after-burst",
            after as f64,
            Check::Exactly,
            200.0,
            "status",
            "a full body once the burst is gone",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_their_size_and_parse() {
        let b = body("demo", "s", 500, 500_000);
        assert_eq!(b.len(), 500_000);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["events"].as_array().unwrap().len(), 500);
    }
}
