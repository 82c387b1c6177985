//! md2html-convert in the sandbox against the same code natively: a repository of a few
//! thousand generated Markdown pages (headings, lists, a table, code, links, a
//! footnote; about 2 KB each) is converted by the real built-in plugin through the
//! runtime (read from git, rendered, written), and the same pages are rendered natively
//! with the plugin crate's `render` module and written with `std::fs`. The plugin measures
//! its phases on its own (`timings` in the build log), so the two renderings and the two
//! writings compare like for like. Native and plugin rounds alternate and each side counts
//! its best. Target: the plugin's rendering within 1.5x of native.
//!
//! `cargo bench -p gitauto --bench md2html`; `GITAUTO_BENCH_PAGES` (default 3000),
//! `GITAUTO_BENCH_ROUNDS` (default 10), `GITAUTO_BENCH_WASM` (another build of the plugin,
//! a `.wasm` path, instead of the built-in one). The files go under `TMPDIR`: point it at a
//! tmpfs to see the cost of WASI without the file system's.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark: nothing async waits on this thread, and the native side writes with std::fs on purpose"
)]

mod common;

use common::env_number;
use gitauto::capability::log::Sink;
use gitauto::config::Config;
use gitauto::event::{Event, Repository};
use gitauto::runtime::{Runtime, StepOutcome};
use md2html_convert::render;
use std::sync::Arc;
use std::time::Instant;

fn page(n: usize) -> String {
    format!(
        "# Chapter {n}\n\nIntro to *chapter {n}* with **bold**, `code` and a [link](../part{}/page.md#top).\n\n\
         ## Outline\n\n- first point about {n}\n- second point\n  - nested detail\n- third point[^{n}]\n\n\
         | Week | Topic | Reading |\n|------|-------|---------|\n| 1 | Vectors {n} | Ch. 1 |\n| 2 | Forces | Ch. 2 |\n| 3 | Energy | Ch. 3 |\n\n\
         ```rust\nfn chapter_{n}() -> u32 {{\n    {n}\n}}\n```\n\n\
         > A quotation that spans a line or two, to have some text to wrap in a paragraph\n> about chapter {n}.\n\n\
         ## Exercises\n\n1. Solve problem {n}.\n2. ~~Skip~~ Do problem {}.\n3. Explain why.\n\n\
         Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore\n\
         magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo.\n\n\
         [^{n}]: A footnote for chapter {n}.\n",
        n % 17,
        n + 1
    )
}

