//! Engine and collector throughput (criterion): apply rate on decoded events, the sweep closing
//! the sessions they opened (and remembering them for the dedup horizon), and batch decode plus
//! validation plus enrichment. All run on one thread, so elements/s is per core.
//!
//! `cargo bench --bench engine`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use touchstream::collector::{BatchContext, Clock, WireBatch, decode_batch};
use touchstream::config::Config;
use touchstream::engine::Engine;
use touchstream::event::{Channel, Device, Event};
use touchstream::metrics::Metrics;

/// A shopper's walk: mostly views, some carts, a few checkouts and purchases, a friction event.
const WALK: &[&str] = &[
    "page_view",
    "view_item_list",
    "view_item",
    "view_item",
    "add_to_cart",
    "view_cart",
    "begin_checkout",
    "add_payment_info",
    "purchase",
    "rage_click",
];

fn events(sessions: usize) -> Vec<Event> {
    let mut out = Vec::new();
    for s in 0..sessions {
        // Sessions stop at different stages, like a real funnel.
        let depth = 2 + (s * 7919) % (WALK.len() - 1);
        for (i, kind) in WALK[..depth].iter().enumerate() {
            let (session, id) = (
                format!("s-{s:012x}"),
                format!("{s:08x}-{i:04x}-0000-0000-000000000000"),
            );
            out.push(Event {
                received_at_ms: 1_763_800_000_000,
                channel: Channel::ALL[s % Channel::ALL.len()],
                device: Device::ALL[s % 3],
                value: matches!(*kind, "add_to_cart" | "purchase").then_some(49.99),
                currency: Some("USD".into()),
                order_id: (*kind == "purchase").then(|| format!("o-{s}")),
                ..Event::new(
                    "demo",
                    session,
                    id,
                    *kind,
                    1_763_800_000_000 + (i as i64) * 5_000,
                )
            });
        }
    }
    out
}

fn engine() -> Engine {
    let config = Config::default();
    let metrics = Arc::new(Metrics::new(&config));
    Engine::new(&config, metrics)
}

fn apply(c: &mut Criterion) {
    let events = events(20_000);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("apply", |b| {
        b.iter_batched(
            engine,
            |engine| {
                for e in &events {
                    black_box(engine.apply(e));
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
    // The sessions of those events, closed by one sweep: drop-offs, carts, and their ids moved
    // to the closed sessions remembered. Per session closed.
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("sweep_close", |b| {
        b.iter_batched(
            || {
                let engine = engine();
                events.iter().for_each(|e| _ = engine.apply(e));
                engine
            },
            |engine| {
                black_box(engine.sweep(1_763_900_000_000));
                engine
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn batch_json(n: usize) -> String {
    let events: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": format!("b3f1c2d4e5f60718293a4b5c6d7e{i:04x}"), "type": WALK[i % WALK.len()],
                "ts": 1_763_800_000_000i64 + i as i64, "session": "s-7d1f9a", "visitor": "v-1c2b3a",
                "url": "https://shop.example/p/123", "referrer": "https://www.google.com/",
                "utm": {"source": "newsletter", "medium": "email", "campaign": "black-friday"},
                "props": {"value": 129.99, "currency": "PLN", "order_id": "A-1001",
                          "items": [{"id": "sku-1", "price": 129.99, "quantity": 1}]}
            })
        })
        .collect();
    json!({"site": "demo", "sent_at": 1_763_800_000_123i64, "events": events}).to_string()
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("collector");
    let limits = Config::default().limits;
    // Built once, as the collector builds it once a request.
    let ctx = BatchContext {
        site: Arc::from("demo"),
        require_consent: false,
        clock: Clock::Received {
            at: 1_763_800_000_200,
            sent_at: Some(1_763_800_000_123),
        },
        device: Device::Desktop,
        filter: None,
        origin: 0,
    };
    for n in [20usize, 500] {
        let body = batch_json(n);
        let batch: WireBatch = serde_json::from_slice(body.as_bytes()).unwrap();
        assert_eq!(decode_batch(&batch.events, &ctx, &limits).events.len(), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("decode_validate_enrich_{n}"), |b| {
            b.iter(|| {
                let batch: WireBatch = serde_json::from_slice(body.as_bytes()).unwrap();
                black_box(decode_batch(&batch.events, &ctx, &limits))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, apply, decode);
criterion_main!(benches);
