//! Where a plugin's component comes from and who signed it: built in, a local file, or
//! remote (an OCI registry, an https URL), pinned by digest and fetched once into the
//! store under the data directory (`store.rs`). [`fetch`] is the network half, run before
//! any plugin is compiled (start-up, reload, `gitauto plugin pull`); [`read`] the offline
//! half the runtime calls: the bytes, checked against their pins and their minisign
//! signature. Compiling is the runtime's.

mod download;
pub mod minisign;
mod oci;
pub mod reference;
mod store;

use crate::config::{PluginSpec, WasmSource};
use crate::secret::Secret;
use anyhow::Context;
pub use reference::{OciReference, Sha256};
use sha2::Digest as _;
use std::borrow::Cow;
use std::path::PathBuf;
pub use store::{Store, Tampered};

/// Most bytes of a component fetched from a registry or URL.
pub const MAX_COMPONENT: u64 = 128 << 20;
/// Most bytes of a signature file.
pub const MAX_SIGNATURE: u64 = 64 << 10;
/// The store's directory under `data_dir`.
pub const STORE_DIR: &str = "plugins";

/// A component fetched from elsewhere, and where it is kept once fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Where it is fetched from.
    pub location: Location,
    /// The store it is kept in (`DATA_DIR/plugins`).
    pub store: Store,
}

/// A remote component's address and pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An OCI artifact, pinned by its manifest's digest.
    Oci {
        /// `oci://...@sha256:...`.
        reference: OciReference,
        /// The registry's credential from `[registries."HOST"]`, if any.
        credential: Option<RegistryCredential>,
    },
    /// A URL, pinned by the component's SHA-256.
    Url {
        /// `https://...` (or http to a loopback address).
        url: url::Url,
        /// `sha256 = "..."`.
        sha256: Sha256,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Oci { reference, .. } => write!(f, "{reference}"),
            Location::Url { url, .. } => write!(f, "{url}"),
        }
    }
}

/// `[registries."HOST"]`: how to log in to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: Secret,
}

/// `verify = { ... }`: the key a plugin must be signed with, and where its signature is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    /// The trusted minisign key.
    pub key: minisign::PublicKey,
    /// Where the key came from, as the config says it (`file:keys/minisign.pub`, or
    /// `inline`): recorded with each step it signed.
    pub key_source: String,
    /// `signature = ...`; none: next to the component (see [`default_signature`]).
    pub signature: Option<SignatureSource>,
}

/// Where a signature is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureSource {
    /// A local `.minisig` file.
    File(PathBuf),
    /// A URL, fetched with the component and kept in the store.
    Url(url::Url),
}

/// Who signed a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The minisign key id, as minisign prints it (upper-case hex).
    pub key_id: String,
    /// Where the key came from (see [`Verify::key_source`]).
    pub key_source: String,
    /// The signature's trusted comment.
    pub trusted_comment: String,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "minisign {} ({})", self.key_id, self.key_source)
    }
}

/// A component's bytes, checked against its pins and signature.
#[derive(Debug)]
pub struct Component {
    /// The bytes to compile.
    pub bytes: Cow<'static, [u8]>,
    /// Their SHA-256.
    pub digest: Sha256,
    /// Who signed them, when the config asks for a signature.
    pub signer: Option<Signer>,
}

/// Something the store does not hold yet.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} is not in the plugin store ({path}) yet: run `gitauto plugin pull`, or start the daemon, which fetches it"
)]
pub struct NotFetched {
    /// What is missing.
    pub what: String,
    /// Where it would be.
    pub path: PathBuf,
}

/// Where a plugin's signature is when `verify` does not say: for a file, `PATH.minisig`;
/// for a URL, `URL.minisig`; for an OCI artifact, its layer of type
/// `application/vnd.minisign.signature` (`None` here).
pub fn default_signature(source: &WasmSource) -> Option<SignatureSource> {
    match source {
        WasmSource::File(path) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".minisig");
            Some(SignatureSource::File(name.into()))
        }
        WasmSource::Remote(remote) => match &remote.location {
            Location::Url { url, .. } => url::Url::parse(&format!("{url}.minisig")).ok().map(SignatureSource::Url),
            Location::Oci { .. } => None,
        },
        WasmSource::Builtin(_) => None,
    }
}

/// Fetches what `plugins` need from the network and is not in the store yet: remote
/// components and their signatures. Content already stored is not fetched again.
pub async fn fetch(plugins: &[PluginSpec]) -> anyhow::Result<()> {
    let mut download = None;
    for spec in plugins {
        let WasmSource::Remote(remote) = &spec.wasm else { continue };
        let download = match &download {
            Some(download) => download,
            None => download.insert(download::Download::new()?),
        };
        fetch_one(download, spec, remote)
            .await
            .with_context(|| format!("plugin `{}`: fetching {}", spec.name, remote.location))?;
    }
    Ok(())
}

