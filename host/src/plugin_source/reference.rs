//! How the config names remote content: `oci://REGISTRY/NAME[:TAG]@sha256:HEX` and
//! `https://` URLs, and which of them may be reached over plain http (a loopback
//! address only, as Docker treats `localhost`). Pure parsing; fetching is elsewhere.

use std::net::IpAddr;

/// A SHA-256 digest, as content is pinned by.
pub type Sha256 = [u8; 32];

/// A pinned OCI artifact: `oci://REGISTRY/NAME[:TAG]@sha256:HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    /// `host` or `host:port`, as written.
    pub registry: String,
    /// The repository: `org/plugin`.
    pub name: String,
    /// The tag, for people: the digest alone decides what is fetched.
    pub tag: Option<String>,
    /// The SHA-256 of the manifest.
    pub digest: Sha256,
}

impl std::fmt::Display for OciReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        write!(f, "@sha256:{}", hex::encode(self.digest))
    }
}

impl OciReference {
    /// Reads `oci://...`; the manifest's digest is required.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix("oci://").ok_or("an OCI reference starts `oci://`")?;
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .filter(|(registry, path)| !registry.is_empty() && !path.is_empty())
            .ok_or_else(|| format!("`{text}` names no repository: write `oci://REGISTRY/NAME:TAG@sha256:DIGEST`"))?;
        if host_of(registry).is_none() {
            return Err(format!("`{registry}` is not a registry's host or host:port"));
        }
        // A tag follows the last `:` of the last path component (a port's `:` is before the `/`).
        let (name, tag) = match path.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (path, None),
        };
        if let Some(bad) = name.split('/').find(|component| !valid_component(component)) {
            return Err(format!(
                "repository name `{name}`: component `{bad}` must be lower-case letters and digits, separated by `.`, `_`, `__` or `-`"
            ));
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(format!(
                "tag `{tag}` must be 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
            ));
        }
        let Some(digest) = digest else {
            return Err(format!(
                "`{text}` is not pinned: a tag can be moved to other content, so add the manifest's digest, \
                 `{text}@sha256:...` (`oras resolve` or `crane digest` prints it)"
            ));
        };
        let digest = parse_digest(digest)?;
        Ok(Self { registry: registry.to_owned(), name: name.to_owned(), tag: tag.map(str::to_owned), digest })
    }

    /// The registry's API root: `https://HOST`, or `http://` for a loopback address.
    /// Docker Hub's name `docker.io` is served by `registry-1.docker.io`.
    pub fn api_root(&self) -> String {
        let registry = if self.registry == "docker.io" { "registry-1.docker.io" } else { &self.registry };
        let scheme = if host_of(registry).is_some_and(is_loopback) { "http" } else { "https" };
        format!("{scheme}://{registry}")
    }

    /// The repository as the registry's API names it (Docker Hub's official images live
    /// under `library/`).
    pub fn api_name(&self) -> String {
        if self.registry == "docker.io" && !self.name.contains('/') {
            format!("library/{}", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// `sha256:HEX` (64 lower-case hex digits).
pub fn parse_digest(text: &str) -> Result<Sha256, String> {
    match text.split_once(':') {
        Some(("sha256", hex)) => parse_sha256(hex),
        Some((algorithm, _)) => Err(format!("digest `{text}`: only sha256 digests are supported, not {algorithm}")),
        None => Err(format!("digest `{text}` should be `sha256:` and 64 hex digits")),
    }
}

/// 64 hex digits, as `sha256sum` prints them.
pub fn parse_sha256(hex_text: &str) -> Result<Sha256, String> {
    if hex_text.len() != 64 || !hex_text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("`{hex_text}` is not a SHA-256: 64 lower-case hex digits expected"));
    }
    let mut digest = [0; 32];
    hex::decode_to_slice(hex_text, &mut digest).expect("64 hex digits");
    Ok(digest)
}

/// An `https://` URL, or an `http://` one to a loopback address; anything else is refused.
pub fn parse_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|err| format!("`{text}` is not a URL: {err}"))?;
    if may_fetch(&url) {
        Ok(url)
    } else {
        Err(format!(
            "`{text}`: plugins and signatures are fetched over https (plain http only from a loopback address)"
        ))
    }
}

