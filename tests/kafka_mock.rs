//! The collector over Kafka against rdkafka's mock cluster, which injects broker errors: a 2xx
//! only after delivery, every class of broker failure a 503 with Retry-After (never a 4xx, never
//! a 2xx), rejected events on the dead-letter topic, readiness following the brokers. And
//! engines between which partitions move, with their checkpoints, while scrapes change nothing.

mod common;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use common::prom::Scrape;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use touchstream::collector::{CollectorState, router};
use touchstream::config::Config;
use touchstream::engine::kafka::KafkaEngine;
use touchstream::metrics::{Exposition, Metrics};
use touchstream::transport::DeadLetter;
use touchstream::transport::EventSink;
use touchstream::transport::kafka::{InMessage, KafkaSink};
use tower::ServiceExt;

struct Setup {
    cluster: MockCluster<'static, DefaultProducerContext>,
    config: Config,
    sink: Arc<KafkaSink>,
    app: axum::Router,
    metrics: Arc<Metrics>,
}

fn setup() -> Setup {
    let cluster = MockCluster::new(1).unwrap();
    let mut config = Config::default();
    config.kafka.brokers = cluster.bootstrap_servers();
    config.kafka.create_topics = false;
    config.kafka.delivery_timeout = Duration::from_millis(1500);
    config
        .kafka
        .producer
        .insert("retry.backoff.ms".into(), "50".into());
    cluster.create_topic(&config.kafka.topic, 4, 1).unwrap();
    cluster
        .create_topic(&config.kafka.dead_letter_topic, 1, 1)
        .unwrap();
    let metrics = Arc::new(Metrics::new(&config));
    let sink = Arc::new(KafkaSink::new(&config.kafka, metrics.clone()).unwrap());
    let app = router(Arc::new(CollectorState::new(
        &config,
        sink.clone(),
        metrics.clone(),
    )));
    Setup {
        cluster,
        config,
        sink,
        app,
        metrics,
    }
}

fn batch(ids: &[&str]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "type": "add_to_cart", "ts": 1_763_800_000_000i64, "session": "s1", "props": {"value": 5}}))
        .collect();
    json!({"site": "demo", "events": events})
}

async fn post(app: &axum::Router, body: &Value) -> (StatusCode, Option<String>, Value) {
    let req = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()));
    let res = app.clone().oneshot(req.unwrap()).await.unwrap();
    let status = res.status();
    let retry = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let json =
        serde_json::from_slice(&to_bytes(res.into_body(), usize::MAX).await.unwrap()).unwrap();
    (status, retry, json)
}

