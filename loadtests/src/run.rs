//! A run: a baseline scrape, the load (simulated shoppers or a replayed clickstream) with the
//! freshness probe beside it, the server's CPU and memory, and at the end `/metrics` checked
//! against the ground truth of everything that was acknowledged.

use crate::probe::{self, Freshness, now_ms, scrape};
use crate::procstat::{self, Server};
use crate::report::{Report, ServerUse};
use crate::send::{Pacer, Stats, Target, client, send};
use crate::shopper::{DESKTOP, Mix, Shopper};
use crate::truth::{Event, Figures, figures};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How to run, whatever the workload.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// `/metrics` URLs of every collector and engine, summed.
    pub metrics: Vec<String>,
    pub concurrency: usize,
    /// Events per second; 0 for as fast as the server answers.
    pub rate: f64,
    pub server: Option<Server>,
    /// The server's `journey.session_timeout`.
    pub session_timeout: Duration,
    /// How long to wait, after the load, for `/metrics` to reach the ground truth.
    pub settle: Duration,
    pub verify: bool,
    /// Freshness probe interval; None for no probe.
    pub probe_interval: Option<Duration>,
    /// Prefix of every session id, unique to the run.
    pub run_id: String,
    /// Keep a [`Ledger`] of every event sent and acknowledged.
    pub ledger: bool,
}

/// An event's identity: its session and its id (the engine's dedup key within the site).
pub type EventKey = (String, String);

/// Every event a run sent and every one acknowledged, for an id-level comparison with what a
/// deployment counted. Events of crawler sessions, which the collector filters by design, are
/// left out; the freshness probe's too.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Events put in a request, each once however often it was retried or re-sent.
    pub sent: Vec<EventKey>,
    /// Events of batches answered 2xx, once per answer: a re-sent batch's events are listed
    /// again.
    pub acknowledged: Vec<EventKey>,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        self.sent.extend(other.sent);
        self.acknowledged.extend(other.acknowledged);
    }
}

fn keys<'a>(events: impl IntoIterator<Item = &'a Event>) -> impl Iterator<Item = EventKey> {
    events
        .into_iter()
        .map(|e| (e.session.clone(), e.id.clone()))
}

/// What to send.
#[derive(Debug, Clone)]
pub enum Workload {
    Shoppers {
        mix: Mix,
        /// Stop starting sessions after this long...
        duration: Option<Duration>,
        /// ...or after this many.
        sessions: Option<u64>,
        /// Share of acknowledged batches sent again, as when a response is lost.
        duplicates: f64,
        seed: u64,
    },
    Replay {
        events: Vec<Event>,
        speedup: f64,
    },
}

/// What a workload acknowledged.
struct Sent {
    stats: Stats,
    truth: Figures,
    sessions: u64,
    ledger: Option<Ledger>,
}

/// Runs `workload` and measures it.
pub async fn execute(options: Options, workload: Workload) -> anyhow::Result<Report> {
    let http = client(options.concurrency + 2);
    let before = scrape(&http, &options.metrics).await?;
    let site = options.target.site.clone();
    let server_cpu = match &options.server {
        Some(s) => Some(s.cpu_seconds()?),
        None => None,
    };
    let own_cpu = procstat::cpu_seconds("self")?;
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = options.server.clone().map(|server| {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                if let Ok(rss) = server.rss() {
                    samples.push((started.elapsed().as_secs_f64(), rss));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => break,
                }
            }
            samples
        })
    });
    let probe = options.probe_interval.map(|interval| {
        tokio::spawn(probe::run(
            http.clone(),
            options.target.clone(),
            options.metrics.clone(),
            options.run_id.clone(),
            interval,
            options.settle,
            stop_rx.clone(),
        ))
    });

    let mode = match &workload {
        Workload::Shoppers { .. } => "shoppers",
        Workload::Replay { .. } => "replay",
    };
    let mut sent = match workload {
        Workload::Shoppers {
            mix,
            duration,
            sessions,
            duplicates,
            seed,
        } => shoppers(&options, &http, mix, duration, sessions, duplicates, seed).await,
        Workload::Replay { events, speedup } => replay(&options, &http, events, speedup).await,
    };
    // The load phase ends with the last acknowledged batch.
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let server = match (&options.server, server_cpu) {
        (Some(s), Some(cpu)) => Some(ServerUse {
            cpu_seconds: s.cpu_seconds()? - cpu,
            max_rss: 0,
            peak_rss: s.peak_rss()?,
            rss: Vec::new(),
        }),
        _ => None,
    };
    let generator_cpu_seconds = procstat::cpu_seconds("self")? - own_cpu;
    let freshness: Option<Freshness> = match probe {
        Some(p) => Some(p.await??),
        None => None,
    };
    let server = match (server, sampler) {
        (Some(mut u), Some(task)) => {
            u.rss = task.await?;
            u.max_rss = u.rss.iter().map(|(_, b)| *b).max().unwrap_or(0);
            Some(u)
        }
        (u, _) => u,
    };
    if let Some(f) = &freshness {
        sent.truth.merge(&f.truth);
        sent.stats.merge(&f.stats);
    }

    let mut notes = Vec::new();
    let differences = match unverifiable(options.verify, &sent.stats) {
        Some(why) => {
            notes.push(why.to_string());
            None
        }
        None => Some(verify(&options, &http, &before, &sent, &site, &mut notes).await?),
    };
    Ok(Report {
        mode: mode.to_string(),
        seconds,
        sessions: sent.sessions,
        stats: sent.stats,
        server,
        generator_cpu_seconds,
        freshness_missed: freshness.as_ref().map_or(0, |f| f.missed),
        freshness: freshness.map(|f| f.micros),
        differences,
        notes,
        truth: sent.truth,
        ledger: sent.ledger,
    })
}

