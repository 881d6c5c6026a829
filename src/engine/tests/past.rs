//! The closed sessions remembered for the dedup horizon: forgotten a horizon after they closed,
//! the oldest first when the ids fill `engine.max_remembered_ids` (each engine sharing the
//! bounds its share), the gauges following, and a restore in the middle of it going on as the
//! original would.

use super::*;

const HOUR: i64 = 60 * MIN;
const T0: i64 = 1_763_800_000_000;

fn engine(config: &Config, bounds: Arc<Bounds>) -> (Engine, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new(config));
    (
        Engine::with_bounds(config, metrics.clone(), bounds),
        metrics,
    )
}

fn config(horizon: i64, max_ids: usize) -> Config {
    let mut c = Config::default();
    c.engine.dedup_horizon = std::time::Duration::from_millis(horizon as u64);
    c.engine.max_remembered_ids = max_ids;
    c
}

fn view(session: &str, id: &str, t: i64) -> Event {
    Event::new("demo", session, id, "page_view", t)
}

#[test]
fn a_closed_session_is_forgotten_once_the_horizon_has_passed_since_it_closed() {
    let c = config(HOUR, 1_000);
    let (e, m) = engine(&c, Arc::new(Bounds::new(&c.engine)));
    e.apply(&view("s", "1", T0));
    e.sweep(T0 + 30 * MIN);
    assert_eq!(m.engine.remembered_ids.get(), 1);
    assert_eq!(m.engine.dedup_horizon.get(), 3_600);
    // Just inside the horizon: a retry is a duplicate (the clock's tick forgets nothing yet).
    e.sweep(T0 + 30 * MIN + HOUR - 1);
    let retry = Event {
        received_at_ms: T0 + 30 * MIN + HOUR - 1,
        ..view("s", "1", T0)
    };
    assert_eq!(e.apply(&retry), Outcome::Filtered(FilterReason::Duplicate));
    // A horizon after it closed, it is forgotten: the same id is a new visit, and the gauge of
    // ids held goes down; the effective horizon stays the configured one.
    e.sweep(T0 + 30 * MIN + HOUR);
    assert_eq!(m.engine.remembered_ids.get(), 0);
    assert_eq!(e.apply(&view("s", "1", T0 + 2 * HOUR)), Outcome::Applied);
    assert_eq!(m.engine.dedup_horizon.get(), 3_600);
}

#[test]
fn a_full_memory_forgets_the_sessions_closed_longest_ago_and_says_so() {
    let c = config(24 * HOUR, 100);
    let (e, m) = engine(&c, Arc::new(Bounds::new(&c.engine)));
    // 30 sessions of 5 events, closed a minute apart: 150 ids for room for 100.
    for s in 0..30 {
        let t = T0 + s * MIN;
        for i in 0..5 {
            e.apply(&view(&format!("s{s}"), &i.to_string(), t));
        }
        e.sweep(t + 30 * MIN);
    }
    let held = m.engine.remembered_ids.get();
    assert!((90..=100).contains(&held), "{held}");
    // The effective horizon: since the newest forgotten session closed, under a day, and
    // growing with the clock while nothing more is forgotten.
    let now = T0 + 29 * MIN + 30 * MIN;
    let horizon = m.engine.dedup_horizon.get();
    assert!(horizon > 0 && horizon <= 30 * 60, "{horizon}");
    e.sweep(now + HOUR);
    assert_eq!(m.engine.dedup_horizon.get(), horizon + 3_600);
    // The oldest are forgotten (a retry counts again), the newest remembered.
    assert_eq!(e.apply(&view("s0", "0", T0)), Outcome::Applied);
    assert_eq!(
        e.apply(&view("s29", "0", T0 + 29 * MIN)),
        Outcome::Filtered(FilterReason::Duplicate)
    );
}

#[test]
fn engines_sharing_the_bounds_each_forget_their_share() {
    let c = config(24 * HOUR, 100);
    let bounds = Arc::new(Bounds::new(&c.engine));
    let (a, _) = engine(&c, bounds.clone());
    let (b, _) = engine(&c, bounds.clone());
    for (n, e) in [&a, &b].into_iter().enumerate() {
        for i in 0..60 {
            e.apply(&view(&format!("{n}-{i}"), "1", T0 + i * 1_000));
        }
    }
    // 120 ids for room for 100: at each tick each engine forgets its share of what is over,
    // its oldest first.
    for tick in 0..3 {
        a.sweep(T0 + HOUR + tick * 1_000);
        b.sweep(T0 + HOUR + tick * 1_000);
    }
    assert!(
        bounds.remembered_ids() <= 100,
        "{}",
        bounds.remembered_ids()
    );
    let left = |e: &Engine, n| {
        (0..60)
            .filter(|i| e.apply(&view(&format!("{n}-{i}"), "1", T0)) != Outcome::Applied)
            .count()
    };
    let (in_a, in_b) = (left(&a, 0), left(&b, 1));
    assert!(
        (45..=55).contains(&in_a) && (45..=55).contains(&in_b),
        "{in_a} {in_b}"
    );
}

