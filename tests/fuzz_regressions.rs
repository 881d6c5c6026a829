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

#[test]
fn kept_sessions_stay_within_their_limit_and_match_the_model() {
    for (name, bytes) in inputs("session") {
        let ops = Vec::<harness::Op>::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        let outcome = std::panic::catch_unwind(|| harness::session(&ops));
        assert!(outcome.is_ok(), "{name}");
    }
}

#[test]
fn random_event_sequences_match_the_model() {
    // A short, seeded campaign on stable, so the engine check runs on varied input in every
    // test run, not only on the kept inputs (the real campaigns: fuzz/README.md).
    let mut rng = fastrand::Rng::with_seed(0x70c5_7ea4);
    let mut total = 0;
    for _ in 0..300 {
        let bytes: Vec<u8> = (0..rng.usize(0..2048)).map(|_| rng.u8(..)).collect();
        let mut u = Unstructured::new(&bytes);
        let mut steps = Vec::new();
        while !u.is_empty() {
            steps.push(harness::Step::arbitrary(&mut u).unwrap());
        }
        total += steps.len();
        harness::engine(&steps);
    }
    assert!(
        total > 10_000,
        "only {total} events: the inputs are too small to test much"
    );
}
