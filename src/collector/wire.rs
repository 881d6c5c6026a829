//! The wire format of `POST /v1/events` (CONTRACT.md section 1) and per-event validation.
//!
//! A batch is parsed in two steps: the envelope with each event left as raw JSON, then each
//! event on its own, so one bad event is rejected with its reason while the rest are taken.
//! Every field is optional at the serde level; required fields are checked afterwards so that
//! a missing field and a wrong one get distinct, actionable reasons.

use super::diagnose::diagnose;
use super::mask::{holds_personal_data, mask};
use crate::event::RejectReason;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The envelope of one request.
#[derive(Debug, Deserialize)]
pub struct WireBatch<'a> {
    /// Site id (or, later, a write key).
    pub site: String,
    /// Client clock when the batch was sent, ms since the epoch.
    #[serde(default)]
    pub sent_at: Option<i64>,
    #[serde(borrow)]
    pub events: Vec<&'a RawValue>,
}

/// One event as sent. Unknown fields (and unknown `props`) are ignored. Fields that are only
/// inspected borrow from the body instead of being copied.
#[derive(Debug, Deserialize)]
pub struct WireEvent<'a> {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub ts: Option<i64>,
    pub session: Option<String>,
    #[serde(borrow)]
    pub visitor: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub referrer: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub utm: Option<Utm<'a>>,
    pub props: Option<Props>,
    pub consent: Option<bool>,
}

/// Campaign parameters of the landing page.
#[derive(Debug, Default, Deserialize)]
pub struct Utm<'a> {
    #[serde(borrow)]
    pub source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub medium: Option<Cow<'a, str>>,
    /// Not used for the channel; read only so that a campaign that is not a string is
    /// rejected like any other malformed field.
    #[serde(borrow)]
    #[allow(dead_code)]
    pub campaign: Option<Cow<'a, str>>,
}

/// The properties the engine reads.
#[derive(Debug, Deserialize)]
pub struct Props {
    pub value: Option<f64>,
    pub currency: Option<String>,
    pub order_id: Option<OrderId>,
    pub items: Option<Vec<Item>>,
}

/// An order id, as a string or a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OrderId {
    Text(String),
    Number(serde_json::Number),
}

/// A line item.
#[derive(Debug, Deserialize)]
pub struct Item {
    pub price: Option<f64>,
    pub quantity: Option<f64>,
}

/// A rejected event's reason and a message a person can act on. The message names the field at
/// fault and what it must be; it goes to the client, the dead-letter topic and replay's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub message: String,
}

impl Rejection {
    /// A rejection. Messages quote no client value; should one ever do, its personal data is
    /// masked here, where every message is made.
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match mask(&message) {
            Cow::Borrowed(_) => message,
            Cow::Owned(masked) => masked,
        };
        Rejection { reason, message }
    }
}

/// Largest accepted `ts`: year 3000, to catch seconds-or-microseconds mix-ups.
const MAX_TS: i64 = 32_503_680_000_000;
/// Largest accepted money amount: 1e18 micro-units, so one fits an `i64`; the sums of many
/// saturate or stay exact (see `metrics::money`).
const MAX_AMOUNT: f64 = 1e12;

/// A decoded, checked event with the fields the engine needs.
#[derive(Debug)]
pub struct ValidEvent<'a> {
    pub id: String,
    pub kind: String,
    pub ts: i64,
    pub session: String,
    pub visitor: Option<String>,
    pub url: Option<Cow<'a, str>>,
    pub referrer: Option<Cow<'a, str>>,
    pub utm: Utm<'a>,
    pub value: Option<f64>,
    pub currency: Option<String>,
    pub order_id: Option<String>,
    pub consent: Option<bool>,
}

/// Decodes and validates one raw event.
pub fn decode_event<'a>(
    raw: &'a RawValue,
    max_event_bytes: usize,
    max_items: usize,
) -> Result<ValidEvent<'a>, Rejection> {
    let text = raw.get();
    if text.len() > max_event_bytes {
        return Err(Rejection::new(
            RejectReason::EventTooLarge,
            format!(
                "event is {} bytes; the limit is {max_event_bytes}",
                text.len()
            ),
        ));
    }
    if !text.starts_with('{') {
        return Err(Rejection::new(
            RejectReason::NotAnObject,
            "each event must be a JSON object",
        ));
    }
    // Fast path: plain serde. Only a failing event is parsed again to find the field at fault.
    let ev: WireEvent = match serde_json::from_str(text) {
        Ok(ev) => ev,
        Err(_) => return Err(diagnose(text)),
    };
    validate(ev, max_items)
}

