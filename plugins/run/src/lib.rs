//! `run`: runs one granted program (a linter, a compiler, a test runner) in the job's
//! checkout or a granted directory, and reports success or failure by its exit code,
//! with its output and the problems a matcher found in it as annotations. Matching lives
//! in [`matcher`], choosing the changed files in [`changed`]; the host runs the program
//! (the `process` capability, confined to the plugin's grants).

pub mod changed;
pub mod matcher;

use gitauto_plugin::process::{self, Command, ProcessError};
use gitauto_plugin::{Error, Event, Outcome, Plugin, log};
use matcher::{Matchers, Problem};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The step's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The program, exactly as the plugin's `grants.commands` lists it.
    pub program: String,
    /// Its arguments (numbers and booleans are written as text).
    #[serde(default, deserialize_with = "texts")]
    pub args: Vec<String>,
    /// Environment variables, from those the program's grant allows.
    #[serde(default, deserialize_with = "text_table")]
    pub env: BTreeMap<String, String>,
    /// Working directory: relative to the checkout, or absolute inside a granted directory.
    pub cwd: Option<String>,
    /// Exit codes that count as success.
    #[serde(default = "success_codes")]
    pub ok_exit_codes: Vec<i32>,
    /// How long the program may run: `"5m"`, `"90s"`, `"500ms"`, or seconds.
    pub timeout: Option<Value>,
    /// A built-in matcher's name or a problem-matcher document.
    pub matcher: Option<Value>,
    /// Append the paths the event changed to `args`.
    #[serde(default)]
    pub changed_only: bool,
    /// Globs selecting which changed paths to append.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Text written to the program's standard input.
    pub stdin: Option<String>,
}

fn success_codes() -> Vec<i32> {
    vec![0]
}

/// A scalar as an argument or variable value: text as is, numbers and booleans written out.
fn scalar(value: Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(format!("{what} must be text, a number or a boolean, not `{other}`")),
    }
}

fn texts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let values = Vec::<Value>::deserialize(deserializer)?;
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| scalar(value, &format!("`args[{index}]`")).map_err(serde::de::Error::custom))
        .collect()
}

fn text_table<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    let values = BTreeMap::<String, Value>::deserialize(deserializer)?;
    values
        .into_iter()
        .map(|(name, value)| {
            let text = scalar(value, &format!("`env.{name}`")).map_err(serde::de::Error::custom)?;
            Ok((name, text))
        })
        .collect()
}

/// Parses a duration such as `"90s"`, `"5m"`, `"1h"`, `"500ms"` or `"30"` (seconds), or
/// a number of seconds, into milliseconds.
pub fn timeout_ms(value: &Value) -> Result<u64, String> {
    let bad =
        || format!("`timeout` = `{value}` is not a duration (expected e.g. \"90s\", \"5m\" or a number of seconds)");
    match value {
        Value::Number(number) => {
            let seconds = number.as_f64().filter(|s| s.is_finite() && *s > 0.0).ok_or_else(bad)?;
            Ok((seconds * 1000.0).round() as u64)
        }
        Value::String(text) => {
            let text = text.trim();
            let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let number: u64 = number.parse().map_err(|_| bad())?;
            let factor: u64 = match unit.trim() {
                "ms" => 1,
                "" | "s" => 1_000,
                "m" | "min" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            Ok(number.saturating_mul(factor))
        }
        _ => Err(bad()),
    }
}

/// Where the program runs and what its paths are relative to.
#[derive(Debug, PartialEq, Eq)]
pub struct Place {
    /// The working directory (absolute).
    pub cwd: String,
    /// What annotation paths are made relative to: the checkout when the working
    /// directory is inside it, else the working directory.
    pub base: String,
}

/// The working directory from the `cwd` setting and the job's checkout, if any.
pub fn place(cwd: Option<&str>, checkout: Option<&str>) -> Result<Place, String> {
    let checkout = checkout.map(|c| normalise(c.trim_end_matches('/')));
    let cwd = match (cwd, &checkout) {
        (Some(cwd), _) if cwd.starts_with('/') => normalise(cwd),
        (Some(cwd), Some(checkout)) => normalise(&format!("{checkout}/{cwd}")),
        (Some(cwd), None) => {
            return Err(format!(
                "`cwd` = `{cwd}` is relative to the job's checkout, but this step has none: set `checkout = true` on the step or give an absolute directory inside the plugin's `grants.dirs`"
            ));
        }
        (None, Some(checkout)) => checkout.clone(),
        (None, None) => {
            return Err(
                "no working directory: this step has no checkout; set `checkout = true` on the step, or `cwd` to an absolute directory inside the plugin's `grants.dirs`".into(),
            );
        }
    };
    let base = match &checkout {
        Some(checkout) if inside(&cwd, checkout) => checkout.clone(),
        _ => cwd.clone(),
    };
    Ok(Place { cwd, base })
}

/// Whether `path` is `dir` or below it (both normalised).
fn inside(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// An absolute path with `.`, `..` and repeated `/` resolved lexically.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// One problem in the output, where users look for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Annotation {
    /// The file, relative to the checkout (or the working directory without one).
    pub path: Option<String>,
    /// Line number.
    pub line: Option<u64>,
    /// Column number.
    pub column: Option<u64>,
    /// `error`, `warning` or `notice`.
    pub severity: &'static str,
    /// The message.
    pub message: String,
    /// The tool's code for it.
    pub code: Option<String>,
}

/// A problem's file as a path relative to `place.base`: the tool printed it relative to
/// the working directory (or to `fromPath`'s directory), or absolute.
pub fn annotation(problem: Problem, place: &Place) -> Annotation {
    let path = problem.file.as_deref().map(|file| {
        let file = match problem.from_path.as_deref() {
            Some(from) if !file.starts_with('/') => match from.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/{file}"),
                None => file.to_owned(),
            },
            _ => file.to_owned(),
        };
        let absolute =
            if file.starts_with('/') { normalise(&file) } else { normalise(&format!("{}/{file}", place.cwd)) };
        match absolute.strip_prefix(&place.base) {
            Some(rest) if place.base == "/" => rest.to_owned(),
            Some(rest) if rest.starts_with('/') => rest[1..].to_owned(),
            // Outside the checkout: as the tool printed it.
            _ => file.trim_start_matches("./").to_owned(),
        }
    });
    Annotation {
        path,
        line: problem.line,
        column: problem.column,
        severity: problem.severity,
        message: problem.message,
        code: problem.code,
    }
}

