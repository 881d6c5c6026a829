//! Validation tests: each bad setting is refused with the key that names it.

use crate::config::{Config, SiteConfig};
use std::time::Duration;

/// The error of the default configuration after `change`; it must name `key`.
fn rejected(change: impl FnOnce(&mut Config), key: &str) -> String {
    let mut c = Config::default();
    change(&mut c);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains(key), "{key}: {e}");
    e
}

#[test]
fn default_is_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn rejects_inconsistent_journeys() {
    let e = rejected(
        |c| c.journey.stages[1].touchpoints.push("page_view".into()),
        "journey.stages[1].touchpoints",
    );
    assert!(e.contains("page_view"), "{e}");
    rejected(
        |c| c.journey.cart_stage = "basket".into(),
        "journey.cart_stage",
    );
    rejected(
        |c| c.sites[0].currencies.push("usd".into()),
        "sites[0].currencies",
    );
    rejected(|c| c.sites.push(c.sites[0].clone()), "duplicate site");
    rejected(|c| c.transport.queue_events = 10, "transport.queue_events");
}

#[test]
fn rejects_unusable_snippet_and_kafka_settings() {
    for path in ["/v1/events", "/demo/t.js", "t.js", "/", "/t.js?v=1"] {
        rejected(|c| c.snippet.path = path.into(), "snippet.path");
    }
    rejected(
        |c| c.kafka.delivery_timeout = c.limits.request_timeout,
        "kafka.delivery_timeout",
    );
    rejected(
        |c| c.kafka.rebuild_lookback = Duration::from_secs(60),
        "kafka.rebuild_lookback",
    );
    rejected(
        |c| c.kafka.dead_letter_topic = c.kafka.topic.clone(),
        "kafka.dead_letter_topic",
    );
    rejected(|c| c.kafka.topic = "events/all".into(), "kafka.topic");
    rejected(
        |c| c.kafka.state_topic = c.kafka.dead_letter_topic.clone(),
        "kafka.state_topic",
    );
    rejected(|c| c.kafka.state_topic = String::new(), "kafka.state_topic");
}

#[test]
fn rejects_unusable_credentials_and_connection_limits() {
    let key = "pk_live_0123456789";
    rejected(|c| c.sites[0].keys = vec!["short".into()], "sites[0].keys");
    rejected(
        |c| c.sites[0].keys = vec!["bad key with spaces!".into()],
        "sites[0].keys",
    );
    let e = rejected(
        |c| c.sites[0].keys = vec![key.into(), key.into()],
        "sites[0].keys",
    );
    assert!(e.contains("already"), "{e}");
    // A key may not be another site's id, nor another site's key.
    let e = rejected(
        |c| {
            c.sites.push(SiteConfig {
                id: "shop-0123456789ab".into(),
                ..SiteConfig::default()
            });
            c.sites[0].keys = vec!["shop-0123456789ab".into()];
        },
        "sites[0].keys",
    );
    assert!(e.contains("already"), "{e}");
    rejected(
        |c| {
            c.sites[0].keys = vec![key.into()];
            c.sites.push(SiteConfig {
                id: "other".into(),
                keys: vec![key.into()],
                ..SiteConfig::default()
            });
        },
        "sites[1].keys",
    );
    let e = rejected(
        |c| c.sites[0].signing_secrets = vec!["too-short".into()],
        "sites[0].signing_secrets",
    );
    assert!(e.contains("at least 32"), "{e}");
    rejected(|c| c.sites[0].require_key = true, "sites[0].require_key");
    rejected(
        |c| c.limits.max_header_bytes = 4096,
        "limits.max_header_bytes",
    );
    rejected(|c| c.limits.max_connections = 0, "limits.max_connections");
    rejected(
        |c| c.limits.header_timeout = Duration::ZERO,
        "limits.header_timeout",
    );
    rejected(|c| c.limits.max_clients = 0, "limits.max_clients");
    rejected(
        |c| c.limits.client_address_header = "x forwarded".into(),
        "limits.client_address_header",
    );
    // A site taking keys only, with a key, is fine.
    let mut c = Config::default();
    c.sites[0].keys = vec![key.into()];
    c.sites[0].require_key = true;
    c.validate().unwrap();
}

#[test]
fn rejects_unusable_state_settings() {
    let e = rejected(|c| c.state.dir = "".into(), "state.dir");
    assert!(e.contains("must name a directory"), "{e}");
    let e = rejected(
        |c| c.state.checkpoint_interval = Duration::from_millis(500),
        "state.checkpoint_interval",
    );
    assert!(e.contains("at least 1s"), "{e}");
    let e = rejected(|c| c.state.segment_bytes = 4096, "state.segment_bytes");
    assert!(e.contains("1 MiB"), "{e}");
}

#[test]
fn rejects_a_dedup_horizon_shorter_than_a_session() {
    let e = rejected(
        |c| c.engine.dedup_horizon = Duration::from_secs(60),
        "engine.dedup_horizon",
    );
    assert!(e.contains("journey.session_timeout"), "{e}");
    rejected(
        |c| c.engine.max_remembered_ids = 0,
        "engine.max_remembered_ids",
    );
}
