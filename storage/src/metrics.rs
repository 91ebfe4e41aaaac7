//! The storage engine's self-metrics, registered into the process's `prometheus_client`
//! registry by [`register_metrics`].

use crate::engine::Storage;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Label set of the error counter: which operation failed.
type OpLabel = [(&'static str, &'static str); 1];

/// Counters and gauges of one storage engine. Cloning shares the underlying metrics.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    /// Samples accepted by `write`.
    pub samples_written: Counter,
    /// Series created by `write`.
    pub series_created: Counter,
    /// Series stored (estimated at open, then counted).
    pub series: Gauge,
    /// Series id hash collisions resolved by probing.
    pub id_collisions: Counter,
    /// Select requests served.
    pub select_requests: Counter,
    /// Select latency in seconds.
    pub select_seconds: Histogram,
    /// Samples removed by `delete_series`.
    pub samples_deleted: Counter,
    /// Series removed entirely by `delete_series`.
    pub series_deleted: Counter,
    /// Failed operations, by `op`.
    pub errors: Family<OpLabel, Counter>,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self {
            samples_written: Counter::default(),
            series_created: Counter::default(),
            series: Gauge::default(),
            id_collisions: Counter::default(),
            select_requests: Counter::default(),
            select_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            samples_deleted: Counter::default(),
            series_deleted: Counter::default(),
            errors: Family::default(),
        }
    }
}

impl StorageMetrics {
    /// Passes `result` through, counting it as a failed `op` when it is an error.
    pub(crate) fn count_error<T, E>(&self, op: &'static str, result: Result<T, E>) -> Result<T, E> {
        if result.is_err() {
            self.errors.get_or_create(&[("op", op)]).inc();
        }
        result
    }
}

/// Registers `storage`'s metrics (prefix `basin_storage_`) into `registry`.
pub fn register_metrics(storage: &Arc<Storage>, registry: &mut Registry) {
    let m = storage.metrics.clone();
    let r = registry.sub_registry_with_prefix("basin_storage");
    r.register("samples_written", "Samples accepted by writes", m.samples_written);
    r.register("series_created", "Series created by writes", m.series_created);
    r.register("series", "Series stored", m.series);
    r.register("series_id_collisions", "Series id hash collisions resolved", m.id_collisions);
    r.register("select_requests", "Select requests served", m.select_requests);
    r.register("select_duration_seconds", "Select latency", m.select_seconds);
    r.register("samples_deleted", "Samples removed by delete_series", m.samples_deleted);
    r.register("series_deleted", "Series removed entirely by delete_series", m.series_deleted);
    r.register("errors", "Failed storage operations by operation", m.errors);
}
