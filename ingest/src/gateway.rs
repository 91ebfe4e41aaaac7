//! Routing validated series to the storage nodes that own them, under failure.
//!
//! Each series has a rendezvous preference list over all storage nodes (see
//! `basin_proto::placement`); its owners are the first `replication_factor` (RF) nodes of that
//! list. A write proceeds in rounds:
//!
//! 1. every series that still lacks copies is assigned to the next nodes of its preference
//!    list that are up (see `basin_proto::health`), skipping nodes already tried for it, so a
//!    node that is down has its share written to the next healthy nodes instead ("hinted"
//!    placement: storage does not care which node holds a series, and query nodes read every
//!    node, so the copies are found wherever they are);
//! 2. per-node batches are sent concurrently, each call bounded by the storage timeout;
//! 3. a node that failed with a retryable status is marked down, and its series go back to
//!    step 1 for the next node in their list.
//!
//! Rounds end when every series has RF copies or no untried node is left. Nodes marked down
//! are tried only when the healthy ones cannot give a series its minimum number of copies
//! (their mark may be stale). The write is acknowledged only if every series reached
//! `min_write_replicas` nodes (default RF): an acknowledgement means every sample is durable on
//! that many distinct nodes, so it survives the loss of `min_write_replicas - 1` of them.
//! A node that rejects the data as invalid makes the write a 400.
//!
//! Backpressure: in-flight requests and samples are bounded per gateway ([`Admission`]); over
//! the bound the sender gets a retryable "overloaded" error (HTTP 429) instead of the gateway
//! buffering without limit.

use crate::decode::DecodeLimits;
use crate::metrics::{IngestMetrics, NodeLabels};
use basin_proto::batch::{BatchWrite, SeriesBatch};
use basin_proto::hash::series_hash;
use basin_proto::health::{Membership, ObservedNode};
use basin_proto::node::{StorageNode, is_retryable};
use basin_proto::placement::Placement;
use basin_proto::storage::WriteResponse;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Copies of each series (distinct storage nodes).
    pub replication_factor: usize,
    /// Copies each series must reach before a write is acknowledged; 0 means
    /// `replication_factor`. Clamped to `1..=replication_factor`.
    pub min_write_replicas: usize,
    /// Write requests handled at once; more are refused with 429.
    pub max_inflight_requests: usize,
    /// Samples being written at once; a request that would exceed it is refused with 429.
    pub max_inflight_samples: usize,
    /// HTTP header naming the tenant; absent means the default tenant.
    pub tenant_header: String,
    /// Labels removed from every incoming series (HA pair replica labels).
    pub ha_replica_labels: Vec<String>,
    /// Decoding limits.
    pub limits: DecodeLimits,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            replication_factor: 1,
            min_write_replicas: 0,
            max_inflight_requests: 256,
            max_inflight_samples: 4_000_000,
            tenant_header: "X-Scope-OrgID".into(),
            ha_replica_labels: Vec::new(),
            limits: DecodeLimits::default(),
        }
    }
}

impl IngestConfig {
    /// The effective minimum number of copies for an acknowledgement, given `nodes` nodes.
    pub fn required_copies(&self, nodes: usize) -> usize {
        let rf = self.replication_factor.clamp(1, nodes.max(1));
        match self.min_write_replicas {
            0 => rf,
            m => m.clamp(1, rf),
        }
    }
}

/// Why a write was not acknowledged.
#[derive(Debug, Error)]
pub enum WriteError {
    /// A storage node rejected the data as invalid (not retryable).
    #[error("storage node {node} rejected the write: {message}")]
    Rejected {
        /// Node address.
        node: String,
        /// Its message.
        message: String,
    },
    /// Some series could not be stored on enough nodes (retryable).
    #[error(
        "{failed} of {total} series reached fewer than {required} storage nodes; last error: {message}"
    )]
    Unavailable {
        /// Series short of copies.
        failed: usize,
        /// Series in the request.
        total: usize,
        /// Copies required per series.
        required: usize,
        /// The last storage error seen (node and message).
        message: String,
    },
    /// The gateway is at its in-flight bound (retryable, HTTP 429).
    #[error("gateway overloaded: {0}")]
    Overloaded(String),
    /// The gateway was configured without storage nodes.
    #[error("no storage nodes configured")]
    NoNodes,
}

impl WriteError {
    /// Whether the sender may retry.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, WriteError::Rejected { .. })
    }
}

