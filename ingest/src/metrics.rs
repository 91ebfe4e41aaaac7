//! The gateway's self-metrics, exposed on `/metrics` under `basin_ingest_*`.
//!
//! Per storage node (label `node`, its address):
//! - `basin_ingest_storage_node_up`: 1 while the node is considered up (writes are routed to
//!   it), 0 while its share goes to the next nodes;
//! - `basin_ingest_storage_node_last_latency_seconds`: latency of the last call (write or probe);
//! - `basin_ingest_storage_node_last_error_timestamp_seconds`: when the last call failed;
//! - `basin_ingest_storage_node_consecutive_failures`;
//! - `basin_ingest_node_write_errors_total` and `basin_ingest_node_write_duration_seconds`.
//!
//! Gateway-wide: requests by status code (429 when over the in-flight bounds), samples and
//! series acknowledged, series copies written to a non-owner because an owner was down
//! (`hinted_series_total`), in-flight requests and samples.

use basin_proto::health::{Membership, encode_node_health};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// Label set for per-outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// HTTP status code returned.
    pub code: u16,
}

/// Label set for per-node counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// Storage node address.
    pub node: String,
}

fn node_latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Counters and histograms of the ingest path.
#[derive(Debug)]
pub struct IngestMetrics {
    /// Write requests by HTTP status code.
    pub requests: Family<CodeLabels, Counter>,
    /// Samples accepted (acknowledged with 2xx).
    pub samples: Counter,
    /// Series accepted (counted per request, so a series sent twice counts twice).
    pub series: Counter,
    /// Write request latency in seconds.
    pub duration: Histogram,
    /// Failed writes to storage nodes.
    pub node_errors: Family<NodeLabels, Counter>,
    /// Latency of writes to each storage node.
    pub node_write_duration: Family<NodeLabels, Histogram, fn() -> Histogram>,
    /// Series copies written to a node outside the series' owners because an owner was down.
    pub hinted_series: Counter,
    /// Series acknowledged with fewer than RF copies (at least `min_write_replicas`).
    pub under_replicated_series: Counter,
    /// Write requests being handled.
    pub inflight_requests: Gauge,
    /// Samples being written.
    pub inflight_samples: Gauge,
    membership: Arc<Mutex<Option<Membership>>>,
}

impl IngestMetrics {
    /// Creates the metrics and registers them under `basin_ingest_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            samples: Counter::default(),
            series: Counter::default(),
            duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            node_errors: Family::default(),
            node_write_duration: Family::new_with_constructor(node_latency_histogram),
            hinted_series: Counter::default(),
            under_replicated_series: Counter::default(),
            inflight_requests: Gauge::default(),
            inflight_samples: Gauge::default(),
            membership: Arc::new(Mutex::new(None)),
        };
        let r = registry.sub_registry_with_prefix("basin_ingest");
        r.register("write_requests", "Remote-write requests by status code", m.requests.clone());
        r.register("samples_ingested", "Samples acknowledged to senders", m.samples.clone());
        r.register("series_ingested", "Series in acknowledged requests", m.series.clone());
        r.register("write_duration_seconds", "Remote-write request latency", m.duration.clone());
        r.register("node_write_errors", "Failed writes per storage node", m.node_errors.clone());
        r.register(
            "node_write_duration_seconds",
            "Latency of writes per storage node",
            m.node_write_duration.clone(),
        );
        r.register(
            "hinted_series",
            "Series copies written to a non-owner node because an owner was down",
            m.hinted_series.clone(),
        );
        r.register(
            "under_replicated_series",
            "Series acknowledged with fewer copies than the replication factor",
            m.under_replicated_series.clone(),
        );
        r.register(
            "inflight_requests",
            "Write requests being handled",
            m.inflight_requests.clone(),
        );
        r.register("inflight_samples", "Samples being written", m.inflight_samples.clone());
        r.register_collector(Box::new(NodeHealthCollector(Arc::clone(&m.membership))));
        m
    }

    /// Exposes the health of `membership`'s nodes from now on.
    pub fn watch(&self, membership: Membership) {
        if let Ok(mut slot) = self.membership.lock() {
            *slot = Some(membership);
        }
    }
}

/// Renders the per-node health gauges at scrape time.
#[derive(Debug)]
struct NodeHealthCollector(Arc<Mutex<Option<Membership>>>);

impl Collector for NodeHealthCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(membership) = self.0.lock().ok().and_then(|m| m.clone()) else { return Ok(()) };
        encode_node_health(&membership.status(), encoder)
    }
}
