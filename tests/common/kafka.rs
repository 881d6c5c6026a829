//! A real Kafka-protocol broker (tansu) on a free loopback port, and touchstream's `collect`
//! and `engine` run in-process against it. `./tests/run.sh` installs tansu; a missing tansu is a
//! test failure, never a skip.

use super::prom::Scrape;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use touchstream::config::Config;
use touchstream::server::{self, Listeners};

/// The tansu binary: on PATH or in cargo's bin directory.
pub fn tansu() -> PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let candidates = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| PathBuf::from(d).join("tansu"))
        .chain([home.join("bin/tansu")])
        .collect::<Vec<_>>();
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("tansu is not installed; ./tests/run.sh installs it (cargo install tansu --features dynostore,libsql)")
    })
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tansu broker; killed when dropped.
pub struct Broker {
    pub port: u16,
    storage: String,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    /// A broker keeping data in memory.
    pub fn memory() -> Self {
        Self::start("memory://tansu/".to_string())
    }

    /// A broker keeping data in SQLite, so it survives [`Broker::restart`].
    pub fn durable() -> Self {
        Self::start(String::new())
    }

    fn start(storage: String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // tansu resolves a sqlite path against its working directory: the temp dir.
        let storage = if storage.is_empty() {
            "sqlite://tansu.db".to_string()
        } else {
            storage
        };
        let mut b = Broker {
            port: free_port(),
            storage,
            _dir: dir,
            child: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log_path = self._dir.path().join("tansu.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut child = Command::new(tansu())
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", &self.storage])
                .current_dir(self._dir.path())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .expect("start tansu");
            // Until it listens; a broker that exits at once (its port still held by the one
            // just killed) is started again.
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("tansu did not start listening on {addr}:\n{log}");
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if child.try_wait().ok().flatten().is_none() {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (clients see it vanish).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A configuration for `broker` with topics unique to this test.
pub fn config(broker: &Broker, partitions: i32, session_timeout: Duration) -> Config {
    let mut c = super::server::config(session_timeout);
    let unique = format!("{}-{}", std::process::id(), free_port());
    c.kafka.brokers = broker.bootstrap();
    c.kafka.topic = format!("events-{unique}");
    c.kafka.dead_letter_topic = format!("dead-{unique}");
    c.kafka.state_topic = format!("state-{unique}");
    c.kafka.group_id = format!("engines-{unique}");
    c.kafka.partitions = partitions;
    c.kafka.delivery_timeout = Duration::from_secs(3);
    // Each partition's state is written every second: a restart re-reads little.
    c.state.checkpoint_interval = Duration::from_secs(1);
    // A killed engine leaves its group after this, instead of the default 45 s.
    c.kafka
        .consumer
        .insert("session.timeout.ms".into(), "6000".into());
    c.kafka
        .consumer
        .insert("heartbeat.interval.ms".into(), "1000".into());
    c
}

/// `touchstream collect` or `engine` in-process on port 0; stopped on drop.
pub struct Running {
    pub public: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub async fn collect(config: Config) -> Self {
        Self::public(config, false).await
    }

    /// `touchstream serve` with brokers configured: collector and engine in one process,
    /// joined through Kafka.
    pub async fn serve(config: Config) -> Self {
        Self::public(config, true).await
    }

    async fn public(config: Config, with_engine: bool) -> Self {
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (p, a) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = Listeners { public, admin };
        let signal = async move {
            let _ = rx.await;
        };
        let handle = if with_engine {
            tokio::spawn(server::run(config, listeners, signal))
        } else {
            tokio::spawn(server::run_collect(config, listeners, signal))
        };
        Self {
            public: Some(p),
            admin: a,
            client: reqwest::Client::new(),
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn engine(config: Config) -> Self {
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = admin.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run_engine(config, admin, async move {
            let _ = rx.await;
        }));
        Self {
            public: None,
            admin: a,
            client: reqwest::Client::new(),
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Posts a batch; returns the status.
    pub async fn post(&self, body: &serde_json::Value) -> u16 {
        let url = format!("http://{}/v1/events", self.public.expect("a collector"));
        let res = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        res.map(|r| r.status().as_u16()).unwrap_or(0)
    }

    /// Posts a batch until it gets a 2xx, as a client honouring Retry-After would; returns how
    /// many attempts failed (each may have been taken in part: a 503 over Kafka can come after
    /// some deliveries).
    pub async fn post_until_accepted(&self, body: &serde_json::Value) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut failed = 0;
        loop {
            match self.post(body).await {
                200 => return failed,
                503 | 0 => failed += 1,
                other => panic!("unexpected status {other}"),
            }
            assert!(Instant::now() < deadline, "batch never accepted");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Scrapes `/metrics` (an engine commits its offsets doing so); `None` when refused.
    pub async fn scrape(&self) -> Option<Scrape> {
        scrape_at(self.admin).await
    }

    /// Scrapes until `ready` holds; panics after 90 s.
    pub async fn wait_for(&self, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        wait_for_at(self.admin, what, ready).await
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Scrapes the admin listener at `admin`; `None` when unreachable or refused.
pub async fn scrape_at(admin: SocketAddr) -> Option<Scrape> {
    let res = reqwest::get(format!("http://{admin}/metrics")).await.ok()?;
    if !res.status().is_success() {
        return None;
    }
    Some(Scrape::parse(&res.text().await.ok()?))
}

/// Scrapes `admin` until `ready` holds; panics after 90 s.
pub async fn wait_for_at(admin: SocketAddr, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(s) = scrape_at(admin).await
            && ready(&s)
        {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sum of reached counts per stage in a scrape.
pub fn reached(s: &Scrape) -> [u64; 5] {
    super::reference::STAGES
        .map(|stage| s.sum("touchstream_funnel_sessions_total", &[("stage", stage)]) as u64)
}

pub fn applied(s: &Scrape) -> u64 {
    s.sum("touchstream_engine_events_applied_total", &[]) as u64
}
