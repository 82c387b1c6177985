//! Templates and expressions (minijinja, Jinja2's syntax): a rule's `if`, a step's `if`,
//! and every string in a step's `with` table.
//!
//! Conditions are lenient about missing data (`payload.pull_request.draft` on a push is
//! simply undefined, hence false); templates are strict (a typo in `{{ parent.output.stder }}`
//! fails the step with a message naming it, rather than sending an empty comment).
//! Both are checked when the config is loaded: syntax, and that every variable they
//! read is one the place they are used provides.

use minijinja::{Environment, UndefinedBehavior, Value};
use std::collections::BTreeSet;
use std::sync::LazyLock;

/// Evaluates conditions: undefined values chain to undefined (false).
static CONDITIONS: LazyLock<Environment<'static>> = LazyLock::new(|| environment(UndefinedBehavior::Chainable));
/// Renders `with` values: an undefined value is an error.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| environment(UndefinedBehavior::Strict));

fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    // Settings are not HTML: never escape.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_recursion_limit(100);
    // A bound on the work of one evaluation, so a loop inside a loop cannot hold a
    // worker: far above what a settings template over 2,048 commits needs.
    env.set_fuel(Some(FUEL));
    env
}

/// Instructions one render or condition may run.
const FUEL: u64 = 2_000_000;

/// The event as templates and conditions see it: every field present (absent options
/// are `null`, so `if event.pull_request` works in strict templates), with `payload`
/// as data rather than text.
pub fn event_value(event: &crate::event::Event, payload: &serde_json::Value) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        for optional in ["pull_request", "comment", "command", "label"] {
            object.entry(optional).or_insert(serde_json::Value::Null);
        }
        object.insert("payload".into(), payload.clone());
    }
    value
}

/// Whether a string is a template (holds `{{`, `{%` or `{#`); other strings are used as written.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The variables a template or condition reads, as dotted paths (`steps.lint.output`).
pub type Reads = BTreeSet<String>;

/// Checks a template's syntax; returns the variables it reads.
pub fn check_template(text: &str) -> Result<Reads, String> {
    let template = TEMPLATES.template_from_str(text).map_err(|err| describe(&err, text))?;
    Ok(template.undeclared_variables(true).into_iter().collect())
}

/// Checks a condition's syntax; returns the variables it reads.
pub fn check_condition(text: &str) -> Result<Reads, String> {
    let expression = compile_expression(text)?;
    Ok(expression.undeclared_variables(true).into_iter().collect())
}

/// Evaluates a condition; its value's truthiness is the answer.
pub fn eval_condition(text: &str, context: &Value) -> Result<bool, String> {
    let expression = compile_expression(text)?;
    expression.eval(context).map(|value| value.is_true()).map_err(|err| describe(&err, text))
}

/// Compiles a condition. minijinja 2 panics ("empty lexer stack") on an expression that
/// closes a `{{ }}` block, such as `}} x` (found by fuzzing; fixed in minijinja 3): such
/// text is refused here with a syntax error rather than taking the daemon down.
fn compile_expression<'s>(text: &'s str) -> Result<minijinja::Expression<'s, 's>, String> {
    let environment: &'s Environment<'s> = &CONDITIONS;
    // Compiling only reads the environment, so nothing is left half-changed by a panic.
    let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| environment.compile_expression(text)));
    match compiled {
        Ok(compiled) => compiled.map_err(|err| describe(&err, text)),
        Err(_) => Err("syntax error: unexpected end of a `{{ }}` block in the expression".into()),
    }
}

/// Renders one template.
pub fn render(text: &str, context: &Value) -> Result<String, String> {
    let template = TEMPLATES.template_from_str(text).map_err(|err| describe(&err, text))?;
    template.render(context).map_err(|err| describe(&err, text))
}

/// Renders every template string inside a `with` value (recursively); other values stay.
/// A string that is exactly one expression (`"{{ event.pull_request.number }}"`) takes
/// the expression's value with its type: a number stays a number, a list a list.
pub fn render_settings(settings: &serde_json::Value, context: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match settings {
        J::String(text) if is_template(text) => match sole_expression(text) {
            Some(expression) => eval_typed(expression, text, context)?,
            None => J::String(render(text, context)?),
        },
        J::Array(items) => J::Array(items.iter().map(|item| render_settings(item, context)).collect::<Result<_, _>>()?),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(key, value)| {
                    Ok((key.clone(), render_settings(value, context).map_err(|e| format!("`{key}`: {e}"))?))
                })
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The expression of a template that is one `{{ ... }}` block and nothing else (blocks
/// with whitespace control, `{{- x -}}`, included).
fn sole_expression(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    let more = ["{{", "}}", "{%", "%}", "{#", "#}"];
    (!inner.trim().is_empty() && !more.iter().any(|mark| inner.contains(mark))).then_some(inner)
}

/// Evaluates a sole expression to JSON. An undefined result is rendered as text instead,
/// so its error names the missing variable exactly as a rendered template's does.
fn eval_typed(expression: &str, text: &str, context: &Value) -> Result<serde_json::Value, String> {
    let environment: &Environment<'static> = &TEMPLATES;
    let compiled =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| environment.compile_expression(expression)));
    let Ok(Ok(compiled)) = compiled else { return render(text, context).map(serde_json::Value::String) };
    let value = compiled.eval(context).map_err(|err| describe(&err, text))?;
    if value.is_undefined() {
        return render(text, context).map(serde_json::Value::String);
    }
    serde_json::to_value(&value).map_err(|err| format!("{text}: the value cannot be used as a setting: {err}"))
}

