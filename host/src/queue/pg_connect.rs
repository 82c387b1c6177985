//! Connecting to PostgreSQL: every connection gitauto opens (the store's writer, `queue
//! copy`, the tests' helpers) goes through [`connect`], so the URL's TLS settings are
//! read in one place. TLS runs through rustls; `sslmode` and `sslrootcert` mean what
//! they mean to libpq, and the URL's other parameters are tokio-postgres's to read.

use anyhow::Context;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Connects to the database at `url`.
pub fn connect(url: &str) -> anyhow::Result<postgres::Client> {
    let shown = || format!("the PostgreSQL store at {}", shown(url));
    let settings = Settings::read(url).map_err(anyhow::Error::msg).with_context(|| format!("reading {}", shown()))?;
    settings.connect().with_context(|| format!("connecting to {}", shown()))
}

/// Checks the URL's TLS settings and reads its CA file, for `gitauto check`: the message
/// says what is wrong.
pub fn check(url: &str) -> Result<(), String> {
    let settings = Settings::read(url)?;
    settings.config()?;
    match &settings.root_cert {
        Some(path) => roots(path).map(drop),
        None => Ok(()),
    }
}

/// `sslmode`, as libpq reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it (libpq's default, and ours).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, the server's certificate signed by the CA in `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    const NAMES: [(&str, SslMode); 5] = [
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    fn parse(value: &str) -> Result<Self, String> {
        Self::NAMES.iter().find(|(name, _)| *name == value).map(|&(_, mode)| mode).ok_or_else(|| {
            format!(
                "sslmode `{value}` is not one of {}",
                Self::NAMES.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
            )
        })
    }

    fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, mode)| *mode == self).map(|(name, _)| *name).expect("every mode has a name")
    }
}

/// A store URL, its TLS settings read and the rest left to tokio-postgres.
struct Settings {
    mode: SslMode,
    /// `sslrootcert`: the PEM file of the CA the server's certificate must chain to.
    root_cert: Option<PathBuf>,
    /// The URL without `sslmode` and `sslrootcert`, which tokio-postgres 0.7 does not take.
    rest: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `rest` may hold the password.
        f.debug_struct("Settings")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .field("rest", &super::redacted(&self.rest))
            .finish()
    }
}

/// `url` split where tokio-postgres splits it: before and after the `?` that opens the
/// query, looked for only after the first `@` (tokio-postgres's end of the user part), so a
/// raw `?` in the password is not taken for the query's start.
fn split_query(url: &str) -> (&str, &str) {
    let after = url.find("://").map_or(0, |scheme| scheme + 3);
    let authority = url[after..].find('@').map_or(after, |at| after + at + 1);
    match url[authority..].find('?') {
        Some(at) => (&url[..authority + at], &url[authority + at + 1..]),
        None => (url, ""),
    }
}

impl Settings {
    /// tokio-postgres's reading of `rest`, refused where it differs from ours or where TLS
    /// would have no host name to check.
    fn config(&self) -> Result<postgres::Config, String> {
        let config = postgres::Config::from_str(&self.rest).map_err(|err| {
            // tokio-postgres's message says only "invalid connection string"; its cause says which part.
            match std::error::Error::source(&err) {
                Some(cause) => format!("{err}: {cause}"),
                None => err.to_string(),
            }
        })?;
        // Every sslmode was taken out of `rest`: one tokio-postgres still reads is one we
        // did not, and ours would silently override it.
        if config.get_ssl_mode() != postgres::config::SslMode::Prefer {
            return Err("the URL holds an sslmode gitauto cannot place (is there a raw `?`, `@` or `&` in the \
                        password? percent-encode it: `?` as %3F, `@` as %40, `&` as %26)"
                .to_owned());
        }
        let tcp = config.get_hosts().iter().any(|host| matches!(host, postgres::config::Host::Tcp(_)));
        if self.mode != SslMode::Disable && !config.get_hostaddrs().is_empty() && !tcp {
            return Err(format!(
                "hostaddr without a host name: sslmode={} connects over TLS, which needs host=NAME (the name in \
                 the server's certificate) next to hostaddr; or set sslmode=disable",
                self.mode.name()
            ));
        }
        Ok(config)
    }

