//! Test guest: performs the one operation its settings name and reports what happened,
//! so tests can check each capability's allowed and denied paths through the real
//! runtime. Success carries the result as output; a refused or failed operation is a
//! failure whose summary is the error.

use gitauto_plugin::git::Repository;
use gitauto_plugin::http::{Method, Request};
use gitauto_plugin::process::Command;
use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Probe {
    Shell {
        program: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: Vec<(String, String)>,
        cwd: Option<String>,
        timeout_ms: Option<u64>,
        /// Report a failure outcome (with the output) when the program exits non-zero.
        #[serde(default)]
        check: bool,
    },
    Http {
        url: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// `GET` unless given: `PUT`, `POST`, `DELETE`, `HEAD`.
        method: Option<String>,
        /// The request body, as text.
        body: Option<String>,
    },
    GitOpen {
        path: String,
    },
    ReadFile {
        path: String,
    },
    WriteFile {
        path: String,
        content: String,
    },
    Env,
    /// Fetches `remote` in the job's checkout.
    GitFetch {
        remote: String,
    },
    /// The job's checkout: its path (from the SDK), HEAD, `refs/gitauto/base` and
    /// `refs/gitauto/target`, and the paths changed from the base to HEAD.
    Checkout,
    /// Logs `lines` lines over `ms` milliseconds, then reports the event's `after`.
    Sleep {
        ms: u64,
        #[serde(default)]
        lines: u64,
    },
    /// Allocates `bytes` (in blocks of `chunk` bytes when given, so that memory grows
    /// step by step up to a limit) and writes every page of them (so they are really
    /// held), then sleeps `sleep_ms` milliseconds (issue 24: the bill shows both).
    Alloc {
        bytes: usize,
        chunk: Option<usize>,
        #[serde(default)]
        sleep_ms: u64,
    },
    /// Busy-loops for `ms` milliseconds of wall time.
    Spin {
        ms: u64,
    },
    /// Logs `lines` lines, then makes `requests` GET requests to `url`.
    Calls {
        #[serde(default)]
        lines: u64,
        url: Option<String>,
        #[serde(default)]
        requests: u64,
    },
    /// Counts its runs in the file at `path`; the first `failures` runs fail transiently.
    Flaky {
        path: String,
        failures: u64,
    },
    /// Lists the tags of the repository at `path`.
    GitTags {
        path: String,
    },
    /// Archives `revision` of the repository at `path` into `output` (`format`: `tar`,
    /// `tar.gz` or `zip`; the other fields as the WIT's `archive-options`).
    GitArchive {
        path: String,
        revision: String,
        format: String,
        output: String,
        subdirectory: Option<String>,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        exclude: Vec<String>,
        /// `true` unless given.
        export_ignore: Option<bool>,
        mtime: Option<i64>,
    },
}

/// What [`Probe::GitTags`] reports.
fn git_tags(path: &str) -> Result<serde_json::Value, gitauto_plugin::git::GitError> {
    let tags = Repository::open(path)?.tags()?;
    Ok(tags
        .into_iter()
        .map(|tag| {
            json!({
                "name": tag.name, "commit": tag.commit, "annotated": tag.annotated, "message": tag.message,
                "tagger": tag.tagger, "date": tag.date, "commit_date": tag.commit_date,
            })
        })
        .collect())
}

/// What [`Probe::Checkout`] reports.
fn checkout() -> Result<serde_json::Value, gitauto_plugin::git::GitError> {
    let Some(dir) = gitauto_plugin::checkout() else {
        return Ok(json!({"dir": null}));
    };
    let repo = Repository::open(&dir)?;
    let base = repo.resolve("refs/gitauto/base").ok();
    let changed: Vec<String> = match &base {
        Some(_) => repo.changed_paths("refs/gitauto/base", "HEAD")?.into_iter().map(|change| change.path).collect(),
        None => Vec::new(),
    };
    Ok(json!({
        "dir": dir,
        "head": repo.head()?,
        "branch": repo.current_branch()?,
        "base": base,
        "target": repo.resolve("refs/gitauto/target").ok(),
        "changed": changed,
    }))
}

struct ProbePlugin;

impl Plugin for ProbePlugin {
    type Settings = Probe;