/// Whether content may be fetched from `url`: https, or http to a loopback address.
pub fn may_fetch(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => url.host_str().is_some_and(|host| is_loopback(host.trim_start_matches('[').trim_end_matches(']'))),
        _ => false,
    }
}

/// The host of `host[:port]` (an IPv6 address in brackets), if that is what it is.
fn host_of(registry: &str) -> Option<&str> {
    let (host, port) = match registry.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            host.parse::<std::net::Ipv6Addr>().ok()?;
            (host, after.strip_prefix(':'))
        }
        None => match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        },
    };
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return None;
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':';
    (!host.is_empty() && host.bytes().all(valid)).then_some(host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        && !component.contains("..")
        && !component.contains("___")
}

fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pinned_references_parse() {
        let digest = parse_sha256(HEX).unwrap();
        for (text, registry, name, tag, root) in [
            (
                "oci://registry.example.com/org/plugin:1.2.0",
                "registry.example.com",
                "org/plugin",
                Some("1.2.0"),
                "https://registry.example.com",
            ),
            ("oci://127.0.0.1:5000/a/b/c:tag", "127.0.0.1:5000", "a/b/c", Some("tag"), "http://127.0.0.1:5000"),
            ("oci://localhost:5000/plugin", "localhost:5000", "plugin", None, "http://localhost:5000"),
            ("oci://[::1]:5000/a/b", "[::1]:5000", "a/b", None, "http://[::1]:5000"),
            ("oci://ghcr.io/acme/md-lint:v2", "ghcr.io", "acme/md-lint", Some("v2"), "https://ghcr.io"),
            ("oci://10.0.0.1:5000/x", "10.0.0.1:5000", "x", None, "https://10.0.0.1:5000"),
        ] {
            let parsed =
                OciReference::parse(&format!("{text}@sha256:{HEX}")).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(
                parsed,
                OciReference { registry: registry.into(), name: name.into(), tag: tag.map(Into::into), digest },
                "{text}"
            );
            assert_eq!(parsed.api_root(), root, "{text}");
            assert_eq!(parsed.to_string(), format!("{text}@sha256:{HEX}"), "{text}");
        }
        let hub = OciReference::parse(&format!("oci://docker.io/hello@sha256:{HEX}")).unwrap();
        assert_eq!(
            (hub.api_root().as_str(), hub.api_name().as_str()),
            ("https://registry-1.docker.io", "library/hello")
        );
    }

    #[test]
    fn unpinned_or_malformed_references_are_refused_saying_why() {
        for (text, why) in [
            ("oci://registry.example.com/org/plugin:1.2.0".to_owned(), "is not pinned"),
            ("oci://registry.example.com/org/plugin".to_owned(), "is not pinned"),
            (format!("oci://r.example/p@sha512:{HEX}"), "only sha256 digests"),
            ("oci://r.example/p@sha256:0123".to_owned(), "64 lower-case hex digits"),
            (format!("oci://r.example/p@sha256:{}", HEX.to_uppercase()), "64 lower-case hex digits"),
            (format!("oci://r.example/p@{HEX}"), "should be `sha256:`"),
            (format!("oci://r.example@sha256:{HEX}"), "names no repository"),
            (format!("oci://r.example/@sha256:{HEX}"), "names no repository"),
            (format!("oci://r.example/Org/p@sha256:{HEX}"), "component `Org`"),
            (format!("oci://r.example/a//b@sha256:{HEX}"), "component ``"),
            (format!("oci://r.example/p:-x@sha256:{HEX}"), "tag `-x`"),
            (format!("oci://r.example:http/p@sha256:{HEX}"), "not a registry's host"),
            (format!("https://r.example/p@sha256:{HEX}"), "starts `oci://`"),
        ] {
            let err = OciReference::parse(&text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn plain_http_is_for_loopback_addresses_only() {
        for (url, allowed) in [
            ("https://example.com/p.wasm", true),
            ("http://127.0.0.1:8000/p.wasm", true),
            ("http://localhost/p.wasm", true),
            ("http://[::1]:80/p.wasm", true),
            ("http://example.com/p.wasm", false),
            ("http://10.0.0.1/p.wasm", false),
            ("ftp://example.com/p.wasm", false),
            ("file:///etc/passwd", false),
        ] {
            assert_eq!(parse_url(url).is_ok(), allowed, "{url}");
        }
    }
}