/// Why the figures cannot be verified, when they cannot: verification was not asked for, or
/// nothing was acknowledged. With nothing acknowledged the truth is all zeros, which an idle or
/// misconfigured server matches: a run whose every batch was refused would pass unchecked.
fn unverifiable(verify: bool, stats: &Stats) -> Option<&'static str> {
    if !verify {
        Some("figures not verified: verification was not asked for (--no-verify)")
    } else if stats.events_accepted == 0 {
        Some("figures not verified: no event was acknowledged, so there is nothing to check")
    } else {
        None
    }
}

/// Scrapes until the figures since `before` equal the ground truth or `settle` passes; the
/// differences left.
async fn verify(
    options: &Options,
    http: &reqwest::Client,
    before: &crate::scrape::Scrape,
    sent: &Sent,
    site: &str,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + options.settle;
    let base = before.figures(site);
    let bots_before = filtered_bots(before, site);
    loop {
        let now = scrape(http, &options.metrics).await?;
        let actual = now.figures(site).since(&base);
        let bots = (filtered_bots(&now, site) - bots_before) as u64;
        let (differences, note) = compare(sent, &actual, bots);
        if differences.is_empty() || Instant::now() >= deadline {
            notes.extend(note);
            return Ok(differences);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Crawler events of `site` the collector filtered.
fn filtered_bots(s: &crate::scrape::Scrape, site: &str) -> f64 {
    s.sum(
        "touchstream_events_filtered_total",
        &[("site", site), ("reason", "bot")],
    )
}

/// Every difference of `actual`, and of `bots` filtered, from what `sent` acknowledged, with a
/// note when duplicates had a range. Every figure is exact but duplicates: an attempt that
/// failed (a 5xx over Kafka after some deliveries, a lost answer) may have been taken in part
/// or whole, and then each event its retry re-sent counts once more. So duplicates lie between
/// the truth's and that plus the retried events; only the retries widen the range, never the
/// server's own figure.
fn compare(sent: &Sent, actual: &Figures, bots: u64) -> (Vec<String>, Option<String>) {
    let low = sent.truth.duplicates;
    let retried = sent.stats.retried_events;
    let high = low + retried;
    // Duplicates are checked below, against the range.
    let expected = Figures {
        duplicates: actual.duplicates,
        ..sent.truth.clone()
    };
    let mut differences = actual.differences(&expected);
    if !(low..=high).contains(&actual.duplicates) {
        let range = if retried == 0 {
            low.to_string()
        } else {
            format!("{low} to {high}")
        };
        differences.push(format!(
            "duplicates: actual {}, expected {range}",
            actual.duplicates
        ));
    }
    if bots != sent.stats.bot_events {
        differences.push(format!(
            "bot events filtered: actual {bots}, expected {}",
            sent.stats.bot_events
        ));
    }
    let note = (retried > 0).then(|| {
        format!(
            "duplicates checked between {low} and {high}: {retried} events were re-sent after a \
             failed attempt, which may have been taken; {} counted",
            actual.duplicates
        )
    });
    (differences, note)
}

async fn shoppers(
    options: &Options,
    http: &reqwest::Client,
    mix: Mix,
    duration: Option<Duration>,
    limit: Option<u64>,
    duplicates: f64,
    seed: u64,
) -> Sent {
    let pacer = Arc::new(Pacer::new(options.rate));
    let next = Arc::new(AtomicU64::new(0));
    let deadline = duration.map(|d| Instant::now() + d);
    let limit = limit.unwrap_or(u64::MAX);
    let record = options.ledger;
    let mut workers = Vec::new();
    for w in 0..options.concurrency {
        let (pacer, next, http) = (pacer.clone(), next.clone(), http.clone());
        let target = options.target.clone();
        let mut shopper = Shopper::new(
            mix.clone(),
            options.run_id.clone(),
            seed.wrapping_add(w as u64),
        );
        let mut rng = fastrand::Rng::with_seed(seed ^ (w as u64).wrapping_mul(0x9e37_79b9));
        workers.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut truth = Figures::default();
            let mut ledger = record.then(Ledger::default);
            let mut sessions = 0;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                sessions += 1;
                let session = shopper.session(n, now_ms());
                let mut acknowledged: Vec<&Event> = Vec::new();
                for (wire, events) in session
                    .wire
                    .chunks(target.batch)
                    .zip(session.events.chunks(target.batch))
                {
                    let due = pacer.reserve(wire.len());
                    // Crawler sessions stay out of the ledger: the collector filters them.
                    let mut kept = ledger.as_mut().filter(|_| !session.bot);
                    if let Some(l) = kept.as_mut() {
                        l.sent.extend(keys(events));
                    }
                    let mut copies = 1 + usize::from(!session.bot && rng.f64() < duplicates);
                    let mut next_due = due;
                    while copies > 0 {
                        copies -= 1;
                        if send(&http, &target, session.agent, wire, next_due, &mut stats)
                            .await
                            .is_err()
                        {
                            break;
                        }
                        acknowledged.extend(events);
                        if let Some(l) = kept.as_mut() {
                            l.acknowledged.extend(keys(events));
                        }
                        next_due = Instant::now();
                    }
                }
                if session.bot {
                    stats.bot_events += acknowledged.len() as u64;
                } else if !acknowledged.is_empty() {
                    truth.add_session(&acknowledged);
                }
            }
            (stats, truth, sessions, ledger)
        }));
    }
    let mut sent = Sent {
        stats: Stats::default(),
        truth: Figures::default(),
        sessions: 0,
        ledger: record.then(Ledger::default),
    };
    for w in workers {
        let (stats, truth, sessions, ledger) = w.await.expect("a worker panicked");
        sent.stats.merge(&stats);
        sent.truth.merge(&truth);
        sent.sessions += sessions;
        if let (Some(all), Some(l)) = (sent.ledger.as_mut(), ledger) {
            all.merge(l);
        }
    }
    sent
}

