//! `tsdb_status` (cardinality statistics from the postings) and `delete_series` against real
//! RocksDB: counts checked against the test's own inputs, per-day scopes, range deletes that
//! leave everything else bit-exact, whole-series deletes, and both across reopen.

mod common;

use basin_proto::storage::{
    DeleteSeriesRequest, LabelNamesRequest, LabelValuesRequest, MatcherSet, SeriesRequest,
    StatEntry, TsdbStatusRequest, TsdbStatusResponse,
};
use basin_storage::{Storage, StorageError};
use common::*;
use std::collections::{BTreeMap, BTreeSet};

const STALE: u64 = basin_proto::STALE_NAN_BITS;

fn status(st: &Storage, tenant: &str, start: i64, end: i64, limit: u64) -> TsdbStatusResponse {
    st.tsdb_status(&TsdbStatusRequest {
        tenant: tenant.into(),
        start_ms: start,
        end_ms: end,
        limit,
    })
    .expect("tsdb_status")
}

fn delete(
    st: &Storage,
    sets: Vec<Vec<basin_proto::storage::Matcher>>,
    start: i64,
    end: i64,
) -> Result<basin_proto::storage::DeleteSeriesResponse, StorageError> {
    st.delete_series(&DeleteSeriesRequest {
        tenant: String::new(),
        matchers: sets.into_iter().map(|matchers| MatcherSet { matchers }).collect(),
        start_ms: start,
        end_ms: end,
    })
}

