//! The store's bounds: a session's event limit, the new-session rate under pressure, and an
//! eviction that forgets floods first and counts no drop-off.

use super::*;
use crate::config::EngineConfig;

fn with_engine(change: impl FnOnce(&mut EngineConfig)) -> Fixture {
    let mut config = Config::default();
    change(&mut config.engine);
    let metrics = Arc::new(Metrics::new(&config));
    Fixture {
        engine: Engine::new(&config, metrics.clone()),
        metrics,
        config,
    }
}

#[test]
fn a_full_store_forgets_single_event_sessions_first_and_counts_no_dropoff() {
    let f = with_engine(|e| e.max_open_sessions = 200);
    // Real shoppers with carts, idle the longest...
    for i in 0..10 {
        f.apply(&format!("shopper{i}"), "1", "page_view", i);
        f.apply_value(&format!("shopper{i}"), "2", "add_to_cart", 5.0, None, None);
    }
    // ...then a flood of single-event sessions fills the store.
    for i in 0..190 {
        f.apply(&format!("flood{i}"), "1", "page_view", 100 + i);
    }
    f.apply("newest", "1", "page_view", 1_000);
    assert_eq!(f.metrics.engine.evicted.get(), 2);
    assert_eq!(f.metrics.engine.carts_evicted.get(), 0);
    assert_eq!(f.engine.open_sessions(), 199);
    assert_eq!(f.dropoffs(), [0, 0, 0, 0]);
    assert_eq!(f.metrics.funnel.carts_open(0).get(), 10);
    // Evicted carts are not abandoned ones.
    let f = with_engine(|e| e.max_open_sessions = 100);
    for i in 0..101 {
        f.apply(&format!("s{i}"), "1", "page_view", i);
        f.apply_value(&format!("s{i}"), "2", "add_to_cart", 5.0, None, None);
    }
    assert_eq!(f.metrics.engine.carts_evicted.get(), 1);
    assert_eq!(f.report().carts_abandoned, 0);
}

#[test]
fn a_session_takes_at_most_its_event_limit() {
    let f = with_engine(|e| e.max_session_events = 1_000);
    for i in 0..1_000 {
        let mut e = f.ev("s", &format!("e{i}"), "purchase", i);
        e.order_id = Some(format!("o{i}"));
        e.value = Some(1.0);
        assert_eq!(f.engine.apply(&e), Outcome::Applied);
    }
    assert_eq!(f.report().orders, 1_000);
    assert_eq!(
        f.apply("s", "e1000", "purchase", 1_000),
        Outcome::Filtered(FilterReason::SessionLimit)
    );
    assert_eq!(
        f.apply("s", "e5", "purchase", 1_000),
        Outcome::Filtered(FilterReason::Duplicate)
    );
    assert_eq!(f.report().orders, 1_000);
    let filtered = |r| f.metrics.ingest.filtered(0, r).get();
    assert_eq!(filtered(FilterReason::SessionLimit), 1);
    assert_eq!(filtered(FilterReason::Duplicate), 1);
    // Other sessions are untouched by the limit.
    assert_eq!(f.apply("t", "e1", "page_view", 0), Outcome::Applied);
}

#[test]
fn under_pressure_a_client_opens_sessions_at_its_rate_only() {
    let f = with_engine(|e| {
        e.max_open_sessions = 100;
        e.client_sessions_per_second = 1;
        e.client_burst_sessions = 5;
    });
    let from = |session: &str, id: &str, origin: u64| {
        let mut e = f.ev(session, id, "page_view", 0);
        e.origin = origin;
        f.engine.apply(&e)
    };
    // Below half full, no limit.
    for i in 0..50 {
        assert_eq!(from(&format!("a{i}"), "1", 7), Outcome::Applied);
    }
    // Over half full: five more from that client, then refused; its open sessions go on,
    // other clients and exempt senders (origin 0) are not affected.
    let opened = (0..20)
        .filter(|i| from(&format!("b{i}"), "1", 7) == Outcome::Applied)
        .count();
    assert_eq!(
        opened,
        5 + 1,
        "the burst, and the first new session at half full"
    );
    assert_eq!(from("a1", "2", 7), Outcome::Applied);
    assert_eq!(from("c", "1", 8), Outcome::Applied);
    assert_eq!(from("d", "1", 0), Outcome::Applied);
    assert_eq!(
        f.metrics
            .ingest
            .filtered(0, FilterReason::SessionRate)
            .get(),
        14
    );
}

#[test]
fn past_the_stored_ids_bound_only_small_sessions_grow() {
    let f = with_engine(|e| e.max_stored_ids = 1_000);
    let grow = |session: &str, t: i64| {
        (0..5_000)
            .take_while(|i| f.apply(session, &format!("e{i}"), "page_view", t) == Outcome::Applied)
            .count()
    };
    // One exempt session takes the 64 ids any session may hold, then the pool's room (its
    // hash table's, a power of two's 7/8 at most 1,000).
    let taken = grow("big", 0);
    assert!((500..1_000).contains(&taken), "{taken}");
    assert_eq!(
        f.apply("big", "one more", "page_view", 0),
        Outcome::Filtered(FilterReason::SessionMemory)
    );
    assert!(f.metrics.engine.stored_ids.get() >= 1_000);
    // A shopper's visit still takes its events.
    for i in 0..10 {
        assert_eq!(
            f.apply("small", &format!("e{i}"), "page_view", i),
            Outcome::Applied
        );
    }
    // Once the big session closes, its room is given back.
    f.engine.sweep(200 * MIN);
    assert_eq!(f.metrics.engine.stored_ids.get(), 0);
    assert_eq!(grow("again", 300 * MIN), taken);
}

#[test]
fn a_flood_of_two_event_sessions_is_forgotten_before_real_carts() {
    let f = with_engine(|e| e.max_open_sessions = 100);
    for i in 0..10 {
        f.apply(&format!("shopper{i}"), "1", "page_view", i);
        f.apply_value(&format!("shopper{i}"), "2", "add_to_cart", 5.0, None, None);
    }
    for i in 0..91 {
        f.apply(&format!("flood{i}"), "1", "page_view", 100 + i);
        f.apply(&format!("flood{i}"), "2", "view_item", 100 + i);
    }
    assert_eq!(f.metrics.engine.evicted.get(), 1);
    assert_eq!(f.metrics.engine.carts_evicted.get(), 0);
    assert_eq!(f.metrics.funnel.carts_open(0).get(), 10);
}

#[test]
fn a_rebuild_is_held_to_no_rate() {
    let f = with_engine(|e| {
        e.max_open_sessions = 10;
        e.client_sessions_per_second = 1;
        e.client_burst_sessions = 1;
    });
    let from = |session: &str| {
        let mut e = f.ev(session, "1", "page_view", 0);
        e.origin = 7;
        e
    };
    for i in 0..8 {
        assert_eq!(
            f.engine.apply_into(&from(&format!("s{i}")), &Silent),
            Outcome::Applied
        );
    }
    assert_eq!(f.engine.open_sessions(), 8);
}
