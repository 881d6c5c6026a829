//! idle-connections (issue 13, item 2): the listener is filled with sockets that never
//! complete a request: silent, one byte, the HTTP/2 cleartext preface, idle after one answered
//! request, and clients that pipeline thousands of requests and never read; what the wave
//! frees at once is filled again with silent sockets until the listener refuses. Each socket
//! must lose its slot within the header timeout (from its opening, or from its last answer),
//! and a legitimate client from another address must get through once they do.

use super::raw::{End, connect_from, established, post_head, read_answer, served, until_closed};
use super::{Bound, Check, Context};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct IdleArgs {
    /// Sockets to open: the listener's limits.max_connections, to fill it.
    #[arg(long, default_value_t = 400)]
    connections: usize,
    /// How many of them pipeline requests and never read.
    #[arg(long, default_value_t = 4)]
    pipeliners: usize,
    /// The server's limits.header_timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// Lateness allowed beyond the header timeout (timers, a busy machine).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    slack: Duration,
    /// Loopback addresses the sockets come from (127.0.1.1 on), so no per-address share
    /// refuses them: only the timeouts can free the listener.
    #[arg(long, default_value_t = 8)]
    addresses: u8,
    /// Where the legitimate client connects from.
    #[arg(long, default_value = "127.0.0.2")]
    legitimate: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Silent,
    OneByte,
    Http2Preface,
    IdleKeepAlive,
    Pipelining,
}

const KINDS: [(Kind, &str); 5] = [
    (Kind::Silent, "silent"),
    (Kind::OneByte, "one-byte"),
    (Kind::Http2Preface, "http2-preface"),
    (Kind::IdleKeepAlive, "idle-keep-alive"),
    (Kind::Pipelining, "pipelining"),
];

/// A socket set up as its kind; the moment its slot's clock starts (its opening, or its
/// answer for the keep-alive kind). None when it could not be set up (refused).
async fn open(kind: Kind, from: IpAddr, to: SocketAddr) -> Option<(TcpStream, Instant)> {
    let mut s = connect_from(from, to).await.ok()?;
    let start = Instant::now();
    let first: &[u8] = match kind {
        Kind::Silent | Kind::Pipelining => b"",
        Kind::OneByte => b"P",
        Kind::Http2Preface => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        Kind::IdleKeepAlive => {
            return served(&mut s).await.then(|| (s, Instant::now()));
        }
    };
    s.write_all(first).await.ok()?;
    Some((s, start))
}

