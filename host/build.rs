//! Builds the built-in plugins (`plugins/*`) for wasm32-wasip2 and embeds them, so that
//! `wasm = "builtin:NAME"` needs no file next to the binary.

#![allow(clippy::disallowed_methods, reason = "a build script: nothing async runs here")]

use std::fmt::Write;
use std::path::PathBuf;

/// Built-in plugins: (config name, cargo package).
const BUILTINS: &[&str] =
    &["fetch-update", "edx-import", "comment", "provision", "md2html-convert", "notify", "run", "mergeable", "release"];

fn main() {
    let wasm = gitauto_plugin_builder::build(BUILTINS, &["plugins", "wit"]);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut table = String::from(
        "/// Built-in plugins: (name, component bytes).\npub static BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in BUILTINS.iter().zip(&wasm) {
        let copy = out_dir.join(format!("{name}.wasm"));
        std::fs::copy(path, &copy).unwrap_or_else(|err| panic!("copying {}: {err}", path.display()));
        writeln!(table, "    ({name:?}, include_bytes!({:?})),", copy.display().to_string())
            .expect("writing to a String");
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), table).expect("writing builtin_plugins.rs");
}
