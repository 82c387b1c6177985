//! Forge releases: GitHub releases and assets, GitLab releases linking generic packages,
//! Gitea and Forgejo releases and attachments, over the `http` capability.
//! Idempotent per tag: an existing release is updated, never duplicated, and its assets
//! replaced. Credentials are the host's (a granted host with a `credential`), never here.

use crate::record::{Asset, ReleaseRecord};
use crate::version::Stability;
use gitauto_plugin::http::{self, Method};
use gitauto_plugin::rest::Reply;
use gitauto_plugin::{Error, Event};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

/// The step's `forge = {...}` table: where and how the release is made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeSettings {
    /// `github`, `gitlab`, `gitea` or `forgejo` (default: the event's forge).
    pub kind: Option<String>,
    /// The API's base URL (default: `https://api.github.com`, or the forge's root (its path kept)
    /// with `/api/v3` (GitHub Enterprise), `/api/v4` (GitLab), `/api/v1` (Gitea, Forgejo)).
    pub api: Option<String>,
    /// GitHub: the base URL assets are uploaded to, e.g. `https://uploads.github.com`
    /// (default: the release's own `upload_url`).
    pub uploads: Option<String>,
    /// The repository, `owner/name` (GitLab: the project's path or numeric id; default:
    /// the event's).
    pub repository: Option<String>,
    /// The release's title; `{project}`, `{version}` and `{tag}` are replaced (default
    /// `"{project} {version}"`).
    pub name: Option<String>,
    /// Whether the release is marked as a pre-release (GitHub, Gitea, Forgejo; default:
    /// when the version is not stable).
    pub prerelease: Option<bool>,
    /// GitLab: the generic package the archives are uploaded to (default: the project).
    pub package: Option<String>,
}

/// The forge release as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeRelease {
    /// The release's web page.
    pub url: String,
    /// Each asset's name and the URL it downloads from, in the record's order.
    pub assets: Vec<(String, String)>,
}

