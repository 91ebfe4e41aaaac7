//! Basin's wire contracts and the small model every role shares.
//!
//! - [`remote`]: Prometheus remote_write 1.0 messages (`prometheus.WriteRequest`).
//! - [`storage`]: the storage node's gRPC service (`basin.storage.v1.Storage`).
//! - [`batch`]: the series of one write stored flat ([`batch::SeriesBatch`]) and borrowed
//!   ([`batch::WriteView`]), so the write path allocates nothing per label or series.
//! - [`labels`], [`matcher`], [`hash`], [`placement`]: label sets, PromQL label matchers,
//!   series identity and the series → storage node mapping, identical in every process.
//! - [`client`]: Basin's public gRPC client API (`basin.client.v1.Ingest`, `basin.client.v1.Query`).
//! - [`health`]: storage-node health as a gateway or query node sees it (probes, status).
//! - [`node`]: the [`node::StorageNode`] trait through which gateways and query nodes reach a
//!   storage node, over gRPC or in-process (standalone).

pub mod batch;
pub mod hash;
pub mod health;
pub mod labels;
pub mod matcher;
pub mod node;
pub mod placement;

/// Prometheus remote_write 1.0 wire types.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod remote {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// The storage node gRPC service and its messages.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod storage {
    include!(concat!(env!("OUT_DIR"), "/basin.storage.v1.rs"));
}

/// Basin's public gRPC client API: `Ingest.Write` on gateways, `Query.*` on query nodes.
/// See `proto/client.proto` for the contract (tenants, errors, durability).
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod client {
    include!(concat!(env!("OUT_DIR"), "/basin.client.v1.rs"));
}

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// The tenant used when a request names none.
pub const DEFAULT_TENANT: &str = "";

/// Prometheus' staleness marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the staleness marker (bit-exact, not just any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
