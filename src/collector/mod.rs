//! The collector: `POST /v1/events` on the public listener (CONTRACT.md section 1).
//!
//! A request is checked in the order a client can fix it: the client address's rate (429),
//! content type and encoding (415), size before and after decompression (413), JSON shape
//! (400), site or write key and signature (401), origin unless signed (403), batch length
//! (413), the site's rate (429). Then each event is decoded and validated on its own: good
//! events are enriched and handed to the transport in one `send`, bad ones are named in the
//! answer with a reason. The answer is 200 only after the transport holds every accepted event;
//! if it cannot take them, 503 with `Retry-After` and nothing is accepted. The client's address
//! is read only to rate-limit it, kept hashed in a bounded map, and never logged or forwarded.

mod access;
mod assets;
mod body;
mod budget;
mod client;
mod decode;
mod diagnose;
mod enrich;
mod error;
mod mask;
mod preflight;
mod wire;

pub use access::{SIGNATURE_HEADER, sign};
pub use body::check_depth;
pub use client::{Client, Resolver, UNCONFIGURED_PROXY};
pub use decode::{BatchContext, Clock, Decoded, decode_batch};
pub use mask::{mask, mask_json, pseudonymise};
pub use wire::{Rejection, WireBatch};

use crate::config::{Config, LimitsConfig, SiteConfig, SnippetConfig};
use crate::event::{FilterReason, RejectReason};
use crate::metrics::{Metrics, track};
use crate::ratelimit::Limiter;
use crate::transport::{DeadLetter, EventSink};
use access::{Named, Sites};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router, middleware};
use error::ApiError;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Shared state of the public listener.
pub struct CollectorState {
    sites: RwLock<Arc<Sites>>,
    limits: LimitsConfig,
    snippet: SnippetConfig,
    sink: Arc<dyn EventSink>,
    metrics: Arc<Metrics>,
    clients: Limiter,
    site_rates: Limiter,
    resolver: Arc<Resolver>,
    bodies: budget::Budget,
}

impl CollectorState {
    pub fn new(config: &Config, sink: Arc<dyn EventSink>, metrics: Arc<Metrics>) -> Self {
        let l = &config.limits;
        Self {
            sites: RwLock::new(Arc::new(Sites::new(&config.sites))),
            limits: l.clone(),
            snippet: config.snippet.clone(),
            sink,
            metrics,
            clients: Limiter::new(
                l.client_requests_per_second as f64,
                l.client_burst_requests as f64,
                l.max_clients,
            ),
            site_rates: Limiter::new(
                l.site_events_per_second as f64,
                l.site_burst_events as f64,
                // Room for every site in any shard: a site's bucket is never forgotten.
                config.sites.len() * 64,
            ),
            resolver: Arc::new(Resolver::new(l)),
            bodies: budget::Budget::new(l.max_inflight_body_bytes),
        }
    }

    /// How clients are told apart, shared with the listener's connection limits.
    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// What `/readyz` should tell an operator about this collector's set-up.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut w = Vec::new();
        if self.resolver.saw_unconfigured_proxy() {
            w.push(UNCONFIGURED_PROXY);
        }
        w
    }

    fn sites(&self) -> Arc<Sites> {
        self.sites.read().expect("never poisoned").clone()
    }

    /// Takes the sites' keys, secrets, origins and consent settings from `config` (a reload:
    /// rotation without a restart). The site ids must stay the same, in the same order, since
    /// every metric series is already labelled by them.
    pub fn reload_sites(&self, config: &Config) -> Result<(), String> {
        let new = Sites::new(&config.sites);
        let mut current = self.sites.write().expect("never poisoned");
        if new.ids() != current.ids() {
            return Err(format!(
                "the site ids changed ({:?} to {:?}); restart to apply that",
                current.ids(),
                new.ids()
            ));
        }
        *current = Arc::new(new);
        Ok(())
    }
}

/// The public router: ingest, CORS preflight, the snippet and demo shop, JSON 404/405, request
/// metrics.
pub fn router(state: Arc<CollectorState>) -> Router {
    let assets = assets::router(&state.snippet);
    let metrics = state.metrics.clone();
    Router::new()
        .route(
            "/v1/events",
            post(ingest)
                .options(preflight::preflight)
                .fallback(|| async { ApiError::MethodNotAllowed }),
        )
        .with_state(state)
        .merge(assets)
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(metrics, track))
}

