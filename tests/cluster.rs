//! End-to-end tests of a cluster of separate processes talking gRPC on loopback:
//! 2 storage nodes + 1 ingest gateway + 1 query node.

mod common;

use common::remote::{series, write};
use common::{Cluster, assert_close, get_json, labels, matrix, vector};

const T0: i64 = 1_700_000_000;

#[test]
fn cluster_round_trip_spreads_series_and_survives_storage_kill_9() {
    let mut c = Cluster::start(2, 1);
    // 200 series, 20 samples each, 10 s apart; value = series index * 1000 + sample index.
    let all: Vec<_> = (0..200i64)
        .map(|s| {
            let samples: Vec<(i64, f64)> =
                (0..20).map(|i| ((T0 + i * 10) * 1000, (s * 1000 + i) as f64)).collect();
            let id = s.to_string();
            let shard = (s % 4).to_string();
            series(&[("__name__", "work_items"), ("id", &id), ("shard", &shard)], &samples)
        })
        .collect();
    for chunk in all.chunks(50) {
        write(&c.gateway.url, chunk.to_vec());
    }

    // Every series lives on exactly one node, and both nodes got a fair share.
    let per_node = c.series_per_node();
    assert_eq!(per_node.iter().sum::<usize>(), 200, "{per_node:?}");
    assert!(per_node.iter().all(|&n| n >= 60), "uneven spread {per_node:?}");

    // The query node merges both nodes: exact values, computed here from the generator.
    let t = (T0 + 190) as f64;
    let got = vector(&c.query.query("sum by (shard) (work_items)", t));
    assert_eq!(got.len(), 4);
    for (shard, (l, v)) in got.iter().enumerate() {
        assert_eq!(*l, labels(&[("shard", &shard.to_string())]));
        let want: i64 = (0..200).filter(|s| s % 4 == shard as i64).map(|s| s * 1000 + 19).sum();
        assert_close(*v, want as f64, "sum by shard");
    }
    let one =
        matrix(&c.query.query_range(r#"work_items{id="7"}"#, T0 as f64, (T0 + 190) as f64, 30.0));
    let want: Vec<(f64, f64)> =
        (0..7).map(|k| ((T0 + k * 30) as f64, (7000 + k * 3) as f64)).collect();
    assert_eq!(one[0].1, want);
    assert_close(vector(&c.query.query("count(work_items)", t))[0].1, 200.0, "count");

    // kill -9 a storage node and restart it: everything acknowledged is still there.
    c.storage[0].kill9();
    c.storage[1].kill9();
    c.storage[0].restart();
    c.storage[1].restart();
    assert_close(vector(&c.query.query("count(work_items)", t))[0].1, 200.0, "count after restart");
    let total: f64 = vector(&c.query.query("sum(work_items)", t))[0].1;
    assert_close(total, (0..200).map(|s| (s * 1000 + 19) as f64).sum(), "sum after restart");
}

#[test]
fn replicated_writes_land_on_rf_nodes_and_answers_stay_complete_with_one_node_down() {
    let mut c = Cluster::start(2, 2);
    let all: Vec<_> = (0..50i64)
        .map(|s| {
            let id = s.to_string();
            series(&[("__name__", "replicated"), ("id", &id)], &[(T0 * 1000, s as f64)])
        })
        .collect();
    write(&c.gateway.url, all);
    assert_eq!(c.series_per_node(), vec![50, 50]);
    // Replicas are merged, not double counted.
    assert_close(vector(&c.query.query("count(replicated)", T0 as f64))[0].1, 50.0, "count");
    assert_close(vector(&c.query.query("sum(replicated)", T0 as f64))[0].1, 1225.0, "sum");
    c.storage[1].kill9();
    let ans = c.query.query("sum(replicated)", T0 as f64);
    assert_close(vector(&ans)[0].1, 1225.0, "sum with a node down");
    // A write that cannot reach both replicas is not acknowledged, and says retry.
    let (code, _) = common::remote::post(
        &c.gateway.url,
        common::remote::body(vec![series(&[("__name__", "x")], &[(T0 * 1000, 1.0)])]),
        None,
    );
    assert_eq!(code, 503);
}

#[test]
fn tsdb_status_counts_replicas_once_and_delete_reaches_every_replica() {
    let mut c = Cluster::start(3, 2);
    // rep: 60 series, shard = id % 3; other: 10 series with shard "x".
    let mut all: Vec<_> = (0..60i64)
        .map(|s| {
            let (id, shard) = (s.to_string(), (s % 3).to_string());
            series(&[("__name__", "rep"), ("id", &id), ("shard", &shard)], &[(T0 * 1000, 1.0)])
        })
        .collect();
    all.extend((100..110i64).map(|s| {
        let id = s.to_string();
        series(&[("__name__", "other"), ("id", &id), ("shard", "x")], &[(T0 * 1000, 2.0)])
    }));
    write(&c.gateway.url, all);
    let per_node = c.series_per_node();
    assert_eq!(per_node.iter().sum::<usize>(), 140, "every series on 2 of 3 nodes: {per_node:?}");

    let list = |s: &serde_json::Value, key: &str| -> Vec<(String, u64)> {
        s["data"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} in {s}"))
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_u64().unwrap()))
            .collect()
    };
    let owned = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    };
    let s = get_json(&c.query.url, "/api/v1/status/tsdb", &[("limit", "6")]);
    assert_eq!(s["status"], "success", "{s}");
    assert!(s.get("warnings").is_none(), "{s}");
    let head = &s["data"]["headStats"];
    assert_eq!(head["numSeries"], 70, "not multiplied by RF: {s}");
    // Distinct pairs: 2 metric names + 70 ids + 4 shards.
    assert_eq!(head["numLabelPairs"], 76, "{s}");
    assert_eq!(list(&s, "seriesCountByMetricName"), owned(&[("rep", 60), ("other", 10)]));
    assert_eq!(
        list(&s, "labelValueCountByLabelName"),
        owned(&[("id", 70), ("shard", 4), ("__name__", 2)])
    );
    // len(value) x series: 60 x 3 + 10 x 5; 10 x 1 + 50 x 2 + 10 x 3; 70 x 1.
    assert_eq!(
        list(&s, "memoryInBytesByLabelName"),
        owned(&[("__name__", 230), ("id", 140), ("shard", 70)])
    );
    assert_eq!(
        list(&s, "seriesCountByLabelValuePair"),
        owned(&[
            ("__name__=rep", 60),
            ("shard=0", 20),
            ("shard=1", 20),
            ("shard=2", 20),
            ("__name__=other", 10),
            ("shard=x", 10),
        ])
    );

    // A delete reaches both replicas of every matching series.
    let resp = common::http()
        .post(format!("{}/api/v1/admin/tsdb/delete_series", c.query.url))
        .form(&[("match[]", r#"rep{shard="1"}"#)])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(c.series_per_node().iter().sum::<usize>(), 100, "20 series x 2 replicas gone");
    assert_close(vector(&c.query.query("count(rep)", T0 as f64))[0].1, 40.0, "count after delete");
    let s = get_json(&c.query.url, "/api/v1/status/tsdb", &[]);
    assert_eq!(s["data"]["headStats"]["numSeries"], 50, "{s}");

    // With a node down: a delete is an error (not a silent partial delete); the status
    // answers, says its counts are estimates, and never counts more than there is.
    c.storage[2].kill9();
    let resp = common::http()
        .post(format!("{}/api/v1/admin/tsdb/delete_series", c.query.url))
        .form(&[("match[]", "other")])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["errorType"], "unavailable", "{body}");
    let s = get_json(&c.query.url, "/api/v1/status/tsdb", &[]);
    assert_eq!(s["status"], "success", "{s}");
    assert!(s["warnings"].as_array().is_some_and(|w| !w.is_empty()), "{s}");
    let n = s["data"]["headStats"]["numSeries"].as_u64().unwrap();
    assert!((25..=50).contains(&n), "{s}");
}
