#![allow(clippy::disallowed_methods, reason = "a blocking test that drives child processes")]

//! Crash consistency of the real `gitauto` binary (issue 17): cycles of random work, each
//! ended by SIGKILL at a random moment, on each store. The work mixes keys (many pushes to
//! one branch, pushes to several branches and repositories), manual triggers that coalesce
//! with pushes, a quiet period, `run_on = "every"`, a rule that does not coalesce, cancels,
//! and retries with a short backoff while a repository's origin is away. The kill lands
//! mid-burst, during a step, during a retry's backoff, or during start-up (the daemon is
//! killed again while it puts the jobs the first kill left running back in line).
//!
//! After each cycle (the daemon restarted, a last push to every checkout, the queue idle)
//! and at the end: the daemon came back every time; every accepted delivery is carried by
//! a job that ended `succeeded` with an event at least as new (following `superseded`
//! jobs to the job that took their deliveries), unless the test cancelled it; no job
//! that had succeeded ran again; every checkout is at the newest accepted commit; nothing
//! was set aside; the SQLite file passes `PRAGMA integrity_check`.
//!
//! The run is seeded: the seed is printed when a run fails, and `GITAUTO_CRASH_SEED=N`
//! makes the same choices again (the moments the kills land still depend on timing).
//! `GITAUTO_CRASH_SOAK=N` runs N cycles per store instead of the suite's ten, and prints
//! the figures docs/performance.md records.

mod common;

use common::{Daemon, free_port, git, post_push, push_to, ureq_like_get};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SECRET: &str = "crash-secret";
const TOKEN: &str = "crash-test-api-token-7f3a9c2e51d84b06";
/// Jobs running while a job of their coalescing key is queued.
const RUNNING_BESIDE_QUEUED: &str = "SELECT count(*) FROM jobs r JOIN jobs q ON q.coalesce_key = r.coalesce_key
                                     AND q.state = 'queued' WHERE r.state = 'running'";
/// Cycles per store in the normal suite.
const SUITE_CYCLES: usize = 10;
/// How long the queue may take to empty after a cycle (retries back off, a quiet period waits).
const SETTLE: Duration = Duration::from_secs(120);

/// The deployment checkouts: (repository, branch, the directory under `repos/` its rule
/// updates). Each rule has checkouts of its own, so that no two rules move one checkout.
const CHECKOUTS: &[(&str, &str, &str)] = &[
    ("alpha", "main", "main"),
    ("alpha", "dev", "dev"),
    ("beta", "main", "main"),
    ("beta", "dev", "dev"),
    ("gamma", "main", "quiet"),
    ("delta", "main", "every"),
    ("epsilon", "main", "each"),
];

#[test]
fn the_daemon_comes_back_from_every_crash_and_loses_nothing() {
    Crash::run(None);
}

#[test]
fn the_daemon_comes_back_from_every_crash_and_loses_nothing_on_postgresql() {
    let Some(url) = gitauto::testing::database() else { return };
    Crash::run(Some(url));
}

/// A deterministic random source (SplitMix64): one seed, one sequence of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.next() % (max + 1))
    }
}

/// Where a cycle's SIGKILL lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Moment {
    /// While a burst of pushes is in flight.
    Burst,
    /// While a job runs a step.
    Step,
    /// While a failed job waits out its retry's backoff.
    Backoff,
    /// While a job runs, and then again during the next start.
    StartUp,
}

const MOMENTS: [Moment; 4] = [Moment::Burst, Moment::Step, Moment::Backoff, Moment::StartUp];

/// Prints the seed when the test fails, so that the run can be replayed.
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("crash test failed with seed {0}: replay with GITAUTO_CRASH_SEED={0}", self.0);
        }
    }
}

