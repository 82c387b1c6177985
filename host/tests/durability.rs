#![allow(clippy::disallowed_methods, reason = "a blocking test that waits for a child process")]

//! Crash safety of the real `gitauto` binary: bursts of signed pushes for several
//! repositories are posted while the daemon runs `fetch-update` jobs, and the daemon is
//! killed with SIGKILL in the middle of each burst, 20 times in a row. Every delivery it
//! had answered 202 must have its work run to completion, and no job that had completed
//! may run again. The counts are printed. The same proof runs on each store: the default
//! SQLite file and a PostgreSQL queue.

mod common;

use common::{Daemon, free_port, git, post_push, push_body, repository, ureq_like_get};
use std::time::{Duration, Instant};

const SECRET: &str = "durability-secret";
const REPOS: &[&str] = &["alpha", "beta", "gamma", "delta"];
/// Kill-and-restart cycles.
const CYCLES: usize = 20;
/// Pushes posted at once in each cycle's burst.
const BURST: usize = 40;
/// The daemon is killed once this many of a burst's pushes were accepted.
const KILL_AFTER: usize = 20;

#[test]
fn accepted_work_survives_sigkill_and_completed_jobs_never_run_twice() {
    survives_sigkill(None);
}

#[test]
fn accepted_work_survives_sigkill_and_completed_jobs_never_run_twice_on_postgresql() {
    let Some(url) = gitauto::testing::database() else { return };
    survives_sigkill(Some(url));
}

/// The cycles against the SQLite file in the data directory, or the PostgreSQL queue at `store`.
fn survives_sigkill(store: Option<String>) {
    let root = tempfile::tempdir().unwrap();
    let mut heads = Vec::new();
    for name in REPOS {
        heads.push(repository(root.path(), name));
    }
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = root.path().join("gitauto.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "data"
workers = 2
{store}
[sources.github]
forge = "github"
secret = "{SECRET}"
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "{repos}", git = true }}] }}
[[rules]]
name = "update"
on = "push"
repo = "acme/*"
coalesce = false
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{repos}" }} }}]
"#,
            repos = root.path().join("repos").display(),
            store = store.as_ref().map(|url| format!("[store]\nurl = \"{url}\"")).unwrap_or_default(),
        ),
    )
    .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let post = |n: usize| {
        let (name, (_, head)) = (REPOS[n % REPOS.len()], &heads[n % REPOS.len()]);
        post_push(
            client.clone(),
            format!("{base}/hooks/github"),
            SECRET,
            format!("durability-{n}"),
            push_body(name, head, n),
        )
    };

    let mut accepted = Vec::new();
    let mut in_flight_lost = 0;
    for cycle in 0..CYCLES {
        let daemon = Daemon::start(&config, &base);
        let before = accepted.len();
        let daemon = runtime.block_on(async {
            let mut burst = tokio::task::JoinSet::new();
            for n in cycle * BURST..(cycle + 1) * BURST {
                burst.spawn(post(n));
            }
            let mut daemon = Some(daemon);
            let mut answered = 0;
            while let Some(posted) = burst.join_next().await {
                match posted.unwrap() {
                    Some(id) => accepted.push(id),
                    None => in_flight_lost += 1,
                }
                answered += 1;
                if answered == KILL_AFTER {
                    // Mid-burst: the other pushes are in flight, jobs run or wait.
                    daemon.take().unwrap().kill();
                }
            }
            daemon
        });
        drop(daemon);
        eprintln!("cycle {}: {} pushes accepted before the kill", cycle + 1, accepted.len() - before);
    }
    assert!(accepted.len() >= CYCLES * KILL_AFTER / 2, "too few pushes got in: {}", accepted.len());

    let daemon = Daemon::start(&config, &base);
    let started = Instant::now();
    loop {
        let queue: serde_json::Value = serde_json::from_str(&ureq_like_get(&format!("{base}/queue")).unwrap()).unwrap();
        if queue["queue_length"] == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the queue did not drain: {queue}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(daemon);

    let mut db = Store::open(store.as_deref(), &root.path().join("data/gitauto.sqlite"));
    for id in &accepted {
        let states = db.texts(
            "SELECT j.state || ' ' || COALESCE(j.summary, '') FROM job_deliveries x JOIN deliveries d ON d.seq = x.delivery_seq
             JOIN jobs j ON j.id = x.job_id WHERE d.id = $1 AND d.verdict = 'queued'",
            &[id],
        );
        assert!(states.len() == 1 && states[0].starts_with("succeeded "), "delivery {id}: {states:?}");
    }
    // A job runs again only if it had not completed: no job has two successful attempts.
    let twice = db.texts(
        "SELECT CAST(job_id AS TEXT) FROM steps WHERE status = 'success'
         GROUP BY job_id HAVING count(DISTINCT attempt) > 1",
        &[],
    );
    assert_eq!(twice, Vec::<String>::new(), "jobs that completed and ran again");
    let rerun = db.texts("SELECT CAST(count(*) AS TEXT) FROM jobs WHERE attempts > 1", &[]).remove(0);
    println!(
        "{CYCLES} SIGKILL cycles: {} deliveries accepted, 0 lost, 0 completed jobs run twice; \
         {rerun} interrupted jobs ran again; {in_flight_lost} pushes in flight at a kill were not answered 202 (a forge sends those again)",
        accepted.len()
    );
    for (checkout, head) in &heads {
        assert_eq!(&git(checkout, &["rev-parse", "HEAD"]), head, "{}", checkout.display());
    }
}

/// Read access to the queue the daemon used, for the final counts.
enum Store {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

impl Store {
    fn open(url: Option<&str>, sqlite: &std::path::Path) -> Store {
        match url {
            Some(url) => Store::Postgres(postgres::Client::connect(url, postgres::NoTls).unwrap()),
            None => Store::Sqlite(rusqlite::Connection::open(sqlite).unwrap()),
        }
    }

    /// The first column, as text, of the rows `sql` (text parameters `$1`, `$2`, ...) selects.
    fn texts(&mut self, sql: &str, parameters: &[&str]) -> Vec<String> {
        match self {
            Store::Sqlite(db) => db
                .prepare(sql)
                .unwrap()
                .query_map(rusqlite::params_from_iter(parameters), |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
            Store::Postgres(db) => {
                let parameters: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    parameters.iter().map(|parameter| parameter as _).collect();
                db.query(sql, &parameters).unwrap().iter().map(|row| row.get(0)).collect()
            }
        }
    }
}
