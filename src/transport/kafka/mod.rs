//! Kafka between collectors and engines.
//!
//! Messages are JSON tagged with their kind and schema version (`"msg": "event/v1"` or
//! `"msg": "tick/v1"`); a reader rejects versions it does not know. An event's key is its site
//! and session, so a session's events stay in one partition, in order. Ticks are the engines'
//! clock: an engine writes one to each partition it owns every `engine.sweep_interval`, and
//! closes idle sessions only when it reads one, which makes a partition's state a pure function
//! of its log (see [`engine`]).

mod engine;
mod sink;

pub use engine::{KafkaEngine, ScrapeCommit};
pub use sink::KafkaSink;

use crate::config::{Config, KafkaConfig};
use crate::event::Event;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A message on the events topic, as written.
#[derive(Debug, Serialize)]
#[serde(tag = "msg")]
pub enum OutMessage<'a> {
    #[serde(rename = "event/v1")]
    Event(&'a Event),
    #[serde(rename = "tick/v1")]
    Tick { at_ms: i64 },
}

/// A message on the events topic, as read.
#[derive(Debug, Deserialize)]
#[serde(tag = "msg")]
pub enum InMessage {
    #[serde(rename = "event/v1")]
    Event(Event),
    #[serde(rename = "tick/v1")]
    Tick { at_ms: i64 },
}

/// A rejected event on its way to the dead-letter topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub site: String,
    pub reason: String,
    pub message: String,
    /// The event exactly as sent.
    pub event: Box<serde_json::value::RawValue>,
    pub received_at_ms: i64,
}

/// The partitioning key of an event: its site and session.
pub fn key(event: &Event) -> String {
    format!("{}/{}", event.site, event.session)
}

/// Client settings shared by every client: brokers, then the pass-through properties.
pub fn client_config(
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

/// Creates the events and dead-letter topics when missing (when `kafka.create_topics`).
pub async fn create_topics(config: &Config) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, Device};

    #[test]
    fn messages_carry_kind_and_version() {
        let e = Event {
            site: "demo".into(),
            id: "1".into(),
            kind: "page_view".into(),
            session: "s".into(),
            event_time_ms: 5,
            received_at_ms: 6,
            channel: Channel::Email,
            device: Device::Tablet,
            value: Some(1.5),
            currency: Some("EUR".into()),
            order_id: None,
        };
        let json = serde_json::to_string(&OutMessage::Event(&e)).unwrap();
        assert!(
            json.starts_with(r#"{"msg":"event/v1","site":"demo""#),
            "{json}"
        );
        match serde_json::from_str::<InMessage>(&json).unwrap() {
            InMessage::Event(back) => assert_eq!(back, e),
            other => panic!("{other:?}"),
        }
        let tick = serde_json::to_string(&OutMessage::Tick { at_ms: 9 }).unwrap();
        assert!(matches!(
            serde_json::from_str(&tick).unwrap(),
            InMessage::Tick { at_ms: 9 }
        ));
        assert!(serde_json::from_str::<InMessage>(r#"{"msg":"event/v2","site":"demo"}"#).is_err());
        assert_eq!(key(&e), "demo/s");
    }
}
