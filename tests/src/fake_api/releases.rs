//! Forge releases in the fake, as each forge answers: GitHub's releases and assets (raw
//! uploads on the upload host, served here under `/uploads`), GitLab's generic packages
//! and releases with links (`/api/v4`), Gitea's releases and multipart attachments
//! (`/api/v1`). A second release for a tag and a second asset of a name are refused as
//! the forges refuse them. Uploads keep their bytes, which `Recorded` (JSON) cannot.

use super::{State, answer, not_found};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::BTreeMap;

/// The releases and files the fake holds.
#[derive(Debug, Default)]
pub struct Releases {
    /// Every release made, in creation order.
    pub releases: Vec<Release>,
    /// GitLab generic packages. As GitLab does, a file put again under a name it
    /// already has is kept beside the old one, not in its place.
    pub packages: Vec<Package>,
    /// Every upload (GitHub asset, Gitea attachment, GitLab package file), in order.
    pub uploads: Vec<Upload>,
    /// A hostile forge: the `upload_url` every GitHub release answer names instead of
    /// the fake's own upload host.
    pub upload_url: Option<String>,
    next_id: u64,
}

/// One release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// `github`, `gitlab` or `gitea`.
    pub forge: &'static str,
    /// `owner/name` (GitLab: the project's path).
    pub repository: String,
    /// Its id.
    pub id: u64,
    /// The tag it is for.
    pub tag: String,
    /// Its title.
    pub name: String,
    /// Its notes (GitLab's `description`).
    pub body: String,
    /// Whether it is marked as a pre-release (GitHub, Gitea).
    pub prerelease: bool,
    /// Its assets (GitLab: links).
    pub assets: Vec<ReleaseAsset>,
}

/// An asset of a release (GitLab: a release link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseAsset {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The bytes uploaded (empty for a GitLab link).
    pub data: Vec<u8>,
    /// GitLab: where the link points and its `direct_asset_path`.
    pub link: Option<(String, String)>,
}

/// A GitLab generic package: a name and version in a project, holding files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Its id.
    pub id: u64,
    /// The project's path.
    pub project: String,
    /// The package's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its files in the order they were put, duplicates of a name included.
    pub files: Vec<PackageFile>,
}

/// One file of a GitLab package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// One upload as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// `"METHOD path?query"`.
    pub line: String,
    /// The request's `Content-Type`.
    pub content_type: String,
    /// The file: the raw body, or the multipart form's `attachment` part (Gitea).
    pub data: Vec<u8>,
}

impl Releases {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        1000 + self.next_id
    }

    /// The files of GitLab's generic package `name` `version` in `project`, in the
    /// order they were put: `(file name, bytes)`.
    pub fn package_files(&self, project: &str, name: &str, version: &str) -> Vec<(String, Vec<u8>)> {
        self.packages
            .iter()
            .filter(|p| p.project == project && p.name == name && p.version == version)
            .flat_map(|p| p.files.iter().map(|f| (f.name.clone(), f.data.clone())))
            .collect()
    }

    /// The release of `forge` for `tag` in `repository`.
    pub fn find(&self, forge: &str, repository: &str, tag: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.forge == forge && r.repository == repository && r.tag == tag)
    }
}

