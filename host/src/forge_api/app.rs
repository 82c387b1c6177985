//! GitHub App installation tokens: the app's JWT (RS256, signed with the key the config
//! parsed), `POST /app/installations/{id}/access_tokens` limited to one repository and
//! the permissions asked for, and a cache of what was minted until five minutes before
//! it expires. Installations a call does not name are looked up once per repository.
//! Tokens stay here and in the request headers the host sends; nothing hands one out.
//!
//! Minting costs the app's rate limit, which every repository it is installed on shares,
//! so it is bounded: concurrent requests for the same token wait for one mint, and a
//! job's steps may have at most [`MAX_JOB_MINTS`] tokens minted (a plugin that revokes
//! each token it is given, forcing a new one, stops there).

use super::{ApiError, ForgeApis, Scheme};
use crate::config::Source;
use crate::config::app::App;
use crate::secret::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How far back a JWT's `iat` is set, for clocks that run behind GitHub's.
const JWT_BACKDATE: Duration = Duration::from_secs(60);
/// How long after now a JWT is valid (GitHub allows ten minutes from `iat`).
const JWT_AHEAD: Duration = Duration::from_secs(540);
/// A cached token is used only while it has at least this long to live: a step or a
/// report never starts with a token about to expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// Tokens a job's steps may have minted, all permission sets together. A job needs one
/// per permission set its credentials name, and one more each time GitHub refuses one.
pub const MAX_JOB_MINTS: u32 = 10;

/// Permissions asked for a token, as GitHub names them (`contents` -> `read`), sorted
/// so that the same set is the same cache entry whatever the order it was written in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Permissions(Vec<(String, String)>);

impl Permissions {
    /// From pairs written in code (`[("statuses", "write")]`).
    pub fn from_static(pairs: &[(&str, &str)]) -> Self {
        Self::from_pairs(pairs.iter().map(|(name, level)| ((*name).to_owned(), (*level).to_owned())))
    }

    /// From any pairs; a name given twice keeps its last level.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let map: std::collections::BTreeMap<String, String> = pairs.into_iter().collect();
        Self(map.into_iter().collect())
    }

    /// The `permissions` object of the request: none asked is `metadata: read`, the
    /// least a token can have (an empty object would give everything the app has).
    fn as_json(&self) -> Value {
        if self.0.is_empty() {
            return json!({"metadata": "read"});
        }
        Value::Object(self.0.iter().map(|(name, level)| (name.clone(), Value::String(level.clone()))).collect())
    }
}

/// What one minted token is for: the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct TokenKey {
    app: u64,
    api: String,
    installation: u64,
    repo: String,
    permissions: Permissions,
}

/// A token for a call, and whether it came from the cache.
pub(super) struct Minted {
    pub(super) token: Secret,
    pub(super) key: TokenKey,
    pub(super) cached: bool,
}

struct Cached {
    token: Secret,
    expires: SystemTime,
}

/// Every GitHub App token and installation this daemon knows, shared by the clones of
/// one [`ForgeApis`].
#[derive(Default)]
pub(super) struct Apps {
    tokens: Mutex<HashMap<TokenKey, Cached>>,
    /// One lock per token being minted: a request that finds no cached token waits here,
    /// so concurrent requests for the same token share one mint.
    minting: Mutex<HashMap<TokenKey, Arc<tokio::sync::Mutex<()>>>>,
    /// (app id, API root, `owner/name`) -> installation id, as `GET /repos/../installation` said.
    installations: Mutex<HashMap<(u64, String, String), u64>>,
}

impl Apps {
    fn cached(&self, key: &TokenKey, now: SystemTime) -> Option<Secret> {
        let tokens = self.tokens.lock().expect("the token cache is never poisoned: no code panics holding it");
        tokens.get(key).filter(|cached| cached.expires > now + REFRESH_BEFORE).map(|cached| cached.token.clone())
    }

    /// Forgets one token (GitHub refused it).
    pub(super) fn drop_token(&self, key: &TokenKey) {
        self.tokens.lock().expect("the token cache is never poisoned").remove(key);
    }

    /// Keeps `token` for `key`, dropping every token that has expired meanwhile (the
    /// cache holds at most the tokens alive, about an hour's worth).
    fn keep(&self, key: TokenKey, token: Secret, expires: SystemTime, now: SystemTime) {
        let mut tokens = self.tokens.lock().expect("the token cache is never poisoned");
        tokens.retain(|_, cached| cached.expires > now);
        tokens.insert(key, Cached { token, expires });
    }

