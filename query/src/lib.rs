//! Basin's query node: PromQL evaluation over series fetched from storage nodes, and the
//! Prometheus HTTP API on top of it.
//!
//! - [`source`]: where the engine gets series from ([`source::SeriesSource`]).
//! - [`promql`]: the PromQL engine.
//! - [`fanout`]: fan-out of selects and label calls to every storage node, merge of replicas.
//! - [`api`]: the Prometheus HTTP API (`/api/v1/...`).
//! - [`grpc`]: the public gRPC query API (`basin.client.v1.Query`).
//! - [`cluster_status`]: `/api/v1/status/cluster` and per-storage-node health metrics.
//! - [`metrics`]: the query node's self-metrics.

pub mod api;
pub mod cluster_status;
pub mod fanout;
pub mod grpc;
pub mod metrics;
pub mod promql;
pub mod promqltest;
pub mod source;