    fn read(url: &str) -> Result<Self, String> {
        let (base, query) = split_query(url);
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (raw_key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // tokio-postgres and libpq decode keys too: `ssl%6Dode` is `sslmode`.
            let key = percent_encoding::percent_decode_str(raw_key)
                .decode_utf8()
                .map_err(|_| format!("the parameter `{raw_key}` is not UTF-8 once percent-decoded"))?;
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("the value of `{key}` is not UTF-8 once percent-decoded"))?;
            match &*key {
                "sslmode" => mode = SslMode::parse(&value)?,
                "sslrootcert" if value == "system" => {
                    return Err("sslrootcert=system (the system's CA store) is not supported; \
                                give the path of a PEM file with the CA that signed the server's certificate"
                        .to_owned());
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(&*value)),
                "sslcert" | "sslkey" | "sslpassword" => {
                    return Err(format!(
                        "`{key}`: client certificates are not supported; \
                         let the server take a password (in the URL or through a `${{VAR}}`) instead"
                    ));
                }
                _ => kept.push(pair),
            }
        }
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(format!(
                "sslmode={} needs sslrootcert=PATH, a PEM file with the CA that signed the server's certificate",
                mode.name()
            ));
        }
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        Ok(Settings { mode, root_cert, rest })
    }

    fn connect(&self) -> anyhow::Result<postgres::Client> {
        let mut config = self.config().map_err(anyhow::Error::msg)?;
        // libpq never asks for TLS on a Unix socket (the server would refuse it), and
        // tokio-postgres cannot even start without a host name to give rustls. With a
        // hostaddr the connection is TCP whatever `host` says, and TLS applies.
        let unix_only = !config.get_hosts().is_empty()
            && config.get_hosts().iter().all(|host| !matches!(host, postgres::config::Host::Tcp(_)))
            && config.get_hostaddrs().is_empty();
        if self.mode == SslMode::Disable || unix_only {
            return Ok(config.ssl_mode(postgres::config::SslMode::Disable).connect(postgres::NoTls)?);
        }
        config.ssl_mode(match self.mode {
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.client_config()?);
        config.connect(tls).map_err(|err| self.explain(err))
    }

    fn client_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = self.verifier(&provider)?;
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    fn verifier(&self, provider: &Arc<CryptoProvider>) -> anyhow::Result<Arc<dyn ServerCertVerifier>> {
        // With a CA file every mode checks the chain, as libpq does once it has loaded one;
        // only verify-full checks the name.
        let chain = match &self.root_cert {
            Some(path) => {
                let roots = roots(path).map_err(anyhow::Error::msg)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .with_context(|| format!("using sslrootcert {}", path.display()))?;
                Some(Chain { webpki, check_name: self.mode == SslMode::VerifyFull })
            }
            None => None,
        };
        Ok(Arc::new(Verifier { chain, algorithms: provider.signature_verification_algorithms }))
    }

    /// Says in a user's words why the TLS part of connecting failed, where it can tell.
    fn explain(&self, err: postgres::Error) -> anyhow::Error {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(now) = cause {
            let rustls = now.downcast_ref::<rustls::Error>().or_else(|| {
                // io::Error::source skips the error it wraps: look inside by hand.
                now.downcast_ref::<std::io::Error>()?.get_ref()?.downcast_ref::<rustls::Error>()
            });
            if let Some(rustls::Error::InvalidCertificate(why)) = rustls {
                return anyhow::Error::msg(self.refused(why));
            }
            if now.source().is_none() && now.to_string() == "server does not support TLS" {
                return anyhow::anyhow!(
                    "the server does not offer TLS, and sslmode={} asks for it (is `ssl = on` in its \
                     postgresql.conf?)",
                    self.mode.name()
                );
            }
            cause = now.source();
        }
        err.into()
    }

    /// Why the server's certificate was refused, in a user's words.
    fn refused(&self, why: &CertificateError) -> String {
        let ca = || self.root_cert.as_deref().map_or_else(String::new, |path| path.display().to_string());
        match why {
            CertificateError::UnknownIssuer => {
                format!("the server's certificate is not signed by the CA in sslrootcert ({})", ca())
            }
            CertificateError::NotValidForName => format!(
                "the server's certificate is not valid for host `{}`; verify-full checks the name, verify-ca does not",
                self.hosts()
            ),
            CertificateError::NotValidForNameContext { expected, presented } => format!(
                "the server's certificate is not valid for host `{}` (it names {}); \
                 verify-full checks the name, verify-ca does not",
                expected.to_str(),
                names(presented)
            ),
            CertificateError::Expired => "the server's certificate has expired".to_owned(),
            CertificateError::ExpiredContext { not_after, .. } => {
                format!("the server's certificate expired at {}", time(*not_after))
            }
            CertificateError::NotValidYet => "the server's certificate is not valid yet".to_owned(),
            CertificateError::NotValidYetContext { not_before, .. } => {
                format!("the server's certificate is not valid before {}", time(*not_before))
            }
            other => format!("the server's certificate was refused: {other}"),
        }
    }

    fn hosts(&self) -> String {
        postgres::Config::from_str(&self.rest)
            .map(|config| {
                let names = config.get_hosts().iter().filter_map(|host| match host {
                    postgres::config::Host::Tcp(name) => Some(name.as_str()),
                    postgres::config::Host::Unix(_) => None,
                });
                names.collect::<Vec<_>>().join(", ")
            })
            .unwrap_or_default()
    }
}

