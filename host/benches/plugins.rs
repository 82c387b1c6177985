//! What a plugin costs by language: compiling the component (the first start after it
//! changes), loading it from the compiled-artifact cache (every later start), and one
//! event (a fresh sandbox, the call, the git capability, the outcome).
//!
//! `cargo bench -p gitauto --bench plugins`. Measures the built-in `fetch-update` (Rust)
//! and the Python and JavaScript examples as the test suite builds them
//! (`target/tools/push-summary-{py,js}.wasm`; run `cargo test -p gitauto-tests --test it
//! languages` once first). `GITAUTO_BENCH_EVENTS` (default 200) events each.

#![allow(clippy::disallowed_methods, reason = "benchmarks build their fixtures before the clock starts")]

mod common;

use common::env_number;
use gitauto::capability::log::Sink;
use gitauto::config::{Limits, PluginSpec, WasmSource};
use gitauto::event::{Event, Repository};
use gitauto::grant::{Access, DirGrant, Grant};
use gitauto::runtime::{Runtime, StepOutcome};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let events = env_number("GITAUTO_BENCH_EVENTS", 200);
    let root = tempfile::tempdir().unwrap();
    let repos = root.path().join("repos");
    let checkout = repos.join("acme/widgets");
    std::fs::create_dir_all(&checkout).unwrap();
    let repo = git2::Repository::init(&checkout).unwrap();
    let signature = git2::Signature::now("bench", "bench@example.com").unwrap();
    let tree = repo.find_tree(repo.index().unwrap().write_tree().unwrap()).unwrap();
    let head = repo.commit(Some("HEAD"), &signature, &signature, "empty", &tree, &[]).unwrap().to_string();

    let builtin = root.path().join("fetch-update.wasm");
    std::fs::write(&builtin, gitauto::builtin::get("fetch-update").unwrap()).unwrap();
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools");
    let cases: Vec<(&str, PathBuf, String)> = vec![
        ("Rust (fetch-update)", builtin, format!(r#"{{"repodir": "{}"}}"#, repos.display())),
        (
            "Python (push-summary)",
            tools.join("push-summary-py.wasm"),
            format!(r#"{{"checkout": "{}"}}"#, checkout.display()),
        ),
        (
            "JavaScript (push-summary)",
            tools.join("push-summary-js.wasm"),
            format!(r#"{{"checkout": "{}"}}"#, checkout.display()),
        ),
    ];
    let event = Event {
        delivery: "bench".into(),
        source: "bench".into(),
        forge: "github".into(),
        kind: "push".into(),
        repository: Repository {
            owner: "acme".into(),
            name: "widgets".into(),
            full_name: "acme/widgets".into(),
            ..Repository::default()
        },
        git_ref: Some("refs/heads/elsewhere".into()),
        branch: Some("elsewhere".into()),
        before: Some(head.clone()),
        after: Some(head),
        commits_complete: true,
        ..Event::default()
    };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let _guard = tokio.enter();
    let sink: Sink = Arc::new(|_, _| {});
    println!("{:<26} {:>10} {:>12} {:>12} {:>12}", "plugin", "size", "compile", "cached load", "per event");
    for (name, wasm, settings) in cases {
        if !wasm.is_file() {
            println!("{name:<26} missing: {} (run the languages test first)", wasm.display());
            continue;
        }
        let size = std::fs::metadata(&wasm).unwrap().len();
        let spec = PluginSpec {
            name: "p".into(),
            wasm: WasmSource::File(wasm.clone()),
            verify: None,
            grant: Grant { dirs: vec![DirGrant::new(repos.clone(), Access::Git)], ..Grant::default() },
            limits: Limits { memory: 512 << 20, timeout: Duration::from_secs(60) },
            settings: Default::default(),
        };
        let cache = root.path().join(format!("cache-{}", name.len()));
        let started = Instant::now();
        drop(Runtime::new(std::slice::from_ref(&spec), &cache).unwrap());
        let compile = started.elapsed();
        let mut loads = Vec::new();
        let mut runtime = None;
        for _ in 0..5 {
            let started = Instant::now();
            let (loaded, report) = Runtime::new(std::slice::from_ref(&spec), &cache).unwrap();
            loads.push(started.elapsed());
            assert!(report.plugins[0].1, "loaded from the cache");
            runtime = Some(loaded);
        }
        let runtime = runtime.unwrap();
        let mut times = Vec::with_capacity(events);
        for _ in 0..events {
            let started = Instant::now();
            let outcome = runtime.run("p", &event, &settings, sink.clone());
            times.push(started.elapsed());
            assert!(matches!(outcome, StepOutcome::Done { .. }), "{name}: {outcome:?}");
        }
        loads.sort();
        times.sort();
        println!(
            "{name:<26} {:>7.1} MB {:>10.2} s {:>9.1} ms {:>9.2} ms",
            size as f64 / 1e6,
            compile.as_secs_f64(),
            loads[loads.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() / 2].as_secs_f64() * 1000.0
        );
        common::report(
            &format!("{name}: compile / cached start / per event"),
            &format!(
                "{:.1} s / {:.0} ms / {:.2} ms",
                compile.as_secs_f64(),
                loads[loads.len() / 2].as_secs_f64() * 1000.0,
                times[times.len() / 2].as_secs_f64() * 1000.0
            ),
            "",
        );
    }
}
