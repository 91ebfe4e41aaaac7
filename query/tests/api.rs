//! The Prometheus HTTP API and the storage fan-out, driven through the axum router with
//! in-memory storage nodes (the end-to-end tests in `/tests` use real processes).
//!
//! The PromQL engine is replaced by [`SelectorEngine`], which evaluates bare selectors,
//! number and string literals only: enough to see fan-out, merge, warnings and encoding, and
//! independent of the real engine's progress. Expected answers are worked out by hand.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use basin_proto::node::{SharedSeries, StorageNode};
use basin_proto::storage::{
    Label, LabelNamesRequest, LabelValuesRequest, MatcherSet, Sample as WireSample, SelectHints,
    SelectRequest, Series as WireSeries, SeriesRequest, WriteRequest, WriteResponse,
};
use basin_query::api::{QueryApi, QueryConfig, QueryEngine, params, router};
use basin_query::fanout::{FanoutOptions, FanoutSource};
use basin_query::metrics::QueryMetrics;
use basin_query::promql::{Annotated, EvalError, QueryResult, Sample, Series, Value};
use basin_query::source::{SeriesSource, SourceError};
use prometheus_client::registry::Registry;
use promql_parser::label::{MatchOp, Matcher as PromMatcher};
use promql_parser::parser::{Expr, VectorSelector};
use serde_json::{Value as Json, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::Status;
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------------
// In-memory storage node
// ---------------------------------------------------------------------------------------------

/// A storage node holding `(tenant, series)` in memory; can be made to fail or to stall.
#[derive(Debug)]
struct MemNode {
    name: String,
    data: Vec<(String, WireSeries)>,
    fail: Option<Status>,
    stall: Option<Duration>,
    calls: AtomicUsize,
}

impl MemNode {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            data: Vec::new(),
            fail: None,
            stall: None,
            calls: AtomicUsize::new(0),
        }
    }

    fn with(mut self, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Self {
        self.data.push((String::new(), series(labels, samples)));
        self
    }

    fn with_tenant(
        mut self,
        tenant: &str,
        labels: &[(&str, &str)],
        samples: &[(i64, f64)],
    ) -> Self {
        self.data.push((tenant.into(), series(labels, samples)));
        self
    }

    fn down(mut self) -> Self {
        self.fail = Some(Status::unavailable("connection refused"));
        self
    }

    fn stalled(mut self, d: Duration) -> Self {
        self.stall = Some(d);
        self
    }

    async fn enter(&self) -> Result<(), Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(d) = self.stall {
            tokio::time::sleep(d).await;
        }
        match &self.fail {
            Some(s) => Err(s.clone()),
            None => Ok(()),
        }
    }

    /// Series of `tenant` matching any of `sets` (all series when `sets` is empty).
    fn matching<'a>(&'a self, tenant: &str, sets: &[MatcherSet]) -> Vec<&'a WireSeries> {
        let compiled: Vec<Vec<basin_proto::matcher::Matcher>> = sets
            .iter()
            .map(|s| basin_proto::matcher::Matcher::compile_all(&s.matchers).expect("valid regex"))
            .collect();
        self.data
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, s)| s)
            .filter(|s| {
                compiled.is_empty()
                    || compiled.iter().any(|set| set.iter().all(|m| m.matches_labels(&s.labels)))
            })
            .collect()
    }
}

