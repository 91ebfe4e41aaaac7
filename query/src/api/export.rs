//! VictoriaMetrics' raw sample export, `GET|POST /api/v1/export`.
//!
//! Parameters: `match[]` (one or more series selectors, required), `start` and `end` (as the
//! other endpoints parse them; default all time). The answer is JSON lines, one series per
//! line, sorted by labels:
//! `{"metric":{"__name__":"x","job":"y"},"values":[1,2.5],"timestamps":[1700000000000,1700000015000]}`.
//! Samples are the stored ones (no lookback, no dedup beyond storage's own); staleness markers
//! are left out, as VictoriaMetrics does, and series left without samples are skipped. Values
//! are JSON numbers, except a NaN (`null`) and infinities (`"Infinity"`, `"-Infinity"`), as
//! VictoriaMetrics writes them. The body is streamed a batch of series at a time.

use super::{Answer, ApiError, QueryApi, Request, json};
use crate::fanout::merge_series;
use crate::source::{SeriesSource, SourceError};
use basin_proto::is_stale_nan;
use basin_proto::node::SharedSeries;
use basin_proto::storage::SelectHints;

impl QueryApi {
    pub(super) async fn export(&self, req: &Request) -> Result<Answer, ApiError> {
        let p = &req.params;
        let (sets, start, end) = p.required_matches_in_range()?;
        let deadline = self.deadline(p)?;
        let src = self.source(&req.tenant);
        let hints = SelectHints::default();
        let select_all = async {
            let mut answers = Vec::with_capacity(sets.len());
            for set in &sets {
                let selected = src.select(set, start, end, &hints).await?;
                for w in &selected.warnings {
                    tracing::warn!(tenant = %req.tenant, warning = %w, "export is partial");
                }
                answers.push(selected.series);
            }
            Ok::<_, SourceError>(answers)
        };
        let answers = match tokio::time::timeout(deadline, select_all).await {
            Ok(answers) => answers?,
            Err(_) => return Err(ApiError::Timeout("export timed out in storage select".into())),
        };
        // Several selectors may match the same series: one line each, as VictoriaMetrics.
        Ok(Answer::export(merge_series(answers)))
    }
}

/// Appends one series as an export line (with its `\n`); nothing when it has no sample
/// besides staleness markers.
pub(super) fn write_line(out: &mut String, s: &SharedSeries) {
    let mut live = s.samples.iter().filter(|x| !is_stale_nan(x.value)).peekable();
    if live.peek().is_none() {
        return;
    }
    out.push_str(r#"{"metric":"#);
    json::write_labels(out, &s.labels);
    out.push_str(r#","values":["#);
    for (i, x) in live.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_number(out, x.value);
    }
    out.push_str(r#"],"timestamps":["#);
    let timestamps = s.samples.iter().filter(|x| !is_stale_nan(x.value));
    for (i, x) in timestamps.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_i64(out, x.timestamp_ms);
    }
    out.push_str("]}\n");
}

/// A value as a JSON number (Go's shortest formatting, as VictoriaMetrics writes it), or the
/// JSON stand-ins VictoriaMetrics uses for NaN and the infinities.
fn write_number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("null");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" });
    } else {
        json::write_value(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basin_proto::storage::{Label, Sample};
    use std::sync::Arc;

    #[test]
    fn lines_skip_stale_markers_and_empty_series() {
        let stale = f64::from_bits(basin_proto::STALE_NAN_BITS);
        let s = |t, v| Sample { timestamp_ms: t, value: v };
        let series = SharedSeries::new(
            Arc::new(vec![
                Label { name: "__name__".into(), value: "x".into() },
                Label { name: "job".into(), value: "a\"b".into() },
            ]),
            vec![
                s(1_000, 1.0),
                s(2_000, 2.5),
                s(3_000, stale),
                s(4_000, f64::NAN),
                s(5_000, f64::NEG_INFINITY),
                s(6_000, 1.5e-7),
                s(-7, 1e21),
            ],
        );
        let mut out = String::new();
        write_line(&mut out, &series);
        assert_eq!(
            out,
            concat!(
                r#"{"metric":{"__name__":"x","job":"a\"b"},"#,
                r#""values":[1,2.5,null,"-Infinity",1.5e-07,1e+21],"#,
                r#""timestamps":[1000,2000,4000,5000,6000,-7]}"#,
                "\n"
            )
        );
        let only_stale = SharedSeries::new(Arc::default(), vec![s(1, stale)]);
        out.clear();
        write_line(&mut out, &only_stale);
        assert_eq!(out, "");
    }
}
