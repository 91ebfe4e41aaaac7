//! Engine unit tests for the semantics that are easy to get subtly wrong. Expected values are
//! derived by hand in the comments.

use super::{Engine, EngineOptions, EvalError, Value};
use crate::promqltest::MemSource;
use basin_proto::storage::Label;
use std::time::Duration;

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(n, v)| Label { name: n.to_string(), value: v.to_string() }).collect()
}

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

/// `x{job="a"}` counting one per second, sampled every 60s from 0 to 600s, and
/// `x{job="b"}` twice as fast.
fn counters() -> MemSource {
    let mut src = MemSource::new();
    src.add(
        labels(&[("__name__", "x_total"), ("job", "a")]),
        (0..=10).map(|i| (i * 60_000, (i * 60) as f64)),
    );
    src.add(
        labels(&[("__name__", "x_total"), ("job", "b")]),
        (0..=10).map(|i| (i * 60_000, (i * 120) as f64)),
    );
    src
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn instant(src: &MemSource, q: &str, t: i64) -> Result<Value, EvalError> {
    block(engine().query_instant(src, q, t)).map(|r| r.value)
}

fn vector(src: &MemSource, q: &str, t: i64) -> Vec<(Vec<Label>, f64)> {
    match instant(src, q, t) {
        Ok(Value::Vector(v)) => {
            let mut v: Vec<_> = v.into_iter().map(|s| (s.labels, s.v)).collect();
            v.sort_by(|a, b| basin_proto::labels::cmp_labels(&a.0, &b.0));
            v
        }
        other => panic!("{q}: expected a vector, got {other:?}"),
    }
}

fn scalar(src: &MemSource, q: &str, t: i64) -> f64 {
    match instant(src, q, t) {
        Ok(Value::Scalar { v, .. }) => v,
        other => panic!("{q}: expected a scalar, got {other:?}"),
    }
}

#[test]
fn rate_window_is_left_open_and_extrapolates() {
    // At 300s the window (0s, 300s] holds samples 60..300 (the one at 0s is excluded):
    // increase 240 over 240s; the first sample is 60s from the window start (< 1.1 * 60s, so
    // extrapolate fully, and zero would be reached exactly 60s earlier), 0s to the end:
    // 240 * (240 + 60) / 240 = 300 over a 300s range = 1/s.
    let src = counters();
    let v = vector(&src, "rate(x_total{job=\"a\"}[5m])", 300_000);
    assert_eq!(v, vec![(labels(&[("job", "a")]), 1.0)]);
    let v = vector(&src, "increase(x_total{job=\"b\"}[5m])", 300_000);
    assert_eq!(v, vec![(labels(&[("job", "b")]), 600.0)]);
}

#[test]
fn counter_reset_is_compensated() {
    // 10, 20, 5 (reset), 15 at 0/60/120/180s: increase = 15 - 10 + 20 = 25 over 180s sampled;
    // window (0, 240]: first sample used is at 60s (20), so: 20, 5, 15 → 15 - 20 + 20 = 15
    // over 120s; to_start 60s (< 66s), but zero is reached after 20/15*120 = 160s, so 60s
    // stands; to_end 60s. 15 * (120 + 60 + 60) / 120 = 30 per 240s → 0.125/s.
    let mut src = MemSource::new();
    src.add(
        labels(&[("__name__", "r_total")]),
        [(0, 10.0), (60_000, 20.0), (120_000, 5.0), (180_000, 15.0)],
    );
    let v = vector(&src, "rate(r_total[4m])", 240_000);
    assert_eq!(v.len(), 1);
    assert!((v[0].1 - 0.125).abs() < 1e-12, "{v:?}");
}

#[test]
fn lookback_is_left_open_and_stale_markers_end_series() {
    let mut src = MemSource::new();
    src.add(labels(&[("__name__", "g")]), [(0, 1.0)]);
    src.add(
        labels(&[("__name__", "s")]),
        [(0, 1.0), (60_000, f64::from_bits(basin_proto::STALE_NAN_BITS)), (180_000, 3.0)],
    );
    assert_eq!(vector(&src, "g", 299_999).len(), 1);
    assert!(vector(&src, "g", 300_000).is_empty());
    assert_eq!(vector(&src, "s", 30_000)[0].1, 1.0);
    assert!(vector(&src, "s", 60_000).is_empty());
    assert!(vector(&src, "s", 120_000).is_empty());
    assert_eq!(vector(&src, "s", 180_000)[0].1, 3.0);
    // Range vectors drop the marker: samples at 0 and 180s.
    assert_eq!(vector(&src, "count_over_time(s[10m])", 200_000)[0].1, 2.0);
}

#[test]
fn offset_and_at_modifiers() {
    let src = counters();
    // Negative offset reads the future: at 0s, offset -2m reads 120s → 120.
    assert_eq!(vector(&src, "x_total{job=\"a\"} offset -2m", 0)[0].1, 120.0);
    assert_eq!(vector(&src, "x_total{job=\"a\"} offset 1m", 180_000)[0].1, 120.0);
    assert_eq!(vector(&src, "x_total{job=\"a\"} @ 240", 600_000)[0].1, 240.0);
    // @ and offset together: 300s - 1m = 240s.
    assert_eq!(vector(&src, "x_total{job=\"a\"} @ 300 offset 1m", 0)[0].1, 240.0);
    // In a range query `@ end()` pins every step to the end.
    let r = block(engine().query_range(&src, "x_total{job=\"a\"} @ end()", 0, 120_000, 60_000))
        .expect("range query");
    let Value::Matrix(m) = r.value else { panic!("expected a matrix") };
    assert_eq!(m[0].points, vec![(0, 120.0), (60_000, 120.0), (120_000, 120.0)]);
}

#[test]
fn subquery_steps_align_to_absolute_multiples() {
    let src = MemSource::new();
    // At 150s, [5m:1m] covers (-150s, 150s]: steps at -120, -60, 0, 60, 120s → 5.
    assert_eq!(vector(&src, "count_over_time(vector(1)[5m:1m])", 150_000)[0].1, 5.0);
    // At 120s, (-180s, 120s]: -120 .. 120 → 5 (the window start itself is excluded).
    assert_eq!(vector(&src, "count_over_time(vector(1)[5m:1m])", 120_000)[0].1, 5.0);
}

#[test]
fn aggregations_group_and_drop_the_name() {
    let src = counters();
    let t = 600_000;
    assert_eq!(vector(&src, "sum(x_total)", t), vec![(vec![], 1800.0)]);
    assert_eq!(vector(&src, "avg(x_total)", t), vec![(vec![], 900.0)]);
    assert_eq!(vector(&src, "max by (job) (x_total)", t)[1], (labels(&[("job", "b")]), 1200.0));
    assert_eq!(vector(&src, "count without (job) (x_total)", t), vec![(vec![], 2.0)]);
    assert_eq!(vector(&src, "min(x_total)", t), vec![(vec![], 600.0)]);
    // Arithmetic drops the name, comparisons keep it.
    assert_eq!(vector(&src, "x_total{job=\"a\"} * 2", t), vec![(labels(&[("job", "a")]), 1200.0)]);
    assert_eq!(
        vector(&src, "x_total > 1000", t),
        vec![(labels(&[("__name__", "x_total"), ("job", "b")]), 1200.0)]
    );
    assert_eq!(scalar(&src, "scalar(sum(x_total)) / 2", t), 900.0);
}

#[test]
fn vector_matching() {
    let mut src = counters();
    src.add(labels(&[("__name__", "info"), ("job", "a"), ("team", "red")]), [(0, 1.0)]);
    src.add(labels(&[("__name__", "info"), ("job", "a"), ("team", "blue")]), [(0, 1.0)]);
    let t = 60_000;
    // One-to-one on job: 60 / 120.
    let v = vector(&src, "x_total{job=\"a\"} / on() x_total{job=\"b\"}", t);
    assert_eq!(v, vec![(vec![], 0.5)]);
    // Two `info` series share job="a" on the "one" side: error.
    let e = instant(&src, "x_total * on(job) group_left(team) info", t).expect_err("dup");
    assert!(e.to_string().starts_with("found duplicate series for the match group {job=\"a\"}"));
    // group_right takes the many side's labels plus `job` from the one side.
    let v = vector(&src, "x_total * on(job) group_right info", t);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].0, labels(&[("job", "a"), ("team", "blue")]));
    assert_eq!(v[0].1, 60.0);
    // Set operators.
    assert_eq!(vector(&src, "x_total and on(job) info", t).len(), 1);
    assert_eq!(vector(&src, "x_total unless on(job) info", t).len(), 1);
    assert_eq!(vector(&src, "x_total or info", t).len(), 4);
}

