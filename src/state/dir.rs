//! The state directory: created on first use and held by one process at a time, through an
//! exclusive lock (`flock`) on its `LOCK` file that the kernel releases when the process ends,
//! however it ends. Two processes writing one log would interleave their records and each
//! replay the other's batches, so the second one is refused and told how to fix it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A state directory this process holds.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    /// Held open for the lock; closing it releases the directory.
    _lock: File,
}

/// Why a state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot use the state directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the state directory {path} is held by another touchstream process{holder}; give each \
         process its own directory with state.dir or TOUCHSTREAM_STATE_DIR"
    )]
    Held { path: String, holder: String },
}

impl StateDir {
    /// Creates `path` if missing and locks it, or says who holds it.
    pub fn open(path: &Path) -> Result<Self, DirError> {
        let shown = path.display().to_string();
        let io = |source| DirError::Io {
            path: shown.clone(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join("LOCK"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DirError::Held {
                    path: shown.clone(),
                    holder: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the message a second process prints.
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        write!(lock, "{}", std::process::id()).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nested").join("state");
        let held = StateDir::open(&path).unwrap();
        let err = StateDir::open(&path).unwrap_err().to_string();
        let pid = std::process::id().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(&format!("pid {pid}")), "{err}");
        assert!(err.contains("TOUCHSTREAM_STATE_DIR"), "{err}");
        drop(held);
        StateDir::open(&path).unwrap();
    }

    #[test]
    fn a_file_in_the_way_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("taken");
        std::fs::write(&path, "not a directory").unwrap();
        let err = StateDir::open(&path).unwrap_err().to_string();
        assert!(err.starts_with("cannot use the state directory"), "{err}");
        assert!(err.contains("taken"), "{err}");
    }
}
