//! The write path: validate, resolve series ids (creating series and their postings), commit
//! them with one WAL record of the samples in one `WriteBatch`, then add the samples to the
//! in-memory head.

use super::options::{CF_INDEX, CF_SERIES, CF_WAL};
use super::wal::{self, RecordBuilder};
use super::{Storage, lock, read, write};
use crate::error::StorageError;
use crate::index::postings_of;
use crate::keys::{self, Scope};
use crate::series::{self, SeriesEntry};
use basin_proto::batch::WriteView;
use basin_proto::labels::AsLabel;
use basin_proto::storage::{Label, Sample, WriteRequest, WriteResponse};
use rocksdb::{WriteBatch, WriteOptions};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Per-day posting sets older than this many days before the newest are forgotten (their
/// postings are simply rewritten, idempotently, if such old samples arrive again).
const DAY_POSTINGS_KEPT: i32 = 2;

/// Checks that a label set is non-empty, with non-empty names, strictly sorted by name.
fn validate<L: AsLabel>(i: usize, labels: &[L]) -> Result<(), StorageError> {
    if labels.is_empty() {
        return Err(StorageError::InvalidArgument(format!("series #{i} has no labels")));
    }
    for (j, l) in labels.iter().enumerate() {
        if l.name().is_empty() {
            return Err(StorageError::InvalidArgument(format!(
                "series {}: empty label name",
                basin_proto::labels::display(labels)
            )));
        }
        if j > 0 && labels[j - 1].name() >= l.name() {
            let why = if labels[j - 1].name() == l.name() { "duplicate" } else { "unsorted" };
            return Err(StorageError::InvalidArgument(format!(
                "series {}: {why} label name {:?} (labels must be sorted by name, names unique)",
                basin_proto::labels::display(labels),
                l.name()
            )));
        }
    }
    Ok(())
}

/// An owned copy of a label set (for what is stored: new series and their postings).
fn owned<L: AsLabel>(labels: &[L]) -> Vec<Label> {
    labels.iter().map(AsLabel::to_label).collect()
}

/// A series of the request that was not in the cache, resolved to its id.
struct Resolved {
    id: u64,
    /// Its position in the request.
    index: usize,
    /// What the cache will hold for it.
    entry: Arc<SeriesEntry>,
}

impl Storage {
    /// Stores a request's samples durably; `Ok` means they are in the write-ahead log.
    /// Labels must be sorted by name with unique names, else nothing is written.
    pub fn write(&self, req: &WriteRequest) -> Result<WriteResponse, StorageError> {
        self.write_view(&WriteView::from(req))
    }

    /// [`Storage::write`] of borrowed series: series already known allocate nothing.
    pub fn write_view(&self, req: &WriteView<'_>) -> Result<WriteResponse, StorageError> {
        self.metrics.count_error("write", self.write_inner(req))
    }

    fn write_inner(&self, req: &WriteView<'_>) -> Result<WriteResponse, StorageError> {
        let tenant = req.tenant();
        let hashes: Vec<u64> =
            req.iter().map(|(labels, _)| basin_proto::hash::series_hash(tenant, labels)).collect();
        // Held until the samples are in the head (see `Storage::wal_lock`).
        let _wal = read(&self.wal_lock);

        let mut ids: Vec<Option<u64>> = {
            let cache = read(&self.series);
            req.iter().zip(&hashes).map(|((labels, _), &h)| cache.id(h, tenant, labels)).collect()
        };
        // A series the cache knows has exactly the labels of one checked when it was created.
        for (i, ((labels, _), id)) in req.iter().zip(&ids).enumerate() {
            if id.is_none() {
                validate(i, labels)?;
            }
        }
        let mut batch = WriteBatch::default();
        let mut created: Vec<Resolved> = Vec::new();
        let mut found: Vec<Resolved> = Vec::new();
        // New series: hold `create` until committed and cached (see `Storage::create`).
        let _create = if ids.iter().any(Option::is_none) {
            let guard = lock(&self.create);
            self.assign_ids(req, &hashes, &mut ids, &mut batch, &mut created, &mut found)?;
            Some(guard)
        } else {
            None
        };

        let index = self.cf(CF_INDEX);
        let mut new_day_postings: Vec<(i32, u64)> = Vec::new();
        let mut samples = 0u64;
        let base = req.iter().find_map(|(_, s)| s.first()).map_or(0, |s| s.timestamp_ms);
        let mut record = RecordBuilder::new(base);
        {
            let seen = lock(&self.day_postings);
            let mut batch_days: HashSet<(i32, u64)> = HashSet::new();
            for ((labels, series_samples), id) in req.iter().zip(&ids) {
                let Some(id) = *id else { continue };
                if !series_samples.is_empty() {
                    record.series(id, series_samples);
                }
                samples += series_samples.len() as u64;
                for (day, _) in keys::day_runs(series_samples) {
                    let known = seen.get(&day).is_some_and(|ids| ids.contains(&id));
                    if !known && batch_days.insert((day, id)) {
                        for k in postings_of(&Scope::Day(tenant, day), &owned(labels), id) {
                            batch.put_cf(index, k, b"");
                        }
                        new_day_postings.push((day, id));
                    }
                }
            }
        }

        let record_bytes = record.len() as u64;
        if !record.is_empty() {
            let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
            batch.put_cf(self.cf(CF_WAL), wal::log_key(seq), record.finish());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.cfg.sync_writes);
        self.db.write_opt(batch, &wo)?;

        // Durable: into the head, then publish to the caches.
        let runs: Vec<((i32, u64), &[Sample])> = req
            .iter()
            .zip(&ids)
            .filter_map(|((_, samples), id)| Some((id.as_ref()?, samples)))
            .flat_map(|(&id, samples)| {
                keys::day_runs(samples).map(move |(day, run)| ((day, id), run))
            })
            .collect();
        self.head.append_all(&runs);
        let wal_bytes = self.wal_bytes.fetch_add(record_bytes, Ordering::Relaxed) + record_bytes;
        if wal_bytes >= self.checkpoint_threshold.load(Ordering::Relaxed) {
            self.request_checkpoint();
        }

        if !created.is_empty() || !found.is_empty() {
            let mut cache = write(&self.series);
            for r in created.iter().chain(&found) {
                cache.insert(r.id, hashes[r.index], Arc::clone(&r.entry));
            }
        }
        if !new_day_postings.is_empty() {
            let mut seen = lock(&self.day_postings);
            let mut days = write(&self.days);
            for &(day, id) in &new_day_postings {
                seen.entry(day).or_default().insert(id);
                days.insert(day);
            }
            if let Some(&newest) = seen.keys().max() {
                seen.retain(|&d, _| d >= newest.saturating_sub(DAY_POSTINGS_KEPT));
            }
        }
        self.metrics.samples_written.inc_by(samples);
        self.metrics.series_created.inc_by(created.len() as u64);
        self.metrics.series.inc_by(created.len() as i64);
        Ok(WriteResponse { samples_written: samples, series_created: created.len() as u64 })
    }

    /// Resolves the ids missing from the cache: an existing series found through the
    /// lookup entries of its hash, or a new series with the next sequential id, whose series
    /// entry, lookup entry and global postings are added to `batch`. Caller holds `create`.
    ///
    /// Sequential ids (rather than the hash itself) keep index keys short: the postings of
    /// series created together share all but their last id bytes.
    fn assign_ids(
        &self,
        req: &WriteView<'_>,
        hashes: &[u64],
        ids: &mut [Option<u64>],
        batch: &mut WriteBatch,
        created: &mut Vec<Resolved>,
        found: &mut Vec<Resolved>,
    ) -> Result<(), StorageError> {
        let tenant = req.tenant();
        let series_cf = self.cf(CF_SERIES);
        let index = self.cf(CF_INDEX);
        // Series resolved by this request, by encoding.
        let mut in_request: HashMap<Vec<u8>, u64> = HashMap::new();
        for i in 0..req.len() {
            if ids[i].is_some() {
                continue;
            }
            // Another writer may have created it while we waited for `create`.
            if let Some(id) = read(&self.series).id(hashes[i], tenant, req.labels(i)) {
                ids[i] = Some(id);
                continue;
            }
            let labels = owned(req.labels(i));
            let encoded = series::encode(tenant, &labels);
            if let Some(&id) = in_request.get(&encoded) {
                ids[i] = Some(id);
                continue;
            }
            let hash = (self.cfg.series_hasher)(tenant, &labels);
            let entry =
                Arc::new(SeriesEntry { tenant: tenant.to_string(), labels: Arc::new(labels) });
            let mut existing = None;
            for candidate in self.index().ids_with_hash(hash)? {
                match self.db.get_pinned_cf(series_cf, candidate.to_be_bytes())? {
                    Some(v) if v.as_ref() == encoded.as_slice() => {
                        existing = Some(candidate);
                        break;
                    }
                    Some(_) => {
                        tracing::debug!(hash, series = %entry.display(), "series hash collision");
                        self.metrics.id_collisions.inc();
                    }
                    None => {}
                }
            }
            let id = match existing {
                Some(id) => {
                    found.push(Resolved { id, index: i, entry });
                    id
                }
                None => {
                    let id = self.next_id.fetch_add(1, Ordering::SeqCst);
                    batch.put_cf(series_cf, id.to_be_bytes(), &encoded);
                    batch.put_cf(index, keys::lookup_key(hash, id), b"");
                    for k in postings_of(&Scope::Global(tenant), &entry.labels, id) {
                        batch.put_cf(index, k, b"");
                    }
                    created.push(Resolved { id, index: i, entry });
                    id
                }
            };
            in_request.insert(encoded, id);
            ids[i] = Some(id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: &str, v: &str) -> Label {
        Label { name: n.into(), value: v.into() }
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate(0, &[l("__name__", "up"), l("a", "1")]).is_ok());
        let e = validate(0, &[l("b", "1"), l("a", "1")]).unwrap_err().to_string();
        assert!(e.contains("unsorted label name \"a\""), "{e}");
        let e = validate(0, &[l("a", "1"), l("a", "2")]).unwrap_err().to_string();
        assert!(e.contains("duplicate"), "{e}");
        assert!(validate::<Label>(3, &[]).unwrap_err().to_string().contains("#3"));
        assert!(validate(0, &[l("", "1")]).is_err());
    }
}
