//! The engine against real RocksDB: round trips, matchers vs a brute-force oracle, label
//! APIs, tenants, durability across reopen, id collisions, limits, chunks, retention, dedup.

mod common;

use basin_proto::matcher::Matcher as Compiled;
use basin_proto::storage::{
    LabelNamesRequest, LabelValuesRequest, MatcherSet, SeriesRequest, WriteRequest,
};
use basin_storage::{Storage, StorageConfig};
use common::*;
use std::time::Duration;

const STALE: u64 = basin_proto::STALE_NAN_BITS;

#[test]
fn round_trip_is_bit_exact_ordered_and_last_write_wins() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let up = [("__name__", "up"), ("job", "api")];
    let stale = f64::from_bits(STALE);
    // Out of order, with a duplicate timestamp inside one request and across requests.
    write(
        &st,
        "",
        vec![series(&up, &[(T0 + 20, 2.0), (T0, -0.0), (T0 + 10, 1.0), (T0 + 10, 1.5)])],
    );
    write(
        &st,
        "",
        vec![series(&up, &[(T0 + 20, 20.0), (T0 + 30, stale), (T0 + 40, f64::INFINITY)])],
    );
    let got = select(&st, "", vec![eq("__name__", "up")], T0, T0 + 40);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels, labels(&up));
    let want: Vec<(i64, u64)> = vec![
        (T0, (-0.0f64).to_bits()),
        (T0 + 10, 1.5f64.to_bits()),
        (T0 + 20, 20.0f64.to_bits()),
        (T0 + 30, STALE),
        (T0 + 40, f64::INFINITY.to_bits()),
    ];
    assert_eq!(bits(&got[0]), want);
    // Inclusive range ends.
    let got = select(&st, "", vec![eq("job", "api")], T0 + 10, T0 + 20);
    assert_eq!(bits(&got[0]), want[1..3].to_vec());
    // Same after cutting into chunks, and after more out-of-order writes on top of chunks.
    st.flush().unwrap();
    assert_eq!(bits(&select(&st, "", vec![eq("job", "api")], T0, T0 + 40)[0]), want);
    write(&st, "", vec![series(&up, &[(T0 + 5, 0.5), (T0 + 20, 200.0)])]);
    let got = select(&st, "", vec![eq("job", "api")], T0, T0 + 40);
    let mut want2 = want.clone();
    want2.insert(1, (T0 + 5, 0.5f64.to_bits()));
    want2[3] = (T0 + 20, 200.0f64.to_bits());
    assert_eq!(bits(&got[0]), want2);
    st.flush().unwrap();
    assert_eq!(bits(&select(&st, "", vec![eq("job", "api")], T0, T0 + 40)[0]), want2);
    // Nothing outside the range, nothing for unknown metrics.
    assert!(select(&st, "", vec![eq("job", "api")], T0 + 41, T0 + 1000).is_empty());
    assert!(select(&st, "", vec![eq("__name__", "down")], T0, T0 + 40).is_empty());
}

/// A fixed population: some series lack `env`, one has an empty-looking regex target.
fn population() -> Vec<Vec<(&'static str, &'static str)>> {
    let mut out = Vec::new();
    for name in ["up", "http_requests_total", "node_cpu"] {
        for job in ["api", "db", "web"] {
            for (i, env) in ["prod", "dev", ""].iter().enumerate() {
                let mut l = vec![("__name__", name), ("job", job)];
                if !env.is_empty() {
                    l.push(("env", env));
                }
                if i == 0 && job == "api" {
                    l.push(("path", "/a\nb"));
                }
                out.push(l);
            }
        }
    }
    out
}