fn required<T>(v: Option<T>, field: &str) -> Result<T, Rejection> {
    v.ok_or_else(|| Rejection::new(RejectReason::MissingField, format!("`{field}` is required")))
}

/// `[a-z0-9_]{1,64}`, or a Segment-style name: a letter, then letters, digits, spaces, `_.-`.
pub fn valid_type(t: &str) -> bool {
    let snake = t
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let segment = t.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'.' | b'-'));
    !t.is_empty() && t.len() <= 64 && (snake || segment)
}

/// Whether a type carries what no touchpoint name needs: personal data, or a run of nine or
/// more digits (how card and phone numbers get in, whatever their checksum or spacing).
fn carries_data(t: &str) -> bool {
    let mut run = 0;
    for b in t.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 9 {
            return true;
        }
    }
    holds_personal_data(t)
}

fn amount(v: f64, field: &str) -> Result<f64, Rejection> {
    if v.is_finite() && (0.0..=MAX_AMOUNT).contains(&v) {
        Ok(v)
    } else {
        Err(Rejection::new(
            RejectReason::InvalidProps,
            format!("{field} must be a number from 0 to {MAX_AMOUNT:e}"),
        ))
    }
}

fn validate(ev: WireEvent<'_>, max_items: usize) -> Result<ValidEvent<'_>, Rejection> {
    let id = required(ev.id, "id")?;
    if id.is_empty() || id.chars().count() > 64 {
        return Err(Rejection::new(
            RejectReason::InvalidId,
            "`id` must be 1 to 64 characters",
        ));
    }
    let kind = required(ev.kind, "type")?;
    if !valid_type(&kind) {
        return Err(Rejection::new(
            RejectReason::InvalidType,
            "`type` must match [a-z0-9_]{1,64} or be a Segment-style name such as `Product Added`",
        ));
    }
    if carries_data(&kind) {
        return Err(Rejection::new(
            RejectReason::InvalidType,
            "`type` holds a long number or personal data; it must name the touchpoint, such as `add_to_cart`",
        ));
    }
    let ts = required(ev.ts, "ts")?;
    if !(0..=MAX_TS).contains(&ts) {
        return Err(Rejection::new(
            RejectReason::InvalidTs,
            "`ts` must be milliseconds since the epoch",
        ));
    }
    let session = required(ev.session, "session")?;
    if session.is_empty() || session.chars().count() > 64 {
        return Err(Rejection::new(
            RejectReason::InvalidSession,
            "`session` must be 1 to 64 characters",
        ));
    }
    if ev.visitor.as_ref().is_some_and(|v| v.chars().count() > 64) {
        return Err(Rejection::new(
            RejectReason::InvalidField,
            "`visitor` must be at most 64 characters",
        ));
    }
    let (mut value, mut currency, mut order_id) = (None, None, None);
    if let Some(p) = ev.props {
        value = p.value.map(|v| amount(v, "props.value")).transpose()?;
        if let Some(items) = p.items {
            if items.len() > max_items {
                return Err(Rejection::new(
                    RejectReason::TooManyItems,
                    format!(
                        "props.items has {} entries; the limit is {max_items}",
                        items.len()
                    ),
                ));
            }
            let mut sum = 0.0;
            for (i, item) in items.iter().enumerate() {
                let price = amount(
                    item.price.unwrap_or(0.0),
                    &format!("props.items[{i}].price"),
                )?;
                let qty = amount(
                    item.quantity.unwrap_or(1.0),
                    &format!("props.items[{i}].quantity"),
                )?;
                sum += price * qty;
            }
            if value.is_none() && !items.is_empty() {
                value = Some(amount(sum, "the items' total")?);
            }
        }
        if let Some(c) = p.currency {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(Rejection::new(
                    RejectReason::InvalidProps,
                    "props.currency must be a three-letter ISO 4217 code",
                ));
            }
            currency = Some(c.to_ascii_uppercase());
        }
        order_id = match p.order_id {
            Some(OrderId::Text(s)) if s.is_empty() || s.chars().count() > 64 => {
                return Err(Rejection::new(
                    RejectReason::InvalidProps,
                    "props.order_id must be 1 to 64 characters",
                ));
            }
            Some(OrderId::Text(s)) => Some(s),
            Some(OrderId::Number(n)) => Some(n.to_string()),
            None => None,
        };
    }
    Ok(ValidEvent {
        id,
        kind,
        ts,
        session,
        // An empty visitor is none: it would put every such shopper in one partition.
        visitor: ev.visitor.filter(|v| !v.is_empty()).map(Cow::into_owned),
        url: ev.url,
        referrer: ev.referrer,
        utm: ev.utm.unwrap_or_default(),
        value,
        currency,
        order_id,
        consent: ev.consent,
    })
}

#[cfg(test)]
mod tests;
