//! The processes: `serve` (collector and engine in one process, joined in memory, or through
//! Kafka when brokers are configured), `collect` (HTTP to Kafka) and `engine` (Kafka to
//! `/metrics`).
//!
//! Shutdown order, so that nothing accepted is lost: `/readyz` turns 503, the public listener
//! stops taking requests and finishes those in flight (each got its 2xx with its events in the
//! transport, or an error), then the engine drains what the transport holds (memory) or leaves
//! its consumer group (Kafka), then the admin listener stops.

use crate::admin::{self, AdminState, Exposition};
use crate::collector::{self, CollectorState};
use crate::config::Config;
use crate::engine::{self, Engine};
use crate::metrics::Metrics;
use crate::shutdown::{self, Trigger};
use crate::transport::kafka::{self, KafkaEngine, KafkaSink};
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
fn spawn_server(name: &'static str, listener: TcpListener, router: axum::Router) -> Server {
    let (trigger, mut stop) = shutdown::channel();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "{name} listener up");
    }
    let handle = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.wait().await })
            .await
    });
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
    Arc::new(AdminState {
        metrics: metrics.clone(),
        exposition,
        sink,
        ready: true.into(),
    })
}

fn new_metrics(config: &Config) -> Arc<Metrics> {
    Arc::new(Metrics::new(config, &engine::Journey::new(&config.journey)))
}

/// Creates the topics (a warning when the brokers cannot be reached yet: `/readyz` shows it)
/// and the producer.
async fn kafka_sink(config: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<Arc<KafkaSink>> {
    if let Err(e) = kafka::create_topics(config).await {
        tracing::warn!(error = %e, "cannot create the Kafka topics now; continuing");
    }
    let sink = Arc::new(KafkaSink::new(&config.kafka, metrics.clone())?);
    sink.spawn_probe(Duration::from_secs(2));
    Ok(sink)
}

/// `touchstream serve`: in memory, or over Kafka when `kafka.brokers` is set.
pub async fn run(
    config: Config,
    listeners: Listeners,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.kafka.enabled() {
        return serve_kafka(config, listeners, signal).await;
    }
    let metrics = new_metrics(&config);
    let (sink, source) = transport::memory(
        config.transport.queue_events,
        config.transport.enqueue_timeout,
        &metrics.transport,
    );
    let sink: Arc<dyn EventSink> = Arc::new(sink);
    let engine = Arc::new(Engine::new(&config, metrics.clone()));
    let (engine_stop, stop) = shutdown::channel();
    let applier = tokio::spawn(engine::run(
        engine.clone(),
        source,
        config.engine.sweep_interval,
        stop,
    ));
    let state = admin_state(&metrics, metrics.clone(), Some(sink.clone()));
    let admin = spawn_server("admin", listeners.admin, admin::router(state.clone()));
    let public = spawn_server(
        "public",
        listeners.public,
        collector::router(Arc::new(CollectorState::new(
            &config,
            sink,
            metrics.clone(),
        ))),
    );
    tracing::info!(
        sites = config.sites.len(),
        transport = "memory",
        "touchstream serving"
    );
    signal.await;

    state.ready.store(false, Ordering::Relaxed);
    stop_server(public).await?;
    engine_stop.fire();
    let applied = applier.await?;
    stop_server(admin).await?;
    tracing::info!(
        applied,
        open_sessions = engine.open_sessions(),
        "touchstream stopped"
    );
    Ok(())
}

async fn serve_kafka(
    config: Config,
    listeners: Listeners,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = new_metrics(&config);
    let sink: Arc<dyn EventSink> = kafka_sink(&config, &metrics).await?;
    let consumer = KafkaEngine::new(&config, metrics.clone())?;
    let state = admin_state(
        &metrics,
        Arc::new(consumer.scrape_commit()),
        Some(sink.clone()),
    );
    let (engine_stop, stop) = shutdown::channel();
    let engine = tokio::spawn(consumer.run(stop));
    let admin = spawn_server("admin", listeners.admin, admin::router(state.clone()));
    let public = spawn_server(
        "public",
        listeners.public,
        collector::router(Arc::new(CollectorState::new(
            &config,
            sink,
            metrics.clone(),
        ))),
    );
    tracing::info!(
        sites = config.sites.len(),
        transport = "kafka",
        "touchstream serving"
    );
    signal.await;

    state.ready.store(false, Ordering::Relaxed);
    stop_server(public).await?;
    engine_stop.fire();
    engine.await??;
    stop_server(admin).await?;
    tracing::info!("touchstream stopped");
    Ok(())
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
    let sink: Arc<dyn EventSink> = kafka_sink(&config, &metrics).await?;
    let state = admin_state(&metrics, metrics.clone(), Some(sink.clone()));
    let admin = spawn_server("admin", listeners.admin, admin::router(state.clone()));
    let public = spawn_server(
        "public",
        listeners.public,
        collector::router(Arc::new(CollectorState::new(
            &config,
            sink,
            metrics.clone(),
        ))),
    );
    tracing::info!(sites = config.sites.len(), "touchstream collecting");
    signal.await;

    state.ready.store(false, Ordering::Relaxed);
    stop_server(public).await?;
    stop_server(admin).await?;
    tracing::info!("touchstream stopped");
    Ok(())
}

/// `touchstream engine`: the engine, reading from Kafka; only the admin listener.
pub async fn run_engine(
    config: Config,
    admin_listener: TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.kafka.enabled(),
        "engine needs Kafka: set kafka.brokers (TOUCHSTREAM_KAFKA_BROKERS)"
    );
    let metrics = new_metrics(&config);
    if let Err(e) = kafka::create_topics(&config).await {
        tracing::warn!(error = %e, "cannot create the Kafka topics now; continuing");
    }
    let consumer = KafkaEngine::new(&config, metrics.clone())?;
    let state = admin_state(&metrics, Arc::new(consumer.scrape_commit()), None);
    let (engine_stop, stop) = shutdown::channel();
    let engine = tokio::spawn(consumer.run(stop));
    let admin = spawn_server("admin", admin_listener, admin::router(state.clone()));
    tracing::info!(group = %config.kafka.group_id, topic = %config.kafka.topic, "touchstream engine running");
    signal.await;

    state.ready.store(false, Ordering::Relaxed);
    engine_stop.fire();
    engine.await??;
    stop_server(admin).await?;
    tracing::info!("touchstream stopped");
    Ok(())
}
