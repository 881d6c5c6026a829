//! Attacks on a running touchstream, one per bound of issue 13: each attacks the way a hostile
//! client would, at full speed, measures what the bound is about, and prints it next to the
//! configured or documented limit as `bound NAME: measured X (limit Y) ok|BROKEN`.
//!
//! `loadtests/attack.sh NAME` starts `touchstream serve` with a configuration suited to the
//! attack and passes the limits it configured; see `loadtests/README.md`.

mod address;
mod bodies;
mod flood;
mod freshness;
mod idle;
mod money;
mod pii;
pub mod raw;
mod sessions;
mod share;

use crate::probe::scrape;
use crate::procstat::Server;
use crate::scrape::Scrape;
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// The attacks, by the item of issue 13 they measure.
#[derive(Subcommand, Debug)]
pub enum Attack {
    /// Item 1: connections flood ONE session with purchases while shoppers and a freshness
    /// probe use other sessions.
    SessionFlood(flood::Args),
    /// Item 2: the listener filled with sockets that send nothing, one byte, the HTTP/2
    /// preface, or idle after one request, and clients that pipeline and never read.
    IdleConnections(idle::IdleArgs),
    /// Item 2: one address opens connections until refused; another must still get in.
    ConnectionShare(share::ShareArgs),
    /// Item 3: bodies in one-byte chunks, and a burst beyond the in-flight body budget.
    ChunkedBodies(bodies::Args),
    /// Item 4: purchases of the largest value, one after another.
    Money(money::Args),
    /// Item 5: forged X-Forwarded-For values and IPv6 addresses from one /64.
    ForgedAddress(address::Args),
    /// Item 6: one address opens many times the session store's size in new sessions while
    /// real shoppers hold carts.
    SessionFloodNew(sessions::Args),
    /// Item 7: personal data in every field and encoding; none may come back.
    Pii(pii::Args),
}

impl Attack {
    pub fn name(&self) -> &'static str {
        match self {
            Attack::SessionFlood(_) => "session-flood",
            Attack::IdleConnections(_) => "idle-connections",
            Attack::ConnectionShare(_) => "connection-share",
            Attack::ChunkedBodies(_) => "chunked-bodies",
            Attack::Money(_) => "money",
            Attack::ForgedAddress(_) => "forged-address",
            Attack::SessionFloodNew(_) => "session-flood-new",
            Attack::Pii(_) => "pii",
        }
    }
}

/// Runs `attack`; its details are printed as it goes, its bounds returned.
pub async fn run(ctx: &Context, attack: Attack) -> anyhow::Result<Vec<Bound>> {
    println!("attack {} on {}", attack.name(), ctx.url);
    match attack {
        Attack::SessionFlood(a) => flood::run(ctx, a).await,
        Attack::IdleConnections(a) => idle::idle(ctx, a).await,
        Attack::ConnectionShare(a) => share::share(ctx, a).await,
        Attack::ChunkedBodies(a) => bodies::run(ctx, a).await,
        Attack::Money(a) => money::run(ctx, a).await,
        Attack::ForgedAddress(a) => address::run(ctx, a).await,
        Attack::SessionFloodNew(a) => sessions::run(ctx, a).await,
        Attack::Pii(a) => pii::run(ctx, a).await,
    }
}

/// How a measured figure must compare with its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    AtMost,
    Exactly,
    AtLeast,
}

/// One measured bound.
#[derive(Debug, Clone)]
pub struct Bound {
    /// `attack` or `attack/aspect`.
    pub name: String,
    pub measured: f64,
    pub check: Check,
    pub limit: f64,
    /// Unit of both figures (`ms`, `MiB`, or a noun such as `connections`).
    pub unit: &'static str,
    /// What was measured, in a few words.
    pub what: String,
}

impl Bound {
    pub fn new(
        name: impl Into<String>,
        measured: f64,
        check: Check,
        limit: f64,
        unit: &'static str,
        what: impl Into<String>,
    ) -> Self {
        Bound {
            name: name.into(),
            measured,
            check,
            limit,
            unit,
            what: what.into(),
        }
    }

    /// Whether the measured figure keeps the bound (a figure that is not a number never does).
    pub fn ok(&self) -> bool {
        match self.check {
            Check::AtMost => self.measured <= self.limit,
            Check::Exactly => self.measured == self.limit,
            Check::AtLeast => self.measured >= self.limit,
        }
    }

    /// `bound NAME: measured X (limit Y) ok|BROKEN -- what`.
    pub fn line(&self) -> String {
        let check = match self.check {
            Check::AtMost => "at most",
            Check::Exactly => "exactly",
            Check::AtLeast => "at least",
        };
        format!(
            "bound {}: measured {} (limit {check} {}) {} -- {}",
            self.name,
            figure(self.measured, self.unit),
            figure(self.limit, self.unit),
            if self.ok() { "ok" } else { "BROKEN" },
            self.what
        )
    }
}