/// Creates or updates the forge release for `record.tag` and attaches every asset of
/// the record (read from `asset.path`), replacing assets of the same name.
pub fn publish(settings: &ForgeSettings, event: &Event, record: &ReleaseRecord) -> Result<ForgeRelease, Error> {
    let target = Target::new(settings, event)?;
    let files = record
        .assets
        .iter()
        .map(|asset| {
            std::fs::read(&asset.path)
                .map_err(|err| Error::failed(format!("forge release: reading asset {}: {err}", asset.path)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let subject =
        Subject { project: &record.project, version: &record.version, tag: &record.tag, assets: &record.assets };
    publish_with(&mut Host, &target, settings, &subject, &release_of(settings, record), &files)
}

/// Sends one request and returns the answer: the `http` capability, or a test's script.
trait Transport {
    fn send(&mut self, call: Call) -> Result<Reply, Error>;
}

/// One request as this module builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    verb: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

/// The host's `http` capability.
struct Host;

impl Transport for Host {
    fn send(&mut self, call: Call) -> Result<Reply, Error> {
        let request = format!("{} {}", call.verb, call.url);
        gitauto_plugin::log::debug(&request);
        let method = match call.verb {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            _ => Method::Delete,
        };
        let response = http::send(&http::Request {
            method,
            url: call.url,
            headers: call.headers,
            body: call.body,
            timeout: Some(120_000),
        })
        // Name the call: a denied upload host says which host the grants lack.
        .map_err(|err| match Error::from(err) {
            Error::Transient(message) => Error::transient(format!("forge release: {request}: {message}")),
            Error::Failed(message) => Error::failed(format!("forge release: {request}: {message}")),
            other => other,
        })?;
        Ok(Reply { request, status: response.status, headers: response.headers, body: response.body })
    }
}

/// Which forge, where its API is, and which repository.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    kind: Kind,
    api: String,
    repository: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GitHub,
    GitLab,
    Gitea,
}

impl Target {
    fn new(settings: &ForgeSettings, event: &Event) -> Result<Self, Error> {
        let kind_name = settings.kind.clone().unwrap_or_else(|| event.forge.clone());
        let kind = match kind_name.as_str() {
            "github" => Kind::GitHub,
            "gitlab" => Kind::GitLab,
            "gitea" | "forgejo" => Kind::Gitea,
            other => {
                return Err(Error::invalid_settings(format!(
                    "forge release: no release API for forge `{other}` (set `forge.kind` to github, gitlab, gitea or forgejo)"
                )));
            }
        };
        let api = match &settings.api {
            Some(api) => api.trim_end_matches('/').to_owned(),
            None => default_api(kind, &event.repository.html_url, &event.repository.full_name)?,
        };
        let repository = settings.repository.clone().unwrap_or_else(|| event.repository.full_name.clone());
        if repository.is_empty() {
            return Err(Error::invalid_settings(
                "forge release: the event names no repository: set `forge.repository`",
            ));
        }
        Ok(Self { kind, api, repository })
    }
}

/// The API base of `kind` for the repository `full_name` whose web page is `html_url`:
/// the forge's root is the page without `/<full_name>`, so a forge served under a path
/// (`https://example.com/git/acme/w`) keeps it (`https://example.com/git/api/v1`).
fn default_api(kind: Kind, html_url: &str, full_name: &str) -> Result<String, Error> {
    let page = html_url.trim_end_matches('/');
    let root = page.split_once("://").and_then(|(scheme, rest)| {
        let host = rest.split('/').next().filter(|host| !host.is_empty())?;
        let origin = format!("{scheme}://{host}");
        let root = match page.strip_suffix(&format!("/{full_name}")) {
            Some(root) if !full_name.is_empty() && root.len() >= origin.len() => root.to_owned(),
            _ => origin,
        };
        Some(root)
    });
    let Some(root) = root else {
        return Err(Error::invalid_settings(format!(
            "forge release: cannot tell the API from the repository address `{html_url}`: set `forge.api`"
        )));
    };
    Ok(match kind {
        Kind::GitHub if root == "https://github.com" => "https://api.github.com".to_owned(),
        Kind::GitHub => format!("{root}/api/v3"),
        Kind::GitLab => format!("{root}/api/v4"),
        Kind::Gitea => format!("{root}/api/v1"),
    })
}

/// What is released: the parts of a record the forge needs.
struct Subject<'a> {
    project: &'a str,
    version: &'a str,
    tag: &'a str,
    assets: &'a [Asset],
}

/// The release for `record`, as `settings` ask for it.
fn release_of(settings: &ForgeSettings, record: &ReleaseRecord) -> Release {
    let name = settings
        .name
        .as_deref()
        .unwrap_or("{project} {version}")
        .replace("{project}", &record.project)
        .replace("{version}", &record.version)
        .replace("{tag}", &record.tag);
    Release {
        name,
        notes: record.notes.clone().or_else(|| record.message.clone()).unwrap_or_default(),
        prerelease: settings.prerelease.unwrap_or(record.parsed.stability != Stability::Stable),
    }
}

/// [`publish`] with the release decided, the asset files read and a transport to send through.
fn publish_with(
    transport: &mut dyn Transport,
    target: &Target,
    settings: &ForgeSettings,
    subject: &Subject,
    release: &Release,
    files: &[Vec<u8>],
) -> Result<ForgeRelease, Error> {
    let mut client = Client { transport, target };
    match target.kind {
        Kind::GitHub | Kind::Gitea => client.github_or_gitea(settings, subject, release, files),
        Kind::GitLab => client.gitlab(settings, subject, release, files),
    }
}

/// What the release says, whichever forge shows it.
struct Release {
    name: String,
    notes: String,
    prerelease: bool,
}

struct Client<'a> {
    transport: &'a mut dyn Transport,
    target: &'a Target,
}

impl Client<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.target.api)
    }

    /// Sends `verb url` with a JSON body (or none) and checks the status.
    fn json(
        &mut self,
        verb: &'static str,
        url: String,
        body: Option<&Value>,
        what: &str,
        ok: &[u16],
    ) -> Result<Reply, Error> {
        let mut headers = base_headers(self.target.kind);
        let body = body.map(|body| {
            headers.push(("content-type".into(), "application/json".into()));
            body.to_string().into_bytes()
        });
        let reply = self.transport.send(Call { verb, url, headers, body })?;
        check(reply, what, ok)
    }

    /// Sends `verb url` with raw bytes of `content_type` and checks the status.
    fn bytes(
        &mut self,
        verb: &'static str,
        url: String,
        content_type: &str,
        body: Vec<u8>,
        what: &str,
        ok: &[u16],
    ) -> Result<Reply, Error> {
        let mut headers = base_headers(self.target.kind);
        headers.push(("content-type".into(), content_type.to_owned()));
        let reply = self.transport.send(Call { verb, url, headers, body: Some(body) })?;
        check(reply, what, ok)
    }

    /// `GET url`: the JSON answer, or `None` for 404 (GitLab before 14 answers 403 for
    /// a release that does not exist; a token that really may not is refused at the
    /// `POST` that follows, with the forge's message).
    fn find(&mut self, url: String, what: &str) -> Result<Option<Value>, Error> {
        let missing: &[u16] = if self.target.kind == Kind::GitLab { &[404, 403] } else { &[404] };
        let reply = self.json("GET", url, None, what, &[&[200][..], missing].concat())?;
        if missing.contains(&reply.status) { Ok(None) } else { reply_json(&reply, what).map(Some) }
    }

    /// Every item of the list at `url` (which has a query): pages of [`PER_PAGE`] until
    /// a short one; more than [`MAX_PAGES`] pages is an error, never a partial list.
    fn list(&mut self, url: &str, what: &str) -> Result<Vec<Value>, Error> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let reply = self.json("GET", format!("{url}&per_page={PER_PAGE}&page={page}"), None, what, &[200])?;
            let Value::Array(items) = reply_json(&reply, what)? else {
                return Err(Error::failed(format!(
                    "forge release: {what}: {}: the answer is not a list",
                    reply.request
                )));
            };
            let short = items.len() < PER_PAGE;
            all.extend(items);
            if short {
                return Ok(all);
            }
        }
        Err(Error::failed(format!("forge release: {what}: {url}: more than {MAX_PAGES} pages")))
    }

    /// GitLab: every file of the generic package `name` at `version` with its package's
    /// id (duplicates of a name included); none when the package does not exist yet.
    fn package_files(&mut self, project: &str, name: &str, version: &str) -> Result<Vec<(u64, Value)>, Error> {
        let url = self.url(&format!(
            "projects/{project}/packages?package_type=generic&package_name={}&package_version={}",
            encode(name),
            encode(version)
        ));
        let packages = self.list(&url, "listing the generic packages")?;
        let mut files = Vec::new();
        // `package_name` matches by substring: only the package of exactly this name and version.
        for package in packages.iter().filter(|package| package["name"] == name && package["version"] == version) {
            let id = id_of(package, "the generic package")?;
            let url = self.url(&format!("projects/{project}/packages/{id}/package_files?sort=asc"));
            files.extend(self.list(&url, "listing the package's files")?.into_iter().map(|file| (id, file)));
        }
        Ok(files)
    }

    /// GitHub and Gitea/Forgejo: the same release calls; assets differ in where and how
    /// they are uploaded (GitHub: raw bytes to the upload host; Gitea: a multipart form).
    fn github_or_gitea(
        &mut self,
        settings: &ForgeSettings,
        subject: &Subject,
        release: &Release,
        files: &[Vec<u8>],
    ) -> Result<ForgeRelease, Error> {
        let repo = self.target.repository.clone();
        let tag = encode(subject.tag);
        let existing = self.find(self.url(&format!("repos/{repo}/releases/tags/{tag}")), "finding the release")?;
        let mut body = json!({
            "name": release.name, "body": release.notes, "draft": false, "prerelease": release.prerelease,
        });
        let found = match existing {
            None => {
                body["tag_name"] = json!(subject.tag);
                let url = self.url(&format!("repos/{repo}/releases"));
                reply_json(&self.json("POST", url, Some(&body), "creating the release", &[201])?, "")?
            }
            Some(found) => {
                let url = self.url(&format!("repos/{repo}/releases/{}", id_of(&found, "the release")?));
                reply_json(&self.json("PATCH", url, Some(&body), "updating the release", &[200])?, "")?
            }
        };
        let id = id_of(&found, "the release")?;
        let github = self.target.kind == Kind::GitHub;
        let upload = match (&settings.uploads, found["upload_url"].as_str()) {
            (Some(base), _) if github => format!("{}/repos/{repo}/releases/{id}/assets", base.trim_end_matches('/')),
            // `upload_url` is a URI template: `.../assets{?name,label}`.
            (None, Some(template)) if github => {
                let url = template.split('{').next().unwrap_or(template);
                upload_url(&self.target.api, url, &repo, id)?
            }
            _ if github => format!("https://uploads.github.com/repos/{repo}/releases/{id}/assets"),
            _ => self.url(&format!("repos/{repo}/releases/{id}/assets")),
        };
        let old = found["assets"].as_array().cloned().unwrap_or_default();
        let mut assets = Vec::new();
        for (asset, file) in subject.assets.iter().zip(files) {
            // An asset of the same name is kept when it holds this run's file; else it is
            // replaced, so this run's file is the one served.
            let same_name = old.iter().find(|old| old["name"] == asset.name.as_str());
            if let Some(old) = same_name
                && self.holds(old, asset, file)?
            {
                assets.push((asset.name.clone(), text(old, "browser_download_url")));
                continue;
            }
            if let Some(old) = same_name {
                let old_id = id_of(old, "the old asset")?;
                let url = if github {
                    self.url(&format!("repos/{repo}/releases/assets/{old_id}"))
                } else {
                    self.url(&format!("repos/{repo}/releases/{id}/assets/{old_id}"))
                };
                self.json("DELETE", url, None, &format!("deleting the old {}", asset.name), &[204, 404])?;
            }
            let url = format!("{upload}?name={}", encode(&asset.name));
            let what = format!("uploading {}", asset.name);
            let (content_type, body) = if github {
                (content_type(asset).to_owned(), file.clone())
            } else {
                multipart("attachment", &asset.name, content_type(asset), file)
            };
            let reply = self.bytes("POST", url, &content_type, body, &what, &[201])?;
            assets.push((asset.name.clone(), text(&reply_json(&reply, &what)?, "browser_download_url")));
        }
        Ok(ForgeRelease { url: text(&found, "html_url"), assets })
    }

    /// Whether the release's asset `old` holds `file`: the same size, and the same
    /// SHA-256 (GitHub's `digest`) or, on Gitea and Forgejo, which give no digest, the
    /// same bytes downloaded from the forge's own host. Unknown counts as different.
    fn holds(&mut self, old: &Value, asset: &Asset, file: &[u8]) -> Result<bool, Error> {
        if old["size"].as_u64() != Some(file.len() as u64) {
            return Ok(false);
        }
        if self.target.kind == Kind::GitHub {
            return Ok(!asset.sha256.is_empty() && old["digest"] == format!("sha256:{}", asset.sha256).as_str());
        }
        let download = text(old, "browser_download_url");
        if origin(&download).is_none() || origin(&download) != origin(&self.target.api) {
            return Ok(false);
        }
        let call = Call { verb: "GET", url: download, headers: base_headers(self.target.kind), body: None };
        Ok(match self.transport.send(call) {
            Ok(reply) => reply.status == 200 && reply.body == file,
            Err(Error::Transient(message)) => return Err(Error::transient(message)),
            Err(_) => false,
        })
    }

    fn gitlab(
        &mut self,
        settings: &ForgeSettings,
        subject: &Subject,
        release: &Release,
        files: &[Vec<u8>],
    ) -> Result<ForgeRelease, Error> {
        let project = encode(&self.target.repository);
        let package = encode(settings.package.as_deref().unwrap_or(subject.project));
        let version = encode(subject.version);
        // The package files first: the release's links point at them. GitLab keeps every
        // file put under a name (or refuses a second one when duplicates are disallowed),
        // so a file already there with this content is left alone, and one with other
        // content is deleted before this run's file is put.
        let package_name = settings.package.as_deref().unwrap_or(subject.project);
        let stored = self.package_files(&project, package_name, subject.version)?;
        let mut links = Vec::new();
        for (asset, file) in subject.assets.iter().zip(files) {
            let url =
                self.url(&format!("projects/{project}/packages/generic/{package}/{version}/{}", encode(&asset.name)));
            let same_name: Vec<&(u64, Value)> =
                stored.iter().filter(|(_, old)| old["file_name"] == asset.name.as_str()).collect();
            let unchanged = !same_name.is_empty()
                && !asset.sha256.is_empty()
                && same_name.iter().all(|(_, old)| old["file_sha256"] == asset.sha256.as_str());
            if !unchanged {
                for (package_id, old) in same_name {
                    let old_id = id_of(old, "the package file")?;
                    let url = self.url(&format!("projects/{project}/packages/{package_id}/package_files/{old_id}"));
                    self.json("DELETE", url, None, &format!("deleting the old {}", asset.name), &[204, 404])?;
                }
                let what = format!("uploading {} to the generic package", asset.name);
                self.bytes("PUT", url.clone(), "application/octet-stream", file.clone(), &what, &[200, 201])?;
            }
            links.push(json!({
                "name": asset.name, "url": url, "direct_asset_path": format!("/{}", asset.name), "link_type": "package",
            }));
        }
        let tag = encode(subject.tag);
        let existing = self.find(self.url(&format!("projects/{project}/releases/{tag}")), "finding the release")?;
        let found = match existing {
            None => {
                let body = json!({
                    "tag_name": subject.tag, "name": release.name, "description": release.notes,
                    "assets": {"links": links},
                });
                let url = self.url(&format!("projects/{project}/releases"));
                reply_json(&self.json("POST", url, Some(&body), "creating the release", &[201])?, "")?
            }
            Some(found) => {
                let body = json!({"name": release.name, "description": release.notes});
                let url = self.url(&format!("projects/{project}/releases/{tag}"));
                let mut updated = reply_json(&self.json("PUT", url, Some(&body), "updating the release", &[200])?, "")?;
                let have = found["assets"]["links"].as_array().cloned().unwrap_or_default();
                let mut current = Vec::new();
                for link in &links {
                    let same_name = have.iter().find(|old| old["name"] == link["name"]);
                    let answer = match same_name {
                        // Already pointing at this package file: nothing to change.
                        Some(old) if old["url"] == link["url"] && old["link_type"] == link["link_type"] => old.clone(),
                        Some(old) => {
                            let id = id_of(old, "the release link")?;
                            let url = self.url(&format!("projects/{project}/releases/{tag}/assets/links/{id}"));
                            let body = json!({
                                "url": link["url"], "direct_asset_path": link["direct_asset_path"],
                                "link_type": "package",
                            });
                            reply_json(&self.json("PUT", url, Some(&body), "updating a link", &[200])?, "")?
                        }
                        None => {
                            let url = self.url(&format!("projects/{project}/releases/{tag}/assets/links"));
                            reply_json(&self.json("POST", url, Some(link), "adding a link", &[201])?, "")?
                        }
                    };
                    current.push(answer);
                }
                updated["assets"]["links"] = Value::Array(current);
                updated
            }
        };
        let answered = found["assets"]["links"].as_array().cloned().unwrap_or_default();
        let assets = links
            .iter()
            .map(|link| {
                let name = link["name"].as_str().unwrap_or_default().to_owned();
                // The release's permanent download address when GitLab gives it, else the package file.
                let url = answered
                    .iter()
                    .find(|answer| answer["name"] == link["name"])
                    .and_then(|answer| answer["direct_asset_url"].as_str())
                    .or(link["url"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                (name, url)
            })
            .collect();
        let url = found["_links"]["self"].as_str().map(str::to_owned).unwrap_or_default();
        Ok(ForgeRelease { url, assets })
    }
}

/// The release's `upload_url` (its template part cut off) when it is where GitHub
/// uploads assets of this release: on the API's own origin (GitHub Enterprise:
/// `/api/uploads`) or on `uploads.` and the API host's domain (`api.github.com` →
/// `uploads.github.com`), with the API's scheme, no user or query, and a path ending in
/// `/repos/{repo}/releases/{id}/assets`. The answer is the forge's: a forge that points
/// elsewhere (another granted host, such as a bucket the host signs for) is refused.
fn upload_url(api: &str, url: &str, repo: &str, id: u64) -> Result<String, Error> {
    let refused = |why: &str| {
        Error::failed(format!(
            "forge release: the release's upload_url `{url}` {why}; set `forge.uploads` to the upload host"
        ))
    };
    let split = |address: &str| -> Option<(String, String, String)> {
        let (scheme, rest) = address.split_once("://")?;
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(authority, path)| (authority, path));
        Some((scheme.to_ascii_lowercase(), authority.to_ascii_lowercase(), format!("/{path}")))
    };
    let (Some((api_scheme, api_host, _)), Some((scheme, host, path))) = (split(api), split(url)) else {
        return Err(refused("is not an absolute URL"));
    };
    if scheme != api_scheme || host.contains('@') || url.contains(['?', '#']) {
        return Err(refused(&format!("is not a plain {api_scheme} URL")));
    }
    let domain = api_host.strip_prefix("api.").unwrap_or(&api_host);
    if host != api_host && host != format!("uploads.{domain}") {
        return Err(refused(&format!("is not on {api_host} or uploads.{domain}")));
    }
    let tail = format!("/repos/{repo}/releases/{id}/assets");
    if !path.ends_with(&tail) || path.split('/').any(|part| part == ".." || part == ".") {
        return Err(refused(&format!("does not end in {tail}")));
    }
    Ok(url.to_owned())
}