async fn fetch_one(download: &download::Download, spec: &PluginSpec, remote: &Remote) -> anyhow::Result<()> {
    let store = &remote.store;
    match &remote.location {
        Location::Oci { reference, credential } => {
            let mut pull = oci::Pull::new(download, reference, credential.as_ref());
            let manifest = match stored(store, reference.digest).await? {
                Some(manifest) => manifest,
                None => {
                    let (manifest, content_type) = pull.manifest().await?;
                    // Refused before anything is stored: an index, no wasm layer.
                    oci::artifact(&manifest, content_type.as_deref())?;
                    put(store, manifest.clone()).await?;
                    manifest
                }
            };
            let artifact = oci::artifact(&manifest, None)?;
            for blob in std::iter::once(&artifact.wasm).chain(&artifact.signature) {
                if stored(store, blob.digest).await?.is_none() {
                    put(store, pull.blob(blob).await?).await?;
                }
            }
        }
        Location::Url { url, sha256 } => {
            if stored(store, *sha256).await?.is_none() {
                let answer = download.get(url.as_str(), &[], MAX_COMPONENT).await?;
                download::expect_success(&answer, &format!("GET {url}"))?;
                let found: Sha256 = sha2::Sha256::digest(&answer.body).into();
                if found != *sha256 {
                    anyhow::bail!(
                        "its SHA-256 is {}, not the pinned {} (`sha256`)",
                        hex::encode(found),
                        hex::encode(sha256)
                    );
                }
                put(store, answer.body).await?;
            }
        }
    }
    let signature =
        spec.verify.as_ref().and_then(|verify| verify.signature.clone().or_else(|| default_signature(&spec.wasm)));
    if let Some(SignatureSource::Url(url)) = signature {
        let verify = spec.verify.as_ref().expect("a signature is looked for only with `verify`");
        fetch_signature(download, store, &url, verify, spec).await?;
    }
    Ok(())
}

/// Fetches the signature at `url` unless the stored one verifies the component: a key
/// rotated in the config then finds the signature its publisher made with the new key.
async fn fetch_signature(
    download: &download::Download,
    store: &Store,
    url: &url::Url,
    verify: &Verify,
    spec: &PluginSpec,
) -> anyhow::Result<()> {
    let check = {
        let spec = spec.clone();
        move || read(&spec).map(drop)
    };
    if store.signature(url.as_str()).ok().flatten().is_some() && blocking(check.clone()).await.is_ok() {
        return Ok(());
    }
    let answer = download.get(url.as_str(), &[], MAX_SIGNATURE).await?;
    download::expect_success(&answer, &format!("GET {url} (the signature)"))?;
    let text = String::from_utf8_lossy(&answer.body);
    let signature = minisign::Signature::parse(&text).with_context(|| format!("signature {url}"))?;
    let component = blocking({
        let spec = spec.clone();
        move || read_component(&spec)
    })
    .await?;
    signature
        .verify(&verify.key, &component.bytes)
        .with_context(|| format!("signature {url}, checked with key {} ({})", verify.key.id(), verify.key_source))?;
    let (store, url, body) = (store.clone(), url.to_string(), answer.body);
    blocking(move || store.put_signature(&url, &body)).await
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.context("a blocking task of the plugin fetch failed")?
}

/// The stored blob, or none when it is missing or was changed (it is fetched again).
async fn stored(store: &Store, digest: Sha256) -> anyhow::Result<Option<Vec<u8>>> {
    let store = store.clone();
    match blocking(move || store.blob(&digest)).await {
        Err(err) if err.downcast_ref::<Tampered>().is_some() => {
            tracing::warn!("fetching again: {err:#}");
            Ok(None)
        }
        other => other,
    }
}

async fn put(store: &Store, bytes: Vec<u8>) -> anyhow::Result<()> {
    let store = store.clone();
    blocking(move || store.put_blob(&bytes).map(drop)).await
}

/// A plugin's component, from the binary, its file or the store, checked against its
/// pin and, when the config asks, its signature. Never touches the network: a remote
/// component not fetched yet is a [`NotFetched`] error. Blocking.
pub fn read(spec: &PluginSpec) -> anyhow::Result<Component> {
    let mut component = read_component(spec)?;
    if let Some(verify) = &spec.verify {
        component.signer = Some(check_signature(spec, verify, &component.bytes)?);
    }
    Ok(component)
}

