//! Basin's ingest gateway.
//!
//! Receives Prometheus remote_write 1.0 (`POST /api/v1/write`, snappy-compressed protobuf),
//! validates and normalises every series, drops HA replica labels, and writes each series to
//! the storage nodes that own it (rendezvous placement, `replication_factor` copies). A 204 is
//! sent only when every series reached its replicas (`min_write_replicas`, default all RF), so
//! an acknowledged write is durable; a storage node that is down has its share written to the
//! next nodes of each series' preference list.
//!
//! - [`decode`]: body → validated series, grouped per storage node.
//! - [`gateway`]: routing, rerouting around unhealthy nodes, concurrent writes, backpressure.
//! - [`http`]: the HTTP endpoints (write, cluster status) and their error mapping.
//! - [`grpc`]: the public gRPC write API (`basin.client.v1.Ingest`).
//! - [`metrics`]: self-metrics on `/metrics`.

pub mod decode;
pub mod gateway;
pub mod grpc;
pub mod http;
pub mod metrics;

pub use gateway::{Gateway, IngestConfig, WriteError};
pub use http::router;
pub use metrics::IngestMetrics;
