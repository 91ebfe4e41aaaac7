//! Deleting series (`delete_series`, Prometheus' `/api/v1/admin/tsdb/delete_series`).
//!
//! Deletes are rare admin operations, so they favour simplicity over speed:
//! 1. a full checkpoint ([`Storage::cut_chunks`]) moves every acknowledged sample into chunks,
//!    so only the chunks column family needs rewriting;
//! 2. under `cut_lock` (no checkpoint or retention rewrites chunks meanwhile), the matching
//!    series are found through the per-day postings of the days in range (plus the global
//!    postings when the range covers every day with data);
//! 3. per batch of series, the chunks of each matched series-day are decoded, filtered and
//!    re-encoded (chunks without a sample in range are left untouched, bit for bit; chunks
//!    left empty are dropped), in one `WriteBatch`;
//! 4. then, with writers held off (exclusive `wal_lock`), every series-day left without
//!    samples loses its per-day postings, and when the range covers every day with data, a
//!    series left without any sample is removed entirely: `series` entry, global and per-day
//!    postings, and the in-memory caches, in one `WriteBatch`.
//!
//! Samples written while a delete runs may survive it (they were not there when it started);
//! a series that received such samples is kept.

use super::options::{CF_CHUNKS, CF_INDEX, CF_SERIES};
use super::{Storage, lock, read, write};
use crate::codec;
use crate::error::StorageError;
use crate::index::postings_of;
use crate::keys::{self, Scope};
use crate::series::SeriesEntry;
use basin_proto::matcher::Matcher;
use basin_proto::storage::{DeleteSeriesRequest, DeleteSeriesResponse, MatcherSet, Sample};
use rocksdb::{ReadOptions, WriteBatch, WriteOptions};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Series handled per committed batch (and per hold of the exclusive `wal_lock`).
const SERIES_PER_BATCH: usize = 256;

/// A matched series and the days (in range) on which it has per-day postings.
type Target = (u64, Arc<SeriesEntry>, Vec<i32>);

/// Compiles the matcher sets of a delete: at least one set, and each with a matcher that
/// does not match the empty string (a delete must never select every series by accident).
fn compile_delete_sets(sets: &[MatcherSet]) -> Result<Vec<Vec<Matcher>>, StorageError> {
    if sets.is_empty() {
        return Err(StorageError::InvalidArgument(
            "delete_series needs at least one matcher set".into(),
        ));
    }
    let mut out = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let compiled = Matcher::compile_all(&set.matchers)
            .map_err(|e| StorageError::InvalidArgument(e.to_string()))?;
        if compiled.iter().all(Matcher::matches_empty) {
            return Err(StorageError::InvalidArgument(format!(
                "delete_series matcher set #{i} must contain at least one non-empty matcher"
            )));
        }
        out.push(compiled);
    }
    Ok(out)
}

impl Storage {
    /// Deletes the samples in `[start_ms, end_ms]` (all time: `i64::MIN, i64::MAX`, or any
    /// range covering every day with data) of the tenant's series matching any matcher set. When the range covers every day with data, series left
    /// without samples disappear from the index and the label APIs too. See the module docs.
    pub fn delete_series(
        &self,
        req: &DeleteSeriesRequest,
    ) -> Result<DeleteSeriesResponse, StorageError> {
        self.metrics.count_error("delete_series", self.delete_series_inner(req))
    }

