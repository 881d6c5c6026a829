//! The engine of `serve` over its state directory: recovery at start, then the driver that
//! applies the log's inputs and writes checkpoints.
//!
//! Start ([`recover`]): load the newest readable checkpoint (a damaged one is skipped for the
//! one before it), restore the engine and its counters from it, open the log and replay every
//! record after the checkpoint's lsn, counting as the live run did, then serve. Because the
//! engine's state is a function of the log (batches and the clock's ticks, in order) and of the
//! checkpoint (its sessions, counters and new-session rate), the replay ends where the process
//! stopped, whatever stopped it: nothing acknowledged is lost, nothing is counted twice.
//!
//! Run ([`run`]): apply each input in log order; every `sweep_interval`, log a tick (not sweep
//! directly: a sweep is applied when its tick comes back from the log); every
//! `state.checkpoint_interval`, between inputs, take the engine's state and write it on a
//! blocking thread. Once a checkpoint is durable, the log segments the checkpoint before it
//! covers are removed: the two checkpoints kept always have their log, so falling back to the
//! older one (the newer damaged) loses nothing. On shutdown, once the queue is drained, a last
//! checkpoint makes the next start replay nothing.

use super::Engine;
use super::checkpoint::{CheckpointData, CheckpointFormatError};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::state::{self, LogOptions, LogWriter, Lsn};
use crate::transport::durable::record::{self, Record};
use crate::transport::durable::{Clock, DurableSource, Input};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What start-up found and did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The lsn of the checkpoint loaded, if any.
    pub checkpoint: Option<Lsn>,
    pub sessions: usize,
    /// Closed sessions remembered for the dedup horizon.
    pub remembered: usize,
    /// Log records replayed after it, and the events among them.
    pub records: u64,
    pub events: u64,
    /// The last lsn applied: the log's last record.
    pub lsn: Lsn,
}

/// Restores the engine from `dir` (see the module doc) and returns it with the log's writer.
pub fn recover(
    config: &Config,
    metrics: &Arc<Metrics>,
    dir: &Path,
) -> anyhow::Result<(Arc<Engine>, LogWriter, Recovered)> {
    let mut found = Recovered::default();
    let (checkpoint, data) = newest_usable(dir)?;
    let engine = match (checkpoint, data) {
        (Some(c), Some(data)) => {
            let limiter = Some(&data.engine.limiter);
            let bounds = Arc::new(super::Bounds::restored(&config.engine, limiter));
            let (engine, restored) = Engine::restore(config, metrics.clone(), bounds, &data.engine)
                .with_context(|| format!("checkpoint {}", c.path.display()))?;
            if restored.changed() > 0 {
                tracing::warn!(?restored, "checkpoint mapped onto a changed configuration");
            }
            let figures = metrics.restore_figures(&data.figures);
            for skipped in &figures.skipped {
                tracing::warn!(?skipped, "a figure of the checkpoint is not configured now");
            }
            found.checkpoint = Some(data.lsn);
            found.sessions = restored.sessions;
            found.remembered = restored.remembered;
            let m = &metrics.state;
            m.checkpoint_time.set(data.taken_at_ms / 1000);
            m.checkpoint_bytes.set(c.payload.len() as i64);
            engine
        }
        _ => Engine::new(config, metrics.clone()),
    };
    let from = found.checkpoint.unwrap_or(0);
    let options = LogOptions {
        segment_bytes: config.state.segment_bytes,
        start_after: from,
        ..LogOptions::default()
    };
    let (log, recovery) = state::log::open(dir, options)?;
    if found.checkpoint.is_none() && recovery.first_lsn() != Some(1) {
        // Nothing of an earlier run is known (a first start, a lost directory): dedup covers
        // what closes from now on.
        engine.bounds.forgot_early(crate::now_ms());
        engine.remembered_gauges(crate::now_ms());
    }
    for d in recovery.damage() {
        tracing::error!(damage = ?d, "log damaged: the records there are lost");
    }
    for gap in recovery.gaps().iter().filter(|g| *g.end() > from) {
        tracing::error!(
            ?gap,
            "log records after the checkpoint are missing: they are lost"
        );
    }
    if recovery.first_lsn().is_some_and(|first| first > from + 1) {
        tracing::error!(
            checkpoint = from,
            first = recovery.first_lsn(),
            "the log starts after the checkpoint: the records between are lost"
        );
    }
    // A long replay says how far it is, every few seconds.
    let total = recovery
        .last_lsn()
        .map_or(0, |last| last.saturating_sub(from));
    let mut progress = Instant::now();
    for r in recovery.read_after(from) {
        let (lsn, bytes) = r?;
        if progress.elapsed() >= Duration::from_secs(5) {
            progress = Instant::now();
            tracing::info!(
                replayed = found.records,
                of = total,
                events = found.events,
                "replaying the log"
            );
        }
        match record::decode(&bytes).with_context(|| format!("log record {lsn}"))? {
            Record::Batch(events) => {
                found.events += events.len() as u64;
                events.iter().for_each(|e| _ = engine.apply(e));
            }
            Record::Tick { now_ms } => _ = engine.sweep(now_ms),
        }
        found.records += 1;
        found.lsn = lsn;
    }
    found.lsn = found.lsn.max(from);
    Ok((Arc::new(engine), log, found))
}

