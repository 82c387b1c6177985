//! Plugins built for `gitauto:plugin@0.1.x` run unchanged: their imports (the 0.1 WIT as
//! released, `host/wit-0.1`) are served here by the 0.2 host. `types`, `log` and `git`
//! did not change, so each call is the 0.2 call with its values moved across (the two
//! bindings are distinct Rust types of one shape); `shell` is 0.2's `process` and `http`
//! is 0.2's `http` with their millisecond fields read as `duration`s.
//!
//! Nothing here checks a grant or opens a meter call: every method forwards to the 0.2
//! method, which does both, so a 0.1 plugin is confined and billed exactly as a 0.2 one.

use crate::capability::StepState;
use crate::capability::bindings::gitauto::plugin as now;
use crate::capability::bindings_v0_1::gitauto::plugin as old;
use crate::capability::git::OpenRepository;
use wasmtime::component::Resource;

/// A 0.1 git result: the 0.2 call's, its values moved across.
type GitResult<T> = wasmtime::Result<Result<T, old::git::GitError>>;

/// Moves a 0.2 git result into its 0.1 shape.
fn moved<T, U: From<T>>(result: wasmtime::Result<Result<T, now::git::GitError>>) -> GitResult<U> {
    Ok(result?.map(U::from).map_err(old::git::GitError::from))
}

/// [`moved`] for a list of values.
fn moved_list<T, U: From<T>>(result: wasmtime::Result<Result<Vec<T>, now::git::GitError>>) -> GitResult<Vec<U>> {
    Ok(result?.map(|items| items.into_iter().map(U::from).collect()).map_err(old::git::GitError::from))
}

impl From<now::git::GitError> for old::git::GitError {
    fn from(err: now::git::GitError) -> Self {
        match err {
            now::git::GitError::Denied(m) => Self::Denied(m),
            now::git::GitError::NotFound(m) => Self::NotFound(m),
            now::git::GitError::Invalid(m) => Self::Invalid(m),
            now::git::GitError::Failed(m) => Self::Failed(m),
        }
    }
}

impl From<now::git::ChangedPath> for old::git::ChangedPath {
    fn from(change: now::git::ChangedPath) -> Self {
        Self {
            path: change.path,
            kind: match change.kind {
                now::git::ChangeKind::Added => old::git::ChangeKind::Added,
                now::git::ChangeKind::Modified => old::git::ChangeKind::Modified,
                now::git::ChangeKind::Removed => old::git::ChangeKind::Removed,
            },
        }
    }
}

impl From<now::git::TreeEntry> for old::git::TreeEntry {
    fn from(entry: now::git::TreeEntry) -> Self {
        Self { path: entry.path, size: entry.size, executable: entry.executable }
    }
}

impl From<now::git::TagInfo> for old::git::TagInfo {
    fn from(tag: now::git::TagInfo) -> Self {
        Self {
            name: tag.name,
            commit: tag.commit,
            annotated: tag.annotated,
            message: tag.message,
            tagger: tag.tagger,
            date: tag.date,
            commit_date: tag.commit_date,
        }
    }
}

impl From<now::git::ArchiveInfo> for old::git::ArchiveInfo {
    fn from(info: now::git::ArchiveInfo) -> Self {
        Self {
            path: info.path,
            size: info.size,
            files: info.files,
            sha256: info.sha256,
            sha512: info.sha512,
            md5: info.md5,
        }
    }
}

impl From<old::git::ArchiveOptions> for now::git::ArchiveOptions {
    fn from(options: old::git::ArchiveOptions) -> Self {
        Self {
            format: match options.format {
                old::git::ArchiveFormat::TarGz => now::git::ArchiveFormat::TarGz,
                old::git::ArchiveFormat::Zip => now::git::ArchiveFormat::Zip,
                old::git::ArchiveFormat::Tar => now::git::ArchiveFormat::Tar,
            },
            output: options.output,
            subdirectory: options.subdirectory,
            prefix: options.prefix,
            exclude: options.exclude,
            export_ignore: options.export_ignore,
            mtime: options.mtime,
        }
    }
}

impl old::types::Host for StepState {}
impl old::git::Host for StepState {}

impl old::log::Host for StepState {
    fn log(&mut self, level: old::log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            old::log::Level::Trace => now::log::Level::Trace,
            old::log::Level::Debug => now::log::Level::Debug,
            old::log::Level::Info => now::log::Level::Info,
            old::log::Level::Warn => now::log::Level::Warn,
            old::log::Level::Error => now::log::Level::Error,
        };
        now::log::Host::log(self, level, message)
    }
}

impl old::git::HostRepository for StepState {
    fn open(&mut self, path: String) -> GitResult<Resource<OpenRepository>> {
        moved(now::git::HostRepository::open(self, path))
    }

    fn clone(&mut self, url: String, path: String, branch: Option<String>) -> GitResult<Resource<OpenRepository>> {
        moved(now::git::HostRepository::clone(self, url, path, branch))
    }

    fn path(&mut self, this: Resource<OpenRepository>) -> wasmtime::Result<String> {
        now::git::HostRepository::path(self, this)
    }

    fn current_branch(&mut self, this: Resource<OpenRepository>) -> GitResult<Option<String>> {
        moved(now::git::HostRepository::current_branch(self, this))
    }

    fn head(&mut self, this: Resource<OpenRepository>) -> GitResult<Option<String>> {
        moved(now::git::HostRepository::head(self, this))
    }

    fn remote_url(&mut self, this: Resource<OpenRepository>, remote: String) -> GitResult<String> {
        moved(now::git::HostRepository::remote_url(self, this, remote))
    }

