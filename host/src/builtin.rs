//! The built-in plugin catalogue: each one's component, compiled by the build script and
//! embedded in the binary so `wasm = "builtin:NAME"` works from a plain `cargo run`, and
//! what each needs from its grants. The config asks which exist and what they need; the
//! runtime loads their bytes; neither has to import the other.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The component of the built-in plugin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTIN_PLUGINS.iter().find(|(n, _)| *n == name).map(|(_, wasm)| *wasm)
}

/// The names of all built-in plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN_PLUGINS.iter().map(|(name, _)| *name)
}

/// Something a built-in plugin needs from its grants, named by one of its settings, so
/// that `gitauto check` can say "this step cannot work" before any event arrives.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// The `with` key holding the path, host or program; `table.key` for a key of an
    /// inline table (`s3.endpoint`).
    pub setting: &'static str,
    /// Whether the plugin refuses to run without the setting.
    pub required: bool,
    /// The value the plugin uses when the setting is absent.
    pub default: Option<&'static str>,
    /// What kind of grant must cover the value.
    pub kind: NeedKind,
}

/// The grant a [`Need`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeedKind {
    /// A directory inside `grants.dirs`.
    Dir,
    /// A directory inside a `git = true` (or `write = true`) entry of `grants.dirs`:
    /// git may change the repositories there.
    GitDir,
    /// A directory inside a `write = true` entry of `grants.dirs`.
    WritableDir,
    /// A program, the value followed by this suffix, in `grants.commands`.
    Program(&'static str),
    /// An http(s) URL whose host is in `grants.hosts`.
    Host,
    /// An S3 endpoint (a URL, or a bare host meaning https): the host requests go to
    /// must be in `grants.hosts`: the endpoint's own with `addressing = "path"` (the
    /// default), `<bucket>.<endpoint host>` with `"virtual"`, the bucket named by
    /// `output = "s3://bucket/..."`.
    S3Endpoint,
}

/// For a built-in plugin that works in the job's checkout unless told otherwise, the
/// setting that points it at a directory of its own instead (`run`'s `cwd`,
/// `mergeable`'s `repodir`), so a step with neither is refused at load.
pub fn checkout_or(name: &str) -> Option<&'static str> {
    match name {
        "run" => Some("cwd"),
        "mergeable" => Some("repodir"),
        "release" => Some("repodir"),
        _ => None,
    }
}

/// What built-in plugin `name` needs.
pub fn needs(name: &str) -> &'static [Need] {
    match name {
        "fetch-update" => &[Need { setting: "repodir", required: true, default: None, kind: NeedKind::GitDir }],
        // Without `repodir`, the job's checkout, which needs no directory grant.
        "mergeable" => &[Need { setting: "repodir", required: false, default: None, kind: NeedKind::Dir }],
        "md2html-convert" => &[
            Need { setting: "repodir", required: true, default: None, kind: NeedKind::WritableDir },
            // `output` may be a directory or `s3://bucket/prefix`: the plugin checks it.
            Need { setting: "output_dir", required: false, default: None, kind: NeedKind::WritableDir },
            Need { setting: "endpoint", required: false, default: None, kind: NeedKind::S3Endpoint },
            Need { setting: "callback", required: false, default: None, kind: NeedKind::Host },
        ],
        "edx-import" => &[
            Need { setting: "repodir", required: false, default: Some("/mnt/data/repos"), kind: NeedKind::GitDir },
            Need {
                setting: "edx_platform",
                required: false,
                default: Some("/edx/app/edxapp/edx-platform"),
                kind: NeedKind::Dir,
            },
            Need {
                setting: "virtual_env",
                required: false,
                default: Some("/edx/app/edxapp/venvs/edxapp"),
                kind: NeedKind::Program("/bin/python"),
            },
        ],
        "notify" => &[
            Need { setting: "url", required: false, default: None, kind: NeedKind::Host },
            Need { setting: "homeserver", required: false, default: None, kind: NeedKind::Host },
        ],
        "run" => &[Need { setting: "program", required: true, default: None, kind: NeedKind::Program("") }],
        "release" => &[
            Need { setting: "output_dir", required: true, default: None, kind: NeedKind::WritableDir },
            // Without `repodir`, the job's checkout, which needs no directory grant.
            Need { setting: "repodir", required: false, default: None, kind: NeedKind::Dir },
            // In the `s3 = { location, endpoint, addressing }` table.
            Need { setting: "s3.endpoint", required: false, default: None, kind: NeedKind::S3Endpoint },
        ],
        _ => &[],
    }
}