fn label(name: &str, value: &str) -> Label {
    Label { name: name.into(), value: value.into() }
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> WireSeries {
    let mut labels: Vec<Label> = labels.iter().map(|(n, v)| label(n, v)).collect();
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    WireSeries {
        labels,
        samples: samples.iter().map(|&(t, v)| WireSample { timestamp_ms: t, value: v }).collect(),
    }
}

fn limited<T>(mut v: Vec<T>, limit: u64) -> Vec<T> {
    if limit > 0 {
        v.truncate(limit as usize);
    }
    v
}

#[async_trait]
impl StorageNode for MemNode {
    fn name(&self) -> &str {
        &self.name
    }

    async fn write(&self, _req: WriteRequest) -> Result<WriteResponse, Status> {
        Err(Status::unimplemented("read-only test node"))
    }

    async fn select(&self, req: SelectRequest) -> Result<Vec<SharedSeries>, Status> {
        self.enter().await?;
        let set = [MatcherSet { matchers: req.matchers.clone() }];
        Ok(self
            .matching(&req.tenant, &set)
            .into_iter()
            .map(|s| SharedSeries {
                labels: Arc::new(s.labels.clone()),
                samples: s
                    .samples
                    .iter()
                    .filter(|x| x.timestamp_ms >= req.start_ms && x.timestamp_ms <= req.end_ms)
                    .cloned()
                    .collect(),
                facts: None,
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }

    async fn label_names(&self, req: LabelNamesRequest) -> Result<Vec<String>, Status> {
        self.enter().await?;
        let mut names: Vec<String> = self
            .matching(&req.tenant, &req.matchers)
            .into_iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(limited(names, req.limit))
    }

    async fn label_values(&self, req: LabelValuesRequest) -> Result<Vec<String>, Status> {
        self.enter().await?;
        let mut values: Vec<String> = self
            .matching(&req.tenant, &req.matchers)
            .into_iter()
            .flat_map(|s| s.labels.iter().filter(|l| l.name == req.name).map(|l| l.value.clone()))
            .collect();
        values.sort();
        values.dedup();
        Ok(limited(values, req.limit))
    }

    async fn series(&self, req: SeriesRequest) -> Result<Vec<WireSeries>, Status> {
        self.enter().await?;
        let out = self
            .matching(&req.tenant, &req.matchers)
            .into_iter()
            .map(|s| WireSeries { labels: s.labels.clone(), samples: Vec::new() })
            .collect();
        Ok(limited(out, req.limit))
    }
}

// ---------------------------------------------------------------------------------------------
// A selector-only engine
// ---------------------------------------------------------------------------------------------

const LOOKBACK_MS: i64 = 300_000;

/// Evaluates number/string literals and bare vector selectors (last sample within 5m);
/// `exec_error` fails with an execution error and `slow` sleeps for a second.
#[derive(Debug)]
struct SelectorEngine;

fn wire_matchers(vs: &VectorSelector) -> Vec<basin_proto::storage::Matcher> {
    let name = vs.name.as_ref().map(|n| PromMatcher::new(MatchOp::Equal, "__name__", n));
    name.iter().chain(vs.matchers.matchers.iter()).map(params::to_wire).collect()
}

async fn eval_selector(
    src: &dyn SeriesSource,
    vs: &VectorSelector,
    times: &[i64],
) -> Result<(Vec<Series>, Vec<String>), EvalError> {
    match vs.name.as_deref() {
        Some("exec_error") => {
            return Err(EvalError::Execution("many-to-many matching not allowed".into()));
        }
        Some("slow") => tokio::time::sleep(Duration::from_secs(1)).await,
        _ => {}
    }
    let (first, last) = (times[0], times[times.len() - 1]);
    let selected =
        src.select(&wire_matchers(vs), first - LOOKBACK_MS, last, &SelectHints::default()).await?;
    let mut out = Vec::new();
    for s in selected.series {
        let points: Vec<(i64, f64)> = times
            .iter()
            .filter_map(|&t| {
                s.samples
                    .iter()
                    .rev()
                    .find(|x| x.timestamp_ms <= t && x.timestamp_ms > t - LOOKBACK_MS)
                    .map(|x| (t, x.value))
            })
            .collect();
        if !points.is_empty() {
            out.push(Series { labels: Arc::unwrap_or_clone(s.labels), points });
        }
    }
    Ok((out, selected.warnings))
}

#[async_trait]
impl QueryEngine for SelectorEngine {
    async fn instant(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        t: i64,
    ) -> Result<Annotated, EvalError> {
        let expr = promql_parser::parser::parse(query).map_err(EvalError::BadData)?;
        let (value, warnings) = match expr {
            Expr::NumberLiteral(n) => (Value::Scalar { t, v: n.val }, Vec::new()),
            Expr::StringLiteral(s) => (Value::String { t, s: s.val }, Vec::new()),
            Expr::VectorSelector(vs) => {
                let (series, warnings) = eval_selector(src, &vs, &[t]).await?;
                let samples = series
                    .into_iter()
                    .map(|s| Sample { labels: s.labels, t: s.points[0].0, v: s.points[0].1 })
                    .collect();
                (Value::Vector(samples), warnings)
            }
            _ => {
                return Err(EvalError::Execution("unsupported by the test engine".into()));
            }
        };
        Ok(Annotated { result: QueryResult { value, warnings }, infos: Vec::new() })
    }

    async fn range(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Annotated, EvalError> {
        let Ok(Expr::VectorSelector(vs)) = promql_parser::parser::parse(query) else {
            return Err(EvalError::Execution("unsupported by the test engine".into()));
        };
        let times: Vec<i64> = (0..).map(|i| start + i * step).take_while(|&t| t <= end).collect();
        let (series, warnings) = eval_selector(src, &vs, &times).await?;
        let result = QueryResult { value: Value::Matrix(series), warnings };
        Ok(Annotated { result, infos: Vec::new() })
    }
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

struct Harness {
    app: axum::Router,
    registry: Registry,
}

fn harness(cfg: QueryConfig, nodes: Vec<MemNode>) -> Harness {
    let mut registry = Registry::default();
    let metrics = QueryMetrics::register(&mut registry);
    let nodes: Vec<Arc<dyn StorageNode>> =
        nodes.into_iter().map(|n| Arc::new(n) as Arc<dyn StorageNode>).collect();
    let api = QueryApi::with_engine(cfg, nodes, metrics, Arc::new(SelectorEngine));
    Harness { app: router(Arc::new(api)), registry }
}

/// A typical cluster: RF 2 over three nodes; `up{job="api"}` on nodes a and b (with a sample
/// only b has, and one duplicate timestamp), `up{job="db"}` on b and c, tenant `t1`'s series
/// on c only.
fn cluster() -> Vec<MemNode> {
    let api = [("__name__", "up"), ("job", "api"), ("instance", "a:9100")];
    let db = [("__name__", "up"), ("job", "db"), ("instance", "b:9100")];
    vec![
        MemNode::new("node-a").with(&api, &[(1_000_000, 1.0), (1_015_000, 1.0)]),
        MemNode::new("node-b")
            .with(&api, &[(1_015_000, 1.0), (1_030_500, 0.0)])
            .with(&db, &[(1_000_000, 0.5), (1_030_000, 1e-7)]),
        MemNode::new("node-c").with(&db, &[(1_000_000, 0.5), (1_030_000, 1e-7)]).with_tenant(
            "t1",
            &[("__name__", "up"), ("job", "secret")],
            &[(1_000_000, 42.0)],
        ),
    ]
}

fn rf2() -> QueryConfig {
    QueryConfig { replication_factor: 2, ..QueryConfig::default() }
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Json, String) {
        let resp = self.app.clone().oneshot(req).await.expect("router is infallible");
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24).await.expect("body");
        let text = String::from_utf8(body.to_vec()).expect("utf-8 body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), content-type {ct}: {text}"));
        assert_eq!(ct, "application/json", "{text}");
        (status, json, text)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Json, String) {
        self.send(Request::get(uri).body(Body::empty()).expect("request")).await
    }

    async fn get_as(&self, tenant: &str, uri: &str) -> (StatusCode, Json, String) {
        let req =
            Request::get(uri).header("X-Scope-OrgID", tenant).body(Body::empty()).expect("req");
        self.send(req).await
    }

    async fn post(&self, uri: &str, form: &str) -> (StatusCode, Json, String) {
        let req = Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .expect("request");
        self.send(req).await
    }

    fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text
    }
}

/// Asserts a Prometheus error envelope.
fn assert_error(got: (StatusCode, Json, String), status: StatusCode, kind: &str, msg: &str) {
    let (s, j, text) = got;
    assert_eq!(s, status, "{text}");
    assert_eq!(j["status"], "error", "{text}");
    assert_eq!(j["errorType"], kind, "{text}");
    let err = j["error"].as_str().unwrap_or_default();
    assert!(err.contains(msg), "error {err:?} does not contain {msg:?}");
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn instant_query_merges_replicas_and_encodes_like_prometheus() {
    let h = harness(rf2(), cluster());
    // At t=1030.5 s: api's last sample is 0 at 1030.5 (only on node b); db's is 1e-7 at 1030.
    let (s, _, text) = h.get("/api/v1/query?query=up&time=1030.5").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        text,
        concat!(
            r#"{"status":"success","data":{"resultType":"vector","result":["#,
            r#"{"metric":{"__name__":"up","instance":"a:9100","job":"api"},"value":[1030.500,"0"]},"#,
            r#"{"metric":{"__name__":"up","instance":"b:9100","job":"db"},"value":[1030.500,"1e-07"]}"#,
            r#"]}}"#
        )
    );
}

#[tokio::test]
async fn instant_query_by_form_post_and_rfc3339_time() {
    let h = harness(rf2(), cluster());
    // 1970-01-01T00:16:55Z = 1015 s.
    let (s, j, _) =
        h.post("/api/v1/query", "query=up%7Bjob%3D%22db%22%7D&time=1970-01-01T00%3A16%3A55Z").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        j["data"],
        json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "instance": "b:9100", "job": "db"}, "value": [1015, "0.5"]}
        ]})
    );
}

