//! Compiles plugin crates of this workspace to `wasm32-wasip2` components from a build
//! script, so that a plain `cargo build` or `cargo test` produces the plugins the host
//! embeds and the tests load. It owns the nested cargo call; what to do with the `.wasm`
//! files is the caller's business.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every plugin is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The cargo profile plugins are built with (defined in the workspace `Cargo.toml`).
pub const PROFILE: &str = "plugin";

/// Builds the named workspace packages for [`TARGET`] with [`PROFILE`] and returns the
/// path of each one's `.wasm` file, in the order given.
///
/// Panics with a readable message when the build fails: this runs in a build script,
/// where a panic is how an error reaches the user.
pub fn build(packages: &[&str], watch: &[&str]) -> Vec<PathBuf> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = workspace_root(&manifest_dir);
    for path in watch {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());

    ensure_target_installed();

    // A target dir of its own: the outer cargo holds a lock on its own, and the wasm
    // artifacts are shared by the debug and release builds of the host.
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target")).join("plugins");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--locked", "--profile", PROFILE, "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    // Flags meant for the host (e.g. `-C target-cpu=native`, coverage) must not reach
    // the wasm build, and the outer build's target selection is not ours.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        command.env_remove(var);
    }
    if env::var_os("CARGO_NET_OFFLINE").is_some() {
        command.arg("--offline");
    }
    let status =
        command.status().unwrap_or_else(|err| panic!("could not run cargo to build plugins {packages:?}: {err}"));
    assert!(
        status.success(),
        "building plugins {packages:?} for {TARGET} failed ({status}); the compiler's messages are above"
    );

    let out_dir = target_dir.join(TARGET).join(PROFILE);
    packages
        .iter()
        .map(|package| {
            let wasm = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
            assert!(wasm.is_file(), "cargo built {package} but {} is missing", wasm.display());
            wasm
        })
        .collect()
}

/// The workspace root: the nearest ancestor whose `Cargo.toml` declares `[workspace]`.
fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .map(|text| text.lines().any(|line| line.trim() == "[workspace]"))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no workspace Cargo.toml above {}", manifest_dir.display()))
        .to_path_buf()
}

/// rustup installs the targets named in `rust-toolchain.toml` only when it installs the
/// toolchain itself; a machine that already had the toolchain lacks the target, so add it.
fn ensure_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(sysroot) = &sysroot
        && sysroot.join("lib/rustlib").join(TARGET).is_dir()
    {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    match rustup.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`rustup target add {TARGET}` failed ({status}); install the target and build again"),
        Err(err) => panic!(
            "the {TARGET} target is not installed and rustup could not be run ({err}); \
             install the target for this toolchain and build again"
        ),
    }
}
