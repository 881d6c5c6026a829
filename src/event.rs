//! The enriched touchpoint event: what the collector hands to the transport and the engine
//! consumes. It is also the transport's message schema, so every field is serialisable and
//! `SCHEMA_VERSION` changes whenever a field changes meaning.
//!
//! Invariants: `channel` and `device` are closed enums (never client text), `event_time_ms` never
//! lies after `received_at_ms`, and `value` is finite and non-negative when present.

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
}

macro_rules! closed_label {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in label order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The metric label value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Position in [`Self::ALL`], for indexing pre-resolved metric handles.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
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
