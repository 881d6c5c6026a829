//! The messages on the events topic: JSON tagged with their kind and schema version
//! (`"msg": "event/v1"` or `"msg": "tick/v1"`); a reader rejects versions it does not know. An
//! event's key is its site and visitor (its session when it has none), so everything about one
//! shopper, every session included, stays in one partition, in order.
//! Ticks are the engines' clock: an engine writes one to each partition it owns every
//! `engine.sweep_interval` and closes idle sessions only when it reads one, which makes a
//! partition's state a pure function of its log.

use crate::event::Event;
use serde::{Deserialize, Serialize};

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

/// The partitioning key of an event: its site and visitor, or its site and session when it has
/// no visitor, as before visitors were keys (a session's events must all lack a visitor, or all
/// carry the same one).
pub fn key(event: &Event) -> String {
    match &event.visitor {
        Some(visitor) => format!("{}/v/{visitor}", event.site),
        None => format!("{}/{}", event.site, event.session),
    }
}

impl InMessage {
    /// Reads a message's payload (a missing payload is unreadable too).
    pub fn decode(payload: Option<&[u8]>) -> serde_json::Result<Self> {
        serde_json::from_slice(payload.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, Device};

    #[test]
    fn messages_carry_kind_and_version() {
        let e = Event {
            received_at_ms: 6,
            channel: Channel::Email,
            device: Device::Tablet,
            value: Some(1.5),
            currency: Some("EUR".into()),
            ..Event::new("demo", "s", "1", "page_view", 5)
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
        assert!(InMessage::decode(Some(br#"{"msg":"event/v2","site":"demo"}"#)).is_err());
        assert!(InMessage::decode(None).is_err());
        assert_eq!(key(&e), "demo/s");
        let visitor = Event {
            visitor: Some("v-1".into()),
            ..e.clone()
        };
        assert_eq!(key(&visitor), "demo/v/v-1");
        // An old engine reads a message with a visitor: the field is optional.
        let json = serde_json::to_string(&OutMessage::Event(&visitor)).unwrap();
        assert!(json.contains(r#""visitor":"v-1""#), "{json}");
    }
}