impl Need {
    /// Checks a step's settings against its plugin's grant. Templated values are known
    /// only when the step runs, so they pass here.
    pub fn check(&self, settings: &serde_json::Value, grant: &crate::grant::Grant) -> Result<(), String> {
        let key = self.setting;
        // `s3.endpoint`: the key `endpoint` of the table `s3`, which holds its siblings.
        let (settings, name) = match key.split_once('.') {
            Some((table, name)) => match settings.get(table) {
                Some(table) => (table, name),
                None if self.required => return Err(format!("`with.{key}` is required")),
                None => return Ok(()),
            },
            None => (settings, key),
        };
        let value = match (settings.get(name), self.default) {
            (None, _) if self.required => return Err(format!("`with.{key}` is required")),
            (None, Some(default)) => default,
            // A value that could not be read (an unset `${VAR}`) was reported already.
            (None | Some(serde_json::Value::Null), _) => return Ok(()),
            (Some(serde_json::Value::String(text)), _) if crate::template::is_template(text) => return Ok(()),
            (Some(serde_json::Value::String(text)), _) => text,
            (Some(_), _) => return Err(format!("`with.{key}` must be a string")),
        };
        let shown = if settings.get(name).is_some() {
            format!("`with.{key}` = `{value}`")
        } else {
            format!("`with.{key}` (default `{value}`)")
        };
        match self.kind {
            NeedKind::Dir | NeedKind::GitDir | NeedKind::WritableDir => {
                use crate::grant::Access;
                let need = match self.kind {
                    NeedKind::WritableDir => Access::Write,
                    NeedKind::GitDir => Access::Git,
                    _ => Access::Read,
                };
                let path = std::path::Path::new(value);
                if !path.is_absolute() {
                    return Err(format!("`with.{key}` must be an absolute path, not `{value}`"));
                }
                let path = lexical(path);
                if grant.dirs.iter().any(|dir| dir.access >= need && path.starts_with(lexical(&dir.path))) {
                    return Ok(());
                }
                let granted: Vec<String> = grant.dirs.iter().map(crate::grant::DirGrant::describe).collect();
                let (how, hint) = match need {
                    Access::Write => ("writable ", " with `write = true`"),
                    Access::Git => ("git-writable ", " with `git = true` (git may change repositories there)"),
                    Access::Read => ("", ""),
                };
                Err(format!(
                    "{shown} is outside the plugin's {how}granted directories ({}): add it to the plugin's `grants.dirs`{hint}",
                    if granted.is_empty() { "none".to_owned() } else { granted.join(", ") },
                ))
            }
            NeedKind::Host => {
                // Only the host is shown: a webhook URL's path may be its secret.
                let url = url::Url::parse(value).ok().filter(|url| matches!(url.scheme(), "http" | "https"));
                let Some((host, port)) =
                    url.as_ref().and_then(|url| Some((url.host_str()?, url.port_or_known_default()?)))
                else {
                    return Err(format!("`with.{key}` is not an http:// or https:// URL"));
                };
                grant
                    .check_host(host, port)
                    .map(|_| ())
                    .map_err(|denied| format!("`with.{key}`: {denied}: add it to the plugin's `grants.hosts`"))
            }
            NeedKind::S3Endpoint => s3_host(settings, key, value, grant),
            NeedKind::Program(suffix) => {
                let program = format!("{}{suffix}", value.trim_end_matches('/'));
                if grant.commands.iter().any(|command| command.name == program) {
                    return Ok(());
                }
                Err(format!("{shown} runs `{program}`, which is not in the plugin's `grants.commands`: add it"))
            }
        }
    }
}

/// Checks that the host an S3 `endpoint` (the setting `key`) sends requests to is
/// granted: with virtual-hosted addressing that is the bucket's host, `<bucket>.<endpoint
/// host>`, the bucket named by the sibling `output` (or `location`). Values the plugin
/// refuses itself (an unknown addressing, an output that is not `s3://`) pass here.
fn s3_host(settings: &serde_json::Value, key: &str, endpoint: &str, grant: &crate::grant::Grant) -> Result<(), String> {
    let text = |key: &str| settings.get(key).and_then(serde_json::Value::as_str);
    let (addressing, output) = (text("addressing").unwrap_or("path"), text("output").or_else(|| text("location")));
    if [Some(addressing), output].into_iter().flatten().any(crate::template::is_template) {
        return Ok(());
    }
    // A bare host means https, as the plugin reads it.
    let url = if endpoint.contains("://") { endpoint.to_owned() } else { format!("https://{endpoint}") };
    let url = url::Url::parse(&url).ok().filter(|url| matches!(url.scheme(), "http" | "https"));
    let Some((host, port)) = url.as_ref().and_then(|url| Some((url.host_str()?, url.port_or_known_default()?))) else {
        return Err(format!("`with.{key}` is not an http:// or https:// URL"));
    };
    let host = match addressing {
        "path" => host.to_owned(),
        "virtual" => {
            let Some(bucket) = output.and_then(|output| output.strip_prefix("s3://")) else { return Ok(()) };
            format!("{}.{host}", bucket.split('/').next().unwrap_or(bucket))
        }
        _ => return Ok(()),
    };
    grant.check_host(&host, port).map(|_| ()).map_err(|denied| {
        format!(
            "`with.{key}`: with `{addressing}` addressing requests go to {host}:{port}, and {denied}: add it to \
             the plugin's `grants.hosts`"
        )
    })
}

/// `path` with `.` and `..` resolved without touching the filesystem.
fn lexical(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