#[tokio::test]
async fn scalar_and_string_results() {
    let h = harness(rf2(), cluster());
    let (_, _, text) = h.get("/api/v1/query?query=-Inf&time=10").await;
    assert_eq!(text, r#"{"status":"success","data":{"resultType":"scalar","result":[10,"-Inf"]}}"#);
    let (_, _, text) = h.get("/api/v1/query?query=%22hi%22&time=10.25").await;
    assert_eq!(
        text,
        r#"{"status":"success","data":{"resultType":"string","result":[10.250,"hi"]}}"#
    );
}

#[tokio::test]
async fn range_query_returns_matrix_with_deduplicated_points() {
    let h = harness(rf2(), cluster());
    let (s, j, _) = h
        .get("/api/v1/query_range?query=up%7Bjob%3D%22api%22%7D&start=1000&end=1030&step=15s")
        .await;
    assert_eq!(s, StatusCode::OK);
    // Steps 1000, 1015, 1030: samples 1@1000 (a), 1@1015 (a and b, one kept); at 1030 the last
    // sample is still 1@1015 (1030.5 is after the step).
    assert_eq!(
        j["data"],
        json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "up", "instance": "a:9100", "job": "api"},
             "values": [[1000, "1"], [1015, "1"], [1030, "1"]]}
        ]})
    );
}

