//! Results: the JSON record of one run, its table, and the side-by-side comparison of runs.

use serde_json::{Value, json};
use std::fmt::Write as _;

/// A row of the comparison: label, JSON pointer into a run's record, and a scale factor.
struct Row {
    label: String,
    pointer: String,
    scale: f64,
    decimals: usize,
}

fn rows(records: &[Value]) -> Vec<Row> {
    let row = |label: &str, pointer: &str, scale: f64, decimals: usize| Row {
        label: label.to_string(),
        pointer: pointer.to_string(),
        scale,
        decimals,
    };
    let mut rows = vec![
        row("ingest samples/s (higher is better)", "/ingest/samples_per_s", 1.0, 0),
        row("ingest wall s", "/ingest/wall_s", 1.0, 2),
        row("server CPU-s per M samples (ingest)", "/cpu_s_per_m_samples", 1.0, 3),
        row("flush s", "/flush_s", 1.0, 2),
        row("bytes on disk per sample", "/bytes_per_sample", 1.0, 3),
        row("peak RSS MiB", "/peak_rss_bytes", 1.0 / (1024.0 * 1024.0), 0),
    ];
    // Queries in the order of the first record that has them, then any others.
    let mut names: Vec<String> = Vec::new();
    for r in records {
        for q in r["queries"].as_array().into_iter().flatten() {
            if let Some(n) = q["name"].as_str().filter(|n| !names.iter().any(|m| m == n)) {
                names.push(n.to_string());
            }
        }
    }
    for n in names {
        rows.push(row(
            &format!("query {n} median ms"),
            &format!("/queries_by_name/{n}/median_ms"),
            1.0,
            1,
        ));
        rows.push(row(
            &format!("  {n} answer: series"),
            &format!("/queries_by_name/{n}/series"),
            1.0,
            0,
        ));
        rows.push(row(
            &format!("  {n} answer: points"),
            &format!("/queries_by_name/{n}/points"),
            1.0,
            0,
        ));
    }
    rows
}

/// Adds `queries_by_name` (an object keyed by query name) so rows can address queries by
/// JSON pointer.
fn index_queries(mut record: Value) -> Value {
    let by_name: serde_json::Map<String, Value> = record["queries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| Some((q["name"].as_str()?.to_string(), q.clone())))
        .collect();
    record["queries_by_name"] = Value::Object(by_name);
    record
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "-".to_string(),
    }
}

/// The table of one run (its record is also printed as one JSON line).
pub(crate) fn table(record: &Value) -> String {
    compare(std::slice::from_ref(record))
}

/// Runs side by side; with two or more, a `first/other` ratio column per other run.
pub(crate) fn compare(records: &[Value]) -> String {
    let records: Vec<Value> = records.iter().cloned().map(index_queries).collect();
    let names: Vec<String> = records
        .iter()
        .enumerate()
        .map(|(i, r)| r["name"].as_str().map_or_else(|| format!("run{i}"), str::to_string))
        .collect();
    let mut header: Vec<String> = vec!["metric".to_string()];
    header.extend(names.iter().cloned());
    for other in names.iter().skip(1) {
        header.push(format!("{}/{}", names[0], other));
    }
    let mut lines = vec![header];
    for row in rows(&records) {
        let values: Vec<Option<f64>> = records
            .iter()
            .map(|r| r.pointer(&row.pointer).and_then(Value::as_f64).map(|v| v * row.scale))
            .collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let mut line = vec![row.label.clone()];
        line.extend(values.iter().map(|v| cell(*v, row.decimals)));
        for other in values.iter().skip(1) {
            let ratio = match (values[0], *other) {
                (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                _ => None,
            };
            line.push(cell(ratio, 2));
        }
        lines.push(line);
    }
    let widths: Vec<usize> =
        (0..lines[0].len()).map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in &lines {
        for (c, text) in line.iter().enumerate() {
            if c == 0 {
                let _ = write!(out, "{text:<w$}", w = widths[c]);
            } else {
                let _ = write!(out, "  {text:>w$}", w = widths[c]);
            }
        }
        out.push('\n');
    }
    // Errors under the table, so a missing number is explained.
    for (name, r) in names.iter().zip(&records) {
        if let Some(e) = r["ingest"]["error"].as_str() {
            let _ = writeln!(out, "{name}: ingest: {e}");
        }
        for q in r["queries"].as_array().into_iter().flatten() {
            if let (Some(n), Some(e)) = (q["name"].as_str(), q["error"].as_str()) {
                let _ = writeln!(out, "{name}: query {n}: {e}");
            }
        }
    }
    out
}

/// The record of one run's query as JSON.
pub(crate) fn query_json(
    spec: &crate::queries::QuerySpec,
    result: &crate::queries::QueryResult,
) -> Value {
    json!({
        "name": spec.name,
        "expr": spec.expr,
        "api": format!("{:?}", spec.api),
        "median_ms": result.median.map(|d| d.as_secs_f64() * 1000.0),
        "series": result.series,
        "points": result.points,
        "error": result.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_with_ratios() {
        let a = json!({"name": "basin", "ingest": {"samples_per_s": 2000.0},
            "queries": [{"name": "q", "median_ms": 10.0, "series": 1, "points": 2}]});
        let b = json!({"name": "vm", "ingest": {"samples_per_s": 1000.0},
            "queries": [{"name": "q", "median_ms": 5.0, "series": 1, "points": 2}]});
        let t = compare(&[a, b]);
        assert!(t.contains("basin/vm"), "{t}");
        assert!(t.lines().any(|l| l.starts_with("ingest samples/s") && l.ends_with("2.00")), "{t}");
        assert!(
            t.lines().any(|l| l.starts_with("query q median ms") && l.ends_with("2.00")),
            "{t}"
        );
    }
}
