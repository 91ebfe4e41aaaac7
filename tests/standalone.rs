//! End-to-end tests of `basin standalone`: remote_write in, Prometheus HTTP API out, durability
//! across `kill -9`, bad input rejected with nothing stored, graceful shutdown.

mod common;

use common::remote::{body, post, series, write};
use common::{Basin, assert_close, get_json, labels, matrix, vector};

/// 2023-11-14T22:13:20Z, a round time in seconds.
const T0: i64 = 1_700_000_000;

fn counter_series(job: &str, instance: &str, per_step: f64) -> common::remote::TimeSeries {
    // One sample every 15 s for 10 minutes, increasing by `per_step` each time.
    let samples: Vec<(i64, f64)> =
        (0..=40).map(|i| ((T0 + i * 15) * 1000, i as f64 * per_step)).collect();
    series(&[("__name__", "http_requests_total"), ("job", job), ("instance", instance)], &samples)
}

/// Three `http_requests_total` counters (jobs api, api, db) and one `temperature` gauge.
fn three_counters_and_a_gauge() -> Vec<common::remote::TimeSeries> {
    vec![
        counter_series("api", "a:1", 3.0),
        counter_series("api", "b:1", 6.0),
        counter_series("db", "c:1", 1.5),
        series(&[("__name__", "temperature"), ("room", "kitchen")], &[(T0 * 1000, 21.5)]),
    ]
}

