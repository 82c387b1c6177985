//! tx-manager's `build_log.json` with every field it had (`null` where one means nothing
//! here), the status words it used, and the build's entry in `project.json`. What a build
//! does lives in the crate root; this module only says how it is recorded.

use gitauto_plugin::Event;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The converter's name in logs (tx-manager's `convert_module`).
const MODULE: &str = "md2html";

/// What a build is about: derived from the event alone, so that the build and an
/// `on_error` handler for it name the same job and the same files.
pub struct Target {
    /// The full commit id.
    pub commit: String,
    /// Its first 10 characters, tx-manager's `commit_id`.
    pub short: String,
    /// `u/<owner>/<repo>`: the repository's folder of the output.
    pub site_key: String,
    /// `u/<owner>/<repo>/<commit10>`: the commit's site.
    pub commit_key: String,
    /// SHA-256 of the delivery and the commit (hex): the same for every attempt and
    /// handler of one job, different for each delivery.
    pub job_id: String,
}

impl Target {
    /// The target of a build of `commit` for `event`.
    pub fn new(event: &Event, commit: &str) -> Self {
        let short = commit.get(..10).unwrap_or(commit).to_owned();
        let site_key = format!("u/{}/{}", event.repository.owner, event.repository.name);
        let digest = Sha256::digest(format!("{}\n{commit}", event.delivery).as_bytes());
        Self {
            commit: commit.to_owned(),
            commit_key: format!("{site_key}/{short}"),
            short,
            site_key,
            job_id: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
        }
    }

    /// The key of the commit's `build_log.json`.
    pub fn log_key(&self) -> String {
        format!("{}/{}", self.commit_key, crate::output::LOG)
    }

    /// The key of part `index`'s `build_log.json`.
    pub fn part_log_key(&self, index: usize) -> String {
        format!("{}/{index}/{}", self.commit_key, crate::output::LOG)
    }
}

/// A build's status, as tx-manager's jobs had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Running: the pages are being made.
    Started,
    /// Done, nothing to report.
    Success,
    /// Done, with warnings.
    Warnings,
    /// Not done: errors, or the step ended abnormally.
    Failed,
}

impl Status {
    /// The status of a finished build with these messages.
    pub fn of(warnings: &[String], errors: &[String]) -> Self {
        if !errors.is_empty() {
            Self::Failed
        } else if !warnings.is_empty() {
            Self::Warnings
        } else {
            Self::Success
        }
    }

    /// tx-manager's `message` for the status.
    fn message(self) -> &'static str {
        match self {
            Self::Started => "Conversion started...",
            Self::Success => "Conversion successful",
            Self::Warnings => "Conversion successful with warnings",
            Self::Failed => "Conversion failed",
        }
    }
}

/// tx-manager's build log: every job column, then the commit's fields; `pages` and
/// `timings` are this converter's own.
#[derive(Debug, Clone, Serialize)]
pub struct BuildLog {
    pub job_id: String,
    pub identifier: String,
    pub user_name: String,
    pub repo_name: String,
    pub commit_id: String,
    /// tx-manager's manifest table row: none here.
    pub manifests_id: Option<u64>,
    pub status: Status,
    pub success: bool,
    pub user: Option<String>,
    pub convert_module: &'static str,
    /// No linter runs in this step.
    pub lint_module: Option<String>,
    pub resource_type: String,
    pub input_format: &'static str,
    pub output_format: &'static str,
    pub source: String,
    pub output: String,
    pub cdn_bucket: Option<String>,
    pub cdn_file: Option<String>,
    pub callback: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// tx-manager's job rows expired; logs here do not.
    pub expires_at: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// No estimate is made.
    pub eta: Option<String>,
    pub message: String,
    /// tx-manager linked its job API; there is none for a step.
    pub links: Option<Value>,
    pub options: Value,
    pub log: Vec<String>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub repo_owner: String,
    pub committed_by: Option<String>,
    pub commit_url: Option<String>,
    pub compare_url: Option<String>,
    pub commit_message: Option<String>,
    /// A multi-part build's top log: `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiple: Option<bool>,
    /// A multi-part build's top log: the parts' logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_logs: Option<Vec<BuildLog>>,
    /// A part's log: the directory it converts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book: Option<String>,
    /// A part's log: its index, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Pages written, by output path.
    pub pages: Vec<String>,
    /// Milliseconds spent reading, rendering and writing (rendering is measured on its own
    /// so that it can be compared with native code).
    pub timings: Timings,
}

/// Where the time of a build went.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Reading the commit's files.
    pub read_ms: f64,
    /// Rendering Markdown and wrapping pages.
    pub render_ms: f64,
    /// Writing the pages to the staging location.
    pub write_ms: f64,
}

impl std::ops::AddAssign for Timings {
    fn add_assign(&mut self, other: Self) {
        self.read_ms += other.read_ms;
        self.render_ms += other.render_ms;
        self.write_ms += other.write_ms;
    }
}

