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

/// `[[journeys]]`: named maps, each site running those it names; every mistake is named.
#[test]
fn journeys_are_loaded_and_checked() {
    use crate::config::{JourneyMode, load_str};
    let none = Vec::<(String, String)>::new;
    let two = "[[journeys]]\nname = \"shop\"\n\
               [[journeys]]\nname = \"quote\"\nmode = \"ordered\"\ncart_stage = \"\"\n\
               purchase_stage = \"signed\"\nfriction = []\n\
               [[journeys.stages]]\nname = \"landing\"\nphase = \"awareness\"\ntouchpoints = [\"page_view\"]\n\
               [[journeys.stages]]\nname = \"signed\"\nphase = \"decision\"\ntouchpoints = [\"quote_signed\"]\n\
               within = \"2h\"\n";
    let c = load_str(two, "t.toml", none()).unwrap();
    let names: Vec<&str> = c.journeys().iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["shop", "quote"]);
    assert_eq!(c.journeys()[1].mode, JourneyMode::Ordered);
    assert_eq!(
        c.journeys()[1].stages[1].within,
        Some(Duration::from_secs(7200))
    );
    assert_eq!(c.journeys()[1].cart_stage(), None);
    // The shop journey keeps the default map; the demo site runs both.
    assert_eq!(c.journeys()[0].stages.len(), 5);
    assert_eq!(c.site_journeys(&c.sites[0]), [0, 1]);
    // A site names the journeys it runs, the first its main one.
    let own = format!("{two}[[sites]]\nid = \"b2b\"\njourneys = [\"quote\", \"shop\"]\n");
    let c = load_str(&own, "t.toml", none()).unwrap();
    assert_eq!(c.site_journeys(&c.sites[0]), [1, 0]);

    let refused = |text: &str, key: &str, words: &str| {
        let err = load_str(text, "t.toml", none()).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(words), "{key}: {err}");
    };
    refused(
        &format!("{two}[journey]\nstages = []\n"),
        "journey.stages",
        "sets only session_timeout",
    );
    refused(
        "[[journeys]]\nname = \"a\"\nsession_timeout = \"5m\"\n",
        "journeys[0].session_timeout",
        "one for all journeys",
    );
    refused(
        "[[journeys]]\nname = \"a\"\n[[journeys]]\nname = \"a\"\n",
        "journeys[1].name",
        "duplicate journey",
    );
    refused(
        &format!("{two}[[sites]]\nid = \"b2b\"\njourneys = [\"quotes\"]\n"),
        "sites[0].journeys",
        "no journey is named `quotes`",
    );
    refused(
        "[[journeys]]\nname = \"a\"\ncart_stage = \"basket\"\n",
        "journeys[0].cart_stage",
        "cart_stage = \"\"",
    );
    refused(
        &two_stages("", "within = \"1m\""),
        "journey.stages[1].within",
        "mode = \"ordered\"",
    );
    refused(
        "[journey]\nmode = \"ordered\"\n[[journey.stages]]\nname = \"a\"\nphase = \"p\"\n\
         touchpoints = [\"x\"]\nwithin = \"1m\"\n",
        "journey.stages[0].within",
        "first stage",
    );
    refused(
        "[journey]\n[[journey.stages]]\nname = \"a\"\nphase = \"p\"\ntouchpoints = [\"x\"]\n\
         step_delay = \"1m\"\n",
        "journey.stages[0].step_delay",
        "first stage",
    );
    refused(
        &two_stages("", "step_delay = \"2h\""),
        "journey.stages[1].step_delay",
        "at most 1h",
    );
    refused(
        &two_stages("", "step_delay = \"90s\""),
        "journey.stages[1].step_delay",
        "whole minutes",
    );
    refused(
        &two_stages(
            "mode = \"ordered\"\n",
            "within = \"5m\"\nstep_delay = \"10m\"",
        ),
        "journey.stages[1].step_delay",
        "`within`",
    );
    refused(
        "[[journeys]]\nname = \"a\"\n[[journeys]]\nname = \"b\"\ncart_add = []\n\
         cart_remove = [\"add_to_cart\"]\n",
        "journeys[1].cart_remove",
        "in every journey alike",
    );
    refused(
        "[journey]\nmode = \"sideways\"\n",
        "journey.mode",
        "sideways",
    );
    let many: String = (0..9)
        .map(|i| format!("[[journeys]]\nname = \"j{i}\"\n"))
        .collect();
    refused(&many, "sites[0].journeys", "at most 8");
    // The labels of what no journey names, and of no friction, are reserved.
    refused(
        "[journey]\nother_touchpoints = [\"other\"]\n",
        "journey.other_touchpoints",
        "`other` is the label",
    );
    refused(
        "[journey]\nfriction = [\"none\"]\n",
        "journey.friction",
        "`none` is the kind",
    );
    // What check-config prints loads again, to the same journeys.
    let c = load_str(two, "t.toml", none()).unwrap();
    let printed = c.printable().unwrap();
    let again = load_str(&printed, "printed.toml", none()).unwrap();
    assert_eq!(again.journeys(), c.journeys(), "{printed}");
    refused(
        "[[journeys]]\nname = \"a\"\n[[journeys]]\nmode = \"ordered\"\n",
        "journeys[1].name",
        "give each journey a name",
    );
    refused(
        "[[journeys]]\nname = \"a\"\n[[journeys]]\nname = \"b\"\n\
         aliases = { \"Product Added\" = \"view_item\" }\n",
        "journeys[1].aliases.\"Product Added\"",
        "already makes it `add_to_cart`",
    );
    refused(
        "[journey]\naliases = { \"purchase\" = \"view_item\" }\n",
        "journey.aliases.\"purchase\"",
        "is a touchpoint of journey `default`",
    );
    // `[journey]` alone keeps working, named `default`, its variables too.
    let c = load_str(
        "",
        "t.toml",
        vec![("TOUCHSTREAM_JOURNEY_NAME".into(), "checkout".into())],
    )
    .unwrap();
    assert_eq!(c.journeys()[0].name, "checkout");
    assert_eq!(Config::default().journeys()[0].name, "default");
}

/// `[journey]` (with `header` lines) of two stages, `a` and `b`, the second with `second` lines.
fn two_stages(header: &str, second: &str) -> String {
    format!(
        "[journey]\n{header}[[journey.stages]]\nname = \"a\"\nphase = \"p\"\ntouchpoints = [\"x\"]\n\
         [[journey.stages]]\nname = \"b\"\nphase = \"p\"\ntouchpoints = [\"y\"]\n{second}\n"
    )
}