#[tokio::test]
async fn range_query_parameter_errors() {
    let h = harness(rf2(), cluster());
    assert_error(
        h.get("/api/v1/query_range?query=up&start=10&end=5&step=1").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "end timestamp must not be before start time",
    );
    for step in ["0", "-1", "-5s"] {
        let uri = format!("/api/v1/query_range?query=up&start=0&end=5&step={step}");
        let got = h.get(&uri).await;
        if step == "-5s" {
            // Prometheus durations cannot be negative: a parse error.
            assert_error(got, StatusCode::BAD_REQUEST, "bad_data", r#"invalid parameter "step""#);
        } else {
            assert_error(
                got,
                StatusCode::BAD_REQUEST,
                "bad_data",
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            );
        }
    }
    // 11001 points: (11001 - 0) / 1 > 11000.
    let (s, j, _) = h.get("/api/v1/query_range?query=up&start=0&end=11001&step=1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        j,
        json!({"status": "error", "errorType": "bad_data",
               "error": "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"})
    );
    // Exactly 11000 steps is allowed.
    let (s, _, _) = h.get("/api/v1/query_range?query=up&start=0&end=11000&step=1").await;
    assert_eq!(s, StatusCode::OK);
    assert_error(
        h.get("/api/v1/query_range?query=up&start=x&end=5&step=1").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "start": cannot parse "x" to a valid timestamp"#,
    );
    assert_error(
        h.get("/api/v1/query_range?query=up&start=0&end=5&step=abc").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "step": cannot parse "abc" to a valid duration"#,
    );
    assert_error(
        h.get("/api/v1/query_range?query=up&start=0&end=5").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "step": cannot parse "" to a valid duration"#,
    );
}

#[tokio::test]
async fn query_errors_map_to_prometheus_types_and_codes() {
    let h = harness(rf2(), cluster());
    let (s, j, _) = h.get("/api/v1/query?query=up&time=abc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        j["error"],
        r#"invalid parameter "time": invalid time value for 'time': cannot parse "abc" to a valid timestamp"#
    );
    assert_error(
        h.get("/api/v1/query?query=sum(").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "query": "#,
    );
    assert_error(
        h.get("/api/v1/query").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "query": "#,
    );
    assert_error(
        h.get("/api/v1/query?query=exec_error").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        "many-to-many matching not allowed",
    );
    assert_error(
        h.get("/api/v1/query?query=slow&timeout=50ms").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "query timed out",
    );
    assert_error(
        h.get("/api/v1/query?query=up&timeout=soon").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#,
    );
}

#[tokio::test]
async fn tenant_header_selects_the_tenant() {
    let h = harness(rf2(), cluster());
    let (_, j, _) = h.get_as("t1", "/api/v1/query?query=up&time=1000").await;
    assert_eq!(
        j["data"]["result"],
        json!([{"metric": {"__name__": "up", "job": "secret"}, "value": [1000, "42"]}])
    );
    // The default tenant does not see it.
    let (_, j, _) = h.get("/api/v1/query?query=up%7Bjob%3D%22secret%22%7D&time=1000").await;
    assert_eq!(j["data"]["result"], json!([]));
    assert_error(
        h.get_as("a/b", "/api/v1/labels").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "invalid tenant",
    );
}

// ---------------------------------------------------------------------------------------------
// Missing storage nodes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fewer_failed_nodes_than_rf_is_a_complete_answer() {
    let mut nodes = cluster();
    nodes[0] = MemNode::new("node-a").down();
    let h = harness(rf2(), nodes);
    let (s, j, _) = h.get("/api/v1/query?query=up&time=1015").await;
    assert_eq!(s, StatusCode::OK);
    // Complete, and says so (the node is named, the answer is not partial).
    assert_eq!(
        j["warnings"],
        json!(["storage node node-a unavailable: unavailable: connection refused; the answer is \
             complete (1 of 3 nodes failed, replication factor 2)"]),
        "{j}"
    );
    // b still has api's 1@1015.
    assert_eq!(j["data"]["result"].as_array().map(Vec::len), Some(2));
    assert!(
        h.metrics_text().contains(r#"basin_query_storage_node_errors_total{node="node-a"} 1"#),
        "{}",
        h.metrics_text()
    );
}

#[tokio::test]
async fn rf_failed_nodes_warn_with_partial_response() {
    let mut nodes = cluster();
    nodes[0] = MemNode::new("node-a").down();
    let h = harness(QueryConfig { replication_factor: 1, ..QueryConfig::default() }, nodes);
    let (s, j, _) = h.get("/api/v1/query?query=up&time=1015").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        j["warnings"],
        json!(["storage node node-a unavailable: unavailable: connection refused"])
    );
    // Same for the metadata endpoints.
    let (s, j, _) = h.get("/api/v1/labels").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["data"], json!(["__name__", "instance", "job"]));
    assert_eq!(
        j["warnings"],
        json!(["storage node node-a unavailable: unavailable: connection refused"])
    );
}

