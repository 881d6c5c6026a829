//! The one typed configuration, loaded once at start-up (see [`load`]).
//!
//! Every key is optional: the defaults live beside the fields, and a missing file runs the `demo`
//! site with the default journey map. Tests build a [`Config`] as a literal or from
//! `Config::default()`. After loading, [`Config::validate`] guarantees the invariants the rest of
//! the crate relies on (non-empty, unique sites and stages; limits that fit together).

mod engine;
mod journey;
mod kafka;
mod load;
mod redact;
mod state;
mod validate;

pub use engine::EngineConfig;
pub use journey::{
    DEFAULT_NAME as DEFAULT_JOURNEY, DEFAULT_STEP_DELAY, JourneyConfig, JourneyMode,
    MAX_SITE_JOURNEYS, NO_FRICTION, OTHER, StageConfig,
};
pub use kafka::KafkaConfig;
pub use load::{ConfigError, load, load_str};
pub use state::StateConfig;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// The whole configuration of a touchstream process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Public ingest listener: `POST /v1/events`. Env: `TOUCHSTREAM_LISTEN`.
    pub listen: SocketAddr,
    /// Admin listener: `/metrics`, `/healthz`, `/readyz`. Env: `TOUCHSTREAM_ADMIN_LISTEN`.
    pub admin_listen: SocketAddr,
    /// Sites allowed to send events. Replaces the default `demo` site when given (and then
    /// `snippet.demo` defaults to off).
    pub sites: Vec<SiteConfig>,
    /// The session timeout, and the journey map (named `default`) unless `journeys` is given.
    pub journey: JourneyConfig,
    /// Named journey maps; when given, they replace `journey`'s map (which may then set only
    /// `session_timeout`). Each site runs the journeys its `journeys` names (all by default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub journeys: Vec<JourneyConfig>,
    /// Request and event size limits of the collector.
    pub limits: LimitsConfig,
    /// Session store of the engine.
    pub engine: EngineConfig,
    /// The queue between collector and engine in `serve` (after the log).
    pub transport: TransportConfig,
    /// Kafka between collectors and engines.
    pub kafka: KafkaConfig,
    /// The tracking snippet and demo shop served on the public listener.
    pub snippet: SnippetConfig,
    /// The state directory of `serve`: its log of accepted batches and engine checkpoints.
    pub state: StateConfig,
    /// The file this was loaded from, read again on `SIGHUP` (not a configuration key).
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            sites: vec![SiteConfig::default()],
            journey: JourneyConfig::default(),
            journeys: Vec::new(),
            limits: LimitsConfig::default(),
            engine: EngineConfig::default(),
            transport: TransportConfig::default(),
            kafka: KafkaConfig::default(),
            snippet: SnippetConfig::default(),
            state: StateConfig::default(),
            source: None,
        }
    }
}

impl Config {
    /// The journey maps, in order: `journeys`, or `journey`'s map when none is given.
    pub fn journeys(&self) -> &[JourneyConfig] {
        if self.journeys.is_empty() {
            std::slice::from_ref(&self.journey)
        } else {
            &self.journeys
        }
    }

    /// The journeys site `site` runs: indices into [`Config::journeys`], in its order.
    pub fn site_journeys(&self, site: &SiteConfig) -> Vec<usize> {
        let all = self.journeys();
        if site.journeys.is_empty() {
            return (0..all.len()).collect();
        }
        (site.journeys.iter())
            .filter_map(|name| all.iter().position(|j| j.name == *name))
            .collect()
    }

    /// The site with this id.
    pub fn site(&self, id: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.id == id)
    }
}

/// One shop (or one environment of a shop) sending events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// Site id: the batch's `site` field and the `site` metric label. `[a-z0-9_-]{1,64}`.
    pub id: String,
    /// Browser origins allowed to post for this site (`scheme://host[:port]`), or `*` for any.
    /// Requests without an `Origin` header (server-side senders) are not origin-checked.
    pub origins: Vec<String>,
    /// ISO 4217 currency codes kept as `currency` label values; others are counted as `other`.
    pub currencies: Vec<String>,
    /// Currency of events that carry a value but no currency. Defaults to the first of
    /// `currencies`.
    pub default_currency: Option<String>,
    /// Honour the browser's Global Privacy Control (`Sec-GPC: 1`): such requests are accepted
    /// and counted as filtered (`consent`), never reaching the funnel.
    pub honor_gpc: bool,
    /// Count only events that carry `"consent": true`; others are accepted and filtered
    /// (`consent`).
    pub require_consent: bool,
    /// Public write keys: a batch's `site` may carry one of these instead of the id (metrics
    /// stay labelled by the id). Several at once allow rotation: add the new key, deploy the
    /// snippet with it, remove the old one; `SIGHUP` reloads them without a restart.
    pub keys: Vec<String>,
    /// Refuse batches that name the site by its id: only its keys (or a signed request) pass.
    pub require_key: bool,
    /// Secrets of signed server-side requests: a request whose `Touchstream-Signature` header
    /// is an HMAC-SHA256 of its body under one of them needs no allowed origin. Reloaded on
    /// `SIGHUP`.
    pub signing_secrets: Vec<String>,
    /// The journeys this site runs, by name, the first its main one (the touchpoints' phase);
    /// every configured journey when empty.
    pub journeys: Vec<String>,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            id: "demo".into(),
            origins: vec![
                "http://127.0.0.1:8080".into(),
                "http://localhost:8080".into(),
            ],
            currencies: ["USD", "EUR", "PLN", "GBP"].map(String::from).to_vec(),
            default_currency: None,
            honor_gpc: false,
            require_consent: false,
            keys: Vec::new(),
            require_key: false,
            signing_secrets: Vec::new(),
            journeys: Vec::new(),
        }
    }
}