/// The most the step's output may hold (the host refuses more than 1 MiB).
const OUTPUT_BUDGET: usize = 900 * 1024;
/// Bytes kept of each stream before the output is fitted to the budget.
const STREAM_KEEP: usize = 256 * 1024;
/// Annotations kept before the output is fitted to the budget.
const ANNOTATIONS_KEEP: usize = 1000;

/// The step's output, cut down (the start and end of each stream, the first
/// annotations) until it fits the host's limit; `truncated` says whether anything was cut.
pub fn output(result: &process::Output, annotations: &[Annotation]) -> Value {
    let (mut keep, mut count) = (STREAM_KEEP, ANNOTATIONS_KEEP);
    loop {
        let (stdout, out_cut) = shorten(&result.stdout, keep);
        let (stderr, err_cut) = shorten(&result.stderr, keep);
        let value = json!({
            "exit_code": result.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "duration_ms": result.took,
            "timed_out": result.timed_out,
            "truncated": result.truncated || out_cut || err_cut || annotations.len() > count,
            "annotations": &annotations[..annotations.len().min(count)],
        });
        if value.to_string().len() <= OUTPUT_BUDGET || keep == 0 {
            return value;
        }
        keep /= 2;
        count /= 2;
    }
}

/// The first three quarters and the last quarter of `keep` bytes of `text`, with a note
/// of what was cut between them.
fn shorten(text: &str, keep: usize) -> (String, bool) {
    if text.len() <= keep {
        return (text.to_owned(), false);
    }
    let mut head = keep * 3 / 4;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - (keep - keep * 3 / 4);
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    let cut = tail - head;
    (format!("{}\n[... {cut} bytes cut ...]\n{}", &text[..head], &text[tail..]), true)
}

/// The step's one-line summary.
pub fn summary(name: &str, result: &process::Output, annotations: &[Annotation], matched: bool) -> String {
    let ran = match (result.exit_code, result.timed_out) {
        (_, true) => format!("{name} timed out after {} and was killed", seconds(result.took)),
        (Some(code), false) => format!("{name} exited {code}"),
        (None, false) => format!("{name} was killed by a signal"),
    };
    match annotations.first() {
        Some(first) => {
            let count = annotations.len();
            let plural = if count == 1 { "" } else { "s" };
            let mut at = first.path.clone().unwrap_or_default();
            for number in [first.line, first.column].into_iter().flatten() {
                at.push_str(&format!(":{number}"));
            }
            let code = first.code.as_deref().map(|code| format!("{code} ")).unwrap_or_default();
            let at = if at.is_empty() { String::new() } else { format!("{at} ") };
            format!("{ran}: {count} problem{plural} (first: {at}{code}{})", first.message)
        }
        None if matched => format!("{ran}: no problems"),
        None => match result.stderr.lines().rev().map(str::trim).find(|line| !line.is_empty()) {
            Some(last) if result.exit_code != Some(0) => format!("{ran}: {}", cut(last, 200)),
            _ => ran,
        },
    }
}

