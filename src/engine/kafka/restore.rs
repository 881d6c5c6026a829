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

use super::store::StoreError;
use super::{KafkaEngine, Part, Shared, apply, apply_silently, decode, trail};
use crate::config::KafkaConfig;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::transport::kafka::{InMessage, client_config};
use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long reading a partition may stall before the engine gives up.
const STALL: Duration = Duration::from_secs(30);

/// A partition loaded from its checkpoint, and how long that took.
pub(super) type Loaded = (Part, Duration);

/// A load started when the partition was assigned, so the partitions of one assignment load
/// together instead of one after another on their first messages.
pub(super) type Loading = tokio::task::JoinHandle<anyhow::Result<Loaded>>;

/// Starts loading `partition`'s checkpoint on a blocking thread, at most `loads` at a time
/// (each holds a checkpoint's bytes and a broker connection), and only once an earlier load of
/// it that was revoked has given back its share of the bounds.
pub(super) fn prefetch(
    shared: &Arc<Shared>,
    partition: i32,
    earlier: Option<Discarded>,
) -> Loading {
    let shared = shared.clone();
    let runtime = shared.runtime.clone();
    runtime.spawn(async move {
        if let Some(earlier) = earlier {
            let _ = earlier.await;
        }
        let _permit = shared.loads.acquire().await?;
        let blocking = shared.clone();
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            load(&blocking, partition).map(|part| (part, start.elapsed()))
        })
        .await?
    })
}

/// A revoked partition's load, given back once done.
pub(super) type Discarded = tokio::task::JoinHandle<()>;

/// Gives back what an unwanted load took of the shared bounds, once it is done.
pub(super) fn discard(shared: &Shared, partition: i32, loading: Loading) -> Discarded {
    shared.runtime.spawn(async move {
        match loading.await {
            Ok(Ok((part, _))) => _ = part.engine.release(),
            Ok(Err(e)) => {
                tracing::debug!(partition, error = %format!("{e:#}"), "a revoked partition's load failed")
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
                    .await
                    .with_context(|| format!("loading partition {partition}"))?,
            ),
            None => None,
        };
        let shared = self.shared.clone();
        let (part, read, loaded_in) = tokio::task::spawn_blocking(move || {
            let (mut tries, mut prefetched) = (0, prefetched);
            loop {
                // A load that failed before this first message is tried again at once.
                let began = Instant::now();
                let attempt = match prefetched.take() {
                    Some(Ok(loaded)) => Ok(loaded),
                    _ => load(&shared, partition).map(|part| (part, began.elapsed())),
                };
                let attempt = attempt.and_then(|(part, loaded_in)| {
                    let (part, read) = finish(&shared, part, partition, committed, committed_ms)?;
                    Ok((part, read, loaded_in))
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
        // The load (done before the first message, usually) and what followed it.
        let seconds = (loaded_in + start.elapsed()).as_secs_f64();
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
            loaded_in = loaded_in.as_secs_f64(),
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
    tracing::debug!(partition, manifest.next, ?restored, "checkpoint loaded");
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

/// Where a reader starts: at `from`, or earlier when the broker answered a fetch at `from` from
/// a later offset on. tansu 0.6 answers a fetch at an offset inside a record batch with the
/// batches after it, so the batch's later records would be skipped; reading from earlier
/// offsets finds the batch (its records before `from` are skipped by the caller). Against
/// Kafka the first fetch is answered from `from`, and this does nothing.
pub(super) struct Start {
    from: i64,
    at: i64,
    step: i64,
    first: bool,
}

impl Start {
    pub(super) fn new(from: i64) -> Self {
        Self {
            from,
            at: from,
            step: 1,
            first: true,
        }
    }

    /// Assigns `reader` to `partition` at the current start.
    pub(super) fn assign(
        &mut self,
        reader: &BaseConsumer,
        topic: &str,
        partition: i32,
    ) -> Result<(), KafkaError> {
        let mut start = TopicPartitionList::new();
        start.add_partition_offset(topic, partition, Offset::Offset(self.at))?;
        self.first = true;
        reader.assign(&start)
    }

    /// Whether the first record read, at `offset`, skipped some at or after `from`: then the
    /// start moves earlier (at most a few thousand records back; a real gap, a record
    /// compacted or deleted, is accepted after that) and the reader must be assigned again.
    pub(super) fn too_late(&mut self, offset: i64) -> bool {
        let first = std::mem::replace(&mut self.first, false);
        if !first || offset <= self.from || self.at == 0 || self.step > 4096 {
            return false;
        }
        self.at = (self.from - self.step).max(0);
        self.step *= 4;
        true
    }
}

/// The settings of a consumer that reads ranges it assigns itself (group `<group_id>-<role>`,
/// never committing), reporting each partition's end.
pub(super) fn reader_config(k: &KafkaConfig, role: &str) -> ClientConfig {
    let mut c = client_config(k, &k.consumer);
    c.set("group.id", format!("{}-{role}", k.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    c
}

/// The reader's position in `partition`, if it has one.
pub(super) fn position(reader: &BaseConsumer, topic: &str, partition: i32) -> Option<i64> {
    let list = reader.position().ok()?;
    match list.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// Applies the messages of `partition` at offsets `from..until` with `f(offset, message)`; how
/// many were read.
fn read_range(
    shared: &Shared,
    reader: &BaseConsumer,
    partition: i32,
    from: i64,
    until: i64,
    mut f: impl FnMut(i64, &InMessage),
) -> anyhow::Result<u64> {
    if from >= until {
        return Ok(0);
    }
    let mut start = Start::new(from);
    start.assign(reader, shared.topic(), partition)?;
    let (mut read, mut next) = (0, from);
    let mut progress = Instant::now();
    while next < until {
        let polled = reader.poll(Duration::from_millis(500));
        if let Some(Ok(m)) = &polled
            && start.too_late(m.offset())
        {
            start.assign(reader, shared.topic(), partition)?;
            continue;
        }
        match polled {
            Some(Ok(m)) if m.offset() < next => {}
            // Past the last offset to re-read (offsets may have gaps): the live loop has it.
            Some(Ok(m)) if m.offset() >= until => break,
            Some(Ok(m)) => {
                if m.offset() > next {
                    tracing::error!(
                        partition,
                        from = next,
                        to = m.offset(),
                        "messages to re-read are gone (retention): their events are missing from the partition's state"
                    );
                }
                if let Some(message) = decode(&shared.metrics, m.payload()) {
                    f(m.offset(), &message);
                }
                read += 1;
                next = m.offset() + 1;
                progress = Instant::now();
            }
            // An end reported before `until` (seen against tansu right after an assign) is not
            // the end: `until` is at most the partition's end. Done only once the reader's
            // position is there (offsets may have gaps).
            Some(Err(KafkaError::PartitionEOF(_)))
                if position(reader, shared.topic(), partition).is_some_and(|p| p >= until) =>
            {
                break;
            }
            Some(Err(e)) => tracing::warn!(partition, error = %e, "read error; retrying"),
            None => {}
        }
        anyhow::ensure!(
            progress.elapsed() < STALL,
            "reading partition {partition} stalled at offset {next} (of {from}..{until})"
        );
    }
    Ok(read)
}