/// One request of the release APIs: `Some(answer)` when it is one, else `None`.
pub(super) fn handle(
    s: &mut State,
    base: &str,
    method: &str,
    uri: &Uri,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let uri_path = uri.path();
    let parts: Vec<String> = uri_path.trim_matches('/').split('/').map(decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let line = format!("{method} {}", uri.path_and_query().map_or(uri_path, |pq| pq.as_str()));
    let upload = |data: Vec<u8>| Upload { line: line.clone(), content_type: content_type.clone(), data };
    let r = &mut s.releases;
    let upload_url = r.upload_url.clone();
    let github_json = |base: &str, release: &Release| github_json(base, release, upload_url.as_deref());
    Some(match (method, parts.as_slice()) {
        // GitHub.
        ("GET", ["repos", owner, name, "releases", "tags", tag]) => {
            match r.find("github", &format!("{owner}/{name}"), tag) {
                Some(release) => answer(200, github_json(base, release)),
                None => answer(404, json!({"message": "Not Found", "status": "404"})),
            }
        }
        ("POST", ["repos", owner, name, "releases"]) => {
            let repository = format!("{owner}/{name}");
            let tag = json["tag_name"].as_str().unwrap_or_default().to_owned();
            if r.find("github", &repository, &tag).is_some() {
                return Some(answer(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "Release", "code": "already_exists", "field": "tag_name"}]}),
                ));
            }
            let release = new_release(r, "github", repository, tag, &json, "body");
            answer(201, github_json(base, &release))
        }
        ("PATCH", ["repos", owner, name, "releases", id]) => {
            let Some(release) = by_id(r, "github", &format!("{owner}/{name}"), id) else { return Some(not_found()) };
            update(release, &json, "body");
            let release = release.clone();
            answer(200, github_json(base, &release))
        }
        ("DELETE", ["repos", owner, name, "releases", "assets", id]) => {
            let repository = format!("{owner}/{name}");
            let found =
                r.releases.iter_mut().filter(|rel| rel.forge == "github" && rel.repository == repository).find_map(
                    |rel| {
                        let at = rel.assets.iter().position(|a| a.id.to_string() == *id)?;
                        Some(rel.assets.remove(at))
                    },
                );
            if found.is_some() { answer(204, Value::Null) } else { not_found() }
        }
        ("POST", ["uploads", "repos", owner, name, "releases", id, "assets"]) => {
            let Some(asset_name) = query.get("name").cloned() else {
                return Some(answer(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"field": "name", "code": "missing"}]}),
                ));
            };
            if content_type.is_empty() {
                return Some(answer(400, json!({"message": "Bad Content-Type header value"})));
            }
            let uploaded = upload(body.to_vec());
            let asset_id = r.id();
            let Some(release) = by_id(r, "github", &format!("{owner}/{name}"), id) else { return Some(not_found()) };
            if release.assets.iter().any(|a| a.name == asset_name) {
                return Some(answer(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}]}),
                ));
            }
            release.assets.push(ReleaseAsset { id: asset_id, name: asset_name, data: body.to_vec(), link: None });
            let asset = github_asset(base, release, release.assets.last().expect("just pushed"));
            r.uploads.push(uploaded);
            answer(201, asset)
        }

        // Gitea and Forgejo.
        ("GET", ["api", "v1", "repos", owner, name, "releases", "tags", tag]) => {
            match r.find("gitea", &format!("{owner}/{name}"), tag) {
                Some(release) => answer(200, gitea_json(base, release)),
                None => answer(404, json!({"errors": [], "message": "The target couldn't be found."})),
            }
        }
        ("POST", ["api", "v1", "repos", owner, name, "releases"]) => {
            let repository = format!("{owner}/{name}");
            let tag = json["tag_name"].as_str().unwrap_or_default().to_owned();
            if r.find("gitea", &repository, &tag).is_some() {
                return Some(answer(409, json!({"message": "Release is has no Tag", "url": ""})));
            }
            let release = new_release(r, "gitea", repository, tag, &json, "body");
            answer(201, gitea_json(base, &release))
        }
        ("PATCH", ["api", "v1", "repos", owner, name, "releases", id]) => {
            let Some(release) = by_id(r, "gitea", &format!("{owner}/{name}"), id) else { return Some(not_found()) };
            update(release, &json, "body");
            let release = release.clone();
            answer(200, gitea_json(base, &release))
        }
        ("POST", ["api", "v1", "repos", owner, name, "releases", id, "assets"]) => {
            let Some(data) = multipart_file(&content_type, body, "attachment") else {
                return Some(answer(400, json!({"message": "GetFile: http: no such file"})));
            };
            let uploaded = upload(data.clone());
            let asset_id = r.id();
            let Some(release) = by_id(r, "gitea", &format!("{owner}/{name}"), id) else { return Some(not_found()) };
            let asset_name = query.get("name").cloned().unwrap_or_default();
            release.assets.push(ReleaseAsset { id: asset_id, name: asset_name, data, link: None });
            let asset = gitea_asset(base, release.assets.last().expect("just pushed"));
            r.uploads.push(uploaded);
            answer(201, asset)
        }
        ("GET", ["attachments", uuid]) => {
            let found = r
                .releases
                .iter()
                .filter(|rel| rel.forge == "gitea")
                .flat_map(|rel| &rel.assets)
                .find(|a| format!("uuid-{}", a.id) == *uuid);
            match found {
                Some(a) => (axum::http::StatusCode::OK, a.data.clone()).into_response(),
                None => not_found(),
            }
        }
        ("DELETE", ["api", "v1", "repos", owner, name, "releases", id, "assets", asset]) => {
            let Some(release) = by_id(r, "gitea", &format!("{owner}/{name}"), id) else { return Some(not_found()) };
            let before = release.assets.len();
            release.assets.retain(|a| a.id.to_string() != *asset);
            if release.assets.len() < before { answer(204, Value::Null) } else { not_found() }
        }

        // GitLab.
        ("PUT", ["api", "v4", "projects", project, "packages", "generic", package, version, file]) => {
            let file_id = r.id();
            let at = match r
                .packages
                .iter()
                .position(|p| p.project == *project && p.name == *package && p.version == *version)
            {
                Some(at) => at,
                None => {
                    let id = r.id();
                    let new = Package {
                        id,
                        project: (*project).to_owned(),
                        name: (*package).to_owned(),
                        version: (*version).to_owned(),
                        files: Vec::new(),
                    };
                    r.packages.push(new);
                    r.packages.len() - 1
                }
            };
            // GitLab keeps a second file of the same name beside the first.
            r.packages[at].files.push(PackageFile { id: file_id, name: (*file).to_owned(), data: body.to_vec() });
            r.uploads.push(upload(body.to_vec()));
            answer(201, json!({"message": "201 Created"}))
        }
        ("GET", ["api", "v4", "projects", project, "packages", "generic", package, version, file]) => {
            // GitLab serves the newest file of a name.
            let found = r
                .packages
                .iter()
                .filter(|p| p.project == *project && p.name == *package && p.version == *version)
                .flat_map(|p| &p.files)
                .rev()
                .find(|f| f.name == *file);
            match found {
                Some(f) => (axum::http::StatusCode::OK, f.data.clone()).into_response(),
                None => answer(404, json!({"message": "404 Not Found"})),
            }
        }
        ("GET", ["api", "v4", "projects", project, "packages"]) => {
            // `package_name` matches by substring, `package_version` exactly.
            let name = query.get("package_name").cloned().unwrap_or_default();
            let version = query.get("package_version");
            let items: Vec<Value> = r
                .packages
                .iter()
                .filter(|p| p.project == *project && p.name.contains(&name) && version.is_none_or(|v| *v == p.version))
                .filter(|_| query.get("package_type").is_none_or(|t| t == "generic"))
                .map(|p| json!({"id": p.id, "name": p.name, "version": p.version, "package_type": "generic"}))
                .collect();
            listing(query, items)
        }
        ("GET", ["api", "v4", "projects", project, "packages", id, "package_files"]) => {
            let Some(package) = r.packages.iter().find(|p| p.project == *project && p.id.to_string() == *id) else {
                return Some(answer(404, json!({"message": "404 Not Found"})));
            };
            let mut items: Vec<Value> = package
                .files
                .iter()
                .map(|f| {
                    json!({
                        "id": f.id, "package_id": package.id, "file_name": f.name, "size": f.data.len(),
                        "file_sha256": hex::encode(sha2::Sha256::digest(&f.data)),
                    })
                })
                .collect();
            if query.get("sort").map(String::as_str) == Some("desc") {
                items.reverse();
            }
            listing(query, items)
        }
        ("DELETE", ["api", "v4", "projects", project, "packages", id, "package_files", file]) => {
            let Some(package) = r.packages.iter_mut().find(|p| p.project == *project && p.id.to_string() == *id) else {
                return Some(answer(404, json!({"message": "404 Not Found"})));
            };
            let before = package.files.len();
            package.files.retain(|f| f.id.to_string() != *file);
            if package.files.len() < before {
                answer(204, Value::Null)
            } else {
                answer(404, json!({"message": "404 Not Found"}))
            }
        }
        ("GET", ["api", "v4", "projects", project, "releases", tag]) => match r.find("gitlab", project, tag) {
            Some(release) => answer(200, gitlab_json(base, release)),
            None => answer(404, json!({"message": "404 Not Found"})),
        },
        ("POST", ["api", "v4", "projects", project, "releases"]) => {
            let tag = json["tag_name"].as_str().unwrap_or_default().to_owned();
            if r.find("gitlab", project, &tag).is_some() {
                return Some(answer(409, json!({"message": "Release already exists"})));
            }
            let mut release = new_release(r, "gitlab", (*project).to_owned(), tag, &json, "description");
            for link in json["assets"]["links"].as_array().into_iter().flatten() {
                let id = r.id();
                release.assets.push(link_of(id, link));
            }
            let at = r.releases.len() - 1;
            r.releases[at] = release.clone();
            answer(201, gitlab_json(base, &release))
        }
        ("PUT" | "POST", ["api", "v4", "projects", project, "releases", tag, rest @ ..]) => {
            let id = r.id();
            gitlab_change(r, base, (method, rest), project, tag, id, &json)
        }
        _ => return None,
    })
}

