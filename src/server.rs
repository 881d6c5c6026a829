//! `touchstream serve`: collector and engine in one process, joined by the embedded transport.
//!
//! Shutdown order, so that nothing accepted is lost: stop taking requests and finish those in
//! flight (each either got its 2xx with its events in the transport, or an error), then close
//! the transport and let the engine apply everything in it, then stop the admin listener.

use crate::admin::{self, AdminState};
use crate::collector::{self, CollectorState};
use crate::config::Config;
use crate::engine::{self, Engine};
use crate::metrics::Metrics;
use crate::shutdown::{self, Shutdown};
use crate::transport::{self, EventSink};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;

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

/// Runs collector and engine until `signal` resolves, then drains and returns.
pub async fn run(
    config: Config,
    listeners: Listeners,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let journey = engine::Journey::new(&config.journey);
    let metrics = Arc::new(Metrics::new(&config, &journey));
    let (sink, source) = transport::memory(
        config.transport.queue_events,
        config.transport.enqueue_timeout,
        &metrics.transport,
    );
    let sink: Arc<dyn EventSink> = Arc::new(sink);
    let engine = Arc::new(Engine::new(&config, metrics.clone()));
    let (trigger, stop) = shutdown::channel();

    let applier = tokio::spawn(engine::run(
        engine.clone(),
        source,
        config.engine.sweep_interval,
        stop,
    ));
    tracing::info!(
        public = %listeners.public.local_addr()?,
        admin = %listeners.admin.local_addr()?,
        sites = config.sites.len(),
        "touchstream serving"
    );
    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        sink: sink.clone(),
        ready: true.into(),
    });
    let (admin_trigger, admin_stop) = shutdown::channel();
    let admin = tokio::spawn(serve(
        listeners.admin,
        admin::router(admin_state.clone()),
        admin_stop,
    ));

    let collector = collector::router(Arc::new(CollectorState::new(
        &config,
        sink,
        metrics.clone(),
    )));
    let (public_trigger, public_stop) = shutdown::channel();
    let public = tokio::spawn(serve(listeners.public, collector, public_stop));
    signal.await;

    admin_state.ready.store(false, Ordering::Relaxed);
    public_trigger.fire();
    public.await??;
    trigger.fire();
    let applied = applier.await?;
    admin_trigger.fire();
    admin.await??;
    tracing::info!(
        applied,
        open_sessions = engine.open_sessions(),
        "touchstream stopped"
    );
    Ok(())
}

/// Serves `router` on `listener` until `stop` fires, finishing requests in flight.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.wait().await })
        .await
}