/// The component's bytes, checked against the pin but not the signature.
#[allow(clippy::disallowed_methods, reason = "plugins load at start-up and on reload inside spawn_blocking")]
fn read_component(spec: &PluginSpec) -> anyhow::Result<Component> {
    let bytes: Cow<'static, [u8]> = match &spec.wasm {
        WasmSource::Builtin(name) => {
            Cow::Borrowed(crate::builtin::get(name).with_context(|| format!("no built-in plugin `{name}`"))?)
        }
        WasmSource::File(path) => {
            Cow::Owned(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        WasmSource::Remote(remote) => Cow::Owned(read_remote(remote)?),
    };
    let digest = sha2::Sha256::digest(&bytes).into();
    Ok(Component { bytes, digest, signer: None })
}

fn read_remote(remote: &Remote) -> anyhow::Result<Vec<u8>> {
    let store = &remote.store;
    let need = |digest: &Sha256, what: String| -> anyhow::Result<Vec<u8>> {
        store.blob(digest)?.ok_or_else(|| NotFetched { what, path: store.blob_path(digest) }.into())
    };
    match &remote.location {
        Location::Url { url, sha256 } => need(sha256, format!("{url}")),
        Location::Oci { reference, .. } => {
            let manifest = need(&reference.digest, format!("the manifest of {reference}"))?;
            let artifact = oci::artifact(&manifest, None).with_context(|| format!("{reference}"))?;
            let wasm = need(&artifact.wasm.digest, format!("the wasm layer of {reference}"))?;
            if wasm.len() as u64 != artifact.wasm.size {
                anyhow::bail!(
                    "{reference}: its wasm layer is {} bytes, not the {} its manifest says",
                    wasm.len(),
                    artifact.wasm.size
                );
            }
            Ok(wasm)
        }
    }
}

/// Checks the component's signature; says who signed it.
#[allow(clippy::disallowed_methods, reason = "plugins load at start-up and on reload inside spawn_blocking")]
fn check_signature(spec: &PluginSpec, verify: &Verify, bytes: &[u8]) -> anyhow::Result<Signer> {
    let source = verify.signature.clone().or_else(|| default_signature(&spec.wasm));
    let (text, place) = match (&source, &spec.wasm) {
        (Some(SignatureSource::File(path)), _) => {
            let text = std::fs::read(path).with_context(|| {
                format!(
                    "the plugin must be signed by key {}, and its signature {} cannot be read",
                    verify.key.id(),
                    path.display()
                )
            })?;
            (text, path.display().to_string())
        }
        (Some(SignatureSource::Url(url)), WasmSource::Remote(remote)) => {
            let path = remote.store.signature_path(url.as_str());
            let text = remote
                .store
                .signature(url.as_str())?
                .ok_or_else(|| NotFetched { what: format!("the signature {url}"), path })?;
            (text, url.to_string())
        }
        (None, WasmSource::Remote(remote)) if matches!(remote.location, Location::Oci { .. }) => {
            oci_signature(remote, verify)?
        }
        _ => anyhow::bail!("no signature to check: give `verify.signature`"),
    };
    let signature =
        minisign::Signature::parse(&String::from_utf8_lossy(&text)).with_context(|| format!("signature {place}"))?;
    let trusted_comment = signature
        .verify(&verify.key, bytes)
        .with_context(|| format!("signature {place}, checked with key {} ({})", verify.key.id(), verify.key_source))?
        .to_owned();
    Ok(Signer { key_id: verify.key.id(), key_source: verify.key_source.clone(), trusted_comment })
}

/// The signature layer of a stored OCI artifact, and how to name it.
fn oci_signature(remote: &Remote, verify: &Verify) -> anyhow::Result<(Vec<u8>, String)> {
    let Location::Oci { reference, .. } = &remote.location else { unreachable!("checked by the caller") };
    let store = &remote.store;
    let manifest = store.blob(&reference.digest)?.ok_or_else(|| NotFetched {
        what: format!("the manifest of {reference}"),
        path: store.blob_path(&reference.digest),
    })?;
    let artifact = oci::artifact(&manifest, None)?;
    let blob = artifact.signature.with_context(|| {
        format!(
            "the plugin must be signed by key {} ({}), and {reference} has no layer of type {}: push the \
             `.minisig` with it, or give `verify.signature`",
            verify.key.id(),
            verify.key_source,
            oci::SIGNATURE_LAYER
        )
    })?;
    let text = store.blob(&blob.digest)?.ok_or_else(|| NotFetched {
        what: format!("the signature layer of {reference}"),
        path: store.blob_path(&blob.digest),
    })?;
    Ok((text, format!("layer sha256:{} of {reference}", hex::encode(blob.digest))))
}

/// A signature's layer media type, for publishing (docs and tests).
pub const SIGNATURE_LAYER: &str = oci::SIGNATURE_LAYER;
/// The component layer's media type, for publishing.
pub const WASM_LAYER: &str = oci::WASM_LAYERS[0];