/// A change to GitLab release `tag` of `project`: the release (`PUT`), a new link
/// (`POST assets/links`, which gets `id`) or a link (`PUT assets/links/:id`).
fn gitlab_change(
    r: &mut Releases,
    base: &str,
    (method, rest): (&str, &[&str]),
    project: &str,
    tag: &str,
    id: u64,
    json: &Value,
) -> Response {
    let found = r.releases.iter_mut().find(|rel| rel.forge == "gitlab" && rel.repository == project && rel.tag == tag);
    let Some(release) = found else { return answer(404, json!({"message": "404 Not Found"})) };
    match (method, rest) {
        ("PUT", []) => {
            update(release, json, "description");
            answer(200, gitlab_json(base, release))
        }
        ("POST", ["assets", "links"]) => {
            if release.assets.iter().any(|a| json["name"] == a.name.as_str()) {
                return answer(400, json!({"message": {"name": ["has already been taken"]}}));
            }
            release.assets.push(link_of(id, json));
            answer(201, gitlab_link(base, release, release.assets.last().expect("just pushed")))
        }
        ("PUT", ["assets", "links", link]) => {
            let Some(at) = release.assets.iter().position(|a| a.id.to_string() == *link) else {
                return answer(404, json!({"message": "404 Not found"}));
            };
            let mut changed = json.clone();
            changed["name"] = json!(release.assets[at].name);
            release.assets[at] = link_of(release.assets[at].id, &changed);
            answer(200, gitlab_link(base, release, &release.assets[at]))
        }
        _ => answer(404, json!({"error": "404 Not Found"})),
    }
}

