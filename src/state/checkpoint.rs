//! Checkpoint files: `<dir>/checkpoints/<lsn, 20 digits>.ckpt`, each the engine's state as it
//! stood once every log record up to that lsn was applied. What the bytes mean is the
//! engine's business; here they are written so that a crash at any moment leaves either the
//! previous checkpoint or the new one whole, never a mix:
//!
//! - a file is written as `<name>.tmp`, fdatasync'ed, renamed into place, and the directory
//!   fsync'ed; only then is the older one removed (the newest two are kept, so a checkpoint
//!   that turns out unreadable has a predecessor whose log is still there);
//! - a file is `[magic "TSCKPT01"][crc32c of the payload: u32 LE][payload length: u64 LE]
//!   [payload]`; a file whose length or checksum does not match is skipped with a warning
//!   (the one before it is tried), never a crash loop. Stray `.tmp` files of a crash are
//!   removed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"TSCKPT01";
const HEADER: usize = 8 + 4 + 8;
/// Checkpoints kept: the newest, and the one before it.
const KEEP: usize = 2;

/// A checkpoint read back: the lsn it covers and its payload.
#[derive(Debug)]
pub struct Checkpoint {
    pub lsn: u64,
    pub payload: Vec<u8>,
    pub path: PathBuf,
}

/// A checkpoint file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

/// Why checkpoints could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint: {op} {}: {source}", path.display())]
pub struct CheckpointError {
    op: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl CheckpointError {
    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

fn checkpoints_dir(dir: &Path) -> PathBuf {
    dir.join("checkpoints")
}

/// Writes the checkpoint covering `lsn` and removes all but the newest two. Durable when
/// it returns `Ok`.
pub fn write(dir: &Path, lsn: u64, payload: &[u8]) -> Result<PathBuf, CheckpointError> {
    let cdir = checkpoints_dir(dir);
    if !cdir.is_dir() {
        fs::create_dir_all(&cdir).map_err(CheckpointError::io("create", &cdir))?;
        sync_dir(dir)?;
    }
    // Checkpoints only move forward: one at or behind the newest would be removed as older,
    // and would let the log its successor needs be removed.
    if let Some((newest, _)) = list(&cdir)?.last()
        && *newest >= lsn
        && lsn > 0
    {
        return Err(CheckpointError {
            op: "write",
            path: cdir.join(format!("{lsn:020}.ckpt")),
            source: io::Error::other(format!("the newest checkpoint already covers {newest}")),
        });
    }
    let path = cdir.join(format!("{lsn:020}.ckpt"));
    let tmp = path.with_extension("ckpt.tmp");
    let mut file = File::create(&tmp).map_err(CheckpointError::io("create", &tmp))?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let written = file
        .write_all(&header)
        .and_then(|()| file.write_all(payload))
        .and_then(|()| file.sync_data());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(&tmp);
        return Err(CheckpointError::io("write", &tmp)(e));
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(CheckpointError::io("rename", &tmp))?;
    sync_dir(&cdir)?;
    for (_, old) in list(&cdir)?.into_iter().rev().skip(KEEP) {
        fs::remove_file(&old).map_err(CheckpointError::io("remove", &old))?;
    }
    Ok(path)
}

/// The newest readable checkpoint, if any, and the files skipped on the way (newer ones that
/// are damaged). Leftover `.tmp` files are removed.
pub fn latest(dir: &Path) -> Result<(Option<Checkpoint>, Vec<Unreadable>), CheckpointError> {
    latest_before(dir, u64::MAX)
}

/// [`latest`] among the checkpoints older than `lsn` (the caller could not use the one at
/// `lsn`).
pub fn latest_before(
    dir: &Path,
    lsn: u64,
) -> Result<(Option<Checkpoint>, Vec<Unreadable>), CheckpointError> {
    let cdir = checkpoints_dir(dir);
    if !cdir.is_dir() {
        return Ok((None, Vec::new()));
    }
    let mut skipped = Vec::new();
    let older = list(&cdir)?.into_iter().filter(|(l, _)| *l < lsn);
    for (lsn, path) in older.rev() {
        match read(&path) {
            Ok(payload) => {
                let found = Checkpoint { lsn, payload, path };
                return Ok((Some(found), skipped));
            }
            Err(reason) => skipped.push(Unreadable { path, reason }),
        }
    }
    Ok((None, skipped))
}

/// The checkpoint files by lsn, oldest first; `.tmp` files are removed, others left alone.
fn list(cdir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(cdir).map_err(CheckpointError::io("list", cdir))? {
        let path = entry.map_err(CheckpointError::io("list", cdir))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(&path);
        } else if let Some(lsn) = name.strip_suffix(".ckpt").and_then(|n| n.parse().ok()) {
            found.push((lsn, path));
        }
    }
    found.sort();
    Ok(found)
}

/// A checkpoint file's payload, or what is wrong with it.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut header = [0u8; HEADER];
    file.read_exact(&mut header)
        .map_err(|_| format!("{size} bytes: shorter than its header"))?;
    if &header[..8] != MAGIC {
        return Err("not a touchstream checkpoint (wrong magic)".into());
    }
    let crc = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    if len != size - HEADER as u64 {
        return Err(format!("says {len} bytes, holds {}", size - HEADER as u64));
    }
    let mut payload = Vec::with_capacity(len as usize);
    file.read_to_end(&mut payload).map_err(|e| e.to_string())?;
    if crc32c::crc32c(&payload) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(payload)
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(CheckpointError::io("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_whole_checkpoint_is_read_and_two_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(latest(tmp.path()).unwrap().0.is_none());
        for lsn in [5, 10, 15] {
            write(tmp.path(), lsn, format!("state at {lsn}").as_bytes()).unwrap();
        }
        let (found, skipped) = latest(tmp.path()).unwrap();
        let found = found.unwrap();
        assert_eq!(
            (found.lsn, found.payload.as_slice()),
            (15, &b"state at 15"[..])
        );
        assert!(skipped.is_empty());
        let names: Vec<u64> = list(&checkpoints_dir(tmp.path()))
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(names, [10, 15]);
    }

    #[test]
    fn a_damaged_newest_checkpoint_falls_back_to_the_one_before() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), 10, b"good").unwrap();
        let newest = write(tmp.path(), 20, b"newer state").unwrap();
        // A flipped byte, then a torn file: both are skipped with their reason.
        let mut bytes = fs::read(&newest).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&newest, &bytes).unwrap();
        let (found, skipped) = latest(tmp.path()).unwrap();
        assert_eq!(found.unwrap().lsn, 10);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].reason, "checksum mismatch");
        fs::write(&newest, &bytes[..bytes.len() - 3]).unwrap();
        let (found, skipped) = latest(tmp.path()).unwrap();
        assert_eq!(found.unwrap().lsn, 10);
        assert!(
            skipped[0].reason.starts_with("says 11 bytes, holds 8"),
            "{:?}",
            skipped
        );
        // A stray temporary file of a crash mid-write is removed, not read.
        let stray = checkpoints_dir(tmp.path()).join("00000000000000000030.ckpt.tmp");
        fs::write(&stray, b"half").unwrap();
        assert_eq!(latest(tmp.path()).unwrap().0.unwrap().lsn, 10);
        assert!(!stray.exists());
    }
}
