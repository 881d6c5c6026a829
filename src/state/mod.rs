//! The state directory of an embedded `serve` (`state.dir`): what it keeps on disk so that a
//! batch it has accepted survives a crash. The directory is held by one process at a time
//! ([`StateDir`]); it holds `log/`, the write-ahead [`log`], whose appends resolve only once
//! they are on disk. The engine's checkpoints live beside it, each naming the last lsn it
//! covers, so a start loads the checkpoint and replays the log after it.
//!
//! This module uses nothing else from the crate: it is the lowest layer, so any other can own it.

pub mod checkpoint;
mod dir;
pub mod log;

pub use checkpoint::{Checkpoint, CheckpointError, Unreadable};
pub use dir::{DirError, StateDir};
pub use log::{
    Damage, FrameFault, LogError, LogOptions, LogStats, LogWriter, Lsn, Records, Recovery, Segment,
    open,
};