/// The newest checkpoint that reads: a damaged file, or one whose content does not decode (set
/// aside as `.ckpt.unreadable`), is skipped for the one before it (whose log is kept for that);
/// one written by a newer release stops the start, since the older ones would lose what it
/// holds.
pub(super) fn newest_usable(
    dir: &Path,
) -> anyhow::Result<(Option<state::Checkpoint>, Option<CheckpointData>)> {
    let mut before = u64::MAX;
    loop {
        let (checkpoint, skipped) = state::checkpoint::latest_before(dir, before)?;
        for s in &skipped {
            tracing::error!(file = %s.path.display(), reason = %s.reason, "checkpoint skipped");
        }
        let Some(c) = checkpoint else {
            return Ok((None, None));
        };
        match CheckpointData::decode(&c.payload) {
            Ok(data) => return Ok((Some(c), Some(data))),
            Err(e @ CheckpointFormatError::Newer(_)) => {
                return Err(
                    anyhow::Error::new(e).context(format!("checkpoint {}", c.path.display()))
                );
            }
            Err(e) => {
                // Set aside (kept for a person to look at), so that the checkpoints written
                // from now on, at lsns it may have claimed, are not refused as older.
                let aside = c.path.with_extension("ckpt.unreadable");
                let moved = std::fs::rename(&c.path, &aside);
                tracing::error!(file = %c.path.display(), error = %e, aside = moved.is_ok(), "checkpoint skipped");
                before = c.lsn;
            }
        }
    }
}

/// How the driver checkpoints.
pub struct Checkpointing {
    pub dir: PathBuf,
    pub interval: Duration,
}

