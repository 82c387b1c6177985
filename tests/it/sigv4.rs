//! Host-signed requests (issue 20): a host granted with an AWS SigV4 credential signs
//! every request the plugin sends there, over exactly what is sent; the plugin never
//! holds the secret key, cannot put its own `authorization` or `x-amz-*` headers in their
//! place, and a redirect elsewhere carries no signature.

use crate::sandbox::{assert_refused, probe};
use gitauto::config::Config;
use gitauto::runtime::Runtime;
use gitauto_tests::receiver::{Received, Receiver};
use gitauto_tests::s3::S3Server;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

const ACCESS_KEY: &str = "AKIDGITAUTOTEST";
/// The secret the config reads from a file; the plugin never sees it.
const SECRET_KEY: &str = "only/the+host=knows-this";
const SESSION_TOKEN: &str = "session-token-of-the-host";

/// A runtime whose `probe` is granted `hosts` (TOML, inside `hosts = [...]`), where
/// `SIGV4` stands for the SigV4 credential (read from a file in `dir`).
async fn runtime(dir: &tempfile::TempDir, hosts: &str) -> Arc<Runtime> {
    std::fs::write(dir.path().join("s3-secret"), format!("{SECRET_KEY}\n")).unwrap();
    let sigv4 = format!(
        "{{ sigv4 = {{ access_key = \"{ACCESS_KEY}\", secret_key = \"file:{}/s3-secret\", region = \"us-east-1\", \
         session_token = \"{SESSION_TOKEN}\" }} }}",
        dir.path().display()
    );
    let text = format!(
        "[plugins.probe]\nwasm = \"{}\"\ngrants = {{ hosts = [{}] }}\n",
        env!("GITAUTO_GUEST_PROBE"),
        hosts.replace("SIGV4", &sigv4)
    );
    let config = Config::parse(&dir.path().join("gitauto.toml"), &text).unwrap_or_else(|err| panic!("{err}"));
    let specs: Vec<_> = config.plugins.values().cloned().collect();
    let cache = dir.path().join("cache");
    let (runtime, _) = tokio::task::spawn_blocking(move || Runtime::new(&specs, &cache)).await.unwrap().unwrap();
    Arc::new(runtime)
}