/// Every message of `topic`, read from the start of each partition.
fn read_all(
    config: &Config,
    topic: &str,
    partitions: i32,
    expect: usize,
) -> Vec<(Option<String>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            out.push((key, m.payload().unwrap_or_default().to_vec()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_means_every_event_was_delivered_keyed_by_visitor_or_session() {
    let s = setup();
    let mut body = batch(&["a", "b", "c", "d"]);
    // Two sessions of one visitor, and a session without a visitor (a server's call).
    body["events"][0]["visitor"] = json!("v-1");
    body["events"][1]["visitor"] = json!("v-1");
    body["events"][1]["session"] = json!("s2");
    body["events"][2]["visitor"] = json!("ann@shop.io");
    let (status, _, body) = post(&s.app, &body).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(4))
    );
    let config = s.config.clone();
    let messages =
        tokio::task::spawn_blocking(move || read_all(&config, &config.kafka.topic, 4, 4))
            .await
            .unwrap();
    assert_eq!(messages.len(), 4);
    let mut keyed = Vec::new();
    for (key, payload) in messages {
        match serde_json::from_slice(&payload).unwrap() {
            InMessage::Event(e) => keyed.push((e.id, key.unwrap(), e.visitor)),
            other => panic!("unexpected {other:?}"),
        }
    }
    keyed.sort();
    // A visitor id holding personal data travels as its pseudonym, like a session id.
    let masked = touchstream::collector::pseudonymise("ann@shop.io".into());
    assert_eq!(
        keyed,
        [
            ("a".into(), "demo/v/v-1".into(), Some("v-1".into())),
            ("b".into(), "demo/v/v-1".into(), Some("v-1".into())),
            ("c".into(), format!("demo/v/{masked}"), Some(masked.clone())),
            ("d".into(), "demo/s1".into(), None),
        ]
    );
    assert!(
        s.metrics
            .encode()
            .contains("touchstream_kafka_produce_seconds_count 1")
    );
    drop(s.cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_go_to_the_dead_letter_topic_with_their_reason() {
    let s = setup();
    let body = json!({"site": "demo", "events": [{"id": "ok", "type": "page_view", "ts": 1, "session": "s"}, {"id": "bad", "type": "page_view", "session": "s"}]});
    let (status, _, answer) = post(&s.app, &body).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let config = s.config.clone();
    let letters = tokio::task::spawn_blocking(move || {
        read_all(&config, &config.kafka.dead_letter_topic, 1, 1)
    })
    .await
    .unwrap();
    assert_eq!(letters.len(), 1);
    let letter: DeadLetter = serde_json::from_slice(&letters[0].1).unwrap();
    assert_eq!(
        (letter.site.as_str(), letter.reason.as_str()),
        ("demo", "missing_field")
    );
    assert_eq!(
        serde_json::from_str::<Value>(letter.event.get()).unwrap()["id"],
        "bad"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_masked_before_it_reaches_kafka() {
    let s = setup();
    let body = json!({"site": "demo", "events": [
        {"id": "ok", "type": "purchase", "ts": 1, "session": "ann.lee@shop.io",
         "props": {"order_id": "4111 1111 1111 1111", "value": 5}},
        {"id": "bad", "type": "page_view", "session": "s",
         "url": "https://shop.test/?email=ann.lee%40shop.io", "props": {"note": "card 5500-0000-0000-0004"}}]});
    let (status, _, answer) = post(&s.app, &body).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let config = s.config.clone();
    let (events, letters) = tokio::task::spawn_blocking(move || {
        (
            read_all(&config, &config.kafka.topic, 4, 1),
            read_all(&config, &config.kafka.dead_letter_topic, 1, 1),
        )
    })
    .await
    .unwrap();
    let InMessage::Event(e) = serde_json::from_slice(&events[0].1).unwrap() else {
        panic!("an event");
    };
    // Identifiers become pseudonyms, so the session and the order keep their identity.
    let session = touchstream::collector::pseudonymise("ann.lee@shop.io".into());
    let order = touchstream::collector::pseudonymise("4111 1111 1111 1111".into());
    assert!(session.starts_with("masked-") && order.starts_with("masked-"));
    assert_eq!(
        (e.session.as_str(), e.order_id.as_deref()),
        (session.as_str(), Some(order.as_str()))
    );
    assert_eq!(events[0].0, Some(format!("demo/{session}")));
    let letter: DeadLetter = serde_json::from_slice(&letters[0].1).unwrap();
    let raw: Value = serde_json::from_str(letter.event.get()).unwrap();
    assert_eq!(raw["url"], "https://shop.test/?email=[email]");
    assert_eq!(raw["props"]["note"], "card [card]");
    for payload in [&events[0].1, &letters[0].1] {
        let text = String::from_utf8_lossy(payload);
        assert!(
            !text.contains("ann.lee") && !text.contains("0004"),
            "{text}"
        );
    }
}

/// Pushes `errors` onto every Produce request and checks the request gets 503 with Retry-After,
/// nothing counted as accepted, and the delivery error counted under `kind`.
async fn refused_with(errors: &[RDKafkaRespErr], kind: &str) {
    let s = setup();
    s.cluster.request_errors(RDKafkaApiKey::Produce, errors);
    let started = Instant::now();
    let (status, retry, body) = post(&s.app, &batch(&["x"])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{kind}: {body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"], "unavailable");
    assert!(
        started.elapsed() < s.config.limits.request_timeout,
        "{kind}: answered after the client's timeout"
    );
    let text = s.metrics.encode();
    assert!(
        text.contains(&format!(
            "touchstream_kafka_delivery_errors_total{{kind=\"{kind}\"}} 1"
        )),
        "{kind}: {text}"
    );
    assert!(
        text.contains(r#"touchstream_events_rejected_total{site="demo",reason="unavailable"} 1"#)
    );
    assert!(text.contains(r#"touchstream_events_accepted_total{site="demo"} 0"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_errors_past_the_delivery_timeout_are_a_503() {
    refused_with(
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 500],
        "timed_out",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_failures_are_a_503_not_a_4xx() {
    refused_with(
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
        "not_authorized",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_refused_by_the_broker_are_a_503() {
    refused_with(
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        "too_large",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_past_the_delivery_timeout_is_a_503_and_readiness_follows() {
    let s = setup();
    s.sink.spawn_probe(Duration::from_millis(100));
    wait_until("ready", || s.sink.is_ready()).await;
    s.cluster.broker_down(1).unwrap();
    let (status, retry, _) = post(&s.app, &batch(&["x"])).await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
    );
    wait_until("not ready", || !s.sink.is_ready()).await;
    s.cluster.broker_up(1).unwrap();
    wait_until("ready again", || s.sink.is_ready()).await;
    // A client retries 503s (with backoff); once the producer has reconnected, it gets its 200.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, retry, body) = post(&s.app, &batch(&["y"])).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("1")),
            "{body}"
        );
        assert!(
            Instant::now() < deadline,
            "still refused after the broker came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_disconnects_are_retried_within_the_request() {
    let s = setup();
    s.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT; 2],
    );
    let (status, _, body) = post(&s.app, &batch(&["a", "b"])).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(2))
    );
}

/// Polls `ready` until it holds; panics after 90 s (a rebalance on a loaded machine is slow).
async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` add-to-cart events of 5, one per session `{prefix}0`..: keyed by session, they spread
/// over the partitions.
fn carts(prefix: &str, n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("{prefix}{i}"), "type": "add_to_cart", "ts": 1_763_800_000_000i64, "session": format!("{prefix}{i}"), "props": {"value": 5}}))
        .collect();
    json!({"site": "demo", "events": events})
}

/// The group's committed offsets of the events topic's 4 partitions.
fn committed(cfg: &Config) -> Vec<Offset> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka.brokers)
        .set("group.id", &cfg.kafka.group_id)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..4 {
        list.add_partition(&cfg.kafka.topic, p);
    }
    let found = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    found.elements().iter().map(|e| e.offset()).collect()
}

/// An engine of this process, with its metrics and `/metrics`.
struct InProcess {
    metrics: Arc<Metrics>,
    exposition: touchstream::engine::kafka::Scrape,
    stop: touchstream::shutdown::Trigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    fn start(cfg: &Config) -> Self {
        let metrics = Arc::new(Metrics::new(cfg));
        let engine = KafkaEngine::new(cfg, metrics.clone()).unwrap();
        let exposition = engine.scrape();
        let (stop, shutdown) = touchstream::shutdown::channel();
        let task = tokio::spawn(engine.run(shutdown));
        Self {
            metrics,
            exposition,
            stop,
            task,
        }
    }

    async fn scrape(&self) -> Scrape {
        Scrape::parse(&self.exposition.render().await.expect("a scrape"))
    }

    fn partitions(&self) -> f64 {
        Scrape::parse(&self.metrics.encode()).sum("touchstream_kafka_assigned_partitions", &[])
    }

    async fn stop(self) {
        self.stop.fire();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_moving_between_engines_keep_their_figures_and_scrapes_change_nothing() {
    let s = setup();
    let mut cfg = s.config.clone();
    s.cluster
        .create_topic(&cfg.kafka.state_topic, 4, 1)
        .unwrap();
    cfg.kafka.group_id = "engines-moving".into();
    cfg.engine.sweep_interval = Duration::from_millis(200);
    // Checkpoints only when partitions are revoked.
    cfg.state.checkpoint_interval = Duration::from_secs(3600);
    for (key, value) in [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ] {
        cfg.kafka.consumer.insert(key.into(), value.into());
    }
    let one = InProcess::start(&cfg);
    wait_until("4 partitions", || one.partitions() == 4.0).await;
    let (status, _, _) = post(&s.app, &carts("a", 16)).await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::kafka::applied(&one.scrape().await) != 16 {
        assert!(
            Instant::now() < deadline,
            "the first batch was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Scrapes (a second Prometheus, a curl) commit nothing and change no figure.
    let committed_before = committed(&cfg);
    let scrapes = scrapes_of(&one, 20).await;
    assert!(scrapes.iter().all(|m| common::kafka::applied(m) == 16));
    assert_eq!(committed(&cfg), committed_before);
    let (status, _, _) = post(&s.app, &carts("b", 16)).await;
    assert_eq!(status, StatusCode::OK);

    // A second engine joins: two partitions move, checkpointed by the first as it lets them
    // go and restored by the second, which counts them on from there.
    let two = InProcess::start(&cfg);
    let joined = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(90);
    let (held_by_both, restores) = loop {
        let (a, b) = (one.scrape().await, two.scrape().await);
        let both = Scrape::combine([a.clone(), b.clone()]);
        let split = one.partitions() == 2.0 && two.partitions() == 2.0;
        if split && common::kafka::applied(&both) == 32 && common::kafka::applied(&b) > 0 {
            // Each partition's series come from one engine at a time, and together they are
            // every event once: 32 sessions, each a cart of 5 closed (their events are a year
            // old) as abandoned.
            let series = |m: &Scrape| {
                m.series("touchstream_engine_events_applied_total", &[])
                    .count()
            };
            assert_eq!(series(&a) + series(&b), 4);
            assert_eq!(both.sum("touchstream_carts_abandoned_total", &[]), 32.0);
            assert_eq!(
                both.sum("touchstream_carts_abandoned_value_total", &[]),
                160.0
            );
            assert_eq!(common::kafka::reached(&both)[2], 32);
            // The moved partitions' checkpoints covered everything: nothing was re-read.
            let reread = Scrape::parse(&two.metrics.encode())
                .sum("touchstream_kafka_rebuild_messages_total", &[]);
            assert_eq!(reread, 0.0);
            eprintln!(
                "settled {:?} after the second engine started",
                joined.elapsed()
            );
            break (
                held(&a) + held(&b),
                a.sum("touchstream_kafka_rebuild_seconds_count", &[]),
            );
        }
        assert!(
            Instant::now() < deadline,
            "engines never settled: {} and {} partitions, {} applied",
            one.partitions(),
            two.partitions(),
            common::kafka::applied(&both)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The second engine leaves: its partitions come back to the first, which holds each
    // session's ids once, as the two did together (what it released when it let them go is
    // not held twice), and times every restore. (Ticks reach every partition at once, so each
    // load here is taken by its restore before any revoke: a load revoked while it runs is
    // not exercised.)
    assert!(held_by_both >= 32.0, "{held_by_both}");
    two.stop().await;
    wait_until("4 partitions back", || one.partitions() == 4.0).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = one.scrape().await;
        if common::kafka::applied(&a) == 32 {
            assert_eq!(held(&a), held_by_both);
            assert!(a.sum("touchstream_kafka_rebuild_seconds_count", &[]) >= restores + 2.0);
            break;
        }
        assert!(Instant::now() < deadline, "the partitions never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    one.stop().await;
}

/// The ids an engine process holds: in open sessions, and remembered after they closed.
fn held(m: &Scrape) -> f64 {
    m.sum("touchstream_engine_stored_ids", &[]) + m.sum("touchstream_engine_remembered_ids", &[])
}

/// `n` scrapes of `engine`, one after another.
async fn scrapes_of(engine: &InProcess, n: usize) -> Vec<Scrape> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(engine.scrape().await);
    }
    out
}

/// The funnel figures an engine reports after applying `events` and closing every session.
fn figures(
    config: &Config,
    events: &[touchstream::event::Event],
) -> touchstream::metrics::SiteReport {
    let metrics = Arc::new(Metrics::new(config));
    let engine = touchstream::engine::Engine::new(config, metrics.clone());
    for e in events {
        engine.apply(e);
    }
    engine.close_all();
    let mut report = touchstream::metrics::Report::new(config, &metrics);
    let (_, mut site) = report.sites.remove(0);
    // Only the duplicates may differ: the retry's copies of what was delivered.
    site.duplicates = 0;
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_after_part_of_a_batch_was_delivered_and_its_retry_count_as_one_clean_delivery() {
    let s = setup();
    // Sixteen shoppers' carts and one rejected event; the partition 0 has no leader, so the
    // events keyed to it cannot be delivered while the others are.
    let mut events: Vec<Value> = (0..16)
        .map(|i| {
            json!({"id": format!("e{i}"), "type": "add_to_cart", "ts": 1_763_800_000_000i64,
                        "session": format!("s{i}"), "props": {"value": 5}})
        })
        .collect();
    events.push(json!({"id": "bad", "type": "page_view", "session": "s0"}));
    let body = json!({"site": "demo", "events": events});
    s.cluster
        .partition_leader(&s.config.kafka.topic, 0, None)
        .unwrap();
    let (status, retry, _) = post(&s.app, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("1"));
    // The leader is back; the client retries the same batch.
    s.cluster
        .partition_leader(&s.config.kafka.topic, 0, Some(1))
        .unwrap();
    let (status, _, answer) = post(&s.app, &body).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (StatusCode::OK, Some(16))
    );
    let config = s.config.clone();
    let (delivered, letters) = tokio::task::spawn_blocking(move || {
        (
            read_all(&config, &config.kafka.topic, 4, 32),
            read_all(&config, &config.kafka.dead_letter_topic, 1, 2),
        )
    })
    .await
    .unwrap();
    let delivered: Vec<touchstream::event::Event> = delivered
        .iter()
        .filter_map(|(_, payload)| match serde_json::from_slice(payload) {
            Ok(InMessage::Event(e)) => Some(e),
            _ => None,
        })
        .collect();
    // Part of the first attempt was delivered: some events are there twice, some once.
    let twice = (0..16)
        .filter(|i| delivered.iter().filter(|e| e.id == format!("e{i}")).count() == 2)
        .count();
    assert!((1..16).contains(&twice), "{twice} of 16 delivered twice");
    assert_eq!(delivered.len(), 16 + twice);
    // The figures equal those of one clean delivery.
    let once: Vec<_> = (0..16)
        .map(|i| {
            delivered
                .iter()
                .find(|e| e.id == format!("e{i}"))
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(figures(&s.config, &delivered), figures(&s.config, &once));
    // The rejected event's letter was written once: the first attempt wrote none.
    assert_eq!(letters.len(), 1, "{} dead letters", letters.len());
    let letter: DeadLetter = serde_json::from_slice(&letters[0].1).unwrap();
    assert_eq!(letter.id.len(), 32);
}
