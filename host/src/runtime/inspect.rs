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
    /// The imported interfaces by package and version, e.g. (`gitauto:plugin`, `0.2.0`,
    /// [`git`, `kv`, `log`]) and (`wasi:http`, `0.2.6`, [`outgoing-handler`, `types`]):
    /// what the component may call, and which version of each package it was built for.
    pub packages: Vec<Package>,
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
    let packages = packages(&imports);
    let linker = linker(&engine)?;
    let runnable = linker
        .instantiate_pre(&component)
        .and_then(bindings::PluginPre::new)
        .map(|_| ())
        .map_err(|err| explain_incompatible(&err));
    Ok(Inspection { size: wasm.len(), targets, imports, exports, packages, runnable })
}

/// One package a component imports from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `namespace:name`, e.g. `wasi:http`.
    pub name: String,
    /// The version the component was built for (empty when unversioned).
    pub version: String,
    /// Its interfaces the component imports, sorted.
    pub interfaces: Vec<String>,
}

/// `wasi:http/types@0.2.6` and `wasi:http/outgoing-handler@0.2.6` as one package.
fn packages(imports: &[String]) -> Vec<Package> {
    let mut grouped: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for import in imports {
        let (path, version) = import.split_once('@').unwrap_or((import, ""));
        let Some((package, interface)) = path.split_once('/') else { continue };
        grouped.entry((package.to_owned(), version.to_owned())).or_default().push(interface.to_owned());
    }
    grouped
        .into_iter()
        .map(|((name, version), mut interfaces)| {
            interfaces.sort();
            Package { name, version, interfaces }
        })
        .collect()
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
             (it runs plugins built for 0.1.0 to {OLDEST_KEPT} and for 0.2.M when M <= its own; \
             rebuild the plugin against this host's WIT, or run a newer gitauto): {detail}"
        ),
        Some(_) | None if detail.contains("gitauto:plugin") => {
            format!("{detail} (this host implements {WIT_PACKAGE}; rebuild the plugin against that WIT)")
        }
        _ => detail,
    }
}

/// The last 0.1 release, whose interfaces this host still serves (`host/wit-0.1`).
const OLDEST_KEPT: &str = "0.1.2";

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
            "component imports instance `gitauto:plugin/git@0.3.0`, but a matching implementation was not found in the linker",
        );
        let text = explain_incompatible(&err);
        assert!(text.starts_with("it targets gitauto:plugin@0.3.0, and this host runs gitauto:plugin@0.2.0"), "{text}");
    }

    #[test]
    fn built_in_plugins_are_runnable_and_target_this_host() {
        let inspection = inspect(crate::builtin::get("fetch-update").unwrap()).unwrap();
        assert_eq!(inspection.runnable, Ok(()));
        assert_eq!(inspection.targets.as_deref(), Some("0.2.0"));
        assert!(inspection.imports.iter().any(|i| i == "gitauto:plugin/git@0.2.0"), "{:?}", inspection.imports);
        assert!(inspection.exports.iter().any(|e| e == "handle"), "{:?}", inspection.exports);
        let ours = inspection.packages.iter().find(|p| p.name == "gitauto:plugin").unwrap();
        assert_eq!(ours.version, "0.2.0");
        assert!(ours.interfaces.contains(&"git".to_owned()), "{ours:?}");
        assert!(inspect(b"\0asm not really").is_err());
    }

    #[test]
    fn imports_are_grouped_by_package_and_version() {
        let imports =
            ["wasi:http/types@0.2.6", "gitauto:plugin/kv@0.2.0", "wasi:http/outgoing-handler@0.2.6", "handle"]
                .map(str::to_owned);
        let packages = packages(&imports);
        assert_eq!(
            packages,
            [
                Package { name: "gitauto:plugin".into(), version: "0.2.0".into(), interfaces: vec!["kv".into()] },
                Package {
                    name: "wasi:http".into(),
                    version: "0.2.6".into(),
                    interfaces: vec!["outgoing-handler".into(), "types".into()]
                },
            ]
        );
    }
}
