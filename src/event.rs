//! The enriched touchpoint event: what the collector hands to the transport and the engine
//! consumes. It is also the transport's message schema, so every field is serialisable and
//! `SCHEMA_VERSION` changes whenever a field changes meaning.
//!
//! Invariants: `channel` and `device` are closed enums (never client text), `event_time_ms` never
//! lies after `received_at_ms`, and `value` is finite and non-negative when present.
//!
//! Beside it live the closed label sets every later module shares: channel and device, and why
//! an event was rejected or kept out of the funnel. They depend on nothing else in the crate,
//! so the collector, the engine and the metrics all read them from here.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Version of the serialised [`Event`]; readers reject messages of a version they do not know.
pub const SCHEMA_VERSION: u16 = 1;

/// One accepted touchpoint, enriched by the collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Configured site id (never a write key or other alias).
    pub site: Arc<str>,
    /// Client-generated event id, the dedup key within a session.
    pub id: String,
    /// Touchpoint type as sent (`add_to_cart`, or an alias such as `Product Added`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Client session id.
    pub session: String,
    /// Client visitor id (the snippet's first-party id of the browser), if sent: the Kafka
    /// partitioning key, so everything about one shopper meets in one partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<String>,
    /// Event time in ms since the epoch, corrected for client clock skew.
    pub event_time_ms: i64,
    /// Server clock when the collector received the batch, ms since the epoch.
    pub received_at_ms: i64,
    /// Acquisition channel derived from this event's utm and referrer.
    pub channel: Channel,
    /// Device class derived from the request's user agent.
    pub device: Device,
    /// Monetary value in currency units: `props.value`, else the sum of item price x quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// ISO 4217 code as sent (upper-cased); the engine maps unknown codes to `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Order id of a purchase, used to count an order once per session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Keyed hash of the client's address (its /64 for IPv6), for the engine's new-session
    /// rate per client when its store is under pressure; 0 when exempt (a trusted proxy without
    /// a client address header, a signed server-side request). Never the address itself.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub origin: u64,
}

impl Event {
    /// A touchpoint of `site` received when it happened, from a direct visit on a desktop, with
    /// no value, currency, order or client origin: the base that tests, benchmarks and tools
    /// fill in with `Event { value: Some(9.5), ..Event::new(...) }`.
    pub fn new(
        site: &str,
        session: impl Into<String>,
        id: impl Into<String>,
        kind: impl Into<String>,
        at_ms: i64,
    ) -> Self {
        Event {
            site: site.into(),
            id: id.into(),
            kind: kind.into(),
            session: session.into(),
            visitor: None,
            event_time_ms: at_ms,
            received_at_ms: at_ms,
            channel: Channel::Direct,
            device: Device::Desktop,
            value: None,
            currency: None,
            order_id: None,
            origin: 0,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

closed_label!(
    /// Acquisition channel of a session, from its landing event's utm and referrer.
    Channel {
        Direct => "direct",
        OrganicSearch => "organic_search",
        PaidSearch => "paid_search",
        Social => "social",
        Email => "email",
        Referral => "referral",
        Affiliate => "affiliate",
        Display => "display",
        Other => "other",
    }
);

closed_label!(
    /// Device class from the user agent.
    Device {
        Desktop => "desktop",
        Mobile => "mobile",
        Tablet => "tablet",
    }
);

closed_label!(
    /// Why an event was not accepted (the `reason` label of `touchstream_events_rejected_total`).
    RejectReason {
        NotAnObject => "not_an_object",
        MissingField => "missing_field",
        InvalidId => "invalid_id",
        InvalidType => "invalid_type",
        InvalidTs => "invalid_ts",
        InvalidSession => "invalid_session",
        InvalidProps => "invalid_props",
        InvalidField => "invalid_field",
        TooManyItems => "too_many_items",
        EventTooLarge => "event_too_large",
        /// The whole batch was refused because the transport could not take it (503).
        Unavailable => "unavailable",
        /// The whole batch was refused because its site sent more than its rate limit (429).
        RateLimited => "rate_limited",
    }
);

closed_label!(
    /// Why an accepted event was kept out of the funnel (the `reason` label of
    /// `touchstream_events_filtered_total`): a bot's user agent or a missing consent (the
    /// collector); an id already seen in its session, a session at its event limit, a long
    /// session when the stored ids are spent (or its client's share of them), or a new session
    /// over its client's rate while the store is under pressure (the engine).
    FilterReason {
        Bot => "bot",
        Duplicate => "duplicate",
        Consent => "consent",
        SessionLimit => "session_limit",
        SessionMemory => "session_memory",
        SessionRate => "session_rate",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_unique_and_indexed_in_order() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            text: fn(T) -> &'static str,
            index: fn(T) -> usize,
        ) {
            let mut names: Vec<_> = all.iter().map(|v| text(*v)).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), all.len());
            for (i, v) in all.iter().enumerate() {
                assert_eq!(index(*v), i, "{v:?}");
            }
        }
        check(Channel::ALL, Channel::as_str, Channel::index);
        check(Device::ALL, Device::as_str, Device::index);
        check(RejectReason::ALL, RejectReason::as_str, RejectReason::index);
        check(FilterReason::ALL, FilterReason::as_str, FilterReason::index);
    }
}
