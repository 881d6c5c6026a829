//! The touchstream binary as a child process: its log read line by line, killed if a test
//! fails before stopping it, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;

/// `touchstream` with a clean log filter.
pub fn touchstream() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_touchstream"));
    c.env_remove("RUST_LOG");
    c
}

/// Kills the process if the test fails before stopping it, so no process outlives the test.
pub struct KillOnDrop(pub Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads the child's stderr on a thread, line by line.
pub fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The value of `key=` in a log line.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 1;
    line[start..].split_whitespace().next().unwrap()
}

/// A running server: its log, and the address of its public listener.
pub struct Spawned {
    pub guard: KillOnDrop,
    pub log: mpsc::Receiver<String>,
    pub public: String,
}

/// Starts `command` (its stderr piped) and waits until its public listener is up.
pub fn spawn(command: &mut Command) -> Spawned {
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = lines(&mut child);
    let guard = KillOnDrop(Some(child));
    let serving = log
        .iter()
        .find(|l| l.contains("public listener up"))
        .expect("server started");
    let public = field(&serving, "addr").to_string();
    Spawned { guard, log, public }
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.guard.0.as_ref().unwrap().id()
    }
}

/// Sends SIGTERM and waits for the exit.
pub async fn terminate(mut child: Child) -> ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}
