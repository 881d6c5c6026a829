//! The processes: `serve` (collector and engine in one process, joined in memory, or through
//! Kafka when brokers are configured), `collect` (HTTP to Kafka) and `engine` (Kafka to
//! `/metrics`).
//!
//! Shutdown order, so that nothing accepted is lost: `/readyz` turns 503, the public listener
//! stops taking requests and finishes those in flight (each got its 2xx with its events in the
//! transport, or an error), then the engine drains what the transport holds (memory) or leaves
//! its consumer group (Kafka), then the admin listener stops.

use crate::admin::{self, AdminState};
use crate::collector::{self, CollectorState};
use crate::config::Config;
use crate::engine;
use crate::engine::kafka::KafkaEngine;
use crate::http::{self, ConnectionLimits};
use crate::metrics::{Exposition, Metrics};
use crate::shutdown::{self, Shutdown, Trigger};
use crate::state::StateDir;
use crate::transport::kafka::{self, KafkaSink};
use crate::transport::{self, EventSink};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The two bound listeners (bound by the caller, so tests can use port 0).
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        let public = TcpListener::bind(config.listen).await?;
        let admin = TcpListener::bind(config.admin_listen).await?;
        Ok(Self { public, admin })
    }
}

type Server = (Trigger, JoinHandle<std::io::Result<()>>);

/// Serves `router` on `listener` until its trigger fires, finishing requests in flight.
fn spawn_server(
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
) -> Server {
    let (trigger, mut stop) = shutdown::channel();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "{name} listener up");
    }
    let handle = tokio::spawn(http::serve(listener, router, limits, metrics, async move {
        stop.wait().await
    }));
    (trigger, handle)
}

async fn stop_server((trigger, handle): Server) -> anyhow::Result<()> {
    trigger.fire();
    Ok(handle.await??)
}

fn admin_state(
    metrics: &Arc<Metrics>,
    exposition: Arc<dyn Exposition>,
    sink: Option<Arc<dyn EventSink>>,
) -> Arc<AdminState> {
    let state = Arc::new(AdminState {
        metrics: metrics.clone(),
        exposition,
        sink: Default::default(),
        ready: true.into(),
        recovering: false.into(),
        collector: Default::default(),
    });
    if let Some(sink) = sink {
        _ = state.sink.set(sink);
    }
    state
}

fn new_metrics(config: &Config) -> Arc<Metrics> {
    Arc::new(Metrics::new(config))
}

/// Creates the topics (a warning when the brokers cannot be reached yet: `/readyz` shows it).
async fn create_topics(config: &Config) {
    if let Err(e) = kafka::create_topics(config).await {
        tracing::warn!(error = %e, "cannot create the Kafka topics now; continuing");
    }
}

/// The producer, with its reachability probe.
fn kafka_sink(config: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<Arc<dyn EventSink>> {
    let sink = Arc::new(KafkaSink::new(&config.kafka, metrics.clone())?);
    sink.spawn_probe(Duration::from_secs(2));
    Ok(sink)
}

/// A running process: the admin listener, and optionally an engine task and a collector.
/// Started in that order; stopped in reverse once readiness has turned off.
struct Process {
    state: Arc<AdminState>,
    connections: ConnectionLimits,
    admin: Server,
    engine: Option<(Trigger, JoinHandle<anyhow::Result<()>>)>,
    public: Option<Server>,
}

impl Process {
    fn start(admin: TcpListener, state: Arc<AdminState>, config: &Config) -> Self {
        let connections = ConnectionLimits::from(&config.limits);
        let router = admin::router(state.clone());
        let metrics = state.metrics.clone();
        let admin = spawn_server("admin", admin, router, connections.clone(), metrics);
        Self {
            state,
            connections,
            admin,
            engine: None,
            public: None,
        }
    }

    fn with_engine<F>(mut self, run: impl FnOnce(Shutdown) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (trigger, stop) = shutdown::channel();
        self.engine = Some((trigger, tokio::spawn(run(stop))));
        self
    }

    fn with_collector(
        mut self,
        public: TcpListener,
        config: &Config,
        sink: Arc<dyn EventSink>,
    ) -> Self {
        let state = Arc::new(CollectorState::new(
            config,
            sink,
            self.state.metrics.clone(),
        ));
        reload_sites_on_hangup(state.clone(), config);
        let _ = self.state.collector.set(state.clone());
        let limits = ConnectionLimits {
            clients: Some(state.resolver().clone()),
            ..self.connections.clone()
        };
        let (router, metrics) = (collector::router(state), self.state.metrics.clone());
        self.public = Some(spawn_server("public", public, router, limits, metrics));
        self
    }

    /// Runs until `signal`, or until the engine stops by itself (an error it cannot go on
    /// from, such as a Kafka engine's unreadable state): then the process stops with it.
    async fn run_until(mut self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let failed = match self.engine.as_mut() {
            Some((_, handle)) => tokio::select! {
                _ = signal => None,
                ended = handle => Some(ended),
            },
            None => {
                signal.await;
                None
            }
        };
        self.state.ready.store(false, Ordering::Relaxed);
        let public = match self.public {
            Some(public) => stop_server(public).await,
            None => Ok(()),
        };
        let result = match (self.engine, failed) {
            (_, Some(ended)) => Err(ended
                .map_err(anyhow::Error::from)
                .and_then(|r| r.map(|()| anyhow::anyhow!("the engine stopped")))
                .unwrap_or_else(|e| e)),
            (Some((trigger, handle)), None) => {
                trigger.fire();
                handle.await?
            }
            (None, None) => Ok(()),
        };
        // The engine's error first: it is why the process stops.
        let result = result.and(public);
        stop_server(self.admin).await?;
        match &result {
            Ok(()) => tracing::info!("touchstream stopped"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "touchstream stopped: the engine failed")
            }
        }
        result
    }
}