/// `url` as it may be shown: no password, in the user part or in a `password` parameter.
fn shown(url: &str) -> String {
    super::redacted(url)
}

/// The names a certificate presents, from webpki's `DnsName("db.example")` and
/// `IpAddress(192.0.2.1)` to `db.example, 192.0.2.1`.
fn names(presented: &[String]) -> String {
    if presented.is_empty() {
        return "no host name".to_owned();
    }
    let plain = |name: &'_ str| -> String {
        let inner = name.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')'));
        inner.map_or(name, |inner| inner.trim_matches('"')).to_owned()
    };
    presented.iter().map(|name| plain(name)).collect::<Vec<_>>().join(", ")
}

fn time(at: UnixTime) -> String {
    let seconds = i64::try_from(at.as_secs()).unwrap_or(i64::MAX);
    jiff::Timestamp::from_second(seconds).map_or_else(|_| format!("{seconds} s after 1970"), |t| t.to_string())
}

/// The CA certificates in the PEM file at `path`.
#[allow(clippy::disallowed_methods, reason = "connections open on threads of their own; `check` runs at start-up")]
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|err| format!("reading sslrootcert {shown}: {err}"))?;
    let mut roots = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|err| format!("sslrootcert {shown} is not a PEM file: {err}"))?;
        roots
            .add(cert)
            .map_err(|err| format!("sslrootcert {shown}: certificate {} cannot serve as a CA: {err}", n + 1))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    Ok(roots)
}

