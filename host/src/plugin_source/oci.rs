//! Pulling a wasm artifact from an OCI registry (the distribution API): the pinned
//! manifest, checked against its digest; its wasm layer (the CNCF layout `wkg oci push`
//! writes: `application/wasm`) and minisign signature layer; each blob checked against
//! its descriptor. Anonymous or credentialed bearer tokens (`WWW-Authenticate: Bearer
//! realm=...`), or basic authentication where the registry asks for it.

use super::download::{Answer, Download, expect_success};
use super::reference::{OciReference, Sha256, may_fetch, parse_digest};
use super::{MAX_COMPONENT, MAX_SIGNATURE, RegistryCredential};
use anyhow::Context;
use base64::Engine as _;
use sha2::Digest as _;

/// The layer media types that hold the component.
pub const WASM_LAYERS: [&str; 2] = ["application/wasm", "application/vnd.wasm.content.layer.v1+wasm"];
/// The layer media type that holds a minisign signature of the component.
pub const SIGNATURE_LAYER: &str = "application/vnd.minisign.signature";
/// Most bytes of a manifest (what the distribution spec asks registries to accept).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Most bytes of a token answer.
const MAX_TOKEN: u64 = 64 << 10;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A blob a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Its SHA-256.
    pub digest: Sha256,
    /// Its size in bytes.
    pub size: u64,
}

/// What a wasm artifact's manifest holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The component.
    pub wasm: Blob,
    /// Its minisign signature, when one was pushed with it.
    pub signature: Option<Blob>,
}

#[derive(serde::Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    manifests: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// Reads a manifest (already checked against its pinned digest): its one wasm layer and
/// its signature layer. `content_type` is what the registry said it is, if it did.
pub fn artifact(manifest: &[u8], content_type: Option<&str>) -> anyhow::Result<Artifact> {
    let parsed: Manifest = serde_json::from_slice(manifest).context("the manifest is not an OCI manifest")?;
    let media_type = parsed.media_type.as_deref().or(content_type).unwrap_or(OCI_MANIFEST);
    if media_type == OCI_INDEX || media_type == DOCKER_LIST || parsed.manifests.is_some() {
        anyhow::bail!(
            "the pinned digest is an image index (a list of manifests), and a wasm plugin is a single manifest: \
             pin the digest of the wasm artifact's own manifest"
        );
    }
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        anyhow::bail!("the manifest's media type is `{media_type}`, not an image manifest ({OCI_MANIFEST})");
    }
    let blob = |descriptor: &Descriptor| -> anyhow::Result<Blob> {
        let digest = parse_digest(&descriptor.digest).map_err(|err| anyhow::anyhow!("a layer's {err}"))?;
        Ok(Blob { digest, size: descriptor.size })
    };
    let pick = |types: &[&str], what: &str| -> anyhow::Result<Option<Blob>> {
        let found: Vec<&Descriptor> =
            parsed.layers.iter().filter(|layer| types.contains(&layer.media_type.as_str())).collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => blob(one).map(Some),
            _ => anyhow::bail!("the manifest has {} {what} layers; a plugin's artifact has one", found.len()),
        }
    };
    let wasm = pick(&WASM_LAYERS, "wasm")?.with_context(|| {
        let types: Vec<&str> = parsed.layers.iter().map(|layer| layer.media_type.as_str()).collect();
        format!(
            "the manifest has no layer of media type {} (its layers: {})",
            WASM_LAYERS.join(" or "),
            if types.is_empty() { "none".to_owned() } else { types.join(", ") }
        )
    })?;
    let signature = pick(&[SIGNATURE_LAYER], "signature")?;
    if wasm.size > MAX_COMPONENT {
        anyhow::bail!(
            "its wasm layer is {} bytes, more than the {} a plugin may be",
            wasm.size,
            crate::config::format_size(MAX_COMPONENT)
        );
    }
    if signature.as_ref().is_some_and(|signature| signature.size > MAX_SIGNATURE) {
        anyhow::bail!("its signature layer is larger than {}", crate::config::format_size(MAX_SIGNATURE));
    }
    Ok(Artifact { wasm, signature })
}

