//! Hostile input: bodies built to hurt get a clear 4xx, memory stays bounded, and no client
//! text can add a series to /metrics.

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::app::{Harness, post, send};
use common::server::{ORIGIN, TestServer, config};
use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;
use touchstream::config::Config;

fn harness() -> Harness {
    let mut c = Config::default();
    c.sites[0].origins = vec![common::app::ORIGIN.into()];
    Harness::new(&c)
}

async fn status_and_code(h: &Harness, body: Vec<u8>) -> (StatusCode, Value) {
    let (status, _, answer) = send(&h.app, post().body(Body::from(body)).unwrap()).await;
    (status, answer["error"].clone())
}

#[tokio::test]
async fn deep_huge_and_broken_json_gets_400_or_413() {
    let h = harness();
    // 100,000 levels of nesting, in the batch and inside an event.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for body in [
        format!(r#"{{"site":"demo","events":{deep}}}"#),
        format!(r#"{{"site":"demo","events":[{{"id":"a","props":{deep}}}]}}"#),
    ] {
        let (status, code) = status_and_code(&h, body.into_bytes()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, Some("malformed_body"))
        );
    }
    // A body over the limit, and a string longer than the whole limit.
    let huge = format!(
        r#"{{"site":"demo","events":[{{"id":"{}"}}]}}"#,
        "x".repeat(600_000)
    );
    assert_eq!(
        status_and_code(&h, huge.into_bytes()).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Invalid UTF-8 inside a string.
    let mut bad = br#"{"site":"demo","events":[{"id":""#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe, 0x80]);
    bad.extend_from_slice(br#"","type":"page_view","ts":1,"session":"s"}]}"#);
    let (status, code) = status_and_code(&h, bad).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_body"))
    );
    // Nothing reached the transport, and nothing was counted as received.
    assert_eq!(h.metric("touchstream_events_received_total", &[]), 0.0);
}

/// `size` bytes of zeros, gzipped.
fn gzip_zeros(size: usize) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..size / chunk.len() {
        gz.write_all(&chunk).unwrap();
    }
    gz.finish().unwrap()
}

fn peak_rss_kb(pid: u32) -> u64 {
    touchstream_load::procstat::status_bytes(&pid.to_string(), "VmHWM").unwrap() >> 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_gets_413_and_the_collector_stays_small() {
    // About 1 MB on the wire would be refused before inflating (over max_body_bytes); this one
    // is under it and inflates a thousandfold, to 400 MB.
    let bomb = gzip_zeros(400 << 20);
    assert!(bomb.len() < 512 * 1024, "{}", bomb.len());
    let server = common::process::spawn(
        common::process::touchstream()
            .env("TOUCHSTREAM_LISTEN", "127.0.0.1:0")
            .env("TOUCHSTREAM_ADMIN_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info"),
    );
    let addr = &server.public;
    let before = peak_rss_kb(server.pid());
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let res = client
            .post(format!("http://{addr}/v1/events"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413);
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["error"], "too_large");
    }
    let grew_mb = (peak_rss_kb(server.pid()) - before) / 1024;
    assert!(
        grew_mb < 32,
        "the peak resident memory grew by {grew_mb} MB"
    );
}

/// A random printable string of up to `max` characters.
fn junk(rng: &mut fastrand::Rng, max: usize) -> String {
    let n = rng.usize(1..=max);
    (0..n).map(|_| rng.char('!'..='~')).collect()
}

/// A batch of `n` events whose every label source (type, channel fields, currency) is junk.
fn junk_batch(rng: &mut fastrand::Rng, n: usize, site: &str) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("{}-{i}", rng.u64(..)), "type": junk(rng, 30), "ts": 1_763_800_000_000i64,
                   "session": junk(rng, 20), "url": format!("https://{}/", junk(rng, 20)),
                   "referrer": format!("https://{}.example/", junk(rng, 12)),
                   "utm": {"source": junk(rng, 10), "medium": junk(rng, 10)},
                   "props": {"value": 1, "currency": junk(rng, 4)}})
        })
        .collect();
    json!({"site": site, "events": events}).to_string()
}

