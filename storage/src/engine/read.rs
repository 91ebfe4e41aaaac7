//! The read path: matchers → candidate series (per-day or global postings) → labels filter →
//! samples from chunks and head, merged, deduplicated, limited.

use super::options::CF_CHUNKS;
use super::{Storage, read};
use crate::codec;
use crate::error::StorageError;
use crate::keys::{self, Scope};
use crate::series::SeriesEntry;
use basin_proto::labels::cmp_labels;
use basin_proto::matcher::Matcher;
use basin_proto::node::{SampleFacts, SharedSeries};
use basin_proto::storage::{
    Label, LabelNamesRequest, LabelValuesRequest, MatcherSet, Sample, SelectRequest, Series,
    SeriesRequest,
};
use rocksdb::{DB, ReadOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

/// Series that matched, with the days on which they have data (`None`: any day in range).
pub(crate) struct Matched {
    pub(crate) series: Vec<(u64, Arc<SeriesEntry>, Option<Vec<i32>>)>,
    pub(crate) days: Vec<i32>,
}

fn compile(ms: &[basin_proto::storage::Matcher]) -> Result<Vec<Matcher>, StorageError> {
    Matcher::compile_all(ms).map_err(|e| StorageError::InvalidArgument(e.to_string()))
}

fn compile_sets(sets: &[MatcherSet]) -> Result<Vec<Vec<Matcher>>, StorageError> {
    if sets.is_empty() {
        return Ok(vec![Vec::new()]);
    }
    sets.iter().map(|s| compile(&s.matchers)).collect()
}

/// A request's limit combined with the node's: 0 means the node's.
fn effective_limit(requested: u64, node: usize) -> usize {
    match usize::try_from(requested) {
        Ok(0) | Err(_) => node,
        Ok(r) => r.min(node),
    }
}

/// The label APIs' time range: proto3 sends 0..0 when the caller set none, meaning all time.
fn label_range(start: i64, end: i64) -> (i64, i64) {
    if start == 0 && end == 0 { (i64::MIN, i64::MAX) } else { (start, end) }
}

impl Storage {
    /// Day partitions with data in `[start, end]`, within retention.
    /// Retention applies at query time too, so data past it is never answered even before
    /// the background task drops it.
    fn days_in(&self, start: i64, end: i64) -> Vec<i32> {
        let mut first = keys::day_of(start);
        if let Some(retention) = self.cfg.retention {
            let cutoff = super::chunks::now_ms().saturating_sub(retention.as_millis() as i64);
            first = first.max(keys::day_of(cutoff));
        }
        let last = keys::day_of(end);
        if start > end || first > last {
            return Vec::new();
        }
        read(&self.days).range(first..=last).copied().collect()
    }

    /// Series of `tenant` matching any of `sets` with postings in `[start, end]`.
    pub(crate) fn matched(
        &self,
        tenant: &str,
        sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Matched, StorageError> {
        let days = self.days_in(start, end);
        let index = self.index();
        let mut by_id: BTreeMap<u64, Option<Vec<i32>>> = BTreeMap::new();
        if days.len() <= self.cfg.max_index_days {
            for &day in &days {
                let prefix = Scope::Day(tenant, day).prefix();
                for set in sets {
                    for id in index.candidates(&prefix, set)? {
                        let d = by_id.entry(id).or_insert_with(|| Some(Vec::new()));
                        if let Some(d) = d.as_mut().filter(|d| d.last() != Some(&day)) {
                            d.push(day);
                        }
                    }
                }
            }
        } else {
            let prefix = Scope::Global(tenant).prefix();
            for set in sets {
                for id in index.candidates(&prefix, set)? {
                    by_id.insert(id, None);
                }
            }
        }
        let mut series = Vec::with_capacity(by_id.len());
        for (id, d) in by_id {
            let entry = self.entry(id)?;
            if entry.tenant != tenant {
                continue;
            }
            if sets.iter().any(|set| set.iter().all(|m| m.matches_labels(&entry.labels))) {
                series.push((id, entry, d));
            }
        }
        Ok(Matched { series, days })
    }

    /// Samples in `[start, end]` of each series, on its days: chunks merged with head
    /// samples (head wins on equal timestamps), time-ordered, one per timestamp,
    /// deduplicated to the configured interval; with their facts, learned while in cache.
    ///
    /// Head samples are copied for every series before any chunk is read: a concurrent cut
    /// removes samples from the head only after committing their chunks, so whatever the
    /// copy missed, the chunk iterator (created after it) sees.
    pub(crate) fn read_samples(
        &self,
        series: &[(u64, &[i32])],
        start: i64,
        end: i64,
    ) -> Result<Vec<ReadSeries>, StorageError> {
        let clip = |day: i32| (start.max(keys::day_start(day)), end.min(keys::day_end(day)));
        let heads: Vec<Vec<Vec<Sample>>> = series
            .iter()
            .map(|&(id, days)| {
                days.iter()
                    .map(|&day| {
                        let (lo, hi) = clip(day);
                        if lo > hi { Vec::new() } else { self.head.range((day, id), lo, hi) }
                    })
                    .collect()
            })
            .collect();
        // Chunks are decoded on several threads when there are many series, each thread with
        // its own iterator over a contiguous share, created after the head copies above.
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let threads = (series.len() / SERIES_PER_READ_THREAD).clamp(1, cores);
        let share = series.len().div_ceil(threads).max(1);
        let mut heads = heads.into_iter();
        let shares: Vec<Share<'_>> = series
            .chunks(share)
            .map(|part| (part, heads.by_ref().take(part.len()).collect()))
            .collect();
        let read_share = |(part, heads): Share<'_>| {
            let mut chunks = ChunkReader::new(self);
            let mut out = Vec::with_capacity(part.len());
            for (&(id, days), heads) in part.iter().zip(heads) {
                let mut samples = Vec::new();
                for (&day, head) in days.iter().zip(heads) {
                    let (lo, hi) = clip(day);
                    if lo > hi {
                        continue;
                    }
                    // Days do not overlap in time: each one's chunks append to the series'
                    // samples, and only a day with head samples needs a merge.
                    let base = samples.len();
                    chunks.read_into(id, day, lo, hi, &mut samples)?;
                    if !head.is_empty() {
                        let chunked = samples.split_off(base);
                        merge_into(&mut samples, chunked, head);
                    }
                }
                if let Some(interval) = self.cfg.dedup_interval {
                    dedup(&mut samples, interval.as_millis() as i64);
                }
                let facts = SampleFacts::of(&samples);
                out.push((samples, facts));
            }
            Ok::<_, StorageError>(out)
        };
        let results: Vec<Result<Vec<ReadSeries>, StorageError>> = std::thread::scope(|scope| {
            let mut shares = shares.into_iter();
            let first = shares.next();
            let handles: Vec<_> = shares.map(|s| scope.spawn(move || read_share(s))).collect();
            let mut results: Vec<_> = first.into_iter().map(read_share).collect();
            results.extend(handles.into_iter().map(|h| {
                h.join().unwrap_or_else(|_| Err(StorageError::Task("chunk reader panicked".into())))
            }));
            results
        });
        let mut out = Vec::with_capacity(series.len());
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }

    /// A corruption error for chunk `key` of series `id`, named by its labels when they can
    /// be read (only built on the error path: looking the labels up is not free).
    pub(crate) fn corrupt_chunk(&self, id: u64, key: &[u8], why: String) -> StorageError {
        let series = match self.entry(id) {
            Ok(e) => e.display(),
            Err(_) => format!("id {id:016x}"),
        };
        StorageError::corrupt(series, key, why)
    }

    /// Series matching the request's matchers with their samples in `[start_ms, end_ms]`,
    /// sorted by labels; series without samples in the range are left out.
    pub fn select(&self, req: &SelectRequest) -> Result<Vec<Series>, StorageError> {
        let shared = self.select_shared(req)?;
        Ok(shared
            .into_iter()
            .map(|s| Series { labels: Arc::unwrap_or_clone(s.labels), samples: s.samples })
            .collect())
    }

    /// [`select`](Self::select) with each label set shared with the series cache instead
    /// of copied, for callers in the same process.
    pub fn select_shared(&self, req: &SelectRequest) -> Result<Vec<SharedSeries>, StorageError> {
        let started = Instant::now();
        self.metrics.select_requests.inc();
        let result = self.select_inner(req);
        self.metrics.select_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.count_error("select", result)
    }

    fn select_inner(&self, req: &SelectRequest) -> Result<Vec<SharedSeries>, StorageError> {
        let matchers = compile(&req.matchers)?;
        let max_series = effective_limit(req.max_series, self.cfg.max_series_per_select);
        let max_samples = effective_limit(req.max_samples, self.cfg.max_samples_per_select);
        let began = Instant::now();
        let matched = self.matched(&req.tenant, &[matchers], req.start_ms, req.end_ms)?;
        let index_done = Instant::now();
        let wanted: Vec<(u64, &[i32])> = matched
            .series
            .iter()
            .map(|(id, _, days)| (*id, days.as_deref().unwrap_or(&matched.days)))
            .collect();
        let read = self.read_samples(&wanted, req.start_ms, req.end_ms)?;
        let read_done = Instant::now();
        let mut out = Vec::new();
        let mut total = 0usize;
        for ((_, entry, _), (samples, facts)) in matched.series.iter().zip(read) {
            if samples.is_empty() {
                continue;
            }
            if out.len() == max_series {
                return Err(StorageError::LimitExceeded {
                    what: format!("select matched more than {max_series} series"),
                    limit_name: "max_series_per_select",
                    limit: max_series,
                });
            }
            total += samples.len();
            if total > max_samples {
                return Err(StorageError::LimitExceeded {
                    what: format!("select read more than {max_samples} samples"),
                    limit_name: "max_samples_per_select",
                    limit: max_samples,
                });
            }
            let labels = Arc::clone(&entry.labels);
            out.push(SharedSeries { labels, samples, facts: Some(facts) });
        }
        let out = sort_by_labels(out, |s| &s.labels);
        tracing::debug!(
            series = out.len(),
            samples = total,
            index_ms = (index_done - began).as_secs_f64() * 1e3,
            read_ms = (read_done - index_done).as_secs_f64() * 1e3,
            build_ms = read_done.elapsed().as_secs_f64() * 1e3,
            "select"
        );
        Ok(out)
    }

    /// Label names of the series matching any matcher set (all series when none), sorted.
    pub fn label_names(&self, req: &LabelNamesRequest) -> Result<Vec<String>, StorageError> {
        self.metrics.count_error("label_names", self.label_names_inner(req))
    }

    fn label_names_inner(&self, req: &LabelNamesRequest) -> Result<Vec<String>, StorageError> {
        let (start, end) = label_range(req.start_ms, req.end_ms);
        let mut names = BTreeSet::new();
        if req.matchers.is_empty() {
            let index = self.index();
            for prefix in self.scopes(&req.tenant, start, end) {
                names.extend(index.names(&prefix)?);
            }
        } else {
            let sets = compile_sets(&req.matchers)?;
            for (_, entry, _) in self.matched(&req.tenant, &sets, start, end)?.series {
                names.extend(entry.labels.iter().map(|l| l.name.clone()));
            }
        }
        Ok(limit(names, req.limit))
    }

    /// Values of one label over the series matching any matcher set, sorted.
    pub fn label_values(&self, req: &LabelValuesRequest) -> Result<Vec<String>, StorageError> {
        self.metrics.count_error("label_values", self.label_values_inner(req))
    }

    fn label_values_inner(&self, req: &LabelValuesRequest) -> Result<Vec<String>, StorageError> {
        let (start, end) = label_range(req.start_ms, req.end_ms);
        let mut values = BTreeSet::new();
        if req.name.is_empty() {
            return Err(StorageError::InvalidArgument("label name must not be empty".into()));
        }
        if req.matchers.is_empty() {
            let index = self.index();
            for prefix in self.scopes(&req.tenant, start, end) {
                values.extend(index.values(&prefix, &req.name)?);
            }
        } else {
            let sets = compile_sets(&req.matchers)?;
            for (_, entry, _) in self.matched(&req.tenant, &sets, start, end)?.series {
                if let Ok(i) = entry.labels.binary_search_by(|l| l.name.as_str().cmp(&req.name)) {
                    values.insert(entry.labels[i].value.clone());
                }
            }
        }
        Ok(limit(values, req.limit))
    }

    /// Label sets of the series matching any matcher set, sorted. Without a request limit,
    /// more than `max_series_per_select` series is an error.
    pub fn series(&self, req: &SeriesRequest) -> Result<Vec<Series>, StorageError> {
        self.metrics.count_error("series", self.series_inner(req))
    }

    fn series_inner(&self, req: &SeriesRequest) -> Result<Vec<Series>, StorageError> {
        let (start, end) = label_range(req.start_ms, req.end_ms);
        let sets = compile_sets(&req.matchers)?;
        let matched = self.matched(&req.tenant, &sets, start, end)?;
        let max = self.cfg.max_series_per_select;
        if req.limit == 0 && matched.series.len() > max {
            return Err(StorageError::LimitExceeded {
                what: format!("series request matched {} series", matched.series.len()),
                limit_name: "max_series_per_select",
                limit: max,
            });
        }
        let labels: Vec<Arc<Vec<Label>>> =
            matched.series.into_iter().map(|(_, e, _)| Arc::clone(&e.labels)).collect();
        let mut labels = sort_by_labels(labels, |l| l);
        if req.limit > 0 {
            labels.truncate(usize::try_from(req.limit).unwrap_or(usize::MAX));
        }
        // Only the label sets answered are copied.
        Ok(labels.into_iter().map(|l| Series { labels: l.to_vec(), samples: Vec::new() }).collect())
    }

    /// Posting prefixes covering `[start, end]`: one per day with data, or the global one.
    fn scopes(&self, tenant: &str, start: i64, end: i64) -> Vec<Vec<u8>> {
        let days = self.days_in(start, end);
        if days.len() <= self.cfg.max_index_days {
            days.into_iter().map(|d| Scope::Day(tenant, d).prefix()).collect()
        } else {
            vec![Scope::Global(tenant).prefix()]
        }
    }
}

/// A series' samples as read, with their facts.
pub(crate) type ReadSeries = (Vec<Sample>, SampleFacts);

/// One reading thread's series (id and days) with their head samples (per day).
type Share<'a> = (&'a [(u64, &'a [i32])], Vec<Vec<Vec<Sample>>>);

/// Series per chunk-reading thread in a select, at least.
const SERIES_PER_READ_THREAD: usize = if cfg!(test) { 2 } else { 1024 };

/// Reads chunks of many series-days through one iterator (creating one per series-day
/// costs more than the seek). Its implicit snapshot is taken at creation.
pub(crate) struct ChunkReader<'a> {
    storage: &'a Storage,
    it: rocksdb::DBRawIteratorWithThreadMode<'a, DB>,
    decoder: codec::Decoder,
}

impl<'a> ChunkReader<'a> {
    pub(crate) fn new(storage: &'a Storage) -> Self {
        let mut ro = ReadOptions::default();
        // Each seek stays within its (day, id) prefix, so prefix bloom filters apply.
        ro.set_prefix_same_as_start(true);
        let it = storage.db.raw_iterator_cf_opt(storage.cf(CF_CHUNKS), ro);
        Self { storage, it, decoder: codec::Decoder::default() }
    }

    /// Appends the samples in `[lo, hi]` from the chunks of one series-day to `out`. Chunk
    /// keys carry the chunk's last timestamp, so the first chunk that can overlap is one
    /// seek away.
    pub(crate) fn read_into(
        &mut self,
        id: u64,
        day: i32,
        lo: i64,
        hi: i64,
        out: &mut Vec<Sample>,
    ) -> Result<(), StorageError> {
        let (it, decoder) = (&mut self.it, &mut self.decoder);
        it.seek(keys::data_key(day, id, lo));
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            let corrupt = |why: String| self.storage.corrupt_chunk(id, k, why);
            let Some((kday, kid, _last)) = keys::parse_data_key(k) else {
                return Err(corrupt("bad chunk key".into()));
            };
            if kid != id || kday != day {
                break;
            }
            // Decoded straight into the output; a time-ordered chunk's samples in
            // `[lo, hi]` are one run of it, and the rest is cut off again.
            let base = out.len();
            decoder.decode_into(v, out).map_err(|e| corrupt(e.to_string()))?;
            let chunk = &out[base..];
            if chunk.first().is_some_and(|s| s.timestamp_ms > hi) {
                out.truncate(base);
                break;
            }
            let a = base + chunk.partition_point(|s| s.timestamp_ms < lo);
            let b = base + chunk.partition_point(|s| s.timestamp_ms <= hi);
            out.truncate(b.max(a));
            out.drain(base..a);
            it.next();
        }
        it.status()?;
        Ok(())
    }
}

/// Series below which [`sort_by_labels`] sorts on one thread.
const SERIES_PER_SORT_THREAD: usize = if cfg!(test) { 2 } else { 4096 };

/// `items` sorted by their label sets (distinct), as Prometheus orders series. Many are
/// sorted in two halves at once, then merged: the sort was the longest step of a large
/// select that ran on one core.
fn sort_by_labels<T: Send>(mut items: Vec<T>, labels: impl Fn(&T) -> &[Label] + Sync) -> Vec<T> {
    let order = |a: &T, b: &T| cmp_labels(labels(a), labels(b));
    if items.len() < 2 * SERIES_PER_SORT_THREAD {
        items.sort_unstable_by(order);
        return items;
    }
    let mut right = items.split_off(items.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| right.sort_unstable_by(order));
        items.sort_unstable_by(order);
        // A panic in a comparison is resumed here.
        if let Err(panic) = other.join() {
            std::panic::resume_unwind(panic);
        }
    });
    let mut out = Vec::with_capacity(items.len() + right.len());
    let (mut a, mut b) = (items.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        let next = if order(x, y).is_le() { a.next() } else { b.next() };
        out.extend(next);
    }
    out.extend(a);
    out.extend(b);
    out
}