/// Checks a received request's signature as an S3 server does, from what it received:
/// the path and query as sent, the signed headers' values, the body's hash.
fn signed_with(request: &Received, secret: &str) -> bool {
    let Some(authorization) = request.header("authorization") else { return false };
    let Some(rest) = authorization.strip_prefix("AWS4-HMAC-SHA256 Credential=") else { return false };
    let mut parts = rest.split(", ");
    let (credential, signed, signature) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let scope = credential.split_once('/').unwrap().1;
    let signed = signed.strip_prefix("SignedHeaders=").unwrap();
    let signature = signature.strip_prefix("Signature=").unwrap();
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let payload = hex::encode(Sha256::digest(&request.body));
    if request.header("x-amz-content-sha256") != Some(payload.as_str()) {
        return false;
    }
    let mut canonical = format!("{}\n{path}\n{query}\n", request.method);
    for name in signed.split(';') {
        let values: Vec<&str> = request.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.trim()).collect();
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    canonical.push_str(&format!("\n{signed}\n{payload}"));
    let date = request.header("x-amz-date").unwrap();
    let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", hex::encode(Sha256::digest(&canonical)));
    let hmac = |key: &[u8], data: &str| {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let key = scope.split('/').fold(format!("AWS4{secret}").into_bytes(), |key, part| hmac(&key, part));
    hex::encode(hmac(&key, &to_sign)) == signature
}

fn put(url: &str, headers: Value) -> Value {
    json!({"op": "http", "method": "PUT", "url": url, "headers": headers, "body": "hello"})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_signs_what_it_sends_in_place_of_the_plugins_own_headers() {
    let server = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir, &format!("{{ host = \"{}\", credential = SIGV4 }}", server.host())).await;
    let forged = json!([
        ["Authorization", "AWS4-HMAC-SHA256 Credential=forged"],
        ["X-Amz-Date", "20000101T000000Z"],
        ["X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"],
        ["X-Amz-Security-Token", "forged"],
        ["Content-Type", "text/plain"],
        ["Cache-Control", "max-age=60"],
    ]);
    let url = format!("{}/bucket/a b+c%2Bd/ünï.txt?b=2&a=x+y", server.url);
    let answer = probe(&runtime, put(&url, forged)).await.unwrap();
    assert_eq!(answer["status"], 200);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    // The key and the query as sent: decoded and encoded once by AWS's rules.
    assert_eq!(request.path, "/bucket/a%20b%2Bc%2Bd/%C3%BCn%C3%AF.txt?a=x%20y&b=2");
    assert_eq!(request.text(), "hello");
    for name in ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "host"] {
        let count = request.headers.iter().filter(|(n, _)| n == name).count();
        assert_eq!(count, 1, "one `{name}` header: {:?}", request.headers);
    }
    let authorization = request.header("authorization").unwrap();
    assert!(authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")), "{authorization}");
    assert!(authorization.contains("/us-east-1/s3/aws4_request, "), "{authorization}");
    assert!(
        authorization.contains(
            "SignedHeaders=cache-control;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
        ),
        "{authorization}"
    );
    assert_ne!(request.header("x-amz-date"), Some("20000101T000000Z"));
    assert_eq!(request.header("x-amz-security-token"), Some(SESSION_TOKEN));
    assert_eq!(request.header("host"), Some(server.host()));
    assert!(signed_with(request, SECRET_KEY), "the signature covers what was received: {request:?}");
    assert!(!signed_with(request, "another secret"), "the check can fail");
    assert!(!format!("{:?}", request.headers).contains(SECRET_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hop_is_signed_afresh_and_a_redirect_elsewhere_carries_no_signature() {
    let signing = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = format!("{{ host = \"{}\", credential = SIGV4 }}, \"{}\"", signing.host(), elsewhere.host());
    let runtime = runtime(&dir, &hosts).await;
    signing.then_answer(307, &[("location", "/bucket/moved")], "");
    signing.then_answer(307, &[("location", &format!("{}/elsewhere", elsewhere.url))], "");
    let headers = json!([["Authorization", "Bearer the-plugins-own"], ["Content-Type", "text/plain"]]);
    let answer = probe(&runtime, put(&format!("{}/bucket/key", signing.url), headers)).await.unwrap();
    assert_eq!(answer["status"], 200);

    let signed = signing.requests();
    assert_eq!(signed.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/bucket/key", "/bucket/moved"]);
    for request in &signed {
        assert!(signed_with(request, SECRET_KEY), "{request:?}");
    }
    assert_ne!(signed[0].header("authorization"), signed[1].header("authorization"));
    let away = elsewhere.requests();
    assert_eq!(away.len(), 1);
    assert_eq!((away[0].method.as_str(), away[0].text().as_str()), ("PUT", "hello"));
    for name in ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"] {
        assert_eq!(away[0].header(name), None, "`{name}` went to a host without a credential: {:?}", away[0]);
    }
}

/// Issue 20 review: signed, a request whose query holds a presigned URL's parameters
/// has a presigned URL's canonical text; S3 refuses it but echoes the signature, which
/// would then open the object to anyone for up to 7 days. Nothing is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_query_that_would_turn_the_signature_into_a_presigned_url_is_refused_before_sending() {
    let server = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir, &format!("{{ host = \"{}\", credential = SIGV4 }}", server.host())).await;
    let presign = format!(
        "X-Amz-Credential={ACCESS_KEY}%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z\
         &X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    );
    let url = format!("{}/bucket/key?{presign}", server.url);
    let result = probe(&runtime, json!({"op": "http", "url": url})).await;
    assert_refused(result, "query parameter `X-Amz-Algorithm` is refused on a request the host signs");
    let sigv2 = format!("{}/bucket/key?AWSAccessKeyId={ACCESS_KEY}&Expires=2000000000", server.url);
    assert_refused(probe(&runtime, json!({"op": "http", "url": sigv2})).await, "query parameter `AWSAccessKeyId`");
    assert_eq!(server.connections(), 0);
}

/// Issue 20 review: a granted server without a credential cannot steer the plugin's
/// method and body to a host with one (a `307` to a bucket) and have them signed there,
/// nor have a header credential added; once a redirect has left the first hop's origin,
/// no later hop gets a credential, even back on a host that has one.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_from_another_origin_gets_no_credential() {
    for credential in ["SIGV4", "\"the-host-token\""] {
        let steering = Receiver::start().await;
        let bucket = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let hosts = format!("\"{}\", {{ host = \"{}\", credential = {credential} }}", steering.host(), bucket.host());
        let runtime = runtime(&dir, &hosts).await;
        steering.then_answer(307, &[("location", &format!("{}/bucket/key", bucket.url))], "");
        bucket.then_answer(307, &[("location", "/bucket/again")], "");
        let answer = probe(&runtime, put(&format!("{}/upload", steering.url), json!([]))).await.unwrap();
        assert_eq!(answer["status"], 200, "{credential}");

        let reached = bucket.requests();
        assert_eq!(reached.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/bucket/key", "/bucket/again"]);
        for request in &reached {
            assert_eq!((request.method.as_str(), request.text().as_str()), ("PUT", "hello"));
            for (name, _) in &request.headers {
                assert!(
                    name != "authorization" && !name.starts_with("x-amz-"),
                    "{credential}: `{name}` went with a redirect from another origin: {request:?}"
                );
            }
        }
        // Asked directly, the same host gets its credential: the check above can fail.
        probe(&runtime, put(&format!("{}/bucket/direct", bucket.url), json!([]))).await.unwrap();
        assert!(bucket.requests()[2].header("authorization").is_some(), "{credential}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_a_name_with_a_sigv4_credential_is_refused_before_connecting() {
    let server = Receiver::start().await;
    let port = server.host().rsplit(':').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir, &format!("{{ host = \"localhost:{port}\", credential = SIGV4 }}")).await;
    let result = probe(&runtime, put(&format!("http://localhost:{port}/bucket/key"), json!([]))).await;
    assert_refused(result, &format!("the credential granted for localhost:{port} is sent only over https"));
    assert_eq!(server.connections(), 0);
}

/// The object key the S3 tests store: a space, `+`, `%`, parentheses, `=`, `&` and
/// non-ASCII letters, in a nested "directory".
const AWKWARD_KEY: &str = "u/acme/a b+c%d (ü)=&é.html";
/// [`AWKWARD_KEY`] as a plugin writes it in a URL (each byte but `/` and the unreserved
/// ones percent-encoded, as the SDK does).
const AWKWARD_PATH: &str = "u/acme/a%20b%2Bc%25d%20%28%C3%BC%29%3D%26%C3%A9.html";

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_stores_and_reads_an_object_with_an_awkward_key_on_a_real_s3_server() {
    let mut server = S3Server::start(&["site"]).await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir, &server.granted_host(None)).await;
    let object = format!("{}/site/{AWKWARD_PATH}", server.endpoint());
    let headers = json!([["Content-Type", "text/html; charset=utf-8"], ["Cache-Control", "max-age=60"]]);
    let stored =
        probe(&runtime, json!({"op": "http", "method": "PUT", "url": object, "headers": headers, "body": "<p>hi</p>"}))
            .await
            .unwrap();
    assert_eq!(stored["status"], 200, "{stored}");
    assert_eq!(server.keys("site"), [AWKWARD_KEY]);
    assert_eq!(server.object("site", AWKWARD_KEY).as_deref(), Some(&b"<p>hi</p>"[..]));
    assert_eq!(server.content_type("site", AWKWARD_KEY).as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(server.cache_control("site", AWKWARD_KEY).as_deref(), Some("max-age=60"));

    let read = probe(&runtime, json!({"op": "http", "url": object})).await.unwrap();
    assert_eq!((read["status"].as_u64(), read["body"].as_str()), (Some(200), Some("<p>hi</p>")), "{read}");

    // A listing whose query carries a space written as `+`, and an encoded `=` and `&`.
    let prefix = "u/acme/a+b%2Bc%25d%20%28%C3%BC%29%3D%26";
    let list = format!("{}/site?prefix={prefix}&list-type=2", server.endpoint());
    let listed = probe(&runtime, json!({"op": "http", "url": list})).await.unwrap();
    assert_eq!(listed["status"], 200, "{listed}");
    let body = listed["body"].as_str().unwrap();
    assert!(body.contains("<KeyCount>1</KeyCount>"), "{body}");
    // And the empty path: the list of buckets.
    let buckets = probe(&runtime, json!({"op": "http", "url": server.endpoint()})).await.unwrap();
    assert_eq!(buckets["status"], 200, "{buckets}");
    assert!(buckets["body"].as_str().unwrap().contains("<Name>site</Name>"), "{buckets}");
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_key_is_refused_by_the_s3_server_and_nothing_is_stored() {
    let mut server = S3Server::start(&["site"]).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-servers-secret";
    let runtime = runtime(&dir, &server.granted_host(Some(wrong))).await;
    let object = format!("{}/site/{AWKWARD_PATH}", server.endpoint());
    let answer =
        probe(&runtime, json!({"op": "http", "method": "PUT", "url": object, "body": "<p>hi</p>"})).await.unwrap();
    assert_eq!(answer["status"], 403, "{answer}");
    let body = answer["body"].as_str().unwrap();
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
    assert!(!body.contains(wrong), "{body}");
    assert!(server.keys("site").is_empty(), "nothing stored: {:?}", server.keys("site"));
    assert!(server.is_running());
}
