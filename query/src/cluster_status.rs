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
use basin_proto::health::{Membership, encode_node_health};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use std::sync::Arc;

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

#[derive(Debug)]
struct NodeHealthCollector(Membership);

impl Collector for NodeHealthCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_node_health(&self.0.status(), encoder)
    }
}
