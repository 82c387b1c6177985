//! The `gitauto` command: parse arguments, set up logging, call the library, print the
//! error chain and set the exit code.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gitauto::config::{self, Config};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Git automation with WebAssembly plugins: forge webhooks in, sandboxed steps out.
#[derive(Parser)]
#[command(name = "gitauto", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Config file.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate a config file and print every problem.
    Check {
        /// Config file.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Sign a payload as a source's forge would and post it to the daemon.
    Send {
        /// The `[sources.NAME]` to send as (its forge and secret are used).
        #[arg(long)]
        source: String,
        /// The forge's event name.
        #[arg(long, default_value = "push")]
        event: String,
        /// The JSON payload file.
        #[arg(long)]
        payload: PathBuf,
        /// Where to post (default: the config's listen address, `/hooks/SOURCE`).
        #[arg(long)]
        url: Option<String>,
        /// Config file.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Run a stored delivery again (the daemon must be running): the forge's delivery id,
    /// or the record's number from `GET /api/deliveries`.
    Redeliver {
        /// Delivery id or number.
        delivery: String,
        /// The daemon's address (default: the config's listen address).
        #[arg(long)]
        url: Option<String>,
        /// Config file.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GITAUTO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            gitauto::daemon::run(load(&config)?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => match Config::load(&config) {
            Ok(loaded) => {
                println!(
                    "{}: ok ({} sources, {} plugins, {} rules)",
                    config.display(),
                    loaded.sources.len(),
                    loaded.plugins.len(),
                    loaded.rules.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                for problem in err.problems() {
                    eprintln!("{problem}");
                }
                eprintln!("{} problem(s) found", err.problems().len());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Send { source, event, payload, url, config } => {
            let config = load(&config)?;
            let source = config
                .source(&source)
                .with_context(|| format!("no [sources.{source}] in {}", config.path.display()))?;
            let body = std::fs::read(&payload).with_context(|| format!("reading {}", payload.display()))?;
            let url = url.unwrap_or_else(|| format!("http://{}/hooks/{}", config.server.listen, source.name));
            let (status, answer) = gitauto::send::send(source, &event, body, &url).await?;
            println!("{status} {answer}");
            Ok(if (200..300).contains(&status) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Redeliver { delivery, url, config } => {
            let base = match url {
                Some(url) => url,
                None => format!("http://{}", load(&config)?.server.listen),
            };
            let (status, answer) = gitauto::send::redeliver(&base, &delivery).await?;
            println!("{status} {answer}");
            Ok(if (200..300).contains(&status) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|err| anyhow::anyhow!("{err}\n{} problem(s) in the config", err.problems().len()))
}
