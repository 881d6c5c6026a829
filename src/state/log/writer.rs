//! The handle to the log: [`LogWriter`], cheap to clone, shared by every task that appends.
//! It only queues; the thread in `thread.rs` owns the files. An append is answered through a
//! oneshot once its group commit is durable (or failed), so awaiting it never blocks a tokio
//! worker on the disk.

use super::recover::Recovery;
use super::thread::{Command, Pending, Writer};
use super::{LogError, LogOptions, Lsn, MAX_RECORD};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::sync::{mpsc, oneshot};

/// Appends records to the log; see [`super`] for what holds. The writer thread stops once
/// [`LogWriter::close`] is called or the last clone is dropped, after the appends queued before.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// The counters the writer thread keeps and the handles read.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub appends: AtomicU64,
    pub groups: AtomicU64,
    pub failed_groups: AtomicU64,
    pub bytes_written: AtomicU64,
    pub segments: AtomicU64,
    pub disk_bytes: AtomicU64,
    pub last_lsn: AtomicU64,
    pub in_flight: AtomicU64,
    /// The highest lsn [`LogWriter::remove_through`] was given.
    pub remove_through: AtomicU64,
}

/// The writer's counters at one moment, for the caller's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records made durable.
    pub appends: u64,
    /// Group commits made durable: one write and one fdatasync each.
    pub groups: u64,
    /// Group commits that failed; every append in them got the error.
    pub failed_groups: u64,
    /// Frame bytes made durable.
    pub bytes_written: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Bytes in those files.
    pub disk_bytes: u64,
    /// The last durable lsn (0 if none).
    pub last_lsn: Lsn,
    /// Appends not yet answered: queued or being written.
    pub in_flight: u64,
}

/// Starts the writer thread after what `recovery` found.
pub(super) fn start(
    log_dir: PathBuf,
    lock: File,
    options: LogOptions,
    recovery: &Recovery,
) -> Result<LogWriter, LogError> {
    let (tx, rx) = mpsc::channel(options.max_queued.max(1));
    let shared = Arc::new(Shared::default());
    let writer = Writer::new(log_dir.clone(), lock, options, recovery, shared.clone())?;
    std::thread::Builder::new()
        .name("touchstream-log".into())
        .spawn(move || writer.run(rx))
        .map_err(LogError::io("start the writer thread for", &log_dir))?;
    Ok(LogWriter { tx, shared })
}

impl LogWriter {
    /// Appends `record`. Once it and every record before it are durable (written and
    /// fdatasync'ed), runs `then(lsn)` on the writer thread, in log order, and then resolves
    /// to `Ok(lsn)`. On a write or fdatasync error (disk full, EIO) resolves to that error,
    /// never runs `then`, and the log is as if the record had not been appended; a later
    /// append tries again. Dropping the future does not withdraw a record already queued.
    pub async fn append(
        &self,
        record: Vec<u8>,
        then: impl FnOnce(Lsn) + Send + 'static,
    ) -> Result<Lsn, LogError> {
        if record.len() > MAX_RECORD {
            return Err(LogError::TooLarge { len: record.len() });
        }
        let _in_flight = InFlight::new(&self.shared.in_flight);
        let (reply, answer) = oneshot::channel();
        let then = Box::new(then);
        let pending = Pending {
            record,
            then,
            reply,
        };
        let sent = self.tx.send(Command::Append(pending)).await;
        sent.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// Deletes every segment whose records all have an lsn up to `lsn` (a checkpoint covers
    /// them). The writer thread does it between groups; the current segment is never deleted.
    pub fn remove_through(&self, lsn: Lsn) {
        self.shared.remove_through.fetch_max(lsn, Relaxed);
        // A full queue means the writer is busy and will look before it next waits.
        _ = self.tx.try_send(Command::Wake);
    }

    /// Stops the writer once the appends queued before are answered, and returns when its
    /// files are closed and the directory unlocked. Other clones get [`LogError::Closed`].
    pub async fn close(self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Command::Close(reply)).await.is_ok() {
            _ = done.await;
        }
    }

    /// The writer's counters (atomic loads only).
    pub fn stats(&self) -> LogStats {
        let s = &self.shared;
        LogStats {
            appends: s.appends.load(Relaxed),
            groups: s.groups.load(Relaxed),
            failed_groups: s.failed_groups.load(Relaxed),
            bytes_written: s.bytes_written.load(Relaxed),
            segments: s.segments.load(Relaxed),
            disk_bytes: s.disk_bytes.load(Relaxed),
            last_lsn: s.last_lsn.load(Relaxed),
            in_flight: s.in_flight.load(Relaxed),
        }
    }
}

/// Counts an append from its call until it is answered or its future dropped.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicU64) -> Self {
        count.fetch_add(1, Relaxed);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
