//! Writes recording rule results, `ALERTS` and `ALERTS_FOR_STATE` through remote_write 1.0:
//! a snappy (raw block) compressed `prometheus.WriteRequest` with `Content-Encoding: snappy`,
//! `Content-Type: application/x-protobuf`, `X-Prometheus-Remote-Write-Version: 0.1.0`.
//!
//! Evaluation only appends to a bounded in-memory buffer ([`RemoteWriter::push`] never waits);
//! one background task sends batches in order, retrying 5xx, 429 and transport errors with
//! exponential backoff (capped), and dropping what a 4xx rejects (a retry cannot succeed).
//! When the buffer is full the oldest samples are dropped and counted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basin_proto::remote::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::labels::{Labels, with_external};
use crate::metrics::AlerterMetrics;

/// Samples kept while the receiver is unreachable.
pub const DEFAULT_BUFFER_SAMPLES: usize = 500_000;
const MAX_BATCH: usize = 2_000;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long buffered samples are still sent after shutdown.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct OutSample {
    /// Full label set including `__name__`.
    pub labels: Labels,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The value (may be the staleness marker).
    pub value: f64,
}

#[derive(Debug, Default)]
struct Buffer {
    samples: VecDeque<OutSample>,
    /// Samples ever dropped from the front because the buffer was full.
    dropped_front: u64,
}

fn lock(m: &Mutex<Buffer>) -> std::sync::MutexGuard<'_, Buffer> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
struct Shared {
    buffer: Mutex<Buffer>,
    notify: Notify,
    capacity: usize,
    external: Vec<(String, String)>,
    metrics: AlerterMetrics,
}

/// The remote_write queue.
#[derive(Debug, Clone)]
pub struct RemoteWriter {
    shared: Arc<Shared>,
    http: reqwest::Client,
    url: String,
}

