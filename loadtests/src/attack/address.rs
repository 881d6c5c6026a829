//! forged-address (issue 13, item 5): with `limits.client_address_header` set, a client writes
//! a fresh address of its own into `X-Forwarded-For` on every request (its proxy appending the
//! real one on a line of its own), an IPv6 client changes address within its /64, and a client
//! that reaches the collector around the proxy forges the header. Each must get one bucket:
//! the requests that pass before 429 are the burst, and what refills while they are sent.

use super::{Bound, Check, Context};
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server's limits.client_requests_per_second.
    #[arg(long, default_value_t = 1.0)]
    client_rate: f64,
    /// The server's limits.client_burst_requests.
    #[arg(long, default_value_t = 20)]
    client_burst: u32,
    /// Requests each attack sends.
    #[arg(long, default_value_t = 60)]
    requests: u32,
    /// A trusted proxy's address (in limits.trusted_proxies).
    #[arg(long, default_value = "127.0.0.1")]
    proxy: IpAddr,
    /// An address outside limits.trusted_proxies, reaching the collector directly.
    #[arg(long, default_value = "127.0.0.3")]
    direct: IpAddr,
}

/// Requests one bucket lets through while `seconds` pass: its burst and what refills.
pub fn allowance(burst: u32, rate: f64, seconds: f64) -> f64 {
    f64::from(burst) + (rate * seconds).ceil()
}

/// A random IPv4 address.
fn random_v4() -> String {
    format!(
        "{}.{}.{}.{}",
        fastrand::u8(1..=223),
        fastrand::u8(..),
        fastrand::u8(..),
        fastrand::u8(1..=254)
    )
}

/// Sends `n` empty batches from `from`, each with the `X-Forwarded-For` lines `lines()` gives;
/// how many passed, how many got 429, and the seconds it took.
async fn attack(
    ctx: &Context,
    from: IpAddr,
    n: u32,
    lines: impl Fn() -> Vec<String>,
) -> anyhow::Result<(u32, u32, f64)> {
    let client = reqwest::Client::builder()
        .local_address(Some(from))
        .timeout(Duration::from_secs(10))
        .build()?;
    let body = format!(r#"{{"site":"{}","events":[]}}"#, ctx.site);
    let (mut passed, mut limited) = (0, 0);
    let started = Instant::now();
    for _ in 0..n {
        let mut r = client
            .post(ctx.events_url())
            .header("content-type", "application/json")
            .header("origin", &ctx.origin);
        for l in lines() {
            r = r.header("x-forwarded-for", l);
        }
        match r.body(body.clone()).send().await?.status().as_u16() {
            200 => passed += 1,
            429 => limited += 1,
            other => anyhow::bail!("unexpected answer {other}"),
        }
    }
    Ok((passed, limited, started.elapsed().as_secs_f64()))
}

/// An attack: its bound's name, where it comes from, what it does, its header lines.
type Vector = (
    &'static str,
    IpAddr,
    &'static str,
    Box<dyn Fn() -> Vec<String>>,
);

pub async fn run(ctx: &Context, a: Args) -> anyhow::Result<Vec<Bound>> {
    let vectors: [Vector; 3] = [
        (
            "forged-address",
            a.proxy,
            "a fresh forged X-Forwarded-For line each request, the proxy's line 203.0.113.9 after it",
            Box::new(|| vec![random_v4(), "203.0.113.9".into()]),
        ),
        (
            "forged-address/ipv6",
            a.proxy,
            "a fresh IPv6 address of 2001:db8:0:1::/64 each request, as the proxy's line",
            Box::new(|| {
                let r = || fastrand::u16(..);
                vec![format!(
                    "2001:db8:0:1:{:x}:{:x}:{:x}:{:x}",
                    r(),
                    r(),
                    r(),
                    r()
                )]
            }),
        ),
        (
            "forged-address/direct",
            a.direct,
            "around the proxy: a fresh forged X-Forwarded-For each request from an untrusted address",
            Box::new(|| vec![random_v4()]),
        ),
    ];
    let mut bounds = Vec::new();
    for (name, from, what, lines) in vectors {
        let (passed, limited, seconds) = attack(ctx, from, a.requests, lines).await?;
        let allowed = allowance(a.client_burst, a.client_rate, seconds);
        let buckets = f64::from(passed) / f64::from(a.client_burst);
        println!(
            "{name}: from {from}, {what}: {passed} passed, {limited} got 429 in {:.1} ms; \
             buckets minted {buckets:.2} (burst {}, {} a second)",
            seconds * 1000.0,
            a.client_burst,
            a.client_rate
        );
        bounds.push(Bound::new(
            name,
            f64::from(passed),
            Check::AtMost,
            allowed,
            "requests",
            format!(
                "passed before 429: one bucket (client_burst_requests {} + {} refilled)",
                a.client_burst,
                allowed - f64::from(a.client_burst)
            ),
        ));
    }
    // Another client behind the same proxy keeps its own bucket.
    let (passed, _, _) = attack(ctx, a.proxy, 1, || vec!["203.0.113.10".into()]).await?;
    println!("another client behind the proxy (203.0.113.10): {passed} of 1 passed");
    bounds.push(Bound::new(
        "forged-address/other-client",
        f64::from(passed),
        Check::Exactly,
        1.0,
        "requests",
        "passed for another client behind the same proxy",
    ));
    Ok(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_allows_its_burst_and_its_refill() {
        assert_eq!(allowance(20, 1.0, 0.3), 21.0);
        assert_eq!(allowance(20, 1.0, 0.0), 20.0);
        assert_eq!(allowance(3, 2.0, 1.5), 6.0);
    }
}
