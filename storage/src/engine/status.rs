//! Cardinality statistics (`tsdb_status`, Prometheus' `/api/v1/status/tsdb`): one merged pass
//! over a tenant's postings (global, or the per-day postings of a range), counting distinct
//! series ids per `(name, value)` and keeping bounded top-N lists.

use super::{Storage, read};
use crate::error::StorageError;
use crate::index::for_each_pair;
use crate::keys::{self, Scope};
use basin_proto::METRIC_NAME;
use basin_proto::storage::{StatEntry, TsdbStatusRequest, TsdbStatusResponse};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Entries per list when the request names no limit (Prometheus' default).
pub(crate) const DEFAULT_STATUS_LIMIT: usize = 10;

/// The `limit` largest entries seen, ties broken by name (ascending) so answers are stable.
struct TopN {
    limit: usize,
    /// Min-heap on (count, reversed name): the root is the entry to evict first.
    heap: BinaryHeap<Reverse<(u64, Reverse<String>)>>,
}

impl TopN {
    fn new(limit: usize) -> Self {
        Self { limit, heap: BinaryHeap::new() }
    }

    /// Offers an entry; `name` is only built when the entry makes it into the list.
    fn offer(&mut self, count: u64, name: impl FnOnce() -> String) {
        if self.limit == 0 {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(Reverse((count, Reverse(name()))));
            return;
        }
        let Some(Reverse((min_count, _))) = self.heap.peek() else { return };
        if count < *min_count {
            return;
        }
        let candidate = Reverse((count, Reverse(name())));
        if self.heap.peek().is_some_and(|root| candidate < *root) {
            self.heap.pop();
            self.heap.push(candidate);
        }
    }

    /// Largest first; equal counts by name.
    fn into_entries(self) -> Vec<StatEntry> {
        // `into_sorted_vec` of the reversed keys is descending by (count, reversed name).
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse((value, Reverse(name)))| StatEntry { name, value })
            .collect()
    }
}

/// Per-label-name accumulator while the pass is inside one name's postings.
#[derive(Default)]
struct NameStats {
    name: String,
    values: u64,
    bytes: u64,
}

/// Offers a finished label name to the per-name lists.
fn flush_name(stats: NameStats, value_counts: &mut TopN, memory: &mut TopN) {
    let NameStats { name, values, bytes } = stats;
    memory.offer(bytes, || name.clone());
    value_counts.offer(values, || name);
}

impl Storage {
    /// Cardinality statistics of the request's tenant: number of series and label pairs, and
    /// the top `limit` (default 10) metric names by series, label names by distinct values and
    /// by value bytes (`len(value)` summed over series), and `name=value` pairs by series.
    /// Without a range (`0, 0`) the global postings are counted (every stored series);
    /// with one, the series with samples on the days it touches (global postings when it
    /// spans more than `max_index_days` days, as the label APIs do).
    pub fn tsdb_status(&self, req: &TsdbStatusRequest) -> Result<TsdbStatusResponse, StorageError> {
        self.metrics.count_error("tsdb_status", self.tsdb_status_inner(req))
    }

    fn tsdb_status_inner(
        &self,
        req: &TsdbStatusRequest,
    ) -> Result<TsdbStatusResponse, StorageError> {
        let limit = match usize::try_from(req.limit) {
            Ok(0) => DEFAULT_STATUS_LIMIT,
            Ok(n) => n,
            Err(_) => usize::MAX,
        };
        let tenant = req.tenant.as_str();
        let all_time = req.start_ms == 0 && req.end_ms == 0;
        let (start, end) = if all_time { (i64::MIN, i64::MAX) } else { (req.start_ms, req.end_ms) };
        if start > end {
            return Err(StorageError::InvalidArgument(format!(
                "tsdb status: end {end} is before start {start}"
            )));
        }
        let days: Vec<i32> =
            read(&self.days).range(keys::day_of(start)..=keys::day_of(end)).copied().collect();
        let scopes: Vec<Vec<u8>> = if all_time || days.len() > self.cfg.max_index_days {
            vec![Scope::Global(tenant).prefix()]
        } else {
            days.iter().map(|&d| Scope::Day(tenant, d).prefix()).collect()
        };

        let mut out = TsdbStatusResponse {
            min_time_ms: i64::MAX,
            max_time_ms: i64::MIN,
            ..Default::default()
        };
        let mut metrics = TopN::new(limit);
        let mut value_counts = TopN::new(limit);
        let mut memory = TopN::new(limit);
        let mut pairs = TopN::new(limit);
        let mut name_stats: Option<NameStats> = None;
        for_each_pair(&self.index(), &scopes, |name, value, series| {
            if name.is_empty() {
                // The all-series posting: every series of the scope once.
                out.num_series += series;
                return;
            }
            out.num_label_pairs += 1;
            if name_stats.as_ref().is_none_or(|s| s.name != name) {
                if let Some(done) = name_stats.take() {
                    flush_name(done, &mut value_counts, &mut memory);
                }
                name_stats = Some(NameStats { name: name.to_string(), ..Default::default() });
            }
            if let Some(s) = name_stats.as_mut() {
                s.values += 1;
                s.bytes = s.bytes.saturating_add((value.len() as u64).saturating_mul(series));
            }
            if name == METRIC_NAME {
                metrics.offer(series, || value.to_string());
            }
            pairs.offer(series, || format!("{name}={value}"));
        })?;
        if let Some(done) = name_stats.take() {
            flush_name(done, &mut value_counts, &mut memory);
        }
        if out.num_series > 0 {
            let scope_days: Vec<i32> =
                if all_time { read(&self.days).iter().copied().collect() } else { days };
            if let (Some(&first), Some(&last)) = (scope_days.first(), scope_days.last()) {
                out.min_time_ms = keys::day_start(first).max(start);
                out.max_time_ms = keys::day_end(last).min(end);
            }
        }
        out.series_count_by_metric_name = metrics.into_entries();
        out.label_value_count_by_label_name = value_counts.into_entries();
        out.memory_in_bytes_by_label_name = memory.into_entries();
        out.series_count_by_label_value_pair = pairs.into_entries();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_keeps_largest_with_stable_ties() {
        let mut t = TopN::new(3);
        for (name, count) in [("a", 1), ("b", 5), ("c", 5), ("d", 2), ("e", 5), ("f", 0)] {
            t.offer(count, || name.to_string());
        }
        let got: Vec<(String, u64)> =
            t.into_entries().into_iter().map(|e| (e.name, e.value)).collect();
        assert_eq!(got, vec![("b".into(), 5), ("c".into(), 5), ("e".into(), 5)]);
        let mut t = TopN::new(2);
        for (name, count) in [("z", 1), ("y", 1), ("x", 1)] {
            t.offer(count, || name.to_string());
        }
        let got: Vec<String> = t.into_entries().into_iter().map(|e| e.name).collect();
        assert_eq!(got, vec!["x".to_string(), "y".to_string()]);
        assert!(TopN::new(0).into_entries().is_empty());
    }
}
