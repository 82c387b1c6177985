//! The Python and JavaScript example plugins, built the way their READMEs say, with
//! the tools installed here from PyPI and npm (pinned, into `target/tools/`, once).
//! A component is rebuilt when its sources or the WIT are newer than it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// componentize-py's version the Python example is built with.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js's version the JavaScript example is built with.
pub const COMPONENTIZE_JS: &str = "0.23.0";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn tools() -> PathBuf {
    let dir = workspace().join("target/tools");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `command`, panicking with its output when it fails.
pub fn run_ok(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|err| panic!("{what}: cannot start: {err}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Where `cargo` builds scaffolded Rust plugins (shared between runs, so wit-bindgen
/// compiles once).
pub fn scaffold_target() -> PathBuf {
    tools().join("scaffold-target")
}

/// The newest modification time of any file under `dirs`.
fn newest(dirs: &[PathBuf]) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                newest = newest.max(modified(&path));
            }
        }
    }
    newest
}

/// `examples/plugins/python` built with componentize-py.
pub fn python_plugin() -> PathBuf {
    let source = workspace().join("examples/plugins/python");
    let wit = workspace().join("wit");
    let out = tools().join("push-summary-py.wasm");
    if out.is_file() && modified(&out) > newest(&[source.clone(), wit.clone()]) {
        return out;
    }
    let bin = componentize_py();
    run_ok(
        Command::new(&bin)
            .arg("-d")
            .arg(&wit)
            .args(["-w", "plugin", "componentize", "-p"])
            .arg(&source)
            .arg("app")
            .arg("-o")
            .arg(&out),
        "componentize-py",
    );
    out
}

/// componentize-py, installed into a virtualenv of its own on first use.
pub fn componentize_py() -> PathBuf {
    let venv = tools().join("python");
    let bin = venv.join("bin/componentize-py");
    if !bin.is_file() {
        run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv");
        run_ok(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                &format!("componentize-py=={COMPONENTIZE_PY}"),
            ]),
            "pip install componentize-py",
        );
    }
    bin
}

/// A directory with componentize-js in its `node_modules`, installed on first use: a
/// build script in it or below it resolves the package.
pub fn componentize_js_dir() -> PathBuf {
    let work = tools().join("javascript");
    std::fs::create_dir_all(&work).unwrap();
    if !work.join("node_modules/@bytecodealliance/componentize-js").is_dir() {
        run_ok(
            Command::new("npm").current_dir(&work).args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                &format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"),
            ]),
            "npm install componentize-js",
        );
    }
    work
}

/// `examples/plugins/javascript` built with componentize-js.
pub fn javascript_plugin() -> PathBuf {
    let source = workspace().join("examples/plugins/javascript");
    let wit = workspace().join("wit");
    let out = tools().join("push-summary-js.wasm");
    if out.is_file() && modified(&out) > newest(&[source.clone(), wit.clone()]) {
        return out;
    }
    // The build script resolves componentize-js from its own directory upwards: build
    // from a copy that sits below the installed node_modules.
    let work = componentize_js_dir();
    for file in ["plugin.js", "build.mjs", "package.json"] {
        std::fs::copy(source.join(file), work.join(file)).unwrap();
    }
    run_ok(Command::new("node").current_dir(&work).arg("build.mjs").arg(&wit).arg(&out), "node build.mjs");
    out
}
