#![allow(clippy::disallowed_methods, reason = "a blocking test that drives the real binary and the synchronous client")]

//! TLS to PostgreSQL (issue 23), against a real server the tests start with `ssl = on`
//! and certificates `openssl` makes at test time: a CA, a server certificate for
//! `localhost` only, and an unrelated CA. Each case asks the server itself whether its
//! session is encrypted (`pg_stat_ssl`), and each refusal is checked for its message. A
//! fake server ([`impostor`]) shows that certificate but signs the handshake with
//! another key: it must learn nothing, not even the user name.

mod common;

use common::{Daemon, free_port, post_push, push_body};
use gitauto::queue::pg_connect::connect;
use std::process::Command;

/// A database on the TLS server and the certificates, or `None` when no server runs here.
fn tls() -> Option<(String, &'static gitauto::testing::TlsFiles)> {
    Some((gitauto::testing::tls_database()?, gitauto::testing::tls_files()?))
}

/// `url` (host `localhost`) connecting to `host` instead, with `params` added.
fn at(url: &str, host: &str, params: &str) -> String {
    format!("{}?{params}", url.replacen("@localhost:", &format!("@{host}:"), 1))
}

/// Whether the session `url` opens is encrypted, as the server sees it.
fn encrypted(url: &str) -> bool {
    let mut client = connect(url).unwrap_or_else(|err| panic!("connecting to {url}: {err:#}"));
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0)
}

/// The whole message of a refused connection.
fn refused(url: &str) -> String {
    match connect(url) {
        Ok(_) => panic!("{url} connected"),
        Err(err) => format!("{err:#}"),
    }
}

#[test]
fn verify_full_to_the_name_in_the_certificate_is_encrypted() {
    let Some((url, files)) = tls() else { return };
    assert!(encrypted(&at(&url, "localhost", &format!("sslmode=verify-full&sslrootcert={}", files.ca.display()))));
}

