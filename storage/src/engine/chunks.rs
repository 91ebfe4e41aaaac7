//! Cutting head samples into compressed chunks, and checkpointing the rest.
//!
//! A checkpoint ([`Storage::cut_chunks`]) runs under `cut_lock`:
//! 1. it notes the next WAL sequence number under an instant of exclusive `wal_lock`, so
//!    every record below it is in the head;
//! 2. for each series-day in the head it cuts the samples due (whole chunks of
//!    `samples_per_chunk`, or everything on a flush or for a day before yesterday) into
//!    chunks, committed a batch of series at a time, then removes exactly those samples
//!    from the head;
//! 3. it commits, in one batch, a new checkpoint of the samples left in the head and the
//!    deletion of the old checkpoint and of every log record below the noted sequence.
//!
//! Cut samples are merged with the chunks they overlap (head wins on equal timestamps: it
//! holds the later write), plus the day's last chunk when it is not full, so out-of-order
//! samples never leave overlapping chunks. The result is deduplicated (when
//! `dedup_interval` is set) and split into chunks of at most `max_chunk_samples` samples,
//! keyed by their last timestamp.
//!
//! Readers copy head samples before they read chunks, and a cut removes samples from the
//! head only after the chunks holding them are committed, so a reader always sees every
//! sample at least once (duplicates merge away).

use super::head::SeriesDay;
use super::options::{CF_CHUNKS, CF_WAL};
use super::read::{dedup, merge_into};
use super::wal::{self, RecordBuilder};
use super::{Storage, lock, write};
use crate::codec;
use crate::error::StorageError;
use crate::keys;
use basin_proto::storage::Sample;
use rocksdb::{DBRawIterator, ReadOptions, WriteBatch, WriteOptions};
use std::sync::atomic::Ordering;

