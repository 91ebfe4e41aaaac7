//! Basin's storage engine on RocksDB and the storage node's services.
//!
//! - [`Storage`] (in [`engine`]): series, inverted index (global and per-day postings), head
//!   samples in a WAL-backed column family and compressed chunks ([`codec`]), day partitions
//!   for retention, dedup, limits; cardinality statistics ([`Storage::tsdb_status`]) and
//!   deletes ([`Storage::delete_series`]).
//! - [`LocalNode`]: the engine as a [`basin_proto::node::StorageNode`] for standalone mode.
//! - [`grpc_service`]: the `basin.storage.v1.Storage` gRPC server for a storage node.
//! - [`admin_router`]: `POST /api/v1/admin/flush`.
//! - [`register_metrics`]: self-metrics into a `prometheus_client` registry.
//!
//! Key layouts are documented in the private `keys` module; RocksDB tuning in `engine::options`.

pub mod admin;
pub mod codec;
pub mod config;
pub mod engine;
pub mod error;
mod index;
mod keys;
pub mod metrics;
pub mod node;
mod series;
pub mod service;

pub use admin::admin_router;
pub use config::{SeriesHasher, StorageConfig};
pub use engine::Storage;
pub use error::StorageError;
pub use metrics::{StorageMetrics, register_metrics};
pub use node::LocalNode;
pub use service::{StorageService, grpc_service};
