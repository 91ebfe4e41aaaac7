//! RocksDB options, chosen per column family for its access pattern.
//!
//! - **Shared LRU block cache** (`block_cache_bytes`) for every CF, with index and filter
//!   blocks inside it (bounded memory, no per-file pinned indexes growing with the data), L0's
//!   pinned because every read touches L0.
//! - **`series`** (id → labels): point lookups on cache misses only. Whole-key bloom filters
//!   (10 bits/key, ~1% false positives) so a probe for a new id rarely touches disk; LZ4
//!   above the bottom level, zstd on it (label strings repeat across series).
//! - **`index`** (postings): prefix *scans* with variable-length prefixes (tenant, name,
//!   value), so no fixed prefix extractor and no bloom filter would help; keys share long
//!   prefixes, which block prefix compression already folds. LZ4 on upper levels, zstd on the
//!   bottom level where most of the data sits and is read rarely.
//! - **`wal`** (sequence → one request's samples): the write-hot CF, appended in key order
//!   and range-deleted at every checkpoint (a flush drops the entries a range tombstone
//!   covers, so records deleted while still in a memtable never reach an SST). 16 MiB write
//!   buffer: a quarter of the 64 MiB of records that start an early checkpoint, so records
//!   reach L0 between checkpoints and memtables stay small. No filters (it is only ever
//!   scanned, at open), no compression (the records are short-lived; compressing them costs
//!   ingest CPU for nothing).
//! - **`chunks`** (day | id | last_ts → chunk): a fixed 12-byte prefix extractor (day | id)
//!   with prefix bloom filters in SSTs and memtables, so a select seeking one series-day
//!   skips every file without it. Chunks are bit-packed by [`crate::codec`]; LZ4 above the
//!   bottom level, zstd on it (set as `bottommost_compression`: with dynamic level sizes a
//!   per-level list is indexed from the base level, so data compacted straight to the
//!   bottom would have taken the list's second, uncompressed entry), at level 9 over 64 KiB
//!   blocks: series ids are sequential, so a block holds the chunks of one scrape target,
//!   whose identical timestamp runs zstd folds into one. 16 MiB write buffer:
//!   chunks arrive in checkpoint batches, not continuously.
//! - **DB-wide**: `max_total_wal_size` forces the rarely written `series`/`index` memtables
//!   to flush so the WAL can be recycled; dynamic level sizes keep space amplification low;
//!   two background jobs (the target machines are small; more only contend).
//! - **Full disk**: a WAL, flush or MANIFEST write failing with ENOSPC puts RocksDB in a
//!   "hard" background-error state: every write returns that error (mapped to a retryable
//!   `ResourceExhausted`, see [`crate::error`]) while reads go on. Recovery needs no restart
//!   and no option here: when no `SstFileManager` is configured RocksDB creates a default one
//!   at open (the `rocksdb` crate cannot set one anyway, nor call `DB::Resume`), and its
//!   recovery thread polls the free space every 5 s and resumes the database (flushing the
//!   memtables to a new WAL) once the free space reaches the reserved buffer, the largest
//!   `write_buffer_size`: 16 MiB, the `wal` and `chunks` CFs'. Acknowledged writes are in
//!   the RocksDB WAL and survive all of it. `tests/full_disk.rs` checks this end to end.

use crate::config::StorageConfig;
use crate::keys::DATA_KEY_LEN;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType as C, Options,
    SliceTransform,
};

/// Column family names.
pub(crate) const CF_SERIES: &str = "series";
pub(crate) const CF_INDEX: &str = "index";
pub(crate) const CF_WAL: &str = "wal";
pub(crate) const CF_CHUNKS: &str = "chunks";

/// Length of the `day | id` prefix of head and chunk keys.
pub(crate) const SERIES_DAY_PREFIX: usize = DATA_KEY_LEN - 8;

fn table(cache: &Cache, bloom: bool, whole_key: bool) -> BlockBasedOptions {
    table_with_blocks(cache, bloom, whole_key, 16 << 10)
}

fn table_with_blocks(
    cache: &Cache,
    bloom: bool,
    whole_key: bool,
    block_size: usize,
) -> BlockBasedOptions {
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    t.set_cache_index_and_filter_blocks(true);
    t.set_pin_l0_filter_and_index_blocks_in_cache(true);
    t.set_format_version(5);
    t.set_block_size(block_size);
    if bloom {
        t.set_bloom_filter(10.0, false);
        t.set_whole_key_filtering(whole_key);
    }
    t
}

fn base_cf() -> Options {
    let mut o = Options::default();
    o.set_level_compaction_dynamic_level_bytes(true);
    o
}

/// DB options and the column families.
pub(crate) fn build(cfg: &StorageConfig) -> (Options, Vec<ColumnFamilyDescriptor>) {
    let cache = Cache::new_lru_cache(cfg.block_cache_bytes);

    let mut db = Options::default();
    db.create_if_missing(true);
    db.create_missing_column_families(true);
    db.set_max_background_jobs(2);
    db.set_max_total_wal_size(256 << 20);
    db.set_keep_log_file_num(5);
    db.set_bytes_per_sync(1 << 20);
    db.set_wal_bytes_per_sync(1 << 20);

    let mut series = base_cf();
    series.set_block_based_table_factory(&table(&cache, true, true));
    series.set_compression_type(C::Lz4);
    series.set_bottommost_compression_type(C::Zstd);

    let mut index = base_cf();
    index.set_block_based_table_factory(&table(&cache, false, false));
    index.set_compression_type(C::Lz4);
    index.set_bottommost_compression_type(C::Zstd);

    let mut wal = base_cf();
    wal.set_block_based_table_factory(&table(&cache, false, false));
    wal.set_compression_type(C::None);
    wal.set_write_buffer_size(16 << 20);

    let mut chunks = base_cf();
    chunks.set_prefix_extractor(SliceTransform::create_fixed_prefix(SERIES_DAY_PREFIX));
    chunks.set_memtable_prefix_bloom_ratio(0.1);
    chunks.set_block_based_table_factory(&table_with_blocks(&cache, true, false, 64 << 10));
    chunks.set_compression_type(C::Lz4);
    chunks.set_bottommost_compression_type(C::Zstd);
    chunks.set_bottommost_compression_options(-14, 9, 0, 0, true);
    chunks.set_write_buffer_size(16 << 20);

    let cfs = vec![
        ColumnFamilyDescriptor::new(CF_SERIES, series),
        ColumnFamilyDescriptor::new(CF_INDEX, index),
        ColumnFamilyDescriptor::new(CF_WAL, wal),
        ColumnFamilyDescriptor::new(CF_CHUNKS, chunks),
    ];
    (db, cfs)
}