/// Posts `events` junk events for the configured site, and a one-event batch for a junk site
/// after every ten batches; returns the statuses seen.
async fn send_junk(server: std::net::SocketAddr, seed: u64, events: usize) -> Vec<u16> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..events / 500 {
        let mut bodies = vec![junk_batch(&mut rng, 500, "demo")];
        if n % 10 == 0 {
            let site = junk(&mut rng, 16);
            bodies.push(junk_batch(&mut rng, 1, &site));
        }
        for body in bodies {
            let res = client
                .post(format!("http://{server}/v1/events"))
                .header("content-type", "application/json")
                .header("origin", ORIGIN)
                .header("user-agent", "Mozilla/5.0")
                .body(body)
                .send()
                .await
                .unwrap();
            statuses.push(res.status().as_u16());
        }
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_random_labels_add_no_series() {
    let server = TestServer::start(config(Duration::from_secs(3600))).await;
    // Warm up: the bounded label values that appear on first use ("other" touchpoints, the
    // rejection reasons junk meets, HTTP statuses).
    send_junk(server.public, 1, 2_000).await;
    server.wait_applied(1).await;
    let before = server.scrape().await;
    // A million junk events from two clients at once.
    let (a, b) = tokio::join!(
        send_junk(server.public, 2, 500_000),
        send_junk(server.public, 3, 500_000)
    );
    for status in a.into_iter().chain(b) {
        assert!(status == 200 || status == 401, "{status}");
    }
    let after = server.scrape().await;
    assert_eq!(after.len(), before.len(), "series appeared");
    let received = |s: &common::prom::Scrape| s.sum("touchstream_events_received_total", &[]);
    assert_eq!(received(&after) - received(&before), 1_000_000.0);
    server.stop().await;
}

/// An event of `value` in USD, with its own id, in session `session`.
fn priced(id: &str, kind: &str, session: &str, value: f64) -> Value {
    json!({"id": id, "type": kind, "ts": touchstream::now_ms(), "session": session,
           "props": {"value": value, "currency": "USD", "order_id": id}})
}

/// Ten orders of the largest accepted value (1e12) used to wrap revenue, kept in an `i64` of
/// micro-units, to a negative figure, and nineteen then froze it at the top of a `u64`. Over the
/// socket: 25 such orders in one session, most in one request, give exactly 2.5e13, and the
/// figure never goes down on the way; open carts of that value are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_values_never_wrap_or_shrink_a_money_figure() {
    let server = TestServer::start(config(Duration::from_secs(3600))).await;
    let post = |events: Vec<Value>| {
        let (server, batch) = (&server, json!({"site": "demo", "events": events}));
        async move { server.post(&batch).await }
    };
    // The largest accepted value is 1e12; a cent more is refused.
    let answer: Value = post(vec![priced("over", "purchase", "rich", 1e12 + 0.01)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["rejected"][0]["reason"], "invalid_props", "{answer}");
    let order = |i: u64| priced(&format!("A-{i}"), "purchase", "rich", 1e12);
    let revenue = |s: &common::prom::Scrape| s.sum("touchstream_revenue_total", &[]);
    // Five one request at a time, read after each: exact, and never lower than before.
    let mut last = 0.0;
    for i in 1..=5 {
        assert_eq!(post(vec![order(i)]).await.status(), 200);
        let now = revenue(&server.wait_applied(i).await);
        assert!(now >= last, "revenue went from {last} to {now}");
        assert_eq!(now, i as f64 * 1e12);
        last = now;
    }
    // Twenty more in one request: 2.5e13 in all, past 2^64 - 1 micro-units (1.8e13 units),
    // where revenue once stopped for good.
    assert_eq!(post((6..=25).map(order).collect()).await.status(), 200);
    assert_eq!(revenue(&server.wait_applied(25).await), 2.5e13);
    let carts = (0..10)
        .map(|i| priced(&format!("c{i}"), "add_to_cart", &format!("cart-{i}"), 1e12))
        .collect();
    assert_eq!(post(carts).await.status(), 200);
    let s = server.wait_applied(35).await;
    assert_eq!(s.sum("touchstream_carts_open_value", &[]), 1e13);
    assert_eq!(revenue(&s), 2.5e13);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_headers_are_cut_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let mut c = config(Duration::from_secs(60));
    // Long enough for the held connections below to stay open while the test looks at them
    // (an idle keep-alive connection closes after it too).
    c.limits.header_timeout = Duration::from_secs(3);
    c.limits.max_connections = 8;
    // The slow client is an ordinary one, not a trusted proxy (which may idle for longer).
    c.limits.trusted_proxies = vec![];
    let server = TestServer::start(c).await;

    // A slowloris client: half a request line, then nothing. It is disconnected.
    let mut slow = TcpStream::connect(server.public).await.unwrap();
    slow.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the slow client was still connected after 10 s"
    );

    // Headers over the limit: 431, or the connection closed.
    let big = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let mut fat = TcpStream::connect(server.public).await.unwrap();
    let _ = fat.write_all(big.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), fat.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // The two connections above are closed on the server's side before their slots are free:
    // wait for that, or one of the eight below may be refused. (The one left open is the
    // scrape's own, on the admin listener.)
    server
        .wait_for("the first two connections released", |s| {
            s.sum("touchstream_http_connections_open", &[]) <= 1.0
        })
        .await;
    // Eight idle connections fill the listener; the ninth is closed at once and counted.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(server.public).await.unwrap();
        s.write_all(b"GET /t.js HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        held.push(s);
    }
    let mut ninth = TcpStream::connect(server.public).await.unwrap();
    let _ = ninth
        .write_all(b"GET /t.js HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), ninth.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the ninth connection was served"
    );
    let s = server.scrape().await;
    assert_eq!(
        s.sum("touchstream_http_connections_refused_total", &[]),
        1.0
    );
    assert!(s.sum("touchstream_http_connections_open", &[]) >= 8.0);
    // Freed connections make room again.
    drop(held);
    server
        .wait_for("connections released", |s| {
            s.sum("touchstream_http_connections_open", &[]) <= 1.0
        })
        .await;
    let ok = reqwest::get(format!("http://{}/t.js", server.public))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    server.stop().await;
}

