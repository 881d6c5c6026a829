//! The Kafka driver (`touchstream engine`, and `serve` with brokers): consume the events topic
//! in a consumer group and run one [`Engine`], with metrics of its own, per owned partition.
//!
//! The guarantee: every partition's figures are a function of its offset alone, whoever owns it,
//! however often and by whom `/metrics` is read. Three rules give it:
//! - **A partition's state is checkpointed with its offset.** Every `state.checkpoint_interval`,
//!   and when the partition is revoked (a rebalance, a shutdown), its engine's state and its
//!   figures are written to the state topic with the offset of the next message they do not
//!   include (`store`); the group's committed offset follows, as a hint for lag tools.
//! - **Sessions close only on ticks read from the log.** Each engine writes a tick with its
//!   clock to every partition it owns every `engine.sweep_interval`; applying a tick closes the
//!   partition's idle sessions. A partition's state is therefore a function of its log alone.
//! - **A new owner restores before it counts.** When a partition is assigned, the engine
//!   starts loading its newest checkpoint (sessions of any age, dedup memory, figures; the
//!   partitions of one assignment load together, as many at a time as there are cores, 4 to
//!   8); on the partition's first message it re-applies the messages after the checkpoint's
//!   offset, counting, into the partition's own metrics (`restore`). Its series are exported,
//!   labelled `partition`, once it has caught up with the partition's end as it was then, so
//!   an engine never exports a partition's counter below what its previous owner exported
//!   (`metrics::partitioned`).
//!   Without a checkpoint (a first start, an upgrade) it rebuilds sessions from
//!   `kafka.rebuild_lookback` before the committed offset into the `Silent` recorder and
//!   counts from the committed offset.
//!
//! Scrapes commit nothing and change nothing: a second Prometheus, a curl or a timed-out scrape
//! are harmless. Summed over engines with `max by (partition)` first (the recording rules in
//! `deploy/prometheus/rules.yml`), the figures are exact and never decrease when partitions
//! move; a crash costs only re-applying the messages since the last checkpoint.
//!
//! With `RUST_LOG=touchstream::trail=trace` the engine logs, under the target
//! `touchstream::trail`, every event it counts (`event partition= offset= session= id=
//! outcome=`), every checkpoint (`checkpointed partition= next=`) and every restore
//! (`restored partition= next=`).
//!
//! The files, one concern each: `rebalance` (the consumer's callbacks), `restore` (a new
//! owner's restore or rebuild), `range` (re-reading a range of a partition), `checkpoint`
//! (writing a partition's state), `store` (the state topic's format), `clock` (ticks and lag),
//! `scrape` (`/metrics`) and `trail` (the audit log).

mod checkpoint;
mod clock;
mod range;
mod rebalance;
mod restore;
mod scrape;
mod store;
mod trail;

pub use scrape::Scrape;

use super::{Engine, Recorder, Silent};
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
use store::StateTopic;

/// One owned partition.
struct Part {
    engine: Engine,
    /// The partition's figures: what its engine counted since the partition's first message.
    metrics: Arc<Metrics>,
    /// Offset of the next message to apply; `None` until the partition is restored (and, in a
    /// part just loaded, when it had no checkpoint: it is to be rebuilt).
    next: Option<i64>,
    /// The partition's end when its load began (after its assignment): its series are exported
    /// once `next` reaches it (the previous owner, whose revoke came first, can have exported
    /// no later offset).
    shown_from: i64,
    /// The offset its last checkpoint covers up to, and the slot it went to.
    checkpointed: Option<i64>,
    slot: u8,
    /// Its checkpoint, loading since it was assigned; taken by the restore.
    loading: Option<restore::Loading>,
}

impl Part {
    /// A partition with empty state and figures.
    fn new(shared: &Shared) -> Self {
        let metrics = Arc::new(Metrics::new(&shared.config));
        Part {
            engine: Engine::with_bounds(&shared.config, metrics.clone(), shared.bounds.clone()),
            metrics,
            next: None,
            shown_from: i64::MAX,
            checkpointed: None,
            slot: 1,
            loading: None,
        }
    }

