//! Memory per open session at a million open sessions, measured with a counting allocator
//! (bytes requested from the allocator) and, for comparison, resident memory from /proc.
//! Each session holds one event, so its id set holds one id. Then memory per id remembered
//! for the dedup horizon: the same number of ids in closed sessions of 1 and of 10 events.
//!
//! `cargo bench --bench session_memory` (env SESSIONS to change the count; JOURNEYS=n runs the
//! site with n journeys, copies of the default map, to measure what each further one costs)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use touchstream::config::Config;
use touchstream::engine::Engine;
use touchstream::event::Event;
use touchstream::metrics::Metrics;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let n: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut config = Config::default();
    let journeys: usize = std::env::var("JOURNEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if journeys > 1 {
        config.journeys = (0..journeys)
            .map(|i| touchstream::config::JourneyConfig {
                name: format!("j{i}"),
                ..Default::default()
            })
            .collect();
        println!("journeys on the site:          {journeys}");
    }
    let metrics = Arc::new(Metrics::new(&config));
    let engine = Engine::new(&config, metrics);
    let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    for s in 0..n {
        let (session, id) = (format!("session-{s:016x}"), format!("{s:032x}"));
        let e = Event::new("demo", session, id, "view_item", 1_763_800_000_000);
        engine.apply(&e);
    }
    let heap = (LIVE.load(Ordering::Relaxed) - heap0) as f64 / n as f64;
    let rss = (rss_bytes().saturating_sub(rss0)) as f64 / n as f64;
    // One id in a ThinVec: a 16-byte header plus the 8-byte hash.
    let ids = 24.0;
    println!("open sessions:                 {}", engine.open_sessions());
    println!(
        "heap bytes per session:        {heap:.1} (of which id set {ids:.0}; beyond ids {:.1})",
        heap - ids
    );
    println!("resident bytes per session:    {rss:.1}");
    drop(engine);
    for per_session in [1, 10] {
        remembered(&config, n, per_session);
    }
}

/// Bytes per remembered id: `n` ids in sessions of `per_session` events, all closed, against
/// the same sessions released (forgotten: the store's own table keeps its room either way).
fn remembered(config: &Config, n: usize, per_session: usize) {
    let run = |remember: bool| {
        let metrics = Arc::new(Metrics::new(config));
        let engine = Engine::new(config, metrics.clone());
        let t = 1_763_800_000_000;
        let heap0 = LIVE.load(Ordering::Relaxed);
        for i in 0..n {
            let (s, id) = (i / per_session, format!("{i:032x}"));
            let e = Event::new("demo", format!("session-{s:016x}"), id, "view_item", t);
            engine.apply(&e);
        }
        if remember {
            engine.sweep(t + 3_600_000);
            assert_eq!(metrics.engine.remembered_ids.get(), n as i64);
        } else {
            engine.release();
        }
        let held = LIVE.load(Ordering::Relaxed) - heap0;
        drop(engine);
        held
    };
    let heap = (run(true) - run(false)) as f64 / n as f64;
    println!("heap bytes per remembered id:  {heap:.1} (closed sessions of {per_session} events)");
}
