//! Deliveries that never arrived: catch-up from a forge's API (a fake GitHub and GitLab
//! that list their hooks' deliveries, some of which the daemon received and some it
//! never did) and ref polling of a real bare repository whose branch moves with and
//! without deliveries.

use gitauto::config::Config;
use gitauto::ingest::{Input, Pipeline};
use gitauto::live::{Live, Snapshot};
use gitauto::queue::{DeliveryFilter, Queue};
use gitauto_tests::fake_api::FakeApi;
use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, push_payload, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The token the fake API sees; read from a file, as `credential = "file:..."` allows.
const TOKEN: &str = "test-api-token";

/// Rules that queue one job for every push (no coalescing, so each delivery has its own).
fn rules() -> &'static str {
    r#"
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = { dirs = [{ path = "/nonexistent", git = true }] }

[[rules]]
name = "every push"
on = "push"
coalesce = false
steps = [{ plugin = "fetch-update", with = { repodir = "/nonexistent" } }]
"#
}

fn payload(repo: &str, after: char) -> Vec<u8> {
    let (owner, name) = repo.split_once('/').unwrap();
    push_payload(owner, name, "refs/heads/main", &"1".repeat(40), &after.to_string().repeat(40), "file:///nowhere")
}

/// Every delivery the daemon recorded for `source`: id → the summary.
async fn deliveries(daemon: &TestDaemon) -> BTreeMap<String, Value> {
    let (status, answer) = daemon.get("/api/deliveries?limit=500").await;
    assert_eq!(status, 200, "{answer}");
    let mut all = BTreeMap::new();
    for delivery in answer["deliveries"].as_array().unwrap() {
        let id = delivery["id"].as_str().unwrap().to_owned();
        assert!(all.insert(id.clone(), delivery.clone()).is_none(), "{id} is recorded twice: {answer:#}");
    }
    all
}

