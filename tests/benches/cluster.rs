//! How a cluster of daemons on one PostgreSQL queue (a throwaway server on loopback, see
//! `gitauto::testing`) takes load, measured as a user would: `gitauto serve` processes
//! (`GITAUTO_BIN`, default the release build next to this benchmark) and `wrk` (Debian
//! package `wrk`; 32 connections in all, every request with its own `X-GitHub-Delivery`,
//! the same signed 8 KB GitHub push to a rule that matches). Cases (`GITAUTO_BENCH_CASE`,
//! a comma-separated list; default `rtt,accept,cluster,work,wake`):
//! - `rtt`: the round trip of `SELECT 1` to the server (median of 1,000);
//! - `accept`: one daemon with `workers = 0`, accepted deliveries per second;
//! - `cluster`: three such daemons, a third of the connections each, together;
//! - `work`: one daemon with 2 workers running the empty plugin, accepted/s and jobs/s;
//! - `wake`: node a accepts (`workers = 0`), node b runs (`workers = 1`); 100 deliveries
//!   one at a time, 20-200 ms apart; from a's answer to b's start of the job, p50/p99/max;
//! - `vacuum`: one daemon with 2 workers under load, pushes to 64 repositories, each push a
//!   job of its own (`coalesce = false`): a 20 s warm-up, then 100 s in 10 s slices; from
//!   20 s to 80 s another session holds a transaction open (vacuum held back); accepted/s
//!   and jobs finished/s per slice, the held/before ratio, non-2xx answers and dead rows;
//! - `vacuum-coalesce`: the same with the default rule, every push coalescing into the
//!   one queued job of its branch.
//!
//! Each load lasts `GITAUTO_BENCH_SECONDS` (default 10). Everything shares this machine's
//! cores. `cargo build --release -p gitauto && cargo bench -p gitauto-tests --bench cluster`.

#![allow(clippy::disallowed_methods, reason = "the benchmark's own threads wait; no async code runs on them")]

use gitauto::bench::{env_number, percentile, report};
use gitauto_tests::{SECRET, github_source, push_payload, sign};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 32;

/// The repositories the `vacuum` case's pushes go to.
const REPOS: usize = 64;

/// The runtime the HTTP client runs on (the benchmark itself is plain threads).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

/// GET `url`: the body, or `None` when nothing answers.
fn get(url: &str) -> Option<String> {
    runtime().block_on(async { reqwest::get(url).await.ok()?.text().await.ok() })
}