/// Milliseconds as a person reads them: `1.5 s`, `2m 5s`.
fn seconds(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// The program's name in messages: the last component of `program`.
fn short_name(program: &str) -> &str {
    program.rsplit('/').next().filter(|name| !name.is_empty()).unwrap_or(program)
}

struct Run;

impl Plugin for Run {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let checkout = gitauto_plugin::checkout();
        let place = place(settings.cwd.as_deref(), checkout.as_deref()).map_err(Error::invalid_settings)?;
        let matchers =
            settings.matcher.as_ref().map(Matchers::from_setting).transpose().map_err(Error::invalid_settings)?;
        let timeout = settings.timeout.as_ref().map(timeout_ms).transpose().map_err(Error::invalid_settings)?;
        if settings.ok_exit_codes.is_empty() {
            return Err(Error::invalid_settings("`ok_exit_codes` is empty: no run could succeed"));
        }
        if !settings.paths.is_empty() && !settings.changed_only {
            return Err(Error::invalid_settings("`paths` selects changed files: set `changed_only = true`"));
        }
        let name = short_name(&settings.program).to_owned();

        let mut args = settings.args.clone();
        if settings.changed_only {
            let paths = changed::Paths::new(&settings.paths).map_err(Error::invalid_settings)?;
            // The repository is the checkout, or without one the working directory.
            let root = checkout.as_deref().map(|c| normalise(c.trim_end_matches('/'))).unwrap_or(place.cwd.clone());
            let changed = changed::changed(&event, &root).map_err(Error::failed)?;
            let selected = changed::select(changed, &paths);
            if selected.is_empty() {
                log::info("no changed files to check");
                return Ok(Outcome::skipped("no changed files to check"));
            }
            log::info(&format!("{} changed file(s) to check", selected.len()));
            args.extend(selected.iter().map(|path| changed::relative_to(path, &root, &place.cwd)));
        }

        log::info(&format!("running {} {args:?} in {}", settings.program, place.cwd));
        let command = Command {
            program: settings.program.clone(),
            args,
            cwd: Some(place.cwd.clone()),
            env: settings.env.clone().into_iter().collect(),
            timeout,
            stdin: settings.stdin.clone().map(String::into_bytes),
        };
        let result = process::run(&command).map_err(|err| match err {
            // Retrying cannot help: the step's settings ask for what the grant refuses.
            ProcessError::Denied(why) | ProcessError::NotFound(why) => {
                Error::invalid_settings(format!("cannot run `{}`: {why}", settings.program))
            }
            ProcessError::Failed(why) => Error::failed(format!("running `{}` failed: {why}", settings.program)),
        })?;

        let problems = matchers.as_ref().map(|m| {
            let mut problems = m.scan(&result.stdout);
            problems.extend(m.scan(&result.stderr));
            problems
        });
        let annotations: Vec<Annotation> =
            problems.unwrap_or_default().into_iter().map(|problem| annotation(problem, &place)).collect();
        let summary = summary(&name, &result, &annotations, matchers.is_some());
        let succeeded =
            !result.timed_out && result.exit_code.is_some_and(|code| settings.ok_exit_codes.contains(&code));
        let outcome = if succeeded {
            log::info(&summary);
            Outcome::success(summary)
        } else {
            log::error(&summary);
            Outcome::failure(summary)
        };
        Ok(outcome.with_output(&output(&result, &annotations)))
    }
}

