//! Sending batches the way the tracking snippet does: one session's events per POST over a
//! kept-alive connection, from the shop's origin, with the browser's user agent, retried with
//! backoff on 429, 5xx and network errors (the event ids stay, so a retry is never counted
//! twice). Pacing is open-loop: a batch's latency runs from when it was due, so a server that
//! falls behind shows it (no coordinated omission).

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port/v1/events`.
    pub events_url: String,
    pub origin: String,
    pub site: String,
    /// Events per request at most.
    pub batch: usize,
    /// First retry delay; doubled each time up to a minute, with jitter, as the snippet does.
    pub retry_backoff: Duration,
}

/// Open-loop pacing at a fixed event rate shared by every worker; unlimited when `rate` is 0.
pub struct Pacer {
    start: Instant,
    rate: f64,
    reserved: Mutex<f64>,
}

impl Pacer {
    pub fn new(rate: f64) -> Self {
        Pacer {
            start: Instant::now(),
            rate,
            reserved: Mutex::new(0.0),
        }
    }

    /// When a batch of `events` is due (now, when unpaced).
    pub fn reserve(&self, events: usize) -> Instant {
        if self.rate <= 0.0 {
            return Instant::now();
        }
        let mut reserved = self.reserved.lock().unwrap();
        let due = self.start + Duration::from_secs_f64(*reserved / self.rate);
        *reserved += events as f64;
        due
    }
}

/// What one worker saw; merged at the end.
#[derive(Debug)]
pub struct Stats {
    /// Microseconds from a batch being due to its final answer.
    pub latency: Histogram<u64>,
    /// Answers by status (`"error"` for a connection failure).
    pub statuses: BTreeMap<String, u64>,
    pub requests: u64,
    /// Events in batches answered 2xx (re-sent batches included).
    pub events_accepted: u64,
    /// Batches answered 2xx (re-sent ones included).
    pub batches_accepted: u64,
    /// Events of crawler sessions answered 2xx (filtered by the collector).
    pub bot_events: u64,
    /// Retries after 429, 5xx or a network error.
    pub retries: u64,
    /// Events re-sent by those retries, once per retry, after a 5xx or a lost answer (not a 429,
    /// which takes nothing). Such a failed attempt may still have been taken in part (a 5xx over
    /// Kafka after some deliveries), so each can add a duplicate the generator cannot see: the
    /// most duplicates retries can explain.
    pub retried_events: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: Histogram::new_with_bounds(1, 120_000_000, 3).unwrap(),
            statuses: BTreeMap::new(),
            requests: 0,
            events_accepted: 0,
            batches_accepted: 0,
            bot_events: 0,
            retries: 0,
            retried_events: 0,
        }
    }
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        self.latency.add(&other.latency).unwrap();
        for (k, v) in &other.statuses {
            *self.statuses.entry(k.clone()).or_default() += v;
        }
        self.requests += other.requests;
        self.events_accepted += other.events_accepted;
        self.batches_accepted += other.batches_accepted;
        self.bot_events += other.bot_events;
        self.retries += other.retries;
        self.retried_events += other.retried_events;
    }

    /// Answers other than 2xx.
    pub fn failures(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(k, _)| !k.starts_with('2'))
            .map(|(_, v)| v)
            .sum()
    }
}

/// An HTTP client for `concurrency` kept-alive connections.
pub fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// A batch's body.
fn body(site: &str, events: &[Value]) -> String {
    json!({"site": site, "events": events}).to_string()
}

/// Why a batch was given up.
#[derive(Debug)]
pub struct Refused(pub u16);

/// Sends `events` as one batch until it is accepted; records every answer, the latency from
/// `due` to the final one, and the accepted batch. A 4xx other than 429 cannot be fixed by
/// retrying: it is returned.
pub async fn send(
    client: &reqwest::Client,
    target: &Target,
    agent: &str,
    events: &[Value],
    due: Instant,
    stats: &mut Stats,
) -> Result<(), Refused> {
    let body = body(&target.site, events);
    tokio::time::sleep_until(due).await;
    let mut backoff = target.retry_backoff;
    loop {
        let answer = client
            .post(&target.events_url)
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", &target.origin)
            .header("user-agent", agent)
            .body(body.clone())
            .send()
            .await;
        stats.requests += 1;
        let status = match &answer {
            Ok(res) => res.status().as_u16(),
            Err(_) => 0,
        };
        let key = if status == 0 {
            "error".to_string()
        } else {
            status.to_string()
        };
        *stats.statuses.entry(key).or_default() += 1;
        if let Ok(res) = answer {
            // Read the answer so the connection goes back to the pool.
            let _ = res.bytes().await;
        }
        if matches!(status, 0 | 429 | 500..=599) {
            stats.retries += 1;
            // A failed attempt may have been taken (a 5xx over Kafka after some deliveries, a
            // lost answer), so its retry may count as duplicates; a 429 takes nothing.
            if status != 429 {
                stats.retried_events += events.len() as u64;
            }
            let jitter = 0.5 + fastrand::f64();
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
            continue;
        }
        let micros = due.elapsed().as_micros() as u64;
        stats.latency.saturating_record(micros.max(1));
        if !(200..=299).contains(&status) {
            return Err(Refused(status));
        }
        stats.events_accepted += events.len() as u64;
        stats.batches_accepted += 1;
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server answering with `statuses` in turn (0: a lost answer); its events URL.
    fn answering(statuses: Vec<u16>) -> String {
        let base = crate::stand_in::serve(move |_, n| statuses.get(n).copied().unwrap_or(503));
        format!("{base}/v1/events")
    }

    #[tokio::test]
    async fn each_retry_counts_the_events_it_re_sends() {
        let target = Target {
            events_url: answering(vec![429, 503, 0, 200]),
            origin: "http://127.0.0.1".into(),
            site: "demo".into(),
            batch: 3,
            retry_backoff: Duration::from_millis(1),
        };
        let events = [json!({"id": "1"}), json!({"id": "2"}), json!({"id": "3"})];
        let mut stats = Stats::default();
        let sent = send(
            &client(1),
            &target,
            "test",
            &events,
            Instant::now(),
            &mut stats,
        )
        .await;
        assert!(sent.is_ok());
        assert_eq!(stats.requests, 4);
        // The 429 is retried but took nothing: only the other two failed attempts may come back
        // as duplicates.
        assert_eq!((stats.retries, stats.retried_events), (3, 6));
        assert_eq!(stats.events_accepted, 3);
    }
}