/// A figure with at most two decimals (none for whole numbers), and its unit.
pub fn figure(x: f64, unit: &str) -> String {
    let mut s = format!("{x:.2}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if unit.is_empty() {
        s
    } else {
        format!("{s} {unit}")
    }
}

/// Where and how to attack, from the common options.
pub struct Context {
    /// The collector's base URL.
    pub url: String,
    /// The collector's socket address, for raw connections.
    pub public: SocketAddr,
    pub metrics: Vec<String>,
    pub site: String,
    pub origin: String,
    pub server: Option<Server>,
    pub session_timeout: Duration,
    pub concurrency: usize,
    pub batch: usize,
    pub retry_backoff: Duration,
    /// Prefix of every session id, unique to the run.
    pub run_id: String,
    pub http: reqwest::Client,
}

impl Context {
    pub fn new(
        url: &str,
        metrics: Vec<String>,
        site: String,
        origin: String,
    ) -> anyhow::Result<Self> {
        let url = url.trim_end_matches('/').to_string();
        let public = raw::socket_address(&url)?;
        Ok(Context {
            url,
            public,
            metrics,
            site,
            origin,
            server: None,
            session_timeout: Duration::from_secs(1800),
            concurrency: 32,
            batch: 20,
            retry_backoff: Duration::from_secs(1),
            run_id: format!("atk{:x}", crate::probe::now_ms()),
            http: crate::send::client(8),
        })
    }

    pub fn events_url(&self) -> String {
        format!("{}/v1/events", self.url)
    }

    /// The server's processes; the attacks that measure memory need them.
    pub fn server(&self) -> anyhow::Result<&Server> {
        self.server
            .as_ref()
            .context("this attack measures the server's memory: give --server-pid")
    }

    pub async fn scrape(&self) -> anyhow::Result<Scrape> {
        scrape(&self.http, &self.metrics).await
    }

    /// POSTs a batch as the snippet would (from the site's origin); status and answer body,
    /// status 0 for a network error.
    pub async fn post(&self, client: &reqwest::Client, body: &Value) -> (u16, String) {
        let answer = client
            .post(self.events_url())
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", &self.origin)
            .body(body.to_string())
            .send()
            .await;
        match answer {
            Ok(res) => {
                let status = res.status().as_u16();
                (status, res.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new()),
        }
    }

    /// Waits until the engine has taken everything accepted: the transport queue is empty and
    /// the events applied stop moving.
    pub async fn settle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = -1.0;
        loop {
            let s = self.scrape().await?;
            let applied = s.sum("touchstream_engine_events_applied_total", &[]);
            if s.sum("touchstream_transport_queue_events", &[]) == 0.0 && applied == last {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the engine never settled");
            last = applied;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A histogram of microseconds, 1 µs to 10 minutes.
pub fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// `p50 X ms, p99 Y ms, max Z ms (N)` of a histogram of microseconds.
pub fn quantiles(h: &hdrhistogram::Histogram<u64>) -> String {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {}",
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0,
        h.len()
    )
}

/// Megabytes (MiB) of `bytes`.
pub fn mib(bytes: f64) -> f64 {
    bytes / 1_048_576.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_says_ok_only_when_the_figure_keeps_it() {
        let b = |measured, check| Bound::new("a/b", measured, check, 100.0, "ms", "w");
        assert!(b(100.0, Check::AtMost).ok());
        assert!(!b(100.5, Check::AtMost).ok());
        assert!(b(100.0, Check::Exactly).ok());
        assert!(!b(99.0, Check::Exactly).ok());
        assert!(b(101.0, Check::AtLeast).ok());
        assert!(!b(99.0, Check::AtLeast).ok());
        // A figure that could not be measured keeps no bound.
        for check in [Check::AtMost, Check::Exactly, Check::AtLeast] {
            assert!(!b(f64::NAN, check).ok());
        }
    }

    #[test]
    fn a_bound_prints_as_one_line() {
        let line = Bound::new("money", 30.0, Check::Exactly, 30.0, "steps", "exact").line();
        assert_eq!(
            line,
            "bound money: measured 30 steps (limit exactly 30 steps) ok -- exact"
        );
        let line = Bound::new("f/p99", 120.456, Check::AtMost, 100.0, "ms", "p99").line();
        assert_eq!(
            line,
            "bound f/p99: measured 120.46 ms (limit at most 100 ms) BROKEN -- p99"
        );
        assert_eq!(figure(1.5, ""), "1.5");
        assert_eq!(figure(0.004, "x"), "0 x");
    }
}
