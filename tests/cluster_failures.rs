//! Cluster correctness under failure, with real processes on loopback: storage nodes killed
//! (SIGKILL) or frozen (SIGSTOP) under a steady remote_write load, tenant isolation on every
//! read API, an HA pair of real Prometheus servers deduplicated into one, and the gRPC client
//! API. Every acknowledged sample must be read back exactly once.

mod common;

use common::remote::{body, post, series};
use common::{Basin, FailureCluster, Prometheus, WriteLoad, now_ms, read_samples, wait_until};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Flags of gateways and query nodes: short timeouts, so failures are noticed quickly.
const FAST: &[&str] = &["--storage-timeout", "2s", "--storage-probe-interval", "300ms"];

/// Checks that every acknowledged `(series, timestamp)` is read back exactly once; returns the
/// number of samples read.
fn assert_acked_read_once(acked: &[(u32, i64)], read: &[(u32, i64)]) -> usize {
    let mut counts: BTreeMap<(u32, i64), usize> = BTreeMap::new();
    for &k in read {
        *counts.entry(k).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|&(_, &n)| n > 1).take(5).collect();
    assert!(dups.is_empty(), "samples read more than once: {dups:?}");
    let missing: Vec<_> = acked.iter().filter(|k| !counts.contains_key(k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged samples lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    read.len()
}

fn urls(c: &FailureCluster) -> Vec<String> {
    c.gateways.iter().map(|g| g.url.clone()).collect()
}

#[test]
fn storage_node_sigkill_mid_load_loses_no_acknowledged_sample() {
    let mut c = FailureCluster::start(3, 2, 2, FAST);
    let t0 = now_ms();
    let load = WriteLoad::start(urls(&c), "kill_load", 20, t0);
    std::thread::sleep(Duration::from_secs(2));

    c.storage[1].kill9();
    let down_at = Instant::now();
    // Both gateways notice and route around it.
    for g in &c.gateways {
        wait_until("gateway marks the node down", Duration::from_secs(10), || {
            (FailureCluster::health(g)[1] == "down").then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(3));
    c.storage[1].restart();
    let outage = down_at.elapsed();
    for g in &c.gateways {
        wait_until("gateway sees the node up again", Duration::from_secs(10), || {
            (FailureCluster::health(g)[1] == "up").then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    let report = load.finish();

    let (read, warnings) = read_samples(&c.query, "kill_load", now_ms(), "10m");
    assert!(warnings.is_empty(), "all nodes are up: {warnings:?}");
    let n = assert_acked_read_once(&report.acked, &read);
    println!(
        "sigkill: {} requests, samples acknowledged {}, samples read back {}, non-2xx {} {:?} \
         (outage {:.1}s), slowest write {:?}",
        report.requests,
        report.acked.len(),
        n,
        report.non_2xx(),
        report.failed,
        outage.as_secs_f64(),
        report.max_latency
    );
    assert!(report.acked.len() > 1000, "too little load: {}", report.acked.len());

    // The gateways' metrics show the rerouting.
    let m = c.gateways[0].metrics();
    assert!(m.contains("basin_ingest_storage_node_up{"), "{m}");
    assert!(m.contains("basin_ingest_hinted_series_total"), "{m}");
}

#[test]
fn storage_node_sigstop_bounds_write_and_query_latency() {
    let c = FailureCluster::start(3, 2, 2, FAST);
    let t0 = now_ms();
    let load = WriteLoad::start(urls(&c), "stop_load", 20, t0);
    std::thread::sleep(Duration::from_secs(2));

    let query_took;
    let query_warnings;
    {
        let _cont = c.storage[2].sigstop();
        std::thread::sleep(Duration::from_secs(1));
        let started = Instant::now();
        let (_, w) = read_samples(&c.query, "stop_load", now_ms(), "10m");
        query_took = started.elapsed();
        query_warnings = w;
        for g in &c.gateways {
            wait_until("gateway marks the frozen node down", Duration::from_secs(10), || {
                (FailureCluster::health(g)[2] == "down").then_some(())
            });
        }
        std::thread::sleep(Duration::from_secs(3));
    } // SIGCONT
    for g in &c.gateways {
        wait_until("gateway sees the node up again", Duration::from_secs(10), || {
            (FailureCluster::health(g)[2] == "up").then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    let report = load.finish();

    // The query answered within the storage timeout (2 s) plus slack, saying a node is
    // missing and that the answer is complete (1 failure < RF 2).
    assert!(query_took < Duration::from_secs(4), "query took {query_took:?}");
    assert!(
        query_warnings.iter().any(|w| w.contains("the answer is complete")),
        "{query_warnings:?}"
    );
    // No write waited much longer than one storage timeout.
    assert!(
        report.max_latency < Duration::from_millis(3500),
        "slowest write {:?}",
        report.max_latency
    );

    let (read, _) = read_samples(&c.query, "stop_load", now_ms(), "10m");
    let n = assert_acked_read_once(&report.acked, &read);
    println!(
        "sigstop: {} requests, samples acknowledged {}, samples read back {}, non-2xx {} {:?}, \
         slowest write {:?}, query during stop {:?} with warnings {:?}",
        report.requests,
        report.acked.len(),
        n,
        report.non_2xx(),
        report.failed,
        report.max_latency,
        query_took,
        query_warnings
    );
    let status = c.query.get_json("/api/v1/status/cluster", &[]);
    assert_eq!(status["data"]["replicationFactor"], 2, "{status}");
    assert_eq!(status["data"]["nodes"].as_array().map(Vec::len), Some(3), "{status}");
}

#[test]
fn tenants_never_see_each_other() {
    let c = FailureCluster::start(2, 1, 1, FAST);
    let gw = &c.gateways[0].url;
    let t = now_ms();
    for (tenant, name, team) in [
        (Some("team-a"), "secret_a", "a"),
        (Some("team-b"), "secret_b", "b"),
        (None, "public", "x"),
    ] {
        let s = series(&[("__name__", name), ("team", team)], &[(t, 1.0)]);
        let (code, text) = post(gw, body(vec![s]), tenant);
        assert_eq!(code, 204, "{text}");
    }
    let client = common::http();
    let get = |tenant: Option<&str>, path: &str, params: &[(&str, &str)]| -> serde_json::Value {
        let mut req = client.get(format!("{}{path}", c.query.url)).query(params);
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        req.send().expect("GET").json().expect("JSON")
    };
    let time = format!("{:.3}", t as f64 / 1000.0);
    for (tenant, own, team) in [
        (Some("team-a"), "secret_a", "a"),
        (Some("team-b"), "secret_b", "b"),
        (None, "public", "x"),
    ] {
        let q = get(tenant, "/api/v1/query", &[("query", r#"{__name__=~".+"}"#), ("time", &time)]);
        let names: Vec<&str> = q["data"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .filter_map(|s| s["metric"]["__name__"].as_str())
            .collect();
        assert_eq!(names, vec![own], "query of {tenant:?}: {q}");
        let s = get(tenant, "/api/v1/series", &[("match[]", r#"{__name__=~".+"}"#)]);
        assert_eq!(s["data"].as_array().map(Vec::len), Some(1), "series of {tenant:?}: {s}");
        assert_eq!(s["data"][0]["__name__"], own, "series of {tenant:?}: {s}");
        let l = get(tenant, "/api/v1/labels", &[]);
        assert_eq!(l["data"], serde_json::json!(["__name__", "team"]), "labels of {tenant:?}");
        let v = get(tenant, "/api/v1/label/__name__/values", &[]);
        assert_eq!(v["data"], serde_json::json!([own]), "names of {tenant:?}");
        let v = get(tenant, "/api/v1/label/team/values", &[]);
        assert_eq!(v["data"], serde_json::json!([team]), "teams of {tenant:?}");
    }
    // A tenant that wrote nothing sees nothing.
    let v = get(Some("nobody"), "/api/v1/label/__name__/values", &[]);
    assert_eq!(v["data"], serde_json::json!([]));
}

/// A scrape target whose counter grows 10 per second of wall time, so both HA replicas see
/// the same rate whenever they scrape.
fn counter_target() -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind target");
    let addr = listener.local_addr().expect("addr").to_string();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let v = now_ms() as f64 / 100.0;
            let text = format!("# TYPE ticks_total counter\nticks_total {v}\n");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (addr, handle)
}

#[test]
fn ha_prometheus_pair_looks_like_one_prometheus() {
    let Ok(_) = Prometheus::binary() else {
        panic!("Prometheus is required: install Debian's `prometheus` package (scripts/test does)");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let basin = Basin::standalone(
        dir.path(),
        &["--ha-replica-label", "prometheus_replica", "--dedup-interval", "1s"],
    );
    let (target, _server) = counter_target();
    let config = |replica: &str| {
        format!(
            r#"
global:
  scrape_interval: 1s
  external_labels:
    cluster: c1
    prometheus_replica: {replica}
scrape_configs:
  - job_name: ticks
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: {}/api/v1/write
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
"#,
            basin.url
        )
    };
    let a = Prometheus::start(&config("a"), &[]).expect("prometheus a");
    let _b = Prometheus::start(&config("b"), &[]).expect("prometheus b");
    // Let both scrape and ship ~26 s of data.
    std::thread::sleep(Duration::from_secs(26));
    let t = (now_ms() - 3_000) as f64 / 1000.0;
    let ask = |url: &str, q: &str| {
        common::vector(&common::get_json(
            url,
            "/api/v1/query",
            &[("query", q), ("time", &t.to_string())],
        ))
    };
    // One `up` series, like one replica, not two.
    let basin_up = ask(&basin.url, "count(up)");
    let a_up = ask(&a.url, "count(up)");
    assert_eq!(basin_up.len(), 1);
    assert_eq!(basin_up[0].1, a_up[0].1, "count(up): basin {basin_up:?}, replica {a_up:?}");
    assert_eq!(basin_up[0].1, 1.0);
    // The replica label is gone, the other external labels stay.
    let series = ask(&basin.url, "ticks_total");
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(series[0].0.contains(&("cluster".into(), "c1".into())), "{series:?}");
    // rate() equals one replica's (within the jitter of which replica's scrape the dedup
    // kept); that the samples are deduplicated is checked by their count below.
    // A 20 s window: which replica's scrape the dedup kept moves a boundary sample by under a
    // second, so the longer the window the closer the two rates.
    let rb = ask(&basin.url, "rate(ticks_total[20s])");
    let ra = ask(&a.url, "rate(ticks_total[20s])");
    assert_eq!(rb.len(), 1, "{rb:?}");
    let (vb, va) = (rb[0].1, ra[0].1);
    println!(
        "HA pair: count(up) basin {} replica {}; rate basin {vb} replica {va}",
        basin_up[0].1, a_up[0].1
    );
    assert!((vb - va).abs() <= 0.1 * va, "rate: basin {vb}, replica {va}");
    // (The target grows 10/s; Prometheus extrapolates less than the full window, so the
    // replica's own answer can be below 10.)
    assert!(va > 5.0 && va < 12.0, "replica's own rate {va}");
    // Deduplicated: as many samples per window as one replica scraped, not twice as many.
    let nb = ask(&basin.url, "count_over_time(ticks_total[8s])")[0].1;
    let na = ask(&a.url, "count_over_time(ticks_total[8s])")[0].1;
    println!("HA pair: samples in 8s: basin {nb}, replica {na}");
    assert!(nb <= na + 1.0 && nb >= na - 2.0, "samples in 8s: basin {nb}, replica {na}");
}

#[test]
fn grpc_client_api_writes_and_reads_with_the_same_semantics() {
    use basin_proto::client::ingest_client::IngestClient;
    use basin_proto::client::query_client::QueryClient;
    use basin_proto::client::{
        Label, LabelValuesRequest, QueryRequest, Sample, SeriesRequest, TimeSeries, WriteRequest,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let grpc = format!("127.0.0.1:{}", common::free_port());
    let basin = Basin::standalone(dir.path(), &["--grpc-listen", &grpc]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let url = format!("http://{grpc}");
        let mut ingest = IngestClient::connect(url.clone()).await.expect("connect ingest");
        let mut query = QueryClient::connect(url).await.expect("connect query");
        let t = now_ms();
        let l = |n: &str, v: &str| Label { name: n.into(), value: v.into() };
        let mut req = tonic::Request::new(WriteRequest {
            series: vec![TimeSeries {
                labels: vec![l("job", "grpc"), l("__name__", "grpc_metric")],
                samples: vec![Sample { timestamp_ms: t, value: 42.0 }],
            }],
        });
        req.metadata_mut().insert("x-scope-orgid", "tenant-g".parse().expect("ascii"));
        let resp = ingest.write(req).await.expect("write").into_inner();
        assert_eq!((resp.samples, resp.series), (1, 1));

        // Invalid input is INVALID_ARGUMENT, and stores nothing.
        let bad = WriteRequest {
            series: vec![TimeSeries {
                labels: vec![l("job", "no name")],
                samples: vec![Sample { timestamp_ms: t, value: 1.0 }],
            }],
        };
        let err = ingest.write(bad).await.expect_err("no metric name");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

        let mut q = tonic::Request::new(QueryRequest {
            query: "grpc_metric * 2".into(),
            time_ms: t,
            timeout_ms: 0,
        });
        q.metadata_mut().insert("x-scope-orgid", "tenant-g".parse().expect("ascii"));
        let ans = query.query(q).await.expect("query").into_inner();
        assert_eq!(ans.series.len(), 1, "{ans:?}");
        assert_eq!(ans.series[0].samples[0].value, 84.0);

        // Another tenant sees nothing.
        let ans = query
            .query(QueryRequest { query: "grpc_metric".into(), time_ms: t, timeout_ms: 0 })
            .await
            .expect("query default tenant")
            .into_inner();
        assert!(ans.series.is_empty(), "{ans:?}");

        let mut s = tonic::Request::new(SeriesRequest {
            r#match: vec!["grpc_metric".into()],
            ..SeriesRequest::default()
        });
        s.metadata_mut().insert("x-scope-orgid", "tenant-g".parse().expect("ascii"));
        let ans = query.series(s).await.expect("series").into_inner();
        assert_eq!(ans.series.len(), 1);
        let mut v = tonic::Request::new(LabelValuesRequest {
            name: "job".into(),
            ..LabelValuesRequest::default()
        });
        v.metadata_mut().insert("x-scope-orgid", "tenant-g".parse().expect("ascii"));
        let ans = query.label_values(v).await.expect("label values").into_inner();
        assert_eq!(ans.values, vec!["grpc".to_string()]);
    });
    // The same sample is visible over HTTP.
    let ans = common::get_json(&basin.url, "/api/v1/status/cluster", &[]);
    assert_eq!(ans["data"]["nodes"][0]["health"], "up", "{ans}");
}

#[test]
fn gateway_over_its_inflight_bound_answers_429_with_retry_after() {
    // One request in flight at most; a frozen storage node keeps the first one busy for the
    // storage timeout, so a concurrent second one must be refused, not queued without bound.
    let c = FailureCluster::start_with(1, 1, 1, FAST, &["--max-inflight-requests", "1"]);
    let gw = c.gateways[0].url.clone();
    let t = now_ms();
    let one =
        |i: i64| body(vec![series(&[("__name__", "bp"), ("i", &i.to_string())], &[(t, 1.0)])]);
    assert_eq!(post(&gw, one(0), None).0, 204);
    let _cont = c.storage[0].sigstop();
    let slow = {
        let (gw, b) = (gw.clone(), one(1));
        std::thread::spawn(move || post(&gw, b, None).0)
    };
    // Once the slow request holds the only slot, the next one is refused at once.
    wait_until("the first request to be in flight", Duration::from_secs(5), || {
        c.gateways[0].metrics().contains("basin_ingest_inflight_requests 1").then_some(())
    });
    let started = Instant::now();
    let resp = common::http()
        .post(format!("{gw}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .body(one(2))
        .send()
        .expect("POST");
    assert!(started.elapsed() < Duration::from_secs(1), "429 must not wait");
    assert_eq!(resp.status().as_u16(), 429);
    let refused = (
        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from),
        resp.text().unwrap_or_default(),
    );
    assert_eq!(refused.0.as_deref(), Some("1"), "{refused:?}");
    assert!(refused.1.contains("max_inflight_requests"), "{refused:?}");
    // The busy request ends with the storage timeout: a retryable 503, not a hang.
    assert_eq!(slow.join().expect("thread"), 503);
    let m = c.gateways[0].metrics();
    assert!(m.contains(r#"basin_ingest_write_requests_total{code="429"}"#), "{m}");
}
