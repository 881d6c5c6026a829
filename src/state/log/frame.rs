//! Frames and segment names. A frame is `[len: u32][crc32c: u32][lsn: u64][payload]`, little
//! endian, the checksum over the lsn bytes and then the payload. [`FrameReader`] reads them
//! back and says why it stopped; it never trusts `len` before checking it against
//! [`MAX_RECORD`] and the bytes left, so a corrupt header cannot make it allocate gigabytes.

use super::{LogError, Lsn, MAX_RECORD};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// The bytes before a frame's payload.
pub(super) const HEADER: usize = 16;

/// Why a frame was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFault {
    /// The segment ends inside the frame: a write torn by a crash.
    Short,
    /// The length is over [`MAX_RECORD`].
    TooLong,
    /// The checksum does not match the lsn and payload.
    Checksum,
    /// The frame's lsn is not the next one.
    OutOfOrder,
    /// The frame's lsn reaches the next segment's first: a group whose commit failed.
    Superseded,
}

impl std::fmt::Display for FrameFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Short => "frame cut short (torn write)",
            Self::TooLong => "length over the record limit",
            Self::Checksum => "checksum mismatch",
            Self::OutOfOrder => "lsn out of order",
            Self::Superseded => "lsn taken by the next segment (a failed commit)",
        })
    }
}

/// Appends the frame of record `lsn` to `buf`.
pub(super) fn encode(buf: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    let lsn = lsn.to_le_bytes();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c_append(crc32c::crc32c(&lsn), payload).to_le_bytes());
    buf.extend_from_slice(&lsn);
    buf.extend_from_slice(payload);
}

/// The path of the segment whose first record is `first`.
pub(super) fn segment_path(log_dir: &Path, first: Lsn) -> PathBuf {
    log_dir.join(format!("{first:020}.seg"))
}

/// The first lsn a segment's file name gives, if it is a segment's name.
pub(super) fn parse_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&lsn| lsn > 0)
}

/// What [`FrameReader::next`] found.
pub(super) enum Next {
    /// A good frame; its payload is in [`FrameReader::payload`] if it was kept.
    Record,
    /// The limit was reached exactly, between frames.
    End,
    /// A bad frame at [`FrameReader::offset`].
    Fault(FrameFault),
}

/// Reads the frames of one segment, never past `limit` bytes.
pub(super) struct FrameReader {
    file: BufReader<File>,
    path: PathBuf,
    /// Where the next frame starts.
    pub offset: u64,
    limit: u64,
    /// The payload of the last record read with `keep`.
    pub payload: Vec<u8>,
}

impl FrameReader {
    /// Opens `path` to read its first `limit` bytes (all of it for `None`).
    pub fn open(path: &Path, limit: Option<u64>) -> Result<Self, LogError> {
        let file = File::open(path).map_err(LogError::io("open", path))?;
        let limit = match limit {
            Some(limit) => limit,
            None => file.metadata().map_err(LogError::io("stat", path))?.len(),
        };
        Ok(Self {
            file: BufReader::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            offset: 0,
            limit,
            payload: Vec::new(),
        })
    }

    /// The bytes it reads up to.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Reads the frame at `offset`, which must be record `expected`. Its payload is read and
    /// checked only if `keep` (replay skips the records a checkpoint covers without reading
    /// them). The offset moves past a good frame only; after a fault the reader is done.
    pub fn next(&mut self, expected: Lsn, keep: bool) -> Result<Next, LogError> {
        let left = self.limit - self.offset;
        if left == 0 {
            return Ok(Next::End);
        }
        let mut header = [0u8; HEADER];
        if left < HEADER as u64 || !self.fill(&mut header)? {
            return Ok(Next::Fault(FrameFault::Short));
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3, lsn @ ..] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        if len > MAX_RECORD {
            return Ok(Next::Fault(FrameFault::TooLong));
        }
        if len as u64 > left - HEADER as u64 {
            return Ok(Next::Fault(FrameFault::Short));
        }
        if keep {
            self.payload.clear();
            self.payload.resize(len, 0);
            let mut payload = std::mem::take(&mut self.payload);
            let full = self.fill(&mut payload)?;
            self.payload = payload;
            if !full {
                return Ok(Next::Fault(FrameFault::Short));
            }
            if crc32c::crc32c_append(crc32c::crc32c(&lsn), &self.payload) != crc {
                return Ok(Next::Fault(FrameFault::Checksum));
            }
        } else {
            self.skip(len as i64)?;
        }
        if lsn != expected.to_le_bytes() {
            return Ok(Next::Fault(FrameFault::OutOfOrder));
        }
        self.offset += (HEADER + len) as u64;
        Ok(Next::Record)
    }

    fn skip(&mut self, len: i64) -> Result<(), LogError> {
        self.file
            .seek_relative(len)
            .map_err(LogError::io("seek", &self.path))
    }

    /// Fills `buf`; false if the file ended first (it shrank since its length was taken).
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, LogError> {
        match self.file.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(LogError::io("read", &self.path)(e)),
        }
    }
}