/// One store's run: the repositories, the daemon and what the test knows was accepted.
struct Crash {
    root: tempfile::TempDir,
    config: PathBuf,
    base: String,
    store: Option<String>,
    rng: Rng,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// The repository whose origin is away (fetches fail), if one is.
    away: Option<&'static str>,
    /// Pushes and triggers made so far (delivery ids are unique per run).
    made: usize,
    /// Deliveries answered 202.
    accepted: Vec<String>,
    /// Jobs the test cancelled (or asked to stop).
    cancelled: HashSet<i64>,
    /// Jobs seen succeeded: (attempts, finished_at), which must never change.
    succeeded: HashMap<i64, (i64, i64)>,
    /// Counts for the report.
    kills: HashMap<Moment, usize>,
    start_up_kills: usize,
    /// Kills that landed while a job ran beside a queued job of its key.
    trickled: usize,
}

impl Crash {
    fn run(store: Option<String>) {
        let seed = std::env::var("GITAUTO_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        let _guard = SeedOnFailure(seed);
        let soak = std::env::var("GITAUTO_CRASH_SOAK").ok().and_then(|s| s.parse().ok());
        let cycles = soak.unwrap_or(SUITE_CYCLES);
        let which = if store.is_some() { "PostgreSQL" } else { "SQLite" };
        eprintln!("crash test on {which}: seed {seed}, {cycles} cycles");
        let mut crash = Crash::new(store, seed);
        let started = Instant::now();
        let mut daemon = crash.start();
        for cycle in 1..=cycles {
            daemon = crash.cycle(cycle, daemon);
        }
        drop(daemon);
        crash.check(cycles);
        let rerun = crash.count("SELECT count(*) FROM jobs WHERE attempts > 1 AND state = 'succeeded'");
        let superseded = crash.count("SELECT count(*) FROM jobs WHERE state = 'superseded'");
        let jobs = crash.count("SELECT count(*) FROM jobs");
        println!(
            "{which}: seed {seed}: {cycles} SIGKILL cycles in {:.0?} (kills: {} mid-burst, {} during a step, \
             {} during a backoff, {} during a step then {} more during start-up; {} while a job ran beside a queued \
             job of its key); {} deliveries accepted, 0 lost, \
             0 completed jobs run again, 0 set aside; {jobs} jobs, {superseded} superseded by a merge, \
             {rerun} succeeded after an interrupted or failed attempt; {} cancelled by the test",
            started.elapsed(),
            crash.kills.get(&Moment::Burst).unwrap_or(&0),
            crash.kills.get(&Moment::Step).unwrap_or(&0),
            crash.kills.get(&Moment::Backoff).unwrap_or(&0),
            crash.kills.get(&Moment::StartUp).unwrap_or(&0),
            crash.start_up_kills,
            crash.trickled,
            crash.accepted.len(),
            crash.cancelled.len(),
        );
    }

    fn new(store: Option<String>, seed: u64) -> Self {
        let root = tempfile::tempdir().unwrap();
        for (name, branch, dir) in CHECKOUTS {
            let origin = root.path().join("origin").join(name);
            if !origin.exists() {
                std::fs::create_dir_all(&origin).unwrap();
                git(&origin, &["init", "--quiet", "--initial-branch=main", "."]);
                std::fs::write(origin.join("file.txt"), format!("{name}\n")).unwrap();
                git(&origin, &["add", "--all"]);
                git(&origin, &["commit", "--quiet", "-m", "first"]);
                git(&origin, &["branch", "dev"]);
            }
            let checkout = root.path().join("repos").join(dir).join("acme").join(name);
            std::fs::create_dir_all(checkout.parent().unwrap()).unwrap();
            let (origin, checkout) = (origin.to_str().unwrap(), checkout.to_str().unwrap());
            git(root.path(), &["clone", "--quiet", "--branch", branch, origin, checkout]);
        }
        let port = free_port();
        let config = root.path().join("gitauto.toml");
        let repos = root.path().join("repos");
        let repos = repos.display();
        // Retries back off from 40 ms; many, because a crash counts as an attempt too.
        let retrying = "retries = 12\nretry_backoff = \"40ms\"\nretry_failures = true";
        let fetch = |name: &str, dir: &str| {
            format!("{{ name = \"{name}\", plugin = \"fetch-update\", with = {{ repodir = \"{repos}/{dir}\" }} }}")
        };
        std::fs::write(
            &config,
            format!(
                r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "data"
node = "n1"
workers = 2
api_token = "{TOKEN}"
shutdown_grace = "1s"
{store}
[sources.github]
forge = "github"
secret = "{SECRET}"
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "{repos}", git = true }}, "{origins}"] }}

