//! Compiled plugins, cached under the data dir: compiling a component takes from tens of
//! milliseconds (Rust) to seconds (Python, JavaScript); loading a cached artifact takes
//! well under one. Entries are keyed by the component's content hash and by the engine's
//! compatibility hash, so a new wasmtime or different engine settings never load a
//! stale artifact.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component's artifact is (or would be) cached.
pub fn artifact_path(cache_dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let content = hex::encode(Sha256::digest(wasm));
    cache_dir.join(format!("{content}-{:016x}.cwasm", engine_hash.finish()))
}

/// Loads the component from the cache, or compiles and caches it. Returns the component
/// and whether it came from the cache.
pub fn load(cache_dir: &Path, engine: &Engine, wasm: &[u8]) -> anyhow::Result<(Component, bool)> {
    let path = artifact_path(cache_dir, engine, wasm);
    if path.is_file() {
        match deserialize(engine, &path) {
            Ok(component) => return Ok((component, true)),
            Err(err) => tracing::warn!(artifact = %path.display(), "recompiling: cached artifact unusable: {err:#}"),
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Err(err) = store(&path, &component) {
        tracing::warn!(artifact = %path.display(), "could not cache the compiled plugin: {err:#}");
    }
    Ok((component, false))
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: wasmtime requires that the file was produced by `serialize` of a compatible
    // engine and is not modified while mapped. Only this process writes the cache
    // directory (created 0700 under the data dir), artifacts are written to a temporary
    // name and renamed into place, never rewritten, and the file name carries the
    // engine's compatibility hash.
    Ok(unsafe { Component::deserialize_file(engine, path) }?)
}

#[allow(clippy::disallowed_methods, reason = "plugins load at start-up and on reload inside spawn_blocking")]
fn store(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().context("artifact path has a parent")?;
    create_private_dir(dir)?;
    let bytes = component.serialize()?;
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, bytes).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Creates `dir` and its parents, readable by this user only.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}
