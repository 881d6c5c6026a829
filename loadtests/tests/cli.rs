//! touchstream-load refuses bad input with a message and a non-zero exit, before sending, and
//! exits non-zero from a run it could not verify unless told not to verify.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_touchstream-load"))
        .args(args)
        .output()
        .unwrap()
}

fn load(args: &[&str]) -> (i32, String) {
    let out = run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A stand-in server whose `/metrics` is empty and which refuses every batch (403, as for a
/// wrong origin); its base URL.
fn refusing() -> String {
    touchstream_load::stand_in::serve(|request, _| {
        if request.contains("/metrics") {
            200
        } else {
            403
        }
    })
}

#[test]
fn bad_arguments_exit_non_zero_with_a_reason() {
    for (args, reason) in [
        (
            &["shoppers", "--duration", "1s", "--steps", "0.5,1.5,0.5,0.5"][..],
            "--steps must be between 0 and 1, not 1.5",
        ),
        (
            &["shoppers", "--duration", "1s", "--views", "0.5"],
            "--views must be at least 1",
        ),
        (
            &["shoppers", "--duration", "1s", "--concurrency", "0"],
            "--concurrency and --batch must be at least 1",
        ),
        (&["shoppers"], "--duration"),
        (
            &["replay", "/nonexistent.csv"],
            "cannot read /nonexistent.csv",
        ),
        (
            &["replay", "Cargo.toml", "--speedup", "0"],
            "--speedup must be above 0",
        ),
        (
            &["--server-pid", "4294967295", "shoppers", "--duration", "1s"],
            "process 4294967295 is not running",
        ),
    ] {
        let (code, stderr) = load(args);
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreachable_server_is_an_error_not_a_result() {
    // Port 9 (discard) on loopback has no listener here: the baseline scrape fails.
    let (code, stderr) = load(&[
        "--metrics",
        "http://127.0.0.1:9/metrics",
        "shoppers",
        "--sessions",
        "1",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("touchstream-load: "), "{stderr}");
}

#[test]
fn a_run_with_nothing_acknowledged_is_not_verified_and_fails() {
    // Every batch refused: the ground truth is all zeros, as is the empty /metrics. Equal, but
    // nothing was checked.
    let url = refusing();
    let metrics = format!("{url}/metrics");
    let args = [
        "--url",
        &url,
        "--metrics",
        &metrics,
        "--probe-interval",
        "0s",
        "--settle",
        "0s",
        "--concurrency",
        "1",
        "shoppers",
        "--sessions",
        "3",
    ];
    let out = run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("figures: not verified\n"), "{stdout}");
    assert!(stdout.contains("no event was acknowledged"), "{stdout}");
    // Asked not to verify, the run did what was asked; the report still says it was not.
    let out = run(&[&["--no-verify"][..], &args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("figures: not verified\n"), "{stdout}");
    assert!(stdout.contains("--no-verify"), "{stdout}");
}

#[test]
fn every_attack_is_listed_and_an_unreachable_server_is_an_error() {
    let out = run(&["attack", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "session-flood",
        "idle-connections",
        "connection-share",
        "chunked-bodies",
        "money",
        "forged-address",
        "session-flood-new",
        "pii",
    ] {
        assert!(help.contains(name), "{name} missing from: {help}");
    }
    // Port 9 (discard) on loopback has no listener: the first scrape fails, exit 2.
    let (code, stderr) = load(&[
        "attack",
        "money",
        "--url",
        "http://127.0.0.1:9",
        "--metrics",
        "http://127.0.0.1:9/metrics",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("touchstream-load: "), "{stderr}");
}
