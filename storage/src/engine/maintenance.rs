//! Retention (dropping whole day partitions) and the background task that runs it and cuts
//! head samples into chunks.

use super::chunks::now_ms;
use super::options::{CF_CHUNKS, CF_INDEX};
use super::{Storage, lock, write};
use crate::error::StorageError;
use crate::keys;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Storage {
    /// Drops every day partition entirely older than `retention` (the day holding the
    /// cutoff is kept whole): chunks and per-day postings, each one `DeleteRange` plus
    /// dropping the SST files fully inside it, and the head's series-days of those days. Series entries and global
    /// postings stay (they are small, and the series may come back).
    pub(crate) fn enforce_retention(&self) -> Result<(), StorageError> {
        let Some(retention) = self.cfg.retention else { return Ok(()) };
        let cutoff = keys::day_of(now_ms().saturating_sub(retention.as_millis() as i64));
        let expired: Vec<i32> = super::read(&self.days).range(..cutoff).copied().collect();
        let head_has_old = self.head.counts().iter().any(|&((day, _), _)| day < cutoff);
        let chunks_have_old = self.has_data_before(CF_CHUNKS, cutoff)?;
        if expired.is_empty() && !head_has_old && !chunks_have_old {
            return Ok(());
        }
        let mut end = Vec::new();
        keys::put_day(&mut end, cutoff);
        let start: &[u8] = &[0u8; 4];
        {
            // Under `cut_lock`: a checkpoint in progress would write the old days back.
            let _cut = lock(&self.cut_lock);
            self.head.drop_before(cutoff);
            let cf = self.cf(CF_CHUNKS);
            self.db.delete_file_in_range_cf(cf, start, end.as_slice())?;
            self.db.delete_range_cf(cf, start, end.as_slice())?;
        }
        let index = self.cf(CF_INDEX);
        let istart: &[u8] = &[keys::DAILY];
        let mut iend = vec![keys::DAILY];
        iend.extend_from_slice(&end);
        self.db.delete_file_in_range_cf(index, istart, iend.as_slice())?;
        self.db.delete_range_cf(index, istart, iend.as_slice())?;
        {
            // Same order as the write path: day_postings, then days.
            let mut seen = lock(&self.day_postings);
            seen.retain(|&d, _| d >= cutoff);
            write(&self.days).retain(|&d| d >= cutoff);
        }
        tracing::info!(
            days = expired.len(),
            cutoff_day = cutoff,
            "retention dropped day partitions"
        );
        Ok(())
    }

    fn has_data_before(&self, cf: &str, day: i32) -> Result<bool, StorageError> {
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), {
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_total_order_seek(true);
            ro
        });
        it.seek_to_first();
        let first = it.key().and_then(keys::get_day);
        it.status()?;
        Ok(first.is_some_and(|d| d < day))
    }

    /// Checkpoints now: cuts head series holding at least `samples_per_chunk` samples (and
    /// every series of a day before yesterday) into chunks, writes the rest of the head as
    /// the WAL's checkpoint and truncates the WAL. Returns the number of samples cut. The
    /// background task does this on its own; [`Storage::flush`] cuts everything instead.
    pub fn checkpoint(&self) -> Result<u64, StorageError> {
        self.cut_chunks(false)
    }

    /// One maintenance round: retention, then a checkpoint (full or old head series cut
    /// into chunks, the WAL truncated).
    pub(crate) fn maintain(&self) -> Result<(), StorageError> {
        let started = Instant::now();
        self.enforce_retention()?;
        let moved = self.checkpoint()?;
        tracing::debug!(moved, elapsed = ?started.elapsed(), "storage maintenance done");
        Ok(())
    }
}

/// Starts the background maintenance thread when configured: a round every interval, or
/// sooner when a writer asks for a checkpoint. It holds only a weak reference, so dropping
/// the last `Arc<Storage>` stops it.
pub(super) fn start(storage: &Arc<Storage>) {
    let Some(interval) = storage.cfg.maintenance_interval else { return };
    let weak = Arc::downgrade(storage);
    let stop = Arc::clone(&storage.stop);
    let wanted = |weak: &std::sync::Weak<Storage>| {
        weak.upgrade().is_some_and(|s| s.checkpoint_wanted.load(Ordering::SeqCst))
    };
    let spawned =
        std::thread::Builder::new().name("basin-storage-maintenance".into()).spawn(move || {
            loop {
                let deadline = Instant::now() + interval;
                while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                    if stop.load(Ordering::SeqCst) || left.is_zero() || wanted(&weak) {
                        break;
                    }
                    std::thread::park_timeout(left);
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(storage) = weak.upgrade() else { return };
                if let Err(e) = storage.maintain() {
                    tracing::warn!(error = %e, "storage maintenance failed");
                }
            }
        });
    match spawned {
        Ok(h) => *lock(&storage.maintenance) = Some(h),
        Err(e) => tracing::warn!(error = %e, "could not start storage maintenance thread"),
    }
}