fn new_release(
    r: &mut Releases,
    forge: &'static str,
    repository: String,
    tag: String,
    json: &Value,
    notes: &str,
) -> Release {
    let release = Release {
        forge,
        repository,
        id: r.id(),
        name: json["name"].as_str().unwrap_or(&tag).to_owned(),
        body: json[notes].as_str().unwrap_or_default().to_owned(),
        prerelease: json["prerelease"].as_bool().unwrap_or(false),
        tag,
        assets: Vec::new(),
    };
    r.releases.push(release.clone());
    release
}

fn by_id<'a>(r: &'a mut Releases, forge: &str, repository: &str, id: &str) -> Option<&'a mut Release> {
    r.releases.iter_mut().find(|rel| rel.forge == forge && rel.repository == repository && rel.id.to_string() == id)
}

fn update(release: &mut Release, json: &Value, notes: &str) {
    if let Some(name) = json["name"].as_str() {
        release.name = name.to_owned();
    }
    if let Some(body) = json[notes].as_str() {
        release.body = body.to_owned();
    }
    if let Some(prerelease) = json["prerelease"].as_bool() {
        release.prerelease = prerelease;
    }
}

fn link_of(id: u64, json: &Value) -> ReleaseAsset {
    let url = json["url"].as_str().unwrap_or_default().to_owned();
    let path = json["direct_asset_path"].as_str().unwrap_or_default().to_owned();
    ReleaseAsset {
        id,
        name: json["name"].as_str().unwrap_or_default().to_owned(),
        data: Vec::new(),
        link: Some((url, path)),
    }
}

