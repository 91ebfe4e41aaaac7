//! Compares an engine result with an eval's expectations (FORMAT.md section 6.3).

use super::script::{Eval, EvalKind, MsgMatch, Point, SeriesLine};
use crate::promql::{Annotated, Value};
use basin_proto::STALE_NAN_BITS;
use basin_proto::storage::Label;

/// Whether two floats are equal within the runner's tolerance.
pub(crate) fn float_eq(a: f64, b: f64) -> bool {
    let stale = |x: f64| x.to_bits() == STALE_NAN_BITS;
    if stale(a) || stale(b) {
        return stale(a) && stale(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    if a == 0.0 || b == 0.0 || !a.is_finite() || !b.is_finite() {
        return false;
    }
    (a - b).abs() / (a.abs() + b.abs()) < 1e-6
}

fn fmt_labels(l: &[Label]) -> String {
    let parts: Vec<String> = l.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Whether a message matches an `expect ... msg:|regex:` constraint.
pub(crate) fn msg_matches(m: &MsgMatch, text: &str) -> bool {
    match m {
        MsgMatch::Any => true,
        MsgMatch::Exact(s) => s.trim() == text.trim(),
        MsgMatch::Regex(r) => regex::Regex::new(r).map(|re| re.is_match(text)).unwrap_or(false),
    }
}

/// Checks warnings/infos against the eval's annotation expectations.
pub(crate) fn check_annotations(ev: &Eval, res: &Annotated) -> Result<(), String> {
    check_kind("warn", &ev.warn, ev.no_warn, &res.result.warnings)?;
    check_kind("info", &ev.info, ev.no_info, &res.infos)
}

fn check_kind(kind: &str, want: &[MsgMatch], none: bool, got: &[String]) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("expected no {kind} annotations, got {got:?}"));
    }
    if want.is_empty() {
        return Ok(());
    }
    for w in want {
        if !got.iter().any(|g| msg_matches(w, g)) {
            return Err(format!("expected a {kind} annotation matching {w:?}, got {got:?}"));
        }
    }
    for g in got {
        if !want.iter().any(|w| msg_matches(w, g)) {
            return Err(format!("unexpected {kind} annotation {g:?}"));
        }
    }
    Ok(())
}

/// Checks a successful result's value against the expectations.
pub(crate) fn check_value(ev: &Eval, value: &Value) -> Result<(), String> {
    if let Some(s) = &ev.string {
        return match value {
            Value::String { s: got, .. } if got == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    if let Some(want) = ev.scalar {
        return match value {
            Value::Scalar { v, .. } if float_eq(*v, want) => Ok(()),
            other => Err(format!("expected scalar {want}, got {other:?}")),
        };
    }
    match (ev.kind, ev.range_vector) {
        (EvalKind::Range { start, step, .. }, _) | (_, Some((start, _, step))) => {
            check_matrix(&ev.results, start, step, value)
        }
        (EvalKind::Instant { .. }, None) => check_vector(&ev.results, ev.ordered, value),
    }
}

fn check_vector(want: &[SeriesLine], ordered: bool, value: &Value) -> Result<(), String> {
    let got = match value {
        Value::Vector(v) => v,
        Value::Matrix(m) if want.is_empty() && m.is_empty() => return Ok(()),
        other => return Err(format!("expected an instant vector, got {other:?}")),
    };
    for w in want {
        if w.points.len() != 1 {
            return Err(format!(
                "expected result {} must have exactly one value",
                fmt_labels(&w.labels)
            ));
        }
    }
    if got.len() != want.len() {
        return Err(format!(
            "expected {} samples, got {}: {}",
            want.len(),
            got.len(),
            got.iter()
                .map(|s| format!("{} {}", fmt_labels(&s.labels), s.v))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (i, w) in want.iter().enumerate() {
        let pos = if ordered {
            if got[i].labels != w.labels {
                return Err(format!(
                    "expected {} at position {i}, got {}",
                    fmt_labels(&w.labels),
                    fmt_labels(&got[i].labels)
                ));
            }
            i
        } else {
            match got.iter().position(|s| s.labels == w.labels) {
                Some(p) => p,
                None => {
                    return Err(format!(
                        "expected series {} not in result {}",
                        fmt_labels(&w.labels),
                        got.iter().map(|s| fmt_labels(&s.labels)).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        };
        match &w.points[0] {
            Point::Float(f) if float_eq(*f, got[pos].v) => {}
            Point::Float(f) => {
                return Err(format!("{}: expected {f}, got {}", fmt_labels(&w.labels), got[pos].v));
            }
            other => return Err(format!("unsupported expected value {other:?}")),
        }
    }
    Ok(())
}

fn check_matrix(want: &[SeriesLine], start: i64, step: i64, value: &Value) -> Result<(), String> {
    let got = match value {
        Value::Matrix(m) => m,
        Value::Vector(v) if want.is_empty() && v.is_empty() => return Ok(()),
        other => return Err(format!("expected a matrix, got {other:?}")),
    };
    for w in 1..got.len() {
        if basin_proto::labels::cmp_labels(&got[w - 1].labels, &got[w].labels)
            != std::cmp::Ordering::Less
        {
            return Err("matrix is not sorted by labels".to_string());
        }
    }
    if got.len() != want.len() {
        return Err(format!(
            "expected {} series, got {}: {}",
            want.len(),
            got.len(),
            got.iter()
                .map(|s| format!("{} {:?}", fmt_labels(&s.labels), s.points))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    for w in want {
        let Some(g) = got.iter().find(|s| s.labels == w.labels) else {
            return Err(format!("expected series {} not in result", fmt_labels(&w.labels)));
        };
        let mut expected = Vec::new();
        for (i, p) in w.points.iter().enumerate() {
            match p {
                Point::Missing => {}
                Point::Float(f) => expected.push((start + i as i64 * step, *f)),
                Point::Histogram => return Err("histogram expectations not supported".into()),
            }
        }
        let same = expected.len() == g.points.len()
            && expected.iter().zip(g.points.iter()).all(|(a, b)| a.0 == b.0 && float_eq(a.1, b.1));
        if !same {
            return Err(format!(
                "{}: expected points {:?}, got {:?}",
                fmt_labels(&w.labels),
                expected,
                g.points
            ));
        }
    }
    Ok(())
}
