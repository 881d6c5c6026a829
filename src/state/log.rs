//! A durable, segmented write-ahead log with group commit.
//!
//! On disk: `<dir>/log/<first lsn, 20 digits>.seg`. A segment holds the records from its first
//! lsn on, densely, each as a frame `[len: u32][crc32c: u32][lsn: u64][payload]` (little
//! endian). The checksum covers the lsn bytes and the payload, so a torn, stale or moved frame
//! fails it; `len` is checked against [`MAX_RECORD`] and the bytes left before it is used, so a
//! corrupt length never allocates more than the file holds.
//!
//! What holds:
//! - An append resolves `Ok(lsn)` only once its frame and every frame before it are written and
//!   fdatasync'ed. Lsns are 1-based and dense: a failed append does not use one up.
//! - One thread, `touchstream-log`, owns the files. It takes every queued append (up to
//!   [`LogOptions::max_group_bytes`]), writes the group with one `write` and one `fdatasync`,
//!   then runs each append's `then` in log order. That is the group commit: while one
//!   fdatasync runs, the next group queues.
//! - A failed write or fdatasync fails every append of its group and leaves the log as if they
//!   were never made: the segment is cut back to its last durable byte. After a failed
//!   fdatasync the page cache of that segment can no longer be trusted, so the writer moves to
//!   a new segment named by the failed group's first lsn; recovery drops any frame in a segment
//!   whose lsn reaches the next segment's first lsn, so a failed group cannot come back.
//! - Recovery never refuses a torn tail (no crash loop): the last segment is cut at its first
//!   bad frame. Damage in an earlier segment is reported, with the lsns it cost, and the later
//!   segments are read. Only what cannot be read at all (an I/O error, a file that is not a
//!   segment) stops [`open`], with an error naming the path.
//! - The directory is locked (`flock`) while a writer runs, so two writers never share it.

mod error;
mod frame;
mod recover;
mod thread;
mod writer;

#[cfg(test)]
mod tests;

pub use error::LogError;
pub use frame::FrameFault;
pub use recover::{Damage, Records, Recovery, Segment};
pub use writer::{LogStats, LogWriter};

use std::path::Path;

/// The sequence number of a record: 1-based, dense, increasing in log order.
pub type Lsn = u64;

/// The largest payload a record may have (64 MiB); [`LogWriter::append`] refuses larger ones.
pub const MAX_RECORD: usize = 64 << 20;

/// How the log is written.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A group starting in a segment of at least this many bytes goes to a new segment
    /// (64 MiB). Whole segments are what [`LogWriter::remove_through`] deletes.
    pub segment_bytes: u64,
    /// The most bytes one group commit writes (8 MiB); a single larger record is a group alone.
    pub max_group_bytes: usize,
    /// Appends queued for the writer before [`LogWriter::append`] waits for room (65,536).
    pub max_queued: usize,
    /// The lsn a checkpoint already covers (0: none). Appends get lsns after it even when the
    /// log ends before it (its end was lost or removed): they then start a new segment, so no
    /// new record ever takes an lsn the checkpoint claims.
    pub start_after: Lsn,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            max_group_bytes: 8 << 20,
            max_queued: 65_536,
            start_after: 0,
        }
    }
}

/// Opens (creating) the log in `dir/log` and recovers it: validates every segment, cuts a torn
/// or corrupt tail off the last one, and returns the writer and what recovery found. The
/// writer continues after the last record found.
pub fn open(dir: &Path, options: LogOptions) -> Result<(LogWriter, Recovery), LogError> {
    let log_dir = dir.join("log");
    create_dir(dir, &log_dir)?;
    let lock = thread::lock(&log_dir)?;
    let recovery = recover::recover(&log_dir)?;
    let writer = writer::start(log_dir, lock, options, &recovery)?;
    Ok((writer, recovery))
}

/// Creates `log_dir` in `dir` if it is missing, and fsyncs `dir` so that the new entry, and so
/// every record written under it, survives a crash (`dir`'s own entry is the caller's).
fn create_dir(dir: &Path, log_dir: &Path) -> Result<(), LogError> {
    if log_dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(log_dir).map_err(LogError::io("create", log_dir))?;
    let dir_file = std::fs::File::open(dir).map_err(LogError::io("open", dir))?;
    dir_file.sync_all().map_err(LogError::io("fsync", dir))
}