/// Applies every input from `source` until shutdown, logging a tick every `sweep_interval`
/// and checkpointing as `checkpoints` says; then drains the queue and checkpoints once more.
/// Returns the number of events applied.
pub async fn run(
    engine: Arc<Engine>,
    mut source: DurableSource,
    clock: Clock,
    sweep_interval: Duration,
    checkpoints: Checkpointing,
    mut from: Recovered,
    mut shutdown: Shutdown,
) -> u64 {
    let mut applied = 0u64;
    let mut tick = tokio::time::interval(sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut writer = Writer::new(checkpoints, clock.log().clone(), from.checkpoint);
    let mut syncs = 0;
    // What was replayed (or a new directory) is checkpointed at once: the next start replays
    // only what comes after, and the checkpoint's age is known from the start. (Nothing is
    // written when the checkpoint loaded already covers the log.)
    writer.maybe(&engine, from.lsn, true).await;
    let mut closing = false;
    loop {
        tokio::select! {
            next = source.next() => match next {
                Some((input, _room)) => {
                    from.lsn = input.lsn();
                    applied += apply(&engine, input);
                    writer.maybe(&engine, from.lsn, false).await;
                }
                None => break,
            },
            _ = tick.tick(), if !closing => {
                let clock = clock.clone();
                tokio::spawn(async move { clock.tick(crate::now_ms()).await });
                syncs = log_metrics(&engine, writer.log.stats(), syncs);
            }
            _ = shutdown.wait() => {
                source.close();
                closing = true;
                shutdown = Shutdown::never();
            }
        }
    }
    writer.maybe(&engine, from.lsn, true).await;
    tracing::info!(applied, lsn = from.lsn, "engine drained the transport");
    applied
}

/// Exports the log's size and group commits; returns the commits counted so far.
fn log_metrics(engine: &Engine, stats: state::LogStats, counted: u64) -> u64 {
    let m = &engine.metrics.state;
    m.log_bytes.set(stats.disk_bytes as i64);
    m.log_syncs.inc_by(stats.groups.saturating_sub(counted));
    stats.groups.max(counted)
}

fn apply(engine: &Engine, input: Input) -> u64 {
    match input {
        Input::Batch { events, .. } => {
            for ev in &events {
                engine.apply(ev);
            }
            let now = crate::now_ms();
            for ev in &events {
                engine.metrics.engine.observe_lag(ev.received_at_ms, now);
            }
            events.len() as u64
        }
        Input::Tick { now_ms, .. } => {
            let closed = engine.sweep(now_ms);
            if closed > 0 {
                tracing::debug!(closed, "closed idle sessions");
            }
            0
        }
    }
}

/// Writes checkpoints, one at a time, on a blocking thread.
struct Writer {
    dir: PathBuf,
    interval: Duration,
    log: LogWriter,
    last: Instant,
    /// The lsn of the newest durable checkpoint: the log up to the one before it is removed.
    newest: Option<Lsn>,
    written: Option<Lsn>,
    pending: Option<tokio::task::JoinHandle<anyhow::Result<Written>>>,
}

/// A checkpoint written.
struct Written {
    lsn: Lsn,
    taken_at_ms: i64,
    bytes: usize,
    /// How long the engine stood still while its state was taken.
    paused_ms: u128,
}

impl Writer {
    fn new(c: Checkpointing, log: LogWriter, newest: Option<Lsn>) -> Self {
        Writer {
            dir: c.dir,
            interval: c.interval,
            log,
            last: Instant::now(),
            newest,
            written: newest,
            pending: None,
        }
    }

    /// Takes a checkpoint at `lsn` when one is due (or `now`, waiting for the one in flight),
    /// unless the last one already covers `lsn`.
    async fn maybe(&mut self, engine: &Engine, lsn: Lsn, now: bool) {
        if self.pending.as_ref().is_some_and(|p| p.is_finished()) || now {
            self.finish(engine).await;
        }
        let due = now || self.last.elapsed() >= self.interval;
        if !due || self.pending.is_some() || self.written == Some(lsn) {
            return;
        }
        self.last = Instant::now();
        let data = CheckpointData {
            lsn,
            taken_at_ms: crate::now_ms(),
            engine: engine.snapshot(),
            figures: engine.metrics.figures(),
        };
        // The engine applies nothing while it takes its state: say how long that was.
        let paused_ms = self.last.elapsed().as_millis();
        let dir = self.dir.clone();
        self.written = Some(lsn);
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let payload = data.encode();
            state::checkpoint::write(&dir, data.lsn, &payload)?;
            Ok(Written {
                lsn: data.lsn,
                taken_at_ms: data.taken_at_ms,
                bytes: payload.len(),
                paused_ms,
            })
        }));
        if now {
            self.finish(engine).await;
        }
    }

    /// Waits for the checkpoint in flight; once durable, removes the log its predecessor covers.
    async fn finish(&mut self, engine: &Engine) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let m = &engine.metrics.state;
        let failed = match pending.await {
            Ok(Ok(w)) => {
                if let Some(previous) = self.newest.replace(w.lsn) {
                    self.log.remove_through(previous);
                }
                m.checkpoint_time.set(w.taken_at_ms / 1000);
                m.checkpoint_bytes.set(w.bytes as i64);
                let (lsn, bytes, paused_ms) = (w.lsn, w.bytes, w.paused_ms);
                tracing::debug!(lsn, bytes, paused_ms, "checkpoint written");
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the checkpoint task failed: {e}"),
        };
        self.written = self.newest;
        m.checkpoint_failures.inc();
        tracing::error!(error = %failed, "checkpoint not written; the log keeps everything since the last one");
    }
}
