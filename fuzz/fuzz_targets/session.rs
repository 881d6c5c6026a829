//! See `session` in ../harness.rs.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|ops: Vec<harness::Op>| harness::session(&ops));