#[tokio::test]
async fn rf_failed_nodes_fail_without_partial_response() {
    let mut nodes = cluster();
    nodes[1] = MemNode::new("node-b").down();
    nodes[2] = MemNode::new("node-c").stalled(Duration::from_secs(5));
    let cfg = QueryConfig {
        replication_factor: 2,
        partial_response: false,
        node_timeout: Duration::from_millis(100),
        ..QueryConfig::default()
    };
    let h = harness(cfg, nodes);
    let (s, j, _) = h.get("/api/v1/query?query=up&time=1015").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(j["errorType"], "unavailable");
    assert_eq!(
        j["error"],
        "storage unavailable: storage node node-b unavailable: unavailable: connection refused; \
         storage node node-c unavailable: timed out after 100ms"
    );
    assert_error(
        h.get("/api/v1/series?match%5B%5D=up").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "storage node node-b unavailable",
    );
}

#[tokio::test]
async fn all_nodes_down_is_an_error_even_with_partial_response() {
    let nodes = vec![MemNode::new("n1").down(), MemNode::new("n2").down()];
    let h = harness(QueryConfig::default(), nodes);
    assert_error(
        h.get("/api/v1/query?query=up").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "storage node n1 unavailable: unavailable: connection refused; storage node n2",
    );
}

