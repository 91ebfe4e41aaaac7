//! The storage engine's configuration: every field has a default, so the binary's config layer
//! only maps the options it exposes.

use basin_proto::storage::Label;
use std::path::PathBuf;
use std::time::Duration;

/// The hash of a tenant and sorted labels under which storage looks a series up (its id
/// itself is sequential).
///
/// Production uses [`basin_proto::hash::series_hash`]; tests swap in a hash that collides on
/// purpose to exercise collision resolution.
pub type SeriesHasher = fn(tenant: &str, labels: &[Label]) -> u64;

/// Storage engine configuration.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Directory holding the RocksDB database (created when missing).
    pub data_dir: PathBuf,
    /// Data older than this is dropped, a whole day partition at a time (so up to one day
    /// more than `retention` may be kept). `None` keeps data forever.
    pub retention: Option<Duration>,
    /// Keep only the last sample of each series in every interval of this length (aligned to
    /// the Unix epoch), on read and when chunks are written. `None` keeps every sample.
    pub dedup_interval: Option<Duration>,
    /// Most series one select may return (a request may ask for fewer, not more).
    pub max_series_per_select: usize,
    /// Most samples one select may return (a request may ask for fewer, not more).
    pub max_samples_per_select: usize,
    /// Fsync the write-ahead log before acknowledging a write. Off, an acknowledged write
    /// survives a process crash (the WAL is in the OS page cache) but not a power loss.
    pub sync_writes: bool,
    /// RocksDB block cache shared by all column families, in bytes.
    pub block_cache_bytes: usize,
    /// Queries spanning more day partitions than this use the global index instead of the
    /// per-day one (one index lookup instead of one per day).
    pub max_index_days: usize,
    /// Head samples per series that make the background task cut them into compressed
    /// chunks (the head holds them uncompressed, in memory, until then).
    pub samples_per_chunk: usize,
    /// Most samples in one chunk: each cut appends to the series-day's last chunk while it
    /// has room, so chunks grow past `samples_per_chunk` and their fixed costs (key, header)
    /// spread over more samples. Capped at [`crate::codec::MAX_SAMPLES`].
    pub max_chunk_samples: usize,
    /// WAL bytes written since the last checkpoint that make the background task checkpoint
    /// early (cut full head series into chunks and truncate the WAL): bounds the WAL's size
    /// and the time replay takes after a crash.
    pub wal_checkpoint_bytes: usize,
    /// How often the background task enforces retention and cuts head samples into chunks.
    /// `None` disables the background task (tests; `flush` still does both).
    pub maintenance_interval: Option<Duration>,
    /// Hash under which series are looked up (see [`SeriesHasher`]).
    pub series_hasher: SeriesHasher,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data/storage"),
            retention: None,
            dedup_interval: None,
            max_series_per_select: 100_000,
            max_samples_per_select: 50_000_000,
            sync_writes: false,
            block_cache_bytes: 256 << 20,
            max_index_days: 40,
            samples_per_chunk: 120,
            max_chunk_samples: 480,
            wal_checkpoint_bytes: 64 << 20,
            maintenance_interval: Some(Duration::from_secs(300)),
            series_hasher: basin_proto::hash::series_hash,
        }
    }
}