#[test]
fn range_query_returns_sorted_matrix() {
    let src = counters();
    let r = block(engine().query_range(&src, "x_total * 0 + 1", 0, 120_000, 60_000))
        .expect("range query");
    let Value::Matrix(m) = r.value else { panic!("expected a matrix") };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].labels, labels(&[("job", "a")]));
    assert_eq!(m[1].points, vec![(0, 1.0), (60_000, 1.0), (120_000, 1.0)]);
    let r = block(engine().query_range(&src, "time()", 0, 120_000, 60_000)).expect("range");
    let Value::Matrix(m) = r.value else { panic!("expected a matrix") };
    assert_eq!(m[0].labels, vec![]);
    assert_eq!(m[0].points, vec![(0, 0.0), (60_000, 60.0), (120_000, 120.0)]);
}

#[test]
fn limits_are_enforced() {
    let src = counters();
    let small = Engine::new(EngineOptions { max_samples: 5, ..EngineOptions::default() });
    let e = block(small.query_instant(&src, "x_total[10m]", 600_000)).expect_err("limit");
    assert_eq!(
        e.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    let e = block(engine().query_instant(&src, "sum(", 0)).expect_err("parse");
    assert!(matches!(e, EvalError::BadData(_)));
    let e = block(engine().query_range(&src, "x_total[5m]", 0, 60_000, 60_000)).expect_err("t");
    assert!(matches!(e, EvalError::BadData(_)));
    let zero = Engine::new(EngineOptions { timeout: Duration::ZERO, ..EngineOptions::default() });
    let e = block(zero.query_range(&src, "x_total", 0, 600_000, 1000)).expect_err("timeout");
    assert!(matches!(e, EvalError::Timeout(_)), "{e:?}");
}

#[test]
fn topk_and_quantile() {
    let src = counters();
    let v = instant(&src, "topk(1, x_total)", 600_000).expect("topk");
    let Value::Vector(v) = v else { panic!("expected a vector") };
    assert_eq!(v[0].labels, labels(&[("__name__", "x_total"), ("job", "b")]));
    // Median of 600 and 1200 is 900; the 0.75-quantile interpolates to 1050.
    assert_eq!(vector(&src, "quantile(0.75, x_total)", 600_000)[0].1, 1050.0);
    let e = instant(&src, "topk(scalar(foo), x_total)", 0).expect_err("NaN k");
    assert_eq!(e.to_string(), "Parameter value is NaN");
}

/// Jittered counters and gauges with gaps, resets, NaNs, staleness markers and a metric that
/// does not look like a counter, over 0..1h.
fn messy() -> MemSource {
    let stale = f64::from_bits(basin_proto::STALE_NAN_BITS);
    let mut src = MemSource::new();
    let mut seed = 7u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as i64
    };
    for (i, name) in ["req_total", "req_total", "temp", "req_total", "temp"].iter().enumerate() {
        let mut v = 0.0;
        let mut pts = Vec::new();
        let mut t = 0;
        while t <= 3_600_000 {
            let r = rnd();
            t += 10_000 + r % 9_000;
            v = match r % 50 {
                0 => 0.0,
                1 => f64::NAN,
                2 => stale,
                _ => v + (r % 100) as f64 / 7.0,
            };
            // A gap of several minutes in one series.
            if i == 1 && (1_200_000..1_700_000).contains(&t) {
                continue;
            }
            pts.push((t, v));
        }
        let job = ["a", "b"][i % 2];
        let inst = i.to_string();
        src.add(labels(&[("__name__", name), ("job", job), ("instance", &inst)]), pts);
    }
    // A counter without resets.
    let pts = (0..400).map(|i| (i * 9_000 + rnd() % 500, (i * i) as f64 / 3.0));
    src.add(labels(&[("__name__", "req_total"), ("job", "c"), ("instance", "9")]), pts);
    src
}

