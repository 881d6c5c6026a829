//! The writer thread, `touchstream-log`: the only code that writes or deletes segment files.
//!
//! It waits for one queued append, takes every other already queued (up to
//! `max_group_bytes`), frames them into one buffer, writes it with one `pwrite` at the current
//! segment's durable end and makes it durable with one `fdatasync`; then runs each `then` and
//! answers each append, in lsn order. `durable` and `next_lsn` move only after a good
//! fdatasync, so a failed group leaves no trace in them; the file is cut back to match.

use super::frame::{self, HEADER};
use super::recover::Recovery;
use super::writer::Shared;
use super::{LogError, LogOptions, Lsn};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::{mpsc, oneshot};

/// An append waiting for its group.
pub(super) struct Pending {
    pub record: Vec<u8>,
    pub then: Box<dyn FnOnce(Lsn) + Send>,
    pub reply: oneshot::Sender<Result<Lsn, LogError>>,
}

/// What the handles send the thread.
pub(super) enum Command {
    Append(Pending),
    /// Look at `remove_through` again.
    Wake,
    /// Stop after what was queued before; answer once the files are closed.
    Close(oneshot::Sender<()>),
}

/// A segment file on disk, oldest first; the last one is the current segment.
struct SegmentFile {
    first: Lsn,
    bytes: u64,
}

pub(super) struct Writer {
    log_dir: PathBuf,
    /// The log directory, locked, and what a new segment's creation fsyncs.
    dir: File,
    options: LogOptions,
    segments: VecDeque<SegmentFile>,
    /// The current segment; `None` when the next group must start a new one.
    file: Option<File>,
    /// The current segment's bytes known to be on disk.
    durable: u64,
    next_lsn: Lsn,
    shared: Arc<Shared>,
    buf: Vec<u8>,
}