#[test]
fn matchers_agree_with_brute_force_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let pop = population();
    let all: Vec<_> = pop.iter().map(|p| labels(p)).collect();
    write(&st, "", pop.iter().map(|p| series(p, &[(T0, 1.0)])).collect());
    let cases = vec![
        vec![eq("__name__", "up")],
        vec![eq("__name__", "up"), eq("env", "")],
        vec![eq("__name__", "up"), ne("env", "")],
        vec![eq("__name__", "up"), ne("env", "prod")],
        vec![re("__name__", "up|node_.*")],
        vec![re("__name__", ".+"), re("env", ".*")],
        vec![re("__name__", ".+"), re("env", "")],
        vec![re("job", "a.*"), re("env", "prod|")],
        vec![re("job", "a.*"), nre("env", "prod|")],
        vec![re("job", "a.*"), nre("env", ".+")],
        vec![re("job", "a.*"), nre("env", ".*")],
        vec![re("job", "pi")],
        vec![re("job", "api|db"), re("env", "prod|dev|nope")],
        vec![re("job", "api|db|"), ne("__name__", "up")],
        vec![re("path", "/a.b")],
        vec![eq("__name__", "node_cpu"), nre("job", "api|db")],
        vec![ne("job", "web")],
        vec![nre("__name__", "up")],
        vec![eq("nope", "")],
        vec![eq("nope", "x")],
        vec![re("nope", ".*"), eq("job", "db")],
    ];
    for ms in cases {
        let compiled = Compiled::compile_all(&ms).unwrap();
        let mut want: Vec<_> =
            all.iter().filter(|l| compiled.iter().all(|m| m.matches_labels(l))).cloned().collect();
        want.sort_by(|a, b| {
            let k = |l: &Vec<basin_proto::storage::Label>| {
                l.iter().map(|x| (x.name.clone(), x.value.clone())).collect::<Vec<_>>()
            };
            k(a).cmp(&k(b))
        });
        let got: Vec<_> =
            select(&st, "", ms.clone(), T0, T0).into_iter().map(|s| s.labels).collect();
        assert_eq!(got, want, "matchers {ms:?}");
    }
}

#[test]
fn label_apis_follow_matchers_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    write(&st, "", vec![series(&[("__name__", "old"), ("zone", "a")], &[(T0 - 3 * DAY, 1.0)])]);
    write(
        &st,
        "",
        vec![
            series(&[("__name__", "up"), ("job", "api")], &[(T0, 1.0)]),
            series(&[("__name__", "up"), ("job", "db"), ("env", "prod")], &[(T0, 1.0)]),
        ],
    );
    let names = |sets: Vec<MatcherSet>, start, end| {
        st.label_names(&LabelNamesRequest {
            tenant: "".into(),
            matchers: sets,
            start_ms: start,
            end_ms: end,
            limit: 0,
        })
        .unwrap()
    };
    assert_eq!(names(vec![], 0, 0), ["__name__", "env", "job", "zone"]);
    assert_eq!(names(vec![], T0 - 60_000, T0), ["__name__", "env", "job"]);
    assert_eq!(names(vec![], T0 - 4 * DAY, T0 - 2 * DAY), ["__name__", "zone"]);
    let set = |ms| MatcherSet { matchers: ms };
    assert_eq!(names(vec![set(vec![eq("job", "api")])], 0, 0), ["__name__", "job"]);
    assert_eq!(
        names(vec![set(vec![eq("job", "api")]), set(vec![eq("__name__", "old")])], 0, 0),
        ["__name__", "job", "zone"]
    );

    let values = |name: &str, sets: Vec<MatcherSet>, start, end, limit| {
        st.label_values(&LabelValuesRequest {
            tenant: "".into(),
            name: name.into(),
            matchers: sets,
            start_ms: start,
            end_ms: end,
            limit,
        })
        .unwrap()
    };
    assert_eq!(values("__name__", vec![], 0, 0, 0), ["old", "up"]);
    assert_eq!(values("__name__", vec![], 0, 0, 1), ["old"]);
    assert_eq!(values("__name__", vec![], T0, T0, 0), ["up"]);
    assert_eq!(values("job", vec![set(vec![ne("env", "")])], 0, 0, 0), ["db"]);
    assert!(values("missing", vec![], 0, 0, 0).is_empty());

    let series_of = |sets: Vec<MatcherSet>, start, end| {
        st.series(&SeriesRequest {
            tenant: "".into(),
            matchers: sets,
            start_ms: start,
            end_ms: end,
            limit: 0,
        })
        .unwrap()
        .into_iter()
        .map(|s| {
            assert!(s.samples.is_empty());
            s.labels
        })
        .collect::<Vec<_>>()
    };
    assert_eq!(series_of(vec![set(vec![eq("__name__", "up")])], 0, 0).len(), 2);
    assert_eq!(
        series_of(vec![set(vec![re("__name__", ".+")])], T0 - 4 * DAY, T0 - 2 * DAY),
        vec![labels(&[("__name__", "old"), ("zone", "a")])]
    );
    assert_eq!(series_of(vec![], 0, 0).len(), 3);
}