/// What is checked of the server's certificate: with a CA file its chain (and, for
/// verify-full, its name); without one nothing, as libpq does for prefer and require. The
/// handshake must be signed by the certificate's key either way, so the session is with
/// the holder of the certificate it shows.
#[derive(Debug)]
struct Verifier {
    chain: Option<Chain>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The CA file's check.
#[derive(Debug)]
struct Chain {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // WebPKI checks the name last, after the chain, its dates and its purpose: a
            // name error means everything else held.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !chain.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_libpq_reads_them() {
        // A URL, and what is read from it (mode, CA file, the URL left) or the error's start.
        type Read<'a> = Result<(SslMode, Option<&'a str>, &'a str), &'a str>;
        let cases: &[(&str, Read)] = &[
            ("postgres://u@h/db", Ok((SslMode::Prefer, None, "postgres://u@h/db"))),
            ("postgres://u@h/db?sslmode=disable", Ok((SslMode::Disable, None, "postgres://u@h/db"))),
            (
                "postgres://u@h/db?sslmode=require&application_name=x",
                Ok((SslMode::Require, None, "postgres://u@h/db?application_name=x")),
            ),
            (
                "postgres://u@h/db?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem",
                Ok((SslMode::VerifyFull, Some("/etc/ca x.pem"), "postgres://u@h/db?connect_timeout=5")),
            ),
            (
                "postgres://u@h/db?sslmode=verify-ca&sslrootcert=ca.pem",
                Ok((SslMode::VerifyCa, Some("ca.pem"), "postgres://u@h/db")),
            ),
            ("postgres://u@h/db?sslmode=verify-ca", Err("sslmode=verify-ca needs sslrootcert=PATH")),
            ("postgres://u@h/db?sslmode=verify-full", Err("sslmode=verify-full needs sslrootcert=PATH")),
            (
                "postgres://u@h/db?sslmode=allow",
                Err("sslmode `allow` is not one of disable, prefer, require, verify-ca, verify-full"),
            ),
            (
                "postgres://u@h/db?sslmode=require&sslcert=c.pem",
                Err("`sslcert`: client certificates are not supported"),
            ),
            ("postgres://u@h/db?sslkey=k.pem", Err("`sslkey`: client certificates are not supported")),
            // A raw `?` in the password does not open the query (tokio-postgres's reading).
            (
                "postgres://u:pa?ss@h/db?sslmode=require&sslrootcert=ca.pem",
                Ok((SslMode::Require, Some("ca.pem"), "postgres://u:pa?ss@h/db")),
            ),
            // Keys are percent-decoded, as tokio-postgres and libpq decode them.
            ("postgres://u@h/db?ssl%6Dode=require", Ok((SslMode::Require, None, "postgres://u@h/db"))),
            (
                "postgres://u@h/db?ssl%72ootcert=ca.pem&sslmode=verify-ca",
                Ok((SslMode::VerifyCa, Some("ca.pem"), "postgres://u@h/db")),
            ),
            (
                "postgres://u@h/db?sslrootcert=system",
                Err("sslrootcert=system (the system's CA store) is not supported"),
            ),
        ];
        for (url, expected) in cases {
            let got = Settings::read(url);
            match (expected, got) {
                (Ok((mode, root, rest)), Ok(got)) => {
                    assert_eq!(got.mode, *mode, "{url}");
                    assert_eq!(got.root_cert.as_deref(), root.map(Path::new), "{url}");
                    assert_eq!(got.rest, *rest, "{url}");
                }
                (Err(start), Err(got)) => assert!(got.starts_with(start), "{url}: {got}"),
                (expected, got) => panic!("{url}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn shown_urls_carry_no_password() {
        let cases = [
            ("postgres://u:secret@h/db?sslmode=require", "postgres://u@h/db?sslmode=require"),
            ("postgres://u@h/db?password=secret&sslmode=require", "postgres://u@h/db?sslmode=require"),
            ("postgres://u@h/db?password=secret", "postgres://u@h/db"),
            ("postgres://u@h/db?sslmode=require&pass%77ord=secret", "postgres://u@h/db?sslmode=require"),
            ("postgres://u@h/db?PASSWORD=secret&a=1", "postgres://u@h/db?a=1"),
            ("postgres://u:pa?ss=secret@h/db?password=secret&sslmode=require", "postgres://u@h/db?sslmode=require"),
            ("postgres://u@h/db?password=sec@ret&sslmode=require", "postgres://u@h/db?sslmode=require"),
            ("postgres://u:sec@ret@h/db", "postgres://u@h/db"),
        ];
        for (url, expected) in cases {
            assert_eq!(shown(url), expected, "{url}");
            assert_eq!(super::super::redacted(url), expected, "{url}");
        }
        let settings = Settings::read("postgres://u:secret@h/db?password=secret").unwrap();
        assert!(!format!("{settings:?}").contains("secret"), "{settings:?}");
    }

    /// What tokio-postgres reads must be what gitauto reads: an sslmode left in the URL
    /// it passes on is refused, at `check` as at connect.
    #[test]
    fn an_sslmode_tokio_postgres_reads_and_gitauto_does_not_is_refused() {
        let settings =
            Settings { mode: SslMode::Require, root_cert: None, rest: "postgres://u@h/db?sslmode=disable".to_owned() };
        let refused = settings.config().unwrap_err();
        assert!(refused.starts_with("the URL holds an sslmode gitauto cannot place"), "{refused}");
        assert!(check("postgres://u:pa?ss@h/db?sslmode=require").is_ok());
        let unknown = check("postgres://u@h/db?sslcrl=x.pem").unwrap_err();
        assert!(unknown.contains("sslcrl"), "{unknown}");
        let hostaddr = check("postgres://u@/db?hostaddr=10.0.0.5").unwrap_err();
        assert!(hostaddr.starts_with("hostaddr without a host name: sslmode=prefer"), "{hostaddr}");
        assert!(check("postgres://u@/db?hostaddr=10.0.0.5&sslmode=disable").is_ok());
        assert!(check("postgres://u@/db?host=db.example&hostaddr=10.0.0.5&sslmode=require").is_ok());
    }

    #[test]
    fn an_expired_or_misnamed_certificate_is_refused_by_the_ca_check() {
        let Some(files) = crate::testing::tls_files() else { return };
        let cert = CertificateDer::from_pem_file(&files.cert).unwrap();
        let settings = |mode: &str| {
            Settings::read(&format!("postgres://u@h/db?sslmode={mode}&sslrootcert={}", files.ca.display())).unwrap()
        };
        let verify = |mode: &str, host: &str, now: UnixTime| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let name = ServerName::try_from(host.to_owned()).unwrap();
            let settings = settings(mode);
            let verifier = settings.verifier(&provider).unwrap();
            verifier.verify_server_cert(&cert, &[], &name, &[], now).map_err(|err| match err {
                rustls::Error::InvalidCertificate(why) => settings.refused(&why),
                other => panic!("{other:?}"),
            })
        };
        let today = UnixTime::now();
        // The certificate is valid for ten years from today.
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(today.as_secs() + 20 * 365 * 86_400));
        assert!(verify("verify-full", "localhost", today).is_ok());
        assert!(verify("verify-ca", "127.0.0.1", today).is_ok());
        let expired = verify("verify-ca", "localhost", later).unwrap_err();
        assert!(expired.starts_with("the server's certificate expired at 20"), "{expired}");
        let misnamed = verify("verify-full", "127.0.0.1", today).unwrap_err();
        assert_eq!(
            misnamed,
            "the server's certificate is not valid for host `127.0.0.1` (it names localhost); \
             verify-full checks the name, verify-ca does not"
        );
        let other =
            Settings::read(&format!("postgres://u@h/db?sslmode=verify-ca&sslrootcert={}", files.other_ca.display()))
                .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let refused = other.verifier(&provider).unwrap().verify_server_cert(
            &cert,
            &[],
            &ServerName::try_from("localhost").unwrap(),
            &[],
            today,
        );
        assert!(
            matches!(refused, Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))),
            "{refused:?}"
        );
    }
}
