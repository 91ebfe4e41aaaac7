//! A real Prometheus (Debian's `prometheus`) scrapes itself and remote_writes into Basin,
//! standalone and a 1 gateway + 2 storage + 1 query cluster at once; Basin's answers must equal
//! Prometheus' own answers over the same samples.

mod common;

use common::{Basin, Cluster, Prometheus, assert_close, get_json, matrix, vector, wait_until};
use std::time::Duration;

const CONFIG: &str = r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{{PORT}}"]
remote_write:
  - url: STANDALONE/api/v1/write
    queue_config: { batch_send_deadline: 500ms, min_backoff: 50ms, max_backoff: 1s }
  - url: GATEWAY/api/v1/write
    queue_config: { batch_send_deadline: 500ms, min_backoff: 50ms, max_backoff: 1s }
"#;

const QUERY: &str = "sum by (job) (rate(prometheus_http_requests_total[1m]))";

#[test]
fn prometheus_remote_write_lands_and_rate_matches_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let standalone = Basin::standalone(dir.path(), &[]);
    let cluster = Cluster::start(2, 1);
    let config =
        CONFIG.replace("STANDALONE", &standalone.url).replace("GATEWAY", &cluster.gateway.url);
    let prom = Prometheus::start(&config, &[]).expect("start prometheus");

    // Let 70 scrapes happen, so that every series was born before the 1m window evaluated
    // below: for a counter born inside the window, Prometheus 2.42 extrapolates towards zero
    // before applying the extrapolation threshold, Prometheus 3 (and Basin) after it.
    wait_until("70 s of scrapes in Prometheus", Duration::from_secs(150), || {
        let ans = get_json(&prom.url, "/api/v1/query", &[("query", "count_over_time(up[2m])")]);
        let n = ans["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok()?;
        (n >= 70.0).then_some(())
    });

    // Evaluate 3 s before the latest scrape, half a second off the scrape phase, so that no
    // sample sits on a window edge (Prometheus 2.42 closes windows on the left, Basin does not).
    let ans = get_json(&prom.url, "/api/v1/query", &[("query", "timestamp(up)")]);
    let last: f64 = ans["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap();
    let t = last - 3.0 + 0.5;
    let t_s = format!("{t:.3}");
    let at_t =
        |base: &str, q: &str| get_json(base, "/api/v1/query", &[("query", q), ("time", &t_s)]);

    // Every sample of the scrape job in the window, over all series: remote_write shards send
    // series independently, so one series being complete says nothing about the others.
    const RAW: &str = r#"{job="prometheus"}[1m]"#;
    let points =
        |answer: &serde_json::Value| -> usize { matrix(answer).iter().map(|(_, p)| p.len()).sum() };
    let want_points = points(&at_t(&prom.url, RAW));
    let want = vector(&at_t(&prom.url, QUERY));
    assert_eq!(want.len(), 1, "{want:?}");
    assert!(want[0].1 > 0.5, "Prometheus' own rate looks wrong: {want:?}");

    for (name, url) in [("standalone", &standalone.url), ("cluster", &cluster.query.url)] {
        // Wait until remote_write has delivered every sample up to t.
        wait_until(&format!("{name} to hold the samples up to t"), Duration::from_secs(60), || {
            (points(&at_t(url, RAW)) == want_points).then_some(())
        });
        // Series by series first, so a difference names its series.
        let per_series = "rate(prometheus_http_requests_total[1m])";
        let want_each = vector(&at_t(&prom.url, per_series));
        let got_each = vector(&at_t(url, per_series));
        let mismatches: Vec<String> = want_each
            .iter()
            .zip(&got_each)
            .filter(|(w, g)| w.0 != g.0 || (w.1 - g.1).abs() > 1e-9 * w.1.abs().max(1.0))
            .map(|(w, g)| format!("want {w:?} got {g:?}"))
            .collect();
        assert!(
            mismatches.is_empty() && want_each.len() == got_each.len(),
            "{name}: {per_series} differs ({} vs {} series):\n{}",
            got_each.len(),
            want_each.len(),
            mismatches.join("\n")
        );
        let got = vector(&at_t(url, QUERY));
        assert_eq!(got.len(), want.len(), "{name}: {got:?} vs {want:?}");
        assert_eq!(got[0].0, want[0].0, "{name}: labels");
        assert_close(got[0].1, want[0].1, &format!("{name}: {QUERY}"));
    }

    // The figures /metrics shows after the run (quoted in the closing note).
    let metrics = standalone.metrics();
    for line in metrics.lines().filter(|l| {
        l.starts_with("basin_ingest_samples_ingested_total")
            || l.starts_with("basin_ingest_series_ingested_total")
            || l.starts_with("basin_http_requests_total")
            || l.starts_with("basin_storage_")
    }) {
        eprintln!("standalone /metrics: {line}");
    }
}
