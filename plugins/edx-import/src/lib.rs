//! `edx-import`: gitreload's course import. For a push to the branch a course checkout
//! under `repodir` has checked out: bring the checkout up to date (as `fetch-update`
//! does), then run edx-platform's `git_add_course` management command on it through the
//! `process` capability, with gitreload's command line, environment and timeout.
//!
//! Unlike gitreload, the checkout is updated first (gitreload left that to the command),
//! the outcome is the job's (gitreload only logged it), and a failed import is a failure
//! with the command's output rather than a log line nobody reads.

use gitauto_checkout::{Options, Update};
use gitauto_plugin::git::Repository;
use gitauto_plugin::process::{self, Command, ProcessError};
use gitauto_plugin::{Error, Event, Outcome, Plugin, log};
use serde::{Deserialize, Serialize};

/// The step's `with` table; the defaults are gitreload's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// Directory under which course checkouts live (`<repodir>/<owner>/<name>` or `<repodir>/<name>`).
    repodir: String,
    /// The edx-platform virtualenv: the command runs `<virtual_env>/bin/python`.
    virtual_env: String,
    /// The edx-platform checkout: the command's working directory.
    edx_platform: String,
    /// `--settings=` of `manage.py lms`.
    django_settings: String,
    /// `LMS_CFG` for the command.
    lms_cfg: String,
    /// `REVISION_CFG` for the command.
    revision_cfg: String,
    /// Seconds before the import is stopped.
    timeout_seconds: u64,
    /// Update the checkout before importing.
    update: bool,
    /// Remote to fetch from.
    remote: String,
    /// `git clean -xdf` after updating.
    clean: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            repodir: "/mnt/data/repos".into(),
            virtual_env: "/edx/app/edxapp/venvs/edxapp".into(),
            edx_platform: "/edx/app/edxapp/edx-platform".into(),
            django_settings: "production".into(),
            lms_cfg: "/edx/etc/lms.yml".into(),
            revision_cfg: "/edx/etc/revisions.yml".into(),
            timeout_seconds: 60 * 60,
            update: true,
            remote: "origin".into(),
            clean: true,
        }
    }
}

/// What the step hands to later steps.
#[derive(Debug, Serialize)]
struct Output {
    /// The checkout imported.
    repo_dir: String,
    /// Its `origin` URL, as handed to the command.
    repo_url: String,
    /// The update before the import, when one ran.
    update: Option<gitauto_checkout::Updated>,
    /// The command's exit code (none when killed).
    exit_code: Option<i32>,
    /// Whether the timeout stopped it.
    timed_out: bool,
    /// Its standard output.
    stdout: String,
    /// Its standard error.
    stderr: String,
    /// How long it ran.
    duration_ms: u64,
}

struct EdxImport;

impl Plugin for EdxImport {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let options = Options { repodir: &settings.repodir, remote: &settings.remote, clean: settings.clean };
        let (repo_dir, update) = if settings.update {
            match gitauto_checkout::update(&event, options)? {
                Update::Done(updated) => (updated.path.clone(), Some(updated)),
                other => return Ok(other.into_outcome()),
            }
        } else {
            match gitauto_checkout::find(&event, options)? {
                Ok(checkout) => (checkout.path, None),
                Err(other) => return Ok(other.into_outcome()),
            }
        };
        let repo_url = Repository::open(&repo_dir)?.remote_url(&settings.remote)?;
        import(&settings, repo_dir, repo_url, update)
    }
}

/// Runs `git_add_course` on the checkout.
fn import(
    settings: &Settings,
    repo_dir: String,
    repo_url: String,
    update: Option<gitauto_checkout::Updated>,
) -> Result<Outcome, Error> {
    let python = format!("{}/bin/python", settings.virtual_env.trim_end_matches('/'));
    let args = vec![
        "manage.py".to_owned(),
        "lms".to_owned(),
        format!("--settings={}", settings.django_settings),
        "git_add_course".to_owned(),
        repo_url.clone(),
        "--directory_path".to_owned(),
        repo_dir.clone(),
    ];
    let env = vec![
        ("SERVICE_VARIANT".to_owned(), "lms".to_owned()),
        ("LMS_CFG".to_owned(), settings.lms_cfg.clone()),
        ("REVISION_CFG".to_owned(), settings.revision_cfg.clone()),
    ];
    log::info(&format!("importing {repo_dir} ({repo_url}) into {}", settings.edx_platform));
    let command = Command {
        program: python,
        args,
        cwd: Some(settings.edx_platform.clone()),
        env,
        timeout: Some(settings.timeout_seconds.saturating_mul(1000)),
        stdin: None,
    };
    let ran = match process::run(&command) {
        Ok(ran) => ran,
        Err(err) => {
            let why = match &err {
                ProcessError::Denied(m) | ProcessError::NotFound(m) | ProcessError::Failed(m) => m.clone(),
            };
            log::error(&format!("configuration error: {why}"));
            return Ok(Outcome::failure(format!("configuration error: {why}")));
        }
    };
    let text = combined(&ran.stdout, &ran.stderr);
    let summary = if ran.timed_out {
        format!("import timed out after {} s", settings.timeout_seconds)
    } else if ran.exit_code == Some(0) {
        format!("imported {repo_dir}")
    } else {
        format!("import command failed (exit {})", ran.exit_code.map_or("by signal".into(), |c| c.to_string()))
    };
    let succeeded = !ran.timed_out && ran.exit_code == Some(0);
    if succeeded {
        log::info(&format!("import complete, command output was: {text}"));
    } else {
        log::error(&format!("{summary} with: {text}"));
    }
    let output = Output {
        repo_dir,
        repo_url,
        update,
        exit_code: ran.exit_code,
        timed_out: ran.timed_out,
        stdout: ran.stdout,
        stderr: ran.stderr,
        duration_ms: ran.took,
    };
    let outcome = if succeeded { Outcome::success(summary) } else { Outcome::failure(summary) };
    Ok(outcome.with_output(&output))
}

/// Standard output then standard error, as gitreload's merged stream read.
fn combined(stdout: &str, stderr: &str) -> String {
    match (stdout.trim_end(), stderr.trim_end()) {
        ("", err) => err.to_owned(),
        (out, "") => out.to_owned(),
        (out, err) => format!("{out}\n{err}"),
    }
}

gitauto_plugin::export!(EdxImport);
