//! `touchstream-load`: see `loadtests/README.md`.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use touchstream_load::attack::{self, Attack, Bound};
use touchstream_load::procstat::Server;
use touchstream_load::run::{Options, Workload, execute};
use touchstream_load::send::Target;
use touchstream_load::shopper::Mix;

#[derive(Parser)]
#[command(
    version,
    about = "Load generator for touchstream, with exact ground truth"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    workload: Command,
}

#[derive(Args)]
struct Common {
    /// The collector's base URL (events go to URL/v1/events).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A /metrics URL of the deployment; repeat for every collector and engine.
    #[arg(long, global = true, default_value = "http://127.0.0.1:9464/metrics")]
    metrics: Vec<String>,
    /// The site id sent in every batch.
    #[arg(long, global = true, default_value = "demo")]
    site: String,
    /// The Origin header (one of the site's allowed origins).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    origin: String,
    /// Connections (and workers) sending at once.
    #[arg(long, global = true, default_value_t = 32)]
    concurrency: usize,
    /// Most events per request.
    #[arg(long, global = true, default_value_t = 20)]
    batch: usize,
    /// Target events per second; 0 sends as fast as the server answers.
    #[arg(long, global = true, default_value_t = 0.0)]
    rate: f64,
    /// A process of the server, for its CPU time and memory; repeat for several.
    #[arg(long = "server-pid", global = true)]
    server_pids: Vec<u32>,
    /// The server's journey.session_timeout (sessions close, and their figures settle, after it).
    #[arg(long, global = true, default_value = "30m", value_parser = humantime::parse_duration)]
    session_timeout: Duration,
    /// Longest wait, after the load, for /metrics to equal the ground truth [default: session
    /// timeout + 30s].
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    settle: Option<Duration>,
    /// Do not compare /metrics with the ground truth: the report says "not verified", and the
    /// exit status is 0 if the run completes.
    #[arg(long, global = true)]
    no_verify: bool,
    /// How often the freshness probe sends; "0s" turns it off.
    #[arg(long, global = true, default_value = "1s", value_parser = humantime::parse_duration)]
    probe_interval: Duration,
    /// First retry delay after 429, 5xx or a network error (doubled up to a minute).
    #[arg(long, global = true, default_value = "1s", value_parser = humantime::parse_duration)]
    retry_backoff: Duration,
    /// Print the report as one JSON object.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Simulated shoppers walking the default journey.
    Shoppers {
        /// Start sessions for this long.
        #[arg(long, value_parser = humantime::parse_duration, required_unless_present = "sessions")]
        duration: Option<Duration>,
        /// Or start this many sessions.
        #[arg(long)]
        sessions: Option<u64>,
        /// Step probabilities visit>product, product>cart, cart>checkout, checkout>purchase.
        #[arg(long, value_delimiter = ',', default_values_t = Mix::default().steps)]
        steps: Vec<f64>,
        /// Mean product views of a session that views products.
        #[arg(long, default_value_t = Mix::default().views)]
        views: f64,
        /// Share of sessions from crawlers.
        #[arg(long, default_value_t = Mix::default().bots)]
        bots: f64,
        /// Share of sessions with a friction touchpoint.
        #[arg(long, default_value_t = Mix::default().friction)]
        friction: f64,
        /// Share of carts with an item removed again.
        #[arg(long, default_value_t = Mix::default().removals)]
        removals: f64,
        /// Share of acknowledged batches sent again (a lost response, as the snippet retries).
        #[arg(long, default_value_t = 0.01)]
        duplicates: f64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// A REES46 clickstream CSV on its own timeline, sped up.
    Replay {
        /// The CSV file, such as ../shared/data/rees46-2019-oct-sample.csv.
        file: PathBuf,
        /// How many times faster than recorded; run the server with a session timeout of
        /// 30 minutes divided by this, and pass it as --session-timeout.
        #[arg(long, default_value_t = 100.0)]
        speedup: f64,
    },
    /// An attack on one bound of issue 13; prints `bound NAME: measured X (limit Y) ok|BROKEN`
    /// and exits 1 if a bound is broken. loadtests/attack.sh starts a server suited to each.
    Attack {
        #[command(subcommand)]
        attack: Attack,
    },
}

fn share(name: &str, v: f64) -> anyhow::Result<f64> {
    if !(0.0..=1.0).contains(&v) {
        bail!("--{name} must be between 0 and 1, not {v}");
    }
    Ok(v)
}

fn workload(command: Command) -> anyhow::Result<Workload> {
    Ok(match command {
        Command::Shoppers {
            duration,
            sessions,
            steps,
            views,
            bots,
            friction,
            removals,
            duplicates,
            seed,
        } => {
            let steps: [f64; 4] = steps.try_into().map_err(|s: Vec<f64>| {
                anyhow::anyhow!("--steps needs 4 probabilities, not {}", s.len())
            })?;
            for p in steps {
                share("steps", p)?;
            }
            if views < 1.0 {
                bail!("--views must be at least 1, not {views}");
            }
            Workload::Shoppers {
                mix: Mix {
                    steps,
                    views,
                    bots: share("bots", bots)?,
                    removals: share("removals", removals)?,
                    friction: share("friction", friction)?,
                },
                duration,
                sessions,
                duplicates: share("duplicates", duplicates)?,
                seed,
            }
        }
        Command::Attack { .. } => unreachable!("attacks do not build a workload"),
        Command::Replay { file, speedup } => {
            if speedup <= 0.0 {
                bail!("--speedup must be above 0, not {speedup}");
            }
            Workload::Replay {
                events: touchstream_load::rees46::read(&file)?,
                speedup,
            }
        }
    })
}

async fn main_result() -> anyhow::Result<bool> {
    let cli = Cli::parse();
    let c = cli.common;
    if c.concurrency == 0 || c.batch == 0 {
        bail!("--concurrency and --batch must be at least 1");
    }
    let server = if c.server_pids.is_empty() {
        None
    } else {
        Some(Server::new(c.server_pids.clone()).context("--server-pid")?)
    };
    let workload = match cli.workload {
        Command::Attack { attack } => return run_attack(c, server, attack).await,
        other => workload(other)?,
    };
    let run_id = format!("load{:x}", touchstream_load::probe::now_ms());
    let options = Options {
        target: Target {
            events_url: format!("{}/v1/events", c.url.trim_end_matches('/')),
            origin: c.origin,
            site: c.site,
            batch: c.batch,
            retry_backoff: c.retry_backoff,
        },
        metrics: c.metrics,
        concurrency: c.concurrency,
        rate: c.rate,
        server,
        session_timeout: c.session_timeout,
        settle: c
            .settle
            .unwrap_or(c.session_timeout + Duration::from_secs(30)),
        verify: !c.no_verify,
        probe_interval: (!c.probe_interval.is_zero()).then_some(c.probe_interval),
        run_id,
        ledger: false,
    };
    let report = execute(options, workload).await?;
    if c.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    // --no-verify asks for the measures alone: the run did what was asked, and the report
    // says "not verified". Otherwise a run that was not verified fails like one that differs.
    Ok(report.passed() || c.no_verify)
}

/// Runs an attack, prints its bounds; whether every one held.
async fn run_attack(c: Common, server: Option<Server>, attack: Attack) -> anyhow::Result<bool> {
    let mut ctx = attack::Context::new(&c.url, c.metrics, c.site, c.origin)?;
    ctx.server = server;
    ctx.session_timeout = c.session_timeout;
    ctx.concurrency = c.concurrency;
    ctx.batch = c.batch;
    ctx.retry_backoff = c.retry_backoff;
    let bounds = attack::run(&ctx, attack).await?;
    for b in &bounds {
        println!("{}", b.line());
    }
    Ok(bounds.iter().all(Bound::ok))
}

#[tokio::main]
async fn main() -> ExitCode {
    match main_result().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("touchstream-load: {e:#}");
            ExitCode::from(2)
        }
    }
}