# Three steps per job, so that kills land between steps as well as in them.
[[rules]]
name = "update"
on = ["push", "manual"]
repo = ["acme/alpha", "acme/beta"]
# Manual rules do not coalesce unless asked: here triggers and pushes share a key.
coalesce = true
{retrying}
steps = [{first}, {second}, {third}]

[[rules]]
name = "quiet"
on = "push"
repo = "acme/gamma"
quiet_period = "150ms"
{retrying}
steps = [{quiet}]

[[rules]]
name = "every"
on = "push"
repo = "acme/delta"
run_on = "every"
{retrying}
steps = [{every}]

[[rules]]
name = "each"
on = "push"
repo = "acme/epsilon"
coalesce = false
{retrying}
steps = [{each}]
"#,
                store = store.as_ref().map(|url| format!("[store]\nurl = \"{url}\"")).unwrap_or_default(),
                first = fetch("first", "{{ event.branch }}"),
                second = fetch("second", "{{ event.branch }}"),
                third = fetch("third", "{{ event.branch }}"),
                quiet = fetch("fetch", "quiet"),
                every = fetch("fetch", "every"),
                each = fetch("fetch", "each"),
                origins = root.path().join("origin").display(),
            ),
        )
        .unwrap();
        Crash {
            root,
            config,
            base: format!("http://127.0.0.1:{port}"),
            store,
            rng: Rng(seed),
            runtime: tokio::runtime::Runtime::new().unwrap(),
            client: reqwest::Client::new(),
            away: None,
            made: 0,
            accepted: Vec::new(),
            cancelled: HashSet::new(),
            succeeded: HashMap::new(),
            kills: HashMap::new(),
            start_up_kills: 0,
            trickled: 0,
        }
    }

    /// Starts the daemon and waits until it serves: it must come back, whatever the last
    /// kill left.
    fn start(&self) -> Daemon {
        let daemon = Daemon::spawn(&self.config);
        let started = Instant::now();
        while ureq_like_get(&format!("{}/healthz", self.base)).is_none() {
            assert!(started.elapsed() < Duration::from_secs(120), "the daemon did not come back:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(25));
        }
        daemon
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.config.with_extension("log.txt")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// One cycle: work, a kill at a random moment, a restart, a last push to every
    /// checkout, then the checks.
    fn cycle(&mut self, cycle: usize, daemon: Daemon) -> Daemon {
        let moment = MOMENTS[self.rng.below(MOMENTS.len())];
        if moment == Moment::Backoff {
            // Half the pushes go to alpha's main branch: its jobs fail and back off.
            self.send_away("alpha");
        } else if self.rng.chance(25) {
            let name = CHECKOUTS[self.rng.below(CHECKOUTS.len())].0;
            self.send_away(name);
        }
        let burst = 8 + self.rng.below(25);
        let kill_after = (moment == Moment::Burst).then(|| 1 + self.rng.below(burst));
        // Killed mid-burst, or alive: then cancels, a quiet spell, and the kill's moment.
        if let Some(daemon) = self.burst(cycle, burst, daemon, kill_after) {
            if self.rng.chance(30) {
                self.cancel_some();
            }
            if self.rng.chance(30) {
                // A quiet spell: the queue drains a little before the kill.
                std::thread::sleep(self.rng.millis(400));
            }
            match moment {
                Moment::Burst => unreachable!("killed during the burst"),
                Moment::Step | Moment::StartUp => {
                    if self.rng.chance(70) {
                        self.trickle(cycle);
                    } else {
                        self.wait_briefly("SELECT count(*) FROM jobs WHERE state = 'running'");
                    }
                    std::thread::sleep(self.rng.millis(20));
                }
                Moment::Backoff => {
                    self.wait_briefly(
                        "SELECT count(*) FROM jobs WHERE state = 'queued' AND attempts > 0 AND not_before IS NOT NULL",
                    );
                }
            }
            daemon.kill();
        }
        *self.kills.entry(moment).or_default() += 1;
        self.check_integrity();
        if self.rng.chance(50) {
            self.bring_back();
        }
        if moment == Moment::StartUp {
            // Killed again while it starts: opening the queue and putting the running jobs
            // back in line is one transaction, whatever moment the kill lands.
            for _ in 0..1 + self.rng.below(3) {
                let starting = Daemon::spawn(&self.config);
                std::thread::sleep(self.rng.millis(250));
                starting.kill();
                self.start_up_kills += 1;
                self.check_integrity();
            }
        }
        let daemon = self.start();
        self.bring_back();
        self.last_pushes(cycle);
        self.settle();
        self.check(cycle);
        daemon
    }

    /// Posts `count` pushes and manual triggers at once; kills the daemon once `kill_after`
    /// of them were answered (the daemon is gone then: `None`).
    fn burst(&mut self, cycle: usize, count: usize, daemon: Daemon, kill_after: Option<usize>) -> Option<Daemon> {
        let mut posts = Vec::new();
        for _ in 0..count {
            // Half the work goes to one branch, the rest anywhere.
            let checkout = if self.rng.chance(50) { 0 } else { self.rng.below(CHECKOUTS.len()) };
            let (name, branch, _) = CHECKOUTS[checkout];
            self.made += 1;
            if (name == "alpha" || name == "beta") && self.rng.chance(15) {
                posts.push(Post::Trigger { repo: name, branch });
                continue;
            }
            let after = self.commit(name, branch);
            let delivery = format!("c{cycle}-{}", self.made);
            posts.push(Post::Push { delivery, body: push_to(name, branch, &after, self.made) });
        }
        let (client, base) = (self.client.clone(), self.base.clone());
        let (accepted, daemon) = self.runtime.block_on(async {
            let mut running = tokio::task::JoinSet::new();
            for post in posts {
                running.spawn(post.send(client.clone(), base.clone()));
            }
            let mut daemon = Some(daemon);
            let (mut accepted, mut answered) = (Vec::new(), 0);
            while let Some(posted) = running.join_next().await {
                accepted.extend(posted.unwrap());
                answered += 1;
                if Some(answered) == kill_after {
                    daemon.take().unwrap().kill();
                }
            }
            (accepted, daemon)
        });
        self.accepted.extend(accepted);
        daemon
    }

    /// Pushes to one branch, one push at a time, until a job of its key runs while a newer
    /// event for the key is queued: the state issue 17 is about, which every path that puts
    /// the running job back in line used to fail on.
    fn trickle(&mut self, cycle: usize) {
        for _ in 0..100 {
            let (name, branch, _) = CHECKOUTS[0];
            self.made += 1;
            let after = self.commit(name, branch);
            let post = Post::Push {
                delivery: format!("c{cycle}-{}", self.made),
                body: push_to(name, branch, &after, self.made),
            };
            self.accepted.extend(self.runtime.block_on(post.send(self.client.clone(), self.base.clone())));
            if self.count(RUNNING_BESIDE_QUEUED) > 0 {
                self.trickled += 1;
                return;
            }
        }
    }

    /// A new commit on `branch` of `name`'s origin (wherever it is); its id.
    fn commit(&mut self, name: &str, branch: &str) -> String {
        let origin = self.origin(name);
        let tip = format!("refs/heads/{branch}");
        let tree = git(&origin, &["rev-parse", &format!("{tip}^{{tree}}")]);
        let commit = git(&origin, &["commit-tree", &tree, "-p", &tip, "-m", &format!("change {}", self.made)]);
        git(&origin, &["update-ref", &tip, &commit]);
        commit
    }

    fn origin(&self, name: &str) -> PathBuf {
        let origin = self.root.path().join("origin").join(name);
        if self.away == Some(name) { origin.with_extension("away") } else { origin }
    }

    /// Moves a repository's origin away: its jobs fail and retry after a backoff.
    fn send_away(&mut self, name: &'static str) {
        if self.away.is_none() {
            let origin = self.root.path().join("origin").join(name);
            std::fs::rename(&origin, origin.with_extension("away")).unwrap();
            self.away = Some(name);
        }
    }

    fn bring_back(&mut self) {
        if let Some(name) = self.away.take() {
            let origin = self.root.path().join("origin").join(name);
            std::fs::rename(origin.with_extension("away"), &origin).unwrap();
        }
    }

    /// Cancels one or two queued or running jobs through the API.
    fn cancel_some(&mut self) {
        let candidates = self.ids("SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY id");
        for _ in 0..1 + self.rng.below(2) {
            if candidates.is_empty() {
                return;
            }
            let job = candidates[self.rng.below(candidates.len())];
            let url = format!("{}/api/jobs/{job}/cancel", self.base);
            let client = self.client.clone();
            // Whatever the answer, the job counts as one the test cancelled: a cancel
            // requested while the daemon dies may or may not have been committed.
            self.runtime.block_on(async move {
                let _ = client.post(url).bearer_auth(TOKEN).send().await;
            });
            self.cancelled.insert(job);
        }
    }

    /// A last push to every checkout, each answered 202 (the daemon is up): the newest
    /// accepted commit of each is known.
    fn last_pushes(&mut self, cycle: usize) {
        for (name, branch, _) in CHECKOUTS {
            self.made += 1;
            let after = self.commit(name, branch);
            let delivery = format!("c{cycle}-last-{}", self.made);
            let post = Post::Push { delivery, body: push_to(name, branch, &after, self.made) };
            let accepted = self.runtime.block_on(post.send(self.client.clone(), self.base.clone()));
            self.accepted.push(accepted.expect("a push to a serving daemon is accepted"));
        }
    }

    /// Waits until no job is queued or running.
    fn settle(&self) {
        let started = Instant::now();
        while self.count("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')") > 0 {
            assert!(
                started.elapsed() < SETTLE,
                "the queue did not settle: {:?}\n{}",
                self.texts("SELECT CAST(id AS TEXT) || ' ' || state || ' ' || attempts || ' ' || COALESCE(summary, '') FROM jobs WHERE state IN ('queued', 'running')"),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to a few seconds for `sql` to count something (the kill comes either way).
    fn wait_briefly(&self, sql: &str) {
        let started = Instant::now();
        while self.count(sql) == 0 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The invariants, after `cycle` cycles (the daemon idle, or gone).
    fn check(&mut self, cycle: usize) {
        let at = format!("after cycle {cycle}");
        // Every accepted delivery's work was done, by the job carrying it or the one that
        // took it over, with an event at least as new. Read in two statements: the check
        // runs after every cycle, over every delivery so far.
        let mut carriers: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for row in self.texts(
            "SELECT d.id || ' ' || CAST(x.job_id AS TEXT) || ' ' || CAST(d.seq AS TEXT) FROM job_deliveries x
             JOIN deliveries d ON d.seq = x.delivery_seq WHERE d.verdict = 'queued'",
        ) {
            let parts: Vec<&str> = row.split(' ').collect();
            carriers
                .entry(parts[0].to_owned())
                .or_default()
                .push((parts[1].parse().unwrap(), parts[2].parse().unwrap()));
        }
        // id -> (state, superseded_by, the delivery it runs with)
        let mut jobs: HashMap<i64, (String, Option<i64>, i64)> = HashMap::new();
        for row in self.texts(
            "SELECT CAST(id AS TEXT) || ' ' || state || ' ' || COALESCE(CAST(superseded_by AS TEXT), '-') || ' '
                    || CAST(delivery_seq AS TEXT) FROM jobs",
        ) {
            let parts: Vec<&str> = row.split(' ').collect();
            jobs.insert(
                parts[0].parse().unwrap(),
                (parts[1].to_owned(), parts[2].parse().ok(), parts[3].parse().unwrap()),
            );
        }
        for delivery in &self.accepted {
            let carried =
                carriers.get(delivery).unwrap_or_else(|| panic!("{at}: delivery {delivery} is carried by no job"));
            for &(first, seq) in carried {
                let mut path = vec![first];
                let (state, event) = loop {
                    let job = path[path.len() - 1];
                    let (state, superseded_by, event) =
                        jobs.get(&job).unwrap_or_else(|| panic!("{at}: job {job} is gone"));
                    match superseded_by {
                        Some(next) if state == "superseded" => {
                            path.push(*next);
                            assert!(path.len() < 1000, "{at}: a cycle of superseded jobs: {path:?}");
                        }
                        _ => break (state.as_str(), *event),
                    }
                };
                let cancelled = path.iter().any(|job| self.cancelled.contains(job));
                match state {
                    "succeeded" => assert!(
                        event >= seq,
                        "{at}: delivery {delivery} (#{seq}) ended with jobs {path:?} on an older event #{event}"
                    ),
                    "cancelled" if cancelled => {}
                    _ => panic!(
                        "{at}: delivery {delivery} is carried by jobs {path:?}, the last {state}\n{}",
                        self.log_tail()
                    ),
                }
            }
        }
        // No job that had succeeded ran again.
        for row in self.texts(
            "SELECT CAST(id AS TEXT) || ' ' || CAST(attempts AS TEXT) || ' ' || CAST(finished_at AS TEXT)
             FROM jobs WHERE state = 'succeeded'",
        ) {
            let numbers: Vec<i64> = row.split(' ').map(|n| n.parse().unwrap()).collect();
            let seen = *self.succeeded.entry(numbers[0]).or_insert((numbers[1], numbers[2]));
            assert_eq!(seen, (numbers[1], numbers[2]), "{at}: job {} succeeded, then ran again", numbers[0]);
        }
        let ran_again = self.texts(
            "SELECT CAST(s.job_id AS TEXT) FROM steps s
             WHERE s.status = 'success' AND s.idx = (SELECT max(t.idx) FROM steps t WHERE t.job_id = s.job_id)
             GROUP BY s.job_id HAVING count(DISTINCT s.attempt) > 1",
        );
        assert_eq!(ran_again, Vec::<String>::new(), "{at}: jobs that completed and ran again");
        assert_eq!(self.count("SELECT count(*) FROM jobs WHERE state = 'quarantined'"), 0, "{at}: jobs set aside");
        assert_eq!(self.succeeded.len() as i64, self.count("SELECT count(*) FROM jobs WHERE state = 'succeeded'"));
        // Every checkout is at its newest accepted commit (the cycle's last push).
        for (name, branch, dir) in CHECKOUTS {
            let checkout = self.root.path().join("repos").join(dir).join("acme").join(name);
            let origin = self.origin(name);
            assert_eq!(
                git(&checkout, &["rev-parse", "HEAD"]),
                git(&origin, &["rev-parse", &format!("refs/heads/{branch}")]),
                "{at}: {}",
                checkout.display()
            );
        }
        self.check_integrity();
    }

    /// `PRAGMA integrity_check` of the SQLite file (a no-op on PostgreSQL).
    fn check_integrity(&self) {
        if self.store.is_none() {
            let path = self.root.path().join("data/gitauto.sqlite");
            if path.exists() {
                let db = rusqlite::Connection::open(&path).unwrap();
                let verdict: String = db.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
                assert_eq!(verdict, "ok", "{}", path.display());
            }
        }
    }

    /// A reader of the PostgreSQL queue at `url`: the first column, as text, of what a
    /// statement selects.
    fn postgres_reader(url: String) -> impl Fn(&str) -> Vec<String> {
        move |sql: &str| {
            let (url, sql) = (url.clone(), sql.to_owned());
            // The synchronous client runs its own runtime: keep it on a thread of its own.
            std::thread::spawn(move || {
                let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                db.query(&sql, &[]).unwrap().iter().map(|row| row.get::<_, String>(0)).collect()
            })
            .join()
            .unwrap()
        }
    }

    fn count(&self, sql: &str) -> i64 {
        self.texts(&format!("SELECT CAST(({sql}) AS TEXT)")).first().map_or(0, |n| n.parse().unwrap())
    }

    fn ids(&self, sql: &str) -> Vec<i64> {
        self.texts(&format!("SELECT CAST(id AS TEXT) FROM ({sql}) AS chosen"))
            .iter()
            .map(|id| id.parse().unwrap())
            .collect()
    }

    /// The first column of what `sql` selects, as text, read while the daemon may run.
    fn texts(&self, sql: &str) -> Vec<String> {
        match &self.store {
            None => {
                let path = self.root.path().join("data/gitauto.sqlite");
                if !path.exists() {
                    return Vec::new();
                }
                let db = rusqlite::Connection::open(&path).unwrap();
                db.busy_timeout(Duration::from_secs(10)).unwrap();
                let mut statement = match db.prepare(sql) {
                    Ok(statement) => statement,
                    // Before the first start created the tables.
                    Err(err) if err.to_string().contains("no such table") => return vec!["0".into()],
                    Err(err) => panic!("{sql}: {err}"),
                };
                statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
            }
            Some(url) => {
                let (url, sql) = (url.clone(), sql.to_owned());
                // The synchronous client runs its own runtime: keep it on a thread of its own.
                std::thread::spawn(move || {
                    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                    match db.query(&sql, &[]) {
                        Ok(rows) => rows.iter().map(|row| row.get::<_, String>(0)).collect(),
                        Err(err) if err.to_string().contains("does not exist") => vec!["0".into()],
                        Err(err) => panic!("{sql}: {err}"),
                    }
                })
                .join()
                .unwrap()
            }
        }
    }
}

/// Something the test sends the daemon.
enum Post {
    /// A signed GitHub push.
    Push { delivery: String, body: Vec<u8> },
    /// A manual trigger of rule `update` for a checkout (it coalesces with pushes to it).
    Trigger { repo: &'static str, branch: &'static str },
}

impl Post {
    /// The delivery id when it was accepted (202).
    async fn send(self, client: reqwest::Client, base: String) -> Option<String> {
        match self {
            Post::Push { delivery, body } => {
                post_push(client, format!("{base}/hooks/github"), SECRET, delivery, body).await
            }
            Post::Trigger { repo, branch } => {
                let params = json!({"rule": "update", "params": {"repo": format!("acme/{repo}"), "branch": branch}});
                let response =
                    client.post(format!("{base}/api/events")).bearer_auth(TOKEN).json(&params).send().await.ok()?;
                if response.status() != 202 {
                    return None;
                }
                let answer: Value = response.json().await.ok()?;
                answer["delivery"].as_str().map(str::to_owned)
            }
        }
    }
}

/// A node dies holding a job whose key also has a newer queued job, accepted by another
/// node: when the dead node's lease runs out (30 s), the other node's heartbeat merges the
/// job into the queued one without an error, runs it with the newer event, and goes on
/// beating. The dead node's step is held in the middle by a FIFO in place of the origin's
/// git config (opening it blocks), so the kill lands while the job runs.
#[test]
fn a_dead_nodes_job_merges_into_the_newer_queued_job_of_its_key_on_another_node() {
    let Some(url) = gitauto::testing::database() else { return };
    let root = tempfile::tempdir().unwrap();
    let (checkout, _) = common::repository(root.path(), "alpha");
    let origin = root.path().join("origin/alpha");
    let repos = root.path().join("repos");
    let mut bases = Vec::new();
    let mut configs = Vec::new();
    for node in ["a", "b"] {
        let port = free_port();
        let config = root.path().join(format!("{node}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data-{node}\"\nnode = \"{node}\"\nworkers = 1\n\
                 [store]\nurl = \"{url}\"\n[sources.github]\nforge = \"github\"\nsecret = \"{SECRET}\"\n\
                 [plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\n\
                 grants = {{ dirs = [{{ path = \"{repos}\", git = true }}, \"{origins}\"] }}\n\
                 [plugins.hold]\nwasm = \"builtin:run\"\ngrants = {{ dirs = [\"{repos}\"], commands = [\"sleep\"] }}\n\
                 [[rules]]\nname = \"update\"\non = \"push\"\nrepo = \"acme/*\"\n\
                 steps = [{{ plugin = \"hold\", if = \"event.delivery == 'held-1'\", \
                 with = {{ program = \"sleep\", args = [\"600\"], cwd = \"{repos}\" }} }}, \
                 {{ plugin = \"fetch-update\", with = {{ repodir = \"{repos}\" }} }}]\n",
                repos = repos.display(),
                origins = root.path().join("origin").display(),
            ),
        )
        .unwrap();
        bases.push(format!("http://127.0.0.1:{port}"));
        configs.push(config);
    }
    let store = Crash::postgres_reader(url);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let post = |base: &str, delivery: &str, head: &str| {
        let body = push_to("alpha", "main", head, 0);
        let url = format!("{base}/hooks/github");
        runtime.block_on(post_push(reqwest::Client::new(), url, SECRET, delivery.to_owned(), body))
    };

    // Node a takes the first push's job and holds it in its first step (a `sleep`).
    let head = git(&origin, &["rev-parse", "HEAD"]);
    let a = Daemon::start(&configs[0], &bases[0]);
    assert!(post(&bases[0], "held-1", &head).is_some());
    let started = Instant::now();
    while store("SELECT CAST(count(*) AS TEXT) FROM jobs WHERE state = 'running' AND ran_on = 'a'") != ["1"] {
        assert!(started.elapsed() < Duration::from_secs(30), "node a did not start the job");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Node b accepts a newer push for the same checkout: queued, since the key runs on a.
    let b = Daemon::start(&configs[1], &bases[1]);
    assert!(post(&bases[1], "held-2", &head).is_some());
    let ids = store("SELECT CAST(id AS TEXT) || ' ' || state FROM jobs ORDER BY id");
    let (held, queued) = match ids.as_slice() {
        [held, queued] if held.ends_with(" running") && queued.ends_with(" queued") => {
            (held.split(' ').next().unwrap().to_owned(), queued.split(' ').next().unwrap().to_owned())
        }
        other => panic!("expected a running and a queued job: {other:?}"),
    };
    a.kill();

    // b's heartbeat finds a's lease expired, merges, and runs the queued job.
    let started = Instant::now();
    while store(&format!("SELECT state FROM jobs WHERE id = {queued}")) != ["succeeded"] {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the queued job did not run: {:?}",
            store("SELECT CAST(id AS TEXT) || ' ' || state || ' ' || COALESCE(summary, '') FROM jobs")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let merged = store(&format!("SELECT state || ' ' || CAST(superseded_by AS TEXT) FROM jobs WHERE id = {held}"));
    assert_eq!(merged, [format!("superseded {queued}")]);
    let carried = store(&format!(
        "SELECT d.id FROM job_deliveries x JOIN deliveries d ON d.seq = x.delivery_seq
         WHERE x.job_id = {queued} ORDER BY d.seq"
    ));
    assert_eq!(carried, ["held-1", "held-2"], "the dead node's delivery moved to the job that ran");
    assert_eq!(store(&format!("SELECT ran_on FROM jobs WHERE id = {queued}")), ["b"]);
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), head);
    // The heartbeat goes on beating, without an error.
    let beat = || store("SELECT CAST(heartbeat_at AS TEXT) FROM nodes WHERE name = 'b'");
    let (last, started) = (beat(), Instant::now());
    while beat() == last {
        assert!(started.elapsed() < Duration::from_secs(30), "b's heartbeat stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(b);
    let log = std::fs::read_to_string(configs[1].with_extension("log.txt")).unwrap();
    assert!(!log.contains("heartbeat:") && !log.contains("duplicate key"), "{log}");
    assert!(log.contains(&format!("job {held} was running while job {queued} was queued")), "{log}");
}