#[test]
fn series_major_range_queries_match_step_by_step() {
    let src = messy();
    let fns = [
        "rate",
        "increase",
        "delta",
        "irate",
        "idelta",
        "deriv",
        "resets",
        "changes",
        "avg_over_time",
        "sum_over_time",
        "min_over_time",
        "max_over_time",
        "count_over_time",
        "last_over_time",
        "first_over_time",
        "present_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "mad_over_time",
        "ts_of_first_over_time",
        "ts_of_last_over_time",
        "ts_of_max_over_time",
        "ts_of_min_over_time",
    ];
    let mut queries: Vec<String> = Vec::new();
    for f in fns {
        queries.push(format!("{f}({{job=~\".+\"}}[3m])"));
        queries.push(format!("sum by (job) ({f}(req_total[5m] offset 2m))"));
    }
    queries.extend(
        [
            "req_total",
            "{job=\"a\"}",
            "temp offset 3m",
            "temp @ 1200",
            "timestamp(req_total)",
            "rate(req_total[5m] @ end())",
            "predict_linear(temp[10m], 600)",
            "quantile_over_time(0.3, temp[7m])",
            "quantile_over_time(2, temp[7m])",
            "topk(2, rate(req_total[5m]))",
            "bottomk(1, temp) by (job)",
            "limitk(1, temp)",
            "count by (job) (temp) + sum by (job) (rate(req_total[2m]))",
            "rate(req_total[5m]) / ignoring(job) group_left rate(req_total[5m])",
            "max_over_time(rate(req_total[2m])[10m:1m])",
            "rate(req_total[5m]) > 0.1",
            "sum without (instance) (temp)",
            "label_replace(temp, \"x\", \"$1\", \"instance\", \"(.*)\")",
            "histogram_quantile(0.5, rate(req_total[5m]))",
            "avg by (job) (temp)",
            "stddev(rate(req_total[5m]))",
            "stdvar without (instance) (temp)",
            "min by (job) (irate(req_total[1m]))",
            "max(temp offset 3m)",
            "group by (job) (temp @ 1200)",
            "avg(sum_over_time(temp[3m]))",
            "sum by (__name__) (rate(req_total[5m]))",
            "topk(1, sum by (job) (temp))",
            "sum(quantile_over_time(2, temp[7m]))",
            "count(temp) by (job, instance)",
        ]
        .map(String::from),
    );
    let fast = engine();
    let slow = engine().step_by_step();
    for q in &queries {
        for (start, end, step) in [(0, 3_600_000, 15_000), (61_234, 3_000_000, 37_000)] {
            let a = block(fast.range_annotated(&src, q, start, end, step));
            let b = block(slow.range_annotated(&src, q, start, end, step));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{q}");
        }
    }
    // The sample limit fails for the same limits.
    for max_samples in (1..400).step_by(3) {
        let opts = EngineOptions { max_samples, ..EngineOptions::default() };
        for q in ["sum(rate(req_total[10m]))", "temp", "count(temp)"] {
            let run = |e: Engine| block(e.range_annotated(&src, q, 0, 600_000, 10_000)).is_ok();
            let (a, b) =
                (run(Engine::new(opts.clone())), run(Engine::new(opts.clone()).step_by_step()));
            assert_eq!(a, b, "{q} with max_samples {max_samples}");
        }
    }
}

