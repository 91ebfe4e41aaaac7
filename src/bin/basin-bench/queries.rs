//! The query phase: a fixed PromQL suite over the whole ingested range, each query run
//! several times; the report keeps the median, and from the first run the number of series and
//! points returned, so answers of different stores can be checked against each other.

use serde_json::Value;
use std::time::{Duration, Instant};

/// One query of the suite.
#[derive(Debug, Clone)]
pub(crate) struct QuerySpec {
    /// Short name used in tables and JSON.
    pub(crate) name: &'static str,
    /// PromQL, or for [`Api::Export`] the series selector.
    pub(crate) expr: &'static str,
    /// Endpoint.
    pub(crate) api: Api,
}

/// Which endpoint a query uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `/api/v1/query_range` (Prometheus JSON matrix).
    QueryRange,
    /// `/api/v1/export` (VictoriaMetrics JSON lines, raw samples).
    Export,
}

/// The suite. With the default 20,000 series, `node_cpu_seconds_total` is 10,000 of them.
pub(crate) fn suite(with_export: bool) -> Vec<QuerySpec> {
    let mut q = vec![
        QuerySpec { name: "select_cpu", expr: "node_cpu_seconds_total", api: Api::QueryRange },
        QuerySpec {
            name: "sum_rate_by_job",
            expr: "sum by (job) (rate(node_cpu_seconds_total[5m]))",
            api: Api::QueryRange,
        },
        QuerySpec {
            name: "histogram_p99",
            expr: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
            api: Api::QueryRange,
        },
        QuerySpec {
            name: "topk_rate",
            expr: "topk(10, rate(node_cpu_seconds_total[5m]))",
            api: Api::QueryRange,
        },
        QuerySpec {
            name: "regex_count",
            expr: r#"count by (mode) ({__name__=~"node_cpu_sec.*", instance=~"10\\..*:9100"})"#,
            api: Api::QueryRange,
        },
    ];
    if with_export {
        q.push(QuerySpec { name: "export_cpu", expr: "node_cpu_seconds_total", api: Api::Export });
    }
    q
}

/// Timings and answer size of one query.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryResult {
    /// Median wall time of the successful runs.
    pub(crate) median: Option<Duration>,
    /// Series in the first answer.
    pub(crate) series: usize,
    /// Points (or raw samples for export) in the first answer.
    pub(crate) points: usize,
    /// Why the query failed, if it did.
    pub(crate) error: Option<String>,
}

/// The range every query covers, in seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub(crate) start_s: i64,
    pub(crate) end_s: i64,
    pub(crate) step_s: i64,
}

/// Runs `spec` `repeats` times against `base`; stops at the first failure.
pub(crate) fn run(
    client: &reqwest::blocking::Client,
    base: &str,
    spec: &QuerySpec,
    range: Range,
    repeats: usize,
) -> QueryResult {
    let mut result = QueryResult::default();
    let mut times = Vec::with_capacity(repeats);
    for i in 0..repeats.max(1) {
        let started = Instant::now();
        let body = match fetch(client, base, spec, range) {
            Ok(body) => body,
            Err(e) => {
                result.error = Some(e.to_string());
                break;
            }
        };
        times.push(started.elapsed());
        if i == 0 {
            match count(spec.api, &body) {
                Ok((series, points)) => (result.series, result.points) = (series, points),
                Err(e) => {
                    result.error = Some(e.to_string());
                    break;
                }
            }
        }
    }
    times.sort_unstable();
    result.median = times.get(times.len() / 2).copied();
    result
}

/// One request, the whole body read (reading is part of the time a client waits).
fn fetch(
    client: &reqwest::blocking::Client,
    base: &str,
    spec: &QuerySpec,
    r: Range,
) -> anyhow::Result<Vec<u8>> {
    let (start, end, step) = (r.start_s.to_string(), r.end_s.to_string(), r.step_s.to_string());
    let request = match spec.api {
        Api::QueryRange => client.get(format!("{base}/api/v1/query_range")).query(&[
            ("query", spec.expr),
            ("start", &start),
            ("end", &end),
            ("step", &step),
        ]),
        Api::Export => client.get(format!("{base}/api/v1/export")).query(&[
            ("match[]", spec.expr),
            ("start", &start),
            ("end", &end),
        ]),
    };
    let response = request.send()?;
    let status = response.status();
    let body = response.bytes()?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        anyhow::bail!("{status}: {}", text.trim());
    }
    Ok(body.to_vec())
}

/// (series, points) of an answer.
fn count(api: Api, body: &[u8]) -> anyhow::Result<(usize, usize)> {
    match api {
        Api::QueryRange => {
            let v: Value = serde_json::from_slice(body)?;
            let result = v["data"]["result"]
                .as_array()
                .ok_or_else(|| anyhow::anyhow!("no data.result in the answer"))?;
            let points = result.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum();
            Ok((result.len(), points))
        }
        Api::Export => {
            let mut series = 0;
            let mut points = 0;
            for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let v: Value = serde_json::from_slice(line)?;
                series += 1;
                points += v["values"].as_array().map_or(0, Vec::len);
            }
            Ok((series, points))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_matrix_and_export_answers() {
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"1"],[2,"2"]]},{"metric":{},"values":[[1,"1"]]}]}}"#;
        assert_eq!(count(Api::QueryRange, matrix).unwrap(), (2, 3));
        let export = b"{\"metric\":{},\"values\":[1,2],\"timestamps\":[1,2]}\n{\"metric\":{},\"values\":[3],\"timestamps\":[1]}\n";
        assert_eq!(count(Api::Export, export).unwrap(), (2, 3));
    }
}