#[test]
fn tenants_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let l = [("__name__", "up"), ("job", "x")];
    write(&st, "a", vec![series(&l, &[(T0, 1.0)])]);
    write(
        &st,
        "b",
        vec![series(&l, &[(T0, 2.0)]), series(&[("__name__", "only_b")], &[(T0, 3.0)])],
    );
    let a = select(&st, "a", vec![re("__name__", ".+")], T0, T0);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].samples[0].value, 1.0);
    let b = select(&st, "b", vec![re("__name__", ".+")], T0, T0);
    assert_eq!(b.len(), 2);
    assert!(select(&st, "", vec![re("__name__", ".+")], T0, T0).is_empty());
    let req = |t: &str| LabelValuesRequest {
        tenant: t.into(),
        name: "__name__".into(),
        ..Default::default()
    };
    assert_eq!(st.label_values(&req("a")).unwrap(), ["up"]);
    assert_eq!(st.label_values(&req("b")).unwrap(), ["only_b", "up"]);
}

#[test]
fn data_survives_reopen_with_and_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let l = [("__name__", "up"), ("job", "x")];
    {
        let st = open(dir.path());
        write(&st, "t", vec![series(&l, &[(T0, 1.0), (T0 + 1, 2.0)])]);
    }
    {
        let st = open(dir.path());
        let got = select(&st, "t", vec![eq("job", "x")], T0, T0 + 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples.len(), 2);
        // The series is recognised after reopen, not created again.
        let r = st
            .write(&WriteRequest { tenant: "t".into(), series: vec![series(&l, &[(T0 + 2, 3.0)])] })
            .unwrap();
        assert_eq!((r.samples_written, r.series_created), (1, 0));
        st.flush().unwrap();
    }
    let st = open(dir.path());
    let got = select(&st, "t", vec![eq("job", "x")], T0, T0 + 2);
    assert_eq!(got[0].samples.iter().map(|s| s.value).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
}

fn constant_hash(_: &str, _: &[basin_proto::storage::Label]) -> u64 {
    u64::MAX - 1
}

#[test]
fn id_collisions_are_resolved_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig { series_hasher: constant_hash, ..config(dir.path()) };
    let names = ["a", "b", "c", "d"];
    {
        let st = Storage::open(cfg.clone()).unwrap();
        // Two colliding series in one request, two more in others: all share one hash.
        let r = st
            .write(&WriteRequest {
                tenant: "".into(),
                series: vec![
                    series(&[("__name__", "a")], &[(T0, 1.0)]),
                    series(&[("__name__", "b")], &[(T0, 2.0)]),
                    series(&[("__name__", "a")], &[(T0 + 1, 1.1)]),
                ],
            })
            .unwrap();
        assert_eq!(r.series_created, 2);
        write(&st, "", vec![series(&[("__name__", "c")], &[(T0, 3.0)])]);
        write(&st, "other", vec![series(&[("__name__", "d")], &[(T0, 4.0)])]);
        let got = select(&st, "", vec![re("__name__", ".+")], T0, T0 + 1);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].samples.len(), 2);
    }
    // After reopen (empty cache) every series finds its own id again.
    let st = Storage::open(cfg).unwrap();
    for (i, n) in names.iter().enumerate() {
        let tenant = if *n == "d" { "other" } else { "" };
        let r = st
            .write(&WriteRequest {
                tenant: tenant.into(),
                series: vec![series(&[("__name__", n)], &[(T0 + 10, 10.0 + i as f64)])],
            })
            .unwrap();
        assert_eq!(r.series_created, 0, "{n} must not be created twice");
    }
    write(&st, "", vec![series(&[("__name__", "e")], &[(T0, 5.0)])]);
    for (i, n) in names.iter().chain(&["e"]).enumerate() {
        let tenant = if *n == "d" { "other" } else { "" };
        let got = select(&st, tenant, vec![eq("__name__", n)], T0, T0 + 10);
        assert_eq!(got.len(), 1, "{n}");
        assert_eq!(got[0].labels, labels(&[("__name__", n)]));
        let last = got[0].samples.last().unwrap().value;
        if *n != "e" {
            assert_eq!(last, 10.0 + i as f64, "{n}");
        }
    }
}

#[test]
fn limits_name_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        StorageConfig { max_series_per_select: 2, max_samples_per_select: 5, ..config(dir.path()) };
    let st = Storage::open(cfg).unwrap();
    for j in ["a", "b", "c"] {
        write(
            &st,
            "",
            vec![series(&[("__name__", "up"), ("job", j)], &[(T0, 1.0), (T0 + 1, 1.0)])],
        );
    }
    let err = st.select(&select_req("", vec![eq("__name__", "up")], T0, T0 + 1)).unwrap_err();
    let status = err.to_status();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("exceeds max_series_per_select (2)"), "{}", status.message());
    let err = st.select(&select_req("", vec![re("job", "a|b")], T0, T0 + 1)).unwrap();
    assert_eq!(err.len(), 2);
    let mut req = select_req("", vec![re("job", "a|b|c")], T0, T0 + 1);
    req.max_series = 10;
    let err = st.select(&req).unwrap_err().to_status();
    assert!(err.message().contains("max_series_per_select (2)"), "{}", err.message());
    let mut req = select_req("", vec![re("job", "a|b")], T0, T0 + 1);
    req.max_samples = 3;
    let err = st.select(&req).unwrap_err().to_status();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(err.message().contains("exceeds max_samples_per_select (3)"), "{}", err.message());
}

