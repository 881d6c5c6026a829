//! `touchstream engine`: consume the events topic in a consumer group and run one [`Engine`]
//! per owned partition.
//!
//! The guarantee: what Prometheus scraped from an engine before it crashed, plus what it scrapes
//! from the engine that takes over, equals the true totals. Three rules give it:
//! - **Offsets are committed at scrape time.** `/metrics` takes the state lock, renders the
//!   metrics, and commits the offsets of exactly the messages those figures include, before
//!   answering (a failed commit fails the scrape). Counts made after the last scrape die with a
//!   crashed process; its successor re-reads those messages and counts them once.
//! - **Sessions close only on ticks read from the log.** Each engine writes a tick with its
//!   clock to every partition it owns every `engine.sweep_interval`; applying a tick closes the
//!   partition's idle sessions. A partition's state is therefore a function of its log alone.
//! - **A new owner rebuilds before it counts.** On the first message of a newly assigned
//!   partition (at the committed offset C), the engine re-reads the partition from
//!   `kafka.rebuild_lookback` before C up to C with counting off (sessions and gauges follow,
//!   counters do not), then counts from C on.
//!
//! On revoke, the engine commits what it has applied (it keeps running and its next scrape
//! exports those counts) and releases the partition's sessions without counting them. On
//! shutdown it commits nothing more: its unexported counts go with it and the next owner
//! counts them. When the revoke's commit fails (a coordinator unreachable for longer than the
//! group session, which Kafka answers by expelling the member), the partition is parked with
//! its state; if it comes back with its committed offset unmoved, the engine resumes where it
//! stopped. Only if another engine took it over meanwhile are the events counted here since
//! the last scrape counted again (at least once, logged as a warning).
//!
//! With `RUST_LOG=touchstream::trail=trace` the engine logs, under the target
//! `touchstream::trail`, every event it counts (`event partition= offset= session= id=
//! outcome=`), every offset it commits (`committed partition= offset=`) and every scrape it
//! answers (`figures exported`, logged under the state lock, after the commit): the figures of a
//! scrape include exactly the events logged before its line. The chaos tests (`tests/chaos.rs`)
//! check acknowledged events against it id by id.

use super::{InMessage, OutMessage, client_config};
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The log target of the engine's per-event trail (see the module doc).
const TRAIL: &str = "touchstream::trail";

/// One owned partition.
struct Part {
    engine: Engine,
    /// Offset of the next message to apply; `None` until the partition is rebuilt.
    next: Option<i64>,
    /// The partition's committed offset as this engine last set or found it.
    committed: Option<i64>,
}

impl Part {
    fn new(shared: &Shared) -> Self {
        Part {
            engine: Engine::with_open_count(
                &shared.config,
                shared.metrics.clone(),
                shared.open.clone(),
            ),
            next: None,
            committed: None,
        }
    }
}

/// Everything the apply loop, the rebalance callbacks and scrapes share.
struct State {
    parts: HashMap<i32, Part>,
    /// Partitions revoked before their offsets could be committed (the broker unreachable, or
    /// the group moved on without this member), with their sessions: what they counted since
    /// their last commit is in this process's counters. One that comes back with its committed
    /// offset unmoved (nobody consumed it meanwhile) resumes where it stopped instead of being
    /// rebuilt and counted again; the next assignment without it releases it.
    parked: HashMap<i32, Part>,
    shutting_down: bool,
}

struct Shared {
    state: Mutex<State>,
    config: Config,
    metrics: Arc<Metrics>,
    open: Arc<AtomicUsize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn topic(&self) -> &str {
        &self.config.kafka.topic
    }
}