    /// The lock that one mint of `key` holds.
    fn mint_lock(&self, key: &TokenKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut minting = self.minting.lock().expect("never poisoned");
        // Locks nobody waits on any more go, so the map stays as small as the mints in flight.
        minting.retain(|_, lock| Arc::strong_count(lock) > 1);
        minting.entry(key.clone()).or_default().clone()
    }
}

impl ForgeApis {
    /// A token for `repo` (`owner/name`) through `installation` (looked up when `None`)
    /// of `app`, limited to that repository and `permissions`: cached, or minted now,
    /// counted against `budget` when one is given (a job's [`MAX_JOB_MINTS`]).
    pub(super) async fn app_token(
        &self,
        source: &Source,
        app: &App,
        repo: &str,
        installation: Option<u64>,
        permissions: &Permissions,
        budget: Option<&AtomicU32>,
    ) -> Result<Minted, ApiError> {
        let api = &source.api.as_ref().expect("config: a source with `app` has `api`").url;
        let installation = match installation {
            Some(installation) => installation,
            None => self.installation(source, app, repo).await?,
        };
        let key = TokenKey {
            app: app.id,
            api: api.clone(),
            installation,
            // GitHub's names are case-insensitive: one repository, one entry.
            repo: repo.to_ascii_lowercase(),
            permissions: permissions.clone(),
        };
        if let Some(token) = self.apps.cached(&key, SystemTime::now()) {
            return Ok(Minted { token, key, cached: true });
        }
        let lock = self.apps.mint_lock(&key);
        let _minting = lock.lock().await;
        // Another request may have minted it while this one waited.
        if let Some(token) = self.apps.cached(&key, SystemTime::now()) {
            return Ok(Minted { token, key, cached: true });
        }
        if let Some(budget) = budget
            && budget.fetch_add(1, Ordering::Relaxed) >= MAX_JOB_MINTS
        {
            return Err(ApiError::Failed(format!(
                "this job has had {MAX_JOB_MINTS} GitHub App tokens minted for {repo} already (each one refused \
                 or revoked since): no more are minted for it"
            )));
        }
        let name = repo.rsplit('/').next().unwrap_or(repo);
        let body = json!({"repositories": [name], "permissions": permissions.as_json()});
        let url = format!("{api}/app/installations/{installation}/access_tokens");
        let jwt = jwt(app, SystemTime::now())?;
        let answer = self.send(source, Method::POST, &url, Scheme::Bearer, &jwt, Some(&body)).await?;
        let request = format!("POST {url}");
        let token = answer.body.get("token").and_then(Value::as_str).filter(|token| !token.is_empty());
        let expires =
            answer.body.get("expires_at").and_then(Value::as_str).and_then(|text| {
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
            });
        let (Some(token), Some(expires)) = (token, expires) else {
            return Err(ApiError::Failed(format!("{request}: the answer has no `token` and `expires_at`")));
        };
        // GitHub looks `name` up in the installation's own account, whatever the owner the
        // event named: a delivery pairing `acme/x` with another account's installation
        // would get a token for that account's `x`. The token must be for the event's
        // repository itself, or it is not used.
        let granted: Vec<&str> = answer
            .body
            .get("repositories")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|r| r.get("full_name").and_then(Value::as_str)).collect())
            .unwrap_or_default();
        if !matches!(granted.as_slice(), [full] if full.eq_ignore_ascii_case(repo)) {
            return Err(ApiError::Failed(format!(
                "{request}: installation {installation} gave a token for {granted:?}, not for the event's \
                 repository {repo}; it is not used"
            )));
        }
        let token = Secret::new(token);
        let expires = SystemTime::from(expires);
        tracing::debug!(app = app.id, installation, repo, "minted a GitHub App installation token");
        self.apps.keep(key.clone(), token.clone(), expires, SystemTime::now());
        Ok(Minted { token, key, cached: false })
    }

    /// The installation of `app` on `repo`: `GET /repos/{owner}/{repo}/installation`,
    /// asked once and remembered.
    async fn installation(&self, source: &Source, app: &App, repo: &str) -> Result<u64, ApiError> {
        let api = &source.api.as_ref().expect("config: a source with `app` has `api`").url;
        let key = (app.id, api.clone(), repo.to_owned());
        if let Some(id) = self.apps.installations.lock().expect("never poisoned").get(&key) {
            return Ok(*id);
        }
        let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
        let url = format!("{api}/repos/{}/{}/installation", super::encode_segment(owner), super::encode_segment(name));
        let jwt = jwt(app, SystemTime::now())?;
        let answer = self.send(source, Method::GET, &url, Scheme::Bearer, &jwt, None).await?;
        let id = answer
            .body
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::Failed(format!("GET {url}: the answer has no installation `id`")))?;
        self.apps.installations.lock().expect("never poisoned").insert(key, id);
        Ok(id)
    }

    /// Forgets every token minted for `installation` and every lookup that led to it
    /// (the app was uninstalled or suspended there, or repositories were removed).
    pub fn forget_installation(&self, installation: u64) {
        self.apps.tokens.lock().expect("never poisoned").retain(|key, _| key.installation != installation);
        self.apps.installations.lock().expect("never poisoned").retain(|_, id| *id != installation);
    }
}

