//! The Prometheus HTTP API of the query node (`/api/v1/...`).
//!
//! Implements the Prometheus HTTP API contract: GET and form-encoded POST on every endpoint,
//! Prometheus' JSON envelope, `errorType`s and status codes (see [`error`]), its parameter
//! parsing (see [`params`]) and its result encoding (see [`json`]).
//!
//! Every request reads one tenant's data (the tenant header, or [`DEFAULT_TENANT`]) through a
//! [`FanoutSource`] over all storage nodes; the PromQL engine sits behind [`QueryEngine`] so
//! the API can be tested without it.

mod engine;
pub mod error;
mod export;
pub mod json;
pub mod params;
mod stream;
mod tsdb;

use crate::fanout::{FanoutOptions, FanoutSource, Merged};
use crate::metrics::QueryMetrics;
use crate::promql::{Annotated, EvalError, Value};
use crate::source::SeriesSource;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use basin_proto::DEFAULT_TENANT;
use basin_proto::node::{SharedSeries, StorageNode};
pub use error::ApiError;
use params::Params;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Settings of the query API.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`, 5m).
    pub lookback_delta: Duration,
    /// Maximum samples one query may hold in memory (`--query.max-samples`).
    pub max_samples: usize,
    /// Maximum wall time of one query (`--query.timeout`, 2m); a request's `timeout`
    /// parameter can only shorten it.
    pub timeout: Duration,
    /// Maximum points per series of a range query (Prometheus: 11,000).
    pub max_points_per_series: i64,
    /// Answer with warnings instead of failing when storage nodes are missing.
    pub partial_response: bool,
    /// Copies of each series in the cluster (see [`FanoutOptions::replication_factor`]).
    pub replication_factor: usize,
    /// Deadline of each storage-node call.
    pub node_timeout: Duration,
    /// The header that names the tenant.
    pub tenant_header: String,
    /// Series limit passed to each storage node's select (0: the node's default).
    pub max_series_per_select: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            max_points_per_series: 11_000,
            partial_response: true,
            replication_factor: 1,
            node_timeout: Duration::from_secs(30),
            tenant_header: "X-Scope-OrgID".into(),
            max_series_per_select: 0,
        }
    }
}

/// What the API needs from a PromQL engine; implemented by [`crate::promql::Engine`].
#[async_trait::async_trait]
pub trait QueryEngine: Send + Sync + std::fmt::Debug {
    /// Evaluates `query` at `time_ms`.
    async fn instant(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        time_ms: i64,
    ) -> Result<Annotated, EvalError>;

    /// Evaluates `query` at every step in `[start_ms, end_ms]`; the value is a matrix.
    async fn range(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Annotated, EvalError>;
}

/// The query API's shared state: configuration, storage nodes, engine and metrics.
#[derive(Debug)]
pub struct QueryApi {
    cfg: QueryConfig,
    nodes: Arc<[Arc<dyn StorageNode>]>,
    engine: Arc<dyn QueryEngine>,
    metrics: Arc<QueryMetrics>,
}

impl QueryApi {
    /// The API with another engine (tests, experiments).
    pub fn with_engine(
        cfg: QueryConfig,
        nodes: Vec<Arc<dyn StorageNode>>,
        metrics: Arc<QueryMetrics>,
        engine: Arc<dyn QueryEngine>,
    ) -> Self {
        Self { cfg, nodes: nodes.into(), engine, metrics }
    }

    /// The configuration.
    pub fn config(&self) -> &QueryConfig {
        &self.cfg
    }

    /// A fan-out source over all storage nodes for one tenant; also what a gRPC query API or
    /// an in-process alerter would evaluate against.
    pub fn source(&self, tenant: &str) -> FanoutSource {
        let opts = FanoutOptions {
            node_timeout: self.cfg.node_timeout,
            partial_response: self.cfg.partial_response,
            replication_factor: self.cfg.replication_factor,
            max_series: self.cfg.max_series_per_select,
            max_samples: u64::try_from(self.cfg.max_samples).unwrap_or(u64::MAX),
        };
        FanoutSource::new(tenant, Arc::clone(&self.nodes), opts)
            .with_metrics(Arc::clone(&self.metrics))
    }

    /// The tenant of a request, from the configured header.
    fn tenant(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let header = &self.cfg.tenant_header;
        match headers.get(header.as_str()) {
            None => Ok(DEFAULT_TENANT.to_string()),
            Some(v) => {
                let t = v.to_str().map_err(|_| {
                    ApiError::BadData(format!("header {header} is not valid ASCII"))
                })?;
                if t.is_empty() || t.len() > 256 || t.contains(['\0', '/']) {
                    return Err(ApiError::BadData(format!(
                        "invalid tenant {t:?} in header {header}"
                    )));
                }
                Ok(t.to_string())
            }
        }
    }

    /// The engine's deadline for this request: the `timeout` parameter, capped by the config.
    fn deadline(&self, p: &Params) -> Result<Duration, ApiError> {
        Ok(match p.duration("timeout")? {
            Some(ms) => Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(self.cfg.timeout),
            None => self.cfg.timeout,
        })
    }

    async fn query(&self, req: &Request) -> Result<Answer, ApiError> {
        let p = &req.params;
        let time = p.time_or("time", now_ms())?;
        let query = p.get("query");
        check_query(query)?;
        let deadline = self.deadline(p)?;
        let src = self.source(&req.tenant);
        let fut = self.engine.instant(&src, query, time);
        let result = run_with_deadline(deadline, fut).await?;
        Ok(Answer::query(result))
    }

    async fn query_range(&self, req: &Request) -> Result<Answer, ApiError> {
        let p = &req.params;
        let start = p.time("start")?;
        let end = p.time("end")?;
        if end < start {
            return Err(ApiError::BadData("end timestamp must not be before start time".into()));
        }
        let step = params::parse_duration(p.get("step"))
            .map_err(|e| ApiError::invalid_param("step", e))?;
        if step <= 0 {
            return Err(ApiError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        // For safety, limit the number of returned points per series (Prometheus: 11,000).
        if (end.saturating_sub(start)) / step > self.cfg.max_points_per_series {
            return Err(ApiError::BadData(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                thousands(self.cfg.max_points_per_series)
            )));
        }
        let query = p.get("query");
        check_query(query)?;
        let deadline = self.deadline(p)?;
        let src = self.source(&req.tenant);
        let fut = self.engine.range(&src, query, start, end, step);
        let result = run_with_deadline(deadline, fut).await?;
        Ok(Answer::query(result))
    }

    async fn series(&self, req: &Request) -> Result<Answer, ApiError> {
        let p = &req.params;
        if p.all("match[]").is_empty() {
            return Err(ApiError::BadData("no match[] parameter provided".into()));
        }
        let q = p.metadata_query()?;
        let merged = self.source(&req.tenant).series(&q.sets, q.start, q.end, q.limit).await?;
        let mut data = String::new();
        data.push('[');
        for (i, labels) in merged.value.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            json::write_labels(&mut data, labels);
        }
        data.push(']');
        Ok(Answer::merged(data, merged))
    }

    async fn labels(&self, req: &Request) -> Result<Answer, ApiError> {
        let p = &req.params;
        let q = p.metadata_query()?;
        let merged = self.source(&req.tenant).label_names(&q.sets, q.start, q.end, q.limit).await?;
        let mut data = String::new();
        json::write_str_list(&mut data, &merged.value);
        Ok(Answer::merged(data, merged))
    }

    async fn label_values(&self, name: &str, req: &Request) -> Result<Answer, ApiError> {
        if name.is_empty() {
            return Err(ApiError::BadData(format!("invalid label name: {name:?}")));
        }
        let p = &req.params;
        let q = p.metadata_query()?;
        let merged =
            self.source(&req.tenant).label_values(name, &q.sets, q.start, q.end, q.limit).await?;
        let mut data = String::new();
        json::write_str_list(&mut data, &merged.value);
        Ok(Answer::merged(data, merged))
    }

    fn format_query(&self, req: &Request) -> Result<Answer, ApiError> {
        let expr = promql_parser::parser::parse(req.params.get("query"))
            .map_err(|e| ApiError::invalid_param("query", e))?;
        let mut data = String::new();
        json::write_str(&mut data, &expr.prettify());
        Ok(Answer::data(data))
    }

    /// Runs one endpoint: reads tenant and parameters, records metrics, writes the envelope.
    async fn serve(
        &self,
        endpoint: Endpoint,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Response {
        let started = Instant::now();
        let outcome = match self.request(method, headers, query, body) {
            Ok(req) => self.dispatch(&endpoint, &req).await,
            Err(e) => Err(e),
        };
        let response = match outcome {
            Ok(answer) => answer.into_response(),
            Err(e) => {
                tracing::debug!(endpoint = endpoint.name(), error = %e, "query API request failed");
                json_response(e.status(), json::error(e.error_type(), &e.to_string(), &[]))
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics.observe_request(endpoint.name(), response.status().as_u16(), elapsed);
        response
    }

    async fn dispatch(&self, endpoint: &Endpoint, req: &Request) -> Result<Answer, ApiError> {
        match endpoint {
            Endpoint::Query => self.query(req).await,
            Endpoint::QueryRange => self.query_range(req).await,
            Endpoint::Series => self.series(req).await,
            Endpoint::Labels => self.labels(req).await,
            Endpoint::LabelValues(name) => self.label_values(name, req).await,
            // Basin stores no metric metadata (yet): an empty object is "none known".
            Endpoint::Metadata => Ok(Answer::data("{}".into())),
            // Basin stores no exemplars: an empty list, as Prometheus without exemplar storage.
            Endpoint::QueryExemplars => Ok(Answer::data("[]".into())),
            Endpoint::FormatQuery => self.format_query(req),
            Endpoint::BuildInfo => Ok(Answer::data(build_info())),
            Endpoint::TsdbStatus => self.tsdb_status(req).await,
            Endpoint::DeleteSeries => self.delete_series(req).await,
            Endpoint::Export => self.export(req).await,
            // Deletes rewrite data in place: there are no tombstones to clean.
            Endpoint::CleanTombstones => Ok(Answer::no_content()),
        }
    }

    fn request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Request, ApiError> {
        let tenant = self.tenant(headers)?;
        // Prometheus (Go's `ParseForm`): only a POST (or PUT) body holds form values.
        let is_form = (method == Method::POST || method == Method::PUT)
            && headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| {
                    m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        let params = Params::decode(query, body, is_form)?;
        Ok(Request { tenant, params })
    }
}

/// One parsed API request.
#[derive(Debug)]
struct Request {
    tenant: String,
    params: Params,
}

/// A successful answer: its payload plus warnings and infos.
#[derive(Debug)]
struct Answer {
    payload: Payload,
    warnings: Vec<String>,
    infos: Vec<String>,
}

/// What a successful answer holds.
#[derive(Debug)]
enum Payload {
    /// Already-encoded `data` of the JSON envelope.
    Data(String),
    /// A query's value, encoded while it is sent.
    Query(Value),
    /// Series for `/api/v1/export`: JSON lines without an envelope, encoded while sent.
    Export(Vec<SharedSeries>),
    /// `204 No Content`.
    NoContent,
}

impl Answer {
    fn new(payload: Payload) -> Self {
        Self { payload, warnings: Vec::new(), infos: Vec::new() }
    }

    fn data(data: String) -> Self {
        Self::new(Payload::Data(data))
    }

    /// `204 No Content`, as Prometheus' admin endpoints answer.
    fn no_content() -> Self {
        Self::new(Payload::NoContent)
    }

    fn query(answer: Annotated) -> Self {
        Self {
            payload: Payload::Query(answer.result.value),
            warnings: answer.result.warnings,
            infos: answer.infos,
        }
    }

    fn export(series: Vec<SharedSeries>) -> Self {
        Self::new(Payload::Export(series))
    }

    fn merged<T>(data: String, merged: Merged<T>) -> Self {
        let mut warnings = merged.warnings;
        if merged.truncated {
            warnings.push("results truncated due to limit".into());
        }
        Self { payload: Payload::Data(data), warnings, infos: Vec::new() }
    }

    /// The HTTP response. Matrices and exports are streamed a batch of series at a time,
    /// encoded on all cores, and each series is dropped once encoded.
    fn into_response(self) -> Response {
        let Self { payload, warnings, infos } = self;
        match payload {
            Payload::NoContent => StatusCode::NO_CONTENT.into_response(),
            Payload::Data(data) => {
                json_response(StatusCode::OK, json::success(&data, &warnings, &infos))
            }
            Payload::Query(Value::Matrix(series)) => {
                let head = format!("{}{}", json::SUCCESS_HEAD, json::MATRIX_HEAD);
                let mut tail = String::from("]}");
                json::write_success_tail(&mut tail, &warnings, &infos);
                let encode = |out: &mut String, i, s: crate::promql::value::Series| {
                    json::write_matrix_series(out, i, &s)
                };
                let points = |s: &crate::promql::value::Series| s.points.len();
                let body = stream::body(head, series, encode, points, tail);
                with_content_type(body, "application/json")
            }
            Payload::Query(value) => {
                let mut data = String::new();
                json::write_query_data(&mut data, &value);
                json_response(StatusCode::OK, json::success(&data, &warnings, &infos))
            }
            Payload::Export(series) => {
                let encode = |out: &mut String, _, s: SharedSeries| export::write_line(out, &s);
                let samples = |s: &SharedSeries| s.samples.len();
                let body = stream::body(String::new(), series, encode, samples, String::new());
                with_content_type(body, "application/stream+json; charset=utf-8")
            }
        }
    }
}

/// Parses the query up front so syntax errors read like Prometheus'
/// (`invalid parameter "query": …`) whatever the engine reports.
fn check_query(query: &str) -> Result<(), ApiError> {
    promql_parser::parser::parse(query).map(|_| ()).map_err(|e| ApiError::invalid_param("query", e))
}

async fn run_with_deadline<F>(deadline: Duration, fut: F) -> Result<Annotated, ApiError>
where
    F: std::future::Future<Output = Result<Annotated, EvalError>>,
{
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => Err(ApiError::Timeout("query timed out in query execution".into())),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `11000` → `11,000`, as in Prometheus' resolution error.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let first = match digits.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    out.push_str(&digits[..first]);
    for chunk in digits.as_bytes()[first..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    out
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A 200 response with a (streamed) body.
fn with_content_type(body: Body, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn build_info() -> String {
    let mut data = String::from("{");
    let fields = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("revision", option_env!("BASIN_GIT_REVISION").unwrap_or("unknown")),
        ("branch", option_env!("BASIN_GIT_BRANCH").unwrap_or("unknown")),
        ("buildUser", ""),
        ("buildDate", option_env!("BASIN_BUILD_DATE").unwrap_or("unknown")),
        ("goVersion", ""),
    ];
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        json::write_str(&mut data, k);
        data.push(':');
        json::write_str(&mut data, v);
    }
    data.push('}');
    data
}

/// The query API's routes, all under `/api/v1`, GET and POST alike.
pub fn router(state: Arc<QueryApi>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/query_exemplars", get(query_exemplars).post(query_exemplars))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/status/tsdb", get(tsdb_status).post(tsdb_status))
        .route("/api/v1/export", get(export).post(export))
        .route("/api/v1/admin/tsdb/delete_series", post(delete_series).put(delete_series))
        .route("/api/v1/admin/tsdb/clean_tombstones", post(clean_tombstones).put(clean_tombstones))
        .with_state(state)
}

/// The endpoints, named as in metrics.
#[derive(Debug)]
enum Endpoint {
    Query,
    QueryRange,
    Series,
    Labels,
    LabelValues(String),
    Metadata,
    QueryExemplars,
    FormatQuery,
    BuildInfo,
    TsdbStatus,
    DeleteSeries,
    CleanTombstones,
    Export,
}

impl Endpoint {
    fn name(&self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::QueryRange => "query_range",
            Self::Series => "series",
            Self::Labels => "labels",
            Self::LabelValues(_) => "label_values",
            Self::Metadata => "metadata",
            Self::QueryExemplars => "query_exemplars",
            Self::FormatQuery => "format_query",
            Self::BuildInfo => "buildinfo",
            Self::TsdbStatus => "tsdb_status",
            Self::DeleteSeries => "delete_series",
            Self::CleanTombstones => "clean_tombstones",
            Self::Export => "export",
        }
    }
}

type Api = State<Arc<QueryApi>>;

/// Handlers of the endpoints that read query parameters and, on POST, a form body.
macro_rules! form_handlers {
    ($($name:ident => $endpoint:ident),* $(,)?) => {$(
        async fn $name(
            State(api): Api,
            m: Method,
            h: HeaderMap,
            RawQuery(q): RawQuery,
            body: Bytes,
        ) -> Response {
            api.serve(Endpoint::$endpoint, &m, &h, q.as_deref(), &body).await
        }
    )*};
}

form_handlers! {
    query => Query,
    query_range => QueryRange,
    series => Series,
    labels => Labels,
    query_exemplars => QueryExemplars,
    format_query => FormatQuery,
    tsdb_status => TsdbStatus,
    delete_series => DeleteSeries,
    export => Export,
}

async fn label_values(
    State(api): Api,
    Path(name): Path<String>,
    m: Method,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    api.serve(Endpoint::LabelValues(name), &m, &h, q.as_deref(), &[]).await
}

async fn metadata(State(api): Api, m: Method, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    api.serve(Endpoint::Metadata, &m, &h, q.as_deref(), &[]).await
}

async fn buildinfo(State(api): Api, m: Method, h: HeaderMap) -> Response {
    api.serve(Endpoint::BuildInfo, &m, &h, None, &[]).await
}

async fn clean_tombstones(State(api): Api, m: Method, h: HeaderMap) -> Response {
    api.serve(Endpoint::CleanTombstones, &m, &h, None, &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(11_000), "11,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