/// Issue 18: the deliveries a forge sent while the daemon was down are ingested from its
/// API at start, each once; those it received (answered or not in the forge's eyes), those
/// another server answered, and other hooks' are left alone; a later pass ingests nothing.
#[tokio::test]
async fn missed_github_deliveries_are_ingested_once_at_start_and_never_again() {
    let api = FakeApi::start().await;
    api.add_repo("acme/widgets");
    api.add_repo("acme/gadgets");
    let widgets = api.add_hook("acme/widgets", "https://ci.example.com/hooks/github");
    let jenkins = api.add_hook("acme/widgets", "https://jenkins.example.com/github-webhook/");
    let gadgets = api.add_hook("acme/gadgets", "https://ci.example.com/gitauto/hooks/github/");
    let plain = format!("{}{}", github_source(), rules());
    let daemon = TestDaemon::start(&plain).await;

    // Received while the daemon ran: one GitHub saw answered, one it gave up waiting on.
    let mut received = Vec::new();
    for (after, status) in [('a', 202), ('b', 0)] {
        let body = payload("acme/widgets", after);
        let (code, answer, delivery) = daemon.post_as("github", "push", &body).await;
        assert_eq!(code, 202, "{answer}");
        api.add_github_delivery(widgets, &delivery, "push", status, serde_json::from_slice(&body).unwrap());
        received.push(delivery);
    }
    // Sent while it was down (one retried by hand, failing again), or answered elsewhere.
    let push = |repo: &str, after: char| serde_json::from_slice::<Value>(&payload(repo, after)).unwrap();
    let missed = ["5a7f0b3e-0000-4000-8000-000000000001", "5a7f0b3e-0000-4000-8000-000000000002"];
    api.add_github_delivery(widgets, missed[0], "push", 0, push("acme/widgets", 'c'));
    api.add_github_delivery(widgets, "5a7f0b3e-0000-4000-8000-00000000000e", "push", 200, push("acme/widgets", 'e'));
    api.add_github_delivery(widgets, missed[1], "push", 503, push("acme/widgets", 'd'));
    let redelivered = api.add_github_delivery(widgets, missed[0], "push", 502, push("acme/widgets", 'c'));
    api.add_github_delivery(jenkins, "5a7f0b3e-0000-4000-8000-00000000000f", "push", 0, push("acme/widgets", 'f'));
    let on_gadgets = "5a7f0b3e-0000-4000-8000-000000000003";
    api.add_github_delivery(gadgets, on_gadgets, "push", 0, push("acme/gadgets", '9'));
    // Refused with a 401 (a hook with a wrong secret): the API's copy is not verified, so it
    // must never come back through it.
    let refused = "5a7f0b3e-0000-4000-8000-0000000000f1";
    api.add_github_delivery(widgets, refused, "push", 401, push("acme/widgets", '8'));

    let token = daemon.dir.path().join("github-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let with_catch_up = format!(
        "{source}catch_up = {{ api_url = \"{api}\", credential = \"file:{token}\", \
         repos = [\"acme/widgets\", \"acme/private\", \"acme/gadgets\"], every = \"1s\" }}\n{rules}",
        source = github_source(),
        api = api.url,
        token = token.display(),
        rules = rules()
    );
    let daemon = daemon.restart(&with_catch_up).await;

    // Three passes have begun: the first two have ended.
    let hooks_listed = |n: usize| {
        let api = api.clone();
        async move {
            let lines = api.with(|s| s.requests.iter().map(|r| r.line()).collect::<Vec<_>>());
            (lines.iter().filter(|l| *l == "GET /repos/acme/gadgets/hooks?per_page=100").count() >= n).then_some(())
        }
    };
    wait_for("three catch-up passes", Duration::from_secs(30), || hooks_listed(3)).await;
    let recorded = deliveries(&daemon).await;
    assert!(!recorded.contains_key(refused), "a refused delivery is not caught up: {recorded:#?}");
    let caught_up: Vec<&str> = [missed[0], missed[1], on_gadgets].into();
    let mut expected: Vec<&str> = received.iter().map(String::as_str).chain(caught_up.iter().copied()).collect();
    expected.sort_unstable();
    assert_eq!(recorded.keys().map(String::as_str).collect::<Vec<_>>(), expected, "{recorded:#?}");
    for id in &caught_up {
        let delivery = &recorded[*id];
        assert_eq!(delivery["verdict"], "queued", "{delivery:#}");
        assert_eq!(delivery["jobs"].as_array().map(Vec::len), Some(1), "{delivery:#}");
        assert_eq!(delivery["arrived"], "catch-up", "{delivery:#}");
    }
    for id in &received {
        assert_eq!(recorded[id]["arrived"], "webhook");
    }
    let (_, jobs) = daemon.get("/api/jobs?limit=100").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 5, "one job per push, none twice: {jobs:#}");

    let requests = api.take();
    let details: Vec<&str> =
        requests.iter().map(|r| r.path.as_str()).filter(|path| path.contains("/deliveries/")).collect();
    let detail = |repo: &str, hook: u64, index: usize| {
        let id = api.with(|s| s.deliveries[&hook][index]["id"].as_u64().unwrap());
        format!("/repos/{repo}/hooks/{hook}/deliveries/{id}")
    };
    assert_eq!(
        details,
        [
            detail("acme/widgets", widgets, 4),
            format!("/repos/acme/widgets/hooks/{widgets}/deliveries/{redelivered}"),
            detail("acme/gadgets", gadgets, 0),
        ],
        "each missed delivery fetched once, in the first pass, none from the other hook"
    );
    let pages = requests.iter().filter(|r| r.path.contains(&format!("/hooks/{widgets}/deliveries?"))).count();
    assert!(pages >= 4, "the first pass read three pages of two, later passes one each: {pages}");
    assert!(requests.iter().any(|r| r.path.contains("cursor=v1_")), "pages are followed by cursor");
    assert!(
        requests.iter().any(|r| r.path == "/repos/acme/private/hooks?per_page=100"),
        "a failing repository is tried"
    );
    for request in &requests {
        assert_eq!(request.authorization.as_deref(), Some(&*format!("Bearer {TOKEN}")), "{}", request.line());
        assert_eq!(request.credential_header, Some("authorization"));
    }
    daemon.stop().await;
}

/// A pipeline over a queue in `dir` for `config` (no workers: what is queued stays queued).
async fn pipeline(dir: &Path, config: &str) -> (Pipeline, Queue, Arc<Config>) {
    std::fs::write(dir.join("gitauto.toml"), config).unwrap();
    let config = Config::load(&dir.join("gitauto.toml")).unwrap_or_else(|err| panic!("{err}"));
    let queue = match gitauto_tests::on_postgres().then(gitauto::testing::database).flatten() {
        Some(url) => tokio::task::spawn_blocking(move || Queue::open_postgres(&url, "n")).await.unwrap().unwrap(),
        None => Queue::open(&dir.join("data")).unwrap(),
    };
    let (runtime, _) = gitauto::runtime::Runtime::new(&[], &dir.join("cache")).unwrap();
    let salt = queue.fingerprint_salt().await.unwrap();
    let live = Arc::new(Live::new(Snapshot { config: Arc::new(config.clone()), runtime: Arc::new(runtime) }, salt));
    let pipeline = Pipeline::new(live, queue.clone(), Arc::default());
    (pipeline, queue, Arc::new(config))
}