/// Sends a recorded clickstream on its own timeline, `speedup` times faster: a session's events
/// due at the same moment go out in one batch, when due, stamped with the time they are sent.
/// Gaps shrink by `speedup`, so the server's session timeout must be the original one divided
/// by `speedup`; the ground truth splits sessions where the stamped times do. `concurrency`
/// workers take the batches in order of their due time.
async fn replay(
    options: &Options,
    http: &reqwest::Client,
    events: Vec<Event>,
    speedup: f64,
) -> Sent {
    let mut by_session: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in events {
        by_session.entry(e.session.clone()).or_default().push(e);
    }
    let sessions = by_session.len() as u64;
    let t0 = by_session
        .values()
        .flatten()
        .map(|e| e.ts)
        .min()
        .unwrap_or(0);
    let offset = |ts: i64| ((ts - t0) as f64 / speedup) as i64;
    // Every batch: (due offset in ms, events with their session renamed for this run).
    let mut batches: Vec<(i64, Vec<Event>)> = Vec::new();
    for (session, mut list) in by_session {
        list.sort_by_key(|e| e.ts);
        let id = format!("{}-{session}", options.run_id);
        for e in list {
            let due = offset(e.ts);
            let moved = Event {
                session: id.clone(),
                ..e
            };
            match batches.last_mut() {
                Some((d, b))
                    if *d == due && b[0].session == id && b.len() < options.target.batch =>
                {
                    b.push(moved)
                }
                _ => batches.push((due, vec![moved])),
            }
        }
    }
    batches.sort_by_key(|(due, _)| *due);
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let record = options.ledger;
    let mut workers = Vec::new();
    for _ in 0..options.concurrency {
        let (http, target) = (http.clone(), options.target.clone());
        let (batches, next) = (batches.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut acknowledged = Vec::new();
            let mut sent = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((due, batch)) = batches.get(i) else {
                    break;
                };
                let due = start + Duration::from_millis(*due as u64);
                tokio::time::sleep_until(due).await;
                // Stamped when sent, as a browser stamps them: what a batch waited for a free
                // worker does not widen the gaps the server sees.
                let now = now_ms();
                let batch: Vec<Event> = batch
                    .iter()
                    .map(|e| Event {
                        ts: now,
                        ..e.clone()
                    })
                    .collect();
                let wire: Vec<serde_json::Value> = batch.iter().map(wire_event).collect();
                if record {
                    sent.extend(keys(&batch));
                }
                if send(&http, &target, DESKTOP, &wire, due, &mut stats)
                    .await
                    .is_ok()
                {
                    acknowledged.extend(batch);
                }
            }
            (stats, acknowledged, sent)
        }));
    }
    let mut stats = Stats::default();
    let mut all = Vec::new();
    let mut ledger = record.then(Ledger::default);
    for w in workers {
        let (s, acknowledged, sent) = w.await.expect("a worker panicked");
        stats.merge(&s);
        if let Some(l) = ledger.as_mut() {
            l.merge(Ledger {
                sent,
                acknowledged: keys(&acknowledged).collect(),
            });
        }
        all.extend(acknowledged);
    }
    let timeout_ms = options.session_timeout.as_millis() as i64;
    Sent {
        stats,
        truth: figures(&all, timeout_ms),
        sessions,
        ledger,
    }
}

