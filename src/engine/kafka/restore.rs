//! A new owner's restore: before counting a newly assigned partition, load its newest
//! checkpoint from the state topic (started when the partition is assigned) and re-apply,
//! counting, the messages between the checkpoint's offset and the offset of the partition's
//! first message here, where the consumer started. A partition without a checkpoint
//! (its first owner, or the first since an upgrade) is rebuilt instead: `kafka.rebuild_lookback`
//! re-read into the [`Silent`](crate::engine::Silent) recorder, counted from the committed
//! offset.
//!
//! A checkpoint that cannot be read now (the broker unreachable) is retried; one written by a
//! newer release, a state topic whose checkpoints are all damaged, or one that covers more than
//! the partition holds (the events topic recreated) stops the engine with a message: a
//! partition's figures are never started again at zero over a checkpoint that exists.

use super::range::{STALL, read_range, reader_config};
use super::store::StoreError;
use super::{KafkaEngine, Part, Shared, apply, apply_silently, trail};
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::transport::kafka::InMessage;
use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A partition loaded from its checkpoint, and how long that took.
pub(super) type Loaded = (Part, Duration);

/// A load started when the partition was assigned, so the partitions of one assignment load
/// together (a few at a time) instead of one after another on their first messages.
pub(super) struct Loading {
    task: tokio::task::JoinHandle<anyhow::Result<Loaded>>,
    /// Set when the partition is revoked: a load not begun yet does not begin.
    revoked: Arc<AtomicBool>,
}

/// A revoked load, not begun.
#[derive(Debug, thiserror::Error)]
#[error("the partition was revoked before its load began")]
struct Revoked;

/// Starts loading `partition`'s checkpoint on a blocking thread, at most `Shared::loads` at a
/// time (each holds a checkpoint's bytes and a broker connection), and only once an earlier
/// load of it that was revoked has given back its share of the bounds.
pub(super) fn prefetch(
    shared: &Arc<Shared>,
    partition: i32,
    earlier: Option<Discarded>,
) -> Loading {
    let shared = shared.clone();
    let revoked = Arc::new(AtomicBool::new(false));
    let cancel = revoked.clone();
    let runtime = shared.runtime.clone();
    let task = runtime.spawn(async move {
        if let Some(earlier) = earlier {
            let _ = earlier.await;
        }
        let _permit = shared.loads.acquire().await?;
        anyhow::ensure!(!cancel.load(Ordering::Acquire), Revoked);
        let blocking = shared.clone();
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            load(&blocking, partition).map(|part| (part, start.elapsed()))
        })
        .await?
    });
    Loading { task, revoked }
}

/// A revoked partition's load, given back once done.
pub(super) type Discarded = tokio::task::JoinHandle<()>;

/// Gives back what an unwanted load took of the shared bounds, once it is done (one not begun
/// yet never begins).
pub(super) fn discard(shared: &Shared, partition: i32, loading: Loading) -> Discarded {
    loading.revoked.store(true, Ordering::Release);
    shared.runtime.spawn(async move {
        match loading.task.await {
            Ok(Ok((part, _))) => _ = part.engine.release(),
            Ok(Err(e)) => {
                tracing::debug!(partition, error = %format!("{e:#}"), "a revoked partition's load ended")
            }
            Err(e) => tracing::debug!(partition, error = %e, "a revoked partition's load failed"),
        }
    })
}

impl KafkaEngine {
    /// Restores `partition`, whose first message here is at `committed` (written at
    /// `committed_ms`), and registers it; an error is fatal to the engine.
    pub(super) async fn restore(
        &self,
        partition: i32,
        committed: i64,
        committed_ms: i64,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        let loading = (self.shared.lock().parts.get_mut(&partition)).and_then(|p| p.loading.take());
        let prefetched = match loading {
            Some(loading) => Some(
                loading
                    .task
                    .await
                    .with_context(|| format!("loading partition {partition}"))?,
            ),
            None => None,
        };
        let shared = self.shared.clone();
        let (part, read, seconds) = tokio::task::spawn_blocking(move || {
            let (mut tries, mut prefetched) = (0, prefetched);
            loop {
                // A load that failed before this first message is tried again at once.
                let began = Instant::now();
                let attempt = match prefetched.take() {
                    Some(Ok(loaded)) => Ok(loaded),
                    failed => {
                        if let Some(Err(e)) = failed {
                            tracing::debug!(partition, error = %format!("{e:#}"), "the partition's load failed; loading it again");
                        }
                        load(&shared, partition).map(|part| (part, began.elapsed()))
                    }
                };
                // The time restoring took: the load, and bringing it up to date (not the
                // wait for a load that began before the first message).
                let attempt = attempt.and_then(|(part, loaded_in)| {
                    let began = Instant::now();
                    let (part, read) = finish(&shared, part, partition, committed, committed_ms)?;
                    Ok((part, read, loaded_in + began.elapsed()))
                });
                match attempt {
                    Err(e) if tries < 5 && retriable(&e) => {
                        tries += 1;
                        tracing::warn!(partition, error = %format!("{e:#}"), "cannot restore the partition yet; retrying");
                        std::thread::sleep(Duration::from_secs(2));
                    }
                    other => return other,
                }
            }
        })
        .await??;
        let (next, shown_from) = (part.next, part.shown_from);
        let mut state = self.shared.lock();
        match state.parts.get(&partition) {
            Some(now) if now.next.is_none() => {
                if let Some(empty) = state.parts.insert(partition, part) {
                    empty.engine.release();
                }
            }
            // Revoked meanwhile (or restored twice): what was read goes.
            _ => _ = part.engine.release(),
        }
        drop(state);
        let seconds = seconds.as_secs_f64();
        let m = &self.shared.metrics.kafka;
        m.rebuild_seconds.observe(seconds);
        m.rebuild_messages.inc_by(read);
        trail::restored(partition, next);
        tracing::info!(
            partition,
            committed,
            next,
            shown_from,
            read,
            seconds,
            waited = start.elapsed().as_secs_f64(),
            "partition restored"
        );
        Ok(())
    }
}

