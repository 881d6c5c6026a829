//! Over Kafka, what a real Prometheus stores is exact, whoever scrapes and whatever happens to
//! the engines: two Prometheus servers scraping at different intervals and a curl loop read two
//! engines under load while a partition moves between them, one is killed with SIGKILL and
//! started again, and both are restarted one after the other. From each Prometheus's raw
//! samples (each partition taken once, at its largest; no series may ever go down) and from the
//! `...:total` recording rules, the totals equal the load generator's ground truth exactly.

mod common;

use common::kafka::{Broker, scrape_at};
use common::load::{options, shoppers};
use common::process::{KillOnDrop, signal, start, touchstream};
use common::prom::Scrape;
use common::prometheus::{Prometheus, production_rules};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};
use touchstream::config::Config;
use touchstream_load::run::execute;
use touchstream_load::truth::{Figures, STAGES, micros};

fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A touchstream process on fixed addresses from a configuration file, as a pod with a stable
/// name: `engine`s are static members of the group under `id`.
struct Daemon {
    guard: KillOnDrop,
    role: &'static str,
    id: &'static str,
    admin: SocketAddr,
    config: std::path::PathBuf,
}

impl Daemon {
    fn start(
        role: &'static str,
        id: &'static str,
        admin: SocketAddr,
        config: &std::path::Path,
    ) -> Self {
        let listeners: &[&str] = if role == "collect" {
            &["admin", "public"]
        } else {
            &["admin"]
        };
        let (guard, _log, _) = start(
            touchstream()
                .arg("--config")
                .arg(config)
                .arg(role)
                .env("TOUCHSTREAM_ADMIN_LISTEN", admin.to_string())
                .env("TOUCHSTREAM_KAFKA_INSTANCE_ID", id),
            listeners,
        );
        Daemon {
            guard,
            role,
            id,
            admin,
            config: config.to_path_buf(),
        }
    }

    /// Stops it with `how` (`-KILL`, `-TERM`) and starts it again on the same addresses.
    async fn restart(mut self, how: &str) -> Self {
        let status = signal(self.guard.0.take().unwrap(), how).await;
        assert!(
            how == "-KILL" || status.success(),
            "{} exited with {status}",
            self.id
        );
        Daemon::start(self.role, self.id, self.admin, &self.config)
    }
}

/// The figures counted when an event happens (no session closes within the test).
fn at_event_time(f: &Figures) -> (Vec<u64>, u64, BTreeMap<String, i64>) {
    (f.reached.to_vec(), f.orders, f.revenue.clone())
}

/// The raw samples of `metric` over the last `range` (an instant query of a range selector).
async fn raw(
    prometheus: &Prometheus,
    metric: &str,
    range: &str,
) -> Vec<(BTreeMap<String, String>, Vec<f64>)> {
    let body = prometheus
        .api("/api/v1/query", &[("query", format!("{metric}[{range}]"))])
        .await;
    let result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    result
        .iter()
        .map(|series| {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(series["metric"].clone()).unwrap();
            let values = (series["values"].as_array().unwrap().iter())
                .map(|v| v[1].as_str().unwrap().parse().unwrap())
                .collect();
            (labels, values)
        })
        .collect()
}

/// Totals of `metric` by `by` from raw samples: each series must never go down (no counter
/// reset, across a SIGKILL and restarts), and a partition's series read from several engines
/// is one figure, taken at its largest.
async fn totals(prometheus: &Prometheus, metric: &str, by: &str) -> BTreeMap<String, f64> {
    let mut per_partition: BTreeMap<BTreeMap<String, String>, f64> = BTreeMap::new();
    for (mut labels, values) in raw(prometheus, metric, "15m").await {
        assert!(
            values.windows(2).all(|w| w[1] >= w[0]),
            "{metric}{labels:?} went down: {values:?}"
        );
        assert!(labels.contains_key("partition"), "{labels:?}");
        labels.remove("instance");
        labels.remove("__name__");
        let top = values.iter().copied().fold(0.0, f64::max);
        let kept = per_partition.entry(labels).or_default();
        *kept = kept.max(top);
    }
    let mut out = BTreeMap::new();
    for (labels, value) in per_partition {
        *out.entry(labels.get(by).cloned().unwrap_or_default())
            .or_default() += value;
    }
    out
}

/// The value of a recording rule's series by `by`.
async fn recorded(prometheus: &Prometheus, rule: &str, by: &str) -> BTreeMap<String, f64> {
    let body = prometheus
        .api("/api/v1/query", &[("query", rule.to_string())])
        .await;
    (body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter())
    .map(|s: &Value| {
        let key = s["metric"][by].as_str().unwrap_or_default().to_string();
        (key, s["value"][1].as_str().unwrap().parse().unwrap())
    })
    .collect()
}