impl SiteConfig {
    /// The currency assumed for an event that names none.
    pub fn default_currency(&self) -> &str {
        self.default_currency
            .as_deref()
            .or(self.currencies.first().map(String::as_str))
            .unwrap_or("other")
    }

    /// Whether a browser request from `origin` may post for this site.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// Collector limits. A request over a limit gets 413; an event over a per-event limit is
/// rejected with its reason while the rest of its batch is taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body, in bytes, both as sent and after gzip decompression.
    pub max_body_bytes: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Largest single event, in bytes of JSON.
    pub max_event_bytes: usize,
    /// Most entries in an event's `props.items`.
    pub max_items: usize,
    /// Time allowed for reading a request and answering it; slower requests get 408.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Events a second one site may send, over its burst; beyond it, 429 with `Retry-After`.
    /// 0: no limit.
    pub site_events_per_second: u64,
    /// Events a site may send at once above its rate.
    pub site_burst_events: u64,
    /// Requests a second from one client address, over its burst; beyond it, 429. 0: no limit.
    pub client_requests_per_second: u64,
    /// Requests a client address may send at once above its rate.
    pub client_burst_requests: u64,
    /// Client addresses tracked at most; the least recently seen are forgotten first.
    pub max_clients: usize,
    /// Header holding the client's address behind a reverse proxy, such as
    /// `x-forwarded-for`: read only from `trusted_proxies`, all its lines as one list, the
    /// client being `trusted_proxy_hops` places from its right. Empty: the peer address.
    pub client_address_header: String,
    /// Peers whose `client_address_header` is believed; a client whose own address is one of
    /// them (a proxy without the header) is exempt from the per-client connection share and
    /// new-session rate. CIDR blocks.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Proxies in front of the collector, each appending to `client_address_header`.
    pub trusted_proxy_hops: usize,
    /// IPv6 clients are limited per prefix of this length (a host holds a whole /64).
    pub client_ipv6_prefix: u8,
    /// Connections one client address may hold once its listener is over half full (trusted
    /// proxies exempt); beyond it, new ones are closed at once.
    pub max_client_connections: usize,
    /// Request body bytes held at once across all requests; beyond it, 503 with `Retry-After`.
    pub max_inflight_body_bytes: usize,
    /// Time allowed for a request's head to arrive, from the connection's start or the
    /// previous answer (so also the keep-alive idle timeout); a slower client is disconnected.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// `header_timeout` for connections from `trusted_proxies`: keep it above the load
    /// balancer's idle timeout (60 s on AWS ALB and nginx), or it may send a request into a
    /// connection being closed and answer 502.
    #[serde(with = "duration")]
    pub proxy_idle_timeout: Duration,
    /// Largest request head (request line and headers) in bytes, at least 8192; beyond it, 431.
    pub max_header_bytes: usize,
    /// Connections each listener holds at once; beyond it, new ones are closed at once.
    pub max_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 512 * 1024,
            max_batch_events: 500,
            max_event_bytes: 32 * 1024,
            max_items: 200,
            request_timeout: Duration::from_secs(10),
            site_events_per_second: 0,
            site_burst_events: 0,
            // Generous: a carrier-grade NAT puts many shoppers behind one address.
            client_requests_per_second: 200,
            client_burst_requests: 2_000,
            max_clients: 100_000,
            client_address_header: String::new(),
            header_timeout: Duration::from_secs(10),
            proxy_idle_timeout: Duration::from_secs(75),
            max_header_bytes: 32 * 1024,
            max_connections: 10_000,
            trusted_proxies: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ]
            .iter()
            .map(|n| n.parse().expect("a valid CIDR block"))
            .collect(),
            trusted_proxy_hops: 1,
            client_ipv6_prefix: 64,
            max_client_connections: 256,
            max_inflight_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The queue of `serve` from the log to the engine, bounded in events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Most events waiting for the engine. When full, requests wait up to `enqueue_timeout`
    /// and then get 503 with `Retry-After`.
    pub queue_events: usize,
    /// How long a request may wait for room in the queue.
    #[serde(with = "duration")]
    pub enqueue_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            queue_events: 100_000,
            enqueue_timeout: Duration::from_millis(500),
        }
    }
}

/// The snippet and demo shop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnippetConfig {
    /// Path of the snippet on the public listener; pick a neutral one to get past ad-blockers.
    pub path: String,
    /// How long browsers and CDNs may cache the snippet.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Serve the demo shop at `/demo` (its pages post to the `demo` site). On by default only
    /// when the configuration gives no `sites` of its own (see `load`).
    pub demo: bool,
}

impl Default for SnippetConfig {
    fn default() -> Self {
        Self {
            path: "/t.js".into(),
            max_age: Duration::from_secs(3600),
            demo: true,
        }
    }
}

/// Durations as human-readable strings such as `30m`, `2s` or `250ms`.
pub(crate) mod duration {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            D::Error::custom(format!(
                "`{text}` is not a duration such as `30m` or `2s`: {e}"
            ))
        })
    }

    /// An optional duration (written only when set).
    pub mod option {
        use serde::{Deserializer, Serializer};
        use std::time::Duration;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}
