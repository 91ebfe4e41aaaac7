//! Runner unit tests: the script language and the CLI contract.

use super::script::{Command, Point, parse, parse_duration, parse_labels, parse_values};
use super::{Outcome, conformance_engine, run_cli, run_script};

fn floats(p: &[Point]) -> Vec<Option<f64>> {
    p.iter()
        .map(|p| match p {
            Point::Float(v) => Some(*v),
            _ => None,
        })
        .collect()
}

#[test]
fn expands_value_items() {
    let v = parse_values("1 _ -2+4x3 1-2x2 _x2 3x1").expect("values");
    let want = [1.0, f64::NAN, -2.0, 2.0, 6.0, 10.0, 1.0, -1.0, -3.0, f64::NAN, f64::NAN, 3.0, 3.0];
    let got = floats(&v);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        match g {
            Some(g) => assert_eq!(*g, w),
            None => assert!(w.is_nan()),
        }
    }
    let v = parse_values("stale {{schema:0 sum:5 count:4 buckets:[1 2 1]}}x2 Inf").expect("v");
    assert!(matches!(v[0], Point::Float(f) if basin_proto::is_stale_nan(f)));
    assert_eq!(&v[1..4], &[Point::Histogram, Point::Histogram, Point::Histogram]);
    assert_eq!(v[4], Point::Float(f64::INFINITY));
}

#[test]
fn parses_durations_and_labels() {
    assert_eq!(parse_duration("1m30s"), Some(90_000));
    assert_eq!(parse_duration("10s53ms"), Some(10_053));
    assert_eq!(parse_duration("0"), Some(0));
    assert_eq!(parse_duration("1y"), Some(31_536_000_000));
    assert_eq!(parse_duration("5x"), None);
    let l = parse_labels(r#"{"name.with.dots", b="x\"y", a='q'}"#).expect("labels");
    let pairs: Vec<(&str, &str)> = l.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
    assert_eq!(pairs, [("__name__", "name.with.dots"), ("a", "q"), ("b", "x\"y")]);
}

#[test]
fn comment_lines_end_blocks() {
    let cmds = parse("load 1m\n  a 1 2\n\neval instant at 1m a\n# empty\n  a 2\n").err();
    // `a 2` after the comment starts a new command, which is not a command.
    assert!(cmds.is_some());
    let cmds = parse("load 1m\n  a 1 2\n# data\neval instant at 1m a\n  a 2\n").expect("script");
    assert!(matches!(cmds[0], Command::Load { .. }));
    assert!(matches!(&cmds[1], Command::Eval(e) if e.results.len() == 1));
}

#[test]
fn runs_a_script() {
    let script = "load 1m\n  up{job=\"a\"} 1 0 1\n\neval instant at 2m up\n  up{job=\"a\"} 1\n\n\
                  eval instant at 2m up\n  up{job=\"a\"} 2\n\n\
                  eval range from 0 to 2m step 1m up * 2\n  {job=\"a\"} 2 0 2\n";
    let rep = run_script("x.test", script, &conformance_engine(), Default::default())
        .expect("script runs");
    let outcomes: Vec<&Outcome> = rep.evals.iter().map(|e| &e.outcome).collect();
    assert_eq!(outcomes[0], &Outcome::Passed);
    assert!(matches!(outcomes[1], Outcome::Failed(_)));
    assert_eq!(outcomes[2], &Outcome::Passed);
}

#[test]
fn missing_directory_is_an_error() {
    assert_eq!(run_cli(&["/nonexistent/conformance".to_string()]), 2);
}

#[test]
fn known_failures_gate_the_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("x.test");
    std::fs::write(&script, "load 1m\n  up 1\n\neval instant at 0 up\n  up 2\n").expect("write");
    let known = dir.path().join("known.txt");
    let path = script.display().to_string();
    assert_eq!(run_cli(std::slice::from_ref(&path)), 1);
    std::fs::write(&known, "x.test:4 # wrong on purpose\n").expect("write");
    let args = ["--known-failures".to_string(), known.display().to_string(), path];
    assert_eq!(run_cli(&args), 0);
}