/// One pull from one repository of a registry, keeping the token it was given.
pub struct Pull<'a> {
    download: &'a Download,
    reference: &'a OciReference,
    credential: Option<&'a RegistryCredential>,
    authorization: Option<String>,
}

impl<'a> Pull<'a> {
    /// A pull of `reference`, with the registry's credential if the config has one.
    pub fn new(
        download: &'a Download,
        reference: &'a OciReference,
        credential: Option<&'a RegistryCredential>,
    ) -> Self {
        Self { download, reference, credential, authorization: None }
    }

    /// The pinned manifest, checked against its digest, and the media type the registry gave it.
    pub async fn manifest(&mut self) -> anyhow::Result<(Vec<u8>, Option<String>)> {
        let accept = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST].join(", ");
        let path = format!("manifests/sha256:{}", hex::encode(self.reference.digest));
        let answer = self.get(&path, Some(&accept), MAX_MANIFEST).await?;
        let found: Sha256 = sha2::Sha256::digest(&answer.body).into();
        if found != self.reference.digest {
            anyhow::bail!(
                "the registry served a manifest whose digest is sha256:{}, not the pinned sha256:{}",
                hex::encode(found),
                hex::encode(self.reference.digest)
            );
        }
        let content_type = answer
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or_default().trim().to_owned());
        Ok((answer.body, content_type))
    }

    /// A blob, checked against its descriptor's digest and size.
    pub async fn blob(&mut self, blob: &Blob) -> anyhow::Result<Vec<u8>> {
        let digest = format!("sha256:{}", hex::encode(blob.digest));
        let answer = self.get(&format!("blobs/{digest}"), None, blob.size).await?;
        let found: Sha256 = sha2::Sha256::digest(&answer.body).into();
        if answer.body.len() as u64 != blob.size || found != blob.digest {
            anyhow::bail!(
                "blob {digest}: the registry served {} bytes whose digest is sha256:{} (the manifest says {} bytes)",
                answer.body.len(),
                hex::encode(found),
                blob.size
            );
        }
        Ok(answer.body)
    }

    /// GETs `/v2/NAME/PATH`, answering one authentication challenge.
    async fn get(&mut self, path: &str, accept: Option<&str>, limit: u64) -> anyhow::Result<Answer> {
        let url = format!("{}/v2/{}/{path}", self.reference.api_root(), self.reference.api_name());
        let mut answer = self.download.get(&url, &self.headers(accept), limit).await?;
        if answer.status == reqwest::StatusCode::UNAUTHORIZED && self.authorization.is_none() {
            let challenge = answer
                .headers
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok())
                .with_context(|| format!("GET {url}: 401 without a WWW-Authenticate challenge"))?
                .to_owned();
            self.authorization = Some(self.authorize(&challenge).await.with_context(|| format!("GET {url}"))?);
            answer = self.download.get(&url, &self.headers(accept), limit).await?;
        }
        expect_success(&answer, &format!("GET {url}"))?;
        Ok(answer)
    }

    fn headers(&self, accept: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(accept) = accept {
            headers.push(("accept", accept.to_owned()));
        }
        if let Some(authorization) = &self.authorization {
            headers.push(("authorization", authorization.clone()));
        }
        headers
    }

    /// The `Authorization` value that answers `challenge`.
    async fn authorize(&self, challenge: &str) -> anyhow::Result<String> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            let credential = self.credential.with_context(|| {
                format!(
                    "the registry asks for a user name and password: give them in [registries.\"{}\"]",
                    self.reference.registry
                )
            })?;
            return Ok(basic(credential));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            anyhow::bail!("the registry asks for `{scheme}` authentication, which gitauto does not speak");
        }
        let realm = params.iter().find(|(key, _)| key == "realm").map(|(_, value)| value.as_str());
        let mut realm = url::Url::parse(realm.context("its Bearer challenge has no realm")?)
            .map_err(|err| anyhow::anyhow!("its token realm is not a URL: {err}"))?;
        if !may_fetch(&realm) {
            anyhow::bail!("its token realm {realm} is not https");
        }
        let default_scope = format!("repository:{}:pull", self.reference.api_name());
        {
            let mut query = realm.query_pairs_mut();
            if let Some((_, service)) = params.iter().find(|(key, _)| key == "service") {
                query.append_pair("service", service);
            }
            let scope = params.iter().find(|(key, _)| key == "scope").map_or(default_scope.as_str(), |(_, s)| s);
            query.append_pair("scope", scope);
        }
        let headers: Vec<(&str, String)> =
            self.credential.map(|credential| vec![("authorization", basic(credential))]).unwrap_or_default();
        let answer = self.download.get(realm.as_str(), &headers, MAX_TOKEN).await?;
        expect_success(&answer, &format!("asking {} for a token", realm.origin().ascii_serialization()))?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&answer.body).context("the token answer is not JSON")?;
        let token = token.token.or(token.access_token).context("the token answer holds no token")?;
        Ok(format!("Bearer {token}"))
    }
}