fn as_refs(l: &[(String, String)]) -> Vec<(&str, &str)> {
    l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

fn entries(list: &[StatEntry]) -> Vec<(String, u64)> {
    list.iter().map(|e| (e.name.clone(), e.value)).collect()
}

/// The expected top-N of `counts`: largest first, ties by name.
fn top(counts: &BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn label_names(st: &Storage) -> Vec<String> {
    st.label_names(&LabelNamesRequest { tenant: String::new(), ..Default::default() })
        .expect("label_names")
}

fn metric_names(st: &Storage) -> Vec<String> {
    st.label_values(&LabelValuesRequest {
        tenant: String::new(),
        name: "__name__".into(),
        ..Default::default()
    })
    .expect("label_values")
}

fn all_series(st: &Storage) -> usize {
    st.series(&SeriesRequest {
        tenant: String::new(),
        matchers: vec![MatcherSet { matchers: vec![re("__name__", ".+")] }],
        ..Default::default()
    })
    .expect("series")
    .len()
}

#[test]
fn status_counts_agree_with_the_written_population() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    // metric i has i+1 jobs x (i % 3 + 1) instances; some series have an extra `env`.
    let mut pop: Vec<Vec<(String, String)>> = Vec::new();
    for m in 0..6 {
        for j in 0..=m {
            for i in 0..(m % 3 + 1) {
                let mut l = vec![
                    ("__name__".to_string(), format!("metric_{m}")),
                    ("job".to_string(), format!("job{j}")),
                    ("instance".to_string(), format!("host-{i}:9100")),
                ];
                if (m + j + i) % 4 == 0 {
                    l.push(("env".to_string(), "prod".repeat(i + 1)));
                }
                pop.push(l);
            }
        }
    }
    write(&st, "", pop.iter().map(|l| series(&as_refs(l), &[(T0, 1.0)])).collect());
    // Another tenant's series must not count.
    write(&st, "other", vec![series(&[("__name__", "metric_0"), ("job", "x")], &[(T0, 1.0)])]);
    // Written twice: still one series.
    write(&st, "", vec![series(&as_refs(&pop[0]), &[(T0 + 1000, 2.0)])]);

    // The oracle, from the population itself.
    let mut by_metric: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_pair: BTreeMap<String, u64> = BTreeMap::new();
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut bytes: BTreeMap<String, u64> = BTreeMap::new();
    for l in &pop {
        for (n, v) in l {
            if n == "__name__" {
                *by_metric.entry(v.clone()).or_default() += 1;
            }
            *by_pair.entry(format!("{n}={v}")).or_default() += 1;
            values.entry(n.clone()).or_default().insert(v.clone());
            *bytes.entry(n.clone()).or_default() += v.len() as u64;
        }
    }
    let value_counts: BTreeMap<String, u64> =
        values.iter().map(|(k, v)| (k.clone(), v.len() as u64)).collect();

    for (start, end) in [(0, 0), (T0 - 1, T0 + 1)] {
        let got = status(&st, "", start, end, 1000);
        assert_eq!(got.num_series, pop.len() as u64);
        assert_eq!(got.num_label_pairs, by_pair.len() as u64);
        assert_eq!(entries(&got.series_count_by_metric_name), top(&by_metric, 1000));
        assert_eq!(entries(&got.series_count_by_label_value_pair), top(&by_pair, 1000));
        assert_eq!(entries(&got.label_value_count_by_label_name), top(&value_counts, 1000));
        assert_eq!(entries(&got.memory_in_bytes_by_label_name), top(&bytes, 1000));
        assert!(got.min_time_ms <= T0 && T0 <= got.max_time_ms, "{got:?}");
    }
    // The default limit is 10, and a limit cuts every list to its largest entries.
    let got = status(&st, "", 0, 0, 0);
    assert_eq!(entries(&got.series_count_by_label_value_pair), top(&by_pair, 10));
    let got = status(&st, "", 0, 0, 2);
    assert_eq!(entries(&got.series_count_by_metric_name), top(&by_metric, 2));
    assert_eq!(entries(&got.label_value_count_by_label_name), top(&value_counts, 2));
    assert_eq!(entries(&got.memory_in_bytes_by_label_name), top(&bytes, 2));

    let other = status(&st, "other", 0, 0, 10);
    assert_eq!(other.num_series, 1);
    assert_eq!(entries(&other.series_count_by_metric_name), vec![("metric_0".to_string(), 1)]);
    let nobody = status(&st, "nobody", 0, 0, 10);
    assert_eq!(nobody.num_series, 0);
    assert!(nobody.series_count_by_label_value_pair.is_empty());
    assert!(nobody.min_time_ms > nobody.max_time_ms);
}

#[test]
fn status_of_a_range_counts_series_with_samples_on_its_days_once() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let a = [("__name__", "up"), ("job", "a")];
    let b = [("__name__", "up"), ("job", "b")];
    let c = [("__name__", "down"), ("job", "c")];
    // a: days 0 and 1; b: day 1 only; c: day 0 only.
    write(&st, "", vec![series(&a, &[(T0, 1.0), (T0 + DAY, 1.0)])]);
    write(&st, "", vec![series(&b, &[(T0 + DAY, 1.0)]), series(&c, &[(T0, 1.0)])]);

    let day1 = status(&st, "", T0 + DAY, T0 + DAY, 10);
    assert_eq!(day1.num_series, 2);
    assert_eq!(entries(&day1.series_count_by_metric_name), vec![("up".to_string(), 2)]);
    assert!(!day1.series_count_by_label_value_pair.iter().any(|e| e.name == "job=c"));

    let day0 = status(&st, "", T0, T0, 10);
    assert_eq!(day0.num_series, 2);
    assert_eq!(
        entries(&day0.series_count_by_metric_name),
        vec![("down".to_string(), 1), ("up".to_string(), 1)]
    );

    // Both days: `a` is posted on both, counted once.
    let both = status(&st, "", T0, T0 + DAY, 10);
    assert_eq!(both.num_series, 3);
    assert_eq!(
        entries(&both.series_count_by_metric_name),
        vec![("up".to_string(), 2), ("down".to_string(), 1)]
    );
    assert_eq!(
        entries(&both.label_value_count_by_label_name),
        vec![("job".to_string(), 3), ("__name__".to_string(), 2)]
    );
    assert_eq!(status(&st, "", 0, 0, 10).num_series, 3);
    // A day without data.
    assert_eq!(status(&st, "", T0 + 5 * DAY, T0 + 5 * DAY, 10).num_series, 0);
    assert!(
        st.tsdb_status(&TsdbStatusRequest { start_ms: 5, end_ms: 1, ..Default::default() })
            .is_err()
    );
}

/// Samples of a series every 10 s over two days, with special values on the way.
fn long_series() -> Vec<(i64, f64)> {
    (0..(2 * DAY / 10_000))
        .map(|i| {
            let v = match i % 7 {
                0 => f64::from_bits(STALE),
                1 => -0.0,
                _ => i as f64 * 1.5,
            };
            (T0 + i * 10_000, v)
        })
        .collect()
}

