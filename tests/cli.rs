//! The binary: configuration errors, replay errors, and a graceful SIGTERM that applies every
//! accepted event before exiting 0.

mod common;

use common::process::{KillOnDrop, field, spawn, terminate, touchstream};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_config_prints_the_resolved_configuration() {
    let cfg = file(
        "[[sites]]\nid = \"shop\"\norigins = [\"https://shop.example\"]\ncurrencies = [\"PLN\"]\n",
    );
    let (ok, out, err) = run(touchstream()
        .arg("check-config")
        .arg(cfg.path())
        .env("TOUCHSTREAM_JOURNEY_SESSION_TIMEOUT", "2s"));
    assert!(ok, "{err}");
    assert!(
        out.contains("id = \"shop\"") && out.contains("session_timeout = \"2s\""),
        "{out}"
    );
    assert!(out.contains("name = \"checkout\""), "{out}");
    // Its own sites: no demo site, and no demo shop unless asked for.
    assert!(
        !out.contains("id = \"demo\"") && out.contains("demo = false"),
        "{out}"
    );
}

#[test]
fn check_config_hides_signing_secrets_and_kafka_credentials() {
    let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
    let cfg = file(&format!(
        "[[sites]]\nid = \"shop\"\nkeys = [\"pk_live_0123456789\"]\nsigning_secrets = [\"{secret}\"]\n\
         [kafka.producer]\n\"sasl.username\" = \"touchstream\"\n\"sasl.password\" = \"hunter2-producer\"\n\
         [kafka.consumer]\n\"ssl.key.password\" = \"hunter2-consumer\"\n"
    ));
    let (ok, out, err) = run(touchstream().arg("check-config").arg(cfg.path()));
    assert!(ok, "{err}");
    for hidden in [secret, "hunter2-producer", "hunter2-consumer"] {
        assert!(!out.contains(hidden), "{hidden} printed:\n{out}");
    }
    assert_eq!(out.matches("\"(redacted)\"").count(), 3, "{out}");
    // Write keys are public; other properties are settings, not secrets.
    assert!(out.contains("pk_live_0123456789"), "{out}");
    assert!(out.contains("\"sasl.username\" = \"touchstream\""), "{out}");
}

#[test]
fn invalid_configuration_exits_non_zero_naming_the_key() {
    let cases = [
        (
            "[journey]\nsession_timeout = \"soon\"\n",
            vec![],
            "journey.session_timeout",
        ),
        ("[[sites]]\nid = \"Bad Site\"\n", vec![], "sites[0].id"),
        ("[limits]\nmax_body = 1\n", vec![], "max_body"),
        (
            "",
            vec![("TOUCHSTREAM_LIMITS_MAX_ITEMS", "lots")],
            "TOUCHSTREAM_LIMITS_MAX_ITEMS",
        ),
        ("", vec![("TOUCHSTREAM_LISTEN", "nowhere")], "listen"),
    ];
    for (text, env, needle) in cases {
        let cfg = file(text);
        let (ok, _, err) = run(touchstream().arg("check-config").arg(cfg.path()).envs(env));
        assert!(!ok && err.contains(needle), "{needle}: {err}");
    }
    let (ok, _, err) = run(touchstream().args(["check-config", "/nonexistent/touchstream.toml"]));
    assert!(!ok && err.contains("cannot read config file"), "{err}");
}

#[test]
fn collect_and_engine_need_brokers() {
    for command in ["collect", "engine"] {
        let (ok, _, err) = run(touchstream()
            .arg(command)
            .env("TOUCHSTREAM_LISTEN", "127.0.0.1:0")
            .env("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:0")
            .env_remove("TOUCHSTREAM_KAFKA_BROKERS"));
        assert!(
            !ok && err.contains("needs Kafka: set kafka.brokers"),
            "{command}: {err}"
        );
    }
}