/// The 200 answer.
#[derive(Debug, Serialize)]
pub struct IngestResponse {
    pub accepted: usize,
    pub rejected: Vec<RejectedEvent>,
}

/// One rejected event of a batch.
#[derive(Debug, Serialize)]
pub struct RejectedEvent {
    pub index: usize,
    pub reason: &'static str,
    pub message: String,
}

async fn ingest(State(st): State<Arc<CollectorState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut upload = body::Upload::new(body);
    let headers = parts.headers;
    let peer = peer(&parts.extensions);
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let sites = st.sites();
    let mut site = None;
    let client = st.resolver.resolve(&headers, peer);
    let result = match st.check_client(client) {
        Ok(()) => (st.ingest(&sites, &headers, origin, &mut upload, client, &mut site)).await,
        Err(e) => Err(e),
    };
    // A refused body is read to its end while the answer goes out, so the client gets it;
    // not for a client over its rate or while bodies are over budget (that would invite more),
    // nor after the body was too slow.
    if let Err(e) = &result
        && !matches!(
            e,
            ApiError::RateLimited(_) | ApiError::Unavailable | ApiError::Timeout(_)
        )
    {
        body::linger(upload, &headers, st.limits.request_timeout);
    }
    let mut response = match result {
        Ok(ok) => Json(ok).into_response(),
        Err(e) => e.into_response(),
    };
    let allowed = |s: &SiteConfig| origin.is_some_and(|o| s.allows_origin(o));
    let cors = match site {
        Some(i) => allowed(&sites.list[i].1),
        None => sites.list.iter().any(|(_, s)| allowed(s)),
    };
    if let (true, Some(o)) = (cors, origin.and_then(|o| HeaderValue::from_str(o).ok())) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// The connection's peer, which the listener puts on every request (none in router tests).
pub(super) fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// Client text quoted back in an error message: cut to 256 characters, personal data masked,
/// then cut to a readable length (masked before the last cut, so it cannot leave part of a
/// number unmasked; cut before masking, so a huge value costs nothing).
pub(super) fn truncate(s: &str) -> String {
    let mut head: String = s.chars().take(256).collect();
    if head.len() < s.len() {
        // The cut may split a number or an address: drop the word it fell in.
        let end = head.rfind(char::is_whitespace).unwrap_or(0);
        head.truncate(end);
    }
    mask::mask(&head).chars().take(64).collect()
}

impl CollectorState {
    /// The client address's rate limit, before anything else is read.
    fn check_client(&self, client: Option<Client>) -> Result<(), ApiError> {
        let Some(client) = client.filter(|_| self.clients.is_enabled()) else {
            return Ok(());
        };
        self.clients
            .check(client.key, 1.0, Instant::now())
            .map_err(ApiError::rate_limited)
    }

    async fn ingest(
        &self,
        sites: &Sites,
        headers: &HeaderMap,
        origin: Option<&str>,
        body: &mut body::Upload,
        client: Option<Client>,
        site_out: &mut Option<usize>,
    ) -> Result<IngestResponse, ApiError> {
        let limit = self.limits.max_body_bytes;
        let encoding = body::check_headers(headers)?;
        let hint = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        // The bytes this request holds, given back to the shared budget when it ends.
        let mut held = self.bodies.hold(client);
        let reading = body::read(body, limit, hint, &mut held);
        let sent = tokio::time::timeout(self.limits.request_timeout, reading)
            .await
            .map_err(|_| ApiError::Timeout(self.limits.request_timeout.as_secs()))??;
        let raw = match encoding {
            body::Encoding::Gzip => body::gunzip(&sent, limit, &mut held)?,
            body::Encoding::Identity => sent.clone(),
        };
        body::check_depth(&raw)?;
        let batch: WireBatch = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::Malformed(format!("the body is not a valid batch: {e}")))?;
        let (site, named) = sites
            .find(&batch.site)
            .ok_or_else(|| ApiError::UnknownSite(truncate(&batch.site)))?;
        *site_out = Some(site);
        let (site_id, cfg) = &sites.list[site];
        let now = crate::now_ms();
        let signed =
            access::verify_signature(headers, &sent, &cfg.signing_secrets, now.div_euclid(1000))?;
        if cfg.require_key && named == Named::ById && !signed {
            return Err(ApiError::KeyRequired(site_id.to_string()));
        }
        if let Some(o) = origin.filter(|o| !signed && !cfg.allows_origin(o)) {
            return Err(ApiError::OriginNotAllowed(truncate(o)));
        }
        let max = self.limits.max_batch_events;
        if batch.events.len() > max {
            return Err(ApiError::TooLarge(format!(
                "the batch has {} events; the limit is {max}",
                batch.events.len()
            )));
        }
        let events = batch.events.len() as u64;
        if let Err(wait) = self.site_rates.check(site, events as f64, Instant::now()) {
            let m = &self.metrics.ingest;
            m.received(site).inc_by(events);
            m.rejected(site, RejectReason::RateLimited).inc_by(events);
            return Err(ApiError::rate_limited(wait));
        }
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let gpc = headers.get("sec-gpc").is_some_and(|v| v.as_bytes() == b"1");
        let ctx = BatchContext {
            site: site_id.clone(),
            require_consent: cfg.require_consent,
            clock: Clock::Received {
                at: now,
                sent_at: batch.sent_at,
            },
            device: enrich::device(user_agent),
            filter: if enrich::is_bot(user_agent) {
                Some(FilterReason::Bot)
            } else if gpc && cfg.honor_gpc {
                Some(FilterReason::Consent)
            } else {
                None
            },
            // Signed senders (order systems) open many sessions from one address by design.
            origin: if signed {
                0
            } else {
                self.resolver.origin(client)
            },
        };
        self.accept(site, now, &ctx, &batch).await
    }

    /// Decodes the batch's events and hands the good ones to the transport; the answer names
    /// every rejected one.
    async fn accept(
        &self,
        site: usize,
        received_at: i64,
        ctx: &BatchContext,
        batch: &WireBatch<'_>,
    ) -> Result<IngestResponse, ApiError> {
        let m = &self.metrics.ingest;
        m.received(site).inc_by(batch.events.len() as u64);
        let decoded = decode_batch(&batch.events, ctx, &self.limits);
        let valid = decoded.valid();
        let mut letters = Vec::with_capacity(decoded.rejected.len());
        let mut rejected = Vec::with_capacity(decoded.rejected.len());
        // Keyed by the masked events: the id must not let a reader confirm a guess of what
        // masking hid.
        let key = (!decoded.rejected.is_empty()).then(|| {
            let masked: Vec<_> = batch
                .events
                .iter()
                .map(|e| mask::mask_json(e.get()))
                .collect();
            DeadLetter::batch_key(&ctx.site, masked.iter().map(|m| &**m))
        });
        for (index, r) in decoded.rejected {
            m.rejected(site, r.reason).inc();
            letters.push(DeadLetter::new(
                key.as_ref().expect("made when an event is rejected"),
                index,
                r.reason.as_str(),
                r.message.clone(),
                masked_raw(batch.events[index]),
                received_at,
                &ctx.site,
            ));
            rejected.push(RejectedEvent {
                index,
                reason: r.reason.as_str(),
                message: r.message,
            });
        }
        // Events first, letters only once every event is delivered: a 503 for the events leaves
        // no letter behind, and a retry writes each once. A 503 for the letters (the events
        // delivered) makes the retry's events duplicates, which change no figure, and its
        // letters repeats with the same `id`.
        let mut sent = self.sink.send(decoded.events).await;
        if sent.is_ok() && !letters.is_empty() {
            sent = self.sink.dead_letter(letters).await;
        }
        if let Err(e) = sent {
            tracing::warn!(error = %e, site = %ctx.site, "transport refused a batch; answering 503");
            m.rejected(site, RejectReason::Unavailable).inc_by(valid);
            return Err(ApiError::Unavailable);
        }
        m.accepted(site).inc_by(valid);
        for reason in FilterReason::ALL {
            m.filtered(site, *reason)
                .inc_by(decoded.filtered[reason.index()]);
        }
        Ok(IngestResponse {
            accepted: valid as usize,
            rejected,
        })
    }
}

/// A rejected event's raw JSON with personal data masked, for the dead-letter topic.
fn masked_raw(raw: &serde_json::value::RawValue) -> Box<serde_json::value::RawValue> {
    match mask::mask_json(raw.get()) {
        std::borrow::Cow::Borrowed(_) => raw.to_owned(),
        std::borrow::Cow::Owned(text) => {
            serde_json::value::RawValue::from_string(text).expect("masking keeps JSON valid")
        }
    }
}