/// Series-days cut per committed batch.
const SERIES_PER_BATCH: usize = 1024;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Storage {
    /// The largest chunk: `max_chunk_samples`, at least `samples_per_chunk`, within what a
    /// chunk can hold.
    fn max_chunk_samples(&self) -> usize {
        self.cfg
            .max_chunk_samples
            .max(self.cfg.samples_per_chunk)
            .clamp(1, codec::MAX_SAMPLES as usize)
    }

    /// Asks the background task for an early checkpoint (the WAL outgrew its threshold).
    pub(crate) fn request_checkpoint(&self) {
        if !self.checkpoint_wanted.swap(true, Ordering::SeqCst)
            && let Some(h) = lock(&self.maintenance).as_ref()
        {
            h.thread().unpark();
        }
    }

    /// Checkpoints (see the module docs): cuts due head samples into chunks, or all of
    /// them when `all`, and truncates the WAL. Returns the number of samples cut.
    pub(crate) fn cut_chunks(&self, all: bool) -> Result<u64, StorageError> {
        let _cut = lock(&self.cut_lock);
        self.checkpoint_wanted.store(false, Ordering::SeqCst);
        let (upto, wal_bytes) = {
            let _exclusive = write(&self.wal_lock);
            (self.next_seq.load(Ordering::SeqCst), self.wal_bytes.load(Ordering::SeqCst))
        };
        let today = keys::day_of(now_ms());
        let per_chunk = self.cfg.samples_per_chunk.max(1);
        let mut wo = WriteOptions::default();
        wo.set_sync(self.cfg.sync_writes);

        let mut series_days = self.head.counts();
        series_days.sort_unstable();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut part = RecordBuilder::new(now_ms());
        let mut moved = 0u64;
        for batch in series_days.chunks(SERIES_PER_BATCH) {
            // One iterator for the batch: its chunks change only when the batch commits.
            let mut it = self.chunk_rewrite_iterator();
            let mut wb = WriteBatch::default();
            let mut cuts: Vec<(SeriesDay, Vec<Sample>)> = Vec::new();
            for &(key, _) in batch {
                let mut samples = self.head.get(key);
                let due = if all || key.0 < today - 1 {
                    samples.len()
                } else {
                    samples.len() / per_chunk * per_chunk
                };
                let keep = samples.split_off(due);
                if !keep.is_empty() {
                    part.series(key.1, &keep);
                    if part.len() >= wal::CHECKPOINT_PART_BYTES {
                        parts.push(
                            std::mem::replace(&mut part, RecordBuilder::new(now_ms())).finish(),
                        );
                    }
                }
                if !samples.is_empty() {
                    self.cut_series_day(&mut it, &mut wb, key, &samples)?;
                    moved += samples.len() as u64;
                    cuts.push((key, samples));
                }
            }
            if !cuts.is_empty() {
                self.db.write_opt(wb, &wo)?;
                for (key, cut) in cuts {
                    self.head.remove_cut(key, &cut);
                }
            }
        }
        if !part.is_empty() {
            parts.push(part.finish());
        }

        let wal_cf = self.cf(CF_WAL);
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(wal_cf, wal::checkpoint_key(0).as_slice(), wal::log_key(0).as_slice());
        let mut checkpoint_bytes = 0;
        for (i, p) in parts.iter().enumerate() {
            checkpoint_bytes += p.len();
            wb.put_cf(wal_cf, wal::checkpoint_key(i as u32), p);
        }
        wb.delete_range_cf(wal_cf, wal::log_key(0).as_slice(), wal::log_key(upto).as_slice());
        self.db.write_opt(wb, &wo)?;
        self.wal_bytes.fetch_sub(wal_bytes, Ordering::SeqCst);
        // A checkpoint rewrites what the head holds: wait for at least as much new WAL
        // before the next early one, so write amplification stays bounded.
        self.checkpoint_threshold.store(
            (self.cfg.wal_checkpoint_bytes as u64).max(checkpoint_bytes as u64),
            Ordering::SeqCst,
        );
        tracing::debug!(
            all,
            series_days = series_days.len(),
            samples_cut = moved,
            head_samples = self.head.len(),
            checkpoint_bytes,
            wal_bytes,
            "checkpoint"
        );
        Ok(moved)
    }

    /// An iterator over chunks about to be rewritten: each seek stays within its series-day
    /// prefix, and what it reads does not fill the block cache (it is about to be replaced).
    fn chunk_rewrite_iterator(&self) -> DBRawIterator<'_> {
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        ro.fill_cache(false);
        self.db.raw_iterator_cf_opt(self.cf(CF_CHUNKS), ro)
    }

    /// Adds to `wb` the chunks of one series-day rewritten with `head` (time-ordered head
    /// samples) merged in.
    fn cut_series_day(
        &self,
        it: &mut DBRawIterator<'_>,
        wb: &mut WriteBatch,
        (day, id): SeriesDay,
        head: &[Sample],
    ) -> Result<(), StorageError> {
        let Some(head_min) = head.first().map(|s| s.timestamp_ms) else { return Ok(()) };

        // Chunks to rewrite: those ending at or after the first head sample, and the last
        // earlier one when it has room.
        let chunks_cf = self.cf(CF_CHUNKS);
        let decode = |k: &[u8], v: &[u8]| {
            codec::decode(v).map_err(|e| self.corrupt_chunk(id, k, e.to_string()))
        };
        let ours = |k: &[u8]| -> Result<Option<i64>, StorageError> {
            match keys::parse_data_key(k) {
                Some((kday, kid, last)) => Ok((kday == day && kid == id).then_some(last)),
                None => Err(self.corrupt_chunk(id, k, "bad chunk key".into())),
            }
        };
        let mut before: Option<(Vec<u8>, Vec<Sample>)> = None;
        if head_min > i64::MIN {
            it.seek_for_prev(keys::data_key(day, id, head_min - 1));
            if let (Some(k), Some(v)) = (it.key(), it.value())
                && ours(k)?.is_some()
            {
                before = Some((k.to_vec(), decode(k, v)?));
            }
            it.status()?;
        }
        let mut old = Vec::new();
        let mut replaced = Vec::new();
        it.seek(keys::data_key(day, id, head_min));
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            if ours(k)?.is_none() {
                break;
            }
            old.extend(decode(k, v)?);
            replaced.push(k.to_vec());
            it.next();
        }
        it.status()?;
        // Merge into the previous chunk only while it has room.
        let joinable = before.filter(|(_, s)| s.len() < self.max_chunk_samples());
        if let Some((k, mut joined)) = joinable {
            joined.append(&mut old);
            old = joined;
            replaced.push(k);
        }
        for k in &replaced {
            wb.delete_cf(chunks_cf, k);
        }
        // Head samples alone, and not deduplicated, are encoded as they are.
        let mut merged = Vec::new();
        let merged = if old.is_empty() && self.cfg.dedup_interval.is_none() {
            head
        } else {
            merge_into(&mut merged, old, head.to_vec());
            if let Some(interval) = self.cfg.dedup_interval {
                dedup(&mut merged, interval.as_millis() as i64);
            }
            &merged
        };
        for run in merged.chunks(self.max_chunk_samples()) {
            if let Some(last) = run.last() {
                wb.put_cf(
                    chunks_cf,
                    keys::data_key(day, id, last.timestamp_ms),
                    codec::encode(run),
                );
            }
        }
        Ok(())
    }
}