#[test]
fn bad_input_is_invalid_argument_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let mut unsorted = series(&[("__name__", "ok")], &[(T0, 1.0)]);
    unsorted.labels.push(basin_proto::storage::Label { name: "A".into(), value: "1".into() });
    let req = WriteRequest {
        tenant: "".into(),
        series: vec![series(&[("__name__", "good")], &[(T0, 1.0)]), unsorted],
    };
    let err = st.write(&req).unwrap_err().to_status();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("unsorted"), "{}", err.message());
    assert!(select(&st, "", vec![eq("__name__", "good")], T0, T0).is_empty());
    let err = st.select(&select_req("", vec![re("a", "(")], T0, T0)).unwrap_err().to_status();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[test]
fn dedup_interval_keeps_last_sample_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig { dedup_interval: Some(Duration::from_secs(10)), ..config(dir.path()) };
    let st = Storage::open(cfg).unwrap();
    let base = T0 - T0 % 10_000;
    let l = [("__name__", "up")];
    // An HA pair: two replicas a few ms apart in each interval.
    write(
        &st,
        "",
        vec![series(
            &l,
            &[(base, 1.0), (base + 3, 1.1), (base + 10_000, 2.0), (base + 10_002, 2.1)],
        )],
    );
    let want = vec![(base + 3, 1.1f64.to_bits()), (base + 10_002, 2.1f64.to_bits())];
    assert_eq!(bits(&select(&st, "", vec![eq("__name__", "up")], base, base + 20_000)[0]), want);
    st.flush().unwrap();
    assert_eq!(bits(&select(&st, "", vec![eq("__name__", "up")], base, base + 20_000)[0]), want);
}

#[test]
fn reads_merge_each_days_chunks_with_its_head_samples() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let l = [("__name__", "m"), ("job", "y")];
    let boundary = T0.div_euclid(DAY) * DAY;
    let at = |i: i64| boundary + i * 10_000;
    // Chunks on both sides of midnight, then head samples on both sides: new ones between
    // and after the chunked ones, and rewrites of chunked timestamps (the head wins).
    let chunked: Vec<(i64, f64)> = (-30..30).step_by(2).map(|i| (at(i), i as f64)).collect();
    write(&st, "", vec![series(&l, &chunked)]);
    st.flush().unwrap();
    let head: Vec<(i64, f64)> =
        [-29, -10, -4, 1, 4, 7, 30, 31].iter().map(|&i| (at(i), 1000.0 + i as f64)).collect();
    write(&st, "", vec![series(&l, &head)]);
    let mut want = std::collections::BTreeMap::new();
    want.extend(chunked.iter().copied());
    want.extend(head.iter().copied());
    let got = select(&st, "", vec![eq("job", "y")], at(-40), at(40));
    let got: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.timestamp_ms, s.value)).collect();
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
}

#[test]
fn chunks_hold_many_samples_across_days() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let l = [("__name__", "c"), ("job", "x")];
    let start = T0 - 2 * DAY;
    let samples: Vec<(i64, f64)> =
        (0..20_000).map(|i| (start + i * 15_000, (i * 3) as f64)).collect();
    for batch in samples.chunks(1000) {
        write(&st, "", vec![series(&l, batch)]);
    }
    st.flush().unwrap();
    let end = samples.last().unwrap().0;
    let got = select(&st, "", vec![eq("job", "x")], start, end);
    assert_eq!(got[0].samples.len(), samples.len());
    assert!(
        got[0].samples.iter().zip(&samples).all(|(a, b)| a.timestamp_ms == b.0 && a.value == b.1)
    );
    // A window crossing a day boundary.
    let boundary = (start.div_euclid(DAY) + 1) * DAY;
    let (lo, hi) = (boundary - 60_000, boundary + 60_000);
    let want: Vec<_> = samples.iter().filter(|s| s.0 >= lo && s.0 <= hi).collect();
    let mid = select(&st, "", vec![eq("job", "x")], lo, hi);
    assert_eq!(mid[0].samples.len(), want.len());
    assert_eq!(mid[0].samples[0].timestamp_ms, want[0].0);
}