#[test]
fn range_delete_removes_inside_and_leaves_the_rest_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let x = [("__name__", "x"), ("job", "api")];
    let y = [("__name__", "x"), ("job", "db")];
    let samples = long_series();
    write(&st, "", vec![series(&x, &samples), series(&y, &samples)]);
    st.flush().unwrap();
    // A few more in the head (not yet in chunks), inside and outside the range.
    let extra = [(T0 + 5, 7.0), (T0 + DAY + 5, 8.0)];
    write(&st, "", vec![series(&x, &extra)]);
    let mut all = samples.clone();
    all.extend_from_slice(&extra);
    all.sort_by_key(|s| s.0);

    // Two hours across a day boundary, ends inclusive.
    let midnight = keysafe_day_start(T0) + DAY;
    let (lo, hi) = (midnight - 3_600_000, midnight + 3_600_000);
    let resp = delete(&st, vec![vec![eq("job", "api")]], lo, hi).unwrap();
    let inside = all.iter().filter(|s| s.0 >= lo && s.0 <= hi).count() as u64;
    assert_eq!(inside, 721);
    assert_eq!(resp.series_matched, 1);
    assert_eq!(resp.samples_deleted, inside);
    assert_eq!(resp.series_removed, 0);

    let want: Vec<(i64, u64)> =
        all.iter().filter(|s| s.0 < lo || s.0 > hi).map(|&(t, v)| (t, v.to_bits())).collect();
    let check = |st: &Storage| {
        let got = select(st, "", vec![eq("job", "api")], T0 - DAY, T0 + 3 * DAY);
        assert_eq!(got.len(), 1);
        assert_eq!(bits(&got[0]), want);
        // The other series is untouched.
        let other = select(st, "", vec![eq("job", "db")], T0 - DAY, T0 + 3 * DAY);
        let want_other: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(bits(&other[0]), want_other);
        assert!(select(st, "", vec![eq("job", "api")], lo, hi).is_empty());
    };
    check(&st);
    // Deleting the same range again finds nothing more.
    assert_eq!(delete(&st, vec![vec![eq("job", "api")]], lo, hi).unwrap().samples_deleted, 0);
    // New samples inside the deleted range are accepted again.
    st.flush().unwrap();
    check(&st);
    drop(st);
    let st = open(dir.path());
    check(&st);
    write(&st, "", vec![series(&x, &[(lo, 42.0)])]);
    let got = select(&st, "", vec![eq("job", "api")], lo, hi);
    assert_eq!(bits(&got[0]), vec![(lo, 42.0f64.to_bits())]);
}

#[test]
fn emptying_a_day_drops_it_from_that_days_index() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let x = [("__name__", "x"), ("job", "api")];
    write(&st, "", vec![series(&x, &[(T0, 1.0), (T0 + DAY, 2.0)])]);
    let day0 = (keysafe_day_start(T0), keysafe_day_start(T0) + DAY - 1);
    let resp = delete(&st, vec![vec![eq("__name__", "x")]], day0.0, day0.1).unwrap();
    assert_eq!((resp.samples_deleted, resp.series_removed), (1, 0));
    assert_eq!(status(&st, "", T0, T0, 10).num_series, 0);
    assert_eq!(status(&st, "", T0 + DAY, T0 + DAY, 10).num_series, 1);
    assert_eq!(status(&st, "", 0, 0, 10).num_series, 1);
    // A new sample on the emptied day posts the series there again.
    write(&st, "", vec![series(&x, &[(T0 + 1, 3.0)])]);
    assert_eq!(status(&st, "", T0, T0, 10).num_series, 1);
    let got = select(&st, "", vec![eq("job", "api")], T0 - DAY, T0 + 2 * DAY);
    assert_eq!(bits(&got[0]), vec![(T0 + 1, 3.0f64.to_bits()), (T0 + DAY, 2.0f64.to_bits())]);
}

