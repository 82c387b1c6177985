//! Builds the test guests (`tests/guests/*`) for wasm32-wasip2 and tells the tests
//! where they are, through `GITAUTO_GUEST_<NAME>` variables.

const GUESTS: &[&str] = &["forever-loop", "memory-hog", "probe"];

fn main() {
    let built = gitauto_plugin_builder::build(GUESTS, &["tests/guests", "plugins/sdk", "wit"]);
    for (name, path) in GUESTS.iter().zip(built) {
        let var = format!("GITAUTO_GUEST_{}", name.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
