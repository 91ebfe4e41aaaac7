//! The head: samples not yet cut into chunks, in memory, per series-day.
//!
//! Durability is the WAL's job ([`super::wal`]); the head is what the WAL replays into. It is
//! sharded by series id so concurrent writers of different series rarely meet on a lock.
//! Each series-day keeps its samples time-ordered with one sample per timestamp: a later
//! write of the same timestamp replaces the value (last write wins), an out-of-order sample
//! is inserted in place.

use super::lock;
use crate::series::IdBuild;
use basin_proto::storage::Sample;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Number of lock shards (a power of two).
const SHARDS: usize = 64;

/// A series in one day partition.
pub(crate) type SeriesDay = (i32, u64);

type Shard = HashMap<SeriesDay, Vec<Sample>, IdBuild>;

/// In-memory head samples, sharded by series id.
#[derive(Debug)]
pub(crate) struct Head {
    shards: Vec<Mutex<Shard>>,
    /// Samples held, over all shards.
    samples: AtomicUsize,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            samples: AtomicUsize::new(0),
        }
    }
}

fn shard_of(id: u64) -> usize {
    // Ids are hashes already; fold the high bits in for ids assigned by collision probing.
    ((id ^ (id >> 32)) as usize) & (SHARDS - 1)
}

/// Inserts `s` into the time-ordered `v`, replacing a sample with the same timestamp.
/// Returns whether the sample count grew.
fn insert_sorted(v: &mut Vec<Sample>, s: Sample) -> bool {
    match v.last() {
        Some(last) if last.timestamp_ms < s.timestamp_ms => {
            v.push(s);
            true
        }
        None => {
            v.push(s);
            true
        }
        _ => match v.binary_search_by_key(&s.timestamp_ms, |x| x.timestamp_ms) {
            Ok(i) => {
                v[i] = s;
                false
            }
            Err(i) => {
                v.insert(i, s);
                true
            }
        },
    }
}

impl Head {
    /// Adds samples of one series-day (any order).
    pub(crate) fn append(&self, key: SeriesDay, samples: impl IntoIterator<Item = Sample>) {
        let mut shard = lock(&self.shards[shard_of(key.1)]);
        let v = shard.entry(key).or_default();
        let mut grown = 0;
        for s in samples {
            grown += usize::from(insert_sorted(v, s));
        }
        self.samples.fetch_add(grown, Ordering::Relaxed);
    }

    /// Adds runs of samples, each of one series-day (any order), taking each shard's lock
    /// once for all its runs rather than once per run.
    pub(crate) fn append_all(&self, runs: &[(SeriesDay, &[Sample])]) {
        // Runs grouped by shard with a counting sort: `order` lists run indexes shard by
        // shard, `starts[s]..starts[s + 1]` being shard `s`'s.
        let mut starts = [0usize; SHARDS + 1];
        for (key, _) in runs {
            starts[shard_of(key.1) + 1] += 1;
        }
        for s in 0..SHARDS {
            starts[s + 1] += starts[s];
        }
        let mut next = starts;
        let mut order = vec![0usize; runs.len()];
        for (i, (key, _)) in runs.iter().enumerate() {
            let slot = &mut next[shard_of(key.1)];
            order[*slot] = i;
            *slot += 1;
        }
        let mut grown = 0;
        for s in 0..SHARDS {
            let members = &order[starts[s]..starts[s + 1]];
            if members.is_empty() {
                continue;
            }
            let mut shard = lock(&self.shards[s]);
            for &i in members {
                let (key, samples) = runs[i];
                let v = shard.entry(key).or_default();
                for &sample in samples {
                    grown += usize::from(insert_sorted(v, sample));
                }
            }
        }
        self.samples.fetch_add(grown, Ordering::Relaxed);
    }

    /// Copies the samples of one series-day in `[lo, hi]`.
    pub(crate) fn range(&self, key: SeriesDay, lo: i64, hi: i64) -> Vec<Sample> {
        let shard = lock(&self.shards[shard_of(key.1)]);
        let Some(v) = shard.get(&key) else { return Vec::new() };
        let from = v.partition_point(|s| s.timestamp_ms < lo);
        let to = v.partition_point(|s| s.timestamp_ms <= hi);
        v.get(from..to).map(<[Sample]>::to_vec).unwrap_or_default()
    }

