//! Problem matchers: turning a tool's output into annotations. The format is GitHub
//! Actions' problem-matcher JSON (one or more matchers, each a regexp or a multi-line
//! `pattern` array whose last entry may `loop`), so existing matchers can be pasted;
//! the built-in ones (`flake8`, `eslint`, `gcc`, `tsc`) are documents in that format
//! run by the same engine. Where the paths point and what the step makes of the
//! problems is the plugin's business.

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

/// One problem a matcher found, with the values its groups captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problem {
    /// The file as the tool printed it.
    pub file: Option<String>,
    /// A path the file is relative to (`fromPath`), as the tool printed it.
    pub from_path: Option<String>,
    /// Line number.
    pub line: Option<u64>,
    /// Column number.
    pub column: Option<u64>,
    /// `error`, `warning` or `notice`.
    pub severity: &'static str,
    /// The message.
    pub message: String,
    /// The tool's code for the problem (`F401`, `no-unused-vars`, `-Wparentheses`, `TS2322`).
    pub code: Option<String>,
}

/// A set of matchers; every line of output is offered to each in turn, and the first
/// that reports a problem takes it.
#[derive(Debug, Clone)]
pub struct Matchers {
    matchers: Vec<Matcher>,
}

#[derive(Debug, Clone)]
struct Matcher {
    default_severity: Option<String>,
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    regex: Regex,
    fields: Fields,
    looping: bool,
}

/// The group number of each field a pattern captures.
#[derive(Debug, Clone, Copy, Default)]
struct Fields {
    file: Option<usize>,
    from_path: Option<usize>,
    line: Option<usize>,
    column: Option<usize>,
    severity: Option<usize>,
    message: Option<usize>,
    code: Option<usize>,
}

/// The names of the built-in matchers.
pub const BUILTINS: &[&str] = &["flake8", "eslint", "gcc", "tsc"];

/// flake8's default format, `path:row:col: CODE text`. pycodestyle's `W` and mccabe's
/// `C` codes are warnings, everything else (pyflakes, pycodestyle's `E`) errors.
const FLAKE8: &str = r#"[
  {"owner": "flake8-warning", "severity": "warning",
   "pattern": [{"regexp": "^(.+?):(\\d+):(\\d+): ([WC]\\d+) (.*)$", "file": 1, "line": 2, "column": 3, "code": 4, "message": 5}]},
  {"owner": "flake8", "severity": "error",
   "pattern": [{"regexp": "^(.+?):(\\d+):(\\d+): ([A-Z]+\\d+) (.*)$", "file": 1, "line": 2, "column": 3, "code": 4, "message": 5}]}
]"#;

/// ESLint's default `stylish` format (a file, then its indented rows; a parsing error
/// has no rule), and the `unix` and `compact` formats.
const ESLINT: &str = r#"[
  {"owner": "eslint-stylish",
   "pattern": [
     {"regexp": "^([^\\s].*)$", "file": 1},
     {"regexp": "^\\s+(\\d+):(\\d+)\\s+(error|warning|info)\\s+(.*?)(?:\\s\\s+(\\S+))?$", "line": 1, "column": 2, "severity": 3, "message": 4, "code": 5, "loop": true}
   ]},
  {"owner": "eslint-unix",
   "pattern": [{"regexp": "^(.+?):(\\d+):(\\d+): (.*) \\[(Error|Warning|Info)(?:/(.+))?\\]$", "file": 1, "line": 2, "column": 3, "message": 4, "severity": 5, "code": 6}]},
  {"owner": "eslint-compact",
   "pattern": [{"regexp": "^(.+?): line (\\d+), col (\\d+), (Error|Warning|Info) - (.*?)(?: \\(([^()]+)\\))?$", "file": 1, "line": 2, "column": 3, "severity": 4, "message": 5, "code": 6}]}
]"#;

/// GCC's and Clang's diagnostics: `file:line:col: error|warning|note: text [-Wflag]`
/// (the column may be missing; `fatal error` is an error, a note a notice).
const GCC: &str = r#"[
  {"owner": "gcc",
   "pattern": [{"regexp": "^(.+?):(\\d+):(?:(\\d+):)? (?:fatal )?(error|warning|note): (.*?)(?: \\[(-W[^\\]]+)\\])?$", "file": 1, "line": 2, "column": 3, "severity": 4, "message": 5, "code": 6}]}
]"#;

