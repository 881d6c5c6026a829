//! A `serve` process over a state directory, for the tests that stop and restart it.

use super::kafka::{scrape_at, wait_for_at};
use super::process::{KillOnDrop, start_logged, touchstream};
use super::prom::Scrape;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;

/// A `serve` process on `state`, with a short session timeout and checkpoints every second.
pub struct Serve {
    pub guard: KillOnDrop,
    /// What it logged until its listeners were up (the recovery).
    pub started: Vec<String>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

pub fn serve(state: &Path, session_timeout: &str) -> Serve {
    let (guard, _log, up, started) = start_logged(
        touchstream()
            .env("TOUCHSTREAM_STATE_DIR", state)
            .env("TOUCHSTREAM_LISTEN", "127.0.0.1:0")
            .env("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:0")
            .env("TOUCHSTREAM_STATE_CHECKPOINT_INTERVAL", "1s")
            .env("TOUCHSTREAM_JOURNEY_SESSION_TIMEOUT", session_timeout)
            .env("TOUCHSTREAM_ENGINE_SWEEP_INTERVAL", "100ms")
            .env("TOUCHSTREAM_LIMITS_CLIENT_REQUESTS_PER_SECOND", "0")
            .env("RUST_LOG", "info"),
        &["public", "admin"],
    );
    Serve {
        guard,
        started,
        public: up[0].parse().unwrap(),
        admin: up[1].parse().unwrap(),
    }
}

impl Serve {
    pub async fn post(&self, events: Vec<Value>) -> u16 {
        reqwest::Client::new()
            .post(format!("http://{}/v1/events", self.public))
            .header("content-type", "application/json")
            .body(json!({"site": "demo", "events": events}).to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Opens a cart in each of `sessions` (one batch each) and waits until all are open.
    pub async fn open_carts(&self, sessions: std::ops::Range<usize>) {
        let now = touchstream::now_ms();
        for s in sessions.clone() {
            assert_eq!(self.post(vec![cart(s, &format!("c{s}"), now)]).await, 200);
        }
        let open = sessions.end as u64;
        wait_for_at(self.admin, "the carts", |s| {
            figure(s, "touchstream_carts_open", &[]) == open
        })
        .await;
    }

    pub async fn scrape(&self) -> Scrape {
        scrape_at(self.admin).await.expect("/metrics answers")
    }

    /// The start-up line about the state recovered.
    pub fn recovered(&self) -> &str {
        (self.started.iter())
            .find(|l| l.contains("state recovered"))
            .expect("recovery logged before the listeners were up")
    }
}

pub fn cart(session: usize, id: &str, ts: i64) -> Value {
    json!({"id": id, "type": "add_to_cart", "ts": ts, "session": format!("s{session}"),
           "props": {"value": 10, "currency": "PLN"}})
}

pub fn figure(s: &Scrape, name: &str, filter: &[(&str, &str)]) -> u64 {
    s.sum(name, filter) as u64
}

/// Sessions that reached `stage`.
pub fn reached(s: &Scrape, stage: &str) -> u64 {
    figure(s, "touchstream_funnel_sessions_total", &[("stage", stage)])
}
