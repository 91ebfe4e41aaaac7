//! Test harness: starts real `basin` processes (and real Prometheus) on free loopback ports,
//! waits for `/ready`, and kills them on drop, so a failing test leaves nothing running.
//!
//! `TEST_LOG=1` forwards the processes' logs to the test's stderr.

#![allow(dead_code, unreachable_pub)]

pub mod remote;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Polls `f` until it returns `Some`, or fails after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A blocking HTTP client with a short timeout, for tests.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// One running `basin` process.
#[derive(Debug)]
pub struct Basin {
    args: Vec<String>,
    child: Option<Child>,
    /// HTTP base URL, e.g. `http://127.0.0.1:12345`.
    pub url: String,
    /// gRPC address of a storage node (`127.0.0.1:port`), if any.
    pub grpc: Option<String>,
}

impl Basin {
    /// Starts `basin <args...> --http-listen 127.0.0.1:<free>` and waits for `/ready`.
    pub fn start(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Self::start_with(|| args.clone())
    }

    /// Starts basin with the arguments `make_args` returns plus a free HTTP port. A port picked
    /// free can be taken by another test before the child binds it, so a start whose process
    /// exits early is retried with fresh ports (`make_args` is called again).
    pub fn start_with(make_args: impl Fn() -> Vec<String>) -> Self {
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut args = make_args();
            args.push("--http-listen".into());
            args.push(format!("127.0.0.1:{port}"));
            let grpc = args
                .iter()
                .position(|a| a == "--grpc-listen")
                .and_then(|i| args.get(i + 1).cloned());
            let mut b = Self { args, child: None, url: format!("http://127.0.0.1:{port}"), grpc };
            match b.try_spawn() {
                Ok(()) => return b,
                Err(e) => last_error = e,
            }
        }
        panic!("{last_error}");
    }

    /// Starts a standalone Basin with its data in `data_dir`.
    pub fn standalone(data_dir: &Path, extra: &[&str]) -> Self {
        let dir = data_dir.to_string_lossy().to_string();
        let mut args = vec!["standalone", "--data-dir", &dir];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// Starts a storage node with its data in `data_dir`.
    pub fn storage(data_dir: &Path) -> Self {
        let dir = data_dir.to_string_lossy().to_string();
        Self::start_with(|| {
            let grpc = format!("127.0.0.1:{}", free_port());
            ["storage", "--data-dir", &dir, "--grpc-listen", &grpc].map(String::from).to_vec()
        })
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::env::var_os("TEST_LOG").is_some();
        let child = Command::new(env!("CARGO_BIN_EXE_basin"))
            .args(&self.args)
            .env("BASIN_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(if log { Stdio::inherit() } else { Stdio::null() })
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("spawn basin");
        self.child = Some(child);
        self.try_wait_ready()
    }

    /// Waits until `/ready` answers 200 (and the process is still alive).
    pub fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready() {
            panic!("{e}");
        }
    }

    fn try_wait_ready(&mut self) -> Result<(), String> {
        let url = format!("{}/ready", self.url);
        let client = http();
        let args = self.args.join(" ");
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!("basin {args} exited early with {status}"));
            }
            if client.get(&url).send().is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("timed out waiting for basin {args} to be ready"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the process (no shutdown work at all).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs the process and waits for it to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        signal(&c, "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again with the same arguments and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running process");
        self.spawn();
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `GET /api/v1/query` at `time` (seconds); returns the JSON answer (any status).
    pub fn query(&self, q: &str, time: f64) -> Value {
        get_json(&self.url, "/api/v1/query", &[("query", q), ("time", &time.to_string())])
    }

    /// `GET /api/v1/query_range`.
    pub fn query_range(&self, q: &str, start: f64, end: f64, step: f64) -> Value {
        get_json(
            &self.url,
            "/api/v1/query_range",
            &[
                ("query", q),
                ("start", &start.to_string()),
                ("end", &end.to_string()),
                ("step", &step.to_string()),
            ],
        )
    }

    /// Fetches `/metrics` as text.
    pub fn metrics(&self) -> String {
        get_text(&format!("{}/metrics", self.url))
    }
}