/// Every template string inside a `with` value, with the key path that leads to it.
pub fn templates_in(settings: &serde_json::Value) -> Vec<(String, &str)> {
    fn walk<'a>(value: &'a serde_json::Value, path: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            serde_json::Value::String(text) if is_template(text) => out.push((path, text)),
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{path}[{i}]"), out);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    walk(item, path, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(settings, String::new(), &mut out);
    out
}

/// A minijinja error as one line: what went wrong and the part of the text it concerns.
fn describe(err: &minijinja::Error, text: &str) -> String {
    let what = err.detail().map_or_else(|| err.kind().to_string(), |detail| format!("{}: {detail}", err.kind()));
    let Some(range) = err.range().filter(|range| text.get(range.clone()).is_some()) else { return what };
    // Widen to the whole dotted name (`parent.output.stder`, not `.output.stder`).
    let name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let start = text[..range.start].rfind(|c: char| !name_char(c)).map_or(0, |i| i + 1);
    match text[start..range.end].trim() {
        "" => what,
        part => format!("{what} at `{part}`"),
    }
}

/// A variable that a template or condition reads and its place does not provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownRead {
    /// Its first part is none of the variables available there.
    #[error("unknown variable `{root}`{} (available here: {})", typo_hint(suggestion.as_deref()), available.join(", "))]
    Variable {
        /// The first part, as written (`parnt` of `parnt.output`).
        root: String,
        /// The available variable it looks like a typo of.
        suggestion: Option<String>,
        /// The variables available there.
        available: Vec<String>,
    },
    /// `steps.NAME` names no earlier step.
    #[error("`steps.{name}`: no earlier step is named `{name}` (earlier steps: {})", names_or_none(earlier))]
    Step {
        /// The step name read.
        name: String,
        /// The steps before this one.
        earlier: Vec<String>,
    },
}