/// POSTs a signed push with delivery id `id` to `url`; the JSON answer.
fn post_push(client: &reqwest::Client, url: &str, id: &str, body: Vec<u8>) -> serde_json::Value {
    runtime().block_on(async {
        client
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", id)
            .header("x-hub-signature-256", sign(SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

/// The daemon binary under test.
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("GITAUTO_BIN") {
        return PathBuf::from(bin);
    }
    // target/release/deps/cluster-HASH -> target/release/gitauto
    let exe = std::env::current_exe().expect("the benchmark's path");
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>").join("gitauto");
    assert!(bin.is_file(), "{} is missing: `cargo build --release -p gitauto` or set GITAUTO_BIN", bin.display());
    bin
}

/// A `gitauto serve` process on a port of its own; killed when dropped.
struct Daemon {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(store: &str, node: &str, workers: usize) -> Self {
        Self::start_with(store, node, workers, "")
    }

    /// A daemon whose rule has `rule` (TOML lines) added.
    fn start_with(store: &str, node: &str, workers: usize, rule: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{data}\"\nnode = \"{node}\"\nworkers = {workers}\n\n\
             [store]\nurl = \"{store}\"\n\n{source}\n[plugins.empty]\nwasm = \"{wasm}\"\n\n\
             [[rules]]\nname = \"any\"\non = \"push\"\nsteps = [{{ plugin = \"empty\" }}]\n{rule}\n",
            data = dir.path().join("data").display(),
            source = github_source(),
            wasm = env!("GITAUTO_GUEST_EMPTY"),
        );
        let path = dir.path().join("gitauto.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("gitauto.log")).unwrap();
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting gitauto");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while get(&format!("{url}/healthz")).is_none() {
            assert!(started.elapsed() < Duration::from_secs(60), "{node} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { url, child, _dir: dir }
    }

    fn metric(&self, prefix: &str) -> f64 {
        let text = get(&format!("{}/metrics", self.url)).unwrap_or_default();
        text.lines().find_map(|line| line.strip_prefix(prefix)).and_then(|n| n.trim().parse().ok()).unwrap_or(0.0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signed 8 KB pushes to `repos` repositories (`acme/widgets`, then `acme/widgets-1`, ...),
/// and a wrk script that posts them in turn, each with a delivery id of its own.
fn wrk_script(dir: &Path, repos: usize) -> PathBuf {
    let zero = "0".repeat(40);
    let mut pushes = String::new();
    for n in 0..repos {
        let repo = if n == 0 { "widgets".to_owned() } else { format!("widgets-{n}") };
        let body = push_payload("acme", &repo, "refs/heads/main", &zero, &"1".repeat(40), "file:///x");
        let mut push: serde_json::Value = serde_json::from_slice(&body).unwrap();
        // Padded to the size of a real push with a few commits.
        let pad = 8192usize.saturating_sub(body.len() + 20);
        push["padding"] = serde_json::Value::String("x".repeat(pad));
        let body = serde_json::to_vec(&push).unwrap();
        let path = dir.join(format!("push-{repos}-{n}.json"));
        std::fs::write(&path, &body).unwrap();
        pushes.push_str(&format!("  {{\"{}\", \"{}\"}},\n", path.display(), sign(SECRET, &body)));
    }
    let script = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"X-GitHub-Event\"] = \"push\"\nlocal pushes = {{\n{pushes}}}\n\
         for i, push in ipairs(pushes) do local f = io.open(push[1], \"rb\"); push[1] = f:read(\"*a\"); f:close() end\n\
         local threads = 0\nfunction setup(thread) threads = threads + 1; thread:set(\"tid\", threads) end\nlocal n = 0\n\
         local prefix = \"\"\nfunction init(args) prefix = args[1] or \"\" end\n\
         function request()\n  n = n + 1\n  local push = pushes[n % #pushes + 1]\n\
         wrk.headers[\"X-Hub-Signature-256\"] = push[2]\n\
         wrk.headers[\"X-GitHub-Delivery\"] = string.format(\"%s-%d-%d-%d\", prefix, tid or 0, n, math.random(1, 2000000000))\n\
         return wrk.format(nil, nil, nil, push[1])\nend\n",
    );
    let path = dir.join(format!("push-{repos}.lua"));
    std::fs::write(&path, script).unwrap();
    path
}

/// `wrk` against each daemon at once (the connections split between them); requests per
/// second in all, and non-2xx answers.
fn load(daemons: &[&Daemon], seconds: usize, script: &Path) -> (f64, u64) {
    let per = CONNECTIONS / daemons.len();
    let threads = if daemons.len() == 1 { 2 } else { 1 };
    let runs: Vec<Child> = daemons
        .iter()
        .enumerate()
        .map(|(index, daemon)| {
            // Each wrk process seeds its random numbers alike: a prefix keeps the ids apart.
            Command::new("wrk")
                .args([
                    "-t",
                    threads.to_string().as_str(),
                    "-c",
                    per.to_string().as_str(),
                    "-d",
                    format!("{seconds}s").as_str(),
                    "-s",
                ])
                .arg(script)
                .arg(format!("{}/hooks/github", daemon.url))
                .arg("--")
                .arg(format!("w{index}"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("wrk runs (apt-get install wrk)")
        })
        .collect();
    let (mut rate, mut failed) = (0.0, 0);
    for run in runs {
        let out = String::from_utf8(run.wait_with_output().unwrap().stdout).unwrap();
        for line in out.lines() {
            if let Some(n) = line.trim().strip_prefix("Requests/sec:") {
                rate += n.trim().parse::<f64>().unwrap();
            }
            if let Some(n) = line.trim().strip_prefix("Non-2xx or 3xx responses:") {
                failed += n.trim().parse::<u64>().unwrap();
            }
            if line.contains("Socket errors") {
                eprintln!("  wrk: {}", line.trim());
            }
        }
    }
    (rate, failed)
}

/// Transactions committed in the database so far.
const COMMITS: &str = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()";

fn query(url: &str, sql: &str) -> i64 {
    let mut client = gitauto::queue::pg_connect::connect(url).unwrap();
    client.query_one(sql, &[]).unwrap().get(0)
}

fn rtt(url: &str) {
    let mut client = gitauto::queue::pg_connect::connect(url).unwrap();
    let mut times: Vec<Duration> = (0..1000)
        .map(|_| {
            let started = Instant::now();
            client.batch_execute("SELECT 1").unwrap();
            started.elapsed()
        })
        .collect();
    times.sort();
    report("postgres: round trip of SELECT 1, median", &format!("{:.0} µs", percentile(&times, 0.5).as_micros()), "");
}

fn accept(url: &str, nodes: usize, seconds: usize, script: &Path) {
    let daemons: Vec<Daemon> = (0..nodes).map(|n| Daemon::start(url, &format!("n{n}"), 0)).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let commits = query(url, COMMITS);
    let (rate, failed) = load(&daemons.iter().collect::<Vec<_>>(), seconds, script);
    let what = format!("postgres, {nodes} daemon(s), workers = 0: accepted/s");
    report(&what, &format!("{rate:.0}"), if nodes == 1 { "≥ 5,000" } else { "≥ 1 daemon's" });
    assert_eq!(failed, 0, "non-2xx answers");
    // The statistics reach the view within a second of each commit.
    std::thread::sleep(Duration::from_millis(1500));
    let commits = query(url, COMMITS) - commits;
    let rows = query(url, "SELECT count(*) FROM deliveries");
    report(
        &format!("postgres, {nodes} daemon(s): deliveries per commit"),
        &format!("{:.1}", rows as f64 / commits.max(1) as f64),
        "",
    );
}

fn work(url: &str, seconds: usize, script: &Path) {
    let daemon = Daemon::start(url, "n0", 2);
    let (rate, failed) = load(&[&daemon], seconds, script);
    let finished = daemon.metric("gitauto_jobs{state=\"succeeded\"} ");
    report("postgres, 1 daemon, 2 workers: accepted/s", &format!("{rate:.0}"), "");
    report("postgres, 1 daemon, 2 workers: jobs finished/s", &format!("{:.0}", finished / seconds as f64), "");
    assert_eq!(failed, 0, "non-2xx answers");
}

fn wake(url: &str) {
    let a = Daemon::start(url, "a", 0);
    let b = Daemon::start(url, "b", 1);
    let client = reqwest::Client::new();
    let mut random = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut waits = Vec::new();
    for n in 0..env_number("GITAUTO_BENCH_WAKES", 100) {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        std::thread::sleep(Duration::from_millis(20 + random % 180));
        let body =
            push_payload("acme", &format!("w{n}"), "refs/heads/main", &"0".repeat(40), &"1".repeat(40), "file:///x");
        let answer = post_push(&client, &format!("{}/hooks/github", a.url), &format!("wake-{n}-{random}"), body);
        let answered = jiff::Timestamp::now();
        let job = answer["jobs"][0].as_str().unwrap().to_owned();
        let started = loop {
            let view: serde_json::Value =
                serde_json::from_str(&get(&format!("{}/api/jobs/{job}", b.url)).unwrap()).unwrap();
            if let Some(at) = view["started_at"].as_str() {
                break at.parse::<jiff::Timestamp>().unwrap();
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        // Both clocks are this machine's; started_at has millisecond precision.
        waits.push(Duration::from_micros(started.duration_since(answered).as_micros().max(0) as u64));
    }
    waits.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    report("postgres wake-up, other node: p50", &ms(percentile(&waits, 0.5)), "");
    report("postgres wake-up, other node: p99", &ms(percentile(&waits, 0.99)), "≤ 10 ms");
    report("postgres wake-up, other node: max", &ms(*waits.last().unwrap()), "");
}

/// `coalesce`: whether the pushes coalesce into one queued job per branch, as the default
/// rule does, or each makes a job of its own (`coalesce = false`).
fn vacuum(url: &str, script: &Path, coalesce: bool) {
    let daemon = Daemon::start_with(url, "n0", 2, if coalesce { "" } else { "coalesce = false" });
    let what = if coalesce { "coalescing" } else { "a job per push" };
    // The first seconds on empty tables are faster than any later ones (the tables and
    // their indexes outgrow PostgreSQL's buffers; checkpoints start): not the baseline.
    let (_, mut failed) = load(&[&daemon], 20, script);
    println!("  after a 20 s warm-up (not counted):");
    let (mut before, mut held, mut after) = (Vec::new(), Vec::new(), Vec::new());
    let mut holder = None;
    let mut done = daemon.metric("gitauto_jobs{state=\"succeeded\"} ");
    for slice in 0..10 {
        // Slices 2 to 7: another session holds a snapshot for the minute.
        if slice == 2 {
            let url = url.to_owned();
            holder = Some(std::thread::spawn(move || {
                let mut client = gitauto::queue::pg_connect::connect(&url).unwrap();
                client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM jobs").unwrap();
                std::thread::sleep(Duration::from_secs(60));
                client.batch_execute("COMMIT").unwrap();
            }));
        }
        if slice == 8 {
            holder.take().expect("the holder").join().unwrap();
        }
        let (rate, bad) = load(&[&daemon], 10, script);
        let now = daemon.metric("gitauto_jobs{state=\"succeeded\"} ");
        let finished = (now - done) / 10.0;
        done = now;
        failed += bad;
        let dead =
            query(url, "SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables WHERE relname = 'jobs'");
        let state = if (2..8).contains(&slice) { "held" } else { "free" };
        println!(
            "  {:>3}-{:<3} s {state}: accepted/s {rate:>7.0}  jobs finished/s {finished:>6.0}  dead job rows {dead}",
            slice * 10,
            slice * 10 + 10
        );
        match slice {
            0 | 1 => before.push(rate),
            2..=7 => held.push(rate),
            _ => after.push(rate),
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    report(
        &format!("postgres, vacuum held back, {what}: accepted/s held ÷ before"),
        &format!(
            "{:.2} ({:.0} ÷ {:.0}; after: {:.0})",
            mean(&held) / mean(&before),
            mean(&held),
            mean(&before),
            mean(&after)
        ),
        "≥ 0.70",
    );
    report(&format!("postgres, vacuum held back, {what}: non-2xx answers"), &failed.to_string(), "0");
}

fn main() {
    let cases = std::env::var("GITAUTO_BENCH_CASE").unwrap_or_else(|_| "rtt,accept,cluster,work,wake".into());
    let seconds = env_number("GITAUTO_BENCH_SECONDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let script = wrk_script(dir.path(), 1);
    // Pushes to many repositories: jobs that may run side by side (one per checkout).
    let spread = wrk_script(dir.path(), REPOS);
    println!(
        "cluster: {} against {CONNECTIONS} wrk connections, {seconds} s per load, this machine's cores",
        binary().display()
    );
    for case in cases.split(',') {
        let Some(url) = gitauto::testing::database() else {
            println!("  (no PostgreSQL server could be started here; skipped)");
            return;
        };
        match case.trim() {
            "rtt" => rtt(&url),
            "accept" => accept(&url, 1, seconds, &script),
            "cluster" => accept(&url, 3, seconds, &script),
            "work" => work(&url, seconds, &script),
            "wake" => wake(&url),
            "vacuum" => vacuum(&url, &spread, false),
            "vacuum-coalesce" => vacuum(&url, &script, true),
            other => panic!("unknown case {other}"),
        }
        std::io::stdout().flush().unwrap();
    }
}