// ---------------------------------------------------------------------------------------------
// Series and label APIs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn series_requires_match_and_unions_selectors() {
    let h = harness(rf2(), cluster());
    assert_error(
        h.get("/api/v1/series").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "no match[] parameter provided",
    );
    assert_error(
        h.get("/api/v1/series?match%5B%5D=up%7B").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "match[]": "#,
    );
    assert_error(
        h.get("/api/v1/series?match%5B%5D=%7Bjob%3D~%22.*%22%7D").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        "non-empty matcher",
    );
    let (s, j, _) = h
        .post(
            "/api/v1/series",
            "match%5B%5D=up%7Bjob%3D%22api%22%7D&match%5B%5D=%7Binstance%3D~%22b.*%22%7D",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        j,
        json!({"status": "success", "data": [
            {"__name__": "up", "instance": "a:9100", "job": "api"},
            {"__name__": "up", "instance": "b:9100", "job": "db"}
        ]})
    );
    let (_, j, _) = h.get("/api/v1/series?match%5B%5D=up&limit=1").await;
    assert_eq!(j["data"], json!([{"__name__": "up", "instance": "a:9100", "job": "api"}]));
    assert_eq!(j["warnings"], json!(["results truncated due to limit"]));
    assert_error(
        h.get("/api/v1/series?match%5B%5D=up&limit=-1").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "limit": limit must be non-negative"#,
    );
}

#[tokio::test]
async fn label_names_and_values_merge_across_nodes() {
    let h = harness(rf2(), cluster());
    let (_, j, _) = h.get("/api/v1/labels").await;
    assert_eq!(j, json!({"status": "success", "data": ["__name__", "instance", "job"]}));
    let (_, j, _) = h.get("/api/v1/label/job/values").await;
    assert_eq!(j["data"], json!(["api", "db"]));
    let (_, j, _) = h.get("/api/v1/label/instance/values?match%5B%5D=up%7Bjob%3D%22db%22%7D").await;
    assert_eq!(j["data"], json!(["b:9100"]));
    let (_, j, _) = h.get("/api/v1/label/job/values?limit=1").await;
    assert_eq!(j["data"], json!(["api"]));
    assert_eq!(j["warnings"], json!(["results truncated due to limit"]));
    let (_, j, _) = h.get("/api/v1/label/nope/values").await;
    assert_eq!(j["data"], json!([]));
    let (_, j, _) = h.get_as("t1", "/api/v1/label/job/values").await;
    assert_eq!(j["data"], json!(["secret"]));
    assert_error(
        h.get("/api/v1/labels?start=yesterday").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "start""#,
    );
}

