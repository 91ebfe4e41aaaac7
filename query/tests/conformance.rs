//! Runs Prometheus' PromQL conformance scripts (`shared/conformance/promqltest`) against the
//! engine. Fails when the scripts are missing, or when an eval fails that is not listed in
//! `query/promqltest-known-failures.txt`.

use basin_query::promqltest::{RunOptions, run_paths, run_paths_with};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn conformance_dir() -> PathBuf {
    match std::env::var("BASIN_CONFORMANCE_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promqltest"),
    }
}

fn known_failures() -> BTreeSet<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("promqltest-known-failures.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn promql_conformance() {
    let dir = conformance_dir();
    assert!(
        dir.is_dir(),
        "conformance directory {} not found (set BASIN_CONFORMANCE_DIR or clone shared/ beside \
         the repository)",
        dir.display()
    );
    let summary = run_paths(&[dir], &known_failures()).expect("conformance run");
    println!("{}", summary.text);
    assert!(
        summary.unexpected.is_empty(),
        "evals failed that are not in promqltest-known-failures.txt: {}",
        summary.unexpected.join(" ")
    );
}

/// Also runs the experimental (feature-flagged) evals the engine supports; the ones it does not
/// support are skipped, and none of those it runs may fail outside the known-failures list.
#[test]
fn promql_conformance_experimental() {
    let opts = RunOptions { run_experimental: true };
    let summary = run_paths_with(&[conformance_dir()], &known_failures(), opts).expect("run");
    println!("{}", summary.text);
    assert!(
        summary.unexpected.is_empty(),
        "experimental evals failed: {}",
        summary.unexpected.join(" ")
    );
}
