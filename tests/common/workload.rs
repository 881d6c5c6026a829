//! The generated workloads of the engine's property tests (`tests/engine_property.rs`,
//! `tests/engine_arrival.rs`): events of sessions on two sites, each with the channel and
//! device only the engine sees.

use super::reference::RefEvent;
use proptest::prelude::*;
use touchstream::config::Config;
use touchstream::event::{Channel, Device, Event};

pub const KINDS: &[&str] = &[
    "page_view",
    "session_start",
    "view_item",
    "Product Viewed",
    "search",
    "add_to_cart",
    "Product Added",
    "view_cart",
    "remove_from_cart",
    "Product Removed",
    "begin_checkout",
    "add_payment_info",
    "purchase",
    "Order Completed",
    "error",
    "rage_click",
    "review",
    "refund",
    "something_else",
];
pub const CURRENCIES: &[Option<&str>] = &[None, Some("USD"), Some("EUR"), Some("pln"), Some("XYZ")];
pub const TIMEOUT_MS: i64 = 30 * 60_000;

pub const SITES: &[&str] = &["demo", "outlet"];

/// One generated event: (kind, offset in ms within its visit, value in cents, currency, order,
/// channel, device).
pub type Spec = (usize, i64, Option<u32>, usize, Option<u8>, usize, usize);

/// A generated event with what only the engine sees: its site, channel and device.
#[derive(Debug, Clone)]
pub struct Sent {
    pub site: usize,
    pub visit: usize,
    pub event: RefEvent,
    pub channel: Channel,
    pub device: Device,
}

pub fn visit_events(site: usize, session: usize, visit: usize, specs: Vec<Spec>) -> Vec<Sent> {
    // Visits start three timeouts apart: any two events of one visit are less than a timeout
    // apart, and any two of different visits more.
    let start = 1_000_000 + visit as i64 * 3 * TIMEOUT_MS;
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (kind, offset, cents, cur, order, channel, device))| {
            let kind = KINDS[kind].to_string();
            let is_order = kind == "purchase" || kind == "Order Completed";
            // The same order re-sent carries the same value: derive both from the order id.
            let (value, currency, order_id) = match (is_order, order) {
                (true, Some(o)) => (
                    Some(f64::from(o) * 10.25),
                    Some("EUR".to_string()),
                    Some(format!("order-{visit}-{o}")),
                ),
                _ => (
                    cents.map(|c| f64::from(c) / 100.0),
                    CURRENCIES[cur].map(String::from),
                    None,
                ),
            };
            Sent {
                site,
                visit,
                event: RefEvent {
                    session: format!("s{session}"),
                    id: format!("e{visit}-{i}"),
                    kind,
                    ts: start + offset,
                    value,
                    currency,
                    order_id,
                },
                channel: Channel::ALL[channel],
                device: Device::ALL[device],
            }
        })
        .collect()
}

pub fn spec() -> impl Strategy<Value = Spec> {
    (
        0..KINDS.len(),
        0..TIMEOUT_MS,
        proptest::option::of(0u32..100_000),
        0..CURRENCIES.len(),
        proptest::option::of(0u8..3),
        0..Channel::ALL.len(),
        0..Device::ALL.len(),
    )
}

pub fn to_event(s: &Sent) -> Event {
    let e = &s.event;
    Event {
        channel: s.channel,
        device: s.device,
        value: e.value,
        currency: e.currency.as_ref().map(|c| c.to_ascii_uppercase()),
        order_id: e.order_id.clone(),
        ..Event::new(SITES[s.site], &e.session, &e.id, &e.kind, e.ts)
    }
}

pub fn config() -> Config {
    let mut config = Config::default();
    let mut outlet = config.sites[0].clone();
    outlet.id = SITES[1].into();
    config.sites.push(outlet);
    config
}
