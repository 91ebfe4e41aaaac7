//! Rule file validation agrees with `promtool check rules`.
//!
//! `testdata/good` must be accepted and `testdata/bad` rejected by both the alerter and, when
//! `/usr/bin/promtool` is installed (Debian's 2.42), promtool itself: every file is checked with
//! both and the answers must agree. `testdata/newer` holds fields promtool 2.42 does not know
//! (`query_offset`, group `labels`); there only the file name's `good_`/`bad_` prefix decides.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", dir.display());
    files
}

fn ours(file: &Path) -> Result<basin_alerter::CheckSummary, Vec<basin_alerter::RuleFileError>> {
    basin_alerter::check_rule_files(&[file.to_string_lossy().into_owned()])
}

fn promtool_accepts(file: &Path) -> Option<bool> {
    if !Path::new(PROMTOOL).exists() {
        return None;
    }
    let status = Command::new(PROMTOOL)
        .args(["check", "rules"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("running promtool: {e}"));
    Some(status.status.success())
}

#[test]
fn good_files_are_accepted_by_both() {
    let mut disagreements = Vec::new();
    for file in files("good") {
        if let Err(e) = ours(&file) {
            disagreements.push(format!("we reject {}: {e:?}", file.display()));
        }
        if promtool_accepts(&file) == Some(false) {
            disagreements.push(format!("promtool rejects {}", file.display()));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn bad_files_are_rejected_by_both_with_a_located_reason() {
    let mut disagreements = Vec::new();
    for file in files("bad") {
        match ours(&file) {
            Ok(_) => disagreements.push(format!("we accept {}", file.display())),
            Err(errors) => {
                for e in &errors {
                    assert_eq!(Path::new(&e.file), file.as_path());
                    assert!(!e.reason.is_empty());
                }
            }
        }
        if promtool_accepts(&file) == Some(true) {
            disagreements.push(format!("promtool accepts {}", file.display()));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn newer_fields_follow_current_prometheus() {
    for file in files("newer") {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let result = ours(&file);
        if name.starts_with("good_") {
            assert!(result.is_ok(), "{name} rejected: {:?}", result.err());
        } else {
            assert!(result.is_err(), "{name} accepted");
        }
    }
}

#[test]
fn rule_level_errors_name_group_and_rule() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad/bad_expr.yml");
    let errors = ours(&file).err().unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].group.as_deref(), Some("g"));
    assert_eq!(errors[0].rule, Some((1, "A".to_string())));
    assert!(errors[0].reason.contains("could not parse expression"), "{}", errors[0].reason);
}

#[test]
fn globs_expand_and_summarise() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/good");
    let summary = basin_alerter::check_rule_files(&[format!("{}/multi_*.yml", dir.display())])
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((summary.files, summary.groups, summary.rules), (1, 2, 3));
    assert!(basin_alerter::check_rule_files(&["/nonexistent/rules.yml".to_string()]).is_err());
}