/// Consumer callbacks: releasing revoked partitions and registering assigned ones.
struct Context(Arc<Shared>);

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let shared = &self.0;
        let mut state = shared.lock();
        let mut commit = TopicPartitionList::new();
        let mut revoked_parts = Vec::new();
        for elem in revoked.elements_for_topic(shared.topic()) {
            let Some(part) = state.parts.remove(&elem.partition()) else {
                continue;
            };
            if let (Some(next), false) = (part.next, state.shutting_down) {
                let _ = commit.add_partition_offset(
                    shared.topic(),
                    elem.partition(),
                    Offset::Offset(next),
                );
            }
            revoked_parts.push((elem.partition(), part));
        }
        let committed = commit.count() == 0 || commit_revoked(consumer, shared, &commit);
        for (partition, part) in revoked_parts {
            if !committed && part.next.is_some() {
                tracing::info!(partition, "partition revoked, parked uncommitted");
                state.parked.insert(partition, part);
            } else {
                let released = part.engine.release();
                tracing::info!(partition, released, "partition revoked");
            }
        }
        shared
            .metrics
            .kafka
            .assigned_partitions
            .set(state.parts.len() as i64);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        let shared = &self.0;
        let mut state = shared.lock();
        let mut kept = Vec::new();
        for elem in assigned.elements_for_topic(shared.topic()) {
            kept.push(elem.partition());
            state.parts.entry(elem.partition()).or_insert_with(|| {
                tracing::info!(partition = elem.partition(), "partition assigned");
                Part::new(shared)
            });
        }
        let gone: Vec<i32> = state
            .parked
            .keys()
            .filter(|p| !kept.contains(p))
            .copied()
            .collect();
        for partition in gone {
            if let Some(part) = state.parked.remove(&partition) {
                unpark_lost(shared, partition, part, "assigned to another engine");
            }
        }
        shared
            .metrics
            .kafka
            .assigned_partitions
            .set(state.parts.len() as i64);
    }
}

/// Commits the offsets of revoked partitions; false when that failed.
fn commit_revoked(
    consumer: &BaseConsumer<Context>,
    shared: &Shared,
    offsets: &TopicPartitionList,
) -> bool {
    let result = consumer.commit(offsets, CommitMode::Sync);
    shared.metrics.kafka.commit(result.is_ok());
    match result {
        Ok(()) => {
            trail_commit(offsets);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot commit offsets of revoked partitions; parking them");
            false
        }
    }
}

type GroupConsumer = StreamConsumer<Context>;

/// The Kafka-fed engine of one process.
pub struct KafkaEngine {
    shared: Arc<Shared>,
    consumer: Arc<GroupConsumer>,
    ticker: FutureProducer,
}

/// Renders `/metrics` and commits the offsets behind the figures (see the module doc).
pub struct ScrapeCommit {
    shared: Arc<Shared>,
    consumer: Arc<GroupConsumer>,
}