fn github_asset(base: &str, release: &Release, asset: &ReleaseAsset) -> Value {
    json!({
        "id": asset.id, "name": asset.name, "state": "uploaded", "size": asset.data.len(),
        "digest": format!("sha256:{}", hex::encode(sha2::Sha256::digest(&asset.data))),
        "url": format!("{base}/repos/{}/releases/assets/{}", release.repository, asset.id),
        "browser_download_url": format!("{base}/html/{}/releases/download/{}/{}", release.repository, release.tag, asset.name),
    })
}

fn github_json(base: &str, release: &Release, upload_url: Option<&str>) -> Value {
    let repo = &release.repository;
    let upload_url = upload_url.map_or_else(
        || format!("{base}/uploads/repos/{repo}/releases/{}/assets{{?name,label}}", release.id),
        str::to_owned,
    );
    json!({
        "id": release.id, "tag_name": release.tag, "name": release.name, "body": release.body,
        "draft": false, "prerelease": release.prerelease,
        "url": format!("{base}/repos/{repo}/releases/{}", release.id),
        "html_url": format!("{base}/html/{repo}/releases/tag/{}", release.tag),
        "upload_url": upload_url,
        "assets": release.assets.iter().map(|a| github_asset(base, release, a)).collect::<Vec<_>>(),
    })
}

fn gitea_asset(base: &str, asset: &ReleaseAsset) -> Value {
    json!({
        "id": asset.id, "name": asset.name, "size": asset.data.len(), "uuid": format!("uuid-{}", asset.id),
        "browser_download_url": format!("{base}/attachments/uuid-{}", asset.id),
    })
}

fn gitea_json(base: &str, release: &Release) -> Value {
    json!({
        "id": release.id, "tag_name": release.tag, "name": release.name, "body": release.body,
        "draft": false, "prerelease": release.prerelease,
        "html_url": format!("{base}/{}/releases/tag/{}", release.repository, release.tag),
        "assets": release.assets.iter().map(|a| gitea_asset(base, a)).collect::<Vec<_>>(),
    })
}

fn gitlab_link(base: &str, release: &Release, asset: &ReleaseAsset) -> Value {
    let (url, path) = asset.link.clone().unwrap_or_default();
    json!({
        "id": asset.id, "name": asset.name, "url": url, "link_type": "package",
        "direct_asset_url": format!("{base}/{}/-/releases/{}/downloads{path}", release.repository, release.tag),
    })
}

fn gitlab_json(base: &str, release: &Release) -> Value {
    json!({
        "tag_name": release.tag, "name": release.name, "description": release.body,
        "_links": {"self": format!("{base}/{}/-/releases/{}", release.repository, release.tag)},
        "assets": {"links": release.assets.iter().map(|a| gitlab_link(base, release, a)).collect::<Vec<_>>()},
    })
}

/// One page of a GitLab listing (`per_page`, default 20 and at most 100, and `page`).
fn listing(query: &BTreeMap<String, String>, items: Vec<Value>) -> Response {
    let per_page: usize = query.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(20).clamp(1, 100);
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    answer(200, Value::Array(items.into_iter().skip((page - 1) * per_page).take(per_page).collect()))
}

/// The content of part `field` of a `multipart/form-data` body, as Gitea reads it.
fn multipart_file(content_type: &str, body: &[u8], field: &str) -> Option<Vec<u8>> {
    let boundary = content_type.strip_prefix("multipart/form-data")?.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut at = find(text, delimiter.as_bytes())? + delimiter.len();
    loop {
        let rest = &text[at..];
        if rest.starts_with(b"--") {
            return None;
        }
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_ascii_lowercase();
        let data_start = head_end + 4;
        let closing = format!("\r\n{delimiter}");
        let data_end = data_start + find(&rest[data_start..], closing.as_bytes())?;
        if head.contains(&format!("name=\"{field}\"")) {
            return Some(rest[data_start..data_end].to_vec());
        }
        at += data_end + closing.len();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// One percent-decoded path segment (`+` stays a plus, as in a path).
fn decode(segment: &str) -> String {
    let escaped = format!("x={}", segment.replace('+', "%2B"));
    url::form_urlencoded::parse(escaped.as_bytes()).next().map(|(_, value)| value.into_owned()).unwrap_or_default()
}
