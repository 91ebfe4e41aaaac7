//! The storage node's gRPC service (`basin.storage.v1.Storage`) over the engine.
//!
//! Select answers are computed whole (they are bounded by the select limits) and streamed in
//! batches of at most [`SELECT_BATCH_SAMPLES`] samples, so no single message approaches the
//! gRPC size limit however large the answer.

use crate::engine::Storage;
use crate::node::blocking;
use basin_proto::node::MAX_GRPC_MESSAGE_BYTES;
use basin_proto::storage::storage_server::{self, StorageServer};
use basin_proto::storage::{
    DeleteSeriesRequest, DeleteSeriesResponse, LabelNamesRequest, LabelNamesResponse,
    LabelValuesRequest, LabelValuesResponse, SelectRequest, SelectResponse, Series, SeriesRequest,
    SeriesResponse, TsdbStatusRequest, TsdbStatusResponse, WriteRequest, WriteResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Most samples in one streamed select message (~1 MiB on the wire).
pub const SELECT_BATCH_SAMPLES: usize = 64 * 1024;
/// Most series in one streamed select message.
const SELECT_BATCH_SERIES: usize = 1024;

/// The gRPC service implementation; build it with [`grpc_service`].
#[derive(Debug, Clone)]
pub struct StorageService {
    storage: Arc<Storage>,
}

/// The gRPC server for `storage`, with Basin's message size limits.
pub fn grpc_service(storage: Arc<Storage>) -> StorageServer<StorageService> {
    StorageServer::new(StorageService { storage })
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
}

/// Splits a select answer into stream messages.
fn batches(series: Vec<Series>) -> Vec<Result<SelectResponse, Status>> {
    let mut out = Vec::new();
    let mut current = SelectResponse::default();
    let mut samples = 0;
    for s in series {
        if !current.series.is_empty()
            && (samples + s.samples.len() > SELECT_BATCH_SAMPLES
                || current.series.len() >= SELECT_BATCH_SERIES)
        {
            out.push(Ok(std::mem::take(&mut current)));
            samples = 0;
        }
        samples += s.samples.len();
        current.series.push(s);
    }
    if !current.series.is_empty() {
        out.push(Ok(current));
    }
    out
}

#[tonic::async_trait]
impl storage_server::Storage for StorageService {
    async fn write(&self, req: Request<WriteRequest>) -> Result<Response<WriteResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(blocking(&self.storage, move |s| s.write(&req)).await?))
    }

    type SelectStream = tokio_stream::Iter<std::vec::IntoIter<Result<SelectResponse, Status>>>;

    async fn select(
        &self,
        req: Request<SelectRequest>,
    ) -> Result<Response<Self::SelectStream>, Status> {
        let req = req.into_inner();
        let series = blocking(&self.storage, move |s| s.select(&req)).await?;
        Ok(Response::new(tokio_stream::iter(batches(series))))
    }

    async fn label_names(
        &self,
        req: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelNamesResponse>, Status> {
        let req = req.into_inner();
        let names = blocking(&self.storage, move |s| s.label_names(&req)).await?;
        Ok(Response::new(LabelNamesResponse { names }))
    }

    async fn label_values(
        &self,
        req: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelValuesResponse>, Status> {
        let req = req.into_inner();
        let values = blocking(&self.storage, move |s| s.label_values(&req)).await?;
        Ok(Response::new(LabelValuesResponse { values }))
    }

    async fn series(
        &self,
        req: Request<SeriesRequest>,
    ) -> Result<Response<SeriesResponse>, Status> {
        let req = req.into_inner();
        let series = blocking(&self.storage, move |s| s.series(&req)).await?;
        Ok(Response::new(SeriesResponse { series }))
    }

    async fn tsdb_status(
        &self,
        req: Request<TsdbStatusRequest>,
    ) -> Result<Response<TsdbStatusResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(blocking(&self.storage, move |s| s.tsdb_status(&req)).await?))
    }

    async fn delete_series(
        &self,
        req: Request<DeleteSeriesRequest>,
    ) -> Result<Response<DeleteSeriesResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(blocking(&self.storage, move |s| s.delete_series(&req)).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basin_proto::storage::Sample;

    #[test]
    fn batches_bound_samples_per_message() {
        let s = |n: usize| Series {
            labels: vec![],
            samples: vec![Sample { timestamp_ms: 0, value: 0.0 }; n],
        };
        let out =
            batches(vec![s(SELECT_BATCH_SAMPLES - 1), s(2), s(SELECT_BATCH_SAMPLES * 2), s(1)]);
        let sizes: Vec<usize> =
            out.iter().map(|b| b.as_ref().map(|r| r.series.len()).unwrap_or(0)).collect();
        assert_eq!(sizes, vec![1, 1, 1, 1]);
        assert!(batches(vec![]).is_empty());
    }
}
