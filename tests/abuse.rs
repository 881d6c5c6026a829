//! Attacks on the running binary, each against one bound of SECURITY.md: one client must not
//! stall the engine, hold the listener, swell memory or close real shoppers' sessions.
//!
//! The binary is `TEST_TOUCHSTREAM_BIN` when set (the test command sets it to the release
//! build, the binary a shop runs), else the one cargo built for the tests.

mod common;

use common::kafka::scrape_at;
use common::process::{KillOnDrop, start};
use common::prom::Scrape;
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ORIGIN: &str = "http://shop.test";

/// A running server under attack: its process, its listeners, its configuration file.
struct Target {
    guard: KillOnDrop,
    public: SocketAddr,
    admin: SocketAddr,
    _config: tempfile::NamedTempFile,
    /// Removed after the process is stopped (fields drop in order).
    _state: tempfile::TempDir,
}

/// Starts the binary with the defaults a shop runs, plus `toml` (sections of a config file).
/// Loopback is a trusted proxy by default; tests whose attacker is an ordinary client say
/// `trusted_proxies = []`.
fn target(toml: &str) -> Target {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [[sites]]\nid = \"demo\"\norigins = [\"{ORIGIN}\"]\n{toml}"
    )
    .unwrap();
    let bin = std::env::var("TEST_TOUCHSTREAM_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_touchstream").to_string());
    let state = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin);
    command
        .env_remove("RUST_LOG")
        .env("TOUCHSTREAM_STATE_DIR", state.path())
        .args(["--config", file.path().to_str().unwrap(), "serve"]);
    let (guard, _log, up) = start(&mut command, &["public", "admin"]);
    Target {
        guard,
        public: up[0].parse().unwrap(),
        admin: up[1].parse().unwrap(),
        _config: file,
        _state: state,
    }
}

impl Target {
    fn pid(&self) -> u32 {
        self.guard.0.as_ref().unwrap().id()
    }

    async fn scrape(&self) -> Scrape {
        scrape_at(self.admin).await.expect("/metrics answers")
    }

    /// `/metrics` once the engine has applied `events` (it applies the queue asynchronously).
    async fn settled(&self, events: u64) -> Scrape {
        common::kafka::wait_for_at(self.admin, "the engine to apply the events", |s| {
            common::kafka::applied(s) >= events
        })
        .await
    }
}

/// Peak resident memory of `pid`, in MB.
fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

fn events_url(t: &Target) -> String {
    format!("http://{}/v1/events", t.public)
}

