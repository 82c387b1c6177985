//! Builds the test guests (`tests/guests/*`) and the hostile plugins (`tests/hostile/*`)
//! for wasm32-wasip2 and tells the tests where they are: `GITAUTO_GUEST_<NAME>` for each
//! guest, `GITAUTO_HOSTILE_DIR` for the directory holding `hostile_<name>.wasm`.

const GUESTS: &[&str] = &["empty", "probe", "old-wit", "kv-probe"];

fn main() {
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut hostile: Vec<String> = std::fs::read_dir(manifest.join("hostile"))
        .expect("tests/hostile exists")
        .map(|entry| format!("hostile-{}", entry.expect("a readable directory").file_name().to_string_lossy()))
        .collect();
    hostile.sort();
    let packages: Vec<&str> = GUESTS.iter().copied().chain(hostile.iter().map(String::as_str)).collect();
    let built = gitauto_plugin_builder::build(&packages, &["tests/guests", "tests/hostile", "plugins/sdk", "wit"]);
    for (name, path) in GUESTS.iter().zip(&built) {
        let var = format!("GITAUTO_GUEST_{}", name.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={}", path.display());
    }
    let dir = built.last().and_then(|path| path.parent()).expect("at least one plugin was built");
    println!("cargo:rustc-env=GITAUTO_HOSTILE_DIR={}", dir.display());
}