    /// Whether its series are exported.
    fn shown(&self) -> bool {
        self.next.is_some_and(|next| next >= self.shown_from)
    }
}

/// Everything the apply loop, the rebalance callbacks and scrapes share.
struct State {
    parts: HashMap<i32, Part>,
    /// Loads of revoked partitions, giving back their share of the bounds: a new load of the
    /// partition waits for its own.
    discarded: HashMap<i32, restore::Discarded>,
}

struct Shared {
    state: Mutex<State>,
    config: Config,
    /// The process's own metrics (the consumer's, lag, the collector's in `serve`).
    metrics: Arc<Metrics>,
    /// The store's bounds, shared by the partitions' engines.
    bounds: Arc<crate::engine::Bounds>,
    store: StateTopic,
    /// The runtime the engine was made in: rebalance callbacks start loads on it.
    runtime: tokio::runtime::Handle,
    /// Checkpoint loads that may run at once: the cores, 4 to 8.
    loads: tokio::sync::Semaphore,
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
    /// Checkpoint rounds so far (`checkpoint`).
    rounds: std::sync::atomic::AtomicUsize,
}

impl KafkaEngine {
    /// A consumer in `kafka.group_id`, not yet subscribed; a static member of it when
    /// `kafka.instance_id` names one.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let k = &config.kafka;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                parts: HashMap::new(),
                discarded: HashMap::new(),
            }),
            config: config.clone(),
            metrics,
            bounds: Arc::new(crate::engine::Bounds::new(&config.engine)),
            store: StateTopic::new(k)?,
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| anyhow::anyhow!("the Kafka engine needs a Tokio runtime"))?,
            loads: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(4, |n| n.get().clamp(4, 8)),
            ),
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
            .set("partition.assignment.strategy", "cooperative-sticky");
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
            rounds: Default::default(),
        })
    }

    /// The `/metrics` renderer for this engine.
    pub fn scrape(&self) -> Scrape {
        Scrape::new(self.shared.clone())
    }

    /// Consumes until `shutdown`; then checkpoints every owned partition as it leaves the group.
    pub async fn run(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        self.shared.store.check(self.shared.topic())?;
        self.consumer.subscribe(&[self.shared.topic()])?;
        let mut tick = tokio::time::interval(self.shared.config.engine.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = self.shared.config.state.checkpoint_interval;
        let mut checkpoints = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = self.consumer.recv() => match message {
                    Ok(m) => self.handle(&m).await?,
                    // Fenced (another static member took this id) or otherwise unusable: stop.
                    Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_)) => {
                        return Err(anyhow::Error::from(e).context("the consumer cannot go on"));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = tick.tick() => self.tick().await,
                _ = checkpoints.tick() => self.checkpoint_all().await,
                _ = shutdown.wait() => break,
            }
        }
        // The last checkpoints, so the next owners replay nothing; leaving the group then
        // revokes the partitions (`rebalance`: checkpointed again only if something moved).
        self.checkpoint_all().await;
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.unsubscribe()).await?;
        tracing::info!("engine left the consumer group");
        Ok(())
    }

    /// Applies one message of an owned partition, restoring the partition first if it is new
    /// here; an error (its state unreadable) stops the engine.
    async fn handle(&self, m: &BorrowedMessage<'_>) -> anyhow::Result<()> {
        let (partition, offset) = (m.partition(), m.offset());
        let restored = match self.shared.lock().parts.get(&partition) {
            None => return Ok(()),
            Some(part) => part.next.is_some(),
        };
        if !restored {
            let from = m.timestamp().to_millis().unwrap_or_else(crate::now_ms);
            self.restore(partition, offset, from).await?;
        }
        let message = decode(&self.shared.metrics, m.payload());
        let mut state = self.shared.lock();
        let Some(part) = state.parts.get_mut(&partition) else {
            return Ok(());
        };
        if part.next.is_none_or(|next| offset < next) {
            return Ok(());
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
        Ok(())
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

/// Applies one message without counting it (a rebuild without a checkpoint).
fn apply_silently(engine: &Engine, message: &InMessage) {
    apply(engine, message, &Silent);
}
