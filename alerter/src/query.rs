//! Instant queries against any Prometheus-compatible HTTP API (`POST /api/v1/query`, form
//! encoded, with `time`; `GET` when the API answers 405), the way rules and the `query`
//! template function read data. Scalars become a one-sample vector without labels (as
//! Prometheus' rule engine does); strings and matrices are errors.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{AlerterError, QueryError};
use crate::labels::Labels;

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: Labels,
    /// Its value.
    pub value: f64,
}

/// A client for `/api/v1/query`.
#[derive(Debug, Clone)]
pub struct QueryClient {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<VectorSample>),
    Scalar((f64, String)),
    String(serde::de::IgnoredAny),
    Matrix(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct VectorSample {
    metric: Labels,
    #[serde(default)]
    value: Option<(f64, String)>,
}

/// Parses a Prometheus API sample value (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Formats a sample value as the Prometheus API does (Go's `strconv.FormatFloat(v, 'f', -1)`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display is the shortest representation that round-trips, without exponent.
        format!("{v}")
    }
}

impl QueryClient {
    /// A client for the API at `base` (`http://host:9090`, with or without a path prefix;
    /// a URL already ending in `/api/v1/query` is used as is).
    /// `headers` go with every request (the tenant header, when querying as a tenant).
    pub fn new(
        base: &str,
        timeout: Duration,
        headers: reqwest::header::HeaderMap,
    ) -> Result<Self, AlerterError> {
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(AlerterError::Config(format!(
                "--query-url {base:?} is not an http(s) URL"
            )));
        }
        let trimmed = base.trim_end_matches('/');
        let url = if trimmed.ends_with("/api/v1/query") {
            trimmed.to_string()
        } else {
            format!("{trimmed}/api/v1/query")
        };
        let http = reqwest::Client::builder()
            .timeout(timeout + Duration::from_secs(1))
            .default_headers(headers)
            .build()?;
        Ok(QueryClient { http, url, timeout })
    }

    /// Evaluates `query` at `at_ms` (milliseconds since the epoch).
    pub async fn instant(&self, query: &str, at_ms: i64) -> Result<Vec<Sample>, QueryError> {
        let time = format!("{}.{:03}", at_ms.div_euclid(1000), at_ms.rem_euclid(1000));
        let timeout = format!("{}ms", self.timeout.as_millis());
        let params = [("query", query), ("time", time.as_str()), ("timeout", timeout.as_str())];
        let mut response = self.http.post(&self.url).form(&params).send().await?;
        // Some Prometheus-compatible APIs only take GET.
        if response.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED {
            response = self.http.get(&self.url).query(&params).send().await?;
        }
        let status = response.status();
        let body = response.bytes().await?;
        let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| {
            if status.is_success() {
                QueryError::Decode(e.to_string())
            } else {
                QueryError::Api {
                    error_type: status.to_string(),
                    message: String::from_utf8_lossy(&body).chars().take(512).collect(),
                }
            }
        })?;
        if envelope.status != "success" {
            return Err(QueryError::Api {
                error_type: envelope.error_type.unwrap_or_else(|| status.to_string()),
                message: envelope.error.unwrap_or_default(),
            });
        }
        match envelope.data {
            Some(Data::Vector(samples)) => Ok(samples
                .into_iter()
                .filter_map(|s| {
                    // Native histogram samples have no `value`; rules on them are not supported.
                    let value = parse_value(&s.value?.1)?;
                    Some(Sample { labels: s.metric, value })
                })
                .collect()),
            Some(Data::Scalar((_, v))) => {
                let value = parse_value(&v)
                    .ok_or_else(|| QueryError::Decode(format!("bad scalar value {v:?}")))?;
                Ok(vec![Sample { labels: Labels::new(), value }])
            }
            Some(Data::String(_)) | Some(Data::Matrix(_)) => {
                Err(QueryError::Decode("rule result is not a vector or scalar".to_string()))
            }
            None => Err(QueryError::Decode("answer has no data".to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert!(parse_value("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_value("1e3"), Some(1000.0));
    }

    #[test]
    fn answers_decode() {
        let e: Envelope = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1.5,"2"]}]}}"#,
        )
        .unwrap();
        assert!(matches!(e.data, Some(Data::Vector(v)) if v.len() == 1));
        let e: Envelope = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"2"]}}"#,
        )
        .unwrap();
        assert!(matches!(e.data, Some(Data::Scalar(_))));
        let e: Envelope = serde_json::from_str(
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .unwrap();
        assert_eq!(e.error_type.as_deref(), Some("bad_data"));
    }
}
