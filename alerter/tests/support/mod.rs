//! Test harness: real Prometheus and Alertmanager processes on loopback (killed on drop), an
//! in-process alerter with its HTTP API, a remote_write sample pusher, and `wait_until`.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use basin_alerter::{Alerter, AlerterConfig};
use basin_proto::remote::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use tokio_util::sync::CancellationToken;

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// Whether the real peers are installed; tests skip (with a message) when not.
pub fn peers_installed() -> bool {
    let ok = Path::new(PROMETHEUS).exists() && Path::new(ALERTMANAGER).exists();
    if !ok {
        eprintln!("skipping: {PROMETHEUS} or {ALERTMANAGER} not installed");
    }
    ok
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child process killed on drop.
pub struct Process {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn output() -> Stdio {
    if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() }
}

async fn wait_ready(url: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let ready = format!("{url}/-/ready");
    wait_until(&ready, Duration::from_secs(30), || {
        let client = client.clone();
        let ready = ready.clone();
        async move {
            let r = client.get(&ready).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await
}

/// Prometheus with the remote-write receiver and no scrape jobs.
pub async fn start_prometheus() -> Result<Process> {
    start_prometheus_with_config("global:\n  scrape_interval: 1m\n").await
}

/// Prometheus with the remote-write receiver and the given configuration.
pub async fn start_prometheus_with_config(config_text: &str) -> Result<Process> {
    start_prometheus_with(config_text, &[]).await
}

/// Prometheus with the remote-write receiver, the given configuration and extra flags.
pub async fn start_prometheus_with(config_text: &str, args: &[&str]) -> Result<Process> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, config_text)?;
    let port = free_port()?;
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .args(args)
        .stdout(output())
        .stderr(output())
        .spawn()
        .context("starting prometheus")?;
    let p = Process { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    wait_ready(&p.url).await?;
    Ok(p)
}

/// Alertmanager with one default receiver and no cluster.
pub async fn start_alertmanager() -> Result<Process> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: default\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: default\n",
    )?;
    let port = free_port()?;
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(output())
        .stderr(output())
        .spawn()
        .context("starting alertmanager")?;
    let p = Process { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    wait_ready(&p.url).await?;
    Ok(p)
}

/// Writes `name{labels} = value` at now to Prometheus through remote_write.
pub async fn push_sample(
    prometheus: &str,
    name: &str,
    labels: &[(&str, &str)],
    value: f64,
) -> Result<()> {
    let mut l = vec![Label { name: "__name__".to_string(), value: name.to_string() }];
    l.extend(labels.iter().map(|(k, v)| Label { name: k.to_string(), value: v.to_string() }));
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: l,
            samples: vec![Sample { value, timestamp: now_ms() }],
        }],
        metadata: Vec::new(),
    };
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec())?;
    let r = reqwest::Client::new()
        .post(format!("{prometheus}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("remote write: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Keeps writing `name{labels}` every 200 ms with the value in `value` (f64 bits) until dropped.
pub struct Pusher {
    pub value: Arc<std::sync::atomic::AtomicU64>,
    cancel: CancellationToken,
}

impl Pusher {
    pub fn start(
        prometheus: &str,
        name: &'static str,
        labels: &'static [(&'static str, &'static str)],
        value: f64,
    ) -> Self {
        let v = Arc::new(std::sync::atomic::AtomicU64::new(value.to_bits()));
        let cancel = CancellationToken::new();
        let (url, v2, c2) = (prometheus.to_string(), Arc::clone(&v), cancel.clone());
        tokio::spawn(async move {
            while !c2.is_cancelled() {
                let value = f64::from_bits(v2.load(std::sync::atomic::Ordering::SeqCst));
                if let Err(e) = push_sample(&url, name, labels, value).await {
                    eprintln!("push failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Pusher { value: v, cancel }
    }

    pub fn set(&self, value: f64) {
        self.value.store(value.to_bits(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// An in-process alerter serving its API on a free port; stopped on drop.
pub struct RunningAlerter {
    pub alerter: Arc<Alerter>,
    pub url: String,
    pub registry: Arc<std::sync::Mutex<prometheus_client::registry::Registry>>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningAlerter {
    pub async fn start(cfg: AlerterConfig) -> Result<Self> {
        let mut registry = prometheus_client::registry::Registry::default();
        let alerter = Alerter::new(cfg, &mut registry).map_err(|e| anyhow::anyhow!("{e}"))?;
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = basin_alerter::router(Arc::clone(&alerter));
        let s = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(s.cancelled_owned()).await;
        });
        let task = tokio::spawn(Arc::clone(&alerter).run(shutdown.clone()));
        Ok(RunningAlerter {
            alerter,
            url,
            registry: Arc::new(std::sync::Mutex::new(registry)),
            shutdown,
            task: Some(task),
        })
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }

    pub async fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        reqwest::get(format!("{}{path}", self.url)).await.ok()?.json().await.ok()
    }
}

impl Drop for RunningAlerter {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Writes a rule file into `dir` and returns its path.
pub fn rule_file(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Instant query against Prometheus; the `result` array.
pub async fn prom_query(prometheus: &str, query: &str) -> Option<Vec<serde_json::Value>> {
    let r: serde_json::Value = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    r["data"]["result"].as_array().cloned()
}

/// Alertmanager's active alerts (`GET /api/v2/alerts`).
pub async fn am_alerts(alertmanager: &str) -> Option<Vec<serde_json::Value>> {
    reqwest::get(format!("{alertmanager}/api/v2/alerts")).await.ok()?.json().await.ok()
}
