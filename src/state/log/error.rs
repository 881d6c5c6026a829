//! The log's one error type. Every I/O failure names the operation and the path, and keeps the
//! OS error, so an operator reading it knows which file and why; [`LogError::is_no_space`]
//! tells the server to answer 503 (the client retries) rather than 500.

use super::{FrameFault, MAX_RECORD};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the log could not do what was asked. `Clone` because one failed group commit fails
/// every append in it with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("log: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: Arc<io::Error>,
    },
    /// A file in the log directory is not a segment; it is left alone and the log not opened.
    #[error("log: {} is not a segment (expected <20-digit first lsn>.seg)", path.display())]
    BadName { path: PathBuf },
    /// Another writer holds the log directory.
    #[error("log: {} is locked by another writer", path.display())]
    Locked { path: PathBuf },
    /// A record that recovery had read is no longer readable.
    #[error("log: record at byte {offset} of {}: {fault}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        fault: FrameFault,
    },
    /// The record is over [`MAX_RECORD`]; nothing was appended.
    #[error("log: a record of {len} bytes is over the {MAX_RECORD}-byte limit")]
    TooLarge { len: usize },
    /// The writer has stopped ([`super::LogWriter::close`], or its thread is gone).
    #[error("log: the writer has stopped")]
    Closed,
}

impl LogError {
    /// Maps an I/O error of `op` on `path`.
    pub(super) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |e| Self::Io {
            op,
            path: path.to_path_buf(),
            source: Arc::new(e),
        }
    }

    /// Whether the disk (or the process's file size limit) is full: ENOSPC, EDQUOT or EFBIG.
    /// Such a failure is the server's to report as 503: a retry may succeed once room is made.
    pub fn is_no_space(&self) -> bool {
        use io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
        matches!(self, Self::Io { source, .. }
            if matches!(source.kind(), StorageFull | QuotaExceeded | FileTooLarge))
    }
}
