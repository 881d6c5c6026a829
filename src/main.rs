//! The `touchstream` binary: parses arguments, loads the configuration, sets up logging, binds
//! the listeners and hands over to the library.

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use touchstream::config::{self, Config};
use touchstream::replay::{self, ReplayOptions};
use touchstream::server::{self, Listeners};

/// Real-time customer-journey monitor for online shops.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Every key can also be set as TOUCHSTREAM_<SECTION>_<KEY>.
    #[arg(long, global = true, env = "TOUCHSTREAM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Collector and engine in one process (the default); joined through Kafka when
    /// kafka.brokers is set, else in memory.
    Serve,
    /// The collector alone, writing accepted events to Kafka.
    Collect,
    /// The engine alone, reading events from Kafka and serving /metrics.
    Engine,
    /// Run the engine over a recorded log (a batch, or JSON Lines of batches or events) and
    /// print the final funnel report.
    Replay {
        /// The log file.
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Skip bad lines and invalid events (listed on stderr) instead of stopping.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Print the Prometheus recording and alerting rules for the configured journey map (what
    /// deploy/prometheus/rules.yml holds for the default one). Binds no port, touches no state
    /// directory and reaches no broker.
    Rules,
    /// Print the Grafana dashboard for the configured journey map (what
    /// deploy/grafana/dashboards/touchstream.json holds for the default one). Binds no port,
    /// touches no state directory and reaches no broker.
    Dashboard,
    /// Validate a configuration file and print the resolved configuration, secrets hidden.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
}

/// Writes a document to standard output; a closed pipe is an error, not a panic.
fn out(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    (stdout.write_all(text.as_bytes()))
        .and_then(|_| stdout.flush())
        .map_err(|e| format!("cannot write the output: {e}"))
}

fn load(path: Option<&std::path::Path>) -> Result<Config, String> {
    config::load(path, std::env::vars()).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A closed log pipe must not stop the process: the default reports a failed write with
        // eprintln!, which panics when stderr itself is gone.
        .log_internal_errors(false)
        .init();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => load(cli.config.as_deref()).and_then(|c| serve(c, Role::Serve)),
        Command::Collect => load(cli.config.as_deref()).and_then(|c| serve(c, Role::Collect)),
        Command::Engine => load(cli.config.as_deref()).and_then(|c| serve(c, Role::Engine)),
        Command::Replay {
            file,
            json,
            skip_invalid,
        } => load(cli.config.as_deref()).and_then(|c| run_replay(&c, &file, json, skip_invalid)),
        Command::Rules => {
            load(cli.config.as_deref()).and_then(|c| out(&touchstream::ops::rules(&c)))
        }
        Command::Dashboard => {
            load(cli.config.as_deref()).and_then(|c| out(&touchstream::ops::dashboard(&c)))
        }
        Command::CheckConfig { file } => load(Some(&file)).and_then(|c| {
            let text = c.printable()?;
            out(&text)
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("touchstream: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Which process to run.
#[derive(Clone, Copy)]
enum Role {
    Serve,
    Collect,
    Engine,
}

fn serve(config: Config, role: Role) -> Result<(), String> {
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let signal = touchstream::shutdown::signal();
        let result = match role {
            Role::Engine => {
                let admin = tokio::net::TcpListener::bind(config.admin_listen)
                    .await
                    .map_err(|e| format!("cannot listen on {}: {e}", config.admin_listen))?;
                server::run_engine(config, admin, signal).await
            }
            Role::Serve | Role::Collect => {
                let listeners = Listeners::bind(&config).await.map_err(|e| {
                    format!(
                        "cannot listen on {} / {}: {e}",
                        config.listen, config.admin_listen
                    )
                })?;
                match role {
                    Role::Collect => server::run_collect(config, listeners, signal).await,
                    _ => server::run(config, listeners, signal).await,
                }
            }
        };
        result.map_err(|e| format!("{e:#}"))
    })
}

fn run_replay(
    config: &Config,
    file: &std::path::Path,
    json: bool,
    skip_invalid: bool,
) -> Result<(), String> {
    let f =
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let outcome = replay::replay(
        config,
        std::io::BufReader::new(f),
        ReplayOptions { skip_invalid },
    )
    .map_err(|e| format!("{}: {e}", file.display()))?;
    for (line, message) in &outcome.skipped {
        eprintln!("{}:{line}: skipped: {message}", file.display());
    }
    let mut out = std::io::stdout().lock();
    let text = if json {
        outcome.report.to_json().to_string() + "\n"
    } else {
        outcome.report.to_table()
    };
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}