/// tsc's plain `file(line,col): error TSxxxx: text` (the default off a terminal, and
/// `--pretty false`) and its `--pretty` `file:line:col - error TSxxxx: text`.
const TSC: &str = r#"[
  {"owner": "tsc",
   "pattern": [{"regexp": "^(.+?)\\((\\d+),(\\d+)\\): (error|warning|message|info) (TS\\d+): (.*)$", "file": 1, "line": 2, "column": 3, "severity": 4, "code": 5, "message": 6}]},
  {"owner": "tsc-pretty",
   "pattern": [{"regexp": "^(.+?):(\\d+):(\\d+) - (error|warning|message|info) (TS\\d+): (.*)$", "file": 1, "line": 2, "column": 3, "severity": 4, "code": 5, "message": 6}]}
]"#;

/// A matcher as written: GitHub Actions' `problemMatcher` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatcher {
    /// A name for the matcher; messages use it.
    owner: Option<String>,
    /// The severity of problems whose pattern captures none.
    severity: Option<String>,
    /// One pattern, or a list of them matching lines one after another.
    pattern: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPattern {
    regexp: String,
    file: Option<usize>,
    from_path: Option<usize>,
    line: Option<usize>,
    end_line: Option<usize>,
    column: Option<usize>,
    end_column: Option<usize>,
    severity: Option<usize>,
    message: Option<usize>,
    code: Option<usize>,
    #[serde(default, rename = "loop")]
    looping: bool,
}

impl Matchers {
    /// The matchers the `matcher` setting names: a built-in's name, a problem-matcher
    /// JSON document as text, or the same document as a table (or a list of matchers,
    /// or one matcher).
    pub fn from_setting(value: &Value) -> Result<Self, String> {
        let document = match value {
            Value::String(name) if BUILTINS.contains(&name.as_str()) => return Ok(Self::builtin(name)),
            Value::String(text) if text.trim_start().starts_with(['{', '[']) => serde_json::from_str(text)
                .map_err(|err| format!("`matcher` is not a problem-matcher JSON document: {err}"))?,
            Value::String(other) => {
                return Err(format!(
                    "`matcher` = `{other}` is not a built-in matcher ({}) nor a problem-matcher JSON document",
                    BUILTINS.join(", ")
                ));
            }
            other => other.clone(),
        };
        Self::from_document(document)
    }

    /// The built-in matcher `name` (one of [`BUILTINS`]).
    fn builtin(name: &str) -> Self {
        let text = match name {
            "flake8" => FLAKE8,
            "eslint" => ESLINT,
            "gcc" => GCC,
            _ => TSC,
        };
        let document = serde_json::from_str(text).expect("the built-in matchers are valid JSON");
        Self::from_document(document).expect("the built-in matchers are valid matchers")
    }

    fn from_document(document: Value) -> Result<Self, String> {
        let list = match document {
            Value::Object(mut object) if object.contains_key("problemMatcher") => {
                if let Some(key) = object.keys().find(|key| *key != "problemMatcher") {
                    return Err(format!("`matcher`: unknown key `{key}` next to `problemMatcher`"));
                }
                object.remove("problemMatcher").expect("the key is there")
            }
            Value::Object(object) => Value::Array(vec![Value::Object(object)]),
            list @ Value::Array(_) => list,
            other => return Err(format!("`matcher` must be a name, a JSON document or a table, not `{other}`")),
        };
        let raw: Vec<RawMatcher> = serde_json::from_value(list).map_err(|err| format!("`matcher`: {err}"))?;
        if raw.is_empty() {
            return Err("`matcher` holds no matchers".into());
        }
        let matchers =
            raw.into_iter().enumerate().map(|(index, raw)| Matcher::new(index, raw)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { matchers })
    }

    /// The problems in `text`, line by line, from a fresh start.
    pub fn scan(&self, text: &str) -> Vec<Problem> {
        let mut states: Vec<Vec<Option<Problem>>> =
            self.matchers.iter().map(|m| vec![None; m.patterns.len().saturating_sub(1)]).collect();
        let mut problems = Vec::new();
        for line in text.lines() {
            let line = strip_colours(line);
            // As GitHub's runner does: the first matcher that reports the line takes it.
            for (matcher, state) in self.matchers.iter().zip(states.iter_mut()) {
                if let Some(problem) = matcher.offer(&line, state) {
                    problems.push(problem);
                    break;
                }
            }
        }
        problems
    }
}

