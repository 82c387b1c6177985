//! Plugins from registries and URLs, pinned and signed (issue 25): a real OCI registry
//! (Debian's `docker-registry`), a download site on loopback, signatures made by the real
//! `minisign`, and a real daemon that fetches, checks, runs and records each component.

use gitauto::plugin_source::{SIGNATURE_LAYER, WASM_LAYER};
use gitauto_tests::debian::ensure_debian_package;
use gitauto_tests::file_server::FileServer;
use gitauto_tests::registry::TestRegistry;
use gitauto_tests::tools::run_ok;
use gitauto_tests::{TestDaemon, github_source, push_payload, step, wait_for};
use serde_json::Value;
use sha2::Digest as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The component pushed and served: the test guest that succeeds doing nothing.
fn wasm() -> Vec<u8> {
    std::fs::read(env!("GITAUTO_GUEST_EMPTY")).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A config whose push rule runs `steps` with `plugins` defined.
fn config(plugins: &str, steps: &str) -> String {
    format!(
        r#"
[server]
workers = 1

{source}
{plugins}

[plugins.notify]
wasm = "builtin:notify"

[[rules]]
name = "remote"
on = "push"
steps = [{steps}]
"#,
        source = github_source(),
    )
}

/// Runs the push rule once and returns its finished job.
async fn run(daemon: &TestDaemon) -> Value {
    let payload = push_payload(
        "acme",
        "widgets",
        "refs/heads/main",
        &"1".repeat(40),
        &"2".repeat(40),
        "https://example.invalid/w.git",
    );
    daemon.run_github("push", &payload).await
}

/// Writes `config` (and `files`) to a fresh directory and prepares a daemon there; the
/// error it stops with, as `main` prints it.
async fn refused(config: &str, files: &[(&str, &[u8])]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    std::fs::write(dir.path().join("gitauto.toml"), config).unwrap();
    refused_in(dir.path()).await
}

/// The error a daemon prepared on the `gitauto.toml` in `dir` stops with.
async fn refused_in(dir: &Path) -> String {
    let config = gitauto::config::Config::load(&dir.join("gitauto.toml")).unwrap_or_else(|err| panic!("{err}"));
    match gitauto::daemon::Daemon::prepare(config).await {
        Ok(_) => panic!("the daemon started"),
        Err(err) => format!("{err:#}"),
    }
}

/// A minisign key pair made by the real tool: (public key file's text, secret key path).
fn minisign_key(dir: &Path, name: &str) -> (String, std::path::PathBuf) {
    let minisign = ensure_debian_package("minisign", "minisign");
    let (public, secret) = (dir.join(format!("{name}.pub")), dir.join(format!("{name}.key")));
    run_ok(Command::new(minisign).args(["-G", "-W", "-p"]).arg(&public).arg("-s").arg(&secret), "minisign -G");
    (std::fs::read_to_string(&public).unwrap(), secret)
}

/// Signs `bytes` with the secret key at `key`, with `comment` trusted; the `.minisig` text.
fn minisign_sign(key: &Path, bytes: &[u8], comment: &str) -> String {
    let minisign = ensure_debian_package("minisign", "minisign");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugin.wasm");
    std::fs::write(&file, bytes).unwrap();
    run_ok(
        Command::new(minisign).arg("-S").arg("-s").arg(key).arg("-m").arg(&file).args(["-t", comment]),
        "minisign -S",
    );
    std::fs::read_to_string(dir.path().join("plugin.wasm.minisig")).unwrap()
}

/// The key id minisign prints in a public key file's comment.
fn key_id(public: &str) -> String {
    public.lines().next().unwrap().rsplit(' ').next().unwrap().to_owned()
}

#[tokio::test]
async fn an_oci_plugin_runs_in_a_job_and_each_step_records_its_components_digest() {
    let registry = TestRegistry::start().await;
    let wasm = wasm();
    let digest = registry.push_artifact("acme/empty", "1.0.0", &[(WASM_LAYER, &wasm)]).await;
    let reference = format!("oci://{}/acme/empty:1.0.0@{digest}", registry.host);
    let plugins = format!("[plugins.remote]\nwasm = \"{reference}\"\n");
    let daemon =
        TestDaemon::start(&config(&plugins, r#"{ plugin = "remote" }, { plugin = "notify", if = "false" }"#)).await;

    let job = run(&daemon).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let remote = step(&job, "remote");
    assert_eq!(remote["summary"], "nothing to do");
    assert_eq!(remote["plugin_digest"], sha256(&wasm), "the component's digest, not the manifest's");
    assert_eq!(remote["plugin_signer"], Value::Null);
    let builtin = gitauto::builtin::get("notify").unwrap();
    assert_eq!(step(&job, "notify")["plugin_digest"], sha256(builtin), "a built-in plugin's digest too");

    // Kept in the store by content, the manifest beside the component.
    let store = daemon.dir.path().join(".gitauto/plugins/sha256");
    assert_eq!(std::fs::read(store.join(sha256(&wasm))).unwrap(), wasm);
    assert!(store.join(digest.trim_start_matches("sha256:")).is_file());

    // The job page shows the digest on the plugin's cell.
    let page = reqwest::get(format!("{}/jobs/{}", daemon.url, job["id"].as_str().unwrap())).await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("title=\"sha256:{}\nnot signed\"", sha256(&wasm))), "{page}");

    // A reload whose plugin cannot be fetched is refused, naming it; the running one stays.
    let path = daemon.dir.path().join("gitauto.toml");
    let unknown = format!("sha256:{}", "e".repeat(64));
    std::fs::write(&path, std::fs::read_to_string(&path).unwrap().replace(&digest, &unknown)).unwrap();
    let status = wait_for("the reload to fail", Duration::from_secs(30), || async {
        let (_, status) = daemon.get("/api/config").await;
        status["last_error"].is_string().then_some(status)
    })
    .await;
    let err = status["last_error"].as_str().unwrap();
    assert!(
        err.contains(&format!("plugin `remote`: fetching oci://{}/acme/empty:1.0.0@{unknown}", registry.host)),
        "{err}"
    );
    assert_eq!(status["generation"], 1);
    assert_eq!(run(&daemon).await["state"], "succeeded");
    daemon.stop().await;
    registry.stop().await;
}

#[tokio::test]
async fn a_wrong_pin_or_content_the_registry_changed_stops_the_start_naming_the_plugin() {
    let registry = TestRegistry::start().await;
    let wasm = wasm();
    let digest = registry.push_artifact("acme/empty", "1.0.0", &[(WASM_LAYER, &wasm)]).await;
    let at = |digest: &str| {
        config(
            &format!("[plugins.remote]\nwasm = \"oci://{}/acme/empty:1.0.0@{digest}\"\n", registry.host),
            r#"{ plugin = "remote" }"#,
        )
    };

    // A digest the registry does not have.
    let unknown = format!("sha256:{}", "0".repeat(64));
    let err = refused(&at(&unknown), &[]).await;
    let url = format!("http://{}/v2/acme/empty/manifests/{unknown}", registry.host);
    assert!(
        err.contains(&format!("plugin `remote`: fetching oci://{}/acme/empty:1.0.0@{unknown}", registry.host)),
        "{err}"
    );
    assert!(err.contains(&format!("GET {url}: the server answered 404 Not Found")), "{err}");

    // The registry serves other bytes for the component: refused, not stored.
    let layer = registry.blob_file(&format!("sha256:{}", sha256(&wasm)));
    let mut changed = wasm.clone();
    *changed.last_mut().unwrap() ^= 1;
    std::fs::write(&layer, &changed).unwrap();
    let err = refused(&at(&digest), &[]).await;
    assert!(
        err.contains(&format!(
            "blob sha256:{}: the registry served {} bytes whose digest is sha256:{}",
            sha256(&wasm),
            wasm.len(),
            sha256(&changed)
        )),
        "{err}"
    );

    // ... or another manifest under the pinned digest.
    let manifest = registry.blob_file(&digest);
    let mut other = std::fs::read(&manifest).unwrap();
    other.push(b'\n');
    std::fs::write(&manifest, &other).unwrap();
    let err = refused(&at(&digest), &[]).await;
    assert!(
        err.contains(&format!(
            "the registry served a manifest whose digest is sha256:{}, not the pinned {digest}",
            sha256(&other)
        )),
        "{err}"
    );
    registry.stop().await;
}

#[tokio::test]
async fn a_pulled_plugin_starts_and_runs_with_the_registry_stopped_and_a_changed_copy_is_refused() {
    let registry = TestRegistry::start().await;
    let wasm = wasm();
    let digest = registry.push_artifact("acme/empty", "2", &[(WASM_LAYER, &wasm)]).await;
    let text = config(
        &format!("[plugins.remote]\nwasm = \"oci://{}/acme/empty:2@{digest}\"\n", registry.host),
        r#"{ plugin = "remote" }"#,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gitauto.toml"), &text).unwrap();
    // What `gitauto plugin pull` does.
    let config = gitauto::config::Config::load(&dir.path().join("gitauto.toml")).unwrap();
    let specs: Vec<_> = config.plugins.values().cloned().collect();
    gitauto::plugin_source::fetch(&specs).await.unwrap();
    registry.stop().await;

    let daemon = TestDaemon::start_in(dir).await;
    let job = run(&daemon).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(step(&job, "remote")["plugin_digest"], sha256(&wasm));
    let dir = daemon.stop_keeping_dir().await;

    // A changed copy in the store is not run: with the registry gone, nothing starts.
    let stored = dir.path().join(format!(".gitauto/plugins/sha256/{}", sha256(&wasm)));
    let mut changed = wasm.clone();
    changed[100] ^= 1;
    std::fs::write(&stored, &changed).unwrap();
    let spec = config.plugins["remote"].clone();
    let err = format!("{:#}", gitauto::plugin_source::read(&spec).unwrap_err());
    assert!(err.contains(&format!("{} was changed after it was fetched", stored.display())), "{err}");
    let err = refused_in(dir.path()).await;
    assert!(err.contains("plugin `remote`: fetching oci://"), "{err}");
}

#[tokio::test]
async fn signed_plugins_are_verified_with_the_real_minisign_and_their_signer_recorded() {
    let keys = tempfile::tempdir().unwrap();
    let (public, secret) = minisign_key(keys.path(), "minisign");
    let id = key_id(&public);
    let wasm = wasm();
    let signature = minisign_sign(&secret, &wasm, "gitauto test build 7");

    // An https-style source (a loopback download site) with its `.minisig` beside it,
    let site = FileServer::start().await;
    site.put("/empty.wasm", &wasm);
    site.put("/empty.wasm.minisig", signature.as_bytes());
    // and an OCI artifact with the signature as a layer of its manifest.
    let registry = TestRegistry::start().await;
    let digest = registry
        .push_artifact("acme/signed", "1", &[(WASM_LAYER, &wasm), (SIGNATURE_LAYER, signature.as_bytes())])
        .await;
    let plugins = format!(
        r#"
[plugins.downloaded]
wasm = "{site}/empty.wasm"
sha256 = "{sum}"
verify = {{ key = "file:minisign.pub" }}

[plugins.pulled]
wasm = "oci://{registry}/acme/signed:1@{digest}"
verify = {{ key = "{inline}" }}
"#,
        site = site.url,
        sum = sha256(&wasm),
        registry = registry.host,
        inline = public.lines().nth(1).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("minisign.pub"), &public).unwrap();
    std::fs::write(
        dir.path().join("gitauto.toml"),
        config(&plugins, r#"{ plugin = "downloaded" }, { plugin = "pulled" }"#),
    )
    .unwrap();
    let daemon = TestDaemon::start_in(dir).await;
    assert_eq!(site.asked(), ["/empty.wasm", "/empty.wasm.minisig"]);

    let job = run(&daemon).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(step(&job, "downloaded")["plugin_signer"], format!("minisign {id} (file:minisign.pub)"));
    assert_eq!(step(&job, "pulled")["plugin_signer"], format!("minisign {id} (inline key)"));
    assert_eq!(step(&job, "pulled")["plugin_digest"], sha256(&wasm));

    // A restart fetches nothing again: both are in the store, signature included.
    let dir = daemon.stop_keeping_dir().await;
    registry.stop().await;
    site.remove("/empty.wasm");
    site.remove("/empty.wasm.minisig");
    let daemon = TestDaemon::start_in(dir).await;
    assert_eq!(site.asked().len(), 2, "{:?}", site.asked());
    let job = run(&daemon).await;
    assert_eq!(step(&job, "downloaded")["plugin_signer"], format!("minisign {id} (file:minisign.pub)"));
    daemon.stop().await;
}

#[tokio::test]
async fn a_bad_or_missing_signature_refuses_the_plugin_before_it_compiles() {
    let keys = tempfile::tempdir().unwrap();
    let (public, secret) = minisign_key(keys.path(), "trusted");
    let (other_public, other_secret) = minisign_key(keys.path(), "other");
    let (id, other_id) = (key_id(&public), key_id(&other_public));
    let wasm = wasm();
    let good = minisign_sign(&secret, &wasm, "release 1");
    let mut changed = wasm.clone();
    changed[200] ^= 1;
    let edited = good.replace("trusted comment: release 1", "trusted comment: release 2");
    assert_ne!(edited, good);
    let site = FileServer::start().await;
    let signed = |bytes: &[u8]| {
        config(
            &format!(
                "[plugins.signed]\nwasm = \"{}/p.wasm\"\nsha256 = \"{}\"\nverify = {{ key = \"file:trusted.pub\" }}\n",
                site.url,
                sha256(bytes)
            ),
            r#"{ plugin = "signed" }"#,
        )
    };
    let key_file: &[(&str, &[u8])] = &[("trusted.pub", public.as_bytes())];
    let signature_url = format!("{}/p.wasm.minisig", site.url);

    for (what, bytes, signature, expected) in [
        (
            "another key's signature",
            &wasm,
            Some(minisign_sign(&other_secret, &wasm, "release 1")),
            format!("signed by key {other_id}, but the trusted key is {id}"),
        ),
        (
            "a changed component with the original signature",
            &changed,
            Some(good.clone()),
            format!("the signature by key {id} does not match the content"),
        ),
        (
            "an edited trusted comment",
            &wasm,
            Some(edited),
            format!("the trusted comment's signature by key {id} does not verify"),
        ),
        (
            "no signature",
            &wasm,
            None,
            format!("GET {signature_url} (the signature): the server answered 404 Not Found"),
        ),
    ] {
        site.put("/p.wasm", bytes);
        match &signature {
            Some(text) => site.put("/p.wasm.minisig", text.as_bytes()),
            None => site.remove("/p.wasm.minisig"),
        }
        let err = refused(&signed(bytes), key_file).await;
        assert!(err.contains("plugin `signed`: fetching"), "{what}: {err}");
        assert!(err.contains(&expected), "{what}: {err}");
        if signature.is_some() {
            assert!(
                err.contains(&format!("signature {signature_url}, checked with key {id} (file:trusted.pub)")),
                "{what}: {err}"
            );
        }
    }

    // A local file whose `.minisig` is missing, and an OCI artifact without a signature layer.
    let err = refused(
        &config(
            "[plugins.local]\nwasm = \"p.wasm\"\nverify = { key = \"file:trusted.pub\" }\n",
            r#"{ plugin = "local" }"#,
        ),
        &[("trusted.pub", public.as_bytes()), ("p.wasm", &wasm)],
    )
    .await;
    assert!(
        err.contains(&format!("plugin `local`: the plugin must be signed by key {id}, and its signature")),
        "{err}"
    );
    assert!(err.contains("p.wasm.minisig cannot be read"), "{err}");
    let registry = TestRegistry::start().await;
    let digest = registry.push_artifact("acme/unsigned", "1", &[(WASM_LAYER, &wasm)]).await;
    let err = refused(
        &config(
            &format!(
                "[plugins.pulled]\nwasm = \"oci://{}/acme/unsigned:1@{digest}\"\nverify = {{ key = \"file:trusted.pub\" }}\n",
                registry.host
            ),
            r#"{ plugin = "pulled" }"#,
        ),
        key_file,
    )
    .await;
    assert!(err.contains(&format!("has no layer of type {SIGNATURE_LAYER}")), "{err}");
    registry.stop().await;
}

#[tokio::test]
async fn a_registry_that_wants_a_login_gets_the_one_in_registries() {
    let registry = TestRegistry::start_with_login("puller", "s3cret-pull").await;
    let wasm = wasm();
    let digest = registry.push_artifact("acme/private", "1", &[(WASM_LAYER, &wasm)]).await;
    let plugin = format!("[plugins.remote]\nwasm = \"oci://{}/acme/private:1@{digest}\"\n", registry.host);

    let err = refused(&config(&plugin, r#"{ plugin = "remote" }"#), &[]).await;
    let hint =
        format!("the registry asks for a user name and password: give them in [registries.\"{}\"]", registry.host);
    assert!(err.contains(&hint), "{err}");

    let login = |password: &str| {
        format!("[registries.\"{}\"]\nusername = \"puller\"\npassword = \"{password}\"\n{plugin}", registry.host)
    };
    let err = refused(&config(&login("wrong"), r#"{ plugin = "remote" }"#), &[]).await;
    assert!(err.contains("the server answered 401 Unauthorized"), "{err}");
    assert!(!err.contains("wrong"), "the password is not shown: {err}");

    // The password as a secret like any other: from a file beside the config.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("registry-password"), "s3cret-pull\n").unwrap();
    std::fs::write(
        dir.path().join("gitauto.toml"),
        config(&login("file:registry-password"), r#"{ plugin = "remote" }"#),
    )
    .unwrap();
    let daemon = TestDaemon::start_in(dir).await;
    let job = run(&daemon).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(step(&job, "remote")["plugin_digest"], sha256(&wasm));
    daemon.stop().await;
    registry.stop().await;
}