/// What an acknowledged write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    /// Series copies written to a node that is not among the series' owners (because an owner
    /// was down).
    pub hinted: usize,
    /// Series that reached fewer than RF (but at least the minimum) copies.
    pub under_replicated: usize,
}

/// Bounds on the work a gateway accepts at once.
#[derive(Debug)]
pub struct Admission {
    requests: Arc<Semaphore>,
    samples: Arc<Semaphore>,
    max_requests: usize,
    max_samples: usize,
}

/// Held while a request is being handled; releases its share of the bounds on drop.
#[derive(Debug)]
pub struct Admitted {
    _request: OwnedSemaphorePermit,
    _samples: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// Bounds of `max_requests` requests and `max_samples` samples in flight (0: unbounded).
    pub fn new(max_requests: usize, max_samples: usize) -> Self {
        let cap =
            |n: usize| if n == 0 { Semaphore::MAX_PERMITS } else { n.min(Semaphore::MAX_PERMITS) };
        Self {
            requests: Arc::new(Semaphore::new(cap(max_requests))),
            samples: Arc::new(Semaphore::new(cap(max_samples))),
            max_requests,
            max_samples,
        }
    }

    /// Admits one request, or says why not.
    pub fn request(&self) -> Result<Admitted, WriteError> {
        let permit = Arc::clone(&self.requests).try_acquire_owned().map_err(|_| {
            WriteError::Overloaded(format!(
                "{} write requests in flight (max_inflight_requests)",
                self.max_requests
            ))
        })?;
        Ok(Admitted { _request: permit, _samples: None })
    }

    /// Adds `samples` to an admitted request, or says why not. A request larger than the
    /// whole bound takes all of it (it could never fit otherwise).
    pub fn samples(&self, admitted: &mut Admitted, samples: usize) -> Result<(), WriteError> {
        let want = samples.clamp(1, self.max_samples.max(1)).min(u32::MAX as usize);
        let permit =
            Arc::clone(&self.samples).try_acquire_many_owned(want as u32).map_err(|_| {
                WriteError::Overloaded(format!(
                    "more than {} samples in flight (max_inflight_samples)",
                    self.max_samples
                ))
            })?;
        admitted._samples = Some(permit);
        Ok(())
    }

    /// Requests in flight.
    pub fn inflight_requests(&self) -> usize {
        let cap = if self.max_requests == 0 { Semaphore::MAX_PERMITS } else { self.max_requests };
        cap.saturating_sub(self.requests.available_permits())
    }

    /// Samples in flight.
    pub fn inflight_samples(&self) -> usize {
        let cap = if self.max_samples == 0 { Semaphore::MAX_PERMITS } else { self.max_samples };
        cap.saturating_sub(self.samples.available_permits())
    }
}

/// The ingest gateway: placement, observed clients of every storage node, and the bounds.
#[derive(Debug)]
pub struct Gateway {
    cfg: IngestConfig,
    membership: Membership,
    placement: Placement,
    metrics: Arc<IngestMetrics>,
    admission: Admission,
}

impl Gateway {
    /// A gateway over `nodes`; placement is computed from the nodes' names (addresses), so
    /// every gateway configured with the same list routes identically. Each call to a node is
    /// bounded by the node client's own timeout.
    pub fn new(
        cfg: IngestConfig,
        nodes: Vec<Arc<dyn StorageNode>>,
        metrics: Arc<IngestMetrics>,
    ) -> Self {
        Self::with_membership(cfg, Membership::new(nodes, None), metrics)
    }

    /// A gateway over already observed nodes (shared with the status endpoint and probes).
    pub fn with_membership(
        cfg: IngestConfig,
        membership: Membership,
        metrics: Arc<IngestMetrics>,
    ) -> Self {
        let names: Vec<&str> = membership.nodes().iter().map(|n| n.name()).collect();
        let placement = Placement::new(&names);
        let admission = Admission::new(cfg.max_inflight_requests, cfg.max_inflight_samples);
        metrics.watch(membership.clone());
        Self { cfg, membership, placement, metrics, admission }
    }

    /// The settings.
    pub fn config(&self) -> &IngestConfig {
        &self.cfg
    }

