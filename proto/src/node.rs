//! How gateways and query nodes reach a storage node.
//!
//! [`StorageNode`] is the storage service's API as a trait: [`GrpcStorageNode`] implements it
//! over the network, and the storage crate implements it in-process for standalone mode, so
//! both modes run the same gateway and query code. Errors are `tonic::Status` in both cases;
//! [`is_retryable`] tells a gateway whether a sender may retry.

use crate::batch::BatchWrite;
use crate::storage::{
    DeleteSeriesRequest, DeleteSeriesResponse, Label, LabelNamesRequest, LabelValuesRequest,
    Sample, SelectRequest, Series, SeriesRequest, TsdbStatusRequest, TsdbStatusResponse,
    WriteRequest, WriteResponse, storage_client::StorageClient,
};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// A selected series whose label set is shared rather than copied: an in-process node hands
/// out the label set its series cache holds (copying 10,000 label sets took 3 ms of a 100 ms
/// query, on one core), a remote node the one it decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedSeries {
    /// Labels, sorted by name.
    pub labels: Arc<Vec<Label>>,
    /// Time-ordered samples.
    pub samples: Vec<Sample>,
    /// What the node learned of `samples` while they were in its cache, if it looked.
    pub facts: Option<SampleFacts>,
}

impl SharedSeries {
    /// A series whose samples nobody has looked at yet.
    pub fn new(labels: Arc<Vec<Label>>, samples: Vec<Sample>) -> Self {
        SharedSeries { labels, samples, facts: None }
    }
}

impl From<Series> for SharedSeries {
    fn from(s: Series) -> Self {
        SharedSeries::new(Arc::new(s.labels), s.samples)
    }
}

/// Facts about a series' samples that a query engine needs, learned in one pass. A storage
/// node learns them right after reading a series, while its samples are in cache: a pass
/// of the engine's own over millions of cold samples took 5-8 ms of a 90 ms query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleFacts {
    /// Timestamps strictly increase.
    pub ordered: bool,
    /// Some value is a staleness marker.
    pub has_stale: bool,
    /// Some value (staleness markers left out) is below the one before it: a counter reset.
    pub has_drop: bool,
}

impl SampleFacts {
    /// The facts of `samples`.
    pub fn of(samples: &[Sample]) -> Self {
        let mut facts = SampleFacts { ordered: true, has_stale: false, has_drop: false };
        let mut last_t = None;
        let mut last_v = f64::NAN;
        for s in samples {
            facts.ordered &= last_t.is_none_or(|last| last < s.timestamp_ms);
            last_t = Some(s.timestamp_ms);
            if crate::is_stale_nan(s.value) {
                facts.has_stale = true;
            } else {
                // Comparisons with NaN are false, as between neighbours.
                facts.has_drop |= s.value < last_v;
                last_v = s.value;
            }
        }
        facts
    }
}

/// The storage service, local or remote.
#[async_trait::async_trait]
pub trait StorageNode: Send + Sync + std::fmt::Debug {
    /// A name for logs, metrics and errors (the node's address).
    fn name(&self) -> &str;
    /// Stores samples durably.
    async fn write(&self, req: WriteRequest) -> Result<WriteResponse, Status>;
    /// Stores the samples of decoded series durably. By default as a protobuf [`write`]
    /// (owned strings, as the network needs); an in-process node writes the batch as it is.
    ///
    /// [`write`]: StorageNode::write
    async fn write_batch(&self, req: BatchWrite) -> Result<WriteResponse, Status> {
        self.write(req.to_request()).await
    }
    /// Series matching the request's matchers, with samples in its time range.
    async fn select(&self, req: SelectRequest) -> Result<Vec<SharedSeries>, Status>;
    /// Label names.
    async fn label_names(&self, req: LabelNamesRequest) -> Result<Vec<String>, Status>;
    /// Values of one label.
    async fn label_values(&self, req: LabelValuesRequest) -> Result<Vec<String>, Status>;
    /// Label sets of matching series.
    async fn series(&self, req: SeriesRequest) -> Result<Vec<Series>, Status>;
    /// Cardinality statistics from the postings index. Nodes that do not implement it
    /// answer `Unimplemented`.
    async fn tsdb_status(&self, _req: TsdbStatusRequest) -> Result<TsdbStatusResponse, Status> {
        Err(Status::unimplemented("tsdb_status is not supported by this storage node"))
    }
    /// Admin: deletes the samples of matching series in a time range. Nodes that do not
    /// implement it answer `Unimplemented`.
    async fn delete_series(
        &self,
        _req: DeleteSeriesRequest,
    ) -> Result<DeleteSeriesResponse, Status> {
        Err(Status::unimplemented("delete_series is not supported by this storage node"))
    }
}

/// Whether a failed storage call may succeed when retried (node down, overloaded, timed out).
pub fn is_retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
            | Code::Cancelled
    )
}

/// Largest gRPC message a Basin process accepts or sends (limits memory per request).
pub const MAX_GRPC_MESSAGE_BYTES: usize = 256 << 20;

/// A storage node reached over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcStorageNode {
    name: String,
    client: StorageClient<Channel>,
}

impl GrpcStorageNode {
    /// A lazily connecting client for `addr` (`host:port`); each call times out after `timeout`.
    pub fn new(addr: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(2).min(timeout))
            .timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let client = StorageClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        Ok(Self { name: addr.to_string(), client })
    }
}

#[async_trait::async_trait]
impl StorageNode for GrpcStorageNode {
    fn name(&self) -> &str {
        &self.name
    }

    async fn write(&self, req: WriteRequest) -> Result<WriteResponse, Status> {
        Ok(self.client.clone().write(req).await?.into_inner())
    }

    async fn select(&self, req: SelectRequest) -> Result<Vec<SharedSeries>, Status> {
        let mut stream = self.client.clone().select(req).await?.into_inner();
        let mut out = Vec::new();
        while let Some(batch) = stream.message().await? {
            out.extend(batch.series.into_iter().map(SharedSeries::from));
        }
        Ok(out)
    }

    async fn label_names(&self, req: LabelNamesRequest) -> Result<Vec<String>, Status> {
        Ok(self.client.clone().label_names(req).await?.into_inner().names)
    }

    async fn label_values(&self, req: LabelValuesRequest) -> Result<Vec<String>, Status> {
        Ok(self.client.clone().label_values(req).await?.into_inner().values)
    }

    async fn series(&self, req: SeriesRequest) -> Result<Vec<Series>, Status> {
        Ok(self.client.clone().series(req).await?.into_inner().series)
    }

    async fn tsdb_status(&self, req: TsdbStatusRequest) -> Result<TsdbStatusResponse, Status> {
        Ok(self.client.clone().tsdb_status(req).await?.into_inner())
    }

    async fn delete_series(
        &self,
        req: DeleteSeriesRequest,
    ) -> Result<DeleteSeriesResponse, Status> {
        Ok(self.client.clone().delete_series(req).await?.into_inner())
    }
}