#[test]
fn verify_full_to_an_address_the_certificate_does_not_name_is_refused_without_the_password() {
    let Some((url, files)) = tls() else { return };
    let url = at(&url, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", files.ca.display()));
    let message = refused(&url.replacen("gitauto@", "gitauto:hunter2@", 1));
    assert!(
        message.contains(
            "the server's certificate is not valid for host `127.0.0.1` (it names localhost); \
             verify-full checks the name, verify-ca does not"
        ),
        "{message}"
    );
    assert!(message.starts_with("connecting to the PostgreSQL store at postgres://gitauto@127.0.0.1:"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn verify_ca_to_an_address_checks_the_chain_only_and_is_encrypted() {
    let Some((url, files)) = tls() else { return };
    assert!(encrypted(&at(&url, "127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", files.ca.display()))));
}

#[test]
fn verify_ca_and_verify_full_with_another_ca_are_refused() {
    let Some((url, files)) = tls() else { return };
    for mode in ["verify-ca", "verify-full", "require"] {
        let message =
            refused(&at(&url, "localhost", &format!("sslmode={mode}&sslrootcert={}", files.other_ca.display())));
        let expected =
            format!("the server's certificate is not signed by the CA in sslrootcert ({})", files.other_ca.display());
        assert!(message.ends_with(&expected), "{mode}: {message}");
    }
}

#[test]
fn require_without_a_ca_takes_any_certificate_and_is_encrypted() {
    let Some((url, _)) = tls() else { return };
    assert!(encrypted(&at(&url, "127.0.0.1", "sslmode=require")));
}

#[test]
fn the_default_prefer_is_encrypted_where_the_server_offers_tls_and_plain_elsewhere() {
    let Some((url, _)) = tls() else { return };
    assert!(encrypted(&url), "no sslmode is prefer: TLS when offered");
    let plain = gitauto::testing::database().expect("the plain server runs where the TLS one does");
    assert!(!encrypted(&plain));
}

#[test]
fn require_against_a_server_without_tls_is_refused() {
    let Some(plain) = gitauto::testing::database() else { return };
    for mode in ["require", "verify-full"] {
        let params = match mode {
            "require" => "sslmode=require".to_owned(),
            _ => format!("sslmode=verify-full&sslrootcert={}", tls().expect("the TLS files").1.ca.display()),
        };
        let message = refused(&format!("{plain}?{params}"));
        assert!(
            message.ends_with(&format!(
                "the server does not offer TLS, and sslmode={mode} asks for it (is `ssl = on` in its postgresql.conf?)"
            )),
            "{message}"
        );
    }
}

#[test]
fn disable_against_the_tls_server_is_plain() {
    let Some((url, _)) = tls() else { return };
    assert!(!encrypted(&at(&url, "localhost", "sslmode=disable")));
}

#[test]
fn a_unix_socket_is_never_encrypted_as_with_libpq() {
    let Some((url, files)) = tls() else { return };
    let dir: String = connect(&url).unwrap().query_one("SHOW unix_socket_directories", &[]).unwrap().get(0);
    let socket = url.replacen("@localhost:", &format!("@{}:", dir.replace('/', "%2F")), 1);
    assert!(!encrypted(&format!("{socket}?sslmode=verify-full&sslrootcert={}", files.ca.display())));
}

/// The real daemon on a verify-full store: it starts, accepts a signed push, and every
/// session it holds on the database is encrypted.
#[test]
fn a_daemon_on_a_verify_full_store_accepts_a_delivery_over_tls() {
    let Some((url, files)) = tls() else { return };
    // A `password` parameter (the server takes any) must reach neither the log nor errors.
    let store =
        at(&url, "localhost", &format!("password=hunter2&sslmode=verify-full&sslrootcert={}", files.ca.display()));
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = root.path().join("gitauto.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "data"
workers = 0
[store]
url = "{store}"
[sources.github]
forge = "github"
secret = "tls-secret"
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "/srv/repos", git = true }}] }}
[[rules]]
name = "update"
on = "push"
repo = "acme/*"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "/srv/repos" }} }}]
"#
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config, &base);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let accepted = runtime.block_on(post_push(
        reqwest::Client::new(),
        format!("{base}/hooks/github"),
        "tls-secret",
        "tls-1".to_owned(),
        push_body("alpha", &"a".repeat(40), 1),
    ));
    assert_eq!(accepted.as_deref(), Some("tls-1"), "log: {}", log(&config));
    let mut client = connect(&store).unwrap();
    let deliveries: i64 = client.query_one("SELECT count(*) FROM deliveries", &[]).unwrap().get(0);
    let jobs: i64 = client.query_one("SELECT count(*) FROM jobs", &[]).unwrap().get(0);
    assert_eq!((deliveries, jobs), (1, 1));
    let sessions = "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
                    JOIN pg_stat_ssl s USING (pid) WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()";
    let (all, encrypted): (i64, i64) = {
        let row = client.query_one(sessions, &[]).unwrap();
        (row.get(0), row.get(1))
    };
    assert!(all > 0, "the daemon holds sessions on the store");
    assert_eq!(encrypted, all, "every session of the daemon is encrypted");
    daemon.kill();
    let log = log(&config);
    assert!(log.contains("gitauto is serving"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

/// A store that cannot be opened: `gitauto serve` says why, and no layer of the message
/// shows a `password` parameter, its key percent-encoded or not.
#[test]
fn serve_on_a_refused_store_shows_no_password_parameter() {
    let Some(plain) = gitauto::testing::database() else { return };
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("gitauto.toml");
    for params in ["password=hunter2&sslmode=require", "sslmode=require&pass%77ord=hunter2"] {
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\ndata_dir = \"data\"\nworkers = 0\n[store]\nurl = \"{plain}?{params}\"\n",
                free_port()
            ),
        )
        .unwrap();
        let serve = Command::new(env!("CARGO_BIN_EXE_gitauto"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&serve.stderr);
        assert!(!serve.status.success(), "{params}: {stderr}");
        assert!(stderr.contains("the server does not offer TLS"), "{params}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{params}: {stderr}");
    }
}

/// `sslmode=require` is read wherever libpq and tokio-postgres read it: behind a password
/// holding a raw `?` (as a `${VAR}` may put there) and under a percent-encoded key. Against
/// a server without TLS each is refused, never sent in plaintext.
#[test]
fn require_behind_a_raw_question_mark_or_an_encoded_key_is_not_downgraded() {
    let Some(plain) = gitauto::testing::database() else { return };
    let with_password = plain.replacen("gitauto@", "gitauto:pa?ss@", 1);
    assert_ne!(with_password, plain, "the test URL names user gitauto");
    for url in [format!("{with_password}?sslmode=require"), format!("{plain}?ssl%6Dode=require")] {
        let message = refused(&url);
        assert!(
            message.ends_with("sslmode=require asks for it (is `ssl = on` in its postgresql.conf?)"),
            "{url}: {message}"
        );
    }
}

/// A Unix-socket `host` with a `hostaddr` connects over TCP to the address, so TLS
/// applies as libpq applies it: encrypted or refused, never plain.
#[test]
fn a_unix_socket_host_with_a_hostaddr_is_never_plain() {
    let Some((url, _)) = tls() else { return };
    let dir: String = connect(&url).unwrap().query_one("SHOW unix_socket_directories", &[]).unwrap().get(0);
    let port = url.rsplit_once(':').unwrap().1.split('/').next().unwrap().to_owned();
    let database = url.rsplit_once('/').unwrap().1.to_owned();
    let mixed = format!("postgres://gitauto@/{database}?host={dir}&hostaddr=127.0.0.1&port={port}&sslmode=require");
    match connect(&mixed) {
        Ok(mut client) => {
            let ssl: bool =
                client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0);
            assert!(ssl, "{mixed} connected in plaintext");
        }
        Err(err) => {
            let message = format!("{err:#}");
            assert!(message.contains("hostaddr without a host name"), "{message}");
        }
    }
}

