//! A real write error: this test runs itself again in a child process whose file size limit
//! (`ulimit -f`) the log's segment reaches, with SIGXFSZ ignored (an ignored signal stays
//! ignored across `exec`), so the write past the limit fails with EFBIG. The child checks the
//! failed append; the parent reopens the log without the limit and checks what is on disk.

use super::*;
use std::process::Command;
use std::sync::atomic::AtomicBool;

/// Set in the child: the log directory to use.
const CHILD: &str = "TOUCHSTREAM_LOG_TEST_FSIZE_DIR";

#[test]
fn a_failed_write_fails_its_group_and_leaves_no_trace() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return child(Path::new(&dir));
    }
    let dir = TempDir::new().unwrap();
    let module = module_path!().split_once("::").unwrap().1;
    let test = format!("{module}::a_failed_write_fails_its_group_and_leaves_no_trace");
    let out = Command::new("sh")
        .args(["-c", r#"trap '' XFSZ; ulimit -f 16 && exec "$@""#, "sh"])
        .arg(std::env::current_exe().unwrap())
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed: {report}");
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test: {report}"
    );

    let (_log, found) = open(dir.path(), LogOptions::default()).unwrap();
    assert!(found.damage().is_empty(), "{:?}", found.damage());
    let records = read_after(&found, 0);
    let lsns: Vec<Lsn> = records.iter().map(|(lsn, _)| *lsn).collect();
    assert_eq!(lsns, [1, 2]);
    assert!(records[0].1.iter().all(|&b| b == 1));
    assert_eq!(
        records[1].1, [3; 50],
        "the failed record is not there; the next one is"
    );
}

/// The soft file size limit of this process, from `/proc/self/limits`.
fn file_size_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max file size"));
    let soft = line.unwrap().split_whitespace().nth(3).unwrap();
    soft.parse()
        .unwrap_or_else(|_| panic!("no file size limit: {soft}"))
}

fn child(dir: &Path) {
    let limit = file_size_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (log, _) = open(dir, LogOptions::default()).unwrap();
        // Record 1 leaves 100 bytes below the limit; record 2's 216 bytes cross it.
        let first = vec![1; (limit - 100 - 16) as usize];
        assert_eq!(log.append(first, |_| {}).await.unwrap(), 1);
        let ran = Arc::new(AtomicBool::new(false));
        let then = {
            let ran = ran.clone();
            move |_| ran.store(true, Relaxed)
        };
        let err = log.append(vec![2; 200], then).await.unwrap_err();
        assert!(err.is_no_space(), "{err}");
        let segment = dir.join("log").join(format!("{:020}.seg", 1));
        let said = err.to_string();
        assert!(said.starts_with("log: write ") && said.contains(&*segment.to_string_lossy()));
        assert!(!ran.load(Relaxed), "`then` of a failed append ran");
        let len = std::fs::metadata(&segment).unwrap().len();
        assert_eq!(len, limit - 100, "cut back to the last durable byte");
        // The failed append used no lsn; one that fits gets the next.
        assert_eq!(log.append(vec![3; 50], |_| {}).await.unwrap(), 2);
        let stats = log.stats();
        assert_eq!(
            (stats.appends, stats.groups, stats.failed_groups),
            (2, 2, 1)
        );
        log.close().await;
    });
}