    /// The metrics.
    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    /// The storage nodes and their health.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The in-flight bounds.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Writes validated series of `tenant` to their replicas; returns when every series has
    /// enough copies (see the module docs), or why not.
    pub async fn write(
        &self,
        tenant: &str,
        series: SeriesBatch,
    ) -> Result<WriteSummary, WriteError> {
        let nodes = self.membership.nodes();
        let n = nodes.len();
        if n == 0 {
            return Err(WriteError::NoNodes);
        }
        if series.is_empty() {
            return Ok(WriteSummary::default());
        }
        let rf = self.cfg.replication_factor.clamp(1, n);
        let required = self.cfg.required_copies(n);
        // Per series: its preference list (flat, n entries each), the nodes tried so far,
        // and the copies stored so far.
        let mut prefs: Vec<usize> = Vec::with_capacity(series.len() * n);
        if n == 1 {
            // One node (standalone, or a one-node cluster) owns every series: no hashing.
            prefs.resize(series.len(), 0);
        } else {
            let mut owners = Vec::with_capacity(n);
            for (labels, _) in series.view(tenant).iter() {
                self.placement.preference(series_hash(tenant, labels), &mut owners);
                prefs.extend_from_slice(&owners);
            }
        }
        let series = Arc::new(series);
        let mut tried = vec![false; series.len() * n];
        let mut copies = vec![0usize; series.len()];
        let mut summary = WriteSummary::default();
        let mut last_error = String::new();

        loop {
            // Assign every series short of RF copies to its next untried nodes.
            let up: Vec<bool> = nodes.iter().map(|o| o.health().is_up()).collect();
            let mut batches: Vec<Vec<usize>> = vec![Vec::new(); n];
            for (i, &have) in copies.iter().enumerate() {
                if have >= rf {
                    continue;
                }
                let pref = &prefs[i * n..(i + 1) * n];
                let tried_i = &mut tried[i * n..(i + 1) * n];
                let mut want = rf - have;
                // Healthy nodes first, in preference order.
                for (rank, &node) in pref.iter().enumerate() {
                    if want == 0 {
                        break;
                    }
                    if !tried_i[node] && up[node] {
                        tried_i[node] = true;
                        batches[node].push(i);
                        if rank >= rf {
                            summary.hinted += 1;
                        }
                        want -= 1;
                    }
                }
                // Not enough healthy nodes for the minimum: try the ones marked down too,
                // their mark may be stale.
                let assigned = rf - have - want;
                let mut short = required.saturating_sub(have + assigned);
                for (rank, &node) in pref.iter().enumerate() {
                    if short == 0 {
                        break;
                    }
                    if !tried_i[node] {
                        tried_i[node] = true;
                        batches[node].push(i);
                        if rank >= rf {
                            summary.hinted += 1;
                        }
                        short -= 1;
                    }
                }
            }
            if batches.iter().all(Vec::is_empty) {
                break;
            }
            let sends = batches.into_iter().enumerate().filter(|(_, b)| !b.is_empty()).map(
                |(node, batch)| {
                    let client: Arc<ObservedNode> = Arc::clone(&nodes[node]);
                    // A node getting every series reads the batch whole.
                    let only = (batch.len() < series.len()).then(|| batch.clone());
                    let req =
                        BatchWrite { tenant: tenant.to_string(), batch: Arc::clone(&series), only };
                    async move {
                        let started = Instant::now();
                        let result = client.write_batch(req).await;
                        (node, batch, started.elapsed(), result)
                    }
                },
            );
            let mut rejected = None;
            for (node, batch, elapsed, result) in futures::future::join_all(sends).await {
                match self.observe(&nodes[node], batch.len(), elapsed, result) {
                    Ok(()) => {
                        for i in batch {
                            copies[i] += 1;
                        }
                    }
                    Err(NodeFailure::Retryable(message)) => last_error = message,
                    Err(NodeFailure::Rejected(e)) => rejected = Some(e),
                }
            }
            // A rejection wins over unavailability: retrying will not help.
            if let Some(e) = rejected {
                return Err(e);
            }
        }

        self.metrics.hinted_series.inc_by(summary.hinted as u64);
        let failed = copies.iter().filter(|&&c| c < required).count();
        if failed > 0 {
            return Err(WriteError::Unavailable {
                failed,
                total: series.len(),
                required,
                message: last_error,
            });
        }
        summary.under_replicated = copies.iter().filter(|&&c| c < rf).count();
        self.metrics.under_replicated_series.inc_by(summary.under_replicated as u64);
        Ok(summary)
    }

