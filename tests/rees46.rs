//! The REES46 sample (a real shop's clickstream) replayed through `touchstream replay --json`
//! and over HTTP into a live server, each checked against figures the test computes itself from
//! the CSV with the reference model.

mod common;

use common::rees46::{events, to_json};
use common::reference::{Figures, RefEvent, assert_figures_eq, from_report_json, reference};
use common::server::{TestServer, config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT_MS: i64 = 30 * 60_000;

fn expected() -> Figures {
    let f = reference(&events(), TIMEOUT_MS);
    // The sample's known shape (../shared/data/README.md), so this test can never pass vacuously.
    assert_eq!(f.duplicates, 5);
    assert!(
        f.reached[0] >= 5066 && f.orders > 150 && f.carts_abandoned > 10,
        "{f:?}"
    );
    f
}

fn replay(args: &[&str], log: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_touchstream"))
        .arg("replay")
        .args(args)
        .arg(log)
        .output()
        .unwrap()
}

#[test]
fn replay_command_matches_an_independent_computation() {
    let mut log = tempfile::NamedTempFile::new().unwrap();
    for e in events() {
        writeln!(log, "{}", to_json(&e, Some("demo"))).unwrap();
    }
    let out = replay(&["--json"], log.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_figures_eq(&from_report_json(&report, "demo"), &expected());

    let table = replay(&[], log.path());
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("site demo") && text.contains(&expected().reached[0].to_string()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_replay_matches_an_independent_computation() {
    let server =
        Arc::new(TestServer::start(config(Duration::from_millis(TIMEOUT_MS as u64))).await);
    let all = events();
    let mut sessions: BTreeMap<String, Vec<RefEvent>> = BTreeMap::new();
    for e in &all {
        sessions
            .entry(e.session.clone())
            .or_default()
            .push(e.clone());
    }
    // One request per session, sent as if the batch left the browser 31 minutes after the
    // session's last event: event times keep their gaps, and every session is already idle for
    // longer than the timeout, so the live sweeper closes it right after its batch.
    let batches: Vec<Value> = sessions
        .into_values()
        .map(|list| {
            let last = list.iter().map(|e| e.ts).max().unwrap();
            let events: Vec<Value> = list.iter().map(|e| to_json(e, None)).collect();
            json!({"site": "demo", "sent_at": last + TIMEOUT_MS + 60_000, "events": events})
        })
        .collect();
    let mut tasks = Vec::new();
    for chunk in batches.chunks(batches.len().div_ceil(8)) {
        let (server, chunk) = (server.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for b in chunk {
                let res = server.post(&b).await;
                assert_eq!(res.status(), 200);
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["rejected"], json!([]));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    server.wait_applied(all.len() as u64).await;
    let s = server
        .wait_for("every session closed", |s| {
            s.sum("touchstream_engine_open_sessions", &[]) == 0.0
        })
        .await;
    let got = s.figures("demo");
    assert_figures_eq(&got, &expected());
    assert_eq!(
        s.sum("touchstream_events_accepted_total", &[]) as usize,
        all.len()
    );
    Arc::into_inner(server)
        .expect("every request task has finished")
        .stop()
        .await;
}
