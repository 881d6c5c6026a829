//! A batch's events turned into the transport's [`Event`]s: each decoded and validated on its
//! own, consent applied, the good ones enriched. This is the one place that does it: the
//! collector, `touchstream replay` and the fuzz harness all call [`decode_batch`].

use super::enrich::{channel, event_time};
use super::mask::pseudonymise;
use super::wire::{Rejection, ValidEvent, decode_event};
use crate::config::LimitsConfig;
use crate::event::{Device, Event, FilterReason};
use serde_json::value::RawValue;
use std::sync::Arc;

/// Whose clock an event's time is read against.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// Live: the batch arrived at `received_at` (server clock); `sent_at` is the client's clock
    /// when it was sent, to correct the events' skew.
    Received { at: i64, sent_at: Option<i64> },
    /// A recorded log: each event happened at its own `ts`, with no skew to correct.
    Recorded,
}

/// What is known of a batch as a whole, shared by its events.
#[derive(Debug, Clone)]
pub struct BatchContext {
    /// The configured site id (never the write key the batch may have named it by).
    pub site: Arc<str>,
    /// Whether the site counts only events that carry `consent: true`.
    pub require_consent: bool,
    pub clock: Clock,
    pub device: Device,
    /// Why every event of the batch is kept out of the funnel, when one reason covers the whole
    /// request (a bot's user agent, a Global Privacy Control header).
    pub filter: Option<FilterReason>,
    /// The sender, for the engine's new-session rate: [`Event::origin`].
    pub origin: u64,
}

/// A decoded batch.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Valid events bound for the funnel, enriched, in batch order.
    pub events: Vec<Event>,
    /// `(index in the batch, why)` of every invalid event.
    pub rejected: Vec<(usize, Rejection)>,
    /// Valid events kept out of the funnel, by [`FilterReason::index`] (the decoder never
    /// counts `duplicate`: only the engine knows an id was seen).
    pub filtered: [u64; FilterReason::ALL.len()],
}

impl Decoded {
    /// Valid events: in the funnel or filtered (the collector's "accepted").
    pub fn valid(&self) -> u64 {
        self.events.len() as u64 + self.filtered.iter().sum::<u64>()
    }
}

/// Decodes, validates, filters and enriches the raw events of one batch.
pub fn decode_batch(raw: &[&RawValue], ctx: &BatchContext, limits: &LimitsConfig) -> Decoded {
    let mut out = Decoded {
        events: Vec::with_capacity(raw.len()),
        ..Decoded::default()
    };
    for (index, event) in raw.iter().enumerate() {
        let v = match decode_event(event, limits.max_event_bytes, limits.max_items) {
            Ok(v) => v,
            Err(r) => {
                out.rejected.push((index, r));
                continue;
            }
        };
        let filter = ctx.filter.or_else(|| {
            (ctx.require_consent && v.consent != Some(true)).then_some(FilterReason::Consent)
        });
        match filter {
            Some(reason) => out.filtered[reason.index()] += 1,
            None => out.events.push(enrich(ctx, v)),
        }
    }
    out
}

/// Turns a validated wire event into the transport's [`Event`]; identifiers holding personal
/// data become pseudonyms.
fn enrich(ctx: &BatchContext, v: ValidEvent<'_>) -> Event {
    let (received_at, event_time_ms) = match ctx.clock {
        Clock::Received { at, sent_at } => (at, event_time(at, sent_at, v.ts)),
        Clock::Recorded => (v.ts, event_time(v.ts, None, v.ts)),
    };
    Event {
        site: ctx.site.clone(),
        channel: channel(&v.utm, v.referrer.as_deref(), v.url.as_deref()),
        event_time_ms,
        received_at_ms: received_at,
        device: ctx.device,
        id: pseudonymise(v.id),
        kind: v.kind,
        session: pseudonymise(v.session),
        visitor: v.visitor.map(pseudonymise),
        value: v.value,
        currency: v.currency,
        order_id: v.order_id.map(pseudonymise),
        origin: ctx.origin,
    }
}