#[test]
fn replay_stops_at_a_bad_line_unless_told_to_skip() {
    let good = json!({"site": "demo", "id": "e1", "type": "purchase", "ts": 1000, "session": "s",
                      "props": {"value": 10, "currency": "USD"}});
    let log = file(&format!(
        "{good}\nnot json\n{}\n",
        json!({"site": "demo", "id": "e2", "ts": 5, "session": "s"})
    ));
    let (ok, _, err) = run(touchstream().arg("replay").arg(log.path()));
    assert!(!ok && err.contains("line 2: not a JSON object"), "{err}");
    let (ok, out, err) = run(touchstream()
        .args(["replay", "--json", "--skip-invalid"])
        .arg(log.path()));
    assert!(ok, "{err}");
    assert!(
        err.contains(":2: skipped") && err.contains(":3: skipped: `type` is required"),
        "{err}"
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["sites"]["demo"]["orders"], 1);
    assert_eq!(report["sites"]["demo"]["revenue"]["USD"], 10.0);

    let unknown = file(
        &json!({"site": "nope", "id": "e", "type": "page_view", "ts": 1, "session": "s"})
            .to_string(),
    );
    let (ok, _, err) = run(touchstream().arg("replay").arg(unknown.path()));
    assert!(
        !ok && err.contains("site `nope` is not configured"),
        "{err}"
    );
}

