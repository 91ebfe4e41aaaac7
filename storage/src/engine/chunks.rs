//! Cutting head samples into compressed chunks.
//!
//! A series-day's head samples are merged with the chunks they overlap (head wins on equal
//! timestamps: it holds the later write), plus the day's last chunk when it is not full, so
//! out-of-order samples and small periodic cuts never leave overlapping or tiny chunks. The
//! result is deduplicated (when `dedup_interval` is set), split into chunks of at most
//! `samples_per_chunk` samples keyed by their last timestamp, and committed in one batch
//! with the deletion of the head samples and the replaced chunks, under the exclusive
//! `head_lock` so no write lands in between.

use super::options::{CF_CHUNKS, CF_HEAD};
use super::read::{dedup, merge_into};
use super::{Storage, lock, write};
use crate::codec;
use crate::error::StorageError;
use crate::keys;
use basin_proto::storage::Sample;
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use std::sync::atomic::Ordering;

/// Series-days cut per batch (and per hold of the exclusive head lock).
const SERIES_PER_BATCH: usize = 256;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Storage {
    /// Cuts head samples into chunks: every series-day when `min_samples` is 0, else those
    /// with at least `min_samples` head samples or from a day before yesterday. Returns the
    /// number of samples moved.
    pub(crate) fn cut_chunks(&self, min_samples: usize) -> Result<u64, StorageError> {
        let today = keys::day_of(now_ms());
        let is_due = |day: i32, n: usize| min_samples == 0 || n >= min_samples || day < today - 1;
        let due: Vec<(i32, u64)> = if min_samples == 0
            || !self.head_counts_valid.load(Ordering::SeqCst)
        {
            let scanned = self.scan_head()?;
            let mut counts = lock(&self.head_counts);
            counts.clear();
            counts.extend(scanned.iter().map(|&(d, i, n)| ((d, i), n)));
            self.head_counts_valid.store(true, Ordering::SeqCst);
            scanned.into_iter().filter(|&(d, _, n)| is_due(d, n)).map(|(d, i, _)| (d, i)).collect()
        } else {
            let counts = lock(&self.head_counts);
            counts.iter().filter(|&(&(d, _), &n)| is_due(d, n)).map(|(&k, _)| k).collect()
        };
        let mut moved = 0;
        let mut wo = WriteOptions::default();
        wo.set_sync(self.cfg.sync_writes);
        for batch in due.chunks(SERIES_PER_BATCH) {
            let _exclusive = write(&self.head_lock);
            let mut wb = WriteBatch::default();
            for &(day, id) in batch {
                moved += self.cut_series_day(&mut wb, day, id)?;
            }
            self.db.write_opt(wb, &wo)?;
            let mut counts = lock(&self.head_counts);
            for k in batch {
                counts.remove(k);
            }
        }
        Ok(moved)
    }

    /// Every series-day in the head with its sample count, in key order.
    fn scan_head(&self) -> Result<Vec<(i32, u64, usize)>, StorageError> {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        let it = self.db.iterator_cf_opt(self.cf(CF_HEAD), ro, IteratorMode::Start);
        let mut out = Vec::new();
        let mut current: Option<(i32, u64, usize)> = None;
        for kv in it {
            let (k, _) = kv?;
            let Some((day, id, _)) = keys::parse_data_key(&k) else {
                return Err(StorageError::corrupt("head key", &k, "bad head key"));
            };
            match &mut current {
                Some((d, i, n)) if *d == day && *i == id => *n += 1,
                _ => {
                    out.extend(current.take());
                    current = Some((day, id, 1));
                }
            }
        }
        out.extend(current);
        Ok(out)
    }

    fn cut_series_day(&self, wb: &mut WriteBatch, day: i32, id: u64) -> Result<u64, StorageError> {
        let entry = self.entry(id)?;
        let (lo, hi) = (keys::day_start(day), keys::day_end(day));
        let head = self.head_samples(&self.db.snapshot(), id, &entry, day, lo, hi)?;
        let Some(head_min) = head.first().map(|s| s.timestamp_ms) else { return Ok(0) };
        let head_cf = self.cf(CF_HEAD);
        for s in &head {
            wb.delete_cf(head_cf, keys::data_key(day, id, s.timestamp_ms));
        }
        let moved = head.len() as u64;

        // Chunks to rewrite: those ending at or after the first head sample, and the last
        // earlier one when it has room.
        let chunks_cf = self.cf(CF_CHUNKS);
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        let mut it = self.db.raw_iterator_cf_opt(chunks_cf, ro);
        it.seek(keys::data_key(day, id, i64::MIN));
        let mut before: Option<(Vec<u8>, Vec<Sample>)> = None;
        let mut old = Vec::new();
        let mut replaced = Vec::new();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            let Some((kday, kid, last)) = keys::parse_data_key(k) else {
                return Err(StorageError::corrupt(entry.display(), k, "bad chunk key"));
            };
            if kday != day || kid != id {
                break;
            }
            if last < head_min {
                let samples = codec::decode(v)
                    .map_err(|e| StorageError::corrupt(entry.display(), k, e.to_string()))?;
                before = Some((k.to_vec(), samples));
            } else {
                old.extend(
                    codec::decode(v)
                        .map_err(|e| StorageError::corrupt(entry.display(), k, e.to_string()))?,
                );
                replaced.push(k.to_vec());
            }
            it.next();
        }
        it.status()?;
        // Merge into the previous chunk only while it has room (MSRV 1.85: no let chains).
        let joinable = before.filter(|(_, s)| s.len() < self.cfg.samples_per_chunk.max(1));
        if let Some((k, mut joined)) = joinable {
            joined.append(&mut old);
            old = joined;
            replaced.push(k);
        }
        for k in &replaced {
            wb.delete_cf(chunks_cf, k);
        }
        let mut merged = Vec::with_capacity(old.len() + head.len());
        merge_into(&mut merged, old, head);
        if let Some(interval) = self.cfg.dedup_interval {
            dedup(&mut merged, interval.as_millis() as i64);
        }
        for run in merged.chunks(self.cfg.samples_per_chunk.max(1)) {
            if let Some(last) = run.last() {
                wb.put_cf(
                    chunks_cf,
                    keys::data_key(day, id, last.timestamp_ms),
                    codec::encode(run),
                );
            }
        }
        Ok(moved)
    }
}
