//! The log's tests, on real files in a temporary directory: appends and their order, group
//! commit, segments (`mod.rs`); recovery from damage (`damage.rs`); a real write error
//! (`write_error.rs`).

mod damage;
mod write_error;

use super::{LogOptions, LogWriter, Lsn, Recovery, open};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// A 100-byte record (116 framed) naming its lsn.
fn record(lsn: Lsn) -> Vec<u8> {
    format!("{lsn:0>100}").into_bytes()
}

/// Segments that roll after 9 such records (9 * 116 = 1044 >= 1000; 8 * 116 = 928).
fn small_segments() -> LogOptions {
    LogOptions {
        segment_bytes: 1000,
        ..LogOptions::default()
    }
}

/// Every record after `lsn`, failing the test on an error.
fn read_after(found: &Recovery, lsn: Lsn) -> Vec<(Lsn, Vec<u8>)> {
    found.read_after(lsn).collect::<Result<_, _>>().unwrap()
}

/// Appends `record(lsn)` for `lsns` one by one, checking each gets its lsn.
async fn append(log: &LogWriter, lsns: std::ops::RangeInclusive<Lsn>) {
    for lsn in lsns {
        assert_eq!(log.append(record(lsn), |_| {}).await.unwrap(), lsn);
    }
}

/// The first lsns of the segment files in `dir`'s log, in order.
fn segment_files(dir: &Path) -> Vec<Lsn> {
    let mut firsts: Vec<Lsn> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| {
            e.unwrap().file_name().to_str().unwrap()[..20]
                .parse()
                .unwrap()
        })
        .collect();
    firsts.sort_unstable();
    firsts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_dense_lsns_run_then_in_order_and_read_back() {
    let dir = TempDir::new().unwrap();
    let (log, found) = open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!((found.first_lsn(), found.last_lsn()), (None, None));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64 {
        let (log, order) = (log.clone(), order.clone());
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for i in 0..50 {
                let body = format!("{task}/{i}").into_bytes();
                let ran = order.clone();
                let then = move |lsn| ran.lock().unwrap().push(lsn);
                let lsn = log.append(body.clone(), then).await.unwrap();
                let last_run = *order.lock().unwrap().last().unwrap();
                assert!(last_run >= lsn, "`then` ran before the append resolved");
                mine.push((lsn, body));
            }
            mine
        });
    }
    let mut written = BTreeMap::new();
    while let Some(mine) = tasks.join_next().await {
        let mine = mine.unwrap();
        assert!(
            mine.windows(2).all(|w| w[0].0 < w[1].0),
            "a task's lsns rise"
        );
        written.extend(mine);
    }
    let n = 64 * 50;
    let all: Vec<Lsn> = (1..=n).collect();
    assert_eq!(written.keys().copied().collect::<Vec<_>>(), all, "dense");
    assert_eq!(
        *order.lock().unwrap(),
        all,
        "`then` ran once each, in lsn order"
    );
    let stats = log.stats();
    assert_eq!((stats.appends, stats.last_lsn, stats.in_flight), (n, n, 0));
    assert_eq!((stats.segments, stats.disk_bytes), (1, stats.bytes_written));
    log.close().await;

    let (log, found) = open(dir.path(), LogOptions::default()).unwrap();
    assert!(found.damage().is_empty() && found.gaps().is_empty());
    assert_eq!(
        read_after(&found, 0),
        written.into_iter().collect::<Vec<_>>()
    );
    assert_eq!(log.append(b"next".to_vec(), |_| {}).await.unwrap(), n + 1);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_appends_share_one_fdatasync_up_to_max_group_bytes() {
    let dir = TempDir::new().unwrap();
    let options = LogOptions {
        max_group_bytes: 1000,
        ..LogOptions::default()
    };
    let (log, _) = open(dir.path(), options).unwrap();
    // The first append's `then` holds the writer thread until 63 more are queued behind it.
    let (started, writer_held) = oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let hold = move |_| {
        _ = started.send(());
        _ = released.recv();
    };
    let spawn = |then: Box<dyn FnOnce(Lsn) + Send>| {
        let log = log.clone();
        tokio::spawn(async move { log.append(record(0), then).await.unwrap() })
    };
    let first = spawn(Box::new(hold));
    writer_held.await.unwrap();
    let rest: Vec<_> = (0..63).map(|_| spawn(Box::new(|_| {}))).collect();
    while log.stats().in_flight < 64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap(), 1);
    for task in rest {
        task.await.unwrap();
    }
    // 63 frames of 116 bytes, at most 8 (928 bytes) to a 1000-byte group: 8 groups.
    let stats = log.stats();
    assert_eq!((stats.appends, stats.groups), (64, 1 + 8));
    log.close().await;
}