#[test]
fn a_restore_between_a_close_and_its_late_events_goes_on_as_the_original() {
    let c = config(24 * HOUR, 1_000);
    let (first, _) = engine(&c, Arc::new(Bounds::new(&c.engine)));
    let cart = |id: &str, t| Event {
        value: Some(10.0),
        ..Event::new("demo", "s", id, "add_to_cart", t)
    };
    first.apply(&cart("1", T0));
    first.sweep(T0 + 30 * MIN);
    // The shopper comes back 40 minutes in: a new session, with a closed one behind it.
    first.apply(&view("s", "2", T0 + 40 * MIN));
    let state = first.snapshot();
    first.release();
    let metrics = Arc::new(Metrics::new(&c));
    let bounds = Arc::new(Bounds::new(&c.engine));
    let (e, _) = Engine::restore(&c, metrics.clone(), bounds, &state).unwrap();
    // A retry of the first session's cart: a duplicate. A purchase sent from its offline queue
    // (timed 10 minutes in, a timeout before the open session began): late, counted once.
    assert_eq!(
        e.apply(&cart("1", T0)),
        Outcome::Filtered(FilterReason::Duplicate)
    );
    let buy = Event {
        value: Some(10.0),
        order_id: Some("o".into()),
        ..Event::new("demo", "s", "3", "purchase", T0 + 10 * MIN)
    };
    assert_eq!(e.apply(&buy), Outcome::Late);
    e.close_all();
    let r = Report::new(&c, &metrics).sites.remove(0).1;
    assert_eq!((r.orders, r.late, r.duplicates), (1, 1, 1));
    assert_eq!(metrics.engine.open_sessions.get(), 0);
}

#[test]
fn late_events_stop_at_the_sessions_event_limit() {
    let mut c = config(24 * HOUR, 1_000);
    c.engine.max_session_events = 3;
    let (e, m) = engine(&c, Arc::new(Bounds::new(&c.engine)));
    e.apply(&view("s", "1", T0));
    e.apply(&view("s", "2", T0));
    e.sweep(T0 + 30 * MIN);
    assert_eq!(e.apply(&view("s", "3", T0 + MIN)), Outcome::Late);
    let over = e.apply(&view("s", "4", T0 + MIN));
    assert_eq!(over, Outcome::Filtered(FilterReason::SessionLimit));
    // Not remembered: the ids held are the session's three.
    assert_eq!(m.engine.remembered_ids.get(), 3);
}

#[test]
fn a_session_id_keeps_at_most_its_share_of_closed_sessions() {
    let c = config(24 * HOUR, 1_000_000);
    let (e, m) = engine(&c, Arc::new(Bounds::new(&c.engine)));
    // One session id whose times step a timeout forward at each event: each closes the one
    // before. Only the last few closed sessions of it are kept.
    let n = super::super::past::PER_SESSION_ID as i64 + 10;
    for i in 0..n {
        e.apply(&view("s", &i.to_string(), T0 + i * 30 * MIN));
    }
    assert_eq!(
        m.engine.remembered_ids.get(),
        super::super::past::PER_SESSION_ID as i64
    );
    // The oldest were forgotten, and the effective horizon says so.
    assert_eq!(e.apply(&view("s", "0", T0)), Outcome::Applied);
    e.sweep(T0 + n * 30 * MIN);
    assert!(m.engine.dedup_horizon.get() < 24 * 3_600);
}

#[test]
fn three_engines_over_the_bound_each_forget_the_same_share() {
    let c = config(24 * HOUR, 300);
    let bounds = Arc::new(Bounds::new(&c.engine));
    let engines: Vec<_> = (0..3).map(|_| engine(&c, bounds.clone()).0).collect();
    for (n, e) in engines.iter().enumerate() {
        for i in 0..101 {
            e.apply(&view(&format!("{n}-{i}"), "1", T0 + i * 1_000));
        }
        e.sweep(T0 + HOUR);
    }
    // 303 ids for room for 300: the round the third engine started is taken by all three at
    // their next tick, each forgetting the same fraction (to 297 in all).
    engines.iter().for_each(|e| _ = e.sweep(T0 + HOUR + 1_000));
    let held = bounds.remembered_ids();
    assert!((294..=300).contains(&held), "{held}");
    for (n, e) in engines.iter().enumerate() {
        let kept = (0..101)
            .filter(|i| e.apply(&view(&format!("{n}-{i}"), "1", T0)) != Outcome::Applied)
            .count();
        assert!((97..=100).contains(&kept), "engine {n} kept {kept}");
    }
}
