//! The storage engine: series, index, head samples and chunks in one RocksDB database.
//!
//! Invariants:
//! - an acknowledged write is in the RocksDB WAL (one `WriteBatch` per request: series
//!   entries, postings and the request's samples as one record of the `wal` column family,
//!   so a crash never leaves half a request); the in-memory head is rebuilt from it on open;
//! - a series id belongs to exactly one (tenant, labels) forever (the private `series` module);
//! - the tenant is part of every posting key, and samples are only reached through a
//!   tenant's postings, so a tenant never sees another's series;
//! - one sample per (series, timestamp): a later write of the same timestamp replaces the
//!   value (last write wins), and reads are time-ordered.
//!
//! Submodules: `options` (RocksDB tuning), `write` (the write path), `read` (select and
//! the label APIs), `maintenance` (retention and the background task), `head` (recent
//! samples in memory), `wal` (the head's log records), `chunks` (cutting head samples into
//! compressed chunks and checkpointing the rest).

mod chunks;
mod delete;
mod head;
mod maintenance;
pub(crate) mod options;
mod read;
mod status;
pub(crate) mod wal;
mod write;

use crate::config::StorageConfig;
use crate::error::StorageError;
use crate::index::Index;
use crate::keys;
use crate::metrics::StorageMetrics;
use crate::series::{self, IdBuild, SeriesCache, SeriesEntry};
use head::Head;
use options::{CF_CHUNKS, CF_INDEX, CF_SERIES, CF_WAL};
use rocksdb::{ColumnFamily, DB};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The storage engine. Cheap to share (`Arc<Storage>`); every method is blocking (RocksDB
/// I/O), so async callers run them on `spawn_blocking` ([`crate::LocalNode`] does).
pub struct Storage {
    db: DB,
    cfg: StorageConfig,
    series: RwLock<SeriesCache>,
    /// Held while new series are given ids and committed, so two writers never pick the same
    /// free id for different series.
    create: Mutex<()>,
    /// Samples not yet in chunks.
    head: Head,
    /// Writers hold it shared from taking a WAL sequence number until their samples are in
    /// the head; a checkpoint takes it exclusively for an instant, so every record below
    /// the sequence it reads is in the head.
    wal_lock: RwLock<()>,
    /// Sequence number of the next WAL record.
    next_seq: AtomicU64,
    /// Id of the next new series (ids are sequential; see `write::assign_ids`).
    next_id: AtomicU64,
    /// WAL bytes written since the last checkpoint.
    wal_bytes: AtomicU64,
    /// WAL bytes that trigger an early checkpoint: `wal_checkpoint_bytes`, or the size of
    /// the last checkpoint when larger.
    checkpoint_threshold: AtomicU64,
    /// Serialises checkpoints and every other rewrite of chunks.
    pub(crate) cut_lock: Mutex<()>,
    /// Set by writers when the WAL outgrew `checkpoint_threshold`: the maintenance thread
    /// checkpoints early.
    checkpoint_wanted: AtomicBool,
    /// Series whose per-day postings are already written, by day (recent days only).
    day_postings: Mutex<HashMap<i32, HashSet<u64, IdBuild>>>,
    /// Days with data (per-day postings exist).
    days: RwLock<BTreeSet<i32>>,
    pub(crate) metrics: StorageMetrics,
    stop: Arc<AtomicBool>,
    maintenance: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("data_dir", &self.cfg.data_dir).finish_non_exhaustive()
    }
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent
/// (caches are only updated after RocksDB commits).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Storage {
    /// Opens (or creates) the database in `cfg.data_dir`, enforces retention once, and starts
    /// the background maintenance task when `cfg.maintenance_interval` is set.
    pub fn open(cfg: StorageConfig) -> Result<Arc<Storage>, StorageError> {
        std::fs::create_dir_all(&cfg.data_dir)?;
        let (opts, cfs) = options::build(&cfg);
        let db = DB::open_cf_descriptors(&opts, &cfg.data_dir, cfs)?;
        let metrics = StorageMetrics::default();
        let threshold = cfg.wal_checkpoint_bytes as u64;
        let storage = Arc::new(Storage {
            db,
            cfg,
            series: RwLock::default(),
            create: Mutex::new(()),
            head: Head::default(),
            wal_lock: RwLock::new(()),
            next_seq: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            wal_bytes: AtomicU64::new(0),
            checkpoint_threshold: AtomicU64::new(threshold),
            cut_lock: Mutex::new(()),
            checkpoint_wanted: AtomicBool::new(false),
            day_postings: Mutex::default(),
            days: RwLock::default(),
            metrics,
            stop: Arc::new(AtomicBool::new(false)),
            maintenance: Mutex::new(None),
        });
        let days = storage.index().days()?;
        *write(&storage.days) = days.into_iter().collect();
        let series_count = storage
            .db
            .property_int_value_cf(storage.cf(CF_SERIES), "rocksdb.estimate-num-keys")?
            .unwrap_or(0);
        storage.metrics.series.set(i64::try_from(series_count).unwrap_or(i64::MAX));
        storage.next_id.store(storage.last_series_id()?.map_or(1, |id| id + 1), Ordering::SeqCst);
        storage.replay_wal()?;
        storage.enforce_retention()?;
        maintenance::start(&storage);
        tracing::info!(dir = %storage.cfg.data_dir.display(), "storage opened");
        Ok(storage)
    }

    /// The largest series id in use.
    fn last_series_id(&self) -> Result<Option<u64>, StorageError> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_SERIES));
        it.seek_to_last();
        let last = it.key().map(|k| {
            keys::get_u64(k).ok_or_else(|| StorageError::corrupt("series", k, "short series key"))
        });
        it.status()?;
        last.transpose()
    }

    /// The configuration in force.
    pub fn config(&self) -> &StorageConfig {
        &self.cfg
    }

    /// Persists everything: cuts all head samples into compressed chunks (which empties the
    /// WAL), enforces retention, flushes every memtable to SST files and compacts every
    /// column family to its bottom level. Returns when done.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.cut_chunks(true)?;
        self.enforce_retention()?;
        for name in [CF_SERIES, CF_INDEX, CF_WAL, CF_CHUNKS] {
            self.db.flush_cf(self.cf(name))?;
        }
        // Force the bottom level too: that is where the WAL's and retention's tombstones
        // are finally dropped.
        let mut co = rocksdb::CompactOptions::default();
        co.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in [CF_WAL, CF_CHUNKS, CF_INDEX, CF_SERIES] {
            self.db.compact_range_cf_opt(self.cf(name), None::<&[u8]>, None::<&[u8]>, &co);
        }
        Ok(())
    }

    /// Number of series known to the cache (series written or read since open).
    pub fn cached_series(&self) -> usize {
        read(&self.series).len()
    }

    /// Samples held in the in-memory head (not yet cut into chunks).
    pub fn head_len(&self) -> usize {
        self.head.len()
    }

    /// Bytes of SST files per column family (`series`, `index`, `wal`, `chunks`); memtables
    /// are not counted, so call [`Storage::flush`] first for a complete picture.
    pub fn disk_usage(&self) -> Result<Vec<(&'static str, u64)>, StorageError> {
        let mut out = Vec::new();
        for name in [CF_SERIES, CF_INDEX, CF_WAL, CF_CHUNKS] {
            let bytes = self
                .db
                .property_int_value_cf(self.cf(name), "rocksdb.total-sst-files-size")?
                .unwrap_or(0);
            out.push((name, bytes));
        }
        Ok(out)
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // The CFs are created by `open` (`create_missing_column_families`), so a missing
        // handle is a programming error, not a data condition.
        self.db.cf_handle(name).expect("column family created at open")
    }

    pub(crate) fn index(&self) -> Index<'_> {
        Index { db: &self.db, cf: self.cf(CF_INDEX) }
    }

    /// The stored series with this id, from the cache or the `series` CF.
    pub(crate) fn entry(&self, id: u64) -> Result<Arc<SeriesEntry>, StorageError> {
        if let Some(e) = read(&self.series).entry(id) {
            return Ok(e);
        }
        let key = id.to_be_bytes();
        let Some(v) = self.db.get_pinned_cf(self.cf(CF_SERIES), key)? else {
            return Err(StorageError::corrupt(
                format!("id {id:016x}"),
                &key,
                "posting refers to a series that does not exist",
            ));
        };
        let entry = Arc::new(series::decode(id, &key, &v)?);
        write(&self.series).insert_entry(id, Arc::clone(&entry));
        Ok(entry)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = lock(&self.maintenance).take() {
            h.thread().unpark();
        }
    }
}
