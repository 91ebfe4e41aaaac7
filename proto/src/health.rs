//! Health of the storage nodes as one gateway or query node sees them.
//!
//! Every call to a storage node goes through an [`ObservedNode`], which records its outcome in
//! the node's [`NodeHealth`]: a retryable failure (node down, overloaded, timed out) marks the
//! node down at once; a success marks it up. A gateway stops sending to a node that is down
//! (its share goes to the next nodes of each series' preference list), so something else must
//! notice when it is back: [`Membership::spawn_probes`] runs one probe loop per node, a cheap
//! read every interval, which also keeps the status fresh on an idle process.
//!
//! [`Membership::status_json`] renders the documented `/api/v1/status/cluster` answer:
//!
//! ```json
//! {"status":"success","data":{"role":"ingest","replicationFactor":2,"nodes":[
//!   {"node":"10.0.0.1:9204","health":"up","lastError":null,"lastErrorTimestamp":null,
//!    "lastLatencySeconds":0.0012,"lastSuccessTimestamp":1764016800.123,
//!    "consecutiveFailures":0,"healthChangedTimestamp":1764016700.5}]}}
//! ```
//!
//! Timestamps are Unix seconds (floats); `null` means "never".

use crate::batch::BatchWrite;
use crate::node::{SharedSeries, StorageNode, is_retryable};
use crate::storage::{
    DeleteSeriesRequest, DeleteSeriesResponse, LabelNamesRequest, LabelValuesRequest,
    SelectRequest, Series, SeriesRequest, TsdbStatusRequest, TsdbStatusResponse, WriteRequest,
    WriteResponse,
};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::Status;

/// The label a health probe asks the values of: no series has it, so the answer is an empty
/// list read from one index seek.
pub const PROBE_LABEL: &str = "__basin_probe__";

/// What one process knows about one storage node.
#[derive(Debug)]
pub struct NodeHealth {
    name: String,
    up: AtomicBool,
    consecutive_failures: AtomicU32,
    /// Latency of the last finished call in microseconds; `u64::MAX` before the first.
    last_latency_us: AtomicU64,
    times: Mutex<Times>,
}

#[derive(Debug, Default, Clone)]
struct Times {
    last_error: Option<String>,
    last_error_at: Option<SystemTime>,
    last_success_at: Option<SystemTime>,
    changed_at: Option<SystemTime>,
}

/// A point-in-time copy of a [`NodeHealth`].
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    /// The node's address.
    pub node: String,
    /// Whether the node is considered up (calls are routed to it).
    pub up: bool,
    /// The last failure's message, if any call ever failed.
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<SystemTime>,
    /// Latency of the last finished call (success or failure).
    pub last_latency: Option<Duration>,
    /// When the last call succeeded.
    pub last_success_at: Option<SystemTime>,
    /// Failed calls since the last success.
    pub consecutive_failures: u32,
    /// When `up` last changed (process start when it never did).
    pub changed_at: Option<SystemTime>,
}

fn lock(m: &Mutex<Times>) -> std::sync::MutexGuard<'_, Times> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl NodeHealth {
    /// A node assumed up until a call says otherwise.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            up: AtomicBool::new(true),
            consecutive_failures: AtomicU32::new(0),
            last_latency_us: AtomicU64::new(u64::MAX),
            times: Mutex::new(Times { changed_at: Some(SystemTime::now()), ..Times::default() }),
        }
    }

    /// The node's address.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether calls should be routed to the node.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Records a call that succeeded (or failed for a reason that says nothing about the
    /// node's health, such as invalid input).
    pub fn record_success(&self, latency: Duration) {
        self.set_latency(latency);
        self.consecutive_failures.store(0, Ordering::Release);
        let mut t = lock(&self.times);
        t.last_success_at = Some(SystemTime::now());
        if !self.up.swap(true, Ordering::AcqRel) {
            t.changed_at = t.last_success_at;
        }
    }

    /// Records a call that failed because the node is down, slow or overloaded; the node is
    /// marked down until a later call or probe succeeds. Returns whether it was up before.
    pub fn record_failure(&self, latency: Duration, error: &str) -> bool {
        self.set_latency(latency);
        self.consecutive_failures.fetch_add(1, Ordering::AcqRel);
        let mut t = lock(&self.times);
        let now = SystemTime::now();
        t.last_error = Some(error.to_string());
        t.last_error_at = Some(now);
        let was_up = self.up.swap(false, Ordering::AcqRel);
        if was_up {
            t.changed_at = Some(now);
        }
        was_up
    }

    fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX - 1);
        self.last_latency_us.store(us, Ordering::Release);
    }

    /// A copy of the current state.
    pub fn status(&self) -> NodeStatus {
        let t = lock(&self.times).clone();
        let us = self.last_latency_us.load(Ordering::Acquire);
        NodeStatus {
            node: self.name.clone(),
            up: self.is_up(),
            last_error: t.last_error,
            last_error_at: t.last_error_at,
            last_latency: (us != u64::MAX).then(|| Duration::from_micros(us)),
            last_success_at: t.last_success_at,
            consecutive_failures: self.consecutive_failures.load(Ordering::Acquire),
            changed_at: t.changed_at,
        }
    }
}