    fn handle(event: Event, probe: Probe) -> Result<Outcome, Error> {
        let result = match probe {
            Probe::Shell { program, args, env, cwd, timeout_ms, check } => {
                let command = Command { program, args, cwd, env, timeout: timeout_ms, stdin: None };
                let out = gitauto_plugin::process::run(&command).map_err(|err| err.message());
                if let Ok(out) = &out
                    && check
                    && out.exit_code != Some(0)
                {
                    let output = json!({"exit_code": out.exit_code, "stdout": out.stdout, "stderr": out.stderr});
                    return Ok(Outcome::failure(format!("exited with {:?}", out.exit_code)).with_output(&output));
                }
                out.map(|out| {
                    json!({
                        "exit_code": out.exit_code, "timed_out": out.timed_out,
                        "stdout": out.stdout, "stderr": out.stderr, "truncated": out.truncated,
                    })
                })
            }
            Probe::Http { url, headers, method, body } => {
                let method = match method.as_deref().unwrap_or("GET") {
                    "PUT" => Method::Put,
                    "POST" => Method::Post,
                    "DELETE" => Method::Delete,
                    "HEAD" => Method::Head,
                    _ => Method::Get,
                };
                let body = body.map(String::into_bytes);
                let request = Request { method, url, headers, body, timeout: Some(5_000) };
                gitauto_plugin::http::send(&request)
                    .map(|response| json!({"status": response.status, "body": String::from_utf8_lossy(&response.body)}))
                    .map_err(|err| err.message())
            }
            Probe::GitOpen { path } => Repository::open(&path)
                .and_then(|repo| repo.head())
                .map(|head| json!({"head": head}))
                .map_err(|err| err.message()),
            Probe::ReadFile { path } => {
                std::fs::read_to_string(&path).map(|text| json!({"content": text})).map_err(|err| err.to_string())
            }
            Probe::WriteFile { path, content } => {
                std::fs::write(&path, content).map(|()| json!({"written": path})).map_err(|err| err.to_string())
            }
            Probe::Sleep { ms, lines } => {
                let ticks = lines.max(1);
                for tick in 0..ticks {
                    if lines > 0 {
                        gitauto_plugin::log::info(&format!("tick {}", tick + 1));
                    }
                    #[allow(clippy::disallowed_methods, reason = "a test guest that must take time")]
                    std::thread::sleep(std::time::Duration::from_millis(ms / ticks));
                }
                Ok(json!({"after": event.after, "slept_ms": ms}))
            }
            Probe::Alloc { bytes, chunk, sleep_ms } => {
                let chunk = chunk.unwrap_or(bytes).max(1);
                let mut held: Vec<Vec<u8>> = Vec::new();
                let mut left = bytes;
                while left > 0 {
                    let mut block = vec![0u8; chunk.min(left)];
                    for page in block.chunks_mut(4096) {
                        page[0] = 1;
                    }
                    left -= block.len();
                    held.push(block);
                }
                #[allow(clippy::disallowed_methods, reason = "a test guest that must take time")]
                std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
                let pages = held.iter().flatten().map(|&b| u64::from(b)).sum::<u64>();
                Ok(json!({"allocated": std::hint::black_box(held).iter().map(Vec::len).sum::<usize>(), "pages": pages}))
            }
            Probe::Spin { ms } => {
                let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
                let mut spins = 0u64;
                while std::time::Instant::now() < until {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
                Ok(json!({"spins": spins}))
            }
            Probe::Calls { lines, url, requests } => {
                for line in 0..lines {
                    gitauto_plugin::log::info(&format!("line {}", line + 1));
                }
                let mut statuses = Vec::new();
                for _ in 0..requests {
                    let url = url.clone().unwrap_or_default();
                    let request =
                        Request { method: Method::Get, url, headers: Vec::new(), body: None, timeout: Some(5_000) };
                    match gitauto_plugin::http::send(&request) {
                        Ok(response) => statuses.push(response.status),
                        Err(err) => return Ok(Outcome::failure(err.message())),
                    }
                }
                Ok(json!({"statuses": statuses}))
            }
            Probe::Flaky { path, failures } => {
                let runs =
                    std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0) + 1;
                std::fs::write(&path, runs.to_string()).map_err(|err| Error::failed(err.to_string()))?;
                if runs <= failures {
                    return Err(Error::transient(format!("run {runs} fails on purpose")));
                }
                Ok(json!({"runs": runs}))
            }
            Probe::Checkout => checkout().map_err(|err| err.message()),
            Probe::GitFetch { remote } => gitauto_plugin::checkout()
                .ok_or_else(|| "no checkout".to_owned())
                .and_then(|dir| Repository::open(&dir).map_err(|err| err.message()))
                .and_then(|repo| repo.fetch(&remote).map_err(|err| err.message()))
                .map(|updated| json!({"updated": updated})),
            Probe::GitTags { path } => git_tags(&path).map_err(|err| err.message()),
            Probe::GitArchive {
                path,
                revision,
                format,
                output,
                subdirectory,
                prefix,
                exclude,
                export_ignore,
                mtime,
            } => {
                use gitauto_plugin::git::{ArchiveFormat, ArchiveOptions};
                let format = match format.as_str() {
                    "tar" => ArchiveFormat::Tar,
                    "zip" => ArchiveFormat::Zip,
                    _ => ArchiveFormat::TarGz,
                };
                let export_ignore = export_ignore.unwrap_or(true);
                let options = ArchiveOptions { format, output, subdirectory, prefix, exclude, export_ignore, mtime };
                Repository::open(&path)
                    .and_then(|repo| repo.archive(&revision, &options))
                    .map(|info| {
                        json!({
                            "path": info.path, "size": info.size, "files": info.files,
                            "sha256": info.sha256, "sha512": info.sha512, "md5": info.md5,
                        })
                    })
                    .map_err(|err| err.message())
            }
            Probe::Env => {
                Ok(json!({"vars": std::env::vars().collect::<Vec<_>>(), "args": std::env::args().collect::<Vec<_>>()}))
            }
        };
        Ok(match result {
            Ok(output) => Outcome::success("done").with_output(&output),
            Err(error) => Outcome::failure(error),
        })
    }
}

gitauto_plugin::export!(ProbePlugin);
