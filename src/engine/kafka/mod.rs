//! The Kafka driver (`touchstream engine`, and `serve` with brokers): consume the events topic
//! in a consumer group and run one [`Engine`] per owned partition.
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
//!   `kafka.rebuild_lookback` before C up to C into the `Silent` recorder
//!   (sessions and gauges follow, counters do not), then counts from C on.
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
//!
//! The files, one concern each: `rebalance` (the consumer's callbacks), `park` (revoked
//! partitions kept for their return), `rebuild` (a new owner's read-back), `clock` (ticks and
//! lag), `scrape` (the commit at scrape time) and `trail` (the audit log).

mod clock;
mod park;
mod rebalance;
mod rebuild;
mod scrape;
mod trail;

pub use scrape::ScrapeCommit;

use super::{Engine, Recorder};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::transport::kafka::{InMessage, client_config};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rebalance::Context;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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
            engine: Engine::with_bounds(
                &shared.config,
                shared.metrics.clone(),
                shared.bounds.clone(),
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
    /// The store's bounds, shared by the partitions' engines.
    bounds: Arc<crate::engine::Bounds>,
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

type GroupConsumer = StreamConsumer<Context>;

/// The Kafka-fed engine of one process.
pub struct KafkaEngine {
    shared: Arc<Shared>,
    consumer: Arc<GroupConsumer>,
    ticker: FutureProducer,
}

impl KafkaEngine {
    /// A consumer in `kafka.group_id`, not yet subscribed; a static member of it when
    /// `kafka.instance_id` names one.
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
            bounds: Arc::new(crate::engine::Bounds::new(&config.engine)),
        });
        let mut c = client_config(k, &Default::default());
        if let Some(instance) = k.instance_id() {
            tracing::info!(group = %k.group_id, instance, "joining the engines' group as a static member");
            c.set("group.instance.id", instance);
        }
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
        ScrapeCommit::new(self.shared.clone(), self.consumer.clone())
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
                trail::event(partition, offset, e, outcome);
                self.shared
                    .metrics
                    .engine
                    .observe_lag(e.received_at_ms, crate::now_ms());
            }
            Some(tick) => apply(&part.engine, tick, &part.engine.counting()),
            None => {}
        }
        part.next = Some(offset + 1);
    }
}

/// Reads a message; one of an unknown schema is counted and skipped.
fn decode(metrics: &Metrics, payload: Option<&[u8]>) -> Option<InMessage> {
    match InMessage::decode(payload) {
        Ok(m) => Some(m),
        Err(e) => {
            metrics.kafka.unreadable.inc();
            tracing::warn!(error = %e, "skipping a message of unknown schema");
            None
        }
    }
}

/// Applies one message to a partition's engine: an event, or a tick that closes idle sessions.
fn apply(engine: &Engine, message: &InMessage, rec: &impl Recorder) {
    match message {
        InMessage::Event(e) => _ = engine.apply_into(e, rec),
        InMessage::Tick { at_ms } => _ = engine.sweep_into(*at_ms, rec),
    }
}