/// What the log says about where the site goes, from the output.
pub struct Destination {
    /// `output`: the site's directory or `s3://` location.
    pub output: String,
    /// `cdn_bucket`.
    pub bucket: Option<String>,
    /// `cdn_file`: the site's key prefix in the bucket.
    pub key: Option<String>,
}

impl BuildLog {
    /// The log of a build that has just started.
    pub fn started(
        event: &Event,
        target: &Target,
        destination: Destination,
        callback: Option<&str>,
        options: Value,
        now: &str,
    ) -> Self {
        let repository = &event.repository;
        let pushed = event.commits.iter().find(|c| c.id == target.commit);
        // tx-manager's pusher, else the commit's author.
        let author = pushed.map(|c| c.author.split(" <").next().unwrap_or(&c.author).to_owned());
        let resource_type = repository.name.rsplit_once('_').map_or("other", |(_, resource)| resource).to_lowercase();
        Self {
            job_id: target.job_id.clone(),
            identifier: target.job_id.clone(),
            user_name: repository.owner.clone(),
            repo_name: repository.name.clone(),
            commit_id: target.short.clone(),
            manifests_id: None,
            status: Status::Started,
            success: false,
            user: event.sender.clone(),
            convert_module: MODULE,
            lint_module: None,
            resource_type,
            input_format: "md",
            output_format: "html",
            source: repository.clone_url.clone(),
            output: destination.output,
            cdn_bucket: destination.bucket,
            cdn_file: destination.key,
            // The public log names only where the callback goes: its path or query may be a secret.
            callback: callback.map(crate::callback::origin),
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            expires_at: None,
            started_at: now.to_owned(),
            ended_at: None,
            eta: None,
            message: Status::Started.message().to_owned(),
            links: None,
            options,
            log: vec![format!("Started job for {}/{}/{}", repository.owner, repository.name, target.short)],
            warnings: Vec::new(),
            errors: Vec::new(),
            repo_owner: repository.owner.clone(),
            committed_by: event.sender.clone().or(author),
            commit_url: pushed.and_then(|c| c.url.clone()),
            compare_url: (!repository.html_url.is_empty()).then(|| {
                let before = event.before.as_deref().unwrap_or_default();
                format!("{}/compare/{}...{}", repository.html_url, before.get(..10).unwrap_or(before), target.short)
            }),
            commit_message: pushed.map(|c| c.message.clone()),
            multiple: None,
            build_logs: None,
            book: None,
            part: None,
            pages: Vec::new(),
            timings: Timings::default(),
        }
    }

    /// Ends the build: its status from its warnings and errors, and the end time.
    pub fn finish(&mut self, now: &str) {
        self.status = Status::of(&self.warnings, &self.errors);
        self.success = self.status != Status::Failed;
        self.message = self.status.message().to_owned();
        self.ended_at = Some(now.to_owned());
        self.updated_at = now.to_owned();
    }

    /// Ends the build as tx-manager ended one whose converter raised: failed, with
    /// "Conversion process ended abnormally: <reason>" as its message and last error.
    pub fn end_abnormally(&mut self, reason: &str, now: &str) {
        let message = format!("Conversion process ended abnormally: {reason}");
        self.errors.push(message.clone());
        self.finish(now);
        self.message = message;
    }

    /// The result tx-manager's converters POSTed to their callback.
    pub fn result(&self) -> Value {
        json!({
            "identifier": self.identifier, "success": self.success, "info": self.log,
            "warnings": self.warnings, "errors": self.errors,
        })
    }

    /// The JSON text of the log.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a build log is plain data")
    }
}

/// `project.json` (`bytes`, if there is one) with the build's entry added, replacing an
/// earlier entry for the same commit, as tx-manager kept it.
pub fn project(bytes: Option<&[u8]>, event: &Event, log: &BuildLog) -> Vec<u8> {
    let mut project: Value = bytes
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"user": event.repository.owner, "repo_name": event.repository.name, "commits": []}));
    let entry = json!({
        "id": log.commit_id, "created_at": log.created_at, "status": log.status, "success": log.success,
        "started_at": log.started_at, "ended_at": log.ended_at,
    });
    let commits = project["commits"].as_array_mut().map(std::mem::take).unwrap_or_default();
    let mut commits: Vec<Value> = commits.into_iter().filter(|c| c["id"] != log.commit_id.as_str()).collect();
    commits.push(entry);
    project["commits"] = Value::Array(commits);
    serde_json::to_vec_pretty(&project).expect("a project is plain data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_message_gives_the_status() {
        let some = vec!["x".to_owned()];
        assert_eq!(Status::of(&[], &[]), Status::Success);
        assert_eq!(Status::of(&some, &[]), Status::Warnings);
        assert_eq!(Status::of(&some, &some), Status::Failed);
        assert_eq!(serde_json::to_value(Status::Started).unwrap(), "started");
    }
}
