//! A real touchstream server on 127.0.0.1:0 for a test, stopped by the test.

use super::prom::Scrape;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use touchstream::config::Config;
use touchstream::server::{self, Listeners};

pub const ORIGIN: &str = "http://shop.test";

/// The default configuration with a test origin, a short sweep interval, no client-address
/// rate limit, and `timeout`.
pub fn config(timeout: Duration) -> Config {
    let mut c = Config::default();
    c.sites[0].origins = vec![ORIGIN.to_string()];
    c.journey.session_timeout = timeout;
    c.engine.sweep_interval = Duration::from_millis(50);
    // Tests send as many shoppers from one loopback address.
    c.limits.client_requests_per_second = 0;
    c
}

pub struct TestServer {
    pub public: SocketAddr,
    /// The server's own state directory (removed with the server), unless the test gave one.
    _state: Option<tempfile::TempDir>,
    pub admin: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a server on `config`, in a state directory of its own, so that no test inherits
    /// another's state, and waits until it has recovered that state (`/readyz`).
    pub async fn start(mut config: Config) -> Self {
        let state = tempfile::Builder::new()
            .prefix("touchstream-state-")
            .tempdir()
            .unwrap();
        config.state.dir = state.path().to_path_buf();
        let mut server = Self::spawn(config).await;
        server._state = Some(state);
        let ready = format!("http://{}/readyz", server.admin);
        for _ in 0..500 {
            match server.client.get(&ready).send().await {
                Ok(r) if r.status().is_success() => return server,
                _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        panic!("the server never became ready");
    }

    async fn spawn(config: Config) -> Self {
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (public_addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(
            config,
            Listeners { public, admin },
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            _state: None,
            public: public_addr,
            admin: admin_addr,
            client: reqwest::Client::new(),
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn events_url(&self) -> String {
        format!("http://{}/v1/events", self.public)
    }

    /// Posts a JSON batch from the allowed browser origin.
    pub async fn post(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.events_url())
            .header("content-type", "application/json")
            .header("origin", ORIGIN)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn scrape(&self) -> Scrape {
        super::kafka::scrape_at(self.admin)
            .await
            .expect("/metrics answers")
    }

    /// Polls `/metrics` until `ready` holds (the engine applies asynchronously).
    pub async fn wait_for(&self, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        super::kafka::wait_for_at(self.admin, what, ready).await
    }

    /// Waits until the engine has applied `n` events.
    pub async fn wait_applied(&self, n: u64) -> Scrape {
        self.wait_for(&format!("{n} events applied"), |s| {
            s.sum("touchstream_engine_events_applied_total", &[]) as u64 >= n
        })
        .await
    }

    /// Sends the shutdown signal and waits for a clean exit.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
