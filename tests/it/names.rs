//! Hostile names in signed deliveries: repository names and refs with `..`, `/`, NUL,
//! option-like or very long text, commit ids that are not ids, changed paths that leave
//! the tree, clone and web URLs that are not plain absolute URLs (issue 16), and text
//! that is not UTF-8. Each delivery is refused before routing with
//! the field and the reason, recorded as invalid, and queues nothing; no plugin ever
//! receives such a name (the checkout plugin checks again on its side).

use gitauto_tests::{TestDaemon, github_source, push_payload};
use serde_json::Value;

const ZERO: &str = "0000000000000000000000000000000000000000";
const AFTER: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

/// A push that a rule matching everything would queue, edited by `edit`.
fn push(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut payload: Value =
        serde_json::from_slice(&push_payload("acme", "widgets", "refs/heads/main", ZERO, AFTER, "file:///x")).unwrap();
    edit(&mut payload);
    serde_json::to_vec(&payload).unwrap()
}

fn set_name(payload: &mut Value, name: &str) {
    payload["repository"]["name"] = name.into();
    payload["repository"]["full_name"] = format!("acme/{name}").into();
}

#[tokio::test]
async fn hostile_names_and_refs_are_refused_before_anything_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(&format!(
        "{}\n[plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"{repos}\", git = true }}] }}\n\n\
         [[rules]]\nname = \"all\"\non = [\"push\", \"tag\"]\n\
         steps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"{repos}\" }} }}]\n",
        github_source(),
        repos = dir.path().display(),
    ))
    .await;

    let long = "w".repeat(10_000);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("name ..", push(|p| set_name(p, "..")), "repository.name \"..\" cannot be used: it is a relative path"),
        ("name with /", push(|p| set_name(p, "../../etc")), "repository.name \"../../etc\""),
        (
            "name with NUL",
            push(|p| set_name(p, "widgets\0x")),
            "repository.name \"widgets\\0x\" cannot be used: it contains a control character",
        ),
        ("long name", push(|p| set_name(p, &long)), "cannot be used: it is longer than 255 bytes"),
        (
            "owner climbing",
            push(|p| p["repository"]["owner"]["login"] = "acme/../..".into()),
            "repository.owner \"acme/../..\" cannot be used: it is a relative path component",
        ),
        (
            "full name absolute",
            push(|p| p["repository"]["full_name"] = "/etc/passwd".into()),
            "repository.full_name \"/etc/passwd\" cannot be used: it has an empty part",
        ),
        (
            "ref with ..",
            push(|p| p["ref"] = "refs/heads/../../../etc/passwd".into()),
            "ref \"refs/heads/../../../etc/passwd\" cannot be used: it contains `..`",
        ),
        ("ref with NUL", push(|p| p["ref"] = "refs/heads/main\0evil".into()), "contains a control character"),
        (
            "branch as an option",
            push(|p| p["ref"] = "refs/heads/--upload-pack=touch".into()),
            "branch \"--upload-pack=touch\" cannot be used: it starts with `-`",
        ),
        (
            "long ref",
            push(|p| p["ref"] = format!("refs/heads/{}", "b/".repeat(2_000)).into()),
            "longer than 1024 bytes",
        ),
        (
            "commit id as a command",
            push(|p| p["after"] = "HEAD; rm -rf /".into()),
            "after \"HEAD; rm -rf /\" cannot be used: a commit id is 4 to 64 hexadecimal digits",
        ),
        (
            "changed path leaving the tree",
            push(|p| p["commits"][0]["modified"] = serde_json::json!(["../../.ssh/authorized_keys"])),
            "commits[].paths \"../../.ssh/authorized_keys\" cannot be used: it is a relative path component",
        ),
        (
            "owner as an option",
            push(|p| p["repository"]["owner"]["login"] = "--upload-pack=touch".into()),
            "repository.owner \"--upload-pack=touch\" cannot be used: it starts with `-`",
        ),
        ("name as an option", push(|p| set_name(p, "-x")), "repository.name \"-x\" cannot be used: it starts with `-`"),
        (
            "clone URL running a command",
            push(|p| p["repository"]["clone_url"] = "ext::sh -c touch% /tmp/pwned".into()),
            "repository.clone_url \"ext::sh -c touch% /tmp/pwned\" cannot be used: it contains whitespace",
        ),
        (
            "clone URL hiding a second host",
            push(|p| p["repository"]["clone_url"] = "https://github.com?@evil.example/x.git".into()),
            "repository.clone_url \"https://github.com?@evil.example/x.git\" cannot be used: a clone URL cannot have a query",
        ),
        (
            "web URL with a script",
            push(|p| p["repository"]["html_url"] = "javascript:alert(1)".into()),
            "repository.html_url \"javascript:alert(1)\" cannot be used: it is not an absolute http or https URL",
        ),
        (
            "commit URL with an escape",
            push(|p| p["commits"][0]["url"] = "https://github.com/acme/widgets/commit/\u{1b}]0;x".into()),
            "commits[].url \"https://github.com/acme/widgets/commit/\\u{1b}]0;x\" cannot be used: it contains a control character",
        ),
        (
            "not UTF-8",
            {
                let mut body = push(|p| set_name(p, "wid-gets"));
                let at = body.windows(8).position(|w| w == b"wid-gets").unwrap();
                body[at + 3] = 0xff;
                body
            },
            "unreadable push payload: invalid utf-8",
        ),
    ];
    for (what, body, want) in &cases {
        let (status, answer, delivery) = daemon.post_as("github", "push", body).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(error.contains(want), "{what}: want {want:?} in {error:?}");
        let (_, record) = daemon.get(&format!("/api/deliveries/{delivery}")).await;
        assert_eq!(record["verdict"], "invalid", "{what}: {record}");
        assert_eq!(record["jobs"], Value::Array(Vec::new()), "{what}: nothing is queued");
    }

    // Form-encoded, as GitHub sends when asked to: percent-escapes that decode to text
    // that is not UTF-8 are refused, never turned into U+FFFD and used.
    let json = String::from_utf8(push(|p| set_name(p, "widgets"))).unwrap();
    let form = format!("payload={}", percent_escape(&json).replace("widgets", "wid%FFgets"),);
    let source = daemon.config.source("github").unwrap();
    let mut headers = gitauto::send::headers(source, "push", form.as_bytes());
    for (name, value) in &mut headers {
        if name.eq_ignore_ascii_case("content-type") {
            *value = "application/x-www-form-urlencoded".into();
        }
    }
    let (status, answer) = daemon.post("/hooks/github", &headers, form.as_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("the form's `payload` field: invalid utf-8"), "{answer}");

    // The same delivery with ordinary names is taken, so the refusals above were about
    // the names alone.
    let (status, answer, _) = daemon.post_as("github", "push", &push(|_| {})).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["jobs"].as_array().map(Vec::len), Some(1), "{answer}");
    let (_, invalid) = daemon.get("/api/deliveries?verdict=invalid&limit=100").await;
    assert_eq!(invalid["deliveries"].as_array().unwrap().len(), cases.len() + 1);
}

/// Percent-escapes everything but unreserved characters.
fn percent_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