/// A storage node whose calls are timed out after `timeout` and recorded in its health.
#[derive(Debug)]
pub struct ObservedNode {
    inner: Arc<dyn StorageNode>,
    health: Arc<NodeHealth>,
    timeout: Option<Duration>,
}

impl ObservedNode {
    /// Wraps `inner`; `timeout` bounds every call (`None`: the inner client's own bound).
    pub fn new(inner: Arc<dyn StorageNode>, timeout: Option<Duration>) -> Self {
        let health = Arc::new(NodeHealth::new(inner.name()));
        Self { inner, health, timeout }
    }

    /// The node's health.
    pub fn health(&self) -> &Arc<NodeHealth> {
        &self.health
    }

    /// Runs one call with the deadline and records its outcome.
    async fn observe<T>(&self, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        let started = Instant::now();
        let result = match self.timeout {
            Some(t) => match tokio::time::timeout(t, call).await {
                Ok(r) => r,
                Err(_) => {
                    Err(Status::deadline_exceeded(format!("no answer within {} ms", t.as_millis())))
                }
            },
            None => call.await,
        };
        let latency = started.elapsed();
        match &result {
            Err(status) if is_retryable(status) => {
                let error = format!("{:?}: {}", status.code(), status.message());
                self.health.record_failure(latency, &error);
            }
            _ => self.health.record_success(latency),
        }
        result
    }

    /// A cheap read that tells whether the node answers; recorded like any call.
    pub async fn probe(&self) -> Result<(), Status> {
        let req = LabelValuesRequest {
            name: PROBE_LABEL.to_string(),
            start_ms: 0,
            end_ms: 0,
            limit: 1,
            ..LabelValuesRequest::default()
        };
        self.observe(self.inner.label_values(req)).await.map(|_| ())
    }
}

#[async_trait::async_trait]
impl StorageNode for ObservedNode {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn write(&self, req: WriteRequest) -> Result<WriteResponse, Status> {
        self.observe(self.inner.write(req)).await
    }

    async fn write_batch(&self, req: BatchWrite) -> Result<WriteResponse, Status> {
        self.observe(self.inner.write_batch(req)).await
    }

    async fn select(&self, req: SelectRequest) -> Result<Vec<SharedSeries>, Status> {
        self.observe(self.inner.select(req)).await
    }

    async fn label_names(&self, req: LabelNamesRequest) -> Result<Vec<String>, Status> {
        self.observe(self.inner.label_names(req)).await
    }

    async fn label_values(&self, req: LabelValuesRequest) -> Result<Vec<String>, Status> {
        self.observe(self.inner.label_values(req)).await
    }

    async fn series(&self, req: SeriesRequest) -> Result<Vec<Series>, Status> {
        self.observe(self.inner.series(req)).await
    }

    async fn tsdb_status(&self, req: TsdbStatusRequest) -> Result<TsdbStatusResponse, Status> {
        self.observe(self.inner.tsdb_status(req)).await
    }

    async fn delete_series(
        &self,
        req: DeleteSeriesRequest,
    ) -> Result<DeleteSeriesResponse, Status> {
        self.observe(self.inner.delete_series(req)).await
    }
}

/// The storage nodes of one process, each observed, in configuration order.
#[derive(Debug, Clone)]
pub struct Membership {
    nodes: Vec<Arc<ObservedNode>>,
}

impl Membership {
    /// Observes `nodes`, bounding each call by `timeout` when given.
    pub fn new(nodes: Vec<Arc<dyn StorageNode>>, timeout: Option<Duration>) -> Self {
        let nodes = nodes.into_iter().map(|n| Arc::new(ObservedNode::new(n, timeout))).collect();
        Self { nodes }
    }

    /// The observed nodes, in configuration order.
    pub fn nodes(&self) -> &[Arc<ObservedNode>] {
        &self.nodes
    }

    /// The observed nodes as plain storage nodes (for code that only calls them).
    pub fn storage_nodes(&self) -> Vec<Arc<dyn StorageNode>> {
        self.nodes.iter().map(|n| Arc::clone(n) as Arc<dyn StorageNode>).collect()
    }

    /// A copy of every node's state, in configuration order.
    pub fn status(&self) -> Vec<NodeStatus> {
        self.nodes.iter().map(|n| n.health.status()).collect()
    }