#[test]
fn retention_drops_old_days() {
    let dir = tempfile::tempdir().unwrap();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    let l = [("__name__", "up")];
    {
        let st = open(dir.path());
        write(
            &st,
            "",
            vec![series(&l, &[(now - 10 * DAY, 1.0), (now - 5 * DAY, 2.0), (now, 3.0)])],
        );
        st.flush().unwrap();
        write(&st, "", vec![series(&l, &[(now - 9 * DAY, 4.0)])]);
    }
    let cfg =
        StorageConfig { retention: Some(Duration::from_secs(3 * 86_400)), ..config(dir.path()) };
    let st = Storage::open(cfg).unwrap();
    let got = select(&st, "", vec![eq("__name__", "up")], now - 20 * DAY, now);
    assert_eq!(got[0].samples.iter().map(|s| s.value).collect::<Vec<_>>(), vec![3.0]);
    let names = st
        .label_values(&LabelValuesRequest {
            tenant: "".into(),
            name: "__name__".into(),
            start_ms: now - 20 * DAY,
            end_ms: now - 6 * DAY,
            ..Default::default()
        })
        .unwrap();
    assert!(names.is_empty(), "{names:?}");
    // Written after the last enforcement: not answered, though not yet dropped.
    write(&st, "", vec![series(&l, &[(now - 8 * DAY, 5.0)])]);
    let got = select(&st, "", vec![eq("__name__", "up")], now - 20 * DAY, now);
    assert_eq!(got[0].samples.iter().map(|s| s.value).collect::<Vec<_>>(), vec![3.0]);
    assert!(select(&st, "", vec![eq("__name__", "up")], now - 20 * DAY, now - 7 * DAY).is_empty());
}

#[test]
fn corrupt_chunk_names_series_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    // day | id (the first series of a database is 1) | last timestamp
    let mut key = Vec::new();
    key.extend_from_slice(&((T0.div_euclid(DAY) as u32) ^ (1 << 31)).to_be_bytes());
    key.extend_from_slice(&1u64.to_be_bytes());
    key.extend_from_slice(&((T0 as u64) ^ (1 << 63)).to_be_bytes());
    {
        let st = Storage::open(cfg.clone()).unwrap();
        write(&st, "", vec![series(&[("__name__", "up"), ("job", "x")], &[(T0, 1.0)])]);
        st.flush().unwrap();
    }
    {
        // Overwrite the chunk with 3 bytes of garbage, behind the engine's back.
        let opts = rocksdb::Options::default();
        let db =
            rocksdb::DB::open_cf(&opts, dir.path(), ["series", "index", "wal", "chunks"]).unwrap();
        let chunks = db.cf_handle("chunks").unwrap();
        assert!(db.get_cf(chunks, &key).unwrap().is_some(), "the chunk is at the expected key");
        db.put_cf(chunks, &key, [1, 9, 3]).unwrap();
    }
    let st = Storage::open(cfg).unwrap();
    let err = st.select(&select_req("", vec![eq("job", "x")], T0, T0)).unwrap_err();
    let msg = err.to_string();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(msg.contains(r#"up{job="x"}"#) && msg.contains("unknown chunk value mode 9"), "{msg}");
    assert!(msg.contains(&hex), "{msg} names key {hex}");
    assert_eq!(err.to_status().code(), tonic::Code::DataLoss);
    // The node stays up: other series still answer.
    write(&st, "", vec![series(&[("__name__", "up"), ("job", "y")], &[(T0, 2.0)])]);
    assert_eq!(select(&st, "", vec![eq("job", "y")], T0, T0).len(), 1);
}

/// A checkpoint cuts whole chunks and keeps the rest in the WAL's checkpoint; after a
/// reopen without flush, the head is rebuilt from checkpoint plus later records.
#[test]
fn checkpoint_then_reopen_replays_head_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig { samples_per_chunk: 16, ..config(dir.path()) };
    // Recent data (a checkpoint cuts every sample of days before yesterday), all in today.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let now = now.as_millis() as i64;
    let t0 = (now - 3_600_000).max(now - now.rem_euclid(DAY));
    let pts = |from: i64, to: i64| -> Vec<(i64, f64)> {
        (from..to).map(|k| (t0 + k * 15_000, k as f64 * 0.1)).collect()
    };
    let l = [("__name__", "m"), ("job", "x")];
    {
        let st = Storage::open(cfg.clone()).unwrap();
        write(&st, "", vec![series(&l, &pts(0, 40))]);
        assert_eq!(st.head_len(), 40);
        assert_eq!(st.checkpoint().unwrap(), 32, "two whole chunks of 16 are cut");
        assert_eq!(st.head_len(), 8);
        write(&st, "", vec![series(&l, &pts(40, 45))]);
        // Out of order, and overwriting a value that is already in a chunk.
        write(&st, "", vec![series(&l, &[(t0 + 3 * 15_000, -1.0)])]);
    }
    let st = Storage::open(cfg).unwrap();
    assert_eq!(st.head_len(), 8 + 5 + 1, "checkpoint (8) + later records (5 + 1)");
    let got = select(&st, "", vec![eq("job", "x")], t0, t0 + 45 * 15_000);
    let mut want = pts(0, 45);
    want[3].1 = -1.0;
    let have: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.timestamp_ms, s.value)).collect();
    assert_eq!(have, want);
    st.flush().unwrap();
    assert_eq!(st.head_len(), 0);
    let got = select(&st, "", vec![eq("job", "x")], t0, t0 + 45 * 15_000);
    let have: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.timestamp_ms, s.value)).collect();
    assert_eq!(have, want);
}

