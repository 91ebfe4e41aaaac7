//! `GET /api/v1/status/cluster` on the query node, and the same data as metrics.
//!
//! The body is documented in `basin_proto::health` (one entry per storage node: `health`
//! `up`/`down`, `lastError`, `lastLatencySeconds`, timestamps), with the query node's
//! `replicationFactor`: how many failed nodes an answer survives complete.
//!
//! Metrics (label `node`): `basin_query_storage_node_up`,
//! `basin_query_storage_node_last_latency_seconds`,
//! `basin_query_storage_node_last_error_timestamp_seconds`,
//! `basin_query_storage_node_consecutive_failures`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use basin_proto::health::{Membership, unix_seconds};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// What the status endpoint reports.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    membership: Membership,
    replication_factor: usize,
}

impl ClusterStatus {
    /// Status of `membership` for a query node configured with `replication_factor`.
    pub fn new(membership: Membership, replication_factor: usize) -> Self {
        Self { membership, replication_factor }
    }

    /// The JSON body of `/api/v1/status/cluster`.
    pub fn json(&self) -> String {
        self.membership
            .status_json("query", &[("replicationFactor", self.replication_factor.to_string())])
    }

    /// Registers the per-node gauges (under `basin_query_`) in `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry
            .sub_registry_with_prefix("basin_query")
            .register_collector(Box::new(NodeHealthCollector(self.membership.clone())));
    }
}

/// The route `GET /api/v1/status/cluster`.
pub fn router(status: Arc<ClusterStatus>) -> Router {
    Router::new().route("/api/v1/status/cluster", get(cluster)).with_state(status)
}

async fn cluster(State(s): State<Arc<ClusterStatus>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], s.json()).into_response()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Debug)]
struct NodeHealthCollector(Membership);

impl Collector for NodeHealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = Family::<NodeLabels, Gauge>::default();
        let latency = Family::<NodeLabels, Gauge<f64, AtomicU64>>::default();
        let error_at = Family::<NodeLabels, Gauge<f64, AtomicU64>>::default();
        let failures = Family::<NodeLabels, Gauge>::default();
        for s in self.0.status() {
            let l = NodeLabels { node: s.node.clone() };
            up.get_or_create(&l).set(i64::from(s.up));
            if let Some(d) = s.last_latency {
                latency.get_or_create(&l).set(d.as_secs_f64());
            }
            error_at.get_or_create(&l).set(s.last_error_at.map_or(0.0, unix_seconds));
            failures.get_or_create(&l).set(i64::from(s.consecutive_failures));
        }
        let e = encoder.encode_descriptor(
            "storage_node_up",
            "Whether the storage node answered its last call (1) or not (0)",
            None,
            up.metric_type(),
        )?;
        up.encode(e)?;
        let e = encoder.encode_descriptor(
            "storage_node_last_latency_seconds",
            "Latency of the last call to the storage node",
            None,
            latency.metric_type(),
        )?;
        latency.encode(e)?;
        let e = encoder.encode_descriptor(
            "storage_node_last_error_timestamp_seconds",
            "Unix time of the last failed call to the storage node (0: never)",
            None,
            error_at.metric_type(),
        )?;
        error_at.encode(e)?;
        let e = encoder.encode_descriptor(
            "storage_node_consecutive_failures",
            "Failed calls to the storage node since its last success",
            None,
            failures.metric_type(),
        )?;
        failures.encode(e)
    }
}
