//! The operations kit in deploy/, checked with the real tools (Debian's prometheus and
//! prometheus-alertmanager, installed by ./tests/run.sh): rule and config syntax, the rules'
//! unit tests, Alertmanager routing, and that every metric the rules read is one touchstream
//! exports.

mod common;

use common::deploy::{image_environment, image_user, instructions, read, run, tool};
use common::exports;

#[test]
fn prometheus_config_and_rules_are_valid() {
    tool(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    let text = tool(
        "promtool",
        &["check", "rules", "deploy/prometheus/rules.yml"],
    );
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let text = tool(
        "promtool",
        &[
            "test",
            "rules",
            "deploy/prometheus/tests/touchstream.test.yml",
            "deploy/prometheus/tests/baseline.test.yml",
        ],
    );
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn alertmanager_routes_funnel_alerts_to_ecommerce_and_the_rest_to_operations() {
    tool(
        "amtool",
        &["check-config", "deploy/alertmanager/alertmanager.yml"],
    );
    let route = |labels: &[&str]| {
        let mut args = vec![
            "config",
            "routes",
            "test",
            "--config.file=deploy/alertmanager/alertmanager.yml",
        ];
        args.extend_from_slice(labels);
        run("amtool", &args).0.trim().to_string()
    };
    assert_eq!(
        route(&[
            "alertname=StepConversionDropped",
            "team=ecommerce",
            "site=demo"
        ]),
        "ecommerce-oncall"
    );
    assert_eq!(
        route(&["alertname=KafkaDeliveryFailures", "team=platform"]),
        "operations"
    );
}

#[test]
fn every_metric_the_rules_read_is_exported() {
    let rules = read("deploy/prometheus/rules.yml");
    let read = exports::read_by(&rules);
    assert!(read.len() >= 10, "{read:?}");
    let unknown = exports::unknown_in(&rules);
    assert!(
        unknown.is_empty(),
        "rules read metrics touchstream does not export: {unknown:?}"
    );
}

#[test]
fn the_container_image_matches_the_code() {
    let all = instructions;
    // Two stages, the binary copied from the first, run as a non-root user.
    assert_eq!(all("FROM").len(), 2);
    assert!(
        all("COPY")
            .iter()
            .any(|c| c.contains("--from=build") && c.contains("target/release/touchstream"))
    );
    assert_ne!(image_user(), 0, "the image runs as a non-root user");
    // Every file the binary embeds at compile time is copied into the build stage.
    let copies = all("COPY").join(" ");
    // ... and every workspace member, which cargo reads to build any of them.
    for member in ["loadtests/Cargo.toml", "loadtests/src"] {
        assert!(read("Cargo.toml").contains("\"loadtests\""));
        assert!(copies.contains(member), "the build stage lacks {member}");
    }
    for embedded in ["js-snippet/dist", "js-snippet/demo", "src", "Cargo.lock"] {
        assert!(
            copies.contains(embedded),
            "the build stage lacks {embedded}"
        );
    }
    // The environment is touchstream configuration that loads, and its ports are exposed.
    let config = touchstream::config::load(None, image_environment())
        .expect("the image's environment is valid configuration");
    let exposed: Vec<u16> = all("EXPOSE")
        .join(" ")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(exposed, [config.listen.port(), config.admin_listen.port()]);
    assert!(
        config.listen.ip().is_unspecified(),
        "inside a container the listener must not be loopback only"
    );
    // The entrypoint is this crate's binary; the default command is a real subcommand.
    assert!(all("ENTRYPOINT")[0].contains(&format!("/{}\"", env!("CARGO_PKG_NAME"))));
    assert_eq!(all("CMD"), [r#"["serve"]"#]);
    assert_eq!(all("STOPSIGNAL"), ["SIGTERM"]);
}

/// `deploy/prometheus/rules.yml` is `touchstream rules` for the default configuration
/// (`TOUCHSTREAM_BLESS=1 cargo test --test deploy` writes it again).
#[test]
fn the_rules_file_is_generated_from_the_default_configuration() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/rules.yml");
    let generated = touchstream::ops::rules(&touchstream::config::Config::default());
    if std::env::var_os("TOUCHSTREAM_BLESS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    assert!(
        read("deploy/prometheus/rules.yml") == generated,
        "deploy/prometheus/rules.yml is stale: the rules are in src/ops/rules.yml (the template of \
         `touchstream rules`); after changing it run \
         `TOUCHSTREAM_BLESS=1 cargo test --test deploy the_rules_file`"
    );
}