impl Matcher {
    fn new(index: usize, raw: RawMatcher) -> Result<Self, String> {
        let name = raw.owner.clone().unwrap_or_else(|| format!("#{}", index + 1));
        let list = match raw.pattern {
            Value::Array(list) => list,
            one => vec![one],
        };
        let raw_patterns = list
            .into_iter()
            .enumerate()
            .map(|(at, pattern)| {
                serde_json::from_value::<RawPattern>(pattern)
                    .map_err(|err| format!("`matcher` {name}, pattern {}: {err}", at + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw_patterns.is_empty() {
            return Err(format!("`matcher` {name}: `pattern` is empty"));
        }
        let count = raw_patterns.len();
        let mut patterns = Vec::with_capacity(count);
        for (at, raw) in raw_patterns.into_iter().enumerate() {
            let place = format!("`matcher` {name}, pattern {}", at + 1);
            let regex = Regex::new(&raw.regexp).map_err(|err| format!("{place}: bad `regexp`: {err}"))?;
            if raw.looping && (count == 1 || at + 1 != count) {
                return Err(format!("{place}: only the last of several patterns may `loop`"));
            }
            let groups = regex.captures_len() - 1;
            let named = [
                ("file", raw.file),
                ("fromPath", raw.from_path),
                ("line", raw.line),
                ("endLine", raw.end_line),
                ("column", raw.column),
                ("endColumn", raw.end_column),
                ("severity", raw.severity),
                ("message", raw.message),
                ("code", raw.code),
            ];
            for (field, group) in named {
                if let Some(group) = group
                    && group > groups
                {
                    return Err(format!("{place}: `{field}` = {group}, but the regexp has {groups} group(s)"));
                }
            }
            let fields = Fields {
                file: raw.file,
                from_path: raw.from_path,
                line: raw.line,
                column: raw.column,
                severity: raw.severity,
                message: raw.message,
                code: raw.code,
            };
            patterns.push(Pattern { regex, fields, looping: raw.looping });
        }
        if patterns.iter().all(|pattern| pattern.fields.message.is_none()) {
            return Err(format!("`matcher` {name}: no pattern captures the `message`"));
        }
        Ok(Self { default_severity: raw.severity, patterns })
    }

    /// Offers one line; `state[i]` is what patterns `0..=i` have matched so far. This
    /// follows GitHub's runner: the patterns are tried from the last to the first, each
    /// only when the ones before it have matched, and a looping last pattern keeps the
    /// lines before it (a file header) for the next row.
    fn offer(&self, line: &str, state: &mut [Option<Problem>]) -> Option<Problem> {
        let last = self.patterns.len() - 1;
        for index in (0..=last).rev() {
            let running = if index > 0 { state[index - 1].clone() } else { None };
            if index > 0 && running.is_none() {
                continue;
            }
            let pattern = &self.patterns[index];
            match pattern.regex.captures(line) {
                Some(captures) => {
                    let merged = pattern.capture(&captures, running.clone().unwrap_or_default());
                    if index == last {
                        state.iter_mut().for_each(|slot| *slot = None);
                        if pattern.looping {
                            state[index - 1] = running;
                        }
                        return self.finish(merged);
                    }
                    state[index] = Some(merged);
                }
                None if index < last => state[index] = None,
                None => {}
            }
        }
        None
    }

    /// A complete match as a problem; none without a message.
    fn finish(&self, mut problem: Problem) -> Option<Problem> {
        if problem.message.trim().is_empty() {
            return None;
        }
        if problem.severity.is_empty() {
            problem.severity = severity(self.default_severity.as_deref().unwrap_or("error"));
        }
        Some(problem)
    }
}

impl Pattern {
    /// `running` with what this pattern's groups captured laid over it.
    fn capture(&self, captures: &regex::Captures<'_>, mut running: Problem) -> Problem {
        let text = |group: usize| captures.get(group).map(|m| m.as_str().trim()).filter(|s| !s.is_empty());
        let fields = self.fields;
        if let Some(group) = fields.file {
            running.file = text(group).map(str::to_owned);
        }
        if let Some(group) = fields.from_path {
            running.from_path = text(group).map(str::to_owned);
        }
        if let Some(group) = fields.line {
            running.line = text(group).and_then(|s| s.parse().ok());
        }
        if let Some(group) = fields.column {
            running.column = text(group).and_then(|s| s.parse().ok());
        }
        if let Some(group) = fields.severity {
            running.severity = text(group).map(severity).unwrap_or_default();
        }
        if let Some(group) = fields.message {
            running.message = text(group).unwrap_or_default().to_owned();
        }
        if let Some(group) = fields.code {
            running.code = text(group).map(str::to_owned);
        }
        running
    }
}

/// A tool's word for how bad a problem is, as one of `error`, `warning`, `notice`.
fn severity(word: &str) -> &'static str {
    match word.trim().to_ascii_lowercase().as_str() {
        "warning" | "warn" | "w" => "warning",
        "notice" | "note" | "info" | "information" | "message" | "hint" | "i" => "notice",
        _ => "error",
    }
}

/// `line` without terminal colour codes (`tsc --pretty`, a forced-colour eslint).
fn strip_colours(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('\x1b') {
        return line.into();
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in `@`..=`~`.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    /// Each problem as `file:line:col severity code message`, for tables.
    fn shown(problems: &[Problem]) -> Vec<String> {
        problems
            .iter()
            .map(|p| {
                format!(
                    "{}:{}:{} {} {} {}",
                    p.file.as_deref().unwrap_or("-"),
                    p.line.map_or("-".into(), |n| n.to_string()),
                    p.column.map_or("-".into(), |n| n.to_string()),
                    p.severity,
                    p.code.as_deref().unwrap_or("-"),
                    p.message
                )
            })
            .collect()
    }

    fn scan(matcher: &str, fixture_name: &str) -> Vec<String> {
        shown(&Matchers::from_setting(&json!(matcher)).unwrap().scan(&fixture(fixture_name)))
    }

    #[test]
    fn flake8_default_format() {
        assert_eq!(
            scan("flake8", "flake8-default.txt"),
            [
                "./app.py:1:1 error F401 'os' imported but unused",
                "./app.py:2:1 error F401 'sys' imported but unused",
                "./app.py:4:1 error E302 expected 2 blank lines, found 1",
                "./app.py:4:7 error E201 whitespace after '('",
                "./app.py:4:9 error E202 whitespace before ')'",
                "./app.py:5:5 error F841 local variable 'l' is assigned to but never used",
                "./app.py:5:5 error E741 ambiguous variable name 'l'",
                "./app.py:6:14 error F821 undefined name 'undefined_name'",
                "./pkg/util.py:2:13 warning W291 trailing whitespace",
                "./pkg/util.py:3:1 error E302 expected 2 blank lines, found 0",
                "./pkg/util.py:3:8 error E701 multiple statements on one line (colon)",
            ]
        );
    }

    #[test]
    fn flake8_on_named_files_with_a_syntax_error_and_with_source_shown() {
        let problems = scan("flake8", "flake8-files.txt");
        assert_eq!(problems.len(), 9);
        assert_eq!(problems[8], "bad.py:1:13 error E999 SyntaxError: invalid syntax");
        // `--show-source` adds the source line and a caret under each problem.
        let problems = scan("flake8", "flake8-show-source.txt");
        assert_eq!(problems.len(), 8, "{problems:#?}");
        assert_eq!(problems[0], "app.py:1:1 error F401 'os' imported but unused");
    }

    #[test]
    fn eslint_stylish_unix_and_compact_formats() {
        let want = [
            "/srv/ci/widgets/src/app.js:1:7 error no-unused-vars 'unused' is assigned a value but never used",
            "/srv/ci/widgets/src/app.js:3:9 warning eqeqeq Expected '===' and instead saw '=='",
            "/srv/ci/widgets/src/app.js:3:24 error no-undef 'missing' is not defined",
            "/srv/ci/widgets/src/app.js:3:31 warning semi Missing semicolon",
            "/srv/ci/widgets/src/app.js:4:11 warning semi Missing semicolon",
            "/srv/ci/widgets/src/broken.js:2:1 error - Parsing error: Unexpected token",
            "/srv/ci/widgets/src/other.js:1:5 error no-unused-vars 'x' is assigned a value but never used",
            "/srv/ci/widgets/src/other.js:1:10 warning semi Missing semicolon",
        ];
        assert_eq!(scan("eslint", "eslint-stylish.txt"), want);
        // unix and compact end their messages with the rule's full stop.
        let with_stop: Vec<String> = want
            .iter()
            .map(|line| if line.contains("Parsing error") { line.to_string() } else { format!("{line}.") })
            .collect();
        assert_eq!(scan("eslint", "eslint-unix.txt"), with_stop);
        assert_eq!(scan("eslint", "eslint-compact.txt"), with_stop);
    }

    #[test]
    fn gcc_and_clang_diagnostics_with_flags_and_notes() {
        assert_eq!(
            scan("gcc", "gcc.txt"),
            [
                "src/main.c:6:9 warning -Wparentheses suggest parentheses around assignment used as truth value",
                "src/main.c:7:18 warning -Wformat= format '%d' expects argument of type 'int', but argument 2 has type 'char *'",
                "src/main.c:5:9 warning -Wunused-variable unused variable 'unused'",
                "src/main.c:14:12 error - 'undeclared' undeclared (first use in this function)",
                "src/main.c:14:12 notice - each undeclared identifier is reported only once for each function it appears in",
                "src/main.c:9:1 warning -Wreturn-type control reaches end of non-void function",
                "src/util.h:1:12 warning -Wunused-function 'helper' defined but not used",
            ]
        );
        // In a UTF-8 locale GCC quotes with ‘’; the same problems come out.
        assert_eq!(scan("gcc", "gcc-utf8.txt").len(), 7);
        assert_eq!(scan("gcc", "gcc-fatal.txt"), ["src/fatal.c:1:10 error - missing.h: No such file or directory"]);
        assert_eq!(
            scan("gcc", "clang.txt"),
            [
                "src/main.c:6:11 warning -Wparentheses using the result of an assignment as a condition without parentheses",
                "src/main.c:6:11 notice - place parentheses around the assignment to silence this warning",
                "src/main.c:6:11 notice - use '==' to turn this assignment into an equality comparison",
                "src/main.c:7:24 warning -Wformat format specifies type 'int' but the argument has type 'char *'",
                "src/main.c:5:9 warning -Wunused-variable unused variable 'unused'",
                "src/main.c:9:1 warning -Wreturn-type non-void function does not return a value",
                "src/main.c:14:12 error - use of undeclared identifier 'undeclared'",
            ]
        );
    }

    #[test]
    fn tsc_plain_and_pretty_forms() {
        let want = [
            "src/index.ts:1:7 error TS2322 Type 'string' is not assignable to type 'number'.",
            "src/index.ts:5:7 error TS2345 Argument of type 'number' is not assignable to parameter of type 'string'.",
            "src/index.ts:6:26 error TS2304 Cannot find name 'missing'.",
            "src/index.ts:8:33 error TS2322 Type 'string' is not assignable to type 'number'.",
            "src/index.ts:10:14 error TS2322 Type '{ inner: { depth: string; }; }' is not assignable to type '{ inner: { depth: number; }; }'.",
        ];
        assert_eq!(scan("tsc", "tsc-pretty-false.txt"), want);
        assert_eq!(scan("tsc", "tsc7.txt"), want, "TypeScript 7's output is the same");
        // Colours, source excerpts and related locations are not problems of their own.
        assert_eq!(scan("tsc", "tsc-pretty.txt"), want);
    }

    /// The shape of the `eslint-stylish` matcher GitHub's documentation and
    /// actions/setup-node show (a file line, then looping rows), as a user pastes it:
    /// JSON text with the `problemMatcher` wrapper.
    #[test]
    fn a_pasted_multi_line_matcher_loops_over_a_files_rows() {
        let pasted = r#"{
            "problemMatcher": [
                {
                    "owner": "my-eslint-stylish",
                    "pattern": [
                        { "regexp": "^\\s*([^\\s].*)$", "file": 1 },
                        {
                            "regexp": "^\\s+(\\d+):(\\d+)\\s+(error|warning|info)\\s+(.*)\\s\\s+(.*)$",
                            "line": 1, "column": 2, "severity": 3, "message": 4, "code": 5, "loop": true
                        }
                    ]
                }
            ]
        }"#;
        let matchers = Matchers::from_setting(&json!(pasted)).unwrap();
        let problems = shown(&matchers.scan(&fixture("eslint-stylish.txt")));
        // Without an optional rule group, the parsing error (no rule) is not matched,
        // exactly as on GitHub.
        assert_eq!(problems.len(), 7, "{problems:#?}");
        assert_eq!(
            problems[0],
            "/srv/ci/widgets/src/app.js:1:7 error no-unused-vars 'unused' is assigned a value but never used"
        );
        assert_eq!(problems[6], "/srv/ci/widgets/src/other.js:1:10 warning semi Missing semicolon");
    }

    /// A flake8 matcher in the style many repositories keep in `.github/`: two matchers
    /// in one document, each with a default severity, given as a TOML table would be.
    #[test]
    fn a_matcher_table_with_default_severities() {
        let table = json!({
            "problemMatcher": [
                {"owner": "flake8-error", "severity": "error", "pattern": [
                    {"regexp": "^([^:]*):(\\d+):(\\d+): ([EF]\\d\\d\\d) (.*)$", "file": 1, "line": 2, "column": 3, "code": 4, "message": 5}
                ]},
                {"owner": "flake8-warning", "severity": "warning", "pattern": [
                    {"regexp": "^([^:]*):(\\d+):(\\d+): ([WCN]\\d\\d\\d) (.*)$", "file": 1, "line": 2, "column": 3, "code": 4, "message": 5}
                ]}
            ]
        });
        let problems = shown(&Matchers::from_setting(&table).unwrap().scan(&fixture("flake8-default.txt")));
        assert_eq!(problems.len(), 11);
        assert_eq!(problems[8], "./pkg/util.py:2:13 warning W291 trailing whitespace");
        assert_eq!(problems[0], "./app.py:1:1 error F401 'os' imported but unused");
    }

    /// A two-line matcher without `loop` (a Python traceback's last frame and the
    /// exception), one matcher object on its own, with `fromPath`.
    #[test]
    fn a_two_line_matcher_without_loop_and_from_path() {
        let matcher = json!({
            "owner": "traceback",
            "pattern": [
                {"regexp": "^\\s*File \"(.*)\", line (\\d+), in (.*)$", "file": 1, "line": 2},
                {"regexp": "^(\\w+Error): (.*)$", "code": 1, "message": 2}
            ]
        });
        let output = "Traceback (most recent call last):\n  File \"tools/build.py\", line 12, in <module>\n    main()\nValueError: nope\nValueError: alone\n";
        let problems = Matchers::from_setting(&matcher).unwrap().scan(output);
        // The frame must be the line right before the exception.
        assert!(problems.is_empty(), "{problems:?}");
        let output = "  File \"tools/build.py\", line 12, in <module>\nValueError: nope\nValueError: alone\n";
        assert_eq!(
            shown(&Matchers::from_setting(&matcher).unwrap().scan(output)),
            ["tools/build.py:12:- error ValueError nope"]
        );

        let from = json!({"pattern": {"regexp": "^(\\S+) (\\S+):(\\d+) (.*)$", "fromPath": 1, "file": 2, "line": 3, "message": 4}});
        let problems = Matchers::from_setting(&from).unwrap().scan("pkg/setup.cfg lib/a.py:3 broken\n");
        assert_eq!(problems[0].from_path.as_deref(), Some("pkg/setup.cfg"));
        assert_eq!(problems[0].file.as_deref(), Some("lib/a.py"));
    }

    #[test]
    fn bad_matchers_are_refused_saying_what_is_wrong() {
        let rows = [
            (json!("pylint"), "`matcher` = `pylint` is not a built-in matcher (flake8, eslint, gcc, tsc)"),
            (json!("{ not json"), "`matcher` is not a problem-matcher JSON document"),
            (json!({"pattern": [{"regexp": "(", "message": 1}]}), "`matcher` #1, pattern 1: bad `regexp`"),
            (
                json!({"owner": "x", "pattern": [{"regexp": "(a)", "message": 2}]}),
                "`matcher` x, pattern 1: `message` = 2, but the regexp has 1 group(s)",
            ),
            (json!({"pattern": [{"regexp": "(a)", "file": 1}]}), "no pattern captures the `message`"),
            (
                json!({"pattern": [{"regexp": "(a)", "message": 1, "loop": true}]}),
                "only the last of several patterns may `loop`",
            ),
            (json!({"pattern": [{"regexp": "(a)", "message": 1, "colum": 1}]}), "unknown field `colum`"),
            (json!({"problemMatcher": [], "extra": 1}), "unknown key `extra`"),
            (json!({"problemMatcher": []}), "holds no matchers"),
            (json!(3), "`matcher` must be a name"),
        ];
        for (value, want) in rows {
            let err = Matchers::from_setting(&value).unwrap_err();
            assert!(err.contains(want), "{value}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn colours_are_stripped_and_severities_normalised() {
        assert_eq!(strip_colours("\x1b[96msrc/a.ts\x1b[0m:\x1b[93m1\x1b[0m"), "src/a.ts:1");
        let rows = [
            ("Error", "error"),
            ("fatal", "error"),
            ("W", "warning"),
            ("warning", "warning"),
            ("note", "notice"),
            ("info", "notice"),
        ];
        for (word, want) in rows {
            assert_eq!(severity(word), want, "{word}");
        }
    }
}