fn basic(credential: &RegistryCredential) -> String {
    let pair = format!("{}:{}", credential.username, credential.password.expose());
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// `Bearer realm="...",service="...",scope="a:b:pull,push"` as its scheme and parameters.
fn parse_challenge(challenge: &str) -> (String, Vec<(String, String)>) {
    let challenge = challenge.trim();
    let (scheme, mut rest) = challenge.split_once(' ').unwrap_or((challenge, ""));
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else { break };
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (&quoted[..end], quoted.get(end + 1..).unwrap_or_default())
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.push((key.trim().to_ascii_lowercase(), value.to_owned()));
        rest = after;
    }
    (scheme.to_owned(), params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn manifest(layers: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": A, "size": 2},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn the_wasm_layer_and_the_signature_layer_are_found() {
        let wasm = Blob { digest: [0xaa; 32], size: 10 };
        let layers = json!([{"mediaType": "application/wasm", "digest": A, "size": 10}]);
        assert_eq!(artifact(&manifest(layers), None).unwrap(), Artifact { wasm: wasm.clone(), signature: None });
        let layers = json!([
            {"mediaType": "application/vnd.wasm.content.layer.v1+wasm", "digest": A, "size": 10},
            {"mediaType": SIGNATURE_LAYER, "digest": B, "size": 300},
        ]);
        let signature = Some(Blob { digest: [0xbb; 32], size: 300 });
        assert_eq!(artifact(&manifest(layers), None).unwrap(), Artifact { wasm, signature });
    }

    #[test]
    fn indexes_and_manifests_without_one_wasm_layer_are_refused() {
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})).unwrap();
        let no_type_index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": []})).unwrap();
        let untyped = serde_json::to_vec(&json!({"schemaVersion": 2, "layers": []})).unwrap();
        for (bytes, content_type, why) in [
            (index, None, "image index"),
            (no_type_index, None, "image index"),
            (untyped, Some(DOCKER_LIST), "image index"),
            (
                manifest(json!([{"mediaType": "application/tar", "digest": A, "size": 1}])),
                None,
                "its layers: application/tar",
            ),
            (
                manifest(json!([
                    {"mediaType": "application/wasm", "digest": A, "size": 1},
                    {"mediaType": "application/wasm", "digest": B, "size": 1},
                ])),
                None,
                "2 wasm layers",
            ),
            (
                manifest(json!([{"mediaType": "application/wasm", "digest": "sha512:ab", "size": 1}])),
                None,
                "only sha256",
            ),
            (
                manifest(json!([{"mediaType": "application/wasm", "digest": A, "size": MAX_COMPONENT + 1}])),
                None,
                "more than",
            ),
            (b"<html>".to_vec(), None, "not an OCI manifest"),
        ] {
            let err = format!("{:#}", artifact(&bytes, content_type).unwrap_err());
            assert!(err.contains(why), "{err}");
        }
        let odd = serde_json::to_vec(&json!({"mediaType": "application/json", "layers": []})).unwrap();
        assert!(artifact(&odd, None).unwrap_err().to_string().contains("not an image manifest"));
    }

    #[test]
    fn challenges_are_read_with_quoted_commas() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            params,
            [
                ("realm", "https://auth.example/token"),
                ("service", "registry.example"),
                ("scope", "repository:a/b:pull,push")
            ]
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            ("Basic".to_owned(), vec![("realm".to_owned(), "x".to_owned())])
        );
    }
}
