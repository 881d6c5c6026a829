//! The dedup horizon and late events through the real binary: once a session closed, a retry
//! of its events is a duplicate and a new event of it (an offline queue flushed late) is
//! counted against it once, without a second visit, before and after a `kill -9`.

mod common;

use common::durable::{figure, reached, serve};
use common::kafka::wait_for_at;
use common::process::signal;
use common::prom::Scrape;
use serde_json::{Value, json};

fn event(id: &str, kind: &str, ts: i64, order: Option<&str>) -> Value {
    json!({"id": id, "type": kind, "ts": ts, "session": "s1",
           "props": {"value": 10, "currency": "PLN", "order_id": order}})
}

/// The figures a shop reads of `s`: visits, checkouts, abandoned carts, orders, revenue in PLN,
/// duplicates and late events.
fn read(s: &Scrape) -> [u64; 7] {
    let filtered = |reason| {
        figure(
            s,
            "touchstream_events_filtered_total",
            &[("reason", reason)],
        )
    };
    [
        reached(s, "visit"),
        reached(s, "checkout"),
        figure(s, "touchstream_carts_abandoned_total", &[]),
        figure(s, "touchstream_orders_total", &[]),
        s.sum("touchstream_revenue_total", &[("currency", "PLN")]) as u64,
        filtered("duplicate"),
        figure(s, "touchstream_engine_late_events_total", &[]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_session_closed_a_retry_is_a_duplicate_and_a_late_event_counts_once() {
    let state = tempfile::tempdir().unwrap();
    let mut first = serve(state.path(), "2s");
    let now = touchstream::now_ms();
    let visit = vec![
        event("v", "page_view", now, None),
        event("c", "add_to_cart", now, None),
        event("k", "begin_checkout", now, None),
    ];
    assert_eq!(first.post(visit.clone()).await, 200);
    let closed = wait_for_at(first.admin, "the session to close", |s| {
        figure(s, "touchstream_carts_abandoned_total", &[]) == 1
    })
    .await;
    assert_eq!(read(&closed), [1, 1, 1, 0, 0, 0, 0]);
    assert_eq!(figure(&closed, "touchstream_engine_remembered_ids", &[]), 3);
    // A first start knows nothing from before it: the effective horizon is the time since.
    let horizon = figure(&closed, "touchstream_engine_dedup_horizon_seconds", &[]);
    assert!(horizon < 60, "{horizon}");

    // The whole batch again (a retry after the answer was lost): duplicates, no second visit.
    assert_eq!(first.post(visit.clone()).await, 200);
    // The purchase the shopper made before the session timed out, flushed from the offline
    // queue only now: counted against the closed session, once.
    assert_eq!(
        first
            .post(vec![event("p", "purchase", now + 500, Some("o1"))])
            .await,
        200
    );
    let s = wait_for_at(first.admin, "the late purchase", |s| {
        figure(s, "touchstream_engine_late_events_total", &[]) == 1
    })
    .await;
    // The cart was counted abandoned when the session closed, and stays so (counters never
    // go down); the order and its revenue count.
    assert_eq!(read(&s), [1, 1, 1, 1, 10, 3, 1]);
    assert_eq!(figure(&s, "touchstream_engine_open_sessions", &[]), 0);

    // A crash, then the same events once more, and the order confirmed again under a new
    // event id: still one visit and one order.
    let status = signal(first.guard.0.take().unwrap(), "-KILL").await;
    assert!(!status.success());
    let second = serve(state.path(), "2s");
    assert_eq!(second.post(visit).await, 200);
    let again = vec![
        event("p", "purchase", now + 500, Some("o1")),
        event("p2", "purchase", now + 600, Some("o1")),
    ];
    assert_eq!(second.post(again).await, 200);
    let s = wait_for_at(second.admin, "the retries after the restart", |s| {
        figure(s, "touchstream_engine_late_events_total", &[]) == 2
    })
    .await;
    assert_eq!(read(&s), [1, 1, 1, 1, 10, 7, 2]);
    assert_eq!(figure(&s, "touchstream_engine_open_sessions", &[]), 0);
    assert_eq!(figure(&s, "touchstream_engine_remembered_ids", &[]), 6);
    // The restart kept the horizon's start: it goes on growing, never back to a full day.
    let after = figure(&s, "touchstream_engine_dedup_horizon_seconds", &[]);
    assert!(after >= horizon && after < 120, "{horizon} then {after}");
}
