//! End-to-end tests of a cluster of separate processes talking gRPC on loopback:
//! 2 storage nodes + 1 ingest gateway + 1 query node.

mod common;

use common::remote::{series, write};
use common::{Cluster, assert_close, labels, matrix, vector};

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