fn log(config: &std::path::Path) -> String {
    std::fs::read_to_string(config.with_extension("log.txt")).unwrap_or_default()
}

/// `gitauto check` reads the store URL's TLS settings and the CA file, and says what is
/// wrong with each, never showing the password.
#[test]
fn check_reports_bad_tls_settings_and_ca_files() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "just text\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let base = "postgres://gitauto:hunter2@db.example:5432/gitauto";
    let cases = [
        (
            "sslmode=verify-fulll".to_owned(),
            "sslmode `verify-fulll` is not one of disable, prefer, require, verify-ca, verify-full".to_owned(),
        ),
        ("sslmode=verify-full".to_owned(), "sslmode=verify-full needs sslrootcert=PATH".to_owned()),
        (
            format!("sslmode=verify-ca&sslrootcert={}", missing.display()),
            format!("reading sslrootcert {}: No such file", missing.display()),
        ),
        (
            format!("sslmode=require&sslrootcert={}", not_pem.display()),
            format!("sslrootcert {} holds no PEM certificate", not_pem.display()),
        ),
        (format!("sslrootcert={}", broken.display()), format!("sslrootcert {} is not a PEM file", broken.display())),
        (
            "sslmode=require&sslcert=client.pem".to_owned(),
            "`sslcert`: client certificates are not supported".to_owned(),
        ),
    ];
    for (params, expected) in cases {
        let config = dir.path().join("gitauto.toml");
        std::fs::write(&config, format!("[store]\nurl = \"{base}?{params}\"\n")).unwrap();
        let check = Command::new(env!("CARGO_BIN_EXE_gitauto"))
            .args(["check", "--config", config.to_str().unwrap()])
            .env("GITAUTO_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "{params}: {stderr}");
        assert!(stderr.contains(&format!("gitauto.toml:2:7: `[store] url`: {expected}")), "{params}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    // A good CA file passes.
    if let Some(files) = gitauto::testing::tls_files() {
        let config = dir.path().join("gitauto.toml");
        let url = format!("{base}?sslmode=verify-full&sslrootcert={}", files.ca.display());
        std::fs::write(&config, format!("[store]\nurl = \"{url}\"\n")).unwrap();
        let check = Command::new(env!("CARGO_BIN_EXE_gitauto"))
            .args(["check", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    }
}

/// A fake PostgreSQL server that shows the real server's certificate (key A, signed by
/// the test CA, for `localhost`) but signs the handshake with another key (B), as someone
/// on the path holding only the certificate would. A verifier that skipped the handshake
/// signature would let such a server through; nothing else in these tests would notice.
mod impostor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    /// PostgreSQL's SSLRequest: length 8, code 80877103.
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

    /// Certificate A with key B, handed out without rustls's consistency check
    /// (`CertifiedKey::new`, unlike `with_single_cert`, does not compare the keys).
    #[derive(Debug)]
    struct Mismatched(Arc<CertifiedKey>);

    impl ResolvesServerCert for Mismatched {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    /// What one connection to the fake server did.
    #[derive(Debug)]
    pub struct Attempt {
        /// Whether it began with an SSLRequest (answered `S`).
        pub asked_for_tls: bool,
        /// The plaintext that reached the server through TLS: the startup message (user
        /// name, database) if the client took the handshake.
        pub plaintext: Vec<u8>,
    }

    /// A running fake server.
    pub struct Server {
        pub port: u16,
        thread: std::thread::JoinHandle<Vec<Attempt>>,
    }

    impl Server {
        /// Serves `chain` (certificate A) signed with the key in `signing_key` (B), speaking
        /// only `version`.
        pub fn start(
            chain: &std::path::Path,
            signing_key: &std::path::Path,
            version: &'static rustls::SupportedProtocolVersion,
        ) -> Self {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(chain).unwrap().collect::<Result<_, _>>().unwrap();
            let key = PrivateKeyDer::from_pem_file(signing_key).unwrap();
            let key = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
            let resolver = Mismatched(Arc::new(CertifiedKey::new(chain, key)));
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[version])
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(resolver));
            let config = Arc::new(config);
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let thread = std::thread::spawn(move || {
                let mut attempts = Vec::new();
                for stream in listener.incoming() {
                    let mut stream = stream.unwrap();
                    let mut first = [0; 8];
                    // A connection that sends nothing is `stop`'s.
                    if stream.read_exact(&mut first).is_err() {
                        break;
                    }
                    attempts.push(serve(stream, first, &config));
                }
                attempts
            });
            Self { port, thread }
        }

        /// Stops the server; what each connection did.
        pub fn stop(self) -> Vec<Attempt> {
            drop(TcpStream::connect(("127.0.0.1", self.port)).unwrap());
            self.thread.join().unwrap()
        }
    }

    fn serve(mut stream: TcpStream, first: [u8; 8], config: &Arc<rustls::ServerConfig>) -> Attempt {
        if first != SSL_REQUEST {
            return Attempt { asked_for_tls: false, plaintext: first.to_vec() };
        }
        stream.write_all(b"S").unwrap();
        let tls = rustls::ServerConnection::new(config.clone()).unwrap();
        let mut tls = rustls::StreamOwned::new(tls, stream);
        // The handshake, then the first plaintext the client sends (its startup message),
        // if it goes on; a refusing client ends the handshake with an alert instead.
        let mut plaintext = vec![0; 4096];
        let read = tls.read(&mut plaintext).unwrap_or(0);
        plaintext.truncate(read);
        Attempt { asked_for_tls: true, plaintext }
    }
}

/// The handshake must be signed by the key of the certificate shown: a server that shows
/// the real certificate but signs with another key is refused in every mode that uses
/// TLS, over TLS 1.3 and 1.2, before the startup message (user name, database) is sent.
#[test]
fn a_server_whose_handshake_is_not_signed_by_its_certificates_key_is_refused_before_the_startup_message() {
    let Some(files) = gitauto::testing::tls_files() else { return };
    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("b.key");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
        .arg(&other_key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let ca = files.ca.display();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for params in [
            "sslmode=require".to_owned(),
            format!("sslmode=verify-ca&sslrootcert={ca}"),
            format!("sslmode=verify-full&sslrootcert={ca}"),
        ] {
            let server = impostor::Server::start(&files.cert, &other_key, version);
            let url = format!("postgres://gitauto@localhost:{}/secretdb?{params}", server.port);
            let outcome = connect(&url).map(drop).map_err(|err| format!("{err:#}"));
            let attempts = server.stop();
            let case = format!("{:?}, {params}", version.version);
            // The world first: what reached the impostor, whatever the client says.
            assert!(attempts.iter().any(|attempt| attempt.asked_for_tls), "{case}: no TLS attempt: {attempts:?}");
            for attempt in &attempts {
                assert!(attempt.asked_for_tls, "{case}: a connection without TLS: {attempts:?}");
                let seen = String::from_utf8_lossy(&attempt.plaintext);
                assert!(attempt.plaintext.is_empty(), "{case}: the startup message reached the impostor: {seen:?}");
            }
            let message = outcome.expect_err(&format!("{case}: the impostor was taken"));
            assert!(message.contains("BadSignature"), "{case}: {message}");
        }
    }
}
