//! The query node's self-metrics, exposed on `/metrics` under `basin_query_*`.
//!
//! - `basin_query_http_requests_total{endpoint, code}`: HTTP API requests by endpoint and status.
//! - `basin_query_http_request_duration_seconds{endpoint}`: HTTP API latency.
//! - `basin_query_storage_node_errors_total{node}`: storage-node calls that failed or timed out
//!   during fan-out, whether or not the answer was still complete thanks to replicas.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Labels of the per-endpoint request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointCodeLabels {
    /// The API endpoint, e.g. `query_range` (a fixed name, never the raw path).
    pub endpoint: &'static str,
    /// HTTP status code returned.
    pub code: u16,
}

/// Labels of the per-endpoint latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The API endpoint, e.g. `query_range`.
    pub endpoint: &'static str,
}

/// Labels of the per-node error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// The storage node's name (its address).
    pub node: String,
}

/// Constructor of latency histograms: 1 ms to ~65 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Counters and histograms of the query node.
#[derive(Debug)]
pub struct QueryMetrics {
    /// HTTP API requests by endpoint and status code.
    pub requests: Family<EndpointCodeLabels, Counter>,
    /// HTTP API request latency in seconds, by endpoint.
    pub duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    /// Failed or timed-out storage-node calls, by node.
    pub node_errors: Family<NodeLabels, Counter>,
}

impl Default for QueryMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            node_errors: Family::default(),
        }
    }
}

impl QueryMetrics {
    /// Creates the metrics and registers them in `registry` under `basin_query_*`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("basin_query");
        r.register(
            "http_requests",
            "Prometheus HTTP API requests by endpoint and status code",
            m.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Prometheus HTTP API request latency by endpoint",
            m.duration.clone(),
        );
        r.register(
            "storage_node_errors",
            "Storage-node calls that failed or timed out during query fan-out",
            m.node_errors.clone(),
        );
        Arc::new(m)
    }

    /// Records one finished API request.
    pub fn observe_request(&self, endpoint: &'static str, code: u16, seconds: f64) {
        self.requests.get_or_create(&EndpointCodeLabels { endpoint, code }).inc();
        self.duration.get_or_create(&EndpointLabels { endpoint }).observe(seconds);
    }

    /// Records one failed storage-node call.
    pub fn node_error(&self, node: &str) {
        self.node_errors.get_or_create(&NodeLabels { node: node.to_string() }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn metrics_are_exposed_with_prefix_and_labels() {
        let mut registry = Registry::default();
        let m = QueryMetrics::register(&mut registry);
        m.observe_request("query", 200, 0.01);
        m.node_error("127.0.0.1:7001");
        let mut text = String::new();
        encode(&mut text, &registry).expect("encoding into a String cannot fail");
        assert!(
            text.contains(r#"basin_query_http_requests_total{endpoint="query",code="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"basin_query_storage_node_errors_total{node="127.0.0.1:7001"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"basin_query_http_request_duration_seconds_count{endpoint="query"} 1"#),
            "{text}"
        );
    }
}