fn main() {
    let pages = env_number("GITAUTO_BENCH_PAGES", 3000);
    let root = tempfile::tempdir().unwrap();
    let origin = root.path().join("origin/site");
    let texts: Vec<(String, String)> = (0..pages).map(|n| (format!("part{}/page{n}.md", n % 17), page(n))).collect();
    let bytes: usize = texts.iter().map(|(_, t)| t.len()).sum();

    // One native round: render every page (timed), then write them the plain way, making
    // each file's directory and writing it with `std::fs` (timed on its own) into a
    // directory emptied first, as the plugin empties its output before writing.
    let native_www = root.path().join("native-www");
    let native_round = || {
        // As the plugin does: the layout parsed once, each page filled in as it is rendered.
        let started = Instant::now();
        let template = render::Template::parse(render::DEFAULT_LAYOUT);
        let pages: Vec<String> = texts
            .iter()
            .map(|(path, text)| {
                let page = render::markdown(text, path);
                let root = "../".repeat(path.matches('/').count());
                let fields = render::Fields { root: &root, path, repo: "acme/site", commit: "0123456789" };
                template.fill(&page, &fields)
            })
            .collect();
        let pages = std::hint::black_box(pages);
        let render_ms = started.elapsed().as_secs_f64() * 1000.0;
        if native_www.exists() {
            std::fs::remove_dir_all(&native_www).unwrap();
        }
        let started = Instant::now();
        for ((path, _), html) in texts.iter().zip(&pages) {
            let target = native_www.join(render::html_path(path));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, html).unwrap();
        }
        let write_ms = started.elapsed().as_secs_f64() * 1000.0;
        (render_ms, write_ms)
    };

    // The repository the plugin converts.
    let repo = git2::Repository::init(&origin).unwrap();
    let mut index = repo.index().unwrap();
    for (path, text) in &texts {
        let blob = repo.blob(text.as_bytes()).unwrap();
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: text.len() as u32,
            id: blob,
            flags: path.len() as u16,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).unwrap();
    }
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("bench", "bench@example.com").unwrap();
    let commit = repo.commit(Some("refs/heads/main"), &signature, &signature, "pages", &tree, &[]).unwrap().to_string();

    let r = root.path().display();
    let wasm = std::env::var("GITAUTO_BENCH_WASM").unwrap_or_else(|_| "builtin:md2html-convert".into());
    std::fs::create_dir_all(root.path().join("clones")).unwrap();
    std::fs::create_dir_all(root.path().join("www")).unwrap();
    let config = Config::parse(
        &root.path().join("gitauto.toml"),
        &format!(
            "[plugins.md2html]\nwasm = \"{wasm}\"\nlimits = {{ memory = \"1GiB\", timeout = \"10m\" }}\n\
             grants = {{ dirs = [\"{r}/origin\", {{ path = \"{r}/clones\", write = true }}, {{ path = \"{r}/www\", write = true }}] }}\n"
        ),
    )
    .unwrap();
    let specs: Vec<_> = config.plugins.values().cloned().collect();
    let (runtime, _) = Runtime::new(&specs, &root.path().join("cache")).unwrap();
    let event = Event {
        delivery: "bench".into(),
        source: "bench".into(),
        forge: "github".into(),
        kind: "push".into(),
        repository: Repository {
            owner: "acme".into(),
            name: "site".into(),
            full_name: "acme/site".into(),
            clone_url: origin.display().to_string(),
            default_branch: Some("main".into()),
            ..Repository::default()
        },
        git_ref: Some("refs/heads/main".into()),
        branch: Some("main".into()),
        before: Some("0".repeat(40)),
        after: Some(commit.clone()),
        commits_complete: true,
        ..Event::default()
    };
    let settings = format!(r#"{{"repodir": "{r}/clones", "output_dir": "{r}/www"}}"#);
    let sink: Sink = Arc::new(|_, _| {});
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let _guard = tokio.enter();
    // Native and plugin runs alternate, so that a busy spell on the machine slows both
    // sides alike, and each side counts its best round. The native side's first run is
    // also kept: like every plugin run, it starts with no memory to reuse.
    let rounds = env_number("GITAUTO_BENCH_ROUNDS", 10).max(1);
    let mut native_runs = Vec::new();
    let mut native_writes = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..rounds {
        let (render_ms, write_ms) = native_round();
        native_runs.push(render_ms);
        native_writes.push(write_ms);
        let started = Instant::now();
        let outcome = runtime.run("md2html", &event, &settings, sink.clone());
        let step_ms = started.elapsed().as_secs_f64() * 1000.0;
        let StepOutcome::Done { output, .. } = &outcome else { panic!("the plugin did not finish: {outcome:?}") };
        let output: serde_json::Value = serde_json::from_str(output).unwrap();
        assert_eq!(output["pages"].as_u64(), Some(pages as u64), "{output}");
        let timings = &output["timings"];
        runs.push((
            step_ms,
            timings["read_ms"].as_f64().unwrap(),
            timings["render_ms"].as_f64().unwrap(),
            timings["write_ms"].as_f64().unwrap(),
        ));
    }
    let native_first_ms = native_runs[0];
    let native_ms = native_runs.iter().copied().fold(f64::MAX, f64::min);
    let native_median = median(&native_runs);
    let best =
        runs.iter().copied().fold((f64::MAX, 0.0, f64::MAX, 0.0), |best, run| if run.2 < best.2 { run } else { best });
    let (step_ms, read_ms, render_ms, write_ms) = best;
    let render_median = median(&runs.iter().map(|run| run.2).collect::<Vec<_>>());
    let write_median = median(&runs.iter().map(|run| run.3).collect::<Vec<_>>());
    println!("md2html: {pages} pages, {:.1} MB of Markdown, best of {rounds} alternating rounds", bytes as f64 / 1e6);
    println!(
        "  native render      {native_ms:9.1} ms  ({:.0} pages/s; median {native_median:.1} ms)",
        pages as f64 / native_ms * 1000.0
    );
    println!("  native, first run  {native_first_ms:9.1} ms  (no memory to reuse yet)");
    println!(
        "  plugin render      {render_ms:9.1} ms  ({:.0} pages/s; median {render_median:.1} ms)",
        pages as f64 / render_ms * 1000.0
    );
    println!(
        "  ratio plugin/native {:8.2}x  (target <= 1.5x; of the medians {:.2}x)",
        render_ms / native_ms,
        render_median / native_median
    );
    println!(
        "  whole step         {step_ms:9.1} ms  (read from git {read_ms:.1} ms, render {render_ms:.1} ms, write {write_ms:.1} ms)"
    );
    println!(
        "  write per file     {:9.3} ms  (median of the rounds; {pages} pages and the index; natively {:.3} ms)",
        write_median / (pages + 1) as f64,
        median(&native_writes) / pages as f64
    );
    common::report(
        &format!("md2html render, Wasm / native ({pages} pages)"),
        &format!("{:.2}x", render_ms / native_ms),
        "≤ 1.5x",
    );
}

/// The middle value of `values` (the upper one of the two middle values for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