    fn delete_series_inner(
        &self,
        req: &DeleteSeriesRequest,
    ) -> Result<DeleteSeriesResponse, StorageError> {
        let sets = compile_delete_sets(&req.matchers)?;
        // Literal, unlike the label APIs' "0 and 0 is all time": `start=0&end=0` on the HTTP
        // API must not widen into deleting everything.
        let (start, end) = (req.start_ms, req.end_ms);
        if start > end {
            return Err(StorageError::InvalidArgument(format!(
                "delete_series: end {end} is before start {start}"
            )));
        }
        // Every acknowledged sample into chunks: only chunks need rewriting below.
        self.cut_chunks(true)?;
        let _cut = lock(&self.cut_lock);

        let all_days: Vec<i32> = read(&self.days).iter().copied().collect();
        let days: Vec<i32> = all_days
            .iter()
            .copied()
            .filter(|&d| keys::day_end(d) >= start && keys::day_start(d) <= end)
            .collect();
        // The range covers every day with data: matched series can be removed entirely.
        let whole = all_days.first().is_none_or(|&d| start <= keys::day_start(d))
            && all_days.last().is_none_or(|&d| end >= keys::day_end(d));
        let targets = self.delete_targets(&req.tenant, &sets, &days, whole)?;

        let mut resp =
            DeleteSeriesResponse { series_matched: targets.len() as u64, ..Default::default() };
        let mut wo = WriteOptions::default();
        wo.set_sync(self.cfg.sync_writes);
        for batch in targets.chunks(SERIES_PER_BATCH) {
            let mut wb = WriteBatch::default();
            for (id, entry, days) in batch {
                for &day in days {
                    let lo = start.max(keys::day_start(day));
                    let hi = end.min(keys::day_end(day));
                    resp.samples_deleted +=
                        self.delete_in_chunks(&mut wb, *id, entry, day, lo, hi)?;
                }
            }
            self.db.write_opt(wb, &wo)?;
            resp.series_removed += self.drop_emptied(&req.tenant, batch, whole, &wo)?;
        }
        self.metrics.samples_deleted.inc_by(resp.samples_deleted);
        self.metrics.series_deleted.inc_by(resp.series_removed);
        tracing::info!(
            tenant = %req.tenant,
            start,
            end,
            series = resp.series_matched,
            samples = resp.samples_deleted,
            removed = resp.series_removed,
            "deleted series"
        );
        Ok(resp)
    }

    /// The tenant's series matching any set, with their days among `days`; with `whole`,
    /// also series known only to the global postings (no day with data left).
    fn delete_targets(
        &self,
        tenant: &str,
        sets: &[Vec<Matcher>],
        days: &[i32],
        whole: bool,
    ) -> Result<Vec<Target>, StorageError> {
        let index = self.index();
        let mut by_id: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
        for &day in days {
            let prefix = Scope::Day(tenant, day).prefix();
            for set in sets {
                for id in index.candidates(&prefix, set)? {
                    let d = by_id.entry(id).or_default();
                    if d.last() != Some(&day) {
                        d.push(day);
                    }
                }
            }
        }
        if whole {
            let prefix = Scope::Global(tenant).prefix();
            for set in sets {
                for id in index.candidates(&prefix, set)? {
                    by_id.entry(id).or_default();
                }
            }
        }
        let mut out = Vec::with_capacity(by_id.len());
        for (id, days) in by_id {
            let entry = self.entry(id)?;
            if entry.tenant == tenant
                && sets.iter().any(|set| set.iter().all(|m| m.matches_labels(&entry.labels)))
            {
                out.push((id, entry, days));
            }
        }
        Ok(out)
    }