impl KafkaEngine {
    /// A consumer in `kafka.group_id`, not yet subscribed.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let k = &config.kafka;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                parts: HashMap::new(),
                parked: HashMap::new(),
                shutting_down: false,
            }),
            config: config.clone(),
            metrics,
            open: Arc::default(),
        });
        let mut c = client_config(k, &Default::default());
        c.set("group.id", &k.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .set("partition.assignment.strategy", "range,roundrobin");
        for (key, v) in &k.consumer {
            c.set(key, v);
        }
        let consumer: GroupConsumer = c.create_with_context(Context(shared.clone()))?;
        let ticker = client_config(k, &k.producer)
            .set("linger.ms", "0")
            .create()?;
        Ok(Self {
            shared,
            consumer: Arc::new(consumer),
            ticker,
        })
    }

    /// The `/metrics` renderer for this engine.
    pub fn scrape_commit(&self) -> ScrapeCommit {
        ScrapeCommit {
            shared: self.shared.clone(),
            consumer: self.consumer.clone(),
        }
    }

    /// Consumes until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        self.consumer.subscribe(&[self.shared.topic()])?;
        let mut tick = tokio::time::interval(self.shared.config.engine.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = self.consumer.recv() => match message {
                    Ok(m) => self.handle(&m).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = tick.tick() => self.tick().await,
                _ = shutdown.wait() => break,
            }
        }
        self.shared.lock().shutting_down = true;
        self.consumer.unsubscribe();
        tracing::info!("engine left the consumer group");
        Ok(())
    }

    async fn handle(&self, m: &BorrowedMessage<'_>) {
        let (partition, offset) = (m.partition(), m.offset());
        let rebuilt = match self.shared.lock().parts.get(&partition) {
            None => return,
            Some(part) => part.next.is_some(),
        };
        if !rebuilt && !self.unpark(partition, offset) {
            let from = m.timestamp().to_millis().unwrap_or_else(crate::now_ms);
            self.rebuild(partition, offset, from).await;
        }
        let message = decode(&self.shared.metrics, m.payload());
        let mut state = self.shared.lock();
        let Some(part) = state.parts.get_mut(&partition) else {
            return;
        };
        if part.next.is_some_and(|next| offset < next) {
            return;
        }
        match &message {
            Some(InMessage::Event(e)) => {
                let outcome = part.engine.apply(e);
                tracing::trace!(
                    target: TRAIL,
                    partition,
                    offset,
                    session = %e.session,
                    id = %e.id,
                    outcome = %outcome.as_str(),
                    "event"
                );
                let lag = (crate::now_ms() - e.received_at_ms).max(0) as f64 / 1000.0;
                self.shared.metrics.funnel.lag.observe(lag);
            }
            Some(tick) => apply(&part.engine, tick),
            None => {}
        }
        part.next = Some(offset + 1);
    }

    /// Resumes a parked `partition` whose first message after reassignment is at `offset`:
    /// when that is the offset this engine last knew committed, nobody consumed the partition
    /// meanwhile, and its state (with counts past the commit already made) is still right.
    fn unpark(&self, partition: i32, offset: i64) -> bool {
        let mut state = self.shared.lock();
        let Some(parked) = state.parked.remove(&partition) else {
            return false;
        };
        if parked.committed != Some(offset) {
            unpark_lost(
                &self.shared,
                partition,
                parked,
                "consumed by another engine meanwhile",
            );
            return false;
        }
        tracing::info!(
            partition,
            resume_at = parked.next,
            "partition came back unconsumed; resuming its state"
        );
        self.shared.metrics.kafka.parked("resumed");
        if let Some(fresh) = state.parts.insert(partition, parked) {
            fresh.engine.release();
        }
        true
    }

    /// Re-reads `partition` from `rebuild_lookback` before `until_time` up to offset `until`
    /// with counting off, then marks it ready to count from `until`.
    async fn rebuild(&self, partition: i32, until: i64, until_time: i64) {
        let shared = self.shared.clone();
        let start = Instant::now();
        let result =
            tokio::task::spawn_blocking(move || read_back(&shared, partition, until, until_time))
                .await;
        let read = match result {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::error!(partition, error = %e, "rebuild failed; sessions open before the committed offset are missing");
                0
            }
            Err(e) => {
                tracing::error!(partition, error = %e, "rebuild task failed");
                0
            }
        };
        let mut state = self.shared.lock();
        if let Some(part) = state.parts.get_mut(&partition) {
            part.engine.set_counting(true);
            part.next.get_or_insert(until);
            part.committed.get_or_insert(until);
        }
        let m = &self.shared.metrics.kafka;
        m.rebuild_seconds.observe(start.elapsed().as_secs_f64());
        m.rebuild_messages.inc_by(read);
        tracing::info!(
            partition,
            from_offset = until,
            read,
            seconds = start.elapsed().as_secs_f64(),
            "partition rebuilt"
        );
    }

    /// Writes a clock tick to every owned partition and refreshes consumer lag.
    async fn tick(&self) {
        let now = crate::now_ms();
        let payload =
            serde_json::to_vec(&OutMessage::Tick { at_ms: now }).expect("ticks serialise");
        let owned: Vec<(i32, Option<i64>)> = self
            .shared
            .lock()
            .parts
            .iter()
            .map(|(p, part)| (*p, part.next))
            .collect();
        for (partition, _) in &owned {
            let record = FutureRecord::<(), _>::to(self.shared.topic())
                .partition(*partition)
                .payload(&payload);
            if let Err((e, _)) = self.ticker.send_result(record) {
                tracing::warn!(partition, error = %e, "cannot write a clock tick");
            }
        }
        // Through the tick producer's connection: a broker may serve one connection's requests
        // in order, and the consumer's is busy with a long-polling fetch.
        let producer = self.ticker.clone();
        let topic = self.shared.topic().to_string();
        let lags = tokio::task::spawn_blocking(move || {
            owned
                .into_iter()
                .filter_map(|(p, next)| {
                    let (_, high) = producer
                        .client()
                        .fetch_watermarks(&topic, p, Duration::from_millis(500))
                        .ok()?;
                    Some((p, high - next?))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (partition, lag) in lags {
            let labels = crate::metrics::labels([("partition", &partition.to_string())]);
            self.shared
                .metrics
                .kafka
                .consumer_lag
                .get_or_create(&labels)
                .set(lag.max(0));
        }
    }
}

fn decode(metrics: &Metrics, payload: Option<&[u8]>) -> Option<InMessage> {
    match serde_json::from_slice(payload.unwrap_or_default()) {
        Ok(m) => Some(m),
        Err(e) => {
            metrics.kafka.unreadable.inc();
            tracing::warn!(error = %e, "skipping a message of unknown schema");
            None
        }
    }
}

/// Applies one message to a partition's engine: an event, or a tick that closes idle sessions.
fn apply(engine: &Engine, message: &InMessage) {
    match message {
        InMessage::Event(e) => _ = engine.apply(e),
        InMessage::Tick { at_ms } => _ = engine.sweep(*at_ms),
    }
}

/// Releases a parked partition another engine took over: the events this engine counted past
/// its last commit are counted again by the new owner.
fn unpark_lost(shared: &Shared, partition: i32, part: Part, why: &str) {
    let uncommitted = part.next.unwrap_or(0) - part.committed.unwrap_or(0);
    part.engine.release();
    shared.metrics.kafka.parked("handed_over");
    tracing::warn!(
        partition,
        uncommitted,
        "a partition revoked before its offsets were committed was {why}: the events this engine counted since its last scrape (up to {uncommitted} messages) are counted again"
    );
}

/// Logs committed offsets on the trail.
fn trail_commit(offsets: &TopicPartitionList) {
    for elem in offsets.elements() {
        if let Offset::Offset(offset) = elem.offset() {
            tracing::trace!(target: TRAIL, partition = elem.partition(), offset, "committed");
        }
    }
}

/// The blocking part of a rebuild; returns the number of messages re-applied.
fn read_back(
    shared: &Shared,
    partition: i32,
    until: i64,
    until_time: i64,
) -> Result<u64, KafkaError> {
    let k = &shared.config.kafka;
    let topic = shared.topic();
    let reader: BaseConsumer = client_config(k, &k.consumer)
        .set("group.id", format!("{}-rebuild", k.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let since = until_time - k.rebuild_lookback.as_millis() as i64;
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition_offset(topic, partition, Offset::Offset(since))?;
    let found = reader.offsets_for_times(wanted, Duration::from_secs(10))?;
    let from = match found.find_partition(topic, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => until,
    };
    if from >= until {
        return Ok(0);
    }
    let mut start = TopicPartitionList::new();
    start.add_partition_offset(topic, partition, Offset::Offset(from))?;
    reader.assign(&start)?;
    if let Some(part) = shared.lock().parts.get(&partition) {
        part.engine.set_counting(false);
    }
    let mut read = 0;
    let mut idle = 0;
    while idle < 30 {
        match reader.poll(Duration::from_secs(1)) {
            Some(Ok(m)) if m.offset() < until => {
                idle = 0;
                let message = decode(&shared.metrics, m.payload());
                let state = shared.lock();
                let Some(part) = state.parts.get(&partition) else {
                    return Ok(read);
                };
                if let Some(message) = &message {
                    apply(&part.engine, message);
                }
                read += 1;
                if m.offset() + 1 >= until {
                    break;
                }
            }
            Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => {
                tracing::warn!(partition, error = %e, "rebuild read error; retrying");
                idle += 1;
            }
            None => idle += 1,
        }
    }
    Ok(read)
}

#[async_trait::async_trait]
impl crate::admin::Exposition for ScrapeCommit {
    async fn render(&self) -> Result<String, String> {
        let shared = self.shared.clone();
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = shared.lock();
            let text = shared.metrics.encode();
            let mut offsets = TopicPartitionList::new();
            for (p, part) in &state.parts {
                if let Some(next) = part.next {
                    let _ = offsets.add_partition_offset(shared.topic(), *p, Offset::Offset(next));
                }
            }
            if offsets.count() == 0 {
                tracing::trace!(target: TRAIL, "figures exported");
                return Ok(text);
            }
            let result = consumer.commit(&offsets, CommitMode::Sync);
            shared.metrics.kafka.commit(result.is_ok());
            if result.is_ok() {
                for part in state.parts.values_mut() {
                    part.committed = part.next.or(part.committed);
                }
                trail_commit(&offsets);
                tracing::trace!(target: TRAIL, "figures exported");
            }
            drop(state);
            result
                .map(|_| text)
                .map_err(|e| format!("cannot commit the offsets behind these figures: {e}"))
        })
        .await
        .map_err(|e| format!("scrape task failed: {e}"))?
    }
}
