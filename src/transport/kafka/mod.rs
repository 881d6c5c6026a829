//! Kafka between collectors and engines: the clients' shared settings, the topics, the message
//! codec and the collector's producer. The engine's consumer lives with the engine
//! (`crate::engine::kafka`).

mod codec;
mod sink;

pub use codec::InMessage;
pub(crate) use codec::{OutMessage, key};
pub use sink::KafkaSink;

use crate::config::{Config, KafkaConfig};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use std::time::Duration;

/// Client settings shared by every client: brokers, then the pass-through properties.
pub(crate) fn client_config(
    kafka: &KafkaConfig,
    extra: &std::collections::BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", kafka.brokers.trim());
    c.set("client.id", "touchstream");
    for (k, v) in extra {
        c.set(k, v);
    }
    c
}

/// Creates the events, dead-letter and state topics when missing (when `kafka.create_topics`);
/// the state topic compacted, with the events topic's partitions.
pub(crate) async fn create_topics(config: &Config) -> anyhow::Result<()> {
    let k = &config.kafka;
    if !k.create_topics {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(k, &k.producer).create()?;
    let replication = TopicReplication::Fixed(k.replication_factor);
    let topics = [
        NewTopic::new(&k.topic, k.partitions, replication),
        NewTopic::new(
            &k.dead_letter_topic,
            k.partitions.min(3),
            TopicReplication::Fixed(k.replication_factor),
        ),
        NewTopic::new(
            &k.state_topic,
            k.partitions,
            TopicReplication::Fixed(k.replication_factor),
        )
        .set("cleanup.policy", "compact"),
    ];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}