#[test]
fn remote_write_round_trip_instant_range_and_aggregation() {
    let dir = tempfile::tempdir().unwrap();
    let basin = Basin::standalone(dir.path(), &[]);
    write(&basin.url, three_counters_and_a_gauge());

    // Instant selector: the latest sample at or before t within the 5m lookback.
    let t = (T0 + 100) as f64; // latest sample at T0+90 = step 6
    let got = vector(&basin.query(r#"http_requests_total{instance=~"a.*"}"#, t));
    let want = labels(&[("__name__", "http_requests_total"), ("instance", "a:1"), ("job", "api")]);
    assert_eq!(got, vec![(want, 18.0)]);

    // The gauge written once is visible for 5 minutes after, then gone (lookback).
    assert_eq!(vector(&basin.query("temperature", (T0 + 299) as f64)).len(), 1);
    assert!(vector(&basin.query("temperature", (T0 + 301) as f64)).is_empty());

    // All four matcher types.
    let n = |q: &str| vector(&basin.query(q, t)).len();
    assert_eq!(n(r#"http_requests_total{job="api"}"#), 2);
    assert_eq!(n(r#"http_requests_total{job!="api"}"#), 1);
    assert_eq!(n(r#"http_requests_total{instance=~"(a|c):1"}"#), 2);
    assert_eq!(n(r#"http_requests_total{instance!~"a.*"}"#), 2);

    // rate over a 1m window at T0+300 sees the samples at +255,+270,+285,+300 (left-open):
    // increase 3*per_step over 45 s. The first sample is 15 s from the window start, under
    // 1.1 x the average spacing (16.5 s), so Prometheus extrapolates all the way to the start;
    // the last sample sits on the end: rate = 3*per_step * (45+15)/45 / 60 = per_step / 15.
    let at = (T0 + 300) as f64;
    let expect = |per_step: f64| 3.0 * per_step * (60.0 / 45.0) / 60.0;
    let got = vector(&basin.query("sum by (job) (rate(http_requests_total[1m]))", at));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, labels(&[("job", "api")]));
    assert_close(got[0].1, expect(3.0) + expect(6.0), "rate sum api");
    assert_eq!(got[1].0, labels(&[("job", "db")]));
    assert_close(got[1].1, expect(1.5), "rate sum db");

    // Aggregations and arithmetic with scalars, by value at T0+90 (step 6).
    let v = |q: &str| vector(&basin.query(q, t))[0].1;
    assert_close(v("sum(http_requests_total)"), 6.0 * (3.0 + 6.0 + 1.5), "sum");
    assert_close(v("avg(http_requests_total)"), 6.0 * 10.5 / 3.0, "avg");
    assert_close(v("max(http_requests_total)"), 36.0, "max");
    assert_close(v("min(http_requests_total)"), 9.0, "min");
    assert_close(v("count(http_requests_total)"), 3.0, "count");
    assert_close(
        v(r#"sum without (instance) (http_requests_total{job="db"}) * 2 + 1"#),
        19.0,
        "arith",
    );
    assert_close(v(r#"http_requests_total{instance="b:1"} offset 30s"#), 24.0, "offset");

    // Range query: step 60 s from T0 to T0+240, values at each step.
    let got = matrix(&basin.query_range(
        r#"http_requests_total{instance="a:1"}"#,
        T0 as f64,
        (T0 + 240) as f64,
        60.0,
    ));
    assert_eq!(got.len(), 1);
    let points: Vec<(f64, f64)> =
        (0..=4).map(|i| ((T0 + i * 60) as f64, i as f64 * 12.0)).collect();
    assert_eq!(got[0].1, points);
}

#[test]
fn bad_input_is_rejected_with_400_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let basin = Basin::standalone(dir.path(), &[]);
    let good = || series(&[("__name__", "good_metric")], &[(T0 * 1000, 1.0)]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad snappy", b"definitely not snappy".to_vec(), "snappy"),
        (
            "bad protobuf",
            snap::raw::Encoder::new().compress_vec(&[0x0a, 0xff, 0xff, 0xff, 0x0f]).unwrap(),
            "protobuf",
        ),
        (
            "empty label name",
            body(vec![good(), series(&[("__name__", "m"), ("", "x")], &[(T0 * 1000, 1.0)])]),
            "empty label name",
        ),
        (
            "duplicate label",
            body(vec![good(), series(&[("__name__", "m"), ("a", "1"), ("a", "2")], &[(1, 1.0)])]),
            "duplicate label name",
        ),
        (
            "invalid metric name",
            body(vec![good(), series(&[("__name__", "0bad")], &[(T0 * 1000, 1.0)])]),
            "invalid metric name",
        ),
    ];
    for (what, b, reason) in cases {
        let (code, text) = post(&basin.url, b, None);
        assert_eq!(code, 400, "{what}: {text}");
        assert!(text.contains(reason), "{what}: message {text:?} should mention {reason:?}");
    }
    let ans = get_json(&basin.url, "/api/v1/series", &[("match[]", "{__name__=~\".+\"}")]);
    assert_eq!(ans["status"], "success");
    assert_eq!(ans["data"].as_array().unwrap().len(), 0, "nothing may be stored: {ans}");

    // Unsorted labels are fine: they are sorted.
    write(
        &basin.url,
        vec![series(&[("z", "1"), ("__name__", "m"), ("a", "2")], &[(T0 * 1000, 1.0)])],
    );
    let got = vector(&basin.query("m", T0 as f64));
    assert_eq!(got[0].0, labels(&[("__name__", "m"), ("a", "2"), ("z", "1")]));
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut basin = Basin::standalone(dir.path(), &[]);
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    for batch in 0..20i64 {
        let samples: Vec<(i64, f64)> =
            (0..50).map(|i| ((T0 + batch * 50 + i) * 1000, (batch * 50 + i) as f64)).collect();
        write(&basin.url, vec![series(&[("__name__", "durable"), ("k", "v")], &samples)]);
    }
    write(
        &basin.url,
        vec![series(&[("__name__", "durable"), ("k", "v")], &[((T0 + 1000) * 1000, stale)])],
    );
    basin.kill9();
    basin.restart();
    let got = matrix(&get_json(
        &basin.url,
        "/api/v1/query",
        &[("query", "durable[1001s]"), ("time", &(T0 + 1000).to_string())],
    ));
    // Range vectors drop the stale marker: the 1000 values written before it remain.
    assert_eq!(got.len(), 1);
    let values: Vec<f64> = got[0].1.iter().map(|p| p.1).collect();
    assert_eq!(values, (0..1000).map(|i| i as f64).collect::<Vec<_>>());
    // The marker itself ends the series for instant selectors.
    assert!(vector(&basin.query("durable", (T0 + 1001) as f64)).is_empty());
    assert_eq!(vector(&basin.query("durable", (T0 + 999) as f64))[0].1, 999.0);
}

#[test]
fn label_apis_series_and_buildinfo() {
    let dir = tempfile::tempdir().unwrap();
    let basin = Basin::standalone(dir.path(), &[]);
    write(
        &basin.url,
        vec![
            series(&[("__name__", "up"), ("job", "node"), ("instance", "a")], &[(T0 * 1000, 1.0)]),
            series(&[("__name__", "up"), ("job", "api"), ("instance", "b")], &[(T0 * 1000, 0.0)]),
            series(&[("__name__", "load1"), ("host", "h1")], &[(T0 * 1000, 0.5)]),
        ],
    );
    let range = [("start", (T0 - 60).to_string()), ("end", (T0 + 60).to_string())];
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> =
            range.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        p
    };
    let q = |path: &str, extra: &[(&str, &str)]| {
        let p = with(extra);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        get_json(&basin.url, path, &p)
    };
    let names = q("/api/v1/labels", &[]);
    assert_eq!(names["data"], serde_json::json!(["__name__", "host", "instance", "job"]));
    let names = q("/api/v1/labels", &[("match[]", "up")]);
    assert_eq!(names["data"], serde_json::json!(["__name__", "instance", "job"]));
    let values = q("/api/v1/label/job/values", &[]);
    assert_eq!(values["data"], serde_json::json!(["api", "node"]));
    let values = q("/api/v1/label/__name__/values", &[]);
    assert_eq!(values["data"], serde_json::json!(["load1", "up"]));
    let s = q("/api/v1/series", &[("match[]", "up{job=\"api\"}")]);
    assert_eq!(s["data"], serde_json::json!([{"__name__": "up", "instance": "b", "job": "api"}]));
    let s = q("/api/v1/series", &[]);
    assert_eq!(s["status"], "error");
    assert_eq!(s["errorType"], "bad_data");

    // Form-encoded POST works like GET.
    let ans: serde_json::Value = common::http()
        .post(format!("{}/api/v1/query", basin.url))
        .form(&[("query", "sum(up)"), ("time", &T0.to_string())])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(vector(&ans)[0].1, 1.0);

    let bi = get_json(&basin.url, "/api/v1/status/buildinfo", &[]);
    assert_eq!(bi["status"], "success");
    assert_eq!(bi["data"]["version"], env!("CARGO_PKG_VERSION"));

    // A bad query is a 400 bad_data with the parser's message.
    let resp = common::http()
        .get(format!("{}/api/v1/query", basin.url))
        .query(&[("query", "sum(")])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["errorType"], "bad_data");
}

#[test]
fn metrics_health_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut basin = Basin::standalone(dir.path(), &[]);
    let samples: Vec<(i64, f64)> = (0..7).map(|i| ((T0 + i) * 1000, i as f64)).collect();
    write(&basin.url, vec![series(&[("__name__", "m1")], &samples)]);
    let _ = basin.query("m1", T0 as f64);
    let health = common::http().get(format!("{}/health", basin.url)).send().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let metrics = basin.metrics();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("basin_ingest_samples_ingested_total"))
        .unwrap_or_else(|| panic!("no samples metric in:\n{metrics}"));
    assert!(line.ends_with(" 7"), "{line}");
    assert!(metrics.contains("basin_http_requests_total{role=\"standalone\",handler=\"/api/v1/write\",code=\"204\"} 1"), "{metrics}");
    assert!(basin.terminate(), "SIGTERM must shut down cleanly with exit code 0");
    // Data written before the shutdown is there after a restart.
    basin.restart();
    assert_eq!(vector(&basin.query("m1", (T0 + 6) as f64))[0].1, 6.0);
}

#[test]
fn rules_and_alerts_are_proxied_to_the_alerter() {
    // Without --alerter-url: Prometheus' answer when no rules are loaded.
    let dir = tempfile::tempdir().unwrap();
    let plain = Basin::standalone(dir.path(), &[]);
    let ans = get_json(&plain.url, "/api/v1/rules", &[]);
    assert_eq!(ans, serde_json::json!({"status": "success", "data": {"groups": []}}));
    let ans = get_json(&plain.url, "/api/v1/alerts", &[]);
    assert_eq!(ans, serde_json::json!({"status": "success", "data": {"alerts": []}}));

    // With it: the alerter's own answers, query string included.
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/alerter/recording.rules.yml");
    let alerter = Basin::start(&[
        "alerter",
        "--rule-files",
        rules,
        "--query-url",
        &plain.url,
        "--evaluation-interval",
        "1s",
    ]);
    let dir2 = tempfile::tempdir().unwrap();
    let mut proxied = Basin::standalone(dir2.path(), &["--alerter-url", &alerter.url]);
    let direct = get_json(&alerter.url, "/api/v1/rules", &[("type", "record")]);
    let via = get_json(&proxied.url, "/api/v1/rules", &[("type", "record")]);
    assert_eq!(via["status"], "success");
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["data"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g["name"].as_str().expect("name").to_string())
            .collect()
    };
    assert!(!names(&direct).is_empty(), "{direct}");
    assert_eq!(names(&via), names(&direct));
    assert_eq!(get_json(&proxied.url, "/api/v1/alerts", &[])["status"], "success");
    drop(alerter);
    let resp = common::http().get(format!("{}/api/v1/rules", proxied.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["errorType"], "unavailable");
    proxied.kill9();
}

#[test]
fn query_max_series_limit_is_a_422_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let basin = Basin::standalone(dir.path(), &["--query.max-series", "2"]);
    let three: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|i| series(&[("__name__", "limited"), ("i", i)], &[(T0 * 1000, 1.0)]))
        .collect();
    write(&basin.url, three);
    let ok = basin.query(r#"limited{i=~"a|b"}"#, T0 as f64);
    assert_eq!(vector(&ok).len(), 2);
    let resp = common::http()
        .get(format!("{}/api/v1/query", basin.url))
        .query(&[("query", "limited"), ("time", &T0.to_string())])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["errorType"], "execution");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("max_series"), "the error should name the limit: {msg}");
}

/// `POST` form-encoded `params` to `base + path`: status code and body.
fn post_form(base: &str, path: &str, params: &[(&str, &str)]) -> (u16, String) {
    let resp = common::http()
        .post(format!("{base}{path}"))
        .form(params)
        .send()
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let code = resp.status().as_u16();
    (code, resp.text().unwrap_or_default())
}

fn stat_list(status: &serde_json::Value, key: &str) -> Vec<(String, u64)> {
    status["data"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .iter()
        .map(|e| {
            (e["name"].as_str().expect("name").to_string(), e["value"].as_u64().expect("value"))
        })
        .collect()
}

#[test]
fn tsdb_status_and_delete_series_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let basin = Basin::standalone(dir.path(), &[]);
    write(&basin.url, three_counters_and_a_gauge());

    // Prometheus' shape, with the numbers of the four series written above.
    let s = get_json(&basin.url, "/api/v1/status/tsdb", &[]);
    assert_eq!(s["status"], "success", "{s}");
    let head = &s["data"]["headStats"];
    assert_eq!(head["numSeries"], 4, "{s}");
    // __name__ x2, job x2, instance x3, room x1.
    assert_eq!(head["numLabelPairs"], 8, "{s}");
    assert_eq!(head["chunkCount"], 0);
    let (min, max) = (head["minTime"].as_i64().unwrap(), head["maxTime"].as_i64().unwrap());
    assert!(min <= T0 * 1000 && (T0 + 600) * 1000 <= max, "{s}");
    let owned = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    };
    assert_eq!(
        stat_list(&s, "seriesCountByMetricName"),
        owned(&[("http_requests_total", 3), ("temperature", 1)])
    );
    assert_eq!(
        stat_list(&s, "labelValueCountByLabelName"),
        owned(&[("instance", 3), ("__name__", 2), ("job", 2), ("room", 1)])
    );
    // len(value) x series: 3 x 19 + 11; 3 x 3; 2 x 3 + 2; 7.
    assert_eq!(
        stat_list(&s, "memoryInBytesByLabelName"),
        owned(&[("__name__", 68), ("instance", 9), ("job", 8), ("room", 7)])
    );
    let pairs = stat_list(&s, "seriesCountByLabelValuePair");
    assert_eq!(pairs.len(), 8);
    assert_eq!(pairs[..2], owned(&[("__name__=http_requests_total", 3), ("job=api", 2)]));
    // limit (and VictoriaMetrics' topN), form POST, date.
    let (code, text) = post_form(&basin.url, "/api/v1/status/tsdb", &[("limit", "1")]);
    assert_eq!(code, 200, "{text}");
    let one: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stat_list(&one, "labelValueCountByLabelName"), owned(&[("instance", 3)]));
    let top2 = get_json(&basin.url, "/api/v1/status/tsdb", &[("topN", "2")]);
    assert_eq!(stat_list(&top2, "seriesCountByLabelValuePair").len(), 2);
    let day = get_json(&basin.url, "/api/v1/status/tsdb", &[("date", "2023-11-14")]);
    assert_eq!(day["data"]["headStats"]["numSeries"], 4, "{day}");
    let before = get_json(&basin.url, "/api/v1/status/tsdb", &[("date", "2023-11-13")]);
    assert_eq!(before["data"]["headStats"]["numSeries"], 0, "{before}");
    let bad = get_json(&basin.url, "/api/v1/status/tsdb", &[("limit", "0")]);
    assert_eq!(bad["errorType"], "bad_data", "{bad}");

    // Delete a range of one series: 204, and the query shows the gap.
    let count_in = |instance: &str| {
        let q = format!(r#"count_over_time(http_requests_total{{instance="{instance}"}}[10m])"#);
        vector(&basin.query(&q, (T0 + 600) as f64)).first().map_or(0.0, |x| x.1)
    };
    assert_eq!(count_in("a:1"), 40.0); // (T0, T0+600]: samples 1..=40
    let (start, end) = ((T0 + 100).to_string(), (T0 + 300).to_string());
    let (code, text) = post_form(
        &basin.url,
        "/api/v1/admin/tsdb/delete_series",
        &[("match[]", r#"http_requests_total{instance="a:1"}"#), ("start", &start), ("end", &end)],
    );
    assert_eq!((code, text.as_str()), (204, ""));
    // Samples every 15 s from T0: those at T0+105 ..= T0+300 (14) are gone.
    let kept = (1..=40).filter(|i| !(100..=300).contains(&(i * 15))).count() as f64;
    assert_eq!(kept, 26.0);
    assert_eq!(count_in("a:1"), kept);
    assert_eq!(count_in("b:1"), 40.0);
    let gap = basin.query(r#"http_requests_total{instance="a:1"}[190s]"#, (T0 + 300) as f64);
    assert_eq!(gap["data"]["result"], serde_json::json!([]), "{gap}");
    let after = vector(&basin.query(r#"http_requests_total{instance="a:1"}"#, (T0 + 315) as f64));
    assert_eq!(after[0].1, 21.0 * 3.0);

    // Delete a whole series (no range): gone from the label APIs and the status.
    let resp = common::http()
        .put(format!("{}/api/v1/admin/tsdb/delete_series", basin.url))
        .query(&[("match[]", "temperature")])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let names = get_json(&basin.url, "/api/v1/label/__name__/values", &[]);
    assert_eq!(names["data"], serde_json::json!(["http_requests_total"]), "{names}");
    let labels_now = get_json(&basin.url, "/api/v1/labels", &[]);
    assert_eq!(labels_now["data"], serde_json::json!(["__name__", "instance", "job"]));
    let s = get_json(&basin.url, "/api/v1/status/tsdb", &[]);
    assert_eq!(s["data"]["headStats"]["numSeries"], 3, "{s}");
    assert!(vector(&basin.query("temperature", T0 as f64)).is_empty());

    // Bad deletes are 400 bad_data and delete nothing.
    for params in [vec![], vec![("match[]", r#"{job=~".*"}"#)], vec![("match[]", "x{")]] {
        let (code, text) = post_form(&basin.url, "/api/v1/admin/tsdb/delete_series", &params);
        assert_eq!(code, 400, "{params:?}: {text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["errorType"], "bad_data");
    }
    let (code, _) = post_form(
        &basin.url,
        "/api/v1/admin/tsdb/delete_series",
        &[("match[]", "http_requests_total"), ("start", "200"), ("end", "100")],
    );
    assert_eq!(code, 400);
    assert_eq!(count_in("b:1"), 40.0);
    let (code, text) = post_form(&basin.url, "/api/v1/admin/tsdb/clean_tombstones", &[]);
    assert_eq!((code, text.as_str()), (204, ""));
}

/// One line of `/api/v1/export`: labels, and the values parsed from their own text (so the
/// comparison is bit-exact), with timestamps.
type ExportLine = (Vec<(String, String)>, Vec<u64>, Vec<i64>);

fn export_lines(text: &str) -> Vec<ExportLine> {
    text.lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let labels = v["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let raw = line.split(r#""values":["#).nth(1).and_then(|r| r.split(']').next()).unwrap();
            let values = raw.split(',').map(|x| x.parse::<f64>().unwrap().to_bits()).collect();
            let timestamps =
                v["timestamps"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
            (labels, values, timestamps)
        })
        .collect()
}

#[test]
fn export_returns_raw_samples_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let basin = Basin::standalone(dir.path(), &[]);
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let odd = [0.1 + 0.2, 1e-300, 5e-324, 123_456_789.123_456_79, -2.5e21, 1.0 / 3.0, 42.0];
    let a_x: Vec<(i64, f64)> =
        odd.iter().enumerate().map(|(i, &v)| ((T0 + i as i64 * 15) * 1000, v)).collect();
    let a_y = vec![(T0 * 1000, 1.0), ((T0 + 15) * 1000, stale), ((T0 + 30) * 1000, 3.0)];
    let b = vec![(T0 * 1000 + 1, 7.0)];
    write(
        &basin.url,
        vec![
            series(&[("__name__", "exp_a"), ("job", "x")], &a_x),
            series(&[("__name__", "exp_a"), ("job", "y")], &a_y),
            series(&[("__name__", "exp_b"), ("k", "v")], &b),
            series(&[("__name__", "exp_stale_only")], &[(T0 * 1000, stale)]),
        ],
    );
    let export = |params: &[(&str, &str)]| {
        let resp = common::http()
            .get(format!("{}/api/v1/export", basin.url))
            .query(params)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.text().unwrap()
    };
    let owned = |pairs: &[(&str, &str)]| labels(pairs);
    let bits = |samples: &[(i64, f64)]| -> (Vec<u64>, Vec<i64>) {
        samples
            .iter()
            .filter(|s| s.1.to_bits() != stale.to_bits())
            .map(|s| (s.1.to_bits(), s.0))
            .unzip()
    };
    let line = |l: &[(&str, &str)], samples: &[(i64, f64)]| {
        let (values, timestamps) = bits(samples);
        (owned(l), values, timestamps)
    };

    // Several selectors, one overlapping another: each series once, sorted by labels; the
    // stale marker is left out; a series of only a stale marker is no line at all.
    let text = export(&[
        ("match[]", "exp_a"),
        ("match[]", r#"exp_a{job="x"}"#),
        ("match[]", "{__name__=~\"exp_b|exp_stale_only\"}"),
    ]);
    let want = vec![
        line(&[("__name__", "exp_a"), ("job", "x")], &a_x),
        line(&[("__name__", "exp_a"), ("job", "y")], &a_y),
        line(&[("__name__", "exp_b"), ("k", "v")], &b),
    ];
    assert_eq!(export_lines(&text), want, "{text}");
    assert!(text.ends_with('\n'));

    // start/end bound the samples (inclusive), as in the other endpoints.
    let (start, end) = ((T0 + 15).to_string(), (T0 + 30).to_string());
    let text = export(&[("match[]", r#"exp_a{job="x"}"#), ("start", &start), ("end", &end)]);
    assert_eq!(export_lines(&text), vec![line(&[("__name__", "exp_a"), ("job", "x")], &a_x[1..3])]);

    // Form POST works like GET.
    let (code, text) = post_form(&basin.url, "/api/v1/export", &[("match[]", "exp_b")]);
    assert_eq!(code, 200);
    assert_eq!(export_lines(&text), vec![line(&[("__name__", "exp_b"), ("k", "v")], &b)]);

    // Bad requests are 400 bad_data, like the other endpoints.
    for params in [vec![], vec![("match[]", "x{")], vec![("match[]", "exp_a"), ("start", "abc")]] {
        let (code, text) = post_form(&basin.url, "/api/v1/export", &params);
        assert_eq!(code, 400, "{params:?}: {text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["errorType"], "bad_data", "{text}");
    }
}