#[test]
fn replay_reads_a_pretty_printed_batch() {
    let batch = json!({"site": "demo", "sent_at": 10, "events": [
        {"id": "1", "type": "Product Added", "ts": 1, "session": "s", "props": {"value": 5, "currency": "GBP"}},
        {"id": "2", "type": "page_view", "ts": 2, "session": "t"}
    ]});
    let log = file(&serde_json::to_string_pretty(&batch).unwrap());
    let (ok, out, err) = run(touchstream().args(["replay", "--json"]).arg(log.path()));
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["sites"]["demo"]["reached"]["visit"], 2);
    assert_eq!(r["sites"]["demo"]["carts_abandoned_value"]["GBP"], 5.0);
    assert_eq!(r["sites"]["demo"]["dropoffs"]["add_to_cart"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_applies_every_accepted_event_and_exits_zero() {
    let mut server = spawn(
        touchstream()
            .env("TOUCHSTREAM_LISTEN", "127.0.0.1:0")
            .env("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:0"),
    );
    let url = format!("http://{}/v1/events", server.public);
    let client = reqwest::Client::new();
    let mut accepted = 0;
    for b in 0..50 {
        let events: Vec<Value> =
            (0..20).map(|i| json!({"id": format!("{b}-{i}"), "type": "view_item", "ts": 1, "session": format!("s{b}")})).collect();
        let res = client
            .post(&url)
            .header("content-type", "application/json")
            .body(json!({"site": "demo", "events": events}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        accepted += res.json::<Value>().await.unwrap()["accepted"]
            .as_u64()
            .unwrap();
    }
    let status = terminate(server.guard.0.take().unwrap()).await;
    assert!(status.success(), "{status}");
    let log = server.log;
    let rest: Vec<String> = log
        .recv_timeout(Duration::from_secs(5))
        .into_iter()
        .chain(log.try_iter())
        .collect();
    let drained = rest
        .iter()
        .find(|l| l.contains("engine drained the transport"))
        .expect("drain logged");
    assert_eq!(field(drained, "applied"), accepted.to_string());
    assert_eq!(accepted, 1000);
}

fn site_file(key: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[[sites]]\nid = \"shop\"\norigins = [\"*\"]\nkeys = [\"{key}\"]\nrequire_key = true\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_write_keys_without_a_restart() {
    let (old, new) = ("pk_live_old_000000", "pk_live_new_111111");
    let config = file(&site_file(old));
    let server = spawn(
        touchstream()
            .args(["--config", config.path().to_str().unwrap(), "serve"])
            .env("RUST_LOG", "info"),
    );
    let (log, pid) = (&server.log, server.pid().to_string());
    let url = format!("http://{}/v1/events", server.public);
    let post = |key: &'static str| {
        let url = url.clone();
        async move {
            let body = json!({"site": key, "events": [{"id": "e", "type": "page_view", "ts": 1, "session": "s"}]});
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let hangup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    assert_eq!(post(old).await, 200);
    assert_eq!(post(new).await, 401);

    std::fs::write(config.path(), site_file(new)).unwrap();
    hangup();
    log.iter()
        .find(|l| l.contains("sites reloaded"))
        .expect("reload logged");
    assert_eq!(post(new).await, 200);
    assert_eq!(post(old).await, 401);

    // A file that no longer loads is refused, and the running keys stay.
    std::fs::write(config.path(), "[[sites]]\nid = \"Shop!\"\n").unwrap();
    hangup();
    let refused = log
        .iter()
        .find(|l| l.contains("reload refused"))
        .expect("refusal logged");
    assert!(refused.contains("sites[0].id"), "{refused}");
    assert_eq!(post(new).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_does_not_stop_the_server() {
    let mut child = touchstream()
        .env("TOUCHSTREAM_LISTEN", "127.0.0.1:0")
        .env("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let serving = stderr
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("public listener up"))
        .expect("server started");
    // The log reader goes away (a restarted log collector, a closed terminal).
    drop(stderr);
    let mut guard = KillOnDrop(Some(child));
    let url = format!("http://{}/v1/events", field(&serving, "addr"));
    for i in 0..20 {
        let body = json!({"site": "demo", "events": [{"id": format!("{i}"), "type": "page_view", "ts": 1, "session": "s"}]});
        let res = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let mut child = guard.0.take().unwrap();
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    let status = terminate(child).await;
    assert!(status.success(), "{status}");
}

#[test]
fn a_second_serve_on_a_held_state_directory_exits_1_naming_it() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("state");
    let first = spawn(
        touchstream()
            .env("TOUCHSTREAM_STATE_DIR", &dir)
            .env("TOUCHSTREAM_LISTEN", "127.0.0.1:0")
            .env("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:0"),
    );
    let mut second = touchstream()
        .env("TOUCHSTREAM_STATE_DIR", &dir)
        .env("TOUCHSTREAM_LISTEN", "127.0.0.1:0")
        .env("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second process is serving on a held state directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("TOUCHSTREAM_STATE_DIR"), "{err}");
    assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
    drop(first);
}

/// `touchstream rules` prints rules for the configured journeys that promtool accepts, and does
/// nothing else: no state directory, no port, no broker (a broker that does not exist is set).
#[test]
fn rules_are_printed_for_the_journey_configured() {
    let cfg = file(
        "[[journeys]]\nname = \"sales\"\nmode = \"ordered\"\ncart_stage = \"quote\"\n\
         purchase_stage = \"signed\"\n\
         [[journeys.stages]]\nname = \"landing\"\nphase = \"awareness\"\ntouchpoints = [\"page_view\"]\n\
         [[journeys.stages]]\nname = \"quote\"\nphase = \"consideration\"\ntouchpoints = [\"quote_requested\"]\n\
         [[journeys.stages]]\nname = \"signed\"\nphase = \"decision\"\ntouchpoints = [\"contract_signed\"]\n\
         within = \"1d\"\n",
    );
    let cwd = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(touchstream()
        .args(["--config"])
        .arg(cfg.path())
        .arg("rules")
        .current_dir(cwd.path())
        // The default state directory, ./touchstream-state, would appear in `cwd`.
        .env_remove("TOUCHSTREAM_STATE_DIR")
        .env("TOUCHSTREAM_KAFKA_BROKERS", "127.0.0.1:1"));
    assert!(ok, "{err}");
    assert!(
        out.contains("step: landing_to_quote") && out.contains("step: quote_to_signed"),
        "{out}"
    );
    assert!(
        out.contains(r#"{journey="sales", stage="signed", window!="1h"}"#)
            && !out.contains("add_to_cart")
    );
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "it wrote files"
    );
    let rules = cwd.path().join("rules.yml");
    std::fs::write(&rules, &out).unwrap();
    let (checked, _) =
        common::deploy::run("promtool", &["check", "rules", rules.to_str().unwrap()]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    // The dashboard names the same stages.
    let (ok, dashboard, err) = run(touchstream()
        .arg("--config")
        .arg(cfg.path())
        .arg("dashboard"));
    assert!(ok, "{err}");
    assert!(dashboard.contains("landing → quote") && !dashboard.contains("add_to_cart"));
    serde_json::from_str::<Value>(&dashboard).unwrap();
    // A configuration it cannot load: exit 1 with the reason, nothing on standard output.
    let bad = file("[journey]\npurchase_stage = \"nowhere\"\n");
    let (ok, printed, err) = run(touchstream().arg("--config").arg(bad.path()).arg("rules"));
    assert!(
        !ok && printed.is_empty() && err.contains("purchase_stage"),
        "{err}"
    );
}
