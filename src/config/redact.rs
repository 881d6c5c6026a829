//! What `touchstream check-config` prints: the resolved configuration with its secrets hidden.
//! Signing secrets are hidden whole (how many there are still shows), and so are the librdkafka
//! properties that hold credentials. Write keys stay: they are public, in the shop's pages.

use super::Config;
use std::collections::BTreeMap;

/// What a hidden value is printed as.
pub const REDACTED: &str = "(redacted)";

/// Parts of librdkafka property names whose values are credentials: `sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`, `ssl.key.pem`,
/// `sasl.oauthbearer.client.secret`, `sasl.oauthbearer.config` and the like.
const SECRET_PROPERTIES: &[&str] = &[
    "password",
    "secret",
    "passphrase",
    "key.pem",
    "private.key",
    "oauthbearer.config",
];

impl Config {
    /// What `check-config` prints: the configuration with its secrets hidden, as TOML that loads
    /// again. With `[[journeys]]`, `[journey]` holds only the session timeout and the entries
    /// none (as a file must write them).
    pub fn printable(&self) -> Result<String, String> {
        let mut value = toml::Value::try_from(self.redacted()).map_err(|e| e.to_string())?;
        if !self.journeys.is_empty()
            && let Some(table) = value.as_table_mut()
        {
            if let Some(toml::Value::Table(journey)) = table.get_mut("journey") {
                journey.retain(|k, _| k == "session_timeout");
            }
            if let Some(toml::Value::Array(entries)) = table.get_mut("journeys") {
                for entry in entries.iter_mut().filter_map(toml::Value::as_table_mut) {
                    entry.remove("session_timeout");
                }
            }
        }
        toml::to_string_pretty(&value).map_err(|e| e.to_string())
    }

    /// This configuration with every secret replaced by `"(redacted)"`, for printing.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        for site in &mut c.sites {
            site.signing_secrets.fill(REDACTED.to_string());
        }
        for properties in [&mut c.kafka.producer, &mut c.kafka.consumer] {
            redact_properties(properties);
        }
        c
    }
}

fn redact_properties(properties: &mut BTreeMap<String, String>) {
    for (name, value) in properties.iter_mut() {
        let name = name.to_ascii_lowercase();
        if SECRET_PROPERTIES.iter().any(|part| name.contains(part)) {
            *value = REDACTED.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SiteConfig;

    #[test]
    fn secrets_are_hidden_and_everything_else_stays() {
        let mut c = Config {
            sites: vec![SiteConfig {
                keys: vec!["pk_live_0123456789".into()],
                signing_secrets: vec!["a".repeat(32), "b".repeat(32)],
                ..SiteConfig::default()
            }],
            ..Config::default()
        };
        let properties = [
            ("sasl.password", "hunter2"),
            ("ssl.key.password", "hunter3"),
            ("sasl.oauthbearer.client.secret", "hunter4"),
            ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----"),
            ("sasl.username", "touchstream"),
            ("linger.ms", "10"),
        ];
        c.kafka.producer = properties.map(|(k, v)| (k.into(), v.into())).into();
        c.kafka.consumer = c.kafka.producer.clone();
        let r = c.redacted();
        assert_eq!(r.sites[0].signing_secrets, [REDACTED, REDACTED]);
        assert_eq!(r.sites[0].keys, c.sites[0].keys);
        for props in [&r.kafka.producer, &r.kafka.consumer] {
            let shown: Vec<&str> = props.values().map(String::as_str).collect();
            // In name order: linger, oauthbearer secret, password, username, key password, pem.
            assert_eq!(
                shown,
                ["10", REDACTED, REDACTED, "touchstream", REDACTED, REDACTED]
            );
        }
    }
}