    /// Every series-day held, with its sample count.
    pub(crate) fn counts(&self) -> Vec<(SeriesDay, usize)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(lock(shard).iter().map(|(&k, v)| (k, v.len())));
        }
        out
    }

    /// Copies all samples of one series-day.
    pub(crate) fn get(&self, key: SeriesDay) -> Vec<Sample> {
        self.range(key, i64::MIN, i64::MAX)
    }

    /// Removes the samples of `key` that are exactly in `cut` (same timestamp and value
    /// bits), after `cut` was committed to chunks. A sample rewritten or inserted since the
    /// cut was taken stays in the head, where it wins over the chunk on read.
    pub(crate) fn remove_cut(&self, key: SeriesDay, cut: &[Sample]) {
        let mut shard = lock(&self.shards[shard_of(key.1)]);
        let Some(v) = shard.get_mut(&key) else { return };
        let before = v.len();
        let mut c = cut.iter().peekable();
        v.retain(|s| {
            while c.next_if(|x| x.timestamp_ms < s.timestamp_ms).is_some() {}
            !c.peek().is_some_and(|x| {
                x.timestamp_ms == s.timestamp_ms && x.value.to_bits() == s.value.to_bits()
            })
        });
        let removed = before - v.len();
        if v.is_empty() {
            shard.remove(&key);
        } else if v.capacity() > 2 * v.len() + 16 {
            // What stays after a cut is a fraction of what the series held: give back the
            // rest, or every series keeps its largest size forever.
            v.shrink_to(v.len() * 2);
        }
        self.samples.fetch_sub(removed, Ordering::Relaxed);
    }

    /// Drops every series-day of days before `day` (retention).
    pub(crate) fn drop_before(&self, day: i32) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            let mut removed = 0;
            shard.retain(|&(d, _), v| {
                let keep = d >= day;
                if !keep {
                    removed += v.len();
                }
                keep
            });
            self.samples.fetch_sub(removed, Ordering::Relaxed);
        }
    }

    /// Samples held.
    pub(crate) fn len(&self) -> usize {
        self.samples.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample { timestamp_ms: t, value: v }
    }

    fn ts(v: &[Sample]) -> Vec<(i64, f64)> {
        v.iter().map(|s| (s.timestamp_ms, s.value)).collect()
    }

    /// Runs spread over every shard, with repeated series-days, out-of-order samples and
    /// rewrites, end up as they do appended one run at a time.
    #[test]
    fn append_all_equals_appending_run_by_run() {
        let samples: Vec<Vec<Sample>> = (0..300)
            .map(|i| (0..(i % 7)).map(|j| s((i * 31 + j * 17) % 50, (i + j) as f64)).collect())
            .collect();
        let runs: Vec<(SeriesDay, &[Sample])> = samples
            .iter()
            .enumerate()
            .map(|(i, v)| (((i % 3) as i32, (i % 97) as u64 * 0x1_0000_0001), v.as_slice()))
            .collect();
        let (all, one) = (Head::default(), Head::default());
        all.append_all(&runs);
        for &(key, run) in &runs {
            one.append(key, run.iter().copied());
        }
        assert_eq!(all.len(), one.len());
        let mut keys: Vec<SeriesDay> = one.counts().into_iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        assert_eq!(keys.len(), 3 * 97);
        for key in keys {
            assert_eq!(ts(&all.get(key)), ts(&one.get(key)), "{key:?}");
        }
    }

    #[test]
    fn append_orders_and_replaces() {
        let h = Head::default();
        h.append((0, 1), [s(10, 1.0), s(30, 3.0), s(20, 2.0)]);
        h.append((0, 1), [s(20, 22.0), s(5, 0.5)]);
        assert_eq!(ts(&h.get((0, 1))), vec![(5, 0.5), (10, 1.0), (20, 22.0), (30, 3.0)]);
        assert_eq!(h.len(), 4);
        assert_eq!(ts(&h.range((0, 1), 10, 20)), vec![(10, 1.0), (20, 22.0)]);
        assert!(h.get((1, 1)).is_empty());
    }

    #[test]
    fn remove_cut_keeps_samples_written_since() {
        let h = Head::default();
        h.append((0, 7), [s(1, 1.0), s(2, 2.0), s(3, 3.0)]);
        let cut = h.get((0, 7));
        // Written after the cut was taken: a replaced value and an out-of-order insert.
        h.append((0, 7), [s(2, 20.0), s(0, 0.0), s(4, 4.0)]);
        h.remove_cut((0, 7), &cut);
        assert_eq!(ts(&h.get((0, 7))), vec![(0, 0.0), (2, 20.0), (4, 4.0)]);
        assert_eq!(h.len(), 3);
        h.remove_cut((0, 7), &h.get((0, 7)));
        assert_eq!(h.len(), 0);
        assert!(h.counts().is_empty());
    }

    #[test]
    fn drop_before_removes_old_days_only() {
        let h = Head::default();
        h.append((1, 1), [s(1, 1.0)]);
        h.append((2, 1), [s(2, 1.0), s(3, 1.0)]);
        h.drop_before(2);
        assert_eq!(h.counts(), vec![((2, 1), 2)]);
        assert_eq!(h.len(), 2);
    }
}
