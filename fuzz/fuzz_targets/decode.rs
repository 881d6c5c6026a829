//! See `decode` in ../harness.rs.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|body: &[u8]| harness::decode(body));