async fn recorded(queue: &Queue) -> Vec<gitauto::queue::DeliverySummary> {
    let mut all = queue.deliveries(DeliveryFilter { limit: 500, ..DeliveryFilter::default() }).await.unwrap();
    all.reverse();
    all
}

/// GitLab's project hook events: the missed ones are ingested once, with the delivery id
/// the webhook carried; a second pass ingests nothing; the token goes as `PRIVATE-TOKEN`.
#[tokio::test]
async fn missed_gitlab_hook_events_are_ingested_once() {
    let api = FakeApi::start().await;
    api.add_repo("acme/tools/widgets");
    let hook = api.add_hook("acme/tools/widgets", "https://ci.example.com/hooks/gitlab");
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[sources.gitlab]\nforge = \"gitlab\"\nsecret = \"{SECRET}\"\n\
         catch_up = {{ api_url = \"{}/api/v4\", credential = \"gitlab-{TOKEN}\", repos = [\"acme/tools/widgets\"] }}\n{}",
        api.url,
        rules()
    );
    let (pipeline, queue, config) = pipeline(dir.path(), &config).await;
    let source = config.source("gitlab").unwrap();
    let fixture =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads/gitlab/push.json")).unwrap();
    let data: Value = serde_json::from_slice(&fixture).unwrap();

    // One the daemon received (GitLab counted it as failed), three it never did.
    let received = "0b1e2c3d-0000-4000-8000-000000000001";
    let headers = gitauto::send::headers(source, "Push Hook", &fixture).into_iter().map(|(name, value)| {
        let value = if name.eq_ignore_ascii_case("idempotency-key") || name.eq_ignore_ascii_case("x-gitlab-event-uuid")
        {
            received.to_owned()
        } else {
            value
        };
        (name, value)
    });
    let webhook = pipeline.ingest(Input::webhook("gitlab", headers.collect(), fixture.clone().into())).await.unwrap();
    assert_eq!(webhook.delivery, received);
    api.add_gitlab_event(hook, received, "Push Hook", "500", data.clone());
    let missed = ["0b1e2c3d-0000-4000-8000-000000000002", "0b1e2c3d-0000-4000-8000-000000000003"];
    api.add_gitlab_event(hook, missed[0], "Push Hook", "internal error", data.clone());
    api.add_gitlab_event(hook, "0b1e2c3d-0000-4000-8000-000000000004", "Push Hook", "200", data.clone());
    api.add_gitlab_event(hook, missed[1], "Push Hook", "502", data.clone());
    api.add_gitlab_event(hook, missed[0], "Push Hook", "504", data.clone());

    let catch_up = source.catch_up.as_ref().unwrap();
    let marks = gitauto::catch_up::catch_up(&pipeline, source, catch_up, Default::default()).await;
    let ids: Vec<String> = recorded(&queue).await.into_iter().map(|d| d.id).collect();
    assert_eq!(ids, [received, missed[1], missed[0]], "oldest first, each once");
    for delivery in &recorded(&queue).await[1..] {
        assert_eq!((delivery.verdict.as_str(), delivery.jobs.len()), ("queued", 1), "{delivery:?}");
        assert_eq!(delivery.arrived, "catch-up");
    }
    let first = api.take();
    assert!(first.iter().filter(|r| r.path.contains("/events")).count() >= 3, "five events, two a page");
    let sent_as_gitlab_wants = |r: &gitauto_tests::fake_api::Recorded| {
        r.credential_header == Some("private-token") && r.authorization.as_deref() == Some(&*format!("gitlab-{TOKEN}"))
    };
    assert!(first.iter().all(sent_as_gitlab_wants), "{first:?}");

    gitauto::catch_up::catch_up(&pipeline, source, catch_up, marks).await;
    assert_eq!(recorded(&queue).await.len(), 3, "a second pass ingests nothing");
    let second: Vec<String> = api.take().iter().map(|r| r.line()).collect();
    assert_eq!(
        second,
        [
            "GET /api/v4/projects/acme%2Ftools%2Fwidgets/hooks?per_page=100".to_owned(),
            format!("GET /api/v4/projects/acme%2Ftools%2Fwidgets/hooks/{hook}/events?per_page=100"),
        ],
        "the second pass stops at the page it had read to"
    );
}

