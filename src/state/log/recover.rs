//! Recovery: reads every segment in lsn order, keeps the good frames, and says what it could
//! not keep. The last segment is cut at its first bad frame, so the writer continues from the
//! last good record and a torn tail never stops a start. An earlier segment is never changed:
//! its damage is reported with the lsns it cost (a gap before the next segment). A segment is
//! read only up to the next segment's first lsn: frames past it are a failed commit's.

use super::frame::{FrameReader, Next, parse_name};
use super::{FrameFault, LogError, Lsn};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// A segment as recovery found it: its good records are `first..first + records`, in its
/// first `good_bytes` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    pub first: Lsn,
    pub records: u64,
    pub good_bytes: u64,
}

impl Segment {
    /// The lsn after its last good record.
    pub fn end(&self) -> Lsn {
        self.first + self.records
    }
}

/// Bytes recovery could not use: from `offset` in `path`, `bytes` long, dropped because of
/// `fault`. `truncated` if they were cut off the file (the last segment only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    pub fault: FrameFault,
    pub truncated: bool,
}

/// What [`super::open`] found: the segments with their good records, the damage, and the
/// lsns missing between segments.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    segments: Vec<Segment>,
    damage: Vec<Damage>,
    gaps: Vec<RangeInclusive<Lsn>>,
}

impl Recovery {
    /// The segments in lsn order, each with its good records.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Every stretch of bytes dropped; empty for a log closed cleanly.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The lsns lost to damage in a segment before the last.
    pub fn gaps(&self) -> &[RangeInclusive<Lsn>] {
        &self.gaps
    }

    /// The first record present, if any.
    pub fn first_lsn(&self) -> Option<Lsn> {
        self.segments
            .iter()
            .find(|s| s.records > 0)
            .map(|s| s.first)
    }

    /// The last record present, if any.
    pub fn last_lsn(&self) -> Option<Lsn> {
        let last = self.segments.iter().rev().find(|s| s.records > 0)?;
        Some(last.end() - 1)
    }

    /// The lsn the writer appends next.
    pub(super) fn next_lsn(&self) -> Lsn {
        self.segments.last().map_or(1, Segment::end)
    }

    /// The records with an lsn over `lsn`, in order, read lazily from the segments as recovery
    /// found them (appends made since are not included). A segment removed meanwhile, or a
    /// frame changed on disk since, ends the iteration with its error.
    pub fn read_after(&self, lsn: Lsn) -> Records {
        let segments: Vec<Segment> = self
            .segments
            .iter()
            .filter(|s| s.end() > lsn.saturating_add(1))
            .cloned()
            .collect();
        Records {
            segments: segments.into_iter(),
            current: None,
            after: lsn,
            done: false,
        }
    }
}

/// Reads `log_dir`'s segments, cutting the last one's bad tail.
pub(super) fn recover(log_dir: &Path) -> Result<Recovery, LogError> {
    let names = list(log_dir)?;
    let mut found = Recovery::default();
    for (i, (first, path)) in names.iter().enumerate() {
        let next_first = names.get(i + 1).map_or(Lsn::MAX, |(next, _)| *next);
        let (segment, damage) = scan(path, *first, next_first)?;
        if let Some(mut damage) = damage {
            if i + 1 == names.len() {
                truncate(path, segment.good_bytes)?;
                damage.truncated = true;
            }
            found.damage.push(damage);
        }
        if let Some(prev) = found.segments.last()
            && prev.end() < *first
        {
            found.gaps.push(prev.end()..=first - 1);
        }
        found.segments.push(segment);
    }
    Ok(found)
}

/// The segments in `log_dir`, by first lsn.
fn list(log_dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, LogError> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(log_dir).map_err(LogError::io("list", log_dir))?;
    for entry in entries {
        let path = entry.map_err(LogError::io("list", log_dir))?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_name);
        match first {
            Some(first) => names.push((first, path)),
            None => return Err(LogError::BadName { path }),
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Reads one segment's good records, stopping at the first bad frame or at `next_first`.
fn scan(path: &Path, first: Lsn, next_first: Lsn) -> Result<(Segment, Option<Damage>), LogError> {
    let mut reader = FrameReader::open(path, None)?;
    let mut lsn = first;
    let fault = loop {
        let next = if lsn < next_first || reader.offset == reader.limit() {
            reader.next(lsn, true)?
        } else {
            Next::Fault(FrameFault::Superseded)
        };
        match next {
            Next::Record => lsn += 1,
            Next::End => break None,
            Next::Fault(fault) => break Some(fault),
        }
    };
    let segment = Segment {
        path: path.to_path_buf(),
        first,
        records: lsn - first,
        good_bytes: reader.offset,
    };
    let damage = fault.map(|fault| Damage {
        path: path.to_path_buf(),
        offset: reader.offset,
        bytes: reader.limit() - reader.offset,
        fault,
        truncated: false,
    });
    if let Some(d) = &damage {
        let path = d.path.display();
        tracing::warn!(%path, d.offset, d.bytes, fault = %d.fault, "log: bad frame, tail dropped");
    }
    Ok((segment, damage))
}

/// Cuts `path` to `len` bytes, durably.
fn truncate(path: &Path, len: u64) -> Result<(), LogError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(LogError::io("open", path))?;
    file.set_len(len).map_err(LogError::io("truncate", path))?;
    file.sync_all().map_err(LogError::io("fsync", path))
}

/// The records after an lsn: see [`Recovery::read_after`].
pub struct Records {
    segments: std::vec::IntoIter<Segment>,
    current: Option<(Segment, FrameReader, Lsn)>,
    after: Lsn,
    done: bool,
}

impl Iterator for Records {
    type Item = Result<(Lsn, Vec<u8>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl Records {
    fn step(&mut self) -> Option<Result<(Lsn, Vec<u8>), LogError>> {
        loop {
            let Some((segment, reader, lsn)) = &mut self.current else {
                let segment = self.segments.next()?;
                match FrameReader::open(&segment.path, Some(segment.good_bytes)) {
                    Ok(reader) => self.current = Some((segment.clone(), reader, segment.first)),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            };
            if *lsn == segment.end() {
                self.current = None;
                continue;
            }
            let keep = *lsn > self.after;
            match reader.next(*lsn, keep) {
                Ok(Next::Record) => *lsn += 1,
                Ok(Next::End) => return Some(Err(corrupt(segment, reader, FrameFault::Short))),
                Ok(Next::Fault(fault)) => return Some(Err(corrupt(segment, reader, fault))),
                Err(e) => return Some(Err(e)),
            }
            if keep {
                return Some(Ok((*lsn - 1, std::mem::take(&mut reader.payload))));
            }
        }
    }
}

fn corrupt(segment: &Segment, reader: &FrameReader, fault: FrameFault) -> LogError {
    LogError::Corrupt {
        path: segment.path.clone(),
        offset: reader.offset,
        fault,
    }
}