/// An event as wire JSON.
pub fn wire_event(e: &Event) -> serde_json::Value {
    let mut v = serde_json::json!({"id": e.id, "type": e.kind, "ts": e.ts, "session": e.session});
    let mut props = serde_json::Map::new();
    if let Some(value) = e.value {
        props.insert("value".into(), value.into());
    }
    if let Some(c) = &e.currency {
        props.insert("currency".into(), c.as_str().into());
    }
    if let Some(o) = &e.order_id {
        props.insert("order_id".into(), o.as_str().into());
    }
    if !props.is_empty() {
        v["props"] = props.into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a run acknowledged: one order and `duplicates` duplicates, after `retried` events
    /// were re-sent following 503s.
    fn sent(duplicates: u64, retried: u64) -> Sent {
        let mut stats = Stats {
            events_accepted: 10,
            retried_events: retried,
            ..Stats::default()
        };
        if retried > 0 {
            stats.statuses.insert("503".into(), 1);
        }
        let truth = Figures {
            orders: 1,
            duplicates,
            ..Figures::default()
        };
        Sent {
            stats,
            truth,
            sessions: 1,
            ledger: None,
        }
    }

    /// The server's figures: the truth of `sent`, with `duplicates` duplicates.
    fn counted(sent: &Sent, duplicates: u64) -> Figures {
        Figures {
            duplicates,
            ..sent.truth.clone()
        }
    }

    #[test]
    fn duplicates_beyond_the_retried_events_fail() {
        // 3 events re-sent can explain 3 duplicates at most, not 4.
        let s = sent(2, 3);
        let (differences, note) = compare(&s, &counted(&s, 6), 0);
        assert_eq!(differences, ["duplicates: actual 6, expected 2 to 5"]);
        assert!(note.unwrap().contains("between 2 and 5"));
    }

    #[test]
    fn duplicates_within_the_retried_events_pass_with_a_note() {
        let s = sent(2, 3);
        for duplicates in [2, 4, 5] {
            let (differences, note) = compare(&s, &counted(&s, duplicates), 0);
            assert!(differences.is_empty(), "{duplicates}: {differences:?}");
            assert!(note.is_some());
        }
    }

    #[test]
    fn fewer_duplicates_than_were_sent_fail_even_after_retries() {
        let s = sent(2, 3);
        let (differences, _) = compare(&s, &counted(&s, 1), 0);
        assert_eq!(differences, ["duplicates: actual 1, expected 2 to 5"]);
    }

    #[test]
    fn without_retries_duplicates_are_exact() {
        // A failure that was not retried (a 4xx) re-sends nothing: no range.
        let mut s = sent(2, 0);
        s.stats.statuses.insert("400".into(), 1);
        let (differences, note) = compare(&s, &counted(&s, 3), 0);
        assert_eq!(differences, ["duplicates: actual 3, expected 2"]);
        assert_eq!(note, None);
    }

    #[test]
    fn retries_leave_every_other_figure_exact() {
        let s = sent(2, 3);
        let mut actual = counted(&s, 3);
        actual.orders += 1;
        let (differences, _) = compare(&s, &actual, 1);
        assert_eq!(
            differences,
            [
                "orders: actual 2, expected 1",
                "bot events filtered: actual 1, expected 0"
            ]
        );
    }

    #[test]
    fn a_run_is_verified_only_when_asked_and_something_was_acknowledged() {
        let mut stats = Stats::default();
        assert!(
            unverifiable(true, &stats)
                .unwrap()
                .contains("no event was acknowledged")
        );
        stats.events_accepted = 1;
        assert_eq!(unverifiable(true, &stats), None);
        assert!(unverifiable(false, &stats).unwrap().contains("--no-verify"));
    }
}
