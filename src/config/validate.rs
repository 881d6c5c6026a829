//! Checks that a deserialised [`Config`] is usable; each error names the offending key.

use super::{Config, ConfigError};
use std::collections::HashSet;

/// Bounds that keep label sets small and let the engine store indices in a byte or two.
const MAX_SITES: usize = 1_000;
const MAX_CURRENCIES: usize = 64;

pub(super) fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_write_key(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_origin(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/')
}

impl Config {
    /// Checks every invariant the collector and engine rely on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_sites()?;
        self.validate_journey()?;
        self.validate_kafka()?;
        self.state.validate()?;
        self.engine.validate(self.journey.session_timeout)?;
        let path = &self.snippet.path;
        let reserved = path == "/v1/events" || path == "/demo" || path.starts_with("/demo/");
        if !path.starts_with('/')
            || path.len() < 2
            || reserved
            || path.contains(['?', '#', '{', '}', '*'])
        {
            return Err(ConfigError::invalid(
                "snippet.path",
                "must be a plain path such as `/t.js`, not /v1/events or under /demo",
            ));
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_batch_events", l.max_batch_events),
            ("limits.max_event_bytes", l.max_event_bytes),
            ("engine.max_open_sessions", self.engine.max_open_sessions),
            (
                "engine.max_session_events",
                self.engine.max_session_events as usize,
            ),
            ("engine.max_stored_ids", self.engine.max_stored_ids),
            ("engine.max_remembered_ids", self.engine.max_remembered_ids),
            ("limits.max_connections", l.max_connections),
            ("limits.trusted_proxy_hops", l.trusted_proxy_hops),
            (
                "limits.header_timeout",
                l.header_timeout.as_millis().min(1) as usize,
            ),
            (
                "limits.proxy_idle_timeout",
                l.proxy_idle_timeout.as_millis().min(1) as usize,
            ),
            ("limits.max_client_connections", l.max_client_connections),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be greater than zero"));
            }
        }
        if l.client_ipv6_prefix > 128 {
            return Err(ConfigError::invalid(
                "limits.client_ipv6_prefix",
                "must be a prefix length of at most 128 (64 is one host's block)",
            ));
        }
        if l.max_inflight_body_bytes <= 2 * l.max_body_bytes {
            return Err(ConfigError::invalid(
                "limits.max_inflight_body_bytes",
                "must be more than twice limits.max_body_bytes (a gzip body and what it \
                 inflates to), or no large batch could ever pass",
            ));
        }
        if l.client_ipv6_prefix < 32 {
            return Err(ConfigError::invalid(
                "limits.client_ipv6_prefix",
                "must be at least 32 (64 is one host's block; shorter puts whole networks in \
                 one bucket)",
            ));
        }
        if l.max_header_bytes < 8192 {
            return Err(ConfigError::invalid(
                "limits.max_header_bytes",
                "must be at least 8192 (browsers send a few kilobytes of headers)",
            ));
        }
        if l.client_requests_per_second > 0 && l.max_clients == 0 {
            return Err(ConfigError::invalid(
                "limits.max_clients",
                "must be greater than zero while client_requests_per_second limits clients",
            ));
        }
        if !l.client_address_header.is_empty()
            && axum::http::HeaderName::from_bytes(l.client_address_header.as_bytes()).is_err()
        {
            return Err(ConfigError::invalid(
                "limits.client_address_header",
                format!("`{}` is not a header name", l.client_address_header),
            ));
        }
        if self.transport.queue_events < l.max_batch_events {
            return Err(ConfigError::invalid(
                "transport.queue_events",
                format!(
                    "must hold at least one full batch ({} events)",
                    l.max_batch_events
                ),
            ));
        }
        for (key, d) in [
            ("journey.session_timeout", self.journey.session_timeout),
            ("engine.sweep_interval", self.engine.sweep_interval),
            ("limits.request_timeout", self.limits.request_timeout),
            ("limits.header_timeout", self.limits.header_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "must be longer than zero"));
            }
        }
        Ok(())
    }

    fn validate_kafka(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        let named = [
            ("kafka.topic", &k.topic),
            ("kafka.dead_letter_topic", &k.dead_letter_topic),
            ("kafka.state_topic", &k.state_topic),
        ];
        for (i, &(key, topic)) in named.iter().enumerate() {
            let legal = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
            if topic.is_empty() || topic.len() > 249 || !topic.bytes().all(legal) {
                return Err(ConfigError::invalid(
                    key,
                    "must match [a-zA-Z0-9._-]{1,249}",
                ));
            }
            if named[..i].iter().any(|(_, other)| *other == topic) {
                return Err(ConfigError::invalid(
                    key,
                    "must differ from the other topics",
                ));
            }
        }
        if k.partitions < 1 || k.replication_factor < 1 {
            return Err(ConfigError::invalid(
                "kafka.partitions",
                "partitions and replication_factor must be at least 1",
            ));
        }
        if k.group_id.is_empty() {
            return Err(ConfigError::invalid("kafka.group_id", "must not be empty"));
        }
        if k.delivery_timeout.is_zero() || k.delivery_timeout >= self.limits.request_timeout {
            return Err(ConfigError::invalid(
                "kafka.delivery_timeout",
                "must be longer than zero and shorter than limits.request_timeout, so a client hears 503 before it gives up",
            ));
        }
        if k.rebuild_lookback < self.journey.session_timeout {
            return Err(ConfigError::invalid(
                "kafka.rebuild_lookback",
                "must be at least journey.session_timeout",
            ));
        }
        Ok(())
    }

    fn validate_sites(&self) -> Result<(), ConfigError> {
        if self.sites.is_empty() || self.sites.len() > MAX_SITES {
            return Err(ConfigError::invalid(
                "sites",
                format!("give 1 to {MAX_SITES} sites"),
            ));
        }
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            let key = |k: &str| format!("sites[{i}].{k}");
            if !is_label_name(&site.id) {
                return Err(ConfigError::invalid(
                    key("id"),
                    "must match [a-z0-9_-]{1,64}",
                ));
            }
            if !ids.insert(site.id.as_str()) {
                return Err(ConfigError::invalid(
                    key("id"),
                    format!("duplicate site `{}`", site.id),
                ));
            }
            if let Some(bad) = site.origins.iter().find(|o| !is_origin(o)) {
                return Err(ConfigError::invalid(
                    key("origins"),
                    format!("`{bad}` is not an origin such as `https://shop.example` or `*`"),
                ));
            }
            if site.currencies.len() > MAX_CURRENCIES {
                return Err(ConfigError::invalid(
                    key("currencies"),
                    format!("at most {MAX_CURRENCIES} currencies"),
                ));
            }
            if let Some(bad) = site.currencies.iter().find(|c| !is_currency(c)) {
                return Err(ConfigError::invalid(
                    key("currencies"),
                    format!("`{bad}` is not a three-letter upper-case ISO 4217 code"),
                ));
            }
            if let Some(d) = &site.default_currency
                && !site.currencies.contains(d)
            {
                return Err(ConfigError::invalid(
                    key("default_currency"),
                    format!("`{d}` is not one of the site's currencies"),
                ));
            }
            self.validate_credentials(i, site, &mut names)?;
        }
        Ok(())
    }

    /// Keys are unique across sites and never another site's id; secrets are long enough.
    fn validate_credentials<'a>(
        &self,
        i: usize,
        site: &'a super::SiteConfig,
        names: &mut HashSet<&'a str>,
    ) -> Result<(), ConfigError> {
        let key = |k: &str| format!("sites[{i}].{k}");
        for k in &site.keys {
            if !is_write_key(k) {
                return Err(ConfigError::invalid(
                    key("keys"),
                    "a write key is 16 to 128 of [A-Za-z0-9_-]",
                ));
            }
            if self.sites.iter().any(|s| s.id == *k) || !names.insert(k.as_str()) {
                return Err(ConfigError::invalid(
                    key("keys"),
                    format!("`{k}` is already a site id or another key"),
                ));
            }
        }
        if let Some(short) = site.signing_secrets.iter().find(|s| s.len() < 32) {
            return Err(ConfigError::invalid(
                key("signing_secrets"),
                format!(
                    "a secret of {} characters is too short to sign with; use at least 32",
                    short.len()
                ),
            ));
        }
        if site.require_key && site.keys.is_empty() && site.signing_secrets.is_empty() {
            return Err(ConfigError::invalid(
                key("require_key"),
                "needs `keys` (or `signing_secrets`): otherwise no batch could be accepted",
            ));
        }
        Ok(())
    }
}

pub(super) fn check_touchpoint_name(t: &str, key: &str) -> Result<(), ConfigError> {
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(ConfigError::invalid(
            key,
            format!("`{t}` must match [a-z0-9_]{{1,64}}"),
        ));
    }
    if t == crate::config::OTHER {
        return Err(ConfigError::invalid(
            key,
            "`other` is the label of every type the journeys do not name: pick another name",
        ));
    }
    Ok(())
}

/// Records that `key` defines touchpoint `t`; a touchpoint may belong to one place only.
pub(super) fn claim<'a>(
    owner: &mut std::collections::HashMap<&'a str, String>,
    t: &'a str,
    key: String,
) -> Result<(), ConfigError> {
    check_touchpoint_name(t, &key)?;
    if let Some(first) = owner.insert(t, key.clone()) {
        return Err(ConfigError::invalid(
            key,
            format!("touchpoint `{t}` is already defined in {first}"),
        ));
    }
    Ok(())
}

mod journey;
#[cfg(test)]
mod tests;