/// The installation whose tokens `event` revokes: a GitHub `installation` event that
/// deleted or suspended it, or an `installation_repositories` event that removed
/// repositories from it (a token minted for one of them must not be used again).
pub fn revoked_installation(event: &crate::event::Event) -> Option<u64> {
    let action = event.action.as_deref()?;
    let revokes = match event.kind.as_str() {
        "installation" => matches!(action, "deleted" | "suspend"),
        "installation_repositories" => action == "removed",
        _ => false,
    };
    (event.forge == "github" && revokes).then_some(event.installation).flatten()
}

/// The (lower-case host, port) of `url`, when it is an http(s) URL.
fn origin(url: &str) -> Option<(String, u16)> {
    let parsed = url::Url::parse(url).ok().filter(|url| matches!(url.scheme(), "http" | "https"))?;
    let host = parsed.host_str()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    Some((host, parsed.port_or_known_default()?))
}

/// The app's JWT at `now`: `iat` a minute back, `exp` nine minutes ahead, `iss` the App ID
/// (a number, as GitHub's Octokit libraries send it).
fn jwt(app: &App, now: SystemTime) -> Result<Secret, ApiError> {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let seconds = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let claims = json!({
        "iat": (seconds - JWT_BACKDATE.min(seconds)).as_secs(),
        "exp": (seconds + JWT_AHEAD).as_secs(),
        "iss": app.id,
    });
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let signed = format!("{}.{}", encode(header.to_string().as_bytes()), encode(claims.to_string().as_bytes()));
    let mut signature = vec![0; app.key.public().modulus_len()];
    app.key
        .sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), signed.as_bytes(), &mut signature)
        .map_err(|_| ApiError::Failed(format!("signing the JWT of GitHub App {}", app.id)))?;
    Ok(Secret::new(format!("{signed}.{}", encode(&signature))))
}

/// What a job's steps mint GitHub App tokens with (a `github-app` host credential): the
/// job's source, the event's repository and installation. Tokens it mints are for that
/// repository alone and the permissions each credential names, and go only to the
/// GitHub that issued them.
#[derive(Clone)]
pub struct AppAccess {
    apis: ForgeApis,
    /// Tokens minted for this job so far (see [`MAX_JOB_MINTS`]).
    mints: Arc<AtomicU32>,
    source: Source,
    repo: String,
    installation: Option<u64>,
    /// Where a token may be sent, as (lower-case host, port): the source's API and the
    /// event's repository's git host. A `github-app` credential granted for any other
    /// host (a wildcard, another GitHub, a server the plugin runs) gets no token.
    hosts: Vec<(String, u16)>,
}