#[tokio::test]
async fn segments_roll_and_remove_through_deletes_only_covered_ones() {
    let dir = TempDir::new().unwrap();
    let (log, _) = open(dir.path(), small_segments()).unwrap();
    append(&log, 1..=100).await;
    let firsts: Vec<Lsn> = (0..12).map(|k| 1 + 9 * k).collect();
    assert_eq!(segment_files(dir.path()), firsts);
    assert_eq!(log.stats().segments, 12);
    assert_eq!(log.stats().disk_bytes, 100 * 116);
    log.remove_through(50);
    log.close().await;
    // The segment 46..=54 holds records after 50, so it stays.
    assert_eq!(segment_files(dir.path()), [46, 55, 64, 73, 82, 91, 100]);

    let (log, found) = open(dir.path(), small_segments()).unwrap();
    assert_eq!((found.first_lsn(), found.last_lsn()), (Some(46), Some(100)));
    assert!(found.damage().is_empty() && found.gaps().is_empty());
    let expected: Vec<_> = (51..=100).map(|lsn| (lsn, record(lsn))).collect();
    assert_eq!(read_after(&found, 50), expected);
    assert_eq!(log.stats().segments, 7);
    append(&log, 101..=101).await;
    log.remove_through(Lsn::MAX);
    log.close().await;
    assert_eq!(
        segment_files(dir.path()),
        [100],
        "the current segment stays"
    );

    let (log, found) = open(dir.path(), small_segments()).unwrap();
    assert_eq!(
        read_after(&found, 0),
        [(100, record(100)), (101, record(101))]
    );
    assert_eq!((log.stats().segments, log.stats().disk_bytes), (1, 2 * 116));
    log.close().await;
}

#[tokio::test]
async fn a_second_writer_is_refused_until_the_first_closes() {
    let dir = TempDir::new().unwrap();
    let (log, _) = open(dir.path(), LogOptions::default()).unwrap();
    let second = open(dir.path(), LogOptions::default());
    assert!(matches!(second, Err(super::LogError::Locked { .. })));
    log.close().await;
    let (log, _) = open(dir.path(), LogOptions::default()).unwrap();
    log.close().await;
}

#[tokio::test]
async fn an_oversized_record_is_refused_and_uses_no_lsn() {
    let dir = TempDir::new().unwrap();
    let (log, _) = open(dir.path(), LogOptions::default()).unwrap();
    let big = vec![0; super::MAX_RECORD + 1];
    let err = log
        .append(big, |_| panic!("not appended"))
        .await
        .unwrap_err();
    assert!(matches!(err, super::LogError::TooLarge { .. }), "{err}");
    assert_eq!(log.append(record(1), |_| {}).await.unwrap(), 1);
    log.close().await;
}

/// The largest allocation made on this thread since [`reset_largest_allocation`]: how a test
/// shows that a bogus frame length was never allocated.
fn largest_allocation() -> usize {
    LARGEST.with(Cell::get)
}

fn reset_largest_allocation() {
    LARGEST.with(|l| l.set(0));
}

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest size asked for on each thread.
struct Tracking;

fn note(size: usize) {
    _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is passed unchanged to `System`; `note` only touches a const-initialised
// thread local (no allocation, and `try_with` copes with thread teardown).
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static TRACKING: Tracking = Tracking;