/// Range query answers equal instant query answers at every step (the evaluator keeps state
/// across steps; instant queries start from scratch).
#[test]
fn range_steps_match_instant_queries() {
    let src = messy();
    let queries = [
        "sum by (job) (rate(req_total[5m]))",
        "topk(2, req_total)",
        "bottomk(2, temp > 0) by (job)",
        "count without (instance) (temp)",
        "quantile by (job) (0.5, temp)",
        "temp - temp offset 1m",
        "temp / on (job) group_left sum by (job) (temp)",
        "sum by (job) (temp) / on (job) group_right temp",
        "req_total and on (job) temp",
        "req_total or temp",
        "req_total unless on (instance) (temp > 20)",
        "label_replace(temp, \"job\", \"x$1\", \"instance\", \"(.*)\") * on (instance) temp",
        "sum(label_replace(req_total, \"v\", \"$1\", \"instance\", \"(.)\")) by (v)",
        "limitk(1, temp) by (job)",
        "count_values(\"v\", round(temp / 100))",
        "histogram_quantile(0.9, label_replace(req_total, \"le\", \"$1\", \"instance\", \"(.*)\"))",
    ];
    let (start, end, step) = (60_000, 3_000_000, 41_000);
    for q in queries {
        let range = block(engine().query_range(&src, q, start, end, step));
        let mut want: Vec<super::Series> = Vec::new();
        let mut t = start;
        while t <= end {
            let samples = match instant(&src, q, t) {
                Ok(Value::Vector(v)) => v,
                other => panic!("{q}: {other:?}"),
            };
            for s in samples {
                match want.iter_mut().find(|w| w.labels == s.labels) {
                    Some(w) => w.points.push((t, s.v)),
                    None => want.push(super::Series { labels: s.labels, points: vec![(t, s.v)] }),
                }
            }
            t += step;
        }
        want.sort_by(|a, b| basin_proto::labels::cmp_labels(&a.labels, &b.labels));
        let got = range.map(|r| r.value);
        assert_eq!(format!("{got:?}"), format!("{:?}", Ok::<_, ()>(Value::Matrix(want))), "{q}");
    }
}
