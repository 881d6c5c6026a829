//! touchstream-load refuses bad input with a message and a non-zero exit, before sending.

use std::process::Command;

fn load(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_touchstream-load"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