async fn post(client: &reqwest::Client, t: &Target, body: &serde_json::Value) -> u16 {
    client
        .post(events_url(t))
        .header("content-type", "application/json")
        .header("origin", ORIGIN)
        .body(body.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn sessions(s: &Scrape, stage: &str) -> f64 {
    s.sum("touchstream_funnel_sessions_total", &[("stage", stage)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flooded_session_neither_stalls_the_engine_nor_grows_without_bound() {
    let t = target("[limits]\nclient_requests_per_second = 0\ntrusted_proxies = []\n");
    let rss_before = peak_rss_mb(t.pid());
    let stop = Instant::now() + Duration::from_secs(8);
    // Event times are now: an old time would let the sweep close the session every second.
    let now = touchstream::now_ms();
    // Two connections post purchases into one session as fast as the server answers: distinct
    // event ids, distinct order ids, items.
    let flood = (0..2).map(|task| {
        let (client, url) = (reqwest::Client::new(), events_url(&t));
        tokio::spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < stop {
                let events: Vec<_> = (0..500)
                    .map(|i| {
                        let n = sent + i;
                        json!({"id": format!("f{task}-{n}"), "type": "purchase",
                               "ts": now, "session": "flood",
                               "props": {"order_id": format!("o{task}-{n}"), "currency": "USD",
                                         "items": [{"price": 1.0, "quantity": 1}]}})
                    })
                    .collect();
                let body = json!({"site": "demo", "events": events}).to_string();
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("origin", ORIGIN)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                sent += if ok { 500 } else { 0 };
            }
            sent
        })
    });
    let flood: Vec<_> = flood.collect();
    // Meanwhile another shopper's visit must reach /metrics within a second, every time.
    let client = reqwest::Client::new();
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    while Instant::now() + Duration::from_secs(1) < stop {
        let before = sessions(&t.scrape().await, "visit");
        let sent = Instant::now();
        let probe = json!({"site": "demo", "events": [{"id": "p", "type": "page_view",
            "ts": now, "session": format!("probe-{probes}")}]});
        assert_eq!(post(&client, &t, &probe).await, 200);
        while sessions(&t.scrape().await, "visit") <= before {
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "the probe never arrived"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worst = worst.max(sent.elapsed());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut flooded = 0;
    for f in flood {
        flooded += f.await.unwrap();
    }
    let s = t.settled(flooded + probes).await;
    let limited = s.sum(
        "touchstream_events_filtered_total",
        &[("reason", "session_limit")],
    );
    let grew = peak_rss_mb(t.pid()) - rss_before;
    println!(
        "{flooded} events into one session; {probes} probes, slowest {worst:?}; \
         {limited} filtered as session_limit; peak memory grew {grew} MB"
    );
    assert!(probes >= 3, "{probes} probes");
    assert!(
        worst <= Duration::from_secs(1),
        "another session waited {worst:?}"
    );
    assert!(flooded > 50_000, "the flood sent only {flooded}");
    assert_eq!(s.sum("touchstream_orders_total", &[]), 2_000.0);
    assert!(limited >= (flooded - 2_000) as f64 * 0.9, "{limited}");
    assert!(grew < 100, "peak memory grew {grew} MB");
}

/// Whether the server closes `stream` within `within` (reads to the end or fails).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(within, stream.read_to_end(&mut sink)).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_holds_a_slot_without_completing_a_request() {
    let t = target("[limits]\nheader_timeout = \"1s\"\ntrusted_proxies = []\n");
    let connect = || TcpStream::connect(t.public);
    // Nothing at all; one byte; the HTTP/2 cleartext preface; a finished keep-alive request.
    let mut silent = connect().await.unwrap();
    let mut one_byte = connect().await.unwrap();
    one_byte.write_all(b"P").await.unwrap();
    let mut h2 = connect().await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut idle = connect().await.unwrap();
    idle.write_all(b"GET /t.js HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let started = Instant::now();
    for (what, s) in [
        ("a silent connection", &mut silent),
        ("one byte", &mut one_byte),
        ("an HTTP/2 preface", &mut h2),
        ("an idle keep-alive connection", &mut idle),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "{what} still held its slot after {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pipelines_and_never_reads_is_cut() {
    let t = target("[limits]\nheader_timeout = \"1s\"\ntrusted_proxies = []\n");
    let mut s = TcpStream::connect(t.public).await.unwrap();
    // Ten thousand requests for the snippet, their answers never read: megabytes of answers
    // that fill the socket's buffers.
    let requests = "GET /t.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(10_000);
    let writer = tokio::spawn(async move {
        let _ = s.write_all(requests.as_bytes()).await;
        s
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut = async {
        loop {
            let open = t
                .scrape()
                .await
                .sum("touchstream_http_connections_open", &[]);
            if open <= 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // The admin listener's own scrape connection is the one left open.
    assert!(
        tokio::time::timeout(Duration::from_secs(10), cut)
            .await
            .is_ok(),
        "the pipelining client still holds its connection"
    );
    drop(writer);
}

/// A connection to `to` from the loopback address `from` (Linux routes all of 127/8 to lo).
async fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse().unwrap())?;
    socket.connect(to).await
}

/// Whether the listener serves a request on `s`.
async fn served(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /t.js HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head)).await,
        Ok(Ok(_))
    ) && &head == b"HTTP/1.1 200"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_the_whole_listener() {
    let t = target(
        "[limits]\nmax_connections = 20\nmax_client_connections = 3\ntrusted_proxies = []\n",
    );
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = connect_from("127.0.0.1", t.public).await.unwrap();
        if served(&mut s).await {
            held.push(s);
        }
    }
    // Up to half the listener freely, then its share is spent.
    assert_eq!(
        held.len(),
        10,
        "one address held {} connections",
        held.len()
    );
    let mut other = connect_from("127.0.0.2", t.public).await.unwrap();
    assert!(served(&mut other).await, "another address was locked out");
    let s = t.scrape().await;
    assert_eq!(
        s.sum("touchstream_http_connections_refused_total", &[]),
        10.0
    );
    // A trusted proxy (every shopper behind a load balancer) is not held to a share.
    let t = target("[limits]\nmax_connections = 20\nmax_client_connections = 3\n");
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = connect_from("127.0.0.1", t.public).await.unwrap();
        if served(&mut s).await {
            held.push(s);
        }
    }
    assert_eq!(held.len(), 20);
}

/// Sends a chunked POST whose `size`-byte body comes in one-byte chunks.
async fn post_in_one_byte_chunks(to: SocketAddr, size: usize) -> String {
    let mut s = TcpStream::connect(to).await.unwrap();
    let events: Vec<_> = (0..size / 200)
        .map(|i| {
            json!({"id": format!("e{i}"), "type": "page_view", "ts": 1_763_800_000_000i64,
                        "session": "s", "url": "x".repeat(100)})
        })
        .collect();
    let mut body = json!({"site": "demo", "events": events}).to_string();
    while body.len() < size {
        body.push(' ');
    }
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Origin: {ORIGIN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut wire = Vec::with_capacity(size * 7);
    wire.extend_from_slice(head.as_bytes());
    for b in body.bytes() {
        wire.extend_from_slice(b"1\r\n");
        wire.push(b);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&wire).await.unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_in_one_byte_chunks_costs_its_size_and_the_total_is_bounded() {
    // A debug build takes its time over four million one-byte chunks.
    let t = target(
        "[limits]\nclient_requests_per_second = 0\nmax_batch_events = 5000\n\
         request_timeout = \"60s\"\n",
    );
    let before = peak_rss_mb(t.pid());
    let sends: Vec<_> = (0..8)
        .map(|_| tokio::spawn(post_in_one_byte_chunks(t.public, 500_000)))
        .collect();
    for s in sends {
        let status = s.await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    }
    let grew = peak_rss_mb(t.pid()) - before;
    println!("8 bodies of 500 KB in one-byte chunks: peak memory grew {grew} MB");
    assert!(grew < 40, "peak memory grew {grew} MB for 4 MB of bodies");

    // One address announces large bodies on forty connections and trickles 40 KB into each:
    // once half the budget is held, it gets 503 (Retry-After) beyond its sixteenth, and
    // another address still gets in.
    let t = target(
        "[limits]\nclient_requests_per_second = 0\ntrusted_proxies = []\n\
         max_inflight_body_bytes = 1600000\n",
    );
    let (sent, mut all_sent) = tokio::sync::mpsc::channel::<()>(40);
    let greedy: Vec<_> = (0..40)
        .map(|_| {
            let (to, sent) = (t.public, sent.clone());
            tokio::spawn(async move {
                let mut s = connect_from("127.0.0.1", to).await.unwrap();
                let head = format!(
                    "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Origin: {ORIGIN}\r\nContent-Length: 500000\r\n\r\n{{\"events\": \""
                );
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(&[b'x'; 40_000]).await.unwrap();
                let _ = sent.send(()).await;
                // Held, unless the collector answered already.
                let mut head = [0u8; 12];
                let answered =
                    tokio::time::timeout(Duration::from_secs(8), s.read_exact(&mut head)).await;
                matches!(answered, Ok(Ok(_))).then(|| String::from_utf8_lossy(&head).to_string())
            })
        })
        .collect();
    for _ in 0..40 {
        all_sent.recv().await.unwrap();
    }
    // Time for the collector to read what was sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = post_from("127.0.0.2", &t, &json!({"site": "demo", "events": []})).await;
    let mut refused = 0;
    for g in greedy {
        if let Some(head) = g.await.unwrap() {
            assert_eq!(
                head, "HTTP/1.1 503",
                "a trickling request was answered otherwise"
            );
            refused += 1;
        }
    }
    println!("40 trickled bodies from one address: {refused} got 503; another address: {other}");
    assert_eq!(other, 200, "another address was refused");
    assert!((10..=35).contains(&refused), "{refused} of 40 refused");
}

/// Posts `body` from the loopback address `from`.
async fn post_from(from: &str, t: &Target, body: &serde_json::Value) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(Some(from.parse().unwrap()))
        .build()
        .unwrap();
    post(&client, t, body).await
}

/// `sessions` new two-event sessions named `{prefix}-{i}`, at `ts`.
fn new_sessions(prefix: &str, sessions: usize, ts: i64) -> serde_json::Value {
    let events: Vec<_> = (0..sessions)
        .flat_map(|i| {
            let session = format!("{prefix}-{i}");
            [
                json!({"id": "1", "type": "page_view", "ts": ts, "session": session}),
                json!({"id": "2", "type": "view_item", "ts": ts, "session": session}),
            ]
        })
        .collect();
    json!({"site": "demo", "events": events})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_sessions_neither_closes_real_carts_nor_fires_the_alerts() {
    let t = target(
        "[limits]\nclient_requests_per_second = 0\ntrusted_proxies = []\n\
         [engine]\nmax_open_sessions = 1000\n",
    );
    // Event times are now, so no session is closed by the clock during the test.
    let now = touchstream::now_ms();
    // Twenty real shoppers, each from an address of their own, put something in their cart.
    for i in 0..20 {
        let cart = json!({"site": "demo", "events": [
            {"id": "1", "type": "page_view", "ts": now, "session": format!("real{i}")},
            {"id": "2", "type": "add_to_cart", "ts": now, "session": format!("real{i}"),
             "props": {"value": 10.0, "currency": "USD"}}]});
        assert_eq!(
            post_from(&format!("127.0.0.{}", 10 + i), &t, &cart).await,
            200
        );
    }
    // One address opens ten times the store's size in new sessions: past half full, it is
    // held to its rate.
    for batch in 0..40 {
        let flood = new_sessions(&format!("one-{batch}"), 250, now);
        assert_eq!(post_from("127.0.0.1", &t, &flood).await, 200);
    }
    let s = t.settled(40 + 40 * 500).await;
    let refused = s.sum(
        "touchstream_events_filtered_total",
        &[("reason", "session_rate")],
    );
    assert!(refused >= 2.0 * 9_000.0, "{refused} events refused");
    // Fifty addresses together fill the store: it forgets flood sessions, not carts.
    for a in 0..50 {
        let flood = new_sessions(&format!("many-{a}"), 200, now);
        assert_eq!(post_from(&format!("127.0.1.{a}"), &t, &flood).await, 200);
    }
    let s = t.settled(40 + 40 * 500 + 50 * 400).await;
    let evicted = s.sum("touchstream_engine_sessions_evicted_total", &[]);
    println!(
        "{refused} events refused from one address; {evicted} sessions forgotten; open carts {}",
        s.sum("touchstream_carts_open", &[])
    );
    assert!(evicted > 0.0, "the store never filled");
    assert_eq!(s.sum("touchstream_engine_carts_evicted_total", &[]), 0.0);
    assert_eq!(s.sum("touchstream_carts_abandoned_total", &[]), 0.0);
    assert_eq!(s.sum("touchstream_funnel_dropoffs_total", &[]), 0.0);
    assert_eq!(s.sum("touchstream_carts_open", &[]), 20.0);
    assert!(s.sum("touchstream_engine_open_sessions", &[]) <= 1_000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_what_the_proxies_say_and_no_more() {
    // Behind one proxy at loopback (trusted by default), with the header configured.
    let t = target(
        "[limits]\nclient_requests_per_second = 1\nclient_burst_requests = 3\n\
         client_address_header = \"x-forwarded-for\"\n",
    );
    let client = reqwest::Client::new();
    let send = |lines: Vec<&'static str>| {
        let mut r = client
            .post(events_url(&t))
            .header("content-type", "application/json")
            .header("origin", ORIGIN);
        for l in lines {
            r = r.header("x-forwarded-for", l);
        }
        async move {
            r.body(json!({"site": "demo", "events": []}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // A client writing a fresh address of its own on every request, and its proxy appending
    // the real one on a line of its own: one bucket, the real address's.
    // At most the burst of three, plus one a second of however long the requests took.
    let within_the_bucket = |statuses: &[u16], started: Instant| {
        let allowed = 3 + started.elapsed().as_secs() as usize;
        let passed = statuses.iter().filter(|s| **s == 200).count();
        statuses[..3] == [200, 200, 200] && passed <= allowed && passed < statuses.len()
    };
    let (mut statuses, started) = (Vec::new(), Instant::now());
    for forged in [
        "1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5", "6.6.6.6",
    ] {
        statuses.push(send(vec![forged, "203.0.113.9"]).await);
    }
    assert!(within_the_bucket(&statuses, started), "{statuses:?}");
    // IPv6 clients share their /64.
    let (mut statuses, started) = (Vec::new(), Instant::now());
    for addr in [
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8::3",
        "2001:db8::4",
        "2001:db8::5",
    ] {
        statuses.push(send(vec![addr]).await);
    }
    assert!(within_the_bucket(&statuses, started), "{statuses:?}");

    // Without the header configured, forwarding headers are reported once, in /readyz.
    let t = target("[limits]\nclient_requests_per_second = 0\n");
    let readyz = |t: &Target| {
        let url = format!("http://{}/readyz", t.admin);
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(readyz(&t).await["warnings"], json!([]));
    let forwarded = reqwest::Client::new()
        .post(events_url(&t))
        .header("content-type", "application/json")
        .header("origin", ORIGIN)
        .header("x-forwarded-for", "203.0.113.9")
        .body(json!({"site": "demo", "events": []}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 200);
    let warnings = readyz(&t).await["warnings"].to_string();
    assert!(warnings.contains("client_address_header"), "{warnings}");
}
