//! `gitauto plugin inspect`: what a component is (the gitauto WIT version it targets, its
//! imports and exports, its size) and whether this host can run it, saying why not.

use super::{WIT_PACKAGE, bindings, engine, linker};
use anyhow::Context;
use wasmtime::component::Component;

/// What a component file holds.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Bytes.
    pub size: usize,
    /// The `gitauto:plugin` version it targets (`0.1.0`), when it names one.
    pub targets: Option<String>,
    /// Imported interfaces and functions, by name.
    pub imports: Vec<String>,
    /// Exported interfaces and functions, by name.
    pub exports: Vec<String>,
    /// `Ok` when this host can run it; otherwise why not.
    pub runnable: Result<(), String>,
}

/// Compiles `wasm` (as loading a plugin would) and inspects it.
pub fn inspect(wasm: &[u8]) -> anyhow::Result<Inspection> {
    let engine = engine()?;
    let component =
        Component::new(&engine, wasm).map_err(anyhow::Error::from).context("not a valid WebAssembly component")?;
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&engine).map(|(name, _)| name.to_owned()).collect();
    let exports: Vec<String> = ty.exports(&engine).map(|(name, _)| name.to_owned()).collect();
    let targets = imports.iter().chain(&exports).find_map(|name| version_of(name));
    let linker = linker(&engine)?;
    let runnable = linker
        .instantiate_pre(&component)
        .and_then(bindings::PluginPre::new)
        .map(|_| ())
        .map_err(|err| explain_incompatible(&err));
    Ok(Inspection { size: wasm.len(), targets, imports, exports, runnable })
}

/// The version in `gitauto:plugin/git@0.1.0`.
fn version_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix("gitauto:plugin")?;
    rest.split_once('@').map(|(_, version)| version.to_owned())
}

/// Why a component cannot be instantiated, with the version mismatch spelt out when
/// that is the cause.
pub fn explain_incompatible(err: &wasmtime::Error) -> String {
    let detail = format!("{err:#}");
    let ours = WIT_PACKAGE.rsplit('@').next().unwrap_or_default();
    let theirs = detail.split("gitauto:plugin").nth(1).and_then(|rest| {
        let version = rest.split_once('@')?.1;
        Some(version.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')).next()?.to_owned())
    });
    match theirs {
        Some(theirs) if theirs != ours => format!(
            "it targets gitauto:plugin@{theirs}, and this host runs {WIT_PACKAGE} \
             (a plugin built for 0.1.M runs on a 0.1.N host when M <= N; rebuild it against this host's WIT): {detail}"
        ),
        Some(_) | None if detail.contains("gitauto:plugin") => {
            format!("{detail} (this host implements {WIT_PACKAGE}; rebuild the plugin against that WIT)")
        }
        _ => detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_interface_names() {
        assert_eq!(version_of("gitauto:plugin/git@0.1.0").as_deref(), Some("0.1.0"));
        assert_eq!(version_of("wasi:cli/stdin@0.2.6"), None);
    }

    #[test]
    fn a_version_mismatch_is_spelt_out() {
        let err = wasmtime::Error::msg(
            "component imports instance `gitauto:plugin/git@0.2.0`, but a matching implementation was not found in the linker",
        );
        let text = explain_incompatible(&err);
        assert!(text.starts_with("it targets gitauto:plugin@0.2.0, and this host runs gitauto:plugin@0.1.2"), "{text}");
    }

    #[test]
    fn built_in_plugins_are_runnable_and_target_this_host() {
        let inspection = inspect(crate::builtin::get("fetch-update").unwrap()).unwrap();
        assert_eq!(inspection.runnable, Ok(()));
        assert_eq!(inspection.targets.as_deref(), Some("0.1.2"));
        assert!(inspection.imports.iter().any(|i| i == "gitauto:plugin/git@0.1.2"), "{:?}", inspection.imports);
        assert!(inspection.exports.iter().any(|e| e == "handle"), "{:?}", inspection.exports);
        assert!(inspect(b"\0asm not really").is_err());
    }
}