impl RemoteWriter {
    /// A writer for `url` (the receiver's full write URL, e.g. `http://gw/api/v1/write`);
    /// `headers` go with every request (the tenant header).
    pub fn new(
        url: String,
        external: Vec<(String, String)>,
        timeout: Duration,
        headers: reqwest::header::HeaderMap,
        metrics: AlerterMetrics,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).default_headers(headers).build()?;
        Ok(RemoteWriter {
            shared: Arc::new(Shared {
                buffer: Mutex::new(Buffer::default()),
                notify: Notify::new(),
                capacity: DEFAULT_BUFFER_SAMPLES,
                external,
                metrics,
            }),
            http,
            url,
        })
    }

    /// Queues samples; never blocks on the network. External labels are added where absent.
    pub fn push(&self, samples: Vec<OutSample>) {
        if samples.is_empty() {
            return;
        }
        let mut dropped = 0;
        {
            let mut buffer = lock(&self.shared.buffer);
            for mut s in samples {
                s.labels = with_external(s.labels, &self.shared.external);
                buffer.samples.push_back(s);
            }
            while buffer.samples.len() > self.shared.capacity {
                buffer.samples.pop_front();
                dropped += 1;
            }
            buffer.dropped_front += dropped;
        }
        if dropped > 0 {
            self.shared.metrics.remote_write_dropped.inc_by(dropped);
            tracing::warn!(dropped, "remote_write buffer full, dropped oldest samples");
        }
        self.shared.notify.notify_one();
    }

    /// Samples waiting to be sent.
    pub fn pending(&self) -> usize {
        lock(&self.shared.buffer).samples.len()
    }

    /// Sends until `shutdown`; then keeps flushing what is buffered for at most
    /// [`FLUSH_TIMEOUT`] (so the last evaluations' samples are not lost on a clean stop).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if deadline.is_none() && shutdown.is_cancelled() {
                deadline = Some(tokio::time::Instant::now() + FLUSH_TIMEOUT);
            }
            let (batch, dropped_before) = {
                let buffer = lock(&self.shared.buffer);
                let batch: Vec<OutSample> =
                    buffer.samples.iter().take(MAX_BATCH).cloned().collect();
                (batch, buffer.dropped_front)
            };
            if batch.is_empty() {
                if deadline.is_some() {
                    return;
                }
                tokio::select! {
                    () = shutdown.cancelled() => continue,
                    () = self.shared.notify.notified() => continue,
                }
            }
            let outcome = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.send(&batch)).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::warn!(
                            pending = self.pending(),
                            "remote_write flush timed out on shutdown"
                        );
                        return;
                    }
                },
                None => tokio::select! {
                    // Restart the attempt under the flush deadline.
                    () = shutdown.cancelled() => continue,
                    outcome = self.send(&batch) => outcome,
                },
            };
            match outcome {
                SendOutcome::Done | SendOutcome::Rejected => {
                    {
                        let mut buffer = lock(&self.shared.buffer);
                        // Pushes may have dropped some of the batch from the front meanwhile.
                        let gone = (buffer.dropped_front - dropped_before).min(batch.len() as u64);
                        let n = (batch.len() - gone as usize).min(buffer.samples.len());
                        buffer.samples.drain(..n);
                    }
                    if matches!(outcome, SendOutcome::Done) {
                        self.shared.metrics.remote_write_samples.inc_by(batch.len() as u64);
                    } else {
                        self.shared.metrics.remote_write_dropped.inc_by(batch.len() as u64);
                    }
                    backoff = MIN_BACKOFF;
                }
                SendOutcome::Retry => {
                    self.shared.metrics.remote_write_failures.inc();
                    if let Some(d) = deadline {
                        if tokio::time::Instant::now() + backoff >= d {
                            tracing::warn!(
                                pending = self.pending(),
                                "remote_write gave up on shutdown"
                            );
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                    } else {
                        tokio::select! {
                            () = shutdown.cancelled() => {}
                            () = tokio::time::sleep(backoff) => {}
                        }
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn send(&self, batch: &[OutSample]) -> SendOutcome {
        let body = encode(batch);
        let result = self
            .http
            .post(&self.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header("User-Agent", "basin-alerter")
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => SendOutcome::Done,
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                tracing::warn!(status = %r.status(), url = %self.url, "remote_write failed, retrying");
                SendOutcome::Retry
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::error!(%status, url = %self.url, body = %text.trim(), "remote_write rejected samples");
                SendOutcome::Rejected
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %self.url, "remote_write failed, retrying");
                SendOutcome::Retry
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum SendOutcome {
    Done,
    Retry,
    Rejected,
}

/// Encodes samples as one snappy-compressed `WriteRequest`, one `TimeSeries` per label set
/// (samples of a series in time order).
pub fn encode(batch: &[OutSample]) -> Vec<u8> {
    let mut series: Vec<TimeSeries> = Vec::new();
    let mut index: std::collections::HashMap<&Labels, usize> = std::collections::HashMap::new();
    for s in batch {
        let i = *index.entry(&s.labels).or_insert_with(|| {
            series.push(TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| Label { name: name.clone(), value: value.clone() })
                    .collect(),
                samples: Vec::new(),
            });
            series.len() - 1
        });
        series[i].samples.push(Sample { value: s.value, timestamp: s.timestamp_ms });
    }
    for ts in &mut series {
        ts.samples.sort_by_key(|s| s.timestamp);
    }
    let request = WriteRequest { timeseries: series, metadata: Vec::new() };
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Receiver {
        calls: AtomicUsize,
        received: Mutex<Vec<WriteRequest>>,
    }

    async fn receive(
        State(r): State<Arc<Receiver>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let call = r.calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(headers["content-encoding"], "snappy");
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
        assert_eq!(headers["x-scope-orgid"], "team-a");
        if call < 2 {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap_or_default();
        match WriteRequest::decode(raw.as_slice()) {
            Ok(req) if req.timeseries.iter().any(|t| t.labels.iter().any(|l| l.value == "bad")) => {
                StatusCode::BAD_REQUEST
            }
            Ok(req) => {
                r.received.lock().unwrap().push(req);
                StatusCode::NO_CONTENT
            }
            Err(_) => StatusCode::BAD_REQUEST,
        }
    }

    #[tokio::test]
    async fn retries_unavailable_then_delivers_and_drops_rejected() {
        let receiver = Arc::new(Receiver::default());
        let app = axum::Router::new()
            .route("/api/v1/write", axum::routing::post(receive))
            .with_state(Arc::clone(&receiver));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = AlerterMetrics::new(&mut registry);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-scope-orgid", reqwest::header::HeaderValue::from_static("team-a"));
        let writer = RemoteWriter::new(
            url,
            vec![("cluster".to_string(), "eu".to_string())],
            Duration::from_secs(5),
            headers,
            metrics.clone(),
        )
        .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(writer.clone().run(stop.clone()));
        let sample = |name: &str, t: i64| OutSample {
            labels: Labels::from([("__name__".to_string(), name.to_string())]),
            timestamp_ms: t,
            value: 1.0,
        };
        writer.push(vec![sample("good", 1000)]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while receiver.received.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(metrics.remote_write_failures.get(), 2, "two 503s were retried");
        assert_eq!(metrics.remote_write_samples.get(), 1);
        let delivered = receiver.received.lock().unwrap()[0].clone();
        let labels: Vec<(String, String)> = delivered.timeseries[0]
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        assert!(labels.contains(&("cluster".to_string(), "eu".to_string())), "external label");

        // A 400 is not retried: the batch is dropped and counted, later samples still flow.
        writer.push(vec![sample("bad", 2000)]);
        writer.push(vec![sample("good", 3000)]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while receiver.received.lock().unwrap().len() < 2 && metrics.remote_write_dropped.get() == 0
        {
            assert!(std::time::Instant::now() < deadline, "stuck on a rejected batch");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        let _ = task.await;
        assert_eq!(writer.pending(), 0);
    }

    #[test]
    fn encodes_snappy_protobuf() {
        let labels = Labels::from([
            ("__name__".to_string(), "r".to_string()),
            ("job".to_string(), "a".to_string()),
        ]);
        let batch = vec![
            OutSample { labels: labels.clone(), timestamp_ms: 2000, value: 2.0 },
            OutSample { labels: labels.clone(), timestamp_ms: 1000, value: 1.0 },
        ];
        let body = encode(&batch);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 1);
        assert_eq!(req.timeseries[0].labels.len(), 2);
        assert_eq!(req.timeseries[0].samples[0].timestamp, 1000);
    }
}
