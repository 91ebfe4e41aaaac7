//! `basin.client.v1.Query`: the public gRPC query API (see `proto/proto/client.proto`).
//!
//! Each call is the gRPC twin of a Prometheus HTTP API endpoint and runs the same code: the
//! same fan-out over every storage node (with its replica merge and warnings), the same PromQL
//! engine and deadline, the same selector parsing. The tenant comes from the metadata entry
//! named by the tenant header, lower-cased (`x-scope-orgid` by default).
//!
//! Errors map from the API's error types: `bad_data` → `INVALID_ARGUMENT`, `execution` →
//! `RESOURCE_EXHAUSTED` (limits) , `timeout` → `DEADLINE_EXCEEDED`, `unavailable` →
//! `UNAVAILABLE`, anything else → `INTERNAL`.

use crate::api::params::{MAX_TIME_MS, MIN_TIME_MS, Params};
use crate::api::{ApiError, QueryApi};
use crate::promql::{Annotated, Engine, EngineOptions, Value};
use basin_proto::DEFAULT_TENANT;
use basin_proto::client::query_server::{Query, QueryServer};
use basin_proto::client::{
    Label, LabelNamesRequest, LabelValuesRequest, LabelsResponse, QueryRangeRequest, QueryRequest,
    QueryResponse, ResultType, Sample, SeriesRequest, SeriesResponse, TimeSeries,
};
use basin_proto::node::MAX_GRPC_MESSAGE_BYTES;
use basin_proto::storage::Label as WireLabel;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::{Request, Response, Status};

/// The Query service over a query API.
#[derive(Debug, Clone)]
pub struct QueryService {
    api: Arc<QueryApi>,
    engine: Engine,
}

impl QueryService {
    /// A service answering from `api`'s storage nodes with Basin's PromQL engine configured as
    /// the HTTP API's.
    pub fn new(api: Arc<QueryApi>) -> Self {
        let cfg = api.config();
        let engine = Engine::new(EngineOptions {
            lookback_delta: cfg.lookback_delta,
            max_samples: cfg.max_samples,
            timeout: cfg.timeout,
        });
        Self { api, engine }
    }

    /// The tonic server for this service, with Basin's message size limits.
    pub fn into_server(self) -> QueryServer<Self> {
        QueryServer::new(self)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
    }

    fn tenant<T>(&self, req: &Request<T>) -> Result<String, Status> {
        let key = self.api.config().tenant_header.to_ascii_lowercase();
        match req.metadata().get(key.as_str()) {
            None => Ok(DEFAULT_TENANT.to_string()),
            Some(v) => {
                let t = v.to_str().map_err(|_| {
                    Status::invalid_argument(format!("metadata {key} is not ASCII"))
                })?;
                if t.is_empty() || t.len() > 256 || t.contains(['\0', '/']) {
                    return Err(Status::invalid_argument(format!("invalid tenant {t:?} in {key}")));
                }
                Ok(t.to_string())
            }
        }
    }

    fn deadline(&self, timeout_ms: i64) -> Duration {
        let max = self.api.config().timeout;
        match u64::try_from(timeout_ms) {
            Ok(ms) if ms > 0 => Duration::from_millis(ms).min(max),
            _ => max,
        }
    }

    async fn run(
        &self,
        deadline: Duration,
        fut: impl std::future::Future<Output = Result<Annotated, crate::promql::EvalError>>,
    ) -> Result<QueryResponse, Status> {
        let answer = match tokio::time::timeout(deadline, fut).await {
            Ok(r) => r.map_err(|e| to_status(ApiError::from(e)))?,
            Err(_) => return Err(Status::deadline_exceeded("query timed out in query execution")),
        };
        Ok(to_response(answer))
    }
}

fn to_status(e: ApiError) -> Status {
    let msg = e.to_string();
    match e {
        ApiError::BadData(_) => Status::invalid_argument(msg),
        ApiError::Execution(_) => Status::resource_exhausted(msg),
        ApiError::Timeout(_) => Status::deadline_exceeded(msg),
        ApiError::Unavailable(_) => Status::unavailable(msg),
        ApiError::NotFound(_) => Status::not_found(msg),
        ApiError::Internal(_) => Status::internal(msg),
    }
}

fn labels(l: Vec<WireLabel>) -> Vec<Label> {
    l.into_iter().map(|l| Label { name: l.name, value: l.value }).collect()
}

