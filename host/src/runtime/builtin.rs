//! The built-in plugins, compiled by the build script and embedded in the binary, so
//! `wasm = "builtin:NAME"` works from a plain `cargo run`.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The component of the built-in plugin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTIN_PLUGINS.iter().find(|(n, _)| *n == name).map(|(_, wasm)| *wasm)
}

/// The names of all built-in plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN_PLUGINS.iter().map(|(name, _)| *name)
}