/// Issue 18: a branch that moves with no delivery makes one push event; a move that came
/// as a delivery makes none; an unchanged repository makes none; the first poll only looks.
#[tokio::test]
async fn a_ref_that_moved_without_a_delivery_makes_one_push_event() {
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "acme/widgets");
    let origin = root.path().join("origin");
    let config = format!(
        "{}poll = {{ repos = [\"acme/widgets\"], clone_url = \"{}/{{repo}}.git\" }}\n{}",
        github_source(),
        origin.display(),
        rules()
    );
    let (pipeline, queue, config) = pipeline(root.path(), &config).await;
    let source = config.source("github").unwrap();
    let poll = source.poll.as_ref().unwrap();
    let first = repo.head();

    gitauto::catch_up::poll::poll(&pipeline, "github", poll).await;
    assert!(recorded(&queue).await.is_empty(), "the first poll only records the refs");
    gitauto::catch_up::poll::poll(&pipeline, "github", poll).await;
    assert!(recorded(&queue).await.is_empty(), "nothing moved");

    // Pushed, and the forge's webhook never came.
    let second = repo.commit("docs/a.md", "a\n", "second");
    repo.push("main");
    gitauto::catch_up::poll::poll(&pipeline, "github", poll).await;
    let all = recorded(&queue).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0].arrived.as_str(), all[0].verdict.as_str(), all[0].jobs.len()), ("poll", "queued", 1), "{all:?}");
    let view = queue.delivery(all[0].id.clone()).await.unwrap().unwrap();
    let event = &view.events[0];
    assert_eq!(event["kind"], "push");
    assert_eq!(event["git_ref"], "refs/heads/main");
    assert_eq!((event["before"].as_str(), event["after"].as_str()), (Some(&*first), Some(&*second)));
    assert_eq!(event["repository"]["full_name"], "acme/widgets");
    gitauto::catch_up::poll::poll(&pipeline, "github", poll).await;
    assert_eq!(recorded(&queue).await.len(), 1, "the move is made an event once");

    // Pushed, and the webhook arrived: the poll that sees the move makes nothing more.
    let third = repo.commit("docs/b.md", "b\n", "third");
    repo.push("main");
    let body = push_payload("acme", "widgets", "refs/heads/main", &second, &third, "file:///nowhere");
    let headers = gitauto::send::headers(source, "push", &body);
    let webhook = pipeline.ingest(Input::webhook("github", headers.into_iter().collect(), body.into())).await.unwrap();
    gitauto::catch_up::poll::poll(&pipeline, "github", poll).await;
    let all = recorded(&queue).await;
    assert_eq!(all.iter().map(|d| d.id.as_str()).collect::<Vec<_>>()[1..], [webhook.delivery.as_str()], "{all:?}");

    // A new tag, pushed without a delivery: one event for the tag.
    gitauto_tests::git(&origin.join("acme/widgets.git"), &["tag", "v1", &third]);
    gitauto::catch_up::poll::poll(&pipeline, "github", poll).await;
    let all = recorded(&queue).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let tag = queue.delivery(all[2].id.clone()).await.unwrap().unwrap();
    assert_eq!(tag.events[0]["git_ref"], "refs/tags/v1");
    assert_eq!(tag.events[0]["before"], "0".repeat(40));
}

/// Catch-up follows the config: a reload that adds it to a source starts it, with no
/// restart.
#[tokio::test]
async fn a_reload_that_adds_catch_up_starts_it() {
    let api = FakeApi::start().await;
    api.add_repo("acme/widgets");
    let hook = api.add_hook("acme/widgets", "https://ci.example.com/hooks/github");
    let missed = "5a7f0b3e-0000-4000-8000-0000000000a1";
    api.add_github_delivery(hook, missed, "push", 0, serde_json::from_slice(&payload("acme/widgets", 'a')).unwrap());
    let daemon = TestDaemon::start(&format!("{}{}", github_source(), rules())).await;
    assert!(deliveries(&daemon).await.is_empty());

    let path = daemon.dir.path().join("gitauto.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let catch_up = format!(
        "{}catch_up = {{ api_url = \"{}\", credential = \"{TOKEN}\", repos = [\"acme/widgets\"], every = \"1h\" }}\n",
        github_source(),
        api.url
    );
    let changed = text.replace(&github_source(), &catch_up);
    std::fs::write(&path, &changed).unwrap();
    let writes = std::sync::atomic::AtomicUsize::new(0);
    wait_for("the reload", Duration::from_secs(30), || async {
        if daemon.get("/api/config").await.1["generation"].as_u64() >= Some(2) {
            return Some(());
        }
        // The watcher may have first read the file after it was written (it looks once a
        // second): change it again now and then.
        let n = writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 50 == 49 {
            std::fs::write(&path, format!("{changed}\n# written again ({n})\n")).unwrap();
        }
        None
    })
    .await;
    let caught = wait_for("the reload's catch-up pass", Duration::from_secs(30), || async {
        deliveries(&daemon).await.remove(missed)
    })
    .await;
    assert_eq!((caught["arrived"].as_str(), caught["verdict"].as_str()), (Some("catch-up"), Some("queued")));
    daemon.stop().await;
}