    fn fetch(&mut self, this: Resource<OpenRepository>, remote: String) -> GitResult<u32> {
        moved(now::git::HostRepository::fetch(self, this, remote))
    }

    fn resolve(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<String> {
        moved(now::git::HostRepository::resolve(self, this, revision))
    }

    fn reset_hard(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<String> {
        moved(now::git::HostRepository::reset_hard(self, this, revision))
    }

    fn clean(&mut self, this: Resource<OpenRepository>) -> GitResult<Vec<String>> {
        moved(now::git::HostRepository::clean(self, this))
    }

    fn changed_paths(
        &mut self,
        this: Resource<OpenRepository>,
        from: String,
        to: String,
    ) -> GitResult<Vec<old::git::ChangedPath>> {
        moved_list(now::git::HostRepository::changed_paths(self, this, from, to))
    }

    fn tree(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<Vec<old::git::TreeEntry>> {
        moved_list(now::git::HostRepository::tree(self, this, revision))
    }

    fn read_file(&mut self, this: Resource<OpenRepository>, revision: String, path: String) -> GitResult<Vec<u8>> {
        moved(now::git::HostRepository::read_file(self, this, revision, path))
    }

    fn merge_check(&mut self, this: Resource<OpenRepository>, base: String, head: String) -> GitResult<Vec<String>> {
        moved(now::git::HostRepository::merge_check(self, this, base, head))
    }

    fn tags(&mut self, this: Resource<OpenRepository>) -> GitResult<Vec<old::git::TagInfo>> {
        moved_list(now::git::HostRepository::tags(self, this))
    }

    fn archive(
        &mut self,
        this: Resource<OpenRepository>,
        revision: String,
        options: old::git::ArchiveOptions,
    ) -> GitResult<old::git::ArchiveInfo> {
        moved(now::git::HostRepository::archive(self, this, revision, options.into()))
    }

    fn drop(&mut self, this: Resource<OpenRepository>) -> wasmtime::Result<()> {
        now::git::HostRepository::drop(self, this)
    }
}

impl old::http::Host for StepState {
    fn send(
        &mut self,
        request: old::http::Request,
    ) -> wasmtime::Result<Result<old::http::Response, old::http::HttpError>> {
        let method = match request.method {
            old::http::Method::Get => now::http::Method::Get,
            old::http::Method::Head => now::http::Method::Head,
            old::http::Method::Post => now::http::Method::Post,
            old::http::Method::Put => now::http::Method::Put,
            old::http::Method::Patch => now::http::Method::Patch,
            old::http::Method::Delete => now::http::Method::Delete,
            old::http::Method::Options => now::http::Method::Options,
        };
        let request = now::http::Request {
            method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request.timeout_ms.map(u64::from),
        };
        let sent = now::http::Host::send(self, request)?;
        Ok(sent
            .map(|response| old::http::Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            })
            .map_err(|err| match err {
                now::http::HttpError::Denied(m) => old::http::HttpError::Denied(m),
                now::http::HttpError::InvalidRequest(m) => old::http::HttpError::InvalidRequest(m),
                now::http::HttpError::Timeout(m) => old::http::HttpError::Timeout(m),
                now::http::HttpError::Connection(m) => old::http::HttpError::Connection(m),
                now::http::HttpError::TooLarge(m) => old::http::HttpError::TooLarge(m),
            }))
    }
}

impl old::shell::Host for StepState {
    fn run(
        &mut self,
        command: old::shell::Command,
    ) -> wasmtime::Result<Result<old::shell::Output, old::shell::ShellError>> {
        let command = now::process::Command {
            program: command.program,
            args: command.args,
            cwd: command.cwd,
            env: command.env,
            timeout: command.timeout_ms,
            stdin: command.stdin,
        };
        let ran = now::process::Host::run(self, command)?;
        Ok(ran
            .map(|output| old::shell::Output {
                exit_code: output.exit_code,
                timed_out: output.timed_out,
                stdout: output.stdout,
                stderr: output.stderr,
                truncated: output.truncated,
                duration_ms: output.took,
            })
            .map_err(|err| match err {
                now::process::ProcessError::Denied(m) => old::shell::ShellError::Denied(m),
                now::process::ProcessError::NotFound(m) => old::shell::ShellError::NotFound(m),
                now::process::ProcessError::Failed(m) => old::shell::ShellError::Failed(m),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_errors_move_across_unchanged() {
        let listed = Ok(Ok(vec![now::git::ChangedPath { path: "a".into(), kind: now::git::ChangeKind::Removed }]));
        let paths: Vec<old::git::ChangedPath> = moved_list(listed).unwrap().unwrap();
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].path, "a");
        assert!(matches!(paths[0].kind, old::git::ChangeKind::Removed));
        let err: old::git::GitError = now::git::GitError::Denied("no".into()).into();
        assert!(matches!(err, old::git::GitError::Denied(m) if m == "no"));
    }

    /// Every 0.1 method forwards to a 0.2 method (which checks the grant and opens the
    /// meter's call): none serves a plugin on its own.
    #[test]
    fn every_old_method_forwards_to_a_new_one() {
        let source = include_str!("compat.rs");
        let mut methods = 0;
        for block in source.split("\nimpl old::").skip(1) {
            let block = &block[..block.find("\n}\n").unwrap_or(block.len())];
            for method in block.split("\n    fn ").skip(1) {
                methods += 1;
                let name = method.split('(').next().unwrap_or_default();
                assert!(method.contains("now::"), "the 0.1 method `{name}` does not forward to a 0.2 method");
            }
        }
        assert_eq!(methods, 20, "git (17), log, http and shell");
    }
}