/// On `SIGHUP`, reads the configuration file again and takes its sites' keys, secrets and
/// origins (key rotation without a restart); a file that does not load, or changes the site
/// ids, is refused and the running configuration stays. Changed journeys are not taken (the
/// log says so): they need a restart.
fn reload_sites_on_hangup(state: Arc<CollectorState>, running: &Config) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    let source = running.source.clone();
    let journeys = |c: &Config| {
        let runs: Vec<Vec<usize>> = c.sites.iter().map(|s| c.site_journeys(s)).collect();
        (c.journeys().to_vec(), runs)
    };
    let running_journeys = journeys(running);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(path) = &source else {
                tracing::warn!("SIGHUP ignored: no configuration file to reload (--config)");
                continue;
            };
            let loaded = crate::config::load(Some(path), std::env::vars())
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    if journeys(&c) != running_journeys {
                        tracing::warn!(
                            file = %path.display(),
                            "the journeys changed: they are not reloaded, restart to apply them"
                        );
                    }
                    state.reload_sites(&c)
                });
            match loaded {
                Ok(()) => tracing::info!(file = %path.display(), "sites reloaded"),
                Err(e) => tracing::error!(error = %e, "reload refused; the running sites stay"),
            }
        }
    });
}

/// `touchstream serve`: in memory, or over Kafka when `kafka.brokers` is set.
pub async fn run(
    config: Config,
    listeners: Listeners,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = new_metrics(&config);
    let process = if config.kafka.enabled() {
        create_topics(&config).await;
        let sink = kafka_sink(&config, &metrics)?;
        let consumer = KafkaEngine::new(&config, metrics.clone())?;
        let state = admin_state(&metrics, Arc::new(consumer.scrape()), Some(sink.clone()));
        Process::start(listeners.admin, state, &config)
            .with_engine(|stop| consumer.run(stop))
            .with_collector(listeners.public, &config, sink)
    } else {
        // Held until the engine has written its last checkpoint; the kernel lets go of it
        // however the process ends.
        let state = StateDir::open(&config.state.dir)?;
        // The admin listener answers while the state is recovered (`/readyz`: recovering).
        let admin = admin_state(&metrics, metrics.clone(), None);
        admin.recovering.store(true, Ordering::Relaxed);
        let process = Process::start(listeners.admin, admin.clone(), &config);
        let (engine, log, recovered) = {
            let (config, metrics, dir) = (config.clone(), metrics.clone(), state.path().to_owned());
            tokio::task::spawn_blocking(move || engine::durable::recover(&config, &metrics, &dir))
                .await??
        };
        tracing::info!(
            dir = %state.path().display(),
            checkpoint = ?recovered.checkpoint,
            sessions = recovered.sessions,
            remembered = recovered.remembered,
            records = recovered.records,
            events = recovered.events,
            "state recovered"
        );
        let queue = &config.transport;
        let (sink, source, clock) = transport::durable::durable(
            log,
            queue.queue_events,
            queue.enqueue_timeout,
            &metrics.transport,
        );
        let sink: Arc<dyn EventSink> = Arc::new(sink);
        _ = admin.sink.set(sink.clone());
        admin.recovering.store(false, Ordering::Relaxed);
        let sweep = config.engine.sweep_interval;
        let checkpoints = engine::durable::Checkpointing {
            dir: state.path().to_path_buf(),
            interval: config.state.checkpoint_interval,
        };
        process
            .with_engine(|stop| async move {
                let applied = engine::durable::run(
                    engine.clone(),
                    source,
                    clock,
                    sweep,
                    checkpoints,
                    recovered,
                    stop,
                )
                .await;
                tracing::info!(
                    applied,
                    open_sessions = engine.open_sessions(),
                    "engine stopped"
                );
                drop(state);
                Ok(())
            })
            .with_collector(listeners.public, &config, sink)
    };
    let transport = if config.kafka.enabled() {
        "kafka"
    } else {
        "memory"
    };
    tracing::info!(sites = config.sites.len(), transport, "touchstream serving");
    process.run_until(signal).await
}

/// `touchstream collect`: the collector, writing to Kafka.
pub async fn run_collect(
    config: Config,
    listeners: Listeners,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.kafka.enabled(),
        "collect needs Kafka: set kafka.brokers (TOUCHSTREAM_KAFKA_BROKERS)"
    );
    let metrics = new_metrics(&config);
    create_topics(&config).await;
    let sink = kafka_sink(&config, &metrics)?;
    let process = Process::start(
        listeners.admin,
        admin_state(&metrics, metrics.clone(), Some(sink.clone())),
        &config,
    )
    .with_collector(listeners.public, &config, sink);
    tracing::info!(sites = config.sites.len(), "touchstream collecting");
    process.run_until(signal).await
}

/// `touchstream engine`: the engine, reading from Kafka; only the admin listener.
pub async fn run_engine(
    config: Config,
    admin: TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.kafka.enabled(),
        "engine needs Kafka: set kafka.brokers (TOUCHSTREAM_KAFKA_BROKERS)"
    );
    let metrics = new_metrics(&config);
    create_topics(&config).await;
    let consumer = KafkaEngine::new(&config, metrics.clone())?;
    let process = Process::start(
        admin,
        admin_state(&metrics, Arc::new(consumer.scrape()), None),
        &config,
    )
    .with_engine(|stop| consumer.run(stop));
    tracing::info!(group = %config.kafka.group_id, topic = %config.kafka.topic, "touchstream engine running");
    process.run_until(signal).await
}