// ---------------------------------------------------------------------------------------------
// Small endpoints and metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metadata_exemplars_buildinfo_and_format_query() {
    let h = harness(rf2(), cluster());
    let (_, _, text) = h.get("/api/v1/metadata").await;
    assert_eq!(text, r#"{"status":"success","data":{}}"#);
    let (_, _, text) = h.get("/api/v1/query_exemplars?query=up").await;
    assert_eq!(text, r#"{"status":"success","data":[]}"#);
    let (_, j, _) = h.get("/api/v1/status/buildinfo").await;
    assert_eq!(j["data"]["version"], env!("CARGO_PKG_VERSION"));
    let (_, j, _) = h.get("/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(job)").await;
    assert_eq!(j["data"], "sum by (job) (rate(x[5m]))");
    assert_error(
        h.get("/api/v1/format_query?query=sum(").await,
        StatusCode::BAD_REQUEST,
        "bad_data",
        r#"invalid parameter "query""#,
    );
}

#[tokio::test]
async fn requests_are_counted_per_endpoint_and_code() {
    let h = harness(rf2(), cluster());
    h.get("/api/v1/query?query=up").await;
    h.get("/api/v1/query?query=sum(").await;
    h.get("/api/v1/labels").await;
    let text = h.metrics_text();
    for line in [
        r#"basin_query_http_requests_total{endpoint="query",code="200"} 1"#,
        r#"basin_query_http_requests_total{endpoint="query",code="400"} 1"#,
        r#"basin_query_http_requests_total{endpoint="labels",code="200"} 1"#,
        r#"basin_query_http_request_duration_seconds_count{endpoint="query"} 2"#,
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// With Basin's PromQL engine
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn real_engine_evaluates_over_the_fanout() {
    let mut registry = Registry::default();
    let metrics = QueryMetrics::register(&mut registry);
    let nodes: Vec<Arc<dyn StorageNode>> =
        cluster().into_iter().map(|n| Arc::new(n) as Arc<dyn StorageNode>).collect();
    let app = router(Arc::new(QueryApi::new(rf2(), nodes, metrics)));
    let h = Harness { app, registry };
    // At 1015 s: api = 1 (1@1015 on a and b, merged), db = 0.5 (0.5@1000 on b and c).
    let (s, j, text) = h.get("/api/v1/query?query=sum%20by%20(job)%20(up)&time=1015").await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(
        j["data"],
        json!({"resultType": "vector", "result": [
            {"metric": {"job": "api"}, "value": [1015, "1"]},
            {"metric": {"job": "db"}, "value": [1015, "0.5"]}
        ]})
    );
    let (s, j, text) =
        h.get("/api/v1/query_range?query=up%7Bjob%3D%22db%22%7D&start=1000&end=1030&step=15").await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(
        j["data"]["result"][0]["values"],
        json!([[1000, "0.5"], [1015, "0.5"], [1030, "1e-07"]])
    );
}

// ---------------------------------------------------------------------------------------------
// FanoutSource directly
// ---------------------------------------------------------------------------------------------

fn fanout(nodes: Vec<MemNode>, rf: usize, partial: bool) -> FanoutSource {
    let nodes: Vec<Arc<dyn StorageNode>> =
        nodes.into_iter().map(|n| Arc::new(n) as Arc<dyn StorageNode>).collect();
    let opts = FanoutOptions {
        replication_factor: rf,
        partial_response: partial,
        node_timeout: Duration::from_millis(100),
        ..FanoutOptions::default()
    };
    FanoutSource::new(basin_proto::DEFAULT_TENANT, nodes.into(), opts)
}

fn eq(name: &str, value: &str) -> basin_proto::storage::Matcher {
    basin_proto::matcher::wire(basin_proto::storage::MatchType::Equal, name, value)
}

#[tokio::test]
async fn select_merges_replica_samples_in_time_order() {
    let src = fanout(cluster(), 2, true);
    let got = src
        .select(&[eq("job", "api")], 0, 2_000_000, &SelectHints::default())
        .await
        .expect("all nodes up");
    assert!(got.warnings.is_empty());
    // a: 1000000, 1015000; b: 1015000 (duplicate), 1030500.
    assert_eq!(
        got.series,
        vec![SharedSeries::from(series(
            &[("__name__", "up"), ("job", "api"), ("instance", "a:9100")],
            &[(1_000_000, 1.0), (1_015_000, 1.0), (1_030_500, 0.0)]
        ))]
    );
}

#[tokio::test]
async fn select_counts_failed_nodes_against_rf() {
    let with_down = |i: usize| {
        let mut nodes = cluster();
        nodes[i] = MemNode::new(&format!("node-{i}")).down();
        nodes
    };
    // RF 2, one node down: complete (no error even without partial answers), and says so.
    let got = fanout(with_down(0), 2, false)
        .select(&[eq("__name__", "up")], 0, 2_000_000, &SelectHints::default())
        .await
        .expect("one failure is within RF 2");
    assert_eq!(got.warnings.len(), 1);
    assert!(
        got.warnings[0]
            .ends_with("the answer is complete (1 of 3 nodes failed, replication factor 2)"),
        "{:?}",
        got.warnings
    );
    assert_eq!(got.series.len(), 2);
    // RF 1, one node down, partial: a warning naming the node.
    let got = fanout(with_down(2), 1, true)
        .select(&[eq("__name__", "up")], 0, 2_000_000, &SelectHints::default())
        .await
        .expect("partial answer");
    assert_eq!(
        got.warnings,
        vec!["storage node node-2 unavailable: unavailable: connection refused"]
    );
    // RF 1, one node down, no partial: an error.
    let err = fanout(with_down(2), 1, false)
        .select(&[eq("__name__", "up")], 0, 2_000_000, &SelectHints::default())
        .await
        .expect_err("partial answers refused");
    assert!(matches!(err, SourceError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn request_errors_from_nodes_are_not_availability_problems() {
    let mut bad = MemNode::new("n1");
    bad.fail = Some(Status::invalid_argument("invalid regular expression \"(\" for label \"job\""));
    let err = fanout(vec![bad, MemNode::new("n2")], 2, true)
        .select(&[eq("job", "x")], 0, 1, &SelectHints::default())
        .await
        .expect_err("bad request");
    assert!(matches!(&err, SourceError::BadRequest(m) if m.contains("invalid regular")), "{err:?}");
    let mut limited = MemNode::new("n1");
    limited.fail =
        Some(Status::resource_exhausted("select matched 1000001 series, over max_series 1000000"));
    let err = fanout(vec![limited], 1, true)
        .select(&[eq("job", "x")], 0, 1, &SelectHints::default())
        .await
        .expect_err("limit");
    assert!(matches!(&err, SourceError::Limit(m) if m.contains("max_series")), "{err:?}");
}

#[tokio::test]
async fn label_calls_union_sort_and_limit() {
    let src = fanout(cluster(), 2, true);
    let names = src.label_names(&[], i64::MIN, i64::MAX, 0).await.expect("names");
    assert_eq!(names.value, vec!["__name__", "instance", "job"]);
    assert!(!names.truncated);
    let values = src.label_values("instance", &[], i64::MIN, i64::MAX, 1).await.expect("values");
    assert_eq!(values.value, vec!["a:9100"]);
    assert!(values.truncated);
    let values = src.label_values("instance", &[], i64::MIN, i64::MAX, 2).await.expect("values");
    assert_eq!(values.value, vec!["a:9100", "b:9100"]);
    assert!(!values.truncated);
    let series = src.series(&[vec![eq("job", "db")]], i64::MIN, i64::MAX, 0).await.expect("series");
    assert_eq!(
        series.value,
        vec![series_labels(&[("__name__", "up"), ("instance", "b:9100"), ("job", "db")])]
    );
}

fn series_labels(labels: &[(&str, &str)]) -> Vec<Label> {
    labels.iter().map(|(n, v)| label(n, v)).collect()
}

#[tokio::test]
async fn get_ignores_a_form_body() {
    let h = harness(rf2(), cluster());
    let req = Request::get("/api/v1/query?query=1&time=5")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("query=2"))
        .expect("request");
    let (_, j, _) = h.send(req).await;
    assert_eq!(j["data"]["result"], json!([5, "1"]));
    // POST: the body wins over the URL, as in Prometheus.
    let req = Request::post("/api/v1/query?query=1&time=5")
        .header("content-type", "application/x-www-form-urlencoded; charset=UTF-8")
        .body(Body::from("query=2"))
        .expect("request");
    let (_, j, _) = h.send(req).await;
    assert_eq!(j["data"]["result"], json!([5, "2"]));
}