fn typo_hint(suggestion: Option<&str>) -> String {
    suggestion.map(|c| format!("; did you mean `{c}`?")).unwrap_or_default()
}

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// Checks that every variable in `reads` starts with one of the `allowed` roots; for
/// `steps.NAME`, that NAME is in `steps`. Returns the first offender.
pub fn check_reads(reads: &Reads, allowed: &[&str], steps: Option<&[String]>) -> Result<(), UnknownRead> {
    for read in reads {
        let mut parts = read.split('.');
        let root = parts.next().unwrap_or_default();
        if !allowed.contains(&root) {
            return Err(UnknownRead::Variable {
                root: root.to_owned(),
                suggestion: closest(root, allowed.iter().copied()).map(str::to_owned),
                available: allowed.iter().map(|v| (*v).to_owned()).collect(),
            });
        }
        if root == "steps"
            && let (Some(name), Some(steps)) = (parts.next(), steps)
            && !steps.iter().any(|s| s == name)
        {
            return Err(UnknownRead::Step { name: name.to_owned(), earlier: steps.to_vec() });
        }
    }
    Ok(())
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_with_jinja_filters() {
        let context = Value::from_serialize(json!({"parent": {"output": {"stderr": "a.py:1: E1\na.py:2: E2"}}}));
        let text = "Lint failed:\n\n{{ parent.output.stderr | indent(4, true) }}";
        assert_eq!(render(text, &context).unwrap(), "Lint failed:\n\n    a.py:1: E1\n    a.py:2: E2");
        let err = render("{{ parent.output.stder }}", &context).unwrap_err();
        assert!(err.contains("undefined value at `parent.output.stder`"), "{err}");
        assert_eq!(render("{{ parent.output.missing | default('none') }}", &context).unwrap(), "none");
    }

    #[test]
    fn runaway_templates_stop_with_an_error() {
        let context = Value::from_serialize(json!({}));
        let nested = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let err = render(nested, &context).unwrap_err();
        assert!(err.contains("fuel"), "{err}");
        assert!(eval_condition("range(100000) | map('string') | join | length > 0", &context).is_ok());
        let big = render("{{ 'ab' * 100000000 }}", &context).unwrap_err();
        let closed = check_condition("}} x").unwrap_err();
        assert!(closed.contains("syntax error"), "{closed}");
        assert!(big.contains("too large"), "{big}");
    }

    #[test]
    fn settings_render_only_their_templates() {
        let context = Value::from_serialize(json!({"event": {"branch": "main", "number": 3}}));
        let settings =
            json!({"a": "{{ event.branch }}", "b": 1, "c": ["x", "{{ event.number + 1 }}"], "d": {"e": "{x}"}});
        assert_eq!(
            render_settings(&settings, &context).unwrap(),
            json!({"a": "main", "b": 1, "c": ["x", 4], "d": {"e": "{x}"}})
        );
        let bad = json!({"outer": {"inner": "{{ nope.x }}"}});
        assert!(render_settings(&bad, &context).unwrap_err().starts_with("`outer`: `inner`: undefined value"));
        let found: Vec<_> = templates_in(&settings).into_iter().map(|(path, _)| path).collect();
        assert_eq!(found, ["a", "c[1]"]);
    }

    #[test]
    fn a_sole_expression_keeps_its_type() {
        let context = Value::from_serialize(json!({
            "event": {"pull_request": {"number": 42, "title": "7", "draft": false}, "commits": [{"id": "a"}]},
        }));
        let settings = json!({
            "number": "{{ event.pull_request.number }}",
            "trimmed": "{{- event.pull_request.number -}}",
            "title": "{{ event.pull_request.title }}",
            "draft": "{{ event.pull_request.draft }}",
            "ids": "{{ event.commits | map(attribute='id') | list }}",
            "text": "#{{ event.pull_request.number }}",
            "two": "{{ event.pull_request.number }}{{ event.pull_request.number }}",
            "nothing": "{{ none }}",
        });
        assert_eq!(
            render_settings(&settings, &context).unwrap(),
            json!({
                "number": 42, "trimmed": 42, "title": "7", "draft": false, "ids": ["a"],
                "text": "#42", "two": "4242", "nothing": null,
            })
        );
        let missing = render_settings(&json!({"n": "{{ event.pull_request.numbr }}"}), &context).unwrap_err();
        assert!(missing.starts_with("`n`: undefined value"), "{missing}");
        let broken = render_settings(&json!({"n": "{{ }} x }}"}), &context).unwrap_err();
        assert!(broken.contains("syntax error"), "{broken}");
    }

    #[test]
    fn comment_commands_and_their_absence_render_in_strict_templates() {
        let mut event = crate::event::Event { kind: "comment".into(), ..Default::default() };
        event.comment = Some(crate::event::Comment { author: "octocat".into(), ..Default::default() });
        event.command = crate::event::command::parse("/deploy staging eu-west");
        let context = Value::from_serialize(json!({"event": event_value(&event, &json!({}))}));
        let settings = json!({
            "target": "{{ event.command.args[0] }}",
            "rest": "{{ event.command.args[1:] | join(',') }}",
            "who": "{{ event.comment.author }}",
            "label": "{{ event.label or 'none' }}",
        });
        assert_eq!(
            render_settings(&settings, &context).unwrap(),
            json!({"target": "staging", "rest": "eu-west", "who": "octocat", "label": "none"})
        );
        let push = crate::event::Event { kind: "push".into(), ..Default::default() };
        let context = Value::from_serialize(json!({"event": event_value(&push, &json!({}))}));
        let guarded = json!({"t": "{{ event.command.args[0] if event.command else 'no command' }}"});
        assert_eq!(render_settings(&guarded, &context).unwrap(), json!({"t": "no command"}));
    }

    #[test]
    fn conditions_treat_missing_data_as_false() {
        let context = Value::from_serialize(json!({"event": {"branch": "main"}, "payload": {}}));
        let rows = [
            ("event.branch == 'main'", true),
            ("event.branch == 'main' and not payload.pull_request.draft", true),
            ("payload.pull_request.draft", false),
            ("event.branch in ['dev', 'main']", true),
            ("event.branch is startingwith('ma') or false", true),
            ("not (event.branch == 'main')", false),
        ];
        for (text, want) in rows {
            assert_eq!(eval_condition(text, &context), Ok(want), "{text}");
        }
        assert!(check_condition("event.branch ==").unwrap_err().starts_with("syntax error"));
    }

    #[test]
    fn reads_are_checked_against_what_is_available() {
        let reads = check_template("{{ parent.output.stderr }} {{ steps.lint.summary }}").unwrap();
        let steps = vec!["lint".to_owned()];
        assert_eq!(check_reads(&reads, &["event", "parent", "steps"], Some(&steps)), Ok(()));
        let err = check_reads(&reads, &["event", "parnt", "steps"], Some(&steps)).unwrap_err();
        assert!(matches!(&err, UnknownRead::Variable { root, .. } if root == "parent"), "{err:?}");
        assert!(err.to_string().starts_with("unknown variable `parent`; did you mean `parnt`?"), "{err}");
        let err = check_reads(&reads, &["event", "parent", "steps"], Some(&[])).unwrap_err();
        assert_eq!(err.to_string(), "`steps.lint`: no earlier step is named `lint` (earlier steps: none)");
    }

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("lisen", ["listen", "data_dir"]), Some("listen"));
        assert_eq!(closest("brnch", ["branch", "tag"]), Some("branch"));
        assert_eq!(closest("zzzzzz", ["branch", "tag"]), None);
    }
}
