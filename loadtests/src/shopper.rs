//! Simulated shoppers: sessions walking the default journey with configurable step
//! probabilities, landing from a channel on a device, with carts in several currencies,
//! friction, and crawlers. Defaults are near the REES46 sample (../shared/data): about 3.4
//! product views a session, 5 % of sessions reach the cart, 79 % of those buy.

use crate::run::wire_event;
use crate::truth::{CURRENCIES, Event};
use serde_json::{Value, json};

/// The shape of the simulated traffic.
#[derive(Debug, Clone)]
pub struct Mix {
    /// Probability of each step: visit -> product view -> cart -> checkout -> purchase.
    pub steps: [f64; 4],
    /// Mean product views of a session that views products.
    pub views: f64,
    /// Share of sessions from crawlers (filtered by the collector, never in the funnel).
    pub bots: f64,
    /// Share of carts from which an item is removed again.
    pub removals: f64,
    /// Share of sessions with a friction touchpoint (error, rage click, failed payment).
    pub friction: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            steps: [0.95, 0.05, 0.85, 0.93],
            views: 3.4,
            bots: 0.02,
            removals: 0.1,
            friction: 0.05,
        }
    }
}

/// Where a session comes from: the landing event's fields that decide its channel. Affiliate
/// is left out: the freshness probe owns that channel (with the tablet device).
const LANDINGS: [(f64, &str, &str); 6] = [
    (0.30, "", ""),
    (0.30, "", "https://www.google.com/"),
    (0.15, "google/cpc", ""),
    (0.10, "", "https://www.facebook.com/"),
    (0.08, "newsletter/email", ""),
    (0.07, "", "https://blog.example.org/best-gifts"),
];

