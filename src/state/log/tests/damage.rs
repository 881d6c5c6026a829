//! Recovery from damage, made by hand on closed logs: a torn or corrupt last frame is cut off
//! and the log goes on; damage in an earlier segment is reported and costs only its lsns; a
//! bogus length is never allocated; a stray file stops `open` with its path.

use super::*;
use crate::state::log::{Damage, FrameFault, LogError};
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

const FRAME: u64 = 116;

/// A closed log holding `record(1..=n)`.
async fn log_of(dir: &Path, n: Lsn, options: LogOptions) {
    let (log, _) = open(dir, options).unwrap();
    append(&log, 1..=n).await;
    log.close().await;
}

fn segment(dir: &Path, first: Lsn) -> PathBuf {
    dir.join("log").join(format!("{first:020}.seg"))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Overwrites the bytes at `offset` in `path`.
fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

/// Breaks record 10 of a 10-record log with `break_it`, then checks that recovery drops it
/// alone, reporting `fault` and `bytes`, and that record 10 can be written again and survives.
async fn last_record_is_dropped_then_rewritten(break_it: impl FnOnce(&Path), fault: FrameFault) {
    let dir = TempDir::new().unwrap();
    log_of(dir.path(), 10, LogOptions::default()).await;
    let path = segment(dir.path(), 1);
    let before = file_len(&path);
    break_it(&path);
    let bytes = file_len(&path) - 9 * FRAME;

    let (log, found) = open(dir.path(), LogOptions::default()).unwrap();
    let damage = Damage {
        path: path.clone(),
        offset: 9 * FRAME,
        bytes,
        fault,
        truncated: true,
    };
    assert_eq!(found.damage(), [damage]);
    assert_eq!((found.last_lsn(), file_len(&path)), (Some(9), 9 * FRAME));
    assert_eq!(read_after(&found, 0).len(), 9);
    let lsn = log.append(b"ten again".to_vec(), |_| {}).await.unwrap();
    assert_eq!((before, lsn), (10 * FRAME, 10));
    log.close().await;

    let (log, found) = open(dir.path(), LogOptions::default()).unwrap();
    assert!(found.damage().is_empty());
    let tail = [(9, record(9)), (10, b"ten again".to_vec())];
    assert_eq!(read_after(&found, 8), tail);
    log.close().await;
}

#[tokio::test]
async fn a_torn_last_frame_is_cut_off_and_the_log_goes_on() {
    let torn = |path: &Path| {
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(10 * FRAME - 5).unwrap();
    };
    last_record_is_dropped_then_rewritten(torn, FrameFault::Short).await;
}

#[tokio::test]
async fn a_flipped_byte_in_the_last_record_drops_it_alone() {
    let flip = |path: &Path| overwrite(path, 9 * FRAME + 16 + 50, b"X");
    last_record_is_dropped_then_rewritten(flip, FrameFault::Checksum).await;
}

#[tokio::test]
async fn damage_in_an_earlier_segment_costs_its_lsns_and_the_rest_is_read() {
    let dir = TempDir::new().unwrap();
    log_of(dir.path(), 30, small_segments()).await;
    assert_eq!(segment_files(dir.path()), [1, 10, 19, 28]);
    // Record 12 is the third in the segment starting at 10.
    let path = segment(dir.path(), 10);
    overwrite(&path, 2 * FRAME + 16 + 50, b"X");

    let (log, found) = open(dir.path(), small_segments()).unwrap();
    let damage = Damage {
        path: path.clone(),
        offset: 2 * FRAME,
        bytes: 7 * FRAME,
        fault: FrameFault::Checksum,
        truncated: false,
    };
    assert_eq!(found.damage(), [damage]);
    assert_eq!(found.gaps(), [12..=18]);
    assert_eq!(
        file_len(&path),
        9 * FRAME,
        "an earlier segment is left as it is"
    );
    let lsns: Vec<Lsn> = read_after(&found, 0).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lsns, (1..=11).chain(19..=30).collect::<Vec<_>>());
    assert_eq!(log.append(record(31), |_| {}).await.unwrap(), 31);
    log.close().await;
}

#[tokio::test]
async fn a_bogus_length_is_never_allocated() {
    let dir = TempDir::new().unwrap();
    log_of(dir.path(), 3, LogOptions::default()).await;
    let path = segment(dir.path(), 1);
    let mut header = u32::MAX.to_le_bytes().to_vec();
    header.resize(16 + 100, 7);
    overwrite(&path, 3 * FRAME, &header);

    // Recovery runs on this thread (a current-thread runtime), so its allocations are noted.
    reset_largest_allocation();
    let (log, found) = open(dir.path(), LogOptions::default()).unwrap();
    assert!(
        largest_allocation() < 4 << 20,
        "{} bytes",
        largest_allocation()
    );
    assert_eq!(found.damage()[0].fault, FrameFault::TooLong);
    assert_eq!(found.last_lsn(), Some(3));

    // A length broken after recovery is caught by the lazy reader too.
    overwrite(&path, FRAME, &header[..4]);
    reset_largest_allocation();
    let mut records = found.read_after(0);
    assert_eq!(records.next().unwrap().unwrap(), (1, record(1)));
    let err = records.next().unwrap().unwrap_err();
    assert!(
        largest_allocation() < 4 << 20,
        "{} bytes",
        largest_allocation()
    );
    let corrupt = LogError::Corrupt {
        path: path.clone(),
        offset: FRAME,
        fault: FrameFault::TooLong,
    };
    assert_eq!(err.to_string(), corrupt.to_string());
    assert!(records.next().is_none(), "an error ends the records");
    log.close().await;
}

#[tokio::test]
async fn a_stray_file_stops_open_with_its_path() {
    let dir = TempDir::new().unwrap();
    log_of(dir.path(), 1, LogOptions::default()).await;
    let stray = dir.path().join("log").join("notes.txt");
    std::fs::write(&stray, "hello").unwrap();
    let err = open(dir.path(), LogOptions::default()).err().unwrap();
    assert!(
        matches!(&err, LogError::BadName { path } if *path == stray),
        "{err}"
    );
    assert!(err.to_string().contains("notes.txt"), "{err}");
}
