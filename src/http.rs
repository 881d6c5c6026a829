//! Serving a router on a listener with the limits a public endpoint needs, which `axum::serve`
//! does not expose. Every connection must earn its slot:
//! - it speaks HTTP/1.1 only (HTTP/2 has no bound on an idle or slow connection in hyper's
//!   server, so it is off; browsers never use cleartext HTTP/2 and load balancers speak
//!   HTTP/1.1 to their backends);
//! - a request head must arrive within `header_timeout`, counted from the connection's start
//!   or the previous answer, so an idle keep-alive connection closes after it too (for a
//!   trusted proxy, `proxy_idle_timeout`: a load balancer keeps its connections for longer);
//! - an answer that cannot be written (a client that pipelines requests and never reads) fails
//!   the connection after `header_timeout` without progress;
//! - a listener holds at most `max_connections`, and once it is over half full one client
//!   address (IPv6 per prefix; trusted proxies exempt) at most `max_client_connections`;
//!   beyond either, new connections are closed at once and counted.
//!
//! Shutdown is graceful: the listener closes, requests in flight finish, idle connections
//! close, and whatever is still open after `request_timeout + header_timeout` is cut.

use crate::collector::Resolver;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

/// Connection limits of one listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time allowed for a request's head to arrive (from the connection's start or the
    /// previous answer: also the keep-alive idle timeout), and for a stalled answer to move.
    pub header_timeout: Duration,
    /// The same for connections from trusted proxies, which keep connections open between
    /// requests for longer than a client should (above the load balancer's idle timeout, or
    /// it sends a request into a connection being closed and answers 502).
    pub proxy_idle_timeout: Duration,
    /// Largest request head (request line and headers), in bytes; beyond it, 431.
    pub max_header_bytes: usize,
    /// Connections held at once.
    pub max_connections: usize,
    /// Connections one client may hold once the listener is over half full.
    pub max_client_connections: usize,
    /// How long shutdown waits for open connections before cutting them.
    pub drain_timeout: Duration,
    /// Tells clients apart for the per-client share; none: no share (the admin listener).
    pub clients: Option<Arc<Resolver>>,
}

impl From<&crate::config::LimitsConfig> for ConnectionLimits {
    fn from(l: &crate::config::LimitsConfig) -> Self {
        ConnectionLimits {
            header_timeout: l.header_timeout,
            proxy_idle_timeout: l.proxy_idle_timeout,
            max_header_bytes: l.max_header_bytes,
            max_connections: l.max_connections,
            max_client_connections: l.max_client_connections,
            drain_timeout: l.request_timeout + l.header_timeout,
            clients: None,
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
    let builder = |timeout: Duration| {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(timeout)
            .max_buf_size(limits.max_header_bytes.max(8192));
        b
    };
    let (clients, proxies) = (
        builder(limits.header_timeout),
        builder(limits.proxy_idle_timeout),
    );
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let shares = Arc::new(Shares::default());
    let (abort, aborted) = tokio::sync::watch::channel(false);
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
            continue;
        };
        let pressed = permits.available_permits() < limits.max_connections / 2;
        let client = limits.clients.as_ref().map(|c| c.peer(peer.ip()));
        let share = match client {
            Some(client) => {
                let most = (pressed && !client.exempt).then_some(limits.max_client_connections);
                match shares.take(client.key, most) {
                    Some(share) => Some(share),
                    None => {
                        metrics.http.connections_refused.inc();
                        continue;
                    }
                }
            }
            None => None,
        };
        let (builder, stall) = match client {
            Some(c) if c.exempt => (&proxies, limits.proxy_idle_timeout),
            _ => (&clients, limits.header_timeout),
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let io = TokioIo::new(Guarded::new(stream, stall));
        let connection = builder.serve_connection(io, TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        let mut aborted = aborted.clone();
        metrics.http.connections_open.inc();
        tokio::spawn(async move {
            // Errors here are the client's: a reset, a timeout, a malformed request.
            tokio::select! {
                _ = connection => {}
                _ = aborted.wait_for(|cut| *cut) => {}
            }
            metrics.http.connections_open.dec();
            drop((permit, share));
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            after = ?limits.drain_timeout,
            "connections still open at shutdown: closing them"
        );
        let _ = abort.send(true);
    }
    Ok(())
}

/// Connections held per client key, for the share a client may take under pressure.
#[derive(Debug, Default)]
struct Shares(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`Shares`], given back on drop.
struct Share(Arc<Shares>, IpAddr);

impl Shares {
    /// Counts a connection of `key`, unless it already holds `most`.
    fn take(self: &Arc<Self>, key: IpAddr, most: Option<usize>) -> Option<Share> {
        let mut held = self.0.lock().expect("never poisoned");
        let n = held.entry(key).or_insert(0);
        if most.is_some_and(|most| *n >= most) {
            return None;
        }
        *n += 1;
        Some(Share(self.clone(), key))
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.0.0.lock().expect("never poisoned");
        if let Some(n) = held.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.1);
            }
        }
    }
}

/// A stream whose writes fail once they have made no progress for `stall`: a peer that stops
/// reading cannot hold its connection (or delay shutdown) for ever.
struct Guarded<S> {
    inner: S,
    stall: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> Guarded<S> {
    fn new(inner: S, stall: Duration) -> Self {
        Guarded {
            inner,
            stall,
            stalled: None,
        }
    }

    /// Called when a write could not progress: fails once that has lasted `stall`.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let stall = self.stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the peer stopped reading",
        )))
    }

    /// Passes a write's result on, restarting the stall timer on progress.
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Pending => self.pending(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, polled)
    }
}