/// A client still sending a body the collector refused reads the refusal, and its connection
/// stays usable: closing a socket with bytes unread resets it, and a browser then sees a
/// network error (and retries) instead of 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_is_read_to_its_end_so_the_client_gets_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let server = TestServer::start(config(Duration::from_secs(60))).await;
    let too_big = 600 * 1024;
    let requests = [
        // Over the limit, announced by Content-Length: refused before a byte is read.
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {too_big}\r\n\r\n{}",
            "a".repeat(too_big)
        ),
        // Chunked, over the limit once part of it was read.
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
            format!("10000\r\n{}\r\n", "a".repeat(65536)).repeat(10)
        ),
        // The wrong type: refused before the body too.
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n\
         Content-Length: 65536\r\n\r\n"
            .to_string()
            + &"a".repeat(65536),
        "GET /t.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
    ]
    .concat();
    let stream = TcpStream::connect(server.public).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    // The writer keeps its half open, as a browser does: a half-closed connection may be
    // closed before its last request is answered.
    let writer = tokio::spawn(async move { tx.write_all(requests.as_bytes()).await.map(|_| tx) });
    let mut answers = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), rx.read_to_end(&mut answers)).await;
    let answers = String::from_utf8_lossy(&answers);
    let statuses: Vec<&str> = answers
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answers[i + 9..i + 12])
        .collect();
    assert!(matches!(read, Ok(Ok(_))), "{read:?} after {statuses:?}");
    assert_eq!(statuses, ["413", "413", "415", "200"], "{answers}");
    writer.await.unwrap().unwrap();

    // The answer does not wait for the rest of the body: a client reads its 413 with most of
    // the body unsent, then sends the rest and a next request on the same connection.
    let mut early = TcpStream::connect(server.public).await.unwrap();
    early
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {too_big}\r\n\r\n{}",
                "a".repeat(1024)
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(3), early.read_exact(&mut head))
        .await
        .expect("answered before the body ended")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    early
        .write_all(
            ("a".repeat(too_big - 1024)
                + "GET /t.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), early.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(_))), "{read:?}");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");

    // A client that waits for `100 Continue` is answered at once and never asked for its body.
    let mut waiting = TcpStream::connect(server.public).await.unwrap();
    waiting
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {too_big}\r\nExpect: 100-continue\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), waiting.read_exact(&mut head))
        .await
        .expect("answered without its body")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    server.stop().await;
}
