//! Serving a router on a listener with the limits a public endpoint needs, which `axum::serve`
//! does not expose: request headers must arrive within a time and fit in a size (a slowloris
//! client is cut off), and a listener holds at most so many connections (beyond that, new ones
//! are closed at once and counted). Shutdown is graceful: the listener closes, requests in
//! flight finish, idle connections close.

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time allowed for a request's headers to arrive (per request, keep-alive included).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), in bytes; beyond it, 431.
    pub max_header_bytes: usize,
    /// Connections held at once.
    pub max_connections: usize,
}

impl From<&crate::config::LimitsConfig> for ConnectionLimits {
    fn from(l: &crate::config::LimitsConfig) -> Self {
        ConnectionLimits {
            header_timeout: l.header_timeout,
            max_header_bytes: l.max_header_bytes,
            max_connections: l.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.http.connections_refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        metrics.http.connections_open.inc();
        tokio::spawn(async move {
            // Errors here are the client's: a reset, a timeout, a malformed request.
            let _ = connection.await;
            metrics.http.connections_open.dec();
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
