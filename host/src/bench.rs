//! What the benchmarks share (`host/benches`, `tests/benches`): quantiles, sizes from the
//! environment, and [`report`], which prints a figure and, when `bench/run` collects
//! them, appends it to the file named by `GITAUTO_BENCH_REPORT` for the final table.

use std::io::Write;
use std::time::Duration;

/// The `p` quantile (0 to 1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// An environment variable as a number, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Prints one measured figure with its target (empty when it has none) and records it
/// for `bench/run`'s table.
pub fn report(what: &str, figure: &str, target: &str) {
    println!("{what:<52} {figure:>14}   {target}");
    if let Some(path) = std::env::var_os("GITAUTO_BENCH_REPORT") {
        let line = format!("{what}\t{figure}\t{target}\n");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = appended {
            eprintln!("recording the figure in {}: {err}", path.to_string_lossy());
        }
    }
}
