//! A real OCI registry on loopback: Debian's `docker-registry` (distribution v2),
//! installed with `apt-get` when missing, storing in a temporary directory; and a push of
//! a wasm artifact through the distribution API with plain HTTP calls, as `oras push` or
//! `wkg oci push` would make it.

use sha2::Digest as _;
use std::path::PathBuf;
use std::time::Duration;

/// The wasm artifact's config blob media type (the CNCF wasm OCI layout).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";

/// A running registry.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`, as an `oci://` reference names it.
    pub host: String,
    /// Where it stores blobs and manifests.
    pub root: PathBuf,
    dir: tempfile::TempDir,
    child: tokio::process::Child,
    client: reqwest::Client,
    /// The user name and password every request needs, when it was started with a login.
    login: Option<(String, String)>,
}

impl TestRegistry {
    /// Starts a registry on a free loopback port and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a registry that asks every request for this user name and password (basic
    /// authentication from an htpasswd file, made with Debian's `htpasswd`).
    pub async fn start_with_login(user: &str, password: &str) -> Self {
        Self::start_with(Some((user.to_owned(), password.to_owned()))).await
    }

    async fn start_with(login: Option<(String, String)>) -> Self {
        let program =
            tokio::task::spawn_blocking(|| crate::debian::ensure_debian_package("docker-registry", "docker-registry"))
                .await
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("storage");
        // A port the kernel just gave out and took back: free for the registry to take.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {host}\n",
            root.display()
        );
        let config = match &login {
            None => config,
            Some((user, password)) => {
                let htpasswd =
                    tokio::task::spawn_blocking(|| crate::debian::ensure_debian_package("apache2-utils", "htpasswd"))
                        .await
                        .unwrap();
                let users = dir.path().join("htpasswd");
                let mut command = std::process::Command::new(htpasswd);
                command.args(["-Bbc"]).arg(&users).args([user, password]);
                crate::tools::run_ok(&mut command, "htpasswd");
                format!("{config}auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n", users.display())
            }
        };
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = tokio::process::Command::new(program)
            .arg("serve")
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry starts");
        let registry = Self { host, root, dir, child, client: reqwest::Client::new(), login };
        crate::wait_for("the registry to answer /v2/", Duration::from_secs(30), || async {
            let answer = registry.request(reqwest::Method::GET, &registry.url("/v2/")).send().await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
        registry
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// A request with the registry's login, when it has one.
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match &self.login {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// The registry's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Uploads a blob (a monolithic upload: POST, then PUT with the digest); returns its digest.
    pub async fn push_blob(&self, name: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
        let started =
            self.request(reqwest::Method::POST, &self.url(&format!("/v2/{name}/blobs/uploads/"))).send().await.unwrap();
        assert_eq!(started.status(), 202, "starting an upload: {}", self.log());
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") { location } else { self.url(&location) };
        let mut put = url::Url::parse(&location).unwrap();
        put.query_pairs_mut().append_pair("digest", &digest);
        let done = self
            .request(reqwest::Method::PUT, put.as_str())
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 201, "finishing an upload: {}", done.text().await.unwrap());
        digest
    }

    /// Pushes a wasm artifact to `name:tag`: a config blob and `layers` (media type,
    /// bytes), then the manifest; returns the manifest's digest, `sha256:HEX`.
    pub async fn push_artifact(&self, name: &str, tag: &str, layers: &[(&str, &[u8])]) -> String {
        let config = br#"{"architecture":"wasm","os":"wasip2"}"#;
        let config_digest = self.push_blob(name, config).await;
        let mut descriptors = Vec::new();
        for (media_type, bytes) in layers {
            let digest = self.push_blob(name, bytes).await;
            descriptors.push(serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()}));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/wasm",
            "config": {"mediaType": WASM_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        self.push_manifest(name, tag, "application/vnd.oci.image.manifest.v1+json", &manifest).await
    }

    /// Puts `manifest` at `name:tag`; returns its digest.
    pub async fn push_manifest(&self, name: &str, tag: &str, media_type: &str, manifest: &[u8]) -> String {
        let answer = self
            .request(reqwest::Method::PUT, &self.url(&format!("/v2/{name}/manifests/{tag}")))
            .header("content-type", media_type)
            .body(manifest.to_vec())
            .send()
            .await
            .unwrap();
        let status = answer.status();
        assert_eq!(status, 201, "pushing the manifest: {}", answer.text().await.unwrap());
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(manifest)))
    }

    /// The file the registry serves blob `digest` (`sha256:HEX`) from: a test changes it
    /// to make the registry serve other bytes under that digest.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.root.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    /// Stops the registry and waits for it to exit.
    pub async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}