/// What Prometheus holds, as the truth's figures: from raw samples, or from the rules.
async fn stored(prometheus: &Prometheus, rules: bool) -> (Vec<u64>, u64, BTreeMap<String, i64>) {
    let (stages, orders, revenue) = if rules {
        (
            recorded(
                prometheus,
                "site_journey_stage:touchstream_funnel_sessions:total",
                "stage",
            )
            .await,
            recorded(prometheus, "site:touchstream_orders:total", "site").await,
            recorded(
                prometheus,
                "site_currency:touchstream_revenue:total",
                "currency",
            )
            .await,
        )
    } else {
        (
            totals(prometheus, "touchstream_funnel_sessions_total", "stage").await,
            totals(prometheus, "touchstream_orders_total", "site").await,
            totals(prometheus, "touchstream_revenue_total", "currency").await,
        )
    };
    let reached = STAGES
        .iter()
        .map(|s| stages.get(*s).copied().unwrap_or(0.0) as u64)
        .collect();
    let revenue = (revenue.into_iter())
        .filter(|(_, v)| *v != 0.0)
        .map(|(c, v)| (c, micros(v)))
        .collect();
    (reached, orders.values().sum::<f64>() as u64, revenue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_from_prometheus_are_exact_through_scrapers_a_sigkill_and_rolling_restarts() {
    let broker = Broker::memory();
    let timeout = Duration::from_secs(600);
    let mut cfg: Config = common::kafka::config(&broker, 4, timeout);
    cfg.listen = free_address();
    // Static members (a StatefulSet's pods): tansu takes about 6 s to take one in.
    cfg.kafka
        .consumer
        .insert("session.timeout.ms".into(), "15000".into());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), toml::to_string(&cfg).unwrap()).unwrap();
    let (a, b, c) = (free_address(), free_address(), free_address());
    let collector = Daemon::start("collect", "collector", c, file.path());
    let mut one = Daemon::start("engine", "engine-1", a, file.path());
    let engines = [a, b];
    let fast = Prometheus::start_every("1s", &production_rules(), &[("engines", &engines)]).await;
    let slow = Prometheus::start_every("3s", &production_rules(), &[("engines", &engines)]).await;
    // A curl now and then: it changes nothing.
    let curl = tokio::spawn(async move {
        loop {
            for admin in engines {
                let _ = scrape_at(admin).await;
            }
            tokio::time::sleep(Duration::from_millis(350)).await;
        }
    });
    let load = tokio::spawn(execute(
        options(cfg.listen, timeout, 16, 300.0),
        shoppers(Duration::from_secs(40)),
    ));
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The second engine joins: partitions move to it.
    let mut two = Daemon::start("engine", "engine-2", b, file.path());
    tokio::time::sleep(Duration::from_secs(8)).await;
    one = one.restart("-KILL").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    two = two.restart("-TERM").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    one = one.restart("-TERM").await;
    let report = load.await.unwrap().unwrap();
    curl.abort();
    let truth = at_event_time(&report.truth);
    assert!(
        report.stats.events_accepted > 1000 && truth.1 > 10,
        "too little load to show anything: {truth:?}"
    );

    // The engines catch up with the truth...
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let scrapes = [scrape_at(one.admin).await, scrape_at(two.admin).await];
        let both = Scrape::combine(scrapes.into_iter().flatten());
        if at_event_time(&both.figures("demo")) == truth {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the engines never reached the truth"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // ... and both Prometheus servers, scraping at their own pace, store it.
    for (prometheus, name) in [(&fast, "1 s"), (&slow, "3 s")] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while stored(prometheus, true).await != truth {
            assert!(
                Instant::now() < deadline,
                "the {name} Prometheus's recording rules never reached the truth: {:?} against {truth:?}",
                stored(prometheus, true).await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            stored(prometheus, false).await,
            truth,
            "raw samples of the {name} Prometheus"
        );
    }
    // The partitions did move: the second engine owned some while the first ran.
    let moved = fast
        .api(
            "/api/v1/query",
            &[(
                "query",
                format!(
                    "max_over_time(touchstream_kafka_assigned_partitions{{instance=\"{b}\"}}[15m])"
                ),
            )],
        )
        .await;
    let owned: f64 = moved["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(owned > 0.0, "the second engine owned no partition");
    eprintln!(
        "{} events accepted; truth {truth:?}",
        report.stats.events_accepted
    );
    drop((one, two, collector));
}
