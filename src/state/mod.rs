//! The state directory: what an embedded `serve` keeps on disk so that a batch it has accepted
//! survives a crash. For now it holds one thing, `log/`: the write-ahead [`log`], whose appends
//! resolve only once they are on disk. Later the engine's checkpoints live beside it, each
//! naming the last lsn it covers, so a start loads the checkpoint and replays the log after it.
//!
//! This module uses nothing else from the crate: it is the lowest layer, so any other can own it.

pub mod log;

pub use log::{
    Damage, FrameFault, LogError, LogOptions, LogStats, LogWriter, Lsn, Records, Recovery, Segment,
    open,
};