/// Waits until the server closes `s`, at most `limit`; what it held, and the bytes the
/// server sent (none read for the pipelining kind).
async fn hold(kind: Kind, mut s: TcpStream, start: Instant, limit: Duration) -> (End, usize) {
    if kind != Kind::Pipelining {
        return until_closed(&mut s, start, limit).await;
    }
    // Ten thousand requests for the snippet, their answers never read: megabytes of answers
    // fill the socket buffers and the server's writes stall.
    let requests = "GET /t.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(10_000);
    let deadline = start + limit;
    let mut written = false;
    loop {
        if !established(&s) {
            return (End::Closed(start.elapsed()), 0);
        }
        if Instant::now() >= deadline {
            return (End::Open, 0);
        }
        if written {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        tokio::select! {
            w = s.write_all(requests.as_bytes()) => match w {
                Ok(()) => written = true,
                Err(_) => return (End::Closed(start.elapsed()), 0),
            },
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
}

/// Tries a small batch from `from` every 20 ms until one is answered 200, for at most `limit`:
/// how long it took and how many tries.
async fn legitimate(ctx: &Context, from: IpAddr, limit: Duration) -> (Option<Duration>, u32) {
    let start = Instant::now();
    let body = format!(r#"{{"site":"{}","events":[]}}"#, ctx.site);
    let request = format!("{}{body}", post_head(&ctx.origin, body.len()));
    let mut tries = 0;
    while start.elapsed() < limit {
        tries += 1;
        if let Ok(mut s) = connect_from(from, ctx.public).await
            && s.write_all(request.as_bytes()).await.is_ok()
            && let Some((head, _)) = read_answer(&mut s, Duration::from_secs(2)).await
            && head.status == 200
        {
            return (Some(start.elapsed()), tries);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (None, tries)
}

/// The sockets of the attack, each holding its slot on a task of its own.
struct Wave {
    tasks: Vec<(Kind, tokio::task::JoinHandle<(End, usize)>)>,
    wait: Duration,
    addresses: u8,
    next: usize,
}

impl Wave {
    async fn open(&mut self, ctx: &Context, kind: Kind) -> bool {
        let n = self.next % usize::from(self.addresses.max(1));
        self.next += 1;
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + n as u8));
        match open(kind, from, ctx.public).await {
            Some((s, start)) => {
                let wait = self.wait;
                self.tasks
                    .push((kind, tokio::spawn(hold(kind, s, start, wait))));
                true
            }
            None => false,
        }
    }
}

fn refused(s: &crate::scrape::Scrape) -> f64 {
    s.sum("touchstream_http_connections_refused_total", &[])
}

pub async fn idle(ctx: &Context, a: IdleArgs) -> anyhow::Result<Vec<Bound>> {
    let refused_before = refused(&ctx.scrape().await?);
    let mut wave = Wave {
        tasks: Vec::new(),
        wait: a.header_timeout * 3 + Duration::from_secs(5),
        addresses: a.addresses,
        next: 0,
    };
    let started = Instant::now();
    let mut not_opened = 0;
    for i in 0..a.connections {
        let kind = if i < a.pipeliners {
            Kind::Pipelining
        } else {
            KINDS[i % 4].0
        };
        not_opened += usize::from(!wave.open(ctx, kind).await);
    }
    // Fill what the wave freed at once with silent sockets, until the listener refuses one.
    let mut topped = 0;
    while refused(&ctx.scrape().await?) == refused_before && topped < a.connections {
        for _ in 0..10 {
            wave.open(ctx, Kind::Silent).await;
            topped += 1;
        }
    }
    println!(
        "{} sockets opened from {} addresses in {:.2} s, {topped} of them silent ones to fill the listener ({not_opened} could not be set up); limits.header_timeout {:?}",
        wave.tasks.len(),
        a.addresses,
        started.elapsed().as_secs_f64(),
        a.header_timeout
    );
    let (through, tries) = legitimate(ctx, a.legitimate, wave.wait).await;
    match through {
        Some(t) => println!(
            "a legitimate batch from {} got through after {:.0} ms ({tries} tries, every 20 ms)",
            a.legitimate,
            t.as_secs_f64() * 1000.0
        ),
        None => println!(
            "a legitimate batch from {} never got through ({tries} tries)",
            a.legitimate
        ),
    }
    let mut held: Vec<(Kind, End, usize)> = Vec::new();
    for (kind, t) in wave.tasks {
        let (end, bytes) = t.await?;
        held.push((kind, end, bytes));
    }
    let s = ctx.scrape().await?;
    println!(
        "connections refused at once meanwhile: {}; open now (the scrape's own included): {}",
        refused(&s) - refused_before,
        s.sum("touchstream_http_connections_open", &[])
    );
    let limit = (a.header_timeout + a.slack).as_secs_f64() * 1000.0;
    let mut bounds = Vec::new();
    for (kind, name) in KINDS {
        let mine: Vec<&(Kind, End, usize)> = held.iter().filter(|h| h.0 == kind).collect();
        // Closed within 100 ms: refused by the full listener, or an HTTP/2 preface turned away.
        let quick = |e: &End| matches!(e, End::Closed(d) if *d < Duration::from_millis(100));
        let at_once = mine.iter().filter(|h| quick(&h.1)).count();
        let mut times: Vec<f64> = mine
            .iter()
            .filter_map(|h| match h.1 {
                End::Closed(d) => Some(d.as_secs_f64() * 1000.0),
                End::Open => None,
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let open = mine.len() - times.len();
        let later = &times[at_once..];
        let at = |i: usize| later.get(i).copied().unwrap_or(f64::NAN);
        let max = if open > 0 {
            f64::INFINITY
        } else {
            times.last().copied().unwrap_or(f64::NAN)
        };
        let bytes: usize = mine.iter().map(|h| h.2).sum();
        let later_text = if later.is_empty() {
            "none later".to_string()
        } else {
            format!(
                "{} closed by the server after min {:.0} ms, median {:.0} ms, max {:.0} ms",
                later.len(),
                at(0),
                at(later.len() / 2),
                at(later.len() - 1)
            )
        };
        println!(
            "{name}: {} sockets; {at_once} closed at once (within 100 ms); {later_text}; {open} still open after {:?}; {bytes} bytes received",
            mine.len(),
            wave.wait,
        );
        let from = if kind == Kind::IdleKeepAlive {
            "its answer"
        } else {
            "its opening"
        };
        bounds.push(Bound::new(
            format!("idle-connections/{name}"),
            max,
            Check::AtMost,
            limit,
            "ms",
            format!("longest a {name} socket held its slot, from {from} (header timeout + slack)"),
        ));
    }
    bounds.push(Bound::new(
        "idle-connections/legitimate",
        through.map_or(f64::INFINITY, |t| t.as_secs_f64() * 1000.0),
        Check::AtMost,
        limit,
        "ms",
        "until a legitimate batch from another address got through the filled listener",
    ));
    Ok(bounds)
}