/// An undecodable WAL record is reported and skipped; the node opens and serves the rest.
#[test]
fn corrupt_wal_record_does_not_stop_the_node() {
    let dir = tempfile::tempdir().unwrap();
    {
        let st = open(dir.path());
        write(&st, "", vec![series(&[("__name__", "up"), ("job", "a")], &[(T0, 1.0)])]);
        write(&st, "", vec![series(&[("__name__", "up"), ("job", "b")], &[(T0, 2.0)])]);
    }
    {
        let opts = rocksdb::Options::default();
        let db =
            rocksdb::DB::open_cf(&opts, dir.path(), ["series", "index", "wal", "chunks"]).unwrap();
        let wal = db.cf_handle("wal").unwrap();
        let keys: Vec<Box<[u8]>> =
            db.iterator_cf(wal, rocksdb::IteratorMode::Start).map(|kv| kv.unwrap().0).collect();
        assert_eq!(keys.len(), 2, "one record per write");
        db.put_cf(wal, &keys[0], [1, 2]).unwrap();
    }
    let st = open(dir.path());
    assert!(select(&st, "", vec![eq("job", "a")], T0, T0).is_empty());
    let got = select(&st, "", vec![eq("job", "b")], T0, T0);
    assert_eq!(got[0].samples[0].value, 2.0);
}

/// Measures on-disk bytes per sample for a realistic mix (counters and float gauges, 15 s
/// scrapes) after flush, and checks the chunk encoding pays for itself.
#[test]
fn bytes_per_sample_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let series_n = 100;
    let samples_n = 2880; // 12 h at 15 s
    for step in (0..samples_n).step_by(240) {
        let batch = (0..series_n)
            .map(|i| {
                let id = format!("{i}");
                let pts: Vec<(i64, f64)> = (step..(step + 240).min(samples_n))
                    .map(|k| {
                        let t = T0 + k as i64 * 15_000 + (k % 3) as i64;
                        let v = if i % 2 == 0 {
                            (k * (i + 1)) as f64
                        } else {
                            0.5 + ((k as f64) * 0.01).sin()
                        };
                        (t, v)
                    })
                    .collect();
                series(&[("__name__", "m"), ("i", &id)], &pts)
            })
            .collect();
        write(&st, "", batch);
    }
    st.flush().unwrap();
    let usage = st.disk_usage().unwrap();
    let chunks = usage.iter().find(|(n, _)| *n == "chunks").map(|u| u.1).unwrap();
    let total: u64 = usage.iter().map(|u| u.1).sum();
    let per_sample = chunks as f64 / (series_n * samples_n) as f64;
    println!(
        "disk usage {usage:?}; chunks {per_sample:.2} bytes/sample, all CFs {:.2}",
        total as f64 / (series_n * samples_n) as f64
    );
    assert!(per_sample < 6.0, "{per_sample} bytes/sample");
    let got = select(&st, "", vec![eq("i", "7")], T0, T0 + samples_n as i64 * 15_000);
    assert_eq!(got[0].samples.len(), samples_n);
}

