//! The durable state of `serve`, in its state directory (`state.dir`): held by one process at
//! a time ([`StateDir`]).

mod dir;

pub use dir::{DirError, StateDir};
