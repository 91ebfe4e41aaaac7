//! [`LocalNode`]: the storage engine as a [`StorageNode`], in-process (standalone mode).
//!
//! RocksDB calls block, so each request runs on tokio's blocking pool; errors become the same
//! `tonic::Status` a remote node would return.

use crate::engine::Storage;
use crate::error::StorageError;
use basin_proto::batch::BatchWrite;
use basin_proto::node::{SharedSeries, StorageNode};
use basin_proto::storage::{
    DeleteSeriesRequest, DeleteSeriesResponse, LabelNamesRequest, LabelValuesRequest,
    SelectRequest, Series, SeriesRequest, TsdbStatusRequest, TsdbStatusResponse, WriteRequest,
    WriteResponse,
};
use std::sync::Arc;
use tonic::Status;

/// The local storage engine as a storage node.
#[derive(Debug, Clone)]
pub struct LocalNode(pub Arc<Storage>);

impl LocalNode {
    /// Wraps an engine.
    pub fn new(storage: Arc<Storage>) -> Self {
        Self(storage)
    }
}

/// Runs `f` on the blocking pool and maps its error to a status.
pub(crate) async fn blocking<T, F>(storage: &Arc<Storage>, f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce(&Storage) -> Result<T, StorageError> + Send + 'static,
{
    let storage = Arc::clone(storage);
    tokio::task::spawn_blocking(move || f(&storage))
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
}

#[async_trait::async_trait]
impl StorageNode for LocalNode {
    fn name(&self) -> &str {
        "local"
    }

    async fn write(&self, req: WriteRequest) -> Result<WriteResponse, Status> {
        Ok(blocking(&self.0, move |s| s.write(&req)).await?)
    }

    /// Writes the decoded batch as it is: no protobuf request, no owned strings.
    async fn write_batch(&self, req: BatchWrite) -> Result<WriteResponse, Status> {
        Ok(blocking(&self.0, move |s| s.write_view(&req.view())).await?)
    }

    async fn select(&self, req: SelectRequest) -> Result<Vec<SharedSeries>, Status> {
        Ok(blocking(&self.0, move |s| s.select_shared(&req)).await?)
    }

    async fn label_names(&self, req: LabelNamesRequest) -> Result<Vec<String>, Status> {
        Ok(blocking(&self.0, move |s| s.label_names(&req)).await?)
    }

    async fn label_values(&self, req: LabelValuesRequest) -> Result<Vec<String>, Status> {
        Ok(blocking(&self.0, move |s| s.label_values(&req)).await?)
    }

    async fn series(&self, req: SeriesRequest) -> Result<Vec<Series>, Status> {
        Ok(blocking(&self.0, move |s| s.series(&req)).await?)
    }

    async fn tsdb_status(&self, req: TsdbStatusRequest) -> Result<TsdbStatusResponse, Status> {
        Ok(blocking(&self.0, move |s| s.tsdb_status(&req)).await?)
    }

    async fn delete_series(
        &self,
        req: DeleteSeriesRequest,
    ) -> Result<DeleteSeriesResponse, Status> {
        Ok(blocking(&self.0, move |s| s.delete_series(&req)).await?)
    }
}