/// Start of the day holding `t`.
fn keysafe_day_start(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

#[test]
fn whole_delete_removes_series_from_every_api_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let gone1 = [("__name__", "gone"), ("job", "a"), ("only_gone", "1")];
    let gone2 = [("__name__", "gone"), ("job", "b")];
    let kept = [("__name__", "kept"), ("job", "a")];
    write(
        &st,
        "",
        vec![
            series(&gone1, &[(T0, 1.0), (T0 + DAY, 1.0)]),
            series(&gone2, &[(T0 - 3 * DAY, 2.0)]),
            series(&kept, &[(T0, 3.0)]),
        ],
    );
    write(&st, "other", vec![series(&gone2, &[(T0, 9.0)])]);
    st.flush().unwrap();
    write(&st, "", vec![series(&gone2, &[(T0 + 10, 2.5)])]); // in the head only
    assert_eq!(status(&st, "", 0, 0, 10).num_series, 3);

    // 0..0 is the epoch's first millisecond, not all time.
    let resp = delete(&st, vec![vec![eq("__name__", "gone")]], 0, 0).unwrap();
    assert_eq!((resp.series_matched, resp.samples_deleted, resp.series_removed), (0, 0, 0));
    let resp = delete(&st, vec![vec![eq("__name__", "gone")]], i64::MIN, i64::MAX).unwrap();
    assert_eq!(resp.series_matched, 2);
    assert_eq!(resp.samples_deleted, 4);
    assert_eq!(resp.series_removed, 2);

    let check = |st: &Storage| {
        assert_eq!(label_names(st), ["__name__", "job"]);
        assert_eq!(metric_names(st), ["kept"]);
        assert_eq!(all_series(st), 1);
        let s = status(st, "", 0, 0, 10);
        assert_eq!(s.num_series, 1);
        assert_eq!(entries(&s.series_count_by_metric_name), vec![("kept".to_string(), 1)]);
        assert_eq!(status(st, "", T0, T0, 10).num_series, 1);
        assert!(
            select(st, "", vec![eq("__name__", "gone")], T0 - 5 * DAY, T0 + 5 * DAY).is_empty()
        );
        let kept_now = select(st, "", vec![eq("__name__", "kept")], T0, T0);
        assert_eq!(bits(&kept_now[0]), vec![(T0, 3.0f64.to_bits())]);
        // Another tenant's series with the same labels is untouched.
        let other = select(st, "other", vec![eq("__name__", "gone")], T0, T0);
        assert_eq!(bits(&other[0]), vec![(T0, 9.0f64.to_bits())]);
    };
    check(&st);
    drop(st);
    let st = open(dir.path());
    check(&st);
    st.flush().unwrap();
    check(&st);

    // The series can come back, with only its new samples.
    write(&st, "", vec![series(&gone1, &[(T0 + 60_000, 5.0)])]);
    let back = select(&st, "", vec![eq("__name__", "gone")], T0 - 5 * DAY, T0 + 5 * DAY);
    assert_eq!(back.len(), 1);
    assert_eq!(bits(&back[0]), vec![(T0 + 60_000, 5.0f64.to_bits())]);
    assert_eq!(status(&st, "", 0, 0, 10).num_series, 2);
    drop(st);
    let st = open(dir.path());
    assert_eq!(metric_names(&st), ["gone", "kept"]);
}

#[test]
fn deletes_that_would_match_everything_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    write(&st, "", vec![series(&[("__name__", "x")], &[(T0, 1.0)])]);
    let invalid = |r: Result<_, StorageError>| {
        assert!(matches!(r, Err(StorageError::InvalidArgument(_))), "{r:?}");
    };
    invalid(delete(&st, vec![], 0, 0));
    invalid(delete(&st, vec![vec![]], 0, 0));
    invalid(delete(&st, vec![vec![re("__name__", ".*")]], 0, 0));
    invalid(delete(&st, vec![vec![eq("__name__", "x")], vec![ne("job", "a")]], 0, 0));
    invalid(delete(&st, vec![vec![eq("__name__", "x")]], T0, T0 - 1));
    assert_eq!(select(&st, "", vec![eq("__name__", "x")], T0, T0).len(), 1);
    // Nothing matching is not an error.
    let r = delete(&st, vec![vec![eq("__name__", "nope")]], i64::MIN, i64::MAX).unwrap();
    assert_eq!((r.series_matched, r.samples_deleted, r.series_removed), (0, 0, 0));
}