fn limit(set: BTreeSet<String>, limit: u64) -> Vec<String> {
    let n = usize::try_from(limit).unwrap_or(usize::MAX);
    if n == 0 { set.into_iter().collect() } else { set.into_iter().take(n).collect() }
}

/// Appends the merge of two time-ordered runs to `out`; on equal timestamps `newer` wins.
/// A run that is all there is moves into an empty `out` without a copy.
pub(crate) fn merge_into(out: &mut Vec<Sample>, older: Vec<Sample>, newer: Vec<Sample>) {
    if newer.is_empty() || older.is_empty() {
        let only = if newer.is_empty() { older } else { newer };
        if out.is_empty() {
            *out = only;
        } else {
            out.extend(only);
        }
        return;
    }
    out.reserve(older.len() + newer.len());
    let mut a = older.into_iter().peekable();
    let mut b = newer.into_iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                if x.timestamp_ms < y.timestamp_ms {
                    out.extend(a.next());
                } else {
                    if x.timestamp_ms == y.timestamp_ms {
                        a.next();
                    }
                    out.extend(b.next());
                }
            }
            (Some(_), None) => out.extend(a.by_ref()),
            (None, Some(_)) => out.extend(b.by_ref()),
            (None, None) => break,
        }
    }
}

/// Keeps the last sample of each `interval`-long window (aligned to the epoch).
pub(crate) fn dedup(samples: &mut Vec<Sample>, interval: i64) {
    if interval <= 1 || samples.len() < 2 {
        return;
    }
    let bucket = |t: i64| t.div_euclid(interval);
    let mut keep = 0;
    for i in 0..samples.len() {
        let last_of_bucket = samples
            .get(i + 1)
            .is_none_or(|next| bucket(next.timestamp_ms) != bucket(samples[i].timestamp_ms));
        if last_of_bucket {
            samples[keep] = samples[i];
            keep += 1;
        }
    }
    samples.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample { timestamp_ms: t, value: v }
    }

    #[test]
    fn merge_prefers_newer_on_equal_timestamps() {
        let mut out = Vec::new();
        merge_into(
            &mut out,
            vec![s(1, 1.0), s(3, 3.0), s(5, 5.0)],
            vec![s(2, 20.0), s(3, 30.0), s(6, 60.0)],
        );
        let got: Vec<_> = out.iter().map(|x| (x.timestamp_ms, x.value)).collect();
        assert_eq!(got, vec![(1, 1.0), (2, 20.0), (3, 30.0), (5, 5.0), (6, 60.0)]);
    }

    #[test]
    fn dedup_keeps_last_per_interval() {
        let mut v = vec![s(-1, 0.0), s(0, 1.0), s(9, 2.0), s(10, 3.0), s(25, 4.0), s(29, 5.0)];
        dedup(&mut v, 10);
        let ts: Vec<_> = v.iter().map(|x| x.timestamp_ms).collect();
        assert_eq!(ts, vec![-1, 9, 10, 29]);
    }

    /// Label sets sorted in halves and merged come out as one sort puts them, for every
    /// length around the split.
    #[test]
    fn sorting_in_halves_orders_as_one_sort() {
        let label = |n: &str, v: String| Label { name: n.into(), value: v };
        for n in 0..40u64 {
            let sets: Vec<Vec<Label>> = (0..n)
                .map(|i| {
                    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58;
                    let mut l =
                        vec![label("__name__", "x".into()), label("a", (h % 5).to_string())];
                    if h % 3 > 0 {
                        l.push(label("b", i.to_string()));
                    }
                    l
                })
                .collect();
            let mut want = sets.clone();
            want.sort_by(|a, b| cmp_labels(a, b));
            assert_eq!(sort_by_labels(sets, |l| l), want, "{n} sets");
        }
    }

    #[test]
    fn limits_combine() {
        assert_eq!(effective_limit(0, 10), 10);
        assert_eq!(effective_limit(5, 10), 5);
        assert_eq!(effective_limit(50, 10), 10);
    }
}