    /// Records one node's answer to a write of `series` series in the metrics and the log.
    fn observe(
        &self,
        node: &ObservedNode,
        series: usize,
        elapsed: std::time::Duration,
        result: Result<WriteResponse, tonic::Status>,
    ) -> Result<(), NodeFailure> {
        let name = node.name().to_string();
        let labels = NodeLabels { node: name.clone() };
        self.metrics.node_write_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
        let status = match result {
            Ok(_) => return Ok(()),
            Err(status) => status,
        };
        self.metrics.node_errors.get_or_create(&labels).inc();
        tracing::warn!(node = %name, code = ?status.code(), message = status.message(), series, "storage write failed");
        if is_retryable(&status) {
            Err(NodeFailure::Retryable(format!("{name}: {}", status.message())))
        } else {
            Err(NodeFailure::Rejected(WriteError::Rejected {
                node: name,
                message: status.message().to_string(),
            }))
        }
    }
}

/// How a node failed a write.
enum NodeFailure {
    /// Worth trying elsewhere or later; the message names the node.
    Retryable(String),
    /// The node refused the data as invalid.
    Rejected(WriteError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use basin_proto::storage::{
        Label, LabelNamesRequest, LabelValuesRequest, Sample, SelectRequest, Series, SeriesRequest,
        WriteRequest, WriteResponse,
    };
    use prometheus_client::registry::Registry;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tonic::Status;

    /// A storage node in memory that can be switched off.
    #[derive(Debug)]
    struct FakeNode {
        name: String,
        down: AtomicBool,
        reject: AtomicBool,
        stored: Mutex<Vec<Series>>,
    }

    impl FakeNode {
        fn new(i: usize) -> Arc<Self> {
            Arc::new(Self {
                name: format!("10.0.0.{i}:9204"),
                down: AtomicBool::new(false),
                reject: AtomicBool::new(false),
                stored: Mutex::new(Vec::new()),
            })
        }
        fn count(&self) -> usize {
            self.stored.lock().map(|s| s.len()).unwrap_or(0)
        }
    }

    #[async_trait::async_trait]
    impl StorageNode for FakeNode {
        fn name(&self) -> &str {
            &self.name
        }
        async fn write(&self, req: WriteRequest) -> Result<WriteResponse, Status> {
            if self.down.load(Ordering::SeqCst) {
                return Err(Status::unavailable("connection refused"));
            }
            if self.reject.load(Ordering::SeqCst) {
                return Err(Status::invalid_argument("bad label"));
            }
            self.stored.lock().map_err(|_| Status::internal("poisoned"))?.extend(req.series);
            Ok(WriteResponse::default())
        }
        async fn select(
            &self,
            _: SelectRequest,
        ) -> Result<Vec<basin_proto::node::SharedSeries>, Status> {
            Ok(Vec::new())
        }
        async fn label_names(&self, _: LabelNamesRequest) -> Result<Vec<String>, Status> {
            Ok(Vec::new())
        }
        async fn label_values(&self, _: LabelValuesRequest) -> Result<Vec<String>, Status> {
            if self.down.load(Ordering::SeqCst) {
                return Err(Status::unavailable("connection refused"));
            }
            Ok(Vec::new())
        }
        async fn series(&self, _: SeriesRequest) -> Result<Vec<Series>, Status> {
            Ok(Vec::new())
        }
    }

    fn batch(n: usize) -> SeriesBatch {
        let series: Vec<Series> = (0..n)
            .map(|i| Series {
                labels: vec![
                    Label { name: "__name__".into(), value: "m".into() },
                    Label { name: "i".into(), value: i.to_string() },
                ],
                samples: vec![Sample { timestamp_ms: 1, value: 1.0 }],
            })
            .collect();
        SeriesBatch::try_from(series.as_slice()).expect("small batch")
    }

    fn gateway(fakes: &[Arc<FakeNode>], rf: usize, min: usize) -> Gateway {
        let nodes = fakes.iter().map(|f| Arc::clone(f) as Arc<dyn StorageNode>).collect();
        let metrics = Arc::new(IngestMetrics::register(&mut Registry::default()));
        let cfg =
            IngestConfig { replication_factor: rf, min_write_replicas: min, ..Default::default() };
        Gateway::new(cfg, nodes, metrics)
    }

    #[tokio::test]
    async fn all_up_writes_rf_copies_on_owners() {
        let fakes: Vec<_> = (0..3).map(FakeNode::new).collect();
        let gw = gateway(&fakes, 2, 0);
        let s = gw.write("", batch(300)).await.expect("write");
        assert_eq!(s, WriteSummary::default());
        assert_eq!(fakes.iter().map(|f| f.count()).sum::<usize>(), 600);
    }

    #[tokio::test]
    async fn a_down_node_has_its_share_written_to_the_next_nodes() {
        let fakes: Vec<_> = (0..3).map(FakeNode::new).collect();
        fakes[1].down.store(true, Ordering::SeqCst);
        let gw = gateway(&fakes, 2, 0);
        let s = gw.write("", batch(300)).await.expect("write with one node down");
        assert!(s.hinted > 100, "{s:?}");
        // Every series is on both live nodes.
        assert_eq!(fakes[0].count(), 300);
        assert_eq!(fakes[2].count(), 300);
        assert!(!gw.membership().nodes()[1].health().is_up());
        // The next write skips the down node without trying it.
        gw.write("", batch(10)).await.expect("second write");
        assert_eq!(fakes[0].count(), 310);
    }

    #[tokio::test]
    async fn too_few_nodes_for_the_minimum_is_retryable() {
        let fakes: Vec<_> = (0..2).map(FakeNode::new).collect();
        fakes[0].down.store(true, Ordering::SeqCst);
        let err = gateway(&fakes, 2, 0).write("", batch(20)).await.expect_err("needs 2 copies");
        assert!(err.is_retryable(), "{err}");
        assert!(matches!(err, WriteError::Unavailable { failed: 20, .. }), "{err}");
        // With a minimum of one copy the same write is acknowledged.
        let s = gateway(&fakes, 2, 1).write("", batch(20)).await.expect("min 1");
        assert_eq!(s.under_replicated, 20);
    }

    #[tokio::test]
    async fn a_node_marked_down_is_retried_when_nothing_else_is_left() {
        let fakes: Vec<_> = (0..2).map(FakeNode::new).collect();
        let gw = gateway(&fakes, 2, 0);
        fakes[0].down.store(true, Ordering::SeqCst);
        assert!(gw.write("", batch(5)).await.is_err());
        fakes[0].down.store(false, Ordering::SeqCst);
        // Still marked down (no probe ran), but the minimum needs it: it is tried and works.
        gw.write("", batch(5)).await.expect("stale mark does not block writes");
        assert!(gw.membership().nodes()[0].health().is_up());
    }

    #[tokio::test]
    async fn rejection_is_not_retryable() {
        let fakes: Vec<_> = (0..3).map(FakeNode::new).collect();
        fakes[2].reject.store(true, Ordering::SeqCst);
        let err = gateway(&fakes, 3, 0).write("", batch(3)).await.expect_err("rejected");
        assert!(!err.is_retryable());
        // Rejections say nothing about health.
        assert!(fakes.iter().all(|f| !f.down.load(Ordering::SeqCst)));
    }

    #[tokio::test]
    async fn a_single_node_gets_everything_and_its_failures_map_like_any_node() {
        let fake = FakeNode::new(0);
        let gw = gateway(std::slice::from_ref(&fake), 3, 0);
        assert_eq!(gw.write("", batch(50)).await.expect("write"), WriteSummary::default());
        assert_eq!(fake.count(), 50);
        fake.down.store(true, Ordering::SeqCst);
        let err = gw.write("", batch(7)).await.expect_err("node down");
        assert!(err.is_retryable(), "{err}");
        assert!(matches!(err, WriteError::Unavailable { failed: 7, total: 7, .. }), "{err}");
        assert!(!gw.membership().nodes()[0].health().is_up());
        fake.down.store(false, Ordering::SeqCst);
        fake.reject.store(true, Ordering::SeqCst);
        let err = gw.write("", batch(2)).await.expect_err("rejected");
        assert!(!err.is_retryable(), "{err}");
        fake.reject.store(false, Ordering::SeqCst);
        gw.write("", batch(1)).await.expect("a stale down mark does not block the only node");
        assert_eq!(fake.count(), 51);
    }

    #[test]
    fn admission_bounds_requests_and_samples() {
        let a = Admission::new(2, 100);
        let mut r1 = a.request().expect("first");
        let _r2 = a.request().expect("second");
        assert!(matches!(a.request(), Err(WriteError::Overloaded(_))));
        a.samples(&mut r1, 80).expect("80 fit");
        assert_eq!(a.inflight_samples(), 80);
        drop(r1);
        assert_eq!(a.inflight_requests(), 1);
        let mut r3 = a.request().expect("a slot is free again");
        // Larger than the whole bound: takes all of it instead of never fitting.
        a.samples(&mut r3, 1_000).expect("oversized request");
        assert!(a.request().is_err(), "two in flight");
    }
}