impl std::fmt::Debug for AppAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAccess")
            .field("source", &self.source.name)
            .field("repo", &self.repo)
            .field("installation", &self.installation)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl AppAccess {
    /// Access for a job of `source` about `repo` (`owner/name`), through `installation`,
    /// whose git remote is `clone_url` (the event's; empty when it names none).
    pub fn new(apis: &ForgeApis, source: &Source, repo: &str, installation: Option<u64>, clone_url: &str) -> Self {
        let api = source.api.as_ref().map(|api| api.url.as_str()).unwrap_or_default();
        let hosts = [api, clone_url].into_iter().filter_map(origin).collect();
        Self {
            apis: apis.clone(),
            mints: Arc::default(),
            source: source.clone(),
            repo: repo.to_owned(),
            installation,
            hosts,
        }
    }

    /// Forgets the tokens minted for the job's repository: GitHub refused one (401), so
    /// the next request mints a new one instead of using it again until it expires.
    pub fn refused(&self) {
        let Some(app) = &self.source.app else { return };
        let api = self.source.api.as_ref().map(|api| api.url.as_str()).unwrap_or_default();
        self.apis
            .apps
            .tokens
            .lock()
            .expect("the token cache is never poisoned")
            .retain(|key, _| !(key.app == app.id && key.api == api && key.repo.eq_ignore_ascii_case(&self.repo)));
    }

    /// A token limited to the job's repository and `permissions`, for a request to
    /// `host`:`port`, which must be the source's API or the repository's git host: a
    /// token goes back only to the GitHub that minted it.
    pub async fn token(&self, host: &str, port: u16, permissions: &[(String, String)]) -> Result<Secret, ApiError> {
        let Some(app) = &self.source.app else {
            return Err(ApiError::Failed(format!(
                "source \"{}\" has no `app`: a github-app credential needs the job's source to be a GitHub App",
                self.source.name
            )));
        };
        if self.repo.is_empty() {
            return Err(ApiError::Failed("the event names no repository to mint a GitHub App token for".into()));
        }
        let host = host.trim_end_matches('.').trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if !self.hosts.iter().any(|(allowed, allowed_port)| *allowed == host && *allowed_port == port) {
            let hosts: Vec<String> = self.hosts.iter().map(|(host, port)| format!("{host}:{port}")).collect();
            return Err(ApiError::Failed(format!(
                "{host}:{port} is not source \"{}\"'s GitHub (its API and the repository's git host: {}): \
                 a GitHub App token is sent nowhere else",
                self.source.name,
                if hosts.is_empty() { "none".to_owned() } else { hosts.join(", ") }
            )));
        }
        let permissions = Permissions::from_pairs(permissions.iter().cloned());
        let minted = self
            .apis
            .app_token(&self.source, app, &self.repo, self.installation, &permissions, Some(&self.mints))
            .await?;
        Ok(minted.token)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests make their keys with openssl")]
mod tests {
    use super::*;

    /// A fresh 2048-bit key from `openssl genrsa` (PKCS#1 PEM, as GitHub hands them out).
    fn app() -> App {
        let out = std::process::Command::new("openssl").args(["genrsa", "-traditional", "2048"]).output().unwrap();
        let pem = String::from_utf8(out.stdout).unwrap();
        App { id: 4242, key: std::sync::Arc::new(crate::config::app::parse_key(&pem).unwrap()) }
    }

    #[test]
    fn the_jwt_is_rs256_signed_with_the_app_key_and_names_the_app() {
        use base64::Engine as _;
        let app = app();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = jwt(&app, now).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
        let header: Value = serde_json::from_slice(&decode(parts[0])).unwrap();
        let claims: Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
        assert_eq!(claims, json!({"iat": 1_699_999_940u64, "exp": 1_700_000_540u64, "iss": 4242}));
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            ring::signature::KeyPair::public_key(app.key.as_ref()).as_ref().to_vec(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &decode(parts[2])).unwrap();
        assert!(public.verify(b"other", &decode(parts[2])).is_err());
    }

    #[test]
    fn permissions_are_one_cache_entry_whatever_their_order_and_none_means_metadata_only() {
        let a = Permissions::from_static(&[("statuses", "write"), ("contents", "read")]);
        let b = Permissions::from_static(&[("contents", "read"), ("statuses", "write")]);
        assert_eq!(a, b);
        assert_eq!(a.as_json(), json!({"contents": "read", "statuses": "write"}));
        assert_eq!(Permissions::default().as_json(), json!({"metadata": "read"}));
    }

    #[test]
    fn a_tokens_hosts_are_read_with_their_default_ports_and_without_brackets() {
        assert_eq!(origin("https://api.github.com"), Some(("api.github.com".into(), 443)));
        assert_eq!(origin("https://GHE.example:8443/api/v3"), Some(("ghe.example".into(), 8443)));
        assert_eq!(origin("http://[::1]:3000/acme/widgets.git"), Some(("::1".into(), 3000)));
        assert_eq!(origin("git@github.com:acme/widgets.git"), None);
        assert_eq!(origin(""), None);
    }

    #[test]
    fn a_cached_token_is_used_until_five_minutes_before_it_expires() {
        let apps = Apps::default();
        let key = TokenKey {
            app: 1,
            api: "https://api.github.com".into(),
            installation: 7,
            repo: "acme/widgets".into(),
            permissions: Permissions::default(),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        apps.tokens
            .lock()
            .unwrap()
            .insert(key.clone(), Cached { token: Secret::new("t"), expires: now + Duration::from_secs(3600) });
        assert!(apps.cached(&key, now).is_some());
        assert!(apps.cached(&key, now + Duration::from_secs(3600 - 301)).is_some());
        assert!(apps.cached(&key, now + Duration::from_secs(3600 - 300)).is_none());
        let other = TokenKey { repo: "acme/other".into(), ..key.clone() };
        assert!(apps.cached(&other, now).is_none());
    }
}