impl Drop for Basin {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn signal(c: &Child, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(c.id().to_string()).status();
}

/// GET `url` as text; empty when the request fails (callers assert on the content).
pub fn get_text(url: &str) -> String {
    http().get(url).send().and_then(|r| r.text()).unwrap_or_default()
}

/// GET `base + path` with query parameters, parsed as JSON.
pub fn get_json(base: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let resp = http()
        .get(format!("{base}{path}"))
        .query(params)
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    resp.json().unwrap_or_else(|e| panic!("GET {path}: body is not JSON: {e}"))
}

/// A query result's vector as `(labels without order, value)` pairs, sorted by labels.
pub fn vector(answer: &Value) -> Vec<(Vec<(String, String)>, f64)> {
    assert_eq!(answer["status"], "success", "query failed: {answer}");
    assert_eq!(answer["data"]["resultType"], "vector", "not a vector: {answer}");
    let mut out: Vec<_> = answer["data"]["result"]
        .as_array()
        .expect("result array")
        .iter()
        .map(|s| (metric(&s["metric"]), parse_value(&s["value"][1])))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A series of a matrix answer: sorted labels and `(t seconds, value)` points.
pub type MatrixSeries = (Vec<(String, String)>, Vec<(f64, f64)>);

/// A query_range result, sorted by labels.
pub fn matrix(answer: &Value) -> Vec<MatrixSeries> {
    assert_eq!(answer["status"], "success", "query failed: {answer}");
    assert_eq!(answer["data"]["resultType"], "matrix", "not a matrix: {answer}");
    let mut out: Vec<_> = answer["data"]["result"]
        .as_array()
        .expect("result array")
        .iter()
        .map(|s| {
            let points = s["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|p| (p[0].as_f64().expect("timestamp"), parse_value(&p[1])))
                .collect();
            (metric(&s["metric"]), points)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn metric(m: &Value) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = m
        .as_object()
        .expect("metric object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_string()))
        .collect();
    l.sort();
    l
}

fn parse_value(v: &Value) -> f64 {
    let s = v.as_str().expect("value string");
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().expect("float value"),
    }
}

/// Labels from `k=v` pairs, sorted.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l: Vec<_> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    l.sort();
    l
}

/// Asserts `a` and `b` are equal within a relative 1e-9.
pub fn assert_close(a: f64, b: f64, what: &str) {
    let tol = 1e-9 * a.abs().max(b.abs()).max(1.0);
    assert!((a - b).abs() <= tol, "{what}: got {a}, want {b}");
}

/// A real Prometheus (Debian's `prometheus`), started with a config the test writes.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    /// Base URL.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// The Prometheus binary, or an error saying how to install it.
    pub fn binary() -> Result<PathBuf> {
        let p =
            PathBuf::from(std::env::var("PROMETHEUS_BIN").unwrap_or("/usr/bin/prometheus".into()));
        if !p.exists() {
            bail!(
                "{} not found: install Debian's `prometheus` package (scripts/test does)",
                p.display()
            );
        }
        Ok(p)
    }

    /// Starts Prometheus with `config` (YAML; `{{PORT}}` stands for its own port) and extra
    /// flags, on a free port.
    pub fn start(config: &str, extra: &[&str]) -> Result<Self> {
        let bin = Self::binary()?;
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("prometheus.yml");
        let port = free_port();
        std::fs::write(&cfg, config.replace("{{PORT}}", &port.to_string()))?;
        let log = std::env::var_os("TEST_LOG").is_some();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(if log { Stdio::inherit() } else { Stdio::null() })
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .context("spawn prometheus")?;
        let p = Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        let client = http();
        wait_until("prometheus to be ready", Duration::from_secs(60), || {
            client.get(format!("{}/-/ready", p.url)).send().ok().filter(|r| r.status().is_success())
        });
        Ok(p)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster of real processes: storage nodes, one ingest gateway, one query node.
#[derive(Debug)]
pub struct Cluster {
    /// Storage nodes, in `--storage-nodes` order.
    pub storage: Vec<Basin>,
    /// The ingest gateway.
    pub gateway: Basin,
    /// The query node.
    pub query: Basin,
    dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// Starts `nodes` storage nodes, then a gateway and a query node with replication `rf`.
    pub fn start(nodes: usize, rf: usize) -> Self {
        let dirs: Vec<_> = (0..nodes).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let storage: Vec<Basin> = dirs.iter().map(|d| Basin::storage(d.path())).collect();
        let list = storage
            .iter()
            .map(|s| s.grpc.clone().expect("grpc addr"))
            .collect::<Vec<_>>()
            .join(",");
        let rf = rf.to_string();
        let gateway =
            Basin::start(&["ingest", "--storage-nodes", &list, "--replication-factor", &rf]);
        let query = Basin::start(&["query", "--storage-nodes", &list, "--replication-factor", &rf]);
        Self { storage, gateway, query, dirs }
    }

    /// Number of series of the default tenant each storage node holds, asked over gRPC.
    pub fn series_per_node(&self) -> Vec<usize> {
        use basin_proto::node::{GrpcStorageNode, StorageNode};
        use basin_proto::storage::{MatchType, MatcherSet, SeriesRequest};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        self.storage
            .iter()
            .map(|s| {
                let req = SeriesRequest {
                    tenant: String::new(),
                    matchers: vec![MatcherSet {
                        matchers: vec![basin_proto::matcher::wire(
                            MatchType::Regex,
                            "__name__",
                            ".+",
                        )],
                    }],
                    start_ms: i64::MIN / 2,
                    end_ms: i64::MAX / 2,
                    limit: 0,
                };
                let addr = s.grpc.as_deref().expect("grpc");
                rt.block_on(async {
                    let node = GrpcStorageNode::new(addr, Duration::from_secs(10)).expect("client");
                    node.series(req).await
                })
                .expect("series over gRPC")
                .len()
            })
            .collect()
    }
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`), clustering off, with one
/// receiver (`default`) that sends nowhere; alerts are read back through its v2 API.
#[derive(Debug)]
pub struct Alertmanager {
    child: Child,
    /// Base URL.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// The Alertmanager binary, or an error saying how to install it.
    pub fn binary() -> Result<PathBuf> {
        let p = PathBuf::from(
            std::env::var("ALERTMANAGER_BIN").unwrap_or("/usr/bin/prometheus-alertmanager".into()),
        );
        if !p.exists() {
            bail!("{} not found: install Debian's `prometheus-alertmanager` package", p.display());
        }
        Ok(p)
    }

    /// Starts Alertmanager on a free port and waits for `/-/ready`.
    pub fn start() -> Result<Self> {
        let bin = Self::binary()?;
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: default\n  group_wait: 1s\nreceivers:\n  - name: default\n",
        )?;
        let port = free_port();
        let log = std::env::var_os("TEST_LOG").is_some();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(if log { Stdio::inherit() } else { Stdio::null() })
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .context("spawn alertmanager")?;
        let mut am = Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        let client = http();
        let url = format!("{}/-/ready", am.url);
        let child = &mut am.child;
        wait_until("alertmanager to be ready", Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("alertmanager exited early with {status}");
            }
            client.get(&url).send().ok().filter(|r| r.status().is_success())
        });
        Ok(am)
    }

    /// `GET /api/v2/alerts`: the alerts Alertmanager holds as active (not resolved).
    pub fn alerts(&self) -> Vec<Value> {
        match get_json(&self.url, "/api/v2/alerts", &[]) {
            Value::Array(alerts) => alerts,
            other => panic!("GET /api/v2/alerts: not a list: {other}"),
        }
    }

    /// Fetches Alertmanager's own `/metrics` as text.
    pub fn metrics(&self) -> String {
        get_text(&format!("{}/metrics", self.url))
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Failure tests (tests/cluster_failures.rs): signals, bigger clusters, a remote_write load.
// ---------------------------------------------------------------------------------------------

impl Basin {
    /// Sends `kill -<sig>` to the running process (e.g. `STOP`, `CONT`).
    pub fn send_signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            signal(c, sig);
        }
    }

    /// SIGSTOPs the process; the returned guard SIGCONTs it when dropped (also on panic), so
    /// the process can always be killed afterwards.
    pub fn sigstop(&self) -> Continue {
        let pid = self.pid().expect("running");
        let _ = Command::new("kill").arg("-STOP").arg(pid.to_string()).status();
        Continue { pid }
    }

    /// `GET path` as JSON (any status).
    pub fn get_json(&self, path: &str, params: &[(&str, &str)]) -> Value {
        get_json(&self.url, path, params)
    }
}

/// SIGCONTs a stopped process when dropped.
#[derive(Debug)]
pub struct Continue {
    pid: u32,
}

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.pid.to_string()).status();
    }
}

/// A cluster for failure tests: storage nodes, several gateways, one query node, with short
/// storage timeouts and probe intervals.
#[derive(Debug)]
pub struct FailureCluster {
    /// Storage nodes, in `--storage-nodes` order.
    pub storage: Vec<Basin>,
    /// Ingest gateways.
    pub gateways: Vec<Basin>,
    /// The query node.
    pub query: Basin,
    _dirs: Vec<tempfile::TempDir>,
}

impl FailureCluster {
    /// Starts `nodes` storage nodes, `gateways` gateways and a query node, all with
    /// replication factor `rf`; `extra` is added to the gateways' and query node's flags.
    pub fn start(nodes: usize, rf: usize, gateways: usize, extra: &[&str]) -> Self {
        Self::start_with(nodes, rf, gateways, extra, &[])
    }

    /// [`FailureCluster::start`] with flags only the gateways get (`gateway_extra`).
    pub fn start_with(
        nodes: usize,
        rf: usize,
        gateways: usize,
        extra: &[&str],
        gateway_extra: &[&str],
    ) -> Self {
        let dirs: Vec<_> = (0..nodes).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let storage: Vec<Basin> = dirs.iter().map(|d| Basin::storage(d.path())).collect();
        let list = storage
            .iter()
            .map(|s| s.grpc.clone().expect("grpc addr"))
            .collect::<Vec<_>>()
            .join(",");
        let rf = rf.to_string();
        let mut args = vec!["--storage-nodes", &list, "--replication-factor", &rf];
        args.extend_from_slice(extra);
        let start = |role: &str, more: &[&str]| {
            let mut a = vec![role];
            a.extend_from_slice(&args);
            a.extend_from_slice(more);
            Basin::start(&a)
        };
        let gateways = (0..gateways).map(|_| start("ingest", gateway_extra)).collect();
        let query = start("query", &[]);
        Self { storage, gateways, query, _dirs: dirs }
    }

    /// Health (`up`/`down`) of every storage node as `process`'s `/api/v1/status/cluster`
    /// reports it, in configuration order.
    pub fn health(process: &Basin) -> Vec<String> {
        let j = process.get_json("/api/v1/status/cluster", &[]);
        j["data"]["nodes"]
            .as_array()
            .map(|nodes| {
                nodes.iter().map(|n| n["health"].as_str().unwrap_or("?").to_string()).collect()
            })
            .unwrap_or_default()
    }
}

/// What a [`WriteLoad`] saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Requests sent.
    pub requests: u64,
    /// `(series id, timestamp ms)` of every sample in a request answered 2xx.
    pub acked: Vec<(u32, i64)>,
    /// Requests answered with something else (or not at all), by status (0: transport error).
    pub failed: std::collections::BTreeMap<u16, u64>,
    /// Slowest request.
    pub max_latency: Duration,
}

impl LoadReport {
    /// Requests not answered 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// A steady remote_write load from a thread: each request carries one sample for each of
/// `series` series of metric `name` (label `id`), with a fresh timestamp, sent round-robin to
/// the gateways. Non-2xx answers are counted, never retried, so only acknowledged samples are
/// known to be stored.
#[derive(Debug)]
pub struct WriteLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<LoadReport>>,
}

impl WriteLoad {
    /// Starts the load; timestamps start at `t0_ms` and advance 1 ms per request.
    pub fn start(gateways: Vec<String>, name: &str, series: u32, t0_ms: i64) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            let mut report = LoadReport::default();
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut seq: i64 = 0;
            while !flag.load(Ordering::SeqCst) {
                let ts = t0_ms + seq;
                let batch: Vec<_> = (0..series)
                    .map(|s| {
                        let id = s.to_string();
                        remote::series(&[("__name__", &name), ("id", &id)], &[(ts, seq as f64)])
                    })
                    .collect();
                let url = &gateways[(seq as usize) % gateways.len()];
                let started = Instant::now();
                let resp = client
                    .post(format!("{url}/api/v1/write"))
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .body(remote::body(batch))
                    .send();
                report.max_latency = report.max_latency.max(started.elapsed());
                report.requests += 1;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        report.acked.extend((0..series).map(|s| (s, ts)));
                    }
                    Ok(r) => *report.failed.entry(r.status().as_u16()).or_default() += 1,
                    Err(_) => *report.failed.entry(0).or_default() += 1,
                }
                seq += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            report
        });
        Self { stop, thread: Some(thread) }
    }

    /// Stops the load and returns what it saw.
    pub fn finish(mut self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().expect("running").join().expect("load thread")
    }
}

impl Drop for WriteLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Every sample of metric `name` in `(end_ms - window, end_ms]` read through `query`'s
/// `/api/v1/query` as a range selector: `(series id, timestamp ms)` in answer order, so
/// duplicates would show. Panics on error answers; also returns the warnings.
pub fn read_samples(
    query: &Basin,
    name: &str,
    end_ms: i64,
    window: &str,
) -> (Vec<(u32, i64)>, Vec<String>) {
    let q = format!("{name}[{window}]");
    let t = format!("{:.3}", end_ms as f64 / 1000.0);
    let j = get_json(&query.url, "/api/v1/query", &[("query", &q), ("time", &t)]);
    assert_eq!(j["status"], "success", "readback failed: {j}");
    let mut out = Vec::new();
    for s in j["data"]["result"].as_array().expect("result") {
        let id: u32 = s["metric"]["id"].as_str().expect("id").parse().expect("numeric id");
        for p in s["values"].as_array().expect("values") {
            let t = (p[0].as_f64().expect("t") * 1000.0).round() as i64;
            out.push((id, t));
        }
    }
    let warnings = j["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default();
    (out, warnings)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