pub const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
pub const MOBILE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
pub const TABLET: &str = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
pub const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// One session to send: its user agent and its events, in order.
#[derive(Debug, Clone)]
pub struct Session {
    pub agent: &'static str,
    pub bot: bool,
    pub events: Vec<Event>,
    /// Wire JSON of each event (the landing fields included).
    pub wire: Vec<Value>,
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, weighted: &[(f64, T)]) -> T {
    let total: f64 = weighted.iter().map(|(w, _)| w).sum();
    let mut x = rng.f64() * total;
    for (w, v) in weighted {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    weighted[weighted.len() - 1].1
}

/// A price from 5 to 1,500, in cents, spread evenly over orders of magnitude.
fn price(rng: &mut fastrand::Rng) -> f64 {
    let p = (5f64.ln() + rng.f64() * (1500f64.ln() - 5f64.ln())).exp();
    (p * 100.0).round() / 100.0
}

/// A count with mean `mean` (geometric, at least 1).
fn geometric(rng: &mut fastrand::Rng, mean: f64) -> usize {
    let p = 1.0 / mean.max(1.0);
    let mut n = 1;
    while rng.f64() > p && n < 1000 {
        n += 1;
    }
    n
}

/// Builds sessions; ids are unique to `run` and the session number.
pub struct Shopper {
    pub mix: Mix,
    pub run: String,
    rng: fastrand::Rng,
}

impl Shopper {
    pub fn new(mix: Mix, run: String, seed: u64) -> Self {
        Shopper {
            mix,
            run,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Session number `n`, its events stamped from `now_ms` on (a millisecond apart).
    pub fn session(&mut self, n: u64, now_ms: i64) -> Session {
        let rng = &mut self.rng;
        let mix = &self.mix;
        let id = format!("{}-{n}", self.run);
        let bot = rng.f64() < mix.bots;
        let agent = if bot {
            BOT
        } else {
            pick(rng, &[(0.45, DESKTOP), (0.50, MOBILE), (0.05, TABLET)])
        };
        let (utm, referrer) = pick(rng, &LANDINGS.map(|(w, u, r)| (w, (u, r))));
        let currency = pick(
            rng,
            &[
                (0.5, CURRENCIES[0]),
                (0.3, CURRENCIES[1]),
                (0.1, CURRENCIES[2]),
                (0.1, CURRENCIES[3]),
            ],
        );
        let mut b = Builder::new(&id, now_ms);
        let mut landing = json!({"url": "https://shop.example/"});
        if let Some((source, medium)) = utm.split_once('/') {
            landing["utm"] = json!({"source": source, "medium": medium});
        }
        if !referrer.is_empty() {
            landing["referrer"] = referrer.into();
        }
        b.push("page_view", None, None, landing);
        let mut stage = 0;
        while stage < 4 && rng.f64() < mix.steps[stage] {
            stage += 1;
        }
        let friction_at = (rng.f64() < mix.friction).then(|| rng.usize(0..=stage));
        let mut cart = 0.0;
        for s in 1..=stage {
            if friction_at == Some(s - 1) {
                b.push(
                    ["error", "rage_click", "form_error", "out_of_stock"][s - 1],
                    None,
                    None,
                    json!({}),
                );
            }
            match s {
                1 => {
                    for _ in 0..geometric(rng, mix.views) {
                        b.push("view_item", None, None, json!({}));
                    }
                }
                2 => {
                    for _ in 0..geometric(rng, 1.4) {
                        let p = price(rng);
                        cart += p;
                        b.push("add_to_cart", Some(p), Some(currency), json!({}));
                    }
                    if rng.f64() < mix.removals {
                        // An item put in the cart and taken out again: the cart keeps its value.
                        let p = price(rng);
                        b.push("add_to_cart", Some(p), Some(currency), json!({}));
                        b.push("remove_from_cart", Some(p), Some(currency), json!({}));
                    }
                }
                3 => {
                    b.push("begin_checkout", None, None, json!({}));
                    b.push("add_payment_info", None, None, json!({}));
                }
                _ => {
                    let value = (cart * 100.0).round() / 100.0;
                    b.order(value, currency);
                }
            }
        }
        if friction_at == Some(stage) {
            b.push(
                if stage >= 3 {
                    "payment_failed"
                } else {
                    "error"
                },
                None,
                None,
                json!({}),
            );
        }
        Session {
            agent,
            bot,
            events: b.events,
            wire: b.wire,
        }
    }
}

/// Accumulates a session's events as the model sees them and as the wire carries them.
struct Builder<'a> {
    session: &'a str,
    ts: i64,
    events: Vec<Event>,
    wire: Vec<Value>,
}

impl<'a> Builder<'a> {
    fn new(session: &'a str, ts: i64) -> Self {
        Builder {
            session,
            ts,
            events: Vec::new(),
            wire: Vec::new(),
        }
    }

    fn push(&mut self, kind: &str, value: Option<f64>, currency: Option<&str>, extra: Value) {
        self.add(kind, value, currency, None, extra);
    }

    fn order(&mut self, value: f64, currency: &str) {
        let order = format!("o-{}", self.session);
        self.add(
            "purchase",
            Some(value),
            Some(currency),
            Some(order),
            json!({}),
        );
    }

    fn add(
        &mut self,
        kind: &str,
        value: Option<f64>,
        currency: Option<&str>,
        order: Option<String>,
        extra: Value,
    ) {
        let event = Event {
            session: self.session.to_string(),
            id: format!("{}-{}", self.session, self.events.len()),
            kind: kind.to_string(),
            ts: self.ts,
            value,
            currency: currency.map(str::to_string),
            order_id: order,
        };
        let mut wire = wire_event(&event);
        for (k, v) in extra.as_object().into_iter().flatten() {
            wire[k] = v.clone();
        }
        self.events.push(event);
        self.wire.push(wire);
        self.ts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::figures;

    #[test]
    fn sessions_follow_the_mix() {
        let mut shopper = Shopper::new(Mix::default(), "t".into(), 7);
        let sessions: Vec<Session> = (0..20_000).map(|n| shopper.session(n, 1_000)).collect();
        let humans: Vec<Event> = sessions
            .iter()
            .filter(|s| !s.bot)
            .flat_map(|s| s.events.clone())
            .collect();
        let f = figures(&humans, 1_800_000);
        let share = |stage: usize| f.reached[stage] as f64 / f.reached[0] as f64;
        assert!((share(1) - 0.95).abs() < 0.01, "{f:?}");
        assert!((share(2) - 0.95 * 0.05).abs() < 0.005, "{f:?}");
        assert!(
            (f.reached[4] as f64 / f.reached[2] as f64 - 0.85 * 0.93).abs() < 0.05,
            "{f:?}"
        );
        assert_eq!(f.duplicates, 0);
        // The orders carry the cart's value.
        assert_eq!(f.orders, f.reached[4]);
        let bots = sessions.iter().filter(|s| s.bot).count() as f64 / 20_000.0;
        assert!((bots - 0.02).abs() < 0.005);
        // Wire and model agree on every event.
        for s in &sessions[..100] {
            for (e, w) in s.events.iter().zip(&s.wire) {
                assert_eq!(w["id"], e.id.as_str());
                assert_eq!(w["type"], e.kind.as_str());
                assert_eq!(w["props"]["value"].as_f64(), e.value);
            }
        }
    }
}
