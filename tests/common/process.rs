//! The touchstream binary as a child process: its log read line by line, killed if a test
//! fails before stopping it, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// `touchstream` with a clean log filter and a state directory of its own, under cargo's
/// temporary directory for tests (a test that restarts a server on the same state sets
/// `TOUCHSTREAM_STATE_DIR` itself).
pub fn touchstream() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_touchstream"));
    c.env_remove("RUST_LOG");
    c.env("TOUCHSTREAM_STATE_DIR", own_state_dir());
    c
}

/// Where `touchstream()` puts the state directories it makes.
fn own_state_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("touchstream-state")
}

/// A new directory name, `<test process id>-<n>`. The first call removes what test processes
/// no longer running left behind, so the directories of one run are kept until the next.
fn own_state_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    if n == 0 {
        for entry in std::fs::read_dir(own_state_root())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().unwrap_or_default();
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    own_state_root().join(format!("{}-{n}", std::process::id()))
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
    let (guard, log, mut up) = start(command, &["public"]);
    Spawned {
        guard,
        log,
        public: up.remove(0),
    }
}

/// Starts `command` (its stderr piped) and waits, 30 s at most, until each listener named in
/// `listeners` (`public`, `admin`) logs that it is up. Returns the process, its log from then
/// on, and the listeners' addresses in the order named.
pub fn start(
    command: &mut Command,
    listeners: &[&str],
) -> (KillOnDrop, mpsc::Receiver<String>, Vec<String>) {
    let (guard, log, up, _) = start_logged(command, listeners);
    (guard, log, up)
}

/// [`start`], also returning the log lines printed until the listeners were up.
pub fn start_logged(
    command: &mut Command,
    listeners: &[&str],
) -> (KillOnDrop, mpsc::Receiver<String>, Vec<String>, Vec<String>) {
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = lines(&mut child);
    let guard = KillOnDrop(Some(child));
    let mut up: Vec<Option<String>> = vec![None; listeners.len()];
    let mut seen = Vec::new();
    while up.iter().any(Option::is_none) {
        let line = log
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("listeners {listeners:?} not up ({e}): {seen:#?}"));
        for (name, addr) in listeners.iter().zip(&mut up) {
            if line.contains(&format!("{name} listener up")) {
                *addr = Some(field(&line, "addr").to_string());
            }
        }
        seen.push(line);
    }
    (guard, log, up.into_iter().flatten().collect(), seen)
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.guard.0.as_ref().unwrap().id()
    }
}

/// Sends SIGTERM and waits for the exit.
pub async fn terminate(child: Child) -> ExitStatus {
    signal(child, "-TERM").await
}

/// Sends `signal` (`-TERM`, `-KILL`, ...) and waits for the exit.
pub async fn signal(mut child: Child, signal: &str) -> ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(sent.success());
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}