fn to_response(a: Annotated) -> QueryResponse {
    let mut out = QueryResponse { warnings: a.result.warnings, ..QueryResponse::default() };
    match a.result.value {
        Value::Scalar { t, v } => {
            out.result_type = ResultType::Scalar as i32;
            out.series = vec![TimeSeries {
                labels: Vec::new(),
                samples: vec![Sample { timestamp_ms: t, value: v }],
            }];
        }
        Value::String { t, s } => {
            out.result_type = ResultType::String as i32;
            out.string_value = s;
            out.series = vec![TimeSeries {
                labels: Vec::new(),
                samples: vec![Sample { timestamp_ms: t, value: 0.0 }],
            }];
        }
        Value::Vector(v) => {
            out.result_type = ResultType::Vector as i32;
            out.series = v
                .into_iter()
                .map(|s| TimeSeries {
                    labels: labels(s.labels),
                    samples: vec![Sample { timestamp_ms: s.t, value: s.v }],
                })
                .collect();
        }
        Value::Matrix(m) => {
            out.result_type = ResultType::Matrix as i32;
            out.series = m
                .into_iter()
                .map(|s| TimeSeries {
                    labels: labels(s.labels),
                    samples: s
                        .points
                        .into_iter()
                        .map(|(t, v)| Sample { timestamp_ms: t, value: v })
                        .collect(),
                })
                .collect();
        }
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Parses `match` selectors into matcher sets, with the HTTP API's rules and errors.
fn match_sets(selectors: &[String]) -> Result<Vec<Vec<basin_proto::storage::Matcher>>, Status> {
    Params::from_pairs(selectors.iter().map(|s| ("match[]", s.as_str())))
        .match_sets()
        .map_err(to_status)
}

fn range(start_ms: i64, end_ms: i64) -> (i64, i64) {
    let start = if start_ms == 0 { MIN_TIME_MS } else { start_ms };
    let end = if end_ms == 0 { MAX_TIME_MS } else { end_ms };
    (start, end)
}

fn limit(l: u64) -> usize {
    usize::try_from(l).unwrap_or(usize::MAX)
}

#[tonic::async_trait]
impl Query for QueryService {
    async fn query(&self, req: Request<QueryRequest>) -> Result<Response<QueryResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let r = req.into_inner();
        let time = if r.time_ms == 0 { now_ms() } else { r.time_ms };
        let src = self.api.source(&tenant);
        let deadline = self.deadline(r.timeout_ms);
        let out = self.run(deadline, self.engine.instant_annotated(&src, &r.query, time)).await?;
        Ok(Response::new(out))
    }

    async fn query_range(
        &self,
        req: Request<QueryRangeRequest>,
    ) -> Result<Response<QueryResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let r = req.into_inner();
        if r.end_ms < r.start_ms {
            return Err(Status::invalid_argument("end timestamp must not be before start time"));
        }
        if r.step_ms <= 0 {
            return Err(Status::invalid_argument(
                "zero or negative query resolution step widths are not accepted",
            ));
        }
        let max_points = self.api.config().max_points_per_series;
        if (r.end_ms - r.start_ms) / r.step_ms > max_points {
            return Err(Status::invalid_argument(format!(
                "exceeded maximum resolution of {max_points} points per timeseries"
            )));
        }
        let src = self.api.source(&tenant);
        let deadline = self.deadline(r.timeout_ms);
        let fut = self.engine.range_annotated(&src, &r.query, r.start_ms, r.end_ms, r.step_ms);
        Ok(Response::new(self.run(deadline, fut).await?))
    }

    async fn series(
        &self,
        req: Request<SeriesRequest>,
    ) -> Result<Response<SeriesResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let r = req.into_inner();
        if r.r#match.is_empty() {
            return Err(Status::invalid_argument("no match[] parameter provided"));
        }
        let sets = match_sets(&r.r#match)?;
        let (start, end) = range(r.start_ms, r.end_ms);
        let merged = self
            .api
            .source(&tenant)
            .series(&sets, start, end, limit(r.limit))
            .await
            .map_err(|e| to_status(e.into()))?;
        let series = merged
            .value
            .into_iter()
            .map(|l| TimeSeries { labels: labels(l), samples: Vec::new() })
            .collect();
        Ok(Response::new(SeriesResponse { series, warnings: merged.warnings }))
    }

    async fn label_names(
        &self,
        req: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelsResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let r = req.into_inner();
        let sets = match_sets(&r.r#match)?;
        let (start, end) = range(r.start_ms, r.end_ms);
        let merged = self
            .api
            .source(&tenant)
            .label_names(&sets, start, end, limit(r.limit))
            .await
            .map_err(|e| to_status(e.into()))?;
        Ok(Response::new(LabelsResponse { values: merged.value, warnings: merged.warnings }))
    }

    async fn label_values(
        &self,
        req: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelsResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let r = req.into_inner();
        if r.name.is_empty() {
            return Err(Status::invalid_argument("invalid label name: \"\""));
        }
        let sets = match_sets(&r.r#match)?;
        let (start, end) = range(r.start_ms, r.end_ms);
        let merged = self
            .api
            .source(&tenant)
            .label_values(&r.name, &sets, start, end, limit(r.limit))
            .await
            .map_err(|e| to_status(e.into()))?;
        Ok(Response::new(LabelsResponse { values: merged.value, warnings: merged.warnings }))
    }
}