gitauto_plugin::export!(Run);

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(exit_code: Option<i32>, timed_out: bool, stderr: &str) -> process::Output {
        process::Output {
            exit_code,
            timed_out,
            stdout: String::new(),
            stderr: stderr.into(),
            truncated: false,
            took: 300_500,
        }
    }

    #[test]
    fn settings_take_scalars_as_text_and_name_unknown_keys() {
        let settings: Settings = gitauto_plugin::parse_settings(
            r#"{"program": "flake8", "args": ["--max-line-length", 100, true], "env": {"N": 3}}"#,
        )
        .unwrap();
        assert_eq!(settings.args, ["--max-line-length", "100", "true"]);
        assert_eq!(settings.env["N"], "3");
        assert_eq!(settings.ok_exit_codes, [0]);
        let err = gitauto_plugin::parse_settings::<Settings>(r#"{"program": "flake8", "arg": []}"#).unwrap_err();
        let Error::InvalidSettings(message) = err else { panic!("wrong kind") };
        assert!(message.contains("unknown field `arg`"), "{message}");
        let err = gitauto_plugin::parse_settings::<Settings>(r#"{"program": "x", "args": [[1]]}"#).unwrap_err();
        let Error::InvalidSettings(message) = err else { panic!("wrong kind") };
        assert!(message.contains("`args[0]` must be text"), "{message}");
    }

    #[test]
    fn timeouts_read_as_durations_or_seconds() {
        let rows = [
            (json!("5m"), 300_000),
            (json!("90s"), 90_000),
            (json!("500ms"), 500),
            (json!(30), 30_000),
            (json!(1.5), 1_500),
        ];
        for (value, want) in rows {
            assert_eq!(timeout_ms(&value), Ok(want), "{value}");
        }
        for bad in [json!("soon"), json!("1.5s"), json!(-1), json!(0), json!(true)] {
            assert!(timeout_ms(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn working_directories_follow_the_checkout() {
        let ok = |cwd: Option<&str>, checkout: Option<&str>| place(cwd, checkout).unwrap();
        assert_eq!(ok(None, Some("/w/job/")), Place { cwd: "/w/job".into(), base: "/w/job".into() });
        assert_eq!(
            ok(Some("web/./app"), Some("/w/job")),
            Place { cwd: "/w/job/web/app".into(), base: "/w/job".into() }
        );
        assert_eq!(ok(Some("/srv/lint"), Some("/w/job")), Place { cwd: "/srv/lint".into(), base: "/srv/lint".into() });
        assert_eq!(ok(Some("/srv/lint/"), None), Place { cwd: "/srv/lint".into(), base: "/srv/lint".into() });
        assert!(place(Some("app"), None).unwrap_err().contains("`cwd` = `app` is relative"));
        assert!(place(None, None).unwrap_err().contains("no working directory"));
    }

    #[test]
    fn annotation_paths_are_relative_to_the_checkout() {
        let place = Place { cwd: "/w/job/web".into(), base: "/w/job".into() };
        let rows = [
            ("./app.py", None, "web/app.py"),
            ("app.py", None, "web/app.py"),
            ("/w/job/web/src/a.js", None, "web/src/a.js"),
            ("../lib/b.c", None, "lib/b.c"),
            ("/usr/include/stdio.h", None, "/usr/include/stdio.h"),
            ("a.py", Some("pkg/setup.cfg"), "web/pkg/a.py"),
        ];
        for (file, from, want) in rows {
            let problem = Problem {
                file: Some(file.into()),
                from_path: from.map(Into::into),
                severity: "error",
                ..Problem::default()
            };
            assert_eq!(annotation(problem, &place).path.as_deref(), Some(want), "{file}");
        }
    }

    #[test]
    fn summaries_say_how_it_ended_and_the_first_problem() {
        let first = Annotation {
            path: Some("app.py".into()),
            line: Some(1),
            column: Some(1),
            severity: "error",
            message: "'os' imported but unused".into(),
            code: Some("F401".into()),
        };
        let three = vec![first.clone(), first.clone(), first];
        assert_eq!(
            summary("flake8", &ran(Some(1), false, ""), &three, true),
            "flake8 exited 1: 3 problems (first: app.py:1:1 F401 'os' imported but unused)"
        );
        assert_eq!(summary("flake8", &ran(Some(0), false, ""), &[], true), "flake8 exited 0: no problems");
        assert_eq!(
            summary("make", &ran(Some(2), false, "x\nmake: *** [all] Error 1\n\n"), &[], false),
            "make exited 2: make: *** [all] Error 1"
        );
        assert_eq!(summary("make", &ran(Some(0), false, "noise"), &[], false), "make exited 0");
        assert_eq!(summary("pytest", &ran(None, true, ""), &[], false), "pytest timed out after 5m 0s and was killed");
        assert_eq!(summary("pytest", &ran(None, false, ""), &[], false), "pytest was killed by a signal");
    }

    #[test]
    fn output_fits_the_hosts_limit() {
        let mut big = ran(Some(1), false, &"e".repeat(900 * 1024));
        big.stdout = "\u{1}".repeat(400 * 1024);
        let value = output(&big, &[]);
        assert!(value.to_string().len() <= OUTPUT_BUDGET);
        assert_eq!(value["truncated"], true);
        assert!(value["stderr"].as_str().unwrap().contains("bytes cut ..."));
        let small = output(&ran(Some(0), false, "fine\n"), &[]);
        assert_eq!(small["stderr"], "fine\n");
        assert_eq!(small["truncated"], false);
        assert!(shorten("héllo wörld", 6).1);
    }
}