/// Opens and locks `log_dir`, so that a second writer fails instead of interleaving frames.
pub(super) fn lock(log_dir: &Path) -> Result<File, LogError> {
    let dir = File::open(log_dir).map_err(LogError::io("open", log_dir))?;
    match dir.try_lock() {
        Ok(()) => Ok(dir),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Locked {
            path: log_dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(LogError::io("lock", log_dir)(e)),
    }
}

impl Writer {
    pub fn new(
        log_dir: PathBuf,
        dir: File,
        options: LogOptions,
        recovery: &Recovery,
        shared: Arc<Shared>,
    ) -> Result<Self, LogError> {
        let mut segments = VecDeque::new();
        for s in recovery.segments() {
            let meta = std::fs::metadata(&s.path).map_err(LogError::io("stat", &s.path))?;
            let bytes = meta.len();
            segments.push_back(SegmentFile {
                first: s.first,
                bytes,
            });
        }
        let (mut file, durable) = match recovery.segments().last() {
            Some(last) => {
                let open = OpenOptions::new().write(true).open(&last.path);
                (
                    Some(open.map_err(LogError::io("open", &last.path))?),
                    last.good_bytes,
                )
            }
            None => (None, 0),
        };
        let mut next_lsn = recovery.next_lsn();
        if options.start_after >= next_lsn {
            // The log ends before what a checkpoint covers: continue after the checkpoint, in
            // a segment of its own (the current one's lsns would no longer be dense).
            next_lsn = options.start_after + 1;
            file = None;
        }
        shared.last_lsn.store(next_lsn - 1, Relaxed);
        let writer = Self {
            log_dir,
            dir,
            options,
            segments,
            file,
            durable,
            next_lsn,
            shared,
            buf: Vec::new(),
        };
        writer.publish_segments();
        Ok(writer)
    }

    /// Serves groups until closed or every handle is dropped.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut held = None;
        let close = loop {
            let first = match held.take() {
                Some(pending) => Command::Append(pending),
                None => match rx.blocking_recv() {
                    Some(command) => command,
                    None => break None,
                },
            };
            let (group, close) = self.gather(first, &mut rx, &mut held);
            if !group.is_empty() {
                self.commit(group);
            }
            self.remove_covered();
            if close.is_some() {
                break close;
            }
        };
        drop(rx);
        drop(self);
        if let Some(reply) = close {
            _ = reply.send(());
        }
    }

    /// `first` and what is queued behind it, up to `max_group_bytes`; the append that would
    /// pass the limit is `held` for the next group. A `Close` ends the group.
    fn gather(
        &self,
        first: Command,
        rx: &mut mpsc::Receiver<Command>,
        held: &mut Option<Pending>,
    ) -> (Vec<Pending>, Option<oneshot::Sender<()>>) {
        let mut group = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                Command::Append(pending) => {
                    let size = HEADER + pending.record.len();
                    if !group.is_empty() && bytes + size > self.options.max_group_bytes {
                        *held = Some(pending);
                        break;
                    }
                    bytes += size;
                    group.push(pending);
                }
                Command::Wake => {}
                Command::Close(reply) => return (group, Some(reply)),
            }
            next = rx.try_recv().ok();
        }
        (group, None)
    }

    /// Makes `group` durable, then runs each `then` and answers each append, in order.
    fn commit(&mut self, group: Vec<Pending>) {
        let first = match self.write(&group) {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, records = group.len(), "log: group commit failed");
                self.shared.failed_groups.fetch_add(1, Relaxed);
                for pending in group {
                    _ = pending.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        for (lsn, pending) in (first..).zip(group) {
            let then = pending.then;
            if std::panic::catch_unwind(AssertUnwindSafe(|| then(lsn))).is_err() {
                tracing::error!(
                    lsn,
                    "log: an append's `then` panicked; the record is durable"
                );
            }
            _ = pending.reply.send(Ok(lsn));
        }
    }

    /// Writes and fdatasyncs `group` as the records from `next_lsn` on; returns its first lsn.
    fn write(&mut self, group: &[Pending]) -> Result<Lsn, LogError> {
        let file = match self.file.take() {
            Some(file) if self.durable < self.options.segment_bytes => file,
            _ => self.roll()?,
        };
        let first = self.next_lsn;
        self.buf.clear();
        for (lsn, pending) in (first..).zip(group) {
            frame::encode(&mut self.buf, lsn, &pending.record);
        }
        let path = frame::segment_path(&self.log_dir, self.current_first());
        if let Err(e) = file.write_all_at(&self.buf, self.durable) {
            self.cut_back(file);
            return Err(LogError::io("write", &path)(e));
        }
        if let Err(e) = file.sync_data() {
            // The kernel may have dropped the dirty pages it could not write: what the page
            // cache shows of this file is no longer what the disk holds. Leave it for good.
            _ = file.set_len(self.durable);
            self.file = self.roll().ok();
            return Err(LogError::io("fdatasync", &path)(e));
        }
        self.file = Some(file);
        self.durable += self.buf.len() as u64;
        self.next_lsn += group.len() as u64;
        self.note_group(group.len());
        Ok(first)
    }

    /// After a failed write: cuts the file back to its durable end, durably, or, failing
    /// that, moves on to a new segment so the bytes left behind are never read as records.
    fn cut_back(&mut self, file: File) {
        match file.set_len(self.durable).and_then(|()| file.sync_data()) {
            Ok(()) => self.file = Some(file),
            Err(e) => {
                tracing::warn!(error = %e, "log: cannot cut a failed write back; new segment");
                self.file = self.roll().ok();
            }
        }
    }

    /// Starts the segment `next_lsn`: creates it and fsyncs the directory. A current segment
    /// of that name holds no durable record (`next_lsn` would be past it), so it starts anew.
    fn roll(&mut self) -> Result<File, LogError> {
        let first = self.next_lsn;
        let path = frame::segment_path(&self.log_dir, first);
        let create = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path);
        let file = create.map_err(LogError::io("create", &path))?;
        if self.segments.back().is_none_or(|s| s.first != first) {
            self.segments.push_back(SegmentFile { first, bytes: 0 });
        }
        self.durable = 0;
        self.note_bytes();
        self.dir
            .sync_all()
            .map_err(LogError::io("fsync", &self.log_dir))?;
        Ok(file)
    }

    /// Deletes the segments that `remove_through` covers, oldest first, never the current.
    fn remove_covered(&mut self) {
        let through = self.shared.remove_through.load(Relaxed);
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[1].first - 1 <= through {
            let path = frame::segment_path(&self.log_dir, self.segments[0].first);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    let path = path.display();
                    tracing::warn!(%path, error = %e, "log: cannot remove a covered segment");
                    break;
                }
                _ => removed = self.segments.pop_front().is_some(),
            }
        }
        if removed {
            // Not needed for safety (a segment that comes back is read again), only so a crash
            // does not bring back what was removed.
            _ = self.dir.sync_all();
            self.publish_segments();
        }
    }

    fn current_first(&self) -> Lsn {
        self.segments.back().map_or(self.next_lsn, |s| s.first)
    }

    fn note_group(&mut self, records: usize) {
        let s = &self.shared;
        s.appends.fetch_add(records as u64, Relaxed);
        s.groups.fetch_add(1, Relaxed);
        s.bytes_written.fetch_add(self.buf.len() as u64, Relaxed);
        s.last_lsn.store(self.next_lsn - 1, Relaxed);
        self.note_bytes();
    }

    /// Records the current segment's size and republishes the totals.
    fn note_bytes(&mut self) {
        if let Some(current) = self.segments.back_mut() {
            current.bytes = self.durable;
        }
        self.publish_segments();
    }

    fn publish_segments(&self) {
        let bytes = self.segments.iter().map(|s| s.bytes).sum();
        self.shared
            .segments
            .store(self.segments.len() as u64, Relaxed);
        self.shared.disk_bytes.store(bytes, Relaxed);
    }
}
