//! `basin.client.v1.Ingest`: the public gRPC write API (see `proto/proto/client.proto`).
//!
//! Same semantics as `POST /api/v1/write`: the same label validation and normalisation, HA
//! replica labels dropped, the same in-flight bounds, and OK only when every sample reached its
//! required replicas. The tenant comes from the metadata entry named by the tenant header
//! (lower-cased, e.g. `x-scope-orgid`).
//!
//! Errors: `INVALID_ARGUMENT` (bad input, nothing stored), `RESOURCE_EXHAUSTED` (in-flight
//! bound, retry later), `UNAVAILABLE` (replicas missing, retry).

use crate::gateway::{Gateway, WriteError};
use crate::http::check_tenant;
use basin_proto::DEFAULT_TENANT;
use basin_proto::batch::SeriesBatch;
use basin_proto::client::ingest_server::{Ingest, IngestServer};
use basin_proto::client::{WriteRequest, WriteResponse};
use basin_proto::labels::{self, LabelRef};
use basin_proto::node::MAX_GRPC_MESSAGE_BYTES;
use basin_proto::storage::Sample;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Ingest service over a gateway.
#[derive(Debug, Clone)]
pub struct IngestService {
    gateway: Arc<Gateway>,
}

impl IngestService {
    /// A service writing through `gateway`.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    /// The tonic server for this service, with Basin's message size limits.
    pub fn into_server(self) -> IngestServer<Self> {
        let limit = self.gateway.config().limits.max_request_bytes.min(MAX_GRPC_MESSAGE_BYTES);
        IngestServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
    }
}

/// The tenant of a gRPC request: the metadata entry named by the tenant header.
pub fn tenant_of<T>(req: &Request<T>, header: &str) -> Result<String, Status> {
    let key = header.to_ascii_lowercase();
    match req.metadata().get(key.as_str()) {
        None => Ok(DEFAULT_TENANT.to_string()),
        Some(v) => {
            let t = v
                .to_str()
                .map_err(|_| Status::invalid_argument(format!("metadata {key} is not ASCII")))?;
            check_tenant(t, &key).map_err(Status::invalid_argument)?;
            Ok(t.to_string())
        }
    }
}

/// Validates and normalises the request's series like the remote_write decoder does.
fn to_batch(req: &WriteRequest, gw: &Gateway) -> Result<(SeriesBatch, usize), Status> {
    let cfg = gw.config();
    let drop = &cfg.ha_replica_labels;
    let mut out = SeriesBatch::with_capacity(req.series.len());
    let mut kept: Vec<LabelRef<'_>> = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut total = 0;
    for (index, ts) in req.series.iter().enumerate() {
        kept.clear();
        kept.extend(
            ts.labels
                .iter()
                .filter(|l| !drop.contains(&l.name))
                .map(|l| LabelRef { name: &l.name, value: &l.value }),
        );
        if let Err(e) = labels::normalize(&mut kept, &cfg.limits.labels) {
            return Err(Status::invalid_argument(format!(
                "series {index} ({}): {e}",
                labels::display(&kept)
            )));
        }
        if ts.samples.is_empty() {
            continue;
        }
        total += ts.samples.len();
        samples.clear();
        samples.extend(
            ts.samples.iter().map(|s| Sample { timestamp_ms: s.timestamp_ms, value: s.value }),
        );
        out.push(&kept, &samples).map_err(|e| Status::invalid_argument(e.to_string()))?;
    }
    Ok((out, total))
}

fn to_status(e: WriteError) -> Status {
    match e {
        WriteError::Rejected { .. } => Status::invalid_argument(e.to_string()),
        WriteError::Overloaded(_) => Status::resource_exhausted(e.to_string()),
        WriteError::Unavailable { .. } | WriteError::NoNodes => Status::unavailable(e.to_string()),
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn write(&self, req: Request<WriteRequest>) -> Result<Response<WriteResponse>, Status> {
        let gw = &self.gateway;
        let mut admitted = gw.admission().request().map_err(to_status)?;
        let tenant = tenant_of(&req, &gw.config().tenant_header)?;
        let (series, samples) = to_batch(&req.into_inner(), gw)?;
        gw.admission().samples(&mut admitted, samples).map_err(to_status)?;
        let n = series.len() as u64;
        gw.write(&tenant, series).await.map_err(to_status)?;
        gw.metrics().samples.inc_by(samples as u64);
        gw.metrics().series.inc_by(n);
        Ok(Response::new(WriteResponse { samples: samples as u64, series: n }))
    }
}