    /// Adds to `wb` the rewrite of one series-day's chunks without the samples in
    /// `[lo, hi]`; returns how many samples that removes. Chunks are time-ordered and do
    /// not overlap, and their keys carry their last timestamp, so the first chunk that can
    /// hold `lo` is one seek away and the scan stops at the first chunk starting after `hi`.
    fn delete_in_chunks(
        &self,
        wb: &mut WriteBatch,
        id: u64,
        entry: &SeriesEntry,
        day: i32,
        lo: i64,
        hi: i64,
    ) -> Result<u64, StorageError> {
        let chunks_cf = self.cf(CF_CHUNKS);
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        let mut it = self.db.raw_iterator_cf_opt(chunks_cf, ro);
        it.seek(keys::data_key(day, id, lo));
        let mut deleted = 0u64;
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            let Some((kday, kid, _last)) = keys::parse_data_key(k) else {
                return Err(StorageError::corrupt(entry.display(), k, "bad chunk key"));
            };
            if kday != day || kid != id {
                break;
            }
            let samples = codec::decode(v)
                .map_err(|e| StorageError::corrupt(entry.display(), k, e.to_string()))?;
            if samples.first().is_some_and(|s| s.timestamp_ms > hi) {
                break;
            }
            let before = samples.len();
            let kept: Vec<Sample> = samples
                .into_iter()
                .filter(|s| s.timestamp_ms < lo || s.timestamp_ms > hi)
                .collect();
            if kept.len() != before {
                deleted += (before - kept.len()) as u64;
                // Delete first: the rewritten chunk may keep the same key (same last sample).
                wb.delete_cf(chunks_cf, k);
                if let Some(last) = kept.last() {
                    wb.put_cf(
                        chunks_cf,
                        keys::data_key(day, id, last.timestamp_ms),
                        codec::encode(&kept),
                    );
                }
            }
            it.next();
        }
        it.status()?;
        Ok(deleted)
    }

    /// After a batch's chunks are rewritten: drops the per-day postings of series-days left
    /// without samples and, when `whole`, removes series left without any sample. Writers
    /// are held off meanwhile, so no sample lands for a series as it is removed. Returns the
    /// number of series removed.
    fn drop_emptied(
        &self,
        tenant: &str,
        batch: &[Target],
        whole: bool,
        wo: &WriteOptions,
    ) -> Result<u64, StorageError> {
        let _writers = write(&self.wal_lock);
        let index_cf = self.cf(CF_INDEX);
        // Days may have been added since the targets were found (writes to new days).
        let all_days: Vec<i32> = read(&self.days).iter().copied().collect();
        let series: Vec<(u64, &[i32])> =
            batch.iter().map(|(id, _, days)| (*id, days.as_slice())).collect();
        let left = self.read_samples(&series, i64::MIN, i64::MAX)?;
        let mut wb = WriteBatch::default();
        let mut emptied: Vec<(i32, u64)> = Vec::new();
        let mut removed: Vec<u64> = Vec::new();
        for ((id, entry, days), (left, _)) in batch.iter().zip(&left) {
            let id = *id;
            let mut empty_days = 0;
            for &day in days {
                if left.iter().any(|s| keys::day_of(s.timestamp_ms) == day) {
                    continue;
                }
                for k in postings_of(&Scope::Day(tenant, day), &entry.labels, id) {
                    wb.delete_cf(index_cf, k);
                }
                emptied.push((day, id));
                empty_days += 1;
            }
            if !whole || empty_days != days.len() {
                continue;
            }
            // Data on a day outside the targets' list (written meanwhile) keeps the series.
            let mut elsewhere = false;
            for &day in all_days.iter().filter(|d| !days.contains(d)) {
                let prefix = Scope::Day(tenant, day).prefix();
                let all_posting = keys::posting(&prefix, "", "", id);
                if self.db.get_pinned_cf(index_cf, all_posting)?.is_some() {
                    elsewhere = true;
                    break;
                }
            }
            if elsewhere {
                continue;
            }
            wb.delete_cf(self.cf(CF_SERIES), id.to_be_bytes());
            let hash = (self.cfg.series_hasher)(tenant, &entry.labels);
            wb.delete_cf(index_cf, keys::lookup_key(hash, id));
            for k in postings_of(&Scope::Global(tenant), &entry.labels, id) {
                wb.delete_cf(index_cf, k);
            }
            removed.push(id);
        }
        if wb.is_empty() {
            return Ok(0);
        }
        self.db.write_opt(wb, wo)?;
        {
            // Forgotten per-day postings are written again by the next sample of that day.
            let mut seen = lock(&self.day_postings);
            for (day, id) in &emptied {
                if let Some(ids) = seen.get_mut(day) {
                    ids.remove(id);
                }
            }
        }
        if !removed.is_empty() {
            let mut cache = write(&self.series);
            for id in &removed {
                cache.remove(*id);
            }
            self.metrics.series.dec_by(removed.len() as i64);
        }
        Ok(removed.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basin_proto::matcher::wire;
    use basin_proto::storage::MatchType;

    #[test]
    fn deletes_need_a_non_empty_matcher_in_every_set() {
        let set = |ms: Vec<basin_proto::storage::Matcher>| MatcherSet { matchers: ms };
        assert!(compile_delete_sets(&[]).is_err());
        let err = compile_delete_sets(&[
            set(vec![wire(MatchType::Equal, "job", "api")]),
            set(vec![wire(MatchType::Regex, "job", ".*")]),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("set #1"), "{err}");
        assert!(compile_delete_sets(&[set(vec![wire(MatchType::NotEqual, "a", "b")])]).is_err());
        assert!(compile_delete_sets(&[set(vec![wire(MatchType::Regex, "a", "(")])]).is_err());
        let ok = compile_delete_sets(&[set(vec![
            wire(MatchType::Regex, "job", ".+"),
            wire(MatchType::Equal, "env", ""),
        ])])
        .unwrap();
        assert_eq!(ok.len(), 1);
    }
}
