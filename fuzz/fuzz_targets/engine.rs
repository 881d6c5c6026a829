//! See `engine` in ../harness.rs.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|steps: Vec<harness::Step>| harness::engine(&steps));
