//! The operations kit in deploy/, checked with the real tools (Debian's prometheus and
//! prometheus-alertmanager, installed by ./tests/run.sh): rule and config syntax, the rules'
//! unit tests, Alertmanager routing, and that every metric the rules read is one touchstream
//! exports.

mod common;

use common::exports;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs a tool; returns its standard output (and its standard error, for messages).
fn run(name: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(name).args(args).current_dir(ROOT).output().unwrap_or_else(|e| {
        panic!("cannot run {name} ({e}); ./tests/run.sh installs Debian's prometheus and prometheus-alertmanager")
    });
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{stdout}{stderr}"
    );
    (stdout, stderr)
}

fn tool(name: &str, args: &[&str]) -> String {
    let (stdout, stderr) = run(name, args);
    stdout + &stderr
}

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
            "alertname=CheckoutDropoffSpike",
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
    let rules = std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/rules.yml")).unwrap();
    let read = exports::read_by(&rules);
    assert!(read.len() >= 10, "{read:?}");
    let unknown = exports::unknown_in(&rules);
    assert!(
        unknown.is_empty(),
        "rules read metrics touchstream does not export: {unknown:?}"
    );
}

/// The Dockerfile's instructions as (keyword, rest) pairs, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, rest) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_ascii_uppercase(), rest.trim().to_string())
        })
        .collect()
}

#[test]
fn the_container_image_matches_the_code() {
    let steps = dockerfile();
    let all = |k: &str| {
        steps
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    // Two stages, the binary copied from the first, run as a non-root user.
    assert_eq!(all("FROM").len(), 2, "{steps:?}");
    assert!(
        all("COPY")
            .iter()
            .any(|c| c.contains("--from=build") && c.contains("target/release/touchstream"))
    );
    assert!(all("USER").iter().all(|u| u != "root" && u != "0") && !all("USER").is_empty());
    // Every file the binary embeds at compile time is copied into the build stage.
    let copies = all("COPY").join(" ");
    for embedded in ["js-snippet/dist", "js-snippet/demo", "src", "Cargo.lock"] {
        assert!(
            copies.contains(embedded),
            "the build stage lacks {embedded}"
        );
    }
    // The environment is touchstream configuration that loads, and its ports are exposed.
    let env: Vec<(String, String)> = all("ENV")
        .join(" ")
        .split_whitespace()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let touchstream_env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("TOUCHSTREAM_"))
        .cloned()
        .collect();
    let config = touchstream::config::load(None, touchstream_env)
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
