//! `serve` over its state directory, stopped every way a process stops: what it acknowledged is
//! counted once after a restart, and sessions open across the restart are one session each.

mod common;

use common::durable::{cart, figure, reached, serve};
use common::kafka::wait_for_at;
use common::process::{field, signal, start_logged, touchstream};
use common::prom::Scrape;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_acknowledged_before_a_kill_9_is_counted_once_after_the_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut first = serve(state.path(), "30m");
    let now = touchstream::now_ms();
    // 120 sessions, one cart each, posted over about 2.4 s: checkpoints are taken meanwhile,
    // so the restart loads one and replays the log after it. The last session is posted just
    // after a checkpoint was written (the next is a second away), so the log after the one
    // loaded always holds a batch, however the kill falls.
    let checkpointed =
        |s: &Scrape| figure(s, "touchstream_state_checkpoint_timestamp_seconds", &[]);
    for s in 0..120 {
        if s == 119 {
            let at = checkpointed(&first.scrape().await);
            wait_for_at(first.admin, "a checkpoint", |s| checkpointed(s) > at).await;
        }
        let view = json!({"id": format!("v{s}"), "type": "page_view", "ts": now, "session": format!("s{s}")});
        assert_eq!(
            first.post(vec![view, cart(s, &format!("c{s}"), now)]).await,
            200
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = first.scrape().await;
    let status = signal(first.guard.0.take().unwrap(), "-KILL").await;
    assert!(!status.success());

    let second = serve(state.path(), "30m");
    none_decreased(&before, &second.scrape().await);
    let recovered = second.recovered();
    assert_ne!(field(recovered, "checkpoint"), "None", "{recovered}");
    assert_ne!(field(recovered, "records"), "0", "{recovered}");
    let s = wait_for_at(second.admin, "the restored figures", |s| {
        figure(s, "touchstream_engine_events_applied_total", &[]) == 240
    })
    .await;
    assert_eq!(reached(&s, "visit"), 120);
    assert_eq!(reached(&s, "add_to_cart"), 120);
    assert_eq!(figure(&s, "touchstream_carts_open", &[]), 120);
    assert_eq!(
        s.sum("touchstream_carts_open_value", &[("currency", "PLN")]),
        1200.0
    );
    assert_eq!(figure(&s, "touchstream_engine_open_sessions", &[]), 120);

    // A retry of every batch after the restart: all duplicates, no figure moves.
    for s in 0..120 {
        let view = json!({"id": format!("v{s}"), "type": "page_view", "ts": now, "session": format!("s{s}")});
        assert_eq!(
            second
                .post(vec![view, cart(s, &format!("c{s}"), now)])
                .await,
            200
        );
    }
    let s = wait_for_at(second.admin, "the retries", |s| {
        figure(
            s,
            "touchstream_events_filtered_total",
            &[("reason", "duplicate")],
        ) == 240
    })
    .await;
    assert_eq!(reached(&s, "visit"), 120);
    assert_eq!(figure(&s, "touchstream_carts_open", &[]), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_open_across_a_sigterm_finish_as_one_session_each() {
    let state = tempfile::tempdir().unwrap();
    let mut first = serve(state.path(), "3s");
    first.open_carts(0..40).await;
    let status = signal(first.guard.0.take().unwrap(), "-TERM").await;
    assert!(status.success(), "{status}");

    let second = serve(state.path(), "3s");
    let after = second.scrape().await;
    assert_eq!(figure(&after, "touchstream_carts_open", &[]), 40);
    assert_eq!(reached(&after, "visit"), 40);
    // Half the shoppers buy in the session they opened before the restart.
    for s in 0..20 {
        let buy = json!({"id": format!("p{s}"), "type": "purchase", "ts": touchstream::now_ms(), "session": format!("s{s}"),
                         "props": {"value": 10, "currency": "PLN", "order_id": format!("o{s}")}});
        assert_eq!(second.post(vec![buy]).await, 200);
    }
    // Then every session closes: 20 orders, 20 abandoned carts, still 40 visits.
    let s = wait_for_at(second.admin, "the sessions to close", |s| {
        figure(s, "touchstream_engine_open_sessions", &[]) == 0
    })
    .await;
    assert_eq!(reached(&s, "visit"), 40);
    assert_eq!(figure(&s, "touchstream_orders_total", &[]), 20);
    assert_eq!(figure(&s, "touchstream_carts_abandoned_total", &[]), 20);
    assert_eq!(
        s.sum("touchstream_revenue_total", &[("currency", "PLN")]),
        200.0
    );
    assert_eq!(figure(&s, "touchstream_carts_open", &[]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_503_and_loses_nothing() {
    let state = tempfile::tempdir().unwrap();
    // The process may write files of 100 KB at most: the log's first segment fills up as a
    // disk would (EFBIG, with SIGXFSZ ignored, as ENOSPC would come).
    let limited = touchstream();
    let program = limited.get_program().to_owned();
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("trap '' XFSZ; exec prlimit --fsize=100000 -- \"$0\" serve")
        .arg(&program);
    for (k, v) in limited.get_envs() {
        match v {
            Some(v) => command.env(k, v),
            None => command.env_remove(k),
        };
    }
    command
        .env("TOUCHSTREAM_STATE_DIR", state.path())
        .env("TOUCHSTREAM_LISTEN", "127.0.0.1:0")
        .env("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:0")
        .env("TOUCHSTREAM_STATE_CHECKPOINT_INTERVAL", "1h")
        .env("TOUCHSTREAM_LIMITS_CLIENT_REQUESTS_PER_SECOND", "0");
    let (mut guard, _log, up, _) = start_logged(&mut command, &["public", "admin"]);
    let (public, admin): (SocketAddr, SocketAddr) =
        (up[0].parse().unwrap(), up[1].parse().unwrap());
    let client = reqwest::Client::new();
    let now = touchstream::now_ms();
    let batch =
        |b: usize| -> Vec<Value> { (0..20).map(|i| cart(b, &format!("{b}-{i}"), now)).collect() };
    let (mut acknowledged, mut refused) = (0, None);
    for b in 0..400 {
        let res = client
            .post(format!("http://{public}/v1/events"))
            .header("content-type", "application/json")
            .body(json!({"site": "demo", "events": batch(b)}).to_string())
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => acknowledged += 1,
            503 => {
                assert!(res.headers().contains_key("retry-after"));
                refused = Some(b);
                break;
            }
            other => panic!("batch {b}: {other}"),
        }
    }
    let refused = refused.expect("the log never filled the 100 KB file");
    assert!(acknowledged > 5, "only {acknowledged} batches fit");
    let s = wait_for_at(admin, "the acknowledged batches", |s| {
        figure(s, "touchstream_engine_events_applied_total", &[]) == acknowledged * 20
    })
    .await;
    assert_eq!(
        figure(
            &s,
            "touchstream_transport_send_failures_total",
            &[("reason", "disk_full")]
        ),
        1
    );
    let ready = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "ready with a full disk");
    signal(guard.0.take().unwrap(), "-KILL").await;

    // Room again: the restart replays what was acknowledged, and the client's retries of
    // every batch count what was refused, once.
    let second = serve(state.path(), "30m");
    for b in 0..=refused {
        assert_eq!(second.post(batch(b)).await, 200);
    }
    let s = wait_for_at(second.admin, "the retries", |s| {
        figure(s, "touchstream_engine_events_applied_total", &[]) == (acknowledged * 2 + 1) * 20
    })
    .await;
    assert_eq!(
        figure(
            &s,
            "touchstream_events_filtered_total",
            &[("reason", "duplicate")]
        ),
        acknowledged * 20
    );
    assert_eq!(reached(&s, "add_to_cart"), refused as u64 + 1);
}

/// The engine's counters (funnel, orders, revenue, carts, duplicates...) of `after` are none
/// below `before`'s: a restart never makes a counter Prometheus scraped go down.
fn none_decreased(before: &Scrape, after: &Scrape) {
    let kept = |name: &str| {
        name.starts_with("touchstream_funnel_sessions")
            || name.starts_with("touchstream_funnel_dropoffs")
            || name.starts_with("touchstream_stage_reached_seconds")
            || name.starts_with("touchstream_carts_abandoned")
            || name.starts_with("touchstream_orders")
            || name.starts_with("touchstream_revenue")
            || name.starts_with("touchstream_order_value")
            || name.starts_with("touchstream_touchpoints")
            || name.starts_with("touchstream_friction")
            || name.starts_with("touchstream_engine_events_applied")
    };
    let mut compared = 0;
    for b in before.0.iter().filter(|s| kept(&s.name)) {
        let a = after
            .0
            .iter()
            .find(|a| a.name == b.name && a.labels == b.labels)
            .map_or(0.0, |a| a.value);
        assert!(
            a >= b.value,
            "{} {:?} went down: {} -> {a}",
            b.name,
            b.labels,
            b.value
        );
        compared += 1;
    }
    assert!(compared > 10, "only {compared} series compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_lost_behind_a_checkpoint_never_reuses_its_positions() {
    // Found by review: a log removed (or cut short) behind the newest checkpoint gave new
    // batches positions the checkpoint claimed, and the next checkpoints were thrown away.
    let state = tempfile::tempdir().unwrap();
    let mut first = serve(state.path(), "30m");
    first.open_carts(0..50).await;
    assert!(
        signal(first.guard.0.take().unwrap(), "-TERM")
            .await
            .success()
    );
    std::fs::remove_dir_all(state.path().join("log")).unwrap();

    let mut second = serve(state.path(), "30m");
    second.open_carts(50..60).await;
    let before = second.scrape().await;
    // More than a checkpoint interval, so the new batches are checkpointed too.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    signal(second.guard.0.take().unwrap(), "-KILL").await;

    let third = serve(state.path(), "30m");
    let after = third.scrape().await;
    assert_eq!(
        figure(&after, "touchstream_engine_events_applied_total", &[]),
        60
    );
    assert_eq!(figure(&after, "touchstream_carts_open", &[]), 60);
    none_decreased(&before, &after);
}
