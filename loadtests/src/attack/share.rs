//! connection-share (issue 13, item 2): one address opens connections until refused; it must
//! hold no more than its share of the listener (half of it, or `max_client_connections` if
//! more). A second address then holds no more than `max_client_connections`, the listener
//! being over half full, and a third must still be served.

use super::raw::{connect_from, served};
use super::{Bound, Check, Context};
use std::net::IpAddr;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct ShareArgs {
    /// The server's limits.max_connections.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// The server's limits.max_client_connections.
    #[arg(long, default_value_t = 256)]
    max_client_connections: usize,
    /// The address that takes all it can.
    #[arg(long, default_value = "127.0.0.1")]
    from: IpAddr,
    /// A second address that takes all it can after the first.
    #[arg(long, default_value = "127.0.0.4")]
    second: IpAddr,
    /// Another address, which must still get in.
    #[arg(long, default_value = "127.0.0.2")]
    other: IpAddr,
    /// Connections the other address opens.
    #[arg(long, default_value_t = 5)]
    others: usize,
}

/// Connections one address can hold alone: until the listener is over half full, then its
/// share (`max_client_connections`), never more than the listener.
pub fn share_limit(max_connections: usize, max_client_connections: usize) -> usize {
    max_connections
        .div_ceil(2)
        .max(max_client_connections)
        .min(max_connections)
}

/// Opens connections from `from`, each served a request and kept open, until the listener
/// refuses 20 in a row or `most` are held; the connections held and the refusals.
async fn take_all(ctx: &Context, from: IpAddr, most: usize) -> (Vec<TcpStream>, usize) {
    let mut held = Vec::new();
    let (mut refused, mut in_a_row) = (0, 0);
    while held.len() < most && in_a_row < 20 {
        let mut s = connect_from(from, ctx.public).await.ok();
        let ok = match s.as_mut() {
            Some(s) => served(s).await,
            None => false,
        };
        match s {
            Some(s) if ok => {
                held.push(s);
                in_a_row = 0;
            }
            _ => {
                refused += 1;
                in_a_row += 1;
            }
        }
    }
    (held, refused)
}

pub async fn share(ctx: &Context, a: ShareArgs) -> anyhow::Result<Vec<Bound>> {
    let refused =
        |s: &crate::scrape::Scrape| s.sum("touchstream_http_connections_refused_total", &[]);
    let refused_before = refused(&ctx.scrape().await?);
    let started = Instant::now();
    let (first, first_refused) = take_all(ctx, a.from, a.max_connections).await;
    println!(
        "{} held {} connections, each served a request and kept open, then was refused {first_refused} times in a row ({:.2} s)",
        a.from,
        first.len(),
        started.elapsed().as_secs_f64()
    );
    // The listener is now over half full: a second address gets its share, no more.
    let (second, second_refused) = take_all(ctx, a.second, a.max_connections).await;
    println!(
        "then {} held {}, and was refused {second_refused} times in a row",
        a.second,
        second.len()
    );
    let (others, _) = take_all(ctx, a.other, a.others).await;
    let s = ctx.scrape().await?;
    println!(
        "{} was served on {} of {} connections meanwhile; the server counted {} connections refused, holds {} open",
        a.other,
        others.len(),
        a.others,
        refused(&s) - refused_before,
        s.sum("touchstream_http_connections_open", &[])
    );
    let limit = share_limit(a.max_connections, a.max_client_connections);
    Ok(vec![
        Bound::new(
            "connection-share",
            first.len() as f64,
            Check::AtMost,
            limit as f64,
            "connections",
            format!(
                "held by one address: max(half of max_connections {}, max_client_connections {})",
                a.max_connections, a.max_client_connections
            ),
        ),
        Bound::new(
            "connection-share/second-address",
            second.len() as f64,
            Check::AtMost,
            a.max_client_connections as f64,
            "connections",
            "held by a second address once the listener is over half full (max_client_connections)",
        ),
        Bound::new(
            "connection-share/other-address",
            others.len() as f64,
            Check::Exactly,
            a.others as f64,
            "connections",
            "served from a third address while the first two held all they could",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_may_fill_half_the_listener_or_its_share() {
        // tests/abuse.rs: 20 connections, a share of 3: half the listener.
        assert_eq!(share_limit(20, 3), 10);
        // An odd listener: the address is refused once more than half are held.
        assert_eq!(share_limit(21, 3), 11);
        assert_eq!(share_limit(400, 300), 300);
        // The defaults: 10,000 and 256.
        assert_eq!(share_limit(10_000, 256), 5_000);
        assert_eq!(share_limit(100, 500), 100);
    }
}
