//! Reading the files of deploy/ and the Dockerfile, and running the tools that check them
//! (installed by ./tests/run.sh; a missing tool is a failure, never a skip).

use serde_json::Value;
use std::process::Command;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs a tool in the repository root; returns its standard output and standard error, or
/// panics with both when it fails.
pub fn run(name: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(name)
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name} ({e}); ./tests/run.sh installs it"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{stdout}{stderr}"
    );
    (stdout, stderr)
}

/// Runs a tool; its standard output and error together.
pub fn tool(name: &str, args: &[&str]) -> String {
    let (stdout, stderr) = run(name, args);
    stdout + &stderr
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every YAML document of `text`, as JSON values.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The one YAML document of the file at `path` (from the repository root).
pub fn yaml(path: &str) -> Value {
    let mut docs = yaml_documents(&read(path));
    assert_eq!(docs.len(), 1, "{path} holds one document");
    docs.remove(0)
}

/// The Dockerfile's instructions as (keyword, rest) pairs, continuation lines joined.
pub fn dockerfile() -> Vec<(String, String)> {
    read("Dockerfile")
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, rest) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_ascii_uppercase(), rest.trim().to_string())
        })
        .collect()
}

/// The arguments of every Dockerfile instruction `keyword`.
pub fn instructions(keyword: &str) -> Vec<String> {
    dockerfile()
        .into_iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, v)| v)
        .collect()
}

/// The image's `TOUCHSTREAM_*` environment (its ENV lines).
pub fn image_environment() -> Vec<(String, String)> {
    instructions("ENV")
        .join(" ")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.starts_with("TOUCHSTREAM_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The image's user id (its last USER line).
pub fn image_user() -> u64 {
    instructions("USER")
        .last()
        .and_then(|u| u.parse().ok())
        .expect("the image runs as a numeric user")
}
