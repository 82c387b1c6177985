//! What a merge of many short lines costs: peak resident memory and time of one
//! `merge-check` at the line bound ([`MAX_MERGE_LINES`] over the three versions of one
//! file, changed on both sides), for several shapes of file; and the same merge made by
//! libgit2 unbounded at `GITAUTO_BENCH_TIMES` (default 3) times the bound, to show what
//! the bound holds back. The peak is the process's high-water mark, reset before each
//! merge (`/proc/self/clear_refs`), above its resident size just before.
//!
//! `cargo bench -p gitauto --bench merge`. Each merge runs in a child process of its own.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark, not async code: it builds its fixtures and children before measuring"
)]

use git2::{Repository, Signature};
use gitauto::bench::{env_number, report};
use gitauto::capability::git::{MAX_MERGE_LINES, merge_check_for_benchmark};
use std::time::Instant;

/// One shape of file: its base, ours and theirs, each of `lines` lines.
type Shape = fn(usize) -> [String; 3];

const SHAPES: &[(&str, Shape)] = &[
    ("empty lines, first and last changed", |n| {
        let body = "\n".repeat(n - 2);
        [format!("\n{body}\n"), format!("ours\n{body}\n"), format!("\n{body}theirs\n")]
    }),
    ("empty lines, every 2nd / 3rd changed", |n| {
        let lines = |every: usize, with: &str| -> String {
            (0..n).map(|i| if every > 1 && i % every == 0 { format!("{with}\n") } else { "\n".to_owned() }).collect()
        };
        [lines(1, ""), lines(2, "o"), lines(3, "t")]
    }),
    ("numbered lines, every 2nd / 3rd changed", |n| {
        let lines = |every: usize, with: &str| {
            (0..n)
                .map(|i| if every > 1 && i % every == 0 { format!("{with}{i}\n") } else { format!("{i}\n") })
                .collect()
        };
        [lines(1, ""), lines(2, "o"), lines(3, "t")]
    }),
    ("empty lines, all changed on both sides", |n| ["\n".repeat(n), "a\n".repeat(n), "b\n".repeat(n)]),
];

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A repository whose `ours` and `theirs` change `file.txt` of `base` as `versions` say.
fn repository(dir: &std::path::Path, versions: &[String; 3]) -> Repository {
    let repo = Repository::init(dir).unwrap();
    let signature = Signature::now("bench", "bench@example.com").unwrap();
    let commit = |content: &str, parents: &[&git2::Commit<'_>], branch: &str| {
        let blob = repo.blob(content.as_bytes()).unwrap();
        let mut tree = repo.treebuilder(None).unwrap();
        tree.insert("file.txt", blob, 0o100644).unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let id = repo.commit(Some(&format!("refs/heads/{branch}")), &signature, &signature, branch, &tree, parents);
        repo.find_commit(id.unwrap()).unwrap()
    };
    let base = commit(&versions[0], &[], "base");
    commit(&versions[1], &[&base], "ours");
    commit(&versions[2], &[&base], "theirs");
    drop(base);
    repo
}

/// Runs `merge` and prints its peak (the high-water mark, reset just before, above the
/// resident size then) and time, as one line for the parent: `peak-kib seconds outcome`.
fn measure(merge: impl FnOnce() -> String) {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let outcome = merge();
    let elapsed = start.elapsed();
    let peak = status_kib("VmHWM:").saturating_sub(before);
    println!("{peak} {:.2} {outcome}", elapsed.as_secs_f64());
}

/// In a child process of its own (the allocator keeps what an earlier merge freed): one
/// merge of shape `shape`, bounded or not.
fn child(shape: usize, bounded: bool) {
    let per_file = usize::try_from(MAX_MERGE_LINES / 3).unwrap();
    let times = env_number("GITAUTO_BENCH_TIMES", 3);
    let dir = tempfile::tempdir().unwrap();
    let lines = if bounded { per_file } else { per_file * times };
    let repo = repository(dir.path(), &(SHAPES[shape].1)(lines));
    if bounded {
        drop(repo);
        measure(|| match merge_check_for_benchmark(dir.path(), "ours", "theirs") {
            Ok(conflicts) => format!("{} conflicting paths", conflicts.len()),
            Err(err) => format!("refused: {err}"),
        });
    } else {
        measure(|| {
            let odb = repo.odb().unwrap();
            let _in_memory = odb.add_new_mempack_backend(1000).unwrap();
            let commit = |branch: &str| repo.revparse_single(branch).unwrap().peel_to_commit().unwrap();
            let index = repo.merge_commits(&commit("ours"), &commit("theirs"), None).unwrap();
            format!("conflicts: {}", index.has_conflicts())
        });
    }
}

fn main() {
    if let Ok(case) = std::env::var("GITAUTO_BENCH_MERGE_CASE") {
        let (shape, bounded) = case.split_once(' ').unwrap();
        return child(shape.parse().unwrap(), bounded == "bounded");
    }
    let times = env_number("GITAUTO_BENCH_TIMES", 3);
    println!("merge at the line bound: {MAX_MERGE_LINES} lines over three versions of one file");
    for (index, (name, _)) in SHAPES.iter().enumerate() {
        for bounded in [true, false] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .env("GITAUTO_BENCH_MERGE_CASE", format!("{index} {}", if bounded { "bounded" } else { "unbounded" }))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let line = String::from_utf8(out.stdout).unwrap();
            let mut parts = line.trim().splitn(3, ' ');
            let peak: f64 = parts.next().unwrap().parse().unwrap();
            let (seconds, outcome) = (parts.next().unwrap(), parts.next().unwrap_or_default());
            let what = if bounded {
                format!("merge-check at the bound, {name}")
            } else {
                format!("libgit2 unbounded at {times}x the bound, {name}")
            };
            report(&format!("{what}: peak RSS"), &format!("{:.0} MiB", peak / 1024.0), "");
            println!("    {seconds} s, {outcome}");
        }
    }
}
