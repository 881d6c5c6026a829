//! The fuzz targets' checks (fuzz/harness.rs) on every input kept in fuzz/regressions/: inputs
//! that once failed, and a minimized corpus of what the fuzzer found interesting. Runs on
//! stable with the ordinary tests; the fuzzing itself is `cargo fuzz` (see fuzz/README.md).

#[path = "../fuzz/harness.rs"]
#[allow(dead_code)]
mod harness;

use arbitrary::{Arbitrary, Unstructured};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/fuzz/regressions/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| {
            let path = e.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {dir}");
    out
}

#[test]
fn kept_request_bodies_decode_without_a_failure() {
    for (name, body) in inputs("decode") {
        let outcome = std::panic::catch_unwind(|| harness::decode(&body));
        assert!(outcome.is_ok(), "{name}");
    }
}

#[test]
fn kept_event_sequences_match_the_model() {
    for (name, bytes) in inputs("engine") {
        // As libfuzzer-sys builds a target's argument from its input.
        let steps = Vec::<harness::Step>::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        let outcome = std::panic::catch_unwind(|| harness::engine(&steps));
        assert!(outcome.is_ok(), "{name}");
    }
}
