//! The `gitauto` command: parse arguments, set up logging, call the library, print the
//! error chain and set the exit code.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gitauto::config::{self, Config};
use gitauto::terminal::escape;
use std::borrow::Cow;
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
    /// Copy a stopped daemon's SQLite queue (in `data_dir`) into the empty PostgreSQL
    /// queue that the config's `[store] url` names.
    CopyQueue {
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
    /// Run a stored delivery again: the forge's delivery id, or the record's number from
    /// `GET /api/deliveries`.
    Redeliver {
        /// Delivery id or number.
        delivery: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// List jobs, newest first.
    Jobs {
        /// Only jobs in this state (waiting, queued, running, succeeded, failed, skipped, cancelled, dead,
        /// superseded, quarantined).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs for this repository (`owner/name`).
        #[arg(long)]
        repo: Option<String>,
        /// Only jobs of this rule.
        #[arg(long)]
        rule: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 30)]
        limit: usize,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// List the nodes (daemons) sharing the queue, with their last heartbeat and config.
    ///
    /// CONFIG is the node's config fingerprint: a digest of what every node must agree
    /// on (sources with their secrets' values, plugins with their components' content,
    /// rules, compat, retention), leaving out each node's own `[server]` and `[store]`.
    /// `*` marks a live node whose config differs from the one most live nodes run (a
    /// tie going to this daemon's); `unknown`, a node of a version that records none.
    Nodes {
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Show a job: its steps, outcome and log.
    Job {
        /// Job id.
        id: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Run a finished job once more.
    Retry {
        /// Job id.
        id: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Cancel a queued job, or stop a running one before its next step.
    Cancel {
        /// Job id.
        id: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// List the rules: paused or not, concurrency, priority, queued and running jobs.
    Rules {
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Pause a rule: its events are still accepted and queued, but none of its jobs
    /// starts (on any node sharing the queue) until it is resumed. Running jobs finish.
    Pause {
        /// The rule's name.
        rule: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Resume a paused rule: its queued jobs run.
    Resume {
        /// The rule's name.
        rule: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Start a manual rule (`on = "manual"`) with parameters: `key=value` for text,
    /// `key:=JSON` for numbers, lists and tables. Exit status: 0 accepted (with `--wait`:
    /// every job succeeded), 1 a job did not succeed, 3 `--timeout` passed first, 4 the
    /// trigger was refused or the daemon could not be reached.
    Trigger {
        /// The rule's name.
        rule: String,
        /// Parameters, `key=value` or `key:=JSON`.
        params: Vec<String>,
        /// Wait for the job(s) to finish; print their outcome, steps and output.
        #[arg(long)]
        wait: bool,
        /// With `--wait`: stop waiting after this long (`90s`, `10m`); the jobs go on.
        #[arg(long, requires = "wait", value_name = "DURATION")]
        timeout: Option<String>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Install, list or remove the forge webhook that sends a source's events to this
    /// daemon (token: the source's `api`, else GITAUTO_HOOKS_TOKEN).
    Hooks {
        #[command(subcommand)]
        command: HooksCommand,
    },
    /// Read and delete plugins' key-value entries (`grants = { kv = "NAME" }`), through
    /// the running daemon.
    Kv {
        #[command(subcommand)]
        command: KvCommand,
    },
    /// Tools for plugin authors.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Run a payload through the rules in this process (no daemon): print every rule's
    /// verdict and, without `--dry-run`, run the matching rules' steps and print them.
    Run {
        /// The payload file, as the forge sends it.
        #[arg(long)]
        event: PathBuf,
        /// The `[sources.NAME]` it arrives through (needed when there are several).
        #[arg(long)]
        source: Option<String>,
        /// The forge's event name (`push`, `Push Hook`, ...); guessed from the payload when absent.
        #[arg(long)]
        forge_event: Option<String>,
        /// Only say which rules match; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Config file.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KvCommand {
    /// List a store's live entries in byte order of their keys: key, bytes, version, expiry.
    List {
        /// The store's name.
        store: String,
        /// Only keys that start with this (`%` and `_` are plain characters).
        #[arg(long, default_value = "")]
        prefix: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Write an entry's value, the bytes as stored, to stdout (its version and expiry to stderr).
    Get {
        /// The store's name.
        store: String,
        /// The key.
        key: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Delete an entry.
    Delete {
        /// The store's name.
        store: String,
        /// The key.
        key: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
}

#[derive(Subcommand)]
enum HooksCommand {
    /// Create the hook (its URL, the events the source's rules need, the source's newest
    /// secret, JSON, TLS verified), or update the one with the same URL.
    Install {
        #[command(flatten)]
        at: HookArgs,
        /// Where the hook posts (default: `[server] public_url` + `/hooks/SOURCE`).
        #[arg(long)]
        url: Option<String>,
        /// Install even on a GitHub App source (whose app's webhook already delivers its
        /// events: each would arrive twice).
        #[arg(long)]
        force: bool,
    },
    /// List the repository's hooks: id, URL, events, active, last delivery.
    List {
        #[command(flatten)]
        at: HookArgs,
    },
    /// Delete the hooks posting to the URL.
    Remove {
        #[command(flatten)]
        at: HookArgs,
        /// The hooks' URL (default: `[server] public_url` + `/hooks/SOURCE`).
        #[arg(long)]
        url: Option<String>,
    },
}

/// Which repository's hooks, through which source.
#[derive(clap::Args)]
struct HookArgs {
    /// The `[sources.NAME]` whose forge, API token, secret and rules are used.
    #[arg(long)]
    source: String,
    /// The repository: `owner/name` (GitLab: the project's full path; Bitbucket:
    /// `workspace/slug`).
    #[arg(long)]
    repo: String,
    /// Config file.
    #[arg(long, short, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

impl HookArgs {
    /// The library's request for `action`.
    fn request(self, action: gitauto::hooks::command::Action) -> gitauto::hooks::command::Request {
        gitauto::hooks::command::Request { source: self.source, repo: self.repo, action }
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write a buildable plugin skeleton (with this host's WIT, a README and a sample rule).
    New {
        /// The plugin's name: lower-case letters, digits and `-`.
        name: String,
        /// Its language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: gitauto::authoring::scaffold::Lang,
        /// Where to create the plugin's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Fetch every plugin the config takes from a registry or URL into the plugin store
    /// (`DATA_DIR/plugins`), checking pins and signatures; print each one's digest.
    Pull {
        /// Config file.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// What a component is: the gitauto WIT version it targets, its imports and exports,
    /// its size, and whether this host can run it.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// Run a component once against a payload file, with the grants given here, and
    /// print its outcome and log.
    Test {
        /// The `.wasm` component.
        file: PathBuf,
        /// The payload file, as the forge sends it.
        #[arg(long)]
        event: PathBuf,
        /// The forge that sent it.
        #[arg(long, default_value = "github")]
        forge: String,
        /// The forge's event name; guessed from the payload when absent.
        #[arg(long)]
        forge_event: Option<String>,
        /// A setting: `key=value` (text) or `key:=JSON`.
        #[arg(long = "with", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// A grant: `dir=PATH`, `write=PATH`, `host=HOST[:PORT]`, `command=PROGRAM`.
        #[arg(long = "grant", value_name = "KIND=VALUE")]
        grants: Vec<String>,
        /// Memory limit.
        #[arg(long, default_value = "256MiB")]
        memory: String,
        /// Time limit.
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
}

/// How the commands that talk to a running daemon find it.
#[derive(clap::Args)]
struct DaemonArgs {
    /// The daemon's address (default: the config's listen address).
    #[arg(long)]
    url: Option<String>,
    /// Config file (for the address and the API token).
    #[arg(long, short, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

impl DaemonArgs {
    fn client(&self) -> anyhow::Result<gitauto::client::Client> {
        let loaded = load(&self.config)?;
        let base = self.url.clone().unwrap_or_else(|| format!("http://{}", loaded.server.listen));
        Ok(gitauto::client::Client::new(&base, loaded.server.api_token.map(|t| t.expose().to_owned())))
    }
}

/// The log thread, for [`say`].
static LOG: std::sync::OnceLock<gitauto::terminal::LogWriter> = std::sync::OnceLock::new();

/// Writes a line to stderr after every record logged before it (the log thread buffers; a
/// problem printed straight to stderr would otherwise come out before a warning that preceded it).
fn say(line: impl std::fmt::Display) {
    if let Some(log) = LOG.get() {
        log.flush();
    }
    eprintln!("{line}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Records are written by a thread of their own (one write per burst, not per record).
    let log = match gitauto::terminal::LogWriter::start(std::io::stderr()) {
        Ok(log) => log,
        Err(err) => {
            eprintln!("error: starting the log thread: {err}");
            return ExitCode::FAILURE;
        }
    };
    // `GITAUTO_LOG` (an error when it is not a filter) or `info`, as text, until `serve`
    // applies the config's `[server] log` and `log_format`.
    if let Err(why) = gitauto::logging::init(log.clone(), std::io::IsTerminal::is_terminal(&std::io::stderr())) {
        log.flush();
        eprintln!("error: {why}");
        return ExitCode::FAILURE;
    }
    let _ = LOG.set(log.clone());
    // Dropped after the runtime (declared before it): the runtime's last records are written too.
    let _flushed = gitauto::terminal::FlushOnDrop(log.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // `say` writes the error after whatever was logged before it; `_flushed`, all of the
    // log before the process ends.
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            // The chain may carry a daemon's or a plugin's words: each line escaped.
            let chain = format!("{err:#}");
            let lines: Vec<Cow<'_, str>> = chain.lines().map(escape).collect();
            say(format_args!("error: {}", lines.join("\n")));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            let config = load(&config)?;
            gitauto::logging::apply(&config.server.log, config.server.log_format)
                .map_err(|why| anyhow::anyhow!("{}: [server] log: {why}", config.path.display()))?;
            gitauto::daemon::run(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CopyQueue { config } => {
            let config = Config::load(&config)?;
            let Some(url) = &config.store else {
                anyhow::bail!("{}: set `[store] url` to the PostgreSQL queue to copy into", config.path.display());
            };
            let copied = gitauto::queue::copy::sqlite_to_postgres(&config.server.data_dir, url.expose())?;
            for (table, rows) in copied {
                println!("{table:<16} {rows:>9} rows");
            }
            println!("copied {} into the PostgreSQL queue", config.server.data_dir.join("gitauto.sqlite").display());
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
                // Offline: a remote plugin not fetched yet is a note, not a problem.
                let mut bad = 0;
                for (spec, component) in plugin_components(&loaded).await? {
                    match component {
                        Ok(component) => println!("{}", describe_component(&spec, &component)),
                        Err(err) if err.downcast_ref::<gitauto::plugin_source::NotFetched>().is_some() => {
                            say(format_args!("note: plugin `{}`: {err:#}", spec.name));
                        }
                        Err(err) => {
                            bad += 1;
                            say(format_args!("{}: plugin `{}`: {err:#}", config.display(), spec.name));
                        }
                    }
                }
                if bad > 0 {
                    say(format_args!("{bad} problem(s) found"));
                    return Ok(ExitCode::FAILURE);
                }
                let now = gitauto::queue::now_ms();
                for rule in &loaded.rules {
                    let Some(schedule) = &rule.schedule else { continue };
                    println!(
                        "rule \"{}\": cron \"{}\" in {}, missed = \"{}\"; next times:",
                        rule.name,
                        schedule.cron,
                        schedule.timezone_name,
                        schedule.missed.as_str()
                    );
                    for line in gitauto::schedule::upcoming(schedule, now, 5) {
                        println!("  {line}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                for problem in err.problems() {
                    say(problem);
                }
                say(format_args!("{} problem(s) found", err.problems().len()));
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Send { source, event, payload, url, config } => {
            let config = load(&config)?;
            let source = config
                .source(&source)
                .with_context(|| format!("no [sources.{source}] in {}", config.path.display()))?;
            let body = tokio::fs::read(&payload).await.with_context(|| format!("reading {}", payload.display()))?;
            let url = url.unwrap_or_else(|| format!("http://{}/hooks/{}", config.server.listen, source.name));
            let (status, answer) = gitauto::send::send(source, &event, body, &url).await?;
            println!("{status} {}", escape(&answer.to_string()));
            Ok(if (200..300).contains(&status) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Redeliver { delivery, daemon } => {
            let answer = daemon.client()?.post(&format!("/api/deliveries/{delivery}/redeliver")).await?.ok()?;
            print_json(&answer);
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { state, repo, rule, limit, daemon } => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (key, value) in [("state", state), ("repo", repo), ("rule", rule)] {
                if let Some(value) = value {
                    query.append_pair(key, &value);
                }
            }
            query.append_pair("limit", &limit.to_string());
            let answer = daemon.client()?.get(&format!("/api/jobs?{}", query.finish())).await?.ok()?;
            print_jobs(&answer["jobs"]);
            Ok(ExitCode::SUCCESS)
        }
        Command::Nodes { daemon } => {
            let answer = daemon.client()?.get("/api/nodes").await?.ok()?;
            print_nodes(&answer);
            Ok(ExitCode::SUCCESS)
        }
        Command::Job { id, daemon } => {
            let answer = daemon.client()?.get(&format!("/api/jobs/{id}")).await?.ok()?;
            let job: gitauto::queue::JobView =
                serde_json::from_value(answer).context("the daemon's answer is not a job")?;
            print_job(&job);
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry { id, daemon } => {
            daemon.client()?.post(&format!("/api/jobs/{id}/retry")).await?.ok()?;
            println!("job {id} is queued again");
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { daemon } => {
            let answer = daemon.client()?.get("/api/rules").await?.ok()?;
            print_rules(&answer["rules"]);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause { rule, daemon } => {
            let answer = daemon.client()?.pause_rule(&rule, true).await?.ok()?;
            let already = if answer["changed"] == true { "" } else { " (it already was)" };
            println!("rule {} is paused{already}: its jobs stay queued until `gitauto resume`", escape(&rule));
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume { rule, daemon } => {
            let answer = daemon.client()?.pause_rule(&rule, false).await?.ok()?;
            let already = if answer["changed"] == true { "" } else { " (it was not paused)" };
            println!("rule {} runs its jobs{already}", escape(&rule));
            Ok(ExitCode::SUCCESS)
        }
        Command::Trigger { rule, params, wait, timeout, daemon } => {
            Ok(trigger(&rule, &params, wait, timeout, &daemon).await)
        }
        Command::Plugin { command: PluginCommand::Pull { config } } => {
            let config = load(&config)?;
            let specs: Vec<_> = config.plugins.values().cloned().collect();
            gitauto::plugin_source::fetch(&specs).await?;
            for (spec, component) in plugin_components(&config).await? {
                let component = component.with_context(|| format!("plugin `{}`", spec.name))?;
                println!("{}", describe_component(&spec, &component));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin { command: PluginCommand::New { name, lang, dir } } => {
            let root = gitauto::authoring::scaffold::new_plugin(&dir, &name, lang)?;
            println!("wrote {}; its README says how to build, try and enable it", root.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin { command: PluginCommand::Inspect { file } } => {
            let wasm = tokio::fs::read(&file).await.with_context(|| format!("reading {}", file.display()))?;
            let inspection = gitauto::runtime::inspect::inspect(&wasm)?;
            println!("{}: {} bytes", file.display(), inspection.size);
            match &inspection.targets {
                Some(version) => println!("targets   gitauto:plugin@{version}"),
                None => println!("targets   no gitauto:plugin interface"),
            }
            println!("uses:");
            let width = inspection.packages.iter().map(|p| p.name.len() + p.version.len() + 1).max().unwrap_or(0);
            for package in &inspection.packages {
                let named = format!("{}@{}", package.name, package.version);
                println!("  {:width$}  {}", escape(&named), escape(&package.interfaces.join(", ")));
            }
            println!("imports:");
            for import in &inspection.imports {
                println!("  {}", escape(import));
            }
            println!("exports:");
            for export in &inspection.exports {
                println!("  {}", escape(export));
            }
            match &inspection.runnable {
                Ok(()) => {
                    println!("runs on this host ({}): yes", gitauto::runtime::WIT_PACKAGE);
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    println!("runs on this host ({}): no: {}", gitauto::runtime::WIT_PACKAGE, escape(&why.to_string()));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Plugin {
            command: PluginCommand::Test { file, event, forge, forge_event, settings, grants, memory, timeout },
        } => {
            let body = tokio::fs::read(&event).await.with_context(|| format!("reading {}", event.display()))?;
            let event = gitauto::authoring::event_from_payload(&forge, forge_event.as_deref(), &body)?;
            let mut grant = gitauto::grant::Grant::default();
            for text in &grants {
                gitauto::authoring::parse_grant(text, &mut grant)?;
            }
            let limits = gitauto::config::Limits {
                memory: gitauto::config::parse_size(&memory).map_err(anyhow::Error::msg)?,
                timeout: gitauto::config::parse_duration(&timeout).map_err(anyhow::Error::msg)?,
            };
            let settings = serde_json::Value::Object(parse_params(&settings)?);
            let sink = gitauto::authoring::stderr_sink();
            let outcome = tokio::task::spawn_blocking(move || {
                gitauto::authoring::run_once(&file, grant, limits, &event, &settings, sink)
            })
            .await??;
            Ok(print_outcome(&outcome))
        }
        Command::Run { event, source, forge_event, dry_run, config } => {
            let config = load(&config)?;
            let body = tokio::fs::read(&event).await.with_context(|| format!("reading {}", event.display()))?;
            let request = gitauto::local::Request { body, source, forge_event, dry_run };
            let report = gitauto::local::run(config, request).await?;
            Ok(print_run(&report))
        }
        Command::Hooks { command } => hooks(command).await,
        Command::Kv { command } => kv(command).await,
        Command::Cancel { id, daemon } => {
            let answer = daemon.client()?.post(&format!("/api/jobs/{id}/cancel")).await?.ok()?;
            match answer["state"].as_str() {
                Some("cancelled") => println!("job {id} is cancelled"),
                _ => println!("job {id} is running; it stops before its next step"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `gitauto kv`: the daemon's `/api/kv` answers.
async fn kv(command: KvCommand) -> anyhow::Result<ExitCode> {
    let query = |pairs: &[(&str, &str)]| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs {
            query.append_pair(key, value);
        }
        query.finish()
    };
    let segment =
        |store: &str| percent_encoding::utf8_percent_encode(store, percent_encoding::NON_ALPHANUMERIC).to_string();
    match command {
        KvCommand::List { store, prefix, daemon } => {
            let client = daemon.client()?;
            let mut after: Option<String> = None;
            loop {
                let mut pairs = vec![("prefix", prefix.as_str())];
                if let Some(after) = &after {
                    pairs.push(("after", after));
                }
                let path = format!("/api/kv/{}?{}", segment(&store), query(&pairs));
                let answer = client.get(&path).await?.ok()?;
                for entry in answer["entries"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{} B\tversion {}\t{}",
                        escape(entry["key"].as_str().unwrap_or_default()),
                        entry["bytes"],
                        entry["version"],
                        entry["expires_at"]
                            .as_str()
                            .map_or_else(|| "no expiry".to_owned(), |at| format!("expires {at}"))
                    );
                }
                match answer["next"].as_str() {
                    Some(next) => after = Some(next.to_owned()),
                    None => return Ok(ExitCode::SUCCESS),
                }
            }
        }
        KvCommand::Get { store, key, daemon } => {
            let path = format!("/api/kv/{}/entry?{}", segment(&store), query(&[("key", &key)]));
            let answer = daemon.client()?.get(&path).await?.ok()?;
            let value = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                answer["base64"].as_str().unwrap_or_default(),
            )
            .context("the daemon's answer holds no value")?;
            let expiry =
                answer["expires_at"].as_str().map_or_else(|| "no expiry".to_owned(), |at| format!("expires {at}"));
            say(format_args!("version {}, {} bytes, {expiry}", answer["version"], value.len()));
            std::io::Write::write_all(&mut std::io::stdout(), &value).context("writing the value")?;
            Ok(ExitCode::SUCCESS)
        }
        KvCommand::Delete { store, key, daemon } => {
            let path = format!("/api/kv/{}/delete?{}", segment(&store), query(&[("key", &key)]));
            let answer = daemon.client()?.post(&path).await?.ok()?;
            if answer["deleted"].as_bool() == Some(true) {
                println!("deleted `{}` from `{}`", escape(&key), escape(&store));
                Ok(ExitCode::SUCCESS)
            } else {
                say(format_args!("no entry `{}` in `{}`", escape(&key), escape(&store)));
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// `gitauto hooks`: the library runs it; nothing printed carries a token or a secret.
async fn hooks(command: HooksCommand) -> anyhow::Result<ExitCode> {
    use gitauto::hooks::command::{Action, Env, run};
    let (config, request) = match command {
        HooksCommand::Install { at, url, force } => (load(&at.config)?, at.request(Action::Install { url, force })),
        HooksCommand::List { at } => (load(&at.config)?, at.request(Action::List)),
        HooksCommand::Remove { at, url } => (load(&at.config)?, at.request(Action::Remove { url })),
    };
    run(&config, &request, Env::from_process(), &mut std::io::stdout(), &mut std::io::stderr()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `gitauto trigger`'s exit statuses (clap's usage errors are 2).
mod trigger_exit {
    /// A job ended in a state other than succeeded or skipped, or none was queued.
    pub const JOB_FAILED: u8 = 1;
    /// `--timeout` passed before every job finished.
    pub const TIMED_OUT: u8 = 3;
    /// The trigger was refused, or the daemon could not be reached or followed.
    pub const NOT_TRIGGERED: u8 = 4;
}

/// `gitauto trigger`: starts the rule and, with `wait`, follows its jobs to the end.
async fn trigger(rule: &str, params: &[String], wait: bool, timeout: Option<String>, daemon: &DaemonArgs) -> ExitCode {
    let not_triggered = |err: anyhow::Error| {
        say(format_args!("error: {}", escape(&format!("{err:#}"))));
        ExitCode::from(trigger_exit::NOT_TRIGGERED)
    };
    let started = async {
        let timeout =
            timeout.as_deref().map(gitauto::config::parse_duration).transpose().map_err(anyhow::Error::msg)?;
        let params = parse_params(params)?;
        let client = daemon.client()?;
        let body = serde_json::json!({"rule": rule, "params": params});
        let answer = client.post_json("/api/events", &body).await?.ok()?;
        anyhow::Ok((client, answer, timeout))
    };
    let (client, answer, timeout) = match started.await {
        Ok(started) => started,
        Err(err) => return not_triggered(err),
    };
    let jobs: Vec<&str> = answer["jobs"].as_array().into_iter().flatten().filter_map(|j| j.as_str()).collect();
    println!(
        "rule {} started: job {} (delivery {})",
        escape(rule),
        escape(&jobs.join(", ")),
        text(&answer["delivery"])
    );
    if !wait {
        return ExitCode::SUCCESS;
    }
    if jobs.is_empty() {
        // Waiting for nothing would report success for work that never ran.
        say(format_args!("error: the daemon queued no job for rule {}", escape(rule)));
        return ExitCode::from(trigger_exit::JOB_FAILED);
    }
    let deadline = timeout.map(|timeout| tokio::time::Instant::now() + timeout);
    let mut failed = false;
    for id in jobs {
        match client.finished_job(id, deadline).await {
            Ok(job) => {
                print_outcome_of(&job);
                failed |= !matches!(job.state.as_str(), "succeeded" | "skipped");
            }
            Err(err @ gitauto::client::WaitError::TimedOut { .. }) => {
                say(format_args!("error: {}", escape(&err.to_string())));
                return ExitCode::from(trigger_exit::TIMED_OUT);
            }
            Err(err) => return not_triggered(err.into()),
        }
    }
    if failed { ExitCode::from(trigger_exit::JOB_FAILED) } else { ExitCode::SUCCESS }
}

/// A step's bill, on a line of its own under the step, when its plugin ran; then the
/// component it ran and who signed it, when recorded.
fn print_bill(step: &gitauto::queue::StepView, indent: &str) {
    if let Some(bill) = &step.bill {
        println!("{indent}cost {}", bill.summary());
    }
    if let Some(digest) = &step.plugin_digest {
        let signer = step.plugin_signer.as_deref().map(|s| format!(", signed by {}", escape(s))).unwrap_or_default();
        println!("{indent}plugin sha256:{}{signer}", escape(digest));
    }
}

/// A finished job as `trigger --wait` shows it: its outcome, each step's summary and
/// output, and its log.
fn print_outcome_of(job: &gitauto::queue::JobView) {
    let summary = job.summary.as_deref().map(|s| format!(": {}", escape(s))).unwrap_or_default();
    println!("job {} (rule {}) {}{summary}", escape(&job.id), escape(&job.rule), escape(&job.state));
    for step in &job.steps {
        let plugin = if step.plugin == step.name { String::new() } else { format!(" ({})", escape(&step.plugin)) };
        println!("  step {}{plugin} {}: {}", escape(&step.name), step.status, escape(&step.summary));
        print_bill(step, "    ");
        if !step.output.is_null() {
            for line in serde_json::to_string_pretty(&step.output).unwrap_or_default().lines() {
                println!("    {}", escape(line));
            }
        }
    }
    for line in &job.logs {
        let step = line.step.as_deref().map(|s| format!("[{}] ", escape(s))).unwrap_or_default();
        println!("  log {step}{} {}", escape(&line.level), escape(&line.message));
    }
}

/// Each plugin taken from a registry or URL or signed, read from the plugin store or its
/// file and checked, without the network.
async fn plugin_components(
    config: &Config,
) -> anyhow::Result<Vec<(gitauto::config::PluginSpec, anyhow::Result<gitauto::plugin_source::Component>)>> {
    let specs: Vec<_> = config
        .plugins
        .values()
        .filter(|spec| spec.verify.is_some() || matches!(spec.wasm, gitauto::config::WasmSource::Remote(_)))
        .cloned()
        .collect();
    tokio::task::spawn_blocking(move || {
        specs
            .into_iter()
            .map(|spec| {
                let component = gitauto::plugin_source::read(&spec);
                (spec, component)
            })
            .collect()
    })
    .await
    .context("reading plugins")
}

/// `plugin NAME: sha256:HEX SOURCE[, signed by minisign KEYID (KEY SOURCE)]`.
fn describe_component(spec: &gitauto::config::PluginSpec, component: &gitauto::plugin_source::Component) -> String {
    let signer = component.signer.as_ref().map(|signer| format!(", signed by {signer}")).unwrap_or_default();
    format!("plugin {}: sha256:{} {}{signer}", spec.name, hex::encode(component.digest), spec.wasm)
}

/// `key=value` (text) and `key:=JSON` parameters as a JSON object.
fn parse_params(params: &[String]) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut map = serde_json::Map::new();
    for param in params {
        // The first `=` ends the name; `:=` before it marks JSON.
        let Some((name, text)) = param.split_once('=') else {
            anyhow::bail!("`{param}`: parameters are `key=value` or `key:=JSON`");
        };
        let (key, value) = match name.strip_suffix(':') {
            Some(key) => {
                let value = serde_json::from_str(text)
                    .with_context(|| format!("`{param}`: the value after `:=` is not JSON"))?;
                (key, value)
            }
            None => (name, serde_json::Value::String(text.to_owned())),
        };
        anyhow::ensure!(!key.is_empty(), "`{param}`: the parameter has no name");
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

/// Prints a step's outcome; fails unless it succeeded or skipped.
fn print_outcome(outcome: &gitauto::runtime::StepOutcome) -> ExitCode {
    use gitauto::runtime::{StepOutcome, StepStatus};
    match outcome {
        StepOutcome::Done { status, summary, output } => {
            println!("{status}: {}", escape(summary));
            let output: serde_json::Value = serde_json::from_str(output).unwrap_or(serde_json::Value::Null);
            if !output.is_null() {
                print!("output: ");
                print_json(&output);
            }
            if *status == StepStatus::Failure { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        StepOutcome::Error { kind, message } => {
            println!("error ({kind:?}): {}", escape(message));
            ExitCode::FAILURE
        }
        StepOutcome::Trapped { reason } => {
            println!("trapped: {}", escape(reason));
            ExitCode::FAILURE
        }
    }
}

/// Prints what `gitauto run` found; fails when a job did not succeed.
fn print_run(report: &gitauto::local::Report) -> ExitCode {
    use gitauto::ingest::Outcome;
    let outcome = match &report.outcome {
        Outcome::Queued => "queued".to_owned(),
        Outcome::Ping => "ping".to_owned(),
        other => format!("{}: {}", other.verdict().as_str(), other.reason().unwrap_or_default()),
    };
    println!(
        "source {} ({} event): delivery {} {}",
        escape(&report.source),
        escape(&report.forge_event),
        escape(&report.delivery),
        escape(&outcome)
    );
    for event in report.explain.as_array().into_iter().flatten() {
        if let Some(git_ref) = event["git_ref"].as_str() {
            println!("{}:", escape(git_ref));
        }
        for verdict in event["rules"].as_array().into_iter().flatten() {
            let rule = text(&verdict["rule"]);
            if verdict["matched"] == true {
                let note = verdict["note"].as_str().map(|n| format!(" ({})", escape(n))).unwrap_or_default();
                println!("  rule {rule}: matched{note}");
            } else {
                println!("  rule {rule}: {}", text(&verdict["reason"]));
            }
        }
    }
    let mut ok = !matches!(report.outcome, Outcome::Rejected(_) | Outcome::Invalid(_));
    for job in &report.jobs {
        println!(
            "job {} (rule {}): {} — {}",
            escape(&job.id),
            escape(&job.rule),
            escape(&job.state),
            escape(job.summary.as_deref().unwrap_or(""))
        );
        for step in &job.steps {
            println!("  {:<28} {:<8} {}", escape(&step.name), step.status, escape(&step.summary));
            print_bill(step, "    ");
        }
        for line in &job.logs {
            let step = line.step.as_deref().map(|s| format!("[{}] ", escape(s))).unwrap_or_default();
            println!("    {step}{} {}", escape(&line.level), escape(&line.message));
        }
        ok &= matches!(job.state.as_str(), "succeeded" | "skipped");
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|err| anyhow::anyhow!("{err}\n{} problem(s) in the config", err.problems().len()))
}

/// A JSON string as printable text (empty for anything else): everything printed from an
/// answer may come from a plugin or a payload, so it is escaped for the terminal.
fn text(value: &serde_json::Value) -> Cow<'_, str> {
    escape(value.as_str().unwrap_or(""))
}

/// Pretty JSON, each line escaped (JSON escapes C0 controls but not C1 or bidi overrides).
fn print_json(value: &serde_json::Value) {
    for line in serde_json::to_string_pretty(value).unwrap_or_default().lines() {
        println!("{}", escape(line));
    }
}

fn print_jobs(jobs: &serde_json::Value) {
    println!(
        "{:>6}  {:<10} {:<24} {:<28} {:<24} {:>3}  {:<24} SUMMARY",
        "ID", "STATE", "RULE", "REPOSITORY", "REF", "RUN", "CREATED"
    );
    for job in jobs.as_array().into_iter().flatten() {
        println!(
            "{:>6}  {:<10} {:<24} {:<28} {:<24} {:>3}  {:<24} {}",
            text(&job["id"]),
            text(&job["state"]),
            text(&job["rule"]),
            text(&job["repo"]),
            text(&job["git_ref"]),
            job["attempts"],
            text(&job["created_at"]),
            text(&job["summary"])
        );
    }
}

fn print_nodes(answer: &serde_json::Value) {
    print!("{}", nodes_table(answer));
}

/// `gitauto nodes`'s table of an `/api/nodes` answer, with a footer when configs differ.
fn nodes_table(answer: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<24} {:<6} {:>7}  {:<24} {:<24} {:<13} VERSION\n",
        "NODE", "LIVE", "WORKERS", "STARTED", "HEARTBEAT", "CONFIG"
    );
    for node in answer["nodes"].as_array().into_iter().flatten() {
        let this = if node["name"] == answer["this"] { " (this daemon)" } else { "" };
        let config = match (node["config"].as_str(), node["config_differs"] == true) {
            (Some(config), true) => format!("{}*", escape(config)),
            (Some(config), false) => escape(config).into_owned(),
            (None, _) => "unknown".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:>7}  {:<24} {:<24} {config:<13} {}{this}",
            text(&node["name"]),
            if node["live"] == true { "yes" } else { "no" },
            node["workers"],
            text(&node["started_at"]),
            text(&node["heartbeat_at"]),
            text(&node["version"]),
        );
    }
    match answer["configs_differ"].as_u64() {
        Some(0) | None => {}
        Some(n) => {
            let _ = writeln!(out, "\n* {n} live node(s) run a config that differs from the one most live nodes run");
        }
    }
    out
}

fn print_rules(rules: &serde_json::Value) {
    println!("{:<32} {:<7} {:>11} {:>8} {:>7} {:>7}", "RULE", "STATE", "CONCURRENCY", "PRIORITY", "QUEUED", "RUNNING");
    for rule in rules.as_array().into_iter().flatten() {
        let state = if rule["paused"] == true { "paused" } else { "active" };
        let concurrency = rule["concurrency"].as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
        let gone = if rule["in_config"] == false { " (no longer in the config)" } else { "" };
        println!(
            "{:<32} {state:<7} {concurrency:>11} {:>8} {:>7} {:>7}{gone}",
            text(&rule["name"]),
            rule["priority"],
            rule["queued"],
            rule["running"],
        );
    }
}

fn print_job(job: &gitauto::queue::JobView) {
    let or_empty = |value: &Option<String>| escape(value.as_deref().unwrap_or("")).into_owned();
    println!("job {}  {}", escape(&job.id), escape(&job.state));
    println!("  rule       {}", escape(&job.rule));
    println!("  repository {} {}", escape(&job.repo), or_empty(&job.git_ref));
    println!("  attempts   {} of {}", job.attempts, job.max_attempts);
    if job.node.is_some() || job.ran_on.is_some() {
        let meant_for = escape(job.node.as_deref().unwrap_or("any node"));
        println!("  node       for {meant_for}, ran on {}", escape(job.ran_on.as_deref().unwrap_or("none yet")));
    }
    println!("  created    {}", escape(&job.created_at));
    if let Some(finished) = &job.finished_at {
        println!("  finished   {}", escape(finished));
    }
    let deliveries: Vec<Cow<'_, str>> = job.deliveries.iter().map(|d| escape(d)).collect();
    println!("  deliveries {}", deliveries.join(", "));
    if let Some(summary) = &job.summary {
        println!("  summary    {}", escape(summary));
    }
    println!("steps:");
    for step in &job.steps {
        println!(
            "  {:<20} {:<16} {:<8} {:>6} ms  {}",
            escape(&step.name),
            escape(&step.plugin),
            step.status,
            step.duration_ms,
            escape(&step.summary)
        );
        print_bill(step, "    ");
    }
    println!("log:");
    for line in &job.logs {
        let step = line.step.as_deref().map(|s| format!("[{}] ", escape(s))).unwrap_or_default();
        println!("  {} {step}{} {}", escape(&line.at), escape(&line.level), escape(&line.message));
    }
}

#[cfg(test)]
mod tests {
    use super::{nodes_table, parse_params};
    use serde_json::json;

    #[test]
    fn nodes_show_their_config_and_mark_the_one_that_differs() {
        let node = |name: &str, config: Option<&str>, differs: bool| {
            json!({"name": name, "live": true, "workers": 2, "started_at": "s", "heartbeat_at": "h", "version": "1.0.0",
                   "config": config, "config_differs": differs})
        };
        let answer = json!({"this": "a", "configs_differ": 1, "nodes": [
            node("a", Some("0123456789ab"), false), node("b", Some("ba9876543210"), true), node("c", None, false)]});
        let table = nodes_table(&answer);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains(" CONFIG ") && lines[0].ends_with("VERSION"), "{table}");
        assert!(lines[1].contains(" 0123456789ab  ") && lines[1].ends_with("1.0.0 (this daemon)"), "{table}");
        assert!(lines[2].contains(" ba9876543210* "), "{table}");
        assert!(lines[3].contains(" unknown "), "{table}");
        assert_eq!(lines[5], "* 1 live node(s) run a config that differs from the one most live nodes run", "{table}");
        let agreeing = json!({"this": "a", "configs_differ": 0, "nodes": [node("a", Some("0123456789ab"), false)]});
        let table = nodes_table(&agreeing);
        assert_eq!(table.lines().count(), 2, "no footer when all agree: {table}");
        assert!(!table.contains('*'), "{table}");
    }

    #[test]
    fn trigger_parameters_are_text_or_json() {
        let params = ["course=8.01r", "members:=[\"ann\", \"bob\"]", "read_only:=true", "note=a:=b"].map(String::from);
        let parsed = parse_params(&params).unwrap();
        assert_eq!(
            serde_json::Value::Object(parsed),
            json!({"course": "8.01r", "members": ["ann", "bob"], "read_only": true, "note": "a:=b"})
        );
        assert!(parse_params(&["course".into()]).unwrap_err().to_string().contains("`key=value` or `key:=JSON`"));
        assert!(parse_params(&["n:=nope".into()]).unwrap_err().to_string().contains("not JSON"));
        assert!(parse_params(&["=x".into()]).unwrap_err().to_string().contains("no name"));
    }
}