/// A restore that no retry mends.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Lasting(String);

/// Whether a failed restore may go better on a second try (the brokers back).
fn retriable(e: &anyhow::Error) -> bool {
    let store = matches!(
        e.downcast_ref::<StoreError>(),
        Some(StoreError::Broken { .. } | StoreError::Format(..) | StoreError::Checkpoint(_))
    );
    let lasting = e.downcast_ref::<Lasting>().is_some()
        || e.downcast_ref::<crate::engine::SnapshotError>().is_some();
    !store && !lasting
}

/// Loads `partition`'s newest checkpoint (blocking); an empty state without one. Its series
/// are to be exported once it reaches the partition's end as it is now.
fn load(shared: &Shared, partition: i32) -> anyhow::Result<Part> {
    let k = &shared.config.kafka;
    let reader: BaseConsumer = reader_config(k, "rebuild").create()?;
    let (_, end) = reader.fetch_watermarks(shared.topic(), partition, STALL)?;
    let Some((manifest, data)) = shared.store.read(partition)? else {
        let mut part = Part::new(shared);
        part.shown_from = end;
        return Ok(part);
    };
    if manifest.next > end {
        return Err(Lasting(format!(
            "the checkpoint of partition {partition} on {} covers up to offset {}, but {} ends at \
             {end}: the events topic was recreated or another one shares its name; move the \
             state topic's records of it away (or use a new kafka.state_topic) to start it from \
             zero",
            k.state_topic,
            manifest.next,
            shared.topic()
        ))
        .into());
    }
    let metrics = Arc::new(Metrics::new(&shared.config));
    for skipped in metrics.restore_figures(&data.figures).skipped {
        tracing::warn!(
            partition,
            ?skipped,
            "a figure of the checkpoint is not configured now"
        );
    }
    let (engine, restored) = Engine::restore(
        &shared.config,
        metrics.clone(),
        shared.bounds.clone(),
        &data.engine,
    )
    .with_context(|| format!("the checkpoint of partition {partition}"))?;
    if restored.changed() > 0 {
        tracing::warn!(
            partition,
            ?restored,
            "checkpoint mapped onto a changed configuration"
        );
    } else {
        tracing::debug!(partition, manifest.next, ?restored, "checkpoint loaded");
    }
    Ok(Part {
        engine,
        metrics,
        next: Some(manifest.next),
        shown_from: end,
        checkpointed: Some(manifest.next),
        slot: manifest.slot,
        loading: None,
    })
}

/// Brings a loaded partition up to `committed` (blocking): the messages after its checkpoint
/// re-applied, counting, or without a checkpoint the lookback rebuilt silently. A failure
/// gives back what the partition took of the shared bounds.
fn finish(
    shared: &Shared,
    mut part: Part,
    partition: i32,
    committed: i64,
    committed_ms: i64,
) -> anyhow::Result<(Part, u64)> {
    // Nothing to re-read (the checkpoint covers up to the first message): no reader.
    if part.next.is_some_and(|from| from >= committed) {
        return Ok((part, 0));
    }
    let reader: BaseConsumer = reader_config(&shared.config.kafka, "rebuild").create()?;
    let read = match part.next {
        None => rebuild(
            shared,
            &reader,
            &part.engine,
            partition,
            committed,
            committed_ms,
        ),
        Some(from) => read_range(
            shared,
            &reader,
            partition,
            from,
            committed,
            |offset, m| match m {
                InMessage::Event(e) => trail::event(partition, offset, e, part.engine.apply(e)),
                tick => apply(&part.engine, tick, &part.engine.counting()),
            },
        ),
    };
    let read = read.inspect_err(|_| _ = part.engine.release())?;
    part.next = Some(part.next.map_or(committed, |from| from.max(committed)));
    Ok((part, read))
}

/// Re-reads `partition` from `kafka.rebuild_lookback` before `committed_ms` up to offset
/// `committed` into the silent recorder.
fn rebuild(
    shared: &Shared,
    reader: &BaseConsumer,
    engine: &Engine,
    partition: i32,
    committed: i64,
    committed_ms: i64,
) -> anyhow::Result<u64> {
    let topic = shared.topic();
    let since = committed_ms - shared.config.kafka.rebuild_lookback.as_millis() as i64;
    // Sessions that closed before the lookback are not remembered: the effective dedup
    // horizon starts there.
    shared.bounds.forgot_early(since);
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition_offset(topic, partition, Offset::Offset(since))?;
    let found = reader.offsets_for_times(wanted, STALL)?;
    let from = match found.find_partition(topic, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => committed,
    };
    read_range(shared, reader, partition, from, committed, |_, m| {
        apply_silently(engine, m)
    })
}