/// `scheme://host[:port]` of `url`, lowercase.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next().filter(|host| !host.is_empty() && !host.contains('@'))?;
    Some(format!("{scheme}://{host}").to_ascii_lowercase())
}

/// Items per page of a listing.
const PER_PAGE: usize = 100;

/// Pages read of a listing before it counts as too long to trust.
const MAX_PAGES: usize = 20;

fn base_headers(kind: Kind) -> Vec<(String, String)> {
    let mut headers = vec![("user-agent".to_owned(), "gitauto".to_owned())];
    match kind {
        Kind::GitHub => {
            headers.push(("accept".into(), "application/vnd.github+json".into()));
            headers.push(("x-github-api-version".into(), "2022-11-28".into()));
        }
        Kind::GitLab | Kind::Gitea => headers.push(("accept".into(), "application/json".into())),
    }
    headers
}

/// The reply when its status is in `ok`; otherwise an error naming the call and the
/// forge's message: transient for 429 and 5xx, failed otherwise.
fn check(reply: Reply, what: &str, ok: &[u16]) -> Result<Reply, Error> {
    if ok.contains(&reply.status) {
        return Ok(reply);
    }
    let said = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|body| {
            let message = body.get("message").or_else(|| body.get("error"))?;
            Some(match message {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_else(|| reply.text());
    let message = format!("forge release: {what}: {}: HTTP {}: {said}", reply.request, reply.status);
    if reply.status == 429 || reply.status >= 500 {
        Err(Error::transient(message))
    } else {
        Err(Error::failed(message))
    }
}

fn reply_json(reply: &Reply, what: &str) -> Result<Value, Error> {
    serde_json::from_slice(&reply.body).map_err(|err| {
        let what = if what.is_empty() { String::new() } else { format!("{what}: ") };
        Error::failed(format!("forge release: {what}{}: the answer is not JSON: {err}", reply.request))
    })
}

fn id_of(value: &Value, what: &str) -> Result<u64, Error> {
    value["id"].as_u64().ok_or_else(|| Error::failed(format!("forge release: {what} has no numeric `id`: {value}")))
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_default().to_owned()
}

fn content_type(asset: &Asset) -> &'static str {
    match asset.format.as_str() {
        "tar.gz" => "application/gzip",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

/// A `multipart/form-data` body holding one file in `field`; returns the content type
/// (with its boundary) and the body.
fn multipart(field: &str, file_name: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let mut boundary = "gitauto-release-boundary-7f3e9c1d".to_owned();
    // The boundary must not occur in the data; lengthen it until it does not.
    while data.windows(boundary.len()).any(|window| window == boundary.as_bytes()) {
        boundary.push('x');
    }
    let quoted = file_name.replace('\\', "\\\\").replace('"', "\\\"");
    let mut body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"{field}\"; filename=\"{quoted}\"\r\ncontent-type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// RFC 3986's unreserved characters: all that stays as it is in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` as one URL path segment or query value: everything but the unreserved
/// characters percent-encoded (a `/` in a tag or project path included).
fn encode(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers each call with the next scripted reply and keeps the calls.
    #[derive(Default)]
    struct Script {
        replies: VecDeque<(u16, Value)>,
        calls: Vec<Call>,
    }

    impl Script {
        fn new(replies: Vec<(u16, Value)>) -> Self {
            Self { replies: replies.into(), calls: Vec::new() }
        }

        fn lines(&self) -> Vec<String> {
            self.calls.iter().map(|call| format!("{} {}", call.verb, call.url)).collect()
        }

        fn json_body(&self, index: usize) -> Value {
            serde_json::from_slice(self.calls[index].body.as_deref().expect("a body")).unwrap()
        }

        fn header(&self, index: usize, name: &str) -> String {
            let call = &self.calls[index];
            call.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
        }
    }

    impl Transport for Script {
        fn send(&mut self, call: Call) -> Result<Reply, Error> {
            let request = format!("{} {}", call.verb, call.url);
            let (status, body) = self.replies.pop_front().unwrap_or_else(|| panic!("no reply scripted for {request}"));
            self.calls.push(call);
            // `"raw:..."` scripts a body that is not JSON (a downloaded file).
            let body = match body {
                Value::Null => Vec::new(),
                Value::String(raw) if raw.starts_with("raw:") => raw.as_bytes()["raw:".len()..].to_vec(),
                other => other.to_string().into_bytes(),
            };
            Ok(Reply { request, status, headers: Vec::new(), body })
        }
    }

    fn asset(name: &str, format: &str) -> Asset {
        Asset {
            name: name.into(),
            format: format.into(),
            path: format!("/out/widgets/{name}"),
            size: 3,
            sha256: format!("sha256 of {name}"),
            sha512: String::new(),
            md5: String::new(),
            url: None,
        }
    }

    fn assets() -> Vec<Asset> {
        vec![asset("widgets-1.2.0.tar.gz", "tar.gz"), asset("widgets-1.2.0.zip", "zip")]
    }

    fn files() -> Vec<Vec<u8>> {
        vec![b"tgz".to_vec(), b"zip".to_vec()]
    }

    fn release() -> Release {
        Release { name: "widgets 1.2.0".into(), notes: "Bug fixes".into(), prerelease: false }
    }

    fn target(kind: Kind, api: &str) -> Target {
        Target { kind, api: api.into(), repository: "acme/widgets".into() }
    }

    fn run(
        script: &mut Script,
        target: &Target,
        settings: &ForgeSettings,
        assets: &[Asset],
    ) -> Result<ForgeRelease, Error> {
        let subject = Subject { project: "widgets", version: "1.2.0", tag: "v1.2.0", assets };
        publish_with(script, target, settings, &subject, &release(), &files()[..assets.len()])
    }

    const GITHUB: &str = "https://api.github.com";
    const UPLOADS: &str = "https://uploads.github.com/repos/acme/widgets/releases/1/assets";

    fn github_release(assets: Value) -> Value {
        json!({
            "id": 1, "tag_name": "v1.2.0", "html_url": "https://github.com/acme/widgets/releases/tag/v1.2.0",
            "upload_url": format!("{UPLOADS}{{?name,label}}"), "assets": assets,
        })
    }

    fn uploaded(name: &str) -> Value {
        json!({"id": 9, "name": name, "browser_download_url": format!("https://github.com/acme/widgets/releases/download/v1.2.0/{name}")})
    }

    #[test]
    fn github_first_run_creates_the_release_and_uploads_each_asset_raw() {
        let mut script = Script::new(vec![
            (404, json!({"message": "Not Found"})),
            (201, github_release(json!([]))),
            (201, uploaded("widgets-1.2.0.tar.gz")),
            (201, uploaded("widgets-1.2.0.zip")),
        ]);
        let published = run(&mut script, &target(Kind::GitHub, GITHUB), &ForgeSettings::default(), &assets()).unwrap();
        assert_eq!(
            script.lines(),
            [
                "GET https://api.github.com/repos/acme/widgets/releases/tags/v1.2.0",
                "POST https://api.github.com/repos/acme/widgets/releases",
                &format!("POST {UPLOADS}?name=widgets-1.2.0.tar.gz"),
                &format!("POST {UPLOADS}?name=widgets-1.2.0.zip"),
            ]
        );
        assert_eq!(
            script.json_body(1),
            json!({"tag_name": "v1.2.0", "name": "widgets 1.2.0", "body": "Bug fixes", "draft": false, "prerelease": false})
        );
        assert_eq!(script.header(1, "accept"), "application/vnd.github+json");
        assert_eq!(script.header(2, "content-type"), "application/gzip");
        assert_eq!(script.calls[2].body.as_deref(), Some(&b"tgz"[..]));
        assert_eq!(script.header(3, "content-type"), "application/zip");
        assert_eq!(published.url, "https://github.com/acme/widgets/releases/tag/v1.2.0");
        assert_eq!(
            published.assets,
            [
                (
                    "widgets-1.2.0.tar.gz".to_owned(),
                    "https://github.com/acme/widgets/releases/download/v1.2.0/widgets-1.2.0.tar.gz".to_owned()
                ),
                (
                    "widgets-1.2.0.zip".to_owned(),
                    "https://github.com/acme/widgets/releases/download/v1.2.0/widgets-1.2.0.zip".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn github_second_run_updates_the_release_and_replaces_only_same_named_assets() {
        let old = json!([{"id": 5, "name": "widgets-1.2.0.tar.gz"}, {"id": 6, "name": "notes.txt"}]);
        let mut script = Script::new(vec![
            (200, github_release(old.clone())),
            (200, github_release(old)),
            (204, Value::Null),
            (201, uploaded("widgets-1.2.0.tar.gz")),
            (201, uploaded("widgets-1.2.0.zip")),
        ]);
        let settings = ForgeSettings { uploads: Some("https://up.example.com/".into()), ..ForgeSettings::default() };
        run(&mut script, &target(Kind::GitHub, GITHUB), &settings, &assets()).unwrap();
        assert_eq!(
            script.lines(),
            [
                "GET https://api.github.com/repos/acme/widgets/releases/tags/v1.2.0",
                "PATCH https://api.github.com/repos/acme/widgets/releases/1",
                "DELETE https://api.github.com/repos/acme/widgets/releases/assets/5",
                "POST https://up.example.com/repos/acme/widgets/releases/1/assets?name=widgets-1.2.0.tar.gz",
                "POST https://up.example.com/repos/acme/widgets/releases/1/assets?name=widgets-1.2.0.zip",
            ]
        );
        assert_eq!(
            script.json_body(1),
            json!({"name": "widgets 1.2.0", "body": "Bug fixes", "draft": false, "prerelease": false})
        );
    }

    const GITEA: &str = "https://git.example.com/api/v1";

    fn gitea_release(assets: Value) -> Value {
        json!({"id": 3, "tag_name": "v1.2.0", "html_url": "https://git.example.com/acme/widgets/releases/tag/v1.2.0", "assets": assets})
    }

    #[test]
    fn gitea_attaches_multipart_files_and_replaces_them_on_a_second_run() {
        let attached = |name: &str| json!({"id": 11, "name": name, "browser_download_url": format!("https://git.example.com/attachments/{name}")});
        let mut script = Script::new(vec![
            (404, json!({"message": "release not found"})),
            (201, gitea_release(json!([]))),
            (201, attached("widgets-1.2.0.tar.gz")),
        ]);
        let first = run(&mut script, &target(Kind::Gitea, GITEA), &ForgeSettings::default(), &assets()[..1]).unwrap();
        assert_eq!(
            script.lines(),
            [
                "GET https://git.example.com/api/v1/repos/acme/widgets/releases/tags/v1.2.0",
                "POST https://git.example.com/api/v1/repos/acme/widgets/releases",
                "POST https://git.example.com/api/v1/repos/acme/widgets/releases/3/assets?name=widgets-1.2.0.tar.gz",
            ]
        );
        assert_eq!(script.json_body(1)["tag_name"], "v1.2.0");
        let content_type = script.header(2, "content-type");
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").expect("a multipart upload");
        let body = String::from_utf8(script.calls[2].body.clone().unwrap()).unwrap();
        assert_eq!(
            body,
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"attachment\"; filename=\"widgets-1.2.0.tar.gz\"\r\ncontent-type: application/gzip\r\n\r\ntgz\r\n--{boundary}--\r\n"
            )
        );
        assert_eq!(first.assets[0].1, "https://git.example.com/attachments/widgets-1.2.0.tar.gz");

        let old = json!([{"id": 11, "name": "widgets-1.2.0.tar.gz"}]);
        let mut script = Script::new(vec![
            (200, gitea_release(old.clone())),
            (200, gitea_release(old)),
            (204, Value::Null),
            (201, attached("widgets-1.2.0.tar.gz")),
        ]);
        run(&mut script, &target(Kind::Gitea, GITEA), &ForgeSettings::default(), &assets()[..1]).unwrap();
        assert_eq!(
            script.lines(),
            [
                "GET https://git.example.com/api/v1/repos/acme/widgets/releases/tags/v1.2.0",
                "PATCH https://git.example.com/api/v1/repos/acme/widgets/releases/3",
                "DELETE https://git.example.com/api/v1/repos/acme/widgets/releases/3/assets/11",
                "POST https://git.example.com/api/v1/repos/acme/widgets/releases/3/assets?name=widgets-1.2.0.tar.gz",
            ]
        );
    }

    const GITLAB: &str = "https://gitlab.example.com/api/v4";
    const PACKAGE: &str = "https://gitlab.example.com/api/v4/projects/acme%2Fwidgets/packages/generic/widgets/1.2.0";

    const RELEASES: &str = "https://gitlab.example.com/api/v4/projects/acme%2Fwidgets/releases";

    const PACKAGES: &str = "https://gitlab.example.com/api/v4/projects/acme%2Fwidgets/packages?package_type=generic&package_name=widgets&package_version=1.2.0&per_page=100&page=1";

    /// What a GitLab run sends first when the package does not exist yet: the look for
    /// it, both package files, then the look for the release.
    fn gitlab_lines_then(rest: &[&str]) -> Vec<String> {
        let mut lines = vec![
            format!("GET {PACKAGES}"),
            format!("PUT {PACKAGE}/widgets-1.2.0.tar.gz"),
            format!("PUT {PACKAGE}/widgets-1.2.0.zip"),
            format!("GET {RELEASES}/v1.2.0"),
        ];
        lines.extend(rest.iter().map(|line| line.replace("{RELEASES}", RELEASES)));
        lines
    }

    fn gitlab_release(links: Value) -> Value {
        json!({
            "tag_name": "v1.2.0", "name": "widgets 1.2.0",
            "_links": {"self": "https://gitlab.example.com/acme/widgets/-/releases/v1.2.0"},
            "assets": {"links": links},
        })
    }

    fn gitlab_link(id: u64, name: &str, url: &str) -> Value {
        json!({
            "id": id, "name": name, "url": url, "link_type": "package",
            "direct_asset_url": format!("https://gitlab.example.com/acme/widgets/-/releases/v1.2.0/downloads/{name}"),
        })
    }

    #[test]
    fn gitlab_uploads_generic_packages_then_creates_the_release_linking_them() {
        let tgz = format!("{PACKAGE}/widgets-1.2.0.tar.gz");
        let zip = format!("{PACKAGE}/widgets-1.2.0.zip");
        let mut script = Script::new(vec![
            (200, json!([])),
            (201, json!({"message": "201 Created"})),
            (201, json!({"message": "201 Created"})),
            // GitLab 13 says 403 for a release that does not exist.
            (403, json!({"message": "403 Forbidden"})),
            (
                201,
                gitlab_release(json!([
                    gitlab_link(1, "widgets-1.2.0.tar.gz", &tgz),
                    gitlab_link(2, "widgets-1.2.0.zip", &zip)
                ])),
            ),
        ]);
        let settings = ForgeSettings::default();
        let published = run(&mut script, &target(Kind::GitLab, GITLAB), &settings, &assets()).unwrap();
        assert_eq!(script.lines(), gitlab_lines_then(&["POST {RELEASES}"]));
        assert_eq!(script.calls[1].body.as_deref(), Some(&b"tgz"[..]));
        assert_eq!(script.header(1, "content-type"), "application/octet-stream");
        assert_eq!(
            script.json_body(4),
            json!({
                "tag_name": "v1.2.0", "name": "widgets 1.2.0", "description": "Bug fixes",
                "assets": {"links": [
                    {"name": "widgets-1.2.0.tar.gz", "url": tgz, "direct_asset_path": "/widgets-1.2.0.tar.gz", "link_type": "package"},
                    {"name": "widgets-1.2.0.zip", "url": zip, "direct_asset_path": "/widgets-1.2.0.zip", "link_type": "package"},
                ]},
            })
        );
        assert_eq!(published.url, "https://gitlab.example.com/acme/widgets/-/releases/v1.2.0");
        assert_eq!(
            published.assets[1].1,
            "https://gitlab.example.com/acme/widgets/-/releases/v1.2.0/downloads/widgets-1.2.0.zip"
        );
    }

    #[test]
    fn gitlab_second_run_updates_the_release_and_only_the_links_that_differ() {
        let tgz = format!("{PACKAGE}/widgets-1.2.0.tar.gz");
        let zip = format!("{PACKAGE}/widgets-1.2.0.zip");
        let existing = json!([
            gitlab_link(1, "widgets-1.2.0.tar.gz", &tgz),
            gitlab_link(2, "widgets-1.2.0.zip", "https://old.example.com/x.zip")
        ]);
        let mut script = Script::new(vec![
            (200, json!([])),
            (201, json!({"message": "201 Created"})),
            (201, json!({"message": "201 Created"})),
            (200, gitlab_release(existing.clone())),
            (200, gitlab_release(existing)),
            (200, gitlab_link(2, "widgets-1.2.0.zip", &zip)),
        ]);
        let settings = ForgeSettings::default();
        let published = run(&mut script, &target(Kind::GitLab, GITLAB), &settings, &assets()).unwrap();
        assert_eq!(
            script.lines(),
            gitlab_lines_then(&["PUT {RELEASES}/v1.2.0", "PUT {RELEASES}/v1.2.0/assets/links/2"])
        );
        assert_eq!(script.json_body(4), json!({"name": "widgets 1.2.0", "description": "Bug fixes"}));
        assert_eq!(
            script.json_body(5),
            json!({"url": zip, "direct_asset_path": "/widgets-1.2.0.zip", "link_type": "package"})
        );
        assert_eq!(published.assets.len(), 2);

        // A link missing from the release is added.
        let mut script = Script::new(vec![
            (200, json!([])),
            (201, json!({})),
            (200, gitlab_release(json!([]))),
            (200, gitlab_release(json!([]))),
            (201, gitlab_link(7, "widgets-1.2.0.tar.gz", &tgz)),
        ]);
        run(&mut script, &target(Kind::GitLab, GITLAB), &settings, &assets()[..1]).unwrap();
        assert_eq!(script.lines()[4], format!("POST {RELEASES}/v1.2.0/assets/links"));
    }

    fn package_file(id: u64, name: &str, sha256: &str) -> Value {
        json!({"id": id, "package_id": 4, "file_name": name, "size": 3, "file_sha256": sha256})
    }

    #[test]
    fn gitlab_keeps_a_package_file_with_the_same_content_and_replaces_one_that_differs() {
        // GitLab keeps every file put under a name, so a re-run must not put it again.
        let tgz = format!("{PACKAGE}/widgets-1.2.0.tar.gz");
        let zip = format!("{PACKAGE}/widgets-1.2.0.zip");
        let links = json!([gitlab_link(1, "widgets-1.2.0.tar.gz", &tgz), gitlab_link(2, "widgets-1.2.0.zip", &zip)]);
        let mut script = Script::new(vec![
            (
                200,
                json!([
                    {"id": 3, "name": "widgets-extra", "version": "1.2.0", "package_type": "generic"},
                    {"id": 4, "name": "widgets", "version": "1.2.0", "package_type": "generic"},
                ]),
            ),
            (
                200,
                json!([
                    package_file(20, "widgets-1.2.0.tar.gz", "sha256 of widgets-1.2.0.tar.gz"),
                    package_file(21, "widgets-1.2.0.zip", "an older build"),
                    package_file(22, "widgets-1.2.0.zip", "sha256 of widgets-1.2.0.zip"),
                    package_file(23, "notes.txt", "other"),
                ]),
            ),
            (204, Value::Null),
            (204, Value::Null),
            (201, json!({"message": "201 Created"})),
            (200, gitlab_release(links.clone())),
            (200, gitlab_release(links)),
        ]);
        run(&mut script, &target(Kind::GitLab, GITLAB), &ForgeSettings::default(), &assets()).unwrap();
        let files = "https://gitlab.example.com/api/v4/projects/acme%2Fwidgets/packages/4/package_files";
        assert_eq!(
            script.lines(),
            [
                format!("GET {PACKAGES}"),
                format!("GET {files}?sort=asc&per_page=100&page=1"),
                format!("DELETE {files}/21"),
                format!("DELETE {files}/22"),
                format!("PUT {PACKAGE}/widgets-1.2.0.zip"),
                format!("GET {RELEASES}/v1.2.0"),
                format!("PUT {RELEASES}/v1.2.0"),
            ],
            "the unchanged tar.gz is not put again; every zip of the name goes before the new one"
        );
    }

    #[test]
    fn listings_are_read_page_by_page_and_too_many_pages_is_an_error() {
        let full =
            |from: u64| Value::Array((from..from + 100).map(|id| package_file(id, &format!("f{id}"), "x")).collect());
        let package = json!([{"id": 4, "name": "widgets", "version": "1.2.0", "package_type": "generic"}]);
        let mut replies = vec![
            (200, package.clone()),
            (200, full(0)),
            (200, json!([package_file(500, "widgets-1.2.0.tar.gz", "sha256 of widgets-1.2.0.tar.gz")])),
        ];
        replies.extend([
            (200, gitlab_release(json!([]))),
            (200, gitlab_release(json!([]))),
            (201, gitlab_link(7, "widgets-1.2.0.tar.gz", "u")),
        ]);
        let mut script = Script::new(replies);
        run(&mut script, &target(Kind::GitLab, GITLAB), &ForgeSettings::default(), &assets()[..1]).unwrap();
        assert!(script.lines()[2].ends_with("package_files?sort=asc&per_page=100&page=2"), "{:?}", script.lines());
        assert!(
            !script.lines().iter().any(|line| line
                .starts_with("PUT https://gitlab.example.com/api/v4/projects/acme%2Fwidgets/packages/generic")),
            "the file on page 2 is found unchanged"
        );

        let mut replies = vec![(200, package)];
        replies.extend((0..MAX_PAGES as u64).map(|page| (200, full(page * 100))));
        let mut script = Script::new(replies);
        let err = run(&mut script, &target(Kind::GitLab, GITLAB), &ForgeSettings::default(), &assets()).unwrap_err();
        assert!(
            matches!(&err, Error::Failed(m) if m.contains("listing the package's files") && m.contains("more than 20 pages")),
            "{err:?}"
        );
    }

    #[test]
    fn refusals_name_the_call_and_the_forge_message_and_5xx_is_transient() {
        let mut script = Script::new(vec![
            (404, json!({})),
            (422, json!({"message": "Validation Failed", "errors": [{"code": "already_exists"}]})),
        ]);
        let err = run(&mut script, &target(Kind::GitHub, GITHUB), &ForgeSettings::default(), &assets()).unwrap_err();
        let Error::Failed(message) = err else { panic!("not a failure: {err:?}") };
        assert_eq!(
            message,
            "forge release: creating the release: POST https://api.github.com/repos/acme/widgets/releases: HTTP 422: Validation Failed"
        );
        let mut script = Script::new(vec![(200, json!([])), (502, json!({"message": "Bad Gateway"}))]);
        let err = run(&mut script, &target(Kind::GitLab, GITLAB), &ForgeSettings::default(), &assets()).unwrap_err();
        assert!(
            matches!(&err, Error::Transient(msg) if msg.contains("uploading widgets-1.2.0.tar.gz to the generic package")),
            "{err:?}"
        );
        let mut script = Script::new(vec![(429, Value::Null)]);
        let err = run(&mut script, &target(Kind::Gitea, GITEA), &ForgeSettings::default(), &assets()).unwrap_err();
        assert!(matches!(err, Error::Transient(_)), "{err:?}");
    }

    #[test]
    fn apis_default_from_the_forge_and_the_repository_address() {
        let rows = [
            (Kind::GitHub, "https://github.com/acme/w", "https://api.github.com"),
            (Kind::GitHub, "https://ghe.example.com/acme/w", "https://ghe.example.com/api/v3"),
            (Kind::GitLab, "https://gitlab.example.com/group/sub/w", "https://gitlab.example.com/api/v4"),
            (Kind::Gitea, "http://git.local:3000/acme/w", "http://git.local:3000/api/v1"),
        ];
        for (kind, html, want) in rows {
            let full_name = html.splitn(4, '/').nth(3).unwrap();
            assert_eq!(default_api(kind, html, full_name).ok().as_deref(), Some(want), "{kind:?} {html}");
        }
        // Review L10: a forge served under a path keeps it.
        let under = [
            (Kind::Gitea, "https://example.com/git/acme/w/", "https://example.com/git/api/v1"),
            (Kind::GitHub, "https://example.com/ghe/acme/w", "https://example.com/ghe/api/v3"),
        ];
        for (kind, html, want) in under {
            assert_eq!(default_api(kind, html, "acme/w").ok().as_deref(), Some(want), "{kind:?} {html}");
        }
        assert_eq!(
            default_api(Kind::Gitea, "https://example.com/other", "acme/w").unwrap(),
            "https://example.com/api/v1"
        );
        assert!(default_api(Kind::GitLab, "", "acme/w").is_err());
    }

    fn event(forge: &str, html_url: &str) -> Event {
        Event {
            delivery: "d1".into(),
            source: "src".into(),
            forge: forge.into(),
            kind: "tag".into(),
            action: None,
            repository: gitauto_plugin::Repository {
                owner: "acme".into(),
                name: "widgets".into(),
                full_name: "acme/widgets".into(),
                clone_url: format!("{html_url}.git"),
                html_url: html_url.into(),
                default_branch: None,
            },
            git_ref: Some("refs/tags/v1.2.0".into()),
            branch: None,
            tag: Some("v1.2.0".into()),
            before: None,
            after: None,
            deleted: false,
            commits: Vec::new(),
            commits_complete: true,
            sender: None,
            pull_request: None,
            payload: "{}".into(),
        }
    }

    #[test]
    fn the_forge_and_repository_default_to_the_events() {
        let settings = ForgeSettings::default();
        let forgejo = Target::new(&settings, &event("forgejo", "https://code.example.org/acme/widgets")).unwrap();
        assert_eq!(forgejo, target(Kind::Gitea, "https://code.example.org/api/v1"));
        let gitlab = ForgeSettings {
            kind: Some("gitlab".into()),
            api: Some("https://gl.example.com/api/v4/".into()),
            repository: Some("42".into()),
            ..ForgeSettings::default()
        };
        let target = Target::new(&gitlab, &event("github", "https://github.com/acme/widgets")).unwrap();
        assert_eq!(
            (target.kind, target.api.as_str(), target.repository.as_str()),
            (Kind::GitLab, "https://gl.example.com/api/v4", "42")
        );
        let Err(Error::InvalidSettings(message)) =
            Target::new(&settings, &event("bitbucket", "https://bitbucket.org/acme/widgets"))
        else {
            panic!("bitbucket has no release API here")
        };
        assert!(message.contains("no release API for forge `bitbucket`"), "{message}");
    }

    #[test]
    fn an_asset_holding_the_same_file_is_kept_and_one_that_differs_is_replaced() {
        // Review L2: deleting first loses the asset when the upload then fails.
        let old = json!([
            {"id": 5, "name": "widgets-1.2.0.tar.gz", "size": 3, "digest": "sha256:sha256 of widgets-1.2.0.tar.gz",
             "browser_download_url": "https://github.com/acme/widgets/releases/download/v1.2.0/widgets-1.2.0.tar.gz"},
            {"id": 6, "name": "widgets-1.2.0.zip", "size": 3, "digest": "sha256:another build"},
        ]);
        let mut script = Script::new(vec![
            (200, github_release(old.clone())),
            (200, github_release(old)),
            (204, Value::Null),
            (201, uploaded("widgets-1.2.0.zip")),
        ]);
        let published = run(&mut script, &target(Kind::GitHub, GITHUB), &ForgeSettings::default(), &assets()).unwrap();
        assert_eq!(
            script.lines(),
            [
                "GET https://api.github.com/repos/acme/widgets/releases/tags/v1.2.0".to_owned(),
                "PATCH https://api.github.com/repos/acme/widgets/releases/1".to_owned(),
                "DELETE https://api.github.com/repos/acme/widgets/releases/assets/6".to_owned(),
                format!("POST {UPLOADS}?name=widgets-1.2.0.zip"),
            ]
        );
        assert_eq!(
            published.assets[0].1, "https://github.com/acme/widgets/releases/download/v1.2.0/widgets-1.2.0.tar.gz",
            "the kept asset's address"
        );

        // Gitea gives no digest: an attachment of the same size is downloaded from the
        // forge and compared; one elsewhere, or of another size, is replaced.
        let old = json!([
            {"id": 11, "name": "widgets-1.2.0.tar.gz", "size": 3, "browser_download_url": "https://git.example.com/attachments/a"},
            {"id": 12, "name": "widgets-1.2.0.zip", "size": 3, "browser_download_url": "https://git.example.com/attachments/b"},
        ]);
        let attached = json!({"id": 13, "name": "widgets-1.2.0.zip", "browser_download_url": "https://git.example.com/attachments/c"});
        let mut script = Script::new(vec![
            (200, gitea_release(old.clone())),
            (200, gitea_release(old)),
            (200, json!("raw:tgz")),
            (200, json!("raw:old")),
            (204, Value::Null),
            (201, attached),
        ]);
        run(&mut script, &target(Kind::Gitea, GITEA), &ForgeSettings::default(), &assets()).unwrap();
        assert_eq!(
            script.lines(),
            [
                "GET https://git.example.com/api/v1/repos/acme/widgets/releases/tags/v1.2.0",
                "PATCH https://git.example.com/api/v1/repos/acme/widgets/releases/3",
                "GET https://git.example.com/attachments/a",
                "GET https://git.example.com/attachments/b",
                "DELETE https://git.example.com/api/v1/repos/acme/widgets/releases/3/assets/12",
                "POST https://git.example.com/api/v1/repos/acme/widgets/releases/3/assets?name=widgets-1.2.0.zip",
            ]
        );
        let elsewhere = json!([{"id": 11, "name": "widgets-1.2.0.tar.gz", "size": 3, "browser_download_url": "https://cdn.example.net/a"}]);
        let mut script = Script::new(vec![
            (200, gitea_release(elsewhere.clone())),
            (200, gitea_release(elsewhere)),
            (204, Value::Null),
            (201, json!({"id": 14, "name": "widgets-1.2.0.tar.gz"})),
        ]);
        run(&mut script, &target(Kind::Gitea, GITEA), &ForgeSettings::default(), &assets()[..1]).unwrap();
        assert_eq!(script.lines()[2], "DELETE https://git.example.com/api/v1/repos/acme/widgets/releases/3/assets/11");
    }

    #[test]
    fn an_upload_url_is_accepted_only_on_the_api_or_its_upload_host_for_this_release() {
        let tail = "repos/acme/widgets/releases/1/assets";
        let accepted = [
            (GITHUB, format!("https://uploads.github.com/{tail}")),
            (GITHUB, format!("https://api.github.com/{tail}")),
            ("https://ghe.example.com/api/v3", format!("https://ghe.example.com/api/uploads/{tail}")),
            ("http://127.0.0.1:4000", format!("http://127.0.0.1:4000/uploads/{tail}")),
        ];
        for (api, url) in accepted {
            assert_eq!(upload_url(api, &url, "acme/widgets", 1).ok().as_deref(), Some(url.as_str()), "{api} {url}");
        }
        let refused = [
            (
                GITHUB,
                format!("https://s3.us-east-1.amazonaws.com/{tail}"),
                "is not on api.github.com or uploads.github.com",
            ),
            (GITHUB, format!("https://uploads.github.com.evil.example/{tail}"), "is not on"),
            (GITHUB, format!("https://user@uploads.github.com/{tail}"), "is not a plain https URL"),
            (GITHUB, format!("http://uploads.github.com/{tail}"), "is not a plain https URL"),
            (GITHUB, format!("https://uploads.github.com/{tail}?x=1"), "is not a plain https URL"),
            (GITHUB, "https://uploads.github.com/repos/other/repo/releases/1/assets".to_owned(), "does not end in"),
            (GITHUB, "https://uploads.github.com/repos/acme/widgets/releases/2/assets".to_owned(), "does not end in"),
            (GITHUB, "uploads.github.com".to_owned(), "is not an absolute URL"),
        ];
        for (api, url, why) in refused {
            let err = upload_url(api, &url, "acme/widgets", 1).unwrap_err();
            assert!(
                matches!(&err, Error::Failed(m) if m.contains(why) && m.contains("`forge.uploads`")),
                "{url}: {err:?}"
            );
        }

        // Through a whole run: a hostile answer gets no upload.
        let mut hostile = github_release(json!([]));
        hostile["upload_url"] = json!(format!("https://s3.us-east-1.amazonaws.com/{tail}{{?name,label}}"));
        let mut script = Script::new(vec![(404, json!({})), (201, hostile)]);
        let err = run(&mut script, &target(Kind::GitHub, GITHUB), &ForgeSettings::default(), &assets()).unwrap_err();
        assert!(matches!(&err, Error::Failed(m) if m.contains("upload_url")), "{err:?}");
        assert_eq!(script.calls.len(), 2, "nothing is sent to the other host");
    }

    #[test]
    fn names_are_encoded_as_one_segment() {
        assert_eq!(encode("group/sub/w"), "group%2Fsub%2Fw");
        assert_eq!(encode("8.x-1.2+rc 1"), "8.x-1.2%2Brc%201");
    }

    #[test]
    fn the_multipart_boundary_never_occurs_in_the_file() {
        let data = b"--gitauto-release-boundary-7f3e9c1d".to_vec();
        let (content_type, body) = multipart("attachment", "a\"b.zip", "application/zip", &data);
        let boundary = content_type.rsplit('=').next().unwrap();
        assert_eq!(boundary, "gitauto-release-boundary-7f3e9c1dx");
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("filename=\"a\\\"b.zip\""), "{text}");
    }

    #[test]
    fn the_release_is_named_from_settings_and_a_prerelease_unless_stable() {
        let record = |tag: &str| ReleaseRecord {
            project: "widgets".into(),
            version: tag.trim_start_matches('v').into(),
            tag: tag.into(),
            commit: "0".repeat(40),
            date: 0,
            parsed: crate::version::parse(tag).unwrap(),
            message: Some("Security update".into()),
            notes: None,
            terms: Vec::new(),
            assets: Vec::new(),
            release_link: None,
        };
        let default = ForgeSettings::default();
        let stable = release_of(&default, &record("v1.2.0"));
        assert_eq!(
            (stable.name.as_str(), stable.notes.as_str(), stable.prerelease),
            ("widgets 1.2.0", "Security update", false)
        );
        assert!(release_of(&default, &record("8.x-1.3-beta1")).prerelease);
        let named = ForgeSettings { name: Some("{tag} of {project}".into()), prerelease: Some(false), ..default };
        let beta = release_of(&named, &ReleaseRecord { notes: Some("Notes".into()), ..record("v1.3.0-rc1") });
        assert_eq!(
            (beta.name.as_str(), beta.notes.as_str(), beta.prerelease),
            ("v1.3.0-rc1 of widgets", "Notes", false)
        );
    }

    #[test]
    fn settings_refuse_unknown_keys_and_credentials() {
        let ok: ForgeSettings = serde_json::from_value(json!({"kind": "gitlab", "package": "widgets"})).unwrap();
        assert_eq!(ok.kind.as_deref(), Some("gitlab"));
        assert!(serde_json::from_value::<ForgeSettings>(json!({"token": "x"})).is_err());
    }
}