    /// Starts one probe loop per node on the current Tokio runtime: every `interval` the node
    /// is probed, so a node marked down comes back as soon as it answers. A loop ends when the
    /// membership it belongs to is dropped.
    pub fn spawn_probes(&self, interval: Duration) {
        for node in &self.nodes {
            let weak: Weak<ObservedNode> = Arc::downgrade(node);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(node) = weak.upgrade() else { return };
                    // The outcome is recorded by `observe`; nothing else to do with it.
                    let _ = node.probe().await;
                }
            });
        }
    }

    /// The `/api/v1/status/cluster` JSON answer (see the module docs); `extra` adds
    /// `"key":value` members (already encoded JSON values) to `data`.
    pub fn status_json(&self, role: &str, extra: &[(&str, String)]) -> String {
        let mut out = String::from(r#"{"status":"success","data":{"role":"#);
        json_str(&mut out, role);
        for (k, v) in extra {
            out.push(',');
            json_str(&mut out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push_str(r#","nodes":["#);
        for (i, s) in self.status().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"node":"#);
            json_str(&mut out, &s.node);
            out.push_str(r#","health":"#);
            json_str(&mut out, if s.up { "up" } else { "down" });
            out.push_str(r#","lastError":"#);
            match &s.last_error {
                Some(e) => json_str(&mut out, e),
                None => out.push_str("null"),
            }
            out.push_str(r#","lastErrorTimestamp":"#);
            json_time(&mut out, s.last_error_at);
            out.push_str(r#","lastLatencySeconds":"#);
            match s.last_latency {
                Some(l) => {
                    let _ = write!(out, "{}", l.as_secs_f64());
                }
                None => out.push_str("null"),
            }
            out.push_str(r#","lastSuccessTimestamp":"#);
            json_time(&mut out, s.last_success_at);
            let _ = write!(out, r#","consecutiveFailures":{}"#, s.consecutive_failures);
            out.push_str(r#","healthChangedTimestamp":"#);
            json_time(&mut out, s.changed_at);
            out.push('}');
        }
        out.push_str("]}}");
        out
    }
}

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn json_time(out: &mut String, t: Option<SystemTime>) {
    match t {
        Some(t) => {
            let _ = write!(out, "{:.3}", unix_seconds(t));
        }
        None => out.push_str("null"),
    }
}

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_mark_down_and_success_brings_back() {
        let h = NodeHealth::new("n1:1");
        assert!(h.is_up());
        assert!(h.record_failure(Duration::from_millis(5), "Unavailable: \"refused\""));
        assert!(!h.record_failure(Duration::from_millis(5), "again"));
        let s = h.status();
        assert!(!s.up);
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.last_error.as_deref(), Some("again"));
        h.record_success(Duration::from_millis(1));
        let s = h.status();
        assert!(s.up);
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.last_latency, Some(Duration::from_millis(1)));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, r#""a\"b\\c\nd\u0001""#);
    }
}

/// Label set of the per-node health gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

/// Encodes the per-node health gauges (`storage_node_up`, `_last_latency_seconds`,
/// `_last_error_timestamp_seconds`, `_consecutive_failures`, label `node`) at scrape time;
/// the caller's registry prefix names the role (`basin_ingest_`, `basin_query_`).
pub fn encode_node_health(
    statuses: &[NodeStatus],
    mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let up = Family::<NodeLabel, Gauge>::default();
    let latency = Family::<NodeLabel, Gauge<f64, AtomicU64>>::default();
    let error_at = Family::<NodeLabel, Gauge<f64, AtomicU64>>::default();
    let failures = Family::<NodeLabel, Gauge>::default();
    for s in statuses {
        let l = NodeLabel { node: s.node.clone() };
        up.get_or_create(&l).set(i64::from(s.up));
        if let Some(d) = s.last_latency {
            latency.get_or_create(&l).set(d.as_secs_f64());
        }
        error_at.get_or_create(&l).set(s.last_error_at.map_or(0.0, unix_seconds));
        failures.get_or_create(&l).set(i64::from(s.consecutive_failures));
    }
    let gauges: [(&str, &str, &dyn EncodeMetric); 4] = [
        ("storage_node_up", "Whether the storage node is considered up (1) or down (0)", &up),
        (
            "storage_node_last_latency_seconds",
            "Latency of the last call to the storage node",
            &latency,
        ),
        (
            "storage_node_last_error_timestamp_seconds",
            "Unix time of the last failed call to the storage node (0: never)",
            &error_at,
        ),
        (
            "storage_node_consecutive_failures",
            "Failed calls to the storage node since its last success",
            &failures,
        ),
    ];
    for (name, help, metric) in gauges {
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
    }
    Ok(())
}