#[test]
fn concurrent_writes_cuts_and_selects_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig { samples_per_chunk: 16, ..config(dir.path()) };
    let st = Storage::open(cfg).unwrap();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let st = std::sync::Arc::clone(&st);
            std::thread::spawn(move || {
                for k in 0..200i64 {
                    let job = format!("w{w}");
                    // Each writer also creates new series as it goes.
                    let inst = format!("{}", k % 7);
                    write(
                        &st,
                        "",
                        vec![series(
                            &[("__name__", "m"), ("job", &job), ("i", &inst)],
                            &[(T0 + k, k as f64)],
                        )],
                    );
                }
            })
        })
        .collect();
    let cutter = {
        let st = std::sync::Arc::clone(&st);
        std::thread::spawn(move || {
            for i in 0..20 {
                if i % 2 == 0 {
                    st.checkpoint().unwrap();
                } else {
                    st.flush().unwrap();
                }
                let got = select(&st, "", vec![eq("__name__", "m")], T0, T0 + 200);
                for s in &got {
                    assert!(s.samples.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    cutter.join().unwrap();
    let got = select(&st, "", vec![eq("__name__", "m")], T0, T0 + 200);
    assert_eq!(got.len(), 21);
    assert_eq!(got.iter().map(|s| s.samples.len()).sum::<usize>(), 600);
    st.flush().unwrap();
    let got = select(&st, "", vec![eq("__name__", "m")], T0, T0 + 200);
    assert_eq!(got.iter().map(|s| s.samples.len()).sum::<usize>(), 600);
}

/// An acknowledged write survives the process dying without closing RocksDB: the test
/// re-runs itself as a child that writes, then aborts (like kill -9: no destructors run).
/// Runs test `name` alone in a child process of this test binary, with `var` set to `dir`
/// (the child sees it and plays its part), and waits for it.
fn run_child(name: &str, var: &str, dir: &std::path::Path) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1"])
        .env(var, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

#[test]
fn acknowledged_writes_survive_abort() {
    const VAR: &str = "BASIN_STORAGE_CRASH_DIR";
    let l = [("__name__", "up"), ("job", "crash")];
    if let Ok(dir) = std::env::var(VAR) {
        let st = open(std::path::Path::new(&dir));
        write(&st, "", vec![series(&l, &[(T0, 1.0), (T0 + 1, f64::from_bits(STALE))])]);
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status = run_child("acknowledged_writes_survive_abort", VAR, dir.path());
    assert!(!status.success(), "the child must have aborted");
    let st = open(dir.path());
    let got = select(&st, "", vec![eq("job", "crash")], T0, T0 + 1);
    assert_eq!(bits(&got[0]), vec![(T0, 1.0f64.to_bits()), (T0 + 1, STALE)]);
}

/// The crash test under load: a child process writes from three threads while a fourth
/// checkpoints continuously (cutting chunks, rewriting the WAL's checkpoint, truncating
/// records), appends every acknowledged write to a log file, and aborts mid-load. After a
/// restart, every acknowledged sample reads back bit-exact, and the checkpoints in between
/// lost nothing and duplicated nothing.
#[test]
fn acknowledged_writes_survive_abort_during_checkpoints() {
    const VAR: &str = "BASIN_STORAGE_LOAD_CRASH_DIR";
    // Recent timestamps, so a checkpoint cuts only whole chunks and keeps the rest.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let base = (now.as_millis() as i64 / DAY) * DAY;
    let value =
        |w: i64, k: i64| if k % 17 == 0 { f64::from_bits(STALE) } else { (w * k) as f64 * 0.25 };
    if let Ok(dir) = std::env::var(VAR) {
        let dir = std::path::PathBuf::from(dir);
        let cfg = StorageConfig {
            samples_per_chunk: 8,
            max_chunk_samples: 32,
            wal_checkpoint_bytes: 4 << 10,
            ..config(&dir.join("db"))
        };
        let st = Storage::open(cfg).unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(
            std::fs::File::create(dir.join("acked")).unwrap(),
        ));
        let _checkpointer = {
            let st = std::sync::Arc::clone(&st);
            std::thread::spawn(move || {
                loop {
                    st.checkpoint().unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            })
        };
        let _writers: Vec<_> = (0..3i64)
            .map(|w| {
                let (st, log) = (std::sync::Arc::clone(&st), std::sync::Arc::clone(&log));
                std::thread::spawn(move || {
                    for k in 0.. {
                        let job = format!("w{w}");
                        let inst = format!("{}", k % 5);
                        let l = [("__name__", "load"), ("job", job.as_str()), ("i", inst.as_str())];
                        write(&st, "", vec![series(&l, &[(base + k, value(w, k))])]);
                        use std::io::Write as _;
                        writeln!(log.lock().unwrap(), "{w} {k}").unwrap();
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status = run_child("acknowledged_writes_survive_abort_during_checkpoints", VAR, dir.path());
    assert!(!status.success(), "the child must have aborted");
    let acked = std::fs::read_to_string(dir.path().join("acked")).unwrap();
    let mut want: std::collections::BTreeMap<(i64, i64), Vec<(i64, u64)>> = Default::default();
    for line in acked.lines() {
        // The last line may be torn by the abort.
        let Some((w, k)) = line.split_once(' ') else { continue };
        let (Ok(w), Ok(k)) = (w.parse::<i64>(), k.parse::<i64>()) else { continue };
        want.entry((w, k % 5)).or_default().push((base + k, value(w, k).to_bits()));
    }
    let acked_samples: usize = want.values().map(Vec::len).sum();
    assert!(acked_samples > 300, "the load ran: {acked_samples} acknowledged writes");
    let st = open(&dir.path().join("db"));
    for ((w, i), samples) in &want {
        let job = format!("w{w}");
        let inst = format!("{i}");
        let got = select(&st, "", vec![eq("job", &job), eq("i", &inst)], base, base + DAY);
        assert_eq!(got.len(), 1, "series w{w} i{i}");
        // Written after the last acknowledged one (before the abort) may be there too.
        let have = bits(&got[0]);
        assert!(have.len() >= samples.len(), "series w{w} i{i} lost acknowledged samples");
        assert_eq!(&have[..samples.len()], samples.as_slice(), "series w{w} i{i}");
        assert!(have.windows(2).all(|p| p[0].0 < p[1].0), "ordered, no duplicates");
    }
}

/// Selects of many series read chunks on several threads: every series still gets exactly
/// its own samples, head and chunks merged, in label order.
#[test]
fn large_selects_read_in_parallel_shares_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let n = 3000i64;
    let batch = |k: i64| -> Vec<_> {
        (0..n)
            .map(|i| {
                let id = format!("{i:05}");
                series(&[("__name__", "wide"), ("i", &id)], &[(T0 + k, (i * 10 + k) as f64)])
            })
            .collect()
    };
    write(&st, "", batch(0));
    write(&st, "", batch(1));
    st.flush().unwrap();
    // One more sample per series that stays in the head.
    write(&st, "", batch(2));
    let got = select(&st, "", vec![eq("__name__", "wide")], T0, T0 + 2);
    assert_eq!(got.len(), n as usize);
    for (i, s) in got.iter().enumerate() {
        assert_eq!(s.labels, labels(&[("__name__", "wide"), ("i", &format!("{i:05}"))]));
        let want: Vec<(i64, f64)> = (0..3).map(|k| (T0 + k, (i as i64 * 10 + k) as f64)).collect();
        let have: Vec<(i64, f64)> = s.samples.iter().map(|x| (x.timestamp_ms, x.value)).collect();
        assert_eq!(have, want, "series {i}");
    }
}

/// A select's facts describe the samples it answers, whether they come from the head, from
/// chunks, or from both merged: a drop hidden behind a staleness marker counts, a drop
/// only before the range does not.
#[test]
fn select_reports_the_facts_of_its_samples() {
    use basin_proto::node::SampleFacts;
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let stale = f64::from_bits(STALE);
    let steady = [("__name__", "c"), ("job", "steady")];
    let reset = [("__name__", "c"), ("job", "reset")];
    write(&st, "", vec![series(&steady, &[(T0, 1.0), (T0 + 10, 2.0), (T0 + 20, stale)])]);
    write(&st, "", vec![series(&reset, &[(T0, 5.0), (T0 + 10, 1.0), (T0 + 20, 2.0)])]);
    let facts = |st: &Storage, start: i64| -> Vec<(String, SampleFacts)> {
        let req = select_req("", vec![eq("__name__", "c")], start, T0 + 100);
        let got = st.select_shared(&req).expect("select");
        got.into_iter()
            .map(|s| {
                assert_eq!(s.facts, Some(SampleFacts::of(&s.samples)), "{:?}", s.labels);
                (s.labels[1].value.clone(), s.facts.expect("facts"))
            })
            .collect()
    };
    let f = |ordered, has_stale, has_drop| SampleFacts { ordered, has_stale, has_drop };
    let head = facts(&st, T0);
    assert_eq!(
        head,
        vec![("reset".into(), f(true, false, true)), ("steady".into(), f(true, true, false))]
    );
    // Past the drop, the reset series has none.
    assert_eq!(facts(&st, T0 + 10)[0], ("reset".into(), f(true, false, false)));
    st.flush().unwrap();
    assert_eq!(facts(&st, T0), head, "from chunks");
    // Head samples merged into chunks: a value below the stale marker's predecessor.
    write(&st, "", vec![series(&steady, &[(T0 + 30, 1.5)])]);
    assert_eq!(facts(&st, T0)[1], ("steady".into(), f(true, true, true)));
}
