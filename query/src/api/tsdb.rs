//! TSDB status and admin endpoints:
//!
//! - `GET|POST /api/v1/status/tsdb`: Prometheus' cardinality statistics (`headStats` and four
//!   top-N lists of `{name, value}`). Parameters: `limit` (default 10, positive), its
//!   VictoriaMetrics alias `topN`, and VictoriaMetrics' `date=YYYY-MM-DD` (that day's series
//!   instead of all series). Replicas are merged as [`FanoutSource::tsdb_status`] describes.
//! - `POST|PUT /api/v1/admin/tsdb/delete_series?match[]=…&start=…&end=…`: deletes on every
//!   storage node; 204 when all of them did it.
//! - `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: 204. Basin deletes in place (no
//!   tombstones), so there is nothing to clean.
//!
//! [`FanoutSource::tsdb_status`]: crate::fanout::FanoutSource::tsdb_status

use super::params;
use super::{Answer, ApiError, QueryApi, Request, json};
use basin_proto::storage::{StatEntry, TsdbStatusResponse};

/// Milliseconds in a day (the `date` parameter's range).
const DAY_MS: i64 = 86_400_000;

/// Entries per list when the request sets no `limit` (Prometheus' default).
const DEFAULT_LIMIT: usize = 10;

impl QueryApi {
    pub(super) async fn tsdb_status(&self, req: &Request) -> Result<Answer, ApiError> {
        let p = &req.params;
        let limit = status_limit(p)?;
        let (start, end) = match p.get("date") {
            "" => (0, 0),
            d => date_range(d)?,
        };
        let (status, warnings) = self.source(&req.tenant).tsdb_status(start, end, limit).await?;
        let mut data = String::new();
        write_status(&mut data, &status);
        let mut answer = Answer::data(data);
        answer.warnings = warnings;
        Ok(answer)
    }

    pub(super) async fn delete_series(&self, req: &Request) -> Result<Answer, ApiError> {
        let p = &req.params;
        let (sets, start, end) = p.required_matches_in_range()?;
        let done = self.source(&req.tenant).delete_series(&sets, start, end).await?;
        tracing::info!(
            tenant = %req.tenant,
            matchers = ?p.all("match[]"),
            start,
            end,
            samples = done.samples_deleted,
            series_removed = done.series_removed,
            "delete_series"
        );
        Ok(Answer::no_content())
    }
}

/// `limit` (or VictoriaMetrics' `topN`): a positive integer, 10 when absent.
fn status_limit(p: &params::Params) -> Result<usize, ApiError> {
    let (name, v) = match (p.get("limit"), p.get("topN")) {
        ("", "") => return Ok(DEFAULT_LIMIT),
        ("", v) => ("topN", v),
        (v, _) => ("limit", v),
    };
    match v.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Err(ApiError::BadData(format!("{name} must be a positive number"))),
    }
}

/// `YYYY-MM-DD` as the inclusive millisecond range of that UTC day.
fn date_range(date: &str) -> Result<(i64, i64), ApiError> {
    let bad = || ApiError::invalid_param("date", format!("cannot parse {date:?} as YYYY-MM-DD"));
    if date.len() != 10 {
        return Err(bad());
    }
    let start = params::parse_time(&format!("{date}T00:00:00Z")).map_err(|_| bad())?;
    Ok((start, start + DAY_MS - 1))
}

fn write_list(out: &mut String, key: &str, entries: &[StatEntry]) {
    out.push(',');
    json::write_str(out, key);
    out.push_str(":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"name":"#);
        json::write_str(out, &e.name);
        out.push_str(&format!(r#","value":{}}}"#, e.value));
    }
    out.push(']');
}

/// Prometheus' `TSDBStatus` object. Basin has no head chunks to count: `chunkCount` is 0;
/// `minTime`/`maxTime` are day-granular bounds of the data (MaxInt64/MinInt64 when empty,
/// as an empty Prometheus head reports).
fn write_status(out: &mut String, s: &TsdbStatusResponse) {
    out.push_str(&format!(
        r#"{{"headStats":{{"numSeries":{},"numLabelPairs":{},"chunkCount":0,"minTime":{},"maxTime":{}}}"#,
        s.num_series, s.num_label_pairs, s.min_time_ms, s.max_time_ms
    ));
    write_list(out, "seriesCountByMetricName", &s.series_count_by_metric_name);
    write_list(out, "labelValueCountByLabelName", &s.label_value_count_by_label_name);
    write_list(out, "memoryInBytesByLabelName", &s.memory_in_bytes_by_label_name);
    write_list(out, "seriesCountByLabelValuePair", &s.series_count_by_label_value_pair);
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use params::Params;

    #[test]
    fn limit_and_date_parameters() {
        let p = |pairs: &[(&str, &str)]| Params::from_pairs(pairs.iter().copied());
        assert_eq!(status_limit(&p(&[])).unwrap(), 10);
        assert_eq!(status_limit(&p(&[("limit", "3")])).unwrap(), 3);
        assert_eq!(status_limit(&p(&[("topN", "4")])).unwrap(), 4);
        assert_eq!(status_limit(&p(&[("limit", "5"), ("topN", "4")])).unwrap(), 5);
        for bad in ["0", "-1", "x", "1.5"] {
            let e = status_limit(&p(&[("limit", bad)])).unwrap_err();
            assert_eq!(e, ApiError::BadData("limit must be a positive number".into()));
        }
        assert_eq!(date_range("2023-11-14").unwrap(), (1_699_920_000_000, 1_700_006_399_999));
        assert!(date_range("2023-11-14T00:00:00Z").is_err());
        assert!(date_range("yesterday").is_err());
    }

    #[test]
    fn status_json_has_prometheus_shape() {
        let s = TsdbStatusResponse {
            num_series: 3,
            num_label_pairs: 4,
            min_time_ms: 1000,
            max_time_ms: 2000,
            series_count_by_metric_name: vec![StatEntry { name: "up".into(), value: 3 }],
            label_value_count_by_label_name: vec![],
            memory_in_bytes_by_label_name: vec![StatEntry { name: "job".into(), value: 12 }],
            series_count_by_label_value_pair: vec![
                StatEntry { name: "job=\"x\"".into(), value: 2 },
                StatEntry { name: "a=b".into(), value: 1 },
            ],
        };
        let mut out = String::new();
        write_status(&mut out, &s);
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({
                "headStats": {"numSeries": 3, "numLabelPairs": 4, "chunkCount": 0,
                              "minTime": 1000, "maxTime": 2000},
                "seriesCountByMetricName": [{"name": "up", "value": 3}],
                "labelValueCountByLabelName": [],
                "memoryInBytesByLabelName": [{"name": "job", "value": 12}],
                "seriesCountByLabelValuePair": [{"name": "job=\"x\"", "value": 2},
                                                {"name": "a=b", "value": 1}],
            })
        );
    }
}
