//! A real Prometheus server (Debian's package, installed by ./tests/run.sh) on a free loopback
//! port, scraping touchstream processes every second; killed when dropped.

use serde_json::Value;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// deploy/prometheus/rules.yml, the production rules.
pub fn production_rules() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/rules.yml"
    ))
    .unwrap()
}

pub struct Prometheus {
    child: Child,
    pub url: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus with `rules`, scraping each job's targets every second, and evaluating
    /// the rules every second; returns once it answers.
    pub async fn start(rules: &str, jobs: &[(&str, &[SocketAddr])]) -> Self {
        Self::start_every("1s", rules, jobs).await
    }

    /// [`Prometheus::start`], scraping and evaluating every `interval` (`"3s"`).
    pub async fn start_every(interval: &str, rules: &str, jobs: &[(&str, &[SocketAddr])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
        let mut config = format!(
            "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nrule_files: [rules.yml]\nscrape_configs:\n",
        );
        for (job, targets) in jobs {
            let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus ({e}); ./tests/run.sh installs Debian's prometheus")
            });
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !prometheus.is_ready().await {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        prometheus
    }

    async fn is_ready(&self) -> bool {
        let res = self
            .client
            .get(format!("{}/-/ready", self.url))
            .send()
            .await;
        res.is_ok_and(|r| r.status().is_success())
    }

    /// GET `path` on the HTTP API with `params`; the JSON answer, whatever its status.
    pub async fn api(&self, path: &str, params: &[(&str, String)]) -> Value {
        let res = self
            .client
            .get(format!("{}{path}", self.url))
            .query(params)
            .send()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"));
        res.json().await.unwrap_or_default()
    }

    /// Every active alert (`/api/v1/alerts`).
    pub async fn alerts(&self) -> Vec<Value> {
        let body = self.api("/api/v1/alerts", &[]).await;
        body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Whether every target is up (scraped successfully at least once).
    pub async fn targets_up(&self) -> bool {
        let body = self.api("/api/v1/targets", &[]).await;
        let active = body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        !active.is_empty() && active.iter().all(|t| t["health"] == "up")
    }
}
