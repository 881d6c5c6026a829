//! The Kafka transport's configuration. With `brokers` empty, `serve` joins collector and
//! engine in memory; `collect` and `engine` need brokers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[kafka]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`. Env: `TOUCHSTREAM_KAFKA_BROKERS`.
    pub brokers: String,
    /// Topic of accepted events (and the engine's clock ticks).
    pub topic: String,
    /// Topic of rejected events, each with its reason.
    pub dead_letter_topic: String,
    /// Topic of the engines' checkpoints: compacted, one partition per events partition
    /// (partition `p` holds the checkpoints of events partition `p`).
    pub state_topic: String,
    /// Whether `collect`, `engine` and `serve` create missing topics at start-up.
    pub create_topics: bool,
    /// Partitions of the events topic when touchstream creates it: the most engines that can
    /// share the work.
    pub partitions: i32,
    /// Replication factor of created topics.
    pub replication_factor: i32,
    /// Consumer group of the engines.
    pub group_id: String,
    /// The engine's static member id in the group (`group.instance.id`); empty (the default):
    /// none, the engine joins as a new member each start. With one, an engine restarted with
    /// the same id (after a crash, a deploy) gets its partitions back at once, without the
    /// group first waiting for the old member's session to expire (`loadtests/restart.sh`: 7.6
    /// s against 46.7 s); give each engine its own stable one (a StatefulSet's pod name), and
    /// keep the consumer's `session.timeout.ms` above 6 s (tansu takes that long to take a
    /// static member in). Env: `TOUCHSTREAM_KAFKA_INSTANCE_ID`.
    pub instance_id: String,
    /// How long the producer tries to deliver an event (`message.timeout.ms`) before the
    /// request gets 503. Must be shorter than `limits.request_timeout`.
    #[serde(with = "super::duration")]
    pub delivery_timeout: Duration,
    /// How far before a newly assigned partition's committed offset the engine reads back to
    /// rebuild the sessions open there when the partition has no checkpoint on the state topic
    /// (its first owner after an upgrade, or a lost state topic). Sessions that began earlier
    /// are rebuilt only in part.
    #[serde(with = "super::duration")]
    pub rebuild_lookback: Duration,
    /// librdkafka properties for the producer, passed through (such as `"linger.ms" = "10"`).
    pub producer: BTreeMap<String, String>,
    /// librdkafka properties for the consumer, passed through.
    pub consumer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            topic: "touchstream.events".into(),
            dead_letter_topic: "touchstream.dead-letter".into(),
            state_topic: "touchstream.state".into(),
            create_topics: true,
            partitions: 12,
            replication_factor: 1,
            group_id: "touchstream-engine".into(),
            instance_id: String::new(),
            delivery_timeout: Duration::from_secs(5),
            rebuild_lookback: Duration::from_secs(2 * 60 * 60),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Whether brokers are configured.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    /// The engine's static member id, if it has one.
    pub fn instance_id(&self) -> Option<&str> {
        Some(self.instance_id.trim()).filter(|id| !id.is_empty())
    }
}
